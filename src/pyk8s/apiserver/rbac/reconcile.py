"""Creating and reconciling the bootstrap policy when the API server starts.

Why reconcile and not just create: a cluster upgraded to a version whose bootstrap roles
grant more must get the new permissions, but an administrator's additions must survive
and an administrator must be able to opt out. Upstream's rules (``reconciliation``):

* a missing role or binding is created;
* an existing one annotated ``rbac.authorization.kubernetes.io/autoupdate: "false"`` is
  left alone;
* otherwise missing rules are added (broken down to the atomic rules upstream appends),
  missing labels, annotations, aggregation selectors and binding subjects are added, and
  nothing the user added is ever removed; a binding whose roleRef differs is left as it is
  (roleRef is immutable; upstream recreates it only when asked to remove extras).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyk8s.api import errors
from pyk8s.apiserver.rbac.bootstrappolicy import (
    AUTOUPDATE_ANNOTATION,
    cluster_role_bindings,
    cluster_roles,
    namespaced_role_bindings,
    namespaced_roles,
)
from pyk8s.apiserver.rbac.rules import covers, rules_from_json

if TYPE_CHECKING:
    from pyk8s.apiserver.handlers import ResourceHandlers

__all__ = ["ensure_bootstrap_policy", "reconcile_binding", "reconcile_role"]

log = logging.getLogger(__name__)

JSON = dict[str, Any]
#: what an existing object should become (None: leave it as it is)
Reconcile = Callable[[JSON, JSON], JSON | None]


def _protected(existing: JSON) -> bool:
    annotations = (existing.get("metadata") or {}).get("annotations") or {}
    return annotations.get(AUTOUPDATE_ANNOTATION) == "false"


def _merge_meta(result: JSON, expected: JSON) -> None:
    meta = result.setdefault("metadata", {})
    for key in ("labels", "annotations"):
        wanted = expected["metadata"].get(key) or {}
        have = meta.get(key) or {}
        merged = {**wanted, **have}  # the existing values win
        if merged != have:
            meta[key] = merged


def reconcile_role(existing: JSON, expected: JSON) -> JSON | None:
    """The role ``existing`` should become (None: leave it as it is)."""
    if _protected(existing):
        return None
    result = copy.deepcopy(existing)
    _merge_meta(result, expected)
    missing = covers(rules_from_json(existing.get("rules")), rules_from_json(expected.get("rules")))
    aggregated = "aggregationRule" in expected
    if missing and not (aggregated and existing.get("aggregationRule")):
        result["rules"] = list(existing.get("rules") or []) + [r.to_json() for r in missing]
    if aggregated:
        have = (result.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
        wanted = expected["aggregationRule"]["clusterRoleSelectors"]
        selectors = list(have) + [s for s in wanted if s not in have]
        if selectors != have:
            result["aggregationRule"] = {"clusterRoleSelectors": selectors}
    return None if result == existing else result


def reconcile_binding(existing: JSON, expected: JSON) -> JSON | None:
    """The binding ``existing`` should become (None: leave it as it is)."""
    if _protected(existing) or existing.get("roleRef") != expected.get("roleRef"):
        return None
    result = copy.deepcopy(existing)
    _merge_meta(result, expected)
    have = list(existing.get("subjects") or [])
    extra = [s for s in expected.get("subjects") or () if s not in have]
    if extra:
        result["subjects"] = have + extra
    return None if result == existing else result


async def ensure_bootstrap_policy(handlers: ResourceHandlers) -> None:
    """Create or reconcile every bootstrap role and binding (the API server's
    ``rbac/bootstrap-roles`` post-start hook)."""
    objects = [
        *[(o, reconcile_role) for o in cluster_roles()],
        *[(o, reconcile_binding) for o in cluster_role_bindings()],
        *[(o, reconcile_role) for o in namespaced_roles()],
        *[(o, reconcile_binding) for o in namespaced_role_bindings()],
    ]

    async def ensure(expected: JSON, reconcile: Reconcile) -> None:
        r = handlers.registry.for_api_version(expected["apiVersion"], expected["kind"])
        assert r is not None
        meta = expected["metadata"]
        rest = handlers.rest(r)
        try:
            try:
                current, kv = await rest.read(meta.get("namespace", ""), meta["name"])
            except errors.StatusError as err:
                if err.code != 404:
                    raise
                await handlers.create_object(r, copy.deepcopy(expected))
                return
            wanted = reconcile(current, expected)
            if wanted is not None:
                log.info("reconciling bootstrap %s %s", r.kind, meta["name"])
                await handlers.update_object(r, wanted, current, kv, "")
        except errors.StatusError as err:
            # another API server of the cluster won the race; it reconciles the same way
            log.warning("bootstrap %s %s: %s", r.kind, meta["name"], err)

    # all at once: no object depends on another, and the store commits concurrent
    # writes together (one after another, a fresh start waited for ~100 commits)
    await asyncio.gather(*(ensure(expected, reconcile) for expected, reconcile in objects))
