"""The CSR cleaner (upstream ``csrcleaner``): deletes CertificateSigningRequests nobody
needs any more, so the API does not fill up with them.

As upstream's ``CSRCleanerController``, a request is deleted once it is

* pending (neither approved nor denied) for more than 24 hours after creation,
* denied, failed, or approved for more than an hour after that condition's
  ``lastUpdateTime`` (its certificate has been picked up by then), or
* issued with a certificate that has expired.

Each request is looked at when it changes and again when its deadline passes (upstream
polls every hour; here each request is requeued for its own deadline).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import logging
from typing import Any

from cryptography import x509

from pyk8s.api.certificates import APPROVED, DENIED, FAILED, condition
from pyk8s.client import ApiError, is_not_found
from pyk8s.controllers.csrsigning import CSRS
from pyk8s.controllers.runtime import Manager, Request, Result

__all__ = ["deadline", "setup"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
PENDING_EXPIRATION = datetime.timedelta(hours=24)
DECIDED_EXPIRATION = datetime.timedelta(hours=1)


def _time(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _cert_expiry(csr: Obj) -> datetime.datetime | None:
    raw = (csr.get("status") or {}).get("certificate")
    if not raw:
        return None
    try:
        certs = x509.load_pem_x509_certificates(base64.b64decode(raw))
    except (binascii.Error, ValueError):
        return None
    return certs[0].not_valid_after_utc if certs else None


def deadline(csr: Obj) -> datetime.datetime | None:
    """When ``csr`` may be deleted (None: no known deadline)."""
    times: list[datetime.datetime] = []
    decided = False
    for t in (APPROVED, DENIED, FAILED):
        c = condition(csr, t)
        if c is not None:
            decided = decided or t in (APPROVED, DENIED)
            when = _time(c.get("lastUpdateTime"))
            if when is not None:
                times.append(when + DECIDED_EXPIRATION)
    expiry = _cert_expiry(csr)
    if expiry is not None:
        times.append(expiry)
    if not decided:
        created = _time((csr.get("metadata") or {}).get("creationTimestamp"))
        if created is not None:
            times.append(created + PENDING_EXPIRATION)
    return min(times) if times else None


class CSRCleanerReconciler:
    def __init__(self, manager: Manager) -> None:
        self.client = manager.client
        self.csrs = manager.informers.informer(CSRS).store

    async def reconcile(self, request: Request) -> Result | None:
        csr = self.csrs.get_by_name(None, request.name)
        if csr is None:
            return None
        when = deadline(csr)
        if when is None:
            return None
        wait = (when - datetime.datetime.now(datetime.UTC)).total_seconds()
        if wait > 0:
            return Result(requeue_after=wait)
        uid = (csr.get("metadata") or {}).get("uid")
        try:
            await self.client.delete(CSRS, request.name, preconditions={"uid": str(uid)})
        except ApiError as err:
            if not is_not_found(err):
                raise
        log.info("csr %s cleaned up", request.name)
        return None


def setup(manager: Manager) -> None:
    reconciler = CSRCleanerReconciler(manager)
    controller = manager.add("csrcleaner", reconciler, workers=1)
    controller.watch(manager.informers.informer(CSRS))
