"""CEL for the API server: CRD ``x-kubernetes-validations`` and admission policies.

Why this package exists: Kubernetes lets API authors state rules in the Common Expression
Language (``self.replicas <= self.maxReplicas``), and users read the errors those rules
produce. We run the real language through a maintained evaluator and add what Kubernetes
adds: its extension functions, the typing of ``self`` from a structural schema, transition
rules with ``oldSelf``, cost limits, and upstream's messages and field paths.

Choice of evaluator, measured with ``bench/cel/run.py`` on this machine (12 rules from
upstream's documentation, two of them needing a function registered from Python,
``lowerAscii`` and ``sum``; p50 per call; a plain dict lookup doing the first rule's work
takes 0.1-0.3 µs in the same run)::

    package                      compile p50   evaluate p50   custom functions
    common-expression-language   9-45 µs       4-20 µs        yes (Python callables)
    cel-python (celpy)           120-660 µs    200-1700 µs    yes (Python callables)
    pyk8s.api.cel (this layer)   115-490 µs    5-35 µs        (cold compile; 0.8 µs cached)

and ``validate_rules`` on a custom resource update with 4 rules on ``spec`` (one quadratic
over a list, as Gateway API's uniqueness rules are) and 2 rules on each list item: 1.5 ms
p50 with 16 items, 13 ms with 100 (mostly the evaluator's comprehensions). The machine is
shared and noisy: rerun the script for current numbers.

We use ``common-expression-language`` (Rust bindings to cel-rust): 40-200x faster to
evaluate, and its syntax errors are cel-go's own text. Neither package type-checks or
counts cost, and only ``cel-python`` can hold Python objects as values. What the evaluator
lacks we add: a parser and gradual type checker for the errors cel-go's checker gives
(:mod:`._checker`), the Kubernetes libraries in Python (:mod:`._library`; Quantity, URL, IP,
CIDR and Format travel as one-key maps), code-point ``size`` for strings (the evaluator
counts bytes), and
a cost estimate (:mod:`._program`). ``matches`` with a literal pattern runs in Python with a
cached regex, translated from RE2 where the meaning is surely the same (the evaluator
compiles the regex on every call, 15-30 µs).

Supported: CEL core and macros; cel-go ext strings (``charAt indexOf lastIndexOf lowerAscii
upperAscii replace split substring trim join reverse strings.quote format``) and sets
(``sets.contains sets.equivalent sets.intersects``); Kubernetes lists (``isSorted sum min
max indexOf lastIndexOf``), regex (``find findAll``), urls (``url isURL getScheme getHost
getHostname getPort getEscapedPath getQuery``), quantity (``quantity isQuantity compareTo
isLessThan isGreaterThan add sub asInteger asApproximateFloat sign isInteger``), ip (``ip
isIP ip.isCanonical family isUnspecified isLoopback isLinkLocalMulticast isLinkLocalUnicast
isGlobalUnicast string``), cidr (``cidr isCIDR containsIP containsCIDR ip prefixLength
masked string``), format (``format.dns1123Label()`` and the other named formats,
``format.named``, ``validate``); timestamp getters with a time zone; ``optional.of``/
``optional.none`` and ``hasValue``/``value``/``orValue`` (for ``optionalOldSelf``); authz
(``authorizer.group(g).resource(r).subresource(s).namespace(n).name(x).check(verb)``,
``authorizer.path(p).check(verb)``, ``authorizer.serviceAccount(ns, name)``, and the
decision's ``allowed reason errored error``: ``check`` asks the authorizer the evaluating
thread set with :func:`authorizer_hook`; the values travel as one-key maps). All 657
``x-kubernetes-validations`` rules of the Gateway API v1.6 CRDs compile, and its 106 example
objects pass them.

Typing follows upstream's ``SchemaDeclType`` (:mod:`._types`): ``x-kubernetes-int-or-string``
is ``dyn``; ``x-kubernetes-preserve-unknown-fields`` adds nothing (unknown fields cannot be
selected, and a property without a type is not visible to rules), though unknown fields
still take part in ``self == oldSelf``.

Missing (the evaluator cannot, or not yet): the optional syntax ``self.?x`` / ``self[?k]``
and ``cel.bind`` (parse errors), two-variable comprehensions (``all(i, v, ...)``), the authz
library's ``fieldSelector``/``labelSelector`` and ``authorizer.requestResource``,
``type(x) == net.IP``-style type names of the Kubernetes types,
``string(timestamp)`` in RFC 3339 with ``Z`` (the evaluator prints ``+00:00``),
sub-microsecond durations, list equality that ignores order for ``set``/``map`` lists,
runtime (not estimated) cost, and the CRD-creation static cost limits (estimated cost per
rule and per CRD). ``find``/``findAll`` use Python's ``re`` (RE2 patterns translated where
the meaning is the same, else read as Python patterns).

Exceptions::

    Exception
     └── CELError    compile ("compilation failed: ERROR: <input>:1:6: ...") or runtime
                     ("no such key: foo") failure; ``message`` is upstream's text
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any, Final

from pyk8s.api.errors import FieldError

from . import _noshell  # noqa: F401  (first: before any module imports ``cel``)
from ._library import AUTHZ, AuthorizerHook, authorizer_value
from ._parser import Ident, ParseError, Select, parse, walk
from ._program import (
    PER_CALL_LIMIT,
    Activation,
    CELError,
    Program,
    compile_checked,
    compile_expression,
)
from ._rules import (
    MAX_MESSAGE_EXPRESSION_BYTES,
    RUNTIME_COST_BUDGET,
    SchemaValidator,
    compile_schema_rules,
)
from ._types import (
    AUTHORIZER,
    BOOL,
    DYN,
    INT,
    STRING,
    TIMESTAMP,
    Type,
    list_of,
    map_of,
    object_of,
    schema_type,
)
from ._values import converter

__all__ = [
    "AUTHORIZER",
    "BOOL",
    "DYN",
    "INT",
    "MAX_MESSAGE_EXPRESSION_BYTES",
    "PER_CALL_LIMIT",
    "RUNTIME_COST_BUDGET",
    "STRING",
    "TIMESTAMP",
    "Activation",
    "AuthorizerHook",
    "CELError",
    "Program",
    "SchemaValidator",
    "Type",
    "authorizer_hook",
    "authorizer_value",
    "compile_checked",
    "compile_expression",
    "compile_schema_rules",
    "list_of",
    "map_of",
    "object_of",
    "schema_type",
    "selected_fields",
    "to_cel",
    "validate_rules",
]

_VALIDATORS: Final[OrderedDict[int, tuple[dict[str, Any], SchemaValidator]]] = OrderedDict()
_MAX_VALIDATORS: Final = 256


def _validator(schema: dict[str, Any]) -> SchemaValidator:
    """The compiled validator for this schema object (an LRU keyed by identity)."""
    key = id(schema)
    hit = _VALIDATORS.get(key)
    if hit is not None and hit[0] is schema:
        _VALIDATORS.move_to_end(key)
        return hit[1]
    v = SchemaValidator(schema)
    _VALIDATORS[key] = (schema, v)  # holding the schema keeps its id from being reused
    if len(_VALIDATORS) > _MAX_VALIDATORS:
        _VALIDATORS.popitem(last=False)
    return v


def validate_rules(
    schema: dict[str, Any],
    obj: Any,
    old: Any | None,
    path: str = "",
    *,
    warnings: list[str] | None = None,
) -> list[FieldError]:
    """Run every x-kubernetes-validations rule of ``schema`` (an openAPIV3Schema) on ``obj``.

    ``old`` is the stored object on update (None on create): transition rules run where an
    old value correlates. ``path`` prefixes field paths ("" = the object root, printed as
    upstream's ``<nil>`` for root rules). Ratcheted failures (unchanged values) are appended
    to ``warnings`` when given, as upstream returns them as warnings. The compiled rules
    are cached per schema object: pass the same dict for the same CRD version, and do not
    mutate it in place.
    """
    return _validator(schema).validate(obj, old, path, warnings=warnings)


def to_cel(value: Any, schema: Mapping[str, Any]) -> Any:
    """``value`` (JSON) as the CEL value rules see for ``schema`` (numbers, formats, names)."""
    conv = converter(dict(schema))
    return value if conv is None or value is None else conv(value)


@contextlib.contextmanager
def authorizer_hook(hook: AuthorizerHook) -> Iterator[None]:
    """Within the block, ``check`` calls of the authz library (``authorizer.group('apps')
    .resource('deployments').check('create')``) on this thread ask ``hook``."""
    previous = AUTHZ.hook
    AUTHZ.hook = hook
    try:
        yield
    finally:
        AUTHZ.hook = previous


def selected_fields(expression: str, variable: str) -> frozenset[str]:
    """The fields ``expression`` selects from ``variable`` (``variables.x`` -> ``x``);
    empty when it does not parse (the caller compiled it, so that is syntax this parser
    does not know)."""
    try:
        ast = parse(expression)
    except ParseError:
        return frozenset()
    return frozenset(
        n.field
        for n in walk(ast)
        if isinstance(n, Select) and isinstance(n.operand, Ident) and n.operand.name == variable
    )
