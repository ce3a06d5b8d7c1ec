"""NodeName: a pod that names its node (``spec.nodeName``) fits only there."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyk8s.scheduler.framework.interface import Code, CycleState, Status
from pyk8s.scheduler.framework.types import NodeInfo, Obj

if TYPE_CHECKING:
    from pyk8s.scheduler.cache import Cache

NAME = "NodeName"
ERR_REASON = "node(s) didn't match the requested node name"


class NodeName:
    name = NAME

    def pre_filter(self, state: CycleState, pod: Obj, cache: Cache) -> Status | None:
        if not (pod.get("spec") or {}).get("nodeName"):
            return Status(Code.SKIP)
        return None

    def filter(self, state: CycleState, pod: Obj, node: NodeInfo) -> Status | None:
        wanted = (pod.get("spec") or {}).get("nodeName")
        if wanted and wanted != node.name:
            return Status.unresolvable(ERR_REASON, plugin=NAME)
        return None
