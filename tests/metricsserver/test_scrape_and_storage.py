"""metrics-server's parsing, two-sample storage and the simulated usage it reads."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pyk8s.kubelet.simusage import SimulatedPod, UsageSimulator
from pyk8s.kubelet.stats import resource_metrics
from pyk8s.metricsserver.scraper import kubelet_url, parse_resource_metrics
from pyk8s.metricsserver.storage import Storage, go_duration

T0 = 1_800_000_000


def pod(name: str, cpu: str | None = None, memory: str | None = None) -> SimulatedPod:
    annotations = {}
    if cpu:
        annotations["kwok.x-k8s.io/usage-cpu"] = cpu
    if memory:
        annotations["kwok.x-k8s.io/usage-memory"] = memory
    obj = {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}",
                        "annotations": annotations}}  # fmt: skip
    return SimulatedPod(obj, {"app": dt.datetime.fromtimestamp(T0 - 100, dt.UTC)})


def scrape(sim: UsageSimulator, storage: Storage, when: float, *pods: SimulatedPod) -> None:
    text = resource_metrics(sim.summary("node-a", pods, when))
    storage.store([parse_resource_metrics("node-a", text, when)])


def test_simulated_usage_becomes_exact_rates_after_two_rounds() -> None:
    sim, storage = UsageSimulator(), Storage()
    busy, idle = pod("busy", "250m", "64Mi"), pod("idle")
    scrape(sim, storage, T0, busy, idle)
    assert storage.node_usage("node-a") is None  # one sample: no rate yet
    assert storage.pod_usage("ns", "busy") is None
    scrape(sim, storage, T0 + 15.4, busy, idle)
    usage = storage.pod_usage("ns", "busy")
    assert usage is not None
    assert usage["app"].as_resources() == {"cpu": "250m", "memory": "64Mi"}
    assert usage["app"].window == 15
    idle_usage = storage.pod_usage("ns", "idle")
    assert idle_usage is not None
    assert idle_usage["app"].as_resources() == {"cpu": "1m", "memory": "1Mi"}  # kwok's defaults
    node = storage.node_usage("node-a")
    assert node is not None and node.as_resources()["cpu"] == "251m"


def test_a_changed_load_changes_the_rate_from_then_on() -> None:
    sim, storage = UsageSimulator(), Storage()
    scrape(sim, storage, T0, pod("p", "100m"))
    scrape(sim, storage, T0 + 10, pod("p", "100m"))
    scrape(sim, storage, T0 + 20, pod("p", "900m"))
    usage = storage.pod_usage("ns", "p")
    assert usage is not None and usage["app"].nanocores == 900_000_000


def test_a_new_container_started_since_the_last_round_has_a_rate_at_once() -> None:
    storage = Storage()
    first = "node_cpu_usage_seconds_total 1 1000\nnode_memory_working_set_bytes 5 1000\n"
    storage.store([parse_resource_metrics("n", first, 0)])
    text = (
        'container_cpu_usage_seconds_total{container="c",namespace="ns",pod="new"} 2 11000\n'
        'container_memory_working_set_bytes{container="c",namespace="ns",pod="new"} 4096 11000\n'
        'container_start_time_seconds{container="c",namespace="ns",pod="new"} 7\n'
        "node_cpu_usage_seconds_total 3 11000\nnode_memory_working_set_bytes 5 11000\n"
    )
    storage.store([parse_resource_metrics("n", text, 0)])
    usage = storage.pod_usage("ns", "new")
    assert usage is not None
    assert usage["c"].as_resources() == {"cpu": "500m", "memory": "4Ki"}  # 2 s of CPU in 4 s
    assert go_duration(usage["c"].window) == "4s"


def test_a_counter_reset_starts_over_and_a_gone_pod_has_no_metrics() -> None:
    storage = Storage()

    def line(cpu: float, ms: int) -> str:
        labels = '{container="c",namespace="ns",pod="p"}'
        return (
            f"container_cpu_usage_seconds_total{labels} {cpu} {ms}\n"
            f"container_memory_working_set_bytes{labels} 1 {ms}\n"
        )

    storage.store([parse_resource_metrics("n", line(10, 1000), 0)])
    storage.store([parse_resource_metrics("n", line(20, 11000), 0)])
    assert storage.pod_usage("ns", "p") is not None
    storage.store([parse_resource_metrics("n", line(1, 21000), 0)])  # restarted container
    assert storage.pod_usage("ns", "p") is None
    storage.store([])
    assert storage.pod_usage("ns", "p") is None


def test_go_durations() -> None:
    assert [go_duration(s) for s in (15, 15.25, 0.5, 90, 3725)] == [
        "15s", "15.25s", "500ms", "1m30s", "1h2m5s"
    ]  # fmt: skip


def test_kubelet_url_prefers_the_annotation_then_address_types() -> None:
    node: dict[str, Any] = {
        "metadata": {"name": "n"},
        "status": {
            "addresses": [{"type": "InternalIP", "address": "10.0.0.5"},
                          {"type": "Hostname", "address": "n1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        },
    }  # fmt: skip
    assert kubelet_url(node) == "https://n1:10250/metrics/resource"
    assert kubelet_url(node, ("InternalIP",)) == "https://10.0.0.5:10250/metrics/resource"
    assert kubelet_url(node, ("ExternalIP",)) is None
    node["metadata"]["annotations"] = {"metrics.pyk8s.io/resource-metrics-url": "http://x/m"}
    assert kubelet_url(node) == "http://x/m"
