"""Deployments on the whole control plane with simulated nodes, driven by kubectl."""

from __future__ import annotations

import json
import signal
from typing import Any

from tests.e2e_sim.conftest import Cluster


def deployment(
    name: str, replicas: int, image: str = "busybox:1.36", toleration_seconds: int | None = None
) -> str:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": image}]}
    if toleration_seconds is not None:
        spec["tolerations"] = [
            {
                "key": key,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": toleration_seconds,
            }
            for key in ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")
        ]
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
            },
        }
    )


def ready(cluster: Cluster, ns: str, name: str, replicas: int) -> bool:
    d = cluster.kubectl.json("get", "deploy", name, "-n", ns)
    st = d.get("status", {})
    return bool(
        st.get("readyReplicas") == replicas
        and st.get("updatedReplicas") == replicas
        and st.get("observedGeneration") == d["metadata"]["generation"]
    )


def test_rollout_scale_set_image_and_undo(cluster: Cluster, ns: str) -> None:
    k = cluster.kubectl
    k("create", "-n", ns, "-f", "-", input=deployment("web", 3))
    out = k("rollout", "status", "deploy/web", "-n", ns, "--timeout=90s", timeout=120)
    assert 'deployment "web" successfully rolled out' in out
    pods = cluster.pods(ns, "app=web")
    assert len(pods) == 3 and all(p["status"]["phase"] == "Running" for p in pods)
    assert len({p["spec"]["nodeName"] for p in pods}) >= 2, "pods spread over the nodes"

    k("scale", "deploy/web", "-n", ns, "--replicas=4")
    cluster.wait(lambda: ready(cluster, ns, "web", 4))

    k("set", "image", "deploy/web", "c=busybox:1.37", "-n", ns)
    k("rollout", "status", "deploy/web", "-n", ns, "--timeout=120s", timeout=150)
    images = {
        p["spec"]["containers"][0]["image"]
        for p in cluster.pods(ns, "app=web")
        if not p["metadata"].get("deletionTimestamp")
    }
    assert images == {"busybox:1.37"}
    history = k("rollout", "history", "deploy/web", "-n", ns)
    assert "1" in history and "2" in history

    k("rollout", "undo", "deploy/web", "-n", ns)
    k("rollout", "status", "deploy/web", "-n", ns, "--timeout=120s", timeout=150)
    d = k.json("get", "deploy", "web", "-n", ns)
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1.36"
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    rs = k.json("get", "rs", "-n", ns, "-l", "app=web")["items"]
    assert len(rs) == 2, "undo reuses the first ReplicaSet"


def test_pods_of_a_dead_node_are_replaced_elsewhere(cluster: Cluster, ns: str) -> None:
    k = cluster.kubectl
    k("create", "-n", ns, "-f", "-", input=deployment("survivor", 3, toleration_seconds=2))
    k("rollout", "status", "deploy/survivor", "-n", ns, "--timeout=90s", timeout=120)
    # SIGUSR1 stops the highest-numbered simulated node (sim-2): it stops renewing its lease
    cluster.sim.send_signal(signal.SIGUSR1)
    try:

        def not_ready() -> bool:
            node = k.json("get", "node", "sim-2")
            cond = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
            return cond["status"] == "Unknown"

        cluster.wait(not_ready, within=120)

        # the condition and the taint are two writes (status, then spec), as upstream's
        # node lifecycle controller makes them: wait for the second
        def tainted() -> bool:
            node = k.json("get", "node", "sim-2")
            return "node.kubernetes.io/unreachable" in {
                t["key"] for t in node["spec"].get("taints", [])
            }

        cluster.wait(tainted, within=60)

        def replaced() -> bool:
            live = [
                p
                for p in cluster.pods(ns, "app=survivor")
                if not p["metadata"].get("deletionTimestamp")
                and p["status"].get("phase") == "Running"
            ]
            return len(live) == 3 and all(p["spec"]["nodeName"] != "sim-2" for p in live)

        cluster.wait(replaced, within=120)
    finally:
        cluster.sim.send_signal(signal.SIGUSR2)  # bring sim-2 back for the other tests
        cluster.wait(
            lambda: (
                next(
                    c
                    for c in k.json("get", "node", "sim-2")["status"]["conditions"]
                    if c["type"] == "Ready"
                )["status"]
                == "True"
            ),
            within=120,
        )


def test_drain_respects_a_disruption_budget(cluster: Cluster, ns: str) -> None:
    k = cluster.kubectl
    k("create", "-n", ns, "-f", "-", input=deployment("guarded", 2))
    k("rollout", "status", "deploy/guarded", "-n", ns, "--timeout=90s", timeout=120)
    k("create", "pdb", "guarded", "-n", ns, "--selector=app=guarded", "--min-available=2")
    cluster.wait(
        lambda: k.json("get", "pdb", "guarded", "-n", ns).get("status", {}).get("expectedPods") == 2
    )
    node = cluster.pods(ns, "app=guarded")[0]["spec"]["nodeName"]
    # other tests' bare pods share the node: drain only this workload's pods
    out = k.run(
        "drain",
        node,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=5s",
        "--pod-selector=app=guarded",
        check=False,
        timeout=60,
    )
    try:
        assert out.returncode != 0
        assert "disruption budget" in (out.stdout + out.stderr)
    finally:
        k("uncordon", node)


def test_orphan_and_foreground_deletion(cluster: Cluster, ns: str) -> None:
    k = cluster.kubectl
    for name in ("orphaned", "fg"):
        k("create", "-n", ns, "-f", "-", input=deployment(name, 1))
        k("rollout", "status", f"deploy/{name}", "-n", ns, "--timeout=90s", timeout=120)

    k("delete", "deploy", "orphaned", "-n", ns, "--cascade=orphan")
    rs = cluster.wait(
        lambda: [
            r
            for r in k.json("get", "rs", "-n", ns, "-l", "app=orphaned")["items"]
            if not r["metadata"].get("ownerReferences")
        ]
    )
    assert len(rs) == 1, "the ReplicaSet survives without its owner reference"

    k("delete", "deploy", "fg", "-n", ns, "--cascade=foreground", "--wait=true", timeout=120)
    assert k.run("get", "deploy", "fg", "-n", ns, check=False).returncode == 1
    # as upstream, the ReplicaSet unblocks its owner and is itself deleted in the
    # foreground: it may still be terminating while its pods go
    assert all(
        r["metadata"].get("deletionTimestamp")
        for r in k.json("get", "rs", "-n", ns, "-l", "app=fg")["items"]
    )
    cluster.wait(lambda: k.json("get", "rs", "-n", ns, "-l", "app=fg")["items"] == [])
    cluster.wait(
        lambda: (
            not [
                p for p in cluster.pods(ns, "app=fg") if not p["metadata"].get("deletionTimestamp")
            ]
        )
    )
