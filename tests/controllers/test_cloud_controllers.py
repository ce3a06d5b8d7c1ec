"""The cloud controller manager's controllers at API level, against a real API server,
with Node objects standing in for machines (their status written as a kubelet would):
the ``local`` provider's node-ports load balancers (addresses, finalizer, events, a port
already taken by another load balancer or a host process, the enable label, Local policy,
classes it does not own; node addresses are loopback ones, so its port probes stay here)
and, with the fake provider, node initialisation, node lifecycle, routes and provider
failures."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.cli import main
from pyk8s.client import Client, ClientError, is_not_found, load_kubeconfig
from pyk8s.cloudprovider import get_provider, setup
from pyk8s.cloudprovider.fake import FakeCloud
from pyk8s.cloudprovider.provider import Interface
from pyk8s.controllers.runtime import Manager
from tests.addon_identity import addon_kubeconfig, can_i
from tests.controllers.conftest import eventually
from tests.integration.conftest import Server, free_port


def _res(group: str, plural: str) -> Resource:
    res = REGISTRY.get(group, "v1", plural)
    assert res is not None
    return res


NODES, SERVICES, EVENTS = _res("", "nodes"), _res("", "services"), _res("", "events")
SLICES = _res("discovery.k8s.io", "endpointslices")
FINALIZER = "service.kubernetes.io/load-balancer-cleanup"


@pytest.fixture(scope="module")
def ccm_kubeconfig(cm_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cloud controller manager's own identity, as ``pyk8s server`` gives it."""
    path = tmp_path_factory.mktemp("ccm") / "ccm.kubeconfig"
    return addon_kubeconfig(cm_server, "cloud-controller-manager", path)


@pytest.fixture
async def run_ccm(
    cm_server: Server, ccm_kubeconfig: Path
) -> AsyncIterator[Callable[[Interface], Awaitable[None]]]:
    running: list[tuple[asyncio.Event, asyncio.Task[None], Client]] = []

    async def start(provider: Interface) -> None:
        c = Client(load_kubeconfig(ccm_kubeconfig))
        await c.__aenter__()
        manager = Manager(c, component="cloud-controller-manager")
        setup(manager, provider, ["*"])
        stop = asyncio.Event()
        running.append((stop, asyncio.create_task(manager.run(stop)), c))
        await eventually(lambda: _true(manager.healthy), within=30)

    yield start
    for stop, task, c in running:
        stop.set()
        await asyncio.wait_for(task, 30)
        await c.__aexit__(None, None, None)


async def _true(value: bool) -> bool:
    return value


async def make_node(
    client: Client,
    ip: str,
    *,
    ready: bool = True,
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
    pod_cidr: str = "",
) -> str:
    name = f"n-{uuid.uuid4().hex[:6]}"
    spec: dict[str, Any] = {"taints": taints or []}
    if pod_cidr:
        spec |= {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]}
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec,
    }
    await client.create(NODES, node)
    status = {
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    await client.patch(NODES, name, {"status": status}, patch_type="merge", subresource="status")
    return name


async def cleanup_nodes(client: Client, names: list[str]) -> None:
    for name in names:
        try:
            await client.delete(NODES, name)
        except ClientError as err:
            if not is_not_found(err):
                raise


def lb_service(name: str, port: int = 80, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [{"port": port, "targetPort": 8080}],
            **spec,
        },
    }


async def ingress(client: Client, ns: str, name: str) -> list[str]:
    svc = await client.get(SERVICES, name, ns)
    return [i["ip"] for i in (svc.get("status") or {}).get("loadBalancer", {}).get("ingress", [])]


async def reasons(client: Client, ns: str, name: str) -> list[str]:
    events = await client.list(EVENTS, ns, field_selector=f"involvedObject.name={name}")
    return [e["reason"] for e in events["items"]]


async def _with(got: Awaitable[list[str]], reason: str) -> list[str]:
    """``got`` if it holds ``reason``, else nothing (for :func:`eventually`)."""
    listed = await got
    return listed if reason in listed else []


async def test_node_ports_load_balancer_lifecycle(
    client: Client, namespace: str, run_ccm: Callable[[Interface], Awaitable[None]]
) -> None:
    nodes = [await make_node(client, "127.10.200.1"), await make_node(client, "127.10.200.2")]
    nodes.append(await make_node(client, "127.10.200.3", ready=False))
    try:
        await run_ccm(get_provider("local"))
        await client.create(SERVICES, lb_service("web"), namespace)

        async def web_ready() -> list[str]:
            ips = await ingress(client, namespace, "web")
            return ips if len(ips) == 2 else []

        assert await eventually(web_ready) == ["127.10.200.1", "127.10.200.2"]
        web = await client.get(SERVICES, "web", namespace)
        assert web["metadata"]["finalizers"] == [FINALIZER]
        assert web["status"]["loadBalancer"]["ingress"][0]["ipMode"] == "VIP"
        assert web["spec"]["ports"][0]["nodePort"]

        # the recorder writes the Events apart from the status, Ensured after it: wait for two
        async def ensured() -> list[str]:
            got = await reasons(client, namespace, "web")
            return got if len(got) >= 2 else []

        seen = await eventually(ensured)
        assert seen[:2] == ["EnsuringLoadBalancer", "EnsuredLoadBalancer"]

        # the same port: every node is taken, so the second one waits, with events
        await client.create(SERVICES, lb_service("second"), namespace)

        async def second_failed() -> list[str]:
            got = await reasons(client, namespace, "second")
            return got if {"PortInUse", "SyncLoadBalancerFailed"} <= set(got) else []

        got = await eventually(second_failed)
        assert got.count("PortInUse") == 2
        assert await ingress(client, namespace, "second") == []

        # deleting the first frees the port: the finalizer goes, the second takes over
        await client.delete(SERVICES, "web", namespace)

        async def web_gone() -> bool:
            try:
                await client.get(SERVICES, "web", namespace)
            except ClientError as err:
                return is_not_found(err)
            return False

        await eventually(web_gone)

        async def deleted_events() -> bool:
            wanted = {"DeletingLoadBalancer", "DeletedLoadBalancer"}
            return wanted <= set(await reasons(client, namespace, "web"))

        await eventually(deleted_events)
        assert await eventually(lambda: ingress(client, namespace, "second")) == [
            "127.10.200.1",
            "127.10.200.2",
        ]

        # a type change gives the load balancer up: status cleared, finalizer removed
        patch = {"spec": {"type": "ClusterIP", "ports": [{"port": 80, "targetPort": 8080}]}}
        await client.patch(SERVICES, "second", patch, namespace, patch_type="merge")

        async def released() -> dict[str, Any] | None:
            svc = await client.get(SERVICES, "second", namespace)
            done = not svc["metadata"].get("finalizers") and not svc["status"]["loadBalancer"]
            return svc if done else None

        await eventually(released)
    finally:
        await cleanup_nodes(client, nodes)


async def test_label_local_policy_and_classes(
    client: Client, namespace: str, run_ccm: Callable[[Interface], Awaitable[None]]
) -> None:
    enabled = {"svccontroller.pyk8s.io/enablelb": "true"}
    a = await make_node(client, "127.10.201.1", labels=enabled)
    b = await make_node(client, "127.10.201.2")
    c = await make_node(client, "127.10.201.3", labels=enabled)
    try:
        await run_ccm(get_provider("local"))
        # another controller's class: left alone (no finalizer, no status)
        await client.create(
            SERVICES, lb_service("theirs", 8000, loadBalancerClass="example.com/other"), namespace
        )
        await client.create(SERVICES, lb_service("labelled", 8001), namespace)
        assert await eventually(lambda: ingress(client, namespace, "labelled")) == [
            "127.10.201.1",
            "127.10.201.3",
        ]
        local = lb_service(
            "local", 8002, externalTrafficPolicy="Local", allocateLoadBalancerNodePorts=False
        )
        created = await client.create(SERVICES, local, namespace)
        assert created["spec"]["healthCheckNodePort"] > 0
        assert "nodePort" not in created["spec"]["ports"][0]
        # a Local-policy load balancer answers only where a ready endpoint runs
        endpoint_slice = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "local-1", "labels": {"kubernetes.io/service-name": "local"}},
            "addressType": "IPv4",
            "ports": [{"port": 8080, "protocol": "TCP", "name": ""}],
            "endpoints": [
                {"addresses": ["10.42.3.4"], "nodeName": c, "conditions": {"ready": True}},
                {"addresses": ["10.42.1.4"], "nodeName": b, "conditions": {"ready": True}},
                {"addresses": ["10.42.0.4"], "nodeName": a, "conditions": {"ready": False}},
            ],
        }
        await client.create(SLICES, endpoint_slice, namespace)
        assert await eventually(lambda: ingress(client, namespace, "local")) == ["127.10.201.3"]
        # a host process holding a port on a node keeps that node out (TCP probe)
        with socket.create_server(("127.10.201.3", 0)) as held:
            port = held.getsockname()[1]
            await client.create(SERVICES, lb_service("probed", port), namespace)
            assert await eventually(lambda: ingress(client, namespace, "probed")) == [
                "127.10.201.1"
            ]
            # the Event is queued by the recorder, not written with the status: wait for it
            assert "PortInUse" in await eventually(
                lambda: _with(reasons(client, namespace, "probed"), "PortInUse")
            )
        # freed: the next pass (any load balancer's change starts one) takes the node
        await client.patch(
            SERVICES, "probed", {"metadata": {"labels": {"x": "y"}}}, namespace, patch_type="merge"
        )

        async def both() -> list[str]:
            ips = await ingress(client, namespace, "probed")
            return ips if len(ips) == 2 else []

        assert await eventually(both) == ["127.10.201.1", "127.10.201.3"]
        theirs = await client.get(SERVICES, "theirs", namespace)
        assert not theirs["metadata"].get("finalizers")
        assert not theirs["status"]["loadBalancer"]
        assert await reasons(client, namespace, "theirs") == []
    finally:
        await cleanup_nodes(client, [a, b, c])


async def test_fake_provider_nodes_routes_and_failures(
    client: Client, namespace: str, run_ccm: Callable[[Interface], Awaitable[None]]
) -> None:
    cloud = FakeCloud()
    uninitialized = {"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true",
                     "effect": "NoSchedule"}  # fmt: skip
    fresh = await make_node(
        client, "127.10.202.1", taints=[uninitialized], pod_cidr="10.42.77.0/24"
    )
    gone = await make_node(client, "127.10.202.2", ready=False)
    stopped = await make_node(client, "127.10.202.3", ready=False)
    cloud.gone.add(gone)
    cloud.shutdown.add(stopped)
    cloud.fail_with = "quota exceeded"
    try:
        await run_ccm(cloud)

        async def initialised() -> dict[str, Any] | None:
            node = await client.get(NODES, fresh)
            return None if node["spec"].get("taints") else node

        node = await eventually(initialised)
        assert node["spec"]["providerID"] == f"fake://{fresh}"
        labels = node["metadata"]["labels"]
        assert labels["topology.kubernetes.io/zone"] == "zone-a"
        assert labels["topology.kubernetes.io/region"] == "region-1"
        assert labels["node.kubernetes.io/instance-type"] == "fake.small"
        assert {"type": "InternalIP", "address": "198.51.100.7"} in node["status"]["addresses"]

        async def deleted() -> bool:
            try:
                await client.get(NODES, gone)
            except ClientError as err:
                return is_not_found(err)
            return False

        await eventually(deleted)

        async def shutdown_tainted() -> bool:
            node = await client.get(NODES, stopped)
            keys = [t["key"] for t in node["spec"].get("taints") or []]
            return "node.cloudprovider.kubernetes.io/shutdown" in keys

        await eventually(shutdown_tainted)

        async def routed() -> bool:
            node = await client.get(NODES, fresh)
            conditions = {c["type"]: c for c in node["status"].get("conditions") or []}
            unavailable = conditions.get("NetworkUnavailable", {})
            return unavailable.get("reason") == "RouteCreated"

        await eventually(routed)
        assert [(r.target_node, r.destination_cidr) for r in cloud.routes_table.values()] == [
            (fresh, "10.42.77.0/24")
        ]

        failing = await client.create(SERVICES, lb_service("failing"), namespace)
        failed = await eventually(lambda: reasons(client, namespace, "failing"))
        assert "SyncLoadBalancerFailed" in failed
        events = await client.list(EVENTS, namespace, field_selector="involvedObject.name=failing")
        failure = "SyncLoadBalancerFailed"
        messages = [e["message"] for e in events["items"] if e["reason"] == failure]
        assert messages == [
            "Error syncing load balancer: failed to ensure load balancer: quota exceeded"
        ]
        cloud.fail_with = ""  # retried with backoff until the cloud recovers
        # the fake's address for this service (other tests' LoadBalancer Services still
        # in the shared API server may have taken the pool's first addresses)
        got = await eventually(lambda: ingress(client, namespace, "failing"))
        assert got == [cloud.balancers[failing["metadata"]["uid"]]]
        assert got[0].startswith("203.0.113.")
    finally:
        await cleanup_nodes(client, [fresh, gone, stopped])


async def test_process_leads_serves_health_and_stops_on_sigterm(
    cm_server: Server,
    ccm_kubeconfig: Path,
    client: Client,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``pyk8s cloud-controller-manager`` as a process: it takes the Lease
    ``kube-system/cloud-controller-manager``, serves /healthz and /metrics, logs JSON,
    and exits 0 on SIGTERM; an unknown provider is refused before anything starts. It runs
    as its own identity, which may not read secrets or create pods."""
    monkeypatch.setattr("pyk8s.server.logs.setup", lambda *_a, **_k: None)  # keep pytest's
    assert main(["cloud-controller-manager", "--cloud-provider", "aws"]) == 1
    assert "unknown cloud provider 'aws'; known: fake, local" in capsys.readouterr().err
    port = free_port()
    proc = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-m", "pyk8s", "cloud-controller-manager",
         "--kubeconfig", str(ccm_kubeconfig), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        leases = _res("coordination.k8s.io", "leases")

        async def leading() -> str:
            try:
                lease = await client.get(leases, "cloud-controller-manager", "kube-system")
            except ClientError:
                return ""
            return str(lease["spec"].get("holderIdentity") or "")

        assert await eventually(leading, within=30)

        def get(path: str) -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
                return str(resp.read().decode())

        assert (await asyncio.to_thread(get, "/healthz")).strip() == "ok"
        metrics = await asyncio.to_thread(get, "/metrics")
        assert "# TYPE controller_runtime_reconcile_total counter" in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.to_thread(proc.communicate, timeout=30)
    assert proc.returncode == 0, out[-2000:]
    first = out.decode().splitlines()[0]
    assert json.loads(first)["logger"].startswith("pyk8s"), first
    assert not await asyncio.to_thread(can_i, ccm_kubeconfig, "get", "secrets", "-n", "default")
    assert not await asyncio.to_thread(can_i, ccm_kubeconfig, "create", "pods")
    assert await asyncio.to_thread(
        can_i, ccm_kubeconfig, "patch", "services", "--subresource=status"
    )
