"""Storage benchmark: pyk8s's stores next to raw baselines measured in the same run.

Prints one markdown table. For each backend (sqlite, etcd):

* create and get rate and latency (p50/p99) with 1 and 50 concurrent clients;
* list of 10,000 keys (p50 over a few runs);
* watch delivery: time from the start of a write to its event reaching a watcher;
* the raw baseline: a plain sqlite INSERT+COMMIT loop with the same pragmas, or a plain
  etcd Put loop with the same client library, sequential and 50 at once for etcd.

Usage: python3 bench/storage/run.py [--backends sqlite,etcd] [--ops 2000]
This is a measurement, never a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._table import Row, table, timed  # noqa: E402
from tests.etcd_cluster import EtcdCluster  # noqa: E402

from pyk8s.storage import Store, open_store  # noqa: E402

VALUE = b'{"kind":"Pod","apiVersion":"v1","metadata":{"name":"x"}}' + b" " * 900


async def bench_store(backend: str, store: Store, ops: int) -> list[Row]:
    rows: list[Row] = []
    for clients in (1, 50):
        p = f"/bench/c{clients}/"
        rows.append(
            await timed(
                "create",
                clients,
                ops,
                lambda i, p=p: store.create(f"{p}{i:07d}", VALUE),
                backend=backend,
            )
        )
        rows.append(
            await timed(
                "get", clients, ops, lambda i, p=p: store.get(f"{p}{i % ops:07d}"), backend=backend
            )
        )
    # list of 10,000 keys
    p = "/bench/list/"
    have = await store.count(p)
    sem = asyncio.Semaphore(50)

    async def fill(i: int) -> None:
        async with sem:
            await store.create(f"{p}{i:07d}", VALUE)

    await asyncio.gather(*(fill(i) for i in range(have, 10_000)))
    runs = 5
    lat: list[float] = []
    for _ in range(runs):
        t = time.perf_counter()
        result = await store.list(p)
        lat.append(time.perf_counter() - t)
        assert len(result.kvs) == 10_000
    rows.append(Row("list 10k keys", 1, runs, sum(lat), lat, backend))
    rows.append(await watch_latency(backend, store, min(ops, 1000)))
    return rows


async def watch_latency(backend: str, store: Store, n: int) -> Row:
    p = "/bench/watch/"
    started: dict[str, float] = {}
    latencies: list[float] = []
    done = asyncio.Event()
    w = await store.watch(p)

    async def consume() -> None:
        async for ev in w:
            latencies.append(time.perf_counter() - started[ev.kv.key])
            if len(latencies) == n:
                done.set()
                return

    task = asyncio.create_task(consume())
    t0 = time.perf_counter()
    for i in range(n):
        key = f"{p}{i:07d}"
        started[key] = time.perf_counter()
        await store.create(key, VALUE)
    await asyncio.wait_for(done.wait(), 60)
    elapsed = time.perf_counter() - t0
    await task
    await w.close()
    return Row("watch: write start → event", 1, n, elapsed, latencies, backend)


def raw_sqlite(path: Path, ops: int) -> Row:
    """A plain INSERT+COMMIT loop with the pragmas SqliteStore uses."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE kv (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, value BLOB)")
    latencies = []
    start = time.perf_counter()
    for i in range(ops):
        t = time.perf_counter()
        conn.execute("BEGIN")
        conn.execute("INSERT INTO kv (name, value) VALUES (?, ?)", (f"/raw/{i:07d}", VALUE))
        conn.execute("COMMIT")
        latencies.append(time.perf_counter() - t)
    seconds = time.perf_counter() - start
    conn.close()
    return Row("INSERT+COMMIT loop", 1, ops, seconds, latencies, "sqlite (raw)")


async def raw_etcd(hosts: list[tuple[str, int]], ops: int) -> list[Row]:
    """Plain Put calls through the same client library the etcd backend uses."""
    import grpc.aio
    from aetcd import rpc

    channel = grpc.aio.insecure_channel(f"{hosts[0][0]}:{hosts[0][1]}")
    kv = rpc.KVStub(channel)
    rows = []
    for clients in (1, 50):

        async def put(i: int, c: int = clients) -> object:
            return await kv.Put(rpc.PutRequest(key=f"/raw/c{c}/{i:07d}".encode(), value=VALUE))

        rows.append(await timed("Put loop", clients, ops, put, backend="etcd (raw)"))
    await channel.close()
    return rows


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="sqlite,etcd")
    ap.add_argument("--ops", type=int, default=2000)
    args = ap.parse_args()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="pyk8s-bench-") as tmp:
        base = Path(tmp)
        if "sqlite" in args.backends:
            rows.append(raw_sqlite(base / "raw.db", args.ops))
            store = await open_store(f"sqlite://{base / 'state.db'}")
            rows += await bench_store("sqlite", store, args.ops)
            await store.close()
        if "etcd" in args.backends:
            cluster = EtcdCluster(base / "etcd", size=1).start()
            try:
                rows += await raw_etcd(cluster.hosts, args.ops)
                store = await open_store(cluster.endpoint)
                rows += await bench_store("etcd", store, args.ops)
                await store.close()
            finally:
                cluster.stop()
    print(table(rows, backend_column=True, ms_digits=2))
    by = {(r.backend, r.what, r.clients): r for r in rows}
    notes = []
    for backend, raw_name, raw_what in (
        ("sqlite", "sqlite (raw)", "INSERT+COMMIT loop"),
        ("etcd", "etcd (raw)", "Put loop"),
    ):
        for c in (1, 50):
            # compare with the raw loop at the same concurrency where the baseline has one
            raw = by.get((raw_name, raw_what, c)) or by.get((raw_name, raw_what, 1))
            mine = by.get((backend, "create", c))
            if raw and mine:
                notes.append(
                    f"{backend} create, {c} client(s): {mine.rate / raw.rate:.0%} of "
                    f"the raw loop with {raw.clients} client(s)"
                )
    if notes:
        print()
        print("\n".join(f"- {n}" for n in notes))


if __name__ == "__main__":
    asyncio.run(main())
