"""The PV protection controller: a volume bound to a claim is not removed under it.

Why: deleting a bound PersistentVolume object would orphan the claim and the data its
pods use. As upstream's ``pv-protection-controller``, every volume carries the
``kubernetes.io/pv-protection`` finalizer (added at create by the
StorageObjectInUseProtection admission plugin, and here for volumes that lack it); a
volume being deleted keeps it — ``Terminating`` — while its phase is Bound.
"""

from __future__ import annotations

from typing import Any

from pyk8s.api import pvbinding as pvb
from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.controllers.pvcprotection import set_finalizer
from pyk8s.controllers.runtime import Manager, Request, Result

Obj = dict[str, Any]

PVS: Resource = REGISTRY.get("", "v1", "persistentvolumes")  # type: ignore[assignment]


class PVProtectionReconciler:
    def __init__(self, manager: Manager) -> None:
        self.client = manager.client
        self.volumes = manager.informers.informer(PVS)

    async def reconcile(self, request: Request) -> Result | None:
        volume = self.volumes.store.get_by_name(None, request.name)
        if volume is None:
            return None
        deleting = bool(volume["metadata"].get("deletionTimestamp"))
        if not deleting:
            await set_finalizer(self.client, PVS, volume, pvb.PV_PROTECTION_FINALIZER, True)
        elif (volume.get("status") or {}).get("phase") != "Bound":
            await set_finalizer(self.client, PVS, volume, pvb.PV_PROTECTION_FINALIZER, False)
        return None


def setup(manager: Manager) -> None:
    reconciler = PVProtectionReconciler(manager)
    controller = manager.add("pv-protection", reconciler, workers=1)
    controller.watch(reconciler.volumes)
