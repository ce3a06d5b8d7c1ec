"""A pod's status write moves only the status and validates only what it may change, as
upstream's pod status strategy (``ValidatePodStatusUpdate``): the stored spec is not
validated again, so a pod stored before a validation rule existed (here written straight
to the store) still gets its status written, and the spec in the body is ignored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from pyk8s.apiserver.server import APIServer, Config
from pyk8s.storage.sqlite import SqliteStore

POD = "/api/v1/namespaces/default/pods/p"


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], SqliteStore]]:
    store = await SqliteStore.open(tmp_path / "state.db")
    server = APIServer(store, config=Config(compact_interval=0))
    await server.start()
    client: TestClient[Any, Any] = TestClient(TestServer(server.app))
    await client.start_server()
    try:
        yield client, store
    finally:
        await client.close()
        await server.stop()
        await store.close()


def pod(container: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "uid": "u-1"},
        "spec": {"nodeName": "n1", "containers": [{"name": container, "image": "busybox"}]},
        "status": {"phase": "Pending"},
    }


async def test_status_write_does_not_validate_the_stored_spec(
    setup: tuple[TestClient[Any, Any], SqliteStore],
) -> None:
    client, store = setup
    # an invalid container name (not a DNS label), as if stored before the rule existed
    await store.create("/registry/core/pods/default/p", json.dumps(pod("Not_A_Label")).encode())
    current = await (await client.get(POD)).json()
    body = {**current, "spec": {**current["spec"], "nodeName": "elsewhere"}}
    body["status"] = {"phase": "Running", "podIP": "10.0.0.5"}
    r = await client.put(POD + "/status", json=body)
    assert r.status == 200, await r.text()
    stored = await (await client.get(POD)).json()
    assert stored["status"]["phase"] == "Running"
    assert stored["status"]["podIP"] == "10.0.0.5"
    assert stored["spec"]["nodeName"] == "n1"  # the body's spec is not written

    # a write of the main resource still validates the whole pod
    r = await client.put(POD, json=stored)
    assert r.status == 422
    assert "spec.containers[0].name" in (await r.json())["message"]


async def test_status_write_keeps_conflict_detection(
    setup: tuple[TestClient[Any, Any], SqliteStore],
) -> None:
    client, _ = setup
    created = await client.post("/api/v1/namespaces/default/pods", json=pod("c"))
    assert created.status == 201, await created.text()
    current = await created.json()
    current["status"] = {"phase": "Running"}
    assert (await client.put(POD + "/status", json=current)).status == 200
    # the same resourceVersion again is stale now
    assert (await client.put(POD + "/status", json=current)).status == 409
