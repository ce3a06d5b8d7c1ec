"""The kubelet's HTTPS server (port 10250): logs, exec, attach, port-forward, stats, metrics.

Why this exists: ``kubectl logs/exec/attach/cp/port-forward`` reach a container through
the API server, which calls the kubelet of the pod's node on these upstream paths:

* ``GET /containerLogs/{ns}/{pod}/{container}`` -- the container's log, read from the CRI
  log file (:mod:`pyk8s.kubelet.logs`) with the pod-log options, streamed when following;
* ``/exec/…``, ``/attach/…``, ``/portForward/{ns}/{pod}`` -- upgrade requests (SPDY/3.1 or
  WebSocket, whatever the caller asked for). Like upstream's kubelet we ask the CRI
  runtime for a one-time streaming URL and then proxy the connection to it byte for
  byte, the upgrade handshake included: containerd's stream server (a copy of upstream's
  kubelet streaming library) does the protocol, so the ones upstream's kubelet speaks
  are spoken here -- SPDY, and WebSocket with ``channel.k8s.io``,
  ``base64.channel.k8s.io`` and their ``v4.`` versions for exec/attach and port-forward.
  A WebSocket port-forward names its ports up front (``port`` query parameters); like
  upstream's kubelet we check them and put them in the CRI request, whose ports are
  the ones containerd serves;
* ``/healthz``, ``/metrics`` and ``/stats/summary`` (served by a callback the kubelet
  passes in, 404 without one).

aiohttp serves the plain requests. It cannot hand over the socket of an arbitrary
upgrade (it only knows WebSocket), so each connection first passes a small front door
that reads the request head and either gives the connection to aiohttp or keeps it for
the raw proxy; aiohttp then closes the connection after its one response, so every
request passes the front door. Containers are found through the labels the kubelet puts on them
(``io.kubernetes.pod.namespace/name``, ``io.kubernetes.container.name``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from prometheus_client import CollectorRegistry, generate_latest

from pyk8s.api.dualstack import wildcard_listener
from pyk8s.kubelet.auth import KubeletAuth
from pyk8s.kubelet.cri import ContainerRuntime, CRIError, api_pb2
from pyk8s.kubelet.logs import LogNotFoundError, LogOptions, previous_log_path, read_logs
from pyk8s.kubelet.stats import resource_metrics

__all__ = ["KubeletServer", "kubelet_ssl_context"]

log = logging.getLogger(__name__)

POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_NAME = "io.kubernetes.pod.name"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"

#: the largest request head the front door reads before giving up
MAX_HEAD = 64 * 1024
_STREAMING = ("/exec/", "/attach/", "/portForward/")
_PIPE_CHUNK = 64 * 1024

Summary = Callable[[], Awaitable[dict[str, Any]]]


class _HTTPError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- TLS


def kubelet_ssl_context(cert_dir: Path, client_ca: Path | None) -> ssl.SSLContext:
    """The serving context: ``cert_dir/kubelet.{crt,key}`` (self-signed, made once, as
    upstream's kubelet does without a CA-issued serving cert); with ``client_ca``, only
    clients presenting a cert signed by it get through the handshake."""
    cert_dir.mkdir(parents=True, exist_ok=True)
    crt, key = cert_dir / "kubelet.crt", cert_dir / "kubelet.key"
    if not (crt.exists() and key.exists()):
        _write_self_signed(crt, key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(crt, key)
    ctx.set_alpn_protocols(["http/1.1"])
    if client_ca is not None:
        ctx.load_verify_locations(cafile=client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _write_self_signed(crt: Path, key_path: Path) -> None:
    host = socket.gethostname()
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{host}@{int(now.timestamp())}")])
    sans = [
        x509.DNSName(host),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    key_path.touch(mode=0o600)
    key_path.write_bytes(key_pem)
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


# --------------------------------------------------------------------------- finding things


def _current(containers: list[api_pb2.Container]) -> api_pb2.Container | None:
    """The container of the latest attempt, a running one first."""
    if not containers:
        return None
    return max(
        containers,
        key=lambda c: (c.metadata.attempt, c.state == api_pb2.CONTAINER_RUNNING, c.created_at),
    )


def _flag(query: Mapping[str, list[str]], name: str) -> bool:
    return (query.get(name) or [""])[-1] in ("1", "true", "True")


def _int(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"invalid {name}: {raw!r}") from None


def _log_options(query: Mapping[str, str]) -> LogOptions:
    since_time = None
    if query.get("sinceTime"):
        try:
            since_time = datetime.datetime.fromisoformat(query["sinceTime"].replace("Z", "+00:00"))
        except ValueError:
            raise web.HTTPBadRequest(text=f"invalid sinceTime: {query['sinceTime']!r}") from None
    return LogOptions(
        tail_lines=_int(query, "tailLines"),
        since_seconds=_int(query, "sinceSeconds"),
        since_time=since_time,
        timestamps=query.get("timestamps") in ("1", "true"),
        limit_bytes=_int(query, "limitBytes"),
        follow=query.get("follow") in ("1", "true"),
    )


# --------------------------------------------------------------------------- the server


class KubeletServer:
    """The kubelet's HTTPS endpoint on ``host:port`` (port 0: any free one, see ``port``)."""

    def __init__(
        self,
        cri: ContainerRuntime,
        *,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        registry: CollectorRegistry | None = None,
        summary: Summary | None = None,
        cadvisor: Callable[[], Awaitable[str]] | None = None,
        probe_registry: CollectorRegistry | None = None,
        auth: KubeletAuth | None = None,
    ) -> None:
        self.cri = cri
        #: who may call (upstream's webhook authn/authz); None: whoever passes TLS
        self.auth = auth
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.registry = registry or CollectorRegistry()
        self.summary = summary
        self.cadvisor = cadvisor
        self.probe_registry = probe_registry
        self.app = web.Application()
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_get("/stats/summary", self._summary)
        self.app.router.add_get("/metrics/resource", self._resource_metrics)
        self.app.router.add_get("/metrics/cadvisor", self._cadvisor_metrics)
        self.app.router.add_get("/metrics/probes", self._probe_metrics)
        self.app.router.add_get("/containerLogs/{ns}/{pod}/{container}", self._logs)
        for prefix in _STREAMING:
            self.app.router.add_route("*", prefix + "{tail:.*}", self._upgrade_required)
        # One request per connection: the front door only sees a connection's first
        # request, and a later upgrade on a kept-alive connection would miss it.
        self.app.on_response_prepare.append(_close_after)
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._streams: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self._runner.setup()
        loop = asyncio.get_running_loop()
        # --address 0.0.0.0 (the default) serves both families, as upstream's Go listener
        sock = wildcard_listener(self.host, self.port)
        if sock is not None:
            self._listener = await loop.create_server(
                lambda: _FrontDoor(self), sock=sock, ssl=self.ssl_context
            )
        else:
            self._listener = await loop.create_server(
                lambda: _FrontDoor(self), self.host, self.port, ssl=self.ssl_context
            )
        self.port = self._listener.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
        for task in list(self._streams):
            task.cancel()
        if self._streams:
            await asyncio.wait(self._streams, timeout=5)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._listener is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._listener.wait_closed(), 5)
        self._listener = self._runner = None

    # ---- plain requests (aiohttp) ----

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry),
            headers={"Content-Type": "text/plain; version=0.0.4"},
        )

    async def _summary(self, request: web.Request) -> web.Response:
        if self.summary is None:
            raise web.HTTPNotFound(text="404 page not found\n")
        return web.Response(
            body=orjson.dumps(await self.summary()), content_type="application/json"
        )

    async def _resource_metrics(self, request: web.Request) -> web.Response:
        """What metrics-server scrapes: CPU and memory of the node, pods and containers."""
        if self.summary is None:
            raise web.HTTPNotFound(text="404 page not found\n")
        return web.Response(
            text=resource_metrics(await self.summary()),
            headers={"Content-Type": "text/plain; version=0.0.4"},
        )

    async def _cadvisor_metrics(self, request: web.Request) -> web.Response:
        """Container series for Prometheus (cAdvisor's names and labels)."""
        if self.cadvisor is None:
            raise web.HTTPNotFound(text="404 page not found\n")
        return web.Response(
            text=await self.cadvisor(), headers={"Content-Type": "text/plain; version=0.0.4"}
        )

    async def _probe_metrics(self, request: web.Request) -> web.Response:
        """``prober_probe_total`` by probe type, result, container and pod."""
        if self.probe_registry is None:
            raise web.HTTPNotFound(text="404 page not found\n")
        return web.Response(
            body=generate_latest(self.probe_registry),
            headers={"Content-Type": "text/plain; version=0.0.4"},
        )

    async def _upgrade_required(self, request: web.Request) -> web.Response:
        raise web.HTTPBadRequest(text="Upgrade request required")

    async def find_container(self, ns: str, pod: str, container: str) -> api_pb2.Container:
        labels = {POD_NAMESPACE: ns, POD_NAME: pod}
        if not await self.cri.list_pod_sandbox(labels=labels):
            raise _HTTPError(404, f'pod "{pod}_{ns}" does not exist')
        found = _current(
            await self.cri.list_containers(labels={**labels, CONTAINER_NAME: container})
        )
        if found is None:
            raise _HTTPError(404, f'container "{container}" not found in pod "{pod}_{ns}"')
        return found

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        ns, pod, name = (request.match_info[k] for k in ("ns", "pod", "container"))
        opts = _log_options(request.query)
        try:
            container = await self.find_container(ns, pod, name)
            status = await self.cri.container_status(container.id)
        except _HTTPError as err:
            raise web.HTTPNotFound(text=str(err)) from None
        path = Path(status.log_path)
        if request.query.get("previous") in ("1", "true"):
            try:
                path = previous_log_path(
                    path.parent.parent.parent,
                    ns,
                    pod,
                    container.labels.get(POD_UID, ""),
                    name,
                    container.metadata.attempt,
                )
            except LogNotFoundError as err:
                raise web.HTTPBadRequest(text=str(err)) from None
            opts.follow = False
        elif not path.is_file():
            raise web.HTTPNotFound(text=f'log of container "{name}" in pod "{pod}" not found')
        return await self._stream_log(request, path, opts, container.id)

    async def _stream_log(
        self, request: web.Request, path: Path, opts: LogOptions, container_id: str
    ) -> web.StreamResponse:
        stop = asyncio.Event()
        exited = False

        async def watch() -> None:
            # Stop following when the client went away or the container ended.
            nonlocal exited
            while not stop.is_set():
                transport = request.transport
                if transport is None or transport.is_closing():
                    stop.set()
                with contextlib.suppress(CRIError):
                    state = (await self.cri.container_status(container_id)).state
                    exited = state == api_pb2.CONTAINER_EXITED
                await asyncio.sleep(0.5)

        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        watcher = asyncio.create_task(watch()) if opts.follow else None
        try:
            async for chunk in read_logs(path, opts, stop=stop, container_done=lambda: exited):
                await resp.write(chunk)
        except (ConnectionResetError, LogNotFoundError):
            pass
        finally:
            stop.set()
            if watcher is not None:
                watcher.cancel()
        with contextlib.suppress(ConnectionResetError):
            await resp.write_eof()
        return resp

    # ---- upgrades (raw proxy to the runtime's stream server) ----

    async def stream_url(
        self, path: str, query: Mapping[str, list[str]], *, websocket: bool = False
    ) -> str:
        """Ask the runtime for the streaming URL serving ``path`` (an exec/attach/portForward
        path of this server; ``websocket``: the request is a WebSocket upgrade)."""
        kind, *parts = [unquote(p) for p in path.strip("/").split("/")]
        if kind == "portForward" and len(parts) == 2:
            ns, pod = parts
            ports = _websocket_ports(query) if websocket else []
            sandboxes = await self.cri.list_pod_sandbox(labels={POD_NAMESPACE: ns, POD_NAME: pod})
            ready = [s for s in sandboxes if s.state == api_pb2.SANDBOX_READY]
            if not ready:
                raise _HTTPError(404, f'pod "{pod}_{ns}" does not exist')
            sandbox = max(ready, key=lambda s: s.metadata.attempt)
            return await self.cri.port_forward(sandbox.id, ports)
        if kind not in ("exec", "attach") or len(parts) != 3:
            raise _HTTPError(404, "404 page not found")
        container = await self.find_container(*parts)
        streams = {
            "stdin": _flag(query, "input"),
            "stdout": _flag(query, "output"),
            "stderr": _flag(query, "error"),
            "tty": _flag(query, "tty"),
        }
        if kind == "attach":
            return await self.cri.attach(container.id, **streams)
        command = query.get("command") or []
        if not command:
            raise _HTTPError(400, "you must specify at least 1 command")
        return await self.cri.exec(container.id, command, **streams)

    async def proxy_upgrade(
        self, head: list[bytes], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Serve one upgrade request whose head (request line + header lines) was read."""
        try:
            method, target, _ = head[0].decode("latin-1").split(" ", 2)
            url = urlsplit(target)
            websocket = any(h.lower().replace(b" ", b"") == b"upgrade:websocket" for h in head[1:])
            query = parse_qs(url.query, keep_blank_values=True)
            stream_url = urlsplit(await self.stream_url(url.path, query, websocket=websocket))
            up_reader, up_writer = await asyncio.open_connection(
                stream_url.hostname, stream_url.port or 80
            )
        except _HTTPError as err:
            await _plain_response(writer, err.code, str(err))
            return
        except CRIError as err:
            await _plain_response(writer, 500, str(err))
            return
        except OSError as err:
            await _plain_response(writer, 502, f"cannot reach the runtime's stream server: {err}")
            return
        except Exception as err:
            log.exception("serving %r", head[0])
            await _plain_response(writer, 500, f"{type(err).__name__}: {err}")
            return
        # Re-target the request at the runtime; every other header goes through unchanged.
        request = [f"{method} {stream_url.path or '/'}?{stream_url.query} HTTP/1.1".encode()]
        request.append(f"Host: {stream_url.netloc}".encode())
        request += [h for h in head[1:] if not h.lower().startswith((b"host:", b"authorization:"))]
        up_writer.write(b"\r\n".join(request) + b"\r\n\r\n")
        await _splice(reader, writer, up_reader, up_writer)

    def _track(self, task: asyncio.Task[None]) -> None:
        self._streams.add(task)
        task.add_done_callback(self._streams.discard)


def _websocket_ports(query: Mapping[str, list[str]]) -> list[int]:
    """The ports of a WebSocket port-forward: every ``port`` query parameter, each a port
    or a comma-separated list of them, with upstream's kubelet's errors."""
    values = query.get("port") or []
    if not values:
        raise _HTTPError(400, 'query parameter "port" is required')
    ports = []
    for value in values:
        if not value:
            raise _HTTPError(400, 'query parameter "port" cannot be empty')
        for item in value.split(","):
            digits = item.isascii() and item.isdigit()
            if not digits or int(item) > 0xFFFF:
                problem = "value out of range" if digits else "invalid syntax"
                raise _HTTPError(
                    400,
                    f'unable to parse "{value}" as a port: '
                    f'strconv.ParseUint: parsing "{item}": {problem}',
                )
            if int(item) < 1:
                raise _HTTPError(400, f'port "{value}" must be > 0')
            ports.append(int(item))
    return ports


async def _close_after(request: web.Request, response: web.StreamResponse) -> None:
    response.force_close()


async def _plain_response(writer: asyncio.StreamWriter, code: int, text: str) -> None:
    body = text.encode()
    reason = HTTPStatus(code).phrase
    writer.write(
        f"HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await src.read(_PIPE_CHUNK):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()


async def _splice(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
) -> None:
    """Copy both ways until either side closes, then close both."""
    tasks = [
        asyncio.create_task(_pipe(a_reader, b_writer)),
        asyncio.create_task(_pipe(b_reader, a_writer)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for w in (a_writer, b_writer):
            w.close()


class _FrontDoor(asyncio.Protocol):
    """Reads a connection's first request head and decides who serves the connection."""

    def __init__(self, server: KubeletServer) -> None:
        self.server = server
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                self.transport.close()
            return
        head = self.buffer[:end].split(b"\r\n")
        rest = self.buffer[end + 4 :]
        if self.server.auth is not None:
            self.transport.pause_reading()
            loop = asyncio.get_running_loop()
            self.server._track(loop.create_task(self._admit(self.server.auth, head, rest)))
            return
        self._dispatch(head, rest)

    async def _admit(self, auth: KubeletAuth, head: list[bytes], rest: bytes) -> None:
        """Authenticate and authorize the request, then serve it or refuse it."""
        transport = self.transport
        assert transport is not None
        method, _, line = head[0].decode("latin-1").partition(" ")
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        refusal = await auth.check(method, line.rsplit(" ", 1)[0], head[1:], der)
        if self.transport is None:
            return  # the client went away meanwhile
        if refusal is not None:
            body = refusal.message.encode()
            transport.write(
                f"HTTP/1.1 {refusal.status} {HTTPStatus(refusal.status).phrase}\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            transport.close()
            return
        transport.resume_reading()
        self._dispatch(head, rest)

    def _dispatch(self, head: list[bytes], rest: bytes) -> None:
        target = head[0].split(b" ")[1] if head[0].count(b" ") >= 2 else b""
        upgrade = any(h.lower().startswith(b"upgrade:") for h in head[1:])
        if upgrade and target.startswith(tuple(p.encode() for p in _STREAMING)):
            self._take(head, rest)
        else:
            self._give_to_aiohttp()

    def _give_to_aiohttp(self) -> None:
        assert self.transport is not None and self.server._runner is not None
        server = self.server._runner.server
        assert server is not None
        proto = server()
        self.transport.set_protocol(proto)
        proto.connection_made(self.transport)
        proto.data_received(self.buffer)

    def _take(self, head: list[bytes], rest: bytes) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_PIPE_CHUNK * 4)
        proto = asyncio.StreamReaderProtocol(reader)
        self.transport.set_protocol(proto)
        proto.connection_made(self.transport)
        if rest:
            reader.feed_data(rest)
        writer = asyncio.StreamWriter(self.transport, proto, reader, loop)
        self.server._track(loop.create_task(self.server.proxy_upgrade(head, reader, writer)))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
