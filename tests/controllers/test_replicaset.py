"""The ReplicaSet (and ReplicationController) controller against a real API server.

No scheduler or kubelet runs here: pods stay Pending until a test marks them ready
through the pods/status subresource, as a kubelet would.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pyk8s.api.registry import REGISTRY
from pyk8s.client import Client
from tests.controllers.conftest import eventually

PODS = REGISTRY.get("", "v1", "pods")
REPLICASETS = REGISTRY.get("apps", "v1", "replicasets")
RCS = REGISTRY.get("", "v1", "replicationcontrollers")
EVENTS = REGISTRY.get("", "v1", "events")
assert PODS and REPLICASETS and RCS and EVENTS

Obj = dict[str, Any]


def template(labels: dict[str, str], image: str = "busybox") -> Obj:
    return {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "c", "image": image}]},
    }


def replicaset(name: str, replicas: int, **spec: Any) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": template({"app": name}),
            **spec,
        },
    }


async def pods_of(client: Client, namespace: str, app: str) -> list[Obj]:
    assert PODS is not None
    out = await client.list(PODS, namespace, label_selector={"app": app})
    return [p for p in out["items"] if not p["metadata"].get("deletionTimestamp")]


async def mark_ready(client: Client, pod: Obj) -> None:
    """What a kubelet does once the containers run: phase Running, Ready=True."""
    assert PODS is not None
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = {
        "phase": "Running",
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
        ],
    }
    await client.patch(
        PODS,
        pod["metadata"]["name"],
        {"status": status},
        pod["metadata"]["namespace"],
        patch_type="merge",
        subresource="status",
    )


async def count_is(client: Client, namespace: str, app: str, n: int) -> list[Obj] | None:
    pods = await pods_of(client, namespace, app)
    return pods if len(pods) == n else None


async def test_scale_up_and_down_to_the_exact_count(
    client: Client, namespace: str, run_controllers: Any
) -> None:
    assert REPLICASETS is not None and EVENTS is not None
    await run_controllers("replicaset")
    rs = await client.create(REPLICASETS, replicaset("web", 3), namespace)
    pods = await eventually(lambda: count_is(client, namespace, "web", 3), within=30)
    for p in pods:
        meta = p["metadata"]
        assert meta["generateName"] == "web-"
        assert meta["name"].startswith("web-")
        assert meta["labels"] == {"app": "web"}
        (ref,) = meta["ownerReferences"]
        assert ref == {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "web",
            "uid": rs["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }

    # one ready pod: scaling down removes the not-ready ones first
    await mark_ready(client, pods[0])
    await client.patch(REPLICASETS, "web", {"spec": {"replicas": 1}}, namespace, patch_type="merge")
    remaining = await eventually(lambda: count_is(client, namespace, "web", 1), within=30)
    assert remaining[0]["metadata"]["name"] == pods[0]["metadata"]["name"]

    await client.patch(REPLICASETS, "web", {"spec": {"replicas": 4}}, namespace, patch_type="merge")
    await eventually(lambda: count_is(client, namespace, "web", 4), within=30)

    async def settled() -> bool:
        st = (await client.get(REPLICASETS, "web", namespace)).get("status") or {}
        return st.get("replicas") == 4

    await eventually(settled, within=20)
    # exact: no double creation from a stale cache
    assert len(await pods_of(client, namespace, "web")) == 4

    async def events() -> set[str] | None:
        evs = await client.list(EVENTS, namespace)
        reasons = {
            e["reason"]
            for e in evs["items"]
            if e["involvedObject"].get("name") == "web"
            and e["source"]["component"] == "replicaset-controller"
        }
        return reasons if {"SuccessfulCreate", "SuccessfulDelete"} <= reasons else None

    await eventually(events, within=20)


async def test_adopts_a_matching_orphan_and_releases_it(
    client: Client, namespace: str, run_controllers: Any
) -> None:
    assert PODS is not None and REPLICASETS is not None
    await client.create(
        PODS,
        {"metadata": {"name": "orphan", "labels": {"app": "adopt"}}, "spec": template({})["spec"]},
        namespace,
    )
    await run_controllers("replicaset")
    rs = await client.create(REPLICASETS, replicaset("adopt", 2), namespace)
    pods = await eventually(lambda: count_is(client, namespace, "adopt", 2), within=30)
    assert "orphan" in {p["metadata"]["name"] for p in pods}

    async def adopted() -> bool:
        pod = await client.get(PODS, "orphan", namespace)
        refs = pod["metadata"].get("ownerReferences") or []
        return any(r["uid"] == rs["metadata"]["uid"] and r.get("controller") for r in refs)

    await eventually(adopted, within=20)

    # relabelling releases it, and a replacement is created
    await client.patch(
        PODS, "orphan", {"metadata": {"labels": {"app": "other"}}}, namespace, patch_type="merge"
    )

    async def released() -> bool:
        pod = await client.get(PODS, "orphan", namespace)
        return not pod["metadata"].get("ownerReferences")

    await eventually(released, within=20)
    after = await eventually(lambda: count_is(client, namespace, "adopt", 2), within=30)
    assert "orphan" not in {p["metadata"]["name"] for p in after}


async def test_replaces_a_deleted_pod_and_reports_status(
    client: Client, namespace: str, run_controllers: Any
) -> None:
    assert PODS is not None and REPLICASETS is not None
    await run_controllers("replicaset")
    await client.create(REPLICASETS, replicaset("keep", 3), namespace)
    pods = await eventually(lambda: count_is(client, namespace, "keep", 3), within=30)
    victim = pods[0]["metadata"]["name"]
    await client.delete(PODS, victim, namespace)

    async def replaced() -> list[Obj] | None:
        now = await count_is(client, namespace, "keep", 3)
        return now if now and victim not in {p["metadata"]["name"] for p in now} else None

    pods = await eventually(replaced, within=30)
    await mark_ready(client, pods[0])
    await mark_ready(client, pods[1])

    async def status() -> Obj | None:
        rs = await client.get(REPLICASETS, "keep", namespace)
        st: Obj = rs.get("status") or {}
        want = {
            "replicas": 3,
            "fullyLabeledReplicas": 3,
            "readyReplicas": 2,
            "availableReplicas": 2,
            "observedGeneration": rs["metadata"]["generation"],
        }
        return st if all(st.get(k) == v for k, v in want.items()) else None

    await eventually(status, within=30)


async def test_min_ready_seconds_delays_availability(
    client: Client, namespace: str, run_controllers: Any
) -> None:
    assert REPLICASETS is not None
    await run_controllers("replicaset")
    await client.create(REPLICASETS, replicaset("slow", 1, minReadySeconds=2), namespace)
    (pod,) = await eventually(lambda: count_is(client, namespace, "slow", 1), within=30)
    await mark_ready(client, pod)

    async def status(avail: int) -> bool:
        st = (await client.get(REPLICASETS, "slow", namespace)).get("status") or {}
        return st.get("readyReplicas") == 1 and (st.get("availableReplicas") or 0) == avail

    await eventually(lambda: status(0), within=20)
    await eventually(lambda: status(1), within=20)


async def test_replication_controller_uses_its_map_selector(
    client: Client, namespace: str, run_controllers: Any
) -> None:
    assert RCS is not None
    await run_controllers("replicationcontroller")
    rc = await client.create(
        RCS,
        {
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "metadata": {"name": "rc"},
            "spec": {"replicas": 2, "selector": {"app": "rc"}, "template": template({"app": "rc"})},
        },
        namespace,
    )
    pods = await eventually(lambda: count_is(client, namespace, "rc", 2), within=30)
    for p in pods:
        (ref,) = p["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["apiVersion"], ref["uid"]) == (
            "ReplicationController",
            "v1",
            rc["metadata"]["uid"],
        )

    async def status() -> bool:
        st = (await client.get(RCS, "rc", namespace)).get("status") or {}
        return st.get("replicas") == 2 and st.get("fullyLabeledReplicas") == 2

    await eventually(status, within=20)


def _pod(
    name: str, *, node: str = "", phase: str = "Pending", ready: bool = False, age: float = 0
) -> Obj:
    created = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age)
    conds = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {
        "metadata": {"name": name, "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "spec": {"nodeName": node} if node else {},
        "status": {"phase": phase, "conditions": conds},
    }


def test_deletion_order_prefers_unscheduled_pending_not_ready_and_newer() -> None:
    from pyk8s.controllers.replicaset import pods_to_delete

    pods = [
        _pod("running-ready", node="n1", phase="Running", ready=True, age=1000),
        _pod("running-not-ready", node="n1", phase="Running", age=1000),
        _pod("pending-scheduled", node="n1", age=1000),
        _pod("unscheduled", age=1000),
        _pod("running-ready-new", node="n1", phase="Running", ready=True, age=10),
    ]
    order = [p["metadata"]["name"] for p in pods_to_delete(pods, len(pods))]
    assert order == [
        "unscheduled",
        "pending-scheduled",
        "running-not-ready",
        "running-ready-new",
        "running-ready",
    ]
