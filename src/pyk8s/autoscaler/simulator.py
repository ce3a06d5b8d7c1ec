"""Would this pod fit there? Answered by the scheduler's own plugins (upstream's
cluster-autoscaler embeds the scheduler framework the same way), never by a second copy
of the rules.

A :class:`Simulator` holds one framework built from the default profile with binding and
preemption switched off. The autoscaler builds a scheduler :class:`Cache` (the snapshot)
from its informers and asks where pods would land; placing a pod *assumes* it on the
node, so the next question sees the node's capacity used up, as a scheduling cycle would.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from pyk8s.autoscaler.config import NodeGroup
from pyk8s.scheduler.cache import Cache
from pyk8s.scheduler.framework.interface import CycleState, Status, is_success
from pyk8s.scheduler.framework.registry import build_framework
from pyk8s.scheduler.framework.types import Obj, pod_key

__all__ = ["Estimate", "Simulator", "equivalence_key", "is_terminal"]

#: the default profile minus what acts on the cluster
#: the simulator has no volume informers: the volume plugins stay out of its profile
_SIMULATION_PROFILE = {
    "multiPoint": {
        "disabled": [
            {"name": n}
            for n in (
                "DefaultBinder",
                "DefaultPreemption",
                "VolumeBinding",
                "VolumeZone",
                "NodeVolumeLimits",
                "VolumeRestrictions",
            )
        ]
    }
}


def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def equivalence_key(pod: Obj) -> bytes | None:
    """Pods of one controller with the same labels and spec fit the same places
    (upstream's pod equivalence groups): one answer serves them all. None for pods
    without a controller."""
    meta = pod.get("metadata") or {}
    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
    if owner is None:
        return None
    spec = {k: v for k, v in (pod.get("spec") or {}).items() if k != "nodeName"}
    return orjson.dumps(
        [owner.get("uid"), meta.get("labels") or {}, spec], option=orjson.OPT_SORT_KEYS
    )


@dataclass
class Estimate:
    """How one group would help: nodes to add and the pods they would take."""

    group: NodeGroup
    node_count: int = 0
    helped: list[Obj] = field(default_factory=list)
    #: pod key -> why the group's template cannot take it
    rejected: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: pods the template fits but the group's maxSize leaves no room for
    max_reached: list[str] = field(default_factory=list)


class Simulator:
    def __init__(self) -> None:
        self.framework = build_framework("cluster-autoscaler", None, _SIMULATION_PROFILE)

    @staticmethod
    def snapshot(nodes: Iterable[Obj], pods: Iterable[Obj]) -> Cache:
        """A scheduler cache of ``nodes`` with the (non-terminal) pods bound to them."""
        cache = Cache()
        for node in nodes:
            cache.add_node(node)
        for pod in pods:
            if (pod.get("spec") or {}).get("nodeName") and not is_terminal(pod):
                cache.add_pod(pod)
        return cache

    def place(self, cache: Cache, pod: Obj, hint: str | None = None) -> str | None:
        """A node of ``cache`` the pod fits (``hint`` tried first); the pod is assumed
        there. None when no node fits."""
        state = CycleState()
        if not is_success(self.framework.run_pre_filter(state, pod, cache)):
            return None
        info = cache.nodes.get(hint) if hint else None
        if info is not None and is_success(self.framework.run_filters(state, pod, info)):
            cache.assume_pod(pod, info.name)
            return info.name
        slots, _ = self.framework.find_feasible(state, pod, cache)
        if len(slots) == 0:
            return None
        name = cache.info(int(slots[0])).name
        cache.assume_pod(pod, name)
        return name

    def template_fit(self, template: Cache, pod: Obj) -> Status | None:
        """Why the one empty node of ``template`` would not take ``pod`` (None: it
        would)."""
        state = CycleState()
        st = self.framework.run_pre_filter(state, pod, template)
        if not is_success(st):
            return st
        info = next(template.node_infos())
        return self.framework.run_filters(state, pod, info)

    def estimate(self, group: NodeGroup, pods: list[Obj], room: int, prefix: str) -> Estimate:
        """Bin-pack ``pods`` onto at most ``room`` new nodes of ``group`` (upstream's
        binpacking estimator, filling the newest node first)."""
        est = Estimate(group)
        cache = Cache()
        template = Cache()
        template.add_node(group.template_node(f"template-node-for-{group.name}"))
        last: str | None = None
        fits: dict[bytes, Status | None] = {}
        for pod in pods:
            key = pod_key(pod)
            group_key = equivalence_key(pod)
            if group_key is None:
                st = self.template_fit(template, pod)
            elif group_key in fits:
                st = fits[group_key]
            else:
                st = fits[group_key] = self.template_fit(template, pod)
            if not is_success(st):
                assert st is not None
                est.rejected[key] = st.reasons or (st.message,)
                continue
            if last is not None and self.place(cache, pod, hint=last) is not None:
                est.helped.append(pod)
                continue
            if est.node_count >= room:
                est.max_reached.append(key)
                continue
            last = f"{prefix}{group.name}-{est.node_count}"
            cache.add_node(group.template_node(last))
            est.node_count += 1
            if self.place(cache, pod, hint=last) is None:  # a pod only the empty node fits
                est.max_reached.append(key)
                continue
            est.helped.append(pod)
        return est
