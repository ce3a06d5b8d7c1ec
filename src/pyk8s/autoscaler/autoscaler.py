"""The autoscaling loop (upstream's ``StaticAutoscaler.RunOnce``), every scan interval:

1. **scale-up** — pods the scheduler gave up on (``PodScheduled=False``, reason
   ``Unschedulable``) are first placed, in simulation, on the nodes that exist or are
   coming up (so a scale-up in flight is not repeated); for what is left, each group's
   template node is bin-packed with the pods (the scheduler's filter plugins decide what
   fits), an expander picks one group, and the provider creates the nodes. Pods get
   ``TriggeredScaleUp`` (``pod triggered scale-up: [{big 0->3 (max: 5)}]``) or, when no
   group can help, ``NotTriggerScaleUp`` with the reasons counted over groups.
2. **scale-down** — a group member whose requests stay under the utilization threshold
   for the unneeded time, whose pods may be evicted (PodDisruptionBudgets,
   ``cluster-autoscaler.kubernetes.io/safe-to-evict``, local storage, kube-system pods,
   pods without a controller) and would fit on the other nodes, and that is not annotated
   ``cluster-autoscaler.kubernetes.io/scale-down-disabled: "true"``, is tainted
   ``ToBeDeletedByClusterAutoscaler``, drained through the eviction API and deleted,
   never below the group's minSize.
3. **status** — the ConfigMap ``kube-system/cluster-autoscaler-status`` (YAML, as
   upstream since 1.30) and Prometheus metrics with upstream's names.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import re
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.api.selectors import SelectorError, label_selector_from_dict
from pyk8s.autoscaler.config import GROUP_LABEL, NodeGroup
from pyk8s.autoscaler.provider import NodeProvider
from pyk8s.autoscaler.simulator import Estimate, Simulator, equivalence_key, is_terminal
from pyk8s.client import (
    NORMAL,
    WARNING,
    Client,
    ClientError,
    EventRecorder,
    SharedInformer,
    is_already_exists,
    is_not_found,
    is_too_many_requests,
)
from pyk8s.scheduler.cache import Cache
from pyk8s.scheduler.framework.types import (
    CPU,
    MEMORY,
    Obj,
    pod_key,
    pod_requests,
    resource_list,
)

__all__ = ["Autoscaler", "Options"]

log = logging.getLogger(__name__)

NODES: Resource = REGISTRY.get("", "v1", "nodes")  # type: ignore[assignment]
PODS: Resource = REGISTRY.get("", "v1", "pods")  # type: ignore[assignment]
CONFIGMAPS: Resource = REGISTRY.get("", "v1", "configmaps")  # type: ignore[assignment]
PDBS: Resource = REGISTRY.get("policy", "v1", "poddisruptionbudgets")  # type: ignore[assignment]

STATUS_NAMESPACE = "kube-system"
STATUS_CONFIGMAP = "cluster-autoscaler-status"
PRIORITY_CONFIGMAP = "cluster-autoscaler-priority-expander"
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
SCALE_DOWN_DISABLED = "cluster-autoscaler.kubernetes.io/scale-down-disabled"
TO_BE_DELETED_TAINT = "ToBeDeletedByClusterAutoscaler"
EXPANDERS = ("random", "least-waste", "priority")


@dataclass
class Options:
    scan_interval: float = 10.0
    #: a comma-separated chain; each narrows the options, the last tie is random
    expander: str = "random"
    scale_down_enabled: bool = True
    scale_down_utilization_threshold: float = 0.5
    scale_down_unneeded_time: float = 600.0
    scale_down_delay_after_add: float = 600.0
    #: how long evictions are retried (a PDB answering 429) before the drain is given up
    max_pod_eviction_time: float = 120.0
    max_graceful_termination_sec: int = 600
    status_config_map_name: str = STATUS_CONFIGMAP
    #: nodes created at once
    creation_parallelism: int = 64
    #: upstream's --frequent-loops-enabled: the next loop starts at once after one that
    #: scaled up, and as soon as a pod is marked unschedulable, not only every scan interval
    frequent_loops: bool = False
    rng: random.Random = field(default_factory=random.Random)


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.nodes = Gauge(
            "cluster_autoscaler_nodes_count",
            "Number of nodes in cluster.",
            ["state"],
            registry=registry,
        )
        self.unschedulable = Gauge(
            "cluster_autoscaler_unschedulable_pods_count",
            "Number of unschedulable pods in the cluster.",
            registry=registry,
        )
        self.node_groups = Gauge(
            "cluster_autoscaler_node_groups_count",
            "Number of node groups managed by CA.",
            ["node_group_type"],
            registry=registry,
        )
        self.scaled_up = Counter(
            "cluster_autoscaler_scaled_up_nodes_total",
            "Number of nodes added by CA.",
            registry=registry,
        )
        self.scaled_down = Counter(
            "cluster_autoscaler_scaled_down_nodes_total",
            "Number of nodes removed by CA.",
            ["reason"],
            registry=registry,
        )
        self.unneeded = Gauge(
            "cluster_autoscaler_unneeded_nodes_count",
            "Number of nodes currently considered unneeded by CA.",
            registry=registry,
        )
        self.unremovable = Gauge(
            "cluster_autoscaler_unremovable_nodes_count",
            "Number of nodes currently considered unremovable by CA.",
            ["reason"],
            registry=registry,
        )
        self.last_activity = Gauge(
            "cluster_autoscaler_last_activity",
            "Last time certain part of CA logic executed.",
            ["activity"],
            registry=registry,
        )
        self.errors = Counter(
            "cluster_autoscaler_errors_total",
            "The number of CA loops failed due to an error.",
            ["type"],
            registry=registry,
        )


def _now_text() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _random_suffix(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_lowercase + string.digits, k=5))


def is_unschedulable(pod: Obj) -> bool:
    """Pending, unbound, and marked Unschedulable by the scheduler."""
    if (pod.get("spec") or {}).get("nodeName") or pod["metadata"].get("deletionTimestamp"):
        return False
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled":
            return bool(cond.get("status") == "False" and cond.get("reason") == "Unschedulable")
    return False


def _is_daemonset_pod(pod: Obj) -> bool:
    return any(o.get("kind") == "DaemonSet" for o in pod["metadata"].get("ownerReferences") or [])


def _is_mirror_pod(pod: Obj) -> bool:
    return "kubernetes.io/config.mirror" in (pod["metadata"].get("annotations") or {})


def utilization(info: Any) -> float:
    """Upstream's node utilization: the larger of requested/allocatable for cpu and
    memory."""
    out = 0.0
    for res in (CPU, MEMORY):
        alloc = info.allocatable.get(res, 0)
        if alloc > 0:
            out = max(out, info.requested.get(res, 0) / alloc)
    return out


class Autoscaler:
    def __init__(
        self,
        client: Client,
        groups: list[NodeGroup],
        provider: NodeProvider,
        opts: Options | None = None,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.groups = {g.name: g for g in groups}
        self.provider = provider
        self.opts = opts or Options()
        for name in self.opts.expander.split(","):
            if name not in EXPANDERS:
                raise ValueError(f"unknown expander {name!r}; want one of {', '.join(EXPANDERS)}")
        self.registry = registry or CollectorRegistry()
        self.metrics = _Metrics(self.registry)
        self.metrics.node_groups.labels("autoscaled").set(len(groups))
        self.clock = clock
        self.simulator = Simulator()
        self.recorder = EventRecorder(client, "cluster-autoscaler")
        self.nodes = SharedInformer.for_resource(client, NODES)
        self.pods = SharedInformer.for_resource(client, PODS)
        self.pdbs = SharedInformer.for_resource(client, PDBS)
        #: node name -> group of nodes asked for and not registered yet
        self.creating: dict[str, str] = {}
        #: nodes being drained and deleted
        self.deleting: set[str] = set()
        #: node name -> since when it is unneeded (clock)
        self.unneeded_since: dict[str, float] = {}
        self.last_scale_up = -float("inf")
        self.scale_up_in_progress = False
        self.unremovable: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._synced = False
        self._status_transitions: dict[str, tuple[str, str]] = {}
        #: a pod was marked unschedulable since the last loop began (upstream's pod observer)
        self._unschedulable_seen = asyncio.Event()
        if self.opts.frequent_loops:
            self.pods.add_event_handler(
                on_add=self._observe_pod, on_update=lambda _old, new: self._observe_pod(new)
            )

    # ------------------------------------------------------------------ lifecycle

    def healthy(self) -> bool:
        return self._synced

    async def run(self, stop: asyncio.Event) -> None:
        for inf in (self.nodes, self.pods, self.pdbs):
            inf.start()
        try:
            for inf in (self.nodes, self.pods, self.pdbs):
                await inf.wait_synced()
            self._synced = True
            log.info("cluster autoscaler started", extra={"nodeGroups": list(self.groups)})
            while not stop.is_set():
                started = self.clock()
                self._unschedulable_seen.clear()
                try:
                    await self.run_once()
                except ClientError as err:
                    self.metrics.errors.labels("apiCallError").inc()
                    log.warning("autoscaling loop failed: %s", err)
                await self._wait_for_next_loop(stop, productive=self.last_scale_up >= started)
        finally:
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self.recorder.close()
            for inf in (self.nodes, self.pods, self.pdbs):
                await inf.stop()

    def _observe_pod(self, pod: Obj) -> None:
        if is_unschedulable(pod):
            self._unschedulable_seen.set()

    async def _wait_for_next_loop(self, stop: asyncio.Event, productive: bool) -> None:
        """The scan interval; with frequent loops (upstream's LoopTrigger) no wait after
        a loop that scaled up, and an end to the wait when a pod becomes unschedulable."""
        if self.opts.frequent_loops and productive:
            await asyncio.sleep(0)
            return
        waits = [asyncio.ensure_future(stop.wait())]
        if self.opts.frequent_loops:
            waits.append(asyncio.ensure_future(self._unschedulable_seen.wait()))
        try:
            await asyncio.wait(waits, timeout=self.opts.scan_interval,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        finally:
            for w in waits:
                w.cancel()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ the loop

    def _members(self) -> dict[str, list[Obj]]:
        out: dict[str, list[Obj]] = {g: [] for g in self.groups}
        for node in self.nodes.store.list():
            group = (node["metadata"].get("labels") or {}).get(GROUP_LABEL)
            if group in out:
                out[group].append(node)
        return out

    def group_size(self, group: str, members: dict[str, list[Obj]]) -> int:
        """The group's target size: its registered members (not being deleted) and the
        nodes asked for."""
        registered = [n for n in members[group] if n["metadata"]["name"] not in self.deleting]
        return len(registered) + sum(1 for g in self.creating.values() if g == group)

    async def run_once(self) -> None:
        now = self.clock()
        for name in [n for n in self.creating if self.nodes.store.get(n) is not None]:
            del self.creating[name]
        members = self._members()
        pods = self.pods.store.list()
        pending = [p for p in pods if is_unschedulable(p)]
        self.metrics.unschedulable.set(len(pending))
        self.metrics.last_activity.labels("main").set(time.time())
        scaled_up = False
        #: the cluster with the pending pods that fit somewhere placed there
        cache = self._snapshot(pods)
        if pending:
            scaled_up = await self._scale_up(cache, pending, members)
        self.scale_up_in_progress = bool(self.creating)
        if scaled_up:
            self.last_scale_up = now
            self.unneeded_since.clear()
        elif (
            self.opts.scale_down_enabled
            and not self.creating
            and now - self.last_scale_up >= self.opts.scale_down_delay_after_add
        ):
            self._scale_down(now, cache, members)
        else:
            self.unneeded_since.clear()
        self.metrics.unneeded.set(len(self.unneeded_since))
        self._update_node_metrics()
        await self._write_status(self._members())

    def _update_node_metrics(self) -> None:
        ready = unready = 0
        for node in self.nodes.store.list():
            conds = (node.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds):
                ready += 1
            else:
                unready += 1
        self.metrics.nodes.labels("ready").set(ready)
        self.metrics.nodes.labels("unready").set(unready)
        self.metrics.nodes.labels("notStarted").set(len(self.creating))

    def _snapshot(self, pods: list[Obj]) -> Cache:
        """The cluster as the scheduler would see it once the nodes being created exist
        and the nodes being deleted are gone."""
        nodes = [n for n in self.nodes.store.list() if n["metadata"]["name"] not in self.deleting]
        nodes += [self.groups[g].template_node(name) for name, g in self.creating.items()]
        return self.simulator.snapshot(nodes, pods)

    # ------------------------------------------------------------------ scale-up

    async def _scale_up(
        self, cache: Cache, pending: list[Obj], members: dict[str, list[Obj]]
    ) -> bool:
        """Place what fits in ``cache`` (assumed there: scale-down counts them), then
        scale a group up for the rest."""
        pending = sorted(pending, key=_pod_size, reverse=True)
        still: list[Obj] = []
        hint: str | None = None
        #: equivalence groups that found no place: their other pods will not either
        unplaceable: set[bytes] = set()
        for pod in pending:
            group_key = equivalence_key(pod)
            if group_key is not None and group_key in unplaceable:
                still.append(pod)
                continue
            placed = self.simulator.place(cache, pod, hint)
            if placed is None:
                still.append(pod)
                if group_key is not None:
                    unplaceable.add(group_key)
            else:
                hint = placed
        if not still:
            return False
        self.metrics.last_activity.labels("scaleUp").set(time.time())
        estimates: list[Estimate] = []
        for group in self.groups.values():
            room = group.max_size - self.group_size(group.name, members)
            estimates.append(self.simulator.estimate(group, still, max(room, 0), "new-"))
        options = [e for e in estimates if e.node_count > 0 and e.helped]
        chosen = await self._expand(options) if options else None
        helped_keys: set[str] = set()
        if chosen is not None:
            await self._apply_scale_up(chosen, members)
            helped_keys = {pod_key(p) for p in chosen.helped}
        for pod in still:
            key = pod_key(pod)
            if key in helped_keys:
                continue
            if any(key in {pod_key(p) for p in e.helped} for e in options):
                continue  # another group would help: the next loop takes it
            self.recorder.event(
                pod, NORMAL, "NotTriggerScaleUp", _not_triggered_message(key, estimates)
            )
        return chosen is not None

    async def _apply_scale_up(self, est: Estimate, members: dict[str, list[Obj]]) -> None:
        group = est.group
        current = self.group_size(group.name, members)
        new_size = min(current + est.node_count, group.max_size)
        names = []
        for _ in range(new_size - current):
            name = f"{group.name}-{_random_suffix(self.opts.rng)}"
            while name in self.creating or self.nodes.store.get(name) is not None:
                name = f"{group.name}-{_random_suffix(self.opts.rng)}"
            names.append(name)
            self.creating[name] = group.name
        info = f"[{{{group.name} {current}->{new_size} (max: {group.max_size})}}]"
        log.info(
            "scale-up: setting group %s size to %d instead of %d (max: %d)",
            group.name,
            new_size,
            current,
            group.max_size,
            extra={"nodeGroup": group.name, "pods": len(est.helped)},
        )
        self.metrics.scaled_up.inc(len(names))
        self.recorder.event(
            self._status_ref(),
            NORMAL,
            "ScaledUpGroup",
            f"Scale-up: setting group {group.name} size to {new_size} instead of "
            f"{current} (max: {group.max_size})",
        )
        for pod in est.helped:
            self.recorder.event(pod, NORMAL, "TriggeredScaleUp", f"pod triggered scale-up: {info}")
        sem = asyncio.Semaphore(self.opts.creation_parallelism)

        async def create(name: str) -> None:
            async with sem:
                try:
                    await self.provider.create_node(group, name)
                except Exception as err:
                    log.warning("creating node %s of group %s failed: %s", name, group.name, err)
                    self.creating.pop(name, None)

        for name in names:
            self._spawn(create(name))

    async def _expand(self, options: list[Estimate]) -> Estimate:
        """Upstream's expander chain: each strategy keeps its best options; a random
        pick among what is left."""
        for name in self.opts.expander.split(","):
            if len(options) == 1:
                break
            if name == "least-waste":
                options = _least_waste(options)
            elif name == "priority":
                options = await self._by_priority(options)
        return self.opts.rng.choice(options)

    async def _by_priority(self, options: list[Estimate]) -> list[Estimate]:
        try:
            cm = await self.client.get(CONFIGMAPS, PRIORITY_CONFIGMAP, STATUS_NAMESPACE)
            doc = yaml.safe_load((cm.get("data") or {}).get("priorities") or "") or {}
            priorities = {int(k): [re.compile(str(r)) for r in v] for k, v in doc.items()}
        except (ClientError, yaml.YAMLError, ValueError, TypeError, AttributeError, re.error) as e:
            log.warning("priority expander: cannot read %s: %s", PRIORITY_CONFIGMAP, e)
            return options
        best: list[Estimate] = []
        best_priority: int | None = None
        for opt in options:
            matching = [
                p for p, rs in priorities.items() if any(r.search(opt.group.name) for r in rs)
            ]
            if not matching:
                continue
            p = max(matching)
            if best_priority is None or p > best_priority:
                best, best_priority = [opt], p
            elif p == best_priority:
                best.append(opt)
        return best or options

    # ------------------------------------------------------------------ scale-down

    def _scale_down(self, now: float, cache: Cache, members: dict[str, list[Obj]]) -> None:
        """``cache`` holds pending pods where they would go: a new node the scheduler has
        not filled yet is not empty."""
        pdbs = self.pdbs.store.list()
        pdb_budget = {
            f"{p['metadata'].get('namespace', '')}/{p['metadata']['name']}": int(
                (p.get("status") or {}).get("disruptionsAllowed") or 0
            )
            for p in pdbs
        }
        unremovable: dict[str, str] = {}
        removable_now: dict[str, list[tuple[str, list[Obj]]]] = {g: [] for g in self.groups}
        seen: set[str] = set()
        for group_name, nodes in members.items():
            for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
                name = node["metadata"]["name"]
                if name in self.deleting:
                    continue
                info = cache.nodes.get(name)
                if info is None:
                    continue
                annotations = node["metadata"].get("annotations") or {}
                if annotations.get(SCALE_DOWN_DISABLED) == "true":
                    unremovable[name] = "ScaleDownDisabledAnnotation"
                    continue
                if utilization(info) >= self.opts.scale_down_utilization_threshold:
                    continue
                on_node = list(info.pods.values())
                bound = [p for p in on_node if not cache.is_assumed(pod_key(p))]
                to_move, blocker = _pods_to_move(bound, pdbs, pdb_budget)
                if blocker:
                    unremovable[name] = blocker
                    continue
                assumed = [p for p in on_node if cache.is_assumed(pod_key(p))]
                if not self._replace_pods(cache, node, to_move + assumed):
                    unremovable[name] = "NoPlaceToMovePods"
                    continue
                seen.add(name)
                since = self.unneeded_since.setdefault(name, now)
                if now - since >= self.opts.scale_down_unneeded_time:
                    removable_now[group_name].append((name, to_move))
        for name in list(self.unneeded_since):
            if name not in seen:
                del self.unneeded_since[name]
        self.unremovable = unremovable
        self.metrics.unremovable.clear()
        for reason in set(unremovable.values()):
            self.metrics.unremovable.labels(reason).set(
                sum(1 for r in unremovable.values() if r == reason)
            )
        drained_one = False
        for group_name, candidates in removable_now.items():
            group = self.groups[group_name]
            spare = self.group_size(group_name, members) - group.min_size
            for name, to_move in candidates:
                if spare <= 0:
                    break
                if to_move and drained_one:
                    continue  # non-empty nodes one at a time, as upstream
                drained_one = drained_one or bool(to_move)
                spare -= 1
                self.deleting.add(name)
                self.unneeded_since.pop(name, None)
                self.metrics.last_activity.labels("scaleDown").set(time.time())
                self._spawn(self._remove_node(group, name, to_move))

    def _replace_pods(self, cache: Cache, node: Obj, to_move: list[Obj]) -> bool:
        """Simulate the node gone and its pods re-placed; keep that world if they all
        fit (the next candidate must fit into what is left), else undo."""
        name = node["metadata"]["name"]
        cache.remove_node(name)
        placed: list[Obj] = []
        hint: str | None = None
        for pod in to_move:
            spec = {k: v for k, v in (pod.get("spec") or {}).items() if k != "nodeName"}
            where = self.simulator.place(cache, {**pod, "spec": spec}, hint)
            if where is None:
                for moved in placed:
                    cache.remove_pod(pod_key(moved))
                    cache.add_pod(moved)
                cache.add_node(node)
                return False
            hint = where
            placed.append(pod)
        return True

    async def _remove_node(self, group: NodeGroup, name: str, to_move: list[Obj]) -> None:
        try:
            await self._taint(name, add=True)
            node = self.nodes.store.get(name) or {"kind": "Node", "metadata": {"name": name}}
            self.recorder.event(
                node, NORMAL, "ScaleDown", "marked the node as toBeDeleted/unschedulable"
            )
            if to_move and not await self._drain(node, to_move):
                self.recorder.event(
                    node, WARNING, "ScaleDownFailed", "failed to drain the node, aborting ScaleDown"
                )
                await self._taint(name, add=False)
                return
            reason = "ScaleDown" if to_move else "ScaleDownEmpty"
            what = "node" if to_move else "empty node"
            self.recorder.event(
                self._status_ref(), NORMAL, reason, f"Scale-down: removing {what} {name}"
            )
            await self.provider.delete_node(group, name)
            self.metrics.scaled_down.labels("underutilized" if to_move else "empty").inc()
            log.info("scale-down: removed node %s", name, extra={"nodeGroup": group.name})
        except (ClientError, OSError) as err:
            log.warning("scale-down of node %s failed: %s", name, err)
            with contextlib.suppress(ClientError):
                await self._taint(name, add=False)
        finally:
            self.deleting.discard(name)

    async def _taint(self, name: str, *, add: bool) -> None:
        node = await self.client.get(NODES, name)
        taints = [
            t
            for t in (node.get("spec") or {}).get("taints") or []
            if t.get("key") != TO_BE_DELETED_TAINT
        ]
        if add:
            taints.append(
                {"key": TO_BE_DELETED_TAINT, "value": str(int(time.time())), "effect": "NoSchedule"}
            )
        await self.client.patch(
            NODES,
            name,
            [
                {
                    "op": "test",
                    "path": "/metadata/resourceVersion",
                    "value": node["metadata"]["resourceVersion"],
                },
                {"op": "add", "path": "/spec/taints", "value": taints},
            ],
            patch_type="json",
        )

    async def _drain(self, node: Obj, to_move: list[Obj]) -> bool:
        """Evict every pod (retrying what a PDB refuses) and wait until they are gone."""
        deadline = self.clock() + self.opts.max_pod_eviction_time
        for pod in to_move:
            self.recorder.event(pod, NORMAL, "ScaleDown", "deleting pod for node scale down")
        remaining = list(to_move)
        while remaining:
            retry = []
            for pod in remaining:
                meta = pod["metadata"]
                body = {
                    "apiVersion": "policy/v1",
                    "kind": "Eviction",
                    "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                    "deleteOptions": {
                        "gracePeriodSeconds": min(
                            int((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)),
                            self.opts.max_graceful_termination_sec,
                        )
                    },
                }
                try:
                    await self.client.create_subresource(
                        PODS, meta["name"], "eviction", body, meta["namespace"]
                    )
                except ClientError as err:
                    if is_not_found(err):
                        continue
                    if not is_too_many_requests(err):
                        raise
                    retry.append(pod)
            remaining = retry
            if remaining:
                if self.clock() >= deadline:
                    return False
                await asyncio.sleep(min(5.0, self.opts.scan_interval))
        uids = {p["metadata"].get("uid") for p in to_move}
        wait_until = self.clock() + self.opts.max_graceful_termination_sec + 30
        while self.clock() < wait_until:
            left = [
                p
                for p in self.pods.store.list()
                if p["metadata"].get("uid") in uids and not is_terminal(p)
            ]
            if not left:
                return True
            await asyncio.sleep(0.5)
        return False

    # ------------------------------------------------------------------ status

    def _status_ref(self) -> Obj:
        return {
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "namespace": STATUS_NAMESPACE,
            "name": self.opts.status_config_map_name,
        }

    def _transition(self, key: str, status: str, now: str) -> str:
        old = self._status_transitions.get(key)
        if old is None or old[0] != status:
            self._status_transitions[key] = (status, now)
            return now
        return old[1]

    def _status_document(self, members: dict[str, list[Obj]]) -> Obj:
        now = _now_text()
        all_nodes = self.nodes.store.list()

        def counts(nodes: list[Obj], creating: int) -> Obj:
            ready = sum(
                1
                for n in nodes
                if any(
                    c.get("type") == "Ready" and c.get("status") == "True"
                    for c in (n.get("status") or {}).get("conditions") or []
                )
            )
            return {
                "registered": {
                    "total": len(nodes),
                    "ready": ready,
                    "notStarted": 0,
                    "unready": len(nodes) - ready,
                },
                "longUnregistered": 0,
                "unregistered": creating,
            }

        def activity(key: str, up: bool, candidates: int) -> Obj:
            up_status = "InProgress" if up else "NoActivity"
            down_status = "CandidatesPresent" if candidates else "NoCandidates"
            return {
                "scaleUp": {
                    "status": up_status,
                    "lastProbeTime": now,
                    "lastTransitionTime": self._transition(f"{key}/up", up_status, now),
                },
                "scaleDown": {
                    "status": down_status,
                    **({"candidates": candidates} if candidates else {}),
                    "lastProbeTime": now,
                    "lastTransitionTime": self._transition(f"{key}/down", down_status, now),
                },
            }

        groups = []
        for name, group in self.groups.items():
            creating = sum(1 for g in self.creating.values() if g == name)
            candidates = sum(
                1 for n in members[name] if n["metadata"]["name"] in self.unneeded_since
            )
            groups.append(
                {
                    "name": name,
                    "health": {
                        "status": "Healthy",
                        "nodeCounts": counts(members[name], creating),
                        "cloudProviderTarget": self.group_size(name, members),
                        "minSize": group.min_size,
                        "maxSize": group.max_size,
                        "lastProbeTime": now,
                        "lastTransitionTime": self._transition(f"{name}/health", "Healthy", now),
                    },
                    **activity(name, creating > 0, candidates),
                }
            )
        return {
            "time": now,
            "autoscalerStatus": "Running",
            "clusterWide": {
                "health": {
                    "status": "Healthy",
                    "nodeCounts": counts(all_nodes, len(self.creating)),
                    "lastProbeTime": now,
                    "lastTransitionTime": self._transition("health", "Healthy", now),
                },
                **activity("cluster", bool(self.creating), len(self.unneeded_since)),
            },
            "nodeGroups": groups,
        }

    async def _write_status(self, members: dict[str, list[Obj]]) -> None:
        doc = self._status_document(members)
        body: Obj = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.opts.status_config_map_name,
                "namespace": STATUS_NAMESPACE,
                "annotations": {"cluster-autoscaler.kubernetes.io/last-updated": doc["time"]},
            },
            "data": {"status": yaml.safe_dump(doc, sort_keys=False)},
        }
        try:
            await self.client.update(CONFIGMAPS, body, STATUS_NAMESPACE)
        except ClientError as err:
            if not is_not_found(err):
                raise
            try:
                await self.client.create(CONFIGMAPS, body, STATUS_NAMESPACE)
            except ClientError as err2:
                if not is_already_exists(err2):
                    raise


# ---------------------------------------------------------------------- helpers


def _pod_size(pod: Obj) -> tuple[int, int]:
    req = pod_requests(pod)
    return req.get(CPU, 0), req.get(MEMORY, 0)


def _not_triggered_message(key: str, estimates: list[Estimate]) -> str:
    """``pod didn't trigger scale-up: 1 Insufficient cpu, 1 max node group size
    reached`` — one count per group and reason."""
    counts: dict[str, int] = {}
    for est in estimates:
        if key in est.rejected:
            for reason in est.rejected[key]:
                counts[reason] = counts.get(reason, 0) + 1
        elif key in est.max_reached or not any(pod_key(p) == key for p in est.helped):
            counts["max node group size reached"] = counts.get("max node group size reached", 0) + 1
    return "pod didn't trigger scale-up: " + ", ".join(
        sorted(f"{n} {reason}" for reason, n in counts.items())
    )


def _least_waste(options: list[Estimate]) -> list[Estimate]:
    """The options leaving the least unused cpu+memory (as fractions) on new nodes."""
    scored: list[tuple[float, Estimate]] = []
    for opt in options:
        alloc = resource_list(opt.group.capacity)
        waste = 0.0
        for res in (CPU, MEMORY):
            total = alloc.get(res, 0) * opt.node_count
            if total <= 0:
                continue
            used = sum(pod_requests(p).get(res, 0) for p in opt.helped)
            waste += (total - used) / total
        scored.append((waste, opt))
    best = min(w for w, _ in scored)
    return [o for w, o in scored if abs(w - best) < 1e-9]


def _owned_by_controller(pod: Obj) -> bool:
    return any(o.get("controller") for o in pod["metadata"].get("ownerReferences") or [])


def _has_local_storage(pod: Obj) -> bool:
    return any(
        "emptyDir" in v or "hostPath" in v for v in (pod.get("spec") or {}).get("volumes") or []
    )


def _pods_to_move(
    pods: list[Obj], pdbs: list[Obj], budget: dict[str, int]
) -> tuple[list[Obj], str]:
    """The pods a drain must evict, or the reason (upstream's BlockingPodReason /
    unremovable reason) that forbids draining the node. ``budget`` is spent as pods are
    counted, so two nodes cannot use one PDB's single allowed disruption."""
    to_move: list[Obj] = []
    spent: dict[str, int] = {}
    for pod in pods:
        meta = pod["metadata"]
        if _is_mirror_pod(pod) or _is_daemonset_pod(pod) or is_terminal(pod):
            continue
        annotations = meta.get("annotations") or {}
        safe = annotations.get(SAFE_TO_EVICT)
        if safe == "false":
            return [], "NotSafeToEvictAnnotation"
        matching = []
        for pdb in pdbs:
            if pdb["metadata"].get("namespace") != meta.get("namespace"):
                continue
            try:
                selector = label_selector_from_dict((pdb.get("spec") or {}).get("selector"))
            except SelectorError:
                continue
            if (pdb.get("spec") or {}).get("selector") is not None and selector.matches(
                meta.get("labels") or {}
            ):
                matching.append(f"{meta['namespace']}/{pdb['metadata']['name']}")
        if safe != "true":
            if meta.get("namespace") == "kube-system" and not matching:
                return [], "UnmovableKubeSystemPod"
            if not _owned_by_controller(pod):
                return [], "NotReplicated"
            if _has_local_storage(pod):
                return [], "LocalStorageRequested"
        for key in matching:
            spent[key] = spent.get(key, 0) + 1
            if spent[key] > budget.get(key, 0):
                return [], "NotEnoughPdb"
        to_move.append(pod)
    for key, n in spent.items():
        budget[key] -= n
    return to_move, ""
