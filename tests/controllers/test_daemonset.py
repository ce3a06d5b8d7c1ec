"""The DaemonSet controller against a real API server.

Nodes are plain Node objects created by the test (no kubelet); each test labels its own
nodes and selects them with the DaemonSet's nodeSelector, so nodes left by other tests
in the session do not count. No scheduler runs: pods stay pinned by node affinity.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from pyk8s.api.registry import REGISTRY
from pyk8s.client import ApiError, Client
from tests.controllers.conftest import eventually
from tests.controllers.podsim import set_running

PODS = REGISTRY.get("", "v1", "pods")
NODES = REGISTRY.get("", "v1", "nodes")
DS = REGISTRY.get("apps", "v1", "daemonsets")
REVISIONS = REGISTRY.get("apps", "v1", "controllerrevisions")
EVENTS = REGISTRY.get("", "v1", "events")
assert PODS and NODES and DS and REVISIONS and EVENTS

Obj = dict[str, Any]
NodeMaker = Callable[..., Awaitable[str]]


@pytest.fixture
async def make_node(client: Client, namespace: str) -> AsyncIterator[NodeMaker]:
    """Create a Ready node labelled for this test; every node is removed afterwards."""
    made: list[str] = []

    async def make(suffix: str, taints: list[Obj] | None = None) -> str:
        assert NODES is not None
        name = f"{namespace}-{suffix}"
        body: Obj = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"test": namespace}},
            "spec": {"taints": taints} if taints else {},
        }
        await client.create(NODES, body)
        made.append(name)
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        }
        await client.patch(
            NODES, name, {"status": status}, patch_type="merge", subresource="status"
        )
        return name

    yield make
    assert NODES is not None
    for name in made:
        with contextlib.suppress(ApiError):
            await client.delete(NODES, name)


def daemonset(name: str, selector_value: str, image: str = "busybox:1", **spec: Any) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": {"test": selector_value},
                    "containers": [{"name": "c", "image": image}],
                },
            },
            **spec,
        },
    }


def pinned_node(pod: Obj) -> str:
    terms = pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    assert len(terms) == 1
    (field,) = terms[0]["matchFields"]
    assert (field["key"], field["operator"]) == ("metadata.name", "In")
    (node,) = field["values"]
    return str(node)


async def pods_by_node(client: Client, ns: str, app: str) -> dict[str, list[Obj]]:
    assert PODS is not None
    out = await client.list(PODS, ns, label_selector={"app": app})
    by: dict[str, list[Obj]] = {}
    for p in out["items"]:
        if not p["metadata"].get("deletionTimestamp"):
            by.setdefault(pinned_node(p), []).append(p)
    return by


async def on_nodes(client: Client, ns: str, app: str, nodes: set[str]) -> dict[str, list[Obj]]:
    by = await pods_by_node(client, ns, app)
    ok = set(by) == nodes and all(len(v) == 1 for v in by.values())
    return by if ok else {}


async def test_one_pod_per_node_pinned_by_node_affinity(
    client: Client, namespace: str, run_controllers: Any, make_node: NodeMaker
) -> None:
    assert DS is not None and EVENTS is not None and REVISIONS is not None
    n1 = await make_node("a")
    n2 = await make_node("b")
    await run_controllers("daemonset")
    await client.create(DS, daemonset("agent", namespace), namespace)

    by = await eventually(lambda: on_nodes(client, namespace, "agent", {n1, n2}), within=20)
    pod = by[n1][0]
    assert not pod["spec"].get("nodeName")  # the scheduler binds it, not the controller
    assert pod["metadata"]["generateName"] == "agent-"
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
    labels = pod["metadata"]["labels"]
    assert labels["pod-template-generation"] == "1"
    revs = await client.list(REVISIONS, namespace)
    (rev,) = revs["items"]
    assert rev["metadata"]["name"] == f"agent-{labels['controller-revision-hash']}"
    tolerations = {(t["key"], t["effect"]) for t in pod["spec"]["tolerations"]}
    assert {
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    } <= tolerations

    for i, pods in enumerate(by.values()):
        await set_running(client, pods[0], f"10.1.0.{i + 2}")

    async def status_ready() -> Obj | None:
        st: Obj = (await client.get(DS, "agent", namespace)).get("status") or {}
        return st if st.get("numberReady") == 2 else None

    st = await eventually(status_ready, within=20)
    assert st["desiredNumberScheduled"] == 2
    assert st["currentNumberScheduled"] == 2
    assert st["updatedNumberScheduled"] == 2
    assert st["numberAvailable"] == 2
    assert st["numberMisscheduled"] == 0
    assert st["observedGeneration"] == 1

    async def created_events() -> bool:
        evs = await client.list(EVENTS, namespace)
        created = [
            e
            for e in evs["items"]
            if e["reason"] == "SuccessfulCreate" and e["message"].startswith("Created pod: agent-")
        ]
        return len(created) == 2

    await eventually(created_events, within=20)


async def test_taints_new_nodes_and_removed_nodes(
    client: Client, namespace: str, run_controllers: Any, make_node: NodeMaker
) -> None:
    assert DS is not None and NODES is not None
    n1 = await make_node("a")
    tainted = await make_node(
        "gpu", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]
    )
    await run_controllers("daemonset")
    await client.create(DS, daemonset("logs", namespace), namespace)
    await eventually(lambda: on_nodes(client, namespace, "logs", {n1}), within=20)

    async def desired_is(n: int) -> bool:
        st: Obj = (await client.get(DS, "logs", namespace)).get("status") or {}
        return st.get("desiredNumberScheduled") == n and st.get("currentNumberScheduled") == n

    await eventually(lambda: desired_is(1), within=20)
    assert tainted not in await pods_by_node(client, namespace, "logs")

    # a new node gets a pod
    n2 = await make_node("b")
    await eventually(lambda: on_nodes(client, namespace, "logs", {n1, n2}), within=20)

    # a node that leaves loses its pod
    await client.delete(NODES, n1)
    await eventually(lambda: on_nodes(client, namespace, "logs", {n2}), within=20)
    await eventually(lambda: desired_is(1), within=20)


async def test_tolerated_taint_gets_a_pod(
    client: Client, namespace: str, run_controllers: Any, make_node: NodeMaker
) -> None:
    assert DS is not None
    tainted = await make_node(
        "gpu", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]
    )
    body = daemonset("gpu", namespace)
    body["spec"]["template"]["spec"]["tolerations"] = [
        {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
    ]
    await run_controllers("daemonset")
    await client.create(DS, body, namespace)
    await eventually(lambda: on_nodes(client, namespace, "gpu", {tainted}), within=20)


async def test_rolling_update_replaces_pods_within_max_unavailable(
    client: Client, namespace: str, run_controllers: Any, make_node: NodeMaker
) -> None:
    assert DS is not None
    nodes = {await make_node("a"), await make_node("b")}
    await run_controllers("daemonset")
    await client.create(DS, daemonset("roll", namespace), namespace)
    by = await eventually(lambda: on_nodes(client, namespace, "roll", nodes), within=20)
    for i, pods in enumerate(by.values()):
        await set_running(client, pods[0], f"10.2.0.{i + 2}")
    old_hash = next(iter(by.values()))[0]["metadata"]["labels"]["controller-revision-hash"]

    await client.patch(
        DS,
        "roll",
        {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}},
        namespace,
        patch_type="merge",
    )
    # maxUnavailable 1 (the default): one node is replaced at a time
    marked: set[str] = set()
    ip = 10

    async def rolled() -> bool:
        nonlocal ip
        by = await pods_by_node(client, namespace, "roll")
        old = sum(
            p["metadata"]["labels"]["controller-revision-hash"] == old_hash
            for pods in by.values()
            for p in pods
        )
        # never more than one node without a ready pod
        ready_nodes = sum(
            any((p.get("status") or {}).get("phase") == "Running" for p in pods)
            for pods in by.values()
        )
        assert ready_nodes >= len(nodes) - 1
        for pods in by.values():
            for p in pods:
                if p["metadata"]["name"] not in marked and p["status"].get("phase") != "Running":
                    ip += 1
                    await set_running(client, p, f"10.2.0.{ip}")
                    marked.add(p["metadata"]["name"])
        images = {p["spec"]["containers"][0]["image"] for pods in by.values() for p in pods}
        return old == 0 and images == {"busybox:2"} and set(by) == nodes

    await eventually(rolled, within=40)

    async def updated() -> bool:
        st: Obj = (await client.get(DS, "roll", namespace)).get("status") or {}
        return st.get("updatedNumberScheduled") == 2 and st.get("numberAvailable") == 2

    await eventually(updated, within=20)
