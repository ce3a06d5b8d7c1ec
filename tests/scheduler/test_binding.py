"""The binding cycle runs beside the scheduling loop: a failed bind forgets the assumed pod
and tries it again, and the loop keeps scheduling other pods while a bind is outstanding.

The scheduler runs against a real API server; its ``client.bind`` is wrapped so the test
decides when (and whether) a bind reaches the server. Every wait is on something the
scheduler did (a bind call, a pod's ``spec.nodeName``, an Event), never on a sleep.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import generate_latest

from pyk8s.client import ApiError, Client
from pyk8s.scheduler import Scheduler
from tests.scheduler.conftest import eventually
from tests.scheduler.test_scheduler import EVENTS, PODS, MakeNode, make_node, node_of, pod

__all__ = ["make_node"]  # the fixture, used by name


class HeldBinds:
    """Wraps a scheduler's ``client.bind``: the first ``fail`` binds are refused with a 500
    (as an API server that could not write would), and binds of pods in ``hold`` wait for
    ``release``. ``calls`` lists (pod name, node) per attempt."""

    def __init__(self, client: Client, fail: int = 0, hold: frozenset[str] = frozenset()):
        self.real = client.bind
        self.fail = fail
        self.hold = hold
        self.release = asyncio.Event()
        self.calls: list[tuple[str, str]] = []
        self.called = asyncio.Condition()

    async def bind(
        self, namespace: str, name: str, node_name: str, *, uid: str | None = None
    ) -> Any:
        async with self.called:
            self.calls.append((name, node_name))
            self.called.notify_all()
        if len(self.calls) <= self.fail:
            raise ApiError(500, "InternalError", "etcdserver: request timed out", {})
        if name in self.hold:
            await self.release.wait()
        return await self.real(namespace, name, node_name, uid=uid)

    async def wait_calls(self, n: int) -> None:
        async with self.called:
            await asyncio.wait_for(self.called.wait_for(lambda: len(self.calls) >= n), 60)


async def _run(sched: Scheduler) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    return stop, asyncio.create_task(sched.run(stop))


async def test_failed_bind_forgets_the_pod_and_binds_it_on_retry(
    client: Client, namespace: str, make_node: MakeNode
) -> None:
    assert PODS is not None and EVENTS is not None
    node = await make_node("only", cpu="1")
    # the scheduler's own client, so wrapping its bind leaves the test's client alone
    own = Client(client.config)
    binds = HeldBinds(own, fail=1)
    own.bind = binds.bind  # type: ignore[method-assign]
    sched = Scheduler(own)
    stop, task = await _run(sched)
    try:
        # 600m of a 1-cpu node: were the failed attempt's assumption kept, the retry
        # would not fit (600m + 600m > 1) and the pod would never be tried again
        await client.create(PODS, pod("p", cpu="600m"), namespace)
        await binds.wait_calls(2)  # refused once, then tried again
        assert binds.calls == [("p", node), ("p", node)]
        assert await eventually(lambda: node_of(client, namespace, "p"), within=30) == node
        key = f"{namespace}/p"

        async def observed() -> bool:  # the scheduler's informer saw the binding
            return key in sched.cache.pods and not sched.cache.is_assumed(key)

        await eventually(observed, within=30)
        assert sched.cache.pods[key][0] == node
        assert sched.cache.nodes[node].requested.get("cpu") == 600  # counted once

        async def failed_event() -> dict[str, Any] | None:
            evs = await client.list(EVENTS, namespace, field_selector="reason=FailedScheduling")
            return next(iter(evs["items"]), None)

        ev = await eventually(failed_event, within=30)
        assert ev["involvedObject"]["name"] == "p"
        assert ev["message"].startswith("Binding rejected: ")
        assert "etcdserver: request timed out" in ev["message"]
        result = 'result="error"'
        assert any(
            result in line and line.startswith("scheduler_schedule_attempts_total")
            for line in _metrics(sched)
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await own.close()


async def test_cycles_go_on_while_a_bind_is_outstanding(
    client: Client, namespace: str, make_node: MakeNode
) -> None:
    """A bind held in the API round trip does not hold the loop: the next pods are
    scheduled and bound meanwhile, counting the held pod as assumed on its node."""
    assert PODS is not None
    node = await make_node("one", cpu="1")
    own = Client(client.config)
    binds = HeldBinds(own, hold=frozenset({"first"}))
    own.bind = binds.bind  # type: ignore[method-assign]
    sched = Scheduler(own)
    stop, task = await _run(sched)
    try:
        await client.create(PODS, pod("first", cpu="600m"), namespace)
        await binds.wait_calls(1)  # "first" is in its bind, not yet bound
        assert sched.cache.is_assumed(f"{namespace}/first")
        await client.create(PODS, pod("second", cpu="300m"), namespace)
        assert await eventually(lambda: node_of(client, namespace, "second"), within=30) == node
        assert not await node_of(client, namespace, "first")
        # the held pod's 600m counted: a third 300m pod no longer fits on the 1-cpu node
        assert sched.cache.nodes[node].requested.get("cpu") == 900
        binds.release.set()
        assert await eventually(lambda: node_of(client, namespace, "first"), within=30) == node
    finally:
        binds.release.set()
        stop.set()
        await asyncio.wait_for(task, 30)
        await own.close()


def _metrics(sched: Scheduler) -> list[str]:
    return generate_latest(sched.registry).decode().splitlines()
