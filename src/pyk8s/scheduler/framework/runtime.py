"""A profile's plugins, run in upstream's order: ``Framework`` is one scheduling profile
(upstream's ``frameworkImpl``), and ``fit_error_message`` is upstream's ``FitError.Error()``
— the "0/3 nodes are available: …" text users read in ``kubectl describe pod``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeGuard, overload

import numpy as np

from pyk8s.scheduler.framework.interface import (
    BindPlugin,
    BoolArray,
    Code,
    CycleState,
    FilterPlugin,
    IntArray,
    NormalizeScorePlugin,
    PermitPlugin,
    Plugin,
    PostFilterPlugin,
    PreBindPlugin,
    PreFilterPlugin,
    PreScorePlugin,
    QueueSortPlugin,
    ReservePlugin,
    ScorePlugin,
    Status,
    VectorFilterPlugin,
    VectorScorePlugin,
    is_success,
)
from pyk8s.scheduler.framework.types import (
    NodeInfo,
    Obj,
    host_ports,
    pod_key,
    pod_priority,
    pod_requests,
)

if TYPE_CHECKING:
    from pyk8s.scheduler.cache import Cache

NO_NODE_AVAILABLE = "0/{} nodes are available"
SKIP_FILTER = "framework/skip-filter"


def reason_counts(statuses: Mapping[str, Status]) -> dict[str, int]:
    """How many nodes each filter reason ruled out."""
    counts: dict[str, int] = {}
    for st in statuses.values():
        for reason in st.reasons:
            counts[reason] = counts.get(reason, 0) + 1
    return counts


def fit_error_message(
    num_nodes: int,
    statuses: Mapping[str, Status],
    pre_filter_msg: str = "",
    post_filter_msg: str = "",
) -> str:
    """``0/N nodes are available: <count> <reason>, ….`` with the reasons counted over
    nodes and sorted as strings, then the PostFilter (preemption) message."""
    msg = NO_NODE_AVAILABLE.format(num_nodes) + ":"
    if pre_filter_msg:
        msg += f" {pre_filter_msg}."
    else:
        histogram = sorted(f"{n} {reason}" for reason, n in reason_counts(statuses).items())
        if histogram:
            msg += f" {', '.join(histogram)}."
    if post_filter_msg:
        msg += f" {post_filter_msg}" + ("" if post_filter_msg.endswith(".") else ".")
    return msg


_IMPLEMENTS: dict[tuple[type, type], bool] = {}


def _implements(plugin: Plugin, protocol: type) -> bool:
    """``isinstance(plugin, protocol)``, remembered per class: a runtime-checkable
    Protocol's isinstance inspects every member, which cost ~1 ms per scheduling cycle."""
    key = (type(plugin), protocol)
    got = _IMPLEMENTS.get(key)
    if got is None:
        got = _IMPLEMENTS[key] = isinstance(plugin, protocol)
    return got


def _vector_filter(p: Plugin) -> TypeGuard[VectorFilterPlugin]:
    return _implements(p, VectorFilterPlugin)


def _vector_score(p: Plugin) -> TypeGuard[VectorScorePlugin]:
    return _implements(p, VectorScorePlugin)


def _score(p: Plugin) -> TypeGuard[ScorePlugin]:
    return _implements(p, ScorePlugin)


def _normalize(p: Plugin) -> TypeGuard[NormalizeScorePlugin]:
    return _implements(p, NormalizeScorePlugin)


def with_pods(node: NodeInfo, pods: list[Obj]) -> NodeInfo:
    """A copy of ``node`` as if ``pods`` were placed there too."""
    requested = dict(node.requested)
    ports = dict(node.used_ports)
    for p in pods:
        for res, amount in pod_requests(p).items():
            requested[res] = requested.get(res, 0) + amount
        for port in host_ports(p):
            ports[port] = ports.get(port, 0) + 1
    return NodeInfo(
        node=node.node,
        slot=node.slot,
        pods={**node.pods, **{pod_key(p): p for p in pods}},
        used_ports=ports,
        requested=requested,
        allocatable=node.allocatable,
        images=node.images,
    )


@dataclass
class Framework:
    """The plugins of one profile, per extension point, in order."""

    scheduler_name: str
    queue_sort: QueueSortPlugin
    pre_filter: list[PreFilterPlugin] = field(default_factory=list)
    filter: list[FilterPlugin] = field(default_factory=list)
    post_filter: list[PostFilterPlugin] = field(default_factory=list)
    pre_score: list[PreScorePlugin] = field(default_factory=list)
    score: list[tuple[Plugin, int]] = field(default_factory=list)
    reserve: list[ReservePlugin] = field(default_factory=list)
    permit: list[PermitPlugin] = field(default_factory=list)
    pre_bind: list[PreBindPlugin] = field(default_factory=list)
    bind: list[BindPlugin] = field(default_factory=list)

    # -------------------------------------------------------------- filtering

    def run_pre_filter(self, state: CycleState, pod: Obj, cache: Cache) -> Status | None:
        """Every PreFilter; one that answers Skip has its Filter skipped this cycle."""
        skipped: set[str] = state.setdefault(SKIP_FILTER, set())
        for p in self.pre_filter:
            st = p.pre_filter(state, pod, cache)
            if st is not None and st.code == Code.SKIP:
                skipped.add(p.name)
                continue
            if not is_success(st):
                assert st is not None
                return st.with_plugin(p.name)
        return None

    def run_filters(self, state: CycleState, pod: Obj, node: NodeInfo) -> Status | None:
        """Every Filter on one node; the first rejection is the node's status."""
        for p in self.filter:
            st = p.filter(state, pod, node)
            if not is_success(st):
                assert st is not None
                return st.with_plugin(p.name)
        return None

    def find_feasible(self, state: CycleState, pod: Obj, cache: Cache) -> tuple[IntArray, Statuses]:
        """All feasible nodes (cache slots) and the status of every node that is not.

        Plugins run in profile order over the nodes still feasible, so a node's reason is
        the first plugin that rejects it, as upstream; vectorised plugins judge the whole
        cluster at once, and their reasons for the nodes they reject are asked for only
        when the statuses are read (a pod that fits somewhere never needs them)."""
        feasible: BoolArray = cache.valid.copy()
        statuses = Statuses(state, pod, cache)
        skipped: set[str] = state.get(SKIP_FILTER) or set()
        for p in self.filter:
            if p.name in skipped:
                continue
            if _vector_filter(p):
                passed = p.filter_all(state, pod, cache, feasible)
                rejected = np.flatnonzero(feasible & ~passed)
                if rejected.size:
                    statuses.defer(p, rejected)
                    feasible[rejected] = False
            else:
                for slot in np.flatnonzero(feasible):
                    info = cache.info(int(slot))
                    st = p.filter(state, pod, info)
                    if not is_success(st):
                        assert st is not None
                        statuses[info.name] = st.with_plugin(p.name)
                        feasible[slot] = False
        if cache.nominated:
            self._hold_nominated(state, pod, cache, feasible, statuses)
        return np.flatnonzero(feasible).astype(np.int64), statuses

    def _hold_nominated(
        self,
        state: CycleState,
        pod: Obj,
        cache: Cache,
        feasible: BoolArray,
        statuses: Statuses,
    ) -> None:
        """Upstream's ``addNominatedPods``: a node must also fit the pods nominated to it
        with at least this pod's priority (preemption made room for them)."""
        key = pod_key(pod)
        priority = pod_priority(pod)
        for node_name, nominated in cache.nominated.items():
            info = cache.nodes.get(node_name)
            if info is None or not feasible[info.slot]:
                continue
            extra = [p for k, p in nominated.items() if k != key and pod_priority(p) >= priority]
            if not extra:
                continue
            st = self.run_filters(state, pod, with_pods(info, extra))
            if not is_success(st):
                assert st is not None
                statuses[info.name] = st
                feasible[info.slot] = False

    def run_post_filter(
        self, state: CycleState, pod: Obj, cache: Cache, statuses: Mapping[str, Status]
    ) -> tuple[str | None, Status | None]:
        last: Status | None = None
        for p in self.post_filter:
            nominated, st = p.post_filter(state, pod, cache, statuses)
            if nominated:
                return nominated, st
            if st is not None:
                last = st
        return None, last

    # -------------------------------------------------------------- scoring

    def run_score(self, state: CycleState, pod: Obj, cache: Cache, slots: IntArray) -> IntArray:
        """Weighted sum of every Score plugin's (normalised) scores for ``slots``."""
        nodes = _LazyNodeInfos(cache, slots)  # built only if a plugin looks at nodes

        def infos() -> Sequence[NodeInfo]:
            return nodes

        skipped: set[str] = set()
        for ps in self.pre_score:
            st = ps.pre_score(state, pod, infos())
            if st is not None and st.code == Code.SKIP:
                skipped.add(ps.name)
        total: IntArray = np.zeros(len(slots), dtype=np.int64)
        for p, weight in self.score:
            if p.name in skipped:
                continue
            if _vector_score(p):
                scores = p.score_all(state, pod, cache, slots)
            elif _score(p):
                scores = np.fromiter(
                    (p.score(state, pod, i) for i in infos()), dtype=np.int64, count=len(slots)
                )
            else:
                continue
            if _normalize(p):
                scores = p.normalize_score(state, pod, scores)
            total += scores * weight
        return total

    # -------------------------------------------------------------- binding cycle

    def run_reserve(self, state: CycleState, pod: Obj, node_name: str) -> Status | None:
        for i, p in enumerate(self.reserve):
            st = p.reserve(state, pod, node_name)
            if not is_success(st):
                for q in reversed(self.reserve[: i + 1]):
                    q.unreserve(state, pod, node_name)
                return st
        return None

    def run_unreserve(self, state: CycleState, pod: Obj, node_name: str) -> None:
        for p in reversed(self.reserve):
            p.unreserve(state, pod, node_name)

    def run_permit(self, state: CycleState, pod: Obj, node_name: str) -> Status | None:
        for p in self.permit:
            st = p.permit(state, pod, node_name)
            if not is_success(st):
                return st
        return None

    async def run_pre_bind(self, state: CycleState, pod: Obj, node_name: str) -> Status | None:
        """Every PreBind in order; the first failure stops the binding cycle."""
        for p in self.pre_bind:
            st = await p.pre_bind(state, pod, node_name)
            if not is_success(st):
                assert st is not None
                if st.code == Code.ERROR:  # upstream wraps errors with the plugin's name
                    message = f'running PreBind plugin "{p.name}": {st.message}'
                    return Status.error(message, plugin=p.name)
                return st.with_plugin(p.name)
        return None

    def plugins(self) -> list[Plugin]:
        """Every distinct plugin of the profile (for event registration)."""
        seen: dict[int, Plugin] = {}
        points: list[Sequence[Plugin]] = [
            [self.queue_sort], self.pre_filter, self.filter, self.post_filter,
            self.pre_score, [p for p, _ in self.score], self.reserve, self.permit,
            self.pre_bind, self.bind,
        ]  # fmt: skip
        for group in points:
            for p in group:
                seen.setdefault(id(p), p)
        return list(seen.values())

    async def run_bind(self, state: CycleState, pod: Obj, node_name: str) -> Status | None:
        for p in self.bind:
            st = await p.bind(state, pod, node_name)
            if st is not None and st.code == Code.SKIP:
                continue
            return st
        return Status.error("no bind plugin bound the pod")


class Statuses(Mapping[str, Status]):
    """Node name -> why it is not feasible. The nodes a vectorised Filter rejected are
    explained (its per-node ``filter``) on the first read, as upstream's Diagnosis is
    only read when no node fits: on a 5,000-node cluster a pod with required
    anti-affinity is rejected by thousands of nodes in every cycle that still succeeds."""

    def __init__(self, state: CycleState, pod: Obj, cache: Cache) -> None:
        self._state = state
        self._pod = pod
        self._cache = cache
        self._known: dict[str, Status] = {}
        self._deferred: list[tuple[FilterPlugin, IntArray]] = []

    def defer(self, plugin: FilterPlugin, slots: IntArray) -> None:
        """``plugin`` rejected the nodes in ``slots``: ask it why when read."""
        self._deferred.append((plugin, slots))

    def by_plugin(self) -> dict[str, int]:
        """How many nodes each Filter plugin rejected, without explaining them."""
        counts: dict[str, int] = {}
        for st in self._known.values():
            counts[st.plugin] = counts.get(st.plugin, 0) + 1
        for p, slots in self._deferred:
            counts[p.name] = counts.get(p.name, 0) + len(slots)
        return counts

    def __setitem__(self, name: str, status: Status) -> None:
        self._explain()
        self._known[name] = status

    def _explain(self) -> dict[str, Status]:
        deferred, self._deferred = self._deferred, []
        for p, slots in deferred:
            for slot in slots:
                info = self._cache.info(int(slot))
                st = p.filter(self._state, self._pod, info)
                if st is None or is_success(st):  # the vector and per-node views disagree
                    st = Status.unschedulable(f"node(s) rejected by {p.name}")
                self._known[info.name] = st.with_plugin(p.name)
        return self._known

    def __getitem__(self, name: str) -> Status:
        return self._explain()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._explain())

    def __len__(self) -> int:
        return len(self._explain())


class _LazyNodeInfos(Sequence[NodeInfo]):
    """The NodeInfos of ``slots``, built on first access: PreScore plugins that skip a pod
    (no spread constraints, no affinity) never pay for thousands of nodes."""

    def __init__(self, cache: Cache, slots: IntArray) -> None:
        self._cache = cache
        self._slots = slots
        self._built: list[NodeInfo] | None = None

    def _all(self) -> list[NodeInfo]:
        if self._built is None:
            self._built = [self._cache.info(int(s)) for s in self._slots]
        return self._built

    def __len__(self) -> int:
        return len(self._slots)

    @overload
    def __getitem__(self, index: int) -> NodeInfo: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[NodeInfo]: ...

    def __getitem__(self, index: int | slice) -> NodeInfo | Sequence[NodeInfo]:
        return self._all()[index]

    def __iter__(self) -> Iterator[NodeInfo]:
        return iter(self._all())
