"""The kubelet's /stats/summary and /metrics/resource from CRI container stats and /proc."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from pyk8s.kubelet import images
from pyk8s.kubelet.cri import CRIClient, api_pb2
from pyk8s.kubelet.runtimes import Containerd
from pyk8s.kubelet.stats import StatsProvider, resource_metrics

SUMMARY: dict[str, Any] = {
    "node": {
        "nodeName": "n1",
        "cpu": {"time": "2026-01-01T00:00:10Z", "usageCoreNanoSeconds": 5_500_000_000},
        "memory": {"time": "2026-01-01T00:00:10Z", "workingSetBytes": 12_345_678_901},
    },
    "pods": [
        {
            "podRef": {"name": "web", "namespace": "default", "uid": "u1"},
            "startTime": "2026-01-01T00:00:00Z",
            "cpu": {"time": "2026-01-01T00:00:10Z", "usageCoreNanoSeconds": 250_000_000},
            "memory": {"time": "2026-01-01T00:00:10Z", "workingSetBytes": 2048},
            "containers": [
                {
                    "name": "app",
                    "startTime": "2026-01-01T00:00:01Z",
                    "cpu": {"time": "2026-01-01T00:00:10Z", "usageCoreNanoSeconds": 250_000_000},
                    "memory": {"time": "2026-01-01T00:00:10Z", "workingSetBytes": 2048},
                }
            ],
        }
    ],
}


def _metric_lines(text: str) -> dict[str, str]:
    """sample name with labels -> value (timestamps dropped)."""
    return {
        line.rsplit(" ", 2)[0]: line.rsplit(" ", 2)[1]
        for line in text.splitlines()
        if line and not line.startswith("#") and line.count(" ") == 2
    }


def test_resource_metrics_text() -> None:
    text = resource_metrics(SUMMARY)
    samples = _metric_lines(text)
    labels = 'container="app",namespace="default",pod="web"'
    assert samples["node_cpu_usage_seconds_total"] == "5.5"
    assert samples["node_memory_working_set_bytes"] == "12345678901"
    assert samples[f"container_cpu_usage_seconds_total{{{labels}}}"] == "0.25"
    assert samples[f"container_memory_working_set_bytes{{{labels}}}"] == "2048"
    assert samples['pod_cpu_usage_seconds_total{namespace="default",pod="web"}'] == "0.25"
    assert samples['pod_memory_working_set_bytes{namespace="default",pod="web"}'] == "2048"
    assert "# TYPE container_cpu_usage_seconds_total counter" in text
    assert "# TYPE pod_memory_working_set_bytes gauge" in text
    assert "scrape_error 0" in text.splitlines()
    # samples carry the stats' time in milliseconds
    assert "node_cpu_usage_seconds_total 5.5 1767225610000" in text


def test_resource_metrics_escape_and_error() -> None:
    assert resource_metrics(None).splitlines()[-1] == "scrape_error 1"
    odd = {"pods": [{"podRef": {"name": 'a"b', "namespace": "n\\s", "uid": "u"}, "containers": []}]}
    odd["pods"][0]["memory"] = {"time": "2026-01-01T00:00:00Z", "workingSetBytes": 1}
    assert 'pod_memory_working_set_bytes{namespace="n\\\\s",pod="a\\"b"} 1' in resource_metrics(odd)


async def _run_pod(cri: CRIClient, log_dir: Path, name: str, scripts: dict[str, str]) -> str:
    uid = uuid.uuid4().hex
    sandbox = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, uid=uid, namespace="team-a"),
        log_directory=str(log_dir / name),
        labels={"io.kubernetes.pod.uid": uid},
    )
    sandbox_id = await cri.run_pod_sandbox(sandbox)
    for cname, script in scripts.items():
        config = api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name=cname),
            image=api_pb2.ImageSpec(image=images.BUSYBOX_REF),
            command=["sh", "-c", script],
            log_path=f"{cname}.log",
            labels={"io.kubernetes.pod.uid": uid, "io.kubernetes.container.name": cname},
        )
        await cri.start_container(await cri.create_container(sandbox_id, config, sandbox))
    return uid


@pytest.mark.e2e
async def test_summary_of_a_running_pod(
    cri: CRIClient, containerd_with_images: Containerd, tmp_path: Path
) -> None:
    async with asyncio.timeout(60):
        uid = await _run_pod(
            cri, tmp_path, "busy", {"spin": "while :; do :; done", "idle": "exec sleep 600"}
        )
        provider = StatsProvider(
            cri, "node-1", root_dir=tmp_path, image_fs=containerd_with_images.config.root
        )
        first = await provider.summary()
        await asyncio.sleep(1.0)
        summary = await provider.summary()

        node = summary["node"]
        assert node["nodeName"] == "node-1"
        assert node["cpu"]["usageCoreNanoSeconds"] > first["node"]["cpu"]["usageCoreNanoSeconds"]
        assert node["cpu"]["usageNanoCores"] > 0
        memory = node["memory"]
        assert 0 < memory["workingSetBytes"] <= memory["usageBytes"]
        assert memory["availableBytes"] > 0
        assert node["fs"]["capacityBytes"] >= node["fs"]["availableBytes"] > 0
        assert node["runtime"]["imageFs"]["capacityBytes"] > 0

        [pod] = summary["pods"]
        assert pod["podRef"] == {"name": "busy", "namespace": "team-a", "uid": uid}
        containers = {c["name"]: c for c in pod["containers"]}
        assert set(containers) == {"spin", "idle"}
        spin = containers["spin"]
        assert spin["startTime"].endswith("Z")
        assert spin["cpu"]["usageCoreNanoSeconds"] > 0
        # a busy loop uses a good share of a core between the two samples
        assert spin["cpu"]["usageNanoCores"] > 100_000_000
        assert spin["memory"]["workingSetBytes"] > 0
        both = sum(c["cpu"]["usageCoreNanoSeconds"] for c in containers.values())
        assert pod["cpu"]["usageCoreNanoSeconds"] == both
        assert pod["memory"]["workingSetBytes"] == sum(
            c["memory"]["workingSetBytes"] for c in containers.values()
        )

        samples = _metric_lines(resource_metrics(summary))
        key = 'container_cpu_usage_seconds_total{container="spin",namespace="team-a",pod="busy"}'
        assert float(samples[key]) > 0
        assert float(samples['pod_memory_working_set_bytes{namespace="team-a",pod="busy"}']) > 0
        assert float(samples["node_memory_working_set_bytes"]) > 0


@pytest.mark.e2e
async def test_summary_skips_stopped_pods(cri: CRIClient, tmp_path: Path) -> None:
    async with asyncio.timeout(60):
        await _run_pod(cri, tmp_path, "kept", {"app": "exec sleep 600"})
        await _run_pod(cri, tmp_path, "stopped", {"app": "exec sleep 600"})
        stopped = [s for s in await cri.list_pod_sandbox() if s.metadata.name == "stopped"]
        await cri.stop_pod_sandbox(stopped[0].id)
        summary = await StatsProvider(cri, "node-1", root_dir=tmp_path).summary()
        assert [p["podRef"]["name"] for p in summary["pods"]] == ["kept"]
