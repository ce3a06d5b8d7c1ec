"""The REST client against a real pyk8s API server: verbs, errors, watch, subresources."""

from __future__ import annotations

import asyncio
import time

import pytest

from pyk8s.client import (
    ApiError,
    Client,
    Config,
    TransportError,
    is_already_exists,
    is_conflict,
    is_gone,
    is_not_found,
    load_kubeconfig,
)
from tests.client.conftest import CONFIGMAPS, DEPLOYMENTS, NAMESPACES, PODS, configmap
from tests.integration.conftest import Server


async def test_crud(client: Client, ns: str) -> None:
    created = await client.create(CONFIGMAPS, configmap("a", {"k": "1"}, app="x"), ns)
    assert created["metadata"]["namespace"] == ns and created["metadata"]["uid"]
    got = await client.get(CONFIGMAPS, "a", ns)
    assert got["data"] == {"k": "1"}

    with pytest.raises(ApiError) as err:
        await client.create(CONFIGMAPS, configmap("a"), ns)
    assert is_already_exists(err.value) and err.value.status == 409

    got["data"]["k"] = "2"
    updated = await client.update(CONFIGMAPS, got)
    assert updated["data"]["k"] == "2"
    with pytest.raises(ApiError) as err:
        await client.update(CONFIGMAPS, got)  # stale resourceVersion
    assert is_conflict(err.value) and err.value.is_conflict()

    merged = await client.patch(CONFIGMAPS, "a", {"data": {"m": "1"}}, ns, patch_type="merge")
    assert merged["data"] == {"k": "2", "m": "1"}
    strategic = await client.patch(CONFIGMAPS, "a", {"metadata": {"labels": {"s": "1"}}}, ns)
    assert strategic["metadata"]["labels"] == {"app": "x", "s": "1"}
    jp = await client.patch(
        CONFIGMAPS, "a", [{"op": "remove", "path": "/data/m"}], ns, patch_type="json"
    )
    assert jp["data"] == {"k": "2"}

    with pytest.raises(ApiError) as err:
        await client.delete(CONFIGMAPS, "a", ns, preconditions={"uid": "not-the-uid"})
    assert is_conflict(err.value)
    await client.delete(CONFIGMAPS, "a", ns, preconditions={"uid": created["metadata"]["uid"]})
    with pytest.raises(ApiError) as err:
        await client.get(CONFIGMAPS, "a", ns)
    assert is_not_found(err.value) and err.value.is_not_found()
    assert err.value.message == 'configmaps "a" not found'
    assert err.value.body["kind"] == "Status"

    with pytest.raises(ValueError, match="namespace"):
        await client.get(CONFIGMAPS, "a")


async def test_resource_by_api_version_and_kind(client: Client, ns: str) -> None:
    await client.create(("v1", "ConfigMap"), configmap("t"), ns)
    assert (await client.get(("v1", "ConfigMap"), "t", ns))["metadata"]["name"] == "t"
    # not in the registry: looked up in discovery (and a 404 when nobody serves it)
    with pytest.raises(ApiError) as err:
        await client.resource("example.com/v1", "Widget")
    assert is_not_found(err.value)
    # a cluster-scoped object through the discovery-free path
    assert (await client.get(NAMESPACES, ns))["metadata"]["name"] == ns


async def test_list_selectors_pagination_and_delete_collection(client: Client, ns: str) -> None:
    for i in range(7):
        await client.create(
            CONFIGMAPS, configmap(f"c{i}", tier="even" if i % 2 == 0 else "odd"), ns
        )
    everything = await client.list(CONFIGMAPS, ns)
    names = {o["metadata"]["name"] for o in everything["items"]}
    assert {f"c{i}" for i in range(7)} <= names
    evens = await client.list(CONFIGMAPS, ns, label_selector={"tier": "even"})
    assert sorted(o["metadata"]["name"] for o in evens["items"]) == ["c0", "c2", "c4", "c6"]
    odd = await client.list(
        CONFIGMAPS, ns, label_selector="tier in (odd)", field_selector="metadata.name=c3"
    )
    assert [o["metadata"]["name"] for o in odd["items"]] == ["c3"]

    page = await client.list(CONFIGMAPS, ns, label_selector="tier", limit=3)
    assert len(page["items"]) == 3 and page["metadata"].get("continue")
    rest = await client.list(
        CONFIGMAPS, ns, label_selector="tier", limit=3, continue_=page["metadata"]["continue"]
    )
    assert len(rest["items"]) == 3
    whole = await client.list_all(CONFIGMAPS, ns, label_selector="tier", page_size=2)
    assert len(whole["items"]) == 7 and "continue" not in whole["metadata"]
    assert whole["metadata"]["resourceVersion"]

    await client.delete_collection(CONFIGMAPS, ns, label_selector="tier=odd")
    left = await client.list(CONFIGMAPS, ns, label_selector="tier")
    assert sorted(o["metadata"]["name"] for o in left["items"]) == ["c0", "c2", "c4", "c6"]


async def test_watch(client: Client, ns: str) -> None:
    start = await client.list(CONFIGMAPS, ns)
    rv = start["metadata"]["resourceVersion"]
    events: list[tuple[str, str]] = []

    async def consume() -> None:
        async with client.watch(CONFIGMAPS, ns, resource_version=rv) as stream:
            async for etype, obj in stream:
                events.append((etype, obj["metadata"]["name"]))
                if etype == "DELETED":
                    return

    task = asyncio.create_task(consume())
    await client.create(CONFIGMAPS, configmap("w"), ns)
    await client.patch(CONFIGMAPS, "w", {"data": {"x": "1"}}, ns, patch_type="merge")
    await client.delete(CONFIGMAPS, "w", ns)
    await asyncio.wait_for(task, 10)
    assert events == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]

    # a name-scoped watch with a server-side timeout ends by itself
    seen = []
    t0 = time.monotonic()
    async for etype, _obj in client.watch(CONFIGMAPS, ns, name="nobody", timeout_seconds=1):
        seen.append(etype)
    assert seen == [] and time.monotonic() - t0 < 5


async def test_pod_binding_and_scale(client: Client, ns: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    created = await client.create(PODS, pod, ns)
    await client.bind(ns, "p", "node-1", uid=created["metadata"]["uid"])
    assert (await client.get(PODS, "p", ns))["spec"]["nodeName"] == "node-1"
    with pytest.raises(ApiError) as err:
        await client.bind(ns, "p", "node-2")
    assert err.value.status == 409

    labels = {"app": "d"}
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod["spec"]},
        },
    }
    await client.create(DEPLOYMENTS, deploy, ns)
    scale = await client.get_scale(DEPLOYMENTS, "d", ns)
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 1
    scaled = await client.update_scale(DEPLOYMENTS, "d", 3, ns)
    assert scaled["spec"]["replicas"] == 3
    assert (await client.get(DEPLOYMENTS, "d", ns))["spec"]["replicas"] == 3
    await client.patch(DEPLOYMENTS, "d", {"spec": {"replicas": 2}}, ns, subresource="scale")
    assert (await client.get(DEPLOYMENTS, "d", ns))["spec"]["replicas"] == 2

    current = await client.get(DEPLOYMENTS, "d", ns)
    current["status"] = {"observedGeneration": 1, "replicas": 0}
    current["spec"]["replicas"] = 9  # ignored by the status subresource
    after = await client.update_status(DEPLOYMENTS, current)
    assert after["status"]["observedGeneration"] == 1 and after["spec"]["replicas"] == 2

    deleted = await client.delete(PODS, "p", ns, grace_period_seconds=0)
    assert deleted["metadata"]["name"] == "p" or deleted.get("kind") == "Status"


async def test_raw_request(client: Client) -> None:
    assert await client.request("GET", "/readyz", raw=True) == b"ok"
    version = await client.request("GET", "/version")
    assert "gitVersion" in version
    with pytest.raises(ApiError) as err:
        await client.request("GET", "/api/v1/nope")
    assert err.value.status == 404


async def test_client_side_rate_limit(server: Server) -> None:
    async with Client(load_kubeconfig(server.kubeconfig), qps=20, burst=1) as c:
        t0 = time.monotonic()
        for _ in range(11):
            await c.request("GET", "/readyz", raw=True)
        assert time.monotonic() - t0 >= 0.45  # 10 waits of 1/20 s


async def test_unreachable_server_raises_transport_error(server: Server) -> None:
    cfg = load_kubeconfig(server.kubeconfig)
    from tests.integration.conftest import free_port

    cfg.server = f"https://127.0.0.1:{free_port()}"
    async with Client(cfg, max_retries=2) as c:
        t0 = time.monotonic()
        with pytest.raises(TransportError):
            await c.get(NAMESPACES, "default")
        assert time.monotonic() - t0 < 5


async def test_watch_too_old_raises_gone(tmp_path_factory: pytest.TempPathFactory) -> None:
    """After a restart the server's history starts at its current revision: older is 410."""
    from tests.client.conftest import start_server

    srv = start_server(tmp_path_factory.mktemp("gone"))
    try:
        async with Client(load_kubeconfig(srv.kubeconfig)) as c:
            await c.create(CONFIGMAPS, configmap("x"), "default")
            await c.create(CONFIGMAPS, configmap("y"), "default")
        srv.stop()
        srv.start()
        async with Client(load_kubeconfig(srv.kubeconfig)) as c:
            with pytest.raises(ApiError) as err:
                async for _ in c.watch(CONFIGMAPS, "default", resource_version="2"):
                    pass
            assert is_gone(err.value) and err.value.status == 410
    finally:
        srv.stop()


async def test_bearer_token_auth(client: Client, ns: str, server: Server) -> None:
    """A service-account token (TokenRequest) authenticates a Client configured by token."""
    await client.create(("v1", "ServiceAccount"), {"metadata": {"name": "robot"}}, ns)
    req = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    issued = await client.create_subresource(("v1", "ServiceAccount"), "robot", "token", req, ns)
    cfg = load_kubeconfig(server.kubeconfig)
    token_cfg = Config(server=cfg.server, ca_data=cfg.ca_data, token=issued["status"]["token"])
    async with Client(token_cfg) as robot:
        review = await robot.create(
            ("authentication.k8s.io/v1", "SelfSubjectReview"),
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
    assert review["status"]["userInfo"]["username"] == f"system:serviceaccount:{ns}:robot"
