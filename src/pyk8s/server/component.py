"""What every long-running pyk8s component shares: /healthz and /metrics over HTTP,
JSON logs, and a clean stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import re
import signal
import ssl
import weakref
from collections.abc import Callable, Sequence

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from pyk8s.api.dualstack import wildcard_listener


def tcp_site(
    runner: web.BaseRunner,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None = None,
    *,
    reuse_port: bool = False,
) -> web.BaseSite:
    """An aiohttp site at ``host:port``; a wildcard host (``0.0.0.0``, ``::``) serves
    both IP families on one port, as upstream's Go listeners do. ``reuse_port``
    (SO_REUSEPORT): processes that all set it listen on the same port, the kernel
    spreading new connections over them (the API server's ``--apiserver-workers``)."""
    sock = wildcard_listener(host, port, reuse_port=reuse_port)
    if sock is not None:
        return web.SockSite(runner, sock, ssl_context=ssl_context)
    return web.TCPSite(
        runner,
        host,
        port,
        ssl_context=ssl_context,
        reuse_address=True,
        reuse_port=reuse_port or None,
    )


class HealthServer:
    """``/healthz`` (200 ``ok`` while ``healthy()``, else 500) and ``/metrics``, and
    whatever ``routes`` a component serves next to them."""

    def __init__(
        self,
        registry: CollectorRegistry,
        healthy: Callable[[], bool],
        host: str,
        port: int,
        routes: Sequence[web.RouteDef] = (),
    ) -> None:
        self.registry = registry
        self.routes = routes
        self.healthy = healthy
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._healthz)
        app.router.add_get("/livez", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_routes(self.routes)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await tcp_site(self._runner, self.host, self.port).start()
        self.port = int(self._runner.addresses[0][1])  # port 0: the one bound

    async def _healthz(self, _: web.Request) -> web.Response:
        if self.healthy():
            return web.Response(text="ok")
        return web.Response(status=500, text="not ready")

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry),
            headers={"Content-Type": "text/plain; version=0.0.4"},
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


#: per event loop, the events :func:`stop_on_signals` handed out (several components may
#: share a process and its loop: :mod:`pyk8s.server.cohost`)
_stops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.WeakSet[asyncio.Event]] = (
    weakref.WeakKeyDictionary()
)
#: the loops :func:`stop_all` has stopped: an event asked for later is set at once
_stopped: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (and by :func:`stop_all`), as every other one
    this loop handed out."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    _stops.setdefault(loop, weakref.WeakSet()).add(stop)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_all, loop)
    if loop in _stopped:
        stop.set()
    return stop


def stop_all(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Set every event :func:`stop_on_signals` handed out in ``loop`` (the running one),
    and those it hands out from now on: each component in the process stops."""
    loop = loop or asyncio.get_running_loop()
    _stopped.add(loop)
    for stop in list(_stops.get(loop, ())):
        stop.set()


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, flag: str) -> float:
    """A Go duration flag value (``15s``, ``1m30s``, ``500ms``; ``0`` alone) in seconds;
    ValueError naming ``flag`` otherwise, as a Go component refuses it."""
    if text == "0":
        return 0.0
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f'invalid argument "{text}" for "--{flag}" flag: invalid duration')
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
