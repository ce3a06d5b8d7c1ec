"""The verbs on stored resources: create, get, list, update, patch, delete.

This is the generic registry store of upstream (``genericregistry.Store``) plus the bits
of per-resource strategy that users notice: what create resets (status), what an update
may touch (spec vs status subresource), when ``metadata.generation`` moves, how graceful
deletion and finalizers keep an object around, and that a no-op update writes nothing
and keeps the resourceVersion.

Objects are stored as JSON without ``resourceVersion``: the store's mod revision *is*
the resourceVersion, filled in on every read, so it can never disagree with the store.
Every mutation is one compare-and-swap write; nothing is ever half written.

This is also the storage boundary where versions meet: a resource served at several
versions keeps one storage (autoscaling/v1 HPAs are stored as v2, events.k8s.io Events as
core Events), so objects read are converted to the version of the request and objects
written to the storage version just before the write; everything above (patch, defaults,
validation, the response) sees the request's version, as upstream's does.

A read-modify-write (update, patch, apply, the status and scale subresources, a binding,
a delete) runs as upstream's GuaranteedUpdate (:meth:`ResourceStore.guaranteed_update`):
its first try starts from the watch cache's copy of the object, not a read of the store,
and writes with a compare-and-swap on that copy's mod revision. The cache may be behind
the store, so a try over its copy never decides anything on its own: a failed write, an
error (a resourceVersion precondition that does not match, a validation that fails) or a
write that would change nothing sends the request back to the store, and it is tried again
over the stored object. A stale copy therefore costs a second try, never a wrong answer.
A dry run, which writes nothing and so could not find out, reads the store.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from pyk8s.api import errors
from pyk8s.api.goorder import (
    go_ordered,
    set_resource_version,
    storage_form,
    with_resource_version,
)
from pyk8s.api.jsoncopy import copy_json
from pyk8s.api.registry import Resource
from pyk8s.api.uid import new_uid
from pyk8s.storage import AlreadyExists, Conflict, KeyValue, NotFound, Store

if TYPE_CHECKING:
    from pyk8s.apiserver.strategies import Strategy

JSON = dict[str, Any]
T = TypeVar("T")
#: a key's value as the watch cache holds it now: its JSON (resourceVersion filled in)
#: and its mod revision, or None when the cache holds no such key
Cached = Callable[[str], "tuple[bytes, int] | None"]

_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

#: metadata fields the server owns; a client's values are ignored on create and update
_SERVER_METADATA = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "selfLink",
)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


#: the current second and its RFC 3339 form (strftime is most of a timestamp's cost, and
#: a busy server stamps many writes within one second)
_second: tuple[int, str] = (0, "")


def timestamp(t: dt.datetime | None = None) -> str:
    global _second
    if t is not None:
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    second = int(time.time())
    if second != _second[0]:
        stamp = dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        _second = (second, stamp)
    return _second[1]


def encode_for_storage(obj: JSON) -> bytes:
    return orjson.dumps(storage_form(obj))


def from_kv(kv: KeyValue) -> JSON:
    return set_resource_version(orjson.loads(kv.value), str(kv.mod_revision))


def generate_name(prefix: str) -> str:
    return prefix + "".join(random.choices(_GENERATE_ALPHABET, k=5))


def _without(obj: JSON, *fields: str) -> JSON:
    return {k: v for k, v in obj.items() if k not in fields}


def _comparable(obj: JSON) -> JSON:
    meta = _without(obj.get("metadata") or {}, "resourceVersion")
    return {**obj, "metadata": meta}


@dataclass(frozen=True, slots=True)
class CachedValue(KeyValue):
    """A value as the watch cache last saw it, the first guess of a read-modify-write:
    it may be behind the store (its create revision is not known and is 0)."""


class StaleGuess(Exception):
    """A try over a :class:`CachedValue` would write nothing: the cache may be behind, so
    the caller tries again over the stored value (upstream refreshes the same way)."""


class Retry(Exception):
    """Raised by a try of :meth:`ResourceStore.guaranteed_update` whose write lost a race
    with another writer, when the request may be tried again over the new state."""


@dataclass
class DeleteOptions:
    grace_period: int | None = None
    propagation: str | None = None
    precondition_uid: str | None = None
    precondition_rv: str | None = None
    dry_run: bool = False

    @staticmethod
    def parse(body: JSON | None, query: dict[str, str]) -> DeleteOptions:
        body = body or {}
        opts = DeleteOptions()
        grace = query.get("gracePeriodSeconds", body.get("gracePeriodSeconds"))
        if grace is not None and grace != "":
            try:
                opts.grace_period = int(grace)
            except (TypeError, ValueError):
                raise errors.bad_request(f"invalid gracePeriodSeconds {grace!r}") from None
        opts.propagation = query.get("propagationPolicy") or body.get("propagationPolicy")
        orphan = query.get("orphanDependents", body.get("orphanDependents"))
        if opts.propagation is None and orphan is not None:
            opts.propagation = "Orphan" if str(orphan).lower() == "true" else "Background"
        if opts.propagation not in (None, "Orphan", "Background", "Foreground"):
            raise errors.invalid_object(
                "DeleteOptions",
                "",
                [
                    errors.not_supported(
                        "propagationPolicy",
                        opts.propagation,
                        ["Foreground", "Background", "Orphan", "nil"],
                    )
                ],
            )
        pre = body.get("preconditions") or {}
        opts.precondition_uid = pre.get("uid")
        opts.precondition_rv = pre.get("resourceVersion")
        dry = query.get("dryRun") or body.get("dryRun")
        opts.dry_run = (
            bool(dry) and dry != [] and "All" in (dry if isinstance(dry, list) else [dry])
        )
        return opts


class ResourceStore:
    """CRUD of one resource on the store, with upstream's generic semantics; what is
    specific to the resource comes from its strategy."""

    def __init__(
        self, store: Store, resource: Resource, strategy: Strategy, cached: Cached | None = None
    ) -> None:
        self.store = store
        self.resource = resource
        self.strategy = strategy
        #: the watch cache's copy of a key: a read-modify-write's first guess
        self.cached = cached

    # -------------------------------------------------------------- helpers

    def key(self, namespace: str, name: str) -> str:
        return self.resource.key(namespace or None, name)

    def not_found(self, name: str) -> errors.StatusError:
        r = self.resource
        return errors.not_found(r.group_resource, name, r.group, r.plural)

    def conflict(self, name: str) -> errors.StatusError:
        return errors.conflict(
            self.resource.group_resource, name, errors.OBJECT_MODIFIED, self.resource.group
        )

    async def to_request(self, obj: JSON) -> JSON:
        """A stored object as this resource's version serves it (itself if no conversion)."""
        api_version = obj.get("apiVersion")
        if (
            api_version is None or api_version == self.resource.api_version
        ) and not self.strategy.reads_need_view:
            return obj
        await self.strategy.prepare_conversion([obj], self.resource.api_version)
        return self.strategy.convert(obj, self.resource.api_version)

    async def to_storage(self, obj: JSON) -> JSON:
        """An object of this resource's version as it is stored (itself if no conversion)."""
        target = self.resource.storage_api_version
        api_version = obj.get("apiVersion")
        if api_version is None or api_version == target:
            return obj
        await self.strategy.prepare_conversion([obj], target, for_write=True)
        return self.strategy.convert(obj, target)

    async def _read_stored(self, namespace: str, name: str) -> KeyValue:
        try:
            return await self.store.get(self.key(namespace, name))
        except NotFound:
            raise self.not_found(name) from None

    async def read(self, namespace: str, name: str) -> tuple[JSON, KeyValue]:
        """The object in the request's version, and the stored value it was read from."""
        kv = await self._read_stored(namespace, name)
        return await self.to_request(from_kv(kv)), kv

    async def get(self, namespace: str, name: str) -> JSON:
        return (await self.read(namespace, name))[0]

    async def read_for_update(
        self, namespace: str, name: str, *, guess: bool = True
    ) -> tuple[JSON, KeyValue]:
        """What a read-modify-write starts from: with ``guess``, the watch cache's copy
        when it holds the key (a private copy, decoded from its JSON; its value is a
        :class:`CachedValue`), else the stored object as :meth:`read` reads it. A value
        with a time to live (an Event) is always read from the store, which knows it."""
        kv = self._guess(namespace, name) if guess else None
        if kv is not None:
            return await self.to_request(from_kv(kv)), kv
        return await self.read(namespace, name)

    def _guess(self, namespace: str, name: str) -> CachedValue | None:
        """The watch cache's copy of the object (see :meth:`read_for_update`)."""
        if self.cached is None or self.strategy.ttl_seconds:
            return None
        key = self.key(namespace, name)
        found = self.cached(key)
        return None if found is None else CachedValue(key, found[0], 0, found[1])

    async def guaranteed_update(
        self,
        namespace: str,
        name: str,
        attempt: Callable[[JSON, KeyValue, bool], Awaitable[T]],
        *,
        tries: int,
        guess: bool = True,
        missing: Callable[[], Awaitable[T]] | None = None,
    ) -> T:
        """Upstream's GuaranteedUpdate: ``attempt(current, kv, last)`` reads ``current``
        (stored at ``kv``), writes over it by compare-and-swap and returns the answer;
        it raises :class:`Retry` when another writer came in between and the request may
        be tried over the new state (``last``: no try follows, so the attempt may consume
        what it was given). Up to ``tries`` tries over the stored object, then 409.

        With ``guess`` the first try starts from the watch cache's copy; whatever goes
        wrong there (:class:`Retry`, any API error, :class:`StaleGuess`) is not answered
        but tried again over the stored object, which is read from the store. ``missing``
        answers when the store has no such object (else 404)."""
        left = tries
        while True:
            try:
                current, kv = await self.read_for_update(namespace, name, guess=guess)
            except errors.StatusError as err:
                if missing is None or err.code != 404:
                    raise
                return await missing()
            if isinstance(kv, CachedValue):
                guess = False
                try:
                    return await attempt(current, kv, False)
                except (Retry, StaleGuess, errors.StatusError):
                    continue  # maybe a stale guess: decide over the stored object
            try:
                return await attempt(current, kv, left == 1)
            except Retry:
                left -= 1
                if not left:
                    raise self.conflict(name) from None

    # -------------------------------------------------------------- create

    def prepare_for_create(self, obj: JSON) -> None:
        """Server-owned metadata, then the strategy's PrepareForCreate."""
        r = self.resource
        meta = obj.setdefault("metadata", {})
        for f in _SERVER_METADATA:
            meta.pop(f, None)
        meta.pop("resourceVersion", None)
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = timestamp()
        obj["apiVersion"] = r.api_version
        obj["kind"] = r.kind
        self.strategy.prepare_for_create(obj)

    async def create(self, obj: JSON, *, dry_run: bool = False) -> JSON:
        """Write a prepared, validated object; 409 AlreadyExists if the name is taken.

        Returns what was stored, in the request's version (a converted object comes back
        as upstream's does: the stored form, converted back).
        """
        obj = go_ordered(obj)  # stored as kube-apiserver writes it: reads pay nothing
        meta = obj["metadata"]
        name, namespace = meta["name"], meta.get("namespace", "")
        stored = await self.to_storage(obj)
        if dry_run:
            try:
                await self.store.get(self.key(namespace, name))
            except NotFound:
                return obj if stored is obj else await self.to_request(stored)
            raise errors.already_exists(
                self.resource.group_resource, name, self.resource.group, self.resource.plural
            )
        try:
            kv = await self.store.create(
                self.key(namespace, name),
                encode_for_storage(stored),
                ttl=self.strategy.ttl_seconds,
            )
        except AlreadyExists:
            raise errors.already_exists(
                self.resource.group_resource, name, self.resource.group, self.resource.plural
            ) from None
        return await self.to_request(with_resource_version(stored, str(kv.mod_revision)))

    # -------------------------------------------------------------- update

    def prepare_for_update(self, new: JSON, old: JSON, subresource: str) -> JSON:
        """Carry over what this kind of update may not change; returns the object to write."""
        r = self.resource
        new_meta = new.setdefault("metadata", {})
        old_meta = old.get("metadata", {})
        for f in _SERVER_METADATA:
            if f in old_meta:
                new_meta[f] = old_meta[f]
            else:
                new_meta.pop(f, None)
        new["apiVersion"] = r.api_version
        new["kind"] = r.kind
        if subresource == "status":
            # only status moves; everything else stays as stored
            status = new.get("status")
            hints = new_meta.get("annotations")
            new = copy_json(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
            if r.converts:
                # the conversion reads the client's annotations (a v1 HPA's v2-only status
                # travels there), as upstream converts before its status strategy runs;
                # write_update keeps the stored metadata
                if hints is None:
                    new["metadata"].pop("annotations", None)
                else:
                    new["metadata"]["annotations"] = hints
            return new
        if subresource:
            return self.strategy.prepare_for_subresource_update(new, old, subresource)
        self.strategy.prepare_for_update(new, old)
        return new

    async def write_update(
        self,
        new: JSON,
        old: JSON,
        kv: KeyValue,
        *,
        dry_run: bool = False,
        subresource: str | None = None,
    ) -> tuple[JSON, bool]:
        """Write ``new`` over ``old`` (read at ``kv``); no-op updates write nothing.
        Returns what was written and whether that deleted the object. A ``kv`` read
        through an old encryption key (``kv.stale``) is written even when unchanged.

        An object that is being deleted and has just lost its last finalizer is deleted
        (unless its strategy says it still waits for its grace period: a running pod).
        ``subresource`` ("" or "status", when the caller is an update of that kind) lets a
        converted update keep what the request's version cannot express: the stored
        status on a main-resource update, everything but status on a status update.
        """
        name = new["metadata"]["name"]
        # a value read through an old encryption key is rewritten even when unchanged
        if _comparable(new) == _comparable(old) and not kv.stale:
            return self._unchanged(old, kv), False
        stored = await self.to_storage(new)
        if stored is not new:
            stored_old = await self.to_storage(from_kv(kv))
            stored = self._keep_stored(stored, stored_old, subresource)
            if _comparable(stored) == _comparable(stored_old) and not kv.stale:
                return self._unchanged(old, kv), False
        meta = stored["metadata"]
        if (
            meta.get("deletionTimestamp")
            and not self._holding_finalizers(stored)
            and not self.strategy.waits_for_grace(stored)
        ):
            if dry_run:
                return new, True
            try:
                await self.store.delete(kv.key, expected_revision=kv.mod_revision)
            except (Conflict, NotFound):
                raise self.conflict(name) from None
            return new, True
        if dry_run:
            return (new if stored is new else await self.to_request(stored)), False
        stored = go_ordered(stored)  # a write may have added keys anywhere (spec.nodeName)
        try:
            out = await self.store.update(
                kv.key, encode_for_storage(stored), expected_revision=kv.mod_revision, ttl=kv.ttl
            )
        except Conflict:
            raise self.conflict(name) from None
        except NotFound:
            raise self.not_found(name) from None
        result = with_resource_version(stored, str(out.mod_revision))
        return await self.to_request(result), False

    @staticmethod
    def _unchanged(old: JSON, kv: KeyValue) -> JSON:
        """``old``, answered for an update that changes nothing, when it was read from the
        store; a cached guess is not known to be current (see :class:`StaleGuess`)."""
        if isinstance(kv, CachedValue):
            raise StaleGuess(kv.key)
        return old

    def _keep_stored(self, new: JSON, old: JSON, subresource: str | None) -> JSON:
        """The status strategy once more, on storage-version objects (see write_update)."""
        if subresource is None or "status" not in self.resource.subresources:
            return new
        if subresource == "status":
            out = copy_json(old)
            if "status" in new:
                out["status"] = new["status"]
            else:
                out.pop("status", None)
            return out
        out = dict(new)
        if "status" in old:
            out["status"] = copy_json(old["status"])
        else:
            out.pop("status", None)
        return out

    # -------------------------------------------------------------- delete

    async def delete(self, namespace: str, name: str, opts: DeleteOptions) -> tuple[JSON, bool]:
        """Delete or begin deleting; returns (object, deleted_now).

        The first try starts from the watch cache's copy (not for a dry run); a try over
        it that fails a precondition, loses the compare-and-swap or would write nothing
        is tried again over the stored object (see :meth:`guaranteed_update`)."""
        guess = not opts.dry_run
        for _ in range(10):
            # marked and written in the storage version; answered in the request's
            guessed = self._guess(namespace, name) if guess else None
            guess = False
            kv = guessed or await self._read_stored(namespace, name)
            obj = from_kv(kv)
            meta = obj["metadata"]
            if guessed and (
                (opts.precondition_uid and opts.precondition_uid != meta.get("uid"))
                or (opts.precondition_rv and opts.precondition_rv != meta.get("resourceVersion"))
            ):
                continue  # the cache may be behind: check the stored object
            if opts.precondition_uid and opts.precondition_uid != meta.get("uid"):
                raise errors.conflict(
                    self.resource.group_resource,
                    name,
                    f"Precondition failed: UID in precondition: {opts.precondition_uid}, "
                    f"UID in object meta: {meta.get('uid')}",
                    self.resource.group,
                )
            if opts.precondition_rv and opts.precondition_rv != meta.get("resourceVersion"):
                raise errors.conflict(
                    self.resource.group_resource,
                    name,
                    f"Precondition failed: ResourceVersion in precondition: "
                    f"{opts.precondition_rv}, ResourceVersion in object meta: "
                    f"{meta.get('resourceVersion')}",
                    self.resource.group,
                )
            pending = self._pending_deletion(obj, opts)
            if pending is None:
                if opts.dry_run:
                    return await self.to_request(obj), True
                try:
                    await self.store.delete(kv.key, expected_revision=kv.mod_revision)
                except Conflict:
                    continue
                except NotFound:
                    if guessed:
                        continue
                    raise self.not_found(name) from None
                return await self.to_request(obj), True
            if opts.dry_run or _comparable(pending) == _comparable(obj):
                if guessed:
                    continue
                return await self.to_request(pending), False
            pending = go_ordered(pending)  # deletionTimestamp in its place
            try:
                out = await self.store.update(
                    kv.key, encode_for_storage(pending), expected_revision=kv.mod_revision
                )
            except Conflict:
                continue
            except NotFound:
                if guessed:
                    continue
                raise self.not_found(name) from None
            pending["metadata"]["resourceVersion"] = str(out.mod_revision)
            return await self.to_request(pending), False
        raise self.conflict(name)

    def _holding_finalizers(self, obj: JSON, *, metadata: bool = True) -> bool:
        """Whether finalizers keep ``obj`` from being removed: metadata.finalizers, and
        those the strategy knows (a namespace's spec.finalizers)."""
        if metadata and (obj.get("metadata") or {}).get("finalizers"):
            return True
        return self.strategy.spec_finalizers(obj)

    def _pending_deletion(self, obj: JSON, opts: DeleteOptions) -> JSON | None:
        """The object marked for deletion, or None when it can go right away."""
        strategy = self.strategy
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if (
            opts.propagation == "Orphan"
            and "orphan" not in finalizers
            and strategy.orphans_dependents
        ):
            finalizers.append("orphan")
        elif opts.propagation == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        for f in strategy.deletion_finalizers(obj):
            if f not in finalizers:
                finalizers.append(f)
        grace = strategy.deletion_grace(obj, opts.grace_period)
        if not finalizers and grace <= 0 and not self._holding_finalizers(obj, metadata=False):
            return None
        out = copy_json(obj)
        m = out["metadata"]
        m["finalizers"] = finalizers or m.get("finalizers")
        if not m["finalizers"]:
            m.pop("finalizers")
        if not m.get("deletionTimestamp"):
            m["deletionTimestamp"] = timestamp(now() + dt.timedelta(seconds=max(grace, 0)))
            m["deletionGracePeriodSeconds"] = max(grace, 0)
        elif grace < int(m.get("deletionGracePeriodSeconds") or 0):
            # a shorter grace period may replace a longer one
            m["deletionTimestamp"] = timestamp(now() + dt.timedelta(seconds=max(grace, 0)))
            m["deletionGracePeriodSeconds"] = max(grace, 0)
        strategy.begin_deletion(out)
        return out


def job_selector(job: JSON) -> None:
    """Upstream's Job strategy: unless ``manualSelector``, the Job selects its pods by its
    own uid, and the pod template carries the matching labels."""
    spec = job.setdefault("spec", {})
    if spec.get("manualSelector"):
        return
    uid = job["metadata"]["uid"]
    name = job["metadata"].get("name", "")
    labels = {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        "job-name": name,
    }
    spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    tmeta = spec.setdefault("template", {}).setdefault("metadata", {})
    tmeta["labels"] = {**(tmeta.get("labels") or {}), **labels}


def deleted_status(resource: Resource, obj: JSON) -> JSON:
    """The Status a DELETE answers with for resources that do not return the object."""
    meta = obj.get("metadata", {})
    details: JSON = {"name": meta.get("name", ""), "kind": resource.plural}
    if resource.group:
        details["group"] = resource.group
    if meta.get("uid"):
        details["uid"] = meta["uid"]
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


def generate_name_if_needed(obj: JSON) -> None:
    meta = obj.setdefault("metadata", {})
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = generate_name(meta["generateName"])
