"""Validation shared by every admissionregistration.k8s.io kind: rules and matchConditions.

Why this module exists: webhook configurations and ValidatingAdmissionPolicies (and their
bindings) name the requests they intercept with the same ``RuleWithOperations`` and the
same CEL ``matchConditions``, and upstream validates both with one set of functions
(``validateRuleWithOperations``, ``validateMatchConditions``). Keeping one copy keeps the
messages identical across the kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from pyk8s.api import errors
from pyk8s.api.gofmt import GoStringSlice
from pyk8s.api.validation._util import JSON, Errs, child, d, idx, lst, s
from pyk8s.api.validation.meta import validate_qualified_name

FAILURE_POLICIES: Final = ("Fail", "Ignore")
MATCH_POLICIES: Final = ("Equivalent", "Exact")
OPERATIONS: Final = ("*", "CONNECT", "CREATE", "DELETE", "UPDATE")
SCOPES: Final = ("*", "Cluster", "Namespaced")
MAX_MATCH_CONDITIONS: Final = 64
#: the variables a matchCondition may use (``authorizer`` only where the caller has one)
MATCH_CONDITION_VARIABLES: Final = ("object", "oldObject", "request", "authorizer")


def _shown(values: list[Any]) -> GoStringSlice:
    return GoStringSlice(s(v) for v in values)


def validate_resources(resources: list[Any], path: str) -> Errs:
    """A rule's ``resources``: ``*``, ``*/*``, ``res/*`` and ``*/sub`` must not overlap."""
    errs: Errs = []
    if not resources:
        errs.append(errors.required(path))
    with_wildcard_sub: set[str] = set()  # x/*
    sub_with_wildcard_res: set[str] = set()  # */x
    double_wildcard = single_wildcard = without_sub = False
    for n, raw in enumerate(resources):
        res_sub = s(raw)
        if not res_sub:
            errs.append(errors.required(idx(path, n)))
            continue
        double_wildcard = double_wildcard or res_sub == "*/*"
        single_wildcard = single_wildcard or res_sub == "*"
        if "/" not in res_sub:
            without_sub = res_sub != "*"
            continue
        res, sub = res_sub.split("/", 1)
        if res in with_wildcard_sub:
            why = f"if '{res}/*' is present, must not specify {res_sub}"
            errs.append(errors.invalid(idx(path, n), res_sub, why))
        if sub in sub_with_wildcard_res:
            why = f"if '*/{sub}' is present, must not specify {res_sub}"
            errs.append(errors.invalid(idx(path, n), res_sub, why))
        if sub == "*":
            with_wildcard_sub.add(res)
        if res == "*":
            sub_with_wildcard_res.add(sub)
    if len(resources) > 1 and double_wildcard:
        why = "if '*/*' is present, must not specify other resources"
        errs.append(errors.invalid(path, _shown(resources), why))
    if single_wildcard and without_sub:
        why = "if '*' is present, must not specify other resources without subresources"
        errs.append(errors.invalid(path, _shown(resources), why))
    return errs


def _no_wildcard_with_others(values: list[Any], path: str, what: str) -> Errs:
    if len(values) > 1 and "*" in values:
        why = f"if '*' is present, must not specify other {what}"
        return [errors.invalid(path, _shown(values), why)]
    return []


def validate_rule_with_operations(rule: JSON, path: str) -> Errs:
    """Upstream's ``validateRuleWithOperations`` (subresources allowed)."""
    errs: Errs = []
    operations = lst(rule.get("operations"))
    ops_path = child(path, "operations")
    if not operations:
        errs.append(errors.required(ops_path))
    errs += _no_wildcard_with_others(operations, ops_path, "operations")
    for n, op in enumerate(operations):
        if op not in OPERATIONS:
            errs.append(errors.not_supported(idx(ops_path, n), op, OPERATIONS))
    groups = lst(rule.get("apiGroups"))
    if not groups:
        errs.append(errors.required(child(path, "apiGroups")))
    errs += _no_wildcard_with_others(groups, child(path, "apiGroups"), "API groups")
    versions = lst(rule.get("apiVersions"))
    versions_path = child(path, "apiVersions")
    if not versions:
        errs.append(errors.required(versions_path))
    errs += _no_wildcard_with_others(versions, versions_path, "API versions")
    for n, version in enumerate(versions):
        if not version:
            errs.append(errors.required(idx(versions_path, n)))
    errs += validate_resources(lst(rule.get("resources")), child(path, "resources"))
    scope = rule.get("scope")
    if scope is not None and scope not in SCOPES:
        errs.append(errors.not_supported(child(path, "scope"), scope, SCOPES))
    return errs


def validate_match_conditions(
    conditions: list[Any],
    path: str,
    check_expression: Callable[[str, str], Errs] | None = None,
) -> Errs:
    """Upstream's ``validateMatchConditions``: at most 64, each a unique qualified name and
    a non-empty expression; ``check_expression(expression, path)`` compiles it (webhooks
    compile here; policies compile the whole spec at once and pass None)."""
    errs: Errs = []
    if len(conditions) > MAX_MATCH_CONDITIONS:
        errs.append(errors.too_many(path, len(conditions), MAX_MATCH_CONDITIONS))
    seen: set[str] = set()
    for n, raw in enumerate(conditions):
        cond, cpath = d(raw), idx(path, n)
        expression = s(cond.get("expression")).strip()
        if not expression:
            errs.append(errors.required(child(cpath, "expression")))
        elif check_expression is not None:
            errs += check_expression(expression, child(cpath, "expression"))
        name = s(cond.get("name"))
        if not name:
            errs.append(errors.required(child(cpath, "name")))
        else:
            errs += validate_qualified_name(name, child(cpath, "name"))
            if name in seen:
                errs.append(errors.duplicate(child(cpath, "name"), name))
            seen.add(name)
    return errs
