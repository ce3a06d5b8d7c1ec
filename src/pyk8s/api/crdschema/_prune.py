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

from pyk8s.api.crdschema._compiled import EMPTY, NO_DEFAULT, Struct, struct
from pyk8s.api.crdschema._objectmeta import META_FIELDS, coerce, prune_meta

JSONSchema = dict[str, Any]


def _k(parent: str, k: str) -> str:
    return f"{parent}.{k}" if parent else k


def _drops_null(s: Struct | None) -> bool:
    """A null the schema does not allow and cannot default is dropped."""
    return s is not None and not s.nullable and s.default is NO_DEFAULT


def _prune(x: Any, s: Struct | None, pp: str, out: list[str]) -> None:
    """Upstream's ``prune`` fused with ``PruneNonNullableNullsWithoutDefaults``: both walk
    the same schema-described fields, and each only looks at one object's own keys."""
    if s is not None and s.preserve:
        _skip(x, s, pp, out)
        return
    if isinstance(x, dict):
        if s is None:
            for k in list(x):
                out.append(_k(pp, k))
                del x[k]
            return
        props = s.props
        for k in list(x):
            if s.embedded and k in META_FIELDS:
                sub = s.field(k)
                if x[k] is None:
                    if _drops_null(sub):
                        del x[k]
                else:
                    prune_nulls(x[k], sub)
                continue
            sub = props.get(k)
            if sub is None:
                if not s.ap_present:
                    if k not in META_FIELDS or pp:
                        out.append(_k(pp, k))
                    del x[k]
                    continue
                sub = s.ap
            v = x[k]
            if v is None:
                if _drops_null(sub):
                    del x[k]
            elif isinstance(v, dict | list):
                _prune(v, sub, _k(pp, k), out)
    elif isinstance(x, list):
        items = s.items if s is not None else None
        for i, v in enumerate(x):
            if isinstance(v, dict | list):
                _prune(v, items, f"{pp}[{i}]", out)


def _skip(x: Any, s: Struct | None, pp: str, out: list[str]) -> None:
    if s is None:
        return
    if isinstance(x, dict):
        for k in list(x):
            sub = s.field(k)
            if s.embedded and k in META_FIELDS:
                if x[k] is None:
                    if _drops_null(sub):
                        del x[k]
                else:
                    prune_nulls(x[k], sub)
                continue
            if sub is None and not s.ap_present:
                continue
            v = x[k]
            if v is None:
                if _drops_null(sub):
                    del x[k]
            else:
                _prune(v, sub, _k(pp, k), out)
    elif isinstance(x, list):
        for i, v in enumerate(x):
            _skip(v, s.items, f"{pp}[{i}]", out)


def structural_prune(obj: Any, schema: JSONSchema | None, root: bool) -> list[str]:
    """``PruneWithOptions`` (and the null pruning that follows it): sorted pruned paths."""
    s = struct(schema) if schema is not None else None
    if root:
        s = (s or EMPTY).as_root()
    out: list[str] = []
    _prune(obj, s, "", out)
    return sorted(out)


def prune_nulls(x: Any, s: Struct | None) -> None:
    """``PruneNonNullableNullsWithoutDefaults``."""
    if isinstance(x, dict):
        if s is None:
            return
        for k in list(x):
            sub = s.field(k)
            v = x[k]
            if v is None:
                if _drops_null(sub):
                    del x[k]
            elif sub is not None:
                prune_nulls(v, sub)
    elif isinstance(x, list) and s is not None and s.items is not None:
        for v in x:
            prune_nulls(v, s.items)


def prune(obj: Any, schema: JSONSchema, *, root: bool = True) -> list[str]:
    paths: list[str] = []
    if root and isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
        meta = obj["metadata"]
        paths += prune_meta(meta, "metadata")
        for k in [k for k, v in meta.items() if v is None]:
            del meta[k]
    paths += structural_prune(obj, schema, root)
    s = struct(schema)
    if s.has_embedded:
        embedded: list[str] = []
        coerce("", obj, s, False, embedded)
        paths += sorted(embedded)
    return paths


def deep_copy(v: Any) -> Any:
    """``runtime.DeepCopyJSONValue``."""
    if isinstance(v, dict):
        return {k: deep_copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [deep_copy(x) for x in v]
    return v


def default(x: Any, s: Struct | None) -> None:
    """Upstream's structural ``Default``, after its null pruning at the same level."""
    if s is None:
        return
    if isinstance(x, dict):
        for k in [k for k, v in x.items() if v is None]:
            if _drops_null(s.field(k)):
                del x[k]
        props = s.props
        for k, prop in props.items():
            if prop.default is NO_DEFAULT:
                continue
            if k not in x or (x[k] is None and not prop.nullable):
                x[k] = deep_copy(prop.default)
        ap = s.ap
        for k, v in x.items():
            sub = props.get(k)
            if sub is not None:
                if isinstance(v, dict | list):
                    default(v, sub)
            elif ap is not None:
                if v is None and not ap.nullable:
                    x[k] = v = deep_copy(None if ap.default is NO_DEFAULT else ap.default)
                if isinstance(v, dict | list):
                    default(v, ap)
    elif isinstance(x, list):
        items = s.items
        if items is None:
            return
        for i, v in enumerate(x):
            if v is None and not items.nullable:
                x[i] = v = deep_copy(None if items.default is NO_DEFAULT else items.default)
            if isinstance(v, dict | list):
                default(v, items)


def apply_defaults(obj: Any, schema: JSONSchema) -> None:
    default(obj, struct(schema))
