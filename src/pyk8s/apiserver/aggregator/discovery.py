"""Discovery of the group/versions extension API servers serve.

Clients learn about an aggregated API the way they learn about built-in ones: the
legacy group list (``/apis``) and the group document (``/apis/<group>``) come from the
APIServices, ordered as upstream orders them (groups by their highest
``groupPriorityMinimum``, versions by ``versionPriority`` then kube-like version order);
aggregated discovery (``apidiscovery.k8s.io/v2``, what kubectl 1.32 reads for
``api-resources`` and to map ``kubectl get <resource>``) carries the resources each
extension server reported: its own aggregated ``/apis`` document when it has one, else
its ``/apis/<group>/<version>`` APIResourceList converted. A document that could not be
refreshed is served as ``Stale``, as upstream.

Pure: the fetching is the controller's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pyk8s.apiserver.apiextensions.controller import version_priority

__all__ = [
    "RemoteDocument",
    "aggregated_items",
    "api_group",
    "by_group",
    "resources_from_aggregated",
    "resources_from_list",
]

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RemoteDocument:
    """What one extension server said its group/version serves."""

    resources: list[JSON]
    #: ``Current``, or ``Stale`` once a refresh failed
    freshness: str = "Current"


def _spec(apiservice: JSON) -> JSON:
    spec = apiservice.get("spec")
    return spec if isinstance(spec, dict) else {}


def by_group(apiservices: Iterable[JSON]) -> dict[str, list[JSON]]:
    """APIServices by group in upstream's discovery order (``SortedByGroupAndVersion``)."""
    groups: dict[str, list[JSON]] = {}
    for a in apiservices:
        groups.setdefault(str(_spec(a).get("group", "")), []).append(a)

    def group_key(item: tuple[str, list[JSON]]) -> tuple[int, str]:
        name, members = item
        return (-max(int(_spec(a).get("groupPriorityMinimum") or 0) for a in members), name)

    def version_key(a: JSON) -> tuple[int, tuple[int, int, int, str]]:
        spec = _spec(a)
        return (-int(spec.get("versionPriority") or 0), version_priority(str(spec.get("version"))))

    return {
        name: sorted(members, key=version_key)
        for name, members in sorted(groups.items(), key=group_key)
    }


def api_group(group: str, apiservices: list[JSON]) -> JSON:
    """The ``APIGroup`` document of an aggregated group (its versions in order)."""
    versions = [str(_spec(a).get("version")) for a in apiservices]
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": entries,
        "preferredVersion": entries[0],
    }


def resources_from_list(resource_list: JSON, group: str, version: str) -> list[JSON]:
    """An ``APIResourceList`` as aggregated discovery's ``APIResourceDiscovery`` entries."""
    out: dict[str, JSON] = {}
    subresources: list[tuple[str, str, JSON]] = []
    for r in resource_list.get("resources") or []:
        if not isinstance(r, dict):
            continue
        name = str(r.get("name", ""))
        parent, _, sub = name.partition("/")
        kind = {
            "group": str(r.get("group") or group),
            "version": str(r.get("version") or version),
            "kind": str(r.get("kind", "")),
        }
        if sub:
            subresources.append(
                (parent, sub, {"responseKind": kind, "verbs": list(r.get("verbs") or [])})
            )
            continue
        entry: JSON = {
            "resource": name,
            "responseKind": kind,
            "scope": "Namespaced" if r.get("namespaced") else "Cluster",
            "singularResource": str(r.get("singularName") or ""),
            "verbs": list(r.get("verbs") or []),
        }
        for key in ("shortNames", "categories"):
            if r.get(key):
                entry[key] = list(r[key])
        out[name] = entry
    for parent, sub, fields in subresources:
        if parent in out:
            out[parent].setdefault("subresources", []).append({"subresource": sub, **fields})
    return list(out.values())


def resources_from_aggregated(document: JSON, group: str, version: str) -> list[JSON] | None:
    """The resources of ``group/version`` in an ``APIGroupDiscoveryList``, if it has them."""
    if document.get("kind") != "APIGroupDiscoveryList":
        return None
    for item in document.get("items") or []:
        if not isinstance(item, dict) or (item.get("metadata") or {}).get("name") != group:
            continue
        for v in item.get("versions") or []:
            if isinstance(v, dict) and v.get("version") == version:
                return list(v.get("resources") or [])
    return None


def aggregated_items(
    groups: Mapping[str, list[JSON]], documents: Mapping[str, RemoteDocument]
) -> list[JSON]:
    """``APIGroupDiscovery`` items for the aggregated groups; a version whose server has
    never answered is listed without resources, ``Stale``, as upstream lists it."""
    items = []
    for group, apiservices in groups.items():
        versions: list[JSON] = []
        for a in apiservices:
            version = str(_spec(a).get("version"))
            doc = documents.get(str(a["metadata"]["name"]))
            if doc is None:
                versions.append({"version": version, "freshness": "Stale"})
                continue
            versions.append(
                {"version": version, "resources": doc.resources, "freshness": doc.freshness}
            )
        if versions:
            items.append(
                {"metadata": {"name": group, "creationTimestamp": None}, "versions": versions}
            )
    return items
