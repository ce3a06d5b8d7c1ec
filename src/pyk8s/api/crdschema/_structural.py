"""The schema rules a CustomResourceDefinition must pass, as upstream checks them.

Creating or updating a CRD runs, for each version's ``openAPIV3Schema`` (upstream's
``validateCustomResourceDefinitionValidation``):

1. with the status subresource, only some keywords at the root; never ``nullable``;
2. structurality (``schema.ValidateStructural``, errors sorted by text): every
   specified node has a ``type``, value validations (``allOf``/``anyOf``/``oneOf``/
   ``not``) only restrict what the structural part already specifies, root
   ``metadata`` may only restrict ``name``/``generateName``, the int-or-string and
   embedded-resource invariants hold;
3. only when structural: every ``default`` is pruned, valid metadata where it
   matters, and valid against its own schema (``defaulting.ValidateDefaults``);
4. the keyword rules (``ValidateCustomResourceDefinitionOpenAPISchema``): no
   ``$ref``/``id``/``definitions``..., ``additionalProperties`` and ``properties``
   mutually exclusive, no defaults in top-level metadata, ``x-kubernetes-list-type``,
   ``x-kubernetes-list-map-keys`` and ``x-kubernetes-map-type`` consistent.

``x-kubernetes-validations`` rules are compiled by the CEL package; here they only
count as keywords (forbidden inside value validations, as upstream does).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pyk8s.api import errors
from pyk8s.api.crdschema._goregex import GoRegexError, compile_go
from pyk8s.api.crdschema._objectmeta import META_FIELDS, coerce, validate_embedded
from pyk8s.api.crdschema._openapi import deep_equal, validate_value
from pyk8s.api.crdschema._paths import child, index, key
from pyk8s.api.crdschema._prune import deep_copy, structural_prune
from pyk8s.api.errors import FieldError
from pyk8s.api.gofmt import GoStringSlice

JSONSchema = dict[str, Any]

ROOT, ITEM, FIELD = 0, 1, 2

OPENAPI_V3_TYPES = ["array", "boolean", "integer", "number", "object", "string"]

_EMBEDDED = "x-kubernetes-embedded-resource"
_PRESERVE = "x-kubernetes-preserve-unknown-fields"
_INT_OR_STRING = "x-kubernetes-int-or-string"
_LIST_TYPE = "x-kubernetes-list-type"
_LIST_MAP_KEYS = "x-kubernetes-list-map-keys"
_MAP_TYPE = "x-kubernetes-map-type"
_VALIDATIONS = "x-kubernetes-validations"


def _d(v: Any) -> JSONSchema | None:
    return v if isinstance(v, dict) else None


def _props(s: JSONSchema) -> dict[str, Any]:
    p = s.get("properties")
    return p if isinstance(p, dict) else {}


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _type(s: JSONSchema) -> str:
    t = s.get("type")
    return t if isinstance(t, str) else ""


def _true(s: JSONSchema, k: str) -> bool:
    return s.get(k) is True


# ====================================================================== NewStructural


def _unsupported(s: Any) -> str | None:
    """The error ``NewStructural`` gives, if any (shown only when nothing else failed)."""
    if not isinstance(s, dict):
        return None
    if s.get("id"):
        return "OpenAPIV3Schema 'id' is not supported"
    if s.get("$schema"):
        return "OpenAPIV3Schema 'schema' is not supported"
    if s.get("$ref"):
        return "OpenAPIV3Schema '$ref' is not supported"
    if s.get("patternProperties"):
        return "OpenAPIV3Schema 'patternProperties' is not supported"
    if s.get("dependencies"):
        return "OpenAPIV3Schema 'dependencies' is not supported"
    if "additionalItems" in s and s["additionalItems"] is not None:
        return "OpenAPIV3Schema 'additionalItems' is not supported"
    if s.get("definitions"):
        return "OpenAPIV3Schema 'definitions' is not supported"
    subs: list[Any] = [s.get("not"), *_list(s.get("allOf")), *_list(s.get("anyOf"))]
    subs += _list(s.get("oneOf"))
    for sub in subs:
        err = _unsupported(sub)
        if err:
            return err
    if s.get(_PRESERVE) is False:
        return "internal error: 'x-kubernetes-preserve-unknown-fields' must be true or undefined"
    if isinstance(s.get("items"), list):
        return "OpenAPIV3Schema 'items' must be a schema, but is an array"
    for sub in [s.get("items"), *_props(s).values(), s.get("additionalProperties")]:
        err = _unsupported(sub)
        if err:
            return err
    return None


# ====================================================================== ValidateStructural


_INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]


def _meaningful(s: Any) -> Any:
    if not isinstance(s, dict):
        return s
    return {k: v for k, v in s.items() if v not in (None, False, "", [], {})}


def _is_int_or_string_any_of(s: JSONSchema) -> bool:
    any_of = s.get("anyOf")
    return (
        isinstance(any_of, list)
        and len(any_of) == 2
        and [_meaningful(x) for x in any_of] == _INT_OR_STRING_ANY_OF
    )


def _is_int_or_string_all_of(s: JSONSchema) -> bool:
    all_of = s.get("allOf")
    return (
        isinstance(all_of, list)
        and bool(all_of)
        and isinstance(all_of[0], dict)
        and (_is_int_or_string_any_of(all_of[0]))
    )


def validate_structural(s: JSONSchema, path: str) -> list[FieldError]:
    errs = _invariants(s, ROOT, path) + _completeness(s, path)
    return sorted(errs, key=str)


def _invariants(s: Any, lvl: int, p: str) -> list[FieldError]:
    if not isinstance(s, dict):
        return []
    errs: list[FieldError] = []
    t = _type(s)
    items = _d(s.get("items"))
    if t == "array" and items is None:
        errs.append(errors.required(child(p, "items"), "must be specified"))
    if items is not None:
        errs += _invariants(items, ITEM, child(p, "items"))
    props = _props(s)
    for k, v in props.items():
        errs += _invariants(v, FIELD, key(child(p, "properties"), k))
    ap = s.get("additionalProperties")
    if ap is not None:
        if lvl == ROOT:
            errs.append(
                errors.forbidden(child(p, "additionalProperties"), "must not be used at the root")
            )
        if isinstance(ap, dict):
            errs += _invariants(ap, FIELD, child(p, "additionalProperties"))

    embedded, preserve, ios = _true(s, _EMBEDDED), _true(s, _PRESERVE), _true(s, _INT_OR_STRING)
    if ios and preserve:
        errs.append(
            errors.invalid(
                child(p, _PRESERVE), True, "must be false if x-kubernetes-int-or-string is true"
            )
        )
    if ios and embedded:
        errs.append(
            errors.invalid(
                child(p, _EMBEDDED), True, "must be false if x-kubernetes-int-or-string is true"
            )
        )

    errs += _value_validation(s, _is_int_or_string_any_of(s), _is_int_or_string_all_of(s), lvl, p)

    check_meta = lvl == ROOT or embedded
    if embedded and t != "object":
        msg = "must be object if x-kubernetes-embedded-resource is true"
        if not t:
            errs.append(errors.required(child(p, "type"), msg))
        else:
            errs.append(errors.invalid(child(p, "type"), t, msg))
    elif not t and not ios and not preserve:
        msg = {
            ROOT: "must not be empty at the root",
            ITEM: "must not be empty for specified array items",
            FIELD: "must not be empty for specified object fields",
        }[lvl]
        errs.append(errors.required(child(p, "type"), msg))
    if embedded and ap is not None:
        errs.append(
            errors.forbidden(
                child(p, "additionalProperties"),
                "must not be used if x-kubernetes-embedded-resource is set",
            )
        )
    if lvl == ROOT and t and t != "object":
        errs.append(errors.invalid(child(p, "type"), t, "must be object at the root"))
    for name in ("kind", "apiVersion"):
        sub = _d(props.get(name))
        if sub is not None and check_meta and _type(sub) != "string":
            errs.append(
                errors.invalid(
                    child(key(child(p, "properties"), name), "type"), _type(sub), "must be string"
                )
            )
    meta = _d(props.get("metadata"))
    if meta is not None:
        errs += _metadata_invariants(meta, check_meta, lvl, key(child(p, "properties"), "metadata"))
    if embedded and not preserve and not props:
        errs.append(
            errors.required(
                child(p, "properties"),
                "must not be empty if x-kubernetes-embedded-resource is true without "
                "x-kubernetes-preserve-unknown-fields",
            )
        )
    return errs


_POINTER_KEYS = frozenset(
    {
        "maximum",
        "minimum",
        "maxLength",
        "minLength",
        "maxItems",
        "minItems",
        "multipleOf",
        "maxProperties",
        "minProperties",
        "not",
        "items",
        "additionalProperties",
        _LIST_TYPE,
        _MAP_TYPE,
    }
)
_BOOL_KEYS = frozenset(
    {
        "exclusiveMaximum",
        "exclusiveMinimum",
        "uniqueItems",
        "nullable",
        _EMBEDDED,
        _PRESERVE,
        _INT_OR_STRING,
    }
)
_STRING_KEYS = frozenset({"description", "title", "format", "pattern"})
_LIST_KEYS = frozenset(
    {"enum", "required", "allOf", "anyOf", "oneOf", _LIST_MAP_KEYS, _VALIDATIONS}
)


def _set(k: str, v: Any) -> bool:
    """Whether keyword ``k`` holds a non-zero value in upstream's ``Structural``."""
    if k in _POINTER_KEYS:
        return v is not None
    if k in _BOOL_KEYS:
        return v is True
    if k in _STRING_KEYS:
        return isinstance(v, str) and v != ""
    if k in _LIST_KEYS:
        return isinstance(v, list) and bool(v)
    return False


def _metadata_invariants(s: JSONSchema, check_meta: bool, lvl: int, p: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if check_meta and _type(s) != "object":
        errs.append(errors.invalid(child(p, "type"), _type(s), "must be object"))
    if lvl == ROOT:
        props = set(_props(s))
        only_names = bool(props) and props <= {"name", "generateName"}
        extra = bool(props) and not only_names
        extra = extra or any(_set(k, v) for k, v in s.items() if k != "properties")
        if extra:
            errs.append(
                errors.forbidden(
                    p,
                    "must not specify anything other than name and generateName, but "
                    "metadata is implicitly specified",
                )
            )
    return errs


def _value_validation(
    s: JSONSchema, skip_any_of: bool, skip_first_all_of_any_of: bool, lvl: int, p: str
) -> list[FieldError]:
    errs: list[FieldError] = []
    if not skip_any_of:
        for i, sub in enumerate(_list(s.get("anyOf"))):
            errs += _nested(sub, False, False, lvl, index(child(p, "anyOf"), i))
    for i, sub in enumerate(_list(s.get("allOf"))):
        errs += _nested(
            sub, skip_first_all_of_any_of and i == 0, False, lvl, index(child(p, "allOf"), i)
        )
    for i, sub in enumerate(_list(s.get("oneOf"))):
        errs += _nested(sub, False, False, lvl, index(child(p, "oneOf"), i))
    errs += _nested(s.get("not"), False, False, lvl, child(p, "not"))
    pattern = s.get("pattern")
    if isinstance(pattern, str) and pattern:
        try:
            compile_go(pattern)
        except GoRegexError as e:
            errs.append(
                errors.invalid(
                    child(p, "pattern"),
                    pattern,
                    f"must be a valid regular expression, but isn't: {e}",
                )
            )
    return errs


_MUST_BE_EMPTY = "must be empty to be structural"
_MUST_BE_UNDEFINED = "must be undefined to be structural"
_MUST_BE_FALSE = "must be false to be structural"


def _nested(
    v: Any, skip_any_of: bool, skip_all_of_any_of: bool, lvl: int, p: str
) -> list[FieldError]:
    if not isinstance(v, dict):
        return []
    errs = _value_validation(v, skip_any_of, skip_all_of_any_of, lvl, p)
    errs += _nested(v.get("items"), False, False, lvl, child(p, "items"))
    props = v.get("properties")
    if isinstance(props, dict):
        for k, sub in props.items():
            errs += _nested(sub, False, False, FIELD, key(child(p, "properties"), k))
    f = errors.forbidden
    if _type(v):
        errs.append(f(child(p, "type"), _MUST_BE_EMPTY))
    ap = v.get("additionalProperties")
    if isinstance(ap, dict) or ap is True:
        errs.append(f(child(p, "additionalProperties"), _MUST_BE_UNDEFINED))
    if v.get("default") is not None:
        errs.append(f(child(p, "default"), _MUST_BE_UNDEFINED))
    if v.get("title"):
        errs.append(f(child(p, "title"), _MUST_BE_EMPTY))
    if v.get("description"):
        errs.append(f(child(p, "description"), _MUST_BE_EMPTY))
    if _true(v, "nullable"):
        errs.append(f(child(p, "nullable"), _MUST_BE_FALSE))
    for ext in (_PRESERVE, _EMBEDDED, _INT_OR_STRING):
        if _true(v, ext):
            errs.append(f(child(p, ext), _MUST_BE_FALSE))
    if _list(v.get(_LIST_MAP_KEYS)):
        errs.append(f(child(p, _LIST_MAP_KEYS), _MUST_BE_EMPTY))
    if v.get(_LIST_TYPE) is not None:
        errs.append(f(child(p, _LIST_TYPE), _MUST_BE_UNDEFINED))
    if v.get(_MAP_TYPE) is not None:
        errs.append(f(child(p, _MAP_TYPE), _MUST_BE_UNDEFINED))
    if _list(v.get(_VALIDATIONS)):
        errs.append(f(child(p, _VALIDATIONS), _MUST_BE_EMPTY))
    if isinstance(props, dict) and "metadata" in props:
        errs.append(
            f(key(child(p, "properties"), "metadata"), "must not be specified in a nested context")
        )
    return errs


def _completeness(s: JSONSchema, p: str) -> list[FieldError]:
    return _vv_completeness(s, s, p, p)


def _vv_completeness(v: JSONSchema, s: JSONSchema | None, sp: str, vp: str) -> list[FieldError]:
    if s is None:
        return [errors.required(sp, f"because it is defined in {vp}")]
    errs = _nested_completeness(v.get("not"), s, sp, child(vp, "not"))
    for name in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(_list(v.get(name))):
            errs += _nested_completeness(sub, s, sp, index(child(vp, name), i))
    return errs


def _nested_completeness(v: Any, s: JSONSchema | None, sp: str, vp: str) -> list[FieldError]:
    if not isinstance(v, dict):
        return []
    if s is None:
        return [errors.required(sp, f"because it is defined in {vp}")]
    errs = _vv_completeness(v, s, sp, vp)
    errs += _nested_completeness(
        v.get("items"), _d(s.get("items")), child(sp, "items"), child(vp, "items")
    )
    props = v.get("properties")
    if isinstance(props, dict):
        sprops = _props(s)
        for k, sub in props.items():
            spk = key(child(sp, "properties"), k)
            vpk = key(child(vp, "properties"), k)
            if k not in sprops:
                errs.append(errors.required(spk, f"because it is defined in {vpk}"))
            else:
                errs += _nested_completeness(sub, _d(sprops[k]), spk, vpk)
    return errs


# ====================================================================== ValidateDefaults


class _DefaultsFailed(Exception):
    pass


def _surround(steps: list[str | None], focus: Any) -> dict[str, Any]:
    """The object a metadata default sits in (``SurroundingObjectFunc``)."""
    obj = focus
    for step in reversed(steps):
        obj = [obj] if step is None else {step: obj}
    if not isinstance(obj, dict):
        raise _DefaultsFailed(
            "failed to validate default value inside metadata: "
            "object root default value must be of object type"
        )
    obj.setdefault("kind", "Validation")
    obj.setdefault("apiVersion", "validation/v1")
    return obj


def validate_defaults(schema: JSONSchema, path: str) -> list[FieldError]:
    root = dict(schema)
    root[_EMBEDDED] = True
    try:
        return _defaults(path, root, root, [], False)
    except _DefaultsFailed as e:
        return [errors.invalid(path, "", str(e))]


def _defaults(
    p: str, s: JSONSchema, root: JSONSchema, steps: list[str | None], inside_meta: bool
) -> list[FieldError]:
    errs: list[FieldError] = []
    embedded = _true(s, _EMBEDDED)
    if embedded:
        inside_meta = False
        steps = []
        root = s
    dflt = s.get("default")
    if dflt is not None:
        dp = child(p, "default")
        if inside_meta:
            obj = _surround(steps, deep_copy(dflt))
            err = coerce("", obj, root, True, None)
            if err is not None:
                errs.append(errors.invalid(dp, dflt, f"must result in valid metadata: {err}"))
            elif me := validate_embedded("", obj, root, True):
                shown = errors.aggregate_message([str(e) for e in me])
                msg = f"must result in valid metadata: {shown}"
                errs.append(errors.invalid(dp, dflt, msg))
            else:
                errs += validate_value(dflt, s, dp, runtime=False)
        else:
            pruned = deep_copy(dflt)
            structural_prune(pruned, s, embedded)
            if not deep_equal(pruned, dflt):
                errs.append(errors.invalid(dp, dflt, "must not have unknown fields"))
            copy = deep_copy(dflt)
            err = coerce(dp, copy, s, embedded, None)
            if err is not None:
                errs.append(err)
            elif me := validate_embedded(dp, copy, s, embedded):
                errs += me
            else:
                errs += validate_value(dflt, s, dp, runtime=False)
    items = _d(s.get("items"))
    if items is not None:
        errs += _defaults(child(p, "items"), items, root, [*steps, None], inside_meta)
    for k, sub in _props(s).items():
        if isinstance(sub, dict):
            sub_meta = inside_meta or (embedded and k in META_FIELDS)
            errs += _defaults(key(child(p, "properties"), k), sub, root, [*steps, k], sub_meta)
    return errs


# ====================================================================== OpenAPI schema rules


@dataclass(frozen=True, slots=True)
class _Ctx:
    allow_defaults: bool = True
    reason: str = ""
    inside_meta: bool = False

    def forbid_defaults(self, reason: str) -> _Ctx:
        return replace(self, allow_defaults=False, reason=reason)


def _keyword_rules(s: JSONSchema, p: str, ctx: _Ctx) -> list[FieldError]:
    """``specStandardValidatorV3.validate``."""
    errs: list[FieldError] = []
    t = s.get("type")
    if isinstance(t, str) and t and t not in OPENAPI_V3_TYPES:
        errs.append(errors.not_supported(child(p, "type"), t, OPENAPI_V3_TYPES))
    if "default" in s and not ctx.allow_defaults:
        detail = "must not be set" + (f" {ctx.reason}" if ctx.reason else "")
        errs.append(errors.forbidden(child(p, "default"), detail))
    if s.get("id"):
        errs.append(errors.forbidden(child(p, "id"), "id is not supported"))
    if s.get("additionalItems") is not None:
        errs.append(
            errors.forbidden(child(p, "additionalItems"), "additionalItems is not supported")
        )
    if s.get("patternProperties"):
        errs.append(
            errors.forbidden(child(p, "patternProperties"), "patternProperties is not supported")
        )
    if s.get("definitions"):
        errs.append(errors.forbidden(child(p, "definitions"), "definitions is not supported"))
    if s.get("dependencies") is not None:
        errs.append(errors.forbidden(child(p, "dependencies"), "dependencies is not supported"))
    if s.get("$ref") is not None:
        errs.append(errors.forbidden(child(p, "$ref"), "$ref is not supported"))
    if t == "null":
        errs.append(
            errors.forbidden(
                child(p, "type"), "type cannot be set to null, use nullable as an alternative"
            )
        )
    if isinstance(s.get("items"), list) and s["items"]:
        errs.append(
            errors.forbidden(child(p, "items"), "items must be a schema object and not an array")
        )
    if ctx.inside_meta and _true(s, _EMBEDDED):
        errs.append(
            errors.forbidden(child(p, _EMBEDDED), "must not be used inside of resource meta")
        )
    return errs


def openapi_schema_errors(s: Any, p: str, ctx: _Ctx, is_root: bool) -> list[FieldError]:
    """``ValidateCustomResourceDefinitionOpenAPISchema`` (minus CEL compilation)."""
    if not isinstance(s, dict):
        return []
    errs = _keyword_rules(s, p, ctx)
    if _true(s, "uniqueItems"):
        errs.append(
            errors.forbidden(
                child(p, "uniqueItems"),
                "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            )
        )
    props = _props(s)
    ap = s.get("additionalProperties")
    if ap is not None:
        if props and (ap is False or isinstance(ap, dict)):
            errs.append(
                errors.forbidden(
                    child(p, "additionalProperties"),
                    "additionalProperties and properties are mutual exclusive",
                )
            )
        sub_ctx = ctx
        if ctx.inside_meta:
            sub_ctx = ctx.forbid_defaults("inside additionalProperties applying to object metadata")
        errs += openapi_schema_errors(ap, child(p, "additionalProperties"), sub_ctx, False)
    for k, sub in props.items():
        sub_ctx = ctx
        if (is_root or _true(s, _EMBEDDED)) and k in META_FIELDS:
            sub_ctx = replace(sub_ctx, inside_meta=True)
            if is_root:
                sub_ctx = sub_ctx.forbid_defaults(f"in top-level {k}")
        errs += openapi_schema_errors(sub, key(child(p, "properties"), k), sub_ctx, False)
    errs += openapi_schema_errors(s.get("not"), child(p, "not"), ctx, False)
    for name in ("allOf", "oneOf", "anyOf"):
        for i, sub in enumerate(_list(s.get(name))):
            errs += openapi_schema_errors(sub, index(child(p, name), i), ctx, False)
    defs = s.get("definitions")
    if isinstance(defs, dict):
        for k, sub in defs.items():
            errs += openapi_schema_errors(sub, key(child(p, "definitions"), k), ctx, False)
    items = s.get("items")
    if isinstance(items, dict):
        errs += openapi_schema_errors(items, child(p, "items"), ctx, False)
    elif isinstance(items, list):
        for i, sub in enumerate(items):
            errs += openapi_schema_errors(sub, index(child(p, "items"), i), ctx, False)
    deps = s.get("dependencies")
    if isinstance(deps, dict):
        for k, sub in deps.items():
            errs += openapi_schema_errors(sub, key(child(p, "dependencies"), k), ctx, False)

    if s.get(_PRESERVE) is False:
        errs.append(errors.invalid(child(p, _PRESERVE), False, "must be true or undefined"))
    errs += _map_type_rules(s, p)
    errs += _list_type_rules(s, p)
    errs += _map_list_keys_map_set(s, p)
    return errs


def _map_type_rules(s: JSONSchema, p: str) -> list[FieldError]:
    errs: list[FieldError] = []
    mt = s.get(_MAP_TYPE)
    if mt is None:
        return errs
    t = _type(s)
    if t != "object":
        msg = "must be object if x-kubernetes-map-type is specified"
        if not t:
            errs.append(errors.required(child(p, "type"), msg))
        else:
            errs.append(errors.invalid(child(p, "type"), t, msg))
    if mt not in ("atomic", "granular"):
        errs.append(errors.not_supported(child(p, _MAP_TYPE), mt, ["atomic", "granular"]))
    return errs


def _list_type_rules(s: JSONSchema, p: str) -> list[FieldError]:
    errs: list[FieldError] = []
    lt = s.get(_LIST_TYPE)
    t = _type(s)
    items = s.get("items")
    if lt is not None and t != "array":
        msg = "must be array if x-kubernetes-list-type is specified"
        if not t:
            errs.append(errors.required(child(p, "type"), msg))
        else:
            errs.append(errors.invalid(child(p, "type"), t, msg))
    elif lt == "set" and isinstance(items, dict):
        msg = "must be atomic as item of a list with x-kubernetes-list-type=set"
        it = _type(items)
        if it == "array":
            ilt = items.get(_LIST_TYPE)
            if ilt is not None and ilt != "atomic":
                errs.append(errors.invalid(child(child(p, "items"), _LIST_TYPE), ilt, msg))
        elif it == "object" and items.get(_MAP_TYPE) != "atomic":
            # upstream shows the items' list type here (usually unset: "null")
            errs.append(
                errors.invalid(child(child(p, "items"), _MAP_TYPE), items.get(_LIST_TYPE), msg)
            )
    if lt is not None and lt not in ("atomic", "set", "map"):
        errs.append(errors.not_supported(child(p, _LIST_TYPE), lt, ["atomic", "set", "map"]))
    keys = _list(s.get(_LIST_MAP_KEYS))
    if keys:
        msg = "must be map if x-kubernetes-list-map-keys is non-empty"
        if lt is None:
            errs.append(errors.required(child(p, _LIST_TYPE), msg))
        elif lt != "map":
            errs.append(errors.invalid(child(p, _LIST_TYPE), lt, msg))
    if lt == "map":
        if not keys:
            errs.append(
                errors.required(
                    child(p, _LIST_MAP_KEYS), "must not be empty if x-kubernetes-list-type is map"
                )
            )
        if items is None:
            errs.append(
                errors.required(
                    child(p, "items"), "must have a schema if x-kubernetes-list-type is map"
                )
            )
        elif isinstance(items, list):
            errs.append(
                errors.invalid(
                    child(p, "items"),
                    items,
                    "must only have a single schema if x-kubernetes-list-type is map",
                )
            )
        elif isinstance(items, dict):
            it = _type(items)
            if it != "object":
                errs.append(
                    errors.invalid(
                        child(child(p, "items"), "type"),
                        it,
                        "must be object if parent array's x-kubernetes-list-type is map",
                    )
                )
            else:
                shown = GoStringSlice(str(k) for k in keys)
                iprops = _props(items)
                seen: set[str] = set()
                for k in keys:
                    sub = _d(iprops.get(k))
                    if k in iprops:
                        if sub is not None and _type(sub) in ("array", "object"):
                            errs.append(
                                errors.invalid(
                                    child(key(child(child(p, "items"), "properties"), k), "type"),
                                    it,
                                    "must be a scalar type if parent array's "
                                    "x-kubernetes-list-type is map",
                                )
                            )
                    else:
                        errs.append(
                            errors.invalid(
                                child(p, _LIST_MAP_KEYS),
                                shown,
                                "entries must all be names of item properties",
                            )
                        )
                    if k in seen:
                        errs.append(
                            errors.invalid(
                                child(p, _LIST_MAP_KEYS),
                                shown,
                                "must not contain duplicate entries",
                            )
                        )
                    seen.add(k)
    return errs


def _map_list_keys_map_set(s: JSONSchema, p: str) -> list[FieldError]:
    items = _d(s.get("items"))
    lt = s.get(_LIST_TYPE)
    if items is None or lt not in ("set", "map"):
        return []
    errs: list[FieldError] = []
    ip = child(p, "items")
    if _true(items, "nullable"):
        errs.append(
            errors.forbidden(
                child(ip, "nullable"), f"cannot be nullable when x-kubernetes-list-type is {lt}"
            )
        )
    if lt == "map":
        required = set(_list(items.get("required")))
        iprops = _props(items)
        for k in _list(s.get(_LIST_MAP_KEYS)):
            sub = _d(iprops.get(k))
            if sub is None:
                continue
            kp = key(child(ip, "properties"), k)
            if k not in required and "default" not in sub:
                errs.append(
                    errors.required(
                        child(kp, "default"),
                        "this property is in x-kubernetes-list-map-keys, so it must have a "
                        "default or be a required property",
                    )
                )
            if _true(sub, "nullable"):
                errs.append(
                    errors.forbidden(
                        child(kp, "nullable"),
                        "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                    )
                )
    return errs


# ====================================================================== the root rules


def structural_errors(schema: JSONSchema, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not isinstance(schema, dict):
        return [errors.required(path, "")]
    if schema.get("nullable") is True:
        errs.append(
            errors.forbidden(child(path, "nullable"), "nullable cannot be true at the root")
        )
    init_err = _unsupported(schema)
    if init_err is None:
        structural = validate_structural(schema, path)
        errs += structural if structural else validate_defaults(schema, path)
    errs += openapi_schema_errors(schema, path, _Ctx(), True)
    if not errs and init_err is not None:
        errs.append(errors.invalid(path, "", init_err))
    return errs
