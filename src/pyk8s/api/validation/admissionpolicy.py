"""Validation of ValidatingAdmissionPolicy and ValidatingAdmissionPolicyBinding (upstream's
pkg/apis/admissionregistration/validation, v1.32): field paths and messages as upstream.

Expressions are compiled here, in upstream's environment with ``object`` untyped
(:func:`pyk8s.api.admissionpolicy.compile_policy`): syntax errors, unknown variables,
functions and ``request``/``namespaceObject`` fields, and a wrong result type are refused
at create time; type errors against the matched kinds' schemas are only warnings, reported
in the policy's status by the type-checking controller. On update, as upstream, the match
conditions are not compiled again when neither they nor ``paramKind`` changed.
"""

from __future__ import annotations

import re
from typing import Any, Final

from pyk8s.api import errors
from pyk8s.api.admissionpolicy import compile_policy
from pyk8s.api.validation import names
from pyk8s.api.validation._util import JSON, Errs, child, d, idx, lst, s
from pyk8s.api.validation.admissionrules import (
    FAILURE_POLICIES,
    MATCH_POLICIES,
    validate_match_conditions,
    validate_rule_with_operations,
)
from pyk8s.api.validation.groups import generic_meta
from pyk8s.api.validation.meta import (
    validate_label_selector,
    validate_object_meta_update,
    validate_qualified_name,
)

__all__ = [
    "create_binding",
    "create_policy",
    "update_binding",
    "update_policy",
    "update_policy_status",
]

_REASONS: Final = ("Forbidden", "Invalid", "RequestEntityTooLarge")
_ACTIONS: Final = ("Audit", "Deny", "Warn")
_MAX_AUDIT_ANNOTATIONS: Final = 20
_MAX_VALUE_EXPRESSION: Final = 5 * 1024
_CEL_IDENT: Final = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")
_CEL_RESERVED: Final = frozenset(
    {
        *("true", "false", "null", "in", "as", "break", "const", "continue", "else", "for"),
        *("function", "if", "import", "let", "loop", "package", "namespace", "return"),
        *("var", "void", "while"),
    }
)


def _named_rule(rule: JSON, path: str) -> Errs:
    errs: Errs = []
    seen: set[str] = set()
    for i, name in enumerate(lst(rule.get("resourceNames"))):
        p = idx(child(path, "resourceNames"), i)
        errs += [errors.invalid(p, name, m) for m in names.is_valid_path_segment_name(s(name))]
        if name in seen:
            errs.append(errors.duplicate(p, name))
        seen.add(name)
    return errs + validate_rule_with_operations(rule, path)


def match_resources(mr: Any, path: str) -> Errs:
    """Upstream's validateMatchResources (a policy's matchConstraints, a binding's
    matchResources)."""
    if not isinstance(mr, dict):
        return []
    errs: Errs = []
    mp = mr.get("matchPolicy")
    if mp is None:
        errs.append(errors.required(child(path, "matchPolicy")))
    elif mp not in MATCH_POLICIES:
        errs.append(errors.not_supported(child(path, "matchPolicy"), mp, MATCH_POLICIES))
    for key in ("namespaceSelector", "objectSelector"):
        if mr.get(key) is None:
            errs.append(errors.required(child(path, key)))
        else:
            errs += validate_label_selector(mr[key], child(path, key))
    for key in ("resourceRules", "excludeResourceRules"):
        for i, rule in enumerate(lst(mr.get(key))):
            errs += _named_rule(d(rule), idx(child(path, key), i))
    return errs


def _param_kind(pk: JSON, path: str) -> Errs:
    errs: Errs = []
    api_version = s(pk.get("apiVersion"))
    if not api_version:
        errs.append(errors.required(child(path, "apiVersion")))
    elif api_version.count("/") > 1:
        errs.append(
            errors.invalid(
                child(path, "apiVersion"),
                api_version,
                f"unexpected GroupVersion string: {api_version}",
            )
        )
    elif api_version != "/":
        group, _, version = api_version.rpartition("/")
        if group:
            msgs = names.is_dns1123_subdomain(group)
            if msgs:
                errs.append(errors.invalid(child(path, "apiVersion"), group, ",".join(msgs)))
        if not version:
            errs.append(
                errors.invalid(child(path, "apiVersion"), api_version, "version must be specified")
            )
        else:
            msgs = names.is_dns1035_label(version)
            if msgs:
                errs.append(errors.invalid(child(path, "apiVersion"), version, ",".join(msgs)))
    kind = s(pk.get("kind"))
    if not kind:
        errs.append(errors.required(child(path, "kind")))
    else:
        msgs = names.is_dns1035_label(kind.lower())
        if msgs:
            errs.append(
                errors.invalid(
                    child(path, "kind"),
                    kind,
                    "may have mixed case, but should otherwise match: " + ",".join(msgs),
                )
            )
    return errs


def _compile_error(path: str, expression: str, error: str) -> errors.FieldError:
    return errors.invalid(path, expression, error)


def _spec(meta: JSON, spec: JSON, check_match_conditions: bool) -> Errs:
    path = "spec"
    errs: Errs = []
    fp = spec.get("failurePolicy")
    if fp is None:
        errs.append(errors.required(child(path, "failurePolicy")))
    elif fp not in FAILURE_POLICIES:
        errs.append(errors.not_supported(child(path, "failurePolicy"), fp, FAILURE_POLICIES))
    if isinstance(spec.get("paramKind"), dict):
        errs += _param_kind(spec["paramKind"], child(path, "paramKind"))
    mc = spec.get("matchConstraints")
    if not isinstance(mc, dict):
        errs.append(errors.required(child(path, "matchConstraints")))
    else:
        errs += match_resources(mc, child(path, "matchConstraints"))
        if not lst(mc.get("resourceRules")):
            errs.append(errors.required("spec.matchConstraints.resourceRules"))
    compiled = compile_policy(spec)
    if check_match_conditions:
        conditions = lst(spec.get("matchConditions"))
        errs += validate_match_conditions(conditions, child(path, "matchConditions"))
        for i, (_, expr) in enumerate(compiled.match_conditions):
            if expr.error is not None and expr.source:
                p = idx(child(path, "matchConditions"), i)
                errs.append(_compile_error(child(p, "expression"), expr.source, expr.error))
    for i, v in enumerate(lst(spec.get("variables"))):
        v, p = d(v), idx(child(path, "variables"), i)
        name, expression = s(v.get("name")), s(v.get("expression"))
        if not name.strip():
            errs.append(errors.required(child(p, "name"), "name is not specified"))
        elif not _CEL_IDENT.match(name) or name in _CEL_RESERVED:
            errs.append(
                errors.invalid(child(p, "name"), name, "name is not a valid CEL identifier")
            )
        if not expression.strip():
            errs.append(errors.required(child(p, "expression"), "expression is not specified"))
        else:
            error = compiled.variables[i][1].error
            if error is not None:
                errs.append(_compile_error(child(p, "expression"), expression, error))
    validations = lst(spec.get("validations"))
    annotations = lst(spec.get("auditAnnotations"))
    if not validations and not annotations:
        why = "validations or auditAnnotations must contain at least one item"
        errs.append(errors.required(child(path, "validations"), why))
        errs.append(errors.required(child(path, "auditAnnotations"), why))
        return errs
    for i, v in enumerate(validations):
        errs += _validation(d(v), compiled.validations[i], idx(child(path, "validations"), i))
    if len(annotations) > _MAX_AUDIT_ANNOTATIONS:
        errs.append(
            errors.invalid(
                child(path, "auditAnnotations"),
                annotations,
                f"must not have more than {_MAX_AUDIT_ANNOTATIONS} auditAnnotations",
            )
        )
    keys: set[str] = set()
    for i, a in enumerate(annotations):
        a, p = d(a), idx(child(path, "auditAnnotations"), i)
        key = s(a.get("key"))
        name = s(meta.get("name"))
        if name:
            errs += validate_qualified_name(f"{name}/{key}", child(p, "key"))
        else:
            errs.append(errors.invalid(child(p, "key"), key, "requires metadata.name be non-empty"))
        value = s(a.get("valueExpression"))
        if not value.strip():
            errs.append(
                errors.required(child(p, "valueExpression"), "valueExpression is not specified")
            )
        elif len(value.strip()) > _MAX_VALUE_EXPRESSION:
            errs.append(
                errors.required(
                    child(p, "valueExpression"),
                    f"must not exceed {_MAX_VALUE_EXPRESSION} bytes in length",
                )
            )
        else:
            error = compiled.audit_annotations[i][1].error
            if error is not None:
                errs.append(_compile_error(child(p, "valueExpression"), value, error))
        if key in keys:
            errs.append(errors.duplicate(child(p, "key"), key))
        keys.add(key)
    return errs


def _validation(v: JSON, compiled: Any, path: str) -> Errs:
    errs: Errs = []
    expression = s(v.get("expression"))
    expr, message_expr, _, _ = compiled
    if not expression.strip():
        errs.append(errors.required(child(path, "expression"), "expression is not specified"))
    elif expr.error is not None:
        errs.append(_compile_error(child(path, "expression"), expression, expr.error))
    me = s(v.get("messageExpression"))
    if me and not me.strip():
        errs.append(
            errors.invalid(child(path, "messageExpression"), me, "must be non-empty if specified")
        )
    elif message_expr is not None and message_expr.error is not None:
        errs.append(_compile_error(child(path, "messageExpression"), me, message_expr.error))
    message = s(v.get("message"))
    if message and not message.strip():
        errs.append(
            errors.invalid(
                child(path, "message"), message, "message must be non-empty if specified"
            )
        )
    elif re.search(r"[\n\r]", message.strip()):
        errs.append(
            errors.invalid(child(path, "message"), message, "message must not contain line breaks")
        )
    reason = v.get("reason")
    if reason is not None and reason not in _REASONS:
        errs.append(errors.not_supported(child(path, "reason"), reason, _REASONS))
    return errs


def create_policy(obj: JSON) -> Errs:
    return generic_meta(obj, False) + _spec(d(obj.get("metadata")), d(obj.get("spec")), True)


def update_policy(new: JSON, old: JSON) -> Errs:
    new_spec, old_spec = d(new.get("spec")), d(old.get("spec"))
    recheck = new_spec.get("paramKind") != old_spec.get("paramKind") or new_spec.get(
        "matchConditions"
    ) != old_spec.get("matchConditions")
    meta = validate_object_meta_update(d(new.get("metadata")), d(old.get("metadata")), core=False)
    return meta + generic_meta(new, False) + _spec(d(new.get("metadata")), new_spec, recheck)


def update_policy_status(new: JSON, old: JSON) -> Errs:
    """Upstream's ValidateValidatingAdmissionPolicyStatusUpdate (expression warnings)."""
    errs: Errs = []
    status = d(new.get("status"))
    warnings = lst(d(status.get("typeChecking")).get("expressionWarnings"))
    for i, w in enumerate(warnings):
        w, p = d(w), idx("status.typeChecking.expressionWarnings", i)
        if not s(w.get("warning")):
            errs.append(errors.required(child(p, "warning")))
        if not s(w.get("fieldRef")).strip():
            errs.append(errors.required(child(p, "fieldRef")))
    return errs


def _param_ref(pr: Any, path: str) -> Errs:
    if not isinstance(pr, dict):
        return []
    errs: Errs = []
    name = s(pr.get("name"))
    selector = pr.get("selector")
    if name:
        errs += [
            errors.invalid(child(path, "name"), name, m)
            for m in names.is_valid_path_segment_name(name)
        ]
        if selector is not None:
            errs.append(
                errors.forbidden(child(path, "name"), "name and selector are mutually exclusive")
            )
    if selector is not None:
        errs += validate_label_selector(selector, child(path, "selector"))
        if name:
            errs.append(
                errors.forbidden(
                    child(path, "selector"), "name and selector are mutually exclusive"
                )
            )
    if not name and selector is None:
        errs.append(errors.required(path, "one of name or selector must be specified"))
    action = pr.get("parameterNotFoundAction")
    if not action:
        errs.append(errors.required(child(path, "parameterNotFoundAction")))
    elif action not in ("Deny", "Allow"):
        errs.append(
            errors.not_supported(child(path, "parameterNotFoundAction"), action, ["Deny", "Allow"])
        )
    return errs


def _actions(actions: list[Any], path: str) -> Errs:
    errs: Errs = []
    seen: set[str] = set()
    for i, a in enumerate(actions):
        if a not in _ACTIONS:
            errs.append(errors.not_supported(idx(path, i), a, _ACTIONS))
        if a in seen:
            errs.append(errors.duplicate(idx(path, i), a))
        seen.add(a)
    if "Deny" in seen and "Warn" in seen:
        errs.append(
            errors.invalid(
                path,
                actions,
                "must not contain both Deny and Warn (repeating the same validation failure "
                "information in the API response and headers serves no purpose)",
            )
        )
    if not seen:
        errs.append(errors.required(path, "at least one validation action is required"))
    return errs


def create_binding(obj: JSON) -> Errs:
    spec = d(obj.get("spec"))
    errs = generic_meta(obj, False)
    policy = s(spec.get("policyName"))
    if not policy:
        errs.append(errors.required("spec.policyName"))
    else:
        errs += [
            errors.invalid("spec.policyName", policy, m)
            for m in names.name_is_dns_subdomain(policy, False)
        ]
    errs += _param_ref(spec.get("paramRef"), "spec.paramRef")
    # upstream's path has this spelling
    errs += match_resources(spec.get("matchResources"), "spec.matchResouces")
    errs += _actions(lst(spec.get("validationActions")), "spec.validationActions")
    return errs


def update_binding(new: JSON, old: JSON) -> Errs:
    meta = validate_object_meta_update(d(new.get("metadata")), d(old.get("metadata")), core=False)
    return meta + create_binding(new)
