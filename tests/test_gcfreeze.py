"""pyk8s.server.gcfreeze: survivors are frozen each tick (the collector skips them), a
cycle frozen alive is collected by the next full collection, and cancelling unfreezes."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Callable

import pytest

from pyk8s.server import gcfreeze


class Cycle:
    """An object in a reference cycle with itself: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


def signalling(monkeypatch: pytest.MonkeyPatch, name: str) -> asyncio.Event:
    """An event set each time ``gcfreeze.<name>`` has run (it runs as before)."""
    done = asyncio.Event()
    original: Callable[[], object] = getattr(gcfreeze, name)

    def wrapped() -> object:
        result = original()
        done.set()
        return result

    monkeypatch.setattr(gcfreeze, name, wrapped)
    return done


async def test_frozen_cycle_waits_for_the_full_collection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    froze = signalling(monkeypatch, "freeze_survivors")
    cycle = Cycle()
    gone = weakref.ref(cycle)
    task = asyncio.create_task(gcfreeze.run(interval=0.01, full_interval=3600))
    try:
        await froze.wait()  # the first tick froze the cycle, alive
        assert gc.get_freeze_count() > 0
        del cycle
        gc.collect()
        assert gone() is not None  # frozen: a collection does not look at it
        gcfreeze.full_collection()
        assert gone() is None
        assert gc.get_freeze_count() > 0  # the survivors are frozen again
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert gc.get_freeze_count() == 0


async def test_a_tick_past_the_full_interval_collects_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    collected = signalling(monkeypatch, "full_collection")
    cycle = Cycle()
    gone = weakref.ref(cycle)
    gc.freeze()  # as if a tick had frozen it alive
    del cycle
    task = asyncio.create_task(gcfreeze.run(interval=0.01, full_interval=0))
    try:
        await collected.wait()
        assert gone() is None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert gc.get_freeze_count() == 0


async def test_what_is_shared_with_the_zygote_waits_until_the_process_doubled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The full collection would write to every object frozen before the zygote was
    forked, copying the pages they share: it waits until as many are the process's own."""
    froze = signalling(monkeypatch, "freeze_survivors")
    collected = signalling(monkeypatch, "full_collection")
    gc.freeze()  # as pyk8s.server.zygote.start, before it forks
    monkeypatch.setattr(gcfreeze, "_shared", 0)
    gcfreeze.shared()
    task = asyncio.create_task(gcfreeze.run(interval=0.01, full_interval=0))
    try:
        for _ in range(3):
            await froze.wait()
            froze.clear()
        assert not collected.is_set()
        grown = [Cycle() for _ in range(gcfreeze._shared)]  # now it holds as many of its own
        await collected.wait()
        assert len(grown) == gcfreeze._shared
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert gc.get_freeze_count() == 0


async def test_the_young_threshold_holds_while_the_freezer_runs() -> None:
    before = gc.get_threshold()
    task = asyncio.create_task(gcfreeze.run(interval=3600, young=before[0] + 1000))
    try:
        await asyncio.sleep(0)  # the task has started
        assert gc.get_threshold() == (before[0] + 1000, *before[1:])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert gc.get_threshold() == before
