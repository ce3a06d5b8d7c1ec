"""Arrival: a request counts as in flight from the moment the server has read it.

Why this module exists: upstream's max-in-flight filter and APF count a request from the
start of its handler chain, but Go's HTTP server starts that chain in a goroutine as soon
as it has read the request, so what upstream counts is "read and not yet answered". Our
handlers run on one event loop: a cheap request (a list from the watch cache, a cached
SQLite read) runs its whole handler in one step of the loop, so at handler start only a
handful are ever "in flight" and the limiter sheds nothing, while hundreds of read
requests wait in the loop's ready queue and the sockets' buffers. Counting them there
gives the limiter upstream's view: the decision is made when the request's first bytes
are read, and a request over the limit is answered 429 as soon as its handler runs,
before any list, encoding or authorization work.

With API Priority and Fairness on, a request just read also takes a seat of the level its
connection's previous request was classified to, when one is free (the user is known only
after authentication; a connection keeps its credentials), so APF's seats count what waits
in the loop and its queues fill (see :mod:`pyk8s.apiserver.flowcontrol`).

The seam, the least private one aiohttp 3.14 offers: :class:`ArrivalHandler` is a
``web.RequestHandler`` (aiohttp's public protocol class) whose ``data_received`` (the
asyncio protocol method, public) reads the request line of a connection's next request
before handing the bytes to aiohttp's parser, and whose ``connection_lost`` gives back
what an unserved request held. :class:`ArrivalRunner` is a ``web.AppRunner`` whose server
makes those protocols: that needs ``AppRunner._make_server`` (the runner's factory hook)
and ``web.Server``'s ``_loop`` and ``_kwargs`` (how it builds its own protocols); nothing
else private is touched.

What is counted: one request per connection at a time, from the read of its request line
until its handler has returned (the response is written by then; a streamed one was
written by the handler). HTTP/1.1 clients send the next request on a connection only after
the previous answer, as Go's server also serves them; a pipelined request that arrives
while its connection is busy is counted when its handler starts (the limiter's old
behaviour), as is one whose request line did not arrive whole in the first read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

from aiohttp import web

from pyk8s.apiserver.flowcontrol import Classification, Seat
from pyk8s.apiserver.inflight import Slot
from pyk8s.apiserver.requestinfo import RequestInfo

#: a request as :func:`pyk8s.apiserver.requestinfo.parse_request` takes it: method, path
#: (decoded) and query arguments
Parsed = tuple[str, str, dict[str, str]]


class Arrived:
    """What a request was given when it was read; its handler takes it over."""

    __slots__ = ("classification", "parsed", "seat", "slot")

    def __init__(
        self,
        slot: Slot | None,
        seat: Seat | None = None,
        classification: Classification | None = None,
        parsed: tuple[Parsed, RequestInfo] | None = None,
    ) -> None:
        #: its in-flight slot (None: over the limit, answered 429 unless exempt)
        self.slot = slot
        #: an APF seat, taken as the connection's previous request was classified
        self.seat = seat
        self.classification = classification
        #: the request line as parsed then (method, path, query) and what it parsed to:
        #: the handler takes the RequestInfo when aiohttp's parse of the request gives
        #: the same method, path and query, instead of parsing it again
        self.parsed = parsed

    def info_for(self, method: str, path: str, query: dict[str, str]) -> RequestInfo | None:
        """The RequestInfo parsed at arrival, if it was parsed from these same inputs."""
        parsed = self.parsed
        if parsed is not None and parsed[0] == (method, path, query):
            return parsed[1]
        return None

    def release(self) -> None:
        """Give back what the handler did not take over (each at most once)."""
        if self.slot is not None:
            self.slot.release()
        if self.seat is not None:
            self.seat.release()
            self.seat = None


#: the server's decision on a request line: (method, target, the APF classification of the
#: connection's previous request, or None)
ArriveFn = Callable[[str, str, Classification | None], Arrived]


class Unclaimed:
    """The claim of a request that did not arrive through :class:`ArrivalHandler`."""


#: claim() of a request the arrival hook did not see (decide at handler start instead)
NOT_SEEN: Final = Unclaimed()


class ArrivalHandler(web.RequestHandler):
    """aiohttp's connection protocol, deciding each request's slot as it is read."""

    __slots__ = ("_arrive", "_hint", "_idle", "_pending")

    def __init__(self, manager: web.Server, arrive: ArriveFn, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._arrive = arrive
        #: no request of this connection is waiting for or in its handler
        self._idle = True
        #: what the waiting request was given at arrival (NOT_SEEN: none is waiting)
        self._pending: Arrived | Unclaimed = NOT_SEEN
        #: how APF classified the connection's last request
        self._hint: Classification | None = None

    def data_received(self, data: bytes) -> None:
        if self._idle and data:
            end = data.find(b"\r\n", 0, 8192)
            parts = data[:end].split(b" ") if end > 0 else ()
            if len(parts) == 3 and parts[2].startswith(b"HTTP/"):
                self._idle = False
                self._pending = self._arrive(
                    parts[0].decode("ascii", "replace"), parts[1].decode("latin-1"), self._hint
                )
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        # a request read but never handled (the client went away, or aiohttp answered a
        # malformed one itself: it closes the connection then) gives its slot back here
        pending, self._pending = self._pending, NOT_SEEN
        if isinstance(pending, Arrived):
            pending.release()
        super().connection_lost(exc)

    def claim(self) -> Arrived | Unclaimed:
        """What the connection's waiting request got at arrival, handed to its handler
        (which releases it); the connection is busy until :meth:`served`."""
        pending, self._pending = self._pending, NOT_SEEN
        self._idle = False
        return pending

    def served(self) -> None:
        """The handler returned: the connection's next bytes are a new request."""
        self._idle = True


def claim(request: web.BaseRequest) -> Arrived | Unclaimed:
    """What ``request`` was given when it was read, or :data:`NOT_SEEN` when it did not
    come through an :class:`ArrivalHandler` (then the limiters decide at handler start)."""
    protocol = request.protocol
    if isinstance(protocol, ArrivalHandler):
        return protocol.claim()
    return NOT_SEEN


def remember(request: web.BaseRequest, classification: Classification) -> None:
    """How APF classified ``request``: its connection's next request is seated as it."""
    protocol = request.protocol
    if isinstance(protocol, ArrivalHandler):
        protocol._hint = classification


def served(request: web.BaseRequest) -> None:
    """``request``'s handler has returned (its connection may read the next request)."""
    protocol = request.protocol
    if isinstance(protocol, ArrivalHandler):
        protocol.served()


class _ArrivalServer(web.Server):
    """aiohttp's low-level server, making :class:`ArrivalHandler` protocols."""

    def __init__(self, base: web.Server, arrive: ArriveFn) -> None:
        super().__init__(
            base.request_handler,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **base._kwargs,
        )
        self._arrive = arrive

    def __call__(self) -> ArrivalHandler:
        return ArrivalHandler(self, self._arrive, loop=self._loop, **self._kwargs)


class ArrivalRunner(web.AppRunner):
    """An ``AppRunner`` whose connections report each request's arrival to ``arrive``."""

    def __init__(self, app: web.Application, arrive: ArriveFn, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._arrive = arrive

    async def _make_server(self) -> web.Server:
        return _ArrivalServer(await super()._make_server(), self._arrive)
