"""ValidatingAdmissionPolicy without the server: defaults, the CEL environment, compiling, typing.

Why this exists: three places need the same picture of a policy's expressions. Validation
(on create and update) refuses expressions that do not compile in the environment upstream
declares (``object``, ``oldObject``, ``params``, ``request``, ``namespaceObject``,
``authorizer``, ``variables``); the admission plugin runs the compiled programs; and the
status controller compiles them again with ``object`` typed from the matched kinds' schemas
and reports what fails as ``status.typeChecking.expressionWarnings``. All three compile
through :func:`compile_policy` so they agree on what an expression means.

Upstream's environment (k8s.io/apiserver/pkg/admission/plugin/cel): ``object``,
``oldObject`` and ``params`` are ``dyn``; ``request`` is ``kubernetes.AdmissionRequest`` and
``namespaceObject`` ``kubernetes.Namespace`` (their fields as declared upstream, timestamps
typed); ``authorizer`` is the authz library's type (messageExpressions do not see it);
``variables`` is an object whose fields are the policy's variables compiled so far, typed by
their expressions. Result types: a validation must be ``bool``, a messageExpression
``string``, an audit annotation's valueExpression ``string`` or ``null``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pyk8s.api import cel
from pyk8s.api.cel import (
    AUTHORIZER,
    BOOL,
    DYN,
    INT,
    STRING,
    TIMESTAMP,
    CELError,
    Program,
    Type,
    compile_checked,
    list_of,
    map_of,
    object_of,
    schema_type,
    selected_fields,
)
from pyk8s.api.jsoncopy import copy_json
from pyk8s.api.schema import Schemas, types_of

__all__ = [
    "FAIL",
    "IGNORE",
    "NAMESPACE_TYPE",
    "REQUEST_TYPE",
    "CompiledPolicy",
    "Expression",
    "builtin_type",
    "compile_policy",
    "default_binding",
    "default_policy",
    "namespace_value",
    "type_check",
]

JSON = dict[str, Any]

FAIL: Final = "Fail"
IGNORE: Final = "Ignore"
#: types type checking looks at per policy, as upstream (maxTypesToCheck)
MAX_TYPES_TO_CHECK: Final = 10

# ---------------------------------------------------------------------------- defaults


def _default_match_resources(mr: JSON) -> None:
    mr.setdefault("matchPolicy", "Equivalent")
    if mr.get("namespaceSelector") is None:
        mr["namespaceSelector"] = {}
    if mr.get("objectSelector") is None:
        mr["objectSelector"] = {}
    for key in ("resourceRules", "excludeResourceRules"):
        for rule in mr.get(key) or []:
            if isinstance(rule, dict) and rule.get("scope") is None:
                rule["scope"] = "*"


def default_policy(obj: JSON) -> JSON:
    """A ValidatingAdmissionPolicy with upstream's v1 defaults filled in (a copy)."""
    out = copy_json(obj)
    spec = out.get("spec")
    if isinstance(spec, dict):
        if spec.get("failurePolicy") is None:
            spec["failurePolicy"] = FAIL
        if isinstance(spec.get("matchConstraints"), dict):
            _default_match_resources(spec["matchConstraints"])
    return out


def default_binding(obj: JSON) -> JSON:
    """A ValidatingAdmissionPolicyBinding with upstream's v1 defaults filled in (a copy)."""
    out = copy_json(obj)
    spec = out.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("matchResources"), dict):
        _default_match_resources(spec["matchResources"])
    return out


# ---------------------------------------------------------------------------- the environment

_GVK: Final = object_of({"group": STRING, "version": STRING, "kind": STRING})
_GVR: Final = object_of({"group": STRING, "version": STRING, "resource": STRING})
#: upstream's BuildRequestType
REQUEST_TYPE: Final = object_of(
    {
        "kind": _GVK,
        "resource": _GVR,
        "subResource": STRING,
        "requestKind": _GVK,
        "requestResource": _GVR,
        "requestSubResource": STRING,
        "name": STRING,
        "namespace": STRING,
        "operation": STRING,
        "userInfo": object_of(
            {
                "username": STRING,
                "uid": STRING,
                "groups": list_of(STRING),
                "extra": map_of(STRING, list_of(STRING)),
            }
        ),
        "dryRun": BOOL,
        "options": DYN,
    }
)
_STRINGS: Final = map_of(STRING, STRING)
#: upstream's BuildNamespaceType
NAMESPACE_TYPE: Final = object_of(
    {
        "metadata": object_of(
            {
                "name": STRING,
                "generateName": STRING,
                "namespace": STRING,
                "labels": _STRINGS,
                "annotations": _STRINGS,
                "UID": STRING,
                "creationTimestamp": TIMESTAMP,
                "deletionGracePeriodSeconds": INT,
                "deletionTimestamp": TIMESTAMP,
                "generation": INT,
                "resourceVersion": STRING,
                "finalizers": list_of(STRING),
            }
        ),
        "spec": object_of({"finalizers": list_of(STRING)}),
        "status": object_of(
            {
                "conditions": list_of(
                    object_of(
                        {
                            "status": STRING,
                            "type": STRING,
                            "lastTransitionTime": TIMESTAMP,
                            "message": STRING,
                            "reason": STRING,
                        }
                    )
                ),
                "phase": STRING,
            }
        ),
    }
)
_NAMESPACE_META: Final = (
    "name",
    "generateName",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "finalizers",
)


def _timestamp(v: Any) -> Any:
    return cel.to_cel(v, {"type": "string", "format": "date-time"})


def namespace_value(ns: JSON | None) -> JSON | None:
    """``namespaceObject`` as upstream builds it (CreateNamespaceObject): metadata without
    managed fields and owner references, spec and status, timestamps as timestamps."""
    if ns is None:
        return None
    meta = ns.get("metadata") or {}
    out_meta = {k: meta[k] for k in _NAMESPACE_META if meta.get(k) is not None}
    if "uid" in out_meta:
        out_meta["UID"] = out_meta.pop("uid")
    for key in ("creationTimestamp", "deletionTimestamp"):
        if key in out_meta:
            out_meta[key] = _timestamp(out_meta[key])
    status = copy_json(ns.get("status") or {})
    for c in status.get("conditions") or []:
        if isinstance(c, dict) and c.get("lastTransitionTime"):
            c["lastTransitionTime"] = _timestamp(c["lastTransitionTime"])
    return {"metadata": out_meta, "spec": ns.get("spec") or {}, "status": status}


# ---------------------------------------------------------------------------- compiling


@dataclass(frozen=True, slots=True)
class Expression:
    """One compiled expression: a program, or the error upstream reports for it."""

    source: str
    program: Program | None
    #: "compilation failed: ERROR: <input>:1:1: ..." or "must evaluate to bool but got int"
    error: str | None = None
    #: the policy variables it reads (``variables.<name>``)
    reads: frozenset[str] = frozenset()


@dataclass(slots=True)
class CompiledPolicy:
    """A policy's expressions, compiled in order (variables first, as upstream)."""

    variables: list[tuple[str, Expression]] = field(default_factory=list)
    #: (expression, messageExpression or None, message, reason or None) per validation
    validations: list[tuple[Expression, Expression | None, str, str | None]] = field(
        default_factory=list
    )
    audit_annotations: list[tuple[str, Expression]] = field(default_factory=list)
    match_conditions: list[tuple[str, Expression]] = field(default_factory=list)


_RESULT_NAMES: Final = {"null": "null_type"}
#: a plain path into a ``dyn`` variable: ``dyn`` to cel-go's checker too
_DYN_PATH: Final = re.compile(
    r"\s*(object|oldObject|params)(\s*\.\s*[A-Za-z_][A-Za-z0-9_]*|\[[^\]\[]*\])*\s*"
)


def _type_name(t: Type) -> str:
    return _RESULT_NAMES.get(str(t), str(t))


def _compile(
    source: str, decls: Mapping[str, Type], returns: tuple[str, ...] | None
) -> tuple[Expression, Type]:
    try:
        program = compile_checked(source, decls)
    except CELError as e:
        return Expression(source, None, e.message), DYN
    got = program.result_type
    # ``dyn`` is cel-go's answer too for a plain path into a dyn variable; elsewhere it may
    # be what this (gradual) checker could not tell, and is not refused
    certain = not got.is_dyn or _DYN_PATH.fullmatch(source) is not None
    if returns is not None and certain and _type_name(got) not in returns:
        if len(returns) == 1:
            why = f"must evaluate to {returns[0]} but got {_type_name(got)}"
        else:
            why = f"must evaluate to one of [{' '.join(returns)}] but got {_type_name(got)}"
        return Expression(source, None, why), got
    reads = selected_fields(source, "variables") if "variables" in program.uses else frozenset()
    return Expression(source, program, None, reads), got


def declarations(
    *, has_params: bool, object_type: Type = DYN, params_type: Type = DYN
) -> dict[str, Type]:
    """The variables every policy expression sees (``variables`` and ``authorizer`` are
    added by :func:`compile_policy`)."""
    decls = {
        "object": object_type,
        "oldObject": object_type,
        "request": REQUEST_TYPE,
        "namespaceObject": NAMESPACE_TYPE,
    }
    if has_params:
        decls["params"] = params_type
    return decls


def compile_policy(
    spec: JSON,
    *,
    object_type: Type = DYN,
    params_type: Type | None = None,
    check_results: bool = True,
) -> CompiledPolicy:
    """Compile every expression of a policy's ``spec``. ``object_type``/``params_type``
    are ``dyn`` for admission and validation, schema types for type checking (which
    accepts any result type, as upstream's)."""
    has_params = isinstance(spec.get("paramKind"), dict)
    base = declarations(
        has_params=has_params, object_type=object_type, params_type=params_type or DYN
    )
    out = CompiledPolicy()
    var_types: dict[str, Type] = {}

    def results(types: tuple[str, ...]) -> tuple[str, ...] | None:
        return types if check_results else None

    def env(authorizer: bool) -> dict[str, Type]:
        decls = {**base, "variables": object_of(dict(var_types))}
        if authorizer:
            decls["authorizer"] = AUTHORIZER
        return decls

    for v in _items(spec.get("variables")):
        name, source = str(v.get("name") or ""), str(v.get("expression") or "")
        expr, got = _compile(source, env(True), None)
        out.variables.append((name, expr))
        var_types[name] = got if expr.program is not None else DYN
    for v in _items(spec.get("validations")):
        expr, _ = _compile(str(v.get("expression") or ""), env(True), results(("bool",)))
        message_expr = None
        if (v.get("messageExpression") or "").strip():
            message_expr, _ = _compile(
                str(v["messageExpression"]), env(False), results(("string",))
            )
        reason = v.get("reason")
        out.validations.append(
            (expr, message_expr, str(v.get("message") or ""), reason if reason else None)
        )
    for a in _items(spec.get("auditAnnotations")):
        source = str(a.get("valueExpression") or "").strip()
        expr, _ = _compile(source, env(True), results(("string", "null_type")))
        out.audit_annotations.append((str(a.get("key") or ""), expr))
    for m in _items(spec.get("matchConditions")):
        expr, _ = _compile(str(m.get("expression") or "").strip(), env(True), results(("bool",)))
        out.match_conditions.append((str(m.get("name") or ""), expr))
    return out


def _items(v: Any) -> list[JSON]:
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []


# ---------------------------------------------------------------------------- type checking

_MAX_DEPTH: Final = 24
_INT_OR_STRING: Final[JSON] = {"x-kubernetes-int-or-string": True}


def _structural(schemas: Schemas, node: JSON, seen: tuple[str, ...]) -> JSON:
    """An official JSON-schema definition as a structural schema (refs expanded; a cycle
    or a union other than null becomes ``dyn``)."""
    ref = node.get("$ref") or next(
        (a["$ref"] for a in node.get("allOf") or () if isinstance(a, dict) and "$ref" in a), None
    )
    if ref is not None:
        name = ref.rsplit("/", 1)[-1]
        if name in seen or len(seen) >= _MAX_DEPTH:
            return _INT_OR_STRING
        return _structural(schemas, schemas.get(name), (*seen, name))
    if "oneOf" in node or "anyOf" in node:  # int-or-string, Quantity
        return _INT_OR_STRING
    types = types_of(node) - {"null"}
    if len(types) != 1:
        return _INT_OR_STRING
    (t,) = types
    out: JSON = {"type": t}
    if node.get("format"):
        out["format"] = node["format"]
    if t == "object":
        props = node.get("properties")
        if isinstance(props, dict):
            out["properties"] = {
                k: _structural(schemas, v, seen) for k, v in props.items() if isinstance(v, dict)
            }
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            out["additionalProperties"] = _structural(schemas, extra, seen)
        elif not isinstance(props, dict):
            out["additionalProperties"] = _INT_OR_STRING
    elif t == "array" and isinstance(node.get("items"), dict):
        out["items"] = _structural(schemas, node["items"], seen)
    return out


@functools.lru_cache(maxsize=64)
def builtin_type(schemas: Schemas, group: str, version: str, kind: str) -> Type | None:
    """The CEL type upstream's type checker gives ``object`` for a built-in kind (from the
    official OpenAPI definitions), None when the kind has no definition."""
    name = schemas.name_for(group, version, kind)
    if name is None:
        return None
    # the definition declares the whole metadata, which upstream then keeps as it is
    return schema_type(_structural(schemas, schemas.get(name), (name,)))


def gvk_string(group: str, version: str, kind: str) -> str:
    """schema.GroupVersionKind's String(): ``apps/v1, Kind=Deployment``, ``/v1, Kind=Pod``."""
    return f"{group}/{version}, Kind={kind}"


@dataclass(frozen=True, slots=True)
class Kind:
    group: str
    version: str
    kind: str


def kinds_to_check(spec: JSON, kinds_for: Callable[[str, str, str], Iterable[Kind]]) -> list[Kind]:
    """The kinds whose schemas type ``object`` (upstream's typesToCheck): every exact
    group/version/resource of the resource rules (no wildcards, no subresources), at most
    :data:`MAX_TYPES_TO_CHECK`, sorted by group, version, kind."""
    found: list[Kind] = []
    rules = (spec.get("matchConstraints") or {}).get("resourceRules") or []
    for rule in _items(rules):
        groups = [str(g) for g in rule.get("apiGroups") or []]
        versions = [str(v) for v in rule.get("apiVersions") or []]
        resources = sorted(
            str(r) for r in rule.get("resources") or [] if "*" not in r and "/" not in r
        )
        if any("*" in g for g in groups) or any("*" in v for v in versions):
            continue
        for g in sorted(groups):
            for v in sorted(versions):
                for r in resources:
                    for k in kinds_for(g, v, r):
                        if k not in found:
                            found.append(k)
                            if len(found) == MAX_TYPES_TO_CHECK:
                                return sorted(found, key=lambda k: (k.group, k.version, k.kind))
    return sorted(found, key=lambda k: (k.group, k.version, k.kind))


def type_check(
    spec: JSON,
    kinds: Iterable[tuple[Kind, Type]],
    params_type: Type | None,
) -> list[JSON]:
    """``status.typeChecking.expressionWarnings`` for a policy: each validation's
    expression and messageExpression compiled with ``object`` of each kind's type
    (upstream's TypeChecker.Check)."""
    per_kind = [
        (k, compile_policy(spec, object_type=t, params_type=params_type, check_results=False))
        for k, t in kinds
    ]
    warnings: list[JSON] = []
    for i, v in enumerate(_items(spec.get("validations"))):
        for slot, key in ((0, "expression"), (1, "messageExpression")):
            if key == "messageExpression" and not v.get("messageExpression"):
                continue
            messages = []
            for k, compiled in per_kind:
                validation = compiled.validations[i]
                expr = validation[0] if slot == 0 else validation[1]
                if expr is not None and expr.error is not None:
                    messages.append(f"{gvk_string(k.group, k.version, k.kind)}: {expr.error}\n")
            if messages:
                warnings.append(
                    {"fieldRef": f"spec.validations[{i}].{key}", "warning": "\n".join(messages)}
                )
    return warnings
