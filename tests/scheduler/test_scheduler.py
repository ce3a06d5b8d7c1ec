"""The scheduler against a real API server: nodes we create, pods we create, the
scheduler running in the test's loop exactly as ``pyk8s scheduler`` runs it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from pyk8s.api.registry import REGISTRY
from pyk8s.client import ApiError, Client
from pyk8s.scheduler import Scheduler
from tests.scheduler.conftest import eventually

PODS = REGISTRY.get("", "v1", "pods")
NODES = REGISTRY.get("", "v1", "nodes")
EVENTS = REGISTRY.get("", "v1", "events")

MakeNode = Callable[..., Awaitable[str]]


@pytest.fixture
async def make_node(client: Client) -> AsyncIterator[MakeNode]:
    """Creates Ready nodes (deleted after the test)."""
    assert NODES is not None
    made: list[str] = []
    prefix = uuid.uuid4().hex[:5]

    async def make(
        name: str,
        cpu: str = "4",
        memory: str = "8Gi",
        pods: str = "110",
        labels: dict[str, str] | None = None,
        taints: list[dict[str, str]] | None = None,
    ) -> str:
        full = f"{prefix}-{name}"
        alloc = {"cpu": cpu, "memory": memory, "pods": pods}
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": full,
                "labels": {"kubernetes.io/hostname": full, **(labels or {})},
            },
            "spec": {"taints": taints} if taints else {},
        }
        await client.create(NODES, body)
        status = {
            "capacity": alloc,
            "allocatable": alloc,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        }
        await client.patch(
            NODES, full, {"status": status}, patch_type="merge", subresource="status"
        )
        made.append(full)
        return full

    yield make
    for name in made:
        await client.delete(NODES, name)


@pytest.fixture
async def scheduler(client: Client, make_node: MakeNode) -> AsyncIterator[Scheduler]:
    """Starts after the test body asks for it; stopped (and waited for) afterwards."""
    sched = Scheduler(client)
    stop = asyncio.Event()
    task = asyncio.create_task(sched.run(stop))
    yield sched
    stop.set()
    await asyncio.wait_for(task, 30)


def pod(name: str, cpu: str = "100m", memory: str = "64Mi", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "resources": {"requests": {"cpu": cpu, "memory": memory}},
                }
            ],
            **spec,
        },
    }


async def node_of(client: Client, namespace: str, name: str) -> str:
    assert PODS is not None
    p = await client.get(PODS, name, namespace)
    return str(p["spec"].get("nodeName") or "")


async def test_pods_land_on_feasible_nodes_spread_and_respect_taints_and_selectors(
    client: Client, namespace: str, make_node: MakeNode, scheduler: Scheduler
) -> None:
    assert PODS is not None and EVENTS is not None
    a = await make_node("a", labels={"disk": "ssd"})
    b = await make_node("b")
    tainted = await make_node(
        "t", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]
    )
    for i in range(4):
        await client.create(PODS, pod(f"web-{i}", cpu="500m"), namespace)
    await client.create(PODS, pod("ssd", nodeSelector={"disk": "ssd"}), namespace)
    tolerating = pod(
        "db",
        cpu="3",
        tolerations=[
            {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}
        ],
        nodeSelector={"kubernetes.io/hostname": tainted},
    )
    await client.create(PODS, tolerating, namespace)

    async def all_bound() -> dict[str, str] | None:
        names = [f"web-{i}" for i in range(4)] + ["ssd", "db"]
        placed = {n: await node_of(client, namespace, n) for n in names}
        return placed if all(placed.values()) else None

    placed = await eventually(all_bound, within=30)
    webs = [placed[f"web-{i}"] for i in range(4)]
    assert tainted not in webs  # untolerated NoSchedule taint
    # LeastAllocated: 4 equal pods on two equal free nodes → two each (ssd may tip one)
    assert webs.count(a) >= 1 and webs.count(b) >= 1
    assert placed["ssd"] == a
    assert placed["db"] == tainted

    async def scheduled_event() -> bool:
        evs = await client.list(EVENTS, namespace, field_selector="reason=Scheduled")
        msgs = {e["message"] for e in evs["items"]}
        return f"Successfully assigned {namespace}/web-0 to {placed['web-0']}" in msgs

    await eventually(scheduled_event, within=20)


async def test_impossible_pod_gets_upstreams_message_and_event(
    client: Client, namespace: str, make_node: MakeNode, scheduler: Scheduler
) -> None:
    assert PODS is not None and EVENTS is not None
    await make_node(
        "cp", taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    )
    await make_node("w1", cpu="2")
    await make_node("w2", cpu="2")
    await client.create(PODS, pod("huge", cpu="3"), namespace)
    want = (
        "0/3 nodes are available: 1 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    )

    async def condition() -> dict[str, Any] | None:
        p = await client.get(PODS, "huge", namespace)
        for c in (p.get("status") or {}).get("conditions") or []:
            if c["type"] == "PodScheduled":
                return dict(c)
        return None

    cond = await eventually(condition, within=30)
    assert cond["status"] == "False"
    assert cond["reason"] == "Unschedulable"
    assert cond["message"] == want

    async def failed_event() -> dict[str, Any] | None:
        evs = await client.list(EVENTS, namespace, field_selector="reason=FailedScheduling")
        for e in evs["items"]:
            if e["involvedObject"]["name"] == "huge":
                return dict(e)
        return None

    ev = await eventually(failed_event, within=20)
    assert ev["type"] == "Warning"
    assert ev["message"] == want
    assert ev["source"]["component"] == "default-scheduler"
    assert not await node_of(client, namespace, "huge")


async def test_unschedulable_pod_is_placed_when_a_node_arrives(
    client: Client, namespace: str, make_node: MakeNode, scheduler: Scheduler
) -> None:
    assert PODS is not None
    await make_node("small", cpu="1")
    await client.create(PODS, pod("waits", cpu="2"), namespace)

    async def unschedulable() -> bool:
        p = await client.get(PODS, "waits", namespace)
        conds = (p.get("status") or {}).get("conditions") or []
        return any(c["type"] == "PodScheduled" and c["status"] == "False" for c in conds)

    await eventually(unschedulable, within=30)
    big = await make_node("big", cpu="8")
    assert await eventually(lambda: _on(client, namespace, "waits", big), within=30)


async def _on(client: Client, namespace: str, name: str, node: str) -> bool:
    return await node_of(client, namespace, name) == node


async def test_least_allocated_spreads_equal_pods_evenly(
    client: Client, namespace: str, make_node: MakeNode, scheduler: Scheduler
) -> None:
    assert PODS is not None
    a = await make_node("a")
    b = await make_node("b")
    for i in range(4):
        await client.create(PODS, pod(f"p-{i}", cpu="1", memory="1Gi"), namespace)

    async def placed() -> list[str] | None:
        nodes = [await node_of(client, namespace, f"p-{i}") for i in range(4)]
        return nodes if all(nodes) else None

    nodes = await eventually(placed, within=30)
    assert sorted(nodes) == sorted([a, a, b, b])


async def test_pyk8s_scheduler_command_leads_and_uses_profiles_from_config(
    client: Client, namespace: str, make_node: MakeNode, cm_server: Any, tmp_path: Any
) -> None:
    import sys

    from tests.integration.conftest import free_port

    assert PODS is not None
    leases = REGISTRY.get("coordination.k8s.io", "v1", "leases")
    assert leases is not None
    cfg = tmp_path / "sched.yaml"
    cfg.write_text(
        "apiVersion: kubescheduler.config.k8s.io/v1\n"
        "kind: KubeSchedulerConfiguration\n"
        "profiles:\n"
        "- schedulerName: default-scheduler\n"
        "- schedulerName: no-scoring\n"
        "  plugins:\n"
        "    score:\n"
        "      disabled:\n"
        "      - name: '*'\n"
    )
    node = await make_node("only")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pyk8s",
        "scheduler",
        "--kubeconfig",
        str(cm_server.kubeconfig),
        "--port",
        str(port := free_port()),
        "--config",
        str(cfg),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await client.create(PODS, pod("custom", schedulerName="no-scoring"), namespace)
        await client.create(PODS, pod("other", schedulerName="someone-else"), namespace)

        async def holder() -> str:
            try:
                lease = await client.get(leases, "kube-scheduler", "kube-system")
            except ApiError as err:
                assert err.status == 404, err
                return ""
            return str(lease["spec"].get("holderIdentity") or "")

        assert await eventually(holder, within=40)
        assert await eventually(lambda: _on(client, namespace, "custom", node), within=40)
        assert not await node_of(client, namespace, "other")  # not ours to schedule

        async def metrics() -> str:  # upstream's names, labels and the bound pod's attempt
            url = f"http://127.0.0.1:{port}/metrics"
            async with aiohttp.ClientSession() as http, http.get(url) as resp:
                text = await resp.text()
            scheduled = 'profile="no-scoring",result="scheduled"'
            return text if f"scheduler_schedule_attempts_total{{{scheduled}}} 1.0" in text else ""

        text = await eventually(metrics, within=30)
        duration = "scheduler_scheduling_attempt_duration_seconds_count"
        assert f'{duration}{{profile="no-scoring",result="scheduled"}} 1.0' in text
        assert 'scheduler_pod_scheduling_sli_duration_seconds_count{attempts="1"} 1.0' in text
        assert 'scheduler_pending_pods{queue="active"}' in text
        assert 'scheduler_pending_pods{queue="unschedulable"}' in text
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
