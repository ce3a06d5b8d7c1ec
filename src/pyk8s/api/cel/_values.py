"""JSON values → CEL values by structural schema (upstream's ``UnstructuredToVal``).

What changes on the way in: ``type: number`` becomes a double even when JSON had ``1``;
``format: date-time``/``date`` strings
become timestamps, ``format: duration`` durations (Go's syntax, plus the ``d``/``w`` and
spelled-out units strfmt accepts), ``format: byte`` bytes; declared property names are
escaped (``foo-bar`` → ``foo__dash__bar``, ``namespace`` → ``__namespace__``) so rules select
them as upstream's do; ``x-kubernetes-int-or-string`` and schemaless values pass unchanged.
A value that does not parse as its format stays a string (upstream makes it an error value
that fails when touched; here the rule fails with "no such overload" instead).

:func:`converter` compiles a schema into a function once, and returns None where nothing in
the subtree needs converting, so most values are handed to the evaluator as they are.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Callable
from typing import Any, Final

from ._library import go_duration
from ._types import escape

__all__ = ["Convert", "converter", "parse_datetime", "parse_schema_duration"]

Convert = Callable[[Any], Any]

_UNITS: Final = {
    "ns": 1e-3, "nanosecond": 1e-3, "nanoseconds": 1e-3,
    "us": 1, "µs": 1, "microsecond": 1, "microseconds": 1,
    "ms": 1e3, "millisecond": 1e3, "milliseconds": 1e3,
    "s": 1e6, "sec": 1e6, "secs": 1e6, "second": 1e6, "seconds": 1e6,
    "m": 6e7, "min": 6e7, "mins": 6e7, "minute": 6e7, "minutes": 6e7,
    "h": 3.6e9, "hr": 3.6e9, "hour": 3.6e9, "hours": 3.6e9,
    "d": 8.64e10, "day": 8.64e10, "days": 8.64e10,
    "w": 6.048e11, "wk": 6.048e11, "week": 6.048e11, "weeks": 6.048e11,
}  # fmt: skip
_STRFMT_DURATION: Final = re.compile(r"(\d+)\s*([A-Za-zµ]+)")


def parse_schema_duration(s: str) -> dt.timedelta:
    """go-openapi strfmt's ParseDuration: Go syntax, else ``<n> <unit>`` pairs."""
    try:
        return go_duration(s)
    except ValueError:
        pass
    total = 0.0
    found = False
    for n, unit in _STRFMT_DURATION.findall(s):
        mult = _UNITS.get(unit.lower())
        if mult is not None:
            total += int(n) * mult
            found = True
    if not found:
        raise ValueError(f"unable to parse {s} as duration")
    return dt.timedelta(microseconds=total)


def parse_datetime(s: str) -> dt.datetime:
    """strfmt's ParseDateTime (RFC 3339 and close relatives), as an aware datetime in UTC."""
    text = s.strip()
    if text[-1:] in ("z", "Z"):
        text = text[:-1] + "+00:00"
    m = re.fullmatch(r"(.*\.)(\d{7,})(.*)", text)
    if m:  # Python keeps microseconds; Go keeps nanoseconds
        text = m.group(1) + m.group(2)[:6] + m.group(3)
    t = dt.datetime.fromisoformat(text)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC)


def _date(s: str) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(s), dt.time(), dt.UTC)


def _string(fmt: str | None) -> Convert | None:
    parse: Callable[[str], Any]
    if fmt == "date-time":
        parse = parse_datetime
    elif fmt == "date":
        parse = _date
    elif fmt == "duration":
        parse = parse_schema_duration
    elif fmt == "byte":

        def parse(s: str) -> bytes:
            return base64.b64decode(s, validate=True)

    else:
        return None

    def convert(v: Any) -> Any:
        if isinstance(v, str):
            try:
                return parse(v)
            except (ValueError, binascii.Error):
                return v
        return v

    return convert


def _number(v: Any) -> Any:
    return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


def converter(schema: Any) -> Convert | None:
    """A function turning JSON values of ``schema`` into CEL values; None if identity."""
    if not isinstance(schema, dict) or schema.get("x-kubernetes-int-or-string"):
        return None
    t = schema.get("type")
    if t == "number":
        return _number
    if t == "string":
        return _string(schema.get("format"))
    if t == "array":
        item = converter(schema.get("items"))
        if item is None:
            return None

        def convert_list(v: Any) -> Any:
            return [None if x is None else item(x) for x in v] if isinstance(v, list) else v

        return convert_list
    if t == "object":
        ap = schema.get("additionalProperties")
        if isinstance(ap, dict):
            val = converter(ap)
            if val is None:
                return None

            def convert_map(v: Any) -> Any:
                if not isinstance(v, dict):
                    return v
                return {k: None if x is None else val(x) for k, x in v.items()}

            return convert_map
        props: dict[str, tuple[str, Convert | None]] = {}
        for name, prop in (schema.get("properties") or {}).items():
            esc = escape(name) or name
            conv = converter(prop)
            if esc != name or conv is not None:
                props[name] = (esc, conv)
        if not props:
            return None

        def convert_object(v: Any) -> Any:
            if not isinstance(v, dict):
                return v
            out: dict[str, Any] = {}
            for k, x in v.items():
                spec = props.get(k)
                if spec is None:
                    out[k] = x
                else:
                    esc, conv = spec
                    out[esc] = x if conv is None or x is None else conv(x)
            return out

        return convert_object
    return None
