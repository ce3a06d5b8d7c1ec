"""The ResourceQuota controller: keeps every quota's ``status`` (hard and used) current.

The API server's quota admission (``pyk8s.apiserver.quota``) refuses a create from the
quota's *status* — ``used`` plus the new object's cost against ``hard`` — so that status
must follow the namespace's objects, as upstream's ``pkg/controller/resourcequota`` does:
``status.hard`` mirrors ``spec.hard``; ``status.used`` holds, for every name in
``spec.hard`` (and only those), the usage summed over the namespace's objects that the
quota's scopes match (the rules are in :mod:`pyk8s.api.quotausage`), zeros included.

A quota is recomputed when it changes and whenever an object of a tracked kind in its
namespace is added, updated or deleted (upstream's "replenishment"). The kinds with
usage rules (pods, services, claims, …) are tracked by shared informers from the start;
any other kind a quota counts (``count/<plural>.<group>``, custom resources included) is
resolved through discovery (:class:`~pyk8s.client.discovery.CachedDiscovery`), listed
through the API until this controller's own metadata-only informer for it has synced,
and tracked by that informer from then on. Upstream's quota monitors watch every
quotable resource; here only the ones some quota counts are watched. Quotas over such
kinds are also recomputed every five minutes (upstream's full resync period), which is
when a kind that is no longer served is forgotten.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Iterable
from typing import Any

from pyk8s.api import quotausage as qu
from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import ApiError, Client, SharedInformer, is_conflict, is_not_found
from pyk8s.client.discovery import CachedDiscovery
from pyk8s.client.informer import ClientListerWatcher
from pyk8s.controllers.garbagecollector import MetadataListerWatcher
from pyk8s.controllers.runtime import Controller, Manager, Request, Result

log = logging.getLogger(__name__)

Obj = dict[str, Any]

#: how often quotas over kinds without an informer are recomputed (upstream's default
#: --resource-quota-sync-period)
FULL_RESYNC = 300.0

QUOTAS = REGISTRY.get("", "v1", "resourcequotas")
assert QUOTAS is not None

#: how long a quota waits for its informers to catch up with a usage the API server's
#: admission charged to it (see ``_behind``)
CATCH_UP = 5.0

#: kinds watched through shared informers: their changes recompute the namespace's quotas
WATCHED: tuple[tuple[str, str, str], ...] = (
    ("", "v1", "pods"),
    ("", "v1", "services"),
    ("", "v1", "persistentvolumeclaims"),
    ("", "v1", "configmaps"),
    ("", "v1", "secrets"),
    ("", "v1", "replicationcontrollers"),
    ("", "v1", "resourcequotas"),
    ("apps", "v1", "deployments"),
    ("apps", "v1", "replicasets"),
    ("apps", "v1", "statefulsets"),
    ("apps", "v1", "daemonsets"),
    ("batch", "v1", "jobs"),
    ("batch", "v1", "cronjobs"),
)


def _countable(r: Resource | None) -> bool:
    """Whether a quota can count ``r``'s objects in a namespace."""
    return r is not None and r.namespaced and "list" in r.verbs


class ResourceQuotaReconciler:
    def __init__(self, manager: Manager) -> None:
        assert QUOTAS is not None
        self.client: Client = manager.client
        self.quotas = manager.informers.informer(QUOTAS)
        self.informers: dict[tuple[str, str], SharedInformer] = {}
        #: the informers this controller started itself, for kinds only discovery knows
        self.discovered: dict[tuple[str, str], SharedInformer] = {}
        self.discovery = CachedDiscovery(manager.client)
        #: set by :func:`setup`: discovered informers' events recompute quotas through it
        self.controller: Controller | None = None
        self._deferred: dict[Request, float] = {}
        #: the resourceVersion of this controller's own last write of each quota
        self._written: dict[Request, str] = {}
        self._watched = {(group, plural) for group, _version, plural in WATCHED}
        for group, version, plural in WATCHED:
            r = REGISTRY.get(group, version, plural)
            if r is not None:
                self.informers[(group, plural)] = manager.informers.informer(r)

    def namespace_quotas(self, obj: Obj) -> Iterable[Request]:
        ns = (obj.get("metadata") or {}).get("namespace", "")
        for quota in self.quotas.store.by_index("namespace", ns):
            yield Request(ns, quota["metadata"]["name"])

    async def _objects(self, group: str, plural: str, namespace: str) -> list[Obj] | None:
        informer = self.informers.get((group, plural))
        if (group, plural) in self._watched and informer is not None:
            return informer.store.by_index("namespace", namespace)
        # any other kind: is it (still) served? (cached; a miss asks the server again)
        r = await self.discovery.for_group_resource(group, plural)
        if r is None or not _countable(r):
            await self._forget(group, plural)
            return None  # not a resource the server serves: nothing to count
        if informer is None:
            self._track(r)
        elif informer.has_synced():
            return informer.store.by_index("namespace", namespace)
        listed = await self.client.list(r, namespace)
        items: list[Obj] = listed.get("items") or []
        return items

    def _track(self, r: Resource) -> None:
        """Watch ``r`` from now on (metadata only: kinds outside :data:`WATCHED` cost
        one object each, whatever is in them); its events recompute the quotas."""
        if self.controller is None or "watch" not in r.verbs:
            return
        informer = SharedInformer(
            MetadataListerWatcher(ClientListerWatcher(self.client, r)),
            name=f"quota-informer[{r.group_resource}]",
        )
        self.informers[(r.group, r.plural)] = self.discovered[(r.group, r.plural)] = informer
        self.controller.watch(informer, self.namespace_quotas)
        informer.start()
        log.info("resource quota: counting %s", r.group_resource)

    async def _forget(self, group: str, plural: str) -> None:
        informer = self.discovered.pop((group, plural), None)
        if informer is not None:
            del self.informers[(group, plural)]
            await informer.stop()

    async def stop(self) -> None:
        """Stop the informers this controller started (the shared ones are the manager's)."""
        informers = list(self.discovered.values())
        self.discovered.clear()
        await asyncio.gather(*(inf.stop() for inf in informers))

    def _behind(self, request: Request, quota: Obj, names: list[str]) -> bool:
        """Whether an informer counting ``names`` (whose usage would go down) has not yet
        seen the quota's last write.

        Admission charges a quota *before* it stores the object, so an informer older
        than the quota would make this controller write back the usage without the new
        object, and let the next create slip past the limit. Wait a little for it (not
        forever: a create can fail after it was charged).
        """
        rv = quota["metadata"].get("resourceVersion") or ""
        if self._written.get(request) == rv:
            return False  # nobody but us wrote it since
        try:
            quota_rv = int(rv or 0)
        except ValueError:
            return False
        lagging = False
        for name in names:
            informer = self.informers.get(qu.source_of(name) or ("", ""))
            if informer is None or not informer.has_synced():
                continue  # counted from a live list, not from a cache
            try:
                seen = int(informer.last_sync_resource_version or 0)
            except ValueError:
                continue
            if seen < quota_rv:
                lagging = True
                break
        now = time.monotonic()
        if not lagging:
            self._deferred.pop(request, None)
            return False
        since = self._deferred.setdefault(request, now)
        if now - since > CATCH_UP:
            self._deferred.pop(request, None)
            return False
        return True

    async def reconcile(self, request: Request) -> Result | None:
        assert QUOTAS is not None
        quota = self.quotas.store.get_by_name(request.namespace, request.name)
        if quota is None:
            self._written.pop(request, None)
            self._deferred.pop(request, None)
            return None
        hard: dict[str, Any] = dict((quota.get("spec") or {}).get("hard") or {})
        now = time.time()
        used: qu.Usage = {}
        resync = False
        by_source: dict[tuple[str, str], list[str]] = {}
        for name in hard:
            used[name] = qu.ZERO
            source = qu.source_of(name)
            if source is not None:
                by_source.setdefault(source, []).append(name)
        for (group, plural), names in by_source.items():
            resync = resync or (group, plural) not in self._watched
            objects = await self._objects(group, plural, request.namespace)
            for obj in objects or ():
                if not qu.matches_scopes(quota, group, plural, obj):
                    continue
                cost = qu.object_usage(group, plural, obj, now)
                for name in names:
                    if name in cost:
                        used[name] = qu.add(used[name], cost[name])
        status: Obj = {"hard": hard, "used": qu.format_usage(used)}
        current = quota.get("status") or {}
        old_used = qu.parse_usage(current.get("used"))
        lowered = [n for n, q in used.items() if n in old_used and q[0] < old_used[n][0]]
        if lowered and self._behind(request, quota, lowered):
            return Result(requeue_after=0.2)
        if (current.get("hard") or {}) != status["hard"] or (current.get("used") or {}) != status[
            "used"
        ]:
            new = copy.deepcopy(quota)
            new["status"] = status
            try:
                out = await self.client.update_status(QUOTAS, new)
                self._written[request] = out["metadata"].get("resourceVersion", "")
            except ApiError as err:
                if is_conflict(err):
                    return Result(requeue=True)
                if is_not_found(err):
                    return None
                raise
        return Result(requeue_after=FULL_RESYNC) if resync else None


class _QuotaController(Controller):
    """The quota controller: also stops the informers its reconciler started."""

    def __init__(self, reconciler: ResourceQuotaReconciler, manager: Manager) -> None:
        super().__init__("resourcequota", reconciler, workers=2, metrics=manager.metrics)
        self.quota_reconciler = reconciler

    async def stop(self) -> None:
        await super().stop()
        await self.quota_reconciler.stop()


def setup(manager: Manager) -> None:
    reconciler = ResourceQuotaReconciler(manager)
    controller = _QuotaController(reconciler, manager)
    reconciler.controller = controller
    manager.controllers.append(controller)
    controller.watch(reconciler.quotas)
    for informer in reconciler.informers.values():
        if informer is not reconciler.quotas:
            controller.watch(informer, reconciler.namespace_quotas)
