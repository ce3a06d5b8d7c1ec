"""Datastore snapshots: save, verify and restore the whole store (k3s's etcd-snapshot).

Why it looks the way it does:

* **Save is the backend's own consistent copy.** SQLite: the online backup API from a
  read-only connection, so a running server keeps writing (WAL) while the copy is
  taken; etcd: the Maintenance ``Snapshot`` stream, the same file ``etcdctl snapshot
  save`` writes (the bolt database followed by its SHA-256).
* **Verify before anything is touched.** Both kinds end with the SHA-256 of what comes
  before (etcd's format; SQLite snapshots copy it), checked first; a SQLite one is then
  also checked page by page (``PRAGMA integrity_check``) and for our schema. Then it is
  read completely into memory. Only then is the target store written, so a corrupt or
  truncated file changes nothing.
* **Restore is logical, through the Store protocol.** The snapshot's keys are read
  back (SQLite: a temporary copy opened as a store; etcd: ``etcdctl snapshot restore``
  into a scratch directory served by a throw-away etcd on loopback) and the target is
  made equal to them: keys the snapshot lacks are deleted, differing ones written. The
  result is the snapshot's state at the store's *next* revisions, so the revision never
  goes back: agents and informers that survived see ordinary watch events (or relist)
  instead of resourceVersions from the future. It also works on an external etcd, and a
  SQLite snapshot restores into etcd and back (the file's kind is read from its header).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import socket
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pyk8s.storage._types import KeyValue, NotFound, Store, StoreError, next_start
from pyk8s.storage.endpoint import EtcdTLS

SQLITE_MAGIC = b"SQLite format 3\x00"
_SHA256_LEN = 32
_CHUNK = 1 << 20
#: every key pyk8s writes lives under it (a shared etcd may hold other users' keys)
REGISTRY_PREFIX = "/registry/"
_PAGE = 5000
_WRITE_CONCURRENCY = 256
_SAVE_TIMEOUT = 600.0


class SnapshotError(StoreError):
    """A snapshot that cannot be saved, read or trusted; nothing was changed."""


@dataclass(frozen=True, slots=True)
class RestoreResult:
    keys: int
    written: int
    deleted: int


def kind_of(path: Path) -> str:
    """``sqlite`` or ``etcd``, from the file's first bytes."""
    with path.open("rb") as f:
        head = f.read(len(SQLITE_MAGIC))
    return "sqlite" if head == SQLITE_MAGIC else "etcd"


def _fsync_rename(tmp: Path, dest: Path) -> None:
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    tmp.replace(dest)


def save_sqlite(db: Path, dest: Path) -> None:
    """Copy a live SQLite store with the online backup API (readers and the writer
    carry on) to ``dest``, followed by its SHA-256 as etcd's snapshots are (written
    whole, then renamed in place)."""
    if not db.exists():
        raise SnapshotError(f"no SQLite datastore at {db}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        src = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            out = sqlite3.connect(tmp)
            try:
                src.backup(out, pages=4096)
                out.execute("PRAGMA journal_mode=DELETE")
            finally:
                out.close()
        finally:
            src.close()
        digest = _sha256(tmp, tmp.stat().st_size)
        with tmp.open("ab") as f:
            f.write(digest)
        _fsync_rename(tmp, dest)
    except sqlite3.Error as err:
        tmp.unlink(missing_ok=True)
        raise SnapshotError(f"snapshot of {db}: {err}") from None


async def save_etcd(
    hosts: Sequence[tuple[str, int]], dest: Path, tls: EtcdTLS | None = None
) -> None:
    """Stream etcd's Maintenance snapshot (the bolt file and its SHA-256) to ``dest``."""
    import grpc
    from aetcd import rpc

    from pyk8s.storage.etcd import channel

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    errors: list[str] = []
    for host, port in hosts:
        try:
            async with channel(
                f"{host}:{port}", tls, [("grpc.max_receive_message_length", 2**31 - 1)]
            ) as chan:
                stub = rpc.MaintenanceStub(chan)
                with tmp.open("wb") as f:
                    async for resp in stub.Snapshot(rpc.SnapshotRequest(), timeout=_SAVE_TIMEOUT):
                        f.write(resp.blob)
            verify(tmp)
            _fsync_rename(tmp, dest)
            return
        except (grpc.aio.AioRpcError, SnapshotError, OSError) as err:
            tmp.unlink(missing_ok=True)
            detail = err.details() if isinstance(err, grpc.aio.AioRpcError) else str(err)
            errors.append(f"{host}:{port}: {detail}")
    raise SnapshotError("etcd snapshot failed: " + "; ".join(errors))


def verify(path: Path) -> str:
    """Check a snapshot's SHA-256 (both kinds end with it); its kind, or SnapshotError
    saying what is wrong. A SQLite one is checked page by page when it is opened."""
    if not path.is_file():
        raise SnapshotError(f"snapshot {path} does not exist")
    size = path.stat().st_size
    if size <= _SHA256_LEN or (size - _SHA256_LEN) % 512 != 0:
        raise SnapshotError(
            f"snapshot {path} is corrupt: {size} bytes is not a database and its SHA-256"
        )
    with path.open("rb") as f:
        f.seek(size - _SHA256_LEN)
        expected = f.read(_SHA256_LEN)
    if _sha256(path, size - _SHA256_LEN) != expected:
        raise SnapshotError(f"snapshot {path} is corrupt: SHA-256 mismatch")
    return kind_of(path)


def _sha256(path: Path, length: int) -> bytes:
    """The SHA-256 of the first ``length`` bytes of ``path``."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while length > 0:
            chunk = f.read(min(_CHUNK, length))
            if not chunk:
                break
            digest.update(chunk)
            length -= len(chunk)
    return digest.digest()


def _copy_sqlite(path: Path, copy: Path) -> None:
    """The database part of a SQLite snapshot, checked page by page (integrity_check)."""
    with path.open("rb") as src, copy.open("wb") as dst:
        remaining = path.stat().st_size - _SHA256_LEN
        while remaining > 0:
            chunk = src.read(min(_CHUNK, remaining))
            dst.write(chunk)
            remaining -= len(chunk)
    try:
        conn = sqlite3.connect(copy)
        try:
            result = [r[0] for r in conn.execute("PRAGMA integrity_check")]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        finally:
            conn.close()
    except sqlite3.Error as err:
        raise SnapshotError(f"snapshot {path} is corrupt: {err}") from None
    if result != ["ok"]:
        raise SnapshotError(f"snapshot {path} is corrupt: {'; '.join(result[:3])}")
    if not {"log", "meta"} <= tables:
        raise SnapshotError(f"snapshot {path} is a SQLite file but not a pyk8s datastore")


async def list_all(store: Store, prefix: str = REGISTRY_PREFIX) -> list[KeyValue]:
    """Every key under ``prefix`` at one revision, paged."""
    out: list[KeyValue] = []
    start, revision = "", 0
    while True:
        page = await store.list(prefix, start=start, limit=_PAGE, revision=revision)
        out.extend(page.kvs)
        revision = page.revision
        if not page.more:
            return out
        start = next_start(page)


@contextlib.asynccontextmanager
async def opened(path: Path) -> AsyncIterator[Store]:
    """The snapshot, verified, served read-only as a store from a scratch copy."""
    kind = await asyncio.to_thread(verify, path)
    with tempfile.TemporaryDirectory(prefix="pyk8s-restore-") as scratch:
        if kind == "sqlite":
            from pyk8s.storage.sqlite import SqliteStore

            copy = Path(scratch) / "state.db"
            await asyncio.to_thread(_copy_sqlite, path, copy)
            store = await SqliteStore.open(copy)
            try:
                yield store
            finally:
                await store.close()
        else:
            async with _scratch_etcd(path, Path(scratch)) as etcd:
                yield etcd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def _scratch_etcd(path: Path, scratch: Path) -> AsyncIterator[Store]:
    """``etcdctl snapshot restore`` into ``scratch`` and a loopback etcd serving it."""
    from pyk8s.storage.etcd import EtcdStore

    etcdctl, etcd = shutil.which("etcdutl") or shutil.which("etcdctl"), shutil.which("etcd")
    if etcdctl is None or etcd is None:
        raise SnapshotError("restoring an etcd snapshot needs etcd and etcdctl installed")
    data = scratch / "etcd"
    client, peer = _free_port(), _free_port()
    peer_url = f"http://127.0.0.1:{peer}"
    restore = await asyncio.create_subprocess_exec(
        etcdctl,
        "snapshot",
        "restore",
        str(path),
        "--data-dir",
        str(data),
        "--name",
        "restore",
        "--initial-cluster",
        f"restore={peer_url}",
        "--initial-advertise-peer-urls",
        peer_url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "ETCDCTL_API": "3"},
    )
    out, _ = await restore.communicate()
    if restore.returncode != 0:
        lines = out.decode(errors="replace").strip().splitlines() or ["failed"]
        raise SnapshotError(f"snapshot {path}: etcdctl snapshot restore: {lines[-1]}")
    log = (scratch / "etcd.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        etcd,
        "--name",
        "restore",
        "--data-dir",
        str(data),
        "--listen-client-urls",
        f"http://127.0.0.1:{client}",
        "--advertise-client-urls",
        f"http://127.0.0.1:{client}",
        "--listen-peer-urls",
        peer_url,
        "--initial-advertise-peer-urls",
        peer_url,
        "--initial-cluster",
        f"restore={peer_url}",
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        store = await EtcdStore.open([("127.0.0.1", client)], connect_timeout=30)
        try:
            yield store
        finally:
            await store.close()
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        log.close()


async def restore(target: Store, path: Path, prefix: str = REGISTRY_PREFIX) -> RestoreResult:
    """Make ``target``'s keys under ``prefix`` equal to the snapshot's. The snapshot is
    verified and read whole before the first write; SnapshotError if it is unusable."""
    async with opened(path) as source:
        wanted = {kv.key: kv for kv in await list_all(source, prefix)}
    present = {kv.key: kv for kv in await list_all(target, prefix)}
    sem = asyncio.Semaphore(_WRITE_CONCURRENCY)
    written = deleted = 0

    async def put(kv: KeyValue) -> None:
        nonlocal written
        async with sem:
            old = present.get(kv.key)
            if old is None:
                await target.create(kv.key, kv.value, ttl=kv.ttl)
            elif old.value != kv.value or old.ttl != kv.ttl:
                await target.update(
                    kv.key, kv.value, expected_revision=old.mod_revision, ttl=kv.ttl
                )
            else:
                return
            written += 1

    async def drop(kv: KeyValue) -> None:
        nonlocal deleted
        async with sem:
            with contextlib.suppress(NotFound):  # a TTL key may expire meanwhile
                await target.delete(kv.key, expected_revision=kv.mod_revision)
                deleted += 1

    await asyncio.gather(
        *(drop(kv) for key, kv in present.items() if key not in wanted),
        *(put(kv) for kv in wanted.values()),
    )
    return RestoreResult(len(wanted), written, deleted)


@dataclass(frozen=True, slots=True)
class SnapshotFile:
    name: str
    path: Path
    size: int
    created: float

    @property
    def location(self) -> str:
        return self.path.resolve().as_uri()


def snapshot_name(prefix: str, node: str, now: float | None = None) -> str:
    """k3s's file name: ``<name>-<node>-<unix seconds>``."""
    return f"{prefix}-{node}-{int(time.time() if now is None else now)}"


def list_snapshots(directory: Path) -> list[SnapshotFile]:
    """The snapshots in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    out = []
    for p in directory.iterdir():
        if not p.is_file() or p.name.endswith(".part") or p.name.startswith("."):
            continue
        st = p.stat()
        out.append(SnapshotFile(p.name, p, st.st_size, st.st_mtime))
    return sorted(out, key=lambda s: (s.created, s.name))


def prune(directory: Path, name_prefix: str, retention: int) -> list[SnapshotFile]:
    """Delete all but the ``retention`` newest snapshots whose name starts with
    ``<name_prefix>-`` (k3s prunes per name); the deleted ones."""
    mine = [s for s in list_snapshots(directory) if s.name.startswith(f"{name_prefix}-")]
    doomed = mine[: max(0, len(mine) - max(retention, 1))]
    for s in doomed:
        s.path.unlink(missing_ok=True)
    return doomed
