"""VolumeZone: a pod whose bound PersistentVolumes carry zone/region labels fits only
nodes in those zones/regions, as upstream's ``VolumeZone`` plugin (a label value may list
several zones joined by ``__``). Unbound claims are left to VolumeBinding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pyk8s.scheduler.framework.interface import Code, CycleState, Status
from pyk8s.scheduler.framework.registry import Lister
from pyk8s.scheduler.framework.types import NodeInfo, Obj
from pyk8s.scheduler.plugins.volumebinding import pod_claim_names

if TYPE_CHECKING:
    from pyk8s.scheduler.cache import Cache

NAME = "VolumeZone"
ERR_REASON = "node(s) had no available volume zone"
TOPOLOGY_LABELS = (
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
)
_STATE = NAME + "/state"
EVENTS = ("PersistentVolumeClaim/Add", "PersistentVolume/Add", "PersistentVolume/Update")


class VolumeZone:
    name = NAME

    def __init__(self, lister: Lister) -> None:
        self.lister = lister

    def events_to_register(self) -> Sequence[str]:
        return EVENTS

    def pre_filter(self, state: CycleState, pod: Obj, cache: Cache) -> Status | None:
        names = {n for n, _ in pod_claim_names(pod)}
        if not names:
            return Status(Code.SKIP)
        ns = str(pod["metadata"].get("namespace", ""))
        volumes = {
            c["spec"]["volumeName"]
            for c in self.lister("", "v1", "persistentvolumeclaims", ns)
            if c["metadata"]["name"] in names and (c.get("spec") or {}).get("volumeName")
        }
        wanted: list[tuple[str, set[str]]] = []
        for pv in self.lister("", "v1", "persistentvolumes", ""):
            if pv["metadata"]["name"] not in volumes:
                continue
            labels = pv["metadata"].get("labels") or {}
            for key in TOPOLOGY_LABELS:
                if key in labels:
                    wanted.append((key, set(str(labels[key]).split("__"))))
        if not wanted:
            return Status(Code.SKIP)
        state[_STATE] = wanted
        return None

    def filter(self, state: CycleState, pod: Obj, node: NodeInfo) -> Status | None:
        labels = node.labels
        for key, values in state.get(_STATE) or []:
            if labels.get(key) not in values:
                return Status.unresolvable(ERR_REASON, plugin=NAME)
        return None
