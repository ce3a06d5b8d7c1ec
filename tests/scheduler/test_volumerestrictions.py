"""VolumeRestrictions on plain dicts: a ReadWriteOncePod claim in use keeps a second pod
off every node with upstream's message, preemption sees the claim freed by evicting
its user, and two pods may not mount one in-tree disk read-write on a node."""

from __future__ import annotations

from typing import Any

from pyk8s.scheduler.framework import CycleState, fit_error_message
from pyk8s.scheduler.framework.interface import Code
from pyk8s.scheduler.framework.runtime import with_pods
from pyk8s.scheduler.plugins import volumerestrictions as vr
from pyk8s.scheduler.plugins.defaultpreemption import without
from tests.scheduler.test_volumebinding import World, cache_of, claim, framework, node

Obj = dict[str, Any]


def pod(name: str, volumes: list[Obj], node_name: str = "") -> Obj:
    spec: Obj = {"containers": [{"name": "c", "image": "i"}], "volumes": volumes}
    if node_name:
        spec["nodeName"] = node_name
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
            "spec": spec}  # fmt: skip


def uses(claim_name: str) -> list[Obj]:
    return [{"name": "d", "persistentVolumeClaim": {"claimName": claim_name}}]


def test_a_read_write_once_pod_claim_in_use_is_unschedulable_everywhere() -> None:
    w = World()
    w.add(
        "persistentvolumeclaims", claim("solo", accessModes=["ReadWriteOncePod"], volumeName="pv")
    )
    w.add("persistentvolumeclaims", claim("shared", volumeName="pv2"))  # ReadWriteOnce
    f = framework(w)
    cache = cache_of(node("a"), node("b"))
    first = pod("first", uses("solo"), node_name="a")
    cache.add_pod(first)
    cache.add_pod(pod("other", uses("shared"), node_name="b"))

    state = CycleState()
    second = pod("second", uses("solo"))
    assert f.run_pre_filter(state, second, cache) is None
    feasible, statuses = f.find_feasible(state, second, cache)
    assert feasible.size == 0
    assert {s.plugin for s in statuses.values()} == {"VolumeRestrictions"}
    assert fit_error_message(2, statuses) == (
        "0/2 nodes are available: 2 node has pod using PersistentVolumeClaim with the same "
        "name and ReadWriteOncePod access mode."
    )
    # preemption's view: node a without the pod using the claim fits; node b does not,
    # since the user is still on a
    plugin = next(p for p in f.filter if p.name == "VolumeRestrictions")
    a, b = (cache.info(int(s)) for s in cache.slots())
    assert plugin.filter(state, second, without(a, [first])) is None
    assert plugin.filter(state, second, b) is not None
    # a nominated pod using the claim counts too
    nominated = with_pods(without(a, [first]), [pod("nominated", uses("solo"), node_name="a")])
    assert plugin.filter(state, second, nominated) is not None

    # a ReadWriteOnce claim shared by two pods, or no claim at all: nothing to check
    plain = vr.VolumeRestrictions(w.lister)
    for p in (pod("x", uses("shared")), pod("y", [{"name": "e", "emptyDir": {}}])):
        st = plain.pre_filter(CycleState(), p, cache)
        assert st is not None and st.code == Code.SKIP


def test_a_missing_claim_is_unresolvable_with_upstreams_message() -> None:
    f = framework(World())
    st = f.run_pre_filter(CycleState(), pod("p", uses("missing")), cache_of(node("a")))
    assert st is not None and st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert st.plugin == "VolumeRestrictions"
    assert st.message == 'persistentvolumeclaim "missing" not found'


def test_in_tree_disks_conflict_unless_both_are_read_only() -> None:
    def disk(kind: str, ro: bool = False, **src: Any) -> list[Obj]:
        return [{"name": "d", kind: {**src, "readOnly": ro}}]

    cases = [
        (disk("gcePersistentDisk", pdName="pd"), disk("gcePersistentDisk", pdName="pd"), True),
        (disk("gcePersistentDisk", True, pdName="pd"),
         disk("gcePersistentDisk", True, pdName="pd"), False),
        (disk("gcePersistentDisk", pdName="pd"), disk("gcePersistentDisk", pdName="pd2"), False),
        (disk("awsElasticBlockStore", True, volumeID="v"),
         disk("awsElasticBlockStore", True, volumeID="v"), True),
        (disk("iscsi", iqn="q"), disk("iscsi", iqn="q"), True),
        (disk("iscsi", True, iqn="q"), disk("iscsi", True, iqn="q"), False),
        (disk("rbd", monitors=["m1", "m2"], image="i"),
         disk("rbd", monitors=["m2"], pool="rbd", image="i"), True),
        (disk("rbd", monitors=["m1"], image="i"), disk("rbd", monitors=["m2"], image="i"), False),
    ]  # fmt: skip
    for mine, theirs, conflict in cases:
        f = framework(World())
        cache = cache_of(node("a"), node("b"))
        cache.add_pod(pod("there", theirs, node_name="a"))
        state = CycleState()
        p = pod("p", mine)
        assert f.run_pre_filter(state, p, cache) is None
        feasible, statuses = f.find_feasible(state, p, cache)
        names = sorted(cache.info(int(s)).name for s in feasible)
        assert names == (["b"] if conflict else ["a", "b"]), (mine, theirs)
        if conflict:
            assert statuses["a"].reasons == (vr.ERR_REASON_DISK_CONFLICT,)
            assert statuses["a"].plugin == "VolumeRestrictions"
