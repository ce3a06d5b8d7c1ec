"""The storage contract, run against every backend (see conftest.py).

Each test states one promise the API server relies on. Revisions are compared relative
to what the test itself observed, since the etcd backend shares one server per session.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from pyk8s.storage import (
    AlreadyExists,
    Compacted,
    Compactor,
    Conflict,
    Event,
    EventType,
    FutureRevision,
    KeyValue,
    NotFound,
    Store,
    Watch,
    next_start,
)


async def take(watch: Watch, n: int, within: float = 10.0) -> list[Event]:
    """The next ``n`` events of ``watch``; fails if they do not come within ``within`` s."""

    async def run() -> list[Event]:
        out: list[Event] = []
        async for ev in watch:
            out.append(ev)
            if len(out) == n:
                break
        return out

    return await asyncio.wait_for(run(), within)


# ---------------------------------------------------------------- basic reads and writes


async def test_create_get_update_delete_track_revisions(store: Store, prefix: str) -> None:
    key = prefix + "a"
    before = await store.current_revision()
    created = await store.create(key, b"v1")
    assert created.mod_revision == created.create_revision > before
    assert await store.current_revision() == created.mod_revision

    got = await store.get(key)
    assert got.value == b"v1"
    assert got.mod_revision == created.mod_revision

    updated = await store.update(key, b"v2", expected_revision=created.mod_revision)
    assert updated.mod_revision > created.mod_revision
    assert updated.create_revision == created.create_revision
    assert (await store.get(key)).value == b"v2"

    deleted = await store.delete(key, expected_revision=updated.mod_revision)
    assert deleted.value == b"v2"
    assert deleted.mod_revision == updated.mod_revision
    with pytest.raises(NotFound):
        await store.get(key)
    assert await store.current_revision() > updated.mod_revision


async def test_create_of_existing_key_fails_and_writes_nothing(store: Store, prefix: str) -> None:
    key = prefix + "a"
    first = await store.create(key, b"one")
    rev = await store.current_revision()
    with pytest.raises(AlreadyExists):
        await store.create(key, b"two")
    assert (await store.get(key)).value == b"one"
    assert await store.current_revision() == rev
    # after a delete the key can be created again, with a new create revision
    await store.delete(key)
    again = await store.create(key, b"three")
    assert again.create_revision > first.create_revision


async def test_stale_update_conflicts_and_returns_current(store: Store, prefix: str) -> None:
    key = prefix + "a"
    v1 = await store.create(key, b"v1")
    v2 = await store.update(key, b"v2", expected_revision=v1.mod_revision)
    rev = await store.current_revision()
    with pytest.raises(Conflict) as info:
        await store.update(key, b"v3", expected_revision=v1.mod_revision)
    assert info.value.current is not None
    assert info.value.current.value == b"v2"
    assert info.value.current.mod_revision == v2.mod_revision
    with pytest.raises(Conflict) as info2:
        await store.delete(key, expected_revision=v1.mod_revision)
    assert info2.value.current is not None and info2.value.current.value == b"v2"
    assert await store.current_revision() == rev, "a failed write must not write"
    assert (await store.get(key)).value == b"v2"


async def test_update_or_delete_of_missing_key_is_not_found(store: Store, prefix: str) -> None:
    with pytest.raises(NotFound):
        await store.update(prefix + "nope", b"x", expected_revision=1)
    with pytest.raises(NotFound):
        await store.delete(prefix + "nope")
    with pytest.raises(NotFound):
        await store.get(prefix + "nope")


async def test_get_at_an_older_revision(store: Store, prefix: str) -> None:
    key = prefix + "a"
    v1 = await store.create(key, b"v1")
    v2 = await store.update(key, b"v2", expected_revision=v1.mod_revision)
    assert (await store.get(key, revision=v1.mod_revision)).value == b"v1"
    assert (await store.get(key, revision=v2.mod_revision)).value == b"v2"
    await store.delete(key)
    assert (await store.get(key, revision=v2.mod_revision)).value == b"v2"
    with pytest.raises(NotFound):
        await store.get(key, revision=v1.mod_revision - 1)


async def test_future_revision_is_refused(store: Store, prefix: str) -> None:
    current = await store.current_revision()
    with pytest.raises(FutureRevision):
        await store.get(prefix + "a", revision=current + 1000)
    with pytest.raises(FutureRevision):
        await store.list(prefix, revision=current + 1000)
    with pytest.raises(FutureRevision):
        await store.watch(prefix, after=current + 1000)


async def test_values_are_bytes_exactly(store: Store, prefix: str) -> None:
    blob = bytes(range(256)) * 64 + b"\x00end"
    await store.create(prefix + "bin", blob)
    assert (await store.get(prefix + "bin")).value == blob
    await store.create(prefix + "empty", b"")
    assert (await store.get(prefix + "empty")).value == b""


# ---------------------------------------------------------------- lists


async def test_list_is_sorted_and_stays_under_its_prefix(store: Store, prefix: str) -> None:
    names = ["b", "a", "c/x", "c", "ab"]
    for n in names:
        await store.create(prefix + n, n.encode())
    await store.create(prefix.rstrip("/") + "0", b"sibling outside the prefix")
    await store.create(prefix[:-1], b"the prefix without its slash")
    await store.delete(prefix + "ab")
    result = await store.list(prefix)
    assert [kv.key for kv in result.kvs] == [prefix + n for n in ["a", "b", "c", "c/x"]]
    assert result.remaining == 0 and not result.more
    assert result.revision == await store.current_revision()
    assert await store.count(prefix) == 4


async def test_paginated_list_counts_what_remains(store: Store, prefix: str) -> None:
    for i in range(25):
        await store.create(f"{prefix}{i:03d}", b"x")
    page = await store.list(prefix, limit=10)
    assert [kv.key for kv in page.kvs] == [f"{prefix}{i:03d}" for i in range(10)]
    assert page.remaining == 15 and page.more
    page2 = await store.list(prefix, limit=10, start=next_start(page), revision=page.revision)
    assert page2.kvs[0].key == f"{prefix}010"
    assert page2.remaining == 5
    page3 = await store.list(prefix, limit=10, start=next_start(page2), revision=page.revision)
    assert len(page3.kvs) == 5 and page3.remaining == 0 and not page3.more


async def test_paginated_list_at_fixed_revision_is_a_snapshot_while_writes_go_on(
    store: Store, prefix: str
) -> None:
    for i in range(60):
        await store.create(f"{prefix}{i:03d}", f"v{i}".encode())
    snapshot = await store.list(prefix)
    expected = {kv.key: kv.value for kv in snapshot.kvs}

    stop = asyncio.Event()

    async def churn() -> None:
        rng = random.Random(7)
        n = 100
        while not stop.is_set():
            i = rng.randrange(60)
            key = f"{prefix}{i:03d}"
            try:
                cur = await store.get(key)
                if rng.random() < 0.3:
                    await store.delete(key, expected_revision=cur.mod_revision)
                else:
                    await store.update(key, b"changed", expected_revision=cur.mod_revision)
            except (NotFound, Conflict):
                pass
            await store.create(f"{prefix}{n:03d}", b"new")
            n += 1

    writer = asyncio.create_task(churn())
    got: dict[str, bytes] = {}
    page = await store.list(prefix, limit=7, revision=snapshot.revision)
    pages = 1
    while True:
        got.update({kv.key: kv.value for kv in page.kvs})
        await asyncio.sleep(0.01)  # let the writer move the store on between pages
        if not page.more:
            break
        page = await store.list(prefix, limit=7, start=next_start(page), revision=snapshot.revision)
        assert page.revision == snapshot.revision
        pages += 1
    stop.set()
    await writer
    assert pages >= 9
    assert got == expected
    assert await store.current_revision() > snapshot.revision


# ---------------------------------------------------------------- compare-and-swap races


async def test_racing_writers_exactly_one_wins_each_round(store: Store, prefix: str) -> None:
    key = prefix + "contended"
    kv = await store.create(key, b"0")
    writers = 20
    for round_no in range(1, 11):

        async def attempt(w: int, expected: int = kv.mod_revision, r: int = round_no) -> KeyValue:
            return await store.update(key, f"{r}:{w}".encode(), expected_revision=expected)

        results = await asyncio.gather(
            *(attempt(w) for w in range(writers)), return_exceptions=True
        )
        winners = [r for r in results if isinstance(r, KeyValue)]
        losers = [r for r in results if isinstance(r, Conflict)]
        assert len(winners) == 1, results
        assert len(losers) == writers - 1
        kv = winners[0]
        assert all(
            c.current is not None and c.current.mod_revision == kv.mod_revision for c in losers
        )
        assert (await store.get(key)).value == kv.value


async def test_concurrent_increments_lose_no_update(store: Store, prefix: str) -> None:
    key = prefix + "counter"
    await store.create(key, b"0")
    workers, increments = 10, 15
    conflicts = 0

    async def worker() -> None:
        nonlocal conflicts
        for _ in range(increments):
            while True:
                cur = await store.get(key)
                try:
                    await store.update(
                        key, str(int(cur.value) + 1).encode(), expected_revision=cur.mod_revision
                    )
                    break
                except Conflict:
                    conflicts += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    assert int((await store.get(key)).value) == workers * increments
    assert conflicts > 0, "the workers never raced; the test proves nothing"


# ---------------------------------------------------------------- watch


async def test_watch_sees_puts_and_deletes_with_previous_values(store: Store, prefix: str) -> None:
    async with await store.watch(prefix) as w:
        a = await store.create(prefix + "a", b"1")
        a2 = await store.update(prefix + "a", b"2", expected_revision=a.mod_revision)
        await store.create("/registry/elsewhere-" + prefix[-13:], b"not watched")
        await store.delete(prefix + "a")
        events = await take(w, 3)
    assert [e.type for e in events] == [EventType.PUT, EventType.PUT, EventType.DELETE]
    assert events[0].prev_kv is None
    assert events[0].kv.value == b"1" and events[0].revision == a.mod_revision
    assert events[1].prev_kv is not None and events[1].prev_kv.value == b"1"
    assert events[1].prev_kv.mod_revision == a.mod_revision
    assert events[2].prev_kv is not None and events[2].prev_kv.value == b"2"
    assert events[2].prev_kv.mod_revision == a2.mod_revision
    assert events[2].kv.key == prefix + "a"
    assert events[2].revision > a2.mod_revision


async def test_watch_from_old_revision_replays_then_continues_live_without_gap_or_duplicate(
    store: Store, prefix: str
) -> None:
    start = await store.current_revision()
    for i in range(30):
        await store.create(f"{prefix}{i:03d}", b"old")
    total_live = 120

    async def writer() -> None:
        for i in range(total_live):
            await store.create(f"{prefix}live-{i:03d}", b"new")
            if i % 10 == 0:
                await asyncio.sleep(0)

    async with await store.watch(prefix, after=start) as w:
        task = asyncio.create_task(writer())
        events = await take(w, 30 + total_live, within=30)
        await task
    revisions = [e.revision for e in events]
    assert revisions == sorted(set(revisions)), "events out of order or duplicated"
    keys = [e.kv.key for e in events]
    assert keys[:30] == [f"{prefix}{i:03d}" for i in range(30)]
    assert keys[30:] == [f"{prefix}live-{i:03d}" for i in range(total_live)]
    assert revisions[0] > start


async def test_concurrent_watchers_all_see_the_same_history(store: Store, prefix: str) -> None:
    watches = [await store.watch(prefix) for _ in range(5)]
    for i in range(40):
        await store.create(f"{prefix}{i}", b"x")
    try:
        seen = [[e.revision for e in await take(w, 40)] for w in watches]
    finally:
        for w in watches:
            await w.close()
    assert all(s == seen[0] for s in seen)
    assert len(set(seen[0])) == 40


async def test_closed_watch_ends_iteration(store: Store, prefix: str) -> None:
    w = await store.watch(prefix)
    await store.create(prefix + "a", b"1")
    assert len(await take(w, 1)) == 1
    await w.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(w.__anext__(), 5)


# ---------------------------------------------------------------- compaction


async def test_compaction_keeps_latest_values_and_refuses_old_revisions(
    store: Store, prefix: str
) -> None:
    kv = await store.create(prefix + "a", b"0")
    first = kv.mod_revision
    for i in range(1, 6):
        kv = await store.update(prefix + "a", str(i).encode(), expected_revision=kv.mod_revision)
    await store.create(prefix + "gone", b"x")
    await store.delete(prefix + "gone")
    keep = await store.create(prefix + "untouched", b"u")
    target = await store.current_revision()
    await store.compact(target)
    assert await store.compacted_revision() >= target

    assert (await store.get(prefix + "a")).value == b"5"
    assert (await store.get(prefix + "untouched")).mod_revision == keep.mod_revision
    assert [kv.key for kv in (await store.list(prefix)).kvs] == [
        prefix + "a",
        prefix + "untouched",
    ]
    with pytest.raises(NotFound):
        await store.get(prefix + "gone")
    with pytest.raises(Compacted):
        await store.get(prefix + "a", revision=first)
    with pytest.raises(Compacted):
        await store.list(prefix, revision=first)
    with pytest.raises(Compacted):
        await store.watch(prefix, after=first)
    # compacting again at or below the compacted revision changes nothing
    await store.compact(target)
    # the store goes on after compaction: writes, and a watch from the compacted revision
    async with await store.watch(prefix, after=target) as w:
        await store.update(prefix + "a", b"6", expected_revision=kv.mod_revision)
        (ev,) = await take(w, 1)
    assert ev.kv.value == b"6" and ev.prev_kv is not None and ev.prev_kv.value == b"5"


async def test_watch_replay_covers_history_right_up_to_the_compaction(
    store: Store, prefix: str
) -> None:
    kv = await store.create(prefix + "a", b"0")
    for i in range(1, 4):
        kv = await store.update(prefix + "a", str(i).encode(), expected_revision=kv.mod_revision)
    await store.compact(kv.mod_revision - 1)
    # the compacted revision itself is still there: a watch may start right at it
    async with await store.watch(prefix, after=kv.mod_revision - 2) as w:
        first, second = await take(w, 2)
    assert first.revision == kv.mod_revision - 1 and first.kv.value == b"2"
    assert first.prev_kv is not None and first.prev_kv.value == b"1"
    assert second.revision == kv.mod_revision and second.kv.value == b"3"
    with pytest.raises(Compacted):
        await store.watch(prefix, after=kv.mod_revision - 3)


# ---------------------------------------------------------------- TTL


async def test_ttl_key_expires_with_a_delete_event(store: Store, prefix: str) -> None:
    async with await store.watch(prefix) as w:
        kv = await store.create(prefix + "event", b"short-lived", ttl=1)
        await store.create(prefix + "forever", b"stays")
        assert (await store.get(prefix + "event")).value == b"short-lived"
        events = await take(w, 3, within=10)
    assert events[2].type is EventType.DELETE
    assert events[2].kv.key == prefix + "event"
    assert events[2].prev_kv is not None and events[2].prev_kv.value == b"short-lived"
    assert events[2].revision > kv.mod_revision
    with pytest.raises(NotFound):
        await store.get(prefix + "event")
    assert (await store.get(prefix + "forever")).value == b"stays"


# ---------------------------------------------------------------- crash durability

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pyk8s.storage import open_store

    async def main(url: str, prefix: str) -> None:
        store = await open_store(url)

        async def one(i: int) -> None:
            kv = await store.create(f"{prefix}{i:06d}", b"payload-%d" % i)
            print(f"{kv.key} {kv.mod_revision}", flush=True)

        i = 0
        while True:
            # a few writers at once, so acknowledged writes share commits
            await asyncio.gather(*(one(i + k) for k in range(4)))
            i += 4

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_sigkill_mid_stream_loses_no_acknowledged_write(
    store: Store, prefix: str, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        # the writer must own the file: close ours, reopen after the crash
        url = f"sqlite://{tmp_path / 'state.db'}"
        await store.close()
    else:
        url = request.getfixturevalue("etcd_cluster").endpoint
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER,
        url,
        prefix,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    acked: dict[str, int] = {}
    while len(acked) < 400:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line:
            pytest.fail(f"writer died: {(await proc.stderr.read()).decode()}")
        key, rev = line.decode().split()
        acked[key] = int(rev)
    proc.send_signal(signal.SIGKILL)
    # whatever else it printed before dying was acknowledged too
    for line in (await proc.stdout.read()).decode().splitlines():
        key, rev = line.split()
        acked[key] = int(rev)
    await proc.wait()

    from pyk8s.storage import open_store

    reopened = await open_store(url)
    try:
        stored = {kv.key: kv for kv in (await reopened.list(prefix)).kvs}
        missing = [k for k in acked if k not in stored]
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:3]}"
        assert all(stored[k].mod_revision == rev for k, rev in acked.items())
        # and the store takes writes again
        await reopened.create(prefix + "after-crash", b"ok")
    finally:
        await reopened.close()


async def test_periodic_compaction_keeps_one_interval_of_history(store: Store, prefix: str) -> None:
    compactor = Compactor(store, interval=3600)
    kv0 = await store.create(prefix + "a", b"0")
    kv = await store.update(prefix + "a", b"0b", expected_revision=kv0.mod_revision)
    first_tick = await store.current_revision()
    assert await compactor.tick() == 0, "the first tick only remembers where it was"
    kv = await store.update(prefix + "a", b"1", expected_revision=kv.mod_revision)
    second_tick = await store.current_revision()
    assert await compactor.tick() == first_tick
    assert await store.compacted_revision() >= first_tick
    # history since the previous tick is still there for a watcher that fell behind
    async with await store.watch(prefix, after=first_tick) as w:
        (ev,) = await take(w, 1)
    assert ev.revision == kv.mod_revision == second_tick
    with pytest.raises(Compacted):
        await store.get(prefix + "a", revision=kv0.mod_revision)
    assert (await store.get(prefix + "a")).value == b"1"
