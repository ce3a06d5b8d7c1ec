"""Topology spread, pod anti-affinity and preemption against a real API server, with the
scheduler running in the test's loop (fixtures from test_scheduler)."""

from __future__ import annotations

import uuid
from typing import Any

from pyk8s.api.registry import REGISTRY
from pyk8s.client import ApiError, Client
from pyk8s.scheduler import Scheduler
from tests.scheduler.conftest import eventually
from tests.scheduler.test_scheduler import MakeNode, make_node, node_of, pod, scheduler

__all__ = ["make_node", "scheduler"]

PODS = REGISTRY.get("", "v1", "pods")
EVENTS = REGISTRY.get("", "v1", "events")
PRIORITY_CLASSES = REGISTRY.get("scheduling.k8s.io", "v1", "priorityclasses")


async def test_hostname_spread_puts_one_replica_per_node(
    client: Client, namespace: str, make_node: MakeNode, scheduler: Scheduler
) -> None:
    assert PODS is not None
    # without the constraint LeastAllocated would put all three on the big node
    nodes = {await make_node("big", cpu="64", memory="64Gi"), await make_node("s1")}
    nodes.add(await make_node("s2"))
    for i in range(3):
        body = pod(
            f"web-{i}",
            cpu="1",
            topologySpreadConstraints=[
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "DoNotSchedule",
                    "labelSelector": {"matchLabels": {"app": "web"}},
                }
            ],
        )
        body["metadata"]["labels"] = {"app": "web"}
        await client.create(PODS, body, namespace)

    async def placed() -> list[str] | None:
        got = [await node_of(client, namespace, f"web-{i}") for i in range(3)]
        return got if all(got) else None

    got = await eventually(placed, within=30)
    assert set(got) == nodes


async def test_required_anti_affinity_keeps_pods_apart_and_the_third_pending(
    client: Client, namespace: str, make_node: MakeNode, scheduler: Scheduler
) -> None:
    assert PODS is not None
    nodes = {await make_node("a"), await make_node("b")}
    anti = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": {"app": "db"}},
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }
    for i in range(3):
        body = pod(f"db-{i}", affinity=anti)
        body["metadata"]["labels"] = {"app": "db"}
        await client.create(PODS, body, namespace)
    want = (
        "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules. "
        "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
    )

    async def settled() -> tuple[list[str], dict[str, Any]] | None:
        placed: list[str] = []
        pending: list[dict[str, Any]] = []
        for i in range(3):
            p = await client.get(PODS, f"db-{i}", namespace)
            if p["spec"].get("nodeName"):
                placed.append(p["spec"]["nodeName"])
            else:
                for c in (p.get("status") or {}).get("conditions") or []:
                    if c["type"] == "PodScheduled" and c["status"] == "False":
                        pending.append(c)
        if len(placed) == 2 and len(pending) == 1:
            return placed, pending[0]
        return None

    placed, cond = await eventually(settled, within=30)
    assert set(placed) == nodes
    assert cond["reason"] == "Unschedulable"
    assert cond["message"] == want
    for i in range(3):  # the pending one would otherwise wait for the next test's nodes
        await client.delete(PODS, f"db-{i}", namespace, grace_period_seconds=0)


async def test_high_priority_pod_preempts_low_priority_pod_on_a_full_node(
    client: Client, namespace: str, make_node: MakeNode, scheduler: Scheduler
) -> None:
    assert PODS is not None and EVENTS is not None and PRIORITY_CLASSES is not None
    tag = uuid.uuid4().hex[:6]
    low, high = f"low-{tag}", f"high-{tag}"
    for name, value in ((low, 100), (high, 1000)):
        await client.create(
            PRIORITY_CLASSES,
            {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": name},
                "value": value,
            },
        )
    try:
        full = await make_node("full", cpu="2")
        victim = pod("victim", cpu="2", priorityClassName=low, terminationGracePeriodSeconds=0)
        await client.create(PODS, victim, namespace)
        assert await eventually(lambda: _on(client, namespace, "victim", full), within=30)
        await client.create(PODS, pod("vip", cpu="2", priorityClassName=high), namespace)

        async def victim_gone() -> bool:
            try:
                await client.get(PODS, "victim", namespace)
            except ApiError as err:
                return err.status == 404
            return False

        assert await eventually(victim_gone, within=30)
        assert await eventually(lambda: _on(client, namespace, "vip", full), within=30)
        vip = await client.get(PODS, "vip", namespace)
        assert vip["spec"]["priority"] == 1000
        assert vip["status"].get("nominatedNodeName") == full

        async def preempted_event() -> dict[str, Any] | None:
            evs = await client.list(EVENTS, namespace, field_selector="reason=Preempted")
            for e in evs["items"]:
                if e["involvedObject"]["name"] == "victim":
                    return dict(e)
            return None

        ev = await eventually(preempted_event, within=20)
        assert ev["message"] == f"Preempted by pod {vip['metadata']['uid']} on node {full}"
    finally:
        for name in (low, high):
            await client.delete(PRIORITY_CLASSES, name)


async def _on(client: Client, namespace: str, name: str, node: str) -> bool:
    return await node_of(client, namespace, name) == node
