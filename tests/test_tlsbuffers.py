"""TLS connections made after :func:`pyk8s.server.tlsbuffers.shrink` read through one
64 KiB buffer their thread shares and encrypt a large write in pieces, and still carry
bodies many times that size intact, both ways (bytes one way, a bytearray back), while
many of them read at once.

Why: every pyk8s process replaces asyncio's per-connection TLS read buffer (256 KiB,
resident for the connection's life; pyk8s keeps one connection per watch) with its
thread's one; a read never returns more than the buffer, so a large LIST arrives in
more, smaller reads, and bytes read for one connection must never reach another.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import os
import ssl
from pathlib import Path

import pytest

from pyk8s.apiserver.certs import ensure_pki
from pyk8s.server import tlsbuffers


async def _echo_large(
    tls: Path, bodies: list[bytes]
) -> tuple[list[bytes], list[bytearray], list[list[int]]]:
    pki = ensure_pki(tls, hostnames=["localhost"], ips=["127.0.0.1"])
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(pki.serving_cert, pki.serving_key)
    client_ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    buffers: list[bytearray] = []
    #: per echo, the sizes the TLS layer handed its socket for the one large write
    writes: list[list[int]] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_protocol = writer.transport._ssl_protocol  # type: ignore[attr-defined]
        buffers.append(ssl_protocol._ssl_buffer)
        size = int.from_bytes(await reader.readexactly(8), "big")
        socket_writes: list[int] = []
        socket = ssl_protocol._transport
        socket_write = socket.write

        def counted_write(data: bytes) -> None:
            socket_writes.append(len(data))
            socket_write(data)

        socket.write = counted_write
        writer.write(bytearray(await reader.readexactly(size)))  # a caller's own buffer
        socket.write = socket_write
        writes.append(socket_writes)
        await writer.drain()
        writer.close()

    async def roundtrip(port: int, body: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
        buffers.append(writer.transport._ssl_protocol._ssl_buffer)  # type: ignore[attr-defined]
        writer.write(len(body).to_bytes(8, "big") + body)
        await writer.drain()
        echoed = await reader.readexactly(len(body))
        writer.close()
        return echoed

    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        echoed = await asyncio.gather(*(roundtrip(port, body) for body in bodies))
        return list(echoed), buffers, writes
    finally:
        server.close()
        await server.wait_closed()


def test_connections_share_a_small_buffer_and_keep_their_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    protocol = asyncio.sslproto.SSLProtocol
    monkeypatch.setattr(protocol, "max_size", protocol.max_size)  # restored afterwards
    monkeypatch.setattr(protocol, "__init__", protocol.__init__)
    monkeypatch.setattr(protocol, "_write_appdata", protocol._write_appdata)  # type: ignore[attr-defined]
    bodies = [os.urandom(1024 * 1024 + i * 4099) for i in range(8)]
    tlsbuffers.shrink()
    echoed, buffers, writes = asyncio.run(_echo_large(tmp_path, bodies))
    assert echoed == bodies
    # each echo was encrypted a record at a time but reached its socket as one write
    assert all(len(sizes) == 1 and sizes[0] > len(bodies[0]) for sizes in writes), writes
    assert len(buffers) == 2 * len(bodies)  # each connection's two ends
    assert {id(b) for b in buffers} == {id(buffers[0])}
    assert len(buffers[0]) == tlsbuffers.READ_BUFFER
