"""Plugins, the framework and the cache on plain dicts: upstream's filter reasons, the
"0/N nodes are available" message, LeastAllocated / BalancedAllocation scores."""

from __future__ import annotations

from typing import Any

import numpy as np

from pyk8s.scheduler.cache import Cache
from pyk8s.scheduler.framework import CycleState, build_framework, fit_error_message
from pyk8s.scheduler.framework.types import pod_requests
from pyk8s.scheduler.plugins.nodeaffinity import NodeAffinity
from pyk8s.scheduler.plugins.nodeports import NodePorts
from pyk8s.scheduler.plugins.noderesourcesfit import NodeResourcesFit
from pyk8s.scheduler.plugins.tainttoleration import TaintToleration

CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def node(name: str, cpu: str = "4", memory: str = "8Gi", pods: str = "110", **spec: Any) -> Any:
    return {
        "metadata": {"name": name, "labels": spec.pop("labels", {})},
        "spec": spec,
        "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods}},
    }


def pod(name: str, cpu: str | None = None, memory: str | None = None, **spec: Any) -> Any:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "containers": [{"name": "c", "image": "i", "resources": {"requests": requests}}],
            **spec,
        },
    }


def fw() -> Any:
    return build_framework("default-scheduler", object())  # type: ignore[arg-type]


def cache_with(*nodes: Any) -> Cache:
    c = Cache(capacity=2)
    for n in nodes:
        c.add_node(n)
    return c


def test_requests_sum_containers_max_init_plus_overhead() -> None:
    p = pod("p", "500m", "1Gi")
    p["spec"]["initContainers"] = [{"name": "i", "resources": {"requests": {"cpu": "2"}}}]
    p["spec"]["overhead"] = {"cpu": "100m"}
    assert pod_requests(p) == {"cpu": 2100, "memory": 1024**3}


def test_upstream_message_taint_and_insufficient_cpu() -> None:
    c = cache_with(
        node("cp", taints=[CP_TAINT]),
        node("w1", cpu="2"),
        node("w2", cpu="2"),
    )
    f = fw()
    state = CycleState()
    p = pod("big", cpu="3")
    feasible, statuses = f.find_feasible(state, p, c)
    assert feasible.size == 0
    _, post = f.run_post_filter(state, p, c, statuses)
    assert post is not None
    assert fit_error_message(3, statuses, post_filter_msg=post.message) == (
        "0/3 nodes are available: 1 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    )


def test_no_victims_message_when_only_full() -> None:
    c = cache_with(node("w1", cpu="2"))
    c.add_pod(
        {**pod("x", cpu="1500m"), "spec": {**pod("x", cpu="1500m")["spec"], "nodeName": "w1"}}
    )
    f = fw()
    state = CycleState()
    p = pod("p", cpu="1")
    _, statuses = f.find_feasible(state, p, c)
    _, post = f.run_post_filter(state, p, c, statuses)
    assert post is not None
    assert fit_error_message(1, statuses, post_filter_msg=post.message) == (
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: "
        "1 No preemption victims found for incoming pod."
    )


def test_tolerations() -> None:
    c = cache_with(node("n", taints=[{"key": "k", "value": "v", "effect": "NoExecute"}]))
    info = c.nodes["n"]
    plugin = TaintToleration()
    st = plugin.filter(CycleState(), pod("p"), info)
    assert st is not None and st.reasons == ("node(s) had untolerated taint {k: v}",)
    ok = pod("p", tolerations=[{"key": "k", "operator": "Exists"}])
    assert plugin.filter(CycleState(), ok, info) is None
    wrong = pod("p", tolerations=[{"key": "k", "value": "w", "effect": "NoExecute"}])
    assert plugin.filter(CycleState(), wrong, info) is not None


def test_node_affinity_and_selector() -> None:
    c = cache_with(node("a", labels={"zone": "z1", "gen": "5"}), node("b", labels={"zone": "z2"}))
    plugin = NodeAffinity()
    sel = pod("p", nodeSelector={"zone": "z1"})
    assert plugin.filter(CycleState(), sel, c.nodes["a"]) is None
    st = plugin.filter(CycleState(), sel, c.nodes["b"])
    assert st is not None and st.reasons == ("node(s) didn't match Pod's node affinity/selector",)
    gt = pod(
        "p",
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "gen", "operator": "Gt", "values": ["4"]}]}
                    ]
                },
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 7,
                        "preference": {
                            "matchFields": [
                                {"key": "metadata.name", "operator": "In", "values": ["a"]}
                            ]
                        },
                    }
                ],
            }
        },
    )
    assert plugin.filter(CycleState(), gt, c.nodes["a"]) is None
    assert plugin.filter(CycleState(), gt, c.nodes["b"]) is not None
    assert plugin.score(CycleState(), gt, c.nodes["a"]) == 7
    assert plugin.score(CycleState(), gt, c.nodes["b"]) == 0


def test_host_ports_conflict() -> None:
    c = cache_with(node("n"))
    used = pod("u", nodeName="n")
    used["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 8080}]
    c.add_pod(used)
    p = pod("p")
    p["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 8080}]
    st = NodePorts().filter(CycleState(), p, c.nodes["n"])
    assert st is not None and st.reasons == (
        "node(s) didn't have free ports for the requested pod ports",
    )
    p["spec"]["containers"][0]["ports"][0]["protocol"] = "UDP"
    assert NodePorts().filter(CycleState(), p, c.nodes["n"]) is None


def test_resources_fit_vector_matches_scalar_and_extended_resources() -> None:
    gpu = node("gpu", cpu="2")
    gpu["status"]["allocatable"]["nvidia.com/gpu"] = "1"
    c = cache_with(node("small", cpu="1"), gpu, node("full", pods="1"))
    c.add_pod(pod("x", nodeName="full"))
    p = pod("p", cpu="500m")
    p["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = "1"
    plugin = NodeResourcesFit()
    state = CycleState()
    fits = plugin.filter_all(state, p, c, c.valid.copy())
    names = {c.info(int(s)).name for s in np.flatnonzero(fits)}
    assert names == {"gpu"}
    st = plugin.filter(state, p, c.nodes["full"])
    assert st is not None and st.reasons == ("Too many pods", "Insufficient nvidia.com/gpu")
    st = plugin.filter(state, p, c.nodes["small"])
    assert st is not None and st.reasons == ("Insufficient nvidia.com/gpu",)


def test_least_allocated_prefers_emptier_node_and_assumed_pods_count() -> None:
    c = cache_with(node("a"), node("b"))
    f = fw()
    slots = c.slots()
    p = pod("p", cpu="1", memory="1Gi")
    s0 = f.run_score(CycleState(), p, c, slots)
    assert s0[0] == s0[1]
    c.assume_pod(pod("q", cpu="2", memory="2Gi"), "a")
    s1 = f.run_score(CycleState(), p, c, slots)
    a, b = (int(s1[list(slots).index(c.nodes[n].slot)]) for n in ("a", "b"))
    assert b > a
    c.forget_pod(pod("q"))
    assert c.requested[c.nodes["a"].slot, 0] == 0


def test_least_allocated_score_values() -> None:
    # upstream: ((capacity - requested) * 100) / capacity per resource, averaged
    c = cache_with(node("n", cpu="4", memory="4Gi"))
    p = pod("p", cpu="1", memory="2Gi")
    score = NodeResourcesFit().score_all(CycleState(), p, c, c.slots())
    assert int(score[0]) == (75 + 50) // 2


def test_profile_config_disables_plugins() -> None:
    f = build_framework(
        "s",
        object(),  # type: ignore[arg-type]
        {
            "filter": {"disabled": [{"name": "TaintToleration"}]},
            "score": {"disabled": [{"name": "*"}]},
        },
    )
    assert "TaintToleration" not in [p.name for p in f.filter]
    assert f.score == []
