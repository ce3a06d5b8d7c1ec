"""The pieces of joining a server and of agents' failover, without starting servers.

* The server bootstrap endpoint hands the shared keys only to the server token: an
  agent's join token (which every node holds) and a wrong secret get 401, and a join
  with an agent token is refused before anything is asked.
* An etcd endpoint carries its client TLS files in the query.
* The agent's load balancer sends new connections to the next server when the current
  one refuses them, and closes open connections to a server whose listener is gone.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ssl
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from pyk8s.apiserver.certs import ensure_pki, server_ssl_context
from pyk8s.client.loadbalancer import LoadBalancer
from pyk8s.server import bootstrap
from pyk8s.server.agent import JoinError
from pyk8s.storage.endpoint import parse_endpoint, with_tls


def test_etcd_endpoint_carries_client_tls() -> None:
    url = with_tls("https://127.0.0.1:2379", "/d/ca.crt", "/d/c.crt", "/d/c.key")
    ep = parse_endpoint(url)
    assert ep.kind == "etcd" and ep.hosts == (("127.0.0.1", 2379),)
    assert ep.tls is not None
    assert (ep.tls.ca_file, ep.tls.cert_file, ep.tls.key_file) == (
        "/d/ca.crt",
        "/d/c.crt",
        "/d/c.key",
    )
    assert parse_endpoint("etcd://a:1,b:2").tls is None


async def _serve(data_dir: Path) -> tuple[web.AppRunner, str]:
    pki = ensure_pki(data_dir / "server", hostnames=[], ips=["127.0.0.1"])
    (data_dir / "server" / "token").write_text("abcdef.0123456789abcdef\n")
    bootstrap.ensure_server_token(data_dir, pki.ca_cert)

    async def cacerts(_: web.Request) -> web.Response:
        return web.Response(body=pki.ca_cert.read_bytes())

    app = web.Application()
    app.router.add_get("/cacerts", cacerts)
    app.router.add_get(
        bootstrap.SERVER_BOOTSTRAP_PATH, bootstrap.handler(data_dir, "https://127.0.0.1:2379")
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(pki))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"https://127.0.0.1:{port}"


def test_bootstrap_is_for_the_server_token_only(tmp_path: Path) -> None:
    first, joining = tmp_path / "first", tmp_path / "joining"

    async def run() -> None:
        runner, url = await _serve(first)
        try:
            token = (first / "server" / "server-token").read_text().strip()
            ctx = ssl.create_default_context(cafile=str(first / "server" / "tls" / "ca.crt"))
            async with aiohttp.ClientSession() as session:
                for secret in ("abcdef.0123456789abcdef", "not-the-secret"):  # agent's, wrong
                    auth = base64.b64encode(f"server:{secret}".encode()).decode()
                    async with session.get(
                        url + bootstrap.SERVER_BOOTSTRAP_PATH,
                        ssl=ctx,
                        headers={"Authorization": f"Basic {auth}"},
                    ) as resp:
                        assert resp.status == 401
            digest = hashlib.sha256((first / "server" / "tls" / "ca.crt").read_bytes()).hexdigest()
            with pytest.raises(JoinError, match="needs the server token"):
                await bootstrap.fetch(url, f"K10{digest}::abcdef.0123456789abcdef", joining)
            urls = await bootstrap.fetch(url, token, joining)
            assert urls == ["https://127.0.0.1:2379"]
            for rel in ("tls/ca.crt", "tls/ca.key", "tls/sa.key", "token", "server-token"):
                assert (joining / "server" / rel).read_bytes() == (
                    first / "server" / rel
                ).read_bytes()
        finally:
            await runner.cleanup()

    asyncio.run(run())


async def _echo_server(tag: bytes) -> asyncio.Server:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(100):
            writer.write(tag + data)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(echo, "127.0.0.1", 0)


def test_load_balancer_fails_over_and_drops_connections_to_a_dead_server() -> None:
    async def run() -> None:
        a, b = await _echo_server(b"a:"), await _echo_server(b"b:")
        addr = [f"127.0.0.1:{s.sockets[0].getsockname()[1]}" for s in (a, b)]
        lb = LoadBalancer([addr[0]])
        await lb.start()
        try:
            lb.set_servers(addr)
            reader, writer = await asyncio.open_connection("127.0.0.1", lb.port)
            writer.write(b"x")
            assert await reader.read(100) == b"a:x"
            a.close()  # the listener goes; the open connection stays until the LB drops it
            await a.wait_closed()
            assert await asyncio.wait_for(reader.read(100), 10) == b""  # health check
            assert lb.current == addr[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", lb.port)
            writer.write(b"y")
            assert await reader.read(100) == b"b:y"
            writer.close()
        finally:
            await lb.stop()
            b.close()

    asyncio.run(run())
