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
median).

Then the same in one process, without HTTP: the CPU time of the API server's create path
(admission, validation, the write) with and without spans, and of recording the span
alone: what tracing adds to a create, in µs, below the noise of the HTTP rounds.

Usage: python3 bench/tracing/run.py [--ops 150] [--rounds 8] [--in-process-ops 300] [--same]
[--together]. ``--same`` keeps spans in the baseline too (an A/A run): what it shows is the
noise floor. ``--together`` loads both servers at the same time, each with its own clients,
so the machine's load at any moment falls on both alike (they also compete with each other).
This is a measurement, never a test: nothing here asserts a time. The load average is
printed before and after (the machine may be shared).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
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


async def serve(port: int, db: Path, max_traces: int) -> None:
    """One API server on plain HTTP (no authentication), until killed."""
    from aiohttp import web

    from pyk8s.apiserver.server import APIServer, Config
    from pyk8s.storage.sqlite import SqliteStore

    store = await SqliteStore.open(db)
    server = APIServer(store, config=Config(compact_interval=0, trace_max_traces=max_traces))
    await server.start()
    runner = web.AppRunner(server.app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


def start(base: Path, name: str, max_traces: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [sys.executable, __file__, "--serve", str(port), "--db", str(base / f"{name}.db")]
    proc = subprocess.Popen(
        [*args, "--max-traces", str(max_traces)],
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


def overhead(on: float, off: float) -> str:
    return f"{(on / off - 1) * 100:+.1f} %"


def merged(rows: list[Row]) -> Row:
    first = rows[0]
    lat = [x for r in rows for x in r.latencies]
    return Row(first.what, first.clients, len(lat), sum(r.seconds for r in rows), lat)


async def main(ops: int, rounds: int, same: bool, together: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-tracing-") as tmp:
        base = Path(tmp)
        servers = {
            "spans kept": start(base, "on", 4096),
            "no spans (baseline)": start(base, "off", 4096 if same else 0),
        }
        try:
            async with aiohttp.ClientSession() as session:
                for (_proc, url), log in zip(servers.values(), ("on", "off"), strict=True):
                    await ready(session, url, base / f"{log}.log")
                results: dict[tuple[str, int], list[Row]] = {}
                cpu: dict[tuple[str, int], list[float]] = {}

                async def measure(name: str, clients: int, tag: str) -> None:
                    proc, url = servers[name]
                    before = cpu_seconds(proc.pid)
                    row = await creates(session, url, f"create pod, {name}", clients, ops, tag)
                    used = cpu_seconds(proc.pid) - before
                    cpu.setdefault((name, clients), []).append(used / ops)
                    results.setdefault((name, clients), []).append(row)

                for r in range(rounds):
                    order = list(servers) if r % 2 == 0 else list(servers)[::-1]
                    for clients in (1, 10):
                        tag = f"r{r}c{clients}"
                        if together:
                            await asyncio.gather(*(measure(n, clients, tag) for n in order))
                        else:
                            for name in order:
                                await measure(name, clients, tag)
        finally:
            for proc, _url in servers.values():
                proc.terminate()
                proc.wait(10)
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
    print("\n(overhead of tracing: positive = slower with spans kept)")


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


async def main_all(ops: int, rounds: int, in_process_ops: int, same: bool, together: bool) -> None:
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    if same:
        print("A/A run (--same): the baseline keeps spans too; the differences are noise\n")
    await main(ops, rounds, same, together)
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
    ap.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--db", default="", help=argparse.SUPPRESS)
    ap.add_argument("--max-traces", type=int, default=4096, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        asyncio.run(serve(a.serve, Path(a.db), a.max_traces))
    else:
        asyncio.run(main_all(a.ops, a.rounds, a.in_process_ops, a.same, a.together))
