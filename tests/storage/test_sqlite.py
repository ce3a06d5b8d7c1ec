"""What only the SQLite backend promises: clear errors for locked and corrupt files,
one owner per database, and state that survives a clean restart."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pyk8s.storage import EventType, Unavailable, open_store
from pyk8s.storage.sqlite import SqliteStore


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
