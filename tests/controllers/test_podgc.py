"""Pod garbage collection: pods left on a deleted node are marked Failed with the
DisruptionTarget condition and force-deleted after the quarantine; terminated pods beyond
the threshold are deleted, evicted first, then oldest first; terminating pods on an
out-of-service node are force-deleted."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import ApiError, Client, is_not_found
from pyk8s.controllers import podgc
from pyk8s.controllers.runtime import Manager
from tests.controllers.conftest import eventually
from tests.controllers.synced import touch_and_wait_for_sync

NODES: Resource = REGISTRY.get("", "v1", "nodes")  # type: ignore[assignment]
PODS: Resource = REGISTRY.get("", "v1", "pods")  # type: ignore[assignment]


def pod(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]},
    }


def node(name: str, taints: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "spec": {"taints": taints or []},
    }


async def set_node_ready(client: Client, name: str, ready: str) -> None:
    n = await client.get(NODES, name)
    n.setdefault("status", {})["conditions"] = [
        {"type": "Ready", "status": ready, "reason": "Test", "message": "set by test"}
    ]
    await client.update_status(NODES, n)


async def gone(client: Client, name: str, namespace: str) -> bool:
    try:
        await client.get(PODS, name, namespace)
    except ApiError as err:
        if is_not_found(err):
            return True
        raise
    return False


async def test_orphaned_pod_on_deleted_node_is_force_deleted(
    client: Client,
    namespace: str,
    run_controllers: Callable[..., Awaitable[Manager]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(podgc, "QUARANTINE_TIME", 1.0)
    node_name = f"podgc-{uuid.uuid4().hex[:6]}"
    await client.create(NODES, node(node_name))
    await client.create(PODS, pod("orphan", namespace))
    await client.create(PODS, pod("unbound", namespace))
    await client.bind(namespace, "orphan", node_name)
    await client.delete(NODES, node_name)

    seen: list[dict[str, Any]] = []
    latest = await client.get(PODS, "orphan", namespace)

    async def record() -> None:
        rv = latest["metadata"]["resourceVersion"]
        async with client.watch(PODS, namespace, resource_version=rv) as stream:
            async for _type, obj in stream:
                seen.append(obj)

    watcher = asyncio.create_task(record())
    try:
        await run_controllers("podgc")
        assert await eventually(lambda: gone(client, "orphan", namespace), within=30)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    # before the delete it was marked Failed with upstream's DisruptionTarget condition
    marked = [
        c
        for o in seen
        if o["metadata"]["name"] == "orphan" and o["status"].get("phase") == "Failed"
        for c in o["status"].get("conditions") or []
        if c["type"] == "DisruptionTarget"
    ]
    assert marked, seen
    assert marked[0]["status"] == "True"
    assert marked[0]["reason"] == "DeletionByPodGC"
    assert marked[0]["message"] == "PodGC: node no longer exists"
    # a pending pod that was never bound and is not terminating is left alone
    assert not await gone(client, "unbound", namespace)


async def test_terminated_pods_beyond_threshold_are_deleted_evicted_then_oldest_first(
    client: Client,
    namespace: str,
    run_controllers: Callable[..., Awaitable[Manager]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the threshold is cluster-wide: count terminated pods other tests left behind
    others = [
        p
        for p in (await client.list(PODS))["items"]
        if p["status"].get("phase") in ("Succeeded", "Failed")
    ]
    assert not any(p["status"].get("reason") == "Evicted" for p in others)
    monkeypatch.setattr(podgc, "TERMINATED_POD_GC_THRESHOLD", len(others) + 2)
    # p0 is Succeeded and oldest; p1..p4 are evicted (names break creation-time ties)
    for i in range(5):
        name = f"p{i}"
        created = await client.create(PODS, pod(name, namespace))
        created["status"]["phase"] = "Succeeded" if i == 0 else "Failed"
        if i:
            created["status"]["reason"] = "Evicted"
        await client.update_status(PODS, created, namespace)
    await client.create(PODS, pod("running", namespace))

    manager = await run_controllers("podgc")

    async def remaining() -> list[str] | None:
        items = (await client.list(PODS, namespace))["items"]
        names = sorted(p["metadata"]["name"] for p in items)
        return names if len(names) == 3 else None

    assert await eventually(remaining, within=30) == ["p0", "p4", "running"]
    # it deletes only the overflow, nothing more: a sweep that began after this state was
    # in its cache (sweeps run one at a time, so every earlier one had ended) kept it
    await touch_and_wait_for_sync(
        client, manager, "podgc", PODS, namespace, "running", key=podgc.SWEEP
    )
    assert await remaining() == ["p0", "p4", "running"]


async def test_terminating_pod_on_out_of_service_node_is_force_deleted(
    client: Client,
    namespace: str,
    run_controllers: Callable[..., Awaitable[Manager]],
) -> None:
    out, fine = f"podgc-oos-{uuid.uuid4().hex[:6]}", f"podgc-ok-{uuid.uuid4().hex[:6]}"
    taint = {"key": "node.kubernetes.io/out-of-service", "effect": "NoExecute"}
    await client.create(NODES, node(out, taints=[taint]))
    await client.create(NODES, node(fine))
    try:
        await set_node_ready(client, out, "False")
        await set_node_ready(client, fine, "False")
        for name, where in (("stuck", out), ("waiting", fine)):
            await client.create(PODS, pod(name, namespace))
            await client.bind(namespace, name, where)
            await client.delete(PODS, name, namespace)  # graceful: only marks it terminating
        p = await client.get(PODS, "stuck", namespace)
        assert p["metadata"].get("deletionTimestamp")

        await run_controllers("podgc")
        assert await eventually(lambda: gone(client, "stuck", namespace), within=30)
        # NotReady without the out-of-service taint: upstream PodGC leaves it to the kubelet
        assert not await gone(client, "waiting", namespace)
    finally:
        for n in (out, fine):
            await client.delete(NODES, n)
