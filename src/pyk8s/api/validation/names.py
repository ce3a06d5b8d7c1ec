"""Syntax rules for names, labels, keys, ports and addresses, worded as upstream words them.

kubectl prints the API server's validation message verbatim, and users paste those
messages into search engines, so each rule here returns upstream's exact strings
(apimachinery ``util/validation``, v1.32): the same regular expressions, the same
examples, the same quirks (``name part must be non-empty``, a trailing dash allowed in
a ``generateName`` prefix). Functions named ``is_*`` return a list of messages (empty
when valid); ``name_is_*`` take ``(name, prefix)`` like upstream's ``ValidateNameFunc``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

NameFunc = Callable[[str, bool], list[str]]


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """Upstream's ``RegexError``: the message, examples and the regex used."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


def inclusive_range_error(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"


EMPTY_ERROR = "must be non-empty"


def _blen(s: str) -> int:
    return len(s.encode())


DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + "(\\." + DNS1123_LABEL_FMT + ")*"
DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)
DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
    "an alphabetic character, and end with an alphanumeric character"
)
WILDCARD_DNS1123_SUBDOMAIN_FMT = "\\*\\." + DNS1123_SUBDOMAIN_FMT
WILDCARD_DNS1123_SUBDOMAIN_MSG = (
    "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, "
    "which must consist of lower case alphanumeric characters, '-' or '.' and end with an "
    "alphanumeric character"
)
QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
QUALIFIED_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character"
)
LABEL_VALUE_FMT = "(" + QUALIFIED_NAME_FMT + ")?"
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character"
)
CONFIG_MAP_KEY_FMT = "[-._a-zA-Z0-9]+"
CONFIG_MAP_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
PERCENT_FMT = "[0-9]+%"
PERCENT_MSG = "a valid percent string must be a numeric string followed by an ending '%'"
HTTP_HEADER_FMT = "[-A-Za-z0-9]+"
HTTP_HEADER_MSG = "a valid HTTP header must consist of alphanumeric characters or '-'"
HTTP_PATH_FMT = "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+"

_DNS1123_LABEL = re.compile(DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN = re.compile(DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL = re.compile(DNS1035_LABEL_FMT)
_WILDCARD = re.compile(WILDCARD_DNS1123_SUBDOMAIN_FMT)
_QUALIFIED_NAME = re.compile(QUALIFIED_NAME_FMT)
_LABEL_VALUE = re.compile(LABEL_VALUE_FMT)
_CONFIG_MAP_KEY = re.compile(CONFIG_MAP_KEY_FMT)
_PERCENT = re.compile(PERCENT_FMT)
_HTTP_HEADER = re.compile(HTTP_HEADER_FMT)
_HTTP_PATH = re.compile(HTTP_PATH_FMT)
_PORT_NAME_CHARSET = re.compile("[-a-z0-9]+")
_PORT_NAME_LETTER = re.compile("[a-z]")


#: how many valid values each memoised rule remembers (then it starts over)
_VALID_KEPT = 4096


def _remembers_valid(rule: Callable[[str], list[str]]) -> Callable[[str], list[str]]:
    """``rule`` answering at once for a value it found valid before: the same names,
    label keys and values, resource names and namespaces come with every write, and a
    rule's answer depends on the value alone. Only valid values are remembered, and the
    answer is a new empty list each time (callers extend what they get)."""
    valid: set[str] = set()

    def remembering(value: str) -> list[str]:
        if value in valid:
            return []
        errs = rule(value)
        if not errs and type(value) is str:
            if len(valid) >= _VALID_KEPT:
                valid.clear()
            valid.add(value)
        return errs

    remembering.__name__ = rule.__name__
    remembering.__qualname__ = rule.__qualname__
    remembering.__doc__ = rule.__doc__
    return remembering


@_remembers_valid
def is_dns1123_label(value: str) -> list[str]:
    errs = []
    if _blen(value) > 63:
        errs.append(max_len_error(63))
    if not _DNS1123_LABEL.fullmatch(value):
        if _DNS1123_SUBDOMAIN.fullmatch(value):
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(DNS1123_LABEL_MSG, DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


@_remembers_valid
def is_dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if _blen(value) > 253:
        errs.append(max_len_error(253))
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        errs.append(regex_error(DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


@_remembers_valid
def is_dns1035_label(value: str) -> list[str]:
    errs = []
    if _blen(value) > 63:
        errs.append(max_len_error(63))
    if not _DNS1035_LABEL.fullmatch(value):
        errs.append(regex_error(DNS1035_LABEL_MSG, DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_wildcard_dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if _blen(value) > 253:
        errs.append(max_len_error(253))
    if not _WILDCARD.fullmatch(value):
        errs.append(
            regex_error(
                WILDCARD_DNS1123_SUBDOMAIN_MSG, WILDCARD_DNS1123_SUBDOMAIN_FMT, "*.example.com"
            )
        )
    return errs


@_remembers_valid
def is_qualified_name(value: str) -> list[str]:
    """A label key / qualified name: optional DNS-subdomain prefix, '/', and a name part."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + EMPTY_ERROR)
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return [
            "a qualified name "
            + regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part " + EMPTY_ERROR)
    elif _blen(name) > 63:
        errs.append("name part " + max_len_error(63))
    if not _QUALIFIED_NAME.fullmatch(name):
        errs.append(
            "name part "
            + regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


@_remembers_valid
def is_label_value(value: str) -> list[str]:
    errs = []
    if _blen(value) > 63:
        errs.append(max_len_error(63))
    if not _LABEL_VALUE.fullmatch(value):
        errs.append(regex_error(LABEL_VALUE_MSG, LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def _chdir_prefix(value: str) -> list[str]:
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def is_config_map_key(value: str) -> list[str]:
    errs = []
    if _blen(value) > 253:
        errs.append(max_len_error(253))
    if not _CONFIG_MAP_KEY.fullmatch(value):
        errs.append(
            regex_error(CONFIG_MAP_KEY_MSG, CONFIG_MAP_KEY_FMT, "key.name", "KEY_NAME", "key-name")
        )
    return errs + _chdir_prefix(value)


def is_env_var_name(value: str) -> list[str]:
    """v1.32 default (RelaxedEnvironmentVariableValidation, beta): printable ASCII but '='."""
    errs = []
    if not value:
        errs.append("environment variable name " + EMPTY_ERROR)
    for ch in value:
        if not (0x20 <= ord(ch) <= 0x7E) or ch == "=":
            errs.append(
                "a valid environment variable name must consist only of printable ASCII "
                "characters other than '='"
            )
            break
    return errs


def is_valid_port_num(port: int) -> list[str]:
    return [] if 1 <= port <= 65535 else [inclusive_range_error(1, 65535)]


def is_valid_port_name(port: str) -> list[str]:
    errs = []
    if _blen(port) > 15:
        errs.append(max_len_error(15))
    if not _PORT_NAME_CHARSET.fullmatch(port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _PORT_NAME_LETTER.search(port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_valid_percent(value: str) -> list[str]:
    if _PERCENT.fullmatch(value):
        return []
    return [regex_error(PERCENT_MSG, PERCENT_FMT, "1%", "93%")]


def is_http_header_name(value: str) -> list[str]:
    if _HTTP_HEADER.fullmatch(value):
        return []
    return [regex_error(HTTP_HEADER_MSG, HTTP_HEADER_FMT, "X-Header-Name")]


def is_valid_user_id(uid: int) -> list[str]:
    return [] if 0 <= uid <= 0xFFFFFFFF else [inclusive_range_error(0, 0xFFFFFFFF)]


_SLOPPY_V4 = re.compile(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})")

IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
CIDR_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"


def parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Go's ``ParseIPSloppy``: IPv4 may carry leading zeros; no IPv6 zones."""
    if "%" in value:
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        pass
    m = _SLOPPY_V4.fullmatch(value)
    if m and all(int(g) <= 255 for g in m.groups()):
        return ipaddress.IPv4Address(".".join(str(int(g)) for g in m.groups()))
    return None


def is_valid_ip(value: str) -> bool:
    return parse_ip(value) is not None


def is_valid_cidr(value: str) -> bool:
    ip, sep, bits = value.partition("/")
    if not sep or not bits.isdigit() or parse_ip(ip) is None:
        return False
    addr = parse_ip(ip)
    assert addr is not None
    return int(bits) <= (32 if addr.version == 4 else 128)


def is_domain_prefixed_path(value: str) -> list[str]:
    """Upstream's ``IsDomainPrefixedPath`` as (value shown, message) pairs flattened."""
    segments = value.split("/", 1)
    if len(segments) != 2 or not segments[0] or not segments[1]:
        return ['must be a domain-prefixed path (such as "acme.io/foo")']
    errs = is_dns1123_subdomain(segments[0])
    if not _HTTP_PATH.fullmatch(segments[1]):
        errs.append(regex_error("Invalid path", HTTP_PATH_FMT))
    return errs


# ---------------------------------------------------------------- name functions


def mask_trailing_dash(name: str) -> str:
    """A generateName prefix may end in '-': upstream checks it as if it ended in 'a'."""
    if len(name) > 1 and name.endswith("-"):
        return name[:-2] + "a"
    return name


def name_is_dns_subdomain(name: str, prefix: bool) -> list[str]:
    return is_dns1123_subdomain(mask_trailing_dash(name) if prefix else name)


def name_is_dns_label(name: str, prefix: bool) -> list[str]:
    return is_dns1123_label(mask_trailing_dash(name) if prefix else name)


def name_is_dns1035_label(name: str, prefix: bool) -> list[str]:
    return is_dns1035_label(mask_trailing_dash(name) if prefix else name)


def is_valid_path_segment_name(name: str, prefix: bool = False) -> list[str]:
    """Names that become one URL path segment (RBAC objects, the generic fallback)."""
    if not prefix:
        for bad in (".", ".."):
            if name == bad:
                return [f"may not be '{bad}'"]
    return [f"may not contain '{bad}'" for bad in ("/", "%") if bad in name]


validate_namespace_name: NameFunc = name_is_dns_label
