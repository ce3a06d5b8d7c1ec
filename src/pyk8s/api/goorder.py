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
:func:`with_resource_version` puts the resourceVersion, which storage leaves out, back in
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
    """One message compiled for reordering: each JSON name's rank in Go's order, and the
    message of the names whose values are structs (or lists or maps of them)."""

    __slots__ = ("children", "rank")

    def __init__(self) -> None:
        self.rank: dict[str, int] = {}
        #: JSON name -> (message of the value, card: "opt" | "rep" | "map")
        self.children: dict[str, tuple[_Struct, str]] = {}


#: after every field Go knows: keys it does not know keep their order at the end
_UNKNOWN = 1 << 30

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


def _ordered(value: JSON, struct: _Struct) -> JSON:
    rank = struct.rank.get
    children = struct.children.get
    out: JSON = {}
    for name in sorted(value, key=lambda k: rank(k, _UNKNOWN)):
        v = value[name]
        child = children(name)
        if child is not None and v is not None:
            sub, card = child
            if card == "opt":
                if type(v) is dict:
                    v = _ordered(v, sub)
            elif card == "rep":
                if type(v) is list:
                    v = [_ordered(x, sub) if type(x) is dict else x for x in v]
            elif type(v) is dict:  # a map: Go writes its keys sorted
                if sub is _SCALAR:
                    v = {k: v[k] for k in sorted(v)}
                else:
                    v = {
                        k: _ordered(x, sub) if type(x) is dict else x for k, x in sorted(v.items())
                    }
        out[name] = v
    return out


def go_ordered(obj: JSON) -> JSON:
    """``obj`` (not changed) as a new dict in Go's key order, when it is of a built-in
    kind whose structs the field table has; any other object comes back as it is."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return obj
    message = message_of(api_version, kind)
    if message is None:
        return obj
    out: JSON = {"kind": kind, "apiVersion": api_version}
    out.update(_ordered(obj, _struct(message)))
    return out


def with_resource_version(obj: JSON, resource_version: str) -> JSON:
    """``obj`` with ``metadata.resourceVersion`` set in ObjectMeta's place (after uid),
    as a new top-level dict and metadata; the rest is shared with ``obj``."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return {**obj, "metadata": {"resourceVersion": resource_version}}
    placed: JSON = {}
    for key in _BEFORE_RV:
        if key in meta:
            placed[key] = meta[key]
    placed["resourceVersion"] = resource_version
    placed.update((k, v) for k, v in meta.items() if k not in placed)
    return {**obj, "metadata": placed}
