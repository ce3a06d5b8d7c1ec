"""VolumeBinding, VolumeZone, NodeVolumeLimits and the PreBind extension point on plain
dicts (listers over in-memory objects, a fake client recording the API writes): upstream's
reasons and messages, which node a WaitForFirstConsumer claim fits, what PreBind writes,
and that a failed PreBind unreserves."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import pytest

from pyk8s.api.registry import REGISTRY
from pyk8s.client import Client, ClientError
from pyk8s.scheduler import Scheduler
from pyk8s.scheduler.cache import Cache
from pyk8s.scheduler.framework import CycleState, build_framework, fit_error_message
from pyk8s.scheduler.framework.interface import Code
from pyk8s.scheduler.plugins import volumebinding as vb
from pyk8s.scheduler.plugins.nodevolumelimits import NodeVolumeLimits
from pyk8s.scheduler.plugins.queuesort import PrioritySort
from pyk8s.scheduler.plugins.volumezone import VolumeZone
from pyk8s.scheduler.queue import QueuedPodInfo, SchedulingQueue
from tests.scheduler.conftest import eventually
from tests.scheduler.test_scheduler import PODS, MakeNode, make_node

Obj = dict[str, Any]
EVENTS = REGISTRY.get("", "v1", "events")
PVS = REGISTRY.get("", "v1", "persistentvolumes")
PVCS = REGISTRY.get("", "v1", "persistentvolumeclaims")
SCS = REGISTRY.get("storage.k8s.io", "v1", "storageclasses")
__all__ = ["make_node"]  # the fixture


class World:
    """In-memory objects behind a scheduler Lister."""

    def __init__(self) -> None:
        self.objs: dict[str, list[Obj]] = {}

    def add(self, plural: str, obj: Obj) -> Obj:
        self.objs.setdefault(plural, []).append(obj)
        return obj

    def lister(self, group: str, version: str, plural: str, ns: str) -> list[Obj]:
        items = self.objs.get(plural, [])
        return [o for o in items if not ns or o["metadata"].get("namespace") == ns]


def node(name: str, **labels: str) -> Obj:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}},
        "spec": {},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
    }


def claim(name: str, cls: str = "local", size: str = "1Gi", **extra: Any) -> Obj:
    return {
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                     "resourceVersion": "1", **extra.pop("meta", {})},
        "spec": {"storageClassName": cls, "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": size}}, **extra},
        "status": {"phase": "Pending"},
    }  # fmt: skip


def local_pv(name: str, on: str, size: str = "5Gi", cls: str = "local") -> Obj:
    terms = [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": [on]}]}]  # fmt: skip
    return {
        "metadata": {"name": name, "resourceVersion": "1"},
        "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                 "storageClassName": cls, "local": {"path": f"/mnt/{name}"},
                 "nodeAffinity": {"required": {"nodeSelectorTerms": terms}}},
        "status": {"phase": "Available"},
    }  # fmt: skip


def sc(name: str, mode: str = "WaitForFirstConsumer", provisioner: str = "", **extra: Any) -> Obj:
    return {"metadata": {"name": name}, "provisioner": provisioner,
            "volumeBindingMode": mode, **extra}  # fmt: skip


def pod_with(*claims: str) -> Obj:
    vols = [{"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}} for i, c in
            enumerate(claims)]  # fmt: skip
    return {
        "metadata": {"name": "p", "namespace": "default", "uid": "pod-uid"},
        "spec": {"containers": [{"name": "c", "image": "i"}], "volumes": vols},
    }


def cache_of(*nodes: Obj) -> Cache:
    c = Cache(capacity=4)
    for n in nodes:
        c.add_node(n)
    return c


class FakeClient:
    """Records merge patches; applies them to the World so a watcher sees them."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.patches: list[tuple[str, str, Obj]] = []

    async def patch(
        self, res: Any, name: str, body: Mapping[str, Any], ns: str | None = None, **kw: Any
    ) -> Obj:
        self.patches.append((res.plural, name, dict(body)))
        obj = next(o for o in self.world.objs[res.plural] if o["metadata"]["name"] == name)
        _merge(obj, body)
        return obj


def _merge(into: Obj, patch: Mapping[str, Any]) -> None:
    for k, v in patch.items():
        if isinstance(v, Mapping) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v


def framework(world: World, client: Any = None, timeout: float = 600.0) -> Any:
    cfg = [{"name": "VolumeBinding", "args": {"bindTimeoutSeconds": timeout}}]
    fw = build_framework("default-scheduler", client or object(), plugin_config=cfg,
                         lister=world.lister)  # fmt: skip
    return fw


def test_missing_deleted_and_immediate_claims_are_unschedulable_in_prefilter() -> None:
    w = World()
    w.add("storageclasses", sc("local"))
    w.add("storageclasses", sc("now", mode="Immediate"))
    w.add(
        "persistentvolumeclaims", claim("gone", meta={"deletionTimestamp": "2026-01-01T00:00:00Z"})
    )
    w.add("persistentvolumeclaims", claim("im", cls="now"))
    f = framework(w)
    cache = cache_of(node("a"))
    cases = {
        "missing": 'persistentvolumeclaim "missing" not found',
        "gone": 'persistentvolumeclaim "gone" is being deleted',
        "im": "pod has unbound immediate PersistentVolumeClaims",
    }
    for name, message in cases.items():
        st = f.run_pre_filter(CycleState(), pod_with(name), cache)
        assert st is not None and st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
        # VolumeRestrictions runs first (upstream's order) and finds the missing claim
        plugin = "VolumeRestrictions" if name == "missing" else "VolumeBinding"
        assert st.plugin == plugin and st.message == message
        assert fit_error_message(1, {}, pre_filter_msg=st.message) == (
            f"0/1 nodes are available: {message}."
        )


def test_wait_for_first_consumer_fits_only_the_node_of_a_matching_local_pv() -> None:
    w = World()
    w.add("storageclasses", sc("local", provisioner="kubernetes.io/no-provisioner"))
    w.add("persistentvolumeclaims", claim("data"))
    w.add("persistentvolumes", local_pv("small", on="b", size="500Mi"))  # too small
    w.add("persistentvolumes", local_pv("pv-a", on="a"))
    f = framework(w)
    cache = cache_of(node("a"), node("b"))
    state = CycleState()
    p = pod_with("data")
    assert f.run_pre_filter(state, p, cache) is None
    feasible, statuses = f.find_feasible(state, p, cache)
    assert [cache.info(int(s)).name for s in feasible] == ["a"]
    assert statuses["b"].reasons == (vb.ERR_BIND_CONFLICT,)
    assert fit_error_message(2, statuses).endswith(
        "1 node(s) didn't find available persistent volumes to bind."
    )


def test_bound_pv_node_affinity_conflict() -> None:
    w = World()
    w.add("persistentvolumeclaims", claim("data", volumeName="pv-a"))
    w.add("persistentvolumeclaims", claim("orphan", volumeName="nope"))
    w.add("persistentvolumes", local_pv("pv-a", on="a"))
    f = framework(w)
    cache = cache_of(node("a"), node("b"))
    state = CycleState()
    f.run_pre_filter(state, pod_with("data"), cache)
    _, statuses = f.find_feasible(state, pod_with("data"), cache)
    assert statuses["b"].reasons == (vb.ERR_NODE_CONFLICT,)
    assert "a" not in statuses
    state = CycleState()
    f.run_pre_filter(state, pod_with("orphan"), cache)
    _, statuses = f.find_feasible(state, pod_with("orphan"), cache)
    assert statuses["a"].reasons == (vb.ERR_PV_NOT_EXIST,)


def test_dynamic_provisioning_honours_allowed_topologies_and_selected_node() -> None:
    w = World()
    topo = [{"matchLabelExpressions": [{"key": "zone", "values": ["z1"]}]}]
    w.add("storageclasses", sc("local", provisioner="pyk8s.io/local-path", allowedTopologies=topo))
    w.add("persistentvolumeclaims", claim("data"))
    chosen = claim("chosen", meta={"annotations": {vb.ANN_SELECTED_NODE: "b"}})
    w.add("persistentvolumeclaims", chosen)
    f = framework(w)
    cache = cache_of(node("a", zone="z1"), node("b", zone="z2"))
    for name, fits in (("data", ["a"]), ("chosen", ["b"])):
        state = CycleState()
        f.run_pre_filter(state, pod_with(name), cache)
        feasible, _ = f.find_feasible(state, pod_with(name), cache)
        assert [cache.info(int(s)).name for s in feasible] == fits


async def test_prebind_writes_claimref_and_selected_node_then_waits_for_binding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """...and wakes on the claim event that shows the binding (no re-check meanwhile)."""
    monkeypatch.setattr(vb, "POLL_INTERVAL", 3600.0)
    w = World()
    w.add("storageclasses", sc("local", provisioner="pyk8s.io/local-path"))
    static = w.add("persistentvolumeclaims", claim("static"))
    dynamic = w.add("persistentvolumeclaims", claim("dynamic", size="10Gi"))
    w.add("persistentvolumes", local_pv("pv-a", on="a"))
    client = FakeClient(w)
    f = framework(w, client)
    plugin = next(p for p in f.pre_bind if p.name == "VolumeBinding")
    cache = cache_of(node("a"), node("b"))
    p = pod_with("static", "dynamic")
    state = CycleState()
    assert f.run_pre_filter(state, p, cache) is None
    feasible, _ = f.find_feasible(state, p, cache)
    # b fits too: the class can provision both claims there
    assert [cache.info(int(s)).name for s in feasible] == ["a", "b"]
    assert f.run_reserve(state, p, "a") is None
    assert plugin.assumed_pvs == {"pv-a": "default/static"}
    task = asyncio.create_task(f.run_pre_bind(state, p, "a"))
    for _ in range(100):
        if len(client.patches) == 2:
            break
        await asyncio.sleep(0.01)
    pv_patch, pvc_patch = client.patches
    assert pv_patch[:2] == ("persistentvolumes", "pv-a")
    assert pv_patch[2]["spec"]["claimRef"]["uid"] == "uid-static"
    assert pvc_patch[:2] == ("persistentvolumeclaims", "dynamic")
    assert pvc_patch[2]["metadata"]["annotations"] == {vb.ANN_SELECTED_NODE: "a"}
    assert not task.done()  # waits for the PV controller
    w.add("persistentvolumes", local_pv("pvc-dyn", on="a"))
    for c, pv in ((static, "pv-a"), (dynamic, "pvc-dyn")):
        c["spec"]["volumeName"] = pv
        c["metadata"].setdefault("annotations", {})[vb.ANN_BIND_COMPLETED] = "yes"
    plugin.observe_cluster_event("StorageClass/Update")  # not one it waits for
    await asyncio.sleep(0)
    assert not task.done()
    plugin.observe_cluster_event("PersistentVolumeClaim/Update")
    assert await asyncio.wait_for(task, 5) is None
    assert plugin.assumed_pvs == {} and plugin.assumed_provisions == {}


async def test_prebind_times_out_and_forgets_what_reserve_assumed() -> None:
    w = World()
    w.add("storageclasses", sc("local", provisioner="pyk8s.io/local-path"))
    w.add("persistentvolumeclaims", claim("data"))
    f = framework(w, FakeClient(w), timeout=0.3)
    plugin = next(p for p in f.pre_bind if p.name == "VolumeBinding")
    cache = cache_of(node("a"))
    p = pod_with("data")
    state = CycleState()
    f.run_pre_filter(state, p, cache)
    f.find_feasible(state, p, cache)
    f.run_reserve(state, p, "a")
    assert plugin.assumed_provisions == {"default/data": "a"}
    st = await f.run_pre_bind(state, p, "a")
    assert st is not None and st.code == Code.ERROR
    assert st.message == (
        'running PreBind plugin "VolumeBinding": binding volumes: context deadline exceeded'
    )
    assert plugin.assumed_provisions == {}


def test_volume_zone_and_csi_limits() -> None:
    w = World()
    pv = local_pv("z", on="a")
    pv["metadata"]["labels"] = {"topology.kubernetes.io/zone": "z1__z3"}
    pv["spec"]["csi"] = {"driver": "hostpath.csi", "volumeHandle": "h1"}
    w.add("persistentvolumes", pv)
    w.add("persistentvolumeclaims", claim("data", volumeName="z"))
    driver = {"name": "hostpath.csi", "allocatable": {"count": 0}}
    w.add("csinodes", {"metadata": {"name": "a"}, "spec": {"drivers": [driver]}})
    cache = cache_of(node("a", **{"topology.kubernetes.io/zone": "z1"}),
                     node("b", **{"topology.kubernetes.io/zone": "z2"}))  # fmt: skip
    p = pod_with("data")
    zone = VolumeZone(w.lister)
    state = CycleState()
    assert zone.pre_filter(state, p, cache) is None
    assert zone.filter(state, p, cache.nodes["a"]) is None
    st = zone.filter(state, p, cache.nodes["b"])
    assert st is not None and st.message == "node(s) had no available volume zone"
    limits = NodeVolumeLimits(w.lister)
    assert limits.pre_filter(state, p, cache) is None
    st = limits.filter(state, p, cache.nodes["a"])
    assert st is not None and st.code == Code.UNSCHEDULABLE
    assert st.message == "node(s) exceed max volume count"
    assert limits.filter(state, p, cache.nodes["b"]) is None  # no CSINode: no limit


def test_volume_events_move_only_pods_a_volume_plugin_rejected() -> None:
    q = SchedulingQueue(PrioritySort(), clock=lambda: 1000.0)
    for name in ("vol", "cpu"):
        q.add({"metadata": {"name": name, "namespace": "d"}, "spec": {}})
    infos: list[QueuedPodInfo] = []
    while q.pending()[0]:
        infos.append(asyncio.run(q.pop()))  # type: ignore[arg-type]
    for info in infos:
        info.unschedulable_plugins = {
            "VolumeBinding" if info.key == "d/vol" else "NodeResourcesFit"
        }
        info.attempts = 0
        q.add_unschedulable(info)
    assert q.pending() == (0, 0, 2)
    q.move_all_to_active_or_backoff("PersistentVolume/Add", {"VolumeBinding", "VolumeZone"})
    assert q.pending()[2] == 1 and "d/cpu" in q and q._unschedulable.keys() == {"d/cpu"}


@pytest.mark.parametrize("mode", ["Filesystem", "Block"])
def test_matching_volume_prefers_the_smallest_fitting_pv(mode: str) -> None:
    big, small = local_pv("big", on="a", size="10Gi"), local_pv("small", on="a", size="2Gi")
    for pv in (big, small):
        pv["spec"]["volumeMode"] = mode
    c = claim("c", volumeMode=mode)
    assert vb.matching_volume(c, [big, small], node("a"), set())["metadata"]["name"] == "small"
    assert vb.matching_volume(c, [big, small], node("a"), {"small"})["metadata"]["name"] == "big"
    assert vb.matching_volume(c, [big, small], node("b"), set()) is None


# ---------------------------------------------------------------------- on an API server


async def test_scheduler_prebind_times_out_requeues_then_binds_once_the_claim_is_bound(
    client: Client, namespace: str, make_node: MakeNode
) -> None:
    """The real Scheduler with bindTimeoutSeconds 1 and no PV controller: PreBind writes
    selected-node, times out (upstream's event), the pod is requeued; once the claim is
    bound (as the PV controller would), the retry binds the pod to the selected node."""
    assert PODS is not None and EVENTS is not None
    a, b = await make_node("a"), await make_node("b")
    cls = f"wffc-{namespace}"
    await client.create(SCS, sc(cls, provisioner="example.com/disk"))
    await client.create(PVCS, {"metadata": {"name": "data"}, "spec": claim("data", cls)["spec"]},
                        namespace)  # fmt: skip
    config = {"profiles": [{"schedulerName": "default-scheduler", "pluginConfig": [
        {"name": "VolumeBinding", "args": {"bindTimeoutSeconds": 1}}]}]}  # fmt: skip
    sched = Scheduler(client, config)
    stop = asyncio.Event()
    task = asyncio.create_task(sched.run(stop))
    try:
        await client.create(PODS, {**pod_with("data"), "metadata": {"name": "p"}}, namespace)

        async def timed_out() -> bool:
            evs = await client.list(EVENTS, namespace, field_selector="reason=FailedScheduling")
            return any(
                e["message"] == 'running PreBind plugin "VolumeBinding": binding volumes: '
                "context deadline exceeded"
                for e in evs["items"]
            )

        await eventually(timed_out, within=20)
        got = await client.get(PVCS, "data", namespace)
        selected = got["metadata"]["annotations"][vb.ANN_SELECTED_NODE]
        assert selected in (a, b)
        assert not (await client.get(PODS, "p", namespace))["spec"].get("nodeName")

        # what the provisioner and the PV controller do for the selected node
        pv = local_pv(f"pv-{namespace}", on=selected, size="1Gi", cls=cls)
        pv["spec"]["claimRef"] = {"namespace": namespace, "name": "data",
                                  "uid": got["metadata"]["uid"]}  # fmt: skip
        await client.create(PVS, pv)
        await client.patch(PVCS, "data", {"metadata": {"annotations": {
            vb.ANN_BIND_COMPLETED: "yes"}}, "spec": {"volumeName": pv["metadata"]["name"]}},
            namespace, patch_type="merge")  # fmt: skip

        async def placed() -> str:
            return str((await client.get(PODS, "p", namespace))["spec"].get("nodeName") or "")

        assert await eventually(placed, within=30) == selected
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await client.delete(SCS, cls)
        with contextlib.suppress(ClientError):
            await client.delete(PVS, f"pv-{namespace}")
