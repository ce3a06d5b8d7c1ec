"""The scheduler's own metrics, named and bucketed as upstream's kube-scheduler exports
them, so dashboards and scheduler_perf-style collectors read pyk8s the same way:

* ``scheduler_schedule_attempts_total{result, profile}`` — attempts by result
  (``scheduled``, ``unschedulable``, ``error``);
* ``scheduler_scheduling_attempt_duration_seconds{result, profile}`` — one attempt, from
  the start of its scheduling cycle to its end (for ``scheduled``: to the bind's answer);
* ``scheduler_pod_scheduling_sli_duration_seconds{attempts}`` — from a pod's first
  attempt to its binding, by how many attempts it took;
* ``scheduler_pending_pods{queue}`` — pods in the ``active``, ``backoff`` and
  ``unschedulable`` queues (upstream also has ``gated``: always 0 here, no gates).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

SCHEDULED, UNSCHEDULABLE, ERROR = "scheduled", "unschedulable", "error"


def _exponential(start: float, factor: float, count: int) -> list[float]:
    return [start * factor**i for i in range(count)]


def _nth(pending: Callable[[], tuple[int, int, int]], i: int) -> Callable[[], float]:
    return lambda: float(pending()[i])


class SchedulerMetrics:
    def __init__(
        self, registry: CollectorRegistry, pending: Callable[[], tuple[int, int, int]]
    ) -> None:
        self.attempts = Counter(
            "scheduler_schedule_attempts",
            "Number of attempts to schedule pods, by the result. 'unschedulable' means a "
            "pod could not be scheduled, while 'error' means an internal scheduler problem.",
            ["result", "profile"],
            registry=registry,
        )
        self.attempt_duration = Histogram(
            "scheduler_scheduling_attempt_duration_seconds",
            "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
            ["result", "profile"],
            buckets=_exponential(0.001, 2, 15),
            registry=registry,
        )
        self.sli_duration = Histogram(
            "scheduler_pod_scheduling_sli_duration_seconds",
            "E2e latency for a pod being scheduled, from the time the pod enters the "
            "scheduling queue and might involve multiple scheduling attempts.",
            ["attempts"],
            buckets=_exponential(0.01, 2, 20),
            registry=registry,
        )
        queued = Gauge(
            "scheduler_pending_pods",
            "Number of pending pods, by the queue type. 'active' means number of pods in "
            "activeQ; 'backoff' means number of pods in backoffQ; 'unschedulable' means "
            "number of pods in unschedulablePods; 'gated' means number of pods gated.",
            ["queue"],
            registry=registry,
        )
        for i, name in enumerate(("active", "backoff", "unschedulable")):
            queued.labels(name).set_function(_nth(pending, i))
        queued.labels("gated").set(0)

    def attempt(self, profile: str, result: str, seconds: float) -> None:
        self.attempts.labels(result, profile).inc()
        self.attempt_duration.labels(result, profile).observe(seconds)

    def scheduled(self, attempts: int, since_first_attempt: float) -> None:
        """A pod bound after ``attempts`` attempts (upstream's label: 1…15, then 15+)."""
        label = str(attempts) if attempts < 16 else "15+"
        self.sli_duration.labels(label).observe(since_first_attempt)
