"""Compiling and running one expression: errors, extension functions, cost, caching.

Compiling is three steps: the evaluator parses the source (its syntax errors are cel-go's,
reformatted to cel-go's ``ERROR: <input>:1:9: ...`` / `` | source`` / `` | ....^`` layout);
our parser and checker (:mod:`._parser`, :mod:`._checker`) find what a type checker finds;
and ``size`` calls are renamed to our code-point counting function before the evaluator
compiles the source it will run (its own ``size`` counts a string's UTF-8 bytes).

Cost: the evaluator counts nothing, so :meth:`Program.cost` estimates what cel-go's cost
tracker would charge, from the syntax tree and the sizes in the activation: one unit per
identifier, selection and call, ``ceil(len/10)`` more for string functions and equality on
strings, 10 per list literal and 30 per map literal, and for a comprehension the cost of its
range plus, per element, the cost of its body. Sizes come from the activation where the range
is a path into it (``self.spec.items``); elsewhere (a range computed from a bound variable)
the largest list or string anywhere in the activation stands in, so the estimate errs high.
It is checked *before* evaluating, against upstream's per-call limit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Final

import cel

from ._checker import Result, check
from ._library import FUNCTIONS, SIZE_FUNCTION, STATE, wrap
from ._parser import Call, Comp, Ident, ListLit, Lit, MapLit, Node, ParseError, Select, parse, walk
from ._types import DYN, Type

__all__ = [
    "COST_LIMIT_MESSAGE",
    "PER_CALL_LIMIT",
    "CELError",
    "Program",
    "compile_checked",
    "compile_expression",
    "format_issues",
]

#: upstream's celconfig.PerCallLimit
PER_CALL_LIMIT: Final = 1_000_000
COST_LIMIT_MESSAGE: Final = "operation cancelled: actual cost limit exceeded"
_WRAPPED: Final = {name: wrap(fn) for name, fn in FUNCTIONS.items()}
_STRING_FUNCTIONS: Final = frozenset(
    [
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "find",
        "findAll",
        "replace",
        "split",
        "lowerAscii",
        "upperAscii",
        "trim",
        "indexOf",
        "lastIndexOf",
        "substring",
        "charAt",
        "join",
        "reverse",
        "format",
    ]
)


class CELError(Exception):
    """A CEL expression failed to compile or to evaluate; ``message`` is upstream's wording.

    Compile errors read ``compilation failed: ERROR: <input>:1:6: ...``; ``issues`` holds
    the part after the prefix (cel-go's ``Issues.String()``) for callers that need another
    prefix (a CRD's messageExpression says "messageExpression compilation failed: ").
    Runtime errors are cel-go's ("no such key: foo", "division by zero").
    """

    def __init__(self, message: str, issues: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.issues = issues


def _compile_error(issues: str) -> CELError:
    return CELError(f"compilation failed: {issues}", issues)


def _caret_line(line: str, col: int) -> str:
    # cel-go marks each preceding character with '.', multi-byte ones with U+FF0E
    dots = "".join("\uff0e" if len(c.encode()) > 1 else "." for c in line[:col])
    mark = "\uff3e" if col < len(line) and len(line[col].encode()) > 1 else "^"
    return dots + mark


def format_issues(src: str, issues: Iterable[tuple[int, str]]) -> str:
    """Issues as cel-go's ``Issues.String()``: sorted by position, one block each."""
    lines = src.split("\n")
    out = []
    for pos, msg in sorted(issues, key=lambda i: i[0]):
        line_no = src.count("\n", 0, pos)
        col = pos - (src.rfind("\n", 0, pos) + 1)
        snippet = lines[line_no].replace("\t", " ") if line_no < len(lines) else ""
        out.append(
            f"ERROR: <input>:{line_no + 1}:{col + 1}: {msg}\n | {snippet}\n | "
            + _caret_line(snippet, col)
        )
    return "\n".join(out)


def _syntax_message(err: Exception) -> str:
    text = str(err)
    start = text.find("ERROR: ")
    if start < 0:
        return text
    return text[start:].replace("\n| ", "\n | ")


def _runtime_message(err: Exception) -> str:
    """The evaluator's exception as cel-go's error text."""
    if STATE.error is not None:
        return STATE.error
    text = str(err)
    if isinstance(err, KeyError):
        key = err.args[0] if err.args else text
        return f"no such key: {key}"
    if isinstance(err, ZeroDivisionError):
        return "modulus by zero" if "modulo" in text else "division by zero"
    if isinstance(err, OverflowError):
        return "unsigned integer overflow" if "unsigned" in text else "integer overflow"
    if isinstance(err, TypeError) or "No such overload" in text:
        return "no such overload"
    if isinstance(err, IndexError):
        return text
    if text.startswith("Undefined variable or function: "):
        name = text.split("'")[1] if "'" in text else text
        return f"no such attribute(s): {name}"
    for tail in (" Check function arguments and their types.",):
        text = text.removesuffix(tail)
    return text


class Program:
    """A compiled expression; :meth:`evaluate` runs it against an activation.

    ``uses`` holds the declared variables the expression refers to (a CRD rule mentioning
    ``oldSelf`` is a transition rule); ``result_type`` is what the checker inferred
    (``dyn`` when it could not tell).
    """

    __slots__ = (
        "_ast",
        "_functions",
        "_program",
        "_static_cost",
        "expression",
        "result_type",
        "uses",
        "variables",
    )

    def __init__(
        self,
        expression: str,
        variables: frozenset[str],
        program: Any,
        ast: Node | None,
        functions: dict[str, Any],
        uses: frozenset[str],
        result_type: Type,
    ) -> None:
        self.expression = expression
        self.variables = variables
        self.uses = uses
        self.result_type = result_type
        self._program = program
        self._ast = ast
        self._functions = functions
        self._static_cost = _static_cost(ast) if ast is not None else None

    def __repr__(self) -> str:
        return f"Program({self.expression!r})"

    def evaluate(
        self, activation: Mapping[str, Any], *, cost_limit: int | None = PER_CALL_LIMIT
    ) -> Any:
        """The value of the expression; :class:`CELError` on a runtime error.

        ``activation`` maps variable names to CEL-ready values (see ``to_cel``). With a
        ``cost_limit``, an expression whose estimated cost exceeds it is not run and
        fails with upstream's "operation cancelled: actual cost limit exceeded".
        """
        if cost_limit is not None and self.cost(activation) > cost_limit:
            raise CELError(COST_LIMIT_MESSAGE)
        STATE.error = None
        try:
            if self._functions:
                return self._program.execute(cel.Context(dict(activation), self._functions))
            return self._program.execute(dict(activation))
        except Exception as e:
            raise CELError(_runtime_message(e)) from None
        finally:
            STATE.error = None

    def cost(self, activation: Mapping[str, Any]) -> int:
        """The estimated runtime cost of evaluating against ``activation``."""
        if self._static_cost is not None:
            return self._static_cost
        if self._ast is None:
            return 1
        return _Cost(activation).of(self._ast, {})


# ---- cost estimation ----


def _is_dynamic(node: Node) -> bool:
    for n in walk(node):
        if isinstance(n, Comp):
            return True
        if isinstance(n, Call) and (
            n.fn in _STRING_FUNCTIONS or n.fn in ("_==_", "_!=_", "_+_", "@in")
        ):
            return True
    return False


def _static_cost(node: Node) -> int | None:
    if _is_dynamic(node):
        return None
    return _Cost({}).of(node, {})


def _size(v: Any) -> int:
    if isinstance(v, str | bytes | list | dict):
        return len(v)
    return 1


class _Cost:
    def __init__(self, activation: Mapping[str, Any]) -> None:
        self.act = activation
        self._hint: int | None = None

    def hint(self) -> int:
        """The largest list/map/string size anywhere in the activation."""
        if self._hint is None:
            best = 1
            stack: list[Any] = list(self.act.values())
            while stack:
                v = stack.pop()
                if isinstance(v, str | bytes):
                    best = max(best, len(v))
                elif isinstance(v, list):
                    best = max(best, len(v))
                    stack.extend(v)
                elif isinstance(v, dict):
                    best = max(best, len(v))
                    stack.extend(v.values())
            self._hint = best
        return self._hint

    _UNKNOWN: Final = object()

    def value(self, node: Node, scope: dict[str, Any]) -> Any:
        """The activation value ``node`` denotes when it is a plain path, else unknown."""
        if isinstance(node, Ident):
            if node.name in scope:
                return scope[node.name]
            return self.act.get(node.name, self._UNKNOWN)
        if isinstance(node, Select) and not node.test_only:
            base = self.value(node.operand, scope)
            if isinstance(base, dict):
                return base.get(node.field, self._UNKNOWN)
            return self._UNKNOWN
        if isinstance(node, Call) and node.fn == "_[_]":
            base = self.value(node.args[0], scope)
            idx = node.args[1]
            if isinstance(idx, Lit):
                if isinstance(base, list) and isinstance(idx.value, int):
                    return base[idx.value] if -len(base) <= idx.value < len(base) else self._UNKNOWN
                if isinstance(base, dict):
                    return base.get(idx.value, self._UNKNOWN)
            return self._UNKNOWN
        if isinstance(node, Lit):
            return node.value
        if isinstance(node, ListLit):
            return [self.value(e, scope) for e in node.elems]
        if isinstance(node, Comp) and node.macro in ("map", "filter"):
            return self.value(node.target, scope)  # at most as long as the range
        return self._UNKNOWN

    def size(self, node: Node, scope: dict[str, Any]) -> int:
        v = self.value(node, scope)
        return self.hint() if v is self._UNKNOWN else _size(v)

    def of(self, node: Node, scope: dict[str, Any]) -> int:
        if isinstance(node, Lit):
            return 0
        if isinstance(node, Ident):
            return 1
        if isinstance(node, Select):
            return self.of(node.operand, scope) + (0 if node.test_only else 1)
        if isinstance(node, ListLit):
            return 10 + sum(self.of(e, scope) for e in node.elems)
        if isinstance(node, MapLit):
            return 30 + sum(self.of(k, scope) + self.of(v, scope) for k, v in node.entries)
        if isinstance(node, Comp):
            n = self.size(node.target, scope)
            inner = {**scope, node.var: self._UNKNOWN}
            body = sum(self.of(a, inner) for a in node.args)
            return self.of(node.target, scope) + n * (body + 2) + 1
        if isinstance(node, Call):
            total = 1 + sum(self.of(a, scope) for a in node.args)
            if node.target is not None:
                total += self.of(node.target, scope)
            if node.fn == "_?_:_":
                c, a, b = (self.of(x, scope) for x in node.args)
                return c + max(a, b)
            if node.fn in _STRING_FUNCTIONS and node.target is not None:
                total += math.ceil(self.size(node.target, scope) / 10)
            elif node.fn in ("_==_", "_!=_", "_+_", "@in"):
                total += math.ceil(max(self.size(a, scope) for a in node.args) / 10)
            return total
        return 1


# ---- compiling ----


def _rewrite_size(src: str, ast: Node) -> str:
    spots = sorted(
        (
            n.name_pos
            for n in walk(ast)
            if isinstance(n, Call) and n.fn == "size" and n.name_pos >= 0
        ),
        reverse=True,
    )
    for pos in spots:
        src = src[:pos] + SIZE_FUNCTION + src[pos + len("size") :]
    return src


def _build(
    expression: str, decls: Mapping[str, Type], known: frozenset[str]
) -> tuple[Program, Result | None]:
    try:
        cel.compile(expression)
    except ValueError as e:
        raise _compile_error(_syntax_message(e)) from None
    try:
        ast: Node | None = parse(expression)
    except ParseError:
        ast = None
    result: Result | None = None
    source = expression
    functions: dict[str, Any]
    if ast is not None:
        result = check(ast, dict(decls), known)
        if result.issues:
            issues = format_issues(expression, ((i.pos, i.message) for i in result.issues))
            raise _compile_error(issues)
        source = _rewrite_size(expression, ast)
        needed = set(result.functions)
        if source != expression:
            needed.add(SIZE_FUNCTION)
        functions = {n: _WRAPPED[n] for n in sorted(needed) if n in _WRAPPED}
        uses = frozenset(result.variables)
        rtype = result.type
    else:  # syntax this parser does not know: no checks, every function available
        functions = dict(_WRAPPED)
        refs = cel.compile(expression).references()["variables"]
        uses = frozenset(v for v in refs if v in decls)
        rtype = DYN
    try:
        program = cel.compile(source)
    except ValueError as e:  # pragma: no cover - the source compiled before the rewrite
        raise _compile_error(_syntax_message(e)) from None
    return Program(expression, frozenset(decls), program, ast, functions, uses, rtype), result


@lru_cache(maxsize=2048)
def _cached(expression: str, variables: tuple[str, ...]) -> Program | CELError:
    try:
        return _build(expression, dict.fromkeys(variables, DYN), frozenset())[0]
    except CELError as e:
        return e


def compile_expression(expr: str, *, variables: Iterable[str]) -> Program:
    """Compile ``expr`` with ``variables`` declared (untyped, as ``dyn``).

    Raises :class:`CELError` ("compilation failed: ERROR: <input>:1:6: ..."). Results,
    errors included, are cached (LRU) by expression and variable names.
    """
    got = _cached(expr, tuple(sorted(set(variables))))
    if isinstance(got, CELError):
        raise CELError(got.message, got.issues)
    return got


def compile_checked(expr: str, decls: Mapping[str, Type]) -> Program:
    """Compile ``expr`` type-checked against ``decls`` (not cached: types are per schema)."""
    return _build(expr, decls, frozenset())[0]
