"""Bootstrap tokens: short bearer tokens a new node joins with (kubeadm's, upstream's).

Why: a host that joins the cluster must authenticate before it has a certificate, with
something an admin can hand out, limit and revoke. Upstream's answer is a
``bootstrap.kubernetes.io/token`` Secret named ``bootstrap-token-<id>`` in ``kube-system``
whose bearer token is ``<id>.<secret>`` (6 and 16 characters of ``[a-z0-9]``). The
authenticator here is upstream's ``--enable-bootstrap-token-auth``: a token of that form
names the user ``system:bootstrap:<id>`` in ``system:bootstrappers`` and the Secret's
``auth-extra-groups`` when its Secret

* exists, is not being deleted and has the bootstrap token type,
* holds that ``token-id`` and ``token-secret`` (compared in constant time),
* says ``usage-bootstrap-authentication: "true"``, and
* has not passed its ``expiration`` (RFC 3339), if it has one.

Anything else is "not mine" (no opinion), so the request ends as upstream's: 401 for a
bearer token nobody recognised. Secrets are read from the watch cache on each request: a
deleted or edited token stops working as soon as the cache sees it.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hmac
import re
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from pyk8s.apiserver.authn import UserInfo, bearer_token

__all__ = [
    "BOOTSTRAPPERS_GROUP",
    "SECRET_TYPE",
    "BootstrapTokenAuthenticator",
    "user_for_token",
]

SECRET_TYPE = "bootstrap.kubernetes.io/token"
BOOTSTRAPPERS_GROUP = "system:bootstrappers"
USER_PREFIX = "system:bootstrap:"
SECRET_PREFIX = "bootstrap-token-"

_TOKEN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
_EXTRA_GROUP = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")

#: ``name`` -> the Secret ``kube-system/<name>`` (None when there is none)
SecretLookup = Callable[[str], Mapping[str, Any] | None]


def _data(secret: Mapping[str, Any], key: str) -> str:
    value = (secret.get("data") or {}).get(key)
    if not isinstance(value, str):
        return ""
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""


def _expired(expiration: str, now: datetime.datetime) -> bool:
    if not expiration:
        return False
    try:
        when = datetime.datetime.fromisoformat(expiration.replace("Z", "+00:00"))
    except ValueError:
        return True  # upstream treats an unparsable expiration as expired
    if when.tzinfo is None:
        return True
    return when <= now


def user_for_token(
    token: str, lookup: SecretLookup, now: datetime.datetime | None = None
) -> UserInfo | None:
    """The user a bootstrap token names, or None (not a valid bootstrap token)."""
    match = _TOKEN.match(token)
    if match is None:
        return None
    token_id, token_secret = match.groups()
    secret = lookup(SECRET_PREFIX + token_id)
    if secret is None or (secret.get("metadata") or {}).get("deletionTimestamp"):
        return None
    if secret.get("type") != SECRET_TYPE:
        return None
    if not hmac.compare_digest(_data(secret, "token-secret").encode(), token_secret.encode()):
        return None
    if _data(secret, "token-id") != token_id:
        return None
    when = now or datetime.datetime.now(datetime.UTC)
    if _expired(_data(secret, "expiration"), when):
        return None
    if _data(secret, "usage-bootstrap-authentication") != "true":
        return None
    extra = [g.strip() for g in _data(secret, "auth-extra-groups").split(",") if g.strip()]
    if any(not _EXTRA_GROUP.match(g) for g in extra):
        return None
    groups = (BOOTSTRAPPERS_GROUP, *dict.fromkeys(g for g in extra if g != BOOTSTRAPPERS_GROUP))
    return UserInfo(USER_PREFIX + token_id, groups=groups)


class BootstrapTokenAuthenticator:
    """Upstream's bootstrap token authenticator over a Secret lookup (module docstring)."""

    def __init__(self, lookup: SecretLookup) -> None:
        self._lookup = lookup

    async def authenticate(self, request: web.Request) -> UserInfo | None:
        token = bearer_token(request)
        if token is None:
            return None
        return user_for_token(token, self._lookup)
