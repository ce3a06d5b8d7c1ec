"""Give the memory the C heap holds free back to the system, in a serving process.

Why: glibc's malloc returns freed memory to the system on its own only from the top of a
heap. A block freed in the middle (an old watch event's JSON, a request's body, the
decoded object of a watch cache entry made for one read) stays resident until a block
of that size is asked for again. A busy API server frees far more than it keeps: held
after 5,000 simulated nodes and 10,000 pods, glibc had 342 MB of heap, 128 MB of it in
use and 214 MB free (``mallinfo2``), and one ``malloc_trim(0)`` took the process from
511 to 333 MiB of RSS. Go's runtime, which upstream runs on, returns unused spans to the
system in the background (its scavenger); this is that, for glibc.

What: every :data:`INTERVAL` seconds, when glibc holds more than :data:`FREE_BYTES` free,
``malloc_trim(0)`` runs in a worker thread (ctypes releases the GIL for the call). It
gives back the free pages of every arena. While it walks an arena it holds that arena's
lock, so a large allocation on that arena waits for it. That is why it runs only when
there is a lot to give back, and not more often than every :data:`INTERVAL` seconds.

Elsewhere than glibc (musl, macOS) there is nothing to call and :func:`run` returns.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import time

log = logging.getLogger(__name__)

#: seconds between two looks at the heap
INTERVAL = 30.0
#: free bytes glibc must hold before a trim is worth its walk of the heap
FREE_BYTES = 64 << 20


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (2.33+): every field a ``size_t``."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _libc() -> ctypes.CDLL | None:
    """glibc when this process runs on it (with ``malloc_trim`` and ``mallinfo2``)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
        libc.mallinfo2.argtypes = []
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        return None
    return libc


def free_bytes(libc: ctypes.CDLL) -> int:
    """What glibc holds free in its heaps (``mallinfo2().fordblks``)."""
    return int(libc.mallinfo2().fordblks)


def trim(libc: ctypes.CDLL) -> bool:
    """Give the free pages of every arena back; whether any were."""
    return bool(libc.malloc_trim(0))


async def run(interval: float = INTERVAL, threshold: int = FREE_BYTES) -> None:
    """Trim the heap every ``interval`` seconds while it holds more than ``threshold``
    bytes free, until cancelled; returns at once where glibc is not the allocator."""
    libc = _libc()
    if libc is None:
        return
    while True:
        await asyncio.sleep(interval)
        free = free_bytes(libc)
        if free < threshold:
            continue
        started = time.perf_counter()
        await asyncio.to_thread(trim, libc)
        log.info(
            "gave free heap memory back",
            extra={
                "freeMiB": free >> 20,
                "stillFreeMiB": free_bytes(libc) >> 20,
                "ms": round((time.perf_counter() - started) * 1000),
            },
        )
