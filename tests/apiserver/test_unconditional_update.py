"""An update without a resourceVersion is unconditional: a write landing between its read
and its compare-and-swap is retried over the new state (upstream's GuaranteedUpdate),
while an update naming a resourceVersion still gets 409."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from pyk8s.apiserver.rest import ResourceStore
from pyk8s.apiserver.server import APIServer, Config
from pyk8s.storage.sqlite import SqliteStore

URL = "/api/v1/namespaces/default/configmaps"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
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


def configmap(value: str, rv: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "cm"}
    if rv:
        meta["resourceVersion"] = rv
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": value}}


@pytest.fixture
def interfere(monkeypatch: pytest.MonkeyPatch, client: TestClient[Any, Any]) -> list[int]:
    """Before the next write of the configmap, another client writes it once."""
    statuses: list[int] = []
    original = ResourceStore.write_update
    started = False

    async def write_update(self: ResourceStore, new: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal started
        if not started and new["metadata"]["name"] == "cm":
            started = True  # the other write goes through this same path
            other = await client.put(f"{URL}/cm", json=configmap("other"))
            statuses.append(other.status)
        return await original(self, new, *args, **kwargs)

    monkeypatch.setattr(ResourceStore, "write_update", write_update)
    return statuses


async def test_an_unconditional_update_is_retried_over_a_concurrent_write(
    client: TestClient[Any, Any], interfere: list[int]
) -> None:
    assert (await client.post(URL, json=configmap("first"))).status == 201
    resp = await client.put(f"{URL}/cm", json=configmap("mine"))
    assert interfere == [200]  # the other write landed in between
    assert resp.status == 200, await resp.text()
    assert (await (await client.get(f"{URL}/cm")).json())["data"] == {"k": "mine"}


async def test_an_update_naming_a_resource_version_conflicts(
    client: TestClient[Any, Any], interfere: list[int]
) -> None:
    created = await (await client.post(URL, json=configmap("first"))).json()
    rv = created["metadata"]["resourceVersion"]
    resp = await client.put(f"{URL}/cm", json=configmap("mine", rv))
    assert interfere == [200]
    assert resp.status == 409
    assert (await resp.json())["reason"] == "Conflict"
    assert (await (await client.get(f"{URL}/cm")).json())["data"] == {"k": "other"}
