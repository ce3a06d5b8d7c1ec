"""The autoscaler's decisions without a cluster: which pods block a node's removal, how
many template nodes pods need, and which group an expander picks."""

from __future__ import annotations

from typing import Any

import pytest

from pyk8s.autoscaler.autoscaler import _least_waste, _not_triggered_message, _pods_to_move
from pyk8s.autoscaler.config import NodeGroup
from pyk8s.autoscaler.simulator import Simulator

Obj = dict[str, Any]
RS_OWNER = [{"kind": "ReplicaSet", "name": "web-1", "uid": "rs-1", "controller": True}]


def pod(name: str, *, ns: str = "default", cpu: str = "100m", **extra: Any) -> Obj:
    meta: Obj = {"name": name, "namespace": ns, "uid": name, "labels": {"app": "web"}}
    meta["ownerReferences"] = extra.pop("owners", RS_OWNER)
    if "annotations" in extra:
        meta["annotations"] = extra.pop("annotations")
    spec: Obj = {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}
    spec.update(extra)
    return {"metadata": meta, "spec": spec, "status": {"phase": "Running"}}


def pdb(allowed: int, ns: str = "default") -> Obj:
    return {
        "metadata": {"name": "guard", "namespace": ns},
        "spec": {"selector": {"matchLabels": {"app": "web"}}},
        "status": {"disruptionsAllowed": allowed},
    }


@pytest.mark.parametrize(
    ("pods", "pdbs", "reason"),
    [
        ([pod("a", annotations={"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"})],
         [], "NotSafeToEvictAnnotation"),
        ([pod("a", volumes=[{"name": "v", "emptyDir": {}}])], [], "LocalStorageRequested"),
        ([pod("a", volumes=[{"name": "v", "hostPath": {"path": "/x"}}])], [],
         "LocalStorageRequested"),
        ([pod("a", ns="kube-system")], [], "UnmovableKubeSystemPod"),
        ([pod("a", owners=[])], [], "NotReplicated"),
        ([pod("a")], [pdb(0)], "NotEnoughPdb"),
        ([pod("a"), pod("b")], [pdb(1)], "NotEnoughPdb"),
    ],
)  # fmt: skip
def test_what_blocks_a_drain(pods: list[Obj], pdbs: list[Obj], reason: str) -> None:
    budget = {"default/guard": pdbs[0]["status"]["disruptionsAllowed"]} if pdbs else {}
    assert _pods_to_move(pods, pdbs, budget) == ([], reason)


def test_what_may_move() -> None:
    safe = {"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"}
    local = pod("local", annotations=safe, volumes=[{"name": "v", "emptyDir": {}}])
    daemon = pod("ds", owners=[{"kind": "DaemonSet", "name": "d", "uid": "d", "controller": True}])
    system = pod("dns", ns="kube-system")
    system_pdb = {**pdb(1, "kube-system"), "metadata": {"name": "dns", "namespace": "kube-system"}}
    budget = {"default/guard": 2, "kube-system/dns": 1}  # "a" and "local" share the PDB
    moved, reason = _pods_to_move([pod("a"), local, daemon, system], [pdb(2), system_pdb], budget)
    assert reason == "" and [p["metadata"]["name"] for p in moved] == ["a", "local", "dns"]
    assert budget == {"default/guard": 0, "kube-system/dns": 0}  # spent for the next node


def group(name: str, cpu: str, max_size: int = 5, **labels: str) -> NodeGroup:
    return NodeGroup(name, 0, max_size, {"cpu": cpu, "memory": "8Gi", "pods": "110"}, labels)


def test_estimate_bin_packs_within_room() -> None:
    sim = Simulator()
    pods = [pod(f"p{i}", cpu="1") for i in range(10)]
    est = sim.estimate(group("big", "4"), pods, room=2, prefix="new-")
    assert est.node_count == 2 and len(est.helped) == 8 and len(est.max_reached) == 2
    rejected = sim.estimate(group("tiny", "500m"), pods[:1], room=5, prefix="new-")
    assert rejected.node_count == 0 and rejected.rejected == {"default/p0": ("Insufficient cpu",)}
    message = _not_triggered_message("default/p0", [rejected, est])
    assert message == "pod didn't trigger scale-up: 1 Insufficient cpu"


def test_node_selector_is_the_scheduler_s_rule() -> None:
    sim = Simulator()
    wants_big = pod("p", nodeSelector={"pool": "big"})
    assert sim.estimate(group("small", "4", pool="small"), [wants_big], 5, "n-").rejected == {
        "default/p": ("node(s) didn't match Pod's node affinity/selector",)
    }
    assert sim.estimate(group("big", "4", pool="big"), [wants_big], 5, "n-").node_count == 1


def test_least_waste_picks_the_tighter_group() -> None:
    sim = Simulator()
    pods = [pod(f"p{i}", cpu="1") for i in range(4)]
    options = [sim.estimate(group(n, cpu), pods, 5, "n-") for n, cpu in (("xl", "16"), ("m", "4"))]
    assert [o.group.name for o in _least_waste(options)] == ["m"]


class _ConfigMapClient:
    """Answers the one read the priority expander makes."""

    def __init__(self, priorities: str) -> None:
        self.priorities = priorities

    async def get(self, resource: object, name: str, namespace: str) -> Obj:
        assert (name, namespace) == ("cluster-autoscaler-priority-expander", "kube-system")
        return {"data": {"priorities": self.priorities}}


async def test_priority_expander_follows_the_configmap() -> None:
    from pyk8s.autoscaler.autoscaler import Autoscaler, Options

    sim = Simulator()
    pods = [pod("p", cpu="1")]
    options = [sim.estimate(group(n, "4"), pods, 5, "n-") for n in ("cheap", "spot-a", "spot-b")]
    client = _ConfigMapClient("10:\n- cheap\n50:\n- spot-.*\n")
    ca = Autoscaler(client, [o.group for o in options], None, Options(expander="priority"))  # type: ignore[arg-type]
    chosen = await ca._by_priority(options)
    assert sorted(o.group.name for o in chosen) == ["spot-a", "spot-b"]


async def test_frequent_loops_start_at_once_after_a_scale_up_or_an_unschedulable_pod() -> None:
    import asyncio

    from pyk8s.autoscaler.autoscaler import Autoscaler, Options

    unschedulable = pod("p", cpu="1")
    unschedulable["status"] = {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}  # fmt: skip
    stop = asyncio.Event()
    ca = Autoscaler(None, [], None, Options(scan_interval=60.0, frequent_loops=True))  # type: ignore[arg-type]
    await asyncio.wait_for(ca._wait_for_next_loop(stop, productive=True), 1.0)
    waiting = asyncio.create_task(ca._wait_for_next_loop(stop, productive=False))
    ca._observe_pod(pod("running"))  # a pod that is not unschedulable wakes nothing
    assert not ca._unschedulable_seen.is_set()
    ca._observe_pod(unschedulable)
    await asyncio.wait_for(waiting, 1.0)  # not the 60-s scan interval
    # upstream's default: the scan interval alone, even with the pod already seen (a wait
    # on it would end at the first step of the loop)
    plain = Autoscaler(None, [], None, Options(scan_interval=60.0))  # type: ignore[arg-type]
    plain._observe_pod(unschedulable)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(plain._wait_for_next_loop(stop, productive=True), 0.2)
    stop.set()
    await asyncio.wait_for(plain._wait_for_next_loop(stop, productive=True), 1.0)
