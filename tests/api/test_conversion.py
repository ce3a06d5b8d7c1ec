"""Conversion between served versions of one stored resource, against upstream's rules
(pkg/apis/autoscaling/v1/conversion.go, pkg/apis/events/v1/conversion.go)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyk8s.api.conversion import (
    BEHAVIOR_ANNOTATION,
    CONDITIONS_ANNOTATION,
    CURRENT_METRICS_ANNOTATION,
    METRICS_ANNOTATION,
    ConversionError,
    can_convert,
    convert,
)
from pyk8s.api.registry import REGISTRY

JSON = dict[str, Any]
V1, V2 = "autoscaling/v1", "autoscaling/v2"
REF = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}


def cpu(pct: int) -> JSON:
    return {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": pct}},
    }


def hpa_v2(metrics: list[JSON] | None = None, **extra: Any) -> JSON:
    spec: JSON = {"scaleTargetRef": REF, "minReplicas": 1, "maxReplicas": 5}
    if metrics is not None:
        spec["metrics"] = metrics
    return {
        "apiVersion": V2,
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "ns", "resourceVersion": "7"},
        "spec": spec,
        **extra,
    }


def hpa_v1(
    spec: JSON | None = None, annotations: dict[str, str] | None = None, **extra: Any
) -> JSON:
    meta: JSON = {"name": "web", "namespace": "ns"}
    if annotations is not None:
        meta["annotations"] = annotations
    return {
        "apiVersion": V1,
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta,
        "spec": {"scaleTargetRef": REF, "maxReplicas": 5, **(spec or {})},
        **extra,
    }


# ---------------------------------------------------------------------------- general


def test_same_version_is_the_object_itself() -> None:
    obj = hpa_v2([cpu(50)])
    assert convert(obj, V2) is obj
    ev = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"}}
    assert convert(ev, "v1") is ev


def test_unknown_conversion_is_an_error() -> None:
    with pytest.raises(ConversionError):
        convert({"apiVersion": "apps/v1", "kind": "Deployment"}, "apps/v1beta1")
    assert can_convert("HorizontalPodAutoscaler", V1, V2)
    assert can_convert("Event", "events.k8s.io/v1", "v1")
    assert not can_convert("Pod", "v1", "v2")


def test_registry_stores_both_versions_under_one_prefix() -> None:
    h1 = REGISTRY.get("autoscaling", "v1", "horizontalpodautoscalers")
    h2 = REGISTRY.get("autoscaling", "v2", "horizontalpodautoscalers")
    e1 = REGISTRY.get("", "v1", "events")
    e2 = REGISTRY.get("events.k8s.io", "v1", "events")
    assert h1 and h2 and e1 and e2
    assert (
        h1.key_prefix("ns")
        == h2.key_prefix("ns")
        == "/registry/autoscaling/horizontalpodautoscalers/ns/"
    )
    assert h1.storage_api_version == h2.storage_api_version == V2
    assert (h1.converts, h2.converts) == (True, False)
    assert e1.key("ns", "x") == e2.key("ns", "x") == "/registry/core/events/ns/x"
    assert e2.storage_api_version == "v1" and e2.converts and not e1.converts


# ---------------------------------------------------------------------------- HPA v2 → v1


def test_cpu_utilization_is_v1_target_and_round_trips() -> None:
    v2 = hpa_v2([cpu(50)])
    v1 = convert(v2, V1)
    assert v1 == {
        "apiVersion": V1,
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "ns", "resourceVersion": "7"},
        "spec": {
            "scaleTargetRef": REF,
            "minReplicas": 1,
            "maxReplicas": 5,
            "targetCPUUtilizationPercentage": 50,
        },
    }
    assert convert(v1, V2) == v2


def test_other_metrics_behavior_status_travel_in_annotations() -> None:
    pods = {
        "type": "Pods",
        "pods": {
            "metric": {"name": "qps"},
            "target": {"type": "AverageValue", "averageValue": "1k"},
        },
    }
    memory = {
        "type": "Resource",
        "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}},
    }
    behavior = {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}],
        },
        "scaleDown": {
            "selectPolicy": "Max",
            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
        },
    }
    status = {
        "currentReplicas": 2,
        "desiredReplicas": 3,
        "currentMetrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "current": {"averageValue": "200m", "averageUtilization": 40},
                },
            }
        ],
        "conditions": [
            {
                "type": "AbleToScale",
                "status": "True",
                "lastTransitionTime": "2025-01-01T00:00:00Z",
                "reason": "ReadyForNewScale",
                "message": "ok",
            }
        ],
    }
    v2 = hpa_v2([cpu(50), pods, memory], status=status)
    v2["spec"]["behavior"] = behavior
    v2["metadata"]["annotations"] = {"keep": "me"}
    before = copy.deepcopy(v2)
    v1 = convert(v2, V1)
    assert v2 == before  # pure
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 50
    assert v1["status"] == {
        "currentReplicas": 2,
        "desiredReplicas": 3,
        "currentCPUUtilizationPercentage": 40,
    }
    ann = v1["metadata"]["annotations"]
    assert ann["keep"] == "me"
    # the exact bytes upstream writes: v1 (v2beta1-shaped) metric types, Go field order
    assert ann[METRICS_ANNOTATION] == (
        '[{"type":"Pods","pods":{"metricName":"qps","targetAverageValue":"1k"}},'
        '{"type":"Resource","resource":{"name":"memory","targetAverageValue":"1Gi"}}]'
    )
    assert ann[CURRENT_METRICS_ANNOTATION] == (
        '[{"type":"Resource","resource":{"name":"cpu","currentAverageUtilization":40,'
        '"currentAverageValue":"200m"}}]'
    )
    # behavior is upstream's internal struct, without JSON tags
    assert json.loads(ann[BEHAVIOR_ANNOTATION]) == {
        "ScaleUp": {
            "StabilizationWindowSeconds": 0,
            "SelectPolicy": "Max",
            "Policies": [{"Type": "Pods", "Value": 4, "PeriodSeconds": 15}],
        },
        "ScaleDown": {
            "StabilizationWindowSeconds": None,
            "SelectPolicy": "Max",
            "Policies": [{"Type": "Percent", "Value": 100, "PeriodSeconds": 15}],
        },
    }
    assert json.loads(ann[CONDITIONS_ANNOTATION]) == status["conditions"]
    back = convert(v1, V2)
    # upstream puts the CPU target after the annotation's metrics; all else comes back
    assert back["spec"]["metrics"] == [pods, memory, cpu(50)]
    back["spec"]["metrics"] = before["spec"]["metrics"]
    assert back == before


def test_stale_round_trip_annotations_are_replaced() -> None:
    v2 = hpa_v2([cpu(60)])
    v2["metadata"]["annotations"] = {METRICS_ANNOTATION: "[]", CONDITIONS_ANNOTATION: "[]"}
    v1 = convert(v2, V1)
    assert "annotations" not in v1["metadata"]


def test_every_metric_type_round_trips_as_upstream() -> None:
    sel = {"matchLabels": {"app": "web"}}
    metrics = [
        {
            "type": "Object",
            "object": {
                "describedObject": {
                    "apiVersion": "networking.k8s.io/v1",
                    "kind": "Ingress",
                    "name": "i",
                },
                "target": {"type": "Value", "value": "10"},
                "metric": {"name": "rps", "selector": sel},
            },
        },
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "qps"},
                "target": {"type": "AverageValue", "averageValue": "500m"},
            },
        },
        {
            "type": "ContainerResource",
            "containerResource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 70},
                "container": "app",
            },
        },
        {
            "type": "External",
            "external": {
                "metric": {"name": "queue", "selector": sel},
                "target": {"type": "AverageValue", "averageValue": "30"},
            },
        },
    ]
    v2 = hpa_v2(metrics)
    v1 = convert(v2, V1)
    assert "targetCPUUtilizationPercentage" not in v1["spec"]
    assert json.loads(v1["metadata"]["annotations"][METRICS_ANNOTATION])[2] == {
        "type": "ContainerResource",
        "containerResource": {"name": "cpu", "targetAverageUtilization": 70, "container": "app"},
    }
    assert convert(v1, V2) == v2


def test_object_metric_with_average_value_gains_a_zero_value() -> None:
    """v1's ObjectMetricSource.targetValue is not optional: upstream brings back "0"."""
    metric = {
        "type": "Object",
        "object": {
            "describedObject": {"kind": "Service", "name": "s"},
            "target": {"type": "AverageValue", "averageValue": "2"},
            "metric": {"name": "m"},
        },
    }
    back = convert(convert(hpa_v2([metric]), V1), V2)
    assert back["spec"]["metrics"][0]["object"]["target"] == {
        "type": "AverageValue",
        "value": "0",
        "averageValue": "2",
    }


def test_annotation_json_is_go_html_safe() -> None:
    metric = {
        "type": "External",
        "external": {
            "metric": {"name": "q", "selector": {"matchLabels": {"a": "<b>&"}}},
            "target": {"type": "Value", "value": "1"},
        },
    }
    ann = convert(hpa_v2([metric]), V1)["metadata"]["annotations"][METRICS_ANNOTATION]
    assert "\\u003cb\\u003e\\u0026" in ann and "<" not in ann


# ---------------------------------------------------------------------------- HPA v1 → v2


def test_v1_without_target_gets_the_implicit_80_percent() -> None:
    v2 = convert(hpa_v1(), V2)
    assert v2["apiVersion"] == V2
    assert v2["spec"] == {"scaleTargetRef": REF, "maxReplicas": 5, "metrics": [cpu(80)]}
    assert "status" not in v2


def test_v1_status_cpu_becomes_a_current_metric() -> None:
    v2 = convert(
        hpa_v1(
            {"targetCPUUtilizationPercentage": 70},
            status={
                "currentReplicas": 0,
                "desiredReplicas": 2,
                "currentCPUUtilizationPercentage": 33,
            },
        ),
        V2,
    )
    assert v2["spec"]["metrics"] == [cpu(70)]
    assert v2["status"] == {
        "desiredReplicas": 2,
        "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 33}}}
        ],
    }


def test_v1_annotations_are_read_and_dropped() -> None:
    ann = {
        "team": "a",
        METRICS_ANNOTATION: (
            '[{"type":"Pods","pods":{"metricName":"qps","targetAverageValue":"5"}}]'
        ),
        # as people write it by hand: lower-case keys (Go's decoder matches any case)
        BEHAVIOR_ANNOTATION: '{"scaleDown":{"stabilizationWindowSeconds":60}}',
        CURRENT_METRICS_ANNOTATION: (
            '[{"type":"Pods","pods":{"metricName":"qps","currentAverageValue":"4"}}]'
        ),
        CONDITIONS_ANNOTATION: (
            '[{"type":"ScalingActive","status":"False","lastTransitionTime":null}]'
        ),
    }
    v1 = hpa_v1(
        {"targetCPUUtilizationPercentage": 50},
        ann,
        status={"currentReplicas": 1, "desiredReplicas": 1, "currentCPUUtilizationPercentage": 10},
    )
    v2 = convert(v1, V2)
    assert v2["metadata"]["annotations"] == {"team": "a"}
    assert v2["spec"]["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "qps"},
                "target": {"type": "AverageValue", "averageValue": "5"},
            },
        },
        cpu(50),
    ]
    assert v2["spec"]["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 60}}
    # the annotation's statuses win over currentCPUUtilizationPercentage
    assert v2["status"] == {
        "currentReplicas": 1,
        "desiredReplicas": 1,
        "currentMetrics": [
            {"type": "Pods", "pods": {"metric": {"name": "qps"}, "current": {"averageValue": "4"}}}
        ],
        "conditions": [{"type": "ScalingActive", "status": "False"}],
    }


def test_undecodable_annotations_are_ignored_and_dropped() -> None:
    v1 = hpa_v1(annotations={METRICS_ANNOTATION: "not json", BEHAVIOR_ANNOTATION: "[1]"})
    v2 = convert(v1, V2)
    assert "annotations" not in v2["metadata"]
    assert v2["spec"]["metrics"] == [cpu(80)] and "behavior" not in v2["spec"]


def test_v1_round_trip_through_v2_is_stable() -> None:
    v1 = hpa_v1({"minReplicas": 2, "targetCPUUtilizationPercentage": 65})
    v1["status"] = {
        "currentReplicas": 1,
        "desiredReplicas": 2,
        "currentCPUUtilizationPercentage": 20,
    }
    again = convert(convert(v1, V2), V1)
    # what v1 cannot say in fields, it says in the current-metrics annotation
    assert json.loads(again["metadata"].pop("annotations")[CURRENT_METRICS_ANNOTATION]) == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "currentAverageUtilization": 20,
                "currentAverageValue": "0",
            },
        }
    ]
    assert again == v1


# ---------------------------------------------------------------------------- Event

CORE_EVENT: JSON = {
    "apiVersion": "v1",
    "kind": "Event",
    "metadata": {"name": "web.1", "namespace": "ns", "resourceVersion": "3"},
    "involvedObject": {"kind": "Pod", "namespace": "ns", "name": "web", "uid": "u-1"},
    "reason": "Started",
    "message": "Started container app",
    "source": {"component": "kubelet", "host": "node-1"},
    "firstTimestamp": "2025-01-01T00:00:00Z",
    "lastTimestamp": "2025-01-01T00:01:00Z",
    "count": 2,
    "type": "Normal",
    "eventTime": None,
    "reportingComponent": "kubelet",
    "reportingInstance": "node-1",
}


def test_core_event_as_events_k8s_io() -> None:
    ev = convert(CORE_EVENT, "events.k8s.io/v1")
    assert ev == {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": CORE_EVENT["metadata"],
        "eventTime": None,
        "reportingController": "kubelet",
        "reportingInstance": "node-1",
        "reason": "Started",
        "regarding": CORE_EVENT["involvedObject"],
        "note": "Started container app",
        "type": "Normal",
        "deprecatedSource": {"component": "kubelet", "host": "node-1"},
        "deprecatedFirstTimestamp": "2025-01-01T00:00:00Z",
        "deprecatedLastTimestamp": "2025-01-01T00:01:00Z",
        "deprecatedCount": 2,
    }
    assert convert(ev, "v1") == CORE_EVENT


def test_events_k8s_io_event_as_core() -> None:
    ev = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "x", "namespace": "ns"},
        "eventTime": "2025-01-01T00:00:00.000000Z",
        "series": {"count": 3, "lastObservedTime": "2025-01-01T00:05:00.000000Z"},
        "reportingController": "example.com/ctl",
        "reportingInstance": "ctl-1",
        "action": "Reconcile",
        "reason": "Synced",
        "regarding": {"kind": "Deployment", "namespace": "ns", "name": "d"},
        "related": {"kind": "Pod", "namespace": "ns", "name": "p"},
        "note": "done",
        "type": "Normal",
    }
    core = convert(ev, "v1")
    assert list(core) == [
        "apiVersion",
        "kind",
        "metadata",
        "involvedObject",
        "reason",
        "message",
        "type",
        "eventTime",
        "series",
        "action",
        "related",
        "reportingComponent",
        "reportingInstance",
    ]
    assert core["involvedObject"] == ev["regarding"] and core["message"] == "done"
    assert core["reportingComponent"] == "example.com/ctl"
    assert convert(core, "events.k8s.io/v1") == ev


_scalar = st.one_of(st.none(), st.integers(), st.text(max_size=5))


# generating nested events is slow on a busy 2-core machine; that is not what is tested
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "involvedObject",
                "reason",
                "message",
                "source",
                "firstTimestamp",
                "lastTimestamp",
                "count",
                "type",
                "eventTime",
                "series",
                "action",
                "related",
                "reportingComponent",
                "reportingInstance",
            ]
        ),
        _scalar,
    )
)
def test_event_round_trip_is_lossless(fields: JSON) -> None:
    core = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"}, **fields}
    assert convert(convert(core, "events.k8s.io/v1"), "v1") == core
