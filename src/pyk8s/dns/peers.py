"""Take a dead node's DNS out of ``kube-dns``: every DNS server keeps a Lease, and the
others mark the EndpointSlice of one whose Lease stopped being renewed not ready.

Each node's DNS publishes itself in its own slice, ``kube-system/kube-dns-<node>``, and
marks it not ready on SIGTERM. A server that dies without SIGTERM (kill -9, a powered-off
host) would stay ``ready`` and keep receiving a share of the queries. So, as the kubelet's
node Lease does for the node lifecycle controller, each server renews a Lease
``kube-system/kube-dns-<node>`` every :data:`RENEW_SECONDS`, and every server watches the
others': a Lease that has not changed for :data:`LEASE_SECONDS` (timed with the watcher's
own clock, as the node lifecycle controller does, so clock skew between hosts does not
matter) gets its node's slice marked not ready. Peers only ever take a slice out; a server
puts its own slice back (ready) when it finds it marked down while it runs. A slice whose
Lease has been silent for :data:`DELETE_AFTER_SECONDS` (a removed node) is deleted with
its Lease. On SIGTERM a server deletes its Lease after marking its slice not ready.
Slices of servers that keep no Lease (older versions) are left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import Client, Store, is_already_exists, is_conflict, is_not_found
from pyk8s.client.errors import ClientError

__all__ = ["DELETE_AFTER_SECONDS", "LEASE_SECONDS", "RENEW_SECONDS", "PeerLiveness"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

LEASES: Resource = REGISTRY.get("coordination.k8s.io", "v1", "leases")  # type: ignore[assignment]
SLICES: Resource = REGISTRY.get("discovery.k8s.io", "v1", "endpointslices")  # type: ignore[assignment]
NAMESPACE = "kube-system"
#: the label every DNS server's Lease carries (how the servers list each other's)
LEASE_LABEL = {"app.kubernetes.io/component": "pyk8s-dns"}

#: as the kubelet's node Lease: renewed every 10 s, a node is gone after 40 s of silence
RENEW_SECONDS = 10.0
LEASE_SECONDS = 40.0
#: a Lease silent this long belongs to a removed node: its slice and Lease are deleted
DELETE_AFTER_SECONDS = 3600.0


def lease_name(node: str) -> str:
    return f"kube-dns-{node}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _endpoint_ready(es: Mapping[str, Any]) -> bool | None:
    endpoints = es.get("endpoints") or []
    if not endpoints:
        return None
    return (endpoints[0].get("conditions") or {}).get("ready") is not False


def _node_of(es: Mapping[str, Any]) -> str:
    endpoints = es.get("endpoints") or []
    return str(endpoints[0].get("nodeName") or "") if endpoints else ""


class PeerLiveness:
    """Renews this server's Lease and takes silent peers' slices out (``start``/``stop``).

    ``slices`` is the DNS server's EndpointSlice informer store; ``managed_by`` the label
    value of the per-node slices; ``republish`` puts this server's own slice back ready.
    """

    def __init__(
        self,
        client: Client,
        node: str,
        slices: Store,
        managed_by: str,
        republish: Callable[[], Awaitable[None]],
        *,
        renew: float = RENEW_SECONDS,
        lease_seconds: float = LEASE_SECONDS,
        delete_after: float = DELETE_AFTER_SECONDS,
    ) -> None:
        self.client = client
        self.node = node
        self.slices = slices
        self.managed_by = managed_by
        self.republish = republish
        self.renew = renew
        self.lease_seconds = lease_seconds
        self.delete_after = delete_after
        #: peer node → (the resourceVersion last seen of its Lease, monotonic time it changed)
        self._seen: dict[str, tuple[str, float]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="dns-peer-liveness")

    async def stop(self, *, release: bool = True) -> None:
        """Stop; ``release`` deletes this server's Lease (peers then see it gone)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if release:
            with contextlib.suppress(ClientError, OSError):
                await self.client.delete(LEASES, lease_name(self.node), NAMESPACE)

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except (ClientError, OSError) as err:
                log.warning("kube-dns peer check failed: %s", err)
            await asyncio.sleep(self.renew)

    async def run_once(self) -> None:
        """Renew our Lease, then bring every pyk8s-managed kube-dns slice in line."""
        await self._renew()
        leases = await self.client.list(
            LEASES, NAMESPACE, label_selector=",".join(f"{k}={v}" for k, v in LEASE_LABEL.items())
        )
        now = time.monotonic()
        silent: dict[str, float] = {}
        for lease in leases.get("items") or []:
            node = str((lease.get("spec") or {}).get("holderIdentity") or "")
            if not node or node == self.node:
                continue
            rv = str(lease["metadata"].get("resourceVersion") or "")
            seen = self._seen.get(node)
            if seen is None or seen[0] != rv:
                self._seen[node] = seen = (rv, now)
            silent[node] = now - seen[1]
        for node in set(self._seen) - set(silent):
            del self._seen[node]  # deleted Lease: a clean shutdown, the slice says so
        for es in self.slices.list():
            meta = es.get("metadata") or {}
            labels = meta.get("labels") or {}
            if meta.get("namespace") != NAMESPACE:
                continue
            if labels.get("endpointslice.kubernetes.io/managed-by") != self.managed_by:
                continue
            node = _node_of(es)
            if node == self.node:
                if _endpoint_ready(es) is False:
                    log.info("kube-dns: our endpoint was marked not ready; publishing it again")
                    await self.republish()
                continue
            quiet = silent.get(node)
            if quiet is None or quiet < self.lease_seconds:
                continue
            if quiet >= self.delete_after:
                await self._delete(es, node)
            elif _endpoint_ready(es):
                await self._mark_not_ready(es, node, quiet)

    async def _renew(self) -> None:
        name = lease_name(self.node)
        body: Obj = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": dict(LEASE_LABEL)},
            "spec": {
                "holderIdentity": self.node,
                "leaseDurationSeconds": max(1, round(self.lease_seconds)),
                "renewTime": _now(),
            },
        }
        try:
            current = await self.client.get(LEASES, name, NAMESPACE)
        except ClientError as err:
            if not is_not_found(err):
                raise
            try:
                await self.client.create(LEASES, body, NAMESPACE)
            except ClientError as created:
                if not is_already_exists(created):
                    raise
            return
        current["spec"] = body["spec"]
        try:
            await self.client.update(LEASES, current)
        except ClientError as err:
            if not is_conflict(err):
                raise

    async def _mark_not_ready(self, es: Obj, node: str, quiet: float) -> None:
        new = copy.deepcopy(es)
        for ep in new.get("endpoints") or []:
            conditions = ep.setdefault("conditions", {})
            conditions["ready"] = False
            conditions["serving"] = False
        try:
            await self.client.update(SLICES, new)
        except ClientError as err:
            if is_conflict(err) or is_not_found(err):
                return  # someone else (another peer, the server itself) wrote it first
            raise
        log.warning(
            "kube-dns: the DNS of node %s has not renewed its Lease for %.0fs: not ready",
            node,
            quiet,
        )

    async def _delete(self, es: Obj, node: str) -> None:
        for resource, name in ((SLICES, es["metadata"]["name"]), (LEASES, lease_name(node))):
            try:
                await self.client.delete(resource, name, NAMESPACE)
            except ClientError as err:
                if not is_not_found(err):
                    raise
        self._seen.pop(node, None)
        log.warning("kube-dns: removed the endpoint of node %s (no Lease renewal for long)", node)
