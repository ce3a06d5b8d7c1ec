"""The PersistentVolume controller (upstream's ``persistentvolume-binder``): binds claims
to volumes, asks provisioners for new ones, and releases volumes whose claims are gone.

Why: a PersistentVolumeClaim is only a request; nothing else connects it to storage.
As upstream's ``pkg/controller/volume/persistentvolume``, one work queue serves claims
(``namespace/name``) and volumes (cluster-scoped, so an empty namespace):

* **unbound claim** (no ``pv.kubernetes.io/bind-completed``): with ``spec.volumeName``
  the named volume is bound if it fits (else ``VolumeMismatch``/``FailedBinding``);
  otherwise the volume pre-bound to it, or the smallest available one of its class,
  access modes, volume mode, capacity and selector, is bound. With none: a
  WaitForFirstConsumer claim without ``volume.kubernetes.io/selected-node`` waits
  (``WaitForFirstConsumer``, or ``WaitForPodScheduled`` when a pod uses it); a claim
  with a class is handed to the class's provisioner (the ``storage-provisioner``
  annotations and ``ExternalProvisioning``; ``ProvisioningFailed`` when the class is
  missing); a claim without a class gets ``FailedBinding`` "no persistent volumes
  available for this claim and no storage class is set". All stay Pending. A claim that
  names no class at all gets the default class once one exists (upstream's retroactive
  default StorageClass assignment).
* **binding** is upstream's four writes, each idempotent so a failure resumes: the
  volume's ``claimRef`` (+ ``bound-by-controller``), its phase Bound, the claim's
  ``volumeName`` + ``bind-completed`` (+ ``bound-by-controller``), its status Bound with
  the volume's access modes and capacity.
* **bound claim**: a lost volume makes it Lost (``ClaimLost``/``ClaimMisbound``).
* **volume**: no claimRef, or one without a uid (pre-bound): Available; its claim bound
  to it: Bound; its claim gone (or re-created with another uid): Released, then
  reclaimed — Retain keeps it; Delete on a provisioned volume waits for its provisioner
  (which removes the data and the PV object: the external-provisioner contract); Delete
  on a volume nobody provisioned is Failed (``VolumeFailedDelete``), as upstream has no
  deleter for it either. A claim now bound to another volume unbinds a volume the
  controller bound.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
from typing import Any

from pyk8s.api import pvbinding as pvb
from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import NORMAL, WARNING, ApiError, EventRecorder, is_not_found
from pyk8s.client.informer import Store
from pyk8s.controllers.runtime import Controller, Manager, Request, Result

log = logging.getLogger(__name__)

Obj = dict[str, Any]

PVS: Resource = REGISTRY.get("", "v1", "persistentvolumes")  # type: ignore[assignment]
PVCS: Resource = REGISTRY.get("", "v1", "persistentvolumeclaims")  # type: ignore[assignment]
PODS: Resource = REGISTRY.get("", "v1", "pods")  # type: ignore[assignment]
CLASSES: Resource = REGISTRY.get("storage.k8s.io", "v1", "storageclasses")  # type: ignore[assignment]

NO_CLASS_MESSAGE = "no persistent volumes available for this claim and no storage class is set"
WFFC_MESSAGE = "waiting for first consumer to be created before binding"
EXTERNAL_MESSAGE = (
    "Waiting for a volume to be created either by the external provisioner '{}' or "
    "manually by the system administrator. If volume creation is delayed, please verify "
    "that the provisioner is running and correctly registered."
)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta(obj: Obj) -> Obj:
    meta: Obj = obj.setdefault("metadata", {})
    return meta


def _phase(obj: Obj) -> str:
    return str((obj.get("status") or {}).get("phase") or "")


def _claim_key(claim: Obj) -> str:
    m = claim.get("metadata") or {}
    return f"{m.get('namespace', '')}/{m.get('name', '')}"


def _rv(obj: Obj | None) -> int:
    try:
        return int(((obj or {}).get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class Newest:
    """An informer's objects, overlaid with what this controller last wrote until the
    informer has caught up (upstream's ``storeObjectUpdate``): the next sync of a claim
    or volume starts from its own write, not from a copy a conflict would refuse."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.written: dict[tuple[str, str], Obj] = {}

    def note(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        key = (str(meta.get("namespace") or ""), str(meta["name"]))
        if _rv(obj) > _rv(self.written.get(key)):
            self.written[key] = obj
        return obj

    def get(self, namespace: str, name: str) -> Obj | None:
        cached = self.store.get_by_name(namespace or None, name)
        mine = self.written.get((namespace, name))
        if mine is None:
            return cached
        if cached is None or _rv(cached) >= _rv(mine):
            del self.written[(namespace, name)]  # gone, or the informer caught up
            return cached
        return mine

    def list(self) -> list[Obj]:
        if not self.written:
            return self.store.list()
        out = []
        for obj in self.store.list():
            meta = obj["metadata"]
            newest = self.get(str(meta.get("namespace") or ""), str(meta["name"]))
            out.append(newest if newest is not None else obj)
        return out


class PersistentVolumeReconciler:
    def __init__(self, manager: Manager) -> None:
        self.client = manager.client
        self.recorder = EventRecorder(manager.client, component="persistentvolume-controller")
        self.volumes = manager.informers.informer(PVS)
        self.claims = manager.informers.informer(PVCS)
        self.classes = manager.informers.informer(CLASSES)
        self.pods = manager.informers.informer(PODS)
        self.newest_claims = Newest(self.claims.store)
        self.newest_volumes = Newest(self.volumes.store)

    async def _update_claim(self, claim: Obj, *, status: bool = False) -> Obj:
        ns = claim["metadata"]["namespace"]
        write = self.client.update_status if status else self.client.update
        return self.newest_claims.note(await write(PVCS, claim, ns))

    async def _update_volume(self, volume: Obj, *, status: bool = False) -> Obj:
        write = self.client.update_status if status else self.client.update
        return self.newest_volumes.note(await write(PVS, volume))

    def setup(self, controller: Controller) -> None:
        controller.watch(self.claims)
        controller.watch(self.claims, self._claim_volume)
        controller.watch(self.volumes)
        controller.watch(self.volumes, self._volume_claim)
        controller.watch(self.classes, self._class_claims)
        controller.watch(self.pods, self._pod_claims)

    def _pod_claims(self, pod: Obj) -> list[Request]:
        """A pod naming a waiting claim changes what the claim waits for."""
        ns = str((pod.get("metadata") or {}).get("namespace", ""))
        if (pod.get("spec") or {}).get("nodeName"):
            return []
        return [Request(ns, name) for name in pvb.pod_claim_names(pod)]

    def _claim_volume(self, claim: Obj) -> list[Request]:
        """A claim's changes (its deletion above all) concern the volume it is bound to."""
        name = (claim.get("spec") or {}).get("volumeName")
        return [Request("", str(name))] if name else []

    def _volume_claim(self, volume: Obj) -> list[Request]:
        """The claim a volume names; for a free volume, the pending claims of its class
        (what upstream's periodic resync would find)."""
        ref = (volume.get("spec") or {}).get("claimRef") or {}
        if ref.get("name") and ref.get("namespace"):
            return [Request(str(ref["namespace"]), str(ref["name"]))]
        cls = pvb.volume_class(volume)
        return [
            Request(c["metadata"]["namespace"], c["metadata"]["name"])
            for c in self.claims.store.list()
            if _phase(c) != "Bound" and pvb.claim_class(c) == cls
        ]

    def _class_claims(self, sc: Obj) -> list[Request]:
        """A class appearing or changing may unblock its pending claims."""
        name = (sc.get("metadata") or {}).get("name")
        return [
            Request(c["metadata"]["namespace"], c["metadata"]["name"])
            for c in self.claims.store.list()
            if _phase(c) != "Bound"
            and (
                pvb.claim_class(c) == name or (c.get("spec") or {}).get("storageClassName") is None
            )
        ]

    async def reconcile(self, request: Request) -> Result | None:
        if request.namespace:
            claim = self.newest_claims.get(request.namespace, request.name)
            if claim is not None:
                await self.sync_claim(copy.deepcopy(claim))
            return None
        volume = self.newest_volumes.get("", request.name)
        if volume is not None:
            await self.sync_volume(copy.deepcopy(volume))
        return None

    # ------------------------------------------------------------------ claims

    async def sync_claim(self, claim: Obj) -> None:
        if pvb.ANN_BIND_COMPLETED in pvb.annotations_of(claim):
            await self._sync_bound_claim(claim)
        else:
            await self._sync_unbound_claim(claim)

    def _class(self, name: str) -> Obj | None:
        return self.classes.store.get_by_name(None, name) if name else None

    def _delay_binding(self, claim: Obj) -> bool:
        sc = self._class(pvb.claim_class(claim))
        return sc is not None and sc.get("volumeBindingMode") == pvb.WAIT_FOR_FIRST_CONSUMER

    async def _sync_unbound_claim(self, claim: Obj) -> None:
        spec = claim.get("spec") or {}
        if not spec.get("volumeName"):
            delay = self._delay_binding(claim)
            volume = pvb.find_matching_volume(
                claim, self.newest_volumes.list(), delay_binding=delay
            )
            if volume is not None:
                await self._bind(copy.deepcopy(volume), claim)
                return
            if await self._assign_default_class(claim):
                return  # its update brings the claim back with its class
            if delay and pvb.ANN_SELECTED_NODE not in pvb.annotations_of(claim):
                self._event_for_delayed_claim(claim)
            elif pvb.claim_class(claim):
                claim = await self._provision(claim)
            else:
                self.recorder.event(claim, NORMAL, "FailedBinding", NO_CLASS_MESSAGE)
            await self._claim_status(claim, "Pending")
            return
        name = str(spec["volumeName"])
        cached = self.newest_volumes.get("", name)
        if cached is None:
            log.info("claim %s: volume %q requested and not found", _claim_key(claim), name)
            await self._claim_status(claim, "Pending")
            return
        volume = copy.deepcopy(cached)
        ref = (volume.get("spec") or {}).get("claimRef")
        if not ref:
            why = pvb.check_volume_satisfies_claim(volume, claim)
            if why:
                self.recorder.event(
                    claim,
                    WARNING,
                    "VolumeMismatch",
                    f'Cannot bind to requested volume "{name}": {why}',
                )
                await self._claim_status(claim, "Pending")
                return
            await self._bind(volume, claim)
        elif pvb.is_volume_bound_to_claim(volume, claim):
            await self._bind(volume, claim)
        else:
            if pvb.ANN_BOUND_BY_CONTROLLER not in pvb.annotations_of(claim):
                self.recorder.event(
                    claim,
                    WARNING,
                    "FailedBinding",
                    f'volume "{name}" already bound to a different claim.',
                )
            await self._claim_status(claim, "Pending")

    async def _assign_default_class(self, claim: Obj) -> bool:
        """assignDefaultStorageClass: a claim that names no class (not even "") gets
        the default class once there is one, as upstream since 1.28."""
        spec = claim.get("spec") or {}
        if spec.get("storageClassName") is not None:
            return False
        if pvb.ANN_BETA_STORAGE_CLASS in pvb.annotations_of(claim):
            return False
        default = pvb.default_class(self.classes.store.list())
        if default is None:
            return False
        claim["spec"]["storageClassName"] = default["metadata"]["name"]
        await self._update_claim(claim)
        return True

    def _event_for_delayed_claim(self, claim: Obj) -> None:
        """emitEventForUnboundDelayBindingClaim: which pod, if any, it waits for."""
        m = claim["metadata"]
        names = sorted(
            p["metadata"]["name"]
            for p in self.pods.store.by_index("namespace", m["namespace"])
            if not (p.get("spec") or {}).get("nodeName")
            and m["name"] in pvb.pod_claim_names(p)
            and not pvb.pod_is_terminated(p)
        )
        if names:
            message = (
                f"waiting for pods {','.join(names)} to be scheduled"
                if len(names) > 1
                else f"waiting for pod {names[0]} to be scheduled"
            )
            self.recorder.event(claim, NORMAL, "WaitForPodScheduled", message)
        else:
            self.recorder.event(claim, NORMAL, "WaitForFirstConsumer", WFFC_MESSAGE)

    async def _provision(self, claim: Obj) -> Obj:
        """provisionClaim for an external provisioner: name it on the claim, say so."""
        cls = pvb.claim_class(claim)
        sc = self._class(cls)
        if sc is None:
            self.recorder.event(
                claim,
                WARNING,
                "ProvisioningFailed",
                f'storageclass.storage.k8s.io "{cls}" not found',
            )
            return claim
        provisioner = str(sc.get("provisioner") or "")
        ann = pvb.annotations_of(claim)
        if (
            ann.get(pvb.ANN_STORAGE_PROVISIONER) != provisioner
            or ann.get(pvb.ANN_BETA_STORAGE_PROVISIONER) != provisioner
        ):
            ann[pvb.ANN_STORAGE_PROVISIONER] = provisioner
            ann[pvb.ANN_BETA_STORAGE_PROVISIONER] = provisioner
            _meta(claim)["annotations"] = ann
            claim = await self._update_claim(claim)
        self.recorder.event(
            claim, NORMAL, "ExternalProvisioning", EXTERNAL_MESSAGE.format(provisioner)
        )
        return claim

    async def _sync_bound_claim(self, claim: Obj) -> None:
        name = str((claim.get("spec") or {}).get("volumeName") or "")
        if not name:
            await self._claim_lost(
                claim,
                "ClaimLost",
                "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!",
            )
            return
        cached = self.newest_volumes.get("", name)
        if cached is None:
            await self._claim_lost(
                claim,
                "ClaimLost",
                "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
            )
            return
        volume = copy.deepcopy(cached)
        ref = (volume.get("spec") or {}).get("claimRef")
        if not ref or ref.get("uid") == claim["metadata"].get("uid"):
            await self._bind(volume, claim)
            return
        await self._claim_lost(
            claim,
            "ClaimMisbound",
            "Two claims are bound to the same volume, this one is bound incorrectly",
        )

    async def _claim_lost(self, claim: Obj, reason: str, message: str) -> None:
        if _phase(claim) != "Lost":
            self.recorder.event(claim, WARNING, reason, message)
        await self._claim_status(claim, "Lost")

    # ------------------------------------------------------------------ binding

    async def _bind(self, volume: Obj, claim: Obj) -> None:
        """upstream's bind: volume claimRef, volume Bound, claim volumeName, claim Bound."""
        volume = await self._bind_volume_to_claim(volume, claim)
        volume = await self._volume_phase(volume, "Bound")
        claim = await self._bind_claim_to_volume(claim, volume)
        await self._claim_status(claim, "Bound", volume)

    async def _bind_volume_to_claim(self, volume: Obj, claim: Obj) -> Obj:
        spec = volume.setdefault("spec", {})
        cm = claim["metadata"]
        ref = spec.get("claimRef") or {}
        want = {
            "kind": "PersistentVolumeClaim",
            "namespace": cm["namespace"],
            "name": cm["name"],
            "uid": cm.get("uid"),
            "apiVersion": "v1",
            "resourceVersion": cm.get("resourceVersion"),
        }
        changed = False
        if (
            ref.get("uid") != want["uid"]
            or ref.get("name") != want["name"]
            or ref.get("namespace") != want["namespace"]
        ):
            if not ref:
                ann = pvb.annotations_of(volume)
                ann[pvb.ANN_BOUND_BY_CONTROLLER] = "yes"
                _meta(volume)["annotations"] = ann
            spec["claimRef"] = {**ref, **want}
            changed = True
        if not changed:
            return volume
        return await self._update_volume(volume)

    async def _bind_claim_to_volume(self, claim: Obj, volume: Obj) -> Obj:
        spec = claim.setdefault("spec", {})
        ann = pvb.annotations_of(claim)
        changed = False
        if spec.get("volumeName") != volume["metadata"]["name"]:
            spec["volumeName"] = volume["metadata"]["name"]
            ann[pvb.ANN_BOUND_BY_CONTROLLER] = "yes"
            changed = True
        if ann.get(pvb.ANN_BIND_COMPLETED) != "yes":
            ann[pvb.ANN_BIND_COMPLETED] = "yes"
            changed = True
        if not changed:
            return claim
        _meta(claim)["annotations"] = ann
        return await self._update_claim(claim)

    async def _claim_status(self, claim: Obj, phase: str, volume: Obj | None = None) -> Obj:
        status = dict(claim.get("status") or {})
        want = dict(status, phase=phase)
        if volume is not None:
            vspec = volume.get("spec") or {}
            want["accessModes"] = list(vspec.get("accessModes") or [])
            want["capacity"] = dict(vspec.get("capacity") or {})
        elif phase == "Pending":
            want.pop("accessModes", None)
            want.pop("capacity", None)
        if want == status:
            return claim
        claim["status"] = want
        try:
            updated = await self._update_claim(claim, status=True)
        except ApiError as err:
            if is_not_found(err):
                return claim
            raise
        return updated

    async def _volume_phase(self, volume: Obj, phase: str, message: str = "") -> Obj:
        status = dict(volume.get("status") or {})
        if status.get("phase") == phase and (not message or status.get("message") == message):
            return volume
        new: Obj = {"phase": phase, "lastPhaseTransitionTime": _now()}
        if message:
            new["message"] = message
        volume["status"] = new
        try:
            updated = await self._update_volume(volume, status=True)
        except ApiError as err:
            if is_not_found(err):
                return volume
            raise
        return updated

    # ------------------------------------------------------------------ volumes

    async def sync_volume(self, volume: Obj) -> None:
        ref = (volume.get("spec") or {}).get("claimRef")
        if not ref or not ref.get("uid"):
            await self._volume_phase(volume, "Available")
            return
        claim = await self._claim_of(ref)
        if claim is not None and claim["metadata"].get("uid") != ref.get("uid"):
            claim = None
        if claim is None:
            if _phase(volume) not in ("Released", "Failed"):
                volume = await self._volume_phase(volume, "Released")
            await self._reclaim(volume)
            return
        spec_volume = (claim.get("spec") or {}).get("volumeName")
        name = volume["metadata"]["name"]
        if not spec_volume:
            # the claim is being bound right now, or waits for this pre-bound volume:
            # its own sync (enqueued by this volume's event) finishes the binding
            return
        if spec_volume == name:
            await self._volume_phase(volume, "Bound")
            return
        # the claim is bound to another volume
        ann = pvb.annotations_of(volume)
        if pvb.ANN_PROVISIONED_BY in ann and (
            (volume.get("spec") or {}).get("persistentVolumeReclaimPolicy") == "Delete"
        ):
            if _phase(volume) not in ("Released", "Failed"):
                volume = await self._volume_phase(volume, "Released")
            await self._reclaim(volume)
        elif pvb.ANN_BOUND_BY_CONTROLLER in ann:
            await self._unbind(volume)
        else:
            spec = volume["spec"]
            spec["claimRef"] = {k: v for k, v in spec["claimRef"].items() if k != "uid"}
            volume = await self._update_volume(volume)
            await self._volume_phase(volume, "Available")

    async def _claim_of(self, ref: Obj) -> Obj | None:
        """The claim a volume names: the cache, then the API server (a new claim may not
        have reached the cache yet, and releasing a volume by mistake loses data)."""
        ns, name = str(ref.get("namespace", "")), str(ref.get("name", ""))
        claim = self.newest_claims.get(ns, name)
        if claim is not None:
            return claim
        try:
            found: Obj = await self.client.get(PVCS, name, ns)
        except ApiError as err:
            if is_not_found(err):
                return None
            raise
        return found

    async def _unbind(self, volume: Obj) -> None:
        spec = volume["spec"]
        spec.pop("claimRef", None)
        ann = pvb.annotations_of(volume)
        ann.pop(pvb.ANN_BOUND_BY_CONTROLLER, None)
        _meta(volume)["annotations"] = ann
        volume = await self._update_volume(volume)
        await self._volume_phase(volume, "Available")

    async def _reclaim(self, volume: Obj) -> None:
        """reclaimVolume: Retain keeps it; Delete waits for its provisioner."""
        policy = (volume.get("spec") or {}).get("persistentVolumeReclaimPolicy") or "Retain"
        if policy == "Retain" or _phase(volume) == "Failed":
            return
        name = volume["metadata"]["name"]
        if policy == "Delete":
            provisioner = pvb.annotations_of(volume).get(pvb.ANN_PROVISIONED_BY)
            if provisioner:
                log.info("volume %s: waiting for %s to delete it", name, provisioner)
                return
            message = (
                f'error getting deleter volume plugin for volume "{name}": '
                "no deletable volume plugin matched"
            )
        else:
            message = f'No recycler plugin found for the volume "{name}"'
        reason = "VolumeFailedDelete" if policy == "Delete" else "VolumeFailedRecycle"
        self.recorder.event(volume, WARNING, reason, message)
        await self._volume_phase(volume, "Failed", message)


def setup(manager: Manager) -> None:
    reconciler = PersistentVolumeReconciler(manager)
    controller = manager.add("persistentvolume-binder", reconciler, workers=2)
    reconciler.setup(controller)
