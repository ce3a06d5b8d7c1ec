"""NodeUnschedulable: cordoned nodes (``spec.unschedulable``) take no new pods, unless
the pod tolerates the ``node.kubernetes.io/unschedulable:NoSchedule`` taint."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyk8s.api.taints import tolerated
from pyk8s.scheduler.framework.interface import BoolArray, CycleState, Status
from pyk8s.scheduler.framework.types import NodeInfo, Obj

if TYPE_CHECKING:
    from pyk8s.scheduler.cache import Cache

NAME = "NodeUnschedulable"
ERR_REASON = "node(s) were unschedulable"
TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


class NodeUnschedulable:
    name = NAME

    def filter_all(
        self, state: CycleState, pod: Obj, cache: Cache, candidates: BoolArray
    ) -> BoolArray:
        if tolerated((pod.get("spec") or {}).get("tolerations") or [], TAINT):
            return candidates
        passed: BoolArray = candidates & ~cache.cordoned
        return passed

    def filter(self, state: CycleState, pod: Obj, node: NodeInfo) -> Status | None:
        if not (node.node.get("spec") or {}).get("unschedulable"):
            return None
        if tolerated((pod.get("spec") or {}).get("tolerations") or [], TAINT):
            return None
        return Status.unresolvable(ERR_REASON, plugin=NAME)
