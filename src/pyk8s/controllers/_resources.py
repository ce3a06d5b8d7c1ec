"""Registry entries the controllers use, and the resources the generic controllers walk.

Many controllers watch and write the same few resources (pods, nodes, ReplicaSets, …);
their registry entries are looked up once here, failing at import if one is missing, so
each controller imports a ``Resource`` rather than repeating the lookup and its check.

``deletable_resources`` is what the generic controllers (namespace, garbage collector)
walk over. As upstream's, they find their resources through discovery
(:mod:`pyk8s.client.discovery`), not from the registry compiled into the program: custom
resources come and go while they run, and must be collected by their owner references
and deleted with their namespace like any other. The list has one entry per *storage*: a
resource served in two groups (core and ``events.k8s.io`` Events) holds one set of
objects, so walking both would count and delete everything twice.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import Client
from pyk8s.client.discovery import GroupDiscoveryFailed, server_preferred_resources

__all__ = [
    "CONFIGMAPS",
    "CONTROLLER_REVISIONS",
    "DAEMONSETS",
    "DELETABLE_VERBS",
    "DEPLOYMENTS",
    "LEASES",
    "NAMESPACES",
    "NODES",
    "PODS",
    "PVCS",
    "REPLICASETS",
    "SERVICE_ACCOUNTS",
    "STATEFULSETS",
    "deletable_resources",
    "select_deletable",
]


def _registered(group: str, version: str, plural: str) -> Resource:
    """A registry entry that must exist."""
    res = REGISTRY.get(group, version, plural)
    if res is None:  # pragma: no cover - the registry is static
        raise LookupError(f"{group}/{version} {plural} is not registered")
    return res


PODS = _registered("", "v1", "pods")
NODES = _registered("", "v1", "nodes")
NAMESPACES = _registered("", "v1", "namespaces")
SERVICE_ACCOUNTS = _registered("", "v1", "serviceaccounts")
CONFIGMAPS = _registered("", "v1", "configmaps")
PVCS = _registered("", "v1", "persistentvolumeclaims")
LEASES = _registered("coordination.k8s.io", "v1", "leases")
DEPLOYMENTS = _registered("apps", "v1", "deployments")
REPLICASETS = _registered("apps", "v1", "replicasets")
DAEMONSETS = _registered("apps", "v1", "daemonsets")
STATEFULSETS = _registered("apps", "v1", "statefulsets")
CONTROLLER_REVISIONS = _registered("apps", "v1", "controllerrevisions")


#: what the generic controllers need of a resource (upstream's garbage collector filter)
DELETABLE_VERBS = ("delete", "list", "watch")


def select_deletable(
    resources: Iterable[Resource], *, namespaced: bool | None = None
) -> list[Resource]:
    """The stored resources that support list, watch and delete, one per storage (the
    one objects are stored at, when two share it); ``namespaced`` filters by scope."""
    by_storage: dict[str, Resource] = {}
    for r in resources:
        if not r.stored or not set(DELETABLE_VERBS) <= set(r.verbs):
            continue
        if namespaced is not None and r.namespaced != namespaced:
            continue
        key = r.key_prefix()
        have = by_storage.get(key)
        if have is None or (have.converts and not r.converts):
            by_storage[key] = r
    return list(by_storage.values())


async def deletable_resources(client: Client, *, namespaced: bool | None = None) -> list[Resource]:
    """What the server serves now that can be listed, watched and deleted (each resource
    at its preferred version, one per storage); ``namespaced`` filters by scope.

    Raises :class:`~pyk8s.client.discovery.GroupDiscoveryFailed` when some group
    versions could not be discovered, with the deletable part of what could be in
    ``resources``; other failures as the client raises them.
    """
    try:
        found = await server_preferred_resources(client, namespaced=namespaced)
    except GroupDiscoveryFailed as err:
        raise GroupDiscoveryFailed(err.groups, select_deletable(err.resources)) from err
    return select_deletable(found)
