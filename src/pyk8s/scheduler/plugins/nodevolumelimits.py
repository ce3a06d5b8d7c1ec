"""NodeVolumeLimits: a node takes no more CSI volumes of a driver than its CSINode says
(``spec.drivers[].allocatable.count``), as upstream's CSI volume limits plugin: the pod's
new volumes (bound claims by their PV's ``csi.driver``/``volumeHandle``, unbound ones by
their class's provisioner) plus the distinct ones the node's pods already use. A node
without a CSINode, or a driver without a count, has no limit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from pyk8s.api.pvbinding import claim_class
from pyk8s.scheduler.framework.interface import Code, CycleState, Status
from pyk8s.scheduler.framework.registry import Lister
from pyk8s.scheduler.framework.types import NodeInfo, Obj
from pyk8s.scheduler.plugins.volumebinding import by_name, pod_claim_names

if TYPE_CHECKING:
    from pyk8s.scheduler.cache import Cache

NAME = "NodeVolumeLimits"
ERR_REASON = "node(s) exceed max volume count"
_STATE = NAME + "/state"
EVENTS = ("CSINode/Add", "CSINode/Update", "PersistentVolumeClaim/Add", "Pod/Delete")


class NodeVolumeLimits:
    name = NAME

    def __init__(self, lister: Lister) -> None:
        self.lister = lister

    def events_to_register(self) -> Sequence[str]:
        return EVENTS

    def _volumes(
        self, pods: Iterable[Obj], pvs: Mapping[str, Obj], classes: Mapping[str, Obj]
    ) -> dict[str, str]:
        """Unique volume name -> CSI driver of the claims of ``pods``."""
        out: dict[str, str] = {}
        claims_by_ns: dict[str, dict[str, Obj]] = {}
        for pod in pods:
            ns = str(pod["metadata"].get("namespace", ""))
            if ns not in claims_by_ns:
                claims_by_ns[ns] = by_name(self.lister("", "v1", "persistentvolumeclaims", ns))
            for name, _ in pod_claim_names(pod):
                claim = claims_by_ns[ns].get(name)
                if claim is None:
                    continue
                pv = pvs.get(str((claim.get("spec") or {}).get("volumeName") or ""))
                if pv is not None:
                    csi = (pv.get("spec") or {}).get("csi") or {}
                    if csi.get("driver"):
                        out[f"{csi['driver']}/{csi.get('volumeHandle', '')}"] = csi["driver"]
                    continue
                sc = classes.get(claim_class(claim))
                if sc is not None and sc.get("provisioner"):
                    out[f"{sc['provisioner']}-{ns}/{name}"] = str(sc["provisioner"])
        return out

    def pre_filter(self, state: CycleState, pod: Obj, cache: Cache) -> Status | None:
        if not pod_claim_names(pod):
            return Status(Code.SKIP)
        limits: dict[str, dict[str, int]] = {}
        for csinode in self.lister("storage.k8s.io", "v1", "csinodes", ""):
            for d in (csinode.get("spec") or {}).get("drivers") or []:
                count = (d.get("allocatable") or {}).get("count")
                if count is not None:
                    limits.setdefault(csinode["metadata"]["name"], {})[d["name"]] = int(count)
        if not limits:
            return Status(Code.SKIP)
        pvs = {
            str(p["metadata"]["name"]): p for p in self.lister("", "v1", "persistentvolumes", "")
        }
        classes = {
            str(c["metadata"]["name"]): c
            for c in self.lister("storage.k8s.io", "v1", "storageclasses", "")
        }
        new = self._volumes([pod], pvs, classes)
        if not new:
            return Status(Code.SKIP)
        state[_STATE] = (limits, new, pvs, classes)
        return None

    def filter(self, state: CycleState, pod: Obj, node: NodeInfo) -> Status | None:
        if _STATE not in state:
            return None  # PreFilter skipped this pod (filters also run for preemption)
        limits, new, pvs, classes = state[_STATE]
        node_limits: dict[str, int] = limits.get(node.name) or {}
        if not any(d in node_limits for d in new.values()):
            return None
        used = self._volumes(node.pods.values(), pvs, classes)
        for driver, limit in node_limits.items():
            ours = {v for v, d in new.items() if d == driver}
            if not ours:
                continue
            theirs = {v for v, d in used.items() if d == driver}
            if len(theirs | ours) > limit:
                return Status.unschedulable(ERR_REASON, plugin=NAME)
        return None
