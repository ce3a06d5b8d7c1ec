"""The garbage collector: background, foreground and orphan deletion over ownerReferences."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import ApiError, Client, is_not_found
from pyk8s.controllers.runtime import Manager
from tests.controllers.conftest import eventually

RunControllers = Callable[..., Awaitable[Manager]]

_cm = REGISTRY.get("", "v1", "configmaps")
assert _cm is not None
CONFIGMAPS: Resource = _cm
HOLD = "example.com/hold"


async def _get(client: Client, name: str, namespace: str) -> dict[str, Any] | None:
    try:
        return await client.get(CONFIGMAPS, name, namespace)
    except ApiError as err:
        if is_not_found(err):
            return None
        raise


async def _gone(client: Client, name: str, namespace: str) -> bool:
    return await _get(client, name, namespace) is None


def _ref(owner: dict[str, Any], *, block: bool = False) -> dict[str, Any]:
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
    }
    if block:
        ref["blockOwnerDeletion"] = True
    return ref


async def _cm_with_owners(
    client: Client,
    namespace: str,
    name: str,
    refs: list[dict[str, Any]],
    finalizers: list[str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "ownerReferences": refs}
    if finalizers:
        meta["finalizers"] = finalizers
    return await client.create(CONFIGMAPS, {"metadata": meta}, namespace)


async def test_background_deleting_the_owner_deletes_the_dependent(
    client: Client, namespace: str, run_controllers: RunControllers
) -> None:
    await run_controllers("garbagecollector")
    owner = await client.create(CONFIGMAPS, {"metadata": {"name": "owner"}}, namespace)
    await _cm_with_owners(client, namespace, "dependent", [_ref(owner)])
    await _cm_with_owners(
        client,
        namespace,
        "grandchild",
        [_ref(await client.get(CONFIGMAPS, "dependent", namespace))],
    )

    await client.delete(CONFIGMAPS, "owner", namespace)

    await eventually(lambda: _gone(client, "dependent", namespace), within=30)
    await eventually(lambda: _gone(client, "grandchild", namespace), within=30)


async def test_dangling_and_live_owners(
    client: Client, namespace: str, run_controllers: RunControllers
) -> None:
    await run_controllers("garbagecollector")
    a = await client.create(CONFIGMAPS, {"metadata": {"name": "a"}}, namespace)
    b = await client.create(CONFIGMAPS, {"metadata": {"name": "b"}}, namespace)
    await _cm_with_owners(client, namespace, "shared", [_ref(a), _ref(b)])
    # an owner that never existed: the dependent is garbage from the start
    ghost = {"metadata": {"name": "ghost", "uid": "00000000-0000-0000-0000-000000000000"}}
    await _cm_with_owners(client, namespace, "orphaned", [_ref(ghost)])

    await client.delete(CONFIGMAPS, "a", namespace)

    async def only_b_left() -> bool:
        shared = await _get(client, "shared", namespace)
        assert shared is not None, "a dependent with a live owner must survive"
        return [r["uid"] for r in shared["metadata"].get("ownerReferences", [])] == [
            b["metadata"]["uid"]
        ]

    await eventually(only_b_left, within=30)
    await eventually(lambda: _gone(client, "orphaned", namespace), within=30)


async def test_foreground_owner_waits_for_its_dependents(
    client: Client, namespace: str, run_controllers: RunControllers
) -> None:
    await run_controllers("garbagecollector")
    owner = await client.create(CONFIGMAPS, {"metadata": {"name": "owner"}}, namespace)
    # the dependent is held by somebody else's finalizer, so its deletion takes a while
    await _cm_with_owners(client, namespace, "dependent", [_ref(owner, block=True)], [HOLD])

    await client.delete(CONFIGMAPS, "owner", namespace, propagation_policy="Foreground")

    async def dependent_deleting() -> bool:
        dep = await _get(client, "dependent", namespace)
        return dep is not None and bool(dep["metadata"].get("deletionTimestamp"))

    await eventually(dependent_deleting, within=30)
    held = await _get(client, "owner", namespace)
    assert held is not None, "the owner must wait for its blocking dependent"
    assert held["metadata"].get("deletionTimestamp")
    assert held["metadata"].get("finalizers") == ["foregroundDeletion"]

    await client.patch(
        CONFIGMAPS, "dependent", {"metadata": {"finalizers": None}}, namespace, patch_type="merge"
    )
    await eventually(lambda: _gone(client, "dependent", namespace), within=30)
    await eventually(lambda: _gone(client, "owner", namespace), within=30)


async def test_orphan_dependent_survives_without_the_reference(
    client: Client, namespace: str, run_controllers: RunControllers
) -> None:
    await run_controllers("garbagecollector")
    owner = await client.create(CONFIGMAPS, {"metadata": {"name": "owner"}}, namespace)
    await _cm_with_owners(client, namespace, "dependent", [_ref(owner)])

    await client.delete(CONFIGMAPS, "owner", namespace, propagation_policy="Orphan")

    await eventually(lambda: _gone(client, "owner", namespace), within=30)
    dep = await _get(client, "dependent", namespace)
    assert dep is not None
    assert not dep["metadata"].get("ownerReferences")
    assert not dep["metadata"].get("deletionTimestamp")
