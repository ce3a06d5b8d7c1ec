"""Label and field selectors, parsed, matched and printed exactly as upstream does.

Why a faithful port rather than a regex: clients send selectors as strings
(``?labelSelector=app in (a,b),!canary``) and read our errors back, kubectl prints the
server's message verbatim, and controllers compare ``str(selector)`` for equality. So the
grammar, the canonical string (requirements sorted by key, set values sorted) and the
error wording follow apimachinery's ``labels/selector.go``, ``fields/selector.go`` and
``util/validation`` (v1.32), quirks included (``x in ()`` means "x is the empty string";
``!x=a`` is an error; a field selector's ``=`` inside a value must be escaped ``\\=``).

Label selectors come in two shapes that mean different things when empty, the same way
upstream's ``LabelSelectorAsSelector`` treats them:

* a ``metav1.LabelSelector`` object that is **absent** (``None``) selects **nothing**;
* one that is **present but empty** (``{}``) selects **everything**;
* the empty query string ``""`` selects everything.

Field selectors are checked per resource in two steps, as the API server does: the
request's field labels go through the kind's *conversion* (which fields the kind accepts,
with upstream's per-kind error text, and renames such as ``spec.host`` →
``spec.nodeName``), see :func:`check_field_selector`; objects expose their selectable
values through :func:`field_values` (upstream's per-resource ``GetAttrs``). A field the
object does not expose reads as ``""``.

Exceptions::

    ValueError
     └── SelectorError   every parse, validation or unsupported-field failure
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from pyk8s.api.gofmt import go_quote, go_string_slice
from pyk8s.api.registry import Resource

__all__ = [
    "FieldSelector",
    "FieldTerm",
    "LabelSelector",
    "Requirement",
    "SelectorError",
    "check_field_selector",
    "escape_field_value",
    "field_values",
    "label_selector_from_dict",
    "parse_field_selector",
    "parse_label_selector",
    "validate_label_key",
    "validate_label_value",
]


class SelectorError(ValueError):
    """A selector that cannot be parsed, fails validation, or names an unsupported field."""


# --------------------------------------------------------------------------------------------
# label key / value validation (util/validation: IsQualifiedName, IsValidLabelValue)

_QNAME_FMT: Final = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_RE: Final = re.compile(_QNAME_FMT)
_QNAME_MSG: Final = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
    "an alphanumeric character"
)
_LABEL_VALUE_FMT: Final = f"({_QNAME_FMT})?"
_LABEL_VALUE_RE: Final = re.compile(_LABEL_VALUE_FMT)
_LABEL_VALUE_MSG: Final = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character"
)
_DNS1123_LABEL_FMT: Final = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT: Final = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_RE: Final = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1123_SUBDOMAIN_MSG: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character"
)


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def _max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


def _blen(s: str) -> int:
    """Go measures strings in bytes."""
    return len(s.encode("utf-8", "surrogatepass"))


def validate_label_key(key: str) -> list[str]:
    """Upstream's ``IsQualifiedName``: the problems with ``key`` (empty when valid)."""
    errs: list[str] = []
    parts = key.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            if _blen(prefix) > 253:
                errs.append("prefix part " + _max_len_error(253))
            if not _DNS1123_SUBDOMAIN_RE.fullmatch(prefix):
                errs.append(
                    "prefix part "
                    + _regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com")
                )
    else:
        return [
            "a qualified name "
            + _regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif _blen(name) > 63:
        errs.append("name part " + _max_len_error(63))
    if not _QNAME_RE.fullmatch(name):
        errs.append(
            "name part " + _regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def validate_label_value(value: str) -> list[str]:
    """Upstream's ``IsValidLabelValue``: the problems with ``value`` (empty when valid)."""
    errs: list[str] = []
    if _blen(value) > 63:
        errs.append(_max_len_error(63))
    if not _LABEL_VALUE_RE.fullmatch(value):
        errs.append(
            _regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345")
        )
    return errs


# --------------------------------------------------------------------------------------------
# field.Error rendering, the way Go prints it (%q strings, %#v string slices)


def _invalid(path: str, shown: str, detail: str) -> str:
    return f"{path}: Invalid value: {shown}: {detail}"


def _aggregate(errs: list[str]) -> str:
    """utilerrors.NewAggregate(...).Error(): one message bare, several deduplicated in [..]."""
    if len(errs) == 1:
        return errs[0]
    seen: list[str] = []
    for e in errs:
        if e not in seen:
            seen.append(e)
    return seen[0] if len(seen) == 1 else "[" + ", ".join(seen) + "]"


# --------------------------------------------------------------------------------------------
# requirements and label selectors

#: selection.Operator values, as upstream spells them
IN: Final = "in"
NOT_IN: Final = "notin"
EQUALS: Final = "="
DOUBLE_EQUALS: Final = "=="
NOT_EQUALS: Final = "!="
EXISTS: Final = "exists"
DOES_NOT_EXIST: Final = "!"
GREATER_THAN: Final = "gt"
LESS_THAN: Final = "lt"

_BINARY_OPERATORS: Final = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)
_UNARY_OPERATORS: Final = (EXISTS, DOES_NOT_EXIST)
_INT64_RE: Final = re.compile(r"[+-]?[0-9]+")


def _parse_int64(s: str) -> int | None:
    """Go's strconv.ParseInt(s, 10, 64): sign and digits only, in int64 range."""
    if not _INT64_RE.fullmatch(s):
        return None
    v = int(s)
    return v if -(2**63) <= v < 2**63 else None


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``key <op> values`` term of a label selector; build it with :meth:`new`."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    @classmethod
    def new(cls, key: str, operator: str, values: Iterable[str] | None = ()) -> Requirement:
        """Validate like upstream's ``NewRequirement`` and build the requirement.

        ``values=None`` stands for a Go nil slice (only the error text differs).
        """
        vals = None if values is None else list(values)
        count = len(vals or ())
        shown = go_string_slice(vals)
        errs: list[str] = []
        key_errs = validate_label_key(key)
        if key_errs:
            errs.append(_invalid("key", go_quote(key), "; ".join(key_errs)))
        if operator in (IN, NOT_IN):
            if count == 0:
                errs.append(
                    _invalid(
                        "values", shown, "for 'in', 'notin' operators, values set can't be empty"
                    )
                )
        elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
            if count != 1:
                errs.append(
                    _invalid("values", shown, "exact-match compatibility requires one single value")
                )
        elif operator in _UNARY_OPERATORS:
            if count != 0:
                errs.append(
                    _invalid(
                        "values", shown, "values set must be empty for exists and does not exist"
                    )
                )
        elif operator in (GREATER_THAN, LESS_THAN):
            if count != 1:
                errs.append(
                    _invalid(
                        "values", shown, "for 'Gt', 'Lt' operators, exactly one value is required"
                    )
                )
            for i, v in enumerate(vals or ()):
                if _parse_int64(v) is None:
                    errs.append(
                        _invalid(
                            f"values[{i}]",
                            go_quote(v),
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        )
                    )
        else:
            supported = ", ".join(go_quote(o) for o in (*_BINARY_OPERATORS, *_UNARY_OPERATORS))
            errs.append(
                f"operator: Unsupported value: {go_quote(operator)}: supported values: {supported}"
            )
        for i, v in enumerate(vals or ()):
            value_errs = validate_label_value(v)
            if value_errs:
                errs.append(_invalid(f"values[{i}][{key}]", go_quote(v), "; ".join(value_errs)))
        if errs:
            raise SelectorError(_aggregate(errs))
        return cls(key, operator, tuple(vals or ()))

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op in (IN, EQUALS, DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (NOT_IN, NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        if op in (GREATER_THAN, LESS_THAN):
            if self.key not in labels or len(self.values) != 1:
                return False
            have = _parse_int64(labels[self.key])
            want = _parse_int64(self.values[0])
            if have is None or want is None:
                return False
            return have > want if op == GREATER_THAN else have < want
        return False

    def __str__(self) -> str:
        op = self.operator
        if op == EXISTS:
            return self.key
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        sep = {
            EQUALS: "=",
            DOUBLE_EQUALS: "==",
            NOT_EQUALS: "!=",
            IN: " in ",
            NOT_IN: " notin ",
            GREATER_THAN: ">",
            LESS_THAN: "<",
        }.get(op, "")
        body = self.values[0] if len(self.values) == 1 else ",".join(sorted(self.values))
        if op in (IN, NOT_IN):
            body = f"({body})"
        return f"{self.key}{sep}{body}"


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """The AND of requirements, sorted by key; or the selector that matches nothing.

    ``LabelSelector()`` (no requirements) matches everything; :meth:`nothing` matches no
    object, prints as ``""`` and is what an absent ``metav1.LabelSelector`` converts to.
    """

    requirements: tuple[Requirement, ...] = ()
    selects_nothing: bool = False

    @classmethod
    def everything(cls) -> LabelSelector:
        return cls()

    @classmethod
    def nothing(cls) -> LabelSelector:
        return cls((), True)

    @classmethod
    def from_set(cls, labels: Mapping[str, str] | None) -> LabelSelector:
        """``labels.SelectorFromSet``: every label equal; empty or None selects everything."""
        reqs = [Requirement(k, EQUALS, (v,)) for k, v in (labels or {}).items()]
        return cls(tuple(sorted(reqs, key=lambda r: r.key)))

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (upstream ``Empty()``)."""
        return not self.selects_nothing and not self.requirements

    def add(self, *reqs: Requirement) -> LabelSelector:
        if self.selects_nothing:
            return self
        return LabelSelector(tuple(sorted((*self.requirements, *reqs), key=lambda r: r.key)))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.selects_nothing:
            return False
        have = labels if labels is not None else {}
        return all(r.matches(have) for r in self.requirements)

    def requires_exact_match(self, key: str) -> str | None:
        """The one value ``key`` must have (``=``, ``==`` or a one-value ``in``), else None."""
        for r in self.requirements:
            if r.key == key:
                if r.operator in (EQUALS, DOUBLE_EQUALS, IN) and len(r.values) == 1:
                    return r.values[0]
                return None
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


# ---- the string grammar: a port of upstream's lexer and recursive-descent parser ----------

_ERROR, _EOS, _CPAR, _COMMA, _NOT, _DEQ, _EQ, _GT, _ID, _IN, _LT, _NEQ, _NOTIN, _OPAR = range(14)
_TOKENS: Final = {
    ")": _CPAR,
    ",": _COMMA,
    "!": _NOT,
    "==": _DEQ,
    "=": _EQ,
    ">": _GT,
    "in": _IN,
    "<": _LT,
    "!=": _NEQ,
    "notin": _NOTIN,
    "(": _OPAR,
}
_SPECIAL: Final = frozenset("=!(),><")
_WHITESPACE: Final = frozenset(" \t\r\n")


def _lex(s: str) -> list[tuple[int, str]]:
    """Every token of ``s``, ending with end-of-string (a NUL also ends it, as in Go)."""
    items: list[tuple[int, str]] = []
    pos, end = 0, len(s)

    def peek(i: int) -> str:
        return s[i] if i < end else "\0"

    while True:
        while peek(pos) in _WHITESPACE:
            pos += 1
        ch = peek(pos)
        if ch == "\0":
            items.append((_EOS, ""))
            return items
        if ch in _SPECIAL:
            buf, last = "", (_ERROR, "")
            while peek(pos) in _SPECIAL:
                buf += s[pos]
                if buf in _TOKENS:
                    last = (_TOKENS[buf], buf)
                elif last[0] != _ERROR:
                    break
                pos += 1
            if last[0] == _ERROR:  # cannot happen: every single special char is a token
                items.append((_ERROR, f"error expected: keyword found '{buf}'"))
            else:
                items.append(last)
        else:
            start = pos
            while (c := peek(pos)) != "\0" and c not in _SPECIAL and c not in _WHITESPACE:
                pos += 1
            lit = s[start:pos]
            items.append((_TOKENS.get(lit, _ID), lit))


class _Parser:
    def __init__(self, s: str) -> None:
        self.items = _lex(s)
        self.pos = 0

    def _at(self, i: int, values: bool) -> tuple[int, str]:
        tok, lit = self.items[min(i, len(self.items) - 1)]
        if values and tok in (_IN, _NOTIN):
            tok = _ID
        return tok, lit

    def lookahead(self, values: bool) -> tuple[int, str]:
        return self._at(self.pos, values)

    def consume(self, values: bool) -> tuple[int, str]:
        self.pos += 1
        return self._at(self.pos - 1, values)

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self.lookahead(True)
            if tok in (_ID, _NOT):
                try:
                    reqs.append(self.requirement())
                except SelectorError as e:
                    raise SelectorError(f"unable to parse requirement: {e}") from None
                t, lit2 = self.consume(True)
                if t == _EOS:
                    return reqs
                if t == _COMMA:
                    t2, lit3 = self.lookahead(True)
                    if t2 not in (_ID, _NOT):
                        raise SelectorError(f"found '{lit3}', expected: identifier after ','")
                else:
                    raise SelectorError(f"found '{lit2}', expected: ',' or 'end of string'")
            elif tok == _EOS:
                return reqs
            else:
                raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> Requirement:
        key, op = self.key_and_inferred_operator()
        if op in (EXISTS, DOES_NOT_EXIST):
            return Requirement.new(key, op, [])
        op = self.operator()
        values = self.value_set() if op in (IN, NOT_IN) else self.exact_value()
        return Requirement.new(key, op, sorted(values))

    def key_and_inferred_operator(self) -> tuple[str, str]:
        op = ""
        tok, lit = self.consume(True)
        if tok == _NOT:
            op = DOES_NOT_EXIST
            tok, lit = self.consume(True)
        if tok != _ID:
            raise SelectorError(f"found '{lit}', expected: identifier")
        errs = validate_label_key(lit)
        if errs:
            raise SelectorError(_invalid("<nil>", go_quote(lit), "; ".join(errs)))
        if self.lookahead(True)[0] in (_EOS, _COMMA) and op != DOES_NOT_EXIST:
            op = EXISTS
        return lit, op

    def operator(self) -> str:
        tok, lit = self.consume(False)
        ops = {
            _IN: IN,
            _EQ: EQUALS,
            _DEQ: DOUBLE_EQUALS,
            _GT: GREATER_THAN,
            _LT: LESS_THAN,
            _NOTIN: NOT_IN,
            _NEQ: NOT_EQUALS,
        }
        if tok not in ops:
            raise SelectorError(f"found '{lit}', expected: {', '.join(_BINARY_OPERATORS)}")
        return ops[tok]

    def value_set(self) -> set[str]:
        tok, lit = self.consume(True)
        if tok != _OPAR:
            raise SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead(True)
        if tok in (_ID, _COMMA):
            values = self.identifiers()
            if self.consume(True)[0] != _CPAR:
                raise SelectorError(f"found '{lit}', expected: ')'")  # sic: upstream's literal
            return values
        if tok == _CPAR:
            self.consume(True)
            return {""}
        raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")

    def identifiers(self) -> set[str]:
        values: set[str] = set()
        while True:
            tok, lit = self.consume(True)
            if tok == _ID:
                values.add(lit)
                tok2, lit2 = self.lookahead(True)
                if tok2 == _COMMA:
                    continue
                if tok2 == _CPAR:
                    return values
                raise SelectorError(f"found '{lit2}', expected: ',' or ')'")
            if tok == _COMMA:
                if not values:
                    values.add("")  # "(,"
                tok2 = self.lookahead(True)[0]
                if tok2 == _CPAR:
                    values.add("")  # ",)"
                    return values
                if tok2 == _COMMA:
                    self.consume(True)
                    values.add("")  # ",,"
            else:
                raise SelectorError(f"found '{lit}', expected: ',', or identifier")

    def exact_value(self) -> set[str]:
        if self.lookahead(True)[0] in (_EOS, _COMMA):
            return {""}
        tok, lit = self.consume(True)
        if tok == _ID:
            return {lit}
        raise SelectorError(f"found '{lit}', expected: identifier")


def parse_label_selector(s: str) -> LabelSelector:
    """Parse a ``labelSelector`` query string (upstream ``labels.Parse``).

    ``""`` selects everything. Raises :class:`SelectorError` with upstream's message.
    """
    reqs = _Parser(s).parse()
    return LabelSelector(tuple(sorted(reqs, key=lambda r: r.key)))


_LABEL_SELECTOR_OPS: Final = {
    "In": IN,
    "NotIn": NOT_IN,
    "Exists": EXISTS,
    "DoesNotExist": DOES_NOT_EXIST,
}


def label_selector_from_dict(d: Mapping[str, Any] | None) -> LabelSelector:
    """Convert a ``metav1.LabelSelector`` object (``matchLabels``/``matchExpressions``).

    As upstream's ``LabelSelectorAsSelector``: ``None`` → :meth:`LabelSelector.nothing`
    (matches no object); ``{}`` or one with no labels and no expressions →
    :meth:`LabelSelector.everything`.
    """
    if d is None:
        return LabelSelector.nothing()
    match_labels: Mapping[str, str] = d.get("matchLabels") or {}
    expressions: list[Mapping[str, Any]] = d.get("matchExpressions") or []
    if not match_labels and not expressions:
        return LabelSelector.everything()
    reqs = [Requirement.new(k, EQUALS, [v]) for k, v in match_labels.items()]
    for expr in expressions:
        op = str(expr.get("operator", ""))
        if op not in _LABEL_SELECTOR_OPS:
            raise SelectorError(f"{go_quote(op)} is not a valid label selector operator")
        raw = expr.get("values")
        reqs.append(
            Requirement.new(
                str(expr.get("key", "")),
                _LABEL_SELECTOR_OPS[op],
                None if not raw else [str(v) for v in raw],
            )
        )
    return LabelSelector(tuple(sorted(reqs, key=lambda r: r.key)))


# --------------------------------------------------------------------------------------------
# field selectors


@dataclass(frozen=True, slots=True)
class FieldTerm:
    """``field=value`` (``op`` ``"="``; ``==`` parses to this too) or ``field!=value``."""

    field: str
    op: str
    value: str

    def matches(self, fields: Mapping[str, str]) -> bool:
        have = fields.get(self.field, "")
        return have == self.value if self.op == "=" else have != self.value

    def __str__(self) -> str:
        return f"{self.field}{self.op}{escape_field_value(self.value)}"


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """The AND of field terms; no terms matches everything."""

    terms: tuple[FieldTerm, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.terms

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all(t.matches(fields) for t in self.terms)

    def requires_exact_match(self, field: str) -> str | None:
        """The value an ``=`` term requires of ``field`` (for index look-ups), else None."""
        for t in self.terms:
            if t.field == field and t.op == "=":
                return t.value
        return None

    def __str__(self) -> str:
        return ",".join(str(t) for t in self.terms)


def escape_field_value(s: str) -> str:
    """``fields.EscapeValue``: backslash-escape ``\\``, ``,`` and ``=``."""
    return s.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(s: str) -> str:
    if not any(c in s for c in "\\,="):
        return s
    out: list[str] = []
    in_slash = False
    for c in s:
        if in_slash:
            if c not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c in ",=":
            # upstream prints the rune with %v, i.e. as its number
            raise SelectorError(f"invalid field selector: unescaped character in value: {ord(c)}")
        else:
            out.append(c)
    if in_slash:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(s: str) -> list[str]:
    if not s:
        return []
    terms: list[str] = []
    start, in_slash = 0, False
    for i, c in enumerate(s):
        if in_slash:
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c == ",":
            terms.append(s[start:i])
            start = i + 1
    terms.append(s[start:])
    return terms


def parse_field_selector(s: str) -> FieldSelector:
    """Parse a ``fieldSelector`` query string (upstream ``fields.ParseSelector``).

    Terms are sorted as upstream sorts them; ``==`` is read as ``=``; values are unescaped.
    """
    terms: list[FieldTerm] = []
    for part in sorted(_split_terms(s)):
        if not part:
            continue
        for i in range(len(part)):
            op = next((o for o in ("!=", "==", "=") if part.startswith(o, i)), None)
            if op is not None:
                lhs, rhs = part[:i], part[i + len(op) :]
                terms.append(
                    FieldTerm(lhs, "!=" if op == "!=" else "=", _unescape_field_value(rhs))
                )
                break
        else:
            raise SelectorError(f"invalid selector: '{s}'; can't understand '{part}'")
    return FieldSelector(tuple(terms))


# ---- per-kind field label conversion (which field labels a request may use) -------------

_METADATA: Final = ("metadata.name", "metadata.namespace")
_NOT_SUPPORTED: Final = "field label not supported: {label}"


@dataclass(frozen=True, slots=True)
class _Conversion:
    #: accepted label -> the field name objects expose it under
    labels: Mapping[str, str]
    message: str = _NOT_SUPPORTED


def _same(*labels: str) -> dict[str, str]:
    return {label: label for label in labels}


_EVENT_FIELDS: Final = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)

#: upstream's AddFieldLabelConversionFunc registrations, by (group, version, kind); every
#: other kind gets runtime.DefaultMetaV1FieldSelectorConversion (name and namespace only)
_CONVERSIONS: Final[dict[tuple[str, str, str], _Conversion]] = {
    ("", "v1", "Pod"): _Conversion(
        {
            **_same(
                *_METADATA,
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.podIPs",
                "status.nominatedNodeName",
            ),
            "spec.host": "spec.nodeName",  # for old v1 clients
        }
    ),
    ("", "v1", "Node"): _Conversion(_same("metadata.name", "spec.unschedulable")),
    ("", "v1", "ReplicationController"): _Conversion(_same(*_METADATA, "status.replicas")),
    ("", "v1", "Event"): _Conversion(_same(*_EVENT_FIELDS, *_METADATA)),
    ("", "v1", "Namespace"): _Conversion(_same("status.phase", "metadata.name")),
    ("", "v1", "Secret"): _Conversion(_same("type", *_METADATA)),
    ("", "v1", "Service"): _Conversion(_same(*_METADATA, "spec.clusterIP", "spec.type")),
    ("batch", "v1", "Job"): _Conversion(
        _same(*_METADATA, "status.successful"), "field label {quoted} not supported for Job"
    ),
    ("events.k8s.io", "v1", "Event"): _Conversion(
        {
            "reason": "reason",
            "regarding.kind": "involvedObject.kind",
            "regarding.namespace": "involvedObject.namespace",
            "regarding.name": "involvedObject.name",
            "regarding.uid": "involvedObject.uid",
            "regarding.apiVersion": "involvedObject.apiVersion",
            "regarding.resourceVersion": "involvedObject.resourceVersion",
            "regarding.fieldPath": "involvedObject.fieldPath",
            "reportingController": "reportingComponent",
            "source": "source",
            "type": "type",
            **_same(*_METADATA),
        }
    ),
}


def check_field_selector(resource: Resource, selector: FieldSelector) -> FieldSelector:
    """Check ``selector``'s field labels against ``resource``'s kind, as the API server does.

    Returns the selector with labels converted to the names :func:`field_values` exposes
    (``spec.host`` → ``spec.nodeName``; events.k8s.io ``regarding.*`` → ``involvedObject.*``).
    Raises :class:`SelectorError` with upstream's message for the first unsupported label,
    e.g. ``field label not supported: foo`` or, for kinds without their own conversion,
    ``"foo" is not a known field selector: only "metadata.name", "metadata.namespace"``.

    Note: upstream registers no conversion for apps/v1 ReplicaSet, so ``status.replicas`` is
    refused there although the object exposes it (kubernetes/kubernetes#135136).
    """
    conv = _CONVERSIONS.get((resource.group, resource.version, resource.kind))
    out: list[FieldTerm] = []
    for t in selector.terms:
        if conv is None:
            if t.field not in _METADATA:
                raise SelectorError(
                    f"{go_quote(t.field)} is not a known field selector: only "
                    f'"metadata.name", "metadata.namespace"'
                )
            out.append(t)
            continue
        target = conv.labels.get(t.field)
        if target is None:
            raise SelectorError(conv.message.format(label=t.field, quoted=go_quote(t.field)))
        out.append(FieldTerm(target, t.op, t.value))
    return FieldSelector(tuple(out))


# ---- per-resource selectable fields (upstream GetAttrs / ToSelectableFields) ------------


def _get(obj: Mapping[str, Any], *path: str) -> Any:
    cur: Any = obj
    for p in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(p)
    return cur


def _s(v: Any) -> str:
    """A field as its selector string: missing is "", bools and ints as Go prints them."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _int(v: Any) -> str:
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else "0"


def _pod_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    ips = _get(obj, "status", "podIPs")
    pod_ip = _get(obj, "status", "podIP")
    if isinstance(ips, list) and ips and isinstance(ips[0], Mapping):
        pod_ip = ips[0].get("ip")
    return {
        "spec.nodeName": _s(_get(obj, "spec", "nodeName")),
        "spec.restartPolicy": _s(_get(obj, "spec", "restartPolicy")),
        "spec.schedulerName": _s(_get(obj, "spec", "schedulerName")),
        "spec.serviceAccountName": _s(_get(obj, "spec", "serviceAccountName")),
        "spec.hostNetwork": "true" if _get(obj, "spec", "hostNetwork") is True else "false",
        "status.phase": _s(_get(obj, "status", "phase")),
        "status.podIP": _s(pod_ip),
        "status.nominatedNodeName": _s(_get(obj, "status", "nominatedNodeName")),
    }


def _event_fields(obj: Mapping[str, Any], ref: str, reporting: str, source: str) -> dict[str, str]:
    reporter = _s(obj.get(reporting))
    out = {
        f"involvedObject.{f}": _s(_get(obj, ref, f))
        for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
    }
    out.update(
        {
            "reason": _s(obj.get("reason")),
            "reportingComponent": reporter,
            "source": _s(_get(obj, source, "component")) or reporter,
            "type": _s(obj.get("type")),
        }
    )
    return out


def field_values(resource: Resource, obj: Mapping[str, Any]) -> dict[str, str]:
    """The selectable fields of ``obj`` (an object of ``resource``), by upstream field name.

    Every resource has ``metadata.name``, and namespaced ones ``metadata.namespace``
    (upstream omits it for cluster-scoped objects; a missing field reads as ``""`` in
    :meth:`FieldSelector.matches`, so matching is the same). Kind-specific fields follow
    upstream's registry strategies; values are strings as Go formats them.
    """
    out = {"metadata.name": _s(_get(obj, "metadata", "name"))}
    if resource.namespaced:
        out["metadata.namespace"] = _s(_get(obj, "metadata", "namespace"))
    g, plural = resource.group, resource.plural
    if g == "" and plural == "pods":
        out.update(_pod_fields(obj))
    elif g == "" and plural == "events":
        out.update(_event_fields(obj, "involvedObject", "reportingComponent", "source"))
    elif g == "events.k8s.io" and plural == "events":
        out.update(_event_fields(obj, "regarding", "reportingController", "deprecatedSource"))
    elif g == "" and plural == "secrets":
        out["type"] = _s(obj.get("type"))
    elif g == "" and plural == "nodes":
        out["spec.unschedulable"] = _s(_get(obj, "spec", "unschedulable") is True)
    elif g == "" and plural == "namespaces":
        out["status.phase"] = _s(_get(obj, "status", "phase"))
    elif g == "" and plural == "services":
        out["spec.clusterIP"] = _s(_get(obj, "spec", "clusterIP"))
        out["spec.type"] = _s(_get(obj, "spec", "type"))
    elif (g, plural) in (("", "replicationcontrollers"), ("apps", "replicasets")):
        out["status.replicas"] = _int(_get(obj, "status", "replicas"))
    elif g == "batch" and plural == "jobs":
        out["status.successful"] = _int(_get(obj, "status", "succeeded"))
    return out
