"""The embedded store: etcd v3 semantics on one SQLite file, kine's model.

Every write is an INSERT into one append-only ``log`` table whose row id is the global
revision. A row is a key's state as of that revision: ``created`` marks the first row of a
key's life, ``deleted`` a tombstone, ``prev_revision`` the row it supersedes, and
``old_value`` the value it replaced, so that a watch replaying history can hand out the
previous value without a join. ``UNIQUE(name, prev_revision)`` makes compare-and-swap
race-free even against another process writing the same file: two writers that read the
same latest row cannot both insert on top of it.

Why the shape of this module:

* One writer thread owns the write connection. Writes queue up; the thread drains the
  queue and commits what it found in one transaction (group commit), so 50 concurrent
  writers share one fsync instead of paying 50. A write is acknowledged only after its
  commit returned, so a crash (SIGKILL) loses nothing that was acknowledged.
* Reads run on a small thread pool, each thread with its own connection; WAL mode lets
  them read a consistent snapshot while the writer commits. A read that was cheap the
  last time (per kind of read and key range: a get, a namespace's Events) runs on the
  event loop's own connection instead. Its thread hop costs more than the read: the
  pool's future, the loop's wake-up and the task's resumption are each a turn of the loop
  behind every other ready request, and the reader thread waits for the GIL on every step
  while the loop is busy. Under 500 clients that made a 0.3 ms list of 20 Events hold its
  in-flight slot for 200-800 ms; inline, the request runs in one step.
* After a commit the writer hands the committed events to the event loop, which fans
  them out to this process's watchers directly: no polling. A watch from an old revision
  replays the log from the table first, then continues with live events; the switch-over
  revision is fixed when the watch registers, so there is no gap and no duplicate.
* TTL keys carry their absolute expiry; an expiry task deletes them when it passes
  (and finds leftovers from before a restart when the store opens). Until then it keeps
  16 bytes per TTL write (:class:`_Expiries`): Events live an hour, so an API server
  writing 25 Events/s keeps ~90,000 of them, where a heap of (time, key, revision) tuples
  took ~240 B each (tracemalloc): ~0.35 MiB more every minute of the first hour.
* A lock file (flock) keeps a second process from serving the same database; the
  second one gets a clear :class:`Unavailable` instead of a split brain.
* Unless the stores are *shared* (``shared=True``, :class:`_Peers`): the API server's
  worker processes (``--apiserver-workers``) each open the file so, as several API
  servers share one etcd. Then a write takes a second lock file around its transaction
  (a blocked flock wakes the moment it is free; SQLite's own busy handler would sleep
  1-100 ms), the row ids stay the one revision sequence (the transactions are serialised),
  and after each commit the writer wakes every other process's store with a datagram.
  A store hands its watchers the log in revision order: what other processes committed
  is read from the table (on a wake, when its own write lands after a gap, and when a
  consistent read asks the current revision), so every watch in every process sees every
  write once, in order.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import fcntl
import hashlib
import logging
import os
import queue
import socket
import sqlite3
import threading
import time
from array import array
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pyk8s.storage._types import (
    AlreadyExists,
    Compacted,
    Conflict,
    Event,
    EventType,
    FutureRevision,
    KeyValue,
    ListResult,
    NotFound,
    StoreError,
    Unavailable,
    Watch,
    prefix_end,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT    NOT NULL,
    created         INTEGER NOT NULL,
    deleted         INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision   INTEGER NOT NULL,
    lease           INTEGER NOT NULL,
    expires_at      REAL    NOT NULL,
    value           BLOB,
    old_value       BLOB
);
CREATE INDEX IF NOT EXISTS log_name_id ON log (name, id);
CREATE UNIQUE INDEX IF NOT EXISTS log_name_prev_revision ON log (name, prev_revision);
CREATE INDEX IF NOT EXISTS log_expires ON log (expires_at) WHERE expires_at > 0;
CREATE INDEX IF NOT EXISTS log_tombstones ON log (name, id) WHERE deleted = 1;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_COLUMNS = "id, name, created, deleted, create_revision, prev_revision, lease, value, old_value"
_COLUMNS_OF_LOG = ", ".join(f"log.{c}" for c in _COLUMNS.split(", "))

#: The latest row of every key in [start, end) at revision <= ?; the caller filters tombstones.
_LATEST = """
SELECT {cols} FROM log WHERE id IN (
    SELECT MAX(id) FROM log WHERE name >= ? AND name < ? AND id <= ? GROUP BY name
) AND deleted = 0
"""

#: The latest rows (tombstones included) of the first ? keys from a start key on, at
#: revision <= ?, in key order: the grouping walks the (name, ...) index and stops at the
#: limit, where _LATEST groups every key of the range before ordering and cutting.
_PAGE = """
SELECT {cols} FROM (
    SELECT MAX(id) AS latest FROM log WHERE name {op} ? AND name < ? AND id <= ?
    GROUP BY name ORDER BY name LIMIT ?
) JOIN log ON log.id = latest ORDER BY log.name
"""
#: Live keys after a key at revision <= ?: the keys with a row there, less those whose
#: latest row is a tombstone (few: compaction drops them; a partial index finds them).
_KEYS_AFTER = "SELECT COUNT(DISTINCT name) FROM log WHERE name > ? AND name < ? AND id <= ?"
_TOMBSTONES_AFTER = """
SELECT COUNT(*) FROM log AS t WHERE t.deleted = 1 AND t.name > ? AND t.name < ? AND t.id <= ?
AND NOT EXISTS (SELECT 1 FROM log AS n WHERE n.name = t.name AND n.id > t.id AND n.id <= ?)
"""

_REMAINING_KEPT = 1024

_MAX_BATCH = 256
_REPLAY_PAGE = 1000

#: a read whose kind and range cost at most this much CPU in one of its last two reads
#: runs on the event loop (it blocks the loop that long; a read on a thread costs several
#: loop turns); two, so that one garbage collection during a read does not send the
#: reads of its range, all that come until a thread has read it again, to the threads
_INLINE_SECONDS = 0.002
#: how many kinds and ranges of reads :attr:`SqliteStore._read_cost` remembers
_READ_COSTS_KEPT = 4096
#: the cost of a read never seen: on a thread
_UNSEEN = (float("inf"), float("inf"))


@dataclass(frozen=True, slots=True)
class _Row:
    id: int
    name: str
    created: bool
    deleted: bool
    create_revision: int
    prev_revision: int
    lease: int
    value: bytes | None
    old_value: bytes | None

    @staticmethod
    def of(t: tuple[Any, ...]) -> _Row:
        return _Row(t[0], t[1], bool(t[2]), bool(t[3]), t[4], t[5], t[6], t[7], t[8])

    @property
    def kv(self) -> KeyValue:
        create = self.id if self.created else self.create_revision
        return KeyValue(self.name, self.value or b"", create, self.id, self.lease)

    @property
    def prev_kv(self) -> KeyValue | None:
        if self.created:
            return None
        return KeyValue(self.name, self.old_value or b"", self.create_revision, self.prev_revision)

    def event(self) -> Event:
        if self.deleted:
            kv = KeyValue(self.name, b"", self.create_revision, self.id)
            return Event(EventType.DELETE, kv, self.prev_kv)
        return Event(EventType.PUT, self.kv, self.prev_kv)


def _unavailable(path: Path, err: sqlite3.Error) -> Unavailable:
    msg = str(err)
    if "locked" in msg or "busy" in msg:
        return Unavailable(f"sqlite database {path} is locked by another process: {msg}")
    if isinstance(err, sqlite3.DatabaseError) and (
        "not a database" in msg or "malformed" in msg or "corrupt" in msg
    ):
        return Unavailable(f"sqlite database {path} is corrupt or not a database: {msg}")
    return Unavailable(f"sqlite database {path}: {msg}")


def _connect(path: Path, *, synchronous: str, busy_timeout_ms: int) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    return conn


_Op = Callable[[sqlite3.Connection], tuple[Any, list[_Row]]]


class _Busy(Exception):
    """A read on the event loop met a lock (it never waits: the read moves to a thread)."""


@dataclass(slots=True)
class _Pending:
    op: _Op
    future: asyncio.Future[Any]


class _Expiries:
    """When each TTL write expires: its revision and expiry time, 16 bytes each.

    Writes with one TTL expire in the order they were written, so each TTL has a FIFO of
    two arrays (time, revision) instead of a heap of tuples; the next to expire is the
    earliest head. A store has few TTLs (Events' hour). Should the wall clock step back, a
    write can expire up to that step late, never early. The key is read back by revision
    when its time comes.
    """

    def __init__(self) -> None:
        #: ttl -> (expiry times, revisions, index of the head)
        self._fifos: dict[int, tuple[array[float], array[int], list[int]]] = {}

    def __len__(self) -> int:
        return sum(len(times) - head[0] for times, _, head in self._fifos.values())

    def push(self, ttl: int, expires_at: float, revision: int) -> None:
        fifo = self._fifos.get(ttl)
        if fifo is None:
            fifo = self._fifos[ttl] = (array("d"), array("q"), [0])
        fifo[0].append(expires_at)
        fifo[1].append(revision)

    def load(self, rows: Iterable[tuple[float, int]]) -> None:
        """Expiries found in the table (any TTL), as one FIFO in time order."""
        for expires_at, revision in sorted(rows):
            self.push(-1, expires_at, revision)

    def next_at(self) -> float | None:
        """The earliest expiry time, or None when nothing is waiting."""
        heads = [times[head[0]] for times, _, head in self._fifos.values()]
        return min(heads) if heads else None

    def pop_due(self, now: float) -> builtins.list[int]:
        """The revisions whose expiry time is at or before ``now``, taken out."""
        due: builtins.list[int] = []
        for ttl, (times, revisions, head) in builtins.list(self._fifos.items()):
            i = head[0]
            while i < len(times) and times[i] <= now:
                due.append(revisions[i])
                i += 1
            if i == len(times):
                del self._fifos[ttl]
            elif i > 1024 and i * 2 > len(times):
                del times[:i], revisions[:i]  # drop what has expired, now and then
                head[0] = 0
            else:
                head[0] = i
        return due


#: how often a shared store reads the table for other processes' writes when no wake came
#: (a lost datagram, a peer that started after a writer last listed the peers)
_POLL_SECONDS = 0.5


class _Peers:
    """The shared stores of one database file, and the wake-ups between them.

    Each binds an abstract Unix datagram socket named after the database's path and a
    token of its own, and leaves a file named after the token in ``<database>.peers/``. A
    writer lists that directory (again only when it changed) and sends every other store
    an empty datagram after each commit; a peer whose socket is gone (its process died)
    has its file removed by the first writer that finds out. Abstract sockets leave
    nothing behind on disk and have no path-length limit to meet in a deep data dir.
    """

    def __init__(self, db: Path) -> None:
        self.dir = db.with_name(db.name + ".peers")
        digest = hashlib.sha256(str(db.resolve()).encode()).hexdigest()[:16]
        self._prefix = f"\0pyk8s-sqlite-{digest}-"
        self.token = f"{os.getpid()}-{os.urandom(4).hex()}"
        kind = socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
        self.inbox = socket.socket(socket.AF_UNIX, kind)
        self.inbox.bind(self._prefix + self.token)
        self._outbox = socket.socket(socket.AF_UNIX, kind)
        self.dir.mkdir(exist_ok=True)
        (self.dir / self.token).touch()
        self._listed: int | None = None  # the directory's mtime when last listed
        self._others: builtins.list[str] = []

    def wake_others(self) -> None:
        """Called by the writer thread after a commit."""
        with contextlib.suppress(FileNotFoundError):
            changed = os.stat(self.dir).st_mtime_ns
            if changed != self._listed:
                self._listed = changed
                self._others = [n for n in os.listdir(self.dir) if n != self.token]
        for name in self._others:
            try:
                self._outbox.sendto(b"", self._prefix + name)
            except BlockingIOError:
                pass  # wakes it has not read yet are queued: it reads the table anyway
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.dir / name)  # nobody listens there any more

    def drain(self) -> None:
        """Read every queued wake (one read of the table answers them all)."""
        with contextlib.suppress(BlockingIOError):
            while True:
                self.inbox.recv(1)

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.dir / self.token)
        self.inbox.close()
        self._outbox.close()


class SqliteStore:
    """A :class:`~pyk8s.storage.Store` on one SQLite file. Use :meth:`open`."""

    #: :meth:`current_revision` answers without suspending: from memory (the lock file
    #: makes this process the database's only writer) or, shared, with one query on the
    #: event loop; a consistent read may await it inline
    revision_in_memory = True

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 2000,
        read_threads: int = 2,
        shared: bool = False,
    ) -> None:
        self.path = path
        #: other processes' shared stores may write the file too (the module's last point)
        self.shared = shared
        self._peers: _Peers | None = None
        #: shared: held (flock) around every write transaction, by one process at a time
        self._write_lock_fd: int | None = None
        #: shared: the event loop's connection for reading other processes' writes
        self._tail_conn: sqlite3.Connection | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock_fd: int | None = None
        self._writer: threading.Thread | None = None
        self._write_queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._readers = ThreadPoolExecutor(read_threads, thread_name_prefix="sqlite-read")
        self._local = threading.local()
        self._read_conns: builtins.list[sqlite3.Connection] = []
        self._read_conns_lock = threading.Lock()
        #: the event loop's own read connection (reads that were cheap: :meth:`_read`)
        self._inline_conn: sqlite3.Connection | None = None
        #: CPU seconds the last two reads of a kind and range took (its ``shape``)
        self._read_cost: dict[tuple[str, ...], tuple[float, float]] = {}
        self._watchers: set[_SqliteWatch] = set()
        #: the latest revision whose events were handed to watchers (event-loop side)
        self._dispatched = 0
        self._compacted = 0
        #: (range end, revision, last key of a page) -> live keys after it: a paginated
        #: walk at one revision counts the rest once, not once per page
        self._remaining: dict[tuple[str, int, str], int] = {}
        self._expiry = _Expiries()
        self._expiry_wake = asyncio.Event()
        self._expiry_task: asyncio.Task[None] | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(cls, path: str | os.PathLike[str], **kwargs: Any) -> SqliteStore:
        store = cls(Path(path), **kwargs)
        await store._open()
        return store

    async def _open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            await asyncio.to_thread(self._init_schema)
            self._dispatched, self._compacted = await self._read(self._revisions)
            self._expiry.load((at, rev) for at, _, rev in await self._read(self._expiring))
        except BaseException:
            self._release_lock()
            raise
        if self.shared:
            self._share()
        self._writer = threading.Thread(target=self._write_loop, name="sqlite-write", daemon=True)
        self._writer.start()
        self._expiry_task = asyncio.create_task(self._expire_loop(), name="sqlite-expiry")

    def _share(self) -> None:
        assert self._loop is not None
        write_lock = self.path.with_name(self.path.name + ".write-lock")
        self._write_lock_fd = os.open(write_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._peers = _Peers(self.path)
        self._loop.add_reader(self._peers.inbox.fileno(), self._woken)
        self._poll_task = asyncio.create_task(self._poll_loop(), name="sqlite-poll")
        self._catch_up()  # what was written between reading the revision and listening

    def _take_lock(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # shared stores share the lock; a store of its own needs it alone
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            how = "shared" if self.shared else "alone"
            raise Unavailable(
                f"sqlite database {self.path} is in use by another process (lock {lock_path};"
                f" this store asked to use it {how})"
            ) from None
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _init_schema(self) -> None:
        try:
            conn = _connect(
                self.path, synchronous=self._synchronous, busy_timeout_ms=self._busy_timeout_ms
            )
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise Unavailable(f"sqlite database {self.path}: cannot enable WAL ({mode})")
                conn.executescript(_SCHEMA)
                conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('compact', 0)")
            finally:
                conn.close()
        except sqlite3.Error as err:
            raise _unavailable(self.path, err) from err

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in (self._expiry_task, self._poll_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._writer:
            self._write_queue.put(None)
            await asyncio.to_thread(self._writer.join)
        if self._peers is not None:  # after the writer, which wakes them
            assert self._loop is not None
            self._loop.remove_reader(self._peers.inbox.fileno())
            self._peers.close()
        for w in list(self._watchers):
            w.end(None)
        self._readers.shutdown(wait=True)
        with self._read_conns_lock:
            for conn in self._read_conns:
                conn.close()
            self._read_conns.clear()
        if self._tail_conn is not None:
            self._tail_conn.close()
        if self._write_lock_fd is not None:
            os.close(self._write_lock_fd)
        self._release_lock()

    # ------------------------------------------------------------------ reads

    def _read_conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(
                self.path, synchronous=self._synchronous, busy_timeout_ms=self._busy_timeout_ms
            )
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
            with self._read_conns_lock:
                self._read_conns.append(conn)
        return conn

    async def _read(self, fn: Callable[[sqlite3.Connection], T], shape: tuple[str, ...] = ()) -> T:
        """``fn`` in a read transaction. A read with a ``shape`` (its kind and key range)
        runs on the event loop when one of the last two of that shape took at most
        ``_INLINE_SECONDS`` of CPU, otherwise (and the first time) on a reader thread."""
        if self._closed:
            raise Unavailable("store is closed")
        if shape and min(self._read_cost.get(shape, _UNSEEN)) <= _INLINE_SECONDS:
            try:
                return self._read_inline(fn, shape)
            except _Busy:
                pass  # the loop never waits for a lock: a thread does

        def run() -> T:
            conn = self._read_conn()
            started = time.thread_time()  # the read's own work, not its waits for the GIL
            try:
                conn.execute("BEGIN")
                try:
                    return fn(conn)
                finally:
                    conn.execute("COMMIT")
                    if shape:
                        self._remember_cost(shape, time.thread_time() - started)
            except sqlite3.Error as err:
                raise _unavailable(self.path, err) from err

        return await asyncio.get_running_loop().run_in_executor(self._readers, run)

    def _read_inline(self, fn: Callable[[sqlite3.Connection], T], shape: tuple[str, ...]) -> T:
        """``fn`` on the event loop's connection; :class:`_Busy` if SQLite would wait for
        a lock (rare in WAL mode: recovery, a foreign exclusive lock)."""
        conn = self._inline_conn
        if conn is None:
            conn = _connect(self.path, synchronous=self._synchronous, busy_timeout_ms=0)
            conn.execute("PRAGMA query_only = ON")
            with self._read_conns_lock:
                self._read_conns.append(conn)
            self._inline_conn = conn
        started = time.thread_time()  # its work: a wait for the GIL says nothing of its size
        try:
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")
                self._remember_cost(shape, time.thread_time() - started)
        except sqlite3.OperationalError as err:
            if "locked" in str(err) or "busy" in str(err):
                raise _Busy from err
            raise _unavailable(self.path, err) from err
        except sqlite3.Error as err:
            raise _unavailable(self.path, err) from err

    def _remember_cost(self, shape: tuple[str, ...], seconds: float) -> None:
        if len(self._read_cost) >= _READ_COSTS_KEPT:
            self._read_cost.clear()
        self._read_cost[shape] = (seconds, self._read_cost.get(shape, _UNSEEN)[0])

    @staticmethod
    def _revisions(conn: sqlite3.Connection) -> tuple[int, int]:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'log'").fetchone()
        (compacted,) = conn.execute("SELECT value FROM meta WHERE key = 'compact'").fetchone()
        return (row[0] if row else 0), compacted

    @staticmethod
    def _expiring(conn: sqlite3.Connection) -> builtins.list[tuple[float, str, int]]:
        rows = conn.execute(
            "SELECT l.expires_at, l.name, l.id FROM log l WHERE l.expires_at > 0 AND l.deleted = 0"
            " AND l.id = (SELECT MAX(id) FROM log WHERE name = l.name)"
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def _check_revision(self, conn: sqlite3.Connection, revision: int) -> int:
        current, compacted = self._revisions(conn)
        if revision == 0:
            return current
        if revision > current:
            raise FutureRevision(revision, current)
        if revision < compacted:
            raise Compacted(revision, compacted)
        return revision

    async def get(self, key: str, revision: int = 0) -> KeyValue:
        def run(conn: sqlite3.Connection) -> KeyValue:
            rev = self._check_revision(conn, revision)
            t = conn.execute(
                f"SELECT {_COLUMNS} FROM log WHERE name = ? AND id <= ? ORDER BY id DESC LIMIT 1",
                (key, rev),
            ).fetchone()
            if t is None or t[3]:
                raise NotFound(key)
            return _Row.of(t).kv

        return await self._read(run, ("get",))

    async def list(
        self, prefix: str, *, limit: int = 0, start: str = "", revision: int = 0
    ) -> ListResult:
        end = prefix_end(prefix)
        begin = max(prefix, start)

        def run(conn: sqlite3.Connection) -> ListResult:
            rev = self._check_revision(conn, revision)
            if limit <= 0:
                sql = _LATEST.format(cols=_COLUMNS) + " ORDER BY name"
                return ListResult(
                    [_Row.of(t).kv for t in conn.execute(sql, (begin, end, rev))], rev
                )
            # a page costs its own keys, not the whole range (10,000 pods: ~50x less)
            kvs: list[KeyValue] = []
            cursor, op = begin, ">="
            while len(kvs) < limit:
                want = limit - len(kvs)
                rows = [
                    _Row.of(t)
                    for t in conn.execute(
                        _PAGE.format(cols=_COLUMNS_OF_LOG, op=op), (cursor, end, rev, want)
                    )
                ]
                kvs.extend(r.kv for r in rows if not r.deleted)
                if len(rows) < want:
                    break  # the range is exhausted
                cursor, op = rows[-1].name, ">"
            remaining = 0
            if len(kvs) == limit:
                last = kvs[-1].key
                # a revision is an immutable snapshot: the count after the page before
                # (a continue starts just past its last key) less this page is exact
                after = start[:-1] if start.endswith("\x00") else None
                before = None if after is None else self._remaining.get((end, rev, after))
                known = self._remaining.get((end, rev, last))  # the same page again
                if known is not None:
                    remaining = known
                elif before is not None:
                    remaining = before - len(kvs)
                else:
                    (keys,) = conn.execute(_KEYS_AFTER, (last, end, rev)).fetchone()
                    (dead,) = conn.execute(_TOMBSTONES_AFTER, (last, end, rev, rev)).fetchone()
                    remaining = int(keys) - int(dead)
                if len(self._remaining) >= _REMAINING_KEPT:
                    self._remaining.clear()
                self._remaining[(end, rev, last)] = remaining
            return ListResult(kvs, rev, remaining)

        return await self._read(run, ("list", prefix, str(limit)))

    async def count(self, prefix: str) -> int:
        end = prefix_end(prefix)

        def run(conn: sqlite3.Connection) -> int:
            rev, _ = self._revisions(conn)
            (n,) = conn.execute(_LATEST.format(cols="COUNT(*)"), (prefix, end, rev)).fetchone()
            return int(n)

        return await self._read(run, ("count", prefix))

    async def current_revision(self) -> int:
        """The revision of the last write acknowledged (its events handed out first): the
        lock file makes this process the database's only user, so no write can be newer
        than what it acknowledged. Answered without a read, as consistent lists ask it
        per request (a thread hop each). A shared store reads the table first and hands
        out what other processes wrote up to now (one query on the event loop)."""
        if self._closed:
            raise Unavailable("store is closed")
        if self.shared:
            self._catch_up(raising=True)
        return self._dispatched

    async def compacted_revision(self) -> int:
        """The revision compacted to (by any process: a shared store reads the table)."""
        if self._closed:
            raise Unavailable("store is closed")
        if self.shared:
            self._catch_up(raising=True)
        return self._compacted

    # ------------------------------------------------------------------ writes

    async def _write(self, op: _Op) -> Any:
        if self._closed:
            raise Unavailable("store is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._write_queue.put(_Pending(op, future))
        return await future

    def _write_loop(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            conn = _connect(
                self.path, synchronous=self._synchronous, busy_timeout_ms=self._busy_timeout_ms
            )
            while True:
                first = self._write_queue.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < _MAX_BATCH:
                    try:
                        nxt = self._write_queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    batch.append(nxt)
                self._commit_batch(conn, batch)
                if stop:
                    return
        finally:
            if conn is not None:
                conn.close()

    def _commit_batch(self, conn: sqlite3.Connection, batch: builtins.list[_Pending]) -> None:
        if self._write_lock_fd is None:
            outcomes, rows = self._transact(conn, batch)
        else:
            fcntl.flock(self._write_lock_fd, fcntl.LOCK_EX)  # other processes' writers wait
            try:
                outcomes, rows = self._transact(conn, batch)
            finally:
                fcntl.flock(self._write_lock_fd, fcntl.LOCK_UN)
            if rows:
                assert self._peers is not None
                self._peers.wake_others()  # before the acknowledgements: they read it sooner
        assert self._loop is not None
        events = [r.event() for r in rows]
        expiries = [(r.kv, r.lease) for r in rows if r.lease and not r.deleted]
        # RuntimeError: the loop closed under us, so nobody is waiting any more
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._complete, batch, outcomes, events, expiries)

    def _transact(
        self, conn: sqlite3.Connection, batch: builtins.list[_Pending]
    ) -> tuple[builtins.list[tuple[bool, Any]], builtins.list[_Row]]:
        """The batch's writes in one transaction: each one's outcome, and the rows written."""
        outcomes: builtins.list[tuple[bool, Any]] = []
        rows: builtins.list[_Row] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for p in batch:
                    try:
                        result, new_rows = p.op(conn)
                    except StoreError as err:
                        outcomes.append((False, err))
                    else:
                        outcomes.append((True, result))
                        rows.extend(new_rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.IntegrityError as err:
            # Only another process writing the same file can make this happen: we hold
            # the write lock for the whole batch. Fail the batch; nothing was written.
            error: StoreError = Unavailable(f"concurrent writer on {self.path}: {err}")
            return [(False, error)] * len(batch), []
        except sqlite3.Error as err:
            return [(False, _unavailable(self.path, err))] * len(batch), []
        except Exception as err:  # a bug in an op: fail its batch, keep the writer alive
            log.exception("sqlite write batch failed")
            return [(False, err)] * len(batch), []
        return outcomes, rows

    def _complete(
        self,
        batch: builtins.list[_Pending],
        outcomes: builtins.list[tuple[bool, Any]],
        events: builtins.list[Event],
        expiries: builtins.list[tuple[KeyValue, int]],
    ) -> None:
        """On the event loop: fan events out, then acknowledge the writers."""
        if self.shared:
            events = self._in_order(events)
        if events:
            self._dispatch(events)
        now = time.time()
        for kv, ttl in expiries:
            self._expiry.push(ttl, now + ttl, kv.mod_revision)
            self._expiry_wake.set()
        for p, (ok, value) in zip(batch, outcomes, strict=True):
            if p.future.done():
                continue
            if ok:
                p.future.set_result(value)
            else:
                p.future.set_exception(value)

    def _dispatch(self, events: builtins.list[Event]) -> None:
        """Hand the next events of the log (in order, none missing) to every watcher."""
        self._dispatched = events[-1].revision
        for w in self._watchers:
            w.offer(events)

    # ------------------------------------------------------------------ shared stores

    def _in_order(self, events: builtins.list[Event]) -> builtins.list[Event]:
        """This process's committed events, preceded by what other processes committed
        before them and this one has not handed out yet (read from the table); less what
        a read of the table already handed out. Empty when that read fails: the next read
        of the table (a wake, the poll) hands them out then, still in order."""
        fresh = [ev for ev in events if ev.revision > self._dispatched]
        if not fresh or fresh[0].revision == self._dispatched + 1:
            return fresh
        try:
            return self._tail(until=fresh[0].revision - 1) + fresh
        except Unavailable:
            log.warning("reading other processes' writes failed", exc_info=True)
            return []

    def _tail(self, until: int | None = None) -> builtins.list[Event]:
        """The log after what this store handed out (up to ``until``), read on the event
        loop: one indexed query, usually a few rows."""
        conn = self._tail_conn
        if conn is None:
            conn = self._tail_conn = _connect(
                self.path, synchronous=self._synchronous, busy_timeout_ms=self._busy_timeout_ms
            )
            conn.execute("PRAGMA query_only = ON")
        try:
            conn.execute("BEGIN")
            try:
                if until is None:
                    sql = f"SELECT {_COLUMNS} FROM log WHERE id > ? ORDER BY id"
                    rows = conn.execute(sql, (self._dispatched,)).fetchall()
                else:
                    sql = f"SELECT {_COLUMNS} FROM log WHERE id > ? AND id <= ? ORDER BY id"
                    rows = conn.execute(sql, (self._dispatched, until)).fetchall()
                (compacted,) = conn.execute(
                    "SELECT value FROM meta WHERE key = 'compact'"
                ).fetchone()
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as err:
            raise _unavailable(self.path, err) from err
        self._compacted = max(self._compacted, compacted)
        return [_Row.of(t).event() for t in rows]

    def _catch_up(self, *, raising: bool = False) -> None:
        """Hand out every write committed so far, whoever wrote it."""
        try:
            events = self._tail()
        except Unavailable:
            if raising:
                raise
            log.warning("reading other processes' writes failed", exc_info=True)
            return
        if events:
            self._dispatch(events)

    def _woken(self) -> None:
        """Another process committed (its writer's datagram)."""
        assert self._peers is not None
        self._peers.drain()
        self._catch_up()

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(_POLL_SECONDS)
            self._catch_up()

    @staticmethod
    def _latest(conn: sqlite3.Connection, key: str) -> _Row | None:
        t = conn.execute(
            f"SELECT {_COLUMNS} FROM log WHERE name = ? ORDER BY id DESC LIMIT 1", (key,)
        ).fetchone()
        return _Row.of(t) if t else None

    @staticmethod
    def _insert(conn: sqlite3.Connection, row: _Row, expires_at: float) -> _Row:
        cur = conn.execute(
            "INSERT INTO log (name, created, deleted, create_revision, prev_revision, lease,"
            " expires_at, value, old_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.name,
                row.created,
                row.deleted,
                row.create_revision,
                row.prev_revision,
                row.lease,
                expires_at,
                row.value,
                row.old_value,
            ),
        )
        assert cur.lastrowid is not None
        return _Row(
            cur.lastrowid,
            row.name,
            row.created,
            row.deleted,
            row.create_revision,
            row.prev_revision,
            row.lease,
            row.value,
            row.old_value,
        )

    async def create(self, key: str, value: bytes, *, ttl: int = 0) -> KeyValue:
        def op(conn: sqlite3.Connection) -> tuple[KeyValue, builtins.list[_Row]]:
            latest = self._latest(conn, key)
            if latest is not None and not latest.deleted:
                raise AlreadyExists(key)
            prev = latest.id if latest else 0
            row = _Row(0, key, True, False, 0, prev, ttl, value, None)
            row = self._insert(conn, row, time.time() + ttl if ttl else 0.0)
            return row.kv, [row]

        result: KeyValue = await self._write(op)
        return result

    async def update(
        self, key: str, value: bytes, *, expected_revision: int, ttl: int = 0
    ) -> KeyValue:
        def op(conn: sqlite3.Connection) -> tuple[KeyValue, builtins.list[_Row]]:
            latest = self._latest(conn, key)
            if latest is None or latest.deleted:
                raise NotFound(key)
            if latest.id != expected_revision:
                raise Conflict(key, expected_revision, latest.kv)
            row = _Row(
                0,
                key,
                False,
                False,
                latest.kv.create_revision,
                latest.id,
                ttl,
                value,
                latest.value,
            )
            row = self._insert(conn, row, time.time() + ttl if ttl else 0.0)
            return row.kv, [row]

        result: KeyValue = await self._write(op)
        return result

    async def delete(self, key: str, *, expected_revision: int = 0) -> KeyValue:
        def op(conn: sqlite3.Connection) -> tuple[KeyValue, builtins.list[_Row]]:
            latest = self._latest(conn, key)
            if latest is None or latest.deleted:
                raise NotFound(key)
            if expected_revision and latest.id != expected_revision:
                raise Conflict(key, expected_revision, latest.kv)
            row = _Row(
                0, key, False, True, latest.kv.create_revision, latest.id, 0, None, latest.value
            )
            row = self._insert(conn, row, 0.0)
            return latest.kv, [row]

        result: KeyValue = await self._write(op)
        return result

    async def compact(self, revision: int) -> None:
        def op(conn: sqlite3.Connection) -> tuple[None, builtins.list[_Row]]:
            current, compacted = self._revisions(conn)
            if revision > current:
                raise FutureRevision(revision, current)
            if revision <= compacted:
                return None, []
            # A row below the target is dropped when a later row of its key at or below
            # the target supersedes it, or when it is a tombstone. Every read at or above
            # the target and every event at or above it stay answerable.
            conn.execute(
                "DELETE FROM log WHERE id < ?1 AND (deleted = 1 OR EXISTS ("
                " SELECT 1 FROM log AS n WHERE n.name = log.name AND n.id > log.id"
                " AND n.id <= ?1))",
                (revision,),
            )
            conn.execute("UPDATE meta SET value = ? WHERE key = 'compact'", (revision,))
            return None, []

        await self._write(op)
        self._compacted = max(self._compacted, revision)

    # ------------------------------------------------------------------ TTL

    @staticmethod
    def _names_at(revs: builtins.list[int]) -> Callable[[sqlite3.Connection], dict[int, str]]:
        def run(conn: sqlite3.Connection) -> dict[int, str]:
            names: dict[int, str] = {}
            for i in range(0, len(revs), 500):
                chunk = revs[i : i + 500]
                marks = ", ".join("?" * len(chunk))
                sql = f"SELECT id, name FROM log WHERE id IN ({marks})"
                names.update(conn.execute(sql, chunk).fetchall())
            return names

        return run

    async def _expire_loop(self) -> None:
        while True:
            due = self._expiry.pop_due(time.time())
            names = await self._read(self._names_at(due)) if due else {}
            for rev in due:
                key = names.get(rev)
                if key is None:
                    continue  # compacted away: the key was written again since
                with contextlib.suppress(NotFound, Conflict):
                    await self.delete(key, expected_revision=rev)
            self._expiry_wake.clear()
            next_at = self._expiry.next_at()
            timeout = None if next_at is None else next_at - time.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._expiry_wake.wait(), timeout)

    # ------------------------------------------------------------------ watch

    async def watch(self, prefix: str, *, after: int | None = None) -> Watch:
        if self._closed:
            raise Unavailable("store is closed")
        if self.shared:  # "from now" means after every write acknowledged to anyone
            self._catch_up(raising=True)
        current = self._dispatched
        if after is None:
            after = current
        if after > current:
            # A write may be committed but not yet dispatched; only the table knows.
            stored, _ = await self._read(self._revisions)
            if after > stored:
                raise FutureRevision(after, stored)
            current = self._dispatched
        if after + 1 < self._compacted:
            raise Compacted(after, self._compacted)
        w = _SqliteWatch(self, prefix, after, replay_until=max(current, after))
        self._watchers.add(w)
        return w

    def _replay_page(
        self, prefix: str, after: int, until: int
    ) -> Callable[[sqlite3.Connection], builtins.list[Event]]:
        end = prefix_end(prefix)

        def run(conn: sqlite3.Connection) -> builtins.list[Event]:
            _, compacted = self._revisions(conn)
            if after + 1 < compacted:
                raise Compacted(after, compacted)
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM log WHERE id > ? AND id <= ? AND name >= ? AND name < ?"
                " ORDER BY id LIMIT ?",
                (after, until, prefix, end, _REPLAY_PAGE),
            ).fetchall()
            return [_Row.of(t).event() for t in rows]

        return run


class _SqliteWatch(Watch):
    """Replays ``(after, replay_until]`` from the table, then hands out live events."""

    def __init__(self, store: SqliteStore, prefix: str, after: int, replay_until: int) -> None:
        self._store = store
        self._prefix = prefix
        self._position = after
        self._replay_until = replay_until
        self._replayed: list[Event] = []
        self._live: asyncio.Queue[Event | None] = asyncio.Queue()
        self._error: StoreError | None = None
        self._done = False

    def offer(self, events: list[Event]) -> None:
        for ev in events:
            if ev.revision > self._replay_until and ev.kv.key.startswith(self._prefix):
                self._live.put_nowait(ev)

    def end(self, error: StoreError | None) -> None:
        self._error = error
        self._live.put_nowait(None)

    def take_ready(self) -> tuple[builtins.list[Event], int]:
        """Live events already offered (none while the replay is unfinished: they follow
        it), and the revision of the last write handed out: every write is offered to
        every watch, so nothing under the prefix up to it is missing (writes outside it,
        such as the API servers' ``/masterleases/``, move it on too). A reader parked in
        :meth:`__anext__` finds the queue empty and waits on."""
        out: builtins.list[Event] = []
        if self._done or self._replayed or self._position < self._replay_until:
            return out, 0
        while not self._live.empty():
            ev = self._live.get_nowait()
            if ev is None:  # the end stays for the reader (nothing is offered after it)
                self._live.put_nowait(None)
                return out, 0
            out.append(ev)
        return out, self._store._dispatched

    async def __anext__(self) -> Event:
        if self._done:
            raise StopAsyncIteration
        while not self._replayed and self._position < self._replay_until:
            page = await self._store._read(
                self._store._replay_page(self._prefix, self._position, self._replay_until),
                ("replay", self._prefix),
            )
            if not page:
                self._position = self._replay_until
                break
            self._replayed = page
            self._position = page[-1].revision
            self._replayed.reverse()
        if self._replayed:
            return self._replayed.pop()
        ev = await self._live.get()
        if ev is None:
            self._done = True
            self._store._watchers.discard(self)
            if self._error is not None:
                raise self._error
            raise StopAsyncIteration
        return ev

    async def close(self) -> None:
        self._done = True
        self._store._watchers.discard(self)
        self._live.put_nowait(None)
