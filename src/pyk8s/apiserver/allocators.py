"""Service ClusterIP and NodePort allocation with no double allocation.

Each allocated IP or port is one key in the store (``…/serviceips/10.43.0.12``), written
with the store's create, which fails if the key exists. That makes allocation race-free
between concurrent requests and between several API servers on one etcd, and survives
restarts with nothing to rebuild: the store is the bitmap. (Upstream moved to a similar
model in v1.31, one IPAddress object per allocated ClusterIP.)

Like upstream, dynamic allocation prefers the upper part of the range and leaves the
lower band to users who pick an address themselves (kube-dns at .10, say).

Allocation happens before the Service is written and release after it is gone, so a
crash (or a bug) between the two can leave a key that no Service holds. The
:class:`AllocationRepair` loop (upstream's ipallocator and portallocator repair
controllers) finds such keys and releases them, and re-takes the keys of Services that
hold an address with none.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from pyk8s.api.registry import REGISTRY
from pyk8s.storage import AlreadyExists, Conflict, KeyValue, NotFound, Store, next_start

log = logging.getLogger(__name__)

JSON = dict[str, Any]

ALLOC_PREFIX = "/registry/pyk8s.io/allocations/"


def _owner(owner: str) -> bytes:
    return orjson.dumps({"owner": owner})


class RangeFull(Exception):
    pass


class AlreadyAllocated(Exception):
    pass


class OutOfRange(Exception):
    pass


class _KeyAllocator:
    kind = ""

    def __init__(self, store: Store, size: int, static_band: int) -> None:
        self.store = store
        self.size = size
        self.static_band = static_band
        self._rng = random.Random()

    def _item(self, offset: int) -> str:
        raise NotImplementedError

    def _key(self, item: str) -> str:
        return f"{ALLOC_PREFIX}{self.kind}/{item}"

    async def reserve(self, item: str, owner: str) -> None:
        """Take ``item``; AlreadyAllocated if someone has it."""
        try:
            await self.store.create(self._key(item), _owner(owner))
        except AlreadyExists:
            raise AlreadyAllocated(item) from None

    async def allocate(self, owner: str) -> str:
        """Take a free item, upper band first; RangeFull when none is left."""
        upper = list(range(self.static_band, self.size))
        lower = list(range(0, self.static_band))
        for band in (upper, lower):
            # probe a few random slots, then sweep the band from a random start
            start = self._rng.randrange(len(band)) if band else 0
            for i in range(len(band)):
                offset = band[(start + i) % len(band)]
                item = self._item(offset)
                try:
                    await self.store.create(self._key(item), _owner(owner))
                    return item
                except AlreadyExists:
                    continue
        raise RangeFull(self.kind)

    async def release(self, item: str) -> None:
        with contextlib.suppress(NotFound):
            await self.store.delete(self._key(item))


class ClusterIPAllocator(_KeyAllocator):
    kind = "serviceips"

    def __init__(self, store: Store, cidr: str) -> None:
        self.network = ipaddress.ip_network(cidr)
        # usable: skip the network address (and broadcast for IPv4)
        size = self.network.num_addresses - (2 if self.network.version == 4 else 1)
        static_band = min(max(16, size // 16), 256)
        super().__init__(store, size, static_band)

    def _item(self, offset: int) -> str:
        return str(self.network.network_address + 1 + offset)

    def same_family(self, ip: str) -> bool:
        try:
            return ipaddress.ip_address(ip).version == self.network.version
        except ValueError:
            return True  # not an address: every allocator may judge it

    def contains(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return (
            addr in self.network
            and addr != self.network.network_address
            and (self.network.version != 4 or addr != self.network.broadcast_address)
        )

    async def reserve(self, item: str, owner: str) -> None:
        if not self.contains(item):
            raise OutOfRange(item)
        await super().reserve(item, owner)

    def nth(self, n: int) -> str:
        """The n-th address of the range (1: the kubernetes service, 10: kube-dns)."""
        return str(self.network.network_address + n)


class NodePortAllocator(_KeyAllocator):
    kind = "nodeports"

    def __init__(self, store: Store, low: int = 30000, high: int = 32767) -> None:
        self.low, self.high = low, high
        size = high - low + 1
        super().__init__(store, size, min(max(16, size // 32), 128))

    def _item(self, offset: int) -> str:
        return str(self.low + offset)

    async def reserve(self, item: str, owner: str) -> None:
        if not (self.low <= int(item) <= self.high):
            raise OutOfRange(item)
        await super().reserve(item, owner)

    def range_text(self) -> str:
        return f"{self.low}-{self.high}"


# ---------------------------------------------------------------------- repair

#: upstream's repair interval for both allocators (the bootstrap controller's 3 minutes)
REPAIR_INTERVAL = 180.0

#: upstream's numRepairsBeforeLeakCleanup: a key no Service holds is released on the third
#: pass in a row that finds it so; until then it is "flagged". A create allocates before
#: it writes the Service, so a key alone for a moment is normal, not a leak.
REPAIRS_BEFORE_LEAK_CLEANUP = 3

#: list page size (the service list and each allocation prefix)
_PAGE = 1000


@dataclass
class RepairPass:
    """What one repair pass did, as ``(kind, item)`` pairs (``kind``: serviceips or
    nodeports)."""

    #: keys no Service holds, seen so for the first time(s): kept for now
    flagged: list[tuple[str, str]] = field(default_factory=list)
    #: keys released after REPAIRS_BEFORE_LEAK_CLEANUP passes
    released: list[tuple[str, str]] = field(default_factory=list)
    #: items a Service holds that had no key: the key was written again
    repaired: list[tuple[str, str]] = field(default_factory=list)
    #: items held by more than one Service (logged; a user must recreate one)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    #: items a Service holds outside the configured range (logged)
    out_of_range: list[tuple[str, str]] = field(default_factory=list)


def _service_ips(svc: JSON) -> Iterator[str]:
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return
    ips = list(spec.get("clusterIPs") or [])
    if spec.get("clusterIP") and spec["clusterIP"] not in ips:
        ips.insert(0, spec["clusterIP"])
    for ip in ips:
        if ip and ip != "None":
            yield str(ip)


def _service_node_ports(svc: JSON) -> Iterator[str]:
    """Each node port once (the same port for TCP and UDP of one Service is one key), and
    the health-check node port."""
    seen: set[str] = set()
    spec = svc.get("spec") or {}
    ports = [p.get("nodePort") for p in spec.get("ports") or []]
    for np in [*ports, spec.get("healthCheckNodePort")]:
        if np and str(np) not in seen:
            seen.add(str(np))
            yield str(np)


class AllocationRepair:
    """Upstream's ClusterIP and NodePort repair loops, over our one-key-per-item store.

    Every ``interval`` seconds (and once at start) a pass reads, at one store revision,
    the allocation keys of both allocators and every Service, then:

    * a key no Service holds is flagged, and released (at the revision it was seen, so
      a key taken again meanwhile is left alone) once ``leak_passes`` consecutive passes
      have found it unheld; a key held again, or rewritten, starts over;
    * an address or port a Service holds with no key gets its key back ("repairing");
    * an address or port held by two Services, or outside the range, is logged, as
      upstream logs it ("please recreate").
    """

    def __init__(
        self,
        store: Store,
        cluster_ips: ClusterIPAllocator,
        node_ports: NodePortAllocator,
        *,
        interval: float = REPAIR_INTERVAL,
        leak_passes: int = REPAIRS_BEFORE_LEAK_CLEANUP,
        secondary: Sequence[ClusterIPAllocator] = (),
    ) -> None:
        if leak_passes < 1:
            raise ValueError("leak_passes must be at least 1")
        self.store = store
        self.cluster_ips = cluster_ips
        #: the other family's allocator on a dual-stack cluster (its keys share the prefix)
        self.secondary = tuple(secondary)
        self.node_ports = node_ports
        self.interval = interval
        self.leak_passes = leak_passes
        #: (kind, item) -> (consecutive passes found unheld, the key's mod revision)
        self._leaks: dict[tuple[str, str], tuple[int, int]] = {}
        self._task: asyncio.Task[None] | None = None
        services = REGISTRY.get("", "v1", "services")
        assert services is not None
        self._services_prefix = services.key_prefix()

    # ------------------------------------------------------------------ loop

    def start(self) -> None:
        """Run a pass now and then every ``interval`` seconds (``interval <= 0``: never)."""
        if self._task is None and self.interval > 0:
            self._task = asyncio.create_task(self._loop(), name="allocation-repair")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("service allocation repair failed")
            await asyncio.sleep(self.interval)

    # ------------------------------------------------------------------ one pass

    async def run_once(self) -> RepairPass:
        """One pass over both allocators; what it found and did."""
        report = RepairPass()
        revision = await self.store.current_revision()
        services = [
            orjson.loads(kv.value) for kv in await self._list(self._services_prefix, revision)
        ]
        pairs: tuple[tuple[_KeyAllocator, Callable[[JSON], Iterator[str]]], ...] = (
            (self.cluster_ips, _service_ips),
            *((ips, _service_ips) for ips in self.secondary),
            (self.node_ports, _service_node_ports),
        )
        for allocator, items_of in pairs:
            keys = {
                kv.key[len(allocator._key("")) :]: kv
                for kv in await self._list(allocator._key(""), revision)
            }
            if isinstance(allocator, ClusterIPAllocator):
                # both families' keys share one prefix: each allocator repairs its own
                keys = {k: kv for k, kv in keys.items() if allocator.same_family(k)}
            held: dict[str, list[tuple[str, str]]] = {}
            for svc in services:
                meta = svc.get("metadata") or {}
                who = (str(meta.get("name", "")), str(meta.get("namespace", "")))
                for item in items_of(svc):
                    if isinstance(allocator, ClusterIPAllocator) and not allocator.same_family(
                        item
                    ):
                        continue  # the other family's allocator repairs it
                    if not self._in_range(allocator, item):
                        report.out_of_range.append((allocator.kind, item))
                        self._out_of_range(allocator, item, who)
                        continue
                    held.setdefault(item, []).append(who)
            for item, owners in sorted(held.items()):
                self._leaks.pop((allocator.kind, item), None)  # held: not leaked
                for who in owners[1:]:
                    report.duplicates.append((allocator.kind, item))
                    log.error(
                        "the %s %s for service %s/%s was assigned to multiple services; "
                        "please recreate",
                        _noun(allocator),
                        item,
                        *who,
                    )
                if item not in keys:
                    log.error(
                        "the %s %s for service %s/%s is not allocated; repairing",
                        _noun(allocator),
                        item,
                        *owners[0],
                    )
                    name, namespace = owners[0]
                    with contextlib.suppress(AlreadyAllocated):
                        await allocator.reserve(item, f"{namespace}/{name}")
                    report.repaired.append((allocator.kind, item))
            await self._check_leaked(allocator, keys, held, report)
        return report

    async def _check_leaked(
        self,
        allocator: _KeyAllocator,
        keys: dict[str, KeyValue],
        held: dict[str, list[tuple[str, str]]],
        report: RepairPass,
    ) -> None:
        kind = allocator.kind
        for flagged in [k for k in self._leaks if k[0] == kind and k[1] not in keys]:
            del self._leaks[flagged]  # the key went away by itself
        for item, kv in sorted(keys.items()):
            if item in held:
                continue
            seen, revision = self._leaks.get((kind, item), (0, kv.mod_revision))
            if revision != kv.mod_revision:
                seen = 0  # released and taken again since: a new allocation
            seen += 1
            if seen < self.leak_passes:
                if seen == 1:
                    log.warning(
                        "the %s %s may have leaked: flagging for later clean up",
                        _noun(allocator),
                        item,
                    )
                self._leaks[(kind, item)] = (seen, kv.mod_revision)
                report.flagged.append((kind, item))
                continue
            self._leaks.pop((kind, item), None)
            log.warning("the %s %s appears to have leaked: cleaning up", _noun(allocator), item)
            try:
                await self.store.delete(kv.key, expected_revision=kv.mod_revision)
            except (NotFound, Conflict):
                continue  # released or taken again meanwhile: not ours to touch
            report.released.append((kind, item))

    def _in_range(self, allocator: _KeyAllocator, item: str) -> bool:
        if isinstance(allocator, ClusterIPAllocator):
            return allocator.contains(item)
        if isinstance(allocator, NodePortAllocator):
            return item.isdigit() and allocator.low <= int(item) <= allocator.high
        return True

    def _out_of_range(self, allocator: _KeyAllocator, item: str, who: tuple[str, str]) -> None:
        if isinstance(allocator, ClusterIPAllocator):
            try:
                addr = ipaddress.ip_address(item)
            except ValueError:
                log.error(
                    "the cluster IP %s for service %s/%s is not a valid IP; please recreate",
                    item,
                    *who,
                )
                return
            if addr.version != allocator.network.version:
                return  # the other family of a dual-stack Service: not this allocator's
            log.error(
                "the cluster IP %s for service %s/%s is not within the service CIDR %s; "
                "please recreate",
                item,
                *who,
                allocator.network,
            )
        elif isinstance(allocator, NodePortAllocator):
            log.error(
                "the node port %s for service %s/%s is not within the port range %s; "
                "please recreate",
                item,
                *who,
                allocator.range_text(),
            )

    async def _list(self, prefix: str, revision: int) -> list[KeyValue]:
        out: list[KeyValue] = []
        start = ""
        while True:
            page = await self.store.list(prefix, limit=_PAGE, start=start, revision=revision)
            out.extend(page.kvs)
            if not page.more:
                return out
            start = next_start(page)


def _noun(allocator: _KeyAllocator) -> str:
    return "cluster IP" if isinstance(allocator, ClusterIPAllocator) else "node port"
