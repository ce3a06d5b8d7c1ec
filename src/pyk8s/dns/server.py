"""The DNS server: UDP and TCP listeners answering from a :class:`~pyk8s.dns.records.Zone`
and forwarding the rest.

A UDP question for a cluster name is answered inside ``datagram_received`` (no task, no
await: the zone reads in-memory stores), which keeps the common case cheap; only
forwarded questions become tasks. TCP connections carry length-prefixed messages
(RFC 1035 4.2.2) and may ask several questions each. A UDP answer larger than the
client's limit (512 bytes, or its EDNS payload size) is cut at an RRset boundary with TC
set, so the client asks again over TCP.

When the catalog tracks changes (it does when fed by :class:`ClusterInformers`), UDP
answers from the cluster zone are remembered by the bytes of the query after its ID and
replayed with the new query's ID until the next Service or EndpointSlice change: a
repeated question then costs a dict lookup instead of building and encoding RRsets.

:class:`ClusterInformers` keeps the stores current (SharedInformers over Services and
EndpointSlices); the server is ``healthy()`` once both have synced and it is listening.
Metrics, in the server's CollectorRegistry: requests by protocol and type, responses by
rcode, request duration by where the answer came from, upstream failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
from prometheus_client import CollectorRegistry, Counter, Histogram

from pyk8s.api.dualstack import wildcard_datagram_socket, wildcard_listener
from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import Client, SharedInformer
from pyk8s.dns.catalog import Catalog
from pyk8s.dns.forward import Forwarder
from pyk8s.dns.records import Answer, Zone

__all__ = ["ClusterInformers", "DNSServer"]

log = logging.getLogger(__name__)

SERVICES: Resource = REGISTRY.get("", "v1", "services")  # type: ignore[assignment]
SLICES: Resource = REGISTRY.get("discovery.k8s.io", "v1", "endpointslices")  # type: ignore[assignment]
PODS: Resource = REGISTRY.get("", "v1", "pods")  # type: ignore[assignment]

UDP_MIN_PAYLOAD = 512
TCP_IDLE_TIMEOUT = 10.0
#: tries at finding one port free for both UDP and TCP when asked for port 0
PORT_ATTEMPTS = 10
#: remembered UDP answers at most (the cache is emptied when full)
ANSWER_CACHE_SIZE = 10_000
#: types counted by name in metrics; the rest are "other" (bounded label values)
COUNTED_TYPES = frozenset({"A", "AAAA", "SRV", "PTR", "CNAME", "SOA", "NS", "TXT", "MX", "ANY"})
BUCKETS = (0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256,
           0.512, 1.024, 2.048, 4.096, 8.192)  # fmt: skip


class ClusterInformers:
    """Services and EndpointSlices (and, for ``pods verified``, Pods), listed and
    watched, as a :class:`Catalog`."""

    def __init__(self, client: Client, *, pods: bool = False) -> None:
        self.services = SharedInformer.for_resource(client, SERVICES)
        self.slices = SharedInformer.for_resource(client, SLICES)
        self.pods = SharedInformer.for_resource(client, PODS) if pods else None
        self.catalog = Catalog(
            self.services.store,
            self.slices.store,
            track_changes=True,
            pods=self.pods.store if self.pods is not None else None,
        )
        for informer in self._informers():
            informer.add_event_handler(
                on_add=lambda _obj: self.catalog.changed(),
                on_update=lambda _old, _new: self.catalog.changed(),
                on_delete=lambda _obj: self.catalog.changed(),
            )

    def _informers(self) -> list[SharedInformer]:
        return [self.services, self.slices, *([self.pods] if self.pods is not None else [])]

    async def start(self, within: float | None = None) -> bool:
        """Start the informers; True once all synced, False if ``within`` s pass first."""
        for informer in self._informers():
            informer.start()
        for informer in self._informers():
            if not await informer.wait_synced(within):
                return False
        return True

    def synced(self) -> bool:
        return all(informer.has_synced() for informer in self._informers())

    async def stop(self) -> None:
        for informer in self._informers():
            await informer.stop()


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "dns_requests", "DNS requests", ["proto", "type"], registry=registry
        )
        self.responses = Counter(
            "dns_responses", "DNS responses", ["proto", "rcode"], registry=registry
        )
        self.duration = Histogram(
            "dns_request_duration_seconds", "Time to answer a DNS request",
            ["source"], buckets=BUCKETS, registry=registry,
        )  # fmt: skip
        self.forward_failures = Counter(
            "dns_forward_failures", "Questions no upstream answered", registry=registry
        )


#: forwarded answers are kept for their TTL, at most this long (CoreDNS's ``cache 30``)
FORWARD_CACHE_SECONDS = 30


def _cache_ttl(msg: dns.message.Message) -> int:
    """How long a forwarded answer may be reused: its smallest TTL (answers) or the SOA's
    (negative answers), capped at 30 s; 0 for anything else (errors, truncation)."""
    if msg.flags & dns.flags.TC or msg.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return 0
    ttls = [rrset.ttl for rrset in msg.answer]
    if not ttls:
        ttls = [rrset.ttl for rrset in msg.authority if rrset.rdtype == dns.rdatatype.SOA]
    return min([*ttls, FORWARD_CACHE_SECONDS]) if ttls else 0


def _type_label(rdtype: int) -> str:
    text = dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rdtype))
    return text if text in COUNTED_TYPES else "other"


class DNSServer:
    """Answers cluster names from ``zone``, forwards the rest with ``forwarder``."""

    def __init__(
        self,
        zone: Zone,
        forwarder: Forwarder,
        host: str = "0.0.0.0",
        port: int = 53,
        *,
        registry: CollectorRegistry | None = None,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self.zone = zone
        self.forwarder = forwarder
        self.host, self.port = host, port
        self.registry = registry or CollectorRegistry()
        self.metrics = _Metrics(self.registry)
        self.ready = ready
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: query bytes after the ID → (answer bytes after the ID, metric children)
        self._answers: dict[bytes, tuple[bytes, tuple[Counter, Counter, Histogram]]] = {}
        #: (name, type, class) -> (forwarded answer on the wire, reusable until)
        self._forwarded: dict[tuple[str, int, int], tuple[bytes, float]] = {}
        #: the same answers by UDP query bytes (after the ID): a repeat is not even parsed
        self._forwarded_udp: dict[
            bytes, tuple[bytes, float, tuple[Counter, Counter, Histogram]]
        ] = {}
        self._answers_generation: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen on UDP and TCP (``port`` 0: any port free for both)."""
        for attempt in range(PORT_ATTEMPTS):
            try:
                await self._listen()
                break
            except OSError:
                await self.stop()
                if self.port != 0 or attempt == PORT_ATTEMPTS - 1:
                    raise
        log.info("dns listening", extra={"address": self.host, "port": self.port})

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        udp = wildcard_datagram_socket(self.host, self.port)
        if udp is not None:  # 0.0.0.0 or ::: both families, as CoreDNS's listeners
            transport, _ = await loop.create_datagram_endpoint(lambda: _UDP(self), sock=udp)
        else:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UDP(self), local_addr=(self.host, self.port)
            )
        self._udp = transport
        port = transport.get_extra_info("sockname")[1]
        tcp = wildcard_listener(self.host, port)
        if tcp is not None:
            self._tcp = await asyncio.start_server(self._serve_tcp, sock=tcp)
        else:
            self._tcp = await asyncio.start_server(self._serve_tcp, self.host, port)
        self.port = port

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            self._tcp = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.forwarder.close()

    def healthy(self) -> bool:
        return self._udp is not None and self._tcp is not None and self.ready()

    # ------------------------------------------------------------------ answering

    def _local(self, query: dns.message.Message) -> tuple[dns.message.Message, Answer | None]:
        """A response built without the network; its Answer is None when it must be
        forwarded, and carries ``chase`` when an upstream CNAME target must be appended."""
        response = dns.message.make_response(query, recursion_available=True)
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return response, Answer(dns.rcode.NOTIMP)
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response, Answer(dns.rcode.FORMERR)
        q = query.question[0]
        answer = self.zone.lookup(q.name, q.rdtype) if q.rdclass == dns.rdataclass.IN else None
        if answer is not None:
            response.flags |= dns.flags.AA
            response.set_rcode(answer.rcode)
            response.answer = answer.answer
            response.authority = answer.authority
            response.additional = answer.additional
        return response, answer

    async def _remote(
        self, query: dns.message.Message, response: dns.message.Message, answer: Answer | None,
        tcp: bool,
    ) -> dns.message.Message:  # fmt: skip
        """Forward ``query`` (or resolve a CNAME target upstream and append its records)."""
        if answer is not None and answer.chase is not None:
            sub = dns.message.make_query(answer.chase, query.question[0].rdtype)
            got = await self.forwarder.forward(sub, tcp)
            if got is None:
                self.metrics.forward_failures.inc()
            else:
                response.answer += got.answer
                response.set_rcode(got.rcode())
            return response
        q = query.question[0] if query.question else None
        key = (q.name.to_text().lower(), q.rdtype, q.rdclass) if q is not None else None
        hit = self._forwarded.get(key) if key is not None else None
        if hit is not None and hit[1] > time.monotonic():
            got = dns.message.from_wire(hit[0])
            got.id = query.id
            return got
        got = await self.forwarder.forward(query, tcp)
        if got is None:
            self.metrics.forward_failures.inc()
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        ttl = _cache_ttl(got)
        if key is not None and ttl > 0:
            if len(self._forwarded) >= ANSWER_CACHE_SIZE:
                self._forwarded.clear()
            self._forwarded[key] = (got.to_wire(), time.monotonic() + ttl)
        got.id = query.id
        return got

    def _wire(self, query: dns.message.Message, response: dns.message.Message, tcp: bool) -> bytes:
        limit = 65535 if tcp else max(UDP_MIN_PAYLOAD, query.payload if query.edns >= 0 else 0)
        return response.to_wire(max_size=limit, prefer_truncation=True)

    def _count(self, query: dns.message.Message, response: dns.message.Message, proto: str,
               source: str, started: float) -> tuple[Counter, Counter, Histogram]:  # fmt: skip
        """Count one answered request; returns the metric children it touched."""
        rdtype = query.question[0].rdtype if query.question else 0
        children = (
            self.metrics.requests.labels(proto, _type_label(rdtype)),
            self.metrics.responses.labels(proto, dns.rcode.to_text(response.rcode())),
            self.metrics.duration.labels(source),
        )
        children[0].inc()
        children[1].inc()
        children[2].observe(time.perf_counter() - started)
        return children

    async def answer(self, query: dns.message.Message, tcp: bool) -> bytes:
        """The wire answer to one query (any path: local, chased, forwarded)."""
        started = time.perf_counter()
        response, answer = self._local(query)
        source = "cluster"
        if answer is None or answer.chase is not None:
            source = "forward"
            response = await self._remote(query, response, answer, tcp)
        self._count(query, response, "tcp" if tcp else "udp", source, started)
        return self._wire(query, response, tcp)

    # ------------------------------------------------------------------ UDP

    def _datagram(self, wire: bytes, addr: tuple[str, int]) -> None:
        started = time.perf_counter()
        generation = self.zone.catalog.generation
        if generation != self._answers_generation:
            self._answers.clear()
            self._answers_generation = generation
        forwarded = self._forwarded_udp.get(wire[2:])
        if forwarded is not None and forwarded[1] > time.monotonic():
            self._send(wire[:2] + forwarded[0], addr)
            for child in forwarded[2][:2]:
                child.inc()
            forwarded[2][2].observe(time.perf_counter() - started)
            return
        cached = self._answers.get(wire[2:])
        if cached is not None:
            rest, (requests, responses, duration) = cached
            self._send(wire[:2] + rest, addr)
            requests.inc()
            responses.inc()
            duration.observe(time.perf_counter() - started)
            return
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            self.metrics.responses.labels("udp", "dropped").inc()
            return
        response, answer = self._local(query)
        if answer is not None and answer.chase is None:
            children = self._count(query, response, "udp", "cluster", started)
            out = self._wire(query, response, False)
            self._send(out, addr)
            if generation is not None:
                if len(self._answers) >= ANSWER_CACHE_SIZE:
                    self._answers.clear()
                self._answers[wire[2:]] = (out[2:], children)
            return
        task = asyncio.create_task(self._forward_udp(query, addr, wire[2:]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forward_udp(
        self, query: dns.message.Message, addr: tuple[str, int], key: bytes
    ) -> None:
        try:
            out = await self.answer(query, tcp=False)
        except Exception:
            log.exception("answering a forwarded UDP query failed")
            return
        self._send(out, addr)
        q = query.question[0] if query.question else None
        if q is None:  # (a question RRset is falsy: it has no rdata)
            return
        hit = self._forwarded.get((q.name.to_text().lower(), q.rdtype, q.rdclass))
        if hit is not None and hit[1] > time.monotonic():
            if len(self._forwarded_udp) >= ANSWER_CACHE_SIZE:
                self._forwarded_udp.clear()
            children = (
                self.metrics.requests.labels("udp", _type_label(q.rdtype)),
                self.metrics.responses.labels("udp", dns.rcode.to_text(dns.rcode.from_flags(
                    int.from_bytes(out[2:4], "big"), 0))),
                self.metrics.duration.labels("forward"),
            )  # fmt: skip
            self._forwarded_udp[key] = (out[2:], hit[1], children)

    def _send(self, wire: bytes, addr: tuple[str, int]) -> None:
        if self._udp is not None:
            self._udp.sendto(wire, addr)

    # ------------------------------------------------------------------ TCP

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                async with asyncio.timeout(TCP_IDLE_TIMEOUT):
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    wire = await reader.readexactly(size)
                try:
                    query = dns.message.from_wire(wire)
                except dns.exception.DNSException:
                    self.metrics.responses.labels("tcp", "dropped").inc()
                    break
                out = await self.answer(query, tcp=True)
                writer.write(len(out).to_bytes(2, "big") + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        except Exception:
            log.exception("answering over TCP failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, server: DNSServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self.server._datagram(data, addr)
        except Exception:
            log.exception("answering a UDP query failed")

    def error_received(self, exc: Exception) -> None:
        log.debug("udp error: %r", exc)
