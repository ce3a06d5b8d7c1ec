"""The Service allocation repair loop: a ClusterIP or NodePort key that no Service holds
is released after upstream's three passes (flagged first, so an in-flight create keeps
what it took), a held one is kept, and a held one with no key gets its key back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from pyk8s.api.registry import REGISTRY
from pyk8s.apiserver.allocators import (
    REPAIR_INTERVAL,
    REPAIRS_BEFORE_LEAK_CLEANUP,
    AllocationRepair,
    AlreadyAllocated,
    ClusterIPAllocator,
    NodePortAllocator,
)
from pyk8s.apiserver.server import APIServer, Config
from pyk8s.storage import NotFound, Store
from pyk8s.storage.sqlite import SqliteStore

_services = REGISTRY.get("", "v1", "services")
assert _services is not None
SERVICES = _services
IPS = "/registry/pyk8s.io/allocations/serviceips/"
PORTS = "/registry/pyk8s.io/allocations/nodeports/"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await SqliteStore.open(tmp_path / "state.db")
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def ips(store: Store) -> ClusterIPAllocator:
    return ClusterIPAllocator(store, "10.43.0.0/16")


@pytest.fixture
def ports(store: Store) -> NodePortAllocator:
    return NodePortAllocator(store, 30000, 32767)


@pytest.fixture
def repair(store: Store, ips: ClusterIPAllocator, ports: NodePortAllocator) -> AllocationRepair:
    return AllocationRepair(store, ips, ports)


async def put_service(
    store: Store, name: str, ip: str | None, node_ports: Sequence[int] = (), ns: str = "default"
) -> None:
    spec: dict[str, Any] = {
        "type": "NodePort" if node_ports else "ClusterIP",
        "ports": [
            {"port": 80 + i, "protocol": "TCP", "nodePort": p} for i, p in enumerate(node_ports)
        ],
    }
    if ip:
        spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}}
    await store.create(SERVICES.key(ns, name), orjson.dumps({**svc, "spec": spec}))


async def has_key(store: Store, key: str) -> bool:
    try:
        await store.get(key)
    except NotFound:
        return False
    return True


def test_upstream_interval_and_pass_count() -> None:
    assert REPAIR_INTERVAL == 180.0
    assert REPAIRS_BEFORE_LEAK_CLEANUP == 3


async def test_a_leaked_allocation_is_released_on_the_third_pass(
    store: Store,
    ips: ClusterIPAllocator,
    ports: NodePortAllocator,
    repair: AllocationRepair,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # keys written with no Service: a create that crashed between allocation and write
    await ips.reserve("10.43.7.7", "default/gone")
    await ports.reserve("30123", "default/gone")
    caplog.set_level(logging.WARNING, logger="pyk8s.apiserver.allocators")

    first = await repair.run_once()
    assert sorted(first.flagged) == [("nodeports", "30123"), ("serviceips", "10.43.7.7")]
    assert first.released == []
    assert "the cluster IP 10.43.7.7 may have leaked: flagging for later clean up" in caplog.text
    assert "the node port 30123 may have leaked: flagging for later clean up" in caplog.text

    second = await repair.run_once()
    assert second.released == []
    assert await has_key(store, IPS + "10.43.7.7")
    assert await has_key(store, PORTS + "30123")
    # still taken: nobody else can have them yet
    with pytest.raises(AlreadyAllocated):
        await ips.reserve("10.43.7.7", "default/other")

    third = await repair.run_once()
    assert sorted(third.released) == [("nodeports", "30123"), ("serviceips", "10.43.7.7")]
    assert "the cluster IP 10.43.7.7 appears to have leaked: cleaning up" in caplog.text
    assert "the node port 30123 appears to have leaked: cleaning up" in caplog.text
    assert not await has_key(store, IPS + "10.43.7.7")
    assert not await has_key(store, PORTS + "30123")
    # free again
    await ips.reserve("10.43.7.7", "default/other")
    await ports.reserve("30123", "default/other")


async def test_held_allocations_are_kept(
    store: Store, ips: ClusterIPAllocator, ports: NodePortAllocator, repair: AllocationRepair
) -> None:
    await ips.reserve("10.43.1.2", "default/web")
    await ports.reserve("30080", "default/web")
    await put_service(store, "web", "10.43.1.2", [30080])
    for _ in range(REPAIRS_BEFORE_LEAK_CLEANUP + 2):
        result = await repair.run_once()
        assert result.flagged == result.released == result.repaired == []
    assert await has_key(store, IPS + "10.43.1.2")
    assert await has_key(store, PORTS + "30080")


async def test_an_in_flight_create_keeps_what_it_took(
    store: Store, ips: ClusterIPAllocator, repair: AllocationRepair
) -> None:
    # allocated, Service not written yet: flagged...
    ip = await ips.allocate("default/slow")
    assert (await repair.run_once()).flagged == [("serviceips", ip)]
    # ...then the Service lands: the flag is forgotten and the key stays for good
    await put_service(store, "slow", ip)
    for _ in range(REPAIRS_BEFORE_LEAK_CLEANUP + 1):
        result = await repair.run_once()
        assert result.flagged == result.released == []
    assert await has_key(store, IPS + ip)


async def test_a_key_taken_again_between_passes_starts_over(
    store: Store, ips: ClusterIPAllocator, repair: AllocationRepair
) -> None:
    await ips.reserve("10.43.3.3", "default/a")
    await repair.run_once()
    await repair.run_once()
    # released and taken again by a new create before the third pass
    await ips.release("10.43.3.3")
    await ips.reserve("10.43.3.3", "default/b")
    third = await repair.run_once()
    assert third.released == []
    assert third.flagged == [("serviceips", "10.43.3.3")]
    assert await has_key(store, IPS + "10.43.3.3")


async def test_a_leak_that_goes_away_by_itself_is_forgotten(
    store: Store, ips: ClusterIPAllocator, repair: AllocationRepair
) -> None:
    await ips.reserve("10.43.4.4", "default/a")
    await repair.run_once()
    await ips.release("10.43.4.4")
    assert (await repair.run_once()).flagged == []
    # a fresh leak of the same address is counted from one again
    await ips.reserve("10.43.4.4", "default/b")
    assert (await repair.run_once()).flagged == [("serviceips", "10.43.4.4")]
    assert (await repair.run_once()).released == []
    assert (await repair.run_once()).released == [("serviceips", "10.43.4.4")]


async def test_a_held_address_without_its_key_is_repaired(
    store: Store,
    ips: ClusterIPAllocator,
    ports: NodePortAllocator,
    repair: AllocationRepair,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="pyk8s.apiserver.allocators")
    await put_service(store, "orphan", "10.43.9.9", [31000], ns="team")
    result = await repair.run_once()
    assert sorted(result.repaired) == [("nodeports", "31000"), ("serviceips", "10.43.9.9")]
    # upstream's wording (and its name/namespace order)
    assert (
        "the cluster IP 10.43.9.9 for service orphan/team is not allocated; repairing"
        in caplog.text
    )
    assert "the node port 31000 for service orphan/team is not allocated; repairing" in caplog.text
    # nobody else can take them now
    with pytest.raises(AlreadyAllocated):
        await ips.reserve("10.43.9.9", "team/thief")
    with pytest.raises(AlreadyAllocated):
        await ports.reserve("31000", "team/thief")
    assert (await repair.run_once()).repaired == []


async def test_duplicates_and_out_of_range_are_logged(
    store: Store,
    ips: ClusterIPAllocator,
    repair: AllocationRepair,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="pyk8s.apiserver.allocators")
    await ips.reserve("10.43.5.5", "default/a")
    await put_service(store, "a", "10.43.5.5")
    await put_service(store, "b", "10.43.5.5")
    await put_service(store, "far", "192.168.0.1", [29999])
    result = await repair.run_once()
    assert result.duplicates == [("serviceips", "10.43.5.5")]
    assert sorted(result.out_of_range) == [("nodeports", "29999"), ("serviceips", "192.168.0.1")]
    assert (
        "the cluster IP 10.43.5.5 for service b/default was assigned to multiple services; "
        "please recreate" in caplog.text
    )
    assert (
        "the cluster IP 192.168.0.1 for service far/default is not within the service CIDR "
        "10.43.0.0/16; please recreate" in caplog.text
    )
    assert (
        "the node port 29999 for service far/default is not within the port range "
        "30000-32767; please recreate" in caplog.text
    )
    # nothing was released or written for them
    assert result.released == result.repaired == []
    assert not await has_key(store, IPS + "192.168.0.1")


async def test_the_loop_runs_every_interval_until_stopped(
    store: Store, ips: ClusterIPAllocator, ports: NodePortAllocator
) -> None:
    repair = AllocationRepair(store, ips, ports, interval=0.05)
    await ips.reserve("10.43.6.6", "default/gone")
    repair.start()
    try:
        for _ in range(200):
            if not await has_key(store, IPS + "10.43.6.6"):
                break
            await asyncio.sleep(0.02)
        assert not await has_key(store, IPS + "10.43.6.6")
    finally:
        await repair.stop()
    assert repair._task is None  # stopped: no loop is left to release anything


async def test_the_api_server_runs_the_repair(store: Store) -> None:
    server = APIServer(store, config=Config(compact_interval=0))
    assert server.allocation_repair.interval == REPAIR_INTERVAL  # upstream's 3 minutes
    server.allocation_repair.interval = 0.05
    await server.cluster_ips.reserve("10.43.8.8", "default/gone")
    await server.start()
    try:
        for _ in range(200):
            if not await has_key(store, IPS + "10.43.8.8"):
                break
            await asyncio.sleep(0.02)
        assert not await has_key(store, IPS + "10.43.8.8")
        # the kubernetes Service's own address is held, so kept
        assert await has_key(store, IPS + "10.43.0.1")
    finally:
        await server.stop()
    assert server.allocation_repair._task is None
