"""Discovery: which resources the API server serves *now*, read from the server itself.

Components that act on every resource (the garbage collector, namespace deletion, quota
counting) cannot walk a list compiled into the program: custom resources come and go
while they run. Upstream's controllers ask the server (client-go's ``discovery``
package), and so do these:

* :func:`server_preferred_resources` — every resource once, at its group's preferred
  version (client-go's ``ServerPreferredResources``): a resource served at several
  versions holds one set of objects, so walking every version would act on each object
  several times. A resource missing from the preferred version is taken from the first
  listed version that serves it, as upstream does;
* :func:`supports_verbs` — keep the resources that support all the given verbs
  (``discovery.FilteredBy(SupportsAllVerbs{...})``);
* :class:`CachedDiscovery` — the same, remembered for a while, and looked up by
  group/resource (client-go's memory-cached discovery client).

The server is asked for aggregated discovery first (``GET /api`` and ``/apis`` with
``Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList``: two
requests for everything); a server that answers with the legacy documents (APIVersions,
APIGroupList) is read the legacy way, one ``APIResourceList`` per group version.

Results are :class:`~pyk8s.api.registry.Resource` values. A resource the built-in
registry knows (same group, version and plural) is returned as the registry's entry, so
its storage details (``storage_name``/``storage_version``/``storage_group``, hence
``key_prefix``) stay right; any other (a custom resource) becomes a plain ``Resource``
built from what discovery says.

When some group versions cannot be discovered (a stale aggregated entry, a group version
that fails to answer), :class:`GroupDiscoveryFailed` is raised carrying what *could* be
discovered in ``resources`` and the failures in ``groups``, upstream's
``ErrGroupDiscoveryFailed``: callers usually go on with the partial list and report the
failure (the namespace controller's ``NamespaceDeletionDiscoveryFailure`` condition).
A failure of the top-level requests (``/api``, ``/apis``) raises the client's own
:class:`~pyk8s.client.errors.ApiError` or :class:`~pyk8s.client.errors.TransportError`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyk8s.api.registry import REGISTRY, Registry, Resource
from pyk8s.client.errors import ApiError, ClientError
from pyk8s.client.rest import Client

__all__ = [
    "AGGREGATED_ACCEPT",
    "CachedDiscovery",
    "GroupDiscoveryFailed",
    "parse_aggregated",
    "server_preferred_resources",
    "supports_verbs",
]

JSON = dict[str, Any]

#: what client-go 1.32 sends for ``/api`` and ``/apis``: aggregated v2, v2beta1, then legacy
AGGREGATED_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
    "application/json"
)
_AGGREGATED_KIND = "APIGroupDiscoveryList"


class GroupDiscoveryFailed(ClientError):
    """Some group versions could not be discovered (upstream's ``ErrGroupDiscoveryFailed``).

    ``groups`` maps each failed group version (``example.com/v1``; ``v1`` for the core
    group) to its error text; ``resources`` holds what was discovered anyway.
    """

    def __init__(self, groups: Mapping[str, str], resources: list[Resource]) -> None:
        self.groups = dict(groups)
        self.resources = resources
        parts = sorted(f"{gv}: {err}" for gv, err in self.groups.items())
        super().__init__(f"unable to retrieve the complete list of server APIs: {', '.join(parts)}")

    @property
    def message(self) -> str:
        return str(self)


@dataclass
class _Group:
    """One API group as discovery describes it."""

    name: str
    #: versions in the server's order of preference
    versions: list[str] = field(default_factory=list)
    preferred: str = ""
    #: version -> its resources (subresources folded into their parents)
    resources: dict[str, list[Resource]] = field(default_factory=dict)


def _group_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def _resource(
    known: Registry,
    group: str,
    version: str,
    plural: str,
    *,
    kind: str,
    namespaced: bool,
    verbs: Iterable[Any],
    short_names: Iterable[Any],
    categories: Iterable[Any],
    subresources: Iterable[str],
) -> Resource:
    entry = known.get(group, version, plural)
    if entry is not None:
        return entry
    return Resource(
        group,
        version,
        kind,
        plural,
        namespaced,
        tuple(str(s) for s in short_names),
        tuple(str(c) for c in categories),
        tuple(subresources),
        tuple(str(v) for v in verbs),
    )


def parse_aggregated(doc: JSON, known: Registry = REGISTRY) -> tuple[list[_Group], dict[str, str]]:
    """An ``APIGroupDiscoveryList`` → its groups, and the group versions marked stale."""
    groups: list[_Group] = []
    failed: dict[str, str] = {}
    for item in doc.get("items") or ():
        name = str((item.get("metadata") or {}).get("name") or "")
        g = _Group(name)
        for v in item.get("versions") or ():
            version = str(v.get("version") or "")
            if not version:
                continue
            g.versions.append(version)
            gv = _group_version(name, version)
            if v.get("freshness") == "Stale":
                failed[gv] = f"stale GroupVersion discovery: {gv}"
                continue
            out: list[Resource] = []
            for r in v.get("resources") or ():
                plural = str(r.get("resource") or "")
                if not plural:
                    continue
                out.append(
                    _resource(
                        known,
                        name,
                        version,
                        plural,
                        kind=str((r.get("responseKind") or {}).get("kind") or ""),
                        namespaced=r.get("scope") == "Namespaced",
                        verbs=r.get("verbs") or (),
                        short_names=r.get("shortNames") or (),
                        categories=r.get("categories") or (),
                        subresources=[
                            str(s.get("subresource"))
                            for s in r.get("subresources") or ()
                            if s.get("subresource")
                        ],
                    )
                )
            g.resources[version] = out
        if g.versions:
            g.preferred = g.versions[0]  # aggregated discovery lists the preferred first
            groups.append(g)
    return groups, failed


def parse_resource_list(
    doc: JSON, group: str, version: str, known: Registry = REGISTRY
) -> list[Resource]:
    """A legacy ``APIResourceList`` (``/api/v1``, ``/apis/<group>/<version>``) → resources."""
    entries = [e for e in doc.get("resources") or () if e.get("name")]
    subs: dict[str, list[str]] = {}
    for e in entries:
        parent, slash, sub = str(e["name"]).partition("/")
        if slash:
            subs.setdefault(parent, []).append(sub)
    out: list[Resource] = []
    for e in entries:
        plural = str(e["name"])
        if "/" in plural:
            continue
        out.append(
            _resource(
                known,
                group,
                version,
                plural,
                kind=str(e.get("kind") or ""),
                namespaced=bool(e.get("namespaced")),
                verbs=e.get("verbs") or (),
                short_names=e.get("shortNames") or (),
                categories=e.get("categories") or (),
                subresources=subs.get(plural, ()),
            )
        )
    return out


async def _get(client: Client, path: str, accept: str = "application/json") -> JSON:
    doc: JSON = await client.request("GET", path, headers={"Accept": accept})
    return doc


async def _legacy(
    client: Client, core: JSON, named: JSON, known: Registry
) -> tuple[list[_Group], dict[str, str]]:
    """The legacy documents: the group list, then one resource list per group version."""
    groups: list[_Group] = []
    core_versions = [str(v) for v in core.get("versions") or ()]
    if core_versions:
        groups.append(_Group("", core_versions, core_versions[0]))
    for item in named.get("groups") or ():
        versions = [str(v.get("version")) for v in item.get("versions") or () if v.get("version")]
        if not versions:
            continue
        preferred = str((item.get("preferredVersion") or {}).get("version") or versions[0])
        groups.append(_Group(str(item.get("name") or ""), versions, preferred))

    failed: dict[str, str] = {}

    async def fetch(g: _Group, version: str) -> None:
        path = f"/apis/{g.name}/{version}" if g.name else f"/api/{version}"
        try:
            doc = await _get(client, path)
        except ClientError as err:
            msg = err.message if isinstance(err, ApiError) else str(err)
            failed[_group_version(g.name, version)] = msg
            return
        g.resources[version] = parse_resource_list(doc, g.name, version, known)

    await asyncio.gather(*(fetch(g, v) for g in groups for v in g.versions))
    return groups, failed


async def _groups(client: Client, known: Registry) -> tuple[list[_Group], dict[str, str]]:
    core, named = await asyncio.gather(
        _get(client, "/api", AGGREGATED_ACCEPT), _get(client, "/apis", AGGREGATED_ACCEPT)
    )
    if core.get("kind") == _AGGREGATED_KIND and named.get("kind") == _AGGREGATED_KIND:
        core_groups, core_failed = parse_aggregated(core, known)
        named_groups, named_failed = parse_aggregated(named, known)
        return core_groups + named_groups, {**core_failed, **named_failed}
    # a server without aggregated discovery (or with it for one half only): legacy
    if core.get("kind") == _AGGREGATED_KIND:
        core = await _get(client, "/api")
    if named.get("kind") == _AGGREGATED_KIND:
        named = await _get(client, "/apis")
    return await _legacy(client, core, named, known)


def _preferred(groups: list[_Group]) -> list[Resource]:
    """Each group/resource once: at the preferred version, else the first version serving it."""
    out: list[Resource] = []
    for g in groups:
        chosen: dict[str, Resource] = {}
        for version in g.versions:
            for r in g.resources.get(version, ()):
                if r.plural in chosen and version != g.preferred:
                    continue
                chosen[r.plural] = r
        out.extend(chosen.values())
    return out


async def server_preferred_resources(
    client: Client, *, namespaced: bool | None = None, known: Registry = REGISTRY
) -> list[Resource]:
    """Every resource the server serves, once each at its preferred version.

    ``namespaced`` keeps one scope when given (``True``: upstream's
    ``ServerPreferredNamespacedResources``). Raises :class:`GroupDiscoveryFailed` (with
    the partial result) when some group versions could not be discovered.
    """
    groups, failed = await _groups(client, known)
    resources = _preferred(groups)
    if namespaced is not None:
        resources = [r for r in resources if r.namespaced == namespaced]
    if failed:
        raise GroupDiscoveryFailed(failed, resources)
    return resources


def supports_verbs(resources: Iterable[Resource], verbs: Iterable[str]) -> list[Resource]:
    """The resources that support every one of ``verbs``."""
    wanted = set(verbs)
    return [r for r in resources if wanted <= set(r.verbs)]


class CachedDiscovery:
    """Discovery remembered for ``max_age`` seconds, with lookups by group/resource.

    A lookup that misses asks the server again (at most every ``min_interval`` seconds):
    a custom resource created a moment ago is found without waiting for the cache to
    expire, and a resource nobody serves does not cost two requests per lookup.
    """

    def __init__(
        self,
        client: Client,
        *,
        max_age: float = 30.0,
        min_interval: float = 1.0,
        known: Registry = REGISTRY,
    ) -> None:
        self.client = client
        self.max_age = max_age
        self.min_interval = min_interval
        self.known = known
        self._resources: list[Resource] = []
        self._by_group_resource: dict[tuple[str, str], Resource] = {}
        #: group versions that failed at the last refresh
        self.failed: dict[str, str] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        """Forget what was discovered: the next call asks the server."""
        self._fetched_at = None

    async def refresh(self) -> list[Resource]:
        """Ask the server now; partial failures are kept in :attr:`failed`."""
        async with self._lock:
            return await self._refresh()

    async def _refresh(self) -> list[Resource]:
        try:
            resources = await server_preferred_resources(self.client, known=self.known)
            failed: dict[str, str] = {}
        except GroupDiscoveryFailed as err:
            resources, failed = err.resources, err.groups
        self._resources = resources
        self._by_group_resource = {(r.group, r.plural): r for r in resources}
        self.failed = failed
        self._fetched_at = time.monotonic()
        return resources

    def _age(self) -> float | None:
        return None if self._fetched_at is None else time.monotonic() - self._fetched_at

    async def resources(self) -> list[Resource]:
        """Every resource once at its preferred version (refreshed when older than
        ``max_age``); failed group versions are in :attr:`failed`, not raised."""
        async with self._lock:
            age = self._age()
            if age is None or age >= self.max_age:
                return await self._refresh()
            return self._resources

    async def for_group_resource(self, group: str, plural: str) -> Resource | None:
        """The preferred version of ``plural`` in ``group`` (``("apps", "deployments")``),
        or None when the server does not serve it.

        Raises :class:`GroupDiscoveryFailed` when it is not found and a version of
        ``group`` failed discovery: "not served" cannot be told from "not known now".
        """
        await self.resources()
        found = self._by_group_resource.get((group, plural))
        if found is None:
            async with self._lock:
                age = self._age()
                if age is None or age >= self.min_interval:
                    await self._refresh()
            found = self._by_group_resource.get((group, plural))
        if found is None:
            failed = {gv: e for gv, e in self.failed.items() if _group_of(gv) == group}
            if failed:
                raise GroupDiscoveryFailed(failed, list(self._resources))
        return found


def _group_of(group_version: str) -> str:
    group, _, _version = group_version.rpartition("/")
    return group
