"""The csi-hostpath driver's gRPC services, called over its unix socket as the kubelet
and the sidecars call them (real gRPC; bind mounts need root, as the kubelet's)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from pyk8s.csi import CSI_PLUGIN_TYPE, volume_capability
from pyk8s.csi import csi_pb2 as pb
from pyk8s.csi import csi_pb2_grpc as pbg
from pyk8s.csi import pluginregistration_pb2 as reg
from pyk8s.csi import pluginregistration_pb2_grpc as regg
from pyk8s.csihostpath.driver import TOPOLOGY_KEY, DriverConfig, HostPathDriver

MiB = 1 << 20
CAP = volume_capability(["ReadWriteOnce"])


class Stubs:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.identity = pbg.IdentityStub(channel)
        self.controller = pbg.ControllerStub(channel)
        self.node = pbg.NodeStub(channel)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short directory: a unix socket's path has at most 107 characters."""
    path = Path(tempfile.mkdtemp(prefix="csi-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def driver(short_tmp: Path) -> AsyncIterator[tuple[HostPathDriver, Stubs, Path]]:
    tmp_path = short_tmp
    d = HostPathDriver(DriverConfig("hostpath.csi.k8s.io", "node-a", tmp_path / "data", 7))
    sock = tmp_path / "csi.sock"
    server = await d.serve(sock)
    try:
        async with grpc.aio.insecure_channel(f"unix://{sock}") as channel:
            yield d, Stubs(channel), tmp_path
    finally:
        await server.stop(None)


async def _create(s: Stubs, name: str, size: int = 64 * MiB) -> pb.Volume:
    resp = await s.controller.CreateVolume(
        pb.CreateVolumeRequest(
            name=name,
            capacity_range=pb.CapacityRange(required_bytes=size),
            volume_capabilities=[CAP],
        )
    )
    return resp.volume


async def test_identity_and_capabilities(driver: tuple[HostPathDriver, Stubs, Path]) -> None:
    _, s, _ = driver
    info = await s.identity.GetPluginInfo(pb.GetPluginInfoRequest())
    assert info.name == "hostpath.csi.k8s.io"
    caps = (await s.identity.GetPluginCapabilities(pb.GetPluginCapabilitiesRequest())).capabilities
    services = {c.service.type for c in caps if c.HasField("service")}
    assert pb.PluginCapability.Service.CONTROLLER_SERVICE in services
    assert any(c.volume_expansion.type == pb.PluginCapability.VolumeExpansion.ONLINE for c in caps)
    assert (await s.identity.Probe(pb.ProbeRequest())).ready.value is True
    ctrl = await s.controller.ControllerGetCapabilities(pb.ControllerGetCapabilitiesRequest())
    rpc = pb.ControllerServiceCapability.RPC
    assert {c.rpc.type for c in ctrl.capabilities} == {
        rpc.CREATE_DELETE_VOLUME,
        rpc.PUBLISH_UNPUBLISH_VOLUME,
        rpc.EXPAND_VOLUME,
    }
    node = await s.node.NodeGetCapabilities(pb.NodeGetCapabilitiesRequest())
    nrpc = pb.NodeServiceCapability.RPC
    assert {c.rpc.type for c in node.capabilities} == {
        nrpc.STAGE_UNSTAGE_VOLUME,
        nrpc.GET_VOLUME_STATS,
        nrpc.EXPAND_VOLUME,
    }
    got = await s.node.NodeGetInfo(pb.NodeGetInfoRequest())
    assert (got.node_id, got.max_volumes_per_node) == ("node-a", 7)
    assert dict(got.accessible_topology.segments) == {TOPOLOGY_KEY: "node-a"}


async def test_create_is_idempotent_and_checks_its_input(
    driver: tuple[HostPathDriver, Stubs, Path],
) -> None:
    d, s, _ = driver
    vol = await _create(s, "pvc-1")
    assert vol.capacity_bytes == 64 * MiB and d.path(vol.volume_id).is_dir()
    assert dict(vol.accessible_topology[0].segments) == {TOPOLOGY_KEY: "node-a"}
    assert (await _create(s, "pvc-1")).volume_id == vol.volume_id
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _create(s, "pvc-1", 128 * MiB)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _create(s, "")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    elsewhere = pb.TopologyRequirement(requisite=[pb.Topology(segments={TOPOLOGY_KEY: "node-b"})])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await s.controller.CreateVolume(
            pb.CreateVolumeRequest(
                name="pvc-2", volume_capabilities=[CAP], accessibility_requirements=elsewhere
            )
        )
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # a restarted driver knows its volumes (state.json)
    again = HostPathDriver(d.config)
    assert again.volume(vol.volume_id)["name"] == "pvc-1"


async def test_publish_delete_and_expand_in_the_controller(
    driver: tuple[HostPathDriver, Stubs, Path],
) -> None:
    d, s, _ = driver
    vol = await _create(s, "pvc-1")
    publish = pb.ControllerPublishVolumeRequest(
        volume_id=vol.volume_id, node_id="node-a", volume_capability=CAP
    )
    assert (await s.controller.ControllerPublishVolume(publish)).publish_context
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await s.controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=vol.volume_id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    grown = await s.controller.ControllerExpandVolume(
        pb.ControllerExpandVolumeRequest(
            volume_id=vol.volume_id, capacity_range=pb.CapacityRange(required_bytes=128 * MiB)
        )
    )
    assert (grown.capacity_bytes, grown.node_expansion_required) == (128 * MiB, True)
    await s.controller.ControllerUnpublishVolume(
        pb.ControllerUnpublishVolumeRequest(volume_id=vol.volume_id, node_id="node-a")
    )
    await s.controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=vol.volume_id))
    assert not d.path(vol.volume_id).exists()
    # deleting what is gone succeeds, as the spec says; publishing it is NOT_FOUND
    await s.controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=vol.volume_id))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await s.controller.ControllerPublishVolume(publish)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root")
async def test_stage_publish_stats_expand_unpublish_unstage(
    driver: tuple[HostPathDriver, Stubs, Path], caplog: pytest.LogCaptureFixture
) -> None:
    d, s, tmp = driver
    caplog.set_level(logging.INFO, logger="pyk8s.csihostpath.driver")
    vol = await _create(s, "pvc-1")
    vid = vol.volume_id
    staging, target, ro = tmp / "staging", tmp / "pod" / "mount", tmp / "pod2" / "mount"
    with pytest.raises(grpc.aio.AioRpcError) as err:  # publish before stage is refused
        await s.node.NodePublishVolume(
            pb.NodePublishVolumeRequest(
                volume_id=vid,
                staging_target_path=str(staging),
                target_path=str(target),
                volume_capability=CAP,
            )
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await s.node.NodeStageVolume(
        pb.NodeStageVolumeRequest(
            volume_id=vid, staging_target_path=str(staging), volume_capability=CAP
        )
    )
    try:
        for path, readonly in ((target, False), (ro, True)):
            await s.node.NodePublishVolume(
                pb.NodePublishVolumeRequest(
                    volume_id=vid,
                    staging_target_path=str(staging),
                    target_path=str(path),
                    volume_capability=CAP,
                    readonly=readonly,
                )
            )
        (target / "f").write_bytes(b"x" * 100_000)
        assert (d.path(vid) / "f").stat().st_size == 100_000  # the data lives in the volume
        with pytest.raises(OSError):
            (ro / "g").write_text("no")
        stats = await s.node.NodeGetVolumeStats(
            pb.NodeGetVolumeStatsRequest(volume_id=vid, volume_path=str(target))
        )
        by_unit = {u.unit: u for u in stats.usage}
        assert by_unit[pb.VolumeUsage.BYTES].total == 64 * MiB
        assert by_unit[pb.VolumeUsage.BYTES].used >= 100_000
        expanded = await s.node.NodeExpandVolume(
            pb.NodeExpandVolumeRequest(
                volume_id=vid,
                volume_path=str(target),
                capacity_range=pb.CapacityRange(required_bytes=96 * MiB),
            )
        )
        assert expanded.capacity_bytes == 96 * MiB
    finally:
        for path in (target, ro):
            await s.node.NodeUnpublishVolume(
                pb.NodeUnpublishVolumeRequest(volume_id=vid, target_path=str(path))
            )
        await s.node.NodeUnstageVolume(
            pb.NodeUnstageVolumeRequest(volume_id=vid, staging_target_path=str(staging))
        )
    assert not target.exists() and not staging.exists()
    assert (d.path(vid) / "f").exists()  # unpublishing keeps the data
    methods = [r.__dict__.get("method") for r in caplog.records]
    for m in ("CreateVolume", "NodeStageVolume", "NodePublishVolume", "NodeGetVolumeStats",
              "NodeUnpublishVolume", "NodeUnstageVolume"):  # fmt: skip
        assert m in methods
    failed = [r for r in caplog.records if r.__dict__.get("code") == "FAILED_PRECONDITION"]
    assert failed and failed[0].__dict__["method"] == "NodePublishVolume"


async def test_registrar_points_the_kubelet_at_the_csi_socket(short_tmp: Path) -> None:
    tmp_path = short_tmp
    d = HostPathDriver(DriverConfig("hostpath.csi.k8s.io", "node-a", tmp_path / "data"))
    sock = tmp_path / "plugins_registry" / "hostpath.csi.k8s.io-reg.sock"
    server = await d.serve_registrar(sock, tmp_path / "csi.sock")
    try:
        async with grpc.aio.insecure_channel(f"unix://{sock}") as channel:
            stub = regg.RegistrationStub(channel)
            info = await stub.GetInfo(reg.InfoRequest())
            assert (info.type, info.name, info.endpoint) == (
                CSI_PLUGIN_TYPE,
                "hostpath.csi.k8s.io",
                str(tmp_path / "csi.sock"),
            )
            assert list(info.supported_versions) == ["1.0.0"]
            await stub.NotifyRegistrationStatus(reg.RegistrationStatus(plugin_registered=True))
    finally:
        await server.stop(None)
