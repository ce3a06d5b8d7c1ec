"""The JSONPath dialect of kubectl and the API server (client-go ``util/jsonpath``, v1.32).

CustomResourceDefinitions name fields with it (``additionalPrinterColumns[].jsonPath``,
the scale subresource's replica paths) and ``kubectl get -o jsonpath=...`` speaks it, so
the API server must read these paths exactly as upstream does: the same grammar
(``.a.b``, ``['a.b']``, ``[0]``, ``[-1]``, ``[1:3:2]``, ``[*]``, ``..``, unions
``[0,2]``, filters ``[?(@.type=="Ready")]``, ``{range}``/``{end}``, text between
``{...}`` actions), the same parse errors (``unclosed action``, ``invalid array index
x``), and the same printing of results (strings bare, maps and lists as compact JSON
with sorted keys, floats as Go prints them).

Values are decoded JSON as Go's unstructured decoder gives them: ``dict``, ``list``,
``str``, ``int`` (int64), ``float`` (float64), ``bool``, ``None``. Pure: no I/O.

Errors form one small tree::

    ValueError
     └── JSONPathError        parse errors and evaluation errors, upstream's message
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from pyk8s.api.gofmt import go_float, go_json, go_type, go_v

__all__ = [
    "JSONPath",
    "JSONPathError",
    "parse",
    "parse_template",
    "print_value",
]


class JSONPathError(ValueError):
    """A template that does not parse, or an evaluation that fails (upstream's message)."""


# --------------------------------------------------------------------------- nodes


@dataclass(eq=False, slots=True)
class _List:
    nodes: list[Any] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class _Text:
    text: str


@dataclass(eq=False, slots=True)
class _Field:
    name: str


@dataclass(eq=False, slots=True)
class _Identifier:
    name: str


@dataclass(slots=True)
class _Param:
    value: int = 0
    known: bool = False
    derived: bool = False


@dataclass(eq=False, slots=True)
class _Array:
    params: tuple[_Param, _Param, _Param]


@dataclass(eq=False, slots=True)
class _Filter:
    left: _List
    right: _List
    op: str


@dataclass(eq=False, slots=True)
class _Int:
    value: int


@dataclass(eq=False, slots=True)
class _Float:
    value: float


@dataclass(eq=False, slots=True)
class _Bool:
    value: bool


@dataclass(eq=False, slots=True)
class _Wildcard:
    pass


@dataclass(eq=False, slots=True)
class _Recursive:
    pass


@dataclass(eq=False, slots=True)
class _Union:
    lists: list[_List]


# --------------------------------------------------------------------------- parser

_EOF = ""
_DICT_KEY = re.compile(r"^'([^']*)'$")
_SLICE = re.compile(r"^(-?[0-9]*)(:-?[0-9]*)?(:-?[0-9]*)?$")
_FILTER = re.compile(r"^([^!<>=]+)([!<>=]+)(.+?)$")
_INT = re.compile(r"^[+-]?[0-9]+$")
_FLOAT = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)$")
_MAX_INT = 2**63 - 1


def _is_digit(r: str) -> bool:
    return bool(r) and unicodedata.category(r) == "Nd"


def _is_letter(r: str) -> bool:
    return bool(r) and unicodedata.category(r).startswith("L")


def _is_alphanumeric(r: str) -> bool:
    return r == "_" or _is_letter(r) or _is_digit(r)


def _is_terminator(r: str) -> bool:
    return r in (_EOF, " ", "\t", "\r", "\n", ".", ",", "[", "]", "$", "@", "{", "}")


def _go_rune(r: str) -> str:
    """Go's ``%#U``: ``U+002A '*'`` (the character only when printable)."""
    code = f"U+{ord(r):04X}"
    return f"{code} '{r}'" if r.isprintable() else code


def _atoi(text: str) -> int | None:
    if not _INT.match(text):
        return None
    n = int(text)
    return n if -_MAX_INT - 1 <= n <= _MAX_INT else None


_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
}


def _unquote(s: str) -> str:
    """Upstream's ``UnquoteExtend``: Go's ``strconv.Unquote`` for '...' and "..." strings."""
    if len(s) < 2 or s[0] != s[-1] or s[0] not in "\"'":
        raise ValueError("invalid syntax")
    quote, body = s[0], s[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == quote:
            raise ValueError("invalid syntax")
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1 : i + 2]
        i += 2
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
        elif e in ('"', "'"):
            if e != quote:
                raise ValueError("invalid syntax")
            out.append(e)
        elif e in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i : i + width]
            if len(digits) != width or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise ValueError("invalid syntax")
            n = int(digits, 16)
            if e != "x" and (n > 0x10FFFF or 0xD800 <= n < 0xE000):
                raise ValueError("invalid syntax")
            out.append(chr(n))
            i += width
        elif e and e in "01234567":
            digits = body[i - 1 : i + 2]
            if len(digits) != 3 or not all(d in "01234567" for d in digits):
                raise ValueError("invalid syntax")
            n = int(digits, 8)
            if n > 255:
                raise ValueError("invalid syntax")
            out.append(chr(n))
            i += 2
        else:
            raise ValueError("invalid syntax")
    return "".join(out)


class _Parser:
    """A port of upstream's hand-written scanner; positions are characters, not bytes."""

    def __init__(self, text: str) -> None:
        self.input = text
        self.root = _List()
        self.pos = 0
        self.start = 0
        self.width = 0

    def parse(self) -> _List:
        self._parse_text(self.root)
        return self.root

    # -- scanning

    def _consume(self) -> str:
        value = self.input[self.start : self.pos]
        self.start = self.pos
        return value

    def _next(self) -> str:
        if self.pos >= len(self.input):
            self.width = 0
            return _EOF
        r = self.input[self.pos]
        self.width = 1
        self.pos += 1
        return r

    def _peek(self) -> str:
        r = self._next()
        self._backup()
        return r

    def _backup(self) -> None:
        self.pos -= self.width

    def _rest(self) -> str:
        return self.input[self.pos :]

    # -- grammar

    def _parse_text(self, cur: _List) -> None:
        while True:
            if self._rest().startswith("{"):
                if self.pos > self.start:
                    cur.nodes.append(_Text(self._consume()))
                self._parse_left_delim(cur)
                return
            if self._next() == _EOF:
                break
        if self.pos > self.start:
            cur.nodes.append(_Text(self._consume()))

    def _parse_left_delim(self, cur: _List) -> None:
        self.pos += 1
        self._consume()
        node = _List()
        cur.nodes.append(node)
        self._parse_inside_action(node)

    def _parse_inside_action(self, cur: _List) -> None:
        # upstream recurses once per token; a loop keeps Python's stack shallow
        while True:
            rest = self._rest()
            if rest.startswith("}"):
                self.pos += 1
                self._consume()
                self._parse_text(self.root)
                return
            if rest.startswith("[?("):
                self._parse_filter(cur)
                continue
            if rest.startswith(".."):
                self._parse_recursive(cur)
                continue
            r = self._next()
            if r == _EOF or r in "\r\n":
                raise JSONPathError("unclosed action")
            if r in (" ", "@", "$"):  # spaces and the current object are skipped
                self._consume()
            elif r == "[":
                self._parse_array(cur)
            elif r in "\"'":
                self._parse_quote(cur, r)
            elif r == ".":
                self._parse_field(cur)
            elif r in "+-" or _is_digit(r):
                self._backup()
                self._parse_number(cur)
            elif _is_alphanumeric(r):
                self._backup()
                self._parse_identifier(cur)
            else:
                raise JSONPathError(f"unrecognized character in action: {_go_rune(r)}")

    def _parse_identifier(self, cur: _List) -> None:
        while True:
            if _is_terminator(self._next()):
                self._backup()
                break
        value = self._consume()
        if value in ("true", "false"):
            cur.nodes.append(_Bool(value == "true"))
        else:
            cur.nodes.append(_Identifier(value))

    def _parse_recursive(self, cur: _List) -> None:
        if cur.nodes and isinstance(cur.nodes[-1], _Recursive):
            raise JSONPathError("invalid multiple recursive descent")
        self.pos += 2
        self._consume()
        cur.nodes.append(_Recursive())
        if _is_alphanumeric(self._peek()):
            self._parse_field(cur)

    def _parse_number(self, cur: _List) -> None:
        if self._peek() in ("+", "-"):
            self._next()
        while True:
            r = self._next()
            if r != "." and not _is_digit(r):
                self._backup()
                break
        value = self._consume()
        n = _atoi(value)
        if n is not None:
            cur.nodes.append(_Int(n))
            return
        if _FLOAT.match(value):
            cur.nodes.append(_Float(float(value)))
            return
        raise JSONPathError(f"cannot parse number {value}")

    def _parse_array(self, cur: _List) -> None:
        while True:
            r = self._next()
            if r in (_EOF, "\n"):
                raise JSONPathError("unterminated array")
            if r == "]":
                break
        text = self._consume()[1:-1]
        if text == "*":
            text = ":"
        parts = text.split(",")
        if len(parts) > 1:
            lists = [_parse_action(f"[{p.strip(' ')}]") for p in parts]
            cur.nodes.append(_Union(lists))
            return
        m = _DICT_KEY.match(text)
        if m:
            cur.nodes.extend(_parse_action(f".{m.group(1)}").nodes)
            return
        m = _SLICE.match(text)
        if m is None:
            raise JSONPathError(f"invalid array index {text}")
        groups = [m.group(1) or "", m.group(2) or "", m.group(3) or ""]
        params = (_Param(), _Param(), _Param())
        for i in range(3):
            value = groups[i]
            if value:
                if i > 0:
                    value = value[1:]
                if i > 0 and not value:
                    params[i].known = False
                else:
                    n = _atoi(value)
                    if n is None:
                        raise JSONPathError(f"array index {value} is not a number")
                    params[i].known = True
                    params[i].value = n
            elif i == 1:
                params[i].known = True
                params[i].value = params[0].value + 1
                params[i].derived = True
            else:
                params[i].known = False
                params[i].value = 0
        cur.nodes.append(_Array(params))

    def _parse_filter(self, cur: _List) -> None:
        self.pos += 3
        self._consume()
        begin = end = False
        pair = ""
        while True:
            r = self._next()
            if r in (_EOF, "\n"):
                raise JSONPathError("unterminated filter")
            if r in "\"'":
                if not begin:
                    begin = True
                    pair = r
                    continue
                if self.input[self.pos - 2] != "\\" and r == pair:
                    end = True
            elif r == ")" and begin == end:
                break
        if self._next() != "]":
            raise JSONPathError("unclosed array expect ]")
        text = self._consume()[:-2]
        m = _FILTER.match(text)
        if m is None:
            cur.nodes.append(_Filter(_parse_action(text), _List(), "exists"))
        else:
            left = _parse_action(m.group(1))
            right = _parse_action(m.group(3))
            cur.nodes.append(_Filter(left, right, m.group(2)))

    def _parse_quote(self, cur: _List, end: str) -> None:
        while True:
            r = self._next()
            if r in (_EOF, "\n"):
                raise JSONPathError("unterminated quoted string")
            if r == end and self.input[self.pos - 2] != "\\":
                break
        value = self._consume()
        try:
            text = _unquote(value)
        except ValueError as e:
            raise JSONPathError(f"unquote string {value} error {e}") from None
        cur.nodes.append(_Text(text))

    def _parse_field(self, cur: _List) -> None:
        self._consume()
        while self._advance():
            pass
        value = self._consume()
        if value == "*":
            cur.nodes.append(_Wildcard())
        else:
            cur.nodes.append(_Field(value.replace("\\", "")))

    def _advance(self) -> bool:
        r = self._next()
        if r == "\\":
            self._next()
        elif _is_terminator(r):
            self._backup()
            return False
        return True


def _parse_action(text: str) -> _List:
    """Upstream's ``parseAction``: ``text`` parsed as the inside of one ``{...}``."""
    root = _Parser("{" + text + "}").parse()
    first = root.nodes[0] if root.nodes else None
    if not isinstance(first, _List):
        raise JSONPathError(f"invalid syntax in {text!r}")
    return first


# --------------------------------------------------------------------------- printing


def print_value(value: Any) -> str:
    """One result as upstream's ``PrintResults`` writes it: maps and lists as JSON, scalars bare."""
    if isinstance(value, dict | list):
        return go_json(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    return str(value)


# --------------------------------------------------------------------------- comparison

_BOOL, _INTK, _FLOATK, _STRING = "bool", "int", "float", "string"


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return _BOOL
    if isinstance(v, int):
        return _INTK
    if isinstance(v, float):
        return _FLOATK
    if isinstance(v, str):
        return _STRING
    raise JSONPathError("invalid type for comparison")


def _equal(a: Any, b: Any) -> bool:
    if _kind(a) != _kind(b):
        raise JSONPathError("incompatible types for comparison")
    return bool(a == b)


def _less(a: Any, b: Any) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka != kb:
        raise JSONPathError("incompatible types for comparison")
    if ka == _BOOL:
        raise JSONPathError("invalid type for comparison")
    return bool(a < b)


def _compare(op: str, a: Any, b: Any) -> bool:
    if op == "<":
        return _less(a, b)
    if op == ">":
        return not (_less(a, b) or _equal(a, b))
    if op == "==":
        return _equal(a, b)
    if op == "!=":
        return not _equal(a, b)
    if op == "<=":
        return _less(a, b) or _equal(a, b)
    if op == ">=":
        return not _less(a, b)
    raise JSONPathError(f"unrecognized filter operator {op}")


# --------------------------------------------------------------------------- evaluation


def _children(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return list(value)
    if isinstance(value, str):
        return list(value.encode())
    return []


class _Run:
    """The mutable state of one evaluation (upstream keeps it on the JSONPath)."""

    def __init__(self, allow_missing_keys: bool) -> None:
        self.allow_missing_keys = allow_missing_keys
        self.begin_range = 0
        self.in_range = 0
        self.end_range = 0
        self.last_end_node: Any = None

    def find_results(self, nodes: list[Any], data: Any) -> list[list[Any]]:
        cur = [data]
        full: list[list[Any]] = []
        i = 0
        while i < len(nodes):
            node = nodes[i]
            results = self.walk(cur, node)
            if 0 < self.end_range <= self.in_range:
                self.end_range -= 1
                self.last_end_node = node
                break
            if self.begin_range > 0:
                self.begin_range -= 1
                self.in_range += 1
                rest = nodes[i + 1 :]
                if results:
                    for value in results:
                        full.extend(self.find_results(rest, value))
                else:
                    self.find_results(rest, None)
                self.in_range -= 1
                for k in range(i + 1, len(nodes)):
                    if nodes[k] is self.last_end_node:
                        i = k
                        break
                i += 1
                continue
            full.append(results)
            i += 1
        return full

    def walk(self, values: list[Any], node: Any) -> list[Any]:
        if isinstance(node, _List):
            return self.eval_list(values, node)
        if isinstance(node, _Text):
            return [node.text]
        if isinstance(node, _Field):
            return self.eval_field(values, node)
        if isinstance(node, _Array):
            return self.eval_array(values, node)
        if isinstance(node, _Filter):
            return self.eval_filter(values, node)
        if isinstance(node, _Int | _Float | _Bool):
            return [node.value for _ in values]
        if isinstance(node, _Wildcard):
            return [c for v in values if v is not None for c in _children(v)]
        if isinstance(node, _Recursive):
            return self.eval_recursive(values)
        if isinstance(node, _Union):
            return [r for lst in node.lists for r in self.eval_list(values, lst)]
        if isinstance(node, _Identifier):
            return self.eval_identifier(values, node)
        raise JSONPathError(f"unexpected Node {node}")

    def eval_list(self, values: list[Any], node: _List) -> list[Any]:
        cur = values
        for n in node.nodes:
            cur = self.walk(cur, n)
        return cur

    def eval_identifier(self, values: list[Any], node: _Identifier) -> list[Any]:
        if node.name == "range":
            self.begin_range += 1
            return values
        if node.name == "end":
            if self.in_range > 0:
                self.end_range += 1
                return []
            raise JSONPathError("not in range, nothing to end")
        raise JSONPathError(f"unrecognized identifier {node.name}")

    def eval_array(self, values: list[Any], node: _Array) -> list[Any]:
        result: list[Any] = []
        for value in values:
            if value is None:
                continue
            if not isinstance(value, list):
                raise JSONPathError(f"{go_type(value)} is not array or slice")
            p0, p1, p2 = (_Param(p.value, p.known, p.derived) for p in node.params)
            n = len(value)
            if not p0.known:
                p0.value = 0
            if p0.value < 0:
                p0.value += n
            if not p1.known:
                p1.value = n
            if p1.value < 0 or (p1.value == 0 and p1.derived):
                p1.value += n
            if p1.value == p0.value:
                return result
            if p0.value >= n or p0.value < 0:
                raise JSONPathError(f"array index out of bounds: index {p0.value}, length {n}")
            if p1.value > n or p1.value < 0:
                raise JSONPathError(f"array index out of bounds: index {p1.value - 1}, length {n}")
            if p0.value > p1.value:
                raise JSONPathError(
                    f"starting index {p0.value} is greater than ending index {p1.value}"
                )
            step = 1
            if p2.known:
                if p2.value <= 0:
                    raise JSONPathError("step must be > 0")
                step = p2.value
            result.extend(value[p0.value : p1.value : step])
        return result

    def eval_field(self, values: list[Any], node: _Field) -> list[Any]:
        results: list[Any] = []
        if not values:
            return results
        for value in values:
            if isinstance(value, dict) and node.name in value:
                results.append(value[node.name])
        if not results and not self.allow_missing_keys:
            raise JSONPathError(f"{node.name} is not found")
        return results

    def eval_recursive(self, values: list[Any]) -> list[Any]:
        result: list[Any] = []
        for value in values:
            if value is None:
                continue
            children = _children(value)
            if children:
                result.append(value)
                result.extend(self.eval_recursive(children))
        return result

    def eval_filter(self, values: list[Any], node: _Filter) -> list[Any]:
        results: list[Any] = []
        for value in values:
            if not isinstance(value, list):
                raise JSONPathError(f"{go_v(value)} is not array or slice and cannot be filtered")
            for item in value:
                if node.op == "exists":
                    try:
                        lefts = self.eval_list([item], node.left)
                    except JSONPathError:
                        lefts = []
                    if lefts:
                        results.append(item)
                    continue
                lefts = self.eval_list([item], node.left)
                if not lefts:
                    continue
                if len(lefts) > 1:
                    raise JSONPathError("can only compare one element at a time")
                rights = self.eval_list([item], node.right)
                if not rights:
                    continue
                if len(rights) > 1:
                    raise JSONPathError("can only compare one element at a time")
                if _compare(node.op, lefts[0], rights[0]):
                    results.append(item)
        return results


# --------------------------------------------------------------------------- the API


@dataclass(frozen=True, slots=True)
class JSONPath:
    """A parsed template. ``allow_missing_keys`` (upstream's ``AllowMissingKeys``) makes a
    field that is absent produce no result instead of the ``<field> is not found`` error."""

    source: str
    root: _List
    allow_missing_keys: bool = True

    @property
    def field_chain(self) -> tuple[str, ...] | None:
        """The keys of a plain ``{.a.b.c}`` path (no text, index, filter...); else None.

        Such a path selects ``data["a"]["b"]["c"]`` when every key is there and nothing
        otherwise, so callers on a hot path (table cells) can skip the evaluator.
        """
        nodes = self.root.nodes
        if len(nodes) != 1 or not isinstance(nodes[0], _List) or not nodes[0].nodes:
            return None
        if not all(isinstance(n, _Field) for n in nodes[0].nodes):
            return None
        return tuple(n.name for n in nodes[0].nodes)

    def find_results(self, data: Any) -> list[list[Any]]:
        """Upstream's ``FindResults``: one list of values per top-level node (text or action)."""
        return _Run(self.allow_missing_keys).find_results(self.root.nodes, data)

    def find(self, data: Any) -> list[Any]:
        """Every value the template selects in ``data``, in order (results flattened)."""
        return [v for results in self.find_results(data) for v in results]

    def execute(self, data: Any) -> str:
        """The text ``kubectl get -o jsonpath=<template>`` prints for ``data``."""
        return "".join(
            " ".join(print_value(v) for v in results) for results in self.find_results(data)
        )


def parse_template(text: str, *, allow_missing_keys: bool = True) -> JSONPath:
    """A full template (``name: {.metadata.name}{"\\n"}``); raises :class:`JSONPathError`."""
    return JSONPath(text, _Parser(text).parse(), allow_missing_keys)


def parse(expr: str, *, allow_missing_keys: bool = True) -> JSONPath:
    """A path such as ``.status.conditions[?(@.type=="Ready")].status``, or a ``{...}`` template.

    A bare path is wrapped in ``{}`` as the API server does for printer columns
    (``fmt.Sprintf("{%s}", jsonPath)``). Raises :class:`JSONPathError` (a ValueError)
    with upstream's message when the expression does not parse.
    """
    text = expr if "{" in expr else "{" + expr + "}"
    return parse_template(text, allow_missing_keys=allow_missing_keys)
