"""The pure timeline: a pod and Events shaped as pyk8s's scheduler and real kubelet record
them (EventRecorder: ``<pod>.<UnixNano hex>`` names, whole-second firstTimestamp)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pyk8s.trace.timeline import build, event_time

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
UID = "u-1"


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def ev(
    reason: str, message: str, seconds: float, kind: str = "Normal", **kw: Any
) -> dict[str, Any]:
    t = at(seconds)
    return {
        "metadata": {"name": f"p.{int(t.timestamp() * 1e9):x}", "namespace": "ns"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "ns", "uid": UID},
        "reason": reason,
        "message": message,
        "type": kind,
        "firstTimestamp": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
        **kw,
    }


def pod(status: dict[str, Any], node: str = "n1") -> dict[str, Any]:
    return {
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "uid": UID,
            "creationTimestamp": T0.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "nope:1"}]},
        "status": status,
    }


def test_event_time_prefers_eventtime_then_the_names_nanoseconds() -> None:
    e = ev("Scheduled", "x", 0.25)
    assert event_time(e) == (at(0.25), True)
    e["eventTime"] = "2026-01-02T03:04:05.500000Z"
    assert event_time(e) == (at(0.5), True)
    odd = ev("Scheduled", "x", 0.25)
    odd["metadata"]["name"] = "p.deadbeefdeadbeef"  # not this event's time: ignored
    assert event_time(odd) == (T0, False)


def test_missing_image_ends_at_the_pull_error() -> None:
    err = 'Failed to pull image "nope:1": not found'
    status = {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "True",
                "lastTransitionTime": "2026-01-02T03:04:05Z",
            },
            {"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-02T03:04:05Z"},
        ],
        "containerStatuses": [
            {"name": "app", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "x"}}}
        ],
    }
    events = [
        ev("Scheduled", "Successfully assigned ns/p to n1", 0.1),
        ev("Pulling", 'Pulling image "nope:1"', 0.3, count=3),
        ev("Failed", err, 0.4, "Warning"),
        ev("Failed", "Error: ErrImagePull", 0.4, "Warning"),
        ev("BackOff", 'Back-off pulling image "nope:1"', 1.5),
        ev("Scheduled", "an earlier pod of the same name", 0.2)
        | {"involvedObject": {"uid": "old"}},
    ]
    tl = build(pod(status), events)
    assert tl.result == "Failed"
    steps = [(s.step, s.failed) for s in tl.steps]
    assert steps == [
        ("Created", False),
        ("Scheduled", False),
        ("Pulling nope:1", False),
        ("PullFailed nope:1", True),
    ]
    assert tl.steps[-1].detail == err
    rows = tl.rows()
    assert [r["gapSeconds"] for r in rows] == [0.0, 0.1, 0.2, 0.1]
    assert rows[2]["detail"].endswith("(x3)")


def test_spans_add_the_steps_no_event_tells_and_a_sub_second_ready() -> None:
    """The components' spans (pyk8s.api.spans): admission and the write from one span,
    the binding write replacing the scheduler's later Event, the scheduler's filtered-out
    counts, the kubelet's steps, and Ready from the status write; a whole-second
    condition never sorts before the sub-second step that caused it."""
    p = pod(
        {
            "phase": "Running",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastTransitionTime": "2026-01-02T03:04:05Z",
                },
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-02T03:04:06Z"},
            ],
        }
    )
    base = T0.timestamp()

    def span(name: str, start: float, end: float, **attrs: Any) -> dict[str, Any]:
        return {"name": name, "start": base + start, "end": base + end, "attributes": attrs}

    spans = [
        span(
            "apiserver.create", 0.10, 0.13, mutatedBy=["ServiceAccount"], admittedAt=base + 0.11,
            validatedAt=base + 0.12, resourceVersion="7",
        ),
        span("scheduler.queue", 0.14, 0.15),
        span(
            "scheduler.schedule", 0.15, 0.16, node="n1", score=90, nodes=3, feasibleNodes=1,
            filteredOut={"node(s) didn't match Pod's node affinity/selector": 2}, attempt=1,
        ),
        span("apiserver.binding", 0.20, 0.21, node="n1", user="system:kube-scheduler"),
        span("kubelet.seen", 0.22, 0.22, node="n1"),
        span("kubelet.sandbox", 0.25, 0.30, ips=["10.42.0.5"]),
        span("kubelet.ready", 0.90, 0.91),
    ]  # fmt: skip
    late_event = ev("Scheduled", "Successfully assigned ns/p to n1", 0.95)
    tl = build(p, [late_event], spans=spans)
    steps = [(s.step, round(s.time.timestamp() - base, 2)) for s in tl.steps]
    assert steps == [
        ("Created", 0.0),
        ("Admitted", 0.11),
        ("Stored", 0.12),
        ("Queued", 0.14),
        ("SchedulingCycle", 0.15),
        ("Scheduled", 0.2),
        ("SeenByKubelet", 0.22),
        ("SandboxCreated", 0.3),
        ("Ready", 0.9),
    ]
    detail = {s.step: s.detail for s in tl.steps}
    assert detail["Admitted"].startswith("mutated by: ServiceAccount")
    assert "picked n1 (score 90); 1/3 nodes feasible" in detail["SchedulingCycle"]
    assert "filtered out: 2 node(s) didn't match" in detail["SchedulingCycle"]
    assert detail["Scheduled"].startswith("bound to n1 by system:kube-scheduler")
    assert detail["SandboxCreated"].startswith("10.42.0.5")
    rows = tl.rows()
    assert abs(sum(r["gapSeconds"] for r in rows) - rows[-1]["sinceCreatedSeconds"]) < 1e-6
    assert tl.result == "Ready" and all(r["precise"] for r in rows[1:])
