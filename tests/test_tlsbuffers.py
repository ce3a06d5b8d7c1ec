"""A TLS connection made after :func:`pyk8s.server.tlsbuffers.shrink` reads through a
64 KiB buffer and still carries a body many times that size intact, both ways.

Why: every pyk8s process shrinks asyncio's per-connection TLS read buffer (256 KiB,
resident for the connection's life; pyk8s keeps one connection per watch); a read
never returns more than the buffer, so a large LIST arrives in more, smaller reads.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import os
import ssl
from pathlib import Path

from pyk8s.apiserver.certs import ensure_pki
from pyk8s.server import tlsbuffers


async def _echo_large(tls: Path, body: bytes) -> tuple[bytes, list[int]]:
    pki = ensure_pki(tls, hostnames=["localhost"], ips=["127.0.0.1"])
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(pki.serving_cert, pki.serving_key)
    client_ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    buffers: list[int] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_protocol = writer.transport._ssl_protocol  # type: ignore[attr-defined]
        buffers.append(len(ssl_protocol._ssl_buffer))
        writer.write(await reader.readexactly(len(body)))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
        buffers.append(len(writer.transport._ssl_protocol._ssl_buffer))  # type: ignore[attr-defined]
        writer.write(body)
        await writer.drain()
        echoed = await reader.readexactly(len(body))
        writer.close()
        return echoed, buffers
    finally:
        server.close()
        await server.wait_closed()


def test_small_read_buffers_carry_a_large_body(tmp_path: Path) -> None:
    default = asyncio.sslproto.SSLProtocol.max_size
    body = os.urandom(5 * 1024 * 1024)
    try:
        tlsbuffers.shrink()
        echoed, buffers = asyncio.run(_echo_large(tmp_path, body))
    finally:
        asyncio.sslproto.SSLProtocol.max_size = default
    assert echoed == body
    assert buffers == [tlsbuffers.READ_BUFFER, tlsbuffers.READ_BUFFER]
