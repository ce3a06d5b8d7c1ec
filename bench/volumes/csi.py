"""Claim create → pod Running on a real node: CSI (csi-hostpath) next to local-path and a
pod without a volume, all in one run (issue 16).

A ``pyk8s apiserver``, ``pyk8s kubelet`` on its own containerd (with the node's local-path
provisioner inside), the controller manager (PV binder, protection, attach/detach),
the scheduler and ``pyk8s csi-hostpath`` for the node, as processes. Rows, each N pods one
after another (claim and pod created together, WaitForFirstConsumer classes):

* baseline: a pod without volumes, create → Running;
* a pod with a local-path claim (the scheduler selects the node, the provisioner makes
  the directory and PV, the binder binds, the kubelet mounts a hostPath);
* a pod with a csi-hostpath claim (CreateVolume, PV, bind, VolumeAttachment and
  ControllerPublishVolume, NodeStage and NodePublish over gRPC).

A second table says where the time goes: for each row, the median time from the create
to each step of the chain, as this process's watches on pods, claims, volumes and
VolumeAttachments first saw it (the scheduler's ``selected-node``, the PV controller's
``storage-provisioner``, the provisioner's PV, the binder's writes, the pod's binding,
the attachment, Running).

    python3 bench/volumes/csi.py [--pods 5]     (root: containerd, bind mounts)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._table import Row, table, timed  # noqa: E402
from tests.integration.conftest import Server, free_port  # noqa: E402
from tests.kubelet.node_fixtures import Node  # noqa: E402
from tests.kubelet.runtime_fixtures import _reap_leftovers, remove_cni_nat  # noqa: E402
from tests.kubelet.test_kubelet_e2e import container  # noqa: E402

from pyk8s.api.registry import REGISTRY  # noqa: E402
from pyk8s.client import Client, ClientError, load_config  # noqa: E402

PODS = REGISTRY.get("", "v1", "pods")
PVCS = REGISTRY.get("", "v1", "persistentvolumeclaims")
CLASSES = REGISTRY.get("storage.k8s.io", "v1", "storageclasses")
PVS = REGISTRY.get("", "v1", "persistentvolumes")
ATTACHMENTS = REGISTRY.get("storage.k8s.io", "v1", "volumeattachments")
NS = "default"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
PROVISIONER = "volume.kubernetes.io/storage-provisioner"
BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
#: the chain's steps in order (the second table's columns)
STEPS = (
    "claim selected-node", "claim storage-provisioner", "PV created", "PV Bound",
    "claim bind-completed", "claim Bound", "pod bound", "attached", "pod Running",
)  # fmt: skip


def _pod_steps(pod: dict[str, Any]) -> list[str]:
    out = ["pod bound"] if (pod.get("spec") or {}).get("nodeName") else []
    return out + (["pod Running"] if (pod.get("status") or {}).get("phase") == "Running" else [])


def _claim_steps(claim: dict[str, Any]) -> list[str]:
    ann = claim["metadata"].get("annotations") or {}
    out = [s for s, a in (("claim selected-node", SELECTED_NODE),
                          ("claim storage-provisioner", PROVISIONER),
                          ("claim bind-completed", BIND_COMPLETED)) if a in ann]  # fmt: skip
    return out + (["claim Bound"] if (claim.get("status") or {}).get("phase") == "Bound" else [])


class Steps:
    """When this process's watches first saw each step of each claim's and pod's chain
    (they share a name in every row)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seen: dict[str, dict[str, float]] = {}
        self.pv_claim: dict[str, str] = {}
        self.tasks: list[asyncio.Task[None]] = []

    def _mark(self, name: str, steps: list[str]) -> None:
        now = time.monotonic()
        for step in steps:
            self.seen.setdefault(name, {}).setdefault(step, now)

    def _volume(self, pv: dict[str, Any]) -> None:
        claim = ((pv.get("spec") or {}).get("claimRef") or {}).get("name")
        if claim:
            self.pv_claim[pv["metadata"]["name"]] = claim
            phase = (pv.get("status") or {}).get("phase")
            self._mark(claim, ["PV created"] + (["PV Bound"] if phase == "Bound" else []))

    def _attachment(self, va: dict[str, Any]) -> None:
        pv = ((va.get("spec") or {}).get("source") or {}).get("persistentVolumeName", "")
        if (va.get("status") or {}).get("attached") and pv in self.pv_claim:
            self._mark(self.pv_claim[pv], ["attached"])

    async def _follow(self, res: Any, ns: str | None, seen: Any) -> None:
        while True:  # list, then watch from there; a watch that ends or fails: again
            with contextlib.suppress(ClientError):
                listed = await self.client.list(res, ns)
                for obj in listed["items"]:
                    seen(obj)
                rv = listed["metadata"]["resourceVersion"]
                async for _etype, obj in self.client.watch(res, ns, resource_version=rv):
                    seen(obj)

    def start(self) -> None:
        def named(steps: Any) -> Any:
            return lambda obj: self._mark(obj["metadata"]["name"], steps(obj))

        for res, ns, seen in (
            (PODS, NS, named(_pod_steps)),
            (PVCS, NS, named(_claim_steps)),
            (PVS, None, self._volume),
            (ATTACHMENTS, None, self._attachment),
        ):
            self.tasks.append(asyncio.create_task(self._follow(res, ns, seen)))

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    def medians(self, started: dict[str, float]) -> dict[str, float]:
        """Step -> median ms after the create, over the names in ``started``."""
        out: dict[str, float] = {}
        for step in STEPS:
            after = [self.seen[n][step] - t for n, t in started.items()
                     if step in self.seen.get(n, {})]  # fmt: skip
            if after:
                out[step] = statistics.median(after) * 1000
        return out


def _pod(name: str, node: str, claim: str = "") -> dict[str, Any]:
    mounts = [{"name": "data", "mountPath": "/data"}] if claim else []
    spec: dict[str, Any] = {
        "nodeSelector": {"kubernetes.io/hostname": node},
        "terminationGracePeriodSeconds": 0,
        "containers": [container("c", "exec sleep 3600", volumeMounts=mounts)],
    }
    if claim:
        spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def _claim(name: str, cls: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": cls,
                 "resources": {"requests": {"storage": "16Mi"}}},
    }  # fmt: skip


async def _running(client: Client, name: str, within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        pod = await client.get(PODS, name, NS)
        if (pod.get("status") or {}).get("phase") == "Running":
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"pod {name} not Running within {within} s")


async def _row(
    client: Client, what: str, node: str, cls: str, n: int, steps: Steps | None = None
) -> Row:
    tag = uuid.uuid4().hex[:5]
    started: dict[str, float] = {}

    async def one(i: int) -> None:
        name = f"{tag}-{i}"
        started[name] = time.monotonic()
        if cls:
            await client.create(PVCS, _claim(name, cls), NS)
        await client.create(PODS, _pod(name, node, name if cls else ""), NS)
        await _running(client, name)

    row = await timed(what, 1, n, one)
    if steps is not None:
        await asyncio.sleep(0.5)  # a step seen just after Running (a claim's status write)
        chains[what] = steps.medians(started)
    for i in range(n):
        await client.delete(PODS, f"{tag}-{i}", NS, grace_period_seconds=0)
        if cls:
            await client.delete(PVCS, f"{tag}-{i}", NS)
    return row


#: row -> step -> median ms after the create
chains: dict[str, dict[str, float]] = {}


def chain_table() -> str:
    """The medians of :data:`chains` as a markdown table (one column per step seen)."""
    steps = [s for s in STEPS if any(s in c for c in chains.values())]
    out = ["| row | " + " | ".join(steps) + " |", "|---|" + "---:|" * len(steps)]
    for what, c in chains.items():
        cells = " | ".join(f"{c[s]:.0f}" if s in c else "" for s in steps)
        out.append(f"| {what} | {cells} |")
    return "\n".join(out)


async def measure(kubeconfig: Path, node: str, n: int) -> list[Row]:
    async with Client(load_config(str(kubeconfig))) as client:
        await client.create(CLASSES, {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "bench-local-path"}, "provisioner": "pyk8s.io/local-path",
            "volumeBindingMode": "WaitForFirstConsumer",
        })  # fmt: skip
        deadline = time.monotonic() + 60  # csi-hostpath creates its class and registers
        while time.monotonic() < deadline:
            csinodes = await client.list(REGISTRY.get("storage.k8s.io", "v1", "csinodes"))
            if any(c["metadata"]["name"] == node and c["spec"].get("drivers")
                   for c in csinodes["items"]):  # fmt: skip
                break
            await asyncio.sleep(0.2)
        await _row(client, "warm-up (not reported)", node, "", 1)
        steps = Steps(client)
        steps.start()
        try:
            return [
                await _row(client, "pod without volumes (baseline)", node, "", n, steps),
                await _row(client, "pod + local-path claim", node, "bench-local-path", n, steps),
                await _row(client, "pod + csi-hostpath claim", node, "csi-hostpath", n, steps),
            ]
        finally:
            await steps.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=5)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-csi-", dir="/tmp"))
    server = Server(base / "data", free_port()).start()
    suffix = uuid.uuid4().hex[:8]
    node = Node(
        name=f"bench-{suffix}", data_dir=base / "agent", log_root=base / "pods",
        pod_cidr=f"10.88.{150 + uuid.uuid4().int % 50}.0/24", bridge=f"pb{suffix}",
        kubeconfig=server.kubeconfig, healthz_port=free_port(), port=free_port(),
    )  # fmt: skip
    kc = str(server.kubeconfig)
    commands = [
        ["controller-manager", "--kubeconfig", kc, "--leader-elect", "false",
         "--port", str(free_port()), "--controllers",
         "serviceaccount,persistentvolume,pvcprotection,pvprotection,attachdetach"],
        ["scheduler", "--kubeconfig", kc, "--leader-elect", "false",
         "--secure-port", str(free_port())],
        ["csi-hostpath", "--kubeconfig", kc, "--nodeid", node.name,
         "--data-dir", str(base / "csi"), "--kubelet-dir", str(node.data_dir / "kubelet"),
         "--install-objects", "--health-port", str(free_port())],
    ]  # fmt: skip
    procs = []
    try:
        for cmd in commands:
            with (base / f"{cmd[0]}.log").open("ab") as log:
                procs.append(subprocess.Popen([sys.executable, "-m", "pyk8s", *cmd],
                                              stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
        node.start()
        rows = asyncio.run(measure(server.kubeconfig, node.name, args.pods))
        load = Path("/proc/loadavg").read_text().split()[:3]
        print(f"claim + pod create → Running, one at a time, on one real node "
              f"(load average {' '.join(load)})\n")  # fmt: skip
        print(table(rows, ms_digits=0))
        print("\nwhere the time goes: median ms after the create, as watched\n")
        print(chain_table())
    finally:
        node.stop()
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        server.stop()
        _reap_leftovers(node.data_dir, node.socket)
        remove_cni_nat(node.pod_cidr)
        subprocess.run(["ip", "link", "delete", node.bridge], capture_output=True, timeout=10)
        subprocess.run(["rm", "-rf", str(base)], check=False, timeout=60)


if __name__ == "__main__":
    main()
