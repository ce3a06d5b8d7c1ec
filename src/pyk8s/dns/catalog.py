"""The cluster facts DNS answers from: Services and EndpointSlices, indexed for lookups.

The DNS server never calls the API server while answering: it reads two informer stores.
:class:`Catalog` adds the indexes a query needs (slices by their Service, services by
ClusterIP, headless endpoints by address) to those stores, and turns the raw objects into
small read-only views (:class:`Endpoint`) so :mod:`pyk8s.dns.records` stays free of
Kubernetes object plumbing. Tests build a Catalog over plain :class:`Store` objects.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pyk8s.client import Store

__all__ = [
    "SERVICE_NAME_LABEL",
    "Catalog",
    "Endpoint",
    "PortInfo",
    "dashed",
    "family",
    "is_headless",
]

Obj = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
BY_SERVICE = "dns-by-service"
BY_CLUSTER_IP = "dns-by-cluster-ip"
BY_ADDRESS = "dns-by-address"
BY_POD_ADDRESS = "dns-by-pod-address"


@dataclass(frozen=True)
class PortInfo:
    name: str
    protocol: str
    port: int


@dataclass(frozen=True)
class Endpoint:
    """One ready address of a Service, with the ports its slice publishes."""

    address: str
    hostname: str | None
    ports: tuple[PortInfo, ...]

    @property
    def label(self) -> str:
        """The DNS label naming this endpoint: its hostname, else its dashed address."""
        return (self.hostname or dashed(self.address)).lower()

    @property
    def version(self) -> int:
        return family(self.address)


def family(address: str) -> int:
    """4 or 6 for a valid address (cheap: no parsing)."""
    return 6 if ":" in address else 4


def dashed(address: str) -> str:
    """``10.0.0.1`` → ``10-0-0-1``; ``fd00::1`` → ``fd00--1`` (the pod/endpoint label form)."""
    return address.replace(".", "-").replace(":", "-")


def is_headless(svc: Obj) -> bool:
    spec = svc.get("spec") or {}
    return spec.get("type") != "ExternalName" and spec.get("clusterIP") == "None"


def _service_key(slice_: Obj) -> list[str]:
    meta = slice_.get("metadata") or {}
    name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return [f"{meta.get('namespace', '')}/{name}"] if name else []


def _cluster_ips(svc: Obj) -> list[str]:
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return []
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [ip for ip in ips if ip and ip != "None"]


def _ready(ep: Obj) -> bool:
    ready = (ep.get("conditions") or {}).get("ready")
    return ready is None or bool(ready)


def _slice_addresses(slice_: Obj) -> list[str]:
    if slice_.get("addressType") not in ("IPv4", "IPv6"):
        return []
    return [
        a for ep in slice_.get("endpoints") or [] if _ready(ep) for a in ep.get("addresses") or []
    ]


def _pod_addresses(pod: Obj) -> list[str]:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    ips = [str(p.get("ip") or "") for p in status.get("podIPs") or []]
    ips = [ip for ip in ips or [str(status.get("podIP") or "")] if ip]
    return [f"{meta.get('namespace') or ''}/{_normal(ip)}" for ip in ips]


def _normal(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


class Catalog:
    """Read access for DNS to a services store and an endpointslices store.

    With ``track_changes``, whoever writes the stores calls :meth:`changed` after each
    change and :attr:`generation` counts them, so readers may cache answers for one
    generation; without it ``generation`` is None: nothing may be cached.
    """

    def __init__(
        self,
        services: Store,
        slices: Store,
        *,
        track_changes: bool = False,
        pods: Store | None = None,
    ) -> None:
        self.services = services
        self.slices = slices
        #: the pods (``pods verified`` only): ``<ip>.<ns>.pod`` answers only for these
        self.pods = pods
        if pods is not None and BY_POD_ADDRESS not in pods.indexers:
            pods.add_indexers({BY_POD_ADDRESS: _pod_addresses})
        self.generation: int | None = 0 if track_changes else None
        if BY_CLUSTER_IP not in services.indexers:
            services.add_indexers(
                {BY_CLUSTER_IP: lambda s: [_normal(ip) for ip in _cluster_ips(s)]}
            )
        if BY_SERVICE not in slices.indexers:
            slices.add_indexers(
                {
                    BY_SERVICE: _service_key,
                    BY_ADDRESS: lambda s: [_normal(a) for a in _slice_addresses(s)],
                }
            )

    def has_pod(self, namespace: str, address: str) -> bool:
        """Whether a pod of ``namespace`` has ``address`` (CoreDNS's ``pods verified``)."""
        if self.pods is None:
            return False
        return bool(self.pods.index_keys(BY_POD_ADDRESS, f"{namespace}/{_normal(address)}"))

    def changed(self) -> None:
        if self.generation is not None:
            self.generation += 1

    def service(self, namespace: str, name: str) -> Obj | None:
        return self.services.get(f"{namespace}/{name}")

    def has_namespace(self, namespace: str) -> bool:
        """Whether the namespace holds a Service (what makes ``<ns>.svc.<zone>`` exist)."""
        return bool(self.services.index_keys("namespace", namespace))

    def cluster_ips(self, svc: Obj) -> list[str]:
        return _cluster_ips(svc)

    def endpoints(self, namespace: str, name: str) -> list[Endpoint]:
        """The ready IP endpoints of a Service, across its slices, each address once."""
        seen: set[str] = set()
        out: list[Endpoint] = []
        for slice_ in self.slices.by_index(BY_SERVICE, f"{namespace}/{name}"):
            for ep in self._slice_endpoints(slice_):
                if ep.address not in seen:
                    seen.add(ep.address)
                    out.append(ep)
        return out

    def services_by_ip(self, address: str) -> list[Obj]:
        return self.services.by_index(BY_CLUSTER_IP, _normal(address))

    def endpoints_by_ip(self, address: str) -> Iterator[tuple[Obj, Endpoint]]:
        """(service, endpoint) for each headless Service with a ready endpoint at ``address``."""
        want = _normal(address)
        for slice_ in self.slices.by_index(BY_ADDRESS, want):
            keys = _service_key(slice_)
            svc = self.services.get(keys[0]) if keys else None
            if svc is None or not is_headless(svc):
                continue
            for ep in self._slice_endpoints(slice_):
                if _normal(ep.address) == want:
                    yield svc, ep

    @staticmethod
    def _slice_endpoints(slice_: Obj) -> Iterator[Endpoint]:
        if slice_.get("addressType") not in ("IPv4", "IPv6"):
            return
        ports = tuple(
            PortInfo(p.get("name") or "", p.get("protocol") or "TCP", int(p["port"]))
            for p in slice_.get("ports") or []
            if p.get("port") is not None
        )
        for ep in slice_.get("endpoints") or []:
            if not _ready(ep):
                continue
            for address in ep.get("addresses") or []:
                yield Endpoint(address, ep.get("hostname") or None, ports)
