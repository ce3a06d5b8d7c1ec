"""Service ClusterIP and NodePort allocation with no double allocation.

Each allocated IP or port is one key in the store (``…/serviceips/10.43.0.12``), written
with the store's create, which fails if the key exists. That makes allocation race-free
between concurrent requests and between several API servers on one etcd, and survives
restarts with nothing to rebuild: the store is the bitmap. (Upstream moved to a similar
model in v1.31, one IPAddress object per allocated ClusterIP.)

Like upstream, dynamic allocation prefers the upper part of the range and leaves the
lower band to users who pick an address themselves (kube-dns at .10, say).
"""

from __future__ import annotations

import contextlib
import ipaddress
import random

import orjson

from pyk8s.storage import AlreadyExists, NotFound, Store

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
