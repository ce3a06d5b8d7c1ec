"""Scale benchmark: how long N simulated nodes take to be Ready and P pods to be Running.

Real processes on loopback: a ``pyk8s apiserver``, then ``pyk8s sim-nodes --count N``
(timed from its start until a watch has seen every node Ready=True), then
``pyk8s scheduler --leader-elect false``; once the scheduler has bound a warm-up pod,
P bare pods (no Deployment, so no controller decides their pace and the run is
deterministic) are created with 50 concurrent HTTPS clients and timed until a watch has
seen every one Running. At the end the resident memory (VmRSS) of every control-plane
process is read from ``/proc``; no controller-manager is started (bare pods need none).
sim-nodes runs with ``--kube-api-qps 5000``: at its default (500 qps) the 5,000 nodes'
Lease renewals (one per node every 10 s) use the whole budget and pods wait for status.

Reference: kwok's CI bounds, 5,000 nodes Ready in under 60 s and 10,000 pods Running in
under 60 s (``--nodes 5000 --pods 10000``; the defaults are 1,000 and 2,000).

``--baseline REV`` first runs the whole cluster (API server, sim-nodes, scheduler) from git
revision REV's ``src/``, then this tree's, and prints both tables: a same-run comparison
on a shared machine. Each table ends with the CPU seconds every process used between the
first pod create and the last pod Running, in all and per pod, and per pod without the
Lease requests answered meanwhile, each charged what one cost over 10 s of the idle
cluster just before (a slower run renews more Leases per pod). A last table counts the
requests the API server answered meanwhile (``apiserver_request_total``) by verb and
resource, in all and per pod: every write a pod costs is API server CPU. The process
table's last row is this bench itself (its 50 creating clients and its watches): a client
on the same two cores as the cluster, whose CPU per create is shown beside the server's.

``--apiserver-workers N`` runs this tree's API server as N processes (the baseline's as
one: revisions before 6b477f8 have no such flag); its CPU is the sum over them, but the
request counts and the idle Lease rate come from the one process whose ``/metrics`` the
bench's connection reached (each process counts its own), so they show a part only and
the "without the Leases" column is left empty; VmRSS and PSS are the primary's only.

``--hold S`` keeps each cluster up S seconds after it was measured (its API server's pid
is printed) so a profiler or a memory snapshot can be taken of the finished state.

Usage: python3 bench/scale/run.py [--nodes 1000] [--pods 2000] [--timeout 600] [--baseline REV]
       [--hold S] [--apiserver-workers N]
This is a measurement, never a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
import tempfile
import time
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
    process_tree,
    revision_src,
    rss_mib,
    start_scheduler,
    start_sim_nodes,
)


def listeners(port: int) -> int:
    """Sockets listening on TCP ``port`` (/proc/net/tcp{,6}): with ``--apiserver-workers``
    one per API server process. Here rather than imported from pyk8s, so the bench runs
    whatever revision PYTHONPATH names."""
    want, count = f":{port:04X}", 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(name) as f:
            next(f, None)
            for line in f:
                fields = line.split()
                if len(fields) > 3 and fields[3] == "0A" and fields[1].endswith(want):
                    count += 1
    return count


KWOK_NODES = "5,000 Ready < 60 s"

#: processes whose CPU is counted with their descendants' (an API server with
#: ``--apiserver-workers``: the primary and its workers)
WHOLE_TREE: set[int] = set()


def cpu_of(pid: int) -> float | None:
    """CPU seconds of ``pid`` (with its descendants when it is in :data:`WHOLE_TREE`)."""
    own = cpu_seconds(pid)
    if own is None or pid not in WHOLE_TREE:
        return own
    return own + sum(cpu_seconds(p) or 0.0 for p in process_tree(pid)[1:])


KWOK_PODS = "10,000 Running < 60 s"


def row(what: str, count: str, seconds: str, rate: str, p50: str, p99: str, ref: str) -> str:
    return f"| {what} | {count} | {seconds} | {rate} | {p50} | {p99} | {ref} |"


HEADER = (
    "| phase | count | seconds | per second | p50 ms | p99 ms | kwok CI bound |\n"
    "|---|---:|---:|---:|---:|---:|---|"
)


async def nodes_ready(
    api: Api, base: Path, kubeconfig: str, nodes: int, per_node: int, within: float
) -> tuple[Proc, str]:
    """Start sim-nodes; return it and the table row for "all nodes Ready"."""
    ready: dict[str, float] = {}

    def on_node(kind: str, obj: Obj, t: float) -> None:
        name = obj["metadata"]["name"]
        if kind != "DELETED" and node_ready(obj):
            ready.setdefault(name, t)
        else:
            ready.pop(name, None)

    watch = Watch(api, "/api/v1/nodes", on_node)
    await watch.start()
    try:
        sim = start_sim_nodes(base, kubeconfig, nodes, per_node)
        ok = await watch.wait_until(lambda: len(ready) >= nodes or not sim.alive(), within)
    finally:
        await watch.stop()
    what = f"{nodes:,} nodes Ready (from sim-nodes start)"
    if not ok or len(ready) < nodes:
        why = "sim-nodes exited" if not sim.alive() else f"did not finish within {within:.0f} s"
        return sim, row(
            f"{what}: {why} ({len(ready)} Ready)", f"{nodes:,}", "-", "-", "-", "-", KWOK_NODES
        )
    took = max(ready.values()) - sim.started
    lat = [t - sim.started for t in ready.values()]
    return sim, row(
        what,
        f"{nodes:,}",
        f"{took:.1f}",
        f"{nodes / took:,.0f}",
        pct_ms(lat, 0.5),
        pct_ms(lat, 0.99),
        KWOK_NODES,
    )


async def pods_running(api: Api, ns: str, prefix: str, pods: int, within: float) -> list[str]:
    """Create ``pods`` bare pods; rows for created, bound and Running."""
    bound: dict[str, float] = {}
    running: dict[str, float] = {}

    def on_pod(kind: str, obj: Obj, t: float) -> None:
        name = obj["metadata"]["name"]
        if kind == "DELETED" or not name.startswith(f"{prefix}-"):
            return
        if (obj.get("spec") or {}).get("nodeName"):
            bound.setdefault(name, t)
        if (obj.get("status") or {}).get("phase") == "Running":
            running.setdefault(name, t)

    watch = Watch(api, f"/api/v1/namespaces/{ns}/pods", on_pod)
    await watch.start()
    try:
        bodies = [(f"{prefix}-{i:06d}", pod_body(f"{prefix}-{i:06d}")) for i in range(pods)]
        sent, lat, wall = await create_many(api, f"/api/v1/namespaces/{ns}/pods", bodies)
        await watch.wait_until(lambda: len(running) >= pods, within)
    finally:
        await watch.stop()
    first = min(sent.values())
    rows = [
        row(
            "pods created (50 clients)",
            f"{pods:,}",
            f"{wall:.1f}",
            f"{pods / wall:,.0f}",
            pct_ms(lat, 0.5),
            pct_ms(lat, 0.99),
            "-",
        )
    ]
    for what, seen in (("bound (spec.nodeName set)", bound), ("Running", running)):
        ref = KWOK_PODS if what == "Running" else "-"
        if len(seen) < pods:
            rows.append(
                row(
                    f"pods {what}: did not finish within {within:.0f} s "
                    f"({len(seen):,} of {pods:,})",
                    f"{pods:,}",
                    "-",
                    "-",
                    "-",
                    "-",
                    ref,
                )
            )
            continue
        took = max(seen.values()) - first
        per_pod = [seen[n] - sent[n] for n in sent]
        rows.append(
            row(
                f"pods {what} (from first create)",
                f"{pods:,}",
                f"{took:.1f}",
                f"{pods / took:,.0f}",
                pct_ms(per_pod, 0.5),
                pct_ms(per_pod, 0.99),
                ref,
            )
        )
    return rows


#: the bench's own process: the 50 clients creating the pods and the watches timing them
BENCH_ROW = "this bench (creator + watches)"

#: seconds the idle cluster (nodes Ready, Leases renewing, no pods) is metered before the pods
IDLE_SECONDS = 10.0


async def lease_requests(api: Api) -> float:
    """Lease requests the API server has answered (``apiserver_request_total``)."""
    text = (await api.request_bytes("GET", "/metrics")).decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("apiserver_request_total{") and 'resource="leases"' in line
    )


async def request_counts(api: Api) -> dict[tuple[str, str], float]:
    """Requests the API server has answered, by (verb, resource[/subresource])
    (``apiserver_request_total`` summed over groups and codes)."""
    text = (await api.request_bytes("GET", "/metrics")).decode()
    counts: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        what = labels.get("resource", "")
        if labels.get("subresource"):
            what += "/" + labels["subresource"]
        key = (labels.get("verb", ""), what)
        counts[key] = counts.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def request_rows(
    before: dict[tuple[str, str], float], after: dict[tuple[str, str], float], pods: int
) -> str:
    """The requests answered between ``before`` and ``after``, per pod, by verb and
    resource: every write a pod costs is API server CPU too."""
    out = ["| verb | resource | requests | per pod |", "|---|---|---:|---:|"]
    total = 0.0
    for key in sorted(after):
        n = after[key] - before.get(key, 0.0)
        if n <= 0:
            continue
        total += n
        out.append(f"| {key[0]} | {key[1]} | {n:,.0f} | {n / max(pods, 1):.2f} |")
    out.append(f"| all | | {total:,.0f} | {total / max(pods, 1):.2f} |")
    return "\n".join(out)


async def idle_cost(api: Api, pids: list[int]) -> tuple[dict[int, float], float]:
    """Each process's CPU seconds per Lease request over :data:`IDLE_SECONDS` of an idle
    cluster (the Leases are all it does then), and the Lease requests per second."""
    before = {pid: cpu_of(pid) or 0.0 for pid in pids}
    leases = await lease_requests(api)
    start = time.perf_counter()
    await asyncio.sleep(IDLE_SECONDS)
    count = await lease_requests(api) - leases
    took = time.perf_counter() - start
    per = {pid: ((cpu_of(pid) or 0.0) - before[pid]) / max(count, 1.0) for pid in pids}
    return per, count / took


def pss_mib(pid: int) -> float | None:
    """Proportional set size of ``pid`` in MiB (its shared pages split among their
    sharers, so a forked process is not charged the pages its parent still shares);
    None when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def process_rows(
    procs: list[tuple[str, int]],
    cpu_before: dict[int, float],
    per_lease: dict[int, float],
    leases: float,
    pods: int,
) -> str:
    """Resident memory now; the CPU each process used since ``cpu_before`` was read (the
    first pod create) until the last pod Running, in all and per pod; and per pod beyond
    the ``leases`` Lease requests answered meanwhile, each charged what one cost in the
    idle cluster (``per_lease``): a slower run renews more Leases per pod, which the
    in-all column charges to the pods."""
    out = [
        "| process | pid | VmRSS MiB | PSS MiB | CPU ms per Lease request (idle) "
        "| CPU s during the pods | CPU ms per pod | without the Leases, ms per pod |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, pid in procs:
        mib, pss = rss_mib(pid), pss_mib(pid)
        now, before = cpu_of(pid), cpu_before.get(pid)
        used = None if now is None or before is None else now - before
        lease = per_lease.get(pid)
        cells = [
            "gone" if mib is None else f"{mib:,.0f}",
            "gone" if pss is None else f"{pss:,.0f}",
            "-" if lease is None else f"{1000 * lease:.2f}",
            "-" if used is None else f"{used:.1f}",
            "-" if used is None or not pods else f"{1000 * used / pods:.1f}",
            "-"
            if used is None or lease is None or not pods
            else f"{1000 * (used - lease * leases) / pods:.1f}",
        ]
        out.append(f"| {name} | {pid} | " + " | ".join(cells) + " |")
    return "\n".join(out)


async def run(
    base: Path, nodes: int, pods: int, within: float, hold: float = 0.0, workers: int = 1
) -> str:
    rows: list[str] = []
    procs: list[Proc] = []
    extra = ("--apiserver-workers", str(workers)) if workers > 1 else ()
    server = Server(base / "data", free_port(), extra_args=extra)
    api: Api | None = None
    memory = ""
    cpu_before: dict[int, float] = {}
    per_lease: dict[int, float] = {}
    leases = 0.0
    measured = 0
    requests = ""
    try:
        server.start()
        assert server.proc is not None
        WHOLE_TREE.add(server.proc.pid)
        for _ in range(1200):  # every worker listening before any client connects
            if listeners(server.port) >= workers:
                break
            await asyncio.sleep(0.05)
        api = Api(server)
        kubeconfig = str(server.kubeconfig)
        per_node = pods_per_node(nodes, pods)
        sim, node_row = await nodes_ready(api, base, kubeconfig, nodes, per_node, within)
        procs.append(sim)
        rows.append(node_row)
        if sim.alive() and "did not finish" not in node_row:
            sched = start_scheduler(base, kubeconfig)
            procs.append(sched)
            await api.namespace("scale")
            warm = await pods_running(api, "scale", "warmup", 1, within)
            if "did not finish" in warm[-1]:
                rows.append(
                    row(
                        f"scheduler/sim-nodes not serving pods within {within:.0f} s",
                        "-",
                        "-",
                        "-",
                        "-",
                        "-",
                        KWOK_PODS,
                    )
                )
            else:
                pids = [server.proc.pid] + [p.pid for p in procs] + [os.getpid()]
                per_lease, idle_rate = await idle_cost(api, pids)
                if workers > 1:
                    # the Lease count is one process's /metrics: no cost per Lease from it
                    per_lease = {}
                rows.append(
                    row(
                        f"idle cluster: Lease requests ({IDLE_SECONDS:.0f} s)",
                        "-",
                        f"{IDLE_SECONDS:.0f}",
                        f"{idle_rate:,.0f}",
                        "-",
                        "-",
                        f"{nodes / 10:,.0f}/s renewals wanted",
                    )
                )
                cpu_before = {pid: cpu_of(pid) or 0.0 for pid in pids}
                leases = await lease_requests(api)
                counted = await request_counts(api)
                measured = pods
                rows += await pods_running(api, "scale", "pod", pods, within)
                leases = await lease_requests(api) - leases
                requests = request_rows(counted, await request_counts(api), pods)
                if workers > 1:
                    requests = (
                        f"(requests answered by one of the {workers} API server processes: "
                        "each counts its own)\n\n" + requests
                    )
        memory = process_rows(
            [("apiserver", server.proc.pid)]
            + [(p.name, p.pid) for p in procs]
            + [(BENCH_ROW, os.getpid())],
            cpu_before,
            per_lease,
            leases,
            measured,
        )
        if hold > 0:
            # keep the cluster up for a memory snapshot or profile of the API server
            print(f"holding {hold:.0f} s: API server pid {server.proc.pid}", flush=True)
            await asyncio.sleep(hold)
    except Exception as err:  # still print what was measured
        rows.append(
            row(f"failed: {type(err).__name__}: {str(err)[:120]}", "-", "-", "-", "-", "-", "-")
        )
    finally:
        if api is not None:
            await api.close()
        for p in reversed(procs):
            p.stop()
        server.stop()
    tables = [t for t in (memory, requests) if t]
    return "\n\n".join(["\n".join([HEADER, *rows]), *tables])


async def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=2000)
    ap.add_argument("--timeout", type=float, default=600.0, help="bound on every wait (s)")
    ap.add_argument(
        "--baseline", default="", help="git revision whose whole cluster is measured first"
    )
    ap.add_argument(
        "--apiserver-workers",
        type=int,
        default=1,
        help="this tree's API server processes (--apiserver-workers; the baseline runs one)",
    )
    ap.add_argument(
        "--hold",
        type=float,
        default=0.0,
        help="seconds to keep each cluster up after measuring it (to inspect the API server)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyk8s-bench-scale-") as tmp:
        trees: dict[str, Path | None] = {"this tree": None}
        if args.baseline:
            trees = {args.baseline: revision_src(args.baseline, Path(tmp) / "rev"), **trees}
        for label, src in trees.items():
            start = time.perf_counter()
            base = Path(tmp) / label.replace(" ", "-")
            base.mkdir()
            # every process of the run (API server, sim-nodes, scheduler) imports pyk8s
            # from the revision's src/ when one is given
            saved = os.environ.get("PYTHONPATH")
            if src is not None:
                os.environ["PYTHONPATH"] = str(src)
            try:
                workers = args.apiserver_workers if src is None else 1
                table = await run(base, args.nodes, args.pods, args.timeout, args.hold, workers)
            finally:
                if saved is None:
                    os.environ.pop("PYTHONPATH", None)
                else:
                    os.environ["PYTHONPATH"] = saved
            load = os.getloadavg()[0]
            if src is None and args.apiserver_workers > 1:
                label += f" (--apiserver-workers {args.apiserver_workers})"
            print(f"### {label}\n\n{table}", flush=True)
            print(f"\n(whole run: {time.perf_counter() - start:.0f} s, load average {load:.1f})\n")


if __name__ == "__main__":
    asyncio.run(main())
