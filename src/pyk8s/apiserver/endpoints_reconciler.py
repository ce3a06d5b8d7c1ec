"""The ``kubernetes`` Service's endpoints with several API servers: upstream's lease
endpoint reconciler (``--endpoint-reconciler-type=lease``).

Why: with two API servers over one store, each writing the ``default/kubernetes``
Endpoints and EndpointSlice with only its own address would flip them back and forth
and hide every server but the last. As upstream does, each server keeps a key
``/masterleases/<ip>`` with a TTL (15 s, refreshed every 10 s) in the shared store, and
writes the Endpoints and EndpointSlice from the set of live keys, only when that set (or
the port) differs from what is there. A server that stops cleanly deletes its key and
reconciles once without itself; one that dies drops out when its key expires, at the
next reconcile of any other server.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from pyk8s.storage import AlreadyExists, NotFound, Store

if TYPE_CHECKING:
    from pyk8s.apiserver.handlers import ResourceHandlers

__all__ = [
    "DEFAULT_LEASE_TTL",
    "DEFAULT_RECONCILE_INTERVAL",
    "LEASE_PREFIX",
    "LeaseEndpointReconciler",
]

log = logging.getLogger(__name__)

LEASE_PREFIX = "/masterleases/"
#: upstream's --endpoint-reconciler TTL and the master endpoint reconcile interval
DEFAULT_LEASE_TTL = 15
DEFAULT_RECONCILE_INTERVAL = 10.0


class LeaseEndpointReconciler:
    """Keeps this server's lease and the ``kubernetes`` endpoints in step with all
    leases."""

    def __init__(
        self,
        store: Store,
        handlers: ResourceHandlers,
        ip: str,
        port: int,
        *,
        ttl: int = DEFAULT_LEASE_TTL,
        interval: float = DEFAULT_RECONCILE_INTERVAL,
        on_tick: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.handlers = handlers
        self.ip = ip
        self.port = port
        self.ttl = ttl
        self.interval = interval
        #: also run at every tick (the server's identity Lease renewal)
        self.on_tick = on_tick
        self._task: asyncio.Task[None] | None = None

    async def _renew(self) -> None:
        key = LEASE_PREFIX + self.ip
        body = orjson.dumps(
            {"apiVersion": "v1", "kind": "Endpoints", "subsets": [{"addresses": [{"ip": self.ip}]}]}
        )
        for _ in range(3):
            try:
                kv = await self.store.get(key)
            except NotFound:
                try:
                    await self.store.create(key, body, ttl=self.ttl)
                    return
                except AlreadyExists:
                    continue
            try:
                await self.store.update(key, body, expected_revision=kv.mod_revision, ttl=self.ttl)
                return
            except NotFound:
                continue

    async def leases(self) -> list[str]:
        """The addresses of the live leases, in address order."""
        result = await self.store.list(LEASE_PREFIX)
        ips = [kv.key.removeprefix(LEASE_PREFIX) for kv in result.kvs]
        return sorted(ips, key=lambda a: ipaddress.ip_address(a).packed)

    async def reconcile(self, *, without_self: bool = False) -> None:
        """Renew this server's lease (or drop it) and rewrite the endpoints when the set
        of addresses changed."""
        if without_self:
            with contextlib.suppress(NotFound):
                await self.store.delete(LEASE_PREFIX + self.ip)
        else:
            await self._renew()
        ips = await self.leases()
        if without_self and not ips:
            return  # the last server leaves the endpoints as they are, as upstream
        await self._write_endpoints(ips)
        await self._write_slice(ips)

    async def _read(self, api_version: str, kind: str) -> dict[str, Any] | None:
        r = self.handlers.registry.for_api_version(api_version, kind)
        assert r is not None
        try:
            current, _ = await self.handlers.rest(r).read("default", "kubernetes")
        except Exception:
            return None
        return current

    async def _write_endpoints(self, ips: list[str]) -> None:
        ports = [{"name": "https", "port": self.port, "protocol": "TCP"}]
        subsets = [{"addresses": [{"ip": ip} for ip in ips], "ports": ports}]
        current = await self._read("v1", "Endpoints")
        if current is not None and current.get("subsets") == subsets:
            return
        await self.handlers.ensure(
            {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {
                    "name": "kubernetes",
                    "namespace": "default",
                    "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
                },
                "subsets": subsets,
            },
            update=True,
        )

    async def _write_slice(self, ips: list[str]) -> None:
        endpoints = [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]
        ports = [{"name": "https", "port": self.port, "protocol": "TCP"}]
        current = await self._read("discovery.k8s.io/v1", "EndpointSlice")
        if (
            current is not None
            and current.get("endpoints") == endpoints
            and current.get("ports") == ports
        ):
            return
        await self.handlers.ensure(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": "kubernetes",
                    "namespace": "default",
                    "labels": {"kubernetes.io/service-name": "kubernetes"},
                },
                "addressType": "IPv6" if ":" in self.ip else "IPv4",
                "endpoints": endpoints,
                "ports": ports,
            },
            update=True,
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="endpoint-reconciler")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.reconcile()
                if self.on_tick is not None:
                    await self.on_tick()
            except Exception:
                log.exception("reconciling the kubernetes endpoints failed")

    async def stop(self, *, remove: bool = True) -> None:
        """Stop renewing; with ``remove`` (a clean shutdown) drop this server from the
        endpoints now rather than when its lease expires."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if remove:
            try:
                await self.reconcile(without_self=True)
            except Exception:
                log.warning("removing this server from the kubernetes endpoints failed")
