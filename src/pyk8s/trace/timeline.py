"""A pod and its Events → ordered timeline steps (pure: no I/O, unit-testable).

Precision: an Event's time is its ``eventTime`` (MicroTime) when set, else the creation
time upstream's and pyk8s's recorders encode in the Event's name
(``<object>.<UnixNano in hex>``) when it agrees with ``firstTimestamp``, else
``firstTimestamp`` (whole seconds). Conditions' ``lastTransitionTime``, container
``startedAt`` and ``creationTimestamp`` are whole seconds in the API, so those steps are
marked imprecise. Two sub-second steps sort by time; a whole-second step ties with
everything in its second and the tie goes to the step's place in a pod's life, so a
second-rounded condition never lands before the sub-second event that caused it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PULL_FAILURES", "Step", "Timeline", "build", "event_time", "parse_time"]

Obj = dict[str, Any]

#: container waiting reasons that end a pod's journey until someone fixes the spec/image
PULL_FAILURES = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"}
)
_STUCK = PULL_FAILURES | {"CreateContainerConfigError", "CreateContainerError"}

# a step's place in a pod's life, for ties within one second
_RANK = {
    k: i
    for i, k in enumerate(
        (
            "Created",
            "Admitted",
            "Stored",
            "Queued",
            "SchedulingCycle",
            "FailedScheduling",
            "Scheduled",
            "Bound",
            "SeenByKubelet",
            "VolumesMounted",
            "SandboxCreated",
            "PodReadyToStartContainers",
            "Pulling",
            "Pulled",
            "PullBackOff",
            "InitContainerCreated",
            "InitContainerStarted",
            "InitContainerFinished",
            "Initialized",
            "ContainerCreated",
            "ContainerStarted",
            "ContainersReady",
            "Ready",
        )
    )
}
_RANK.update(PodScheduled=_RANK["Scheduled"], PullFailed=_RANK["Pulled"])
_DEFAULT_RANK = _RANK["Pulling"]
_HEX_SUFFIX = re.compile(r"\.([0-9a-f]{12,})$")
_IMAGE = re.compile(r'image "([^"]*)"')
_CONTAINER = re.compile(r"container (\S+)$")


def parse_time(value: Any) -> dt.datetime | None:
    """An RFC 3339 time (``Z`` or offset, with or without fraction) as an aware datetime."""
    if not value or not isinstance(value, str):
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def event_time(ev: Mapping[str, Any]) -> tuple[dt.datetime | None, bool]:
    """The most precise first-occurrence time of an Event, and whether it is sub-second."""
    micro = parse_time(ev.get("eventTime"))
    if micro is not None:
        return micro, True
    first = parse_time(ev.get("firstTimestamp")) or parse_time(
        (ev.get("metadata") or {}).get("creationTimestamp")
    )
    m = _HEX_SUFFIX.search(str((ev.get("metadata") or {}).get("name", "")))
    if m:
        named = dt.datetime.fromtimestamp(int(m.group(1), 16) / 1e9, dt.UTC)
        if first is None or 0 <= (named - first).total_seconds() < 1:
            return named, True
    return first, False


@dataclass
class Step:
    step: str
    time: dt.datetime
    detail: str = ""
    precise: bool = False
    failed: bool = False
    kind: str = ""  # the _RANK key


def _sorted(steps: list[Step]) -> list[Step]:
    """Sub-second steps by time; a whole-second step goes after the sub-second steps of
    its second that come earlier in a pod's life (and before the rest), so a
    second-rounded condition never lands before the sub-second event that caused it.
    One sort key per step: a total order however the two kinds mix."""

    def rank(s: Step) -> int:
        return _RANK.get(s.kind, _DEFAULT_RANK)

    precise = [(s.time.timestamp(), rank(s)) for s in steps if s.precise]

    def key(s: Step) -> tuple[float, int]:
        t = s.time.timestamp()
        if s.precise:
            return t, rank(s)
        second = float(int(t))
        before = [p for p, r in precise if int(p) == second and r < rank(s)]
        return max([second, *before]), rank(s)

    return sorted(steps, key=key)


@dataclass
class Timeline:
    namespace: str
    name: str
    uid: str
    node: str
    phase: str
    #: "Ready", "Failed" (a terminal or stuck state: unschedulable, image pull, …),
    #: "Succeeded" or "InProgress"
    result: str
    steps: list[Step] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.result != "InProgress"

    def rows(self) -> list[Obj]:
        """The steps with the gap since the previous and the offset from the first."""
        out: list[Obj] = []
        start = prev = self.steps[0].time if self.steps else None
        for s in self.steps:
            assert start is not None and prev is not None
            gap = max(0.0, (s.time - prev).total_seconds())
            out.append(
                {
                    "step": s.step,
                    "time": _format(s.time, s.precise),
                    "precise": s.precise,
                    "gapSeconds": round(gap, 6),
                    "sinceCreatedSeconds": round((s.time - start).total_seconds(), 6),
                    "detail": s.detail,
                    "failed": s.failed,
                }
            )
            prev = max(prev, s.time)
        return out

    def to_json(self) -> Obj:
        return {
            "pod": {"namespace": self.namespace, "name": self.name, "uid": self.uid},
            "node": self.node,
            "phase": self.phase,
            "result": self.result,
            "steps": self.rows(),
        }


def _format(t: dt.datetime, precise: bool) -> str:
    if precise:
        return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _event_step(ev: Obj, init_names: set[str]) -> Step | None:
    t, precise = event_time(ev)
    if t is None:
        return None
    reason = str(ev.get("reason", ""))
    message = str(ev.get("message", ""))
    count = int(ev.get("count") or (ev.get("series") or {}).get("count") or 1)
    more = f" (x{count})" if count > 1 else ""
    warning = ev.get("type") == "Warning"
    image = _IMAGE.search(message)
    container = _CONTAINER.search(message)
    kind, step, failed = reason, reason, warning
    if reason == "Pulling":
        step = f"Pulling {image.group(1)}" if image else "Pulling"
    elif reason == "Pulled":
        step = f"Pulled {image.group(1)}" if image else "Pulled"
    elif reason == "Failed" and message.startswith("Error: "):
        return None  # the short twin of the message that says why
    elif reason == "Failed" and "pull" in message.lower():
        kind, step = "PullFailed", f"PullFailed {image.group(1)}" if image else "PullFailed"
    elif reason == "BackOff" and "pulling image" in message:
        kind, step, failed = "PullBackOff", "ImagePullBackOff", True
    elif reason == "ErrImageNeverPull":
        kind, failed = "PullFailed", True
    elif reason in ("Created", "Started") and container:
        kind = "ContainerCreated" if reason == "Created" else "ContainerStarted"
        kind = f"Init{kind}" if container.group(1) in init_names else kind
        step = f"{reason} {container.group(1)}"
    return Step(step, t, message + more, precise, failed, kind)


def _condition_steps(status: Obj, have: set[str]) -> list[Step]:
    out: list[Step] = []
    for c in status.get("conditions") or []:
        ctype, t = str(c.get("type", "")), parse_time(c.get("lastTransitionTime"))
        if t is None or ctype not in _RANK:
            continue
        if c.get("status") == "True":
            if (ctype == "PodScheduled" and "Scheduled" in have) or (
                ctype == "Ready" and "Ready" in have  # the kubelet's span: sub-second
            ):
                continue
            detail = "condition True"
            if ctype == "PodReadyToStartContainers" and status.get("podIP"):
                detail += f"; sandbox address {status['podIP']}"
            out.append(Step(ctype, t, detail, kind=ctype))
        elif ctype == "PodScheduled" and "FailedScheduling" not in have:
            detail = f"{c.get('reason', '')}: {c.get('message', '')}".strip(": ")
            out.append(Step("FailedScheduling", t, detail, failed=True, kind="FailedScheduling"))
    return out


def _container_steps(status: Obj, started_events: set[str]) -> list[Step]:
    out: list[Step] = []
    for key, init in (("initContainerStatuses", True), ("containerStatuses", False)):
        for cs in status.get(key) or []:
            name = str(cs.get("name", ""))
            state = cs.get("state") or {}
            run = state.get("running") or state.get("terminated") or {}
            started = parse_time(run.get("startedAt"))
            label = "init container" if init else "container"
            if started is not None and name not in started_events:
                out.append(
                    Step(
                        f"Started {name}",
                        started,
                        f"{label} startedAt",
                        kind="InitContainerStarted" if init else "ContainerStarted",
                    )
                )
            finished = parse_time((state.get("terminated") or {}).get("finishedAt"))
            if init and finished is not None:
                code = (state.get("terminated") or {}).get("exitCode")
                out.append(
                    Step(
                        f"Finished {name}",
                        finished,
                        f"init container exited {code}",
                        failed=code not in (0, None),
                        kind="InitContainerFinished",
                    )
                )
    return out


def _stuck_reason(status: Obj) -> tuple[str, str, str] | None:
    """(container, reason, message) of a container waiting on a reason that does not heal
    by itself (image pull, config error)."""
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(key) or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in _STUCK:
                return (
                    str(cs.get("name", "")),
                    str(waiting["reason"]),
                    str(waiting.get("message", "")),
                )
    return None


def _ms(span: Obj) -> str:
    return f"{max(0.0, float(span['end']) - float(span['start'])) * 1000:.1f} ms"


def _at(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC)


def _span_steps(span: Obj) -> Step | list[Step] | None:
    """The step(s) a component's span adds (spans are sub-second; see pyk8s.api.spans)."""
    name, a = str(span.get("name", "")), span.get("attributes") or {}
    start, end = _at(float(span["start"])), _at(float(span["end"]))
    if name == "apiserver.create":
        # admission ended at admittedAt; the write is at its start (validatedAt): a
        # watcher may learn of it before the writer's call returns, and the step must
        # not sort after what the watcher did next
        admitted = _at(float(a.get("admittedAt") or span["start"]))
        validated = _at(float(a.get("validatedAt") or span["end"]))
        mutated = ", ".join(a.get("mutatedBy") or []) or "none"
        took = (admitted - start).total_seconds() * 1000
        write = (end - validated).total_seconds() * 1000
        rv = a.get("resourceVersion", "")
        return [
            Step("Admitted", admitted, f"mutated by: {mutated} ({took:.1f} ms)", True,
                 kind="Admitted"),
            Step("Stored", validated, f"resourceVersion {rv} (write took {write:.1f} ms)", True,
                 kind="Stored"),
        ]  # fmt: skip
    if name == "apiserver.binding":
        detail = f"bound to {a.get('node', '')} by {a.get('user', '')} (write took {_ms(span)})"
        return Step("Scheduled", start, detail, True, kind="Scheduled")
    if name == "scheduler.queue":
        return Step("Queued", start, "in the scheduler's queue", True, kind="Queued")
    if name == "scheduler.schedule":
        parts = []
        if a.get("node"):
            score = f" (score {a['score']})" if "score" in a else ""
            parts.append(f"picked {a['node']}{score}")
        if "feasibleNodes" in a:
            parts.append(f"{a['feasibleNodes']}/{a.get('nodes', '?')} nodes feasible")
        filtered = a.get("filteredOut") or {}
        if filtered:
            why = ", ".join(f"{n} {reason}" for reason, n in sorted(filtered.items()))
            parts.append(f"filtered out: {why}")
        detail = "; ".join(parts) + f" ({_ms(span)}, attempt {a.get('attempt', 1)})"
        failed = bool(a.get("unschedulable"))
        # at its start: the cycle's FailedScheduling Event is made before the span ends
        return Step("SchedulingCycle", start, detail, True, failed, kind="SchedulingCycle")
    if name == "scheduler.bind" and not a.get("bound", True):
        detail = f"to {a.get('node', '')} ({_ms(span)}): {a.get('error', '')}"
        return Step("BindFailed", end, detail, True, True, kind="Bound")
    if name == "kubelet.seen":
        return Step("SeenByKubelet", start, f"on {a.get('node', '')}", True, kind="SeenByKubelet")
    if name == "kubelet.volumes":
        ok = a.get("ok", True)
        detail = f"{a.get('volumes', 0)} volume(s) ({_ms(span)})" + ("" if ok else ": not yet")
        return Step("VolumesMounted", end, detail, True, not ok, kind="VolumesMounted")
    if name == "kubelet.sandbox":
        if a.get("error"):
            return Step("SandboxCreated", end, str(a["error"]), True, True, kind="SandboxCreated")
        ips = ", ".join(a.get("ips") or []) or "no address"
        return Step("SandboxCreated", end, f"{ips} ({_ms(span)})", True, kind="SandboxCreated")
    if name == "kubelet.ready":
        return Step("Ready", start, "status written by the kubelet", True, kind="Ready")
    return None


def _creator(meta: Obj) -> str:
    for mf in meta.get("managedFields") or []:
        if mf.get("operation") in ("Create", "Apply") and mf.get("manager"):
            return f"by {mf['manager']}"
    return ""


def build(
    pod: Obj,
    events: Iterable[Obj],
    now: dt.datetime | None = None,
    spans: Iterable[Obj] = (),
) -> Timeline:
    """The timeline of ``pod`` from its own fields, the Events about it (Events for
    another uid, e.g. an earlier pod of the same name, are ignored) and the components'
    spans of its trace (the API server's ``/debug/traces``), which add the steps no Event
    tells and a sub-second Ready."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    uid = str(meta.get("uid", ""))
    init_names = {str(c.get("name")) for c in spec.get("initContainers") or []}
    steps: list[Step] = []
    created = parse_time(meta.get("creationTimestamp"))
    if created is not None:
        steps.append(Step("Created", created, _creator(meta), kind="Created"))
    for ev in events:
        ref_uid = (ev.get("involvedObject") or ev.get("regarding") or {}).get("uid")
        if ref_uid and uid and ref_uid != uid:
            continue
        s = _event_step(ev, init_names)
        if s is not None:
            steps.append(s)
    spanned: list[Step] = []
    for span in spans:
        got = _span_steps(span)
        spanned += got if isinstance(got, list) else [got] if got is not None else []
    if any(s.kind == "Scheduled" for s in spanned):
        # the API server's binding write: the scheduler's Event tells the same, later
        steps = [s for s in steps if s.kind != "Scheduled"]
    steps += spanned
    have = {s.kind for s in steps}
    started_events = {
        s.step.removeprefix("Started ") for s in steps if s.kind.endswith("ContainerStarted")
    }
    steps += _condition_steps(status, have)
    steps += _container_steps(status, started_events)
    steps = _sorted(steps)

    node, phase = str(spec.get("nodeName") or ""), str(status.get("phase") or "Pending")
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    result = "InProgress"
    stuck = _stuck_reason(status)
    if ready:
        result = "Ready"
    elif phase == "Succeeded":
        result = "Succeeded"
    elif phase == "Failed":
        result = "Failed"
    elif not node and any(s.kind == "FailedScheduling" for s in steps):
        result = "Failed"
        steps = _until_first(steps, {"FailedScheduling"})
    elif stuck is not None:
        result = "Failed"
        cname, reason, message = stuck
        steps = _until_first(steps, {"PullFailed", "PullBackOff"})
        if not any(s.failed for s in steps):
            at = now or dt.datetime.now(dt.UTC)
            steps.append(Step(reason, at, f"{cname}: {message}".strip(": "), failed=True))
    return Timeline(
        str(meta.get("namespace", "")), str(meta.get("name", "")), uid, node, phase, result, steps
    )


def _until_first(steps: list[Step], kinds: set[str]) -> list[Step]:
    """The steps up to and including the first of ``kinds`` (the one that ends it)."""
    for i, s in enumerate(steps):
        if s.kind in kinds:
            return steps[: i + 1]
    return steps
