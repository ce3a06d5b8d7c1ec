"""The string formats a CRD schema may check (kube-openapi's ``strfmt.Default`` registry).

Upstream keeps only the formats in ``supportedFormats`` (names compared without
dashes, so ``date-time`` is ``datetime``) and strips every other one before
validating: ``int32``, ``int64``, ``float``, ``double`` and unknown names check
nothing. Each checker here mirrors the Go function upstream calls (``net.ParseMAC``,
``url.ParseRequestURI``, ``mail.ParseAddress``, govalidator's patterns), so a value
upstream accepts is accepted here and the other way round.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

SUPPORTED = frozenset(
    {
        "bsonobjectid",
        "uri",
        "email",
        "hostname",
        "ipv4",
        "ipv6",
        "cidr",
        "mac",
        "uuid",
        "uuid3",
        "uuid4",
        "uuid5",
        "isbn",
        "isbn10",
        "isbn13",
        "creditcard",
        "ssn",
        "hexcolor",
        "rgbcolor",
        "byte",
        "password",
        "date",
        "duration",
        "datetime",
    }
)


def normalize(name: str) -> str:
    """kube-openapi's ``DefaultNameNormalizer``: dashes removed."""
    return name.replace("-", "")


def is_supported(name: str) -> bool:
    return normalize(name) in SUPPORTED


def _ip(s: str) -> object | None:
    from pyk8s.api.validation.names import parse_ip  # lazy: avoids an import cycle

    return parse_ip(s)


def is_ipv4(s: str) -> bool:
    return _ip(s) is not None and "." in s


def is_ipv6(s: str) -> bool:
    # net.ParseIP is strict about IPv4 (no leading zeros), unlike ParseIPSloppy
    if "%" in s or ":" not in s:
        return False
    import ipaddress

    try:
        ipaddress.IPv6Address(s)
    except ValueError:
        return False
    return True


def is_cidr(s: str) -> bool:
    ip, sep, bits = s.partition("/")
    addr = _ip(ip)
    if not sep or addr is None or not bits.isdigit() or not bits.isascii():
        return False
    return int(bits) <= (32 if getattr(addr, "version", 4) == 4 else 128)


_HEX = "0123456789abcdefABCDEF"


def is_mac(s: str) -> bool:
    """``net.ParseMAC``: 6, 8 or 20 bytes, ``:`` / ``-`` pairs or ``.`` quads."""
    if len(s) < 14:
        return False
    if s[2] in ":-":
        if (len(s) + 1) % 3 != 0:
            return False
        n = (len(s) + 1) // 3
        if n not in (6, 8, 20):
            return False
        sep = s[2]
        for i in range(n):
            x = i * 3
            if s[x] not in _HEX or s[x + 1] not in _HEX:
                return False
            if i < n - 1 and s[x + 2] != sep:
                return False
        return True
    if s[4] == ".":
        if (len(s) + 1) % 5 != 0:
            return False
        n = 2 * (len(s) + 1) // 5
        if n not in (6, 8, 20):
            return False
        for i in range(n // 2):
            x = i * 5
            if any(c not in _HEX for c in s[x : x + 4]):
                return False
            if i < n // 2 - 1 and s[x + 4] != ".":
                return False
        return True
    return False


_UUID = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\Z")
_UUID3 = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}\Z")
_UUID4 = re.compile(
    r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}\Z"
)
_UUID5 = re.compile(
    r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}\Z"
)
_ISBN10 = re.compile(r"^(?:[0-9]{9}X|[0-9]{10})\Z")
_ISBN13 = re.compile(r"^(?:[0-9]{13})\Z")
_CREDIT = re.compile(
    r"^(?:4[0-9]{12}(?:[0-9]{3})?|5[1-5][0-9]{14}|6(?:011|5[0-9][0-9])[0-9]{12}|3[47][0-9]{13}"
    r"|3(?:0[0-5]|[68][0-9])[0-9]{11}|(?:2131|1800|35[0-9]{3})[0-9]{11})\Z"
)
_SSN = re.compile(r"^[0-9]{3}[- ]?[0-9]{2}[- ]?[0-9]{4}\Z")
_HEXCOLOR = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})\Z")
_BYTE255 = r"(0|[1-9][0-9]?|1[0-9][0-9]?|2[0-4][0-9]|25[0-5])"
_SP = r"[\t\n\f\r ]*"
_RGB = re.compile(rf"^rgb\({_SP}{_BYTE255}{_SP},{_SP}{_BYTE255}{_SP},{_SP}{_BYTE255}{_SP}\)\Z")
_BASE64 = re.compile(
    r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})\Z"
)
_BSON = re.compile(r"^[0-9a-fA-F]{24}\Z")


def _isbn(s: str, version: int) -> bool:
    san = re.sub(r"[\t\n\f\r -]+", "", s)
    if version == 10:
        if not _ISBN10.match(san):
            return False
        total = sum((i + 1) * int(san[i]) for i in range(9))
        total += 100 if san[9] == "X" else 10 * int(san[9])
        return total % 11 == 0
    if not _ISBN13.match(san):
        return False
    total = sum((1, 3)[i % 2] * int(san[i]) for i in range(12))
    return int(san[12]) - ((10 - (total % 10)) % 10) == 0


def is_credit_card(s: str) -> bool:
    san = re.sub(r"[^0-9]+", "", s)
    if not _CREDIT.match(san):
        return False
    total = 0
    double = False
    for ch in reversed(san):
        n = int(ch)
        if double:
            n *= 2
            total += n % 10 + 1 if n >= 10 else n
        else:
            total += n
        double = not double
    return total % 10 == 0


def is_ssn(s: str) -> bool:
    return len(s.encode()) == 11 and bool(_SSN.match(s))


# ----------------------------------------------------------------- dates and durations


def _days_in(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})\Z")


def is_date(s: str) -> bool:
    """``time.Parse("2006-01-02", s)``."""
    m = _DATE.match(s)
    if not m:
        return False
    y, mo, d = (int(g) for g in m.groups())
    return 1 <= mo <= 12 and 1 <= d <= _days_in(y, mo)


_TIME = re.compile(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))\Z")


def is_datetime(s: str) -> bool:
    """kube-openapi's ``IsDateTime`` (a date, ``T``, a time and a zone, case-insensitive)."""
    if len(s.encode()) < 4:
        return False
    parts = s.lower().split("t")
    if len(parts) < 2 or not is_date(parts[0]):
        return False
    m = _TIME.match(parts[1])
    if not m:
        return False
    return m.group(1) <= "23" and m.group(2) <= "59" and m.group(3) <= "59"


_GO_DURATION = re.compile(r"[-+]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h))+\Z")
_DURATION_PART = re.compile(r"(([0-9]+)\s*([A-Za-zµ]+))")
_UNITS = [
    ["ns", "nano"],
    ["us", "µs", "micro"],
    ["ms", "milli"],
    ["s", "sec"],
    ["m", "min"],
    ["h", "hr", "hour"],
    ["d", "day"],
    ["w", "wk", "week"],
]


def is_duration(s: str) -> bool:
    """Go's ``time.ParseDuration``, or the Scala-like ``3 days`` form strfmt accepts."""
    if s in ("0", "+0", "-0") or _GO_DURATION.match(s):
        return True
    for m in _DURATION_PART.finditer(s):
        unit = m.group(3).strip().lower()
        for variants in _UNITS:
            last = len(variants) - 1
            for i, v in enumerate(variants):
                if (i == last and unit.startswith(v)) or v.lower() == unit:
                    return True
    return False


# ----------------------------------------------------------------- hostnames and addresses


def _is_sl(ch: str) -> bool:
    """``[a-zA-Z0-9\\p{S}\\p{L}]``."""
    return (ch.isascii() and ch.isalnum()) or unicodedata.category(ch)[0] in "SL"


def _is_l(ch: str) -> bool:
    """``[a-zA-Z\\p{L}]``."""
    return unicodedata.category(ch)[0] == "L"


def _fqdn_suffix(s: str) -> bool:
    """The second alternative of strfmt's hostname pattern, anchored only at the end."""
    labels = s.split(".")
    if len(labels) < 2:
        return False
    tld = labels[-1]
    if not 2 <= len(tld) <= 63 or not all(_is_l(c) for c in tld):
        return False
    # one or more "label." groups must end right before the TLD; the match may start
    # anywhere, so only the label next to the TLD needs to be whole
    last = labels[-2]
    for start in range(len(last)):
        cand = last[start:]
        if (
            cand
            and _is_sl(cand[0])
            and _is_sl(cand[-1])
            and len(cand) <= 63
            and all(_is_sl(c) or c == "-" for c in cand)
        ):
            return True
    return False


def is_hostname(s: str) -> bool:
    """strfmt's ``IsHostname``: its pattern anchors its two alternatives on one side each
    (``^a|b$``), so any value starting with a letter, digit or symbol passes the pattern;
    the length rules (255 in all, 63 per label) always apply."""
    if not s:
        return False
    if not (_is_sl(s[0]) or _fqdn_suffix(s)):
        return False
    if len(s.encode()) > 255:
        return False
    return all(len(p.encode()) <= 63 for p in s.split("."))


_ATEXT = "!#$%&'*+-/=?^_`{|}~"


def _is_atext(ch: str, dot: bool) -> bool:
    if ch == ".":
        return dot
    if not ch.isascii():
        return ch.isprintable()
    return ch.isalnum() or ch in _ATEXT


def _dot_atom(s: str) -> bool:
    if not s or s.startswith(".") or s.endswith(".") or ".." in s:
        return False
    return all(_is_atext(c, True) for c in s)


def _addr_spec(s: str) -> bool:
    local, at, domain = s.rpartition("@")
    if not at or not local or not domain:
        return False
    if local.startswith('"') and local.endswith('"') and len(local) >= 2:
        body = local[1:-1].replace('\\"', "").replace("\\\\", "")
        if '"' in body or "\\" in body or any(ord(c) < 0x20 for c in body):
            return False
    elif not _dot_atom(local):
        return False
    if domain.startswith("[") and domain.endswith("]"):
        return "[" not in domain[1:-1] and "]" not in domain[1:-1]
    return _dot_atom(domain)


def is_email(s: str) -> bool:
    """``net/mail.ParseAddress`` (an address, optionally ``Name <address>``)."""
    s = s.strip(" \t")
    if not s:
        return False
    if s.endswith(">") and "<" in s:
        name, _, rest = s.rpartition("<")
        name = name.strip(" \t")
        if name.startswith('"'):
            if not (name.endswith('"') and len(name) >= 2):
                return False
        elif name and not all(_is_atext(c, True) or c in " \t" for c in name):
            return False
        return _addr_spec(rest[:-1])
    return _addr_spec(s)


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*\Z")
_HOST_OK = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:\[\]<>\"%]*\Z")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def is_request_uri(s: str) -> bool:
    """``url.ParseRequestURI``: an absolute URI, or an absolute path."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in s):
        return False
    rest = s
    colon = s.find(":")
    scheme = ""
    if colon == 0:
        return False
    if colon > 0:
        cand = s[:colon]
        if _SCHEME.match(cand):
            scheme, rest = cand, s[colon + 1 :]
        elif cand[0].isalpha() is False and re.match(r"[A-Za-z0-9+.\-]*\Z", cand):
            return False  # "missing protocol scheme"
    if not rest.startswith("/"):
        return bool(scheme)  # opaque ("mailto:x"); a relative reference is refused
    if scheme and rest.startswith("//"):
        auth_end = len(rest)
        for i in range(2, len(rest)):
            if rest[i] == "/":
                auth_end = i
                break
        authority, rest = rest[2:auth_end], rest[auth_end:]
        host = authority.rpartition("@")[2]
        if host.startswith("["):
            close = host.find("]")
            if close < 0:
                return False
            port = host[close + 1 :]
            if port and (not port.startswith(":") or (not port[1:].isdigit() and port != ":")):
                return False
        elif ":" in host:
            port = host.rpartition(":")[2]
            if port and not (port.isascii() and port.isdigit()):
                return False
        if not _HOST_OK.match(host) or _BAD_ESCAPE.search(host):
            return False
    return not _BAD_ESCAPE.search(rest)


def _always(_: str) -> bool:
    return True


CHECKS: dict[str, Callable[[str], bool]] = {
    "bsonobjectid": lambda s: bool(_BSON.match(s)),
    "uri": is_request_uri,
    "email": is_email,
    "hostname": is_hostname,
    "ipv4": is_ipv4,
    "ipv6": is_ipv6,
    "cidr": is_cidr,
    "mac": is_mac,
    "uuid": lambda s: bool(_UUID.match(s)),
    "uuid3": lambda s: bool(_UUID3.match(s)),
    "uuid4": lambda s: bool(_UUID4.match(s)),
    "uuid5": lambda s: bool(_UUID5.match(s)),
    "isbn": lambda s: _isbn(s, 10) or _isbn(s, 13),
    "isbn10": lambda s: _isbn(s, 10),
    "isbn13": lambda s: _isbn(s, 13),
    "creditcard": is_credit_card,
    "ssn": is_ssn,
    "hexcolor": lambda s: bool(_HEXCOLOR.match(s)),
    "rgbcolor": lambda s: bool(_RGB.match(s)),
    "byte": lambda s: bool(_BASE64.match(s)),
    "password": _always,
    "date": is_date,
    "duration": is_duration,
    "datetime": is_datetime,
}


def check(name: str, value: str) -> bool:
    """Whether ``value`` is valid for the format ``name`` (unknown formats pass)."""
    fn = CHECKS.get(normalize(name))
    return True if fn is None else fn(value)
