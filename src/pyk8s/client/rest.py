"""The async REST client: every pyk8s component's only way to the API server.

One :class:`Client` owns one TLS context and two connection pools: a thin HTTP/1.1 one
(:mod:`pyk8s.client._http`) for every request whose response is read whole (the
request/response verbs: ~a third of aiohttp's client CPU per request), and an aiohttp
session for the streams (watches, ``send``). It speaks the Kubernetes REST API with JSON
bodies (orjson). Objects are plain dicts, as they
are on the wire — components read and build them with the helpers in :mod:`pyk8s.api`,
so there is no generated model layer to keep in step with the server.

A resource is named by a :class:`~pyk8s.api.registry.Resource` from the registry (the
fast path: ``REGISTRY.for_api_version("v1", "Pod")``) or by an ``(apiVersion, kind)``
pair, which is looked up in the registry and, failing that, in the server's discovery
document (so custom resources work too).

What client-go does for a component, this does too:

* **client-side rate limit** — a token bucket (``qps``/``burst``, default 50/100, the
  values components use) in front of every request, so a hot loop slows down instead of
  flooding the server;
* **retries** — a request that never reached the server (connection refused, DNS) is
  retried with exponential backoff; a read (GET) is also retried when the connection
  breaks mid-way; any request is retried when the server answers 429 (or 5xx with
  ``Retry-After``), because then it was not processed. A write whose connection broke
  after sending is *not* retried: it may have happened, and only the caller knows whether
  repeating it is safe. After the last retry: :class:`~pyk8s.client.errors.TransportError`;
* **errors** — every failure ``Status`` becomes :class:`~pyk8s.client.errors.ApiError`;
  a watch's ``ERROR`` event is raised the same way (``is_gone`` → relist).
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import random
import re
import ssl
import time
from collections import deque
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import orjson

from pyk8s import __version__
from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.api.schema import KUBERNETES_VERSION
from pyk8s.api.selectors import FieldSelector, LabelSelector
from pyk8s.client._flowcontrol import TokenBucket
from pyk8s.client._http import ConnectFailed, HttpPool
from pyk8s.client.config import Config, load_config
from pyk8s.client.errors import ApiError, TransportError

__all__ = [
    "PATCH_CONTENT_TYPES",
    "Client",
    "Obj",
    "PatchType",
    "ResourceRef",
    "Selector",
    "WatchEvent",
    "WatchStream",
]

log = logging.getLogger(__name__)

#: how often (at most) a client whose kubeconfig names certificate files looks whether
#: they changed, before a request (client-go's certificate rotation re-reads them too)
CERT_CHECK_INTERVAL = 1.0

Obj = dict[str, Any]
#: a registry :class:`Resource`, or ``(apiVersion, kind)`` such as ``("apps/v1", "Deployment")``
ResourceRef = Resource | tuple[str, str]
#: ``"app=web,tier!=db"``, ``{"app": "web"}`` or a parsed selector
Selector = str | Mapping[str, str] | LabelSelector | FieldSelector | None
#: ``(type, object)``: ``ADDED``, ``MODIFIED``, ``DELETED`` or ``BOOKMARK``
WatchEvent = tuple[str, Obj]
PatchType = Literal["json", "merge", "strategic"]

PATCH_CONTENT_TYPES: dict[str, str] = {
    "json": "application/json-patch+json",
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}
_JSON = "application/json"
_READS = frozenset({"GET", "HEAD"})
#: methods whose request carries a Content-Length even when empty (as aiohttp sends)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: characters a request path / query keeps as they are (everything else %-encoded;
#: an existing %XX escape stays, as yarl keeps it)
_PATH_SAFE = "/%:@!$&'()*+,;=-._~?"
_QUERY_SAFE = "/:@!$'()*,;=-._~"
#: a path with nothing to encode (the usual one: the client built it)
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/%:@!$&'()*+,;=._~?-]*\Z")
_BACKOFF_BASE = 0.1
_BACKOFF_CAP = 5.0
_RETRY_AFTER_CAP = 10.0


def _selector(value: Selector) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, LabelSelector | FieldSelector):
        return str(value)
    return ",".join(f"{k}={v}" for k, v in value.items())


def _params(**kw: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in kw.items():
        if value is None or value == "":
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


def _backoff(attempt: int) -> float:
    """Exponential with full jitter: 0.1 s, 0.2 s, 0.4 s … capped at 5 s."""
    return float(random.uniform(0.5, 1.0) * min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt))


def _retry_after(status: int, after: str | None) -> float | None:
    """Seconds to wait when the server said the request was not processed (429, or a
    5xx with a ``Retry-After`` header: ``after``), else None."""
    if status != 429 and not (status >= 500 and after is not None):
        return None
    try:
        seconds = float(after if after is not None else "1")
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.0), _RETRY_AFTER_CAP)


def _decode(data: bytes) -> Any:
    if not data:
        return {}
    return orjson.loads(data)


def _answer(method: str, path: str, data: bytes, raw: bool) -> Any:
    """A successful response's body: the bytes (``raw``) or their JSON decoded."""
    if raw:
        return data
    try:
        return _decode(data)
    except orjson.JSONDecodeError as err:
        raise TransportError(f"{method} {path}: the server sent invalid JSON") from err


async def _failure(resp: aiohttp.ClientResponse) -> ApiError:
    return _api_error(resp.status, await resp.read())


def _api_error(status: int, data: bytes) -> ApiError:
    try:
        body = orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        body = None
    return ApiError.from_response(status, body, data.decode("utf-8", "replace"))


def component_user_agent(component: str) -> str:
    """``kube-scheduler/v1.32.0 (linux/amd64) pyk8s/0.1.0``: upstream's shape, so audit
    logs show the component and server-side apply names it as the field manager
    (``kube-scheduler``, ``kubelet``), as on a kubeadm cluster."""
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    return f"{component}/{KUBERNETES_VERSION} (linux/{arch}) pyk8s/{__version__}"


class Client:
    """An async client for one API server. Use as ``async with Client(config) as c:``.

    ``namespace`` arguments: required for one object of a namespaced resource (``get``,
    ``delete``, ``patch``; ``create``/``update`` also take it from the body); omitted on a
    ``list``/``watch``/``delete_collection`` it means all namespaces.
    """

    def __init__(
        self,
        config: Config,
        *,
        qps: float = 50.0,
        burst: int = 100,
        timeout: float = 60.0,
        max_retries: int = 5,
        user_agent: str | None = None,
        connection_limit: int = 100,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.max_retries = max_retries
        self.user_agent = user_agent or f"pyk8s/{__version__}"
        self._limiter = TokenBucket(qps, burst)
        self._connection_limit = connection_limit
        self._ssl: ssl.SSLContext | None = config.ssl_context()
        self._session: aiohttp.ClientSession | None = None
        self._pool: HttpPool | None = None
        url = urlsplit(config.server)
        #: where the thin transport connects: (host, port, path prefix); None when the
        #: server URL is not plain http(s) (then aiohttp serves every request)
        self._origin: tuple[str, int, str] | None = None
        if url.scheme in ("http", "https") and url.hostname:
            port = url.port or (443 if url.scheme == "https" else 80)
            self._origin = (url.hostname, port, url.path.rstrip("/"))
        self._discovered: dict[tuple[str, str], Resource] = {}
        self._closed = False
        #: sessions being closed after a certificate rotation
        self._closing: set[asyncio.Future[None]] = set()
        #: the client certificate file's (size, mtime) when loaded, for rotation
        self._cert_seen = _signature(config.cert_file) if config.key_file else None
        self._cert_checked = time.monotonic()

    @classmethod
    def from_kubeconfig(
        cls, path: str | None = None, context: str | None = None, **kw: Any
    ) -> Client:
        """A client from a kubeconfig (or, with no path, the usual search incl. in-cluster)."""
        return cls(load_config(path, context), **kw)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Client:
        self._ensure_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def reload_client_certificate(self, cert_file: str, key_file: str, grace: float = 30.0) -> None:
        """Present a renewed client certificate from now on (certificate rotation): new
        connections use it; the old connections' session is closed after ``grace``
        seconds, so requests and watches on them end and come back with the new one
        (upstream closes its transport's connections on rotation too)."""
        if self._ssl is None:
            return
        self._ssl.load_cert_chain(cert_file, key_file)
        if cert_file == self.config.cert_file:
            self._cert_seen = _signature(cert_file)
        old, self._session = self._session, None
        old_pool, self._pool = self._pool, None
        if old is not None or old_pool is not None:

            def close() -> None:
                if old_pool is not None:
                    old_pool.close()
                if old is None:
                    return
                task = asyncio.ensure_future(old.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

            asyncio.get_running_loop().call_later(grace, close)

    def _reload_rotated_certificate(self) -> None:
        """Load the kubeconfig's certificate files again when they changed on disk (a
        renewal by whoever wrote them, e.g. ``pyk8s server``'s for its components)."""
        if self._cert_seen is None or not self.config.cert_file or not self.config.key_file:
            return
        now = time.monotonic()
        if now - self._cert_checked < CERT_CHECK_INTERVAL:
            return
        self._cert_checked = now
        if _signature(self.config.cert_file) == self._cert_seen:
            return
        try:
            self.reload_client_certificate(self.config.cert_file, self.config.key_file)
        except (OSError, ssl.SSLError) as err:  # caught mid-write: the next check retries
            log.warning("cannot load the renewed client certificate: %s", err)
            return
        log.info("client certificate reloaded", extra={"file": self.config.cert_file})

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the client is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._connection_limit, ssl=self._ssl if self._ssl is not None else True
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
        return self._session

    def _ensure_pool(self) -> HttpPool | None:
        if self._closed:
            raise RuntimeError("the client is closed")
        if self._pool is None and self._origin is not None:
            host, port, _ = self._origin
            self._pool = HttpPool(
                host,
                port,
                ssl_context=self._ssl,
                server_hostname=self.config.tls_server_name,
                limit=self._connection_limit,
            )
        return self._pool

    # ------------------------------------------------------------------ resources

    async def resource(self, api_version: str, kind: str) -> Resource:
        """The resource serving ``kind`` in ``api_version``: registry, else discovery."""
        found = REGISTRY.for_api_version(api_version, kind) or self._discovered.get(
            (api_version, kind)
        )
        if found is not None:
            return found
        group, _, version = api_version.rpartition("/")
        path = f"/apis/{api_version}" if group else f"/api/{version}"
        doc = await self.request("GET", path)
        for entry in doc.get("resources") or []:
            name = str(entry.get("name", ""))
            if "/" in name or entry.get("kind") != kind:
                continue
            subs = tuple(
                str(e["name"]).split("/", 1)[1]
                for e in doc.get("resources") or []
                if str(e.get("name", "")).startswith(name + "/")
            )
            res = Resource(
                group,
                version,
                kind,
                name,
                bool(entry.get("namespaced")),
                tuple(entry.get("shortNames") or ()),
                tuple(entry.get("categories") or ()),
                subs,
                tuple(entry.get("verbs") or ()),
            )
            self._discovered[(api_version, kind)] = res
            return res
        raise ApiError(
            404,
            "NotFound",
            f'the server does not serve kind "{kind}" in "{api_version}"',
            {},
        )

    async def _res(self, ref: ResourceRef) -> Resource:
        if isinstance(ref, Resource):
            return ref
        return await self.resource(*ref)

    @staticmethod
    def path(
        res: Resource,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
    ) -> str:
        """The URL path of a collection, an object or one of its subresources."""
        base = f"/apis/{res.group}/{res.version}" if res.group else f"/api/{res.version}"
        parts = [base]
        if res.namespaced and namespace:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(res.plural)
        if name is not None:
            if not name:
                raise ValueError(f"{res.kind}: an empty name")
            parts.append(quote(name, safe=""))
            if subresource:
                parts.append(subresource)
        elif subresource:
            raise ValueError("a subresource needs an object name")
        return "/".join(parts)

    @staticmethod
    def _object_namespace(res: Resource, namespace: str | None, body: Obj | None = None) -> str:
        if not res.namespaced:
            return ""
        ns = namespace or ((body or {}).get("metadata") or {}).get("namespace") or ""
        if not ns:
            raise ValueError(f"{res.kind} is namespaced: a namespace is required")
        return str(ns)

    @staticmethod
    def _name(body: Obj) -> str:
        name = (body.get("metadata") or {}).get("name")
        if not name:
            raise ValueError("the object has no metadata.name")
        return str(name)

    # ------------------------------------------------------------------ verbs

    async def get(
        self,
        resource: ResourceRef,
        name: str,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
    ) -> Obj:
        res = await self._res(resource)
        path = self.path(res, self._object_namespace(res, namespace), name)
        result: Obj = await self.request(
            "GET", path, params=_params(resourceVersion=resource_version)
        )
        return result

    async def list(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        *,
        label_selector: Selector = None,
        field_selector: Selector = None,
        limit: int | None = None,
        continue_: str | None = None,
        resource_version: str | None = None,
        resource_version_match: str | None = None,
        timeout_seconds: int | None = None,
    ) -> Obj:
        """One page of a list (``metadata.continue`` names the next when ``limit`` is set)."""
        res = await self._res(resource)
        params = _params(
            labelSelector=_selector(label_selector),
            fieldSelector=_selector(field_selector),
            limit=limit,
            resourceVersion=resource_version,
            resourceVersionMatch=resource_version_match,
            timeoutSeconds=timeout_seconds,
        )
        if continue_:
            params["continue"] = continue_
        result: Obj = await self.request("GET", self.path(res, namespace), params=params)
        return result

    async def list_all(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        *,
        label_selector: Selector = None,
        field_selector: Selector = None,
        page_size: int = 500,
        resource_version: str | None = None,
    ) -> Obj:
        """Every page of a list, as one list object (one consistent snapshot).

        If the continue token expires between pages (410), the list restarts unpaginated,
        as client-go's pager does.
        """
        res = await self._res(resource)
        first = await self.list(
            res,
            namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            limit=page_size,
            resource_version=resource_version,
        )
        items: list[Obj] = list(first.get("items") or [])
        meta = first.setdefault("metadata", {})
        token = meta.get("continue")
        while token:
            try:
                page = await self.list(
                    res,
                    namespace,
                    label_selector=label_selector,
                    field_selector=field_selector,
                    limit=page_size,
                    continue_=token,
                )
            except ApiError as err:
                if err.status != 410:
                    raise
                return await self.list(
                    res,
                    namespace,
                    label_selector=label_selector,
                    field_selector=field_selector,
                    resource_version=resource_version,
                )
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
        meta.pop("continue", None)
        meta.pop("remainingItemCount", None)
        first["items"] = items
        return first

    async def create(
        self,
        resource: ResourceRef,
        body: Obj,
        namespace: str | None = None,
        *,
        dry_run: bool = False,
        field_manager: str | None = None,
    ) -> Obj:
        res = await self._res(resource)
        ns = self._object_namespace(res, namespace, body)
        params = _params(dryRun="All" if dry_run else None, fieldManager=field_manager)
        result: Obj = await self.request("POST", self.path(res, ns), params=params, body=body)
        return result

    async def update(
        self,
        resource: ResourceRef,
        body: Obj,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
    ) -> Obj:
        """PUT the whole object (``metadata.resourceVersion`` makes it compare-and-swap)."""
        res = await self._res(resource)
        ns = self._object_namespace(res, namespace, body)
        path = self.path(res, ns, self._name(body), subresource)
        params = _params(dryRun="All" if dry_run else None, fieldManager=field_manager)
        result: Obj = await self.request("PUT", path, params=params, body=body)
        return result

    async def update_status(
        self,
        resource: ResourceRef,
        body: Obj,
        namespace: str | None = None,
        *,
        dry_run: bool = False,
        field_manager: str | None = None,
    ) -> Obj:
        """PUT to the ``status`` subresource: only ``.status`` changes."""
        return await self.update(
            resource,
            body,
            namespace,
            subresource="status",
            dry_run=dry_run,
            field_manager=field_manager,
        )

    async def patch(
        self,
        resource: ResourceRef,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: PatchType = "strategic",
        subresource: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
    ) -> Obj:
        """A JSON (RFC 6902 list), merge (RFC 7386) or strategic merge patch."""
        try:
            content_type = PATCH_CONTENT_TYPES[patch_type]
        except KeyError:
            raise ValueError(f"unknown patch type {patch_type!r}") from None
        res = await self._res(resource)
        path = self.path(res, self._object_namespace(res, namespace), name, subresource)
        params = _params(dryRun="All" if dry_run else None, fieldManager=field_manager)
        result: Obj = await self.request(
            "PATCH", path, params=params, body=patch, content_type=content_type
        )
        return result

    @staticmethod
    def _delete_options(
        grace_period_seconds: int | None,
        propagation_policy: str | None,
        preconditions: Mapping[str, str] | None,
        dry_run: bool,
    ) -> Obj:
        opts: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            opts["gracePeriodSeconds"] = grace_period_seconds
        if propagation_policy is not None:
            opts["propagationPolicy"] = propagation_policy
        if preconditions:
            opts["preconditions"] = dict(preconditions)
        if dry_run:
            opts["dryRun"] = ["All"]
        return opts

    async def delete(
        self,
        resource: ResourceRef,
        name: str,
        namespace: str | None = None,
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: Literal["Orphan", "Background", "Foreground"] | None = None,
        preconditions: Mapping[str, str] | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """Delete one object; the answer is the object (graceful/finalizers) or a Status.

        ``preconditions``: ``{"uid": …}`` and/or ``{"resourceVersion": …}``.
        """
        res = await self._res(resource)
        path = self.path(res, self._object_namespace(res, namespace), name)
        body = self._delete_options(
            grace_period_seconds, propagation_policy, preconditions, dry_run
        )
        result: Obj = await self.request("DELETE", path, body=body)
        return result

    async def delete_collection(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        *,
        label_selector: Selector = None,
        field_selector: Selector = None,
        grace_period_seconds: int | None = None,
        propagation_policy: Literal["Orphan", "Background", "Foreground"] | None = None,
        dry_run: bool = False,
    ) -> Obj:
        res = await self._res(resource)
        params = _params(
            labelSelector=_selector(label_selector), fieldSelector=_selector(field_selector)
        )
        body = self._delete_options(grace_period_seconds, propagation_policy, None, dry_run)
        result: Obj = await self.request(
            "DELETE", self.path(res, namespace), params=params, body=body
        )
        return result

    def watch(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        *,
        name: str | None = None,
        label_selector: Selector = None,
        field_selector: Selector = None,
        resource_version: str | None = None,
        allow_watch_bookmarks: bool = False,
        timeout_seconds: int | None = None,
        send_initial_events: bool | None = None,
    ) -> WatchStream:
        """A watch, as an async iterator of ``(type, object)``.

        Use ``async with client.watch(...) as events: async for etype, obj in events:``
        (or just ``async for``: the stream closes itself when it ends or fails). An
        ``ERROR`` event raises :class:`ApiError` (410 → ``is_gone``: relist); a broken
        connection raises :class:`TransportError`; the server ending the watch
        (``timeoutSeconds``) ends the iteration.
        """
        params = _params(
            watch=True,
            labelSelector=_selector(label_selector),
            fieldSelector=_selector(field_selector),
            resourceVersion=resource_version,
            allowWatchBookmarks=True if allow_watch_bookmarks else None,
            timeoutSeconds=timeout_seconds,
            sendInitialEvents=send_initial_events,
        )
        if name is not None:
            params["fieldSelector"] = ",".join(
                s for s in (f"metadata.name={name}", params.get("fieldSelector")) if s
            )
        return WatchStream(self, resource, namespace, params, timeout_seconds)

    # ------------------------------------------------------------------ subresources

    async def get_subresource(
        self,
        resource: ResourceRef,
        name: str,
        subresource: str,
        namespace: str | None = None,
        *,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        res = await self._res(resource)
        path = self.path(res, self._object_namespace(res, namespace), name, subresource)
        return await self.request("GET", path, params=params)

    async def create_subresource(
        self,
        resource: ResourceRef,
        name: str,
        subresource: str,
        body: Obj,
        namespace: str | None = None,
    ) -> Any:
        """POST to a subresource (``pods/binding``, ``pods/eviction``, ``.../token``)."""
        res = await self._res(resource)
        path = self.path(res, self._object_namespace(res, namespace), name, subresource)
        return await self.request("POST", path, body=body)

    async def bind(
        self, namespace: str, name: str, node_name: str, *, uid: str | None = None
    ) -> Any:
        """Assign a pod to a node through ``pods/binding`` (what the scheduler does)."""
        meta: Obj = {"name": name, "namespace": namespace}
        if uid:
            meta["uid"] = uid
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": meta,
            "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
        }
        pods = REGISTRY.for_kind("", "v1", "Pod")
        assert pods is not None
        return await self.create_subresource(pods, name, "binding", binding, namespace)

    async def get_scale(
        self, resource: ResourceRef, name: str, namespace: str | None = None
    ) -> Obj:
        result: Obj = await self.get_subresource(resource, name, "scale", namespace)
        return result

    async def update_scale(
        self,
        resource: ResourceRef,
        name: str,
        replicas: int,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
    ) -> Obj:
        """Set ``spec.replicas`` through the ``scale`` subresource."""
        res = await self._res(resource)
        ns = self._object_namespace(res, namespace)
        meta: Obj = {"name": name}
        if ns:
            meta["namespace"] = ns
        if resource_version:
            meta["resourceVersion"] = resource_version
        scale = {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": meta,
            "spec": {"replicas": replicas},
        }
        result: Obj = await self.request("PUT", self.path(res, ns, name, "scale"), body=scale)
        return result

    # ------------------------------------------------------------------ transport

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        raw: bool = False,
        request_timeout: float | None = None,
    ) -> Any:
        """Any request: decoded JSON back (bytes with ``raw=True``); ApiError on failure.

        ``body``: bytes are sent as they are, anything else as JSON.
        """
        self._reload_rotated_certificate()
        pool = self._ensure_pool()
        if pool is None:
            return await self._request_aiohttp(
                method,
                path,
                params=params,
                body=body,
                content_type=content_type,
                headers=headers,
                raw=raw,
                request_timeout=request_timeout,
            )
        method = method.upper()
        data = b""
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
        message = self._message(method, path, params, data, body is not None, content_type, headers)
        timeout = request_timeout or self.timeout
        attempt = 0
        while True:
            await self._limiter.acquire()
            try:
                async with asyncio.timeout(timeout):
                    resp = await pool.request(message, head=method == "HEAD")
            except (OSError, TimeoutError) as err:
                never_sent = isinstance(err, ConnectFailed)
                if not (never_sent or method in _READS) or attempt >= self.max_retries:
                    raise TransportError(f"{method} {path}: {err!r}") from err
                delay = _backoff(attempt)
                log.debug("%s %s failed (%r); retrying in %.2fs", method, path, err, delay)
            else:
                wait = _retry_after(resp.status, resp.headers.get("retry-after"))
                if wait is None or attempt >= self.max_retries:
                    break
                delay = wait
                log.debug("%s %s: HTTP %d, retrying in %.2fs", method, path, resp.status, delay)
            attempt += 1
            await asyncio.sleep(delay)
        if resp.status >= 400:
            raise _api_error(resp.status, resp.body)
        return _answer(method, path, resp.body, raw)

    def _message(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        data: bytes,
        has_body: bool,
        content_type: str | None,
        headers: Mapping[str, str] | None,
    ) -> bytes:
        """The whole HTTP/1.1 request: the headers aiohttp sent (Host, Accept,
        User-Agent, Accept-Encoding, Authorization, Content-Type, Content-Length)."""
        assert self._pool is not None and self._origin is not None
        target = self._origin[2] + (
            path if _PLAIN_PATH.match(path) else quote(path, safe=_PATH_SAFE)
        )
        if params:
            query = urlencode(params, quote_via=quote, safe=_QUERY_SAFE)
            target += ("&" if "?" in target else "?") + query
        hdrs = {
            "Host": self._pool.host_header,
            "Accept": _JSON,
            "User-Agent": self.user_agent,
            "Accept-Encoding": "gzip",
        }
        auth = self.config.authorization()
        if auth:
            hdrs["Authorization"] = auth
        if has_body:
            hdrs["Content-Type"] = content_type or _JSON
        if headers:
            hdrs.update(headers)
        if has_body or method in _BODY_METHODS:
            hdrs["Content-Length"] = str(len(data))
        lines = [f"{method} {target} HTTP/1.1"]
        for name, value in hdrs.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"header {name!r}: a line break in a header")
            lines.append(f"{name}: {value}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head + data if data else head

    async def _request_aiohttp(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        raw: bool = False,
        request_timeout: float | None = None,
    ) -> Any:
        """:meth:`request` through aiohttp (a server URL the thin transport cannot reach)."""
        resp = await self.send(
            method,
            path,
            params=params,
            body=body,
            content_type=content_type,
            headers=headers,
            client_timeout=aiohttp.ClientTimeout(total=request_timeout or self.timeout),
        )
        try:
            if resp.status >= 400:
                raise await _failure(resp)
            try:
                data = await resp.read()
            except (aiohttp.ClientError, TimeoutError) as err:
                raise TransportError(f"{method} {path}: {err!r}") from err
        finally:
            resp.release()
        return _answer(method, path, data, raw)

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        client_timeout: aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        """Rate-limit, send and retry; the open response (the caller releases it)."""
        self._reload_rotated_certificate()
        session = self._ensure_session()
        method = method.upper()
        hdrs = {"Accept": _JSON, "User-Agent": self.user_agent}
        auth = self.config.authorization()
        if auth:
            hdrs["Authorization"] = auth
        data: bytes | None = None
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            hdrs["Content-Type"] = content_type or _JSON
        if headers:
            hdrs.update(headers)
        url = self.config.server + path
        attempt = 0
        while True:
            await self._limiter.acquire()
            try:
                resp = await session.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=hdrs,
                    timeout=client_timeout or aiohttp.ClientTimeout(total=self.timeout),
                    server_hostname=self.config.tls_server_name,
                )
            except (aiohttp.ClientError, TimeoutError) as err:
                never_sent = isinstance(err, aiohttp.ClientConnectorError) and not isinstance(
                    err, aiohttp.ClientSSLError
                )
                if not (never_sent or method in _READS) or attempt >= self.max_retries:
                    raise TransportError(f"{method} {path}: {err!r}") from err
                delay = _backoff(attempt)
                log.debug("%s %s failed (%r); retrying in %.2fs", method, path, err, delay)
            else:
                wait = _retry_after(resp.status, resp.headers.get("Retry-After"))
                if wait is None or attempt >= self.max_retries:
                    return resp
                resp.release()
                delay = wait
                log.debug("%s %s: HTTP %d, retrying in %.2fs", method, path, resp.status, delay)
            attempt += 1
            await asyncio.sleep(delay)


class WatchStream:
    """One watch request's events; an async iterator and an async context manager."""

    def __init__(
        self,
        client: Client,
        resource: ResourceRef,
        namespace: str | None,
        params: dict[str, str],
        timeout_seconds: int | None,
    ) -> None:
        self._client = client
        self._resource = resource
        self._namespace = namespace
        self._params = params
        self._timeout_seconds = timeout_seconds
        self._resp: aiohttp.ClientResponse | None = None
        self._buffer = b""
        self._lines: deque[bytes] = deque()
        self._done = False

    async def __aenter__(self) -> WatchStream:
        await self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __aiter__(self) -> WatchStream:
        return self

    async def _open(self) -> None:
        if self._resp is not None or self._done:
            return
        res = await self._client._res(self._resource)
        path = self._client.path(res, self._namespace)
        # no overall deadline: a watch lasts as long as the server keeps it open; a
        # read deadline only when the server promised to end it by then
        sock_read = self._timeout_seconds + 60 if self._timeout_seconds else None
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._client.timeout, sock_read=sock_read
        )
        resp = await self._client.send("GET", path, params=self._params, client_timeout=timeout)
        if resp.status >= 400:
            try:
                raise await _failure(resp)
            finally:
                resp.release()
                self._done = True
        self._resp = resp

    async def close(self) -> None:
        self._done = True
        if self._resp is not None:
            self._resp.close()  # not release(): an unfinished stream cannot be reused
            self._resp = None

    async def __anext__(self) -> WatchEvent:
        if self._resp is None:
            if self._done:
                raise StopAsyncIteration
            await self._open()
        while True:
            if self._lines:
                line = self._lines.popleft()
                if not line.strip():
                    continue
                return await self._event(line)
            assert self._resp is not None
            try:
                chunk = await self._resp.content.readany()
            except (aiohttp.ClientError, TimeoutError) as err:
                await self.close()
                raise TransportError(f"watch broken: {err!r}") from err
            except BaseException:
                await self.close()
                raise
            if not chunk:
                rest, self._buffer = self._buffer, b""
                await self.close()
                if rest.strip():
                    return await self._event(rest)
                raise StopAsyncIteration
            self._buffer += chunk
            if b"\n" in chunk:
                *lines, self._buffer = self._buffer.split(b"\n")
                self._lines.extend(lines)

    async def _event(self, line: bytes) -> WatchEvent:
        try:
            ev = orjson.loads(line)
            etype = str(ev["type"])
            obj = ev["object"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as err:
            await self.close()
            raise TransportError(f"watch: undecodable event {line[:200]!r}") from err
        if etype == "ERROR":
            await self.close()
            raise ApiError.from_status(obj if isinstance(obj, dict) else {})
        return etype, obj


def _signature(path: str | None) -> tuple[int, int] | None:
    """A file's (size, mtime) to notice it was replaced; None when missing."""
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)
