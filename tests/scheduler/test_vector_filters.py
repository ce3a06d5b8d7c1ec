"""The vectorised Filters (over the cache's per-label id columns) judge every node as the
per-node ``filter`` does: each pod and node below is checked both ways, so a pod that
fits reads the same as the "0/N nodes are available" reasons computed one node at a time.
Nodes are added and removed between checks so the label columns' upkeep is covered."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from pyk8s.scheduler.cache import Cache
from pyk8s.scheduler.framework import CycleState
from pyk8s.scheduler.plugins.interpodaffinity import InterPodAffinity
from pyk8s.scheduler.plugins.nodeaffinity import NodeAffinity
from pyk8s.scheduler.plugins.podtopologyspread import PodTopologySpread

HOST, ZONE, RACK = "kubernetes.io/hostname", "topology.kubernetes.io/zone", "rack"


def node(i: int) -> Any:
    labels = {HOST: f"n{i}", "size": str(i % 4)}
    if i % 5:
        labels[ZONE] = f"z{i % 3}"
    if i % 2:
        labels[RACK] = f"r{i % 2}"
    return {"metadata": {"name": f"n{i}", "labels": labels}, "spec": {}, "status": {}}


def pod(name: str, app: str, node_name: str = "", **spec: Any) -> Any:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "i"}], **spec}
        | ({"nodeName": node_name} if node_name else {}),
    }


def cluster() -> Cache:
    c = Cache(capacity=2)
    for i in range(14):
        c.add_node(node(i))
    c.remove_node("n3")  # a freed slot and a column entry to clear
    c.add_node(node(20))
    for i, (app, at) in enumerate(itertools.product(["a", "b"], ["n0", "n1", "n4", "n7"])):
        anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "a"}}, "topologyKey": RACK}
        ]}} if i == 5 else {}  # fmt: skip
        c.add_pod(pod(f"p{i}", app, at, **({"affinity": anti} if anti else {})))
    return c


def term(app: str, key: str) -> Any:
    return {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}


def expr(key: str, op: str, *values: str) -> Any:
    return {"key": key, "operator": op, **({"values": list(values)} if values else {})}


PODS = [
    pod("plain", "z"),
    pod("sel", "z", nodeSelector={ZONE: "z1"}),
    *(
        pod(f"na{i}", "z", affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}})  # noqa: E501
        for i, terms in enumerate([
            [{"matchExpressions": [expr(ZONE, "In", "z0", "z2")]}],
            [
                {"matchExpressions": [expr(ZONE, "NotIn", "z0")]},
                {"matchExpressions": [expr(RACK, "Exists")]},
            ],
            [{"matchExpressions": [expr(RACK, "DoesNotExist"), expr("size", "Gt", "1")]}],
            [{
                "matchExpressions": [expr("size", "Lt", "2")],
                "matchFields": [expr("metadata.name", "In", "n1", "n2")],
            }],
            [{}],
        ])
    ),
    *(
        pod(f"ipa{i}", app, affinity={kind: {"requiredDuringSchedulingIgnoredDuringExecution": [term(other, key)]}})  # noqa: E501
        for i, (app, kind, other, key) in enumerate([
            ("a", "podAffinity", "a", ZONE),
            ("c", "podAffinity", "c", ZONE),  # first of its group: anywhere labelled
            ("c", "podAffinity", "b", RACK),
            ("a", "podAntiAffinity", "a", HOST),
            ("b", "podAntiAffinity", "a", ZONE),
            ("a", "podAntiAffinity", "zz", HOST),  # only existing pods' anti-affinity
        ])
    ),
    *(
        pod(f"pts{i}", app, topologySpreadConstraints=[{"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "a"}}, **extra}])  # noqa: E501
        for i, (app, key, skew, extra) in enumerate([
            ("a", HOST, 1, {}),
            ("a", ZONE, 1, {}),
            ("z", RACK, 1, {"minDomains": 3}),
            ("a", ZONE, 2, {"nodeAffinityPolicy": "Ignore"}),
        ])
    ),
]  # fmt: skip


def test_vector_filters_agree_with_per_node_filters() -> None:
    c = cluster()
    plugins: list[Any] = [
        NodeAffinity(),
        InterPodAffinity(lambda *a: []),
        PodTopologySpread(lambda *a: []),
    ]
    for p in PODS:
        for plugin in plugins:
            state = CycleState()
            pre = getattr(plugin, "pre_filter", None)
            if pre is not None and pre(state, p, c) is not None:
                continue  # skipped: no filter runs
            passed = plugin.filter_all(state, p, c, c.valid.copy())
            for info in c.node_infos():
                alone = plugin.filter(state, p, info) is None
                assert bool(passed[info.slot]) == alone, (
                    p["metadata"]["name"],
                    plugin.name,
                    info.name,
                )
            assert not (passed & ~c.valid).any()


def test_label_columns_follow_node_changes() -> None:
    c = cluster()
    ids, index = c.domains(ZONE)
    assert ids[c.nodes["n4"].slot] == index["z1"] and ids[c.nodes["n0"].slot] == -1
    relabelled = node(4)
    relabelled["metadata"]["labels"][ZONE] = "z9"
    c.add_node(relabelled)
    assert c.in_domains(ZONE, ["z9"])[c.nodes["n4"].slot]
    c.remove_node("n4")
    assert not c.in_domains(ZONE, ["z9"]).any()
    for i in range(30, 60):  # the arrays grow; the column keeps its entries
        c.add_node(node(i))
    ids, index = c.domains(ZONE)
    assert ids.shape == c.valid.shape
    expected = np.zeros_like(c.valid)
    for info in c.node_infos():
        expected[info.slot] = info.labels.get(ZONE) == "z1"
    assert np.array_equal(c.in_domains(ZONE, ["z1"]), expected)
