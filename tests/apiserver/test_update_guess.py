"""A read-modify-write starts from the watch cache's copy of the object, as upstream's
GuaranteedUpdate does, and a stale copy never wins: here the cache is held behind the store
(its copy of one configmap is an older version), and every update, patch, status update,
binding and delete is still answered over the stored object, or with 409 exactly when the
client named the old resourceVersion."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from pyk8s.apiserver.admission import UPDATE, Attributes, Chain
from pyk8s.apiserver.handlers import ResourceHandlers
from pyk8s.apiserver.server import APIServer, Config
from pyk8s.storage.sqlite import SqliteStore

URL = "/api/v1/namespaces/default/configmaps"
PODS = "/api/v1/namespaces/default/pods"
MERGE = {"Content-Type": "application/merge-patch+json"}
MODIFIED = (
    'Operation cannot be fulfilled on configmaps "cm": the object has been modified; '
    "please apply your changes to the latest version and try again"
)


@pytest.fixture
def held() -> dict[str, tuple[bytes, int]]:
    """Keys (by their last two segments: namespace/name) whose watch-cache copy is held
    at the value put here, whatever the store has since."""
    return {}


@pytest.fixture
async def client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held: dict[str, tuple[bytes, int]]
) -> AsyncIterator[TestClient[Any, Any]]:
    original = ResourceHandlers._cached

    def cached(self: ResourceHandlers, key: str) -> tuple[bytes, int] | None:
        stale = held.get("/".join(key.rsplit("/", 2)[-2:]))
        return stale if stale is not None else original(self, key)

    monkeypatch.setattr(ResourceHandlers, "_cached", cached)
    store = await SqliteStore.open(tmp_path / "state.db")
    server = APIServer(store, config=Config(compact_interval=0))
    await server.start()
    client: TestClient[Any, Any] = TestClient(TestServer(server.app))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
        await server.stop()
        await store.close()


def configmap(data: dict[str, str], rv: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "cm"}
    if rv:
        meta["resourceVersion"] = rv
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


async def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def stale_configmap(
    client: TestClient[Any, Any], held: dict[str, tuple[bytes, int]]
) -> tuple[str, str]:
    """cm created with data k=first, then updated to k=second; the cache's copy is held at
    the first version. Returns the two resourceVersions (old, new)."""
    first = await ok(await client.post(URL, json=configmap({"k": "first"})), 201)
    old = first["metadata"]["resourceVersion"]
    held["default/cm"] = (orjson.dumps(first), int(old))
    second = await ok(await client.put(f"{URL}/cm", json=configmap({"k": "second"}, old)))
    new = second["metadata"]["resourceVersion"]
    assert int(new) > int(old)
    return old, new


async def stored(client: TestClient[Any, Any]) -> Any:
    return await ok(await client.get(f"{URL}/cm"))


async def test_a_patch_over_a_stale_copy_patches_the_stored_object(
    client: TestClient[Any, Any], held: dict[str, tuple[bytes, int]]
) -> None:
    _, new = await stale_configmap(client, held)
    out = await ok(await client.patch(f"{URL}/cm", data=b'{"data":{"mine":"yes"}}', headers=MERGE))
    assert out["data"] == {"k": "second", "mine": "yes"}
    assert int(out["metadata"]["resourceVersion"]) > int(new)
    assert (await stored(client))["data"] == {"k": "second", "mine": "yes"}


async def test_a_patch_that_changes_nothing_on_the_stale_copy_is_written_over_the_store(
    client: TestClient[Any, Any], held: dict[str, tuple[bytes, int]]
) -> None:
    _, new = await stale_configmap(client, held)
    # k=first is what the stale copy holds already: over it, this would write nothing
    out = await ok(await client.patch(f"{URL}/cm", data=b'{"data":{"k":"first"}}', headers=MERGE))
    assert out["data"] == {"k": "first"}
    assert int(out["metadata"]["resourceVersion"]) > int(new)
    assert (await stored(client))["data"] == {"k": "first"}


async def test_an_update_naming_the_stored_version_succeeds_over_a_stale_copy(
    client: TestClient[Any, Any], held: dict[str, tuple[bytes, int]]
) -> None:
    _, new = await stale_configmap(client, held)
    out = await ok(await client.put(f"{URL}/cm", json=configmap({"k": "third"}, new)))
    assert out["data"] == {"k": "third"}
    assert (await stored(client))["data"] == {"k": "third"}


async def test_an_update_naming_the_old_version_conflicts_even_when_the_copy_has_it(
    client: TestClient[Any, Any], held: dict[str, tuple[bytes, int]]
) -> None:
    old, new = await stale_configmap(client, held)
    resp = await client.put(f"{URL}/cm", json=configmap({"k": "third"}, old))
    status = await ok(resp, 409)
    assert (status["reason"], status["message"]) == ("Conflict", MODIFIED)
    patch = orjson.dumps({"metadata": {"resourceVersion": old}, "data": {"k": "third"}})
    status = await ok(await client.patch(f"{URL}/cm", data=patch, headers=MERGE), 409)
    assert (status["reason"], status["message"]) == ("Conflict", MODIFIED)
    assert (await stored(client))["metadata"]["resourceVersion"] == new


async def test_an_apply_over_a_stale_copy_merges_into_the_stored_object(
    client: TestClient[Any, Any], held: dict[str, tuple[bytes, int]]
) -> None:
    await stale_configmap(client, held)
    body = orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}})
    resp = await client.patch(
        f"{URL}/cm?fieldManager=tester",
        data=body,
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    assert (await ok(resp))["data"] == {"k": "second"}


async def test_a_dry_run_reads_the_store(
    client: TestClient[Any, Any], held: dict[str, tuple[bytes, int]]
) -> None:
    _, new = await stale_configmap(client, held)
    out = await ok(
        await client.patch(f"{URL}/cm?dryRun=All", data=b'{"data":{"k":"first"}}', headers=MERGE)
    )
    # over the stored object the patch changes k, so it is not answered as a no-op
    assert out["data"] == {"k": "first"}
    assert (await stored(client))["data"] == {"k": "second"}
    assert (await stored(client))["metadata"]["resourceVersion"] == new


async def test_a_delete_with_the_stored_version_as_precondition_deletes(
    client: TestClient[Any, Any], held: dict[str, tuple[bytes, int]]
) -> None:
    old, new = await stale_configmap(client, held)
    pre = {"kind": "DeleteOptions", "apiVersion": "v1"}
    resp = await client.delete(f"{URL}/cm", json={**pre, "preconditions": {"resourceVersion": old}})
    status = await ok(resp, 409)
    assert status["message"] == (
        'Operation cannot be fulfilled on configmaps "cm": Precondition failed: '
        f"ResourceVersion in precondition: {old}, ResourceVersion in object meta: {new}"
    )
    resp = await client.delete(f"{URL}/cm", json={**pre, "preconditions": {"resourceVersion": new}})
    await ok(resp)
    assert (await client.get(f"{URL}/cm")).status == 404


async def test_a_binding_over_a_stale_copy_of_a_recreated_pod_binds_the_new_pod(
    client: TestClient[Any, Any], held: dict[str, tuple[bytes, int]]
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    first = await ok(await client.post(PODS, json=pod), 201)
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}}
    await ok(
        await client.post(f"{PODS}/p/binding", json={**binding, "target": {"name": "n1"}}), 201
    )
    bound = await ok(await client.get(f"{PODS}/p"))
    assert bound["spec"]["nodeName"] == "n1"
    held["default/p"] = (orjson.dumps(bound), int(bound["metadata"]["resourceVersion"]))
    await ok(await client.delete(f"{PODS}/p?gracePeriodSeconds=0"))
    second = await ok(await client.post(PODS, json=pod), 201)
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    # the held copy says "already assigned to n1"; the stored pod is not assigned
    resp = await client.post(f"{PODS}/p/binding", json={**binding, "target": {"name": "n2"}})
    await ok(resp, 201)
    assert (await ok(await client.get(f"{PODS}/p")))["spec"]["nodeName"] == "n2"


async def test_a_status_update_over_a_stale_copy_keeps_the_stored_spec(
    client: TestClient[Any, Any], held: dict[str, tuple[bytes, int]]
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"v": "1"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    created = await ok(await client.post(PODS, json=pod), 201)
    held["default/p"] = (orjson.dumps(created), int(created["metadata"]["resourceVersion"]))
    await ok(
        await client.patch(f"{PODS}/p", data=b'{"metadata":{"labels":{"v":"2"}}}', headers=MERGE)
    )
    status = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    out = await ok(await client.patch(f"{PODS}/p/status", json=status, headers=MERGE))
    assert out["metadata"]["labels"] == {"v": "2"}
    assert [c["type"] for c in out["status"]["conditions"]] == ["Ready"]


async def test_a_fresh_cache_copy_spares_the_store_read(
    client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    await ok(await client.post(URL, json=configmap({"k": "first"})), 201)
    await ok(await client.get(URL))  # a consistent list: the cache has caught up
    gets: list[str] = []
    original = SqliteStore.get

    async def get(self: SqliteStore, key: str, revision: int = 0) -> Any:
        gets.append(key)
        return await original(self, key, revision)

    monkeypatch.setattr(SqliteStore, "get", get)
    out = await ok(await client.patch(f"{URL}/cm", data=b'{"data":{"k":"x"}}', headers=MERGE))
    assert out["data"] == {"k": "x"}
    assert not [k for k in gets if k.endswith("/default/cm")]


async def test_admission_warnings_of_a_try_over_a_stale_copy_are_not_repeated(
    client: TestClient[Any, Any],
    held: dict[str, tuple[bytes, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await stale_configmap(client, held)
    original = Chain.validate

    async def validate(self: Chain, attrs: Attributes) -> None:
        if attrs.operation == UPDATE:
            attrs.warnings.append("looked at it")
        await original(self, attrs)

    monkeypatch.setattr(Chain, "validate", validate)
    # the try over the held copy passes admission, then loses its compare-and-swap
    resp = await client.put(f"{URL}/cm", json=configmap({"k": "third"}))
    assert (await ok(resp))["data"] == {"k": "third"}
    assert resp.headers.getall("Warning") == ['299 - "looked at it"']
