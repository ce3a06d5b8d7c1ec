"""A cloud provider for tests (``--cloud-provider=fake``): state in memory, set by hand.

Tests flip ``gone``/``shutdown`` for a node, read ``routes`` and ``calls``, and make the
load balancer fail with ``fail_with``. Its load balancers answer at ``ip_base`` + n, one
address per service, in creation order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyk8s.cloudprovider.provider import (
    JSON,
    CloudProviderError,
    Context,
    InstanceMetadata,
    InstancesV2,
    LoadBalancer,
    Obj,
    Route,
    Routes,
    Zone,
    Zones,
    default_load_balancer_name,
    register_provider,
)

__all__ = ["FakeCloud"]


class FakeCloud:
    def __init__(self, **_options: Any) -> None:
        self.gone: set[str] = set()
        self.shutdown: set[str] = set()
        self.routes_table: dict[str, Route] = {}
        self.balancers: dict[str, str] = {}  # service UID -> address
        self.calls: list[tuple[str, str]] = []  # (method, namespace/name or node)
        self.fail_with: str = ""
        self.ip_base = "203.0.113."
        self.context: Context | None = None

    # -- Interface
    def initialize(self, context: Context) -> None:
        self.context = context

    def provider_name(self) -> str:
        return "fake"

    def load_balancer_classes(self) -> frozenset[str]:
        return frozenset({"", "example.com/fake"})

    def load_balancer(self) -> LoadBalancer | None:
        return self

    def instances_v2(self) -> InstancesV2 | None:
        return self

    def zones(self) -> Zones | None:
        return self

    def routes(self) -> Routes | None:
        return self

    # -- LoadBalancer
    @staticmethod
    def _name(service: Obj) -> str:
        meta = service.get("metadata") or {}
        return f"{meta.get('namespace')}/{meta.get('name')}"

    def get_load_balancer_name(self, cluster_name: str, service: Obj) -> str:
        return default_load_balancer_name(service)

    async def get_load_balancer(self, cluster_name: str, service: Obj) -> JSON | None:
        ip = self.balancers.get(str(service["metadata"].get("uid")))
        return {"ingress": [{"ip": ip}]} if ip else None

    async def ensure_load_balancer(
        self, cluster_name: str, service: Obj, nodes: Sequence[Obj]
    ) -> JSON:
        self.calls.append(("ensure", self._name(service)))
        if self.fail_with:
            raise CloudProviderError(self.fail_with)
        uid = str(service["metadata"].get("uid"))
        ip = self.balancers.setdefault(uid, f"{self.ip_base}{len(self.balancers) + 1}")
        return {"ingress": [{"ip": ip, "ipMode": "VIP"}]}

    async def update_load_balancer(
        self, cluster_name: str, service: Obj, nodes: Sequence[Obj]
    ) -> None:
        await self.ensure_load_balancer(cluster_name, service, nodes)

    async def ensure_load_balancer_deleted(self, cluster_name: str, service: Obj) -> None:
        self.calls.append(("delete", self._name(service)))
        self.balancers.pop(str(service["metadata"].get("uid")), None)

    # -- InstancesV2
    async def instance_exists(self, node: Obj) -> bool:
        return node["metadata"]["name"] not in self.gone

    async def instance_shutdown(self, node: Obj) -> bool:
        return node["metadata"]["name"] in self.shutdown

    async def instance_metadata(self, node: Obj) -> InstanceMetadata:
        name = node["metadata"]["name"]
        return InstanceMetadata(
            provider_id=f"fake://{name}",
            instance_type="fake.small",
            node_addresses=(("InternalIP", "198.51.100.7"), ("Hostname", name)),
            zone="zone-a",
            region="region-1",
        )

    # -- Zones
    async def get_zone_by_node_name(self, node_name: str) -> Zone:
        return Zone(failure_domain="zone-a", region="region-1")

    # -- Routes
    async def list_routes(self, cluster_name: str) -> list[Route]:
        return list(self.routes_table.values())

    async def create_route(self, cluster_name: str, name_hint: str, route: Route) -> None:
        self.routes_table[route.name] = route

    async def delete_route(self, cluster_name: str, route: Route) -> None:
        self.routes_table.pop(route.name, None)


register_provider("fake", FakeCloud)
