"""Informers: a local, always-current copy of one resource, and callbacks when it changes.

A controller must not poll the API server: it *lists* once, then *watches* from the list's
resourceVersion, keeping an in-memory :class:`Store` up to date, and reacts to changes.
That is client-go's reflector + indexer + shared informer, and this module copies its
behaviour where it matters for correctness:

* **list, then watch from the list's resourceVersion**, with bookmarks
  (``allowWatchBookmarks``) so a quiet resource still advances its resourceVersion, and
  with a randomised 5 to 10 minute ``timeoutSeconds`` so watches are re-established (and
  spread out) regularly;
* **410 Gone → relist**: when the server no longer has history back to our
  resourceVersion, the whole list is fetched again and diffed against the store, so
  handlers see the adds, updates and deletes that happened while we were away
  (a delete found this way hands the handler the last state we knew);
* **a broken connection → re-watch** from the last resourceVersion after an exponential
  backoff (0.8 s doubling to 30 s, jittered); any other failure → backoff, then relist;
* **handlers never kill the informer**: each registration has its own queue and task (so
  a slow or failing handler delays only itself); exceptions are logged;
* **shared**: :class:`InformerFactory` keeps one informer per (resource, namespace,
  selectors) in a process, so two controllers watching pods cost one watch.

Objects in the store and handed to handlers are **shared, not copied**: copy before
mutating (``copy.deepcopy(obj)``), exactly as with client-go's caches. Everything runs on
one event loop; the store needs no locks because nothing touches it from another thread.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import inspect
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Protocol

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client.errors import ApiError, TransportError, is_gone
from pyk8s.client.rest import Client, Obj, ResourceRef, Selector, WatchEvent

__all__ = [
    "NAMESPACE_INDEX",
    "ClientListerWatcher",
    "EventHandlerRegistration",
    "IndexFunc",
    "InformerFactory",
    "ListerWatcher",
    "SharedInformer",
    "Store",
    "meta_namespace_key",
    "namespace_index",
    "split_key",
]

log = logging.getLogger(__name__)

IndexFunc = Callable[[Obj], Iterable[str]]
NAMESPACE_INDEX = "namespace"

OnAdd = Callable[[Obj], Awaitable[None] | None]
OnUpdate = Callable[[Obj, Obj], Awaitable[None] | None]
OnDelete = Callable[[Obj], Awaitable[None] | None]

BACKOFF_INITIAL = 0.8
BACKOFF_CAP = 30.0
MIN_WATCH_TIMEOUT = 300


# ---------------------------------------------------------------------- keys


def meta_namespace_key(obj: Mapping[str, Any]) -> str:
    """``namespace/name``, or ``name`` for cluster-scoped objects (client-go's key)."""
    meta = obj.get("metadata") or {}
    ns, name = meta.get("namespace") or "", meta.get("name") or ""
    return f"{ns}/{name}" if ns else str(name)


def split_key(key: str) -> tuple[str, str]:
    """``(namespace, name)`` of a :func:`meta_namespace_key` (namespace ``""`` if none)."""
    ns, sep, name = key.partition("/")
    return (ns, name) if sep else ("", ns)


def namespace_index(obj: Obj) -> list[str]:
    ns = (obj.get("metadata") or {}).get("namespace")
    return [str(ns)] if ns else []


def _rv(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


# ---------------------------------------------------------------------- store


class Store:
    """Objects by key, with secondary indexes (client-go's thread-safe store + indexer).

    The ``namespace`` index is always there; add others with :meth:`add_indexers`, e.g.
    ``{"byNode": lambda pod: [pod["spec"].get("nodeName", "")]}``.
    Objects are shared with the informer and every handler: copy before mutating.
    """

    def __init__(
        self,
        indexers: Mapping[str, IndexFunc] | None = None,
        key_func: Callable[[Obj], str] = meta_namespace_key,
    ) -> None:
        self.key_func = key_func
        self._items: dict[str, Obj] = {}
        self._indexers: dict[str, IndexFunc] = {NAMESPACE_INDEX: namespace_index}
        self._indices: dict[str, dict[str, set[str]]] = {NAMESPACE_INDEX: {}}
        if indexers:
            self.add_indexers(indexers)

    # -- reads

    def get(self, key: str) -> Obj | None:
        return self._items.get(key)

    def get_by_name(self, namespace: str | None, name: str) -> Obj | None:
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def list(self) -> builtins.list[Obj]:
        return builtins.list(self._items.values())

    def list_keys(self) -> builtins.list[str]:
        return builtins.list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def by_index(self, index_name: str, value: str) -> builtins.list[Obj]:
        """Every object whose ``index_name`` function yields ``value``."""
        return [self._items[k] for k in self.index_keys(index_name, value)]

    def index_keys(self, index_name: str, value: str) -> builtins.list[str]:
        if index_name not in self._indexers:
            raise KeyError(f"index {index_name!r} does not exist")
        return sorted(self._indices[index_name].get(value, ()))

    def index_values(self, index_name: str) -> builtins.list[str]:
        if index_name not in self._indexers:
            raise KeyError(f"index {index_name!r} does not exist")
        return builtins.list(self._indices[index_name])

    @property
    def indexers(self) -> builtins.list[str]:
        """The names of the indexes (``namespace`` first)."""
        return builtins.list(self._indexers)

    # -- writes (the informer's; a controller only reads)

    def add_indexers(self, indexers: Mapping[str, IndexFunc]) -> None:
        for name, fn in indexers.items():
            if name in self._indexers:
                raise ValueError(f"indexer {name!r} already exists")
            self._indexers[name] = fn
            index: dict[str, set[str]] = {}
            self._indices[name] = index
            for key, obj in self._items.items():
                for value in self._values(name, fn, obj):
                    index.setdefault(value, set()).add(key)

    def add(self, obj: Obj) -> Obj | None:
        """Insert or replace; returns the previous object under the same key."""
        key = self.key_func(obj)
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        self._index(key, obj)
        return old

    update = add

    def delete(self, obj_or_key: Obj | str) -> Obj | None:
        key = obj_or_key if isinstance(obj_or_key, str) else self.key_func(obj_or_key)
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def replace(self, objs: Iterable[Obj]) -> None:
        self._items = {}
        self._indices = {name: {} for name in self._indexers}
        for obj in objs:
            self.add(obj)

    @staticmethod
    def _values(name: str, fn: IndexFunc, obj: Obj) -> builtins.list[str]:
        try:
            return [v for v in fn(obj) if isinstance(v, str)]
        except Exception:
            log.exception("index function %r failed", name)
            return []

    def _index(self, key: str, obj: Obj) -> None:
        for name, fn in self._indexers.items():
            index = self._indices[name]
            for value in self._values(name, fn, obj):
                index.setdefault(value, set()).add(key)

    def _unindex(self, key: str, obj: Obj) -> None:
        for name, fn in self._indexers.items():
            index = self._indices[name]
            for value in self._values(name, fn, obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]


#: client-go's name for the same thing
Indexer = Store


# ---------------------------------------------------------------------- list + watch


class ListerWatcher(Protocol):
    """The informer's seam to the server (a fake in tests, :class:`ClientListerWatcher` else)."""

    async def list(self) -> tuple[list[Obj], str]:
        """Every object, and the resourceVersion of that snapshot."""
        ...

    def watch(
        self, resource_version: str
    ) -> AbstractAsyncContextManager[AsyncIterator[WatchEvent]]:
        """Events after ``resource_version``; ``ApiError`` 410 when that is too old."""
        ...


class ClientListerWatcher:
    """List + watch one resource (optionally one namespace and selectors) through a Client."""

    def __init__(
        self,
        client: Client,
        resource: ResourceRef,
        namespace: str | None = None,
        *,
        label_selector: Selector = None,
        field_selector: Selector = None,
        page_size: int = 500,
        min_watch_timeout: int = MIN_WATCH_TIMEOUT,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.page_size = page_size
        self.min_watch_timeout = min_watch_timeout
        if isinstance(resource, Resource):
            self.api_version, self.kind = resource.api_version, resource.kind
        else:
            self.api_version, self.kind = resource

    async def list(self) -> tuple[list[Obj], str]:
        result = await self.client.list_all(
            self.resource,
            self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            page_size=self.page_size,
        )
        items: list[Obj] = result.get("items") or []
        for obj in items:  # list items may omit their type; watch events carry it
            obj.setdefault("apiVersion", self.api_version)
            obj.setdefault("kind", self.kind)
        return items, _rv(result)

    def watch(
        self, resource_version: str
    ) -> AbstractAsyncContextManager[AsyncIterator[WatchEvent]]:
        timeout = int(self.min_watch_timeout * (1 + random.random()))
        return self.client.watch(
            self.resource,
            self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout,
        )


# ---------------------------------------------------------------------- handlers


class _Backoff:
    def __init__(self, initial: float = BACKOFF_INITIAL, cap: float = BACKOFF_CAP) -> None:
        self.initial, self.cap = initial, cap
        self._next = initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self.cap, self._next * 2)
        return float(delay * random.uniform(1.0, 1.5))

    def reset(self) -> None:
        self._next = self.initial


_SYNCED = ("synced",)


class EventHandlerRegistration:
    """One set of handlers with its own queue and task: a slow handler delays only itself."""

    def __init__(
        self,
        informer: SharedInformer,
        on_add: OnAdd | None,
        on_update: OnUpdate | None,
        on_delete: OnDelete | None,
    ) -> None:
        self._informer = informer
        self.on_add, self.on_update, self.on_delete = on_add, on_update, on_delete
        self._queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()

    def has_synced(self) -> bool:
        """True once these handlers have been given every object of the initial list."""
        return self._synced.is_set()

    async def wait_synced(self, within: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._synced.wait(), within)
        except TimeoutError:
            return False
        return True

    def remove(self) -> None:
        self._informer.remove_event_handler(self)

    def _push(self, *notification: Any) -> None:
        self._queue.put_nowait(notification)

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"{self._informer.name}-handler")

    async def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def idle(self) -> None:
        """Wait until every queued notification has been handled (for tests)."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                kind = item[0]
                if kind == "synced":
                    self._synced.set()
                    continue
                fn: Callable[..., Awaitable[None] | None] | None = {
                    "add": self.on_add,
                    "update": self.on_update,
                    "delete": self.on_delete,
                }[kind]
                if fn is None:
                    continue
                result = fn(*item[1:])
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: event handler failed", self._informer.name)
            finally:
                self._queue.task_done()


# ---------------------------------------------------------------------- informer


class SharedInformer:
    """List + watch one resource into a :class:`Store`, calling registered handlers.

    ``start()`` (needs a running loop) begins; ``await wait_synced()`` returns once the
    first list is in the store; ``await stop()`` ends it. Handlers may be plain functions
    or coroutines; a handler added after the informer has synced is first given an
    ``on_add`` for every object already in the store.
    """

    def __init__(
        self,
        lister_watcher: ListerWatcher,
        *,
        resync_period: float = 0.0,
        indexers: Mapping[str, IndexFunc] | None = None,
        name: str = "informer",
        backoff: tuple[float, float] = (BACKOFF_INITIAL, BACKOFF_CAP),
    ) -> None:
        self.lister_watcher = lister_watcher
        #: (first delay, cap) of the exponential backoff after failures
        self.backoff = backoff
        self.resync_period = resync_period
        self.name = name
        self.store = Store(indexers)
        #: the resourceVersion the store is at
        self.last_sync_resource_version = ""
        #: how many times the informer has listed (1 + relists), for tests and metrics
        self.list_count = 0
        self._handlers: list[EventHandlerRegistration] = []
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._resync_task: asyncio.Task[None] | None = None
        self._stopped = False

    @classmethod
    def for_resource(
        cls,
        client: Client,
        resource: ResourceRef,
        namespace: str | None = None,
        *,
        label_selector: Selector = None,
        field_selector: Selector = None,
        resync_period: float = 0.0,
        indexers: Mapping[str, IndexFunc] | None = None,
    ) -> SharedInformer:
        lw = ClientListerWatcher(
            client,
            resource,
            namespace,
            label_selector=label_selector,
            field_selector=field_selector,
        )
        plural = resource.plural if isinstance(resource, Resource) else resource[1]
        return cls(lw, resync_period=resync_period, indexers=indexers, name=f"informer[{plural}]")

    # -- public surface

    @property
    def indexer(self) -> Store:
        return self.store

    def add_indexers(self, indexers: Mapping[str, IndexFunc]) -> None:
        self.store.add_indexers(indexers)

    def add_event_handler(
        self,
        on_add: OnAdd | None = None,
        on_update: OnUpdate | None = None,
        on_delete: OnDelete | None = None,
    ) -> EventHandlerRegistration:
        reg = EventHandlerRegistration(self, on_add, on_update, on_delete)
        if self._synced.is_set():
            for obj in self.store.list():
                reg._push("add", obj)
            reg._push(*_SYNCED)
        self._handlers.append(reg)
        if self.running:
            reg._start()
        return reg

    def remove_event_handler(self, reg: EventHandlerRegistration) -> None:
        if reg in self._handlers:
            self._handlers.remove(reg)
            if reg._task is not None:
                reg._task.cancel()  # what it had not handled yet is dropped
                reg._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self, within: float | None = None) -> bool:
        """True once the first list is in the store; False if ``within`` s pass first."""
        try:
            await asyncio.wait_for(self._synced.wait(), within)
        except TimeoutError:
            return False
        return True

    def start(self) -> None:
        if self._task is not None:
            return
        if self._stopped:
            raise RuntimeError(f"{self.name} was stopped; informers do not restart")
        for reg in self._handlers:
            reg._start()
        self._task = asyncio.create_task(self._run(), name=self.name)
        if self.resync_period > 0:
            self._resync_task = asyncio.create_task(self._resync(), name=f"{self.name}-resync")

    async def stop(self) -> None:
        self._stopped = True
        for task in (self._task, self._resync_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._resync_task = None
        for reg in self._handlers:
            await reg._stop()

    async def idle(self) -> None:
        """Wait until every handler has handled everything queued so far (for tests)."""
        for reg in list(self._handlers):
            await reg.idle()

    # -- the reflector loop

    def _notify(self, *notification: Any) -> None:
        for reg in self._handlers:
            reg._push(*notification)

    async def _run(self) -> None:
        backoff = _Backoff(*self.backoff)
        loop = asyncio.get_running_loop()
        rv: str | None = None
        just_listed = False  # a 410 right after a list must not become a tight loop
        while True:
            try:
                if rv is None:
                    items, rv = await self.lister_watcher.list()
                    self.list_count += 1
                    self._replace(items, rv)
                    just_listed = True
                    backoff.reset()
                while True:
                    started, got_events = loop.time(), False
                    async with self.lister_watcher.watch(rv) as events:
                        async for etype, obj in events:
                            rv = self._apply(etype, obj, rv)
                            just_listed, got_events = False, True
                            backoff.reset()
                    # the server ended the watch (timeoutSeconds): watch again from rv —
                    # at once, unless it ended at once and empty (client-go's "very
                    # short watch"), which must not become a busy loop
                    if not got_events and loop.time() - started < 1.0:
                        await asyncio.sleep(backoff.next())
            except asyncio.CancelledError:
                raise
            except ApiError as err:
                if is_gone(err):
                    log.info("%s: %s; relisting", self.name, err.message)
                    if just_listed:
                        await asyncio.sleep(backoff.next())
                else:
                    delay = backoff.next()
                    log.warning("%s: %s; relisting in %.1fs", self.name, err, delay)
                    await asyncio.sleep(delay)
                rv = None
            except TransportError as err:
                delay = backoff.next()
                what = "re-watching" if rv is not None else "listing again"
                log.warning("%s: %s; %s in %.1fs", self.name, err, what, delay)
                await asyncio.sleep(delay)
            except Exception:
                delay = backoff.next()
                log.exception("%s: list/watch failed; relisting in %.1fs", self.name, delay)
                await asyncio.sleep(delay)
                rv = None

    def _replace(self, items: list[Obj], rv: str) -> None:
        """A fresh list: swap the store and tell handlers what changed since the last one."""
        old = {self.store.key_func(o): o for o in self.store.list()}
        self.store.replace(items)
        first = not self._synced.is_set()
        for obj in items:
            prev = old.pop(self.store.key_func(obj), None)
            if prev is None:
                self._notify("add", obj)
            elif _rv(prev) != _rv(obj) or not _rv(obj):
                self._notify("update", prev, obj)
        for prev in old.values():
            self._notify("delete", prev)
        self.last_sync_resource_version = rv
        if first:
            self._notify(*_SYNCED)
            self._synced.set()

    def _apply(self, etype: str, obj: Obj, rv: str) -> str:
        new_rv = _rv(obj) or rv
        if etype == "BOOKMARK":
            self.last_sync_resource_version = new_rv
            return new_rv
        if etype in ("ADDED", "MODIFIED"):
            old = self.store.add(obj)
            if old is None:
                self._notify("add", obj)
            else:
                self._notify("update", old, obj)
        elif etype == "DELETED":
            old = self.store.delete(obj)
            self._notify("delete", obj)
        else:
            log.warning("%s: unknown watch event type %r", self.name, etype)
            return rv
        self.last_sync_resource_version = new_rv
        return new_rv

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.resync_period)
            if self._synced.is_set():
                for obj in self.store.list():
                    self._notify("update", obj, obj)


# ---------------------------------------------------------------------- factory


def _ref_key(resource: ResourceRef) -> tuple[str, str]:
    if isinstance(resource, Resource):
        return resource.api_version, resource.kind
    return resource


def _selector_key(sel: Selector) -> str:
    if sel is None:
        return ""
    if isinstance(sel, Mapping):
        return ",".join(f"{k}={v}" for k, v in sorted(sel.items()))
    return str(sel)


class InformerFactory:
    """One informer per (resource, namespace, selectors) in a process; starts/stops them all.

    Use as ``async with InformerFactory(client) as factory:``; ``factory.informer(PODS)``
    returns the shared informer (creating it), ``factory.start()`` starts every informer
    not yet running (call it again after asking for more), ``await factory.wait_for_sync()``
    waits for all of them.
    """

    def __init__(
        self,
        client: Client,
        *,
        resync_period: float = 0.0,
        namespace: str | None = None,
    ) -> None:
        self.client = client
        self.resync_period = resync_period
        self.namespace = namespace
        self._informers: dict[tuple[str, str, str, str, str], SharedInformer] = {}
        self._recording: list[list[SharedInformer]] = []

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[SharedInformer]]:
        """The informers asked for inside the block (those a controller's setup uses)."""
        used: list[SharedInformer] = []
        self._recording.append(used)
        try:
            yield used
        finally:
            self._recording.remove(used)

    def informer(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        *,
        label_selector: Selector = None,
        field_selector: Selector = None,
        indexers: Mapping[str, IndexFunc] | None = None,
    ) -> SharedInformer:
        if not isinstance(resource, Resource):
            resource = REGISTRY.for_api_version(*resource) or resource
        ns = namespace if namespace is not None else self.namespace
        api_version, kind = _ref_key(resource)
        key = (
            api_version,
            kind,
            ns or "",
            _selector_key(label_selector),
            _selector_key(field_selector),
        )
        inf = self._informers.get(key)
        if inf is None:
            inf = SharedInformer.for_resource(
                self.client,
                resource,
                ns,
                label_selector=label_selector,
                field_selector=field_selector,
                resync_period=self.resync_period,
            )
            self._informers[key] = inf
        for used in self._recording:
            if inf not in used:
                used.append(inf)
        if indexers:
            missing = {k: v for k, v in indexers.items() if k not in inf.store.indexers}
            inf.add_indexers(missing)
        return inf

    @property
    def informers(self) -> list[SharedInformer]:
        return list(self._informers.values())

    def start(self) -> None:
        for inf in self._informers.values():
            if not inf.running:
                inf.start()

    async def wait_for_sync(self, within: float | None = None) -> bool:
        """True when every informer has synced; False if ``within`` s pass first."""
        waits = [inf.wait_synced() for inf in self._informers.values()]
        try:
            results = await asyncio.wait_for(asyncio.gather(*waits), within)
        except TimeoutError:
            return False
        return all(results)

    async def stop(self) -> None:
        await asyncio.gather(*(inf.stop() for inf in self._informers.values()))

    async def __aenter__(self) -> InformerFactory:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
