"""Resource verbs over HTTP: get, list, watch, create, update, patch, delete,
deletecollection, and the status, scale and binding subresources.

A write runs upstream's pipeline in upstream's order — decode, field validation
(Strict/Warn/Ignore), admission, defaulting, the resource strategy, validation, then
one compare-and-swap write — so a request either fails before anything is written or
is written whole. Lists and watches are served from the watch cache; paginated and
exact-revision lists read the store at a fixed revision so every page belongs to one
snapshot.

Resources served at several versions share one storage (see :mod:`pyk8s.apiserver.rest`):
selectors are matched on stored objects, in the storage version's field names, and what
goes out is converted to the request's version; objects already at that version go out as
the watch cache's pre-encoded bytes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from pyk8s.api import errors
from pyk8s.api.defaults import apply_defaults
from pyk8s.api.patch import (
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
)
from pyk8s.api.qos import pod_qos_class
from pyk8s.api.registry import Resource
from pyk8s.api.schema import schemas
from pyk8s.api.selectors import (
    SelectorError,
    check_field_selector,
    field_values,
    label_selector_from_dict,
    parse_field_selector,
    parse_label_selector,
)
from pyk8s.api.tables import build_table
from pyk8s.api.validation import unknown_fields, validate_create, validate_update
from pyk8s.apiserver import admission, encoding, kubeletproxy, quota, reviews
from pyk8s.apiserver.allocators import AlreadyAllocated, OutOfRange, RangeFull
from pyk8s.apiserver.encoding import json_response
from pyk8s.apiserver.requestinfo import RequestInfo
from pyk8s.apiserver.rest import (
    RETURNS_DELETED_OBJECT,
    DeleteOptions,
    ResourceStore,
    deleted_status,
    from_kv,
    generate_name_if_needed,
    now,
    timestamp,
)
from pyk8s.apiserver.watchcache import CacheEvent, Entry, NotReady, TooOld
from pyk8s.storage import Compacted, FutureRevision, NotFound, next_start

if TYPE_CHECKING:
    from pyk8s.apiserver.server import APIServer

log = logging.getLogger(__name__)

JSON = dict[str, Any]
Matcher = Callable[[JSON], bool]

BOOKMARK_INTERVAL = 60.0
DEFAULT_WATCH_TIMEOUT = 1800
PATCH_RETRIES = 5
#: most watch events written in one chunk
WATCH_BATCH = 256

CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You "
    "can start a new list without the continue parameter, or use the continue token in "
    "this response to retrieve the remainder of the results. Continuing with the provided "
    "token results in an inconsistent list - objects that were created, modified, or "
    "deleted between the time the first chunk was returned and now may show up in the list."
)


def _bool(v: str | None) -> bool:
    return (v or "").lower() in ("true", "1")


def _dry_run(query: dict[str, str] | Any) -> bool:
    values = query.getall("dryRun", []) if hasattr(query, "getall") else [query.get("dryRun")]
    for v in values:
        if v == "All":
            return True
        if v:
            raise errors.bad_request(f'unsupported dryRun value "{v}"; supported values: "All"')
    return False


def encode_continue(revision: int, start: str) -> str:
    token = orjson.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": start})
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
        if data.get("v") != "meta.k8s.io/v1":
            raise ValueError("wrong version")
        return int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise errors.bad_request(
            "continue key is not valid: incorrect encoded start "
            "resourceVersion (version meta.k8s.io/v1)"
        ) from None


def _drop_path(obj: Any, path: str) -> None:
    """Remove the field at a dotted path with [i] indices (for unknown fields)."""
    tokens: list[str | int] = []
    for part in path.replace("]", "").split("."):
        name, *idx = part.split("[")
        if name:
            tokens.append(name)
        tokens.extend(int(i) for i in idx)
    cur = obj
    for t in tokens[:-1]:
        try:
            cur = cur[t]
        except (KeyError, IndexError, TypeError):
            return
    last = tokens[-1] if tokens else None
    if isinstance(cur, dict) and isinstance(last, str):
        cur.pop(last, None)


class ResourceHandlers:
    def __init__(self, server: APIServer) -> None:
        self.server = server
        self.store = server.store
        self.cache = server.cache
        self.registry = server.registry
        self._rest: dict[tuple[str, str, str], ResourceStore] = {}
        self._watch_tasks: set[asyncio.Task[Any]] = set()
        self._closing = asyncio.Event()

    def rest(self, r: Resource) -> ResourceStore:
        key = (r.group, r.version, r.plural)
        if key not in self._rest:
            self._rest[key] = ResourceStore(self.store, r)
        return self._rest[key]

    def resource(self, info: RequestInfo) -> Resource:
        r = self.registry.get(info.group, info.version, info.resource)
        if r is None:
            raise errors.no_such_resource()
        return r

    async def close_watches(self) -> None:
        self._closing.set()
        for t in list(self._watch_tasks):
            t.cancel()

    # ------------------------------------------------------------------ routing

    async def serve(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        r = self.resource(info)
        sub = info.subresource
        if sub and sub not in r.subresources:
            raise errors.no_such_resource()
        if (
            r.namespaced
            and not info.namespace
            and info.verb not in ("list", "watch", "deletecollection")
        ):
            raise errors.no_such_resource()
        if not r.namespaced and info.namespace:
            raise errors.no_such_resource()
        verb = info.verb
        if verb not in r.verbs and not sub:
            raise errors.method_not_allowed(
                "the server does not allow this method on the requested resource"
            )
        if not r.stored or sub in reviews.SUBRESOURCES:
            # reviews, TokenRequest, eviction: answered from the request, never stored
            return await reviews.serve(self, request, info, r)
        if sub == "scale":
            return await self.scale(request, info, r)
        if sub == "binding":
            return await self.bind(request, info, r)
        if r.plural == "pods" and sub in kubeletproxy.SUBRESOURCES:
            return await kubeletproxy.serve(self, request, info)
        if r.plural == "nodes" and sub.split("/", 1)[0] == "proxy":
            return await kubeletproxy.serve_node_proxy(self, request, info.name)
        if sub in ("log", "exec", "attach", "portforward", "proxy", "ephemeralcontainers"):
            raise errors.StatusError(
                501, "NotImplemented", f"{r.plural}/{sub} is not served by pyk8s yet", {}
            )
        if verb == "get":
            obj = await self.rest(r).get(info.namespace, info.name)
            if sub == "" and encoding.wants_table(request.headers.get("Accept")):
                rv = obj["metadata"].get("resourceVersion", "")
                return json_response(
                    build_table(
                        r,
                        [obj],
                        now=now(),
                        include_object=request.query.get("includeObject", ""),
                        list_meta={"resourceVersion": rv},
                    )
                )
            return json_response(obj)
        if verb == "list":
            return await self.list_(request, info, r)
        if verb == "watch":
            return await self.watch(request, info, r)
        if verb == "create":
            if r.plural == "bindings":
                return await self.bind(request, info, r)
            return await self.create(request, info, r)
        if verb == "update":
            return await self.update(request, info, r)
        if verb == "patch":
            return await self.patch(request, info, r)
        if verb == "delete":
            return await self.delete(request, info, r)
        if verb == "deletecollection":
            return await self.delete_collection(request, info, r)
        raise errors.method_not_allowed(f"verb {verb} is not supported")

    # ------------------------------------------------------------------ decoding

    async def _body(self, request: web.Request, *, patch: bool = False) -> Any:
        body = await encoding.read_body(request)
        return encoding.decode_body(body, request.headers.get("Content-Type"), patch=patch)

    def _object(self, data: Any, r: Resource, info: RequestInfo) -> JSON:
        if not isinstance(data, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        api_version, kind = data.get("apiVersion"), data.get("kind")
        if kind and kind != r.kind and not (r.plural == "bindings" and kind == "Binding"):
            raise errors.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({r.kind})"
            )
        if api_version and api_version != r.api_version:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({r.api_version})"
            )
        meta = data.get("metadata")
        if meta is None:
            data["metadata"] = meta = {}
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        ns = meta.get("namespace")
        if r.namespaced:
            if ns and info.namespace and ns != info.namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match "
                    "the namespace sent on the request"
                )
            if info.namespace:
                meta["namespace"] = info.namespace
        else:
            meta.pop("namespace", None)
        return data

    def _field_validation(self, r: Resource, obj: JSON, query: Any) -> list[str]:
        mode = query.get("fieldValidation") or "Warn"
        if mode not in ("Strict", "Warn", "Ignore"):
            raise errors.bad_request(
                f'fieldValidation must be one of "Ignore", "Warn", or "Strict", got "{mode}"'
            )
        unknown = unknown_fields(r, obj)
        for path in unknown:
            _drop_path(obj, path)
        if not unknown or mode == "Ignore":
            return []
        messages = [f'unknown field "{p}"' for p in unknown]
        if mode == "Strict":
            raise errors.bad_request("strict decoding error: " + ", ".join(messages))
        return messages

    # ------------------------------------------------------------------ get helpers

    async def lookup(self, plural: str, group: str, namespace: str, name: str) -> JSON | None:
        """An object from the watch cache (the store when the cache has not seen it yet)."""
        r = self.registry.for_group_resource(group, plural)
        if r is None:
            return None
        entry = self.cache.objects.get(r.key(namespace or None, name))
        if entry is not None:
            return entry.obj
        try:
            return await self.rest(r).get(namespace, name)
        except errors.StatusError:
            return None

    async def cached(self, plural: str, group: str, namespace: str, name: str) -> JSON | None:
        """An object from the watch cache only: for admission checks on the create path,
        where a store read per request would show (a miss means "not there")."""
        r = self.registry.for_group_resource(group, plural)
        entry = None if r is None else self.cache.objects.get(r.key(namespace or None, name))
        return None if entry is None else entry.obj

    async def list_objects(self, plural: str, group: str) -> list[JSON]:
        r = self.registry.for_group_resource(group, plural)
        return [] if r is None else [e.obj for e in self.cache.list(r.key_prefix())]

    # ------------------------------------------------------------------ create

    async def create(self, request: web.Request, info: RequestInfo, r: Resource) -> web.Response:
        query = request.query
        dry_run = _dry_run(query)
        obj = self._object(await self._body(request), r, info)
        if r.namespaced and not info.namespace:
            raise errors.method_not_allowed("create requires a namespace")
        warnings = self._field_validation(r, obj, query)
        generate_name_if_needed(obj)
        out = await self.create_object(r, obj, dry_run=dry_run)
        return json_response(out, 201, warnings=warnings)

    async def create_object(self, r: Resource, obj: JSON, *, dry_run: bool = False) -> JSON:
        """Admission, defaults, strategy, validation, allocation, then the write."""
        rest = self.rest(r)
        meta = obj["metadata"]
        namespace = meta.get("namespace", "") if r.namespaced else ""
        await admission.namespace_lifecycle(r, namespace, "create", self.lookup)
        if r.plural == "pods":
            await admission.service_account(obj, self.cached)
            admission.default_toleration_seconds(obj)
            await admission.priority(obj, self.list_objects)
        obj = apply_defaults(r, obj)
        rest.prepare_for_create(obj)
        if r.plural == "pods":
            obj["status"] = {"phase": "Pending", "qosClass": pod_qos_class(obj)}
        problems = validate_create(r, obj)
        if problems:
            raise errors.invalid_object(r.kind, meta.get("name", ""), problems, r.group)
        await quota.admit_create(self, r, obj, dry_run=dry_run)  # ResourceQuota admission
        allocated: list[tuple[Any, str]] = []
        try:
            if r.plural == "services" and not dry_run:
                allocated = await self._allocate_service(obj, None)
            ttl = 3600 if r.plural == "events" else 0
            return await rest.create(obj, dry_run=dry_run, ttl=ttl)
        except BaseException:
            for allocator, item in allocated:
                await allocator.release(item)
            raise

    async def ensure(self, obj: JSON, *, update: bool = False) -> None:
        """Create a bootstrap object unless it exists (or update it when asked)."""
        r = self.registry.for_api_version(obj["apiVersion"], obj["kind"])
        assert r is not None
        meta = obj["metadata"]
        try:
            current, kv = await self.rest(r).read(meta.get("namespace", ""), meta["name"])
        except errors.StatusError:
            with contextlib.suppress(errors.StatusError):
                await self.create_object(r, copy.deepcopy(obj))
            return
        if update:
            new = {**current, **{k: v for k, v in obj.items() if k != "metadata"}}
            new = self.rest(r).prepare_for_update(apply_defaults(r, new, create=False), current, "")
            with contextlib.suppress(errors.StatusError):
                await self.rest(r).write_update(new, current, kv)

    # ------------------------------------------------------------------ services

    async def _allocate_service(self, svc: JSON, old: JSON | None) -> list[tuple[Any, str]]:
        """Allocate ClusterIP and NodePorts the service needs; returns what was taken."""
        taken: list[tuple[Any, str]] = []
        spec = svc.setdefault("spec", {})
        meta = svc["metadata"]
        owner = f"{meta.get('namespace')}/{meta.get('name')}"
        ips = self.server.cluster_ips
        ports = self.server.node_ports
        try:
            stype = spec.get("type", "ClusterIP")
            old_spec = (old or {}).get("spec", {})
            if stype != "ExternalName":
                ip = spec.get("clusterIP") or (spec.get("clusterIPs") or [None])[0]
                if old and not ip:
                    ip = old_spec.get("clusterIP")
                    if ip:
                        spec["clusterIP"], spec["clusterIPs"] = ip, old_spec.get("clusterIPs", [ip])
                elif ip == "None":
                    spec["clusterIPs"] = ["None"]
                elif not ip:
                    ip = await ips.allocate(owner)
                    taken.append((ips, ip))
                    spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
                elif not old or old_spec.get("clusterIP") != ip:
                    try:
                        await ips.reserve(ip, owner)
                    except AlreadyAllocated:
                        raise errors.invalid_object(
                            "Service",
                            meta.get("name", ""),
                            [
                                errors.invalid(
                                    "spec.clusterIPs",
                                    [ip],
                                    f"failed to allocate IP {ip}: provided IP is already allocated",
                                )
                            ],
                        ) from None
                    except OutOfRange:
                        raise errors.invalid_object(
                            "Service",
                            meta.get("name", ""),
                            [
                                errors.invalid(
                                    "spec.clusterIPs",
                                    [ip],
                                    f"failed to allocate IP {ip}: the provided IP "
                                    f"({ip}) is not in the valid range. The range of "
                                    "valid IPs is "
                                    f"{self.server.config.service_cidr}",
                                )
                            ],
                        ) from None
                    taken.append((ips, ip))
                    spec["clusterIPs"] = [ip]
            if stype in ("NodePort", "LoadBalancer"):
                old_ports = {
                    (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                    for p in old_spec.get("ports", [])
                }
                for i, p in enumerate(spec.get("ports", [])):
                    np = p.get("nodePort")
                    previous = old_ports.get((p.get("port"), p.get("protocol", "TCP")))
                    if not np and previous:
                        p["nodePort"] = previous
                        continue
                    if np and np == previous:
                        continue
                    if np:
                        try:
                            await ports.reserve(str(np), owner)
                        except AlreadyAllocated:
                            raise errors.invalid_object(
                                "Service",
                                meta.get("name", ""),
                                [
                                    errors.invalid(
                                        f"spec.ports[{i}].nodePort",
                                        np,
                                        "provided port is already allocated",
                                    )
                                ],
                            ) from None
                        except OutOfRange:
                            lo, hi = self.server.config.node_port_range
                            raise errors.invalid_object(
                                "Service",
                                meta.get("name", ""),
                                [
                                    errors.invalid(
                                        f"spec.ports[{i}].nodePort",
                                        np,
                                        f"provided port is not in the valid range. The "
                                        f"range of valid ports is {lo}-{hi}",
                                    )
                                ],
                            ) from None
                        taken.append((ports, str(np)))
                    else:
                        got = await ports.allocate(owner)
                        taken.append((ports, got))
                        p["nodePort"] = int(got)
            return taken
        except RangeFull as err:
            for allocator, item in taken:
                await allocator.release(item)
            raise errors.internal(f"range is full: {err}") from None
        except BaseException:
            for allocator, item in taken:
                await allocator.release(item)
            raise

    async def _release_service(self, svc: JSON, keep: JSON | None = None) -> None:
        """Release what ``svc`` holds and ``keep`` (its replacement) does not."""
        spec = svc.get("spec", {})
        keep_spec = (keep or {}).get("spec", {})
        ip = spec.get("clusterIP")
        if ip and ip != "None" and ip != keep_spec.get("clusterIP"):
            await self.server.cluster_ips.release(ip)
        kept = {p.get("nodePort") for p in keep_spec.get("ports", [])}
        for p in spec.get("ports", []):
            if p.get("nodePort") and p["nodePort"] not in kept:
                await self.server.node_ports.release(str(p["nodePort"]))

    # ------------------------------------------------------------------ update

    async def update(self, request: web.Request, info: RequestInfo, r: Resource) -> web.Response:
        query = request.query
        dry_run = _dry_run(query)
        obj = self._object(await self._body(request), r, info)
        name = obj["metadata"].get("name")
        if name and name != info.name:
            raise errors.bad_request(
                f"the name of the object ({name}) does not match the name on the URL ({info.name})"
            )
        obj["metadata"]["name"] = info.name
        warnings = self._field_validation(r, obj, query)
        if r.plural == "namespaces" and info.subresource == "finalize":
            return json_response(await self.finalize_namespace(r, info, obj, dry_run))
        current, kv = await self.rest(r).read(info.namespace, info.name)
        rv = obj["metadata"].get("resourceVersion")
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise self.rest(r).conflict(info.name)
        out = await self.update_object(r, obj, current, kv, info.subresource, dry_run=dry_run)
        return json_response(out, 200, warnings=warnings)

    async def update_object(
        self,
        r: Resource,
        obj: JSON,
        current: JSON,
        kv: Any,
        subresource: str,
        *,
        dry_run: bool = False,
    ) -> JSON:
        rest = self.rest(r)
        new = rest.prepare_for_update(obj, current, subresource)
        if subresource != "status":
            new = apply_defaults(r, new, create=False)
        problems = validate_update(r, new, current)
        if problems:
            raise errors.invalid_object(r.kind, info_name(new), problems, r.group)
        taken: list[tuple[Any, str]] = []
        if r.plural == "services" and subresource == "" and not dry_run:
            taken = await self._allocate_service(new, current)
        try:
            out = await rest.write_update(
                new, current, kv, dry_run=dry_run, subresource=subresource
            )
        except BaseException:
            for allocator, item in taken:
                await allocator.release(item)
            raise
        if r.plural == "services" and subresource == "" and not dry_run:
            await self._release_service(current, keep=out)
        return out

    async def finalize_namespace(
        self, r: Resource, info: RequestInfo, obj: JSON, dry_run: bool
    ) -> JSON:
        current, kv = await self.rest(r).read("", info.name)
        new = copy.deepcopy(current)
        new.setdefault("spec", {})["finalizers"] = (obj.get("spec") or {}).get("finalizers", [])
        if not new["spec"]["finalizers"]:
            new["spec"].pop("finalizers")
        if (
            new["metadata"].get("deletionTimestamp")
            and not new["spec"].get("finalizers")
            and not new["metadata"].get("finalizers")
        ):
            if not dry_run:
                with contextlib.suppress(NotFound):
                    await self.store.delete(kv.key, expected_revision=kv.mod_revision)
            return new
        return await self.rest(r).write_update(new, current, kv, dry_run=dry_run)

    # ------------------------------------------------------------------ patch

    async def patch(self, request: web.Request, info: RequestInfo, r: Resource) -> web.Response:
        query = request.query
        dry_run = _dry_run(query)
        content_type = encoding.media_type(request.headers.get("Content-Type"))
        patch = await self._body(request, patch=True)
        rest = self.rest(r)
        definition = schemas().name_for(r.group, r.version, r.kind)
        warnings: list[str] = []
        for _attempt in range(PATCH_RETRIES):
            current, kv = await rest.read(info.namespace, info.name)
            if content_type == encoding.PATCH_JSON:
                patched = apply_json_patch(current, patch)
            elif content_type == encoding.PATCH_MERGE:
                patched = apply_merge_patch(current, patch)
            else:
                patched = apply_strategic_merge_patch(current, patch, definition)
            if not isinstance(patched, dict):
                raise errors.bad_request("the patched object is not a JSON object")
            patched = self._object(patched, r, info)
            if patched["metadata"].get("name") != info.name:
                raise errors.bad_request("metadata.name may not be changed by a patch")
            rv = patched["metadata"].get("resourceVersion")
            if rv and rv != current["metadata"]["resourceVersion"]:
                raise rest.conflict(info.name)
            warnings = self._field_validation(r, patched, query)
            try:
                out = await self.update_object(
                    r, patched, current, kv, info.subresource, dry_run=dry_run
                )
            except errors.StatusError as err:
                if err.reason == "Conflict" and not _has_rv(patch):
                    continue  # somebody wrote in between: patch the new state
                raise
            return json_response(out, 200, warnings=warnings)
        raise rest.conflict(info.name)

    # ------------------------------------------------------------------ delete

    async def delete(self, request: web.Request, info: RequestInfo, r: Resource) -> web.Response:
        body: JSON | None = None
        if request.can_read_body:
            raw = await encoding.read_body(request)
            if raw.strip():
                data = encoding.decode_body(raw, request.headers.get("Content-Type"))
                body = data if isinstance(data, dict) else None
        opts = DeleteOptions.parse(body, dict(request.query))
        opts.dry_run = opts.dry_run or _dry_run(request.query)
        if r.plural == "namespaces":
            admission.protect_system_namespace(info.name)
        obj, deleted_now = await self.rest(r).delete(info.namespace, info.name, opts)
        if deleted_now and r.plural == "services" and not opts.dry_run:
            await self._release_service(obj)
        if deleted_now and r.plural not in RETURNS_DELETED_OBJECT:
            return json_response(deleted_status(r, obj))
        return json_response(obj)

    async def delete_collection(
        self, request: web.Request, info: RequestInfo, r: Resource
    ) -> web.Response:
        matches = self._matcher(r, request.query)
        await self._fresh()
        prefix = r.key_prefix(info.namespace or None)
        opts = DeleteOptions.parse(None, dict(request.query))
        opts.dry_run = _dry_run(request.query)
        items = []
        for entry in self.cache.list(prefix):
            if matches is not None and not matches(entry.obj):
                continue
            meta = entry.obj["metadata"]
            try:
                obj, deleted_now = await self.rest(r).delete(
                    meta.get("namespace", ""), meta["name"], opts
                )
            except errors.StatusError as err:
                if err.code == 404:
                    continue
                raise
            if deleted_now and r.plural == "services" and not opts.dry_run:
                await self._release_service(obj)
            items.append(obj)
        return json_response(
            {
                "kind": r.list_kind,
                "apiVersion": r.api_version,
                "metadata": {"resourceVersion": str(self.cache.revision)},
                "items": items,
            }
        )

    # ------------------------------------------------------------------ scale, binding

    async def scale(self, request: web.Request, info: RequestInfo, r: Resource) -> web.Response:
        rest = self.rest(r)
        if request.method in ("GET", "HEAD"):
            return json_response(_scale_of(await rest.get(info.namespace, info.name)))
        dry_run = _dry_run(request.query)
        if request.method not in ("PUT", "PATCH"):
            raise errors.method_not_allowed("scale supports get, update and patch")
        ct = encoding.media_type(request.headers.get("Content-Type"))
        doc: Any = await self._body(request, patch=request.method == "PATCH")
        for _attempt in range(PATCH_RETRIES):
            current, kv = await rest.read(info.namespace, info.name)
            scale = _scale_of(current)
            new_scale: Any = doc
            if request.method == "PUT":
                rv = (new_scale.get("metadata") or {}).get("resourceVersion")
                if rv and rv != current["metadata"]["resourceVersion"]:
                    raise rest.conflict(info.name)
            else:
                patch_doc = doc
                if ct == encoding.PATCH_JSON:
                    new_scale = apply_json_patch(scale, patch_doc)
                elif ct == encoding.PATCH_MERGE:
                    new_scale = apply_merge_patch(scale, patch_doc)
                else:
                    new_scale = apply_strategic_merge_patch(
                        scale, patch_doc, "io.k8s.api.autoscaling.v1.Scale"
                    )
            replicas = (new_scale.get("spec") or {}).get("replicas", 0)
            if not isinstance(replicas, int) or replicas < 0:
                raise errors.invalid_object(
                    "Scale",
                    info.name,
                    [
                        errors.invalid(
                            "spec.replicas", replicas, "must be greater than or equal to 0"
                        )
                    ],
                    "autoscaling",
                )
            new = copy.deepcopy(current)
            new.setdefault("spec", {})["replicas"] = replicas
            try:
                out = await self.update_object(r, new, current, kv, "", dry_run=dry_run)
            except errors.StatusError as err:
                if err.reason == "Conflict" and request.method == "PATCH":
                    continue
                raise
            return json_response(_scale_of(out))
        raise rest.conflict(info.name)

    async def bind(self, request: web.Request, info: RequestInfo, r: Resource) -> web.Response:
        """pods/binding (and POST bindings): assign a pod to a node, once."""
        body = await self._body(request)
        if not isinstance(body, dict):
            raise errors.bad_request("a Binding must be a JSON object")
        pods = self.registry.get("", "v1", "pods")
        assert pods is not None
        name = info.name or (body.get("metadata") or {}).get("name", "")
        target = (body.get("target") or {}).get("name", "")
        if not target:
            raise errors.invalid_object("Binding", name, [errors.required("target.name")])
        rest = self.rest(pods)
        dry_run = _dry_run(request.query)
        for _attempt in range(PATCH_RETRIES):
            pod, kv = await rest.read(info.namespace, name)
            if pod["metadata"].get("deletionTimestamp"):
                raise errors.conflict(
                    "pods", name, "pod is being deleted, cannot be assigned to a host"
                )
            node = (pod.get("spec") or {}).get("nodeName")
            if node:
                raise errors.conflict(
                    "pods", name, f'pod {name} is already assigned to node "{node}"'
                )
            new = copy.deepcopy(pod)
            new["spec"]["nodeName"] = target
            conds = new.setdefault("status", {}).setdefault("conditions", [])
            conds[:] = [c for c in conds if c.get("type") != "PodScheduled"]
            conds.append(
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": timestamp(),
                }
            )
            try:
                await rest.write_update(new, pod, kv, dry_run=dry_run)
            except errors.StatusError as err:
                if err.reason == "Conflict":
                    continue
                raise
            return json_response(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "code": 201,
                },
                201,
            )
        raise rest.conflict(name)

    # ------------------------------------------------------------------ list

    def _matcher(self, r: Resource, query: Any) -> Matcher | None:
        try:
            labels = parse_label_selector(query.get("labelSelector", "") or "")
            fields = parse_field_selector(query.get("fieldSelector", "") or "")
            fields = check_field_selector(r, fields)
        except SelectorError as err:
            raise errors.bad_request(str(err)) from None
        if not str(labels) and not str(fields):
            return None
        registry = self.registry

        def matches(obj: JSON) -> bool:
            meta = obj.get("metadata") or {}
            if not labels.matches(meta.get("labels") or {}):
                return False
            # a stored object of another version has that version's selectable fields
            # (check_field_selector converted the labels: regarding.name → involvedObject.name)
            fr = r
            api_version = obj.get("apiVersion")
            if api_version is not None and api_version != r.api_version:
                fr = registry.for_api_version(api_version, obj.get("kind", "")) or r
            return fields.matches(field_values(fr, obj))

        return matches

    async def _fresh(self, rv: str = "") -> None:
        try:
            if rv == "":
                await self.cache.wait_fresh()
            elif rv != "0":
                await self.cache.wait_for(int(rv))
        except ValueError:
            raise errors.bad_request(f'Invalid value for resourceVersion: "{rv}"') from None
        except NotReady as err:
            raise errors.StatusError(
                504,
                "Timeout",
                str(err),
                {
                    "causes": [
                        {
                            "reason": "ResourceVersionTooLarge",
                            "message": "Too large resource version",
                        }
                    ],
                    "retryAfterSeconds": 1,
                },
            ) from None

    async def list_(self, request: web.Request, info: RequestInfo, r: Resource) -> web.Response:
        q = request.query
        matches = self._matcher(r, q)
        prefix = r.key_prefix(info.namespace or None)
        rv = q.get("resourceVersion", "")
        rv_match = q.get("resourceVersionMatch", "")
        try:
            limit = int(q.get("limit") or 0)
        except ValueError:
            raise errors.bad_request("limit must be an integer") from None
        token = q.get("continue", "")
        if rv_match and rv_match not in ("Exact", "NotOlderThan"):
            raise errors.bad_request(f'invalid resourceVersionMatch "{rv_match}"')
        if token and rv:
            raise errors.bad_request(
                "specifying resource version is not allowed when using continue"
            )
        if token or (limit > 0 and rv != "0") or rv_match == "Exact":
            revision = int(rv) if rv_match == "Exact" and rv else 0
            start = ""
            if token:
                revision, rel = decode_continue(token)
                start = prefix + rel
            objs, list_meta = await self._list_from_store(prefix, revision, start, limit, matches)
            to_request = self.rest(r).to_request
            objs = [to_request(o) for o in objs]
            raws = [orjson.dumps(o) for o in objs]
        else:
            await self._fresh(rv)
            entries = self.cache.list(prefix)
            if matches is not None:
                entries = [e for e in entries if matches(e.obj)]
            views = [e.as_version(r.api_version) for e in entries]
            objs = [obj for obj, _ in views]
            raws = [raw for _, raw in views]
            list_meta = {"resourceVersion": str(self.cache.revision)}
        if encoding.wants_table(request.headers.get("Accept")):
            table = build_table(
                r, objs, now=now(), include_object=q.get("includeObject", ""), list_meta=list_meta
            )
            return json_response(table)
        head = orjson.dumps(
            {"kind": r.list_kind, "apiVersion": r.api_version, "metadata": list_meta}
        )
        body = head[:-1] + b',"items":[' + b",".join(raws) + b"]}"
        return json_response(body)

    async def _list_from_store(
        self, prefix: str, revision: int, start: str, limit: int, matches: Matcher | None
    ) -> tuple[list[JSON], JSON]:
        items: list[JSON] = []
        cursor = start
        remaining = 0
        more = False
        last_key = ""
        try:
            while True:
                want = limit - len(items) if limit > 0 else 0
                page = await self.store.list(prefix, limit=want, start=cursor, revision=revision)
                revision = page.revision
                for kv in page.kvs:
                    obj = from_kv(kv)
                    if matches is None or matches(obj):
                        items.append(obj)
                if page.kvs:
                    last_key = page.kvs[-1].key
                more, remaining = page.more, page.remaining
                if not page.more or (limit > 0 and len(items) >= limit):
                    break
                cursor = next_start(page)
        except Compacted:
            raise errors.gone(
                CONTINUE_EXPIRED if start else f"too old resource version: {revision}"
            ) from None
        except FutureRevision as err:
            raise errors.StatusError(
                504,
                "Timeout",
                f"Too large resource version: {err.revision}, current: {err.current_revision}",
                {"retryAfterSeconds": 1},
            ) from None
        meta: JSON = {"resourceVersion": str(revision)}
        if more:
            meta["continue"] = encode_continue(revision, last_key[len(prefix) :] + "\x00")
            if matches is None:
                meta["remainingItemCount"] = remaining
        return items, meta

    # ------------------------------------------------------------------ watch

    async def watch(
        self, request: web.Request, info: RequestInfo, r: Resource
    ) -> web.StreamResponse:
        q = request.query
        matches = self._matcher(r, q)
        if info.name:
            name_match = info.name
            base = matches

            def matches(obj: JSON) -> bool:
                if obj.get("metadata", {}).get("name") != name_match:
                    return False
                return base is None or base(obj)

        prefix = r.key_prefix(info.namespace or None)
        rv = q.get("resourceVersion", "")
        bookmarks = _bool(q.get("allowWatchBookmarks"))
        send_initial = q.get("sendInitialEvents")
        try:
            timeout = int(q.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        except ValueError:
            raise errors.bad_request("timeoutSeconds must be an integer") from None
        table = encoding.wants_table(request.headers.get("Accept"))
        include = q.get("includeObject", "")

        initial: list[Entry] = []
        error_event: JSON | None = None
        if send_initial is not None and _bool(send_initial):
            await self._fresh(rv if rv not in ("",) else "")
            initial = self._current(prefix, matches)
            start = self.cache.revision
        elif rv in ("", "0"):
            if rv == "":
                await self._fresh("")
            initial = self._current(prefix, matches)
            start = self.cache.revision
        else:
            try:
                start = int(rv)
            except ValueError:
                raise errors.bad_request(f'Invalid value for resourceVersion: "{rv}"') from None
            await self._fresh(rv)
        try:
            watcher = self.cache.watch(prefix, start, matches)
        except TooOld as err:
            watcher = None
            error_event = {"type": "ERROR", "object": errors.gone(str(err)).status()}

        resp = web.StreamResponse(status=200)
        resp.headers["Content-Type"] = "application/json"
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        first_table = [True]

        def frame(etype: str, obj: JSON, raw: bytes | None) -> bytes:
            if table and etype in ("ADDED", "MODIFIED", "DELETED"):
                t = build_table(
                    r, [obj], now=now(), include_object=include, no_headers=not first_table[0]
                )
                first_table[0] = False
                return orjson.dumps({"type": etype, "object": t}) + b"\n"
            if raw is None:
                raw = orjson.dumps(obj)
            return b'{"type":"' + etype.encode() + b'","object":' + raw + b"}\n"

        task = asyncio.current_task()
        assert task is not None
        self._watch_tasks.add(task)
        self.server.metrics.watchers.labels(r.plural).inc()
        try:
            if error_event is not None:
                await resp.write(orjson.dumps(error_event) + b"\n")
                return resp
            assert watcher is not None
            for i in range(0, len(initial), WATCH_BATCH):
                chunk = initial[i : i + WATCH_BATCH]
                await resp.write(
                    b"".join(frame("ADDED", *e.as_version(r.api_version)) for e in chunk)
                )
            if send_initial is not None and _bool(send_initial) and bookmarks:
                await resp.write(
                    frame("BOOKMARK", self._bookmark(r, start, initial_end=True), None)
                )
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                # events already queued go out in one write; only an empty queue waits
                batch = watcher.pending(WATCH_BATCH)
                if not batch:
                    try:
                        batch = [
                            await asyncio.wait_for(
                                watcher.next(), min(left, BOOKMARK_INTERVAL) if bookmarks else left
                            )
                        ]
                    except TimeoutError:
                        if bookmarks and time.monotonic() < deadline:
                            await resp.write(
                                frame("BOOKMARK", self._bookmark(r, self.cache.revision), None)
                            )
                        continue
                events = [ev for ev in batch if ev is not None]
                if events:
                    await resp.write(
                        b"".join(self._event_frame(ev, frame, r.api_version) for ev in events)
                    )
                if len(events) < len(batch):
                    break  # the cache restarted: the client must re-watch
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._watch_tasks.discard(task)
            self.server.metrics.watchers.labels(r.plural).dec()
            if watcher is not None:
                watcher.close()
        with contextlib.suppress(ConnectionResetError):
            await resp.write_eof()
        return resp

    @staticmethod
    def _event_frame(
        ev: CacheEvent, frame: Callable[[str, JSON, bytes | None], bytes], api_version: str
    ) -> bytes:
        """One watch event, its object in the request's version (DELETED: the last state)."""
        return frame(ev.type, *ev.entry.as_version(api_version))

    def _current(self, prefix: str, matches: Matcher | None) -> list[Entry]:
        entries = self.cache.list(prefix)
        if matches is not None:
            entries = [e for e in entries if matches(e.obj)]
        return entries

    @staticmethod
    def _bookmark(r: Resource, revision: int, initial_end: bool = False) -> JSON:
        meta: JSON = {"resourceVersion": str(revision)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": r.kind, "apiVersion": r.api_version, "metadata": meta}


def info_name(obj: JSON) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _has_rv(patch: Any) -> bool:
    return isinstance(patch, dict) and bool((patch.get("metadata") or {}).get("resourceVersion"))


def _scale_of(obj: JSON) -> JSON:
    meta = obj.get("metadata", {})
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    selector = ""
    sel = spec.get("selector")
    if isinstance(sel, dict):
        if "matchLabels" in sel or "matchExpressions" in sel:
            selector = str(label_selector_from_dict(sel))
        else:  # a ReplicationController's plain map
            selector = ",".join(f"{k}={v}" for k, v in sorted(sel.items()))
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": spec.get("replicas", 0)},
        "status": {"replicas": status.get("replicas", 0), "selector": selector},
    }
