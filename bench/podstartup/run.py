"""Pod startup: the raw runtime cost that the kubelet's pod startup SLI is measured against.

Issue 5's benchmark compares "pod created → Running seen by a watch" with what the runtime
itself costs for the same image in the same run. The kubelet rows come with the kubelet;
this script measures the two baselines now, on a private containerd (root only):

* ``ctr run`` of our busybox image (containerd's own client, no CRI, no network), and
* sandbox + create + start through our CRI client (pod network on a bridge, as pods get).

    python3 bench/podstartup/run.py [--pods 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._table import Row, table, timed  # noqa: E402

from pyk8s.kubelet import images  # noqa: E402
from pyk8s.kubelet.cni import write_bridge_conflist  # noqa: E402
from pyk8s.kubelet.cri import CRIClient, api_pb2  # noqa: E402
from pyk8s.kubelet.runtimes import Containerd, ContainerdConfig  # noqa: E402

BRIDGE = "pkbench0"


async def ctr_run(runtime: Containerd, pods: int) -> Row:
    flags = [
        "--fifo-dir",
        str(runtime.config.fifo_dir),
        "--runc-root",
        str(runtime.config.runc_root),
    ]

    async def one(i: int) -> None:
        await runtime.ctr("run", *flags, "-d", images.BUSYBOX_REF, f"bench-{i}", "sleep", "3600")

    row = await timed("ctr run -d (no CRI, no network)", 1, pods, one)
    for i in range(pods):
        await runtime.ctr("task", "kill", "-s", "SIGKILL", f"bench-{i}")
    await asyncio.sleep(0.5)
    for i in range(pods):
        await runtime.ctr("task", "rm", "-f", f"bench-{i}")
        await runtime.ctr("containers", "rm", f"bench-{i}")
    return row


async def cri_start(cri: CRIClient, pods: int, log_dir: Path, clients: int) -> Row:
    async def one(i: int) -> None:
        name = f"bench-{clients}-{i}"
        sandbox = api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="b"),
            hostname=name,
            log_directory=str(log_dir / name),
        )
        sandbox_id = await cri.run_pod_sandbox(sandbox)
        container = api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name="main"),
            image=api_pb2.ImageSpec(image=images.BUSYBOX_REF),
            command=["sleep", "3600"],
            log_path="main/0.log",
        )
        cid = await cri.create_container(sandbox_id, container, sandbox)
        await cri.start_container(cid)

    row = await timed(f"CRI sandbox+create+start ({clients} at once)", clients, pods, one)
    for sandbox in await cri.list_pod_sandbox():
        await cri.stop_pod_sandbox(sandbox.id)
        await cri.remove_pod_sandbox(sandbox.id)
    return row


def _clean_up(data_dir: Path) -> None:
    """Remove the bridge, leftover mounts and the data dir."""
    subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True, check=False)
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(f"{data_dir}/")), reverse=True):
        subprocess.run(["umount", "-l", mount], check=False)
    shutil.rmtree(data_dir, ignore_errors=True)


async def main(pods: int) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="pyk8s-bench-", dir="/tmp"))
    config = ContainerdConfig(data_dir)
    write_bridge_conflist(config.cni_conf, "10.88.250.0/24", bridge=BRIDGE)
    runtime = Containerd(config)
    rows: list[Row] = []
    try:
        await runtime.start()
        await runtime.ensure_local_images()
        rows.append(await ctr_run(runtime, pods))
        async with CRIClient(str(runtime.socket)) as cri:
            for clients in (1, 5):
                rows.append(await cri_start(cri, pods, data_dir / "logs", clients))
    finally:
        await runtime.stop()
        await asyncio.to_thread(_clean_up, data_dir)
    print(f"\n### pod startup baselines: {pods} pods, busybox image present\n")
    print(table(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=30)
    if os.geteuid() != 0:
        sys.exit("bench/podstartup needs root (it runs its own containerd)")
    asyncio.run(main(parser.parse_args().pods))
