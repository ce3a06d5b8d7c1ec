"""Discovery documents: how kubectl and client libraries learn what the server serves.

Both forms come from the one registry: the legacy per-group documents (/api, /apis,
/apis/<group>/<version>) and aggregated discovery (apidiscovery.k8s.io/v2, which kubectl
1.32 asks for first, one document with every resource of every group).
"""

from __future__ import annotations

from typing import Any

from pyk8s.api.registry import Registry, Resource

JSON = dict[str, Any]

_SUBRESOURCE_VERBS: dict[str, list[str]] = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "binding": ["create"],
    "eviction": ["create"],
    "log": ["get"],
    "exec": ["create", "get"],
    "attach": ["create", "get"],
    "portforward": ["create", "get"],
    "proxy": ["create", "delete", "get", "patch", "update"],
    "ephemeralcontainers": ["get", "patch", "update"],
    "finalize": ["update"],
    "token": ["create"],
}

_SUBRESOURCE_KINDS: dict[str, tuple[str, str, str]] = {
    # subresource: (group, version, kind) of what it returns; "" kind = the parent's
    "scale": ("autoscaling", "v1", "Scale"),
    "binding": ("", "v1", "Binding"),
    "eviction": ("policy", "v1", "Eviction"),
    "log": ("", "v1", "Pod"),
    "exec": ("", "v1", "PodExecOptions"),
    "attach": ("", "v1", "PodAttachOptions"),
    "portforward": ("", "v1", "PodPortForwardOptions"),
    "proxy": ("", "v1", ""),
    "token": ("authentication.k8s.io", "v1", "TokenRequest"),
}


def _storage_version_hash(r: Resource) -> str:
    import base64
    import hashlib

    # one hash per storage, as upstream: resources served at several versions share it
    digest = hashlib.sha256(f"{r.storage_api_version}/{r.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def api_resource(r: Resource) -> JSON:
    out: JSON = {
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": list(r.verbs),
    }
    if r.short_names:
        out["shortNames"] = list(r.short_names)
    if r.categories:
        out["categories"] = list(r.categories)
    if r.stored:
        out["storageVersionHash"] = _storage_version_hash(r)
    return out


def resource_list(registry: Registry, group: str, version: str) -> JSON:
    """APIResourceList for /api/v1 or /apis/<group>/<version>."""
    resources: list[JSON] = []
    for r in registry.in_group_version(group, version):
        resources.append(api_resource(r))
        for sub in r.subresources:
            entry: JSON = {
                "name": f"{r.plural}/{sub}",
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": _SUBRESOURCE_KINDS.get(sub, ("", "", r.kind))[2] or r.kind,
                "verbs": _SUBRESOURCE_VERBS.get(sub, ["get"]),
            }
            sg, sv, _ = _SUBRESOURCE_KINDS.get(sub, ("", "", ""))
            if sg:
                entry["group"], entry["version"] = sg, sv
            resources.append(entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def api_versions(address: str) -> JSON:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    }


def api_group(registry: Registry, group: str) -> JSON:
    versions = registry.group_versions()[group]
    preferred = registry.preferred_version(group) or versions[0]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
        "preferredVersion": {"groupVersion": f"{group}/{preferred}", "version": preferred},
    }


def api_group_list(registry: Registry) -> JSON:
    groups = [api_group(registry, g) for g in registry.group_versions() if g]
    for g in groups:
        del g["kind"], g["apiVersion"]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _aggregated_resource(r: Resource) -> JSON:
    out: JSON = {
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "singularResource": r.singular,
        "verbs": list(r.verbs),
    }
    if r.short_names:
        out["shortNames"] = list(r.short_names)
    if r.categories:
        out["categories"] = list(r.categories)
    subs = []
    for sub in r.subresources:
        sg, sv, sk = _SUBRESOURCE_KINDS.get(sub, (r.group, r.version, r.kind))
        subs.append(
            {
                "subresource": sub,
                "responseKind": {"group": sg, "version": sv, "kind": sk or r.kind},
                "verbs": _SUBRESOURCE_VERBS.get(sub, ["get"]),
            }
        )
    if subs:
        out["subresources"] = subs
    return out


def aggregated(registry: Registry, *, core: bool, version: str = "v2") -> JSON:
    """APIGroupDiscoveryList for /api (core) or /apis (every named group)."""
    items = []
    for group, versions in registry.group_versions().items():
        if (group == "") != core:
            continue
        items.append(
            {
                "metadata": {"name": group, "creationTimestamp": None},
                "versions": [
                    {
                        "version": v,
                        "resources": [
                            _aggregated_resource(r) for r in registry.in_group_version(group, v)
                        ],
                        "freshness": "Current",
                    }
                    for v in versions
                ],
            }
        )
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version}",
        "metadata": {},
        "items": items,
    }
