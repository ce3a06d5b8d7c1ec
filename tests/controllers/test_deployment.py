"""The Deployment controller (with the ReplicaSet controller) against a real API server,
driven partly through the real kubectl (``rollout undo|status|pause|resume|restart``).

No scheduler or kubelet runs: pods stay Pending until the test marks them ready through
pods/status, as a kubelet would. A pod watch checks the rollout's bounds on every event.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from pyk8s.api.registry import REGISTRY
from pyk8s.client import Client
from tests.controllers.conftest import eventually
from tests.controllers.test_replicaset import mark_ready
from tests.integration.conftest import KUBECTL, Kubectl, Server

PODS = REGISTRY.get("", "v1", "pods")
REPLICASETS = REGISTRY.get("apps", "v1", "replicasets")
DEPLOYMENTS = REGISTRY.get("apps", "v1", "deployments")
EVENTS = REGISTRY.get("", "v1", "events")
assert PODS and REPLICASETS and DEPLOYMENTS and EVENTS

Obj = dict[str, Any]
REVISION = "deployment.kubernetes.io/revision"
TOUCH = "test.pyk8s.io/touch"

pytestmark = pytest.mark.skipif(not os.path.exists(KUBECTL), reason="kubectl is not installed")


def deployment(name: str, replicas: int, image: str = "img:v1", **spec: Any) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
            **spec,
        },
    }


@pytest.fixture
def kubectl(cm_server: Server) -> Kubectl:
    return Kubectl(cm_server.kubeconfig)


async def run_kubectl(kubectl: Kubectl, *args: str, check: bool = True) -> str:
    """kubectl in a thread: the controllers run in this event loop."""
    out = await asyncio.to_thread(kubectl.run, *args, check=check)
    return out.stdout


async def live_pods(client: Client, namespace: str, app: str) -> list[Obj]:
    assert PODS is not None
    out = await client.list(PODS, namespace, label_selector={"app": app})
    return [p for p in out["items"] if not p["metadata"].get("deletionTimestamp")]


async def replicasets(client: Client, namespace: str) -> list[Obj]:
    assert REPLICASETS is not None
    items: list[Obj] = (await client.list(REPLICASETS, namespace))["items"]
    return items


def _ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or ()
    )


async def ready_all(client: Client, namespace: str, app: str) -> None:
    for p in await live_pods(client, namespace, app):
        if not _ready(p):
            await mark_ready(client, p)


async def rolled_out(client: Client, namespace: str, name: str, revision: str) -> Obj | None:
    """Complete as kubectl rollout status judges it, at ``revision``; marks pods ready."""
    assert DEPLOYMENTS is not None
    await ready_all(client, namespace, name)
    d = await client.get(DEPLOYMENTS, name, namespace)
    st = d.get("status") or {}
    want = d["spec"]["replicas"]
    ok = (
        st.get("observedGeneration", 0) >= d["metadata"]["generation"]
        and st.get("updatedReplicas") == want
        and st.get("replicas") == want
        and st.get("availableReplicas") == want
        and d["metadata"].get("annotations", {}).get(REVISION) == revision
    )
    return d if ok else None


@dataclass
class PodWatch:
    """Every pod event of one app: how many pods existed and were ready, at worst."""

    pods: dict[str, Obj] = field(default_factory=dict)
    max_pods: int = 0
    min_ready: int | None = None
    checking_ready: bool = False
    #: (rs names with live pods) after each event
    owners_seen: list[frozenset[str]] = field(default_factory=list)

    def apply(self, etype: str, pod: Obj) -> None:
        name = pod["metadata"]["name"]
        if etype == "DELETED" or pod["metadata"].get("deletionTimestamp"):
            self.pods.pop(name, None)
        else:
            self.pods[name] = pod
        self.max_pods = max(self.max_pods, len(self.pods))
        ready = sum(1 for p in self.pods.values() if _ready(p))
        if self.checking_ready:
            self.min_ready = ready if self.min_ready is None else min(self.min_ready, ready)
        self.owners_seen.append(
            frozenset(
                r["name"] for p in self.pods.values() for r in p["metadata"]["ownerReferences"]
            )
        )

    async def caught_up(self, client: Client, namespace: str) -> None:
        """Wait until the watch has applied every pod event written before this call.

        A watch delivers events in resourceVersion order: annotate one live pod now and,
        once that write has come through, every earlier write has too.
        """
        assert PODS is not None
        (pod, *_) = [p for p in self.pods.values() if not p["metadata"].get("deletionTimestamp")]
        name, token = pod["metadata"]["name"], uuid.uuid4().hex
        await client.patch(
            PODS,
            name,
            {"metadata": {"annotations": {TOUCH: token}}},
            namespace,
            patch_type="merge",
        )

        async def delivered() -> bool:
            seen = self.pods.get(name)
            return bool(seen and (seen["metadata"].get("annotations") or {}).get(TOUCH) == token)

        await eventually(delivered, within=30, every=0.05)


@contextlib.asynccontextmanager
async def watch_pods(client: Client, namespace: str, app: str) -> AsyncIterator[PodWatch]:
    assert PODS is not None
    state = PodWatch()
    listed = await client.list(PODS, namespace, label_selector={"app": app})
    for p in listed["items"]:
        state.apply("ADDED", p)

    async def follow() -> None:
        assert PODS is not None
        rv = listed["metadata"]["resourceVersion"]
        async with client.watch(
            PODS, namespace, label_selector={"app": app}, resource_version=rv
        ) as events:
            async for etype, obj in events:
                if etype in ("ADDED", "MODIFIED", "DELETED"):
                    state.apply(etype, obj)

    task = asyncio.create_task(follow())
    try:
        yield state
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def test_create_makes_a_replicaset_with_the_hash_and_revision(
    client: Client, namespace: str, run_controllers: Any, kubectl: Kubectl
) -> None:
    assert DEPLOYMENTS is not None and EVENTS is not None
    await run_controllers("replicaset", "deployment")
    await client.create(DEPLOYMENTS, deployment("web", 3), namespace)

    async def one_rs_with_pods() -> Obj | None:
        rss = await replicasets(client, namespace)
        pods = await live_pods(client, namespace, "web")
        return rss[0] if len(rss) == 1 and len(pods) == 3 else None

    rs = await eventually(one_rs_with_pods, within=30)
    pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert rs["metadata"]["annotations"][REVISION] == "1"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": pod_hash}
    (ref,) = rs["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["controller"]) == ("Deployment", "web", True)
    for p in await live_pods(client, namespace, "web"):
        assert p["metadata"]["labels"]["pod-template-hash"] == pod_hash
        assert p["metadata"]["generateName"] == f"web-{pod_hash}-"

    d = await eventually(lambda: rolled_out(client, namespace, "web", "1"), within=30)
    conds = {c["type"]: c for c in d["status"]["conditions"]}
    assert conds["Available"]["status"] == "True"
    assert conds["Available"]["reason"] == "MinimumReplicasAvailable"
    assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert (
        conds["Progressing"]["message"]
        == f'ReplicaSet "web-{pod_hash}" has successfully progressed.'
    )

    out = await run_kubectl(
        kubectl, "-n", namespace, "rollout", "status", "deployment/web", "--timeout=30s"
    )
    assert 'deployment "web" successfully rolled out' in out

    evs = (await client.list(EVENTS, namespace))["items"]
    messages = [
        e["message"]
        for e in evs
        if e["reason"] == "ScalingReplicaSet"
        and e["source"]["component"] == "deployment-controller"
    ]
    assert f"Scaled up replica set web-{pod_hash} to 3" in messages


async def test_rolling_update_respects_surge_and_unavailability_then_undo(
    client: Client, namespace: str, run_controllers: Any, kubectl: Kubectl
) -> None:
    assert DEPLOYMENTS is not None
    await run_controllers("replicaset", "deployment")
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}
    await client.create(DEPLOYMENTS, deployment("roll", 3, strategy=strategy), namespace)
    await eventually(lambda: rolled_out(client, namespace, "roll", "1"), within=30)
    (first_rs,) = await replicasets(client, namespace)

    async with watch_pods(client, namespace, "roll") as watch:
        await watch.caught_up(client, namespace)  # the watch is live before the rollout
        watch.checking_ready = True
        await client.patch(
            DEPLOYMENTS,
            "roll",
            {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "img:v2"}]}}}},
            namespace,
        )

        async def step() -> Obj | None:
            # one pod at a time becomes ready, as slow containers would
            for p in await live_pods(client, namespace, "roll"):
                if not _ready(p):
                    await mark_ready(client, p)
                    await asyncio.sleep(0.3)
                    break
            return await rolled_out(client, namespace, "roll", "2")

        await eventually(step, within=60, every=0.3)
        await watch.caught_up(client, namespace)
        assert watch.max_pods <= 3 + 1, f"surged to {watch.max_pods} pods"
        assert watch.min_ready is not None and watch.min_ready >= 3 - 1, (
            f"only {watch.min_ready} ready"
        )

    rss = {rs["metadata"]["name"]: rs for rs in await replicasets(client, namespace)}
    assert len(rss) == 2
    # the watch followed the whole rollout: it saw pods of both replica sets
    assert set().union(*watch.owners_seen) == set(rss)
    old = rss[first_rs["metadata"]["name"]]
    (new,) = [rs for n, rs in rss.items() if n != first_rs["metadata"]["name"]]
    assert old["spec"]["replicas"] == 0
    assert new["spec"]["replicas"] == 3
    assert new["metadata"]["annotations"][REVISION] == "2"
    assert new["spec"]["template"]["spec"]["containers"][0]["image"] == "img:v2"

    # kubectl rollout undo: client-side, the old template comes back as revision 3
    await run_kubectl(kubectl, "-n", namespace, "rollout", "undo", "deployment/roll")
    d = await eventually(lambda: rolled_out(client, namespace, "roll", "3"), within=60)
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "img:v1"
    back = next(
        rs
        for rs in await replicasets(client, namespace)
        if rs["metadata"]["name"] == first_rs["metadata"]["name"]
    )
    assert back["metadata"]["annotations"][REVISION] == "3"
    assert back["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    assert back["spec"]["replicas"] == 3
    assert len(await replicasets(client, namespace)) == 2
    history = await run_kubectl(kubectl, "-n", namespace, "rollout", "history", "deployment/roll")
    assert "2" in history and "3" in history


async def test_paused_deployment_does_not_roll_until_resumed(
    client: Client, namespace: str, run_controllers: Any, kubectl: Kubectl
) -> None:
    assert DEPLOYMENTS is not None
    await run_controllers("replicaset", "deployment")
    await client.create(DEPLOYMENTS, deployment("pause", 2), namespace)
    await eventually(lambda: rolled_out(client, namespace, "pause", "1"), within=30)

    await run_kubectl(kubectl, "-n", namespace, "rollout", "pause", "deployment/pause")
    await run_kubectl(kubectl, "-n", namespace, "set", "image", "deployment/pause", "c=img:v2")

    async def observed_paused() -> Obj | None:
        d = await client.get(DEPLOYMENTS, "pause", namespace)
        st = d.get("status") or {}
        conds = {c["type"]: c for c in st.get("conditions") or ()}
        ok = (
            st.get("observedGeneration") == d["metadata"]["generation"]
            and conds.get("Progressing", {}).get("reason") == "DeploymentPaused"
        )
        return d if ok else None

    # the controller has synced the new generation (status.observedGeneration) while
    # paused: that pass would have made the new ReplicaSet, and made none
    await eventually(observed_paused, within=30)
    assert len(await replicasets(client, namespace)) == 1

    await run_kubectl(kubectl, "-n", namespace, "rollout", "resume", "deployment/pause")
    await eventually(lambda: rolled_out(client, namespace, "pause", "2"), within=60)
    assert len(await replicasets(client, namespace)) == 2

    # rollout restart: a template annotation change is a new revision
    await run_kubectl(kubectl, "-n", namespace, "rollout", "restart", "deployment/pause")
    d = await eventually(lambda: rolled_out(client, namespace, "pause", "3"), within=60)
    assert "kubectl.kubernetes.io/restartedAt" in d["spec"]["template"]["metadata"]["annotations"]
    assert len(await replicasets(client, namespace)) == 3
    out = await run_kubectl(
        kubectl, "-n", namespace, "rollout", "status", "deployment/pause", "--timeout=30s"
    )
    assert "successfully rolled out" in out


async def test_recreate_deletes_old_pods_first(
    client: Client, namespace: str, run_controllers: Any
) -> None:
    assert DEPLOYMENTS is not None
    await run_controllers("replicaset", "deployment")
    await client.create(DEPLOYMENTS, deployment("rec", 2, strategy={"type": "Recreate"}), namespace)
    await eventually(lambda: rolled_out(client, namespace, "rec", "1"), within=30)

    async with watch_pods(client, namespace, "rec") as watch:
        await client.patch(
            DEPLOYMENTS,
            "rec",
            {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "img:v2"}]}}}},
            namespace,
        )
        await eventually(lambda: rolled_out(client, namespace, "rec", "2"), within=60)
        await watch.caught_up(client, namespace)
        assert all(len(owners) <= 1 for owners in watch.owners_seen), (
            "old and new pods existed together"
        )
    rss = await replicasets(client, namespace)
    assert sorted(rs["spec"]["replicas"] for rs in rss) == [0, 2]
    assert set().union(*watch.owners_seen) == {rs["metadata"]["name"] for rs in rss}


async def test_revision_history_limit_cleans_old_replicasets(
    client: Client, namespace: str, run_controllers: Any
) -> None:
    assert DEPLOYMENTS is not None
    await run_controllers("replicaset", "deployment")
    await client.create(DEPLOYMENTS, deployment("hist", 1, revisionHistoryLimit=1), namespace)
    await eventually(lambda: rolled_out(client, namespace, "hist", "1"), within=30)
    for rev, image in (("2", "img:v2"), ("3", "img:v3")):
        await client.patch(
            DEPLOYMENTS,
            "hist",
            {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}},
            namespace,
        )
        await eventually(functools.partial(rolled_out, client, namespace, "hist", rev), within=60)

    async def two_left() -> bool:
        return len(await replicasets(client, namespace)) == 2

    await eventually(two_left, within=30)


async def test_progress_deadline_exceeded(
    client: Client, namespace: str, run_controllers: Any, kubectl: Kubectl
) -> None:
    assert DEPLOYMENTS is not None
    await run_controllers("replicaset", "deployment")
    await client.create(DEPLOYMENTS, deployment("stuck", 1, progressDeadlineSeconds=2), namespace)

    # the pod never becomes ready
    async def timed_out() -> Obj | None:
        d = await client.get(DEPLOYMENTS, "stuck", namespace)
        conds = {c["type"]: c for c in (d.get("status") or {}).get("conditions") or ()}
        p = conds.get("Progressing", {})
        return p if p.get("reason") == "ProgressDeadlineExceeded" else None

    cond = await eventually(timed_out, within=30)
    assert cond["status"] == "False"
    assert cond["message"].endswith("has timed out progressing.")
    out = await asyncio.to_thread(
        kubectl.run, "-n", namespace, "rollout", "status", "deployment/stuck", check=False
    )
    assert out.returncode != 0
    assert 'deployment "stuck" exceeded its progress deadline' in out.stderr


async def test_scaling_keeps_the_replicaset_and_annotations(
    client: Client, namespace: str, run_controllers: Any, kubectl: Kubectl
) -> None:
    assert DEPLOYMENTS is not None
    await run_controllers("replicaset", "deployment")
    await client.create(DEPLOYMENTS, deployment("scale", 2), namespace)
    await eventually(lambda: rolled_out(client, namespace, "scale", "1"), within=30)
    await run_kubectl(kubectl, "-n", namespace, "scale", "deployment/scale", "--replicas=4")
    await eventually(lambda: rolled_out(client, namespace, "scale", "1"), within=30)

    async def four() -> bool:
        return len(await live_pods(client, namespace, "scale")) == 4

    await eventually(four, within=30)
    (rs,) = await replicasets(client, namespace)
    ann = rs["metadata"]["annotations"]
    assert ann["deployment.kubernetes.io/desired-replicas"] == "4"
    assert ann["deployment.kubernetes.io/max-replicas"] == "5"  # 4 + 25% rounded up


def test_fenceposts_round_surge_up_and_unavailable_down() -> None:
    from pyk8s.controllers.deployment import max_surge, max_unavailable, resolve_fenceposts

    def d(replicas: int, surge: Any, unavailable: Any) -> Obj:
        rolling = {"maxSurge": surge, "maxUnavailable": unavailable}
        return deployment(
            "x", replicas, strategy={"type": "RollingUpdate", "rollingUpdate": rolling}
        )

    assert resolve_fenceposts(d(10, "25%", "25%")) == (3, 2)
    assert resolve_fenceposts(d(3, "25%", "25%")) == (1, 0)
    assert resolve_fenceposts(d(3, 0, 0)) == (0, 1)  # never both zero
    assert max_unavailable(d(2, 0, 5)) == 2  # capped at replicas
    assert max_surge(deployment("x", 3, strategy={"type": "Recreate"})) == 0


def test_reused_replicaset_keeps_its_revision_history() -> None:
    from pyk8s.controllers.deployment import set_new_rs_annotations

    d = deployment("x", 1)
    d["metadata"]["annotations"] = {"kubernetes.io/change-cause": "undo", REVISION: "2"}
    rs: Obj = {"metadata": {"annotations": {REVISION: "1"}}}
    assert set_new_rs_annotations(d, rs, 3, True)
    ann = rs["metadata"]["annotations"]
    assert ann[REVISION] == "3"
    assert ann["deployment.kubernetes.io/revision-history"] == "1"
    assert ann["kubernetes.io/change-cause"] == "undo"
    assert set_new_rs_annotations(d, rs, 5, True)
    assert ann["deployment.kubernetes.io/revision-history"] == "1,3"
    assert not set_new_rs_annotations(d, rs, 5, True)
