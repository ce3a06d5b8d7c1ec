"""One storage, several versions: HPAs through autoscaling/v1 and v2, Events through core/v1
and events.k8s.io/v1, with the real clients (what upstream's storage conversion gives)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client, watch

from tests.integration.conftest import Kubectl, RawClient

METRICS = "autoscaling.alpha.kubernetes.io/metrics"
CONDITIONS = "autoscaling.alpha.kubernetes.io/conditions"
REF = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
CPU_60 = {
    "type": "Resource",
    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}},
}
QPS = {
    "type": "Pods",
    "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}},
}


def _hpa_v2(name: str, metrics: list[Any]) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": {"scaleTargetRef": REF, "minReplicas": 1, "maxReplicas": 4, "metrics": metrics},
    }


def _watch_first(stream: Callable[..., Any], *args: Any, **kw: Any) -> tuple[list[Any], Any]:
    """Start a watch in a thread; returns (collected events, thread)."""
    got: list[Any] = []
    w = watch.Watch()

    def run() -> None:
        for ev in w.stream(stream, *args, timeout_seconds=20, **kw):
            got.append(ev)
            w.stop()

    t = threading.Thread(target=run)
    t.start()
    return got, t


# ---------------------------------------------------------------------------- HPA


def test_hpa_created_as_v2_reads_as_v1_and_back(api: Any, raw: RawClient, ns: str) -> None:
    v2 = client.AutoscalingV2Api(api)
    v1 = client.AutoscalingV1Api(api)
    created = v2.create_namespaced_horizontal_pod_autoscaler(ns, _hpa_v2("web", [CPU_60]))
    old = v1.read_namespaced_horizontal_pod_autoscaler("web", ns)
    assert old.api_version == "autoscaling/v1"
    assert old.spec.target_cpu_utilization_percentage == 60
    assert old.spec.max_replicas == 4 and old.spec.scale_target_ref.name == "web"
    assert old.metadata.resource_version == created.metadata.resource_version
    assert old.metadata.uid == created.metadata.uid
    listed = v1.list_namespaced_horizontal_pod_autoscaler(ns)
    assert [i.spec.target_cpu_utilization_percentage for i in listed.items] == [60]
    assert listed.api_version == "autoscaling/v1"
    # raw: the stored object (v2) went out converted, not as the cache's v2 bytes
    body = raw("GET", f"/apis/autoscaling/v1/namespaces/{ns}/horizontalpodautoscalers").json()
    assert [i["apiVersion"] for i in body["items"]] == ["autoscaling/v1"]
    assert "metrics" not in body["items"][0]["spec"]
    back = v2.read_namespaced_horizontal_pod_autoscaler("web", ns)
    assert back.api_version == "autoscaling/v2"
    assert back.spec.metrics[0].resource.target.average_utilization == 60
    assert not (back.metadata.annotations or {})


def test_hpa_created_as_v1_lists_as_v2(api: Any, kubectl: Kubectl, ns: str) -> None:
    v1 = client.AutoscalingV1Api(api)
    v2 = client.AutoscalingV2Api(api)
    created = v1.create_namespaced_horizontal_pod_autoscaler(
        ns,
        {
            "metadata": {"name": "seventy"},
            "spec": {"scaleTargetRef": REF, "maxReplicas": 3, "targetCPUUtilizationPercentage": 70},
        },
    )
    assert created.api_version == "autoscaling/v1"
    assert created.spec.target_cpu_utilization_percentage == 70
    # no target: upstream makes v1's implicit 80% explicit when storing
    implicit = v1.create_namespaced_horizontal_pod_autoscaler(
        ns, {"metadata": {"name": "implicit"}, "spec": {"scaleTargetRef": REF, "maxReplicas": 3}}
    )
    assert implicit.spec.target_cpu_utilization_percentage == 80
    items = {i.metadata.name: i for i in v2.list_namespaced_horizontal_pod_autoscaler(ns).items}
    assert set(items) == {"seventy", "implicit"}
    for name, pct in (("seventy", 70), ("implicit", 80)):
        (metric,) = items[name].spec.metrics
        assert metric.type == "Resource" and metric.resource.name == "cpu"
        assert metric.resource.target.type == "Utilization"
        assert metric.resource.target.average_utilization == pct
        assert items[name].spec.min_replicas == 1
    # kubectl (table and JSON) through the preferred version and through v1
    table = kubectl("-n", ns, "get", "hpa")
    assert "seventy" in table and "70%" in table and "implicit" in table
    # (kubectl 1.32 drops the version of a short name: hpa.v1.autoscaling reads v2)
    v1_name = "horizontalpodautoscalers.v1.autoscaling"
    assert "seventy" in kubectl("-n", ns, "get", v1_name)
    got = kubectl.json("-n", ns, "get", "hpa", "seventy")
    assert got["apiVersion"] == "autoscaling/v2"
    assert got["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    got1 = kubectl.json("-n", ns, "get", v1_name, "seventy")
    assert got1["apiVersion"] == "autoscaling/v1" and "metrics" not in got1["spec"]


def test_hpa_update_through_v1_keeps_what_only_v2_has(api: Any, ns: str) -> None:
    v2 = client.AutoscalingV2Api(api)
    v1 = client.AutoscalingV1Api(api)
    v2.create_namespaced_horizontal_pod_autoscaler(ns, _hpa_v2("multi", [CPU_60, QPS]))
    conditions = [
        {
            "type": "AbleToScale",
            "status": "True",
            "lastTransitionTime": "2025-01-01T00:00:00Z",
            "reason": "ReadyForNewScale",
        }
    ]
    v2.patch_namespaced_horizontal_pod_autoscaler_status(
        "multi", ns, {"status": {"desiredReplicas": 2, "conditions": conditions}}
    )
    old = v1.read_namespaced_horizontal_pod_autoscaler("multi", ns)
    annotations = old.metadata.annotations
    assert json.loads(annotations[METRICS]) == [
        {"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "10"}}
    ]
    assert json.loads(annotations[CONDITIONS])[0]["type"] == "AbleToScale"
    # a read-modify-write through v1 sends the annotations back: nothing is lost
    old.spec.max_replicas = 6
    replaced = v1.replace_namespaced_horizontal_pod_autoscaler("multi", ns, old)
    assert replaced.spec.max_replicas == 6 and METRICS in replaced.metadata.annotations
    now = v2.read_namespaced_horizontal_pod_autoscaler("multi", ns)
    assert now.spec.max_replicas == 6
    # upstream puts the CPU target after the other metrics
    assert [m.type for m in now.spec.metrics] == ["Pods", "Resource"]
    assert now.spec.metrics[0].pods.metric.name == "qps"
    assert not (now.metadata.annotations or {})
    assert [c.type for c in now.status.conditions] == ["AbleToScale"]
    # a v1 patch of the spec keeps the stored status whole
    v1.patch_namespaced_horizontal_pod_autoscaler(
        "multi", ns, {"spec": {"targetCPUUtilizationPercentage": 75}}
    )
    now = v2.read_namespaced_horizontal_pod_autoscaler("multi", ns)
    assert now.spec.metrics[1].resource.target.average_utilization == 75
    assert now.spec.metrics[0].pods.metric.name == "qps"
    assert now.status.desired_replicas == 2 and now.status.conditions[0].type == "AbleToScale"


def test_hpa_watch_through_v1_sees_v2_writes(api: Any, ns: str) -> None:
    v1 = client.AutoscalingV1Api(api)
    v2 = client.AutoscalingV2Api(api)
    rv = v1.list_namespaced_horizontal_pod_autoscaler(ns).metadata.resource_version
    got, t = _watch_first(v1.list_namespaced_horizontal_pod_autoscaler, ns, resource_version=rv)
    time.sleep(0.5)
    v2.create_namespaced_horizontal_pod_autoscaler(ns, _hpa_v2("watched", [CPU_60]))
    t.join(timeout=30)
    assert [ev["type"] for ev in got] == ["ADDED"]
    obj = got[0]["object"]
    assert obj.metadata.name == "watched"
    assert obj.spec.target_cpu_utilization_percentage == 60


# ---------------------------------------------------------------------------- Event


def _core_event(ns: str, name: str, target: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "involvedObject": {"kind": "Pod", "namespace": ns, "name": target},
        "reason": "Started",
        "message": f"started {target}",
        "type": "Normal",
        "source": {"component": "kubelet", "host": "node-1"},
        "count": 1,
        "eventTime": "2025-01-01T00:00:00.000000Z",
        "action": "Start",
        "reportingComponent": "kubelet",
        "reportingInstance": "node-1",
    }


def test_core_event_is_listed_and_watched_through_events_k8s_io(api: Any, ns: str) -> None:
    core = client.CoreV1Api(api)
    events = client.EventsV1Api(api)
    rv = events.list_namespaced_event(ns).metadata.resource_version
    got, t = _watch_first(
        events.list_namespaced_event,
        ns,
        resource_version=rv,
        field_selector="regarding.name=web-0",
    )
    time.sleep(0.5)
    core.create_namespaced_event(ns, _core_event(ns, "other.1", "other"))  # filtered out
    core.create_namespaced_event(ns, _core_event(ns, "web-0.1", "web-0"))
    t.join(timeout=30)
    assert [ev["type"] for ev in got] == ["ADDED"]
    watched = got[0]["object"]
    assert watched.metadata.name == "web-0.1"
    assert watched.note == "started web-0" and watched.regarding.name == "web-0"
    listed = events.list_namespaced_event(ns)
    assert sorted(e.metadata.name for e in listed.items) == ["other.1", "web-0.1"]
    ev = events.read_namespaced_event("web-0.1", ns)
    assert ev.regarding.kind == "Pod" and ev.regarding.namespace == ns
    assert ev.reporting_controller == "kubelet" and ev.reporting_instance == "node-1"
    assert ev.deprecated_source.component == "kubelet" and ev.deprecated_count == 1
    # field selectors in events.k8s.io's names
    picked = events.list_namespaced_event(ns, field_selector="regarding.name=other")
    assert [e.metadata.name for e in picked.items] == ["other.1"]
    by_ctl = events.list_namespaced_event(ns, field_selector="reportingController=kubelet")
    assert len(by_ctl.items) == 2


def test_events_k8s_io_event_is_a_core_event(api: Any, kubectl: Kubectl, ns: str) -> None:
    core = client.CoreV1Api(api)
    events = client.EventsV1Api(api)
    created = events.create_namespaced_event(
        ns,
        {
            "metadata": {"name": "new.1"},
            "eventTime": "2025-01-01T00:00:00.000000Z",
            "reportingController": "example.com/ctl",
            "reportingInstance": "ctl-1",
            "action": "Reconcile",
            "reason": "Synced",
            "type": "Normal",
            "note": "all in sync",
            "regarding": {"kind": "Deployment", "namespace": ns, "name": "d"},
        },
    )
    assert created.api_version == "events.k8s.io/v1" and created.note == "all in sync"
    ev = core.read_namespaced_event("new.1", ns)
    assert ev.api_version == "v1"
    assert ev.message == "all in sync" and ev.involved_object.name == "d"
    assert ev.reporting_component == "example.com/ctl"
    assert ev.metadata.resource_version == created.metadata.resource_version
    picked = core.list_namespaced_event(ns, field_selector="involvedObject.name=d")
    assert [e.metadata.name for e in picked.items] == ["new.1"]
    # an update through core/v1 is seen through events.k8s.io/v1
    core.patch_namespaced_event("new.1", ns, {"message": "changed"})
    assert events.read_namespaced_event("new.1", ns).note == "changed"
    assert "deployment/d   changed" in kubectl("-n", ns, "get", "events")
    events.delete_namespaced_event("new.1", ns)
    assert core.list_namespaced_event(ns).items == []
