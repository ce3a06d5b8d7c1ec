"""A schema read once for the per-object walks (pruning, defaulting, list types, embedded
resources): every custom resource written or read goes through them, so the keyword
lookups are done when the schema is first seen, and subtrees without embedded resources
or list types are skipped entirely.
"""

from __future__ import annotations

from typing import Any

NO_DEFAULT: Any = object()


class Struct:
    """The structural part of one schema node."""

    __slots__ = (
        "ap",
        "ap_present",
        "default",
        "embedded",
        "has_embedded",
        "has_list_type",
        "items",
        "list_type",
        "map_keys",
        "nullable",
        "preserve",
        "props",
        "raw",
    )

    def __init__(self, s: dict[str, Any]) -> None:
        self.raw = s
        props = s.get("properties")
        self.props: dict[str, Struct] = (
            {k: Struct(v) for k, v in props.items() if isinstance(v, dict)}
            if isinstance(props, dict)
            else {}
        )
        ap = s.get("additionalProperties")
        self.ap_present = ap is not None
        self.ap = Struct(ap) if isinstance(ap, dict) else None
        items = s.get("items")
        self.items = Struct(items) if isinstance(items, dict) else None
        self.preserve = s.get("x-kubernetes-preserve-unknown-fields") is True
        self.embedded = s.get("x-kubernetes-embedded-resource") is True
        self.nullable = s.get("nullable") is True
        d = s.get("default", NO_DEFAULT)
        self.default = NO_DEFAULT if d is None else d
        lt = s.get("x-kubernetes-list-type")
        self.list_type = lt if isinstance(lt, str) else None
        keys = s.get("x-kubernetes-list-map-keys")
        self.map_keys = [k for k in keys if isinstance(k, str)] if isinstance(keys, list) else []
        children = [*self.props.values(), self.ap, self.items]
        self.has_embedded: bool = self.embedded or any(
            c is not None and c.has_embedded for c in children
        )
        self.has_list_type: bool = self.list_type in ("set", "map") or any(
            c is not None and c.has_list_type for c in children
        )

    def field(self, k: str) -> Struct | None:
        """The schema of field ``k``: a property, else additionalProperties' schema."""
        p = self.props.get(k)
        return p if p is not None else self.ap

    def as_root(self) -> Struct:
        """This node treated as a resource root (``x-kubernetes-embedded-resource``)."""
        if self.embedded:
            return self
        root = object.__new__(Struct)
        for name in Struct.__slots__:
            setattr(root, name, getattr(self, name))
        root.embedded = True
        root.has_embedded = True
        return root


_CACHE: dict[int, tuple[dict[str, Any], Struct]] = {}
_CACHE_MAX = 512


def struct(schema: dict[str, Any]) -> Struct:
    """The compiled form of ``schema``, cached while the same dict is passed again.

    Schemas are read as immutable: a changed schema must be a new dict.
    """
    hit = _CACHE.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    node = Struct(schema)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[id(schema)] = (schema, node)
    return node


EMPTY = Struct({})
"""The schema that specifies nothing (a resource root without a schema)."""
