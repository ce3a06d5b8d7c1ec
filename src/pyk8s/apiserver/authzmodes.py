"""``--authorization-mode``: the names a user picks, turned into the authorizer chain.

Why its own module: the chain is built once by whoever composes the API server, from
upstream's mode names, in the order given (``Node,RBAC`` is pyk8s's default, as kubeadm
and k3s run). As upstream, ``system:masters`` is allowed everything ahead of every mode
(the privileged-groups authorizer), so the admin kubeconfig works whatever the modes.

Modes: ``AlwaysAllow``, ``AlwaysDeny``, ``RBAC`` and ``Node``. pyk8s has no Node
authorizer yet: until it lands, ``Node`` is a stand-in that lets a node's identity
(``system:node:<name>`` in ``system:nodes``) do what upstream's ``system:node`` ClusterRole
grants -- everything a kubelet needs, but without upstream's restriction to the node's own
pods, secrets and Node object.
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
from pyk8s.apiserver.rbac.authorizer import RBACAuthorizer
from pyk8s.apiserver.rbac.bootstrappolicy import cluster_roles
from pyk8s.apiserver.rbac.rules import rule_allows, rules_from_json
from pyk8s.apiserver.reviews import Rules
from pyk8s.apiserver.watchcache import WatchCache

__all__ = [
    "DEFAULT_AUTHORIZATION_MODES",
    "MODES",
    "AlwaysDeny",
    "NodeStandIn",
    "build_authorizer",
    "check_modes",
]

MODES = ("AlwaysAllow", "AlwaysDeny", "Node", "RBAC")
DEFAULT_AUTHORIZATION_MODES = ("Node", "RBAC")

NODES_GROUP = "system:nodes"
NODE_PREFIX = "system:node:"


class AlwaysDeny:
    """Upstream's ``AlwaysDeny`` mode."""

    async def authorize(self, user: UserInfo, attributes: RequestAttributes) -> Decision:
        return Decision.deny("Everything is forbidden.")

    async def rules_for(self, user: UserInfo, namespace: str) -> Rules:
        return Rules()


class NodeStandIn:
    """What ``Node`` means until pyk8s has upstream's Node authorizer (module docstring)."""

    def __init__(self) -> None:
        role = next(r for r in cluster_roles() if r["metadata"]["name"] == "system:node")
        self._rules = rules_from_json(role["rules"])

    @staticmethod
    def _is_node(user: UserInfo) -> bool:
        return NODES_GROUP in user.groups and user.name.startswith(NODE_PREFIX)

    async def authorize(self, user: UserInfo, attributes: RequestAttributes) -> Decision:
        if not self._is_node(user):
            return Decision.abstain()
        if any(rule_allows(rule, attributes) for rule in self._rules):
            return Decision.allow()
        return Decision.abstain()

    async def rules_for(self, user: UserInfo, namespace: str) -> Rules:
        if self._is_node(user):
            return Rules(
                incomplete=True,
                evaluation_error="node authorizer does not support user rule resolution",
            )
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
            chain.append(NodeStandIn())
        else:
            rbac = RBACAuthorizer(cache)
            chain.append(rbac)
    return AuthorizerChain(chain), rbac
