"""Scheduling-cycle benchmark: the scheduler's own CPU per pod, in-process, no API server.

``bench/scheduler/run.py`` measures pods/s end to end (API server, informers, binding);
this one isolates what a profile of the scheduler process shows as its hot path: one
cycle is PreFilter → Filter over every node → Score over the feasible ones → pick → assume
(the cycle of ``Scheduler.schedule_one`` without the asynchronous bind). Every node is
filtered and scored (no ``percentageOfNodesToScore`` sampling).

Workloads are scheduler_perf's (test/integration/scheduler_perf, the "5000Nodes" params
and pod templates: 100m / 500Mi pause pods; node-default: 4 CPU, 32 Gi, 110 pods):
SchedulingBasic, SchedulingPodAntiAffinity, SchedulingPodAffinity,
SchedulingPreferredPodAffinity, SchedulingPreferredPodAntiAffinity,
SchedulingNodeAffinity, TopologySpreading (maxSkew 5 on the zone), MixedSchedulingBasePod,
and issue 21's spread workload (maxSkew 1 on the hostname, TopologySpreading's setup).
Differences: every node carries ``kubernetes.io/hostname`` (kubelets set it;
scheduler_perf's bare nodes do not, which makes its hostname terms match no domain), zone
values go to nodes in turn (upstream: at random), and the initial pods are placed as bound
pods in turn over the nodes, not scheduled. At other node counts the initial pods scale
with the nodes. The table puts upstream's threshold and issue 21's goal (5,000 nodes)
beside each row.

Rates and latencies are CPU time of the scheduling process (``time.process_time``): on a
shared machine, wall time mostly measures the other processes. ``--baseline REV`` runs
git revision REV's ``src/`` in a child process, interleaved with
this tree's runs (``--runs``), so both see the same machine load; ``--quick`` is a small
size CI can afford (it checks the workloads still schedule; nothing here asserts a time).

Usage: python3 bench/scheduler/cycle.py [--nodes 1000,5000] [--pods N] [--only NAME]
       [--baseline HEAD]
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._cluster import revision_src  # noqa: E402

HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
#: scheduler_perf's workloads are defined at 5,000 nodes ("5000Nodes" params); counts of
#: initial pods scale with the node count
REFERENCE_NODES = 5000
Obj = dict[str, Any]
Template = Callable[[str, str], Obj]  # (namespace, name) -> pod


def node(i: int, zones: tuple[str, ...]) -> Obj:
    """scheduler_perf's node-default (4 CPU, 32 Gi, 110 pods), with the hostname label
    every kubelet (and ``pyk8s sim-nodes``) sets, and the zone of its
    labelNodePrepareStrategy (values in turn)."""
    name = f"scheduler-perf-{i:05d}"
    labels = {HOSTNAME: name}
    if zones:
        labels[ZONE] = zones[i % len(zones)]
    cap = {"cpu": "4", "memory": "32Gi", "pods": "110"}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": {
            "capacity": cap,
            "allocatable": cap,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def _pod(ns: str, name: str, labels: dict[str, str] | None = None, **spec: Any) -> Obj:
    """scheduler_perf's pod-default: one pause container, 100m / 500Mi."""
    res = {"cpu": "100m", "memory": "500Mi"}
    return {
        "metadata": {"namespace": ns, "name": name, "uid": f"{ns}-{name}", "labels": labels or {}},
        "spec": {
            "containers": [
                {
                    "name": "pause",
                    "image": "registry.k8s.io/pause:3.10",
                    "ports": [{"containerPort": 80}],
                    "resources": {"requests": res, "limits": res},
                }
            ],
            "schedulerName": "default-scheduler",
            **spec,
        },
        "status": {"phase": "Pending"},
    }


def _term(color: str, key: str) -> Obj:
    return {
        "labelSelector": {"matchLabels": {"color": color}},
        "topologyKey": key,
        "namespaces": ["sched-1", "sched-0"],
    }


def _with_affinity(kind: str, required: bool, color: str, key: str) -> Template:
    if required:
        section: Obj = {"requiredDuringSchedulingIgnoredDuringExecution": [_term(color, key)]}
    else:
        preferred = [{"weight": 1, "podAffinityTerm": _term(color, key)}]
        section = {"preferredDuringSchedulingIgnoredDuringExecution": preferred}
    return lambda ns, n: _pod(ns, n, {"color": color}, affinity={kind: section})


def _spread(max_skew: int, key: str) -> Template:
    constraint = {
        "maxSkew": max_skew,
        "topologyKey": key,
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"color": "blue"}},
    }
    return lambda ns, n: _pod(ns, n, {"color": "blue"}, topologySpreadConstraints=[constraint])


#: scheduler_perf's pod templates
DEFAULT: Template = _pod
ANTI = _with_affinity("podAntiAffinity", True, "green", HOSTNAME)
AFFINITY = _with_affinity("podAffinity", True, "blue", ZONE)
PREFERRED = _with_affinity("podAffinity", False, "red", HOSTNAME)
PREFERRED_ANTI = _with_affinity("podAntiAffinity", False, "yellow", HOSTNAME)
SPREADING = _spread(5, ZONE)  # pod-with-topology-spreading
NODE_AFFINITY: Template = lambda ns, n: _pod(  # noqa: E731
    ns,
    n,
    affinity={
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": ZONE, "operator": "In", "values": ["zone1", "zone2"]}
                        ]
                    }
                ]
            }
        }
    },
)


@dataclass(frozen=True)
class Workload:
    """One scheduler_perf test case: node zones, initial pods (template, namespace, count
    at 5,000 nodes), the measured pods, upstream's threshold (pods/s at 5,000 nodes) and
    issue 21's goal."""

    zones: tuple[str, ...]
    init: tuple[tuple[Template, str, int], ...]
    measure: tuple[Template, str, int]
    threshold: int | None
    goal: int | None


WORKLOADS: dict[str, Workload] = {
    "SchedulingBasic": Workload(
        (), ((DEFAULT, "namespace-1", 1000),), (DEFAULT, "namespace-2", 1000), 680, 680
    ),
    "SchedulingPodAntiAffinity": Workload(
        (), ((ANTI, "sched-0", 1000),), (ANTI, "sched-1", 1000), 60, 120
    ),
    "SchedulingPodAffinity": Workload(
        ("zone1",), ((AFFINITY, "sched-0", 5000),), (AFFINITY, "sched-1", 1000), 35, 70
    ),
    "SchedulingPreferredPodAffinity": Workload(
        (), ((PREFERRED, "sched-0", 5000),), (PREFERRED, "sched-1", 1000), 90, 180
    ),
    "SchedulingPreferredPodAntiAffinity": Workload(
        (), ((PREFERRED_ANTI, "sched-0", 5000),), (PREFERRED_ANTI, "sched-1", 1000), 90, None
    ),
    "SchedulingNodeAffinity": Workload(
        ("zone1",),
        ((DEFAULT, "namespace-1", 5000),),
        (NODE_AFFINITY, "namespace-2", 1000),
        220,
        440,
    ),
    "TopologySpreading (maxSkew 5, zone)": Workload(
        ("moon-1", "moon-2", "moon-3"),
        ((DEFAULT, "namespace-1", 5000),),
        (SPREADING, "namespace-2", 2000),
        460,
        None,
    ),
    "TopologySpreading (maxSkew 1, hostname)": Workload(
        ("moon-1", "moon-2", "moon-3"),
        ((DEFAULT, "namespace-1", 5000),),
        (_spread(1, HOSTNAME), "namespace-2", 2000),
        None,
        120,
    ),
    "MixedSchedulingBasePod": Workload(
        ("zone1",),
        tuple((t, "sched-0", 2000) for t in (DEFAULT, AFFINITY, ANTI, PREFERRED, PREFERRED_ANTI)),
        (DEFAULT, "namespace-6", 1000),
        140,
        None,
    ),
}


def counts(w: Workload, nodes: int, pods: int) -> tuple[list[int], int]:
    """Initial pods per createPods op, scaled to ``nodes``, and the measured pods
    (``pods`` overrides scheduler_perf's count); a required anti-affinity workload never
    asks for more pods than there are free nodes."""
    init = [round(n * nodes / REFERENCE_NODES) for _t, _ns, n in w.init]
    measure = pods or w.measure[2]
    if w.measure[0] is ANTI:
        anti = sum(n for (t, _ns, _), n in zip(w.init, init, strict=True) if t is ANTI)
        measure = min(measure, nodes - anti)
    return init, measure


def inner(nodes: int, pods: int, seconds: float, only: str) -> dict[str, Any]:
    """Run every workload on a fresh cache of ``nodes`` nodes (the tree measured is the
    ``pyk8s`` first on sys.path); per workload: pods/s, p50/p99 cycle ms, unschedulable.
    Initial pods are placed as bound pods in turn over the nodes (what LeastAllocated
    spreading gives them), not scheduled: only the measured pods' cycles are timed."""
    import numpy as np

    from pyk8s.scheduler.cache import Cache
    from pyk8s.scheduler.framework.interface import CycleState, is_success
    from pyk8s.scheduler.framework.registry import frameworks_from_config

    # binding is not measured: the client is never called
    fw = frameworks_from_config(None, cast(Any, object()))["default-scheduler"]
    out: dict[str, Any] = {}
    for what, w in WORKLOADS.items():
        if only and only.lower() not in what.lower():
            continue
        cache = Cache()
        names = []
        for i in range(nodes):
            names.append(cache.add_node(node(i, w.zones)).name)
        init, measure = counts(w, nodes, pods)
        placed = 0
        for (template, ns, _), n in zip(w.init, init, strict=True):
            for _ in range(n):
                pod = template(ns, f"init-{placed:06d}")
                pod["spec"]["nodeName"] = names[placed % nodes]
                pod["status"] = {"phase": "Running"}
                cache.add_pod(pod)
                placed += 1
        template, ns, _ = w.measure
        lat: list[float] = []  # CPU seconds per cycle: what other processes take is not ours
        chosen_nodes: list[str] = []  # compared between trees: same inputs, same choices?
        failed = 0
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(measure):
            pod = template(ns, f"p-{i:06d}")
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
                    chosen = cache.info(int(feasible[best[i % best.size]])).name
                    cache.assume_pod(pod, chosen)
                    chosen_nodes.append(chosen)
            lat.append(time.process_time() - s)
            if time.perf_counter() - t0 > seconds:  # bound each workload's time
                break
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
        lat.sort()
        out[what] = {
            "init": placed,
            "pods": len(lat),
            "rate": len(lat) / wall,
            "cpu_rate": len(lat) / cpu if cpu > 0 else 0.0,
            "p50": lat[len(lat) // 2] * 1000,
            "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
            "failed": failed,
            "chosen": chosen_nodes,
        }
    return out


def _run(src: Path, nodes: int, pods: int, seconds: float, only: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, __file__, "--inner", str(nodes), str(pods), str(seconds), only]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(res.stdout.splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--nodes", default="1000,5000")
    ap.add_argument("--pods", type=int, default=0, help="measured pods (default: scheduler_perf's)")
    ap.add_argument("--seconds", type=float, default=60.0, help="bound on each workload")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--only", default="", help="workloads whose name contains this")
    ap.add_argument("--baseline", default="", help="git revision measured alongside")
    ap.add_argument("--quick", action="store_true", help="100 nodes, 50 pods: for CI")
    ap.add_argument("--inner", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        n, pods, seconds, only = args.inner
        print(json.dumps(inner(int(n), int(pods), float(seconds), only)))
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
            "not count. Upstream's threshold and issue 21's goal are pods/s at 5,000 nodes.\n"
        )
        head = "".join(f" {label} |" for label in trees)
        print(
            f"| nodes | workload | init pods | measured |{head} upstream threshold | goal |"
            + (" same nodes chosen |" if len(trees) > 1 else "")
            + "\n|---:|---|---:|---:|"
            + "---:|" * (len(trees) + 2)
            + ("---|" if len(trees) > 1 else ""),
            flush=True,
        )
        for n in [int(x) for x in args.nodes.split(",") if x.strip()]:
            results: dict[str, list[dict[str, Any]]] = {label: [] for label in trees}
            for _ in range(args.runs):
                for label, src in trees.items():  # interleaved: both see the same load
                    results[label].append(_run(src, n, args.pods, args.seconds, args.only))
            for what, w in WORKLOADS.items():
                if args.only and args.only.lower() not in what.lower():
                    continue
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
                init = results["this tree"][0][what]["init"]
                extra = [f"{x:,}" if x else "-" for x in (w.threshold, w.goal)]
                if len(trees) > 1:  # the same pods on the same cluster: the same nodes?
                    picks = [r[what]["chosen"] for label in trees for r in results[label]]
                    same = all(c[:pods] == picks[0][:pods] for c in picks)
                    extra.append("yes" if same else "**no**")
                print(
                    f"| {n:,} | {what} | {init:,} | {pods:,} | " + " | ".join(cells + extra) + " |",
                    flush=True,
                )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
