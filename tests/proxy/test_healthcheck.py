"""The health-check node port server: upstream's JSON and status codes, ports opened and
closed as the Local-policy load balancers come and go."""

from __future__ import annotations

import aiohttp

from pyk8s.proxy.healthcheck import HealthCheckServer
from pyk8s.proxy.model import HealthCheck
from tests.integration.conftest import free_port


async def test_answers_local_endpoints_and_closes_ports() -> None:
    server = HealthCheckServer(lambda: True, "127.0.0.1")
    with_endpoints, without = free_port(), free_port()
    await server.sync(
        {
            with_endpoints: HealthCheck("default", "web", with_endpoints, 2),
            without: HealthCheck("default", "api", without, 0),
        }
    )
    try:
        connector = aiohttp.TCPConnector(force_close=True)  # a new connection per check
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get(f"http://127.0.0.1:{with_endpoints}/healthz") as resp:
                assert resp.status == 200
                assert resp.headers["X-Load-Balancing-Endpoint-Weight"] == "2"
                assert await resp.json() == {
                    "service": {"namespace": "default", "name": "web"},
                    "localEndpoints": 2,
                    "serviceProxyHealthy": True,
                }
            async with session.get(f"http://127.0.0.1:{without}/") as resp:
                assert resp.status == 503
                assert (await resp.json())["localEndpoints"] == 0
            await server.sync({with_endpoints: HealthCheck("default", "web", with_endpoints, 1)})
            assert server.ports == [with_endpoints]
            try:
                async with session.get(f"http://127.0.0.1:{without}/") as resp:
                    closed = False
            except aiohttp.ClientConnectionError:
                closed = True
            assert closed, "the port of a removed health check still answers"
    finally:
        await server.stop()


async def test_the_default_address_answers_on_both_families() -> None:
    """``0.0.0.0`` (the default) is every address, IPv6 too, on one port, as upstream's
    Go listener: a load balancer health-checks an IPv6 node address as well."""
    server = HealthCheckServer(lambda: True)
    port = free_port()
    await server.sync({port: HealthCheck("default", "web", port, 1)})
    try:
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            for host in ("127.0.0.1", "[::1]"):
                async with session.get(f"http://{host}:{port}/") as resp:
                    assert resp.status == 200, host
                    assert (await resp.json())["localEndpoints"] == 1
    finally:
        await server.stop()
