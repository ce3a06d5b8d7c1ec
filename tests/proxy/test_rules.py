"""The renderer: representative Services and EndpointSlices in, iptables-restore text out,
checked with plain string matching (the e2e test checks the kernel accepts it)."""

from __future__ import annotations

from typing import Any

from pyk8s.proxy.model import port_proto_hash
from pyk8s.proxy.rules import ProxyConfig, render

CONFIG = ProxyConfig(node_name="node-a")


def svc(name: str = "web", **spec: Any) -> dict[str, Any]:
    spec.setdefault("clusterIP", "10.96.0.20")
    spec.setdefault("ports", [{"name": "http", "port": 80, "protocol": "TCP"}])
    status = spec.pop("status", {})
    return {"metadata": {"name": name, "namespace": "default"}, "spec": spec, "status": status}


def ep(ip: str, node: str = "node-b", **conditions: bool) -> dict[str, Any]:
    return {"addresses": [ip], "nodeName": node, "conditions": conditions}


def slice_(
    *endpoints: dict[str, Any], service: str = "web", ports: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{service}-{len(endpoints)}",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "ports": ports or [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": list(endpoints),
    }


def nat(text: str) -> list[str]:
    return text.split("*nat\n", 1)[1].splitlines()


def filt(text: str) -> list[str]:
    return text.split("*nat\n", 1)[0].splitlines()


def rules(lines: list[str], chain: str) -> list[str]:
    return [line for line in lines if line.startswith(f"-A {chain} ")]


SVC = "KUBE-SVC-" + port_proto_hash("default/web:http", "tcp")
SVL = "KUBE-SVL-" + port_proto_hash("default/web:http", "tcp")
EXT = "KUBE-EXT-" + port_proto_hash("default/web:http", "tcp")


def sep(address: str, name: str = "default/web:http", proto: str = "tcp") -> str:
    return "KUBE-SEP-" + port_proto_hash(name, proto, address)


def test_chain_names_hash_like_upstream() -> None:
    # names seen in real clusters' iptables-save output
    assert port_proto_hash("default/kubernetes:https", "tcp") == "NPX46M4PTMTKRN6Y"
    assert port_proto_hash("kube-system/kube-dns:dns", "udp") == "TCOU7JCQXEZGVUNU"
    assert port_proto_hash("default/nginx", "tcp") == "2CMXP7HKUVJN7L6M"


def test_base_chains_and_masquerade() -> None:
    text = render([], [], CONFIG).text()
    assert text.startswith("*filter\n") and text.endswith("COMMIT\n")
    for chain in ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"):
        assert f":{chain} - [0:0]" in nat(text)
    for chain in ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD"):
        assert f":{chain} - [0:0]" in filt(text)
    assert "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000" in nat(text)
    assert "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN" in nat(text)
    assert any("MASQUERADE --random-fully" in r for r in rules(nat(text), "KUBE-POSTROUTING"))
    assert any("--mark 0x4000/0x4000 -j ACCEPT" in r for r in rules(filt(text), "KUBE-FORWARD"))
    last = rules(nat(text), "KUBE-SERVICES")[-1]
    assert "--dst-type LOCAL" in last and last.endswith("-j KUBE-NODEPORTS")


def test_cluster_ip_balances_with_probabilities() -> None:
    ips = ["10.42.1.2", "10.42.1.3", "10.42.1.4", "10.42.1.5"]
    text = render([svc()], [slice_(*(ep(ip) for ip in ips))], CONFIG).text()
    lines = nat(text)
    assert (
        '-A KUBE-SERVICES -m comment --comment "default/web:http cluster IP"'
        f" -m tcp -p tcp -d 10.96.0.20 --dport 80 -j {SVC}"
    ) in lines
    chain = rules(lines, SVC)
    assert "! -s 10.42.0.0/16 -j KUBE-MARK-MASQ" in chain[0]
    jumps = chain[1:]
    assert [j.split(" -j ")[1] for j in jumps] == [sep(f"{ip}:8080") for ip in ips]
    assert "--probability 0.2500000000" in jumps[0]
    assert "--probability 0.3333333333" in jumps[1]
    assert "--probability 0.5000000000" in jumps[2]
    assert "statistic" not in jumps[3]
    for ip in ips:
        dnat = rules(lines, sep(f"{ip}:8080"))
        assert dnat[0].endswith(f"-s {ip} -j KUBE-MARK-MASQ")
        assert dnat[1].endswith(f"-m tcp -p tcp -j DNAT --to-destination {ip}:8080")


def test_service_without_endpoints_is_rejected() -> None:
    text = render([svc(type="NodePort", ports=[{"port": 80, "nodePort": 30080}])], [], CONFIG)
    out = text.text()
    assert not rules(nat(out), "KUBE-NODEPORTS")
    assert not [c for c in text.nat_chains if c.startswith("KUBE-SVC-")]
    reject = rules(filt(out), "KUBE-SERVICES")
    assert len(reject) == 1 and "default/web has no endpoints" in reject[0]
    assert reject[0].endswith("-d 10.96.0.20 --dport 80 -j REJECT")
    ext = rules(filt(out), "KUBE-EXTERNAL-SERVICES")
    assert len(ext) == 1 and "--dport 30080 -j REJECT" in ext[0]


def test_nodeport_external_ip_and_load_balancer() -> None:
    service = svc(
        type="LoadBalancer",
        externalIPs=["192.0.2.7"],
        ports=[{"name": "http", "port": 80, "nodePort": 30080}],
        status={"loadBalancer": {"ingress": [{"ip": "198.51.100.9"}]}},
    )
    lines = nat(render([service], [slice_(ep("10.42.1.2"))], CONFIG).text())
    assert f"-m tcp -p tcp --dport 30080 -j {EXT}" in rules(lines, "KUBE-NODEPORTS")[0]
    services = rules(lines, "KUBE-SERVICES")
    assert any("external IP" in r and f"-d 192.0.2.7 --dport 80 -j {EXT}" in r for r in services)
    assert any(
        "loadbalancer IP" in r and f"-d 198.51.100.9 --dport 80 -j {EXT}" in r for r in services
    )
    ext = rules(lines, EXT)
    assert ext[0].endswith("-j KUBE-MARK-MASQ") and ext[-1] == f"-A {EXT} -j {SVC}"


def test_external_traffic_policy_local_uses_only_local_endpoints() -> None:
    service = svc(
        type="NodePort",
        externalTrafficPolicy="Local",
        ports=[{"name": "http", "port": 80, "nodePort": 30080}],
    )
    eps = slice_(ep("10.42.1.2", node="node-a"), ep("10.42.2.2", node="node-b"))
    lines = nat(render([service], [eps], CONFIG).text())
    ext = rules(lines, EXT)
    assert any("-s 10.42.0.0/16" in r and r.endswith(f"-j {SVC}") for r in ext)
    assert any("--src-type LOCAL -j KUBE-MARK-MASQ" in r for r in ext)
    assert ext[-1] == f"-A {EXT} -j {SVL}"
    assert [r.split(" -j ")[1] for r in rules(lines, SVL)] == [sep("10.42.1.2:8080")]
    assert len(rules(lines, SVC)) == 3  # masquerade + both endpoints for cluster traffic


def test_external_traffic_policy_local_without_local_endpoints_drops() -> None:
    service = svc(
        type="NodePort",
        externalTrafficPolicy="Local",
        ports=[{"name": "http", "port": 80, "nodePort": 30080}],
    )
    out = render([service], [slice_(ep("10.42.2.2", node="node-b"))], CONFIG).text()
    assert not rules(nat(out), SVL)
    assert not any(r == f"-A {EXT} -j {SVL}" for r in rules(nat(out), EXT))
    drop = rules(filt(out), "KUBE-EXTERNAL-SERVICES")
    assert len(drop) == 1 and "has no local endpoints" in drop[0] and drop[0].endswith("DROP")


def test_internal_traffic_policy_local() -> None:
    service = svc(internalTrafficPolicy="Local")
    eps = slice_(ep("10.42.1.2", node="node-a"), ep("10.42.2.2", node="node-b"))
    lines = nat(render([service], [eps], CONFIG).text())
    assert any(r.endswith(f"-j {SVL}") for r in rules(lines, "KUBE-SERVICES"))
    assert not rules(lines, SVC)
    assert [r.split(" -j ")[1] for r in rules(lines, SVL)] == [
        "KUBE-MARK-MASQ",
        sep("10.42.1.2:8080"),
    ]
    assert f":{sep('10.42.2.2:8080')} - [0:0]" not in lines
    # no local endpoint: the cluster IP is dropped, not rejected
    out = render([service], [slice_(ep("10.42.2.2"))], CONFIG).text()
    drop = rules(filt(out), "KUBE-SERVICES")
    assert len(drop) == 1 and drop[0].endswith("-j DROP")


def test_session_affinity_client_ip() -> None:
    service = svc(
        sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}
    )
    lines = nat(render([service], [slice_(ep("10.42.1.2"), ep("10.42.1.3"))], CONFIG).text())
    chain = rules(lines, SVC)
    s1 = sep("10.42.1.2:8080")
    assert f"-m recent --name {s1} --rcheck --seconds 60 --reap -j {s1}" in chain[1]
    assert f"-m recent --name {s1} --set -m tcp" in rules(lines, s1)[1]


def test_headless_and_external_name_services_have_no_rules() -> None:
    headless = svc("db", clusterIP="None")
    ext_name = svc("ext", type="ExternalName", externalName="example.com", clusterIP="")
    out = render([headless, ext_name], [slice_(ep("10.42.1.2"), service="db")], CONFIG).text()
    assert "default/db" not in out and "default/ext" not in out


def test_named_target_port_resolves_per_endpoint() -> None:
    # two slices for one service: pods whose named port is 8080 and pods where it is 9090
    a = slice_(ep("10.42.1.2"), ports=[{"name": "http", "port": 8080, "protocol": "TCP"}])
    b = slice_(ep("10.42.1.3"), ep("10.42.1.4"), ports=[{"name": "http", "port": 9090}])
    lines = nat(render([svc()], [a, b], CONFIG).text())
    dnats = [r for r in lines if "DNAT" in r]
    assert sorted(r.rsplit(" ", 1)[1] for r in dnats) == [
        "10.42.1.2:8080",
        "10.42.1.3:9090",
        "10.42.1.4:9090",
    ]


def test_udp_and_multiple_ports() -> None:
    service = svc(
        "dns",
        ports=[
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
        ],
    )
    ports = [
        {"name": "dns", "port": 5353, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 5353, "protocol": "TCP"},
    ]
    lines = nat(
        render([service], [slice_(ep("10.42.1.2"), service="dns", ports=ports)], CONFIG).text()
    )
    udp = "KUBE-SVC-" + port_proto_hash("default/dns:dns", "udp")
    assert any("-m udp -p udp -d 10.96.0.20 --dport 53" in r and r.endswith(udp) for r in lines)
    udp_sep = sep("10.42.1.2:5353", "default/dns:dns", "udp")
    assert rules(lines, udp_sep)[1].endswith(
        "-m udp -p udp -j DNAT --to-destination 10.42.1.2:5353"
    )


def test_not_ready_excluded_terminating_only_as_last_resort() -> None:
    ready = ep("10.42.1.2", ready=True)
    not_ready = ep("10.42.1.3", ready=False, serving=False)
    terminating = ep("10.42.1.4", ready=False, serving=True, terminating=True)
    lines = nat(render([svc()], [slice_(ready, not_ready, terminating)], CONFIG).text())
    assert [r.split(" -j ")[1] for r in rules(lines, SVC)[1:]] == [sep("10.42.1.2:8080")]
    # with no ready endpoint left, the serving terminating one takes the traffic
    lines = nat(render([svc()], [slice_(not_ready, terminating)], CONFIG).text())
    assert [r.split(" -j ")[1] for r in rules(lines, SVC)[1:]] == [sep("10.42.1.4:8080")]
    gone = ep("10.42.1.5", ready=False, serving=False, terminating=True)
    out = render([svc()], [slice_(not_ready, gone)], CONFIG).text()
    assert "has no endpoints" in out


def test_slices_of_other_services_and_duplicates() -> None:
    a = slice_(ep("10.42.1.2"))
    dup = slice_(ep("10.42.1.2"), ep("10.42.1.3"))
    other = slice_(ep("10.42.9.9"), service="other")
    lines = nat(render([svc()], [a, dup, other], CONFIG).text())
    assert len(rules(lines, SVC)) == 3
    assert "10.42.9.9" not in "\n".join(lines)


def test_stale_chains_are_flushed_and_deleted() -> None:
    old = render([svc()], [slice_(ep("10.42.1.2"))], CONFIG)
    new = render([svc()], [slice_(ep("10.42.1.3"))], CONFIG)
    text = new.text(stale_nat_chains=old.service_chains)
    gone = sep("10.42.1.2:8080")
    assert f":{gone} - [0:0]" in text and f"-X {gone}" in text
    assert f"-X {SVC}" not in text


def test_render_is_deterministic() -> None:
    eps = [slice_(ep("10.42.1.3"), ep("10.42.1.2"))]
    assert (
        render([svc("b"), svc("a")], eps, CONFIG).text()
        == render([svc("a"), svc("b")], list(reversed(eps)), CONFIG).text()
    )


def test_load_balancer_source_ranges() -> None:
    service = svc(
        type="LoadBalancer",
        loadBalancerSourceRanges=["203.0.113.0/24", "10.0.0.0/24"],
        ports=[{"name": "http", "port": 80, "nodePort": 30080}],
        status={"loadBalancer": {"ingress": [{"ip": "198.51.100.9"}]}},
    )
    config = ProxyConfig(node_name="node-a", node_ips=("10.0.0.1",))
    out = render([service], [slice_(ep("10.42.1.2"))], config).text()
    fw = "KUBE-FW-" + port_proto_hash("default/web:http", "tcp")
    assert any(
        "-d 198.51.100.9" in r and r.endswith(f"-j {fw}") for r in rules(nat(out), "KUBE-SERVICES")
    )
    chain = rules(nat(out), fw)
    assert [r.split(" -s ")[1] for r in chain[:3]] == [
        f"203.0.113.0/24 -j {EXT}",
        f"10.0.0.0/24 -j {EXT}",
        f"198.51.100.9 -j {EXT}",  # the node itself is inside a range
    ]
    assert "will be dropped by KUBE-PROXY-FIREWALL" in chain[-1] and " -j " not in chain[-1]
    drop = rules(filt(out), "KUBE-PROXY-FIREWALL")
    assert len(drop) == 1 and drop[0].endswith("-d 198.51.100.9 --dport 80 -j DROP")


def test_partial_restore_rewrites_only_the_chains_that_changed() -> None:
    other = svc("db", clusterIP="10.96.0.30")
    before = render(
        [svc(), other],
        [slice_(ep("10.42.1.2"), ep("10.42.1.3")), slice_(ep("10.42.2.2"), service="db")],
        CONFIG,
    )
    after = render(
        [svc(), other],
        [slice_(ep("10.42.1.2"), ep("10.42.1.4")), slice_(ep("10.42.2.2"), service="db")],
        CONFIG,
    )
    lines = nat(after.partial_text(before))
    declared = {line[1:].split()[0] for line in lines if line.startswith(":")}
    # the web service's balancing chain and the new endpoint chain are rewritten, the
    # removed endpoint's chain is deleted; KUBE-SERVICES and the db chains are untouched
    assert declared == {SVC, sep("10.42.1.4:8080"), sep("10.42.1.3:8080")}
    assert f"-X {sep('10.42.1.3:8080')}" in lines
    db_svc = "KUBE-SVC-" + port_proto_hash("default/db:http", "tcp")
    assert not rules(lines, "KUBE-SERVICES") and not rules(lines, db_svc)
    # nothing changed: nothing in nat is declared or written
    same = nat(after.partial_text(after))
    assert same == ["COMMIT"]
