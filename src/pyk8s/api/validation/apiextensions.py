"""CustomResourceDefinitions (apiextensions.k8s.io/v1): defaults and the rules of the object.

A CRD is written once by a person, usually from a chart, and rejected with a message the
person then searches for; so the defaults (``singular``, ``listKind``, conversion
``None``, webhook port 443, ``storedVersions``) and every rule here follow upstream v1.32
(k8s.io/apiextensions-apiserver ``pkg/apis/apiextensions/v1/defaults.go`` and
``pkg/apis/apiextensions/validation``) message for message and path for path.

Upstream validates the *internal* form of a CRD, converted from v1. That conversion
moves a per-version ``schema``, ``subresources``, ``additionalPrinterColumns`` or
``selectableFields`` that is identical in every version to the top level, so errors in
a single-schema CRD are reported at ``spec.validation.openAPIV3Schema...``,
``spec.subresources...`` and ``spec.additionalPrinterColumns[0].JSONPath``; webhook
settings are reported at ``spec.conversion.webhookClientConfig`` and
``spec.conversion.conversionReviewVersions``. :func:`_internal` performs that move, so
our paths are upstream's. Values that upstream prints with Go's ``%#v`` (the version
list, a schema) are printed the same way, pointer addresses aside.

The schema itself is checked by :func:`pyk8s.api.crdschema.structural_errors` and its
``x-kubernetes-validations`` rules compiled by :func:`pyk8s.api.cel.compile_schema_rules`
(both looked up at call time; a missing one checks nothing). Names conflicting with
other CRDs (``NamesAccepted``) are decided at run time by the CRD controller, not here.

Pure: no I/O; validation does not mutate its arguments (defaulting and the prepare
functions do, in place, as their names say).
"""

from __future__ import annotations

import base64
import copy
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyk8s.api import errors
from pyk8s.api.errors import FieldError, FieldErrorType
from pyk8s.api.gofmt import go_quote, go_sharp_v, go_string_slice
from pyk8s.api.validation import names
from pyk8s.api.validation._util import (
    IMMUTABLE,
    JSON,
    Errs,
    child,
    d,
    idx,
    is_int,
    lst,
    s,
    too_many,
)
from pyk8s.api.validation.meta import validate_object_meta, validate_object_meta_update

__all__ = [
    "MAX_SELECTABLE_FIELDS",
    "default_custom_resource_definition",
    "go_repr_schema",
    "go_repr_validation_rule",
    "prepare_custom_resource_definition_for_create",
    "prepare_custom_resource_definition_for_update",
    "valid_field_path",
    "validate_ca_bundle",
    "validate_custom_resource_definition",
    "validate_custom_resource_definition_status_update",
    "validate_custom_resource_definition_update",
    "validate_webhook_service",
    "validate_webhook_url",
]

MAX_SELECTABLE_FIELDS = 8
API_APPROVED_ANNOTATION = "api-approved.kubernetes.io"

_PRINTER_COLUMN_TYPES = ("boolean", "date", "integer", "number", "string")
_PRINTER_COLUMN_FORMATS = (
    "byte",
    "date",
    "date-time",
    "double",
    "float",
    "int32",
    "int64",
    "password",
)
_ACCEPTED_REVIEW_VERSIONS = ("v1", "v1beta1")
_URL_FORM = "; desired format: https://host[/path]"


# =========================================================================== defaults


def default_custom_resource_definition(crd: JSON) -> None:
    """Upstream's v1 ``SetObjectDefaults_CustomResourceDefinition``, in place.

    ``spec.names.singular`` = lowercase kind, ``spec.names.listKind`` = kind + ``List``,
    ``spec.conversion`` = ``{strategy: None}`` when absent, a conversion webhook
    service's ``port`` = 443, and ``status.storedVersions`` = the storage version when
    empty. (Printer columns have no stored default: a version without them is *served*
    with an Age column, see :mod:`pyk8s.api.crdprinter`.)
    """
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        spec = crd["spec"] = {}
    _default_spec(spec)
    status = crd.get("status")
    if not isinstance(status, dict) or not status.get("storedVersions"):
        for v in lst(spec.get("versions")):
            if isinstance(v, dict) and v.get("storage") is True:
                if not isinstance(status, dict):
                    status = crd["status"] = {}
                status["storedVersions"] = [s(v.get("name"))]
                break
    conversion = spec.get("conversion")
    webhook = d(conversion).get("webhook") if isinstance(conversion, dict) else None
    service = d(d(webhook).get("clientConfig")).get("service")
    if isinstance(service, dict) and service.get("port") is None:
        service["port"] = 443


def _default_spec(spec: JSON) -> None:
    nm = spec.get("names")
    if not isinstance(nm, dict):
        nm = spec["names"] = {}
    kind = s(nm.get("kind"))
    if not s(nm.get("singular")):
        nm["singular"] = kind.lower()
    if not s(nm.get("listKind")) and kind:
        nm["listKind"] = kind + "List"
    if spec.get("conversion") is None:
        spec["conversion"] = {"strategy": "None"}


def _storage_version(spec: JSON) -> str | None:
    for v in lst(spec.get("versions")):
        if isinstance(v, dict) and v.get("storage") is True:
            return s(v.get("name"))
    return None


def prepare_custom_resource_definition_for_create(crd: JSON) -> None:
    """Upstream's strategy ``PrepareForCreate``, in place: status reset to the storage version
    in ``storedVersions``, ``metadata.generation`` 1."""
    spec = d(crd.get("spec"))
    status: JSON = {"acceptedNames": {"plural": "", "kind": ""}, "storedVersions": []}
    storage = _storage_version(spec)
    if storage is not None:
        status["storedVersions"].append(storage)
    crd["status"] = status
    meta = crd.setdefault("metadata", {})
    if isinstance(meta, dict):
        meta["generation"] = 1


def prepare_custom_resource_definition_for_update(new: JSON, old: JSON) -> None:
    """Upstream's strategy ``PrepareForUpdate``, in place: ``new`` keeps ``old``'s status
    (plus a new storage version in ``storedVersions``); a changed spec bumps the generation."""
    new["status"] = copy.deepcopy(old.get("status")) if isinstance(old.get("status"), dict) else {}
    meta, old_meta = d(new.get("metadata")), d(old.get("metadata"))
    if "metadata" in new and isinstance(new["metadata"], dict):
        gen = old_meta.get("generation")
        gen = gen if is_int(gen) else 0
        meta["generation"] = gen + 1 if new.get("spec") != old.get("spec") else gen
    storage = _storage_version(d(new.get("spec")))
    if storage is not None:
        stored = new["status"].setdefault("storedVersions", [])
        if not isinstance(stored, list):
            stored = new["status"]["storedVersions"] = []
        if storage not in stored:
            stored.append(storage)


# =========================================================================== Go's %#v

_ADDR = "0xc000000000"  # a pointer's address in %#v output (upstream's differs per run)
_PKG = "apiextensions."


def _go_bytes(b: bytes | None) -> str:
    if b is None:
        return "[]byte(nil)"
    return "[]byte{" + ", ".join(f"0x{x:x}" for x in b) + "}"


def _go_strings(v: Any) -> str:
    """A Go ``[]string`` from decoded JSON: ``[]string(nil)`` when absent."""
    return go_string_slice([s(x) for x in v] if isinstance(v, list) else None)


def _go_ptr(type_name: str, present: bool) -> str:
    return f"(*{type_name})({_ADDR if present else 'nil'})"


def _go_json(v: Any) -> str:
    """``%#v`` of an ``apiextensions.JSON`` (an ``interface{}`` holding decoded JSON)."""
    return f"{_PKG}JSON(nil)" if v is None else go_sharp_v(v)


def _struct(name: str, fields: list[tuple[str, str]]) -> str:
    return f"{_PKG}{name}{{" + ", ".join(f"{k}:{v}" for k, v in fields) + "}"


def _slice(elem: str, items: Any, render: Callable[[Any], str], named: str = "") -> str:
    type_name = named or f"[]{elem}"
    if not isinstance(items, list):
        return f"{type_name}(nil)"
    return f"{type_name}{{" + ", ".join(render(x) for x in items) + "}"


def _map(elem: str, items: Any, render: Callable[[Any], str], named: str = "") -> str:
    type_name = named or f"map[string]{elem}"
    if not isinstance(items, dict):
        return f"{type_name}(nil)"
    body = ", ".join(f"{go_quote(str(k))}:{render(items[k])}" for k in sorted(items))
    return f"{type_name}{{{body}}}"


def _present(obj: JSON, key: str) -> bool:
    return obj.get(key) is not None


def go_repr_validation_rule(rule: Any) -> str:
    """``%#v`` of an ``apiextensions.ValidationRule`` (an ``x-kubernetes-validations`` entry)."""
    r = d(rule)
    return _struct(
        "ValidationRule",
        [
            ("Rule", go_quote(s(r.get("rule")))),
            ("Message", go_quote(s(r.get("message")))),
            ("MessageExpression", go_quote(s(r.get("messageExpression")))),
            ("Reason", _go_ptr(_PKG + "FieldValueErrorReason", _present(r, "reason"))),
            ("FieldPath", go_quote(s(r.get("fieldPath")))),
            ("OptionalOldSelf", _go_ptr("bool", _present(r, "optionalOldSelf"))),
        ],
    )


def _go_dependency(v: Any) -> str:
    return _struct(
        "JSONSchemaPropsOrStringArray",
        [
            ("Schema", _go_ptr(_PKG + "JSONSchemaProps", isinstance(v, dict))),
            ("Property", _go_strings(v if isinstance(v, list) else None)),
        ],
    )


def go_repr_schema(schema: Any) -> str:
    """``%#v`` of an ``apiextensions.JSONSchemaProps`` built from a v1 schema object."""
    sc = d(schema)

    def st(key: str) -> str:
        return go_quote(s(sc.get(key)))

    def bo(key: str) -> str:
        return "true" if sc.get(key) is True else "false"

    def ptr(type_name: str, key: str) -> str:
        return _go_ptr(type_name, _present(sc, key))

    schemas = _PKG + "JSONSchemaProps"
    return _struct(
        "JSONSchemaProps",
        [
            ("ID", st("id")),
            ("Schema", st("$schema")),
            ("Ref", ptr("string", "$ref")),
            ("Description", st("description")),
            ("Type", st("type")),
            ("Nullable", bo("nullable")),
            ("Format", st("format")),
            ("Title", st("title")),
            ("Default", ptr(_PKG + "JSON", "default")),
            ("Maximum", ptr("float64", "maximum")),
            ("ExclusiveMaximum", bo("exclusiveMaximum")),
            ("Minimum", ptr("float64", "minimum")),
            ("ExclusiveMinimum", bo("exclusiveMinimum")),
            ("MaxLength", ptr("int64", "maxLength")),
            ("MinLength", ptr("int64", "minLength")),
            ("Pattern", st("pattern")),
            ("MaxItems", ptr("int64", "maxItems")),
            ("MinItems", ptr("int64", "minItems")),
            ("UniqueItems", bo("uniqueItems")),
            ("MultipleOf", ptr("float64", "multipleOf")),
            ("Enum", _slice(_PKG + "JSON", sc.get("enum"), _go_json)),
            ("MaxProperties", ptr("int64", "maxProperties")),
            ("MinProperties", ptr("int64", "minProperties")),
            ("Required", _go_strings(sc.get("required"))),
            ("Items", ptr(_PKG + "JSONSchemaPropsOrArray", "items")),
            ("AllOf", _slice(schemas, sc.get("allOf"), go_repr_schema)),
            ("OneOf", _slice(schemas, sc.get("oneOf"), go_repr_schema)),
            ("AnyOf", _slice(schemas, sc.get("anyOf"), go_repr_schema)),
            ("Not", ptr(schemas, "not")),
            ("Properties", _map(schemas, sc.get("properties"), go_repr_schema)),
            ("AdditionalProperties", ptr(_PKG + "JSONSchemaPropsOrBool", "additionalProperties")),
            ("PatternProperties", _map(schemas, sc.get("patternProperties"), go_repr_schema)),
            (
                "Dependencies",
                _map(
                    "",
                    sc.get("dependencies"),
                    _go_dependency,
                    named=_PKG + "JSONSchemaDependencies",
                ),
            ),
            ("AdditionalItems", ptr(_PKG + "JSONSchemaPropsOrBool", "additionalItems")),
            (
                "Definitions",
                _map(
                    "",
                    sc.get("definitions"),
                    go_repr_schema,
                    named=_PKG + "JSONSchemaDefinitions",
                ),
            ),
            ("ExternalDocs", ptr(_PKG + "ExternalDocumentation", "externalDocs")),
            ("Example", ptr(_PKG + "JSON", "example")),
            ("XPreserveUnknownFields", ptr("bool", "x-kubernetes-preserve-unknown-fields")),
            ("XEmbeddedResource", bo("x-kubernetes-embedded-resource")),
            ("XIntOrString", bo("x-kubernetes-int-or-string")),
            ("XListMapKeys", _go_strings(sc.get("x-kubernetes-list-map-keys"))),
            ("XListType", ptr("string", "x-kubernetes-list-type")),
            ("XMapType", ptr("string", "x-kubernetes-map-type")),
            (
                "XValidations",
                _slice(
                    "",
                    sc.get("x-kubernetes-validations"),
                    go_repr_validation_rule,
                    named=_PKG + "ValidationRules",
                ),
            ),
        ],
    )


def _go_column(c: Any) -> str:
    col = d(c)
    prio = col.get("priority")
    return _struct(
        "CustomResourceColumnDefinition",
        [
            ("Name", go_quote(s(col.get("name")))),
            ("Type", go_quote(s(col.get("type")))),
            ("Format", go_quote(s(col.get("format")))),
            ("Description", go_quote(s(col.get("description")))),
            ("Priority", str(prio if is_int(prio) else 0)),
            ("JSONPath", go_quote(s(col.get("jsonPath")))),
        ],
    )


def _go_selectable(f: Any) -> str:
    return _struct("SelectableField", [("JSONPath", go_quote(s(d(f).get("jsonPath"))))])


def _go_versions(versions: list[_Version] | None) -> str:
    if versions is None:
        return f"[]{_PKG}CustomResourceDefinitionVersion(nil)"

    def one(v: _Version) -> str:
        return _struct(
            "CustomResourceDefinitionVersion",
            [
                ("Name", go_quote(v.name)),
                ("Served", "true" if v.served else "false"),
                ("Storage", "true" if v.storage else "false"),
                ("Deprecated", "true" if v.deprecated else "false"),
                ("DeprecationWarning", _go_ptr("string", v.deprecation_warning is not None)),
                ("Schema", _go_ptr(_PKG + "CustomResourceValidation", v.schema is not None)),
                (
                    "Subresources",
                    _go_ptr(_PKG + "CustomResourceSubresources", v.subresources is not None),
                ),
                (
                    "AdditionalPrinterColumns",
                    _slice(_PKG + "CustomResourceColumnDefinition", v.columns, _go_column),
                ),
                (
                    "SelectableFields",
                    _slice(_PKG + "SelectableField", v.selectable, _go_selectable),
                ),
            ],
        )

    return f"[]{_PKG}CustomResourceDefinitionVersion{{" + ", ".join(map(one, versions)) + "}"


def _invalid_go(path: str, go_value: str, detail: str) -> FieldError:
    """An Invalid error whose bad value upstream prints with ``%#v`` (rendered here as text)."""
    return FieldError(FieldErrorType.INVALID, path, detail=f"{go_value}: {detail}")


# =========================================================================== internal form


@dataclass
class _Version:
    """An internal ``CustomResourceDefinitionVersion`` (hoisted fields set to None)."""

    name: str
    served: bool
    storage: bool
    deprecated: bool
    deprecation_warning: str | None
    schema: JSON | None
    subresources: JSON | None
    columns: list[Any] | None
    selectable: list[Any] | None


@dataclass
class _Spec:
    """An internal ``CustomResourceDefinitionSpec``, converted from v1 as upstream does."""

    group: str
    version: str
    names: JSON
    scope: str
    validation: JSON | None
    subresources: JSON | None
    versions: list[_Version] | None
    columns: list[Any] | None
    selectable: list[Any] | None
    conversion: JSON | None  # {strategy, webhookClientConfig, conversionReviewVersions}
    preserve_unknown_fields: bool


def _ptr(v: Any) -> JSON | None:
    """A Go struct pointer from decoded JSON: nil for absent/null (and for a wrong type)."""
    return v if isinstance(v, dict) else None


def _opt_list(v: Any) -> list[Any] | None:
    return v if isinstance(v, list) else None


def _sem(v: Any) -> Any:
    """Normalised for ``apiequality.Semantic.DeepEqual``: null = absent, empty slice = nil."""
    if isinstance(v, dict):
        return {k: _sem(x) for k, x in v.items() if x is not None and x != []}
    if isinstance(v, list):
        return [_sem(x) for x in v]
    return v


def _same(attr: str, a: Any, b: Any) -> bool:
    """Semantic.DeepEqual: a nil slice equals an empty one; a nil pointer equals no struct."""
    if attr in ("columns", "selectable"):
        return bool(_sem(a or []) == _sem(b or []))
    return bool(_sem(a) == _sem(b))


def _internal(crd: Any) -> _Spec:
    spec = d(d(crd).get("spec"))
    raw_versions = spec.get("versions")
    versions: list[_Version] | None = None
    if isinstance(raw_versions, list):
        versions = []
        for rv in raw_versions:
            v = d(rv)
            warning = v.get("deprecationWarning")
            versions.append(
                _Version(
                    name=s(v.get("name")),
                    served=v.get("served") is True,
                    storage=v.get("storage") is True,
                    deprecated=v.get("deprecated") is True,
                    deprecation_warning=warning if isinstance(warning, str) else None,
                    schema=_ptr(v.get("schema")),
                    subresources=_ptr(v.get("subresources")),
                    columns=_opt_list(v.get("additionalPrinterColumns")),
                    selectable=_opt_list(v.get("selectableFields")),
                )
            )
    conversion: JSON | None = None
    raw_conversion = _ptr(spec.get("conversion"))
    if raw_conversion is not None:
        webhook = _ptr(raw_conversion.get("webhook"))
        conversion = {
            "strategy": s(raw_conversion.get("strategy")),
            "webhookClientConfig": _ptr(webhook.get("clientConfig")) if webhook else None,
            "conversionReviewVersions": (
                _opt_list(webhook.get("conversionReviewVersions")) if webhook else None
            ),
        }
    out = _Spec(
        group=s(spec.get("group")),
        version="",
        names=d(spec.get("names")),
        scope=s(spec.get("scope")),
        validation=None,
        subresources=None,
        versions=versions,
        columns=None,
        selectable=None,
        conversion=conversion,
        preserve_unknown_fields=spec.get("preserveUnknownFields") is True,
    )
    if versions:
        out.version = versions[0].name
        for attr, top in (
            ("schema", "validation"),
            ("subresources", "subresources"),
            ("columns", "columns"),
            ("selectable", "selectable"),
        ):
            first = getattr(versions[0], attr)
            if all(_same(attr, getattr(x, attr), first) for x in versions):
                setattr(out, top, first)
                for ver in versions:
                    setattr(ver, attr, None)
    return out


# =========================================================================== schema helpers


def _schema_has(schema: Any, pred: Callable[[JSON], bool]) -> bool:
    """Upstream's ``SchemaHas``: ``pred`` holds for ``schema`` or any schema inside it."""
    if not isinstance(schema, dict):
        return False
    if pred(schema):
        return True
    items = schema.get("items")
    for sub in items if isinstance(items, list) else [items]:
        if _schema_has(sub, pred):
            return True
    for key in ("allOf", "anyOf", "oneOf"):
        if any(_schema_has(x, pred) for x in lst(schema.get(key))):
            return True
    if _schema_has(schema.get("not"), pred):
        return True
    for key in ("properties", "patternProperties", "definitions", "dependencies"):
        if any(_schema_has(x, pred) for x in d(schema.get(key)).values()):
            return True
    return any(
        _schema_has(schema.get(k), pred) for k in ("additionalProperties", "additionalItems")
    )


def _schemas(spec: _Spec) -> list[Any]:
    out = []
    if spec.validation is not None:
        out.append(spec.validation.get("openAPIV3Schema"))
    for v in spec.versions or []:
        if v.schema is not None:
            out.append(v.schema.get("openAPIV3Schema"))
    return out


def _spec_has(spec: _Spec, pred: Callable[[JSON], bool]) -> bool:
    return any(_schema_has(sc, pred) for sc in _schemas(spec))


def _has_default(sc: JSON) -> bool:
    return sc.get("default") is not None


def _all_versions_specify_schema(spec: _Spec) -> bool:
    if spec.validation is not None and spec.validation.get("openAPIV3Schema") is not None:
        return True
    return all(
        v.schema is not None and v.schema.get("openAPIV3Schema") is not None
        for v in spec.versions or []
    )


def _as_errors(result: Any) -> Errs:
    """Field errors out of a helper's result (a list of them, or an object carrying them)."""
    if result is None:
        return []
    if isinstance(result, list | tuple) and all(isinstance(e, FieldError) for e in result):
        return list(result)
    if isinstance(result, tuple):
        return [e for part in result if isinstance(part, list) for e in part]
    errs = getattr(result, "errors", None)
    return list(errs) if isinstance(errs, list) else []


def _helper(module: str, name: str) -> Callable[..., Any] | None:
    """``pyk8s.api.<module>.<name>``, or None while that module is not there."""
    try:
        mod = importlib.import_module(f"pyk8s.api.{module}")
    except ImportError:
        return None
    fn = getattr(mod, name, None)
    return fn if callable(fn) else None


_RULE_FIELD_DETAILS = frozenset(
    {"rule is not specified", "messageExpression must be non-empty if specified"}
)


def _is_rule_field_error(e: FieldError) -> bool:
    """An error about an ``x-kubernetes-validations`` entry's fields, not from compiling it."""
    last = e.field.rsplit(".", 1)[-1]
    if last in ("rule", "messageExpression"):
        return e.detail in _RULE_FIELD_DETAILS
    return last in ("message", "reason", "fieldPath")


def _rule_errors(schema: JSON, path: str) -> Errs:
    if not _schema_has(schema, lambda sc: bool(sc.get("x-kubernetes-validations"))):
        return []
    fn = _helper("cel", "compile_schema_rules")
    return _as_errors(fn(schema, path)) if fn is not None else []


# =========================================================================== options


@dataclass
class _Opts:
    require_recognized_review_version: bool = True
    require_immutable_names: bool = False
    require_openapi_schema: bool = True
    allow_invalid_ca_bundle: bool = True


# =========================================================================== validation


def validate_custom_resource_definition(crd: JSON) -> list[FieldError]:
    """Errors that make ``crd`` (v1, defaulted) invalid on create; [] when valid."""
    spec = _internal(crd)
    required = f"{s(spec.names.get('plural'))}.{spec.group}"

    def name_fn(name: str, prefix: bool) -> list[str]:
        ret = names.name_is_dns_subdomain(name, prefix)
        if name != required:
            ret.append('must be spec.names.plural+"."+spec.group')
        return ret

    errs = validate_object_meta(crd.get("metadata"), False, name_fn, "metadata", core=False)
    errs += _validate_spec(spec, _Opts(), "spec")
    errs += _validate_common_tail(crd, spec, None)
    return errs


def validate_custom_resource_definition_update(new: JSON, old: JSON) -> list[FieldError]:
    """Errors that make replacing ``old`` by ``new`` (v1, defaulted) invalid; [] when valid.

    Ratchets as upstream does: an old CRD without schemas in every version, with an
    unrecognized ConversionReview version or an invalid caBundle may stay so; once the
    old CRD is Established, ``scope`` and ``names.kind`` are immutable.
    """
    old_spec = _internal(old)
    conv = old_spec.conversion
    opts = _Opts(
        require_recognized_review_version=(
            conv is None or _has_valid_review_version_or_empty(conv["conversionReviewVersions"])
        ),
        require_immutable_names=_established(old),
        require_openapi_schema=_all_versions_specify_schema(old_spec),
        allow_invalid_ca_bundle=_allow_invalid_ca_bundle(old, old_spec),
    )
    spec = _internal(new)
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"), core=False)
    errs += _validate_spec(spec, opts, "spec")
    if opts.require_immutable_names:
        errs += _immutable(spec.scope, old_spec.scope, "spec.scope")
        errs += _immutable(
            s(spec.names.get("kind")), s(old_spec.names.get("kind")), "spec.names.kind"
        )
    errs += _immutable(spec.group, old_spec.group, "spec.group")
    errs += _immutable(
        s(spec.names.get("plural")), s(old_spec.names.get("plural")), "spec.names.plural"
    )
    errs += _validate_common_tail(new, spec, old)
    return errs


def validate_custom_resource_definition_status_update(new: JSON, old: JSON) -> list[FieldError]:
    """Errors of a write to the ``status`` subresource (``ValidateUpdate...Status``)."""
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"), core=False)
    return errs + _validate_status(d(new.get("status")), "status")


def _validate_common_tail(crd: JSON, spec: _Spec, old: JSON | None) -> Errs:
    status = d(crd.get("status"))
    errs = _validate_status(status, "status")
    errs += _validate_stored_versions(
        status.get("storedVersions"), spec.versions or [], "status.storedVersions"
    )
    errs += _validate_api_approval(crd, spec.group, old)
    errs += _validate_preserve_unknown_fields(spec, old)
    return errs


def _immutable(new: str, old: str, path: str) -> Errs:
    return [] if new == old else [errors.invalid(path, new, IMMUTABLE)]


def _established(crd: JSON) -> bool:
    for c in lst(d(crd.get("status")).get("conditions")):
        if isinstance(c, dict) and c.get("type") == "Established":
            return c.get("status") == "True"
    return False


def _dns1035(value: str) -> str:
    return ",".join(names.is_dns1035_label(value))


def _enum(path: str, value: str, accepted: list[str]) -> Errs:
    if not value:
        return [errors.required(path)]
    if value in accepted:
        return []
    return [errors.not_supported(path, value, accepted)]


def _validate_spec(spec: _Spec, opts: _Opts, path: str) -> Errs:
    errs: Errs = []
    group_path = child(path, "group")
    if not spec.group:
        errs.append(errors.required(group_path))
    elif group_errs := names.is_dns1123_subdomain(spec.group):
        errs.append(errors.invalid(group_path, spec.group, ",".join(group_errs)))
    elif len(spec.group.split(".")) < 2:
        errs.append(
            errors.invalid(group_path, spec.group, "should be a domain with at least one dot")
        )
    errs += _enum(child(path, "scope"), spec.scope, ["Cluster", "Namespaced"])

    versions = spec.versions or []
    vpath = child(path, "versions")
    no_top_schema = spec.validation is None or spec.validation.get("openAPIV3Schema") is None
    if opts.require_openapi_schema:
        if no_top_schema:
            for i, v in enumerate(versions):
                if v.schema is None or v.schema.get("openAPIV3Schema") is None:
                    errs.append(
                        errors.required(
                            f"{idx(vpath, i)}.schema.openAPIV3Schema", "schemas are required"
                        )
                    )
    elif not spec.preserve_unknown_fields and no_top_schema:
        for i, v in enumerate(versions):
            if v.served and (v.schema is None or v.schema.get("openAPIV3Schema") is None):
                errs.append(
                    errors.required(
                        f"{idx(vpath, i)}.schema.openAPIV3Schema",
                        "because otherwise all fields are pruned",
                    )
                )
    if _spec_has(spec, _has_default) and spec.preserve_unknown_fields:
        errs.append(
            errors.invalid(
                child(path, "preserveUnknownFields"),
                True,
                "must be false in order to use defaults in the schema",
            )
        )

    storage_count = 0
    seen: set[str] = set()
    unique = True
    per_version_subresources = any(v.subresources is not None for v in versions)
    for i, v in enumerate(versions):
        if v.storage:
            storage_count += 1
        if v.name in seen:
            unique = False
        seen.add(v.name)
        if msg := _dns1035(v.name):
            errs.append(errors.invalid(f"{idx(vpath, i)}.name", v.name, msg))
        subresources = v.subresources if per_version_subresources else spec.subresources
        status_enabled = subresources is not None and subresources.get("status") is not None
        errs += _validate_version(v, idx(vpath, i), status_enabled, opts)

    if not unique:
        errs.append(
            _invalid_go(vpath, _go_versions(spec.versions), "must contain unique version names")
        )
    if storage_count != 1:
        errs.append(
            _invalid_go(
                vpath,
                _go_versions(spec.versions),
                "must have exactly one version marked as storage version",
            )
        )
    if spec.version and (msg := _dns1035(spec.version)):
        errs.append(errors.invalid(child(path, "version"), spec.version, msg))

    npath = child(path, "names")
    for key in ("plural", "singular", "kind", "listKind"):
        if not s(spec.names.get(key)):
            errs.append(errors.required(child(npath, key)))
    errs += _validate_names(spec.names, npath)

    any_status = any(
        sub is not None and sub.get("status") is not None
        for sub in [spec.subresources, *(v.subresources for v in versions)]
    )
    errs += _validate_validation(spec.validation, any_status, opts, child(path, "validation"))
    errs += _validate_subresources(spec.subresources, child(path, "subresources"))
    for i, col in enumerate(spec.columns or []):
        errs += _validate_column(col, idx(child(path, "additionalPrinterColumns"), i))
    if spec.selectable:
        sf_path = child(path, "selectableFields")
        if spec.validation is None:
            errs.append(
                errors.invalid(
                    sf_path,
                    "",
                    "selectableFields may only be set when validations.schema is included",
                )
            )
        else:
            errs += _validate_selectable_fields(
                spec.selectable, spec.validation.get("openAPIV3Schema"), sf_path
            )

    conv = spec.conversion
    if conv is not None and conv["strategy"] != "None" and spec.preserve_unknown_fields:
        errs.append(
            errors.invalid(
                child(path, "conversion.strategy"),
                conv["strategy"],
                "must be None if spec.preserveUnknownFields is true",
            )
        )
    errs += _validate_conversion(conv, opts, child(path, "conversion"))
    return errs


def _validate_version(v: _Version, path: str, status_enabled: bool, opts: _Opts) -> Errs:
    errs = [
        errors.invalid(child(path, "deprecationWarning"), v.deprecation_warning, msg)
        for msg in _deprecation_warning_errors(v.deprecated, v.deprecation_warning)
    ]
    errs += _validate_validation(v.schema, status_enabled, opts, child(path, "schema"))
    errs += _validate_subresources(v.subresources, child(path, "subresources"))
    for i, col in enumerate(v.columns or []):
        errs += _validate_column(col, idx(child(path, "additionalPrinterColumns"), i))
    if v.selectable:
        sf_path = child(path, "selectableFields")
        if v.schema is None or v.schema.get("openAPIV3Schema") is None:
            errs.append(
                errors.invalid(
                    sf_path,
                    "",
                    "selectableFields may only be set when version.schema.openAPIV3Schema "
                    "is not included",
                )
            )
        else:
            errs += _validate_selectable_fields(
                v.selectable, v.schema.get("openAPIV3Schema"), sf_path
            )
    return errs


def _deprecation_warning_errors(deprecated: bool, warning: str | None) -> list[str]:
    if not deprecated and warning is not None:
        return ["can only be set for deprecated versions"]
    if warning is None:
        return []
    out = []
    if len(warning.encode()) > 256:
        out.append("must be <= 256 characters long")
    if not warning:
        out.append("must not be an empty string")
    offset = 0  # upstream reports the byte offset of the first non-printable rune
    for c in warning:
        if not c.isprintable():
            out.append(
                "must only contain printable UTF-8 characters; "
                f"non-printable character found at index {offset}"
            )
            break
        offset += len(c.encode())
    return out


def _validate_names(nm: JSON, path: str) -> Errs:
    """Upstream's ``ValidateCustomResourceDefinitionNames`` (spec.names, status.acceptedNames)."""
    errs: Errs = []
    plural, singular = s(nm.get("plural")), s(nm.get("singular"))
    kind, list_kind = s(nm.get("kind")), s(nm.get("listKind"))
    if plural and (msg := _dns1035(plural)):
        errs.append(errors.invalid(child(path, "plural"), plural, msg))
    if singular and (msg := _dns1035(singular)):
        errs.append(errors.invalid(child(path, "singular"), singular, msg))
    mixed = "may have mixed case, but should otherwise match: "
    if kind and (msg := _dns1035(kind.lower())):
        errs.append(errors.invalid(child(path, "kind"), kind, mixed + msg))
    if list_kind and (msg := _dns1035(list_kind.lower())):
        errs.append(errors.invalid(child(path, "listKind"), list_kind, mixed + msg))
    for i, short in enumerate(lst(nm.get("shortNames"))):
        if msg := _dns1035(s(short)):
            errs.append(errors.invalid(idx(child(path, "shortNames"), i), s(short), msg))
    if kind and kind == list_kind:
        errs.append(
            errors.invalid(
                child(path, "listKind"), list_kind, "kind and listKind may not be the same"
            )
        )
    for i, cat in enumerate(lst(nm.get("categories"))):
        if msg := _dns1035(s(cat)):
            errs.append(errors.invalid(idx(child(path, "categories"), i), s(cat), msg))
    return errs


def _validate_status(status: JSON, path: str) -> Errs:
    return _validate_names(d(status.get("acceptedNames")), child(path, "acceptedNames"))


def _validate_stored_versions(stored: Any, versions: list[_Version], path: str) -> Errs:
    if not isinstance(stored, list) or not stored:
        return [_invalid_go(path, _go_strings(stored), "must have at least one stored version")]
    errs: Errs = []
    index: dict[str, int] = {}
    for i, v in enumerate(stored):
        index[s(v)] = i
    for v in versions:
        present = v.name in index
        if v.storage and not present:
            errs.append(
                _invalid_go(path, _go_strings(stored), f"must have the storage version {v.name}")
            )
        if present:
            del index[v.name]
    for name, i in sorted(index.items(), key=lambda kv: kv[1]):
        errs.append(errors.invalid(idx(path, i), name, "must appear in spec.versions"))
    return errs


# ---------------------------------------------------------------- the schema's root

_ROOT_FIELDS: list[tuple[str, str, str]] = [
    # (Go field, v1 JSON key, kind: s=string b=bool p=pointer l=slice m=map)
    ("ID", "id", "s"),
    ("Schema", "$schema", "s"),
    ("Ref", "$ref", "p"),
    ("Description", "description", "s"),
    ("Type", "type", "s"),
    ("Nullable", "nullable", "b"),
    ("Format", "format", "s"),
    ("Title", "title", "s"),
    ("Default", "default", "p"),
    ("Maximum", "maximum", "p"),
    ("ExclusiveMaximum", "exclusiveMaximum", "b"),
    ("Minimum", "minimum", "p"),
    ("ExclusiveMinimum", "exclusiveMinimum", "b"),
    ("MaxLength", "maxLength", "p"),
    ("MinLength", "minLength", "p"),
    ("Pattern", "pattern", "s"),
    ("MaxItems", "maxItems", "p"),
    ("MinItems", "minItems", "p"),
    ("UniqueItems", "uniqueItems", "b"),
    ("MultipleOf", "multipleOf", "p"),
    ("Enum", "enum", "l"),
    ("MaxProperties", "maxProperties", "p"),
    ("MinProperties", "minProperties", "p"),
    ("Required", "required", "l"),
    ("Items", "items", "p"),
    ("AllOf", "allOf", "l"),
    ("OneOf", "oneOf", "l"),
    ("AnyOf", "anyOf", "l"),
    ("Not", "not", "p"),
    ("Properties", "properties", "m"),
    ("AdditionalProperties", "additionalProperties", "p"),
    ("PatternProperties", "patternProperties", "m"),
    ("Dependencies", "dependencies", "m"),
    ("AdditionalItems", "additionalItems", "p"),
    ("Definitions", "definitions", "m"),
    ("ExternalDocs", "externalDocs", "p"),
    ("Example", "example", "p"),
    ("XPreserveUnknownFields", "x-kubernetes-preserve-unknown-fields", "p"),
    ("XEmbeddedResource", "x-kubernetes-embedded-resource", "b"),
    ("XIntOrString", "x-kubernetes-int-or-string", "b"),
    ("XListMapKeys", "x-kubernetes-list-map-keys", "l"),
    ("XListType", "x-kubernetes-list-type", "p"),
    ("XMapType", "x-kubernetes-map-type", "p"),
    ("XValidations", "x-kubernetes-validations", "l"),
]
_ALLOWED_AT_ROOT = [
    "Description",
    "Type",
    "Format",
    "Title",
    "Maximum",
    "ExclusiveMaximum",
    "Minimum",
    "ExclusiveMinimum",
    "MaxLength",
    "MinLength",
    "Pattern",
    "MaxItems",
    "MinItems",
    "UniqueItems",
    "MultipleOf",
    "Required",
    "Items",
    "Properties",
    "ExternalDocs",
    "Example",
    "XPreserveUnknownFields",
    "XValidations",
]


def _nonzero(schema: JSON, key: str, kind: str) -> bool:
    v = schema.get(key)
    if kind == "s":
        return isinstance(v, str) and v != ""
    if kind == "b":
        return v is True
    if kind == "l":
        return isinstance(v, list)
    if kind == "m":
        return isinstance(v, dict)
    return v is not None


def _validate_root_for_status(schema: JSON, path: str) -> Errs:
    """With the status subresource, only fields that survive extracting ``status`` at the root."""
    for go_name, key, kind in _ROOT_FIELDS:
        if not _nonzero(schema, key, kind):
            continue
        if go_name == "Type":
            if schema.get("type") != "object":
                return [
                    errors.invalid(
                        f"{path}.type",
                        s(schema.get("type")),
                        'only "object" is allowed as the type at the root of the schema if the '
                        "status subresource is enabled",
                    )
                ]
            continue
        if go_name not in _ALLOWED_AT_ROOT:
            allowed = "[" + " ".join(_ALLOWED_AT_ROOT) + "]"
            return [
                _invalid_go(
                    path,
                    go_repr_schema(schema),
                    f"only {allowed} fields are allowed at the root of the schema if the status "
                    "subresource is enabled",
                )
            ]
    return []


def _validate_validation(cv: JSON | None, status_enabled: bool, opts: _Opts, path: str) -> Errs:
    """Upstream's ``validateCustomResourceDefinitionValidation`` (the root, then the helpers)."""
    if cv is None:
        return []
    schema = cv.get("openAPIV3Schema")
    if not isinstance(schema, dict):
        return []
    spath = child(path, "openAPIV3Schema")
    errs: Errs = []
    if status_enabled:
        errs += _validate_root_for_status(schema, spath)
    if schema.get("nullable") is True:
        errs.append(errors.forbidden(f"{spath}.nullable", "nullable cannot be true at the root"))
    structural = _helper("crdschema", "structural_errors")
    if structural is not None:
        errs += _as_errors(structural(schema, spath))
    rules = _rule_errors(schema, spath)
    if errs:
        # upstream compiles no rule of a schema that is not structural; the checks of the
        # rules' own fields (rule, message, reason, fieldPath) still apply
        rules = [e for e in rules if _is_rule_field_error(e)]
    errs += rules
    out: Errs = []
    shown: set[str] = set()
    for e in errs:  # a helper may report a root rule too: each error once
        if str(e) not in shown:
            shown.add(str(e))
            out.append(e)
    return out


# ---------------------------------------------------------------- subresources, columns


def _simple_json_path(value: str, path: str) -> Errs:
    if not value:
        return [errors.invalid(path, value, "must not be empty")]
    if value[0] != ".":
        return [errors.invalid(path, value, "must be a simple json path starting with .")]
    return []


def _validate_subresources(sub: JSON | None, path: str) -> Errs:
    if sub is None:
        return []
    scale = _ptr(sub.get("scale"))
    if scale is None:
        return []
    errs: Errs = []
    for key, prefix, under in (
        ("specReplicasPath", ".spec.", ".spec"),
        ("statusReplicasPath", ".status.", ".status"),
    ):
        p = f"{path}.scale.{key}"
        value = s(scale.get(key))
        if not value:
            errs.append(errors.required(p))
        elif simple := _simple_json_path(value, p):
            errs += simple
        elif not value.startswith(prefix):
            errs.append(errors.invalid(p, value, f"should be a json path under {under}"))
    selector = scale.get("labelSelectorPath")
    if isinstance(selector, str) and selector:
        p = f"{path}.scale.labelSelectorPath"
        if simple := _simple_json_path(selector, p):
            errs += simple
        elif not selector.startswith((".spec.", ".status.")):
            errs.append(
                errors.invalid(p, selector, "should be a json path under either .spec or .status")
            )
    return errs


def _validate_column(col: Any, path: str) -> Errs:
    """Upstream's ``ValidateCustomResourceColumnDefinition`` (note the ``JSONPath`` path)."""
    c = d(col)
    errs: Errs = []
    if not s(c.get("name")):
        errs.append(errors.required(child(path, "name")))
    types = "must be one of " + ",".join(_PRINTER_COLUMN_TYPES)
    type_ = s(c.get("type"))
    if not type_:
        errs.append(errors.required(child(path, "type"), types))
    elif type_ not in _PRINTER_COLUMN_TYPES:
        errs.append(errors.invalid(child(path, "type"), type_, types))
    fmt = s(c.get("format"))
    if fmt and fmt not in _PRINTER_COLUMN_FORMATS:
        errs.append(
            errors.invalid(
                child(path, "format"), fmt, "must be one of " + ",".join(_PRINTER_COLUMN_FORMATS)
            )
        )
    json_path = s(c.get("jsonPath"))
    if not json_path:
        errs.append(errors.required(child(path, "JSONPath")))
    else:
        errs += _simple_json_path(json_path, child(path, "JSONPath"))
    return errs


# ---------------------------------------------------------------- selectable fields


def _path_tokens(text: str) -> list[str]:
    """The scanner of upstream's ``ValidFieldPath``: '.', '[', ']' and what lies between."""
    toks: list[str] = []
    while text:
        if text[0] == "'":
            for i in range(1, len(text)):
                if text[i] == "'" and text[i - 1] != "\\":
                    toks.append(text[: i + 1])
                    text = text[i + 1 :]
                    break
            else:
                toks.append(text)
                text = ""
            continue
        for i, c in enumerate(text):
            if c in ".[]":
                toks.append(text[: max(i, 1)])
                text = text[max(i, 1) :]
                break
        else:
            toks.append(text)
            text = ""
    return toks


_SQ_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "'": "'",
    "\\": "\\",
}


def _unescape_single_quote(text: str) -> str:
    def sub(m: re.Match[str]) -> str:
        c = m.group(0)[1]
        if c not in _SQ_ESCAPES:
            raise ValueError(f"invalid escape char {m.group(0)}")
        return _SQ_ESCAPES[c]

    return re.sub(r"\\.", sub, text)


def valid_field_path(
    json_path: str, schema: Any, *, allow_array_notation: bool = True
) -> tuple[list[tuple[str, str]], Any]:
    """Upstream's ``cel.ValidFieldPath``: the path's elements and the schema it points to.

    ``schema`` is a (structural) v1 schema object. Elements are ``("field", name)`` or
    ``("key", key)`` (an entry of an ``additionalProperties`` map). Raises ValueError
    with upstream's message (``does not refer to a valid field``) when it does not resolve.
    """
    elements: list[tuple[str, str]] = []
    current: Any = schema

    def append(name: str) -> None:
        nonlocal current
        sc = d(current) if isinstance(current, dict) else None
        if sc is None:
            raise ValueError("does not refer to a valid field")
        if isinstance(sc.get("properties"), dict) and sc["properties"]:
            elements.append(("field", name))
            nxt = sc["properties"].get(name)
            if not isinstance(nxt, dict):
                raise ValueError("does not refer to a valid field")
            current = nxt
        elif sc.get("additionalProperties") is not None:
            elements.append(("key", name))
            ap = sc["additionalProperties"]
            current = ap if isinstance(ap, dict) else None
        else:
            raise ValueError("does not refer to a valid field")

    toks = _path_tokens(json_path)
    i = 0
    while i < len(toks):
        tok = toks[i]
        i += 1
        if tok == "[":
            if not allow_array_notation:
                raise ValueError("array notation is not allowed")
            if i >= len(toks):
                raise ValueError("unexpected end of JSON path")
            tok = toks[i]
            i += 1
            if len(tok) < 2 or tok[0] != "'" or tok[-1] != "'":
                raise ValueError(f"expected single quoted string but got {tok}")
            try:
                key = _unescape_single_quote(tok[1:-1])
            except ValueError as e:
                raise ValueError(f"invalid string literal: {e}") from None
            append(key)
            if i >= len(toks):
                raise ValueError("unexpected end of JSON path")
            tok = toks[i]
            i += 1
            if tok != "]":
                raise ValueError(f"expected ] but got {tok}")
        elif tok == ".":
            if i >= len(toks):
                raise ValueError("unexpected end of JSON path")
            tok = toks[i]
            i += 1
            append(tok)
        else:
            raise ValueError(f"expected [ or . but got: {tok}")
    return elements, current


def _path_string(elements: list[tuple[str, str]]) -> str:
    out = ""
    for kind, name in elements:
        if kind == "key":
            out += f"[{name}]"
        else:
            out += f".{name}" if out else name
    return out


def _validate_selectable_fields(fields: list[Any], schema: Any, path: str) -> Errs:
    errs: Errs = []
    unique: set[str] = set()
    for i, sf in enumerate(fields):
        p = f"{idx(path, i)}.jsonPath"
        json_path = s(d(sf).get("jsonPath"))
        if not json_path:
            errs.append(errors.required(p))
            continue
        try:
            elements, found = valid_field_path(json_path, schema, allow_array_notation=False)
        except ValueError as e:
            errs.append(errors.invalid(p, json_path, f"is an invalid path: {e}"))
            continue
        if elements and elements[0] == ("field", "metadata"):
            errs.append(errors.invalid(p, json_path, "must not point to fields in metadata"))
        if not (isinstance(found, dict) and found.get("type") in ("string", "boolean", "integer")):
            errs.append(
                errors.invalid(
                    p,
                    json_path,
                    "must point to a field of type string, boolean or integer. Enum string "
                    "fields and strings with formats are allowed.",
                )
            )
        key = _path_string(elements)
        if key in unique:
            errs.append(errors.duplicate(p, json_path))
        else:
            unique.add(key)
    if len(unique) > MAX_SELECTABLE_FIELDS:
        errs.append(too_many(path, len(unique), MAX_SELECTABLE_FIELDS))
    return errs


# ---------------------------------------------------------------- conversion


def _has_valid_review_version_or_empty(versions: Any) -> bool:
    vs = lst(versions)
    return not vs or any(v in _ACCEPTED_REVIEW_VERSIONS for v in vs)


def _ca_bundle_bytes(cc: JSON) -> bytes:
    value = cc.get("caBundle")
    if not isinstance(value, str) or not value:
        return b""
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        return value.encode()


def _validate_conversion(conv: JSON | None, opts: _Opts, path: str) -> Errs:
    if conv is None:
        return []
    strategy = conv["strategy"]
    errs = _enum(child(path, "strategy"), strategy, ["None", "Webhook"])
    cc = conv["webhookClientConfig"]
    review = conv["conversionReviewVersions"]
    cc_path = child(path, "webhookClientConfig")
    if strategy == "Webhook":
        if cc is None:
            errs.append(errors.required(cc_path, "required when strategy is set to Webhook"))
        else:
            url, service = cc.get("url"), _ptr(cc.get("service"))
            url = url if isinstance(url, str) else None
            if (url is None) == (service is None):
                errs.append(errors.required(cc_path, "exactly one of url or service is required"))
            elif url is not None:
                errs += validate_webhook_url(child(cc_path, "url"), url, force_https=True)
            elif service is not None:
                port = service.get("port")
                # upstream passes name and namespace in swapped order; its messages follow that
                url_path = service.get("path")
                errs += validate_webhook_service(
                    child(cc_path, "service"),
                    namespace=s(service.get("name")),
                    name=s(service.get("namespace")),
                    url_path=url_path if isinstance(url_path, str) else None,
                    port=port if is_int(port) else 0,
                )
            bundle = _ca_bundle_bytes(cc)
            if bundle and not opts.allow_invalid_ca_bundle:
                errs += validate_ca_bundle(child(cc_path, "caBundle"), bundle)
        errs += _validate_review_versions(
            review,
            opts.require_recognized_review_version,
            child(path, "conversionReviewVersions"),
        )
    else:
        if cc is not None:
            errs.append(
                errors.forbidden(cc_path, "should not be set when strategy is not set to Webhook")
            )
        if lst(review):
            errs.append(
                errors.forbidden(
                    child(path, "conversionReviewVersions"),
                    "should not be set when strategy is not set to Webhook",
                )
            )
    return errs


def _validate_review_versions(versions: Any, require_recognized: bool, path: str) -> Errs:
    vs = lst(versions)
    if not vs:
        return [errors.required(path)]
    errs: Errs = []
    seen: set[str] = set()
    accepted = False
    for i, raw in enumerate(vs):
        v = s(raw)
        if v in seen:
            errs.append(errors.invalid(idx(path, i), v, "duplicate version"))
            continue
        seen.add(v)
        errs += [errors.invalid(idx(path, i), v, m) for m in names.is_dns1035_label(v)]
        if v in _ACCEPTED_REVIEW_VERSIONS:
            accepted = True
    if require_recognized and not accepted:
        errs.append(
            _invalid_go(
                path,
                _go_strings(vs),
                "must include at least one of " + ", ".join(sorted(_ACCEPTED_REVIEW_VERSIONS)),
            )
        )
    return errs


def _allow_invalid_ca_bundle(old: JSON, old_spec: _Spec) -> bool:
    if not _established(old):
        return True
    conv = old_spec.conversion
    cc = conv["webhookClientConfig"] if conv is not None else None
    if cc is None:
        return False
    bundle = _ca_bundle_bytes(cc)
    if not bundle:
        return False
    return bool(validate_ca_bundle("caBundle", bundle))


# ---------------------------------------------------------------- webhooks (k8s.io/apiserver)


def validate_webhook_url(path: str, url: str, *, force_https: bool) -> list[FieldError]:
    """Upstream's ``webhook.ValidateWebhookURL`` (conversion and admission webhooks)."""
    try:
        u = _go_url_parse(url)
    except _URLError as e:
        return [errors.required(path, f"url must be a valid URL: {e}{_URL_FORM}")]
    errs: Errs = []
    if force_https and u.scheme != "https":
        errs.append(
            errors.invalid(path, u.scheme, "'https' is the only allowed URL scheme" + _URL_FORM)
        )
    if not u.host:
        errs.append(errors.invalid(path, u.host, "host must be specified" + _URL_FORM))
    if u.user is not None:
        errs.append(errors.invalid(path, u.user, "user information is not permitted in the URL"))
    if u.fragment:
        errs.append(errors.invalid(path, u.fragment, "fragments are not permitted in the URL"))
    if u.raw_query:
        errs.append(
            errors.invalid(path, u.raw_query, "query parameters are not permitted in the URL")
        )
    return errs


def validate_webhook_service(
    path: str, *, namespace: str, name: str, url_path: str | None, port: int
) -> list[FieldError]:
    """Upstream's ``webhook.ValidateWebhookService``: a webhook's service reference."""
    errs: Errs = []
    if not name:
        errs.append(errors.required(child(path, "name"), "service name is required"))
    if not namespace:
        errs.append(errors.required(child(path, "namespace"), "service namespace is required"))
    if port_errs := names.is_valid_port_num(port):
        errs.append(
            errors.invalid(child(path, "port"), port, "port is not valid: " + ", ".join(port_errs))
        )
    if url_path is None or url_path in ("", "/"):
        return errs
    ppath = child(path, "path")
    if url_path == "//":
        return [*errs, errors.invalid(ppath, url_path, "segment[0] may not be empty")]
    if not url_path.startswith("/"):
        errs.append(errors.invalid(ppath, url_path, "must start with a '/'"))
    to_check = url_path[1:]
    if to_check.endswith("/"):
        to_check = to_check[:-1]
    for i, step in enumerate(to_check.split("/")):
        if not step:
            errs.append(errors.invalid(ppath, url_path, f"segment[{i}] may not be empty"))
            continue
        for failure in names.is_dns1123_subdomain(step):
            errs.append(errors.invalid(ppath, url_path, f"segment[{i}]: {failure}"))
    return errs


def validate_ca_bundle(path: str, bundle: bytes) -> list[FieldError]:
    """Upstream's ``webhook.ValidateCABundle``: PEM certificates client-go can trust."""
    if _pem_certificates_ok(bundle):
        return []
    return [
        _invalid_go(
            path,
            _go_bytes(bundle),
            f"unable to load root certificates: {_ca_error(bundle)}",
        )
    ]


_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([^\r\n-]*)-----\r?\n(.*?)-----END \1-----[ \t]*\r?\n?", re.DOTALL
)


@dataclass
class _PemBlock:
    type: str
    headers: bool
    body: bytes | None  # None when the base64 does not decode


def _pem_blocks(data: bytes) -> tuple[list[_PemBlock], bool]:
    """The PEM blocks in ``data`` and whether it ends in something that is not a block."""
    blocks: list[_PemBlock] = []
    pos = 0
    while pos < len(data):
        m = _PEM_BLOCK.search(data, pos)
        if m is None:
            return blocks, bool(data[pos:].strip())
        text = m.group(2)
        headers = False
        lines = text.split(b"\n")
        if lines and b":" in lines[0]:
            headers = True
            while lines and lines[0].strip():
                lines.pop(0)
        try:
            body = base64.b64decode(b"".join(line.strip() for line in lines), validate=True)
        except ValueError:
            body = None
        blocks.append(_PemBlock(m.group(1).decode(errors="replace"), headers, body))
        pos = m.end()
    return blocks, False


def _parse_certificate(der: bytes) -> str | None:
    """None when ``der`` is an X.509 certificate, else Go's error text."""
    try:
        from cryptography import x509

        x509.load_der_x509_certificate(der)
    except Exception:
        return "x509: malformed certificate"
    return None


def _pem_certificates_ok(bundle: bytes) -> bool:
    blocks, _ = _pem_blocks(bundle)
    return any(
        b.type == "CERTIFICATE"
        and not b.headers
        and b.body is not None
        and _parse_certificate(b.body) is None
        for b in blocks
    )


def _ca_error(bundle: bytes) -> str:
    """client-go's ``createErrorParsingCAData``: why no certificate could be loaded."""
    blocks, trailing = _pem_blocks(bundle)
    if not blocks:
        return "unable to parse bytes as PEM block"
    for b in blocks:
        if b.body is None:
            return "unable to parse bytes as PEM block"
        if b.type != "CERTIFICATE" or b.headers:
            continue
        if (err := _parse_certificate(b.body)) is not None:
            return f"failed to parse certificate: {err}"
    if trailing:
        return "unable to parse bytes as PEM block"
    return "no valid certificate authority data seen"


# ---------------------------------------------------------------- Go's net/url, the parts used


class _URLError(Exception):
    pass


@dataclass
class _URL:
    scheme: str = ""
    opaque: str = ""
    user: str | None = None
    host: str = ""
    path: str = ""
    raw_query: str = ""
    fragment: str = ""


_HOST_OK = frozenset("!$&'()*+,;=:[]<>\"-_.~")
_USERINFO_OK = frozenset("-._:~!$&'()*+,;=%@")


def _ishex(c: str) -> bool:
    return c in "0123456789abcdefABCDEF"


def _unescape(text: str, host: bool) -> str:
    i = 0
    while i < len(text):
        c = text[i]
        if c == "%":
            if i + 2 >= len(text) or not _ishex(text[i + 1]) or not _ishex(text[i + 2]):
                raise _URLError(f"invalid URL escape {go_quote(text[i : i + 3])}")
            if host and int(text[i + 1], 16) < 8 and text[i : i + 3] != "%25":
                raise _URLError(f"invalid URL escape {go_quote(text[i : i + 3])}")
            i += 3
            continue
        if host and ord(c) < 0x80 and not (c.isascii() and c.isalnum()) and c not in _HOST_OK:
            raise _URLError(f"invalid character {go_quote(c)} in host name")
        i += 1
    return re.sub(
        r"%([0-9a-fA-F]{2})",
        lambda m: bytes([int(m.group(1), 16)]).decode("latin-1"),
        text,
    )


def _valid_optional_port(port: str) -> bool:
    return port == "" or (port[0] == ":" and all("0" <= c <= "9" for c in port[1:]))


def _parse_host(host: str) -> str:
    if host.startswith("["):
        i = host.rfind("]")
        if i < 0:
            raise _URLError("missing ']' in host")
        colon_port = host[i + 1 :]
        if not _valid_optional_port(colon_port):
            raise _URLError(f"invalid port {go_quote(colon_port)} after host")
    elif (i := host.rfind(":")) != -1:
        colon_port = host[i:]
        if not _valid_optional_port(colon_port):
            raise _URLError(f"invalid port {go_quote(colon_port)} after host")
    return _unescape(host, host=True)


def _parse(raw: str, via_request: bool) -> _URL:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
        raise _URLError("net/url: invalid control character in URL")
    if raw == "" and via_request:
        raise _URLError("empty url")
    u = _URL()
    if raw == "*":
        u.path = "*"
        return u
    rest = raw
    for i, c in enumerate(raw):
        if c.isascii() and c.isalpha():
            continue
        if (c.isascii() and c.isdigit()) or c in "+-.":
            if i == 0:
                break
            continue
        if c == ":":
            if i == 0:
                raise _URLError("missing protocol scheme")
            u.scheme, rest = raw[:i].lower(), raw[i + 1 :]
        break
    if rest.endswith("?") and rest.count("?") == 1:
        rest = rest[:-1]
    else:
        rest, _, u.raw_query = rest.partition("?")
    if not rest.startswith("/"):
        if u.scheme:
            u.opaque = rest
            return u
        if via_request:
            raise _URLError("invalid URI for request")
        if ":" in rest.partition("/")[0]:
            raise _URLError("first path segment in URL cannot contain colon")
    if (u.scheme or (not via_request and not rest.startswith("///"))) and rest.startswith("//"):
        authority, slash, tail = rest[2:].partition("/")
        rest = slash + tail
        at = authority.rfind("@")
        u.host = _parse_host(authority[at + 1 :] if at >= 0 else authority)
        if at >= 0:
            userinfo = authority[:at]
            if not all((c.isascii() and c.isalnum()) or c in _USERINFO_OK for c in userinfo):
                raise _URLError("net/url: invalid userinfo")
            u.user = userinfo
    u.path = _unescape(rest, host=False)
    return u


def _go_url_parse(raw: str) -> _URL:
    """Go's ``url.Parse``; raises _URLError with Go's ``parse "<url>": <why>`` text."""
    without_fragment, hash_, fragment = raw.partition("#")
    try:
        u = _parse(without_fragment, False)
    except _URLError as e:
        raise _URLError(f"parse {go_quote(without_fragment)}: {e}") from None
    if hash_:
        try:
            u.fragment = _unescape(fragment, host=False)
        except _URLError as e:
            raise _URLError(f"parse {go_quote(raw)}: {e}") from None
    return u


def _go_url_parse_request_uri(raw: str) -> _URL | None:
    try:
        return _parse(raw, True)
    except _URLError:
        return None


# ---------------------------------------------------------------- API approval, pruning


def _is_protected_group(group: str) -> bool:
    return (
        group == "k8s.io"
        or group.endswith(".k8s.io")
        or group == "kubernetes.io"
        or group.endswith(".kubernetes.io")
    )


def _approval_state(annotations: dict[str, Any]) -> tuple[str, str]:
    value = s(annotations.get(API_APPROVED_ANNOTATION))
    key = go_quote(API_APPROVED_ANNOTATION)
    if not value:
        return (
            "missing",
            f"protected groups must have approval annotation {key}, see "
            "https://github.com/kubernetes/enhancements/pull/1111",
        )
    if value.startswith("unapproved"):
        return "bypassed", f"not approved: {go_quote(value)}"
    u = _go_url_parse_request_uri(value)
    if u is not None and u.host and u.scheme:
        return "approved", f"approved in {value}"
    return (
        "invalid",
        f"protected groups must have approval annotation {key} with either a URL or a reason "
        'starting with "unapproved", see https://github.com/kubernetes/enhancements/pull/1111',
    )


def _validate_api_approval(crd: JSON, group: str, old: JSON | None) -> Errs:
    if not _is_protected_group(group):
        return []
    new_state, reason = _approval_state(d(d(crd.get("metadata")).get("annotations")))
    if old is not None:
        old_state, _ = _approval_state(d(d(old.get("metadata")).get("annotations")))
        if old_state == new_state:
            return []
    path = f"metadata.annotations[{API_APPROVED_ANNOTATION}]"
    if new_state == "missing":
        return [errors.required(path, reason)]
    if new_state in ("approved", "bypassed"):
        return []
    value = s(d(d(crd.get("metadata")).get("annotations")).get(API_APPROVED_ANNOTATION))
    return [errors.invalid(path, value, reason)]


def _validate_preserve_unknown_fields(spec: _Spec, old: JSON | None) -> Errs:
    if old is not None and d(old.get("spec")).get("preserveUnknownFields") is True:
        return []
    if spec.preserve_unknown_fields:
        return [
            errors.invalid(
                "spec.preserveUnknownFields",
                True,
                "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in "
                "spec.versions[*].schema instead",
            )
        ]
    return []
