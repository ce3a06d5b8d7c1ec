"""ResourceQuota: the controller keeps status.used current, and the API server refuses
creates that would pass status.hard with upstream's 403 message."""

from __future__ import annotations

from typing import Any

import pytest

from pyk8s.api.registry import REGISTRY
from pyk8s.client import ApiError, Client
from tests.controllers.conftest import eventually
from tests.controllers.podsim import set_terminated

PODS = REGISTRY.get("", "v1", "pods")
QUOTAS = REGISTRY.get("", "v1", "resourcequotas")
CONFIGMAPS = REGISTRY.get("", "v1", "configmaps")
assert PODS is not None and QUOTAS is not None and CONFIGMAPS is not None


def _pod(name: str, resources: dict[str, Any] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "c", "image": "busybox"}
    if resources is not None:
        container["resources"] = resources
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container]},
    }


async def _quota(client: Client, namespace: str, name: str, hard: dict[str, str]) -> None:
    await client.create(
        QUOTAS,
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": name},
            "spec": {"hard": hard},
        },
        namespace,
    )


async def _used(client: Client, namespace: str, name: str, want: dict[str, str]) -> Any:
    quota = await client.get(QUOTAS, name, namespace)
    status = quota.get("status") or {}
    return status if status.get("used") == want else None


async def test_used_follows_creates_and_deletes(
    client: Client, namespace: str, run_controllers: Any
) -> None:
    await run_controllers("resourcequota")
    await _quota(client, namespace, "q", {"pods": "5", "configmaps": "10", "count/secrets": "3"})
    status = await eventually(
        lambda: _used(
            client, namespace, "q", {"pods": "0", "configmaps": "0", "count/secrets": "0"}
        ),
        within=30,
    )
    assert status["hard"] == {"pods": "5", "configmaps": "10", "count/secrets": "3"}

    pods = [await client.create(PODS, _pod(f"p{i}"), namespace) for i in range(3)]
    await client.create(CONFIGMAPS, {"metadata": {"name": "cm"}}, namespace)
    await eventually(
        lambda: _used(
            client, namespace, "q", {"pods": "3", "configmaps": "1", "count/secrets": "0"}
        ),
        within=30,
    )
    await client.delete(PODS, "p0", namespace, grace_period_seconds=0)
    await client.delete(CONFIGMAPS, "cm", namespace)
    # a terminal pod no longer counts
    await set_terminated(client, pods[1], 0)
    await eventually(
        lambda: _used(
            client, namespace, "q", {"pods": "1", "configmaps": "0", "count/secrets": "0"}
        ),
        within=30,
    )


async def test_create_over_the_limit_is_forbidden(
    client: Client, namespace: str, run_controllers: Any
) -> None:
    await run_controllers("resourcequota")
    await _quota(client, namespace, "q", {"pods": "2"})
    await eventually(lambda: _used(client, namespace, "q", {"pods": "0"}), within=30)
    await client.create(PODS, _pod("a"), namespace)
    await client.create(PODS, _pod("b"), namespace)
    with pytest.raises(ApiError) as info:
        await client.create(PODS, _pod("x"), namespace)
    err = info.value
    assert err.status == 403
    assert err.reason == "Forbidden"
    assert str(err.message) == (
        'pods "x" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2'
    )
    await eventually(lambda: _used(client, namespace, "q", {"pods": "2"}), within=30)


async def test_requests_cpu_sums_and_is_enforced(
    client: Client, namespace: str, run_controllers: Any
) -> None:
    await run_controllers("resourcequota")
    await _quota(
        client, namespace, "compute", {"requests.cpu": "1", "requests.memory": "1Gi", "cpu": "1"}
    )
    await eventually(
        lambda: _used(
            client, namespace, "compute", {"requests.cpu": "0", "requests.memory": "0", "cpu": "0"}
        ),
        within=30,
    )
    res = {"requests": {"cpu": "300m", "memory": "256Mi"}}
    await client.create(PODS, _pod("a", res), namespace)
    await client.create(PODS, _pod("b", res), namespace)
    await eventually(
        lambda: _used(
            client,
            namespace,
            "compute",
            {"requests.cpu": "600m", "requests.memory": "512Mi", "cpu": "600m"},
        ),
        within=30,
    )
    # a container without a cpu request cannot be admitted under a cpu quota
    with pytest.raises(ApiError) as info:
        await client.create(PODS, _pod("none"), namespace)
    assert info.value.status == 403
    assert str(info.value.message) == (
        'pods "none" is forbidden: failed quota: compute: must specify '
        "cpu for: c; requests.cpu for: c; requests.memory for: c"
    )
    with pytest.raises(ApiError) as info:
        await client.create(
            PODS, _pod("big", {"requests": {"cpu": "500m", "memory": "1Mi"}}), namespace
        )
    assert info.value.status == 403
    assert str(info.value.message) == (
        'pods "big" is forbidden: exceeded quota: compute, requested: cpu=500m,requests.cpu=500m, '
        "used: cpu=600m,requests.cpu=600m, limited: cpu=1,requests.cpu=1"
    )
