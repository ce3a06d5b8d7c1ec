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

from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any, Final

import cel

from ._checker import Result, check
from ._library import FUNCTIONS, MATCHES_FUNCTION, STATE, re2_to_python, wrap
from ._parser import Call, Comp, Ident, ListLit, Lit, MapLit, Node, ParseError, Select, parse, walk
from ._types import DYN, Type

__all__ = [
    "COST_LIMIT_MESSAGE",
    "PER_CALL_LIMIT",
    "Activation",
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


class Activation(dict[str, Any]):
    """Variables for several evaluations, converted for the evaluator once.

    The evaluator converts every Python value it is given, on every call: a rule touching
    ``self.replicas`` of a spec with a long list pays for converting the list. Evaluating
    several programs against one Activation converts the variables once (into a
    ``cel.Context``, to which each program adds the functions it needs).
    """

    __slots__ = ("_context", "_functions", "size_hint")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._context: Any = None
        self._functions: set[str] = set()
        #: the cost estimate's stand-in size, computed once (see :class:`_Ctx`)
        self.size_hint: int | None = None

    def context(self, functions: Mapping[str, Any]) -> Any:
        """The converted variables, with ``functions`` registered."""
        if self._context is None:
            self._context = cel.Context(dict(self), dict(functions))
            self._functions = set(functions)
        else:
            for name in functions.keys() - self._functions:
                self._context.add_function(name, functions[name])
                self._functions.add(name)
        return self._context


class Program:
    """A compiled expression; :meth:`evaluate` runs it against an activation.

    ``uses`` holds the declared variables the expression refers to (a CRD rule mentioning
    ``oldSelf`` is a transition rule); ``result_type`` is what the checker inferred
    (``dyn`` when it could not tell).
    """

    __slots__ = (
        "_bound",
        "_cost",
        "_functions",
        "_program",
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
        self._functions = functions
        self._cost: int | CostFn = _cost_fn(ast) if ast is not None else 1
        self._bound = (
            _bound_fn(ast) if ast is not None and not isinstance(self._cost, int) else None
        )

    def __repr__(self) -> str:
        return f"Program({self.expression!r})"

    def evaluate(
        self, activation: Mapping[str, Any], *, cost_limit: int | None = PER_CALL_LIMIT
    ) -> Any:
        """The value of the expression; :class:`CELError` on a runtime error.

        ``activation`` maps variable names to CEL-ready values (see ``to_cel``); pass an
        :class:`Activation` to evaluate several programs over the same values. With a
        ``cost_limit``, an expression whose estimated cost exceeds it is not run and
        fails with upstream's "operation cancelled: actual cost limit exceeded".
        """
        if (
            cost_limit is not None
            and not self._surely_within(activation, cost_limit)
            and self.cost(activation) > cost_limit
        ):
            raise CELError(COST_LIMIT_MESSAGE)
        STATE.error = None
        try:
            if isinstance(activation, Activation):
                return self._program.execute(activation.context(self._functions))
            if self._functions:
                return self._program.execute(cel.Context(dict(activation), self._functions))
            return self._program.execute(dict(activation))
        except Exception as e:
            raise CELError(_runtime_message(e)) from None
        finally:
            STATE.error = None

    def _surely_within(self, activation: Mapping[str, Any], limit: int) -> bool:
        """Whether the estimate cannot exceed ``limit`` whatever it would be: a bound from
        the size of the tree, its comprehension nesting and the largest size in the
        activation (cheaper than the estimate when an Activation is shared)."""
        cost = self._cost
        if isinstance(cost, int):
            return cost <= limit
        if self._bound is None or not isinstance(activation, Activation):
            return False
        return self._bound(_Ctx(activation).hint()) <= limit

    def cost(self, activation: Mapping[str, Any]) -> int:
        """The estimated runtime cost of evaluating against ``activation``."""
        cost = self._cost
        return cost if isinstance(cost, int) else cost(_Ctx(activation), {})


# ---- cost estimation ----

_UNKNOWN: Final = object()
Scope = dict[str, Any]


class _Ctx:
    """One evaluation's activation, and the size standing in for sizes not known."""

    __slots__ = ("_hint", "act")

    def __init__(self, activation: Mapping[str, Any]) -> None:
        self.act = activation
        self._hint: int | None = (
            activation.size_hint if isinstance(activation, Activation) else None
        )

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
            if isinstance(self.act, Activation):
                self.act.size_hint = best
        return self._hint


ValueFn = Callable[[_Ctx, Scope], Any]
CostFn = Callable[[_Ctx, Scope], int]


def _value_fn(node: Node) -> ValueFn:
    """What ``node`` denotes in the activation when it is a plain path, else unknown."""
    if isinstance(node, Ident):
        name = node.name

        def ident(ctx: _Ctx, scope: Scope) -> Any:
            if name in scope:
                return scope[name]
            return ctx.act.get(name, _UNKNOWN)

        return ident
    if isinstance(node, Select) and not node.test_only:
        base_fn, fname = _value_fn(node.operand), node.field

        def select(ctx: _Ctx, scope: Scope) -> Any:
            base = base_fn(ctx, scope)
            return base.get(fname, _UNKNOWN) if isinstance(base, dict) else _UNKNOWN

        return select
    if isinstance(node, Call) and node.fn == "_[_]" and isinstance(node.args[1], Lit):
        base_fn, key = _value_fn(node.args[0]), node.args[1].value

        def index(ctx: _Ctx, scope: Scope) -> Any:
            base = base_fn(ctx, scope)
            if isinstance(base, list) and isinstance(key, int) and -len(base) <= key < len(base):
                return base[key]
            if isinstance(base, dict):
                return base.get(key, _UNKNOWN)
            return _UNKNOWN

        return index
    if isinstance(node, Lit):
        lit = node.value
        return lambda ctx, scope: lit
    if isinstance(node, ListLit):
        n = len(node.elems)
        return lambda ctx, scope: [None] * n
    if isinstance(node, Comp) and node.macro in ("map", "filter"):
        return _value_fn(node.target)  # at most as long as its range
    return lambda ctx, scope: _UNKNOWN


def _weight(v: Any) -> int:
    return len(v) if isinstance(v, str | bytes | list | dict) else 1


def _size_fn(node: Node) -> Callable[[_Ctx, Scope], int]:
    value = _value_fn(node)

    def size(ctx: _Ctx, scope: Scope) -> int:
        v = value(ctx, scope)
        if v is _UNKNOWN:
            return ctx.hint()
        return len(v) if isinstance(v, str | bytes | list | dict) else 1

    return size


def _sum(parts: list[int | CostFn], extra: int = 0) -> int | CostFn:
    static = extra + sum(p for p in parts if isinstance(p, int))
    dynamic = [p for p in parts if not isinstance(p, int)]
    if not dynamic:
        return static
    if len(dynamic) == 1:
        only = dynamic[0]
        return lambda ctx, scope: static + only(ctx, scope)
    return lambda ctx, scope: static + sum(f(ctx, scope) for f in dynamic)


def _cost_fn(node: Node) -> int | CostFn:
    """cel-go-like cost of ``node``: an int when it does not depend on the data."""
    if isinstance(node, Lit):
        return 0
    if isinstance(node, Ident):
        return 1
    if isinstance(node, Select):
        return _sum([_cost_fn(node.operand)], 0 if node.test_only else 1)
    if isinstance(node, ListLit):
        return _sum([_cost_fn(e) for e in node.elems], 10)
    if isinstance(node, MapLit):
        return _sum([_cost_fn(x) for kv in node.entries for x in kv], 30)
    if isinstance(node, Comp):
        target, n = _cost_fn(node.target), _size_fn(node.target)
        body = _sum([_cost_fn(a) for a in node.args], 2)
        var, elems = node.var, _value_fn(node.target)

        def comp(ctx: _Ctx, scope: Scope) -> int:
            t = target if isinstance(target, int) else target(ctx, scope)
            if isinstance(body, int):
                return t + n(ctx, scope) * body + 1
            # the body's cost for the largest element stands for every element's
            rng = elems(ctx, scope)
            rep: Any = _UNKNOWN
            if isinstance(rng, list | dict) and rng:
                rep = max(rng, key=_weight)
            return t + n(ctx, scope) * body(ctx, {**scope, var: rep}) + 1

        return comp
    if isinstance(node, Call):
        if node.fn == "_?_:_":
            c, a, b = (_cost_fn(x) for x in node.args)
            if isinstance(a, int) and isinstance(b, int):
                return _sum([c], max(a, b))

            def cond(ctx: _Ctx, scope: Scope) -> int:
                costs = [x if isinstance(x, int) else x(ctx, scope) for x in (c, a, b)]
                return costs[0] + max(costs[1], costs[2])

            return cond
        parts = [_cost_fn(a) for a in node.args]
        if node.target is not None:
            parts.append(_cost_fn(node.target))
        sized: list[Node] = []
        if node.fn in _STRING_FUNCTIONS and node.target is not None:
            sized = [node.target]
        elif node.fn in ("_==_", "_!=_"):
            # comparing stops at the shorter operand: a literal bounds it
            lits = [x for x in node.args if isinstance(x, Lit)]
            if lits:
                v = lits[0].value
                width = len(v) if isinstance(v, str | bytes) else 1
                return _sum(parts, 1 + -(-width // 10))
            sized = list(node.args)
        elif node.fn in ("_+_", "@in"):
            sized = list(node.args)
        if sized and not all(isinstance(x, Lit) for x in sized):
            sizes = [_size_fn(x) for x in sized]
            parts.append(lambda ctx, scope: -(-max(f(ctx, scope) for f in sizes) // 10))
        return _sum(parts, 1)
    return 1


def _depth(node: Node) -> int:
    """How deeply comprehensions nest in ``node`` (a body inside a body counts twice)."""
    if isinstance(node, Comp):
        return max(_depth(node.target), 1 + max((_depth(a) for a in node.args), default=0))
    return max((_depth(c) for c in _children(node)), default=0)


def _children(node: Node) -> list[Node]:
    if isinstance(node, Select):
        return [node.operand]
    if isinstance(node, Call):
        return [*node.args, *([node.target] if node.target is not None else [])]
    if isinstance(node, Comp):
        return [node.target, *node.args]
    if isinstance(node, ListLit):
        return list(node.elems)
    if isinstance(node, MapLit):
        return [x for kv in node.entries for x in kv]
    return []


def _bound_fn(ast: Node) -> Callable[[int], int]:
    """An upper bound of :func:`_cost_fn`'s estimate given the activation's largest size:
    every node costs at most ``31 + n`` (a map literal's 30, a string function's
    ``ceil(n/10)``) and each comprehension level multiplies by at most ``n + 1``, where
    ``n`` is the largest of that size, any literal's length and the number of nodes."""
    nodes = walk(ast)
    longest = max(
        (len(n.value) for n in nodes if isinstance(n, Lit) and isinstance(n.value, str | bytes)),
        default=0,
    )
    floor, count, depth = max(longest, len(nodes)), len(nodes), _depth(ast)

    def bound(largest: int) -> int:
        n = max(largest, floor)
        return int(count * (31 + n) * (n + 1) ** depth)

    return bound


# ---- compiling ----


def _rewrite(src: str, ast: Node, renames: list[tuple[int, str, str]]) -> tuple[str, set[str]]:
    """``src`` with calls renamed to ours: what the checker asks for (``size`` of strings,
    ``string`` of an IP) and ``matches`` with a literal pattern Python reads alike."""
    spots: list[tuple[int, str, str]] = list(renames)
    for n in walk(ast):
        if not isinstance(n, Call) or n.name_pos < 0 or n.fn != "matches":
            continue
        pattern = n.args[-1] if n.args else None
        if (
            isinstance(pattern, Lit)
            and isinstance(pattern.value, str)
            and re2_to_python(pattern.value) is not None
        ):
            spots.append((n.name_pos, "matches", MATCHES_FUNCTION))
    used: set[str] = set()
    for pos, old, new in sorted(spots, reverse=True):
        src = src[:pos] + new + src[pos + len(old) :]
        used.add(new)
    return src, used


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
        source, added = _rewrite(expression, ast, result.renames)
        needed = set(result.functions) | added
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
