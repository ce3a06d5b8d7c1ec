"""``--authorization-mode``: the names a user picks, turned into the authorizer chain.

Why its own module: the chain is built once by whoever composes the API server, from
upstream's mode names, in the order given (``Node,RBAC`` is pyk8s's default, as kubeadm
and k3s run). As upstream, ``system:masters`` is allowed everything ahead of every mode
(the privileged-groups authorizer), so the admin kubeconfig works whatever the modes.

Modes: ``AlwaysAllow``, ``AlwaysDeny``, ``RBAC`` and ``Node`` (upstream's Node
authorizer, :mod:`pyk8s.apiserver.node.authorizer`: a kubelet reads only what its own
pods use).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyk8s.apiserver.authn import UserInfo
from pyk8s.apiserver.authz import (
    AlwaysAllow,
    Authorizer,
    AuthorizerChain,
    Decision,
    PrivilegedGroups,
    RequestAttributes,
)
from pyk8s.apiserver.node.authorizer import NodeAuthorizer
from pyk8s.apiserver.rbac.authorizer import RBACAuthorizer
from pyk8s.apiserver.reviews import Rules
from pyk8s.apiserver.watchcache import WatchCache

__all__ = [
    "DEFAULT_AUTHORIZATION_MODES",
    "MODES",
    "AlwaysDeny",
    "build_authorizer",
    "check_modes",
]

MODES = ("AlwaysAllow", "AlwaysDeny", "Node", "RBAC")
DEFAULT_AUTHORIZATION_MODES = ("Node", "RBAC")


class AlwaysDeny:
    """Upstream's ``AlwaysDeny`` mode."""

    async def authorize(self, user: UserInfo, attributes: RequestAttributes) -> Decision:
        return Decision.deny("Everything is forbidden.")

    async def rules_for(self, user: UserInfo, namespace: str) -> Rules:
        return Rules()


def check_modes(modes: Sequence[str]) -> str:
    """The first problem with a ``--authorization-mode`` list ("" when fine)."""
    if not modes:
        return "at least one authorization-mode must be passed"
    for mode in modes:
        if mode not in MODES:
            return f"authorization-mode {mode!r} is not a valid mode (valid: {', '.join(MODES)})"
    if len(set(modes)) != len(modes):
        return f"authorization-mode {','.join(modes)} has mode specified more than once"
    return ""


def build_authorizer(
    modes: Sequence[str], cache: WatchCache
) -> tuple[Authorizer, RBACAuthorizer | None]:
    """The chain for ``modes`` behind ``system:masters``, and its RBAC authorizer (for the
    escalation checks and bootstrap policy), if RBAC is one of them."""
    problem = check_modes(modes)
    if problem:
        raise ValueError(problem)
    rbac: RBACAuthorizer | None = None
    chain: list[Authorizer] = [PrivilegedGroups()]
    for mode in modes:
        if mode == "AlwaysAllow":
            chain.append(AlwaysAllow())
        elif mode == "AlwaysDeny":
            chain.append(AlwaysDeny())
        elif mode == "Node":
            chain.append(NodeAuthorizer(cache))
        else:
            rbac = RBACAuthorizer(cache)
            chain.append(rbac)
    return AuthorizerChain(chain), rbac
