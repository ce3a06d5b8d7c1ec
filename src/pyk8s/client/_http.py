"""A thin HTTP/1.1 keep-alive transport for the client's small request/response calls.

Why it exists: at 5,000 simulated nodes and 10,000 pods every pod costs its writers a
handful of small requests (a Lease renewal, a binding, an Event, a status write), and
aiohttp's general-purpose request path spent ~300 us of client CPU on each (URL objects,
header multidicts, timers, response objects, stream readers; measured in
``bench/clientreq.py``). A request here is one ``bytes`` written to a pooled connection
and one response parsed out of the bytes that come back: the same HTTP/1.1 on the wire
(request line, Host, the client's headers, a Content-Length body), a fraction of the CPU.

What it does and does not do:

* HTTP/1.1 over TCP or TLS (``ssl`` context, SNI name), one request at a time per
  connection, idle connections reused (keep-alive) and at most ``limit`` open;
* responses framed by Content-Length, ``Transfer-Encoding: chunked`` or the connection's
  close; ``Content-Encoding: gzip``/``deflate`` bodies are inflated (it asks for gzip, as
  client-go's transport does);
* the whole body is read into memory: streams (watches, logs, exec) stay on aiohttp,
  which :class:`~pyk8s.client.rest.Client` keeps for them;
* a failure to connect raises :class:`ConnectFailed` (the request never left: safe to
  retry); anything after the request was written raises :class:`ConnectionError`
  (``ResponseLost``), and only the caller knows whether repeating it is safe.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import zlib
from typing import NamedTuple

__all__ = ["ConnectFailed", "HttpPool", "HttpResponse", "ResponseLost"]

#: an idle connection is closed after this many seconds unused (aiohttp's connector's
#: default keep-alive, which this pool replaced: an idle component does not hold a TLS
#: connection, on both ends, for every client it made requests with)
KEEPALIVE = 15.0

#: a response head larger than this is refused (aiohttp's own default limit is 8 KiB
#: per line; the API server's heads are a few hundred bytes)
MAX_HEAD = 64 * 1024


#: one ``Name: value`` header line (the value without its surrounding blanks)
_HEADER = re.compile(r"^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*\r?$", re.MULTILINE)


class ConnectFailed(OSError):
    """The connection could not be opened: the request was never sent."""


class ResponseLost(ConnectionError):
    """The connection broke or sent something unparseable after the request was written."""


class HttpResponse(NamedTuple):
    status: int
    #: header names lower-cased; a repeated header keeps its last value
    headers: dict[str, str]
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection; ``request`` sends and resolves with the response."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self._buf = bytearray()
        self._waiter: asyncio.Future[HttpResponse] | None = None
        self._status = 0
        self._headers: dict[str, str] | None = None
        #: bytes of body wanted (Content-Length), -1 chunked, -2 until the connection closes
        self._length = 0
        self._body = bytearray()
        self._head_request = False

    # ---------------------------------------------------------------- protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self._close()  # bytes nobody asked for: the connection is out of step
            return
        self._buf += data
        try:
            self._parse()
        except ValueError as err:
            self._fail(ResponseLost(f"invalid HTTP response: {err}"))

    def eof_received(self) -> bool | None:
        self.reusable = False
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        if self._waiter is None or self._waiter.done():
            return
        if self._headers is not None and self._length == -2:
            self._finish()
            return
        self._fail(ResponseLost(f"the server closed the connection: {exc or 'EOF'}"))

    # ---------------------------------------------------------------- requests

    def request(self, data: bytes, head: bool) -> asyncio.Future[HttpResponse]:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._head_request = head
        self._headers = None
        self.transport.write(data)
        return self._waiter

    def abort(self) -> None:
        """Give up on this connection (a timeout or cancellation mid-request)."""
        self.reusable = False
        self._close()

    def _close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()

    def _fail(self, err: Exception) -> None:
        self._close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(err)

    # ---------------------------------------------------------------- parsing

    def _parse(self) -> None:
        buf = self._buf
        if self._headers is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise ValueError("response head too large")
                return
            self._head(bytes(buf[:end]))
            del buf[: end + 4]
            if self._status < 200:  # 1xx: an interim response, the real one follows
                self._headers = None
                self._parse()
                return
        if self._length >= 0:
            if len(buf) >= self._length:
                self._body = buf[: self._length]
                del buf[: self._length]
                self._finish()
        elif self._length == -1:
            self._chunks()
        else:  # until the connection closes
            self._body += buf
            buf.clear()

    def _head(self, head: bytes) -> None:
        text = head.decode("latin-1")
        status_line, _, fields = text.partition("\r\n")
        version, _, rest = status_line.partition(" ")
        if not version.startswith("HTTP/1."):
            raise ValueError(f"status line {status_line[:80]!r}")
        self._status = int(rest[:3])
        found = _HEADER.findall(fields)
        if len(found) != (fields.count("\n") + 1 if fields else 0):
            raise ValueError(f"header lines {fields[:200]!r}")
        headers = {name.lower(): value for name, value in found}
        self._headers = headers
        if version == "HTTP/1.0" or headers.get("connection", "").lower() == "close":
            self.reusable = False
        self._body = bytearray()
        if self._head_request or self._status in (204, 304) or self._status < 200:
            self._length = 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._length = -1
        elif "content-length" in headers:
            self._length = int(headers["content-length"])
            if self._length < 0:
                raise ValueError("negative Content-Length")
        else:
            self._length = -2
            self.reusable = False

    def _chunks(self) -> None:
        buf = self._buf
        while True:
            eol = buf.find(b"\r\n")
            if eol < 0:
                return
            size = int(bytes(buf[:eol]).split(b";", 1)[0], 16)
            if size == 0:
                # the last chunk, then trailers (ignored) up to an empty line
                end = buf.find(b"\r\n\r\n", eol)
                if end < 0 and buf[eol : eol + 4] != b"\r\n\r\n":
                    return
                del buf[: (end if end >= 0 else eol) + 4]
                self._finish()
                return
            if len(buf) < eol + 2 + size + 2:
                return
            self._body += buf[eol + 2 : eol + 2 + size]
            del buf[: eol + 2 + size + 2]

    def _finish(self) -> None:
        headers = self._headers
        assert headers is not None and self._waiter is not None
        body = bytes(self._body)
        encoding = headers.get("content-encoding", "").lower()
        if encoding in ("gzip", "deflate") and body:
            try:
                body = zlib.decompress(body, 47)  # 32 + 15: gzip or zlib header, detected
            except zlib.error as err:
                self._fail(ResponseLost(f"undecodable {encoding} body: {err}"))
                return
        self._body = bytearray()
        if self._buf:  # more than one response's worth: out of step
            self.reusable = False
        else:  # a bytearray keeps its capacity: a big list's would stay for the connection
            self._buf = bytearray()
        waiter, self._waiter = self._waiter, None
        if not waiter.done():
            waiter.set_result(HttpResponse(self._status, headers, body))


class HttpPool:
    """Keep-alive connections to one ``host:port`` (``ssl``: TLS with ``server_hostname``)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str | None = None,
        limit: int = 100,
    ) -> None:
        self.host = host
        self.port = port
        self._ssl = ssl_context
        self._server_hostname = (server_hostname or host) if ssl_context is not None else None
        self._slots = asyncio.Semaphore(limit)
        #: idle connections and when each was last used (the most recent last)
        self._idle: list[tuple[_Connection, float]] = []
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False
        #: ``Host:`` as sent (the default port left out, as browsers and aiohttp do)
        default = 443 if ssl_context is not None else 80
        name = f"[{host}]" if ":" in host else host
        self.host_header = name if port == default else f"{name}:{port}"

    async def request(self, data: bytes, *, head: bool = False) -> HttpResponse:
        """Send one whole request (head and body in ``data``); its response."""
        async with self._slots:
            conn = await self._acquire()
            try:
                resp = await conn.request(data, head)
            except BaseException:
                conn.abort()
                raise
            if conn.reusable and not conn.closed and not self._closed:
                loop = asyncio.get_running_loop()
                self._idle.append((conn, loop.time()))
                if self._sweep is None:
                    self._sweep = loop.call_later(KEEPALIVE, self._close_stale)
            else:
                conn.abort()
            return resp

    def _close_stale(self) -> None:
        """Close the connections idle for :data:`KEEPALIVE`; look again when the next
        of the others would be."""
        self._sweep = None
        loop = asyncio.get_running_loop()
        cutoff = loop.time() - KEEPALIVE
        stale = 0
        while stale < len(self._idle) and self._idle[stale][1] <= cutoff:
            self._idle[stale][0].abort()
            stale += 1
        del self._idle[:stale]
        if self._idle:
            self._sweep = loop.call_later(self._idle[0][1] - cutoff, self._close_stale)

    async def _acquire(self) -> _Connection:
        while self._idle:
            conn, _ = self._idle.pop()  # the most recently used: the oldest expire
            if not conn.closed and conn.reusable:
                return conn
        if self._closed:
            raise ConnectFailed("the connection pool is closed")
        loop = asyncio.get_running_loop()
        try:
            _, proto = await loop.create_connection(
                _Connection,
                self.host,
                self.port,
                ssl=self._ssl,
                server_hostname=self._server_hostname,
            )
        except ssl.SSLError:
            raise  # the handshake failed: not "never sent" for the caller's retry rules
        except OSError as err:
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {err}") from err
        return proto

    def close(self) -> None:
        """Close the idle connections; connections in use close when their request ends."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.abort()
