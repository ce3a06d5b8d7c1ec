"""PodTopologySpread on plain dicts: DoNotSchedule skew with upstream's reasons, minDomains,
matchLabelKeys, the ScheduleAnyway score and the system default constraints."""

from __future__ import annotations

from typing import Any

import numpy as np

from pyk8s.scheduler.cache import Cache
from pyk8s.scheduler.framework import CycleState, build_framework
from pyk8s.scheduler.plugins.podtopologyspread import (
    ERR_REASON_CONSTRAINTS_NOT_MATCH,
    ERR_REASON_NODE_LABEL_NOT_MATCH,
    PodTopologySpread,
)

ZONE = "topology.kubernetes.io/zone"


def node(name: str, zone: str | None = None) -> Any:
    labels = {"kubernetes.io/hostname": name}
    if zone:
        labels[ZONE] = zone
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
    }


def pod(name: str, labels: dict[str, str] | None = None, **spec: Any) -> Any:
    return {
        "metadata": {"name": name, "namespace": "default", "labels": labels or {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "i"}], **spec},
    }


def spread(key: str, skew: int = 1, when: str = "DoNotSchedule", **extra: Any) -> Any:
    return {
        "maxSkew": skew,
        "topologyKey": key,
        "whenUnsatisfiable": when,
        "labelSelector": {"matchLabels": {"app": "web"}},
        **extra,
    }


def cache_with(*nodes: Any) -> Cache:
    c = Cache(capacity=2)
    for n in nodes:
        c.add_node(n)
    return c


def feasible(c: Cache, p: Any) -> tuple[set[str], dict[str, Any]]:
    f = build_framework("default-scheduler", object())  # type: ignore[arg-type]
    state = CycleState()
    assert f.run_pre_filter(state, p, c) is None
    slots, statuses = f.find_feasible(state, p, c)
    return {c.info(int(s)).name for s in slots}, statuses


def test_do_not_schedule_keeps_skew_and_gives_upstream_reasons() -> None:
    c = cache_with(node("a", "z1"), node("b", "z1"), node("c", "z2"), node("nolabel"))
    c.add_pod(pod("x", nodeName="a"))
    c.add_pod(pod("other", {"app": "db"}, nodeName="c"))
    p = pod("p", topologySpreadConstraints=[spread(ZONE)])
    names, statuses = feasible(c, p)
    assert names == {"c"}  # z1 has 1, z2 has 0: only z2 keeps skew <= 1
    assert statuses["a"].reasons == (ERR_REASON_CONSTRAINTS_NOT_MATCH,)
    assert statuses["nolabel"].reasons == (ERR_REASON_NODE_LABEL_NOT_MATCH,)
    assert (
        ERR_REASON_CONSTRAINTS_NOT_MATCH == "node(s) didn't match pod topology spread constraints"
    )


def test_min_domains_counts_missing_domains_as_zero() -> None:
    c = cache_with(node("a", "z1"), node("b", "z2"))
    c.add_pod(pod("x", nodeName="a"))
    c.add_pod(pod("y", nodeName="b"))
    p = pod("p", topologySpreadConstraints=[spread(ZONE, minDomains=3)])
    names, _ = feasible(c, p)
    assert names == set()  # only 2 of 3 domains: global minimum is 0, 1 + 1 - 0 > 1


def test_match_label_keys_narrow_the_selector() -> None:
    c = cache_with(node("a", "z1"), node("b", "z2"))
    c.add_pod(pod("old", {"app": "web", "rev": "1"}, nodeName="a"))
    c.add_pod(pod("old2", {"app": "web", "rev": "1"}, nodeName="a"))
    p = pod(
        "p",
        {"app": "web", "rev": "2"},
        topologySpreadConstraints=[spread(ZONE, matchLabelKeys=["rev"])],
    )
    names, _ = feasible(c, p)
    assert names == {"a", "b"}  # the old revision does not count


def test_node_affinity_policy_honors_node_selector() -> None:
    c = cache_with(node("a", "z1"), node("b", "z2"))
    c.nodes["b"].node["metadata"]["labels"]["pool"] = "x"
    c.add_pod(pod("x", nodeName="b"))
    # only b matches the selector: z1 is not a domain, so b (count 1) is the minimum
    p = pod("p", nodeSelector={"pool": "x"}, topologySpreadConstraints=[spread(ZONE)])
    names, _ = feasible(c, p)
    assert names == {"b"}


def test_schedule_anyway_prefers_emptier_domain() -> None:
    c = cache_with(node("a", "z1"), node("b", "z2"))
    c.add_pod(pod("x", nodeName="a"))
    p = pod("p", topologySpreadConstraints=[spread(ZONE, when="ScheduleAnyway")])
    plugin = PodTopologySpread(lambda *a: [])
    state = CycleState()
    assert plugin.pre_score(state, p, []) is None
    slots = c.slots().astype(np.int64)
    raw = plugin.score_all(state, p, c, slots)
    scores = plugin.normalize_score(state, p, raw)
    by_name = {c.info(int(s)).name: int(v) for s, v in zip(slots, scores, strict=True)}
    assert by_name["b"] == 100 and by_name["a"] < 100


def test_system_defaults_apply_to_pods_selected_by_a_service() -> None:
    svc = {
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}},
    }

    def lister(group: str, version: str, plural: str, ns: str) -> list[Any]:
        return [svc] if plural == "services" else []

    plugin = PodTopologySpread(lister)
    constraints, defaulted = plugin.constraints(pod("p"), "ScheduleAnyway")
    assert defaulted
    assert [(c.topology_key, c.max_skew) for c in constraints] == [
        ("kubernetes.io/hostname", 3),
        ("topology.kubernetes.io/zone", 5),
    ]
    alone = PodTopologySpread(lambda *a: [])
    assert alone.constraints(pod("p"), "ScheduleAnyway")[0] == []
    assert plugin.pre_score(CycleState(), pod("p"), []) is None
    assert alone.pre_score(CycleState(), pod("p"), []) is not None  # Skip


def test_default_profile_order_and_weights() -> None:
    from pyk8s.scheduler.framework import DEFAULT_PLUGINS

    names = [n for n, _ in DEFAULT_PLUGINS]
    assert names.index("NodeResourcesFit") < names.index("PodTopologySpread")
    assert names.index("PodTopologySpread") < names.index("InterPodAffinity")
    assert names.index("InterPodAffinity") < names.index("DefaultPreemption")
    assert dict(DEFAULT_PLUGINS)["PodTopologySpread"] == 2
    assert dict(DEFAULT_PLUGINS)["InterPodAffinity"] == 2
    assert dict(DEFAULT_PLUGINS)["ImageLocality"] == 1
