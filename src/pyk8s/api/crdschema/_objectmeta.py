"""ObjectMeta inside custom resources: what upstream keeps, rejects and validates.

The CRD schema cannot describe ``metadata``: upstream decodes it into the real
``ObjectMeta`` type, which drops unknown fields (reported as ``metadata.foo`` for
``fieldValidation``), refuses wrongly typed known fields with Go's JSON decoding
error, and then runs ``ValidateObjectMeta``. The same happens to every embedded
resource (``x-kubernetes-embedded-resource``), which must also carry ``apiVersion``
and ``kind`` (upstream's ``schema/objectmeta`` package).
"""

from __future__ import annotations

from typing import Any

from pyk8s.api import errors
from pyk8s.api.crdschema._compiled import EMPTY, Struct, struct
from pyk8s.api.crdschema._paths import child, index, key
from pyk8s.api.errors import FieldError
from pyk8s.api.gofmt import go_json, json_kind

# JSON name -> (Go type, nested kind); nested kind "owner"/"managed" are struct lists.
_OBJECT_META: dict[str, str] = {
    "name": "string",
    "generateName": "string",
    "namespace": "string",
    "selfLink": "string",
    "uid": "types.UID",
    "resourceVersion": "string",
    "generation": "int64",
    "creationTimestamp": "v1.Time",
    "deletionTimestamp": "*v1.Time",
    "deletionGracePeriodSeconds": "*int64",
    "labels": "map[string]string",
    "annotations": "map[string]string",
    "ownerReferences": "[]v1.OwnerReference",
    "finalizers": "[]string",
    "managedFields": "[]v1.ManagedFieldsEntry",
}
_OWNER_REFERENCE = {
    "apiVersion": "string",
    "kind": "string",
    "name": "string",
    "uid": "types.UID",
    "controller": "*bool",
    "blockOwnerDeletion": "*bool",
}
_MANAGED_FIELDS = {
    "manager": "string",
    "operation": "v1.ManagedFieldsOperationType",
    "apiVersion": "string",
    "time": "*v1.Time",
    "fieldsType": "string",
    "fieldsV1": "*v1.FieldsV1",
    "subresource": "string",
}
_STRUCTS = {
    "[]v1.OwnerReference": ("OwnerReference", _OWNER_REFERENCE),
    "[]v1.ManagedFieldsEntry": ("ManagedFieldsEntry", _MANAGED_FIELDS),
}

META_FIELDS = frozenset({"apiVersion", "kind", "metadata"})


def _number_text(v: Any) -> str:
    return "number " + (go_json(v) if isinstance(v, float) else str(v))


def _check(v: Any, go_type: str, struct: str, field_path: str) -> str | None:
    """Go's ``json.Unmarshal`` type error for ``v`` decoded into ``go_type``, if any."""
    if v is None:
        return None
    jk = json_kind(v)
    where = f"Go struct field {struct}.{field_path}"
    base = go_type.lstrip("*")
    ok: bool
    if base in ("string", "types.UID", "v1.ManagedFieldsOperationType"):
        ok = jk == "string"
    elif base == "v1.Time":
        if jk != "string":
            return f"json: cannot unmarshal {jk} into Go value of type string"
        return None
    elif base == "int64":
        if jk == "number" and isinstance(v, float) and not v.is_integer():
            return f"json: cannot unmarshal {_number_text(v)} into {where} of type int64"
        ok = jk == "number"
    elif base == "bool":
        ok = jk == "bool"
    elif base == "v1.FieldsV1":
        return None
    elif base == "map[string]string":
        if jk != "object":
            ok = False
        else:
            for k, item in v.items():
                if item is not None and not isinstance(item, str):
                    ik = json_kind(item)
                    return f"json: cannot unmarshal {ik} into {where}.{k} of type string"
            return None
    elif base == "[]string":
        if jk != "array":
            ok = False
        else:
            for item in v:
                if item is not None and not isinstance(item, str):
                    ik = json_kind(item)
                    return f"json: cannot unmarshal {ik} into {where} of type string"
            return None
    elif base in _STRUCTS:
        if jk != "array":
            ok = False
        else:
            sname, fields = _STRUCTS[base]
            for item in v:
                if item is None:
                    continue
                if not isinstance(item, dict):
                    return (
                        f"json: cannot unmarshal {json_kind(item)} into {where} of type v1.{sname}"
                    )
                for fk, fv in item.items():
                    if fk in fields:
                        err = _check(fv, fields[fk], sname, f"{field_path}.{fk}")
                        if err:
                            return err
            return None
    else:
        ok = True
    if ok:
        return None
    return f"json: cannot unmarshal {jk} into {where} of type {go_type.lstrip('*')}"


def decode_error(meta: Any) -> str | None:
    """The error ``json.Unmarshal(metadata, &ObjectMeta{})`` would give, if any."""
    if meta is None:
        return None
    if not isinstance(meta, dict):
        return f"json: cannot unmarshal {json_kind(meta)} into Go value of type v1.ObjectMeta"
    for k, v in meta.items():
        t = _OBJECT_META.get(k)
        if t is not None:
            err = _check(v, t, "ObjectMeta", k)
            if err:
                return err
    return None


def prune_meta(meta: dict[str, Any], prefix: str) -> list[str]:
    """Drop what ``ObjectMeta`` does not have (strict decoding), returning the paths."""
    unknown: list[str] = []
    for k in list(meta):
        if k not in _OBJECT_META:
            unknown.append(f"{prefix}.{k}")
            del meta[k]
            continue
        t = _OBJECT_META[k]
        if t in _STRUCTS and isinstance(meta[k], list):
            _, fields = _STRUCTS[t]
            for i, item in enumerate(meta[k]):
                if isinstance(item, dict):
                    for fk in list(item):
                        if fk not in fields:
                            unknown.append(f"{prefix}.{k}[{i}].{fk}")
                            del item[fk]
    return unknown


def _as_struct(s: dict[str, Any] | Struct | None, root: bool) -> Struct | None:
    node = struct(s) if isinstance(s, dict) else s
    if root:
        node = (node or EMPTY).as_root()
    return node


def coerce(
    pth: str,
    obj: Any,
    s: dict[str, Any] | Struct | None,
    root: bool,
    track: list[str] | None,
) -> FieldError | None:
    """Upstream's ``objectmeta.Coerce``: embedded apiVersion/kind must be strings, their
    metadata must decode; unknown metadata fields are dropped (and recorded)."""
    node = _as_struct(s, root)
    if node is None or not node.has_embedded:
        return None
    return _coerce(pth, obj, node, track)


def _coerce(pth: str, x: Any, s: Struct | None, track: list[str] | None) -> FieldError | None:
    if s is None or not s.has_embedded:
        return None
    if isinstance(x, dict):
        for k in list(x):
            v = x[k]
            if s.embedded:
                if k in ("apiVersion", "kind"):
                    if not isinstance(v, str):
                        return errors.invalid(child(pth, k), v, "must be a string")
                elif k == "metadata":
                    err = decode_error(v)
                    if err:
                        return errors.invalid(child(pth, "metadata"), v, err)
                    if isinstance(v, dict):
                        paths = prune_meta(v, child(pth, "metadata"))
                        if track is not None:
                            track += paths
                        _drop_empty_meta(v)
            sub = s.props.get(k)
            if sub is not None:
                err2 = _coerce(child(pth, k), x[k], sub, track)
            elif s.ap_present:
                err2 = _coerce(key(pth, k), x[k], s.ap, track)
            else:
                continue
            if err2:
                return err2
    elif isinstance(x, list):
        for i, v in enumerate(x):
            err2 = _coerce(index(pth, i), v, s.items, track)
            if err2:
                return err2
    return None


def _drop_empty_meta(meta: dict[str, Any]) -> None:
    """Round-tripping through ``ObjectMeta`` drops nulls."""
    for k in list(meta):
        if meta[k] is None:
            del meta[k]


def validate_embedded(
    pth: str, obj: Any, s: dict[str, Any] | Struct | None, root: bool
) -> list[FieldError]:
    """Upstream's ``objectmeta.Validate``: every embedded resource's TypeMeta and ObjectMeta."""
    node = _as_struct(s, root)
    if node is None or not node.has_embedded:
        return []
    return _validate(pth, obj, node)


def _validate(pth: str, x: Any, s: Struct | None) -> list[FieldError]:
    if s is None or not s.has_embedded:
        return []
    errs: list[FieldError] = []
    if isinstance(x, dict):
        if s.embedded:
            errs += _embedded_resource(pth, x)
        for k, v in x.items():
            sub = s.props.get(k)
            if sub is not None:
                errs += _validate(child(pth, k), v, sub)
            elif s.ap_present:
                errs += _validate(key(pth, k), v, s.ap)
    elif isinstance(x, list):
        for i, v in enumerate(x):
            errs += _validate(index(pth, i), v, s.items)
    return errs


def _parse_group_version(gv: str) -> str | None:
    if not gv or gv == "/":
        return None
    if gv.count("/") > 1:
        return f"unexpected GroupVersion string: {gv}"
    return None


def _embedded_resource(pth: str, x: dict[str, Any]) -> list[FieldError]:
    from pyk8s.api.validation import meta as metavalidation  # lazy: avoids an import cycle
    from pyk8s.api.validation import names

    errs: list[FieldError] = []
    if "apiVersion" not in x:
        errs.append(errors.required(child(pth, "apiVersion"), "must not be empty"))
    if "kind" not in x:
        errs.append(errors.required(child(pth, "kind"), "must not be empty"))
    for k, v in x.items():
        if k == "apiVersion":
            p = child(pth, "apiVersion")
            if not isinstance(v, str):
                errs.append(errors.invalid(p, v, "must be a string"))
            elif not v:
                errs.append(errors.invalid(p, v, "must not be empty"))
            else:
                gv_err = _parse_group_version(v)
                if gv_err:
                    errs.append(errors.invalid(p, v, gv_err))
        elif k == "kind":
            p = child(pth, "kind")
            if not isinstance(v, str):
                errs.append(errors.invalid(p, v, "must be a string"))
            elif not v:
                errs.append(errors.invalid(p, v, "must not be empty"))
            else:
                msgs = names.is_dns1035_label(v.lower())
                if msgs:
                    detail = "may have mixed case, but should otherwise match: " + ",".join(msgs)
                    errs.append(errors.invalid(p, v, detail))
        elif k == "metadata":
            p = child(pth, "metadata")
            err = decode_error(v)
            if err:
                errs.append(errors.invalid(p, v, err))
                continue
            meta = dict(v) if isinstance(v, dict) else {}
            if not meta.get("name"):
                meta["name"] = "fakename"
            namespaced = bool(meta.get("namespace"))
            errs += metavalidation.validate_object_meta(
                meta, namespaced, names.is_valid_path_segment_name, p, core=False
            )
    return errs
