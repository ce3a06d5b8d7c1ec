"""CRD ``x-kubernetes-validations``: checking rules at CRD creation, running them on writes.

Upstream's apiextensions-apiserver (v1.32) is the model throughout:

* :func:`compile_schema_rules` is the x-kubernetes-validations part of
  ``ValidateCustomResourceDefinitionOpenAPISchema``: the rule fields (rule, message,
  messageExpression, reason, fieldPath, optionalOldSelf) and then compilation against the
  type of ``self`` at that node, with the same field paths
  (``...openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule``) and details. A
  compile error prints the rule as Go's ``%#v`` of the internal ValidationRule, exactly as
  kubectl shows it. Rules inside ``allOf``/``anyOf``/``oneOf``/``not`` get the field checks
  but are not compiled (upstream gives them no CEL context either).
* :class:`SchemaValidator` is ``cel.Validator``: rules run on every non-null value with
  ``self`` bound to it; transition rules (those referring to ``oldSelf``) only where an old
  value is correlated -- object properties and map entries by key, items of
  ``x-kubernetes-list-type: map`` lists by their ``x-kubernetes-list-map-keys``, never
  items of atomic or set lists -- unless ``optionalOldSelf``, which binds ``oldSelf`` to an
  optional. Errors read like upstream's (``spec: Invalid value: "object": <message>``, the
  root path prints as ``<nil>``), including runtime failures and cost exhaustion.
* Ratcheting (CRDValidationRatcheting, on by default in v1.32): when a value is unchanged
  from its correlated old value, failures of rules that do not use ``oldSelf`` become
  warnings instead of errors, so an old object can still be updated after a rule is added.
* Cost: each rule's cost is estimated before it runs (see :mod:`._program`) and checked
  against the per-call limit (1,000,000) and the per-object budget (10,000,000).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

import cel
from pyk8s.api.errors import (
    FieldError,
    FieldErrorType,
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
)
from pyk8s.api.gofmt import go_quote

from ._program import (
    COST_LIMIT_MESSAGE,
    PER_CALL_LIMIT,
    Activation,
    CELError,
    Program,
    compile_checked,
)
from ._types import Type, optional_of, schema_type
from ._values import Convert, converter

__all__ = [
    "MAX_MESSAGE_EXPRESSION_BYTES",
    "RUNTIME_COST_BUDGET",
    "SchemaValidator",
    "compile_schema_rules",
]

#: upstream's celconfig.RuntimeCELCostBudget (per custom resource)
RUNTIME_COST_BUDGET: Final = 10_000_000
#: upstream's celconfig.MaxEvaluatedMessageExpressionSizeBytes
MAX_MESSAGE_EXPRESSION_BYTES: Final = 5 * 1024
_REASONS: Final = (
    "FieldValueDuplicate",
    "FieldValueForbidden",
    "FieldValueInvalid",
    "FieldValueRequired",
)
_NEWLINES: Final = re.compile(r"[\n\r]+")
_BUDGET_GONE: Final = (
    "validation failed due to running out of cost budget, no further validation rules will be run"
)


# ---- Go renderings ----


def _invalid_rule(path: str, rule: dict[str, Any], detail: str) -> FieldError:
    # the bad value is a Go struct, printed raw: carry it in the detail
    from pyk8s.api.validation.apiextensions import go_repr_validation_rule  # lazy: a cycle

    return FieldError(
        FieldErrorType.INVALID, path, detail=f"{go_repr_validation_rule(rule)}: {detail}"
    )


# ---- paths ----


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _key(path: str, key: object) -> str:
    return f"{path}[{key}]"


def _shown(path: str) -> str:
    """A nil field.Path prints as ``<nil>``."""
    return path or "<nil>"


_UNQUOTE: Final = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
                   "v": "\v", "'": "'", "\\": "\\"}  # fmt: skip


def _tokens(fp: str) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(fp):
        c = fp[i]
        if c == "'":
            j = i + 1
            while j < len(fp) and not (fp[j] == "'" and fp[j - 1] != "\\"):
                j += 1
            out.append(fp[i : j + 1])
            i = j + 1
        elif c in ".[]":
            out.append(c)
            i += 1
        else:
            j = i
            while j < len(fp) and fp[j] not in ".[]":
                j += 1
            out.append(fp[i:j])
            i = j
    return out


def normalize_field_path(fp: str, schema: dict[str, Any]) -> str | None:
    """Upstream's ``ValidFieldPath``: ``.spec['x']`` → ``spec.x``; None when not valid."""
    toks = _tokens(fp)
    out = ""
    s: Any = schema
    i = 0
    while i < len(toks):
        tok = toks[i]
        if tok == "[":
            if i + 2 >= len(toks) or toks[i + 2] != "]":
                return None
            q = toks[i + 1]
            if len(q) < 2 or q[0] != "'" or q[-1] != "'":
                return None
            try:
                name = re.sub(r"\\(.)", lambda m: _UNQUOTE[m.group(1)], q[1:-1])
            except KeyError:
                return None
            i += 3
        elif tok == ".":
            if i + 1 >= len(toks):
                return None
            name = toks[i + 1]
            i += 2
        else:
            return None
        if not isinstance(s, dict):
            return None
        if s.get("properties") is not None:
            if name not in s["properties"]:
                return None
            s = s["properties"][name]
            out = _child(out, name)
        elif isinstance(s.get("additionalProperties"), dict):
            s = s["additionalProperties"]
            out = _key(out, name)
        else:
            return None
    return out


# ---- the validator ----


def _rule_error_string(rule: dict[str, Any]) -> str:
    msg = rule.get("message") or ""
    return msg.strip() if msg else str(rule.get("rule") or "").strip()


def _decls(t: Type, optional_old_self: bool) -> dict[str, Type]:
    return {"self": t, "oldSelf": optional_of(t) if optional_old_self else t}


@dataclass(slots=True)
class _Rule:
    spec: dict[str, Any]
    program: Program | None = None
    message_program: Program | None = None
    error: str | None = None
    uses_old_self: bool = False
    optional_old_self: bool = False
    field_path: str = ""
    #: upstream's ruleErrorString (the message, else the rule) and ruleMessageOrDefault
    error_string: str = ""
    default_message: str = ""


def _compile_rules(schema: dict[str, Any], root: bool, specs: list[Any]) -> list[_Rule]:
    t = schema_type(schema, root)
    out: list[_Rule] = []
    for spec in specs:
        r = _Rule(spec if isinstance(spec, dict) else {})
        r.error_string = _rule_error_string(r.spec)
        r.default_message = str(r.spec.get("message") or "").strip() or (
            f"failed rule: {r.error_string}"
        )
        out.append(r)
        text = str(r.spec.get("rule") or "")
        if not text.strip():
            continue
        if t is None:
            r.error = "failed to convert to declType for CEL validation rules"
            continue
        r.optional_old_self = bool(r.spec.get("optionalOldSelf"))
        decls = _decls(t, r.optional_old_self)
        try:
            r.program = compile_checked(text, decls)
        except CELError as e:
            r.error = e.message
            continue
        r.uses_old_self = "oldSelf" in r.program.uses
        mexpr = str(r.spec.get("messageExpression") or "")
        if mexpr.strip():
            try:
                r.message_program = compile_checked(mexpr, decls)
            except CELError:
                r.message_program = None
        fp = r.spec.get("fieldPath")
        if fp:
            r.field_path = normalize_field_path(str(fp), schema) or ""
    return out


class _Node:
    __slots__ = (
        "additional",
        "all_of",
        "convert",
        "items",
        "map_keys",
        "properties",
        "rules",
        "type_name",
        "uses_old_self",
    )

    def __init__(self, schema: dict[str, Any], root: bool, rules: list[Any] | None = None) -> None:
        """A node for ``schema``; with ``rules``, a node for an allOf entry's rules only."""
        self.type_name = str(schema.get("type") or "")
        own = rules is None
        specs = (schema.get("x-kubernetes-validations") or []) if own else (rules or [])
        self.rules = _compile_rules(schema, root, specs)
        #: whether any rule (or its messageExpression) here refers to oldSelf
        self.uses_old_self = any(
            "oldSelf" in p.uses for r in self.rules for p in (r.program, r.message_program) if p
        )
        self.convert: Convert | None = converter(schema)
        self.properties: dict[str, _Node] = {}
        self.additional: _Node | None = None
        self.items: _Node | None = None
        self.map_keys: list[str] | None = None
        self.all_of: list[_Node] = []
        if not own:
            return
        for name, prop in (schema.get("properties") or {}).items():
            sub = _build(prop, _embedded(prop))
            if sub is not None:
                self.properties[name] = sub
        ap = schema.get("additionalProperties")
        self.additional = _build(ap, _embedded(ap)) if isinstance(ap, dict) else None
        items = schema.get("items")
        self.items = _build(items, _embedded(items)) if isinstance(items, dict) else None
        if schema.get("x-kubernetes-list-type") == "map":
            self.map_keys = list(schema.get("x-kubernetes-list-map-keys") or [])
        # allOf entries' rules run against this node's value, typed by this node's schema
        # (rules nested in an allOf entry's own properties are not run)
        for entry in schema.get("allOf") or []:
            if isinstance(entry, dict) and entry.get("x-kubernetes-validations"):
                self.all_of.append(_Node(schema, root, entry["x-kubernetes-validations"]))


def _embedded(schema: Any) -> bool:
    return isinstance(schema, dict) and bool(schema.get("x-kubernetes-embedded-resource"))


def _has_rules(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    if schema.get("x-kubernetes-validations"):
        return True
    subs: list[Any] = list((schema.get("properties") or {}).values())
    subs += [schema.get("additionalProperties"), schema.get("items")]
    if any(
        isinstance(e, dict) and e.get("x-kubernetes-validations") for e in schema.get("allOf") or []
    ):
        return True
    return any(_has_rules(s) for s in subs)


def _build(schema: Any, root: bool) -> _Node | None:
    return _Node(schema, root) if _has_rules(schema) else None


class _Ratchet:
    """Whether a value is unchanged from its correlated old value (upstream's ratcheting)."""

    __slots__ = ("_equal", "correlated", "old", "parent", "value")

    def __init__(self, value: Any, old: Any, correlated: bool, parent: _Ratchet | None) -> None:
        self.value = value
        self.old = old
        self.correlated = correlated
        self.parent = parent
        self._equal: bool | None = None

    def equal(self) -> bool:
        if not self.correlated:
            return self.parent.equal() if self.parent is not None else False
        if self._equal is None:
            self._equal = self.value == self.old
        return self._equal


_NO_RATCHET: Final = _Ratchet(None, None, False, None)
_MISSING: Final = object()


@dataclass(slots=True)
class _Run:
    budget: int
    errors: list[FieldError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stopped: bool = False


def _for_reason(path: str, type_name: str, detail: str, reason: Any) -> FieldError:
    if reason == "FieldValueForbidden":
        return forbidden(path, detail)
    if reason == "FieldValueRequired":
        return required(path, detail)
    if reason == "FieldValueDuplicate":
        return duplicate(path, type_name)
    return invalid(path, type_name, detail)


class SchemaValidator:
    """The x-kubernetes-validations rules of one openAPIV3Schema, compiled once.

    ``SchemaValidator(schema)`` compiles every rule (compile errors surface when the rule
    would run, as upstream's "rule compile error: ..."); :meth:`validate` runs them.
    """

    __slots__ = ("_root",)

    def __init__(self, schema: dict[str, Any], *, resource_root: bool = True) -> None:
        self._root = _build(schema, resource_root)

    def validate(
        self,
        obj: Any,
        old: Any | None,
        path: str = "",
        *,
        warnings: list[str] | None = None,
        budget: int = RUNTIME_COST_BUDGET,
    ) -> list[FieldError]:
        """Errors of ``obj`` (an update if ``old`` is given); ratcheted ones go to ``warnings``."""
        if self._root is None:
            return []
        run = _Run(budget)
        ratchet = _Ratchet(obj, old, old is not None, None)
        self._validate(self._root, obj, old, path, ratchet, run, root=True)
        if warnings is not None:
            warnings.extend(run.warnings)
        return run.errors

    def _validate(
        self,
        node: _Node,
        value: Any,
        old: Any,
        path: str,
        ratchet: _Ratchet,
        run: _Run,
        root: bool = False,
    ) -> None:
        if value is None or run.stopped:
            return
        if node.rules:
            self._rules(node, value, old, path, ratchet, run)
        for extra in node.all_of:
            if run.stopped:
                return
            parent = ratchet.parent or _NO_RATCHET
            self._validate(extra, value, old, path, _Ratchet(value, old, False, parent), run)
        if isinstance(value, dict):
            old_map = old if isinstance(old, dict) else None
            for k, v in value.items():
                if run.stopped:
                    return
                sub = node.properties.get(k)
                if sub is not None:
                    child = _child(path, k)
                elif node.additional is not None:
                    sub, child = node.additional, _key(path, k)
                else:
                    continue
                ov = old_map.get(k, _MISSING) if old_map is not None else _MISSING
                if root and k in ("apiVersion", "kind"):
                    r = _NO_RATCHET
                else:
                    r = _Ratchet(v, ov, ov is not _MISSING, ratchet)
                self._validate(sub, v, None if ov is _MISSING else ov, child, r, run)
        elif isinstance(value, list) and node.items is not None:
            olds = _old_items(node.map_keys, old)
            for i, v in enumerate(value):
                if run.stopped:
                    return
                ov = _MISSING
                if olds is not None and isinstance(v, dict):
                    ov = olds.get(_item_key(node.map_keys or [], v), _MISSING)
                r = _Ratchet(v, ov, ov is not _MISSING, ratchet)
                self._validate(node.items, v, None if ov is _MISSING else ov, _key(path, i), r, run)

    def _rules(
        self, node: _Node, value: Any, old: Any, path: str, ratchet: _Ratchet, run: _Run
    ) -> None:
        typ = node.type_name
        here = _shown(path)
        if run.budget <= 0:
            run.errors.append(invalid(here, typ, _BUDGET_GONE))
            run.stopped = True
            return
        conv = node.convert
        self_val = conv(value) if conv is not None else value
        old_val = None if old is None else (conv(old) if conv is not None else old)
        # one activation per variant, shared by the rules here (converted once)
        plain: Activation | None = None
        optional: Activation | None = None
        for r in node.rules:
            if r.error is not None:
                run.errors.append(invalid(here, typ, f"rule compile error: {r.error}"))
                continue
            prog = r.program
            if prog is None:
                continue
            if r.uses_old_self and old is None and not r.optional_old_self:
                continue  # transition rules need a correlated old value
            if r.optional_old_self:
                if optional is None:
                    opt = cel.OptionalValue.none() if old is None else cel.OptionalValue.of(old_val)
                    optional = Activation({"self": self_val, "oldSelf": opt})
                act = optional
            else:
                if plain is None:
                    plain = Activation({"self": self_val})
                    if old is not None and node.uses_old_self:
                        plain["oldSelf"] = old_val
                act = plain
            res = r.error_string
            cost = prog.cost(act)
            if cost > PER_CALL_LIMIT:
                run.errors.append(
                    invalid(
                        here,
                        typ,
                        f"'{COST_LIMIT_MESSAGE}': no further validation rules will be run "
                        f"due to call cost exceeds limit for rule: {res}",
                    )
                )
                run.stopped = True
                return
            if cost > run.budget:
                run.errors.append(invalid(here, typ, _BUDGET_GONE))
                run.stopped = True
                return
            run.budget -= cost
            try:
                result = prog.evaluate(act, cost_limit=None)
            except CELError as e:
                if e.message.startswith("no such overload"):
                    detail = (
                        f"'{e.message}': call arguments did not match a supported operator, "
                        f"function or macro signature for rule: {res}"
                    )
                else:
                    detail = f"{e.message} evaluating rule: {res}"
                run.errors.append(invalid(here, typ, detail))
                continue
            if result is True:
                continue
            field_path = _child(path, r.field_path) if r.field_path else here
            detail = self._message(r, act, field_path, typ, run)
            if run.stopped:
                return
            err = _for_reason(field_path, typ, detail, r.spec.get("reason"))
            if not r.uses_old_self and ratchet.equal():
                run.warnings.append(str(err))
            else:
                run.errors.append(err)

    def _message(self, r: _Rule, act: Activation, path: str, typ: str, run: _Run) -> str:
        fallback = r.default_message
        mp = r.message_program
        if mp is None:
            return fallback
        cost = mp.cost(act)
        if cost > PER_CALL_LIMIT:
            src = go_quote(mp.expression)
            run.errors.append(
                invalid(
                    path,
                    typ,
                    "no further validation rules will be run due to call cost exceeds limit "
                    f"for messageExpression: {src}",
                )
            )
            run.stopped = True
            return fallback
        if cost > run.budget:
            run.errors.append(
                invalid(
                    path,
                    typ,
                    "messageExpression evaluation failed due to running out of cost budget, "
                    "no further validation rules will be run",
                )
            )
            run.stopped = True
            return fallback
        run.budget -= cost
        try:
            msg = mp.evaluate(act, cost_limit=None)
        except CELError:
            return fallback
        if not isinstance(msg, str):
            return fallback
        msg = msg.strip()
        if not msg or len(msg.encode()) > MAX_MESSAGE_EXPRESSION_BYTES or _NEWLINES.search(msg):
            return fallback
        return msg


def _item_key(keys: list[str], item: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(item.get(k) for k in keys)


def _old_items(keys: list[str] | None, old: Any) -> dict[tuple[Any, ...], Any] | None:
    """Old items of a ``map`` list by key (later duplicates lose, as upstream's map list)."""
    if keys is None or not isinstance(old, list):
        return None
    out: dict[tuple[Any, ...], Any] = {}
    for item in old:
        if isinstance(item, dict):
            out.setdefault(_item_key(keys, item), item)
    return out


# ---- CRD creation ----


@dataclass(slots=True)
class _Found:
    schema: list[FieldError] = field(default_factory=list)
    cel: list[FieldError] = field(default_factory=list)


def _rule_fields(schema: dict[str, Any], path: str, found: _Found) -> None:
    for i, rule in enumerate(schema.get("x-kubernetes-validations") or []):
        if not isinstance(rule, dict):
            continue
        at = f"{path}.x-kubernetes-validations[{i}]"
        text = str(rule.get("rule") or "").strip()
        message = str(rule.get("message") or "")
        msg = message.strip()
        errs = found.schema
        if not text:
            errs.append(required(f"{at}.rule", "rule is not specified"))
        elif message and not msg:
            errs.append(invalid(f"{at}.message", message, "message must be non-empty if specified"))
        elif _NEWLINES.search(msg):
            errs.append(invalid(f"{at}.message", message, "message must not contain line breaks"))
        elif _NEWLINES.search(text) and not msg:
            errs.append(
                required(f"{at}.message", "message must be specified if rule contains line breaks")
            )
        mexpr = str(rule.get("messageExpression") or "")
        if mexpr and not mexpr.strip():
            errs.append(
                required(
                    f"{at}.messageExpression", "messageExpression must be non-empty if specified"
                )
            )
        reason = rule.get("reason")
        if reason is not None and reason not in _REASONS:
            errs.append(not_supported(f"{at}.reason", reason, list(_REASONS)))
        fp = rule.get("fieldPath")
        if fp is not None and fp != "":
            fp = str(fp)
            if not fp.strip():
                errs.append(
                    invalid(f"{at}.fieldPath", fp, "fieldPath must be non-empty if specified")
                )
            if _NEWLINES.search(fp):
                errs.append(
                    invalid(f"{at}.fieldPath", fp, "fieldPath must not contain line breaks")
                )
            if normalize_field_path(fp, schema) is None:
                errs.append(invalid(f"{at}.fieldPath", fp, "fieldPath must be a valid path"))


def _compile_node(
    schema: dict[str, Any], path: str, root: bool, uncorrelatable: str | None, found: _Found
) -> None:
    rules = schema.get("x-kubernetes-validations") or []
    t = schema_type(schema, root)
    if t is None:
        found.cel.append(
            FieldError(
                FieldErrorType.INTERNAL,
                f"{path}.x-kubernetes-validations",
                detail="internal error: failed to retrieve type information for "
                "x-kubernetes-validations",
            )
        )
        return
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        at = f"{path}.x-kubernetes-validations[{i}]"
        text = str(rule.get("rule") or "")
        if not text.strip():
            continue
        opt = rule.get("optionalOldSelf")
        decls = _decls(t, bool(opt))
        try:
            prog = compile_checked(text, decls)
        except CELError as e:
            found.cel.append(_invalid_rule(f"{at}.rule", rule, e.message))
            continue
        rtype = prog.result_type
        if not rtype.is_dyn and rtype.kind != "bool":
            found.cel.append(
                _invalid_rule(f"{at}.rule", rule, "cel expression must evaluate to a bool")
            )
            continue
        mexpr = str(rule.get("messageExpression") or "")
        if mexpr.strip():
            try:
                mprog = compile_checked(mexpr, decls)
            except CELError as e:
                found.cel.append(
                    _invalid_rule(
                        f"{at}.messageExpression",
                        rule,
                        f"messageExpression compilation failed: {e.issues or e.message}",
                    )
                )
            else:
                mt = mprog.result_type
                if not mt.is_dyn and mt.kind != "string":
                    found.cel.append(
                        _invalid_rule(
                            f"{at}.messageExpression",
                            rule,
                            "messageExpression must evaluate to a string",
                        )
                    )
        if "oldSelf" in prog.uses:
            if uncorrelatable is not None:
                found.cel.append(
                    invalid(
                        f"{at}.rule",
                        text,
                        "oldSelf cannot be used on the uncorrelatable portion of the schema "
                        f"within {uncorrelatable}",
                    )
                )
        elif opt is not None:
            found.cel.append(
                invalid(
                    f"{at}.optionalOldSelf", opt, "may not be set if oldSelf is not used in rule"
                )
            )


def _walk(
    schema: Any,
    path: str,
    root: bool,
    uncorrelatable: str | None,
    compile_here: bool,
    found: _Found,
) -> None:
    if not isinstance(schema, dict):
        return
    before = len(found.schema)
    ap = schema.get("additionalProperties")
    if isinstance(ap, dict):
        _walk(
            ap, f"{path}.additionalProperties", _embedded(ap), uncorrelatable, compile_here, found
        )
    props = schema.get("properties") or {}
    map_type = schema.get("x-kubernetes-map-type")
    sub_unc = uncorrelatable
    if sub_unc is None and map_type not in (None, "granular", "atomic"):
        sub_unc = path
    for name, prop in props.items():
        _walk(prop, f"{path}.properties[{name}]", _embedded(prop), sub_unc, compile_here, found)
    if isinstance(schema.get("not"), dict):
        _walk(schema["not"], f"{path}.not", False, uncorrelatable, False, found)
    for key in ("allOf", "oneOf", "anyOf"):
        for i, sub in enumerate(schema.get(key) or []):
            _walk(sub, f"{path}.{key}[{i}]", False, uncorrelatable, False, found)
    items = schema.get("items")
    if isinstance(items, dict):
        item_unc = uncorrelatable
        if item_unc is None and schema.get("x-kubernetes-list-type") != "map":
            item_unc = path
        _walk(items, f"{path}.items", _embedded(items), item_unc, compile_here, found)
    _rule_fields(schema, path, found)
    # like upstream: schema errors at this level or deeper skip the compilation here
    if schema.get("x-kubernetes-validations") and compile_here and len(found.schema) == before:
        _compile_node(schema, path, root, uncorrelatable, found)


def compile_schema_rules(schema: dict[str, Any], path: str) -> list[FieldError]:
    """Errors in the x-kubernetes-validations of a CRD version's ``openAPIV3Schema``.

    ``path`` is where the schema sits (``spec.versions[0].schema.openAPIV3Schema``).
    Returns rule-field errors first, then compilation errors, as upstream does.
    """
    found = _Found()
    _walk(schema, path, True, None, True, found)
    return found.schema + found.cel
