"""The DNS server on loopback, asked with dnspython: first over plain stores (wire
behaviour: UDP, TCP, truncation, forwarding, SERVFAIL, metrics), then against a real API
server through informers (Services and EndpointSlices created with a client)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

from pyk8s.api.registry import REGISTRY
from pyk8s.client import Client, Store
from pyk8s.dns import Catalog, Zone
from pyk8s.dns.forward import Forwarder, Upstream
from pyk8s.dns.server import ClusterInformers, DNSServer
from pyk8s.server import dns as dns_process
from tests.controllers.conftest import eventually
from tests.dns.conftest import UPSTREAM_ADDRESS, FakeUpstream
from tests.integration.conftest import Server, free_port

T = dns.rdatatype.RdataType
SERVICES = REGISTRY.get("", "v1", "services")
SLICES = REGISTRY.get("discovery.k8s.io", "v1", "endpointslices")
TIMEOUT = 3.0


async def query(
    server: DNSServer,
    name: str,
    qtype: T,
    *,
    tcp: bool = False,
    payload: int | None = None,
    address: str = "127.0.0.1",
) -> dns.message.Message:
    q = dns.message.make_query(name, qtype, use_edns=payload is not None, payload=payload or 0)
    ask = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
    return await asyncio.wait_for(ask(q, address, timeout=TIMEOUT, port=server.port), TIMEOUT)


def texts(response: dns.message.Message, qtype: T) -> list[str]:
    return sorted(rd.to_text() for rr in response.answer if rr.rdtype == qtype for rd in rr)


def headless(name: str, count: int) -> tuple[dict[str, Any], dict[str, Any]]:
    svc = {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]},
    }
    slice_ = {
        "metadata": {
            "name": f"{name}-1",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": name},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [f"10.1.{i // 250}.{i % 250 + 1}"]} for i in range(count)],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }
    return svc, slice_


@contextlib.asynccontextmanager
async def serving(
    catalog: Catalog,
    upstream: FakeUpstream,
    ready: Callable[[], bool] = lambda: True,
    host: str = "127.0.0.1",
) -> AsyncIterator[DNSServer]:
    """A DNS server on a free port of ``host``, forwarding to the fake upstream."""
    forwarder = Forwarder([upstream.address], timeout=1.0)
    server = DNSServer(Zone(catalog), forwarder, host, 0, ready=ready)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def local(upstream: FakeUpstream) -> AsyncIterator[DNSServer]:
    services, slices = Store(), Store()
    services.add(
        {
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"]},
        }
    )
    services.add(
        {
            "metadata": {"name": "ext", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "www.example.org"},
        }
    )
    for obj, store in zip(headless("big", 100), (services, slices), strict=True):
        store.add(obj)
    async with serving(Catalog(services, slices), upstream) as server:
        yield server


async def test_udp_and_tcp_answers(local: DNSServer) -> None:
    for tcp in (False, True):
        r = await query(local, "web.default.svc.cluster.local", T.A, tcp=tcp)
        assert texts(r, T.A) == ["10.96.0.20"]
        assert r.flags & dns.flags.AA and r.answer[0].ttl == 5
    assert local.healthy()


async def test_a_wildcard_bind_answers_both_families(upstream: FakeUpstream) -> None:
    """``--bind-address 0.0.0.0`` (the default) listens on IPv6 too, as CoreDNS's
    wildcard listeners do: one port, UDP and TCP, asked at 127.0.0.1 and at ::1."""
    services = Store()
    services.add(
        {
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"]},
        }
    )
    async with serving(Catalog(services, Store()), upstream, host="0.0.0.0") as server:
        for address in ("127.0.0.1", "::1"):
            for tcp in (False, True):
                r = await query(
                    server, "web.default.svc.cluster.local", T.A, tcp=tcp, address=address
                )
                assert texts(r, T.A) == ["10.96.0.20"], (address, tcp)


async def test_nxdomain_and_nodata_on_the_wire(local: DNSServer) -> None:
    nx = await query(local, "nope.default.svc.cluster.local", T.A)
    assert nx.rcode() == dns.rcode.NXDOMAIN and nx.authority[0].rdtype == T.SOA
    nodata = await query(local, "web.default.svc.cluster.local", T.MX)
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert nodata.authority[0].rdtype == T.SOA


async def test_large_udp_answers_are_truncated(local: DNSServer) -> None:
    udp = await query(local, "big.default.svc.cluster.local", T.A)
    assert udp.flags & dns.flags.TC
    tcp = await query(local, "big.default.svc.cluster.local", T.A, tcp=True)
    assert not tcp.flags & dns.flags.TC and len(texts(tcp, T.A)) == 100
    edns = await query(local, "big.default.svc.cluster.local", T.A, payload=4096)
    assert not edns.flags & dns.flags.TC and len(texts(edns, T.A)) == 100


async def test_other_names_are_forwarded(local: DNSServer, upstream: FakeUpstream) -> None:
    for tcp in (False, True):
        r = await query(local, "example.com", T.A, tcp=tcp)
        assert texts(r, T.A) == [UPSTREAM_ADDRESS]
    nx = await query(local, "nx.example.com", T.A)
    assert nx.rcode() == dns.rcode.NXDOMAIN
    ptr = await query(local, "4.3.2.1.in-addr.arpa", T.PTR)  # not a cluster address
    assert ptr.rcode() == dns.rcode.NOERROR
    # the repeat (over TCP) came from the forward cache: upstream saw the name once
    assert upstream.seen == ["example.com.", "nx.example.com.", "4.3.2.1.in-addr.arpa."]


async def test_forwarded_answers_are_reused_over_udp(
    local: DNSServer, upstream: FakeUpstream
) -> None:
    first = await query(local, "again.example.com", T.A)
    second = await query(local, "again.example.com", T.A)
    assert texts(first, T.A) == texts(second, T.A) == [UPSTREAM_ADDRESS]
    assert upstream.seen.count("again.example.com.") == 1


async def test_external_name_target_resolved_upstream(local: DNSServer) -> None:
    r = await query(local, "ext.default.svc.cluster.local", T.A)
    assert texts(r, T.CNAME) == ["www.example.org."]
    assert texts(r, T.A) == [UPSTREAM_ADDRESS]


async def test_servfail_when_no_upstream_answers(local: DNSServer) -> None:
    local.forwarder.close()
    local.forwarder = Forwarder([Upstream("127.0.0.1", 9)], timeout=0.3)  # discard port
    r = await query(local, "example.com", T.A)
    assert r.rcode() == dns.rcode.SERVFAIL
    cluster = await query(local, "web.default.svc.cluster.local", T.A)
    assert texts(cluster, T.A) == ["10.96.0.20"]
    failures = local.registry.get_sample_value("dns_forward_failures_total")
    assert failures == 1


async def test_metrics(local: DNSServer) -> None:
    await query(local, "web.default.svc.cluster.local", T.A)
    await query(local, "nope.default.svc.cluster.local", T.AAAA, tcp=True)
    get = local.registry.get_sample_value
    assert get("dns_requests_total", {"proto": "udp", "type": "A"}) == 1
    assert get("dns_requests_total", {"proto": "tcp", "type": "AAAA"}) == 1
    assert get("dns_responses_total", {"proto": "tcp", "rcode": "NXDOMAIN"}) == 1
    assert get("dns_request_duration_seconds_count", {"source": "cluster"}) == 2


async def test_remembered_udp_answers_last_until_a_change(upstream: FakeUpstream) -> None:
    services = Store()
    catalog = Catalog(services, Store(), track_changes=True)
    svc = {"metadata": {"name": "a", "namespace": "default"}, "spec": {"clusterIP": "10.0.0.1"}}
    services.add(svc)
    async with serving(catalog, upstream) as server:
        for _ in range(3):  # replayed answers carry each query's own ID (dnspython checks)
            r = await query(server, "a.default.svc.cluster.local", T.A)
            assert texts(r, T.A) == ["10.0.0.1"]
        services.add({**svc, "spec": {"clusterIP": "10.0.0.2"}})
        r = await query(server, "a.default.svc.cluster.local", T.A)
        assert texts(r, T.A) == ["10.0.0.1"], "no change reported yet: the answer is replayed"
        catalog.changed()
        r = await query(server, "a.default.svc.cluster.local", T.A)
        assert texts(r, T.A) == ["10.0.0.2"]
        count = server.registry.get_sample_value
        assert count("dns_requests_total", {"proto": "udp", "type": "A"}) == 5


# ---------------------------------------------------------------------- real API server


@pytest.fixture
async def cluster_dns(client: Client, upstream: FakeUpstream) -> AsyncIterator[DNSServer]:
    informers = ClusterInformers(client)
    try:
        assert await informers.start(within=10)
        async with serving(informers.catalog, upstream, informers.synced) as server:
            yield server
    finally:
        await informers.stop()


async def create_service(client: Client, ns: str, name: str, **spec: Any) -> dict[str, Any]:
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}
    assert SERVICES is not None
    return await client.create(SERVICES, body, namespace=ns)


async def test_against_an_api_server(
    client: Client, namespace: str, cluster_dns: DNSServer
) -> None:
    ns = namespace
    web = await create_service(
        client, ns, "web", ports=[{"name": "http", "port": 80, "protocol": "TCP"}],
    )  # fmt: skip
    cluster_ip = web["spec"]["clusterIP"]
    await create_service(
        client, ns, "db", clusterIP="None", ports=[{"name": "pg", "port": 5432}],
    )  # fmt: skip
    await create_service(client, ns, "ext", type="ExternalName", externalName="db.example.net")
    assert SLICES is not None
    await client.create(
        SLICES,
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "db-manual", "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.244.0.10"], "hostname": "db-0", "conditions": {"ready": True}},
                {"addresses": ["10.244.0.11"], "hostname": "db-1", "conditions": {"ready": True}},
            ],
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
        },
        namespace=ns,
    )
    domain = f"{ns}.svc.cluster.local"

    async def slices_seen() -> bool:
        r = await query(cluster_dns, f"db.{domain}", T.A)
        return texts(r, T.A) == ["10.244.0.10", "10.244.0.11"]

    await eventually(slices_seen, within=10)
    assert cluster_dns.healthy()

    a = await query(cluster_dns, f"web.{domain}", T.A)
    assert texts(a, T.A) == [cluster_ip]
    srv = await query(cluster_dns, f"_http._tcp.web.{domain}", T.SRV)
    assert texts(srv, T.SRV) == [f"0 100 80 web.{domain}."]
    srv = await query(cluster_dns, f"_pg._tcp.db.{domain}", T.SRV)
    assert texts(srv, T.SRV) == [f"0 50 5432 db-0.db.{domain}.", f"0 50 5432 db-1.db.{domain}."]
    host = await query(cluster_dns, f"db-1.db.{domain}", T.A, tcp=True)
    assert texts(host, T.A) == ["10.244.0.11"]
    ptr = await query(cluster_dns, dns.reversename.from_address(cluster_ip).to_text(), T.PTR)
    assert texts(ptr, T.PTR) == [f"web.{domain}."]
    ptr = await query(cluster_dns, "10.0.244.10.in-addr.arpa", T.PTR)
    assert texts(ptr, T.PTR) == [f"db-0.db.{domain}."]
    ext = await query(cluster_dns, f"ext.{domain}", T.A)
    assert texts(ext, T.CNAME) == ["db.example.net."] and texts(ext, T.A) == [UPSTREAM_ADDRESS]
    nx = await query(cluster_dns, f"nope.{domain}", T.A)
    assert nx.rcode() == dns.rcode.NXDOMAIN
    nodata = await query(cluster_dns, f"web.{domain}", T.TXT)
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    fwd = await query(cluster_dns, "kubernetes.io", T.A)
    assert texts(fwd, T.A) == [UPSTREAM_ADDRESS]

    slice_ = await client.get(SLICES, "db-manual", namespace=ns)
    slice_["endpoints"][1]["conditions"]["ready"] = False
    await client.update(SLICES, slice_, namespace=ns)

    async def not_ready_gone() -> bool:
        r = await query(cluster_dns, f"db.{domain}", T.A)
        return texts(r, T.A) == ["10.244.0.10"]

    await eventually(not_ready_gone, within=10, every=0.05)  # as slices_seen's
    gone = await query(cluster_dns, f"db-1.db.{domain}", T.A)
    assert gone.rcode() == dns.rcode.NXDOMAIN


async def test_a_new_service_resolves_from_the_watch_after_a_negative_answer(
    client: Client, namespace: str, cluster_dns: DNSServer
) -> None:
    # The server's informers never resync on a timer: the only way the new Service can
    # reach its catalog while the informers run is their watch event, and the NXDOMAIN
    # answered before must not be remembered past it.
    name = f"late.{namespace}.svc.cluster.local"
    assert (await query(cluster_dns, name, T.A)).rcode() == dns.rcode.NXDOMAIN
    created = await create_service(client, namespace, "late", ports=[{"port": 80}])

    async def resolves() -> bool:
        return texts(await query(cluster_dns, name, T.A), T.A) == [created["spec"]["clusterIP"]]

    await eventually(resolves, within=30, every=0.05)


# ---------------------------------------------------------------------- the process


def test_upstreams_skip_this_server(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("search example\nnameserver 127.0.0.1\nnameserver 10.0.0.2\n")
    opts = dns_process.Options(resolv_conf=resolv)
    assert dns_process.upstreams_for(opts) == [Upstream("10.0.0.2", 53)]
    opts = dns_process.Options(upstreams=["[fd00::1]:5353", "127.0.0.1:53"], port=5300)
    assert dns_process.upstreams_for(opts) == [Upstream("fd00::1", 5353), Upstream("127.0.0.1")]


async def test_run_serves_dns_health_and_metrics(
    cm_server: Server, client: Client, namespace: str, upstream: FakeUpstream
) -> None:
    svc = await create_service(client, namespace, "api", ports=[{"port": 443}])
    opts = dns_process.Options(
        kubeconfig=cm_server.kubeconfig, bind_address="127.0.0.1", port=free_port(),
        upstreams=[str(upstream.address)], health_bind_address="127.0.0.1",
        health_port=free_port(), ready_port=free_port(),
    )  # fmt: skip
    task = asyncio.create_task(dns_process.run(opts))
    health = f"http://127.0.0.1:{opts.health_port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:

            async def healthy() -> bool:
                try:
                    async with http.get(f"{health}/healthz") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(healthy, within=15)
            q = dns.message.make_query(f"api.{namespace}.svc.cluster.local", T.A)
            r = await dns.asyncquery.udp(q, "127.0.0.1", timeout=TIMEOUT, port=opts.port)
            assert texts(r, T.A) == [svc["spec"]["clusterIP"]]
            async with http.get(f"{health}/metrics") as m:
                assert 'dns_requests_total{proto="udp",type="A"} 1.0' in await m.text()
            # CoreDNS's ready plugin on a port of its own (--ready-port; 8181 there)
            async with http.get(f"http://127.0.0.1:{opts.ready_port}/ready") as ready:
                assert (ready.status, await ready.text()) == (200, "OK")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
