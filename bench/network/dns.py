"""Cluster DNS: queries/s and p50/p99 latency of ``pyk8s dns``'s server, next to a trivial
asyncio UDP echo server measured the same way in the same run.

Each server runs in its own process on loopback; this process runs N concurrent clients,
each with its own UDP socket and one query in flight. The DNS server answers from stores
filled with ``--services`` Services (every tenth one headless, with 10 ready endpoints,
all with a named port), the state informers would hold; no API server is involved, so
the numbers are the query path alone. A second DNS server runs without the answer cache
(each query parsed, looked up and encoded) to show the cost of a first-time question.
Forwarded questions go to a fake upstream (another process answering from memory).

    python3 bench/network/dns.py [--services 1000] [--queries 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# run as a script, this file's folder comes first on sys.path and its name would hide dnspython
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

import dns.message  # noqa: E402
import dns.rdatatype  # noqa: E402
import dns.rrset  # noqa: E402
from bench._table import Row, table, timed  # noqa: E402

from pyk8s.client import Store  # noqa: E402
from pyk8s.dns import Catalog, Zone  # noqa: E402
from pyk8s.dns.forward import Forwarder, Upstream  # noqa: E402
from pyk8s.dns.server import DNSServer  # noqa: E402

QUERY_TIMEOUT = 5.0
HTTP = [{"name": "http", "port": 80}]


# ---------------------------------------------------------------------- servers (child processes)


def fill(services: Store, slices: Store, count: int) -> None:
    for i in range(count):
        name, headless = f"svc-{i}", i % 10 == 0
        ip = "None" if headless else f"10.96.{i // 250}.{i % 250 + 1}"
        services.add(
            {
                "metadata": {"name": name, "namespace": "default"},
                "spec": {
                    "clusterIP": ip,
                    "clusterIPs": [ip],
                    "ports": [{"name": "http", "port": 80}],
                },
            }
        )
        if headless:
            slices.add(
                {
                    "metadata": {
                        "name": f"{name}-1",
                        "namespace": "default",
                        "labels": {"kubernetes.io/service-name": name},
                    },
                    "addressType": "IPv4",
                    "endpoints": [
                        {
                            "addresses": [f"10.244.{i // 250}.{j * 25 + i % 25}"],
                            "hostname": f"p-{j}",
                        }
                        for j in range(10)
                    ],
                    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                }
            )


async def serve_dns(port: int, count: int, upstream_port: int, cache: bool) -> None:
    services, slices = Store(), Store()
    fill(services, slices, count)
    forwarder = Forwarder([Upstream("127.0.0.1", upstream_port)], timeout=2.0)
    catalog = Catalog(services, slices, track_changes=cache)  # informers track changes
    server = DNSServer(Zone(catalog), forwarder, "127.0.0.1", port)
    await server.start()
    await asyncio.Event().wait()


class _Echo(asyncio.DatagramProtocol):
    """Echoes datagrams, or (``answer``) answers A questions, remembering each answer by
    the query's bytes after its ID so the fake upstream costs little next to the server."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.transport: asyncio.DatagramTransport | None = None
        self.answers: dict[bytes, bytes] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        if not self.answer:
            self.transport.sendto(data, addr)
            return
        rest = self.answers.get(data[2:])
        if rest is None:
            rest = self.answers[data[2:]] = self._reply(data)[2:]
        self.transport.sendto(data[:2] + rest, addr)

    @staticmethod
    def _reply(wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        q = query.question[0]
        response.answer.append(dns.rrset.from_text(q.name, 60, "IN", "A", "192.0.2.1"))
        return response.to_wire()


async def serve_udp(port: int, answer: bool) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: _Echo(answer), local_addr=("127.0.0.1", port))
    await asyncio.Event().wait()


# ---------------------------------------------------------------------- clients


class _Client(asyncio.DatagramProtocol):
    """One UDP socket with one request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.waiter: asyncio.Future[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(data)

    async def ask(self, wire: bytes) -> bytes:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.sendto(wire)
        return await asyncio.wait_for(self.waiter, QUERY_TIMEOUT)


async def clients(port: int, n: int) -> list[_Client]:
    loop = asyncio.get_running_loop()
    out = []
    for _ in range(n):
        _, proto = await loop.create_datagram_endpoint(_Client, remote_addr=("127.0.0.1", port))
        out.append(proto)
    return out


def wires(names: list[str], qtype: str = "A") -> list[bytes]:
    return [dns.message.make_query(n, qtype).to_wire() for n in names]


async def measure(what: str, port: int, n: int, ops: int, queries: list[bytes]) -> Row:
    pool = await clients(port, n)
    free: asyncio.Queue[_Client] = asyncio.Queue()
    for c in pool:
        free.put_nowait(c)

    async def one(i: int) -> None:
        c = await free.get()
        try:
            reply = await c.ask(queries[i % len(queries)])
            assert reply[:2] == queries[i % len(queries)][:2], "reply to another query"
        finally:
            free.put_nowait(c)

    row = await timed(what, n, ops, one)
    for c in pool:
        assert c.transport is not None
        c.transport.close()
    return row


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_up(port: int, wire: bytes, within: float = 30.0) -> None:
    (c,) = await clients(port, 1)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            try:
                c.waiter = None
                await asyncio.wait_for(c.ask(wire), 0.5)
                return
            except TimeoutError:
                continue
        raise RuntimeError(f"server on port {port} did not come up")
    finally:
        assert c.transport is not None
        c.transport.close()


def spawn(*args: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, "--serve", *map(str, args)])


async def main(services: int, queries: int, concurrency: list[int]) -> None:
    echo, upstream, dns_port, uncached = free_port(), free_port(), free_port(), free_port()
    procs = [
        spawn("echo", echo),
        spawn("upstream", upstream),
        spawn("dns", dns_port, services, upstream, 1),
        spawn("dns", uncached, services, upstream, 0),
    ]
    cluster = [f"svc-{i}.default.svc.cluster.local" for i in range(services) if i % 10]
    headless = [f"svc-{i}.default.svc.cluster.local" for i in range(0, services, 10)]
    srv = [f"_http._tcp.svc-{i}.default.svc.cluster.local" for i in range(services)]
    missing = [f"nope-{i}.default.svc.cluster.local" for i in range(100)]
    outside = [f"host-{i}.example.com" for i in range(100)]
    rows: list[Row] = []
    try:
        await wait_up(echo, b"ping")
        await wait_up(dns_port, wires(cluster[:1])[0])
        await wait_up(uncached, wires(cluster[:1])[0])
        for n in concurrency:
            cases = [
                ("UDP echo (asyncio, baseline)", echo, queries, [b"x" * 40]),
                ("A, ClusterIP", dns_port, queries, wires(cluster)),
                ("A, ClusterIP, answer cache off", uncached, queries, wires(cluster)),
                ("A, headless (10 endpoints)", dns_port, queries, wires(headless)),
                ("SRV, named port", dns_port, queries, wires(srv, "SRV")),
                ("NXDOMAIN", dns_port, queries, wires(missing)),
                ("forwarded (fake upstream)", dns_port, queries // 4, wires(outside)),
            ]
            for what, port, ops, payloads in cases:
                rows.append(await measure(what, port, n, ops, payloads))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
    print(
        f"\n### cluster DNS: UDP on loopback, {services} services, one query in flight per client\n"
    )
    print(table(rows, ms_digits=2))


def serve(argv: list[str]) -> None:
    kind, port = argv[0], int(argv[1])
    if kind == "dns":
        asyncio.run(serve_dns(port, int(argv[2]), int(argv[3]), argv[4] == "1"))
    else:
        asyncio.run(serve_udp(port, answer=kind == "upstream"))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv[2:])
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=20000)
    parser.add_argument("--clients", default="1,10", help="comma-separated client counts")
    args = parser.parse_args()
    asyncio.run(main(args.services, args.queries, [int(c) for c in args.clients.split(",")]))
