"""Keep the cyclic garbage collector off the long-lived heap of a serving process.

Why: CPython's collector walks every tracked container of the oldest generation in a
full collection, and starts one whenever that generation grew by a quarter. An API
server's watch cache holds every object decoded (~100 containers a pod), so while pods
are created the heap keeps growing and full collections keep coming: at 10,000 pods each
one walked ~1 M containers for ~0.2 s of CPU with the event loop stopped, nine of them in
10,000 creates (0.20 ms of CPU per create, about a sixth of all of it, and every request
in flight waited those 0.2 s). Go's collector, which upstream runs on, is concurrent.

What: every :data:`INTERVAL` seconds the process collects what is not frozen (the objects
that survived since the last tick: cheap) and freezes the survivors
(``gc.freeze()``: the collector ignores them from then on; reference counting still
frees them when they go). The automatic collections then walk only what is younger
than a few seconds.

The price: a reference cycle that is alive when it is frozen and becomes garbage later
is not collected until the next full collection. Every :data:`FULL_INTERVAL` seconds
everything is unfrozen, collected once (the pause a full collection always had, once in
that period instead of once per quarter of growth) and frozen again, which bounds that
memory. JSON objects (the cache's bulk) hold no cycles and are freed as before.
:func:`run` ends with everything unfrozen.

The youngest generation's threshold can be raised for the time the freezer runs
(``young``; the API server passes :data:`YOUNG_THRESHOLD`). At CPython's 700 a busy API
server collected its youngest generation about every 8 pod creates, and every 10th of
those the next one too: each walks the requests in flight and the cache's newest entries,
~150 us of CPU per create at 50 writers (a tenth of all of it). With 20,000 such
collections come about 200x less often (what a request allocates is mostly freed by
reference counting before the count gets there); the price is that cyclic garbage waits
for up to 20,000 more container allocations, a few MB at most.

A full collection writes to every object it walks, and in ``pyk8s server`` what was
frozen when the zygote was forked (:mod:`pyk8s.server.zygote`, :func:`shared`) sits on
pages the zygote and every component share with this process: a collection of them
copies all those pages (~20 MiB of imported modules). So the full collection waits
until this process has frozen at least as many objects of its own as it shares (a
server that grew, where a collection is worth it); an idle server never copies them.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger(__name__)

#: seconds between two freezes of what survived
INTERVAL = 2.0
#: seconds between two full collections (everything unfrozen, collected, frozen again)
FULL_INTERVAL = 600.0
#: the youngest generation's threshold the API server runs with (CPython's: 700)
YOUNG_THRESHOLD = 20_000
#: objects frozen when a zygote was forked from this process (their pages are shared)
_shared = 0


def shared() -> None:
    """Everything frozen now is shared with a forked process: a full collection, which
    writes to it, waits until this process has frozen as many objects of its own."""
    global _shared
    _shared = gc.get_freeze_count()


def freeze_survivors() -> None:
    """Collect what is not frozen, then freeze what is left."""
    gc.collect()
    gc.freeze()


def full_collection() -> int:
    """Unfreeze, collect everything, freeze again; the objects collected."""
    gc.unfreeze()
    found = gc.collect()
    gc.freeze()
    return found


async def run(
    interval: float = INTERVAL, full_interval: float = FULL_INTERVAL, young: int | None = None
) -> None:
    """Freeze survivors every ``interval`` seconds and collect everything every
    ``full_interval`` seconds, until cancelled (which unfreezes everything); with
    ``young``, the youngest generation's threshold meanwhile (restored at the end)."""
    last_full = time.monotonic()
    thresholds = gc.get_threshold()
    if young is not None:
        gc.set_threshold(young, *thresholds[1:])
    try:
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - last_full < full_interval or gc.get_freeze_count() < 2 * _shared:
                freeze_survivors()
                continue
            started = time.perf_counter()
            found = full_collection()
            last_full = time.monotonic()
            log.info(
                "full garbage collection: %d objects collected, %d frozen, %.0f ms",
                found,
                gc.get_freeze_count(),
                (time.perf_counter() - started) * 1000,
            )
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
