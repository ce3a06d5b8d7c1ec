"""InterPodAffinity on plain dicts: required affinity/anti-affinity (both directions) with
upstream's reasons, the first-pod-of-a-group rule, preferred terms in the score."""

from __future__ import annotations

from typing import Any

import numpy as np

from pyk8s.scheduler.cache import Cache
from pyk8s.scheduler.framework import CycleState
from pyk8s.scheduler.plugins.interpodaffinity import InterPodAffinity

HOST = "kubernetes.io/hostname"


def node(name: str) -> Any:
    return {
        "metadata": {"name": name, "labels": {HOST: name}},
        "spec": {},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
    }


def pod(name: str, app: str, **spec: Any) -> Any:
    return {
        "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "i"}], **spec},
    }


def term(app: str, key: str = HOST) -> Any:
    return {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}


def required(kind: str, *terms: Any) -> Any:
    return {kind: {"requiredDuringSchedulingIgnoredDuringExecution": list(terms)}}


def cache_with(*names: str) -> Cache:
    c = Cache(capacity=2)
    for n in names:
        c.add_node(node(n))
    return c


def reasons(c: Cache, p: Any) -> dict[str, tuple[str, ...]]:
    plugin = InterPodAffinity(lambda *a: [])
    state = CycleState()
    st = plugin.pre_filter(state, p, c)
    assert st is None
    out = {}
    for info in c.node_infos():
        r = plugin.filter(state, p, info)
        out[info.name] = r.reasons if r is not None else ()
    return out


def test_required_affinity_needs_a_matching_pod_in_the_domain() -> None:
    c = cache_with("a", "b")
    c.add_pod(pod("db", "db", nodeName="a"))
    got = reasons(c, pod("web", "web", affinity=required("podAffinity", term("db"))))
    assert got == {"a": (), "b": ("node(s) didn't match pod affinity rules",)}


def test_first_pod_of_a_self_attracting_group_goes_anywhere() -> None:
    c = cache_with("a", "b")
    got = reasons(c, pod("web", "web", affinity=required("podAffinity", term("web"))))
    assert got == {"a": (), "b": ()}


def test_required_anti_affinity_and_existing_pods_anti_affinity() -> None:
    c = cache_with("a", "b")
    c.add_pod(pod("w1", "web", nodeName="a"))
    got = reasons(c, pod("w2", "web", affinity=required("podAntiAffinity", term("web"))))
    assert got == {"a": ("node(s) didn't match pod anti-affinity rules",), "b": ()}
    # the placed pod repels the incoming one even though the incoming pod has no rules
    c2 = cache_with("a", "b")
    c2.add_pod(pod("w1", "web", nodeName="a", affinity=required("podAntiAffinity", term("web"))))
    got = reasons(c2, pod("w2", "web"))
    assert got == {"a": ("node(s) didn't satisfy existing pods anti-affinity rules",), "b": ()}


def test_other_namespaces_do_not_count_unless_named() -> None:
    c = cache_with("a", "b")
    other = pod("db", "db", nodeName="a")
    other["metadata"]["namespace"] = "prod"
    c.add_pod(other)
    p = pod("web", "web", affinity=required("podAffinity", term("db")))
    assert reasons(c, p)["a"] == ("node(s) didn't match pod affinity rules",)
    named = {**term("db"), "namespaces": ["prod"]}
    assert reasons(c, pod("web", "web", affinity=required("podAffinity", named)))["a"] == ()


def test_preferred_terms_score_towards_and_away() -> None:
    c = cache_with("a", "b", "c")
    c.add_pod(pod("cache", "cache", nodeName="a"))
    c.add_pod(pod("noisy", "noisy", nodeName="b"))
    p = pod(
        "web",
        "web",
        affinity={
            "podAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 10, "podAffinityTerm": term("cache")}
                ]
            },
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 5, "podAffinityTerm": term("noisy")}
                ]
            },
        },
    )
    plugin = InterPodAffinity(lambda *a: [])
    state = CycleState()
    slots = c.slots().astype(np.int64)
    assert plugin.pre_score(state, p, []) is None
    raw = plugin.score_all(state, p, c, slots)
    norm = plugin.normalize_score(state, p, raw)
    by = {c.info(int(s)).name: int(v) for s, v in zip(slots, norm, strict=True)}
    assert by == {"a": 100, "b": 0, "c": 33}  # raw 10, -5, 0
