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

* a backlog: ``--pods`` pods created *before* the scheduler starts, timed from its first
  bind to its last, so the pod-create rate is not in the figure (what upstream
  scheduler_perf's throughput collector sees, minus its idle API server).

Where the time goes: the CPU the API server and sim-nodes use in 10 idle seconds once the
nodes are Ready (the nodes' Lease renewals), and, per row, the CPU each process spent per
pod (``/proc``: API server, scheduler, sim-nodes) and, under each row, the median of each
step of a pod's path from its trace spans (40 pods sampled): create request → API server
create span, the create itself, → the scheduler's queue (informer delivery), wait in the
queue, the cycle, the bind round trip, and bound → the bench's watch.

``--no-leases`` runs the sim nodes without Leases, as scheduler_perf's nodes are (at
5,000 nodes the renewals are 500 API writes a second, which the others share the API
server's CPU with).

``--baseline REV`` measures git revision REV's scheduler first, then this tree's, on the
same API server and sim nodes (each scheduler's pods are deleted before the next starts).
Each row is printed as it completes; every wait is bounded by ``--timeout``.
``bench/scheduler/cycle.py`` measures the scheduling cycle alone, in-process.

Usage: python3 bench/scheduler/run.py [--nodes 100,1000] [--pods 1000] [--timeout 300]
       [--baseline REV] [--no-leases]
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
    cpu_seconds,
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
- sim-nodes is running throughout (it turns bound pods Running and, unless
  --no-leases, renews one Lease per node every 10 s through a client of its own; its
  client limit is raised to 5,000 qps), so the API server carries that load too, as in
  a real cluster."""

HOSTNAME = "kubernetes.io/hostname"
PLUGINS = ROOT / "src" / "pyk8s" / "scheduler" / "plugins"
#: upstream scheduler_perf SchedulingBasic thresholds (5,000 nodes), pods/s
UPSTREAM_BASIC = "270 (680 newer)"
HEADER = (
    "| nodes | workload | pods | pods/s | p50 ms | p99 ms | "
    "CPU ms/pod: apiserver / scheduler / sim-nodes | "
    "upstream SchedulingBasic @5k nodes, pods/s |\n|---:|---|---:|---:|---:|---:|---|---|"
)
#: a pod's path, from its trace spans: (label, span the step starts at, span it ends at);
#: ``.s``/``.e`` are a span's start and end, "sent"/"seen" the bench's own clock
STEPS = (
    ("to API", "sent", "apiserver.create.s"),
    ("create", "apiserver.create.s", "apiserver.create.e"),
    ("to scheduler", "apiserver.create.e", "scheduler.queue.s"),
    ("queued", "scheduler.queue.s", "scheduler.queue.e"),
    ("cycle", "scheduler.schedule.s", "scheduler.schedule.e"),
    ("bind", "scheduler.bind.s", "scheduler.bind.e"),
    ("to bench", "scheduler.bind.e", "seen"),
)
TRACED = 40
#: seconds the idle cluster's CPU is measured for
IDLE_S = 10.0


def has_plugin(module: str) -> bool:
    return (PLUGINS / f"{module}.py").exists() or (PLUGINS / module).is_dir()


def row(
    nodes: int, what: str, pods: int | str, rate: str, p50: str, p99: str, ref: str, cpu: str = "-"
) -> str:
    return f"| {nodes:,} | {what} | {pods} | {rate} | {p50} | {p99} | {cpu} | {ref} |"


class CpuMeter:
    """CPU seconds of the control-plane processes between two points, per pod."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = self._read()

    def _read(self) -> dict[str, float]:
        return {k: cpu_seconds(pid) or 0.0 for k, pid in self.pids.items()}

    def per_pod(self, pods: int) -> str:
        now = self._read()
        return " / ".join(
            f"{1000 * (now[k] - self.start[k]) / max(pods, 1):.1f}" for k in self.pids
        )


async def path_steps(api: Api, ns: str, sent: dict[str, float], bound: dict[str, float]) -> str:
    """The median of each of :data:`STEPS` over ``TRACED`` pods' traces."""
    await asyncio.sleep(1.5)  # the components send their spans every 0.5 s
    wall = time.time() - time.perf_counter()  # the bench's clock -> span time
    names = sorted(bound)[:: max(1, len(bound) // TRACED)]
    took: dict[str, list[float]] = {label: [] for label, _a, _b in STEPS}
    for name in names:
        try:
            trace = await api.request("GET", f"/debug/traces/namespaces/{ns}/pods/{name}")
        except RuntimeError:
            continue
        at = {"sent": sent[name] + wall, "seen": bound[name] + wall}
        for span in trace.get("spans") or []:
            at.setdefault(span["name"] + ".s", span["start"])
            at.setdefault(span["name"] + ".e", span["end"])
        for label, a, b in STEPS:
            if a in at and b in at:
                took[label].append(at[b] - at[a])
    return ", ".join(
        f"{label} {sorted(v)[len(v) // 2] * 1000:,.0f}" for label, v in took.items() if v
    )


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
    pids: dict[str, int],
) -> str:
    """One measured row: pods/s from the first create to the last bind, the p50/p99 of
    each pod's create→bound latency, CPU per pod, and a line of the path's steps."""
    cpu = CpuMeter(pids)
    sent, bound, _wall, ok = await schedule_batch(api, ns, prefix, pods, within, make_body)
    used = cpu.per_pod(pods)
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
    steps = await path_steps(api, ns, sent, bound)
    return (
        row(
            nodes,
            what,
            pods,
            f"{pods / span:,.0f}",
            pct_ms(lat, 0.5),
            pct_ms(lat, 0.99),
            ref,
            used,
        )
        + f"\n|  | ↳ p50 ms of each step: {steps} | | | | | | |"
    )


async def backlog(
    api: Api,
    nodes: int,
    ns: str,
    pods: int,
    within: float,
    start: Callable[[], Proc],
    pids: dict[str, int],
    tag: str,
) -> tuple[Proc, str]:
    """Create ``pods`` pods, then ``start()`` the scheduler; the row of its bind rate from
    the first bind to the last (CPU per pod over the same stretch)."""
    bound: dict[str, float] = {}
    cpu: list[CpuMeter] = []
    procs: dict[str, int] = {}

    def on_pod(kind: str, obj: Obj, t: float) -> None:
        name = obj["metadata"]["name"]
        if kind != "DELETED" and (obj.get("spec") or {}).get("nodeName") and name not in bound:
            bound[name] = t
            if not cpu:
                cpu.append(CpuMeter(procs))

    watch = Watch(api, f"/api/v1/namespaces/{ns}/pods", on_pod)
    await watch.start()
    what = f"{tag}SchedulingBasic, backlog (created before the scheduler starts: first → last bind)"
    try:
        bodies = [(f"q-{i:06d}", pod_body(f"q-{i:06d}")) for i in range(pods)]
        await create_many(api, f"/api/v1/namespaces/{ns}/pods", bodies)
        sched = start()
        procs.update(api=pids["api"], scheduler=sched.pid, sim=pids["sim"])
        ok = await watch.wait_until(lambda: len(bound) >= pods, within)
    finally:
        await watch.stop()
    if not ok or not cpu:
        return sched, row(nodes, f"{what}: {len(bound)} bound within {within:.0f} s", pods, *"----")
    span = max(bound.values()) - min(bound.values())
    rate = f"{(pods - 1) / span:,.0f}" if span > 0 else "-"
    return sched, row(nodes, what, pods, rate, "-", "-", "-", cpu[0].per_pod(pods - 1))


async def run_scheduler(
    api: Api,
    base: Path,
    kubeconfig: str,
    nodes: int,
    pods: int,
    within: float,
    label: str,
    src: Path | None,
    pids: dict[str, int],
) -> None:
    """Start the scheduler of ``src`` (None: this tree) over a backlog of pods, measure
    every workload in namespaces of its own, stop it and delete its pods (the next
    scheduler starts from the same cluster). ``pids``: the API server's and sim-nodes'."""
    tag = "" if not label else f"[{label}] "
    suffix = (
        ""
        if not label
        else "-" + "".join(c if c.isalnum() else "-" for c in label).lower().strip("-")
    )
    log_dir = base / f"sched{suffix or '-this'}"
    log_dir.mkdir(exist_ok=True)
    namespaces = [f"backlog{suffix}"]
    await api.namespace(namespaces[0])
    sched, line = await backlog(
        api,
        nodes,
        namespaces[0],
        pods,
        within,
        lambda: start_scheduler(log_dir, kubeconfig, src),
        pids,
        tag,
    )
    say(line)
    pids = {"api": pids["api"], "scheduler": sched.pid, "sim": pids["sim"]}
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
                UPSTREAM_BASIC, pids,
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
            say(await measure(api, nodes, ns, ns, count, within, make_body, tag + what, "-", pids))
        if not sched.alive():
            say(row(nodes, f"{tag}scheduler exited early: see its log", *"-----"))
    finally:
        sched.stop()
        for ns in namespaces:
            await api.request("DELETE", f"/api/v1/namespaces/{ns}/pods")


async def run_nodes(
    base: Path,
    nodes: int,
    pods: int,
    within: float,
    trees: dict[str, Path | None],
    leases: bool = True,
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
        sim = start_sim_nodes(base, kubeconfig, nodes, per_node, leases=leases)
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
        # what the nodes alone cost (Lease renewals: one per node every 10 s)
        idle = CpuMeter({"api": server.proc.pid if server.proc else 0, "sim": sim.pid})
        await asyncio.sleep(IDLE_S)
        api_ms, sim_ms = (float(v) for v in idle.per_pod(1).split(" / "))
        say(
            row(
                nodes,
                f"(idle {IDLE_S:.0f} s with {nodes:,} sim nodes: the API server used "
                f"{api_ms / IDLE_S / 10:.0f}% of a core, sim-nodes {sim_ms / IDLE_S / 10:.0f}%)",
                *"-----",
            )
        )

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

        pids = {"api": server.proc.pid if server.proc else 0, "sim": sim.pid}
        for label, src in trees.items():
            await run_scheduler(api, base, kubeconfig, nodes, pods, within, label, src, pids)
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
    ap.add_argument(
        "--no-leases", action="store_true", help="sim nodes without Leases (scheduler_perf's)"
    )
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
                await run_nodes(sub, n, args.pods, args.timeout, trees, not args.no_leases)
            except Exception as err:  # one size failing still prints the others
                say(row(n, f"failed: {type(err).__name__}: {str(err)[:120]}", *"-----"))
    print(NOTES)


if __name__ == "__main__":
    asyncio.run(main())
