"""VolumeRestrictions: volumes that only one pod may use, as upstream's plugin.

Why: a ``ReadWriteOncePod`` claim may be used by a single pod in the whole cluster. A
second pod naming it must stay Pending (unschedulable on every node, with upstream's
message) until the first one is gone or preempted; the kubelet would otherwise mount
the volume twice. The same plugin keeps two pods on one node from mounting the same
in-tree disk read-write: a GCE PD (same ``pdName``, unless both are read-only), an AWS
EBS volume (same ``volumeID``), an iSCSI volume (same IQN, unless both are read-only) or
an RBD image (a shared Ceph monitor, same pool and image, unless both are read-only).

PreFilter reads the pod's ``persistentVolumeClaim`` volumes: a missing claim makes the
pod unschedulable and unresolvable (``persistentvolumeclaim "x" not found``). It
records which pods already use each ReadWriteOncePod claim. Filter counts those
users on the other nodes plus the pods on the node being judged, so preemption's "this
node without its victims" sees a claim freed by evicting its user (what upstream does
with its AddPod/RemovePod extensions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyk8s.scheduler.framework.interface import Code, CycleState, Status
from pyk8s.scheduler.framework.registry import Lister
from pyk8s.scheduler.framework.types import NodeInfo, Obj, pod_key
from pyk8s.scheduler.plugins.volumebinding import by_name

if TYPE_CHECKING:
    from pyk8s.scheduler.cache import Cache

NAME = "VolumeRestrictions"
ERR_REASON_DISK_CONFLICT = "node(s) had no available disk"
ERR_REASON_RWOP_CONFLICT = (
    "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode"
)
_STATE = NAME + "/state"
READ_WRITE_ONCE_POD = "ReadWriteOncePod"
EVENTS = (
    "Pod/Delete",
    "PersistentVolumeClaim/Add",
    "PersistentVolumeClaim/Update",
    "Node/Add",
)
_DISKS = ("gcePersistentDisk", "awsElasticBlockStore", "iscsi", "rbd")


@dataclass
class _State:
    #: ``namespace/claim`` of the pod's ReadWriteOncePod claims
    claims: set[str] = field(default_factory=set)
    #: pod key -> node of every scheduled pod that uses one of them
    users: dict[str, str] = field(default_factory=dict)
    #: the pod has in-tree disks that may conflict
    disks: bool = False


def _claim_volumes(pod: Obj) -> list[str]:
    return [
        str(v["persistentVolumeClaim"].get("claimName", ""))
        for v in (pod.get("spec") or {}).get("volumes") or []
        if v.get("persistentVolumeClaim")
    ]


def _uses(pod: Obj, claims: set[str]) -> bool:
    ns = str(pod["metadata"].get("namespace", ""))
    return any(f"{ns}/{name}" in claims for name in _claim_volumes(pod))


def _ro(src: Mapping[str, Any]) -> bool:
    return bool(src.get("readOnly"))


def volume_conflict(volume: Mapping[str, Any], other_pod: Obj) -> bool:
    """Upstream's ``isVolumeConflict``: does ``volume`` clash with one of ``other_pod``'s?"""
    for existing in (other_pod.get("spec") or {}).get("volumes") or []:
        a, b = volume.get("gcePersistentDisk"), existing.get("gcePersistentDisk")
        if a and b and a.get("pdName") == b.get("pdName") and not (_ro(a) and _ro(b)):
            return True
        a, b = volume.get("awsElasticBlockStore"), existing.get("awsElasticBlockStore")
        if a and b and a.get("volumeID") == b.get("volumeID"):
            return True
        a, b = volume.get("iscsi"), existing.get("iscsi")
        if a and b and a.get("iqn") == b.get("iqn") and not (_ro(a) and _ro(b)):
            return True
        a, b = volume.get("rbd"), existing.get("rbd")
        if (
            a
            and b
            and set(a.get("monitors") or ()) & set(b.get("monitors") or ())
            and (a.get("pool") or "rbd") == (b.get("pool") or "rbd")
            and a.get("image") == b.get("image")
            and not (_ro(a) and _ro(b))
        ):
            return True
    return False


class VolumeRestrictions:
    name = NAME

    def __init__(self, lister: Lister) -> None:
        self.lister = lister

    def events_to_register(self) -> Sequence[str]:
        return EVENTS

    def pre_filter(self, state: CycleState, pod: Obj, cache: Cache) -> Status | None:
        volumes = (pod.get("spec") or {}).get("volumes") or []
        data = _State(disks=any(any(v.get(d) for d in _DISKS) for v in volumes))
        names = _claim_volumes(pod)
        if names:
            ns = str(pod["metadata"].get("namespace", ""))
            claims = by_name(self.lister("", "v1", "persistentvolumeclaims", ns))
            for name in names:
                claim = claims.get(name)
                if claim is None:
                    return Status.unresolvable(
                        f'persistentvolumeclaim "{name}" not found', plugin=NAME
                    )
                if READ_WRITE_ONCE_POD in ((claim.get("spec") or {}).get("accessModes") or []):
                    data.claims.add(f"{ns}/{name}")
        if data.claims:
            for info in cache.node_infos():
                for key, other in info.pods.items():
                    if _uses(other, data.claims):
                        data.users[key] = info.name
        if not data.disks and not data.users:
            return Status(Code.SKIP)
        state[_STATE] = data
        return None

    def filter(self, state: CycleState, pod: Obj, node: NodeInfo) -> Status | None:
        data: _State | None = state.get(_STATE)
        if data is None:
            return None
        if data.disks:
            for volume in (pod.get("spec") or {}).get("volumes") or []:
                if any(volume_conflict(volume, other) for other in node.pods.values()):
                    return Status.unschedulable(ERR_REASON_DISK_CONFLICT, plugin=NAME)
        if data.claims:
            me = pod_key(pod)
            elsewhere = any(n != node.name for k, n in data.users.items() if k != me)
            here = any(k != me and _uses(other, data.claims) for k, other in node.pods.items())
            if elsewhere or here:
                return Status.unschedulable(ERR_REASON_RWOP_CONFLICT, plugin=NAME)
        return None
