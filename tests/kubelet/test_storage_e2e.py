"""Real containers keep their data: a StatefulSet on local-path volumes (issue 16).

One node (``pyk8s kubelet`` with its own containerd, and beside it the node's local-path
provisioner), the scheduler (its VolumeBinding plugin picks the node and sets
``volume.kubernetes.io/selected-node``) and the controller manager's StatefulSet, PV,
protection and garbage-collector controllers, all as processes. Three pods write their
ordinal to their volume; a deleted pod comes back to the same data; scaling down with
``whenScaled: Delete`` removes the claim, the PersistentVolume and the directory.

The same cluster runs ``pyk8s csi-hostpath`` beside the kubelet for the CSI test (see
:func:`test_csi_volume_lifecycle`).
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

from tests.addon_identity import addon_kubeconfig, can_i
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
         "statefulset,persistentvolume,pvcprotection,pvprotection,attachdetach,"
         "garbagecollector"],
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


DRIVER = "hostpath.csi.k8s.io"


class CSICluster:
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
def csi(cluster: Kubectl, cm_server: Server, node: Node) -> Iterator[CSICluster]:
    """``pyk8s csi-hostpath`` for this node, with its provisioner, attacher and resizer."""
    base = Path(tempfile.mkdtemp(prefix="csi-e2e-", dir="/tmp"))
    # its own identity; the CSIDriver and StorageClass installed for it, as pyk8s server does
    kubeconfig = str(addon_kubeconfig(cm_server, "csi-hostpath", base / "csi.kubeconfig"))
    data = base / "driver"
    log = base / "csi-hostpath.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pyk8s.server.csi_hostpath", "--kubeconfig", kubeconfig,
             "--nodeid", node.name, "--data-dir", str(data),
             "--kubelet-dir", str(node.data_dir / "kubelet"), "--maxvolumespernode", "16",
             "--health-port", str(free_port())],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield CSICluster(cluster, data, log)
    finally:
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


def test_the_csi_driver_runs_as_its_own_limited_identity(csi: CSICluster) -> None:
    """The provisioner/attacher/resizer roles: volumes and attachments, not secrets or pods."""
    identity = csi.log.parent / "csi.kubeconfig"
    assert can_i(identity, "create", "persistentvolumes")
    assert can_i(identity, "patch", "volumeattachments.storage.k8s.io", "--subresource=status")
    assert not can_i(identity, "get", "secrets", "-n", "kube-system")
    assert not can_i(identity, "create", "pods", "-n", "default")
    assert not can_i(identity, "create", "storageclasses.storage.k8s.io")


def test_csi_volume_lifecycle(csi: CSICluster, node: Node) -> None:
    k = csi.k
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
            # the attacher's finalizer, added in the same sync as the attach
            assert vas[0]["metadata"]["finalizers"] == ["external-attacher/hostpath-csi-k8s-io"]
            data = csi.data / "volumes" / pv["spec"]["csi"]["volumeHandle"]
            assert (data / "hello").read_text() == f"{name}\n"  # the pod wrote into the volume
        assert k("exec", "del", "-n", ns, "--", "cat", "/data/hello") == "del\n"
        # the attach/detach controller reports both on the node, as upstream's
        attached = {
            f"kubernetes.io/csi/{DRIVER}^{pv['spec']['csi']['volumeHandle']}" for pv in pvs.values()
        }

        def node_attached() -> set[str]:
            status = k.json("get", "node", node.name)["status"]
            assert all(v["devicePath"] == "" for v in status.get("volumesAttached") or [])
            return {v["name"] for v in status.get("volumesAttached") or []}

        wait_until(lambda: attached <= node_attached(), within=15)

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
        assert not (csi.data / "volumes" / pvs["del"]["spec"]["csi"]["volumeHandle"]).exists()
        kept = pvs["keep"]["metadata"]["name"]
        wait_until(lambda: k.json("get", "pv", kept)["status"]["phase"] == "Released", within=60)
        keep_dir = csi.data / "volumes" / pvs["keep"]["spec"]["csi"]["volumeHandle"]
        assert (keep_dir / "hello").read_text() == "keep\n"
        wait_until(lambda: not k.json("get", "volumeattachments")["items"], within=30)
        wait_until(lambda: not attached & node_attached(), within=15)

        methods = [c["method"] for c in csi.calls() if c.get("code") == "OK"]
        for m in ("CreateVolume", "ControllerPublishVolume", "NodeStageVolume",
                  "NodePublishVolume", "NodeGetVolumeStats", "ControllerExpandVolume",
                  "NodeExpandVolume", "NodeUnpublishVolume", "NodeUnstageVolume",
                  "ControllerUnpublishVolume", "DeleteVolume"):  # fmt: skip
            assert m in methods, m
        # each volume attached once (not again on the attacher's own finalizer update)
        assert methods.count("ControllerPublishVolume") == 2
        k("delete", "pv", kept)
    finally:
        k("delete", "namespace", ns, "--wait=false")
        k("delete", "storageclass", f"retain-{ns}")
