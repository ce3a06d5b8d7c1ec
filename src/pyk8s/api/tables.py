"""Server-side printing: objects as ``meta.k8s.io/v1`` Tables, column for column as upstream.

``kubectl get`` does not format objects itself. It asks for
``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the cells the server
returns, hiding columns of priority > 0 unless ``-o wide``. So every column name, every
cell string (``Init:1/2``, ``CrashLoopBackOff``, ``3 (5m ago)``, ``80:30080/TCP``) and every
age (``5m3s``) must be computed here exactly as upstream v1.32's printers do, or our
``kubectl get`` output would differ from a real cluster's.

Like upstream, the server always prints *wide* (all columns, all cells); the client hides
priority-1 columns. Resources upstream prints with the generic convertor (roles,
clusterroles, limitranges) get ``Name`` + ``Created At``; anything we do not know (custom
resources) gets ``Name`` + ``Age``, as a CRD without printer columns does.

Pure: no I/O, no clock — the caller passes ``now``, so ages are testable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pyk8s.api.errors import bad_request
from pyk8s.api.quantity import QuantityError, canonical
from pyk8s.api.registry import Resource
from pyk8s.api.selectors import SelectorError, label_selector_from_dict

__all__ = [
    "INCLUDE_OBJECT_VALUES",
    "Column",
    "Printer",
    "build_table",
    "column_definitions",
    "format_label_selector",
    "format_labels",
    "format_quantity",
    "human_duration",
    "translate_timestamp_since",
]

Obj = Mapping[str, Any]
Cell = str | int | float | bool | None

#: the values of the ``includeObject`` query parameter
INCLUDE_OBJECT_VALUES = ("None", "Metadata", "Object")

_NONE = "<none>"
_UNSET = "<unset>"
_UNKNOWN = "<unknown>"


# --------------------------------------------------------------------------- columns


@dataclass(frozen=True, slots=True)
class Column:
    """One ``TableColumnDefinition``."""

    name: str
    type: str = "string"
    format: str = ""
    description: str = ""
    priority: int = 0

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


def _c(name: str, desc: str, type_: str = "string", priority: int = 0) -> Column:
    return Column(name, type_, "", desc, priority)


def _w(name: str, desc: str, type_: str = "string") -> Column:
    """A wide-only column (priority 1)."""
    return Column(name, type_, "", desc, 1)


NAME = Column("Name", "string", "name", "The object's name (metadata.name).")
AGE = _c("Age", "Time since the object was created (metadata.creationTimestamp).")
_CONTAINERS = _w("Containers", "The container names of the pod template.")
_IMAGES = _w("Images", "The container images of the pod template.")
_SELECTOR = _w("Selector", "The label selector of the pods this object manages.")


# --------------------------------------------------------------------------- small helpers


def _get(obj: Any, *path: str) -> Any:
    """``obj[p0][p1]...``, or None where any step is missing or not a mapping."""
    cur = obj
    for key in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(key)
    return cur


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return default
    return default


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _name(obj: Obj) -> str:
    return _str(_get(obj, "metadata", "name"))


def _bool_ptr(value: Any) -> str:
    """Upstream's printBoolPtr: ``True``/``False``, ``<unset>`` when absent."""
    if value is None:
        return _UNSET
    return "True" if value else "False"


def _int_or_string(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _list_with_more(items: list[str], count: int, limit: int, *, empty: str) -> str:
    """The first ``limit`` items joined by commas, then `` + N more...``."""
    ret = ",".join(items[:limit])
    if count > limit:
        return f"{ret} + {count - limit} more..."
    return ret or empty


def _containers(spec: Any) -> tuple[str, str]:
    """(names, images) of a pod spec's containers, comma-joined (layoutContainerCells)."""
    containers = [c for c in _list(_get(spec, "containers")) if isinstance(c, Mapping)]
    names = ",".join(_str(c.get("name")) for c in containers)
    images = ",".join(_str(c.get("image")) for c in containers)
    return names, images


# --------------------------------------------------------------------------- time


def _parse_time(value: Any) -> datetime | None:
    """An RFC 3339 (micro)timestamp; None for absent, unparsable or Go's zero time."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    if ts.year == 1 and ts.month == 1 and ts.day == 1 and ts.time() == datetime.min.time():
        return None  # metav1.Time's zero value
    return ts


def _aware(now: datetime) -> datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def _trunc_div(a: int, b: int) -> int:
    """Integer division truncating toward zero, as Go's."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def human_duration(d: timedelta) -> str:
    """Upstream's ``duration.HumanDuration``: ``45s``, ``5m3s``, ``3h10m``, ``4d5h``, ``2y3d``.

    Two significant units at most, fewer as the duration grows; up to one second in the
    future still reads ``0s`` (clock skew), further is ``<invalid>``.
    """
    us = (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds
    seconds = _trunc_div(us, 1_000_000)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def translate_timestamp_since(timestamp: Any, now: datetime) -> str:
    """The age of an RFC 3339 timestamp at ``now``; ``<unknown>`` when it is unset."""
    ts = _parse_time(timestamp)
    if ts is None:
        return _UNKNOWN
    return human_duration(_aware(now) - ts)


def _age(obj: Obj, now: datetime) -> str:
    return translate_timestamp_since(_get(obj, "metadata", "creationTimestamp"), now)


def _created_at(obj: Obj) -> str:
    """creationTimestamp as RFC 3339 in UTC, as the generic convertor prints it."""
    ts = _parse_time(_get(obj, "metadata", "creationTimestamp"))
    if ts is None:
        return "0001-01-01T00:00:00Z"
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- labels


def format_labels(labels: Any) -> str:
    """``a=1,b=2`` sorted by key; ``<none>`` when empty (labels.FormatLabels)."""
    m = _map(labels)
    text = ",".join(f"{k}={_str(m[k])}" for k in sorted(m))
    return text or _NONE


def _selector_string(selector: Any) -> str | None:
    """A LabelSelector as upstream's ``labels.Selector.String()``; None if it is invalid.

    A nil or empty selector is ``""``. Requirements are sorted by key: ``k=v``,
    ``k in (a,b)``, ``k notin (a,b)``, ``k``, ``!k`` (LabelSelectorAsSelector, then String).
    """
    if selector is not None and not isinstance(selector, Mapping):
        return None
    try:
        return str(label_selector_from_dict(selector))
    except (SelectorError, AttributeError, TypeError):
        # AttributeError, TypeError: a malformed selector (a stored object is validated)
        return None


def format_label_selector(selector: Any) -> str:
    """metav1.FormatLabelSelector: the selector string, ``<none>`` if empty, ``<error>``."""
    text = _selector_string(selector)
    if text is None:
        return "<error>"
    return text or _NONE


# --------------------------------------------------------------------------- quantities


def format_quantity(value: Any) -> str:
    """A resource quantity in upstream's canonical form (``Quantity.String()``).

    ``1024Mi`` → ``1Gi``, ``1500m`` → ``1500m``, ``0.5`` → ``500m``, ``2000`` → ``2k``;
    binary-suffixed values under 1024 or with fractions print as decimal SI, and what
    upstream keeps verbatim stays so (``1.500``), see :func:`pyk8s.api.quantity.canonical`.
    Unparsable values are returned as given; None prints as upstream's nil ``<nil>``.
    """
    if value is None:
        return "<nil>"
    text = repr(value) if isinstance(value, float) else str(value)
    try:
        return canonical(text.strip())
    except QuantityError:
        return text


# --------------------------------------------------------------------------- printers

RowFn = Callable[[Obj, datetime], list[Cell]]
CondFn = Callable[[Obj], list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Printer:
    """How one resource prints: its columns, a row of cells per object, row conditions.

    Built-in resources use the printers below; a printer built elsewhere (a custom
    resource's, from its CRD's ``additionalPrinterColumns``) is passed to
    :func:`build_table` / :func:`column_definitions` as ``printer=``.
    """

    columns: tuple[Column, ...]
    row: RowFn
    conditions: CondFn | None = None


_Printer = Printer


# ---- pods


def _terminated(status: Any, which: str = "state") -> Mapping[str, Any] | None:
    t = _get(status, which, "terminated")
    return t if isinstance(t, Mapping) else None


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if b is None:
        return a
    if a is None or a < b:
        return b
    return a


def _condition_true(conditions: Any, type_: str) -> bool:
    """True when the first condition of ``type_`` has status True."""
    for cond in _list(conditions):
        if isinstance(cond, Mapping) and cond.get("type") == type_:
            return cond.get("status") == "True"
    return False


def _has_condition_true(conditions: Any, type_: str) -> bool:
    """True when any condition of ``type_`` has status True."""
    return any(
        isinstance(c, Mapping) and c.get("type") == type_ and c.get("status") == "True"
        for c in _list(conditions)
    )


def _pod_row(pod: Obj, now: datetime) -> list[Cell]:
    spec = _map(pod.get("spec"))
    status = _map(pod.get("status"))
    conditions = _list(status.get("conditions"))
    containers = _list(spec.get("containers"))
    init_specs = {
        _str(c.get("name")): c for c in _list(spec.get("initContainers")) if isinstance(c, Mapping)
    }
    init_count = len(_list(spec.get("initContainers")))

    def restartable(name: str) -> bool:
        c = init_specs.get(name)
        return c is not None and c.get("restartPolicy") == "Always"

    total = len(containers) + sum(1 for n in init_specs if restartable(n))
    ready = 0
    restarts = 0
    sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None

    phase = _str(status.get("phase"))
    reason = _str(status.get("reason")) or phase
    for cond in conditions:
        if (
            isinstance(cond, Mapping)
            and cond.get("type") == "PodScheduled"
            and cond.get("reason") == "SchedulingGated"
        ):
            reason = "SchedulingGated"

    initializing = False
    for i, cs in enumerate(_list(status.get("initContainerStatuses"))):
        cs = _map(cs)
        name = _str(cs.get("name"))
        count = _int(cs.get("restartCount"))
        restarts += count
        last_term = _terminated(cs, "lastState")
        finished = _parse_time(last_term.get("finishedAt")) if last_term else None
        last_restart = _later(last_restart, finished)
        if restartable(name):
            sidecar_restarts += count
            last_sidecar_restart = _later(last_sidecar_restart, finished)
        term = _terminated(cs)
        waiting = _map(_get(cs, "state", "waiting"))
        if term is not None and _int(term.get("exitCode")) == 0:
            continue
        if restartable(name) and cs.get("started") is True:
            if cs.get("ready") is True:
                ready += 1
            continue
        if term is not None:
            term_reason = _str(term.get("reason"))
            if term_reason:
                reason = "Init:" + term_reason
            elif _int(term.get("signal")) != 0:
                reason = f"Init:Signal:{_int(term.get('signal'))}"
            else:
                reason = f"Init:ExitCode:{_int(term.get('exitCode'))}"
        elif waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            reason = "Init:" + _str(waiting.get("reason"))
        else:
            reason = f"Init:{i}/{init_count}"
        initializing = True
        break

    if not initializing or _condition_true(conditions, "Initialized"):
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        for cs in reversed(_list(status.get("containerStatuses"))):
            cs = _map(cs)
            restarts += _int(cs.get("restartCount"))
            last_term = _terminated(cs, "lastState")
            if last_term:
                last_restart = _later(last_restart, _parse_time(last_term.get("finishedAt")))
            waiting = _map(_get(cs, "state", "waiting"))
            term = _terminated(cs)
            if waiting.get("reason"):
                reason = _str(waiting.get("reason"))
            elif term is not None and term.get("reason"):
                reason = _str(term.get("reason"))
            elif term is not None:
                if _int(term.get("signal")) != 0:
                    reason = f"Signal:{_int(term.get('signal'))}"
                else:
                    reason = f"ExitCode:{_int(term.get('exitCode'))}"
            elif cs.get("ready") is True and isinstance(_get(cs, "state", "running"), Mapping):
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _has_condition_true(conditions, "Ready") else "NotReady"

    deleting = _get(pod, "metadata", "deletionTimestamp") is not None
    if deleting and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_cell = str(restarts)
    if restarts != 0 and last_restart is not None:
        restarts_cell = f"{restarts} ({human_duration(_aware(now) - last_restart)} ago)"

    pod_ips = _list(status.get("podIPs"))
    pod_ip = _str(_get(pod_ips[0], "ip")) if pod_ips else _str(status.get("podIP"))
    gates = _list(spec.get("readinessGates"))
    gates_cell = _NONE
    if gates:
        true_count = 0
        for gate in gates:
            for cond in conditions:
                if isinstance(cond, Mapping) and cond.get("type") == _get(gate, "conditionType"):
                    if cond.get("status") == "True":
                        true_count += 1
                    break
        gates_cell = f"{true_count}/{len(gates)}"
    return [
        _name(pod),
        f"{ready}/{total}",
        reason,
        restarts_cell,
        _age(pod, now),
        pod_ip or _NONE,
        _str(spec.get("nodeName")) or _NONE,
        _str(status.get("nominatedNodeName")) or _NONE,
        gates_cell,
    ]


def _pod_conditions(pod: Obj) -> list[dict[str, Any]]:
    phase = _get(pod, "status", "phase")
    if phase == "Succeeded":
        message = "The pod has completed successfully."
    elif phase == "Failed":
        message = "The pod failed."
    else:
        return []
    return [{"type": "Completed", "status": "True", "reason": phase, "message": message}]


_POD = _Printer(
    (
        NAME,
        _c("Ready", "Ready containers of the pod, out of all its containers."),
        _c("Status", "The pod's aggregate status, from its phase and container states."),
        _c("Restarts", "Container restarts in this pod, and how long ago the last one was."),
        AGE,
        _w("IP", "The pod's IP address."),
        _w("Node", "The node the pod is bound to."),
        _w("Nominated Node", "The node preemption nominated for this pod."),
        _w("Readiness Gates", "Readiness gates whose condition is True, out of all."),
    ),
    _pod_row,
    _pod_conditions,
)


# ---- workloads


def _replicas(obj: Obj) -> int:
    return _int(_get(obj, "spec", "replicas"), 1)


def _replica_row(format_selector: Callable[[Any], str]) -> RowFn:
    """The row of a replication controller or replica set (their selectors differ)."""

    def row(obj: Obj, now: datetime) -> list[Cell]:
        names, images = _containers(_get(obj, "spec", "template", "spec"))
        return [
            _name(obj),
            _replicas(obj),
            _int(_get(obj, "status", "replicas")),
            _int(_get(obj, "status", "readyReplicas")),
            _age(obj, now),
            names,
            images,
            format_selector(_get(obj, "spec", "selector")),
        ]

    return row


_REPLICA_COLUMNS = (
    NAME,
    _c("Desired", "The number of replicas asked for.", "integer"),
    _c("Current", "The number of replicas that exist.", "integer"),
    _c("Ready", "The number of replicas that are ready.", "integer"),
    AGE,
    _CONTAINERS,
    _IMAGES,
    _SELECTOR,
)
_RC = _Printer(_REPLICA_COLUMNS, _replica_row(format_labels))
_RS = _Printer(_REPLICA_COLUMNS, _replica_row(format_label_selector))


def _deployment_row(obj: Obj, now: datetime) -> list[Cell]:
    names, images = _containers(_get(obj, "spec", "template", "spec"))
    selector = _selector_string(_get(obj, "spec", "selector"))
    return [
        _name(obj),
        f"{_int(_get(obj, 'status', 'readyReplicas'))}/{_replicas(obj)}",
        _int(_get(obj, "status", "updatedReplicas")),
        _int(_get(obj, "status", "availableReplicas")),
        _age(obj, now),
        names,
        images,
        "<invalid>" if selector is None else selector,
    ]


_DEPLOYMENT = _Printer(
    (
        NAME,
        _c("Ready", "Ready replicas, out of the replicas asked for."),
        _c("Up-to-date", "Replicas running the latest pod template."),
        _c("Available", "Replicas available to serve."),
        AGE,
        _CONTAINERS,
        _IMAGES,
        _SELECTOR,
    ),
    _deployment_row,
)


def _statefulset_row(obj: Obj, now: datetime) -> list[Cell]:
    names, images = _containers(_get(obj, "spec", "template", "spec"))
    ready = _int(_get(obj, "status", "readyReplicas"))
    return [_name(obj), f"{ready}/{_replicas(obj)}", _age(obj, now), names, images]


_STATEFULSET = _Printer(
    (
        NAME,
        _c("Ready", "Ready replicas, out of the replicas asked for."),
        AGE,
        _CONTAINERS,
        _IMAGES,
    ),
    _statefulset_row,
)


def _daemonset_row(obj: Obj, now: datetime) -> list[Cell]:
    status = _map(obj.get("status"))
    names, images = _containers(_get(obj, "spec", "template", "spec"))
    return [
        _name(obj),
        _int(status.get("desiredNumberScheduled")),
        _int(status.get("currentNumberScheduled")),
        _int(status.get("numberReady")),
        _int(status.get("updatedNumberScheduled")),
        _int(status.get("numberAvailable")),
        format_labels(_get(obj, "spec", "template", "spec", "nodeSelector")),
        _age(obj, now),
        names,
        images,
        format_label_selector(_get(obj, "spec", "selector")),
    ]


_DAEMONSET = _Printer(
    (
        NAME,
        _c("Desired", "Nodes that should run the daemon pod.", "integer"),
        _c("Current", "Nodes running at least one daemon pod.", "integer"),
        _c("Ready", "Nodes whose daemon pod is ready.", "integer"),
        _c("Up-to-date", "Nodes running the latest daemon pod.", "integer"),
        _c("Available", "Nodes whose daemon pod is available.", "integer"),
        _c("Node Selector", "The node selector of the pod template."),
        AGE,
        _CONTAINERS,
        _IMAGES,
        _SELECTOR,
    ),
    _daemonset_row,
)


def _job_row(obj: Obj, now: datetime) -> list[Cell]:
    spec = _map(obj.get("spec"))
    status = _map(obj.get("status"))
    succeeded = _int(status.get("succeeded"))
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{_int(spec.get('completions'))}"
    else:
        parallelism = _int(spec.get("parallelism"))
        of = f" of {parallelism}" if parallelism > 1 else ""
        completions = f"{succeeded}/1{of}"
    start = _parse_time(status.get("startTime"))
    end = _parse_time(status.get("completionTime"))
    if start is None:
        job_duration = ""
    elif end is None:
        job_duration = human_duration(_aware(now) - start)
    else:
        job_duration = human_duration(end - start)
    conditions = status.get("conditions")
    if _condition_true(conditions, "Complete"):
        job_status = "Complete"
    elif _condition_true(conditions, "Failed"):
        job_status = "Failed"
    elif _get(obj, "metadata", "deletionTimestamp") is not None:
        job_status = "Terminating"
    elif _condition_true(conditions, "Suspended"):
        job_status = "Suspended"
    elif _condition_true(conditions, "FailureTarget"):
        job_status = "FailureTarget"
    else:
        job_status = "Running"
    names, images = _containers(_get(spec, "template", "spec"))
    return [
        _name(obj),
        job_status,
        completions,
        job_duration,
        _age(obj, now),
        names,
        images,
        format_label_selector(spec.get("selector")),
    ]


_JOB = _Printer(
    (
        NAME,
        _c("Status", "The job's status, from its conditions."),
        _c("Completions", "Succeeded pods, out of the completions asked for."),
        _c("Duration", "How long the job ran (or has been running)."),
        AGE,
        _CONTAINERS,
        _IMAGES,
        _SELECTOR,
    ),
    _job_row,
)


def _cronjob_row(obj: Obj, now: datetime) -> list[Cell]:
    spec = _map(obj.get("spec"))
    last = _get(obj, "status", "lastScheduleTime")
    last_cell = _NONE if last is None else translate_timestamp_since(last, now)
    tz = spec.get("timeZone")
    job_spec = _get(spec, "jobTemplate", "spec")
    names, images = _containers(_get(job_spec, "template", "spec"))
    return [
        _name(obj),
        _str(spec.get("schedule")),
        _NONE if tz is None else _str(tz),
        _bool_ptr(spec.get("suspend")),
        len(_list(_get(obj, "status", "active"))),
        last_cell,
        _age(obj, now),
        names,
        images,
        format_label_selector(_get(job_spec, "selector")),
    ]


_CRONJOB = _Printer(
    (
        NAME,
        _c("Schedule", "The cron schedule."),
        _c("Timezone", "The time zone the schedule is read in."),
        _c("Suspend", "Whether new runs are suspended.", "boolean"),
        _c("Active", "Jobs of this cron job now running.", "integer"),
        _c("Last Schedule", "Time since a job was last scheduled."),
        AGE,
        _CONTAINERS,
        _IMAGES,
        _SELECTOR,
    ),
    _cronjob_row,
)


def _pod_template_row(obj: Obj, now: datetime) -> list[Cell]:
    names, images = _containers(_get(obj, "template", "spec"))
    return [_name(obj), names, images, format_labels(_get(obj, "template", "metadata", "labels"))]


_POD_TEMPLATE = _Printer(
    (
        NAME,
        _c("Containers", "The container names of the template."),
        _c("Images", "The container images of the template."),
        _c("Pod Labels", "The labels of the template's pods."),
    ),
    _pod_template_row,
)


def _controller_revision_row(obj: Obj, now: datetime) -> list[Cell]:
    controller = _NONE
    for ref in _list(_get(obj, "metadata", "ownerReferences")):
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            group = _str(ref.get("apiVersion")).rpartition("/")[0]
            kind = _str(ref.get("kind"))
            group_kind = f"{kind}.{group}" if group else kind
            ref_name = _str(ref.get("name"))
            controller = f"{group_kind.lower()}/{ref_name}" if group_kind else ref_name
            break
    return [_name(obj), controller, _int(obj.get("revision")), _age(obj, now)]


_CONTROLLER_REVISION = _Printer(
    (
        NAME,
        _c("Controller", "The object that owns this revision."),
        _c("Revision", "The revision number."),
        AGE,
    ),
    _controller_revision_row,
)


def _hpa_metrics(specs: list[Any], statuses: list[Any]) -> str:
    if not specs:
        return _NONE
    items: list[str] = []

    def status_of(i: int, key: str) -> Mapping[str, Any] | None:
        if i < len(statuses):
            s = _get(statuses[i], key)
            if isinstance(s, Mapping):
                return s
        return None

    for i, spec in enumerate(specs):
        kind = _get(spec, "type")
        if kind in ("External", "Object"):
            key = kind.lower()
            target = _map(_get(spec, key, "target"))
            st = status_of(i, key)
            if target.get("averageValue") is not None:
                avg = _get(st, "current", "averageValue")
                cur = format_quantity(avg) if st is not None and avg is not None else _UNKNOWN
                items.append(f"{cur}/{format_quantity(target.get('averageValue'))} (avg)")
            else:
                cur = _UNKNOWN if st is None else format_quantity(_get(st, "current", "value"))
                items.append(f"{cur}/{format_quantity(target.get('value'))}")
        elif kind == "Pods":
            target = _map(_get(spec, "pods", "target"))
            st = status_of(i, "pods")
            cur = _UNKNOWN if st is None else format_quantity(_get(st, "current", "averageValue"))
            items.append(f"{cur}/{format_quantity(target.get('averageValue'))}")
        elif kind in ("Resource", "ContainerResource"):
            key = "resource" if kind == "Resource" else "containerResource"
            source = _map(_get(spec, key))
            target = _map(source.get("target"))
            res = _str(source.get("name"))
            st = status_of(i, key)
            if target.get("averageValue") is not None:
                cur = (
                    _UNKNOWN if st is None else format_quantity(_get(st, "current", "averageValue"))
                )
                items.append(f"{res}: {cur}/{format_quantity(target.get('averageValue'))}")
            else:
                util = _get(st, "current", "averageUtilization")
                cur = f"{_int(util)}%" if st is not None and util is not None else _UNKNOWN
                goal = target.get("averageUtilization")
                tgt = f"{_int(goal)}%" if goal is not None else "<auto>"
                items.append(f"{res}: {cur}/{tgt}")
        else:
            items.append("<unknown type>")
    ret = ", ".join(items[:2])
    if len(items) > 2:
        return f"{ret} + {len(items) - 2} more..."
    return ret


def _hpa_row(obj: Obj, now: datetime) -> list[Cell]:
    spec = _map(obj.get("spec"))
    status = _map(obj.get("status"))
    if "metrics" in spec or "currentMetrics" in status:
        metrics = _hpa_metrics(_list(spec.get("metrics")), _list(status.get("currentMetrics")))
    else:  # autoscaling/v1: one CPU utilization target
        specs: list[Any] = []
        statuses: list[Any] = []
        if spec.get("targetCPUUtilizationPercentage") is not None:
            pct = spec["targetCPUUtilizationPercentage"]
            specs = [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": pct},
                    },
                }
            ]
        if status.get("currentCPUUtilizationPercentage") is not None:
            pct = status["currentCPUUtilizationPercentage"]
            statuses = [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "current": {"averageUtilization": pct}},
                }
            ]
        metrics = _hpa_metrics(specs, statuses)
    ref = _map(spec.get("scaleTargetRef"))
    min_replicas = spec.get("minReplicas")
    return [
        _name(obj),
        f"{_str(ref.get('kind'))}/{_str(ref.get('name'))}",
        metrics,
        _UNSET if min_replicas is None else str(_int(min_replicas)),
        _int(spec.get("maxReplicas")),
        _int(status.get("currentReplicas")),
        _age(obj, now),
    ]


_HPA = _Printer(
    (
        NAME,
        _c("Reference", "The object whose scale is managed."),
        _c("Targets", "Current metric values against their targets."),
        _c("MinPods", "The lower replica limit."),
        _c("MaxPods", "The upper replica limit."),
        _c("Replicas", "The current number of replicas."),
        AGE,
    ),
    _hpa_row,
)


def _pdb_row(obj: Obj, now: datetime) -> list[Cell]:
    spec = _map(obj.get("spec"))
    min_a = spec.get("minAvailable")
    max_u = spec.get("maxUnavailable")
    return [
        _name(obj),
        "N/A" if min_a is None else _int_or_string(min_a),
        "N/A" if max_u is None else _int_or_string(max_u),
        _int(_get(obj, "status", "disruptionsAllowed")),
        _age(obj, now),
    ]


_PDB = _Printer(
    (
        NAME,
        _c("Min Available", "Pods that must stay available."),
        _c("Max Unavailable", "Pods that may be unavailable."),
        _c("Allowed Disruptions", "Pods that may be disrupted now.", "integer"),
        AGE,
    ),
    _pdb_row,
)


# ---- core


def _service_external_ip(svc: Obj) -> str:
    spec = _map(svc.get("spec"))
    svc_type = spec.get("type") or "ClusterIP"
    external = [_str(ip) for ip in _list(spec.get("externalIPs"))]
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else _NONE
    if svc_type == "LoadBalancer":
        lb = _lb_ingress(_get(svc, "status", "loadBalancer", "ingress"))
        if external:
            return ",".join([*lb, *external])
        return ",".join(lb) if lb else "<pending>"
    if svc_type == "ExternalName":
        return _str(spec.get("externalName"))
    return _UNKNOWN


def _lb_ingress(ingress: Any) -> list[str]:
    """The distinct IPs (else hostnames) of a load balancer status, sorted."""
    found: set[str] = set()
    for entry in _list(ingress):
        ip, host = _str(_get(entry, "ip")), _str(_get(entry, "hostname"))
        if ip:
            found.add(ip)
        elif host:
            found.add(host)
    return sorted(found)


def _service_ports(ports: list[Any]) -> str:
    pieces = []
    for port in ports:
        p = _map(port)
        proto = _str(p.get("protocol")) or "TCP"
        node_port = _int(p.get("nodePort"))
        if node_port > 0:
            pieces.append(f"{_int(p.get('port'))}:{node_port}/{proto}")
        else:
            pieces.append(f"{_int(p.get('port'))}/{proto}")
    return ",".join(pieces)


def _service_row(obj: Obj, now: datetime) -> list[Cell]:
    spec = _map(obj.get("spec"))
    cluster_ips = _list(spec.get("clusterIPs"))
    internal = _str(cluster_ips[0]) if cluster_ips else _str(spec.get("clusterIP"))
    return [
        _name(obj),
        _str(spec.get("type")) or "ClusterIP",
        internal or _NONE,
        _service_external_ip(obj),
        _service_ports(_list(spec.get("ports"))) or _NONE,
        _age(obj, now),
        format_labels(spec.get("selector")),
    ]


_SERVICE = _Printer(
    (
        NAME,
        _c("Type", "How the service is exposed."),
        _c("Cluster-IP", "The service's cluster IP."),
        _c("External-IP", "IPs or hostnames the service is reachable at from outside."),
        _c("Port(s)", "The service's ports (port[:nodePort]/protocol)."),
        AGE,
        _w("Selector", "The label selector of the service's pods."),
    ),
    _service_row,
)


def _endpoints_cell(obj: Obj) -> str:
    subsets = _list(obj.get("subsets"))
    if not subsets:
        return _NONE
    items: list[str] = []
    count = 0
    for subset in subsets:
        addresses = [_str(_get(a, "ip")) for a in _list(_get(subset, "addresses"))]
        ports = _list(_get(subset, "ports"))
        if not ports:
            count += len(addresses)
            items.extend(addresses)
            continue
        for port in ports:
            count += len(addresses)
            items.extend(_join_host_port(a, _int(_get(port, "port"))) for a in addresses)
    return _list_with_more(items, count, 3, empty="")


_ENDPOINTS = _Printer(
    (NAME, _c("Endpoints", "Addresses (ip:port) of the service's endpoints."), AGE),
    lambda obj, now: [_name(obj), _endpoints_cell(obj), _age(obj, now)],
)


def _endpoint_slice_row(obj: Obj, now: datetime) -> list[Cell]:
    ports: list[str] = []
    for port in _list(obj.get("ports")):
        if _get(port, "port") is not None:
            ports.append(str(_int(_get(port, "port"))))
        elif _get(port, "name") is not None:
            ports.append(_str(_get(port, "name")))
        else:
            ports.append("*")
    addresses = [_str(a) for e in _list(obj.get("endpoints")) for a in _list(_get(e, "addresses"))]
    return [
        _name(obj),
        _str(obj.get("addressType")),
        _list_with_more(ports, len(ports), 3, empty=_UNSET),
        _list_with_more(addresses, len(addresses), 3, empty=_UNSET),
        _age(obj, now),
    ]


_ENDPOINT_SLICE = _Printer(
    (
        NAME,
        _c("AddressType", "The kind of addresses in this slice."),
        _c("Ports", "The ports of the slice."),
        _c("Endpoints", "The addresses of the slice's endpoints."),
        AGE,
    ),
    _endpoint_slice_row,
)


def _node_roles(node: Obj) -> str:
    roles: set[str] = set()
    for key, value in _map(_get(node, "metadata", "labels")).items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key[len("node-role.kubernetes.io/") :]
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(_str(value))
    return ",".join(sorted(roles)) or _NONE


def _node_address(node: Obj, kind: str) -> str:
    for address in _list(_get(node, "status", "addresses")):
        if _get(address, "type") == kind:
            return _str(_get(address, "address"))
    return _NONE


def _node_row(obj: Obj, now: datetime) -> list[Cell]:
    ready: Mapping[str, Any] | None = None
    for cond in _list(_get(obj, "status", "conditions")):
        if isinstance(cond, Mapping) and cond.get("type") == "Ready":
            ready = cond  # the last one wins, as upstream's map
    if ready is None:
        states = ["Unknown"]
    else:
        states = ["Ready" if ready.get("status") == "True" else "NotReady"]
    if _get(obj, "spec", "unschedulable") is True:
        states.append("SchedulingDisabled")
    info = _map(_get(obj, "status", "nodeInfo"))
    return [
        _name(obj),
        ",".join(states),
        _node_roles(obj),
        _age(obj, now),
        _str(info.get("kubeletVersion")),
        _node_address(obj, "InternalIP"),
        _node_address(obj, "ExternalIP"),
        _str(info.get("osImage")) or _UNKNOWN,
        _str(info.get("kernelVersion")) or _UNKNOWN,
        _str(info.get("containerRuntimeVersion")) or _UNKNOWN,
    ]


_NODE = _Printer(
    (
        NAME,
        _c("Status", "The node's readiness, and whether scheduling is disabled."),
        _c("Roles", "The node's roles, from its node-role labels."),
        AGE,
        _c("Version", "The kubelet version."),
        _w("Internal-IP", "The node's internal IP."),
        _w("External-IP", "The node's external IP."),
        _w("OS-Image", "The node's operating system image."),
        _w("Kernel-Version", "The node's kernel version."),
        _w("Container-Runtime", "The node's container runtime and its version."),
    ),
    _node_row,
)


def _core_event(obj: Obj) -> Obj:
    """An events.k8s.io/v1 Event in core/v1 field names (what upstream prints from)."""
    out: dict[str, Any] = {
        "metadata": obj.get("metadata"),
        "involvedObject": obj.get("regarding"),
        "message": obj.get("note"),
        "type": obj.get("type"),
        "reason": obj.get("reason"),
        "source": obj.get("deprecatedSource"),
        "firstTimestamp": obj.get("deprecatedFirstTimestamp"),
        "lastTimestamp": obj.get("deprecatedLastTimestamp"),
        "count": obj.get("deprecatedCount"),
        "eventTime": obj.get("eventTime"),
        "series": obj.get("series"),
        "reportingComponent": obj.get("reportingController"),
        "reportingInstance": obj.get("reportingInstance"),
    }
    return out


def _event_row(obj: Obj, now: datetime) -> list[Cell]:
    if _parse_time(obj.get("firstTimestamp")) is not None:
        first = translate_timestamp_since(obj.get("firstTimestamp"), now)
    else:
        first = translate_timestamp_since(obj.get("eventTime"), now)
    if _parse_time(obj.get("lastTimestamp")) is not None:
        last = translate_timestamp_since(obj.get("lastTimestamp"), now)
    else:
        last = first
    count = _int(obj.get("count"))
    series = obj.get("series")
    if isinstance(series, Mapping):
        last = translate_timestamp_since(series.get("lastObservedTime"), now)
        count = _int(series.get("count"))
    elif count == 0:
        count = 1  # singleton events of the new API carry no count
    involved = _map(obj.get("involvedObject"))
    kind = _str(involved.get("kind")).lower()
    target = f"{kind}/{_str(involved.get('name'))}" if involved.get("name") else kind
    component = _str(_get(obj, "source", "component")) or _str(obj.get("reportingComponent"))
    instance = _str(_get(obj, "source", "host")) or _str(obj.get("reportingInstance"))
    source = f"{component}, {instance}" if instance else component
    return [
        last,
        _str(obj.get("type")),
        _str(obj.get("reason")),
        target,
        _str(involved.get("fieldPath")),
        source,
        _str(obj.get("message")).strip(),
        first,
        count,
        _name(obj),
    ]


_EVENT_COLUMNS = (
    _c("Last Seen", "Time since the event was last observed."),
    _c("Type", "The event's type (Normal, Warning)."),
    _c("Reason", "Why the event happened, in one word."),
    _c("Object", "The object the event is about."),
    _w("Subobject", "The part of the object the event is about."),
    _w("Source", "The component that reported the event."),
    _c("Message", "What happened, for humans."),
    _w("First Seen", "Time since the event was first observed."),
    _w("Count", "How many times the event was observed."),
    Column("Name", "string", "name", NAME.description, 1),
)
_EVENT = _Printer(_EVENT_COLUMNS, _event_row)
_EVENT_V1 = _Printer(_EVENT_COLUMNS, lambda obj, now: _event_row(_core_event(obj), now))


_NAMESPACE = _Printer(
    (NAME, _c("Status", "The namespace's phase."), AGE),
    lambda obj, now: [
        _name(obj),
        _str(_get(obj, "status", "phase")) or "Active",
        _age(obj, now),
    ],
)
_SECRET = _Printer(
    (
        NAME,
        _c("Type", "The secret's type."),
        _c("Data", "The number of keys in the secret.", "string"),
        AGE,
    ),
    lambda obj, now: [
        _name(obj),
        _str(obj.get("type")) or "Opaque",
        len(_map(obj.get("data"))),
        _age(obj, now),
    ],
)
_CONFIGMAP = _Printer(
    (NAME, _c("Data", "The number of keys in the config map."), AGE),
    lambda obj, now: [
        _name(obj),
        len(_map(obj.get("data"))) + len(_map(obj.get("binaryData"))),
        _age(obj, now),
    ],
)
_SERVICE_ACCOUNT = _Printer(
    (NAME, _c("Secrets", "The number of secrets listed by the service account."), AGE),
    lambda obj, now: [_name(obj), len(_list(obj.get("secrets"))), _age(obj, now)],
)


_ACCESS_MODES = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)


def _access_modes(modes: Any) -> str:
    have = set(_list(modes))
    return ",".join(short for mode, short in _ACCESS_MODES if mode in have)


def _storage_class_of(obj: Obj) -> str:
    beta = _map(_get(obj, "metadata", "annotations")).get("volume.beta.kubernetes.io/storage-class")
    if beta is not None:
        return _str(beta)
    return _str(_get(obj, "spec", "storageClassName"))


def _volume_phase(obj: Obj) -> str:
    """A volume's or claim's phase, ``Terminating`` once it is being deleted."""
    if _get(obj, "metadata", "deletionTimestamp") is not None:
        return "Terminating"
    return _str(_get(obj, "status", "phase"))


def _pv_row(obj: Obj, now: datetime) -> list[Cell]:
    spec = _map(obj.get("spec"))
    claim = spec.get("claimRef")
    claim_cell = ""
    if isinstance(claim, Mapping):
        claim_cell = f"{_str(claim.get('namespace'))}/{_str(claim.get('name'))}"
    phase = _volume_phase(obj)
    vac = spec.get("volumeAttributesClassName")
    mode = spec.get("volumeMode")
    return [
        _name(obj),
        format_quantity(_map(spec.get("capacity")).get("storage", 0)),
        _access_modes(spec.get("accessModes")),
        _str(spec.get("persistentVolumeReclaimPolicy")),
        phase,
        claim_cell,
        _storage_class_of(obj),
        _UNSET if vac is None else _str(vac),
        _str(_get(obj, "status", "reason")),
        _age(obj, now),
        _UNSET if mode is None else _str(mode),
    ]


_PV = _Printer(
    (
        NAME,
        _c("Capacity", "The volume's storage capacity."),
        _c("Access Modes", "How the volume can be mounted."),
        _c("Reclaim Policy", "What happens to the volume when its claim is released."),
        _c("Status", "The volume's phase."),
        _c("Claim", "The claim bound to the volume."),
        _c("StorageClass", "The volume's storage class."),
        _c("VolumeAttributesClass", "The volume's attributes class."),
        _c("Reason", "Why the volume is in its phase."),
        AGE,
        _w("VolumeMode", "Filesystem or Block."),
    ),
    _pv_row,
)


def _pvc_row(obj: Obj, now: datetime) -> list[Cell]:
    spec = _map(obj.get("spec"))
    phase = _volume_phase(obj)
    volume = _str(spec.get("volumeName"))
    capacity = access = ""
    if volume:
        access = _access_modes(_get(obj, "status", "accessModes"))
        capacity = format_quantity(_map(_get(obj, "status", "capacity")).get("storage", 0))
    vac = spec.get("volumeAttributesClassName")
    mode = spec.get("volumeMode")
    return [
        _name(obj),
        phase,
        volume,
        capacity,
        access,
        _storage_class_of(obj),
        _UNSET if vac is None else _str(vac),
        _age(obj, now),
        _UNSET if mode is None else _str(mode),
    ]


_PVC = _Printer(
    (
        NAME,
        _c("Status", "The claim's phase."),
        _c("Volume", "The volume bound to the claim."),
        _c("Capacity", "The bound volume's capacity."),
        _c("Access Modes", "How the bound volume can be mounted."),
        _c("StorageClass", "The claim's storage class."),
        _c("VolumeAttributesClass", "The claim's volume attributes class."),
        AGE,
        _w("VolumeMode", "Filesystem or Block."),
    ),
    _pvc_row,
)


def _quota_row(obj: Obj, now: datetime) -> list[Cell]:
    hard = _map(_get(obj, "status", "hard"))
    used = _map(_get(obj, "status", "used"))
    requests: list[str] = []
    limits: list[str] = []
    for resource in sorted(hard):
        text = f"{resource}: {format_quantity(used.get(resource, 0))}/"
        text += format_quantity(hard[resource])
        pieces = resource.split(".")
        (limits if len(pieces) > 1 and pieces[0] == "limits" else requests).append(text)
    return [_name(obj), ", ".join(requests), ", ".join(limits), _age(obj, now)]


_RESOURCE_QUOTA = _Printer(
    (
        NAME,
        _c("Request", "Used / hard quota of everything but limits.*."),
        _c("Limit", "Used / hard quota of limits.*."),
        AGE,
    ),
    _quota_row,
)


# ---- networking, coordination, rbac, storage, scheduling


def _ingress_hosts(rules: list[Any]) -> str:
    hosts: list[str] = []
    more = False
    for rule in rules:
        if len(hosts) == 3:
            more = True
        host = _str(_get(rule, "host"))
        if not more and host:
            hosts.append(host)
    if not hosts:
        return "*"
    ret = ",".join(hosts)
    return f"{ret} + {len(rules) - 3} more..." if more else ret


def _ingress_row(obj: Obj, now: datetime) -> list[Cell]:
    spec = _map(obj.get("spec"))
    class_name = spec.get("ingressClassName")
    return [
        _name(obj),
        _NONE if class_name is None else _str(class_name),
        _ingress_hosts(_list(spec.get("rules"))),
        ",".join(_lb_ingress(_get(obj, "status", "loadBalancer", "ingress"))),
        "80, 443" if _list(spec.get("tls")) else "80",
        _age(obj, now),
    ]


_INGRESS = _Printer(
    (
        NAME,
        _c("Class", "The ingress class that implements this ingress."),
        _c("Hosts", "The hosts the ingress rules match."),
        _c("Address", "Where the load balancer of the ingress is reachable."),
        _c("Ports", "The ports the ingress serves."),
        AGE,
    ),
    _ingress_row,
)


def _ingress_class_row(obj: Obj, now: datetime) -> list[Cell]:
    params = _get(obj, "spec", "parameters")
    cell = _NONE
    if isinstance(params, Mapping):
        cell = _str(params.get("kind"))
        if params.get("apiGroup") is not None:
            cell += "." + _str(params.get("apiGroup"))
        cell += "/" + _str(params.get("name"))
    return [_name(obj), _str(_get(obj, "spec", "controller")), cell, _age(obj, now)]


_INGRESS_CLASS = _Printer(
    (
        NAME,
        _c("Controller", "The controller that implements this class."),
        _c("Parameters", "The resource holding the class's parameters."),
        AGE,
    ),
    _ingress_class_row,
)
_NETWORK_POLICY = _Printer(
    (NAME, _c("Pod-Selector", "The pods the policy applies to."), AGE),
    lambda obj, now: [
        _name(obj),
        format_label_selector(_map(_get(obj, "spec", "podSelector"))),
        _age(obj, now),
    ],
)
_LEASE = _Printer(
    (NAME, _c("Holder", "Who holds the lease."), AGE),
    lambda obj, now: [_name(obj), _str(_get(obj, "spec", "holderIdentity")), _age(obj, now)],
)


def _binding_row(obj: Obj, now: datetime) -> list[Cell]:
    ref = _map(obj.get("roleRef"))
    users: list[str] = []
    groups: list[str] = []
    sas: list[str] = []
    for subject in _list(obj.get("subjects")):
        s = _map(subject)
        kind, name = s.get("kind"), _str(s.get("name"))
        if kind == "ServiceAccount":
            sas.append(f"{_str(s.get('namespace'))}/{name}")
        elif kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
    return [
        _name(obj),
        f"{_str(ref.get('kind'))}/{_str(ref.get('name'))}",
        _age(obj, now),
        ", ".join(users),
        ", ".join(groups),
        ", ".join(sas),
    ]


def _binding_printer(what: str) -> _Printer:
    return _Printer(
        (
            NAME,
            _c("Role", "The role the binding grants."),
            AGE,
            _w("Users", f"Users in the {what}."),
            _w("Groups", f"Groups in the {what}."),
            _w("ServiceAccounts", f"Service accounts in the {what}."),
        ),
        _binding_row,
    )


def _storage_class_row(obj: Obj, now: datetime) -> list[Cell]:
    annotations = _map(_get(obj, "metadata", "annotations"))
    name = _name(obj)
    if (
        annotations.get("storageclass.kubernetes.io/is-default-class") == "true"
        or annotations.get("storageclass.beta.kubernetes.io/is-default-class") == "true"
    ):
        name += " (default)"
    return [
        name,
        _str(obj.get("provisioner")),
        _str(obj.get("reclaimPolicy")) or "Delete",
        _str(obj.get("volumeBindingMode")) or "Immediate",
        obj.get("allowVolumeExpansion") is True,
        _age(obj, now),
    ]


_STORAGE_CLASS = _Printer(
    (
        NAME,
        _c("Provisioner", "The volume plugin that provisions volumes of this class."),
        _c("ReclaimPolicy", "What happens to provisioned volumes when released."),
        _c("VolumeBindingMode", "When volumes are bound and provisioned."),
        _c("AllowVolumeExpansion", "Whether volumes of this class can grow."),
        AGE,
    ),
    _storage_class_row,
)
_PRIORITY_CLASS = _Printer(
    (
        NAME,
        _c("Value", "The priority of pods of this class.", "integer"),
        _c("Global-Default", "Whether pods without a class get this one.", "boolean"),
        AGE,
        _c("PreemptionPolicy", "Whether pods of this class preempt lower ones."),
    ),
    lambda obj, now: [
        _name(obj),
        _int(obj.get("value")),
        obj.get("globalDefault") is True,
        _age(obj, now),
        _str(obj.get("preemptionPolicy")),
    ],
)


def _csr_condition(obj: Obj) -> str:
    """Upstream's extractCSRStatus: Denied over Approved over Pending, then Failed and
    Issued."""
    types = {c.get("type") for c in _list(_get(obj, "status", "conditions")) if isinstance(c, dict)}
    status = "Denied" if "Denied" in types else "Approved" if "Approved" in types else "Pending"
    if "Failed" in types:
        status += ",Failed"
    if _get(obj, "status", "certificate"):
        status += ",Issued"
    return status


def _csr_row(obj: Obj, now: datetime) -> list[Cell]:
    seconds = _get(obj, "spec", "expirationSeconds")
    duration = (
        human_duration(timedelta(seconds=seconds))
        if isinstance(seconds, int) and not isinstance(seconds, bool)
        else "<none>"
    )
    return [
        _name(obj),
        _age(obj, now),
        _str(_get(obj, "spec", "signerName")) or "<none>",
        _str(_get(obj, "spec", "username")),
        duration,
        _csr_condition(obj),
    ]


_CSR = _Printer(
    (
        NAME,
        AGE,
        _c("SignerName", "The signer the request is for."),
        _c("Requestor", "Who made the request."),
        _c("RequestedDuration", "The validity the request asks for."),
        _c("Condition", "Pending, Approved or Denied, and Failed/Issued."),
    ),
    _csr_row,
)

#: upstream's generic convertor, for built-ins without a printer (roles, limit ranges)
_CREATED_AT = _Printer(
    (NAME, Column("Created At", "date", "", "When the object was created (RFC 3339, UTC).")),
    lambda obj, now: [_name(obj), _created_at(obj)],
)
#: what a custom resource without printer columns shows
_DEFAULT = _Printer(
    (NAME, Column("Age", "date", "", AGE.description)),
    lambda obj, now: [_name(obj), _age(obj, now)],
)

_PRINTERS: dict[tuple[str, str], _Printer] = {
    ("", "pods"): _POD,
    ("", "services"): _SERVICE,
    ("", "endpoints"): _ENDPOINTS,
    ("", "configmaps"): _CONFIGMAP,
    ("", "secrets"): _SECRET,
    ("", "serviceaccounts"): _SERVICE_ACCOUNT,
    ("", "nodes"): _NODE,
    ("", "namespaces"): _NAMESPACE,
    ("", "events"): _EVENT,
    ("", "persistentvolumes"): _PV,
    ("", "persistentvolumeclaims"): _PVC,
    ("", "limitranges"): _CREATED_AT,
    ("", "resourcequotas"): _RESOURCE_QUOTA,
    ("", "podtemplates"): _POD_TEMPLATE,
    ("", "replicationcontrollers"): _RC,
    ("apps", "deployments"): _DEPLOYMENT,
    ("apps", "replicasets"): _RS,
    ("apps", "statefulsets"): _STATEFULSET,
    ("apps", "daemonsets"): _DAEMONSET,
    ("apps", "controllerrevisions"): _CONTROLLER_REVISION,
    ("batch", "jobs"): _JOB,
    ("batch", "cronjobs"): _CRONJOB,
    ("autoscaling", "horizontalpodautoscalers"): _HPA,
    ("networking.k8s.io", "ingresses"): _INGRESS,
    ("networking.k8s.io", "ingressclasses"): _INGRESS_CLASS,
    ("networking.k8s.io", "networkpolicies"): _NETWORK_POLICY,
    ("discovery.k8s.io", "endpointslices"): _ENDPOINT_SLICE,
    ("certificates.k8s.io", "certificatesigningrequests"): _CSR,
    ("coordination.k8s.io", "leases"): _LEASE,
    ("rbac.authorization.k8s.io", "roles"): _CREATED_AT,
    ("apiextensions.k8s.io", "customresourcedefinitions"): _CREATED_AT,
    ("rbac.authorization.k8s.io", "clusterroles"): _CREATED_AT,
    ("rbac.authorization.k8s.io", "rolebindings"): _binding_printer("roleBinding"),
    ("rbac.authorization.k8s.io", "clusterrolebindings"): _binding_printer("clusterRoleBinding"),
    ("storage.k8s.io", "storageclasses"): _STORAGE_CLASS,
    ("scheduling.k8s.io", "priorityclasses"): _PRIORITY_CLASS,
    ("policy", "poddisruptionbudgets"): _PDB,
    ("events.k8s.io", "events"): _EVENT_V1,
}


def _printer(resource: Resource) -> _Printer:
    return _PRINTERS.get((resource.group, resource.plural), _DEFAULT)


def column_definitions(
    resource: Resource, *, printer: Printer | None = None
) -> list[dict[str, Any]]:
    """The Table column definitions for ``resource`` (also what an empty list carries)."""
    return [c.definition() for c in (printer or _printer(resource)).columns]


# --------------------------------------------------------------------------- the table


def _row_object(obj: Obj, include_object: str) -> dict[str, Any] | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return dict(obj)
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def build_table(
    resource: Resource,
    objects: Iterable[Obj],
    *,
    now: datetime,
    include_object: str = "Metadata",
    list_meta: Mapping[str, Any] | None = None,
    no_headers: bool = False,
    printer: Printer | None = None,
) -> dict[str, Any]:
    """Objects of ``resource`` as a ``meta.k8s.io/v1`` Table, as upstream's server prints it.

    ``include_object`` is the ``includeObject`` query parameter: ``None`` (rows carry no
    object), ``Metadata`` (a PartialObjectMetadata; also what an empty value means) or
    ``Object`` (the object itself); anything else is a 400 :class:`StatusError`.
    ``list_meta`` supplies the Table's resourceVersion/continue/remainingItemCount (for a
    single object, pass its resourceVersion). ``no_headers`` (TableOptions.noHeaders, or
    watch events after the first) leaves out the column definitions. All columns are
    printed; kubectl hides priority-1 columns unless ``-o wide``. ``printer`` overrides
    the built-in printer of ``resource`` (custom resources bring their own).
    """
    mode = include_object or "Metadata"
    if mode not in INCLUDE_OBJECT_VALUES:
        raise bad_request(f'unrecognized includeObject value: "{include_object}"')
    if printer is None:
        printer = _printer(resource)
    rows: list[dict[str, Any]] = []
    for obj in objects:
        row: dict[str, Any] = {"cells": printer.row(obj, now)}
        if printer.conditions is not None and (conditions := printer.conditions(obj)):
            row["conditions"] = conditions
        partial = _row_object(obj, mode)
        if partial is not None:
            row["object"] = partial
        rows.append(row)
    metadata: dict[str, Any] = {}
    for key in ("resourceVersion", "continue", "remainingItemCount"):
        value = (list_meta or {}).get(key)
        if value not in (None, ""):
            metadata[key] = value
    table: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}
    if not no_headers:
        table["columnDefinitions"] = [c.definition() for c in printer.columns]
    table["rows"] = rows
    return table
