"""Dual stack's node-side configuration (issue 20), without root: the CNI conflist of a
node with two pod CIDRs has one host-local range and one default route per family, the
host-gw routes send each family's pod CIDR via the node's address of that family, and a
CIDR pair flag takes one CIDR of each family only; a component bound to ``0.0.0.0``
answers on both families."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from pyk8s.api.dualstack import parse_cidrs
from pyk8s.kubelet.cni import bridge_conflist
from pyk8s.network.routes import desired_routes
from pyk8s.server.component import HealthServer


def test_conflist_requests_an_address_of_each_family() -> None:
    ipam = bridge_conflist("10.42.1.0/24,fd00:42:0:1::/64")["plugins"][0]["ipam"]
    assert ipam["ranges"] == [[{"subnet": "10.42.1.0/24"}], [{"subnet": "fd00:42:0:1::/64"}]]
    assert ipam["routes"] == [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
    single = bridge_conflist("10.42.1.0/24")["plugins"][0]["ipam"]
    assert single["ranges"] == [[{"subnet": "10.42.1.0/24"}]]


def _node(name: str, cidrs: list[str], ips: list[str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs},
        "status": {"addresses": [{"type": "InternalIP", "address": ip} for ip in ips]},
    }


def test_host_gw_routes_each_family_via_that_familys_address() -> None:
    nodes = [
        _node("a", ["10.42.0.0/24", "fd00:42::/64"], ["10.99.1.11", "fd00:99::11"]),
        _node("b", ["10.42.1.0/24", "fd00:42:0:1::/64"], ["10.99.1.12", "fd00:99::12"]),
        _node("c", ["10.42.2.0/24", "fd00:42:0:2::/64"], ["10.99.1.13"]),  # no IPv6 address
    ]
    assert desired_routes(nodes, "a") == {
        "10.42.1.0/24": "10.99.1.12",
        "fd00:42:0:1::/64": "fd00:99::12",
        "10.42.2.0/24": "10.99.1.13",
    }


def test_a_cidr_pair_is_one_of_each_family() -> None:
    assert parse_cidrs("10.42.0.0/16, fd00:42::/56") == ["10.42.0.0/16", "fd00:42::/56"]
    assert parse_cidrs("fd00:43::/112") == ["fd00:43::/112"]
    for bad, why in [
        ("10.42.0.0/16,10.52.0.0/16", "different IP families"),
        ("10.42.0.0/16,fd00::/56,fd01::/56", "at most two"),
        ("10.42.0.1/16", "host bits set"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_cidrs(bad, "cluster-cidr")


async def test_components_listen_on_both_families_at_a_wildcard_address() -> None:
    """A component's ``0.0.0.0`` (kube-proxy's 10256, the DNS health port …) serves IPv6
    too, on the one port it picked, as upstream's Go listeners; a given address only
    itself."""
    wildcard = HealthServer(CollectorRegistry(), lambda: True, "0.0.0.0", 0)
    v4 = HealthServer(CollectorRegistry(), lambda: True, "127.0.0.1", 0)
    await wildcard.start()
    await v4.start()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
            for host in ("127.0.0.1", "[::1]"):
                async with s.get(f"http://{host}:{wildcard.port}/healthz") as resp:
                    assert (resp.status, await resp.text()) == (200, "ok"), host
            with pytest.raises(aiohttp.ClientConnectionError):
                await s.get(f"http://[::1]:{v4.port}/healthz")
    finally:
        await wildcard.stop()
        await v4.stop()
