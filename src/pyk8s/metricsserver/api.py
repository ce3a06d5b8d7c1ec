"""The ``metrics.k8s.io/v1beta1`` API as metrics-server serves it to the aggregator.

Paths, objects and errors are upstream's: ``/apis/metrics.k8s.io/v1beta1/nodes[/{name}]``,
``/pods`` and ``/namespaces/{ns}/pods[/{name}]`` with ``labelSelector``; a node or pod
without metrics (yet) is ``404 NotFound`` (``podmetrics.metrics.k8s.io "ns/name" not
found``), a list leaves it out. Objects carry the node's or pod's labels, as upstream.

Who may ask: the caller must present a client certificate signed by the front proxy's
CA with a common name the ``extension-apiserver-authentication`` ConfigMap allows (the API
server's aggregator does); the user is then what its ``X-Remote-User``/``-Group``/
``-Extra-*`` headers say, and the API server decides whether that user may ``get`` or
``list`` the resource (a SubjectAccessReview, as upstream's delegated authorization; the
answer is remembered for ten seconds). Anything else is ``401``/``403`` with upstream's
Status.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from pyk8s.api.selectors import LabelSelector, SelectorError, parse_label_selector
from pyk8s.client import Client
from pyk8s.client.errors import ClientError
from pyk8s.metricsserver.storage import Storage, Usage, go_duration, rfc3339

__all__ = ["GROUP", "VERSION", "DelegatedAuth", "MetricsAPI", "RequestHeader", "ok", "status"]

log = logging.getLogger(__name__)

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
_AUTHZ_TTL = 10.0

Obj = dict[str, Any]
Lister = Callable[[], list[Obj]]
Getter = Callable[[str], Obj | None]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class RequestHeader:
    """What the ``extension-apiserver-authentication`` ConfigMap says about the front proxy."""

    client_ca: str
    allowed_names: tuple[str, ...] = ()
    username_headers: tuple[str, ...] = ("X-Remote-User",)
    group_headers: tuple[str, ...] = ("X-Remote-Group",)
    extra_prefixes: tuple[str, ...] = ("X-Remote-Extra-",)

    @classmethod
    def from_configmap(cls, cm: Obj) -> RequestHeader:
        data = cm.get("data") or {}

        def names(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
            raw = data.get(key)
            return tuple(orjson.loads(raw) or ()) if raw else default

        ca = data.get("requestheader-client-ca-file")
        if not ca:
            raise ValueError("the ConfigMap has no requestheader-client-ca-file")
        return cls(
            client_ca=str(ca),
            allowed_names=names("requestheader-allowed-names", ()),
            username_headers=names("requestheader-username-headers", ("X-Remote-User",)),
            group_headers=names("requestheader-group-headers", ("X-Remote-Group",)),
            extra_prefixes=names("requestheader-extra-headers-prefix", ("X-Remote-Extra-",)),
        )


@dataclass(frozen=True)
class _User:
    name: str
    groups: tuple[str, ...]
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def status(code: int, reason: str, message: str, details: Obj | None = None) -> web.Response:
    body: Obj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return web.Response(status=code, body=orjson.dumps(body), content_type="application/json")


def _json(obj: Obj) -> web.Response:
    return web.Response(body=orjson.dumps(obj), content_type="application/json")


async def ok(_: web.Request) -> web.Response:
    """The health endpoints' answer."""
    return web.Response(text="ok")


class DelegatedAuth:
    """Who may ask an aggregated API server, as upstream's delegated authentication and
    authorization: the front proxy's client certificate and ``X-Remote-*`` headers name
    the user, a SubjectAccessReview (remembered for ten seconds) says what they may do.
    Shared by metrics-server and the custom metrics adapter."""

    def __init__(
        self,
        client: Client,
        requestheader: Callable[[], RequestHeader | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self._requestheader = requestheader
        self._clock = clock
        self._decisions: dict[tuple[Any, ...], tuple[bool, str, float]] = {}

    def _user(self, request: web.Request) -> _User | None:
        config = self._requestheader()
        transport = request.transport
        peer = transport.get_extra_info("peercert") if transport is not None else None
        if config is None or not peer:
            return None
        cn = next((v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"), "")
        if config.allowed_names and cn not in config.allowed_names:
            return None
        name = next(
            (request.headers[h] for h in config.username_headers if h in request.headers), ""
        )
        if not name:
            return None
        groups = tuple(v for h in config.group_headers for v in request.headers.getall(h, ()))
        extra: dict[str, tuple[str, ...]] = {}
        for key in request.headers:
            for prefix in config.extra_prefixes:
                if key.lower().startswith(prefix.lower()):
                    extra_key = unquote(key[len(prefix) :]).lower()
                    extra[extra_key] = tuple(request.headers.getall(key))
        return _User(name, groups, extra)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """401 unless the front proxy vouches for the caller (health paths are open)."""
        if request.path not in ("/healthz", "/livez", "/readyz"):
            user = self._user(request)
            if user is None:
                return status(401, "Unauthorized", "Unauthorized")
            request["user"] = user
        return await handler(request)

    async def authorize(
        self,
        request: web.Request,
        group_version: tuple[str, str],
        verb: str,
        resource: str,
        namespace: str,
        name: str = "",
        *,
        subresource: str = "",
    ) -> web.Response | None:
        """None when the caller may ``verb`` the resource, else upstream's 403 (or 500
        when the API server cannot be asked)."""
        user: _User = request["user"]
        if resource == "":  # discovery: every authenticated user, as upstream's policy
            return None
        group, version = group_version
        key = (user.name, user.groups, tuple(sorted(user.extra.items())), group, verb,
               resource, subresource, namespace, name)  # fmt: skip
        now = self._clock()
        cached = self._decisions.get(key)
        if cached is None or now - cached[2] > _AUTHZ_TTL:
            attrs: Obj = {"verb": verb, "group": group, "version": version, "resource": resource}
            if namespace:
                attrs["namespace"] = namespace
            if name:
                attrs["name"] = name
            if subresource:
                attrs["subresource"] = subresource
            review = {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": user.name,
                    "groups": list(user.groups),
                    "extra": {k: list(v) for k, v in user.extra.items()},
                    "resourceAttributes": attrs,
                },
            }
            try:
                got = await self.client.request(
                    "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body=review
                )
            except ClientError as err:
                log.warning("authorization check failed: %s", err)
                return status(500, "InternalError", f"Internal error occurred: {err}")
            answer = got.get("status") or {}
            cached = (bool(answer.get("allowed")), str(answer.get("reason") or ""), now)
            if len(self._decisions) > 10_000:
                self._decisions.clear()
            self._decisions[key] = cached
        if cached[0]:
            return None
        shown = f"{resource}/{subresource}" if subresource else resource
        what = f'{resource}.{group} "{name}"' if name else f"{resource}.{group}"
        scope = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
        message = (
            f'{what} is forbidden: User "{user.name}" cannot {verb} resource "{shown}" '
            f'in API group "{group}"{scope}'
        )
        if cached[1]:
            message += f": {cached[1]}"
        details: Obj = {"group": group, "kind": resource}
        if name:
            details["name"] = name
        return status(403, "Forbidden", message, details)


class MetricsAPI:
    """The aiohttp application; ``storage`` is read at each request."""

    def __init__(
        self,
        storage: Storage,
        *,
        client: Client,
        nodes: Lister,
        node: Getter,
        pods: Lister,
        pod: Callable[[str, str], Obj | None],
        requestheader: Callable[[], RequestHeader | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.client = client
        self._nodes, self._node, self._pods, self._pod = nodes, node, pods, pod
        self._clock = clock
        self.auth = DelegatedAuth(client, requestheader, clock)
        self.app = web.Application(middlewares=[self.auth.middleware])
        base = f"/apis/{GROUP}/{VERSION}"
        r = self.app.router
        r.add_get("/apis", self._group_list)
        r.add_get(f"/apis/{GROUP}", self._group)
        r.add_get(base, self._resources)
        r.add_get(f"{base}/nodes", self._list_nodes)
        r.add_get(f"{base}/nodes/{{name}}", self._get_node)
        r.add_get(f"{base}/pods", self._list_pods)
        r.add_get(f"{base}/namespaces/{{namespace}}/pods", self._list_pods)
        r.add_get(f"{base}/namespaces/{{namespace}}/pods/{{name}}", self._get_pod)
        for path in ("/healthz", "/livez", "/readyz"):
            r.add_get(path, ok)

    async def _authorize(
        self, request: web.Request, verb: str, resource: str, namespace: str, name: str = ""
    ) -> web.Response | None:
        return await self.auth.authorize(request, (GROUP, VERSION), verb, resource, namespace, name)

    # ------------------------------------------------------------------ discovery

    def _group_doc(self) -> Obj:
        gv = {"groupVersion": GROUP_VERSION, "version": VERSION}
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": GROUP,
            "versions": [gv],
            "preferredVersion": gv,
        }

    async def _group_list(self, _: web.Request) -> web.Response:
        group = self._group_doc()
        del group["kind"], group["apiVersion"]
        return _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]})

    async def _group(self, _: web.Request) -> web.Response:
        return _json(self._group_doc())

    async def _resources(self, _: web.Request) -> web.Response:
        def res(name: str, kind: str, namespaced: bool) -> Obj:
            return {"name": name, "singularName": "", "namespaced": namespaced, "kind": kind,
                    "verbs": ["get", "list"]}  # fmt: skip

        return _json(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": GROUP_VERSION,
                "resources": [res("nodes", "NodeMetrics", False), res("pods", "PodMetrics", True)],
            }
        )

    # ------------------------------------------------------------------ objects

    @staticmethod
    def _selector(request: web.Request) -> LabelSelector | web.Response:
        text = request.query.get("labelSelector", "")
        try:
            return parse_label_selector(text)
        except SelectorError as err:
            return status(400, "BadRequest", str(err))

    def _metadata(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        out: Obj = {"name": meta["name"]}
        if meta.get("namespace"):
            out["namespace"] = meta["namespace"]
        out["creationTimestamp"] = rfc3339(self._clock())
        if meta.get("labels"):
            out["labels"] = meta["labels"]
        return out

    def _node_metrics(self, node: Obj) -> Obj | None:
        usage = self.storage.node_usage(node["metadata"]["name"])
        if usage is None:
            return None
        return {
            "kind": "NodeMetrics",
            "apiVersion": GROUP_VERSION,
            "metadata": self._metadata(node),
            "timestamp": rfc3339(usage.timestamp),
            "window": go_duration(usage.window),
            "usage": usage.as_resources(),
        }

    def _pod_metrics(self, pod: Obj) -> Obj | None:
        meta = pod["metadata"]
        containers = self.storage.pod_usage(meta.get("namespace", ""), meta["name"])
        if containers is None:
            return None
        first: Usage = next(iter(containers.values()))
        return {
            "kind": "PodMetrics",
            "apiVersion": GROUP_VERSION,
            "metadata": self._metadata(pod),
            "timestamp": rfc3339(max(u.timestamp for u in containers.values())),
            "window": go_duration(first.window),
            "containers": [
                {"name": name, "usage": u.as_resources()} for name, u in sorted(containers.items())
            ],
        }

    def _list(self, kind: str, items: list[Obj]) -> web.Response:
        return _json(
            {
                "kind": kind,
                "apiVersion": GROUP_VERSION,
                "metadata": {},
                "items": items,
            }
        )

    async def _list_nodes(self, request: web.Request) -> web.Response:
        if (denied := await self._authorize(request, "list", "nodes", "")) is not None:
            return denied
        selector = self._selector(request)
        if isinstance(selector, web.Response):
            return selector
        items = []
        for node in sorted(self._nodes(), key=lambda n: n["metadata"]["name"]):
            matched = selector.matches(node["metadata"].get("labels"))
            if matched and (m := self._node_metrics(node)) is not None:
                items.append(m)
        return self._list("NodeMetricsList", items)

    async def _get_node(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if (denied := await self._authorize(request, "get", "nodes", "", name)) is not None:
            return denied
        node = self._node(name)
        metrics = self._node_metrics(node) if node is not None else None
        if metrics is None:
            return status(404, "NotFound", f'nodemetrics.{GROUP} "{name}" not found',
                           {"name": name, "group": GROUP, "kind": "nodemetrics"})  # fmt: skip
        return _json(metrics)

    async def _list_pods(self, request: web.Request) -> web.Response:
        namespace = request.match_info.get("namespace", "")
        if (denied := await self._authorize(request, "list", "pods", namespace)) is not None:
            return denied
        selector = self._selector(request)
        if isinstance(selector, web.Response):
            return selector
        items = []
        for pod in self._pods():
            meta = pod["metadata"]
            if namespace and meta.get("namespace") != namespace:
                continue
            matched = selector.matches(meta.get("labels"))
            if matched and (m := self._pod_metrics(pod)) is not None:
                items.append(m)
        items.sort(key=lambda m: (m["metadata"].get("namespace", ""), m["metadata"]["name"]))
        return self._list("PodMetricsList", items)

    async def _get_pod(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        if (denied := await self._authorize(request, "get", "pods", namespace, name)) is not None:
            return denied
        pod = self._pod(namespace, name)
        metrics = self._pod_metrics(pod) if pod is not None else None
        if metrics is None:
            shown = f"{namespace}/{name}"
            return status(404, "NotFound", f'podmetrics.{GROUP} "{shown}" not found',
                           {"name": shown, "group": GROUP, "kind": "podmetrics"})  # fmt: skip
        return _json(metrics)


def serving_context(cert: str, key: str, client_ca: str | None) -> ssl.SSLContext:
    """TLS for the API: our serving cert; client certificates are asked for and, when
    given, verified against the front proxy's CA (``client_ca``, PEM text)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.load_verify_locations(cadata=client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx
