"""The ``local`` provider's *address pool* load balancers (MetalLB's layer-2 mode).

With ``--lb-address-pool`` the cloud controller manager gives each LoadBalancer Service
an address of its own from the configured ranges (``192.0.2.200-192.0.2.220``, or a
CIDR; IPv6 ones too), instead of the nodes' addresses, one of each of the Service's
``ipFamilies`` that the pool has (MetalLB's: a RequireDualStack Service needs both):

* ``spec.loadBalancerIP`` asks for one address: granted if it is in a pool and free,
  else the service gets ``SyncLoadBalancerFailed`` naming why (as MetalLB refuses it);
* an address once given stays with the service (it is read back from its status, so a
  restarted controller keeps every assignment) until the service goes;
* services carrying the same :data:`SHARED_IP_ANNOTATION` value (MetalLB's
  ``metallb.universe.tf/allow-shared-ip``) may share one address when none of their
  (port, protocol) pairs collide and they ask for the same traffic policy;
* an exhausted pool is a ``SyncLoadBalancerFailed`` retried with backoff.

The address is written to ``status.loadBalancer.ingress`` with ``ipMode: VIP``, so every
kube-proxy captures it (nat rules to the service's endpoints). Who answers ARP for it on
the nodes' network is the speaker that runs in every node's proxy
(:mod:`pyk8s.proxy.announce`): one node per address, elected among the live speakers,
sends gratuitous ARP when it takes the address over.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable, Iterator, Sequence

from pyk8s.api.dualstack import IPv4, IPv6, family_of
from pyk8s.cloudprovider.provider import (
    JSON,
    CloudProviderError,
    Context,
    Obj,
    StatusLoadBalancer,
)

__all__ = [
    "SHARED_IP_ANNOTATION",
    "AddressPool",
    "AddressPoolLoadBalancer",
    "parse_pools",
]

#: services with the same value may share an address (ports must not collide)
SHARED_IP_ANNOTATION = "pyk8s.io/allow-shared-ip"


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressPool:
    """Address ranges (each of one family), in the order given."""

    def __init__(self, ranges: Sequence[tuple[Address, Address]]):
        self.ranges = list(ranges)

    def __contains__(self, ip: object) -> bool:
        try:
            addr = ipaddress.ip_address(str(ip))
        except ValueError:
            return False
        return any(
            lo.version == addr.version and lo <= addr <= hi  # type: ignore[operator]
            for lo, hi in self.ranges
        )

    def __iter__(self) -> Iterator[str]:
        return self.addresses()

    def addresses(self, family: str | None = None) -> Iterator[str]:
        """The pool's addresses (of ``family``, ``IPv4`` or ``IPv6``), in order."""
        for lo, hi in self.ranges:
            if family is None or family_of(str(lo)) == family:
                for n in range(int(lo), int(hi) + 1):
                    yield str(type(lo)(n))

    def families(self) -> set[str]:
        return {IPv4 if lo.version == 4 else IPv6 for lo, _ in self.ranges}

    def __len__(self) -> int:
        return sum(int(hi) - int(lo) + 1 for lo, hi in self.ranges)


def parse_pools(values: Iterable[str]) -> AddressPool:
    """``--lb-address-pool`` values (repeatable, comma-separated): ``FIRST-LAST`` or a CIDR
    (its network and broadcast addresses left out, as MetalLB's ``avoidBuggyIPs``);
    ValueError naming the bad one."""
    ranges: list[tuple[Address, Address]] = []
    for value in values:
        for item in (v.strip() for v in value.split(",")):
            if not item:
                continue
            try:
                if "/" in item:
                    net = ipaddress.ip_network(item, strict=False)
                    lo, hi = net.network_address, net.broadcast_address
                    if net.version == 4 and net.prefixlen < 31:
                        lo, hi = lo + 1, hi - 1
                else:
                    first, sep, last = item.partition("-")
                    lo = ipaddress.ip_address(first.strip())
                    hi = ipaddress.ip_address(last.strip()) if sep else lo
            except ValueError as err:
                raise ValueError(f"--lb-address-pool {item!r}: {err}") from None
            if hi.version != lo.version:
                raise ValueError(f"--lb-address-pool {item!r}: mixes IPv4 and IPv6")
            if hi < lo:  # type: ignore[operator]
                raise ValueError(f"--lb-address-pool {item!r}: the range is empty")
            ranges.append((lo, hi))
    if not ranges:
        raise ValueError("--lb-address-pool: no address given")
    return AddressPool(ranges)


def _ports(svc: Obj) -> set[tuple[int, str]]:
    return {
        (int(p["port"]), p.get("protocol") or "TCP")
        for p in (svc.get("spec") or {}).get("ports") or []
        if p.get("port")
    }


def _share_key(svc: Obj) -> str | None:
    annotations = (svc.get("metadata") or {}).get("annotations") or {}
    return annotations.get(SHARED_IP_ANNOTATION) or None


def _compatible(a: Obj, b: Obj) -> bool:
    """Whether ``a`` and ``b`` may answer on one address (MetalLB's rules)."""
    key = _share_key(a)
    if key is None or key != _share_key(b) or _ports(a) & _ports(b):
        return False
    policy = [(s.get("spec") or {}).get("externalTrafficPolicy") or "Cluster" for s in (a, b)]
    return policy[0] == policy[1]


class AddressPoolLoadBalancer(StatusLoadBalancer):
    """Assigns pool addresses; the speakers in the nodes' proxies announce them."""

    def __init__(self, context: Context, pool: AddressPool) -> None:
        self.context = context
        self.pool = pool
        #: service UID → (the service as last assigned, its addresses); what this
        #: process gave out and the status may not show yet
        self._given: dict[str, tuple[Obj, tuple[str, ...]]] = {}
        self._lock = asyncio.Lock()

    def _holders(self, uid: str) -> dict[str, list[Obj]]:
        """address → the other live services of ours using it (what this process gave a
        service first: its status may not show it yet)."""
        out: dict[str, list[Obj]] = {}
        current: set[str] = set()
        for svc in self.context.services():
            meta = svc.get("metadata") or {}
            other = str(meta.get("uid"))
            if (
                meta.get("deletionTimestamp")
                or (svc.get("spec") or {}).get("type") != "LoadBalancer"
                or not self.context.owns(svc)
            ):
                continue
            current.add(other)
            if other == uid:
                continue
            given = self._given.get(other)
            for ip in set(given[1]) if given else _status_ips(svc):
                out.setdefault(ip, []).append(svc)
        for gone in set(self._given) - current - {uid}:
            del self._given[gone]  # deleted, or no longer a load balancer of ours
        return out

    def _free(self, service: Obj, ip: str, holders: dict[str, list[Obj]]) -> str | None:
        """Why ``service`` may not have ``ip`` (None: it may)."""
        if ip not in self.pool:
            return f"{ip} is not in the address pool"
        for other in holders.get(ip, []):
            if not _compatible(service, other):
                meta = other["metadata"]
                return f"{ip} is already in use by {meta.get('namespace')}/{meta['name']}"
        return None

    async def ensure_load_balancer(
        self, cluster_name: str, service: Obj, nodes: Sequence[Obj]
    ) -> JSON:
        uid = str((service.get("metadata") or {}).get("uid"))
        wanted = (service.get("spec") or {}).get("loadBalancerIP") or ""
        async with self._lock:
            holders = self._holders(uid)
            ips = self._choose(service, wanted, holders)
            self._given[uid] = (service, ips)
        return {"ingress": [{"ip": ip, "ipMode": "VIP"} for ip in ips]}

    def _choose(self, service: Obj, wanted: str, holders: dict[str, list[Obj]]) -> tuple[str, ...]:
        if wanted:
            why = self._free(service, wanted, holders)
            if why:
                raise CloudProviderError(f"spec.loadBalancerIP {why}")
            return (wanted,)
        spec = service.get("spec") or {}
        families = [str(f) for f in spec.get("ipFamilies") or [IPv4]]
        usable = [f for f in families if f in self.pool.families()]
        if not usable or (spec.get("ipFamilyPolicy") == "RequireDualStack" and usable != families):
            missing = next(f for f in families if f not in usable)
            raise CloudProviderError(f"the address pool has no {missing} addresses")
        given = self._given.get(str((service.get("metadata") or {}).get("uid")))
        kept = list(given[1] if given else ()) + sorted(_status_ips(service))
        return tuple(self._choose_one(service, f, kept, holders) for f in usable)

    def _choose_one(
        self, service: Obj, family: str, kept: list[str], holders: dict[str, list[Obj]]
    ) -> str:
        """The service's address of ``family``: the one it has, a compatible sharer's,
        or the first free one."""
        for ip in kept:
            if family_of(ip) == family and self._free(service, ip, holders) is None:
                return ip
        if _share_key(service):  # join a compatible sharer first
            for ip, others in sorted(holders.items()):
                if family_of(ip) == family and others and self._free(service, ip, holders) is None:
                    return ip
        for ip in self.pool.addresses(family):
            if ip not in holders:
                return ip
        raise CloudProviderError(
            f"no available IP in the address pool ({len(self.pool)} addresses, all in use)"
        )

    async def update_load_balancer(
        self, cluster_name: str, service: Obj, nodes: Sequence[Obj]
    ) -> None:
        await self.ensure_load_balancer(cluster_name, service, nodes)

    async def ensure_load_balancer_deleted(self, cluster_name: str, service: Obj) -> None:
        """The address goes back to the pool (the speakers stop answering for it once the
        status is cleared or the service is gone)."""
        async with self._lock:
            self._given.pop(str((service.get("metadata") or {}).get("uid")), None)


def _status_ips(svc: Obj) -> set[str]:
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return {i["ip"] for i in ingress if i.get("ip")}
