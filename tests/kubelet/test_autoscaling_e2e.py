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
from typing import Any

import pytest

from pyk8s.client import Client
from tests.addon_identity import addon_kubeconfig, can_i
from tests.controllers.conftest import eventually
from tests.e2e_sim.conftest import wait_until
from tests.integration.conftest import Kubectl, Server, free_port
from tests.kubelet.node_fixtures import Node
from tests.kubelet.test_kubelet_e2e import container

pytestmark = pytest.mark.e2e

APISERVICES = ("v1beta1.metrics.k8s.io", "v1beta2.custom.metrics.k8s.io",
               "v1beta1.custom.metrics.k8s.io")  # fmt: skip
BURN = "while [ ! -f /tmp/stop ]; do :; done; exec sleep 3600"


@pytest.fixture(scope="module")
def components(cm_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    """The controller manager, metrics-server and the metrics adapter, once per module."""
    kubeconfig = str(cm_server.kubeconfig)
    tmp_path = tmp_path_factory.mktemp("autoscaling")
    # the two metrics servers run as their own identities, as pyk8s server runs them
    ms, adapter = (
        str(addon_kubeconfig(cm_server, name, tmp_path / f"{name}.kubeconfig"))
        for name in ("metrics-server", "metrics-adapter")
    )
    commands = [
        ["controller-manager", "--kubeconfig", kubeconfig, "--leader-elect", "false",
         "--port", str(free_port()),
         "--controllers", "deployment,replicaset,horizontalpodautoscaler",
         "--horizontal-pod-autoscaler-sync-period", "2s"],
        ["metrics-server", "--kubeconfig", ms, "--secure-port", "0",
         "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
         "--health-port", str(free_port()), "--metric-resolution", "3s",
         "--kubelet-insecure-tls", "--kubelet-preferred-address-types", "InternalIP",
         "--cert-dir", str(tmp_path / "ms-certs")],
        ["metrics-adapter", "--kubeconfig", adapter, "--secure-port", "0",
         "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
         "--health-port", str(free_port()), "--scrape-interval", "2s",
         "--cert-dir", str(tmp_path / "adapter-certs")],
    ]  # fmt: skip
    procs = []
    for args in commands:
        with (tmp_path / f"{args[0]}.log").open("ab") as log:
            procs.append(subprocess.Popen([sys.executable, "-m", "pyk8s", *args],
                                          stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
    kubectl = Kubectl(cm_server.kubeconfig)
    try:
        for apiservice in APISERVICES:
            get = ("get", "apiservice", apiservice)
            wait_until(lambda get=get: kubectl.run(*get, check=False).returncode == 0)  # type: ignore[misc]
            kubectl("wait", "--for=condition=Available", f"apiservice/{apiservice}",
                    "--timeout=120s")  # fmt: skip
        yield kubectl
    finally:
        for apiservice in APISERVICES:
            kubectl.run("delete", "apiservice", apiservice, check=False)
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.fixture
def autoscaling(components: Kubectl, node: Node) -> Kubectl:
    return components


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
    # the loop is held by its 200m limit: far below the 1000m an unlimited loop takes (the
    # metrics-server's rate over a short window overshoots the limit by tens of percent)
    assert 100 <= cpu <= 500

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
    above = "reason: cpu resource utilization (percentage of request) above target"

    # the HPA's recorder writes the Event after the scale: wait for it
    async def rescale_event() -> bool:
        listed = await run(
            "get", "events", "-n", namespace, "-o", "json", "--field-selector", rescaled
        )
        return any(e["message"].endswith(above) for e in json.loads(listed)["items"])

    assert await eventually(rescale_event, within=30)

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


# six requests a second: the counter is six times the clock, written each second
COUNTER = (
    "printf '# TYPE http_requests_total counter\\n"
    'http_requests_total{code="200",service="web"} %s\\n\' $(( $(date +%s) * 6 ))'
    " > /www/m.tmp && mv /www/m.tmp /www/metrics"
)
SERVE_METRICS = f"mkdir -p /www && httpd -p 9100 -h /www && while true; do {COUNTER}; sleep 1; done"
CUSTOM = "/apis/custom.metrics.k8s.io"


def metrics_deployment(node: Node) -> dict[str, Any]:
    annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": "9100"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "reqs"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "reqs"}},
            "template": {
                "metadata": {"labels": {"app": "reqs"}, "annotations": annotations},
                "spec": {"nodeName": node.name, "terminationGracePeriodSeconds": 1,
                         "containers": [container("web", SERVE_METRICS)]},
            },
        },
    }  # fmt: skip


HPA = {
    "apiVersion": "autoscaling/v2",
    "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "reqs"},
    "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "reqs"},
        "minReplicas": 1,
        "maxReplicas": 3,
        "metrics": [{"type": "Pods", "pods": {
            "metric": {"name": "http_requests_per_second"},
            "target": {"type": "AverageValue", "averageValue": "2"}}}],
    },
}  # fmt: skip


async def test_hpa_scales_on_a_custom_metric_the_adapter_reads_from_a_pods_metrics(
    namespace: str, node: Node, autoscaling: Kubectl
) -> None:
    kubectl = autoscaling
    await asyncio.to_thread(
        kubectl, "apply", "-n", namespace, "-f", "-", input=json.dumps(metrics_deployment(node))
    )

    async def rates() -> list[Any]:
        out = await asyncio.to_thread(
            kubectl.run, "get", "--raw",
            f"{CUSTOM}/v1beta2/namespaces/{namespace}/pods/*/http_requests_per_second",
            check=False,
        )  # fmt: skip
        return list(json.loads(out.stdout)["items"]) if out.returncode == 0 else []

    [item] = await eventually(rates, within=90)
    assert item["describedObject"]["kind"] == "Pod"
    assert item["describedObject"]["name"].startswith("reqs-")
    assert item["metric"] == {"name": "http_requests_per_second"}
    # six a second, measured over whole-second steps of the counter
    assert 3.0 <= milli(item["value"]) / 1000 <= 9.0, item

    # the same through v1beta1, for the object its series name, and for the namespace
    old = json.loads(await asyncio.to_thread(
        kubectl, "get", "--raw",
        f"{CUSTOM}/v1beta1/namespaces/{namespace}/pods/{item['describedObject']['name']}"
        "/http_requests_per_second",
    ))  # fmt: skip
    assert old["items"][0]["metricName"] == "http_requests_per_second"
    service = json.loads(await asyncio.to_thread(
        kubectl, "get", "--raw",
        f"{CUSTOM}/v1beta2/namespaces/{namespace}/services/web/http_requests_per_second",
    ))  # fmt: skip
    assert service["items"][0]["describedObject"]["kind"] == "Service"
    missing = await asyncio.to_thread(
        kubectl.run, "get", "--raw", f"{CUSTOM}/v1beta2/namespaces/{namespace}/pods/*/nope",
        check=False,
    )  # fmt: skip
    assert "the server could not find the metric nope for pods" in missing.stderr

    await asyncio.to_thread(kubectl, "apply", "-n", namespace, "-f", "-", input=json.dumps(HPA))

    async def scaled() -> bool:
        got = await asyncio.to_thread(kubectl.json, "get", "deploy", "reqs", "-n", namespace)
        return bool(got["spec"]["replicas"] == 3)

    await eventually(scaled, within=90)

    # the HPA's recorder writes the Event after the scale: wait for it
    async def rescale_messages() -> list[str]:
        listed = await asyncio.to_thread(
            kubectl, "get", "events", "-n", namespace, "-o", "json",
            "--field-selector", "reason=SuccessfulRescale",
        )  # fmt: skip
        messages = [e["message"] for e in json.loads(listed)["items"]]
        above = "reason: pods metric http_requests_per_second above target"
        return messages if any(m.endswith(above) for m in messages) else []

    assert await eventually(rescale_messages, within=30)


def milli(quantity: str) -> float:
    return float(quantity[:-1]) if quantity.endswith("m") else float(quantity) * 1000


def test_the_metrics_servers_identities_are_limited(
    components: Kubectl, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Served above by their own accounts; those read what they serve and nothing more."""
    base = next(p for p in tmp_path_factory.getbasetemp().glob("autoscaling*"))
    ms, adapter = base / "metrics-server.kubeconfig", base / "metrics-adapter.kubeconfig"
    assert can_i(ms, "get", "nodes/metrics") and can_i(ms, "list", "pods", "-A")
    assert can_i(adapter, "list", "pods", "-A")
    for kubeconfig in (ms, adapter):
        assert not can_i(kubeconfig, "get", "secrets", "-n", "kube-system")
        assert not can_i(kubeconfig, "create", "apiservices.apiregistration.k8s.io")
        assert not can_i(kubeconfig, "delete", "pods", "-n", "default")
