"""Which resources the generic controllers (namespace, garbage collector) walk over.

Upstream's namespace controller and garbage collector find their resources through
discovery: everything that can be listed, watched and deleted. Here the registry is that
list, with one entry per *storage*: a resource served at two versions or in two groups
(``autoscaling/v1`` and ``v2`` HPAs, core and ``events.k8s.io`` Events) holds one set of
objects, so walking both would count and delete everything twice.
"""

from __future__ import annotations

from pyk8s.api.registry import REGISTRY, Resource

__all__ = ["deletable_resources"]


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
