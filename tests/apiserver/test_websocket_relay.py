"""The WebSocket relay to the kubelet without a kubelet: a fake WebSocket kubelet (aiohttp)
on one side, an aiohttp client on the other. No root, no containerd (the e2e side is
tests/kubelet/test_websocket_streaming.py)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from pyk8s.api import errors
from pyk8s.apiserver import kubeletproxy

KubeletHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _serve(handler: KubeletHandler, path: str = "/{tail:.*}") -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, int(runner.addresses[0][1])


@pytest.fixture
async def relay() -> AsyncIterator[Callable[[KubeletHandler], Awaitable[str]]]:
    """Start a fake kubelet with the given handler; returns the URL of an API-server-side
    endpoint that relays every WebSocket to it (with the query ``port=1``)."""
    runners: list[web.AppRunner] = []

    async def start(kubelet_handler: KubeletHandler) -> str:
        kubelet_runner, kubelet_port = await _serve(kubelet_handler)
        runners.append(kubelet_runner)
        kubelet = kubeletproxy._Kubelet("127.0.0.1", kubelet_port, None)

        async def handler(request: web.Request) -> web.StreamResponse:
            return await kubeletproxy._relay_websocket(
                request, kubelet, "/portForward/ns/pod", [("port", "1")]
            )

        runner, port = await _serve(handler, "/relay")
        runners.append(runner)
        return f"http://127.0.0.1:{port}/relay"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_messages_keep_their_type_and_the_kubelet_picks_the_protocol(
    relay: Callable[[KubeletHandler], Awaitable[str]],
) -> None:
    seen: dict[str, object] = {}

    async def kubelet(request: web.Request) -> web.WebSocketResponse:
        seen["path"], seen["query"] = request.path, request.query_string
        ws = web.WebSocketResponse(protocols=("v4.base64.channel.k8s.io",))
        await ws.prepare(request)
        async for msg in ws:  # echo, with the frame type the client used
            if msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str("echo:" + msg.data)
            elif msg.data == b"bye":
                await ws.close(code=4000, message=b"done")
            else:
                await ws.send_bytes(b"echo:" + msg.data)
        return ws

    url = await relay(kubelet)
    async with (
        asyncio.timeout(10),
        aiohttp.ClientSession() as http,
        http.ws_connect(url, protocols=["v4.channel.k8s.io", "v4.base64.channel.k8s.io"]) as ws,
    ):
        assert ws.protocol == "v4.base64.channel.k8s.io"
        await ws.send_str("0aGk=")
        msg = await ws.receive()
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.TEXT, "echo:0aGk=")
        await ws.send_bytes(b"\x00\xff")
        msg = await ws.receive()
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.BINARY, b"echo:\x00\xff")
        await ws.send_bytes(b"bye")
        msg = await ws.receive()
        assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 4000
    assert seen == {"path": "/portForward/ns/pod", "query": "port=1"}


async def test_no_subprotocol_offered_none_chosen(
    relay: Callable[[KubeletHandler], Awaitable[str]],
) -> None:
    offered: list[str | None] = []

    async def kubelet(request: web.Request) -> web.WebSocketResponse:
        offered.append(request.headers.get("Sec-WebSocket-Protocol"))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_bytes(b"\x00\x01\x00")
        await ws.close()
        return ws

    url = await relay(kubelet)
    async with asyncio.timeout(10), aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        assert ws.protocol is None
        assert (await ws.receive()).data == b"\x00\x01\x00"
        assert (await ws.receive()).type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == aiohttp.WSCloseCode.OK
    assert offered == [None]


async def test_a_refusal_is_passed_on_as_the_kubelet_wrote_it(
    relay: Callable[[KubeletHandler], Awaitable[str]],
) -> None:
    async def kubelet(request: web.Request) -> web.Response:
        return web.Response(status=400, text='query parameter "port" is required')

    url = await relay(kubelet)
    async with asyncio.timeout(10), aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await http.ws_connect(url, protocols=["v4.channel.k8s.io"])
        assert caught.value.status == 400
        # the body, read with a plain upgrade request the same way
        headers = {
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        }
        async with http.get(url, headers=headers) as resp:
            assert resp.status == 400
            assert resp.content_type == "text/plain"
            assert await resp.text() == 'query parameter "port" is required'


async def test_an_unreachable_kubelet_is_an_internal_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connection refused
        kubelet = kubeletproxy._Kubelet("127.0.0.1", port, None)
        request = _websocket_request()
        with pytest.raises(errors.StatusError) as caught:
            await kubeletproxy._relay_websocket(request, kubelet, "/exec/a/b/c", [])
    assert caught.value.code == 500
    assert f'error dialing kubelet at "http://127.0.0.1:{port}/exec/a/b/c"' in str(
        caught.value.message
    )


def _websocket_request(query: str = "") -> web.Request:
    return make_mocked_request(
        "GET",
        f"/api/v1/namespaces/ns/pods/p/portforward{query}",
        headers={
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Protocol": "v5.channel.k8s.io, v4.channel.k8s.io",
        },
    )


def test_offered_protocols_and_websocket_detection() -> None:
    request = _websocket_request()
    assert kubeletproxy._offered_protocols(request) == ["v5.channel.k8s.io", "v4.channel.k8s.io"]
    assert kubeletproxy._is_websocket(request)
    assert not kubeletproxy._is_websocket(make_mocked_request("POST", "/x"))


@pytest.mark.parametrize(
    ("query", "ports"),
    [("", []), ("?ports=80", [80]), ("?ports=80,8080&ports=9000", [80, 8080, 9000])],
)
def test_portforward_ports(query: str, ports: list[int]) -> None:
    assert kubeletproxy._portforward_ports(_websocket_request(query)) == ports


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("x", 'parsing "x": invalid syntax'),
        ("80,", 'parsing "": invalid syntax'),
        ("+80", 'parsing "+80": invalid syntax'),
        ("65536", 'parsing "65536": value out of range'),
    ],
)
def test_portforward_ports_upstream_errors(value: str, problem: str) -> None:
    request = _websocket_request("?" + urlencode({"ports": value}))
    with pytest.raises(errors.StatusError) as caught:
        kubeletproxy._portforward_ports(request)
    assert caught.value.code == 400
    assert caught.value.message == f"cannot convert to []int32: strconv.ParseUint: {problem}"
