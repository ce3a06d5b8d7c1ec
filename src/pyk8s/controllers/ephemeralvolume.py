"""The ephemeral volume controller: one claim per generic ephemeral volume of a pod.

Why: a pod's ``ephemeral.volumeClaimTemplate`` volume is storage that lives and dies
with the pod, provided by any StorageClass. As upstream's ``ephemeral-volume-controller``,
for each such volume of a pod that is not being deleted, a PersistentVolumeClaim
``<pod>-<volume>`` is created from the template (its labels, annotations and spec), with
the pod as its controlling owner so the garbage collector removes it with the pod. A
claim of that name the pod does not own is left alone (the pod cannot start, as
upstream) and reported as a ``FailedBinding`` event on the pod.
"""

from __future__ import annotations

import copy
from typing import Any

from pyk8s.api import pvbinding as pvb
from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import WARNING, ApiError, EventRecorder, is_already_exists
from pyk8s.controllers.replicaset import new_controller_ref
from pyk8s.controllers.runtime import Manager, Request, Result, enqueue_owner

Obj = dict[str, Any]

PVCS: Resource = REGISTRY.get("", "v1", "persistentvolumeclaims")  # type: ignore[assignment]
PODS: Resource = REGISTRY.get("", "v1", "pods")  # type: ignore[assignment]


def ephemeral_claim(pod: Obj, volume: Obj) -> Obj:
    """The claim for ``volume`` (an ``ephemeral`` volume of ``pod``)."""
    template = (volume.get("ephemeral") or {}).get("volumeClaimTemplate") or {}
    tmeta = template.get("metadata") or {}
    meta: Obj = {
        "name": pvb.ephemeral_claim_name(pod, volume),
        "namespace": pod["metadata"]["namespace"],
        "ownerReferences": [new_controller_ref(pod, "v1", "Pod")],
    }
    for key in ("labels", "annotations"):
        if tmeta.get(key):
            meta[key] = dict(tmeta[key])
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta,
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


class EphemeralVolumeReconciler:
    def __init__(self, manager: Manager) -> None:
        self.client = manager.client
        self.recorder = EventRecorder(manager.client, component="ephemeral_volume")
        self.pods = manager.informers.informer(PODS)
        self.claims = manager.informers.informer(PVCS)

    async def reconcile(self, request: Request) -> Result | None:
        pod = self.pods.store.get_by_name(request.namespace, request.name)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return None
        for volume in (pod.get("spec") or {}).get("volumes") or ():
            if not volume.get("ephemeral"):
                continue
            name = pvb.ephemeral_claim_name(pod, volume)
            existing = self.claims.store.get_by_name(request.namespace, name)
            if existing is None:
                try:
                    await self.client.create(PVCS, ephemeral_claim(pod, volume), request.namespace)
                    continue
                except ApiError as err:
                    if not is_already_exists(err):
                        raise
                existing = await self.client.get(PVCS, name, request.namespace)
            owners = existing["metadata"].get("ownerReferences") or ()
            if not any(r.get("uid") == pod["metadata"].get("uid") for r in owners):
                self.recorder.event(
                    pod,
                    WARNING,
                    "FailedBinding",
                    f"PVC {request.namespace}/{name} was not created for pod "
                    f"{request.namespace}/{request.name} (pod is not owner)",
                )
        return None


def setup(manager: Manager) -> None:
    reconciler = EphemeralVolumeReconciler(manager)
    controller = manager.add("ephemeral-volume", reconciler, workers=1)
    controller.watch(reconciler.pods)
    controller.watch(reconciler.claims, enqueue_owner("Pod", "v1"))
