"""DefaultPreemption on plain dicts: the minimal victim set, PDB-protected pods spared
first, preemptionPolicy Never, and the nominated-node wait."""

from __future__ import annotations

from typing import Any

from pyk8s.scheduler.cache import Cache
from pyk8s.scheduler.framework import CycleState, build_framework
from pyk8s.scheduler.plugins.defaultpreemption import DefaultPreemption, pdb_violating


def node(name: str, cpu: str = "2") -> Any:
    return {
        "metadata": {"name": name, "labels": {}},
        "spec": {},
        "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"}},
    }


def pod(name: str, cpu: str, priority: int, node_name: str = "", **meta: Any) -> Any:
    spec: dict[str, Any] = {
        "containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": cpu}}}],
        "priority": priority,
    }
    if node_name:
        spec["nodeName"] = node_name
    return {"metadata": {"name": name, "namespace": "default", **meta}, "spec": spec}


def run(c: Cache, p: Any, pdbs: list[Any] | None = None) -> tuple[str | None, Any, Any]:
    f = build_framework("default-scheduler", object())  # type: ignore[arg-type]
    plugin = DefaultPreemption(
        f.run_filters,
        lister=lambda g, v, plural, ns: list(pdbs or []) if "budget" in plural else [],
    )
    state = CycleState()
    f.run_pre_filter(state, p, c)
    _, statuses = f.find_feasible(state, p, c)
    name, st = plugin.post_filter(state, p, c, statuses)
    chosen = None
    if name:
        chosen, _ = plugin.select_victims(state, p, c.nodes[name])
    return name, st, chosen


def test_evicts_only_what_is_needed_lowest_priority_first() -> None:
    c = Cache(capacity=2)
    c.add_node(node("n", cpu="3"))
    c.add_pod(pod("low", "1", 1, "n"))
    c.add_pod(pod("mid", "1", 5, "n"))
    c.add_pod(pod("keep", "1", 100, "n"))
    name, st, cand = run(c, pod("p", "1", 10))
    assert name == "n" and st is None
    assert [v["metadata"]["name"] for v in cand.victims] == ["low"]


def test_prefers_node_whose_victims_have_lower_priority() -> None:
    c = Cache(capacity=2)
    c.add_node(node("a"))
    c.add_node(node("b"))
    c.add_pod(pod("a1", "2", 5, "a"))
    c.add_pod(pod("b1", "2", 1, "b"))
    name, _, _ = run(c, pod("p", "1", 10))
    assert name == "b"


def test_pdb_protected_pods_are_spared_when_possible() -> None:
    c = Cache(capacity=2)
    c.add_node(node("n", cpu="2"))
    c.add_pod(pod("guarded", "1", 1, "n", labels={"app": "db"}))
    c.add_pod(pod("free", "1", 1, "n", labels={"app": "web"}))
    pdb = {
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "db"}}},
        "status": {"disruptionsAllowed": 0},
    }
    violating, fine = pdb_violating(list(c.nodes["n"].pods.values()), [pdb])
    assert [p["metadata"]["name"] for p in violating] == ["guarded"]
    assert [p["metadata"]["name"] for p in fine] == ["free"]
    _, _, cand = run(c, pod("p", "1", 10), [pdb])
    assert [v["metadata"]["name"] for v in cand.victims] == ["free"]
    assert cand.pdb_violations == 0


def test_never_policy_and_no_lower_priority_victims() -> None:
    c = Cache(capacity=2)
    c.add_node(node("n", cpu="1"))
    c.add_pod(pod("x", "1", 50, "n"))
    never = pod("p", "1", 100)
    never["spec"]["preemptionPolicy"] = "Never"
    name, st, _ = run(c, never)
    assert name is None and st.message == "not eligible due to preemptionPolicy=Never."
    name, st, _ = run(c, pod("p", "1", 10))
    assert name is None
    assert st.message == (
        "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    )


def test_nominated_pod_waits_for_terminating_victims() -> None:
    c = Cache(capacity=2)
    c.add_node(node("n", cpu="1"))
    c.add_pod(pod("x", "1", 1, "n", deletionTimestamp="2026-01-01T00:00:00Z"))
    p = pod("p", "1", 10)
    p["status"] = {"nominatedNodeName": "n"}
    name, st, _ = run(c, p)
    assert name is None
    assert st.message == "not eligible due to a terminating pod on the nominated node."


def test_space_is_held_for_a_nominated_pod_of_higher_priority() -> None:
    c = Cache(capacity=2)
    c.add_node(node("n", cpu="2"))
    vip = pod("vip", "2", 1000)
    c.nominate(vip, "n")
    f = build_framework("default-scheduler", object())  # type: ignore[arg-type]
    low = pod("low", "1", 0)
    slots, statuses = f.find_feasible(CycleState(), low, c)
    assert slots.size == 0 and statuses["n"].reasons == ("Insufficient cpu",)
    slots, _ = f.find_feasible(CycleState(), vip, c)  # not held against itself
    assert slots.size == 1
    c.nominate(vip, None)
    slots, _ = f.find_feasible(CycleState(), low, c)
    assert slots.size == 1
