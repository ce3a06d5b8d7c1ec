"""The bootstrap token cleaner (upstream ``tokencleaner``): deletes expired bootstrap tokens.

Why: a bootstrap token (a ``bootstrap.kubernetes.io/token`` Secret in ``kube-system``)
with an ``expiration`` stops authenticating when it passes, but the Secret would stay
forever. As upstream's ``TokenCleaner`` (off in kube-controller-manager's defaults, on in
kubeadm's and k3s's ``--controllers=*,tokencleaner``, as in ``pyk8s server``), each such
Secret is deleted, with its uid as a precondition, once its expiration has passed;
a Secret not yet expired is looked at again when it expires.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import logging
from typing import Any

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import ApiError, is_conflict, is_not_found
from pyk8s.controllers.runtime import Manager, Request, Result

__all__ = ["expiration", "setup"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
SECRETS: Resource = REGISTRY.get("", "v1", "secrets")  # type: ignore[assignment]
TOKEN_TYPE = "bootstrap.kubernetes.io/token"
NAMESPACE = "kube-system"


def expiration(secret: Obj) -> datetime.datetime | None:
    """The token's ``expiration`` (None: none, or not a bootstrap token). An unparsable
    expiration counts as already passed, as upstream's authenticator treats it."""
    if secret.get("type") != TOKEN_TYPE:
        return None
    raw = (secret.get("data") or {}).get("expiration")
    if not isinstance(raw, str) or not raw:
        return None
    try:
        text = base64.b64decode(raw, validate=True).decode()
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return datetime.datetime.min.replace(tzinfo=datetime.UTC)
    if when.tzinfo is None:
        return datetime.datetime.min.replace(tzinfo=datetime.UTC)
    return when


class TokenCleanerReconciler:
    def __init__(self, manager: Manager) -> None:
        self.client = manager.client
        self.secrets = manager.informers.informer(SECRETS).store

    async def reconcile(self, request: Request) -> Result | None:
        if request.namespace != NAMESPACE:
            return None
        secret = self.secrets.get_by_name(request.namespace, request.name)
        if secret is None:
            return None
        when = expiration(secret)
        if when is None:
            return None
        wait = (when - datetime.datetime.now(datetime.UTC)).total_seconds()
        if wait > 0:
            return Result(requeue_after=wait)
        uid = str((secret.get("metadata") or {}).get("uid") or "")
        try:
            await self.client.delete(SECRETS, request.name, NAMESPACE, preconditions={"uid": uid})
        except ApiError as err:
            if not (is_not_found(err) or is_conflict(err)):
                raise
        log.info("deleted expired bootstrap token %s/%s", NAMESPACE, request.name)
        return None


def setup(manager: Manager) -> None:
    reconciler = TokenCleanerReconciler(manager)
    controller = manager.add("tokencleaner", reconciler, workers=1)
    controller.watch(manager.informers.informer(SECRETS))
