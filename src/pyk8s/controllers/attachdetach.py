"""The attach/detach controller: a VolumeAttachment for every CSI volume a scheduled pod
uses on its node, as upstream's ``attachdetach-controller`` with its CSI attacher.

Why: a CSI driver that must attach a volume to a node before the node can use it (a
cloud disk to a VM) learns of it from a VolumeAttachment, which its external-attacher
serves (ControllerPublishVolume, ``status.attached``); the kubelet waits for that
before staging the volume. Per node, level-based:

* desired: for every pod bound to the node and not terminated, every claim it uses
  (``persistentVolumeClaim`` and generic ephemeral volumes) that is bound to a PV with a
  ``csi`` source whose driver requires attaching — the CSIDriver's ``attachRequired``,
  true when there is no CSIDriver object, as upstream;
* each desired (PV, node) gets the VolumeAttachment ``csi-<sha256(handle+driver+node)>``
  (``spec.attacher`` the driver, ``nodeName``, ``source.persistentVolumeName``);
* a VolumeAttachment of this node whose PV no pod needs there any more is deleted (its
  attacher detaches and drops its finalizer).
* When an attachment first reads ``attached``, each pod waiting for it gets upstream's
  ``SuccessfulAttachVolume`` event.
* The node's ``status.volumesAttached`` lists the attachments that read ``attached``
  and are not being deleted, as upstream's node status updater reports its actual
  state: ``kubernetes.io/csi/<driver>^<handle>`` with an empty ``devicePath`` (a CSI
  attach has no device path). The kubelet's ``volumesInUse`` is not written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from pyk8s.api import pvbinding as pvb
from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import (
    NAMESPACE_INDEX,
    NORMAL,
    ApiError,
    EventRecorder,
    is_already_exists,
    is_not_found,
)
from pyk8s.controllers.runtime import Manager, Request, Result
from pyk8s.csi import attachment_name

Obj = dict[str, Any]


def _res(group: str, plural: str) -> Resource:
    return REGISTRY.get(group, "v1", plural)  # type: ignore[return-value]


NODES, PODS, PVCS, PVS = (
    _res("", "nodes"),
    _res("", "pods"),
    _res("", "persistentvolumeclaims"),
    _res("", "persistentvolumes"),
)
CSIDRIVERS = _res("storage.k8s.io", "csidrivers")
ATTACHMENTS = _res("storage.k8s.io", "volumeattachments")


#: pods that use claims, by node (a node's reconcile reads only those)
NODE_INDEX = "attachdetach/claimingPodsByNode"


def _claiming_pod_node(pod: Obj) -> list[str]:
    node = (pod.get("spec") or {}).get("nodeName")
    return [node] if node and next(pvb.pod_claim_names(pod), None) is not None else []


class AttachDetachReconciler:
    """Reconciles one node (the request's name) at a time."""

    def __init__(self, manager: Manager) -> None:
        self.client = manager.client
        self.recorder = EventRecorder(manager.client, component="attachdetach-controller")
        self.pods = manager.informers.informer(PODS)
        self.claims = manager.informers.informer(PVCS)
        self.volumes = manager.informers.informer(PVS)
        self.drivers = manager.informers.informer(CSIDRIVERS)
        self.attachments = manager.informers.informer(ATTACHMENTS)
        self.nodes = manager.informers.informer(NODES)
        #: VolumeAttachment names already reported attached (SuccessfulAttachVolume once)
        self.reported: set[str] = set()
        with contextlib.suppress(ValueError):  # another controller added it already
            self.pods.add_indexers({NODE_INDEX: _claiming_pod_node})

    def _attachable(self, pv: Obj | None) -> tuple[str, str] | None:
        """(driver, handle) of a PV whose CSI driver requires attaching, else None."""
        csi = ((pv or {}).get("spec") or {}).get("csi")
        if not csi:
            return None
        driver = str(csi.get("driver", ""))
        obj = self.drivers.store.get_by_name(None, driver)
        if ((obj or {}).get("spec") or {}).get("attachRequired") is False:
            return None
        return driver, str(csi.get("volumeHandle", ""))

    def desired(self, node: str) -> dict[str, tuple[Obj, list[Obj]]]:
        """VolumeAttachment name -> (its body, the pods needing it) for ``node``."""
        out: dict[str, tuple[Obj, list[Obj]]] = {}
        for pod in self.pods.store.by_index(NODE_INDEX, node):
            if pvb.pod_is_terminated(pod):
                continue
            ns = pod["metadata"]["namespace"]
            for claim_name in pvb.pod_claim_names(pod):
                claim = self.claims.store.get_by_name(ns, claim_name)
                pv_name = ((claim or {}).get("spec") or {}).get("volumeName")
                pv = self.volumes.store.get_by_name(None, pv_name) if pv_name else None
                found = self._attachable(pv)
                if pv is None or found is None:
                    continue
                driver, handle = found
                name = attachment_name(handle, driver, node)
                body = {
                    "apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment",
                    "metadata": {"name": name},
                    "spec": {"attacher": driver, "nodeName": node,
                             "source": {"persistentVolumeName": pv["metadata"]["name"]}},
                }  # fmt: skip
                out.setdefault(name, (body, []))[1].append(pod)
        return out

    async def reconcile(self, request: Request) -> Result | None:
        node = request.name
        want = self.desired(node)
        have = {
            va["metadata"]["name"]: va
            for va in self.attachments.store.list()
            if (va.get("spec") or {}).get("nodeName") == node
        }
        for name, (body, pods) in want.items():
            va = have.get(name)
            if va is None:
                try:
                    await self.client.create(ATTACHMENTS, body)
                except ApiError as err:
                    if not is_already_exists(err):
                        raise
                continue
            if (va.get("status") or {}).get("attached") and name not in self.reported:
                self.reported.add(name)
                pv = body["spec"]["source"]["persistentVolumeName"]
                for pod in pods:
                    self.recorder.event(
                        pod, NORMAL, "SuccessfulAttachVolume",
                        f'AttachVolume.Attach succeeded for volume "{pv}" ',
                    )  # fmt: skip
        for name, va in have.items():
            source = (va.get("spec") or {}).get("source") or {}
            if name in want or not source.get("persistentVolumeName"):
                continue
            if va["metadata"].get("deletionTimestamp"):
                continue
            self.reported.discard(name)
            try:
                await self.client.delete(ATTACHMENTS, name)
            except ApiError as err:
                if not is_not_found(err):
                    raise
        await self._report_attached(node, have.values())
        return None

    async def _report_attached(self, node: str, attachments: Iterable[Obj]) -> None:
        """Write ``status.volumesAttached`` of ``node`` when it differs from what is
        attached there (a node that does not exist is left alone)."""
        attached = []
        for va in attachments:
            if va["metadata"].get("deletionTimestamp") or not (va.get("status") or {}).get(
                "attached"
            ):
                continue
            pv_name = ((va.get("spec") or {}).get("source") or {}).get("persistentVolumeName")
            pv = self.volumes.store.get_by_name(None, pv_name) if pv_name else None
            csi = ((pv or {}).get("spec") or {}).get("csi") or {}
            if csi:
                name = f"kubernetes.io/csi/{csi.get('driver', '')}^{csi.get('volumeHandle', '')}"
                attached.append({"name": name, "devicePath": ""})
        attached.sort(key=lambda v: v["name"])
        obj = self.nodes.store.get_by_name(None, node)
        if obj is None or ((obj.get("status") or {}).get("volumesAttached") or []) == attached:
            return
        try:
            await self.client.patch(
                NODES, node, {"status": {"volumesAttached": attached or None}},
                patch_type="merge", subresource="status",
            )  # fmt: skip
        except ApiError as err:
            if not is_not_found(err):
                raise


def setup(manager: Manager) -> None:
    reconciler = AttachDetachReconciler(manager)
    controller = manager.add("attachdetach", reconciler, workers=1)

    def pod_node(obj: Obj) -> list[Request]:
        return [Request("", n) for n in _claiming_pod_node(obj)]

    def attachment_node(obj: Obj) -> list[Request]:
        node = (obj.get("spec") or {}).get("nodeName")
        return [Request("", node)] if node else []

    def claim_users(namespace: str, claim: str) -> list[Request]:
        pods = reconciler.pods.store.by_index(NAMESPACE_INDEX, namespace)
        nodes = {
            (p.get("spec") or {}).get("nodeName")
            for p in pods
            if claim in set(pvb.pod_claim_names(p))
        }
        return [Request("", n) for n in sorted(n for n in nodes if n)]

    def claim_nodes(obj: Obj) -> list[Request]:
        return claim_users(obj["metadata"].get("namespace", ""), obj["metadata"]["name"])

    def volume_nodes(obj: Obj) -> list[Request]:
        ref = (obj.get("spec") or {}).get("claimRef") or {}
        return claim_users(ref.get("namespace", ""), ref.get("name", "")) if ref else []

    def every_node(_obj: Obj) -> list[Request]:
        nodes = {n for p in reconciler.pods.store.list() for n in _claiming_pod_node(p)}
        return [Request("", n) for n in sorted(nodes)]

    controller.watch(reconciler.pods, pod_node)
    controller.watch(reconciler.attachments, attachment_node)
    controller.watch(reconciler.claims, claim_nodes)
    controller.watch(reconciler.volumes, volume_nodes)
    controller.watch(reconciler.drivers, every_node)
