"""Managed fields and server-side apply: who set which field, by upstream's rules.

Every write records, in ``metadata.managedFields``, which manager set which fields
(structured-merge-diff, as kube-apiserver v1.32 runs it), and ``PATCH`` with
``application/apply-patch+yaml`` merges a manager's intent by the schema's structure,
removes what the manager stopped setting, and refuses (409) to change what someone else
set. Tools built on server-side apply (kubectl --server-side, Helm 4, Flux, controller-
runtime) read and rely on exactly these rules.

A field set is kept in the wire form itself, FieldsV1: a dict whose keys are path
elements (``f:<name>`` a struct field or map key, ``k:{...}`` a list-map item by its
keys, ``v:<json>`` a set item) and whose values are the children's sets; ``{}`` is a
member leaf, and ``"."`` marks a node with children that is a member too. Stored entries
are used as they are, so a write pays only for what it changes.

Shapes come from the official schemas (:mod:`pyk8s.api.schema`; ``x-kubernetes-list-
type``, ``-list-map-keys``, ``-map-type``) for built-in kinds and from the CRD's
``openAPIV3Schema`` for custom resources; fields no schema describes are deduced (maps
granular, lists atomic), as upstream does.

Pure: no I/O; inputs are not mutated.

Where we knowingly differ from upstream: one API version's paths are used for every
manager (upstream converts each manager's set between versions); a list-map key that the
object leaves out takes the schema default only for ``protocol`` (``TCP``); the ``i:``
element (lists keyed by index) is never produced.

Exceptions::

    StatusError (pyk8s.api.errors)
     └── 409 Conflict from :func:`apply` - fields another manager set, with upstream's
                                           message and FieldManagerConflict causes
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson

from pyk8s.api import errors
from pyk8s.api.schema import Schemas, schemas, types_of

JSON = dict[str, Any]
#: a field set in FieldsV1 form (see the module docstring)
FieldSet = dict[str, Any]

APPLY = "Apply"
UPDATE = "Update"
#: upstream keeps at most this many Update managers; older ones merge into ANCIENT
MAX_UPDATE_MANAGERS = 10
ANCIENT = "ancient-changes"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
#: kubectl's server-side apply manager, whose applies keep the last-applied annotation
KUBECTL_APPLY_MANAGER = "kubectl"
#: fields no manager owns (upstream's stripMeta)
_STRIPPED_META = (
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
)
#: defaults of list-map keys that objects may leave out
_KEY_DEFAULTS = {"protocol": "TCP"}


# ---------------------------------------------------------------------------- shapes

_ANY_REF: list[Shape] = []


class Shape:
    """How one node of an object merges: ``leaf`` (scalars, atomic lists and maps),
    ``struct`` (declared fields), ``map`` (granular map), ``list`` (set or map list), or
    ``any`` (deduced from the value: maps granular, lists atomic)."""

    __slots__ = ("_fields", "_node", "_schemas", "elem", "keys", "kind", "list_type")

    def __init__(self, kind: str, node: JSON | None = None, ctx: Schemas | None = None) -> None:
        self.kind = kind
        self._node = node or {}
        self._schemas = ctx
        self._fields: dict[str, Shape] = {}
        self.list_type = ""
        self.keys: tuple[str, ...] = ()
        #: a map's values or a list's items (deduced until compiled)
        self.elem: Shape = _ANY_REF[0] if _ANY_REF else self

    def field(self, name: str) -> Shape | None:
        """The shape of a declared field (struct) or of a map's values; None when the
        struct does not declare ``name``."""
        if self.kind == "map":
            return self.elem
        if self.kind == "any":
            return self
        got = self._fields.get(name)
        if got is not None:
            return got
        props = self._node.get("properties") or {}
        if name not in props:
            extra = self._node.get("additionalProperties")
            if isinstance(extra, dict):
                got = compile_shape(extra, self._schemas)
                self._fields[name] = got
                return got
            return None
        got = compile_shape(props[name], self._schemas)
        self._fields[name] = got
        return got


ANY = Shape("any")
_ANY_REF.append(ANY)


def _resolve(node: JSON, ctx: Schemas | None) -> JSON:
    return ctx.resolve(node) if ctx is not None else node


def compile_shape(node: JSON, ctx: Schemas | None) -> Shape:
    """The shape of a schema node (built-in definitions through ``ctx``)."""
    ref_name = _ref_name(node)
    if ref_name is not None and ctx is not None:
        return _definition_shape(ref_name, id(ctx))
    return _compile(_resolve(node, ctx), ctx)


def _ref_name(node: JSON) -> str | None:
    ref = node.get("$ref")
    if ref is None:
        all_of = node.get("allOf")
        if all_of and len(all_of) == 1 and "$ref" in all_of[0]:
            ref = all_of[0]["$ref"]
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


_SHAPES: dict[tuple[str, int], Shape] = {}


def _definition_shape(name: str, ctx_id: int) -> Shape:
    key = (name, ctx_id)
    got = _SHAPES.get(key)
    if got is None:
        ctx = schemas()
        got = _compile(ctx.get(name), ctx)
        _SHAPES[key] = got
    return got


def _compile(node: JSON, ctx: Schemas | None) -> Shape:
    if node.get("x-kubernetes-int-or-string"):
        return LEAF
    types = types_of(node)
    if "properties" in node:
        if node.get("x-kubernetes-map-type") == "atomic":
            return LEAF
        return Shape("struct", node, ctx)
    if "array" in types or "items" in node:
        list_type = node.get("x-kubernetes-list-type") or "atomic"
        if list_type == "atomic":
            return LEAF
        shape = Shape("list", node, ctx)
        shape.list_type = list_type
        shape.keys = tuple(node.get("x-kubernetes-list-map-keys") or ())
        items = node.get("items")
        shape.elem = compile_shape(items, ctx) if isinstance(items, dict) else ANY
        return shape
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        if node.get("x-kubernetes-map-type") == "atomic":
            return LEAF
        shape = Shape("map", node, ctx)
        shape.elem = compile_shape(extra, ctx)
        return shape
    if "object" in types or node.get("x-kubernetes-preserve-unknown-fields"):
        return ANY
    return LEAF


LEAF = Shape("leaf")


@functools.cache
def builtin_shape(definition: str) -> Shape:
    """The shape of a built-in kind by its definition name."""
    ctx = schemas()
    return _definition_shape(definition, id(ctx))


def custom_shape(schema: JSON) -> Shape:
    """The shape of a custom resource: its CRD schema, with ObjectMeta's for metadata."""
    root = Shape("struct", {"properties": {}}, None) if not schema else _compile(schema, None)
    if root.kind != "struct":
        root = Shape("struct", {"properties": {}, "x-kubernetes-preserve-unknown-fields": True})
    root._fields["metadata"] = builtin_shape("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
    root._fields.setdefault("apiVersion", LEAF)
    root._fields.setdefault("kind", LEAF)
    return root


# ---------------------------------------------------------------------------- path elements


def _is_member(node: FieldSet) -> bool:
    return not node or "." in node


def _item_key(item: Any, shape: Shape) -> str | None:
    """The path element of a list item: ``k:{...}`` (keys sorted by name, as upstream's
    FieldList) or ``v:<json>``; None when the item cannot be keyed."""
    if shape.list_type == "map":
        if not isinstance(item, dict):
            return None
        fields = {}
        for k in sorted(shape.keys):
            value = item.get(k, _KEY_DEFAULTS.get(k))
            if value is not None:
                fields[k] = value
        return "k:" + orjson.dumps(fields).decode()
    return "v:" + orjson.dumps(item, option=orjson.OPT_SORT_KEYS).decode()


def _index(items: Any, shape: Shape) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(items, list):
        for item in items:
            key = _item_key(item, shape)
            if key is not None:
                out.setdefault(key, item)
    return out


def _composite(value: Any, shape: Shape) -> bool:
    """Whether ``value`` is walked into (not a leaf) at ``shape``."""
    if shape.kind in ("struct", "map"):
        return isinstance(value, dict)
    if shape.kind == "list":
        return isinstance(value, list)
    return shape.kind == "any" and isinstance(value, dict)


# ---------------------------------------------------------------------------- sets of objects


def field_set(obj: JSON, shape: Shape) -> FieldSet:
    """The fields an applied configuration sets (upstream's ToFieldSet): leaves, list
    items, map entries that are not declared struct fields, empty or null values."""
    return _children(obj, shape) if isinstance(obj, dict) else {}


def _children(value: Any, shape: Shape) -> FieldSet:
    out: FieldSet = {}
    if shape.kind == "list":
        elem = shape.elem
        for item in value:
            key = _item_key(item, shape)
            if key is None:
                continue
            sub = _children(item, elem) if _composite(item, elem) else {}
            if sub:
                sub["."] = {}
            out[key] = sub
        return out
    for name, child in value.items():
        cshape = shape.field(name)
        declared = cshape is not None and shape.kind == "struct"
        cshape = cshape or ANY
        if _composite(child, cshape):
            sub = _children(child, cshape)
            if not child or not declared:
                if sub:
                    sub["."] = {}
                out["f:" + name] = sub
            elif sub:
                out["f:" + name] = sub
        else:
            out["f:" + name] = {}
    return out


def _everything(value: Any, shape: Shape) -> FieldSet:
    """Every node of a value that appeared or went away, each a member."""
    if not _composite(value, shape) or not value:
        return {}
    out: FieldSet = {".": {}}
    if shape.kind == "list":
        for item in value:
            key = _item_key(item, shape)
            if key is not None:
                out[key] = _everything(item, shape.elem)
        return out
    for name, child in value.items():
        out["f:" + name] = _everything(child, shape.field(name) or ANY)
    return out


def compare(old: Any, new: Any, shape: Shape) -> tuple[FieldSet, FieldSet]:
    """What an update changed (added or modified) and what it removed, as sets (upstream's
    Compare): an added node is a member with all it holds."""
    changed: FieldSet = {}
    removed: FieldSet = {}
    _compare_into(old, new, shape, changed, removed)
    return changed, removed


def _compare_into(old: Any, new: Any, shape: Shape, changed: FieldSet, removed: FieldSet) -> None:
    if shape.kind == "list":
        olds, news = _index(old, shape), _index(new, shape)
    else:
        olds, news = old, new
    elem = shape.elem
    for key, nv in news.items():
        if shape.kind == "list":
            cshape = elem
            path = key
        else:
            cshape = shape.field(key) or ANY
            path = "f:" + key
        if key not in olds:
            changed[path] = _everything(nv, cshape)
            continue
        ov = olds[key]
        if ov is nv or ov == nv:  # most of an update: equal subtrees, compared in C
            continue
        both = _composite(ov, cshape) and _composite(nv, cshape)
        if both and (ov or nv):
            sub_c: FieldSet = {}
            sub_r: FieldSet = {}
            _compare_into(ov, nv, cshape, sub_c, sub_r)
            if sub_c:
                changed[path] = sub_c
            if sub_r:
                removed[path] = sub_r
        elif ov != nv:
            # one side a non-empty map or list, the other empty, null or a scalar: its
            # items came or went; otherwise a leaf that changed
            gone = _composite(ov, cshape) and ov
            came = _composite(nv, cshape) and nv
            if gone:
                removed[path] = _strip_root(_everything(ov, cshape))
            if came:
                changed[path] = _strip_root(_everything(nv, cshape))
            if not gone and not came:
                changed[path] = {}
    for key, ov in olds.items():
        if key not in news:
            cshape = elem if shape.kind == "list" else (shape.field(key) or ANY)
            removed[key if shape.kind == "list" else "f:" + key] = _everything(ov, cshape)


def created(zero: Any, new: Any, shape: Shape) -> FieldSet:
    """What a create of ``new`` changed over the kind's zero value, in upstream's order:
    ``canonical(compare(zero, new, shape)[0])`` built in one walk (a create's set is the
    whole object, and sorting it afterwards cost as much as a third of building it)."""
    out: FieldSet = {}
    _created_into(zero, new, shape, out)
    return out


def _created_into(old: Any, new: Any, shape: Shape, changed: FieldSet) -> None:
    """:func:`_compare_into`'s ``changed`` side, each level's keys visited in order."""
    if shape.kind == "list":
        olds, news = _index(old, shape), _index(new, shape)
        keys = _sorted_keys(news)
    else:
        olds, news = old, new
        keys = sorted(news)  # "f:" + name sorts as the names do
    elem = shape.elem
    for key in keys:
        nv = news[key]
        if shape.kind == "list":
            cshape = elem
            path = key
        else:
            cshape = shape.field(key) or ANY
            path = "f:" + key
        if key not in olds:
            changed[path] = _everything_in_order(nv, cshape)
            continue
        ov = olds[key]
        if ov is nv or ov == nv:
            continue
        if _composite(ov, cshape) and _composite(nv, cshape) and (ov or nv):
            sub: FieldSet = {}
            _created_into(ov, nv, cshape, sub)
            if sub:
                changed[path] = sub
        elif _composite(nv, cshape) and nv:
            changed[path] = _strip_root(_everything_in_order(nv, cshape))
        elif not (_composite(ov, cshape) and ov):
            changed[path] = {}


def _everything_in_order(value: Any, shape: Shape) -> FieldSet:
    """``_canonical_node(_everything(value, shape))`` in one walk."""
    if not _composite(value, shape) or not value:
        return {}
    if shape.kind == "list":
        items: FieldSet = {}
        for item in value:
            key = _item_key(item, shape)
            if key is not None:
                items[key] = item
        if not items:
            return {}  # a member with no children is written as {}
        out: FieldSet = {".": {}}
        for key in _sorted_keys(items):
            out[key] = _everything_in_order(items[key], shape.elem)
        return out
    out = {".": {}}
    for name in sorted(value):
        out["f:" + name] = _everything_in_order(value[name], shape.field(name) or ANY)
    return out


# ---------------------------------------------------------------------------- set algebra


def union(a: FieldSet, b: FieldSet) -> FieldSet:
    """Members of either set (a root: no membership of its own)."""
    return _strip_root(_union(a, b)) if a or b else {}


def _union(a: FieldSet, b: FieldSet) -> FieldSet:
    if not b:
        return a if a else {}
    if not a:
        out = dict(b)
        out["."] = {}
        return out
    out = dict(a)
    for k, v in b.items():
        if k == ".":
            continue
        out[k] = _union(out[k], v) if k in out else v
    if "." in b:
        out["."] = {}
    return out


def difference(a: FieldSet, b: FieldSet) -> FieldSet:
    """Members of ``a`` not in ``b`` (a root: no membership of its own)."""
    if not a or not b:
        return a
    got = _difference(a, b, root=True)
    return got or {}


def _difference(a: FieldSet, b: FieldSet, *, root: bool = False) -> FieldSet | None:
    """``a`` without ``b``'s members; ``a`` itself when nothing goes (walks ``b`` only:
    a write's changes are small, a manager's set may be large)."""
    if not b:  # b is a member leaf: a loses its own membership, keeps its children
        if not a or root:
            return a or None
        rest = {k: v for k, v in a.items() if k != "."}
        return rest or None
    out = a
    for k, bv in b.items():
        if k == ".":
            continue
        av = a.get(k)
        if av is None:
            continue
        got = _difference(av, bv)
        if got is av:
            continue
        if out is a:
            out = dict(a)
        if got is None:
            del out[k]
        else:
            out[k] = got
    member = not root and _is_member(a) and "." not in b
    children = len(out) - (1 if "." in out else 0)
    if not children:
        return (a if not a else {}) if member else None  # an unchanged leaf stays itself
    if not member and "." in out:
        if out is a:
            out = dict(a)
        del out["."]
    return out


def intersection(a: FieldSet, b: FieldSet) -> FieldSet:
    """Members in both sets."""
    if not a or not b:
        return {}
    return _intersection(a, b, root=True) or {}


def _intersection(a: FieldSet, b: FieldSet, *, root: bool = False) -> FieldSet | None:
    member = False if root else (_is_member(a) and _is_member(b))
    out: FieldSet = {}
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    for k, v in small.items():
        if k == ".":
            continue
        other = large.get(k)
        if other is not None:
            got = _intersection(v, other) if small is a else _intersection(other, v)
            if got is not None:
                out[k] = got
    if not out:
        return {} if member else None
    if member:
        out["."] = {}
    return out


def _union_in_order(a: FieldSet, b: FieldSet, *, root: bool = False) -> FieldSet:
    """The union of two sets in upstream's order, re-sorting only the levels ``b`` adds
    keys to (``a`` is a stored entry, already in order; ``b`` is canonical)."""
    if not b:
        if root or "." in a or not a:
            return a
        return {".": {}, **a}
    if not a:
        return b if root else ({".": {}, **b} if "." not in b else b)
    out = dict(a)
    added = False
    for k, v in b.items():
        if k in out:
            out[k] = _union_in_order(out[k], v)
        else:
            out[k] = v
            added = True
    if added:
        out = {k: out[k] for k in _sorted_keys(out)}
    return out


def _strip_root(s: FieldSet) -> FieldSet:
    if "." in s:
        s = {k: v for k, v in s.items() if k != "."}
    return s


def paths(s: FieldSet) -> list[str]:
    """The members of a set as upstream prints paths (``.spec.replicas``,
    ``.spec.containers[name="app"].image``), in the set's order."""
    out: list[str] = []
    _paths(s, "", out, root=True)
    return out


def _paths(s: FieldSet, prefix: str, out: list[str], *, root: bool = False) -> None:
    if not root and _is_member(s):
        out.append(prefix)
    for k in _sorted_keys(s):
        if k == ".":
            continue
        _paths(s[k], prefix + _print_element(k), out)


def _print_element(key: str) -> str:
    kind, rest = key[:2], key[2:]
    if kind == "f:":
        return "." + rest
    if kind == "k:":
        fields = orjson.loads(rest)
        return "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in fields.items()) + "]"
    if kind == "v:":
        return "[=" + rest + "]"
    return "[" + rest + "]"


_RANK = {".": 0, "f": 1, "k": 2, "v": 3, "i": 4}


#: first characters whose plain string order already is upstream's ("." < "f" < "k" < "v")
_PLAIN_ORDER = frozenset(".fkv")


def _sorted_keys(s: FieldSet) -> list[str]:
    if len(s) < 2:
        return list(s)
    keys = sorted(s)
    # most levels hold only fields (f:) or keyed items (k:): plain order is upstream's
    # there, and checking that is cheaper than sorting by rank (~half of canonical's cost)
    if {k[0] for k in keys} <= _PLAIN_ORDER:
        return keys
    return sorted(keys, key=lambda k: (_RANK.get(k[0], 5), k))


def canonical(s: FieldSet) -> FieldSet:
    """A set with every level in upstream's order ("." first, then fields, keys, values)."""
    return {k: _canonical_node(s[k]) for k in _sorted_keys(s)}


def _canonical_node(node: FieldSet) -> FieldSet:
    if not node or (len(node) == 1 and "." in node):
        return {}  # a member without children is written as {}
    return {k: _canonical_node(node[k]) for k in _sorted_keys(node)}


def strip_ignored(s: FieldSet, *, status: str) -> FieldSet:
    """Drop what no manager owns: type and server-owned metadata (upstream's stripMeta),
    and ``status`` (``status="drop"``) or all but status (``status="only"``)."""
    if not s:
        return s
    out = dict(s)
    out.pop("f:apiVersion", None)
    out.pop("f:kind", None)
    out.pop(".", None)
    meta = out.get("f:metadata")
    if meta is not None:
        meta = {k: v for k, v in meta.items() if k != "." and k[2:] not in _STRIPPED_META}
        if meta:
            out["f:metadata"] = meta
        else:
            del out["f:metadata"]
    if status == "drop":
        out.pop("f:status", None)
    elif status == "only":
        out = {k: v for k, v in out.items() if k == "f:status"}
    return out


# ---------------------------------------------------------------------------- entries


@dataclass
class Manager:
    """One managedFields entry, its set in FieldsV1 form."""

    manager: str
    operation: str
    api_version: str
    time: str | None
    fields: FieldSet
    subresource: str = ""

    @property
    def identity(self) -> tuple[str, str, str, str]:
        version = "" if self.operation == APPLY else self.api_version
        return (self.manager, self.operation, version, self.subresource)

    def entry(self) -> JSON:
        out: JSON = {"manager": self.manager, "operation": self.operation}
        if self.api_version:
            out["apiVersion"] = self.api_version
        if self.time:
            out["time"] = self.time
        out["fieldsType"] = "FieldsV1"
        out["fieldsV1"] = self.fields
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def decode(entries: Any) -> list[Manager] | None:
    """The managers of ``metadata.managedFields``; None when they do not decode."""
    if not isinstance(entries, list):
        return None
    out: list[Manager] = []
    for e in entries:
        if not isinstance(e, dict):
            return None
        op = e.get("operation")
        fields = e.get("fieldsV1", {})
        if op not in (APPLY, UPDATE) or not isinstance(fields, dict):
            return None
        if e.get("fieldsType", "FieldsV1") != "FieldsV1":
            return None
        out.append(
            Manager(
                str(e.get("manager") or ""),
                op,
                str(e.get("apiVersion") or ""),
                e.get("time"),
                fields,
                str(e.get("subresource") or ""),
            )
        )
    return out


def is_reset(entries: Any) -> bool:
    """``managedFields: []`` or ``[{}]`` in a request: the client clears them all."""
    return isinstance(entries, list) and (entries == [] or entries == [{}])


def encode(managers: Iterable[Manager]) -> list[JSON]:
    """Entries in upstream's order: Apply before Update, then by time, manager, version,
    subresource."""
    ordered = sorted(
        managers,
        key=lambda m: (m.operation, m.time or "", m.manager, m.api_version, m.subresource),
    )
    return [m.entry() for m in ordered if m.fields]


def manager_from_user_agent(user_agent: str) -> str:
    """Upstream's manager for a request without ``fieldManager``: the user agent up to the
    first ``/``, printable characters only, at most 128."""
    prefix = user_agent.split("/", 1)[0]
    return "".join(c for c in prefix if c.isprintable())[:128]


def _remove_from_others(managers: list[Manager], me: tuple[str, ...], taken: FieldSet) -> None:
    if not taken:
        return
    for m in managers:
        if m.identity != me and m.fields:
            m.fields = difference(m.fields, taken)


def _drop_removed(managers: list[Manager], removed: FieldSet) -> None:
    if not removed:
        return
    for m in managers:
        if m.fields:
            m.fields = difference(m.fields, removed)


def _cap(managers: list[Manager]) -> list[Manager]:
    updates = [m for m in managers if m.operation == UPDATE]
    if len(updates) <= MAX_UPDATE_MANAGERS:
        return managers
    updates.sort(key=lambda m: m.time or "")
    excess = updates[: len(updates) - MAX_UPDATE_MANAGERS + 1]
    ancient = next((m for m in managers if m.manager == ANCIENT and m.operation == UPDATE), None)
    merged: FieldSet = ancient.fields if ancient is not None else {}
    for m in excess:
        merged = union(merged, m.fields)
    gone = {id(m) for m in excess} | ({id(ancient)} if ancient is not None else set())
    out = [m for m in managers if id(m) not in gone]
    out.append(Manager(ANCIENT, UPDATE, excess[-1].api_version, excess[-1].time, merged))
    return out


def update(
    base: list[Manager],
    changed: FieldSet,
    removed: FieldSet,
    *,
    manager: str,
    api_version: str,
    subresource: str,
    time: str,
) -> list[Manager]:
    """The managers after an Update by ``manager``: it owns what it changed (merged into
    its earlier entry, time moved), nobody else keeps what changed or went away."""
    managers = [
        Manager(m.manager, m.operation, m.api_version, m.time, m.fields, m.subresource)
        for m in base
    ]
    me = (manager, UPDATE, api_version, subresource)
    _remove_from_others(managers, me, changed)
    _drop_removed(managers, removed)
    if changed:
        mine = next((m for m in managers if m.identity == me), None)
        if mine is None:
            managers.append(
                Manager(manager, UPDATE, api_version, time, canonical(changed), subresource)
            )
        else:
            mine.fields = _union_in_order(mine.fields, canonical(changed), root=True)
            mine.time = time
    return _cap([m for m in managers if m.fields])


# ---------------------------------------------------------------------------- apply


def merge(live: Any, config: Any, shape: Shape) -> Any:
    """``config`` merged over ``live`` by the schema's structure (upstream's Merge)."""
    if config == live:  # a re-apply of what is there (live holds no nulls to drop)
        return live
    if not (_composite(live, shape) and _composite(config, shape)):
        return _without_nulls(config)
    if shape.kind == "list":
        return _merge_list(live, config, shape)
    out = dict(live)
    for k, cv in config.items():
        if cv is None:
            out.pop(k, None)
            continue
        if k in out:
            out[k] = merge(out[k], cv, shape.field(k) or ANY)
        else:
            out[k] = _without_nulls(cv)
    return out


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _merge_list(live: list[Any], config: list[Any], shape: Shape) -> list[Any]:
    """Items by key, in upstream's order: config's order for the items it names, live's
    other items kept where they were relative to them."""
    elem = shape.elem
    lkeys = [_item_key(x, shape) for x in live]
    rkeys = [_item_key(x, shape) for x in config]
    rindex = {k: v for k, v in zip(rkeys, config, strict=True) if k is not None}
    lindex = {k: v for k, v in zip(lkeys, live, strict=True) if k is not None}
    shared = [k for k in rkeys if k in lindex]
    out: list[Any] = []
    merged: set[str | None] = set()
    li = ri = 0
    si = 0
    while li < len(lkeys) or ri < len(rkeys):
        if li < len(lkeys) and ri < len(rkeys):
            pe = lkeys[li]
            if pe == rkeys[ri]:
                merged.add(pe)
                out.append(merge(live[li], config[ri], elem))
                li += 1
                ri += 1
                if si < len(shared) and shared[si] == pe:
                    si += 1
                continue
            if pe in rindex and si < len(shared) and shared[si] != pe:
                li += 1
                continue
        if li < len(lkeys):
            pe = lkeys[li]
            if pe not in rindex:
                out.append(live[li])
                li += 1
                continue
            if pe in merged:
                li += 1
                continue
        if ri < len(rkeys):
            pe = rkeys[ri]
            merged.add(pe)
            if pe is not None and pe in lindex:
                out.append(merge(lindex[pe], config[ri], elem))
            else:
                out.append(_without_nulls(config[ri]))
            ri += 1
            if si < len(shared) and shared[si] == pe:
                si += 1
    return out


def prune(obj: Any, drop: FieldSet, keep: FieldSet, shape: Shape) -> Any:
    """``obj`` without the members of ``drop`` that ``keep`` neither holds nor holds
    anything under (what an applier stopped setting and nobody else owns)."""
    if not drop or not _composite(obj, shape):
        return obj
    if shape.kind == "list":
        out_list = []
        for item in obj:
            key = _item_key(item, shape)
            sub = drop.get(key) if key is not None else None
            if sub is None:
                out_list.append(item)
                continue
            kept = keep.get(key) if key is not None else None
            if _is_member(sub) and kept is None:
                continue
            out_list.append(prune(item, sub, kept or {}, shape.elem))
        return out_list
    out = dict(obj)
    for path, sub in drop.items():
        if path == "." or not path.startswith("f:"):
            continue
        name = path[2:]
        if name not in out:
            continue
        kept = keep.get(path)
        if _is_member(sub) and kept is None:
            del out[name]
            continue
        cshape = shape.field(name) or ANY
        pruned = prune(out[name], sub, kept or {}, cshape)
        if (pruned == [] or pruned == {}) and out[name] and (kept is None or not _is_member(kept)):
            del out[name]  # emptied by the prune, owned empty by nobody: omitempty drops it
            continue
        out[name] = pruned
    return out


def conflict_error(conflicts: list[tuple[Manager, str]]) -> errors.StatusError:
    """Upstream's 409 for an apply over fields other managers own."""

    def who(m: Manager) -> str:
        text = json.dumps(m.manager)
        if m.subresource:
            text += f" with subresource {json.dumps(m.subresource)}"
        if m.operation == UPDATE:
            text += f" using {m.api_version}"
        return text

    if len(conflicts) == 1:
        m, path = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {who(m)}: {path}"
    else:
        by_manager: dict[str, list[str]] = {}
        for m, path in conflicts:
            by_manager.setdefault(who(m), []).append(path)
        lines = []
        for name in sorted(by_manager):
            lines.append(f"conflicts with {name}:")
            lines += [f"- {p}" for p in by_manager[name]]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    causes = [
        {"reason": "FieldManagerConflict", "message": f"conflict with {who(m)}", "field": path}
        for m, path in conflicts
    ]
    return errors.StatusError(409, "Conflict", message, details={"causes": causes})


@dataclass
class Applied:
    """The outcome of an apply: the object to write and its managers."""

    obj: JSON
    managers: list[Manager]


def apply(
    live: JSON,
    config: JSON,
    base: list[Manager],
    shape: Shape,
    *,
    manager: str,
    api_version: str,
    subresource: str,
    status: str,
    force: bool,
    time: str,
    allowed_conflicts: Callable[[], FieldSet] | None = None,
) -> Applied:
    """Server-side apply of ``config`` by ``manager`` over ``live``: merge, drop what the
    manager set before and no longer sets (unless someone else owns it), and take
    ownership; 409 when that changes fields other managers own and not ``force``.
    ``allowed_conflicts``: fields that may be taken over anyway (kubectl's migration from
    client-side apply)."""
    me = (manager, APPLY, "", subresource)
    previous = next((m for m in base if m.identity == me), None)
    new_set = canonical(strip_ignored(field_set(config, shape), status=status))
    merged = merge(live, config, shape)
    if previous is not None and previous.fields and previous.fields != new_set:
        others: FieldSet = {}
        for m in base:
            if m.identity != me:
                others = union(others, m.fields)
        drop = difference(previous.fields, new_set)
        merged = prune(merged, drop, union(others, new_set), shape)
    changed, removed = compare(live, merged, shape)
    changed = strip_ignored(changed, status=status)
    removed = strip_ignored(removed, status=status)
    conflicts: list[tuple[Manager, str]] = []
    if not force:
        allowed: FieldSet | None = None
        for m in base:
            if m.identity == me:
                continue
            clash = intersection(m.fields, changed)
            if clash and allowed_conflicts is not None:
                if allowed is None:
                    allowed = allowed_conflicts()
                clash = difference(clash, allowed)
            conflicts += [(m, p) for p in paths(clash)]
    if conflicts:
        raise conflict_error(conflicts)
    managers = [
        Manager(m.manager, m.operation, m.api_version, m.time, m.fields, m.subresource)
        for m in base
        if m.identity != me
    ]
    _remove_from_others(managers, me, changed)
    _drop_removed(managers, removed)
    same = previous is not None and previous.fields == new_set and not changed
    mine = Manager(
        manager,
        APPLY,
        api_version,
        previous.time if same and previous is not None else time,
        new_set,
        subresource,
    )
    managers.append(mine)
    return Applied(merged, [m for m in managers if m.fields])


# ---------------------------------------------------------------------------- empty objects


@functools.cache
def _proto_messages() -> dict[str, list[list[Any]]]:
    path = resources.files("pyk8s.api") / "protobuf_fields.json"
    messages: dict[str, list[list[Any]]] = json.loads(path.read_text())["messages"]
    return messages


def _message_name(definition: str) -> str:
    parts = definition.split(".")
    return f"{parts[-3]}/{parts[-2]}.{parts[-1]}"


@functools.cache
def _zero(message: str) -> JSON:
    messages = _proto_messages()
    out: JSON = {}
    for _number, name, type_name, label, flags in messages.get(message, ()):
        if label == "opt" and "p" not in flags and type_name in messages:
            out[name] = _zero(type_name)
        elif label in ("rep", "map") and flags == "":
            out[name] = None
    return out


def empty_object(definition: str | None) -> JSON:
    """What upstream's create compares against: the kind's Go zero value as JSON (structs
    present and empty, lists and maps without omitempty null), ``{}`` for custom
    resources. Read-only."""
    if definition is None:
        return {}
    return _zero(_message_name(definition))
