"""The clusterrole-aggregation controller against a real API server (RBAC on, bootstrap
policy in place): an aggregated ClusterRole follows the roles its selectors match, and
the bootstrap ``view``/``edit``/``admin`` pick up a CRD author's labelled role."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from pyk8s.api.registry import REGISTRY
from pyk8s.client import Client
from pyk8s.controllers.runtime import Manager
from tests.controllers.conftest import eventually

CLUSTER_ROLES = REGISTRY.get("rbac.authorization.k8s.io", "v1", "clusterroles")
assert CLUSTER_ROLES is not None

WIDGETS = {"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get", "list"]}
GADGETS = {"apiGroups": ["example.com"], "resources": ["gadgets"], "verbs": ["create"]}


def _role(name: str, labels: dict[str, str], rules: list[Any]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": labels},
        "rules": rules,
    }


async def _rules(client: Client, name: str) -> list[Any]:
    return list((await client.get(CLUSTER_ROLES, name)).get("rules") or [])


async def test_aggregated_role_follows_its_selectors(
    client: Client, run_controllers: Callable[..., Awaitable[Manager]]
) -> None:
    await run_controllers("clusterroleaggregation")
    key = f"agg-{uuid.uuid4().hex[:6]}"
    parent = _role(f"{key}-parent", {}, [])
    parent["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {key: "true"}}]}
    await client.create(CLUSTER_ROLES, parent)
    await client.create(CLUSTER_ROLES, _role(f"{key}-b", {key: "true"}, [GADGETS, WIDGETS]))
    await client.create(CLUSTER_ROLES, _role(f"{key}-a", {key: "true"}, [WIDGETS]))
    await client.create(
        CLUSTER_ROLES,
        _role(f"{key}-other", {}, [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]),
    )

    async def gathered() -> bool:
        # name order, each rule once
        return await _rules(client, f"{key}-parent") == [WIDGETS, GADGETS]

    await eventually(gathered)

    await client.delete(CLUSTER_ROLES, f"{key}-a")
    child = await client.get(CLUSTER_ROLES, f"{key}-b")
    child["metadata"]["labels"] = {}
    await client.update(CLUSTER_ROLES, child)

    async def emptied() -> bool:
        return await _rules(client, f"{key}-parent") == []

    await eventually(emptied)


async def test_bootstrap_roles_aggregate_a_labelled_role(
    client: Client, run_controllers: Callable[..., Awaitable[Manager]]
) -> None:
    await run_controllers("clusterroleaggregation")
    before = await _rules(client, "admin")
    name = f"widgets-view-{uuid.uuid4().hex[:6]}"
    labels = {"rbac.authorization.k8s.io/aggregate-to-view": "true"}
    await client.create(CLUSTER_ROLES, _role(name, labels, [WIDGETS]))

    async def everywhere() -> bool:
        return all([WIDGETS in await _rules(client, r) for r in ("view", "edit", "admin")])

    await eventually(everywhere)
    await client.delete(CLUSTER_ROLES, name)

    async def gone() -> bool:
        return await _rules(client, "admin") == before

    await eventually(gone)
