"""The sidecar loops upstream deploys beside a CSI driver's controller, as reconcilers on
pyk8s's controller runtime, each calling the driver over its CSI socket (real gRPC):

* **provisioner** (external-provisioner): a claim the PV controller handed to this
  driver (``volume.kubernetes.io/storage-provisioner``), unbound, gets CreateVolume —
  name ``pvc-<claim uid>``, the requested bytes, the class's parameters, the access
  modes as capabilities, and for a WaitForFirstConsumer claim the selected node's
  topology (its CSINode's topology keys read from its labels) as requisite and
  preferred — then a PersistentVolume with a ``csi`` source (driver, handle, the volume's
  context plus ``storage.kubernetes.io/csiProvisionerIdentity``), node affinity from the
  volume's accessible topology, ``claimRef``, the class's reclaim policy and mount
  options. A Released volume it provisioned whose policy is Delete gets DeleteVolume and
  is then deleted. Events as upstream: Provisioning, ProvisioningSucceeded,
  ProvisioningFailed, VolumeFailedDelete.
* **attacher** (external-attacher): a VolumeAttachment for this driver gets its
  finalizer, ControllerPublishVolume for the node's CSI node ID (the Node's
  ``csi.volume.kubernetes.io/nodeid`` annotation) and ``status.attached: true`` with the
  publish context as ``attachmentMetadata`` (``attachError`` on failure); a deleted one
  gets ControllerUnpublishVolume and loses the finalizer.
* **resizer** (external-resizer): a bound claim of this driver whose request exceeds its
  volume's capacity gets the ``Resizing`` condition, ControllerExpandVolume, the new
  capacity on the PV, then either ``FileSystemResizePending`` (the kubelet finishes with
  NodeExpandVolume) or the new ``status.capacity``. Events: Resizing,
  VolumeResizeFailed, FileSystemResizeRequired, VolumeResizeSuccessful.
"""

from __future__ import annotations

import json
import logging
import time
from decimal import Decimal
from typing import Any

import grpc

from pyk8s.api import pvbinding as pvb
from pyk8s.api.quantity import BINARY_SI, format_quantity
from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import NORMAL, WARNING, ApiError, Client, is_already_exists, is_not_found
from pyk8s.controllers.runtime import Manager, Request, Result
from pyk8s.csi import ANN_NODE_ID, volume_capability
from pyk8s.csi import csi_pb2 as pb
from pyk8s.csi import csi_pb2_grpc as pbg

log = logging.getLogger(__name__)

Obj = dict[str, Any]


def _res(group: str, plural: str) -> Resource:
    return REGISTRY.get(group, "v1", plural)  # type: ignore[return-value]


PVS, PVCS, NODES = (
    _res("", "persistentvolumes"),
    _res("", "persistentvolumeclaims"),
    _res("", "nodes"),
)
CLASSES = _res("storage.k8s.io", "storageclasses")
CSINODES = _res("storage.k8s.io", "csinodes")
ATTACHMENTS = _res("storage.k8s.io", "volumeattachments")

#: parameters of a class meant for the provisioner itself, not passed to CreateVolume
_RESERVED_PREFIX = "csi.storage.k8s.io/"
ANN_PROVISIONER_IDENTITY = "storage.kubernetes.io/csiProvisionerIdentity"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _bytes(q: Decimal) -> str:
    return format_quantity(q, BINARY_SI)


def _grpc_message(err: grpc.aio.AioRpcError) -> str:
    return f"rpc error: code = {err.code().name.title().replace('_', '')} desc = {err.details()}"


class Sidecars:
    """The three loops for driver ``driver`` reached over ``channel``."""

    def __init__(self, manager: Manager, driver: str, channel: grpc.aio.Channel) -> None:
        self.driver = driver
        self.client: Client = manager.client
        self.recorder = manager.recorder
        self.controller = pbg.ControllerStub(channel)  # type: ignore[no-untyped-call]
        self.identity = f"{int(time.time() * 1000)}-{driver}"
        self.claims = manager.informers.informer(PVCS)
        self.volumes = manager.informers.informer(PVS)
        self.classes = manager.informers.informer(CLASSES)
        self.csinodes = manager.informers.informer(CSINODES)
        self.nodes = manager.informers.informer(NODES)
        self.attachments = manager.informers.informer(ATTACHMENTS)
        provisioner = manager.add(f"{driver}-provisioner", _Provisioner(self), workers=2)
        provisioner.watch(self.claims)
        provisioner.watch(self.volumes)
        manager.add(f"{driver}-attacher", _Attacher(self), workers=2).watch(self.attachments)
        manager.add(f"{driver}-resizer", _Resizer(self), workers=1).watch(self.claims)

    def csi_volume(self, volume: Obj | None) -> Obj | None:
        csi = ((volume or {}).get("spec") or {}).get("csi")
        return csi if csi and csi.get("driver") == self.driver else None


class _Provisioner:
    def __init__(self, s: Sidecars) -> None:
        self.s = s

    async def reconcile(self, request: Request) -> Result | None:
        s = self.s
        if request.namespace:
            claim = s.claims.store.get_by_name(request.namespace, request.name)
            if claim is not None and self._wants_volume(claim):
                return await self._provision(claim)
            return None
        volume = s.volumes.store.get_by_name(None, request.name)
        if volume is not None and self._should_delete(volume):
            return await self._delete(volume)
        return None

    def _wants_volume(self, claim: Obj) -> bool:
        if claim["metadata"].get("deletionTimestamp") or (claim.get("spec") or {}).get(
            "volumeName"
        ):
            return False
        return pvb.claim_provisioner(claim) == self.s.driver

    def _topology(self, claim: Obj, sc: Obj) -> pb.TopologyRequirement | None:
        node_name = pvb.annotations_of(claim).get(pvb.ANN_SELECTED_NODE)
        if not node_name:
            if sc.get("volumeBindingMode") == pvb.WAIT_FOR_FIRST_CONSUMER:
                raise ValueError("claim has no selected node yet")
            return None
        node = self.s.nodes.store.get_by_name(None, node_name)
        csinode = self.s.csinodes.store.get_by_name(None, node_name)
        if node is None or csinode is None:
            raise ValueError(f'node "{node_name}" or its CSINode not found')
        keys: list[str] = []
        for d in (csinode.get("spec") or {}).get("drivers") or []:
            if d.get("name") == self.s.driver:
                keys = list(d.get("topologyKeys") or [])
        labels = node["metadata"].get("labels") or {}
        segments = {k: labels[k] for k in keys if k in labels}
        if len(segments) != len(keys):
            raise ValueError(f'topology labels {keys} missing from node "{node_name}"')
        topo = pb.Topology(segments=segments)
        return pb.TopologyRequirement(requisite=[topo], preferred=[topo])

    async def _provision(self, claim: Obj) -> Result | None:
        s = self.s
        name = f"pvc-{claim['metadata']['uid']}"
        if s.volumes.store.get_by_name(None, name) is not None:
            return None
        cm = claim["metadata"]
        key = f"{cm['namespace']}/{cm['name']}"
        cls = pvb.claim_class(claim)
        sc = s.classes.store.get_by_name(None, cls)
        if sc is None:
            return None  # the PV controller reports a missing class
        s.recorder.event(
            claim,
            NORMAL,
            "Provisioning",
            f'External provisioner is provisioning volume for claim "{key}"',
        )
        spec = claim.get("spec") or {}
        modes = list(spec.get("accessModes") or ["ReadWriteOnce"])
        params = {
            k: str(v)
            for k, v in (sc.get("parameters") or {}).items()
            if not k.startswith(_RESERVED_PREFIX)
        }
        fs_type = str((sc.get("parameters") or {}).get("csi.storage.k8s.io/fstype", ""))
        try:
            topology = self._topology(claim, sc)
            size = int(pvb.requested_storage(claim))
            request = pb.CreateVolumeRequest(
                name=name,
                capacity_range=pb.CapacityRange(required_bytes=size),
                volume_capabilities=[
                    volume_capability(modes, fs_type, sc.get("mountOptions") or [])
                ],
                parameters=params,
                accessibility_requirements=topology,
            )
            resp = await s.controller.CreateVolume(request, timeout=30)
        except (ValueError, grpc.aio.AioRpcError) as err:
            msg = _grpc_message(err) if isinstance(err, grpc.aio.AioRpcError) else str(err)
            s.recorder.event(
                claim, WARNING, "ProvisioningFailed",
                f'failed to provision volume with StorageClass "{cls}": {msg}',
            )  # fmt: skip
            return Result(requeue=True)
        vol = resp.volume
        attributes = dict(vol.volume_context)
        attributes[ANN_PROVISIONER_IDENTITY] = s.identity
        pv_spec: Obj = {
            "capacity": {"storage": _bytes(Decimal(vol.capacity_bytes or size))},
            "accessModes": modes,
            "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy") or "Delete",
            "storageClassName": cls,
            "volumeMode": "Filesystem",
            "csi": {
                "driver": s.driver, "volumeHandle": vol.volume_id, "volumeAttributes": attributes,
            },
            "claimRef": {
                "kind": "PersistentVolumeClaim", "apiVersion": "v1",
                "namespace": cm["namespace"], "name": cm["name"], "uid": cm["uid"],
                "resourceVersion": cm.get("resourceVersion", ""),
            },
        }  # fmt: skip
        if fs_type:
            pv_spec["csi"]["fsType"] = fs_type
        if sc.get("mountOptions"):
            pv_spec["mountOptions"] = list(sc["mountOptions"])
        terms = [
            {
                "matchExpressions": [
                    {"key": k, "operator": "In", "values": [v]}
                    for k, v in sorted(t.segments.items())
                ]
            }
            for t in vol.accessible_topology
            if t.segments
        ]
        if terms:
            pv_spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": terms}}
        pv = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {pvb.ANN_PROVISIONED_BY: s.driver}},
            "spec": pv_spec,
        }
        try:
            await s.client.create(PVS, pv)
        except ApiError as err:
            if is_already_exists(err):
                return None
            raise
        log.info("provisioned %s for claim %s", name, key, extra={"volumeHandle": vol.volume_id})
        s.recorder.event(
            claim, NORMAL, "ProvisioningSucceeded", f"Successfully provisioned volume {name}"
        )
        return None

    def _should_delete(self, volume: Obj) -> bool:
        spec = volume.get("spec") or {}
        return (
            pvb.annotations_of(volume).get(pvb.ANN_PROVISIONED_BY) == self.s.driver
            and self.s.csi_volume(volume) is not None
            and (volume.get("status") or {}).get("phase") == "Released"
            and spec.get("persistentVolumeReclaimPolicy") == "Delete"
            and not volume["metadata"].get("deletionTimestamp")
        )

    async def _delete(self, volume: Obj) -> Result | None:
        s = self.s
        name = volume["metadata"]["name"]
        handle = str(volume["spec"]["csi"]["volumeHandle"])
        try:
            await s.controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=handle), timeout=30)
        except grpc.aio.AioRpcError as err:
            s.recorder.event(volume, WARNING, "VolumeFailedDelete", _grpc_message(err))
            return Result(requeue=True)
        try:
            await s.client.delete(PVS, name, preconditions={"uid": volume["metadata"]["uid"]})
        except ApiError as err:
            if not is_not_found(err):
                raise
        log.info("deleted volume %s (%s)", name, handle)
        return None


class _Attacher:
    def __init__(self, s: Sidecars) -> None:
        self.s = s
        self.finalizer = f"external-attacher/{s.driver.replace('.', '-').replace('/', '-')}"
        #: VolumeAttachment name -> uid of those this attacher marked attached that its
        #: informer has not shown attached yet (the finalizer's own update event comes
        #: first, and must not attach them again)
        self.marked: dict[str, str] = {}

    async def reconcile(self, request: Request) -> Result | None:
        s = self.s
        va = s.attachments.store.get_by_name(None, request.name)
        if va is None or (va.get("spec") or {}).get("attacher") != s.driver:
            self.marked.pop(request.name, None)
            return None
        meta = va["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        spec = va["spec"]
        pv_name = (spec.get("source") or {}).get("persistentVolumeName") or ""
        volume = s.volumes.store.get_by_name(None, pv_name)
        csi = s.csi_volume(volume)
        node_id = self._node_id(str(spec.get("nodeName", "")))
        if meta.get("deletionTimestamp"):
            if self.finalizer not in finalizers:
                return None
            if csi is not None:
                try:
                    await s.controller.ControllerUnpublishVolume(
                        pb.ControllerUnpublishVolumeRequest(
                            volume_id=csi["volumeHandle"], node_id=node_id
                        ),
                        timeout=30,
                    )
                except grpc.aio.AioRpcError as err:
                    await self._status(
                        va, {"detachError": {"time": _now(), "message": _grpc_message(err)}}
                    )
                    return Result(requeue=True)
            rest = [f for f in finalizers if f != self.finalizer]
            await s.client.patch(
                ATTACHMENTS, request.name,
                {"metadata": {"finalizers": rest, "resourceVersion": meta["resourceVersion"]}},
                patch_type="merge",
            )  # fmt: skip
            return None
        if (va.get("status") or {}).get("attached"):
            self.marked.pop(request.name, None)
            return None
        if self.marked.get(request.name) == meta.get("uid"):
            return None  # attached by this attacher; its informer has yet to show it
        if self.finalizer not in finalizers:
            # as upstream's csiAttach: attached with the object the patch returned, in this
            # same sync (not after the informer brings the update back: one watch hop less)
            va = await s.client.patch(
                ATTACHMENTS, request.name,
                {"metadata": {"finalizers": [*finalizers, self.finalizer],
                              "resourceVersion": meta["resourceVersion"]}},
                patch_type="merge",
            )  # fmt: skip
        if csi is None:
            await self._status(
                va,
                {
                    "attachError": {
                        "time": _now(),
                        "message": f'PersistentVolume "{pv_name}" not found or not a '
                        f"{s.driver} volume",
                    }
                },
            )
            return Result(requeue=True)
        modes = list((volume or {}).get("spec", {}).get("accessModes") or [])
        try:
            resp = await s.controller.ControllerPublishVolume(
                pb.ControllerPublishVolumeRequest(
                    volume_id=csi["volumeHandle"], node_id=node_id,
                    volume_capability=volume_capability(modes, str(csi.get("fsType", ""))),
                    readonly=bool(csi.get("readOnly")),
                    volume_context={
                        str(k): str(v) for k, v in (csi.get("volumeAttributes") or {}).items()
                    },
                ),
                timeout=30,
            )  # fmt: skip
        except grpc.aio.AioRpcError as err:
            await self._status(
                va,
                {"attached": False, "attachError": {"time": _now(), "message": _grpc_message(err)}},
            )
            return Result(requeue=True)
        await self._status(
            va,
            {
                "attached": True,
                "attachmentMetadata": dict(resp.publish_context),
                "attachError": None,
            },
        )
        self.marked[request.name] = str(meta.get("uid"))
        log.info("attached %s to %s", pv_name, spec.get("nodeName"))
        return None

    def _node_id(self, node_name: str) -> str:
        node = self.s.nodes.store.get_by_name(None, node_name)
        ids = (node or {}).get("metadata", {}).get("annotations", {}).get(ANN_NODE_ID)
        try:
            return str(json.loads(ids)[self.s.driver]) if ids else node_name
        except (ValueError, KeyError, TypeError):
            return node_name

    async def _status(self, va: Obj, status: Obj) -> None:
        await self.s.client.patch(
            ATTACHMENTS,
            va["metadata"]["name"],
            {"status": status},
            patch_type="merge",
            subresource="status",
        )


def _conditions(claim: Obj, keep_out: set[str], add: list[Obj]) -> list[Obj]:
    kept = [
        c
        for c in (claim.get("status") or {}).get("conditions") or []
        if c.get("type") not in keep_out
    ]
    return [*kept, *add]


class _Resizer:
    def __init__(self, s: Sidecars) -> None:
        self.s = s

    async def reconcile(self, request: Request) -> Result | None:
        s = self.s
        if not request.namespace:
            return None
        claim = s.claims.store.get_by_name(request.namespace, request.name)
        if claim is None or (claim.get("status") or {}).get("phase") != "Bound":
            return None
        volume = s.volumes.store.get_by_name(
            None, (claim.get("spec") or {}).get("volumeName") or ""
        )
        csi = s.csi_volume(volume)
        if volume is None or csi is None:
            return None
        want = pvb.requested_storage(claim)
        if want <= pvb.volume_capacity(volume):
            return None
        name = volume["metadata"]["name"]
        cm = claim["metadata"]
        s.recorder.event(claim, NORMAL, "Resizing", f"External resizer is resizing volume {name}")
        resizing = {
            "type": "Resizing",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": _now(),
        }
        await self._claim_status(claim, {
            "conditions": _conditions(claim, {"Resizing"}, [resizing]),
            "allocatedResources": {"storage": _bytes(want)},
            "allocatedResourceStatuses": {"storage": "ControllerResizeInProgress"},
        })  # fmt: skip
        try:
            resp = await s.controller.ControllerExpandVolume(
                pb.ControllerExpandVolumeRequest(
                    volume_id=csi["volumeHandle"],
                    capacity_range=pb.CapacityRange(required_bytes=int(want)),
                    volume_capability=volume_capability(volume["spec"].get("accessModes") or []),
                ),
                timeout=30,
            )  # fmt: skip
        except grpc.aio.AioRpcError as err:
            msg = f'resize volume "{name}" by resizer "{s.driver}" failed: {_grpc_message(err)}'
            s.recorder.event(claim, WARNING, "VolumeResizeFailed", msg)
            failed = {
                "type": "ControllerResizeError",
                "status": "True",
                "lastTransitionTime": _now(),
                "message": msg,
            }
            await self._claim_status(claim, {
                "conditions": _conditions(claim, {"Resizing", "ControllerResizeError"}, [failed]),
                "allocatedResourceStatuses": {"storage": "ControllerResizeInfeasible"},
            })  # fmt: skip
            return Result(requeue=True)
        new = _bytes(Decimal(resp.capacity_bytes or int(want)))
        await s.client.patch(
            PVS, name, {"spec": {"capacity": {"storage": new}}}, patch_type="merge"
        )
        if resp.node_expansion_required:
            pending = {
                "type": "FileSystemResizePending", "status": "True", "lastProbeTime": None,
                "lastTransitionTime": _now(),
                "message": "Waiting for user to (re-)start a pod to finish file system resize "
                "of volume on node.",
            }  # fmt: skip
            await self._claim_status(claim, {
                "conditions": _conditions(claim, {"Resizing", "ControllerResizeError"}, [pending]),
                "allocatedResourceStatuses": {"storage": "NodeResizePending"},
            })  # fmt: skip
            s.recorder.event(
                claim,
                NORMAL,
                "FileSystemResizeRequired",
                "Require file system resize of volume on node",
            )
        else:
            await self._claim_status(claim, {
                "capacity": {"storage": new},
                "conditions": _conditions(claim, {"Resizing", "ControllerResizeError"}, []),
                "allocatedResourceStatuses": None,
            })  # fmt: skip
            s.recorder.event(claim, NORMAL, "VolumeResizeSuccessful", "Resize volume succeeded")
        log.info("expanded %s of %s/%s to %s", name, cm["namespace"], cm["name"], new)
        return None

    async def _claim_status(self, claim: Obj, status: Obj) -> None:
        cm = claim["metadata"]
        await self.s.client.patch(
            PVCS,
            cm["name"],
            {"status": status},
            cm["namespace"],
            patch_type="merge",
            subresource="status",
        )
