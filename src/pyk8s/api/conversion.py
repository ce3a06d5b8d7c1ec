"""Conversion between the versions one stored object is served at.

Upstream keeps one storage per resource even where the resource is served at several
versions or in two groups, and converts at the storage boundary. Two built-ins need it:

* **HorizontalPodAutoscaler**, stored as ``autoscaling/v2`` and served as ``autoscaling/v1``
  too. v1 can only say "target this CPU utilization"; what it cannot say travels in
  annotations so that a read-modify-write through v1 does not erase it (upstream's
  ``pkg/apis/autoscaling/v1/conversion.go``):

  - ``autoscaling.alpha.kubernetes.io/metrics``: every spec metric except the CPU
    utilization one, in autoscaling/v1's (v2beta1-shaped) ``MetricSpec`` form;
  - ``autoscaling.alpha.kubernetes.io/current-metrics``: all of ``status.currentMetrics``,
    as v1 ``MetricStatus`` (the CPU one too: it carries the raw value as well);
  - ``autoscaling.alpha.kubernetes.io/behavior``: ``spec.behavior`` as upstream's *internal*
    Go struct marshals it (``{"ScaleUp":{"StabilizationWindowSeconds":…}}``);
  - ``autoscaling.alpha.kubernetes.io/conditions``: ``status.conditions``.

  Reading v1 back, the annotations are decoded (an undecodable one is ignored, as
  upstream does), the CPU target comes last, a v1 object with no metric at all gets
  upstream's implicit 80% CPU target, and the annotations are dropped: a v2 object never
  carries them.

* **Event**, stored as core ``v1`` and served as ``events.k8s.io/v1`` too, where fields are
  renamed (``involvedObject`` → ``regarding``, ``message`` → ``note``, ``source`` →
  ``deprecatedSource``, ``firstTimestamp``/``lastTimestamp``/``count`` →
  ``deprecated…``, ``reportingComponent`` → ``reportingController``); nothing is lost
  either way (``pkg/apis/events/v1/conversion.go``).

Objects are JSON dicts. :func:`convert` is pure: it never changes its argument, and an
object already at the wanted version is returned as it is (not copied).

Exceptions::

    ValueError
     └── ConversionError   no conversion between these versions of this kind
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from typing import Any, Final

from pyk8s.api.quantity import QuantityError, canonical

__all__ = [
    "BEHAVIOR_ANNOTATION",
    "CONDITIONS_ANNOTATION",
    "CURRENT_METRICS_ANNOTATION",
    "DEFAULT_CPU_UTILIZATION",
    "METRICS_ANNOTATION",
    "ConversionError",
    "can_convert",
    "convert",
]

JSON = dict[str, Any]

METRICS_ANNOTATION: Final = "autoscaling.alpha.kubernetes.io/metrics"
CURRENT_METRICS_ANNOTATION: Final = "autoscaling.alpha.kubernetes.io/current-metrics"
BEHAVIOR_ANNOTATION: Final = "autoscaling.alpha.kubernetes.io/behavior"
CONDITIONS_ANNOTATION: Final = "autoscaling.alpha.kubernetes.io/conditions"
#: upstream's DropRoundTripHorizontalPodAutoscalerAnnotations removes exactly these
_ROUND_TRIP: Final = (
    METRICS_ANNOTATION,
    BEHAVIOR_ANNOTATION,
    CURRENT_METRICS_ANNOTATION,
    CONDITIONS_ANNOTATION,
)
#: the CPU target autoscaling/v1 always implied (autoscaling.DefaultCPUUtilization)
DEFAULT_CPU_UTILIZATION: Final = 80

HPA_V1: Final = "autoscaling/v1"
HPA_V2: Final = "autoscaling/v2"
EVENT_CORE: Final = "v1"
EVENT_EVENTS: Final = "events.k8s.io/v1"


class ConversionError(ValueError):
    """``obj`` has no conversion to the requested version."""


def can_convert(kind: str, from_api_version: str, to_api_version: str) -> bool:
    return from_api_version == to_api_version or (
        (kind, from_api_version, to_api_version) in _CONVERSIONS
    )


def convert(obj: Mapping[str, Any], to_api_version: str) -> JSON:
    """``obj`` as ``to_api_version`` serves it (``obj`` itself when already there)."""
    from_api_version = obj.get("apiVersion")
    if from_api_version == to_api_version:
        return obj if isinstance(obj, dict) else dict(obj)
    kind = str(obj.get("kind", ""))
    fn = _CONVERSIONS.get((kind, str(from_api_version), to_api_version))
    if fn is None:
        raise ConversionError(
            f"no conversion of {kind or 'object'} from {from_api_version} to {to_api_version}"
        )
    return fn(obj)


# ---------------------------------------------------------------- helpers


def _go_json(value: Any) -> str:
    """``value`` as Go's encoding/json writes it: compact, HTML-safe, UTF-8 kept."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(ch, esc)
    return text


def _field(d: Mapping[str, Any], name: str) -> Any:
    """A struct field as Go's decoder finds it: the exact key, else any case."""
    if name in d:
        return d[name]
    low = name.lower()
    for k, v in d.items():
        if k.lower() == low:
            return v
    return None


def _struct(v: Any) -> Mapping[str, Any]:
    """A decoded struct (a JSON object or null); anything else fails the decode."""
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise TypeError("not an object")
    return v


def _quantity(v: Any) -> Any:
    """A resource.Quantity as Go marshals it (canonical text); ``"0"`` for a zero one."""
    if v is None:
        return "0"
    if isinstance(v, bool):
        raise TypeError("not a quantity")
    try:
        return canonical(v)
    except (QuantityError, TypeError):
        return v


def _opt_quantity(v: Any) -> Any:
    return None if v is None else _quantity(v)


def _put(out: JSON, key: str, value: Any) -> None:
    """Set ``key`` unless ``value`` is None (Go's omitempty on a pointer)."""
    if value is not None:
        out[key] = value


def _ref(v: Any) -> JSON:
    """A CrossVersionObjectReference (kind, name, apiVersion omitempty)."""
    ref = _struct(v)
    out: JSON = {"kind": _field(ref, "kind") or "", "name": _field(ref, "name") or ""}
    if _field(ref, "apiVersion"):
        out["apiVersion"] = _field(ref, "apiVersion")
    return out


def _annotations(meta: JSON) -> dict[str, str]:
    ann = meta.get("annotations")
    return ann if isinstance(ann, dict) else {}


def _drop_round_trip(meta: JSON) -> None:
    """Upstream's DropRoundTripHorizontalPodAutoscalerAnnotations, on a copied metadata."""
    ann = meta.get("annotations")
    if not isinstance(ann, dict) or not any(k in ann for k in _ROUND_TRIP):
        return
    kept = {k: v for k, v in ann.items() if k not in _ROUND_TRIP}
    if kept:
        meta["annotations"] = kept
    else:
        meta.pop("annotations")


def _decode(ann: Mapping[str, str], key: str, parse: Callable[[Any], Any]) -> Any:
    """An annotation decoded with ``parse``; None if absent or undecodable (ignored)."""
    text = ann.get(key)
    if text is None:
        return None
    try:
        return parse(json.loads(text))
    except (ValueError, TypeError, AttributeError):
        return None


def _list(v: Any) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise TypeError("not a list")
    return v


# ---------------------------------------------------------------- HPA: metrics, v2 → v1


def _metric_source_v1(m: Mapping[str, Any]) -> JSON:
    """A v2 MetricSpec as autoscaling/v1's MetricSpec (what the annotation holds)."""
    out: JSON = {"type": m.get("type", "")}
    if isinstance(obj := m.get("object"), Mapping):
        target = _struct(obj.get("target"))
        metric = _struct(obj.get("metric"))
        o: JSON = {
            "target": _ref(obj.get("describedObject")),
            "metricName": metric.get("name", ""),
            "targetValue": _quantity(target.get("value")),
        }
        _put(o, "selector", metric.get("selector"))
        _put(o, "averageValue", _opt_quantity(target.get("averageValue")))
        out["object"] = o
    if isinstance(pods := m.get("pods"), Mapping):
        target = _struct(pods.get("target"))
        metric = _struct(pods.get("metric"))
        p: JSON = {
            "metricName": metric.get("name", ""),
            "targetAverageValue": _quantity(target.get("averageValue")),
        }
        _put(p, "selector", metric.get("selector"))
        out["pods"] = p
    for key in ("resource", "containerResource"):
        if isinstance(res := m.get(key), Mapping):
            target = _struct(res.get("target"))
            r: JSON = {"name": res.get("name", "")}
            _put(r, "targetAverageUtilization", target.get("averageUtilization"))
            _put(r, "targetAverageValue", _opt_quantity(target.get("averageValue")))
            if key == "containerResource":
                r["container"] = res.get("container", "")
            out[key] = r
    if isinstance(ext := m.get("external"), Mapping):
        target = _struct(ext.get("target"))
        metric = _struct(ext.get("metric"))
        e: JSON = {"metricName": metric.get("name", "")}
        _put(e, "metricSelector", metric.get("selector"))
        _put(e, "targetValue", _opt_quantity(target.get("value")))
        _put(e, "targetAverageValue", _opt_quantity(target.get("averageValue")))
        out["external"] = e
    return out


def _metric_status_v1(m: Mapping[str, Any]) -> JSON:
    """A v2 MetricStatus as autoscaling/v1's MetricStatus."""
    out: JSON = {"type": m.get("type", "")}
    if isinstance(obj := m.get("object"), Mapping):
        current = _struct(obj.get("current"))
        metric = _struct(obj.get("metric"))
        o: JSON = {
            "target": _ref(obj.get("describedObject")),
            "metricName": metric.get("name", ""),
            "currentValue": _quantity(current.get("value")),
        }
        _put(o, "selector", metric.get("selector"))
        _put(o, "averageValue", _opt_quantity(current.get("averageValue")))
        out["object"] = o
    if isinstance(pods := m.get("pods"), Mapping):
        current = _struct(pods.get("current"))
        metric = _struct(pods.get("metric"))
        p: JSON = {
            "metricName": metric.get("name", ""),
            "currentAverageValue": _quantity(current.get("averageValue")),
        }
        _put(p, "selector", metric.get("selector"))
        out["pods"] = p
    for key in ("resource", "containerResource"):
        if isinstance(res := m.get(key), Mapping):
            current = _struct(res.get("current"))
            r: JSON = {"name": res.get("name", "")}
            _put(r, "currentAverageUtilization", current.get("averageUtilization"))
            r["currentAverageValue"] = _quantity(current.get("averageValue"))
            if key == "containerResource":
                r["container"] = res.get("container", "")
            out[key] = r
    if isinstance(ext := m.get("external"), Mapping):
        current = _struct(ext.get("current"))
        metric = _struct(ext.get("metric"))
        e: JSON = {"metricName": metric.get("name", "")}
        _put(e, "metricSelector", metric.get("selector"))
        e["currentValue"] = _quantity(current.get("value"))
        _put(e, "currentAverageValue", _opt_quantity(current.get("averageValue")))
        out["external"] = e
    return out


def _condition_v1(c: Mapping[str, Any]) -> JSON:
    out: JSON = {
        "type": c.get("type", ""),
        "status": c.get("status", ""),
        "lastTransitionTime": c.get("lastTransitionTime"),
    }
    if c.get("reason"):
        out["reason"] = c["reason"]
    if c.get("message"):
        out["message"] = c["message"]
    return out


def _rules_internal(v: Any) -> JSON | None:
    """v2 HPAScalingRules as the internal Go struct marshals (no JSON tags)."""
    if not isinstance(v, Mapping):
        return None
    policies = v.get("policies")
    return {
        "StabilizationWindowSeconds": v.get("stabilizationWindowSeconds"),
        "SelectPolicy": v.get("selectPolicy"),
        "Policies": (
            [
                {
                    "Type": p.get("type", ""),
                    "Value": p.get("value", 0),
                    "PeriodSeconds": p.get("periodSeconds", 0),
                }
                for p in policies
                if isinstance(p, Mapping)
            ]
            if isinstance(policies, list)
            else None
        ),
    }


def _is_cpu_utilization_target(m: Any) -> bool:
    if not isinstance(m, Mapping) or m.get("type") != "Resource":
        return False
    res = m.get("resource")
    if not isinstance(res, Mapping) or res.get("name") != "cpu":
        return False
    target = res.get("target")
    return isinstance(target, Mapping) and target.get("averageUtilization") is not None


def _hpa_v2_to_v1(obj: Mapping[str, Any]) -> JSON:
    meta: JSON = copy.deepcopy(dict(obj.get("metadata") or {}))
    _drop_round_trip(meta)
    extra: dict[str, str] = {}
    spec2 = obj.get("spec") if isinstance(obj.get("spec"), Mapping) else None
    out: JSON = {"apiVersion": HPA_V1, "kind": obj.get("kind", "HorizontalPodAutoscaler")}
    out["metadata"] = meta
    if spec2 is not None:
        spec: JSON = {}
        for key in ("scaleTargetRef", "minReplicas", "maxReplicas"):
            if key in spec2:
                spec[key] = copy.deepcopy(spec2[key])
        metrics = [m for m in spec2.get("metrics") or [] if isinstance(m, Mapping)]
        for m in metrics:
            if _is_cpu_utilization_target(m):
                spec["targetCPUUtilizationPercentage"] = m["resource"]["target"][
                    "averageUtilization"
                ]
                break
        others = [_metric_source_v1(m) for m in metrics if not _is_cpu_utilization_target(m)]
        if others:
            extra[METRICS_ANNOTATION] = _go_json(others)
        behavior = spec2.get("behavior")
        if isinstance(behavior, Mapping):
            extra[BEHAVIOR_ANNOTATION] = _go_json(
                {
                    "ScaleUp": _rules_internal(behavior.get("scaleUp")),
                    "ScaleDown": _rules_internal(behavior.get("scaleDown")),
                }
            )
        out["spec"] = spec
    status2 = obj.get("status")
    if isinstance(status2, Mapping):
        status: JSON = {}
        for key in ("observedGeneration", "lastScaleTime"):
            _put(status, key, status2.get(key))
        status["currentReplicas"] = status2.get("currentReplicas") or 0
        status["desiredReplicas"] = status2.get("desiredReplicas") or 0
        current = [m for m in status2.get("currentMetrics") or [] if isinstance(m, Mapping)]
        for m in current:  # upstream's loop does not stop: the last CPU figure wins
            res = m.get("resource")
            if (
                m.get("type") == "Resource"
                and isinstance(res, Mapping)
                and res.get("name") == "cpu"
            ):
                util = _struct(res.get("current")).get("averageUtilization")
                if util is not None:
                    status["currentCPUUtilizationPercentage"] = util
        if current:
            extra[CURRENT_METRICS_ANNOTATION] = _go_json([_metric_status_v1(m) for m in current])
        conditions = [c for c in status2.get("conditions") or [] if isinstance(c, Mapping)]
        if conditions:
            extra[CONDITIONS_ANNOTATION] = _go_json([_condition_v1(c) for c in conditions])
        out["status"] = status
    if extra:
        meta["annotations"] = {**_annotations(meta), **extra}
    return out


# ---------------------------------------------------------------- HPA: metrics, v1 → v2


def _selector(v: Any) -> Any:
    return None if v is None else copy.deepcopy(v)


def _identifier(name: Any, selector: Any) -> JSON:
    out: JSON = {"name": name or ""}
    _put(out, "selector", _selector(selector))
    return out


def _target(kind: str, **values: Any) -> JSON:
    out: JSON = {"type": kind}
    for key in ("value", "averageValue", "averageUtilization"):
        _put(out, key, values.get(key))
    return out


def _metric_source_v2(v: Any) -> JSON:
    """autoscaling/v1's MetricSpec (from the annotation) as a v2 MetricSpec."""
    m = _struct(v)
    out: JSON = {"type": _field(m, "type") or ""}
    if (obj := _field(m, "object")) is not None:
        o = _struct(obj)
        average = _opt_quantity(_field(o, "averageValue"))
        out["object"] = {
            "describedObject": _ref(_field(o, "target")),
            "target": _target(
                "Value" if average is None else "AverageValue",
                value=_quantity(_field(o, "targetValue")),
                averageValue=average,
            ),
            "metric": _identifier(_field(o, "metricName"), _field(o, "selector")),
        }
    if (pods := _field(m, "pods")) is not None:
        p = _struct(pods)
        out["pods"] = {
            "metric": _identifier(_field(p, "metricName"), _field(p, "selector")),
            "target": _target(
                "AverageValue", averageValue=_quantity(_field(p, "targetAverageValue"))
            ),
        }
    for key in ("resource", "containerResource"):
        if (res := _field(m, key)) is not None:
            r = _struct(res)
            util = _field(r, "targetAverageUtilization")
            src: JSON = {
                "name": _field(r, "name") or "",
                "target": _target(
                    "AverageValue" if util is None else "Utilization",
                    averageValue=_opt_quantity(_field(r, "targetAverageValue")),
                    averageUtilization=util,
                ),
            }
            if key == "containerResource":
                src["container"] = _field(r, "container") or ""
            out[key] = src
    if (ext := _field(m, "external")) is not None:
        e = _struct(ext)
        value = _opt_quantity(_field(e, "targetValue"))
        out["external"] = {
            "metric": _identifier(_field(e, "metricName"), _field(e, "metricSelector")),
            "target": _target(
                "AverageValue" if value is None else "Value",
                value=value,
                averageValue=_opt_quantity(_field(e, "targetAverageValue")),
            ),
        }
    return out


def _value_status(**values: Any) -> JSON:
    out: JSON = {}
    for key in ("value", "averageValue", "averageUtilization"):
        _put(out, key, values.get(key))
    return out


def _metric_status_v2(v: Any) -> JSON:
    """autoscaling/v1's MetricStatus (from the annotation) as a v2 MetricStatus."""
    m = _struct(v)
    out: JSON = {"type": _field(m, "type") or ""}
    if (obj := _field(m, "object")) is not None:
        o = _struct(obj)
        out["object"] = {
            "metric": _identifier(_field(o, "metricName"), _field(o, "selector")),
            "current": _value_status(
                value=_quantity(_field(o, "currentValue")),
                averageValue=_opt_quantity(_field(o, "averageValue")),
            ),
            "describedObject": _ref(_field(o, "target")),
        }
    if (pods := _field(m, "pods")) is not None:
        p = _struct(pods)
        out["pods"] = {
            "metric": _identifier(_field(p, "metricName"), _field(p, "selector")),
            "current": _value_status(averageValue=_quantity(_field(p, "currentAverageValue"))),
        }
    for key in ("resource", "containerResource"):
        if (res := _field(m, key)) is not None:
            r = _struct(res)
            st: JSON = {
                "name": _field(r, "name") or "",
                "current": _value_status(
                    averageValue=_quantity(_field(r, "currentAverageValue")),
                    averageUtilization=_field(r, "currentAverageUtilization"),
                ),
            }
            if key == "containerResource":
                st["container"] = _field(r, "container") or ""
            out[key] = st
    if (ext := _field(m, "external")) is not None:
        e = _struct(ext)
        out["external"] = {
            "metric": _identifier(_field(e, "metricName"), _field(e, "metricSelector")),
            "current": _value_status(
                value=_quantity(_field(e, "currentValue")),
                averageValue=_opt_quantity(_field(e, "currentAverageValue")),
            ),
        }
    return out


def _condition_v2(v: Any) -> JSON:
    c = _struct(v)
    out: JSON = {"type": _field(c, "type") or "", "status": _field(c, "status") or ""}
    _put(out, "lastTransitionTime", _field(c, "lastTransitionTime"))
    if _field(c, "reason"):
        out["reason"] = _field(c, "reason")
    if _field(c, "message"):
        out["message"] = _field(c, "message")
    return out


def _rules_v2(v: Any) -> JSON | None:
    """The internal HPAScalingRules (from the annotation) as v2's."""
    if v is None:
        return None
    r = _struct(v)
    out: JSON = {}
    _put(out, "stabilizationWindowSeconds", _field(r, "StabilizationWindowSeconds"))
    _put(out, "selectPolicy", _field(r, "SelectPolicy"))
    policies = _field(r, "Policies")
    if policies is not None:
        out["policies"] = [
            {
                "type": _field(_struct(p), "Type") or "",
                "value": _field(_struct(p), "Value") or 0,
                "periodSeconds": _field(_struct(p), "PeriodSeconds") or 0,
            }
            for p in _list(policies)
        ]
    return out


def _behavior_v2(v: Any) -> JSON | None:
    b = _struct(v)
    up, down = _rules_v2(_field(b, "ScaleUp")), _rules_v2(_field(b, "ScaleDown"))
    if up is None and down is None:
        return None  # the zero behavior: upstream leaves spec.behavior unset
    out: JSON = {}
    _put(out, "scaleUp", up)
    _put(out, "scaleDown", down)
    return out


def _cpu_utilization_metric(pct: Any) -> JSON:
    return {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": pct}},
    }


def _hpa_v1_to_v2(obj: Mapping[str, Any]) -> JSON:
    meta: JSON = copy.deepcopy(dict(obj.get("metadata") or {}))
    ann = dict(_annotations(meta))
    out: JSON = {"apiVersion": HPA_V2, "kind": obj.get("kind", "HorizontalPodAutoscaler")}
    out["metadata"] = meta
    spec1 = obj.get("spec") if isinstance(obj.get("spec"), Mapping) else None
    if spec1 is not None:
        spec: JSON = {}
        for key in ("scaleTargetRef", "minReplicas", "maxReplicas"):
            if key in spec1:
                spec[key] = copy.deepcopy(spec1[key])
        metrics: list[JSON] = []
        if spec1.get("targetCPUUtilizationPercentage") is not None:
            metrics = [_cpu_utilization_metric(spec1["targetCPUUtilizationPercentage"])]
        others = _decode(
            ann, METRICS_ANNOTATION, lambda v: [_metric_source_v2(m) for m in _list(v)]
        )
        if others is not None:
            metrics = others + metrics[:1]
        if not metrics:  # v1's implicit target, made explicit
            metrics = [_cpu_utilization_metric(DEFAULT_CPU_UTILIZATION)]
        spec["metrics"] = metrics
        behavior = _decode(ann, BEHAVIOR_ANNOTATION, _behavior_v2)
        if behavior is not None:
            spec["behavior"] = behavior
        out["spec"] = spec
    status1 = obj.get("status")
    current = _decode(
        ann, CURRENT_METRICS_ANNOTATION, lambda v: [_metric_status_v2(m) for m in _list(v)]
    )
    conditions = _decode(ann, CONDITIONS_ANNOTATION, lambda v: [_condition_v2(c) for c in _list(v)])
    if isinstance(status1, Mapping) or current is not None or conditions is not None:
        s1: Mapping[str, Any] = status1 if isinstance(status1, Mapping) else {}
        status: JSON = {}
        for key in ("observedGeneration", "lastScaleTime"):
            _put(status, key, s1.get(key))
        if s1.get("currentReplicas"):
            status["currentReplicas"] = s1["currentReplicas"]
        status["desiredReplicas"] = s1.get("desiredReplicas") or 0
        if current is None and s1.get("currentCPUUtilizationPercentage") is not None:
            current = [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "current": {"averageUtilization": s1["currentCPUUtilizationPercentage"]},
                    },
                }
            ]
        if current:
            status["currentMetrics"] = current
        if conditions:
            status["conditions"] = conditions
        out["status"] = status
    _drop_round_trip(meta)
    return out


# ---------------------------------------------------------------- Event

#: core/v1 field → events.k8s.io/v1 field, in events.k8s.io/v1's field order
_EVENT_FIELDS: Final = (
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("reportingComponent", "reportingController"),
    ("reportingInstance", "reportingInstance"),
    ("action", "action"),
    ("reason", "reason"),
    ("involvedObject", "regarding"),
    ("related", "related"),
    ("message", "note"),
    ("type", "type"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
)
#: the same pairs in core/v1's field order
_CORE_ORDER: Final = (
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
)
_TO_EVENTS: Final = dict(_EVENT_FIELDS)


def _event_to_events(obj: Mapping[str, Any]) -> JSON:
    out: JSON = {"apiVersion": EVENT_EVENTS, "kind": obj.get("kind", "Event")}
    out["metadata"] = copy.deepcopy(obj.get("metadata") or {})
    for core_field, events_field in _EVENT_FIELDS:
        if core_field in obj:
            out[events_field] = copy.deepcopy(obj[core_field])
    return out


def _event_to_core(obj: Mapping[str, Any]) -> JSON:
    out: JSON = {"apiVersion": EVENT_CORE, "kind": obj.get("kind", "Event")}
    out["metadata"] = copy.deepcopy(obj.get("metadata") or {})
    for core_field in _CORE_ORDER:
        events_field = _TO_EVENTS[core_field]
        if events_field in obj:
            out[core_field] = copy.deepcopy(obj[events_field])
    return out


_CONVERSIONS: Final[dict[tuple[str, str, str], Callable[[Mapping[str, Any]], JSON]]] = {
    ("HorizontalPodAutoscaler", HPA_V2, HPA_V1): _hpa_v2_to_v1,
    ("HorizontalPodAutoscaler", HPA_V1, HPA_V2): _hpa_v1_to_v2,
    ("Event", EVENT_CORE, EVENT_EVENTS): _event_to_events,
    ("Event", EVENT_EVENTS, EVENT_CORE): _event_to_core,
}
