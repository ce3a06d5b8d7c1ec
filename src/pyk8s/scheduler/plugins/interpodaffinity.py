"""InterPodAffinity: place pods relative to other pods, per topology domain.

Filter (required terms): the incoming pod's ``podAffinity`` needs, for every term, a
matching pod in the node's domain (unless no pod matches anywhere and the pod matches its
own terms — the first of a group); its ``podAntiAffinity`` forbids domains holding a
matching pod; and the required anti-affinity of pods already placed forbids their domains
to an incoming pod they match. PreFilter counts matching pods per (topologyKey, value)
once, so Filter is a few dict look-ups per node.

Score (preferred terms, and existing pods' terms towards the incoming pod): each matching
pair adds (affinity) or subtracts (anti-affinity) its weight to the domain of the existing
pod; existing pods' required affinity terms count with hardPodAffinityWeight 1. Scores are
normalised to 0..100 between the lowest and the highest node.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from pyk8s.scheduler.framework.interface import (
    MAX_NODE_SCORE,
    BoolArray,
    Code,
    CycleState,
    IntArray,
    Status,
)
from pyk8s.scheduler.framework.registry import Lister
from pyk8s.scheduler.framework.types import NodeInfo, Obj
from pyk8s.scheduler.plugins.helpers import (
    AffinityTerm,
    preferred_terms,
    required_terms,
)

if TYPE_CHECKING:
    from pyk8s.scheduler.cache import Cache

NAME = "InterPodAffinity"
ERR_REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
ERR_REASON_AFFINITY = "node(s) didn't match pod affinity rules"
ERR_REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
HARD_POD_AFFINITY_WEIGHT = 1
_STATE = NAME + "/filter"
_EXISTING = NAME + "/existing"
_PLACED = NAME + "/placed"

Pair = tuple[str, str]


@dataclass
class _FilterState:
    affinity: list[AffinityTerm]
    anti: list[AffinityTerm]
    affinity_counts: dict[Pair, int] = field(default_factory=dict)
    anti_counts: dict[Pair, int] = field(default_factory=dict)
    #: topology key -> value -> placed pods whose required anti-affinity the pod matches
    existing_anti: dict[str, dict[str, int]] = field(default_factory=dict)
    matches_own: bool = False


def _node_labels(info: NodeInfo) -> Mapping[str, str]:
    labels: Mapping[str, str] = (info.node.get("metadata") or {}).get("labels") or {}
    return labels


def _matches_all(terms: Sequence[AffinityTerm], pod: Obj) -> bool:
    return bool(terms) and all(t.matches(pod) for t in terms)


def _values(counts: Mapping[Pair, int], key: str) -> list[str]:
    """The values of topology ``key`` with a positive count."""
    return [v for (k, v), n in counts.items() if k == key and n > 0]


#: a placed pod's (required affinity, required anti-affinity, preferred affinity,
#: preferred anti-affinity) terms
Terms = tuple[list[AffinityTerm], list[AffinityTerm], list[AffinityTerm], list[AffinityTerm]]
KINDS = ("podAffinity", "podAntiAffinity")
REQUIRED_AFFINITY, REQUIRED_ANTI, PREFERRED_AFFINITY, PREFERRED_ANTI = range(4)


def _terms_of(pod: Obj, ns_labels: Callable[[], Mapping[str, Mapping[str, str]]]) -> Terms:
    return (
        required_terms(pod, KINDS[0], ns_labels),
        required_terms(pod, KINDS[1], ns_labels),
        preferred_terms(pod, KINDS[0], ns_labels),
        preferred_terms(pod, KINDS[1], ns_labels),
    )


def _uses_namespace_selector(pod: Obj) -> bool:
    affinity = (pod.get("spec") or {}).get("affinity") or {}
    for kind in KINDS:
        section = affinity.get(kind) or {}
        for t in section.get("requiredDuringSchedulingIgnoredDuringExecution") or []:
            if t.get("namespaceSelector") is not None:
                return True
        for wt in section.get("preferredDuringSchedulingIgnoredDuringExecution") or []:
            if (wt.get("podAffinityTerm") or {}).get("namespaceSelector") is not None:
                return True
    return False


class InterPodAffinity:
    name = NAME

    def __init__(self, lister: Lister) -> None:
        self.lister = lister
        self._interned: weakref.WeakValueDictionary[AffinityTerm, AffinityTerm] = (
            weakref.WeakValueDictionary()
        )

    def _namespace_labels(self) -> dict[str, Mapping[str, str]]:
        return {
            str(ns["metadata"]["name"]): (ns["metadata"].get("labels") or {})
            for ns in self.lister("", "v1", "namespaces", "")
        }

    def _pods_for(self, cache: Cache, terms: Sequence[AffinityTerm]) -> Iterable[tuple[str, Obj]]:
        """Pods any of ``terms`` could match (only their namespaces, when all are finite)."""
        if any(t.namespaces is None for t in terms):
            return list(cache.pods.values())
        names = set().union(*(t.namespaces or frozenset() for t in terms))
        return [e for ns in names for e in (cache.by_namespace.get(ns) or {}).values()]

    def _placed(self, state: CycleState, cache: Cache) -> list[dict[AffinityTerm, dict[str, int]]]:
        """For each kind of term (see ``Terms``): term -> node name -> how many placed pods
        there carry it. Pods of one workload share their terms, so each distinct term is
        matched against the incoming pod once. A pod's terms are parsed once while it is
        placed (upstream's PodInfo keeps them too), except terms with a namespaceSelector,
        resolved each cycle as namespace labels change. Computed once per cycle."""
        got: list[dict[AffinityTerm, dict[str, int]]] | None = state.get(_PLACED)
        if got is not None:
            return got
        #: grouped by the identity of interned terms: hashing a term (its selector) for
        #: every placed pod in every cycle cost more than the grouping itself
        by_id: list[dict[int, tuple[AffinityTerm, dict[str, int]]]] = [{}, {}, {}, {}]
        ns_labels = self._namespace_labels

        def parse(p: Obj) -> Terms | None:
            return None if _uses_namespace_selector(p) else self._intern(_terms_of(p, ns_labels))

        for key, (node_name, other) in cache.affinity_pods.items():
            terms = cache.derived(key, NAME, other, parse)
            if terms is None:
                terms = self._intern(_terms_of(other, ns_labels))
            for group, ts in zip(by_id, terms, strict=True):
                for t in ts:
                    entry = group.get(id(t))
                    if entry is None:
                        entry = group[id(t)] = (t, {})
                    per = entry[1]
                    per[node_name] = per.get(node_name, 0) + 1
        groups = [dict(g.values()) for g in by_id]
        state[_PLACED] = groups
        return groups

    def _intern(self, terms: Terms) -> Terms:
        """``terms`` with each term replaced by the one equal instance the plugin keeps
        (while any placed pod holds it)."""

        def one(ts: list[AffinityTerm]) -> list[AffinityTerm]:
            return [self._interned.setdefault(t, t) for t in ts]

        return one(terms[0]), one(terms[1]), one(terms[2]), one(terms[3])

    # ---------------------------------------------------------------- filter

    def pre_filter(self, state: CycleState, pod: Obj, cache: Cache) -> Status | None:
        state[_EXISTING] = bool(cache.affinity_pods)
        ns_labels = self._namespace_labels
        fs = _FilterState(
            required_terms(pod, "podAffinity", ns_labels),
            required_terms(pod, "podAntiAffinity", ns_labels),
        )
        for t, nodes in self._placed(state, cache)[REQUIRED_ANTI].items():
            if not t.matches(pod):
                continue
            per = fs.existing_anti.setdefault(t.topology_key, {})
            for node_name, n in nodes.items():
                info = cache.nodes.get(node_name)
                value = None if info is None else _node_labels(info).get(t.topology_key)
                if value is not None:
                    per[value] = per.get(value, 0) + n
        if fs.affinity or fs.anti:
            for node_name, other in self._pods_for(cache, [*fs.affinity, *fs.anti]):
                info = cache.nodes.get(node_name)
                if info is None:
                    continue
                labels = _node_labels(info)
                if _matches_all(fs.affinity, other):
                    for t in fs.affinity:
                        if t.topology_key in labels:
                            pair = (t.topology_key, labels[t.topology_key])
                            fs.affinity_counts[pair] = fs.affinity_counts.get(pair, 0) + 1
                for t in fs.anti:
                    if t.topology_key in labels and t.matches(other):
                        pair = (t.topology_key, labels[t.topology_key])
                        fs.anti_counts[pair] = fs.anti_counts.get(pair, 0) + 1
        if not fs.affinity and not fs.anti and not any(fs.existing_anti.values()):
            return Status(Code.SKIP)
        fs.matches_own = _matches_all(fs.affinity, pod)
        state[_STATE] = fs
        return None

    def filter(self, state: CycleState, pod: Obj, node: NodeInfo) -> Status | None:
        fs: _FilterState | None = state.get(_STATE)
        if fs is None:
            return None
        labels = _node_labels(node)
        if fs.affinity and not self._satisfies_affinity(fs, labels):
            return Status.unresolvable(ERR_REASON_AFFINITY, plugin=NAME)
        for t in fs.anti:
            value = labels.get(t.topology_key)
            if value is not None and fs.anti_counts.get((t.topology_key, value), 0) > 0:
                return Status.unschedulable(ERR_REASON_ANTI_AFFINITY, plugin=NAME)
        for key, per in fs.existing_anti.items():
            value = labels.get(key)
            if value is not None and per.get(value, 0) > 0:
                return Status.unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY, plugin=NAME)
        return None

    def filter_all(
        self, state: CycleState, pod: Obj, cache: Cache, candidates: BoolArray
    ) -> BoolArray:
        """``filter`` over every node at once: each (topology key, value) with a count is
        turned into the nodes in that domain with the cache's per-key label columns."""
        fs: _FilterState | None = state.get(_STATE)
        passed: BoolArray = candidates.copy()
        if fs is None:
            return passed
        if fs.affinity:
            labelled = np.ones_like(passed)
            pods_exist = np.ones_like(passed)
            for t in fs.affinity:
                ids, _ = cache.domains(t.topology_key)
                labelled &= ids >= 0  # every topology label must exist on the node
                pods_exist &= cache.in_domains(
                    t.topology_key, _values(fs.affinity_counts, t.topology_key)
                )
            # the first pod of a group whose members attract each other may go anywhere
            first = not fs.affinity_counts and fs.matches_own
            passed &= labelled & (pods_exist | first)
        for t in fs.anti:
            passed &= ~cache.in_domains(t.topology_key, _values(fs.anti_counts, t.topology_key))
        for key, per in fs.existing_anti.items():
            passed &= ~cache.in_domains(key, [v for v, n in per.items() if n > 0])
        return passed

    @staticmethod
    def _satisfies_affinity(fs: _FilterState, labels: Mapping[str, str]) -> bool:
        pods_exist = True
        for t in fs.affinity:
            value = labels.get(t.topology_key)
            if value is None:
                return False  # every topology label must exist on the node
            if fs.affinity_counts.get((t.topology_key, value), 0) <= 0:
                pods_exist = False
        if pods_exist:
            return True
        # the first pod of a group whose members attract each other may go anywhere
        return not fs.affinity_counts and fs.matches_own

    # ---------------------------------------------------------------- score

    def pre_score(self, state: CycleState, pod: Obj, nodes: Sequence[NodeInfo]) -> Status | None:
        has_preferred = bool(
            preferred_terms(pod, "podAffinity") or preferred_terms(pod, "podAntiAffinity")
        )
        if not has_preferred and state.get(_EXISTING) is False:
            return Status(Code.SKIP)
        return None

    def score_all(self, state: CycleState, pod: Obj, cache: Cache, slots: IntArray) -> IntArray:
        ns_labels = self._namespace_labels
        affinity = preferred_terms(pod, "podAffinity", ns_labels)
        anti = preferred_terms(pod, "podAntiAffinity", ns_labels)
        #: topology key -> value -> score
        scores: dict[str, dict[str, int]] = {}

        def add(key: str, node_name: str, weight: int) -> None:
            info = cache.nodes.get(node_name)
            value = None if info is None else _node_labels(info).get(key)
            if value is not None:
                per = scores.setdefault(key, {})
                per[value] = per.get(value, 0) + weight

        if affinity or anti:
            for node_name, other in self._pods_for(cache, [*affinity, *anti]):
                for t in affinity:
                    if t.matches(other):
                        add(t.topology_key, node_name, t.weight)
                for t in anti:
                    if t.matches(other):
                        add(t.topology_key, node_name, -t.weight)
        # placed pods' terms towards the incoming pod: each distinct term matched once
        placed = self._placed(state, cache)
        for kind, sign in (
            (REQUIRED_AFFINITY, 0),  # hardPodAffinityWeight
            (PREFERRED_AFFINITY, 1),
            (PREFERRED_ANTI, -1),
        ):
            for t, nodes in placed[kind].items():
                if not t.matches(pod):
                    continue
                weight = sign * t.weight if sign else HARD_POD_AFFINITY_WEIGHT
                for node_name, n in nodes.items():
                    add(t.topology_key, node_name, n * weight)
        out: IntArray = np.zeros(len(slots), dtype=np.int64)
        for key, per in scores.items():
            ids, index = cache.domains(key)
            by_id = np.zeros(len(index) + 1, dtype=np.int64)  # the last: no such label
            for value, score in per.items():
                if value in index:
                    by_id[index[value]] = score
            out += by_id[ids[slots]]  # -1 indexes the last, zero, entry
        return out

    def normalize_score(self, state: CycleState, pod: Obj, scores: IntArray) -> IntArray:
        scores = np.asarray(scores, dtype=np.int64)
        if scores.size == 0:
            return scores
        lo, hi = int(scores.min()), int(scores.max())
        if hi - lo <= 0:
            return np.zeros_like(scores)
        out: IntArray = (MAX_NODE_SCORE * (scores - lo).astype(np.float64) / (hi - lo)).astype(
            np.int64
        )
        return out
