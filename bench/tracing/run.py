"""What recording a pod's trace costs the API server on pod creates (issue 22: goal ≤3 %).

Two API servers over SQLite, each its own process, the same code: one keeps spans (the
default), the other is started with ``trace_max_traces=0`` and records none (the same-run
baseline). Rounds alternate between them so that the machine's noise falls on both; each
round creates ``--ops`` pods at 1 and at 10 concurrent clients over HTTP. The tables give
rate and p50/p99 for each, the server process's CPU time per create (from /proc: the
least noisy measure on a shared machine, since waiting for the CPU is not counted; a
thread that ends during a round loses its share, and the servers' threads live long), and
the overhead of tracing on each: over all rounds, and the median of the rounds' own pairs
(a round runs the two back to back, so a burst of load elsewhere moves one pair, not the
median). The ``all`` row counts every round of both: a full garbage collection (0.03-0.1 s
of one server's CPU) lands in some round, at 1 or at 10 clients, and moves that column's
CPU by a few %, but not the total.

Fairness: the rounds are split into two sessions, each with a new pair of servers, and each
server starts first in one of them (the server started first cost 3-4 % more CPU per
create at 1 client in 4 of 4 A/A runs, whatever it recorded). Each server first creates
``--warmup`` pods, unmeasured, so the span store is full (and evicting) from the first
round, as on a server that has run a while. The servers freeze what they imported from the
garbage collector's passes, as ``pyk8s server`` does. A last table shows each server's CPU
by thread (the event loop, the others: SQLite's) and its garbage collector's time and
passes by generation: with and without spans they should match.

Then the same in one process, without HTTP: the CPU time of the API server's create path
(admission, validation, the write) with and without spans, and of recording the span
alone: what tracing adds to a create, in µs, below the noise of the HTTP rounds.

Usage: python3 bench/tracing/run.py [--ops 150] [--rounds 8] [--warmup 4096]
[--in-process-ops 300] [--same] [--together]. ``--same`` keeps spans in the baseline too
(an A/A run): what it shows is the noise floor. ``--together`` loads both servers at the
same time, each with its own clients, so the machine's load at any moment falls on both
alike (they also compete with each other). This is a measurement, never a test: nothing
here asserts a time. The load average is printed before and after (the machine may be
shared).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._cluster import free_port  # noqa: E402
from bench._table import Row, table, timed  # noqa: E402

JSON = {"Content-Type": "application/json"}


def pod(name: str) -> bytes:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
        }
    ).encode()


async def serve(port: int, db: Path, max_traces: int) -> dict[str, list[float]]:
    """One API server on plain HTTP (no authentication), until SIGTERM; then its garbage
    collector's work since it became ready."""
    from aiohttp import web

    from pyk8s.apiserver.server import APIServer, Config
    from pyk8s.storage.sqlite import SqliteStore

    # what is imported is frozen, as ``pyk8s server`` does before it starts its API server
    # (pyk8s.server.zygote): full collections then pass over the server's own objects only
    gc.collect()
    gc.freeze()
    store = await SqliteStore.open(db)
    server = APIServer(store, config=Config(compact_interval=0, trace_max_traces=max_traces))
    await server.start()
    runner = web.AppRunner(server.app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    collector = GcClock()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    return collector.stats()


class GcClock:
    """The CPU time and count of the garbage collector's passes, by generation."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self._start = 0.0
        gc.callbacks.append(self.callback)

    def callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.thread_time()
        else:
            self.seconds[info["generation"]] += time.thread_time() - self._start
            self.count[info["generation"]] += 1

    def stats(self) -> dict[str, list[float]]:
        return {"gc_seconds": self.seconds, "gc_count": [float(n) for n in self.count]}


def start(base: Path, name: str, max_traces: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [sys.executable, __file__, "--serve", str(port), "--db", str(base / f"{name}.db")]
    proc = subprocess.Popen(
        [*args, "--max-traces", str(max_traces), "--stats", str(base / f"{name}.json")],
        stdout=subprocess.DEVNULL,
        stderr=open(base / f"{name}.log", "wb"),  # noqa: SIM115 - the child owns it
    )
    return proc, f"http://127.0.0.1:{port}"


async def ready(session: aiohttp.ClientSession, url: str, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{url}/readyz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} never became ready; its log ends:\n" + tail(log))


def tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


async def creates(
    session: aiohttp.ClientSession, url: str, what: str, clients: int, ops: int, tag: str
) -> Row:
    path = f"{url}/api/v1/namespaces/default/pods"

    async def one(i: int) -> None:
        body = pod(f"{tag}-{i:06d}")
        async with session.post(path, data=body, headers=JSON) as resp:
            if resp.status != 201:
                raise RuntimeError(f"create: {resp.status} {await resp.text()}")
            await resp.read()

    return await timed(what, clients, ops, one)


def cpu_seconds(pid: int) -> float:
    """CPU time of a process so far, all its threads, to the nanosecond (the scheduler's
    own count in schedstat: /proc's stat has 10 ms ticks, ±4 % of a 150-create round)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that just ended
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def thread_seconds(pid: int) -> tuple[float, float]:
    """CPU time of a process's main thread (the event loop) and of its other threads."""
    main = int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[0]) / 1e9
    return main, cpu_seconds(pid) - main


def overhead(on: float, off: float) -> str:
    return f"{(on / off - 1) * 100:+.1f} %"


def merged(rows: list[Row]) -> Row:
    first = rows[0]
    lat = [x for r in rows for x in r.latencies]
    return Row(first.what, first.clients, len(lat), sum(r.seconds for r in rows), lat)


@dataclass
class Measured:
    """What the rounds measured, by (server, clients), over all sessions."""

    results: dict[tuple[str, int], list[Row]] = field(default_factory=dict)
    cpu: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    #: by server: CPU seconds of the event loop's thread and of the others
    threads: dict[str, list[float]] = field(default_factory=dict)
    #: by server: its garbage collector's seconds and passes by generation
    gc: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    #: pods each server created before the rounds (the warm-ups)
    creates: int = 0


async def session(
    base: Path,
    slots: list[tuple[str, int]],
    ops: int,
    rounds: int,
    together: bool,
    warmup: int,
    m: Measured,
) -> None:
    """Start the two servers in the order of ``slots`` (name, traces kept), create
    ``warmup`` pods in each (not measured: the store is full from the first round, as on a
    server that has run a while), then run ``rounds`` rounds against them."""
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        servers = {name: start(Path(tmp), f"s{i}", keep) for i, (name, keep) in enumerate(slots)}
        try:
            async with aiohttp.ClientSession() as client:
                for i, (_proc, url) in enumerate(servers.values()):
                    await ready(client, url, Path(tmp) / f"s{i}.log")
                if warmup:
                    await asyncio.gather(
                        *(creates(client, url, "", 10, warmup, "w") for _p, url in servers.values())
                    )
                at_start = {name: thread_seconds(p.pid) for name, (p, _url) in servers.items()}
                m.creates += warmup

                async def measure(name: str, clients: int, tag: str) -> None:
                    proc, url = servers[name]
                    before = cpu_seconds(proc.pid)
                    row = await creates(client, url, f"create pod, {name}", clients, ops, tag)
                    used = cpu_seconds(proc.pid) - before
                    m.cpu.setdefault((name, clients), []).append(used / ops)
                    m.results.setdefault((name, clients), []).append(row)

                for r in range(rounds):
                    order = list(servers) if r % 2 == 0 else list(servers)[::-1]
                    for clients in (1, 10):
                        tag = f"r{r}c{clients}"
                        if together:
                            await asyncio.gather(*(measure(n, clients, tag) for n in order))
                        else:
                            for name in order:
                                await measure(name, clients, tag)
                for name, (proc, _url) in servers.items():
                    now = thread_seconds(proc.pid)
                    was = m.threads.setdefault(name, [0.0, 0.0])
                    for i in range(2):
                        was[i] += now[i] - at_start[name][i]
        finally:
            for proc, _url in servers.values():
                proc.terminate()
                proc.wait(10)
        for i, name in enumerate(servers):
            with contextlib.suppress(OSError, ValueError):
                stats = json.loads((Path(tmp) / f"s{i}.json").read_text())
                mine = m.gc.setdefault(name, {})
                for key, values in stats.items():
                    mine[key] = [a + b for a, b in zip(mine.get(key, [0] * 3), values, strict=True)]


async def main(ops: int, rounds: int, same: bool, together: bool, warmup: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-tracing-") as tmp:
        slots = [("spans kept", 4096), ("no spans (baseline)", 4096 if same else 0)]
        m = Measured()
        # the server started first in a pair costs a few % more per create at 1 client (A/A
        # runs showed it): each starts first in one of two sessions of half the rounds
        halves = (rounds + 1) // 2, rounds // 2
        for first, half in zip((0, 1), halves, strict=True):
            if half:
                pair = slots[first:] + slots[:first]
                await session(Path(tmp), pair, ops, half, together, warmup, m)
        results, cpu, threads = m.results, m.cpu, m.threads
    rows = [merged(rs) for _key, rs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0]))]
    how = "rounds, both servers at once" if together else "alternating rounds"
    print(f"## pod create with and without trace recording ({rounds} {how})\n")
    print(table(rows, ms_digits=2))
    print(
        "\n| clients | server CPU ms/create, spans | baseline | CPU | CPU, median of pairs "
        "| p50 | p50, median of pairs | p99 | rate |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for clients in (1, 10):
        ons, offs = results[("spans kept", clients)], results[("no spans (baseline)", clients)]
        on, off = merged(ons), merged(offs)
        cpu_ons, cpu_offs = cpu[("spans kept", clients)], cpu[("no spans (baseline)", clients)]
        cpu_on, cpu_off = statistics.mean(cpu_ons) * 1000, statistics.mean(cpu_offs) * 1000
        cpu_pairs = statistics.median(a / b for a, b in zip(cpu_ons, cpu_offs, strict=True))
        p50_pairs = statistics.median(
            a.pct(0.5) / b.pct(0.5) for a, b in zip(ons, offs, strict=True)
        )
        print(
            f"| {clients} | {cpu_on:.3f} | {cpu_off:.3f} | {overhead(cpu_on, cpu_off)} | "
            f"{overhead(cpu_pairs, 1)} | {overhead(on.pct(0.5), off.pct(0.5))} | "
            f"{overhead(p50_pairs, 1)} | {overhead(on.pct(0.99), off.pct(0.99))} | "
            f"{overhead(off.rate, on.rate)} |"
        )
    # every round of both: a full collection (0.03-0.1 s) counts wherever it fell
    cpu_ons = [x for c in (1, 10) for x in cpu[("spans kept", c)]]
    cpu_offs = [x for c in (1, 10) for x in cpu[("no spans (baseline)", c)]]
    cpu_on, cpu_off = statistics.mean(cpu_ons) * 1000, statistics.mean(cpu_offs) * 1000
    cpu_pairs = statistics.median(a / b for a, b in zip(cpu_ons, cpu_offs, strict=True))
    print(
        f"| all | {cpu_on:.3f} | {cpu_off:.3f} | {overhead(cpu_on, cpu_off)} | "
        f"{overhead(cpu_pairs, 1)} | | | | |"
    )
    print("\n(overhead of tracing: positive = slower with spans kept)")
    measured = 2 * rounds * ops
    print(
        "\n| server | event loop thread µs/create | other threads | GC µs/create (gen 0/1/2), "
        "warm-ups included | GC passes (gen 0/1/2) |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, (main_s, others_s) in threads.items():
        st = m.gc.get(name, {})
        gc_s, gc_n = st.get("gc_seconds", [0.0] * 3), st.get("gc_count", [0] * 3)
        every = measured + m.creates
        print(
            f"| {name} | {main_s / measured * 1e6:.0f} | {others_s / measured * 1e6:.0f} "
            f"| {sum(gc_s) / every * 1e6:.1f} "
            f"({'/'.join(f'{x / every * 1e6:.1f}' for x in gc_s)}) "
            f"| {'/'.join(str(int(x)) for x in gc_n)} |"
        )


def pod_object(name: str) -> dict[str, object]:
    obj: dict[str, object] = json.loads(pod(name))
    obj["metadata"] = {**obj["metadata"], "namespace": "default"}  # type: ignore[dict-item]
    return obj


async def in_process(ops: int, rounds: int, same: bool) -> None:
    """CPU µs per create of the API server's create path with and without spans (rounds
    alternate in one server), and of recording the span alone."""
    from pyk8s.apiserver.authn import UserInfo
    from pyk8s.apiserver.server import APIServer, Config
    from pyk8s.storage.sqlite import SqliteStore

    with tempfile.TemporaryDirectory(prefix="bench-tracing-") as tmp:
        store = await SqliteStore.open(Path(tmp) / "db")
        server = APIServer(store, config=Config(compact_interval=0))
        await server.start()
        try:
            handlers, spans = server.handlers, server.spans
            pods = handlers.registry.for_api_version("v1", "Pod")
            assert pods is not None
            user = UserInfo("bench", groups=("system:masters",))
            kept = spans.max_traces
            cpu: dict[bool, list[float]] = {True: [], False: []}
            n = 0
            for r in range(rounds):
                for on in (True, False) if r % 2 == 0 else (False, True):
                    spans.max_traces = kept if on or same else 0  # off: the baseline
                    objs = [pod_object(f"in-{n + i:06d}") for i in range(ops)]
                    n += ops
                    start = time.process_time()
                    for obj in objs:
                        await handlers.create_object(pods, obj, user=user)
                    cpu[on].append((time.process_time() - start) / ops * 1e6)
            spans.max_traces = kept
            created = await handlers.create_object(pods, pod_object("in-last"), user=user)
            record: list[float] = []
            times = (1.0, 2.0, 3.0, 4.0)
            mutated = ["ServiceAccount", "Priority", "DefaultTolerationSeconds"]
            for _ in range(rounds):
                # a new trace each time, as a create starts one (the store is full by now)
                meta = created["metadata"]
                batch = [{"metadata": {**meta, "uid": str(uuid.uuid4())}} for _ in range(ops)]
                start = time.process_time()
                for obj in batch:
                    spans.record_create(obj, user.name, times, mutated)
                record.append((time.process_time() - start) / ops * 1e6)
        finally:
            await server.stop()
    on, off = statistics.median(cpu[True]), statistics.median(cpu[False])
    rec = statistics.median(record)
    print(f"\n## in one process: CPU µs per create (median of {rounds} alternating rounds)\n")
    print("| create path (admission, validation, the write) | µs | of a create |")
    print("|---|---:|---:|")
    print(f"| with spans kept | {on:.0f} | |")
    print(f"| without spans (baseline) | {off:.0f} | |")
    print(f"| difference (the rounds' noise included) | {on - off:+.0f} | {overhead(on, off)} |")
    print(f"| recording the span alone: all tracing adds | {rec:.1f} | {rec / off * 100:+.2f} % |")


async def main_all(
    ops: int, rounds: int, in_process_ops: int, same: bool, together: bool, warmup: int
) -> None:
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    if same:
        print("A/A run (--same): the baseline keeps spans too; the differences are noise\n")
    await main(ops, rounds, same, together, warmup)
    if in_process_ops:
        await in_process(in_process_ops, max(rounds, 6), same)
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--in-process-ops", type=int, default=300, help="0: skip")
    ap.add_argument("--same", action="store_true", help="A/A: the baseline keeps spans too")
    ap.add_argument("--together", action="store_true", help="load both servers at once")
    ap.add_argument(
        "--warmup", type=int, default=4096, help="pods created first in each server, unmeasured"
    )
    ap.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--db", default="", help=argparse.SUPPRESS)
    ap.add_argument("--max-traces", type=int, default=4096, help=argparse.SUPPRESS)
    ap.add_argument("--stats", default="", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        Path(a.stats).write_text(json.dumps(asyncio.run(serve(a.serve, Path(a.db), a.max_traces))))
    else:
        asyncio.run(main_all(a.ops, a.rounds, a.in_process_ops, a.same, a.together, a.warmup))
