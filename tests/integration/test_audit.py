"""Audit logging end to end: kubectl as the client, the JSON-lines log as the record.

A real ``pyk8s apiserver`` with an audit policy (secrets at Metadata, configmaps at
RequestResponse, one user not audited, RequestReceived omitted): the log must say who
did what at the configured level, carry the objects only where the level allows, give a
watch its ResponseStarted and ResponseComplete, and hold every event once the server
stops on SIGTERM.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import Kubectl, Server, free_port

POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "None", "users": ["quiet"]},
        {
            "level": "Metadata",
            "verbs": ["watch"],
            "resources": [{"group": "", "resources": ["secrets"]}],
            "omitStages": ["ResponseStarted"],
        },
        {"level": "Metadata", "resources": [{"group": "", "resources": ["secrets"]}]},
        {"level": "RequestResponse", "resources": [{"group": "", "resources": ["configmaps"]}]},
        {"level": "Request", "resources": [{"group": "", "resources": ["serviceaccounts"]}]},
        {"level": "Metadata", "nonResourceURLs": ["/version"]},
        {"level": "Metadata", "resources": [{"group": "", "resources": ["pods"]}]},
    ],
}


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    base = tmp_path_factory.mktemp("audit")
    policy = base / "policy.yaml"
    policy.write_text(yaml.safe_dump(POLICY))
    tokens = base / "tokens.csv"
    tokens.write_text(
        'quiet-token,quiet,uid-quiet,"system:masters"\nloud-token,loud,uid-loud,"system:masters"\n'
    )
    log = base / "audit" / "audit.log"
    srv = Server(
        base / "data",
        free_port(),
        extra_args=(
            f"--audit-policy-file={policy}",
            f"--audit-log-path={log}",
            f"--token-auth-file={tokens}",
        ),
    ).start()
    try:
        yield srv, log
    finally:
        srv.stop()


def _events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def _wait_for(server: Server, log: Path, audit_id: str) -> list[dict[str, Any]]:
    """The events of one request, once its last stage is written: a request after it is
    queued behind it, so asking the server something and seeing that request's event
    proves the earlier ones were written."""
    k = Kubectl(server.kubeconfig)
    while True:
        marker = f"m-{uuid.uuid4().hex[:6]}"
        k("get", "configmap", marker, "--ignore-not-found")
        events = _events(log)
        if any(e.get("objectRef", {}).get("name") == marker for e in events):
            return [e for e in events if e["auditID"] == audit_id]


def _audit_id(events: list[dict[str, Any]], verb: str, resource: str, name: str) -> str:
    for e in events:
        ref = e.get("objectRef", {})
        if e["verb"] == verb and ref.get("resource") == resource and ref.get("name") == name:
            return str(e["auditID"])
    raise AssertionError(f"no {verb} {resource}/{name} in {events}")


def test_metadata_for_secrets_request_response_for_configmaps(audited: tuple[Server, Path]) -> None:
    server, log = audited
    k = Kubectl(server.kubeconfig)
    name = f"s-{uuid.uuid4().hex[:6]}"
    k("create", "secret", "generic", name, "--from-literal=password=hunter2-audit")
    k("create", "configmap", name, "--from-literal=color=blue")
    k("get", "configmap", name, "-o", "json")
    _wait_for(server, log, "")
    events = _events(log)
    secret_id = _audit_id(events, "create", "secrets", name)
    (secret,) = [e for e in events if e["auditID"] == secret_id]
    assert secret["kind"] == "Event" and secret["apiVersion"] == "audit.k8s.io/v1"
    assert secret["level"] == "Metadata" and secret["stage"] == "ResponseComplete"
    assert secret["user"]["username"] == "system:admin"
    assert "system:masters" in secret["user"]["groups"]
    assert secret["objectRef"] == {
        "resource": "secrets",
        "namespace": "default",
        "name": name,
        "apiVersion": "v1",
    }
    assert secret["responseStatus"] == {"metadata": {}, "code": 201}
    assert (
        secret["requestURI"]
        == "/api/v1/namespaces/default/secrets?fieldManager=kubectl-create&fieldValidation=Strict"
    )
    assert secret["userAgent"].startswith("kubectl/")
    assert secret["sourceIPs"] == ["127.0.0.1"]
    assert secret["annotations"]["authorization.k8s.io/decision"] == "allow"
    assert "requestObject" not in secret and "responseObject" not in secret
    assert "hunter2" not in log.read_text()
    assert secret["requestReceivedTimestamp"] <= secret["stageTimestamp"]

    create_id = _audit_id(events, "create", "configmaps", name)
    (create,) = [e for e in events if e["auditID"] == create_id]
    assert create["level"] == "RequestResponse"
    assert create["requestObject"]["data"] == {"color": "blue"}
    assert create["responseObject"]["metadata"]["name"] == name
    assert create["responseObject"]["metadata"]["uid"]
    get_id = _audit_id(events, "get", "configmaps", name)
    (get,) = [e for e in events if e["auditID"] == get_id]
    assert "requestObject" not in get
    assert get["responseObject"]["data"] == {"color": "blue"}
    assert get["responseStatus"] == {"metadata": {}, "code": 200}
    # the policy leaves out RequestReceived everywhere
    assert all(e["stage"] != "RequestReceived" for e in events)


def test_a_user_at_level_none_is_not_logged_and_errors_carry_their_status(
    audited: tuple[Server, Path], tmp_path: Path
) -> None:
    server, log = audited
    quiet = Kubectl(server.token_kubeconfig("quiet-token", tmp_path / "quiet.yaml"))
    loud = Kubectl(server.token_kubeconfig("loud-token", tmp_path / "loud.yaml"))
    name = f"q-{uuid.uuid4().hex[:6]}"
    quiet("create", "configmap", name, "--from-literal=a=b")
    out = loud.run("get", "configmap", name + "-missing", check=False)
    assert out.returncode == 1
    loud("get", "configmap", name)
    _wait_for(server, log, "")
    events = _events(log)
    assert not [e for e in events if e["user"]["username"] == "quiet"]
    missing_id = _audit_id(events, "get", "configmaps", name + "-missing")
    (missing,) = [e for e in events if e["auditID"] == missing_id]
    assert missing["user"] == {
        "username": "loud",
        "uid": "uid-loud",
        "groups": ["system:masters", "system:authenticated"],
    }
    assert missing["responseStatus"] == {
        "metadata": {},
        "status": "Failure",
        "message": f'configmaps "{name}-missing" not found',
        "reason": "NotFound",
        "details": {"name": f"{name}-missing", "kind": "configmaps"},
        "code": 404,
    }


def test_a_watch_has_response_started_and_complete_and_stages_can_be_omitted(
    audited: tuple[Server, Path],
) -> None:
    server, log = audited
    k = Kubectl(server.kubeconfig)
    k("get", "--raw", "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1")
    k("get", "--raw", "/api/v1/namespaces/default/secrets?watch=1&timeoutSeconds=1")
    k("version")
    _wait_for(server, log, "")
    events = _events(log)

    def watches(resource: str) -> list[dict[str, Any]]:
        return [
            e
            for e in events
            if e["verb"] == "watch"
            and e["objectRef"]["resource"] == resource
            and "timeoutSeconds=1" in e["requestURI"]
        ]

    configmaps = watches("configmaps")
    assert [e["stage"] for e in configmaps] == ["ResponseStarted", "ResponseComplete"]
    assert len({e["auditID"] for e in configmaps}) == 1
    assert all(e["responseStatus"] == {"metadata": {}, "code": 200} for e in configmaps)
    # the secrets watch rule leaves out ResponseStarted
    assert [e["stage"] for e in watches("secrets")] == ["ResponseComplete"]
    # a non-resource URL rule: the verb is the HTTP method, there is no objectRef
    versions = [e for e in events if e["requestURI"].startswith("/version")]
    assert versions
    assert all(e["verb"] == "get" and "objectRef" not in e for e in versions)
    assert all(e["user"]["username"] == "system:admin" for e in versions)


def test_request_level_logs_the_request_object_only(audited: tuple[Server, Path]) -> None:
    server, log = audited
    k = Kubectl(server.kubeconfig)
    name = f"sa-{uuid.uuid4().hex[:6]}"
    k("create", "serviceaccount", name)
    _wait_for(server, log, "")
    events = _events(log)
    (event,) = [
        e for e in events if e["auditID"] == _audit_id(events, "create", "serviceaccounts", name)
    ]
    assert event["level"] == "Request"
    assert event["requestObject"]["metadata"]["name"] == name
    assert "responseObject" not in event


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (
            {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "Everything"}]},
            'rules[0].level: Unsupported value: "Everything": supported values: "None", '
            '"Metadata", "Request", "RequestResponse"',
        ),
        (
            {
                "apiVersion": "audit.k8s.io/v1",
                "kind": "Policy",
                "rules": [{"level": "Metadata", "omitStages": ["Sometimes"]}],
            },
            'rules[0].omitStages[0]: Invalid value: "Sometimes": allowed stages are '
            "RequestReceived,ResponseStarted,ResponseComplete,Panic",
        ),
    ],
)
def test_a_malformed_policy_stops_the_apiserver(
    tmp_path: Path, policy: dict[str, Any], message: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pyk8s",
            "apiserver",
            "--data-dir",
            str(tmp_path / "data"),
            "--https-listen-port",
            str(free_port()),
            f"--audit-policy-file={path}",
            f"--audit-log-path={tmp_path / 'audit.log'}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [f"Error: {message}: from file {path}"]


def test_admission_audit_annotations_are_recorded(audited: tuple[Server, Path]) -> None:
    server, log = audited
    k = Kubectl(server.kubeconfig)
    ns = f"psa-{uuid.uuid4().hex[:6]}"
    k("create", "namespace", ns)
    k("label", "namespace", ns, "pod-security.kubernetes.io/audit=restricted")
    k("run", "web", "-n", ns, "--image=busybox", "--restart=Never")
    _wait_for(server, log, "")
    events = _events(log)
    (event,) = [e for e in events if e["auditID"] == _audit_id(events, "create", "pods", "web")]
    annotations = event["annotations"]
    assert annotations["pod-security.kubernetes.io/enforce-policy"] == "privileged:latest"
    assert annotations["pod-security.kubernetes.io/audit-violations"].startswith(
        'would violate PodSecurity "restricted:latest": '
    )
    assert annotations["authorization.k8s.io/decision"] == "allow"


def test_an_impersonated_request_names_both_users(audited: tuple[Server, Path]) -> None:
    server, log = audited
    k = Kubectl(server.kubeconfig)
    name = f"imp-{uuid.uuid4().hex[:6]}"
    k("create", "configmap", name, "--as=jane", "--as-group=system:masters")
    _wait_for(server, log, "")
    events = _events(log)
    (event,) = [
        e for e in events if e["auditID"] == _audit_id(events, "create", "configmaps", name)
    ]
    assert event["user"]["username"] == "system:admin"
    assert event["impersonatedUser"] == {
        "username": "jane",
        "groups": ["system:masters", "system:authenticated"],
    }


def test_a_failed_authentication_is_one_response_started_event(
    audited: tuple[Server, Path],
) -> None:
    import ssl
    import urllib.error
    import urllib.request

    server, log = audited
    namespace = f"unauth-{uuid.uuid4().hex[:6]}"
    ctx = ssl.create_default_context(cafile=str(server.data_dir / "server" / "tls" / "ca.crt"))
    request = urllib.request.Request(
        f"{server.url}/api/v1/namespaces/{namespace}/secrets",
        headers={"Authorization": "Bearer not-a-token"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, context=ctx, timeout=30)
    assert err.value.code == 401
    _wait_for(server, log, "")
    (event,) = [
        e for e in _events(log) if e["requestURI"] == f"/api/v1/namespaces/{namespace}/secrets"
    ]
    assert event["stage"] == "ResponseStarted"
    assert event["user"] == {}
    assert event["verb"] == "list"
    assert event["responseStatus"] == {
        "metadata": {},
        "message": "Authentication failed, attempted: bearer",
        "code": 401,
    }


def test_events_to_stdout_are_all_written_by_sigterm(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "audit.k8s.io/v1",
                "kind": "Policy",
                "rules": [{"level": "Metadata", "resources": [{"resources": ["configmaps"]}]}],
            }
        )
    )
    srv = Server(
        tmp_path / "data",
        free_port(),
        extra_args=(f"--audit-policy-file={policy}", "--audit-log-path=-"),
    ).start()
    try:
        k = Kubectl(srv.kubeconfig)
        for i in range(20):
            k("create", "configmap", f"c{i}")
    finally:
        assert srv.stop() == 0
    events = [
        json.loads(line)
        for line in (tmp_path / "data.log").read_text().splitlines()
        if line.startswith('{"kind":"Event"')
    ]
    created = [
        e["objectRef"]["name"]
        for e in events
        if e["verb"] == "create" and e["stage"] == "ResponseComplete"
    ]
    assert created == [f"c{i}" for i in range(20)]
    assert {e["stage"] for e in events} == {"RequestReceived", "ResponseComplete"}


def test_a_negative_rotation_flag_stops_the_apiserver(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pyk8s",
            "apiserver",
            "--data-dir",
            str(tmp_path / "data"),
            "--audit-log-maxbackup=-2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1
    assert out.stderr.strip() == "Error: --audit-log-maxbackup -2 can't be a negative number"
