"""kubectl against a real node: logs, exec, cp and port-forward reach pods that
``pyk8s kubelet`` runs, through the API server's proxy and the kubelet's HTTPS server."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pyk8s.client import Client
from tests.controllers.conftest import eventually
from tests.integration.conftest import KUBECTL, Kubectl, Server, free_port
from tests.kubelet.node_fixtures import Node
from tests.kubelet.test_kubelet_e2e import container, get, run_pod, wait_phase

pytestmark = pytest.mark.e2e


@pytest.fixture
def kubectl(cm_server: Server) -> Kubectl:
    return Kubectl(cm_server.kubeconfig)


async def test_node_reports_its_kubelet_endpoint(client: Client, node: Node) -> None:
    from pyk8s.api.registry import REGISTRY

    obj = await client.get(REGISTRY.get("", "v1", "nodes"), node.name)  # type: ignore[arg-type]
    assert obj["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == node.port
    conds = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
    assert conds["Ready"] == "True"


async def test_kubectl_logs_exec_and_cp(
    client: Client, namespace: str, node: Node, kubectl: Kubectl, tmp_path: Path
) -> None:
    script = "for i in 1 2 3; do echo line-$i; done; echo oops >&2; exec sleep 3600"
    await run_pod(client, namespace, node, "box", [container("c", script)])
    await wait_phase(client, namespace, "box", "Running")

    async def logged() -> str:
        out = await asyncio.to_thread(kubectl.run, "logs", "-n", namespace, "box", check=False)
        return out.stdout if "oops" in out.stdout else ""

    text = await eventually(logged)
    # stdout and stderr come through separate pipes: only each stream's own order is fixed
    assert [x for x in text.splitlines() if x.startswith("line-")] == ["line-1", "line-2", "line-3"]
    tail = await asyncio.to_thread(kubectl, "logs", "-n", namespace, "box", "--tail", "1")
    assert len(tail.splitlines()) == 1
    done = await asyncio.to_thread(
        kubectl.run, "exec", "-n", namespace, "box", "--", "sh", "-c", "echo in-$HOSTNAME; exit 3",
        check=False,
    )  # fmt: skip
    assert done.returncode == 3 and done.stdout.strip() == "in-box"
    src = tmp_path / "up.txt"
    src.write_text("copied through the kubelet\n")
    await asyncio.to_thread(kubectl, "cp", str(src), f"{namespace}/box:/tmp/up.txt")
    back = tmp_path / "down.txt"
    await asyncio.to_thread(kubectl, "cp", f"{namespace}/box:/tmp/up.txt", str(back))
    assert back.read_text() == src.read_text()


async def test_kubectl_logs_previous_of_a_crashed_container(
    client: Client, namespace: str, node: Node, kubectl: Kubectl
) -> None:
    await run_pod(
        client, namespace, node, "flaky", [container("c", "echo run-$(date +%s%N); exit 1")]
    )

    async def restarted() -> bool:
        pod = await get(client, namespace, "flaky")
        cs = (pod.get("status", {}).get("containerStatuses") or [{}])[0]
        return int(cs.get("restartCount", 0)) >= 1

    await eventually(restarted, within=30)
    previous = await asyncio.to_thread(kubectl, "logs", "-n", namespace, "flaky", "--previous")
    assert previous.startswith("run-")


async def test_kubectl_port_forward_to_httpd(
    client: Client, namespace: str, node: Node, cm_server: Server
) -> None:
    web = container(
        "web", "mkdir -p /www; echo hello-pf > /www/index.html; exec httpd -f -p 8080 -h /www"
    )
    await run_pod(client, namespace, node, "web", [web])
    await wait_phase(client, namespace, "web", "Running")
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, "--kubeconfig", str(cm_server.kubeconfig), "port-forward", "-n", namespace,
        "pod/web", f"{port}:8080",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:

        async def fetched() -> str:
            def get_page() -> str:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    return str(r.read().decode())

            try:
                return await asyncio.to_thread(get_page)
            except OSError:
                return ""

        assert (await eventually(fetched, within=20)).strip() == "hello-pf"
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


async def test_stats_summary_through_the_node_proxy(
    client: Client, namespace: str, node: Node, kubectl: Kubectl
) -> None:
    import json

    c = container("c", "exec sleep 3600", volumeMounts=[{"name": "scratch", "mountPath": "/s"}])
    await run_pod(
        client, namespace, node, "busy", [c], volumes=[{"name": "scratch", "emptyDir": {}}]
    )
    await wait_phase(client, namespace, "busy", "Running")
    path = f"/api/v1/nodes/{node.name}/proxy/stats/summary"

    async def summary() -> dict[str, Any] | None:
        out = await asyncio.to_thread(kubectl.run, "get", "--raw", path, check=False)
        if out.returncode != 0:
            return None
        doc: dict[str, Any] = json.loads(out.stdout)
        pods = [p for p in doc.get("pods", []) if p["podRef"]["namespace"] == namespace]
        # the pod is there with its volume once the kubelet measured it (at first sight)
        return doc if any(p["podRef"]["name"] == "busy" and p.get("volume") for p in pods) else None

    doc = await eventually(summary, within=30)
    assert doc["node"]["nodeName"] == node.name
    assert doc["node"]["memory"]["workingSetBytes"] > 0
    (busy,) = [
        p
        for p in doc["pods"]
        if (p["podRef"]["namespace"], p["podRef"]["name"]) == (namespace, "busy")
    ]
    volumes = {v["name"]: v for v in busy["volume"]}
    scratch = volumes["scratch"]
    assert "pvcRef" not in scratch
    assert scratch["capacityBytes"] >= scratch["availableBytes"] > 0
    assert scratch["inodesUsed"] >= 1  # the directory itself
    metrics = await asyncio.to_thread(
        kubectl, "get", "--raw", f"/api/v1/nodes/{node.name}/proxy/metrics/resource"
    )
    assert (
        f'container_memory_working_set_bytes{{container="c",namespace="{namespace}",pod="busy"}}'
        in metrics
    )
    missing = await asyncio.to_thread(
        kubectl.run, "get", "--raw", "/api/v1/nodes/no-such-node/proxy/healthz", check=False
    )
    assert missing.returncode != 0 and "not found" in missing.stderr
