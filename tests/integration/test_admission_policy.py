"""ValidatingAdmissionPolicy as a user meets it: kubectl and the official Python client.

Policies are cluster-wide, so every policy here matches only its test's namespace (a
``namespaceSelector`` on ``kubernetes.io/metadata.name``). A policy takes effect once the
API server's watch cache has it: each test first waits until a server-side dry run of a
violating object is refused (the event that proves the plugin saw the binding).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Kubectl, Server, free_port

GROUP = "admissionregistration.k8s.io/v1"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def deployment(name: str, replicas: int, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }


def policy(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    constraints = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
        "resourceRules": [
            {
                "apiGroups": ["apps"],
                "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["deployments"],
            }
        ],
    }
    return {
        "apiVersion": GROUP,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {"matchConstraints": constraints, **spec},
    }


def binding(name: str, policy_name: str, actions: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": policy_name, "validationActions": actions, **spec},
    }


def apply(kubectl: Kubectl, *objs: dict[str, Any], ns: str | None = None) -> None:
    args = ["apply", "-f", "-"] + (["-n", ns] if ns else [])
    kubectl(*args, input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)}))


def create(kubectl: Kubectl, ns: str, obj: dict[str, Any], *extra: str) -> Any:
    return kubectl.run("create", "-n", ns, "-f", "-", *extra, input=json.dumps(obj), check=False)


def wait_until(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def wait_refused(kubectl: Kubectl, ns: str, obj: dict[str, Any], text: str) -> None:
    """Until a server-side dry run of ``obj`` is refused with ``text`` in the message."""

    def refused() -> bool:
        out = create(kubectl, ns, obj, "--dry-run=server")
        return out.returncode != 0 and text in out.stderr

    wait_until(refused, f"the policy refusing with {text!r}")


@pytest.fixture
def cleanup(kubectl: Kubectl) -> Any:
    made: list[tuple[str, str]] = []
    yield made
    for kind, name in made:
        kubectl("delete", kind, name, "--ignore-not-found", "--wait=false")


def install(
    kubectl: Kubectl, cleanup: list[tuple[str, str]], pol: dict[str, Any], bind: dict[str, Any]
) -> None:
    apply(kubectl, pol, bind)
    cleanup.append(("validatingadmissionpolicybinding", bind["metadata"]["name"]))
    cleanup.append(("validatingadmissionpolicy", pol["metadata"]["name"]))


def test_deny_replicas_over_five_as_kubectl_prints_it(
    kubectl: Kubectl, ns: str, cleanup: Any
) -> None:
    p, b = _name("max-replicas"), _name("max-replicas-binding")
    install(
        kubectl,
        cleanup,
        policy(p, ns, validations=[{"expression": "object.spec.replicas <= 5"}]),
        binding(b, p, ["Deny"]),
    )
    big = deployment("big", 6)
    wait_refused(kubectl, ns, big, "denied request")
    out = create(kubectl, ns, big)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f"The deployments \"big\" is invalid: : ValidatingAdmissionPolicy '{p}' with binding "
        f"'{b}' denied request: failed expression: object.spec.replicas <= 5"
    )
    assert create(kubectl, ns, deployment("small", 3)).returncode == 0
    # an update is checked too
    out = kubectl.run("scale", "-n", ns, "deployment/small", "--replicas=9", check=False)
    assert out.returncode != 0 and "denied request" in out.stderr


def test_defaults_and_columns(kubectl: Kubectl, ns: str, cleanup: Any) -> None:
    p, b = _name("cols"), _name("cols-binding")
    install(
        kubectl,
        cleanup,
        policy(
            p,
            ns,
            paramKind={"apiVersion": "v1", "kind": "ConfigMap"},
            validations=[{"expression": "true"}, {"expression": "1 < 2"}],
        ),
        binding(
            b,
            p,
            ["Deny"],
            paramRef={
                "selector": {"matchLabels": {"a": "b"}},
                "parameterNotFoundAction": "Allow",
            },
        ),
    )
    got = kubectl.json("get", "validatingadmissionpolicy", p)
    assert got["spec"]["failurePolicy"] == "Fail"
    constraints = got["spec"]["matchConstraints"]
    assert constraints["matchPolicy"] == "Equivalent"
    assert constraints["objectSelector"] == {}
    assert constraints["resourceRules"][0]["scope"] == "*"
    assert got["metadata"]["generation"] == 1
    lines = kubectl("get", "validatingadmissionpolicy", p).splitlines()
    assert lines[0].split() == ["NAME", "VALIDATIONS", "PARAMKIND", "AGE"]
    assert lines[1].split()[:3] == [p, "2", "v1/ConfigMap"]
    lines = kubectl("get", "validatingadmissionpolicybinding", b).splitlines()
    assert lines[0].split() == ["NAME", "POLICYNAME", "PARAMREF", "AGE"]
    assert lines[1].split()[:2] == [b, p]
    assert "&LabelSelector{MatchLabels:map[string]string{a: b,}" in lines[1]


def test_invalid_policies_and_bindings_are_refused(kubectl: Kubectl, ns: str) -> None:
    p = _name("bad")
    bad = policy(p, ns, validations=[{"expression": "object.spec.replicas <= ", "reason": "Nope"}])
    out = kubectl.run("create", "-f", "-", input=json.dumps(bad), check=False)
    assert out.returncode == 1
    assert f'The ValidatingAdmissionPolicy "{p}" is invalid' in out.stderr
    assert "spec.validations[0].expression: Invalid value" in out.stderr
    assert "compilation failed: ERROR: <input>:1:" in out.stderr
    assert 'spec.validations[0].reason: Unsupported value: "Nope"' in out.stderr
    wrong_type = policy(p, ns, validations=[{"expression": "request.nope == 1"}])
    out = kubectl.run("create", "-f", "-", input=json.dumps(wrong_type), check=False)
    assert "undefined field 'nope'" in out.stderr
    empty = policy(p, ns)
    out = kubectl.run("create", "-f", "-", input=json.dumps(empty), check=False)
    assert (
        "spec.validations: Required value: validations or auditAnnotations must contain at "
        "least one item" in out.stderr
    )
    bad_binding = binding(_name("b"), p, ["Deny", "Warn"], paramRef={"name": "x"})
    out = kubectl.run("create", "-f", "-", input=json.dumps(bad_binding), check=False)
    assert "spec.validationActions: Invalid value" in out.stderr
    assert "must not contain both Deny and Warn" in out.stderr
    assert "spec.paramRef.parameterNotFoundAction: Required value" in out.stderr


def test_params_from_a_config_map_with_message_expression(
    kubectl: Kubectl, ns: str, cleanup: Any
) -> None:
    p, b = _name("cm-params"), _name("cm-params-binding")
    kubectl("create", "configmap", "limits", "-n", ns, "--from-literal=maxReplicas=4")
    install(
        kubectl,
        cleanup,
        policy(
            p,
            ns,
            paramKind={"apiVersion": "v1", "kind": "ConfigMap"},
            validations=[
                {
                    "expression": "object.spec.replicas <= int(params.data.maxReplicas)",
                    "messageExpression": "'replicas must be at most ' + params.data.maxReplicas"
                    " + ', got ' + string(object.spec.replicas)",
                    "reason": "Forbidden",
                }
            ],
        ),
        binding(b, p, ["Deny"], paramRef={"name": "limits", "parameterNotFoundAction": "Deny"}),
    )
    wait_refused(kubectl, ns, deployment("five", 5), "replicas must be at most 4, got 5")
    assert create(kubectl, ns, deployment("four", 4)).returncode == 0


def test_params_from_a_custom_resource_by_selector(
    kubectl: Kubectl, api: Any, ns: str, cleanup: Any
) -> None:
    from kubernetes import client

    group = f"{uuid.uuid4().hex[:6]}.policy.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"replicalimits.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "plural": "replicalimits",
                "singular": "replicalimit",
                "kind": "ReplicaLimit",
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"maxReplicas": {"type": "integer"}},
                        }
                    },
                }
            ],
        },
    }
    apply(kubectl, crd)
    cleanup.append(("crd", crd["metadata"]["name"]))
    wait_until(
        lambda: kubectl.run("get", f"replicalimits.{group}", "-n", ns, check=False).returncode == 0,
        "the custom resource to be served",
    )
    limit = {
        "apiVersion": f"{group}/v1",
        "kind": "ReplicaLimit",
        "metadata": {"name": "tight", "labels": {"tier": "small"}},
        "maxReplicas": 2,
    }
    apply(kubectl, limit, ns=ns)
    p, b = _name("cr-params"), _name("cr-params-binding")
    install(
        kubectl,
        cleanup,
        policy(
            p,
            ns,
            paramKind={"apiVersion": f"{group}/v1", "kind": "ReplicaLimit"},
            validations=[
                {
                    "expression": "object.spec.replicas <= params.maxReplicas",
                    "messageExpression": "'at most ' + string(params.maxReplicas) + ' (' + "
                    "params.metadata.name + ')'",
                }
            ],
        ),
        binding(
            b,
            p,
            ["Deny"],
            paramRef={
                "selector": {"matchLabels": {"tier": "small"}},
                "parameterNotFoundAction": "Deny",
            },
        ),
    )
    wait_refused(kubectl, ns, deployment("three", 3), "at most 2 (tight)")
    # the official Python client sees the same refusal
    apps = client.AppsV1Api(api)
    with pytest.raises(client.ApiException) as err:
        apps.create_namespaced_deployment(ns, deployment("three", 3))
    assert err.value.status == 422
    body = json.loads(err.value.body)
    assert body["reason"] == "Invalid"
    assert body["message"] == (
        f"deployments.apps \"three\" is forbidden: ValidatingAdmissionPolicy '{p}' with "
        f"binding '{b}' denied request: at most 2 (tight)"
    )
    apps.create_namespaced_deployment(ns, deployment("two", 2))
    # no params selected, parameterNotFoundAction Deny: a configuration error
    kubectl("label", f"replicalimits.{group}", "tight", "-n", ns, "tier=large", "--overwrite")
    wait_refused(
        kubectl,
        ns,
        deployment("one", 1),
        "failed to configure binding: no params found for policy binding with `Deny` "
        "parameterNotFoundAction",
    )


def test_warn_and_audit_actions_admit(kubectl: Kubectl, ns: str, cleanup: Any) -> None:
    p, b = _name("warn"), _name("warn-binding")
    install(
        kubectl,
        cleanup,
        policy(
            p, ns, validations=[{"expression": "object.spec.replicas < 2", "message": "too many"}]
        ),
        binding(b, p, ["Warn", "Audit"]),
    )
    expected = (
        f"Warning: Validation failed for ValidatingAdmissionPolicy '{p}' with binding '{b}': "
        "too many"
    )

    def warned() -> bool:
        out = create(kubectl, ns, deployment("w", 3), "--dry-run=server")
        return out.returncode == 0 and expected in out.stderr

    wait_until(warned, "the warning")
    out = create(kubectl, ns, deployment("w", 3))
    assert out.returncode == 0
    assert expected in out.stderr.splitlines()


def test_variables_and_namespace_object(kubectl: Kubectl, ns: str, cleanup: Any) -> None:
    kubectl("label", "namespace", ns, "env=prod")
    p, b = _name("vars"), _name("vars-binding")
    install(
        kubectl,
        cleanup,
        policy(
            p,
            ns,
            variables=[
                {"name": "env", "expression": "namespaceObject.metadata.labels['env']"},
                {"name": "isProd", "expression": "variables.env == 'prod'"},
            ],
            validations=[
                {
                    "expression": "!variables.isProd || object.spec.replicas >= 2",
                    "messageExpression": "'namespace ' + namespaceObject.metadata.name + "
                    "' is ' + variables.env + ': need 2 replicas'",
                }
            ],
        ),
        binding(b, p, ["Deny"]),
    )
    wait_refused(kubectl, ns, deployment("one", 1), f"namespace {ns} is prod: need 2 replicas")
    assert create(kubectl, ns, deployment("two", 2)).returncode == 0


@pytest.mark.parametrize("failure_policy", ["Fail", "Ignore"])
def test_failure_policy_on_a_runtime_error(
    kubectl: Kubectl, ns: str, cleanup: Any, failure_policy: str
) -> None:
    p, b = _name("err"), _name("err-binding")
    install(
        kubectl,
        cleanup,
        policy(
            p,
            ns,
            failurePolicy=failure_policy,
            validations=[
                {"expression": "object.spec.nope == 1"},
                {"expression": "object.spec.replicas < 10"},
            ],
        ),
        binding(b, p, ["Deny"]),
    )
    # the second validation proves the policy is active under either failure policy
    wait_refused(kubectl, ns, deployment("many", 10), f"with binding '{b}' denied request")
    out = create(kubectl, ns, deployment("x", 1))
    if failure_policy == "Ignore":
        assert out.returncode == 0, out.stderr
    else:
        assert out.returncode == 1
        assert (
            f"ValidatingAdmissionPolicy '{p}' with binding '{b}' denied request: "
            "expression 'object.spec.nope == 1' resulted in error: no such key: nope"
        ) in out.stderr


def test_type_checking_warnings_in_status(kubectl: Kubectl, ns: str, cleanup: Any) -> None:
    p, b = _name("typed"), _name("typed-binding")
    install(
        kubectl,
        cleanup,
        policy(
            p,
            ns,
            validations=[
                {"expression": "object.spec.replicas > 'three'"},
                {"expression": "object.spec.replicas > 1"},
            ],
        ),
        binding(b, p, ["Audit"]),
    )

    def observed() -> bool:
        got = kubectl.json("get", "validatingadmissionpolicy", p)
        return (got.get("status") or {}).get("observedGeneration") == 1

    wait_until(observed, "the type checker's status")
    status = kubectl.json("get", "validatingadmissionpolicy", p)["status"]
    warnings = status["typeChecking"]["expressionWarnings"]
    assert [w["fieldRef"] for w in warnings] == ["spec.validations[0].expression"]
    assert warnings[0]["warning"].startswith(
        "apps/v1, Kind=Deployment: compilation failed: ERROR: <input>:1:22: found no "
        "matching overload for '_>_' applied to '(int, string)'"
    )


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kubectl, Path]]:
    """A server of its own that writes every request's metadata to an audit log."""
    base = tmp_path_factory.mktemp("policy-audit")
    policy_file = base / "audit-policy.yaml"
    policy_file.write_text(
        json.dumps(
            {
                "apiVersion": "audit.k8s.io/v1",
                "kind": "Policy",
                "omitStages": ["RequestReceived"],
                "rules": [{"level": "Metadata"}],
            }
        )
    )
    log = base / "audit.log"
    srv = Server(
        base / "data",
        free_port(),
        extra_args=(f"--audit-policy-file={policy_file}", f"--audit-log-path={log}"),
    ).start()
    try:
        yield Kubectl(srv.kubeconfig), log
    finally:
        srv.stop()


def _audit_events(log: Path, verb: str, resource: str, name: str) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    events = [json.loads(line) for line in log.read_text().splitlines()]
    return [
        e
        for e in events
        if e["verb"] == verb
        and e.get("objectRef", {}).get("resource") == resource
        and e.get("objectRef", {}).get("name") == name
        and e["stage"] == "ResponseComplete"
    ]


def test_audit_action_and_audit_annotations_reach_the_audit_log(
    audited: tuple[Kubectl, Path],
) -> None:
    kubectl, log = audited
    ns = _name("audit")
    kubectl("create", "namespace", ns)
    p, b = _name("audited"), _name("audited-binding")
    apply(
        kubectl,
        policy(
            p,
            ns,
            validations=[{"expression": "object.spec.replicas < 2", "message": "too many"}],
            auditAnnotations=[
                {"key": "replicas", "valueExpression": "'set to ' + string(object.spec.replicas)"}
            ],
        ),
        binding(b, p, ["Audit"]),
    )
    annotations: dict[str, str] = {}

    def annotated() -> bool:
        """Audit alone never refuses: each try creates a deployment and reads its event,
        annotated once the plugin has the binding."""
        name = _name("d")
        assert create(kubectl, ns, deployment(name, 3)).returncode == 0
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + 10
        while not events and time.monotonic() < deadline:
            events = _audit_events(log, "create", "deployments", name)
            time.sleep(0.05)
        got = events[0].get("annotations", {}) if events else {}
        annotations.update(got)
        return f"{p}/replicas" in got

    wait_until(annotated, "an audit event with the policy's annotations")
    assert annotations[f"{p}/replicas"] == "set to 3"
    assert json.loads(annotations["validation.policy.admission.k8s.io/validation_failure"]) == [
        {
            "message": "too many",
            "policy": p,
            "binding": b,
            "expressionIndex": 0,
            "validationActions": ["Audit"],
        }
    ]
