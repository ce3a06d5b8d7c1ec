"""pods/log, pods/exec, pods/attach and pods/portforward: the API server's side of streaming.

Why this exists: kubectl never talks to a kubelet; it asks the API server, which finds
the pod's node (``spec.nodeName`` → the Node's InternalIP and
``status.daemonEndpoints.kubeletEndpoint.Port``) and calls that kubelet over HTTPS with
its own client cert (``kube-apiserver-kubelet-client``). With
``--kubelet-certificate-authority`` (``pyk8s server`` sets the cluster CA, as k3s does)
the kubelet's serving certificate must come from that CA and name the address dialed (its
``kubernetes.io/kubelet-serving`` certificate); without it, it is not verified
(upstream's default). The client certificate is re-read when its file changes, so the
API server's renewal of it (:mod:`pyk8s.server.certrenew`) is picked up.

* log -- a plain GET, streamed through as it arrives (``-f`` until the client leaves);
* exec/attach over ``v5.channel.k8s.io`` (kubectl 1.32, the official Python client) --
  one byte of channel then the data; 255 closes a channel. Like upstream we translate it
  to SPDY/3.1 towards the kubelet (one stream per channel, protocol
  ``v4.channel.k8s.io``), because only SPDY can half-close stdin, which ``kubectl cp``
  into a pod needs;
* portforward over ``SPDY/3.1+portforward.k8s.io`` (kubectl) -- a whole SPDY connection
  inside binary WebSocket messages; we open a SPDY upgrade to the kubelet and copy the
  bytes both ways without looking at them;
* every other WebSocket exec/attach/portforward (``channel.k8s.io``,
  ``base64.channel.k8s.io``, their ``v4.`` versions, no subprotocol at all: what the
  Python client's ``portforward()`` and older clients speak) is relayed to the kubelet
  as a WebSocket, message for message, with the subprotocol the kubelet picked. This is
  where upstream puts them too (its API server translates only v5 and the tunnel, and
  proxies the rest), and the kubelet hands them to the runtime's stream server, which
  is upstream's streaming library: the channel layouts, the port-number prefix frames
  of port-forward, the base64 framing, resize and the error texts (``error forwarding
  port 1234 to pod …``) are upstream's own, not a second copy of them here. A refused
  upgrade comes back as the kubelet wrote it, as upstream's proxy passes it on.

kubectl's own SPDY (its fallback when the WebSocket upgrade is refused) is not served.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson
from aiohttp import web

from pyk8s.api import errors
from pyk8s.apiserver import spdy
from pyk8s.apiserver.requestinfo import RequestInfo
from pyk8s.apiserver.wsrelay import relay_messages, sendable_close_code

if TYPE_CHECKING:
    from pyk8s.apiserver.handlers import ResourceHandlers

__all__ = ["SUBRESOURCES", "serve"]

log = logging.getLogger(__name__)

JSON = dict[str, Any]

SUBRESOURCES = ("log", "exec", "attach", "portforward")
DEFAULT_KUBELET_PORT = 10250
CONNECT_TIMEOUT = 10.0

#: the exec/attach WebSocket subprotocol we translate to SPDY (offered anywhere in the
#: client's list, as upstream); every other WebSocket is relayed to the kubelet
EXEC_WS_PROTOCOLS = ("v5.channel.k8s.io",)
#: what we ask the kubelet for: the SPDY stream protocol of remotecommand v4
EXEC_SPDY_PROTOCOL = "v4.channel.k8s.io"
PORTFORWARD_WS_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
PORTFORWARD_SPDY_PROTOCOL = "portforward.k8s.io"

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255
_STREAM_TYPES = {
    STDIN: "stdin",
    STDOUT: "stdout",
    STDERR: "stderr",
    ERROR: "error",
    RESIZE: "resize",
}
_LOG_PARAMS = (
    "follow",
    "previous",
    "timestamps",
    "sinceSeconds",
    "sinceTime",
    "tailLines",
    "limitBytes",
)
_TRUE = ("1", "true", "True")


def _client_ssl(cert: Path, key: Path, ca: Path | None) -> ssl.SSLContext:
    return _cached_client_ssl(cert, key, ca, _mtime(cert), _mtime(ca))


def _mtime(path: Path | None) -> int:
    try:
        return 0 if path is None else path.stat().st_mtime_ns
    except OSError:
        return 0


@functools.lru_cache(maxsize=8)
def _cached_client_ssl(
    cert: Path, key: Path, ca: Path | None, _cert_mtime: int, _ca_mtime: int
) -> ssl.SSLContext:
    if ca is None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:  # the chain and the dialed address (an IP SAN for an InternalIP)
        ctx = ssl.create_default_context(cafile=str(ca))
    ctx.load_cert_chain(cert, key)
    return ctx


# --------------------------------------------------------------------------- locating


def _container_names(pod: JSON) -> list[str]:
    spec = pod.get("spec") or {}
    kinds = ("initContainers", "containers", "ephemeralContainers")
    return [c["name"] for k in kinds for c in spec.get(k) or ()]


def _pick_container(pod: JSON, requested: str) -> str:
    """The container a request is about, with upstream's errors for a wrong or missing name."""
    name = pod["metadata"]["name"]
    spec = pod.get("spec") or {}
    if not requested:
        containers = spec.get("containers") or []
        if len(containers) == 1:
            return str(containers[0]["name"])
        names = " ".join(_container_names(pod))
        raise errors.bad_request(
            f"a container name must be specified for pod {name}, choose one of: [{names}]"
        )
    if requested not in _container_names(pod):
        raise errors.bad_request(f"container {requested} is not valid for pod {name}")
    return requested


def _waiting_reason(pod: JSON, container: str) -> str | None:
    status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for cs in status.get(key) or ():
            if cs.get("name") == container:
                waiting = (cs.get("state") or {}).get("waiting")
                return None if waiting is None else str(waiting.get("reason") or "")
    return None


class _Kubelet:
    """Where one pod's kubelet listens, and how to call it."""

    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> None:
        self.host, self.port, self.ssl = host, port, ssl_context

    @staticmethod
    def target(path: str, query: Iterable[tuple[str, str]] = ()) -> str:
        qs = urlencode(list(query))
        return path + (f"?{qs}" if qs else "")

    @property
    def netloc(self) -> str:
        """``host:port``, ``[host]:port`` for an IPv6 address."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def url(self, path: str, query: Iterable[tuple[str, str]] = ()) -> str:
        scheme = "https" if self.ssl is not None else "http"
        return f"{scheme}://{self.netloc}{self.target(path, query)}"

    def unreachable(self, path: str, err: Exception) -> errors.StatusError:
        return errors.internal(f'error dialing kubelet at "{self.url(path)}": {err}')


async def _locate(h: ResourceHandlers, pod: JSON) -> _Kubelet:
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise errors.bad_request(f"pod {pod['metadata']['name']} does not have a host assigned")
    return await _locate_node(h, node_name)


async def _locate_node(h: ResourceHandlers, node_name: str) -> _Kubelet:
    nodes = h.registry.get("", "v1", "nodes")
    assert nodes is not None
    node = await h.rest(nodes).get("", node_name)
    status = node.get("status") or {}
    addresses: dict[str, str] = {}
    for a in status.get("addresses") or ():  # the first of each type (a dual-stack node's
        addresses.setdefault(a.get("type"), a.get("address"))  # primary family first)
    host = next(
        (addresses[t] for t in ("InternalIP", "Hostname", "ExternalIP") if addresses.get(t)),
        None,
    )
    if host is None:
        raise errors.internal(f"node {node_name} has no address the API server can reach")
    endpoint = (status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}
    port = int(endpoint.get("Port") or DEFAULT_KUBELET_PORT)
    pki = h.server.pki
    if pki is None:
        raise errors.service_unavailable("the API server has no kubelet client certificate")
    ca = h.server.config.kubelet_certificate_authority
    return _Kubelet(host, port, _client_ssl(pki.kubelet_client_cert, pki.kubelet_client_key, ca))


# --------------------------------------------------------------------------- entry point


async def serve(h: ResourceHandlers, request: web.Request, info: RequestInfo) -> web.StreamResponse:
    """Answer a pods/{log,exec,attach,portforward} request."""
    pods = h.registry.get("", "v1", "pods")
    assert pods is not None
    pod = await h.rest(pods).get(info.namespace, info.name)
    sub = info.subresource
    if sub == "log":
        if request.method != "GET":
            raise errors.method_not_allowed(f"method {request.method} is not allowed on pods/log")
        return await _logs(h, request, pod)
    if request.method not in ("GET", "POST"):
        raise errors.method_not_allowed(f"method {request.method} is not allowed on pods/{sub}")
    if sub == "portforward":
        return await _portforward(h, request, pod)
    return await _exec(h, request, pod, sub)


def _offered_protocols(request: web.Request) -> list[str]:
    """The WebSocket subprotocols a request offers, in its order."""
    header = ",".join(request.headers.getall("Sec-WebSocket-Protocol", []))
    return [p.strip() for p in header.split(",") if p.strip()]


def _is_websocket(request: web.Request) -> bool:
    return web.WebSocketResponse().can_prepare(request).ok


async def serve_node_proxy(h: ResourceHandlers, request: web.Request, name: str) -> web.Response:
    """``GET /api/v1/nodes/NAME/proxy/PATH``: the node's kubelet answers PATH (e.g.
    ``stats/summary``, ``metrics/resource``, ``healthz``), as upstream proxies it."""
    if request.method != "GET":
        raise errors.method_not_allowed(f"method {request.method} is not allowed on nodes/proxy")
    kubelet = await _locate_node(h, name)
    marker = f"/nodes/{name}/proxy"
    path = "/" + request.path.split(marker, 1)[1].lstrip("/")
    timeout = aiohttp.ClientTimeout(total=60, connect=CONNECT_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            upstream = await session.get(
                kubelet.url(path, request.query.items()), ssl=kubelet.ssl or False
            )
        except (aiohttp.ClientError, OSError) as err:
            raise kubelet.unreachable(path, err) from err
        async with upstream:
            body = await upstream.read()
            return web.Response(
                status=upstream.status,
                body=body,
                content_type=upstream.content_type,
            )


# --------------------------------------------------------------------------- logs


async def _logs(h: ResourceHandlers, request: web.Request, pod: JSON) -> web.StreamResponse:
    container = _pick_container(pod, request.query.get("container", ""))
    name, ns = pod["metadata"]["name"], pod["metadata"]["namespace"]
    previous = request.query.get("previous") in _TRUE
    reason = _waiting_reason(pod, container)
    if reason is not None and not previous:
        raise errors.bad_request(
            f'container "{container}" in pod "{name}" is waiting to start: {reason}'
        )
    if not (pod.get("spec") or {}).get("nodeName"):
        return web.Response(content_type="text/plain")  # upstream: an empty log
    kubelet = await _locate(h, pod)
    path = f"/containerLogs/{quote(ns)}/{quote(name)}/{quote(container)}"
    query = [(k, request.query[k]) for k in _LOG_PARAMS if k in request.query]
    follow = request.query.get("follow") in _TRUE
    timeout = aiohttp.ClientTimeout(total=None if follow else 300, connect=CONNECT_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            upstream = await session.get(kubelet.url(path, query), ssl=kubelet.ssl or False)
        except (aiohttp.ClientError, OSError) as err:
            raise kubelet.unreachable(path, err) from err
        async with upstream:
            if upstream.status != 200:
                raise _kubelet_error(upstream.status, (await upstream.text()).strip())
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await resp.prepare(request)
            with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                await _copy_log(request, upstream, resp)
            with contextlib.suppress(ConnectionError):
                await resp.write_eof()
            return resp


async def _copy_log(
    request: web.Request, upstream: aiohttp.ClientResponse, resp: web.StreamResponse
) -> None:
    while True:
        try:
            chunk = await asyncio.wait_for(upstream.content.readany(), 1.0)
        except TimeoutError:
            # nothing new: stop following once the client has gone away
            if request.transport is None or request.transport.is_closing():
                return
            continue
        if not chunk:
            return
        await resp.write(chunk)


def _kubelet_error(code: int, message: str) -> errors.StatusError:
    if code == 400:
        return errors.bad_request(message)
    if code == 404:
        return errors.StatusError(404, "NotFound", message)
    if code == 403:
        return errors.forbidden_request(message)
    return errors.internal(message)


# --------------------------------------------------------------------------- SPDY upgrade


async def _spdy_upgrade(
    kubelet: _Kubelet, path: str, query: Iterable[tuple[str, str]], protocol: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """An upgraded SPDY/3.1 connection to the kubelet serving ``path``."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(kubelet.host, kubelet.port, ssl=kubelet.ssl),
            CONNECT_TIMEOUT,
        )
    except (OSError, TimeoutError) as err:
        raise kubelet.unreachable(path, err) from err
    writer.write(
        f"POST {kubelet.target(path, query)} HTTP/1.1\r\nHost: {kubelet.netloc}\r\n"
        f"Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
        f"X-Stream-Protocol-Version: {protocol}\r\nContent-Length: 0\r\n\r\n".encode()
    )
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CONNECT_TIMEOUT)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        code = int(status_line.split(" ")[1])
        if code != 101:
            headers = dict(line.split(":", 1) for line in header_lines if ":" in line)
            length = {k.strip().lower(): v.strip() for k, v in headers.items()}.get(
                "content-length"
            )
            body = await asyncio.wait_for(
                reader.readexactly(int(length)) if length else reader.read(64 * 1024),
                CONNECT_TIMEOUT,
            )
            raise _kubelet_error(code, body.decode(errors="replace").strip())
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError) as err:
        writer.close()
        raise kubelet.unreachable(path, err) from err
    except errors.StatusError:
        writer.close()
        raise
    return reader, writer


# --------------------------------------------------------------------------- exec / attach


def _ws_for(request: web.Request, protocols: tuple[str, ...]) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=protocols, max_msg_size=0, autoping=True)
    ready = ws.can_prepare(request)
    if not ready.ok or ready.protocol is None:
        offered = request.headers.get("Sec-WebSocket-Protocol", "")
        raise errors.bad_request(
            f"unable to upgrade: a WebSocket with one of the subprotocols {list(protocols)} "
            f"is required (offered: {offered!r})"
        )
    return ws


async def _exec(
    h: ResourceHandlers, request: web.Request, pod: JSON, sub: str
) -> web.StreamResponse:
    q = request.query
    container = _pick_container(pod, q.get("container", ""))
    flags = {ch: q.get(_STREAM_TYPES[ch]) in _TRUE for ch in (STDIN, STDOUT, STDERR)}
    tty = q.get("tty") in _TRUE
    if tty:
        flags[STDERR] = False  # a terminal merges stderr into stdout
    query = [("command", c) for c in q.getall("command", [])] if sub == "exec" else []
    if sub == "exec" and not query:
        raise errors.bad_request("you must specify at least 1 command")
    query += [
        (p, "1") for p, ch in (("input", STDIN), ("output", STDOUT), ("error", STDERR)) if flags[ch]
    ]
    if tty:
        query.append(("tty", "1"))
    meta = pod["metadata"]
    kubelet = await _locate(h, pod)
    path = f"/{sub}/{quote(meta['namespace'])}/{quote(meta['name'])}/{quote(container)}"
    if _is_websocket(request) and not set(EXEC_WS_PROTOCOLS) & set(_offered_protocols(request)):
        return await _relay_websocket(request, kubelet, path, query)
    ws = _ws_for(request, EXEC_WS_PROTOCOLS)
    channels = [ERROR, *(ch for ch in (STDIN, STDOUT, STDERR) if flags[ch])]
    if tty:
        channels.append(RESIZE)
    # As upstream: the WebSocket is accepted first; a kubelet failure then travels as a
    # Status on the error channel (an HTTP error would make kubectl retry with SPDY).
    await ws.prepare(request)
    try:
        reader, writer = await _spdy_upgrade(kubelet, path, query, EXEC_SPDY_PROTOCOL)
    except errors.StatusError as err:
        await ws.send_bytes(bytes([ERROR]) + orjson.dumps(err.status()))
        await ws.close()
        return ws
    try:
        await _ExecBridge(ws, reader, writer, channels).run()
    finally:
        writer.close()
        await ws.close()
    return ws


class _ExecBridge:
    """Carries one exec/attach session between kubectl's WebSocket and a SPDY connection."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        channels: list[int],
    ) -> None:
        self.ws, self.reader, self.writer = ws, reader, writer
        self.framer = spdy.Framer()
        self.stream_of = {ch: 2 * i + 1 for i, ch in enumerate(channels)}
        self.channel_of = {sid: ch for ch, sid in self.stream_of.items()}
        # the streams the kubelet writes to; the session is over when all of them ended
        self.open_outputs = {
            self.stream_of[ch] for ch in (STDOUT, STDERR, ERROR) if ch in self.stream_of
        }

    async def run(self) -> None:
        """Until the kubelet has ended every output stream, or the client has gone away
        (kubectl closes its WebSocket only when it is done; a process left behind, such as
        an abandoned shell, is the runtime's to clean up when its streams break)."""
        for ch, sid in self.stream_of.items():
            self.writer.write(self.framer.syn_stream(sid, {"streamtype": [_STREAM_TYPES[ch]]}))
        await self.writer.drain()
        tasks = [
            asyncio.create_task(self._from_client()),
            asyncio.create_task(self._from_kubelet()),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _from_client(self) -> None:
        stdin = self.stream_of.get(STDIN)
        resize = self.stream_of.get(RESIZE)
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                # the official Python client writes str input as TEXT frames (channel byte
                # first, then the text); upstream accepts both frame types
                payload: bytes = msg.data.encode()
            elif msg.type == aiohttp.WSMsgType.BINARY:
                payload = msg.data
            else:
                continue
            if not payload:
                continue
            channel, data = payload[0], payload[1:]
            if channel == STDIN and stdin is not None:
                self.writer.write(spdy.data_frame(stdin, data))
            elif channel == RESIZE and resize is not None:
                self.writer.write(spdy.data_frame(resize, data))
            elif channel == CLOSE and data[:1] == bytes([STDIN]) and stdin is not None:
                self.writer.write(spdy.data_frame(stdin, b"", fin=True))  # v5: stdin's EOF
            await self.writer.drain()

    async def _from_kubelet(self) -> None:
        frames = spdy.FrameReader()
        while self.open_outputs:
            data = await self.reader.read(64 * 1024)
            if not data:
                return
            for frame in frames.feed(data):
                if isinstance(frame, spdy.DataFrame):
                    ch = self.channel_of.get(frame.stream_id)
                    if frame.data and ch in (STDOUT, STDERR, ERROR):
                        await self.ws.send_bytes(bytes([ch]) + frame.data)
                    if frame.fin:
                        self.open_outputs.discard(frame.stream_id)
                else:
                    self._control(frame)

    def _control(self, frame: spdy.ControlFrame) -> None:
        if frame.type in (spdy.SYN_STREAM, spdy.SYN_REPLY, spdy.HEADERS):
            self.framer.headers_of(frame)  # keeps the shared zlib stream in step
            if frame.type == spdy.SYN_STREAM:  # we never accept streams from the kubelet
                self.writer.write(spdy.rst_stream(frame.stream_id, spdy.RST_PROTOCOL_ERROR))
            elif frame.fin:
                self.open_outputs.discard(frame.stream_id)
        elif frame.type == spdy.RST_STREAM:
            self.open_outputs.discard(frame.stream_id)
        elif frame.type == spdy.PING:
            self.writer.write(spdy.ping(int.from_bytes(frame.payload[:4], "big")))
        elif frame.type == spdy.GOAWAY:
            self.open_outputs.clear()


# --------------------------------------------------------------------------- port-forward


def _portforward_ports(request: web.Request) -> list[int]:
    """The ``ports`` query parameters (each a port or a comma-separated list of them), read
    as upstream's API server reads PodPortForwardOptions, with its error text."""
    ports = []
    for value in request.query.getall("ports", []):
        for item in value.split(","):
            digits = item.isascii() and item.isdigit()
            if not digits or int(item) > 0xFFFF:
                problem = "value out of range" if digits else "invalid syntax"
                raise errors.bad_request(
                    f'cannot convert to []int32: strconv.ParseUint: parsing "{item}": {problem}'
                )
            ports.append(int(item))
    return ports


async def _portforward(h: ResourceHandlers, request: web.Request, pod: JSON) -> web.StreamResponse:
    meta = pod["metadata"]
    query = [("port", str(port)) for port in _portforward_ports(request)]
    kubelet = await _locate(h, pod)
    path = f"/portForward/{quote(meta['namespace'])}/{quote(meta['name'])}"
    if _is_websocket(request) and PORTFORWARD_WS_PROTOCOL not in _offered_protocols(request):
        return await _relay_websocket(request, kubelet, path, query)
    # The kubelet first, as upstream's tunneling handler: its refusal is answered as is
    # (kubectl then retries with SPDY and shows the same error).
    reader, writer = await _spdy_upgrade(kubelet, path, query, PORTFORWARD_SPDY_PROTOCOL)
    try:
        ws = _ws_for(request, (PORTFORWARD_WS_PROTOCOL,))
        await ws.prepare(request)
    except BaseException:
        writer.close()
        raise

    async def to_kubelet() -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                writer.write(msg.data)
                await writer.drain()

    async def to_client() -> None:
        while data := await reader.read(64 * 1024):
            await ws.send_bytes(data)

    tasks = [asyncio.create_task(to_kubelet()), asyncio.create_task(to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        writer.close()
        await ws.close()
    return ws


# --------------------------------------------------------------------------- WebSocket relay


async def _relay_websocket(
    request: web.Request, kubelet: _Kubelet, path: str, query: Iterable[tuple[str, str]]
) -> web.StreamResponse:
    """Hand a WebSocket session to the kubelet: the same subprotocol offer, then every
    message both ways with its frame type, then the close code of whichever side ended."""
    refusal: list[web.Response] = []

    async def keep_refusal(
        session: aiohttp.ClientSession, ctx: object, params: aiohttp.TraceRequestEndParams
    ) -> None:
        answer = params.response
        if answer.status != 101:  # the kubelet's own answer, passed on as upstream does
            body = await answer.read()
            refusal.append(
                web.Response(status=answer.status, body=body, content_type=answer.content_type)
            )

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(keep_refusal)
    timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout, trace_configs=[trace]) as session:
        try:
            upstream = await session.ws_connect(
                kubelet.url(path, query),
                protocols=_offered_protocols(request),
                ssl=kubelet.ssl or False,
                max_msg_size=0,
            )
        except aiohttp.WSServerHandshakeError as err:
            if refusal:
                return refusal[0]
            raise kubelet.unreachable(path, err) from err
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            raise kubelet.unreachable(path, err) from err
        async with upstream:
            chosen = (upstream.protocol,) if upstream.protocol else ()
            ws = web.WebSocketResponse(protocols=chosen, max_msg_size=0)
            await ws.prepare(request)
            tasks = [
                asyncio.create_task(relay_messages(ws, upstream)),
                asyncio.create_task(relay_messages(upstream, ws)),
            ]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await ws.close(code=sendable_close_code(upstream.close_code))
            return ws
