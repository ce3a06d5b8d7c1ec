"""``x-kubernetes-list-type: set`` and ``map`` uniqueness (upstream's ``schema/listtype``).

A set may not hold the same element twice and a map list may not hold two items with
the same key fields; the second occurrence is reported as ``Duplicate value``, printed
the Go way (``map[string]interface {}{"name":"a"}`` for a map list's key).
"""

from __future__ import annotations

from typing import Any

from pyk8s.api import errors
from pyk8s.api.crdschema._compiled import Struct, struct
from pyk8s.api.crdschema._paths import child, index, key
from pyk8s.api.errors import FieldError
from pyk8s.api.gofmt import go_json

_UNSPECIFIED = object()  # a map-list item without its key (or a null item)


def validate_list_types(path: str, s: dict[str, Any] | Struct | None, obj: Any) -> list[FieldError]:
    """``ValidateListSetsAndMaps`` for an object ``obj`` described by ``s``."""
    node = struct(s) if isinstance(s, dict) else s
    if node is None or not node.has_list_type:
        return []
    return _object(path, node, obj)


def _object(path: str, s: Struct, obj: Any) -> list[FieldError]:
    if not isinstance(obj, dict):
        return []
    errs: list[FieldError] = []
    if s.ap is not None and s.ap.has_list_type:
        for k, v in obj.items():
            errs += _value(key(path, k), s.ap, v)
    if s.props:
        for k, v in obj.items():
            sub = s.props.get(k)
            if sub is not None and sub.has_list_type:
                errs += _value(child(path, k), sub, v)
    return errs


def _value(path: str, s: Struct, v: Any) -> list[FieldError]:
    if isinstance(v, list):
        return _array(path, s, v)
    if isinstance(v, dict):
        return _object(path, s, v)
    return []


def _array(path: str, s: Struct, arr: list[Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    if s.list_type == "set":
        errs += [errors.duplicate(index(path, i), arr[i]) for i in _non_unique(arr)]
    elif s.list_type == "map":
        errs += _list_map(path, s, arr)
    items = s.items
    if items is not None and items.has_list_type:
        for i, x in enumerate(arr):
            errs += _value(index(path, i), items, x)
    return errs


def _identity(x: Any) -> Any:
    """How Go's ``validateListSet`` keys an element: JSON for compounds, the value else."""
    if x is _UNSPECIFIED:
        return ("unspecified",)
    if isinstance(x, dict | list):
        return ("json", go_json(x))
    if isinstance(x, bool):
        return ("bool", x)
    if isinstance(x, int):
        return ("int", x)
    if isinstance(x, float):
        return ("float", x)
    if x is None:
        return ("null",)
    return ("str", x)


def _non_unique(arr: list[Any]) -> list[int]:
    """Indices of each element's second appearance."""
    if len(arr) <= 1:
        return []
    seen: dict[Any, int] = {}
    out: list[int] = []
    for i, x in enumerate(arr):
        ident = _identity(x)
        times = seen.get(ident, 0)
        seen[ident] = times + 1
        if times == 1:
            out.append(i)
    return out


def _list_map(path: str, s: Struct, arr: list[Any]) -> list[FieldError]:
    for i, x in enumerate(arr):
        if x is not None and not isinstance(x, dict):
            return [
                errors.invalid(index(path, i), x, "must be an object for an array of list-type map")
            ]
    if len(arr) <= 1:
        return []
    key_fields = s.map_keys
    if len(key_fields) == 1:
        kf = key_fields[0]
        keys = [_UNSPECIFIED if x is None or kf not in x else x[kf] for x in arr]
        out: list[FieldError] = []
        for i in _non_unique(keys):
            shown = {} if keys[i] is _UNSPECIFIED else {kf: keys[i]}
            out.append(errors.duplicate(index(path, i), shown))
        return out
    composite: list[Any] = []
    for x in arr:
        composite.append({} if x is None else {k: x[k] for k in key_fields if k in x})
    return [errors.duplicate(index(path, i), composite[i]) for i in _non_unique(composite)]
