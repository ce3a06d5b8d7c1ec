"""The scheduling queue, upstream's ``PriorityQueue``: three places a pending pod can be.

* **activeQ** — ready to be tried, a heap ordered by the QueueSort plugin (PrioritySort:
  higher priority first, then first come);
* **backoffQ** — failed recently; waits 1 s, doubling per attempt up to 10 s, then back to
  activeQ (upstream's ``podInitialBackoffDuration`` / ``podMaxBackoffDuration``);
* **unschedulable** — no node fits; stays until a cluster event could change that (a node
  added or updated, an assigned pod deleted: :meth:`move_all_to_active_or_backoff`) or
  5 minutes pass (``podMaxInUnschedulablePodsDuration``).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from pyk8s.scheduler.framework.interface import QueueSortPlugin
from pyk8s.scheduler.framework.types import Obj, pod_key

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 10.0
MAX_UNSCHEDULABLE = 300.0


@dataclass
class QueuedPodInfo:
    pod: Obj
    timestamp: float
    attempts: int = 0
    initial_attempt: float | None = None
    #: when its latest attempt (scheduling cycle) began
    attempt_start: float = 0.0
    last_failure: float = 0.0
    unschedulable_plugins: set[str] = field(default_factory=set)
    cycle: int = -1

    @property
    def key(self) -> str:
        return pod_key(self.pod)


def _strip(pod: Obj) -> Obj:
    meta = {
        k: v
        for k, v in (pod.get("metadata") or {}).items()
        if k not in ("resourceVersion", "generation", "managedFields")
    }
    return {k: v for k, v in pod.items() if k != "status"} | {"metadata": meta}


def _updated(old: Obj, new: Obj) -> bool:
    """Upstream's ``isPodUpdated``: anything but status and bookkeeping changed."""
    return _strip(old) != _strip(new)


class _Entry:
    __slots__ = ("info", "less")

    def __init__(self, info: QueuedPodInfo, less: QueueSortPlugin) -> None:
        self.info, self.less = info, less

    def __lt__(self, other: _Entry) -> bool:
        a, b = self.info, other.info
        return self.less.less(a.pod, a.timestamp, b.pod, b.timestamp)


class SchedulingQueue:
    def __init__(self, sort: QueueSortPlugin, clock: Callable[[], float] = time.monotonic) -> None:
        self.sort = sort
        self.clock = clock
        self._active: list[_Entry] = []
        self._in_active: dict[str, QueuedPodInfo] = {}
        self._backoff: dict[str, QueuedPodInfo] = {}
        self._unschedulable: dict[str, QueuedPodInfo] = {}
        self._in_flight: dict[str, QueuedPodInfo] = {}
        #: bumped by every move request; a pod that failed in a cycle that started before
        #: a move goes to backoff, not to unschedulable (it might fit now)
        self._move_cycle = 0
        self._wakeup = asyncio.Event()
        self._closed = False

    # ---------------------------------------------------------------- sizes (tests)

    def pending(self) -> tuple[int, int, int]:
        return len(self._in_active), len(self._backoff), len(self._unschedulable)

    def __contains__(self, key: str) -> bool:
        return key in self._in_active or key in self._backoff or key in self._unschedulable

    # ---------------------------------------------------------------- adding

    def _push_active(self, info: QueuedPodInfo) -> None:
        self._in_active[info.key] = info
        heapq.heappush(self._active, _Entry(info, self.sort))
        self._wakeup.set()

    def add(self, pod: Obj) -> None:
        key = pod_key(pod)
        if key in self._in_flight:
            self._in_flight[key].pod = pod
            return
        if key in self._in_active:
            self._in_active[key].pod = pod
            return
        for q in (self._backoff, self._unschedulable):
            info = q.get(key)
            if info is not None:
                changed = _updated(info.pod, pod)
                info.pod = pod
                if not changed or q is self._backoff:
                    return  # a status-only change (often our own condition) changes nothing
                # a changed pod is tried again: its new spec or labels may fit now
                del q[key]
                if self.backoff_left(info) > 0:
                    self._backoff[key] = info
                else:
                    self._push_active(info)
                return
        self._push_active(QueuedPodInfo(pod, self.clock()))

    update = add

    def delete(self, key: str) -> None:
        self._backoff.pop(key, None)
        self._unschedulable.pop(key, None)
        self._in_flight.pop(key, None)
        info = self._in_active.pop(key, None)
        if info is not None:
            self._active = [e for e in self._active if e.info is not info]
            heapq.heapify(self._active)

    # ---------------------------------------------------------------- popping

    async def pop(self) -> QueuedPodInfo | None:
        """The next pod to schedule; None once closed."""
        while True:
            self.flush()
            while self._active:
                entry = heapq.heappop(self._active)
                info = entry.info
                if self._in_active.get(info.key) is not info:
                    continue  # deleted or replaced
                del self._in_active[info.key]
                info.attempts += 1
                info.attempt_start = self.clock()
                if info.initial_attempt is None:
                    info.initial_attempt = info.attempt_start
                self._in_flight[info.key] = info
                info.unschedulable_plugins = set()
                info.cycle = self._move_cycle
                return info
            if self._closed:
                return None
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._next_timer())

    def _next_timer(self) -> float:
        waits = [self.backoff_left(i) for i in self._backoff.values()]
        return max(0.05, min(waits)) if waits else 1.0

    def retry_later(self, info: QueuedPodInfo) -> None:
        """A pod whose binding (after the cycle) failed: back off, then try again."""
        self._in_flight[info.key] = info
        self.add_unschedulable(info, error=True)

    def done(self, key: str) -> None:
        """The pod left the scheduling cycle (bound, or assumed and being bound)."""
        self._in_flight.pop(key, None)

    # ---------------------------------------------------------------- failures

    def backoff_duration(self, info: QueuedPodInfo) -> float:
        d: float = INITIAL_BACKOFF * float(2 ** max(info.attempts - 1, 0))
        return min(d, MAX_BACKOFF)

    def backoff_left(self, info: QueuedPodInfo) -> float:
        return float(info.last_failure + self.backoff_duration(info) - self.clock())

    def add_unschedulable(self, info: QueuedPodInfo, error: bool = False) -> None:
        """After a failed attempt: to backoff (errors, or a move happened meanwhile) or to
        the unschedulable pods."""
        if self._in_flight.pop(info.key, None) is None:
            return  # deleted while being scheduled
        info.last_failure = self.clock()
        if error or info.cycle != self._move_cycle:
            self._backoff[info.key] = info
        else:
            self._unschedulable[info.key] = info
        self._wakeup.set()

    def move_all_to_active_or_backoff(
        self, event: str = "", plugins: Collection[str] | None = None
    ) -> None:
        """A cluster event that may make unschedulable pods fit; with ``plugins`` (those
        registered for the event) only the pods one of them rejected, or that no plugin
        is known to have rejected, move (upstream's event registration)."""
        self._move_cycle += 1
        for key, info in list(self._unschedulable.items()):
            rejected_by = info.unschedulable_plugins
            if plugins is not None and rejected_by and not rejected_by & set(plugins):
                continue
            del self._unschedulable[key]
            if self.backoff_left(info) > 0:
                self._backoff[key] = info
            else:
                self._push_active(info)
        self._wakeup.set()

    def flush(self) -> None:
        """Backoff pods whose time is up → active; unschedulable for 5 minutes → active
        or backoff."""
        now = self.clock()
        for key, info in list(self._backoff.items()):
            if self.backoff_left(info) <= 0:
                del self._backoff[key]
                self._push_active(info)
        for key, info in list(self._unschedulable.items()):
            if now - info.last_failure >= MAX_UNSCHEDULABLE:
                del self._unschedulable[key]
                self._push_active(info)

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()
