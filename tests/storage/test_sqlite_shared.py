"""Shared SQLite stores (API server workers): several processes on one database file,
each watch seeing every process's writes once and in revision order."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pyk8s.storage import Conflict, Event, EventType, Unavailable, Watch
from pyk8s.storage.sqlite import SqliteStore


async def _take(watch: Watch, n: int) -> list[Event]:
    out: list[Event] = []
    async with asyncio.timeout(30):
        while len(out) < n:
            out.append(await anext(watch))
    return out


def _revisions(events: list[Event]) -> list[int]:
    return [ev.revision for ev in events]


async def test_every_store_sees_every_write_once_in_order(tmp_path: Path) -> None:
    a = await SqliteStore.open(tmp_path / "state.db", shared=True)
    b = await SqliteStore.open(tmp_path / "state.db", shared=True)
    try:
        start = await a.current_revision()
        watches = [await a.watch("/k/", after=start), await b.watch("/k/", after=start)]

        async def write(store: SqliteStore, who: str) -> None:
            for i in range(150):
                await store.create(f"/k/{who}-{i}", b"v")
                if i % 3 == 0:
                    current = await store.get(f"/k/{who}-{i}")
                    await store.update(
                        f"/k/{who}-{i}", b"w", expected_revision=current.mod_revision
                    )

        # concurrent writers in both stores, their batches interleaving in the log
        await asyncio.gather(*(write(s, f"{n}{w}") for n, s in enumerate((a, b)) for w in "xyz"))
        total = 2 * 3 * (150 + 50)
        seen = [await _take(w, total) for w in watches]
        assert seen[0] == seen[1]  # the same events, in the same order, in both stores
        revisions = _revisions(seen[0])
        assert revisions == sorted(set(revisions))  # increasing, no duplicate
        assert revisions == list(range(start + 1, start + total + 1))  # no gap
        assert await a.current_revision() == await b.current_revision() == start + total
        for w in watches:
            await w.close()
    finally:
        await a.close()
        await b.close()


async def test_a_write_acknowledged_elsewhere_is_read_and_not_watched_from_now(
    tmp_path: Path,
) -> None:
    a = await SqliteStore.open(tmp_path / "state.db", shared=True)
    b = await SqliteStore.open(tmp_path / "state.db", shared=True)
    try:
        written = await a.create("/k/one", b"1")
        # no wake has been read yet: the consistent read reads the table
        assert await b.current_revision() == written.mod_revision
        watch = await b.watch("/k/")  # from now: the write before it is not an event
        second = await a.create("/k/two", b"2")
        (event,) = await _take(watch, 1)
        assert (event.type, event.kv.key, event.revision) == (
            EventType.PUT,
            "/k/two",
            second.mod_revision,
        )
        # compare-and-swap across stores: b's update over a stale revision conflicts
        await a.update("/k/one", b"1b", expected_revision=written.mod_revision)
        with pytest.raises(Conflict):
            await b.update("/k/one", b"1c", expected_revision=written.mod_revision)
        await watch.close()
    finally:
        await a.close()
        await b.close()


async def test_a_shared_store_and_a_store_of_its_own_exclude_each_other(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    alone = await SqliteStore.open(path)
    with pytest.raises(Unavailable, match=r"in use by another process.*shared"):
        await SqliteStore.open(path, shared=True)
    await alone.close()
    shared = await SqliteStore.open(path, shared=True)
    with pytest.raises(Unavailable, match=r"in use by another process.*alone"):
        await SqliteStore.open(path)
    await shared.close()


async def test_a_ttl_key_expires_for_every_store(tmp_path: Path) -> None:
    a = await SqliteStore.open(tmp_path / "state.db", shared=True)
    b = await SqliteStore.open(tmp_path / "state.db", shared=True)
    try:
        watch = await b.watch("/events/")
        put = await a.create("/events/e1", b"e", ttl=1)
        first, gone = await _take(watch, 2)
        assert (first.type, first.revision) == (EventType.PUT, put.mod_revision)
        assert (gone.type, gone.kv.key) == (EventType.DELETE, "/events/e1")
        await watch.close()
    finally:
        await a.close()
        await b.close()


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pyk8s.storage.sqlite import SqliteStore

    async def main() -> None:
        store = await SqliteStore.open(sys.argv[1], shared=True)
        print("open", flush=True)
        sys.stdin.readline()  # go
        await asyncio.gather(*(store.create(f"/k/child-{i}", b"c") for i in range(300)))
        print("done", flush=True)
        sys.stdin.readline()  # hold the store open until told
        await store.close()

    asyncio.run(main())
    """
)


async def test_another_process_writes_are_watched_in_order_and_a_dead_one_is_forgotten(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    mine = await SqliteStore.open(path, shared=True)
    child = subprocess.Popen(  # noqa: ASYNC220 (its pipes are read in threads)
        [sys.executable, "-c", _WRITER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdin is not None and child.stdout is not None
        assert await asyncio.to_thread(child.stdout.readline) == "open\n"
        peers = path.with_name(path.name + ".peers")
        assert len(os.listdir(peers)) == 2  # this store and the child's
        start = await mine.current_revision()
        watch = await mine.watch("/k/", after=start)
        child.stdin.write("go\n")
        child.stdin.flush()
        await asyncio.gather(*(mine.create(f"/k/parent-{i}", b"p") for i in range(300)))
        events = await _take(watch, 600)
        assert _revisions(events) == list(range(start + 1, start + 601))
        keys = {ev.kv.key for ev in events}
        assert {f"/k/child-{i}" for i in range(300)} <= keys
        assert await asyncio.to_thread(child.stdout.readline) == "done\n"
        # the child dies without closing: the next writer finds its socket gone
        child.send_signal(signal.SIGKILL)
        await asyncio.to_thread(child.wait)
        await mine.create("/k/after", b"a")
        assert os.listdir(peers) == [mine._peers.token if mine._peers else ""]
        await watch.close()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        await mine.close()
