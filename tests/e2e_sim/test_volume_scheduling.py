"""The scheduler's VolumeBinding plugin on the simulated-node control plane (issue 16):
a WaitForFirstConsumer claim and a static ``local`` PV that only one node can reach —
the pod lands on that node and the PV controller binds the pair after the scheduler's
PreBind wrote the PV's ``claimRef``; a claim of an Immediate class that nothing can bind
leaves its pod unschedulable with upstream's message. Everything through kubectl.
"""

from __future__ import annotations

import json
from typing import Any

from tests.e2e_sim.conftest import Cluster


def _apply(cluster: Cluster, ns: str, *objs: dict[str, Any]) -> None:
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)})
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=body)


def _pod(name: str, claim: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [{"name": "c", "image": "busybox:1.36"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }


def _claim(name: str, cls: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {
            "storageClassName": cls,
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }


def _class(name: str, mode: str) -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": mode,
    }


def test_wait_for_first_consumer_claim_follows_its_local_pv(cluster: Cluster, ns: str) -> None:
    nodes = sorted(n["metadata"]["name"] for n in cluster.kubectl.json("get", "nodes")["items"])
    target = nodes[1]
    local, now = f"{ns}-local", f"{ns}-now"
    pv_name = f"{ns}-pv"
    term = {"key": "kubernetes.io/hostname", "operator": "In", "values": [target]}
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": pv_name},
        "spec": {
            "capacity": {"storage": "5Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": local,
            "local": {"path": f"/mnt/disks/{pv_name}"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [term]}]}},
        },
    }
    _apply(cluster, ns, _class(local, "WaitForFirstConsumer"), _class(now, "Immediate"), pv)
    _apply(cluster, ns, _claim("data", local), _pod("web", "data"))
    _apply(cluster, ns, _claim("stuck", now), _pod("waits", "stuck"))

    def placed() -> str:
        return str(cluster.kubectl.json("get", "pod", "web", "-n", ns)["spec"].get("nodeName", ""))

    assert cluster.wait(placed, within=60) == target

    def bound() -> bool:
        claim = cluster.kubectl.json("get", "pvc", "data", "-n", ns)
        vol = cluster.kubectl.json("get", "pv", pv_name)
        ref = vol["spec"].get("claimRef") or {}
        return (
            claim["status"].get("phase") == "Bound"
            and claim["spec"].get("volumeName") == pv_name
            and vol["status"].get("phase") == "Bound"
            and (ref.get("namespace"), ref.get("name")) == (ns, "data")
        )

    cluster.wait(bound, within=30)

    def unschedulable() -> str:
        pod = cluster.kubectl.json("get", "pod", "waits", "-n", ns)
        conds = pod.get("status", {}).get("conditions") or []
        return next((c["message"] for c in conds if c["type"] == "PodScheduled"), "")

    message = cluster.wait(unschedulable, within=30)
    assert message.startswith(
        f"0/{len(nodes)} nodes are available: pod has unbound immediate PersistentVolumeClaims."
    ), message
    assert not cluster.kubectl.json("get", "pod", "waits", "-n", ns)["spec"].get("nodeName")
    cluster.kubectl("delete", "pv", pv_name, "--wait=false")
    cluster.kubectl("delete", "storageclass", local, now)
