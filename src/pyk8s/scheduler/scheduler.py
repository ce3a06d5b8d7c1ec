"""The scheduling loop: pop a pod → filter every node → score the feasible ones → pick
the best (ties broken at random) → assume it there → bind in the background.

A pod no node fits gets upstream's ``PodScheduled=False`` condition (reason
``Unschedulable``, message "0/N nodes are available: …") and a ``FailedScheduling``
Warning event, and waits in the queue for a cluster event; a bound pod gets a
``Scheduled`` event. The cycle itself never awaits, so the cache is its snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from pyk8s.api.registry import REGISTRY
from pyk8s.client import (
    NAMESPACE_INDEX,
    Client,
    ClientError,
    EventRecorder,
    InformerFactory,
    SharedInformer,
    is_not_found,
)
from pyk8s.client.events import NORMAL, WARNING
from pyk8s.client.tracing import SpanExporter
from pyk8s.scheduler.cache import Cache
from pyk8s.scheduler.framework.interface import (
    ClusterEventObserver,
    Code,
    CycleState,
    EnqueueExtensions,
    Status,
    is_success,
)
from pyk8s.scheduler.framework.registry import frameworks_from_config
from pyk8s.scheduler.framework.runtime import Framework, fit_error_message, reason_counts
from pyk8s.scheduler.framework.types import Obj, pod_key
from pyk8s.scheduler.metrics import ERROR, SCHEDULED, UNSCHEDULABLE, SchedulerMetrics
from pyk8s.scheduler.queue import QueuedPodInfo, SchedulingQueue

log = logging.getLogger(__name__)

DEFAULT_SCHEDULER_NAME = "default-scheduler"
PODS = REGISTRY.get("", "v1", "pods")
NODES = REGISTRY.get("", "v1", "nodes")
FLUSH_UNSCHEDULABLE_EVERY = 30.0
LISTED = (
    ("", "v1", "services"),
    ("", "v1", "replicationcontrollers"),
    ("apps", "v1", "replicasets"),
    ("apps", "v1", "statefulsets"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("", "v1", "namespaces"),
    ("", "v1", "persistentvolumeclaims"),
    ("", "v1", "persistentvolumes"),
    ("storage.k8s.io", "v1", "storageclasses"),
    ("storage.k8s.io", "v1", "csinodes"),
)
#: informers whose changes are cluster events plugins register for (upstream's
#: ``ClusterEvent`` resource names)
EVENT_RESOURCES = {
    ("", "persistentvolumeclaims"): "PersistentVolumeClaim",
    ("", "persistentvolumes"): "PersistentVolume",
    ("storage.k8s.io", "storageclasses"): "StorageClass",
    ("storage.k8s.io", "csinodes"): "CSINode",
}


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _conditions(node: Obj) -> list[tuple[Any, ...]]:
    return [
        (c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
        for c in (node.get("status") or {}).get("conditions") or []
    ]


def scheduling_properties_changed(old: Obj, new: Obj) -> bool:
    """Upstream's ``nodeSchedulingPropertiesChange``: an update of a node is a cluster
    event only if it changed what scheduling reads: spec.unschedulable, allocatable,
    labels, taints, annotations, or a condition (not its heartbeat time). A node's
    periodic status post changes none of them, and at 5,000 nodes moving every
    unschedulable pod back on each one kept the queue churning."""
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    old_status, new_status = old.get("status") or {}, new.get("status") or {}
    return (
        bool(old_spec.get("unschedulable")) != bool(new_spec.get("unschedulable"))
        or (old_status.get("allocatable") or old_status.get("capacity"))
        != (new_status.get("allocatable") or new_status.get("capacity"))
        or old_meta.get("labels") != new_meta.get("labels")
        or old_spec.get("taints") != new_spec.get("taints")
        or old_meta.get("annotations") != new_meta.get("annotations")
        or _conditions(old) != _conditions(new)
    )


def _terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


class Scheduler:
    """``await scheduler.run(stop)`` schedules until ``stop`` is set."""

    def __init__(
        self,
        client: Client,
        config: Mapping[str, Any] | None = None,
        *,
        recorder: EventRecorder | None = None,
        rng: random.Random | None = None,
        registry: CollectorRegistry | None = None,
        spans: SpanExporter | None = None,
    ) -> None:
        self.client = client
        self.recorder = recorder or EventRecorder(client, DEFAULT_SCHEDULER_NAME)
        #: spans of each pod's queue wait, cycle and binding (pyk8s trace)
        self.spans = spans or SpanExporter(client, "kube-scheduler")
        self.informers = InformerFactory(client)
        #: what plugins look up (Services and controllers for default spreading, PDBs for
        #: preemption, namespaces for affinity namespaceSelectors), by (group, plural)
        self._listed: dict[tuple[str, str], SharedInformer] = {}
        for group, version, plural in LISTED:
            res = REGISTRY.get(group, version, plural)
            if res is not None:
                self._listed[(group, plural)] = self.informers.informer(res)
        self.profiles: dict[str, Framework] = frameworks_from_config(
            config, client, lister=self._list, recorder=self.recorder
        )
        #: cluster event ("PersistentVolume/Add") -> the plugins registered for it
        self.event_plugins: dict[str, set[str]] = {}
        #: plugins told of every cluster event (VolumeBinding's PreBind waits on them)
        self.event_observers: list[ClusterEventObserver] = []
        for fw in self.profiles.values():
            for p in fw.plugins():
                if isinstance(p, EnqueueExtensions):
                    for event in p.events_to_register():
                        self.event_plugins.setdefault(event, set()).add(p.name)
                if isinstance(p, ClusterEventObserver):
                    self.event_observers.append(p)
        first = next(iter(self.profiles.values()))
        self.cache = Cache()
        self.queue = SchedulingQueue(first.queue_sort)
        self.rng = rng or random.Random()
        self.synced = False
        self._binds: set[asyncio.Task[None]] = set()
        #: upstream's scheduler_* metrics (the component serves ``registry`` on /metrics)
        self.registry = registry or CollectorRegistry()
        self.metrics = SchedulerMetrics(self.registry, self.queue.pending)

    def _list(self, group: str, version: str, plural: str, namespace: str) -> list[Obj]:
        inf = self._listed.get((group, plural))
        if inf is None:
            return []
        if namespace:
            return inf.store.by_index(NAMESPACE_INDEX, namespace)
        return inf.store.list()

    # ---------------------------------------------------------------- events

    def _responsible(self, pod: Obj) -> bool:
        spec = pod.get("spec") or {}
        return (
            spec.get("schedulerName", DEFAULT_SCHEDULER_NAME) in self.profiles
            and not spec.get("nodeName")
            and not (pod.get("metadata") or {}).get("deletionTimestamp")
            and not _terminal(pod)
        )

    def _on_pod(self, pod: Obj) -> None:
        key = pod_key(pod)
        if (pod.get("spec") or {}).get("nodeName"):
            self.cache.nominate(pod, None)
            self.queue.delete(key)
            if _terminal(pod):
                self._on_pod_delete(pod)
            else:
                self.cache.update_pod(pod)
        elif self._responsible(pod):
            self.cache.nominate(pod, (pod.get("status") or {}).get("nominatedNodeName"))
            if not self.cache.is_assumed(key):
                self.queue.add(pod)
        else:
            self.queue.delete(key)

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        self._on_pod(new)

    def _on_pod_delete(self, pod: Obj) -> None:
        key = pod_key(pod)
        self.queue.delete(key)
        self.cache.nominate(pod, None)
        if key in self.cache.pods:
            self.cache.remove_pod(key)
            self.queue.move_all_to_active_or_backoff("AssignedPodDelete")

    def _on_node(self, node: Obj) -> None:
        self.cache.add_node(node)
        self.queue.move_all_to_active_or_backoff("NodeChange")

    def _on_node_update(self, old: Obj, new: Obj) -> None:
        self.cache.add_node(new)
        if scheduling_properties_changed(old, new):
            self.queue.move_all_to_active_or_backoff("NodeChange")

    def _on_node_delete(self, node: Obj) -> None:
        self.cache.remove_node(str(node["metadata"]["name"]))

    def _event_handlers(
        self, kind: str
    ) -> tuple[Callable[[Obj], None], Callable[[Obj, Obj], None], Callable[[Obj], None]]:
        """Informer handlers turning changes of ``kind`` objects into cluster events."""

        def added(_: Obj) -> None:
            self._cluster_event(f"{kind}/Add")

        def updated(_: Obj, __: Obj) -> None:
            self._cluster_event(f"{kind}/Update")

        def deleted(_: Obj) -> None:
            self._cluster_event(f"{kind}/Delete")

        return added, updated, deleted

    def _cluster_event(self, event: str) -> None:
        """Move the unschedulable pods a plugin registered for ``event`` rejected, and tell
        the observing plugins."""
        self.queue.move_all_to_active_or_backoff(event, self.event_plugins.get(event, set()))
        for observer in self.event_observers:
            observer.observe_cluster_event(event)

    # ---------------------------------------------------------------- one cycle

    def schedule_one(self, info: QueuedPodInfo) -> None:
        """One scheduling cycle for a popped pod (synchronous: the cache is the snapshot)."""
        pod = info.pod
        key = info.key
        fw = self.profiles.get((pod.get("spec") or {}).get("schedulerName", DEFAULT_SCHEDULER_NAME))
        if fw is None or not self._responsible(pod) or self.cache.is_assumed(key):
            self.queue.done(key)
            return
        started = time.time()
        outcome: dict[str, Any] = {"nodes": len(self.cache), "attempt": info.attempts}
        try:
            self._cycle(info, fw, outcome)
        finally:
            self._cycle_spans(info, started, outcome)

    def _cycle_spans(self, info: QueuedPodInfo, started: float, outcome: dict[str, Any]) -> None:
        """The pod's wait in the queue and the cycle, as spans of its trace."""
        waited = max(0.0, self.queue.clock() - info.timestamp)
        self.spans.record(info.pod, "scheduler.queue", started - waited, started)
        self.spans.record(info.pod, "scheduler.schedule", started, time.time(), outcome)

    def _cycle(self, info: QueuedPodInfo, fw: Framework, outcome: dict[str, Any]) -> None:
        """Filter, score, reserve and permit; what it found goes into ``outcome``."""
        pod = info.pod
        key = info.key
        state = CycleState()
        num_nodes = len(self.cache)
        pre = fw.run_pre_filter(state, pod, self.cache)
        statuses: Mapping[str, Status] = {}
        if pre is not None and not is_success(pre):
            if pre.code == Code.ERROR:
                self._failed(info, fw, pre.message, error=True)
                return
            message = fit_error_message(num_nodes, {}, pre_filter_msg=pre.message)
            outcome["unschedulable"] = message
            info.unschedulable_plugins = {pre.plugin}
            self._failed(info, fw, message)
            return
        feasible, statuses = fw.find_feasible(state, pod, self.cache)
        outcome["feasibleNodes"] = int(feasible.size)
        # per reason when no node fits (the message needs them anyway); per plugin when
        # one does: explaining thousands of rejected nodes per cycle costs more than the cycle
        outcome["filteredOut"] = (
            reason_counts(statuses) if feasible.size == 0 else statuses.by_plugin()
        )
        if feasible.size == 0:
            info.unschedulable_plugins = {st.plugin for st in statuses.values()}
            if num_nodes == 0:
                self._failed(info, fw, "no nodes available to schedule pods")
                return
            nominated, post = fw.run_post_filter(state, pod, self.cache, statuses)
            message = fit_error_message(
                num_nodes, statuses, post_filter_msg=post.message if post is not None else ""
            )
            if nominated:
                self.cache.nominate(pod, nominated)
            outcome["unschedulable"] = message
            self._failed(info, fw, message, nominated=nominated)
            return
        if feasible.size == 1:
            chosen = int(feasible[0])
        else:
            scores = fw.run_score(state, pod, self.cache, feasible)
            best = np.flatnonzero(scores == scores.max())
            chosen = int(feasible[best[self.rng.randrange(best.size)]])
            outcome["score"] = int(scores.max())
            outcome["tiedNodes"] = int(best.size)
        node_name = self.cache.info(chosen).name
        outcome["node"] = node_name
        self.cache.assume_pod(pod, node_name)
        st = fw.run_reserve(state, pod, node_name)
        if st is None or is_success(st):
            st = fw.run_permit(state, pod, node_name)
        if st is not None and not is_success(st):
            fw.run_unreserve(state, pod, node_name)
            self.cache.forget_pod(pod)
            info.unschedulable_plugins = {st.plugin}
            outcome["unschedulable"] = st.message
            self._failed(info, fw, st.message, error=st.code == Code.ERROR)
            return
        self.queue.done(key)
        task = asyncio.create_task(self._bind(fw, state, info, node_name))
        self._binds.add(task)
        task.add_done_callback(self._binds.discard)

    async def _bind(
        self, fw: Framework, state: CycleState, info: QueuedPodInfo, node_name: str
    ) -> None:
        pod = info.pod
        started = time.time()
        st = await fw.run_pre_bind(state, pod, node_name)
        pre_bind_failed = not is_success(st)
        if not pre_bind_failed:
            st = await fw.run_bind(state, pod, node_name)
        result: dict[str, Any] = {"node": node_name, "bound": st is None or is_success(st)}
        if st is not None and not is_success(st):
            result["error"] = st.message
        self.spans.record(pod, "scheduler.bind", started, time.time(), result)
        meta = pod["metadata"]
        if st is None or is_success(st):
            self._attempted(info, SCHEDULED)
            first = info.initial_attempt or info.attempt_start
            self.metrics.scheduled(info.attempts, self.queue.clock() - first)
            self.recorder.event(
                pod,
                NORMAL,
                "Scheduled",
                f"Successfully assigned {meta['namespace']}/{meta['name']} to {node_name}",
            )
            return
        fw.run_unreserve(state, pod, node_name)
        self.cache.forget_pod(pod)
        log.info("binding %s to %s failed: %s", info.key, node_name, st.message)
        message = st.message if pre_bind_failed else f"Binding rejected: {st.message}"
        self._failed(info, fw, message, error=st.code == Code.ERROR, requeued=False)

    def _attempted(self, info: QueuedPodInfo, result: str) -> None:
        """One attempt of ``info``'s pod ended with ``result`` (metrics)."""
        profile = (info.pod.get("spec") or {}).get("schedulerName", DEFAULT_SCHEDULER_NAME)
        self.metrics.attempt(str(profile), result, self.queue.clock() - info.attempt_start)

    def _failed(
        self,
        info: QueuedPodInfo,
        fw: Framework,
        message: str,
        error: bool = False,
        requeued: bool = True,
        nominated: str | None = None,
    ) -> None:
        pod = info.pod
        self._attempted(info, ERROR if error else UNSCHEDULABLE)
        if requeued:
            self.queue.add_unschedulable(info, error=error)
        else:
            self.queue.retry_later(info)
        self.recorder.event(pod, WARNING, "FailedScheduling", message)
        task = asyncio.create_task(self._set_unschedulable(pod, message, error, nominated))
        self._binds.add(task)
        task.add_done_callback(self._binds.discard)

    async def _set_unschedulable(
        self, pod: Obj, message: str, error: bool, nominated: str | None = None
    ) -> None:
        """PodScheduled=False with the reason and message, and the node preemption
        nominated (``status.nominatedNodeName``); a no-op if already so."""
        assert PODS is not None
        meta = pod["metadata"]
        reason = "SchedulerError" if error else "Unschedulable"
        status = pod.get("status") or {}
        conds = status.get("conditions") or []
        for c in conds if not nominated or status.get("nominatedNodeName") == nominated else []:
            if (
                c.get("type") == "PodScheduled"
                and c.get("status") == "False"
                and c.get("reason") == reason
                and c.get("message") == message
            ):
                return
        cond = {
            "type": "PodScheduled",
            "status": "False",
            "lastProbeTime": None,
            "lastTransitionTime": _now(),
            "reason": reason,
            "message": message,
        }
        patch: dict[str, Any] = {"status": {"conditions": [cond]}}
        if nominated:
            patch["status"]["nominatedNodeName"] = nominated
        try:
            await self.client.patch(
                PODS, meta["name"], patch, meta["namespace"], subresource="status"
            )
        except ClientError as err:
            if not is_not_found(err):
                log.warning("could not update the status of %s: %s", pod_key(pod), err)

    # ---------------------------------------------------------------- running

    async def start(self) -> None:
        assert PODS is not None and NODES is not None
        nodes = self.informers.informer(NODES)
        nodes.add_event_handler(self._on_node, self._on_node_update, self._on_node_delete)
        pods = self.informers.informer(PODS)
        pods.add_event_handler(self._on_pod, self._on_pod_update, self._on_pod_delete)
        for (group, plural), kind in EVENT_RESOURCES.items():
            inf = self._listed.get((group, plural))
            if inf is not None:
                inf.add_event_handler(*self._event_handlers(kind))
        self.informers.start()
        await self.informers.wait_for_sync()
        await nodes.idle()
        await pods.idle()
        self.synced = True

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()

        async def loop() -> None:
            while True:
                info = await self.queue.pop()
                if info is None:
                    return
                try:
                    self.schedule_one(info)
                except Exception:
                    log.exception("scheduling %s failed", info.key)
                    self._attempted(info, ERROR)
                    self.queue.retry_later(info)
                await asyncio.sleep(0)

        worker = asyncio.create_task(loop(), name="scheduler")
        try:
            await stop.wait()
        finally:
            self.queue.close()
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            for t in list(self._binds):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(t, 10)
            await self.informers.stop()
            await self.recorder.close()
            await self.spans.close()
