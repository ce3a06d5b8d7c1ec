"""Structural schemas for CustomResourceDefinitions: check, prune, default, validate.

A CRD's ``openAPIV3Schema`` is both a contract checked when the CRD is written and
the machinery every custom resource goes through. This package is upstream's
``apiextensions-apiserver/pkg/apiserver/schema`` (structural invariants, pruning,
defaulting, list types, embedded ObjectMeta) plus kube-openapi's ``validate`` as the
API server uses it, with upstream's messages and field paths, so ``kubectl`` prints
what it prints against a real cluster. Pure code on decoded JSON, no I/O.

The order the API server applies them to a custom resource (upstream's codec, then
its strategy)::

    err = metadata_decode_error(obj.get("metadata"))   # 400 when not None
    unknown = prune(obj, schema)          # warn or refuse: unknown field "spec.foo"
    apply_defaults(obj, schema)           # on create, update and read
    errs = validate(obj, schema)          # create: 422 with these causes
    errs = validate_update(obj, old, schema)           # update (ratcheting)

Schemas are plain decoded JSON and are never modified; each is compiled on first use
and cached while the same dict object is passed again, so treat a schema as immutable
(a changed CRD gives a new dict).

For a CRD version: ``structural_errors(schema, "spec.versions[0].schema.openAPIV3Schema")``.
Nothing here evaluates ``x-kubernetes-validations`` (see :mod:`pyk8s.api.cel`).
"""

from __future__ import annotations

from typing import Any

from pyk8s.api.crdschema import _listtype, _objectmeta, _openapi, _prune, _structural
from pyk8s.api.errors import FieldError

__all__ = [
    "apply_defaults",
    "metadata_decode_error",
    "prune",
    "structural_errors",
    "validate",
    "validate_embedded_resources",
    "validate_list_types",
    "validate_openapi",
    "validate_update",
]


def metadata_decode_error(metadata: Any) -> str | None:
    """Go's JSON error for a ``metadata`` that does not decode into ``ObjectMeta``.

    Upstream's decoder refuses such a custom resource before validation (400), e.g.
    ``json: cannot unmarshal number into Go struct field ObjectMeta.labels of type
    map[string]string``; ``None`` when it decodes.
    """
    return _objectmeta.decode_error(metadata)


def structural_errors(schema: dict[str, Any], path: str) -> list[FieldError]:
    """The errors creating a CRD version with this ``openAPIV3Schema`` gets.

    ``path`` is the schema's own path (``spec.versions[0].schema.openAPIV3Schema``); the
    status subresource's root-keyword rule is CRD validation's
    (:mod:`pyk8s.api.validation.apiextensions`), which prints the schema as upstream.
    Structural errors come sorted by text (as upstream sorts them); defaults are only
    checked once the schema is structural.
    """
    return _structural.structural_errors(schema, path)


def prune(obj: Any, schema: dict[str, Any], *, root: bool = True) -> list[str]:
    """Drop, in place, the fields ``schema`` does not specify; return their paths.

    With ``root`` (a whole custom resource) ``apiVersion``, ``kind`` and ``metadata``
    stay, and ``metadata`` is cut down to ObjectMeta's fields (``metadata.foo``);
    embedded resources are treated alike. Non-nullable nulls without a default are
    dropped too (not reported), as upstream's decoder does. Paths read
    ``spec.foo``, ``spec.items[0].bar``, ``spec.template.metadata.foo``.
    """
    return _prune.prune(obj, schema, root=root)


def apply_defaults(obj: Any, schema: dict[str, Any]) -> None:
    """Upstream's structural defaulting, in place.

    Absent properties get a deep copy of their ``default`` (recursively, also into
    array items and ``additionalProperties`` values); a null where the schema is not
    nullable is replaced by the default, or dropped when there is none.
    """
    _prune.apply_defaults(obj, schema)


def validate_openapi(obj: Any, schema: dict[str, Any], path: str = "") -> list[FieldError]:
    """kube-openapi value validation only (types, formats, enums, bounds, junctors).

    ``path`` prefixes the field paths; messages name fields relative to ``obj`` (for
    the status subresource upstream validates ``obj["status"]`` against the status
    schema with ``path="status"``). With ``path=""`` errors about the whole object
    (``anyOf`` and friends) name the field ``<nil>``, as upstream's do.
    """
    return _openapi.validate_value(obj, schema, path)


def validate_embedded_resources(
    obj: Any, schema: dict[str, Any], path: str = ""
) -> list[FieldError]:
    """``apiVersion``/``kind``/``metadata`` of every ``x-kubernetes-embedded-resource``."""
    return _objectmeta.validate_embedded(path, obj, schema, False)


def validate_list_types(obj: Any, schema: dict[str, Any], path: str = "") -> list[FieldError]:
    """``x-kubernetes-list-type`` ``set`` duplicates and ``map`` duplicate keys."""
    return _listtype.validate_list_types(path, schema, obj)


def validate(obj: Any, schema: dict[str, Any], path: str = "") -> list[FieldError]:
    """Everything upstream's custom-resource strategy checks against the schema, in its
    order: OpenAPI value validation, embedded resources, list-type uniqueness.

    ObjectMeta of the resource itself and CEL rules are checked elsewhere.
    """
    errs = validate_openapi(obj, schema, path)
    errs += validate_embedded_resources(obj, schema, path)
    errs += validate_list_types(obj, schema, path)
    return errs


def validate_update(new: Any, old: Any, schema: dict[str, Any], path: str = "") -> list[FieldError]:
    """:func:`validate` for an update, with upstream's ratcheting (v1.32, on by default).

    A value that did not change keeps its errors quiet, so tightening a CRD schema does
    not block updates of objects that were valid before: fields correlate by name, and
    items of ``x-kubernetes-list-type: map`` lists by their keys (other list items never
    do). List-type uniqueness is only enforced when the old object satisfied it.
    Upstream ratchets the main resource only: validate the status subresource with
    :func:`validate_openapi`.
    """
    errs = _openapi.validate_value(new, schema, path, old=old)
    errs += validate_embedded_resources(new, schema, path)
    if not validate_list_types(old, schema, path):
        errs += validate_list_types(new, schema, path)
    return errs
