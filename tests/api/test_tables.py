"""Server-side printing: columns, priorities and cells as upstream v1.32 prints them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pyk8s.api.errors import StatusError
from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.api.tables import (
    build_table,
    column_definitions,
    format_label_selector,
    format_labels,
    format_quantity,
    human_duration,
    translate_timestamp_since,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def ago(**kw: float) -> str:
    """An RFC 3339 timestamp ``kw`` before NOW."""
    return (NOW - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


def res(group: str, plural: str) -> Resource:
    for r in REGISTRY:
        if r.group == group and r.plural == plural:
            return r
    raise KeyError(plural)


def meta(name: str, **extra: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "name": name,
        "namespace": "default",
        "uid": f"uid-{name}",
        "resourceVersion": "42",
        "creationTimestamp": ago(days=2),
    }
    m.update(extra)
    return m


def cells(group: str, plural: str, obj: dict[str, Any]) -> list[Any]:
    table = build_table(res(group, plural), [obj], now=NOW)
    cols = table["columnDefinitions"]
    row = table["rows"][0]["cells"]
    assert len(row) == len(cols)
    return list(row)


def columns(group: str, plural: str) -> list[tuple[str, int]]:
    return [(c["name"], c["priority"]) for c in column_definitions(res(group, plural))]


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(milliseconds=-1500), "0s"),
        (timedelta(seconds=-2), "<invalid>"),
        (timedelta(seconds=45), "45s"),
        (timedelta(seconds=119), "119s"),
        (timedelta(seconds=120), "2m"),
        (timedelta(seconds=303), "5m3s"),
        (timedelta(minutes=10, seconds=30), "10m"),
        (timedelta(minutes=179), "179m"),
        (timedelta(hours=3), "3h"),
        (timedelta(hours=3, minutes=10), "3h10m"),
        (timedelta(hours=8, minutes=10), "8h"),
        (timedelta(hours=47, minutes=59), "47h"),
        (timedelta(hours=48), "2d"),
        (timedelta(days=4, hours=5), "4d5h"),
        (timedelta(days=8, hours=5), "8d"),
        (timedelta(days=729), "729d"),
        (timedelta(days=730), "2y"),
        (timedelta(days=733), "2y3d"),
        (timedelta(days=365 * 9), "9y"),
    ],
)
def test_human_duration(delta: timedelta, text: str) -> None:
    assert human_duration(delta) == text


def test_translate_timestamp_since() -> None:
    assert translate_timestamp_since(ago(minutes=5, seconds=3), NOW) == "5m3s"
    assert translate_timestamp_since(None, NOW) == "<unknown>"
    assert translate_timestamp_since("", NOW) == "<unknown>"
    assert translate_timestamp_since("0001-01-01T00:00:00Z", NOW) == "<unknown>"
    # micro-timestamps and naive "now" work too
    assert translate_timestamp_since("2024-05-01T11:59:15.123456Z", NOW) == "44s"
    assert translate_timestamp_since(ago(seconds=30), NOW.replace(tzinfo=None)) == "30s"


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("1Gi", "1Gi"),
        ("1024Mi", "1Gi"),
        ("1536Mi", "1536Mi"),
        ("0.5Gi", "512Mi"),
        ("512", "512"),
        ("1Ki", "1Ki"),
        ("100m", "100m"),
        ("0.5", "500m"),
        ("1500m", "1500m"),
        ("2000", "2k"),
        ("1500", "1500"),
        ("1e3", "1e3"),
        ("1.5e3", "1500"),
        ("10G", "10G"),
        ("0", "0"),
        (0, "0"),
        (4, "4"),
        ("-2k", "-2k"),
        ("0.1m", "100u"),
        ("bogus", "bogus"),
        (None, "<nil>"),
    ],
)
def test_format_quantity(value: Any, text: str) -> None:
    assert format_quantity(value) == text


def test_format_labels_and_selectors() -> None:
    assert format_labels({"b": "2", "a": "1"}) == "a=1,b=2"
    assert format_labels({}) == "<none>"
    assert format_labels(None) == "<none>"
    assert format_label_selector(None) == "<none>"
    assert format_label_selector({}) == "<none>"
    sel = {
        "matchLabels": {"tier": "web"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "dev"]},
            {"key": "zone", "operator": "NotIn", "values": ["b"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "app", "operator": "Exists"},
        ],
    }
    assert format_label_selector(sel) == "app,!canary,env in (dev,prod),tier=web,zone notin (b)"
    assert format_label_selector({"matchExpressions": [{"key": "a", "operator": "Is"}]}) == (
        "<error>"
    )
    assert format_label_selector({"matchExpressions": [{"key": "a", "operator": "In"}]}) == (
        "<error>"
    )


# --------------------------------------------------------------------------- pods

POD_COLUMNS = [
    ("Name", 0),
    ("Ready", 0),
    ("Status", 0),
    ("Restarts", 0),
    ("Age", 0),
    ("IP", 1),
    ("Node", 1),
    ("Nominated Node", 1),
    ("Readiness Gates", 1),
]


def pod(
    name: str,
    *,
    phase: str = "Running",
    containers: list[dict[str, Any]] | None = None,
    init: list[dict[str, Any]] | None = None,
    init_statuses: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    **meta_extra: Any,
) -> dict[str, Any]:
    statuses = containers if containers is not None else [running("app")]
    spec: dict[str, Any] = {
        "nodeName": "node-1",
        "containers": [{"name": s["name"], "image": "busybox"} for s in statuses],
    }
    if init is not None:
        spec["initContainers"] = init
    status: dict[str, Any] = {
        "phase": phase,
        "podIP": "10.244.0.5",
        "podIPs": [{"ip": "10.244.0.5"}],
        "containerStatuses": statuses,
        "conditions": conditions or [],
    }
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(name, **meta_extra),
        "spec": spec,
        "status": status,
    }


def running(name: str, restarts: int = 0, last_finished: str | None = None) -> dict[str, Any]:
    s: dict[str, Any] = {
        "name": name,
        "ready": True,
        "started": True,
        "restartCount": restarts,
        "state": {"running": {"startedAt": ago(minutes=4)}},
        "lastState": {},
    }
    if last_finished:
        s["lastState"] = {
            "terminated": {"exitCode": 1, "reason": "Error", "finishedAt": last_finished}
        }
    return s


def waiting(name: str, reason: str, restarts: int = 0, last_finished: str | None = None) -> Any:
    s = running(name, restarts, last_finished)
    s.update(ready=False, started=False, state={"waiting": {"reason": reason}})
    return s


def terminated(name: str, code: int = 0, reason: str = "Completed", signal: int = 0) -> Any:
    s = running(name)
    term: dict[str, Any] = {"exitCode": code, "finishedAt": ago(minutes=1)}
    if reason:
        term["reason"] = reason
    if signal:
        term["signal"] = signal
    s.update(ready=False, started=False, state={"terminated": term})
    return s


READY = [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}]


def test_pod_columns() -> None:
    assert columns("", "pods") == POD_COLUMNS
    cols = column_definitions(res("", "pods"))
    assert cols[0] == {**cols[0], "name": "Name", "type": "string", "format": "name"}
    assert [c["type"] for c in cols] == ["string"] * 9  # Restarts is a string since 1.22


def test_running_pod_with_restarts() -> None:
    p = pod(
        "web",
        containers=[
            running("app", 3, last_finished=ago(minutes=5)),
            running("sidecar", 1, ago(hours=2)),
        ],
        conditions=READY,
    )
    assert cells("", "pods", p) == [
        "web", "2/2", "Running", "4 (5m ago)", "2d", "10.244.0.5", "node-1", "<none>", "<none>",
    ]  # fmt: skip


def test_running_pod_without_restarts() -> None:
    assert cells("", "pods", pod("web", conditions=READY))[:4] == ["web", "1/1", "Running", "0"]


def test_crash_loop_back_off() -> None:
    p = pod("crashy", containers=[waiting("app", "CrashLoopBackOff", 5, ago(seconds=30))])
    assert cells("", "pods", p)[:4] == ["crashy", "0/1", "CrashLoopBackOff", "5 (30s ago)"]


def test_container_creating_and_pending() -> None:
    p = pod("new", phase="Pending", containers=[waiting("app", "ContainerCreating")])
    assert cells("", "pods", p)[:4] == ["new", "0/1", "ContainerCreating", "0"]
    unscheduled = pod("waiting", phase="Pending", containers=[])
    unscheduled["spec"]["containers"] = [{"name": "app", "image": "busybox"}]
    unscheduled["spec"].pop("nodeName")
    del unscheduled["status"]["podIP"], unscheduled["status"]["podIPs"]
    row = cells("", "pods", unscheduled)
    assert row[1:3] == ["0/1", "Pending"]
    assert row[5:7] == ["<none>", "<none>"]


def test_scheduling_gated() -> None:
    p = pod(
        "gated",
        phase="Pending",
        containers=[],
        conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}],
    )
    assert cells("", "pods", p)[2] == "SchedulingGated"


def test_init_containers() -> None:
    init = [{"name": "migrate", "image": "x"}, {"name": "seed", "image": "x"}]
    app = [waiting("app", "PodInitializing")]
    p = pod(
        "init",
        phase="Pending",
        containers=app,
        init=init,
        init_statuses=[terminated("migrate"), running("seed")],
    )
    assert cells("", "pods", p)[:4] == ["init", "0/1", "Init:1/2", "0"]

    p["status"]["initContainerStatuses"] = [
        waiting("migrate", "PodInitializing"),
        waiting("seed", ""),
    ]
    assert cells("", "pods", p)[2] == "Init:0/2"

    p["status"]["initContainerStatuses"] = [
        waiting("migrate", "ImagePullBackOff", 2, ago(minutes=1)),
        waiting("seed", ""),
    ]
    # restarts of regular init containers count while initializing
    assert cells("", "pods", p)[2:4] == ["Init:ImagePullBackOff", "2 (60s ago)"]

    p["status"]["initContainerStatuses"] = [terminated("migrate", 1, "Error"), waiting("seed", "")]
    assert cells("", "pods", p)[2] == "Init:Error"
    p["status"]["initContainerStatuses"] = [terminated("migrate", 137, "", 9), waiting("seed", "")]
    assert cells("", "pods", p)[2] == "Init:Signal:9"
    p["status"]["initContainerStatuses"] = [terminated("migrate", 2, ""), waiting("seed", "")]
    assert cells("", "pods", p)[2] == "Init:ExitCode:2"

    # all init containers done: the app containers decide, init restarts no longer count
    p["status"]["phase"] = "Running"
    p["status"]["conditions"] = READY
    p["status"]["initContainerStatuses"] = [terminated("migrate"), terminated("seed")]
    p["status"]["initContainerStatuses"][0]["restartCount"] = 4
    p["status"]["containerStatuses"] = [running("app")]
    assert cells("", "pods", p)[1:4] == ["1/1", "Running", "0"]


def test_sidecar_init_container_counts_as_container() -> None:
    init = [{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}]
    sidecar = running("proxy", 2, ago(minutes=7))
    p = pod(
        "mesh", containers=[running("app")], init=init, init_statuses=[sidecar], conditions=READY
    )
    assert cells("", "pods", p)[1:4] == ["2/2", "Running", "2 (7m ago)"]


def test_terminating_pod() -> None:
    p = pod("going", deletionTimestamp=ago(seconds=10), conditions=READY)
    assert cells("", "pods", p)[2] == "Terminating"
    lost = pod("lost", deletionTimestamp=ago(seconds=10))
    lost["status"]["reason"] = "NodeLost"
    assert cells("", "pods", lost)[2] == "Unknown"
    done = pod(
        "done", phase="Succeeded", containers=[terminated("app")], deletionTimestamp=ago(seconds=1)
    )
    assert cells("", "pods", done)[2] == "Completed"


def test_completed_and_failed_pods_carry_row_conditions() -> None:
    done = pod("done", phase="Succeeded", containers=[terminated("app")])
    table = build_table(res("", "pods"), [done], now=NOW)
    assert table["rows"][0]["cells"][1:3] == ["0/1", "Completed"]
    assert table["rows"][0]["conditions"] == [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ]
    failed = pod("oom", phase="Failed", containers=[terminated("app", 137, "OOMKilled")])
    table = build_table(res("", "pods"), [failed], now=NOW)
    assert table["rows"][0]["cells"][2] == "OOMKilled"
    assert table["rows"][0]["conditions"][0]["reason"] == "Failed"
    running_table = build_table(res("", "pods"), [pod("web")], now=NOW)
    assert "conditions" not in running_table["rows"][0]


def test_completed_with_a_running_container() -> None:
    p = pod("half", containers=[running("a"), terminated("b")], conditions=READY)
    # the first container's reason wins (statuses are walked backwards), then Running again
    p["status"]["containerStatuses"] = [terminated("b"), running("a")]
    assert cells("", "pods", p)[1:3] == ["1/2", "Running"]
    p["status"]["conditions"] = []
    assert cells("", "pods", p)[2] == "NotReady"


def test_pod_wide_cells() -> None:
    p = pod("wide", conditions=[*READY, {"type": "example.com/lb", "status": "True"}])
    p["spec"]["readinessGates"] = [
        {"conditionType": "example.com/lb"},
        {"conditionType": "example.com/other"},
    ]
    p["status"]["nominatedNodeName"] = "node-2"
    assert cells("", "pods", p)[5:] == ["10.244.0.5", "node-1", "node-2", "1/2"]


# --------------------------------------------------------------------------- services


def service(name: str, type_: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name),
        "spec": {"type": type_, **spec},
        "status": {"loadBalancer": {}},
    }


def test_service_columns() -> None:
    assert columns("", "services") == [
        ("Name", 0), ("Type", 0), ("Cluster-IP", 0), ("External-IP", 0), ("Port(s)", 0),
        ("Age", 0), ("Selector", 1),
    ]  # fmt: skip


def test_node_port_service() -> None:
    svc = service(
        "web",
        "NodePort",
        clusterIP="10.96.0.10",
        clusterIPs=["10.96.0.10"],
        selector={"app": "web"},
        ports=[
            {"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"},
            {"name": "dns", "port": 53, "nodePort": 30053, "protocol": "UDP"},
        ],
    )
    assert cells("", "services", svc) == [
        "web", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP,53:30053/UDP", "2d", "app=web",
    ]  # fmt: skip


def test_other_service_types() -> None:
    cluster = service("db", "ClusterIP", clusterIPs=["10.96.0.11"], ports=[{"port": 5432}])
    assert cells("", "services", cluster)[1:5] == ["ClusterIP", "10.96.0.11", "<none>", "5432/TCP"]
    headless = service("hl", "ClusterIP", clusterIP="None", clusterIPs=["None"])
    assert cells("", "services", headless)[2:5] == ["None", "<none>", "<none>"]
    lb = service("lb", "LoadBalancer", clusterIPs=["10.96.0.12"], ports=[{"port": 443}])
    assert cells("", "services", lb)[3] == "<pending>"
    lb["status"]["loadBalancer"] = {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example"}]}
    assert cells("", "services", lb)[3] == "203.0.113.9,lb.example"
    lb["spec"]["externalIPs"] = ["198.51.100.1"]
    assert cells("", "services", lb)[3] == "203.0.113.9,lb.example,198.51.100.1"
    ext = service("ext", "ExternalName", externalName="db.example.com")
    assert cells("", "services", ext)[1:5] == ["ExternalName", "<none>", "db.example.com", "<none>"]


# --------------------------------------------------------------------------- workloads

TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {
        "containers": [
            {"name": "nginx", "image": "nginx:1.27"},
            {"name": "log", "image": "busybox"},
        ]
    },
}


def test_deployment() -> None:
    assert columns("apps", "deployments") == [
        ("Name", 0), ("Ready", 0), ("Up-to-date", 0), ("Available", 0), ("Age", 0),
        ("Containers", 1), ("Images", 1), ("Selector", 1),
    ]  # fmt: skip
    deploy = {
        "metadata": meta("web"),
        "spec": {
            "replicas": 3,
            "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe"]}],
            },
            "template": TEMPLATE,
        },
        "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }
    assert cells("apps", "deployments", deploy) == [
        "web", "2/3", 3, 2, "2d", "nginx,log", "nginx:1.27,busybox", "app=web,tier in (fe)",
    ]  # fmt: skip
    fresh = {"metadata": meta("fresh"), "spec": {"template": TEMPLATE}, "status": {}}
    assert cells("apps", "deployments", fresh)[1:4] == ["0/1", 0, 0]


def test_replicaset_statefulset_daemonset_rc() -> None:
    rs = {
        "metadata": meta("web-5d4f"),
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE},
        "status": {"replicas": 2, "readyReplicas": 1},
    }
    assert cells("apps", "replicasets", rs) == [
        "web-5d4f", 2, 2, 1, "2d", "nginx,log", "nginx:1.27,busybox", "app=web",
    ]  # fmt: skip
    sts = {
        "metadata": meta("db"),
        "spec": {"replicas": 3, "template": TEMPLATE},
        "status": {"readyReplicas": 3},
    }
    assert columns("apps", "statefulsets") == [
        ("Name", 0), ("Ready", 0), ("Age", 0), ("Containers", 1), ("Images", 1),
    ]  # fmt: skip
    assert cells("apps", "statefulsets", sts) == [
        "db",
        "3/3",
        "2d",
        "nginx,log",
        "nginx:1.27,busybox",
    ]
    ds_template = {**TEMPLATE, "spec": {**TEMPLATE["spec"], "nodeSelector": {"os": "linux"}}}
    ds = {
        "metadata": meta("agent"),
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": ds_template},
        "status": {
            "desiredNumberScheduled": 3,
            "currentNumberScheduled": 3,
            "numberReady": 2,
            "updatedNumberScheduled": 3,
            "numberAvailable": 2,
        },
    }
    assert cells("apps", "daemonsets", ds) == [
        "agent", 3, 3, 2, 3, 2, "os=linux", "2d", "nginx,log", "nginx:1.27,busybox", "app=agent",
    ]  # fmt: skip
    rc = {
        "metadata": meta("old"),
        "spec": {"replicas": 2, "selector": {"app": "old"}, "template": TEMPLATE},
        "status": {"replicas": 2, "readyReplicas": 2},
    }
    assert cells("", "replicationcontrollers", rc) == [
        "old", 2, 2, 2, "2d", "nginx,log", "nginx:1.27,busybox", "app=old",
    ]  # fmt: skip


def job(name: str, spec: dict[str, Any], status: dict[str, Any], **meta_extra: Any) -> Any:
    return {
        "metadata": meta(name, **meta_extra),
        "spec": {
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
            "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}},
            **spec,
        },
        "status": status,
    }


def test_job() -> None:
    assert columns("batch", "jobs") == [
        ("Name", 0), ("Status", 0), ("Completions", 0), ("Duration", 0), ("Age", 0),
        ("Containers", 1), ("Images", 1), ("Selector", 1),
    ]  # fmt: skip
    running_job = job(
        "pi", {"completions": 3, "parallelism": 1}, {"startTime": ago(minutes=2), "succeeded": 1}
    )
    assert cells("batch", "jobs", running_job) == [
        "pi", "Running", "1/3", "2m", "2d", "pi", "perl", "batch.kubernetes.io/controller-uid=u1",
    ]  # fmt: skip
    done = job(
        "done",
        {"completions": 1},
        {
            "startTime": ago(minutes=10),
            "completionTime": ago(minutes=9, seconds=15),
            "succeeded": 1,
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True"},
                {"type": "Complete", "status": "True"},
            ],
        },
    )
    assert cells("batch", "jobs", done)[1:4] == ["Complete", "1/1", "45s"]
    workers = job("q", {"parallelism": 4}, {})
    assert cells("batch", "jobs", workers)[1:4] == ["Running", "0/1 of 4", ""]
    failed = job("f", {}, {"conditions": [{"type": "Failed", "status": "True"}]})
    assert cells("batch", "jobs", failed)[1:3] == ["Failed", "0/1"]
    suspended = job("s", {}, {"conditions": [{"type": "Suspended", "status": "True"}]})
    assert cells("batch", "jobs", suspended)[1] == "Suspended"
    deleting = job("d", {}, {}, deletionTimestamp=ago(seconds=1))
    assert cells("batch", "jobs", deleting)[1] == "Terminating"


def test_cronjob() -> None:
    cj = {
        "metadata": meta("nightly"),
        "spec": {
            "schedule": "0 3 * * *",
            "suspend": False,
            "jobTemplate": {
                "spec": {"template": {"spec": {"containers": [{"name": "b", "image": "backup"}]}}}
            },
        },
        "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": ago(hours=9)},
    }
    assert cells("batch", "cronjobs", cj) == [
        "nightly", "0 3 * * *", "<none>", "False", 1, "9h", "2d", "b", "backup", "<none>",
    ]  # fmt: skip
    cj["spec"]["timeZone"] = "Etc/UTC"
    del cj["spec"]["suspend"], cj["status"]["lastScheduleTime"]
    assert cells("batch", "cronjobs", cj)[2:6] == ["Etc/UTC", "<unset>", 1, "<none>"]


# --------------------------------------------------------------------------- nodes, events


def test_node() -> None:
    assert columns("", "nodes") == [
        ("Name", 0), ("Status", 0), ("Roles", 0), ("Age", 0), ("Version", 0),
        ("Internal-IP", 1), ("External-IP", 1), ("OS-Image", 1), ("Kernel-Version", 1),
        ("Container-Runtime", 1),
    ]  # fmt: skip
    node = {
        "metadata": {
            "name": "node-1",
            "creationTimestamp": ago(days=40),
            "labels": {
                "node-role.kubernetes.io/control-plane": "",
                "node-role.kubernetes.io/etcd": "true",
                "kubernetes.io/hostname": "node-1",
            },
        },
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True"},
            ],
            "addresses": [
                {"type": "InternalIP", "address": "192.168.1.10"},
                {"type": "Hostname", "address": "node-1"},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.32.4",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "kernelVersion": "6.1.0-18-amd64",
                "containerRuntimeVersion": "containerd://1.6.20",
            },
        },
    }
    assert cells("", "nodes", node) == [
        "node-1", "Ready,SchedulingDisabled", "control-plane,etcd", "40d", "v1.32.4",
        "192.168.1.10", "<none>", "Debian GNU/Linux 12 (bookworm)", "6.1.0-18-amd64",
        "containerd://1.6.20",
    ]  # fmt: skip
    bare: dict[str, Any] = {
        "metadata": {"name": "n2", "labels": {"kubernetes.io/role": "worker"}},
        "status": {},
    }
    assert cells("", "nodes", bare) == [
        "n2", "Unknown", "worker", "<unknown>", "", "<none>", "<none>",
        "<unknown>", "<unknown>", "<unknown>",
    ]  # fmt: skip
    bare["status"]["conditions"] = [{"type": "Ready", "status": "Unknown"}]
    assert cells("", "nodes", bare)[1] == "NotReady"


EVENT_COLUMNS = [
    ("Last Seen", 0), ("Type", 0), ("Reason", 0), ("Object", 0), ("Subobject", 1),
    ("Source", 1), ("Message", 0), ("First Seen", 1), ("Count", 1), ("Name", 1),
]  # fmt: skip


def test_core_event() -> None:
    assert columns("", "events") == EVENT_COLUMNS
    assert column_definitions(res("", "events"))[9]["format"] == "name"
    ev = {
        "metadata": meta("web.17c2"),
        "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
        "reason": "BackOff",
        "message": "Back-off restarting failed container app\n",
        "type": "Warning",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": ago(minutes=30),
        "lastTimestamp": ago(minutes=2, seconds=5),
        "count": 7,
    }
    assert cells("", "events", ev) == [
        "2m5s", "Warning", "BackOff", "pod/web", "spec.containers{app}", "kubelet, node-1",
        "Back-off restarting failed container app", "30m", 7, "web.17c2",
    ]  # fmt: skip


def test_new_style_core_event() -> None:
    ev = {
        "metadata": meta("e1"),
        "involvedObject": {"kind": "Node"},
        "reason": "Starting",
        "message": "Starting kubelet.",
        "type": "Normal",
        "eventTime": "2024-05-01T11:59:50.000000Z",
        "reportingComponent": "kubelet",
        "reportingInstance": "",
    }
    assert cells("", "events", ev) == [
        "10s", "Normal", "Starting", "node", "", "kubelet", "Starting kubelet.", "10s", 1, "e1",
    ]  # fmt: skip
    ev["series"] = {"count": 4, "lastObservedTime": "2024-05-01T11:59:58.500000Z"}
    assert cells("", "events", ev)[0] == "1s"
    assert cells("", "events", ev)[8] == 4


def test_events_k8s_io_event_prints_like_core() -> None:
    assert columns("events.k8s.io", "events") == EVENT_COLUMNS
    ev = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": meta("web.1"),
        "eventTime": "2024-05-01T11:55:00.000000Z",
        "reportingController": "default-scheduler",
        "reportingInstance": "default-scheduler-node-1",
        "action": "Binding",
        "reason": "Scheduled",
        "regarding": {"kind": "Pod", "name": "web", "namespace": "default"},
        "note": "Successfully assigned default/web to node-1",
        "type": "Normal",
    }
    assert cells("events.k8s.io", "events", ev) == [
        "5m", "Normal", "Scheduled", "pod/web", "", "default-scheduler, default-scheduler-node-1",
        "Successfully assigned default/web to node-1", "5m", 1, "web.1",
    ]  # fmt: skip


# --------------------------------------------------------------------------- the rest


def test_config_secret_serviceaccount_namespace() -> None:
    cm = {"metadata": meta("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}
    assert columns("", "configmaps") == [("Name", 0), ("Data", 0), ("Age", 0)]
    assert cells("", "configmaps", cm) == ["cfg", 3, "2d"]
    secret = {
        "metadata": meta("tls"),
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": "", "tls.key": ""},
    }
    assert columns("", "secrets") == [("Name", 0), ("Type", 0), ("Data", 0), ("Age", 0)]
    assert cells("", "secrets", secret) == ["tls", "kubernetes.io/tls", 2, "2d"]
    assert cells("", "secrets", {"metadata": meta("empty")}) == ["empty", "Opaque", 0, "2d"]
    sa = {"metadata": meta("default"), "secrets": [{"name": "t"}]}
    assert cells("", "serviceaccounts", sa) == ["default", 1, "2d"]
    ns = {"metadata": meta("kube-system"), "status": {"phase": "Terminating"}}
    assert cells("", "namespaces", ns) == ["kube-system", "Terminating", "2d"]


def test_endpoints_and_slices() -> None:
    ep = {
        "metadata": meta("web"),
        "subsets": [
            {
                "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "fd00::3"}],
                "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}],
            }
        ],
    }
    assert cells("", "endpoints", ep) == [
        "web", "10.0.0.1:80,10.0.0.2:80,[fd00::3]:80 + 3 more...", "2d",
    ]  # fmt: skip
    assert cells("", "endpoints", {"metadata": meta("none")})[1] == "<none>"
    headless = {"metadata": meta("hl"), "subsets": [{"addresses": [{"ip": "10.0.0.9"}]}]}
    assert cells("", "endpoints", headless)[1] == "10.0.0.9"
    eps = {
        "metadata": meta("web-abc"),
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80}, {"name": "named"}, {}],
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}],
    }
    assert columns("discovery.k8s.io", "endpointslices") == [
        ("Name", 0), ("AddressType", 0), ("Ports", 0), ("Endpoints", 0), ("Age", 0),
    ]  # fmt: skip
    assert cells("discovery.k8s.io", "endpointslices", eps) == [
        "web-abc", "IPv4", "80,named,*", "10.0.0.1,10.0.0.2", "2d",
    ]  # fmt: skip
    empty = {"metadata": meta("e"), "addressType": "IPv6"}
    assert cells("discovery.k8s.io", "endpointslices", empty)[2:4] == ["<unset>", "<unset>"]


def test_pv_and_pvc() -> None:
    pv = {
        "metadata": meta("pv-1", deletionTimestamp=None),
        "spec": {
            "capacity": {"storage": "10240Mi"},
            "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "claimRef": {"namespace": "default", "name": "data"},
            "storageClassName": "local",
            "volumeMode": "Filesystem",
        },
        "status": {"phase": "Bound"},
    }
    assert cells("", "persistentvolumes", pv) == [
        "pv-1", "10Gi", "RWO,RWX", "Retain", "Bound", "default/data", "local", "<unset>", "",
        "2d", "Filesystem",
    ]  # fmt: skip
    assert columns("", "persistentvolumes")[-1] == ("VolumeMode", 1)
    pvc = {
        "metadata": meta("data"),
        "spec": {"volumeName": "pv-1", "storageClassName": "local", "resources": {}},
        "status": {
            "phase": "Bound",
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteOnce"],
        },
    }
    assert cells("", "persistentvolumeclaims", pvc) == [
        "data", "Bound", "pv-1", "10Gi", "RWO", "local", "<unset>", "2d", "<unset>",
    ]  # fmt: skip
    pending = {"metadata": meta("p"), "spec": {}, "status": {"phase": "Pending"}}
    assert cells("", "persistentvolumeclaims", pending)[1:6] == ["Pending", "", "", "", ""]


def test_ingress_and_class() -> None:
    ing = {
        "metadata": meta("web"),
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {"host": "a.example"},
                {"host": "b.example"},
                {},
                {"host": "c"},
                {"host": "d"},
            ],
            "tls": [{"hosts": ["a.example"]}],
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.5"}, {"ip": "10.0.0.4"}]}},
    }
    assert columns("networking.k8s.io", "ingresses") == [
        ("Name", 0), ("Class", 0), ("Hosts", 0), ("Address", 0), ("Ports", 0), ("Age", 0),
    ]  # fmt: skip
    assert cells("networking.k8s.io", "ingresses", ing) == [
        "web", "nginx", "a.example,b.example,c + 2 more...", "10.0.0.4,10.0.0.5", "80, 443", "2d",
    ]  # fmt: skip
    bare = {"metadata": meta("b"), "spec": {}}
    assert cells("networking.k8s.io", "ingresses", bare)[1:5] == ["<none>", "*", "", "80"]
    ic = {
        "metadata": meta("nginx"),
        "spec": {
            "controller": "k8s.io/ingress-nginx",
            "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p"},
        },
    }
    assert cells("networking.k8s.io", "ingressclasses", ic) == [
        "nginx", "k8s.io/ingress-nginx", "IngressParameters.k8s.example.com/p", "2d",
    ]  # fmt: skip


def metric(kind: str, key: str, name: str, **target: Any) -> dict[str, Any]:
    return {"type": kind, key: {"name": name, "target": target}}


def test_hpa_v2_and_v1() -> None:
    cpu_now = {"averageUtilization": 23, "averageValue": "115m"}
    hpa = {
        "metadata": meta("web"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 10,
            "metrics": [
                metric("Resource", "resource", "cpu", type="Utilization", averageUtilization=50),
                metric("Resource", "resource", "memory", type="AverageValue", averageValue="512Mi"),
                metric("Pods", "pods", "qps", type="AverageValue", averageValue="1k"),
            ],
        },
        "status": {
            "currentReplicas": 3,
            "currentMetrics": [
                {"type": "Resource", "resource": {"name": "cpu", "current": cpu_now}},
            ],
        },
    }
    assert columns("autoscaling", "horizontalpodautoscalers") == [
        ("Name", 0), ("Reference", 0), ("Targets", 0), ("MinPods", 0), ("MaxPods", 0),
        ("Replicas", 0), ("Age", 0),
    ]  # fmt: skip
    assert cells("autoscaling", "horizontalpodautoscalers", hpa) == [
        "web", "Deployment/web", "cpu: 23%/50%, memory: <unknown>/512Mi + 1 more...", "1", 10, 3,
        "2d",
    ]  # fmt: skip
    v1 = REGISTRY.get("autoscaling", "v1", "horizontalpodautoscalers")
    assert v1 is not None
    old = {
        "metadata": meta("old"),
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "maxReplicas": 5,
                 "targetCPUUtilizationPercentage": 80},
        "status": {"currentReplicas": 1},
    }  # fmt: skip
    row = build_table(v1, [old], now=NOW)["rows"][0]["cells"]
    assert row == ["old", "Deployment/x", "cpu: <unknown>/80%", "<unset>", 5, 1, "2d"]


def test_small_resources() -> None:
    pdb = {
        "metadata": meta("web"),
        "spec": {"minAvailable": "50%"},
        "status": {"disruptionsAllowed": 1},
    }
    assert cells("policy", "poddisruptionbudgets", pdb) == ["web", "50%", "N/A", 1, "2d"]
    pdb["spec"] = {"maxUnavailable": 1}
    assert cells("policy", "poddisruptionbudgets", pdb)[1:3] == ["N/A", "1"]

    lease = {"metadata": meta("kube-scheduler"), "spec": {"holderIdentity": "node-1_abc"}}
    assert cells("coordination.k8s.io", "leases", lease) == ["kube-scheduler", "node-1_abc", "2d"]

    pc = {
        "metadata": meta("high"),
        "value": 1000000,
        "globalDefault": False,
        "preemptionPolicy": "Never",
    }
    assert columns("scheduling.k8s.io", "priorityclasses") == [
        ("Name", 0), ("Value", 0), ("Global-Default", 0), ("Age", 0), ("PreemptionPolicy", 0),
    ]  # fmt: skip
    assert cells("scheduling.k8s.io", "priorityclasses", pc) == [
        "high",
        1000000,
        False,
        "2d",
        "Never",
    ]

    sc = {
        "metadata": meta(
            "local", annotations={"storageclass.kubernetes.io/is-default-class": "true"}
        ),
        "provisioner": "rancher.io/local-path",
        "volumeBindingMode": "WaitForFirstConsumer",
    }
    assert cells("storage.k8s.io", "storageclasses", sc) == [
        "local (default)", "rancher.io/local-path", "Delete", "WaitForFirstConsumer", False, "2d",
    ]  # fmt: skip

    netpol = {"metadata": meta("deny"), "spec": {"podSelector": {}}}
    assert cells("networking.k8s.io", "networkpolicies", netpol) == ["deny", "<none>", "2d"]

    cr = {
        "metadata": meta(
            "web-7b9",
            ownerReferences=[
                {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": True}
            ],
        ),
        "revision": 2,
        "data": {},
    }
    assert cells("apps", "controllerrevisions", cr) == ["web-7b9", "statefulset.apps/web", 2, "2d"]
    assert (
        cells("apps", "controllerrevisions", {"metadata": meta("x"), "revision": 1})[1] == "<none>"
    )

    quota = {
        "metadata": meta("compute"),
        "status": {
            "hard": {"requests.cpu": "2", "limits.memory": "2Gi", "pods": "10", "limits.cpu": "4"},
            "used": {"requests.cpu": "500m", "limits.memory": "1024Mi", "pods": "3"},
        },
    }
    assert columns("", "resourcequotas") == [("Name", 0), ("Request", 0), ("Limit", 0), ("Age", 0)]
    assert cells("", "resourcequotas", quota) == [
        "compute", "pods: 3/10, requests.cpu: 500m/2", "limits.cpu: 0/4, limits.memory: 1Gi/2Gi",
        "2d",
    ]  # fmt: skip

    tmpl = {"metadata": meta("t"), "template": TEMPLATE}
    assert cells("", "podtemplates", tmpl) == ["t", "nginx,log", "nginx:1.27,busybox", "app=web"]


def test_rbac() -> None:
    assert columns("rbac.authorization.k8s.io", "rolebindings") == [
        ("Name", 0), ("Role", 0), ("Age", 0), ("Users", 1), ("Groups", 1), ("ServiceAccounts", 1),
    ]  # fmt: skip
    rb = {
        "metadata": meta("read"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [
            {"kind": "User", "name": "alice"},
            {"kind": "User", "name": "bob"},
            {"kind": "Group", "name": "devs"},
            {"kind": "ServiceAccount", "name": "ci", "namespace": "tools"},
        ],
    }
    assert cells("rbac.authorization.k8s.io", "rolebindings", rb) == [
        "read", "ClusterRole/view", "2d", "alice, bob", "devs", "tools/ci",
    ]  # fmt: skip
    assert cells("rbac.authorization.k8s.io", "clusterrolebindings", rb)[1] == "ClusterRole/view"
    # roles, clusterroles and limitranges have no printer upstream: Name + Created At
    for plural in ("roles", "clusterroles"):
        defs = column_definitions(res("rbac.authorization.k8s.io", plural))
        assert [(c["name"], c["type"]) for c in defs] == [
            ("Name", "string"),
            ("Created At", "date"),
        ]
    role = {"metadata": {"name": "r", "creationTimestamp": "2024-04-29T10:00:00+02:00"}}
    assert cells("rbac.authorization.k8s.io", "roles", role) == ["r", "2024-04-29T08:00:00Z"]
    assert cells("", "limitranges", {"metadata": {"name": "l"}}) == ["l", "0001-01-01T00:00:00Z"]


def test_unknown_resource_gets_name_and_age() -> None:
    crd = Resource("example.com", "v1", "Widget", "widgets", True)
    table = build_table(
        crd, [{"metadata": {"name": "w", "creationTimestamp": ago(seconds=90)}}], now=NOW
    )
    assert [(c["name"], c["type"], c["format"]) for c in table["columnDefinitions"]] == [
        ("Name", "string", "name"),
        ("Age", "date", ""),
    ]
    assert table["rows"][0]["cells"] == ["w", "90s"]


@pytest.mark.parametrize(
    "resource", list(REGISTRY), ids=lambda r: f"{r.plural}.{r.group}/{r.version}"
)
def test_every_resource_prints_a_minimal_object(resource: Resource) -> None:
    obj = {"apiVersion": resource.api_version, "kind": resource.kind, "metadata": meta("x")}
    table = build_table(resource, [obj, {}], now=NOW)
    defs = table["columnDefinitions"]
    assert set(defs[0]) == {"name", "type", "format", "description", "priority"}
    names = [d for d in defs if d["name"] == "Name"]
    assert len(names) == 1 and names[0]["format"] == "name"
    if resource.kind != "Event":
        assert defs[0]["name"] == "Name"
        assert table["rows"][0]["cells"][0] == "x"
    for row in table["rows"]:
        assert len(row["cells"]) == len(defs)
        assert all(c is None or isinstance(c, str | int | bool) for c in row["cells"])


# --------------------------------------------------------------------------- the Table


def test_table_shape_and_include_object() -> None:
    p = pod("web", conditions=READY)
    pods = res("", "pods")
    table = build_table(pods, [p], now=NOW, list_meta={"resourceVersion": "99", "continue": ""})
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "99"}
    assert table["rows"][0]["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": p["metadata"],
    }
    full = build_table(pods, [p], now=NOW, include_object="Object")
    assert full["rows"][0]["object"] == p
    none = build_table(pods, [p], now=NOW, include_object="None")
    assert "object" not in none["rows"][0]
    assert build_table(pods, [p], now=NOW, include_object="")["rows"][0]["object"]["kind"] == (
        "PartialObjectMetadata"
    )
    with pytest.raises(StatusError) as err:
        build_table(pods, [p], now=NOW, include_object="Everything")
    assert err.value.code == 400
    assert err.value.message == 'unrecognized includeObject value: "Everything"'


def test_list_meta_and_no_headers() -> None:
    pods = res("", "pods")
    lm = {"resourceVersion": "7", "continue": "abc", "remainingItemCount": 0, "selfLink": "x"}
    table = build_table(pods, [], now=NOW, list_meta=lm)
    assert table["metadata"] == {"resourceVersion": "7", "continue": "abc", "remainingItemCount": 0}
    assert table["rows"] == []
    assert len(table["columnDefinitions"]) == 9
    headless = build_table(pods, [pod("a"), pod("b")], now=NOW, no_headers=True)
    assert "columnDefinitions" not in headless
    assert [r["cells"][0] for r in headless["rows"]] == ["a", "b"]
