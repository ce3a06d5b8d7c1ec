"""The scheduler's view of the cluster: nodes, the pods placed on them, and *assumed*
pods — pods we decided to bind but whose binding the informer has not shown us yet.

Assuming is what lets the scheduler place the next pod before the API server answers
for the previous one (upstream's ``schedulerCache.AssumePod``): the pod's requests count
against its node at once; the informer's update later confirms it, a failed bind forgets it.

Besides one :class:`NodeInfo` per node, the numbers plugins compare (allocatable and
requested resources, the pod count) are kept in numpy arrays with one row ("slot") per
node, updated in O(1) per pod, so a filter or score over 5,000 nodes is a few vector ops.

Plugins that count *pods* per node (pod affinity, topology spread) ask for a counter
(:meth:`Cache.counts`): per slot, how many placed pods a predicate picks, built once by
walking the pods and then kept current as pods are counted and un-counted, so a cycle
reads the counts instead of walking every placed pod (upstream walks them every cycle,
in parallel over nodes).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from pyk8s.scheduler.framework.types import (
    CPU,
    EPHEMERAL_STORAGE,
    MEMORY,
    PODS,
    NodeInfo,
    Obj,
    host_ports,
    non_zero_requests,
    pod_key,
    pod_requests,
    resource_list,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Footprint:
    """What a counted pod adds to its node, from the spec parts it was computed from."""

    parts: tuple[Any, Any, Any]  # spec.containers, spec.initContainers, spec.overhead
    requests: dict[str, int]
    non_zero: tuple[int, int]
    ports: list[tuple[str, str, int]]


I64 = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
T = TypeVar("T")
#: what a counter asks of a placed pod: the groups it counts in, with a weight each
Picker = Callable[[Obj], Iterable[tuple[Hashable, int]]]
#: counters kept at once; the least recently read one goes first (a workload's pods
#: share their selectors, so the few in use stay)
MAX_COUNTERS = 64


def _namespace(pod: Obj) -> str:
    return str((pod.get("metadata") or {}).get("namespace") or "")


class _Counter:
    """Per group, per slot: the summed weights of the counted pods ``pick`` puts in the
    group. What each pod added is remembered, so un-counting it asks nothing again."""

    __slots__ = ("added", "groups", "namespaces", "pick", "totals")

    def __init__(self, pick: Picker, namespaces: frozenset[str] | None) -> None:
        self.pick = pick
        #: only pods of these namespaces are asked (None: every pod)
        self.namespaces = namespaces
        self.groups: dict[Hashable, I64] = {}
        self.totals: dict[Hashable, int] = {}
        #: pod key -> (slot, [(group, weight)]) of every pod counted in some group
        self.added: dict[str, tuple[int, list[tuple[Hashable, int]]]] = {}

    def add(self, key: str, pod: Obj, slot: int, size: int) -> None:
        picked = [(g, w) for g, w in self.pick(pod) if w]
        if not picked:
            return
        self.added[key] = (slot, picked)
        for group, weight in picked:
            arr = self.groups.get(group)
            if arr is None:
                arr = self.groups[group] = np.zeros(size, dtype=np.int64)
            arr[slot] += weight
            self.totals[group] = self.totals.get(group, 0) + 1

    def remove(self, key: str) -> None:
        entry = self.added.pop(key, None)
        if entry is None:
            return
        slot, picked = entry
        for group, weight in picked:
            self.groups[group][slot] -= weight
            left = self.totals[group] - 1
            if left:
                self.totals[group] = left
            else:  # no pod left in the group: drop it
                del self.totals[group]
                del self.groups[group]

    def grow(self, size: int) -> None:
        for group, arr in self.groups.items():
            wider = np.zeros(size, dtype=np.int64)
            wider[: arr.shape[0]] = arr
            self.groups[group] = wider


class Cache:
    def __init__(self, capacity: int = 64) -> None:
        self.columns: dict[str, int] = {CPU: 0, MEMORY: 1, EPHEMERAL_STORAGE: 2}
        self.nodes: dict[str, NodeInfo] = {}
        self.by_slot: list[NodeInfo | None] = []
        self._free: list[int] = []
        cap = capacity
        self.valid = np.zeros(cap, dtype=np.bool_)
        self.allocatable: I64 = np.zeros((cap, 3), dtype=np.int64)
        self.requested: I64 = np.zeros((cap, 3), dtype=np.int64)
        #: (cpu, memory) with 100m/200Mi for containers that request nothing: for scoring
        self.non_zero: I64 = np.zeros((cap, 2), dtype=np.int64)
        self.pod_count: I64 = np.zeros(cap, dtype=np.int64)
        self.allowed_pods: I64 = np.zeros(cap, dtype=np.int64)
        #: nodes with a NoSchedule/NoExecute taint, a PreferNoSchedule taint, cordoned
        self.hard_tainted = np.zeros(cap, dtype=np.bool_)
        self.soft_tainted = np.zeros(cap, dtype=np.bool_)
        self.cordoned = np.zeros(cap, dtype=np.bool_)
        #: per slot: the value of ``clock`` when its resources (allocatable, requested)
        #: last changed; see :meth:`per_node`
        self.changed: I64 = np.zeros(cap, dtype=np.int64)
        self.clock = 0
        self._per_node: OrderedDict[Hashable, tuple[int, I64]] = OrderedDict()
        #: pod key -> (node name, pod) of every pod counted on a node
        self.pods: dict[str, tuple[str, Obj]] = {}
        #: pods assumed by us whose binding is not yet observed
        self.assumed: set[str] = set()
        #: pods seen bound to nodes we do not know (yet): counted when the node appears
        self._orphans: dict[str, dict[str, Obj]] = {}
        #: namespace -> pod key -> (node name, pod): what spread and affinity count
        self.by_namespace: dict[str, dict[str, tuple[str, Obj]]] = {}
        #: pod key -> (node name, pod) of pods with pod affinity or anti-affinity
        self.affinity_pods: dict[str, tuple[str, Obj]] = {}
        #: node name -> pod key -> pending pod nominated there by preemption: the space
        #: is held for it against pods of lower priority (upstream's nominator)
        self.nominated: dict[str, dict[str, Obj]] = {}
        self._nominated_at: dict[str, str] = {}
        #: image name -> node name -> size in bytes (ImageLocality)
        self.image_nodes: dict[str, dict[str, int]] = {}
        #: topology key -> (per slot: the id of the node's value of that label, -1 for
        #: none; value -> id), built on first use and kept up to date, so a plugin judges
        #: "nodes in these domains" with one vector op (see :meth:`domains`)
        self._domains: dict[str, tuple[npt.NDArray[np.int32], dict[str, int]]] = {}
        #: pod key -> what it was counted with: a pod's every update (bound, Running, …)
        #: is un-counted and counted again, and parsing its quantities each time cost more
        #: than the rest of the update
        self._footprints: dict[str, _Footprint] = {}
        #: pod key -> name -> what a plugin derived from the pod's (immutable) spec, such
        #: as parsed affinity terms: computed once per pod, as upstream's PodInfo
        #: (kept per uid: a pod deleted and created again under its name is a new pod)
        self._derived: dict[str, tuple[str, dict[str, Any]]] = {}
        #: key -> per-slot pod counts a plugin asked for (:meth:`counts`)
        self._counters: OrderedDict[Hashable, _Counter] = OrderedDict()

    # ---------------------------------------------------------------- columns

    def column(self, resource: str) -> int:
        """The array column of a resource, adding one for a new extended resource."""
        col = self.columns.get(resource)
        if col is None:
            col = len(self.columns)
            self.columns[resource] = col
            pad = np.zeros((self.allocatable.shape[0], 1), dtype=np.int64)
            self.allocatable = np.hstack([self.allocatable, pad])
            self.requested = np.hstack([self.requested, pad.copy()])
        return col

    def _grow(self) -> None:
        old = self.valid.shape[0]
        new = old * 2

        def grow(a: Any) -> Any:
            shape = (new, *a.shape[1:])
            out = np.zeros(shape, dtype=a.dtype)
            out[:old] = a
            return out

        self.valid = grow(self.valid)
        self.allocatable = grow(self.allocatable)
        self.requested = grow(self.requested)
        self.non_zero = grow(self.non_zero)
        self.pod_count = grow(self.pod_count)
        self.allowed_pods = grow(self.allowed_pods)
        self.hard_tainted = grow(self.hard_tainted)
        self.soft_tainted = grow(self.soft_tainted)
        self.cordoned = grow(self.cordoned)
        self.changed = grow(self.changed)
        for key, (ids, index) in self._domains.items():
            wider = np.full(new, -1, dtype=np.int32)
            wider[:old] = ids
            self._domains[key] = (wider, index)
        for counter in self._counters.values():
            counter.grow(new)
        self._free.extend(range(new - 1, old - 1, -1))

    # ---------------------------------------------------------------- nodes

    def __len__(self) -> int:
        return len(self.nodes)

    def node_infos(self) -> Iterator[NodeInfo]:
        return iter(self.nodes.values())

    def add_node(self, node: Obj) -> NodeInfo:
        name = str(node["metadata"]["name"])
        info = self.nodes.get(name)
        if info is None:
            if not self._free:
                if len(self.by_slot) < self.valid.shape[0]:
                    self._free.append(len(self.by_slot))
                else:
                    self._grow()
            slot = self._free.pop()
            while len(self.by_slot) <= slot:
                self.by_slot.append(None)
            info = NodeInfo(node=node, slot=slot)
            self.nodes[name] = info
            self.by_slot[slot] = info
            self.valid[slot] = True
            self.requested[slot] = 0
            self.non_zero[slot] = 0
            self.pod_count[slot] = 0
            for pod in self._orphans.pop(name, {}).values():
                self._count(info, pod, +1)
        info.node = node
        status = node.get("status") or {}
        alloc = resource_list(status.get("allocatable") or status.get("capacity"))
        info.allocatable = alloc
        self.allocatable[info.slot] = 0
        for res, amount in alloc.items():
            if res == PODS:
                continue
            col = self.column(res)  # first: a new column replaces the arrays
            self.allocatable[info.slot, col] = amount
        self.allowed_pods[info.slot] = alloc.get(PODS, 0)
        self._touch(info.slot)
        effects = {t.get("effect") for t in info.taints}
        self.hard_tainted[info.slot] = bool(effects & {"NoSchedule", "NoExecute"})
        self.soft_tainted[info.slot] = "PreferNoSchedule" in effects
        self.cordoned[info.slot] = bool((node.get("spec") or {}).get("unschedulable"))
        labels = (node.get("metadata") or {}).get("labels") or {}
        for key, (ids, index) in self._domains.items():
            value = labels.get(key)
            ids[info.slot] = -1 if value is None else index.setdefault(value, len(index))
        for img_name in info.images:
            self.image_nodes.get(img_name, {}).pop(name, None)
        info.images = set()
        for img in status.get("images") or []:
            size = int(img.get("sizeBytes") or 0)
            for img_name in img.get("names") or []:
                info.images.add(img_name)
                self.image_nodes.setdefault(img_name, {})[name] = size
        return info

    def remove_node(self, name: str) -> None:
        info = self.nodes.pop(name, None)
        if info is None:
            return
        self.valid[info.slot] = False
        self.by_slot[info.slot] = None
        for ids, _index in self._domains.values():
            ids[info.slot] = -1
        for img_name in info.images:
            self.image_nodes.get(img_name, {}).pop(name, None)
        for counter in self._counters.values():
            for key in info.pods:
                counter.remove(key)
        self._free.append(info.slot)
        # its pods stay known: if the node comes back they count again
        self._orphans[name] = dict(info.pods)

    # ---------------------------------------------------------------- pods

    def _footprint(self, key: str, pod: Obj) -> _Footprint:
        """``pod``'s footprint, reused while its containers and overhead are unchanged."""
        spec = pod.get("spec") or {}
        parts = (spec.get("containers"), spec.get("initContainers"), spec.get("overhead"))
        fp = self._footprints.get(key)
        if fp is None or fp.parts != parts:
            fp = _Footprint(parts, pod_requests(pod), non_zero_requests(pod), host_ports(pod))
            self._footprints[key] = fp
        return fp

    def _count(self, info: NodeInfo, pod: Obj, sign: int) -> None:
        key = pod_key(pod)
        if sign > 0:
            info.pods[key] = pod
        else:
            info.pods.pop(key, None)
        # un-counting takes away exactly what counting added
        fp = self._footprints.get(key) if sign < 0 else None
        if fp is None:
            fp = self._footprint(key, pod)
        self._count_footprint(info, fp, sign)
        if self._counters:
            ns = _namespace(pod)
            size = self.valid.shape[0]
            for counter in self._counters.values():
                if sign < 0:
                    counter.remove(key)
                elif counter.namespaces is None or ns in counter.namespaces:
                    counter.add(key, pod, info.slot, size)

    def _count_footprint(self, info: NodeInfo, fp: _Footprint, sign: int) -> None:
        for res, amount in fp.requests.items():
            info.requested[res] = info.requested.get(res, 0) + sign * amount
            col = self.column(res)  # first: a new column replaces the arrays
            self.requested[info.slot, col] += sign * amount
        cpu, mem = fp.non_zero
        self.non_zero[info.slot, 0] += sign * cpu
        self.non_zero[info.slot, 1] += sign * mem
        self.pod_count[info.slot] += sign
        self._touch(info.slot)
        for port in fp.ports:
            n = info.used_ports.get(port, 0) + sign
            if n > 0:
                info.used_ports[port] = n
            else:
                info.used_ports.pop(port, None)

    def _refresh(self, key: str, old: Obj, pod: Obj) -> bool:
        """An update of a pod counted on a node it stays on, with what counters and
        plugins derive from unchanged (labels, affinity, being deleted): the stored object
        is replaced, and its requests re-counted only if its containers changed. False if
        the pod must be un-counted and counted again."""
        old_meta, meta = old.get("metadata") or {}, pod.get("metadata") or {}
        if (
            old_meta.get("labels") != meta.get("labels")
            or bool(old_meta.get("deletionTimestamp")) != bool(meta.get("deletionTimestamp"))
            or old_meta.get("uid") != meta.get("uid")
            or (old.get("spec") or {}).get("affinity") != (pod.get("spec") or {}).get("affinity")
        ):
            return False
        node_name = str((pod.get("spec") or {}).get("nodeName") or "")
        info = self.nodes[node_name]
        before = self._footprints.get(key)
        after = self._footprint(key, pod)  # the same object while the parts are equal
        if after is not before:
            if before is not None:
                self._count_footprint(info, before, -1)
            self._count_footprint(info, after, +1)
        info.pods[key] = pod
        entry = (node_name, pod)
        self.pods[key] = entry
        self.by_namespace[str(meta.get("namespace") or "")][key] = entry
        if key in self.affinity_pods:
            self.affinity_pods[key] = entry
        self.assumed.discard(key)
        return True

    def add_pod(self, pod: Obj) -> None:
        """A pod bound to a node (observed): counted there; confirms an assumed pod."""
        key = pod_key(pod)
        node_name = str((pod.get("spec") or {}).get("nodeName") or "")
        known = self.pods.get(key)
        if (
            known is not None
            and known[0] == node_name
            and node_name in self.nodes
            and self._refresh(key, known[1], pod)
        ):
            return
        if known is not None:
            derived = self._derived.get(key)
            footprint = self._footprints.get(key)
            self.remove_pod(key)
            if derived is not None:  # the spec parts plugins derive from are immutable
                self._derived[key] = derived
            if footprint is not None:  # checked against the new spec when counted
                self._footprints[key] = footprint
        self.assumed.discard(key)
        self.pods[key] = (node_name, pod)
        ns = str((pod.get("metadata") or {}).get("namespace") or "")
        self.by_namespace.setdefault(ns, {})[key] = (node_name, pod)
        affinity = (pod.get("spec") or {}).get("affinity") or {}
        if affinity.get("podAffinity") or affinity.get("podAntiAffinity"):
            self.affinity_pods[key] = (node_name, pod)
        info = self.nodes.get(node_name)
        if info is None:
            self._orphans.setdefault(node_name, {})[key] = pod
            return
        self._count(info, pod, +1)

    def update_pod(self, pod: Obj) -> None:
        self.add_pod(pod)

    def remove_pod(self, key: str) -> None:
        self.assumed.discard(key)
        self._derived.pop(key, None)
        entry = self.pods.pop(key, None)
        if entry is None:
            return
        node_name, pod = entry
        ns = str((pod.get("metadata") or {}).get("namespace") or "")
        in_ns = self.by_namespace.get(ns)
        if in_ns is not None:
            in_ns.pop(key, None)
            if not in_ns:
                del self.by_namespace[ns]
        self.affinity_pods.pop(key, None)
        info = self.nodes.get(node_name)
        if info is None:
            self._orphans.get(node_name, {}).pop(key, None)
        else:
            self._count(info, pod, -1)
        self._footprints.pop(key, None)

    def assume_pod(self, pod: Obj, node_name: str) -> None:
        """Count ``pod`` on ``node_name`` before the binding is observed."""
        bound = {**pod, "spec": {**(pod.get("spec") or {}), "nodeName": node_name}}
        self.add_pod(bound)
        self.assumed.add(pod_key(pod))

    def forget_pod(self, pod: Obj) -> None:
        """The bind failed: an assumed pod no longer counts."""
        key = pod_key(pod)
        if key in self.assumed:
            self.remove_pod(key)

    def is_assumed(self, key: str) -> bool:
        return key in self.assumed

    def nominate(self, pod: Obj, node_name: str | None) -> None:
        """Record (or with None/"" forget) the node a pending pod is nominated to."""
        key = pod_key(pod)
        old = self._nominated_at.pop(key, None)
        if old is not None:
            at = self.nominated.get(old, {})
            at.pop(key, None)
            if not at:
                self.nominated.pop(old, None)
        if node_name:
            self._nominated_at[key] = node_name
            self.nominated.setdefault(node_name, {})[key] = pod

    def derived(self, key: str, name: str, pod: Obj, compute: Callable[[Obj], T]) -> T:
        """``compute(pod)`` for the placed pod ``key``, computed once while it is placed
        (only for what follows from the immutable parts of a pod's spec)."""
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        entry = self._derived.get(key)
        if entry is None or entry[0] != uid:
            entry = self._derived[key] = (uid, {})
        per = entry[1]
        if name not in per:
            per[name] = compute(pod)
        value: T = per[name]
        return value

    def counts(
        self, key: Hashable, pick: Picker, namespaces: frozenset[str] | None = None
    ) -> dict[Hashable, I64]:
        """Per group, per slot: the summed weights ``pick`` gives the pods counted there
        (only pods of ``namespaces`` are asked; None: all). The counter is built on the
        first call for ``key`` by walking the placed pods, then kept current as pods come
        and go, until :data:`MAX_COUNTERS` others are read more recently. ``pick`` must
        answer the same for a pod as long as its labels, affinity and deletion state do
        (the same ``key``, the same question). Read-only: the arrays are the counter's."""
        counter = self._counters.get(key)
        if counter is not None:
            self._counters.move_to_end(key)
            return counter.groups
        counter = _Counter(pick, namespaces)
        size = self.valid.shape[0]
        if namespaces is None:
            on_nodes: Iterable[NodeInfo] = self.nodes.values()
        else:  # only the nodes holding pods of those namespaces
            names = {n for ns in namespaces for n, _p in (self.by_namespace.get(ns) or {}).values()}
            on_nodes = (self.nodes[n] for n in names if n in self.nodes)
        for info in on_nodes:
            for pod_key_, pod in info.pods.items():
                if namespaces is None or _namespace(pod) in namespaces:
                    counter.add(pod_key_, pod, info.slot, size)
        self._counters[key] = counter
        if len(self._counters) > MAX_COUNTERS:
            self._counters.popitem(last=False)
        return counter.groups

    def count(
        self, key: Hashable, matches: Callable[[Obj], bool], namespaces: frozenset[str] | None
    ) -> I64:
        """Per slot: how many counted pods ``matches`` (see :meth:`counts`)."""
        groups = self.counts(key, lambda p: ((None, 1),) if matches(p) else (), namespaces)
        got = groups.get(None)
        return got if got is not None else np.zeros(self.valid.shape[0], dtype=np.int64)

    def per_domain(self, key: str, per_slot: I64, nodes: BoolArray | None = None) -> I64:
        """``per_slot`` summed over each domain of label ``key`` (among ``nodes``; None:
        every node), indexed by the domain's id (:meth:`domains`); the last entry, for
        nodes without the label, is 0. ``result[ids]`` reads it back per node."""
        ids, index = self.domains(key)
        keep = self.valid & (ids >= 0)
        if nodes is not None:
            keep &= nodes
        out = np.zeros(len(index) + 1, dtype=np.int64)
        picked = ids[keep]
        if picked.size:
            summed = np.bincount(picked, weights=per_slot[keep], minlength=len(index))
            out[: len(index)] = summed.astype(np.int64)
        return out

    # ---------------------------------------------------------------- views

    def domains(self, key: str) -> tuple[npt.NDArray[np.int32], dict[str, int]]:
        """Per slot, the id of the node's value of label ``key`` (-1: no such label or no
        node), and the ids by value: ``np.isin(ids, [index[v] ...])`` are the nodes in
        those domains. Built on the first call for ``key``, then kept current."""
        got = self._domains.get(key)
        if got is None:
            index: dict[str, int] = {}
            ids = np.full(self.valid.shape[0], -1, dtype=np.int32)
            for info in self.nodes.values():
                value = ((info.node.get("metadata") or {}).get("labels") or {}).get(key)
                if value is not None:
                    ids[info.slot] = index.setdefault(value, len(index))
            got = self._domains[key] = (ids, index)
        return got

    def in_domains(self, key: str, values: Iterable[str]) -> BoolArray:
        """Per slot: the node's label ``key`` has one of ``values``."""
        ids, index = self.domains(key)
        wanted = [index[v] for v in values if v in index]
        if not wanted:
            return np.zeros(ids.shape[0], dtype=np.bool_)
        if len(wanted) == 1:
            out: BoolArray = ids == wanted[0]
            return out
        return np.isin(ids, wanted)

    def _touch(self, slot: int) -> None:
        self.clock += 1
        self.changed[slot] = self.clock

    def per_node(
        self, key: Hashable, compute: Callable[[npt.NDArray[np.intp]], I64], slots: I64
    ) -> I64:
        """``compute(slots)`` for ``slots``, where ``compute`` is a function of each node's
        resources alone (allocatable, requested, pod count), such as a resource score for
        one pod size: kept per ``key`` for every node and recomputed only for the nodes
        whose resources changed since, so scoring pods of one size over 5,000 nodes
        recomputes the one node the last pod went to. The least recently used of
        :data:`MAX_COUNTERS` keys goes first."""
        entry = self._per_node.get(key)
        size = self.valid.shape[0]
        if entry is None or entry[1].shape[0] != size:
            full = np.zeros(size, dtype=np.int64)
            every = self.slots()
            full[every] = compute(every)
        else:
            since, full = entry
            dirty = np.flatnonzero(self.changed > since)
            if dirty.size:
                full[dirty] = compute(dirty)
            self._per_node.move_to_end(key)
        self._per_node[key] = (self.clock, full)
        if len(self._per_node) > MAX_COUNTERS:
            self._per_node.popitem(last=False)
        out: I64 = full[slots]
        return out

    def slots(self) -> npt.NDArray[np.intp]:
        """Rows of the arrays that hold a node, in slot order."""
        return np.flatnonzero(self.valid)

    def info(self, slot: int) -> NodeInfo:
        info = self.by_slot[slot]
        assert info is not None
        return info
