"""The controller workqueue: client-go's ``util/workqueue``, with the same guarantees.

Event handlers only put a *key* here; workers take keys out and reconcile. The queue's
rules are what make a controller correct under bursts of events:

* **deduplication** — a key that is already waiting is not added twice (ten updates to
  one pod before a worker gets to it cause one reconcile);
* **never concurrently** — a key being processed (taken with :meth:`WorkQueue.get`, not
  yet :meth:`WorkQueue.done`) is not handed to a second worker; if it is added meanwhile,
  it is queued again once ``done()`` is called, so the change is not lost;
* **delays** — :meth:`DelayingQueue.add_after` adds a key later (``Result(requeue_after=…)``);
  a key waiting for several delays is added at the earliest;
* **rate limiting** — :meth:`RateLimitingQueue.add_rate_limited` delays a failing key by
  its own exponential backoff (5 ms doubling to 1000 s) and by an overall token bucket
  (10 qps, burst 100): client-go's ``DefaultControllerRateLimiter``; :meth:`forget` resets
  a key's backoff after a success.

``shutdown()`` wakes every waiting ``get()``, which then raise :class:`ShutDown` once the
queue is empty (items already queued are still handed out, so workers can drain).
All of it runs on one event loop: ``add`` is a plain method an event handler can call.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

from pyk8s.client._flowcontrol import TokenBucket

__all__ = [
    "BucketRateLimiter",
    "DelayingQueue",
    "ItemExponentialFailureRateLimiter",
    "MaxOfRateLimiter",
    "RateLimiter",
    "RateLimitingQueue",
    "ShutDown",
    "WorkQueue",
    "default_controller_rate_limiter",
]

T = TypeVar("T", bound=Hashable)
T_contra = TypeVar("T_contra", bound=Hashable, contravariant=True)


class ShutDown(Exception):
    """``get()`` on a queue that is shut down and empty: the worker should return."""


class WorkQueue(Generic[T]):
    """Deduplicating FIFO; an item is never handed to two workers at once."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._queue: deque[T] = deque()
        self._dirty: set[T] = set()  # waiting to be processed (queued, or re-added while busy)
        self._processing: set[T] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._shutting_down = False
        self._drained: asyncio.Event | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, item: T) -> None:
        if self._shutting_down or item in self._dirty:
            return
        self._dirty.add(item)
        if item in self._processing:
            return  # queued again by done()
        self._queue.append(item)
        self._wake_one()

    async def get(self) -> T:
        """The next item (mark it :meth:`done` when finished); :class:`ShutDown` at the end."""
        while not self._queue:
            if self._shutting_down:
                raise ShutDown(self.name)
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._wake_one()  # we were woken for an item: pass the wake-up on
                else:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(fut)
                raise
        item = self._queue.popleft()
        self._processing.add(item)
        self._dirty.discard(item)
        return item

    def done(self, item: T) -> None:
        """Processing of ``item`` finished; if it was added meanwhile, queue it again."""
        self._processing.discard(item)
        if item in self._dirty:
            self._queue.append(item)
            self._wake_one()
        elif not self._processing and self._drained is not None:
            self._drained.set()

    def shutdown(self) -> None:
        """Stop accepting items; getters drain what is queued, then get :class:`ShutDown`."""
        self._shutting_down = True
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)

    async def shutdown_with_drain(self) -> None:
        """Shut down and wait until every item handed out has been marked done."""
        self.shutdown()
        if self._processing:
            self._drained = asyncio.Event()
            await self._drained.wait()

    def shutting_down(self) -> bool:
        return self._shutting_down

    def _wake_one(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def __aiter__(self) -> WorkQueue[T]:
        return self

    async def __anext__(self) -> T:
        """``async for key in queue:`` — ends at shutdown (still call ``done(key)``)."""
        try:
            return await self.get()
        except ShutDown:
            raise StopAsyncIteration from None


class DelayingQueue(WorkQueue[T]):
    """A :class:`WorkQueue` that can also add an item after a delay."""

    def __init__(self, name: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name)
        self._clock = clock
        self._waiting: dict[T, tuple[float, asyncio.TimerHandle]] = {}

    def add_after(self, item: T, delay: float) -> None:
        """Add ``item`` in ``delay`` seconds (now if ``delay <= 0``); the earliest wins."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(item)
            return
        ready_at = self._clock() + delay
        existing = self._waiting.get(item)
        if existing is not None:
            if existing[0] <= ready_at:
                return
            existing[1].cancel()
        handle = asyncio.get_running_loop().call_later(delay, self._ready, item)
        self._waiting[item] = (ready_at, handle)

    def _ready(self, item: T) -> None:
        self._waiting.pop(item, None)
        self.add(item)

    def num_waiting(self) -> int:
        """Items scheduled by :meth:`add_after` that are not yet due."""
        return len(self._waiting)

    def shutdown(self) -> None:
        for _, handle in self._waiting.values():
            handle.cancel()
        self._waiting.clear()
        super().shutdown()


# ---------------------------------------------------------------------- rate limiters


class RateLimiter(Protocol[T_contra]):
    """How long an item must wait before its next retry."""

    def when(self, item: T_contra) -> float: ...

    def forget(self, item: T_contra) -> None: ...

    def num_requeues(self, item: T_contra) -> int: ...


class ItemExponentialFailureRateLimiter(Generic[T]):
    """``base * 2**failures`` per item, capped at ``max_delay`` (5 ms → 1000 s by default)."""

    def __init__(self, base_delay: float = 0.005, max_delay: float = 1000.0) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._failures: dict[T, int] = {}

    def when(self, item: T) -> float:
        exp = self._failures.get(item, 0)
        self._failures[item] = exp + 1
        if exp > 62:  # 2**exp overflows any sensible delay
            return self.max_delay
        return float(min(self.max_delay, self.base_delay * 2**exp))

    def forget(self, item: T) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: T) -> int:
        return self._failures.get(item, 0)


class BucketRateLimiter(Generic[T]):
    """An overall token bucket: every retry of every item takes a token."""

    def __init__(self, qps: float = 10.0, burst: int = 100) -> None:
        self.bucket = TokenBucket(qps, burst)

    def when(self, item: T) -> float:
        return self.bucket.reserve()

    def forget(self, item: T) -> None:
        pass

    def num_requeues(self, item: T) -> int:
        return 0


class MaxOfRateLimiter(Generic[T]):
    """The longest delay of several limiters (every one of them is consulted)."""

    def __init__(self, *limiters: RateLimiter[T]) -> None:
        self.limiters = limiters

    def when(self, item: T) -> float:
        return max((lim.when(item) for lim in self.limiters), default=0.0)

    def forget(self, item: T) -> None:
        for lim in self.limiters:
            lim.forget(item)

    def num_requeues(self, item: T) -> int:
        return max((lim.num_requeues(item) for lim in self.limiters), default=0)


def default_controller_rate_limiter() -> MaxOfRateLimiter[T]:
    """client-go's DefaultControllerRateLimiter: per-item 5 ms→1000 s, overall 10 qps/100."""
    return MaxOfRateLimiter(
        ItemExponentialFailureRateLimiter(0.005, 1000.0), BucketRateLimiter(10.0, 100)
    )


class RateLimitingQueue(DelayingQueue[T]):
    """The queue a controller uses: dedup + delays + per-item backoff on failures."""

    def __init__(
        self,
        rate_limiter: RateLimiter[T] | None = None,
        name: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name, clock)
        self.rate_limiter: RateLimiter[T] = rate_limiter or default_controller_rate_limiter()

    def add_rate_limited(self, item: T) -> None:
        """Add ``item`` after its backoff (call after a failed reconcile)."""
        self.add_after(item, self.rate_limiter.when(item))

    def forget(self, item: T) -> None:
        """Reset ``item``'s backoff (call after a successful reconcile)."""
        self.rate_limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        return self.rate_limiter.num_requeues(item)
