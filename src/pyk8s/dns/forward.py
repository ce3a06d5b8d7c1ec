"""Forwarding what is not a cluster name to upstream resolvers (CoreDNS's ``forward``).

Upstreams default to the ``nameserver`` lines of the host's ``/etc/resolv.conf``, as a
``forward . /etc/resolv.conf`` Corefile does. A question goes to each upstream in turn,
each with its own timeout, over the protocol the client used (a truncated UDP answer is
passed on as it is: the client retries over TCP, and so do we); ``None`` after all failed
tells the server to answer SERVFAIL. dnspython does the wire format and matches answers to
questions.

Over UDP each upstream gets one long-lived socket, as CoreDNS keeps connections to its
upstreams: questions are sent with an ID not in flight on that socket and answers are
matched back by ID and question. A new socket per question costs more than the question.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import dns.asyncquery
import dns.exception
import dns.message

__all__ = ["Forwarder", "Upstream", "nameservers", "parse_upstream"]

log = logging.getLogger(__name__)

RESOLV_CONF = Path("/etc/resolv.conf")
DEFAULT_TIMEOUT = 2.0


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int = 53

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_upstream(text: str) -> Upstream:
    """``1.1.1.1``, ``1.1.1.1:5353``, ``fd00::1``, ``[fd00::1]:5353`` → :class:`Upstream`."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else 53
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    else:
        host, port = text, 53
    ipaddress.ip_address(host.split("%")[0])  # a resolver is an address, not a name
    if not 0 < port < 65536:
        raise ValueError(f"invalid upstream port in {text!r}")
    return Upstream(host, port)


def nameservers(path: Path = RESOLV_CONF) -> list[Upstream]:
    """The ``nameserver`` addresses of a resolv.conf (empty when it has none or is missing)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    out: list[Upstream] = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                out.append(parse_upstream(fields[1]))
            except ValueError:
                log.warning("ignoring nameserver %r in %s", fields[1], path)
    return out


class _Channel(asyncio.DatagramProtocol):
    """One connected UDP socket to an upstream, with the questions in flight on it."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[int, tuple[dns.message.Message, asyncio.Future[dns.message.Message]]]
        self.pending = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            response = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return
        entry = self.pending.get(response.id)
        if entry is not None and entry[0].is_response(response) and not entry[1].done():
            entry[1].set_result(response)

    def error_received(self, exc: Exception) -> None:
        self._fail(exc)  # e.g. ICMP port unreachable: nobody listens there

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(exc or ConnectionError("upstream socket closed"))

    def _fail(self, exc: Exception) -> None:
        for _, future in self.pending.values():
            if not future.done():
                future.set_exception(exc)

    async def ask(self, query: dns.message.Message) -> dns.message.Message:
        """The answer to ``query`` (the caller bounds the wait)."""
        if self.transport is None or len(self.pending) >= 60_000:
            raise ConnectionError("upstream socket closed or full")
        qid = random.randrange(65536)
        while qid in self.pending:
            qid = random.randrange(65536)
        sent = copy.copy(query)  # the caller keeps its ID
        sent.id = qid
        future: asyncio.Future[dns.message.Message] = asyncio.get_running_loop().create_future()
        self.pending[qid] = (sent, future)
        try:
            self.transport.sendto(sent.to_wire())
            return await future
        finally:
            del self.pending[qid]


class Forwarder:
    """Ask upstream resolvers, in order, until one answers."""

    def __init__(self, upstreams: Iterable[Upstream], timeout: float = DEFAULT_TIMEOUT) -> None:
        self.upstreams = list(upstreams)
        self.timeout = timeout
        self._channels: dict[Upstream, _Channel] = {}

    async def forward(
        self, query: dns.message.Message, tcp: bool = False
    ) -> dns.message.Message | None:
        """The first upstream answer to ``query`` (its ID kept), or None if none answered."""
        for upstream in self.upstreams:
            try:
                return await self._ask(upstream, query, tcp)
            except (dns.exception.DNSException, OSError, ValueError, TimeoutError) as err:
                log.debug("upstream %s failed: %r", upstream, err)
        return None

    async def _ask(
        self, upstream: Upstream, query: dns.message.Message, tcp: bool
    ) -> dns.message.Message:
        if tcp:
            host, port = upstream.host, upstream.port
            return await dns.asyncquery.tcp(query, host, timeout=self.timeout, port=port)
        channel = self._channels.get(upstream)
        if channel is None or channel.transport is None:
            loop = asyncio.get_running_loop()
            _, channel = await loop.create_datagram_endpoint(
                _Channel, remote_addr=(upstream.host, upstream.port)
            )
            self._channels[upstream] = channel
        async with asyncio.timeout(self.timeout):
            return await channel.ask(query)

    def close(self) -> None:
        for channel in self._channels.values():
            if channel.transport is not None:
                channel.transport.close()
        self._channels.clear()
