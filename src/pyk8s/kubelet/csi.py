"""CSI on the node: the plugin watcher (upstream's pluginmanager) and the gRPC client the
``kubernetes.io/csi`` volume plugin calls.

**Registration.** A driver's registrar puts a socket in ``<root>/plugins_registry/``.
:class:`PluginWatcher` looks at that directory every second (upstream uses inotify),
calls ``GetInfo`` on each new socket (pluginregistration v1), and for a ``CSIPlugin``
of a supported version (1.x) connects to the endpoint it names, asks ``NodeGetInfo``
and ``NodeGetCapabilities``, and then, as upstream's csi plugin does at registration:

* adds ``driver → node ID`` to the Node's ``csi.volume.kubernetes.io/nodeid`` annotation
  and the driver's topology segments to the Node's labels;
* creates or updates the node's CSINode (owned by the Node) with the driver's name, node
  ID, topology keys and ``allocatable.count`` (``max_volumes_per_node`` when above 0);
* makes the driver known to the volume plugin, then ``NotifyRegistrationStatus`` — or
  that call with ``plugin_registered: false`` and the error.

A socket that goes away deregisters its driver (annotation, labels kept as upstream,
CSINode entry removed).

**Calls.** :class:`GrpcCSIDriver` is the :class:`~pyk8s.kubelet.volumes.CSINodeDriver`
the volume plugin uses from its worker thread: NodeStage/NodeUnstage (when the driver has
``STAGE_UNSTAGE_VOLUME``), NodePublish/NodeUnpublish, NodeGetVolumeStats (when it has
``GET_VOLUME_STATS``) and NodeExpandVolume (``EXPAND_VOLUME``), each with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import ApiError, Client, is_not_found
from pyk8s.csi import ANN_NODE_ID, CSI_PLUGIN_TYPE, channel_target
from pyk8s.csi import csi_pb2 as pb
from pyk8s.csi import csi_pb2_grpc as pbg
from pyk8s.csi import pluginregistration_pb2 as reg
from pyk8s.csi import pluginregistration_pb2_grpc as regg
from pyk8s.kubelet.volumes import CSIPlugin, VolumeError

__all__ = ["GrpcCSIDriver", "PluginWatcher"]

log = logging.getLogger(__name__)

NODES: Resource = REGISTRY.get("", "v1", "nodes")  # type: ignore[assignment]
CSINODES: Resource = REGISTRY.get("storage.k8s.io", "v1", "csinodes")  # type: ignore[assignment]

#: deadline of one node call (upstream's csiTimeout is 2 minutes; these are local)
CALL_TIMEOUT = 60.0
_RPC = pb.NodeServiceCapability.RPC


def _message(err: grpc.RpcError) -> str:
    code = err.code()
    return f"rpc error: code = {code.name.title().replace('_', '')} desc = {err.details()}"


@dataclass
class GrpcCSIDriver:
    """One registered driver, reached over its CSI socket (synchronous gRPC, used from
    the volume plugin's worker thread)."""

    name: str
    endpoint: str
    node_id: str = ""
    capabilities: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.channel = grpc.insecure_channel(channel_target(self.endpoint))
        self.node = pbg.NodeStub(self.channel)  # type: ignore[no-untyped-call]

    @property
    def stage_unstage(self) -> bool:
        return _RPC.STAGE_UNSTAGE_VOLUME in self.capabilities

    @property
    def has_stats(self) -> bool:
        return _RPC.GET_VOLUME_STATS in self.capabilities

    @property
    def can_expand(self) -> bool:
        return _RPC.EXPAND_VOLUME in self.capabilities

    def close(self) -> None:
        self.channel.close()

    def _call(self, what: str, method: Any, request: Any) -> Any:
        try:
            return method(request, timeout=CALL_TIMEOUT)
        except grpc.RpcError as err:
            raise VolumeError(f"kubernetes.io/csi: {what} failed: {_message(err)}") from err

    def node_stage(
        self, volume_id: str, staging: Path, capability: pb.VolumeCapability,
        context: Mapping[str, str], publish_context: Mapping[str, str],
    ) -> None:  # fmt: skip
        staging.mkdir(parents=True, exist_ok=True)
        self._call(
            "attacher.MountDevice", self.node.NodeStageVolume,
            pb.NodeStageVolumeRequest(
                volume_id=volume_id, staging_target_path=str(staging),
                volume_capability=capability, volume_context=dict(context),
                publish_context=dict(publish_context),
            ),
        )  # fmt: skip

    def node_unstage(self, volume_id: str, staging: Path) -> None:
        self._call(
            "attacher.UnmountDevice", self.node.NodeUnstageVolume,
            pb.NodeUnstageVolumeRequest(volume_id=volume_id, staging_target_path=str(staging)),
        )  # fmt: skip

    def node_publish(
        self, volume_id: str, target: Path, read_only: bool, context: Mapping[str, str],
        *, staging: Path | None = None, publish_context: Mapping[str, str] | None = None,
        capability: pb.VolumeCapability | None = None,
    ) -> None:  # fmt: skip
        self._call(
            "mounter.SetUpAt", self.node.NodePublishVolume,
            pb.NodePublishVolumeRequest(
                volume_id=volume_id, target_path=str(target), readonly=read_only,
                staging_target_path=str(staging) if staging else "",
                volume_capability=capability or pb.VolumeCapability(
                    mount=pb.VolumeCapability.MountVolume(),
                    access_mode=pb.VolumeCapability.AccessMode(
                        mode=pb.VolumeCapability.AccessMode.SINGLE_NODE_WRITER
                    ),
                ),
                volume_context=dict(context), publish_context=dict(publish_context or {}),
            ),
        )  # fmt: skip

    def node_unpublish(self, volume_id: str, target: Path) -> None:
        self._call(
            "Unmounter.TearDownAt", self.node.NodeUnpublishVolume,
            pb.NodeUnpublishVolumeRequest(volume_id=volume_id, target_path=str(target)),
        )  # fmt: skip

    def node_stats(self, volume_id: str, path: Path, staging: Path | None) -> dict[str, int] | None:
        """NodeGetVolumeStats as a summary API VolumeStats (without time and name)."""
        if not self.has_stats:
            return None
        resp = self._call(
            "NodeGetVolumeStats", self.node.NodeGetVolumeStats,
            pb.NodeGetVolumeStatsRequest(
                volume_id=volume_id, volume_path=str(path),
                staging_target_path=str(staging) if staging else "",
            ),
        )  # fmt: skip
        out: dict[str, int] = {}
        for u in resp.usage:
            if u.unit == pb.VolumeUsage.BYTES:
                out.update(capacityBytes=u.total, usedBytes=u.used, availableBytes=u.available)
            elif u.unit == pb.VolumeUsage.INODES:
                out.update(inodes=u.total, inodesUsed=u.used, inodesFree=u.available)
        return out

    def node_expand(
        self, volume_id: str, path: Path, staging: Path | None, size: int,
        capability: pb.VolumeCapability,
    ) -> int:  # fmt: skip
        resp = self._call(
            "NodeExpandVolume", self.node.NodeExpandVolume,
            pb.NodeExpandVolumeRequest(
                volume_id=volume_id, volume_path=str(path),
                staging_target_path=str(staging) if staging else "",
                capacity_range=pb.CapacityRange(required_bytes=size),
                volume_capability=capability,
            ),
        )  # fmt: skip
        return int(resp.capacity_bytes or size)


class PluginWatcher:
    """Registers the CSI drivers whose registrar sockets appear in ``<root>/plugins_registry``."""

    def __init__(self, client: Client, node_name: str, root: Path, plugin: CSIPlugin) -> None:
        self.client = client
        self.node_name = node_name
        self.dir = root / "plugins_registry"
        self.plugin = plugin
        #: registrar socket -> driver name
        self.sockets: dict[Path, str] = {}
        self.failed: dict[Path, float] = {}

    async def run(self, stop: asyncio.Event | None = None, period: float = 1.0) -> None:
        await asyncio.to_thread(self.dir.mkdir, parents=True, exist_ok=True)
        while stop is None or not stop.is_set():
            try:
                await self.sync()
            except Exception:
                log.exception("plugin watcher")
            await asyncio.sleep(period)

    async def sync(self) -> None:
        present = set(
            await asyncio.to_thread(lambda: [p for p in self.dir.iterdir() if p.is_socket()])
        )
        for path in sorted(present - set(self.sockets)):
            mtime = await asyncio.to_thread(lambda p=path: p.stat().st_mtime)  # type: ignore[misc]
            if self.failed.get(path) == mtime:
                continue  # this socket already failed; a new one (new mtime) is tried again
            if await self.register(path):
                self.failed.pop(path, None)
            else:
                self.failed[path] = mtime
        for path in sorted(set(self.sockets) - present):
            await self.deregister(self.sockets.pop(path))

    async def register(self, path: Path) -> bool:
        async with grpc.aio.insecure_channel(channel_target(str(path))) as channel:
            stub = regg.RegistrationStub(channel)  # type: ignore[no-untyped-call]
            try:
                info = await stub.GetInfo(reg.InfoRequest(), timeout=10)
            except grpc.aio.AioRpcError as err:
                log.warning("GetInfo on %s failed: %s", path, err.details())
                return False
            error = ""
            try:
                if info.type != CSI_PLUGIN_TYPE:
                    raise ValueError(f"plugin type {info.type!r} is not handled")
                if not any(v.split(".")[0].lstrip("v") == "1" for v in info.supported_versions):
                    raise ValueError(
                        f"none of the versions {list(info.supported_versions)} of CSI driver "
                        f"{info.name} is supported"
                    )
                await self._install(info.name, info.endpoint or str(path))
            except (ValueError, grpc.RpcError, ApiError, VolumeError) as err:
                error = str(err)
                log.error("registering CSI driver %s failed: %s", info.name, error)
            await stub.NotifyRegistrationStatus(
                reg.RegistrationStatus(plugin_registered=not error, error=error), timeout=10
            )
        if error:
            return False
        self.sockets[path] = info.name
        return True

    async def _install(self, name: str, endpoint: str) -> None:
        driver = GrpcCSIDriver(name, endpoint)
        try:
            info = await asyncio.to_thread(
                driver._call, "NodeGetInfo", driver.node.NodeGetInfo, pb.NodeGetInfoRequest()
            )
            caps = await asyncio.to_thread(
                driver._call, "NodeGetCapabilities", driver.node.NodeGetCapabilities,
                pb.NodeGetCapabilitiesRequest(),
            )  # fmt: skip
        except VolumeError:
            driver.close()
            raise
        driver.node_id = info.node_id
        driver.capabilities = {c.rpc.type for c in caps.capabilities}
        topology = dict(info.accessible_topology.segments)
        await self._update_node(name, info.node_id, topology)
        entry: dict[str, Any] = {
            "name": name,
            "nodeID": info.node_id,
            "topologyKeys": sorted(topology) or None,
        }
        if info.max_volumes_per_node > 0:
            entry["allocatable"] = {"count": info.max_volumes_per_node}
        await self._update_csinode(name, {k: v for k, v in entry.items() if v is not None})
        old = self.plugin.drivers.get(name)
        self.plugin.drivers[name] = driver
        if isinstance(old, GrpcCSIDriver):
            old.close()
        log.info(
            "registered CSI driver",
            extra={"driver": name, "endpoint": endpoint, "nodeID": info.node_id},
        )

    async def _update_node(self, name: str, node_id: str, topology: Mapping[str, str]) -> None:
        node = await self.client.get(NODES, self.node_name)
        ids = json.loads((node["metadata"].get("annotations") or {}).get(ANN_NODE_ID) or "{}")
        ids[name] = node_id
        meta: dict[str, Any] = {"annotations": {ANN_NODE_ID: json.dumps(ids, sort_keys=True)}}
        if topology:  # (a merge patch's null would drop every label)
            meta["labels"] = dict(topology)
        patch = {"metadata": meta}
        await self.client.patch(NODES, self.node_name, patch, patch_type="merge")

    async def _update_csinode(self, name: str, entry: dict[str, Any] | None) -> None:
        for _ in range(5):
            try:
                csinode = await self.client.get(CSINODES, self.node_name)
            except ApiError as err:
                if not is_not_found(err) or entry is None:
                    raise
                node = await self.client.get(NODES, self.node_name)
                owner = {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "name": self.node_name,
                    "uid": node["metadata"]["uid"],
                }
                body = {"apiVersion": "storage.k8s.io/v1", "kind": "CSINode",
                        "metadata": {"name": self.node_name, "ownerReferences": [owner]},
                        "spec": {"drivers": [entry]}}  # fmt: skip
                try:
                    await self.client.create(CSINODES, body)
                    return
                except ApiError:
                    continue
            drivers = [
                d for d in csinode.get("spec", {}).get("drivers") or [] if d.get("name") != name
            ]
            if entry is not None:
                drivers.append(entry)
            csinode.setdefault("spec", {})["drivers"] = drivers
            try:
                await self.client.update(CSINODES, csinode)
                return
            except ApiError as err:
                if err.status != 409:
                    raise
        raise VolumeError(f"could not update CSINode {self.node_name}: conflicts")

    async def deregister(self, name: str) -> None:
        driver = self.plugin.drivers.pop(name, None)
        if isinstance(driver, GrpcCSIDriver):
            driver.close()
        try:
            node = await self.client.get(NODES, self.node_name)
            ids = json.loads((node["metadata"].get("annotations") or {}).get(ANN_NODE_ID) or "{}")
            ids.pop(name, None)
            value = json.dumps(ids, sort_keys=True) if ids else None
            await self.client.patch(
                NODES, self.node_name, {"metadata": {"annotations": {ANN_NODE_ID: value}}},
                patch_type="merge",
            )  # fmt: skip
            await self._update_csinode(name, None)
        except (ApiError, VolumeError) as err:
            log.warning("deregistering CSI driver %s: %s", name, err)
        log.info("deregistered CSI driver", extra={"driver": name})
