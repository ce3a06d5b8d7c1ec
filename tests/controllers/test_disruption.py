"""The disruption controller: a PodDisruptionBudget's status follows its pods' readiness,
and the eviction subresource (what ``kubectl drain`` calls) honours it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from pyk8s.api.registry import REGISTRY
from pyk8s.client import Client
from tests.controllers.conftest import eventually
from tests.controllers.podsim import set_running
from tests.integration.conftest import Server

PODS = REGISTRY.get("", "v1", "pods")
PDBS = REGISTRY.get("policy", "v1", "poddisruptionbudgets")
RCS = REGISTRY.get("", "v1", "replicationcontrollers")
assert PODS is not None and PDBS is not None and RCS is not None


def _pod(name: str, labels: dict[str, str], owner: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if owner is not None:
        meta["ownerReferences"] = [owner]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


def _pdb(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name},
        "spec": spec,
    }


async def _status(client: Client, namespace: str, name: str) -> dict[str, Any]:
    pdb = await client.get(PDBS, name, namespace)
    status: dict[str, Any] = pdb.get("status") or {}
    return status


def _condition(status: dict[str, Any]) -> dict[str, Any]:
    for c in status.get("conditions") or ():
        if c.get("type") == "DisruptionAllowed":
            return dict(c)
    return {}


async def _ready_pods(client: Client, namespace: str, n: int) -> list[dict[str, Any]]:
    pods = []
    for i in range(n):
        pod = await client.create(PODS, _pod(f"web-{i}", {"app": "web"}), namespace)
        pods.append(await set_running(client, pod, f"10.0.0.{i + 1}"))
    return pods


async def test_min_available_tracks_ready_pods_and_eviction_is_refused(
    client: Client, namespace: str, run_controllers: Any, cm_server: Server
) -> None:
    await run_controllers("disruption")
    pods = await _ready_pods(client, namespace, 3)
    await client.create(
        PDBS,
        _pdb("web", {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}),
        namespace,
    )

    async def allowed_one() -> dict[str, Any] | None:
        st = await _status(client, namespace, "web")
        return st if st.get("disruptionsAllowed") == 1 else None

    status = await eventually(allowed_one, within=30)
    assert status["currentHealthy"] == 3
    assert status["desiredHealthy"] == 2
    assert status["expectedPods"] == 3
    assert status["observedGeneration"] == 1
    cond = _condition(status)
    assert (cond["status"], cond["reason"]) == ("True", "SufficientPods")

    # one pod turns unready: 2 healthy, 2 needed, nothing may go
    await set_running(client, pods[0], "10.0.0.1", ready=False)

    async def insufficient() -> dict[str, Any] | None:
        st = await _status(client, namespace, "web")
        ok = st.get("disruptionsAllowed") == 0 and st.get("currentHealthy") == 2
        return st if ok and _condition(st).get("reason") == "InsufficientPods" else None

    status = await eventually(insufficient, within=30)
    assert _condition(status)["status"] == "False"

    # the official Python client's eviction of a ready pod is refused with 429
    def evict() -> ApiException:
        api = k8s.CoreV1Api(k8s_config.new_client_from_config(str(cm_server.kubeconfig)))
        body = k8s.V1Eviction(metadata=k8s.V1ObjectMeta(name="web-1", namespace=namespace))
        with pytest.raises(ApiException) as info:
            api.create_namespaced_pod_eviction("web-1", namespace, body)
        return info.value

    err = await asyncio.to_thread(evict)
    assert err.status == 429
    assert "Cannot evict pod as it would violate the pod's disruption budget." in str(err.body)
    assert "needs 2 healthy pods and has 2 currently" in str(err.body)
    assert (await client.get(PODS, "web-1", namespace))["metadata"].get("deletionTimestamp") is None


async def test_eviction_is_charged_and_recorded(
    client: Client, namespace: str, run_controllers: Any
) -> None:
    await run_controllers("disruption")
    await _ready_pods(client, namespace, 3)
    await client.create(
        PDBS,
        _pdb("web", {"maxUnavailable": "34%", "selector": {"matchLabels": {"app": "web"}}}),
        namespace,
    )
    # maxUnavailable counts the owners' scale: these pods have none, so nothing may go
    status = await eventually(
        lambda: _status_with(client, namespace, "web", observedGeneration=1), within=30
    )
    assert (status["expectedPods"], status["disruptionsAllowed"]) == (0, 0)

    # switch to an integer minAvailable: pods are counted directly
    pdb = await client.get(PDBS, "web", namespace)
    pdb["spec"] = {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}
    await client.update(PDBS, pdb)
    await eventually(
        lambda: _status_with(client, namespace, "web", observedGeneration=2, disruptionsAllowed=2),
        within=30,
    )
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "web-0", "namespace": namespace},
    }
    await client.create_subresource(PODS, "web-0", "eviction", eviction, namespace)
    # the evicted pod is recorded by the API server and no longer counted as healthy
    status = await eventually(
        lambda: _status_with(client, namespace, "web", currentHealthy=2, disruptionsAllowed=1),
        within=30,
    )
    assert set(status.get("disruptedPods") or {}) <= {"web-0"}


async def test_controller_scale_and_sync_failure(
    client: Client, namespace: str, run_controllers: Any
) -> None:
    await run_controllers("disruption")
    rc = await client.create(
        RCS,
        {
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "metadata": {"name": "rc"},
            "spec": {
                "replicas": 4,
                "selector": {"app": "db"},
                "template": {
                    "metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        },
        namespace,
    )
    owner = {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "name": "rc",
        "uid": rc["metadata"]["uid"],
        "controller": True,
    }
    for i in range(3):
        pod = await client.create(PODS, _pod(f"db-{i}", {"app": "db"}, owner), namespace)
        await set_running(client, pod, f"10.0.1.{i + 1}")
    await client.create(
        PDBS,
        _pdb("db", {"minAvailable": "50%", "selector": {"matchLabels": {"app": "db"}}}),
        namespace,
    )
    # expected = the RC's 4 replicas; 50% of 4 = 2 desired; 3 healthy → 1 allowed
    status = await eventually(
        lambda: _status_with(client, namespace, "db", expectedPods=4, disruptionsAllowed=1),
        within=30,
    )
    assert status["desiredHealthy"] == 2

    # a selected pod whose controller does not exist: the status cannot be computed
    ghost = {**owner, "name": "gone", "uid": "00000000-0000-0000-0000-000000000000"}
    pod = await client.create(PODS, _pod("db-ghost", {"app": "db"}, ghost), namespace)
    await set_running(client, pod, "10.0.1.9")

    async def failed() -> dict[str, Any] | None:
        st = await _status(client, namespace, "db")
        return st if _condition(st).get("reason") == "SyncFailed" else None

    status = await eventually(failed, within=30)
    assert status["disruptionsAllowed"] == 0
    assert _condition(status)["message"] == 'found no controllers for pod "db-ghost"'


async def _status_with(
    client: Client, namespace: str, name: str, **want: Any
) -> dict[str, Any] | None:
    st = await _status(client, namespace, name)
    return st if all(st.get(k) == v for k, v in want.items()) else None
