"""PrioritySort: higher ``spec.priority`` first, then the pod that entered the queue first."""

from __future__ import annotations

from pyk8s.scheduler.framework.types import Obj, pod_priority

NAME = "PrioritySort"


class PrioritySort:
    name = NAME

    def less(self, a: Obj, a_timestamp: float, b: Obj, b_timestamp: float) -> bool:
        pa, pb = pod_priority(a), pod_priority(b)
        return pa > pb or (pa == pb and a_timestamp < b_timestamp)
