"""A dual-stack node's proxy rules (issue 20): a Service with an IPv4 and an IPv6
cluster IP is dispatched in both the ``ip`` and the ``ip6`` kube-proxy tables (and by
iptables and ip6tables), each to the endpoints of the EndpointSlices of its family."""

from __future__ import annotations

from typing import Any

from pyk8s.client import Client
from pyk8s.client.config import Config
from pyk8s.proxy.nftrules import render_nft
from pyk8s.proxy.proxier import Proxier
from pyk8s.proxy.rules import ProxyConfig, family_config, render
from tests.proxy.test_rules import ep, slice_, svc

DUAL = ProxyConfig(
    node_name="node-a",
    cluster_cidr="10.42.0.0/16,fd00:42::/56",
    node_ips=("10.99.0.11", "fd00:99::11"),
    nodeport_addresses=("10.99.0.11",),
)


def _objects() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    service = svc(
        type="NodePort",
        clusterIP="10.96.0.20",
        clusterIPs=["10.96.0.20", "fd00:43::20"],
        ipFamilies=["IPv4", "IPv6"],
        ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}],
    )
    v4 = slice_(ep("10.42.1.5"))
    v6 = slice_(ep("fd00:42:0:1::5"))
    v6["metadata"]["name"], v6["addressType"] = "web-v6", "IPv6"
    return [service], [v4, v6]


def test_family_config_splits_the_pairs() -> None:
    v6 = family_config(DUAL, 6)
    assert (v6.cluster_cidr, v6.node_ips, v6.nodeport_addresses) == (
        "fd00:42::/56",
        ("fd00:99::11",),
        (),
    )
    assert family_config(DUAL, 4).cluster_cidr == "10.42.0.0/16"


def test_each_family_table_dispatches_to_its_own_endpoints() -> None:
    services, slices = _objects()
    v4 = render_nft(services, slices, family_config(DUAL, 4))
    v6 = render_nft(services, slices, family_config(DUAL, 6))
    assert v6.text().startswith("add table ip6 kube-proxy\n")
    assert "10.96.0.20 . tcp . 80" in v4.elements["service-ips"]
    assert "fd00:43::20 . tcp . 80" in v6.elements["service-ips"]
    assert not any(":" in k for k in v4.elements["service-ips"])
    dnat4 = [r for rules in v4.chains.values() for r in rules if "dnat to" in r]
    dnat6 = [r for rules in v6.chains.values() for r in rules if "dnat to" in r]
    assert dnat4 == ["meta l4proto tcp dnat to 10.42.1.5:8080"]
    assert dnat6 == ["meta l4proto tcp dnat to [fd00:42:0:1::5]:8080"]
    assert "tcp . 30080" in v6.elements["service-nodeports"]
    assert "ip6 saddr != fd00:42::/56" in " ".join(r for c in v6.chains.values() for r in c)
    assert "fib daddr type local ip6 daddr != ::1" in v6.chains["services"][1]


def test_ip6tables_rules_use_the_ipv6_addresses() -> None:
    services, slices = _objects()
    text = render(services, slices, family_config(DUAL, 6)).text()
    assert "-d fd00:43::20 --dport 80" in text
    assert "-j DNAT --to-destination [fd00:42:0:1::5]:8080" in text
    assert "! -s fd00:42::/56 -j KUBE-MARK-MASQ" in text
    assert "--dst-type LOCAL ! -d ::1/128 -j KUBE-NODEPORTS" in text
    assert "10.96.0.20" not in text and "10.42.1.5" not in text


def test_ipv6_udp_destinations_are_cleared_with_the_ipv6_family() -> None:
    from pyk8s.proxy.conntrack import destinations, stale_flows

    services, slices = _objects()
    services[0]["spec"]["ports"][0]["protocol"] = "UDP"
    for sl in slices:
        sl["ports"][0]["protocol"] = "UDP"
    before = destinations(services, slices, "node-a", 6)
    assert before == {
        ("udp", "fd00:43::20", 80): frozenset({"fd00:42:0:1::5"}),
        ("udp", "::", 30080): frozenset({"fd00:42:0:1::5"}),
    }
    assert stale_flows(before, {}) == [
        ["-D", "-f", "ipv6", "-p", "udp", "--orig-port-dst", "30080"],
        ["-D", "-f", "ipv6", "-p", "udp", "--orig-dst", "fd00:43::20", "--orig-port-dst", "80"],
    ]
    assert ("udp", "10.96.0.20", 80) in destinations(services, slices, "node-a", 4)


def test_the_families_a_node_programs_follow_the_cluster_cidr() -> None:
    from pyk8s.proxy.proxier import _families

    assert _families("10.42.0.0/16") == [4]
    assert _families("fd00:42::/56,10.42.0.0/16") == [6, 4]
    assert _families("fd00:42::/56") == [6]  # an IPv6-only cluster: the ip6 table only


async def test_an_ipv6_only_local_load_balancer_has_its_health_check_port() -> None:
    """The health-check node port of a Local-policy load balancer counts the local
    endpoints of the Service's own family: IPv6 on an IPv6-only cluster; on a dual-stack
    one a pod with an address of each family counts once (the larger family's count,
    as upstream's per-family proxiers)."""
    services, slices = _objects()
    services[0]["spec"].update(
        type="LoadBalancer",
        externalTrafficPolicy="Local",
        healthCheckNodePort=32000,
        clusterIPs=["fd00:43::20"],
        clusterIP="fd00:43::20",
        ipFamilies=["IPv6"],
    )
    async with Client(Config(server="https://127.0.0.1:1")) as client:
        v6 = Proxier(client, "node-b", cluster_cidr="fd00:42::/56")
        checks = v6._health_checks(services, slices[1:])
        assert [(c.port, c.local_endpoints) for c in checks.values()] == [(32000, 1)]
        # dual stack: the pod has an address of each family and counts once
        services[0]["spec"].update(
            clusterIPs=["10.96.0.20", "fd00:43::20"], ipFamilies=["IPv4", "IPv6"]
        )
        slices[1]["endpoints"].append(ep("fd00:42:0:1::6"))
        dual = Proxier(client, "node-b", cluster_cidr="10.42.0.0/16,fd00:42::/56")
        checks = dual._health_checks(services, slices)
        assert [c.local_endpoints for c in checks.values()] == [2]  # the IPv6 family's
