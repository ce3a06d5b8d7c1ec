"""Authorization: may this user do this verb on this resource?

Why this shape: upstream's authorizers (Node, RBAC, webhook, ...) each see the user and
the request's attributes and answer allow, deny or *no opinion*; a chain asks them in
order and the first allow or deny decides. RBAC only ever allows or abstains, the Node
authorizer abstains for non-nodes, so "no opinion" must exist for the chain to work.
This module holds that seam and the simple authorizers; RBAC (:mod:`.rbac`) and the
chain of ``--authorization-mode`` (:mod:`.authzmodes`) build on it.

:func:`forbidden` builds the 403 Status with upstream's exact message, e.g.
``pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the
namespace "default"``, which kubectl prints verbatim.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pyk8s.api.errors import StatusError
from pyk8s.apiserver.authn import ALL_AUTHENTICATED, UserInfo

__all__ = [
    "AlwaysAllow",
    "AlwaysAllowAuthenticated",
    "Authorizer",
    "AuthorizerChain",
    "Decision",
    "PrivilegedGroups",
    "RequestAttributes",
    "forbidden",
]


@dataclass(frozen=True, slots=True)
class RequestAttributes:
    """Upstream's ``authorizer.Attributes`` minus the user (passed alongside).

    For a resource request ``verb`` is the API verb (get, list, watch, create, update,
    patch, delete, deletecollection, ...); otherwise the lower-cased HTTP method and
    ``path`` is what is checked.
    """

    verb: str
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""
    resource_request: bool = True
    api_version: str = ""
    #: a list or watch's ``fieldSelector`` as sent (the Node authorizer lets a node list
    #: only the pods with ``spec.nodeName=<itself>``)
    field_selector: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    """``allowed``; when not allowed, ``no_opinion`` says the next authorizer may still
    allow (upstream's DecisionNoOpinion) rather than this being a definite deny."""

    allowed: bool
    reason: str = ""
    no_opinion: bool = False

    @classmethod
    def allow(cls, reason: str = "") -> Decision:
        return cls(True, reason)

    @classmethod
    def deny(cls, reason: str = "") -> Decision:
        return cls(False, reason)

    @classmethod
    def abstain(cls, reason: str = "") -> Decision:
        return cls(False, reason, no_opinion=True)


@runtime_checkable
class Authorizer(Protocol):
    async def authorize(self, user: UserInfo, attributes: RequestAttributes) -> Decision: ...


class AlwaysAllow:
    async def authorize(self, user: UserInfo, attributes: RequestAttributes) -> Decision:
        return Decision.allow()


class AlwaysAllowAuthenticated:
    """Allow anyone authenticated; abstain for anonymous users (what an in-process
    :class:`~pyk8s.apiserver.server.APIServer` uses when given no authorization modes)."""

    async def authorize(self, user: UserInfo, attributes: RequestAttributes) -> Decision:
        if ALL_AUTHENTICATED in user.groups:
            return Decision.allow()
        return Decision.abstain("user is not authenticated")


class PrivilegedGroups:
    """Members of these groups may do anything (upstream: ``system:masters`` bypasses RBAC)."""

    def __init__(self, groups: Iterable[str] = ("system:masters",)) -> None:
        self._groups = frozenset(groups)

    async def authorize(self, user: UserInfo, attributes: RequestAttributes) -> Decision:
        if self._groups.intersection(user.groups):
            return Decision.allow()
        return Decision.abstain()


class AuthorizerChain:
    """Ask each in turn; the first allow or deny decides; all abstaining is a deny."""

    def __init__(self, authorizers: Iterable[Authorizer]) -> None:
        self._authorizers = tuple(authorizers)

    async def authorize(self, user: UserInfo, attributes: RequestAttributes) -> Decision:
        reasons: list[str] = []
        for a in self._authorizers:
            d = await a.authorize(user, attributes)
            if d.allowed or not d.no_opinion:
                return d
            if d.reason:
                reasons.append(d.reason)
        return Decision.abstain(", ".join(reasons))


def _forbidden_message(user: UserInfo, a: RequestAttributes) -> str:
    if not a.resource_request:
        return f'User "{user.name}" cannot {a.verb} path "{a.path}"'
    resource = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    if a.namespace:
        return (
            f'User "{user.name}" cannot {a.verb} resource "{resource}" in API group '
            f'"{a.api_group}" in the namespace "{a.namespace}"'
        )
    return (
        f'User "{user.name}" cannot {a.verb} resource "{resource}" in API group '
        f'"{a.api_group}" at the cluster scope'
    )


def forbidden(user: UserInfo, attributes: RequestAttributes, reason: str = "") -> StatusError:
    """The 403 Status upstream answers for a denied request (``responsewriters.Forbidden``)."""
    msg = _forbidden_message(user, attributes)
    if reason:
        msg = f"{msg}: {reason}"
    a = attributes
    if not a.resource_request or not a.resource:
        return StatusError(403, "Forbidden", f"forbidden: {msg}", {})
    gr = f"{a.resource}.{a.api_group}" if a.api_group else a.resource
    details: dict[str, str] = {"kind": a.resource}
    if a.api_group:
        details["group"] = a.api_group
    if a.name:
        details["name"] = a.name
        return StatusError(403, "Forbidden", f'{gr} "{a.name}" is forbidden: {msg}', dict(details))
    return StatusError(403, "Forbidden", f"{gr} is forbidden: {msg}", dict(details))
