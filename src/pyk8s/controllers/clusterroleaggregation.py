"""The clusterrole-aggregation controller: a ClusterRole with an ``aggregationRule`` gets
the rules of every ClusterRole its selectors match.

Why: ``admin``, ``edit`` and ``view`` are built this way, so that a CRD's author extends
them by shipping a ClusterRole labelled ``rbac.authorization.k8s.io/aggregate-to-edit:
"true"`` instead of editing the bootstrap roles. As upstream's controller: for each
selector in order, the matching ClusterRoles (but the role itself) in name order, each
rule once; the role is written only when that list differs from its rules. Any change to
any ClusterRole requeues every aggregated one (a label added or removed anywhere can
change them); the controller runs as ``system:controller:clusterrole-aggregation-
controller`` in upstream's policy, which holds ``escalate`` on clusterroles for this.
"""

from __future__ import annotations

import copy
from typing import Any

from pyk8s.api.rbac import aggregated_rules
from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import ApiError, Store, is_not_found
from pyk8s.controllers.runtime import Manager, Request, Result

__all__ = ["CLUSTER_ROLES", "ClusterRoleAggregator", "setup"]

Obj = dict[str, Any]

_CLUSTER_ROLES = REGISTRY.get("rbac.authorization.k8s.io", "v1", "clusterroles")
assert _CLUSTER_ROLES is not None
CLUSTER_ROLES: Resource = _CLUSTER_ROLES


class ClusterRoleAggregator:
    """Request("", name) of an aggregated ClusterRole: make its rules what it gathers."""

    def __init__(self, client: Any, roles: Store) -> None:
        self.client = client
        self.roles = roles

    async def reconcile(self, request: Request) -> Result | None:
        role = self.roles.get_by_name(None, request.name)
        if role is None or not role.get("aggregationRule"):
            return None
        rules = aggregated_rules(role, self.roles.list())
        if rules == (role.get("rules") or []):
            return None
        new = copy.deepcopy(role)
        new["rules"] = rules
        try:
            await self.client.update(CLUSTER_ROLES, new)  # resourceVersion: 409 → retried
        except ApiError as err:
            if not is_not_found(err):
                raise
        return None


def setup(manager: Manager) -> None:
    informer = manager.informers.informer(CLUSTER_ROLES)
    store = informer.store
    controller = manager.add(
        "clusterrole-aggregation", ClusterRoleAggregator(manager.client, store)
    )

    def every_aggregated_role(_: Obj) -> list[Request]:
        return [
            Request("", str(r["metadata"]["name"]))
            for r in store.list()
            if r.get("aggregationRule")
        ]

    controller.watch(informer, every_aggregated_role)
