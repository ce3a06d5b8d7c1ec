"""Managed fields at the API server's write path, as upstream's field manager wraps it.

Every create, update and patch (and the status and scale subresources) records who
changed what (:func:`record_update`); an apply patch is merged and owned by its manager
(:func:`apply`). The rules themselves are pure and live in
:mod:`pyk8s.api.managedfields`; this module knows resources and strategies: which schema
an object merges by, which part a subresource may own, how a request names its manager,
and kubectl's migration from client-side apply (the last-applied annotation).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

import orjson

from pyk8s.api import errors
from pyk8s.api import managedfields as mf
from pyk8s.api.registry import Resource
from pyk8s.api.schema import schemas

if TYPE_CHECKING:
    from aiohttp import web

    from pyk8s.apiserver.strategies import Strategy

JSON = dict[str, Any]

#: who internal writes of the API server itself are recorded as
INTERNAL_MANAGER = "kube-apiserver"

_SHAPES: weakref.WeakKeyDictionary[Strategy, mf.Shape] = weakref.WeakKeyDictionary()


def manager_of(request: web.Request) -> str:
    """``fieldManager`` from the query, else upstream's derivation from the user agent."""
    return request.query.get("fieldManager") or mf.manager_from_user_agent(
        request.headers.get("User-Agent", "")
    )


def apply_options(request: web.Request) -> tuple[str, bool]:
    """An apply request's ``fieldManager`` (required: upstream's 422) and ``force``."""
    manager = request.query.get("fieldManager", "")
    if not manager:
        raise errors.invalid_object(
            "PatchOptions",
            "",
            [errors.required("fieldManager", "is required for apply patch")],
            "meta.k8s.io",
        )
    check_field_manager(manager, "PatchOptions")
    return manager, (request.query.get("force") or "").lower() in ("true", "1")


def check_apply_version(config: Any, expected: str) -> None:
    """400 unless an apply body is an object of the URL's API version, as upstream's."""
    if not isinstance(config, dict):
        raise errors.bad_request("the body of the request must be a YAML object")
    got = config.get("apiVersion")
    if got != expected:
        raise errors.bad_request(
            "Incorrect version specified in apply patch. Specified patch version: "
            f"{got if isinstance(got, str) else ''}, expected: {expected}"
        )


def check_field_manager(manager: str, options_kind: str) -> None:
    """422 on a ``fieldManager`` upstream refuses (too long, not printable)."""
    problems = []
    if len(manager.encode()) > 128:
        problems.append(errors.too_long("fieldManager", 128))
    elif not manager.isprintable():
        problems.append(
            errors.invalid("fieldManager", manager, "must only contain printable characters")
        )
    if problems:
        raise errors.invalid_object(options_kind, "", problems, "meta.k8s.io")


def shape_of(strategy: Strategy) -> mf.Shape:
    """What objects of a resource merge by: the official schema of a built-in kind, the
    CRD's schema of a custom resource."""
    got = _SHAPES.get(strategy)
    if got is None:
        r = strategy.resource
        definition = schemas().name_for(r.group, r.version, r.kind)
        if definition is not None:
            got = mf.builtin_shape(definition)
        else:
            got = mf.custom_shape(getattr(strategy, "schema", None) or {})
        _SHAPES[strategy] = got
    return got


def _status_mode(strategy: Strategy, subresource: str, *, create: bool) -> str:
    r = strategy.resource
    if subresource == "status":
        return "only"
    if "status" not in r.subresources:
        return ""
    keeps = strategy.keeps_status_on_create if create else strategy.main_update_writes_status
    return "" if keeps else "drop"


def _scope(obj: JSON, mode: str) -> JSON:
    """The part of an object a write may own: without status, or status alone."""
    if mode == "drop":
        return {k: v for k, v in obj.items() if k != "status"}
    if mode == "only":
        return {"status": obj["status"]} if "status" in obj else {}
    return obj


def record_update(
    strategy: Strategy,
    live: JSON | None,
    new: JSON,
    *,
    manager: str,
    subresource: str,
    time: str,
) -> list[JSON] | None:
    """The managedFields after ``manager`` wrote ``new`` over ``live`` (None: a create),
    as upstream's Update operation records them; None when there are none."""
    r: Resource = strategy.resource
    requested = (new.get("metadata") or {}).get("managedFields")
    live_entries = ((live or {}).get("metadata") or {}).get("managedFields")
    ignore_request = subresource != ""
    if not ignore_request and mf.is_reset(requested):
        return None
    base = None if ignore_request or requested is None else mf.decode(requested)
    if not base:
        base = mf.decode(live_entries) or []
    shape = shape_of(strategy)
    mode = _status_mode(strategy, subresource, create=live is None)
    old = live if live is not None else mf.empty_object(_definition(r))
    if live is None and not base:
        # a create that names no managers: one entry, its set built in upstream's order
        # (what ``update`` makes of ``compare``'s result here, in one walk)
        fields = mf.created(_scope(old, mode), _scope(new, mode), shape)
        fields = mf.strip_ignored(fields, status=mode)
        if not fields:
            return None
        return [mf.Manager(manager, mf.UPDATE, r.api_version, time, fields, subresource).entry()]
    changed, removed = mf.compare(_scope(old, mode), _scope(new, mode), shape)
    changed = mf.strip_ignored(changed, status=mode)
    removed = mf.strip_ignored(removed, status=mode)
    managers = mf.update(
        base,
        changed,
        removed,
        manager=manager,
        api_version=r.api_version,
        subresource=subresource,
        time=time,
    )
    return mf.encode(managers) or None


def set_managed_fields(obj: JSON, entries: list[JSON] | None) -> None:
    meta = obj.setdefault("metadata", {})
    if entries:
        meta["managedFields"] = entries
    else:
        meta.pop("managedFields", None)


def _definition(r: Resource) -> str | None:
    return schemas().name_for(r.group, r.version, r.kind)


def apply(
    strategy: Strategy,
    live: JSON | None,
    config: JSON,
    *,
    manager: str,
    subresource: str,
    force: bool,
    time: str,
) -> JSON:
    """The object after ``manager`` applied ``config`` over ``live`` (None: apply creates
    it), with its managedFields; 409 on conflicts unless ``force``. kubectl's own manager
    may take over what the last client-side apply set to the same values, and keeps that
    annotation in step with what it applies, as upstream's lastApplied wrappers do."""
    r = strategy.resource
    meta = config.get("metadata")
    if isinstance(meta, dict) and meta.get("managedFields") is not None:
        raise errors.bad_request("metadata.managedFields must be nil")
    shape = shape_of(strategy)
    mode = _status_mode(strategy, subresource, create=live is None)
    base_obj = live if live is not None else {}
    base = mf.decode((base_obj.get("metadata") or {}).get("managedFields")) or []
    last_applied = _last_applied(base_obj)

    def allowed() -> mf.FieldSet:
        return _allowed_from_last_applied(last_applied, base_obj, shape)

    applied = mf.apply(
        _without_managed_fields(base_obj),
        config,
        base,
        shape,
        manager=manager,
        api_version=r.api_version,
        subresource=subresource,
        status=mode,
        force=force,
        time=time,
        allowed_conflicts=(
            allowed if manager == mf.KUBECTL_APPLY_MANAGER and last_applied is not None else None
        ),
    )
    out = applied.obj
    if manager == mf.KUBECTL_APPLY_MANAGER and last_applied is not None:
        _sync_last_applied(out, config)
    set_managed_fields(out, mf.encode(applied.managers) or None)
    return out


def _without_managed_fields(obj: JSON) -> JSON:
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or "managedFields" not in meta:
        return obj
    return {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


def _last_applied(obj: JSON) -> str | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(mf.LAST_APPLIED)
    return value if isinstance(value, str) and value else None


def _allowed_from_last_applied(text: str | None, live: JSON, shape: mf.Shape) -> mf.FieldSet:
    """Fields the last client-side apply set that still hold the values it set."""
    try:
        last = orjson.loads(text or "")
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(last, dict):
        return {}
    changed, _removed = mf.compare(last, live, shape)
    return mf.difference(mf.field_set(last, shape), changed)


def _sync_last_applied(obj: JSON, config: JSON) -> None:
    """kubectl's server-side apply keeps the client-side annotation (when there is one)
    equal to what it applied, so a later client-side apply diffs against it."""
    meta = config.get("metadata") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != mf.LAST_APPLIED}
    applied_meta = {k: v for k, v in meta.items() if k != "annotations"}
    if annotations:
        applied_meta["annotations"] = annotations
    value = orjson.dumps({**config, "metadata": applied_meta}).decode()
    out_meta = obj.setdefault("metadata", {})
    out_meta["annotations"] = {**(out_meta.get("annotations") or {}), mf.LAST_APPLIED: value}
