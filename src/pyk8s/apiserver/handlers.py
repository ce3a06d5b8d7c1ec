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
import operator
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from pyk8s.api import errors
from pyk8s.api.jsoncopy import copy_json
from pyk8s.api.patch import (
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
)
from pyk8s.api.registry import Resource
from pyk8s.api.selectors import (
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)
from pyk8s.apiserver import audit, encoding, fieldmanager, reviews
from pyk8s.apiserver.admission import (
    CONNECT,
    CREATE,
    DELETE,
    UPDATE,
    Attributes,
    Chain,
    Context,
    build_chain,
    enabled_plugins,
)
from pyk8s.apiserver.admission.webhooks import WebhookMetrics
from pyk8s.apiserver.authn import REQUEST_USER, UserInfo
from pyk8s.apiserver.encoding import json_response
from pyk8s.apiserver.readers import CacheReader, QuotaWriter
from pyk8s.apiserver.requestinfo import RequestInfo
from pyk8s.apiserver.rest import (
    CachedValue,
    DeleteOptions,
    ResourceStore,
    Retry,
    deleted_status,
    from_kv,
    generate_name_if_needed,
    now,
    timestamp,
)
from pyk8s.apiserver.serviceresolver import ServiceResolver
from pyk8s.apiserver.strategies import Allocators, Rollback, Strategy, builtin_strategy
from pyk8s.apiserver.watchcache import Entry, NotReady, Selector, TooOld, uncached
from pyk8s.apiserver.webhook import WebhookClient
from pyk8s.storage import Compacted, FutureRevision, next_start

if TYPE_CHECKING:
    from pyk8s.apiserver.server import APIServer

log = logging.getLogger(__name__)

JSON = dict[str, Any]
#: a list or watch filter: it reads the cached entries' skeletons unless it says ``whole``
Matcher = Selector

BOOKMARK_INTERVAL = 60.0
DEFAULT_WATCH_TIMEOUT = 1800
PATCH_RETRIES = 5
#: most watch events written in one chunk
WATCH_BATCH = 256
#: a request's decoded body (as an object, or as a patch), kept for whoever reads it next
_BODY: web.RequestKey[Any] = web.RequestKey("body", object)
_PATCH_BODY: web.RequestKey[Any] = web.RequestKey("patch_body", object)
#: a check of one resource's creates and updates that needs the requesting user (RBAC's
#: privilege-escalation prevention), run before admission as upstream's storage does
WriteCheck = Callable[[Attributes], Awaitable[None]]
#: who bootstrap writes and other internal writes are admitted as
SYSTEM_USER = UserInfo("system:apiserver", groups=("system:masters",))

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


#: an entry's JSON
RAW = operator.attrgetter("raw")


def list_body(r: Resource, meta: JSON, raws: list[bytes]) -> bytes:
    """The JSON of a list of ``r`` with its list ``meta`` and the items' JSON ``raws``,
    with its newline (as :func:`json_response` sends it), in one join: a page is the
    size of its items (a few hundred KB for 100 pods), copied once, not once per
    concatenation."""
    head = orjson.dumps({"kind": r.list_kind, "apiVersion": r.api_version, "metadata": meta})
    start = head[:-1] + b',"items":['
    if not raws:
        return start + b"]}\n"
    parts = list(raws)
    parts[0] = start + parts[0]
    parts[-1] += b"]}\n"
    return b",".join(parts)


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
        config = server.config
        self.allocators = Allocators(
            server.cluster_ips,
            server.node_ports,
            config.service_cidr,
            config.node_port_range,
            server.service_ips[1:],
        )
        self._strategies: dict[tuple[str, str, str], Strategy] = {}
        self._rest: dict[tuple[str, str, str], ResourceStore] = {}
        self._watch_tasks: set[asyncio.Task[Any]] = set()
        self._closing = asyncio.Event()
        names = enabled_plugins(config.enable_admission_plugins, config.disable_admission_plugins)
        #: cache reads for admission plugins and the server's own controllers
        self.reader = CacheReader(self)
        #: the HTTPS client admission webhooks are called with (closed by the server)
        self.webhook_client = WebhookClient(ServiceResolver(self.reader))
        context = Context(
            self.reader,
            quota_writer=QuotaWriter(self),
            config=config.admission_config,
            registry=self.registry,
            authorizer=server.authorizer,
            strategy=self.strategy,
            decode=self.decode_admitted,
            webhook_client=self.webhook_client,
            webhook_metrics=WebhookMetrics(server.metrics.registry),
        )
        self.admission: Chain = build_chain(context, names)
        #: (group, plural) -> the resource's :data:`WriteCheck`
        self.write_checks: dict[tuple[str, str], WriteCheck] = {}

    # ------------------------------------------------------------------ the resources

    def strategy(self, r: Resource) -> Strategy:
        key = (r.group, r.version, r.plural)
        strategy = self._strategies.get(key)
        if strategy is None:
            strategy = self._strategies[key] = builtin_strategy(r, self.allocators)
        return strategy

    def rest(self, r: Resource) -> ResourceStore:
        key = (r.group, r.version, r.plural)
        rest = self._rest.get(key)
        if rest is None or rest.resource is not r:
            rest = self._rest[key] = ResourceStore(self.store, r, self.strategy(r), self._cached)
        return rest

    def _cached(self, key: str) -> tuple[bytes, int] | None:
        """The watch cache's JSON and mod revision of ``key`` (an update's first guess)."""
        entry = self.cache.objects.get(key)
        return None if entry is None else (entry.raw, entry.revision)

    def install(self, r: Resource, strategy: Strategy) -> None:
        """Serve ``r`` with ``strategy`` (a custom resource), replacing what was there."""
        key = (r.group, r.version, r.plural)
        self._strategies[key] = strategy
        self._rest.pop(key, None)
        self.registry.add(r)

    def uninstall(self, r: Resource) -> None:
        """Stop serving ``r``: requests for it are 404 from now on."""
        key = (r.group, r.version, r.plural)
        self.registry.remove(*key)
        self._strategies.pop(key, None)
        self._rest.pop(key, None)

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
        if sub and sub.split("/", 1)[0] not in r.subresources:
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
        if not r.stored:
            # reviews: answered from the request, never stored
            return await reviews.serve(self, request, info, r)
        strategy = self.strategy(r)
        handler = strategy.subresources.get(sub.split("/", 1)[0])
        if handler is not None and (sub or verb == "create"):
            connect = handler.connect
            if connect or verb == "create":
                await self._admit_subresource(
                    request, info, r, connect=connect, body_kind=handler.body_kind
                )
            return await handler.serve(self, request, info, r)
        if verb == "get":
            obj = await self.rest(r).get(info.namespace, info.name)
            metadata_only = encoding.wants_metadata(request.headers.get("Accept"))
            if sub == "" and metadata_only is not None:
                kind, api_version = metadata_only
                if kind != encoding.PARTIAL_OBJECT_METADATA:
                    custom = not strategy.strategic_merge_patch
                    raise errors.not_acceptable(
                        "you requested PartialObjectMetadataList, but the requested object is "
                        f"not a list ({encoding.go_type_name(r.group, r.kind, custom=custom)})"
                    )
                return json_response(encoding.partial_metadata(obj, api_version))
            if sub == "" and encoding.wants_table(request.headers.get("Accept")):
                rv = obj["metadata"].get("resourceVersion", "")
                return json_response(
                    strategy.table(
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

    async def _admit_subresource(
        self,
        request: web.Request,
        info: RequestInfo,
        r: Resource,
        *,
        connect: bool,
        body_kind: tuple[str, str, str] | None,
    ) -> None:
        """Admission of a subresource served by its own code: exec/attach/portforward/proxy
        as CONNECT with the query as options; a POST (pods/binding, pods/eviction,
        serviceaccounts/token) as CREATE with the request's object (decoded once, see
        :meth:`body`, and typed as ``body_kind`` first)."""
        body = None if connect else await self.body(request)
        if body_kind is not None and isinstance(body, dict):
            encoding.check_type_meta(body)
            encoding.check_types(body, *body_kind)
        attrs = Attributes(
            CONNECT if connect else CREATE,
            r,
            info.namespace,
            info.name,
            body if isinstance(body, dict) else None,
            None,
            self.user(request),
            subresource=info.subresource,
            dry_run=False if connect else _dry_run(request.query),
            options=dict(request.query) if connect else None,
        )
        await self.admission.admit(attrs)
        await self.admission.validate(attrs)

    # ------------------------------------------------------------------ decoding

    @staticmethod
    def user(request: web.Request) -> UserInfo:
        return request.get(REQUEST_USER) or SYSTEM_USER

    @staticmethod
    def dry_run(query: Any) -> bool:
        return _dry_run(query)

    @staticmethod
    def timestamp() -> str:
        return timestamp()

    async def body(self, request: web.Request, *, patch: bool = False) -> Any:
        """The decoded request body, decoded once: admission of a subresource POST and
        the subresource itself share it (what admission changes is what is served)."""
        key = _PATCH_BODY if patch else _BODY
        if key in request:
            return request[key]
        body = await encoding.read_body(request)
        decoded = encoding.decode_body(body, request.headers.get("Content-Type"), patch=patch)
        request[key] = decoded
        audit.log_request_object(decoded)
        return decoded

    def decode_object(
        self, data: Any, r: Resource, info: RequestInfo, *, patched: bool = False
    ) -> JSON:
        """The request's object, typed as ``r`` (nothing after this meets a wrong type)
        and in the request's namespace. ``patched``: the result of a patch, whose type
        mismatches upstream answers 422 on the field ``patch``, not 400."""
        if not isinstance(data, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        encoding.check_type_meta(data)
        api_version, kind = data.get("apiVersion"), data.get("kind")
        if kind and not self.strategy(r).accepts_kind(kind):
            raise errors.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({r.kind})"
            )
        if api_version and api_version != r.api_version:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({r.api_version})"
            )
        encoding.check_types(data, r.group, r.version, r.kind, patched=patched)
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

    @staticmethod
    def check_name(obj: JSON, info: RequestInfo) -> None:
        name = obj["metadata"].get("name")
        if name and name != info.name:
            raise errors.bad_request(
                f"the name of the object ({name}) does not match the name on the URL ({info.name})"
            )
        obj["metadata"]["name"] = info.name

    def decode_admitted(self, r: Resource, obj: JSON) -> JSON:
        """An object a mutating webhook patched, decoded as a request body is: fields the
        schema does not know dropped, defaults applied."""
        strategy = self.strategy(r)
        for path in strategy.unknown_fields(obj):
            _drop_path(obj, path)
        return strategy.default(obj, create=False)

    def _field_validation(self, r: Resource, obj: JSON, query: Any) -> list[str]:
        mode = query.get("fieldValidation") or "Warn"
        if mode not in ("Strict", "Warn", "Ignore"):
            raise errors.bad_request(
                f'fieldValidation must be one of "Ignore", "Warn", or "Strict", got "{mode}"'
            )
        unknown = self.strategy(r).unknown_fields(obj)
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

    # ------------------------------------------------------------------ create

    async def create(self, request: web.Request, info: RequestInfo, r: Resource) -> web.Response:
        query = request.query
        dry_run = _dry_run(query)
        obj = self.decode_object(await self.body(request), r, info)
        if r.namespaced and not info.namespace:
            raise errors.method_not_allowed("create requires a namespace")
        warnings = self._field_validation(r, obj, query)
        generate_name_if_needed(obj)
        manager = fieldmanager.manager_of(request)
        fieldmanager.check_field_manager(manager, "CreateOptions")
        out = await self.create_object(
            r, obj, dry_run=dry_run, user=self.user(request), warnings=warnings, manager=manager
        )
        return json_response(out, 201, warnings=warnings)

    async def create_object(
        self,
        r: Resource,
        obj: JSON,
        *,
        dry_run: bool = False,
        user: UserInfo = SYSTEM_USER,
        warnings: list[str] | None = None,
        manager: str = fieldmanager.INTERNAL_MANAGER,
        record: bool = True,
    ) -> JSON:
        """Defaults, managed fields (recorded for ``manager``; kept as they are when not
        ``record``: an apply made them), mutating admission, strategy, validation,
        validating admission, allocation, then the write. Admission's warnings are added
        to ``warnings``."""
        rest = self.rest(r)
        strategy = rest.strategy
        obj = strategy.default(obj, create=True)
        meta = obj["metadata"]
        managed = (
            fieldmanager.record_update(
                strategy, None, obj, manager=manager, subresource="", time=timestamp()
            )
            if record
            else meta.get("managedFields")
        )
        namespace = meta.get("namespace", "") if r.namespaced else ""
        attrs = Attributes(
            CREATE,
            r,
            namespace,
            meta.get("name", ""),
            obj,
            None,
            user,
            dry_run=dry_run,
            warnings=warnings if warnings is not None else [],
        )
        check = self.write_checks.get((r.group, r.plural))
        if check is not None:
            await check(attrs)
        started = time.time()
        mutated = await self.admission.admit(attrs)
        admitted = time.time()
        rest.prepare_for_create(obj)
        fieldmanager.set_managed_fields(obj, managed)
        problems = strategy.validate(obj)
        if problems:
            raise errors.invalid_object(r.kind, meta.get("name", ""), problems, r.group)
        await self.admission.validate(attrs)
        validated = time.time()
        rollbacks = await strategy.before_create(obj, dry_run=dry_run)
        try:
            out = await rest.create(obj, dry_run=dry_run)
        except BaseException:
            await _undo(rollbacks)
            raise
        if strategy.traced_create and not dry_run and self.server.spans.enabled:
            times = (started, admitted, validated, time.time())
            self.server.spans.record_create(out, user.name, times, mutated)
        return out

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
            with contextlib.suppress(errors.StatusError):
                await self.update_object(r, new, current, kv, "")

    # ------------------------------------------------------------------ update

    async def update(self, request: web.Request, info: RequestInfo, r: Resource) -> web.Response:
        query = request.query
        dry_run = _dry_run(query)
        obj = self.decode_object(await self.body(request), r, info)
        self.check_name(obj, info)
        warnings = self._field_validation(r, obj, query)
        manager = fieldmanager.manager_of(request)
        fieldmanager.check_field_manager(manager, "UpdateOptions")
        rest = self.rest(r)
        rv = obj["metadata"].get("resourceVersion")

        # without a resourceVersion the update is unconditional: a write that lands in
        # between is retried over the new state, as upstream's GuaranteedUpdate does
        async def attempt(current: JSON, kv: Any, last: bool) -> web.Response:
            if rv and rv != current["metadata"]["resourceVersion"]:
                raise rest.conflict(info.name)
            fresh = not isinstance(kv, CachedValue)
            said = list(warnings)  # admission's warnings are this try's, not a failed one's
            try:
                out = await self.update_object(
                    r,
                    obj if last or (rv and fresh) else copy_json(obj),
                    current,
                    kv,
                    info.subresource,
                    dry_run=dry_run,
                    user=self.user(request),
                    warnings=said,
                    manager=manager,
                )
            except errors.StatusError as err:
                if err.reason == "Conflict" and not rv:
                    raise Retry from err
                raise
            return json_response(out, 200, warnings=said)

        return await rest.guaranteed_update(
            info.namespace, info.name, attempt, tries=PATCH_RETRIES, guess=not dry_run
        )

    async def update_object(
        self,
        r: Resource,
        obj: JSON,
        current: JSON,
        kv: Any,
        subresource: str,
        *,
        dry_run: bool = False,
        user: UserInfo = SYSTEM_USER,
        warnings: list[str] | None = None,
        manager: str = fieldmanager.INTERNAL_MANAGER,
        record: bool = True,
        managed_subresource: str | None = None,
    ) -> JSON:
        """Defaults, managed fields (recorded for ``manager`` under ``managed_subresource``,
        ``subresource`` unless given; kept as they are when not ``record``: an apply made
        them), mutating admission, the update strategy, validation, validating admission,
        allocation, then the compare-and-swap write over ``current``."""
        rest = self.rest(r)
        strategy = rest.strategy
        if subresource != "status":
            obj = strategy.default(obj, create=False)
        meta = obj.setdefault("metadata", {})
        managed = (
            fieldmanager.record_update(
                strategy,
                current,
                obj,
                manager=manager,
                subresource=subresource if managed_subresource is None else managed_subresource,
                time=timestamp(),
            )
            if record
            else meta.get("managedFields")
        )
        attrs = Attributes(
            UPDATE,
            r,
            meta.get("namespace", "") if r.namespaced else "",
            meta.get("name", ""),
            obj,
            current,
            user,
            subresource=subresource,
            dry_run=dry_run,
            warnings=warnings if warnings is not None else [],
        )
        check = self.write_checks.get((r.group, r.plural))
        if check is not None:
            await check(attrs)
        await self.admission.admit(attrs)
        new = rest.prepare_for_update(obj, current, subresource)
        fieldmanager.set_managed_fields(new, managed)
        if subresource == "status":
            problems = strategy.validate_status_update(new, current)
        elif subresource:
            problems = strategy.validate_subresource_update(new, current, subresource)
        else:
            problems = strategy.validate_update(new, current)
        if problems:
            raise errors.invalid_object(r.kind, info_name(new), problems, r.group)
        attrs.obj = new
        await self.admission.validate(attrs)
        rollbacks: list[Rollback] = []
        if subresource == "":
            rollbacks = await strategy.before_update(new, current, dry_run=dry_run)
        try:
            out, deleted = await rest.write_update(
                new, current, kv, dry_run=dry_run, subresource=subresource
            )
        except BaseException:
            await _undo(rollbacks)
            raise
        if not dry_run:
            if deleted:
                # the last finalizer went: release what the stored object held
                await strategy.after_delete(current)
            elif subresource == "":
                await strategy.after_update(out, current)
        return out

    # ------------------------------------------------------------------ patch

    async def patch(self, request: web.Request, info: RequestInfo, r: Resource) -> web.Response:
        query = request.query
        dry_run = _dry_run(query)
        content_type = encoding.media_type(request.headers.get("Content-Type"))
        patch = await self.body(request, patch=True)
        if content_type == encoding.PATCH_APPLY:
            return await self.apply(request, info, r, patch)
        if "force" in query:
            raise errors.invalid_object(
                "PatchOptions",
                "",
                [errors.forbidden("force", "may not be specified for non-apply patch")],
                "meta.k8s.io",
            )
        manager = fieldmanager.manager_of(request)
        fieldmanager.check_field_manager(manager, "PatchOptions")
        rest = self.rest(r)
        strategy = rest.strategy
        if content_type == encoding.PATCH_STRATEGIC and not strategy.strategic_merge_patch:
            raise errors.StatusError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types "
                "include: application/json-patch+json, application/merge-patch+json, "
                "application/apply-patch+yaml",
            )

        async def attempt(current: JSON, kv: Any, last: bool) -> web.Response:
            if content_type == encoding.PATCH_JSON:
                patched = apply_json_patch(current, patch)
            elif content_type == encoding.PATCH_MERGE:
                patched = apply_merge_patch(current, patch)
            else:
                patched = apply_strategic_merge_patch(current, patch, strategy.patch_schema())
            if not isinstance(patched, dict):
                raise errors.bad_request("the patched object is not a JSON object")
            patched = self.decode_object(patched, r, info, patched=True)
            if patched["metadata"].get("name") != info.name:
                raise errors.bad_request("metadata.name may not be changed by a patch")
            rv = patched["metadata"].get("resourceVersion")
            if rv and rv != current["metadata"]["resourceVersion"]:
                raise rest.conflict(info.name)
            warnings = self._field_validation(r, patched, query)
            try:
                out = await self.update_object(
                    r,
                    patched,
                    current,
                    kv,
                    info.subresource,
                    dry_run=dry_run,
                    user=self.user(request),
                    warnings=warnings,
                    manager=manager,
                )
            except errors.StatusError as err:
                if err.reason == "Conflict" and not _has_rv(patch):
                    raise Retry from err  # somebody wrote in between: patch the new state
                raise
            return json_response(out, 200, warnings=warnings)

        return await rest.guaranteed_update(
            info.namespace, info.name, attempt, tries=PATCH_RETRIES, guess=not dry_run
        )

    async def apply(
        self, request: web.Request, info: RequestInfo, r: Resource, config: Any
    ) -> web.Response:
        """Server-side apply: ``config`` merged and owned by its ``fieldManager``; an object
        that does not exist yet is created (201)."""
        query = request.query
        dry_run = _dry_run(query)
        manager, force = fieldmanager.apply_options(request)
        fieldmanager.check_apply_version(config, r.api_version)
        encoding.check_type_meta(config)
        if config.get("kind") != r.kind and not self.strategy(r).accepts_kind(
            str(config.get("kind") or "")
        ):
            raise errors.bad_request(
                f"the kind in the data ({config.get('kind') or ''}) does not match the "
                f"expected kind ({r.kind})"
            )
        rest = self.rest(r)
        strategy = rest.strategy
        user = self.user(request)

        async def create() -> web.Response:
            created = fieldmanager.apply(
                strategy,
                None,
                copy.deepcopy(config),
                manager=manager,
                subresource="",
                force=force,
                time=timestamp(),
            )
            obj = self.decode_object(created, r, info, patched=True)
            self.check_name(obj, info)
            warnings = self._field_validation(r, obj, query)
            out = await self.create_object(
                r, obj, dry_run=dry_run, user=user, warnings=warnings, record=False
            )
            return json_response(out, 201, warnings=warnings)

        async def attempt(current: JSON, kv: Any, last: bool) -> web.Response:
            merged = fieldmanager.apply(
                strategy,
                current,
                config,
                manager=manager,
                subresource=info.subresource,
                force=force,
                time=timestamp(),
            )
            patched = self.decode_object(merged, r, info, patched=True)
            if patched["metadata"].get("name") != info.name:
                raise errors.bad_request("metadata.name may not be changed by a patch")
            if _has_rv(config) and (
                config["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"]
            ):
                raise rest.conflict(info.name)
            warnings = self._field_validation(r, patched, query)
            try:
                out = await self.update_object(
                    r,
                    patched,
                    current,
                    kv,
                    info.subresource,
                    dry_run=dry_run,
                    user=user,
                    warnings=warnings,
                    record=False,
                )
            except errors.StatusError as err:
                if err.reason == "Conflict" and not _has_rv(config):
                    raise Retry from err  # somebody wrote in between: apply to the new state
                raise
            return json_response(out, 200, warnings=warnings)

        return await rest.guaranteed_update(
            info.namespace,
            info.name,
            attempt,
            tries=PATCH_RETRIES,
            guess=not dry_run,
            missing=None if info.subresource else create,
        )

    # ------------------------------------------------------------------ delete

    async def delete(self, request: web.Request, info: RequestInfo, r: Resource) -> web.Response:
        body: JSON | None = None
        if request.can_read_body:
            raw = await encoding.read_body(request)
            if raw.strip():
                data = encoding.decode_body(raw, request.headers.get("Content-Type"))
                body = data if isinstance(data, dict) else None
                if body is not None:
                    encoding.check_type_meta(body)
                    encoding.check_types(body, "", "v1", "DeleteOptions")
        opts = DeleteOptions.parse(body, dict(request.query))
        opts.dry_run = opts.dry_run or _dry_run(request.query)
        warnings: list[str] = []
        obj, deleted_now = await self.delete_object(
            r,
            info.namespace,
            info.name,
            opts,
            user=self.user(request),
            options=body,
            warnings=warnings,
        )
        if deleted_now and not self.strategy(r).returns_deleted_object:
            return json_response(deleted_status(r, obj), warnings=warnings)
        return json_response(obj, warnings=warnings)

    async def delete_object(
        self,
        r: Resource,
        namespace: str,
        name: str,
        opts: DeleteOptions,
        *,
        user: UserInfo = SYSTEM_USER,
        options: JSON | None = None,
        warnings: list[str] | None = None,
    ) -> tuple[JSON, bool]:
        """Admission (DELETE, the stored object as old), then delete or begin deleting.
        Admission's warnings are added to ``warnings``."""
        rest = self.rest(r)
        old = await self.lookup(r.plural, r.group, namespace, name)
        attrs = Attributes(
            DELETE,
            r,
            namespace,
            name,
            None,
            old,
            user,
            dry_run=opts.dry_run,
            options=options,
            warnings=warnings if warnings is not None else [],
        )
        await self.admission.admit(attrs)
        await self.admission.validate(attrs)
        obj, deleted_now = await rest.delete(namespace, name, opts)
        if deleted_now and not opts.dry_run:
            await rest.strategy.after_delete(obj)
        return obj, deleted_now

    async def delete_collection(
        self, request: web.Request, info: RequestInfo, r: Resource
    ) -> web.Response:
        matches = self._matcher(r, request.query)
        await self._fresh()
        prefix = r.key_prefix(info.namespace or None)
        opts = DeleteOptions.parse(None, dict(request.query))
        opts.dry_run = _dry_run(request.query)
        user = self.user(request)
        items = []
        for entry in await self.cache.read(prefix):
            if matches is not None and not matches.entry(entry):
                continue
            meta = entry.obj["metadata"]
            try:
                obj, _deleted = await self.delete_object(
                    r, meta.get("namespace", ""), meta["name"], opts, user=user
                )
            except errors.StatusError as err:
                if err.code == 404:
                    continue
                raise
            items.append(obj)
        return json_response(
            {
                "kind": r.list_kind,
                "apiVersion": r.api_version,
                "metadata": {"resourceVersion": str(self.cache.revision)},
                "items": items,
            }
        )

    # ------------------------------------------------------------------ list

    def _matcher(self, r: Resource, query: Any) -> Matcher | None:
        if not query.get("labelSelector") and not query.get("fieldSelector"):
            return None  # the common case: nothing to parse
        try:
            labels = parse_label_selector(query.get("labelSelector", "") or "")
            fields = parse_field_selector(query.get("fieldSelector", "") or "")
            fields = self.strategy(r).field_selector(fields)
        except SelectorError as err:
            raise errors.bad_request(str(err)) from None
        if not str(labels) and not str(fields):
            return None
        registry = self.registry
        own = self.strategy(r)

        def matches(obj: JSON) -> bool:
            meta = obj.get("metadata") or {}
            if not labels.matches(meta.get("labels") or {}):
                return False
            # a stored object of another version has that version's selectable fields
            # (check_field_selector converted the labels: regarding.name → involvedObject.name)
            strategy = own
            api_version = obj.get("apiVersion")
            if api_version is not None and api_version != r.api_version:
                fr = registry.for_api_version(api_version, obj.get("kind", ""))
                if fr is not None:
                    strategy = self.strategy(fr)
            return fields.matches(strategy.field_values(obj))

        # the built-in selectable fields are in the cached skeletons; a strategy of its own
        # (a custom resource's selectableFields) may read any path: the whole object
        return Selector(matches, whole=type(own).field_values is not Strategy.field_values)

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
        cached = await self._list_page_from_cache(prefix, rv, rv_match, limit, token, matches)
        if cached is None and (token or (limit > 0 and rv != "0") or rv_match == "Exact"):
            # Exact, and the legacy form of it: a limit with a resourceVersion but no match
            exact = rv_match == "Exact" or (limit > 0 and not rv_match)
            try:
                revision = int(rv) if exact and rv and rv != "0" else 0
            except ValueError:
                raise errors.bad_request(f'Invalid value for resourceVersion: "{rv}"') from None
            start = ""
            if token:
                revision, rel = decode_continue(token)
                start = prefix + rel
            objs, list_meta = await self._list_from_store(prefix, revision, start, limit, matches)
            strategy = self.strategy(r)
            await strategy.prepare_conversion(objs, r.api_version, as_list=True)
            objs = [strategy.convert(o, r.api_version) for o in objs]
            raws = [orjson.dumps(o) for o in objs]
        else:
            if cached is not None:
                entries, list_meta = cached
            else:
                await self._fresh(rv)
                revision = self.cache.revision  # what read() reads at (it may wait on the store)
                entries = await self.cache.read(prefix)
                if matches is not None:
                    entries = [e for e in entries if matches.entry(e)]
                list_meta = {"resourceVersion": str(revision)}
            strategy = self.strategy(r)
            accept = request.headers.get("Accept")
            if (
                not strategy.reads_need_view
                and self.cache.single_version(prefix) == r.api_version
                and not encoding.wants_table(accept)
                and encoding.wants_metadata(accept) is None
            ):
                # every object is stored at the version asked for and read as it is: the
                # page is their cached bytes, joined (no object looked at)
                return json_response(list_body(r, list_meta, list(map(RAW, entries))))
            objs = [e.obj for e in entries]
            await strategy.prepare_conversion(objs, r.api_version, as_list=True)
            objs, raws = strategy.views(entries, objs, r.api_version)
        if encoding.wants_table(request.headers.get("Accept")):
            table = self.strategy(r).table(
                objs, now=now(), include_object=q.get("includeObject", ""), list_meta=list_meta
            )
            return json_response(table)
        metadata_only = encoding.wants_metadata(request.headers.get("Accept"))
        if metadata_only is not None:
            kind, api_version = metadata_only
            if kind != encoding.PARTIAL_OBJECT_METADATA_LIST:
                custom = not self.strategy(r).strategic_merge_patch
                raise errors.not_acceptable(
                    "you requested PartialObjectMetadata, but the requested object is a list "
                    f"({encoding.go_type_name(r.group, r.list_kind, custom=custom)})"
                )
            return json_response(
                {
                    "kind": kind,
                    "apiVersion": api_version,
                    "metadata": list_meta,
                    "items": [encoding.partial_metadata(o, api_version) for o in objs],
                }
            )
        return json_response(list_body(r, list_meta, raws))

    async def _list_page_from_cache(
        self,
        prefix: str,
        rv: str,
        rv_match: str,
        limit: int,
        token: str,
        matches: Matcher | None,
    ) -> tuple[list[Entry], JSON] | None:
        """A paginated list the watch cache can answer, as upstream's cacher does: the
        first page of a consistent read (no resourceVersion) or of
        ``resourceVersionMatch=NotOlderThan``, and a continue token whose revision the
        cache still holds (its resource unchanged since, and not compacted: the store
        answers 410 then). None: the store answers (an exact resourceVersion, a continue
        at a revision the cache has moved past, a resource the cache does not keep); a
        list without a limit is not paginated (``resourceVersion=0`` ignores the limit,
        as upstream)."""
        if uncached(prefix) or rv_match == "Exact":
            return None
        if token:
            revision, rel = decode_continue(token)
            if not self.cache.unchanged_since(prefix, revision):
                return None
            if revision < await self.store.compacted_revision():
                return None
            start = prefix + rel
        elif limit > 0 and (rv == "" or (rv != "0" and rv_match == "NotOlderThan")):
            await self._fresh(rv)
            revision, start = self.cache.revision, ""
        else:
            return None
        page = self.cache.page(
            prefix, start, limit if limit > 0 else len(self.cache.objects), matches
        )
        meta: JSON = {"resourceVersion": str(revision)}
        if page.more:
            meta["continue"] = encode_continue(revision, page.last_key[len(prefix) :] + "\x00")
            if page.remaining is not None:
                meta["remainingItemCount"] = page.remaining
        return page.entries, meta

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

            def by_name(obj: JSON) -> bool:
                if obj.get("metadata", {}).get("name") != name_match:
                    return False
                return base is None or base(obj)

            matches = Selector(by_name, whole=base is not None and base.whole)

        prefix = r.key_prefix(info.namespace or None)
        rv = q.get("resourceVersion", "")
        bookmarks = _bool(q.get("allowWatchBookmarks"))
        send_initial = q.get("sendInitialEvents")
        try:
            timeout = int(q.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        except ValueError:
            raise errors.bad_request("timeoutSeconds must be an integer") from None
        table = encoding.wants_table(request.headers.get("Accept"))
        metadata_only = encoding.wants_metadata(request.headers.get("Accept"))
        include = q.get("includeObject", "")
        strategy = self.strategy(r)

        initial: list[Entry] = []
        error_event: JSON | None = None
        if send_initial is not None and _bool(send_initial):
            await self._fresh(rv if rv not in ("",) else "")
            start = self.cache.revision
            initial = await self._current(prefix, matches)
        elif rv in ("", "0"):
            if rv == "":
                await self._fresh("")
            start = self.cache.revision
            initial = await self._current(prefix, matches)
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
                t = strategy.table(
                    [obj], now=now(), include_object=include, no_headers=not first_table[0]
                )
                first_table[0] = False
                return orjson.dumps({"type": etype, "object": t}) + b"\n"
            if metadata_only is not None:
                raw = orjson.dumps(encoding.partial_metadata(obj, metadata_only[1]))
            elif raw is None:
                raw = orjson.dumps(obj)
            return framed(etype, raw)

        def framed(etype: str, raw: bytes) -> bytes:
            return b'{"type":"' + etype.encode() + b'","object":' + raw + b"}\n"

        # an object stored at the version asked for, and read as it is, goes out as its
        # cached bytes, not decoded (DELETED carries the last state)
        as_stored = not table and metadata_only is None and not strategy.reads_need_view

        def entry_frame(etype: str, entry: Entry) -> bytes:
            if as_stored and entry.stored_as(r.api_version):
                return framed(etype, entry.raw)
            return frame(etype, *strategy.view(entry, r.api_version))

        def to_convert(entries: list[Entry]) -> list[JSON]:
            """The objects :meth:`Strategy.prepare_conversion` may convert (a webhook
            converts only objects stored at another version)."""
            return [e.obj for e in entries if not e.stored_as(r.api_version)]

        task = asyncio.current_task()
        assert task is not None
        if watcher is not None:
            watcher.on_terminate = task.cancel  # a write to a client that stopped reading
        self._watch_tasks.add(task)
        self.server.metrics.watchers.labels(r.plural).inc()
        try:
            if error_event is not None:
                await resp.write(orjson.dumps(error_event) + b"\n")
                return resp
            assert watcher is not None
            for i in range(0, len(initial), WATCH_BATCH):
                chunk = initial[i : i + WATCH_BATCH]
                await strategy.prepare_conversion(to_convert(chunk), r.api_version)
                await resp.write(b"".join(entry_frame("ADDED", e) for e in chunk))
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
                    await strategy.prepare_conversion(
                        to_convert([ev.entry for ev in events]), r.api_version
                    )
                    await resp.write(b"".join(entry_frame(ev.type, ev.entry) for ev in events))
                if len(events) < len(batch):
                    break  # the cache restarted: the client must re-watch
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._watch_tasks.discard(task)
            self.server.metrics.watchers.labels(r.plural).dec()
            if watcher is not None:
                watcher.close()
        if watcher is not None and watcher.terminated:
            task.uncancel()
            self.server.metrics.terminated_watchers.labels(r.plural).inc()
            _end_unread_stream(request)
            return resp
        with contextlib.suppress(ConnectionResetError):
            await resp.write_eof()
        return resp

    async def _current(self, prefix: str, matches: Matcher | None) -> list[Entry]:
        entries = await self.cache.read(prefix)
        if matches is not None:
            entries = [e for e in entries if matches.entry(e)]
        return entries

    @staticmethod
    def _bookmark(r: Resource, revision: int, initial_end: bool = False) -> JSON:
        meta: JSON = {"resourceVersion": str(revision)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": r.kind, "apiVersion": r.api_version, "metadata": meta}


def _end_unread_stream(request: web.Request) -> None:
    """End a chunked response whose client stopped reading, without waiting for it: the
    last chunk goes behind what the connection still holds, which closes once the client
    has read it all (or goes away)."""
    transport = request.transport
    if transport is not None and not transport.is_closing():
        transport.write(b"0\r\n\r\n")
        transport.close()


def info_name(obj: JSON) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _has_rv(patch: Any) -> bool:
    return isinstance(patch, dict) and bool((patch.get("metadata") or {}).get("resourceVersion"))


async def _undo(rollbacks: list[Rollback]) -> None:
    for undo in rollbacks:
        await undo()
