"""What the official schema alone can say: unknown fields, type mismatches, required keys.

Upstream learns these while decoding JSON into Go structs, so they come back in that
decoder's words: an unknown field is ``unknown field "spec.foo"`` (reported, dropped, or
rejected per ``fieldValidation``), and a wrong type is the 400 ``json: cannot unmarshal
string into Go struct field DeploymentSpec.spec.replicas of type int32``. We walk the
object beside its schema from kubernetes-validate; each schema node is classified once
and cached by identity, so a write costs one pass over the object, not over the schema.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pyk8s.api import errors
from pyk8s.api.errors import FieldError
from pyk8s.api.gofmt import json_kind
from pyk8s.api.protobuf import omits_empty
from pyk8s.api.quantity import ERR_FORMAT_WRONG, QuantityError, parse_quantity
from pyk8s.api.registry import Resource
from pyk8s.api.schema import JSON, schemas

# ---------------------------------------------------------------- node classification


@dataclass(eq=False)
class Node:
    kind: str  # struct | map | array | string | int | number | bool | quantity |
    # intstr | time | bytes | any
    go: str  # the Go type name, for decode errors
    struct: str = ""  # the Go struct name, for struct nodes
    props: dict[str, JSON] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    sub: JSON | None = None  # items / additionalProperties schema
    message: str = ""  # a struct's name in pyk8s.api.protobuf's table ("core/v1.PodSpec")


_OPAQUE = {
    "io.k8s.apimachinery.pkg.runtime.RawExtension",
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
}
_SPECIAL = {
    "io.k8s.apimachinery.pkg.api.resource.Quantity": ("quantity", "resource.Quantity"),
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": ("intstr", "intstr.IntOrString"),
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time": ("time", "v1.Time"),
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": ("time", "v1.MicroTime"),
}

_cache: dict[int, Node] = {}


def _ref_name(node: JSON) -> str | None:
    ref = node.get("$ref")
    if ref is None:
        all_of = node.get("allOf")
        if all_of and len(all_of) == 1 and "$ref" in all_of[0]:
            ref = all_of[0]["$ref"]
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def _go_struct_name(def_name: str) -> tuple[str, str]:
    parts = def_name.split(".")
    return parts[-1], f"{parts[-2]}.{parts[-1]}"


def classify(node: JSON) -> Node:
    key = id(node)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    out = _classify(node)
    _cache[key] = out
    return out


def _classify(node: JSON) -> Node:
    sch = schemas()
    name = _ref_name(node)
    while name is not None:
        if name in _SPECIAL:
            kind, go = _SPECIAL[name]
            return Node(kind, go)
        if name in _OPAQUE:
            return Node("any", "interface {}")
        target = sch.definitions[name]
        if "properties" in target:
            struct, go = _go_struct_name(name)
            group, version = name.split(".")[-3:-1]
            return Node(
                "struct",
                go,
                struct,
                target["properties"],
                tuple(target.get("required", ())),
                message=f"{group}/{version}.{struct}",
            )
        nxt = _ref_name(target)
        if nxt is None:
            node = target
            break
        name = nxt
    t = node.get("type")
    types = {t} if isinstance(t, str) else set(t or ())
    types.discard("null")
    if "array" in types:
        item = node.get("items")
        sub = item if isinstance(item, dict) else {}
        return Node("array", "[]" + classify(sub).go if sub else "[]interface {}", sub=sub)
    if "object" in types:
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            return Node("map", "map[string]" + classify(extra).go, sub=extra)
        if "properties" in node:
            return Node("struct", "struct", "", node["properties"], tuple(node.get("required", ())))
        return Node("any", "map[string]interface {}")
    if "string" in types:
        if node.get("format") == "byte":
            return Node("bytes", "[]uint8")
        if node.get("format") == "date-time":
            return Node("time", "v1.Time")
        return Node("string", "string")
    if "integer" in types:
        return Node("int", node.get("format") or "int64")
    if "number" in types:
        return Node("number", "float64")
    if "boolean" in types:
        return Node("bool", "bool")
    return Node("any", "interface {}")


@functools.cache
def _root(group: str, version: str, kind: str) -> Node | None:
    name = schemas().name_for(group, version, kind)
    if name is None:
        return None
    return _classify({"$ref": f"#/$defs/{name}"})  # not via the id-keyed cache: a temp dict


def _root_for(resource: Resource) -> Node | None:
    return _root(resource.group, resource.version, resource.kind)


# ---------------------------------------------------------------- unknown fields


def unknown_fields(resource: Resource, obj: JSON) -> list[str]:
    """Paths of fields the schema does not know (``spec.containers[0].foo``), in order."""
    root = _root_for(resource)
    out: list[str] = []
    if root is not None and isinstance(obj, dict) and _any_unknown(root, obj):
        _unknown(root, obj, "", out)
    return out


def _field(path: str, k: str) -> str:
    return f"{path}.{k}" if path else k


def _elements(node: Node, value: Any, path: str, key_fmt: str) -> Iterator[tuple[Node, Any, str]]:
    """(schema, value, path) of each item of an array or map ``value``, when its schema has
    fields to walk into (a struct, array or map). ``key_fmt`` spells a map entry's path."""
    if node.kind == "array" and isinstance(value, list) and node.sub:
        entries = [(f"{path}[{n}]", v) for n, v in enumerate(value)]
    elif node.kind == "map" and isinstance(value, dict) and node.sub:
        entries = [(key_fmt.format(path, k), v) for k, v in value.items()]
    else:
        return
    item = classify(node.sub)
    if item.kind in ("struct", "array", "map"):
        for p, v in entries:
            yield item, v, p


def _items(node: Node, value: Any) -> tuple[Node, Iterable[Any]] | None:
    """The schema of the items of an array or map ``value`` and the items, when that
    schema has fields to walk into (a struct, array or map); None when there is nothing
    to walk."""
    if not node.sub:
        return None
    if node.kind == "array" and isinstance(value, list):
        items: Iterable[Any] = value
    elif node.kind == "map" and isinstance(value, dict):
        items = value.values()
    else:
        return None
    item = classify(node.sub)
    return (item, items) if item.kind in ("struct", "array", "map") else None


def _any_unknown(node: Node, value: Any) -> bool:
    """Whether :func:`_unknown` would find anything: the same walk without the paths, as
    every write asks and almost every object has no unknown field."""
    return _unknown_check(node)(value)


#: id(node) -> the node's compiled "has an unknown field" check (see :func:`_unknown_check`)
_unknown_checks: dict[int, Callable[[Any], bool]] = {}


def _knows_all(value: Any) -> bool:
    return False


def _unknown_check(node: Node) -> Callable[[Any], bool]:
    """Whether a value of ``node`` has a field its schema does not know anywhere inside it,
    compiled once per node: a struct keeps the check of each property it has met (its
    schema classified once), a list or map runs its items' check."""
    hit = _unknown_checks.get(id(node))
    if hit is not None:
        return hit
    if node.kind == "struct":
        props = node.props
        known: dict[str, Callable[[Any], bool]] = {}

        def struct_unknown(value: Any) -> bool:
            if not isinstance(value, dict):
                return False
            for k, v in value.items():
                check = known.get(k)
                if check is None:
                    sub = props.get(k)
                    if sub is None:
                        return True
                    check = known[k] = _unknown_check(classify(sub))
                if isinstance(v, (dict, list)) and check(v):
                    return True
            return False

        _unknown_checks[id(node)] = struct_unknown
        return struct_unknown
    sub = node.sub
    item = classify(sub) if sub else None
    if (
        item is None
        or node.kind not in ("array", "map")
        or item.kind not in ("struct", "array", "map")
    ):
        _unknown_checks[id(node)] = _knows_all
        return _knows_all
    cell: list[Callable[[Any], bool]] = []
    if node.kind == "array":

        def items_unknown(value: Any) -> bool:
            return isinstance(value, list) and any(map(cell[0], value))
    else:

        def items_unknown(value: Any) -> bool:
            return isinstance(value, dict) and any(map(cell[0], value.values()))

    _unknown_checks[id(node)] = items_unknown  # before its items: types can be recursive
    cell.append(_unknown_check(item))
    return items_unknown


def _unknown(node: Node, value: Any, path: str, out: list[str]) -> None:
    if node.kind == "struct" and isinstance(value, dict):
        for k, v in value.items():
            p = _field(path, k)
            sub = node.props.get(k)
            if sub is None:
                out.append(p)
            elif v is not None:
                _unknown(classify(sub), v, p, out)
        return
    for item, v, p in _elements(node, value, path, "{}.{}"):
        _unknown(item, v, p, out)


# ---------------------------------------------------------------- decode errors


_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def decode_error(group: str, version: str, kind: str, obj: JSON) -> str | None:
    """The first type mismatch upstream's decoder would reject ``obj`` of a built-in kind
    with (None: it decodes; kinds without an official schema are not checked here).

    A body that decodes has its nulls settled as decoding into Go structs settles them
    (:func:`_settle_nulls`), so that nothing after decoding meets a null where a value
    of the field's type belongs.

    Every write runs this, so the common case is a compiled check (:func:`_checker`)
    that only says yes or no; the message is worked out by the slow walk, and only when
    there is one to give (or a null to settle).
    """
    check = _root_checker(group, version, kind)
    if check is None or check(obj):
        return None
    root = _root(group, version, kind)
    assert root is not None
    out: list[str] = []
    _decode(root, obj, kind, "", out)
    if out:
        return out[0]
    _settle_nulls(root, obj)
    return None


def decode_errors(resource: Resource, obj: JSON) -> list[str]:
    """Type mismatches upstream's decoder rejects with 400, in its words, document order.

    The caller prefixes them as upstream does: ``<Kind> in version "<v>" cannot be
    handled as a <Kind>: <message>`` (upstream reports the first one).
    """
    root = _root_for(resource)
    out: list[str] = []
    if root is not None and isinstance(obj, dict):
        _decode(root, obj, resource.kind, "", out)
    return out


def _mismatch(jtype: str, struct: str, path: str, go: str) -> str:
    return f"json: cannot unmarshal {jtype} into Go struct field {struct}.{path} of type {go}"


def _decode(node: Node, value: Any, struct: str, path: str, out: list[str]) -> None:
    """Check ``value`` (not null) against ``node``; ``struct``/``path`` name the field."""
    kind = node.kind
    if kind == "any":
        return
    if kind == "struct":
        if not isinstance(value, dict):
            out.append(_mismatch(json_kind(value), struct, path, node.go))
            return
        for k, v in value.items():
            sub = node.props.get(k)
            if sub is None or v is None:
                continue
            _decode(classify(sub), v, node.struct or struct, _field(path, k), out)
        return
    if kind == "array":
        if not isinstance(value, list):
            out.append(_mismatch(json_kind(value), struct, path, node.go))
            return
        if node.sub:
            item = classify(node.sub)
            for v in value:
                if v is not None:
                    _decode(item, v, struct, path, out)
        return
    if kind == "map":
        if not isinstance(value, dict):
            out.append(_mismatch(json_kind(value), struct, path, node.go))
            return
        if node.sub:
            item = classify(node.sub)
            for v in value.values():
                if v is not None:
                    _decode(item, v, struct, path, out)
        return
    if kind == "quantity":
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            try:
                parse_quantity(value.strip() if isinstance(value, str) else value)
            except QuantityError as err:
                out.append(str(err))
            return
        out.append(ERR_FORMAT_WRONG)
        return
    if kind == "intstr":
        if isinstance(value, str):
            return
        if isinstance(value, int) and not isinstance(value, bool):
            if not -(2**31) <= value < 2**31:
                out.append(f"json: cannot unmarshal number {value} into Go value of type int32")
            return
        if isinstance(value, float):
            out.append(f"json: cannot unmarshal number {value!r} into Go value of type int32")
            return
        out.append(f"json: cannot unmarshal {json_kind(value)} into Go value of type int32")
        return
    if kind == "time":
        if not isinstance(value, str):
            out.append(f"json: cannot unmarshal {json_kind(value)} into Go value of type string")
        elif value and not _RFC3339.fullmatch(value):
            out.append(
                f'parsing time "{value}" as "2006-01-02T15:04:05Z07:00": cannot parse '
                f'"{value}" as "2006"'
            )
        return
    if kind == "bytes":
        if not isinstance(value, str):
            out.append(_mismatch(json_kind(value), struct, path, node.go))
            return
        bad = base64_error(value)
        if bad is not None:
            out.append(f"illegal base64 data at input byte {bad}")
        return
    if kind == "string":
        if not isinstance(value, str):
            out.append(_mismatch(json_kind(value), struct, path, node.go))
        return
    if kind == "bool":
        if not isinstance(value, bool):
            out.append(_mismatch(json_kind(value), struct, path, node.go))
        return
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int | float):
            out.append(_mismatch(json_kind(value), struct, path, node.go))
            return
        lo, hi = _INT_RANGES.get(node.go, _INT_RANGES["int64"])
        if isinstance(value, float) or not lo <= value <= hi:
            shown = repr(value) if isinstance(value, float) else str(value)
            out.append(_mismatch(f"number {shown}", struct, path, node.go))
        return
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        out.append(_mismatch(json_kind(value), struct, path, node.go))


# ---------------------------------------------------------------- compiled type checks

#: one schema node's check: whether a (non-null) value has the type upstream decodes
Checker = Callable[[Any], bool]

#: id(schema node) -> its compiled check (schema nodes live as long as the schemas)
_checkers: dict[int, Checker] = {}


def _always(value: Any) -> bool:
    return True


def _is_str(value: Any) -> bool:
    return type(value) is str


def _is_bool(value: Any) -> bool:
    return type(value) is bool


def _is_number(value: Any) -> bool:
    return type(value) is int or type(value) is float


def _int_check(go: str) -> Checker:
    lo, hi = _INT_RANGES.get(go, _INT_RANGES["int64"])

    def check(value: Any) -> bool:
        return type(value) is int and lo <= value <= hi

    return check


def _is_int_or_string(value: Any) -> bool:
    t = type(value)
    return t is str or (t is int and -(2**31) <= value < 2**31)


@functools.lru_cache(maxsize=4096)
def _quantity_text_ok(text: str) -> bool:
    try:
        parse_quantity(text.strip())
    except QuantityError:
        return False
    return True


def _is_quantity(value: Any) -> bool:
    t = type(value)
    if t is str:
        return _quantity_text_ok(value)
    return (t is int or t is float) and _quantity_text_ok(str(value))


def _is_time(value: Any) -> bool:
    return type(value) is str and (not value or _RFC3339.fullmatch(value) is not None)


_B64_PLAIN = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def _is_base64(value: Any) -> bool:
    return type(value) is str and (
        _B64_PLAIN.fullmatch(value) is not None or base64_error(value) is None
    )


_SCALARS: dict[str, Checker] = {
    "any": _always,
    "string": _is_str,
    "bool": _is_bool,
    "number": _is_number,
    "intstr": _is_int_or_string,
    "quantity": _is_quantity,
    "time": _is_time,
    "bytes": _is_base64,
}


#: checks that are one Python type, inlined into a struct's check
_PLAIN: dict[Checker, type] = {_is_str: str, _is_bool: bool}


def _checker(schema: JSON) -> Checker:
    """The compiled check of one schema node, built once and shared by every kind that
    uses the node. A struct's check is registered before its fields are compiled, so a
    recursive type (JSONSchemaProps) refers to itself."""
    key = id(schema)
    hit = _checkers.get(key)
    if hit is not None:
        return hit
    return _compile(classify(schema), key)


def _compile(node: Node, key: int | None) -> Checker:
    check: Checker
    if node.kind == "struct":
        # strings and booleans are checked inline, by their Python type: most fields
        # are one or the other, and a call per field is most of the cost
        plain: dict[str, type] = {}
        fields: dict[str, Checker] = {}
        settled: set[str] = set()
        check = _struct_check(plain, fields, settled)
        if key is not None:
            _checkers[key] = check
        for name, sub in node.props.items():
            sub_check = _checker(sub)
            if sub_check in _PLAIN:
                plain[name] = _PLAIN[sub_check]
            elif sub_check is not _always:
                fields[name] = sub_check
            if not _field_keeps_null(node, name, classify(sub)):
                settled.add(name)
        return check
    if node.kind in ("array", "map"):
        item = _checker(node.sub) if node.sub else _always
        check = _array_check(item) if node.kind == "array" else _map_check(item)
    elif node.kind == "int":
        check = _int_check(node.go)
    else:
        check = _SCALARS[node.kind]
    if key is not None:
        _checkers[key] = check
    return check


def _struct_check(plain: dict[str, type], fields: dict[str, Checker], settled: set[str]) -> Checker:
    """A struct's check; a null in one of the ``settled`` fields fails it, so that the
    slow path settles the null (:func:`_settle_nulls`)."""
    plain_type = plain.get
    field_check = fields.get

    def check(value: Any) -> bool:
        if type(value) is not dict:
            return False
        for name, v in value.items():
            if v is None:
                if name in settled:
                    return False
                continue
            t = plain_type(name)
            if t is not None:
                if type(v) is not t:
                    return False
                continue
            c = field_check(name)
            if c is not None and not c(v):
                return False
        return True

    return check


def _array_check(item: Checker) -> Checker:
    """A list's check; a null item fails it (the slow path gives it its zero value)."""
    if item is _always:
        return lambda value: type(value) is list
    if item in _PLAIN:
        return _plain_items(list, list.__iter__, _PLAIN[item])

    def check(value: Any) -> bool:
        if type(value) is not list:
            return False
        for v in value:  # noqa: SIM110 - a loop is faster than all() over a generator
            if v is None or not item(v):
                return False
        return True

    return check


def _map_check(item: Checker) -> Checker:
    """A map's check; a null value fails it (the slow path gives it its zero value)."""
    if item is _always:
        return lambda value: type(value) is dict
    if item in _PLAIN:
        return _plain_items(dict, dict.values, _PLAIN[item])

    def check(value: Any) -> bool:
        if type(value) is not dict:
            return False
        for v in value.values():  # noqa: SIM110 - faster than all() over a generator
            if v is None or not item(v):
                return False
        return True

    return check


def _plain_items(container: type, items: Callable[[Any], Any], item_type: type) -> Checker:
    """A list or map of strings (labels, annotations, data) or booleans, checked inline."""

    def check(value: Any) -> bool:
        if type(value) is not container:
            return False
        for v in items(value):  # noqa: SIM110 - faster than all() over a generator
            if type(v) is not item_type:
                return False
        return True

    return check


# ---------------------------------------------------------------- nulls


def _keeps_null(node: Node) -> bool:
    """Whether a null of ``node``'s type stays null after Go decodes and encodes it: a
    time (a zero ``metav1.Time`` is written as null, ``lastProbeTime: null``) or a value
    of any type (RawExtension)."""
    return node.kind in ("time", "any")


def _field_keeps_null(struct: Node, name: str, sub: Node) -> bool:
    """Whether a null field ``name`` of ``struct`` stays null: a time or raw value, or a
    list or map Go writes even when empty (no ``omitempty``: an EndpointSlice's
    ``ports: null``). Any other null field decodes to nothing the object keeps."""
    if _keeps_null(sub):
        return True
    return sub.kind in ("array", "map") and not omits_empty(struct.message, name)


def _zero(node: Node) -> Any:
    """What Go's decoder makes of a null list item or map value of ``node``'s type."""
    return {
        "struct": {},
        "map": {},
        "array": [],
        "string": "",
        "bytes": "",
        "int": 0,
        "number": 0,
        "intstr": 0,
        "quantity": "0",
        "bool": False,
    }.get(node.kind)


def _settle_nulls(node: Node, value: Any) -> None:
    """Settle the nulls of a well-typed ``value`` in place as Go's decoder does: a null
    field is left out (unless Go writes it null: :func:`_field_keeps_null`), a null list
    item or map value becomes its type's zero value (``containers: [null]`` is one empty
    container)."""
    if node.kind == "struct" and isinstance(value, dict):
        for k in [k for k, v in value.items() if v is None]:
            sub = node.props.get(k)
            if sub is not None and not _field_keeps_null(node, k, classify(sub)):
                del value[k]
        for k, v in value.items():
            sub = node.props.get(k)
            if sub is not None and isinstance(v, dict | list):
                _settle_nulls(classify(sub), v)
        return
    if node.kind not in ("array", "map") or not node.sub:
        return
    item = classify(node.sub)
    keys = range(len(value)) if isinstance(value, list) else list(value)
    for k in keys:
        if value[k] is None and not _keeps_null(item):
            value[k] = _zero(item)
        if isinstance(value[k], dict | list):
            _settle_nulls(item, value[k])


@functools.cache
def _root_checker(group: str, version: str, kind: str) -> Checker | None:
    root = _root(group, version, kind)
    return None if root is None else _compile(root, None)


_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def base64_error(text: str) -> int | None:
    """Where Go's ``base64.StdEncoding`` gives up on ``text`` (None: it decodes)."""
    src = text.encode()
    n = len(src)
    si = 0
    while True:
        j = 0
        while j < 4:
            if si == n:
                if j == 0:
                    return None
                return si - j
            c = src[si]
            si += 1
            if c in (0x0A, 0x0D):
                continue
            if c in _B64:
                j += 1
                continue
            if c != ord("="):
                return si - 1
            # padding
            if j in (0, 1):
                return si - 1
            if j == 2:
                while si < n and src[si] in (0x0A, 0x0D):
                    si += 1
                if si == n:
                    return n
                if src[si] != ord("="):
                    return si - 1
                si += 1
            while si < n and src[si] in (0x0A, 0x0D):
                si += 1
            if si < n:
                return si
            return None


# ---------------------------------------------------------------- required keys


def schema_required(resource: Resource, obj: JSON) -> list[FieldError]:
    """``Required value`` for keys the schema marks required and the object lacks.

    The top-level ``status`` is skipped: create resets it and status writers are
    trusted components.
    """
    root = _root_for(resource)
    out: list[FieldError] = []
    if root is not None and isinstance(obj, dict) and _lacks_required(root, obj):
        _required(root, obj, "", out, top=True)
    return out


#: id(schema node) -> whether anything at or below it is required (walks skip the rest)
_requires: dict[int, bool] = {}


def _has_required(node: Node, schema_id: int) -> bool:
    """Whether a value of ``node`` can lack a required key anywhere inside it."""
    hit = _requires.get(schema_id)
    if hit is not None:
        return hit
    _requires[schema_id] = True  # a recursive type (JSONSchemaProps) counts as "may"
    if node.kind == "struct":
        found = bool(node.required) or any(
            _has_required(classify(sub), id(sub)) for sub in node.props.values()
        )
    elif node.kind in ("array", "map") and node.sub:
        found = _has_required(classify(node.sub), id(node.sub))
    else:
        found = False
    _requires[schema_id] = found
    return found


#: id(struct node) -> its properties that can lack a required key inside them
_walked: dict[int, tuple[tuple[str, Node], ...]] = {}


def _walked_props(node: Node) -> tuple[tuple[str, Node], ...]:
    hit = _walked.get(id(node))
    if hit is None:
        hit = _walked[id(node)] = tuple(
            (k, classify(sub))
            for k, sub in node.props.items()
            if _has_required(classify(sub), id(sub))
        )
    return hit


#: id(node) -> the node's compiled "lacks a required key" check (see :func:`_lacks_check`)
_lacks: dict[int, Callable[[Any], bool]] = {}


def _lacks_nothing(value: Any) -> bool:
    return False


def _lacks_required(root: Node, obj: JSON) -> bool:
    """Whether :func:`_required` would find anything in a whole object: the same walk
    without the paths (the top-level ``status`` skipped), as every write asks and almost
    every object lacks nothing."""
    for k in root.required:
        if obj.get(k) is None:
            return True
    for k, item in _walked_props(root):
        v = obj.get(k)
        if v is not None and k != "status" and _lacks_check(item)(v):
            return True
    return False


def _lacks_check(node: Node) -> Callable[[Any], bool]:
    """Whether a value of ``node`` lacks a required key anywhere inside it, compiled once
    per node: a struct looks only at its properties that can lack one (through the
    shorter of its keys and those), a list or map at its items."""
    hit = _lacks.get(id(node))
    if hit is not None:
        return hit
    if node.kind == "struct":
        required = node.required
        walked: dict[str, Callable[[Any], bool]] = {}

        def struct_lacks(value: Any) -> bool:
            if not isinstance(value, dict):
                return False
            for k in required:
                if value.get(k) is None:
                    return True
            if len(value) < len(walked):
                for k, v in value.items():
                    check = walked.get(k)
                    if check is not None and v is not None and check(v):
                        return True
                return False
            for k, check in walked.items():
                v = value.get(k)
                if v is not None and check(v):
                    return True
            return False

        _lacks[id(node)] = struct_lacks  # before the properties: types can be recursive
        for k, prop in _walked_props(node):
            walked[k] = _lacks_check(prop)
        return struct_lacks
    sub = node.sub
    item = classify(sub) if sub else None
    if (
        item is None
        or node.kind not in ("array", "map")
        or item.kind not in ("struct", "array", "map")
        or not _has_required(item, id(sub))
    ):
        _lacks[id(node)] = _lacks_nothing
        return _lacks_nothing
    cell: list[Callable[[Any], bool]] = []
    if node.kind == "array":

        def items_lack(value: Any) -> bool:
            if not isinstance(value, list):
                return False
            return any(map(cell[0], value))
    else:

        def items_lack(value: Any) -> bool:
            if not isinstance(value, dict):
                return False
            return any(map(cell[0], value.values()))

    _lacks[id(node)] = items_lack
    cell.append(_lacks_check(item))
    return items_lack


def _required(node: Node, value: Any, path: str, out: list[FieldError], top: bool = False) -> None:
    if node.kind == "struct" and isinstance(value, dict):
        for k in node.required:
            if value.get(k) is None:
                out.append(errors.required(_field(path, k)))
        for k, item in _walked_props(node):
            v = value.get(k)
            if v is None or (top and k == "status"):
                continue
            _required(item, v, _field(path, k), out)
        return
    if (
        node.kind in ("array", "map")
        and node.sub
        and not _has_required(classify(node.sub), id(node.sub))
    ):
        return
    for item, v, p in _elements(node, value, path, "{}[{}]"):
        _required(item, v, p, out)
