"""The route controller: a cloud route for every node's pod CIDR.

Upstream's ``node-route-controller``: every ``period`` seconds (and on node changes) it
lists the provider's routes, creates one for each node's ``spec.podCIDRs`` entry that has
none (target: the node), deletes routes whose node is gone or whose CIDR the node no
longer holds, and sets the node's ``NetworkUnavailable`` condition to False
(``RouteCreated``) once its routes exist. It runs only for a provider with routes; the
``local`` provider has none (its nodes program host-gw routes themselves).
"""

from __future__ import annotations

import datetime
import logging

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import Client, Store, is_not_found
from pyk8s.client.errors import ClientError
from pyk8s.cloudprovider.provider import Obj, Route, Routes
from pyk8s.controllers.runtime import Request, Result

__all__ = ["ROUTES_KEY", "RouteReconciler"]

log = logging.getLogger(__name__)

NODES: Resource = REGISTRY.get("", "v1", "nodes")  # type: ignore[assignment]
#: the one key the controller works on (routes are reconciled for all nodes at once)
ROUTES_KEY = Request("", "routes")
#: upstream's --route-reconciliation-period
PERIOD = 10.0


def _cidrs(node: Obj) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
    return [str(c) for c in cidrs]


def _network_unavailable(node: Obj) -> str | None:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "NetworkUnavailable":
            return str(c.get("status"))
    return None


class RouteReconciler:
    def __init__(
        self,
        client: Client,
        nodes: Store,
        routes: Routes,
        cluster_name: str = "kubernetes",
        period: float = PERIOD,
    ) -> None:
        self.client = client
        self.nodes = nodes
        self.routes = routes
        self.cluster_name = cluster_name
        self.period = period

    async def reconcile(self, request: Request) -> Result | None:
        existing = await self.routes.list_routes(self.cluster_name)
        have = {(r.target_node, r.destination_cidr) for r in existing}
        wanted: dict[tuple[str, str], Obj] = {}
        node: Obj
        for node in self.nodes.list():
            for cidr in _cidrs(node):
                wanted[(node["metadata"]["name"], cidr)] = node
        for (name, cidr), node in sorted(wanted.items()):
            if (name, cidr) not in have:
                route = Route(name=f"{name}-{cidr}", target_node=name, destination_cidr=cidr)
                hint = str(node["metadata"].get("uid"))
                await self.routes.create_route(self.cluster_name, hint, route)
                log.info("route created", extra={"node": name, "cidr": cidr})
        for route in existing:
            if (route.target_node, route.destination_cidr) not in wanted:
                await self.routes.delete_route(self.cluster_name, route)
                log.info("route deleted", extra={"node": route.target_node})
        routed = {name: node for (name, _cidr), node in wanted.items()}
        for name, node in sorted(routed.items()):
            if _network_unavailable(node) != "False":
                await self._network_available(name)
        return Result(requeue_after=self.period)

    async def _network_available(self, name: str) -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        condition = {
            "type": "NetworkUnavailable",
            "status": "False",
            "reason": "RouteCreated",
            "message": "RouteController created a route",
            "lastTransitionTime": now,
            "lastHeartbeatTime": now,
        }
        try:
            await self.client.patch(
                NODES, name, {"status": {"conditions": [condition]}}, subresource="status"
            )
        except ClientError as err:
            if not is_not_found(err):
                raise
