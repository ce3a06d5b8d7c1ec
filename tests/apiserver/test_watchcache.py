"""The watch cache: one store watch, many clients, and 410 for history it no longer has."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from pyk8s.api.registry import RESOURCES
from pyk8s.api.selectors import field_values
from pyk8s.apiserver.watchcache import (
    ADDED,
    DECODED_KEPT,
    DELETED,
    MODIFIED,
    Entry,
    Selector,
    TooOld,
    WatchCache,
    decode,
)
from pyk8s.storage import Event, Watch
from pyk8s.storage.encryption import EncryptingStore
from pyk8s.storage.sqlite import SqliteStore

JSON = dict[str, Any]


def pod(name: str, **labels: str) -> bytes:
    return orjson.dumps({"kind": "Pod", "metadata": {"name": name, "labels": labels}})


async def test_cache_follows_the_store_and_sets_resource_versions(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "s.db")
    await store.create("/registry/core/pods/ns/a", pod("a"))
    cache = WatchCache(store)
    await cache.start()
    try:
        kv = await store.create("/registry/core/pods/ns/b", pod("b"))
        await cache.wait_for(kv.mod_revision)
        entries = cache.list("/registry/core/pods/ns/")
        assert [e.obj["metadata"]["name"] for e in entries] == ["a", "b"]
        assert entries[1].obj["metadata"]["resourceVersion"] == str(kv.mod_revision)
        assert orjson.loads(entries[1].raw) == entries[1].obj
    finally:
        await cache.stop()
        await store.close()


async def test_selector_watchers_see_objects_enter_and_leave(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "s.db")
    cache = WatchCache(store)
    await cache.start()
    try:
        w = cache.watch(
            "/registry/core/pods/",
            cache.revision,
            lambda o: o["metadata"]["labels"].get("app") == "web",
        )
        a = await store.create("/registry/core/pods/ns/a", pod("a", app="db"))
        a = await store.update(
            "/registry/core/pods/ns/a", pod("a", app="web"), expected_revision=a.mod_revision
        )
        a = await store.update(
            "/registry/core/pods/ns/a", pod("a", app="db"), expected_revision=a.mod_revision
        )
        seen = [await asyncio.wait_for(w.next(), 5) for _ in range(2)]
        assert [(e.type if e else None) for e in seen] == [ADDED, DELETED]
        assert seen[1] is not None and seen[1].entry.obj["metadata"]["resourceVersion"] == str(
            a.mod_revision
        )
        w.close()
    finally:
        await cache.stop()
        await store.close()


async def test_resource_version_older_than_the_window_is_too_old(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "s.db")
    cache = WatchCache(store, history=5)
    await cache.start()
    try:
        first = await store.create("/registry/core/pods/ns/x", pod("x"))
        kv = first
        for _ in range(10):
            kv = await store.update(
                "/registry/core/pods/ns/x", pod("x"), expected_revision=kv.mod_revision
            )
        await cache.wait_for(kv.mod_revision)
        with pytest.raises(TooOld):
            cache.watch("/registry/core/pods/", first.mod_revision)
        # a recent revision replays what came after it, then goes on live
        w = cache.watch("/registry/core/pods/", kv.mod_revision - 2)
        replayed = [await asyncio.wait_for(w.next(), 5) for _ in range(2)]
        assert [e.revision for e in replayed if e] == [kv.mod_revision - 1, kv.mod_revision]
        assert all(e is not None and e.type == MODIFIED for e in replayed)
        w.close()
    finally:
        await cache.stop()
        await store.close()


async def test_events_are_not_cached_but_listed_from_the_store_and_watched(
    tmp_path: Path,
) -> None:
    store = await SqliteStore.open(tmp_path / "s.db")
    cache = WatchCache(store)
    await cache.start()
    try:
        w = cache.watch("/registry/core/events/", cache.revision)
        body = {"kind": "Event", "metadata": {"name": "e1"}, "reason": "Scheduled"}
        kv = await store.create("/registry/core/events/ns/e1", orjson.dumps(body))
        pod_kv = await store.create("/registry/core/pods/ns/p", pod("p"))
        await cache.wait_for(pod_kv.mod_revision)
        # upstream does not cache Events: nothing of them stays in memory but the history
        assert cache.list("/registry/core/events/ns/") == []
        assert not any(k.startswith("/registry/core/events/") for k in cache.objects)
        [event] = await cache.read("/registry/core/events/ns/")
        assert event.obj["reason"] == "Scheduled"
        assert event.obj["metadata"]["resourceVersion"] == str(kv.mod_revision)
        [cached_pod] = await cache.read("/registry/core/pods/ns/")
        assert cached_pod is cache.objects["/registry/core/pods/ns/p"]
        changed = {**body, "reason": "Pulled"}
        await store.update(
            "/registry/core/events/ns/e1", orjson.dumps(changed), expected_revision=kv.mod_revision
        )
        await store.delete("/registry/core/events/ns/e1")
        seen = [await asyncio.wait_for(w.next(), 5) for _ in range(3)]
        assert [(e.type if e else None) for e in seen] == [ADDED, MODIFIED, DELETED]
        assert seen[1] is not None and seen[1].prev is not None
        assert seen[1].prev.obj["reason"] == "Scheduled"
        assert seen[2] is not None and seen[2].entry.obj["reason"] == "Pulled"
        assert await cache.read("/registry/core/events/ns/") == []
    finally:
        await cache.stop()
        await store.close()


async def test_consistent_reads_share_store_revision_reads_started_after_they_came(
    tmp_path: Path,
) -> None:
    """A burst of lists without a resourceVersion asks the store twice, not once each:
    the callers that come while a read runs share the next one, which starts after it
    (a store that reads its revision remotely, as etcd does)."""
    store = await SqliteStore.open(tmp_path / "s.db")
    store.revision_in_memory = False
    cache = WatchCache(store)
    calls: asyncio.Queue[asyncio.Event] = asyncio.Queue()
    real = store.current_revision

    async def gated() -> int:
        gate = asyncio.Event()
        calls.put_nowait(gate)
        await gate.wait()
        return await real()

    store.current_revision = gated  # type: ignore[method-assign]
    try:
        first = asyncio.create_task(cache.fresh_revision())
        gate = await calls.get()
        # written after the first read began: only the later callers must see it
        kv = await store.create("/registry/core/pods/ns/a", pod("a"))
        later = [asyncio.create_task(cache.fresh_revision()) for _ in range(10)]
        gate.set()
        assert await first == kv.mod_revision  # the gate held the query itself back
        (await calls.get()).set()  # the one read the ten later callers share
        assert {await t for t in later} == {kv.mod_revision}
        assert calls.empty()
    finally:
        await store.close()


async def test_consistent_read_over_sqlite_never_yields_to_the_loop(tmp_path: Path) -> None:
    """SQLite knows its revision in memory: a consistent read's revision is answered in
    the caller's own step, not after event-loop iterations spent behind every other
    ready request (an admitted list under a flood of rejected ones)."""
    store = await SqliteStore.open(tmp_path / "s.db")
    try:
        kv = await store.create("/registry/core/pods/ns/a", pod("a"))
        read = WatchCache(store).fresh_revision()
        with pytest.raises(StopIteration) as done:
            read.send(None)
        assert done.value.value == kv.mod_revision
        assert EncryptingStore(store).revision_in_memory  # so does it under encryption
    finally:
        await store.close()


class _Held(Watch):
    """A store watch whose reader is held at a gate (the cache's loop not yet scheduled)."""

    def __init__(self, inner: Watch, gate: asyncio.Event) -> None:
        self.inner, self.gate = inner, gate

    async def __anext__(self) -> Event:
        await self.gate.wait()
        return await self.inner.__anext__()

    def take_ready(self) -> tuple[list[Event], int]:
        return self.inner.take_ready()

    async def close(self) -> None:
        self.gate.set()
        await self.inner.close()


async def test_a_consistent_read_applies_events_already_handed_out_without_waiting(
    tmp_path: Path,
) -> None:
    """A write acknowledged before the cache's loop took its event: a consistent read
    applies that event itself instead of waiting event-loop iterations for the loop, and
    moves past writes outside the cache's prefix; the loop then goes on with the next
    events (none lost, none twice)."""
    inner = await SqliteStore.open(tmp_path / "s.db")
    store = EncryptingStore(inner)  # the events pass through its watch too
    gate = asyncio.Event()
    real_watch = store.watch

    async def held_watch(prefix: str, *, after: int | None = None) -> Watch:
        return _Held(await real_watch(prefix, after=after), gate)

    store.watch = held_watch  # type: ignore[method-assign]
    cache = WatchCache(store)
    await cache.start()
    try:
        kv = await store.create("/registry/core/pods/ns/a", pod("a"))
        assert cache.revision < kv.mod_revision  # the cache's loop has not seen it
        read = cache.wait_fresh()
        with pytest.raises(StopIteration):
            read.send(None)
        assert cache.revision == kv.mod_revision
        assert [e.key for e in cache.list("/registry/core/pods/")] == [kv.key]
        # a write outside the cache's prefix: no event, yet a consistent read is at once
        # at its revision (and not 504 after waiting for the next write inside it)
        lease = await store.create("/masterleases/10.0.0.1", b"{}")
        read = cache.wait_fresh()
        with pytest.raises(StopIteration):
            read.send(None)
        assert cache.revision == lease.mod_revision
        gate.set()
        kv2 = await store.create("/registry/core/pods/ns/b", pod("b"))
        await cache.wait_for(kv2.mod_revision)
        assert [(e.type, e.key) for e in cache.history] == [(ADDED, kv.key), (ADDED, kv2.key)]
    finally:
        await cache.stop()
        await inner.close()


def test_entries_keep_bytes_and_decode_on_demand_the_same_object() -> None:
    """An entry reads back exactly the stored object (with its resourceVersion); the
    consumers of one entry share one decoded object while it is among the last decoded."""
    stored = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running", "podIP": "10.0.0.1"},
    }
    obj, raw = decode(orjson.dumps(stored), 7)
    entry = Entry.of("/registry/core/pods/ns/p", obj, raw, 7)
    expected = {**stored, "metadata": {**stored["metadata"], "resourceVersion": "7"}}
    assert entry.obj == expected and orjson.loads(entry.raw) == expected
    assert entry.obj is entry.obj
    assert entry.stored_as("v1") and not entry.stored_as("v2")
    # what a selector reads, without the containers
    assert entry.selectable == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
        "spec": {"nodeName": "n1"},
        "status": {"phase": "Running", "podIP": "10.0.0.1"},
    }
    # once enough other entries were decoded, it is decoded anew, equal
    first = entry.obj
    for i in range(DECODED_KEPT + 1):
        Entry.of(f"/registry/core/pods/ns/x{i}", {"kind": "Pod"}, b"{}", 8, keep=True)
    assert entry.memo is None
    again = entry.obj
    assert again == first and again is not first


def test_selectors_on_skeletons_select_as_on_objects() -> None:
    """Every built-in resource's selectable fields read the same from an entry's skeleton
    as from the whole object (the skeleton holds every path the selectors read)."""
    objects = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "labels": {"a": "b"}},
            "spec": {
                "nodeName": "n1",
                "restartPolicy": "Never",
                "schedulerName": "s",
                "serviceAccountName": "sa",
                "hostNetwork": True,
                "containers": [{"name": "c"}],
            },
            "status": {
                "phase": "Running",
                "podIP": "10.0.0.1",
                "podIPs": [{"ip": "10.0.0.2"}],
                "nominatedNodeName": "n2",
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "n"},
            "spec": {"unschedulable": True},
        },
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "x"},
            "status": {"phase": "Active"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s", "namespace": "ns"},
            "type": "Opaque",
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "s", "namespace": "ns"},
            "spec": {"clusterIP": "10.96.0.1", "type": "NodePort", "ports": [{"port": 1}]},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "r"},
            "status": {"replicas": 3},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "j"},
            "status": {"succeeded": 2},
        },
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "e", "namespace": "ns"},
            "involvedObject": {"kind": "Pod", "name": "p", "uid": "u", "fieldPath": "f"},
            "reason": "Pulled",
            "reportingComponent": "kubelet",
            "source": {"component": "kubelet", "host": "n1"},
            "type": "Normal",
            "message": "m",
        },
        {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "e", "namespace": "ns"},
            "regarding": {"kind": "Pod", "name": "p"},
            "reportingController": "kubelet",
            "deprecatedSource": {"component": "kubelet"},
            "type": "Normal",
            "note": "n",
        },
    ]
    for obj in objects:
        group_version = obj["apiVersion"]
        group = group_version.split("/")[0] if "/" in group_version else ""
        resource = next(r for r in RESOURCES if r.group == group and r.kind == obj["kind"])
        entry = Entry.of("/registry/x/y/z", obj, orjson.dumps(obj), 1)
        assert field_values(resource, entry.selectable) == field_values(resource, obj)
        assert entry.selectable["metadata"] == obj["metadata"]
        assert len(orjson.dumps(entry.selectable)) <= len(orjson.dumps(obj))


async def test_a_field_selector_watch_selects_by_skeleton(tmp_path: Path) -> None:
    """A Selector's watch and page filter on the skeletons and see objects enter and leave
    as on the objects (a kubelet's spec.nodeName watch of the pods)."""
    store = await SqliteStore.open(tmp_path / "s.db")
    cache = WatchCache(store)
    await cache.start()
    seen_by_filter: list[JSON] = []

    def on_node(obj: JSON) -> bool:
        seen_by_filter.append(obj)
        return (obj.get("spec") or {}).get("nodeName") == "n1"

    def scheduled(name: str, node: str) -> bytes:
        body = {"kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [{"name": "c"}]}}
        if node:
            body["spec"]["nodeName"] = node
        return orjson.dumps(body)

    try:
        w = cache.watch("/registry/core/pods/", cache.revision, Selector(on_node))
        a = await store.create("/registry/core/pods/ns/a", scheduled("a", ""))
        a = await store.update(
            "/registry/core/pods/ns/a", scheduled("a", "n1"), expected_revision=a.mod_revision
        )
        b = await store.create("/registry/core/pods/ns/b", scheduled("b", "n2"))
        await store.delete("/registry/core/pods/ns/a")
        seen = [await asyncio.wait_for(w.next(), 5) for _ in range(2)]
        assert [(e.type, e.key) if e else None for e in seen] == [
            (ADDED, "/registry/core/pods/ns/a"),
            (DELETED, "/registry/core/pods/ns/a"),
        ]
        assert seen[0] is not None and seen[0].entry.obj["spec"]["containers"] == [{"name": "c"}]
        await store.update(
            "/registry/core/pods/ns/b", scheduled("b", "n1"), expected_revision=b.mod_revision
        )
        await asyncio.wait_for(w.next(), 5)
        page = cache.page("/registry/core/pods/", "", 10, Selector(on_node))
        assert [e.key for e in page.entries] == ["/registry/core/pods/ns/b"]
        # the filter was given skeletons, never the containers
        assert seen_by_filter and all("containers" not in o.get("spec", {}) for o in seen_by_filter)
        w.close()
    finally:
        await cache.stop()
        await store.close()
