"""A CEL parser that keeps source positions, for the checks the evaluator cannot do.

The evaluator (the Rust ``cel`` package) parses and runs expressions but exposes no syntax
tree, so it cannot say *where* a rule refers to an undeclared name or an undefined field, what
type a rule returns, or how many iterations a comprehension will make. This module parses the
same grammar (CEL's ``CEL.g4``: ternary, ``||``, ``&&``, relations and ``in``, arithmetic,
unary ``!``/``-``, member selection and calls, indexing, list/map/message literals) into a
small tree whose nodes carry the offset cel-go reports errors at (the ``.`` of a selection,
the ``(`` of a call, the operator of a binary expression, the first character of an
identifier or literal). Macros (``has``, ``all``, ``exists``, ``exists_one``, ``map``,
``filter``) are recognised as cel-go's parser expands them.

Syntax errors are reported by the evaluator, whose messages are cel-go's; this parser is run
only on expressions the evaluator accepted, and raises :class:`ParseError` when it meets
something it does not know (the caller then skips the static checks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "Call",
    "Comp",
    "Ident",
    "ListLit",
    "Lit",
    "MapLit",
    "Node",
    "ParseError",
    "Select",
    "Struct",
    "parse",
    "walk",
]


class ParseError(ValueError):
    """The expression uses syntax this parser does not handle."""


@dataclass(eq=False, slots=True)
class Node:
    pos: int


@dataclass(eq=False, slots=True)
class Lit(Node):
    """A literal; ``kind`` is its CEL type name (``int``, ``uint``, ``double``, ...)."""

    kind: str
    value: object


@dataclass(eq=False, slots=True)
class Ident(Node):
    name: str


@dataclass(eq=False, slots=True)
class Select(Node):
    """``operand.field``; ``has(operand.field)`` when ``test_only``."""

    operand: Node
    field: str
    test_only: bool = False


@dataclass(eq=False, slots=True)
class Call(Node):
    """A function call, ``target.fn(args)`` or ``fn(args)``; operators are calls too.

    Operator names are cel-go's: ``_+_``, ``_==_``, ``!_``, ``-_``, ``_[_]``, ``@in``,
    ``_&&_``, ``_||_``, ``_?_:_``. ``name_pos`` is where the function's name starts (for
    named functions), so the source can be rewritten at that spot.
    """

    fn: str
    args: list[Node]
    target: Node | None = None
    name_pos: int = -1


@dataclass(eq=False, slots=True)
class Comp(Node):
    """A comprehension macro: ``target.macro(var, args...)``."""

    macro: str
    target: Node
    var: str
    args: list[Node]


@dataclass(eq=False, slots=True)
class ListLit(Node):
    elems: list[Node]


@dataclass(eq=False, slots=True)
class MapLit(Node):
    entries: list[tuple[Node, Node]]


@dataclass(eq=False, slots=True)
class Struct(Node):
    name: str
    fields: list[tuple[str, Node]] = field(default_factory=list)


def walk(node: Node) -> list[Node]:
    """Every node of the tree, parents before children."""
    out: list[Node] = []
    stack = [node]
    while stack:
        n = stack.pop()
        out.append(n)
        if isinstance(n, Select):
            stack.append(n.operand)
        elif isinstance(n, Call):
            stack.extend(reversed(n.args))
            if n.target is not None:
                stack.append(n.target)
        elif isinstance(n, Comp):
            stack.extend(reversed(n.args))
            stack.append(n.target)
        elif isinstance(n, ListLit):
            stack.extend(reversed(n.elems))
        elif isinstance(n, MapLit):
            for k, v in reversed(n.entries):
                stack.extend((v, k))
        elif isinstance(n, Struct):
            stack.extend(v for _, v in reversed(n.fields))
    return out


_TOKEN: Final = re.compile(
    r"""
    (?P<ws>[ \t\n\r\f]+|//[^\n]*)
   |(?P<str>(?:[rR][bB]?|[bB][rR]?)?(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''
            |"(?:\\[\s\S]|[^"\\\n])*"|'(?:\\[\s\S]|[^'\\\n])*'))
   |(?P<double>[0-9]+\.[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+|\.[0-9]+(?:[eE][+-]?[0-9]+)?)
   |(?P<hex>0[xX][0-9a-fA-F]+[uU]?)
   |(?P<int>[0-9]+[uU]?)
   |(?P<ident>[_a-zA-Z][_a-zA-Z0-9]*)
   |(?P<op>==|!=|<=|>=|&&|\|\||[-+*/%!<>?:.,\[\]{}()])
    """,
    re.X,
)

_SIMPLE_ESCAPES: Final = {
    "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
    "\\": "\\", "'": "'", '"': '"', "`": "`", "?": "?",
}  # fmt: skip
_ESCAPE: Final = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-3][0-7]{2}|.)")


def _unescape(body: str, as_bytes: bool) -> str | bytes:
    out = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(body):
        out += body[pos : m.start()].encode()
        e = m.group(1)
        if e[0] in "xX" and len(e) == 3:
            code = int(e[1:], 16)
            out += bytes([code]) if as_bytes else chr(code).encode()
        elif e[0] in "uU" and len(e) > 1:
            out += chr(int(e[1:], 16)).encode()
        elif e[0].isdigit() and len(e) == 3:
            code = int(e, 8)
            out += bytes([code]) if as_bytes else chr(code).encode()
        elif e in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[e].encode()
        else:
            raise ParseError(f"invalid escape sequence \\{e}")
        pos = m.end()
    out += body[pos:].encode()
    return bytes(out) if as_bytes else out.decode("utf-8", "replace")


def _string_literal(text: str) -> tuple[str, str | bytes]:
    i = 0
    raw = as_bytes = False
    while text[i] not in "'\"":
        raw |= text[i] in "rR"
        as_bytes |= text[i] in "bB"
        i += 1
    body = text[i:]
    q = 3 if body[:3] in ('"""', "'''") else 1
    inner = body[q:-q]
    if raw:
        return ("bytes", inner.encode()) if as_bytes else ("string", inner)
    return ("bytes" if as_bytes else "string"), _unescape(inner, as_bytes)


@dataclass(slots=True)
class _Tok:
    kind: str  # "lit", "ident", "op", "eof"
    text: str
    pos: int
    lit_kind: str = ""
    value: object = None


_RESERVED_LITERALS: Final[dict[str, tuple[str, object]]] = {
    "true": ("bool", True),
    "false": ("bool", False),
    "null": ("null", None),
}
_MACROS: Final = {"all": 2, "exists": 2, "exists_one": 2, "filter": 2}


def _tokenize(src: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    n = len(src)
    while pos < n:
        m = _TOKEN.match(src, pos)
        if m is None:
            raise ParseError(f"unexpected character {src[pos]!r} at {pos}")
        kind = m.lastgroup
        text = m.group()
        if kind == "ws":
            pass
        elif kind == "str":
            lk, val = _string_literal(text)
            toks.append(_Tok("lit", text, pos, lk, val))
        elif kind == "double":
            toks.append(_Tok("lit", text, pos, "double", float(text)))
        elif kind in ("hex", "int"):
            unsigned = text[-1] in "uU"
            digits = text[:-1] if unsigned else text
            num = int(digits, 16) if kind == "hex" else int(digits)
            toks.append(_Tok("lit", text, pos, "uint" if unsigned else "int", num))
        elif kind == "ident":
            if text in _RESERVED_LITERALS:
                lk, lv = _RESERVED_LITERALS[text]
                toks.append(_Tok("lit", text, pos, lk, lv))
            elif text == "in":
                toks.append(_Tok("op", text, pos))
            else:
                toks.append(_Tok("ident", text, pos))
        else:
            toks.append(_Tok("op", text, pos))
        pos = m.end()
    toks.append(_Tok("eof", "", n))
    return toks


_RELOPS: Final = {
    "<": "_<_", "<=": "_<=_", ">": "_>_", ">=": "_>=_", "==": "_==_", "!=": "_!=_", "in": "@in",
}  # fmt: skip


class _Parser:
    def __init__(self, src: str) -> None:
        self.toks = _tokenize(src)
        self.i = 0

    def peek(self, text: str) -> bool:
        t = self.toks[self.i]
        return t.kind == "op" and t.text == text

    def take(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, text: str) -> _Tok:
        t = self.take()
        if t.kind != "op" or t.text != text:
            raise ParseError(f"expected {text!r} at {t.pos}, found {t.text!r}")
        return t

    def parse(self) -> Node:
        node = self.expr()
        if self.toks[self.i].kind != "eof":
            raise ParseError(f"unexpected {self.toks[self.i].text!r}")
        return node

    def expr(self) -> Node:
        cond = self.or_()
        if self.peek("?"):
            q = self.take()
            a = self.or_()
            self.expect(":")
            b = self.expr()
            return Call(q.pos, "_?_:_", [cond, a, b])
        return cond

    def or_(self) -> Node:
        left = self.and_()
        while self.peek("||"):
            op = self.take()
            left = Call(op.pos, "_||_", [left, self.and_()])
        return left

    def and_(self) -> Node:
        left = self.rel()
        while self.peek("&&"):
            op = self.take()
            left = Call(op.pos, "_&&_", [left, self.rel()])
        return left

    def rel(self) -> Node:
        left = self.add()
        while self.toks[self.i].kind == "op" and self.toks[self.i].text in _RELOPS:
            op = self.take()
            left = Call(op.pos, _RELOPS[op.text], [left, self.add()])
        return left

    def add(self) -> Node:
        left = self.mul()
        while self.peek("+") or self.peek("-"):
            op = self.take()
            left = Call(op.pos, f"_{op.text}_", [left, self.mul()])
        return left

    def mul(self) -> Node:
        left = self.unary()
        while self.peek("*") or self.peek("/") or self.peek("%"):
            op = self.take()
            left = Call(op.pos, f"_{op.text}_", [left, self.unary()])
        return left

    def unary(self) -> Node:
        node: Node
        if self.peek("!"):
            ops = []
            while self.peek("!"):
                ops.append(self.take())
            node = self.member()
            for op in reversed(ops):
                node = Call(op.pos, "!_", [node])
            return node
        if self.peek("-"):
            ops = []
            while self.peek("-"):
                ops.append(self.take())
            t = self.toks[self.i]
            if t.kind == "lit" and t.lit_kind in ("int", "double") and len(ops) % 2 == 1:
                # ``-1`` is one literal (the grammar's ``sign=MINUS? NUM_INT``)
                self.take()
                assert isinstance(t.value, int | float)
                node = Lit(ops[-1].pos, t.lit_kind, -t.value)
                node = self.member_suffix(node)
                ops = ops[:-1]
            else:
                node = self.member()
            for op in reversed(ops):
                node = Call(op.pos, "-_", [node])
            return node
        return self.member()

    def args(self, close: str) -> list[Node]:
        out: list[Node] = []
        if self.peek(close):
            self.take()
            return out
        while True:
            out.append(self.expr())
            if self.peek(","):
                self.take()
                if self.peek(close):  # trailing comma
                    self.take()
                    return out
                continue
            self.expect(close)
            return out

    def member(self) -> Node:
        return self.member_suffix(self.primary())

    def member_suffix(self, node: Node) -> Node:
        while True:
            if self.peek("."):
                dot = self.take()
                name = self.take()
                if name.kind != "ident":
                    raise ParseError(f"expected a name after '.' at {dot.pos}")
                if self.peek("("):
                    paren = self.take()
                    node = self.member_call(node, name, paren.pos, self.args(")"))
                else:
                    node = Select(dot.pos, node, name.text)
            elif self.peek("["):
                br = self.take()
                idx = self.expr()
                self.expect("]")
                node = Call(br.pos, "_[_]", [node, idx])
            else:
                return node

    def member_call(self, target: Node, name: _Tok, pos: int, args: list[Node]) -> Node:
        fn = name.text
        arity = _MACROS.get(fn)
        if fn == "map":
            arity = len(args) if len(args) in (2, 3) else None
        if arity is not None and len(args) == arity:
            if not isinstance(args[0], Ident):
                raise ParseError("argument must be a simple name")
            return Comp(pos, fn, target, args[0].name, args[1:])
        return Call(pos, fn, args, target, name.pos)

    def primary(self) -> Node:
        t = self.take()
        if t.kind == "lit":
            return Lit(t.pos, t.lit_kind, t.value)
        if t.kind == "ident" or (t.kind == "op" and t.text == "."):
            leading = ""
            if t.kind == "op":
                leading = "."
                t = self.take()
                if t.kind != "ident":
                    raise ParseError("expected a name after a leading '.'")
            if self.peek("("):
                paren = self.take()
                args = self.args(")")
                name = leading + t.text
                if name == "has" and len(args) == 1:
                    arg = args[0]
                    if not isinstance(arg, Select):
                        raise ParseError("invalid argument to has() macro")
                    return Select(arg.pos, arg.operand, arg.field, True)
                return Call(paren.pos, name, args, None, t.pos)
            if self.peek("{"):
                return self.struct(leading + t.text)
            # a qualified message name: a.b.C{...}
            j = self.i
            parts = [t.text]
            while (
                self.toks[j].kind == "op"
                and self.toks[j].text == "."
                and self.toks[j + 1].kind == "ident"
            ):
                parts.append(self.toks[j + 1].text)
                j += 2
                if self.toks[j].kind == "op" and self.toks[j].text == "{":
                    self.i = j
                    return self.struct(leading + ".".join(parts))
            return Ident(t.pos, leading + t.text)
        if t.kind == "op" and t.text == "(":
            inner = self.expr()
            self.expect(")")
            return inner
        if t.kind == "op" and t.text == "[":
            return ListLit(t.pos, self.args("]"))
        if t.kind == "op" and t.text == "{":
            entries: list[tuple[Node, Node]] = []
            while not self.peek("}"):
                k = self.expr()
                self.expect(":")
                entries.append((k, self.expr()))
                if not self.peek(","):
                    break
                self.take()
            self.expect("}")
            return MapLit(t.pos, entries)
        raise ParseError(f"unexpected {t.text!r} at {t.pos}")

    def struct(self, name: str) -> Node:
        brace = self.expect("{")
        fields: list[tuple[str, Node]] = []
        while not self.peek("}"):
            f = self.take()
            if f.kind != "ident":
                raise ParseError("expected a field name")
            self.expect(":")
            fields.append((f.text, self.expr()))
            if not self.peek(","):
                break
            self.take()
        self.expect("}")
        return Struct(brace.pos, name, fields)


def parse(src: str) -> Node:
    """The syntax tree of ``src``; :class:`ParseError` if this parser cannot read it."""
    try:
        return _Parser(src).parse()
    except (IndexError, RecursionError) as e:
        raise ParseError(str(e)) from None
