"""The namespace controller: deleting a namespace deletes everything in it, then the namespace.

The API server only *marks* a namespace for deletion (``kubectl delete namespace``):
it sets ``deletionTimestamp`` and phase ``Terminating`` and keeps the ``kubernetes``
finalizer in ``spec.finalizers``, and refuses new objects in it. This controller (upstream's
``namespace`` controller with its ``NamespacedResourcesDeleter``) does the rest:

1. delete every namespaced object of every resource in the namespace (a
   ``deletecollection`` per resource, background propagation; pods keep their grace
   period; objects with finalizers stay until their owners remove them). The resources
   come from discovery, asked again at each pass as upstream's deleter does, so custom
   resources go with their namespace; when some groups cannot be discovered the rest is
   deleted, the failure is reported (``NamespaceDeletionDiscoveryFailure``) and the
   namespace is not finalized until discovery succeeds;
2. record on the namespace the conditions upstream keeps there
   (``NamespaceDeletionDiscoveryFailure``, ``NamespaceDeletionGroupVersionParsingFailure``,
   ``NamespaceDeletionContentFailure``, ``NamespaceContentRemaining``,
   ``NamespaceFinalizersRemaining``, with upstream's reasons and messages);
3. when nothing is left, remove the ``kubernetes`` finalizer through the
   ``namespaces/{name}/finalize`` subresource, upon which the API server deletes the
   namespace. While content remains it requeues after half the estimated time, as
   upstream does (pods: their grace period; finalizers: 15 s).
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import ApiError, Client, ClientError, Store, is_not_found
from pyk8s.client.discovery import GroupDiscoveryFailed
from pyk8s.controllers._resources import deletable_resources
from pyk8s.controllers.runtime import Manager, Request, Result, TerminalError

__all__ = ["FINALIZER_KUBERNETES", "NamespaceReconciler", "setup"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

NAMESPACES: Resource = REGISTRY.get("", "v1", "namespaces")  # type: ignore[assignment]
FINALIZER_KUBERNETES = "kubernetes"
#: upstream's wait when only objects with finalizers remain
FINALIZER_ESTIMATE_SECONDS = 15

DISCOVERY_FAILURE = "NamespaceDeletionDiscoveryFailure"
GV_PARSING_FAILURE = "NamespaceDeletionGroupVersionParsingFailure"
CONTENT_FAILURE = "NamespaceDeletionContentFailure"
CONTENT_REMAINING = "NamespaceContentRemaining"
FINALIZERS_REMAINING = "NamespaceFinalizersRemaining"

#: the conditions the deleter owns, in upstream's order
CONDITION_TYPES = (
    DISCOVERY_FAILURE,
    GV_PARSING_FAILURE,
    CONTENT_FAILURE,
    CONTENT_REMAINING,
    FINALIZERS_REMAINING,
)
OK_REASONS = {
    DISCOVERY_FAILURE: "ResourcesDiscovered",
    GV_PARSING_FAILURE: "ParsedGroupVersions",
    CONTENT_FAILURE: "ContentDeleted",
    CONTENT_REMAINING: "ContentRemoved",
    FINALIZERS_REMAINING: "ContentRemoved",
}
OK_MESSAGES = {
    DISCOVERY_FAILURE: "All resources successfully discovered",
    GV_PARSING_FAILURE: "All legacy kube types successfully parsed",
    CONTENT_FAILURE: "All content successfully deleted, may be waiting on finalization",
    CONTENT_REMAINING: "All content successfully removed",
    FINALIZERS_REMAINING: "All content successfully removed",
}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _timestamp(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class _Totals:
    """What one pass over the namespace's content found (upstream's deletion metadata)."""

    estimate: int = 0
    remaining: dict[Resource, int] = field(default_factory=dict)
    finalizers: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    #: why discovery failed (None: every resource was discovered)
    discovery_error: str | None = None


def build_conditions(totals: _Totals) -> dict[str, tuple[str, str, str]]:
    """type → (status, reason, message) for every condition the deleter owns."""
    out: dict[str, tuple[str, str, str]] = {
        t: ("False", OK_REASONS[t], OK_MESSAGES[t]) for t in CONDITION_TYPES
    }
    if totals.discovery_error is not None:
        out[DISCOVERY_FAILURE] = ("True", "DiscoveryFailed", totals.discovery_error)
    if totals.remaining:
        parts = sorted(
            f"{r.plural}.{r.group} has {n} resource instances"
            for r, n in totals.remaining.items()
            if n
        )
        out[CONTENT_REMAINING] = (
            "True",
            "SomeResourcesRemain",
            f"Some resources are remaining: {', '.join(parts)}",
        )
    if totals.finalizers:
        parts = sorted(f"{f} in {n} resource instances" for f, n in totals.finalizers.items() if n)
        out[FINALIZERS_REMAINING] = (
            "True",
            "SomeFinalizerRemain",
            f"Some finalizers are remaining: {', '.join(parts)}",
        )
    if totals.errors:
        msgs = sorted(totals.errors)
        out[CONTENT_FAILURE] = (
            "True",
            "ContentDeletionFailed",
            f"Failed to delete all resource types, {len(msgs)} remaining: {', '.join(msgs)}",
        )
    return out


def apply_conditions(status: Obj, wanted: dict[str, tuple[str, str, str]]) -> bool:
    """Update ``status.conditions`` in place as upstream's ``updateConditions``; True when
    something changed (lastTransitionTime moves only when the status flips)."""
    conditions: list[Obj] = status.setdefault("conditions", [])
    changed = False
    now = _timestamp(_now())
    for ctype in CONDITION_TYPES:
        cstatus, reason, message = wanted[ctype]
        old = next((c for c in conditions if c.get("type") == ctype), None)
        if old is None:
            conditions.append(
                {
                    "type": ctype,
                    "status": cstatus,
                    "lastTransitionTime": now,
                    "reason": reason,
                    "message": message,
                }
            )
            changed = True
        elif (old.get("status"), old.get("reason"), old.get("message")) != wanted[ctype]:
            if old.get("status") != cstatus:
                old["lastTransitionTime"] = now
            old.update(status=cstatus, reason=reason, message=message)
            changed = True
    return changed


def discovery_failure_message(err: ClientError) -> str:
    """The ``NamespaceDeletionDiscoveryFailure`` message for a discovery error (upstream's)."""
    if isinstance(err, GroupDiscoveryFailed):
        return f"Discovery failed for some groups, {len(err.groups)} failing: {err}"
    if isinstance(err, ApiError):
        return err.message
    return str(err)


class NamespaceReconciler:
    """Empties a terminating namespace, then finalizes it (level-based, idempotent).

    The namespaced resources to empty come from ``discover`` (by default the server's
    discovery: :func:`~pyk8s.controllers._resources.deletable_resources`), called at each
    pass; ``resources`` fixes them instead.
    """

    def __init__(
        self,
        client: Client,
        namespaces: Store | None = None,
        resources: list[Resource] | None = None,
        *,
        discover: Callable[[], Awaitable[list[Resource]]] | None = None,
    ) -> None:
        self.client = client
        #: the namespace informer's cache: only namespaces marked there are read live
        self.namespaces = namespaces
        self.resources = resources
        self.discover = discover or self._discover
        #: resources whose deletecollection the server does not support (upstream's opCache)
        self._no_delete_collection: set[Resource] = set()

    async def reconcile(self, request: Request) -> Result | None:
        if self.namespaces is not None:
            cached = self.namespaces.get_by_name(None, request.name)
            if cached is None or not (cached.get("metadata") or {}).get("deletionTimestamp"):
                return None
        try:
            ns = await self.client.get(NAMESPACES, request.name)
        except ApiError as err:
            if is_not_found(err):
                return None
            raise
        meta = ns.get("metadata") or {}
        if not meta.get("deletionTimestamp"):
            return None
        ns = await self._ensure_terminating(ns)
        if FINALIZER_KUBERNETES not in ((ns.get("spec") or {}).get("finalizers") or []):
            return None  # finalized already; the server deletes it once others are done
        deleted_at = _parse_time(meta.get("deletionTimestamp")) or _now()
        totals = await self._delete_all_content(request.name, deleted_at)
        ns = await self._update_conditions(ns, totals)
        if totals.errors:
            raise RuntimeError(
                f"namespace {request.name}: content deletion failed: {'; '.join(totals.errors)}"
            )
        if totals.discovery_error is not None:
            # what could be found is gone; what could not may still be there
            raise RuntimeError(f"namespace {request.name}: {totals.discovery_error}")
        if totals.remaining or totals.estimate > 0:
            wait = max(totals.estimate, 1) // 2 + 1
            log.debug("namespace %s: content remains; checking again in %ds", request.name, wait)
            return Result(requeue_after=float(wait))
        await self._finalize(ns)
        return None

    # -- steps

    async def _ensure_terminating(self, ns: Obj) -> Obj:
        if (ns.get("status") or {}).get("phase") == "Terminating":
            return ns
        new = copy.deepcopy(ns)
        new.setdefault("status", {})["phase"] = "Terminating"
        result: Obj = await self.client.update_status(NAMESPACES, new)
        return result

    async def _discover(self) -> list[Resource]:
        return await deletable_resources(self.client, namespaced=True)

    async def _resources(self, totals: _Totals) -> list[Resource]:
        """The namespaced resources to empty; a discovery failure goes into ``totals``
        (and the resources that could be discovered are emptied all the same)."""
        if self.resources is not None:
            return self.resources
        try:
            return await self.discover()
        except GroupDiscoveryFailed as err:
            totals.discovery_error = discovery_failure_message(err)
            return err.resources
        except ClientError as err:
            totals.discovery_error = discovery_failure_message(err)
            return []

    async def _delete_all_content(self, namespace: str, deleted_at: dt.datetime) -> _Totals:
        totals = _Totals()
        for r in await self._resources(totals):
            try:
                await self._delete_resource_content(r, namespace, deleted_at, totals)
            except ApiError as err:
                totals.errors.append(str(err.message or err))
        return totals

    async def _delete_resource_content(
        self, r: Resource, namespace: str, deleted_at: dt.datetime, totals: _Totals
    ) -> None:
        estimate = 0
        if r.group == "" and r.plural == "pods":
            estimate = await self._estimate_pods(namespace, deleted_at)
        if r not in self._no_delete_collection and "deletecollection" in r.verbs:
            try:
                # background: dependents go through the garbage collector, never orphaned
                await self.client.delete_collection(r, namespace, propagation_policy="Background")
            except ApiError as err:
                if err.status not in (404, 405):
                    raise
                self._no_delete_collection.add(r)
                await self._delete_each(r, namespace)
        else:
            await self._delete_each(r, namespace)
        try:
            items: list[Obj] = (await self.client.list_all(r, namespace)).get("items") or []
        except ApiError as err:
            if err.status in (404, 405):
                return
            raise
        if not items:
            totals.estimate = max(totals.estimate, estimate)
            return
        totals.remaining[r] = len(items)
        for item in items:
            for f in (item.get("metadata") or {}).get("finalizers") or ():
                totals.finalizers[str(f)] += 1
        if estimate == 0:
            if any((i.get("metadata") or {}).get("finalizers") for i in items):
                estimate = FINALIZER_ESTIMATE_SECONDS
            else:
                estimate = 1  # just deleted and not gone yet: look again shortly
        totals.estimate = max(totals.estimate, estimate)

    async def _delete_each(self, r: Resource, namespace: str) -> None:
        items: list[Obj] = (await self.client.list_all(r, namespace)).get("items") or []
        for item in items:
            name = (item.get("metadata") or {}).get("name")
            if not name:
                continue
            try:
                await self.client.delete(r, name, namespace, propagation_policy="Background")
            except ApiError as err:
                if err.status not in (404, 405):
                    raise

    async def _estimate_pods(self, namespace: str, deleted_at: dt.datetime) -> int:
        """The longest grace period of the namespace's running pods, unless it has passed."""
        pods = REGISTRY.get("", "v1", "pods")
        assert pods is not None
        items: list[Obj] = (await self.client.list_all(pods, namespace)).get("items") or []
        estimate = 0
        for pod in items:
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
            if isinstance(grace, int) and grace > estimate:
                estimate = grace
        if (_now() - deleted_at).total_seconds() >= estimate:
            return 0
        return estimate

    async def _update_conditions(self, ns: Obj, totals: _Totals) -> Obj:
        new = copy.deepcopy(ns)
        status = new.setdefault("status", {})
        if not apply_conditions(status, build_conditions(totals)):
            return ns
        result: Obj = await self.client.update_status(NAMESPACES, new)
        return result

    async def _finalize(self, ns: Obj) -> None:
        new = copy.deepcopy(ns)
        spec = new.setdefault("spec", {})
        spec["finalizers"] = sorted(
            {f for f in spec.get("finalizers") or () if f != FINALIZER_KUBERNETES}
        )
        try:
            await self.client.update(NAMESPACES, new, subresource="finalize")
        except ApiError as err:
            if is_not_found(err):
                return  # removed already: life is good
            raise


def setup(manager: Manager) -> None:
    if NAMESPACES is None:  # pragma: no cover - the registry always has namespaces
        raise TerminalError("the registry has no namespaces resource")
    informer = manager.informers.informer(NAMESPACES)
    reconciler = NamespaceReconciler(manager.client, informer.store)
    controller = manager.add("namespace", reconciler, workers=5)
    controller.watch(informer)
