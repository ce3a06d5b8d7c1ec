"""Two hosts (network namespaces) join a server with ``pyk8s agent``; pods reach pods on
the other node by pod IP over the agents' host-gw routes; an agent killed and restarted
rejoins without disturbing its running pods; ``kubectl top nodes`` shows both hosts
(metrics-server scraping each host's kubelet)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import Client, load_kubeconfig
from tests.controllers.conftest import eventually
from tests.integration.conftest import KUBECTL, Kubectl, Server, free_port
from tests.kubelet.runtime_fixtures import require_runtime
from tests.network.hosts import JOIN_CONTROLLERS, Hosts, sh, signing_flags

pytestmark = pytest.mark.e2e

NODES: Resource = REGISTRY.get("", "v1", "nodes")  # type: ignore[assignment]
PODS: Resource = REGISTRY.get("", "v1", "pods")  # type: ignore[assignment]


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Server, Hosts]]:
    require_runtime()
    if shutil.which("ip") is None or not Path(KUBECTL).exists():
        pytest.skip("needs iproute2 and kubectl")
    base = Path(tempfile.mkdtemp(prefix="pyk8s-mn-", dir="/tmp"))
    hosts = Hosts.create(base / "hosts", 2)
    server = Server(
        base / "server", free_port(),
        extra_args=("--bind-address", "0.0.0.0", "--advertise-address", hosts.gateway),
    )  # fmt: skip
    children: list[subprocess.Popen[bytes]] = []
    try:
        server.start()
        kubeconfig = str(server.kubeconfig)
        cm = ["controller-manager", "--kubeconfig", kubeconfig, "--leader-elect", "false",
              "--controllers", f"nodeipam,serviceaccount,nodelifecycle,{JOIN_CONTROLLERS}",
              "--port", str(free_port()), *signing_flags(server.data_dir)]  # fmt: skip
        # metrics-server reaches each host's kubelet at its address on the bridge
        ms = ["metrics-server", "--kubeconfig", kubeconfig, "--secure-port", "0",
              "--bind-address", hosts.gateway, "--advertise-address", hosts.gateway,
              "--health-port", str(free_port()), "--metric-resolution", "2s",
              "--kubelet-insecure-tls", "--kubelet-preferred-address-types", "InternalIP",
              "--cert-dir", str(base / "ms-certs")]  # fmt: skip
        for args in (cm, ms):
            with (base / f"{args[0]}.log").open("ab") as log:
                children.append(subprocess.Popen([sys.executable, "-m", "pyk8s", *args],
                                                 stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
        url = f"https://{hosts.gateway}:{server.port}"
        for host in hosts.hosts:
            host.start_agent(url, server.data_dir / "server" / "node-token")
        yield server, hosts
    finally:
        hosts.destroy()
        for child in children:
            child.send_signal(signal.SIGTERM)
            child.wait(timeout=30)
        server.stop()
        if os.environ.get("PYK8S_KEEP_HOSTS") is None:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def api(cluster: tuple[Server, Hosts]) -> AsyncIterator[Client]:
    async with Client(load_kubeconfig(cluster[0].kubeconfig)) as c:
        yield c


def _pod(name: str, node: str, script: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {"name": "c", "image": "pyk8s.local/busybox:1.35", "command": ["sh", "-c", script]}
            ],
        },
    }


async def _running(api: Client, name: str) -> dict[str, Any] | None:
    pod: dict[str, Any] = await api.get(PODS, name, "default")
    return pod if pod.get("status", {}).get("phase") == "Running" else None


async def test_agents_join_and_pods_talk_across_nodes(
    api: Client, cluster: tuple[Server, Hosts]
) -> None:
    server, hosts = cluster
    a, b = hosts.hosts

    async def ready_nodes() -> list[dict[str, Any]] | None:
        items = (await api.list(NODES))["items"]
        ready = [
            n for n in items
            if any(c["type"] == "Ready" and c["status"] == "True"
                   for c in n["status"].get("conditions") or [])
        ]  # fmt: skip
        return ready if len(ready) == 2 else None

    nodes = await eventually(ready_nodes, within=90, every=0.5)
    cidrs = {n["metadata"]["name"]: n["spec"]["podCIDR"] for n in nodes}
    assert set(cidrs) == {a.name, b.name} and cidrs[a.name] != cidrs[b.name]
    # each host routes the other host's pod CIDR via that host's address
    routes = sh("ip", "route", "show", "proto", "201", netns=a.name)
    assert f"{cidrs[b.name]} via {b.ip}" in routes

    await api.create(PODS, _pod(
        "web", a.name,
        "mkdir -p /www; echo from-$(hostname) > /www/index.html; "
        "exec httpd -f -v -p 8080 -h /www",
    ))  # fmt: skip
    kubectl = Kubectl(server.kubeconfig)
    try:
        web = await eventually(lambda: _running(api, "web"), within=60)
    except AssertionError:
        print(await asyncio.to_thread(kubectl.run, "describe", "pod", "web", check=False))
        raise
    web_ip = web["status"]["podIP"]
    await api.create(PODS, _pod(
        "client", b.name,
        f"while true; do timeout 3 wget -q -O - http://{web_ip}:8080/ && sleep 1000; "
        "sleep 0.5; done",
    ))  # fmt: skip
    await eventually(lambda: _running(api, "client"), within=60)

    async def fetched() -> str:
        out = await asyncio.to_thread(kubectl.run, "logs", "client", check=False)
        return out.stdout if "from-web" in out.stdout else ""

    assert "from-web" in await eventually(fetched, within=60)
    # no NAT between nodes: the server saw the client pod's own address
    client_ip = (await api.get(PODS, "client", "default"))["status"]["podIP"]
    served = await asyncio.to_thread(kubectl, "logs", "web")
    assert client_ip in served, served

    # kill -9 the agent of host b (its kubelet child dies with it? no: it is reparented)
    container_before = (await api.get(PODS, "client", "default"))["status"]["containerStatuses"][0]
    b.stop_agent(signal.SIGKILL)
    sh("pkill", "-9", "-f", f"pyk8s kubelet .*{b.data_dir}", check=False)
    b.start_agent(
        f"https://{hosts.gateway}:{server.port}", server.data_dir / "server" / "node-token"
    )
    await asyncio.sleep(5)
    pod = await eventually(lambda: _running(api, "client"), within=60)
    after = pod["status"]["containerStatuses"][0]
    assert after["containerID"] == container_before["containerID"]
    assert after["restartCount"] == 0


async def test_kubectl_top_nodes_shows_both_hosts(cluster: tuple[Server, Hosts]) -> None:
    server, hosts = cluster
    kubectl = Kubectl(server.kubeconfig)

    async def top() -> dict[str, list[str]]:
        out = await asyncio.to_thread(kubectl.run, "top", "nodes", "--no-headers", check=False)
        # a node without metrics yet shows <unknown> in every column
        rows = {
            r[0]: r
            for line in out.stdout.splitlines()
            if len(r := line.split()) == 5 and r[1] != "<unknown>"
        }
        return rows if set(rows) == {h.name for h in hosts.hosts} else {}

    rows = await eventually(top, within=120, every=1.0)
    for name, cpu, cpu_pct, memory, memory_pct in rows.values():
        # NAME CPU(cores) CPU(%) MEMORY(bytes) MEMORY(%), e.g. 153m 7% 1873Mi 23%
        assert cpu.endswith("m") and cpu_pct.endswith("%"), rows[name]
        assert memory.endswith("Mi") and int(memory[:-2]) > 0, rows[name]
        assert memory_pct.endswith("%"), rows[name]
