"""What recording a pod's trace costs the API server on pod creates (issue 22: goal ≤3 %).

Two API servers over SQLite, each its own process, the same code: one keeps spans (the
default), the other is started with ``trace_max_traces=0`` and records none (the same-run
baseline). Rounds alternate between them so that the machine's noise falls on both; each
round creates ``--ops`` pods at 1 and at 10 concurrent clients over HTTP. The tables give
rate and p50/p99 for each, the server process's CPU time per create (from /proc: the
least noisy measure on a shared machine, since waiting for the CPU is not counted), and
the overhead of tracing on each.

Usage: python3 bench/tracing/run.py [--ops 300] [--rounds 4]
This is a measurement, never a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
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


async def ready(session: aiohttp.ClientSession, url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{url}/readyz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} never became ready")


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
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def merged(rows: list[Row]) -> Row:
    first = rows[0]
    lat = [x for r in rows for x in r.latencies]
    return Row(first.what, first.clients, len(lat), sum(r.seconds for r in rows), lat)


async def main(ops: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-tracing-") as tmp:
        base = Path(tmp)
        servers = {
            "spans kept": start(base, "on", 4096),
            "no spans (baseline)": start(base, "off", 0),
        }
        try:
            async with aiohttp.ClientSession() as session:
                for _proc, url in servers.values():
                    await ready(session, url)
                results: dict[tuple[str, int], list[Row]] = {}
                cpu: dict[tuple[str, int], float] = {}
                for r in range(rounds):
                    order = list(servers) if r % 2 == 0 else list(servers)[::-1]
                    for clients in (1, 10):
                        for name in order:
                            proc, url = servers[name]
                            before = cpu_seconds(proc.pid)
                            row = await creates(
                                session, url, f"create pod, {name}", clients, ops, f"r{r}c{clients}"
                            )
                            used = cpu_seconds(proc.pid) - before
                            cpu[(name, clients)] = cpu.get((name, clients), 0.0) + used
                            results.setdefault((name, clients), []).append(row)
        finally:
            for proc, _url in servers.values():
                proc.terminate()
                proc.wait(10)
    rows = [merged(rs) for _key, rs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0]))]
    print(f"## pod create with and without trace recording ({rounds} alternating rounds)\n")
    print(table(rows, ms_digits=2))
    print("\n| clients | server CPU ms/create, spans | baseline | CPU | rate | p50 | p99 |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for clients in (1, 10):
        on = merged(results[("spans kept", clients)])
        off = merged(results[("no spans (baseline)", clients)])
        cpu_on = cpu[("spans kept", clients)] / on.ops * 1000
        cpu_off = cpu[("no spans (baseline)", clients)] / off.ops * 1000
        print(
            f"| {clients} | {cpu_on:.2f} | {cpu_off:.2f} | {(cpu_on / cpu_off - 1) * 100:+.1f} % | "
            f"{(off.rate / on.rate - 1) * 100:+.1f} % | "
            f"{(on.pct(0.5) / off.pct(0.5) - 1) * 100:+.1f} % | "
            f"{(on.pct(0.99) / off.pct(0.99) - 1) * 100:+.1f} % |"
        )
    print("\n(overhead of tracing: positive = slower with spans kept)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--db", default="", help=argparse.SUPPRESS)
    ap.add_argument("--max-traces", type=int, default=4096, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        asyncio.run(serve(a.serve, Path(a.db), a.max_traces))
    else:
        asyncio.run(main(a.ops, a.rounds))
