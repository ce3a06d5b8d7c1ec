"""The audit policy: upstream's rule matching (first match wins, users/groups/verbs/
resources/subresources/namespaces/non-resource URLs), stage omission, and the one-line
errors a bad policy file stops the server with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pyk8s.api.registry import REGISTRY
from pyk8s.apiserver.audit import AuditPolicyError, load_policy
from pyk8s.apiserver.audit.policy import Policy
from pyk8s.apiserver.authn import UserInfo
from pyk8s.apiserver.requestinfo import parse_request

ALICE = UserInfo("alice", groups=("devs", "system:authenticated"))
NODE = UserInfo("system:node:n1", groups=("system:nodes", "system:authenticated"))


def _policy(tmp_path: Path, doc: dict[str, Any]) -> Policy:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", **doc}))
    return load_policy(path)


def _level(policy: Policy, user: UserInfo, method: str, path: str, query: str = "") -> str:
    params = dict(p.split("=", 1) for p in query.split("&") if p)
    return policy.evaluate(user, parse_request(method, path, params, REGISTRY)).level


def test_first_matching_rule_decides(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path,
        {
            "omitStages": ["RequestReceived"],
            "rules": [
                {"level": "None", "userGroups": ["system:nodes"]},
                {"level": "None", "verbs": ["watch"]},
                {"level": "Metadata", "resources": [{"group": "", "resources": ["pods/log"]}]},
                {"level": "Request", "resources": [{"resources": ["secrets", "configmaps"]}]},
                {
                    "level": "RequestResponse",
                    "resources": [
                        {"group": "apps", "resources": ["deployments"], "resourceNames": ["web"]}
                    ],
                },
                {"level": "Metadata", "resources": [{"group": "", "resources": ["*/status"]}]},
                {"level": "Request", "namespaces": ["kube-system"]},
                {"level": "Metadata", "nonResourceURLs": ["/healthz*", "/version"]},
                {"level": "RequestResponse", "users": ["alice"], "omitStages": ["ResponseStarted"]},
            ],
        },
    )
    pods = "/api/v1/namespaces/default/pods"
    assert _level(policy, NODE, "GET", pods + "/p") == "None"
    assert _level(policy, ALICE, "GET", pods, "watch=true") == "None"
    assert _level(policy, ALICE, "GET", pods + "/p/log") == "Metadata"
    assert _level(policy, ALICE, "GET", "/api/v1/namespaces/default/secrets/s") == "Request"
    deployments = "/apis/apps/v1/namespaces/default/deployments"
    assert _level(policy, ALICE, "PUT", deployments + "/web") == "RequestResponse"
    assert _level(policy, ALICE, "PUT", pods + "/p/status") == "Metadata"
    assert _level(policy, ALICE, "GET", "/api/v1/namespaces/kube-system/pods/p") == "Request"
    assert _level(policy, ALICE, "GET", "/healthz/etcd") == "Metadata"
    assert _level(policy, ALICE, "GET", "/version") == "Metadata"
    last = policy.evaluate(ALICE, parse_request("GET", pods + "/p", {}, REGISTRY))
    assert last.level == "RequestResponse"
    assert last.omit_stages == {"RequestReceived", "ResponseStarted"}
    # nobody else matches anything: not audited
    assert _level(policy, UserInfo("bob"), "GET", pods + "/p") == "None"


def test_resource_wildcards_and_namespaces(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path,
        {
            "rules": [
                {"level": "Metadata", "resources": [{"group": "", "resources": ["pods/*"]}]},
                {"level": "Request", "namespaces": [""]},
            ]
        },
    )
    assert _level(policy, ALICE, "GET", "/api/v1/namespaces/d/pods/p") == "Metadata"
    assert _level(policy, ALICE, "GET", "/api/v1/namespaces/d/pods/p/exec") == "Metadata"
    assert _level(policy, ALICE, "GET", "/api/v1/nodes/n1") == "Request"  # cluster-scoped
    assert _level(policy, ALICE, "GET", "/api/v1/namespaces/d/services/s") == "None"
    assert _level(policy, ALICE, "GET", "/version") == "None"  # namespaces: resources only


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {"rules": [{"level": "Loud"}]},
            'rules[0].level: Unsupported value: "Loud": supported values: "None", "Metadata", '
            '"Request", "RequestResponse"',
        ),
        ({"rules": [{"verbs": ["get"]}]}, "rules[0].level: Required value"),
        (
            {"rules": [{"level": "Metadata", "nonResourceURLs": ["healthz"]}]},
            'rules[0].nonResourceURLs[0]: Invalid value: "healthz": non-resource URL rules '
            "must begin with a '/' character",
        ),
        (
            {"rules": [{"level": "None", "nonResourceURLs": ["/a"], "namespaces": ["x"]}]},
            'rules[0].nonResourceURLs: Invalid value: []string{"/a"}: rules cannot apply to '
            "both regular resources and non-resource URLs",
        ),
        (
            {"rules": [{"level": "None", "resources": [{"resourceNames": ["a"]}]}]},
            'rules[0].resources.resourceNames: Invalid value: []string{"a"}: using '
            "resourceNames requires at least one resource",
        ),
        (
            {"omitStages": ["Later"], "rules": [{"level": "None"}]},
            'omitStages[0]: Invalid value: "Later": allowed stages are RequestReceived,'
            "ResponseStarted,ResponseComplete,Panic",
        ),
        ({"rules": []}, "loaded illegal policy with 0 rules"),
    ],
)
def test_bad_policies_name_the_field_and_the_file(
    tmp_path: Path, doc: dict[str, Any], message: str
) -> None:
    with pytest.raises(AuditPolicyError) as err:
        _policy(tmp_path, doc)
    assert str(err.value) == f"{message}: from file {tmp_path / 'policy.yaml'}"


def test_wrong_version_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules: [{level: None}]\n")
    with pytest.raises(AuditPolicyError, match='no kind "Policy" is registered for version'):
        load_policy(path)
    with pytest.raises(AuditPolicyError, match="failed to read file path"):
        load_policy(tmp_path / "absent.yaml")
