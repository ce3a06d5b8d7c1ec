"""Spans from a component to the API server's span store, in batches.

Why: the scheduler and the kubelet know steps of a pod's journey no Event tells (the
nodes filtered out and why, when the kubelet first saw the pod, how long volumes and the
sandbox took). :class:`SpanExporter` is their OpenTelemetry batch span processor: ``record``
only appends to a bounded buffer (it never blocks or raises), and one background task
sends what gathered every ``interval`` seconds as one ``POST /debug/traces/spans``, so a
busy scheduler pays one request per interval, not one per pod. Spans are a debugging aid:
a full buffer drops the newest, and a failed send is dropped after being logged.
The store and who may write it: :mod:`pyk8s.apiserver.tracing`; the span shape and trace
context: :mod:`pyk8s.api.spans`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pyk8s.api.spans import SPANS_PATH, Span, pod_span

if TYPE_CHECKING:
    from pyk8s.client.rest import Client

__all__ = ["SpanExporter"]

log = logging.getLogger(__name__)

INTERVAL = 0.5
MAX_BUFFER = 8192
MAX_BATCH = 1024


class SpanExporter:
    """``exporter.record(pod, "scheduler.schedule", start, end, {...})``; ``await
    exporter.flush()`` sends what is buffered now (tests), ``await exporter.close()`` at
    shutdown."""

    def __init__(self, client: Client, service: str, *, interval: float = INTERVAL) -> None:
        self.client = client
        self.service = service
        self.interval = interval
        self._buffer: list[Span] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.dropped = 0

    def record(
        self,
        pod: Mapping[str, Any],
        name: str,
        start: float,
        end: float,
        attributes: Mapping[str, Any] | None = None,
        *,
        parent: str = "",
    ) -> str:
        """Buffer one span about ``pod``; its span ID (for children)."""
        span = pod_span(pod, name, self.service, start, end, attributes, parent=parent)
        if self._closed or len(self._buffer) >= MAX_BUFFER:
            self.dropped += 1
            return str(span["spanId"])
        self._buffer.append(span)
        if self._task is None or self._task.done():
            with contextlib.suppress(RuntimeError):  # no running loop: sent by flush()
                self._task = asyncio.get_running_loop().create_task(
                    self._run(), name=f"spans:{self.service}"
                )
        return str(span["spanId"])

    async def flush(self) -> None:
        while self._buffer:
            batch, self._buffer = self._buffer[:MAX_BATCH], self._buffer[MAX_BATCH:]
            try:
                await self.client.request("POST", SPANS_PATH, body={"spans": batch})
            except Exception as err:  # best effort: spans never fail a component
                log.warning("could not send %d spans: %s", len(batch), err)

    async def close(self) -> None:
        """Send what is buffered (best effort, 5 s at most), then stop."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), 5.0)

    async def _run(self) -> None:
        while self._buffer:
            await asyncio.sleep(self.interval)
            await self.flush()
