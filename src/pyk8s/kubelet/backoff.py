"""Per-key exponential back-off with upstream's semantics (``flowcontrol.Backoff``).

The kubelet restarts a crashed container, and retries a failed image pull, under a
back-off keyed by pod and container (or image): the first retry is immediate, then it
waits 10 s, 20 s, 40 s … up to 5 minutes; an entry untouched for twice the maximum (a
container that ran for 10 minutes) starts again at 10 s. ``in_backoff_since(key, t)`` says
whether an event at ``t`` (the container's exit) is still inside the current delay;
``next(key)`` is called when the retry happens and grows the delay.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["INITIAL", "MAXIMUM", "Backoff"]

INITIAL = 10.0
MAXIMUM = 300.0


@dataclass
class _Entry:
    delay: float
    last_update: float


class Backoff:
    def __init__(
        self,
        initial: float = INITIAL,
        maximum: float = MAXIMUM,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.initial, self.maximum, self.clock = initial, maximum, clock
        self._entries: dict[str, _Entry] = {}

    def _live(self, key: str, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and now - entry.last_update > 2 * self.maximum:
            del self._entries[key]
            return None
        return entry

    def delay(self, key: str) -> float:
        entry = self._live(key, self.clock())
        return entry.delay if entry is not None else 0.0

    def in_backoff_since(self, key: str, event_time: float) -> bool:
        """True while ``event_time`` is less than the current delay ago."""
        now = self.clock()
        entry = self._live(key, now)
        return entry is not None and now - event_time < entry.delay

    def remaining(self, key: str, event_time: float) -> float:
        """Seconds until the back-off after ``event_time`` ends (0 if it has)."""
        now = self.clock()
        entry = self._live(key, now)
        return max(0.0, event_time + entry.delay - now) if entry is not None else 0.0

    def next(self, key: str) -> None:
        """Record a retry now: the first sets the initial delay, later ones double it."""
        now = self.clock()
        entry = self._live(key, now)
        if entry is None:
            self._entries[key] = _Entry(self.initial, now)
        else:
            entry.delay = min(entry.delay * 2, self.maximum)
            entry.last_update = now

    def forget(self, prefix: str) -> None:
        """Drop every entry whose key starts with ``prefix`` (a deleted pod)."""
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]
