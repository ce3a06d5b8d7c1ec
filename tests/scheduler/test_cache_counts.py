"""The cache's incremental per-node state stays equal to what a fresh walk computes:
``Cache.counts`` (pods a predicate picks, per node, kept as pods are bound, updated,
relabelled, marked for deletion, deleted, and as nodes go and come back, across the
arrays' growth) and ``Cache.per_node`` (a resource score recomputed only for the nodes
whose resources changed). And a placed pod's namespaceSelector is judged against the
incoming pod's namespace labels as they are now (upstream's AffinityTerm.Matches)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from pyk8s.scheduler.cache import Cache
from pyk8s.scheduler.framework import CycleState
from pyk8s.scheduler.plugins.interpodaffinity import InterPodAffinity
from pyk8s.scheduler.plugins.noderesourcesfit import least_allocated

HOST = "kubernetes.io/hostname"


def node(i: int, cpu: str = "4") -> Any:
    cap = {"cpu": cpu, "memory": "8Gi", "pods": "110"}
    return {
        "metadata": {"name": f"n{i}", "labels": {HOST: f"n{i}"}},
        "spec": {},
        "status": {"allocatable": cap},
    }


def pod(i: int, ns: str, app: str, node_name: str, cpu: str = "100m", **meta: Any) -> Any:
    return {
        "metadata": {
            "name": f"p{i}",
            "namespace": ns,
            "uid": f"u{i}",
            "labels": {"app": app},
            **meta,
        },
        "spec": {
            "nodeName": node_name,
            "containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": cpu}}}],
        },
        "status": {"phase": "Pending"},
    }


def is_a(p: Any) -> bool:
    return p["metadata"]["labels"].get("app") == "a" and not p["metadata"].get("deletionTimestamp")


def by_app(p: Any) -> list[tuple[str, int]]:
    return [(p["metadata"]["labels"]["app"], 2)]


def walked(c: Cache, pick: Any, ns: str | None) -> dict[Any, np.ndarray]:
    """What a counter must hold: a walk of every pod counted on a node."""
    out: dict[Any, np.ndarray] = {}
    for info in c.node_infos():
        for p in info.pods.values():
            if ns is not None and p["metadata"]["namespace"] != ns:
                continue
            for group, weight in pick(p):
                arr = out.setdefault(group, np.zeros(c.valid.shape[0], dtype=np.int64))
                arr[info.slot] += weight
    return out


def check(c: Cache) -> None:
    got = c.count("a-in-x", is_a, frozenset({"x"}))
    want = walked(c, lambda p: [(None, 1)] if is_a(p) else [], "x").get(None)
    assert np.array_equal(got, want if want is not None else np.zeros_like(got))
    groups = c.counts("apps", by_app)
    expected = walked(c, by_app, None)
    assert set(groups) == {g for g, a in expected.items() if a.any()}
    for group, arr in groups.items():
        assert np.array_equal(arr, expected[group]), group
    slots = c.slots()
    for want_cpu in (100, 700):

        def fit(at: np.ndarray, w: int = want_cpu) -> np.ndarray:
            return least_allocated(c, at, (w, 0))

        memo = c.per_node(("fit", want_cpu), fit, slots)
        assert np.array_equal(memo, least_allocated(c, slots, (want_cpu, 0)))


def test_counts_and_per_node_follow_every_change() -> None:
    rng = random.Random(7)
    c = Cache(capacity=2)
    nodes = 3
    for i in range(nodes):
        c.add_node(node(i))
    check(c)  # counters built on an empty cache, then kept
    pods: dict[int, Any] = {}
    gone: list[int] = []
    for step in range(400):
        op = rng.random()
        if op < 0.35 or not pods:
            i = step
            pods[i] = pod(i, rng.choice(["x", "y"]), rng.choice("abc"), f"n{rng.randrange(nodes)}")
            c.add_pod(pods[i])
        elif op < 0.55:  # a status write: the stored object changes, nothing counted does
            i = rng.choice(list(pods))
            pods[i] = {**pods[i], "status": {"phase": "Running", "step": step}}
            c.update_pod(pods[i])
        elif op < 0.65:  # relabelled
            i = rng.choice(list(pods))
            meta = {**pods[i]["metadata"], "labels": {"app": rng.choice("abc")}}
            pods[i] = {**pods[i], "metadata": meta}
            c.update_pod(pods[i])
        elif op < 0.7:  # being deleted
            i = rng.choice(list(pods))
            meta = {**pods[i]["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}
            pods[i] = {**pods[i], "metadata": meta}
            c.update_pod(pods[i])
        elif op < 0.75:  # resized in place: requests re-counted on the same node
            i = rng.choice(list(pods))
            spec = {**pods[i]["spec"]}
            spec["containers"] = [
                {"name": "c", "image": "i", "resources": {"requests": {"cpu": "300m"}}}
            ]
            pods[i] = {**pods[i], "spec": spec}
            c.update_pod(pods[i])
        elif op < 0.85:
            i = rng.choice(list(pods))
            c.remove_pod(f"{pods[i]['metadata']['namespace']}/p{i}")
            del pods[i]
        elif op < 0.9 and len(c) > 1:  # a node goes: its pods wait for it
            name = rng.choice([i.name for i in c.node_infos()])
            c.remove_node(name)
            gone.append(int(name[1:]))
        elif op < 0.95 and gone:  # and comes back, maybe with less cpu
            c.add_node(node(gone.pop(), rng.choice(["2", "4"])))
        else:  # a new node, growing the arrays
            c.add_node(node(nodes))
            nodes += 1
        check(c)
    assert nodes > 2  # the arrays grew past their first capacity


def anti_by_namespace_label(name: str) -> Any:
    term = {
        "labelSelector": {"matchLabels": {"app": "web"}},
        "topologyKey": HOST,
        "namespaceSelector": {"matchLabels": {"team": "blue"}},
    }
    return {
        "metadata": {"name": name, "namespace": "own", "uid": name, "labels": {"app": "db"}},
        "spec": {
            "nodeName": "n0",
            "containers": [{"name": "c", "image": "i"}],
            "affinity": {
                "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}
            },
        },
    }


def test_placed_namespace_selector_follows_namespace_labels() -> None:
    labels = {"team": "blue"}

    def lister(group: str, version: str, plural: str, namespace: str) -> list[Any]:
        return (
            [{"metadata": {"name": "web-ns", "labels": dict(labels)}}]
            if plural == "namespaces"
            else []
        )

    c = Cache()
    c.add_node(node(0))
    c.add_node(node(1))
    c.add_pod(anti_by_namespace_label("db"))
    plugin = InterPodAffinity(lister)
    incoming = pod(99, "web-ns", "web", "")
    incoming["metadata"]["labels"] = {"app": "web"}

    def allowed() -> set[str]:
        state = CycleState()
        if plugin.pre_filter(state, incoming, c) is not None:
            return {i.name for i in c.node_infos()}  # skipped: nothing forbids
        passed = plugin.filter_all(state, incoming, c, c.valid.copy())
        return {i.name for i in c.node_infos() if passed[i.slot]}

    assert allowed() == {"n1"}  # the db pod's anti-affinity covers team=blue namespaces
    labels["team"] = "red"
    assert allowed() == {"n0", "n1"}  # relabelled namespace: no longer covered
