"""The PVC protection controller: a claim a pod uses is not removed under it.

Why: deleting a PersistentVolumeClaim while a pod still mounts it would free (and, with
reclaim Delete, destroy) the data under a running workload. As upstream's
``pvc-protection-controller``, every claim carries the ``kubernetes.io/pvc-protection``
finalizer (added at create by the StorageObjectInUseProtection admission plugin, and by
this controller for claims that lack it); a claim being deleted keeps it — and so stays
``Terminating`` — while any pod of its namespace that is not terminated (phase neither
Succeeded nor Failed) names it in a ``persistentVolumeClaim`` or generic ephemeral
volume. Before removing the finalizer the pods are listed live from the API server, not
only from the cache, as upstream does: a pod created a moment ago must not be missed.
"""

from __future__ import annotations

import logging
from typing import Any

from pyk8s.api import pvbinding as pvb
from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import ApiError, is_not_found
from pyk8s.controllers.runtime import Manager, Request, Result

log = logging.getLogger(__name__)

Obj = dict[str, Any]

PVCS: Resource = REGISTRY.get("", "v1", "persistentvolumeclaims")  # type: ignore[assignment]
PODS: Resource = REGISTRY.get("", "v1", "pods")  # type: ignore[assignment]


def uses_claim(pod: Obj, claim_name: str) -> bool:
    return not pvb.pod_is_terminated(pod) and claim_name in pvb.pod_claim_names(pod)


def pod_claims(pod: Obj) -> list[Request]:
    ns = str((pod.get("metadata") or {}).get("namespace", ""))
    return [Request(ns, name) for name in pvb.pod_claim_names(pod)]


async def set_finalizer(
    client: Any, resource: Resource, obj: Obj, finalizer: str, present: bool
) -> None:
    """Add or remove ``finalizer`` with a compare-and-swap patch (NotFound is done)."""
    meta = obj.get("metadata") or {}
    finalizers = list(meta.get("finalizers") or [])
    if (finalizer in finalizers) == present:
        return
    finalizers = [*finalizers, finalizer] if present else [f for f in finalizers if f != finalizer]
    patch = {"metadata": {"finalizers": finalizers, "resourceVersion": meta.get("resourceVersion")}}
    try:
        await client.patch(
            resource, meta["name"], patch, meta.get("namespace") or None, patch_type="merge"
        )
    except ApiError as err:
        if not is_not_found(err):
            raise


class PVCProtectionReconciler:
    def __init__(self, manager: Manager) -> None:
        self.client = manager.client
        self.claims = manager.informers.informer(PVCS)
        self.pods = manager.informers.informer(PODS)

    async def reconcile(self, request: Request) -> Result | None:
        claim = self.claims.store.get_by_name(request.namespace, request.name)
        if claim is None:
            return None
        meta = claim["metadata"]
        finalizers = meta.get("finalizers") or ()
        if not meta.get("deletionTimestamp"):
            await set_finalizer(self.client, PVCS, claim, pvb.PVC_PROTECTION_FINALIZER, True)
            return None
        if pvb.PVC_PROTECTION_FINALIZER not in finalizers:
            return None
        cached = self.pods.store.by_index("namespace", request.namespace)
        if any(uses_claim(p, request.name) for p in cached):
            return None
        live = await self.client.list(PODS, request.namespace)
        if any(uses_claim(p, request.name) for p in live.get("items") or ()):
            return None
        log.info("claim %s is no longer used by pods: removing its finalizer", request)
        await set_finalizer(self.client, PVCS, claim, pvb.PVC_PROTECTION_FINALIZER, False)
        return None


def setup(manager: Manager) -> None:
    reconciler = PVCProtectionReconciler(manager)
    controller = manager.add("pvc-protection", reconciler, workers=1)
    controller.watch(reconciler.claims)
    controller.watch(reconciler.pods, pod_claims)
