"""What the proxy programs for load balancers (the ``local`` cloud provider's data plane):
node addresses in a LoadBalancer's status are captured as VIPs, ``ipMode: Proxy`` ones are
not, a Local-policy service's health-check node port is admitted once and counts only
this node's usable endpoints."""

from __future__ import annotations

from typing import Any

from pyk8s.proxy.model import endpoints_by_port, health_checks, service_ports
from pyk8s.proxy.rules import render
from tests.proxy.test_rules import CONFIG, EXT, SVL, ep, filt, nat, rules, slice_, svc


def lb(ingress: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    spec.setdefault("ports", [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 31000}])
    return svc(type="LoadBalancer", status={"loadBalancer": {"ingress": ingress}}, **spec)


def test_node_addresses_in_the_status_are_answered_on_the_service_port() -> None:
    service = lb([{"ip": "10.99.0.11", "ipMode": "VIP"}, {"ip": "10.99.0.12", "ipMode": "VIP"}])
    text = render([service], [slice_(ep("10.42.1.5"))], CONFIG).text()
    lb_rules = [r for r in rules(nat(text), "KUBE-SERVICES") if "loadbalancer IP" in r]
    assert [r.split(" -d ")[1].split()[0] for r in lb_rules] == ["10.99.0.11", "10.99.0.12"]
    assert all("--dport 80 " in r and r.endswith(f"-j {EXT}") for r in lb_rules)


def test_proxy_mode_ingress_is_left_to_the_load_balancer() -> None:
    service = lb([{"ip": "192.0.2.9", "ipMode": "Proxy"}, {"ip": "10.99.0.11"}])
    assert [sp.load_balancer_ips for sp in service_ports(service)] == [("10.99.0.11",)]
    text = render([service], [slice_(ep("10.42.1.5"))], CONFIG).text()
    assert "192.0.2.9" not in text


def test_local_policy_health_check_port_admitted_once_and_counts_local_endpoints() -> None:
    ports = [
        {"name": "http", "port": 80, "protocol": "TCP", "nodePort": 31000},
        {"name": "https", "port": 443, "protocol": "TCP", "nodePort": 31001},
    ]
    local = {"externalTrafficPolicy": "Local", "healthCheckNodePort": 32000}
    service = lb([{"ip": "10.99.0.11"}], ports=ports, **local)
    slice_ports = [{"name": "http", "port": 8080, "protocol": "TCP"},
                   {"name": "https", "port": 8443, "protocol": "TCP"}]  # fmt: skip
    slices = [
        slice_(
            ep("10.42.0.5", node="node-a"),
            ep("10.42.0.6", node="node-a", ready=False),
            ep("10.42.1.5", node="node-b"),
            ports=slice_ports,
        )
    ]
    text = render([service], slices, CONFIG).text()
    accepts = [r for r in rules(filt(text), "KUBE-NODEPORTS") if "--dport 32000" in r]
    assert accepts == [
        '-A KUBE-NODEPORTS -m comment --comment "default/web health check node port"'
        " -m tcp -p tcp --dport 32000 -j ACCEPT"
    ]
    assert any(r.endswith(f"-j {SVL}") for r in rules(nat(text), EXT))
    by_port = endpoints_by_port(slices, "node-a")
    (check,) = health_checks(service_ports(service), by_port).values()
    assert (check.namespace, check.service, check.port, check.local_endpoints) == (
        "default", "web", 32000, 1,
    )  # fmt: skip
    assert health_checks(service_ports(service), endpoints_by_port(slices, "node-c")) == {
        32000: check.__class__("default", "web", 32000, 0)
    }


def test_cluster_policy_has_no_health_check() -> None:
    service = lb([{"ip": "10.99.0.11"}], healthCheckNodePort=32000)
    assert health_checks(service_ports(service), {}) == {}
    assert "health check" not in render([service], [], CONFIG).text()
