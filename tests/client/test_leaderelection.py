"""Two electors on one Lease: exactly one leads; the other takes over when it stops."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from pyk8s.client import Client, LeaderElectionConfig, LeaderElector
from pyk8s.client.leaderelection import micro_time, parse_micro_time
from tests.client.conftest import LEASES

FAST = {"lease_duration": 2.0, "renew_deadline": 1.5, "retry_period": 0.2}


class Candidate:
    def __init__(self, client: Client, lock: str, ns: str, name: str, **kw: Any) -> None:
        self.name = name
        self.log: list[str] = []
        self.leaders: list[str] = []
        self.working = False
        self.elector = LeaderElector(
            client,
            LeaderElectionConfig(
                lock_name=lock,
                lock_namespace=ns,
                identity=name,
                on_started_leading=self._work,
                on_stopped_leading=lambda: self.log.append("stopped"),
                on_new_leader=self.leaders.append,
                **{**FAST, **kw},
            ),
        )
        self.task = asyncio.create_task(self.elector.run())

    async def _work(self) -> None:
        self.log.append("started")
        self.working = True
        try:
            await asyncio.Event().wait()
        finally:
            self.working = False


async def wait_for(cond: Any, within: float) -> float:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    while not cond():
        if loop.time() - t0 > within:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
    return loop.time() - t0


async def exactly_one_leads(a: Candidate, b: Candidate, for_seconds: float) -> Candidate:
    loop = asyncio.get_running_loop()
    end = loop.time() + for_seconds
    leader = a if a.elector.is_leader() else b
    while loop.time() < end:
        assert a.elector.is_leader() != b.elector.is_leader()
        assert (a if a.elector.is_leader() else b) is leader
        await asyncio.sleep(0.05)
    return leader


@pytest.mark.parametrize("clean", [True, False], ids=["release", "crash"])
async def test_one_leader_and_takeover(client: Client, ns: str, clean: bool) -> None:
    lock = f"lock-{uuid.uuid4().hex[:6]}"
    a = Candidate(client, lock, ns, "a", release_on_cancel=clean)
    b = Candidate(client, lock, ns, "b", release_on_cancel=clean)
    try:
        await wait_for(lambda: a.elector.is_leader() or b.elector.is_leader(), 5)
        leader = await exactly_one_leads(a, b, 1.0)
        standby = b if leader is a else a
        assert leader.working and not standby.working
        assert standby.elector.get_leader() == leader.name
        assert leader.name in standby.leaders

        lease = await client.get(LEASES, lock, ns)
        spec = lease["spec"]
        assert spec["holderIdentity"] == leader.name
        assert spec["leaseDurationSeconds"] == 2
        transitions = spec["leaseTransitions"]
        assert parse_micro_time(spec["renewTime"]) is not None
        assert len(spec["renewTime"]) == len(micro_time())  # …T10:00:00.123456Z

        if clean:
            leader.elector.stop()  # releases the lease
            await asyncio.wait_for(leader.task, 5)
        else:
            leader.task.cancel()  # no release: the standby waits out the lease
            await asyncio.gather(leader.task, return_exceptions=True)
        assert leader.log == ["started", "stopped"] and not leader.working
        # the standby takes over (after the 2 s lease expires when the leader crashed) and
        # its on_started callback runs; is_leader() turns true just before that callback
        await wait_for(lambda: standby.elector.is_leader() and standby.working, 6)

        spec = (await client.get(LEASES, lock, ns))["spec"]
        assert spec["holderIdentity"] == standby.name
        assert spec["leaseTransitions"] == transitions + 1
    finally:
        for c in (a, b):
            c.elector.stop()
        await asyncio.gather(a.task, b.task, return_exceptions=True)
    spec = (await client.get(LEASES, lock, ns))["spec"]
    # the last leader released the lease on a clean stop (only when told to)
    assert spec["holderIdentity"] == ("" if clean else standby.name)


async def test_leader_steps_down_when_it_cannot_renew(client: Client, ns: str) -> None:
    lock = f"lock-{uuid.uuid4().hex[:6]}"
    a = Candidate(client, lock, ns, "a")
    await wait_for(a.elector.is_leader, 5)
    # someone else force-takes the lease: a's renewals fail (held by another, not expired)
    lease = await client.get(LEASES, lock, ns)
    lease["spec"]["holderIdentity"] = "intruder"
    # unconditional (no resourceVersion): a renewal of a's landing in between is no conflict
    del lease["metadata"]["resourceVersion"]
    await client.update(LEASES, lease)
    await asyncio.wait_for(a.task, 5)  # run() returns when leadership is lost
    assert a.log == ["started", "stopped"] and not a.elector.is_leader()
    assert (await client.get(LEASES, lock, ns))["spec"]["holderIdentity"] == "intruder"


class CountingClient:
    """The client, counting the Lease reads and writes an elector makes."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.calls: list[str] = []

    async def get(self, *a: Any, **kw: Any) -> Any:
        self.calls.append("get")
        return await self.client.get(*a, **kw)

    async def update(self, *a: Any, **kw: Any) -> Any:
        self.calls.append("update")
        return await self.client.update(*a, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


async def test_the_leader_renews_with_one_request(client: Client, ns: str) -> None:
    """client-go's fast path: while its lease is valid the leader updates the Lease it
    last wrote, without reading it first (one request per renewal, not two)."""
    lock = f"lock-{uuid.uuid4().hex[:6]}"
    counting = CountingClient(client)
    a = Candidate(counting, lock, ns, "a")  # type: ignore[arg-type]
    try:
        await wait_for(a.elector.is_leader, 5)
        before = list(counting.calls)
        await wait_for(lambda: counting.calls[len(before) :].count("update") >= 3, 10)
        assert "get" not in counting.calls[len(before) :]
        spec = (await client.get(LEASES, lock, ns))["spec"]
        assert spec["holderIdentity"] == "a" and spec["leaseTransitions"] == 0
    finally:
        a.elector.stop()
        await asyncio.gather(a.task, return_exceptions=True)


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        LeaderElectionConfig("x", lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError):
        LeaderElectionConfig("x", renew_deadline=2, retry_period=2)
    cfg = LeaderElectionConfig("x")
    assert (cfg.lease_duration, cfg.renew_deadline, cfg.retry_period) == (15.0, 10.0, 2.0)
    assert cfg.identity  # hostname_uuid
