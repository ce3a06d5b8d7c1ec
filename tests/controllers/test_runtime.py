"""The controller runtime: events become keys, reconcile runs level-based, errors back off."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

from pyk8s.api.registry import REGISTRY
from pyk8s.client import Client
from pyk8s.controllers.runtime import Manager, Request, Result, TerminalError
from tests.controllers.conftest import eventually

CONFIGMAPS = REGISTRY.get("", "v1", "configmaps")


class GoneWhileReconciling:
    """Writes the status of an object that has just been deleted: a NotFound."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seen: list[Request] = []

    async def reconcile(self, request: Request) -> Result | None:
        self.seen.append(request)
        assert CONFIGMAPS is not None
        await self.client.get(CONFIGMAPS, "never-there", request.namespace)
        return None


class Recorder:
    def __init__(self, fail_first: int = 0, terminal: bool = False) -> None:
        self.seen: list[Request] = []
        self.fail_first = fail_first
        self.terminal = terminal

    async def reconcile(self, request: Request) -> Result | None:
        self.seen.append(request)
        if self.fail_first > 0:
            self.fail_first -= 1
            if self.terminal:
                raise TerminalError("cannot be fixed")
            raise RuntimeError("transient")
        return None


async def test_events_enqueue_keys_and_errors_are_retried(client: Client, namespace: str) -> None:
    assert CONFIGMAPS is not None
    manager = Manager(client)
    flaky = Recorder(fail_first=2)
    controller = manager.add("flaky", flaky)
    controller.watch(manager.informers.informer(CONFIGMAPS, namespace))
    stop = asyncio.Event()
    task = asyncio.create_task(manager.run(stop))
    try:
        await client.create(CONFIGMAPS, {"metadata": {"name": "a"}}, namespace)
        want = Request(namespace, "a")
        # two failures, then success: at least three reconciles of the same key
        await eventually(lambda: _at_least(flaky.seen, want, 3))
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_terminal_errors_are_not_retried(client: Client, namespace: str) -> None:
    assert CONFIGMAPS is not None
    manager = Manager(client)
    broken = Recorder(fail_first=100, terminal=True)
    controller = manager.add("broken", broken)
    controller.watch(manager.informers.informer(CONFIGMAPS, namespace))
    stop = asyncio.Event()
    task = asyncio.create_task(manager.run(stop))
    try:
        await client.create(CONFIGMAPS, {"metadata": {"name": "t"}}, namespace)
        want = Request(namespace, "t")
        await eventually(lambda: _at_least(broken.seen, want, 1))

        # every reconcile that began has ended (its outcome is counted) and the key is
        # neither queued nor waiting for a backoff delay: nothing will run it again
        async def settled() -> bool:
            errors = manager.metrics_registry.get_sample_value(
                "controller_runtime_reconcile_total", {"controller": "broken", "result": "error"}
            )
            return errors == len(broken.seen)

        await eventually(settled)
        assert _count(broken.seen, want) == 1
        assert controller.queue.num_requeues(want) == 0
        assert controller.queue.num_waiting() == 0 and len(controller.queue) == 0
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_not_found_while_reconciling_is_retried_without_a_traceback(
    client: Client, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert CONFIGMAPS is not None
    manager = Manager(client)
    gone = GoneWhileReconciling(client)
    controller = manager.add("gone", gone)
    controller.watch(manager.informers.informer(CONFIGMAPS, namespace))
    stop = asyncio.Event()
    task = asyncio.create_task(manager.run(stop))
    try:
        with caplog.at_level(logging.INFO, logger="pyk8s.controllers.runtime.controller"):
            await client.create(CONFIGMAPS, {"metadata": {"name": "g"}}, namespace)
            want = Request(namespace, "g")
            # retried (level-based), as any error is
            await eventually(lambda: _at_least(gone.seen, want, 2))
        about = [r for r in caplog.records if "gone" in r.getMessage()]
        assert about and all(r.levelno == logging.INFO and not r.exc_info for r in about)
        assert "NotFound" in about[0].getMessage()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def _count(seen: list[Request], want: Request) -> int:
    return sum(1 for r in seen if r == want)


async def _at_least(seen: list[Request], want: Request, n: int) -> bool:
    return _count(seen, want) >= n


async def test_a_controller_starts_once_its_own_informers_sync(
    client: Client, namespace: str
) -> None:
    """Upstream's model: each controller waits for its own caches. One whose informer
    cannot sync (its resource is not served) holds back only itself."""
    assert CONFIGMAPS is not None
    manager = Manager(client)
    ready, stuck = Recorder(), Recorder()

    def set_up_ready() -> None:
        manager.add("ready", ready).watch(manager.informers.informer(CONFIGMAPS, namespace))

    def set_up_stuck() -> None:
        widgets = manager.informers.informer(("example.com/v1", "Widget"), namespace)
        manager.add("stuck", stuck).watch(widgets)

    manager.set_up(set_up_ready)
    manager.set_up(set_up_stuck)
    stop = asyncio.Event()
    task = asyncio.create_task(manager.run(stop))
    try:
        await client.create(CONFIGMAPS, {"metadata": {"name": "a"}}, namespace)

        async def reconciled() -> bool:
            return Request(namespace, "a") in ready.seen

        await eventually(reconciled)
        assert not manager.healthy and not stuck.seen  # "stuck" has not started
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_a_set_up_waiting_for_its_credentials_holds_back_only_itself(
    client: Client, namespace: str
) -> None:
    assert CONFIGMAPS is not None
    manager = Manager(client)
    first, late = Recorder(), Recorder()
    manager.set_up(
        lambda: manager.add("first", first).watch(manager.informers.informer(CONFIGMAPS, namespace))
    )
    credentials: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    manager.set_up_when(
        credentials,
        lambda: manager.add("late", late).watch(manager.informers.informer(CONFIGMAPS, namespace)),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(manager.run(stop))
    try:
        await client.create(CONFIGMAPS, {"metadata": {"name": "a"}}, namespace)

        async def seen_by(recorder: Recorder) -> bool:
            return Request(namespace, "a") in recorder.seen

        await eventually(lambda: seen_by(first))
        assert not manager.healthy and not late.seen  # set up only once its credentials are
        credentials.set_result(None)
        await eventually(lambda: seen_by(late))
        await eventually(_healthy(manager))
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def _healthy(manager: Manager) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return manager.healthy

    return check
