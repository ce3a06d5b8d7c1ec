"""Scheduler benchmark: pods/s from creation to bound, real processes on loopback.

For each node count (default 100 and 1,000; ``--nodes 100,1000,5000`` for upstream's
scale) a fresh ``pyk8s apiserver``, ``pyk8s sim-nodes --count N`` and
``pyk8s scheduler --leader-elect false`` are started. The bench process creates
``--pods`` bare pods with 50 concurrent HTTPS clients, watches pods, and timestamps the
moment each one's ``spec.nodeName`` appears. Reported per node count:

* the same-run baseline: the raw pod-create rate with no scheduler picking the pods up
  (pods for a scheduler that does not exist), so a reader can tell whether the API server
  or the scheduler is the bottleneck;
* SchedulingBasic: pods/s from the first create to the last bind, and the p50/p99 of
  each pod's create→bound latency, next to upstream scheduler_perf's SchedulingBasic
  threshold at 5,000 nodes (270 pods/s; 680 in newer configs) as a reference;
* pod anti-affinity (a required anti-affinity to the pod's own label across
  ``kubernetes.io/hostname``, so one per node: min(pods, nodes) pods) and topology spread
  (maxSkew 1 on ``kubernetes.io/hostname``, DoNotSchedule), each in its own namespace and
  measured exactly like SchedulingBasic, when the scheduler has the InterPodAffinity /
  PodTopologySpread plugins ("not built" otherwise).

``--baseline REV`` measures git revision REV's scheduler first, then this tree's, on the
same API server and sim nodes (each scheduler's pods are deleted before the next starts).
Each row is printed as it completes; every wait is bounded by ``--timeout``.
``bench/scheduler/cycle.py`` measures the scheduling cycle alone, in-process.

Usage: python3 bench/scheduler/run.py [--nodes 100,1000] [--pods 1000] [--timeout 300]
       [--baseline REV]
This is a measurement, never a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._cluster import (  # noqa: E402
    Api,
    Obj,
    Proc,
    Server,
    Watch,
    create_many,
    free_port,
    node_ready,
    pct_ms,
    pod_body,
    pods_per_node,
    revision_src,
    start_scheduler,
    start_sim_nodes,
)

NOTES = """
- baseline: the same pods created against the same API server with no scheduler taking
  them (their schedulerName names no scheduler); if it is far above the scheduled rate,
  the scheduler, not the API server, is the bottleneck.
- `pyk8s scheduler` runs with `--kube-api-qps 5000 --kube-api-burst 10000`, as
  scheduler_perf raises the client limit too (the default is upstream's 50 qps / 100
  burst, which caps binding at about 50 pods/s).
- sim-nodes is running throughout (it turns bound pods Running and renews one Lease per
  node every 10 s; its client limit is raised to 5,000 qps so renewals never starve
  pod updates), so the API server carries that load too, as in a real cluster."""

HOSTNAME = "kubernetes.io/hostname"
PLUGINS = ROOT / "src" / "pyk8s" / "scheduler" / "plugins"
#: upstream scheduler_perf SchedulingBasic thresholds (5,000 nodes), pods/s
UPSTREAM_BASIC = "270 (680 newer)"
HEADER = (
    "| nodes | workload | pods | pods/s | p50 ms | p99 ms | "
    "upstream SchedulingBasic @5k nodes, pods/s |\n|---:|---|---:|---:|---:|---:|---|"
)


def has_plugin(module: str) -> bool:
    return (PLUGINS / f"{module}.py").exists() or (PLUGINS / module).is_dir()


def row(nodes: int, what: str, pods: int | str, rate: str, p50: str, p99: str, ref: str) -> str:
    return f"| {nodes:,} | {what} | {pods} | {rate} | {p50} | {p99} | {ref} |"


def say(line: str) -> None:
    """Print a row now: a slow workload must not hide the ones already measured."""
    print(line, flush=True)


async def wait_nodes_ready(api: Api, count: int, sim: Proc, within: float) -> bool:
    ready: set[str] = set()

    def on_node(kind: str, obj: Obj, _t: float) -> None:
        name = obj["metadata"]["name"]
        if kind != "DELETED" and node_ready(obj):
            ready.add(name)
        else:
            ready.discard(name)

    watch = Watch(api, "/api/v1/nodes", on_node)
    await watch.start()
    try:
        # nodes may have been registered before the watch opened: count the list too
        for obj in (await api.request("GET", "/api/v1/nodes"))["items"]:
            on_node("ADDED", obj, 0.0)
        await watch.wait_until(lambda: len(ready) >= count or not sim.alive(), within)
        return len(ready) >= count
    finally:
        await watch.stop()


def anti_affinity_body(name: str) -> bytes:
    """A bench pod that must not share a node (kubernetes.io/hostname) with its kind."""
    body = json.loads(pod_body(name, labels={"app": "anti"}))
    body["spec"]["affinity"] = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": {"app": "anti"}},
                    "topologyKey": HOSTNAME,
                }
            ]
        }
    }
    return json.dumps(body).encode()


def spread_body(name: str) -> bytes:
    """A bench pod spread over nodes with maxSkew 1, DoNotSchedule."""
    body = json.loads(pod_body(name, labels={"app": "spread"}))
    body["spec"]["topologySpreadConstraints"] = [
        {
            "maxSkew": 1,
            "topologyKey": HOSTNAME,
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "spread"}},
        }
    ]
    return json.dumps(body).encode()


async def schedule_batch(
    api: Api,
    ns: str,
    prefix: str,
    pods: int,
    within: float,
    make_body: Callable[[str], bytes] = pod_body,
) -> tuple[dict[str, float], dict[str, float], float, bool]:
    """Create ``pods`` pods (``make_body(name)``) in ``ns``; return send times, bound
    times, create wall time and whether every pod was bound within ``within`` seconds."""
    bound: dict[str, float] = {}

    def on_pod(kind: str, obj: Obj, t: float) -> None:
        name = obj["metadata"]["name"]
        if (
            kind != "DELETED"
            and name.startswith(f"{prefix}-")
            and (obj.get("spec") or {}).get("nodeName")
            and name not in bound
        ):
            bound[name] = t

    watch = Watch(api, f"/api/v1/namespaces/{ns}/pods", on_pod)
    await watch.start()
    try:
        bodies = [(f"{prefix}-{i:06d}", make_body(f"{prefix}-{i:06d}")) for i in range(pods)]
        sent, _lat, wall = await create_many(api, f"/api/v1/namespaces/{ns}/pods", bodies)
        ok = await watch.wait_until(lambda: len(bound) >= pods, within)
        return sent, bound, wall, ok
    finally:
        await watch.stop()


async def measure(
    api: Api,
    nodes: int,
    ns: str,
    prefix: str,
    pods: int,
    within: float,
    make_body: Callable[[str], bytes],
    what: str,
    ref: str,
) -> str:
    """One measured row: pods/s from the first create to the last bind, and the
    p50/p99 of each pod's create→bound latency."""
    sent, bound, _wall, ok = await schedule_batch(api, ns, prefix, pods, within, make_body)
    what = f"{what} (create → bound)"
    if not ok:
        return row(
            nodes,
            f"{what}: did not finish within {within:.0f} s ({len(bound)} bound)",
            pods,
            "-",
            "-",
            "-",
            ref,
        )
    lat = [bound[n] - sent[n] for n in sent]
    span = max(bound.values()) - min(sent.values())
    return row(
        nodes,
        what,
        pods,
        f"{pods / span:,.0f}",
        pct_ms(lat, 0.5),
        pct_ms(lat, 0.99),
        ref,
    )


async def run_scheduler(
    api: Api,
    base: Path,
    kubeconfig: str,
    nodes: int,
    pods: int,
    within: float,
    label: str,
    src: Path | None,
) -> None:
    """Start the scheduler of ``src`` (None: this tree), measure every workload in
    namespaces of its own, stop it and delete its pods (the next scheduler starts from the
    same cluster)."""
    tag = "" if not label else f"[{label}] "
    suffix = (
        ""
        if not label
        else "-" + "".join(c if c.isalnum() else "-" for c in label).lower().strip("-")
    )
    log_dir = base / f"sched{suffix or '-this'}"
    log_dir.mkdir(exist_ok=True)
    sched = start_scheduler(log_dir, kubeconfig, src)
    namespaces = []
    try:
        ns = f"bench{suffix}"
        await api.namespace(ns)
        namespaces.append(ns)
        # warm up: the scheduler has synced its informers once one pod is bound
        _s, _warm, _w, ok = await schedule_batch(api, ns, "warmup", 1, within)
        if not ok:
            what = f"{tag}SchedulingBasic: scheduler not up within {within:.0f} s"
            say(row(nodes, what, pods, "-", "-", "-", UPSTREAM_BASIC))
            return
        say(
            await measure(
                api, nodes, ns, "basic", pods, within, pod_body, f"{tag}SchedulingBasic",
                UPSTREAM_BASIC,
            )
        )  # fmt: skip
        for what, module, base_ns, make_body, count in (
            (
                "pod anti-affinity (required, own label, hostname)",
                "interpodaffinity",
                "antiaffinity",
                anti_affinity_body,
                # one per node: more pods than nodes could never all be bound
                min(pods, nodes),
            ),
            (
                "topology spread (maxSkew 1, hostname, DoNotSchedule)",
                "podtopologyspread",
                "spread",
                spread_body,
                pods,
            ),
        ):
            if not has_plugin(module):
                say(row(nodes, f"{tag}{what}: not built", "-", "-", "-", "-", "-"))
                continue
            ns = base_ns + suffix
            await api.namespace(ns)
            namespaces.append(ns)
            say(await measure(api, nodes, ns, ns, count, within, make_body, tag + what, "-"))
        if not sched.alive():
            say(row(nodes, f"{tag}scheduler exited early: see its log", *"-----"))
    finally:
        sched.stop()
        for ns in namespaces:
            await api.request("DELETE", f"/api/v1/namespaces/{ns}/pods")


async def run_nodes(
    base: Path, nodes: int, pods: int, within: float, trees: dict[str, Path | None]
) -> None:
    """Every scheduler of ``trees`` (label -> its ``src/``; None: this tree), one after
    the other, over one API server and one set of sim nodes; each row is printed as it
    completes."""
    procs: list[Proc] = []
    server = Server(base / "data", free_port())
    api: Api | None = None
    try:
        server.start()
        api = Api(server)
        kubeconfig = str(server.kubeconfig)
        per_node = pods_per_node(nodes, pods)
        sim = start_sim_nodes(base, kubeconfig, nodes, per_node)
        procs.append(sim)
        t0 = time.perf_counter()
        if not await wait_nodes_ready(api, nodes, sim, within):
            say(
                row(
                    nodes,
                    f"nodes Ready: did not finish within {within:.0f} s (or sim-nodes exited)",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                )
            )
            return
        ready_s = time.perf_counter() - t0

        # baseline: the API server alone (no scheduler handles these pods)
        await api.namespace("baseline")
        bodies = [
            (f"b-{i:06d}", pod_body(f"b-{i:06d}", scheduler_name="no-such-scheduler"))
            for i in range(pods)
        ]
        _sent, lat, wall = await create_many(api, "/api/v1/namespaces/baseline/pods", bodies)
        say(
            row(
                nodes,
                f"(setup: {nodes:,} sim nodes Ready in {ready_s:.1f} s)",
                "-",
                "-",
                "-",
                "-",
                "-",
            )
        )
        say(
            row(
                nodes,
                "baseline: pod create, no scheduler (50 clients)",
                pods,
                f"{pods / wall:,.0f}",
                pct_ms(lat, 0.5),
                pct_ms(lat, 0.99),
                "-",
            )
        )
        await api.request("DELETE", "/api/v1/namespaces/baseline/pods")

        for label, src in trees.items():
            await run_scheduler(api, base, kubeconfig, nodes, pods, within, label, src)
        for p in procs:
            if not p.alive():
                say(row(nodes, f"{p.name} exited early: see its log", "-", "-", "-", "-", "-"))
    finally:
        if api is not None:
            await api.close()
        for p in reversed(procs):
            p.stop()
        server.stop()


async def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--nodes", default="100,1000", help="comma-separated node counts")
    ap.add_argument("--pods", type=int, default=1000, help="pods per measured batch")
    ap.add_argument("--timeout", type=float, default=300.0, help="bound on every wait (s)")
    ap.add_argument("--baseline", default="", help="git revision whose scheduler is measured first")
    args = ap.parse_args()
    counts = [int(n) for n in args.nodes.split(",") if n.strip()]
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="pyk8s-bench-sched-") as tmp:
        trees: dict[str, Path | None] = {"": None}
        if args.baseline:
            src = revision_src(args.baseline, Path(tmp) / "baseline")
            trees = {args.baseline: src, "this tree": None}
        for n in counts:
            sub = Path(tmp) / f"n{n}"
            sub.mkdir()
            try:
                await run_nodes(sub, n, args.pods, args.timeout, trees)
            except Exception as err:  # one size failing still prints the others
                say(row(n, f"failed: {type(err).__name__}: {str(err)[:120]}", *"-----"))
    print(NOTES)


if __name__ == "__main__":
    asyncio.run(main())
