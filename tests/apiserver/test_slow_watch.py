"""A watch whose client stops reading is terminated, and it costs the others nothing.

An in-process API server over SQLite with a small per-watch buffer. One client opens a
watch on a raw socket and never reads; another watches normally while configmaps of
64 KiB are created. The reading client gets every event; the stalled watch is ended as
upstream's cacher ends an unresponsive watcher (``apiserver_terminated_watchers_total``),
and when its client finally reads, it finds a prefix of the events and a cleanly ended
stream, and a re-watch from the last resourceVersion it saw delivers exactly the rest.
Over plain HTTP and over TLS (the API server's own listener: the stream's end must get
through the TLS layer's buffers as well).
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, TCPConnector, web

from pyk8s.apiserver.certs import ensure_pki, server_ssl_context
from pyk8s.apiserver.server import APIServer, Config
from pyk8s.storage.sqlite import SqliteStore

NS = "default"
OBJECTS = 160
PAYLOAD = "x" * 64 * 1024


@dataclass
class Endpoint:
    address: str
    port: int
    #: the client's TLS context (None: plain HTTP)
    tls: ssl.SSLContext | None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address}:{self.port}"


@pytest.fixture(params=["http", "https"])
async def apiserver(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Endpoint]:
    server_tls = client_tls = None
    if request.param == "https":
        pki = ensure_pki(tmp_path / "pki", hostnames=["localhost"], ips=["127.0.0.1"])
        server_tls = server_ssl_context(pki)
        client_tls = ssl.create_default_context(cafile=str(pki.ca_cert))
    store = await SqliteStore.open(tmp_path / "state.db")
    server = APIServer(store, config=Config(compact_interval=0))
    server.cache.watcher_buffer = 16
    await server.start()
    runner = web.AppRunner(server.app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls)
    await site.start()
    try:
        yield Endpoint("127.0.0.1", runner.addresses[0][1], client_tls)
    finally:
        await server.stop()
        await runner.cleanup()
        await store.close()


def dechunk(raw: bytes) -> tuple[bytes, bool]:
    """An HTTP/1.1 chunked response's body, and whether its last chunk came."""
    _, _, rest = raw.partition(b"\r\n\r\n")
    body = b""
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return body, True
        body, rest = body + rest[:size], rest[size + 2 :]
    return body, False


def names(body: bytes) -> list[tuple[str, str]]:
    out = []
    for line in body.splitlines():
        ev = json.loads(line)
        meta = ev["object"]["metadata"]
        out.append((meta["name"], meta["resourceVersion"]))
    return out


async def test_a_client_that_stops_reading_is_cut_off_and_the_others_get_every_event(
    apiserver: Endpoint,
) -> None:
    address = f"{apiserver.address}:{apiserver.port}"
    base = f"{apiserver.url}/api/v1/namespaces/{NS}/configmaps"
    async with ClientSession(connector=TCPConnector(ssl=apiserver.tls or False)) as http:
        async with http.get(base) as resp:
            start_rv = (await resp.json())["metadata"]["resourceVersion"]

        # the stalled client: a small receive buffer, and it reads nothing
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (apiserver.address, apiserver.port))
        stalled_reader, stalled_writer = await asyncio.open_connection(
            sock=sock,
            limit=1024,
            ssl=apiserver.tls,
            server_hostname=apiserver.address if apiserver.tls else None,
        )
        stalled_writer.write(
            f"GET /api/v1/namespaces/{NS}/configmaps?watch=true&resourceVersion={start_rv} "
            f"HTTP/1.1\r\nHost: {address}\r\n\r\n".encode()
        )
        await stalled_writer.drain()

        seen: list[str] = []

        async def read_watch() -> None:
            url = f"{base}?watch=true&resourceVersion={start_rv}"
            async with http.get(url) as resp:
                async for line in resp.content:
                    seen.append(json.loads(line)["object"]["metadata"]["name"])
                    if len(seen) == OBJECTS:
                        return

        reader = asyncio.create_task(read_watch())
        created = []
        for i in range(OBJECTS):
            cm: dict[str, Any] = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"cm-{i:03}"},
                "data": {"payload": PAYLOAD},
            }
            async with http.post(base, json=cm) as resp:
                assert resp.status == 201, await resp.text()
                created.append(f"cm-{i:03}")
        await asyncio.wait_for(reader, 60)
        assert seen == created

        async with http.get(f"{apiserver.url}/metrics") as resp:
            metrics = await resp.text()
        assert 'apiserver_terminated_watchers_total{resource="configmaps"} 1.0' in metrics

        # the stalled client reads at last: a prefix of the events, then the stream's end
        raw = b""
        while chunk := await asyncio.wait_for(stalled_reader.read(1 << 20), 30):
            raw += chunk
        stalled_writer.close()
        body, ended = dechunk(raw)
        assert ended, "the terminated watch must end with the last chunk"
        got = names(body)
        assert 0 < len(got) < OBJECTS
        assert [n for n, _ in got] == created[: len(got)]

        # and resumes from the last resourceVersion it saw: exactly the rest
        rest: list[str] = []
        url = f"{base}?watch=true&resourceVersion={got[-1][1]}&timeoutSeconds=30"
        async with http.get(url) as resp:
            async for line in resp.content:
                rest.append(json.loads(line)["object"]["metadata"]["name"])
                if len(rest) == OBJECTS - len(got):
                    break
        assert rest == created[len(got) :]
