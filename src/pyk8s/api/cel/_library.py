"""Kubernetes' CEL extension functions, in Python, for the Rust evaluator to call.

The evaluator implements the CEL core (operators, macros, ``size``, ``contains``,
``startsWith``, ``endsWith``, ``matches``, conversions, timestamp/duration getters without a
time zone). Everything Kubernetes adds on top (k8s.io/apiserver/pkg/cel/library and cel-go's
``ext`` strings and sets, as the v1.32 base environment enables them) is registered here as a
Python function. ``x.f(a)`` reaches a function as ``f(x, a)``, so one Python function serves
both call styles, and functions whose name is shared by lists and strings (``indexOf``,
``lastIndexOf``) dispatch on the receiver.

The evaluator cannot carry Python objects, so the two opaque Kubernetes types travel as
one-key maps: a Quantity as ``{"@kubernetes.Quantity": "<exact decimal>"}`` (equal
quantities have equal maps, so ``==`` is semantic as upstream's ``Quantity.Equal``) and a URL
as ``{"@kubernetes.URL": "<text>"}``. The static checks keep rules from treating them as maps.

Errors: a function that fails raises :class:`FunctionError` with cel-go's message. The
evaluator prints Python exceptions raised in callbacks to stdout, so :func:`wrap` catches
them, records the message in :data:`STATE`, and returns a value the evaluator cannot convert;
the evaluation then fails and the caller reports the recorded message. An error the
expression absorbs (``true || f()``) is simply ignored.

:data:`SIGNATURES` declares every function (native and ours) for the checker: receiver style,
parameter types and result type, in the spelling of :mod:`._types`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
import itertools
import math
import re
import threading
import urllib.parse
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import cel
from pyk8s.api.gofmt import go_quote
from pyk8s.api.quantity import QuantityError, parse_quantity

__all__ = [
    "AUTHZ",
    "FUNCTIONS",
    "MATCHES_FUNCTION",
    "QUANTITY_KEY",
    "SIGNATURES",
    "SIZE_FUNCTION",
    "STATE",
    "STRING_FUNCTION",
    "URL_KEY",
    "AuthorizerHook",
    "FunctionError",
    "authorizer_value",
    "go_duration",
    "rfc3339",
    "wrap",
]

QUANTITY_KEY: Final = "@kubernetes.Quantity"
URL_KEY: Final = "@kubernetes.URL"
#: ``size`` is rewritten to this: the evaluator counts a string's bytes, CEL its code points
SIZE_FUNCTION: Final = "__k8s_size__"
#: ``matches`` with a literal pattern Python reads alike is rewritten to this (speed)
MATCHES_FUNCTION: Final = "__k8s_matches__"
#: ``string(x)`` of an IP or CIDR is rewritten to this
STRING_FUNCTION: Final = "__k8s_string__"
_MAX_INT: Final = 2**63 - 1
_MIN_INT: Final = -(2**63)


class FunctionError(Exception):
    """A function failed; ``message`` is what cel-go says."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _State(threading.local):
    error: str | None = None


#: the message of the last failed function call (per thread), see :func:`wrap`
STATE: Final = _State()
_UNCONVERTIBLE: Final = object()


def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` as the evaluator should call it: failures recorded in :data:`STATE`."""

    def call(*args: Any) -> Any:
        try:
            return fn(*args)
        except FunctionError as e:
            STATE.error = e.message
        except Exception:  # a receiver or argument this function has no overload for
            STATE.error = "no such overload"
        return _UNCONVERTIBLE

    call.__name__ = getattr(fn, "__name__", "function")
    return call


def _no_overload() -> FunctionError:
    return FunctionError("no such overload")


def cel_equal(a: Any, b: Any) -> bool:
    """CEL's heterogeneous equality (``1 == 1.0``, but ``true != 1``)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(cel_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(cel_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and bool(a == b)


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise _no_overload()
    return v


def _int(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise _no_overload()
    return v


# ---- strings (cel-go ext.Strings, version 2) ----


def char_at(s: Any, i: Any) -> str:
    text, k = _str(s), _int(i)
    if k < 0 or k > len(text):
        raise FunctionError(f"index out of range: {k}")
    return text[k] if k < len(text) else ""


def _string_index_of(s: str, sub: str, offset: int | None) -> int:
    off = 0 if offset is None else offset
    if sub == "":
        return off
    if off < 0:
        raise FunctionError(f"index out of range: {off}")
    if off >= len(s):
        return -1
    return s.find(sub, off)


def _string_last_index_of(s: str, sub: str, offset: int | None) -> int:
    if offset is None:
        if sub == "":
            return len(s)
        offset = len(s) - 1
    if sub == "":
        return offset
    if offset < 0:
        raise FunctionError(f"index out of range: {offset}")
    if offset >= len(s):
        return -1
    return s.rfind(sub, 0, offset + len(sub))


def index_of(x: Any, item: Any, offset: Any = None) -> int:
    if isinstance(x, str):
        return _string_index_of(x, _str(item), None if offset is None else _int(offset))
    if isinstance(x, list) and offset is None:
        for i, v in enumerate(x):
            if cel_equal(v, item):
                return i
        return -1
    raise _no_overload()


def last_index_of(x: Any, item: Any, offset: Any = None) -> int:
    if isinstance(x, str):
        return _string_last_index_of(x, _str(item), None if offset is None else _int(offset))
    if isinstance(x, list) and offset is None:
        for i in range(len(x) - 1, -1, -1):
            if cel_equal(x[i], item):
                return i
        return -1
    raise _no_overload()


_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_UPPER: Final = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def lower_ascii(s: Any) -> str:
    return _str(s).translate(_LOWER)


def upper_ascii(s: Any) -> str:
    return _str(s).translate(_UPPER)


def replace(s: Any, old: Any, new: Any, n: Any = -1) -> str:
    count = _int(n)
    return _str(s).replace(_str(old), _str(new), count if count >= 0 else -1)


def split(s: Any, sep: Any, n: Any = -1) -> list[str]:
    text, by, count = _str(s), _str(sep), _int(n)
    if count == 0:
        return []
    if by == "":
        parts = list(text)
        if count > 0 and len(parts) > count:
            parts = [*parts[: count - 1], "".join(parts[count - 1 :])]
        return parts
    return text.split(by, count - 1) if count > 0 else text.split(by)


def substring(s: Any, start: Any, end: Any = None) -> str:
    text, i = _str(s), _int(start)
    if end is None:
        if i < 0 or i > len(text):
            raise FunctionError(f"index out of range: {i}")
        return text[i:]
    j = _int(end)
    if i > j:
        raise FunctionError(f"invalid substring range. start: {i}, end: {j}")
    if i < 0 or i > len(text):
        raise FunctionError(f"index out of range: {i}")
    if j < 0 or j > len(text):
        raise FunctionError(f"index out of range: {j}")
    return text[i:j]


def trim(s: Any) -> str:
    return _str(s).strip()


def join(items: Any, sep: Any = "") -> str:
    if not isinstance(items, list):
        raise _no_overload()
    strs: list[str] = []
    for v in items:
        if not isinstance(v, str):
            raise FunctionError(f"join: invalid input: {v}")
        strs.append(v)
    return _str(sep).join(strs)


def reverse(s: Any) -> str:
    return _str(s)[::-1]


_QUOTE: Final = {
    "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
    "\v": "\\v", "\\": "\\\\", '"': '\\"',
}  # fmt: skip


def quote(s: Any) -> str:
    return '"' + "".join(_QUOTE.get(c, c) for c in _str(s)) + '"'


_FORMAT_VERB: Final = re.compile(r"%(?:\.(\d+))?([a-zA-Z%])")


def _format_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "+Inf" if v > 0 else "-Inf"
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_format_value(x) for x in v) + "]"
    if isinstance(v, dict):
        items = sorted((_format_value(k), _format_value(x)) for k, x in v.items())
        return "{" + ", ".join(f"{k}: {x}" for k, x in items) + "}"
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, dt.datetime):
        return rfc3339(v)
    if isinstance(v, dt.timedelta):
        return duration_string(v)
    return str(v)


def format_string(fmt: Any, args: Any) -> str:
    """cel-go's ``"...".format([args])``: %s %d %f %e %x %X %o %b with optional precision."""
    text = _str(fmt)
    if not isinstance(args, list):
        raise _no_overload()
    i = 0

    def verb(m: re.Match[str]) -> str:
        nonlocal i
        prec, v = m.group(1), m.group(2)
        if v == "%":
            return "%"
        if i >= len(args):
            raise FunctionError(f"index {i} out of range")
        arg = args[i]
        i += 1
        if v == "s":
            return _format_value(arg)
        if v == "d" and isinstance(arg, int) and not isinstance(arg, bool):
            return str(arg)
        if v in "fe" and isinstance(arg, int | float) and not isinstance(arg, bool):
            return f"{float(arg):.{int(prec) if prec else 6}{v}}"
        if v in "xXob" and isinstance(arg, int | str | bytes) and not isinstance(arg, bool):
            if isinstance(arg, int):
                return format(arg, v)
            data = arg.encode() if isinstance(arg, str) else arg
            return data.hex().upper() if v == "X" else data.hex()
        raise FunctionError(f"could not format argument {i - 1} with verb %{v}")

    return _FORMAT_VERB.sub(verb, text)


# ---- lists (k8s.io/apiserver/pkg/cel/library/lists.go) ----


def _comparable(items: list[Any]) -> None:
    kinds = {
        "num" if isinstance(v, int | float) and not isinstance(v, bool) else type(v).__name__
        for v in items
    }
    if len(kinds) > 1 or kinds & {"list", "dict", "NoneType"}:
        raise _no_overload()


def is_sorted(items: Any) -> bool:
    if not isinstance(items, list):
        raise _no_overload()
    _comparable(items)
    return all(a <= b for a, b in itertools.pairwise(items))


def list_sum(items: Any) -> Any:
    if not isinstance(items, list):
        raise _no_overload()
    if not items:
        return 0
    if all(isinstance(v, dt.timedelta) for v in items):
        return sum(items, dt.timedelta())
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in items):
        raise _no_overload()
    total = sum(items)
    if isinstance(total, int) and not _MIN_INT <= total <= _MAX_INT:
        raise FunctionError("integer overflow")
    return total


def _extreme(items: Any, name: str, pick: Callable[..., Any]) -> Any:
    if not isinstance(items, list):
        raise _no_overload()
    if not items:
        raise FunctionError(f"{name} called on empty list")
    _comparable(items)
    return pick(items)


def list_min(items: Any) -> Any:
    return _extreme(items, "min", min)


def list_max(items: Any) -> Any:
    return _extreme(items, "max", max)


# ---- regex (library/regex.go) ----


_RE2_ONLY: Final = re.compile(r"\\[pPzCQE0-9]|\[\[:|\{,|\(\?[^:P]|\(\?P[^<]")


def re2_to_python(pattern: str) -> str | None:
    """An RE2 pattern as a Python pattern with the same meaning, or None if unsure.

    With ``re.ASCII`` Python's ``\\d \\w \\s \\b`` are RE2's; ``$`` outside a class
    becomes ``\\Z`` (Python's ``$`` also matches before a final newline, RE2's does not).
    Patterns using RE2-only syntax (``\\pL``, ``[[:alpha:]]``, ``\\z``, ``\\Q..\\E``,
    flags such as ``(?i)``) or Python-only syntax (back references, ``{,n}``) give None.
    """
    if _RE2_ONLY.search(pattern):
        return None
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if c == "]" and not (out and out[-1] in ("[", "[^")):
                in_class = False
            out.append(c)
        elif c == "[":
            in_class = True
            if pattern.startswith("[^", i):
                out.append("[^")
                i += 2
                continue
            out.append("[")
        elif c == "$":
            out.append("\\Z")
        else:
            out.append(c)
        i += 1
    text = "".join(out)
    try:
        re.compile(text, re.ASCII)
    except re.error:
        return None
    return text


@lru_cache(maxsize=1024)
def compile_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` (RE2 syntax) compiled for Python: translated when safe, else as given."""
    text = re2_to_python(pattern)
    try:
        return re.compile(text, re.ASCII) if text is not None else re.compile(pattern)
    except re.error as e:
        raise FunctionError(f"Illegal regex: {e}") from None


def matches(s: Any, pattern: Any) -> bool:
    """``matches`` for patterns :func:`re2_to_python` translates (the evaluator's own
    ``matches`` compiles the regex on every call: 15-30 µs against 2 µs here)."""
    return compile_regex(_str(pattern)).search(_str(s)) is not None


def find(s: Any, pattern: Any) -> str:
    m = compile_regex(_str(pattern)).search(_str(s))
    return m.group() if m else ""


def find_all(s: Any, pattern: Any, n: Any = -1) -> list[str]:
    count = _int(n)
    out = [m.group() for m in compile_regex(_str(pattern)).finditer(_str(s))]
    return out if count < 0 else out[:count]


# ---- sets (cel-go ext.Sets) ----


def sets_contains(items: Any, sub: Any) -> bool:
    if not isinstance(items, list) or not isinstance(sub, list):
        raise _no_overload()
    return all(any(cel_equal(x, y) for y in items) for x in sub)


def sets_equivalent(a: Any, b: Any) -> bool:
    return sets_contains(a, b) and sets_contains(b, a)


def sets_intersects(a: Any, b: Any) -> bool:
    if not isinstance(a, list) or not isinstance(b, list):
        raise _no_overload()
    return any(any(cel_equal(x, y) for y in b) for x in a)


# ---- quantity (library/quantity.go) ----


def _decimal_text(d: Decimal) -> str:
    d = d.normalize()
    return "0" if not d else format(d, "f") if -30 < d.adjusted() < 30 else str(d)


def make_quantity(d: Decimal) -> dict[str, str]:
    return {QUANTITY_KEY: _decimal_text(d)}


def _q(v: Any) -> Decimal:
    if isinstance(v, dict) and len(v) == 1 and QUANTITY_KEY in v:
        return Decimal(v[QUANTITY_KEY])
    raise _no_overload()


def quantity(s: Any) -> dict[str, str]:
    try:
        return make_quantity(parse_quantity(_str(s)))
    except QuantityError as e:
        raise FunctionError(str(e)) from None


def is_quantity(s: Any) -> bool:
    try:
        parse_quantity(_str(s))
    except QuantityError:
        return False
    return True


def _is_int64(d: Decimal) -> bool:
    return d == d.to_integral_value() and _MIN_INT <= d <= _MAX_INT


def q_is_integer(q: Any) -> bool:
    return _is_int64(_q(q))


def q_as_integer(q: Any) -> int:
    d = _q(q)
    if not _is_int64(d):
        raise FunctionError("cannot convert value to integer")
    return int(d)


def q_as_approximate_float(q: Any) -> float:
    try:
        return float(_q(q))
    except OverflowError:
        return math.inf if _q(q) > 0 else -math.inf


def q_sign(q: Any) -> int:
    d = _q(q)
    return (d > 0) - (d < 0)


def q_compare_to(a: Any, b: Any) -> int:
    x, y = _q(a), _q(b)
    return (x > y) - (x < y)


def q_is_less_than(a: Any, b: Any) -> bool:
    return _q(a) < _q(b)


def q_is_greater_than(a: Any, b: Any) -> bool:
    return _q(a) > _q(b)


def _q_or_int(v: Any) -> Decimal:
    if isinstance(v, int) and not isinstance(v, bool):
        return Decimal(v)
    return _q(v)


def q_add(a: Any, b: Any) -> dict[str, str]:
    return make_quantity(_q(a) + _q_or_int(b))


def q_sub(a: Any, b: Any) -> dict[str, str]:
    return make_quantity(_q(a) - _q_or_int(b))


# ---- url (library/urls.go, Go's net/url) ----


class _URLError(ValueError):
    pass


def _parse_url(s: str) -> urllib.parse.SplitResult:
    """Go's ``url.ParseRequestURI`` acceptance: an absolute URI or an absolute path."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in s):
        raise _URLError(f'parse "{s}": net/url: invalid control character in URL')
    u = urllib.parse.urlsplit(s)
    if not u.scheme:
        if not s.startswith("/"):
            raise _URLError(f'parse "{s}": invalid URI for request')
    elif not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", u.scheme):
        raise _URLError(f'parse "{s}": first path segment in URL cannot contain colon')
    host = u.netloc.rpartition("@")[2]
    if host and not host.startswith("["):
        _, colon, port = host.partition(":")
        if colon and not port.isdigit() and port != "":
            raise _URLError(f'parse "{s}": invalid port ":{port}" after host')
    elif host.startswith("["):
        rest = host[host.find("]") + 1 :] if "]" in host else None
        if rest is None or (rest and (not rest.startswith(":") or not rest[1:].isdigit())):
            raise _URLError(f'parse "{s}": invalid port "{rest}" after host')
    return u


def url(s: Any) -> dict[str, str]:
    s = _str(s)
    try:
        _parse_url(s)
    except _URLError as e:
        raise FunctionError(f"URL parse error during conversion from string: {e}") from None
    return {URL_KEY: s}


def is_url(s: Any) -> bool:
    try:
        _parse_url(_str(s))
    except _URLError:
        return False
    return True


def _u(v: Any) -> urllib.parse.SplitResult:
    if isinstance(v, dict) and len(v) == 1 and URL_KEY in v:
        return urllib.parse.urlsplit(v[URL_KEY])
    raise _no_overload()


def get_scheme(u: Any) -> str:
    return _u(u).scheme


def get_host(u: Any) -> str:
    return _u(u).netloc.rpartition("@")[2]


def get_hostname(u: Any) -> str:
    host = get_host(u)
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    return host.partition(":")[0]


def get_port(u: Any) -> str:
    host = get_host(u)
    if host.startswith("["):
        rest = host[host.find("]") + 1 :] if "]" in host else ""
        return rest[1:] if rest.startswith(":") else ""
    return host.partition(":")[2]


_PATH_SAFE: Final = "/!$&'()*+,;=:@~-._"


def get_escaped_path(u: Any) -> str:
    path = _u(u).path
    return urllib.parse.quote(urllib.parse.unquote(path), safe=_PATH_SAFE)


def get_query(u: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in urllib.parse.parse_qsl(_u(u).query, keep_blank_values=True):
        out.setdefault(k, []).append(v)
    return out


# ---- timestamps and durations ----

_RFC3339: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})"
)


def parse_rfc3339(s: str) -> dt.datetime:
    """Go's ``time.Parse(time.RFC3339, s)`` (what ``timestamp('...')`` accepts), in UTC."""
    m = _RFC3339.fullmatch(s)
    if m is None:
        raise ValueError(f"invalid timestamp {s!r}")
    y, mo, d, h, mi, sec, frac, tz = m.groups()
    micro = int((frac or "0").ljust(9, "0")[:6])
    if tz in ("Z", "z"):
        offset = dt.timedelta()
    else:
        sign = -1 if tz[0] == "-" else 1
        offset = sign * dt.timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
    t = dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(sec), micro, dt.timezone(offset))
    return t.astimezone(dt.UTC)


def rfc3339(t: dt.datetime) -> str:
    t = t.astimezone(dt.UTC)
    frac = f".{t.microsecond:06d}".rstrip("0") if t.microsecond else ""
    return t.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


_GO_DURATION: Final = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS: Final = {
    "ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
    "m": 60_000_000_000, "h": 3_600_000_000_000,
}  # fmt: skip


def go_duration(s: str) -> dt.timedelta:
    """Go's ``time.ParseDuration`` (``1h30m``, ``1.5s``, ``-300ms``); ValueError if not one."""
    rest = s
    sign = 1
    if rest[:1] in ("+", "-"):
        sign = -1 if rest[0] == "-" else 1
        rest = rest[1:]
    if rest == "0":
        return dt.timedelta()
    if not rest:
        raise ValueError(f"invalid duration {s!r}")
    total = Decimal(0)
    pos = 0
    while pos < len(rest):
        m = _GO_DURATION.match(rest, pos)
        if m is None or m.group(1) in ("", "."):
            raise ValueError(f"invalid duration {s!r}")
        total += Decimal(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    return sign * dt.timedelta(microseconds=int(total / 1000))


def duration_string(d: dt.timedelta) -> str:
    """Go's ``Duration.String()`` (``1h30m0s``, ``1.5s``, ``0s``)."""
    us = d // dt.timedelta(microseconds=1)
    if us == 0:
        return "0s"
    sign = "-" if us < 0 else ""
    us = abs(us)
    if us < 1_000_000:
        return f"{sign}{us / 1000:g}ms" if us >= 1000 else f"{sign}{us}µs"
    h, rem = divmod(us, 3_600_000_000)
    m, rem = divmod(rem, 60_000_000)
    secs = f"{Decimal(rem) / 1_000_000:f}".rstrip("0").rstrip(".") if rem else "0"
    out = f"{h}h" if h else ""
    if h or m:
        out += f"{m}m"
    return f"{sign}{out}{secs}s"


_OFFSET: Final = re.compile(r"([+-])(\d{2}):(\d{2})")


def _in_zone(t: Any, tz: Any) -> dt.datetime:
    if not isinstance(t, dt.datetime):
        raise _no_overload()
    name = _str(tz)
    m = _OFFSET.fullmatch(name)
    if m:
        off = dt.timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
        return t.astimezone(dt.timezone(-off if m.group(1) == "-" else off))
    try:
        return t.astimezone(ZoneInfo(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise FunctionError(f"unknown time zone {name}") from None


def _getter(part: Callable[[dt.datetime], int]) -> Callable[..., int]:
    def get(t: Any, tz: Any = "UTC") -> int:
        return part(_in_zone(t, tz))

    return get


TIME_GETTERS: Final[dict[str, Callable[..., int]]] = {
    "getFullYear": _getter(lambda t: t.year),
    "getMonth": _getter(lambda t: t.month - 1),
    "getDayOfYear": _getter(lambda t: t.timetuple().tm_yday - 1),
    "getDayOfMonth": _getter(lambda t: t.day - 1),
    "getDate": _getter(lambda t: t.day),
    "getDayOfWeek": _getter(lambda t: (t.weekday() + 1) % 7),
    "getHours": _getter(lambda t: t.hour),
    "getMinutes": _getter(lambda t: t.minute),
    "getSeconds": _getter(lambda t: t.second),
    "getMilliseconds": _getter(lambda t: t.microsecond // 1000),
}


# ---- ip and cidr (library/ip.go, cidr.go; Go's net/netip) ----

IP_KEY: Final = "@net.IP"
CIDR_KEY: Final = "@net.CIDR"
FORMAT_KEY: Final = "@kubernetes.Format"
OPAQUE_KEYS: Final = frozenset([QUANTITY_KEY, URL_KEY, IP_KEY, CIDR_KEY, FORMAT_KEY])
_IPV4: Final = re.compile(r"(0|[1-9][0-9]{0,2})(\.(0|[1-9][0-9]{0,2})){3}")


def _parse_addr(raw: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """netip.ParseAddr plus upstream's refusals (zones, IPv4-mapped IPv6)."""
    try:
        if ":" not in raw and not _IPV4.fullmatch(raw):
            raise ValueError(raw)
        addr = ipaddress.ip_address(raw)
    except ValueError:
        raise FunctionError(
            f'IP Address "{raw}" parse error during conversion from string: '
            f'ParseAddr("{raw}"): unable to parse IP'
        ) from None
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id is not None:
            raise FunctionError(f'IP address "{raw}" with zone value is not allowed')
        if addr.ipv4_mapped is not None:
            raise FunctionError(f'IPv4-mapped IPv6 address "{raw}" is not allowed')
    return addr


def _ip(v: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if isinstance(v, dict) and len(v) == 1 and IP_KEY in v:
        return ipaddress.ip_address(v[IP_KEY])
    raise _no_overload()


def _cidr(v: Any) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    if isinstance(v, dict) and len(v) == 1 and CIDR_KEY in v:
        addr, _, bits = v[CIDR_KEY].rpartition("/")
        return ipaddress.ip_address(addr), int(bits)
    raise _no_overload()


def _make_ip(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> dict[str, str]:
    return {IP_KEY: str(addr)}


def _make_cidr(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, bits: int) -> dict[str, str]:
    return {CIDR_KEY: f"{addr}/{bits}"}


def ip(v: Any) -> dict[str, str]:
    """``ip(string)``, and ``<CIDR>.ip()`` (the prefix's address)."""
    if isinstance(v, str):
        return _make_ip(_parse_addr(v))
    return _make_ip(_cidr(v)[0])


def is_ip(s: Any) -> bool:
    try:
        _parse_addr(_str(s))
    except FunctionError:
        return False
    return True


def ip_is_canonical(s: Any) -> bool:
    text = _str(s)
    return str(_parse_addr(text)) == text


def ip_family(v: Any) -> int:
    return _ip(v).version


def _is_link_local_unicast(a: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    net = "169.254.0.0/16" if a.version == 4 else "fe80::/10"
    return a in ipaddress.ip_network(net)


def ip_is_unspecified(v: Any) -> bool:
    return _ip(v).is_unspecified


def ip_is_loopback(v: Any) -> bool:
    return _ip(v).is_loopback


def ip_is_link_local_multicast(v: Any) -> bool:
    a = _ip(v)
    return a in ipaddress.ip_network("224.0.0.0/24" if a.version == 4 else "ff02::/16")


def ip_is_link_local_unicast(v: Any) -> bool:
    return _is_link_local_unicast(_ip(v))


def ip_is_global_unicast(v: Any) -> bool:
    """Go's ``IsGlobalUnicast``: private ranges count, unlike Python's ``is_global``."""
    a = _ip(v)
    if a.version == 4 and str(a) in ("0.0.0.0", "255.255.255.255"):
        return False
    return not (a.is_unspecified or a.is_loopback or a.is_multicast or _is_link_local_unicast(a))


def _parse_prefix(raw: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    addr_text, slash, bits_text = raw.partition("/")
    err = (
        "network address parse error during conversion from string: network address parse "
        f"error during conversion from string: netip.ParsePrefix({go_quote(raw)}): "
    )
    if not slash:
        raise FunctionError(err + "no '/'")
    try:
        addr = _parse_addr(addr_text)
    except FunctionError:
        raise FunctionError(err + f"ParseAddr({go_quote(addr_text)}): unable to parse IP") from None
    if not bits_text.isdigit() or (len(bits_text) > 1 and bits_text[0] == "0"):
        raise FunctionError(err + "bad bits after slash: " + go_quote(bits_text))
    bits = int(bits_text)
    if bits > addr.max_prefixlen:
        raise FunctionError(err + "prefix length out of range")
    return addr, bits


def cidr(s: Any) -> dict[str, str]:
    return _make_cidr(*_parse_prefix(_str(s)))


def is_cidr(s: Any) -> bool:
    try:
        _parse_prefix(_str(s))
    except FunctionError:
        return False
    return True


def _network(v: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    addr, bits = _cidr(v)
    return ipaddress.ip_network(f"{addr}/{bits}", strict=False)


def cidr_contains_ip(c: Any, other: Any) -> bool:
    target = _parse_addr(other) if isinstance(other, str) else _ip(other)
    net = _network(c)
    return target.version == net.version and target in net


def cidr_contains_cidr(c: Any, other: Any) -> bool:
    addr, bits = _parse_prefix(other) if isinstance(other, str) else _cidr(other)
    net = _network(c)
    if addr.version != net.version:
        return False
    return net.prefixlen <= bits and addr in net


def cidr_prefix_length(c: Any) -> int:
    return _cidr(c)[1]


def cidr_masked(c: Any) -> dict[str, str]:
    net = _network(c)
    return _make_cidr(net.network_address, net.prefixlen)


def to_string(v: Any) -> str:
    """``string()`` of an IP or a CIDR (the evaluator's own ``string`` cannot take them)."""
    if isinstance(v, dict) and len(v) == 1:
        if IP_KEY in v:
            return str(v[IP_KEY])
        if CIDR_KEY in v:
            return str(v[CIDR_KEY])
    raise _no_overload()


# ---- format (library/format.go) ----


def _format_checks() -> dict[str, Callable[[str], list[str]]]:
    # imported here: pyk8s.api.validation pulls in much of the API at import time
    from pyk8s.api.validation import names

    def uri(s: str) -> list[str]:
        try:
            _parse_url(s)
        except _URLError as e:
            return [str(e)]
        return []

    uuid_re = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")

    def byte(s: str) -> list[str]:
        try:
            base64.b64decode(s, validate=True)
        except (ValueError, binascii.Error):
            return ["invalid base64"]
        return []

    def date(s: str) -> list[str]:
        try:
            dt.date.fromisoformat(s)
        except ValueError:
            return ["invalid date"]
        return [] if re.fullmatch(r"\d{4}-\d{2}-\d{2}", s) else ["invalid date"]

    def datetime(s: str) -> list[str]:
        try:
            dt.datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return ["invalid datetime"]
        return []

    return {
        "dns1123Label": lambda s: names.name_is_dns_label(s, False),
        "dns1123Subdomain": lambda s: names.name_is_dns_subdomain(s, False),
        "dns1035Label": lambda s: names.name_is_dns1035_label(s, False),
        "qualifiedName": names.is_qualified_name,
        "dns1123LabelPrefix": lambda s: names.name_is_dns_label(s, True),
        "dns1123SubdomainPrefix": lambda s: names.name_is_dns_subdomain(s, True),
        "dns1035LabelPrefix": lambda s: names.name_is_dns1035_label(s, True),
        "labelValue": names.is_label_value,
        "uri": uri,
        "uuid": lambda s: [] if uuid_re.match(s) else ["does not match the UUID format"],
        "byte": byte,
        "date": date,
        "datetime": datetime,
    }


FORMAT_NAMES: Final = (
    "dns1123Label", "dns1123Subdomain", "dns1035Label", "qualifiedName", "dns1123LabelPrefix",
    "dns1123SubdomainPrefix", "dns1035LabelPrefix", "labelValue", "uri", "uuid", "byte",
    "date", "datetime",
)  # fmt: skip


@lru_cache(maxsize=1)
def _checks() -> dict[str, Callable[[str], list[str]]]:
    return _format_checks()


def _constant_format(name: str) -> Callable[[], dict[str, str]]:
    def make() -> dict[str, str]:
        return {FORMAT_KEY: name}

    return make


def format_named(name: Any) -> Any:
    n = _str(name)
    return cel.OptionalValue.of({FORMAT_KEY: n}) if n in FORMAT_NAMES else cel.OptionalValue.none()


def format_validate(f: Any, s: Any) -> Any:
    if not (isinstance(f, dict) and len(f) == 1 and FORMAT_KEY in f):
        raise _no_overload()
    problems = _checks()[f[FORMAT_KEY]](_str(s))
    return cel.OptionalValue.of(problems) if problems else cel.OptionalValue.none()


def cel_size(v: Any) -> int:
    """CEL's ``size``: code points of a string, bytes of bytes, entries of a list or map."""
    if isinstance(v, str | bytes | list):
        return len(v)
    if isinstance(v, dict) and not (len(v) == 1 and next(iter(v)) in OPAQUE_KEYS):
        return len(v)
    raise _no_overload()


# ---- Kubernetes authz (the ``authorizer`` of admission policies)

#: the one key of an authz value's map; its value says which authz type it is
AUTHZ_KEY: Final = "@kubernetes.authorization"
#: ``check`` asks this (user info, request attributes) -> (allowed, reason, error)
AuthorizerHook = Callable[[dict[str, Any], dict[str, Any]], tuple[bool, str, str]]


class _AuthzState(threading.local):
    hook: AuthorizerHook | None = None


#: the authorizer ``check`` asks, set per thread by whoever evaluates (see authorizer_hook)
AUTHZ: Final = _AuthzState()


def authorizer_value(user: dict[str, Any]) -> dict[str, Any]:
    """The ``authorizer`` variable for a request made by ``user`` (an AdmissionRequest's
    userInfo)."""
    return {AUTHZ_KEY: {"type": "Authorizer", "user": user}}


def _authz(v: Any, *types: str) -> dict[str, Any]:
    inner = v.get(AUTHZ_KEY) if isinstance(v, dict) and len(v) == 1 else None
    if not isinstance(inner, dict) or inner.get("type") not in types:
        raise _no_overload()
    return inner


def _authz_with(v: Any, type_: str, **changes: Any) -> dict[str, Any]:
    return {AUTHZ_KEY: {**v, "type": type_, **changes}}


def authz_path(a: Any, path: str) -> dict[str, Any]:
    return _authz_with(_authz(a, "Authorizer"), "PathCheck", path=path)


def authz_group(a: Any, group: str) -> dict[str, Any]:
    return _authz_with(_authz(a, "Authorizer"), "GroupCheck", group=group)


def authz_service_account(a: Any, namespace: str, name: str) -> dict[str, Any]:
    _authz(a, "Authorizer")
    user = {
        "username": f"system:serviceaccount:{namespace}:{name}",
        "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"],
    }
    return authorizer_value(user)


def authz_resource(g: Any, resource: str) -> dict[str, Any]:
    return _authz_with(_authz(g, "GroupCheck"), "ResourceCheck", resource=resource)


def _resource_field(key: str) -> Callable[[Any, str], dict[str, Any]]:
    def set_field(r: Any, value: str) -> dict[str, Any]:
        return _authz_with(_authz(r, "ResourceCheck"), "ResourceCheck", **{key: value})

    return set_field


def authz_check(c: Any, verb: str) -> dict[str, Any]:
    """A PathCheck's or ResourceCheck's decision from the evaluating thread's authorizer."""
    inner = _authz(c, "PathCheck", "ResourceCheck")
    if inner["type"] == "PathCheck":
        request: dict[str, Any] = {
            "verb": verb.lower(),
            "path": inner.get("path", ""),
            "resource_request": False,
        }
    else:
        request = {
            "verb": verb,
            "api_group": inner.get("group", ""),
            "resource": inner.get("resource", ""),
            "subresource": inner.get("subresource", ""),
            "namespace": inner.get("namespace", ""),
            "name": inner.get("name", ""),
        }
    hook = AUTHZ.hook
    if hook is None:
        allowed, reason, error = False, "", "no authorizer available"
    else:
        allowed, reason, error = hook(inner.get("user") or {}, request)
    return {AUTHZ_KEY: {"type": "Decision", "allowed": allowed, "reason": reason, "error": error}}


def _decision_field(key: str) -> Callable[[Any], Any]:
    def get(d: Any) -> Any:
        inner = _authz(d, "Decision")
        return bool(inner.get("error")) if key == "errored" else inner.get(key)

    return get


AUTHZ_FUNCTIONS: Final[dict[str, Callable[..., Any]]] = {
    "path": authz_path,
    "group": authz_group,
    "serviceAccount": authz_service_account,
    "resource": authz_resource,
    "subresource": _resource_field("subresource"),
    "namespace": _resource_field("namespace"),
    "name": _resource_field("name"),
    "check": authz_check,
    "allowed": _decision_field("allowed"),
    "reason": _decision_field("reason"),
    "errored": _decision_field("errored"),
    "error": _decision_field("error"),
}


#: name -> implementation, registered with the evaluator (wrapped) when a program uses it
FUNCTIONS: Final[dict[str, Callable[..., Any]]] = {
    SIZE_FUNCTION: cel_size,
    MATCHES_FUNCTION: matches,
    "charAt": char_at,
    "indexOf": index_of,
    "lastIndexOf": last_index_of,
    "lowerAscii": lower_ascii,
    "upperAscii": upper_ascii,
    "replace": replace,
    "split": split,
    "substring": substring,
    "trim": trim,
    "join": join,
    "reverse": reverse,
    "strings.quote": quote,
    "format": format_string,
    "isSorted": is_sorted,
    "sum": list_sum,
    "min": list_min,
    "max": list_max,
    "find": find,
    "findAll": find_all,
    "sets.contains": sets_contains,
    "sets.equivalent": sets_equivalent,
    "sets.intersects": sets_intersects,
    "quantity": quantity,
    "isQuantity": is_quantity,
    "isInteger": q_is_integer,
    "asInteger": q_as_integer,
    "asApproximateFloat": q_as_approximate_float,
    "sign": q_sign,
    "compareTo": q_compare_to,
    "isLessThan": q_is_less_than,
    "isGreaterThan": q_is_greater_than,
    "add": q_add,
    "sub": q_sub,
    "url": url,
    "isURL": is_url,
    "getScheme": get_scheme,
    "getHost": get_host,
    "getHostname": get_hostname,
    "getPort": get_port,
    "getEscapedPath": get_escaped_path,
    "getQuery": get_query,
    "ip": ip,
    "isIP": is_ip,
    "ip.isCanonical": ip_is_canonical,
    "family": ip_family,
    "isUnspecified": ip_is_unspecified,
    "isLoopback": ip_is_loopback,
    "isLinkLocalMulticast": ip_is_link_local_multicast,
    "isLinkLocalUnicast": ip_is_link_local_unicast,
    "isGlobalUnicast": ip_is_global_unicast,
    "cidr": cidr,
    "isCIDR": is_cidr,
    "containsIP": cidr_contains_ip,
    "containsCIDR": cidr_contains_cidr,
    "prefixLength": cidr_prefix_length,
    "masked": cidr_masked,
    STRING_FUNCTION: to_string,
    "format.named": format_named,
    "validate": format_validate,
    **{f"format.{name}": _constant_format(name) for name in FORMAT_NAMES},
    **TIME_GETTERS,
    **AUTHZ_FUNCTIONS,
}

# Signatures: name -> [(receiver style, parameter types, result type)]. Type spellings:
# primitives by name, "Q"/"URL" the Kubernetes types, "A"/"B" type parameters, "T" anything,
# "list"/"map" any list/map, "list(A)", "map(A,B)", "optional(A)".
Sig = tuple[bool, tuple[str, ...], str]
_NUM: Final = ("int", "uint", "double")
_ORDERED: Final = (*_NUM, "string", "bytes", "bool", "timestamp", "duration")


def _ops() -> dict[str, list[Sig]]:
    add: list[Sig] = [(False, (t, t), t) for t in (*_NUM, "string", "bytes")]
    add += [
        (False, ("list(A)", "list(A)"), "list(A)"),
        (False, ("timestamp", "duration"), "timestamp"),
        (False, ("duration", "timestamp"), "timestamp"),
        (False, ("duration", "duration"), "duration"),
    ]
    sub: list[Sig] = [(False, (t, t), t) for t in _NUM]
    sub += [
        (False, ("timestamp", "timestamp"), "duration"),
        (False, ("timestamp", "duration"), "timestamp"),
        (False, ("duration", "duration"), "duration"),
    ]
    cmp: list[Sig] = [(False, (t, t), "bool") for t in _ORDERED]
    cmp += [(False, (a, b), "bool") for a in _NUM for b in _NUM if a != b]
    ops: dict[str, list[Sig]] = {
        "_+_": add,
        "_-_": sub,
        "_*_": [(False, (t, t), t) for t in _NUM],
        "_/_": [(False, (t, t), t) for t in _NUM],
        "_%_": [(False, (t, t), t) for t in ("int", "uint")],
        "-_": [(False, ("int",), "int"), (False, ("double",), "double")],
        "!_": [(False, ("bool",), "bool")],
        "_&&_": [(False, ("bool", "bool"), "bool")],
        "_||_": [(False, ("bool", "bool"), "bool")],
        "@in": [(False, ("A", "list(A)"), "bool"), (False, ("A", "map(A,B)"), "bool")],
        "_[_]": [(False, ("list(A)", "int"), "A"), (False, ("map(A,B)", "A"), "B")],
    }
    for op in ("_<_", "_<=_", "_>_", "_>=_"):
        ops[op] = cmp
    return ops


def _member(result: str, *params: str) -> Sig:
    return (True, params, result)


def _glob(result: str, *params: str) -> Sig:
    return (False, params, result)


def _both(result: str, *params: str) -> list[Sig]:
    return [_member(result, *params), _glob(result, *params)]


_TIME_UNITS: Final = ("getHours", "getMinutes", "getSeconds", "getMilliseconds")

SIGNATURES: Final[dict[str, list[Sig]]] = {
    **_ops(),
    # CEL core, native in the evaluator
    "size": [s for t in ("string", "bytes", "list", "map") for s in _both("int", t)],
    "contains": [_member("bool", "string", "string")],
    "startsWith": [_member("bool", "string", "string")],
    "endsWith": [_member("bool", "string", "string")],
    "matches": _both("bool", "string", "string"),
    "int": [_glob("int", t) for t in ("int", "uint", "double", "string", "timestamp")],
    "uint": [_glob("uint", t) for t in ("int", "uint", "double", "string")],
    "double": [_glob("double", t) for t in ("int", "uint", "double", "string")],
    "string": [
        _glob("string", t)
        for t in (
            "int",
            "uint",
            "double",
            "string",
            "bytes",
            "bool",
            "timestamp",
            "duration",
            "IP",
            "CIDR",
        )
    ],
    "bytes": [_glob("bytes", "string"), _glob("bytes", "bytes")],
    "bool": [_glob("bool", "string"), _glob("bool", "bool")],
    "timestamp": [_glob("timestamp", "string"), _glob("timestamp", "int")],
    "duration": [_glob("duration", "string")],
    "dyn": [_glob("dyn", "T")],
    "type": [_glob("type", "T")],
    **{
        g: [_member("int", "timestamp"), _member("int", "timestamp", "string")]
        + ([_member("int", "duration")] if g in _TIME_UNITS else [])
        for g in TIME_GETTERS
    },
    "optional.of": [_glob("optional(A)", "A")],
    "optional.ofNonZeroValue": [_glob("optional(A)", "A")],
    "optional.none": [_glob("optional(dyn)")],
    "hasValue": [_member("bool", "optional(A)")],
    "value": [_member("A", "optional(A)")],
    "orValue": [_member("A", "optional(A)", "A")],
    "or": [_member("optional(A)", "optional(A)", "optional(A)")],
    # cel-go ext strings v2
    "charAt": [_member("string", "string", "int")],
    "indexOf": [
        _member("int", "string", "string"),
        _member("int", "string", "string", "int"),
        _member("int", "list(A)", "A"),
    ],
    "lastIndexOf": [
        _member("int", "string", "string"),
        _member("int", "string", "string", "int"),
        _member("int", "list(A)", "A"),
    ],
    "lowerAscii": [_member("string", "string")],
    "upperAscii": [_member("string", "string")],
    "replace": [
        _member("string", "string", "string", "string"),
        _member("string", "string", "string", "string", "int"),
    ],
    "split": [
        _member("list(string)", "string", "string"),
        _member("list(string)", "string", "string", "int"),
    ],
    "substring": [_member("string", "string", "int"), _member("string", "string", "int", "int")],
    "trim": [_member("string", "string")],
    "join": [_member("string", "list(string)"), _member("string", "list(string)", "string")],
    "reverse": [_member("string", "string")],
    "strings.quote": [_glob("string", "string")],
    "format": [_member("string", "string", "list")],
    # Kubernetes lists
    "isSorted": [_member("bool", "list(A)")],
    "sum": [_member("A", "list(A)")],
    "min": [_member("A", "list(A)")],
    "max": [_member("A", "list(A)")],
    # Kubernetes regex
    "find": [_member("string", "string", "string")],
    "findAll": [
        _member("list(string)", "string", "string"),
        _member("list(string)", "string", "string", "int"),
    ],
    # cel-go ext sets
    "sets.contains": [_glob("bool", "list(A)", "list(A)")],
    "sets.equivalent": [_glob("bool", "list(A)", "list(A)")],
    "sets.intersects": [_glob("bool", "list(A)", "list(A)")],
    # Kubernetes quantity
    "quantity": [_glob("Q", "string")],
    "isQuantity": [_glob("bool", "string")],
    "isInteger": [_member("bool", "Q")],
    "asInteger": [_member("int", "Q")],
    "asApproximateFloat": [_member("double", "Q")],
    "sign": [_member("int", "Q")],
    "compareTo": [_member("int", "Q", "Q")],
    "isLessThan": [_member("bool", "Q", "Q")],
    "isGreaterThan": [_member("bool", "Q", "Q")],
    "add": [_member("Q", "Q", "Q"), _member("Q", "Q", "int")],
    "sub": [_member("Q", "Q", "Q"), _member("Q", "Q", "int")],
    # Kubernetes urls
    "url": [_glob("URL", "string")],
    "isURL": [_glob("bool", "string")],
    "getScheme": [_member("string", "URL")],
    "getHost": [_member("string", "URL")],
    "getHostname": [_member("string", "URL")],
    "getPort": [_member("string", "URL")],
    "getEscapedPath": [_member("string", "URL")],
    "getQuery": [_member("map(string,list(string))", "URL")],
    # Kubernetes ip and cidr
    "ip": [_glob("IP", "string"), _member("IP", "CIDR")],
    "isIP": [_glob("bool", "string")],
    "ip.isCanonical": [_glob("bool", "string")],
    "family": [_member("int", "IP")],
    **{
        f: [_member("bool", "IP")]
        for f in (
            "isUnspecified",
            "isLoopback",
            "isLinkLocalMulticast",
            "isLinkLocalUnicast",
            "isGlobalUnicast",
        )
    },
    "cidr": [_glob("CIDR", "string")],
    "isCIDR": [_glob("bool", "string")],
    "containsIP": [_member("bool", "CIDR", "string"), _member("bool", "CIDR", "IP")],
    "containsCIDR": [_member("bool", "CIDR", "string"), _member("bool", "CIDR", "CIDR")],
    "prefixLength": [_member("int", "CIDR")],
    "masked": [_member("CIDR", "CIDR")],
    # Kubernetes format
    "format.named": [_glob("optional(Format)", "string")],
    "validate": [_member("optional(list(string))", "Format", "string")],
    **{f"format.{name}": [_glob("Format")] for name in FORMAT_NAMES},
    # Kubernetes authz
    "path": [_member("PathCheck", "Authorizer", "string")],
    "group": [_member("GroupCheck", "Authorizer", "string")],
    "serviceAccount": [_member("Authorizer", "Authorizer", "string", "string")],
    "resource": [_member("ResourceCheck", "GroupCheck", "string")],
    "subresource": [_member("ResourceCheck", "ResourceCheck", "string")],
    "namespace": [_member("ResourceCheck", "ResourceCheck", "string")],
    "name": [_member("ResourceCheck", "ResourceCheck", "string")],
    "check": [
        _member("Decision", "PathCheck", "string"),
        _member("Decision", "ResourceCheck", "string"),
    ],
    "allowed": [_member("bool", "Decision")],
    "reason": [_member("string", "Decision")],
    "errored": [_member("bool", "Decision")],
    "error": [_member("string", "Decision")],
}
