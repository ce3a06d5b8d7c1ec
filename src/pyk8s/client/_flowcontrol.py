"""Token buckets: the one rate-limiting primitive the client, the workqueue and events share.

client-go limits every component's request rate (``--kube-api-qps``/``--kube-api-burst``)
and every controller's retry rate with the same bucket, so a misbehaving controller slows
down instead of flooding the API server. ``reserve`` is the core: it takes a token now,
possibly going into debt, and says how long the caller must wait for it — which is what a
workqueue needs (a delay to schedule) and what an async caller needs (a sleep).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """``burst`` tokens, refilled at ``qps`` per second; ``qps <= 0`` means unlimited."""

    # slots: an event recorder keeps one per object it reported on (4,096 of them)
    __slots__ = ("_clock", "_last", "_tokens", "burst", "qps")

    def __init__(self, qps: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.qps = float(qps)
        self.burst = max(1, int(burst))
        self._clock = clock
        self._tokens = float(self.burst)
        self._last = clock()

    @property
    def unlimited(self) -> bool:
        return self.qps <= 0

    def _refill(self) -> None:
        now = self._clock()
        if now > self._last:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
            self._last = now

    def try_accept(self) -> bool:
        """Take a token if one is there now; never waits."""
        if self.unlimited:
            return True
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def reserve(self) -> float:
        """Take a token (into debt if need be); the seconds until it is really ours."""
        if self.unlimited:
            return 0.0
        self._refill()
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.qps

    async def acquire(self) -> None:
        """Wait for a token."""
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)
