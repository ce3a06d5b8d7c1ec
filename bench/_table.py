"""What the benchmark scripts share: timing concurrent operations and printing the rows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass
class Row:
    """One measured operation: ``ops`` runs by ``clients`` workers in ``seconds``."""

    what: str
    clients: int
    ops: int
    seconds: float
    latencies: list[float]
    backend: str = ""

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        """The ``q`` quantile of the latencies, in milliseconds (NaN when none)."""
        if not self.latencies:
            return float("nan")
        s = sorted(self.latencies)
        return s[min(len(s) - 1, int(q * len(s)))] * 1000


async def timed(
    what: str,
    clients: int,
    ops: int,
    one: Callable[[int], Awaitable[object]],
    *,
    backend: str = "",
) -> Row:
    """Run ``one(i)`` for i in range(ops) on ``clients`` concurrent workers."""
    latencies: list[float] = []
    counter = iter(range(ops))

    async def worker() -> None:
        for i in counter:
            t = time.perf_counter()
            await one(i)
            latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return Row(what, clients, ops, time.perf_counter() - start, latencies, backend)


def table(rows: list[Row], *, backend_column: bool = False, ms_digits: int = 1) -> str:
    """The rows as a markdown table: rate, p50 and p99 (``ms_digits`` after the point)."""
    first = "| backend " if backend_column else ""
    out = [
        f"{first}| operation | clients | ops | ops/s | p50 ms | p99 ms |",
        ("|---" if backend_column else "") + "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = f"| {r.backend} " if backend_column else ""
        out.append(
            f"{cells}| {r.what} | {r.clients} | {r.ops} | {r.rate:,.0f} | "
            f"{r.pct(0.5):.{ms_digits}f} | {r.pct(0.99):.{ms_digits}f} |"
        )
    return "\n".join(out)
