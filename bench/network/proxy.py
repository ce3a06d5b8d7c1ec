"""kube-proxy's network programming cost at scale, measured in a private netns (root).

Issue 6 asks for network programming latency (a Service or EndpointSlice change → rules
in the kernel) with 1,000 services x 10 endpoints, and the iptables-restore time for the
full ruleset. A change costs one render of the whole ruleset (pure Python) plus one
``iptables-restore --noflush`` of it, so the table shows both, and their sum per change,
next to the baseline of the same restore run on a ruleset of one service (the fixed cost
of starting iptables-restore), all in the same run. The rules go into a throwaway network
namespace; the host's own tables are never touched.

    python3 bench/network/proxy.py [--services 1000] [--endpoints 10] [--changes 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._table import Row, table  # noqa: E402

from pyk8s.proxy.iptables import Applier  # noqa: E402
from pyk8s.proxy.rules import ProxyConfig, render  # noqa: E402


def _pod_ip(n: int) -> str:
    return f"10.42.{n // 250 % 250}.{n % 250 + 2}"


def objects(services: int, endpoints: int, generation: int = 0) -> tuple[list[Any], list[Any]]:
    """``services`` ClusterIP services (port 80 → 8080), ``endpoints`` ready pods each."""
    svcs, slices = [], []
    for i in range(services):
        name = f"svc-{i}"
        svcs.append({
            "metadata": {"name": name, "namespace": "bench"},
            "spec": {"type": "ClusterIP", "clusterIP": f"10.43.{i // 250}.{i % 250 + 2}",
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080,
                                "protocol": "TCP"}]},
        })  # fmt: skip
        eps = [
            {"addresses": [_pod_ip(i * endpoints + j)], "conditions": {"ready": True},
             "nodeName": "bench-node"}
            for j in range(endpoints)
        ]  # fmt: skip
        if i == 0:  # the service the changes move between generations
            eps[0]["addresses"] = [f"10.41.{generation // 250 % 250}.{generation % 250 + 2}"]
        slices.append({
            "metadata": {"name": f"{name}-abc", "namespace": "bench",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "endpoints": eps,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        })  # fmt: skip
    return svcs, slices


async def measure(services: int, endpoints: int, changes: int, netns: str) -> list[Row]:
    config = ProxyConfig(node_name="bench-node", node_ips=("192.0.2.10",))
    applier = Applier(["ip", "netns", "exec", netns])
    await applier.ensure_jumps()
    small = [render(*objects(1, endpoints, g), config) for g in range(changes)]
    render_s, restore_s, total_s, baseline_s = [], [], [], []
    for g in range(changes):
        t0 = time.perf_counter()
        await applier.apply(small[g])
        baseline_s.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    await applier.apply(render(*objects(services, endpoints), config))  # the first: full
    full_s = [time.perf_counter() - t0]
    for g in range(changes):
        svcs, slices = objects(services, endpoints, g + 1)
        t0 = time.perf_counter()
        ruleset = render(svcs, slices, config)
        t1 = time.perf_counter()
        await applier.apply(ruleset)
        t2 = time.perf_counter()
        render_s.append(t1 - t0)
        restore_s.append(t2 - t1)
        total_s.append(t2 - t0)
    rules = len(ruleset.nat_rules) + len(ruleset.filter_rules)
    label = f"{services} svc x {endpoints} ep ({rules} rules)"
    return [
        Row("iptables-restore, 1 service (baseline)", 1, changes, sum(baseline_s), baseline_s),
        Row(f"render, {label}", 1, changes, sum(render_s), render_s),
        Row(f"iptables-restore, full, {label}", 1, 1, sum(full_s), full_s),
        Row(f"iptables-restore, changed chains only, {label}", 1, changes, sum(restore_s),
            restore_s),
        Row(f"one change programmed (render+restore), {label}", 1, changes, sum(total_s),
            total_s),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--changes", type=int, default=20)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/network/proxy.py needs root (it programs iptables in its own netns)")
    netns = f"pkbench{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        rows = asyncio.run(measure(args.services, args.endpoints, args.changes, netns))
    finally:
        subprocess.run(["ip", "netns", "delete", netns], check=False)
    print(f"\n### kube-proxy programming: {args.changes} changes, one endpoint moved each\n")
    print(table(rows))


if __name__ == "__main__":
    main()
