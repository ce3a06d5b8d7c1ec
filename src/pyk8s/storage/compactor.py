"""Periodic compaction, as the upstream API server does it (every 5 minutes).

Each tick compacts to the revision that was current at the previous tick, so one whole
interval of history stays available to watchers that fall behind, and older history is
reclaimed. The latest value of every live key is never touched by compaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pyk8s.storage._types import Store, StoreError

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 300.0


class Compactor:
    def __init__(self, store: Store, interval: float = DEFAULT_INTERVAL) -> None:
        self.store = store
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._previous = 0

    async def tick(self) -> int:
        """Compact to the revision seen at the previous tick; returns it (0: nothing)."""
        target = self._previous
        self._previous = await self.store.current_revision()
        if target > await self.store.compacted_revision():
            await self.store.compact(target)
            log.info("compacted store", extra={"revision": target})
            return target
        return 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="store-compactor")

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except StoreError as err:
                log.warning("compaction failed: %s", err)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
