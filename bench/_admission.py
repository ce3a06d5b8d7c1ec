"""What the admission benchmarks share: timed pod creates, and waiting until the server
has seen an admission change (a dry-run probe refused, or admitted again)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bench._cluster import Api, pod_body
from bench._table import Row, timed


async def creates(api: Api, label: str, clients: int, ops: int, run: int) -> Row:
    """``ops`` pod creates in namespace ``bench`` by ``clients`` workers, named per run."""
    return await timed(
        label,
        clients,
        ops,
        lambda i: api.request_bytes(
            "POST", "/api/v1/namespaces/bench/pods", pod_body(f"r{run}-c{clients}-{i:06d}")
        ),
    )


async def wait_for(
    api: Api, refused: Callable[[Api], Awaitable[bool]], want_refused: bool, change: str
) -> None:
    """Poll the ``refused`` probe until it answers ``want_refused`` (30 s at most)."""
    for _ in range(600):
        if await refused(api) == want_refused:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the server did not pick up the {change} change")
