"""The HorizontalPodAutoscaler controller: sets a workload's replicas from its pods' usage.

Upstream's algorithm (pkg/controller/podautoscaler, v1.32), for ``Resource`` and
``ContainerResource`` metrics read from ``metrics.k8s.io`` through the API server (the
aggregated metrics-server), every ``--horizontal-pod-autoscaler-sync-period``:

* the target is read and written through its ``scale`` subresource, so Deployments,
  StatefulSets, ReplicaSets and custom resources with a scale subresource all work; its
  ``status.selector`` picks the pods;
* per metric, the usage ratio is (the ready pods' usage / their requests) / the target
  utilization (or average usage / the target average value); within the tolerance
  (0.1) nothing changes; pods without metrics count as using 100 % of their request when
  scaling down and 0 % when scaling up, unready CPU pods (not Ready, or starting up) as 0 %
  when scaling up, and deleted or failed pods not at all; if that turns the decision
  around, nothing changes. The largest proposal of all metrics wins;
* the proposal is stabilized (the highest recommendation of the scale-down window, 300 s
  or ``--horizontal-pod-autoscaler-downscale-stabilization``; with ``behavior``, its own
  windows and the lowest of the scale-up window), limited by the scaling policies
  (``behavior``; else at most max(2*current, 4) when scaling up) and min/maxReplicas;
* conditions ``AbleToScale``, ``ScalingActive`` and ``ScalingLimited`` and events
  (``SuccessfulRescale``, ``FailedGetResourceMetric``, ``FailedComputeMetricsReplicas``,
  ``FailedGetScale``, ``FailedRescale``) with upstream's reasons and messages.

``Pods`` and ``Object`` metrics are read from ``custom.metrics.k8s.io/v1beta2`` and
``External`` ones from ``external.metrics.k8s.io/v1beta1``, when something serves them
(an adapter registered with an APIService), with upstream's rules: a Pods metric like a
resource one without requests; an Object or External value as a ratio applied to the
ready pods; an average value as total / target per pod. Without such an API the metric
fails with ``FailedGetPodsMetric`` (etc.) and the replicas stay.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from pyk8s.api.quantity import format_quantity, milli_value
from pyk8s.api.registry import REGISTRY
from pyk8s.api.selectors import LabelSelector, label_selector_from_dict, parse_label_selector
from pyk8s.client import ApiError, is_conflict, is_not_found
from pyk8s.client.errors import ClientError
from pyk8s.controllers.runtime import Manager, Request, Result

__all__ = ["HPAReconciler", "Settings", "setup"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

HPAS = REGISTRY.get("autoscaling", "v2", "horizontalpodautoscalers")
CUSTOM_METRICS = "/apis/custom.metrics.k8s.io/v1beta2"
EXTERNAL_METRICS = "/apis/external.metrics.k8s.io/v1beta1"
PODS = REGISTRY.get("", "v1", "pods")

NORMAL, WARNING = "Normal", "Warning"
CPU_INITIALIZATION_PERIOD = 300.0
DELAY_OF_INITIAL_READINESS = 30.0
_MAX_INT32 = 2**31 - 1
UP_LIMIT = "the desired replica count is increasing faster than the maximum scale rate"
DOWN_LIMIT = "the desired replica count is decreasing faster than the maximum scale rate"
WITHIN_RANGE = "the desired count is within the acceptable range"
NO_SCALE = "the HPA controller was unable to get the target's current scale"


@dataclass
class Settings:
    """kube-controller-manager's HPA flags."""

    sync_period: float = 15.0
    downscale_stabilization: float = 300.0
    tolerance: float = 0.1


class MetricError(Exception):
    """A metric could not be computed: ``reason`` is the event/condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _rfc3339(t: float) -> str:
    return dt.datetime.fromtimestamp(int(t), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- behavior


def scale_up_rules(rules: Obj | None) -> Obj:
    """``behavior.scaleUp`` with upstream's defaults filled in."""
    out = dict(rules or {})
    out.setdefault("stabilizationWindowSeconds", 0)
    out.setdefault("selectPolicy", "Max")
    out.setdefault(
        "policies",
        [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15},
        ],
    )
    return out


def scale_down_rules(rules: Obj | None, window: int = 300) -> Obj:
    """``behavior.scaleDown`` with upstream's defaults filled in."""
    out = dict(rules or {})
    out.setdefault("stabilizationWindowSeconds", window)
    out.setdefault("selectPolicy", "Max")
    out.setdefault("policies", [{"type": "Percent", "value": 100, "periodSeconds": 15}])
    return out


def _changed_in_period(events: list[tuple[float, int]], period: float, now: float) -> int:
    return sum(delta for t, delta in events if now - t <= period)


def scale_up_limit(current: int, events: list[tuple[float, int]], rules: Obj, now: float) -> int:
    """The most replicas the scale-up policies allow now (upstream's
    calculateScaleUpLimitWithScalingRules; ``events`` are (time, replicas added))."""
    select = rules.get("selectPolicy", "Max")
    if select == "Disabled":
        return current
    result = _MAX_INT32 if select == "Min" else -_MAX_INT32
    for policy in rules.get("policies") or ():
        added = _changed_in_period(events, float(policy.get("periodSeconds", 15)), now)
        start = current - added
        value = int(policy.get("value", 0))
        proposed = (
            start + value if policy["type"] == "Pods" else math.ceil(start * (1 + value / 100))
        )
        result = min(result, proposed) if select == "Min" else max(result, proposed)
    return result


def scale_down_limit(current: int, events: list[tuple[float, int]], rules: Obj, now: float) -> int:
    """The fewest replicas the scale-down policies allow now (``events``: (time, removed))."""
    select = rules.get("selectPolicy", "Max")
    if select == "Disabled":
        return current
    result = -_MAX_INT32 if select == "Min" else _MAX_INT32
    for policy in rules.get("policies") or ():
        removed = _changed_in_period(events, float(policy.get("periodSeconds", 15)), now)
        start = current + removed
        value = int(policy.get("value", 0))
        proposed = start - value if policy["type"] == "Pods" else int(start * (1 - value / 100))
        result = max(result, proposed) if select == "Min" else min(result, proposed)
    return result


# --------------------------------------------------------------------------- metrics


@dataclass
class _Proposal:
    replicas: int
    description: str
    status: Obj
    timestamp: float


def _pod_ready(pod: Obj) -> Obj | None:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return dict(c)
    return None


def _requests(pod: Obj, resource: str, container: str | None) -> int:
    """The pod's request of ``resource`` in milli-units; MetricError if a container lacks one."""
    total = 0
    for c in (pod.get("spec") or {}).get("containers") or ():
        if container is not None and c["name"] != container:
            continue
        request = ((c.get("resources") or {}).get("requests") or {}).get(resource)
        if request is None:
            if container is not None:
                raise MetricError(
                    "FailedGetContainerResourceMetric",
                    f"missing request for {resource} in container {c['name']} of Pod "
                    f"{pod['metadata']['name']}",
                )
            raise MetricError(
                "FailedGetResourceMetric",
                f"missing request for {resource} in container {c['name']} of Pod "
                f"{pod['metadata']['name']}",
            )
        total += milli_value(request)
    return total


class HPAReconciler:
    def __init__(self, manager: Manager, settings: Settings) -> None:
        assert HPAS is not None and PODS is not None
        self.client = manager.client
        self.recorder = manager.recorder
        self.settings = settings
        self.hpas = manager.informers.informer(HPAS)
        self.pods = manager.informers.informer(PODS)
        #: hpa key -> [(time, recommendation)]
        self.recommendations: dict[str, list[tuple[float, int]]] = {}
        #: hpa key -> [(time, replicas added)] and [(time, replicas removed)]
        self.scale_up_events: dict[str, list[tuple[float, int]]] = {}
        self.scale_down_events: dict[str, list[tuple[float, int]]] = {}

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self, request: Request) -> Result | None:
        key = f"{request.namespace}/{request.name}"
        hpa = self.hpas.store.get_by_name(request.namespace, request.name)
        if hpa is None:
            for memory in (self.recommendations, self.scale_up_events, self.scale_down_events):
                memory.pop(key, None)
            return None
        hpa = _copy(hpa)
        try:
            await self._reconcile(key, hpa)
        except ApiError as err:
            if is_not_found(err):
                return None
            if not is_conflict(err):
                raise
        return Result(requeue_after=self.settings.sync_period)

    async def _reconcile(self, key: str, hpa: Obj) -> None:
        spec, status = hpa.get("spec") or {}, hpa.setdefault("status", {})
        old_status = _copy(status)
        now = time.time()
        conditions = _Conditions(status, now)
        ref = spec.get("scaleTargetRef") or {}
        namespace = hpa["metadata"]["namespace"]
        reference = f"{ref.get('kind')}/{ref.get('name')}"
        group, _, version = str(ref.get("apiVersion", "")).rpartition("/")
        resource = REGISTRY.for_kind(group, version, str(ref.get("kind", "")))
        if resource is None:
            message = f'no matches for kind "{ref.get("kind")}" in group "{group}"'
            self.recorder.event(hpa, WARNING, "FailedGetScale", message)
            conditions.set("AbleToScale", "False", "FailedGetScale", f"{NO_SCALE}: {message}")
            await self._write_status(hpa, old_status)
            return
        try:
            scale = await self.client.get_scale(resource, str(ref.get("name")), namespace)
        except ClientError as err:
            self.recorder.event(hpa, WARNING, "FailedGetScale", _text(err))
            conditions.set("AbleToScale", "False", "FailedGetScale", f"{NO_SCALE}: {_text(err)}")
            await self._write_status(hpa, old_status)
            return
        conditions.set(
            "AbleToScale",
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
        )
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        status["currentReplicas"] = int((scale.get("status") or {}).get("replicas") or 0)
        min_replicas = int(spec.get("minReplicas", 1))
        max_replicas = int(spec["maxReplicas"])
        rescale_reason = ""
        metric_statuses: list[Obj] | None = None
        if current == 0 and min_replicas != 0:
            desired = 0
            conditions.set(
                "ScalingActive",
                "False",
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            )
        elif current > max_replicas:
            rescale_reason, desired = (
                "Current number of replicas above Spec.MaxReplicas",
                max_replicas,
            )
        elif current < min_replicas:
            rescale_reason, desired = (
                "Current number of replicas below Spec.MinReplicas",
                min_replicas,
            )
        else:
            selector_text = str((scale.get("status") or {}).get("selector") or "")
            computed = await self._compute(hpa, current, selector_text, conditions)
            if computed is None:
                await self._write_status(hpa, old_status)
                return
            proposed, rescale_metric, metric_statuses = computed
            rescale_reason = f"{rescale_metric} above target"
            desired = self._normalize(key, hpa, current, proposed, conditions, now)
            if desired < current:
                rescale_reason = "All metrics below target"
        if metric_statuses is not None:
            status["currentMetrics"] = metric_statuses
        if desired != current:
            try:
                await self.client.update_scale(resource, str(ref.get("name")), desired, namespace)
            except ClientError as err:
                self.recorder.event(
                    hpa,
                    WARNING,
                    "FailedRescale",
                    f"New size: {desired}; reason: {rescale_reason}; error: {_text(err)}",
                )
                conditions.set(
                    "AbleToScale",
                    "False",
                    "FailedUpdateScale",
                    f"the HPA controller was unable to update the target scale: {_text(err)}",
                )
                await self._write_status(hpa, old_status)
                return
            conditions.set(
                "AbleToScale",
                "True",
                "SucceededRescale",
                f"the HPA controller was able to update the target scale to {desired}",
            )
            self.recorder.event(
                hpa, NORMAL, "SuccessfulRescale", f"New size: {desired}; reason: {rescale_reason}"
            )
            events = self.scale_up_events if desired > current else self.scale_down_events
            events.setdefault(key, []).append((now, abs(desired - current)))
            status["lastScaleTime"] = _rfc3339(now)
            log.info(
                "%s: scaled %s from %d to %d (%s)", key, reference, current, desired, rescale_reason
            )
        status["desiredReplicas"] = desired
        await self._write_status(hpa, old_status)

    # ------------------------------------------------------------------ metrics

    async def _compute(
        self, hpa: Obj, current: int, selector_text: str, conditions: _Conditions
    ) -> tuple[int, str, list[Obj]] | None:
        """(proposed replicas, the metric that proposed it, currentMetrics), or None
        after reporting why no metric could be computed."""
        spec = hpa["spec"]
        metrics = spec.get("metrics") or [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80},
                },
            }
        ]
        if not selector_text:
            message = "selector is required"
            self.recorder.event(hpa, WARNING, "SelectorRequired", message)
            conditions.set(
                "ScalingActive",
                "False",
                "InvalidSelector",
                "the HPA target's scale is missing a selector",
            )
            return None
        try:
            selector = parse_label_selector(selector_text)
        except ValueError as err:
            self.recorder.event(hpa, WARNING, "InvalidSelector", str(err))
            conditions.set(
                "ScalingActive",
                "False",
                "InvalidSelector",
                f"the HPA target's scale has an invalid selector: {err}",
            )
            return None
        best: _Proposal | None = None
        statuses: list[Obj] = []
        first_error: tuple[MetricError, str] | None = None
        invalid = 0
        for metric in metrics:
            try:
                proposal = await self._metric(hpa, metric, current, selector)
            except MetricError as err:
                invalid += 1
                statuses.append({"type": ""})
                kind = str(metric.get("type", ""))
                what = _metric_subject(metric)
                wrapped = {
                    "Resource": f"failed to get {what} resource metric value: {err}",
                    "ContainerResource": f"failed to get {what} container metric value: {err}",
                    "Pods": f"failed to get pods metric value: {err}",
                    "Object": f"failed to get object metric value: {err}",
                    "External": f"failed to get {what} external metric: {err}",
                }.get(kind, str(err))
                self.recorder.event(hpa, WARNING, err.reason, str(err))
                if first_error is None:
                    first_error = (err, wrapped)
                continue
            statuses.append(proposal.status)
            if best is None or proposal.replicas > best.replicas:
                best = proposal
        if first_error is not None and (best is None or best.replicas < current):
            conditions.set(
                "ScalingActive",
                "False",
                first_error[0].reason,
                f"the HPA was unable to compute the replica count: {first_error[0]}",
            )
            message = (
                f"invalid metrics ({invalid} invalid out of {len(metrics)}), "
                f"first error is: {first_error[1]}"
            )
            self.recorder.event(hpa, WARNING, "FailedComputeMetricsReplicas", message)
            return None
        assert best is not None
        conditions.set(
            "ScalingActive",
            "True",
            "ValidMetricFound",
            f"the HPA was able to successfully calculate a replica count from {best.description}",
        )
        return best.replicas, best.description, statuses  # invalid ones as {"type": ""}

    async def _metric(
        self, hpa: Obj, metric: Obj, current: int, selector: LabelSelector
    ) -> _Proposal:
        kind = metric.get("type")
        if kind == "Resource":
            source = metric.get("resource") or {}
            return await self._resource(hpa, source, None, current, selector)
        if kind == "ContainerResource":
            source = metric.get("containerResource") or {}
            return await self._resource(
                hpa, source, str(source.get("container")), current, selector
            )
        if kind == "Pods":
            return await self._pods_metric(hpa, metric.get("pods") or {}, current, selector)
        if kind == "Object":
            return await self._object_metric(hpa, metric.get("object") or {}, current, selector)
        if kind == "External":
            return await self._external_metric(hpa, metric.get("external") or {}, current, selector)
        raise MetricError("InvalidMetricSourceType", f"unknown metric source type {kind!r}")

    # ------------------------------------------------------------------ custom metrics

    def _selected_pods(self, namespace: str, selector: LabelSelector) -> list[Obj]:
        return [
            p
            for p in self.pods.store.list()
            if p["metadata"].get("namespace") == namespace
            and selector.matches(p["metadata"].get("labels"))
        ]

    async def _metric_values(
        self, path: str, params: dict[str, str], reason: str, what: str, api: str
    ) -> list[Obj]:
        try:
            got = await self.client.request("GET", path, params=params)
        except ClientError as err:
            raise MetricError(
                reason,
                f"unable to get {what}: unable to fetch metrics from {api} API: {_text(err)}",
            ) from None
        items = list(got.get("items") or ())
        if not items:
            raise MetricError(reason, f"unable to get {what}: no metrics returned from {api} API")
        return items

    def _ratio_replicas(
        self, current: int, ratio: float, namespace: str, selector: LabelSelector
    ) -> int:
        """Upstream's getUsageRatioReplicaCount: the ratio applied to the ready pods."""
        if current == 0:
            return math.ceil(ratio)
        if abs(1.0 - ratio) <= self.settings.tolerance:
            return current
        ready = sum(
            1
            for p in self._selected_pods(namespace, selector)
            if (p.get("status") or {}).get("phase") == "Running"
            and (_pod_ready(p) or {}).get("status") == "True"
        )
        return math.ceil(ratio * ready)

    def _per_pod_replicas(self, current: int, usage: int, target_average: int) -> int:
        """Upstream's per-pod rule for Object/External average values."""
        replicas = math.ceil(usage / target_average)
        if current and abs(1.0 - usage / (target_average * current)) <= self.settings.tolerance:
            return current
        return replicas

    async def _pods_metric(
        self, hpa: Obj, source: Obj, current: int, selector: LabelSelector
    ) -> _Proposal:
        reason = "FailedGetPodsMetric"
        metric = source.get("metric") or {}
        name = str(metric.get("name", ""))
        namespace = hpa["metadata"]["namespace"]
        params = {"labelSelector": str(selector)}
        if metric.get("selector"):
            params["metricLabelSelector"] = str(label_selector_from_dict(metric["selector"]))
        path = f"{CUSTOM_METRICS}/namespaces/{quote(namespace)}/pods/*/{quote(name)}"
        items = await self._metric_values(path, params, reason, f"metric {name}", "custom metrics")
        values = {
            str((i.get("describedObject") or {}).get("name")): milli_value(i.get("value", "0"))
            for i in items
        }
        target = source.get("target") or {}
        target_value = milli_value(target.get("averageValue", "0"))
        ready: dict[str, int] = {}
        unready: set[str] = set()
        missing: set[str] = set()
        for pod in self._selected_pods(namespace, selector):
            meta = pod["metadata"]
            phase = (pod.get("status") or {}).get("phase")
            if meta.get("deletionTimestamp") or phase == "Failed":
                continue
            if phase == "Pending":
                unready.add(meta["name"])
            elif meta["name"] not in values:
                missing.add(meta["name"])
            else:
                ready[meta["name"]] = values[meta["name"]]
        if not ready:
            raise MetricError(
                reason, f"unable to get metric {name}: did not receive metrics for any ready pods"
            )
        if not target_value:
            raise MetricError(reason, "invalid pods metric source: no average value target")
        average = sum(ready.values()) // len(ready)

        def recompute(extra_usage: dict[str, int]) -> float:
            values_ = [*ready.values(), *extra_usage.values()]
            return (sum(values_) / len(values_)) / target_value

        replicas = self._replicas(
            average / target_value, recompute, current, len(ready), unready, missing, {},
            target, self.settings.tolerance,
        )  # fmt: skip
        status = {
            "type": "Pods",
            "pods": {"metric": metric, "current": {"averageValue": _format(average)}},
        }
        return _Proposal(replicas, f"pods metric {name}", status, time.time())

    async def _object_metric(
        self, hpa: Obj, source: Obj, current: int, selector: LabelSelector
    ) -> _Proposal:
        reason = "FailedGetObjectMetric"
        metric = source.get("metric") or {}
        name = str(metric.get("name", ""))
        described = source.get("describedObject") or {}
        namespace = hpa["metadata"]["namespace"]
        group, _, version = str(described.get("apiVersion", "")).rpartition("/")
        resource = REGISTRY.for_kind(group, version, str(described.get("kind", "")))
        what = f"metric {name}: {described.get('kind')} on {namespace} {described.get('name')}"
        if resource is None:
            raise MetricError(reason, f"unable to get {what}: no matches for that kind")
        scope = f"/namespaces/{quote(namespace)}" if resource.namespaced else ""
        path = f"{CUSTOM_METRICS}{scope}/{resource.plural}/{quote(str(described.get('name')))}"
        params = {}
        if metric.get("selector"):
            params["metricLabelSelector"] = str(label_selector_from_dict(metric["selector"]))
        items = await self._metric_values(
            f"{path}/{quote(name)}", params, reason, what, "custom metrics"
        )
        usage = milli_value(items[0].get("value", "0"))
        replicas, current_value = self._value_or_average(
            source, usage, current, namespace, selector, reason, "object"
        )
        status = {
            "type": "Object",
            "object": {"describedObject": described, "metric": metric, "current": current_value},
        }
        return _Proposal(replicas, f"{described.get('kind')} metric {name}", status, time.time())

    def _value_or_average(
        self,
        source: Obj,
        usage: int,
        current: int,
        namespace: str,
        selector: LabelSelector,
        reason: str,
        what: str,
    ) -> tuple[int, Obj]:
        """Replicas and the ``current`` status for an Object or External metric's target:
        ``AverageValue`` divides ``usage`` among the pods, ``Value`` compares it whole."""
        target = source.get("target") or {}
        if target.get("type") == "AverageValue":
            target_average = milli_value(target.get("averageValue", "0"))
            if not target_average:
                raise MetricError(reason, f"invalid {what} metric source: zero average value")
            replicas = self._per_pod_replicas(current, usage, target_average)
            return replicas, {"averageValue": _format(math.ceil(usage / max(current, 1)))}
        target_value = milli_value(target.get("value", "0"))
        if not target_value:
            raise MetricError(reason, f"invalid {what} metric source: zero target value")
        replicas = self._ratio_replicas(current, usage / target_value, namespace, selector)
        return replicas, {"value": _format(usage)}

    async def _external_metric(
        self, hpa: Obj, source: Obj, current: int, selector: LabelSelector
    ) -> _Proposal:
        reason = "FailedGetExternalMetric"
        metric = source.get("metric") or {}
        name = str(metric.get("name", ""))
        namespace = hpa["metadata"]["namespace"]
        path = f"{EXTERNAL_METRICS}/namespaces/{quote(namespace)}/{quote(name)}"
        params = {}
        if metric.get("selector"):
            params["labelSelector"] = str(label_selector_from_dict(metric["selector"]))
        shown = _go_selector(metric.get("selector"))
        what = f"external metric {namespace}/{name}/{shown}"
        items = await self._metric_values(path, params, reason, what, "external metrics")
        usage = sum(milli_value(i.get("value", "0")) for i in items)
        replicas, current_value = self._value_or_average(
            source, usage, current, namespace, selector, reason, "external"
        )
        status = {"type": "External", "external": {"metric": metric, "current": current_value}}
        return _Proposal(replicas, f"external metric {name}({shown})", status, time.time())

    async def _resource(
        self,
        hpa: Obj,
        source: Obj,
        container: str | None,
        current: int,
        selector: LabelSelector,
    ) -> _Proposal:
        name = str(source.get("name", ""))
        target = source.get("target") or {}
        reason = "FailedGetContainerResourceMetric" if container else "FailedGetResourceMetric"
        measure = "utilization" if target.get("type") == "Utilization" else "usage"
        namespace = hpa["metadata"]["namespace"]
        pods = [
            p
            for p in self.pods.store.list()
            if p["metadata"].get("namespace") == namespace
            and selector.matches(p["metadata"].get("labels"))
        ]
        usage, timestamp, window = await self._pod_usage(
            namespace, selector, name, container, reason, measure
        )
        if not pods:
            raise MetricError(
                reason,
                f"failed to get {name} {measure}: no pods returned by "
                "selector while calculating replica count",
            )
        now = time.time()
        ready: dict[str, int] = {}
        unready: set[str] = set()
        missing: set[str] = set()
        requests: dict[str, int] = {}
        for pod in pods:
            meta = pod["metadata"]
            phase = (pod.get("status") or {}).get("phase")
            if meta.get("deletionTimestamp") or phase == "Failed":
                continue
            pod_name = meta["name"]
            if phase == "Pending":
                unready.add(pod_name)
                continue
            if pod_name not in usage:
                missing.add(pod_name)
                continue
            if name == "cpu" and _cpu_unready(pod, timestamp.get(pod_name, now), window, now):
                unready.add(pod_name)
                continue
            ready[pod_name] = usage[pod_name]
        if target.get("type") == "Utilization":  # every selected pod's, as upstream
            for pod in pods:
                try:
                    requests[pod["metadata"]["name"]] = _requests(pod, name, container)
                except MetricError as err:
                    raise MetricError(reason, f"failed to get {name} {measure}: {err}") from None
        if not ready:
            raise MetricError(
                reason,
                f"failed to get {name} {measure}: did not receive "
                "metrics for targeted pods (pods might be unready)",
            )
        tolerance = self.settings.tolerance
        if target.get("type") == "Utilization":
            target_value = int(target.get("averageUtilization", 0))
            total_request = sum(requests[p] for p in ready)
            if total_request == 0:
                raise MetricError(
                    reason,
                    f"failed to get {name} {measure}: no metrics returned matched known pods",
                )
            utilization = sum(ready.values()) * 100 // total_request
            ratio = (sum(ready.values()) * 100 / total_request) / target_value

            def recompute(extra_usage: dict[str, int]) -> float:
                used = sum(ready.values()) + sum(extra_usage.values())
                requested = total_request + sum(requests.get(p, 0) for p in extra_usage)
                return (used * 100 / requested) / target_value

            average = sum(ready.values()) // len(ready)
        else:
            target_value = milli_value(target.get("averageValue", "0"))
            average = sum(ready.values()) // len(ready)
            ratio = average / target_value if target_value else 0.0
            utilization = None

            def recompute(extra_usage: dict[str, int]) -> float:
                values = [*ready.values(), *extra_usage.values()]
                return (sum(values) / len(values)) / target_value

        replicas = self._replicas(
            ratio, recompute, current, len(ready), unready, missing, requests, target, tolerance
        )
        current_value: Obj = {"averageValue": _format(average)}
        if utilization is not None:
            current_value["averageUtilization"] = utilization
        description = (
            f"{name} resource utilization (percentage of request)"
            if utilization is not None
            else f"{name} resource"
        )
        if container:
            description = description.replace(" resource", " container resource", 1)
            status = {
                "type": "ContainerResource",
                "containerResource": {
                    "name": name,
                    "container": container,
                    "current": current_value,
                },
            }
        else:
            status = {"type": "Resource", "resource": {"name": name, "current": current_value}}
        return _Proposal(replicas, description, status, max(timestamp.values(), default=now))

    @staticmethod
    def _replicas(
        ratio: float,
        recompute: Callable[[dict[str, int]], float],
        current: int,
        ready_count: int,
        unready: set[str],
        missing: set[str],
        requests: dict[str, int],
        target: Obj,
        tolerance: float,
    ) -> int:
        """Upstream's replica calculation from a usage ratio, with the rebalancing of
        pods without metrics and unready pods."""
        rebalance_unready = bool(unready) and ratio > 1.0
        if not missing and not rebalance_unready:
            if abs(1.0 - ratio) <= tolerance:
                return current
            return math.ceil(ratio * ready_count)
        extra: dict[str, int] = {}
        if missing:
            for pod in missing:
                if ratio < 1.0:  # scaling down: assume they use all they asked for
                    if target.get("type") == "Utilization":
                        extra[pod] = requests.get(pod, 0)
                    else:
                        extra[pod] = milli_value(target.get("averageValue", "0"))
                else:
                    extra[pod] = 0
        if rebalance_unready:
            for pod in unready:
                extra[pod] = 0
        new_ratio = float(recompute(extra))
        if abs(1.0 - new_ratio) <= tolerance or (ratio > 1.0) != (new_ratio > 1.0):
            return current
        replicas = math.ceil(new_ratio * (ready_count + len(extra)))
        if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
            return current
        return replicas

    async def _pod_usage(
        self,
        namespace: str,
        selector: LabelSelector,
        resource: str,
        container: str | None,
        reason: str,
        measure: str,
    ) -> tuple[dict[str, int], dict[str, float], float]:
        """Per pod its usage of ``resource`` (milli-units), sample time, and the window,
        from the resource metrics API."""
        path = f"/apis/metrics.k8s.io/v1beta1/namespaces/{quote(namespace)}/pods"
        try:
            got = await self.client.request("GET", path, params={"labelSelector": str(selector)})
        except ClientError as err:
            raise MetricError(
                reason,
                f"failed to get {resource} {measure}: unable to get "
                f"metrics for resource {resource}: unable to fetch "
                f"metrics from resource metrics API: {_text(err)}",
            ) from None
        usage: dict[str, int] = {}
        timestamps: dict[str, float] = {}
        window = 0.0
        for item in got.get("items") or ():
            total, found = 0, False
            for c in item.get("containers") or ():
                if container is not None and c.get("name") != container:
                    continue
                value = (c.get("usage") or {}).get(resource)
                if value is not None:
                    total += milli_value(value)
                    found = True
            if not found:
                continue
            pod_name = item["metadata"]["name"]
            usage[pod_name] = total
            timestamps[pod_name] = _parse_time(item.get("timestamp")) or time.time()
            window = max(window, _go_seconds(str(item.get("window", "0s"))))
        if not usage:
            raise MetricError(
                reason,
                f"failed to get {resource} {measure}: unable to get "
                f"metrics for resource {resource}: no metrics returned "
                "from resource metrics API",
            )
        return usage, timestamps, window

    # ------------------------------------------------------------------ normalization

    def _normalize(
        self, key: str, hpa: Obj, current: int, proposed: int, conditions: _Conditions, now: float
    ) -> int:
        spec = hpa["spec"]
        min_replicas, max_replicas = int(spec.get("minReplicas", 1)), int(spec["maxReplicas"])
        behavior = spec.get("behavior")
        history = self.recommendations.setdefault(key, [])
        if behavior is None:
            window = self.settings.downscale_stabilization
            history[:] = [(t, r) for t, r in history if now - t <= window]
            history.append((now, proposed))
            stabilized = max(r for _, r in history)
            if stabilized != proposed:
                conditions.set(
                    "AbleToScale",
                    "True",
                    "ScaleDownStabilized",
                    "recent recommendations were higher than current one, applying "
                    "the highest recent recommendation",
                )
            else:
                conditions.set(
                    "AbleToScale",
                    "True",
                    "ReadyForNewScale",
                    "recommended size matches current size",
                )
            scale_up_limit_ = max(2 * current, 4)
            allowed_max = min(max_replicas, scale_up_limit_)
            if stabilized < min_replicas:
                desired, reason, message = (
                    min_replicas,
                    "TooFewReplicas",
                    ("the desired replica count is less than the minimum replica count"),
                )
            elif stabilized > allowed_max:
                desired = allowed_max
                if scale_up_limit_ < max_replicas:
                    reason = "ScaleUpLimit"
                    message = (
                        "the desired replica count is increasing faster than the maximum scale rate"
                    )
                else:
                    reason = "TooManyReplicas"
                    message = "the desired replica count is more than the maximum replica count"
            else:
                desired, reason, message = stabilized, "DesiredWithinRange", (WITHIN_RANGE)
            conditions.set(
                "ScalingLimited", "True" if desired != stabilized else "False", reason, message
            )
            return desired
        up = scale_up_rules(behavior.get("scaleUp"))
        down = scale_down_rules(behavior.get("scaleDown"))
        up_window = float(up["stabilizationWindowSeconds"])
        down_window = float(down["stabilizationWindowSeconds"])
        longest = max(up_window, down_window)
        history[:] = [(t, r) for t, r in history if now - t <= longest]
        up_rec = down_rec = proposed
        for t, r in history:
            if now - t <= up_window:
                up_rec = min(up_rec, r)
            if now - t <= down_window:
                down_rec = max(down_rec, r)
        history.append((now, proposed))
        stabilized = current
        stabilized = max(stabilized, up_rec)
        stabilized = min(stabilized, down_rec)
        if stabilized != proposed:
            if stabilized < proposed:
                conditions.set(
                    "AbleToScale",
                    "True",
                    "ScaleUpStabilized",
                    "recent recommendations were lower than current one, applying "
                    "the lowest recent recommendation",
                )
            else:
                conditions.set(
                    "AbleToScale",
                    "True",
                    "ScaleDownStabilized",
                    "recent recommendations were higher than current one, applying "
                    "the highest recent recommendation",
                )
        else:
            conditions.set(
                "AbleToScale", "True", "ReadyForNewScale", "recommended size matches current size"
            )
        ups = self.scale_up_events.setdefault(key, [])
        downs = self.scale_down_events.setdefault(key, [])
        longest_period = max(
            [float(p.get("periodSeconds", 15)) for p in (*up["policies"], *down["policies"])]
            or [0.0]
        )
        ups[:] = [(t, n) for t, n in ups if now - t <= longest_period]
        downs[:] = [(t, n) for t, n in downs if now - t <= longest_period]
        reason, message = "DesiredWithinRange", WITHIN_RANGE
        desired = stabilized
        if stabilized > current:
            limit = max(scale_up_limit(current, ups, up, now), current)
            allowed = max_replicas
            if allowed > limit:
                allowed = limit
                reason = "ScaleUpLimit"
                message = (
                    "the desired replica count is increasing faster than the maximum scale rate"
                )
            else:
                reason = "TooManyReplicas"
                message = "the desired replica count is more than the maximum replica count"
            if stabilized > allowed:
                desired = allowed
            else:
                reason, message = (
                    "DesiredWithinRange",
                    WITHIN_RANGE,
                )
        elif stabilized < current:
            limit = min(scale_down_limit(current, downs, down, now), current)
            allowed = min_replicas
            if allowed < limit:
                allowed = limit
                reason = "ScaleDownLimit"
                message = (
                    "the desired replica count is decreasing faster than the maximum scale rate"
                )
            else:
                reason = "TooFewReplicas"
                message = "the desired replica count is less than the minimum replica count"
            if stabilized < allowed:
                desired = allowed
            else:
                reason, message = (
                    "DesiredWithinRange",
                    WITHIN_RANGE,
                )
        conditions.set(
            "ScalingLimited", "True" if desired != stabilized else "False", reason, message
        )
        return desired

    # ------------------------------------------------------------------ status

    async def _write_status(self, hpa: Obj, old_status: Obj) -> None:
        status = hpa["status"]
        status["currentReplicas"] = int(status.get("currentReplicas") or 0)
        status["desiredReplicas"] = int(status.get("desiredReplicas", status["currentReplicas"]))
        if status == old_status:
            return
        assert HPAS is not None
        await self.client.update_status(HPAS, hpa)


def _text(err: ClientError) -> str:
    """An API error's message as Go's error prints it (no reason prefix)."""
    return err.message if isinstance(err, ApiError) else str(err)


def _go_seconds(text: str) -> float:
    total, number = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else ch
        total += float(number or 0) * units.get(unit, 0.0)
        number = ""
        i += len(unit)
    return total


def _cpu_unready(pod: Obj, metric_time: float, window: float, now: float) -> bool:
    """Upstream's CPU readiness rule: a pod starting up (within 5 min) counts as unready
    while not Ready or when its sample predates becoming Ready; later only if it never
    became Ready after its first 30 s."""
    condition = _pod_ready(pod)
    start = _parse_time((pod.get("status") or {}).get("startTime"))
    if condition is None or start is None:
        return True
    transition = _parse_time(condition.get("lastTransitionTime")) or start
    if start + CPU_INITIALIZATION_PERIOD > now:
        return condition.get("status") == "False" or metric_time < transition + window
    return condition.get("status") == "False" and start + DELAY_OF_INITIAL_READINESS > transition


def _go_selector(selector: Obj | None) -> str:
    """A metric's label selector as Go's ``%+v`` of ``*metav1.LabelSelector`` prints it
    (in upstream's messages and event reasons)."""
    if selector is None:
        return "nil"
    labels = "".join(f"{k}: {v}," for k, v in sorted((selector.get("matchLabels") or {}).items()))
    expressions = "".join(
        f"LabelSelectorRequirement{{Key:{e.get('key')},Operator:{e.get('operator')},"
        f"Values:[{' '.join(e.get('values') or [])}],}},"
        for e in selector.get("matchExpressions") or ()
    )
    return (
        f"&LabelSelector{{MatchLabels:map[string]string{{{labels}}},"
        f"MatchExpressions:[]LabelSelectorRequirement{{{expressions}}},}}"
    )


def _metric_subject(metric: Obj) -> str:
    kind = metric.get("type")
    source = (
        metric.get(
            {
                "Resource": "resource",
                "ContainerResource": "containerResource",
                "Pods": "pods",
                "Object": "object",
                "External": "external",
            }.get(str(kind), "")
        )
        or {}
    )
    if kind in ("Resource", "ContainerResource"):
        return str(source.get("name", ""))
    return str((source.get("metric") or {}).get("name", ""))


def _format(milli: int) -> str:
    return format_quantity(Decimal(milli).scaleb(-3))


def _copy(obj: Obj) -> Obj:
    return copy.deepcopy(obj)


@dataclass
class _Conditions:
    """The HPA's status conditions, set with upstream's lastTransitionTime rule."""

    status: Obj
    now: float
    order: tuple[str, ...] = field(default=("AbleToScale", "ScalingActive", "ScalingLimited"))

    def set(self, ctype: str, value: str, reason: str, message: str) -> None:
        conditions = self.status.setdefault("conditions", [])
        for c in conditions:
            if c.get("type") == ctype:
                if c.get("status") != value:
                    c["lastTransitionTime"] = _rfc3339(self.now)
                c.update(status=value, reason=reason, message=message)
                return
        conditions.append(
            {
                "type": ctype,
                "status": value,
                "lastTransitionTime": _rfc3339(self.now),
                "reason": reason,
                "message": message,
            }
        )
        conditions.sort(key=lambda c: self.order.index(c["type"]) if c["type"] in self.order else 9)


def setup(manager: Manager) -> None:
    settings = manager.settings.get("horizontalpodautoscaler")
    reconciler = HPAReconciler(manager, settings if isinstance(settings, Settings) else Settings())
    controller = manager.add("horizontalpodautoscaler", reconciler, workers=2)
    controller.watch(reconciler.hpas)
