"""What the benchmark scripts share: timing concurrent operations and printing the rows.

Every row printed with :func:`table` is also drawn: when the script ends, one PNG of the
rows' latency distributions (a box per row, log scale) is written next to the script, as
``bench/<name>/<name>.png`` (issue 22: a person sees the distributions at a glance). Charts need
matplotlib; without it the script says so and prints its tables as before.
"""

from __future__ import annotations

import asyncio
import atexit
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path


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
    _charted.extend(r for r in rows if r.latencies)
    for r in rows:
        cells = f"| {r.backend} " if backend_column else ""
        out.append(
            f"{cells}| {r.what} | {r.clients} | {r.ops} | {r.rate:,.0f} | "
            f"{r.pct(0.5):.{ms_digits}f} | {r.pct(0.99):.{ms_digits}f} |"
        )
    return "\n".join(out)


#: every row printed so far, drawn at exit
_charted: list[Row] = []


def chart(rows: list[Row], path: Path) -> bool:
    """Draw ``rows``' latency distributions into ``path`` (a PNG); False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    labels = [f"{r.backend + ': ' if r.backend else ''}{r.what} (x{r.clients})" for r in rows]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.5))
    ax.boxplot(
        [[x * 1000 for x in r.latencies] for r in rows],
        vert=False,
        whis=(1, 99),  # whiskers at p1 and p99, as the tables' p99
        showfliers=False,
    )
    ax.set_yticks(range(1, len(rows) + 1), labels, fontsize=8)
    ax.invert_yaxis()  # the table's order, top down
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale); box p25-p75, line p50, whiskers p1-p99")
    ax.set_title(path.stem)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _chart_at_exit() -> None:
    if not _charted:
        return
    script = Path(sys.argv[0])
    if script.suffix != ".py":
        return
    name = script.parent.name if script.stem == "run" else script.stem
    path = script.parent / f"{name}.png"
    if chart(_charted, path):
        print(f"\nchart: {path}")
    else:
        print("\n(no chart: matplotlib is not installed)")


atexit.register(_chart_at_exit)
