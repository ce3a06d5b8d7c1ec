"""metrics-server: one scrape round of 1,000 simulated pods on 100 simulated nodes.

Real processes on loopback: ``pyk8s server --disable-agent`` (API server, scheduler,
controller-manager and its own metrics-server), ``pyk8s sim-nodes --count 100`` serving
every node's synthetic ``/metrics/resource``, a Deployment of 1,000 pods, and a second,
standalone ``pyk8s metrics-server`` that is the one measured (nothing else runs in it):

* per round, from that process: the wall time of a round (its
  ``metrics_server_manager_tick_duration_seconds``), the CPU seconds it spent per round
  (``/proc/<pid>/stat`` utime+stime over several rounds, so its idle informers are
  included), and its resident memory once it holds two samples of everything;
* the same round's parsing and storing alone, in this process, on the documents the
  nodes sent (what a round costs without the network), next to a baseline of
  ``json.loads`` of the PodMetrics list of the same pods;
* reading it: ``kubectl top pods -A`` (1,000 PodMetrics through the aggregator) and
  ``kubectl top nodes``, wall time.

Usage: python3 bench/metricsserver/run.py [--nodes 100] [--pods 1000] [--resolution 5s]
This is a measurement, never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.integration.conftest import Kubectl  # noqa: E402

from bench._cluster import Proc, Server, free_port, pods_per_node, rss_mib, start_sim_nodes  # noqa: E402
from pyk8s.metricsserver.scraper import kubelet_url, parse_resource_metrics  # noqa: E402
from pyk8s.metricsserver.storage import Storage  # noqa: E402

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def tick_stats(port: int) -> tuple[float, float]:
    """(rounds, total seconds) from the measured metrics-server's /metrics."""
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    count = total = 0.0
    for line in text.splitlines():
        if line.startswith("metrics_server_manager_tick_duration_seconds_count"):
            count = float(line.split()[-1])
        elif line.startswith("metrics_server_manager_tick_duration_seconds_sum"):
            total = float(line.split()[-1])
    return count, total


def wait(check: object, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except (OSError, ValueError, KeyError, AssertionError):
            pass
        time.sleep(1.0)
    raise SystemExit(f"gave up waiting for {what}")


def deployment(replicas: int) -> str:
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "load"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "load"}},
                 "template": {"metadata": {"labels": {"app": "load"},
                                           "annotations": {"kwok.x-k8s.io/usage-cpu": "25m",
                                                           "kwok.x-k8s.io/usage-memory": "48Mi"}},
                              "spec": {"containers": [{
                                  "name": "app", "image": "busybox",
                                  "resources": {"requests": {"cpu": "5m"}}}]}}},
    })  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--resolution", default="5s")
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    server = Server(base / "data", free_port(), command="server", extra_args=(
        "--disable-agent",
        f"--kube-controller-manager-arg=secure-port={free_port()}",
        f"--kube-scheduler-arg=secure-port={free_port()}",
    )).start()  # fmt: skip
    kubectl = Kubectl(server.kubeconfig)
    procs: list[Proc] = []
    try:
        procs.append(start_sim_nodes(base, str(server.kubeconfig), args.nodes,
                                     pods_per_node(args.nodes, args.pods)))  # fmt: skip
        wait(lambda: len(kubectl.json("get", "nodes")["items"]) == args.nodes, 180, "nodes")
        kubectl("apply", "-f", "-", input=deployment(args.pods))

        def running() -> bool:
            got = kubectl.json("get", "deploy", "load")["status"]
            return bool(got.get("readyReplicas") == args.pods)

        started = time.perf_counter()
        wait(running, 600, "pods Running")
        print(f"{args.pods} pods Running on {args.nodes} simulated nodes "
              f"in {time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
        health = free_port()
        measured = Proc("metrics-server", [
            "metrics-server", "--kubeconfig", str(server.kubeconfig), "--secure-port", "0",
            "--bind-address", "127.0.0.1", "--health-port", str(health),
            "--metric-resolution", args.resolution, "--cert-dir", str(base / "ms-certs"),
            "--log-level", "warning",
        ], base / "metrics-server.log")  # fmt: skip
        procs.append(measured)
        wait(lambda: tick_stats(health)[0] >= 2, 120, "two scrape rounds")
        rounds0, seconds0 = tick_stats(health)
        cpu0 = cpu_seconds(measured.pid)
        wait(lambda: tick_stats(health)[0] >= rounds0 + args.rounds, 300, "more rounds")
        rounds1, seconds1 = tick_stats(health)
        cpu1 = cpu_seconds(measured.pid)
        rss = rss_mib(measured.pid)
        rounds = rounds1 - rounds0

        # the same documents, parsed and stored in this process
        nodes = kubectl.json("get", "nodes")["items"]
        ctx = ssl.create_default_context()

        async def fetch() -> list[tuple[str, str]]:
            import aiohttp

            async with aiohttp.ClientSession() as session:

                async def one(node: dict[str, object]) -> tuple[str, str]:
                    url = kubelet_url(node)
                    assert url is not None
                    async with session.get(url, ssl=ctx) as resp:
                        return node["metadata"]["name"], await resp.text()  # type: ignore[index]

                return list(await asyncio.gather(*(one(n) for n in nodes)))

        started = time.perf_counter()
        documents = asyncio.run(fetch())
        fetch_s = time.perf_counter() - started
        parse_times = []
        storage = Storage()
        for i in range(5):
            t0 = time.process_time()
            storage.store(parse_resource_metrics(n, text, time.time() + i) for n, text in documents)
            parse_times.append(time.process_time() - t0)
        tracemalloc.start()
        storage = Storage()
        for i in range(2):
            storage.store(parse_resource_metrics(n, text, time.time() + i) for n, text in documents)
        current, _peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        started = time.perf_counter()
        top_pods = kubectl("top", "pods", "-A", "--no-headers").splitlines()
        top_pods_s = time.perf_counter() - started
        started = time.perf_counter()
        raw = kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/pods")
        raw_s = time.perf_counter() - started
        t0 = time.process_time()
        for _ in range(5):
            json.loads(raw)
        loads_s = (time.process_time() - t0) / 5
        started = time.perf_counter()
        top_nodes = kubectl("top", "nodes", "--no-headers").splitlines()
        top_nodes_s = time.perf_counter() - started
        bytes_per_round = sum(len(t) for _, t in documents)

        per_round = f"every {args.resolution}"
        rows = [
            ("scrape rounds measured", f"{rounds:.0f} ({per_round})"),
            ("wall time per round (tick histogram)",
             f"{(seconds1 - seconds0) / rounds * 1e3:.0f} ms"),
            ("CPU per round, whole process (utime+stime)",
             f"{(cpu1 - cpu0) / rounds * 1e3:.0f} ms"),
            (f"resident memory after {rounds1:.0f} rounds", f"{rss:.0f} MiB"),
            ("/metrics/resource bytes per round", f"{bytes_per_round / 1024:.0f} KiB"),
            (f"fetching the {len(documents)} documents from sim-nodes (one process), wall",
             f"{fetch_s * 1e3:.0f} ms"),
            ("parse + store one round, in-process CPU (median of 5)",
             f"{sorted(parse_times)[2] * 1e3:.0f} ms"),
            ("storage of two samples of everything (tracemalloc)", f"{current / 2**20:.1f} MiB"),
            (f"baseline: json.loads of the {len(top_pods)}-pod PodMetrics list",
             f"{loads_s * 1e3:.0f} ms"),
            (f"kubectl get --raw .../pods ({len(raw) // 1024} KiB), through the aggregator",
             f"{raw_s * 1e3:.0f} ms"),
            (f"kubectl top pods -A ({len(top_pods)} rows)", f"{top_pods_s * 1e3:.0f} ms"),
            (f"kubectl top nodes ({len(top_nodes)} rows)", f"{top_nodes_s * 1e3:.0f} ms"),
        ]  # fmt: skip
        print(f"\n| metrics-server, {args.nodes} nodes, {args.pods} pods | value |\n|---|---:|")
        for label, value in rows:
            print(f"| {label} | {value} |")
    finally:
        for p in reversed(procs):
            p.stop()
        server.stop()
        subprocess.run(["rm", "-rf", str(base)], check=False)


if __name__ == "__main__":
    main()
