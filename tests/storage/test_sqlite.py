"""What only the SQLite backend promises: clear errors for locked and corrupt files,
one owner per database, state that survives a clean restart, and cheap reads answered on
the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pyk8s.storage import EventType, FutureRevision, NotFound, Unavailable, open_store
from pyk8s.storage.sqlite import SqliteStore

T = TypeVar("T")


async def test_second_opener_gets_a_clear_error(tmp_path: Path) -> None:
    first = await SqliteStore.open(tmp_path / "state.db")
    try:
        with pytest.raises(Unavailable, match="in use by another process"):
            await SqliteStore.open(tmp_path / "state.db")
        await first.create("/k", b"v")  # the owner is unaffected
    finally:
        await first.close()
    second = await SqliteStore.open(tmp_path / "state.db")  # the lock went with the owner
    assert (await second.get("/k")).value == b"v"
    await second.close()


async def test_database_locked_by_a_foreign_writer_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    await (await SqliteStore.open(path)).close()  # create the schema first
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(Unavailable, match="locked"):
            await SqliteStore.open(path, busy_timeout_ms=200)
    finally:
        other.execute("ROLLBACK")
        other.close()


@pytest.mark.parametrize(
    "content",
    [b"this is not a database at all" * 100, b"SQLite format 3\x00" + b"\xff" * 4000],
    ids=["text", "mangled-header"],
)
async def test_corrupt_database_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(content)
    with pytest.raises(Unavailable, match="corrupt or not a database"):
        await SqliteStore.open(path)
    # and the CLI reports it in one line, without a traceback
    out = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "pyk8s",
            "datastore-check",
            "--datastore-endpoint",
            f"sqlite://{path}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 1
    assert "corrupt or not a database" in out.stderr
    assert "Traceback" not in out.stderr


async def test_restart_serves_the_same_keys_and_revisions(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'state.db'}"
    store = await open_store(url)
    a = await store.create("/registry/a", b"1")
    a = await store.update("/registry/a", b"2", expected_revision=a.mod_revision)
    await store.create("/registry/b", b"x")
    await store.delete("/registry/b")
    rev = await store.current_revision()
    await store.compact(a.mod_revision)
    await store.close()

    store = await open_store(url)
    try:
        assert await store.current_revision() == rev
        assert await store.compacted_revision() == a.mod_revision
        got = await store.get("/registry/a")
        assert (got.value, got.mod_revision) == (b"2", a.mod_revision)
        c = await store.create("/registry/c", b"new")
        assert c.mod_revision == rev + 1, "revisions never go back, even after compaction"
    finally:
        await store.close()


async def test_ttl_expiry_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = await SqliteStore.open(path)
    await store.create("/registry/events/e1", b"x", ttl=1)
    await store.close()
    store = await SqliteStore.open(path)
    try:
        async with await store.watch("/registry/events/", after=0) as w:
            put, delete = [await asyncio.wait_for(w.__anext__(), 10) for _ in range(2)]
        assert put.type is EventType.PUT
        assert (delete.type, delete.kv.key) == (EventType.DELETE, "/registry/events/e1")
    finally:
        await store.close()


async def test_ttl_writes_expire_each_at_its_own_time(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "state.db")
    try:
        async with await store.watch("/registry/events/") as w:
            a = await store.create("/registry/events/a", b"1", ttl=1)
            await store.create("/registry/events/b", b"1", ttl=3)
            # written again before its first TTL passed: that first expiry must not delete it
            a2 = await store.update(
                "/registry/events/a", b"2", expected_revision=a.mod_revision, ttl=2
            )
            deletes = []
            while len(deletes) < 2:
                ev = await asyncio.wait_for(w.__anext__(), 10)
                if ev.type is EventType.DELETE:
                    deletes.append(ev)
        assert [d.kv.key for d in deletes] == ["/registry/events/a", "/registry/events/b"]
        assert deletes[0].prev_kv is not None and deletes[0].prev_kv.value == b"2"
        assert deletes[0].prev_kv.mod_revision == a2.mod_revision
        with pytest.raises(NotFound):
            await store.get("/registry/events/a")
    finally:
        await store.close()


def _runs_inline(read: Coroutine[Any, Any, T]) -> tuple[bool, T | None]:
    """Whether ``read`` completed on its first step (on the event loop, never suspending),
    and its result; a read that suspended (to a reader thread) is closed unfinished."""
    try:
        read.send(None)
    except StopIteration as done:
        return True, done.value
    read.close()
    return False, None


async def test_a_read_that_was_cheap_runs_on_the_event_loop(tmp_path: Path) -> None:
    """A read on a reader thread costs several turns of the event loop (each behind every
    other ready request); one whose kind and range cost little the last time runs inline,
    as consistent as on a thread; a costly one, or one never seen, goes to a thread."""
    store = await SqliteStore.open(tmp_path / "state.db")
    try:
        for i in range(3):
            await store.create(f"/registry/events/ns/e{i}", b"v%d" % i)
        prefix = "/registry/events/ns/"
        assert not _runs_inline(store.list(prefix))[0], "never seen: on a thread"
        await store.list(prefix)
        inline, page = _runs_inline(store.list(prefix))
        assert inline and page is not None
        assert [kv.key for kv in page.kvs] == [f"{prefix}e{i}" for i in range(3)]
        assert not _runs_inline(store.list(prefix, limit=2))[0], "another shape: unseen"
        await store.get(f"{prefix}e0")
        inline, kv = _runs_inline(store.get(f"{prefix}e1"))
        assert inline and kv is not None and kv.value == b"v1"
        with pytest.raises(NotFound):  # errors come out as from a thread
            _runs_inline(store.get(f"{prefix}missing"))
        # a write is seen at once; a revision from the future is refused
        new = await store.create(f"{prefix}e3", b"new")
        inline, page = _runs_inline(store.list(prefix))
        assert inline and page is not None and page.revision == new.mod_revision
        assert page.kvs[-1].value == b"new"
        with pytest.raises(FutureRevision):
            _runs_inline(store.list(prefix, revision=new.mod_revision + 1))
        # one read over the budget (a garbage collection during it) changes nothing; a
        # range whose last two reads cost more than the budget goes back to a thread
        shape = ("list", prefix, "0")
        store._remember_cost(shape, 1.0)
        assert _runs_inline(store.list(prefix))[0]
        store._remember_cost(shape, 1.0)
        store._remember_cost(shape, 1.0)
        assert not _runs_inline(store.list(prefix))[0]
    finally:
        await store.close()


class _LockedConnection:
    """A connection whose every statement meets a lock (SQLITE_BUSY)."""

    in_transaction = False

    def execute(self, sql: str, *args: object) -> None:
        raise sqlite3.OperationalError("database is locked")


async def test_a_read_on_the_event_loop_that_meets_a_lock_waits_on_a_thread(
    tmp_path: Path,
) -> None:
    """The loop's connection never waits for a lock (busy timeout 0: the loop would stop);
    the read moves to a reader thread, which waits as every read did before."""
    store = await SqliteStore.open(tmp_path / "state.db")
    try:
        await store.create("/k", b"v")
        await store.get("/k")
        assert _runs_inline(store.get("/k"))[0]
        store._inline_conn = _LockedConnection()  # type: ignore[assignment]
        assert not _runs_inline(store.get("/k"))[0]
        assert (await store.get("/k")).value == b"v"
    finally:
        store._inline_conn = None
        await store.close()
