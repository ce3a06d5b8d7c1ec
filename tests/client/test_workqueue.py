"""The workqueue keeps upstream's promises: dedup, no concurrent processing, delays, backoff."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from pyk8s.client._flowcontrol import TokenBucket
from pyk8s.client.workqueue import (
    BucketRateLimiter,
    DelayingQueue,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    RateLimitingQueue,
    ShutDown,
    WorkQueue,
    default_controller_rate_limiter,
)


async def test_fifo_and_dedup() -> None:
    q: WorkQueue[str] = WorkQueue()
    for key in ("a", "b", "a", "c", "b"):
        q.add(key)
    assert len(q) == 3
    assert [await q.get() for _ in range(3)] == ["a", "b", "c"]


async def test_item_being_processed_is_requeued_after_done_not_handed_out_twice() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    item = await q.get()
    q.add("a")  # changed while a worker is busy with it
    q.add("a")  # and again: still one
    assert len(q) == 0  # not available to a second worker
    second = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    assert not second.done()
    q.done(item)
    assert await asyncio.wait_for(second, 1) == "a"
    q.done("a")
    assert len(q) == 0


async def test_no_concurrent_processing_with_many_workers() -> None:
    q: WorkQueue[int] = WorkQueue()
    busy: set[int] = set()
    processed: list[int] = []
    overlap = False

    async def worker() -> None:
        nonlocal overlap
        async for item in q:
            if item in busy:
                overlap = True
            busy.add(item)
            await asyncio.sleep(0.001)
            processed.append(item)
            busy.discard(item)
            q.done(item)

    workers = [asyncio.create_task(worker()) for _ in range(8)]
    for _round in range(5):
        for _ in range(20):  # a burst of events: 100 adds
            for i in range(5):
                q.add(i)
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)
    q.shutdown()
    await asyncio.wait_for(asyncio.gather(*workers), 2)
    assert not overlap
    assert set(processed) == set(range(5))
    assert len(processed) <= 50  # 500 adds, at most two runs per key per burst


async def test_shutdown_drains_then_raises() -> None:
    q: WorkQueue[str] = WorkQueue()
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.add("x")
    assert await waiter == "x"
    q.add("y")
    q.shutdown()
    q.add("z")  # refused after shutdown
    assert await q.get() == "y"
    with pytest.raises(ShutDown):
        await q.get()
    assert q.shutting_down()


async def test_shutdown_wakes_idle_getters() -> None:
    q: WorkQueue[str] = WorkQueue()
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    await asyncio.sleep(0)
    q.shutdown()
    results = await asyncio.gather(*getters, return_exceptions=True)
    assert all(isinstance(r, ShutDown) for r in results)


async def test_cancelled_getter_passes_its_wakeup_on() -> None:
    q: WorkQueue[str] = WorkQueue()
    first = asyncio.create_task(q.get())
    second = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.add("a")  # wakes `first`…
    first.cancel()  # …which is cancelled before it runs
    assert await asyncio.wait_for(second, 1) == "a"


async def test_shutdown_with_drain_waits_for_done() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    item = await q.get()
    drain = asyncio.create_task(q.shutdown_with_drain())
    await asyncio.sleep(0.01)
    assert not drain.done()
    q.done(item)
    await asyncio.wait_for(drain, 1)


async def test_add_after() -> None:
    q: DelayingQueue[str] = DelayingQueue()
    start = time.monotonic()
    q.add_after("later", 0.05)
    q.add_after("now", 0)
    assert await q.get() == "now"
    assert q.num_waiting() == 1
    assert await asyncio.wait_for(q.get(), 1) == "later"
    assert time.monotonic() - start >= 0.045


async def test_add_after_earliest_wins_and_dedups() -> None:
    q: DelayingQueue[str] = DelayingQueue()
    q.add_after("a", 5)
    q.add_after("a", 0.02)  # earlier: replaces
    q.add_after("a", 10)  # later: ignored
    assert q.num_waiting() == 1
    assert await asyncio.wait_for(q.get(), 1) == "a"
    q.done("a")
    await asyncio.sleep(0.05)
    assert len(q) == 0 and q.num_waiting() == 0


async def test_shutdown_cancels_delayed_adds() -> None:
    q: DelayingQueue[str] = DelayingQueue()
    q.add_after("a", 0.01)
    q.shutdown()
    await asyncio.sleep(0.03)
    assert len(q) == 0


def test_item_exponential_backoff() -> None:
    lim: ItemExponentialFailureRateLimiter[str] = ItemExponentialFailureRateLimiter()
    delays = [lim.when("a") for _ in range(5)]
    assert delays == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.08])
    assert lim.num_requeues("a") == 5
    assert lim.when("b") == pytest.approx(0.005)  # per item
    for _ in range(100):
        last = lim.when("a")
    assert last == 1000.0  # capped
    lim.forget("a")
    assert lim.num_requeues("a") == 0
    assert lim.when("a") == pytest.approx(0.005)


def test_token_bucket_burst_then_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(10, 100, clock=lambda: now[0])
    assert all(bucket.reserve() == 0 for _ in range(100))
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)
    now[0] = 10.0  # refilled (the debt of 2 repaid first)
    assert bucket.try_accept()
    assert TokenBucket(0, 1).reserve() == 0  # unlimited


def test_default_controller_rate_limiter_is_max_of_both() -> None:
    lim: MaxOfRateLimiter[str] = default_controller_rate_limiter()
    # the bucket allows a burst of 100, so the per-item backoff decides at first
    assert [lim.when("x") for _ in range(3)] == pytest.approx([0.005, 0.01, 0.02])
    bucket = next(x for x in lim.limiters if isinstance(x, BucketRateLimiter))
    for _ in range(200):
        bucket.when("y")
    assert lim.when("z") > 5  # now the overall bucket is the longer wait
    assert lim.num_requeues("x") == 3
    lim.forget("x")
    assert lim.num_requeues("x") == 0


async def test_rate_limited_queue_requeues_with_backoff() -> None:
    q: RateLimitingQueue[str] = RateLimitingQueue(
        MaxOfRateLimiter(ItemExponentialFailureRateLimiter(0.01, 1.0))
    )
    q.add("k")
    stamps = []
    for _ in range(4):
        item = await asyncio.wait_for(q.get(), 2)
        stamps.append(time.monotonic())
        q.add_rate_limited(item)  # "reconcile failed"
        q.done(item)
    assert q.num_requeues("k") == 4
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert gaps[0] >= 0.009 and gaps[1] >= 0.019 and gaps[2] >= 0.039
    q.forget("k")
    assert q.num_requeues("k") == 0
    q.shutdown()
