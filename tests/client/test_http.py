"""The client's thin HTTP/1.1 transport (pyk8s.client._http) against a scripted server:
what it must get right that a pyk8s API server never exercises (chunked and gzip bodies,
a closed keep-alive connection, 429 with Retry-After, a connection refused)."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web

from pyk8s.client import ApiError, Client, Config, TransportError, _http


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[str, dict[str, int], list[object]]]:
    """A plain-HTTP aiohttp server with a few scripted paths; (url, requests per path,
    the client address of every request)."""
    counts: dict[str, int] = {}
    seen: list[object] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(request.transport.get_extra_info("peername") if request.transport else None)
        counts[request.path] = counts.get(request.path, 0) + 1
        if request.path == "/chunked":
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for part in (b'{"items": [', b"1, 2, ", b"3]}"):
                await resp.write(part)
            await resp.write_eof()
            return resp
        if request.path == "/gzip":
            body = gzip.compress(b'{"zipped": true}')
            return web.Response(
                body=body,
                headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
            )
        if request.path == "/busy" and counts[request.path] == 1:
            return web.Response(status=429, headers={"Retry-After": "0"}, text="{}")
        if request.path == "/close":
            return web.Response(text='{"closed": 1}', headers={"Connection": "close"})
        if request.path == "/missing":
            status = {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}
            return web.Response(status=404, body=orjson.dumps(status))
        body = await request.read()
        echo = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "body": body.decode(),
            "contentType": request.headers.get("Content-Type"),
        }
        return web.Response(body=orjson.dumps(echo), content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, keepalive_timeout=0.3)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", counts, seen
    finally:
        await runner.cleanup()


async def test_bodies_queries_and_keep_alive(
    scripted: tuple[str, dict[str, int], list[object]],
) -> None:
    url, _, seen = scripted
    async with Client(Config(server=url)) as c:
        query = {"labelSelector": "app in (a,b)"}
        got = await c.request("POST", "/a b/x", params=query, body={"k": 1})
        assert got == {
            "method": "POST",
            "path": "/a b/x",
            "query": {"labelSelector": "app in (a,b)"},
            "body": '{"k":1}',
            "contentType": "application/json",
        }
        for _ in range(3):
            assert (await c.request("GET", "/plain"))["method"] == "GET"
        assert await c.request("GET", "/chunked") == {"items": [1, 2, 3]}
        assert await c.request("GET", "/gzip") == {"zipped": True}
    # one connection served them all, one request after another
    assert len(seen) == 6 and len(set(seen)) == 1


async def test_a_closed_connection_is_not_reused(
    scripted: tuple[str, dict[str, int], list[object]],
) -> None:
    url, counts, _ = scripted
    async with Client(Config(server=url)) as c:
        assert await c.request("GET", "/close") == {"closed": 1}
        assert (await c.request("GET", "/after"))["path"] == "/after"
        # the server's keep-alive timeout (0.3 s) closes the idle connection: the next
        # request opens another one instead of failing on the dead one
        await _until_closed(c)
        assert (await c.request("PUT", "/later", body=b"x"))["body"] == "x"
    assert counts == {"/close": 1, "/after": 1, "/later": 1}


async def test_an_idle_connection_is_closed_after_the_keepalive(
    scripted: tuple[str, dict[str, int], list[object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As aiohttp's connector did: an idle component holds no connection for a client it
    made requests with a while ago."""
    url, _, seen = scripted
    monkeypatch.setattr(_http, "KEEPALIVE", 0.2)
    async with Client(Config(server=url)) as c:
        await c.request("GET", "/one")
        pool = c._pool
        assert pool is not None and len(pool._idle) == 1
        ((conn, _),) = pool._idle
        for _ in range(100):  # bounded: the sweep runs 0.2 s after the request
            if not pool._idle:
                break
            await asyncio.sleep(0.05)
        assert not pool._idle, "the idle connection was never closed"
        await asyncio.sleep(0)  # the transport's close completes on the next loop turn
        assert conn.transport is None or conn.transport.is_closing()
        assert (await c.request("GET", "/two"))["path"] == "/two"  # a new connection
        assert seen[0] != seen[1]


async def _until_closed(c: Client) -> None:
    """Wait (bounded) until the pool's idle connection has seen the server close it."""
    pool = c._pool
    assert pool is not None
    for _ in range(100):
        if all(conn.closed for conn, _ in pool._idle):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the server never closed the idle connection")


async def test_429_is_retried_and_errors_are_api_errors(
    scripted: tuple[str, dict[str, int], list[object]],
) -> None:
    url, counts, _ = scripted
    async with Client(Config(server=url)) as c:
        assert (await c.request("POST", "/busy", body={}))["path"] == "/busy"
        assert counts["/busy"] == 2  # the 429 said "not processed": sent again
        with pytest.raises(ApiError) as err:
            await c.request("GET", "/missing")
        assert err.value.status == 404 and err.value.reason == "NotFound"


async def test_refused_connection_is_a_transport_error_after_retries() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        async with Client(Config(server=f"http://127.0.0.1:{port}"), max_retries=1) as c:
            with pytest.raises(TransportError):
                await c.request("POST", "/x", body={})
