"""apps/v1 workloads: Deployments, ReplicaSets, StatefulSets, DaemonSets, revisions.

The checks users hit most live here: a selector that does not match the template's
labels, a negative replica count, a rolling update with both ``maxSurge`` and
``maxUnavailable`` at zero, and the selector that may never change after creation
(upstream enforces that in each strategy's ``ValidateUpdate`` for apps/v1).
"""

from __future__ import annotations

import copy
from typing import Any

from pyk8s.api import errors
from pyk8s.api.validation import names
from pyk8s.api.validation._util import (
    JSON,
    Errs,
    child,
    d,
    equal,
    i,
    immutable,
    is_int,
    nonneg,
    s,
)
from pyk8s.api.validation.meta import (
    parse_selector,
    selector_mismatch,
    validate_label_selector,
    validate_object_meta,
    validate_object_meta_update,
    validate_template_meta,
)
from pyk8s.api.validation.pods import validate_controller_template_spec, validate_pod_template_spec


def _meta(obj: JSON) -> JSON:
    return d(obj.get("metadata"))


def _percent_value(v: Any) -> int | None:
    if isinstance(v, str) and not names.is_valid_percent(v):
        return int(v[:-1])
    return None


def _int_or_percent_value(v: Any) -> int:
    pct = _percent_value(v)
    if pct is not None:
        return pct
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            return 0
    return i(v)


def validate_positive_int_or_percent(v: Any, path: str) -> Errs:
    if isinstance(v, str):
        return [errors.invalid(path, v, m) for m in names.is_valid_percent(v)]
    if is_int(v):
        return nonneg(v, path)
    if v is None:
        return []
    return [errors.invalid(path, v, "must be an integer or percentage (e.g '5%%')")]


def is_not_more_than_100_percent(v: Any, path: str) -> Errs:
    pct = _percent_value(v)
    if pct is None or pct <= 100:
        return []
    return [errors.invalid(path, v, "must not be greater than 100%")]


def _template_for_replica_set(tmpl: Any, sel_obj: Any, path: str, kind: str) -> Errs:
    """Upstream's ``ValidatePodTemplateSpecForReplicaSet`` (used by Deployments too)."""
    tmpl = d(tmpl)
    sel = parse_selector(sel_obj)
    errs: Errs = []
    if sel is None:
        errs.append(errors.invalid("spec.selector", sel_obj, "invalid label selector"))
        return errs
    errs += selector_mismatch(
        sel, d(tmpl.get("metadata")).get("labels"), child(child(path, "metadata"), "labels")
    )
    errs += validate_pod_template_spec(tmpl, path)
    return errs + validate_controller_template_spec(tmpl.get("spec"), child(path, "spec"), kind)


def _selector(spec: JSON, kind: str) -> Errs:
    sel = spec.get("selector")
    if sel is None:
        return [errors.required("spec.selector")]
    errs = validate_label_selector(sel, "spec.selector")
    sel = d(sel)
    if not d(sel.get("matchLabels")) and not sel.get("matchExpressions"):
        errs.append(errors.invalid("spec.selector", sel, f"empty selector is invalid for {kind}"))
    return errs


# ---------------------------------------------------------------- deployments


def _rolling_update_deployment(ru: JSON, path: str) -> Errs:
    mu, ms = ru.get("maxUnavailable"), ru.get("maxSurge")
    errs = validate_positive_int_or_percent(mu, child(path, "maxUnavailable"))
    errs += validate_positive_int_or_percent(ms, child(path, "maxSurge"))
    if _int_or_percent_value(mu) == 0 and _int_or_percent_value(ms) == 0:
        errs.append(
            errors.invalid(child(path, "maxUnavailable"), mu, "may not be 0 when `maxSurge` is 0")
        )
    return errs + is_not_more_than_100_percent(mu, child(path, "maxUnavailable"))


def _deployment_strategy(strategy: Any, path: str) -> Errs:
    if not isinstance(strategy, dict):
        return []
    t = s(strategy.get("type"))
    ru = strategy.get("rollingUpdate")
    if t == "Recreate":
        if ru is not None:
            return [
                errors.forbidden(
                    child(path, "rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                )
            ]
        return []
    if t == "RollingUpdate":
        if not isinstance(ru, dict):
            return [
                errors.required(
                    child(path, "rollingUpdate"), "this should be defaulted and never be nil"
                )
            ]
        return _rolling_update_deployment(ru, child(path, "rollingUpdate"))
    return [errors.not_supported(path, strategy, ["Recreate", "RollingUpdate"])]


def _deployment_spec(spec: JSON) -> Errs:
    errs = nonneg(spec.get("replicas"), "spec.replicas")
    errs += _selector(spec, "deployment")
    errs += _template_for_replica_set(
        spec.get("template"), spec.get("selector"), "spec.template", "ReplicaSet"
    )
    errs += _deployment_strategy(spec.get("strategy"), "spec.strategy")
    errs += nonneg(spec.get("minReadySeconds"), "spec.minReadySeconds")
    errs += nonneg(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
    pds = spec.get("progressDeadlineSeconds")
    if is_int(pds):
        errs += nonneg(pds, "spec.progressDeadlineSeconds")
        if pds <= i(spec.get("minReadySeconds")):
            errs.append(
                errors.invalid(
                    "spec.progressDeadlineSeconds", pds, "must be greater than minReadySeconds"
                )
            )
    return errs


def create_deployment(obj: JSON) -> Errs:
    errs = validate_object_meta(_meta(obj), True, names.name_is_dns_subdomain)
    return errs + _deployment_spec(d(obj.get("spec")))


def _selector_immutable(new: JSON, old: JSON) -> Errs:
    ns, os_ = d(new.get("spec")).get("selector"), d(old.get("spec")).get("selector")
    return immutable(ns, os_, "spec.selector")


def update_deployment(new: JSON, old: JSON) -> Errs:
    errs = validate_object_meta_update(_meta(new), _meta(old))
    errs += _deployment_spec(d(new.get("spec")))
    return errs + _selector_immutable(new, old)


# ---------------------------------------------------------------- replica sets


def _replica_set_spec(spec: JSON) -> Errs:
    errs = nonneg(spec.get("replicas"), "spec.replicas")
    errs += nonneg(spec.get("minReadySeconds"), "spec.minReadySeconds")
    errs += _selector(spec, "deployment")  # sic: upstream's wording for ReplicaSets too
    errs += _template_for_replica_set(
        spec.get("template"), spec.get("selector"), "spec.template", "ReplicaSet"
    )
    return errs


def create_replica_set(obj: JSON) -> Errs:
    errs = validate_object_meta(_meta(obj), True, names.name_is_dns_subdomain)
    return errs + _replica_set_spec(d(obj.get("spec")))


def update_replica_set(new: JSON, old: JSON) -> Errs:
    errs = validate_object_meta_update(_meta(new), _meta(old))
    errs += _replica_set_spec(d(new.get("spec")))
    return errs + _selector_immutable(new, old)


# ---------------------------------------------------------------- stateful sets

_PVC_RETENTION = ["Retain", "Delete"]


def _stateful_set_spec(spec: JSON) -> Errs:
    errs: Errs = []
    if "podManagementPolicy" in spec:
        pmp = s(spec.get("podManagementPolicy"))
        if not pmp:
            errs.append(errors.required("spec.podManagementPolicy"))
        elif pmp not in ("OrderedReady", "Parallel"):
            errs.append(
                errors.invalid(
                    "spec.podManagementPolicy", pmp, "must be 'OrderedReady' or 'Parallel'"
                )
            )
    us = spec.get("updateStrategy")
    if isinstance(us, dict):
        t = s(us.get("type"))
        ru = us.get("rollingUpdate")
        if not t:
            errs.append(errors.required("spec.updateStrategy"))
        elif t == "OnDelete":
            if ru is not None:
                errs.append(
                    errors.invalid(
                        "spec.updateStrategy.rollingUpdate",
                        ru,
                        "only allowed for updateStrategy 'RollingUpdate'",
                    )
                )
        elif t == "RollingUpdate":
            if isinstance(ru, dict):
                p = "spec.updateStrategy.rollingUpdate"
                errs += nonneg(ru.get("partition"), f"{p}.partition")
                mu = ru.get("maxUnavailable")
                if mu is not None:
                    errs += validate_positive_int_or_percent(mu, f"{p}.maxUnavailable")
                    if _int_or_percent_value(mu) == 0:
                        errs.append(errors.invalid(f"{p}.maxUnavailable", mu, "cannot be 0"))
                    errs += is_not_more_than_100_percent(mu, f"{p}.maxUnavailable")
        else:
            errs.append(
                errors.invalid("spec.updateStrategy", us, "must be 'RollingUpdate' or 'OnDelete'")
            )
    pol = spec.get("persistentVolumeClaimRetentionPolicy")
    if isinstance(pol, dict):
        for f in ("whenDeleted", "whenScaled"):
            v = pol.get(f)
            if v is not None and v not in _PVC_RETENTION:
                errs.append(
                    errors.not_supported(
                        f"spec.persistentVolumeClaimRetentionPolicy.{f}", v, _PVC_RETENTION
                    )
                )
    errs += nonneg(spec.get("replicas"), "spec.replicas")
    errs += nonneg(spec.get("minReadySeconds"), "spec.minReadySeconds")
    ordinals = spec.get("ordinals")
    if isinstance(ordinals, dict):
        errs += nonneg(ordinals.get("start"), "spec.ordinals.start")
    errs += _selector(spec, "statefulset")
    sel_obj = spec.get("selector")
    sel = parse_selector(sel_obj)
    tmpl = d(spec.get("template"))
    if sel is None:
        errs.append(errors.invalid("spec.selector", sel_obj, ""))
    else:
        meta = d(tmpl.get("metadata"))
        errs += selector_mismatch(sel, meta.get("labels"), "spec.template.metadata.labels")
        errs += validate_template_meta(meta, "spec.template")
    return errs + validate_controller_template_spec(
        tmpl.get("spec"), "spec.template.spec", "StatefulSet"
    )


def create_stateful_set(obj: JSON) -> Errs:
    errs = validate_object_meta(_meta(obj), True, names.name_is_dns_subdomain)
    return errs + _stateful_set_spec(d(obj.get("spec")))


def update_stateful_set(new: JSON, old: JSON) -> Errs:
    errs = validate_object_meta_update(_meta(new), _meta(old))
    ns, os_ = d(new.get("spec")), d(old.get("spec"))
    errs += _stateful_set_spec(ns)
    clone = copy.copy(ns)
    for f in (
        "replicas",
        "template",
        "updateStrategy",
        "minReadySeconds",
        "ordinals",
        "persistentVolumeClaimRetentionPolicy",
    ):
        clone.pop(f, None)
        if f in os_:
            clone[f] = os_[f]
    if not equal(clone, os_):
        errs.append(
            errors.forbidden(
                "spec",
                "updates to statefulset spec for fields other than "
                "'replicas', 'ordinals', 'template', 'updateStrategy', "
                "'persistentVolumeClaimRetentionPolicy' and "
                "'minReadySeconds' are forbidden",
            )
        )
    return errs


# ---------------------------------------------------------------- daemon sets


def _daemon_set_strategy(strategy: Any, path: str) -> Errs:
    if not isinstance(strategy, dict):
        return []
    t = s(strategy.get("type"))
    if t == "OnDelete":
        return []
    if t == "RollingUpdate":
        ru = strategy.get("rollingUpdate")
        if not isinstance(ru, dict):
            return [errors.required(child(path, "rollingUpdate"))]
        p = child(path, "rollingUpdate")
        mu, ms = ru.get("maxUnavailable"), ru.get("maxSurge")
        errs = validate_positive_int_or_percent(mu, f"{p}.maxUnavailable")
        errs += validate_positive_int_or_percent(ms, f"{p}.maxSurge")
        errs += is_not_more_than_100_percent(mu, f"{p}.maxUnavailable")
        errs += is_not_more_than_100_percent(ms, f"{p}.maxSurge")
        has_u, has_s = _int_or_percent_value(mu) != 0, _int_or_percent_value(ms) != 0
        if has_u and has_s:
            errs.append(
                errors.invalid(
                    f"{p}.maxSurge", ms, "may not be set when maxUnavailable is non-zero"
                )
            )
        elif not has_u and not has_s:
            errs.append(errors.required(f"{p}.maxUnavailable", "cannot be 0 when maxSurge is 0"))
        return errs
    return [errors.not_supported(path, strategy, ["RollingUpdate", "OnDelete"])]


def _daemon_set_spec(spec: JSON) -> Errs:
    sel_obj = spec.get("selector")
    errs = validate_label_selector(sel_obj, "spec.selector")
    tmpl = d(spec.get("template"))
    errs += selector_mismatch(
        parse_selector(sel_obj),
        d(tmpl.get("metadata")).get("labels"),
        "spec.template.metadata.labels",
    )
    if (
        isinstance(sel_obj, dict)
        and not d(sel_obj.get("matchLabels"))
        and not sel_obj.get("matchExpressions")
    ):
        errs.append(
            errors.invalid("spec.selector", sel_obj, "empty selector is invalid for daemonset")
        )
    errs += validate_pod_template_spec(tmpl, "spec.template")
    errs += validate_controller_template_spec(tmpl.get("spec"), "spec.template.spec", "DaemonSet")
    errs += nonneg(spec.get("minReadySeconds"), "spec.minReadySeconds")
    errs += _daemon_set_strategy(spec.get("updateStrategy"), "spec.updateStrategy")
    errs += nonneg(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
    return errs


def create_daemon_set(obj: JSON) -> Errs:
    errs = validate_object_meta(_meta(obj), True, names.name_is_dns_subdomain)
    return errs + _daemon_set_spec(d(obj.get("spec")))


def update_daemon_set(new: JSON, old: JSON) -> Errs:
    errs = validate_object_meta_update(_meta(new), _meta(old))
    errs += _daemon_set_spec(d(new.get("spec")))
    return errs + _selector_immutable(new, old)


# ---------------------------------------------------------------- controller revisions


def create_controller_revision(obj: JSON) -> Errs:
    errs = validate_object_meta(_meta(obj), True, names.name_is_dns_subdomain)
    if obj.get("data") is None:
        errs.append(errors.required("data", "data is mandatory"))
    return errs + nonneg(obj.get("revision"), "revision")


def update_controller_revision(new: JSON, old: JSON) -> Errs:
    errs = validate_object_meta_update(_meta(new), _meta(old))
    errs += create_controller_revision(new)
    return errs + immutable(new.get("data"), old.get("data"), "data")
