"""The kubelet: watches the pods bound to its node and keeps the runtime in step.

Composition of the loops upstream runs, each small and level-based:

* the Node and its Lease (:class:`~pyk8s.kubelet.node.NodeAgent`);
* an informer on ``pods`` with ``spec.nodeName=<node>`` feeding a work queue, so one pod
  is never synced by two workers at once, and a pool of workers calling
  :meth:`PodWorker.sync <pyk8s.kubelet.pods.PodWorker.sync>`;
* PLEG: every second the runtime's sandboxes and containers are listed and pods whose
  runtime state changed (a container exited, a sandbox died) are queued;
* housekeeping: sandboxes and containers of pods the API server no longer has are
  removed (this is also how a force-deleted pod's containers go away);
* a Services informer for the containers' service environment variables.

After a restart (even kill -9) nothing is re-created: the first sync of each pod finds its
sandbox and containers by their uid labels and only reports their status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import Client, RateLimitingQueue, SharedInformer, ShutDown
from pyk8s.client.events import EventRecorder
from pyk8s.kubelet import nodestatus
from pyk8s.kubelet.cri import ContainerRuntime, CRIError
from pyk8s.kubelet.csi import PluginWatcher
from pyk8s.kubelet.gc import ContainerGC, ImageGC
from pyk8s.kubelet.node import NodeAgent, RuntimeHealth
from pyk8s.kubelet.pods import NodeInfo, PodWorker
from pyk8s.kubelet.runtimestate import Relister
from pyk8s.kubelet.volumes import CSIPlugin
from pyk8s.kubelet.volumestats import REFRESH_PERIOD, VolumeStats, VolumeStatsCollector

__all__ = ["Kubelet", "KubeletConfig"]

log = logging.getLogger(__name__)

PODS: Resource = REGISTRY.get("", "v1", "pods")  # type: ignore[assignment]
SERVICES: Resource = REGISTRY.get("", "v1", "services")  # type: ignore[assignment]

Obj = dict[str, Any]

RELIST_PERIOD = 1.0
HOUSEKEEPING_PERIOD = 2.0
#: upstream's container GC period (1 min) and image GC period (5 min)
CONTAINER_GC_PERIOD = 60.0
IMAGE_GC_PERIOD = 300.0
VOLUME_STATS_PERIOD = REFRESH_PERIOD


@dataclass
class KubeletConfig:
    node_name: str
    root_dir: Path
    host_ip: str
    log_root: Path = Path("/var/log/pods")
    #: the other family's node address of a dual-stack node (``--node-ip v4,v6``)
    secondary_ips: tuple[str, ...] = ()
    pod_cidr: str | None = None
    cluster_dns: list[str] = field(default_factory=list)
    cluster_domain: str = "cluster.local"
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Obj] = field(default_factory=list)
    workers: int = 8
    #: the port the kubelet's HTTPS server listens on (published in the Node status)
    kubelet_port: int = nodestatus.KUBELET_PORT
    #: the filesystem the runtime keeps images on (image GC thresholds); default root_dir
    image_fs: Path | None = None
    relist_period: float = RELIST_PERIOD
    #: how often volume usage is measured (upstream's volumeStatsAggPeriod)
    volume_stats_period: float = VOLUME_STATS_PERIOD
    #: called with the node's pod CIDR when it becomes known (the agent writes CNI config)
    on_pod_cidr: Callable[[str], None] = lambda cidr: None


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.syncs = Counter("kubelet_pod_syncs", "Pod sync runs", ["result"], registry=registry)
        self.sync_seconds = Histogram(
            "kubelet_pod_worker_duration_seconds", "Duration of one pod sync", registry=registry
        )
        self.relist_seconds = Histogram(
            "kubelet_pleg_relist_duration_seconds", "Duration of a PLEG relist", registry=registry
        )
        self.running_pods = Gauge("kubelet_running_pods", "Pods with a sandbox", registry=registry)


class Kubelet:
    def __init__(
        self,
        client: Client,
        cri: ContainerRuntime,
        config: KubeletConfig,
        registry: CollectorRegistry | None = None,
        probe_registry: CollectorRegistry | None = None,
    ) -> None:
        self.client = client
        self.cri = cri
        self.config = config
        self.registry = registry or CollectorRegistry()
        self.metrics = _Metrics(self.registry)
        self.recorder = EventRecorder(client, "kubelet", config.node_name)
        self.node_info = NodeInfo(
            name=config.node_name,
            host_ip=config.host_ip,
            secondary_ips=config.secondary_ips,
            cluster_dns=list(config.cluster_dns),
            cluster_domain=config.cluster_domain,
        )
        self.queue: RateLimitingQueue[str] = RateLimitingQueue(name="kubelet-pods")
        self.pods = SharedInformer.for_resource(
            client, PODS, field_selector=f"spec.nodeName={config.node_name}"
        )
        self.services = SharedInformer.for_resource(client, SERVICES)
        self.relister = Relister(cri)
        self.worker = PodWorker(
            client, cri, self.recorder, self.node_info, root=config.root_dir,
            log_root=config.log_root, services=self.services.store.list, wake=self._wake_uid,
            probe_registry=probe_registry, pleg=self.relister,
        )  # fmt: skip
        #: CSI drivers register through <root>/plugins_registry (upstream's plugin manager)
        csi = next(p for p in self.worker.volumes.plugins if isinstance(p, CSIPlugin))
        self.plugin_watcher = PluginWatcher(client, config.node_name, config.root_dir, csi)
        #: per-volume usage for /stats/summary and the kubelet_volume_stats_* gauges
        self.volume_stats = VolumeStats()
        self.registry.register(VolumeStatsCollector(self.volume_stats))
        self.container_gc = ContainerGC(cri, log_root=config.log_root)
        self.image_gc = ImageGC(cri, config.image_fs or config.root_dir)
        self.node: NodeAgent | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = False

    # ------------------------------------------------------------------ lifecycle

    def healthy(self) -> bool:
        return self._ready

    async def start(self) -> None:
        version = await self.cri.wait_ready()
        runtime = f"{version.runtime_name}://{version.runtime_version}"
        self.node = NodeAgent(
            self.client, self.config.node_name, self.config.root_dir, self.config.host_ip,
            runtime, self._runtime_health, pod_cidr=self.config.pod_cidr,
            labels=self.config.labels, taints=self.config.taints,
            kubelet_port=self.config.kubelet_port, on_pod_cidr=self.config.on_pod_cidr,
            secondary_ips=self.config.secondary_ips,
        )  # fmt: skip
        await asyncio.to_thread(self.config.root_dir.mkdir, parents=True, exist_ok=True)
        await self.node.start()
        facts = self.node.facts
        self.node_info.machine_memory = facts.memory
        self.node_info.allocatable = nodestatus.allocatable(facts)
        self.pods.add_event_handler(
            on_add=self._pod_event,
            on_update=self._pod_updated,
            on_delete=self._pod_event,
        )
        self.services.start()
        self.pods.start()
        await self.pods.wait_synced()
        await self.services.wait_synced(within=10)
        await self.relister.relist()
        for i in range(self.config.workers):
            self._tasks.append(asyncio.create_task(self._work(), name=f"pod-worker-{i}"))
        self._tasks.append(asyncio.create_task(self._pleg(), name="pleg"))
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))
        self._tasks.append(asyncio.create_task(self._garbage_collection(), name="gc"))
        self._tasks.append(asyncio.create_task(self.plugin_watcher.run(), name="plugin-watcher"))
        self._ready = True
        log.info("kubelet started", extra={"node": self.config.node_name, "runtime": runtime})

    async def stop(self) -> None:
        """Stop the loops; pods keep running (a new kubelet adopts them)."""
        self._ready = False
        self.queue.shutdown()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        await self.worker.shutdown()
        if self.node is not None:
            await self.node.stop()
        await self.pods.stop()
        await self.services.stop()
        await self.recorder.close()

    # ------------------------------------------------------------------ events

    async def _runtime_health(self) -> RuntimeHealth:
        try:
            status = await self.cri.status()
        except CRIError as err:
            return RuntimeHealth(False, False, str(err))
        conds = {c.type: c for c in status.status.conditions}
        runtime, network = conds.get("RuntimeReady"), conds.get("NetworkReady")
        message = ""
        if network is not None and not network.status:
            message = f"reason:{network.reason} message:{network.message}"
        return RuntimeHealth(
            runtime is None or runtime.status, network is None or network.status, message
        )

    def _pod_event(self, pod: Obj) -> None:
        meta = pod["metadata"]
        self.queue.add(f"{meta.get('namespace', '')}/{meta['name']}")

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        """Queue a pod whose spec or metadata changed. A change of its status alone (the
        kubelet's own status writes, mostly) is not synced for, as upstream's pod config
        only reconciles readiness gates then; a pod with gates is synced, for its Ready
        condition."""
        if (
            old.get("spec") == new.get("spec")
            and _meta(old) == _meta(new)
            and not (new.get("spec") or {}).get("readinessGates")
        ):
            return
        self._pod_event(new)

    def _wake_uid(self, uid: str) -> None:
        for pod in self.pods.store.list():
            if pod["metadata"].get("uid") == uid:
                self._pod_event(pod)
                return

    # ------------------------------------------------------------------ loops

    async def _work(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            started = time.monotonic()
            try:
                pod = self.pods.store.get(key)
                delay = await self.worker.sync(pod) if pod is not None else None
            except asyncio.CancelledError:
                raise
            except Exception:
                self.metrics.syncs.labels("error").inc()
                log.exception("syncing pod %s failed", key)
                self.queue.add_rate_limited(key)
            else:
                self.metrics.syncs.labels("success").inc()
                self.queue.forget(key)
                if delay is not None:
                    self.queue.add_after(key, delay)
            finally:
                self.metrics.sync_seconds.observe(time.monotonic() - started)
                self.queue.done(key)

    async def _pleg(self) -> None:
        while True:
            await asyncio.sleep(self.config.relist_period)
            started = time.monotonic()
            try:
                changed = await self.relister.relist()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("PLEG relist failed: %s", err)
                continue
            self.metrics.relist_seconds.observe(time.monotonic() - started)
            for uid in changed:
                self._wake_uid(uid)

    async def _housekeeping(self) -> None:
        measured = 0.0
        while True:
            await asyncio.sleep(HOUSEKEEPING_PERIOD)
            try:
                await self._remove_orphans()
                vols = self.worker.volumes
                if time.monotonic() - measured >= self.config.volume_stats_period:
                    measured = time.monotonic()
                    await self.volume_stats.refresh(vols.mounted, vols.namespaces)
                elif vols.mounted.keys() - self.volume_stats.by_pod.keys():
                    await self.volume_stats.refresh(vols.mounted, vols.namespaces, new_only=True)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("housekeeping failed: %s", err)

    async def _garbage_collection(self) -> None:
        """Dead containers beyond one per pod container, then (less often) unused images."""
        last_image_gc = time.monotonic()
        while True:
            await asyncio.sleep(CONTAINER_GC_PERIOD)
            pods = self.pods.store.list()
            try:
                done = await self.container_gc.collect({str(p["metadata"]["uid"]) for p in pods})
                if done.containers or done.sandboxes:
                    log.info(
                        "garbage collected",
                        extra={"containers": done.containers, "sandboxes": done.sandboxes},
                    )
                if time.monotonic() - last_image_gc >= IMAGE_GC_PERIOD:
                    last_image_gc = time.monotonic()
                    wanted = {
                        c.get("image", "")
                        for p in pods
                        for c in [
                            *(p.get("spec", {}).get("initContainers") or []),
                            *(p.get("spec", {}).get("containers") or []),
                        ]
                    }
                    await self.image_gc.collect(wanted)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("garbage collection failed: %s", err)

    async def _remove_orphans(self) -> None:
        wanted = {str(p["metadata"].get("uid")) for p in self.pods.store.list()}
        known = self.relister.known_uids()
        self.metrics.running_pods.set(len(known & wanted))
        for uid in known - wanted:
            await self.worker.cleanup(uid)
        # volume directories of pods that neither the API server, the runtime nor the pod
        # worker has; the disk is read first and the pods after it (and after the
        # cleanups above, which take a while), so that a pod that arrived since is not
        # taken for an orphan and its volumes torn down while it runs
        vols = self.worker.volumes
        on_disk = await asyncio.to_thread(vols.pod_uids_on_disk)
        active = (
            {str(p["metadata"].get("uid")) for p in self.pods.store.list()}
            | self.relister.known_uids()
            | set(vols.mounted)
        )
        orphans = await asyncio.to_thread(vols.cleanup_orphans, active, on_disk)
        if orphans:
            log.info("orphaned pod volume directories removed", extra={"uids": orphans})


def _meta(pod: Obj) -> Obj:
    """``pod``'s metadata without what every write changes."""
    meta = pod.get("metadata") or {}
    return {k: v for k, v in meta.items() if k not in ("resourceVersion", "managedFields")}
