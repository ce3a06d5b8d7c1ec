"""Gateway API routes rendered onto a real nginx, loopback HTTP servers as endpoints:
the spec's match precedence, filters, redirects, and an 80/20 traffic split measured
over 500 requests."""

from __future__ import annotations

import asyncio
import http.client
import http.server
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pyk8s.ingress.gateway import render_gateways
from pyk8s.ingress.nginx import NGINX, Nginx
from pyk8s.ingress.render import RenderConfig, render
from tests.ingress.gateway_objects import gateway, http_route, listener, ref, route_rule
from tests.ingress.objects import endpoint_slice, service
from tests.ingress.requests import get
from tests.integration.conftest import free_port

pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed")

NAMES = ("web", "api", "other")
#: (backend, path) of every request the backends got
SEEN: list[tuple[str, str]] = []


class _Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # one write per response (headers and body together), no Nagle delay on keep-alive
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        SEEN.append((self.server.name, self.path))  # type: ignore[attr-defined]
        if self.path.startswith("/slow"):
            time.sleep(2)
        h = self.headers
        body = (
            f"{self.server.name} {self.path} "  # type: ignore[attr-defined]
            f"set={h.get('X-Set')} add={h.get('X-Add')} gone={h.get('X-Gone')}\n"
        ).encode()
        self.send_response(200)
        self.send_header("X-Backend", self.server.name)  # type: ignore[attr-defined]
        self.send_header("X-Host", str(h.get("Host")))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """nginx serving one Gateway listener and its HTTPRoutes; the listener's port."""
    servers, ports = [], {}
    for name in NAMES:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
        srv.name = name  # type: ignore[attr-defined]
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        ports[name] = srv.server_address[1]
    nginx = Nginx(tmp_path_factory.mktemp("nginx"))
    nginx.prepare()
    cfg = RenderConfig(
        prefix=str(nginx.prefix),
        default_certificate=str(nginx.default_certificate),
        http_port=free_port(),
        https_port=free_port(),
        bind_address="127.0.0.1",
        status_socket=str(nginx.status_socket),
    )
    listen = free_port()
    routes = [
        http_route(
            "site",
            route_rule(ref("api"), matches=[{"path": {"type": "PathPrefix", "value": "/api"}}]),
            route_rule(ref("other"), matches=[{"path": {"type": "Exact", "value": "/api/exact"}}]),
            route_rule(ref("other"), matches=[{"path": {"type": "PathPrefix", "value": "/api"},
                                               "headers": [{"name": "X-Env", "value": "canary"}]}]),
            route_rule(ref("web"), matches=[{"path": {"type": "PathPrefix", "value": "/api"},
                                             "queryParams": [{"name": "v", "value": "2"}]}]),
            route_rule(ref("web", weight=80), ref("api", weight=20)),
            route_rule(
                ref("web"),
                matches=[{"path": {"type": "PathPrefix", "value": "/mod"}}],
                requestHeaderModifier={"set": [{"name": "X-Set", "value": "a"}],
                                       "add": [{"name": "X-Add", "value": "b"}],
                                       "remove": ["X-Gone"]},
            ),
            route_rule(
                matches=[{"path": {"type": "PathPrefix", "value": "/old"}}],
                requestRedirect={"scheme": "https", "hostname": "new.example.com",
                                 "statusCode": 301},
            ),
            route_rule(
                ref("web"),
                matches=[{"path": {"type": "PathPrefix", "value": "/rw"}}],
                urlRewrite={"hostname": "backend.example.com",
                            "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2"}},
            ),
            route_rule(
                ref("web"),
                matches=[{"path": {"type": "PathPrefix", "value": "/strip"}}],
                urlRewrite={"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}},
            ),
            route_rule(
                ref("web"),
                matches=[{"path": {"type": "PathPrefix", "value": "/full"}}],
                urlRewrite={"path": {"type": "ReplaceFullPath", "replaceFullPath": "/fixed"}},
            ),
            route_rule(
                matches=[{"path": {"type": "PathPrefix", "value": "/moved"}}],
                requestRedirect={"path": {"type": "ReplacePrefixMatch",
                                          "replacePrefixMatch": "/new"}, "statusCode": 301},
            ),
            route_rule(
                ref("web"),
                matches=[{"path": {"type": "PathPrefix", "value": "/resp"}}],
                responseHeaderModifier={"set": [{"name": "X-Resp", "value": "a"}],
                                        "add": [{"name": "X-Extra", "value": "b"}],
                                        "remove": ["X-Backend"]},
            ),
            route_rule(ref("other"), matches=[
                {"path": {"type": "RegularExpression", "value": "/re/[0-9]+"}},
                {"path": {"type": "PathPrefix", "value": "/rh"},
                 "headers": [{"type": "RegularExpression", "name": "X-Version",
                              "value": "^v[0-9]+$"}]},
                {"path": {"type": "PathPrefix", "value": "/rq"},
                 "queryParams": [{"type": "RegularExpression", "name": "id",
                                  "value": "[a-f]{3}"}]},
            ]),
            route_rule(ref("api"), matches=[{"path": {"type": "PathPrefix", "value": p}}
                                            for p in ("/re", "/rh", "/rq")]),
            route_rule(
                ref("web"),
                matches=[{"path": {"type": "PathPrefix", "value": "/mirror"}}],
                requestMirror={"backendRef": {"name": "other", "port": 80}},
            ),
            {**route_rule(ref("web"), matches=[{"path": {"type": "PathPrefix",
                                                          "value": "/slow"}}]),
             "timeouts": {"request": "300ms"}},
            hostnames=("gw.example.com",),
        ),
    ]  # fmt: skip
    gw = gateway("gw", listener("http", listen))
    svcs = [service(n) for n in NAMES]
    slices = [endpoint_slice(n, ["127.0.0.1"], port=p) for n, p in ports.items()]
    extra = render_gateways([gw], routes, svcs, slices, cfg).extra
    loop = asyncio.new_event_loop()
    loop.run_until_complete(nginx.apply(render([], svcs, slices, [], cfg, extra)))
    try:
        yield listen
    finally:
        loop.run_until_complete(nginx.stop())
        loop.close()
        for srv in servers:
            srv.shutdown()


def _get(port: int, target: str, **headers: str) -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", target, headers={"Host": "gw.example.com", **headers})
        resp = conn.getresponse()
        return resp.status, resp.read().decode().split(" set=")[0], resp.getheader("Location") or ""
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("target", "headers", "answer"),
    [
        ("/api/exact", {"X-Env": "canary"}, "other /api/exact"),  # Exact beats every prefix
        ("/api/x", {}, "api /api/x"),
        ("/api", {}, "api /api"),
        ("/apix", {"X-Env": "canary"}, None),  # by path element: /apix is the split at "/"
        ("/api/x", {"X-Env": "canary"}, "other /api/x"),  # more headers beat fewer
        ("/api/x", {"X-Env": "prod"}, "api /api/x"),  # exact values only
        ("/api/x?v=2", {}, "web /api/x?v=2"),  # more query params beat fewer
        ("/api/x?a=1&v=2", {}, "web /api/x?a=1&v=2"),
        ("/api/x?v=22", {}, "api /api/x?v=22"),
        # same specificity: the header rule is earlier in the route
        ("/api/x?v=2", {"X-Env": "canary"}, "other /api/x?v=2"),
    ],
)
def test_the_most_specific_match_wins(
    port: int, target: str, headers: dict[str, str], answer: str | None
) -> None:
    status, body, _ = _get(port, target, **headers)
    assert status == 200
    if answer is None:
        assert body.split(" ")[1] == target and body.split(" ")[0] in ("web", "api")
    else:
        assert body == answer


def test_request_header_modifier_and_redirect(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/mod", headers={"Host": "gw.example.com", "X-Add": "x", "X-Gone": "1"})
    assert conn.getresponse().read().decode() == "web /mod set=a add=x,b gone=None\n"
    conn.close()
    status, _, location = _get(port, "/old/p?q=1")
    assert (status, location) == (301, "https://new.example.com/old/p?q=1")
    # another host: no route on this listener
    assert get("elsewhere.example.com", "/", port)[0] == 404


@pytest.mark.parametrize(
    ("target", "headers", "backend"),
    [
        ("/re/123", {}, "other"),  # a RegularExpression path beats prefixes
        ("/re/12a", {}, "api"),  # full match only
        ("/rh/x", {"X-Version": "v12"}, "other"),
        ("/rh/x", {"X-Version": "v1x"}, "api"),
        ("/rq?id=abc", {}, "other"),
        ("/rq?x=1&id=fed", {}, "other"),
        ("/rq?id=abcd", {}, "api"),
    ],
)
def test_regular_expression_matches(
    port: int, target: str, headers: dict[str, str], backend: str
) -> None:
    assert _get(port, target, **headers)[:2] == (200, f"{backend} {target}")


@pytest.mark.parametrize(
    ("target", "seen"),
    [
        ("/rw/x?q=1", "/v2/x?q=1"),  # ReplacePrefixMatch
        ("/rw", "/v2"),
        ("/rw/", "/v2/"),
        ("/strip/a/b", "/a/b"),  # the prefix replaced by "/"
        ("/strip", "/"),
        ("/full/any?q=2", "/fixed?q=2"),  # ReplaceFullPath keeps the query
    ],
)
def test_url_rewrite(port: int, target: str, seen: str) -> None:
    assert _get(port, target) == (200, f"web {seen}", "")


def test_redirect_replace_prefix_and_response_header_modifier(port: int) -> None:
    status, _, location = _get(port, "/moved/x?q=1")
    assert (status, location) == (301, f"http://gw.example.com:{port}/new/x?q=1")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/resp", headers={"Host": "gw.example.com"})
        resp = conn.getresponse()
        resp.read()
        assert resp.getheader("X-Resp") == "a" and resp.getheader("X-Extra") == "b"
        assert resp.getheader("X-Backend") is None  # the backend's, removed
        conn.request("GET", "/mod", headers={"Host": "gw.example.com"})
        resp = conn.getresponse()
        resp.read()
        assert resp.getheader("X-Backend") == "web" and resp.getheader("X-Resp") is None
        assert resp.getheader("X-Host") == "gw.example.com"
        conn.request("GET", "/rw/x", headers={"Host": "gw.example.com"})
        resp = conn.getresponse()
        resp.read()
        assert resp.getheader("X-Host") == "backend.example.com"  # URLRewrite hostname
    finally:
        conn.close()


def test_request_mirror_copies_each_request_to_its_backend(port: int) -> None:
    assert _get(port, "/mirror/x?n=1") == (200, "web /mirror/x?n=1", "")
    deadline = time.monotonic() + 10
    while ("other", "/mirror/x?n=1") not in SEEN:  # the copy may finish after the answer
        assert time.monotonic() < deadline, SEEN
        time.sleep(0.01)
    assert ("web", "/mirror/x?n=1") in SEEN


def test_a_backend_slower_than_the_rules_timeout_gets_504(port: int) -> None:
    started = time.monotonic()
    assert _get(port, "/slow")[0] == 504
    assert time.monotonic() - started < 2  # not the backend's 2 s


def test_weighted_backends_split_80_20_over_500_requests(port: int) -> None:
    counts = {"web": 0, "api": 0}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for _ in range(500):
            conn.request("GET", "/split", headers={"Host": "gw.example.com"})
            resp = conn.getresponse()
            counts[resp.read().decode().split(" ")[0]] += 1
    finally:
        conn.close()
    assert abs(counts["web"] / 500 - 0.8) <= 0.05, counts
