"""The cluster DNS naming rules, on plain stores: no server, no sockets."""

from __future__ import annotations

from typing import Any

import dns.name
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

from pyk8s.client import Store
from pyk8s.dns import TTL, Answer, Catalog, Zone

T = dns.rdatatype.RdataType


def service(name: str, ns: str = "default", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def endpoint_slice(
    svc: str,
    endpoints: list[dict[str, Any]],
    ports: list[dict[str, Any]],
    ns: str = "default",
    address_type: str = "IPv4",
    name: str = "",
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name or f"{svc}-abc",
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": svc},
        },
        "addressType": address_type,
        "endpoints": endpoints,
        "ports": ports,
    }


@pytest.fixture
def zone() -> Zone:
    services, slices = Store(), Store()
    services.add(
        service(
            "web",
            type="ClusterIP",
            clusterIP="10.96.0.20",
            clusterIPs=["10.96.0.20", "fd00::20"],
            ports=[
                {"name": "http", "port": 80, "protocol": "TCP"},
                {"name": "dns", "port": 53, "protocol": "UDP"},
            ],
        )
    )
    services.add(
        service(
            "db",
            clusterIP="None",
            clusterIPs=["None"],
            ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}],
        )
    )
    services.add(service("ext", type="ExternalName", externalName="example.com"))
    in_cluster = "web.default.svc.cluster.local"
    services.add(service("alias", type="ExternalName", externalName=in_cluster))
    services.add(service("empty", clusterIP="None", ports=[{"name": "x", "port": 1}]))
    slices.add(
        endpoint_slice(
            "db",
            [
                {"addresses": ["10.244.1.5"], "hostname": "db-0", "conditions": {"ready": True}},
                {"addresses": ["10.244.2.6"], "hostname": "db-1", "conditions": {}},
                {"addresses": ["10.244.3.7"], "conditions": {"ready": True}},
                {"addresses": ["10.244.9.9"], "hostname": "db-2", "conditions": {"ready": False}},
            ],
            [{"name": "pg", "port": 15432, "protocol": "TCP"}],
        )
    )
    return Zone(Catalog(services, slices))


def ask(zone: Zone, name: str, qtype: T) -> Answer:
    answer = zone.lookup(dns.name.from_text(name), qtype)
    assert answer is not None, f"{name} should be answered by the cluster zone"
    return answer


def texts(answer: Answer, qtype: T) -> list[str]:
    return sorted(rd.to_text() for rrset in answer.answer if rrset.rdtype == qtype for rd in rrset)


def assert_nodata(answer: Answer) -> None:
    assert answer.rcode == dns.rcode.NOERROR
    assert answer.answer == []
    assert [rr.rdtype for rr in answer.authority] == [T.SOA]


def assert_nxdomain(answer: Answer) -> None:
    assert answer.rcode == dns.rcode.NXDOMAIN
    assert [rr.rdtype for rr in answer.authority] == [T.SOA]


def test_cluster_ip_a_and_aaaa(zone: Zone) -> None:
    a = ask(zone, "web.default.svc.cluster.local", T.A)
    assert texts(a, T.A) == ["10.96.0.20"]
    assert a.answer[0].ttl == TTL
    assert texts(ask(zone, "web.default.svc.cluster.local", T.AAAA), T.AAAA) == ["fd00::20"]


def test_names_are_case_insensitive_and_keep_the_asked_case(zone: Zone) -> None:
    a = ask(zone, "WEB.Default.SVC.Cluster.Local", T.A)
    assert texts(a, T.A) == ["10.96.0.20"]
    assert a.answer[0].name.to_text() == "WEB.Default.SVC.Cluster.Local."


def test_headless_answers_ready_endpoints(zone: Zone) -> None:
    a = ask(zone, "db.default.svc.cluster.local", T.A)
    assert texts(a, T.A) == ["10.244.1.5", "10.244.2.6", "10.244.3.7"]
    assert_nodata(ask(zone, "db.default.svc.cluster.local", T.AAAA))


def test_headless_without_endpoints_is_nodata(zone: Zone) -> None:
    assert_nodata(ask(zone, "empty.default.svc.cluster.local", T.A))


def test_endpoint_hostname_records(zone: Zone) -> None:
    assert texts(ask(zone, "db-0.db.default.svc.cluster.local", T.A), T.A) == ["10.244.1.5"]
    assert texts(ask(zone, "10-244-3-7.db.default.svc.cluster.local", T.A), T.A) == ["10.244.3.7"]
    assert_nxdomain(ask(zone, "db-2.db.default.svc.cluster.local", T.A))  # not ready
    assert_nxdomain(ask(zone, "db-0.web.default.svc.cluster.local", T.A))  # not headless
    assert_nodata(ask(zone, "db-0.db.default.svc.cluster.local", T.TXT))


def test_external_name_is_a_cname(zone: Zone) -> None:
    a = ask(zone, "ext.default.svc.cluster.local", T.A)
    assert texts(a, T.CNAME) == ["example.com."]
    assert a.chase == dns.name.from_text("example.com")
    cname = ask(zone, "ext.default.svc.cluster.local", T.CNAME)
    assert texts(cname, T.CNAME) == ["example.com."] and cname.chase is None


def test_a_bad_external_name_is_nodata() -> None:
    services = Store()
    services.add(service("bad", type="ExternalName", externalName="a..b"))
    services.add(service("none", type="ExternalName"))
    zone = Zone(Catalog(services, Store()))
    assert_nodata(ask(zone, "bad.default.svc.cluster.local", T.A))
    assert_nodata(ask(zone, "none.default.svc.cluster.local", T.A))


def test_external_name_into_the_cluster_is_followed(zone: Zone) -> None:
    a = ask(zone, "alias.default.svc.cluster.local", T.A)
    assert texts(a, T.CNAME) == ["web.default.svc.cluster.local."]
    assert texts(a, T.A) == ["10.96.0.20"]
    assert a.chase is None


def test_srv_for_a_named_port_of_a_cluster_ip_service(zone: Zone) -> None:
    a = ask(zone, "_http._tcp.web.default.svc.cluster.local", T.SRV)
    assert texts(a, T.SRV) == ["0 100 80 web.default.svc.cluster.local."]
    assert sorted(rr.rdtype for rr in a.additional) == [T.A, T.AAAA]
    udp = ask(zone, "_dns._udp.web.default.svc.cluster.local", T.SRV)
    assert texts(udp, T.SRV) == ["0 100 53 web.default.svc.cluster.local."]
    assert_nxdomain(ask(zone, "_http._udp.web.default.svc.cluster.local", T.SRV))
    assert_nxdomain(ask(zone, "_nope._tcp.web.default.svc.cluster.local", T.SRV))
    assert_nodata(ask(zone, "_http._tcp.web.default.svc.cluster.local", T.A))
    assert_nodata(ask(zone, "_tcp.web.default.svc.cluster.local", T.SRV))


def test_srv_for_a_headless_service_names_each_endpoint(zone: Zone) -> None:
    a = ask(zone, "_pg._tcp.db.default.svc.cluster.local", T.SRV)
    assert texts(a, T.SRV) == [
        "0 33 15432 10-244-3-7.db.default.svc.cluster.local.",
        "0 33 15432 db-0.db.default.svc.cluster.local.",
        "0 33 15432 db-1.db.default.svc.cluster.local.",
    ]
    extra = {rr.name.to_text(): [rd.to_text() for rd in rr] for rr in a.additional}
    assert extra["db-0.db.default.svc.cluster.local."] == ["10.244.1.5"]


def test_srv_at_the_service_name_lists_every_port(zone: Zone) -> None:
    a = ask(zone, "web.default.svc.cluster.local", T.SRV)
    assert texts(a, T.SRV) == [
        "0 50 53 web.default.svc.cluster.local.",
        "0 50 80 web.default.svc.cluster.local.",
    ]


def test_pod_records(zone: Zone) -> None:
    assert texts(ask(zone, "10-244-1-5.default.pod.cluster.local", T.A), T.A) == ["10.244.1.5"]
    assert texts(ask(zone, "fd00--5.x.pod.cluster.local", T.AAAA), T.AAAA) == ["fd00::5"]
    assert_nodata(ask(zone, "10-244-1-5.default.pod.cluster.local", T.AAAA))
    assert_nxdomain(ask(zone, "not-an-ip.default.pod.cluster.local", T.A))


def test_pods_verified_and_disabled() -> None:
    """CoreDNS's ``pods verified``: an address answers only when a pod of that namespace
    has it (either family of a dual-stack pod); ``pods disabled``: never (issue 20)."""
    pods = Store()
    pods.replace([{"metadata": {"namespace": "default", "name": "p"},
                   "status": {"podIP": "10.244.1.5",
                              "podIPs": [{"ip": "10.244.1.5"}, {"ip": "fd00::5"}]}}])  # fmt: skip
    verified = Zone(Catalog(Store(), Store(), pods=pods), pods="verified")
    assert texts(ask(verified, "10-244-1-5.default.pod.cluster.local", T.A), T.A) == ["10.244.1.5"]
    assert texts(ask(verified, "fd00--5.default.pod.cluster.local", T.AAAA), T.AAAA) == ["fd00::5"]
    assert_nxdomain(ask(verified, "10-244-1-5.other.pod.cluster.local", T.A))  # wrong namespace
    assert_nxdomain(ask(verified, "10-244-1-6.default.pod.cluster.local", T.A))  # no such pod
    disabled = Zone(Catalog(Store(), Store()), pods="disabled")
    assert_nxdomain(ask(disabled, "10-244-1-5.default.pod.cluster.local", T.A))
    with pytest.raises(ValueError, match="pods mode"):
        Zone(Catalog(Store(), Store()), pods="sometimes")


def test_ptr_for_cluster_ips_and_headless_endpoints(zone: Zone) -> None:
    ptr = ask(zone, "20.0.96.10.in-addr.arpa", T.PTR)
    assert texts(ptr, T.PTR) == ["web.default.svc.cluster.local."]
    v6 = dns.reversename.from_address("fd00::20")
    assert texts(ask(zone, v6.to_text(), T.PTR), T.PTR) == ["web.default.svc.cluster.local."]
    assert texts(ask(zone, "5.1.244.10.in-addr.arpa", T.PTR), T.PTR) == [
        "db-0.db.default.svc.cluster.local."
    ]
    assert texts(ask(zone, "7.3.244.10.in-addr.arpa", T.PTR), T.PTR) == [
        "10-244-3-7.db.default.svc.cluster.local."
    ]


def test_unknown_reverse_and_outside_names_are_not_ours(zone: Zone) -> None:
    assert zone.lookup(dns.name.from_text("1.1.1.1.in-addr.arpa"), T.PTR) is None
    assert zone.lookup(dns.name.from_text("10.in-addr.arpa"), T.PTR) is None
    assert zone.lookup(dns.name.from_text("example.com"), T.A) is None


def test_nxdomain_inside_the_cluster_domain(zone: Zone) -> None:
    for name in [
        "nope.default.svc.cluster.local",
        "web.nope.svc.cluster.local",
        "nope.svc.cluster.local",
        "foo.cluster.local",
        "a.b.c.web.default.svc.cluster.local",
    ]:
        assert_nxdomain(ask(zone, name, T.A))


def test_nodata_for_known_names_and_empty_non_terminals(zone: Zone) -> None:
    assert_nodata(ask(zone, "web.default.svc.cluster.local", T.TXT))
    assert_nodata(ask(zone, "default.svc.cluster.local", T.A))
    assert_nodata(ask(zone, "svc.cluster.local", T.A))
    assert_nodata(ask(zone, "cluster.local", T.A))


def test_soa_and_ns_at_the_apex(zone: Zone) -> None:
    soa = ask(zone, "cluster.local", T.SOA)
    (rd,) = soa.answer[0]
    assert rd.mname.to_text() == "ns.dns.cluster.local."
    assert rd.rname.to_text() == "hostmaster.cluster.local."
    assert rd.minimum == TTL
    assert texts(ask(zone, "cluster.local", T.NS), T.NS) == ["ns.dns.cluster.local."]


def test_another_cluster_domain() -> None:
    services = Store()
    services.add(service("web", clusterIP="10.0.0.1", clusterIPs=["10.0.0.1"]))
    zone = Zone(Catalog(services, Store()), domain="k8s.example")
    assert texts(ask(zone, "web.default.svc.k8s.example", T.A), T.A) == ["10.0.0.1"]
    assert zone.lookup(dns.name.from_text("web.default.svc.cluster.local"), T.A) is None


def test_slices_follow_store_changes(zone: Zone) -> None:
    slices = zone.catalog.slices
    slices.add(
        endpoint_slice(
            "db", [{"addresses": ["10.244.4.4"], "hostname": "db-3"}], [], name="db-second"
        )
    )
    assert "10.244.4.4" in texts(ask(zone, "db.default.svc.cluster.local", T.A), T.A)
    slices.delete("default/db-second")
    assert "10.244.4.4" not in texts(ask(zone, "db.default.svc.cluster.local", T.A), T.A)
    assert zone.lookup(dns.name.from_text("4.4.244.10.in-addr.arpa"), T.PTR) is None
