"""The Node authorizer's graph and decisions, and NodeRestriction's label rule, without a
server: pods and volumes written to a store, the authorizer reading the watch cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyk8s.apiserver.admission.noderestriction import forbidden_labels
from pyk8s.apiserver.authn import UserInfo
from pyk8s.apiserver.authz import RequestAttributes
from pyk8s.apiserver.node import node_identity
from pyk8s.apiserver.node.authorizer import NodeAuthorizer
from pyk8s.apiserver.node.graph import (
    NODE,
    POD,
    SECRET,
    SERVICE_ACCOUNT,
    NodeGraph,
    pod_edges,
    pv_edges,
)
from pyk8s.apiserver.watchcache import WatchCache
from pyk8s.storage.sqlite import SqliteStore

NODE_A = UserInfo("system:node:a", groups=("system:nodes", "system:authenticated"))


def _pod(name: str, node: str, **spec: Any) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"nodeName": node, "containers": [{"name": "c"}], **spec},
    }


def test_node_identity() -> None:
    assert node_identity(NODE_A) == ("a", True)
    assert node_identity(UserInfo("system:node:a")) == ("", False)  # not in system:nodes
    assert node_identity(UserInfo("system:node:", groups=("system:nodes",))) == ("", True)
    assert node_identity(UserInfo("system:node-join", groups=("system:nodes",))) == ("", False)


def test_pod_edges_follow_every_reference() -> None:
    pod = _pod(
        "p",
        "a",
        serviceAccountName="sa",
        imagePullSecrets=[{"name": "pull"}],
        initContainers=[{"name": "i", "envFrom": [{"secretRef": {"name": "env-s"}}]}],
        volumes=[
            {"name": "v", "projected": {"sources": [{"configMap": {"name": "proj-cm"}}]}},
            {"name": "csi", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi-s"}}},
            {"name": "claim", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
        ],
    )
    sources = {src for src, dst in pod_edges(pod) if dst == (POD, "ns", "p")}
    assert sources == {
        (SERVICE_ACCOUNT, "ns", "sa"),
        (SECRET, "ns", "pull"),
        (SECRET, "ns", "env-s"),
        (SECRET, "ns", "csi-s"),
        ("configmap", "ns", "proj-cm"),
        ("pvc", "ns", "data"),
        ("pvc", "ns", "p-scratch"),
    }
    assert ((POD, "ns", "p"), (NODE, "", "a")) in pod_edges(pod)
    assert pod_edges(_pod("unbound", "")) == []


def test_a_mirror_pod_grants_nothing() -> None:
    pod = _pod("m", "a", volumes=[{"name": "s", "secret": {"secretName": "s"}}])
    pod["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "x"}
    assert pod_edges(pod) == [((POD, "ns", "m"), (NODE, "", "a"))]


def test_pv_edges() -> None:
    pv = {
        "metadata": {"name": "vol"},
        "spec": {
            "claimRef": {"namespace": "ns", "name": "data"},
            "csi": {"driver": "d", "nodeStageSecretRef": {"name": "stage", "namespace": "ops"}},
        },
    }
    assert pv_edges(pv) == [
        (("pv", "", "vol"), ("pvc", "ns", "data")),
        ((SECRET, "ops", "stage"), ("pv", "", "vol")),
    ]
    assert pv_edges({"metadata": {"name": "free"}, "spec": {}}) == []


def get(resource: str, name: str, ns: str = "ns", **kw: Any) -> RequestAttributes:
    return RequestAttributes(verb="get", resource=resource, namespace=ns, name=name, **kw)


@pytest.fixture
async def store_and_authorizer(tmp_path: Path) -> Any:
    store = await SqliteStore.open(tmp_path / "s.db")
    cache = WatchCache(store)
    await cache.start()
    try:
        yield store, cache, NodeAuthorizer(cache)
    finally:
        await cache.stop()
        await store.close()


async def test_secrets_through_pods_and_volumes(store_and_authorizer: Any) -> None:
    store, cache, authorizer = store_and_authorizer

    async def put(key: str, obj: dict[str, Any]) -> None:
        kv = await store.create(key, orjson.dumps(obj))
        await cache.wait_for(kv.mod_revision)

    secret_b = get("secrets", "b-secret")
    assert (await authorizer.authorize(NODE_A, secret_b)).reason == (
        "no relationship found between node 'a' and this object"
    )
    await put("/registry/core/pods/ns/pb", _pod("pb", "b", volumes=[_secret_volume("b-secret")]))
    assert not (await authorizer.authorize(NODE_A, secret_b)).allowed
    await put(
        "/registry/core/pods/ns/pa",
        _pod("pa", "a", volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]),
    )
    pv = {
        "metadata": {"name": "vol"},
        "spec": {
            "claimRef": {"namespace": "ns", "name": "data"},
            "rbd": {"secretRef": {"name": "ceph"}},
        },
    }
    await put("/registry/core/persistentvolumes/vol", pv)
    # node <- pod <- pvc <- pv <- secret
    for attrs in (
        get("persistentvolumeclaims", "data"),
        get("persistentvolumes", "vol", ns=""),
        get("secrets", "ceph"),
    ):
        assert (await authorizer.authorize(NODE_A, attrs)).allowed, attrs
    # only get for volumes; lists need a name
    listed = RequestAttributes(verb="list", resource="persistentvolumes")
    assert (await authorizer.authorize(NODE_A, listed)).reason == (
        "can only get individual resources of this type"
    )
    kv = await store.delete("/registry/core/pods/ns/pa")
    await cache.wait_for(kv.mod_revision)
    assert not (await authorizer.authorize(NODE_A, get("secrets", "ceph"))).allowed


def _secret_volume(name: str) -> dict[str, Any]:
    return {"name": name, "secret": {"secretName": name}}


async def test_everything_else_falls_to_the_node_rules(store_and_authorizer: Any) -> None:
    _, _, authorizer = store_and_authorizer
    events = RequestAttributes(verb="create", resource="events", namespace="ns")
    assert (await authorizer.authorize(NODE_A, events)).allowed
    deployments = RequestAttributes(verb="list", api_group="apps", resource="deployments")
    decision = await authorizer.authorize(NODE_A, deployments)
    assert not decision.allowed and decision.no_opinion
    # not a node: no opinion, whatever the request
    alice = UserInfo("alice", groups=("system:authenticated",))
    assert (await authorizer.authorize(alice, events)).no_opinion
    unknown = UserInfo("system:node:", groups=("system:nodes",))
    assert (await authorizer.authorize(unknown, events)).reason == (
        'unknown node for user "system:node:"'
    )
    token = RequestAttributes(
        verb="create", resource="serviceaccounts", subresource="token", namespace="ns", name="sa"
    )
    assert (await authorizer.authorize(NODE_A, token)).reason == (
        "no relationship found between node 'a' and this object"
    )
    lease = RequestAttributes(
        verb="update", api_group="coordination.k8s.io", resource="leases", namespace="ns"
    )
    assert (await authorizer.authorize(NODE_A, lease)).reason == (
        'can only access leases in the "kube-node-lease" system namespace'
    )


async def test_a_node_reads_and_watches_one_volume_attachment(store_and_authorizer: Any) -> None:
    _, _, authorizer = store_and_authorizer

    def va(verb: str, name: str = "", **kw: Any) -> RequestAttributes:
        return RequestAttributes(
            verb=verb, api_group="storage.k8s.io", resource="volumeattachments", name=name, **kw
        )

    for verb in ("get", "list", "watch"):  # the kubelet's attach wait watches the one
        assert (await authorizer.authorize(NODE_A, va(verb, "csi-123"))).allowed, verb
    assert (await authorizer.authorize(NODE_A, va("list"))).reason == "No Object name found"
    for denied in (va("delete", "csi-123"), va("patch", "csi-123", subresource="status")):
        assert (await authorizer.authorize(NODE_A, denied)).reason == (
            "can only get individual resources of this type"
        )


def test_forbidden_labels() -> None:
    old = {"kubernetes.io/hostname": "a"}
    new = {
        "kubernetes.io/hostname": "a2",  # the kubelet's own
        "node.kubernetes.io/instance-type": "m",  # a kubelet namespace
        "example.com/rack": "r1",  # not kubernetes'
        "node-role.kubernetes.io/control-plane": "",  # kubernetes', not the kubelet's
        "x.node-restriction.kubernetes.io/pool": "p",  # restricted
    }
    assert forbidden_labels(new, old) == [
        "node-role.kubernetes.io/control-plane",
        "x.node-restriction.kubernetes.io/pool",
    ]
    assert forbidden_labels({}, {"k8s.io/removed": "x"}) == ["k8s.io/removed"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 5),  # pod
            st.sampled_from(["a", "b", "c"]),  # its node
            st.sets(st.sampled_from(["s1", "s2", "s3", "s4"]), max_size=3),  # its secrets
            st.booleans(),  # deleted afterwards
        ),
        max_size=12,
    )
)
def test_the_index_agrees_with_the_pods(
    ops: list[tuple[int, str, set[str], bool]],
) -> None:
    """Whatever pods come, change and go, a secret reaches exactly the nodes of the live
    pods that mount it (the destination index and the walk agree with the pods)."""
    graph = NodeGraph(cast(WatchCache, None))
    live: dict[int, tuple[str, set[str]]] = {}
    for pod, node, secrets, deleted in ops:
        key = f"/registry/core/pods/ns/p{pod}"
        if deleted:
            graph.put(key, None)
            live.pop(pod, None)
            continue
        volumes = [_secret_volume(s) for s in sorted(secrets)]
        graph.put(key, _pod(f"p{pod}", node, volumes=volumes))
        live[pod] = (node, secrets)
    for secret in ("s1", "s2", "s3", "s4"):
        for node in ("a", "b", "c"):
            expected = any(n == node and secret in s for n, s in live.values())
            assert graph.reaches((SECRET, "ns", secret), node) == expected
