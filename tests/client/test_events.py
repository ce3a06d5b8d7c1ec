"""The event recorder: upstream's shape, dedup within 10 minutes, aggregation, spam filter."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from pyk8s.client import Client, EventRecorder
from pyk8s.client.events import CACHE_SIZE, EventCorrelator, object_reference
from tests.client.conftest import CONFIGMAPS, EVENTS, NAMESPACES, configmap


def ev(name: str, message: str = "m", reason: str = "R", uid: str = "u1") -> dict[str, Any]:
    return {
        "metadata": {"name": f"{name}.{len(message):x}", "namespace": "ns"},
        "involvedObject": {"kind": "Pod", "namespace": "ns", "name": name, "uid": uid},
        "reason": reason,
        "message": message,
        "type": "Normal",
        "source": {"component": "test"},
        "firstTimestamp": "t0",
        "lastTimestamp": "t0",
        "count": 1,
    }


def test_correlator_dedups_within_ten_minutes() -> None:
    now = [1000.0]
    c = EventCorrelator(clock=lambda: now[0])
    first = c.correlate(ev("p"))
    assert first is not None and first[1] is None  # create
    now[0] += 60
    again = c.correlate(ev("p"))
    assert again is not None and again[1] is not None  # patch the first one
    assert again[0]["count"] == 2 and again[0]["metadata"]["name"] == "p.1"
    now[0] += 601
    later = c.correlate(ev("p"))
    assert later is not None and later[1] is None  # too long ago: a new Event
    other = c.correlate(ev("p", reason="Other"))
    assert other is not None and other[1] is None


def test_correlator_aggregates_similar_messages() -> None:
    c = EventCorrelator(clock=lambda: 0.0)
    outs = [c.correlate(ev("p", message=f"message {i}")) for i in range(12)]
    assert all(o is not None for o in outs)
    msgs = [o[0]["message"] for o in outs if o is not None]
    assert msgs[8] == "message 8"
    assert msgs[9] == "(combined from similar events): message 9"
    tail = outs[10:]
    assert all(o is not None and o[1] is not None for o in tail)  # patch the combined one


def test_correlator_spam_filter() -> None:
    c = EventCorrelator(clock=lambda: 0.0)
    results = [c.correlate(ev("p", reason=f"R{i}")) for i in range(30)]
    assert sum(r is not None for r in results) == 25  # burst 25 per object
    assert c.correlate(ev("q")) is not None  # another object has its own bucket


def test_correlator_spam_bucket_refills_one_event_per_five_minutes() -> None:
    now = [1_765_000_000.123]  # a wall-clock time: rounding must not lose the last token
    c = EventCorrelator(clock=lambda: now[0])
    assert sum(c.correlate(ev("p", reason=f"R{i}")) is not None for i in range(26)) == 25
    now[0] += 299
    assert c.correlate(ev("p", reason="late")) is None
    now[0] += 1  # five minutes after the burst: one more token
    assert c.correlate(ev("p", reason="a")) is not None
    assert c.correlate(ev("p", reason="b")) is None
    now[0] += 3600 * 24  # a day later the bucket is full again, and holds no more than 25
    assert sum(c.correlate(ev("p", reason=f"S{i}")) is not None for i in range(30)) == 25


def test_correlator_repeats_of_one_message_are_not_aggregated() -> None:
    c = EventCorrelator(clock=lambda: 0.0)
    outs = [c.correlate(ev("p", message=f"message {i % 3}")) for i in range(24)]
    assert all(o is not None and o[0]["message"].startswith("message") for o in outs)
    counts = [o[0]["count"] for o in outs if o is not None]
    assert counts[-3:] == [8, 8, 8]  # three Events, each patched up to 8 times


def test_correlator_forgets_the_least_recently_used_object() -> None:
    c = EventCorrelator(clock=lambda: 0.0)
    assert (first := c.correlate(ev("p"))) is not None and first[1] is None
    for i in range(CACHE_SIZE - 1):
        c.correlate(ev(f"o{i}", uid=f"u{i}"))
    again = c.correlate(ev("p"))  # still remembered; now the most recently used
    assert again is not None and again[1] is not None and again[0]["count"] == 2
    c.correlate(ev("last", uid="last"))  # one over the size: the oldest other goes
    assert (p3 := c.correlate(ev("p"))) is not None and p3[0]["count"] == 3
    assert (o0 := c.correlate(ev("o0", uid="u0"))) is not None and o0[1] is None


def test_object_reference() -> None:
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "n", "uid": "u", "resourceVersion": "5"},
    }
    assert object_reference(obj) == {
        "kind": "Deployment",
        "namespace": "n",
        "name": "d",
        "uid": "u",
        "apiVersion": "apps/v1",
        "resourceVersion": "5",
    }
    ref = {"kind": "Node", "name": "n1"}
    assert object_reference(ref) == ref


async def events_for(client: Client, ns: str, name: str) -> list[dict[str, Any]]:
    out = await client.list(EVENTS, ns, field_selector=f"involvedObject.name={name}")
    items: list[dict[str, Any]] = out["items"]
    return items


async def test_recorder_writes_and_aggregates(client: Client, ns: str) -> None:
    cm = await client.create(CONFIGMAPS, configmap("target"), ns)
    rec = EventRecorder(client, "test-controller", host="node-1")
    for _ in range(3):
        rec.event(cm, "Normal", "Synced", "synced ok")
    rec.event(cm, "Warning", "Failed", "could not sync")
    rec.eventf(cm, "Normal", "Scaled", "scaled to %d", 3)
    rec.event(cm, "Bogus", "X", "ignored: unsupported type")
    await rec.flush()

    events = {e["reason"]: e for e in await events_for(client, ns, "target")}
    assert set(events) == {"Synced", "Failed", "Scaled"}
    synced = events["Synced"]
    assert synced["count"] == 3
    assert synced["type"] == "Normal" and synced["message"] == "synced ok"
    assert re.fullmatch(r"target\.[0-9a-f]+", synced["metadata"]["name"])
    assert synced["involvedObject"]["uid"] == cm["metadata"]["uid"]
    assert synced["involvedObject"]["kind"] == "ConfigMap"
    assert synced["source"] == {"component": "test-controller", "host": "node-1"}
    assert synced["firstTimestamp"] <= synced["lastTimestamp"]
    assert events["Failed"]["type"] == "Warning" and events["Failed"]["count"] == 1
    assert events["Scaled"]["message"] == "scaled to 3"

    # a cluster-scoped object's events go to "default"
    ns_obj = await client.get(NAMESPACES, ns)
    rec.event(ns_obj, "Normal", "Seen", "namespace seen")
    await rec.flush()
    assert [e["reason"] for e in await events_for(client, "default", ns)] == ["Seen"]

    # the earlier Event was deleted (TTL): the next repeat creates it again
    await client.delete(EVENTS, synced["metadata"]["name"], ns)
    rec.event(cm, "Normal", "Synced", "synced ok")
    await rec.flush()
    again = [e for e in await events_for(client, ns, "target") if e["reason"] == "Synced"]
    assert len(again) == 1 and again[0]["count"] == 4
    await rec.close()


async def test_recorder_never_raises(client: Client) -> None:
    rec = EventRecorder(client, "test")
    rec.event({"metadata": {}}, "Normal", "NoName", "no name")  # logged, not raised
    rec.event(
        {"kind": "Pod", "metadata": {"name": "x", "namespace": "no-such-ns"}}, "Normal", "R", "m"
    )
    await rec.flush()  # the server refuses (namespace missing): logged, not raised
    await rec.close()
    rec.event({"kind": "Pod", "metadata": {"name": "x"}}, "Normal", "R", "after close")


class _HeldClient:
    """Records every Event write and holds it until ``release`` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.in_flight = 0
        self.most = 0
        self.writes: list[tuple[str, str, int]] = []  # (object name, verb, count)
        self.started = asyncio.Condition()

    async def _write(self, name: str, verb: str, count: int) -> None:
        async with self.started:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            self.started.notify_all()
        await self.release.wait()
        self.in_flight -= 1
        self.writes.append((name, verb, count))

    async def create(self, _res: Any, ev: dict[str, Any], _ns: str) -> dict[str, Any]:
        await self._write(ev["involvedObject"]["name"], "create", ev["count"])
        return ev

    async def patch(self, _res: Any, name: str, body: dict[str, Any], *_a: Any, **_k: Any) -> None:
        await self._write(name.rsplit(".", 1)[0], "patch", body["count"])


async def test_recorder_writes_objects_concurrently_in_order_per_object() -> None:
    """Events of different objects are written at once (a slow write does not hold the
    others); one object's events stay in order, its dedup patch after its create."""
    client = _HeldClient()
    rec = EventRecorder(client, "test", writers=4)  # type: ignore[arg-type]
    pods = [{"kind": "Pod", "metadata": {"name": f"p{i}", "namespace": "ns"}} for i in range(40)]
    for pod in pods:
        rec.event(pod, "Normal", "Scheduled", "assigned")
    rec.event(pods[0], "Normal", "Scheduled", "assigned")  # a repeat: patched, count 2
    async with client.started:  # one writer would hold every other write behind p0's
        await asyncio.wait_for(client.started.wait_for(lambda: client.in_flight >= 2), 60)
    client.release.set()
    await rec.flush()
    assert client.most >= 2
    assert sorted(n for n, verb, _ in client.writes if verb == "create") == sorted(
        f"p{i}" for i in range(40)
    )
    p0 = [(verb, count) for n, verb, count in client.writes if n == "p0"]
    assert p0 == [("create", 1), ("patch", 2)]
    await rec.close()
