"""The csi-hostpath driver's gRPC services: Identity, Controller and Node over a unix
socket, volumes as directories under ``DATA_DIR/volumes/<volume id>``, and the
node-driver registrar's Registration service on a socket in the kubelet's
``plugins_registry`` directory.

* Controller: CreateVolume (idempotent by name; the capacity asked for is recorded, not
  enforced, as upstream's hostpath driver does for directories), DeleteVolume,
  ControllerPublishVolume/ControllerUnpublishVolume (record the node; the attach step),
  ControllerExpandVolume (new capacity, node expansion required), capabilities.
* Node: NodeStageVolume bind-mounts the volume's directory at the staging path,
  NodePublishVolume bind-mounts the staging path (read-only when asked) at the pod's
  target; NodeUnpublish/NodeUnstage unmount and remove them; NodeGetVolumeStats reports
  the recorded capacity, the bytes used under the directory and the filesystem's inodes;
  NodeExpandVolume records the new size; NodeGetInfo gives the node name, the
  ``topology.hostpath.csi/node`` segment and the volume limit.
* Every call is logged (method, request fields, gRPC code, milliseconds) in the project's
  structured log format, and counted in ``csi_hostpath_operations_total``.

State (name → volume, sizes, publications) is one JSON file, ``DATA_DIR/state.json``,
written atomically after each change, so a restarted driver knows its volumes.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf import json_format
from google.protobuf.wrappers_pb2 import BoolValue
from prometheus_client import CollectorRegistry, Counter

from pyk8s.csi import CSI_PLUGIN_TYPE
from pyk8s.csi import csi_pb2 as pb
from pyk8s.csi import csi_pb2_grpc as pbg
from pyk8s.csi import pluginregistration_pb2 as reg
from pyk8s.csi import pluginregistration_pb2_grpc as regg

log = logging.getLogger(__name__)

DRIVER_NAME = "hostpath.csi.k8s.io"
TOPOLOGY_KEY = "topology.hostpath.csi/node"
VERSION = "v1.0.0-pyk8s"

Req = TypeVar("Req")
Resp = TypeVar("Resp")

_CTRL = pb.ControllerServiceCapability.RPC
_NODE = pb.NodeServiceCapability.RPC


class CSIError(Exception):
    """A call's failure: its gRPC code and message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class DriverConfig:
    name: str
    node_id: str
    data_dir: Path
    max_volumes_per_node: int = 0


def _logged(
    fn: Callable[[Any, Req], Awaitable[Resp]],
) -> Callable[[Any, Req, grpc.aio.ServicerContext], Awaitable[Resp]]:
    """Log and count one CSI call; a CSIError becomes the call's gRPC status."""
    method = fn.__name__

    async def call(self: Any, request: Req, context: grpc.aio.ServicerContext) -> Resp:
        started = time.monotonic()
        fields = json_format.MessageToDict(request)
        fields.pop("secrets", None)
        code = grpc.StatusCode.OK
        message = ""
        try:
            return await fn(self, request)
        except CSIError as err:
            code, message = err.code, str(err)
            await context.abort(err.code, message)
            raise  # unreachable: abort raises
        except Exception as err:
            code, message = grpc.StatusCode.INTERNAL, f"{type(err).__name__}: {err}"
            log.exception("csi call failed", extra={"method": method})
            await context.abort(code, message)
            raise
        finally:
            self.driver.calls.labels(method, code.name).inc()
            log.info(
                "csi call %s", method,
                extra={"method": method, "request": fields, "code": code.name,
                       "error": message, "ms": round((time.monotonic() - started) * 1000, 1)},
            )  # fmt: skip

    call.__name__ = method
    return call


def is_mount(path: Path) -> bool:
    """``path`` is a mount point (a bind mount too, which ``os.path.ismount`` misses when
    it stays on the same filesystem)."""
    point = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1].replace("\\040", " ") == point for line in f)


#: mount(2) flags (linux/mount.h)
MS_RDONLY, MS_REMOUNT, MS_BIND = 1, 32, 4096
_LIBC = ctypes.CDLL(None, use_errno=True)


def _check(result: int, target: Path) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), str(target))


def _bind_mount(source: Path, target: Path, read_only: bool) -> None:
    """``mount --bind`` (then ``-o remount,bind,ro``) as the mount(2) calls themselves:
    a stage and a publish are on the way of every pod that uses a volume, and a fork and
    exec of mount(8) from this process cost more than the mount."""
    target.mkdir(parents=True, exist_ok=True)
    if is_mount(target):
        return
    _check(_LIBC.mount(str(source).encode(), str(target).encode(), None, MS_BIND, None), target)
    if read_only:
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        _check(_LIBC.mount(None, str(target).encode(), None, flags, None), target)


def _unmount(target: Path) -> None:
    while is_mount(target):
        _check(_LIBC.umount2(str(target).encode(), 0), target)
    if target.is_dir():
        target.rmdir()


def _usage(path: Path) -> tuple[int, int, int]:
    """Bytes used under ``path``, and the filesystem's total and free inodes."""
    used = 0
    for root, dirs, files in os.walk(path):
        for name in [*files, *dirs]:
            try:
                used += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue
    st = os.statvfs(path)
    return used, st.f_files, st.f_ffree


class HostPathDriver:
    """The driver's state and its three services (see the module docstring)."""

    def __init__(self, config: DriverConfig, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self.root = config.data_dir / "volumes"
        self.state_file = config.data_dir / "state.json"
        self.registry = registry or CollectorRegistry()
        self.calls = Counter(
            "csi_hostpath_operations",
            "CSI calls served, by method and gRPC code",
            ["method", "grpc_status_code"],
            registry=self.registry,
        )
        self.volumes: dict[str, dict[str, Any]] = {}
        self._lock = asyncio.Lock()
        if self.state_file.is_file():
            self.volumes = json.loads(self.state_file.read_text()).get("volumes", {})

    # ----------------------------------------------------------------- state

    def _save(self) -> None:
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"volumes": self.volumes}, indent=1))
        tmp.replace(self.state_file)

    def volume(self, volume_id: str) -> dict[str, Any]:
        if not volume_id:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "volume ID missing in request")
        vol = self.volumes.get(volume_id)
        if vol is None:
            raise CSIError(grpc.StatusCode.NOT_FOUND, f"volume id {volume_id} does not exist")
        return vol

    def path(self, volume_id: str) -> Path:
        return self.root / volume_id

    @property
    def topology(self) -> pb.Topology:
        return pb.Topology(segments={TOPOLOGY_KEY: self.config.node_id})

    # ----------------------------------------------------------------- servers

    async def serve(self, socket: Path) -> grpc.aio.Server:
        """Serve Identity, Controller and Node on ``socket`` (a stale one is replaced)."""
        server = grpc.aio.server()
        pbg.add_IdentityServicer_to_server(IdentityService(self), server)  # type: ignore[no-untyped-call]
        pbg.add_ControllerServicer_to_server(ControllerService(self), server)  # type: ignore[no-untyped-call]
        pbg.add_NodeServicer_to_server(NodeService(self), server)  # type: ignore[no-untyped-call]
        await _listen(server, socket)
        log.info("csi-hostpath serving", extra={"socket": str(socket), "driver": self.config.name})
        return server

    async def serve_registrar(self, socket: Path, endpoint: Path) -> grpc.aio.Server:
        """The node-driver registrar: Registration on ``socket``, pointing the kubelet at
        the CSI ``endpoint``."""
        server = grpc.aio.server()
        regg.add_RegistrationServicer_to_server(  # type: ignore[no-untyped-call]
            Registrar(self.config.name, endpoint), server
        )
        await _listen(server, socket)
        log.info("registrar serving", extra={"socket": str(socket), "endpoint": str(endpoint)})
        return server


def _prepare_socket(socket: Path) -> None:
    socket.parent.mkdir(parents=True, exist_ok=True)
    socket.unlink(missing_ok=True)


async def _listen(server: grpc.aio.Server, socket: Path) -> None:
    await asyncio.to_thread(_prepare_socket, socket)
    server.add_insecure_port(f"unix://{socket}")
    await server.start()


class Registrar(regg.RegistrationServicer):
    """upstream's node-driver-registrar: tells the kubelet the driver's name and socket."""

    def __init__(self, name: str, endpoint: Path) -> None:
        self.name, self.endpoint = name, endpoint
        self.registered = asyncio.Event()
        #: the kubelet's error when it refused the registration
        self.error = ""

    async def GetInfo(self, request: reg.InfoRequest, context: Any) -> reg.PluginInfo:
        log.info("registrar GetInfo", extra={"method": "GetInfo"})
        return reg.PluginInfo(
            type=CSI_PLUGIN_TYPE, name=self.name, endpoint=str(self.endpoint),
            supported_versions=["1.0.0"],
        )  # fmt: skip

    async def NotifyRegistrationStatus(
        self, request: reg.RegistrationStatus, context: Any
    ) -> reg.RegistrationStatusResponse:
        if request.plugin_registered:
            log.info("registered with the kubelet", extra={"method": "NotifyRegistrationStatus"})
            self.registered.set()
        else:
            self.error = request.error
            log.error(
                "registration with the kubelet failed: %s", request.error,
                extra={"method": "NotifyRegistrationStatus"},
            )  # fmt: skip
        return reg.RegistrationStatusResponse()


class IdentityService(pbg.IdentityServicer):
    def __init__(self, driver: HostPathDriver) -> None:
        self.driver = driver

    @_logged
    async def GetPluginInfo(self, request: pb.GetPluginInfoRequest) -> pb.GetPluginInfoResponse:
        return pb.GetPluginInfoResponse(name=self.driver.config.name, vendor_version=VERSION)

    @_logged
    async def GetPluginCapabilities(
        self, request: pb.GetPluginCapabilitiesRequest
    ) -> pb.GetPluginCapabilitiesResponse:
        svc = pb.PluginCapability.Service
        caps = [
            pb.PluginCapability(service=svc(type=svc.CONTROLLER_SERVICE)),
            pb.PluginCapability(service=svc(type=svc.VOLUME_ACCESSIBILITY_CONSTRAINTS)),
            pb.PluginCapability(
                volume_expansion=pb.PluginCapability.VolumeExpansion(
                    type=pb.PluginCapability.VolumeExpansion.ONLINE
                )
            ),
        ]
        return pb.GetPluginCapabilitiesResponse(capabilities=caps)

    @_logged
    async def Probe(self, request: pb.ProbeRequest) -> pb.ProbeResponse:
        return pb.ProbeResponse(ready=BoolValue(value=True))


class ControllerService(pbg.ControllerServicer):
    def __init__(self, driver: HostPathDriver) -> None:
        self.driver = driver

    @_logged
    async def CreateVolume(self, request: pb.CreateVolumeRequest) -> pb.CreateVolumeResponse:
        d = self.driver
        if not request.name:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "Name missing in request")
        if not request.volume_capabilities:
            raise CSIError(
                grpc.StatusCode.INVALID_ARGUMENT, "Volume Capabilities missing in request"
            )
        if any(c.HasField("block") for c in request.volume_capabilities):
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "block access type is not supported")
        req = request.accessibility_requirements
        if req.requisite and not any(
            t.segments.get(TOPOLOGY_KEY) == d.config.node_id for t in req.requisite
        ):
            raise CSIError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"requested topology is not accessible from node {d.config.node_id}",
            )
        size = request.capacity_range.required_bytes or request.capacity_range.limit_bytes
        async with d._lock:
            for vid, vol in d.volumes.items():
                if vol["name"] == request.name:
                    if vol["capacity"] < size:
                        raise CSIError(
                            grpc.StatusCode.ALREADY_EXISTS,
                            f"Volume with the same name: {request.name} but with different size "
                            "already exist",
                        )
                    return pb.CreateVolumeResponse(volume=self._volume(vid, vol))
            vid = str(uuid.uuid4())
            await asyncio.to_thread(d.path(vid).mkdir, mode=0o777, parents=True)
            d.path(vid).chmod(0o777)
            vol = {
                "name": request.name,
                "capacity": size,
                "published": [],
                "node": d.config.node_id,
            }
            d.volumes[vid] = vol
            d._save()
        return pb.CreateVolumeResponse(volume=self._volume(vid, vol))

    def _volume(self, vid: str, vol: dict[str, Any]) -> pb.Volume:
        return pb.Volume(
            volume_id=vid, capacity_bytes=vol["capacity"],
            volume_context={"hostpath.csi.k8s.io/node": vol["node"]},
            accessible_topology=[self.driver.topology],
        )  # fmt: skip

    @_logged
    async def DeleteVolume(self, request: pb.DeleteVolumeRequest) -> pb.DeleteVolumeResponse:
        d = self.driver
        if not request.volume_id:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "Volume ID missing in request")
        async with d._lock:
            vol = d.volumes.get(request.volume_id)
            if vol is None:
                return pb.DeleteVolumeResponse()  # already gone: success, as the spec says
            if vol["published"]:
                raise CSIError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"volume {request.volume_id} is still published at nodes {vol['published']}",
                )
            path = d.path(request.volume_id)
            await asyncio.to_thread(_remove_tree, path)
            del d.volumes[request.volume_id]
            d._save()
        return pb.DeleteVolumeResponse()

    @_logged
    async def ControllerPublishVolume(
        self, request: pb.ControllerPublishVolumeRequest
    ) -> pb.ControllerPublishVolumeResponse:
        d = self.driver
        if not request.node_id:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "Node ID not provided")
        async with d._lock:
            vol = d.volume(request.volume_id)
            if request.node_id != vol["node"]:
                raise CSIError(
                    grpc.StatusCode.NOT_FOUND,
                    f"volume {request.volume_id} is on node {vol['node']}, not {request.node_id}",
                )
            if request.node_id not in vol["published"]:
                vol["published"].append(request.node_id)
                d._save()
        return pb.ControllerPublishVolumeResponse(
            publish_context={"hostpath.csi.k8s.io/attached": "true"}
        )

    @_logged
    async def ControllerUnpublishVolume(
        self, request: pb.ControllerUnpublishVolumeRequest
    ) -> pb.ControllerUnpublishVolumeResponse:
        d = self.driver
        async with d._lock:
            vol = d.volumes.get(request.volume_id)
            if vol is not None and request.node_id in vol["published"]:
                vol["published"].remove(request.node_id)
                d._save()
        return pb.ControllerUnpublishVolumeResponse()

    @_logged
    async def ControllerGetCapabilities(
        self, request: pb.ControllerGetCapabilitiesRequest
    ) -> pb.ControllerGetCapabilitiesResponse:
        types = [_CTRL.CREATE_DELETE_VOLUME, _CTRL.PUBLISH_UNPUBLISH_VOLUME, _CTRL.EXPAND_VOLUME]
        caps = [pb.ControllerServiceCapability(rpc=_CTRL(type=t)) for t in types]
        return pb.ControllerGetCapabilitiesResponse(capabilities=caps)

    @_logged
    async def ControllerExpandVolume(
        self, request: pb.ControllerExpandVolumeRequest
    ) -> pb.ControllerExpandVolumeResponse:
        d = self.driver
        size = request.capacity_range.required_bytes
        if size <= 0:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "Capacity range not provided")
        async with d._lock:
            vol = d.volume(request.volume_id)
            vol["capacity"] = max(vol["capacity"], size)
            d._save()
        return pb.ControllerExpandVolumeResponse(
            capacity_bytes=vol["capacity"], node_expansion_required=True
        )


class NodeService(pbg.NodeServicer):
    def __init__(self, driver: HostPathDriver) -> None:
        self.driver = driver

    @_logged
    async def NodeStageVolume(
        self, request: pb.NodeStageVolumeRequest
    ) -> pb.NodeStageVolumeResponse:
        d = self.driver
        d.volume(request.volume_id)
        if not request.staging_target_path:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "Staging target not provided")
        if not request.HasField("volume_capability"):
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "Volume Capability missing in request")
        await asyncio.to_thread(
            _bind_mount, d.path(request.volume_id), Path(request.staging_target_path), False
        )
        return pb.NodeStageVolumeResponse()

    @_logged
    async def NodeUnstageVolume(
        self, request: pb.NodeUnstageVolumeRequest
    ) -> pb.NodeUnstageVolumeResponse:
        if not request.volume_id or not request.staging_target_path:
            raise CSIError(
                grpc.StatusCode.INVALID_ARGUMENT, "Volume ID and staging target path are required"
            )
        await asyncio.to_thread(_unmount, Path(request.staging_target_path))
        return pb.NodeUnstageVolumeResponse()

    @_logged
    async def NodePublishVolume(
        self, request: pb.NodePublishVolumeRequest
    ) -> pb.NodePublishVolumeResponse:
        d = self.driver
        d.volume(request.volume_id)
        if not request.target_path:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "Target path missing in request")
        if not request.HasField("volume_capability"):
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "Volume capability missing in request")
        source = (
            Path(request.staging_target_path)
            if request.staging_target_path
            else d.path(request.volume_id)
        )
        if request.staging_target_path and not await asyncio.to_thread(is_mount, source):
            raise CSIError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"volume {request.volume_id} is not staged at {source}",
            )
        await asyncio.to_thread(_bind_mount, source, Path(request.target_path), request.readonly)
        return pb.NodePublishVolumeResponse()

    @_logged
    async def NodeUnpublishVolume(
        self, request: pb.NodeUnpublishVolumeRequest
    ) -> pb.NodeUnpublishVolumeResponse:
        if not request.volume_id or not request.target_path:
            raise CSIError(
                grpc.StatusCode.INVALID_ARGUMENT, "Volume ID and target path are required"
            )
        await asyncio.to_thread(_unmount, Path(request.target_path))
        return pb.NodeUnpublishVolumeResponse()

    @_logged
    async def NodeGetVolumeStats(
        self, request: pb.NodeGetVolumeStatsRequest
    ) -> pb.NodeGetVolumeStatsResponse:
        d = self.driver
        vol = d.volume(request.volume_id)
        path = Path(request.volume_path)
        if not request.volume_path or not await asyncio.to_thread(path.exists):
            raise CSIError(grpc.StatusCode.NOT_FOUND, f"Could not get file information from {path}")
        used, inodes, free = await asyncio.to_thread(_usage, path)
        total = vol["capacity"]
        u = pb.VolumeUsage
        return pb.NodeGetVolumeStatsResponse(
            usage=[
                u(unit=u.BYTES, total=total, used=used, available=max(total - used, 0)),
                u(unit=u.INODES, total=inodes, used=inodes - free, available=free),
            ]
        )

    @_logged
    async def NodeExpandVolume(
        self, request: pb.NodeExpandVolumeRequest
    ) -> pb.NodeExpandVolumeResponse:
        d = self.driver
        vol = d.volume(request.volume_id)
        if not request.volume_path:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "Volume path not provided")
        # a directory has no filesystem to grow: the new size is what it reports from now on
        size = max(vol["capacity"], request.capacity_range.required_bytes)
        return pb.NodeExpandVolumeResponse(capacity_bytes=size)

    @_logged
    async def NodeGetCapabilities(
        self, request: pb.NodeGetCapabilitiesRequest
    ) -> pb.NodeGetCapabilitiesResponse:
        types = [_NODE.STAGE_UNSTAGE_VOLUME, _NODE.GET_VOLUME_STATS, _NODE.EXPAND_VOLUME]
        caps = [pb.NodeServiceCapability(rpc=_NODE(type=t)) for t in types]
        return pb.NodeGetCapabilitiesResponse(capabilities=caps)

    @_logged
    async def NodeGetInfo(self, request: pb.NodeGetInfoRequest) -> pb.NodeGetInfoResponse:
        d = self.driver
        return pb.NodeGetInfoResponse(
            node_id=d.config.node_id,
            max_volumes_per_node=d.config.max_volumes_per_node,
            accessible_topology=d.topology,
        )


def _remove_tree(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
