"""Go's value printing, for error text that must read exactly as the Go API server's.

Custom-resource errors carry the offending value, and upstream prints it with Go's
``fmt`` verbs: ``%q`` for strings, ``%v`` for numbers (``1e+06``, not ``1000000.0``),
``%#v`` for maps and slices (``map[string]interface {}{"name":"a"}``), and a nil as the
quoted string ``"null"``. :class:`GoFieldError` is a :class:`~pyk8s.api.errors.FieldError`
whose body is rendered that way; the helpers render numbers and JSON as Go does.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pyk8s.api.errors import FieldError, FieldErrorType

_OMIT = object()  # upstream's omitValue: the body shows no value at all


class GoStringSlice(list[str]):
    """A Go ``[]string`` (printed ``[]string{"a", "b"}`` by ``%#v``)."""


class GoFieldError(FieldError):
    """A field error whose value is printed with Go's verbs, as ``field.Error`` does."""

    __slots__ = ()

    def body(self) -> str:
        t = self.type
        if (
            t
            in (
                FieldErrorType.REQUIRED,
                FieldErrorType.FORBIDDEN,
                FieldErrorType.TOO_LONG,
                FieldErrorType.INTERNAL,
            )
            or self.value is _OMIT
        ):
            s = t.text
        else:
            s = f"{t.text}: {go_value(self.value)}"
        if self.detail:
            s = f"{s}: {self.detail}"
        return s

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"


# ------------------------------------------------------------------ constructors


def required(field: str, detail: str = "") -> GoFieldError:
    return GoFieldError(FieldErrorType.REQUIRED, field, _OMIT, detail)


def forbidden(field: str, detail: str) -> GoFieldError:
    return GoFieldError(FieldErrorType.FORBIDDEN, field, _OMIT, detail)


def invalid(field: str, value: Any, detail: str) -> GoFieldError:
    return GoFieldError(FieldErrorType.INVALID, field, value, detail)


def type_invalid(field: str, value: Any, detail: str) -> GoFieldError:
    return GoFieldError(FieldErrorType.TYPE_INVALID, field, value, detail)


def duplicate(field: str, value: Any) -> GoFieldError:
    return GoFieldError(FieldErrorType.DUPLICATE, field, value)


def not_supported(field: str, value: Any, supported: list[str]) -> GoFieldError:
    detail = ""
    if supported:
        detail = "supported values: " + ", ".join(go_quote(v) for v in supported)
    return GoFieldError(FieldErrorType.NOT_SUPPORTED, field, value, detail)


def too_long(field: str, max_length: int) -> GoFieldError:
    msg = f"may not be more than {max_length} bytes" if max_length >= 0 else "value is too long"
    return GoFieldError(FieldErrorType.TOO_LONG, field, _OMIT, msg)


def too_many(field: str, actual: int, maximum: int) -> GoFieldError:
    msg = f"must have at most {maximum} items" if maximum >= 0 else "has too many items"
    return GoFieldError(FieldErrorType.TOO_MANY, field, actual if actual >= 0 else _OMIT, msg)


def internal(field: str, detail: str) -> GoFieldError:
    return GoFieldError(FieldErrorType.INTERNAL, field, _OMIT, detail)


def aggregate(errs: list[FieldError]) -> str:
    """``ErrorList.ToAggregate().Error()``: one message, or ``[a, b]``."""
    msgs: list[str] = []
    for e in errs:
        m = str(e)
        if m not in msgs:
            msgs.append(m)
    return msgs[0] if len(msgs) == 1 else "[" + ", ".join(msgs) + "]"


# ------------------------------------------------------------------ value printing


def go_value(value: Any) -> str:
    """A bad value as ``field.Error.ErrorBody`` prints it."""
    if value is None:
        return '"null"'
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    return go_sharp_v(value)


def go_sharp_v(value: Any) -> str:
    """Go's ``%#v`` of a decoded JSON value (``map[string]interface {}{...}``)."""
    if isinstance(value, GoStringSlice):
        return "[]string{" + ", ".join(go_quote(v) for v in value) + "}"
    if isinstance(value, dict):
        items = ", ".join(f"{go_quote(str(k))}:{go_sharp_v(value[k])}" for k in sorted(value))
        return "map[string]interface {}{" + items + "}"
    if isinstance(value, list):
        return "[]interface {}{" + ", ".join(go_sharp_v(v) for v in value) + "}"
    if value is None:
        return "interface {}(nil)"
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    return repr(value)


def go_v(value: Any) -> str:
    """Go's ``%v`` of a decoded JSON value (``[a b]``, ``map[k:v]``)."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_v(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_v(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    return str(value)


def go_quote(s: str) -> str:
    """``strconv.Quote``: printable runes kept, the rest escaped Go's way."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == " " or (ch.isprintable() and o != 0x7F):
            out.append(ch)
        elif ch in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\\ufffd")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


_SIMPLE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def _digits(f: float) -> tuple[bool, str, int]:
    """Shortest round-trip digits of ``f``: (negative, digits, decimal point position)."""
    sign, digits, exp = Decimal(repr(f)).as_tuple()
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    dp = len(digits) + int(exp)
    if ds == "0":
        dp = 1
    return bool(sign), ds, dp


def _fmt_e(neg: bool, ds: str, dp: int) -> str:
    mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
    e = dp - 1
    sign = "-" if e < 0 else "+"
    return f"{'-' if neg else ''}{mant}e{sign}{abs(e):02d}"


def _fmt_f(neg: bool, ds: str, dp: int) -> str:
    if dp <= 0:
        s = "0." + "0" * (-dp) + ds
    elif dp >= len(ds):
        s = ds + "0" * (dp - len(ds))
    else:
        s = ds[:dp] + "." + ds[dp:]
    return ("-" if neg else "") + s


def go_float(f: float) -> str:
    """``strconv.FormatFloat(f, 'g', -1, 64)``, i.e. Go's ``%v`` of a float64."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if str(f).startswith("-") else "0"
    neg, ds, dp = _digits(f)
    exp = dp - 1
    if exp < -4 or exp >= 6:
        return _fmt_e(neg, ds, dp)
    return _fmt_f(neg, ds, dp)


def go_json_float(f: float) -> str:
    """A float64 as ``encoding/json`` writes it (``1e-7``, ``1e+21``, ``0.5``)."""
    if f == 0:
        return "-0" if str(f).startswith("-") else "0"
    neg, ds, dp = _digits(f)
    a = abs(f)
    if a < 1e-6 or a >= 1e21:
        s = _fmt_e(neg, ds, dp)
        head, _, tail = s.partition("e")
        if tail.startswith("-0"):
            tail = "-" + tail[2:]
        return f"{head}e{tail}"
    return _fmt_f(neg, ds, dp)


def go_json(value: Any) -> str:
    """``json.Marshal`` of a decoded JSON value: compact, sorted keys, HTML-escaped."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_json_float(value)
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(f"{_json_string(str(k))}:{go_json(value[k])}" for k in sorted(value))
            + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    return _json_string(str(value))


def _json_string(s: str) -> str:
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif o < 0x20 or ch in "<>&" or o in (0x2028, 0x2029):
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
