"""Simulated nodes against a real API server: registration, leases, pods on paper."""

from __future__ import annotations

import contextlib
import ipaddress
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import Client, is_not_found
from pyk8s.client.errors import ClientError
from pyk8s.controllers.runtime import Manager
from pyk8s.kubelet.simulated import NodeTemplate, SimulatedNodes, parse_taint
from tests.controllers.conftest import eventually

NODES: Resource = REGISTRY.get("", "v1", "nodes")  # type: ignore[assignment]
PODS: Resource = REGISTRY.get("", "v1", "pods")  # type: ignore[assignment]
LEASES: Resource = REGISTRY.get("coordination.k8s.io", "v1", "leases")  # type: ignore[assignment]

SimFactory = Callable[..., Awaitable[SimulatedNodes]]


@pytest.fixture
async def sim(client: Client) -> AsyncIterator[SimFactory]:
    started: list[SimulatedNodes] = []

    async def start(count: int = 2, **kw: Any) -> SimulatedNodes:
        prefix = f"sim-{uuid.uuid4().hex[:6]}-"
        s = SimulatedNodes(client, count=count, name_prefix=prefix, **kw)
        await s.start()
        started.append(s)
        return s

    yield start
    for s in started:
        await s.stop()
        for name in s.nodes:
            with contextlib.suppress(ClientError):
                await client.delete(NODES, name)


def pod(
    name: str, namespace: str, *, restart: str = "Always", **annotations: str
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 5,
            "containers": [{"name": "app", "image": "busybox:1.36"}],
        },
    }


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == ctype)


async def test_nodes_register_ready_with_capacity_and_renew_leases(
    client: Client, sim: SimFactory
) -> None:
    template = NodeTemplate(
        cpu="4",
        memory="16Gi",
        extended={"nvidia.com/gpu": "2"},
        labels={"zone": "a"},
        taints=[parse_taint("dedicated=gpu:NoSchedule")],
    )
    s = await sim(3, template=template, renew_interval=0.5)
    for name in s.nodes:
        node = await client.get(NODES, name)
        assert condition(node, "Ready")["status"] == "True"
        assert condition(node, "Ready")["reason"] == "KubeletReady"
        for ctype in ("MemoryPressure", "DiskPressure", "PIDPressure"):
            assert condition(node, ctype)["status"] == "False"
        cap = node["status"]["capacity"]
        assert cap["cpu"] == "4" and cap["memory"] == "16Gi" and cap["pods"] == "110"
        assert cap["nvidia.com/gpu"] == "2"
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == "2"
        labels = node["metadata"]["labels"]
        assert labels["kubernetes.io/hostname"] == name
        assert labels["kubernetes.io/os"] == "linux"
        assert labels["zone"] == "a"
        assert node["spec"]["taints"] == [
            {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
        ]
        assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.32.0"
        assert node["status"]["addresses"][0]["type"] == "InternalIP"

    name = next(iter(s.nodes))

    async def lease_renewed_twice() -> bool:
        lease = await client.get(LEASES, name, "kube-node-lease")
        first = lease["spec"]["renewTime"]
        assert lease["spec"]["holderIdentity"] == name
        assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"

        async def moved() -> bool:
            again = await client.get(LEASES, name, "kube-node-lease")
            return bool(again["spec"]["renewTime"] != first)

        return bool(await eventually(moved, within=10))

    assert await eventually(lease_renewed_twice, within=15)


async def test_bound_pod_runs_with_ip_and_ready(
    client: Client, sim: SimFactory, namespace: str
) -> None:
    s = await sim(1)
    node = next(iter(s.nodes))
    await client.create(PODS, pod("web", namespace))
    await client.bind(namespace, "web", node)

    async def running() -> dict[str, Any] | None:
        p = await client.get(PODS, "web", namespace)
        return p if p["status"].get("phase") == "Running" else None

    p = await eventually(running, within=20)
    st = p["status"]
    assert st["podIP"] and st["hostIP"] == s.nodes[node].ip
    assert st["startTime"]
    for ctype in ("Initialized", "ContainersReady", "Ready", "PodScheduled"):
        assert condition(p, ctype)["status"] == "True"
    (cs,) = st["containerStatuses"]
    assert cs["ready"] is True and cs["started"] is True and cs["restartCount"] == 0
    assert "running" in cs["state"] and cs["containerID"].startswith("sim://")


async def test_lease_duration_zero_keeps_no_leases(
    client: Client, sim: SimFactory, namespace: str
) -> None:
    """kwok's ``--node-lease-duration-seconds 0``: nodes register Ready and run pods, and
    no Lease is ever written (the heartbeat loop still runs: node status only)."""
    s = await sim(1, lease_duration=0, renew_interval=0.2)
    node = next(iter(s.nodes))
    assert condition(await client.get(NODES, node), "Ready")["status"] == "True"
    await client.create(PODS, pod("web", namespace))
    await client.bind(namespace, "web", node)

    async def running() -> bool:
        p = await client.get(PODS, "web", namespace)
        return bool(p["status"].get("phase") == "Running")

    await eventually(running, within=20)  # many heartbeat loop turns later
    with pytest.raises(ClientError) as err:
        await client.get(LEASES, node, "kube-node-lease")
    assert is_not_found(err.value)
    assert s.registry.get_sample_value("pyk8s_sim_lease_renewals_total") == 0


@pytest.mark.parametrize(
    ("exit_code", "phase", "reason"), [("0", "Succeeded", "Completed"), ("1", "Failed", "Error")]
)
async def test_run_seconds_and_exit_code_end_a_never_pod(
    client: Client, sim: SimFactory, namespace: str, exit_code: str, phase: str, reason: str
) -> None:
    s = await sim(1)
    node = next(iter(s.nodes))
    body = pod(
        "job",
        namespace,
        restart="Never",
        **{"pyk8s.io/sim-run-seconds": "1", "pyk8s.io/sim-exit-code": exit_code},
    )
    await client.create(PODS, body)
    await client.bind(namespace, "job", node)

    async def finished() -> dict[str, Any] | None:
        p = await client.get(PODS, "job", namespace)
        return p if p["status"].get("phase") == phase else None

    p = await eventually(finished, within=20)
    term = p["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == int(exit_code) and term["reason"] == reason
    assert condition(p, "Ready")["status"] == "False"


@pytest.mark.parametrize(
    ("restart", "annotations"),
    [
        ("Always", {"pyk8s.io/sim-run-seconds": "1"}),
        ("OnFailure", {"pyk8s.io/sim-run-seconds": "1", "pyk8s.io/sim-exit-code": "2"}),
    ],
)
async def test_restarting_pod_counts_restarts_then_backs_off(
    client: Client, sim: SimFactory, namespace: str, restart: str, annotations: dict[str, str]
) -> None:
    s = await sim(1)
    await client.create(PODS, pod("loop", namespace, restart=restart, **annotations))
    await client.bind(namespace, "loop", next(iter(s.nodes)))

    async def backing_off() -> dict[str, Any] | None:
        p = await client.get(PODS, "loop", namespace)
        statuses = p["status"].get("containerStatuses") or [{}]
        waiting = (statuses[0].get("state") or {}).get("waiting") or {}
        return p if waiting.get("reason") == "CrashLoopBackOff" else None

    p = await eventually(backing_off, within=20)
    assert p["status"]["phase"] == "Running"
    (cs,) = p["status"]["containerStatuses"]
    assert cs["restartCount"] == 1 and cs["ready"] is False
    assert cs["lastState"]["terminated"]["exitCode"] == int(
        annotations.get("pyk8s.io/sim-exit-code", "0")
    )
    assert "back-off 10s restarting failed container=app" in cs["state"]["waiting"]["message"]
    ready = condition(p, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ContainersNotReady"
    assert ready["message"] == "containers with unready status: [app]"


async def test_exit_code_alone_fails_a_never_pod_at_once(
    client: Client, sim: SimFactory, namespace: str
) -> None:
    s = await sim(1)
    body = pod("bad", namespace, restart="Never", **{"pyk8s.io/sim-exit-code": "3"})
    await client.create(PODS, body)
    await client.bind(namespace, "bad", next(iter(s.nodes)))

    async def failed() -> bool:
        p = await client.get(PODS, "bad", namespace)
        return bool(p["status"].get("phase") == "Failed")

    assert await eventually(failed, within=20)


async def test_deleted_pod_disappears(client: Client, sim: SimFactory, namespace: str) -> None:
    s = await sim(1)
    await client.create(PODS, pod("gone", namespace))
    await client.bind(namespace, "gone", next(iter(s.nodes)))

    async def running() -> bool:
        p = await client.get(PODS, "gone", namespace)
        return bool(p["status"].get("phase") == "Running")

    await eventually(running, within=20)
    deleted = await client.delete(PODS, "gone", namespace)
    assert deleted["metadata"].get("deletionTimestamp"), "a running pod is deleted gracefully"

    async def gone() -> bool:
        try:
            await client.get(PODS, "gone", namespace)
        except ClientError as err:
            return is_not_found(err)
        return False

    assert await eventually(gone, within=20)


async def test_pod_ip_comes_from_the_node_pod_cidr(
    client: Client,
    sim: SimFactory,
    namespace: str,
    run_controllers: Callable[..., Awaitable[Manager]],
) -> None:
    await run_controllers("nodeipam")
    s = await sim(1)
    node = next(iter(s.nodes))

    async def cidr() -> str:
        return str(((await client.get(NODES, node)).get("spec") or {}).get("podCIDR") or "")

    net = ipaddress.ip_network(await eventually(cidr, within=20))
    await client.create(PODS, pod("ipam", namespace))
    await client.bind(namespace, "ipam", node)

    async def ip() -> str:
        return str((await client.get(PODS, "ipam", namespace))["status"].get("podIP") or "")

    assert ipaddress.ip_address(await eventually(ip, within=20)) in net
