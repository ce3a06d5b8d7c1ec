"""Node IPAM: every node gets its own /24 of 10.42.0.0/16, never one twice, even across
a controller restart."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import Client
from pyk8s.controllers.nodeipam import CIDRSet, Settings
from pyk8s.controllers.runtime import Manager
from pyk8s.server.controller_manager import setup_controllers
from tests.controllers.conftest import eventually

NODES: Resource = REGISTRY.get("", "v1", "nodes")  # type: ignore[assignment]


def node(name: str, cidr: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if cidr:
        spec = {"podCIDR": cidr, "podCIDRs": [cidr]}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec}


async def cidrs_of(client: Client, names: list[str]) -> dict[str, str] | None:
    out = {}
    for name in names:
        spec = (await client.get(NODES, name)).get("spec") or {}
        if not spec.get("podCIDR"):
            return None
        assert spec["podCIDRs"] == [spec["podCIDR"]]
        out[name] = spec["podCIDR"]
    return out


@contextlib.asynccontextmanager
async def ipam(client: Client, settings: Settings | None = None) -> AsyncIterator[Manager]:
    """One nodeipam controller run, stopped on exit (a restart is two of these)."""
    manager = Manager(client)
    if settings is not None:
        manager.settings["nodeipam"] = settings
    setup_controllers(manager, ["nodeipam"])
    stop = asyncio.Event()
    task = asyncio.create_task(manager.run(stop))
    try:
        await eventually(lambda: _healthy(manager), within=30)
        yield manager
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def _healthy(manager: Manager) -> bool:
    return manager.healthy


async def test_nodes_get_distinct_cidrs_also_after_restart(client: Client) -> None:
    prefix = f"ipam-{uuid.uuid4().hex[:6]}"
    # a node that already has a CIDR keeps it, and nobody else gets it
    await client.create(NODES, node(f"{prefix}-old", "10.42.0.0/24"))
    first = [f"{prefix}-{i}" for i in range(3)]
    for name in first:
        await client.create(NODES, node(name))
    async with ipam(client):
        got = await eventually(lambda: cidrs_of(client, [f"{prefix}-old", *first]), within=20)
    assert got[f"{prefix}-old"] == "10.42.0.0/24"
    assert len(set(got.values())) == 4
    cluster = ipaddress.ip_network("10.42.0.0/16")
    for cidr in got.values():
        net = ipaddress.ip_network(cidr)
        assert net.prefixlen == 24 and net.subnet_of(cluster)  # type: ignore[arg-type]

    # a restarted controller learns the used CIDRs from the nodes
    second = [f"{prefix}-late-{i}" for i in range(2)]
    for name in second:
        await client.create(NODES, node(name))
    async with ipam(client):
        late = await eventually(lambda: cidrs_of(client, second), within=20)
        # a deleted node's CIDR goes back to the pool: the next node may get it
        await client.delete(NODES, first[0])
    everything = list(got.values()) + list(late.values())
    assert len(set(everything)) == len(everything)
    for name in [f"{prefix}-old", *first[1:], *second]:
        await client.delete(NODES, name)


async def test_dual_stack_nodes_get_one_cidr_per_family(client: Client) -> None:
    """--cluster-cidr 10.44.0.0/16,fd00:44::/56: a /24 and a /64 per node, in that order;
    a deleted node's pair goes back to the pool."""
    name = f"ipam-ds-{uuid.uuid4().hex[:6]}"
    settings = Settings("10.44.0.0/16,fd00:44::/56")

    async def pair() -> list[str] | None:
        spec = (await client.get(NODES, name)).get("spec") or {}
        return spec.get("podCIDRs") or None

    await client.create(NODES, node(name))
    async with ipam(client, settings):
        cidrs = await eventually(pair, within=20)
    v4, v6 = (ipaddress.ip_network(c) for c in cidrs)
    assert v4.subnet_of(ipaddress.ip_network("10.44.0.0/16")) and v4.prefixlen == 24  # type: ignore[arg-type]
    assert v6.subnet_of(ipaddress.ip_network("fd00:44::/56")) and v6.prefixlen == 64  # type: ignore[arg-type]
    assert (await client.get(NODES, name))["spec"]["podCIDR"] == cidrs[0]
    await client.delete(NODES, name)


def test_cidr_set_allocates_round_robin_and_exhausts() -> None:
    s = CIDRSet("10.0.0.0/30", 31)
    s.occupy("10.0.0.0/31")
    assert s.allocate_next() == "10.0.0.2/31"
    assert s.allocate_next() is None
    s.release("10.0.0.0/31")
    assert s.allocate_next() == "10.0.0.0/31"
