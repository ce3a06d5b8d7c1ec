"""NodePorts: two pods cannot use the same hostPort (and protocol) on one node; 0.0.0.0
conflicts with every address."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyk8s.scheduler.framework.interface import Code, CycleState, Status
from pyk8s.scheduler.framework.types import NodeInfo, Obj, host_ports

if TYPE_CHECKING:
    from pyk8s.scheduler.cache import Cache

NAME = "NodePorts"
ERR_REASON = "node(s) didn't have free ports for the requested pod ports"


class NodePorts:
    name = NAME

    def pre_filter(self, state: CycleState, pod: Obj, cache: Cache) -> Status | None:
        state[NAME] = host_ports(pod)
        return None if state[NAME] else Status(Code.SKIP)

    def filter(self, state: CycleState, pod: Obj, node: NodeInfo) -> Status | None:
        wanted = state.get(NAME)
        if wanted is None:
            wanted = state[NAME] = host_ports(pod)
        if not wanted or not node.used_ports:
            return None
        for ip, proto, port in wanted:
            for uip, uproto, uport in node.used_ports:
                if (uport, uproto) == (port, proto) and (ip == uip or "0.0.0.0" in (ip, uip)):
                    return Status.unschedulable(ERR_REASON, plugin=NAME)
        return None
