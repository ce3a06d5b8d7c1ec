"""Values printed the way Go prints them, for messages that must read as upstream's.

Upstream's error text is made with Go's ``fmt`` verbs and ``encoding/json``: a field
error quotes a string with ``%q``, a float64 reads ``1e+06`` (not ``1000000.0``), a
map reads ``map[string]interface {}{"a":1}`` under ``%#v`` and ``map[a:1]`` under
``%v``, a JSON decoding error names the JSON kind (``cannot unmarshal number into …``),
a patch error names the Go type (``received a []interface {}``), and kubectl's JSONPath
prints maps as ``json.Marshal`` does. Clients and tests compare these strings, so every
module that words such a message renders the value here, one function per verb.

Values are decoded JSON as Go's unstructured decoder gives them: ``dict``
(``map[string]interface {}``), ``list`` (``[]interface {}``), ``str``, ``int`` (int64),
``float`` (float64), ``bool`` and ``None`` (nil). :class:`GoStringSlice` marks a list
that is a typed ``[]string`` upstream. Pure: imports nothing of ours.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = [
    "GoStringSlice",
    "go_bad_value",
    "go_float",
    "go_json",
    "go_quote",
    "go_s",
    "go_sharp_v",
    "go_string_slice",
    "go_type",
    "go_v",
    "json_kind",
]


class GoStringSlice(list[str]):
    """A list that is a Go ``[]string`` upstream (``%#v`` prints ``[]string{"a", "b"}``)."""


# --------------------------------------------------------------------------- strings

_QUOTE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def go_quote(s: str) -> str:
    """``%q`` (``strconv.Quote``): ``"a\\tb"``; printable runes kept, others escaped.

    A lone surrogate (no Go string holds one) is taken as its UTF-8 bytes, which Go
    escapes one byte at a time (``\\xed\\xa0\\x80``).
    """
    out = ['"']
    for c in s:
        if c in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[c])
        elif c.isprintable():  # Python's isprintable is Go's unicode.IsPrint (space included)
            out.append(c)
        else:
            o = ord(c)
            if o < 0x80:
                out.append(f"\\x{o:02x}")
            elif 0xD800 <= o <= 0xDFFF:
                out.extend(f"\\x{b:02x}" for b in c.encode("utf-8", "surrogatepass"))
            elif o < 0x10000:
                out.append(f"\\u{o:04x}")
            else:
                out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


def go_string_slice(values: list[str] | None) -> str:
    """``%#v`` of a ``[]string``: ``[]string{"a", "b"}``, or ``[]string(nil)`` for None."""
    if values is None:
        return "[]string(nil)"
    return "[]string{" + ", ".join(go_quote(v) for v in values) + "}"


# --------------------------------------------------------------------------- numbers


def _digits(f: float) -> tuple[str, int]:
    """The shortest round-trip digits of ``|f|`` and the decimal point (0.ddd * 10**dp)."""
    mant, _, exp = repr(abs(f)).partition("e")
    ip, _, fp = mant.partition(".")
    allds = (ip + fp).lstrip("0")
    dp = len(allds) + (int(exp) if exp else 0) - len(fp)
    return allds.rstrip("0"), dp


def _fmt_e(neg: bool, ds: str, dp: int) -> str:
    exp = dp - 1
    mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
    sign = "-" if exp < 0 else "+"
    return f"{'-' if neg else ''}{mant}e{sign}{abs(exp):02d}"


def _fmt_f(neg: bool, ds: str, dp: int) -> str:
    if dp <= 0:
        text = "0." + "0" * -dp + ds
    elif dp >= len(ds):
        text = ds + "0" * (dp - len(ds))
    else:
        text = ds[:dp] + "." + ds[dp:]
    return ("-" if neg else "") + text


def go_float(f: float) -> str:
    """``%v`` of a float64 (``strconv.FormatFloat(f, 'g', -1, 64)``): ``1``, ``2.5``,
    ``1e+06``, ``1e-05``, ``+Inf``."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    neg = math.copysign(1.0, f) < 0
    if f == 0:
        return "-0" if neg else "0"
    ds, dp = _digits(f)
    exp = dp - 1
    # shortest %g decides with precision 6: the exponent form when exp < -4 or exp >= 6
    if exp < -4 or exp >= 6:
        return _fmt_e(neg, ds, dp)
    return _fmt_f(neg, ds, dp)


def _json_float(f: float) -> str:
    """A float64 as ``encoding/json`` writes it (``1e-7``, ``1e+21``, ``0.5``, ``100``)."""
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    neg = f < 0
    ds, dp = _digits(f)
    if abs(f) < 1e-6 or abs(f) >= 1e21:
        text = _fmt_e(neg, ds, dp)
        # Go cleans e-07 up to e-7
        if text[-4] == "e" and text[-3] == "-" and text[-2] == "0":
            text = text[:-2] + text[-1]
        return text
    return _fmt_f(neg, ds, dp)


# --------------------------------------------------------------------------- JSON


_JSON_SPECIAL = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029]')
_HTML_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _json_string(s: str) -> str:
    """A JSON string as Go (1.22+) writes it: ``\\b \\f \\n \\r \\t`` short, other
    control characters ``\\u00XX``, ``<>&`` and U+2028/9 escaped, the rest kept."""
    if not _JSON_SPECIAL.search(s):
        return '"' + s + '"'
    text = json.dumps(s, ensure_ascii=False)
    return "".join(_HTML_ESCAPES.get(c, c) for c in text)


def go_json(value: Any) -> str:
    """``json.Marshal``: compact, map keys sorted, HTML-escaped, Go's float form."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _json_float(value)
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, dict):
        items = sorted((str(k), v) for k, v in value.items())
        return "{" + ",".join(f"{_json_string(k)}:{go_json(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    return _json_string(str(value))


def json_kind(value: Any) -> str:
    """The JSON kind ``encoding/json`` names in ``cannot unmarshal <kind> into …``."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if value is None:
        return "null"
    return "object"


# --------------------------------------------------------------------------- fmt verbs


def go_type(value: Any) -> str:
    """``%T`` (``reflect.TypeOf``) of a decoded JSON value: ``map[string]interface {}``,
    ``[]interface {}``, ``string``, ``bool``, ``int64``, ``float64``; ``<nil>`` for nil."""
    if value is None:
        return "<nil>"
    if isinstance(value, GoStringSlice):
        return "[]string"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list | tuple):
        return "[]interface {}"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    return type(value).__name__


def go_v(value: Any) -> str:
    """``%v``: ``<nil>``, strings bare, ``[a b]``, ``map[k:v]`` (keys sorted)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_v(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_v(v) for v in value) + "]"
    return str(value)


def go_s(value: Any) -> str:
    """``%s``: strings bare, maps and slices as ``%v``, other values marked
    ``%!s(int64=1)``, nil as ``%!s(<nil>)``."""
    if isinstance(value, str):
        return value
    if value is None:
        return "%!s(<nil>)"
    if isinstance(value, dict | list | tuple):
        return go_v(value)
    return f"%!s({go_type(value)}={go_v(value)})"


def go_sharp_v(value: Any) -> str:
    """``%#v``: ``map[string]interface {}{"a":1}``, ``[]interface {}{"a", 1}``,
    ``interface {}(nil)`` inside them, strings quoted, a :class:`GoStringSlice` as
    ``[]string{…}``."""
    if isinstance(value, GoStringSlice):
        return go_string_slice(value)
    if isinstance(value, dict):
        items = ", ".join(f"{go_quote(str(k))}:{go_sharp_v(value[k])}" for k in sorted(value))
        return "map[string]interface {}{" + items + "}"
    if isinstance(value, list | tuple):
        return "[]interface {}{" + ", ".join(go_sharp_v(v) for v in value) + "}"
    if value is None:
        return "interface {}(nil)"
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, int):
        return str(value)
    return go_quote(str(value))


def go_bad_value(value: Any) -> str:
    """A bad value as ``field.Error.ErrorBody`` (v1.32) prints it.

    nil becomes the string ``"null"``; int64/float64/bool print with ``%v`` (``1e+06``);
    a string with ``%q``; anything else (maps, slices) with ``%#v``.
    """
    if value is None:
        return '"null"'
    if isinstance(value, str):
        return go_quote(value)
    return go_sharp_v(value)
