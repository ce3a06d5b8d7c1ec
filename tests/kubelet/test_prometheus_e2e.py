"""What Prometheus and log shippers read from a real node: ``/metrics/cadvisor`` and
``/metrics/probes`` through the API server's node proxy (as a Prometheus using
Kubernetes service discovery scrapes them), and the ``/var/log/containers`` symlinks."""

from __future__ import annotations

import asyncio
import os

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pyk8s.client import Client
from tests.controllers.conftest import eventually
from tests.integration.conftest import Kubectl, Server
from tests.kubelet.node_fixtures import Node
from tests.kubelet.test_kubelet_e2e import PODS, condition, container, get, run_pod, wait_phase

pytestmark = pytest.mark.e2e

Labels = dict[str, str]


@pytest.fixture
def kubectl(cm_server: Server) -> Kubectl:
    return Kubectl(cm_server.kubeconfig)


def samples(text: str, name: str) -> list[tuple[Labels, float]]:
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


async def scrape(kubectl: Kubectl, node: Node, path: str) -> str:
    raw = f"/api/v1/nodes/{node.name}/proxy{path}"
    return await asyncio.to_thread(kubectl, "get", "--raw", raw)


async def test_cadvisor_probes_and_container_log_links(
    client: Client, namespace: str, node: Node, kubectl: Kubectl
) -> None:
    script = (
        "echo hello-log; mkdir -p /www; echo ok > /www/index.html; exec httpd -f -p 8080 -h /www"
    )
    probe = {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}
    pod = await run_pod(
        client, namespace, node, "web", [container("c", script, readinessProbe=probe)]
    )
    uid = pod["metadata"]["uid"]
    await wait_phase(client, namespace, "web", "Running")

    async def ready() -> dict[str, object] | None:
        p = await get(client, namespace, "web")
        return p if condition(p, "Ready") == "True" else None

    running = await eventually(ready, within=30)
    container_id = running["status"]["containerStatuses"][0]["containerID"]  # type: ignore[index]
    cid = container_id.removeprefix("containerd://")
    mine = {"container": "c", "namespace": namespace, "pod": "web"}

    # /metrics/cadvisor: the container's series with cAdvisor's labels
    async def cadvisor() -> str | None:
        text = await scrape(kubectl, node, "/metrics/cadvisor")
        rx = [
            v
            for labels, v in samples(text, "container_network_receive_bytes_total")
            if labels["pod"] == "web" and labels["namespace"] == namespace
        ]
        return text if rx and rx[0] > 0 else None  # the probes' requests came in on eth0

    text = await eventually(cadvisor, within=30)
    (cpu,) = [
        labels
        for labels, _ in samples(text, "container_cpu_usage_seconds_total")
        if labels.items() >= mine.items()
    ]
    assert cpu["name"] == cid and "busybox" in cpu["image"] and cid in cpu["id"]
    for metric in ("container_memory_working_set_bytes", "container_memory_usage_bytes"):
        values = [v for labels, v in samples(text, metric) if labels.items() >= mine.items()]
        assert values and values[0] > 0, metric
    assert [v for labels, v in samples(text, "container_fs_usage_bytes") if labels["name"] == cid]
    rx = [
        labels
        for labels, _ in samples(text, "container_network_receive_bytes_total")
        if labels["pod"] == "web"
    ]
    assert rx[0]["interface"] == "eth0" and rx[0]["container"] == "POD"

    # /metrics/probes: every run of the readiness probe counted
    probes = await scrape(kubectl, node, "/metrics/probes")
    counted = [
        v
        for labels, v in samples(probes, "prober_probe_total")
        if labels
        == {
            "probe_type": "Readiness",
            "result": "successful",
            "container": "c",
            "pod": "web",
            "namespace": namespace,
            "pod_uid": uid,
        }
    ]
    assert counted and counted[0] >= 1

    # /var/log/containers/<pod>_<ns>_<container>-<id>.log -> the container's log file
    link = node.log_root.parent / "containers" / f"web_{namespace}_c-{cid}.log"
    assert link.is_symlink()
    target = node.log_root / f"{namespace}_web_{uid}" / "c" / "0.log"
    assert os.readlink(link) == str(target)
    assert "hello-log" in link.read_text()

    await client.delete(PODS, "web", namespace, grace_period_seconds=0)

    async def unlinked() -> bool:
        return not link.is_symlink()

    assert await eventually(unlinked, within=60)
