"""Dual-stack Services (issue 20): on a ``10.43.0.0/16,fd00:43::/112`` cluster a Service's
``ipFamilyPolicy``/``ipFamilies`` decide how many ClusterIPs it gets, from which range,
in which order; what the cluster cannot give is a 422 with upstream's message, and a
single-stack cluster refuses RequireDualStack and IPv6."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from pyk8s.apiserver.server import APIServer, Config
from pyk8s.storage.sqlite import SqliteStore

URL = "/api/v1/namespaces/default/services"
V4, V6 = ipaddress.ip_network("10.43.0.0/16"), ipaddress.ip_network("fd00:43::/112")

Client = TestClient[Any, Any]


async def _server(tmp_path: Path, service_cidr: str) -> AsyncIterator[Client]:
    store = await SqliteStore.open(tmp_path / f"{service_cidr.count(',')}.db")
    server = APIServer(store, config=Config(compact_interval=0, service_cidr=service_cidr))
    await server.start()
    client: Client = TestClient(TestServer(server.app))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
        await server.stop()
        await store.close()


@pytest.fixture
async def dual(tmp_path: Path) -> AsyncIterator[Client]:
    async for c in _server(tmp_path, "10.43.0.0/16,fd00:43::/112"):
        yield c


@pytest.fixture
async def v6only(tmp_path: Path) -> AsyncIterator[Client]:
    async for c in _server(tmp_path, "fd00:43::/112"):
        yield c


@pytest.fixture
async def single(tmp_path: Path) -> AsyncIterator[Client]:
    async for c in _server(tmp_path, "10.43.0.0/16"):
        yield c


def svc(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80}], **spec},
    }


async def create(client: Client, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    resp = await client.post(URL, json=body)
    out: dict[str, Any] = await resp.json()
    assert resp.status == status, out
    return out


def _in(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Callable[[str], bool]:
    return lambda ip: ipaddress.ip_address(ip) in net


async def test_policies_allocate_one_address_per_family(dual: Client) -> None:
    single = (await create(dual, svc("a")))["spec"]
    assert single["ipFamilyPolicy"] == "SingleStack" and single["ipFamilies"] == ["IPv4"]
    assert len(single["clusterIPs"]) == 1 and _in(V4)(single["clusterIP"])

    prefer = (await create(dual, svc("b", ipFamilyPolicy="PreferDualStack")))["spec"]
    assert prefer["ipFamilies"] == ["IPv4", "IPv6"]
    assert _in(V4)(prefer["clusterIPs"][0]) and _in(V6)(prefer["clusterIPs"][1])
    assert prefer["clusterIP"] == prefer["clusterIPs"][0]

    v6first = svc("c", ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv6", "IPv4"])
    spec = (await create(dual, v6first))["spec"]
    assert _in(V6)(spec["clusterIPs"][0]) and _in(V4)(spec["clusterIPs"][1])

    only6 = (await create(dual, svc("d", ipFamilies=["IPv6"])))["spec"]
    assert only6["ipFamilyPolicy"] == "SingleStack" and _in(V6)(only6["clusterIP"])

    # picked addresses of both families are reserved; taking one again is refused
    picked = svc("e", ipFamilyPolicy="PreferDualStack", clusterIPs=["10.43.7.7", "fd00:43::77"])
    assert (await create(dual, picked))["spec"]["ipFamilies"] == ["IPv4", "IPv6"]
    again = await create(dual, svc("f", clusterIPs=["fd00:43::77"]), 422)
    assert again["details"]["causes"][0]["message"].endswith("provided IP is already allocated")

    # upgrade to dual stack by policy, then back to the primary only by SingleStack
    resp = await dual.patch(
        f"{URL}/a",
        json={"spec": {"ipFamilyPolicy": "PreferDualStack"}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    up = (await resp.json())["spec"]
    assert resp.status == 200, up
    assert up["clusterIPs"][0] == single["clusterIP"] and _in(V6)(up["clusterIPs"][1])
    resp = await dual.patch(
        f"{URL}/a",
        json={"spec": {"ipFamilyPolicy": "SingleStack"}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    down = (await resp.json())["spec"]
    assert resp.status == 200, down
    assert down["clusterIPs"] == [single["clusterIP"]] and down["ipFamilies"] == ["IPv4"]
    # the released IPv6 address can be taken by name again
    await create(dual, svc("g", clusterIPs=[up["clusterIPs"][1]]))
    # dropping the secondary without SingleStack is refused, as upstream
    resp = await dual.patch(
        f"{URL}/b",
        json={"spec": {"clusterIPs": prefer["clusterIPs"][:1]}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert resp.status == 422
    assert (await resp.json())["message"] == (
        'Service "b" is invalid: spec.ipFamilyPolicy: Invalid value: "PreferDualStack": '
        "must be 'SingleStack' to release the secondary cluster IP"
    )


async def test_what_the_cluster_cannot_give_is_a_422(dual: Client, single: Client) -> None:
    out = await create(single, svc("x", ipFamilyPolicy="RequireDualStack"), 422)
    assert out["message"] == (
        'Service "x" is invalid: spec.ipFamilyPolicy: Invalid value: "RequireDualStack": '
        "this cluster is not configured for dual-stack services"
    )
    out = await create(single, svc("x", ipFamilies=["IPv6"]), 422)
    assert out["message"] == (
        'Service "x" is invalid: spec.ipFamilies[0]: Invalid value: "IPv6": '
        "not configured on this cluster"
    )
    out = await create(single, svc("x", clusterIPs=["fd00:43::5"]), 422)
    assert out["message"] == (
        'Service "x" is invalid: spec.clusterIPs[0]: Invalid value: []string{"fd00:43::5"}: '
        "IPv6 is not configured on this cluster"
    )
    # PreferDualStack on a single-stack cluster is one family, no error
    prefer = (await create(single, svc("p", ipFamilyPolicy="PreferDualStack")))["spec"]
    assert prefer["ipFamilies"] == ["IPv4"] and len(prefer["clusterIPs"]) == 1

    two = svc("y", ipFamilyPolicy="SingleStack", ipFamilies=["IPv4", "IPv6"])
    out = await create(dual, two, 422)
    assert out["message"] == (
        'Service "y" is invalid: spec.ipFamilyPolicy: Invalid value: "SingleStack": '
        "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified"
    )
    # initIPFamilyFields runs before field validation (upstream's BeginCreate and
    # BeginUpdate): with a bad port too, only the family error is reported
    bad_port = svc("z", ipFamilyPolicy="RequireDualStack", ports=[{"port": 0}])
    out = await create(single, bad_port, 422)
    assert [c["field"] for c in out["details"]["causes"]] == ["spec.ipFamilyPolicy"], out
    made = await create(dual, svc("u"))
    made["spec"].update(ipFamilies=["IPv4", "IPv6"], ports=[{"port": 0}])
    resp = await dual.put(f"{URL}/u", json=made)
    out = await resp.json()
    assert resp.status == 422 and [c["field"] for c in out["details"]["causes"]] == [
        "spec.ipFamilyPolicy"
    ], out
    out = await create(dual, svc("y", clusterIPs=["fd00:44::1"]), 422)
    assert out["details"]["causes"][0]["message"] == (
        'Invalid value: []string{"fd00:44::1"}: failed to allocate IP fd00:44::1: the provided IP '
        "(fd00:44::1) is not in the valid range. The range of valid IPs is fd00:43::/112"
    )


async def test_an_ipv6_only_cluster(v6only: Client) -> None:
    resp = await v6only.get("/api/v1/namespaces/default/services/kubernetes")
    assert (await resp.json())["spec"]["clusterIPs"] == ["fd00:43::1"]
    spec = (await create(v6only, svc("a")))["spec"]
    assert spec["ipFamilies"] == ["IPv6"] and _in(V6)(spec["clusterIP"])
    prefer = (await create(v6only, svc("b", ipFamilyPolicy="PreferDualStack")))["spec"]
    assert prefer["ipFamilies"] == ["IPv6"] and len(prefer["clusterIPs"]) == 1
    out = await create(v6only, svc("c", ipFamilies=["IPv4"]), 422)
    assert out["details"]["causes"][0]["message"] == (
        'Invalid value: "IPv4": not configured on this cluster'
    )
