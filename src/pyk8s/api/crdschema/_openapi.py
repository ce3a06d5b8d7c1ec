"""OpenAPI v3 value validation of a custom resource, as kube-openapi's ``validate`` does it.

The API server validates a custom resource with kube-openapi's ``SchemaValidator`` and
turns its result into field errors (``kubeOpenAPIResultToFieldErrors``). Users see that
text verbatim (``spec.replicas: Invalid value: "string": spec.replicas in body must be
of type integer: "string"``), including its quirks, so this is a port of the same
algorithm rather than a generic JSON-schema checker:

* every validator of a node runs (a type mismatch does not stop the enum check), in
  kube-openapi's order: type, allOf/anyOf/oneOf/not, string, format, number, array,
  enum, object; a null only meets the type and enum checks;
* ``anyOf``/``oneOf`` report their best failing branch, picked by kube-openapi's
  match count, next to ``"spec.x" must validate at least one schema (anyOf)``, an
  error whose field path is the validator's root (``<nil>`` for a whole object);
* integers are bounded with truncated limits (``minimum: 1.5`` reads as 1 for an
  integer), and a value is compared with an enum entry after Go's type conversion;
* error messages are de-duplicated by text, as ``Result.AddErrors`` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeGuard

from pyk8s.api import errors
from pyk8s.api.crdschema import _formats
from pyk8s.api.crdschema._goregex import GoPattern, GoRegexError, compile_go
from pyk8s.api.errors import FieldError
from pyk8s.api.gofmt import go_float, go_json, go_quote, go_v

UNCORRELATED: Any = object()  # no old value to compare with (create, or a moved item)


@dataclass(slots=True)
class _OErr:
    kind: str  # required, enum, too_long, max_items, too_many_props, type, other, composite
    name: str
    message: str
    value: Any = None
    valid: Any = None
    values: list[Any] | None = None


Result = tuple[list[_OErr], int]


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "slice"
    if isinstance(v, dict):
        return "map"
    return "other"


_SCHEMA_INFO = {
    "bool": ("boolean", ""),
    "string": ("string", ""),
    "int": ("integer", "int64"),
    "float": ("number", "float64"),
    "slice": ("array", ""),
    "map": ("object", ""),
    "other": ("", ""),
}

_MAX_JSON_FLOAT = float((1 << 53) - 1)


def is_json_integer(f: float) -> bool:
    """swag's ``IsFloat64AJSONInteger``: integral within JSON's exact range (1e-9 slack)."""
    if math.isnan(f) or math.isinf(f) or f < -_MAX_JSON_FLOAT or f > _MAX_JSON_FLOAT:
        return False
    if f == math.trunc(f):
        return True
    if f < 0:
        return False
    g = float(math.trunc(f))
    diff = abs(f - g)
    if g == 0:
        return diff < 1e-9 * 5e-324
    return diff / min(abs(f) + abs(g), 1.7976931348623157e308) < 1e-9


def deep_equal(a: Any, b: Any) -> bool:
    """``reflect.DeepEqual`` of decoded JSON: an int never equals a float or a bool."""
    ka, kb = _kind(a), _kind(b)
    if a is None or b is None:
        return a is None and b is None
    if ka != kb:
        return False
    if ka == "map":
        return a.keys() == b.keys() and all(deep_equal(a[k], b[k]) for k in a)
    if ka == "slice":
        return len(a) == len(b) and all(deep_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _enum_match(data: Any, entry: Any) -> bool:
    """Go's ``ConvertibleTo`` + ``DeepEqual`` test of basicCommonValidator."""
    if entry is None or data is None:
        return False
    kd, ke = _kind(data), _kind(entry)
    if ke == "string":
        if kd == "string":
            return bool(data == entry)
        if kd == "int":
            ok = 0 <= data <= 0x10FFFF and not 0xD800 <= data <= 0xDFFF
            return bool((chr(data) if ok else "\ufffd") == entry)
        return False
    if ke == "int":
        if kd == "int":
            return bool(data == entry)
        if kd == "float":
            return not (math.isnan(data) or math.isinf(data)) and bool(math.trunc(data) == entry)
        return False
    if ke == "float":
        if kd in ("int", "float"):
            return bool(float(data) == entry)
        return False
    return kd == ke and deep_equal(data, entry)


def _q(path: str) -> str:
    return go_quote(path)


class Node:
    """One schema node, read once: the keywords kube-openapi looks at, typed."""

    __slots__ = (
        "all_of",
        "any_of",
        "ap",
        "ap_forbids",
        "enum",
        "excl_max",
        "excl_min",
        "fmt",
        "fmt_checked",
        "items",
        "items_list",
        "junctors",
        "list_map",
        "map_keys",
        "max_items",
        "max_len",
        "max_props",
        "maximum",
        "min_items",
        "min_len",
        "min_props",
        "minimum",
        "multiple_of",
        "not_",
        "nullable",
        "one_of",
        "pattern",
        "pattern_error",
        "props",
        "required",
        "type_name",
        "types",
        "unique",
    )

    def __init__(self, s: dict[str, Any], runtime: bool) -> None:
        if runtime and s.get("x-kubernetes-int-or-string") is True:
            self.types: tuple[str, ...] = ("integer", "string")
        else:
            t = s.get("type")
            self.types = (t,) if isinstance(t, str) and t else ()
        self.type_name = ",".join(self.types)
        f = s.get("format")
        fmt = f if isinstance(f, str) else ""
        if runtime and fmt and not _formats.is_supported(fmt):
            fmt = ""
        self.fmt = fmt
        self.fmt_checked = bool(fmt) and _formats.is_supported(fmt)
        self.nullable = s.get("nullable") is True
        enum = s.get("enum")
        self.enum: list[Any] | None = enum if isinstance(enum, list) and enum else None
        self.max_len = _int_or_none(s.get("maxLength"))
        self.min_len = _int_or_none(s.get("minLength"))
        pattern = s.get("pattern")
        self.pattern: GoPattern | None = None
        self.pattern_error: str | None = None
        if isinstance(pattern, str) and pattern:
            try:
                self.pattern = compile_go(pattern)
            except GoRegexError as e:
                self.pattern_error = f"{pattern}, but pattern is invalid: {e}"
        self.multiple_of = _num_or_none(s.get("multipleOf"))
        self.minimum = _num_or_none(s.get("minimum"))
        self.maximum = _num_or_none(s.get("maximum"))
        self.excl_min = s.get("exclusiveMinimum") is True
        self.excl_max = s.get("exclusiveMaximum") is True
        items = s.get("items")
        self.items = Node(items, runtime) if isinstance(items, dict) else None
        self.items_list = (
            [Node(x, runtime) if isinstance(x, dict) else None for x in items]
            if isinstance(items, list)
            else None
        )
        self.min_items = _int_or_none(s.get("minItems"))
        self.max_items = _int_or_none(s.get("maxItems"))
        self.unique = s.get("uniqueItems") is True
        props = s.get("properties")
        self.props: dict[str, Node] = (
            {k: Node(v, runtime) for k, v in props.items() if isinstance(v, dict)}
            if isinstance(props, dict)
            else {}
        )
        ap = s.get("additionalProperties")
        self.ap = Node(ap, runtime) if isinstance(ap, dict) else None
        self.ap_forbids = ap is False
        req = s.get("required")
        self.required = [k for k in req if isinstance(k, str)] if isinstance(req, list) else []
        self.min_props = _int_or_none(s.get("minProperties"))
        self.max_props = _int_or_none(s.get("maxProperties"))
        self.all_of = _nodes(s.get("allOf"), runtime)
        self.any_of = _nodes(s.get("anyOf"), runtime)
        self.one_of = _nodes(s.get("oneOf"), runtime)
        not_ = s.get("not")
        self.not_ = Node(not_, runtime) if isinstance(not_, dict) else None
        self.junctors = bool(self.all_of or self.any_of or self.one_of or self.not_)
        self.list_map = s.get("x-kubernetes-list-type") == "map" and self.items is not None
        keys = s.get("x-kubernetes-list-map-keys")
        self.map_keys = [k for k in keys if isinstance(k, str)] if isinstance(keys, list) else []

    def field(self, k: str) -> Node | None:
        """The schema of field ``k``: a property, else additionalProperties."""
        return self.props.get(k) or self.ap


def _nodes(v: Any, runtime: bool) -> list[Node]:
    return [Node(x, runtime) for x in v if isinstance(x, dict)] if isinstance(v, list) else []


def _int_or_none(v: Any) -> int | None:
    return int(v) if _is_num(v) else None


def _num_or_none(v: Any) -> int | float | None:
    return v if _is_num(v) else None


_COMPILED: dict[tuple[int, bool], tuple[dict[str, Any], Node]] = {}
_COMPILED_MAX = 512


def compiled(schema: dict[str, Any], runtime: bool = True) -> Node:
    """The compiled form of ``schema``, cached while the same dict is passed again.

    Schemas are read as immutable: a changed schema must be a new dict.
    """
    key = (id(schema), runtime)
    hit = _COMPILED.get(key)
    if hit is not None and hit[0] is schema:
        return hit[1]
    node = Node(schema, runtime)
    if len(_COMPILED) >= _COMPILED_MAX:
        _COMPILED.pop(next(iter(_COMPILED)))
    _COMPILED[key] = (schema, node)
    return node


class Validator:
    """kube-openapi's ``SchemaValidator`` over compiled nodes.

    Compile with ``runtime`` for what a custom resource meets (``NewSchemaValidator``:
    unsupported formats stripped, ``x-kubernetes-int-or-string`` typed
    ``integer,string``); without it for what a CRD ``default`` meets
    (``Structural.ToKubeOpenAPI``: formats kept, int-or-string untyped).
    """

    __slots__ = ()

    def node(self, n: Node, data: Any, path: str, old: Any = UNCORRELATED) -> Result:
        """Validate ``data`` at ``path``; with a correlated ``old`` value (an update under
        ratcheting), errors are dropped when the value did not change."""
        errs, count = self._node(n, data, path, old)
        if errs and old is not UNCORRELATED and ratchet_equal(data, old, n):
            return [], count
        return errs, count

    def _node(self, n: Node, data: Any, path: str, old: Any) -> Result:
        errs: list[_OErr] = []
        count = 0
        if data is None:
            if n.types and "null" not in n.types and not n.nullable:
                errs.append(_type_err(path, n.type_name, "null"))
            else:
                count = 1
            if n.enum is not None:
                errs.append(_enum_err(n, None, path))
            return errs, count
        kind = _kind(data)
        if n.types or n.fmt:
            e, c = self._type(n, kind, data, path)
            if e is not None:
                errs.append(e)
            count += c + 1
        if n.junctors:
            e2, c = self._props(n, data, path, old)
            errs += e2
            count += c + 2  # the props validator's own count, and the node's
        else:
            count += 2
        if kind == "string":
            e = self._string(n, data, path)
            if e is not None:
                errs.append(e)
            count += 1
            if n.fmt_checked:
                if not _formats.check(n.fmt, data):
                    errs.append(_type_err(path, n.fmt, data))
                count += 1
        elif kind == "int" or kind == "float":
            errs += self._number(n, data, path)
            count += 2
        elif kind == "slice":
            e2, c = self._slice(n, data, path, old)
            errs += e2
            count += c + 1
        if n.enum is not None and not any(_enum_match(data, x) for x in n.enum):
            errs.append(_enum_err(n, data, path))
        count += 1
        if kind == "map":
            e2, c = self._object(n, data, path, old)
            errs += e2
            count += c + 1
        return errs, count + 1

    # ---------------------------------------------------------------- validators

    def _type(self, n: Node, kind: str, data: Any, path: str) -> tuple[_OErr | None, int]:
        tps = n.types
        sch, form = _SCHEMA_INFO[kind]
        float_int = sch == "number" and "integer" in tps and is_json_integer(data)
        int_float = sch == "integer" and "number" in tps
        fmt = n.fmt
        if (
            kind != "string"
            and kind != "slice"
            and fmt
            and not (sch in tps or form == fmt or float_int or int_float)
        ):
            return _type_err(path, fmt, form), 0
        if (
            fmt
            and (kind == "string" or kind == "slice")
            and not ("number" in tps or "integer" in tps)
        ):
            return None, 1
        if not (sch in tps or float_int or int_float):
            return _type_err(path, n.type_name, sch), 0
        return None, 1

    def _branch(self, n: Node, data: Any, path: str, old: Any) -> Result:
        """A junctor branch: not ratcheted itself, but its fields correlate like the node's."""
        return self._node(n, data, path, old)

    def _props(self, n: Node, data: Any, path: str, old: Any) -> Result:
        errs: list[_OErr] = []
        count = 0
        if n.any_of:
            best: Result | None = None
            first_ok: Result | None = None
            ok = False
            for sub in n.any_of:
                r = self._branch(sub, data, path, old)
                if not r[0]:
                    best, ok, first_ok = None, True, first_ok or r
                    break
                if best is None or r[1] > best[1]:
                    best = r
            if not ok:
                errs.append(_composite(f"{_q(path)} must validate at least one schema (anyOf)"))
            if best is not None:
                errs += best[0]
                count += best[1]
            elif first_ok is not None:
                count += first_ok[1]
        if n.one_of:
            best = None
            first_ok = None
            validated = 0
            for sub in n.one_of:
                r = self._branch(sub, data, path, old)
                if not r[0]:
                    validated += 1
                    best = None
                    first_ok = first_ok or r
                    continue
                if validated == 0 and (best is None or r[1] > best[1]):
                    best = r
            if validated != 1:
                extra = (
                    "Found none valid"
                    if validated == 0
                    else f"Found {validated} valid alternatives"
                )
                errs.append(
                    _composite(f"{_q(path)} must validate one and only one schema (oneOf). {extra}")
                )
                if best is not None:
                    errs += best[0]
                    count += best[1]
            elif first_ok is not None:
                count += first_ok[1]
        if n.all_of:
            validated = 0
            for sub in n.all_of:
                r = self._branch(sub, data, path, old)
                if not r[0]:
                    validated += 1
                errs += r[0]
                count += r[1]
            if validated != len(n.all_of):
                extra = ". None validated" if validated == 0 else ""
                errs.append(_composite(f"{_q(path)} must validate all the schemas (allOf){extra}"))
        if n.not_ is not None and not self._branch(n.not_, data, path, old)[0]:
            errs.append(_composite(f"{_q(path)} must not validate the schema (not)"))
        return errs, count

    def _string(self, n: Node, data: str, path: str) -> _OErr | None:
        if n.max_len is not None and len(data) > n.max_len:
            msg = f"{path} in body should be at most {n.max_len} chars long"
            return _OErr("too_long", path, msg, data, n.max_len)
        if n.min_len is not None and len(data) < n.min_len:
            msg = f"{path} in body should be at least {n.min_len} chars long"
            return _OErr("other", path, msg, data)
        if n.pattern_error is not None:
            return _OErr("other", path, f"{path} in body should match '{n.pattern_error}'", data)
        if n.pattern is not None and not n.pattern.search(data):
            msg = f"{path} in body should match '{n.pattern.source}'"
            return _OErr("other", path, msg, data)
        return None

    def _number(self, n: Node, data: int | float, path: str) -> list[_OErr]:
        if n.multiple_of is None and n.minimum is None and n.maximum is None:
            return []
        errs: list[_OErr] = []
        is_int = isinstance(data, int)
        mult = n.multiple_of
        if mult is not None:
            if is_int:
                fi = _trunc(mult)
                if fi <= 0:
                    errs.append(_positive(path, str(fi), fi))
                elif data % fi != 0:
                    msg = f"{path} in body should be a multiple of {fi}"
                    errs.append(_OErr("other", path, msg, data))
            else:
                ff = float(mult)
                if ff <= 0:
                    errs.append(_positive(path, go_float(ff), ff))
                else:
                    q = 1 / ff * data if ff < 1 else data / ff
                    if not is_json_integer(q):
                        msg = f"{path} in body should be a multiple of {go_float(ff)}"
                        errs.append(_OErr("other", path, msg, data))
        for bound, excl, is_min in ((n.minimum, n.excl_min, True), (n.maximum, n.excl_max, False)):
            if bound is None:
                continue
            b: int | float = _trunc(bound) if is_int else float(bound)
            if is_min:
                bad = data <= b if excl else data < b
                word = "greater than" if excl else "greater than or equal to"
            else:
                bad = data >= b if excl else data > b
                word = "less than" if excl else "less than or equal to"
            if bad:
                shown = str(b) if is_int else go_float(float(b))
                errs.append(_OErr("other", path, f"{path} in body should be {word} {shown}", data))
        return errs

    def _slice(self, n: Node, data: list[Any], path: str, old: Any) -> Result:
        errs: list[_OErr] = []
        count = 0
        if n.items is not None:
            olds = correlate_items(n, data, old)
            for i, v in enumerate(data):
                e, c = self.node(n.items, v, f"{path}[{i}]", olds[i])
                errs += e
                count += c
        elif n.items_list is not None:
            for i, sub in enumerate(n.items_list[: len(data)]):
                if sub is not None:
                    e, c = self.node(sub, data[i], f"{path}[{i}]")
                    errs += e
                    count += c
        size = len(data)
        if n.min_items is not None and size < n.min_items:
            msg = f"{path} in body should have at least {n.min_items} items"
            errs.append(_OErr("other", path, msg, size, n.min_items))
        if n.max_items is not None and size > n.max_items:
            msg = f"{path} in body should have at most {n.max_items} items"
            errs.append(_OErr("max_items", path, msg, size, n.max_items))
        if n.unique:
            for i in range(size):
                if any(deep_equal(data[i], data[j]) for j in range(i)):
                    msg = f"{path} in body shouldn't contain duplicates"
                    errs.append(_OErr("other", path, msg))
                    break
        return errs, count + 1

    def _object(self, n: Node, data: dict[str, Any], path: str, old: Any) -> Result:
        errs: list[_OErr] = []
        count = 0
        size = len(data)
        if n.min_props is not None and size < n.min_props:
            msg = f"{path} in body should have at least {n.min_props} properties"
            errs.append(_OErr("other", path, msg, size, n.min_props))
        if n.max_props is not None and size > n.max_props:
            msg = f"{path} in body should have at most {n.max_props} properties"
            errs.append(_OErr("too_many_props", path, msg, size, n.max_props))
        props = n.props
        if n.ap_forbids:
            for k in data:
                if k not in props:
                    msg = f"{path}.{k} in body is a forbidden property"
                    errs.append(_OErr("other", path, msg, k))
        elif n.ap is not None:
            for k, v in data.items():
                if k not in props:
                    e, c = self.node(n.ap, v, f"{path}.{k}", _key(n, old, k, path))
                    errs += e
                    count += c
        if props:
            for name, sub in props.items():
                if name in data:
                    child = f"{path}.{name}" if path else name
                    e, c = self.node(sub, data[name], child, _key(n, old, name, path))
                    errs += e
                    count += c
        for k in n.required:
            if k not in data:
                name = f"{path}.{k}"
                errs.append(_OErr("required", name, f"{name} in body is required"))
        return errs, count


def _enum_err(n: Node, data: Any, path: str) -> _OErr:
    enum = n.enum or []
    msg = f"{path} in body should be one of {go_v(enum)}"
    return _OErr("enum", path, msg, data, None, list(enum))


# ------------------------------------------------------------------ ratcheting


def _key(n: Node, old: Any, k: str, path: str) -> Any:
    """``CorrelatedObject.Key``: the old value of field ``k``, if correlatable."""
    if old is UNCORRELATED or not isinstance(old, dict) or k not in old:
        return UNCORRELATED
    if path == "" and (k == "kind" or k == "apiVersion"):
        return UNCORRELATED
    if n.field(k) is None:
        return UNCORRELATED
    return old[k]


def _map_key(n: Node, item: Any) -> Any:
    if not isinstance(item, dict):
        return None
    return tuple(go_json(item[k]) if k in item else "\x00" for k in n.map_keys)


def correlate_items(n: Node, data: list[Any], old: Any) -> list[Any]:
    """``CorrelatedObject.Index`` for each item: only map lists correlate, by their keys."""
    if old is UNCORRELATED or not isinstance(old, list) or not n.list_map:
        return [UNCORRELATED] * len(data)
    by_key: dict[Any, Any] = {}
    for item in old:
        k = _map_key(n, item)
        if k is not None:
            by_key.setdefault(k, item)
    out: list[Any] = []
    for item in data:
        k = _map_key(n, item)
        found = by_key.get(k, UNCORRELATED) if k is not None else UNCORRELATED
        out.append(UNCORRELATED if found is None else found)
    return out


def ratchet_equal(new: Any, old: Any, n: Node | None) -> bool:
    """``CorrelatedObject.CachedDeepEqual``: map lists compare item by key, and a map key
    the schema does not describe never compares equal."""
    if new is None or old is None:
        return new is None and old is None
    if n is None:
        return deep_equal(new, old)
    if isinstance(new, list) and isinstance(old, list):
        if len(new) != len(old):
            return False
        if not n.list_map or n.items is None:
            return deep_equal(new, old)
        olds = correlate_items(n, new, old)
        return all(
            o is not UNCORRELATED and ratchet_equal(x, o, n.items)
            for x, o in zip(new, olds, strict=True)
        )
    if isinstance(new, dict) and isinstance(old, dict):
        if len(new) != len(old):
            return False
        for k, v in new.items():
            sub = n.field(k)
            if k not in old or sub is None or not ratchet_equal(v, old[k], sub):
                return False
        return True
    if isinstance(new, list | dict) or isinstance(old, list | dict):
        return False
    return deep_equal(new, old)


def _is_num(v: Any) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _trunc(v: int | float) -> int:
    return v if isinstance(v, int) else math.trunc(v)


def _positive(path: str, shown: str, factor: Any) -> _OErr:
    return _OErr(
        "other", path, f"factor MultipleOf declared for {path} must be positive: {shown}", factor
    )


def _type_err(path: str, type_name: str, value: str) -> _OErr:
    msg = f"{path} in body must be of type {type_name}: {go_quote(value)}"
    return _OErr("type", path, msg, value)


def _composite(msg: str) -> _OErr:
    return _OErr("composite", "", msg)


def to_field_errors(base: str, errs: list[_OErr]) -> list[FieldError]:
    """``kubeOpenAPIResultToFieldErrors`` (``base`` "" is Go's nil path, ``<nil>``)."""
    out: list[FieldError] = []
    seen: set[str] = set()
    for e in errs:
        if e.message in seen:
            continue
        seen.add(e.message)
        if e.kind == "composite":
            out.append(errors.invalid(base or "<nil>", "", e.message))
            continue
        fp = base
        if e.name and e.name != ".":
            n = e.name[1:] if e.name.startswith(".") else e.name
            fp = f"{base}.{n}" if base else n
        fp = fp or "<nil>"
        value = "" if e.value is None else e.value
        if e.kind == "required":
            out.append(errors.required(fp))
        elif e.kind == "enum":
            vals = [v if isinstance(v, str) else go_json(v) for v in e.values or []]
            out.append(errors.not_supported(fp, e.value, vals))
        elif e.kind == "too_long":
            out.append(errors.too_long(fp, int(e.valid)))
        elif e.kind in ("max_items", "too_many_props"):
            out.append(errors.too_many(fp, int(e.value), int(e.valid)))
        elif e.kind == "type":
            out.append(errors.type_invalid(fp, value, e.message))
        else:
            out.append(errors.invalid(fp, value, e.message))
    return out


def validate_value(
    obj: Any,
    schema: dict[str, Any],
    path: str = "",
    *,
    runtime: bool = True,
    old: Any = UNCORRELATED,
) -> list[FieldError]:
    """Validate ``obj`` against ``schema`` and return upstream's field errors; with
    ``old``, as an update under ratcheting (unchanged values keep their errors quiet)."""
    errs, _ = Validator().node(compiled(schema, runtime), obj, "", old)
    return to_field_errors(path, errs) if errs else []
