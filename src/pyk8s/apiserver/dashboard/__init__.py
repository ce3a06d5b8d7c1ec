"""The web dashboard at ``https://SERVER:6443/dashboard/``, served by the API server (issue 22).

Why: people would rather look than read. The page shows desired vs actual state
(workloads' desired/ready/updated replicas and rollout state, pods with phase, the reason
they are failing, restarts and node, nodes with capacity, allocated requests and
conditions, services with their endpoints, events with warnings first) and, for any pod,
a live log tail and its trace timeline (:mod:`pyk8s.trace.timeline` over the pod, its
Events and its spans).

How it stays honest about who is looking:

- The page shell and its script and style are plain files; every piece of cluster data the
  script shows comes through ``/dashboard/api/<API path>``, which re-dispatches the request
  to the API server's own pipeline (authentication, authorization, audit, metrics) as the
  user, GET only. So RBAC decides what the page shows; a user whose Role covers one
  namespace sees that namespace only.
- Credentials: an ``Authorization: Bearer`` header or a client certificate, as for the API;
  or ``?token=`` on the first visit, which sets a ``Secure; HttpOnly; SameSite=Strict``
  cookie scoped to ``/dashboard`` and redirects to the page without the token in its URL.
  The cookie is honoured under ``/dashboard`` only, and only for GETs, so no other path
  ever acts on a cookie (no cross-site request forgery surface).
- Live updates are watches (``?watch=1&resourceVersion=…`` after one list), read as a
  stream by the script: no polling of full lists.

No CDN and no build step: the script is hand-written and served from the package.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from multidict import CIMultiDict

from pyk8s.api import errors
from pyk8s.api.registry import REGISTRY
from pyk8s.apiserver.authn import ALL_UNAUTHENTICATED, UserInfo
from pyk8s.apiserver.authz import RequestAttributes
from pyk8s.apiserver.encoding import json_response
from pyk8s.trace.timeline import build

__all__ = ["API", "COOKIE", "PREFIX", "Dashboard", "is_dashboard_path"]

PREFIX = "/dashboard"
API = PREFIX + "/api"
STATIC = PREFIX + "/static/"
COOKIE = "pyk8s-dashboard-token"
_FILES = {"app.js": "text/javascript", "style.css": "text/css"}
_HERE = Path(__file__).parent


class Host(Protocol):
    """What the dashboard needs of the API server."""

    async def handle(self, request: web.Request) -> web.StreamResponse: ...

    async def authenticate(self, request: web.Request) -> UserInfo: ...

    async def check(self, user: UserInfo, attrs: RequestAttributes) -> None: ...

    async def pod_with_spans(
        self, user: UserInfo, namespace: str, name: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]: ...

    async def read_objects(self, prefix: str) -> list[dict[str, Any]]: ...


def is_dashboard_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


class Dashboard:
    def __init__(self, host: Host) -> None:
        self.host = host

    async def serve(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path == PREFIX:
            raise web.HTTPFound(PREFIX + "/")
        if path.startswith(STATIC):
            return _static(path[len(STATIC) :])
        cookie = request.cookies.get(COOKIE, "")
        if path.startswith(API + "/"):
            return await self._api(request, cookie)
        token = request.query.get("token", "")
        if path == PREFIX + "/" and token:
            if await self._user(request, token) is None:
                return _login("That token was not accepted.", 401)
            resp = web.HTTPSeeOther(PREFIX + "/")
            resp.set_cookie(
                COOKIE, token, path=PREFIX, secure=True, httponly=True, samesite="Strict"
            )
            raise resp
        user = await self._user(request, cookie)
        if user is None:
            return _login("", 401)
        try:
            if path == PREFIX + "/":
                return _index(user)
            if path == PREFIX + "/whoami":
                return json_response(await self._whoami(user))
            parts = path[len(PREFIX) :].strip("/").split("/")
            if len(parts) == 3 and parts[0] == "timeline":
                return json_response(await self._timeline(user, parts[1], parts[2]))
        except errors.StatusError as err:
            return json_response(err.status(), err.code)
        raise web.HTTPNotFound()

    async def _api(self, request: web.Request, cookie: str) -> web.StreamResponse:
        """The API request under ``/dashboard/api``, as the user, through the whole
        pipeline; reads only."""
        if request.method not in ("GET", "HEAD"):
            return json_response(
                errors.method_not_allowed("the dashboard only reads").status(), 405
            )
        headers = CIMultiDict(request.headers)
        headers.popall("Cookie", None)
        if cookie and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {cookie}"
        rel = request.rel_url
        target = rel.with_path(rel.path[len(API) :] or "/")
        return await self.host.handle(request.clone(rel_url=target, headers=headers))

    async def _user(self, request: web.Request, token: str) -> UserInfo | None:
        """Who the request (with ``token`` as a bearer token, when given) is; None for
        nobody (anonymous) or a refused credential."""
        headers = CIMultiDict(request.headers)
        if token and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {token}"
        try:
            user = await self.host.authenticate(request.clone(headers=headers))
        except errors.StatusError:
            return None
        return None if ALL_UNAUTHENTICATED in user.groups else user

    async def _allowed(self, user: UserInfo, attrs: RequestAttributes) -> bool:
        try:
            await self.host.check(user, attrs)
        except errors.StatusError:
            return False
        return True

    async def _whoami(self, user: UserInfo) -> dict[str, Any]:
        """The user, and the namespaces whose pods they may list (None: every one)."""
        every = RequestAttributes(verb="list", resource="pods", api_version="v1")
        nodes = RequestAttributes(verb="list", resource="nodes", api_version="v1")
        namespaces: list[str] | None = None
        if not await self._allowed(user, every):
            ns_resource = REGISTRY.get("", "v1", "namespaces")
            assert ns_resource is not None
            names = [
                str(o["metadata"]["name"])
                for o in await self.host.read_objects(ns_resource.key_prefix())
            ]
            namespaces = [
                n
                for n in sorted(names)
                if await self._allowed(
                    user,
                    RequestAttributes(verb="list", resource="pods", namespace=n, api_version="v1"),
                )
            ]
        return {
            "user": user.name,
            "namespaces": namespaces,
            "nodes": await self._allowed(user, nodes),
        }

    async def _timeline(self, user: UserInfo, namespace: str, name: str) -> dict[str, Any]:
        """The pod's trace timeline (403/404 as getting the pod would be); its Events
        only if the user may list Events there."""
        pod, spans = await self.host.pod_with_spans(user, namespace, name)
        events: list[dict[str, Any]] = []
        list_events = RequestAttributes(
            verb="list", resource="events", namespace=namespace, api_version="v1"
        )
        if await self._allowed(user, list_events):
            ev_resource = REGISTRY.get("", "v1", "events")
            assert ev_resource is not None
            uid = pod["metadata"].get("uid")
            events = [
                e
                for e in await self.host.read_objects(ev_resource.key_prefix(namespace))
                if (e.get("involvedObject") or {}).get("uid") == uid
            ]
        return build(pod, events, spans=spans).to_json()


def _static(name: str) -> web.Response:
    kind = _FILES.get(name)
    if kind is None:
        raise web.HTTPNotFound()
    return web.Response(
        body=(_HERE / name).read_bytes(),
        content_type=kind,
        headers={"Cache-Control": "no-cache"},
    )


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pyk8s dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{prefix}/static/style.css"></head>
<body>{body}</body></html>
"""


def _login(message: str, status: int) -> web.Response:
    note = f'<p class="error" id="login-error">{html.escape(message)}</p>' if message else ""
    body = f"""<main class="login"><h1>pyk8s dashboard</h1>{note}
<p>Sign in with a bearer token (a ServiceAccount token from <code>kubectl create token</code>,
or a static or bootstrap token), or open this page with a client certificate.</p>
<form method="get" action="{PREFIX}/"><label>Token <input type="password" name="token"
autocomplete="off" required></label> <button type="submit">Sign in</button></form></main>"""
    return web.Response(
        text=_PAGE.format(prefix=PREFIX, body=body), content_type="text/html", status=status
    )


def _index(user: UserInfo) -> web.Response:
    body = f"""<header><h1>pyk8s</h1>
<label>Namespace <select id="namespace"></select></label>
<span id="user">{html.escape(user.name)}</span>
<span id="live" class="badge">connecting…</span></header>
<main>
<section id="problems"><h2>What is failing</h2><ul id="failing"></ul></section>
<section><h2>Workloads</h2><table id="workloads"><thead><tr><th>Kind</th><th>Namespace</th>
<th>Name</th><th>Desired</th><th>Ready</th><th>Up-to-date</th><th>Available</th>
<th>Rollout</th></tr></thead><tbody></tbody></table></section>
<section><h2>Pods</h2><table id="pods"><thead><tr><th>Namespace</th><th>Name</th>
<th>Status</th><th>Ready</th><th>Restarts</th><th>Node</th><th>Age</th></tr></thead>
<tbody></tbody></table></section>
<section id="pod-detail" hidden><h2>Pod <span id="detail-name"></span>
<button id="detail-close" type="button">close</button></h2>
<div class="columns"><div><h3>Trace</h3><table id="trace"><thead><tr><th>Step</th>
<th>+gap</th><th>Detail</th></tr></thead><tbody></tbody></table>
<p id="trace-result"></p></div>
<div><h3>Log <select id="log-container"></select></h3><pre id="log"></pre></div></div>
</section>
<section id="nodes-section"><h2>Nodes</h2><table id="nodes"><thead><tr><th>Name</th>
<th>Status</th><th>CPU (alloc/req)</th><th>Memory (alloc/req)</th><th>Pods</th>
<th>Conditions</th></tr></thead><tbody></tbody></table></section>
<section><h2>Services</h2><table id="services"><thead><tr><th>Namespace</th><th>Name</th>
<th>Type</th><th>Cluster IP</th><th>Ports</th><th>Endpoints</th></tr></thead>
<tbody></tbody></table></section>
<section><h2>Events</h2><table id="events"><thead><tr><th>Type</th><th>Namespace</th>
<th>Object</th><th>Reason</th><th>Message</th><th>Count</th></tr></thead><tbody></tbody>
</table></section>
</main>
<script src="{PREFIX}/static/app.js"></script>"""
    return web.Response(text=_PAGE.format(prefix=PREFIX, body=body), content_type="text/html")
