"""batch/v1: Jobs and CronJobs, including the cron schedule parser's error wording.

A CronJob's schedule is checked the way upstream checks it, with robfig/cron v3's
``ParseStandard`` (five fields or an ``@descriptor``), so a typo earns the same message
(``expected exactly 5 fields, found 1: [hourly]``). Job selectors follow upstream's
strategy: unless ``manualSelector`` is true the server generates the selector and the
pod labels from the Job's uid and name (:func:`generate_job_selector`), and validation
then insists they are intact.
"""

from __future__ import annotations

import copy
import re
import zoneinfo
from typing import Any

from pyk8s.api import errors
from pyk8s.api.validation import names
from pyk8s.api.validation._util import (
    JSON,
    Errs,
    d,
    equal,
    immutable,
    is_int,
    nonneg,
    s,
    smap,
)
from pyk8s.api.validation.meta import (
    parse_selector,
    validate_label_selector,
    validate_object_meta,
    validate_object_meta_update,
)
from pyk8s.api.validation.pods import validate_pod_template_spec

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID = "controller-uid"
LEGACY_JOB_NAME = "job-name"
MAX_PARALLELISM_INDEXED = 100_000
MAX_FAILED_INDEXES = 100_000


def _meta(obj: JSON) -> JSON:
    return d(obj.get("metadata"))


# ---------------------------------------------------------------- cron


_BOUNDS = {
    "minute": (0, 59, None),
    "hour": (0, 23, None),
    "dom": (1, 31, None),
    "month": (
        1,
        12,
        {
            m: n + 1
            for n, m in enumerate(
                ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
            )
        },
    ),
    "dow": (0, 6, {m: n for n, m in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}),
}
_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_GO_INT = re.compile(r"[+-]?[0-9]+")
_DURATION = re.compile(r"[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+")


class CronError(ValueError):
    pass


def _atoi(expr: str) -> int:
    if not _GO_INT.fullmatch(expr):
        raise CronError(
            f'failed to parse int from {expr}: strconv.Atoi: parsing "{expr}": invalid syntax'
        )
    n = int(expr)
    if not -(2**63) <= n < 2**63:
        raise CronError(
            f'failed to parse int from {expr}: strconv.Atoi: parsing "{expr}": value out of range'
        )
    if n < 0:
        raise CronError(f"negative number ({n}) not allowed: {expr}")
    return n


def _int_or_name(expr: str, names_: dict[str, int] | None) -> int:
    if names_ and expr.lower() in names_:
        return names_[expr.lower()]
    return _atoi(expr)


def _range(expr: str, field: str) -> None:
    lo, hi, names_ = _BOUNDS[field]
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    single = len(low_high) == 1
    if low_high[0] in ("*", "?"):
        start, end = lo, hi
    else:
        start = _int_or_name(low_high[0], names_)
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            end = _int_or_name(low_high[1], names_)
        else:
            raise CronError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _atoi(range_and_step[1])
        if single:
            end = hi
    else:
        raise CronError(f"too many slashes: {expr}")
    if start < lo:
        raise CronError(f"beginning of range ({start}) below minimum ({lo}): {expr}")
    if end > hi:
        raise CronError(f"end of range ({end}) above maximum ({hi}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")


def parse_cron(spec: str) -> None:
    """robfig/cron v3 ``ParseStandard``; raises :class:`CronError` with its message."""
    if not spec:
        raise CronError("empty spec string")
    if spec.startswith(("TZ=", "CRON_TZ=")):
        sp = spec.find(" ")
        eq = spec.find("=")
        loc = spec[eq + 1 : sp if sp >= 0 else len(spec)]
        if sp < 0 or not _valid_zone(loc):
            raise CronError(f"provided bad location {loc}: unknown time zone {loc}")
        spec = spec[sp:].strip()
    if spec.startswith("@"):
        if spec in _DESCRIPTORS:
            return
        if spec.startswith("@every "):
            dur = spec[len("@every ") :]
            if not _DURATION.fullmatch(dur) and dur != "0":
                raise CronError(f'failed to parse duration {spec}: time: invalid duration "{dur}"')
            return
        raise CronError(f"unrecognized descriptor: {spec}")
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    for value, field in zip(fields, ("minute", "hour", "dom", "month", "dow"), strict=True):
        for expr in [e for e in value.split(",") if e]:
            _range(expr, field)


def _valid_zone(tz: str) -> bool:
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


_TZ_PART = re.compile(r"[A-Za-z.\-_0-9+]{1,14}")


def _time_zone(tz: Any, path: str) -> Errs:
    if not isinstance(tz, str):
        return []
    if not tz:
        return [errors.invalid(path, tz, "timeZone must be nil or non-empty string")]
    for part in tz.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TZ_PART.fullmatch(part):
            return [errors.invalid(path, tz, f"unknown time zone {tz}")]
    errs: Errs = []
    if tz.lower() == "local":
        errs.append(
            errors.invalid(
                path,
                tz,
                "timeZone must be an explicit time zone as defined "
                "in https://www.iana.org/time-zones",
            )
        )
    elif tz != "UTC" and not _valid_zone(tz):
        errs.append(errors.invalid(path, tz, f"unknown time zone {tz}"))
    return errs


# ---------------------------------------------------------------- jobs


def generate_job_selector(obj: JSON) -> None:
    """Upstream's ``generateSelector``: labels and selector from the Job's uid and name.

    Runs only when ``spec.manualSelector`` is not true; a label the user set is kept
    (and validation then reports a conflict). Mutates ``obj``.
    """
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict) or spec.get("manualSelector") is True:
        return
    meta = d(obj.get("metadata"))
    name, uid = s(meta.get("name")), s(meta.get("uid"))
    tmpl = spec.setdefault("template", {})
    if not isinstance(tmpl, dict):
        return
    tmeta = tmpl.setdefault("metadata", {})
    if not isinstance(tmeta, dict):
        return
    labels = tmeta.get("labels")
    if not isinstance(labels, dict):
        labels = tmeta["labels"] = {}
    for k in (LEGACY_JOB_NAME, JOB_NAME):
        labels.setdefault(k, name)
    for k in (LEGACY_CONTROLLER_UID, CONTROLLER_UID):
        labels.setdefault(k, uid)
    sel = spec.get("selector")
    if not isinstance(sel, dict):
        sel = spec["selector"] = {}
    ml = sel.get("matchLabels")
    if not isinstance(ml, dict):
        ml = sel["matchLabels"] = {}
    ml.setdefault(CONTROLLER_UID, uid)


def _has_label(labels: dict[str, str], k: str, expected: str) -> Errs:
    path = f"spec.template.metadata.labels[{k}]"
    if k not in labels:
        return [errors.required(path, f"must be '{expected}'")]
    if labels[k] != expected:
        return [errors.invalid(path, labels, f"must be '{expected}'")]
    return []


def _generated_selector(obj: JSON) -> Errs:
    spec = d(obj.get("spec"))
    if spec.get("manualSelector") is True or spec.get("selector") is None:
        return []
    meta = _meta(obj)
    uid, name = s(meta.get("uid")), s(meta.get("name"))
    errs: Errs = []
    if not uid:
        errs.append(errors.required("metadata.uid"))
    labels = smap(d(d(spec.get("template")).get("metadata")).get("labels"))
    errs += _has_label(labels, LEGACY_CONTROLLER_UID, uid)
    errs += _has_label(labels, LEGACY_JOB_NAME, name)
    errs += _has_label(labels, CONTROLLER_UID, uid)
    errs += _has_label(labels, JOB_NAME, name)
    sel = parse_selector(spec.get("selector"))
    expected = {
        CONTROLLER_UID: uid,
        JOB_NAME: name,
        LEGACY_CONTROLLER_UID: uid,
        LEGACY_JOB_NAME: name,
    }
    if sel is not None and not sel.matches(expected):
        errs.append(
            errors.invalid("spec.selector", spec.get("selector"), "`selector` not auto-generated")
        )
    return errs


def _job_spec_common(spec: JSON, path: str) -> Errs:
    """Upstream's ``validateJobSpec``: shared by Jobs and CronJob job templates."""
    errs: Errs = []
    for f in (
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ):
        errs += nonneg(spec.get(f), f"{path}.{f}")
    mode = spec.get("completionMode")
    bpi = spec.get("backoffLimitPerIndex")
    if is_int(bpi):
        errs += nonneg(bpi, f"{path}.backoffLimitPerIndex")
        if mode != "Indexed":
            errs.append(
                errors.forbidden(f"{path}.backoffLimitPerIndex", "requires indexed completion mode")
            )
    mfi = spec.get("maxFailedIndexes")
    completions = spec.get("completions")
    if is_int(mfi):
        errs += nonneg(mfi, f"{path}.maxFailedIndexes")
        if bpi is None:
            errs.append(
                errors.required(
                    f"{path}.backoffLimitPerIndex", "when maxFailedIndexes is specified"
                )
            )
        if mode == "Indexed":
            if is_int(completions) and mfi > completions:
                errs.append(
                    errors.invalid(
                        f"{path}.maxFailedIndexes", mfi, "must be less than or equal to completions"
                    )
                )
            if mfi > MAX_FAILED_INDEXES:
                errs.append(
                    errors.invalid(
                        f"{path}.maxFailedIndexes",
                        mfi,
                        f"must be less than or equal to {MAX_FAILED_INDEXES}",
                    )
                )
    if mode is not None:
        if mode not in ("NonIndexed", "Indexed"):
            errs.append(
                errors.not_supported(f"{path}.completionMode", mode, ["NonIndexed", "Indexed"])
            )
        if mode == "Indexed":
            if completions is None:
                errs.append(
                    errors.required(f"{path}.completions", "when completion mode is Indexed")
                )
            par = spec.get("parallelism")
            if is_int(par) and par > MAX_PARALLELISM_INDEXED:
                errs.append(
                    errors.invalid(
                        f"{path}.parallelism",
                        par,
                        f"must be less than or equal to "
                        f"{MAX_PARALLELISM_INDEXED} when completion mode is "
                        "Indexed",
                    )
                )
    prp = spec.get("podReplacementPolicy")
    if isinstance(prp, str):
        allowed = ["Failed"] if spec.get("podFailurePolicy") else ["Failed", "TerminatingOrFailed"]
        if prp not in allowed:
            errs.append(errors.not_supported(f"{path}.podReplacementPolicy", prp, allowed))
    tmpl = d(spec.get("template"))
    errs += validate_pod_template_spec(tmpl, f"{path}.template")
    rp_path = f"{path}.template.spec.restartPolicy"
    rp = d(tmpl.get("spec")).get("restartPolicy")
    if rp in ("Always", "", None):
        errs.append(errors.required(rp_path, 'valid values: "OnFailure", "Never"'))
    elif rp not in ("OnFailure", "Never"):
        errs.append(errors.not_supported(rp_path, rp, ["OnFailure", "Never"]))
    elif spec.get("podFailurePolicy") is not None and rp != "Never":
        errs.append(
            errors.invalid(
                rp_path, rp, 'only "Never" is supported when podFailurePolicy is specified'
            )
        )
    return errs


def _job_spec(spec: JSON) -> Errs:
    errs = _job_spec_common(spec, "spec")
    sel_obj = spec.get("selector")
    if sel_obj is None:
        errs.append(errors.required("spec.selector"))
    else:
        errs += validate_label_selector(sel_obj, "spec.selector")
    sel = parse_selector(sel_obj)
    if sel is not None:
        if sel.empty():
            errs.append(errors.required("spec.selector"))
        labels = d(d(spec.get("template")).get("metadata")).get("labels")
        if not sel.matches(smap(labels)):
            errs.append(
                errors.invalid(
                    "spec.template.metadata.labels",
                    labels if isinstance(labels, dict) else None,
                    "`selector` does not match template `labels`",
                )
            )
    return errs


def _with_generated_selector(obj: JSON) -> JSON:
    spec = d(obj.get("spec"))
    if spec.get("manualSelector") is True or spec.get("selector") is not None:
        return obj
    view = copy.deepcopy(obj)
    generate_job_selector(view)
    return view


def create_job(obj: JSON) -> Errs:
    obj = _with_generated_selector(obj)
    errs = validate_object_meta(_meta(obj), True, names.name_is_dns_subdomain)
    errs += _generated_selector(obj)
    return errs + _job_spec(d(obj.get("spec")))


def _mutable_scheduling(old: JSON) -> bool:
    """Suspended and never started: node selector, affinity, tolerations may change."""
    return d(old.get("spec")).get("suspend") is True and not d(old.get("status")).get("startTime")


def update_job(new: JSON, old: JSON) -> Errs:
    new = _with_generated_selector(new)
    errs = validate_object_meta_update(_meta(new), _meta(old))
    ns, os_ = d(new.get("spec")), d(old.get("spec"))
    errs += _job_spec(ns)
    mode = ns.get("completionMode")
    if mode == "Indexed" and ns.get("completions") != os_.get("completions"):
        if ns.get("completions") != ns.get("parallelism"):
            errs.append(
                errors.invalid(
                    "spec.completions",
                    ns.get("completions"),
                    "can only be modified in tandem with spec.parallelism",
                )
            )
    else:
        errs += immutable(ns.get("completions"), os_.get("completions"), "spec.completions")
    errs += immutable(ns.get("selector"), os_.get("selector"), "spec.selector")
    tmpl, otmpl = d(ns.get("template")), copy.deepcopy(d(os_.get("template")))
    if _mutable_scheduling(old):
        ospec = otmpl.setdefault("spec", {})
        nspec = d(tmpl.get("spec"))
        for f in ("nodeSelector", "affinity", "tolerations", "schedulingGates"):
            ospec.pop(f, None)
            if f in nspec:
                ospec[f] = nspec[f]
        ometa = otmpl.setdefault("metadata", {})
        for f in ("labels", "annotations"):
            ometa.pop(f, None)
            if f in d(tmpl.get("metadata")):
                ometa[f] = d(tmpl.get("metadata"))[f]
    if not equal(tmpl, otmpl):
        errs.append(errors.invalid("spec.template", tmpl, "field is immutable"))
    for f in (
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
        "successPolicy",
    ):
        errs += immutable(ns.get(f), os_.get(f), f"spec.{f}")
    return errs


# ---------------------------------------------------------------- cron jobs


def _job_template(jt: JSON, path: str) -> Errs:
    spec = d(jt.get("spec"))
    errs = _job_spec_common(spec, f"{path}.spec")
    if spec.get("selector") is not None:
        errs.append(
            errors.invalid(
                f"{path}.spec.selector", spec.get("selector"), "`selector` will be auto-generated"
            )
        )
    if spec.get("manualSelector") is True:
        errs.append(errors.not_supported(f"{path}.spec.manualSelector", True, ["nil", "false"]))
    return errs


def _cron_job_spec(spec: JSON, old_spec: JSON | None) -> Errs:
    errs: Errs = []
    schedule = s(spec.get("schedule"))
    if not schedule:
        errs.append(errors.required("spec.schedule"))
    else:
        try:
            parse_cron(schedule)
        except CronError as err:
            errs.append(errors.invalid("spec.schedule", schedule, str(err)))
        allow_tz = old_spec is not None and "TZ" in s(old_spec.get("schedule"))
        if allow_tz and "TZ" in schedule and spec.get("timeZone") is not None:
            errs.append(
                errors.invalid(
                    "spec.schedule",
                    schedule,
                    "cannot use both timeZone field and TZ or CRON_TZ in schedule",
                )
            )
        elif not allow_tz and "TZ" in schedule:
            errs.append(
                errors.invalid(
                    "spec.schedule",
                    schedule,
                    "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
                )
            )
    errs += nonneg(spec.get("startingDeadlineSeconds"), "spec.startingDeadlineSeconds")
    if old_spec is None or spec.get("timeZone") != old_spec.get("timeZone"):
        errs += _time_zone(spec.get("timeZone"), "spec.timeZone")
    if "concurrencyPolicy" in spec:
        cp = s(spec.get("concurrencyPolicy"))
        if not cp:
            errs.append(errors.required("spec.concurrencyPolicy"))
        elif cp not in ("Allow", "Forbid", "Replace"):
            errs.append(
                errors.not_supported("spec.concurrencyPolicy", cp, ["Allow", "Forbid", "Replace"])
            )
    errs += _job_template(d(spec.get("jobTemplate")), "spec.jobTemplate")
    errs += nonneg(spec.get("successfulJobsHistoryLimit"), "spec.successfulJobsHistoryLimit")
    errs += nonneg(spec.get("failedJobsHistoryLimit"), "spec.failedJobsHistoryLimit")
    return errs


def create_cron_job(obj: JSON) -> Errs:
    meta = _meta(obj)
    errs = validate_object_meta(meta, True, names.name_is_dns_subdomain)
    errs += _cron_job_spec(d(obj.get("spec")), None)
    name = s(meta.get("name"))
    if len(name) > 52:
        errs.append(errors.invalid("metadata.name", name, "must be no more than 52 characters"))
    return errs


def update_cron_job(new: JSON, old: JSON) -> Errs:
    errs = validate_object_meta_update(_meta(new), _meta(old))
    return errs + _cron_job_spec(d(new.get("spec")), d(old.get("spec")))
