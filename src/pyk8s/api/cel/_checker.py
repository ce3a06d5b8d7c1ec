"""Static checks of a parsed expression, with cel-go's messages and positions.

cel-go type-checks a rule against the declared type of ``self`` before accepting it; the
Rust evaluator does not check types at all. This is a gradual checker in cel-go's terms:
``dyn`` matches anything and anything unknown becomes ``dyn``, so it never rejects what
cel-go accepts, and rejects the mistakes people actually make:

* ``undeclared reference to 'x' (in container '')`` -- unknown variables and functions;
* ``undefined field 'x'`` -- selecting a field the schema does not declare (also in ``has``);
* ``type 'int' does not support field selection``;
* ``found no matching overload for 'f' applied to '(int, string)'`` -- operators and
  functions given argument types they have no overload for;
* ``expression of type 'int' cannot be range of a comprehension (must be list, map, or
  dynamic)``;
* ``expected type 'int' but found 'string'`` -- mixed list/map literals (upstream's
  homogeneous aggregate literal validator);
* ``invalid matches argument`` / ``invalid duration argument`` / ``invalid timestamp
  argument`` -- literal arguments that cannot work (upstream's literal validators).

:func:`check` returns the result type, the issues, the free variables referenced and the
functions called (so the caller registers only those with the evaluator).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from ._library import SIGNATURES, SIZE_FUNCTION, STRING_FUNCTION, Sig, go_duration, parse_rfc3339
from ._parser import Call, Comp, Ident, ListLit, Lit, MapLit, Node, Select, Struct
from ._types import (
    AUTHORIZER,
    BOOL,
    BYTES,
    CIDR,
    DECISION,
    DOUBLE,
    DURATION,
    DYN,
    FORMAT,
    GROUP_CHECK,
    INT,
    IP,
    NULL,
    PATH_CHECK,
    QUANTITY,
    RESOURCE_CHECK,
    STRING,
    TIMESTAMP,
    TYPE,
    UINT,
    URL,
    Type,
    list_of,
    map_of,
    optional_of,
)

__all__ = ["Issue", "Result", "check"]

_PRIMS: Final = {
    "int": INT, "uint": UINT, "double": DOUBLE, "string": STRING, "bool": BOOL, "bytes": BYTES,
    "null": NULL, "timestamp": TIMESTAMP, "duration": DURATION, "dyn": DYN, "type": TYPE,
    "Q": QUANTITY, "URL": URL, "IP": IP, "CIDR": CIDR, "Format": FORMAT,
    "Authorizer": AUTHORIZER, "PathCheck": PATH_CHECK, "GroupCheck": GROUP_CHECK,
    "ResourceCheck": RESOURCE_CHECK, "Decision": DECISION,
}  # fmt: skip
#: identifiers that name types (``type(x) == int``)
_TYPE_NAMES: Final = frozenset(
    ["bool", "bytes", "double", "int", "list", "map", "null_type", "string", "type", "uint", "dyn"]
)
_NAMESPACES: Final = frozenset(["sets", "strings", "optional", "math"])


@dataclass(frozen=True, slots=True)
class Issue:
    pos: int
    message: str


@dataclass(slots=True)
class Result:
    type: Type
    issues: list[Issue] = field(default_factory=list)
    variables: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    #: (offset, old name, new name): calls the evaluator must reach under another name
    renames: list[tuple[int, str, str]] = field(default_factory=list)


def _is_param(spec: str) -> bool:
    return spec in ("A", "B")


def _spec_type(spec: str, binds: dict[str, Type]) -> Type:
    if spec in binds:
        return binds[spec]
    if _is_param(spec):
        return DYN
    if spec.startswith("list("):
        return list_of(_spec_type(spec[5:-1], binds))
    if spec.startswith("optional("):
        return optional_of(_spec_type(spec[9:-1], binds))
    if spec.startswith("map("):
        k, v = _split_params(spec[4:-1])
        return map_of(_spec_type(k, binds), _spec_type(v, binds))
    if spec in ("list", "map"):
        return list_of(DYN) if spec == "list" else map_of(DYN, DYN)
    return _PRIMS.get(spec, DYN)


def _split_params(s: str) -> tuple[str, str]:
    depth = 0
    for i, c in enumerate(s):
        depth += c == "("
        depth -= c == ")"
        if c == "," and depth == 0:
            return s[:i].strip(), s[i + 1 :].strip()
    raise ValueError(s)


def compatible(a: Type, b: Type) -> bool:
    """Whether values of ``a`` and ``b`` may meet (cel-go's assignability, made lenient)."""
    if a.is_dyn or b.is_dyn or a.kind == "null" or b.kind == "null":
        return True
    if a.kind != b.kind:
        return False
    if a.kind == "list" or a.kind == "optional":
        assert a.elem is not None and b.elem is not None
        return compatible(a.elem, b.elem)
    if a.kind == "map":
        assert a.elem is not None and b.elem is not None and a.key and b.key
        return compatible(a.key, b.key) and compatible(a.elem, b.elem)
    return True


def _match(spec: str, t: Type, binds: dict[str, Type]) -> bool:
    if t.is_dyn or spec == "T":
        return True
    if _is_param(spec):
        bound = binds.get(spec)
        if bound is None or bound.is_dyn:
            binds[spec] = t
            return True
        return compatible(bound, t)
    if spec in ("list", "map"):
        return t.kind == spec or (spec == "map" and t.kind == "object")
    if spec.startswith("list("):
        return t.kind == "list" and t.elem is not None and _match(spec[5:-1], t.elem, binds)
    if spec.startswith("optional("):
        return t.kind == "optional" and t.elem is not None and _match(spec[9:-1], t.elem, binds)
    if spec.startswith("map("):
        k, v = _split_params(spec[4:-1])
        if t.kind == "object":  # field names are strings; values of any type
            return _match(k, STRING, binds) and _match(v, DYN, binds)
        return (
            t.kind == "map"
            and t.key is not None
            and t.elem is not None
            and _match(k, t.key, binds)
            and _match(v, t.elem, binds)
        )
    want = _PRIMS.get(spec)
    return want is not None and t.kind == want.kind


def _signature(args: list[Type], member: bool) -> str:
    if member:
        return f"{args[0]}.({', '.join(map(str, args[1:]))})"
    return f"({', '.join(map(str, args))})"


class _Checker:
    def __init__(self, decls: dict[str, Type], known_functions: frozenset[str]) -> None:
        self.decls = decls
        self.known = known_functions
        self.res = Result(DYN)
        #: list literals passed to ``format``, exempt from the homogeneity check as upstream
        self.exempt: set[Node] = set()

    def error(self, pos: int, msg: str) -> Type:
        self.res.issues.append(Issue(pos, msg))
        return DYN

    def check(self, node: Node, scope: dict[str, Type]) -> Type:
        if isinstance(node, Lit):
            return _PRIMS[node.kind]
        if isinstance(node, Ident):
            return self.ident(node, scope)
        if isinstance(node, Select):
            return self.select(node, scope)
        if isinstance(node, Comp):
            return self.comp(node, scope)
        if isinstance(node, Call):
            return self.call(node, scope)
        if isinstance(node, ListLit):
            elems = [(e, self.check(e, scope)) for e in node.elems]
            if node in self.exempt:
                return list_of(DYN)
            return list_of(self.homogeneous(elems))
        if isinstance(node, MapLit):
            keys = [(k, self.check(k, scope)) for k, _ in node.entries]
            vals = [(v, self.check(v, scope)) for _, v in node.entries]
            return map_of(self.homogeneous(keys), self.homogeneous(vals))
        if isinstance(node, Struct):
            for _, v in node.fields:
                self.check(v, scope)
            return self.error(node.pos, f"undeclared reference to '{node.name}' (in container '')")
        return DYN

    def homogeneous(self, items: list[tuple[Node, Type]]) -> Type:
        first: Type | None = None
        for node, t in items:
            if t.is_dyn:
                continue
            if first is None:
                first = t
            elif not compatible(first, t):
                self.error(node.pos, f"expected type '{first}' but found '{t}'")
        return first or DYN

    def ident(self, node: Ident, scope: dict[str, Type]) -> Type:
        name = node.name
        if name in scope:
            return scope[name]
        if name in self.decls:
            self.res.variables.add(name)
            return self.decls[name]
        if name in _TYPE_NAMES:
            return TYPE
        return self.error(node.pos, f"undeclared reference to '{name}' (in container '')")

    def select(self, node: Select, scope: dict[str, Type]) -> Type:
        t = self.check(node.operand, scope)
        result: Type
        if t.kind == "object":
            assert t.fields is not None
            ft = t.fields.get(node.field)
            result = (
                ft if ft is not None else self.error(node.pos, f"undefined field '{node.field}'")
            )
        elif t.kind == "map":
            assert t.elem is not None
            result = t.elem
        elif t.is_dyn:
            result = DYN
        else:
            result = self.error(node.pos, f"type '{t}' does not support field selection")
        return BOOL if node.test_only else result

    def comp(self, node: Comp, scope: dict[str, Type]) -> Type:
        rt = self.check(node.target, scope)
        if rt.kind == "list":
            assert rt.elem is not None
            var = rt.elem
        elif rt.kind == "map":
            assert rt.key is not None
            var = rt.key
        elif rt.kind == "object":
            var = STRING
        elif rt.is_dyn:
            var = DYN
        else:
            self.error(
                node.target.pos,
                f"expression of type '{rt}' cannot be range of a comprehension "
                "(must be list, map, or dynamic)",
            )
            var = DYN
        inner = {**scope, node.var: var}
        body = [self.check(a, inner) for a in node.args]
        if node.macro in ("all", "exists", "exists_one"):
            return BOOL
        if node.macro == "filter":
            return list_of(var)
        return list_of(body[-1])  # map

    def qualified(self, node: Node | None) -> str | None:
        """``a.b`` for a target that is a plain (dotted) name, else None."""
        if isinstance(node, Ident):
            return node.name
        if isinstance(node, Select) and not node.test_only:
            base = self.qualified(node.operand)
            return f"{base}.{node.field}" if base else None
        return None

    def call(self, node: Call, scope: dict[str, Type]) -> Type:
        fn, target = node.fn, node.target
        ns = self.qualified(target)
        if (
            ns is not None
            and ns not in scope
            and ns not in self.decls
            and (f"{ns}.{fn}" in SIGNATURES or ns in _NAMESPACES)
        ):
            fn, target = f"{ns}.{fn}", None
        if fn == "_==_" or fn == "_!=_":
            a, b = (self.check(x, scope) for x in node.args)
            if not compatible(a, b):
                return self.error(
                    node.pos, f"found no matching overload for '{fn}' applied to '({a}, {b})'"
                )
            return BOOL
        if fn == "_?_:_":
            c, a, b = (self.check(x, scope) for x in node.args)
            if not (c.is_dyn or c.kind == "bool") or not compatible(a, b):
                return self.error(
                    node.pos, f"found no matching overload for '{fn}' applied to '({c}, {a}, {b})'"
                )
            if a.is_dyn or a.kind == "null":
                return b
            return a
        if fn == "format":
            self.exempt.update(a for a in node.args if isinstance(a, ListLit))
        args = [self.check(a, scope) for a in node.args]
        member = target is not None
        if member:
            assert target is not None
            args.insert(0, self.check(target, scope))
        sigs = SIGNATURES.get(fn)
        if sigs is None:
            if fn in self.known:  # declared by the caller without a signature
                self.res.functions.add(fn)
                return DYN
            return self.error(node.pos, f"undeclared reference to '{fn}' (in container '')")
        if fn[0] != "_" and fn[0] not in "!-@":
            self.res.functions.add(fn)
        self.literals(node, fn)
        if fn == "string" and len(args) == 1 and args[0].kind in (IP.kind, CIDR.kind):
            self.rename(node, fn, STRING_FUNCTION)
        elif fn == "size" and len(args) == 1 and args[0].kind in ("string", "dyn"):
            # the evaluator's size counts a string's bytes; lists and maps keep the native
            # one (ours would convert them back to Python)
            self.rename(node, fn, SIZE_FUNCTION)
        return self.resolve(node, fn, sigs, args, member)

    def rename(self, node: Call, old: str, new: str) -> None:
        if node.name_pos >= 0:
            self.res.renames.append((node.name_pos, old, new))
            self.res.functions.add(new)

    def resolve(self, node: Call, fn: str, sigs: list[Sig], args: list[Type], member: bool) -> Type:
        results: list[Type] = []
        for is_member, params, result in sigs:
            if is_member != member or len(params) != len(args):
                continue
            binds: dict[str, Type] = {}
            if all(_match(p, a, binds) for p, a in zip(params, args, strict=True)):
                results.append(_spec_type(result, binds))
        if not results:
            sig = _signature(args, member)
            return self.error(node.pos, f"found no matching overload for '{fn}' applied to '{sig}'")
        first = results[0]
        if all(str(r) == str(first) for r in results[1:]):
            return first
        return DYN

    def literals(self, node: Call, fn: str) -> None:
        """Upstream's literal validators: regex, duration and timestamp literals."""
        if not node.args or not isinstance(node.args[0], Lit):
            return
        lit = node.args[0]
        if lit.kind != "string" or not isinstance(lit.value, str):
            return
        if fn == "matches" and node.target is not None:
            if not _valid_regex(lit.value):
                self.error(lit.pos, "invalid matches argument")
        elif fn == "duration" and node.target is None:
            try:
                go_duration(lit.value)
            except ValueError:
                self.error(lit.pos, "invalid duration argument")
        elif fn == "timestamp" and node.target is None:
            try:
                parse_rfc3339(lit.value)
            except ValueError:
                self.error(lit.pos, "invalid timestamp argument")


def _valid_regex(pattern: str) -> bool:
    """Whether the evaluator's regex engine (RE2 syntax, as cel-go's) accepts ``pattern``."""
    import cel  # the evaluator itself judges its own regex syntax

    try:
        cel.evaluate("''.matches(p)", {"p": pattern})
    except Exception:
        return False
    return True


def check(
    node: Node, decls: dict[str, Type], known_functions: frozenset[str] = frozenset()
) -> Result:
    """Check ``node`` with variables ``decls``; ``known_functions`` are extra untyped names."""
    c = _Checker(decls, known_functions)
    c.res.type = c.check(node, {})
    return c.res
