"""The provisioner's reconcile loop, as upstream's external-provisioner library runs one.

Claims (namespaced keys) and volumes (cluster-scoped keys) share one work queue:

* a claim the PV controller handed to ``pyk8s.io/local-path`` (the
  ``volume.kubernetes.io/storage-provisioner`` annotation), unbound, not being deleted,
  whose ``volume.kubernetes.io/selected-node`` is one of this provisioner's nodes, gets
  ``BASE/pvc-<claim uid>`` created and a PersistentVolume of that name: a ``hostPath``
  source (type DirectoryOrCreate, as k3s's provisioner), ``nodeAffinity`` to the node,
  ``claimRef`` to the claim, the class's reclaim policy and mount options, the claim's
  access modes and requested size, ``pv.kubernetes.io/provisioned-by``. Events on the
  claim: ``Provisioning``, ``ProvisioningSucceeded``, or ``ProvisioningFailed`` — a
  directory that cannot be made, a missing class, a selector, a Block claim — and then
  nothing is left behind (a PV create that fails removes the new directory);
* a volume it provisioned on one of its nodes, Released, with reclaim policy Delete,
  has its directory removed and then its PV object deleted (``VolumeFailedDelete`` on the
  volume when the directory cannot be removed; the PV stays until it can).

A claim whose class is Immediate has no selected node and is never provisioned here
(k3s's provisioner, too, needs WaitForFirstConsumer).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyk8s.api import pvbinding as pvb
from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import (
    NORMAL,
    WARNING,
    ApiError,
    Client,
    is_already_exists,
    is_not_found,
)
from pyk8s.controllers.runtime import Manager, Request, Result

log = logging.getLogger(__name__)

Obj = dict[str, Any]

PROVISIONER_NAME = "pyk8s.io/local-path"

PVS: Resource = REGISTRY.get("", "v1", "persistentvolumes")  # type: ignore[assignment]
PVCS: Resource = REGISTRY.get("", "v1", "persistentvolumeclaims")  # type: ignore[assignment]
CLASSES: Resource = REGISTRY.get("storage.k8s.io", "v1", "storageclasses")  # type: ignore[assignment]


class ProvisioningError(Exception):
    """Why a claim's volume cannot be made (the ``ProvisioningFailed`` message)."""


def volume_name(claim: Obj) -> str:
    return f"pvc-{claim['metadata']['uid']}"


def new_volume(claim: Obj, sc: Obj, node: str, path: Path) -> Obj:
    """The PersistentVolume for ``claim`` at ``path`` on ``node``."""
    cm = claim["metadata"]
    spec = claim.get("spec") or {}
    pv_spec: Obj = {
        "capacity": {"storage": str(spec["resources"]["requests"]["storage"])},
        "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
        "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy") or "Delete",
        "storageClassName": pvb.claim_class(claim),
        "volumeMode": "Filesystem",
        "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
        "nodeAffinity": {
            "required": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
                        ]
                    }
                ]
            }
        },
        "claimRef": {
            "kind": "PersistentVolumeClaim",
            "apiVersion": "v1",
            "namespace": cm["namespace"],
            "name": cm["name"],
            "uid": cm["uid"],
            "resourceVersion": cm.get("resourceVersion"),
        },
    }
    if sc.get("mountOptions"):
        pv_spec["mountOptions"] = list(sc["mountOptions"])
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": volume_name(claim),
            "annotations": {pvb.ANN_PROVISIONED_BY: PROVISIONER_NAME},
        },
        "spec": pv_spec,
    }


class LocalPathProvisioner:
    """Provisions for the nodes of ``base_dirs`` (node name → its storage directory)."""

    def __init__(self, manager: Manager, base_dirs: Mapping[str, Path]) -> None:
        self.client: Client = manager.client
        self.recorder = manager.recorder
        self.base_dirs = dict(base_dirs)
        self.claims = manager.informers.informer(PVCS)
        self.volumes = manager.informers.informer(PVS)
        self.classes = manager.informers.informer(CLASSES)
        controller = manager.add("local-path-provisioner", self, workers=2)
        controller.watch(self.claims)
        controller.watch(self.volumes)

    async def reconcile(self, request: Request) -> Result | None:
        if request.namespace:
            claim = self.claims.store.get_by_name(request.namespace, request.name)
            if claim is not None and self._wants_volume(claim):
                return await self._provision(claim)
            return None
        volume = self.volumes.store.get_by_name(None, request.name)
        if volume is not None and self._should_delete(volume):
            return await self._delete(volume)
        return None

    # -------------------------------------------------------------- provisioning

    def _wants_volume(self, claim: Obj) -> bool:
        meta = claim["metadata"]
        if meta.get("deletionTimestamp") or (claim.get("spec") or {}).get("volumeName"):
            return False
        if pvb.claim_provisioner(claim) != PROVISIONER_NAME:
            return False
        return pvb.annotations_of(claim).get(pvb.ANN_SELECTED_NODE) in self.base_dirs

    async def _provision(self, claim: Obj) -> Result | None:
        name = volume_name(claim)
        if self.volumes.store.get_by_name(None, name) is not None:
            return None
        cls = pvb.claim_class(claim)
        node = pvb.annotations_of(claim)[pvb.ANN_SELECTED_NODE]
        cm = claim["metadata"]
        request_key = f"{cm['namespace']}/{cm['name']}"
        self.recorder.event(
            claim,
            NORMAL,
            "Provisioning",
            f'External provisioner is provisioning volume for claim "{request_key}"',
        )
        try:
            sc = self._check(claim, cls)
            path = self.base_dirs[node] / name
            await asyncio.to_thread(_make_dir, path)
        except ProvisioningError as err:
            self.recorder.event(
                claim,
                WARNING,
                "ProvisioningFailed",
                f'failed to provision volume with StorageClass "{cls}": {err}',
            )
            return Result(requeue=True)
        try:
            await self.client.create(PVS, new_volume(claim, sc, node, path))
        except ApiError as err:
            if is_already_exists(err):
                return None
            await asyncio.to_thread(_remove_dir, path)
            self.recorder.event(
                claim,
                WARNING,
                "ProvisioningFailed",
                f'failed to provision volume with StorageClass "{cls}": {err.message}',
            )
            raise
        log.info("provisioned %s for claim %s at %s", name, request_key, path)
        self.recorder.event(
            claim, NORMAL, "ProvisioningSucceeded", f"Successfully provisioned volume {name}"
        )
        return None

    def _check(self, claim: Obj, cls: str) -> Obj:
        sc = self.classes.store.get_by_name(None, cls)
        if sc is None:
            raise ProvisioningError(f'storageclass.storage.k8s.io "{cls}" not found')
        spec = claim.get("spec") or {}
        if spec.get("selector"):
            raise ProvisioningError("claim Selector is not supported")
        if spec.get("volumeMode") == "Block":
            raise ProvisioningError("Only support volumeMode Filesystem")
        if not (spec.get("resources") or {}).get("requests", {}).get("storage"):
            raise ProvisioningError("claim has no storage request")
        return sc

    # ------------------------------------------------------------------ deleting

    def _should_delete(self, volume: Obj) -> bool:
        spec = volume.get("spec") or {}
        return (
            pvb.annotations_of(volume).get(pvb.ANN_PROVISIONED_BY) == PROVISIONER_NAME
            and (volume.get("status") or {}).get("phase") == "Released"
            and spec.get("persistentVolumeReclaimPolicy") == "Delete"
            and not volume["metadata"].get("deletionTimestamp")
            and bool(pvb.node_affinity_nodes(volume) & set(self.base_dirs))
        )

    async def _delete(self, volume: Obj) -> Result | None:
        name = volume["metadata"]["name"]
        node = sorted(pvb.node_affinity_nodes(volume) & set(self.base_dirs))[0]
        path = Path(str((volume["spec"].get("hostPath") or {}).get("path") or ""))
        base = self.base_dirs[node]
        if path.parent != base or path.name != name:
            # not a directory this provisioner made: never remove what it does not own
            self.recorder.event(
                volume,
                WARNING,
                "VolumeFailedDelete",
                f"path {path} is not under {base}; not deleting",
            )
            return None
        try:
            await asyncio.to_thread(_remove_dir, path)
        except OSError as err:
            self.recorder.event(
                volume, WARNING, "VolumeFailedDelete", f"failed to remove {path}: {err}"
            )
            return Result(requeue=True)
        try:
            await self.client.delete(PVS, name, preconditions={"uid": volume["metadata"]["uid"]})
        except ApiError as err:
            if not is_not_found(err):
                raise
        log.info("deleted volume %s and its directory %s", name, path)
        return None


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(mode=0o777, parents=True, exist_ok=True)
        path.chmod(0o777)  # any pod user may write, as k3s's provisioner makes it
    except OSError as err:
        raise ProvisioningError(f"cannot create directory {path}: {err.strerror or err}") from err


def _remove_dir(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
