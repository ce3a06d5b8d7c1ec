"""The health-check node ports of Local-policy load balancers, served by the proxy.

A load balancer in front of a ``externalTrafficPolicy: Local`` Service asks every node
``http://<node>:<spec.healthCheckNodePort>/`` whether it has endpoints of the service;
as upstream's kube-proxy, any path answers JSON
``{"service": {"namespace": …, "name": …}, "localEndpoints": N, "serviceProxyHealthy": …}``
with 200 when N > 0 (and the proxy is healthy), 503 otherwise, and the header
``X-Load-Balancing-Endpoint-Weight: N``. :class:`HealthCheckServer` opens and closes one
listener per port as :meth:`HealthCheckServer.sync` is told which ports exist (from
:func:`pyk8s.proxy.model.health_checks`, so every proxy mode serves the same).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import orjson
from aiohttp import web

from pyk8s.api.dualstack import wildcard_listener
from pyk8s.proxy.model import HealthCheck

__all__ = ["HealthCheckServer"]

log = logging.getLogger(__name__)


class HealthCheckServer:
    def __init__(self, healthy: Callable[[], bool], bind_address: str = "0.0.0.0") -> None:
        self.healthy = healthy
        self.bind_address = bind_address
        self.checks: dict[int, HealthCheck] = {}
        self._sites: dict[int, web.BaseSite] = {}
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._started = False

    async def _handle(self, request: web.Request) -> web.Response:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        check = self.checks.get(int(sockname[1])) if sockname else None
        if check is None:
            return web.Response(status=404, text="no such health check\n")
        healthy = self.healthy()
        body = {
            "service": {"namespace": check.namespace, "name": check.service},
            "localEndpoints": check.local_endpoints,
            "serviceProxyHealthy": healthy,
        }
        ok = check.local_endpoints > 0 and healthy
        return web.Response(
            status=200 if ok else 503,
            body=orjson.dumps(body),
            content_type="application/json",
            headers={
                "X-Content-Type-Options": "nosniff",
                "X-Load-Balancing-Endpoint-Weight": str(check.local_endpoints),
            },
        )

    async def sync(self, checks: Mapping[int, HealthCheck]) -> None:
        """Serve exactly these ports (a port that cannot be bound is logged and retried
        on the next sync)."""
        if not self._started:
            await self._runner.setup()
            self._started = True
        self.checks = dict(checks)
        for port in set(self._sites) - set(checks):
            await self._sites.pop(port).stop()
        for port in sorted(set(checks) - set(self._sites)):
            try:
                # both families on a wildcard address, as upstream's health servers
                sock = wildcard_listener(self.bind_address, port)
                site = (
                    web.SockSite(self._runner, sock)
                    if sock is not None
                    else web.TCPSite(self._runner, self.bind_address, port, reuse_address=True)
                )
                await site.start()
            except OSError as err:
                log.warning("health check port %d unavailable: %s", port, err)
                continue
            self._sites[port] = site

    @property
    def ports(self) -> list[int]:
        return sorted(self._sites)

    async def stop(self) -> None:
        self._sites.clear()
        if self._started:
            await self._runner.cleanup()
            self._started = False
