"""An API server in the test's own process, whose served resources a test can change.

The controller tests normally run against a server process (``conftest.py``); the
tests of resources that appear and disappear while controllers run (custom resources)
need the server's registry in hand instead. ``in_process_server(tmp_path)`` starts an
:class:`APIServer` over SQLite on a loopback port, with a registry of its own (never
the module-level one, which other tests share); ``serve(resource)`` and
``withdraw(resource)`` add and remove a resource while it runs, as a
CustomResourceDefinition does, and discovery follows.

It can also play an older or an ailing server: ``legacy_only`` answers discovery only
in the legacy per-group-version form (aggregated discovery is not asked for by the
``Accept`` header any more), and paths in ``failing`` answer 503. ``requests`` records
every request (method, path), so a test can see which were made.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer

from pyk8s.api.registry import RESOURCES, Registry, Resource
from pyk8s.apiserver.server import APIServer, Config
from pyk8s.client import Client
from pyk8s.client import Config as ClientConfig
from pyk8s.storage.sqlite import SqliteStore

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class InProcessServer:
    server: APIServer
    url: str
    #: paths answered with 503 (a group version that cannot be discovered)
    failing: set[str] = field(default_factory=set)
    legacy_only: bool = False
    requests: list[tuple[str, str]] = field(default_factory=list)

    @property
    def registry(self) -> Registry:
        return self.server.registry

    def client(self) -> Client:
        return Client(ClientConfig(server=self.url))

    def serve(self, resource: Resource) -> None:
        """Start serving ``resource`` (as an established CRD does)."""
        registry = self.server.registry
        if hasattr(registry, "add"):
            registry.add(resource)
        else:  # pragma: no cover - before the registry became mutable
            self._replace(Registry([*registry, resource]))

    def withdraw(self, resource: Resource) -> None:
        """Stop serving ``resource`` (as a deleted CRD does)."""
        registry = self.server.registry
        if hasattr(registry, "remove"):
            registry.remove(resource.group, resource.version, resource.plural)
        else:  # pragma: no cover - before the registry became mutable
            self._replace(Registry([r for r in registry if r != resource]))

    def _replace(self, registry: Registry) -> None:
        self.server.registry = registry
        self.server.handlers.registry = registry

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if request.path in self.failing:
            return web.json_response(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "message": "the server is currently unable to handle the request",
                    "reason": "ServiceUnavailable",
                    "code": 503,
                },
                status=503,
            )
        if self.legacy_only and request.path in ("/api", "/apis"):
            request = request.clone(headers={**request.headers, "Accept": "application/json"})
        return await handler(request)


@contextlib.asynccontextmanager
async def in_process_server(
    tmp_path: Path, extra: Iterable[Resource] = (), *, legacy_only: bool = False
) -> AsyncIterator[InProcessServer]:
    """A running in-process server serving the built-in resources plus ``extra``."""
    store = await SqliteStore.open(tmp_path / "state.db")
    server = APIServer(
        store, config=Config(compact_interval=0), registry=Registry([*RESOURCES, *extra])
    )
    await server.start()
    holder: list[InProcessServer] = []

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await holder[0]._middleware(request, handler)

    app = web.Application(middlewares=[middleware], client_max_size=4 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", server.handle)
    http = TestServer(app, host="127.0.0.1")
    await http.start_server()
    ips = InProcessServer(server, str(http.make_url("")).rstrip("/"), legacy_only=legacy_only)
    holder.append(ips)
    try:
        yield ips
    finally:
        await http.close()
        await server.stop()
        await store.close()
