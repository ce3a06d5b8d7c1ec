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

from pyk8s.api.crdschema import _formats, _gofmt
from pyk8s.api.crdschema._goregex import GoRegexError, compile_go
from pyk8s.api.errors import FieldError

_NOVAL: Any = None


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
    return _gofmt.go_quote(path)


class Validator:
    """One kube-openapi ``SchemaValidator`` configuration.

    ``runtime`` is the validator a custom resource meets (``NewSchemaValidator``:
    unsupported formats stripped, ``x-kubernetes-int-or-string`` typed
    ``integer,string``); without it, the one a CRD ``default`` meets
    (``Structural.ToKubeOpenAPI``: formats kept, int-or-string untyped).
    """

    __slots__ = ("runtime",)

    def __init__(self, runtime: bool = True) -> None:
        self.runtime = runtime

    # ---------------------------------------------------------------- node

    def types(self, s: dict[str, Any]) -> list[str]:
        if self.runtime and s.get("x-kubernetes-int-or-string") is True:
            return ["integer", "string"]
        t = s.get("type")
        return [t] if isinstance(t, str) and t else []

    def fmt(self, s: dict[str, Any]) -> str:
        f = s.get("format")
        if not isinstance(f, str) or not f:
            return ""
        if self.runtime and not _formats.is_supported(f):
            return ""
        return f

    def node(self, s: Any, data: Any, path: str) -> Result:
        if not isinstance(s, dict):
            return [], 0
        errs: list[_OErr] = []
        count = 0
        tps = self.types(s)
        fmt = self.fmt(s)
        if data is None:
            e, c = self._type(tps, fmt, s.get("nullable") is True, None, path)
            errs += e
            count += c
            errs += self._common(s, None, path)
            return errs, count
        kind = _kind(data)
        if tps or fmt:
            e, c = self._type(tps, fmt, s.get("nullable") is True, data, path)
            errs += e
            count += c + 1
        e, c = self._props(s, data, path)
        errs += e
        count += c + 1
        if kind == "string":
            errs += self._string(s, data, path)
            count += 1
            if fmt and _formats.is_supported(fmt):
                if not _formats.check(fmt, data):
                    errs.append(_type_err(path, fmt, data))
                count += 1
        elif kind in ("int", "float"):
            e, c = self._number(s, data, path)
            errs += e
            count += c + 1
        elif kind == "slice":
            e, c = self._slice(s, data, path)
            errs += e
            count += c + 1
        errs += self._common(s, data, path)
        count += 1
        if kind == "map":
            e, c = self._object(s, data, path)
            errs += e
            count += c + 1
        return errs, count + 1

    # ---------------------------------------------------------------- validators

    def _type(self, tps: list[str], fmt: str, nullable: bool, data: Any, path: str) -> Result:
        if data is None:
            if tps and "null" not in tps and not nullable:
                return [_type_err(path, ",".join(tps), "null")], 0
            return [], 1
        kind = _kind(data)
        sch, form = _SCHEMA_INFO[kind]
        float_int = sch == "number" and "integer" in tps and is_json_integer(data)
        int_float = sch == "integer" and "number" in tps
        if (
            kind not in ("string", "slice")
            and fmt
            and not (sch in tps or form == fmt or float_int or int_float)
        ):
            return [_type_err(path, fmt, form)], 0
        if not ("number" in tps or "integer" in tps) and fmt and kind in ("string", "slice"):
            return [], 1
        if not (sch in tps or float_int or int_float):
            return [_type_err(path, ",".join(tps), sch)], 0
        return [], 1

    def _props(self, s: dict[str, Any], data: Any, path: str) -> Result:
        errs: list[_OErr] = []
        count = 0
        any_of = s.get("anyOf")
        if isinstance(any_of, list) and any_of:
            best: Result | None = None
            first_ok: Result | None = None
            ok = False
            for sub in any_of:
                r = self.node(sub, data, path)
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
        one_of = s.get("oneOf")
        if isinstance(one_of, list) and one_of:
            best = None
            first_ok = None
            validated = 0
            for sub in one_of:
                r = self.node(sub, data, path)
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
        all_of = s.get("allOf")
        if isinstance(all_of, list) and all_of:
            validated = 0
            for sub in all_of:
                r = self.node(sub, data, path)
                if not r[0]:
                    validated += 1
                errs += r[0]
                count += r[1]
            if validated != len(all_of):
                extra = ". None validated" if validated == 0 else ""
                errs.append(_composite(f"{_q(path)} must validate all the schemas (allOf){extra}"))
        not_ = s.get("not")
        if isinstance(not_, dict) and not self.node(not_, data, path)[0]:
            errs.append(_composite(f"{_q(path)} must not validate the schema (not)"))
        return errs, count + 1

    def _string(self, s: dict[str, Any], data: str, path: str) -> list[_OErr]:
        max_len = s.get("maxLength")
        if _is_num(max_len) and len(data) > int(max_len):
            return [
                _OErr(
                    "too_long",
                    path,
                    f"{path} in body should be at most {int(max_len)} chars long",
                    data,
                    int(max_len),
                )
            ]
        min_len = s.get("minLength")
        if _is_num(min_len) and len(data) < int(min_len):
            return [
                _OErr(
                    "other",
                    path,
                    f"{path} in body should be at least {int(min_len)} chars long",
                    data,
                )
            ]
        pattern = s.get("pattern")
        if isinstance(pattern, str) and pattern:
            try:
                matched = compile_go(pattern).search(data)
            except GoRegexError as e:
                msg = f"{path} in body should match '{pattern}, but pattern is invalid: {e}'"
                return [_OErr("other", path, msg, data)]
            if not matched:
                return [_OErr("other", path, f"{path} in body should match '{pattern}'", data)]
        return []

    def _number(self, s: dict[str, Any], data: int | float, path: str) -> Result:
        errs: list[_OErr] = []
        is_int = isinstance(data, int)
        mult = s.get("multipleOf")
        if _is_num(mult):
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
                    errs.append(_positive(path, _gofmt.go_float(ff), ff))
                else:
                    q = 1 / ff * data if ff < 1 else data / ff
                    if not is_json_integer(q):
                        msg = f"{path} in body should be a multiple of {_gofmt.go_float(ff)}"
                        errs.append(_OErr("other", path, msg, data))
        for key, excl_key, is_min in (
            ("minimum", "exclusiveMinimum", True),
            ("maximum", "exclusiveMaximum", False),
        ):
            bound = s.get(key)
            if not _is_num(bound):
                continue
            excl = s.get(excl_key) is True
            b: int | float = _trunc(bound) if is_int else float(bound)
            if is_min:
                bad = data <= b if excl else data < b
                word = "greater than" if excl else "greater than or equal to"
            else:
                bad = data >= b if excl else data > b
                word = "less than" if excl else "less than or equal to"
            if bad:
                shown = str(b) if is_int else _gofmt.go_float(float(b))
                errs.append(_OErr("other", path, f"{path} in body should be {word} {shown}", data))
        return errs, 1

    def _slice(self, s: dict[str, Any], data: list[Any], path: str) -> Result:
        errs: list[_OErr] = []
        count = 0
        items = s.get("items")
        if isinstance(items, dict):
            for i, v in enumerate(data):
                e, c = self.node(items, v, f"{path}[{i}]")
                errs += e
                count += c
        elif isinstance(items, list):
            for i, sub in enumerate(items[: len(data)]):
                e, c = self.node(sub, data[i], f"{path}[{i}]")
                errs += e
                count += c
        size = len(data)
        mn = s.get("minItems")
        if _is_num(mn) and size < int(mn):
            msg = f"{path} in body should have at least {int(mn)} items"
            errs.append(_OErr("other", path, msg, size, int(mn)))
        mx = s.get("maxItems")
        if _is_num(mx) and size > int(mx):
            msg = f"{path} in body should have at most {int(mx)} items"
            errs.append(_OErr("max_items", path, msg, size, int(mx)))
        if s.get("uniqueItems") is True:
            for i in range(size):
                if any(deep_equal(data[i], data[j]) for j in range(i)):
                    msg = f"{path} in body shouldn't contain duplicates"
                    errs.append(_OErr("other", path, msg))
                    break
        return errs, count + 1

    def _common(self, s: dict[str, Any], data: Any, path: str) -> list[_OErr]:
        enum = s.get("enum")
        if not isinstance(enum, list) or not enum:
            return []
        if any(_enum_match(data, e) for e in enum):
            return []
        msg = f"{path} in body should be one of {_gofmt.go_v(enum)}"
        return [_OErr("enum", path, msg, data, None, list(enum))]

    def _object(self, s: dict[str, Any], data: dict[str, Any], path: str) -> Result:
        errs: list[_OErr] = []
        count = 0
        n = len(data)
        mn = s.get("minProperties")
        if _is_num(mn) and n < int(mn):
            msg = f"{path} in body should have at least {int(mn)} properties"
            errs.append(_OErr("other", path, msg, n, int(mn)))
        mx = s.get("maxProperties")
        if _is_num(mx) and n > int(mx):
            msg = f"{path} in body should have at most {int(mx)} properties"
            errs.append(_OErr("too_many_props", path, msg, n, int(mx)))
        props = s.get("properties")
        if not isinstance(props, dict):
            props = {}
        ap = s.get("additionalProperties")
        if ap is False:
            for k in data:
                if k not in props:
                    msg = f"{path}.{k} in body is a forbidden property"
                    errs.append(_OErr("other", path, msg, k))
        elif isinstance(ap, dict):
            for k, v in data.items():
                if k not in props:
                    e, c = self.node(ap, v, f"{path}.{k}")
                    errs += e
                    count += c
        for name, ps in props.items():
            if name in data:
                e, c = self.node(ps, data[name], name if not path else f"{path}.{name}")
                errs += e
                count += c
        req = s.get("required")
        if isinstance(req, list):
            for k in req:
                if isinstance(k, str) and k not in data:
                    name = f"{path}.{k}"
                    errs.append(_OErr("required", name, f"{name} in body is required"))
        return errs, count


def _is_num(v: Any) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _trunc(v: int | float) -> int:
    return v if isinstance(v, int) else math.trunc(v)


def _positive(path: str, shown: str, factor: Any) -> _OErr:
    return _OErr(
        "other", path, f"factor MultipleOf declared for {path} must be positive: {shown}", factor
    )


def _type_err(path: str, type_name: str, value: str) -> _OErr:
    msg = f"{path} in body must be of type {type_name}: {_gofmt.go_quote(value)}"
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
            out.append(_gofmt.invalid(base or "<nil>", "", e.message))
            continue
        fp = base
        if e.name and e.name != ".":
            n = e.name[1:] if e.name.startswith(".") else e.name
            fp = f"{base}.{n}" if base else n
        fp = fp or "<nil>"
        value = "" if e.value is None else e.value
        if e.kind == "required":
            out.append(_gofmt.required(fp))
        elif e.kind == "enum":
            vals = [v if isinstance(v, str) else _gofmt.go_json(v) for v in e.values or []]
            out.append(_gofmt.not_supported(fp, e.value, vals))
        elif e.kind == "too_long":
            out.append(_gofmt.too_long(fp, int(e.valid)))
        elif e.kind in ("max_items", "too_many_props"):
            out.append(_gofmt.too_many(fp, int(e.value), int(e.valid)))
        elif e.kind == "type":
            out.append(_gofmt.type_invalid(fp, value, e.message))
        else:
            out.append(_gofmt.invalid(fp, value, e.message))
    return out


def validate_value(
    obj: Any, schema: dict[str, Any], path: str = "", *, runtime: bool = True
) -> list[FieldError]:
    """Validate ``obj`` against ``schema`` and return upstream's field errors."""
    errs, _ = Validator(runtime).node(schema, obj, "")
    return to_field_errors(path, errs) if errs else []
