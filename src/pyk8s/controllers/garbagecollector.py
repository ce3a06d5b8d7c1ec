"""The garbage collector: objects whose owners are gone go too (ownerReferences).

Kubernetes links objects by ``metadata.ownerReferences`` (a ReplicaSet's pods, a Job's
pods, anything a user links), and deletion follows the links according to the delete
request's ``propagationPolicy``, which the API server turns into finalizers:

* **Background** (the default): the owner goes at once; afterwards every dependent whose
  owners are *all* gone (looked up by uid) is deleted — in turn with its own policy;
  a dependent that still has a live owner only loses the references to the dead ones.
* **Foreground**: the owner keeps a ``deletionTimestamp`` and the ``foregroundDeletion``
  finalizer while its dependents are deleted; once none with ``blockOwnerDeletion``
  remains, the finalizer is removed and the API server deletes the owner.
* **Orphan**: the owner keeps the ``orphan`` finalizer until its dependents have lost
  their references to it; then the finalizer is removed.

Upstream keeps a graph of every object in the cluster, fed by metadata-only informers on
every deletable resource; this does the same with one informer per resource that
discovery reports as listable, watchable and deletable (Events excepted, as upstream
ignores them) whose store keeps only the metadata the collector needs (name, namespace,
uid, resourceVersion, ownerReferences, finalizers, deletionTimestamp) — a few hundred
bytes an object, whatever the object. The graph is those stores with two indexes: by
``uid`` and by owner uid. Keys of the work queue are uids (``Request("", uid)``); the
reconcile is level-based on the caches, and confirms an owner missing from the caches
with a live GET before acting on it, as upstream does (informers lag; a dependent may be
seen before its brand-new owner).

Resources come and go while the collector runs (custom resources), so, as upstream's
``GarbageCollector.Sync``, it asks discovery again every ``resync_period`` seconds (30,
upstream's) and starts informers for resources that appeared and stops those of
resources that are gone. While new informers fill their caches the workers wait (up to
one period), so an owner's dependents of a new type are in the graph before the
collector decides anything from it. When some groups fail discovery, the informers of
those groups are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

from pyk8s.api.registry import Resource
from pyk8s.client import (
    WARNING,
    ApiError,
    Client,
    EventRecorder,
    SharedInformer,
    is_conflict,
    is_not_found,
)
from pyk8s.client.discovery import GroupDiscoveryFailed
from pyk8s.client.errors import ClientError
from pyk8s.client.informer import ClientListerWatcher
from pyk8s.client.rest import WatchEvent
from pyk8s.controllers._resources import deletable_resources
from pyk8s.controllers.runtime import Controller, Manager, Request, Result

__all__ = [
    "FOREGROUND",
    "ORPHAN",
    "GarbageCollector",
    "MetadataListerWatcher",
    "setup",
    "strip_to_metadata",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Policy = Literal["Orphan", "Background", "Foreground"]

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
#: how often discovery is asked for resources that appeared or went (upstream: 30 s)
RESYNC_PERIOD = 30.0
#: how long the first caches may take to fill before the collector starts anyway
INITIAL_SYNC_TIMEOUT = 60.0
UID_INDEX = "uid"
OWNER_INDEX = "owner-uid"
#: resources upstream's collector ignores (group, plural)
IGNORED = {("", "events"), ("events.k8s.io", "events")}

_KEEP_META = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "ownerReferences",
    "finalizers",
    "deletionTimestamp",
)


def strip_to_metadata(obj: Obj) -> Obj:
    """The part of an object the collector keeps (a PartialObjectMetadata, smaller)."""
    meta = obj.get("metadata") or {}
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {k: meta[k] for k in _KEEP_META if k in meta},
    }


class MetadataListerWatcher:
    """List + watch through a :class:`ClientListerWatcher`, keeping only metadata."""

    def __init__(self, inner: ClientListerWatcher) -> None:
        self.inner = inner

    async def list(self) -> tuple[list[Obj], str]:
        items, rv = await self.inner.list()
        return [strip_to_metadata(o) for o in items], rv

    @contextlib.asynccontextmanager
    async def watch(self, resource_version: str) -> AsyncIterator[AsyncIterator[WatchEvent]]:
        async with self.inner.watch(resource_version) as events:
            yield self._stripped(events)

    @staticmethod
    async def _stripped(events: AsyncIterator[WatchEvent]) -> AsyncIterator[WatchEvent]:
        async for etype, obj in events:
            yield etype, strip_to_metadata(obj)


def _uid_index(obj: Obj) -> list[str]:
    uid = (obj.get("metadata") or {}).get("uid")
    return [str(uid)] if uid else []


def _owner_index(obj: Obj) -> list[str]:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or ()
    return [str(r["uid"]) for r in refs if isinstance(r, dict) and r.get("uid")]


def _meta(obj: Obj) -> Obj:
    meta: Obj = obj.get("metadata") or {}
    return meta


def _refs(obj: Obj) -> list[Obj]:
    return list(_meta(obj).get("ownerReferences") or ())


def _finalizers(obj: Obj) -> list[str]:
    return [str(f) for f in _meta(obj).get("finalizers") or ()]


def _deleting(obj: Obj) -> bool:
    return bool(_meta(obj).get("deletionTimestamp"))


def _waiting_for_dependents(obj: Obj) -> bool:
    return _deleting(obj) and FOREGROUND in _finalizers(obj)


def _gvr(r: Resource) -> tuple[str, str, str]:
    return (r.group, r.version, r.plural)


def _group_version(r: Resource) -> str:
    return r.api_version


def _name(r: Resource) -> str:
    """``widgets.v1.example.com`` (``pods.v1`` in the core group), as upstream logs a GVR."""
    return f"{r.plural}.{r.version}.{r.group}" if r.group else f"{r.plural}.{r.version}"


class GarbageCollector:
    """The reconciler: ``Request("", uid)`` — act on that object's ownership state.

    ``resources`` fixes the resources watched (no discovery); by default they are
    discovered when the informers start and again every ``resync_period`` seconds.
    """

    def __init__(
        self,
        client: Client,
        recorder: EventRecorder | None = None,
        resources: list[Resource] | None = None,
        *,
        resync_period: float = RESYNC_PERIOD,
    ) -> None:
        self.client = client
        self.recorder = recorder
        self.resync_period = resync_period
        #: whether resources come from discovery (no fixed list given)
        self.discovers = resources is None
        self.informers: dict[Resource, SharedInformer] = {}
        for r in resources or ():
            self.informers[r] = self._informer(r)
        self.controller: Controller | None = None
        #: set while the graph's caches are filled; workers wait while it is clear
        self._graph_ready = asyncio.Event()
        self._graph_ready.set()
        self._resync_task: asyncio.Task[None] | None = None
        self._sync_lock = asyncio.Lock()
        self._stopped = False

    def _informer(self, r: Resource) -> SharedInformer:
        lw = MetadataListerWatcher(ClientListerWatcher(self.client, r))
        inf = SharedInformer(
            lw,
            indexers={UID_INDEX: _uid_index, OWNER_INDEX: _owner_index},
            name=f"gc-informer[{_name(r)}]",
        )
        inf.add_event_handler(
            on_add=self._on_add, on_update=self._on_update, on_delete=self._on_delete
        )
        return inf

    # ------------------------------------------------------------------ the graph

    def node(self, uid: str) -> tuple[Resource, Obj] | None:
        for r, inf in self.informers.items():
            found = inf.store.by_index(UID_INDEX, uid)
            if found:
                return r, found[0]
        return None

    def dependents(self, uid: str) -> list[tuple[Resource, Obj]]:
        out: list[tuple[Resource, Obj]] = []
        for r, inf in self.informers.items():
            out.extend((r, o) for o in inf.store.by_index(OWNER_INDEX, uid))
        return out

    # ------------------------------------------------------------------ events

    def _enqueue(self, uid: Any) -> None:
        if self.controller is not None and uid:
            self.controller.queue.add(Request("", str(uid)))

    def _on_add(self, obj: Obj) -> None:
        if _refs(obj) or (_deleting(obj) and {ORPHAN, FOREGROUND} & set(_finalizers(obj))):
            self._enqueue(_meta(obj).get("uid"))

    def _on_update(self, old: Obj, new: Obj) -> None:
        om, nm = _meta(old), _meta(new)
        changed_refs = om.get("ownerReferences") != nm.get("ownerReferences")
        changed_deletion = (om.get("deletionTimestamp"), om.get("finalizers")) != (
            nm.get("deletionTimestamp"),
            nm.get("finalizers"),
        )
        if not (changed_refs or changed_deletion):
            return
        self._enqueue(nm.get("uid"))
        if _waiting_for_dependents(new) and not _waiting_for_dependents(old):
            for _r, dep in self.dependents(str(nm.get("uid"))):
                self._enqueue(_meta(dep).get("uid"))
        if changed_refs:  # an owner that lost a dependent may now be done
            for ref in _refs(old):
                self._enqueue(ref.get("uid"))

    def _on_delete(self, obj: Obj) -> None:
        uid = str(_meta(obj).get("uid") or "")
        if not uid:
            return
        for _r, dep in self.dependents(uid):
            self._enqueue(_meta(dep).get("uid"))
        for ref in _refs(obj):  # an owner waiting in the foreground may be done now
            self._enqueue(ref.get("uid"))

    # ------------------------------------------------------------------ lifecycle

    async def start_informers(self) -> None:
        """Start watching (discovering the resources first) and, when discovering, keep
        following discovery every ``resync_period`` seconds."""
        if self.discovers:
            await self.sync_resources(within=INITIAL_SYNC_TIMEOUT)
            if self._resync_task is None and not self._stopped:
                self._resync_task = asyncio.create_task(
                    self._resync_loop(), name="gc-discovery-resync"
                )
            return
        for inf in self.informers.values():
            inf.start()
        await self._wait_synced(list(self.informers.values()), INITIAL_SYNC_TIMEOUT)

    async def stop_informers(self) -> None:
        self._stopped = True
        if self._resync_task is not None:
            self._resync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resync_task
            self._resync_task = None
        await asyncio.gather(*(inf.stop() for inf in self.informers.values()))
        self._graph_ready.set()  # release waiting workers; the queue is shutting down

    async def _wait_synced(self, informers: list[SharedInformer], within: float) -> None:
        results = await asyncio.gather(*(i.wait_synced(within) for i in informers))
        if not all(results):
            slow = [i.name for i, ok in zip(informers, results, strict=True) if not ok]
            log.warning(
                "garbage collector: caches not synced within %.0fs: %s", within, ", ".join(slow)
            )

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.resync_period)
            try:
                await self.sync_resources(within=self.resync_period)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("garbage collector: resyncing the watched resources failed")

    async def sync_resources(self, within: float | None = None) -> bool:
        """Follow discovery: start informers for new deletable resources, stop those of
        resources no longer served; True when the watched set changed.

        New informers' caches are waited for (up to ``within`` s, default one period)
        with the workers paused, as upstream's collector does while it resyncs.
        """
        async with self._sync_lock:
            if self._stopped:
                return False
            try:
                found = await deletable_resources(self.client)
                failed: set[str] = set()
            except GroupDiscoveryFailed as err:
                found, failed = err.resources, set(err.groups)
                log.warning("garbage collector: failed to discover some groups: %s", err.groups)
            except ClientError as err:
                log.warning("garbage collector: discovery failed: %s", err)
                return False
            wanted = {_gvr(r): r for r in found if (r.group, r.plural) not in IGNORED}
            current = {_gvr(r): r for r in self.informers}
            # groups that failed discovery keep what they had (upstream's partial sync)
            for key, r in current.items():
                if key not in wanted and _group_version(r) in failed:
                    wanted[key] = r
            gone = [current[k] for k in current.keys() - wanted.keys()]
            added = [wanted[k] for k in wanted.keys() - current.keys()]
            if not gone and not added:
                return False
            informers = dict(self.informers)
            for r in gone:
                log.info("garbage collector: %s no longer served; unwatched", _name(r))
                await informers.pop(r).stop()
            new: list[SharedInformer] = []
            for r in added:
                if self.informers:  # the first sync is the start, not news
                    log.info("garbage collector: watching %s", _name(r))
                inf = self._informer(r)
                informers[r] = inf
                new.append(inf)
            self.informers = informers
            self._graph_ready.clear()
            try:
                for inf in new:
                    inf.start()
                await self._wait_synced(new, within if within is not None else self.resync_period)
            finally:
                self._graph_ready.set()
            return True

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self, request: Request) -> Result | None:
        await self._graph_ready.wait()
        found = self.node(request.name)
        if found is None:
            return None
        res, obj = found
        if _deleting(obj):
            fins = _finalizers(obj)
            if ORPHAN in fins:
                await self._orphan_dependents(res, obj)
            elif FOREGROUND in fins:
                await self._process_deleting_dependents(res, obj)
            return None
        if _refs(obj):
            return await self._attempt_to_delete(res, obj)
        return None

    async def _owner_state(self, res: Resource, obj: Obj, ref: Obj) -> str:
        """``solid``, ``dangling`` (gone, or not a valid owner) or ``waiting``; an owner
        that exists but no informer of ours has shown yet, or whose kind discovery does
        not know, is ``unobserved`` (solid for now, but its deletion may come with no
        event: see :meth:`_attempt_to_delete`)."""
        ns = str(_meta(obj).get("namespace") or "")
        uid = str(ref.get("uid") or "")
        found = self.node(uid)
        owner: Obj | None
        if found is not None:
            ores, owner = found
        else:
            try:
                ores = await self.client.resource(
                    str(ref.get("apiVersion", "")), str(ref.get("kind", ""))
                )
            except ApiError as err:
                if is_not_found(err):
                    # a kind nobody serves (yet: a CRD's resource appears in discovery a
                    # moment after it is created): never delete on that ground, and look
                    # again with backoff, as upstream retries an owner it cannot resolve
                    log.info("%s: owner kind %s unknown", _meta(obj).get("name"), ref.get("kind"))
                    return "unobserved"
                raise
            owner = None
        if ores.namespaced and not res.namespaced:
            self._invalid_namespace(obj, ref)
            return "dangling"
        if found is not None:
            if ores.namespaced and _meta(owner or {}).get("namespace") != ns:
                self._invalid_namespace(obj, ref)
                return "dangling"
        else:
            try:
                owner = await self.client.get(
                    ores, str(ref.get("name", "")), ns if ores.namespaced else None
                )
            except ApiError as err:
                if is_not_found(err):
                    return "dangling"
                raise
            if _meta(owner).get("uid") != uid:
                return "dangling"
        assert owner is not None
        if _waiting_for_dependents(owner):
            return "waiting"
        return "solid" if found is not None else "unobserved"

    def _invalid_namespace(self, obj: Obj, ref: Obj) -> None:
        if self.recorder is None:
            return
        self.recorder.event(
            obj,
            WARNING,
            "OwnerRefInvalidNamespace",
            f"ownerRef {ref} does not resolve to a parent with matching namespace",
        )

    async def _attempt_to_delete(self, res: Resource, obj: Obj) -> Result | None:
        meta = _meta(obj)
        refs = _refs(obj)
        states = [await self._owner_state(res, obj, ref) for ref in refs]
        kept = ("solid", "unobserved")
        if any(st in kept for st in states):
            keep = [ref for ref, st in zip(refs, states, strict=True) if st in kept]
            if len(keep) != len(refs):
                await self._patch_refs(res, obj, keep)
            # an owner no informer has shown (its resource not watched yet: discovery is
            # followed every 30 s) sends no delete event when it goes, and one deleted
            # before its informer starts is never listed: look again with backoff, as
            # upstream retries an owner node its informers have not observed
            return Result(requeue=True) if "unobserved" in states else None
        uid = str(meta.get("uid"))
        if "waiting" in states and self.dependents(uid):
            # an owner waits in the foreground: unblock it, and go in the foreground too
            unblocked = [
                {**ref, "blockOwnerDeletion": False} if st == "waiting" else ref
                for ref, st in zip(refs, states, strict=True)
            ]
            if unblocked != refs:
                await self._patch_refs(res, obj, unblocked)
            await self._delete(res, obj, "Foreground")
            return None
        fins = _finalizers(obj)
        policy: Policy = (
            "Orphan" if ORPHAN in fins else "Foreground" if FOREGROUND in fins else "Background"
        )
        await self._delete(res, obj, policy)
        return None

    async def _process_deleting_dependents(self, res: Resource, owner: Obj) -> None:
        uid = str(_meta(owner).get("uid"))
        blocking = []
        for _r, dep in self.dependents(uid):
            if not _deleting(dep):
                self._enqueue(_meta(dep).get("uid"))
            if any(r.get("uid") == uid and r.get("blockOwnerDeletion") for r in _refs(dep)):
                blocking.append(dep)
        if not blocking:
            await self._remove_finalizer(res, owner, FOREGROUND)

    async def _orphan_dependents(self, res: Resource, owner: Obj) -> None:
        uid = str(_meta(owner).get("uid"))
        for dres, dep in self.dependents(uid):
            keep = [r for r in _refs(dep) if r.get("uid") != uid]
            await self._patch_refs(dres, dep, keep)
        await self._remove_finalizer(res, owner, ORPHAN)

    # ------------------------------------------------------------------ writes

    async def _patch_metadata(self, res: Resource, obj: Obj, change: Obj) -> None:
        """A merge patch of ``metadata``, conditional on the cached resourceVersion
        (a 409 raises, and the key is retried once the cache has caught up)."""
        meta = _meta(obj)
        patch: Obj = {"metadata": dict(change)}
        if meta.get("resourceVersion"):
            patch["metadata"]["resourceVersion"] = meta["resourceVersion"]
        try:
            await self.client.patch(
                res,
                str(meta.get("name")),
                patch,
                meta.get("namespace") if res.namespaced else None,
                patch_type="merge",
            )
        except ApiError as err:
            if is_not_found(err):
                return
            if is_conflict(err):
                log.debug("%s %s changed meanwhile; retrying", res.kind, meta.get("name"))
            raise

    async def _patch_refs(self, res: Resource, obj: Obj, refs: list[Obj]) -> None:
        await self._patch_metadata(res, obj, {"ownerReferences": refs or None})

    async def _remove_finalizer(self, res: Resource, obj: Obj, finalizer: str) -> None:
        fins = [f for f in _finalizers(obj) if f != finalizer]
        await self._patch_metadata(res, obj, {"finalizers": fins or None})

    async def _delete(self, res: Resource, obj: Obj, policy: Policy) -> None:
        meta = _meta(obj)
        log.info(
            "garbage collector: deleting %s %s/%s (%s)",
            res.kind,
            meta.get("namespace", ""),
            meta.get("name"),
            policy,
        )
        try:
            await self.client.delete(
                res,
                str(meta.get("name")),
                meta.get("namespace") if res.namespaced else None,
                propagation_policy=policy,
                preconditions={"uid": str(meta.get("uid"))},
            )
        except ApiError as err:
            if is_not_found(err) or is_conflict(err):
                return  # gone already, or a new object with the same name
            raise


class _GCController(Controller):
    """The collector's controller: also stops the collector's own informers."""

    def __init__(self, gc: GarbageCollector, manager: Manager) -> None:
        super().__init__("garbagecollector", gc, workers=5, metrics=manager.metrics)
        self.gc = gc

    async def stop(self) -> None:
        await super().stop()
        await self.gc.stop_informers()


def setup(manager: Manager, *, resync_period: float = RESYNC_PERIOD) -> GarbageCollector:
    """Add the garbage collector to ``manager``; ``resync_period``: how often it asks
    discovery for resources that appeared or went."""
    gc = GarbageCollector(manager.client, manager.recorder, resync_period=resync_period)
    controller = _GCController(gc, manager)
    gc.controller = controller
    manager.controllers.append(controller)
    manager.on_synced.append(gc.start_informers)
    return gc
