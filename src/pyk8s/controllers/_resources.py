"""Registry entries the controllers work with, and which ones the generic controllers walk.

Many controllers watch and write the same few resources (pods, nodes, ReplicaSets, …);
their registry entries are looked up once here, failing at import if one is missing, so
each controller imports a ``Resource`` rather than repeating the lookup and its check.

``deletable_resources`` is what the generic controllers (namespace, garbage collector)
walk over. Upstream's namespace controller and garbage collector find their resources through
discovery: everything that can be listed, watched and deleted. Here the registry is that
list, with one entry per *storage*: a resource served at two versions or in two groups
(``autoscaling/v1`` and ``v2`` HPAs, core and ``events.k8s.io`` Events) holds one set of
objects, so walking both would count and delete everything twice.
"""

from __future__ import annotations

from pyk8s.api.registry import REGISTRY, Resource

__all__ = [
    "CONFIGMAPS",
    "CONTROLLER_REVISIONS",
    "DAEMONSETS",
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


def deletable_resources(*, namespaced: bool | None = None) -> list[Resource]:
    """Stored resources that support list, watch and delete, one per storage, preferring
    the version objects are stored at; ``namespaced`` filters by scope when given."""
    by_storage: dict[str, Resource] = {}
    for r in REGISTRY:
        if not r.stored or not {"list", "watch", "delete"} <= set(r.verbs):
            continue
        if namespaced is not None and r.namespaced != namespaced:
            continue
        key = r.key_prefix()
        have = by_storage.get(key)
        if have is None or (have.converts and not r.converts):
            by_storage[key] = r
    return list(by_storage.values())
