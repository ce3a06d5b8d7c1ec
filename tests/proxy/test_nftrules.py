"""The nftables renderer: representative Services and EndpointSlices in, the kube-proxy
table out (chains, map elements), and the incremental transaction between two rulesets;
tests/proxy/test_nftables_kernel.py checks the kernel accepts both."""

from __future__ import annotations

from typing import Any

from pyk8s.proxy.nftrules import NftRuleset, render_nft
from pyk8s.proxy.rules import ProxyConfig
from tests.proxy.test_rules import CONFIG, ep, slice_, svc

SVC = "service-SUSTUHLJ-default/web/tcp/http"
EXT = "external-SUSTUHLJ-default/web/tcp/http"
LOCAL = "local-SUSTUHLJ-default/web/tcp/http"


def endpoint(ip: str, port: int = 8080) -> str:
    return next(
        c
        for c in render_nft([svc()], [slice_(ep(ip))], CONFIG).chains
        if c.startswith("endpoint-") and c.endswith(f"__{ip}/{port}")
    )


def table(*objects: Any, config: ProxyConfig = CONFIG) -> NftRuleset:
    services = [o for o in objects if "spec" in o]
    slices = [o for o in objects if "endpoints" in o]
    return render_nft(services, slices, config)


def test_chain_names_hash_like_upstream() -> None:
    # upstream's own test data: ns1/svc1 port p80 → ULMVA6XW, its endpoint 10.180.0.1:80
    service = svc("svc1", ports=[{"name": "p80", "port": 80}])
    service["metadata"]["namespace"] = "ns1"
    sl = slice_(ep("10.180.0.1"), service="svc1", ports=[{"name": "p80", "port": 80}])
    sl["metadata"]["namespace"] = "ns1"
    chains = render_nft([service], [sl], CONFIG).chains
    assert "service-ULMVA6XW-ns1/svc1/tcp/p80" in chains
    assert "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80" in chains


def test_base_chains_maps_and_masquerade() -> None:
    t = table()
    text = t.text()
    assert text.startswith("add table ip kube-proxy\ndelete table ip kube-proxy\n")
    assert (
        "add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }"
        in text
    )
    assert (
        "add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ;"
        in text
    )
    assert t.chains["services"][0] == "ip daddr . meta l4proto . th dport vmap @service-ips"
    assert "fib daddr type local ip daddr != 127.0.0.0/8" in t.chains["services"][1]
    assert t.chains["mark-for-masquerade"] == ("mark set mark or 0x4000",)
    assert t.chains["masquerading"][-1] == "masquerade fully-random"
    with_addresses = table(config=ProxyConfig("node-a", nodeport_addresses=("192.0.2.1",)))
    assert with_addresses.elements["nodeport-ips"] == {"192.0.2.1": ""}
    assert with_addresses.chains["services"][1].startswith("ip daddr @nodeport-ips ")


def test_cluster_ip_dispatch_and_random_balancing() -> None:
    t = table(svc(), slice_(ep("10.42.1.2"), ep("10.42.1.3")))
    assert t.elements["service-ips"] == {"10.96.0.20 . tcp . 80": f"goto {SVC}"}
    assert t.elements["cluster-ips"] == {"10.96.0.20": ""}
    e1, e2 = endpoint("10.42.1.2"), endpoint("10.42.1.3")
    assert t.chains[SVC] == (
        "ip daddr 10.96.0.20 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade",
        f"numgen random mod 2 vmap {{ 0 : goto {e1}, 1 : goto {e2} }}",
    )
    assert t.chains[e1] == (
        "ip saddr 10.42.1.2 jump mark-for-masquerade",
        "meta l4proto tcp dnat to 10.42.1.2:8080",
    )


def test_service_without_endpoints_is_rejected() -> None:
    t = table(svc(ports=[{"name": "dns", "port": 53, "protocol": "UDP"}]))
    assert t.elements["service-ips"] == {}
    assert t.elements["no-endpoint-services"] == {"10.96.0.20 . udp . 53": "goto reject-chain"}
    assert not [c for c in t.chains if "/" in c]


def test_nodeport_external_ip_and_load_balancer() -> None:
    service = svc(
        type="LoadBalancer",
        externalIPs=["192.0.2.7"],
        ports=[{"name": "http", "port": 80, "nodePort": 30080}],
        status={"loadBalancer": {"ingress": [{"ip": "198.51.100.9"}]}},
    )
    t = table(service, slice_(ep("10.42.1.2")))
    assert t.elements["service-nodeports"] == {"tcp . 30080": f"goto {EXT}"}
    assert t.elements["service-ips"]["192.0.2.7 . tcp . 80"] == f"goto {EXT}"
    assert t.elements["service-ips"]["198.51.100.9 . tcp . 80"] == f"goto {EXT}"
    assert t.chains[EXT] == ("jump mark-for-masquerade", f"goto {SVC}")
    assert t.elements["firewall-ips"] == {}


def test_load_balancer_source_ranges() -> None:
    service = svc(
        type="LoadBalancer",
        loadBalancerSourceRanges=["203.0.113.0/24"],
        ports=[{"name": "http", "port": 80, "nodePort": 30080}],
        status={"loadBalancer": {"ingress": [{"ip": "198.51.100.9"}]}},
    )
    t = table(service, slice_(ep("10.42.1.2")))
    fw = "firewall-SUSTUHLJ-default/web/tcp/http"
    assert t.elements["firewall-ips"] == {"198.51.100.9 . tcp . 80": f"goto {fw}"}
    assert t.chains[fw] == ("ip saddr != { 203.0.113.0/24 } drop",)
    node_inside = ProxyConfig("node-a", node_ips=("203.0.113.5",))
    assert table(service, slice_(ep("10.42.1.2")), config=node_inside).chains[fw] == (
        "ip saddr != { 203.0.113.0/24, 198.51.100.9 } drop",
    )


def test_external_traffic_policy_local() -> None:
    service = svc(
        type="NodePort",
        externalTrafficPolicy="Local",
        ports=[{"name": "http", "port": 80, "nodePort": 30080}],
    )
    both = slice_(ep("10.42.1.2", node="node-a"), ep("10.42.2.2", node="node-b"))
    t = table(service, both)
    assert t.chains[EXT][0] == (
        f'ip saddr 10.42.0.0/16 goto {SVC} comment "short-circuit pod traffic"'
    )
    assert t.chains[EXT][-1] == f"goto {LOCAL}"
    assert t.chains[LOCAL] == (f"numgen random mod 1 vmap {{ 0 : goto {endpoint('10.42.1.2')} }}",)
    assert "mod 2" in t.chains[SVC][-1]  # cluster traffic still reaches both
    # no local endpoint: external traffic not short-circuited is dropped, not rejected
    remote = table(service, slice_(ep("10.42.2.2", node="node-b")))
    assert remote.elements["no-endpoint-nodeports"] == {"tcp . 30080": "drop"}
    assert f"goto {LOCAL}" not in remote.chains[EXT]


def test_internal_traffic_policy_local_without_local_endpoints_drops() -> None:
    t = table(svc(internalTrafficPolicy="Local"), slice_(ep("10.42.2.2", node="node-b")))
    assert t.elements["no-endpoint-services"] == {"10.96.0.20 . tcp . 80": "drop"}
    assert LOCAL not in t.chains and SVC not in t.chains


def test_session_affinity_uses_dynamic_sets() -> None:
    service = svc(
        sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}
    )
    t = table(service, slice_(ep("10.42.1.2"), ep("10.42.1.3")))
    e1 = endpoint("10.42.1.2")
    aff = "affinity-" + e1.removeprefix("endpoint-")
    assert t.dynamic_sets[aff] == "type ipv4_addr ; flags dynamic,timeout ; timeout 60s ;"
    assert t.chains[SVC][1] == f"ip saddr @{aff} goto {e1}"
    assert t.chains[e1][1] == f"update @{aff} {{ ip saddr }}"


def test_one_endpoint_change_touches_only_its_chains_and_elements() -> None:
    other = svc("other", clusterIP="10.96.0.30")
    before = table(svc(), other, slice_(ep("10.42.1.2"), ep("10.42.1.3")),
                   slice_(ep("10.42.9.9"), service="other"))  # fmt: skip
    after = table(svc(), other, slice_(ep("10.42.1.2")), slice_(ep("10.42.9.9"), service="other"))
    gone = endpoint("10.42.1.3")
    assert after.diff_text(before).splitlines() == [
        f"flush chain ip kube-proxy {SVC}",
        f"add chain ip kube-proxy {SVC} {{ {after.chains[SVC][0]} ; {after.chains[SVC][1]} ; }}",
        f"flush chain ip kube-proxy {gone}",
        f"delete chain ip kube-proxy {gone}",
    ]
    assert after.diff_text(before, delete_stale=False).splitlines()[-1] == (
        f"flush chain ip kube-proxy {gone}"  # deleted later: NftApplier
    )
    assert after.gone_chains(before) == [gone]
    assert after.diff_text(after) == ""
    # the service loses its last endpoint: map elements move from dispatch to reject
    empty = table(svc(), other, slice_(service="web"), slice_(ep("10.42.9.9"), service="other"))
    diff = empty.diff_text(after).splitlines()
    assert "delete element ip kube-proxy service-ips { 10.96.0.20 . tcp . 80 }" in diff
    assert (
        "add element ip kube-proxy no-endpoint-services"
        " { 10.96.0.20 . tcp . 80 : goto reject-chain }" in diff
    )
    assert diff.index(f"delete chain ip kube-proxy {SVC}") > diff.index(
        "delete element ip kube-proxy service-ips { 10.96.0.20 . tcp . 80 }"
    )
    assert not any("other" in line for line in diff)


def test_render_is_deterministic() -> None:
    objs = (svc(), svc("b", clusterIP="10.96.0.21"), slice_(ep("10.42.1.3"), ep("10.42.1.2")))
    assert table(*objs).text() == table(*reversed(objs)).text()
