"""PodTopologySpread: spread matching pods evenly over topology domains (zones, hosts, …).

``whenUnsatisfiable: DoNotSchedule`` constraints are a Filter: placing the pod on a node
must not make its domain exceed the emptiest domain by more than ``maxSkew`` (with
``minDomains``: fewer domains than that count the minimum as 0). ``ScheduleAnyway``
constraints are a Score: fewer matching pods in a node's domains is better, each
constraint weighted by log(number of domains + 2), then normalised so the best node gets
100. A pod without constraints gets upstream's system defaults (hostname maxSkew 3, zone
maxSkew 5, both ScheduleAnyway) with a selector built from the Services, and the
ReplicationController/ReplicaSet/StatefulSet controlling it (upstream's DefaultSelector).

Only nodes that pass the pod's nodeSelector/required node affinity count as domains
(``nodeAffinityPolicy: Honor``, the default); taints are ignored unless
``nodeTaintsPolicy: Honor``. ``matchLabelKeys`` adds ``key in (pod's value)`` to the
selector. Matching pods are counted per node by a counter the cache keeps current
(:meth:`Cache.counts`, one per namespace and selector), summed per domain in one vector
op: a cycle does not walk the placed pods.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from pyk8s.api.selectors import LabelSelector, Requirement, label_selector_from_dict
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
from pyk8s.scheduler.plugins.helpers import is_terminating, pod_labels, pod_namespace
from pyk8s.scheduler.plugins.nodeaffinity import NodeAffinity
from pyk8s.scheduler.plugins.tainttoleration import TaintToleration

if TYPE_CHECKING:
    from pyk8s.scheduler.cache import Cache

NAME = "PodTopologySpread"
ERR_REASON_CONSTRAINTS_NOT_MATCH = "node(s) didn't match pod topology spread constraints"
ERR_REASON_NODE_LABEL_NOT_MATCH = ERR_REASON_CONSTRAINTS_NOT_MATCH + " (missing required label)"
HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
#: upstream's ``systemDefaultConstraints``
SYSTEM_DEFAULTS = ((HOSTNAME, 3), (ZONE, 5))
_FILTER = NAME + "/filter"
_SCORE = NAME + "/score"


@dataclass(frozen=True)
class Constraint:
    max_skew: int
    topology_key: str
    selector: LabelSelector
    min_domains: int = 1
    honor_affinity: bool = True
    honor_taints: bool = False


@dataclass
class _FilterState:
    constraints: list[Constraint]
    #: per constraint: matching pods per domain, indexed by the cache's id of the
    #: domain's value (``Cache.domains``), the last entry for "no such label"
    counts: list[npt.NDArray[np.int64]] = field(default_factory=list)
    #: per constraint: the cache's value -> id of its topology key
    index: list[dict[str, int]] = field(default_factory=list)
    self_match: list[int] = field(default_factory=list)
    #: per constraint: the smallest domain count (0 below minDomains), computed once per
    #: pod in PreFilter rather than once per node in Filter
    min_match: list[int] = field(default_factory=list)


def _constraint(c: Mapping[str, Any], pod: Obj) -> Constraint:
    selector = label_selector_from_dict(c.get("labelSelector"))
    labels = pod_labels(pod)
    extra = [
        Requirement(str(k), "in", (labels[str(k)],))
        for k in c.get("matchLabelKeys") or []
        if str(k) in labels
    ]
    if extra:
        selector = selector.add(*extra)
    return Constraint(
        max_skew=int(c.get("maxSkew") or 1),
        topology_key=str(c.get("topologyKey") or ""),
        selector=selector,
        min_domains=int(c.get("minDomains") or 1),
        honor_affinity=(c.get("nodeAffinityPolicy") or "Honor") == "Honor",
        honor_taints=(c.get("nodeTaintsPolicy") or "Ignore") == "Honor",
    )


def _owner(pod: Obj) -> Mapping[str, Any] | None:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def default_selector(pod: Obj, lister: Lister) -> LabelSelector:
    """Upstream's ``DefaultSelector``: the selectors of the pod's Services, merged with
    those of the RC/ReplicaSet/StatefulSet that controls it."""
    ns = pod_namespace(pod)
    labels = pod_labels(pod)
    merged: dict[str, str] = {}
    for svc in lister("", "v1", "services", ns):
        sel = (svc.get("spec") or {}).get("selector")
        if sel and LabelSelector.from_set(sel).matches(labels):
            merged.update(sel)
    selector = LabelSelector.from_set(merged)
    owner = _owner(pod)
    if owner is None:
        return selector
    kind, api_version, name = owner.get("kind"), owner.get("apiVersion"), owner.get("name")
    if kind == "ReplicationController" and api_version == "v1":
        for rc in lister("", "v1", "replicationcontrollers", ns):
            if rc["metadata"].get("name") == name:
                merged.update((rc.get("spec") or {}).get("selector") or {})
                selector = LabelSelector.from_set(merged)
    elif (kind, api_version) in (("ReplicaSet", "apps/v1"), ("StatefulSet", "apps/v1")):
        plural = "replicasets" if kind == "ReplicaSet" else "statefulsets"
        for obj in lister("apps", "v1", plural, ns):
            if obj["metadata"].get("name") == name:
                other = label_selector_from_dict((obj.get("spec") or {}).get("selector"))
                if not other.selects_nothing:
                    selector = selector.add(*other.requirements)
    return selector


class PodTopologySpread:
    name = NAME

    def __init__(self, lister: Lister) -> None:
        self.lister = lister
        self._node_affinity = NodeAffinity()
        self._taints = TaintToleration()

    # ---------------------------------------------------------------- constraints

    def constraints(self, pod: Obj, action: str) -> tuple[list[Constraint], bool]:
        """The pod's constraints for ``action`` (DoNotSchedule / ScheduleAnyway), and
        whether they are the system defaults."""
        spec = pod.get("spec") or {}
        own = spec.get("topologySpreadConstraints") or []
        if own:
            return [_constraint(c, pod) for c in own if c.get("whenUnsatisfiable") == action], False
        if action != "ScheduleAnyway":
            return [], True
        selector = default_selector(pod, self.lister)
        if selector.empty:
            return [], True
        return [Constraint(skew, key, selector) for key, skew in SYSTEM_DEFAULTS], True

    def _included(
        self, constraints: Sequence[Constraint], pod: Obj, cache: Cache, state: CycleState
    ) -> list[BoolArray]:
        """Per constraint, the nodes whose domains count: those passing the pod's node
        affinity (``nodeAffinityPolicy: Honor``) and taints (``nodeTaintsPolicy: Honor``)."""
        affinity = taints = None
        out: list[BoolArray] = []
        for c in constraints:
            mask = cache.valid.copy()
            if c.honor_affinity:
                if affinity is None:
                    affinity = self._node_affinity.filter_all(state, pod, cache, cache.valid)
                mask &= affinity
            if c.honor_taints:
                if taints is None:
                    taints = self._taints.filter_all(state, pod, cache, cache.valid)
                mask &= taints
            out.append(mask)
        return out

    @staticmethod
    def _matching(cache: Cache, pod: Obj, c: Constraint) -> IntArray:
        """Per slot: the pods of ``pod``'s namespace that ``c``'s selector matches and are
        not being deleted (a counter the cache keeps current)."""
        ns = pod_namespace(pod)
        selector = c.selector

        def matches(other: Obj) -> bool:
            return not is_terminating(other) and selector.matches(pod_labels(other))

        return cache.count((NAME, ns, selector), matches, frozenset((ns,)))

    @staticmethod
    def _labelled(cache: Cache, keys: Sequence[str]) -> BoolArray:
        """The nodes carrying every one of the labels ``keys``."""
        mask = cache.valid.copy()
        for key in keys:
            mask &= cache.domains(key)[0] >= 0
        return mask

    @staticmethod
    def _present(cache: Cache, key: str, nodes: BoolArray) -> BoolArray:
        """Per domain id of label ``key`` (the last: no label, never present): some node
        of ``nodes`` is in it."""
        ids, index = cache.domains(key)
        present = np.zeros(len(index) + 1, dtype=np.bool_)
        present[ids[nodes]] = True
        present[-1] = False
        return present

    # ---------------------------------------------------------------- filter

    def pre_filter(self, state: CycleState, pod: Obj, cache: Cache) -> Status | None:
        constraints, _ = self.constraints(pod, "DoNotSchedule")
        if not constraints:
            return Status(Code.SKIP)
        fs = _FilterState(constraints)
        labelled = self._labelled(cache, [c.topology_key for c in constraints])
        included = [m & labelled for m in self._included(constraints, pod, cache, state)]
        for i, c in enumerate(constraints):
            # in id space: a hostname key has as many domains as nodes; pods count on the
            # nodes the constraint includes, as upstream's PreFilter
            counts = cache.per_domain(c.topology_key, self._matching(cache, pod, c), included[i])
            present = self._present(cache, c.topology_key, included[i])
            domains = int(present.sum())
            fs.counts.append(counts)
            fs.index.append(cache.domains(c.topology_key)[1])
            fs.min_match.append(
                0 if domains < c.min_domains or not domains else int(counts[present].min())
            )
        labels = pod_labels(pod)
        fs.self_match = [1 if c.selector.matches(labels) else 0 for c in constraints]
        state[_FILTER] = fs
        return None

    def filter(self, state: CycleState, pod: Obj, node: NodeInfo) -> Status | None:
        fs: _FilterState | None = state.get(_FILTER)
        if fs is None:
            return None
        labels = (node.node.get("metadata") or {}).get("labels") or {}
        for c in fs.constraints:
            if c.topology_key not in labels:
                return Status.unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH, plugin=NAME)
        for i, c in enumerate(fs.constraints):
            at = fs.index[i].get(labels[c.topology_key])
            match = 0 if at is None or at >= len(fs.counts[i]) - 1 else int(fs.counts[i][at])
            if match + fs.self_match[i] - fs.min_match[i] > c.max_skew:
                return Status.unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH, plugin=NAME)
        return None

    def filter_all(
        self, state: CycleState, pod: Obj, cache: Cache, candidates: BoolArray
    ) -> BoolArray:
        """``filter`` over every node at once: each node's domain count is looked up by
        its label id."""
        fs: _FilterState | None = state.get(_FILTER)
        passed: BoolArray = candidates.copy()
        if fs is None:
            return passed
        for i, c in enumerate(fs.constraints):
            ids, _ = cache.domains(c.topology_key)
            allowed = fs.counts[i] + fs.self_match[i] - fs.min_match[i] <= c.max_skew
            passed &= (ids >= 0) & allowed[ids]
        return passed

    # ---------------------------------------------------------------- score

    def pre_score(self, state: CycleState, pod: Obj, nodes: Sequence[NodeInfo]) -> Status | None:
        constraints, defaulted = self.constraints(pod, "ScheduleAnyway")
        if not constraints:
            return Status(Code.SKIP)
        state[_SCORE] = (constraints, defaulted)
        return None

    def score_all(self, state: CycleState, pod: Obj, cache: Cache, slots: IntArray) -> IntArray:
        entry = state.get(_SCORE)
        if entry is None:
            entry = self.constraints(pod, "ScheduleAnyway")
        constraints, defaulted = entry
        n = len(slots)
        if not constraints:
            state[_SCORE + "/ignored"] = np.zeros(n, dtype=np.bool_)
            return np.zeros(n, dtype=np.int64)
        own = bool((pod.get("spec") or {}).get("topologySpreadConstraints"))
        require_all = own or not defaulted
        labelled = self._labelled(cache, [c.topology_key for c in constraints])
        ignored = ~labelled[slots] if require_all else np.zeros(n, dtype=np.bool_)
        kept = np.zeros_like(cache.valid)
        kept[slots[~ignored]] = True
        # domains present among the feasible nodes, per non-hostname constraint
        present = [
            None if c.topology_key == HOSTNAME else self._present(cache, c.topology_key, kept)
            for c in constraints
        ]
        weights = [
            math.log((n - int(ignored.sum()) if p is None else int(p.sum())) + 2) for p in present
        ]
        # count matching pods on every node of the cluster that is in those domains
        eligible = np.logical_and.reduce(self._included(constraints, pod, cache, state))
        if require_all:
            eligible &= labelled
        total = np.zeros(n, dtype=np.float64)
        for i, c in enumerate(constraints):
            ids, _ = cache.domains(c.topology_key)
            matching = self._matching(cache, pod, c)
            domains = present[i]
            if domains is None:  # hostname: the pods on the node itself, eligible or not
                table = cache.per_domain(c.topology_key, matching).astype(np.float64)
            else:
                counted = cache.per_domain(c.topology_key, matching, eligible)
                table = np.where(domains, counted, 0).astype(np.float64)
            table *= weights[i]
            table += c.max_skew - 1
            table[-1] = 0.0
            total += table[ids[slots]]
        out: IntArray = np.floor(total + 0.5).astype(np.int64)  # Go's math.Round, x >= 0
        out[ignored] = 0
        state[_SCORE + "/ignored"] = ignored
        return out

    def normalize_score(self, state: CycleState, pod: Obj, scores: IntArray) -> IntArray:
        scores = np.asarray(scores, dtype=np.int64)
        ignored = state.get(_SCORE + "/ignored")
        if ignored is None or len(ignored) != len(scores):
            ignored = np.zeros(len(scores), dtype=np.bool_)
        kept = scores[~ignored]
        if kept.size == 0:
            return np.zeros_like(scores)
        lo, hi = int(kept.min()), int(kept.max())
        if hi == 0:
            out = np.full_like(scores, MAX_NODE_SCORE)
        else:
            out = MAX_NODE_SCORE * (hi + lo - scores) // hi
        out[ignored] = 0
        result: IntArray = out
        return result
