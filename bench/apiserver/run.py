"""API server benchmark: a real `pyk8s apiserver` process driven over HTTPS.

Prints one markdown table per datastore (sqlite, etcd): pod create, get, list and watch
throughput and latency (p50/p99) at 1, 10 and 50 concurrent clients, LIST of 10,000 pods
(whole, and paginated: ``?limit=100`` first pages and a walk through continue tokens),
creates at 50 clients with those 10,000 pods stored, and 100 concurrent watchers, next to
the raw store's own create rate measured in the same run (the store opened directly, no
HTTP), because this machine is noisy.

The client is part of what is measured. Most rows use this process's aiohttp, which spends
about as much CPU receiving a 200 KB page as the server spends sending it, so at one client
the sum decides; the ``curl client`` rows fetch the same ``?limit=100`` pages with native
``curl`` processes (one keep-alive TLS connection each) so the server is the bottleneck,
and the ``create pod, curl client`` rows POST the same pods from one ``curl --parallel``
(as many keep-alive connections as clients), without the aiohttp client's ~0.3 ms per create.
The CPU columns say which side paid: the server's CPU per operation, and the client's in
parentheses. Upstream Kubernetes's published API server numbers come from Go clients
(client-go, the load and density tests' clients), native clients like curl here, not Python.

``--baseline REV`` runs the API server of git revision REV (its ``src/``, first on
PYTHONPATH) before this tree's, in the same run, and prints both tables and a before/after
table of their rates and p99s. Minutes apart on a shared machine, those two can differ by
2x for the same code; ``--interleaved ROUNDS`` then also runs both servers side by side
and alternates rounds of curl pages between them, and reports their ratio paired by round;
``--interleaved-writes ROUNDS`` does the same with rounds of 1,000 pod creates by curl at
50 clients (both servers started empty).
``--apiserver-workers 1,2`` runs this tree's server once per N with ``--apiserver-workers
N`` (SQLite only), prints a table per N (the CPU column sums every process of the server:
the primary, its zygote and workers; each table ends with the processes' PSS) and each
N's rows against the first N's; with ``--interleaved``/``--interleaved-writes`` every N
is a contender of the rounds (with or without a baseline).
``--only-lists`` measures the LIST rows of the 10,000 pods alone (the pods are still
created first; no raw-store, create, get or watch rows). ``--only-writes`` measures the
pod creates alone: the raw store's rows and the API server's creates at 1, 10 and 50
clients, by aiohttp and by curl (issue 21's write rows), with no 10,000 pods, lists or
watches.

Usage: python3 bench/apiserver/run.py [--datastores sqlite,etcd] [--ops 1000] [--baseline REV]
    [--only-lists | --only-writes] [--interleaved ROUNDS] [--interleaved-writes ROUNDS]
    [--apiserver-workers N[,N]]
This is a measurement, never a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._cluster import Api, Server, cpu_seconds, free_port, revision_src  # noqa: E402
from bench._table import Row, table, timed  # noqa: E402
from tests.etcd_cluster import EtcdCluster  # noqa: E402

from pyk8s.server.apiserver import listeners  # noqa: E402
from pyk8s.storage import open_store  # noqa: E402

POD_SPEC = {
    "containers": [
        {
            "name": "c",
            "image": "busybox:1.36",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
        }
    ]
}


def pod(name: str) -> bytes:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "bench"}},
            "spec": POD_SPEC,
        }
    ).encode()


def _tree(pid: int) -> list[int]:
    """``pid`` and every process descended from it (an API server's workers are children
    of its zygote, a child of the server)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += parents.get(p, [])
    return out


def server_cpu(pid: int) -> float | None:
    """User + system CPU seconds of the API server ``pid`` and its descendants (with
    ``--apiserver-workers N``: every process serving; None when the server is gone)."""
    own = cpu_seconds(pid)
    if own is None:
        return None
    return own + sum(cpu_seconds(p) or 0.0 for p in _tree(pid)[1:])


def server_pss_mib(pid: int) -> list[float]:
    """Each process's proportional set size (MiB: shared pages split among the sharers)
    of the API server ``pid`` and its descendants, the server's first."""
    out = []
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    out.append(int(line.split()[1]) / 1024)
        except OSError:
            continue
    return out


async def raw_store_rows(endpoint: str, ops: int) -> list[Row]:
    store = await open_store(endpoint)
    rows = []
    for clients in (1, 50):
        rows.append(
            await timed(
                "raw store create (no HTTP)",
                clients,
                ops,
                lambda i, c=clients: store.create(f"/raw/{c}/{i:07d}", pod(f"p{i}")),
            )
        )
    await store.close()
    return rows


async def timed_cpu(
    pid: int, what: str, clients: int, ops: int, one: Callable[[int], Awaitable[object]]
) -> Row:
    """:func:`timed`, with the API server's CPU per operation (ms, utime + stime) kept in
    the row's ``backend`` field: on a loaded machine wall time says little, CPU more. The
    client's own CPU per operation (this process: aiohttp) follows in parentheses."""
    before, client = server_cpu(pid), time.process_time()
    row = await timed(what, clients, ops, one)
    after, client = server_cpu(pid), time.process_time() - client
    if before is not None and after is not None:
        row.backend = f"{(after - before) / ops * 1000:.2f} ({client / ops * 1000:.2f})"
    return row


async def curl_row(server: Server, pid: int, what: str, path: str, clients: int, ops: int) -> Row:
    """``ops`` GETs of ``path`` by ``clients`` concurrent ``curl`` processes, each fetching
    its share sequentially over one keep-alive TLS connection with the admin client
    certificate (the Python rows' user), bodies to /dev/null: a native client whose cost
    per page is small next to the server's, so the row says what the server can do.

    Latencies are curl's own ``time_total`` per transfer; the rate is ``ops`` over the
    wall time from starting the processes to the last one's exit (their start-up and TLS
    handshakes included). The CPU column holds the server's CPU per page and, in
    parentheses, the curl processes' (``RUSAGE_CHILDREN``: they are the only children
    reaped meanwhile)."""
    tls = server.data_dir / "server" / "tls"
    url = server.url + path
    shares = [ops // clients + (1 if i < ops % clients else 0) for i in range(clients)]
    args = [
        "--silent", "--show-error", "--cacert", str(tls / "ca.crt"),
        "--cert", str(tls / "admin.crt"), "--key", str(tls / "admin.key"),
        "--write-out", "%{http_code} %{time_total}\\n",
    ]  # fmt: skip

    async def one(n: int) -> list[float]:
        # one config file per process: N pairs of url + output (curl reuses the connection)
        config = "".join(f'url = "{url}"\noutput = "/dev/null"\n' for _ in range(n))
        proc = await asyncio.create_subprocess_exec(
            "curl", *args, "--config", "-",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await proc.communicate(config.encode())
        if proc.returncode != 0:
            raise RuntimeError(f"curl exited {proc.returncode}")
        lat = []
        for line in out.decode().splitlines():
            status, seconds = line.split()
            if status != "200":
                raise RuntimeError(f"curl GET {path}: {status}")
            lat.append(float(seconds))
        return lat

    before, client = server_cpu(pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    results = await asyncio.gather(*(one(n) for n in shares))
    seconds = time.perf_counter() - start
    after, done = server_cpu(pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    used = done.ru_utime + done.ru_stime - client.ru_utime - client.ru_stime
    row = Row(what, clients, ops, seconds, [x for lat in results for x in lat])
    if before is not None and after is not None:
        row.backend = f"{(after - before) / ops * 1000:.2f} ({used / ops * 1000:.2f})"
    return row


async def curl_create_row(
    server: Server, pid: int, what: str, path: str, clients: int, ops: int, prefix: str
) -> Row:
    """``ops`` POSTs of a pod (named ``prefix-N``) to ``path`` by one ``curl`` process
    running ``clients`` transfers at once (``--parallel``; each keeps its TLS connection
    alive, the admin client certificate as in :func:`curl_row`): the creates of a native
    client, whose CPU per create is small next to the server's. Every status must be 201.

    Latencies, rate and the CPU column as in :func:`curl_row` (curl's CPU in parentheses)."""
    tls = server.data_dir / "server" / "tls"
    # every transfer repeats its options: ``next`` resets them, and a body is per transfer
    per = (
        f'url = "{server.url}{path}"\n'
        f'cacert = "{tls / "ca.crt"}"\ncert = "{tls / "admin.crt"}"\nkey = "{tls / "admin.key"}"\n'
        'header = "Content-Type: application/json"\noutput = "/dev/null"\n'
        'write-out = "%{http_code} %{time_total}\\n"\n'
    )
    config = "next\n".join(
        per + f"data-binary = {json.dumps(pod(f'{prefix}-{i:06d}').decode())}\n" for i in range(ops)
    )
    before, client = server_cpu(pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        "curl", "--silent", "--no-progress-meter", "--show-error",
        "--parallel", "--parallel-max", str(clients), "--config", "-",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate(config.encode())
    seconds = time.perf_counter() - start
    after, done = server_cpu(pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"curl exited {proc.returncode}")
    lat = []
    for line in out.decode().splitlines():
        status, took = line.split()
        if status != "201":
            raise RuntimeError(f"curl POST {path}: {status}")
        lat.append(float(took))
    if len(lat) != ops:
        raise RuntimeError(f"curl POST {path}: {len(lat)} of {ops} answered")
    used = done.ru_utime + done.ru_stime - client.ru_utime - client.ru_stime
    row = Row(what, clients, ops, seconds, lat)
    if before is not None and after is not None:
        row.backend = f"{(after - before) / ops * 1000:.2f} ({used / ops * 1000:.2f})"
    return row


async def bench_server(
    api: Api,
    server: Server,
    ops: int,
    pid: int,
    *,
    only_lists: bool = False,
    only_writes: bool = False,
) -> list[Row]:
    rows: list[Row] = []
    await api.request_bytes(
        "POST",
        "/api/v1/namespaces",
        json.dumps(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}}
        ).encode(),
    )
    base = "/api/v1/namespaces/bench/pods"
    for clients in () if only_lists else (1, 10, 50):
        rows.append(
            await timed_cpu(
                pid,
                "create pod",
                clients,
                ops,
                lambda i, c=clients: api.request_bytes("POST", base, pod(f"c{c}-{i:06d}")),
            )
        )
        rows.append(
            await curl_create_row(
                server, pid, "create pod, curl client", base, clients, ops, f"curl{clients}"
            )
        )
        if only_writes:
            continue
        rows.append(
            await timed_cpu(
                pid,
                "get pod",
                clients,
                ops,
                lambda i, c=clients: api.request_bytes("GET", f"{base}/c{c}-{i:06d}"),
            )
        )
        rows.append(
            await timed_cpu(
                pid,
                "list pods (limit 100)",
                clients,
                min(ops, 200),
                lambda i: api.request_bytes("GET", f"{base}?limit=100"),
            )
        )
    if not only_lists:  # they patch the pods the 50-client creates made
        rows += await patch_rows(api, base, ops, pid)
    if only_writes:
        return rows
    # LIST of 10,000 pods
    have = len(orjson.loads(await api.request_bytes("GET", base))["items"])
    sem = asyncio.Semaphore(50)

    async def fill(i: int) -> None:
        async with sem:
            await api.request_bytes("POST", base, pod(f"fill-{i:06d}"))

    await asyncio.gather(*(fill(i) for i in range(max(0, 10_000 - have))))
    lat = []
    for _ in range(5):
        t = time.perf_counter()
        body = await api.request_bytes("GET", base)
        lat.append(time.perf_counter() - t)
        # parsed untimed: the stdlib's parse of 10,000 pods (20 MB) took seconds
        items = orjson.loads(body)["items"]
    rows.append(Row(f"LIST all pods ({len(items)})", 1, 5, sum(lat), lat))
    rows += await pages(api, server, base, len(items), ops, pid)
    if only_lists:
        return rows
    # creates into a large heap: the watch cache holds the 10,000 pods (the garbage
    # collector's full collections walk them; see pyk8s.server.gcfreeze)
    rows.append(
        await timed_cpu(
            pid,
            f"create pod ({len(items):,} stored)",
            50,
            ops,
            lambda i: api.request_bytes("POST", base, pod(f"big-{i:06d}")),
        )
    )
    rows += await watchers(api, base)
    return rows


async def patch_rows(api: Api, base: str, ops: int, pid: int) -> list[Row]:
    """Read-modify-writes of the pods the 50-client creates made: a merge patch of a
    label (the object), and of a condition (the status subresource), at 1 and 50 clients.
    Each one reads the stored pod, patches it and writes it back by compare-and-swap."""
    merge = "application/merge-patch+json"
    rows = []
    for clients in (1, 50):
        rows.append(
            await timed_cpu(
                pid,
                "patch pod label",
                clients,
                ops,
                lambda i, c=clients: api.request_bytes(
                    "PATCH",
                    f"{base}/c50-{i:06d}",
                    b'{"metadata":{"labels":{"patched":"c%d"}}}' % c,
                    content_type=merge,
                ),
            )
        )
    status = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    rows.append(
        await timed_cpu(
            pid,
            "patch pod status",
            50,
            ops,
            lambda i: api.request_bytes(
                "PATCH", f"{base}/c50-{i:06d}/status", orjson.dumps(status), content_type=merge
            ),
        )
    )
    return rows


async def parsed(api: Api, path: str) -> object:
    return orjson.loads(await api.request_bytes("GET", path))


async def pages(api: Api, server: Server, base: str, stored: int, ops: int, pid: int) -> list[Row]:
    """``?limit=100`` first pages (a consistent read each), by this process's aiohttp and
    by curl, and walks of every page through continue tokens (each walk at the revision of
    its first page)."""
    rows = []
    for clients in (1, 10):
        rows.append(
            await timed_cpu(
                pid,
                f"list pods (limit 100) of {stored:,}",
                clients,
                ops,
                lambda i: api.request_bytes("GET", f"{base}?limit=100"),
            )
        )
    for clients in (1, 10):
        rows.append(
            await curl_row(
                server,
                pid,
                f"list pods (limit 100) of {stored:,}, curl client",
                f"{base}?limit=100",
                clients,
                ops,
            )
        )
    # what a client that reads the pods pays too: the same page, parsed (orjson, the
    # cheapest parser; the rows above time the bytes only)
    rows.append(
        await timed_cpu(
            pid,
            f"list pods (limit 100, parsed by the client) of {stored:,}",
            1,
            ops,
            lambda i: parsed(api, f"{base}?limit=100"),
        )
    )
    token = ""

    async def next_page(i: int) -> None:
        nonlocal token
        query = f"?limit=100&continue={token}" if token else "?limit=100"
        page = orjson.loads(await api.request_bytes("GET", base + query))
        token = page["metadata"].get("continue", "")

    rows.append(
        await timed_cpu(
            pid, f"list pods (limit 100, walking continue tokens) of {stored:,}", 1, ops, next_page
        )
    )
    return rows


async def watchers(api: Api, base: str, count: int = 100, events: int = 2000) -> list[Row]:
    """``count`` watches from one resourceVersion; each must receive ``events`` events
    (replayed from the watch cache). Reports the per-watcher receive rate."""
    rv = (await api.request("GET", f"{base}?limit=1"))["metadata"]["resourceVersion"]
    sem = asyncio.Semaphore(50)

    async def make(i: int) -> None:
        async with sem:
            await api.request_bytes("POST", base, pod(f"w-{i:06d}"))

    await asyncio.gather(*(make(i) for i in range(events)))
    rates: list[float] = []

    async def watch() -> None:
        n = 0
        start = time.perf_counter()
        async with api.session.get(
            f"{api.base}{base}?watch=1&resourceVersion={rv}&timeoutSeconds=120"
        ) as r:
            async for _line in r.content:
                n += 1
                if n == events:
                    break
        rates.append(n / (time.perf_counter() - start))

    t0 = time.perf_counter()
    await asyncio.gather(*(watch() for _ in range(count)))
    total = time.perf_counter() - t0
    rates.sort()
    row = Row(
        f"{count} watchers x {events} events (per-watcher events/s: min "
        f"{rates[0]:,.0f}, median {rates[len(rates) // 2]:,.0f})",
        count,
        count * events,
        total,
        [],
    )
    return [row]


def titled_table(title: str, rows: list[Row]) -> str:
    return f"### {title}\n\n" + table(rows, ms_digits=1)


@contextlib.contextmanager
def code(src: Path | None) -> Iterator[None]:
    """Processes started inside run ``src`` (a baseline revision's code) when given."""
    if src is None:
        yield
        return
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(src)
    try:
        yield
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before


async def run_one(
    kind: str,
    base: Path,
    ops: int,
    src: Path | None = None,
    *,
    only_lists: bool = False,
    only_writes: bool = False,
    workers: int = 1,
) -> tuple[list[Row], list[float]]:
    """The rows of one server (``workers``: its ``--apiserver-workers``) and the PSS of
    its processes at the end."""
    cluster = None
    try:
        if kind == "etcd":
            cluster = EtcdCluster(base / "etcd", size=1).start()
            endpoint = cluster.endpoint
            raw_endpoint = endpoint
        else:
            endpoint = f"sqlite://{base / 'api.db'}"
            raw_endpoint = f"sqlite://{base / 'raw.db'}"
        raw = [] if only_lists else await raw_store_rows(raw_endpoint, ops)
        with code(src):
            server = await started(
                base / f"data-{kind}", ("--datastore-endpoint", endpoint), workers
            )
        api = Api(server)
        try:
            assert server.proc is not None
            rows = await bench_server(
                api,
                server,
                ops,
                server.proc.pid,
                only_lists=only_lists,
                only_writes=only_writes,
            )
            pss = server_pss_mib(server.proc.pid)
        finally:
            await api.close()
            server.stop()
        return raw + rows, pss
    finally:
        if cluster is not None:
            cluster.stop()


async def started(data_dir: Path, args: tuple[str, ...], workers: int = 1) -> Server:
    """A started API server; with ``workers`` > 1 (``--apiserver-workers``) once every
    process listens on its port."""
    extra = (*args, "--apiserver-workers", str(workers)) if workers > 1 else args
    server = Server(data_dir, free_port(), extra_args=extra).start()
    deadline = time.monotonic() + 60
    while listeners(server.port) < workers:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{workers} API server processes not listening")
        await asyncio.sleep(0.05)
    return server


#: pages per server per round of ``--interleaved``: CPU is read from /proc in 10 ms ticks,
#: 500 pages (~0.3 s of server CPU) keep that under 4 %
ROUND_PAGES = 500
#: creates per server per round of ``--interleaved-writes`` (~1 s of server CPU)
ROUND_CREATES = 1000


async def filled_server(
    base: Path, src: Path | None, stored: int = 10_000, workers: int = 1
) -> Server:
    """An API server over SQLite under ``base`` running ``src`` (None: this tree) with
    ``stored`` pods in namespace ``bench`` (``workers``: its ``--apiserver-workers``)."""
    with code(src):
        server = await started(
            base / "data", ("--datastore-endpoint", f"sqlite://{base / 'api.db'}"), workers
        )
    api = Api(server)
    try:
        await api.namespace("bench")
        sem = asyncio.Semaphore(50)

        async def fill(i: int) -> None:
            async with sem:
                await api.request_bytes("POST", "/api/v1/namespaces/bench/pods", pod(f"f-{i:06d}"))

        await asyncio.gather(*(fill(i) for i in range(stored)))
    finally:
        await api.close()
    return server


async def interleaved(
    tmp: Path,
    contenders: list[tuple[str, Path | None, int]],
    rounds: int,
    pages: int = ROUND_PAGES,
    *,
    writes: bool = False,
) -> str:
    """The ``contenders`` (label, code: a baseline's ``src`` or None for this tree, and
    ``--apiserver-workers``) up side by side (SQLite, 10,000 pods each), and ``rounds``
    rounds of ``pages`` ``?limit=100`` pages by one curl client against each in turn
    (the order reversed every other round): on a machine whose other load comes and
    goes, each round's numbers were measured seconds apart, so their ratio says more
    than two rows measured minutes apart. Medians over the rounds; the p50 is the steadiest
    (a p99 or a rate follows whatever else ran during the round). Ratios are each later
    contender's over the first's.

    ``writes``: the servers start empty and each round is :data:`ROUND_CREATES` pod
    creates by curl at 50 clients instead."""
    servers: dict[str, Server] = {}
    per: dict[str, list[Row]] = {label: [] for label, _src, _n in contenders}
    path = "/api/v1/namespaces/bench/pods" + ("" if writes else "?limit=100")

    async def one(server: Server, label: str, ops: int, prefix: str) -> Row:
        assert server.proc is not None
        if writes:
            return await curl_create_row(server, server.proc.pid, label, path, 50, ops, prefix)
        return await curl_row(server, server.proc.pid, label, path, 1, ops)

    try:
        for label, code_src, workers in contenders:
            base = tmp / f"interleaved-{'w' if writes else 'l'}{len(servers)}"
            base.mkdir()
            servers[label] = await filled_server(base, code_src, 0 if writes else 10_000, workers)
        for server in servers.values():  # warm both (connections, caches)
            await one(server, "warm-up", 200 if writes else 100, "warm")
        for i in range(rounds):
            order = list(servers.items())
            for label, server in order if i % 2 == 0 else order[::-1]:
                row = await one(server, label, ROUND_CREATES if writes else pages, f"r{i}")
                per[label].append(row)
    finally:
        for server in servers.values():
            server.stop()

    def cpu(r: Row) -> float:
        return float(r.backend.split()[0]) if r.backend else float("nan")

    def med(xs: list[float], digits: int) -> str:
        return f"{statistics.median(xs):,.{digits}f} ({min(xs):,.{digits}f}-{max(xs):,.{digits}f})"

    unit = "create" if writes else "page"
    title = (
        f"{rounds} rounds x {ROUND_CREATES} pod creates, 50 curl clients"
        if writes
        else f"{rounds} rounds x {pages} pages of 10,000 pods, 1 curl client"
    )
    out = [
        f"### interleaved: {title}, {' and '.join(per)} in turn",
        "",
        f"| server | {unit}s/s | server CPU ms/{unit} | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, rows in per.items():
        out.append(
            f"| {label} | {med([r.rate for r in rows], 0)} | {med([cpu(r) for r in rows], 3)} "
            f"| {med([r.pct(0.5) for r in rows], 2)} | {med([r.pct(0.99) for r in rows], 2)} |"
        )
    first, *later = per
    for label in later:
        pairs = list(zip(per[first], per[label], strict=True))
        rate = [b.rate / a.rate for a, b in pairs]
        used = [cpu(b) / cpu(a) for a, b in pairs]
        p50 = [b.pct(0.5) / a.pct(0.5) for a, b in pairs]
        p99 = [b.pct(0.99) / a.pct(0.99) for a, b in pairs]
        out += [
            "",
            f"{label} / {first}, paired by round: {unit}s/s x{med(rate, 3)}, "
            f"server CPU/{unit} x{med(used, 3)}, p50 x{med(p50, 3)}, p99 x{med(p99, 3)} "
            "(median, min-max)",
        ]
    return "\n".join(out)


def report(title: str, rows: list[Row]) -> str:
    out = titled_table(title, rows)
    by = {(r.what, r.clients): r for r in rows}
    notes = []
    for c in (1, 50):
        mine, base_row = by.get(("create pod", c)), by.get(("raw store create (no HTTP)", c))
        if mine and base_row:
            notes.append(
                f"- pod create, {c} client(s): {mine.rate / base_row.rate:.0%} of "
                "the raw store's create rate at the same concurrency"
            )
    cpu = [f"| {r.what} | {r.clients} | {r.backend} |" for r in rows if r.backend]
    if cpu:
        notes += [
            "",
            "| operation | clients | API server CPU ms/op (client's) |",
            "|---|---:|---:|",
            *cpu,
        ]
    return out + "\n\n" + "\n".join(notes)


def compare(title: str, before: list[Row], after: list[Row]) -> str:
    """Each operation's rate, p99 and API server CPU per op, the baseline's next to this
    tree's."""
    old = {(r.what, r.clients): r for r in before}
    out = [
        f"### {title}: before / after",
        "",
        "| operation | clients | ops/s before | ops/s after | p99 ms before | p99 ms after "
        "| server CPU ms/op (client's) before | after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in after:
        b = old.get((r.what, r.clients))
        if b is not None and r.latencies:
            out.append(
                f"| {r.what} | {r.clients} | {b.rate:,.0f} | {r.rate:,.0f} | "
                f"{b.pct(0.99):.1f} | {r.pct(0.99):.1f} | {b.backend or '-'} | {r.backend or '-'} |"
            )
    return "\n".join(out)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datastores", default="sqlite,etcd")
    ap.add_argument("--ops", type=int, default=1000)
    ap.add_argument("--baseline", default="", help="git revision measured first, same run")
    only = ap.add_mutually_exclusive_group()
    only.add_argument(
        "--only-lists",
        action="store_true",
        help="only the LIST rows of 10,000 pods (created first)",
    )
    only.add_argument(
        "--only-writes",
        action="store_true",
        help="only the create rows (raw store, and the API server at 1, 10, 50 clients)",
    )
    ap.add_argument(
        "--interleaved",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="with --baseline: also both servers side by side, ROUNDS rounds of curl "
        "pages against each in turn (SQLite)",
    )
    ap.add_argument(
        "--interleaved-writes",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="with --baseline: the same with rounds of 1,000 pod creates by curl at 50 "
        "clients (SQLite, servers started empty)",
    )
    ap.add_argument(
        "--apiserver-workers",
        default="1",
        metavar="N[,N]",
        help="run this tree's server with --apiserver-workers N, each N in turn (SQLite "
        "only): a table per N and an N vs the first N comparison; with "
        "--interleaved/--interleaved-writes, each N is a contender beside the baseline's",
    )
    args = ap.parse_args()
    counts = [int(n) for n in args.apiserver_workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="pyk8s-bench-api-") as tmp:
        src = revision_src(args.baseline, Path(tmp) / "baseline") if args.baseline else None
        for kind in args.datastores.split(","):
            before: list[Row] = []
            if src is not None:
                sub = Path(tmp) / f"{kind}-baseline"
                sub.mkdir()
                before, pss = await run_one(
                    kind,
                    sub,
                    args.ops,
                    src,
                    only_lists=args.only_lists,
                    only_writes=args.only_writes,
                )
                print(report(f"datastore: {kind}, baseline {args.baseline}", before), flush=True)
                print(_pss_line(pss))
                print()
            first: tuple[str, list[Row]] | None = None
            for workers in counts:
                if workers > 1 and kind != "sqlite":
                    print(f"(--apiserver-workers {workers}: SQLite only, skipped for {kind})\n")
                    continue
                sub = Path(tmp) / f"{kind}-{workers}"
                sub.mkdir()
                rows, pss = await run_one(
                    kind,
                    sub,
                    args.ops,
                    only_lists=args.only_lists,
                    only_writes=args.only_writes,
                    workers=workers,
                )
                title = f"datastore: {kind}" + (
                    f", {workers} API server processes" if workers > 1 else ""
                )
                print(report(title, rows), flush=True)
                print(_pss_line(pss))
                print()
                if before:
                    print(compare(title, before, rows), flush=True)
                    print()
                if first is None:
                    first = (title, rows)
                else:
                    print(compare(f"{first[0]} -> {title}", first[1], rows), flush=True)
                    print()
        contenders: list[tuple[str, Path | None, int]] = []
        if src is not None:
            contenders.append((args.baseline, src, 1))
        contenders += [
            ("this tree" if n == 1 else f"this tree, {n} processes", None, n) for n in counts
        ]
        if len(contenders) > 1 and args.interleaved > 0:
            print(await interleaved(Path(tmp), contenders, args.interleaved))
            print()
        if len(contenders) > 1 and args.interleaved_writes > 0:
            print(await interleaved(Path(tmp), contenders, args.interleaved_writes, writes=True))
            print()


def _pss_line(pss: list[float]) -> str:
    """The server's processes' memory at the end of its rows."""
    each = ", ".join(f"{m:.0f}" for m in pss)
    return f"server processes' PSS at the end: {sum(pss):.0f} MiB ({each}; the server's first)"


if __name__ == "__main__":
    asyncio.run(main())
