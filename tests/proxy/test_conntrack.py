"""Which conntrack entries a change leaves stale (pure): only UDP/SCTP destinations, per
removed endpoint, and the whole destination when its address goes or its first endpoint
arrives."""

from __future__ import annotations

from typing import Any

from pyk8s.proxy.conntrack import Destination, destinations, stale_flows
from tests.proxy.test_rules import ep, slice_, svc

DNS = [{"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053},
       {"name": "dns-tcp", "port": 53, "protocol": "TCP", "nodePort": 30054}]  # fmt: skip
UDP_SLICE_PORTS = [{"name": "dns", "port": 5353, "protocol": "UDP"}]


def dns(*ips: str, **spec: Any) -> dict[Destination, frozenset[str]]:
    service = svc("dns", type="NodePort", ports=DNS, **spec)
    sl = slice_(*(ep(ip) for ip in ips), service="dns", ports=UDP_SLICE_PORTS)
    return destinations([service], [sl], "node-a")


def test_destinations_are_udp_only_with_their_endpoints() -> None:
    assert dns("10.42.1.2", externalIPs=["192.0.2.7"]) == {
        ("udp", "10.96.0.20", 53): frozenset({"10.42.1.2"}),
        ("udp", "192.0.2.7", 53): frozenset({"10.42.1.2"}),
        ("udp", "", 30053): frozenset({"10.42.1.2"}),
    }


def test_a_removed_endpoint_clears_its_entries() -> None:
    flows = stale_flows(dns("10.42.1.2", "10.42.1.3"), dns("10.42.1.3"))
    assert flows == [
        ["-D", "-p", "udp", "--orig-port-dst", "30053", "--dst-nat", "10.42.1.2"],
        ["-D", "-p", "udp", "--orig-dst", "10.96.0.20", "--orig-port-dst", "53",
         "--dst-nat", "10.42.1.2"],
    ]  # fmt: skip
    same = dns("10.42.1.3")
    assert stale_flows(same, same) == []


def test_first_endpoint_and_address_change_clear_the_destination() -> None:
    first = stale_flows(dns(), dns("10.42.1.2"))
    assert ["-D", "-p", "udp", "--orig-dst", "10.96.0.20", "--orig-port-dst", "53"] in first
    moved = stale_flows(dns("10.42.1.2"), dns("10.42.1.2", clusterIP="10.96.0.99"))
    assert ["-D", "-p", "udp", "--orig-dst", "10.96.0.20", "--orig-port-dst", "53"] in moved
    assert ["-D", "-p", "udp", "--orig-dst", "10.96.0.99", "--orig-port-dst", "53"] in moved


def test_objects_are_parsed_once_per_resource_version() -> None:
    from pyk8s.proxy.model import endpoints_by_port

    def parsed(rv: str, ip: str) -> list[str]:
        sl = slice_(ep(ip), service="dns", ports=UDP_SLICE_PORTS)
        sl["metadata"]["resourceVersion"] = rv
        return [e.ip for e in endpoints_by_port([sl], "node-a")[("default", "dns", "dns", "UDP")]]

    assert parsed("7", "10.42.1.2") == ["10.42.1.2"]
    assert parsed("7", "10.42.1.9") == ["10.42.1.2"]  # a version never changes: from the cache
    assert parsed("8", "10.42.1.9") == ["10.42.1.9"]
