"""The scheduling queue: priority order, 1 s → 10 s backoff, unschedulable pods moved
back on cluster events."""

from __future__ import annotations

from pyk8s.scheduler.plugins.queuesort import PrioritySort
from pyk8s.scheduler.queue import SchedulingQueue


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def pod(name: str, priority: int = 0) -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": {"priority": priority}}


async def test_priority_then_fifo() -> None:
    clock = Clock()
    q = SchedulingQueue(PrioritySort(), clock)
    for name, prio in (("a", 0), ("b", 10), ("c", 0)):
        q.add(pod(name, prio))
        clock.t += 1
    order = []
    for _ in range(3):
        info = await q.pop()
        assert info is not None
        order.append(info.pod["metadata"]["name"])  # type: ignore[index]
    assert order == ["b", "a", "c"]


async def test_backoff_doubles_to_ten_seconds() -> None:
    clock = Clock()
    q = SchedulingQueue(PrioritySort(), clock)
    q.add(pod("a"))
    durations = []
    for _ in range(6):
        info = await q.pop()
        assert info is not None
        durations.append(q.backoff_duration(info))
        q.add_unschedulable(info, error=True)
        assert q.pending() == (0, 1, 0)
        clock.t += q.backoff_duration(info)
    assert durations == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


async def test_unschedulable_moved_on_event_and_after_five_minutes() -> None:
    clock = Clock()
    q = SchedulingQueue(PrioritySort(), clock)
    q.add(pod("a"))
    info = await q.pop()
    assert info is not None
    q.add_unschedulable(info)
    assert q.pending() == (0, 0, 1)
    clock.t += 5
    q.move_all_to_active_or_backoff("NodeAdd")
    assert q.pending() == (1, 0, 0)
    info = await q.pop()
    assert info is not None
    q.add_unschedulable(info)
    assert q.pending() == (0, 0, 1)
    clock.t += 299
    q.flush()
    assert q.pending() == (0, 0, 1)
    clock.t += 2
    q.flush()
    assert q.pending() == (1, 0, 0)


async def test_failure_during_a_move_goes_to_backoff() -> None:
    clock = Clock()
    q = SchedulingQueue(PrioritySort(), clock)
    q.add(pod("a"))
    info = await q.pop()
    assert info is not None
    q.move_all_to_active_or_backoff("NodeAdd")  # while "a" was being scheduled
    q.add_unschedulable(info)
    assert q.pending() == (0, 1, 0)


async def test_deleted_pod_is_gone() -> None:
    q = SchedulingQueue(PrioritySort(), Clock())
    q.add(pod("a"))
    q.delete("ns/a")
    assert q.pending() == (0, 0, 0)


async def test_status_only_update_does_not_retry_an_unschedulable_pod() -> None:
    clock = Clock()
    q = SchedulingQueue(PrioritySort(), clock)
    q.add(pod("a"))
    info = await q.pop()
    assert info is not None
    q.add_unschedulable(info)
    with_status = {**pod("a"), "status": {"conditions": [{"type": "PodScheduled"}]}}
    q.update(with_status)
    assert q.pending() == (0, 0, 1)
    relabelled = {**with_status, "metadata": {"name": "a", "namespace": "ns", "labels": {"x": "y"}}}
    q.update(relabelled)
    assert q.pending() == (0, 1, 0)  # changed: retried once its backoff is over
    clock.t += 1
    q.flush()
    assert q.pending() == (1, 0, 0)
