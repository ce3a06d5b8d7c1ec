"""NodeResourcesBalancedAllocation: prefers nodes whose cpu and memory would be used in
equal fractions (score = (1 - |cpu fraction - memory fraction| / 2) * 100), over the
whole cluster at once with numpy."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pyk8s.scheduler.framework.interface import MAX_NODE_SCORE, CycleState, IntArray
from pyk8s.scheduler.framework.types import CPU, MEMORY, Obj
from pyk8s.scheduler.plugins.noderesourcesfit import _requests

if TYPE_CHECKING:
    from pyk8s.scheduler.cache import Cache


class NodeResourcesBalancedAllocation:
    """Prefers nodes whose cpu and memory would be used in equal fractions."""

    name = "NodeResourcesBalancedAllocation"

    def score_all(self, state: CycleState, pod: Obj, cache: Cache, slots: IntArray) -> IntArray:
        reqs = _requests(state, pod)
        want = np.array([reqs.get(CPU, 0), reqs.get(MEMORY, 0)], dtype=np.int64)
        if not want.any():  # best-effort pods: the plugin skips them (same for every node)
            return np.zeros(len(slots), dtype=np.int64)
        alloc = cache.allocatable[slots, :2].astype(np.float64)
        requested = (cache.requested[slots, :2] + want).astype(np.float64)
        frac = np.minimum(requested / np.where(alloc > 0, alloc, 1.0), 1.0)
        both = (alloc > 0).all(axis=1)
        std = np.where(both, np.abs(frac[:, 0] - frac[:, 1]) / 2.0, 0.0)
        out: IntArray = ((1.0 - std) * MAX_NODE_SCORE).astype(np.int64)
        return out
