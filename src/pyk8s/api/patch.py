"""The three patch formats of ``PATCH``: JSON patch, JSON merge patch, strategic merge patch.

``kubectl patch``, ``kubectl apply`` (client-side), ``kubectl label/annotate/scale`` and
every controller that patches status send one of these bodies; the result must be exactly
what upstream's API server would store, or a user's working command silently does
something else here. The rules are upstream's, learnt from apimachinery's
``strategicpatch`` package, the API server's patch handler and the JSON patch library it
uses (evanphx/json-patch v4), and checked against ``kubectl patch --local``:

* :func:`apply_json_patch` - RFC 6902 with upstream's leniencies: a ``replace`` of a
  missing object member adds it, ``test`` of a missing member against ``null`` passes,
  negative array indices count from the end, leading zeros and unknown ``~`` escapes
  are taken as they are, a missing ``value`` is ``null``. At most 10000 operations (413).
* :func:`apply_merge_patch` - RFC 7386.
* :func:`apply_strategic_merge_patch` - Kubernetes' strategic merge patch, driven by the
  ``x-kubernetes-patch-strategy`` / ``x-kubernetes-patch-merge-key`` annotations of the
  official v1.32 schemas (:mod:`pyk8s.api.schema`), which mirror the Go struct tags
  upstream reads. Custom resources have no such metadata; upstream refuses the content
  type for them with 415, and so do we (``definition=None``).

Element order in merged lists follows upstream exactly, down to running Go's
``sort.SliceStable`` algorithm where upstream's comparator is not a strict order.

Pure: no I/O, inputs are never mutated, results share no structure with the inputs.

Exceptions::

    StatusError                 (pyk8s.api.errors)
     └── PatchError             code/reason/message as upstream answers them:
                                400 BadRequest  - malformed patch document
                                413 RequestEntityTooLarge - more than 10000 JSON patch ops
                                415 UnsupportedMediaType - strategic merge patch of a CR
                                422 Invalid     - a JSON patch op fails (test, missing path),
                                                  lists of lists, result not an object
                                500 ""          - strategic merge patch errors that upstream
                                                  reports as plain errors (missing merge key,
                                                  unknown ``$patch`` directive...)

For a 422 from a failing JSON patch operation upstream's message is the generic
"the server rejected our request due to an error in our request" (the library's text is
dropped on the way to the wire); :attr:`PatchError.detail` keeps that text for logs.

Where we knowingly differ from upstream (all for patches upstream would store garbage
from, or reject only later while decoding):

* Values a strategic merge patch copies in wholesale (a new field, an atomic list, a
  ``replace`` strategy, ``$patch: replace``, a new element of a merged list) lose their
  ``null`` members and any ``$``-directive keys, as upstream's typed decoding would do;
  upstream keeps them in the map and drops them only when decoding into Go structs (or
  rejects them under ``fieldValidation=Strict``).
* A ``$deleteFromPrimitiveList/<field>`` value that is not a list of scalars is a 400
  (upstream silently skips it or stores it as the field's value).
* Strategic merge of a field the schema does not know (RawExtension payloads and the
  like) merges maps and replaces lists instead of failing.
* ``$setElementOrder`` over lists that are all empty is not the 500 "no elements in any
  of the given slices" upstream answers; nothing needs ordering, so nothing happens.
* An item both added and listed in ``$deleteFromPrimitiveList`` ends up deleted
  (deletions run last); upstream's outcome depends on Go's random map order.
* A JSON patch ``copy`` from a missing path fails (422, as RFC 6902 says); upstream
  copies a ``null``. A ``move`` into its own child fails up front (upstream fails too,
  with another message).
* A patched object that stops being an object (a JSON patch replacing ``""`` by a list,
  a merge patch that is a list) is a 422 right here; upstream fails the same way when
  decoding the result.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import orjson

from pyk8s.api import errors
from pyk8s.api.gofmt import go_s, go_type, go_v, json_kind
from pyk8s.api.schema import JSON, Schemas, schemas, types_of

__all__ = [
    "CUSTOM_RESOURCE_PATCH_TYPES",
    "MAX_JSON_PATCH_OPERATIONS",
    "PatchError",
    "apply_json_patch",
    "apply_merge_patch",
    "apply_strategic_merge_patch",
]

#: upstream's limit on the operations of one JSON patch
MAX_JSON_PATCH_OPERATIONS = 10000

#: the patch content types upstream accepts for custom resources (no strategic merge)
CUSTOM_RESOURCE_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
)

#: what upstream answers when a JSON patch operation cannot be applied
REJECTED = "the server rejected our request due to an error in our request"

_REASONS = {
    400: "BadRequest",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "",  # upstream's StatusReasonUnknown: a plain error turned into a Status
}


class PatchError(errors.StatusError):
    """A patch that cannot be applied, with the HTTP code and Status upstream answers.

    ``detail`` carries the underlying reason where upstream's wire message is generic.
    """

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        detail: str = "",
    ) -> None:
        super().__init__(
            code, _REASONS.get(code, "") if reason is None else reason, message, details
        )
        self.detail = detail or message


def _bad_request(message: str) -> PatchError:
    return PatchError(400, message)


def _rejected(detail: str) -> PatchError:
    """422 as upstream's NewGenericServerResponse builds it: generic text, empty details."""
    return PatchError(422, REJECTED, details={}, detail=detail)


def _internal(message: str) -> PatchError:
    return PatchError(500, message)


def _not_an_object(result: Any, why: str) -> PatchError:
    """422 Invalid for a patched document that is no longer a JSON object."""
    text = orjson.dumps(result).decode()
    status = errors.invalid_object("", "", [errors.invalid("patch", text, why)])
    return PatchError(422, status.message, details=status.details, detail=why)


_DECODE_INTO_META = (
    "couldn't get version/kind; json parse error: json: cannot unmarshal %s into Go value "
    'of type struct { APIVersion string "json:\\"apiVersion,omitempty\\""; '
    'Kind string "json:\\"kind,omitempty\\"" }'
)


# --------------------------------------------------------------------------- helpers


def _copy(value: Any) -> Any:
    """A deep copy of a JSON value (orjson round trip; deepcopy for what it refuses)."""
    if isinstance(value, dict | list):
        try:
            return orjson.loads(orjson.dumps(value))
        except (orjson.JSONEncodeError, TypeError):
            return copy.deepcopy(value)
    return value


def _same(a: Any, b: Any) -> bool:
    """Go's ``==`` on two decoded JSON scalars: same dynamic type and value."""
    return type(a) is type(b) and a == b


def _json_equal(a: Any, b: Any) -> bool:
    """RFC 6902 equality: numbers by value, booleans never equal to numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


# --------------------------------------------------------------------------- JSON patch


class _OpFailed(Exception):
    """One JSON patch operation does not apply (becomes a 422)."""


def _pointer(path: Any, field: str) -> list[str]:
    """The reference tokens of an RFC 6901 JSON pointer."""
    if not isinstance(path, str):
        raise _OpFailed(
            f"operation, missing {field} field"
            if path is None
            else f"operation, {field} field is not a string"
        )
    if path == "":
        return []
    if not path.startswith("/"):
        raise _OpFailed(f"invalid JSON pointer: {path!r}")
    # like upstream, a "~" not followed by 0 or 1 stays as it is
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


_INDEX = re.compile(r"-?[0-9]+")  # upstream takes leading zeros too


def _index(token: str, size: int, path: str, op: str) -> int:
    """An array index token; negative indices count from the end, as upstream allows."""
    if not _INDEX.fullmatch(token):
        raise _OpFailed(f"error in {op} for path: '{path}': invalid array index: {token}")
    idx = int(token)
    if idx < 0:
        if idx < -size:
            raise _OpFailed(
                f"error in {op} for path: '{path}': "
                f"Unable to access invalid index: {idx}: invalid index referenced"
            )
        idx += size
    return idx


def _walk(doc: Any, tokens: list[str]) -> Any:
    """The value at ``tokens`` (KeyError when any step is missing)."""
    node = doc
    for token in tokens:
        if isinstance(node, dict):
            node = node[token]
        elif isinstance(node, list):
            if not _INDEX.fullmatch(token):
                raise KeyError(token)
            idx = int(token)
            if idx < 0:
                idx += len(node)
            if not 0 <= idx < len(node):
                raise KeyError(token)
            node = node[idx]
        else:
            raise KeyError(token)
    return node


def _parent(doc: Any, tokens: list[str], path: str, op: str, what: str = "path") -> Any:
    try:
        parent = _walk(doc, tokens[:-1])
    except KeyError:
        parent = None
    if not isinstance(parent, dict | list):
        shown = f'"{path}"' if op in ("add", "remove") else path
        raise _OpFailed(
            f"{op} operation does not apply: doc is missing {what}: {shown}: missing value"
        )
    return parent


def _add(doc: Any, tokens: list[str], value: Any, path: str, what: str = "path") -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens, path, "add", what)
    key = tokens[-1]
    if isinstance(parent, dict):
        parent[key] = value
    elif key == "-":
        parent.append(value)
    else:
        idx = _index(key, len(parent) + 1, path, "add")
        if idx > len(parent):
            raise _OpFailed(
                f"error in add for path: '{path}': "
                f"Unable to access invalid index: {idx}: invalid index referenced"
            )
        parent.insert(idx, value)
    return doc


def _remove(doc: Any, tokens: list[str], path: str, op: str = "remove") -> Any:
    """Remove the value at ``tokens`` and return it."""
    if not tokens:
        raise _OpFailed(f"{op} operation does not apply: doc is missing path: {path}")
    parent = _parent(doc, tokens, path, op, "from path" if op == "move" else "path")
    key = tokens[-1]
    if isinstance(parent, dict):
        if key not in parent:
            raise _OpFailed(
                f"error in {op} for path: '{path}': "
                f"Unable to remove nonexistent key: {key}: missing value"
            )
        return parent.pop(key)
    idx = _index(key, len(parent), path, op)
    if idx >= len(parent):
        raise _OpFailed(
            f"error in {op} for path: '{path}': "
            f"Unable to remove invalid index: {idx}: invalid index referenced"
        )
    return parent.pop(idx)


def _replace(doc: Any, tokens: list[str], value: Any, path: str) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens, path, "replace")
    key = tokens[-1]
    if isinstance(parent, dict):
        # upstream (json-patch v4) sets a missing member instead of failing
        parent[key] = value
        return doc
    idx = _index(key, len(parent), path, "replace")
    if idx >= len(parent):
        raise _OpFailed(
            f"replace operation does not apply: doc is missing key: {path}: missing value"
        )
    parent[idx] = value
    return doc


def _apply_op(doc: Any, op: Any) -> Any:
    if not isinstance(op, dict):
        raise _OpFailed("Unexpected kind: unknown")
    kind = op.get("op")
    if not isinstance(kind, str):
        raise _OpFailed("Unexpected kind: unknown")
    if kind not in ("add", "remove", "replace", "move", "copy", "test"):
        raise _OpFailed(f"Unexpected kind: {kind}")
    path = op.get("path")
    tokens = _pointer(path, "path")
    assert isinstance(path, str)
    value = op.get("value")  # a missing value is null, as upstream treats it
    if kind == "add":
        return _add(doc, tokens, _copy(value), path)
    if kind == "remove":
        _remove(doc, tokens, path)
        return doc
    if kind == "replace":
        return _replace(doc, tokens, _copy(value), path)
    if kind == "test":
        try:
            current = _walk(doc, tokens)
        except KeyError:
            # upstream: a missing member "equals" null, a missing parent never does
            if value is None and tokens and _parent(doc, tokens, path, "test") is not None:
                return doc
            raise _OpFailed(f"testing value {path} failed: test failed") from None
        if not _json_equal(current, value):
            raise _OpFailed(f"testing value {path} failed: test failed")
        return doc
    source = op.get("from")
    from_tokens = _pointer(source, "from")
    assert isinstance(source, str)
    if kind == "move":
        if from_tokens == tokens:
            try:
                _walk(doc, tokens)
            except KeyError:
                raise _OpFailed(
                    f"move operation does not apply: doc is missing from path: "
                    f"{source}: missing value"
                ) from None
            return doc
        if tokens[: len(from_tokens)] == from_tokens:
            raise _OpFailed(
                f"move operation does not apply: doc is missing destination path: "
                f"{path}: missing value"
            )
        moved = _remove(doc, from_tokens, source, "move")
        return _add(doc, tokens, moved, path, "destination path")
    try:  # copy
        copied = _copy(_walk(doc, from_tokens))
    except KeyError:
        raise _OpFailed(
            f"copy operation does not apply: doc is missing from path: {source}: missing value"
        ) from None
    return _add(doc, tokens, copied, path, "destination path")


def apply_json_patch(doc: Any, ops: Any) -> Any:
    """Apply an RFC 6902 JSON patch (the decoded body, a list of operations) to ``doc``.

    Raises :class:`PatchError`: 400 when ``ops`` is not a list of objects, 413 beyond
    :data:`MAX_JSON_PATCH_OPERATIONS`, 422 when an operation does not apply (a failed
    ``test``, a missing path, a bad index) or an object document stops being one.
    """
    if ops is None:  # upstream decodes ``null`` as an empty patch
        return _copy(doc)
    if not isinstance(ops, list):
        raise _bad_request(
            f"json: cannot unmarshal {json_kind(ops)} into Go value of type jsonpatch.Patch"
        )
    for op in ops:
        if op is not None and not isinstance(op, dict):
            raise _bad_request(
                f"json: cannot unmarshal {json_kind(op)} into Go value of type jsonpatch.Operation"
            )
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise PatchError(
            413,
            "Request entity too large: The allowed maximum operations in a JSON patch is "
            f"{MAX_JSON_PATCH_OPERATIONS}, got {len(ops)}",
        )
    result = _copy(doc)
    try:
        for op in ops:
            result = _apply_op(result, op)
    except _OpFailed as e:
        raise _rejected(str(e)) from None
    if isinstance(doc, dict) and not isinstance(result, dict):
        raise _not_an_object(result, _DECODE_INTO_META % json_kind(result))
    return result


# --------------------------------------------------------------------------- merge patch


def _merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge_patch(target.get(key), value)
    return target


def apply_merge_patch(doc: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch: objects merge, ``null`` deletes, the rest replaces.

    The patch of a Kubernetes object must be a JSON object: ``null`` or a scalar is a
    400 ``Invalid JSON Patch`` (upstream's words), an array a 422 (it would replace the
    object by an array).
    """
    if patch is None or not isinstance(patch, dict | list):
        raise _bad_request("Invalid JSON Patch")
    if isinstance(patch, list):
        raise _not_an_object(patch, _DECODE_INTO_META % "array")
    return _merge_patch(_copy(doc), _copy(patch))


# --------------------------------------------------------------------------- strategic

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_FROM = "$deleteFromPrimitiveList"
_SET_ORDER = "$setElementOrder"


def _is_directive_key(key: str) -> bool:
    return (
        key in (_DIRECTIVE, _RETAIN_KEYS)
        or key.startswith(_DELETE_FROM + "/")
        or key.startswith(_SET_ORDER + "/")
    )


def _clean(value: Any) -> Any:
    """A value taken as it is: drop ``null`` members and directive keys, keep the rest."""
    if isinstance(value, dict):
        return {
            k: _clean(v) for k, v in value.items() if v is not None and not _is_directive_key(k)
        }
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


_DROP = object()


def _fresh(value: Any) -> Any:
    """A patch value for a field the original lacks (upstream's removeDirectives).

    Maps that carry ``$patch`` are dropped (``_DROP`` for the value itself), as are the
    list elements that do; nulls and other directive keys go as in :func:`_clean`.
    """
    if isinstance(value, dict):
        if _DIRECTIVE in value:
            return _DROP
        out: dict[str, Any] = {}
        for k, v in value.items():
            if v is None or _is_directive_key(k):
                continue
            fresh = _fresh(v)
            if fresh is not _DROP:
                out[k] = fresh
        return out
    if isinstance(value, list):
        return [f for f in (_fresh(v) for v in value) if f is not _DROP]
    return value


def _kind(value: Any) -> type:
    """The Go type class deciding how two values combine (maps, slices, scalars)."""
    if isinstance(value, dict):
        return dict
    if isinstance(value, list):
        return list
    return type(value)


class _Field:
    """The patch metadata and value schema of one field of an object."""

    __slots__ = ("merge_key", "schema", "strategy")

    def __init__(self, schema: JSON | None, strategy: str, merge_key: str) -> None:
        self.schema = schema  # the value's schema (a list's: the items'), resolved
        self.strategy = strategy  # "", "merge" or "replace"
        self.merge_key = merge_key


_NO_FIELD = _Field(None, "", "")


class _Merger:
    def __init__(self, s: Schemas) -> None:
        self.s = s

    # ------------------------------------------------------------------ schema
    def field(self, node: JSON | None, key: str, is_list: bool) -> _Field:
        if node is None:
            return _NO_FIELD
        prop = self.s.property(node, key)
        if prop is None:
            # map[string]X: values have X's schema and no patch metadata of their own
            extra = self.s.additional(node)
            if extra is None:
                return _NO_FIELD
            return _Field(self.s.items(extra) if is_list else extra, "", "")
        strategy = _strategy(prop.get("x-kubernetes-patch-strategy", ""))
        merge_key = prop.get("x-kubernetes-patch-merge-key", "")
        sub = self.s.items(prop) if is_list else self.s.resolve(prop)
        return _Field(sub, strategy, merge_key if isinstance(merge_key, str) else "")

    def type_name(self, items: JSON | None) -> str:
        """What upstream names an element type in "cannot merge lists" (a Go kind)."""
        if items is None:
            return "interface"
        t = types_of(self.s.resolve(items)) - {"null"}
        if t == {"string"}:
            return "string"
        if t & {"integer"}:
            return "int64"
        if t & {"number"}:
            return "float64"
        if t == {"boolean"}:
            return "bool"
        return "struct" if self.s.resolve(items).get("properties") else "map"

    # ------------------------------------------------------------------ maps
    def merge_map(
        self, original: dict[str, Any], patch: dict[str, Any], node: JSON | None
    ) -> dict[str, Any]:
        if _DIRECTIVE in patch:
            directive = patch[_DIRECTIVE]
            if isinstance(directive, str) and directive == "replace":
                rest = {k: v for k, v in patch.items() if k != _DIRECTIVE}
                return dict(_clean(rest))
            if isinstance(directive, str) and directive == "delete":
                return {}
            raise _internal(f"unknown patch type: {go_s(directive)} in map: {go_v(patch)}")

        if _RETAIN_KEYS in patch:
            self.retain_keys(original, patch)

        for key in [k for k in patch if k.startswith(_SET_ORDER)]:
            self.set_element_order(original, patch, key, node)

        deletions: list[tuple[str, Any]] = []
        for key, value in patch.items():
            if key.startswith(_DELETE_FROM):
                deletions.append((key, value))
                continue
            self.merge_key_value(original, key, value, node)
        for key, value in deletions:
            self.delete_from_primitive_list(original, key, value, node)
        return original

    def merge_key_value(
        self, original: dict[str, Any], key: str, value: Any, node: JSON | None
    ) -> None:
        if value is None:
            original.pop(key, None)
            return
        if key not in original or _kind(original[key]) is not _kind(value):
            fresh = _fresh(value)
            if fresh is _DROP:
                original.pop(key, None)
            else:
                original[key] = fresh
            return
        current = original[key]
        if isinstance(value, dict):
            f = self.field(node, key, is_list=False)
            if f.strategy == "replace":
                original[key] = _clean(value)
            else:
                original[key] = self.merge_map(current, value, f.schema)
        elif isinstance(value, list):
            f = self.field(node, key, is_list=True)
            if f.strategy == "merge":
                original[key] = self.merge_list(current, value, f)
            else:
                original[key] = _clean(value)
        else:
            original[key] = value

    def retain_keys(self, original: dict[str, Any], patch: dict[str, Any]) -> None:
        """``$retainKeys``: clear the fields not listed; the patch may set only listed ones."""
        retain = patch.pop(_RETAIN_KEYS)
        if not isinstance(retain, list):
            raise _bad_request("invalid patch format of retainKeys")
        keep = {k for k in retain if isinstance(k, str)}
        for k, v in patch.items():
            if v is None or k.startswith(_DELETE_FROM) or k.startswith(_SET_ORDER):
                continue
            if k not in keep:
                raise _bad_request("invalid patch format of retainKeys")
        for k in [k for k in original if k not in keep]:
            del original[k]

    def delete_from_primitive_list(
        self, original: dict[str, Any], key: str, value: Any, node: JSON | None
    ) -> None:
        prefix, sep, field = key.partition("/")
        if not sep or prefix != _DELETE_FROM:
            raise _bad_request("invalid patch format of primitive list")
        if value is None:
            original.pop(field, None)
            return
        if not isinstance(value, list) or any(isinstance(v, dict | list) for v in value):
            raise _bad_request("invalid patch format of primitive list")
        current = original.get(field)
        if not isinstance(current, list) or not current or not value:
            return  # nothing to delete from (upstream: a no-op)
        self.element_kind(current, value)
        drop = {(type(v), v) for v in value}
        original[field] = [v for v in current if (type(v), v) not in drop]

    # ------------------------------------------------------------------ lists
    @staticmethod
    def element_kind(*lists: list[Any]) -> type | None:
        """The one kind of element of all ``lists`` (None when they are empty)."""
        kind: type | None = None
        for values in lists:
            for v in values:
                k = _kind(v)
                if kind is None:
                    if k is list:
                        raise _rejected("lists of lists are not supported")
                    kind = k
                elif k is not kind:
                    raise _internal("list element types are not identical: " + go_v(list(lists)))
        return kind

    def merge_list(self, original: list[Any], patch: list[Any], f: _Field) -> list[Any]:
        if not original and not patch:
            return original
        kind = self.element_kind(original, patch)
        if kind is not dict:
            seen: set[tuple[type, Any]] = set()
            merged: list[Any] = []
            for v in original + patch:
                k = (type(v), v)
                if k not in seen:
                    seen.add(k)
                    merged.append(v)
            patch_items = [v for v in merged if any(_same(v, p) for p in patch)]
            server_only = [v for v in merged if not any(_same(v, p) for p in patch)]
            return _order(patch_items, server_only, patch, original, "", False)

        key = f.merge_key
        if not key:
            raise _internal(f"cannot merge lists without merge key for {self.type_name(f.schema)}")
        original, patch = self.special_elements(original, patch, key)
        merged = self.merge_elements(original, patch, key, f.schema)
        patch_items, server_only = _partition_maps(merged, patch, key)
        return _order(patch_items, server_only, patch, original, key, True)

    @staticmethod
    def special_elements(
        original: list[Any], patch: list[Any], key: str
    ) -> tuple[list[Any], list[Any]]:
        """Apply the ``$patch`` elements of a merging list; return (original, the rest)."""
        rest: list[Any] = []
        replace = False
        for v in patch:
            if _DIRECTIVE not in v:
                rest.append(v)
                continue
            directive = v[_DIRECTIVE]
            if directive == "delete" and isinstance(directive, str):
                if key not in v:
                    raise _internal(f"map: {go_v(v)} does not contain declared merge key: {key}")
                original = [
                    o
                    for o in original
                    if not (isinstance(o, dict) and key in o and _same(o[key], v[key]))
                ]
            elif directive == "replace" and isinstance(directive, str):
                replace = True
            elif directive == "merge" and isinstance(directive, str):
                raise _internal("merging lists cannot yet be specified in the patch")
            else:
                raise _internal(f"unknown patch type: {go_s(directive)} in map: {go_v(v)}")
        if replace:
            return [_clean(v) for v in rest], []
        return list(original), rest

    def merge_elements(
        self, original: list[Any], patch: list[Any], key: str, items: JSON | None
    ) -> list[Any]:
        merged = list(original)
        for v in patch:
            if key not in v:
                raise _internal(f"map: {go_v(v)} does not contain declared merge key: {key}")
            for i, o in enumerate(merged):
                if key in o and _same(o[key], v[key]):
                    merged[i] = self.merge_map(o, v, items)
                    break
            else:
                merged.append(_clean(v))
        return merged

    # ------------------------------------------------------------------ $setElementOrder
    def set_element_order(
        self, original: dict[str, Any], patch: dict[str, Any], directive_key: str, node: JSON | None
    ) -> None:
        order = patch.pop(directive_key)
        if not isinstance(order, list):
            raise _internal(f"expected a []interface {{}}, but received a {go_type(order)}")
        prefix, sep, key = directive_key.partition("/")
        if not sep or prefix != _SET_ORDER:
            raise _bad_request("invalid patch format of setElementOrder list")
        found_original, found_patch = key in original, key in patch
        current, patch_list = original.get(key), patch.get(key)
        if found_original and not isinstance(current, list):
            raise _internal(f"expected a []interface {{}}, but received a {go_type(current)}")
        if found_patch and not isinstance(patch_list, list):
            raise _internal(f"expected a []interface {{}}, but received a {go_type(patch_list)}")
        f = self.field(node, key, is_list=True)
        _validate_order(patch_list or [], order, f.merge_key)

        if found_original and found_patch:
            assert isinstance(current, list) and isinstance(patch_list, list)
            merged = (
                self.merge_list(current, patch_list, f)
                if f.strategy == "merge"
                else _clean(patch_list)
            )
        elif found_original:
            assert isinstance(current, list)
            merged = current
        elif found_patch:
            merged = _fresh(patch_list)
        else:
            return
        orig_list = current if isinstance(current, list) else []
        kind = self.element_kind(orig_list, patch_list or [])
        if kind is not None:
            if f.merge_key:
                patch_items, server_only = _partition_maps(merged, order, f.merge_key)
            else:
                patch_items = [v for v in merged if any(_same(v, o) for o in order)]
                server_only = [v for v in merged if not any(_same(v, o) for o in order)]
            merged = _order(patch_items, server_only, order, orig_list, f.merge_key, kind is dict)
        original[key] = merged
        patch.pop(key, None)


def _strategy(annotation: Any) -> str:
    """The list/map strategy of an ``x-kubernetes-patch-strategy`` value (retainKeys aside)."""
    if not isinstance(annotation, str) or not annotation:
        return ""
    parts = annotation.split(",")
    others = [p for p in parts if p != "retainKeys"]
    if len(parts) > 2 or (len(parts) == 2 and len(others) != 1):
        raise _internal(f"unexpected patch strategy: [{' '.join(parts)}]")
    return others[0] if others else ""


def _merge_value(item: Any, key: str) -> Any:
    """The merge key value of a list element (a map that must carry it)."""
    if not isinstance(item, dict):
        raise _internal(f"expected a map[string]interface {{}}, but received a {go_type(item)}")
    if key not in item:
        raise _internal(f"map: {go_v(item)} does not contain declared merge key: {key}")
    return item[key]


def _partition_maps(items: list[Any], by: list[Any], key: str) -> tuple[list[Any], list[Any]]:
    """Split ``items`` into those whose merge key appears in ``by`` and the others."""
    present = [b[key] for b in by if isinstance(b, dict) and key in b]
    inside: list[Any] = []
    outside: list[Any] = []
    for item in items:
        value = _merge_value(item, key)
        (inside if any(_same(value, p) for p in present) else outside).append(item)
    return inside, outside


def _position(order: list[Any], item: Any, key: str, is_map: bool) -> int:
    """The index of ``item`` in ``order`` (by merge key for maps), or -1."""
    wanted = item.get(key) if is_map and isinstance(item, dict) else item
    for i, o in enumerate(order):
        have = o.get(key) if is_map and isinstance(o, dict) else o
        if _same(have, wanted):
            return i
    return -1


def _go_stable_sort(items: list[Any], less: Callable[[Any, Any], bool]) -> list[Any]:
    """Go's ``sort.SliceStable`` (insertion sort in blocks of 20, then SymMerge).

    Upstream's element-order comparator is not a strict order when an item is missing from
    the order list (it says "less" both ways); reproducing Go's algorithm step for step
    gives the same arrangement upstream gets in that case too.
    """
    a = list(items)

    def lt(i: int, j: int) -> bool:
        return less(a[i], a[j])

    def swap(i: int, j: int) -> None:
        a[i], a[j] = a[j], a[i]

    def insertion_sort(lo: int, hi: int) -> None:
        for i in range(lo + 1, hi):
            j = i
            while j > lo and lt(j, j - 1):
                swap(j, j - 1)
                j -= 1

    def swap_range(x: int, y: int, n: int) -> None:
        for i in range(n):
            swap(x + i, y + i)

    def rotate(lo: int, m: int, hi: int) -> None:
        i, j = m - lo, hi - m
        while i != j:
            if i > j:
                swap_range(m - i, m, j)
                i -= j
            else:
                swap_range(m - i, m + j - i, i)
                j -= i
        swap_range(m - i, m, i)

    def sym_merge(lo: int, m: int, hi: int) -> None:
        if m - lo == 1:
            i, j = m, hi
            while i < j:
                h = (i + j) // 2
                if lt(h, lo):
                    i = h + 1
                else:
                    j = h
            for k in range(lo, i - 1):
                swap(k, k + 1)
            return
        if hi - m == 1:
            i, j = lo, m
            while i < j:
                h = (i + j) // 2
                if not lt(m, h):
                    i = h + 1
                else:
                    j = h
            for k in range(m, i, -1):
                swap(k, k - 1)
            return
        mid = (lo + hi) // 2
        n = mid + m
        if m > mid:
            start, r = n - hi, mid
        else:
            start, r = lo, m
        p = n - 1
        while start < r:
            c = (start + r) // 2
            if not lt(p - c, c):
                start = c + 1
            else:
                r = c
        end = n - start
        if start < m < end:
            rotate(start, m, end)
        if lo < start < mid:
            sym_merge(lo, start, mid)
        if mid < end < hi:
            sym_merge(mid, end, hi)

    size, block = len(a), 20
    lo, hi = 0, block
    while hi <= size:
        insertion_sort(lo, hi)
        lo, hi = hi, hi + block
    insertion_sort(lo, size)
    while block < size:
        lo, hi = 0, 2 * block
        while hi <= size:
            sym_merge(lo, lo + block, hi)
            lo, hi = hi, hi + 2 * block
        if lo + block < size:
            sym_merge(lo, lo + block, size)
        block *= 2
    return a


def _sort_by(items: list[Any], order: list[Any], key: str, is_map: bool) -> list[Any]:
    """``items`` in the order of ``order`` (upstream's normalizeSliceOrder)."""
    if is_map:
        for item in items:
            _merge_value(item, key)
        for item in order:
            _merge_value(item, key)

    def less(x: Any, y: Any) -> bool:
        i, j = _position(order, x, key, is_map), _position(order, y, key, is_map)
        return i < j if i >= 0 and j >= 0 else True

    return _go_stable_sort(items, less)


def _order(
    patch_items: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    key: str,
    is_map: bool,
) -> list[Any]:
    """Upstream's element order: patch items in patch order, server-only items in server
    order, interleaved by their positions on the server; a patch item the server did not
    have goes before the server item it meets."""
    right = _sort_by(patch_items, patch_order, key, is_map)
    left = _sort_by(server_only, server_order, key, is_map)
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = _position(server_order, left[i], key, is_map)
            ri = _position(server_order, right[j], key, is_map)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _validate_order(patch_list: list[Any], order: list[Any], key: str) -> None:
    """The patch list must follow the ``$setElementOrder`` list's relative order."""
    if not patch_list or not order:
        return
    items = patch_list
    if key:
        for item in patch_list:
            if not isinstance(item, dict):
                raise _internal(
                    "expected a map[string]interface {}, but received a " + go_type(item)
                )
        items = [p for p in patch_list if p.get(_DIRECTIVE) != "delete"]
    p = s = 0
    while p < len(items) and s < len(order):
        item = items[p]
        if isinstance(item, dict) and _DIRECTIVE in item:
            p += 1
            continue
        if key:
            equal = _same(_merge_value(item, key), _merge_value(order[s], key))
        else:
            equal = _same(item, order[s])
        if equal:
            p += 1
        s += 1
    if p < len(items) and s >= len(order):
        raise _internal(
            f"The order in patch list:\n{go_v(patch_list)}\n doesn't match "
            f"{_SET_ORDER} list:\n{go_v(order)}\n"
        )


def apply_strategic_merge_patch(
    doc: dict[str, Any],
    patch: Any,
    definition: str | None,
    *,
    schema: Schemas | None = None,
) -> dict[str, Any]:
    """Apply a Kubernetes strategic merge patch to ``doc`` (an object of kind ``definition``).

    ``definition`` is the schema definition name of the object's kind
    (``io.k8s.api.apps.v1.Deployment``, see :meth:`Schemas.name_for`); ``None`` means a
    kind without patch metadata - a custom resource - which upstream refuses with 415
    (the message lists the patch types custom resources accept). ``schema`` defaults to
    the v1.32 schemas.
    """
    if definition is None:
        raise PatchError(
            415,
            "the body of the request was in an unknown format - accepted media types "
            "include: " + ", ".join(CUSTOM_RESOURCE_PATCH_TYPES),
        )
    s = schema if schema is not None else schemas()
    if definition not in s.definitions:
        raise ValueError(f"unknown schema definition {definition!r}")
    if not isinstance(doc, dict):
        raise TypeError("a strategic merge patch applies to an object")
    if patch is None:  # upstream decodes ``null`` into an empty patch map
        return dict(_copy(doc))
    if not isinstance(patch, dict):
        raise _bad_request(
            f"json: cannot unmarshal {json_kind(patch)} into Go value of "
            "type map[string]interface {}"
        )
    merger = _Merger(s)
    result = merger.merge_map(_copy(doc), _copy(patch), s.get(definition))
    return result
