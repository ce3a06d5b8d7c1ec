"""The shape of the API server's own controllers: names queued from the watch cache.

Why this module exists: a few controllers live inside the API server because they change
what it serves (CRDs install resources, APIServices route groups) or need what only it
holds in memory (the schemas a policy's type check reads). Each follows some prefixes of
the watch cache, queues object names (each at most once while waiting), and syncs them
one at a time in a worker; a failed sync is logged and retried later. This base class is
that loop, so each controller only says what to follow and how to sync one name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from pyk8s.apiserver.handlers import ResourceHandlers
    from pyk8s.apiserver.watchcache import CacheWatcher

log = logging.getLogger(__name__)

JSON = dict[str, Any]


class CacheController:
    """A queue of names fed from the watch cache and drained by one worker.

    Subclasses implement :meth:`sync` and start their loops with :meth:`run` (usually
    :meth:`follow` for each prefix and :meth:`work`); :meth:`stop` ends them.
    """

    #: what a sync is about, for the log line of a failure ("CustomResourceDefinition")
    kind: ClassVar[str] = ""
    #: seconds before a failed sync is retried
    retry_after: ClassVar[float] = 2.0

    def __init__(self, handlers: ResourceHandlers) -> None:
        self.h = handlers
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    async def sync(self, name: str) -> None:
        raise NotImplementedError

    def run(self, *loops: Coroutine[Any, Any, None]) -> None:
        self._tasks += [asyncio.create_task(loop) for loop in loops]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []

    def enqueue(self, name: str) -> None:
        if name not in self._queued:
            self._queued.add(name)
            self._queue.put_nowait(name)

    def later(self, name: str, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self.enqueue, name)

    def enqueue_object(self, obj: JSON) -> None:
        self.enqueue(obj["metadata"]["name"])

    def follow(
        self,
        prefix: str,
        changed: Callable[[JSON], None],
        relisted: Callable[[], None] | None = None,
    ) -> Coroutine[Any, Any, None]:
        """A loop calling ``changed`` with every object written (or deleted) under
        ``prefix`` from now on (the watch starts here, not when the loop first runs, so
        nothing written after a caller's list is missed); when the cache restarts, with
        every object it lists, then ``relisted``."""
        cache = self.h.cache
        return self._follow(cache.watch(prefix, cache.revision), prefix, changed, relisted)

    async def _follow(
        self,
        watcher: CacheWatcher,
        prefix: str,
        changed: Callable[[JSON], None],
        relisted: Callable[[], None] | None,
    ) -> None:
        cache = self.h.cache
        try:
            while True:
                ev = await watcher.next()
                if ev is None:  # the cache restarted: look at everything again
                    watcher.close()
                    for entry in cache.list(prefix):
                        changed(entry.obj)
                    if relisted is not None:
                        relisted()
                    watcher = cache.watch(prefix, cache.revision)
                    continue
                changed(ev.entry.obj)
        finally:
            watcher.close()

    async def work(self) -> None:
        while True:
            name = await self._queue.get()
            self._queued.discard(name)
            await self.sync_quietly(name)

    async def sync_quietly(self, name: str) -> None:
        """:meth:`sync`, a failure logged and retried after :attr:`retry_after`."""
        try:
            await self.sync(name)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("syncing %s %s", self.kind, name)
            self.later(name, self.retry_after)
