"""The exec translation without a kubelet: a v5 WebSocket client on one side, a fake
SPDY kubelet (built on our framer) on the other. No root, no containerd, no kubectl."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from aiohttp import web

from pyk8s.api import errors
from pyk8s.apiserver import kubeletproxy, spdy

EXIT_3 = {
    "metadata": {},
    "status": "Failure",
    "message": "command terminated with non-zero exit code",
    "reason": "NonZeroExitCode",
    "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
}


class FakeKubelet:
    """Accepts one SPDY upgrade, echoes stdin to stdout and ends with exit code 3."""

    def __init__(self, answer: bytes = b"HTTP/1.1 101 Switching Protocols\r\n\r\n") -> None:
        self.answer = answer
        self.request_head = b""
        self.stream_types: dict[int, str] = {}
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.request_head = await reader.readuntil(b"\r\n\r\n")
        writer.write(self.answer)
        if not self.answer.startswith(b"HTTP/1.1 101"):
            writer.close()
            return
        framer, frames = spdy.Framer(), spdy.FrameReader()
        writer.write(spdy.ping(2))  # the client must answer pings and carry on
        by_type: dict[str, int] = {}
        while data := await reader.read(65536):
            for frame in frames.feed(data):
                if isinstance(frame, spdy.ControlFrame) and frame.type == spdy.SYN_STREAM:
                    kind = framer.headers_of(frame)["streamtype"][0]
                    self.stream_types[frame.stream_id] = kind
                    by_type[kind] = frame.stream_id
                    writer.write(framer.syn_reply(frame.stream_id, {}))
                elif isinstance(frame, spdy.DataFrame) and frame.stream_id == by_type.get("stdin"):
                    writer.write(spdy.data_frame(by_type["stdout"], frame.data))
                    if frame.fin:  # stdin's EOF: the "process" ends
                        writer.write(spdy.data_frame(by_type["stderr"], b"bye", fin=True))
                        writer.write(spdy.data_frame(by_type["stdout"], b"", fin=True))
                        writer.write(spdy.data_frame(by_type["error"], orjson.dumps(EXIT_3)))
                        writer.write(spdy.data_frame(by_type["error"], b"", fin=True))
                        await writer.drain()
                        writer.close()
                        return
            await writer.drain()


@pytest.fixture
async def bridge_url() -> AsyncIterator[tuple[str, FakeKubelet]]:
    """A WebSocket endpoint that bridges every session to a fresh fake kubelet."""
    fake = FakeKubelet()
    async with fake as port:
        kubelet = kubeletproxy._Kubelet("127.0.0.1", port, None)

        async def handler(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse(protocols=kubeletproxy.EXEC_WS_PROTOCOLS)
            await ws.prepare(request)
            reader, writer = await kubeletproxy._spdy_upgrade(
                kubelet,
                "/exec/ns/pod/c",
                [("command", "cat"), ("input", "1"), ("output", "1"), ("error", "1")],
                kubeletproxy.EXEC_SPDY_PROTOCOL,
            )
            channels = [kubeletproxy.ERROR, kubeletproxy.STDIN]
            channels += [kubeletproxy.STDOUT, kubeletproxy.STDERR]
            try:
                await kubeletproxy._ExecBridge(ws, reader, writer, channels).run()
            finally:
                writer.close()
                await ws.close()
            return ws

        app = web.Application()
        app.router.add_get("/exec", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            yield f"http://127.0.0.1:{runner.addresses[0][1]}/exec", fake
        finally:
            await runner.cleanup()


async def test_v5_exec_session_is_translated(bridge_url: tuple[str, FakeKubelet]) -> None:
    url, fake = bridge_url
    received: dict[int, bytes] = {}
    async with (
        asyncio.timeout(10),
        aiohttp.ClientSession() as http,
        http.ws_connect(url, protocols=["v5.channel.k8s.io"]) as ws,
    ):
        assert ws.protocol == "v5.channel.k8s.io"
        await ws.send_bytes(b"\x00hello ")
        await ws.send_bytes(b"\x00world")
        await ws.send_bytes(bytes([255, 0]))  # v5: close stdin
        async for msg in ws:
            assert msg.type == aiohttp.WSMsgType.BINARY
            received[msg.data[0]] = received.get(msg.data[0], b"") + msg.data[1:]
    assert received[1] == b"hello world"
    assert received[2] == b"bye"
    assert orjson.loads(received[3])["details"]["causes"][0]["message"] == "3"
    # what the kubelet was asked for: a SPDY upgrade with the v4 stream protocol
    head = fake.request_head.decode()
    assert head.startswith("POST /exec/ns/pod/c?command=cat&input=1&output=1&error=1 HTTP/1.1")
    assert "Upgrade: SPDY/3.1\r\n" in head
    assert "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n" in head
    assert sorted(fake.stream_types.values()) == ["error", "stderr", "stdin", "stdout"]
    assert fake.stream_types[1] == "error"  # created first, as upstream's client does


@pytest.mark.parametrize(
    ("answer", "code", "text"),
    [
        (b"HTTP/1.1 404 Not Found\r\nContent-Length: 13\r\n\r\nno such thing", 404, "no such"),
        (b"HTTP/1.1 400 Bad Request\r\n\r\nbad", 400, "bad"),
        (b"garbage", 500, "error dialing kubelet"),
    ],
)
async def test_refused_upgrade_becomes_a_status(answer: bytes, code: int, text: str) -> None:
    async with asyncio.timeout(20), FakeKubelet(answer) as port:
        kubelet = kubeletproxy._Kubelet("127.0.0.1", port, None)
        with pytest.raises(errors.StatusError) as caught:
            await kubeletproxy._spdy_upgrade(kubelet, "/exec/a/b/c", [], "v4.channel.k8s.io")
    assert caught.value.code == code and text in caught.value.message


async def test_unreachable_kubelet() -> None:
    async with asyncio.timeout(20):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # bound, never listening: connection refused
            kubelet = kubeletproxy._Kubelet("127.0.0.1", port, None)
            with pytest.raises(errors.StatusError) as caught:
                await kubeletproxy._spdy_upgrade(kubelet, "/portForward/a/b", [], "x")
    assert caught.value.code == 500
    assert f'error dialing kubelet at "http://127.0.0.1:{port}/portForward/a/b"' in str(
        caught.value.message
    )
