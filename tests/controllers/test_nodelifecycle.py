"""Node lifecycle on simulated nodes: a node that stops renewing its lease goes
Ready=Unknown and gets the unreachable taints; pods leave after their tolerationSeconds;
a node that comes back loses the taints."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import Client
from pyk8s.controllers import nodelifecycle
from pyk8s.controllers.runtime import Manager
from pyk8s.kubelet.simulated import SimulatedNodes
from tests.controllers.conftest import eventually

NODES: Resource = REGISTRY.get("", "v1", "nodes")  # type: ignore[assignment]
PODS: Resource = REGISTRY.get("", "v1", "pods")  # type: ignore[assignment]

UNREACHABLE = "node.kubernetes.io/unreachable"


@pytest.fixture
async def sim(client: Client) -> AsyncIterator[SimulatedNodes]:
    s = SimulatedNodes(
        client, count=2, name_prefix=f"nlc-{uuid.uuid4().hex[:6]}-", renew_interval=0.5
    )
    await s.start()
    try:
        yield s
    finally:
        await s.stop()
        for name in s.nodes:
            await client.delete(NODES, name)


def pod(name: str, namespace: str, tolerations: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "tolerations": tolerations,
            "containers": [{"name": "app", "image": "busybox:1.36"}],
        },
    }


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == ctype)


async def test_silent_node_goes_unknown_is_tainted_and_pods_evicted(
    client: Client,
    namespace: str,
    sim: SimulatedNodes,
    run_controllers: Callable[..., Awaitable[Manager]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(nodelifecycle, "NODE_MONITOR_GRACE_PERIOD", 3.0)
    monkeypatch.setattr(nodelifecycle, "NODE_MONITOR_PERIOD", 0.5)
    await run_controllers("nodelifecycle")
    dead, alive = list(sim.nodes)
    short = [
        {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}
    ]
    await client.create(PODS, pod("short", namespace, short))
    await client.create(PODS, pod("default", namespace, []))
    await client.create(PODS, pod("elsewhere", namespace, short))
    await client.bind(namespace, "short", dead)
    await client.bind(namespace, "default", dead)
    await client.bind(namespace, "elsewhere", alive)

    async def all_running() -> bool:
        for name in ("short", "default", "elsewhere"):
            p = await client.get(PODS, name, namespace)
            if p["status"].get("phase") != "Running":
                return False
        return True

    await eventually(all_running, within=20)
    # admission gave the pod without tolerations upstream's 300 s ones
    default = await client.get(PODS, "default", namespace)
    assert {
        "key": UNREACHABLE,
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    } in default["spec"]["tolerations"]

    sim.stop_node(dead)

    async def unknown() -> dict[str, Any] | None:
        n = await client.get(NODES, dead)
        return n if condition(n, "Ready")["status"] == "Unknown" else None

    n = await eventually(unknown, within=30)
    ready = condition(n, "Ready")
    assert ready["reason"] == "NodeStatusUnknown"
    assert ready["message"] == "Kubelet stopped posting node status."
    assert condition(n, "MemoryPressure")["status"] == "Unknown"

    async def tainted() -> dict[tuple[str, str], Any] | None:
        n = await client.get(NODES, dead)
        taints = {(t["key"], t["effect"]): t for t in n["spec"].get("taints") or []}
        return taints if (UNREACHABLE, "NoExecute") in taints else None

    taints = await eventually(tainted, within=20)
    assert taints[(UNREACHABLE, "NoExecute")].get("timeAdded")
    assert (UNREACHABLE, "NoSchedule") in taints

    async def evicted() -> dict[str, Any] | None:
        p = await client.get(PODS, "short", namespace)
        return p if p["metadata"].get("deletionTimestamp") else None

    p = await eventually(evicted, within=20)
    target = condition(p, "DisruptionTarget")
    assert target["reason"] == "DeletionByTaintManager"
    # 300 s have not passed for the others: they stay
    default = await client.get(PODS, "default", namespace)
    assert not default["metadata"].get("deletionTimestamp")
    assert condition(default, "Ready")["status"] == "False"
    elsewhere = await client.get(PODS, "elsewhere", namespace)
    assert not elsewhere["metadata"].get("deletionTimestamp")
    healthy = await client.get(NODES, alive)
    assert condition(healthy, "Ready")["status"] == "True"
    assert not healthy["spec"].get("taints")

    # the node comes back: Ready again, the taints go
    sim.start_node(dead)

    async def recovered() -> bool:
        n = await client.get(NODES, dead)
        keys = {t["key"] for t in n["spec"].get("taints") or []}
        return condition(n, "Ready")["status"] == "True" and UNREACHABLE not in keys

    assert await eventually(recovered, within=30)
