"""Auto-deployed manifests (k3s's DATA_DIR/server/manifests): a file applied with
server-side apply and tracked by its Addon, changed (objects updated, dropped ones
deleted), broken (an event on the Addon, the previous objects still there), skipped,
and removed (its objects and Addon deleted); and two servers (HA) sharing the Addons of
their own directories."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from pyk8s.client import ApiError, Client
from pyk8s.controllers.deploy import (
    ADDON_CRD,
    FIELD_MANAGER,
    SERVERS_ANNOTATION,
    ManifestDeployer,
    addon_name,
    parse_manifest,
)
from tests.controllers.conftest import serve_crds

ADDONS = ("k3s.cattle.io/v1", "Addon")
CONFIGMAPS = ("v1", "ConfigMap")


def _manifest(ns: str, colours: dict[str, str]) -> str:
    docs = [f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"]
    for name, colour in colours.items():
        docs.append(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\n"
            f"data:\n  colour: {colour}\n"
        )
    return "---\n".join(docs)


async def _events(client: Client, addon: str) -> list[tuple[str, str]]:
    items = (
        await client.list(
            ("v1", "Event"), "kube-system", field_selector=f"involvedObject.name={addon}"
        )
    )["items"]
    return [(e["reason"], e["message"]) for e in items]


async def _colour(client: Client, ns: str, name: str) -> str | None:
    try:
        cm: dict[str, Any] = await client.get(CONFIGMAPS, name, ns)
    except ApiError as err:
        if err.status == 404:
            return None
        raise
    return str(cm["data"]["colour"])


async def test_manifest_applied_changed_broken_skipped_removed(
    client: Client, tmp_path: Path
) -> None:
    ns = f"deploy-{uuid.uuid4().hex[:6]}"
    manifests = tmp_path / "manifests"
    (manifests / "apps").mkdir(parents=True)
    path = manifests / "apps" / f"{ns}.yaml"
    addon = f"apps-{ns}"
    await serve_crds(client, [ADDON_CRD])  # as pyk8s server does at start
    deployer = ManifestDeployer(client, manifests)

    path.write_text(_manifest(ns, {"a": "blue", "b": "green"}))
    await deployer.sync()
    assert await _colour(client, ns, "a") == "blue" and await _colour(client, ns, "b") == "green"
    cm = await client.get(CONFIGMAPS, "a", ns)
    assert [(m["manager"], m["operation"]) for m in cm["metadata"]["managedFields"]] == [
        (FIELD_MANAGER, "Apply")
    ]
    tracked = await client.get(ADDONS, addon, "kube-system")
    assert tracked["spec"]["source"] == str(path.resolve())
    assert {o["name"] for o in tracked["status"]["objects"]} == {ns, "a", "b"}

    path.write_text(_manifest(ns, {"a": "red"}))  # a changed, b dropped
    await deployer.sync()
    assert await _colour(client, ns, "a") == "red" and await _colour(client, ns, "b") is None

    path.write_text(_manifest(ns, {"a": "black"}) + "---\nkind: [unclosed\n")
    await deployer.sync()
    await deployer.recorder.flush()
    events = await _events(client, addon)
    assert ("AppliedManifest", f'Applied manifest at "{path.resolve()}"') in events
    failed = [m for r, m in events if r == "ApplyManifestFailed"]
    assert failed and "failed: " in failed[0]
    assert await _colour(client, ns, "a") == "red"  # the previous version stays

    path.write_text(_manifest(ns, {"a": "white"}))
    path.with_name(path.name + ".skip").write_text("")
    await deployer.sync()
    assert await _colour(client, ns, "a") == "red"  # skipped: not applied, not removed
    path.with_name(path.name + ".skip").unlink()
    await deployer.sync()
    assert await _colour(client, ns, "a") == "white"

    path.unlink()
    await deployer.sync()
    assert await _colour(client, ns, "a") is None
    with pytest.raises(ApiError) as err:
        await client.get(ADDONS, addon, "kube-system")
    assert err.value.status == 404
    await deployer.recorder.close()


async def test_two_servers_share_the_addon_of_one_file(client: Client, tmp_path: Path) -> None:
    """k3s's HA: every server applies its own directory and the Addons are shared. The
    same file on both is applied once; different versions do not flap (each server
    applies again only when its own file changes); the objects go only once the file is
    gone from both."""
    ns = f"deploy-ha-{uuid.uuid4().hex[:6]}"
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    await serve_crds(client, [ADDON_CRD])
    a = ManifestDeployer(client, one, server="server-a")
    b = ManifestDeployer(client, two, server="server-b")

    async def addon() -> dict[str, Any]:
        got: dict[str, Any] = await client.get(ADDONS, ns, "kube-system")
        return got

    (one / f"{ns}.yaml").write_text(_manifest(ns, {"a": "blue"}))
    (two / f"{ns}.yaml").write_text(_manifest(ns, {"a": "blue"}))
    await a.sync()
    applied = await addon()
    await b.sync()  # same checksum: b only joins the Addon's servers
    shared = await addon()
    assert shared["spec"] == applied["spec"]
    assert shared["metadata"]["annotations"][SERVERS_ANNOTATION] == "server-a,server-b"
    await a.recorder.flush()
    events = [r for r, _ in await _events(client, ns)]
    assert events.count("AppliedManifest") == 1

    (two / f"{ns}.yaml").write_text(_manifest(ns, {"a": "red"}))  # changed on b only
    await b.sync()
    for _ in range(2):  # a's file did not change: b's newer version stays
        await a.sync()
        await b.sync()
    assert await _colour(client, ns, "a") == "red"
    (one / f"{ns}.yaml").write_text(_manifest(ns, {"a": "green"}))  # now a's changes
    await a.sync()
    await b.sync()
    assert await _colour(client, ns, "a") == "green"

    (one / f"{ns}.yaml").unlink()  # still on b: the objects stay, a leaves the Addon
    await a.sync()
    await b.sync()
    assert await _colour(client, ns, "a") == "green"
    assert (await addon())["metadata"]["annotations"][SERVERS_ANNOTATION] == "server-b"
    (two / f"{ns}.yaml").unlink()
    await a.sync()  # not a's Addon any more: nothing happens
    assert await _colour(client, ns, "a") == "green"
    await b.sync()
    assert await _colour(client, ns, "a") is None
    with pytest.raises(ApiError) as err:
        await addon()
    assert err.value.status == 404
    for deployer in (a, b):
        await deployer.recorder.close()


def test_parse_and_names() -> None:
    objs = parse_manifest(
        '{"apiVersion": "v1", "kind": "List", "items": ['
        '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},'
        '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}]}'
    )
    assert [o["kind"] for o in objs] == ["Namespace", "ConfigMap"]  # namespaces first
    with pytest.raises(ValueError, match=r"document 2: missing metadata\.name"):
        parse_manifest(
            "apiVersion: v1\nkind: A\nmetadata: {name: x}\n---\napiVersion: v1\nkind: B\n"
        )
    assert addon_name(Path("/m"), Path("/m/sub/My_App.yml")) == "sub-my-app"
