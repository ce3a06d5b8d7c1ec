"""DNS tests reuse the controller tests' fixtures (a real API server process, a client, a
fresh namespace per test) and add a fake upstream resolver on loopback, so forwarding is
tested without the internet."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import cast

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from pyk8s.dns.forward import Upstream
from tests.controllers.conftest import client, cm_server, namespace

__all__ = ["FakeUpstream", "client", "cm_server", "namespace", "upstream"]

UPSTREAM_ADDRESS = "192.0.2.53"


@dataclass
class FakeUpstream:
    """Answers every A question with 192.0.2.53 (NXDOMAIN for names starting ``nx``) and
    records the questions it saw."""

    address: Upstream
    seen: list[str] = field(default_factory=list)

    def reply(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        q = query.question[0]
        self.seen.append(q.name.to_text().lower())
        response = dns.message.make_response(query, recursion_available=True)
        if q.name.to_text().startswith("nx"):
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif q.rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text(q.name, 60, "IN", "A", UPSTREAM_ADDRESS))
        return response.to_wire()


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, fake: FakeUpstream) -> None:
        self.fake = fake
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(self.fake.reply(data), addr)


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    loop = asyncio.get_running_loop()
    fake = FakeUpstream(Upstream("127.0.0.1", 0))

    async def serve_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            size = int.from_bytes(await reader.readexactly(2), "big")
            out = fake.reply(await reader.readexactly(size))
            writer.write(len(out).to_bytes(2, "big") + out)
            await writer.drain()
        writer.close()

    for _ in range(10):  # a UDP port whose TCP twin is free too
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UDP(fake), local_addr=("127.0.0.1", 0)
        )
        port = transport.get_extra_info("sockname")[1]
        try:
            tcp = await asyncio.start_server(serve_tcp, "127.0.0.1", port)
            break
        except OSError:
            transport.close()
    else:
        pytest.fail("no port free for both UDP and TCP")
    fake.address = Upstream("127.0.0.1", port)
    try:
        yield fake
    finally:
        transport.close()
        tcp.close()
