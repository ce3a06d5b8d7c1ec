"""What an object costs against a ResourceQuota: upstream's quota evaluators, as pure rules.

Two parts of pyk8s need the same answer and may not import each other: the
ResourceQuota controller (which sums the usage of a namespace's objects into
``status.used``) and the API server's ResourceQuota admission (which adds a new object's
usage to ``status.used`` and refuses what would pass ``status.hard``). So the rules live
here, with no I/O, following ``pkg/quota/v1/evaluator/core`` (v1.32):

* every object counts ``count/<resource>[.<group>]``; the legacy names ``configmaps``,
  ``secrets``, ``services``, ``persistentvolumeclaims``, ``replicationcontrollers`` and
  ``resourcequotas`` count objects too;
* a pod counts ``pods`` and its compute resources (``requests.cpu`` = ``cpu``,
  ``requests.memory`` = ``memory``, ``limits.*``, ephemeral storage, ``requests.<extended>``)
  only while it is not terminal (Succeeded/Failed, or past its deletion grace period);
  the pod's requests are max(sum of containers, largest init container) plus overhead;
* a Service counts ``services.loadbalancers`` and ``services.nodeports``;
* a PVC counts ``requests.storage`` and the per-StorageClass forms;
* scopes (Terminating, NotTerminating, BestEffort, NotBestEffort, PriorityClass through
  ``scopeSelector``) apply to pods only: a scoped quota matches no other object.

Quantities are ``(Decimal, Format)`` pairs so that sums keep the first addend's format
(as ``Quantity.Add`` does) and print in upstream's canonical form.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from pyk8s.api.qos import pod_qos_class
from pyk8s.api.quantity import DECIMAL_SI, Format, format_quantity, parse_quantity_with_format

__all__ = [
    "Quantity",
    "Usage",
    "add",
    "format_usage",
    "matches_scopes",
    "object_count_name",
    "object_usage",
    "parse_usage",
    "pod_constraints",
    "source_of",
]

Quantity = tuple[Decimal, Format]
Usage = dict[str, Quantity]
Obj = Mapping[str, Any]

ZERO: Quantity = (Decimal(0), DECIMAL_SI)
ONE: Quantity = (Decimal(1), DECIMAL_SI)

#: legacy object-count names and the (group, plural) they count
LEGACY_COUNTS: dict[str, tuple[str, str]] = {
    "configmaps": ("", "configmaps"),
    "secrets": ("", "secrets"),
    "services": ("", "services"),
    "persistentvolumeclaims": ("", "persistentvolumeclaims"),
    "replicationcontrollers": ("", "replicationcontrollers"),
    "resourcequotas": ("", "resourcequotas"),
}
POD_NAMES = frozenset(
    {
        "pods",
        "cpu",
        "memory",
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.ephemeral-storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
    }
)
SERVICE_NAMES = frozenset({"services.nodeports", "services.loadbalancers"})
STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"
#: compute resources a quota forces every container to state (upstream's validationSet)
VALIDATION_SET = frozenset(
    {"cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"}
)


def object_count_name(plural: str, group: str) -> str:
    return f"count/{plural}" if not group else f"count/{plural}.{group}"


def source_of(name: str) -> tuple[str, str] | None:
    """The (group, plural) whose objects a quota resource name measures."""
    if name.startswith("count/"):
        plural, _, group = name[len("count/") :].partition(".")
        return group, plural
    if name in LEGACY_COUNTS:
        return LEGACY_COUNTS[name]
    if name in SERVICE_NAMES:
        return "", "services"
    if name == "requests.storage" or STORAGE_CLASS_SUFFIX in name:
        return "", "persistentvolumeclaims"
    if name in POD_NAMES or name.startswith(("requests.", "hugepages-")):
        return "", "pods"
    return None


def add(a: Quantity, b: Quantity) -> Quantity:
    """``Quantity.Add``: a zero takes the other's format."""
    fmt = b[1] if a[0] == 0 else a[1]
    return a[0] + b[0], fmt


def parse_usage(values: Mapping[str, Any] | None) -> Usage:
    out: Usage = {}
    for k, v in (values or {}).items():
        try:
            out[k] = parse_quantity_with_format(v)
        except ValueError:
            continue
    return out


def format_usage(usage: Usage) -> dict[str, str]:
    return {k: format_quantity(v[0], v[1]) for k, v in sorted(usage.items())}


def _sum_into(total: Usage, values: Mapping[str, Any] | None) -> None:
    for k, v in parse_usage(values).items():
        total[k] = add(total.get(k, ZERO), v)


def _max_into(total: Usage, values: Mapping[str, Any] | None) -> None:
    for k, v in parse_usage(values).items():
        if k not in total or v[0] > total[k][0]:
            total[k] = v


def pod_requests_and_limits(pod: Obj) -> tuple[Usage, Usage]:
    """max(sum of containers, each init container) plus overhead (PodRequestsAndLimits)."""
    spec = pod.get("spec") or {}
    requests: Usage = {}
    limits: Usage = {}
    for c in spec.get("containers") or ():
        res = c.get("resources") or {}
        _sum_into(requests, res.get("requests"))
        _sum_into(limits, res.get("limits"))
    for c in spec.get("initContainers") or ():
        res = c.get("resources") or {}
        _max_into(requests, res.get("requests"))
        _max_into(limits, res.get("limits"))
    overhead = spec.get("overhead")
    if overhead:
        _sum_into(requests, overhead)
        for k in list(limits):
            _sum_into(limits, {k: overhead[k]} if k in overhead else None)
    return requests, limits


def _compute_usage(requests: Usage, limits: Usage) -> Usage:
    """upstream's podComputeUsageHelper."""
    out: Usage = {}
    for name in ("cpu", "memory", "ephemeral-storage"):
        if name in requests:
            out[name] = requests[name]
            out[f"requests.{name}"] = requests[name]
        if name in limits:
            out[f"limits.{name}"] = limits[name]
    for name, q in requests.items():
        if name.startswith("hugepages-"):
            out[f"requests.{name}"] = q
            out[name] = q
        elif "/" in name and not name.startswith(("kubernetes.io/", "requests.")):
            out[f"requests.{name}"] = q  # an extended resource such as nvidia.com/gpu
    return out


def _parse_time(value: Any) -> float | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def pod_counts(pod: Obj, now: float) -> bool:
    """upstream's QuotaV1Pod: terminal pods (or ones past their grace period) do not count."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    meta = pod.get("metadata") or {}
    deletion = _parse_time(meta.get("deletionTimestamp"))
    grace = meta.get("deletionGracePeriodSeconds")
    return not (deletion is not None and grace is not None and now > deletion + float(grace))


def object_usage(group: str, plural: str, obj: Obj, now: float) -> Usage:
    """What one object costs (every name it may count; callers mask to the quota's)."""
    usage: Usage = {object_count_name(plural, group): ONE}
    if group == "" and plural in LEGACY_COUNTS and plural not in ("pods",):
        usage[plural] = ONE
    if group != "":
        return usage
    if plural == "pods":
        if pod_counts(obj, now):
            usage["pods"] = ONE
            usage.update(_compute_usage(*pod_requests_and_limits(obj)))
    elif plural == "services":
        spec = obj.get("spec") or {}
        stype = spec.get("type") or "ClusterIP"
        ports = spec.get("ports") or []
        if stype == "LoadBalancer":
            usage["services.loadbalancers"] = ONE
            if spec.get("allocateLoadBalancerNodePorts") is False:
                n = sum(1 for p in ports if p.get("nodePort"))
            else:
                n = len(ports)
            usage["services.nodeports"] = (Decimal(n), DECIMAL_SI)
        elif stype == "NodePort":
            usage["services.nodeports"] = (Decimal(len(ports)), DECIMAL_SI)
    elif plural == "persistentvolumeclaims":
        spec = obj.get("spec") or {}
        storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        cls = spec.get("storageClassName")
        if cls:
            usage[f"{cls}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"] = ONE
        if storage is not None:
            try:
                q = parse_quantity_with_format(storage)
            except ValueError:
                return usage
            usage["requests.storage"] = q
            if cls:
                usage[f"{cls}{STORAGE_CLASS_SUFFIX}requests.storage"] = q
    return usage


def _pod_matches_scope(pod: Obj, scope: str, operator: str, values: Iterable[str]) -> bool:
    spec = pod.get("spec") or {}
    if scope in ("Terminating", "NotTerminating"):
        deadline = spec.get("activeDeadlineSeconds")
        terminating = deadline is not None and int(deadline) >= 0
        return terminating if scope == "Terminating" else not terminating
    if scope in ("BestEffort", "NotBestEffort"):
        best = pod_qos_class(pod) == "BestEffort"
        return best if scope == "BestEffort" else not best
    if scope == "PriorityClass":
        pc = spec.get("priorityClassName")
        if operator == "Exists":
            return bool(pc)
        if operator == "DoesNotExist":
            return not pc
        if operator == "In":
            return pc in set(values)
        if operator == "NotIn":
            return pc not in set(values)
    return False


def matches_scopes(quota: Obj, group: str, plural: str, obj: Obj) -> bool:
    """Whether ``obj`` falls under the quota's scopes (no scope: everything does)."""
    spec = quota.get("spec") or {}
    selectors: list[tuple[str, str, list[str]]] = [
        (s, "Exists", []) for s in spec.get("scopes") or ()
    ]
    for expr in (spec.get("scopeSelector") or {}).get("matchExpressions") or ():
        selectors.append(
            (expr.get("scopeName", ""), expr.get("operator", ""), list(expr.get("values") or ()))
        )
    if not selectors:
        return True
    if (group, plural) != ("", "pods"):
        return False
    return all(_pod_matches_scope(obj, s, op, vals) for s, op, vals in selectors)


def pod_constraints(required: Iterable[str], pod: Obj) -> str | None:
    """upstream's podEvaluator.Constraints: a quota on cpu/memory needs every container to
    state it. Returns the error text (``must specify …``) or None."""
    need = set(required) & VALIDATION_SET
    if not need:
        return None
    missing: dict[str, set[str]] = {}
    spec = pod.get("spec") or {}
    for c in list(spec.get("containers") or ()) + list(spec.get("initContainers") or ()):
        res = c.get("resources") or {}
        have = set(_compute_usage(parse_usage(res.get("requests")), parse_usage(res.get("limits"))))
        for name in need - have:
            missing.setdefault(name, set()).add(str(c.get("name", "")))
    if not missing:
        return None
    parts = [f"{name} for: {','.join(sorted(missing[name]))}" for name in sorted(missing)]
    return f"must specify {'; '.join(parts)}"
