"""Informers against a real server: handlers see changes; a 410 after a restart relists."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pyk8s.client import Client, InformerFactory, SharedInformer, load_kubeconfig
from pyk8s.client.informer import NAMESPACE_INDEX
from tests.client.conftest import CONFIGMAPS, PODS, SECRETS, configmap, start_server


async def until(cond: Any, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


class Seen:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def add(self, obj: dict[str, Any]) -> None:
        self.events.append(("add", obj["metadata"]["name"], (obj.get("data") or {}).get("v", "")))

    def update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.events.append(("update", new["metadata"]["name"], new["data"].get("v", "")))

    def delete(self, obj: dict[str, Any]) -> None:
        self.events.append(("delete", obj["metadata"]["name"], ""))


async def test_informer_sees_add_update_delete(client: Client, ns: str) -> None:
    await client.create(CONFIGMAPS, configmap("before", {"v": "0"}), ns)
    inf = SharedInformer.for_resource(client, CONFIGMAPS, ns)
    seen = Seen()
    inf.add_event_handler(seen.add, seen.update, seen.delete)
    inf.start()
    try:
        assert await inf.wait_synced(10)
        assert inf.store.get(f"{ns}/before") is not None
        obj = inf.store.get(f"{ns}/before")
        assert obj is not None and obj["kind"] == "ConfigMap"  # filled in on list items
        await client.create(CONFIGMAPS, configmap("c", {"v": "1"}), ns)
        await client.patch(CONFIGMAPS, "c", {"data": {"v": "2"}}, ns, patch_type="merge")
        await client.delete(CONFIGMAPS, "c", ns)
        await until(lambda: len(seen.events) == 4)
        assert seen.events == [
            ("add", "before", "0"),
            ("add", "c", "1"),
            ("update", "c", "2"),
            ("delete", "c", ""),
        ]
        assert [o["metadata"]["name"] for o in inf.store.by_index(NAMESPACE_INDEX, ns)] == [
            "before"
        ]
    finally:
        await inf.stop()


async def test_factory_shares_informers_and_selectors(client: Client, ns: str) -> None:
    async with InformerFactory(client) as factory:
        a = factory.informer(CONFIGMAPS, ns)
        assert factory.informer(("v1", "ConfigMap"), ns) is a
        labelled = factory.informer(CONFIGMAPS, ns, label_selector={"app": "x"})
        assert labelled is not a
        pods = factory.informer(
            PODS, indexers={"byNode": lambda p: [p["spec"].get("nodeName", "")]}
        )
        factory.start()
        assert await factory.wait_for_sync(10)
        await client.create(CONFIGMAPS, configmap("plain"), ns)
        await client.create(CONFIGMAPS, configmap("lab", app="x"), ns)
        await until(lambda: len(a.store) == 2 and len(labelled.store) == 1)
        assert labelled.store.list_keys() == [f"{ns}/lab"]
        assert pods.has_synced()
    assert not a.running


async def test_informer_relists_after_410(tmp_path_factory: pytest.TempPathFactory) -> None:
    srv = start_server(tmp_path_factory.mktemp("relist"))
    try:
        async with Client(load_kubeconfig(srv.kubeconfig)) as client:
            await client.create(CONFIGMAPS, configmap("one"), "default")
            inf = SharedInformer.for_resource(client, CONFIGMAPS, "default")
            inf.backoff = (0.1, 0.5)
            seen = Seen()
            inf.add_event_handler(seen.add, seen.update, seen.delete)
            inf.start()
            assert await inf.wait_synced(10)
            before = inf.last_sync_resource_version
            # a write elsewhere moves the revision past what the informer has seen…
            await client.create(SECRETS, {"metadata": {"name": "s"}}, "default")
            # …and a restart starts the server's watch history there: the informer's
            # re-watch from `before` is answered 410, and it relists
            await asyncio.to_thread(srv.stop)
            await asyncio.to_thread(srv.start)
            await client.create(CONFIGMAPS, configmap("two"), "default")
            await until(lambda: "default/two" in inf.store, within=20)
            assert inf.list_count >= 2
            assert int(inf.last_sync_resource_version) > int(before)
            await client.delete(CONFIGMAPS, "one", "default")
            await until(lambda: ("delete", "one", "") in seen.events)
            assert ("add", "two", "") in seen.events
            await inf.stop()
    finally:
        srv.stop()
