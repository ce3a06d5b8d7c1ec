"""Auto-deployed manifests (k3s's DATA_DIR/server/manifests): a file applied with
server-side apply and tracked by its Addon, changed (objects updated, dropped ones
deleted), broken (an event on the Addon, the previous objects still there), skipped,
and removed (its objects and Addon deleted)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from pyk8s.client import ApiError, Client
from pyk8s.controllers.deploy import FIELD_MANAGER, ManifestDeployer, addon_name, parse_manifest

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
