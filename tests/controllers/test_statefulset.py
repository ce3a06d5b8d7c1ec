"""The StatefulSet controller against a real API server.

No scheduler or kubelet runs: pods stay Pending until the test marks them Running and
Ready through pods/status, as a kubelet would (tests.controllers.podsim).
"""

from __future__ import annotations

from typing import Any

from pyk8s.api.registry import REGISTRY
from pyk8s.client import Client
from tests.controllers.conftest import eventually
from tests.controllers.podsim import set_running
from tests.controllers.synced import touch_and_wait_for_sync

PODS = REGISTRY.get("", "v1", "pods")
PVCS = REGISTRY.get("", "v1", "persistentvolumeclaims")
STS = REGISTRY.get("apps", "v1", "statefulsets")
REVISIONS = REGISTRY.get("apps", "v1", "controllerrevisions")
EVENTS = REGISTRY.get("", "v1", "events")
assert PODS and PVCS and STS and REVISIONS and EVENTS

Obj = dict[str, Any]


def statefulset(name: str, replicas: int, image: str = "busybox:1", **spec: Any) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
            **spec,
        },
    }


async def pods_by_name(client: Client, ns: str, app: str) -> dict[str, Obj]:
    assert PODS is not None
    out = await client.list(PODS, ns, label_selector={"app": app})
    return {
        p["metadata"]["name"]: p for p in out["items"] if not p["metadata"].get("deletionTimestamp")
    }


async def ready(client: Client, pod: Obj, i: int) -> None:
    await set_running(client, pod, f"10.0.0.{i + 10}")


async def make_all_ready(client: Client, ns: str, app: str, n: int) -> dict[str, Obj]:
    """Mark pods ready as they appear (OrderedReady creates them one by one)."""
    marked: set[str] = set()

    async def step() -> dict[str, Obj] | None:
        pods = await pods_by_name(client, ns, app)
        for name, pod in pods.items():
            if name not in marked and (pod.get("status") or {}).get("phase") != "Running":
                await ready(client, pod, int(name.rsplit("-", 1)[1]))
                marked.add(name)
        running = {
            k: p for k, p in pods.items() if (p.get("status") or {}).get("phase") == "Running"
        }
        return pods if len(running) == n and len(pods) == n else None

    result: dict[str, Obj] = await eventually(step, within=40)
    return result


async def sts_status(client: Client, ns: str, name: str) -> Obj:
    assert STS is not None
    obj = await client.get(STS, name, ns)
    status: Obj = obj.get("status") or {}
    return status


async def test_ordered_ready_creates_one_at_a_time_with_identity(
    client: Client, namespace: str, run_controllers: Any
) -> None:
    assert STS is not None and EVENTS is not None and REVISIONS is not None
    manager = await run_controllers("statefulset")
    await client.create(STS, statefulset("web", 2), namespace)

    pods = await eventually(lambda: _named(client, namespace, "web", {"web-0"}), within=20)
    web0 = pods["web-0"]
    labels = web0["metadata"]["labels"]
    assert labels["statefulset.kubernetes.io/pod-name"] == "web-0"
    assert labels["apps.kubernetes.io/pod-index"] == "0"
    assert labels["controller-revision-hash"].startswith("web-")
    assert web0["spec"]["hostname"] == "web-0"
    assert web0["spec"]["subdomain"] == "web"
    ref = web0["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["controller"]) == ("StatefulSet", "web", True)

    # web-1 waits for web-0 to be Running and Ready: a pass that saw web-0 not ready
    await touch_and_wait_for_sync(client, manager, "statefulset", STS, namespace, "web")
    assert set(await pods_by_name(client, namespace, "web")) == {"web-0"}
    await ready(client, web0, 0)
    pods = await eventually(lambda: _named(client, namespace, "web", {"web-0", "web-1"}), within=20)
    await ready(client, pods["web-1"], 1)

    async def status_done() -> Obj | None:
        st = await sts_status(client, namespace, "web")
        return st if st.get("readyReplicas") == 2 and st.get("availableReplicas") == 2 else None

    st = await eventually(status_done, within=20)
    assert st["replicas"] == 2
    assert st["currentReplicas"] == 2 and st["updatedReplicas"] == 2
    assert st["currentRevision"] == st["updateRevision"] == labels["controller-revision-hash"]
    assert st["observedGeneration"] >= 1
    revs = await client.list(REVISIONS, namespace)
    assert [(r["metadata"]["name"], r["revision"]) for r in revs["items"]] == [
        (st["updateRevision"], 1)
    ]

    async def created_event() -> bool:
        evs = await client.list(EVENTS, namespace)
        return any(
            e["reason"] == "SuccessfulCreate"
            and e["message"] == "create Pod web-0 in StatefulSet web successful"
            for e in evs["items"]
        )

    await eventually(created_event, within=20)


async def _named(client: Client, ns: str, app: str, names: set[str]) -> dict[str, Obj] | None:
    pods = await pods_by_name(client, ns, app)
    return pods if set(pods) == names else None


async def test_scale_down_removes_the_highest_ordinal_first(
    client: Client, namespace: str, run_controllers: Any
) -> None:
    assert STS is not None
    await run_controllers("statefulset")
    await client.create(STS, statefulset("db", 3), namespace)
    await make_all_ready(client, namespace, "db", 3)

    await client.patch(STS, "db", {"spec": {"replicas": 1}}, namespace, patch_type="merge")
    await eventually(lambda: _named(client, namespace, "db", {"db-0"}), within=20)

    # db-2 went first, db-1 after it (the events say in which order)
    async def deletions() -> list[str] | None:
        assert EVENTS is not None
        evs = await client.list(EVENTS, namespace)
        found = sorted(
            (e["metadata"]["creationTimestamp"], e["metadata"]["name"], e["message"])
            for e in evs["items"]
            if e["reason"] == "SuccessfulDelete"
        )
        msgs = [m for _, _, m in found]
        return msgs if len(msgs) == 2 else None

    assert await eventually(deletions, within=20) == [
        "delete Pod db-2 in StatefulSet db successful",
        "delete Pod db-1 in StatefulSet db successful",
    ]

    async def status_one() -> bool:
        st = await sts_status(client, namespace, "db")
        return st.get("replicas") == 1 and st.get("readyReplicas") == 1

    await eventually(status_one, within=20)


async def test_parallel_creates_all_at_once(
    client: Client, namespace: str, run_controllers: Any
) -> None:
    assert STS is not None
    await run_controllers("statefulset")
    await client.create(STS, statefulset("par", 3, podManagementPolicy="Parallel"), namespace)
    await eventually(
        lambda: _named(client, namespace, "par", {"par-0", "par-1", "par-2"}), within=20
    )


async def test_volume_claim_templates_become_pvcs_before_the_pod(
    client: Client, namespace: str, run_controllers: Any
) -> None:
    assert STS is not None and PVCS is not None
    await run_controllers("statefulset")
    claim = {
        "metadata": {"name": "www"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    await client.create(
        STS,
        statefulset("vol", 2, podManagementPolicy="Parallel", volumeClaimTemplates=[claim]),
        namespace,
    )
    pods = await eventually(lambda: _named(client, namespace, "vol", {"vol-0", "vol-1"}), within=20)
    pvcs = await client.list(PVCS, namespace)
    by_name = {p["metadata"]["name"]: p for p in pvcs["items"]}
    assert set(by_name) == {"www-vol-0", "www-vol-1"}
    assert by_name["www-vol-0"]["metadata"]["labels"] == {"app": "vol"}
    assert by_name["www-vol-0"]["spec"]["resources"]["requests"]["storage"] == "1Gi"
    # Retain by default: no owner, the claim outlives the set
    assert not by_name["www-vol-0"]["metadata"].get("ownerReferences")
    volumes = pods["vol-0"]["spec"]["volumes"]
    assert {"name": "www", "persistentVolumeClaim": {"claimName": "www-vol-0"}} in volumes


async def test_template_change_rolls_from_the_highest_ordinal_and_partition_holds(
    client: Client, namespace: str, run_controllers: Any
) -> None:
    assert STS is not None
    manager = await run_controllers("statefulset")
    await client.create(
        STS,
        statefulset(
            "roll",
            3,
            updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
        ),
        namespace,
    )
    before = await make_all_ready(client, namespace, "roll", 3)
    old_rev = before["roll-0"]["metadata"]["labels"]["controller-revision-hash"]

    await client.patch(
        STS,
        "roll",
        {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}},
        namespace,
        patch_type="merge",
    )

    async def image_of(name: str) -> str | None:
        pods = await pods_by_name(client, namespace, "roll")
        pod = pods.get(name)
        return pod["spec"]["containers"][0]["image"] if pod else None

    # roll-2 is replaced first; roll-1 waits until the new roll-2 is ready
    await eventually(lambda: _image_is(image_of, "roll-2", "busybox:2"), within=20)
    await touch_and_wait_for_sync(client, manager, "statefulset", STS, namespace, "roll")
    assert await image_of("roll-1") == "busybox:1"
    pods = await pods_by_name(client, namespace, "roll")
    await ready(client, pods["roll-2"], 2)
    await eventually(lambda: _image_is(image_of, "roll-1", "busybox:2"), within=20)
    pods = await pods_by_name(client, namespace, "roll")
    await ready(client, pods["roll-1"], 1)

    async def rolled() -> Obj | None:
        st = await sts_status(client, namespace, "roll")
        return st if st.get("updatedReplicas") == 2 and st.get("readyReplicas") == 3 else None

    st = await eventually(rolled, within=20)
    # the partition holds roll-0 on the old revision, in a pass after the rollout's end
    await touch_and_wait_for_sync(client, manager, "statefulset", STS, namespace, "roll")
    pods = await pods_by_name(client, namespace, "roll")
    assert pods["roll-0"]["spec"]["containers"][0]["image"] == "busybox:1"
    assert pods["roll-0"]["metadata"]["labels"]["controller-revision-hash"] == old_rev
    assert st["currentRevision"] == old_rev
    assert st["updateRevision"] != old_rev
    assert pods["roll-2"]["metadata"]["labels"]["controller-revision-hash"] == st["updateRevision"]

    # lifting the partition finishes the rollout
    await client.patch(
        STS,
        "roll",
        {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}},
        namespace,
        patch_type="merge",
    )
    await eventually(lambda: _image_is(image_of, "roll-0", "busybox:2"), within=20)
    pods = await pods_by_name(client, namespace, "roll")
    await ready(client, pods["roll-0"], 0)

    async def complete() -> bool:
        s = await sts_status(client, namespace, "roll")
        return s.get("currentRevision") == s.get("updateRevision") and s.get("currentReplicas") == 3

    await eventually(complete, within=20)


async def _image_is(get: Any, name: str, image: str) -> bool:
    return bool(await get(name) == image)
