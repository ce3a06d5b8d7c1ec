"""One controller: a work queue of :class:`Request` keys, workers, and reconcile."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram

from pyk8s.client import ApiError, SharedInformer
from pyk8s.client.workqueue import RateLimitingQueue, ShutDown

log = logging.getLogger(__name__)

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Request:
    """What to reconcile: one object's namespace ("" for cluster-scoped) and name."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True, slots=True)
class Result:
    requeue: bool = False
    requeue_after: float = 0.0


class TerminalError(Exception):
    """A reconcile failure that retrying cannot fix: logged, not requeued."""


class Reconciler(Protocol):
    async def reconcile(self, request: Request) -> Result | None: ...


#: turns an informer event's object into the keys to reconcile
Mapper = Callable[[Obj], Iterable[Request]]


def enqueue_object(obj: Obj) -> Iterable[Request]:
    """The object itself."""
    meta = obj.get("metadata") or {}
    yield Request(meta.get("namespace", ""), meta.get("name", ""))


def enqueue_owner(kind: str, api_version: str | None = None) -> Mapper:
    """The object's controlling owner of ``kind`` (ownerReferences with controller=true)."""

    def mapper(obj: Obj) -> Iterable[Request]:
        meta = obj.get("metadata") or {}
        for ref in meta.get("ownerReferences") or ():
            if not ref.get("controller") or ref.get("kind") != kind:
                continue
            if api_version is not None and ref.get("apiVersion") != api_version:
                continue
            yield Request(meta.get("namespace", ""), ref.get("name", ""))

    return mapper


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.reconciles = Counter(
            "controller_runtime_reconcile_total",
            "Reconciles by controller and result",
            ["controller", "result"],
            registry=registry,
        )
        self.duration = Histogram(
            "controller_runtime_reconcile_time_seconds",
            "Reconcile latency by controller",
            ["controller"],
            registry=registry,
        )


class Controller:
    """A named reconciler with its queue; :meth:`watch` wires informers to the queue."""

    def __init__(
        self,
        name: str,
        reconciler: Reconciler,
        *,
        workers: int = 2,
        metrics: ControllerMetrics | None = None,
    ) -> None:
        self.name = name
        self.reconciler = reconciler
        self.workers = workers
        self.queue: RateLimitingQueue[Request] = RateLimitingQueue(name=name)
        self.metrics = metrics
        self._tasks: list[asyncio.Task[None]] = []

    def watch(self, informer: SharedInformer, mapper: Mapper = enqueue_object) -> None:
        """Enqueue what ``mapper`` makes of every add, update and delete."""

        def enqueue(obj: Obj) -> None:
            for req in mapper(obj):
                if req.name:
                    self.queue.add(req)

        def on_update(old: Obj, new: Obj) -> None:
            enqueue(old)
            enqueue(new)

        informer.add_event_handler(on_add=enqueue, on_update=on_update, on_delete=enqueue)

    def start(self) -> None:
        for i in range(self.workers):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"{self.name}-{i}"))

    async def stop(self) -> None:
        self.queue.shutdown()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()

    async def _worker(self) -> None:
        while True:
            try:
                req = await self.queue.get()
            except ShutDown:
                return
            try:
                await self._reconcile(req)
            finally:
                self.queue.done(req)

    async def _reconcile(self, req: Request) -> None:
        start = time.perf_counter()
        outcome = "success"
        try:
            result = await self.reconciler.reconcile(req)
        except asyncio.CancelledError:
            raise
        except TerminalError as err:
            outcome = "error"
            log.error("%s: %s: terminal error: %s", self.name, req, err)
            self.queue.forget(req)
        except ApiError as err:
            outcome = "error"
            if err.is_not_found() or err.is_conflict():
                # the object (or one it writes) went away or moved while being reconciled:
                # the next pass reads the cache again, as upstream's controllers retry
                log.info("%s: reconciling %s: %s; requeued", self.name, req, err)
            else:
                log.exception("%s: reconciling %s failed; requeued with backoff", self.name, req)
            self.queue.add_rate_limited(req)
        except Exception:
            outcome = "error"
            log.exception("%s: reconciling %s failed; requeued with backoff", self.name, req)
            self.queue.add_rate_limited(req)
        else:
            if result is not None and result.requeue_after > 0:
                self.queue.forget(req)
                self.queue.add_after(req, result.requeue_after)
                outcome = "requeue_after"
            elif result is not None and result.requeue:
                self.queue.add_rate_limited(req)
                outcome = "requeue"
            else:
                self.queue.forget(req)
        finally:
            if self.metrics is not None:
                self.metrics.reconciles.labels(self.name, outcome).inc()
                self.metrics.duration.labels(self.name).observe(time.perf_counter() - start)
