"""InterPodAffinity: place pods relative to other pods, per topology domain.

Filter (required terms): the incoming pod's ``podAffinity`` needs, for every term, a
matching pod in the node's domain (unless no pod matches anywhere and the pod matches its
own terms — the first of a group); its ``podAntiAffinity`` forbids domains holding a
matching pod; and the required anti-affinity of pods already placed forbids their domains
to an incoming pod they match. PreFilter turns each into matching pods per domain, so
Filter is an array look-up per node.

Score (preferred terms, and existing pods' terms towards the incoming pod): each matching
pair adds (affinity) or subtracts (anti-affinity) its weight to the domain of the existing
pod; existing pods' required affinity terms count with hardPodAffinityWeight 1. Scores are
normalised to 0..100 between the lowest and the highest node.

Nothing here walks the placed pods per cycle: the cache keeps per-node counts of the pods
each of the incoming pod's selectors matches, and of the placed pods carrying each
distinct term (:meth:`Cache.counts`), so a cycle costs a few vector ops per term over the
nodes (upstream walks every placed pod per cycle, in parallel).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import TYPE_CHECKING, cast

import numpy as np
import numpy.typing as npt

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
    pod_namespace,
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
_PREFERRED = NAME + "/preferred"
#: the cache's counter of placed pods by the terms they carry
_PLACED = (NAME, "placed")

Ids = npt.NDArray[np.int32]
#: a topology key's per-slot domain ids, and a count per domain id (the last: no label)
Domains = tuple[Ids, IntArray]


@dataclass
class _FilterState:
    affinity: list[AffinityTerm]
    anti: list[AffinityTerm]
    #: per required affinity term: pods matching all of them, per domain of its key
    affinity_counts: list[Domains] = field(default_factory=list)
    #: per required anti-affinity term: pods it matches, per domain of its key
    anti_counts: list[Domains] = field(default_factory=list)
    #: per topology key: placed pods whose required anti-affinity the pod matches
    existing_anti: list[Domains] = field(default_factory=list)
    #: some pod matches all the affinity terms (in a domain of each term's key)
    any_affinity: bool = False
    matches_own: bool = False


def _matches_all(terms: Sequence[AffinityTerm], pod: Obj) -> bool:
    return bool(terms) and all(t.matches(pod) for t in terms)


def _at(domains: Domains, slot: int) -> int:
    """The count of the domain node ``slot`` is in (0 without the label)."""
    ids, counts = domains
    return int(counts[ids[slot]])


#: a placed pod's (required affinity, required anti-affinity, preferred affinity,
#: preferred anti-affinity) terms
Terms = tuple[list[AffinityTerm], list[AffinityTerm], list[AffinityTerm], list[AffinityTerm]]
KINDS = ("podAffinity", "podAntiAffinity")
REQUIRED_AFFINITY, REQUIRED_ANTI, PREFERRED_AFFINITY, PREFERRED_ANTI = range(4)


def _placed_terms(pod: Obj) -> Iterable[tuple[Hashable, int]]:
    """The cache counter's question to a placed pod: (kind, term) for each of its terms,
    namespaceSelectors kept (judged against the incoming pod's namespace)."""
    affinity = (pod.get("spec") or {}).get("affinity") or {}
    if not (affinity.get(KINDS[0]) or affinity.get(KINDS[1])):
        return ()
    terms = (
        required_terms(pod, KINDS[0], resolve=False),
        required_terms(pod, KINDS[1], resolve=False),
        preferred_terms(pod, KINDS[0], resolve=False),
        preferred_terms(pod, KINDS[1], resolve=False),
    )
    return [((kind, t), 1) for kind, ts in enumerate(terms) for t in ts]


def _namespaces(terms: Sequence[AffinityTerm]) -> frozenset[str] | None:
    """The namespaces a pod must be in to match all of ``terms`` (None: any)."""
    finite = [t.namespaces for t in terms if t.namespaces is not None]
    return reduce(frozenset.intersection, finite) if finite else None


class InterPodAffinity:
    name = NAME

    def __init__(self, lister: Lister) -> None:
        self.lister = lister

    def _namespace_labels(self) -> dict[str, Mapping[str, str]]:
        return {
            str(ns["metadata"]["name"]): (ns["metadata"].get("labels") or {})
            for ns in self.lister("", "v1", "namespaces", "")
        }

    def _labels_of(self, namespace: str) -> Mapping[str, str]:
        for ns in self.lister("", "v1", "namespaces", ""):
            if ns["metadata"]["name"] == namespace:
                labels: Mapping[str, str] = ns["metadata"].get("labels") or {}
                return labels
        return {}

    @staticmethod
    def _matching(cache: Cache, t: AffinityTerm) -> IntArray:
        """Per slot: the placed pods ``t`` (an incoming pod's term) matches."""
        return cache.count((NAME, t.namespaces, t.selector), t.matches, t.namespaces)

    def _placed_matching(
        self, cache: Cache, pod: Obj, kinds: Sequence[int]
    ) -> list[tuple[int, AffinityTerm, IntArray]]:
        """(kind, term, per-slot carriers) of the distinct terms of placed pods, of
        ``kinds``, that match ``pod``: each distinct term is matched once."""
        ns = pod_namespace(pod)
        ns_labels: Mapping[str, str] | None = None
        out = []
        for group, carriers in cache.counts(_PLACED, _placed_terms).items():
            kind, t = cast(tuple[int, AffinityTerm], group)
            if kind not in kinds:
                continue
            if t.namespace_selector is not None and ns_labels is None:
                ns_labels = self._labels_of(ns)
            if t.matches(pod, ns_labels):
                out.append((kind, t, carriers))
        return out

    # ---------------------------------------------------------------- filter

    def pre_filter(self, state: CycleState, pod: Obj, cache: Cache) -> Status | None:
        state[_EXISTING] = bool(cache.affinity_pods)
        ns_labels = self._namespace_labels
        fs = _FilterState(
            required_terms(pod, "podAffinity", ns_labels),
            required_terms(pod, "podAntiAffinity", ns_labels),
        )
        by_key: dict[str, IntArray] = {}
        for _kind, t, carriers in self._placed_matching(cache, pod, (REQUIRED_ANTI,)):
            got = by_key.get(t.topology_key)
            by_key[t.topology_key] = carriers if got is None else got + carriers
        for key, carriers in by_key.items():
            counts = cache.per_domain(key, carriers)
            if counts.any():
                fs.existing_anti.append((cache.domains(key)[0], counts))
        if fs.affinity:
            if len(fs.affinity) == 1:
                both = self._matching(cache, fs.affinity[0])
            else:
                sig = tuple((t.namespaces, t.selector) for t in fs.affinity)
                terms = fs.affinity
                both = cache.count(
                    (NAME, "all", sig), lambda p: _matches_all(terms, p), _namespaces(terms)
                )
            for t in fs.affinity:
                counts = cache.per_domain(t.topology_key, both)
                fs.affinity_counts.append((cache.domains(t.topology_key)[0], counts))
                fs.any_affinity = fs.any_affinity or bool(counts.any())
        for t in fs.anti:
            counts = cache.per_domain(t.topology_key, self._matching(cache, t))
            fs.anti_counts.append((cache.domains(t.topology_key)[0], counts))
        if not fs.affinity and not fs.anti and not fs.existing_anti:
            return Status(Code.SKIP)
        fs.matches_own = _matches_all(fs.affinity, pod)
        state[_STATE] = fs
        return None

    def filter(self, state: CycleState, pod: Obj, node: NodeInfo) -> Status | None:
        fs: _FilterState | None = state.get(_STATE)
        if fs is None:
            return None
        slot = node.slot
        if fs.affinity and not self._satisfies_affinity(fs, slot):
            return Status.unresolvable(ERR_REASON_AFFINITY, plugin=NAME)
        if any(_at(d, slot) > 0 for d in fs.anti_counts):
            return Status.unschedulable(ERR_REASON_ANTI_AFFINITY, plugin=NAME)
        if any(_at(d, slot) > 0 for d in fs.existing_anti):
            return Status.unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY, plugin=NAME)
        return None

    def filter_all(
        self, state: CycleState, pod: Obj, cache: Cache, candidates: BoolArray
    ) -> BoolArray:
        """``filter`` over every node at once: each domain count is read back per node
        through the cache's per-key label columns."""
        fs: _FilterState | None = state.get(_STATE)
        passed: BoolArray = candidates.copy()
        if fs is None:
            return passed
        if fs.affinity:
            labelled = np.ones_like(passed)
            pods_exist = np.ones_like(passed)
            for ids, counts in fs.affinity_counts:
                labelled &= ids >= 0  # every topology label must exist on the node
                pods_exist &= counts[ids] > 0
            # the first pod of a group whose members attract each other may go anywhere
            first = not fs.any_affinity and fs.matches_own
            passed &= labelled & (pods_exist | first)
        for ids, counts in (*fs.anti_counts, *fs.existing_anti):
            passed &= counts[ids] <= 0
        return passed

    @staticmethod
    def _satisfies_affinity(fs: _FilterState, slot: int) -> bool:
        pods_exist = True
        for ids, counts in fs.affinity_counts:
            if ids[slot] < 0:
                return False  # every topology label must exist on the node
            if counts[ids[slot]] <= 0:
                pods_exist = False
        if pods_exist:
            return True
        # the first pod of a group whose members attract each other may go anywhere
        return not fs.any_affinity and fs.matches_own

    # ---------------------------------------------------------------- score

    def _preferred(
        self, state: CycleState, pod: Obj
    ) -> tuple[list[AffinityTerm], list[AffinityTerm]]:
        """The pod's preferred (affinity, anti-affinity) terms, parsed once per cycle."""
        got: tuple[list[AffinityTerm], list[AffinityTerm]] | None = state.get(_PREFERRED)
        if got is None:
            ns_labels = self._namespace_labels
            got = state[_PREFERRED] = (
                preferred_terms(pod, "podAffinity", ns_labels),
                preferred_terms(pod, "podAntiAffinity", ns_labels),
            )
        return got

    def pre_score(self, state: CycleState, pod: Obj, nodes: Sequence[NodeInfo]) -> Status | None:
        affinity, anti = self._preferred(state, pod)
        if not affinity and not anti and state.get(_EXISTING) is False:
            return Status(Code.SKIP)
        return None

    def score_all(self, state: CycleState, pod: Obj, cache: Cache, slots: IntArray) -> IntArray:
        affinity, anti = self._preferred(state, pod)
        #: topology key -> per slot: the weights of the matching pairs there
        weights: dict[str, IntArray] = {}

        def add(key: str, per_slot: IntArray) -> None:
            got = weights.get(key)
            weights[key] = per_slot if got is None else got + per_slot

        for t in affinity:
            add(t.topology_key, t.weight * self._matching(cache, t))
        for t in anti:
            add(t.topology_key, -t.weight * self._matching(cache, t))
        # placed pods' terms towards the incoming pod: each distinct term matched once
        kinds = (REQUIRED_AFFINITY, PREFERRED_AFFINITY, PREFERRED_ANTI)
        for kind, t, carriers in self._placed_matching(cache, pod, kinds):
            if kind == REQUIRED_AFFINITY:
                add(t.topology_key, HARD_POD_AFFINITY_WEIGHT * carriers)
            else:
                add(
                    t.topology_key,
                    (t.weight if kind == PREFERRED_AFFINITY else -t.weight) * carriers,
                )
        out: IntArray = np.zeros(len(slots), dtype=np.int64)
        for key, per_slot in weights.items():
            ids, _ = cache.domains(key)
            out += cache.per_domain(key, per_slot)[ids[slots]]  # -1: the last, zero, entry
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
