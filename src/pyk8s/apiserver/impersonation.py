"""User impersonation: ``Impersonate-User``, ``-Group``, ``-Uid`` and ``-Extra-<key>``.

Why: ``kubectl --as=jane --as-group=devs`` (and every client's equivalent) lets an
administrator act as another user to check what that user may do, and lets a proxy act
for its users. Upstream's filter (``endpoints/filters/impersonation.go``), reproduced:

* each header asks for one thing, and the *requesting* user must be allowed the
  ``impersonate`` verb on it: ``users`` (or ``serviceaccounts`` in the account's
  namespace for ``system:serviceaccount:<ns>:<name>``) and ``groups`` in the core group,
  ``uids`` and ``userextras/<key>`` in ``authentication.k8s.io``; the first refusal is
  403 with upstream's text;
* groups, extra or uid without a user is an error;
* the impersonated user gets the groups asked for (a service account with none asked:
  its ``system:serviceaccounts`` groups) plus ``system:authenticated`` -- unless it is
  ``system:anonymous``, which gets ``system:unauthenticated`` -- and nothing of the
  requester's own identity.
"""

from __future__ import annotations

import urllib.parse

from aiohttp import web

from pyk8s.api import errors
from pyk8s.apiserver.authn import ALL_AUTHENTICATED, ALL_UNAUTHENTICATED, UserInfo
from pyk8s.apiserver.authz import Authorizer, RequestAttributes, forbidden

__all__ = ["IMPERSONATE_HEADERS", "impersonated_user"]

USER_HEADER = "Impersonate-User"
UID_HEADER = "Impersonate-Uid"
GROUP_HEADER = "Impersonate-Group"
EXTRA_PREFIX = "impersonate-extra-"
IMPERSONATE_HEADERS = (USER_HEADER, UID_HEADER, GROUP_HEADER)
_IMPERSONATE_LOWER = frozenset(h.lower() for h in IMPERSONATE_HEADERS)

SA_PREFIX = "system:serviceaccount:"
ANONYMOUS = "system:anonymous"
AUTHN_GROUP = "authentication.k8s.io"


def _wants(request: web.Request) -> bool:
    """Whether the request names anyone to impersonate (every request asks, almost none
    does: one pass over the header names, each looked at further only if it starts with
    ``Impersonate-``)."""
    for k in request.headers:
        if k[:12].lower() == "impersonate-":
            lowered = k.lower()
            if lowered in _IMPERSONATE_LOWER or lowered.startswith(EXTRA_PREFIX):
                return True
    return False


async def impersonated_user(
    request: web.Request, requester: UserInfo, authorizer: Authorizer
) -> UserInfo:
    """The user the request acts as: ``requester`` itself, or whom it impersonates."""
    if not _wants(request):
        return requester
    headers = request.headers
    name = headers.get(USER_HEADER, "")
    uid = headers.get(UID_HEADER, "")
    groups = tuple(headers.getall(GROUP_HEADER, ()))
    extra: dict[str, tuple[str, ...]] = {}
    for header, value in headers.items():
        if header.lower().startswith(EXTRA_PREFIX):
            key = urllib.parse.unquote(header[len(EXTRA_PREFIX) :]).lower()
            extra[key] = (*extra.get(key, ()), value)
    if not name:
        asked = [f"Group {g!r}" for g in groups] + [f"UserExtra {k!r}" for k in extra]
        if uid:
            asked.append(f"UID {uid!r}")
        raise errors.internal(f"requested [{', '.join(asked)}] without impersonating a user")
    checks: list[RequestAttributes] = [_impersonate("", "groups", g) for g in groups]
    if name.startswith(SA_PREFIX) and name.count(":") == 3:
        _, _, namespace, sa = name.split(":")
        checks.insert(0, _impersonate("", "serviceaccounts", sa, namespace=namespace))
        if not groups:  # the account's own groups, which need no permission of their own
            groups = ("system:serviceaccounts", f"system:serviceaccounts:{namespace}")
    else:
        checks.insert(0, _impersonate("", "users", name))
    for key, values in extra.items():
        checks += [_impersonate(AUTHN_GROUP, "userextras", v, subresource=key) for v in values]
    if uid:
        checks.append(_impersonate(AUTHN_GROUP, "uids", uid))
    for attrs in checks:
        decision = await authorizer.authorize(requester, attrs)
        if not decision.allowed:
            raise forbidden(requester, attrs, decision.reason)
    if name == ANONYMOUS:
        if ALL_UNAUTHENTICATED not in groups:
            groups = (*groups, ALL_UNAUTHENTICATED)
    elif ALL_AUTHENTICATED not in groups and ALL_UNAUTHENTICATED not in groups:
        groups = (*groups, ALL_AUTHENTICATED)
    return UserInfo(name=name, uid=uid, groups=groups, extra=extra)


def _impersonate(
    group: str, resource: str, name: str, *, namespace: str = "", subresource: str = ""
) -> RequestAttributes:
    return RequestAttributes(
        verb="impersonate",
        api_group=group,
        resource=resource,
        subresource=subresource,
        namespace=namespace,
        name=name,
        api_version="v1",
    )
