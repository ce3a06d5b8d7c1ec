"""The namespace controller: `kubectl delete namespace` removes everything in it, then it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import ApiError, Client, is_not_found
from pyk8s.controllers.runtime import Manager
from tests.controllers.conftest import eventually


def _res(group: str, plural: str) -> Resource:
    r = REGISTRY.get(group, "v1", plural)
    assert r is not None
    return r


NAMESPACES = _res("", "namespaces")
CONFIGMAPS = _res("", "configmaps")
PODS = _res("", "pods")
DEPLOYMENTS = _res("apps", "deployments")

RunControllers = Callable[..., Awaitable[Manager]]


async def _fill(client: Client, namespace: str) -> None:
    for i in range(3):
        await client.create(
            CONFIGMAPS, {"metadata": {"name": f"cm-{i}"}, "data": {"k": "v"}}, namespace
        )
    labels = {"app": "web"}
    pod_spec = {"containers": [{"name": "c", "image": "busybox"}]}
    await client.create(
        DEPLOYMENTS,
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod_spec},
            },
        },
        namespace,
    )
    for i in range(2):
        await client.create(PODS, {"metadata": {"name": f"pod-{i}"}, "spec": pod_spec}, namespace)


async def _gone(client: Client, namespace: str) -> bool:
    try:
        await client.get(NAMESPACES, namespace)
    except ApiError as err:
        return is_not_found(err)
    return False


def _condition(ns: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for c in (ns.get("status") or {}).get("conditions") or ():
        if c.get("type") == ctype:
            return dict(c)
    return None


async def test_deleting_a_namespace_deletes_its_content_then_it(
    client: Client, namespace: str, run_controllers: RunControllers
) -> None:
    await run_controllers("namespace", "serviceaccount", "garbagecollector")
    await _fill(client, namespace)
    sas = _res("", "serviceaccounts")

    async def has_default_sa() -> bool:
        items = (await client.list(sas, namespace))["items"]
        return [i["metadata"]["name"] for i in items] == ["default"]

    await eventually(has_default_sa, within=30)

    await client.delete(NAMESPACES, namespace)
    ns = await client.get(NAMESPACES, namespace)
    assert ns["status"]["phase"] == "Terminating"

    await eventually(lambda: _gone(client, namespace), within=60)
    # nothing was recreated in the terminating namespace, nothing is left behind
    for r in (CONFIGMAPS, PODS, DEPLOYMENTS, sas):
        assert (await client.list(r, namespace))["items"] == []


async def test_foreign_finalizer_keeps_the_namespace_terminating_until_removed(
    client: Client, namespace: str, run_controllers: RunControllers
) -> None:
    await run_controllers("namespace")
    await client.create(
        CONFIGMAPS,
        {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}},
        namespace,
    )
    await client.create(CONFIGMAPS, {"metadata": {"name": "free"}}, namespace)

    await client.delete(NAMESPACES, namespace)

    async def finalizers_remaining() -> dict[str, Any] | None:
        ns = await client.get(NAMESPACES, namespace)
        cond = _condition(ns, "NamespaceFinalizersRemaining")
        if cond is None or cond.get("status") != "True":
            return None
        return ns

    ns = await eventually(finalizers_remaining, within=60)
    assert ns["status"]["phase"] == "Terminating"
    cond = _condition(ns, "NamespaceFinalizersRemaining")
    assert cond is not None
    assert cond["reason"] == "SomeFinalizerRemain"
    assert cond["message"] == (
        "Some finalizers are remaining: example.com/hold in 1 resource instances"
    )
    remaining = _condition(ns, "NamespaceContentRemaining")
    assert remaining is not None and remaining["status"] == "True"
    assert remaining["reason"] == "SomeResourcesRemain"
    assert remaining["message"] == (
        "Some resources are remaining: configmaps. has 1 resource instances"
    )
    failure = _condition(ns, "NamespaceDeletionContentFailure")
    assert failure is not None and failure["status"] == "False"
    assert failure["reason"] == "ContentDeleted"

    # the unheld configmap is gone; the held one waits, marked for deletion
    names = [c["metadata"]["name"] for c in (await client.list(CONFIGMAPS, namespace))["items"]]
    assert names == ["held"]
    held = await client.get(CONFIGMAPS, "held", namespace)
    assert held["metadata"].get("deletionTimestamp")

    # its owner finishes: the namespace goes away
    await client.patch(
        CONFIGMAPS, "held", {"metadata": {"finalizers": None}}, namespace, patch_type="merge"
    )
    await eventually(lambda: _gone(client, namespace), within=60)
