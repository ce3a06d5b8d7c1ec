"""``pyk8s sim-nodes`` as a user runs it: nodes appear Ready (visible to kubectl),
/healthz and /metrics answer, SIGUSR1 stops a node's lease renewal."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import sys
import uuid
from typing import Any

import aiohttp

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import Client
from pyk8s.client.errors import ClientError
from tests.controllers.conftest import eventually
from tests.integration.conftest import KUBECTL, Server, free_port

NODES: Resource = REGISTRY.get("", "v1", "nodes")  # type: ignore[assignment]
LEASES: Resource = REGISTRY.get("coordination.k8s.io", "v1", "leases")  # type: ignore[assignment]


def _micro_time(value: str) -> float:
    """A Lease's ``renewTime`` (RFC 3339 with microseconds) as a POSIX timestamp."""
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def metrics(port: int) -> str:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{port}/metrics") as r,
    ):
        return await r.text()


async def test_sim_nodes_command(cm_server: Server, client: Client) -> None:
    prefix = f"cli-{uuid.uuid4().hex[:6]}-"
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pyk8s",
        "sim-nodes",
        "--kubeconfig",
        str(cm_server.kubeconfig),
        "--count",
        "3",
        "--name-prefix",
        prefix,
        "--cpu",
        "16",
        "--extended",
        "nvidia.com/gpu=4",
        "--labels",
        "pool=sim,zone=b",
        "--taints",
        "gpu=true:NoSchedule",
        "--port",
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    names = [f"{prefix}{i}" for i in range(3)]
    try:

        async def healthy() -> bool:
            async with aiohttp.ClientSession() as s:
                try:
                    async with s.get(f"http://127.0.0.1:{port}/healthz") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

        await eventually(healthy, within=30)
        kubectl = await asyncio.create_subprocess_exec(
            KUBECTL,
            "--kubeconfig",
            str(cm_server.kubeconfig),
            "get",
            "nodes",
            "-l",
            "pool=sim",
            stdout=asyncio.subprocess.PIPE,
        )
        stdout, _ = await asyncio.wait_for(kubectl.communicate(), 30)
        assert kubectl.returncode == 0
        out = stdout.decode()
        for name in names:
            assert name in out
        node: dict[str, Any] = await client.get(NODES, names[0])
        assert node["status"]["capacity"]["cpu"] == "16"
        assert node["status"]["capacity"]["nvidia.com/gpu"] == "4"
        assert node["metadata"]["labels"]["zone"] == "b"
        assert node["spec"]["taints"] == [{"key": "gpu", "value": "true", "effect": "NoSchedule"}]
        assert "pyk8s_sim_nodes_running 3.0" in await metrics(port)

        os.kill(proc.pid, signal.SIGUSR1)  # stops the highest-numbered node

        async def one_stopped() -> bool:
            return "pyk8s_sim_nodes_running 2.0" in await metrics(port)

        assert await eventually(one_stopped, within=10)
        # the stopped node's lease no longer moves. Proof that it would have: the same
        # process renews every node's lease on the same interval (a quarter of the lease's
        # duration, as the kubelet); once each running node's lease carries a renewTime a
        # full interval past the stopped node's next renewal was due, a running node 2
        # would have renewed in between.
        lease = await client.get(LEASES, names[2], "kube-node-lease")
        interval = lease["spec"]["leaseDurationSeconds"] / 4
        due = _micro_time(lease["spec"]["renewTime"]) + interval

        async def others_renewed_past_due() -> bool:
            for name in names[:2]:
                other = await client.get(LEASES, name, "kube-node-lease")
                if _micro_time(other["spec"]["renewTime"]) <= due + interval:
                    return False
            return True

        await eventually(others_renewed_past_due, within=60, every=0.5)
        again = await client.get(LEASES, names[2], "kube-node-lease")
        assert again["spec"]["renewTime"] == lease["spec"]["renewTime"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        for name in names:
            with contextlib.suppress(ClientError):
                await client.delete(NODES, name)
    assert proc.returncode == 0
