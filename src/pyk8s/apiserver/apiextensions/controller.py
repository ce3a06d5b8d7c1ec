"""The controllers inside the API server that turn CRDs into served resources.

Upstream's apiextensions-apiserver runs several small controllers next to its handlers;
here they are one level-based loop over CRD names, fed by the watch cache:

* naming: the CRD's names must not clash with another CRD's accepted names in its group
  (``NamesAccepted``, with upstream's conflict reasons); accepted names go to
  ``status.acceptedNames``;
* establishing: once the names are accepted the resource is served (``Established``) —
  each served version is added to the server's registry with a
  :class:`~.strategy.CustomResourceStrategy`, so discovery, OpenAPI, routing, the garbage
  collector and the namespace controller see it; versions no longer served are removed;
* finalizing: a deleted CRD (``Terminating``) first deletes every instance, then drops its
  ``customresourcecleanup.apiextensions.k8s.io`` finalizer, and the resource goes away.

Every status write goes through the generic update path as the API server itself.
"""

from __future__ import annotations

import copy
import logging
import re
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import orjson

from pyk8s.api import errors
from pyk8s.api.registry import ALL_VERBS, Resource
from pyk8s.apiserver.apiextensions.strategy import (
    CLEANUP_FINALIZER,
    CustomResourceDefinitionStrategy,
    CustomResourceStrategy,
    condition,
    storage_version,
)
from pyk8s.apiserver.cacheloop import CacheController
from pyk8s.apiserver.rest import DeleteOptions, timestamp
from pyk8s.apiserver.serviceresolver import ServiceResolver
from pyk8s.apiserver.webhook import WebhookClient

if TYPE_CHECKING:
    from pyk8s.apiserver.handlers import ResourceHandlers

log = logging.getLogger(__name__)

JSON = dict[str, Any]

GROUP = "apiextensions.k8s.io"
#: how long to wait before looking again at a CRD whose instances are still going
CLEANUP_RETRY = 1.0
#: how long to wait after a failed sync
ERROR_RETRY = 2.0

_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Upstream's kube-aware version order: GA by number, then beta, then alpha, then
    anything else alphabetically (sort ascending: the preferred version comes first)."""
    m = _VERSION.match(version)
    if m is None:
        return (3, 0, 0, version)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -major, -minor, version)


def _set_condition(status: JSON, type_: str, state: str, reason: str, message: str) -> None:
    conditions: list[JSON] = list(status.get("conditions") or [])
    for c in conditions:
        if c.get("type") == type_:
            if (c.get("status"), c.get("reason"), c.get("message")) != (state, reason, message):
                if c.get("status") != state:
                    c["lastTransitionTime"] = timestamp()
                c.update(status=state, reason=reason, message=message)
            break
    else:
        conditions.append(
            {
                "type": type_,
                "status": state,
                "lastTransitionTime": timestamp(),
                "reason": reason,
                "message": message,
            }
        )
    status["conditions"] = conditions


def _names(crd: JSON) -> JSON:
    return dict((crd.get("spec") or {}).get("names") or {})


class CRDController(CacheController):
    """Serves what the stored CRDs define (see the module docstring)."""

    kind = "CustomResourceDefinition"
    retry_after = ERROR_RETRY

    def __init__(self, handlers: ResourceHandlers) -> None:
        super().__init__(handlers)
        crds = handlers.registry.get(GROUP, "v1", "customresourcedefinitions")
        assert crds is not None
        self.resource = crds
        handlers.install(crds, CustomResourceDefinitionStrategy(crds))
        #: CRD name -> the resources it serves now
        self.served: dict[str, list[Resource]] = {}
        #: conversion webhooks reach services through their endpoints
        self.webhooks = WebhookClient(ServiceResolver(handlers.reader))
        self._converted: dict[str, OrderedDict[bytes, JSON]] = {}
        self._fingerprints: dict[str, bytes] = {}

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Serve every stored CRD (before the server reports ready), then follow changes."""
        prefix = self.resource.key_prefix()
        for entry in self.h.cache.list(prefix):
            await self.sync_quietly(entry.obj["metadata"]["name"])
        self.run(self.follow(prefix, self.enqueue_object, self._enqueue_served), self.work())

    async def stop(self) -> None:
        await super().stop()
        await self.webhooks.close()

    def _enqueue_served(self) -> None:
        """After the cache restarted: CRDs served but gone from the list are removed."""
        for name in list(self.served):
            self.enqueue(name)

    # ------------------------------------------------------------------ one CRD

    async def sync(self, name: str) -> None:
        """Bring what is served and the CRD's status in line with the stored CRD."""
        try:
            crd, kv = await self.h.rest(self.resource).read("", name)
        except errors.StatusError as err:
            if err.code != 404:
                raise
            self._uninstall(name)
            return
        status = copy.deepcopy(crd.get("status") or {})
        accepted = self._accept_names(crd, status)
        terminating = bool(crd["metadata"].get("deletionTimestamp"))
        if accepted:
            _set_condition(
                status,
                "Established",
                "True",
                "InitialNamesAccepted",
                "the initial names have been accepted",
            )
        elif condition(crd, "Established") is None:
            _set_condition(
                status, "Established", "False", "NotAccepted", "not all names are accepted"
            )
        established = condition({"status": status}, "Established")
        if established is not None and established.get("status") == "True":
            # once established a CRD stays served under its accepted names, even when a
            # later change of its names is refused
            self._install(crd, status)
        remaining = 0
        if terminating:
            remaining = await self._delete_instances(name, status)
        if status != (crd.get("status") or {}):
            new = {**crd, "status": status}
            try:
                crd = await self.h.update_object(self.resource, new, crd, kv, "status")
            except errors.StatusError as err:
                if err.reason != "Conflict":
                    raise
                self.enqueue(name)
                return
        if terminating:
            if remaining:
                self.later(name, CLEANUP_RETRY)
            else:
                await self._finalize(name)

    def _accept_names(self, crd: JSON, status: JSON) -> bool:
        """NamesAccepted: the names clash with no other CRD's accepted names in the group."""
        spec = crd.get("spec") or {}
        group = spec.get("group", "")
        names = _names(crd)
        mine = crd["metadata"]["name"]
        taken: dict[str, set[str]] = {"plural": set(), "singular": set(), "kind": set()}
        taken_list_kinds: set[str] = set()
        taken_short: set[str] = set()
        for entry in self.h.cache.list(self.resource.key_prefix()):
            other = entry.obj
            if other["metadata"]["name"] == mine or (other.get("spec") or {}).get("group") != group:
                continue
            got = (other.get("status") or {}).get("acceptedNames") or {}
            for key in taken:
                if got.get(key):
                    taken[key].add(got[key])
            if got.get("listKind"):
                taken_list_kinds.add(got["listKind"])
            taken_short.update(got.get("shortNames") or [])
        problem: tuple[str, str] | None = None
        plural, singular, kind = names.get("plural"), names.get("singular"), names.get("kind")
        if plural in taken["plural"] or plural in taken["singular"]:
            problem = ("PluralConflict", f'"{plural}" is already in use')
        elif singular in taken["plural"] or singular in taken["singular"]:
            problem = ("SingularConflict", f'"{singular}" is already in use')
        elif kind in taken["kind"] or kind in taken_list_kinds:
            problem = ("KindConflict", f'"{kind}" is already in use')
        elif names.get("listKind") in taken["kind"] | taken_list_kinds:
            problem = ("ListKindConflict", f'"{names.get("listKind")}" is already in use')
        else:
            for short in names.get("shortNames") or []:
                if short in taken_short or short in taken["plural"] or short in taken["singular"]:
                    problem = ("ShortNamesConflict", f'"{short}" is already in use')
                    break
        if problem is not None:
            _set_condition(status, "NamesAccepted", "False", *problem)
            return False
        status["acceptedNames"] = names
        _set_condition(status, "NamesAccepted", "True", "NoConflicts", "no conflicts found")
        return True

    # ------------------------------------------------------------------ serving

    def resources_of(self, crd: JSON, status: JSON) -> list[tuple[Resource, str]]:
        """The resources a CRD serves (preferred version first) with their versions."""
        spec = crd.get("spec") or {}
        names = status.get("acceptedNames") or _names(crd)
        stored_at = storage_version(crd)
        out = []
        versions = sorted(
            (v for v in spec.get("versions") or [] if v.get("served")),
            key=lambda v: version_priority(str(v.get("name"))),
        )
        for v in versions:
            version = str(v["name"])
            subs = v.get("subresources") or {}
            out.append(
                (
                    Resource(
                        group=str(spec.get("group", "")),
                        version=version,
                        kind=str(names.get("kind", "")),
                        plural=str(names.get("plural", "")),
                        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                        short_names=tuple(names.get("shortNames") or ()),
                        categories=tuple(names.get("categories") or ()),
                        subresources=tuple(
                            s for s in ("status", "scale") if isinstance(subs.get(s), dict)
                        ),
                        verbs=ALL_VERBS,
                        storage_version="" if version == stored_at else stored_at,
                    ),
                    version,
                )
            )
        return out

    def _install(self, crd: JSON, status: JSON) -> None:
        name = crd["metadata"]["name"]
        served = {**crd, "status": status}
        fingerprint = orjson.dumps(
            [
                crd.get("spec"),
                status.get("acceptedNames"),
                bool(crd["metadata"].get("deletionTimestamp")),
            ],
            option=orjson.OPT_SORT_KEYS,
        )
        if self._fingerprints.get(name) == fingerprint:
            return  # nothing a strategy depends on changed: keep serving as is
        self._fingerprints[name] = fingerprint
        wanted = self.resources_of(served, status)
        keep = {(r.group, r.version, r.plural) for r, _ in wanted}
        for old in self.served.get(name, []):
            if (old.group, old.version, old.plural) not in keep:
                self.h.uninstall(old)
        converted = self._converted.setdefault(name, OrderedDict())
        converted.clear()  # the CRD changed: its webhook may answer differently now
        for r, version in wanted:
            self.h.install(r, CustomResourceStrategy(r, served, version, self.webhooks, converted))
        self.served[name] = [r for r, _ in wanted]

    def _uninstall(self, name: str) -> None:
        self._converted.pop(name, None)
        self._fingerprints.pop(name, None)
        for r in self.served.pop(name, []):
            self.h.uninstall(r)

    # ------------------------------------------------------------------ deletion

    async def _delete_instances(self, name: str, status: JSON) -> int:
        """Delete every instance of a terminating CRD; how many are left."""
        served = self.served.get(name) or []
        if not served:
            _set_condition(
                status, "Terminating", "True", "InstanceDeletionCompleted", "removed all instances"
            )
            return 0
        r = served[0]
        entries = self.h.cache.list(r.key_prefix())
        failed = []
        for entry in entries:
            meta = entry.obj["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            try:
                await self.h.delete_object(
                    r, meta.get("namespace", ""), meta["name"], DeleteOptions()
                )
            except errors.StatusError as err:
                if err.code != 404:
                    failed.append(f"{meta['name']}: {err}")
        remaining = len(self.h.cache.list(r.key_prefix()))
        if failed:
            _set_condition(
                status,
                "Terminating",
                "True",
                "InstanceDeletionFailed",
                f"could not delete instances: {', '.join(failed)}",
            )
        elif remaining:
            _set_condition(
                status,
                "Terminating",
                "True",
                "InstanceDeletionInProgress",
                "CustomResource deletion is in progress",
            )
        else:
            _set_condition(
                status, "Terminating", "True", "InstanceDeletionCompleted", "removed all instances"
            )
        return remaining

    async def _finalize(self, name: str) -> None:
        rest = self.h.rest(self.resource)
        crd, kv = await rest.read("", name)
        finalizers = [f for f in crd["metadata"].get("finalizers") or [] if f != CLEANUP_FINALIZER]
        new = copy.deepcopy(crd)
        if finalizers:
            new["metadata"]["finalizers"] = finalizers
        else:
            new["metadata"].pop("finalizers", None)
        try:
            await self.h.update_object(self.resource, new, crd, kv, "")
        except errors.StatusError as err:
            if err.code not in (404, 409):
                raise
            self.enqueue(name)
