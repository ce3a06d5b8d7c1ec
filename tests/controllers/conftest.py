"""Controller tests: a real API server process, and controllers running in the test's
event loop through a Manager, exactly as `pyk8s controller-manager` runs them.

``run_controllers("namespace", "garbagecollector")`` starts a Manager with those
controllers (no leader election) and returns it; it is stopped after the test.
``client`` is a pyk8s.client.Client against the server (for arranging and checking).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any

import pytest

from pyk8s.client import ApiError, Client, load_kubeconfig
from pyk8s.controllers.runtime import Manager
from pyk8s.server.controller_manager import setup_controllers
from tests.integration.conftest import Server, free_port


@pytest.fixture(scope="session")
def cm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("cm") / "data", free_port()).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def client(cm_server: Server) -> AsyncIterator[Client]:
    async with Client(load_kubeconfig(cm_server.kubeconfig)) as c:
        yield c


@pytest.fixture
async def run_controllers(
    cm_server: Server,
) -> AsyncIterator[Callable[..., Awaitable[Manager]]]:
    running: list[tuple[Manager, asyncio.Event, asyncio.Task[None], Client]] = []

    async def start(*names: str) -> Manager:
        c = Client(load_kubeconfig(cm_server.kubeconfig))
        await c.__aenter__()
        manager = Manager(c)
        done = setup_controllers(manager, list(names))
        assert done == list(names), f"controllers not built: {set(names) - set(done)}"
        stop = asyncio.Event()
        task = asyncio.create_task(manager.run(stop))
        running.append((manager, stop, task, c))
        for _ in range(300):
            if manager.healthy:
                break
            await asyncio.sleep(0.1)
        assert manager.healthy, "controllers did not start"
        return manager

    yield start
    for _manager, stop, task, c in running:
        stop.set()
        await asyncio.wait_for(task, 30)
        await c.__aexit__(None, None, None)


@pytest.fixture
async def namespace(client: Client) -> str:
    """A fresh namespace for one test."""
    from pyk8s.api.registry import REGISTRY

    name = f"t-{uuid.uuid4().hex[:8]}"
    ns = REGISTRY.get("", "v1", "namespaces")
    assert ns is not None
    await client.create(ns, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


async def eventually(
    check: Callable[[], Awaitable[Any]], within: float = 20.0, every: float = 0.2
) -> Any:
    """Poll ``check`` until it returns something truthy (returned) or fail after
    ``within`` seconds with the last value/error. Bounded: tests never hang."""
    last: Any = None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        try:
            last = await check()
            if last:
                return last
        except AssertionError as err:
            last = err
        await asyncio.sleep(every)
    raise AssertionError(f"condition not met within {within}s; last: {last!r}")


async def serve_crds(client: Client, crds: Iterable[dict[str, Any]]) -> None:
    """Create ``crds`` (one that exists is kept) and wait until each kind is listed, as
    ``pyk8s server`` registers k3s's Addon and HelmChart CRDs at start."""
    crd_kind = ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    for crd in crds:
        try:
            await client.create(crd_kind, crd)
        except ApiError as err:
            if err.status != 409:
                raise
        spec = crd["spec"]
        kind = (f"{spec['group']}/{spec['versions'][0]['name']}", spec["names"]["kind"])

        async def listed(kind: tuple[str, str] = kind) -> bool:
            try:
                await client.list(kind, "default", limit=1)
            except ApiError:
                return False
            return True

        await eventually(listed)
