"""DefaultPreemption (PostFilter): when no node fits, would evicting lower-priority pods
help? This build answers the question as upstream's dry run does — and reports it in the
``preemption: …`` part of the FailedScheduling message — but does not evict yet.

Per node: a rejection no eviction can fix (UnschedulableAndUnresolvable) → "Preemption is
not helpful for scheduling"; no pod of lower priority → "No preemption victims found for
incoming pod"; otherwise the filters are run again without those pods.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from pyk8s.scheduler.framework.interface import Code, CycleState, Status, is_success
from pyk8s.scheduler.framework.types import (
    NodeInfo,
    Obj,
    host_ports,
    pod_key,
    pod_priority,
    pod_requests,
)

if TYPE_CHECKING:
    from pyk8s.scheduler.cache import Cache

NAME = "DefaultPreemption"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"


def without(node: NodeInfo, victims: list[Obj]) -> NodeInfo:
    """A copy of ``node`` as if ``victims`` were gone."""
    gone = {pod_key(p) for p in victims}
    requested = dict(node.requested)
    ports = dict(node.used_ports)
    for p in victims:
        for res, amount in pod_requests(p).items():
            requested[res] = requested.get(res, 0) - amount
        for port in host_ports(p):
            ports[port] = ports.get(port, 1) - 1
            if ports[port] <= 0:
                del ports[port]
    return NodeInfo(
        node=node.node,
        slot=node.slot,
        pods={k: v for k, v in node.pods.items() if k not in gone},
        used_ports=ports,
        requested=requested,
        allocatable=node.allocatable,
        images=node.images,
    )


class DefaultPreemption:
    name = NAME

    def __init__(self, run_filters: Callable[[CycleState, Obj, NodeInfo], Status | None]) -> None:
        self.run_filters = run_filters

    def post_filter(
        self, state: CycleState, pod: Obj, cache: Cache, statuses: Mapping[str, Status]
    ) -> tuple[str | None, Status | None]:
        if (pod.get("spec") or {}).get("preemptionPolicy") == "Never":
            return None, Status.unschedulable(
                "not eligible due to preemptionPolicy=Never.", plugin=NAME
            )
        priority = pod_priority(pod)
        results: dict[str, Status] = {}
        for info in cache.node_infos():
            st = statuses.get(info.name)
            if st is not None and st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                results[info.name] = Status.unresolvable(NOT_HELPFUL)
                continue
            victims = [p for p in info.pods.values() if pod_priority(p) < priority]
            if not victims:
                results[info.name] = Status.unresolvable(NO_VICTIMS)
                continue
            again = self.run_filters(state, pod, without(info, victims))
            if not is_success(again):
                assert again is not None
                results[info.name] = again
            # else: a candidate — evicting is not built yet, so it is simply not reported
        if len(results) < len(cache):
            return None, None
        from pyk8s.scheduler.framework.runtime import fit_error_message

        return None, Status.unschedulable(
            "preemption: " + fit_error_message(len(cache), results), plugin=NAME
        )
