"""The create-only APIs kubectl users hit, end to end against a real server.

``kubectl auth can-i`` / ``whoami``, ``kubectl create token`` (and the token then
authenticating), TokenReview and the access reviews through the official Python client,
pod eviction with PodDisruptionBudgets (the Python client and ``kubectl drain``), and the
discovery entries of the review resources -- checked with the clients users run, since
kubectl posts most of these bodies as protobuf.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.integration.conftest import Kubectl, RawClient, Server

BUDGET_MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return data


def _bearer_get(server: Server, path: str, token: str) -> tuple[int, Any]:
    ctx = ssl.create_default_context(cafile=str(server.data_dir / "server" / "tls" / "ca.crt"))
    req = urllib.request.Request(server.url + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _service_account(kubectl: Kubectl, ns: str, name: str = "default") -> None:
    # nothing in a bare API server makes the "default" service account: create it
    kubectl("create", "serviceaccount", name, "-n", ns)


# --------------------------------------------------------------------------- can-i, whoami


def test_can_i_create_pods(kubectl: Kubectl, ns: str) -> None:
    assert kubectl("auth", "can-i", "create", "pods") == "yes\n"
    assert kubectl("auth", "can-i", "delete", "deployments.apps", "-n", ns) == "yes\n"
    assert kubectl("auth", "can-i", "get", "/healthz") == "yes\n"


def test_can_i_list(kubectl: Kubectl, ns: str) -> None:
    out = kubectl("auth", "can-i", "--list", "-n", ns)
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    assert ["*.*", "[]", "[]", "[*]"] in lines  # what upstream's AlwaysAllow resolves to
    assert ["[*]", "[]", "[*]"] in lines


def test_whoami_admin(kubectl: Kubectl) -> None:
    review = kubectl.json("auth", "whoami")
    assert review["kind"] == "SelfSubjectReview"
    assert review["apiVersion"] == "authentication.k8s.io/v1"
    info = review["status"]["userInfo"]
    assert info["username"] == "system:admin"
    assert "system:masters" in info["groups"]
    assert "system:authenticated" in info["groups"]
    assert review["metadata"]["creationTimestamp"]
    table = kubectl("auth", "whoami")
    assert "system:admin" in table and "system:masters" in table


# --------------------------------------------------------------------------- tokens


def test_create_token_authenticates(
    kubectl: Kubectl, server: Server, ns: str, tmp_path: Path
) -> None:
    _service_account(kubectl, ns)
    token = kubectl("create", "token", "default", "-n", ns).strip()
    assert token.count(".") == 2
    claims = _claims(token)
    assert claims["sub"] == f"system:serviceaccount:{ns}:default"
    assert claims["exp"] - claims["iat"] == 3600  # upstream's default expirationSeconds

    as_sa = Kubectl(server.token_kubeconfig(token, tmp_path / "sa.kubeconfig"))
    info = as_sa.json("auth", "whoami")["status"]["userInfo"]
    assert info["username"] == f"system:serviceaccount:{ns}:default"
    assert info["groups"] == [
        "system:serviceaccounts",
        f"system:serviceaccounts:{ns}",
        "system:authenticated",
    ]
    assert json.loads(as_sa("get", "--raw", "/api"))["kind"] == "APIVersions"

    # authenticated, but RBAC grants a bare service account nothing in its namespace
    status, body = _bearer_get(server, "/api/v1/namespaces/" + ns + "/serviceaccounts", token)
    assert status == 403 and body["reason"] == "Forbidden"
    assert body["message"] == (
        f'serviceaccounts is forbidden: User "system:serviceaccount:{ns}:default" cannot '
        f'list resource "serviceaccounts" in API group "" in the namespace "{ns}"'
    )
    status, body = _bearer_get(server, "/api", token[:-4] + "AAAA")
    assert status == 401 and body["reason"] == "Unauthorized"


def test_create_token_options_and_errors(kubectl: Kubectl, ns: str) -> None:
    _service_account(kubectl, ns, "builder")
    req = kubectl.json("create", "token", "builder", "-n", ns, "--duration=2h", "--audience=vault")
    assert req["kind"] == "TokenRequest"
    assert req["metadata"]["name"] == "builder" and req["metadata"]["namespace"] == ns
    assert req["spec"]["expirationSeconds"] == 7200
    assert req["spec"]["audiences"] == ["vault"]
    assert req["status"]["expirationTimestamp"]
    assert _claims(req["status"]["token"])["aud"] == ["vault"]

    missing = kubectl.run("create", "token", "nope", "-n", ns, check=False)
    assert missing.returncode != 0
    assert 'serviceaccounts "nope" not found' in missing.stderr

    short = kubectl.run("create", "token", "builder", "-n", ns, "--duration=1m", check=False)
    assert short.returncode != 0
    assert (
        'TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: '
        "Invalid value: 60: may not specify a duration less than 10 minutes"
    ) in short.stderr


def test_pod_bound_token(kubectl: Kubectl, api: Any, ns: str) -> None:
    _service_account(kubectl, ns)
    core = client.CoreV1Api(api)
    pod = core.create_namespaced_pod(
        ns, {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    )
    token = kubectl(
        "create", "token", "default", "-n", ns, "--bound-object-kind=Pod", "--bound-object-name=web"
    ).strip()
    assert _claims(token)["kubernetes.io"]["pod"] == {"name": "web", "uid": pod.metadata.uid}
    wrong = kubectl.run(
        "create",
        "token",
        "default",
        "-n",
        ns,
        "--bound-object-kind=Pod",
        "--bound-object-name=web",
        "--bound-object-uid=not-the-uid",
        check=False,
    )
    assert wrong.returncode != 0 and "does not match the UID in record" in wrong.stderr


def test_token_review(kubectl: Kubectl, api: Any, ns: str) -> None:
    _service_account(kubectl, ns)
    token = kubectl("create", "token", "default", "-n", ns).strip()
    authn = client.AuthenticationV1Api(api)
    review = authn.create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token))
    )
    assert review.status.authenticated is True
    assert review.status.user.username == f"system:serviceaccount:{ns}:default"
    assert review.status.audiences == ["https://kubernetes.default.svc.cluster.local"]

    bad = authn.create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token="not-a-token"))
    )
    assert not bad.status.authenticated
    assert bad.status.error == "invalid bearer token"

    vault = kubectl("create", "token", "default", "-n", ns, "--audience=vault").strip()
    for_vault = authn.create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token=vault, audiences=["vault"]))
    )
    assert for_vault.status.authenticated and for_vault.status.audiences == ["vault"]
    not_for_us = authn.create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token=vault))
    )
    assert not not_for_us.status.authenticated


# --------------------------------------------------------------------------- access reviews


def test_access_reviews_python_client(api: Any, ns: str) -> None:
    authz = client.AuthorizationV1Api(api)
    own = authz.create_self_subject_access_review(
        client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    namespace=ns, verb="list", resource="secrets"
                )
            )
        )
    )
    assert own.status.allowed is True
    assert own.spec.resource_attributes.resource == "secrets"  # the spec comes back

    # as upstream, a SubjectAccessReview's groups are taken as given: RBAC grants bob
    # nothing (no opinion, so not "denied"), system:masters everything
    spec = {"user": "bob", "resourceAttributes": {"verb": "get", "resource": "pods"}}
    anon = authz.create_subject_access_review({"spec": spec})
    assert anon.status.allowed is False and not anon.status.denied
    member = authz.create_subject_access_review(
        {"spec": {**spec, "groups": ["system:authenticated"]}}
    )
    assert member.status.allowed is False
    master = authz.create_subject_access_review({"spec": {**spec, "groups": ["system:masters"]}})
    assert master.status.allowed is True

    local = authz.create_namespaced_local_subject_access_review(
        ns,
        {
            "spec": {
                "user": "bob",
                "groups": ["system:masters"],
                "resourceAttributes": {"namespace": ns, "verb": "get", "resource": "pods"},
            }
        },
    )
    assert local.status.allowed is True and local.metadata.namespace == ns

    rules = authz.create_self_subject_rules_review({"spec": {"namespace": ns}})
    assert rules.status.incomplete is False
    assert rules.status.resource_rules[0].verbs == ["*"]

    with pytest.raises(ApiException) as bad:
        authz.create_subject_access_review({"spec": {"resourceAttributes": {"verb": "get"}}})
    assert bad.value.status == 422
    assert (
        "at least one of user or group must be specified" in json.loads(bad.value.body)["message"]
    )


def test_reviews_are_not_stored(raw: RawClient) -> None:
    body = json.dumps(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"nonResourceAttributes": {"path": "/version", "verb": "get"}},
        }
    ).encode()
    created = raw("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body)
    assert created.status == 201
    assert created.json()["status"] == {"allowed": True}
    listing = raw("GET", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
    assert listing.status == 405 and listing.json()["reason"] == "MethodNotAllowed"
    named = raw("GET", "/apis/authentication.k8s.io/v1/tokenreviews/x")
    assert named.status == 405


def test_discovery_lists_reviews(kubectl: Kubectl) -> None:
    out = kubectl("api-resources", "-o", "wide", "--api-group=authorization.k8s.io")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert set(rows) == {
        "localsubjectaccessreviews",
        "selfsubjectaccessreviews",
        "selfsubjectrulesreviews",
        "subjectaccessreviews",
    }
    assert rows["localsubjectaccessreviews"][2] == "true"
    # NAME APIVERSION NAMESPACED KIND VERBS (no short names, no categories)
    assert all(len(r) == 5 and r[4] == "create" for r in rows.values())
    out = kubectl("api-resources", "-o", "name", "--api-group=authentication.k8s.io")
    assert out.split() == [
        "selfsubjectreviews.authentication.k8s.io",
        "tokenreviews.authentication.k8s.io",
    ]


# --------------------------------------------------------------------------- eviction


def _pod(core: client.CoreV1Api, ns: str, name: str, labels: dict[str, str]) -> Any:
    return core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        },
    )


def _running(core: client.CoreV1Api, ns: str, name: str) -> None:
    core.patch_namespaced_pod_status(
        name,
        ns,
        {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
    )


def _evict(core: client.CoreV1Api, ns: str, name: str) -> Any:
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=ns))
    return core.create_namespaced_pod_eviction(name, ns, body)


def test_evict_unbound_pod(api: Any, ns: str) -> None:
    core = client.CoreV1Api(api)
    _pod(core, ns, "lonely", {"app": "lonely"})
    _evict(core, ns, "lonely")
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_pod("lonely", ns)
    assert gone.value.status == 404
    with pytest.raises(ApiException) as again:
        _evict(core, ns, "lonely")
    assert again.value.status == 404


def test_eviction_respects_disruption_budget(api: Any, ns: str) -> None:
    core, policy = client.CoreV1Api(api), client.PolicyV1Api(api)
    _pod(core, ns, "guarded", {"app": "db"})
    _running(core, ns, "guarded")
    policy.create_namespaced_pod_disruption_budget(
        ns,
        {
            "metadata": {"name": "db"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}},
        },
    )

    # no status yet (observedGeneration < generation): "still being processed", retry in 10s
    with pytest.raises(ApiException) as pending:
        _evict(core, ns, "guarded")
    assert pending.value.status == 429
    assert pending.value.headers["Retry-After"] == "10"
    assert "is still being processed by the server" in pending.value.body

    policy.patch_namespaced_pod_disruption_budget_status(
        "db",
        ns,
        {
            "status": {
                "observedGeneration": 1,
                "disruptionsAllowed": 0,
                "currentHealthy": 1,
                "desiredHealthy": 1,
                "expectedPods": 1,
            }
        },
    )
    with pytest.raises(ApiException) as refused:
        _evict(core, ns, "guarded")
    assert refused.value.status == 429
    status = json.loads(refused.value.body)
    assert status["reason"] == "TooManyRequests"
    assert status["message"] == BUDGET_MESSAGE
    assert status["details"]["causes"] == [
        {
            "reason": "DisruptionBudget",
            "message": "The disruption budget db needs 1 healthy pods and has 1 currently",
        }
    ]
    assert core.read_namespaced_pod("guarded", ns).metadata.deletion_timestamp is None

    # a terminal pod disrupts nothing any more: deleted without asking the budget
    _pod(core, ns, "done", {"app": "db"})
    core.patch_namespaced_pod_status("done", ns, {"status": {"phase": "Succeeded"}})
    _evict(core, ns, "done")
    with pytest.raises(ApiException):
        core.read_namespaced_pod("done", ns)

    # one disruption allowed: the eviction takes it and records the pod
    policy.patch_namespaced_pod_disruption_budget_status(
        "db", ns, {"status": {"disruptionsAllowed": 1}}
    )
    _evict(core, ns, "guarded")
    with pytest.raises(ApiException):
        core.read_namespaced_pod("guarded", ns)
    pdb = policy.read_namespaced_pod_disruption_budget_status("db", ns)
    assert pdb.status.disruptions_allowed == 0
    assert set(pdb.status.disrupted_pods) == {"guarded"}
    [cond] = [c for c in pdb.status.conditions if c.type == "DisruptionAllowed"]
    assert cond.status == "False" and cond.reason == "InsufficientPods"


def test_kubectl_drain(kubectl: Kubectl, api: Any, ns: str) -> None:
    node = f"drain-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api)
    core.create_node({"metadata": {"name": node}})
    try:
        core.create_namespaced_pod(
            ns,
            {
                "metadata": {"name": "worker", "labels": {"app": "w"}},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
            },
        )
        out = kubectl("drain", node, "--force", "--grace-period=0", "--timeout=30s")
        assert f"node/{node} drained" in out
        assert "pod/worker evicted" in out
        assert kubectl("get", "pods", "-n", ns, "-o", "name") == ""
        assert core.read_node(node).spec.unschedulable is True
    finally:
        core.delete_node(node)
