"""NodeAffinity: ``spec.nodeSelector`` and required node affinity filter nodes;
preferred node affinity adds the weights of the terms a node matches to its score."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pyk8s.scheduler.framework.interface import (
    BoolArray,
    Code,
    CycleState,
    IntArray,
    Status,
    default_normalize_score,
)
from pyk8s.scheduler.framework.types import NodeInfo, Obj
from pyk8s.scheduler.plugins.helpers import match_expression, match_term, match_terms

if TYPE_CHECKING:
    from pyk8s.scheduler.cache import Cache

NAME = "NodeAffinity"
ERR_REASON = "node(s) didn't match Pod's node affinity/selector"


def term_mask(cache: Cache, term: Mapping[str, Any], candidates: BoolArray) -> BoolArray:
    """The nodes among ``candidates`` a NodeSelectorTerm matches. An expression is
    judged once per distinct value of its label (and once for "no such label"), then
    looked up per node through the cache's label column; an empty term matches nothing."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return np.zeros_like(candidates)
    out: BoolArray = candidates.copy()
    for expr in exprs:
        key = str(expr.get("key", ""))
        ids, index = cache.domains(key)
        table = np.zeros(len(index) + 1, dtype=np.bool_)  # the last: the label is absent
        for value, i in index.items():
            table[i] = match_expression(expr, {key: value})
        table[-1] = match_expression(expr, {})
        out &= table[ids]
    for slot in np.flatnonzero(out) if fields else ():
        name = {"metadata.name": cache.info(int(slot)).name}
        out[slot] = all(match_expression(f, name) for f in fields)
    return out


class NodeAffinity:
    name = NAME

    def pre_filter(self, state: CycleState, pod: Obj, cache: Cache) -> Status | None:
        spec = pod.get("spec") or {}
        affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
        if spec.get("nodeSelector") or "requiredDuringSchedulingIgnoredDuringExecution" in affinity:
            return None
        return Status(Code.SKIP)

    def pre_score(self, state: CycleState, pod: Obj, nodes: Sequence[NodeInfo]) -> Status | None:
        affinity = ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}
        if affinity.get("preferredDuringSchedulingIgnoredDuringExecution"):
            return None
        return Status(Code.SKIP)

    def filter(self, state: CycleState, pod: Obj, node: NodeInfo) -> Status | None:
        spec = pod.get("spec") or {}
        selector = spec.get("nodeSelector") or {}
        if selector:
            labels = node.labels
            if any(labels.get(k) != v for k, v in selector.items()):
                return Status.unresolvable(ERR_REASON, plugin=NAME)
        affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
        required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
        if required is not None and not match_terms(
            required.get("nodeSelectorTerms") or [], node.node
        ):
            return Status.unresolvable(ERR_REASON, plugin=NAME)
        return None

    def filter_all(
        self, state: CycleState, pod: Obj, cache: Cache, candidates: BoolArray
    ) -> BoolArray:
        """``filter`` over every node at once, one vector op per selector entry and term
        expression (see :func:`term_mask`)."""
        spec = pod.get("spec") or {}
        passed: BoolArray = candidates.copy()
        for key, value in (spec.get("nodeSelector") or {}).items():
            passed &= cache.in_domains(str(key), [str(value)])
        affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
        required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
        if required is not None:
            matched = np.zeros_like(passed)
            for term in required.get("nodeSelectorTerms") or []:
                matched |= term_mask(cache, term, passed & ~matched)
            passed &= matched
        return passed

    def score_all(self, state: CycleState, pod: Obj, cache: Cache, slots: IntArray) -> IntArray:
        """The weights of the preferred terms each node in ``slots`` matches."""
        affinity = ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}
        candidates = np.zeros_like(cache.valid)
        candidates[slots] = True
        total = np.zeros(cache.valid.shape[0], dtype=np.int64)
        for term in affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or []:
            weight = int(term.get("weight") or 0)
            if weight:
                total += weight * term_mask(cache, term.get("preference") or {}, candidates)
        out: IntArray = total[slots]
        return out

    def score(self, state: CycleState, pod: Obj, node: NodeInfo) -> int:
        affinity = ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}
        total = 0
        for term in affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or []:
            weight = int(term.get("weight") or 0)
            if weight and match_term(term.get("preference") or {}, node.node):
                total += weight
        return total

    def normalize_score(self, state: CycleState, pod: Obj, scores: IntArray) -> IntArray:
        return default_normalize_score(np.asarray(scores, dtype=np.int64), reverse=False)
