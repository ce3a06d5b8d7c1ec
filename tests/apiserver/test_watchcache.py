"""The watch cache: one store watch, many clients, and 410 for history it no longer has."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from pyk8s.apiserver.watchcache import ADDED, DELETED, MODIFIED, TooOld, WatchCache, decode
from pyk8s.storage import Event, Watch
from pyk8s.storage.encryption import EncryptingStore
from pyk8s.storage.sqlite import SqliteStore


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
        assert event.decoded is None and event.obj["reason"] == "Scheduled"
        assert event.obj["metadata"]["resourceVersion"] == str(kv.mod_revision)
        [cached_pod] = await cache.read("/registry/core/pods/ns/")
        assert cached_pod.decoded is not None
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


def test_objects_written_alike_share_their_field_sets() -> None:
    """Decoded field sets equal to earlier ones are the same dicts (the cache's memory),
    and every object still reads and encodes exactly as stored."""

    def node(name: str, ip: str) -> bytes:
        created = {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}
        status = {"f:status": {"f:addresses": {".": {}, f'k:{{"address":"{ip}"}}': {}}}}
        return orjson.dumps(
            {
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": {"app": "x"},
                    "managedFields": [
                        {"manager": "a", "operation": "Update", "fieldsV1": created},
                        {"manager": "b", "operation": "Update", "fieldsV1": status},
                    ],
                },
            }
        )

    raws = [node("n1", "10.0.0.1"), node("n2", "10.0.0.2")]
    (one, one_raw), (two, two_raw) = (decode(r, 7) for r in raws)
    first, second = one["metadata"]["managedFields"], two["metadata"]["managedFields"]
    assert first[0]["fieldsV1"] is second[0]["fieldsV1"]
    # the status field sets differ (by the address), their equal parts are shared
    assert first[1]["fieldsV1"] is not second[1]["fieldsV1"]
    assert (
        first[1]["fieldsV1"]["f:status"]["f:addresses"]["."]
        is (second[1]["fieldsV1"]["f:status"]["f:addresses"]["."])
    )
    for obj, raw, stored in ((one, one_raw, raws[0]), (two, two_raw, raws[1])):
        expected = orjson.loads(stored)
        expected["metadata"]["resourceVersion"] = "7"
        assert obj == expected
        assert orjson.loads(raw) == expected
