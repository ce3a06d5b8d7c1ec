"""The ValidatingAdmissionPolicy plugin against a fake cache: actions, params, variables,
match conditions, audit annotations, the authorizer, failure policies; and the pure parts
(validation messages, type checking, printers)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from pyk8s.api.admissionpolicy import (
    Kind,
    builtin_type,
    compile_policy,
    default_binding,
    default_policy,
    kinds_to_check,
    type_check,
)
from pyk8s.api.errors import StatusError
from pyk8s.api.registry import REGISTRY, Registry, Resource
from pyk8s.api.schema import schemas
from pyk8s.api.validation.admissionpolicy import create_binding, create_policy
from pyk8s.apiserver.admission import CREATE, Attributes, Context
from pyk8s.apiserver.admission.policy import VALIDATION_FAILURE_KEY, ValidatingAdmissionPolicy
from pyk8s.apiserver.authn import UserInfo
from pyk8s.apiserver.authz import Decision, RequestAttributes
from pyk8s.apiserver.strategies.admissionpolicy import (
    ValidatingAdmissionPolicyBindingStrategy,
    ValidatingAdmissionPolicyStrategy,
)

JSON = dict[str, Any]
GROUP = "admissionregistration.k8s.io"
USER = UserInfo("alice", groups=("devs", "system:authenticated"))


def res(group: str, version: str, plural: str) -> Resource:
    r = REGISTRY.get(group, version, plural)
    assert r is not None
    return r


DEPLOYMENTS = res("apps", "v1", "deployments")


class FakeReader:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str, str], JSON] = {}

    def add(self, group: str, plural: str, obj: JSON) -> None:
        meta = obj["metadata"]
        self.objects[(group, plural, meta.get("namespace", ""), meta["name"])] = obj

    async def get(self, group: str, plural: str, namespace: str, name: str) -> JSON | None:
        return self.cached(group, plural, namespace, name)

    def cached(self, group: str, plural: str, namespace: str, name: str) -> JSON | None:
        return self.objects.get((group, plural, namespace, name))

    def list(self, group: str, plural: str, namespace: str | None = None) -> list[JSON]:
        return [
            o
            for (g, p, ns, _), o in sorted(self.objects.items())
            if (g, p) == (group, plural) and (namespace is None or ns == namespace)
        ]


class FakeAuthorizer:
    def __init__(self) -> None:
        self.asked: list[tuple[str, RequestAttributes]] = []

    async def authorize(self, user: UserInfo, attributes: RequestAttributes) -> Decision:
        self.asked.append((user.name, attributes))
        if attributes.api_group == "apps" and attributes.verb == "create":
            return Decision.allow()
        return Decision.abstain("no RBAC rule")


def policy(name: str, **spec: Any) -> JSON:
    spec.setdefault(
        "matchConstraints",
        {
            "resourceRules": [
                {
                    "apiGroups": ["apps"],
                    "apiVersions": ["v1"],
                    "operations": ["CREATE"],
                    "resources": ["deployments"],
                }
            ]
        },
    )
    obj = {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "uid": f"uid-{name}", "generation": 1},
        "spec": spec,
    }
    return default_policy(obj)


def binding(name: str, policy_name: str, actions: list[str], **spec: Any) -> JSON:
    return default_binding(
        {
            "apiVersion": f"{GROUP}/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {"policyName": policy_name, "validationActions": actions, **spec},
        }
    )


def deployment(replicas: int, labels: dict[str, str] | None = None) -> JSON:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns", "labels": labels or {}},
        "spec": {"replicas": replicas},
    }


def setup(*objs: JSON, authorizer: Any = None) -> tuple[ValidatingAdmissionPolicy, FakeReader]:
    reader = FakeReader()
    reader.add("", "namespaces", {"metadata": {"name": "ns", "labels": {"env": "prod"}}})
    for o in objs:
        plural = {
            "ValidatingAdmissionPolicy": "validatingadmissionpolicies",
            "ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings",
        }.get(o["kind"])
        if plural is not None:
            reader.add(GROUP, plural, o)
        else:
            r = REGISTRY.for_api_version(o["apiVersion"], o["kind"])
            assert r is not None
            reader.add(r.group, r.plural, o)
    plugin = ValidatingAdmissionPolicy(Context(reader, registry=Registry(), authorizer=authorizer))
    return plugin, reader


def admit(plugin: ValidatingAdmissionPolicy, obj: JSON) -> Attributes:
    a = Attributes(CREATE, DEPLOYMENTS, "ns", obj["metadata"]["name"], obj, None, USER)
    assert plugin.handles(a)
    asyncio.run(plugin.validate(a))
    return a


def refused(plugin: ValidatingAdmissionPolicy, obj: JSON) -> StatusError:
    with pytest.raises(StatusError) as err:
        admit(plugin, obj)
    return err.value


def test_deny_status_as_upstream() -> None:
    plugin, _ = setup(
        policy(
            "p", validations=[{"expression": "object.spec.replicas <= 5", "reason": "Forbidden"}]
        ),
        binding("b", "p", ["Deny"]),
    )
    err = refused(plugin, deployment(6))
    message = (
        "deployments.apps \"web\" is forbidden: ValidatingAdmissionPolicy 'p' with binding 'b' "
        "denied request: failed expression: object.spec.replicas <= 5"
    )
    assert (err.code, err.reason, err.message) == (403, "Forbidden", message)
    assert err.status()["details"] == {
        "name": "web",
        "group": "apps",
        "kind": "deployments",
        "causes": [{"message": message.split(": ", 1)[1]}],
    }
    admit(plugin, deployment(5))


def test_audit_and_warn_and_audit_annotations() -> None:
    plugin, _ = setup(
        policy(
            "p",
            validations=[{"expression": "object.spec.replicas < 2", "message": "too many"}],
            auditAnnotations=[
                {"key": "replicas", "valueExpression": "string(object.spec.replicas)"},
                {"key": "none", "valueExpression": "null"},
            ],
        ),
        binding("b", "p", ["Audit", "Warn"]),
    )
    a = admit(plugin, deployment(3))
    assert a.warnings == [
        "Validation failed for ValidatingAdmissionPolicy 'p' with binding 'b': too many"
    ]
    assert json.loads(a.audit_annotations[VALIDATION_FAILURE_KEY]) == [
        {
            "message": "too many",
            "policy": "p",
            "binding": "b",
            "expressionIndex": 0,
            "validationActions": ["Audit", "Warn"],
        }
    ]
    assert a.audit_annotations["p/replicas"] == "3"
    assert "p/none" not in a.audit_annotations


def test_message_expression_falls_back_to_message_when_unusable() -> None:
    plugin, _ = setup(
        policy(
            "p",
            validations=[
                {
                    "expression": "false",
                    "messageExpression": "'two\\nlines'",
                    "message": "plain message",
                }
            ],
        ),
        binding("b", "p", ["Deny"]),
    )
    err = refused(plugin, deployment(1))
    assert err.message.endswith("denied request: plain message")
    assert (err.code, err.reason) == (422, "Invalid")


def test_variables_are_evaluated_once_and_only_when_read() -> None:
    plugin, _ = setup(
        policy(
            "p",
            variables=[
                {"name": "env", "expression": "namespaceObject.metadata.labels.env"},
                {"name": "broken", "expression": "object.nope"},
                {
                    "name": "big",
                    "expression": "variables.env == 'prod' && object.spec.replicas > 3",
                },
            ],
            validations=[{"expression": "!variables.big", "messageExpression": "variables.env"}],
        ),
        binding("b", "p", ["Deny"]),
    )
    admit(plugin, deployment(3))  # the unread, broken variable is never evaluated
    assert refused(plugin, deployment(4)).message.endswith("denied request: prod")


def test_params_by_name_namespace_and_not_found() -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "limits", "namespace": "params"},
        "data": {"max": "2"},
    }
    p = policy(
        "p",
        paramKind={"apiVersion": "v1", "kind": "ConfigMap"},
        validations=[{"expression": "object.spec.replicas <= int(params.data.max)"}],
    )
    ref = {"name": "limits", "namespace": "params", "parameterNotFoundAction": "Deny"}
    plugin, reader = setup(p, binding("b", "p", ["Deny"], paramRef=ref), cm)
    admit(plugin, deployment(2))
    refused(plugin, deployment(3))
    del reader.objects[("", "configmaps", "params", "limits")]
    err = refused(plugin, deployment(1))
    assert err.message.endswith(
        "denied request: failed to configure binding: no params found for policy binding "
        "with `Deny` parameterNotFoundAction"
    )
    # Allow: no params, nothing evaluated
    plugin, _ = setup(
        p, binding("b", "p", ["Deny"], paramRef={**ref, "parameterNotFoundAction": "Allow"})
    )
    admit(plugin, deployment(9))


def test_failure_policy_on_errors_and_match_conditions() -> None:
    validations = [{"expression": "object.spec.nope > 1"}]
    for failure_policy, denied in (("Fail", True), ("Ignore", False)):
        plugin, _ = setup(
            policy("p", failurePolicy=failure_policy, validations=validations),
            binding("b", "p", ["Deny"]),
        )
        if denied:
            err = refused(plugin, deployment(1))
            assert err.message.endswith(
                "denied request: expression 'object.spec.nope > 1' resulted in error: "
                "no such key: nope"
            )
        else:
            admit(plugin, deployment(1))
    plugin, _ = setup(
        policy(
            "p",
            matchConditions=[
                {"name": "labelled", "expression": "'check' in object.metadata.labels"}
            ],
            validations=[{"expression": "false"}],
        ),
        binding("b", "p", ["Deny"]),
    )
    admit(plugin, deployment(1))
    refused(plugin, deployment(1, {"check": "yes"}))


def test_binding_match_resources_narrow_the_policy() -> None:
    match = {"objectSelector": {"matchLabels": {"team": "a"}}}
    plugin, _ = setup(
        policy("p", validations=[{"expression": "false"}]),
        binding("b", "p", ["Deny"], matchResources=match),
    )
    admit(plugin, deployment(1, {"team": "b"}))
    refused(plugin, deployment(1, {"team": "a"}))


def test_authorizer_checks_with_the_servers_authorizer() -> None:
    authz = FakeAuthorizer()
    plugin, _ = setup(
        policy(
            "p",
            validations=[
                {
                    "expression": "authorizer.group('apps').resource('deployments')"
                    ".namespace('ns').check('create').allowed()"
                },
                {
                    "expression": "authorizer.group('').resource('secrets').check('get').allowed()",
                    "messageExpression": "'cannot read secrets'",
                },
            ],
        ),
        binding("b", "p", ["Deny"]),
        authorizer=authz,
    )
    err = refused(plugin, deployment(1))
    assert err.message.endswith("denied request: cannot read secrets")
    assert [(u, a.verb, a.api_group, a.resource, a.namespace) for u, a in authz.asked] == [
        ("alice", "create", "apps", "deployments", "ns"),
        ("alice", "get", "", "secrets", ""),
    ]


def test_validation_messages() -> None:
    bad = {
        "metadata": {"name": "p"},
        "spec": {
            "failurePolicy": "Sometimes",
            "paramKind": {"apiVersion": "v1"},
            "matchConstraints": {
                "matchPolicy": "Equivalent",
                "namespaceSelector": {},
                "objectSelector": {},
            },
            "variables": [{"name": "1x", "expression": "1"}],
            "validations": [
                {"expression": "object.x", "reason": "Teapot", "message": "a\nb"},
                {"expression": "variables.y > 1", "messageExpression": "1"},
            ],
        },
    }
    errs = [str(e) for e in create_policy(bad)]
    assert (
        'spec.failurePolicy: Unsupported value: "Sometimes": supported values: "Fail", "Ignore"'
        in errs
    )
    assert "spec.paramKind.kind: Required value" in errs
    assert "spec.matchConstraints.resourceRules: Required value" in errs
    assert 'spec.variables[0].name: Invalid value: "1x": name is not a valid CEL identifier' in errs
    assert (
        'spec.validations[0].reason: Unsupported value: "Teapot": supported values: '
        '"Forbidden", "Invalid", "RequestEntityTooLarge"' in errs
    )
    assert (
        'spec.validations[0].message: Invalid value: "a\\nb": message must not contain line breaks'
        in errs
    )
    assert any(
        e.startswith("spec.validations[1].expression: Invalid value") and "undefined field 'y'" in e
        for e in errs
    )
    assert (
        'spec.validations[1].messageExpression: Invalid value: "1": must evaluate to string '
        "but got int" in errs
    )
    plain = {**bad, "spec": {**bad["spec"], "validations": [{"expression": "object.spec.paused"}]}}
    assert (
        'spec.validations[0].expression: Invalid value: "object.spec.paused": must evaluate to '
        "bool but got dyn" in [str(e) for e in create_policy(plain)]
    )
    errs = [
        str(e)
        for e in create_binding(
            {"metadata": {"name": "b"}, "spec": {"paramRef": {"name": "x", "selector": {}}}}
        )
    ]
    assert "spec.policyName: Required value" in errs
    assert "spec.paramRef.name: Forbidden: name and selector are mutually exclusive" in errs
    assert (
        "spec.validationActions: Required value: at least one validation action is required" in errs
    )


def test_type_checking() -> None:
    spec = policy(
        "p",
        paramKind={"apiVersion": "v1", "kind": "ConfigMap"},
        validations=[
            {"expression": "object.spec.replicas > params.data.max"},
            {
                "expression": "object.spec.replicas > int(params.data.max)",
                "messageExpression": "object.spec.replicas",
            },
        ],
    )["spec"]
    kinds = kinds_to_check(spec, lambda g, v, r: [Kind(g, v, "Deployment")])
    assert kinds == [Kind("apps", "v1", "Deployment")]
    deployment_type = builtin_type(schemas(), "apps", "v1", "Deployment")
    params_type = builtin_type(schemas(), "", "v1", "ConfigMap")
    assert deployment_type is not None and params_type is not None
    warnings = type_check(spec, [(kinds[0], deployment_type)], params_type)
    assert [w["fieldRef"] for w in warnings] == ["spec.validations[0].expression"]
    assert (
        "found no matching overload for '_>_' applied to '(int, string)'" in warnings[0]["warning"]
    )
    # messageExpression results are not type-checked against string there (upstream's AnyType)
    assert compile_policy(spec).validations[1][1] is not None


def test_printers() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    p = policy(
        "p",
        paramKind={"apiVersion": "v1", "kind": "ConfigMap"},
        validations=[{"expression": "true"}],
    )
    table = ValidatingAdmissionPolicyStrategy(
        res(GROUP, "v1", "validatingadmissionpolicies")
    ).table([p], now=now, include_object="None")
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name",
        "Validations",
        "ParamKind",
        "Age",
    ]
    assert table["rows"][0]["cells"][:3] == ["p", 1, "v1/ConfigMap"]
    strategy = ValidatingAdmissionPolicyBindingStrategy(
        res(GROUP, "v1", "validatingadmissionpolicybindings")
    )
    rows = [
        binding("a", "p", ["Deny"]),
        binding("b", "p", ["Deny"], paramRef={"name": "x"}),
        binding("c", "p", ["Deny"], paramRef={"name": "x", "namespace": "n"}),
        binding(
            "d",
            "p",
            ["Deny"],
            paramRef={
                "selector": {
                    "matchExpressions": [{"key": "k", "operator": "In", "values": ["a", "b"]}]
                }
            },
        ),
    ]
    table = strategy.table(rows, now=now, include_object="None")
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name",
        "PolicyName",
        "ParamRef",
        "Age",
    ]
    assert [r["cells"][2] for r in table["rows"]] == [
        "<unset>",
        "*/x",
        "n/x",
        "&LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement"
        "{LabelSelectorRequirement{Key:k,Operator:In,Values:[a b],},},}",
    ]
