"""The cloud-provider seam: what a cloud must answer for the cloud controller manager.

Upstream's ``k8s.io/cloud-provider`` ``Interface`` in Python: a provider hands out the
optional parts it implements — :class:`LoadBalancer`, :class:`InstancesV2`,
:class:`Zones`, :class:`Routes` — and returns ``None`` for the rest; the controllers that
need a missing part do not run (as upstream's route controller does not run for a
provider without routes). Every call is async (a cloud answers over the network) and
takes plain API dicts, never cached objects to mutate.

Exceptions::

    Exception
    └── CloudProviderError    the provider could not do what was asked (retried)
        └── InstanceNotFound  the node has no instance behind it
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "CloudProviderError",
    "Context",
    "InstanceMetadata",
    "InstanceNotFound",
    "InstancesV2",
    "Interface",
    "LoadBalancer",
    "Route",
    "Routes",
    "Zone",
    "Zones",
    "get_provider",
    "register_provider",
]

Obj = Mapping[str, Any]
JSON = dict[str, Any]


class CloudProviderError(Exception):
    """The provider failed; the controller records it and retries."""


class InstanceNotFound(CloudProviderError):
    """No instance backs this node (upstream's ``cloudprovider.InstanceNotFound``)."""


@dataclass(frozen=True)
class Zone:
    failure_domain: str  # topology.kubernetes.io/zone
    region: str  # topology.kubernetes.io/region


@dataclass(frozen=True)
class InstanceMetadata:
    """What the cloud node controller copies onto a Node it initialises."""

    provider_id: str
    instance_type: str = ""
    #: ``[{"type": "InternalIP", "address": ...}, ...]`` as in ``status.addresses``
    node_addresses: tuple[tuple[str, str], ...] = ()
    zone: str = ""
    region: str = ""


@dataclass(frozen=True)
class Route:
    """Traffic for ``destination_cidr`` goes to the node ``target_node``."""

    name: str
    target_node: str
    destination_cidr: str
    blackhole: bool = False


def default_load_balancer_name(service: Obj) -> str:
    """Upstream's ``DefaultLoadBalancerName``: "a" and the UID without dashes, at most
    32 characters."""
    uid = str((service.get("metadata") or {}).get("uid") or "").replace("-", "")
    return ("a" + uid)[:32]


class StatusLoadBalancer:
    """The part of :class:`LoadBalancer` shared by providers whose load balancer is
    nothing but what the Service's status says (the ``local`` provider's modes): its
    name is upstream's default and it exists once the status lists an address."""

    def get_load_balancer_name(self, cluster_name: str, service: Obj) -> str:
        return default_load_balancer_name(service)

    async def get_load_balancer(self, cluster_name: str, service: Obj) -> JSON | None:
        status = (service.get("status") or {}).get("loadBalancer") or {}
        return dict(status) if status.get("ingress") else None


class LoadBalancer(Protocol):
    """Upstream's ``cloudprovider.LoadBalancer``. ``nodes`` are the Node objects the
    service controller found eligible (ready, schedulable, not excluded)."""

    async def get_load_balancer(self, cluster_name: str, service: Obj) -> JSON | None:
        """The load balancer's status (``{"ingress": [...]}``) or None if it does not exist."""
        ...

    def get_load_balancer_name(self, cluster_name: str, service: Obj) -> str: ...

    async def ensure_load_balancer(
        self, cluster_name: str, service: Obj, nodes: Sequence[Obj]
    ) -> JSON:
        """Create or update the load balancer; its status (``{"ingress": [...]}``)."""
        ...

    async def update_load_balancer(
        self, cluster_name: str, service: Obj, nodes: Sequence[Obj]
    ) -> None:
        """The node set changed: point the load balancer at ``nodes``."""
        ...

    async def ensure_load_balancer_deleted(self, cluster_name: str, service: Obj) -> None: ...


class InstancesV2(Protocol):
    """Upstream's ``cloudprovider.InstancesV2``: everything keyed by the Node object."""

    async def instance_exists(self, node: Obj) -> bool: ...

    async def instance_shutdown(self, node: Obj) -> bool: ...

    async def instance_metadata(self, node: Obj) -> InstanceMetadata: ...


class Zones(Protocol):
    async def get_zone_by_node_name(self, node_name: str) -> Zone: ...


class Routes(Protocol):
    async def list_routes(self, cluster_name: str) -> list[Route]: ...

    async def create_route(self, cluster_name: str, name_hint: str, route: Route) -> None: ...

    async def delete_route(self, cluster_name: str, route: Route) -> None: ...


@dataclass(frozen=True)
class Context:
    """What the cloud controller manager hands a provider at start (upstream's
    ``Initialize(clientBuilder, stop)``): reads of its informer caches and a way to report
    a problem with one object as a Warning event on it."""

    #: every Service in the cache
    services: Callable[[], Sequence[Obj]]
    #: the EndpointSlices of one Service (namespace, name)
    endpoint_slices: Callable[[str, str], Sequence[Obj]]
    #: (object, reason, message): a Warning event
    report: Callable[[Obj, str, str], None]
    #: whether this provider's service controller handles a Service (its class)
    owns: Callable[[Obj], bool]


class Interface(Protocol):
    """A cloud provider: each part, or None when the cloud does not offer it."""

    def initialize(self, context: Context) -> None: ...

    def provider_name(self) -> str: ...

    def load_balancer_classes(self) -> frozenset[str]:
        """``spec.loadBalancerClass`` values this provider answers; ``""`` stands for
        services without a class (the default load balancer)."""
        ...

    def load_balancer(self) -> LoadBalancer | None: ...

    def instances_v2(self) -> InstancesV2 | None: ...

    def zones(self) -> Zones | None: ...

    def routes(self) -> Routes | None: ...


_PROVIDERS: dict[str, Callable[..., Interface]] = {}


def register_provider(name: str, factory: Callable[..., Interface]) -> None:
    """Make ``--cloud-provider=name`` build its provider with ``factory(**options)``."""
    _PROVIDERS[name] = factory


def get_provider(name: str, **options: Any) -> Interface:
    """The provider registered as ``name`` (ValueError naming the known ones if none)."""
    try:
        factory = _PROVIDERS[name]
    except KeyError:
        known = ", ".join(sorted(_PROVIDERS))
        raise ValueError(f"unknown cloud provider {name!r}; known: {known}") from None
    return factory(**options)
