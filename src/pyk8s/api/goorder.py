"""Objects with their keys in Go struct order, as kube-apiserver writes them.

kube-apiserver encodes a typed struct, so a Pod always reads ``kind, apiVersion,
metadata, spec, status`` and its metadata ``name, generateName, namespace, selfLink, uid,
resourceVersion, generation, creationTimestamp, …, managedFields``, whatever order the
client sent. Tools that compare bytes or print raw JSON see that order. pyk8s keeps
objects as dicts, so the order is whatever the last writer made it; :func:`go_ordered`
puts a built-in object's keys in its Go structs' declaration order (the field table of
:mod:`pyk8s.api.protobuf`), all the way down, and map keys (labels, data) sorted, as
``encoding/json`` writes maps. The API server applies it once per write,
before the object is stored, so reads (and LISTs of stored bytes) pay nothing.
:func:`set_resource_version` puts the resourceVersion, which storage leaves out, back in
its place.

Custom resources are not touched: upstream writes them from maps, with sorted keys, and
what their schema says is theirs to keep.
"""

from __future__ import annotations

import functools
from typing import Any

from pyk8s.api.protobuf import go_fields, message_of

JSON = dict[str, Any]


class _Struct:
    """One message compiled for reordering: each JSON name's rank in Go's order, the
    message of the names whose values are structs (or lists or maps of them), and the
    plans already worked out per shape (objects of one kind come in a few shapes)."""

    __slots__ = ("children", "plans", "rank")

    def __init__(self) -> None:
        self.rank: dict[str, int] = {}
        #: JSON name -> (message of the value, card: "opt" | "rep" | "map")
        self.children: dict[str, tuple[_Struct, str]] = {}
        #: keys as they came -> (keys in Go's order, () when they already are; the keys
        #: whose values are walked into, with their message and card)
        self.plans: dict[tuple[str, ...], _Plan] = {}


#: a shape's plan: its keys in Go's order (() when they already are), and the keys whose
#: values may need reordering, with their message and card
_Plan = tuple[tuple[str, ...], tuple[tuple[str, "_Struct", str], ...]]


#: after every field Go knows: keys it does not know keep their order at the end
_UNKNOWN = 1 << 30
#: shapes remembered per message (a bound: keys come from clients)
_MAX_ORDERS = 256

#: ObjectMeta's fields before resourceVersion
_BEFORE_RV = ("name", "generateName", "namespace", "selfLink", "uid")


#: the "message" of a map of scalars (labels, data, resource lists): nothing to walk
_SCALAR = _Struct()


@functools.cache
def _struct(message: str) -> _Struct:
    """A message compiled once; inlined embeds are spliced in where Go embeds them."""
    out = _Struct()
    _fill(out, message)
    return out


def _fill(out: _Struct, message: str) -> None:
    for name, typ, card, inline in go_fields(message):
        struct = "/" in typ and bool(go_fields(typ))
        if inline and struct:
            _fill(out, typ)
            continue
        out.rank[name] = len(out.rank)
        if struct:
            out.children[name] = (_struct(typ), card)
        elif card == "map":
            out.children[name] = (_SCALAR, card)  # its keys sorted, as Go writes maps


def _plan(keys: tuple[str, ...], struct: _Struct) -> _Plan:
    """How a dict with ``keys`` is put in Go's order (see :class:`_Struct`)."""
    plan = struct.plans.get(keys)
    if plan is None:
        rank = struct.rank.get
        order = tuple(sorted(keys, key=lambda k: rank(k, _UNKNOWN)))
        children = struct.children
        walk = tuple((k, *children[k]) for k in keys if k in children)
        plan = (() if order == keys else order, walk)
        if len(struct.plans) < _MAX_ORDERS:
            struct.plans[keys] = plan
    return plan


def _ordered(value: JSON, struct: _Struct) -> JSON:
    """``value`` in Go's order: ``value`` itself when it already is, all the way down
    (most of a stored object is, a write moves a few keys), else a new dict. Only the
    keys whose values are structs, lists or maps are looked into."""
    keys = tuple(value)
    order, walk = _plan(keys, struct)
    moved: JSON | None = None
    for name, sub, card in walk:
        v = value[name]
        if v is None:
            continue
        if card == "opt":
            new = _ordered(v, sub) if type(v) is dict else v
        elif card == "rep":
            new = _ordered_list(v, sub) if type(v) is list else v
        elif type(v) is dict:
            new = _sorted_map(v, sub)
        else:
            new = v
        if new is not v:
            if moved is None:
                moved = {}
            moved[name] = new
    if not order and moved is None:
        return value
    if moved is None:
        return {k: value[k] for k in order}
    return {k: moved.get(k, value[k]) for k in order or keys}


def _ordered_list(items: list[Any], struct: _Struct) -> list[Any]:
    out: list[Any] | None = None
    for i, x in enumerate(items):
        new = _ordered(x, struct) if type(x) is dict else x
        if new is not x:
            if out is None:
                out = list(items)
            out[i] = new
    return items if out is None else out


def _sorted_map(value: JSON, struct: _Struct) -> JSON:
    """A map as Go writes it: keys sorted, struct values in Go's order."""
    keys = list(value)
    sorted_keys = sorted(keys)
    if struct is _SCALAR:
        return value if keys == sorted_keys else {k: value[k] for k in sorted_keys}
    out: JSON = {}
    for k in sorted_keys:
        x = value[k]
        out[k] = _ordered(x, struct) if type(x) is dict else x
    same = keys == sorted_keys and all(out[k] is value[k] for k in keys)
    return value if same else out


def go_ordered(obj: JSON) -> JSON:
    """``obj`` (not changed) in Go's key order, when it is of a built-in kind whose
    structs the field table has; any other object comes back as it is. What already is
    in order is shared with ``obj``, not copied."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return obj
    message = message_of(api_version, kind)
    if message is None:
        return obj
    out: JSON = {"kind": kind, "apiVersion": api_version}
    out.update(_ordered(obj, _struct(message)))
    return out


def set_resource_version(obj: JSON, resource_version: str) -> JSON:
    """Set ``metadata.resourceVersion`` in ``obj`` itself (an object just decoded from
    storage, the caller's to change), in ObjectMeta's place after uid; returns ``obj``.

    Storage keeps the key, empty, where it belongs (see :func:`storage_form`), so this is
    one assignment; an object stored without it gets a new metadata dict around it."""
    meta = obj.get("metadata")
    if type(meta) is dict and "resourceVersion" in meta:
        meta["resourceVersion"] = resource_version
        return obj
    if not isinstance(meta, dict):
        obj["metadata"] = {"resourceVersion": resource_version}
        return obj
    placed = {k: meta[k] for k in _BEFORE_RV if k in meta}
    placed["resourceVersion"] = resource_version
    placed.update(meta)  # keys already placed keep their place
    obj["metadata"] = placed
    return obj


def with_resource_version(obj: JSON, resource_version: str) -> JSON:
    """``obj`` with ``metadata.resourceVersion`` set in ObjectMeta's place, as a new
    top-level dict and metadata; ``obj`` is not changed and the rest is shared."""
    meta = obj.get("metadata")
    copied = {**obj, "metadata": {**meta}} if isinstance(meta, dict) else {**obj}
    return set_resource_version(copied, resource_version)


def storage_form(obj: JSON) -> JSON:
    """What is stored of ``obj``: its resourceVersion empty (the store's revision is the
    truth, set again on every read) but in its place, selfLink left out."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "selfLink" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "selfLink"}}
    return with_resource_version(obj, "")
