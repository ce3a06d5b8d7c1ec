"""The kubelet's plugin watcher against a real API server and a real driver: a registrar
socket in ``plugins_registry/`` registers the driver (Node annotation and topology label,
CSINode entry, NotifyRegistrationStatus) and its removal deregisters it; a registrar of
an unsupported version is told why. No containers."""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import Client
from pyk8s.csi import ANN_NODE_ID
from pyk8s.csi import pluginregistration_pb2_grpc as regg
from pyk8s.csihostpath.driver import TOPOLOGY_KEY, DriverConfig, HostPathDriver, Registrar
from pyk8s.kubelet.csi import GrpcCSIDriver, PluginWatcher
from pyk8s.kubelet.volumes import CSIPlugin

NODES: Resource = REGISTRY.get("", "v1", "nodes")  # type: ignore[assignment]
CSINODES: Resource = REGISTRY.get("storage.k8s.io", "v1", "csinodes")  # type: ignore[assignment]
DRIVER = "hostpath.csi.k8s.io"


@pytest.fixture
def root() -> Iterator[Path]:
    """A short directory: a unix socket's path has at most 107 characters."""
    path = Path(tempfile.mkdtemp(prefix="csi-reg-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def test_registration_and_deregistration(client: Client, root: Path) -> None:
    node = f"csi-reg-{uuid.uuid4().hex[:6]}"
    await client.create(NODES, {"apiVersion": "v1", "kind": "Node",
                                "metadata": {"name": node, "labels": {"keep": "me"}}})  # fmt: skip
    driver = HostPathDriver(DriverConfig(DRIVER, node, root / "data", max_volumes_per_node=3))
    csi_server = await driver.serve(root / "csi.sock")
    reg_sock = root / "plugins_registry" / f"{DRIVER}-reg.sock"
    reg_server = await driver.serve_registrar(reg_sock, root / "csi.sock")
    plugin = CSIPlugin()
    watcher = PluginWatcher(client, node, root, plugin)
    try:
        await watcher.sync()
        got = plugin.drivers[DRIVER]
        assert isinstance(got, GrpcCSIDriver) and got.stage_unstage and got.has_stats
        obj = await client.get(NODES, node)
        assert json.loads(obj["metadata"]["annotations"][ANN_NODE_ID]) == {DRIVER: node}
        assert obj["metadata"]["labels"] == {"keep": "me", TOPOLOGY_KEY: node}
        csinode = await client.get(CSINODES, node)
        assert csinode["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
        assert csinode["spec"]["drivers"] == [{
            "name": DRIVER, "nodeID": node, "topologyKeys": [TOPOLOGY_KEY],
            "allocatable": {"count": 3},
        }]  # fmt: skip

        await reg_server.stop(None)
        reg_sock.unlink(missing_ok=True)  # (gRPC removes it on stop)
        await watcher.sync()
        assert DRIVER not in plugin.drivers
        obj = await client.get(NODES, node)
        assert ANN_NODE_ID not in (obj["metadata"].get("annotations") or {})
        assert obj["metadata"]["labels"][TOPOLOGY_KEY] == node  # kept, as upstream
        assert not (await client.get(CSINODES, node))["spec"].get("drivers")
    finally:
        await reg_server.stop(None)
        await csi_server.stop(None)
        await client.delete(NODES, node)


class _OldRegistrar(Registrar):
    async def GetInfo(self, request: Any, context: Any) -> Any:
        info = await super().GetInfo(request, context)
        del info.supported_versions[:]
        info.supported_versions.append("0.3.0")
        return info


async def test_a_registrar_of_an_unsupported_version_is_told_why(
    client: Client, root: Path
) -> None:
    server = grpc.aio.server()
    old = _OldRegistrar(DRIVER, root / "csi.sock")
    regg.add_RegistrationServicer_to_server(old, server)  # type: ignore[no-untyped-call]
    (root / "plugins_registry").mkdir()
    server.add_insecure_port(f"unix://{root / 'plugins_registry' / 'old.sock'}")
    await server.start()
    plugin = CSIPlugin()
    try:
        await PluginWatcher(client, "nowhere", root, plugin).sync()
        assert plugin.drivers == {} and not old.registered.is_set()
        assert "none of the versions ['0.3.0'] of CSI driver" in old.error
    finally:
        await server.stop(None)
