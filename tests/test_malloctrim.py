"""pyk8s.server.malloctrim: a heap holding much free memory in its middle gives it back
to the system (the process's RSS falls), and one holding little is left alone."""

from __future__ import annotations

import asyncio
import ctypes
import os

import pytest

from pyk8s.server import malloctrim

pytestmark = pytest.mark.skipif(malloctrim._libc() is None, reason="glibc only")


def rss() -> int:
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def watched(monkeypatch: pytest.MonkeyPatch, name: str, times: int = 1) -> asyncio.Event:
    """Set once ``malloctrim.<name>`` has run ``times`` times (it runs as before)."""
    done, calls = asyncio.Event(), [0]
    original = getattr(malloctrim, name)

    def wrapped(libc: ctypes.CDLL) -> object:
        result = original(libc)
        calls[0] += 1
        if calls[0] >= times:
            done.set()
        return result

    monkeypatch.setattr(malloctrim, name, wrapped)
    return done


async def test_free_memory_in_the_middle_of_the_heap_goes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 200,000 blocks of 1-4 KiB (above pymalloc's 512 bytes: glibc's), one in four kept:
    # what is freed lies between kept blocks, where glibc never trims on its own
    blocks = [bytes(1024 + (i * 37) % 3072) for i in range(200_000)]
    kept = blocks[::4]
    del blocks
    libc = malloctrim._libc()
    assert libc is not None
    assert malloctrim.free_bytes(libc) > 256 << 20
    before = rss()
    trimmed = watched(monkeypatch, "trim")
    task = asyncio.create_task(malloctrim.run(interval=0.001, threshold=64 << 20))
    try:
        await asyncio.wait_for(trimmed.wait(), 30)
    finally:
        task.cancel()
    assert rss() < before - (128 << 20)
    assert len(kept) == 50_000


async def test_a_heap_with_little_free_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    looked = watched(monkeypatch, "free_bytes", times=3)
    trimmed = watched(monkeypatch, "trim")
    task = asyncio.create_task(malloctrim.run(interval=0.001, threshold=1 << 50))
    try:
        await asyncio.wait_for(looked.wait(), 30)
    finally:
        task.cancel()
    assert not trimmed.is_set()
