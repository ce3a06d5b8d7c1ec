"""TaintToleration: NoSchedule/NoExecute taints keep out pods that do not tolerate them;
PreferNoSchedule taints only lower a node's score."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pyk8s.api.taints import tolerated
from pyk8s.scheduler.framework.interface import (
    BoolArray,
    CycleState,
    IntArray,
    Status,
    default_normalize_score,
)
from pyk8s.scheduler.framework.types import NodeInfo, Obj

if TYPE_CHECKING:
    from pyk8s.scheduler.cache import Cache

NAME = "TaintToleration"


class TaintToleration:
    name = NAME

    def filter_all(
        self, state: CycleState, pod: Obj, cache: Cache, candidates: BoolArray
    ) -> BoolArray:
        """Untainted nodes pass at once; tainted ones are checked one by one."""
        passed: BoolArray = candidates.copy()
        for slot in np.flatnonzero(candidates & cache.hard_tainted):
            if self.filter(state, pod, cache.info(int(slot))) is not None:
                passed[slot] = False
        return passed

    def score_all(self, state: CycleState, pod: Obj, cache: Cache, slots: IntArray) -> IntArray:
        out: IntArray = np.zeros(len(slots), dtype=np.int64)
        for i in np.flatnonzero(cache.soft_tainted[slots]):
            out[i] = self.score(state, pod, cache.info(int(slots[i])))
        return out

    def filter(self, state: CycleState, pod: Obj, node: NodeInfo) -> Status | None:
        taints = node.taints
        if not taints:
            return None
        tolerations = (pod.get("spec") or {}).get("tolerations") or []
        for taint in taints:
            if taint.get("effect") not in ("NoSchedule", "NoExecute"):
                continue
            if not tolerated(tolerations, taint):
                return Status.unresolvable(
                    f"node(s) had untolerated taint {{{taint.get('key', '')}: "
                    f"{taint.get('value', '') or ''}}}",
                    plugin=NAME,
                )
        return None

    def score(self, state: CycleState, pod: Obj, node: NodeInfo) -> int:
        taints = node.taints
        if not taints:
            return 0
        tolerations = [
            t
            for t in (pod.get("spec") or {}).get("tolerations") or []
            if not t.get("effect") or t.get("effect") == "PreferNoSchedule"
        ]
        return sum(
            1
            for taint in taints
            if taint.get("effect") == "PreferNoSchedule" and not tolerated(tolerations, taint)
        )

    def normalize_score(self, state: CycleState, pod: Obj, scores: IntArray) -> IntArray:
        return default_normalize_score(np.asarray(scores, dtype=np.int64), reverse=True)
