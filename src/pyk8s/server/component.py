"""What every long-running pyk8s component shares: /healthz and /metrics over HTTP,
JSON logs, and a clean stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest


class HealthServer:
    """``/healthz`` (200 ``ok`` while ``healthy()``, else 500) and ``/metrics``."""

    def __init__(
        self, registry: CollectorRegistry, healthy: Callable[[], bool], host: str, port: int
    ) -> None:
        self.registry = registry
        self.healthy = healthy
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._healthz)
        app.router.add_get("/livez", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, reuse_address=True).start()

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


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
