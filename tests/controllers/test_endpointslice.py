"""EndpointSlice and Endpoints controllers: pods behind a Service, with readiness and
named ports, as kube-proxy and kubectl see them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from pyk8s.api.registry import REGISTRY
from pyk8s.client import Client
from pyk8s.controllers.runtime import Manager
from tests.controllers.conftest import eventually
from tests.controllers.podsim import set_running

PODS = REGISTRY.get("", "v1", "pods")
SERVICES = REGISTRY.get("", "v1", "services")
SLICES = REGISTRY.get("discovery.k8s.io", "v1", "endpointslices")
ENDPOINTS = REGISTRY.get("", "v1", "endpoints")

Run = Callable[..., Awaitable[Manager]]


def pod_body(name: str, port: int, finalizers: list[str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"app": "web"}}
    if finalizers:
        meta["finalizers"] = finalizers
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "ports": [{"name": "http", "containerPort": port}],
                }
            ]
        },
    }


async def slices_of(client: Client, ns: str, svc: str) -> list[dict[str, Any]]:
    assert SLICES is not None
    got = await client.list(SLICES, ns, label_selector=f"kubernetes.io/service-name={svc}")
    return list(got["items"])


def by_pod(es: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["targetRef"]["name"]: e for e in es.get("endpoints") or ()}


async def test_slices_and_endpoints_follow_pods(
    client: Client, namespace: str, run_controllers: Run
) -> None:
    assert PODS is not None and SERVICES is not None and ENDPOINTS is not None
    await run_controllers("endpointslice", "endpoints")
    await client.create(
        SERVICES,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "labels": {"tier": "front"}},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"name": "web", "port": 80, "targetPort": "http"}],
            },
        },
        namespace,
    )
    pods = {}
    for i, (name, port) in enumerate([("a", 8080), ("b", 8080), ("c", 8080)]):
        p = await client.create(PODS, pod_body(name, port, ["test.pyk8s.io/hold"]), namespace)
        pods[name] = await set_running(client, p, f"10.9.0.{i + 1}", ready=name != "c")

    async def three_endpoints() -> dict[str, Any] | None:
        slices = await slices_of(client, namespace, "web")
        if len(slices) != 1 or len(slices[0].get("endpoints") or []) != 3:
            return None
        return slices[0]

    es = await eventually(three_endpoints, within=30)
    meta = es["metadata"]
    assert meta["name"].startswith("web-") and meta["generateName"] == "web-"
    assert meta["labels"]["endpointslice.kubernetes.io/managed-by"] == (
        "endpointslice-controller.k8s.io"
    )
    assert meta["labels"]["tier"] == "front"
    [owner] = meta["ownerReferences"]
    assert owner["kind"] == "Service" and owner["name"] == "web" and owner["controller"]
    assert es["addressType"] == "IPv4"
    assert es["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]
    eps = by_pod(es)
    assert eps["a"]["addresses"] == ["10.9.0.1"]
    assert eps["a"]["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert eps["c"]["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert eps["b"]["targetRef"]["uid"] == pods["b"]["metadata"]["uid"]

    async def endpoints_object() -> dict[str, Any] | None:
        ep = await client.get(ENDPOINTS, "web", namespace)
        subsets = ep.get("subsets") or []
        if len(subsets) != 1 or len(subsets[0].get("addresses") or []) != 2:
            return None
        return ep

    ep = await eventually(endpoints_object, within=30)
    [subset] = ep["subsets"]
    assert [a["ip"] for a in subset["addresses"]] == ["10.9.0.1", "10.9.0.2"]
    assert [a["ip"] for a in subset["notReadyAddresses"]] == ["10.9.0.3"]
    assert subset["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]
    assert ep["metadata"]["labels"] == {"tier": "front"}
    assert "endpoints.kubernetes.io/last-change-trigger-time" in ep["metadata"]["annotations"]

    # a pod being deleted (held by a finalizer) is terminating in the slice, gone from
    # Endpoints; once it is really gone it leaves the slice too
    await client.delete(PODS, "b", namespace)

    async def b_terminating() -> bool:
        [es] = await slices_of(client, namespace, "web")
        conds = by_pod(es).get("b", {}).get("conditions")
        return conds == {"ready": False, "serving": True, "terminating": True}

    await eventually(b_terminating, within=30)

    async def b_left_endpoints() -> bool:
        ep = await client.get(ENDPOINTS, "web", namespace)
        return [a["ip"] for a in ep["subsets"][0]["addresses"]] == ["10.9.0.1"]

    await eventually(b_left_endpoints, within=30)
    for name in pods:
        await client.patch(
            PODS, name, {"metadata": {"finalizers": None}}, namespace, patch_type="merge"
        )
    await client.delete(PODS, "a", namespace)

    async def only_c() -> bool:
        slices = await slices_of(client, namespace, "web")
        return len(slices) == 1 and sorted(by_pod(slices[0])) == ["c"]

    await eventually(only_c, within=30)


async def test_named_ports_that_differ_split_slices(
    client: Client, namespace: str, run_controllers: Run
) -> None:
    assert PODS is not None and SERVICES is not None
    await run_controllers("endpointslice")
    await client.create(
        SERVICES,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "split"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
        },
        namespace,
    )

    # no pods yet: one placeholder slice
    async def placeholder() -> bool:
        slices = await slices_of(client, namespace, "split")
        return len(slices) == 1 and not slices[0].get("endpoints")

    await eventually(placeholder, within=30)
    for i, (name, port) in enumerate([("x", 8080), ("y", 9090)]):
        p = await client.create(PODS, pod_body(name, port), namespace)
        await set_running(client, p, f"10.9.1.{i + 1}")

    async def two_slices() -> list[dict[str, Any]] | None:
        slices = await slices_of(client, namespace, "split")
        ports = sorted(s.get("ports", [{}])[0].get("port", 0) for s in slices)
        return slices if ports == [8080, 9090] else None

    slices = await eventually(two_slices, within=30)
    for es in slices:
        [(name, ep)] = by_pod(es).items()
        assert es["ports"][0]["port"] == {"x": 8080, "y": 9090}[name]
        assert ep["conditions"]["ready"] is True
    # settled: nothing is rewritten while nothing changes
    before = {s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in slices}
    await asyncio.sleep(1.5)
    after = await slices_of(client, namespace, "split")
    assert {s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in after} == before


def test_a_dual_stack_service_has_slices_of_each_family() -> None:
    """ipFamilies [IPv6, IPv4]: an IPv6 and an IPv4 slice, each endpoint with the pod's
    address of that family; a pod with no IPv6 address is only in the IPv4 one; a
    single-stack IPv6 Service has only IPv6 slices (issue 20)."""
    from pyk8s.controllers.endpointslice import desired_groups

    def pod(name: str, *ips: str) -> dict[str, Any]:
        body = pod_body(name, 8080)
        body["metadata"].update(namespace="ns", uid=f"uid-{name}")
        body["spec"]["nodeName"] = "n1"
        body["status"] = {
            "phase": "Running",
            "podIP": ips[0],
            "podIPs": [{"ip": ip} for ip in ips],
            "conditions": [{"type": "Ready", "status": "True"}],
        }
        return body

    def service(*families: str) -> dict[str, Any]:
        return {
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"selector": {"app": "web"}, "ipFamilies": list(families),
                     "ports": [{"name": "web", "port": 80, "targetPort": "http"}]},
        }  # fmt: skip

    pods = [pod("a", "10.42.0.5", "fd00:42::5"), pod("b", "10.42.0.6")]
    groups = list(desired_groups(service("IPv6", "IPv4"), pods, {}).values())
    assert [g["family"] for g in groups] == ["IPv6", "IPv4"]
    assert [e["addresses"] for e in groups[0]["endpoints"]] == [["fd00:42::5"]]
    assert [e["addresses"] for e in groups[1]["endpoints"]] == [["10.42.0.5"], ["10.42.0.6"]]
    assert groups[0]["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]
    only6 = list(desired_groups(service("IPv6"), [pods[1]], {}).values())
    assert only6 == [{"family": "IPv6", "ports": None, "endpoints": []}]  # the placeholder
