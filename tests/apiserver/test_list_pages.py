"""Paginated lists served from the watch cache answer what the store answers.

A consistent list with a limit (no resourceVersion) and a continue token at a revision
whose resource has not changed since are served from the watch cache, as upstream's
cacher serves them; everything else (an exact resourceVersion, a continue after the
resource changed, a compacted revision) from the store. Each page from the cache is
compared with the store's page at the same revision (``resourceVersionMatch=Exact``),
byte for byte, and which side served it is recorded by counting the store's list calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from pyk8s.apiserver.server import APIServer, Config
from pyk8s.apiserver.watchcache import WatchCache
from pyk8s.storage.sqlite import SqliteStore

URL = "/api/v1/namespaces/default/configmaps"
JSON = dict[str, Any]


class Counting(SqliteStore):
    """The SQLite store, counting the lists asked of it (the cache's own load aside)."""

    lists = 0

    async def list(self, prefix: str, **kwargs: Any) -> Any:
        if prefix.startswith("/registry/core/configmaps/"):
            Counting.lists += 1
        return await super().list(prefix, **kwargs)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], Counting]]:
    store = await Counting.open(tmp_path / "state.db")
    assert isinstance(store, Counting)
    server = APIServer(store, config=Config(compact_interval=0))
    await server.start()
    client: TestClient[Any, Any] = TestClient(TestServer(server.app))
    await client.start_server()
    try:
        for i in range(7):
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"cm-{i}", "labels": {"odd": str(i % 2)}},
            }
            assert (await client.post(URL, json=body)).status == 201
        yield client, store
    finally:
        await client.close()
        await server.stop()
        await store.close()


async def get(client: TestClient[Any, Any], query: str, status: int = 200) -> JSON:
    resp = await client.get(f"{URL}?{query}")
    assert resp.status == status, await resp.text()
    body: JSON = await resp.json()
    return body


async def from_store(client: TestClient[Any, Any], rv: str, query: str) -> JSON:
    """The same page read from the store at ``rv`` (an exact read is never cached)."""
    return await get(client, f"resourceVersionMatch=Exact&resourceVersion={rv}&{query}")


def names(page: JSON) -> list[str]:
    return [o["metadata"]["name"] for o in page["items"]]


async def create(client: TestClient[Any, Any], name: str, url: str = URL) -> None:
    kind = "Secret" if "secrets" in url else "ConfigMap"
    body = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}}
    assert (await client.post(url, json=body)).status == 201


async def test_pages_come_from_the_cache_as_the_store_would_serve_them(
    env: tuple[TestClient[Any, Any], Counting],
) -> None:
    client, _ = env
    Counting.lists = 0
    first = await get(client, "limit=3")
    rv = first["metadata"]["resourceVersion"]
    assert names(first) == ["cm-0", "cm-1", "cm-2"]
    assert first["metadata"]["remainingItemCount"] == 4
    token = first["metadata"]["continue"]
    second = await get(client, f"limit=3&continue={token}")
    third = await get(client, f"limit=3&continue={second['metadata']['continue']}")
    assert Counting.lists == 0  # nothing changed: every page came from the cache
    assert names(second) == ["cm-3", "cm-4", "cm-5"] and names(third) == ["cm-6"]
    assert second["metadata"]["remainingItemCount"] == 1
    assert "continue" not in third["metadata"] and "remainingItemCount" not in third["metadata"]
    assert {p["metadata"]["resourceVersion"] for p in (second, third)} == {rv}
    # the store's answers at the same revision are the same, to the continue token
    assert await from_store(client, rv, "limit=3") == first
    # a write in another namespace leaves this namespace's pages in the cache
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}
    assert (await client.post("/api/v1/namespaces", json=ns)).status == 201
    await create(client, "elsewhere", "/api/v1/namespaces/other/configmaps")
    assert await get(client, f"limit=3&continue={token}") == second
    assert Counting.lists == 1  # the exact read only
    await create(client, "cm-10")  # this namespace moves past rv: a continue reads the store
    assert await get(client, f"limit=3&continue={token}") == second
    assert Counting.lists == 2  # the exact read and this continue


async def test_a_selector_pages_by_matching_objects_without_a_count(
    env: tuple[TestClient[Any, Any], Counting],
) -> None:
    client, _ = env
    Counting.lists = 0
    first = await get(client, "limit=2&labelSelector=odd%3D1")
    assert names(first) == ["cm-1", "cm-3"]
    assert "remainingItemCount" not in first["metadata"]
    second = await get(
        client, f"limit=2&labelSelector=odd%3D1&continue={first['metadata']['continue']}"
    )
    assert names(second) == ["cm-5"] and "continue" not in second["metadata"]
    assert Counting.lists == 0


async def test_a_continue_at_a_compacted_revision_is_expired(
    env: tuple[TestClient[Any, Any], Counting],
) -> None:
    client, store = env
    first = await get(client, "limit=3")
    # another resource's write moves the store on; configmaps are unchanged in the cache,
    # but the revision of the token is compacted away: 410 as the store answers it
    await create(client, "s", "/api/v1/namespaces/default/secrets")
    await store.compact(await store.current_revision())
    expired = await get(client, f"limit=3&continue={first['metadata']['continue']}", 410)
    assert expired["reason"] == "Expired"
    assert expired["message"].startswith("The provided continue parameter is too old")


async def test_resource_version_zero_ignores_the_limit_and_exact_reads_the_store(
    env: tuple[TestClient[Any, Any], Counting],
) -> None:
    client, _ = env
    Counting.lists = 0
    whole = await get(client, "limit=3&resourceVersion=0")
    assert len(whole["items"]) == 7 and "continue" not in whole["metadata"]
    assert Counting.lists == 0
    rv = whole["metadata"]["resourceVersion"]
    newer = await get(client, f"limit=3&resourceVersion={rv}&resourceVersionMatch=NotOlderThan")
    assert names(newer) == ["cm-0", "cm-1", "cm-2"] and Counting.lists == 0
    # a legacy exact read (a limit and a resourceVersion, no match) reads the store at rv
    legacy = await get(client, f"limit=3&resourceVersion={rv}")
    assert legacy["metadata"]["resourceVersion"] == rv and Counting.lists == 1
    assert legacy["items"] == newer["items"]


async def test_a_page_is_the_stores_bytes_and_other_versions_are_converted(
    env: tuple[TestClient[Any, Any], Counting],
) -> None:
    """The cache joins its objects' bytes when every object of the resource is stored at
    the version asked for: the body is the store's, byte for byte. A resource read at
    another version (HPAs stored as autoscaling/v2), a Table and metadata-only lists
    still go object by object."""
    client, _ = env
    page = await client.get(f"{URL}?limit=3")
    body = await page.read()
    rv = orjson.loads(body)["metadata"]["resourceVersion"]
    exact = await client.get(f"{URL}?limit=3&resourceVersionMatch=Exact&resourceVersion={rv}")
    assert body == await exact.read() and body.endswith(b"]}\n")
    table = await client.get(
        f"{URL}?limit=3", headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    )
    rows = (await table.json())["rows"]
    assert [r["cells"][0] for r in rows] == ["cm-0", "cm-1", "cm-2"]
    meta = await client.get(
        f"{URL}?limit=3",
        headers={"Accept": "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"},
    )
    partial = await meta.json()
    assert partial["kind"] == "PartialObjectMetadataList" and len(partial["items"]) == 3
    hpas = "/apis/autoscaling/{}/namespaces/default/horizontalpodautoscalers"
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
            "maxReplicas": 3,
        },
    }
    created = await client.post(hpas.format("v2"), json=hpa)
    assert created.status == 201, await created.text()
    for version in ("v1", "v2"):
        listed = await client.get(hpas.format(version) + "?limit=5")
        assert [o["apiVersion"] for o in (await listed.json())["items"]] == [
            f"autoscaling/{version}"
        ]


async def test_the_cache_counts_each_resources_stored_versions(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "s.db")
    key = "/registry/autoscaling/horizontalpodautoscalers/ns/"

    def hpa(version: str) -> bytes:
        return orjson.dumps({"apiVersion": f"autoscaling/{version}"})

    a = await store.create(key + "a", hpa("v2"))
    cache = WatchCache(store)
    await cache.start()
    try:
        assert cache.single_version(key) == "autoscaling/v2"
        assert cache.single_version("/registry/core/pods/") is None  # no objects
        b = await store.create(key + "b", hpa("v1"))
        await cache.wait_for(b.mod_revision)
        assert cache.single_version(key) is None
        b = await store.update(key + "b", hpa("v2"), expected_revision=b.mod_revision)
        await cache.wait_for(b.mod_revision)
        assert cache.single_version(key) == "autoscaling/v2"
        a = await store.update(key + "a", hpa("v1"), expected_revision=a.mod_revision)
        await cache.wait_for(a.mod_revision)
        assert cache.single_version(key) is None
        await store.delete(key + "a")
        await cache.wait_for(await store.current_revision())
        assert cache.single_version(key) == "autoscaling/v2"
        await store.delete(key + "b")
        await cache.wait_for(await store.current_revision())
        assert cache.single_version(key) is None
    finally:
        await cache.stop()
        await store.close()
