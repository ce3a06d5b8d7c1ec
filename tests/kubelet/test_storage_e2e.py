"""Real containers keep their data: a StatefulSet on local-path volumes (issue 16).

One node (``pyk8s kubelet`` with its own containerd, and beside it the node's local-path
provisioner), the scheduler (its VolumeBinding plugin picks the node and sets
``volume.kubernetes.io/selected-node``) and the controller manager's StatefulSet, PV,
protection and garbage-collector controllers, all as processes. Three pods write their
ordinal to their volume; a deleted pod comes back to the same data; scaling down with
``whenScaled: Delete`` removes the claim, the PersistentVolume and the directory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_sim.conftest import wait_until
from tests.integration.conftest import Kubectl, Server, free_port
from tests.kubelet.node_fixtures import Node
from tests.kubelet.test_kubelet_e2e import container

pytestmark = pytest.mark.e2e

SCRIPT = (
    "echo ${HOSTNAME##*-} > /data/ordinal; echo start >> /data/starts; "
    "trap 'exit 0' TERM; while :; do sleep 1; done"
)


@pytest.fixture(scope="module")
def cluster(
    cm_server: Server, node: Node, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Kubectl]:
    """The scheduler and the storage controllers, once per module."""
    kubeconfig = str(cm_server.kubeconfig)
    logs = tmp_path_factory.mktemp("storage-e2e")
    commands = [
        ["controller-manager", "--kubeconfig", kubeconfig, "--leader-elect", "false",
         "--port", str(free_port()),
         "--controllers",
         "statefulset,persistentvolume,pvcprotection,pvprotection,garbagecollector"],
        ["scheduler", "--kubeconfig", kubeconfig, "--leader-elect", "false",
         "--secure-port", str(free_port())],
    ]  # fmt: skip
    procs = []
    for args in commands:
        with (logs / f"{args[0]}.log").open("ab") as log:
            procs.append(subprocess.Popen([sys.executable, "-m", "pyk8s", *args],
                                          stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
    try:
        yield Kubectl(cm_server.kubeconfig)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)


def statefulset(cls: str, node: str) -> dict[str, Any]:
    pod_spec = {
        "nodeSelector": {"kubernetes.io/hostname": node},
        "terminationGracePeriodSeconds": 1,
        "containers": [
            container("c", SCRIPT, volumeMounts=[{"name": "data", "mountPath": "/data"}])
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "serviceName": "web",
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": "web"}},
            "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete"},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec},
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": cls,
                        "resources": {"requests": {"storage": "64Mi"}},
                    },
                }
            ],
        },
    }


def volume_dir(k: Kubectl, ns: str, claim: str) -> Path:
    name = k.json("get", "pvc", claim, "-n", ns)["spec"]["volumeName"]
    return Path(k.json("get", "pv", name)["spec"]["hostPath"]["path"])


def ready_pod(k: Kubectl, ns: str, name: str, not_uid: str = "") -> dict[str, Any] | None:
    pod: dict[str, Any] = k.json("get", "pod", name, "-n", ns)
    conditions = pod.get("status", {}).get("conditions") or []
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    return pod if ready and pod["metadata"]["uid"] != not_uid else None


def test_statefulset_keeps_its_data_on_local_path_volumes(cluster: Kubectl, node: Node) -> None:
    k = cluster
    ns = f"sts-{uuid.uuid4().hex[:6]}"
    cls = f"local-path-{ns}"
    k("create", "namespace", ns)
    k("apply", "-f", "-", input=json.dumps({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": cls},
        "provisioner": "pyk8s.io/local-path", "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    }))  # fmt: skip
    try:
        k("apply", "-n", ns, "-f", "-", input=json.dumps(statefulset(cls, node.name)))
        k("rollout", "status", "sts/web", "-n", ns, "--timeout=120s", timeout=150)

        base = node.data_dir / "storage"
        dirs = {}
        for i in range(3):
            claim = k.json("get", "pvc", f"data-web-{i}", "-n", ns)
            assert claim["metadata"]["labels"] == {"app": "web"}  # the selector's, as upstream
            assert claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == (
                node.name
            )
            dirs[i] = volume_dir(k, ns, f"data-web-{i}")
            assert dirs[i].parent == base
            assert (dirs[i] / "ordinal").read_text() == f"{i}\n"
        assert k("exec", "web-2", "-n", ns, "--", "cat", "/data/ordinal") == "2\n"

        # a deleted pod comes back to the same volume and finds what it wrote
        uid = k.json("get", "pod", "web-1", "-n", ns)["metadata"]["uid"]
        k("delete", "pod", "web-1", "-n", ns)
        wait_until(lambda: ready_pod(k, ns, "web-1", not_uid=uid), within=90)
        assert k("exec", "web-1", "-n", ns, "--", "cat", "/data/starts") == "start\nstart\n"
        assert volume_dir(k, ns, "data-web-1") == dirs[1]

        # whenScaled: Delete — the claim, its volume and its directory go
        pv2 = k.json("get", "pvc", "data-web-2", "-n", ns)["spec"]["volumeName"]
        k("scale", "sts/web", "-n", ns, "--replicas=2")
        wait_until(
            lambda: not k("get", "pv", pv2, "--ignore-not-found", "-o", "name").strip(),
            within=90,
        )
        assert not k("get", "pvc", "data-web-2", "-n", ns, "--ignore-not-found").strip()
        assert not dirs[2].exists()
        assert (dirs[0] / "ordinal").exists() and (dirs[1] / "ordinal").exists()
    finally:
        k("delete", "namespace", ns, "--wait=false")
        k("delete", "storageclass", cls)
