"""The narrow views of the server that its plugins and in-server controllers get.

Admission plugins read the cluster through :class:`CacheReader` (the watch cache, the store
on a miss) and ResourceQuota admission writes quota status through :class:`QuotaWriter`;
neither hands out the whole server, so a plugin's reach is visible in its constructor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyk8s.apiserver.rest import ResourceStore

if TYPE_CHECKING:
    from pyk8s.apiserver.handlers import ResourceHandlers

JSON = dict[str, Any]


class CacheReader:
    """The admission plugins' reads (:class:`pyk8s.apiserver.admission.Reader`)."""

    def __init__(self, handlers: ResourceHandlers) -> None:
        self.h = handlers

    async def get(self, group: str, plural: str, namespace: str, name: str) -> JSON | None:
        return await self.h.lookup(plural, group, namespace, name)

    def cached(self, group: str, plural: str, namespace: str, name: str) -> JSON | None:
        r = self.h.registry.for_group_resource(group, plural)
        entry = None if r is None else self.h.cache.objects.get(r.key(namespace or None, name))
        return None if entry is None else entry.obj

    def list(self, group: str, plural: str, namespace: str | None = None) -> list[JSON]:
        r = self.h.registry.for_group_resource(group, plural)
        if r is None:
            return []
        return [e.obj for e in self.h.cache.list(r.key_prefix(namespace or None))]


class QuotaWriter:
    """ResourceQuota admission's compare-and-swap status writes."""

    def __init__(self, handlers: ResourceHandlers) -> None:
        self.h = handlers

    def _rest(self) -> ResourceStore:
        r = self.h.registry.get("", "v1", "resourcequotas")
        assert r is not None
        return self.h.rest(r)

    async def read(self, namespace: str, name: str) -> tuple[JSON, Any]:
        return await self._rest().read(namespace, name)

    async def write_status(self, new: JSON, old: JSON, kv: Any) -> None:
        rest = self._rest()
        new = rest.prepare_for_update(new, old, "status")
        await rest.write_update(new, old, kv, subresource="status")
