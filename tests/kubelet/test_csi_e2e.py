"""CSI end to end with real containers (issue 16): ``pyk8s csi-hostpath`` beside a real
kubelet, the scheduler, and the controller manager's PV, protection and attach/detach
controllers, all as processes.

Two claims, one on the ``csi-hostpath`` class (Delete) and one on a Retain class, each
used by a pod that writes a file: each claim is provisioned by the driver's provisioner
(CreateVolume for the selected node's topology), attached (a VolumeAttachment the
driver's attacher marks attached), staged and published into the pod. Growing the
Delete claim goes through ControllerExpandVolume and the kubelet's NodeExpandVolume to
the claim's capacity; shrinking it is refused (422). Deleting pods and claims
unpublishes, unstages, detaches and, for Delete, removes the volume and its data; the
Retain volume keeps them. The driver's log shows the CSI calls.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
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

DRIVER = "hostpath.csi.k8s.io"


class Cluster:
    def __init__(self, k: Kubectl, data: Path, log: Path) -> None:
        self.k, self.data, self.log = k, data, log

    def calls(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("logger") == "pyk8s.csihostpath.driver" and "method" in entry:
                    out.append(entry)
        return out


@pytest.fixture(scope="module")
def cluster(cm_server: Server, node: Node) -> Iterator[Cluster]:
    kubeconfig = str(cm_server.kubeconfig)
    base = Path(tempfile.mkdtemp(prefix="csi-e2e-", dir="/tmp"))
    data = base / "driver"
    commands = [
        [sys.executable, "-m", "pyk8s", "controller-manager", "--kubeconfig", kubeconfig,
         "--leader-elect", "false", "--port", str(free_port()), "--controllers",
         "persistentvolume,pvcprotection,pvprotection,attachdetach,garbagecollector"],
        [sys.executable, "-m", "pyk8s", "scheduler", "--kubeconfig", kubeconfig,
         "--leader-elect", "false", "--secure-port", str(free_port())],
        [sys.executable, "-m", "pyk8s.server.csi_hostpath", "--kubeconfig", kubeconfig,
         "--nodeid", node.name, "--data-dir", str(data),
         "--kubelet-dir", str(node.data_dir / "kubelet"), "--maxvolumespernode", "16",
         "--install-objects", "--health-port", str(free_port())],
    ]  # fmt: skip
    procs = []
    for args in commands:
        name = args[2] if args[2] != "pyk8s" else args[3]
        with (base / f"{name}.log").open("ab") as log:
            procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT))
    try:
        yield Cluster(Kubectl(cm_server.kubeconfig), data, base / "pyk8s.server.csi_hostpath.log")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)


def claim_and_pod(name: str, cls: str, node: str) -> list[dict[str, Any]]:
    script = f"echo {name} > /data/hello; trap 'exit 0' TERM; while :; do sleep 1; done"
    return [
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
         "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": cls,
                  "resources": {"requests": {"storage": "64Mi"}}}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
         "spec": {"nodeSelector": {"kubernetes.io/hostname": node},
                  "terminationGracePeriodSeconds": 1,
                  "containers": [container("c", script, volumeMounts=[
                      {"name": "data", "mountPath": "/data"}])],
                  "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": name}}]}},
    ]  # fmt: skip


def _ready(k: Kubectl, ns: str, name: str) -> bool:
    pod = k.json("get", "pod", name, "-n", ns)
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions") or []
    )


def _gone(k: Kubectl, *what: str) -> bool:
    return not k("get", *what, "--ignore-not-found", "-o", "name").strip()


def test_csi_volume_lifecycle(cluster: Cluster, node: Node) -> None:
    k = cluster.k
    ns = f"csi-{uuid.uuid4().hex[:6]}"
    k("create", "namespace", ns)
    k("apply", "-f", "-", input=json.dumps({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": f"retain-{ns}"}, "provisioner": DRIVER,
        "reclaimPolicy": "Retain", "volumeBindingMode": "WaitForFirstConsumer",
    }))  # fmt: skip
    try:
        objs = [*claim_and_pod("del", "csi-hostpath", node.name),
                *claim_and_pod("keep", f"retain-{ns}", node.name)]  # fmt: skip
        k("apply", "-n", ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                          "items": objs}))  # fmt: skip
        wait_until(lambda: _ready(k, ns, "del") and _ready(k, ns, "keep"), within=90)

        # registration: the CSINode lists the driver with its topology key and limit
        csinode = k.json("get", "csinode", node.name)
        entry = next(d for d in csinode["spec"]["drivers"] if d["name"] == DRIVER)
        assert entry["topologyKeys"] == ["topology.hostpath.csi/node"]
        assert entry["allocatable"] == {"count": 16} and entry["nodeID"] == node.name

        pvs = {}
        for name in ("del", "keep"):
            pv = k.json("get", "pv", k.json("get", "pvc", name, "-n", ns)["spec"]["volumeName"])
            pvs[name] = pv
            assert pv["spec"]["csi"]["driver"] == DRIVER
            terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
            assert terms[0]["matchExpressions"][0]["values"] == [node.name]
            vas = [
                va
                for va in k.json("get", "volumeattachments")["items"]
                if va["spec"]["source"]["persistentVolumeName"] == pv["metadata"]["name"]
            ]
            assert len(vas) == 1 and vas[0]["status"]["attached"] is True
            assert vas[0]["spec"]["nodeName"] == node.name
            data = cluster.data / "volumes" / pv["spec"]["csi"]["volumeHandle"]
            assert (data / "hello").read_text() == f"{name}\n"  # the pod wrote into the volume
        assert k("exec", "del", "-n", ns, "--", "cat", "/data/hello") == "del\n"

        # expansion: controller then node; the claim's capacity follows
        k("patch", "pvc", "del", "-n", ns, "-p",
          '{"spec":{"resources":{"requests":{"storage":"128Mi"}}}}')  # fmt: skip
        wait_until(
            lambda: (
                k.json("get", "pvc", "del", "-n", ns)["status"]["capacity"]["storage"] == "128Mi"
            ),
            within=40,
        )
        assert k.json("get", "pv", pvs["del"]["metadata"]["name"])["spec"]["capacity"] == {
            "storage": "128Mi"
        }
        wanted = {"Resizing", "FileSystemResizeRequired", "FileSystemResizeSuccessful",
                  "ProvisioningSucceeded", "SuccessfulAttachVolume"}  # fmt: skip
        wait_until(
            lambda: wanted <= {e["reason"] for e in k.json("get", "events", "-n", ns)["items"]},
            within=15,
        )
        shrink = k.run(
            "patch", "pvc", "del", "-n", ns,
            "-p", '{"spec":{"resources":{"requests":{"storage":"32Mi"}}}}', check=False,
        )  # fmt: skip
        assert shrink.returncode != 0
        assert (
            "spec.resources.requests.storage: Forbidden: field can not be less than "
            "status.capacity" in shrink.stderr
        )

        # teardown: Delete removes volume and data, Retain keeps them
        k("delete", "pod", "del", "keep", "-n", ns, "--wait=true", timeout=90)
        k("delete", "pvc", "del", "keep", "-n", ns, "--wait=false")
        name = pvs["del"]["metadata"]["name"]
        wait_until(lambda: _gone(k, "pv", name), within=60)
        assert not (cluster.data / "volumes" / pvs["del"]["spec"]["csi"]["volumeHandle"]).exists()
        kept = pvs["keep"]["metadata"]["name"]
        wait_until(lambda: k.json("get", "pv", kept)["status"]["phase"] == "Released", within=60)
        keep_dir = cluster.data / "volumes" / pvs["keep"]["spec"]["csi"]["volumeHandle"]
        assert (keep_dir / "hello").read_text() == "keep\n"
        wait_until(lambda: not k.json("get", "volumeattachments")["items"], within=30)

        methods = [c["method"] for c in cluster.calls() if c.get("code") == "OK"]
        for m in ("CreateVolume", "ControllerPublishVolume", "NodeStageVolume",
                  "NodePublishVolume", "NodeGetVolumeStats", "ControllerExpandVolume",
                  "NodeExpandVolume", "NodeUnpublishVolume", "NodeUnstageVolume",
                  "ControllerUnpublishVolume", "DeleteVolume"):  # fmt: skip
            assert m in methods, m
        k("delete", "pv", kept)
    finally:
        k("delete", "namespace", ns, "--wait=false")
        k("delete", "storageclass", f"retain-{ns}")
