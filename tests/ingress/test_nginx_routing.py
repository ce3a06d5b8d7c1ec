"""Rendered configurations on a real nginx: the Ingress API's matching rules, TLS by SNI,
redirects, WebSocket tunnels and reloads, with loopback HTTP servers as the endpoints.

No cluster and no containers: the objects are built here, so each request's answer
shows what nginx does with the text the renderer wrote (test_ingress_e2e.py does the
same through the API server and real pods, once).
"""

from __future__ import annotations

import asyncio
import http.server
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pyk8s.ingress.nginx import FAKE_CERT_CN, NGINX, Nginx, NginxError
from pyk8s.ingress.render import RenderConfig, Rendered, render
from tests.ingress.objects import (
    backend,
    endpoint_slice,
    ingress,
    key_pair,
    path,
    rule,
    service,
    tls_secret,
)
from tests.ingress.requests import get, served_cn
from tests.integration.conftest import free_port

pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed")

JSON = dict[str, Any]
NAMES = ("web", "api", "other", "fallback")
#: set when a backend is inside a /slow request
IN_FLIGHT = threading.Event()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.end_headers()
            self.wfile.flush()
            data = self.connection.recv(64)  # echo one message through the tunnel
            self.connection.sendall(b"echo:" + data)
            self.close_connection = True
            return
        if "/slow" in self.path:
            IN_FLIGHT.set()
            time.sleep(1.0)
        body = f"{self.server.name} {self.path}\n".encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, int]]:
    """One loopback HTTP server per Service name, answering "<name> <path>"."""
    servers = []
    ports: dict[str, int] = {}
    for name in NAMES:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        srv.name = name  # type: ignore[attr-defined]
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        ports[name] = srv.server_address[1]
    yield ports
    for srv in servers:
        srv.shutdown()


@pytest.fixture(scope="module")
def cert() -> tuple[bytes, bytes]:
    return key_pair("secure.example.com")


def objects(ports: dict[str, int], cert: tuple[bytes, bytes]) -> tuple[list[JSON], ...]:
    services = [service(n) for n in NAMES]
    slices = [endpoint_slice(n, ["127.0.0.1"], port=p) for n, p in ports.items()]
    ingresses = [
        ingress(
            "site",
            rule("a.example.com", path("/exact", "web", "Exact"), path("/foo", "api"),
                 path("/foo/deeper", "other"), path("/impl", "other", "ImplementationSpecific")),
            rule("*.wild.example.com", path("/", "web")),
            rule("secure.example.com", path("/", "api")),
            rule("open.example.com", path("/", "web"), path("/ws", "other")),
            tls=[{"hosts": ["secure.example.com"], "secretName": "secure"}],
        ),
        ingress("fallback", default_backend=backend("fallback")),
    ]  # fmt: skip
    return ingresses, services, slices, [tls_secret("secure", *cert)]


class Running:
    def __init__(self, nginx: Nginx, cfg: RenderConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.nginx, self.cfg, self.loop = nginx, cfg, loop

    def apply(self, rendered: Rendered) -> None:
        self.loop.run_until_complete(self.nginx.apply(rendered))

    def get(self, host: str, target: str, https: bool = False) -> tuple[int, str, str]:
        port = self.cfg.https_port if https else self.cfg.http_port
        return get(host, target, port, https)


@pytest.fixture(scope="module")
def running(
    backends: dict[str, int], cert: tuple[bytes, bytes], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    prefix = tmp_path_factory.mktemp("nginx")
    nginx = Nginx(prefix)
    nginx.prepare()
    cfg = RenderConfig(
        prefix=str(nginx.prefix),
        default_certificate=str(nginx.default_certificate),
        http_port=free_port(),
        https_port=free_port(),
        bind_address="127.0.0.1",
        status_socket=str(nginx.status_socket),
    )
    loop = asyncio.new_event_loop()
    r = Running(nginx, cfg, loop)
    r.apply(render(*objects(backends, cert), cfg))
    try:
        yield r
    finally:
        loop.run_until_complete(nginx.stop())
        loop.close()


@pytest.mark.parametrize(
    ("host", "target", "answer"),
    [
        ("a.example.com", "/exact", "web /exact"),
        ("a.example.com", "/exact/", "fallback /exact/"),  # Exact: nothing below it
        ("a.example.com", "/foo", "api /foo"),
        ("a.example.com", "/foo/", "api /foo/"),
        ("a.example.com", "/foo/bar?q=1", "api /foo/bar?q=1"),
        ("a.example.com", "/foobar", "fallback /foobar"),  # Prefix is by path element
        ("a.example.com", "/foo/deeper/x", "other /foo/deeper/x"),  # the longest prefix wins
        ("a.example.com", "/impl", "other /impl"),
        ("a.example.com", "/implx", "other /implx"),  # ImplementationSpecific: plain prefix
        ("x.wild.example.com", "/", "web /"),
        ("a.b.wild.example.com", "/", "fallback /"),  # a wildcard covers one label only
        ("unknown.example.com", "/", "fallback /"),
        ("open.example.com", "/any", "web /any"),
    ],
)
def test_requests_answer_from_the_backend_the_ingress_api_says(
    running: Running, host: str, target: str, answer: str
) -> None:
    assert running.get(host, target) == (200, answer + "\n", "")


def test_tls_host_gets_its_certificate_by_sni_and_plain_http_is_redirected(
    running: Running,
) -> None:
    assert served_cn(running.cfg.https_port, "secure.example.com") == "secure.example.com"
    assert served_cn(running.cfg.https_port, "open.example.com") == FAKE_CERT_CN
    assert running.get("secure.example.com", "/x", https=True) == (200, "api /x\n", "")
    status, _, location = running.get("secure.example.com", "/x?y=1")
    assert (status, location) == (308, "https://secure.example.com/x?y=1")
    # a host without TLS is not served on the HTTPS port: the catch-all server answers
    assert running.get("open.example.com", "/x", https=True) == (200, "fallback /x\n", "")


def test_websocket_upgrade_is_tunnelled(running: Running) -> None:
    with socket.create_connection(("127.0.0.1", running.cfg.http_port), timeout=5) as s:
        s.sendall(
            b"GET /ws HTTP/1.1\r\nHost: open.example.com\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1024)
        assert head.startswith(b"HTTP/1.1 101"), head
        s.sendall(b"hello")
        assert s.recv(64) == b"echo:hello"


def test_a_refused_configuration_keeps_the_running_one(running: Running) -> None:
    before = running.nginx.live_hash
    broken = Rendered(config="http { nonsense; }\n", files={}, findings=[], hash="x", upstreams={})
    with pytest.raises(NginxError, match="nonsense"):
        running.apply(broken)
    assert running.loop.run_until_complete(running.nginx.live()) == before
    assert running.get("a.example.com", "/exact") == (200, "web /exact\n", "")


def test_a_reload_lets_in_flight_requests_finish(
    running: Running, backends: dict[str, int], cert: tuple[bytes, bytes]
) -> None:
    results: list[tuple[int, str, str]] = []
    slow = threading.Thread(
        target=lambda: results.append(running.get("a.example.com", "/foo/slow"))
    )
    slow.start()
    assert IN_FLIGHT.wait(10)  # the request is inside the backend's 1 s sleep
    ingresses, services, slices, secrets = objects(backends, cert)
    ingresses[0]["spec"]["rules"][0]["http"]["paths"].append(path("/new", "web", "Exact"))
    running.apply(render(ingresses, services, slices, secrets, running.cfg))
    assert running.get("a.example.com", "/new") == (200, "web /new\n", "")
    slow.join(timeout=10)
    assert results == [(200, "api /foo/slow\n", "")]
