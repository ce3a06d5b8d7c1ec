"""Real containers: metrics-server reads a kubelet's CPU figures, ``kubectl top pods``
shows them, and the HorizontalPodAutoscaler scales a busy Deployment up and back down.

One node (``pyk8s kubelet`` with its own containerd), the API server, a
``pyk8s controller-manager`` running the deployment, replicaset and HPA controllers
(syncing every 2 s) and ``pyk8s metrics-server`` (every 3 s) registered behind the
aggregator, all as processes. The pods busy-loop under a CPU limit of 200m with a request
of 100m (200 % of it, against a target of 50 %) until a file appears in them.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyk8s.client import Client
from tests.controllers.conftest import eventually
from tests.e2e_sim.conftest import wait_until
from tests.integration.conftest import Kubectl, Server, free_port
from tests.kubelet.node_fixtures import Node
from tests.kubelet.test_kubelet_e2e import container

pytestmark = pytest.mark.e2e

APISERVICE = "v1beta1.metrics.k8s.io"
BURN = "while [ ! -f /tmp/stop ]; do :; done; exec sleep 3600"


@pytest.fixture
def autoscaling(cm_server: Server, node: Node, tmp_path: Path) -> Iterator[Kubectl]:
    kubeconfig = str(cm_server.kubeconfig)
    commands = [
        ["controller-manager", "--kubeconfig", kubeconfig, "--leader-elect", "false",
         "--port", str(free_port()),
         "--controllers", "deployment,replicaset,horizontalpodautoscaler",
         "--horizontal-pod-autoscaler-sync-period", "2s"],
        ["metrics-server", "--kubeconfig", kubeconfig, "--secure-port", "0",
         "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
         "--health-port", str(free_port()), "--metric-resolution", "3s",
         "--kubelet-insecure-tls", "--kubelet-preferred-address-types", "InternalIP",
         "--cert-dir", str(tmp_path / "ms-certs")],
    ]  # fmt: skip
    procs = []
    for args in commands:
        with (tmp_path / f"{args[0]}.log").open("ab") as log:
            procs.append(subprocess.Popen([sys.executable, "-m", "pyk8s", *args],
                                          stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
    kubectl = Kubectl(cm_server.kubeconfig)
    try:
        wait_until(
            lambda: kubectl.run("get", "apiservice", APISERVICE, check=False).returncode == 0
        )
        kubectl("wait", "--for=condition=Available", f"apiservice/{APISERVICE}", "--timeout=60s")

        yield kubectl
    finally:
        kubectl.run("delete", "apiservice", APISERVICE, check=False)
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)


def deployment(node: Node) -> dict[str, Any]:
    burn = container(
        "burn",
        BURN,
        resources={"requests": {"cpu": "100m"}, "limits": {"cpu": "200m"}},
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "burn"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "burn"}},
            "template": {
                "metadata": {"labels": {"app": "burn"}},
                "spec": {"nodeName": node.name, "containers": [burn],
                         "terminationGracePeriodSeconds": 1},
            },
        },
    }  # fmt: skip


async def test_hpa_scales_a_busy_deployment_and_kubectl_top_shows_its_cpu(
    client: Client, namespace: str, node: Node, autoscaling: Kubectl
) -> None:
    kubectl = autoscaling

    def run(*args: str, input: str | None = None) -> Any:
        return asyncio.to_thread(kubectl, *args, input=input)

    await run("apply", "-n", namespace, "-f", "-", input=json.dumps(deployment(node)))

    async def top_cpu() -> int:
        out = await asyncio.to_thread(
            kubectl.run, "top", "pods", "-n", namespace, "--containers", "--no-headers",
            check=False,
        )  # fmt: skip
        rows = [line.split() for line in out.stdout.splitlines() if line.strip()]
        millis = [int(r[2].rstrip("m")) for r in rows if r[2].endswith("m")]
        return max(millis, default=0) if max(millis, default=0) >= 100 else 0

    cpu = await eventually(top_cpu, within=120)
    assert 100 <= cpu <= 260  # the loop under its 200m limit

    await run("autoscale", "deployment", "burn", "-n", namespace, "--cpu-percent=50",
              "--min=1", "--max=3")  # fmt: skip
    short_window = {"spec": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 5}}}}
    await run("patch", "hpa", "burn", "-n", namespace, "--type=merge", "-p",
              json.dumps(short_window))  # fmt: skip

    async def replicas(want: int) -> bool:
        got = await asyncio.to_thread(kubectl.json, "get", "deploy", "burn", "-n", namespace)
        return bool(got["spec"]["replicas"] == want)

    await eventually(lambda: replicas(3), within=120)
    rescaled = "reason=SuccessfulRescale"
    listed = await run("get", "events", "-n", namespace, "-o", "json", "--field-selector", rescaled)
    events = json.loads(listed)["items"]
    assert any(
        e["message"].endswith(
            "reason: cpu resource utilization (percentage of request) above target"
        )
        for e in events
    )

    # the load stops: every pod finds its file, and the HPA scales back to one
    async def running() -> list[str]:
        got = await asyncio.to_thread(
            kubectl.json, "get", "pods", "-n", namespace, "-l", "app=burn"
        )
        names = [
            p["metadata"]["name"] for p in got["items"] if p["status"].get("phase") == "Running"
        ]
        return names if len(names) == 3 else []

    for name in await eventually(running, within=120):
        await run("exec", "-n", namespace, name, "--", "touch", "/tmp/stop")
    await eventually(lambda: replicas(1), within=180)
