"""The virtual APIs of :mod:`pyk8s.apiserver.reviews`, in process.

An :class:`APIServer` over a SQLite store, served by aiohttp's test server, with static
bearer tokens for the callers. These cover what the kubectl integration tests cannot
reach easily: eviction's corner cases (dry run, several budgets, unready pods, the
v1beta1 body), TokenRequest bindings and a server without a PKI, rule resolution over
the authorizer seam, protobuf bodies, and validation messages.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from pyk8s.api import protobuf
from pyk8s.apiserver.authn import (
    AuthenticatorChain,
    ServiceAccountTokenAuthenticator,
    TokenFileAuthenticator,
    UserInfo,
)
from pyk8s.apiserver.authz import (
    AlwaysAllow,
    AlwaysAllowAuthenticated,
    AuthorizerChain,
    Decision,
    PrivilegedGroups,
    RequestAttributes,
)
from pyk8s.apiserver.certs import Pki, ensure_pki
from pyk8s.apiserver.reviews import ALL_RULES, ResourceRule, Rules, rules_for
from pyk8s.apiserver.server import APIServer, Config
from pyk8s.storage.sqlite import SqliteStore

JSON = dict[str, Any]
ADMIN = {"Authorization": "Bearer admin-token"}
NS = "default"


@dataclass
class Cluster:
    client: TestClient[Any, Any]
    server: APIServer

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        resp = await self.client.request(
            method, path, json=body, data=data, headers={**ADMIN, **(headers or {})}
        )
        text = await resp.text()
        return resp.status, (json.loads(text) if text else None), dict(resp.headers)

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        status, out, _ = await self.call("POST", path, body)
        return status, out


async def _cluster(tmp_path: Path, pki: Pki | None) -> AsyncIterator[Cluster]:
    store = await SqliteStore.open(tmp_path / "state.db")
    tokens = {"admin-token": UserInfo("admin", uid="u-1", groups=("system:masters",))}
    authenticators: list[Any] = [TokenFileAuthenticator.from_tokens(tokens)]
    if pki is not None:
        authenticators.append(ServiceAccountTokenAuthenticator(pki))
    server = APIServer(
        store,
        authenticator=AuthenticatorChain(authenticators),
        config=Config(compact_interval=0),
        pki=pki,
    )
    await server.start()
    client = TestClient(TestServer(server.app))
    await client.start_server()
    try:
        yield Cluster(client, server)
    finally:
        await client.close()
        await server.stop()
        await store.close()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    pki = ensure_pki(tmp_path / "pki", hostnames=["pyk8s.test"], ips=["127.0.0.1"])
    async for c in _cluster(tmp_path, pki):
        yield c


@pytest.fixture
async def no_pki(tmp_path: Path) -> AsyncIterator[Cluster]:
    async for c in _cluster(tmp_path, None):
        yield c


def _claims(token: str) -> JSON:
    payload = token.split(".")[1]
    data: JSON = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return data


async def _pod(
    c: Cluster, name: str, labels: JSON, status: JSON | None = None, **spec: Any
) -> JSON:
    code, pod = await c.post(
        f"/api/v1/namespaces/{NS}/pods",
        {
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec},
        },
    )
    assert code == 201, pod
    if status is not None:
        code, pod, _ = await c.call(
            "PATCH",
            f"/api/v1/namespaces/{NS}/pods/{name}/status",
            data=json.dumps({"status": status}).encode(),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert code == 200, pod
    return pod


RUNNING_READY = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
RUNNING_UNREADY = {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}


async def _pdb(c: Cluster, name: str, labels: JSON, status: JSON, **spec: Any) -> None:
    code, out = await c.post(
        f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets",
        {"metadata": {"name": name}, "spec": {"selector": {"matchLabels": labels}, **spec}},
    )
    assert code == 201, out
    code, out, _ = await c.call(
        "PATCH",
        f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/{name}/status",
        data=json.dumps({"status": {"observedGeneration": 1, **status}}).encode(),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert code == 200, out


def _eviction(name: str, api_version: str = "policy/v1", **extra: Any) -> JSON:
    return {"apiVersion": api_version, "kind": "Eviction", "metadata": {"name": name}, **extra}


async def _evict(c: Cluster, name: str, body: JSON | None = None, query: str = "") -> Any:
    return await c.call(
        "POST", f"/api/v1/namespaces/{NS}/pods/{name}/eviction{query}", body or _eviction(name)
    )


async def _exists(c: Cluster, name: str) -> bool:
    code, _, _ = await c.call("GET", f"/api/v1/namespaces/{NS}/pods/{name}")
    return code == 200


# --------------------------------------------------------------------------- eviction


async def test_eviction_dry_run_changes_nothing(cluster: Cluster) -> None:
    await _pod(cluster, "p", {"app": "a"}, RUNNING_READY)
    await _pdb(cluster, "budget", {"app": "a"}, {"disruptionsAllowed": 1})
    code, status, _ = await _evict(cluster, "p", query="?dryRun=All")
    assert code == 201 and status["status"] == "Success"
    assert await _exists(cluster, "p")
    _, pdb, _ = await cluster.call(
        "GET", f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/budget"
    )
    assert pdb["status"]["disruptionsAllowed"] == 1 and "disruptedPods" not in pdb["status"]
    _, pod, _ = await cluster.call("GET", f"/api/v1/namespaces/{NS}/pods/p")
    assert not any(c["type"] == "DisruptionTarget" for c in pod["status"]["conditions"])

    # the dry run also rides in deleteOptions; a different one in the query is an error
    body = _eviction("p", deleteOptions={"dryRun": ["All"]})
    code, _, _ = await _evict(cluster, "p", body)
    assert code == 201 and await _exists(cluster, "p")


async def test_eviction_bad_requests(cluster: Cluster) -> None:
    await _pod(cluster, "p", {"app": "a"})
    code, status, _ = await _evict(cluster, "p", _eviction("other"))
    assert code == 400
    assert status["message"] == "name in URL does not match name in Eviction object"
    code, status, _ = await _evict(cluster, "p", {"apiVersion": "v1", "kind": "Pod"})
    assert code == 400
    code, status, _ = await cluster.call("GET", f"/api/v1/namespaces/{NS}/pods/p/eviction")
    assert code == 405
    code, status, _ = await _evict(cluster, "missing")
    assert code == 404 and status["message"] == 'pods "missing" not found'


async def test_eviction_accepts_v1beta1_and_protobuf(cluster: Cluster) -> None:
    await _pod(cluster, "old", {"app": "a"})
    code, _, _ = await _evict(cluster, "old", _eviction("old", "policy/v1beta1"))
    assert code == 201 and not await _exists(cluster, "old")

    await _pod(cluster, "pb", {"app": "a"})
    body = protobuf.encode_object(
        {
            "apiVersion": "policy/v1beta1",
            "kind": "Eviction",
            "metadata": {"name": "pb", "namespace": NS},
            "deleteOptions": {"gracePeriodSeconds": 0},
        }
    )
    code, out, _ = await cluster.call(
        "POST",
        f"/api/v1/namespaces/{NS}/pods/pb/eviction",
        data=body,
        headers={"Content-Type": protobuf.MEDIA_TYPE},
    )
    assert code == 201, out
    assert not await _exists(cluster, "pb")


async def test_eviction_with_two_budgets_fails(cluster: Cluster) -> None:
    await _pod(cluster, "p", {"app": "a", "tier": "x"}, RUNNING_READY)
    await _pdb(cluster, "one", {"app": "a"}, {"disruptionsAllowed": 1})
    await _pdb(cluster, "two", {"tier": "x"}, {"disruptionsAllowed": 1})
    code, status, _ = await _evict(cluster, "p")
    assert code == 500
    assert status["message"] == (
        "This pod has more than one PodDisruptionBudget, which the eviction subresource "
        "does not support."
    )
    assert await _exists(cluster, "p")


async def test_unready_pod_with_healthy_budget_is_evicted(cluster: Cluster) -> None:
    # the application has its desired healthy pods: the unready one costs nothing
    await _pod(cluster, "sick", {"app": "a"}, RUNNING_UNREADY)
    await _pdb(
        cluster,
        "budget",
        {"app": "a"},
        {"disruptionsAllowed": 0, "currentHealthy": 2, "desiredHealthy": 2},
    )
    code, _, _ = await _evict(cluster, "sick")
    assert code == 201 and not await _exists(cluster, "sick")

    # not enough healthy pods: the budget decides (429)
    await _pod(cluster, "sick2", {"app": "b"}, RUNNING_UNREADY)
    await _pdb(
        cluster,
        "tight",
        {"app": "b"},
        {"disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 2},
    )
    code, status, headers = await _evict(cluster, "sick2")
    assert code == 429 and "Retry-After" not in headers
    assert status["details"]["causes"][0]["message"] == (
        "The disruption budget tight needs 2 healthy pods and has 1 currently"
    )

    # unless the budget says unhealthy pods may always go
    await _pod(cluster, "sick3", {"app": "c"}, RUNNING_UNREADY)
    await _pdb(
        cluster,
        "lenient",
        {"app": "c"},
        {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 1},
        unhealthyPodEvictionPolicy="AlwaysAllow",
    )
    code, _, _ = await _evict(cluster, "sick3")
    assert code == 201 and not await _exists(cluster, "sick3")


async def test_bound_pod_is_deleted_gracefully_and_marked(cluster: Cluster) -> None:
    await _pod(cluster, "bound", {"app": "a"}, RUNNING_READY, nodeName="n1")
    code, _, _ = await _evict(cluster, "bound")
    assert code == 201
    _, pod, _ = await cluster.call("GET", f"/api/v1/namespaces/{NS}/pods/bound")
    assert pod["metadata"]["deletionTimestamp"]
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 30
    [target] = [c for c in pod["status"]["conditions"] if c["type"] == "DisruptionTarget"]
    assert target["status"] == "True" and target["reason"] == "EvictionByEvictionAPI"
    assert target["message"] == "Eviction API: evicting"


async def test_eviction_resource_version_precondition(cluster: Cluster) -> None:
    pod = await _pod(cluster, "p", {"app": "a"})
    stale = {"preconditions": {"resourceVersion": "1"}}
    code, status, _ = await _evict(cluster, "p", _eviction("p", deleteOptions=stale))
    assert code == 409
    assert "does not match the ResourceVersion in record" in status["message"]
    rv = pod["metadata"]["resourceVersion"]
    fresh = {"preconditions": {"resourceVersion": rv}}
    code, _, _ = await _evict(cluster, "p", _eviction("p", deleteOptions=fresh))
    assert code == 201 and not await _exists(cluster, "p")


# --------------------------------------------------------------------------- TokenRequest


async def test_token_request_without_pki_is_unavailable(no_pki: Cluster) -> None:
    await no_pki.post(f"/api/v1/namespaces/{NS}/serviceaccounts", {"metadata": {"name": "sa"}})
    code, status = await no_pki.post(f"/api/v1/namespaces/{NS}/serviceaccounts/sa/token", {})
    assert code == 503 and "without a service-account signing key" in status["message"]


async def test_token_request_bindings(cluster: Cluster) -> None:
    await cluster.post(f"/api/v1/namespaces/{NS}/serviceaccounts", {"metadata": {"name": "sa"}})
    code, node = await cluster.post("/api/v1/nodes", {"metadata": {"name": "n1"}})
    assert code == 201, node
    pod = await _pod(cluster, "web", {"app": "a"}, serviceAccountName="sa", nodeName="n1")
    path = f"/api/v1/namespaces/{NS}/serviceaccounts/sa/token"

    def bound(kind: str, name: str, uid: str = "") -> JSON:
        ref = {"apiVersion": "v1", "kind": kind, "name": name, "uid": uid}
        return {"spec": {"boundObjectRef": ref, "expirationSeconds": 600}}

    code, req = await cluster.post(path, bound("Pod", "web"))
    assert code == 201, req
    claims = _claims(req["status"]["token"])["kubernetes.io"]
    assert claims["pod"] == {"name": "web", "uid": pod["metadata"]["uid"]}
    assert claims["node"] == {"name": "n1", "uid": node["metadata"]["uid"]}
    assert req["spec"]["expirationSeconds"] == 600

    code, req = await cluster.post(path, bound("Node", "n1"))
    assert code == 201 and _claims(req["status"]["token"])["kubernetes.io"]["node"]["name"] == "n1"

    code, status = await cluster.post(path, bound("Pod", "web", "wrong"))
    assert code == 409
    assert status["message"] == (
        'Operation cannot be fulfilled on Pod "web": the UID in the bound object reference '
        "(wrong) does not match the UID in record. The object might have been deleted and "
        "then recreated"
    )
    await _pod(cluster, "other", {"app": "b"})  # runs as "default"
    code, status = await cluster.post(path, bound("Pod", "other"))
    assert code == 400 and "to pod running with different serviceaccount name" in status["message"]
    code, status = await cluster.post(path, bound("ConfigMap", "x"))
    assert code == 400
    assert status["message"] == "cannot bind token to object of type /v1, Kind=ConfigMap"
    code, status = await cluster.post(path, bound("Pod", "nope"))
    assert code == 404

    code, status = await cluster.post(path, {"metadata": {"name": "other"}})
    assert code == 422
    assert status["message"] == (
        'TokenRequest.authentication.k8s.io "sa" is invalid: metadata.name: Invalid value: '
        '"other": must match the service account name if specified'
    )


# --------------------------------------------------------------------------- reviews


async def test_reviews_from_protobuf(cluster: Cluster) -> None:
    """kubectl's typed clients post these kinds as protobuf."""
    bodies: list[tuple[str, JSON]] = [
        (
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "metadata": {"creationTimestamp": None},
                "spec": {
                    "resourceAttributes": {"namespace": NS, "verb": "create", "resource": "pods"}
                },
            },
        ),
        (
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectRulesReview",
                "spec": {"namespace": NS},
            },
        ),
        (
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        ),
    ]
    answers = []
    for path, obj in bodies:
        code, out, _ = await cluster.call(
            "POST",
            path,
            data=protobuf.encode_object(obj),
            headers={"Content-Type": protobuf.MEDIA_TYPE},
        )
        assert code == 201, out
        answers.append(out)
    ssar, rules, whoami = answers
    assert ssar["status"] == {"allowed": True}
    assert ssar["spec"]["resourceAttributes"]["resource"] == "pods"
    assert rules["status"] == ALL_RULES.status()
    assert rules["spec"] == {} and rules["metadata"] == {"creationTimestamp": None}
    assert whoami["status"]["userInfo"] == {
        "username": "admin",
        "uid": "u-1",
        "groups": ["system:masters", "system:authenticated"],
    }


async def test_access_review_validation(cluster: Cluster) -> None:
    path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    code, status = await cluster.post(
        path,
        {
            "metadata": {"name": "x"},
            "spec": {
                "resourceAttributes": {"verb": "get"},
                "nonResourceAttributes": {"path": "/", "verb": "get"},
            },
        },
    )
    assert code == 422
    assert status["message"].startswith(
        'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: ['
    )
    fields = [c["field"] for c in status["details"]["causes"]]
    assert fields == ["spec.nonResourceAttributes", "metadata"]

    local = "/apis/authorization.k8s.io/v1/namespaces/ns1/localsubjectaccessreviews"
    code, status = await cluster.post(
        local,
        {"metadata": {"namespace": "ns2"}, "spec": {"user": "u", "resourceAttributes": {}}},
    )
    assert code == 400
    code, status = await cluster.post(
        local,
        {"spec": {"user": "u", "resourceAttributes": {"namespace": "ns2", "verb": "get"}}},
    )
    assert code == 422
    assert status["details"]["causes"][0]["field"] == "spec.resourceAttributes.namespace"

    code, status = await cluster.post(
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", {"spec": {}}
    )
    assert code == 400 and status["message"] == "no namespace on request"
    code, status = await cluster.post("/apis/authentication.k8s.io/v1/tokenreviews", {"spec": {}})
    assert code == 400
    assert status["message"] == "token is required for TokenReview in authentication"


async def test_token_review_without_authenticator(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "s.db")
    server = APIServer(store, config=Config(compact_interval=0))
    await server.start()
    client = TestClient(TestServer(server.app))
    await client.start_server()
    try:
        resp = await client.post(
            "/apis/authentication.k8s.io/v1/tokenreviews", json={"spec": {"token": "x"}}
        )
        assert resp.status == 201
        assert (await resp.json())["status"] == {"user": {}}
    finally:
        await client.close()
        await server.stop()
        await store.close()


# --------------------------------------------------------------------------- rules


ALICE = UserInfo("alice", groups=("system:authenticated",))
ANON = UserInfo("system:anonymous", groups=("system:unauthenticated",))


async def test_rules_of_the_stand_in_authorizers() -> None:
    assert await rules_for(AlwaysAllow(), ANON, NS) == ALL_RULES
    assert await rules_for(AlwaysAllowAuthenticated(), ALICE, NS) == ALL_RULES
    assert await rules_for(AlwaysAllowAuthenticated(), ANON, NS) == Rules()
    assert await rules_for(PrivilegedGroups(), ALICE, NS) == Rules()
    # as upstream, system:masters' rules come from its RBAC binding, not from the
    # privileged-groups authorizer
    admin = UserInfo("root", groups=("system:masters",))
    assert await rules_for(PrivilegedGroups(), admin, NS) == Rules()


async def test_rules_union_resolvers_and_unknowns() -> None:
    class Reader:
        """What RBAC will look like: an authorizer that can list its rules."""

        async def authorize(self, user: UserInfo, attributes: RequestAttributes) -> Decision:
            return Decision.abstain()

        async def rules_for(self, user: UserInfo, namespace: str) -> Rules:
            return Rules((ResourceRule(("get", "list"), ("",), ("pods",)),))

    class Opaque:
        async def authorize(self, user: UserInfo, attributes: RequestAttributes) -> Decision:
            return Decision.abstain()

    rules = await rules_for(AuthorizerChain([Reader(), PrivilegedGroups(), Opaque()]), ALICE, NS)
    assert rules.resource_rules == (ResourceRule(("get", "list"), ("",), ("pods",)),)
    assert rules.incomplete
    assert rules.evaluation_error == "Opaque does not support user rule resolution"
    assert rules.status()["resourceRules"] == [
        {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}
    ]
