"""Pruning and defaulting of custom resources (upstream's ``schema/pruning`` and
``schema/defaulting``).

Pruning is what makes a structural schema a contract: fields the schema does not
specify are dropped on the way in (and reported, so ``fieldValidation=Strict`` can
refuse them), except below ``x-kubernetes-preserve-unknown-fields`` and in the
``apiVersion``/``kind``/``metadata`` of the resource and of embedded resources, whose
``metadata`` is instead cut down to ``ObjectMeta``'s fields. Nulls the schema does not
allow and cannot default are dropped too; defaulting then fills absent (and
non-nullable null) properties from ``default``, recursively and on deep copies.
"""

from __future__ import annotations

from typing import Any

from pyk8s.api.crdschema._objectmeta import META_FIELDS, coerce, prune_meta

JSONSchema = dict[str, Any]


def _props(s: JSONSchema) -> dict[str, Any]:
    p = s.get("properties")
    return p if isinstance(p, dict) else {}


def _sub(v: Any) -> JSONSchema | None:
    return v if isinstance(v, dict) else None


def _k(parent: str, k: str) -> str:
    return f"{parent}.{k}" if parent else k


def _prune(x: Any, s: JSONSchema | None, pp: str, out: list[str]) -> None:
    if s is not None and s.get("x-kubernetes-preserve-unknown-fields") is True:
        _skip(x, s, pp, out)
        return
    if isinstance(x, dict):
        if s is None:
            for k in list(x):
                out.append(_k(pp, k))
                del x[k]
            return
        embedded = s.get("x-kubernetes-embedded-resource") is True
        props = _props(s)
        ap = s.get("additionalProperties")
        for k in list(x):
            if embedded and k in META_FIELDS:
                continue
            if k in props:
                _prune(x[k], _sub(props[k]), _k(pp, k), out)
            elif ap is not None:
                _prune(x[k], _sub(ap), _k(pp, k), out)
            else:
                if k not in META_FIELDS or pp:
                    out.append(_k(pp, k))
                del x[k]
    elif isinstance(x, list):
        items = _sub(s.get("items")) if s is not None else None
        for i, v in enumerate(x):
            _prune(v, items, f"{pp}[{i}]", out)


def _skip(x: Any, s: JSONSchema | None, pp: str, out: list[str]) -> None:
    if s is None:
        return
    if isinstance(x, dict):
        embedded = s.get("x-kubernetes-embedded-resource") is True
        props = _props(s)
        ap = s.get("additionalProperties")
        for k in list(x):
            if embedded and k in META_FIELDS:
                continue
            if k in props:
                _prune(x[k], _sub(props[k]), _k(pp, k), out)
            elif ap is not None:
                _prune(x[k], _sub(ap), _k(pp, k), out)
    elif isinstance(x, list):
        items = _sub(s.get("items"))
        for i, v in enumerate(x):
            _skip(v, items, f"{pp}[{i}]", out)


def structural_prune(obj: Any, schema: JSONSchema | None, root: bool) -> list[str]:
    """``PruneWithOptions``: drop unspecified fields, return their sorted paths."""
    s = schema
    if root:
        s = dict(schema or {})
        s["x-kubernetes-embedded-resource"] = True
    out: list[str] = []
    _prune(obj, s, "", out)
    return sorted(out)


def _field_schema(k: str, s: JSONSchema | None) -> JSONSchema | None:
    if s is None:
        return None
    props = _props(s)
    if k in props:
        return _sub(props[k])
    ap = s.get("additionalProperties")
    return _sub(ap) if ap is not None else None


def _drops_null(s: JSONSchema | None) -> bool:
    return s is not None and s.get("nullable") is not True and s.get("default") is None


def prune_nulls(x: Any, s: JSONSchema | None) -> None:
    """``PruneNonNullableNullsWithoutDefaults``."""
    if isinstance(x, dict):
        for k in list(x):
            sch = _field_schema(k, s)
            if x[k] is None and _drops_null(sch):
                del x[k]
            else:
                prune_nulls(x[k], sch)
    elif isinstance(x, list):
        items = _sub(s.get("items")) if s is not None else None
        for v in x:
            prune_nulls(v, items)


def prune(obj: Any, schema: JSONSchema, *, root: bool = True) -> list[str]:
    paths: list[str] = []
    if root and isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
        meta = obj["metadata"]
        paths += prune_meta(meta, "metadata")
        for k in [k for k, v in meta.items() if v is None]:
            del meta[k]
    paths += structural_prune(obj, schema, root)
    prune_nulls(obj, schema)
    embedded: list[str] = []
    coerce("", obj, schema, False, embedded)
    return paths + sorted(embedded)


def deep_copy(v: Any) -> Any:
    """``runtime.DeepCopyJSONValue``."""
    if isinstance(v, dict):
        return {k: deep_copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [deep_copy(x) for x in v]
    return v


def _non_nullable_null(x: Any, s: JSONSchema | None) -> bool:
    return x is None and s is not None and s.get("nullable") is not True


def default(x: Any, s: JSONSchema | None) -> None:
    """Upstream's structural ``Default``."""
    if s is None:
        return
    if isinstance(x, dict):
        props = _props(s)
        for k, prop in props.items():
            if not isinstance(prop, dict) or prop.get("default") is None:
                continue
            if k not in x or _non_nullable_null(x[k], prop):
                x[k] = deep_copy(prop["default"])
        ap = s.get("additionalProperties")
        for k in list(x):
            if k in props:
                default(x[k], _sub(props[k]))
            elif ap is not None:
                aps = _sub(ap)
                if aps is not None and _non_nullable_null(x[k], aps):
                    x[k] = deep_copy(aps.get("default"))
                default(x[k], aps)
    elif isinstance(x, list):
        items = _sub(s.get("items"))
        for i in range(len(x)):
            if items is not None and _non_nullable_null(x[i], items):
                x[i] = deep_copy(items.get("default"))
            default(x[i], items)


def apply_defaults(obj: Any, schema: JSONSchema) -> None:
    prune_nulls(obj, schema)
    default(obj, schema)
