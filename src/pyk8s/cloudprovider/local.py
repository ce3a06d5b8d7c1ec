"""The ``local`` provider: a cloud made of the cluster's own nodes (k3s's ServiceLB).

Load balancers in *node ports* mode (the default; with ``--lb-address-pool`` the
*address pool* mode of :mod:`pyk8s.cloudprovider.addresspool` instead): a LoadBalancer
Service is answered on the service's own ports at the addresses of every eligible node,
and its ``status.loadBalancer.ingress`` lists those addresses (``ipMode: VIP``): a node's
address of each of the service's ``ipFamilies``, in that order (k3s's ServiceLB), so a
dual-stack Service answers at the nodes' IPv4 and IPv6 addresses and an IPv6-only one at
their IPv6 addresses. The data
plane is kube-proxy, which already runs on every node: it treats each ingress address as
upstream treats a cloud load balancer's IP (nat KUBE-SERVICES ``-d <ip> --dport <port>``
→ KUBE-EXT/KUBE-FW), so a packet reaching <node IP>:<port> is DNATed to the service's
endpoints. Nothing runs per service (k3s starts a ``svclb`` DaemonSet; the proxy rules
make that unnecessary).

A node is eligible for a service when

* the service controller passed it (Ready, not excluded from load balancers), and
* if any node carries :data:`ENABLE_LB_LABEL`, it carries it with ``true`` (k3s's
  ``svccontroller.k3s.cattle.io/enablelb``, with pyk8s's own prefix), and
* no other load balancer of ours already answers on one of the service's
  (port, protocol) pairs at that node's address (first come, first served: the one whose
  status lists the node keeps it, the older one if both do; the loser gets a
  ``PortInUse`` event naming the node and the holder, and takes the node once the holder
  lets it go), and
* nothing else accepts connections on one of the service's TCP ports at that address (a
  host process, a hostPort): probed with one connection attempt per port before the node
  is added (UDP ports cannot be probed so; only addresses on a network this host reaches
  directly, so probes stay on the local network), ``PortInUse`` again, and looked at once
  more on the service controller's next pass, and
* with ``externalTrafficPolicy: Local``, the node has a ready endpoint of the service
  (a cloud load balancer learns this from the health-check NodePort the proxy serves;
  here the EndpointSlices say it directly).

Instances: a node is its own instance (``providerID: pyk8s://<node>``, instance type
``pyk8s``, region and zone ``local``, the addresses its kubelet reports). The local cloud
keeps no inventory, so it never reports an instance gone or shut down.

Routes: none through this seam. The ``local`` provider's routes are the host-gw routes
every ``pyk8s agent`` programs itself (:mod:`pyk8s.network.routes`: each other node's pod
CIDR via that node's InternalIP); :meth:`LocalCloud.routes` returns None, so the route
controller does not run, as upstream does for a provider without routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pyk8s.api.dualstack import IPv4, family_of
from pyk8s.cloudprovider.addresspool import AddressPoolLoadBalancer, parse_pools
from pyk8s.cloudprovider.provider import (
    JSON,
    CloudProviderError,
    Context,
    InstanceMetadata,
    InstancesV2,
    LoadBalancer,
    Obj,
    Routes,
    StatusLoadBalancer,
    Zone,
    Zones,
    register_provider,
)

__all__ = [
    "ENABLE_LB_LABEL",
    "LOAD_BALANCER_CLASS",
    "PROVIDER_ID_PREFIX",
    "LocalCloud",
    "NodePortsLoadBalancer",
    "lb_ports",
    "node_addresses",
    "plan",
]

PROVIDER_NAME = "local"
PROVIDER_ID_PREFIX = "pyk8s://"
#: nodes labelled ``true`` are the only ones answering when any node carries the label
ENABLE_LB_LABEL = "svccontroller.pyk8s.io/enablelb"
#: the spec.loadBalancerClass this provider answers besides none
LOAD_BALANCER_CLASS = "pyk8s.io/servicelb"
REGION = ZONE = "local"
INSTANCE_TYPE = "pyk8s"


def lb_ports(svc: Obj) -> set[tuple[int, str]]:
    """The (port, protocol) pairs a load balancer for ``svc`` answers on."""
    return {
        (int(p["port"]), p.get("protocol") or "TCP")
        for p in (svc.get("spec") or {}).get("ports") or []
        if p.get("port")
    }


def service_families(svc: Obj) -> list[str]:
    """The service's ``ipFamilies`` (IPv4 when the API server left them out)."""
    return list((svc.get("spec") or {}).get("ipFamilies") or [IPv4])


def node_addresses(node: Obj, families: Sequence[str] = (IPv4,)) -> list[str]:
    """The addresses a load balancer answers on at ``node``, one per family of
    ``families`` in that order: the node's ExternalIP of that family if it has one (k3s),
    else its InternalIP of that family."""
    addresses = (node.get("status") or {}).get("addresses") or []
    out: list[str] = []
    for family in families:
        for kind in ("ExternalIP", "InternalIP"):
            ip = next(
                (
                    str(a["address"])
                    for a in addresses
                    if a.get("type") == kind and family_of(a.get("address") or "") == family
                ),
                "",
            )
            if ip:
                out.append(ip)
                break
    return out


def _age_key(svc: Obj) -> tuple[str, str, str]:
    meta = svc.get("metadata") or {}
    return (meta.get("creationTimestamp") or "", meta.get("namespace") or "", meta["name"])


def _ingress_ips(svc: Obj) -> set[str]:
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return {i["ip"] for i in ingress if i.get("ip")}


def _label_enabled(nodes: Sequence[Obj]) -> list[Obj]:
    def label(n: Obj) -> str | None:
        labels: Mapping[str, str] = (n.get("metadata") or {}).get("labels") or {}
        return labels.get(ENABLE_LB_LABEL)

    if any(label(n) is not None for n in nodes):
        return [n for n in nodes if label(n) == "true"]
    return list(nodes)


def plan(
    service: Obj,
    nodes: Sequence[Obj],
    others: Iterable[Obj],
    ready_nodes: set[str] | None,
) -> tuple[list[str], list[tuple[str, str, str]]]:
    """(the addresses ``service`` answers on, sorted; the conflicts as
    (node, "port/PROTO", "namespace/name" of the service holding it)).

    ``others`` are the other load balancers of this provider; ``ready_nodes`` the nodes
    with a ready endpoint when the policy is Local (None: every node)."""
    mine, held, families = lb_ports(service), _ingress_ips(service), service_families(service)
    age = _age_key(service)
    holders: dict[str, list[tuple[Obj, set[tuple[int, str]]]]] = {}
    for other in others:
        if (other.get("metadata") or {}).get("deletionTimestamp"):
            continue
        shared = mine & lb_ports(other)
        if not shared:
            continue
        for ip in _ingress_ips(other):
            # a node stays with the load balancer answering there; when both claim it
            # (created together), with the older one
            if ip not in held or _age_key(other) < age:
                holders.setdefault(ip, []).append((other, shared))
    addresses: list[str] = []
    conflicts: list[tuple[str, str, str]] = []
    for node in _label_enabled(nodes):
        name, ips = node["metadata"]["name"], node_addresses(node, families)
        if not ips or (ready_nodes is not None and name not in ready_nodes):
            continue
        taken = [held_by for ip in ips for held_by in holders.get(ip, ())]
        if taken:
            other, shared = min(taken, key=lambda t: _age_key(t[0]))
            port, proto = min(shared)
            meta = other["metadata"]
            holder = f"load balancer {meta.get('namespace')}/{meta['name']}"
            conflicts.append((name, f"{port}/{proto}", holder))
            continue
        addresses.extend(ips)
    return _by_family(addresses, families), conflicts


def _by_family(addresses: Iterable[str], families: Sequence[str]) -> list[str]:
    """``addresses`` once each, in ``families`` order, each family's sorted (k3s's)."""
    unique = set(addresses)
    return [
        ip
        for family in families
        for ip in sorted((a for a in unique if family_of(a) == family), key=ipaddress.ip_address)
    ]


#: how long a connection attempt to a node's address may take before the port counts free
PROBE_TIMEOUT = 0.5


RTF_REJECT = 0x0200


def on_link(
    ip: str, route_table: str = "/proc/net/route", route6_table: str = "/proc/net/ipv6_route"
) -> bool:
    """Whether ``ip`` is a loopback address or on a network this host reaches without a
    gateway (so a probe never leaves the local network)."""
    try:
        addr = ipaddress.ip_address(ip)
        if addr.version == 6:
            return addr.is_loopback or _on_link6(addr, Path(route6_table).read_text())
        lines = Path(route_table).read_text().splitlines()[1:]
    except (ValueError, OSError):
        return False
    if addr.is_loopback:
        return True
    for line in lines:
        fields = line.split()
        if len(fields) < 8 or fields[2] != "00000000" or int(fields[3], 16) & RTF_REJECT:
            continue  # via a gateway, or an unreachable route
        dest, mask = (int.from_bytes(bytes.fromhex(f), "little") for f in (fields[1], fields[7]))
        if mask and int(addr) & mask == dest:
            return True
    return False


def _on_link6(addr: ipaddress.IPv6Address, table: str) -> bool:
    """``/proc/net/ipv6_route``: a route to a prefix holding ``addr`` with no next hop
    (the default route and unreachable routes do not count)."""
    for line in table.splitlines():
        fields = line.split()
        if len(fields) < 10 or int(fields[4], 16) != 0 or int(fields[8], 16) & RTF_REJECT:
            continue
        length = int(fields[1], 16)
        if length and addr in ipaddress.IPv6Network((int(fields[0], 16), length), strict=False):
            return True
    return False


async def tcp_port_in_use(ip: str, port: int) -> bool:
    """Whether something accepts TCP connections at ``ip:port`` (a refusal or silence:
    free). Used for nodes that do not answer the load balancer yet, so an accepted
    connection is a host process (or a hostPort) holding the port. Only addresses
    :func:`on_link` are probed; any other counts free."""
    if not on_link(ip):
        return False
    try:
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection(ip, port), timeout=PROBE_TIMEOUT
        )
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class NodePortsLoadBalancer(StatusLoadBalancer):
    """The node-ports load balancer; reads other services and EndpointSlices through the
    cloud controller manager's caches (:class:`~pyk8s.cloudprovider.provider.Context`)."""

    def __init__(
        self, context: Context, probe: Callable[[str, int], Awaitable[bool]] = tcp_port_in_use
    ) -> None:
        self.context = context
        self.probe = probe
        #: per service UID, the conflicts already reported (reported again once cleared)
        self._reported: dict[str, set[tuple[str, str, str]]] = {}

    def _ready_nodes(self, service: Obj) -> set[str] | None:
        if (service.get("spec") or {}).get("externalTrafficPolicy") != "Local":
            return None
        meta = service["metadata"]
        out: set[str] = set()
        for sl in self.context.endpoint_slices(meta.get("namespace") or "default", meta["name"]):
            for ep in sl.get("endpoints") or []:
                if (ep.get("conditions") or {}).get("ready") is not False and ep.get("nodeName"):
                    out.add(ep["nodeName"])
        return out

    async def ensure_load_balancer(
        self, cluster_name: str, service: Obj, nodes: Sequence[Obj]
    ) -> JSON:
        uid = str((service.get("metadata") or {}).get("uid"))
        others = [
            s
            for s in self.context.services()
            if (s.get("metadata") or {}).get("uid") != uid
            and (s.get("spec") or {}).get("type") == "LoadBalancer"
            and self.context.owns(s)
        ]
        ready = self._ready_nodes(service)
        addresses, conflicts = plan(service, nodes, others, ready)
        addresses, taken = await self._host_ports_free(service, nodes, addresses)
        conflicts += taken
        seen = self._reported.setdefault(uid, set())
        for conflict in set(conflicts) - seen:
            node, port, holder = conflict
            self.context.report(
                service,
                "PortInUse",
                f"node {node}: port {port} is already answered by {holder}",
            )
        self._reported[uid] = set(conflicts)
        if not addresses and ready is None:
            raise CloudProviderError(
                f"no node can answer on the ports of this service ({len(nodes)} nodes "
                f"eligible, {len(conflicts)} with a port in use)"
            )
        return {"ingress": [{"ip": ip, "ipMode": "VIP"} for ip in addresses]}

    async def _host_ports_free(
        self, service: Obj, nodes: Sequence[Obj], addresses: list[str]
    ) -> tuple[list[str], list[tuple[str, str, str]]]:
        """``addresses`` without the nodes where a TCP port of the service is taken by
        something else; those as conflicts. Nodes already answering for the service are
        not probed (the connection would reach the service itself)."""
        held = _ingress_ips(service)
        families = service_families(service)
        names = {ip: n["metadata"]["name"] for n in nodes for ip in node_addresses(n, families)}
        ports = sorted(p for p, proto in lb_ports(service) if proto == "TCP")
        candidates = [(ip, port) for ip in addresses if ip not in held for port in ports]
        results = await asyncio.gather(*(self.probe(ip, port) for ip, port in candidates))
        busy: dict[str, int] = {}
        for (ip, port), in_use in zip(candidates, results, strict=True):
            if in_use:
                busy.setdefault(ip, port)
        conflicts = [
            (names.get(ip, ip), f"{port}/TCP", f"a process at {ip}") for ip, port in busy.items()
        ]
        return [ip for ip in addresses if ip not in busy], conflicts

    async def update_load_balancer(
        self, cluster_name: str, service: Obj, nodes: Sequence[Obj]
    ) -> None:
        await self.ensure_load_balancer(cluster_name, service, nodes)

    async def ensure_load_balancer_deleted(self, cluster_name: str, service: Obj) -> None:
        """Nothing to tear down: the proxies drop the rules when the status goes."""
        self._reported.pop(str((service.get("metadata") or {}).get("uid")), None)


class LocalInstances:
    async def instance_exists(self, node: Obj) -> bool:
        return True

    async def instance_shutdown(self, node: Obj) -> bool:
        return False

    async def instance_metadata(self, node: Obj) -> InstanceMetadata:
        name = node["metadata"]["name"]
        annotations = (node.get("metadata") or {}).get("annotations") or {}
        provided = annotations.get("alpha.kubernetes.io/provided-node-ip", "")
        addresses = [
            (a["type"], a["address"])
            for a in (node.get("status") or {}).get("addresses") or []
            if a.get("type") and a.get("address")
        ]
        if provided and ("InternalIP", provided) not in addresses:
            addresses.insert(0, ("InternalIP", provided))
        if ("Hostname", name) not in addresses and not any(t == "Hostname" for t, _ in addresses):
            addresses.append(("Hostname", name))
        return InstanceMetadata(
            provider_id=PROVIDER_ID_PREFIX + name,
            instance_type=INSTANCE_TYPE,
            node_addresses=tuple(addresses),
            zone=ZONE,
            region=REGION,
        )


class LocalZones:
    async def get_zone_by_node_name(self, node_name: str) -> Zone:
        return Zone(failure_domain=ZONE, region=REGION)


class LocalCloud:
    """The ``local`` provider; :meth:`initialize` gives it the caches it reads.

    ``address_pools`` (``--lb-address-pool``) selects the address-pool mode
    (:mod:`pyk8s.cloudprovider.addresspool`), node ports otherwise. ``lb_class``
    (``--lb-class``, MetalLB's flag) makes it answer only services of that
    ``spec.loadBalancerClass``, so the two modes can serve one cluster side by side."""

    def __init__(
        self, address_pools: Sequence[str] = (), lb_class: str = "", **_options: Any
    ) -> None:
        self._pool = parse_pools(address_pools) if address_pools else None
        self._lb_class = lb_class
        self._lb: LoadBalancer | None = None
        self._instances = LocalInstances()
        self._zones = LocalZones()

    def initialize(self, context: Context) -> None:
        if self._pool is not None:
            self._lb = AddressPoolLoadBalancer(context, self._pool)
        else:
            self._lb = NodePortsLoadBalancer(context)

    def provider_name(self) -> str:
        return PROVIDER_NAME

    def load_balancer_classes(self) -> frozenset[str]:
        if self._lb_class:
            return frozenset({self._lb_class})
        return frozenset({"", LOAD_BALANCER_CLASS})

    def load_balancer(self) -> LoadBalancer | None:
        return self._lb

    def instances_v2(self) -> InstancesV2 | None:
        return self._instances

    def zones(self) -> Zones | None:
        return self._zones

    def routes(self) -> Routes | None:
        return None


register_provider(PROVIDER_NAME, LocalCloud)
