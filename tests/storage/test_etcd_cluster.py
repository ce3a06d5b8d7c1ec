"""The etcd backend against a real 3-member cluster: failover when members stop, and a
clear, bounded Unavailable when nothing answers."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyk8s.storage import Event, EventType, Unavailable, Watch
from pyk8s.storage.etcd import EtcdStore
from tests.etcd_cluster import EtcdCluster, etcd_available, free_port

pytestmark = [
    pytest.mark.etcd,
    pytest.mark.skipif(not etcd_available(), reason="etcd not installed"),
]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    c = EtcdCluster(tmp_path / "etcd", size=3).start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def single(tmp_path: Path) -> Iterator[EtcdCluster]:
    c = EtcdCluster(tmp_path / "etcd1", size=1).start()
    try:
        yield c
    finally:
        c.stop()


async def take(w: Watch, n: int, within: float = 15.0) -> list[Event]:
    async def collect() -> list[Event]:
        return [await anext(w) for _ in range(n)]

    return await asyncio.wait_for(collect(), within)


async def test_reads_writes_lists_and_watches_survive_each_member_stopping(
    cluster: EtcdCluster,
) -> None:
    prefix = "/registry/failover/"
    store = await EtcdStore.open(cluster.hosts)
    try:
        kv = await store.create(prefix + "counter", b"0")
        written = [kv.mod_revision]
        w = await store.watch(prefix, after=kv.mod_revision)
        # stop every member in turn, so the leader and the member serving the watch
        # stream are each stopped once
        for i in range(len(cluster.members)):
            await asyncio.to_thread(cluster.stop_member, i)
            kv = await store.update(
                prefix + "counter", b"%d" % (i + 1), expected_revision=kv.mod_revision
            )
            written.append(kv.mod_revision)
            member = await store.create(prefix + f"while-m{i}-down", b"x")
            written.append(member.mod_revision)
            assert (await store.get(prefix + "counter")).value == b"%d" % (i + 1)
            listed = await store.list(prefix)
            assert [x.key for x in listed.kvs] == [prefix + "counter"] + [
                prefix + f"while-m{j}-down" for j in range(i + 1)
            ]
            assert listed.revision >= member.mod_revision
            # the live watch goes on: exactly the two writes made while the member is down
            events = await take(w, 2)
            assert [e.revision for e in events] == written[-2:]
            assert events[0].type is EventType.PUT and events[0].kv.value == b"%d" % (i + 1)
            assert events[0].prev_kv is not None and events[0].prev_kv.value == b"%d" % i
            assert events[1].prev_kv is None and events[1].kv.key == member.key
            await asyncio.to_thread(cluster.restart_member, i)
        # the stream was on one of the stopped members: it was resumed without gap or
        # duplicate (the exact revisions above), and after all restarts it still works
        assert getattr(w, "resumes", 0) >= 1
        gone = await store.delete(prefix + "while-m0-down")
        (ev,) = await take(w, 1)
        assert ev.type is EventType.DELETE and ev.revision > gone.mod_revision
        assert ev.prev_kv == gone
        await w.close()
    finally:
        await store.close()


async def test_unreachable_endpoint_is_unavailable_quickly() -> None:
    port = free_port()  # nothing listens there
    started = time.monotonic()
    with pytest.raises(
        Unavailable, match=re.escape(f"cannot reach etcd at 127.0.0.1:{port} within 1s")
    ):
        await EtcdStore.open([("127.0.0.1", port)], connect_timeout=1.0)
    assert time.monotonic() - started < 5


async def test_losing_the_whole_cluster_ends_calls_and_watches_with_unavailable(
    single: EtcdCluster,
) -> None:
    store = await EtcdStore.open(single.hosts, request_timeout=1.0, watch_reconnect_timeout=2.0)
    try:
        await store.create("/registry/lost/a", b"1")
        w = await store.watch("/registry/lost/")
        await asyncio.to_thread(single.stop_member, 0)
        started = time.monotonic()
        with pytest.raises(Unavailable, match=re.escape("etcd at 127.0.0.1")):
            await store.get("/registry/lost/a")
        with pytest.raises(Unavailable):
            await store.create("/registry/lost/b", b"2")
        with pytest.raises(Unavailable):
            await asyncio.wait_for(anext(w), 20)
        assert time.monotonic() - started < 15
    finally:
        await store.close()


async def test_writes_in_flight_while_members_stop_are_all_watched_exactly_once(
    cluster: EtcdCluster,
) -> None:
    prefix = "/registry/churn/"
    store = await EtcdStore.open(cluster.hosts)
    try:
        start = await store.current_revision()
        w = await store.watch(prefix, after=start)
        acked: list[int] = []
        stop = asyncio.Event()

        async def writer(n: int) -> None:
            i = 0
            while not stop.is_set():
                kv = await store.create(f"{prefix}w{n}-{i:05d}", b"v")
                acked.append(kv.mod_revision)
                i += 1

        writers = [asyncio.create_task(writer(n)) for n in range(4)]
        for i in range(len(cluster.members)):
            await asyncio.sleep(0.3)
            await asyncio.to_thread(cluster.stop_member, i)
            await asyncio.sleep(0.5)
            await asyncio.to_thread(cluster.restart_member, i)
        stop.set()
        await asyncio.gather(*writers)

        seen = [e.revision for e in await take(w, len(acked), within=30)]
        assert seen == sorted(acked), "every acknowledged write once, in revision order"
        assert len(set(seen)) == len(seen)
        listed = await store.list(prefix)
        assert len(listed.kvs) == len(acked)
        await w.close()
    finally:
        await store.close()
