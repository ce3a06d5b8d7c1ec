"""The official Kubernetes v1.32 schemas, loaded once from kubernetes-validate.

Validation, strategic merge patch (x-kubernetes-patch-merge-key / -strategy), the
OpenAPI documents and ``kubectl explain`` all need the real definitions rather than our
guess; kubernetes-validate ships them per Kubernetes version as JSON Schema, one
``$defs`` map keyed by the OpenAPI definition name (``io.k8s.api.core.v1.Pod``).

Nothing here does I/O after the first load; the loaded document is shared and must be
treated as read-only.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

KUBERNETES_VERSION = "v1.32.0"

JSON = dict[str, Any]


class Schemas:
    """The ``$defs`` of one Kubernetes version, with lookups by name and by kind."""

    def __init__(self, definitions: dict[str, JSON]) -> None:
        self.definitions = definitions
        self._by_gvk: dict[tuple[str, str, str], str] = {}
        for name, d in definitions.items():
            for gvk in d.get("x-kubernetes-group-version-kind", ()):
                key = (gvk["group"], gvk["version"], gvk["kind"])
                # meta/v1 kinds (Status, WatchEvent…) are listed under every group; keep
                # the first definition that claims a kind.
                self._by_gvk.setdefault(key, name)

    def name_for(self, group: str, version: str, kind: str) -> str | None:
        """The definition name of a kind, e.g. ("apps", "v1", "Deployment")."""
        return self._by_gvk.get((group, version, kind))

    def get(self, name: str) -> JSON:
        return self.definitions[name]

    def resolve(self, node: JSON) -> JSON:
        """Follow ``$ref`` (possibly through allOf wrappers) to the definition itself."""
        while True:
            ref = node.get("$ref")
            if ref is None:
                all_of = node.get("allOf")
                if all_of and len(all_of) == 1 and "$ref" in all_of[0]:
                    ref = all_of[0]["$ref"]
                else:
                    return node
            node = self.definitions[ref.rsplit("/", 1)[-1]]

    def property(self, node: JSON, name: str) -> JSON | None:
        """The schema of field ``name`` of an object schema (resolved), or None."""
        props = self.resolve(node).get("properties")
        if not props or name not in props:
            return None
        prop: JSON = props[name]
        return prop

    def items(self, node: JSON) -> JSON | None:
        """The schema of an array's items (resolved), or None."""
        item = self.resolve(node).get("items")
        return self.resolve(item) if isinstance(item, dict) else None

    def additional(self, node: JSON) -> JSON | None:
        """The schema of a map's values (resolved), or None."""
        extra = self.resolve(node).get("additionalProperties")
        return self.resolve(extra) if isinstance(extra, dict) else None


def types_of(node: JSON) -> set[str]:
    """The JSON types a schema node admits ("null" included where optional)."""
    t = node.get("type")
    if isinstance(t, str):
        return {t}
    if isinstance(t, list):
        return set(t)
    out: set[str] = set()
    for alt in (*node.get("oneOf", ()), *node.get("anyOf", ())):
        out |= types_of(alt)
    return out


@functools.cache
def schemas(version: str = KUBERNETES_VERSION) -> Schemas:
    """The schemas of one Kubernetes version (loaded on first use, then shared)."""
    # found, not imported: importing kubernetes_validate imports jsonschema, which
    # nothing here uses (~0.1 s of CPU in every process that loads the schemas)
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("kubernetes_validate (the package of the schemas)")
    package = Path(next(iter(spec.submodule_search_locations)))
    root = package / "kubernetes-json-schema" / f"{version}-local"
    with (root / "_definitions.json").open("rb") as f:
        doc = json.load(f)
    return Schemas(doc["$defs"])
