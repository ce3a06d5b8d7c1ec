"""ObjectMeta, labels, annotations and label selectors: the rules every object shares.

Upstream checks metadata in two layers (each resource's ``ValidateObjectMeta`` with its
own name rule, then the generic pass in ``rest.BeforeCreate``); both are here, with
upstream's paths (``metadata.labels`` for every bad label, no key in the path) and its
quirks (owner reference errors name ``metadata.ownerReferences.kind`` without an index).
Label selectors are both validated (for errors) and evaluated (for "selector does not
match template labels"), with upstream's nil-selects-nothing / empty-selects-everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyk8s.api import errors
from pyk8s.api.gofmt import go_string_slice
from pyk8s.api.validation import names
from pyk8s.api.validation._util import (
    IMMUTABLE,
    JSON,
    Errs,
    child,
    d,
    idx,
    is_int,
    lst,
    s,
    smap,
)

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
STANDARD_FINALIZERS = frozenset({"kubernetes", "orphan", "foregroundDeletion"})


def validate_labels(labels: Any, path: str) -> Errs:
    errs: Errs = []
    for k, v in d(labels).items():
        errs += validate_label_name(str(k), path)
        for msg in names.is_label_value(s(v)):
            errs.append(errors.invalid(path, s(v), msg))
    return errs


def validate_label_name(name: str, path: str) -> Errs:
    return [errors.invalid(path, name, msg) for msg in names.is_qualified_name(name)]


def validate_qualified_name(name: str, path: str) -> Errs:
    return validate_label_name(name, path)


def validate_annotations(annotations: Any, path: str) -> Errs:
    errs: Errs = []
    total = 0
    for k, v in d(annotations).items():
        for msg in names.is_qualified_name(str(k).lower()):
            errs.append(errors.invalid(path, k, msg))
        total += len(str(k).encode()) + len(s(v).encode())
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(errors.too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return errs


def _owner_references(refs: Any, path: str) -> Errs:
    errs: Errs = []
    first_controller = ""
    for ref in lst(refs):
        ref = d(ref)
        api_version = s(ref.get("apiVersion"))
        version = api_version.rpartition("/")[2] if api_version.count("/") <= 1 else ""
        kind = s(ref.get("kind"))
        if not version:
            errs.append(
                errors.invalid(child(path, "apiVersion"), api_version, "version must not be empty")
            )
        if not kind:
            errs.append(errors.invalid(child(path, "kind"), kind, "must not be empty"))
        if not s(ref.get("name")):
            errs.append(
                errors.invalid(child(path, "name"), s(ref.get("name")), "must not be empty")
            )
        if not s(ref.get("uid")):
            errs.append(errors.invalid(child(path, "uid"), s(ref.get("uid")), "must not be empty"))
        if api_version == "v1" and kind == "Event":
            errs.append(
                errors.invalid(path, ref, "/v1, Kind=Event is disallowed from being an owner")
            )
        if ref.get("controller") is True:
            current = f"{kind}/{s(ref.get('name'))}"
            if first_controller:
                errs.append(
                    errors.invalid(
                        path,
                        refs,
                        "Only one reference can have Controller set to true. Found "
                        f'"true" in references for {first_controller} and {current}',
                    )
                )
            else:
                first_controller = current
    return errs


def _finalizers(finalizers: Any, path: str) -> Errs:
    errs: Errs = []
    items = [s(f) for f in lst(finalizers)]
    for f in items:
        errs += [errors.invalid(path, f, m) for m in names.is_qualified_name(f)]
    if "orphan" in items and "foregroundDeletion" in items:
        errs.append(
            errors.invalid(
                path, items, "finalizer orphan and foregroundDeletion cannot be both set"
            )
        )
    return errs


def kube_finalizer_name(value: str, path: str) -> Errs:
    """Core's extra rule: a finalizer without '/' must be one of the standard ones."""
    if "/" not in value and value not in STANDARD_FINALIZERS:
        return [
            errors.invalid(
                path, value, "name is neither a standard finalizer name nor is it fully qualified"
            )
        ]
    return []


def _managed_fields(entries: Any, path: str) -> Errs:
    errs: Errs = []
    for n, e in enumerate(lst(entries)):
        e = d(e)
        p = idx(path, n)
        op = s(e.get("operation"))
        if op not in ("Apply", "Update"):
            errs.append(errors.invalid(child(p, "operation"), op, "must be `Apply` or `Update`"))
        ft = s(e.get("fieldsType"))
        if ft and ft != "FieldsV1":
            errs.append(errors.invalid(child(p, "fieldsType"), ft, "must be `FieldsV1`"))
        manager = s(e.get("manager"))
        if len(manager) > 128:
            errs.append(errors.too_long(child(p, "manager"), 128))
    return errs


def _common(meta: JSON, namespaced: bool, path: str) -> Errs:
    errs: Errs = []
    ns = s(meta.get("namespace"))
    if namespaced:
        if not ns:
            errs.append(errors.required(child(path, "namespace")))
        else:
            errs += [
                errors.invalid(child(path, "namespace"), ns, m)
                for m in names.validate_namespace_name(ns, False)
            ]
    elif ns:
        errs.append(errors.forbidden(child(path, "namespace"), "not allowed on this type"))
    gen = meta.get("generation")
    if is_int(gen) and gen < 0:
        errs.append(
            errors.invalid(child(path, "generation"), gen, "must be greater than or equal to 0")
        )
    return errs + _contents(meta, path)


def _contents(meta: JSON, path: str) -> Errs:
    """Labels, annotations, owner references, finalizers and managed fields (create, update)."""
    errs = validate_labels(meta.get("labels"), child(path, "labels"))
    errs += validate_annotations(meta.get("annotations"), child(path, "annotations"))
    errs += _owner_references(meta.get("ownerReferences"), child(path, "ownerReferences"))
    errs += _finalizers(meta.get("finalizers"), child(path, "finalizers"))
    errs += _managed_fields(meta.get("managedFields"), child(path, "managedFields"))
    return errs


def _kube_finalizers(meta: JSON, path: str) -> Errs:
    errs: Errs = []
    for n, f in enumerate(lst(meta.get("finalizers"))):
        errs += kube_finalizer_name(s(f), idx(child(path, "finalizers"), n))
    return errs


def validate_object_meta(
    meta: Any,
    namespaced: bool,
    name_fn: names.NameFunc,
    path: str = "metadata",
    core: bool = True,
) -> Errs:
    """Upstream's ``ValidateObjectMeta`` (core's, with the kube finalizer rule when core)."""
    meta = d(meta)
    errs: Errs = []
    gen_name = s(meta.get("generateName"))
    if gen_name:
        errs += [
            errors.invalid(child(path, "generateName"), gen_name, m)
            for m in name_fn(gen_name, True)
        ]
    name = s(meta.get("name"))
    if not name:
        errs.append(errors.required(child(path, "name"), "name or generateName is required"))
    else:
        errs += [errors.invalid(child(path, "name"), name, m) for m in name_fn(name, False)]
    errs += _common(meta, namespaced, path)
    if core:
        errs += _kube_finalizers(meta, path)
    return errs


def validate_object_meta_update(
    new: Any, old: Any, path: str = "metadata", core: bool = True
) -> Errs:
    """Upstream's ``ValidateObjectMetaUpdate``: immutable identity, decrement rules."""
    new, old = d(new), d(old)
    errs: Errs = []
    if old.get("deletionTimestamp"):
        extra = sorted(
            set(s(f) for f in lst(new.get("finalizers")))
            - set(s(f) for f in lst(old.get("finalizers")))
        )
        if extra:
            errs.append(
                errors.forbidden(
                    child(path, "finalizers"),
                    "no new finalizers can be added if the object is being deleted, found new "
                    f"finalizers {go_string_slice(extra)}",
                )
            )
    new_gen, old_gen = new.get("generation"), old.get("generation")
    if is_int(new_gen) and is_int(old_gen) and new_gen < old_gen:
        errs.append(errors.invalid(child(path, "generation"), new_gen, "must not be decremented"))
    for f in (
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ):
        a, b = new.get(f), old.get(f)
        if _opt(a) != _opt(b):
            errs.append(errors.invalid(child(path, f), a if a is not None else "", IMMUTABLE))
    errs += _contents(new, path)
    if core:
        errs += _kube_finalizers(new, path)
    return errs


def _opt(v: Any) -> Any:
    return None if v is None or v == "" else v


def validate_template_meta(meta: Any, path: str) -> Errs:
    """Labels and annotations of an embedded template (``spec.template.labels`` paths)."""
    meta = d(meta)
    return validate_labels(meta.get("labels"), child(path, "labels")) + validate_annotations(
        meta.get("annotations"), child(path, "annotations")
    )


# ---------------------------------------------------------------- label selectors

_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def validate_label_selector(sel: Any, path: str, allow_invalid_values: bool = False) -> Errs:
    """Upstream's ``ValidateLabelSelector`` (a nil selector is valid)."""
    if not isinstance(sel, dict):
        return []
    errs = validate_labels(sel.get("matchLabels"), child(path, "matchLabels"))
    for n, expr in enumerate(lst(sel.get("matchExpressions"))):
        errs += validate_selector_requirement(
            d(expr), idx(child(path, "matchExpressions"), n), not allow_invalid_values
        )
    return errs


def validate_selector_requirement(
    expr: JSON, path: str, check_values: bool = True, gt_lt: bool = False
) -> Errs:
    """Upstream's ``ValidateLabelSelectorRequirement``; with ``gt_lt``, its node selector
    twin ``validateNodeSelectorRequirement``, which also takes ``Gt``/``Lt`` (one value)."""
    errs: Errs = []
    op = s(expr.get("operator"))
    values = [s(v) for v in lst(expr.get("values"))]
    if op in ("In", "NotIn"):
        if not values:
            errs.append(
                errors.required(
                    child(path, "values"), "must be specified when `operator` is 'In' or 'NotIn'"
                )
            )
    elif op in ("Exists", "DoesNotExist"):
        if values:
            errs.append(
                errors.forbidden(
                    child(path, "values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )
            )
    elif gt_lt and op in ("Gt", "Lt"):
        if len(values) != 1:
            errs.append(
                errors.required(
                    child(path, "values"),
                    "must be specified single value when `operator` is 'Lt' or 'Gt'",
                )
            )
    else:
        errs.append(errors.invalid(child(path, "operator"), op, "not a valid selector operator"))
    errs += validate_label_name(s(expr.get("key")), child(path, "key"))
    if check_values:
        for n, v in enumerate(values):
            errs += [
                errors.invalid(idx(child(path, "values"), n), v, m) for m in names.is_label_value(v)
            ]
    return errs


class Selector:
    """A parsed ``metav1.LabelSelector``; ``None`` selects nothing, ``{}`` everything."""

    def __init__(self, reqs: list[tuple[str, str, frozenset[str]]] | None) -> None:
        self.reqs = reqs  # None: nothing

    def empty(self) -> bool:
        return self.reqs is not None and not self.reqs

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.reqs is None:
            return False
        for k, op, values in self.reqs:
            present = k in labels
            if op == "In" and not (present and labels[k] in values):
                return False
            if op == "NotIn" and present and labels[k] in values:
                return False
            if op == "Exists" and not present:
                return False
            if op == "DoesNotExist" and present:
                return False
        return True


def parse_selector(sel: Any) -> Selector | None:
    """Upstream's ``LabelSelectorAsSelector``; None when it would fail to convert."""
    if sel is None:
        return Selector(None)
    if not isinstance(sel, dict):
        return None
    reqs: list[tuple[str, str, frozenset[str]]] = []
    for k, v in smap(sel.get("matchLabels")).items():
        if names.is_qualified_name(k) or names.is_label_value(v):
            return None
        reqs.append((k, "In", frozenset({v})))
    for expr in lst(sel.get("matchExpressions")):
        expr = d(expr)
        k, op = s(expr.get("key")), s(expr.get("operator"))
        values = frozenset(s(v) for v in lst(expr.get("values")))
        if op not in _OPERATORS or names.is_qualified_name(k):
            return None
        if op in ("In", "NotIn") and not values:
            return None
        if op in ("Exists", "DoesNotExist") and values:
            return None
        if any(names.is_label_value(v) for v in values):
            return None
        reqs.append((k, op, values))
    return Selector(reqs)


def selector_mismatch(sel: Selector | None, labels: Any, path: str) -> Errs:
    """The "`selector` does not match template `labels`" check (skipped when empty)."""
    if sel is None or sel.empty():
        return []
    lbl = smap(labels)
    if sel.matches(lbl):
        return []
    return [
        errors.invalid(
            path,
            labels if isinstance(labels, dict) else None,
            "`selector` does not match template `labels`",
        )
    ]
