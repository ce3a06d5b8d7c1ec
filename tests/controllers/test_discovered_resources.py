"""The controllers that act on every resource find them through discovery, so a resource
that the server starts serving while they run (a custom resource) is garbage-collected by
its owner references, deleted with its namespace and counted by ``count/`` quotas.

The server runs in process (:mod:`tests.controllers.inprocess`) so a test can add a
made-up ``example.com`` resource to its registry while the controllers run, as an
established CustomResourceDefinition does.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import ApiError, Client, is_not_found
from pyk8s.controllers import garbagecollector
from pyk8s.controllers.runtime import Manager
from pyk8s.server.controller_manager import setup_controllers
from tests.controllers.conftest import eventually
from tests.controllers.inprocess import InProcessServer, in_process_server

WIDGETS = Resource("example.com", "v1", "Widget", "widgets", True, ("wd",), ("all",), ("status",))


def _builtin(group: str, plural: str) -> Resource:
    r = REGISTRY.for_group_resource(group, plural)
    assert r is not None
    return r


CONFIGMAPS = _builtin("", "configmaps")
NAMESPACES = _builtin("", "namespaces")
QUOTAS = _builtin("", "resourcequotas")


@contextlib.asynccontextmanager
async def _controllers(
    srv: InProcessServer, *names: str, setup: Callable[[Manager], Any] | None = None
) -> AsyncIterator[Manager]:
    """A Manager running ``names`` (and whatever ``setup`` adds) against ``srv``."""
    async with srv.client() as c:
        manager = Manager(c)
        assert setup_controllers(manager, list(names)) == list(names)
        if setup is not None:
            setup(manager)
        stop = asyncio.Event()
        task = asyncio.create_task(manager.run(stop))
        try:
            for _ in range(300):
                if manager.healthy or task.done():
                    break
                await asyncio.sleep(0.1)
            assert manager.healthy, "controllers did not start"
            yield manager
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


@pytest.fixture
async def srv(tmp_path: Path) -> AsyncIterator[InProcessServer]:
    async with in_process_server(tmp_path) as s:
        yield s


@pytest.fixture
async def client(srv: InProcessServer) -> AsyncIterator[Client]:
    async with srv.client() as c:
        yield c


@pytest.fixture
async def namespace(client: Client) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    return name


def _widget(name: str, owners: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if owners:
        meta["ownerReferences"] = owners
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": meta, "spec": {}}


def _ref(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
    }


async def _gone(client: Client, r: Resource, name: str, namespace: str | None) -> bool:
    try:
        await client.get(r, name, namespace)
    except ApiError as err:
        return is_not_found(err)
    return False


def _watches(gc: garbagecollector.GarbageCollector, r: Resource) -> bool:
    """Whether the collector has an informer on ``r`` (so ``r`` is in its graph)."""
    key = (r.group, r.version, r.plural)
    return any((w.group, w.version, w.plural) == key for w in gc.informers)


async def _watching(gc: garbagecollector.GarbageCollector, r: Resource) -> bool:
    return _watches(gc, r)


async def _not_watching(gc: garbagecollector.GarbageCollector, r: Resource) -> bool:
    return not _watches(gc, r)


# ---------------------------------------------------------------------- garbage collector


async def test_gc_collects_a_resource_served_after_it_started(
    srv: InProcessServer, client: Client, namespace: str
) -> None:
    gcs: list[garbagecollector.GarbageCollector] = []
    async with _controllers(
        srv, setup=lambda m: gcs.append(garbagecollector.setup(m, resync_period=0.2))
    ):
        [gc] = gcs
        assert not _watches(gc, WIDGETS)
        srv.serve(WIDGETS)
        await eventually(lambda: _watching(gc, WIDGETS), within=20)

        # a widget owned by a ConfigMap goes with its owner
        owner = await client.create(CONFIGMAPS, {"metadata": {"name": "owner"}}, namespace)
        owner.setdefault("apiVersion", "v1")
        owner.setdefault("kind", "ConfigMap")
        await client.create(WIDGETS, _widget("owned", [_ref(owner)]), namespace)
        await client.delete(CONFIGMAPS, "owner", namespace)
        await eventually(lambda: _gone(client, WIDGETS, "owned", namespace), within=30)

        # a ConfigMap owned by a widget goes with the widget (its deletion is seen)
        widget = await client.create(WIDGETS, _widget("parent"), namespace)
        await client.create(
            CONFIGMAPS,
            {"metadata": {"name": "child", "ownerReferences": [_ref(widget)]}},
            namespace,
        )
        await client.delete(WIDGETS, "parent", namespace)
        await eventually(lambda: _gone(client, CONFIGMAPS, "child", namespace), within=30)


async def test_gc_collects_a_dependent_of_an_owner_it_never_watched(
    srv: InProcessServer, client: Client, namespace: str
) -> None:
    """The owner's resource is served after the collector's last look at discovery, and
    the owner is deleted before any informer of the collector could list it: no event
    ever says it went. The dependent is looked at again until the owner is found gone,
    as upstream's collector retries an owner its informers have not observed."""
    gcs: list[garbagecollector.GarbageCollector] = []
    async with _controllers(
        srv, setup=lambda m: gcs.append(garbagecollector.setup(m, resync_period=3600))
    ) as manager:
        [gc] = gcs
        srv.serve(WIDGETS)
        widget = await client.create(WIDGETS, _widget("parent"), namespace)
        await client.create(
            CONFIGMAPS,
            {"metadata": {"name": "child", "ownerReferences": [_ref(widget)]}},
            namespace,
        )

        async def child_looked_at() -> bool:  # the only object with owners here
            samples = manager.metrics.reconciles.collect()[0].samples
            return any(
                x.labels["controller"] == "garbagecollector" and x.value > 0 for x in samples
            )

        await eventually(child_looked_at, within=30)  # while its owner still exists
        await client.delete(WIDGETS, "parent", namespace)
        await eventually(lambda: _gone(client, CONFIGMAPS, "child", namespace), within=30)
        assert not _watches(gc, WIDGETS)  # the collector never listed a widget


async def test_gc_collects_a_dependent_whose_owner_kind_was_not_served_yet(
    srv: InProcessServer, client: Client, namespace: str
) -> None:
    """The dependent names an owner of a kind nobody serves when the collector first looks
    at it (a CRD's resource joins discovery a moment after the CRD is created). It is kept
    then, and looked at again with backoff: once the kind is served and the owner is found
    missing, it is collected, as upstream retries an owner it cannot resolve."""
    async with _controllers(
        srv, setup=lambda m: garbagecollector.setup(m, resync_period=3600)
    ) as manager:
        ghost = _widget("ghost")
        ghost["metadata"]["uid"] = str(uuid.uuid4())  # no widget ever had it
        await client.create(
            CONFIGMAPS,
            {"metadata": {"name": "child", "ownerReferences": [_ref(ghost)]}},
            namespace,
        )

        async def child_looked_at() -> bool:  # the only object with owners here
            samples = manager.metrics.reconciles.collect()[0].samples
            return any(
                x.labels["controller"] == "garbagecollector" and x.value > 0 for x in samples
            )

        await eventually(child_looked_at, within=30)  # while Widget is unknown
        assert not await _gone(client, CONFIGMAPS, "child", namespace)
        srv.serve(WIDGETS)
        await eventually(lambda: _gone(client, CONFIGMAPS, "child", namespace), within=30)


async def test_gc_foreground_deletion_waits_for_custom_dependents(
    srv: InProcessServer, client: Client, namespace: str
) -> None:
    srv.serve(WIDGETS)
    async with _controllers(srv, "garbagecollector"):
        owner = await client.create(CONFIGMAPS, {"metadata": {"name": "owner"}}, namespace)
        ref = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": "owner",
            "uid": owner["metadata"]["uid"],
            "blockOwnerDeletion": True,
        }
        dependent = _widget("held", [ref])
        dependent["metadata"]["finalizers"] = ["example.com/hold"]
        await client.create(WIDGETS, dependent, namespace)

        await client.delete(CONFIGMAPS, "owner", namespace, propagation_policy="Foreground")

        async def widget_deleting() -> bool:
            w = await client.get(WIDGETS, "held", namespace)
            return bool(w["metadata"].get("deletionTimestamp"))

        await eventually(widget_deleting, within=30)
        # the owner waits for its blocking custom dependent
        held = await client.get(CONFIGMAPS, "owner", namespace)
        assert "foregroundDeletion" in held["metadata"]["finalizers"]

        await client.patch(
            WIDGETS, "held", {"metadata": {"finalizers": None}}, namespace, patch_type="merge"
        )
        await eventually(lambda: _gone(client, CONFIGMAPS, "owner", namespace), within=30)


async def test_gc_stops_watching_a_resource_no_longer_served(srv: InProcessServer) -> None:
    srv.serve(WIDGETS)
    gcs: list[garbagecollector.GarbageCollector] = []
    async with _controllers(
        srv, setup=lambda m: gcs.append(garbagecollector.setup(m, resync_period=0.2))
    ):
        [gc] = gcs
        assert _watches(gc, WIDGETS)
        srv.withdraw(WIDGETS)
        await eventually(lambda: _not_watching(gc, WIDGETS), within=20)
        assert _watches(gc, CONFIGMAPS)


# ---------------------------------------------------------------------- namespace


async def test_namespace_deletion_deletes_custom_resources(
    srv: InProcessServer, client: Client, namespace: str
) -> None:
    async with _controllers(srv, "namespace"):
        srv.serve(WIDGETS)  # served after the controller started
        for i in range(3):
            await client.create(WIDGETS, _widget(f"w-{i}"), namespace)
        await client.create(CONFIGMAPS, {"metadata": {"name": "cm"}}, namespace)

        await client.delete(NAMESPACES, namespace)

        await eventually(lambda: _gone(client, NAMESPACES, namespace, None), within=60)
        assert (await client.list(WIDGETS, namespace))["items"] == []


def _condition(ns: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for c in (ns.get("status") or {}).get("conditions") or ():
        if c.get("type") == ctype:
            return dict(c)
    return None


async def test_namespace_discovery_failure_is_reported_and_blocks_finalizing(
    tmp_path: Path,
) -> None:
    async with (
        in_process_server(tmp_path, (WIDGETS,), legacy_only=True) as srv,
        srv.client() as client,
    ):
        ns = f"t-{uuid.uuid4().hex[:8]}"
        await client.create(NAMESPACES, {"metadata": {"name": ns}})
        await client.create(WIDGETS, _widget("w"), ns)
        await client.create(CONFIGMAPS, {"metadata": {"name": "cm"}}, ns)
        srv.failing.add("/apis/example.com/v1")
        async with _controllers(srv, "namespace"):
            await client.delete(NAMESPACES, ns)

            async def discovery_failed() -> dict[str, Any] | None:
                got = await client.get(NAMESPACES, ns)
                cond = _condition(got, "NamespaceDeletionDiscoveryFailure")
                return cond if cond and cond["status"] == "True" else None

            cond = await eventually(discovery_failed, within=30)
            assert cond["reason"] == "DiscoveryFailed"
            assert cond["message"] == (
                "Discovery failed for some groups, 1 failing: unable to retrieve the complete "
                "list of server APIs: example.com/v1: the server is currently unable to "
                "handle the request"
            )
            # what could be discovered was deleted; the namespace waits for the rest
            await eventually(lambda: _gone(client, CONFIGMAPS, "cm", ns), within=30)
            got = await client.get(NAMESPACES, ns)
            assert got["status"]["phase"] == "Terminating"
            assert (await client.list(WIDGETS, ns))["items"] != []

            srv.failing.clear()
            await eventually(lambda: _gone(client, NAMESPACES, ns, None), within=60)
            assert (await client.list(WIDGETS, ns))["items"] == []


# ---------------------------------------------------------------------- resource quota


async def test_quota_counts_a_custom_resource_served_later(
    srv: InProcessServer, client: Client, namespace: str
) -> None:
    name = "count/widgets.example.com"
    async with _controllers(srv, "resourcequota"):
        srv.serve(WIDGETS)
        await client.create(
            QUOTAS, {"metadata": {"name": "q"}, "spec": {"hard": {name: "2"}}}, namespace
        )

        async def used(n: str) -> bool:
            quota = await client.get(QUOTAS, "q", namespace)
            return bool((quota.get("status") or {}).get("used") == {name: n})

        await eventually(lambda: used("0"), within=30)
        for i in range(2):
            await client.create(WIDGETS, _widget(f"w-{i}"), namespace)
        await eventually(lambda: used("2"), within=30)

        with pytest.raises(ApiError) as refused:
            await client.create(WIDGETS, _widget("w-2"), namespace)
        assert refused.value.status == 403
        assert refused.value.message == (
            'widgets.example.com "w-2" is forbidden: exceeded quota: q, requested: '
            f"{name}=1, used: {name}=2, limited: {name}=2"
        )

        # a deletion gives the quota back (replenishment), without a full resync
        await client.delete(WIDGETS, "w-0", namespace)
        await eventually(lambda: used("1"), within=30)
        await client.create(WIDGETS, _widget("w-2"), namespace)
        await eventually(lambda: used("2"), within=30)
