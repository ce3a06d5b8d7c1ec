"""NodeAffinity: ``spec.nodeSelector`` and required node affinity filter nodes;
preferred node affinity adds the weights of the terms a node matches to its score."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from pyk8s.scheduler.framework.interface import (
    Code,
    CycleState,
    IntArray,
    Status,
    default_normalize_score,
)
from pyk8s.scheduler.framework.types import NodeInfo, Obj
from pyk8s.scheduler.plugins.helpers import match_term, match_terms

if TYPE_CHECKING:
    from pyk8s.scheduler.cache import Cache

NAME = "NodeAffinity"
ERR_REASON = "node(s) didn't match Pod's node affinity/selector"


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
