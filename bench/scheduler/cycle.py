"""Scheduling-cycle benchmark: the scheduler's own CPU per pod, in-process, no API server.

``bench/scheduler/run.py`` measures pods/s end to end (API server, informers, binding);
this one isolates what a profile of the scheduler process shows as its hot path: one
cycle is PreFilter → Filter over every node → Score over the feasible ones → pick → assume
(the cycle of ``Scheduler.schedule_one`` without the asynchronous bind). A cache of N
nodes shaped like ``pyk8s sim-nodes``' (4 CPU, 32 Gi, 110 pods, hostname and zone
labels, 10 zones) is filled one pod at a time, so every cycle sees the pods placed before.

Workloads (one namespace each, like scheduler_perf's): SchedulingBasic (10m/16Mi bare
pods), required pod anti-affinity to its own label on ``kubernetes.io/hostname``, required
pod affinity to its own label on the zone, preferred pod affinity (hostname), required
node affinity (zone In [zone-0, zone-1]), topology spread (maxSkew 1 on hostname,
DoNotSchedule).

Rates and latencies are CPU time of the scheduling process (``time.process_time``): on a
shared machine, wall time mostly measures the other processes. ``--baseline REV`` runs
git revision REV's ``src/`` in a child process, interleaved with
this tree's runs (``--runs``), so both see the same machine load; ``--quick`` is a small
size CI can afford (it checks the workloads still schedule; nothing here asserts a time).

Usage: python3 bench/scheduler/cycle.py [--nodes 1000,5000] [--pods 500] [--baseline HEAD]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._cluster import revision_src  # noqa: E402

HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
ZONES = 10
Obj = dict[str, Any]


def node(i: int) -> Obj:
    name = f"sim-{i:05d}"
    cap = {"cpu": "4", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    return {
        "metadata": {
            "name": name,
            "labels": {HOSTNAME: name, ZONE: f"zone-{i % ZONES}", "kubernetes.io/os": "linux"},
        },
        "spec": {},
        "status": {
            "capacity": cap,
            "allocatable": cap,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def _pod(ns: str, name: str, labels: dict[str, str], **spec: Any) -> Obj:
    return {
        "metadata": {"namespace": ns, "name": name, "uid": f"{ns}-{name}", "labels": labels},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "busybox:1.36",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }
            ],
            "schedulerName": "default-scheduler",
            **spec,
        },
        "status": {"phase": "Pending"},
    }


def _term(labels: dict[str, str], key: str) -> Obj:
    return {"labelSelector": {"matchLabels": labels}, "topologyKey": key}


WORKLOADS: dict[str, Callable[[str], Obj]] = {
    "SchedulingBasic": lambda n: _pod("basic", n, {"app": "basic"}),
    "PodAntiAffinity (required, hostname)": lambda n: _pod(
        "anti",
        n,
        {"app": "anti"},
        affinity={
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [_term({"app": "anti"}, HOSTNAME)]
            }
        },
    ),
    "PodAffinity (required, zone)": lambda n: _pod(
        "aff",
        n,
        {"app": "aff"},
        affinity={
            "podAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [_term({"app": "aff"}, ZONE)]
            }
        },
    ),
    "PreferredPodAffinity (hostname)": lambda n: _pod(
        "pref",
        n,
        {"app": "pref"},
        affinity={
            "podAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 1, "podAffinityTerm": _term({"app": "pref"}, HOSTNAME)}
                ]
            }
        },
    ),
    "NodeAffinity (zone In 2 zones)": lambda n: _pod(
        "nodeaff",
        n,
        {"app": "nodeaff"},
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": ZONE, "operator": "In", "values": ["zone-0", "zone-1"]}
                            ]
                        }
                    ]
                }
            }
        },
    ),
    "TopologySpread (maxSkew 1, hostname)": lambda n: _pod(
        "spread",
        n,
        {"app": "spread"},
        topologySpreadConstraints=[
            {
                "maxSkew": 1,
                "topologyKey": HOSTNAME,
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "spread"}},
            }
        ],
    ),
}


def inner(nodes: int, pods: int, seconds: float) -> dict[str, Any]:
    """Run every workload on a fresh cache of ``nodes`` nodes (the tree measured is the
    ``pyk8s`` first on sys.path); per workload: pods/s, p50/p99 cycle ms, unschedulable."""
    import numpy as np

    from pyk8s.scheduler.cache import Cache
    from pyk8s.scheduler.framework.interface import CycleState, is_success
    from pyk8s.scheduler.framework.registry import frameworks_from_config

    # binding is not measured: the client is never called
    fw = frameworks_from_config(None, cast(Any, object()))["default-scheduler"]
    out: dict[str, Any] = {}
    for what, make in WORKLOADS.items():
        cache = Cache()
        for i in range(nodes):
            cache.add_node(node(i))
        lat: list[float] = []  # CPU seconds per cycle: what other processes take is not ours
        failed = 0
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(pods):
            pod = make(f"p-{i:06d}")
            s = time.process_time()
            state = CycleState()
            pre = fw.run_pre_filter(state, pod, cache)
            if pre is not None and not is_success(pre):
                failed += 1
            else:
                feasible, _st = fw.find_feasible(state, pod, cache)
                if feasible.size == 0:
                    failed += 1
                else:
                    scores = fw.run_score(state, pod, cache, feasible)
                    best = np.flatnonzero(scores == scores.max())
                    chosen = int(feasible[best[i % best.size]])
                    cache.assume_pod(pod, cache.info(chosen).name)
            lat.append(time.process_time() - s)
            if time.perf_counter() - t0 > seconds:  # bound each workload's time
                break
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
        lat.sort()
        out[what] = {
            "pods": len(lat),
            "rate": len(lat) / wall,
            "cpu_rate": len(lat) / cpu if cpu > 0 else 0.0,
            "p50": lat[len(lat) // 2] * 1000,
            "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
            "failed": failed,
        }
    return out


def _run(src: Path, nodes: int, pods: int, seconds: float) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, __file__, "--inner", str(nodes), str(pods), str(seconds)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(res.stdout.splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--nodes", default="1000,5000")
    ap.add_argument("--pods", type=int, default=500, help="pods per workload")
    ap.add_argument("--seconds", type=float, default=60.0, help="bound on each workload")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--baseline", default="", help="git revision measured alongside")
    ap.add_argument("--quick", action="store_true", help="100 nodes, 50 pods: for CI")
    ap.add_argument("--inner", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        print(json.dumps(inner(int(args.inner[0]), int(args.inner[1]), float(args.inner[2]))))
        return
    if args.quick:
        args.nodes, args.pods = "100", 50
    scratch = Path(tempfile.mkdtemp(prefix="pyk8s-cycle-src-"))
    trees: dict[str, Path] = {}
    try:
        if args.baseline:
            trees[args.baseline] = revision_src(args.baseline, scratch)
        trees["this tree"] = ROOT / "src"
        load = Path("/proc/loadavg").read_text().split()[0]
        print(
            f"scheduling cycles in-process, load average {load}; pods per CPU-second of the "
            "scheduler (p50 / p99 CPU ms per cycle): CPU time, so other processes' load does "
            "not count\n"
        )
        head = "".join(f" {label} |" for label in trees)
        print(
            f"| nodes | workload | pods |{head}\n|---:|---|---:|" + "---:|" * len(trees), flush=True
        )
        for n in [int(x) for x in args.nodes.split(",") if x.strip()]:
            results: dict[str, list[dict[str, Any]]] = {label: [] for label in trees}
            for _ in range(args.runs):
                for label, src in trees.items():  # interleaved: both see the same load
                    results[label].append(_run(src, n, args.pods, args.seconds))
            for what in WORKLOADS:
                cells = []
                for label in trees:
                    rs = [r[what] for r in results[label]]
                    rate = statistics.median(r["cpu_rate"] for r in rs)
                    p50 = statistics.median(r["p50"] for r in rs)
                    p99 = statistics.median(r["p99"] for r in rs)
                    bad = max(r["failed"] for r in rs)
                    cell = f"{rate:,.0f} ({p50:.1f} / {p99:.1f})"
                    cells.append(cell + (f", {bad} unschedulable" if bad else ""))
                pods = min(r[what]["pods"] for label in trees for r in results[label])
                print(f"| {n:,} | {what} | {pods} | " + " | ".join(cells) + " |", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
