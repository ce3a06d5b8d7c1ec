"""The watch cache: one store watch, fanned out to every list and watch request.

Upstream's API server does not scan etcd per LIST or open an etcd watch per client; it
keeps one watch per resource and serves from memory. We do the same with one watch on the
whole ``/registry/`` prefix:

* ``objects`` holds the latest state of every key as its JSON, with its
  ``resourceVersion`` filled in, so that a LIST of 10,000 pods joins ready-made bytes
  instead of encoding 10,000 dicts. Beside the bytes an entry keeps only what is read
  without decoding: its stored ``apiVersion`` and its skeleton, the parts selectors read
  (labels, the selectable fields: a kubelet's ``spec.nodeName=X`` watch of the pods filters
  on it). The decoded object is made on demand and the last few hundred are kept, so the
  consumers of one event decode it once. (Upstream's cacher keeps decoded objects with
  their labels and fields; in Python a decoded pod is four times its JSON, and the bytes
  are what a LIST and a watch send.)
* ``history`` keeps a window of recent events, so a client that re-watches from the
  resourceVersion of its last LIST gets exactly what it missed; a resourceVersion older
  than the window is answered with 410 Gone, as upstream does, and the client relists;
* ``wait_for(revision)`` lets a request that must be consistent (a LIST without a
  resourceVersion) wait until the cache has caught up with the store;
* each resource's keys are kept sorted, so a LIST is served in key order without a sort
  and a page (``?limit=``) is a slice: :meth:`WatchCache.page` serves paginated lists as
  upstream's cacher does (a consistent read, or ``resourceVersionMatch=NotOlderThan``),
  and a continue token at a revision after which its resource has not changed
  (:meth:`WatchCache.unchanged_since`), where the cache's state is the state at that
  revision;
* each resource's count of objects per stored ``apiVersion``
  (:meth:`WatchCache.single_version`), so a LIST of a resource whose objects are all at
  the version asked for joins their bytes without looking at each object.

Entries hold objects as stored. A resource served at several versions (autoscaling/v1
HPAs stored as v2, events.k8s.io Events stored as core ones) reads them through
:meth:`Entry.as_version`: an object already at the wanted version is the stored one and its
bytes; another is converted once per version and kept with the entry, so a hundred v1
watchers of one HPA convert it once.

Each client watch has a bounded buffer (:data:`WATCHER_BUFFER` events). A client that
stops reading (its socket full, its handler stuck writing) falls behind; once its buffer
is full the watch is terminated, as upstream's cacher does with an unresponsive watcher:
the stream ends, and the client re-watches from the last resourceVersion it saw (resumed
from ``history``, or 410 and a relist when that is gone). One slow client therefore
costs a bounded amount of memory and never holds up the events of the others.

Objects handed out are shared: callers must copy before changing them.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from pyk8s.api.conversion import convert
from pyk8s.api.goorder import set_resource_version
from pyk8s.storage import (
    Compacted,
    Event,
    EventType,
    KeyValue,
    Store,
    StoreError,
    Watch,
    next_start,
    prefix_end,
)

log = logging.getLogger(__name__)

JSON = dict[str, Any]
#: converts a stored object to the version a request asks for
Converter = Callable[[JSON, str], JSON]

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"

#: events one watch may have waiting for its client; a watch further behind is terminated
#: (the events are shared with the cache, so a full buffer costs pointers, not copies)
WATCHER_BUFFER = 4096


def encode(obj: JSON) -> bytes:
    """``obj``'s JSON, in a bytes object of its own size, to be kept: orjson's output
    keeps the whole buffer it wrote into (4 KiB for a 7-byte document, ~8 KiB for a
    1 KiB Event, ~60 KiB for 5 KiB), which the cache would hold for every object."""
    return memoryview(orjson.dumps(obj)).tobytes()


def decode(value: bytes, revision: int) -> tuple[JSON, bytes]:
    """A stored value as an object with its resourceVersion, and that object's JSON."""
    obj = set_resource_version(orjson.loads(value), str(revision))
    return obj, encode(obj)


#: the paths of an object that selectors read, as a tree (``True``: keep the value there):
#: ``apiVersion`` and ``kind`` (a filter picks the strategy of the stored version), the
#: name, namespace and labels, and every built-in resource's selectable fields
#: (:func:`pyk8s.api.selectors.field_values`). A filter that reads other paths (a custom
#: resource's ``selectableFields``) is a :class:`Selector` with ``whole=True``.
SELECTABLE_PATHS: dict[str, Any] = {
    "apiVersion": True,
    "kind": True,
    "metadata": {"name": True, "namespace": True, "labels": True},
    "spec": {
        "nodeName": True,
        "restartPolicy": True,
        "schedulerName": True,
        "serviceAccountName": True,
        "hostNetwork": True,
        "unschedulable": True,
        "clusterIP": True,
        "type": True,
    },
    "status": {
        "phase": True,
        "podIP": True,
        "podIPs": True,
        "nominatedNodeName": True,
        "replicas": True,
        "succeeded": True,
    },
    "type": True,
    "reason": True,
    "reportingComponent": True,
    "reportingController": True,
    "involvedObject": True,
    "regarding": True,
    "source": {"component": True},
    "deprecatedSource": {"component": True},
}


def skeleton(obj: JSON, paths: dict[str, Any] = SELECTABLE_PATHS) -> JSON:
    """The parts of ``obj`` at ``paths``: what a selector reads, without the rest (a pod's
    skeleton is a tenth of the decoded pod). Values are shared with ``obj``."""
    out: JSON = {}
    for name, sub in paths.items():
        if name not in obj:
            continue
        value = obj[name]
        out[name] = skeleton(value, sub) if sub is not True and isinstance(value, dict) else value
    return out


@dataclass(frozen=True, slots=True)
class Selector:
    """A list or watch filter (a label and field selector) and what it reads: the
    entries' skeletons (:data:`SELECTABLE_PATHS`), or, with ``whole``, the objects."""

    matches: Callable[[JSON], bool]
    whole: bool = False

    def __call__(self, obj: JSON) -> bool:
        return self.matches(obj)

    def entry(self, entry: Entry) -> bool:
        """Whether the filter selects ``entry`` (decoded only when the filter reads
        more than the skeleton)."""
        return self.matches(entry.obj if self.whole else entry.selectable)


def selects(matches: Callable[[JSON], bool], entry: Entry) -> bool:
    """Whether ``matches`` selects ``entry``: a :class:`Selector` reads the skeleton, any
    other filter the decoded object."""
    if isinstance(matches, Selector):
        return matches.entry(entry)
    return matches(entry.obj)


#: decoded objects kept (the entries decoded last), so that the consumers of one event
#: (the node authorizer's graph, the cache loops, a watcher that converts) decode it once
DECODED_KEPT = 512
_decoded: deque[Entry] = deque()


#: resources the cache does not keep, as upstream disables its watch cache for Events
#: (many, short-lived and rarely read): their writes still pass through to the watchers
#: and the history (raw, decoded at each read), and a list reads the store
UNCACHED_PREFIXES = ("/registry/core/events/",)


def uncached(key: str) -> bool:
    return key.startswith(UNCACHED_PREFIXES)


@dataclass(frozen=True, slots=True)
class Entry:
    """One object as the cache holds it: its JSON (with its resourceVersion set), the
    apiVersion it is stored at and its :func:`skeleton` (what selectors read).
    :attr:`obj` decodes the JSON on demand; the last :data:`DECODED_KEPT` decoded objects
    are kept, so the consumers of one event decode it once."""

    key: str
    raw: bytes
    revision: int
    #: the stored object's ``apiVersion`` (None when it has none)
    api_version: str | None
    #: the parts of the object a selector reads (:data:`SELECTABLE_PATHS`)
    selectable: JSON = field(compare=False, repr=False)
    #: the object converted to other versions, with its JSON, made on first use; keyed by
    #: version and the strategy that made it (a changed CRD makes new views). Not kept for
    #: the resources the cache does not keep (:data:`UNCACHED_PREFIXES`)
    views: dict[tuple[str, object], tuple[JSON, bytes]] = field(
        default_factory=dict, compare=False, repr=False
    )
    #: the decoded object while it is among the last :data:`DECODED_KEPT` decoded
    memo: JSON | None = field(default=None, compare=False, repr=False)

    @property
    def obj(self) -> JSON:
        """The object (shared while it is kept decoded: do not change it)."""
        obj = self.memo
        if obj is None:
            obj = orjson.loads(self.raw)
            self._keep(obj)
        return obj

    def _keep(self, obj: JSON) -> None:
        object.__setattr__(self, "memo", obj)
        _decoded.append(self)
        if len(_decoded) > DECODED_KEPT:  # (an entry is in the window once: while kept)
            object.__setattr__(_decoded.popleft(), "memo", None)

    def stored_as(self, api_version: str) -> bool:
        """Whether the object is stored at ``api_version`` (one with no apiVersion is
        taken to be), so that it reads as :attr:`raw` without being decoded."""
        return self.api_version is None or self.api_version == api_version

    @classmethod
    def of(cls, key: str, obj: JSON, raw: bytes, revision: int, *, keep: bool = False) -> Entry:
        """The entry of ``obj`` (``raw``: its JSON); ``keep``: among the decoded kept."""
        version = obj.get("apiVersion")
        entry = cls(
            key, raw, revision, version if isinstance(version, str) else None, skeleton(obj)
        )
        if keep:
            entry._keep(obj)
        return entry

    @classmethod
    def of_kv(cls, kv: KeyValue) -> Entry:
        """The entry of a stored value (JSONDecodeError when it is not JSON)."""
        obj, raw = decode(kv.value, kv.mod_revision)
        return cls.of(kv.key, obj, raw, kv.mod_revision)

    def as_version(
        self,
        api_version: str,
        converter: Converter = convert,
        *,
        token: object = None,
        always: bool = False,
    ) -> tuple[JSON, bytes]:
        """The object as ``api_version`` serves it, and its JSON (shared: do not change).

        ``converter`` is the resource's own (a custom resource converts by its CRD), and
        ``token`` names it (views made by another converter are not reused). ``always``
        runs the converter even on an object already at the version (a custom resource
        defaults what it reads)."""
        if not always and self.stored_as(api_version):
            return self.obj, self.raw  # the common case: no conversion, ready-made bytes
        key = (api_version, token)
        view = self.views.get(key)
        if view is None:
            current = self.obj
            obj = converter(current, api_version)
            view = (obj, self.raw if obj is current else encode(obj))
            if not uncached(self.key):  # a raw-only entry keeps no views
                self.views[key] = view
        return view


def _resource_prefix(key: str) -> str:
    """``/registry/<group>/<resource>/`` of a key or prefix (keys are laid out so)."""
    parts = key.split("/", 4)
    return "/".join(parts[:4]) + "/" if len(parts) == 5 else "\x00"


def tombstone(last: Entry, revision: int) -> Entry:
    """What a DELETED event carries: the last state, at the delete's resourceVersion
    (as upstream's etcd watcher reports it)."""
    previous = last.obj
    obj = {**previous, "metadata": {**previous.get("metadata", {})}}
    obj["metadata"]["resourceVersion"] = str(revision)
    return Entry.of(last.key, obj, encode(obj), revision, keep=True)


@dataclass(frozen=True, slots=True)
class CacheEvent:
    type: str  # ADDED | MODIFIED | DELETED
    key: str
    revision: int
    entry: Entry  # the new state (for DELETED: the last state, at the delete's revision)
    prev: Entry | None


class TooOld(Exception):
    """The requested resourceVersion is older than the history the cache keeps."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


class NotReady(Exception):
    """The cache did not catch up with a revision in time."""


#: a plain function reads the decoded object; a :class:`Selector` its skeleton
Filter = Callable[[JSON], bool]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a paginated list from the cache (upstream's cacher pagination)."""

    entries: list[Entry]
    #: there are keys after the page (a continue token is due)
    more: bool
    #: the key the next page starts after: the last entry's (upstream's last selected key)
    last_key: str
    #: the objects after the page, when every object matches (None with a filter)
    remaining: int | None


class CacheWatcher:
    """One client watch: events under ``prefix`` after a revision, as a queue."""

    def __init__(self, cache: WatchCache, prefix: str, matches: Filter | None, buffer: int) -> None:
        self.cache = cache
        self.prefix = prefix
        self.matches = matches
        self.queue: asyncio.Queue[CacheEvent | None] = asyncio.Queue()
        #: most events waiting before the watch is terminated (the history replayed at
        #: the start comes on top: the client asked for it)
        self.buffer = buffer
        self.closed = False
        #: the client fell more than ``buffer`` events behind and the watch was ended
        self.terminated = False
        #: called once when the watch is terminated (the handler stops writing to it)
        self.on_terminate: Callable[[], object] | None = None

    def offer(self, ev: CacheEvent) -> None:
        if self.closed or not ev.key.startswith(self.prefix):
            return
        out = self._filtered(ev)
        if out is None:
            return
        if self.queue.qsize() >= self.buffer:
            self._terminate()
            return
        self.queue.put_nowait(out)

    def _replay(self, ev: CacheEvent) -> None:
        """A past event the client asked for by its resourceVersion (not limited)."""
        if ev.key.startswith(self.prefix) and (out := self._filtered(ev)) is not None:
            self.queue.put_nowait(out)
            self.buffer += 1

    def _terminate(self) -> None:
        log.info(
            "Forcing watcher close due to unresponsiveness: %s (%d events behind)",
            self.prefix,
            self.queue.qsize(),
        )
        self.terminated = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.close()
        if self.on_terminate is not None:
            self.on_terminate()

    def _filtered(self, ev: CacheEvent) -> CacheEvent | None:
        """Upstream's rule: with a selector, an object that stops matching is DELETED for
        this watcher, and one that starts matching is ADDED."""
        if self.matches is None:
            return ev
        matches = self.matches
        if ev.type == DELETED:
            return ev if selects(matches, ev.entry) else None
        now = selects(matches, ev.entry)
        before = ev.prev is not None and selects(matches, ev.prev)
        if now and before:
            return ev
        if now:
            return CacheEvent(ADDED, ev.key, ev.revision, ev.entry, None)
        if before:
            assert ev.prev is not None
            gone = tombstone(ev.entry, ev.revision)
            return CacheEvent(DELETED, ev.key, ev.revision, gone, ev.prev)
        return None

    async def next(self) -> CacheEvent | None:
        """The next event, or None when the watch was closed (cache stopped)."""
        return await self.queue.get()

    def pending(self, limit: int) -> list[CacheEvent | None]:
        """Up to ``limit`` events already queued, without waiting (to batch writes)."""
        out: list[CacheEvent | None] = []
        while len(out) < limit and not self.queue.empty():
            out.append(self.queue.get_nowait())
        return out

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.cache._watchers.discard(self)
            self.queue.put_nowait(None)


class WatchCache:
    def __init__(
        self,
        store: Store,
        prefix: str = "/registry/",
        history: int = 10_000,
        watcher_buffer: int = WATCHER_BUFFER,
    ) -> None:
        self.store = store
        self.watcher_buffer = watcher_buffer
        self.prefix = prefix
        self.revision = 0
        self.objects: dict[str, Entry] = {}
        #: the same entries per resource (``/registry/<group>/<resource>/``), so that a
        #: list of one resource does not scan every object in the cluster
        self._by_resource: dict[str, dict[str, Entry]] = {}
        #: each resource's keys in order (a key is inserted or removed in place: a memmove
        #: of pointers, where a sort per list cost milliseconds at 10,000 objects)
        self._sorted: dict[str, list[str]] = {}
        #: each resource's objects counted by their stored ``apiVersion``
        self._versions: dict[str, dict[str, int]] = {}
        #: the revision of the last event of each resource, and of each namespace of a
        #: namespaced one (its keys' prefix), since :attr:`_loaded_at`
        self._changed: dict[str, int] = {}
        #: the revision the cache was (re)loaded at: what changed before is not known
        self._loaded_at = 0
        self.history: deque[CacheEvent] = deque(maxlen=history)
        #: the revision from which ``history`` is complete (events after it are all there)
        self.history_start = 0
        self._watchers: set[CacheWatcher] = set()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        #: the store's current revision being read, and the read the callers who came
        #: after it started will share (see :meth:`fresh_revision`)
        self._revision_read: asyncio.Future[int] | None = None
        self._revision_next: asyncio.Future[int] | None = None
        #: the store knows its current revision in memory (SQLite): asked inline
        self._revision_in_memory = bool(getattr(store, "revision_in_memory", False))
        self._task: asyncio.Task[None] | None = None
        self._store_watch: Watch | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        await self._load()
        self._task = asyncio.create_task(self._run(), name="watch-cache")

    async def _load(self) -> None:
        objects: dict[str, Entry] = {}
        page = await self.store.list(self.prefix, limit=5000)
        revision = page.revision
        while True:
            for kv in page.kvs:
                if uncached(kv.key):
                    continue
                try:
                    objects[kv.key] = Entry.of_kv(kv)
                except orjson.JSONDecodeError:
                    log.warning("skipping undecodable value at %s", kv.key)
            if not page.more:
                break
            page = await self.store.list(
                self.prefix, limit=5000, start=next_start(page), revision=revision
            )
        self.objects = objects
        self._by_resource = {}
        for key, entry in objects.items():
            self._by_resource.setdefault(_resource_prefix(key), {})[key] = entry
        self._sorted = {r: sorted(group) for r, group in self._by_resource.items()}
        self._versions = {}
        for resource, group in self._by_resource.items():
            for entry in group.values():
                self._count(resource, entry, 1)
        self._changed = {}
        self.revision = self.history_start = self._loaded_at = revision
        self.history.clear()
        self._store_watch = await self.store.watch(self.prefix, after=revision)
        self.ready.set()

    async def _run(self) -> None:
        while True:
            try:
                assert self._store_watch is not None
                async for ev in self._store_watch:
                    self._apply(ev)
                return  # the store closed the watch: we are shutting down
            except Compacted:
                log.warning("watch cache fell behind compaction; reloading")
            except StoreError as err:
                log.warning("watch cache lost its store watch (%s); reloading", err)
                await asyncio.sleep(1)
            # Relist: every client watch restarts (they get 410 and relist themselves).
            for w in list(self._watchers):
                w.close()
            with contextlib.suppress(StoreError):
                await self._load()

    def _apply(self, ev: Event) -> None:
        key = ev.kv.key
        if uncached(key):
            self._publish(self._passing(ev), ev.revision)
            return
        prev = self.objects.get(key)
        resource = _resource_prefix(key)
        self._changed[resource] = self._changed[key[: key.rindex("/") + 1]] = ev.revision
        if ev.type is EventType.DELETE:
            if prev is None:
                return
            self._drop(key)
            gone = tombstone(prev, ev.revision)
            cev = CacheEvent(DELETED, key, ev.revision, gone, prev)
        else:
            try:
                obj, raw = decode(ev.kv.value, ev.kv.mod_revision)
            except orjson.JSONDecodeError:
                log.warning("skipping undecodable value at %s", key)
                return
            # kept decoded: the event's consumers (the node graph, the cache loops) read it
            entry = Entry.of(key, obj, raw, ev.kv.mod_revision, keep=True)
            self._put(entry)
            cev = CacheEvent(MODIFIED if prev else ADDED, key, ev.revision, entry, prev)
        self._publish(cev, ev.revision)

    @staticmethod
    def _passing(ev: Event) -> CacheEvent | None:
        """The event of a write to an object the cache does not keep: its previous state
        comes with the store's event."""
        key = ev.kv.key
        try:
            prev = None if ev.prev_kv is None else Entry.of_kv(ev.prev_kv)
            if ev.type is EventType.DELETE:
                return (
                    None
                    if prev is None
                    else CacheEvent(DELETED, key, ev.revision, tombstone(prev, ev.revision), prev)
                )
            entry = Entry.of_kv(ev.kv)
        except orjson.JSONDecodeError:
            log.warning("skipping undecodable value at %s", key)
            return None
        return CacheEvent(MODIFIED if prev else ADDED, key, ev.revision, entry, prev)

    def _publish(self, cev: CacheEvent | None, revision: int) -> None:
        """Record ``cev`` in the history and hand it to the watchers (when there is one),
        move to ``revision`` and wake who waits for it."""
        if cev is not None:
            if len(self.history) == self.history.maxlen:
                self.history_start = self.history[0].revision
            self.history.append(cev)
            for w in tuple(self._watchers):  # a watcher that falls behind leaves the set
                w.offer(cev)
        self.revision = revision
        if self._waiters:
            still = []
            for rev, fut in self._waiters:
                if rev <= self.revision:
                    if not fut.done():
                        fut.set_result(None)
                else:
                    still.append((rev, fut))
            self._waiters = still

    async def wait_for(self, revision: int, within: float = 3.0) -> None:
        """Return once the cache has seen ``revision``; NotReady after ``within`` s."""
        if self.revision >= revision:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((revision, fut))
        try:
            await asyncio.wait_for(fut, within)
        except TimeoutError:
            raise NotReady(
                f"Too large resource version: {revision}, current: {self.revision}"
            ) from None

    async def wait_fresh(self) -> None:
        """Catch up with the store's current revision (a consistent read).

        Events the store already handed to the cache's watch but :meth:`_run` has not
        taken yet (a write just acknowledged) are applied here and now: waiting for them
        costs a read two event-loop iterations, each behind every other ready request (a
        periodic lease renewal made a whole iteration's worth of lists wait under load).
        When the watch has been handed every write up to the store's revision, the cache
        moves to that revision (upstream's progress notification): a write outside the
        cache's prefix (``/masterleases/``, every 10 s) sends the cache no event, and reads
        waited for the next write inside it, or 3 s and then 504."""
        revision = await self.fresh_revision()
        if self.revision < revision and self._store_watch is not None:
            events, progress = self._store_watch.take_ready()
            for ev in events:
                self._apply(ev)
            if self.revision < progress:
                self._publish(None, progress)
        await self.wait_for(revision)

    async def fresh_revision(self) -> int:
        """The store's current revision, read after this call began.

        Every list without a resourceVersion asks this (upstream's consistent reads from
        the cache). One store round trip (a thread hop and a query on SQLite) per request
        was a tenth of the server's time under a burst of lists, so callers share reads:
        with none running, a read starts now; while one runs, callers wait for the next
        one, which starts when it ends, so every answer is still a revision read after
        its caller arrived.

        A store that knows its revision in memory (SQLite, the database's only writer) is
        asked inline: no task and no shared future, whose chain of callbacks cost four
        event-loop iterations per list, each behind every other ready request (under 500
        clients, most of an admitted list's time in the server)."""
        if self._revision_in_memory:
            return await self.store.current_revision()
        if self._revision_read is None:
            fut = self._revision_read = self._read_revision()
        else:
            if self._revision_next is None:
                self._revision_next = asyncio.get_running_loop().create_future()
            fut = self._revision_next
        return await asyncio.shield(fut)

    def _read_revision(self, fut: asyncio.Future[int] | None = None) -> asyncio.Future[int]:
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
        # nobody left to read the outcome (every caller cancelled) is not an error
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        task = asyncio.ensure_future(self.store.current_revision())
        task.add_done_callback(lambda t: self._revision_read_done(t, fut))
        return fut

    def _revision_read_done(self, task: asyncio.Future[int], fut: asyncio.Future[int]) -> None:
        if task.cancelled():
            fut.cancel()
        elif (err := task.exception()) is not None:
            fut.set_exception(err)
        else:
            fut.set_result(task.result())
        waiting, self._revision_next = self._revision_next, None
        self._revision_read = None if waiting is None else self._read_revision(waiting)

    async def read(self, prefix: str) -> list[Entry]:
        """Every object under ``prefix`` at :attr:`revision`: :meth:`list`, or from the
        store for a resource the cache does not keep."""
        if not uncached(prefix):
            return self.list(prefix)
        revision, out = self.revision, []
        page = await self.store.list(prefix, revision=revision)
        while True:
            for kv in page.kvs:
                with contextlib.suppress(orjson.JSONDecodeError):
                    out.append(Entry.of_kv(kv))
            if not page.more:
                return out
            page = await self.store.list(prefix, start=next_start(page), revision=revision)

    def list(self, prefix: str) -> list[Entry]:
        """Every object under ``prefix`` that the cache keeps, in key order, at
        :attr:`revision` (:meth:`read` reads the others too)."""
        resource = _resource_prefix(prefix)
        group = self._by_resource.get(resource)
        if group is None:
            if prefix.startswith(resource):
                return []  # a resource with no objects
            out = [e for k, e in self.objects.items() if k.startswith(prefix)]
            out.sort(key=lambda e: e.key)
            return out
        keys = self._sorted[resource]
        if len(prefix) == len(resource):
            return [group[k] for k in keys]
        lo = bisect.bisect_left(keys, prefix)
        return [group[k] for k in keys[lo : bisect.bisect_left(keys, prefix_end(prefix), lo)]]

    def page(self, prefix: str, start: str, limit: int, matches: Filter | None) -> Page:
        """Up to ``limit`` objects under ``prefix`` from key ``start`` on, at
        :attr:`revision`, as upstream's cacher pages a list: with a filter, the page ends at
        its last matching object and there is more when any key follows it. Only for the
        prefix of one cached resource (or a namespace in it)."""
        resource = _resource_prefix(prefix)
        group = self._by_resource.get(resource)
        if group is None:
            return Page([], False, "", None)
        keys = self._sorted[resource]
        lo = bisect.bisect_left(keys, max(prefix, start))
        hi = bisect.bisect_left(keys, prefix_end(prefix), lo)
        if matches is None:
            end = min(hi, lo + limit)
            entries = list(map(group.__getitem__, keys[lo:end]))
            more = end < hi
            return Page(entries, more, keys[end - 1] if entries else "", hi - end if more else None)
        entries, last, i = [], "", lo
        while i < hi and len(entries) < limit:
            entry = group[keys[i]]
            if selects(matches, entry):
                entries.append(entry)
                last = entry.key
            i += 1
        return Page(entries, i < hi, last, None)

    def unchanged_since(self, prefix: str, revision: int) -> bool:
        """Whether the objects under ``prefix`` at ``revision`` are the ones the cache
        holds now: no event of their resource came after it (a continue token's list
        can then be served from here). False when the cache cannot tell."""
        resource = _resource_prefix(prefix)
        if not prefix.startswith(resource) or uncached(prefix):
            return False
        # a namespace's own mark when the prefix is one (a namespaced list), else the
        # resource's (which every write to it moves)
        namespace = prefix.endswith("/") and prefix.count("/") == resource.count("/") + 1
        scope = prefix if namespace else resource
        return (
            revision > 0
            and self._loaded_at <= revision <= self.revision
            and self._changed.get(scope, 0) <= revision
        )

    def single_version(self, prefix: str) -> str | None:
        """The ``apiVersion`` every cached object of ``prefix``'s resource is stored at
        (its objects then read as they are at that version); None when they are at
        several, the resource has none, or the cache does not keep it."""
        versions = self._versions.get(_resource_prefix(prefix))
        if versions is None or len(versions) != 1:
            return None
        return next(iter(versions))

    def _count(self, resource: str, entry: Entry, delta: int) -> None:
        """Count ``entry`` in (``delta`` 1) or out (-1) of its resource's versions."""
        if uncached(entry.key):
            return
        versions = self._versions.setdefault(resource, {})
        version = entry.api_version or ""
        left = versions.get(version, 0) + delta
        if left:
            versions[version] = left
        else:
            del versions[version]

    def _put(self, entry: Entry) -> None:
        key = entry.key
        self.objects[key] = entry
        resource = _resource_prefix(key)
        group = self._by_resource.get(resource)
        if group is None:
            group = self._by_resource[resource] = {}
            self._sorted[resource] = []
        prev = group.get(key)
        if prev is None:
            bisect.insort(self._sorted[resource], key)
        else:
            self._count(resource, prev, -1)
        group[key] = entry
        self._count(resource, entry, 1)

    def _drop(self, key: str) -> None:
        del self.objects[key]
        resource = _resource_prefix(key)
        group = self._by_resource.get(resource)
        if group is not None and (prev := group.pop(key, None)) is not None:
            keys = self._sorted[resource]
            del keys[bisect.bisect_left(keys, key)]
            self._count(resource, prev, -1)

    def watch(self, prefix: str, after: int, matches: Filter | None = None) -> CacheWatcher:
        """Events under ``prefix`` after revision ``after``; TooOld if history is gone."""
        if after < self.history_start:
            raise TooOld(after, self.history_start + 1)
        w = CacheWatcher(self, prefix, matches, self.watcher_buffer)
        if after < self.revision:
            for ev in self.history:
                if ev.revision > after:
                    w._replay(ev)
        self._watchers.add(w)
        return w

    async def stop(self) -> None:
        if self._store_watch is not None:
            await self._store_watch.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for w in list(self._watchers):
            w.close()
