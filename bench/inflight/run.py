"""In-flight limit benchmark: many concurrent clients against `--max-requests-inflight 50`.

Starts a real `pyk8s apiserver` on loopback three ways, one after the other in the same
run: with `--max-requests-inflight 50` and API Priority and Fairness (the default: APF
shares out 50 + the default 200 mutating seats, and the benchmark's user lands in the
`global-default` level, 21 seats, queues of 50), with `--max-requests-inflight 50` and APF
off (`--enable-priority-and-fairness=false`: the max-in-flight filter answers 429 itself),
and, as the baseline, with no limit at all (APF off, `0`). It drives each with N
concurrent clients, each on its own connection, as a token user outside system:masters
(the admin certificate is exempt from every limit, as upstream). Every client lists the
ConfigMaps of a namespace over and over (``--resource events``: Events, which the watch
cache does not keep, so each list reads the store on a thread and holds its slot or seat
across that wait, as a read from etcd does upstream; a cached list runs in one step of the
event loop and never makes the server hold 50 at once); after a 429 it either goes
straight on to its next request ("no back-off": the worst case) or first waits the
`Retry-After` seconds, as client-go does ("Retry-After"). Prints, per server, back-off and
N: requests, admitted and rejected, the admitted requests' p50/p99 (client-side: this
includes the benchmark's own event loop, on the same two cores), and whether every
rejected one carried `Retry-After`. Next to them, the server's own view of the admitted
lists (the goal's "the server's p99"): the bucket of `apiserver_request_duration_seconds`
(upstream's buckets) that holds their p50 and p99, from handler start to response, APF's
queue wait included (as upstream, which times from the request's arrival); the time a
request waits in the event loop before its handler starts is not in it, so the client-side
numbers are the honest total. Since 9a348e9 the histogram holds admitted requests only (a
limiter's 429 is not observed, as upstream); a baseline revision before that mixes its
rejections in (fast ones: its server columns then look better than they were). With APF,
the p99 bucket of `apiserver_flowcontrol_request_wait_duration_seconds{execute="true"}`
(the admitted requests' queue wait) is shown too. Last, the server process's CPU time per
request it answered (admitted or rejected; the light user's included): one event loop
answers at most 1000 / that many requests a second, which bounds the latency N clients
without back-off see. Meanwhile a second user ("light") lists with 5 clients one request
at a time: its p99 ("light p99") shows whether the flood starves other users (with APF it
is another flow of the same level, in other queues of its hand).

``--baseline REV`` first runs the same servers with git revision REV's code (its ``src/``
first on the server's PYTHONPATH), in the same run: a before/after on one machine state.

Usage: python3 bench/inflight/run.py [--clients 50,200,500] [--requests 3000]
    [--servers apf,filter,none] [--backoff no,yes] [--resource configmaps|events]
    [--baseline REV]
This is a measurement, never a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
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

from bench._cluster import Server, free_port, revision_src  # noqa: E402
from tests.integration.conftest import KUBECTL  # noqa: E402

NS = "bench-inflight"
OBJECTS = 20
LIGHT_CLIENTS = 5


@dataclass
class Result:
    server: str
    clients: int
    backoff: bool
    latencies: list[float] = field(default_factory=list)
    #: the light user's admitted latencies during the same row
    light: list[float] = field(default_factory=list)
    rejected: int = 0
    rejected_with_retry_after: int = 0
    other: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    #: the upper bounds (s) of the server histogram buckets holding p50 and p99
    server_p50: float = float("nan")
    server_p99: float = float("nan")
    #: the bound of the bucket holding the admitted requests' APF queue wait p99 (nan: APF off)
    queue_p99: float = float("nan")
    #: the API server process's CPU seconds (user + system) during the row
    server_cpu: float = 0.0

    def pct(self, q: float, light: bool = False) -> float:
        values = self.light if light else self.latencies
        if not values:
            return float("nan")
        s = sorted(values)
        return s[min(len(s) - 1, int(q * len(s)))] * 1000


def manifest(resource: str, i: int) -> dict[str, object]:
    """The ``i``-th object the clients list."""
    if resource == "events":
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"ev-{i}"},
            "involvedObject": {
                "kind": "ConfigMap",
                "name": "cm",
                "namespace": NS,
                "apiVersion": "v1",
            },
            "reason": "Bench",
            "message": "bench/inflight",
        }
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}"}}


def start(base: Path, limit: int, apf: bool, token: str, src: Path | None, resource: str) -> Server:
    tokens = base / "tokens.csv"
    tokens.write_text(f'{token},bench,bench-uid,"bench"\n{token}-light,light,light-uid,"bench"\n')
    server = Server(
        base / "data",
        free_port(),
        extra_args=(
            f"--max-requests-inflight={limit}",
            f"--enable-priority-and-fairness={'true' if apf else 'false'}",
            f"--token-auth-file={tokens}",
            "--log-level=warning",
        ),
        wrapper=() if src is None else ("env", f"PYTHONPATH={src}"),
    ).start()
    kubectl = [KUBECTL, "--kubeconfig", str(server.kubeconfig)]
    subprocess.run(
        [*kubectl, "create", "clusterrolebinding", "bench", "--clusterrole=cluster-admin",
         "--user=bench", "--user=light"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run([*kubectl, "create", "namespace", NS], check=True, capture_output=True)
    for i in range(OBJECTS):
        subprocess.run(
            [*kubectl, "create", "-n", NS, "-f", "-"],
            input=json.dumps(manifest(resource, i)).encode(),
            check=True,
            capture_output=True,
        )
    return server


async def drive(
    server: Server,
    token: str,
    clients: int,
    requests: int,
    name: str,
    backoff: bool,
    resource: str,
) -> Result:
    ctx = ssl.create_default_context(cafile=str(server.data_dir / "server" / "tls" / "ca.crt"))
    result = Result(name, clients, backoff)
    url = f"{server.url}/api/v1/namespaces/{NS}/{resource}"
    headers = {"Authorization": f"Bearer {token}"}
    light_headers = {"Authorization": f"Bearer {token}-light"}
    counter = iter(range(requests))
    done = asyncio.Event()
    connector = aiohttp.TCPConnector(ssl=ctx, limit=clients)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client() -> None:
            for _ in counter:
                t = time.perf_counter()
                async with session.get(url, headers=headers) as resp:
                    await resp.read()
                    took = time.perf_counter() - t
                    if resp.status == 200:
                        result.latencies.append(took)
                    elif resp.status == 429:
                        result.rejected += 1
                        retry_after = resp.headers.get("Retry-After")
                        result.rejected_with_retry_after += (retry_after or "").isdigit()
                        if backoff and retry_after:
                            await asyncio.sleep(float(retry_after))
                    else:
                        result.other[resp.status] = result.other.get(resp.status, 0) + 1

        async def light() -> None:
            while not done.is_set():
                t = time.perf_counter()
                async with session.get(url, headers=light_headers) as resp:
                    await resp.read()
                    if resp.status == 200:
                        result.light.append(time.perf_counter() - t)
                    else:
                        await asyncio.sleep(float(resp.headers.get("Retry-After") or 1))

        async def flood() -> None:
            await asyncio.gather(*(client() for _ in range(clients)))
            done.set()

        # open every connection first, so the TLS handshakes are not what is measured
        await asyncio.gather(
            *(session.get(f"{server.url}/readyz") for _ in range(clients + LIGHT_CLIENTS))
        )
        begin = time.perf_counter()
        await asyncio.gather(flood(), *(light() for _ in range(LIGHT_CLIENTS)))
        result.seconds = time.perf_counter() - begin
    return result


def cpu_seconds(pid: int) -> float:
    """A process's user + system CPU time so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Buckets = dict[float, float]


def histograms(server: Server, resource: str) -> tuple[Buckets, Buckets]:
    """Cumulative counts by bound of the server's latency histogram of ``resource`` lists and of
    APF's queue wait of executed requests (summed over flows), from /metrics."""
    text = subprocess.run(
        [KUBECTL, "--kubeconfig", str(server.kubeconfig), "get", "--raw", "/metrics"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    lists: Buckets = {}
    waits: Buckets = {}
    for line in text.splitlines():
        if line.startswith("apiserver_request_duration_seconds_bucket{"):
            if f'resource="{resource}"' not in line or 'verb="list"' not in line:
                continue
            into = lists
        elif line.startswith("apiserver_flowcontrol_request_wait_duration_seconds_bucket{"):
            if 'execute="true"' not in line:
                continue
            into = waits
        else:
            continue
        labels, value = line.rsplit(" ", 1)
        bound = float(labels.split('le="', 1)[1].split('"', 1)[0])
        into[bound] = into.get(bound, 0.0) + float(value)
    return lists, waits


def bucket_of(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The smallest bucket bound under which a fraction ``q`` of the new requests fell."""
    delta = {b: after[b] - before.get(b, 0.0) for b in sorted(after)}
    total = delta.get(float("inf"), 0.0)
    for bound, count in delta.items():
        if total and count >= q * total:
            return bound
    return float("nan")


def table(results: list[Result], requests: int) -> str:
    out = [
        "| server | after a 429 | clients | requests | admitted | rejected (429) | every 429 had "
        "Retry-After | admitted p50 ms | admitted p99 ms | server p50 ms ≤ | server p99 ms ≤ "
        "| APF queue wait p99 ms ≤ | requests/s | light p99 ms | server CPU ms/request |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        every = "yes" if r.rejected_with_retry_after == r.rejected else "NO"
        other = f" (+{r.other})" if r.other else ""
        out.append(
            f"| {r.server} | {'Retry-After' if r.backoff else 'no back-off'} | {r.clients} | "
            f"{requests} | {len(r.latencies)}{other} | "
            f"{r.rejected} | {every} | {r.pct(0.5):.1f} | {r.pct(0.99):.1f} | "
            f"{r.server_p50 * 1000:g} | {r.server_p99 * 1000:g} | "
            f"{'-' if r.queue_p99 != r.queue_p99 else f'{r.queue_p99 * 1000:g}'} | "
            f"{requests / r.seconds:,.0f} | "
            f"{r.pct(0.99, light=True):.1f} | "
            f"{r.server_cpu * 1000 / (requests + len(r.light)):.2f} |"
        )
    return "\n".join(out)


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", default="50,200,500", help="comma-separated client counts")
    p.add_argument("--requests", type=int, default=3000, help="requests per row")
    p.add_argument(
        "--servers",
        default="apf,filter,none",
        help="which servers, in order: apf (limit 50, APF on), filter (limit 50, APF off), "
        "none (no limit, the baseline)",
    )
    p.add_argument(
        "--backoff",
        default="no,yes",
        help="which client behaviours after a 429: no (straight on), yes (wait Retry-After)",
    )
    p.add_argument("--baseline", default="", help="git revision measured first, same run")
    p.add_argument(
        "--resource",
        choices=("configmaps", "events"),
        default="configmaps",
        help="what the clients list: configmaps (from the watch cache) or events (from the "
        "store, on a thread: the request holds its slot across that wait)",
    )
    args = p.parse_args()
    counts = [int(c) for c in args.clients.split(",") if c]
    backoffs = [b == "yes" for b in args.backoff.split(",") if b]
    token = uuid.uuid4().hex
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-inflight-") as tmp:
        configs = {
            "apf": (50, True, "limit 50, APF"),
            "filter": (50, False, "limit 50, APF off"),
            "none": (0, False, "no limit (0, APF off)"),
        }
        codes: list[tuple[str, Path | None]] = [("", None)]
        if args.baseline:
            src = revision_src(args.baseline, Path(tmp) / "baseline")
            codes.insert(0, (f" @{args.baseline}", src))
        for suffix, src in codes:
            for key in args.servers.split(","):
                limit, apf, name = configs[key]
                base = Path(tmp) / f"{key}{suffix.strip(' @')}"
                base.mkdir()
                server = start(base, limit, apf, token, src, args.resource)
                try:
                    for backoff, clients in [(b, c) for b in backoffs for c in counts]:
                        if backoff and not limit and False in backoffs:
                            continue  # nothing is rejected: the same run as without
                        before, waits_before = histograms(server, args.resource)
                        cpu = cpu_seconds(server.proc.pid)
                        result = await drive(
                            server,
                            token,
                            clients,
                            args.requests,
                            name + suffix,
                            backoff,
                            args.resource,
                        )
                        result.server_cpu = cpu_seconds(server.proc.pid) - cpu
                        after, waits_after = histograms(server, args.resource)
                        result.server_p50 = bucket_of(before, after, 0.5)
                        result.server_p99 = bucket_of(before, after, 0.99)
                        if apf:
                            result.queue_p99 = bucket_of(waits_before, waits_after, 0.99)
                        results.append(result)
                finally:
                    server.stop()
    print(table(results, args.requests))


if __name__ == "__main__":
    asyncio.run(main())
