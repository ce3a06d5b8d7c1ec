"""The server's managed-etcd node controllers (:mod:`pyk8s.server.etcd_members`) against
a real API server, with etcd's MemberRemove replaced by a recorder: the server's own
Node gets k3s's annotations, labels and finalizer; deleting an annotated Node removes
that member (retried while etcd refuses) and then lets the Node go; a Node with the
finalizer but no member annotations just goes; a deleted server Node's server leaves
every Addon's list (an Addon it alone held goes with its objects), so the survivors'
removal of a manifest deletes its objects. The 3-server HA test
(tests/ha/test_embedded_etcd_ha.py) runs the same with real etcd members.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pyk8s.client import ApiError, Client
from pyk8s.controllers._resources import NODES
from pyk8s.controllers.deploy import ADDON_CRD, SERVERS_ANNOTATION, ManifestDeployer
from pyk8s.server import etcd_members
from pyk8s.server.embedded_etcd import EtcdError
from pyk8s.storage.endpoint import EtcdTLS
from tests.controllers.conftest import eventually, serve_crds
from tests.controllers.test_deploy import ADDONS, _colour, _manifest
from tests.integration.conftest import Server


class Recorder:
    """Stands in for ``member_remove``: records (name, address); refuses ``refusals``
    times first, as etcd without quorum does."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.refusals = 0

    async def __call__(self, target: str, tls: EtcdTLS, name: str, address: str) -> bool:
        self.calls.append((name, address))
        if self.refusals:
            self.refusals -= 1
            raise EtcdError(f"cannot remove etcd member {name}: etcdserver: unhealthy cluster")
        return True


@pytest.fixture
async def controller(
    cm_server: Server, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, Recorder]]:
    """The controller of a server whose node is ``<returned name>``, member ``me-1`` on
    10.0.0.1."""
    recorder = Recorder()
    monkeypatch.setattr(etcd_members, "member_remove", recorder)
    monkeypatch.setattr(etcd_members, "RETRY", 0.2)
    me = f"etcd-{uuid.uuid4().hex[:8]}"
    stop = asyncio.Event()
    tls = EtcdTLS("unused")
    task = asyncio.create_task(
        etcd_members.run(cm_server.kubeconfig, me, "me-1", "10.0.0.1", ("unused:1", tls), stop)
    )
    try:
        yield me, recorder
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def _node(name: str, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, **meta}}


async def _gone(client: Client, name: str) -> bool:
    try:
        await client.get(NODES, name)
    except ApiError as err:
        return err.status == 404
    return False


async def test_own_node_annotated_and_deleted_nodes_members_removed(
    client: Client, controller: tuple[str, Recorder]
) -> None:
    me, recorder = controller
    await client.create(NODES, _node(me))

    async def annotated() -> dict[str, Any] | None:
        meta = (await client.get(NODES, me))["metadata"]
        if etcd_members.FINALIZER in (meta.get("finalizers") or []):
            return dict(meta)
        return None

    meta = await eventually(annotated)
    assert meta["annotations"][etcd_members.NODE_NAME_ANNOTATION] == "me-1"
    assert meta["annotations"][etcd_members.NODE_ADDRESS_ANNOTATION] == "10.0.0.1"
    for role in ("etcd", "control-plane", "master"):
        assert meta["labels"][f"node-role.kubernetes.io/{role}"] == "true"

    # another server's Node, as its own controller annotated it; etcd refuses twice
    peer = f"{me}-peer"
    annotations = {
        etcd_members.NODE_NAME_ANNOTATION: "peer-1",
        etcd_members.NODE_ADDRESS_ANNOTATION: "10.0.0.2",
    }
    await client.create(
        NODES, _node(peer, annotations=annotations, finalizers=[etcd_members.FINALIZER])
    )
    recorder.refusals = 2
    await client.delete(NODES, peer)
    await eventually(lambda: _gone(client, peer))
    assert recorder.calls == [("peer-1", "10.0.0.2")] * 3

    # the finalizer without member annotations: nothing to remove, the Node just goes
    bare = f"{me}-bare"
    await client.create(NODES, _node(bare, finalizers=[etcd_members.FINALIZER]))
    await client.delete(NODES, bare)
    await eventually(lambda: _gone(client, bare))
    assert len(recorder.calls) == 3

    # and this server's own Node (k3s allows removing its own member)
    await client.delete(NODES, me)
    await eventually(lambda: _gone(client, me))
    assert recorder.calls[-1] == ("me-1", "10.0.0.1")


async def test_a_deleted_server_node_leaves_the_addons(
    client: Client, controller: tuple[str, Recorder], tmp_path: Path
) -> None:
    """Server ``peer`` dies for good: deleting its Node drops it from every Addon's
    servers. A file both servers held is then removed from the survivor and its objects
    go (before, the dead server kept them listed for ever); a file only ``peer`` held
    goes with its objects at once."""
    me, recorder = controller
    peer = f"{me}-peer"
    await serve_crds(client, [ADDON_CRD])
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.mkdir()
    theirs.mkdir()
    shared, only = f"shared-{uuid.uuid4().hex[:6]}", f"only-{uuid.uuid4().hex[:6]}"
    for directory in (mine, theirs):
        (directory / f"{shared}.yaml").write_text(_manifest(shared, {"a": "blue"}))
    (theirs / f"{only}.yaml").write_text(_manifest(only, {"b": "red"}))
    a = ManifestDeployer(client, mine, node=me)
    b = ManifestDeployer(client, theirs, node=peer)
    await a.sync()
    await b.sync()

    async def servers(addon: str) -> str:
        got = await client.get(ADDONS, addon, "kube-system")
        return str(got["metadata"]["annotations"][SERVERS_ANNOTATION])

    both = sorted([f"{me}:{mine.resolve()}", f"{peer}:{theirs.resolve()}"])
    assert await servers(shared) == ",".join(both)
    assert await servers(only) == f"{peer}:{theirs.resolve()}"

    annotations = {
        etcd_members.NODE_NAME_ANNOTATION: "peer-1",
        etcd_members.NODE_ADDRESS_ANNOTATION: "10.0.0.2",
    }
    await client.create(
        NODES, _node(peer, annotations=annotations, finalizers=[etcd_members.FINALIZER])
    )
    await client.delete(NODES, peer)
    await eventually(lambda: _gone(client, peer))
    assert recorder.calls == [("peer-1", "10.0.0.2")]
    assert await servers(shared) == f"{me}:{mine.resolve()}"
    assert await _colour(client, only, "b") is None
    with pytest.raises(ApiError) as err:
        await client.get(ADDONS, only, "kube-system")
    assert err.value.status == 404

    (mine / f"{shared}.yaml").unlink()  # the survivor's file goes: so do the objects
    assert await _colour(client, shared, "a") == "blue"
    await a.sync()
    assert await _colour(client, shared, "a") is None
    for deployer in (a, b):
        await deployer.recorder.close()
