"""The kubelet's Node: registration, status true to the host, and the heartbeat Lease.

Upstream splits the heartbeat in two: a ``coordination.k8s.io`` Lease in
``kube-node-lease`` renewed every 10 s (cheap, what the node lifecycle controller
watches) and the Node status, re-read from the host every 10 s but written only when it
changed or every 5 minutes. Both are here; :mod:`.nodestatus` computes the content.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import Client, is_already_exists, is_conflict, is_not_found
from pyk8s.client.errors import ClientError
from pyk8s.kubelet import nodestatus

__all__ = [
    "LEASE_DURATION_SECONDS",
    "NodeAgent",
    "RuntimeHealth",
    "default_host_ip",
    "lease_object",
    "renew_lease",
]

log = logging.getLogger(__name__)

NODES: Resource = REGISTRY.get("", "v1", "nodes")  # type: ignore[assignment]
LEASES: Resource = REGISTRY.get("coordination.k8s.io", "v1", "leases")  # type: ignore[assignment]
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40
RENEW_INTERVAL = 10.0
STATUS_UPDATE_INTERVAL = 10.0
STATUS_REPORT_FREQUENCY = 300.0
#: until the node is first Ready: how often the runtime is asked whether it now is
FAST_STATUS_POLL = 0.1
#: until the node has a pod CIDR, its Node is watched for it: the pause before a failed
#: watch is opened again
CIDR_RETRY = 0.5

Obj = dict[str, Any]


def default_host_ip() -> str:
    """The address this host uses for its default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


@dataclass
class RuntimeHealth:
    """The runtime's own verdicts (from CRI Status), fed into the Ready condition."""

    runtime_ready: bool = True
    network_ready: bool = True
    network_message: str = ""


def _micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class NodeAgent:
    """Registers ``name`` and keeps its status and lease current until stopped."""

    client: Client
    name: str
    data_dir: Path
    host_ip: str
    runtime_version: str
    health: Callable[[], Awaitable[RuntimeHealth]]
    pod_cidr: str | None = None
    #: the other family's InternalIP of a dual-stack node (``--node-ip v4,v6``)
    secondary_ips: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Obj] = field(default_factory=list)
    kubelet_port: int = nodestatus.KUBELET_PORT
    renew_interval: float = RENEW_INTERVAL
    status_interval: float = STATUS_UPDATE_INTERVAL
    #: called with the Node's spec.podCIDRs (comma-separated) whenever known or changed
    on_pod_cidr: Callable[[str], None] = lambda cidr: None

    def __post_init__(self) -> None:
        self.uid = ""
        self.facts = nodestatus.host_facts(data_dir=self.data_dir)
        self.registered = asyncio.Event()
        self._lease_rv = ""
        self._last_status: Obj = {}
        self._last_post = 0.0
        #: the runtime verdict last reported, and whether a report has said Ready yet
        self._reported_health: RuntimeHealth | None = None
        self._was_ready = False
        self._pod_cidr = ""
        self._tasks: list[asyncio.Task[None]] = []

    def _node(self, health: RuntimeHealth) -> Obj:
        obj = nodestatus.node_object(
            self.name, self.facts,
            addresses=[("InternalIP", ip) for ip in (self.host_ip, *self.secondary_ips)],
            pod_cidr=self.pod_cidr, runtime_version=self.runtime_version,
            labels=self.labels, taints=self.taints, kubelet_port=self.kubelet_port,
        )  # fmt: skip
        obj["metadata"]["annotations"] = {
            "node.alpha.kubernetes.io/ttl": "0",
            "volumes.kubernetes.io/controller-managed-attach-detach": "true",
        }
        obj["status"]["conditions"] = nodestatus.node_conditions(
            self.facts, _now(), None, health.runtime_ready, health.network_ready,
            health.network_message,
        )  # fmt: skip
        return obj

    async def start(self) -> None:
        """Register (retrying until the API server answers), then heartbeat in the background."""
        node = await self._register()
        self._tasks = [
            asyncio.create_task(self._lease_loop(), name="node-lease"),
            asyncio.create_task(self._status_loop(), name="node-status"),
        ]
        if not self._pod_cidr:
            rv = str(node["metadata"].get("resourceVersion") or "")
            self._tasks.append(asyncio.create_task(self._watch_pod_cidr(rv), name="node-cidr"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()

    def _seen(self, obj: Obj) -> None:
        self.uid = str(obj["metadata"].get("uid", "")) or self.uid
        spec = obj.get("spec") or {}
        # a dual-stack node's podCIDRs as one comma-separated value (the primary first)
        cidr = ",".join(str(c) for c in spec.get("podCIDRs") or [] if c) or str(
            spec.get("podCIDR") or ""
        )
        if cidr and cidr != self._pod_cidr:
            self._pod_cidr = cidr
            self.on_pod_cidr(cidr)

    async def _register(self) -> Obj:
        while True:
            health = await self.health()
            try:
                body = self._node(health)
                obj = await self.client.create(NODES, body)
                self._reported(health, body["status"]["conditions"])
                log.info("node registered", extra={"node": self.name})
            except ClientError as err:
                if not is_already_exists(err):
                    log.warning("registering node %s failed: %s; retrying", self.name, err)
                    await asyncio.sleep(1.0)
                    continue
                obj = await self._post_status(health, force=True)
            self._seen(obj)
            self.registered.set()
            return obj

    async def _watch_pod_cidr(self, rv: str) -> None:
        """Watch this Node until it has a pod CIDR (the node IPAM controller assigns one
        once it is registered), as upstream's kubelet reads its Node from an informer
        of that one object: the CNI config is written as the CIDR is assigned, and the
        next runtime poll reports the network ready."""
        while not self._pod_cidr:
            try:
                async with self.client.watch(
                    NODES, name=self.name, resource_version=rv or None, timeout_seconds=300
                ) as events:
                    async for etype, obj in events:
                        if etype in ("ADDED", "MODIFIED"):
                            rv = str(obj["metadata"].get("resourceVersion") or rv)
                            self._seen(obj)
                            if self._pod_cidr:
                                return
            except asyncio.CancelledError:
                raise
            except Exception as err:
                # an expired version (410) or a broken watch: read the Node and go on
                # from what it says
                log.debug("node %s: pod CIDR watch ended: %s", self.name, err)
                await asyncio.sleep(CIDR_RETRY)
                with contextlib.suppress(ClientError):
                    node = await self.client.get(NODES, self.name)
                    self._seen(node)
                    rv = str(node["metadata"].get("resourceVersion") or "")

    async def _post_status(self, health: RuntimeHealth, force: bool = False) -> Obj:
        self.facts = await asyncio.to_thread(nodestatus.host_facts, data_dir=self.data_dir)
        current = await self.client.get(NODES, self.name)
        self._seen(current)
        status = self._node(health)["status"]
        previous = (current.get("status") or {}).get("conditions")
        status["conditions"] = nodestatus.node_conditions(
            self.facts, _now(), previous, health.runtime_ready, health.network_ready,
            health.network_message,
        )  # fmt: skip
        digest = {k: v for k, v in status.items() if k != "conditions"}
        digest["conditions"] = [(c["type"], c["status"]) for c in status["conditions"]]
        stale = time.monotonic() - self._last_post > STATUS_REPORT_FREQUENCY
        if not force and not stale and digest == self._last_status:
            self._reported(health, status["conditions"])
            return current
        obj: Obj = await self.client.patch(
            NODES, self.name, {"status": status}, patch_type="merge", subresource="status"
        )
        self._last_status, self._last_post = digest, time.monotonic()
        self._reported(health, status["conditions"])
        return obj

    def _reported(self, health: RuntimeHealth, conditions: list[Obj]) -> None:
        self._reported_health = health
        self._was_ready = self._was_ready or any(
            c["type"] == "Ready" and c["status"] == "True" for c in conditions
        )

    async def _status_loop(self) -> None:
        while True:
            health = await self._next_health()
            try:
                await self._post_status(health)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("node %s: status update failed: %s", self.name, err)

    async def _next_health(self) -> RuntimeHealth:
        """Wait for the next status update and return the runtime's verdict for it.

        Once the node has reported Ready (and has a pod CIDR) this is the regular
        interval. Until then (upstream's kubelet does the same until the first Ready)
        the runtime is asked every :data:`FAST_STATUS_POLL` seconds and a change in its
        verdict (the network becoming ready once the CNI config is written, which
        :meth:`_watch_pod_cidr` does once the node has a pod CIDR) is reported at once,
        not at the next sync."""
        if self._was_ready and self._pod_cidr:
            await asyncio.sleep(self.status_interval)
            return await self.health()
        deadline = time.monotonic() + self.status_interval
        while True:
            await asyncio.sleep(FAST_STATUS_POLL)
            health = await self.health()
            if health != self._reported_health or time.monotonic() >= deadline:
                return health

    async def _lease_loop(self) -> None:
        while True:
            try:
                await self._renew()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                # the version we last wrote is kept: the next update from it succeeds, or
                # conflicts (a timed-out write that landed) and re-reads, as upstream's
                # lease controller updates from its latest lease (a create first would be
                # refused as AlreadyExists, one more request on a server already behind)
                log.warning("node %s: lease renewal failed: %s", self.name, err)
            await asyncio.sleep(self.renew_interval)

    async def _renew(self) -> None:
        self._lease_rv = await renew_lease(self.client, self.name, self.uid, self._lease_rv)


def lease_object(name: str, node_uid: str, rv: str, duration: int = LEASE_DURATION_SECONDS) -> Obj:
    """The node's heartbeat Lease, owned by its Node (so it goes when the Node goes)."""
    meta: Obj = {"name": name, "namespace": LEASE_NAMESPACE}
    if node_uid:
        meta["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}
        ]
    if rv:
        meta["resourceVersion"] = rv
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": meta,
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": duration,
            "renewTime": _micro_now(),
        },
    }


async def renew_lease(
    client: Client, name: str, node_uid: str, rv: str, duration: int = LEASE_DURATION_SECONDS
) -> str:
    """Create or update node ``name``'s Lease (``rv`` = the last one we wrote, "" for
    none); returns the new resourceVersion. Conflicts re-read and retry, up to 3 times
    (an ``rv`` from a renewal that failed is fine: a stale one conflicts and re-reads)."""
    for _ in range(3):
        try:
            body = lease_object(name, node_uid, rv, duration)
            obj = await (client.update(LEASES, body) if rv else client.create(LEASES, body))
            return str(obj["metadata"]["resourceVersion"])
        except ClientError as err:
            if is_conflict(err) or is_already_exists(err):
                cur = await client.get(LEASES, name, LEASE_NAMESPACE)
                rv = str(cur["metadata"]["resourceVersion"])
                continue
            if is_not_found(err):
                rv = ""
                continue
            raise
    return rv
