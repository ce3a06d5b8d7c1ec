"""The rule and matchCondition checks webhook configurations and admission policies share."""

from __future__ import annotations

from pyk8s.api.errors import FieldError
from pyk8s.api.validation.admissionrules import (
    validate_match_conditions,
    validate_rule_with_operations,
)


def messages(errs: list[FieldError]) -> list[str]:
    return [str(e) for e in errs]


def test_rule_wildcards_and_required_fields() -> None:
    rule = {
        "operations": ["*", "CREATE"],
        "apiGroups": [],
        "apiVersions": ["v1", ""],
        "resources": ["*/*", "pods"],
        "scope": "Everywhere",
    }
    assert messages(validate_rule_with_operations(rule, "rules[0]")) == [
        'rules[0].operations: Invalid value: []string{"*", "CREATE"}: '
        "if '*' is present, must not specify other operations",
        "rules[0].apiGroups: Required value",
        "rules[0].apiVersions[1]: Required value",
        'rules[0].resources: Invalid value: []string{"*/*", "pods"}: '
        "if '*/*' is present, must not specify other resources",
        'rules[0].scope: Unsupported value: "Everywhere": '
        'supported values: "*", "Cluster", "Namespaced"',
    ]


def test_overlapping_subresource_wildcards() -> None:
    rule = {
        "operations": ["UPDATE"],
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "resources": ["pods/*", "pods/status", "*/scale", "deployments/scale"],
    }
    assert messages(validate_rule_with_operations(rule, "r")) == [
        'r.resources[1]: Invalid value: "pods/status": '
        "if 'pods/*' is present, must not specify pods/status",
        'r.resources[3]: Invalid value: "deployments/scale": '
        "if '*/scale' is present, must not specify deployments/scale",
    ]


def test_match_conditions_names_and_the_callers_compiler() -> None:
    compiled: list[str] = []

    def check(expression: str, path: str) -> list[FieldError]:
        compiled.append(f"{path}={expression}")
        return []

    conditions = [
        {"name": "a", "expression": "true"},
        {"name": "a", "expression": " "},
        {"expression": "false"},
    ]
    assert messages(validate_match_conditions(conditions, "m", check)) == [
        "m[1].expression: Required value",
        'm[1].name: Duplicate value: "a"',
        "m[2].name: Required value",
    ]
    assert compiled == ["m[0].expression=true", "m[2].expression=false"]
