"""Pod startup: upstream's pod startup SLI next to the raw runtime cost, in one run.

The SLI (clusterloader2's pod startup latency, image present): from the API request
creating a pod to a watch seeing it Running, through the whole stack — ``pyk8s server``
(API server, scheduler, controller-manager) and ``pyk8s kubelet`` on its own containerd.
The baselines, on a private containerd, in the same run (root only):

* ``ctr run`` of our busybox image (containerd's own client, no CRI, no network), and
* sandbox + create + start through our CRI client (pod network on a bridge, as pods get).

    python3 bench/podstartup/run.py [--pods 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._table import Row, table, timed  # noqa: E402

from pyk8s.api.registry import REGISTRY  # noqa: E402
from pyk8s.client import Client, load_kubeconfig  # noqa: E402
from pyk8s.kubelet import images  # noqa: E402
from pyk8s.kubelet.cni import write_bridge_conflist  # noqa: E402
from pyk8s.kubelet.cri import CRIClient, api_pb2  # noqa: E402
from pyk8s.kubelet.runtimes import Containerd, ContainerdConfig  # noqa: E402

BRIDGE = "pkbench0"
SLI_BRIDGE = "pkbench1"
NODE = "bench-node"
PODS_RES = REGISTRY.get("", "v1", "pods")


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pyk8s", *args], stdout=out, stderr=subprocess.STDOUT
        )


async def _wait_file(path: Path, proc: subprocess.Popen[bytes], within: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await asyncio.to_thread(path.exists):
        if proc.poll() is not None or loop.time() > deadline:
            raise RuntimeError(f"{proc.args} did not come up")
        await asyncio.sleep(0.2)


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "main",
                    "image": images.BUSYBOX_REF,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "3600"],
                }
            ],
        },
    }


async def pod_startup_sli(client: Client, pods: int, clients: int) -> Row:
    """create → Running seen by a watch, per pod; ``clients`` pods in flight at once."""
    running: dict[str, asyncio.Future[None]] = {}
    ready = asyncio.Event()

    async def watch() -> None:
        async with client.watch(PODS_RES, "default") as events:
            ready.set()
            async for _etype, obj in events:
                fut = running.get(obj["metadata"]["name"])
                if fut is not None and not fut.done() and obj["status"].get("phase") == "Running":
                    fut.set_result(None)

    watcher = asyncio.create_task(watch())
    await ready.wait()

    async def one(i: int) -> None:
        name = f"sli-{clients}-{i}"
        running[name] = asyncio.get_running_loop().create_future()
        await client.create(PODS_RES, _pod(name))
        await asyncio.wait_for(running[name], 60)

    try:
        row = await timed(
            f"pod startup SLI: create → Running ({clients} at once)", clients, pods, one
        )
    finally:
        watcher.cancel()
    for name in running:
        await client.delete(PODS_RES, name, "default", grace_period_seconds=0)
    return row


async def sli_rows(base: Path, pods: int) -> list[Row]:
    """Run ``pyk8s server`` + ``pyk8s kubelet`` and measure the SLI at 1 and 5 in flight."""
    port = _free_port()
    data = base / "server"
    await asyncio.to_thread(base.mkdir, parents=True)
    server = _spawn(
        base / "server.log", "server", "--disable-agent", "--data-dir", str(data),
        "--bind-address", "127.0.0.1", "--https-listen-port", str(port),
    )  # fmt: skip
    kubelet: subprocess.Popen[bytes] | None = None
    try:
        await _wait_file(data / "kubeconfig.yaml", server)
        kubelet = _spawn(
            base / "kubelet.log", "kubelet", "--kubeconfig", str(data / "kubeconfig.yaml"),
            "--data-dir", str(base / "agent"), "--node-name", NODE, "--node-ip", "127.0.0.1",
            "--pod-cidr", "10.88.251.0/24", "--cni-bridge", SLI_BRIDGE,
            "--log-root", str(base / "pods"), "--healthz-port", str(_free_port()),
            "--address", "127.0.0.1", "--port", str(_free_port()),
        )  # fmt: skip
        async with Client(load_kubeconfig(data / "kubeconfig.yaml")) as client:
            for _ in range(600):
                try:
                    node = await client.get(REGISTRY.get("", "v1", "nodes"), NODE)
                    conds = {c["type"]: c["status"] for c in node["status"]["conditions"]}
                    if conds.get("Ready") == "True" and not node["spec"].get("taints"):
                        break
                except Exception:  # not registered yet
                    pass
                await asyncio.sleep(0.1)
            await pod_startup_sli(client, 3, 1)  # warm up: first sandbox, CNI bridge
            return [await pod_startup_sli(client, pods, c) for c in (1, 5)]
    finally:
        for proc in (kubelet, server):
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.to_thread(proc.wait, 60)
        await asyncio.to_thread(_reap, base)


def _reap(base: Path) -> None:
    """Kill the shims the kubelet's containerd left and remove its bridge."""
    subprocess.run(["pkill", "-9", "-f", f"containerd-shim.*{base}"], check=False)
    subprocess.run(["ip", "link", "delete", SLI_BRIDGE], capture_output=True, check=False)


def _clean_up(data_dir: Path) -> None:
    """Remove the bridges, leftover mounts and the data dir."""
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
        rows += await sli_rows(data_dir / "sli", pods)
        await runtime.start()
        await runtime.ensure_local_images()
        rows.append(await ctr_run(runtime, pods))
        async with CRIClient(str(runtime.socket)) as cri:
            for clients in (1, 5):
                rows.append(await cri_start(cri, pods, data_dir / "logs", clients))
    finally:
        await runtime.stop()
        await asyncio.to_thread(_clean_up, data_dir)
    print(f"\n### pod startup: {pods} pods, busybox image present\n")
    print(table(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=30)
    if os.geteuid() != 0:
        sys.exit("bench/podstartup needs root (it runs its own containerd)")
    asyncio.run(main(parser.parse_args().pods))
