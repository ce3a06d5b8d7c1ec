"""One pod on a real containerd, served by our kubelet, known to the API server: the
ground every streaming test (kubectl, the Python client, raw WebSocket clients) stands on.

A private containerd runs one pod made by hand through CRI with the kubelet's labels
(busybox containers: ``main`` prints lines, ``web`` serves httpd on 8080, ``echo``
echoes whatever reaches port 9000); our :class:`KubeletServer` serves it on a free
loopback port, requiring client certs from the cluster CA. The shared test API server has
a Node pointing at that port and the Pod object, as the kubelet would report them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pyk8s.api.registry import REGISTRY
from pyk8s.client import Client
from pyk8s.kubelet import images, podconfig
from pyk8s.kubelet.cri import CRIClient, CRIError
from pyk8s.kubelet.runtimes import Containerd
from pyk8s.kubelet.server import KubeletServer, kubelet_ssl_context
from tests.integration.conftest import KUBECTL, Server

__all__ = [
    "ECHO_PORT",
    "WEB_PORT",
    "Env",
    "env",
    "node_object",
    "pod_container",
    "require_kubectl",
]

PODS = REGISTRY.get("", "v1", "pods")
NODES = REGISTRY.get("", "v1", "nodes")
MAIN_SCRIPT = (
    "echo line 1; echo line 2; echo line 3; echo oops >&2; sleep 1; echo later; "
    "while true; do sleep 1; echo tick; done"
)
WEB_PORT, ECHO_PORT = 8080, 9000
WEB_SCRIPT = (
    f"mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p {WEB_PORT} -h /www"
)
#: busybox nc: -ll keeps listening after each connection, -e runs cat on it
ECHO_SCRIPT = f"exec nc -ll -p {ECHO_PORT} -e cat"


@dataclass
class Env:
    kubeconfig: Path
    namespace: str
    pod: str
    node: str
    kubelet: KubeletServer
    cri: CRIClient
    tmp: Path
    obj: dict[str, Any]

    async def kubectl(
        self, *args: str, input: bytes | None = None, limit: float = 30
    ) -> tuple[int, str, str]:
        """Run kubectl in the test's namespace; returns (exit code, stdout, stderr)."""
        proc = await asyncio.create_subprocess_exec(
            KUBECTL,
            "--kubeconfig",
            str(self.kubeconfig),
            "-n",
            self.namespace,
            *args,
            stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(input), limit)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def spawn(self, *args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            KUBECTL,
            "--kubeconfig",
            str(self.kubeconfig),
            "-n",
            self.namespace,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )


def require_kubectl() -> None:
    if not os.path.exists(KUBECTL):
        pytest.skip(f"kubectl is not installed at {KUBECTL}")


async def node_object(client: Client, name: str, port: int) -> None:
    assert NODES is not None
    node = await client.create(
        NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}
    )
    node["status"] = {
        "addresses": [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
    }
    await client.update_status(NODES, node)


def pod_container(name: str, script: str) -> dict[str, Any]:
    return {"name": name, "image": images.BUSYBOX_REF, "command": ["sh", "-c", script]}


async def _run_pod(cri: CRIClient, pod: dict[str, Any], log_root: Path) -> None:
    """What the kubelet would do for ``pod``: a sandbox and its containers, labelled."""
    sandbox = podconfig.sandbox_config(pod, log_root=log_root)
    sandbox_id = await cri.run_pod_sandbox(sandbox)
    for c in pod["spec"]["containers"]:
        config = podconfig.container_config(pod, c, restart_count=0, env=[], mounts=[])
        await cri.start_container(await cri.create_container(sandbox_id, config, sandbox))


@pytest.fixture
async def env(
    containerd_with_images: Containerd,
    cm_server: Server,
    client: Client,
    namespace: str,
    tmp_path: Path,
) -> AsyncIterator[Env]:
    require_kubectl()
    assert PODS is not None and NODES is not None
    node_name = f"stream-{uuid.uuid4().hex[:8]}"
    async with CRIClient(str(containerd_with_images.socket), timeout=20) as cri:
        await cri.wait_ready(10)
        tls = cm_server.data_dir / "server" / "tls"
        ctx = kubelet_ssl_context(tmp_path / "pki", tls / "ca.crt")
        kubelet = KubeletServer(cri, host="127.0.0.1", port=0, ssl_context=ctx)
        await kubelet.start()
        try:
            await node_object(client, node_name, kubelet.port)
            pod = await client.create(
                PODS,
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "streamer", "namespace": namespace},
                    "spec": {
                        "nodeName": node_name,
                        "containers": [
                            pod_container("main", MAIN_SCRIPT),
                            pod_container("web", WEB_SCRIPT),
                            pod_container("echo", ECHO_SCRIPT),
                        ],
                    },
                },
            )
            async with asyncio.timeout(30):
                await _run_pod(cri, pod, tmp_path / "logs")
            pod["status"] = {"phase": "Running"}  # what the kubelet would report
            await client.update_status(PODS, pod)
            yield Env(
                cm_server.kubeconfig, namespace, "streamer", node_name, kubelet, cri, tmp_path, pod
            )
        finally:
            await kubelet.stop()
            with contextlib.suppress(Exception):
                await client.delete(NODES, node_name)
            async with asyncio.timeout(30):
                for sandbox in await cri.list_pod_sandbox():
                    with contextlib.suppress(CRIError):
                        await cri.stop_pod_sandbox(sandbox.id)
                        await cri.remove_pod_sandbox(sandbox.id)
