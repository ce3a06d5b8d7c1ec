"""What the proxy needs from Services and EndpointSlices, read out of raw API objects.

The renderer works on these small frozen records rather than on API dicts so that the
Kubernetes semantics (which ports a Service exposes, which endpoint belongs to which
service port, which endpoints are usable) live in one place and the rule writer only
writes rules. Everything here is pure: no I/O, no clock.

Each reader takes an IP family (4 or 6, as upstream runs one proxier per family): a
dual-stack Service yields one set of service ports per family, each with the cluster IP,
external IPs and load-balancer IPs of that family, and the endpoints come from the
EndpointSlices of the matching ``addressType``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

__all__ = [
    "SERVICE_NAME_LABEL",
    "Endpoint",
    "HealthCheck",
    "ServicePort",
    "b32",
    "categorize",
    "endpoints_by_port",
    "health_checks",
    "load_balancer_ips",
    "memo",
    "port_proto_hash",
    "service_key",
    "service_ports",
    "slice_service_key",
]

Obj = Mapping[str, Any]

#: the label tying an EndpointSlice to its Service
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_AFFINITY_TIMEOUT = 10800
PROTOCOLS = frozenset({"TCP", "UDP", "SCTP"})


def port_proto_hash(*parts: str) -> str:
    """Upstream's chain-name suffix: base32 of the SHA-256 of the concatenated parts, 16
    characters (e.g. ``default/kubernetes:https`` + ``tcp`` → ``NPX46M4PTMTKRN6Y``)."""
    digest = hashlib.sha256("".join(parts).encode()).digest()
    return b32(digest[:10])  # 16 characters encode exactly 10 bytes


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
#: every pair of base32 characters, by the 10 bits they encode
_B32_PAIRS = [a + b for a in _B32 for b in _B32]


def b32(data: bytes) -> str:
    """RFC 4648 base32 of a multiple of 5 bytes (no padding), as ``base64.b32encode``
    without its per-call setup: a proxy names some 11,000 chains per 1,000 services."""
    out = []
    for i in range(0, len(data), 5):
        c = int.from_bytes(data[i : i + 5], "big")
        t = _B32_PAIRS
        out.append(t[c >> 30] + t[(c >> 20) & 1023] + t[(c >> 10) & 1023] + t[c & 1023])
    return "".join(out)


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service: the unit kube-proxy writes a KUBE-SVC chain for."""

    namespace: str
    service: str
    port_name: str
    protocol: str  # upper case, as in the API
    cluster_ip: str
    port: int
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    #: spec.loadBalancerSourceRanges (only with load-balancer IPs)
    source_ranges: tuple[str, ...] = ()
    external_policy_local: bool = False
    internal_policy_local: bool = False
    affinity_seconds: int = 0  # 0: no ClientIP affinity
    #: spec.healthCheckNodePort of a Local-policy load balancer (0: none): the proxy
    #: answers it with the node's local endpoint count and the filter table admits it
    health_check_node_port: int = 0

    @property
    def name(self) -> str:
        """``ns/svc:port`` (``ns/svc`` for an unnamed port), upstream's ServicePortName."""
        base = f"{self.namespace}/{self.service}"
        return f"{base}:{self.port_name}" if self.port_name else base

    @property
    def proto(self) -> str:
        return self.protocol.lower()

    @property
    def hash(self) -> str:
        return port_proto_hash(self.name, self.proto)

    @property
    def externally_accessible(self) -> bool:
        return bool(self.node_port or self.external_ips or self.load_balancer_ips)


@dataclass(frozen=True)
class Endpoint:
    """One usable backend address of one service port."""

    ip: str
    port: int
    local: bool
    ready: bool
    serving: bool
    terminating: bool

    @cached_property
    def address(self) -> str:
        """``ip:port``, ``[ip]:port`` for IPv6 (Go's JoinHostPort, as upstream hashes it)."""
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


def _is_ipv4(ip: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET, ip)  # a dotted quad, each part at most 255
    except (OSError, ValueError):
        return False
    return True


def _is_family(ip: str, family: int) -> bool:
    if family == 4:
        return _is_ipv4(ip)
    if ":" not in ip:
        return False
    try:
        return ipaddress.ip_address(ip).version == 6
    except ValueError:
        return False


def _cidr(text: str, family: int = 4) -> str:
    """A CIDR of ``family`` normalised to its network (``''`` if it is not one)."""
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return ""
    return str(net) if net.version == family else ""


def load_balancer_ips(svc: Obj, family: int = 4) -> tuple[str, ...]:
    """The ``status.loadBalancer.ingress`` addresses of ``family`` the proxy answers for, as a
    load balancer's VIPs: every entry but those with ``ipMode: Proxy`` (the load balancer
    itself delivers those to the nodes, so they are not captured here, as upstream). With
    the ``local`` cloud provider these are the nodes' own addresses: traffic to
    <node IP>:<port> goes through KUBE-EXT to the service's endpoints."""
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return tuple(
        i["ip"]
        for i in ingress
        if _is_family(i.get("ip") or "", family) and i.get("ipMode") != "Proxy"
    )


@dataclass(frozen=True)
class HealthCheck:
    """What the health-check NodePort of one Local-policy load balancer answers."""

    namespace: str
    service: str
    port: int
    local_endpoints: int


def health_checks(
    ports: Iterable[ServicePort], by_port: Mapping[tuple[str, str, str, str], list[Endpoint]]
) -> dict[int, HealthCheck]:
    """health-check node port → its service and this node's usable local endpoints
    (counted once per address over the service's ports, as upstream)."""
    local: dict[tuple[str, str, int], set[str]] = {}
    for sp in ports:
        if not sp.health_check_node_port:
            continue
        key = (sp.namespace, sp.service, sp.health_check_node_port)
        eps = by_port.get((sp.namespace, sp.service, sp.port_name, sp.protocol), [])
        usable = _usable([e for e in eps if e.local])
        local.setdefault(key, set()).update(e.ip for e in usable)
    return {port: HealthCheck(ns, name, port, len(ips)) for (ns, name, port), ips in local.items()}


#: parsed objects by (what, namespace, name, resourceVersion, …): the informers hand the
#: proxy the same unchanged objects on every sync, so each version is parsed once (a sync
#: at 10,000 services re-parses only what changed; objects without a resourceVersion are
#: parsed every time)
PARSE_CACHE_SIZE = 50000
_parsed: dict[Hashable, Any] = {}
V = TypeVar("V")


def _parse_key(what: str, obj: Obj, *extra: str) -> tuple[str, ...] | None:
    meta = obj.get("metadata") or {}
    version = meta.get("resourceVersion")
    if not version:
        return None
    return (what, meta.get("namespace") or "", meta.get("name") or "", str(version), *extra)


def memo(cache: dict[Hashable, Any], key: Hashable | None, make: Callable[[], V], size: int) -> V:
    """``cache[key]``, made by ``make()`` when missing (never kept for a None key); the
    cache is emptied when it reaches ``size`` entries (the proxy's parse and render caches)."""
    if key is None:
        return make()
    try:
        return cache[key]  # type: ignore[no-any-return]
    except KeyError:
        pass
    value = make()
    if len(cache) >= size:
        cache.clear()
    cache[key] = value
    return value


def service_key(svc: Obj) -> str:
    """``namespace/name`` of a Service (the informer store's key): the unit the proxy
    re-renders when it or one of its EndpointSlices changes."""
    meta = svc.get("metadata") or {}
    return _key(meta.get("namespace") or "", meta.get("name") or "")


def slice_service_key(sl: Obj) -> str | None:
    """:func:`service_key` of the Service an EndpointSlice belongs to (None without the
    service-name label)."""
    meta = sl.get("metadata") or {}
    name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return _key(meta.get("namespace") or "", name) if name else None


def _key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


def service_ports(svc: Obj, family: int = 4) -> list[ServicePort]:
    """The service ports of ``svc`` for IP ``family`` (4 or 6); none for headless or
    ExternalName services, or a Service without a cluster IP of that family."""
    key = _parse_key("service", svc, str(family))
    return list(memo(_parsed, key, lambda: tuple(_service_ports(svc, family)), PARSE_CACHE_SIZE))


def _service_ports(svc: Obj, family: int) -> list[ServicePort]:
    meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    ips = [str(ip) for ip in spec.get("clusterIPs") or [spec.get("clusterIP") or ""]]
    cluster_ip = next((ip for ip in ips if _is_family(ip, family)), "")
    if spec.get("type") == "ExternalName" or not cluster_ip:
        return []
    svc_type = spec.get("type") or "ClusterIP"
    lb_ips: tuple[str, ...] = ()
    ranges: tuple[str, ...] = ()
    health_check_port = 0
    if svc_type == "LoadBalancer":
        lb_ips = load_balancer_ips(svc, family)
        ranges = tuple(
            _cidr(r, family) for r in spec.get("loadBalancerSourceRanges") or [] if _cidr(r, family)
        )
        if spec.get("externalTrafficPolicy") == "Local":
            health_check_port = int(spec.get("healthCheckNodePort") or 0)
    external_ips = tuple(ip for ip in spec.get("externalIPs") or [] if _is_family(ip, family))
    affinity = 0
    if spec.get("sessionAffinity") == "ClientIP":
        cfg = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
        affinity = int(cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_TIMEOUT)
    out = []
    for p in spec.get("ports") or []:
        protocol = p.get("protocol") or "TCP"
        if protocol not in PROTOCOLS:
            continue
        node_port = int(p.get("nodePort") or 0) if svc_type in ("NodePort", "LoadBalancer") else 0
        exposed = bool(node_port or external_ips or lb_ips)
        sp = ServicePort(
            namespace=meta.get("namespace") or "default",
            service=meta["name"],
            port_name=p.get("name") or "",
            protocol=protocol,
            cluster_ip=cluster_ip,
            port=int(p["port"]),
            node_port=node_port,
            external_ips=external_ips,
            load_balancer_ips=lb_ips,
            source_ranges=ranges if lb_ips else (),
            external_policy_local=exposed and spec.get("externalTrafficPolicy") == "Local",
            internal_policy_local=spec.get("internalTrafficPolicy") == "Local",
            affinity_seconds=affinity,
            health_check_node_port=health_check_port,
        )
        out.append(sp)
    return out


def endpoints_by_port(
    slices: Iterable[Obj], node_name: str, family: int = 4
) -> dict[tuple[str, str, str, str], list[Endpoint]]:
    """(namespace, service, port name, protocol) → endpoints, merged over the service's
    slices of IP ``family`` and de-duplicated by address, in a stable order.

    The slice's port *names* are the service's port names (the EndpointSlice controller
    resolved each pod's named targetPort into the number), so a named target port may
    reach different numbers on different endpoints."""
    parts: dict[PortKey, list[tuple[Endpoint, ...]]] = {}
    for sl in slices:
        for key, endpoints in _slice_endpoints(sl, node_name, family):
            parts.setdefault(key, []).append(endpoints)
    out: dict[PortKey, list[Endpoint]] = {}
    for key, found in parts.items():
        if len(found) == 1:  # one slice: already de-duplicated and sorted
            out[key] = list(found[0])
            continue
        bucket: dict[str, Endpoint] = {}
        for endpoints in found:
            for endpoint in endpoints:
                bucket.setdefault(endpoint.address, endpoint)
        out[key] = sorted(bucket.values(), key=_sort_key)
    return out


PortKey = tuple[str, str, str, str]


def _slice_endpoints(
    sl: Obj, node_name: str, family: int = 4
) -> tuple[tuple[PortKey, tuple[Endpoint, ...]], ...]:
    """One slice's contribution to :func:`endpoints_by_port` (parsed once per version)."""
    key = _parse_key("slice", sl, node_name, str(family))
    return memo(_parsed, key, lambda: _parse_slice(sl, node_name, family), PARSE_CACHE_SIZE)


def _parse_slice(
    sl: Obj, node_name: str, family: int
) -> tuple[tuple[PortKey, tuple[Endpoint, ...]], ...]:
    meta = sl.get("metadata") or {}
    service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    out: list[tuple[PortKey, tuple[Endpoint, ...]]] = []
    if service and sl.get("addressType") == f"IPv{family}":
        namespace = meta.get("namespace") or "default"
        for port in sl.get("ports") or []:
            if port.get("port") is None:
                continue
            key = (namespace, service, port.get("name") or "", port.get("protocol") or "TCP")
            bucket: dict[str, Endpoint] = {}
            for ep in sl.get("endpoints") or []:
                endpoint = _endpoint(ep, int(port["port"]), node_name, family)
                if endpoint is not None:
                    bucket.setdefault(endpoint.address, endpoint)
            out.append((key, tuple(sorted(bucket.values(), key=_sort_key))))
    return tuple(out)


def _sort_key(ep: Endpoint) -> tuple[bytes, int]:
    """Numeric address order (the packed address), then port."""
    family = socket.AF_INET6 if ":" in ep.ip else socket.AF_INET
    return socket.inet_pton(family, ep.ip), ep.port


def _endpoint(ep: Obj, port: int, node_name: str, family: int = 4) -> Endpoint | None:
    addresses = ep.get("addresses") or []
    if not addresses or not _is_family(addresses[0], family):
        return None
    cond = ep.get("conditions") or {}
    ready = cond.get("ready") is not False  # unset means ready
    serving = cond["serving"] is not False if cond.get("serving") is not None else ready
    terminating = cond.get("terminating") is True
    return Endpoint(
        ip=addresses[0],
        port=port,
        local=bool(node_name) and ep.get("nodeName") == node_name,
        ready=ready,
        serving=serving,
        terminating=terminating,
    )


def _usable(endpoints: list[Endpoint]) -> list[Endpoint]:
    """Ready endpoints; if there are none, the serving-but-terminating ones (upstream's
    rule: terminating endpoints take traffic only when nothing else can)."""
    ready = [e for e in endpoints if e.ready]
    if ready:
        return ready
    return [e for e in endpoints if e.serving and e.terminating]


def categorize(
    sp: ServicePort, endpoints: list[Endpoint]
) -> tuple[list[Endpoint], list[Endpoint], bool]:
    """(cluster endpoints, local endpoints, any usable endpoint anywhere) for ``sp``; a
    list is empty when its policy chain is not used by this service port."""
    uses_cluster = not sp.internal_policy_local or sp.externally_accessible
    uses_local = sp.internal_policy_local or sp.external_policy_local
    cluster = _usable(endpoints) if uses_cluster else []
    local = _usable([e for e in endpoints if e.local]) if uses_local else []
    return cluster, local, bool(_usable(endpoints))
