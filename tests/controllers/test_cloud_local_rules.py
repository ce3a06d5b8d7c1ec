"""The local provider's pure rules: which node keeps a port two load balancers want, and
which addresses a port probe may reach."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyk8s.cloudprovider.local import on_link, plan


def node(name: str, ip: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }


def lb(name: str, created: str, ingress: list[str], port: int = 80) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
        "spec": {"type": "LoadBalancer", "ports": [{"port": port, "protocol": "TCP"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ingress]}},
    }


NODES = [node("a", "10.0.0.2"), node("b", "10.0.0.10")]


def test_the_load_balancer_answering_keeps_the_node_then_the_older_one() -> None:
    first = lb("zeta", "2026-01-01T00:00:00Z", ["10.0.0.2", "10.0.0.10"])
    second = lb("alpha", "2026-01-01T00:00:00Z", [])  # same second, sorts first by name
    assert plan(second, NODES, [first], None) == (
        [],
        [("a", "80/TCP", "load balancer default/zeta"),
         ("b", "80/TCP", "load balancer default/zeta")],
    )  # fmt: skip
    assert plan(first, NODES, [second], None) == (["10.0.0.2", "10.0.0.10"], [])
    # both list a node (created together): the older one keeps it
    older = lb("old", "2026-01-01T00:00:00Z", ["10.0.0.2"])
    newer = lb("new", "2026-01-01T00:00:05Z", ["10.0.0.2"])
    assert plan(newer, NODES, [older], None)[0] == ["10.0.0.10"]
    assert plan(older, NODES, [newer], None)[0] == ["10.0.0.2", "10.0.0.10"]
    # another port, or a Local policy with one ready node
    assert plan(lb("other", "2026-01-02T00:00:00Z", [], 81), NODES, [first], None)[0] == [
        "10.0.0.2", "10.0.0.10",
    ]  # fmt: skip
    assert plan(lb("local", "2026-01-02T00:00:00Z", [], 81), NODES, [], {"b"})[0] == ["10.0.0.10"]


def test_probes_reach_only_directly_connected_networks(tmp_path: Path) -> None:
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"  # default via gw
        "*\t00002A0A\t00000000\t0201\t0\t0\t0\t0000FFFF\t0\t0\t0\n"  # unreachable 10.42/16
        "br0\t0011630A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"  # 10.99.17.0/24
    )
    assert on_link("10.99.17.20", str(table))
    assert on_link("127.0.0.5", str(table))
    assert not on_link("10.42.0.7", str(table))
    assert not on_link("8.8.8.8", str(table))
    assert not on_link("not-an-ip", str(table))


def dual(name: str, ip: str, ip6: str) -> dict[str, Any]:
    got = node(name, ip)
    got["status"]["addresses"].append({"type": "InternalIP", "address": ip6})
    return got


def test_a_node_answers_at_its_address_of_each_of_the_services_families() -> None:
    """As k3s's ServiceLB: the ingress lists the nodes' addresses of the service's
    ``ipFamilies``, in that order, each family sorted."""
    nodes = [dual("a", "10.0.0.10", "fd00::10"), dual("b", "10.0.0.2", "fd00::2")]
    service = lb("web", "2026-01-01T00:00:00Z", [])
    assert plan(service, nodes, [], None)[0] == ["10.0.0.2", "10.0.0.10"]  # no families: v4
    service["spec"]["ipFamilies"] = ["IPv6", "IPv4"]
    assert plan(service, nodes, [], None)[0] == ["fd00::2", "fd00::10", "10.0.0.2", "10.0.0.10"]
    service["spec"]["ipFamilies"] = ["IPv6"]
    assert plan(service, nodes + NODES, [], {"a"})[0] == ["fd00::10"]
    # a node whose IPv6 address another load balancer answers on is taken as a whole
    holder = lb("holder", "2025-01-01T00:00:00Z", ["fd00::2"])
    assert plan(service, nodes, [holder], None) == (
        ["fd00::10"],
        [("b", "80/TCP", "load balancer default/holder")],
    )


def test_ipv6_probes_reach_only_directly_connected_networks(tmp_path: Path) -> None:
    table = tmp_path / "ipv6_route"
    zero = "0" * 32
    table.write_text(
        f"{zero} 00 {zero} 00 fd000099000000000000000000000001 00000400 1 0 00000003 eth0\n"
        f"fd000042000000000000000000000000 38 {zero} 00 {zero} 00000400 1 0 00200200 lo\n"
        f"fd000099001100000000000000000000 40 {zero} 00 {zero} 00000100 1 0 00000001 br0\n"
    )  # default via a gateway; unreachable fd00:42::/56; fd00:99:11::/64 on br0
    assert on_link("fd00:99:11::20", route6_table=str(table))
    assert on_link("::1", route6_table=str(table))
    assert not on_link("fd00:42::7", route6_table=str(table))
    assert not on_link("2001:db8::1", route6_table=str(table))
