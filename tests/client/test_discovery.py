"""Discovery: what the server serves, read from the server, aggregated or legacy.

Against an in-process API server whose registry a test can change
(:mod:`tests.controllers.inprocess`), so custom resources (made-up ``example.com``
ones here) come and go as a CustomResourceDefinition makes them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pyk8s.api.registry import REGISTRY, RESOURCES, Resource
from pyk8s.client.discovery import (
    CachedDiscovery,
    GroupDiscoveryFailed,
    parse_aggregated,
    server_preferred_resources,
    supports_verbs,
)
from pyk8s.controllers._resources import deletable_resources, select_deletable
from tests.controllers.inprocess import in_process_server

WIDGETS = Resource(
    "example.com", "v1", "Widget", "widgets", True, ("wd",), ("all",), ("status", "scale")
)
#: the same resource at an older version: one set of objects, discovered once at v1
OLD_WIDGETS = Resource("example.com", "v1beta1", "Widget", "widgets", True, ("wd",))
#: served at the older version only: discovered there
GADGETS = Resource(
    "example.com", "v1beta1", "Gadget", "gadgets", False, verbs=("get", "list", "watch")
)


def _key(r: Resource) -> tuple[str, str, str]:
    return (r.group, r.version, r.plural)


@pytest.mark.parametrize("legacy_only", [False, True], ids=["aggregated", "legacy"])
async def test_every_resource_once_at_its_preferred_version(
    tmp_path: Path, legacy_only: bool
) -> None:
    extra = (WIDGETS, OLD_WIDGETS, GADGETS)
    async with in_process_server(tmp_path, extra, legacy_only=legacy_only) as srv:
        async with srv.client() as client:
            found = await server_preferred_resources(client)
        paths = [p for _m, p in srv.requests]

    by_key = {_key(r): r for r in found}
    assert len(by_key) == len(found), "a resource was listed twice"
    # built-in resources are the registry's own entries (storage details included)
    hpa = by_key[("autoscaling", "v2", "horizontalpodautoscalers")]
    assert hpa is REGISTRY.get("autoscaling", "v2", "horizontalpodautoscalers")
    assert ("autoscaling", "v1", "horizontalpodautoscalers") not in by_key
    events = by_key[("events.k8s.io", "v1", "events")]
    assert events.key_prefix() == "/registry/core/events/"
    assert ("", "v1", "pods") in by_key and ("apps", "v1", "deployments") in by_key
    # a custom resource: what discovery says about it
    widgets = by_key[("example.com", "v1", "widgets")]
    assert widgets == WIDGETS
    assert widgets.short_names == ("wd",) and widgets.categories == ("all",)
    assert widgets.subresources == ("status", "scale")
    assert widgets.key_prefix("ns") == "/registry/example.com/widgets/ns/"
    assert ("example.com", "v1beta1", "widgets") not in by_key
    assert by_key[("example.com", "v1beta1", "gadgets")] == GADGETS
    assert not GADGETS.namespaced and by_key[_key(GADGETS)].verbs == ("get", "list", "watch")
    # every built-in resource at its preferred version is there
    preferred = [REGISTRY.for_group_resource(r.group, r.plural) for r in RESOURCES]
    builtin = {_key(r) for r in preferred if r is not None}
    assert builtin <= set(by_key)
    if legacy_only:
        assert "/api/v1" in paths and "/apis/example.com/v1beta1" in paths
    else:  # aggregated discovery: two requests for everything
        assert sorted(paths) == ["/api", "/apis"]


async def test_namespaced_filter_and_verbs(tmp_path: Path) -> None:
    async with in_process_server(tmp_path, (WIDGETS, GADGETS)) as srv, srv.client() as client:
        namespaced = await server_preferred_resources(client, namespaced=True)
        cluster = await server_preferred_resources(client, namespaced=False)
        deletable = await deletable_resources(client)
    assert all(r.namespaced for r in namespaced) and not any(r.namespaced for r in cluster)
    assert WIDGETS in namespaced and GADGETS in cluster
    assert supports_verbs([WIDGETS, GADGETS], ["list", "delete"]) == [WIDGETS]
    # deletable: list+watch+delete, one per storage (core Events, not events.k8s.io's)
    keys = {_key(r) for r in deletable}
    assert _key(WIDGETS) in keys and _key(GADGETS) not in keys
    assert ("", "v1", "events") in keys and ("events.k8s.io", "v1", "events") not in keys
    assert ("authorization.k8s.io", "v1", "subjectaccessreviews") not in keys
    assert {_key(r) for r in select_deletable(REGISTRY)} | {_key(WIDGETS)} == keys


async def test_a_failing_group_version_leaves_a_partial_result(tmp_path: Path) -> None:
    async with in_process_server(tmp_path, (WIDGETS,), legacy_only=True) as srv:
        srv.failing.add("/apis/example.com/v1")
        async with srv.client() as client:
            with pytest.raises(GroupDiscoveryFailed) as info:
                await server_preferred_resources(client)
            with pytest.raises(GroupDiscoveryFailed) as deletable:
                await deletable_resources(client, namespaced=True)
    err = info.value
    assert err.groups == {"example.com/v1": "the server is currently unable to handle the request"}
    assert str(err) == (
        "unable to retrieve the complete list of server APIs: example.com/v1: "
        "the server is currently unable to handle the request"
    )
    keys = {_key(r) for r in err.resources}
    assert ("", "v1", "pods") in keys and _key(WIDGETS) not in keys
    assert all(r.namespaced and "delete" in r.verbs for r in deletable.value.resources)


def test_a_stale_aggregated_group_version_is_a_failure() -> None:
    doc = {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "items": [
            {
                "metadata": {"name": "example.com"},
                "versions": [
                    {"version": "v2", "freshness": "Stale"},
                    {
                        "version": "v1",
                        "freshness": "Current",
                        "resources": [
                            {
                                "resource": "widgets",
                                "responseKind": {
                                    "group": "example.com",
                                    "version": "v1",
                                    "kind": "Widget",
                                },
                                "scope": "Cluster",
                                "verbs": ["get", "list"],
                            }
                        ],
                    },
                ],
            }
        ],
    }
    groups, failed = parse_aggregated(doc)
    assert failed == {"example.com/v2": "stale GroupVersion discovery: example.com/v2"}
    [group] = groups
    assert group.preferred == "v2" and group.versions == ["v2", "v1"]
    assert group.resources["v1"] == [
        Resource("example.com", "v1", "Widget", "widgets", False, verbs=("get", "list"))
    ]


async def test_cached_discovery_finds_a_resource_added_later(tmp_path: Path) -> None:
    async with in_process_server(tmp_path) as srv, srv.client() as client:
        cache = CachedDiscovery(client, max_age=3600, min_interval=0)
        assert await cache.for_group_resource("apps", "deployments") is REGISTRY.get(
            "apps", "v1", "deployments"
        )
        assert await cache.for_group_resource("example.com", "widgets") is None

        srv.serve(WIDGETS)
        # a miss asks again at once (min_interval=0), long before max_age
        assert await cache.for_group_resource("example.com", "widgets") == WIDGETS
        assert WIDGETS in await cache.resources()

        srv.withdraw(WIDGETS)
        assert WIDGETS in await cache.resources()  # cached: not asked again
        cache.invalidate()
        assert WIDGETS not in await cache.resources()


async def test_cached_discovery_asks_again_at_most_every_min_interval(tmp_path: Path) -> None:
    async with in_process_server(tmp_path) as srv, srv.client() as client:
        cache = CachedDiscovery(client, max_age=3600, min_interval=3600)
        await cache.resources()
        before = len(srv.requests)
        for _ in range(3):
            assert await cache.for_group_resource("example.com", "nothings") is None
        assert len(srv.requests) == before


async def test_cached_discovery_raises_when_the_group_failed(tmp_path: Path) -> None:
    async with in_process_server(tmp_path, (WIDGETS,), legacy_only=True) as srv:
        srv.failing.add("/apis/example.com/v1")
        async with srv.client() as client:
            cache = CachedDiscovery(client, min_interval=0)
            # a resource of a group that answered is found; the failed group's is unknown
            assert await cache.for_group_resource("", "pods") is not None
            assert cache.failed == {
                "example.com/v1": "the server is currently unable to handle the request"
            }
            with pytest.raises(GroupDiscoveryFailed):
                await cache.for_group_resource("example.com", "widgets")
            srv.failing.clear()
            assert await cache.for_group_resource("example.com", "widgets") == WIDGETS
