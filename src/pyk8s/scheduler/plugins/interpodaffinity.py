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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from pyk8s.scheduler.framework.interface import (
    MAX_NODE_SCORE,
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

Pair = tuple[str, str]


@dataclass
class _FilterState:
    affinity: list[AffinityTerm]
    anti: list[AffinityTerm]
    affinity_counts: dict[Pair, int] = field(default_factory=dict)
    anti_counts: dict[Pair, int] = field(default_factory=dict)
    existing_anti_counts: dict[Pair, int] = field(default_factory=dict)
    matches_own: bool = False


def _node_labels(info: NodeInfo) -> Mapping[str, str]:
    labels: Mapping[str, str] = (info.node.get("metadata") or {}).get("labels") or {}
    return labels


def _matches_all(terms: Sequence[AffinityTerm], pod: Obj) -> bool:
    return bool(terms) and all(t.matches(pod) for t in terms)


class InterPodAffinity:
    name = NAME

    def __init__(self, lister: Lister) -> None:
        self.lister = lister

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

    # ---------------------------------------------------------------- filter

    def pre_filter(self, state: CycleState, pod: Obj, cache: Cache) -> Status | None:
        state[_EXISTING] = bool(cache.affinity_pods)
        ns_labels = self._namespace_labels
        fs = _FilterState(
            required_terms(pod, "podAffinity", ns_labels),
            required_terms(pod, "podAntiAffinity", ns_labels),
        )
        for node_name, other in cache.affinity_pods.values():
            info = cache.nodes.get(node_name)
            if info is None:
                continue
            labels = _node_labels(info)
            for t in required_terms(other, "podAntiAffinity", ns_labels):
                if t.topology_key in labels and t.matches(pod):
                    pair = (t.topology_key, labels[t.topology_key])
                    fs.existing_anti_counts[pair] = fs.existing_anti_counts.get(pair, 0) + 1
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
        if not fs.affinity and not fs.anti and not fs.existing_anti_counts:
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
        for (key, value), n in fs.existing_anti_counts.items():
            if n > 0 and labels.get(key) == value:
                return Status.unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY, plugin=NAME)
        return None

    @staticmethod
    def _satisfies_affinity(fs: _FilterState, labels: Mapping[str, str]) -> bool:
        pods_exist = True
        for t in fs.affinity:
            value = labels.get(t.topology_key)
            if value is None:
                return False  # every topology label must exist on the node
            if fs.affinity_counts.get((t.topology_key, value), 0) <= 0:
                pods_exist = False
                break
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
        scores: dict[str, dict[str, int]] = {}

        def add(key: str, labels: Mapping[str, str], weight: int) -> None:
            if key in labels:
                per = scores.setdefault(key, {})
                per[labels[key]] = per.get(labels[key], 0) + weight

        existing = cache.pods.values() if affinity or anti else list(cache.affinity_pods.values())
        for node_name, other in existing:
            info = cache.nodes.get(node_name)
            if info is None:
                continue
            labels = _node_labels(info)
            for t in affinity:
                if t.matches(other):
                    add(t.topology_key, labels, t.weight)
            for t in anti:
                if t.matches(other):
                    add(t.topology_key, labels, -t.weight)
            if not (other.get("spec") or {}).get("affinity"):
                continue
            if labels:
                for t in required_terms(other, "podAffinity", ns_labels):
                    if t.matches(pod):
                        add(t.topology_key, labels, HARD_POD_AFFINITY_WEIGHT)
            for t in preferred_terms(other, "podAffinity", ns_labels):
                if t.matches(pod):
                    add(t.topology_key, labels, t.weight)
            for t in preferred_terms(other, "podAntiAffinity", ns_labels):
                if t.matches(pod):
                    add(t.topology_key, labels, -t.weight)
        out: IntArray = np.zeros(len(slots), dtype=np.int64)
        if not scores:
            return out
        for j, slot in enumerate(slots):
            labels = _node_labels(cache.info(int(slot)))
            out[j] = sum(per.get(labels[k], 0) for k, per in scores.items() if k in labels)
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
