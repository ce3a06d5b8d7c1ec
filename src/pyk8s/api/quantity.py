"""Kubernetes ``resource.Quantity``: parse, canonicalise and read quantities as upstream does.

Why a port instead of ``Decimal(s)``: quantities cross the wire as strings (``"100m"``,
``"1Gi"``, ``"1.5"``), the server echoes them back in *canonical form*, and clients, quota
and the scheduler read them as ``MilliValue()``/``Value()``. To answer what a real API
server answers we follow apimachinery's ``api/resource`` (v1.32): the scanner and its three
error messages; rounding up (away from zero) to a nano; capping binary-SI amounts at
2^63-1; remembering the suffix *family* (DecimalSI ``k M G``, BinarySI ``Ki Mi Gi``,
DecimalExponent ``e3``) and re-emitting the value in the largest exact suffix of that
family; and even the cached-string quirk, where an input that is already "canonical
enough" is echoed verbatim (``"+1"``, ``"01"``, ``"1.500"`` come back unchanged).

Values are :class:`decimal.Decimal`, never floats, because that is the whole point of
Quantity. One deliberate deviation: upstream v1.32 drops the magnitude of a DecimalSI value
beyond the ``E`` suffix (``1000E`` prints as ``1``); we print the exponent form (``1e21``),
as upstream fixed later (kubernetes/kubernetes#140459).

Exceptions::

    ValueError
     └── QuantityError   the input is not a quantity (upstream's message)
"""

from __future__ import annotations

import functools
import math
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_UP, Context, Decimal, InvalidOperation
from typing import Final, Literal

__all__ = [
    "BINARY_SI",
    "DECIMAL_EXPONENT",
    "DECIMAL_SI",
    "Format",
    "QuantityError",
    "canonical",
    "format_quantity",
    "milli_value",
    "parse_quantity",
    "parse_quantity_with_format",
    "scaled_value",
    "value",
]

Format = Literal["DecimalSI", "BinarySI", "DecimalExponent"]
DECIMAL_SI: Final = "DecimalSI"
BINARY_SI: Final = "BinarySI"
DECIMAL_EXPONENT: Final = "DecimalExponent"


class QuantityError(ValueError):
    """Not a quantity; the message is upstream's."""


#: upstream's error messages (ErrFormatWrong, ErrNumeric, ErrSuffix)
SPLIT_RE: Final = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
ERR_FORMAT_WRONG: Final = f"quantities must match the regular expression '{SPLIT_RE}'"
ERR_NUMERIC: Final = "unable to parse numeric part of quantity"
ERR_SUFFIX: Final = "unable to parse quantity's suffix"

#: exact arithmetic: results never get rounded by the context
_CTX: Final = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[InvalidOperation])
_NANO: Final = Decimal("1e-9")
_MAX_INT64: Final = 2**63 - 1

_DEC_SUFFIX: Final[dict[str, int]] = {
    "n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18,
}  # fmt: skip
_BIN_SUFFIX: Final[dict[str, int]] = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DEC_BY_EXP: Final = {e: s for s, e in _DEC_SUFFIX.items()}
_BIN_BY_EXP: Final = {e // 10: s for s, e in _BIN_SUFFIX.items()}
_SUFFIX_CHARS: Final = frozenset("eEinumkKMGTP")
_DIGITS: Final = frozenset("0123456789")


def _scan(s: str) -> tuple[bool, str, str, str, str]:
    """Upstream's parseQuantityString: (positive, value, numerator, denominator, suffix)."""
    positive = True
    pos, end = 0, len(s)
    if pos < end and s[0] in "+-":
        positive = s[0] == "+"
        pos += 1
    while True:  # leading zeros
        if pos >= end:
            return positive, "0", "0", "", ""
        if s[pos] != "0":
            break
        pos += 1
    i = pos
    while i < end and s[i] in _DIGITS:
        i += 1
    if i >= end:
        return positive, s, s[pos:], "", ""
    num, pos = s[pos:i] or "0", i
    denom = ""
    if s[pos] == ".":
        pos += 1
        i = pos
        while i < end and s[i] in _DIGITS:
            i += 1
        denom = s[pos:i]
        if i >= end:
            return positive, s, num, denom, ""
        pos = i
    value = s[:pos]
    start = pos
    while pos < end and s[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and s[pos] in "+-":
        pos += 1
    while pos < end and s[pos] in _DIGITS:
        pos += 1
    if pos < end:
        raise QuantityError(ERR_FORMAT_WRONG)
    return positive, value, num, denom, s[start:]


def _int32(v: int) -> int:
    """Go's int32(v): wrap around."""
    return (v + 2**31) % 2**32 - 2**31


def _interpret(suffix: str) -> tuple[int, int, Format]:
    """Upstream's suffixer: (base, exponent, format)."""
    if suffix in _DEC_SUFFIX:
        return 10, _DEC_SUFFIX[suffix], DECIMAL_SI
    if suffix in _BIN_SUFFIX:
        return 2, _BIN_SUFFIX[suffix], BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        digits = suffix[1:]
        body = digits[1:] if digits[0] in "+-" else digits
        if body and all(c in _DIGITS for c in body):
            exp = int(digits)
            if -(2**63) <= exp <= _MAX_INT64:
                return 10, _int32(exp), DECIMAL_EXPONENT
    raise QuantityError(ERR_SUFFIX)


def _parse(s: str) -> tuple[Decimal, Format, str | None]:
    """Upstream's ParseQuantity: the value, its format, and the string it caches (if any).

    Short inputs are remembered (the answer is immutable): a cluster's quantities are a
    few strings (``"100m"``, ``"128Mi"``) read again and again, e.g. a pod create parses
    each request and limit for validation and again for its QoS class."""
    if len(s) <= _CACHED_LEN:
        return _parse_cached(s)
    return _parse_text(s)


#: longest input :func:`_parse` remembers (a hostile client's long numbers are not kept)
_CACHED_LEN: Final = 24


def _parse_text(s: str) -> tuple[Decimal, Format, str | None]:
    if not s:
        raise QuantityError(ERR_FORMAT_WRONG)
    if s == "0":
        return Decimal(0), DECIMAL_SI, s
    positive, value, num, denom, suffix = _scan(s)
    base, exponent, fmt = _interpret(suffix)

    # upstream's int64 fast path: decides whether the input string is kept verbatim
    precision = -1
    scale = 0
    if fmt == BINARY_SI:
        if exponent >= 0 and not denom:
            precision = 15 - len(num) - exponent * 3 // 10 - 1
    else:
        scale = exponent
        precision = 18 - (len(num) + len(denom))
    if precision >= 0:
        scale -= len(denom)
        if scale >= -9:
            shifted = num + denom
            n = int(shifted) * (1 << exponent if fmt == BINARY_SI else 1)
            if n <= _MAX_INT64:
                if fmt == BINARY_SI:
                    keep = exponent % 10 == 0 and int(shifted) & 7 != 0
                else:
                    keep = scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0"
                amount = Decimal(n if positive else -n).scaleb(scale, _CTX) if n else Decimal(0)
                return amount, fmt, s if keep else None

    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise QuantityError(ERR_NUMERIC) from None
    if not amount.is_finite():
        raise QuantityError(ERR_NUMERIC)
    if base == 10:
        amount = amount.scaleb(exponent, _CTX)
    else:
        amount = _CTX.multiply(amount, Decimal(1 << exponent))
    negative = amount < 0
    amount = abs(amount)
    exp = amount.as_tuple().exponent
    if amount and isinstance(exp, int) and exp < -9:
        # round up to the smallest representable amount: asking for some gets you some
        amount = amount.quantize(_NANO, rounding=ROUND_UP, context=_CTX)
    if fmt == BINARY_SI and amount > _MAX_INT64:
        amount = Decimal(_MAX_INT64)
    if fmt == BINARY_SI and 0 < amount < 1:
        fmt = DECIMAL_SI
    if not amount:
        return Decimal(0), fmt, None
    return (-amount if negative else amount), fmt, None


_parse_cached = functools.lru_cache(maxsize=2048)(_parse_text)


def _text(v: str | int | float) -> str:
    if isinstance(v, bool):
        raise QuantityError(ERR_FORMAT_WRONG)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise QuantityError(ERR_FORMAT_WRONG)
        return repr(v)
    if isinstance(v, str):
        return v
    raise TypeError(f"a quantity is a string or a number, not {type(v).__name__}")


def parse_quantity_with_format(v: str | int | float) -> tuple[Decimal, Format]:
    """Like :func:`parse_quantity`, also returning the format family the input used."""
    amount, fmt, _ = _parse(_text(v))
    return amount, fmt


def parse_quantity(v: str | int | float) -> Decimal:
    """The exact value of a quantity (``"100m"`` → ``0.100``, ``"1Ki"`` → ``1024``).

    Strict like upstream's ``ParseQuantity`` (no surrounding spaces: strip them first when
    decoding JSON, as ``UnmarshalJSON`` does). Numbers are read from their Python text, so
    pass the raw JSON text when exactness of the *format* matters (``1e3`` vs ``1000.0``).
    Raises :class:`QuantityError` (a ``ValueError``) with upstream's message.
    """
    return parse_quantity_with_format(v)[0]


def _to_decimal(d: Decimal | int) -> Decimal:
    if isinstance(d, bool) or not isinstance(d, Decimal | int):
        raise TypeError(f"expected a Decimal or an int, not {type(d).__name__}")
    out = Decimal(d)
    if not out.is_finite():
        raise QuantityError(ERR_NUMERIC)
    return out


def _decimal_form(d: Decimal, fmt: Format) -> str:
    sign, digits, exp = d.as_tuple()
    assert isinstance(exp, int)
    trailing = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    digits, exp = digits[: len(digits) - trailing], exp + trailing
    pad = exp % 3  # move the exponent down to a multiple of 3
    mantissa = "".join(map(str, digits)) + "0" * pad
    exp -= pad
    suffix = _DEC_BY_EXP.get(exp) if fmt == DECIMAL_SI else None
    if suffix is None:  # DecimalExponent, or beyond the SI suffixes
        suffix = "" if exp == 0 else f"e{exp}"
    return ("-" if sign else "") + mantissa + suffix


def format_quantity(d: Decimal | int, format: Format = DECIMAL_SI) -> str:
    """``d`` in upstream's canonical form for ``format`` (``Quantity.String()`` sans cache).

    The exponent is the largest of the family that keeps the mantissa whole: ``0.5`` →
    ``"500m"``, ``1536 * 2**20`` BinarySI → ``"1536Mi"``. BinarySI shows amounts under
    1024 in magnitude, and amounts that are not whole, as DecimalSI, like upstream; an
    unknown format prints as DecimalExponent.
    """
    amount = _to_decimal(d)
    if not amount:
        return "0"
    fmt: Format = (
        format if format in (DECIMAL_SI, BINARY_SI, DECIMAL_EXPONENT) else DECIMAL_EXPONENT
    )
    if fmt == BINARY_SI:
        if -1024 < amount < 1024 or amount.adjusted() > 40:
            fmt = DECIMAL_SI
        elif amount.to_integral_value(rounding=ROUND_UP, context=_CTX) != amount:
            fmt = DECIMAL_SI  # don't lose precision
        else:
            whole = int(amount)
            mantissa, times = abs(whole), 0
            while mantissa >= 1024 and mantissa % 1024 == 0:
                mantissa //= 1024
                times += 1
            if times == 0 or times in _BIN_BY_EXP:
                suffix = _BIN_BY_EXP.get(times, "")
                return ("-" if whole < 0 else "") + str(mantissa) + suffix
            fmt = DECIMAL_SI  # beyond Ei
    return _decimal_form(amount, fmt)


def canonical(s: str | int | float) -> str:
    """What upstream's ``Quantity.String()`` prints after parsing ``s``.

    Keeps the input's format family (``"1500M"`` → ``"1500M"``, ``"1024Mi"`` → ``"1Gi"``,
    ``"0.5"`` → ``"500m"``, ``"1e3"`` → ``"1e3"``) and echoes inputs upstream caches
    verbatim. Raises :class:`QuantityError` like :func:`parse_quantity`.
    """
    amount, fmt, cached = _parse(_text(s))
    return cached if cached is not None else format_quantity(amount, fmt)


def _amount(q: Decimal | str | int | float) -> Decimal:
    return q if isinstance(q, Decimal) else parse_quantity(q)


def scaled_value(q: Decimal | str | int | float, scale: int) -> int:
    """``q / 10**scale`` rounded up (away from zero), saturated to the int64 range.

    Upstream's ``ScaledValue``: "ceil", which for its int64 amounts rounds negative values
    away from zero too (``-1.5`` → ``-2``). Upstream overflows silently; we saturate.
    """
    amount = _amount(q)
    if not amount.is_finite():
        raise QuantityError(ERR_NUMERIC)
    if not amount:
        return 0
    if amount.adjusted() - scale > 19:
        return _MAX_INT64 if amount > 0 else -(2**63)
    scaled = amount.scaleb(-scale, _CTX).to_integral_value(rounding=ROUND_UP, context=_CTX)
    return max(-(2**63), min(_MAX_INT64, int(scaled)))


def value(q: Decimal | str | int | float) -> int:
    """``Quantity.Value()``: whole units, rounded up (``"1500m"`` → 2, ``"1Ki"`` → 1024)."""
    return scaled_value(q, 0)


def milli_value(q: Decimal | str | int | float) -> int:
    """``Quantity.MilliValue()``: thousandths, rounded up (``"0.1m"`` → 1, ``"2"`` → 2000)."""
    return scaled_value(q, -3)
