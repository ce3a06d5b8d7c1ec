"""``pyk8s ingress-controller`` serving the Gateway API from a real API server: it
installs the CRDs and the ``pyk8s`` GatewayClass, renders Gateways and HTTPRoutes made
with kubectl, and writes their status (Accepted, Programmed, attachedRoutes,
ResolvedRefs with BackendNotFound). The endpoints are loopback servers named in
hand-written EndpointSlices, so no node or container is needed."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyk8s.ingress.nginx import NGINX
from tests.addon_identity import addon_kubeconfig
from tests.ingress.gateway_objects import gateway, http_route, listener, ref, route_rule
from tests.ingress.objects import endpoint_slice, key_pair, service, tls_secret
from tests.ingress.requests import get, served_cn
from tests.integration.conftest import Kubectl, Server, free_port, kubectl, ns, server

pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed")
__all__ = ["kubectl", "ns", "server"]

JSON = dict[str, Any]


class _Name(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        body = self.server.name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, int]]:
    servers, ports = [], {}
    for name in ("blue", "green"):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Name)
        srv.name = name  # type: ignore[attr-defined]
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        ports[name] = srv.server_address[1]
    yield ports
    for srv in servers:
        srv.shutdown()


@pytest.fixture(scope="module")
def controller(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    data = tmp_path_factory.mktemp("gw-controller")
    # its own identity; pyk8s server (here: the helper) installs the Gateway API CRDs
    identity = addon_kubeconfig(server, "ingress-controller", data / "ingress.kubeconfig")
    log = open(data / "controller.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyk8s", "ingress-controller", "--kubeconfig",
         str(identity), "--data-dir", str(data), "--http-port", str(free_port()),
         "--https-port", str(free_port()), "--healthz-port", str(free_port()),
         "--bind-address", "127.0.0.1", "--node-ip", "127.0.0.1",
         "--publish-service", "kube-system/gw-test"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        log.close()


def _eventually(kubectl: Kubectl, args: tuple[str, ...], check: Any, within: float = 20) -> Any:
    deadline = time.monotonic() + within
    while True:
        out = kubectl.run(*args, "-o", "json", check=False)
        got = json.loads(out.stdout) if out.returncode == 0 else out.stderr
        if out.returncode == 0 and check(got):
            return got
        assert time.monotonic() < deadline, f"{args}: {json.dumps(got)[:2000]}"
        time.sleep(0.2)


def _condition(conditions: list[JSON], kind: str) -> tuple[str, str]:
    c = next((c for c in conditions if c["type"] == kind), {})
    return c.get("status", ""), c.get("reason", "")


def test_gateway_and_httproute_from_the_api(
    kubectl: Kubectl, ns: str, controller: None, backends: dict[str, int], tmp_path: Path
) -> None:
    gc = _eventually(kubectl, ("get", "gatewayclass", "pyk8s"),
                     lambda o: _condition((o.get("status") or {}).get("conditions") or [],
                                          "Accepted") == ("True", "Accepted"))  # fmt: skip
    assert gc["spec"]["controllerName"] == "pyk8s.io/gateway-controller"
    port = free_port()
    objects: list[JSON] = [
        *[service(n, namespace=ns) for n in backends],
        *[endpoint_slice(n, ["127.0.0.1"], port=p, namespace=ns) for n, p in backends.items()],
        gateway("gw", listener("http", port, "gw.example.com"), namespace=ns),
        http_route(
            "split",
            route_rule(ref("blue", weight=80), ref("green", weight=20)),
            namespace=ns,
        ),
        http_route(
            "broken",
            route_rule(ref("missing"), matches=[{"path": {"type": "Exact", "value": "/gone"}}]),
            namespace=ns,
        ),
    ]
    (tmp_path / "objects.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List",
                                                        "items": objects}))  # fmt: skip
    kubectl("apply", "-n", ns, "-f", str(tmp_path / "objects.json"))

    gw = _eventually(kubectl, ("get", "gateway", "gw", "-n", ns),
                     lambda o: (o.get("status") or {}).get("listeners", [{}])[0]
                     .get("attachedRoutes") == 2)  # fmt: skip
    assert _condition(gw["status"]["conditions"], "Programmed") == ("True", "Programmed")
    assert gw["status"]["addresses"][0]["value"] == "127.0.0.1"
    table = kubectl("get", "gateway", "gw", "-n", ns)
    assert table.split("\n")[1].split()[:4] == ["gw", "pyk8s", "127.0.0.1", "True"]

    broken = kubectl.json("get", "httproute", "broken", "-n", ns)
    parent = broken["status"]["parents"][0]
    assert parent["controllerName"] == "pyk8s.io/gateway-controller"
    assert _condition(parent["conditions"], "Accepted") == ("True", "Accepted")
    assert _condition(parent["conditions"], "ResolvedRefs") == ("False", "BackendNotFound")
    split = kubectl.json("get", "httproute", "split", "-n", ns)
    resolved = _condition(split["status"]["parents"][0]["conditions"], "ResolvedRefs")
    assert resolved == ("True", "ResolvedRefs")

    counts: dict[str, int] = {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for _ in range(50):
            conn.request("GET", "/", headers={"Host": "gw.example.com"})
            resp = conn.getresponse()
            name = resp.read().decode()
            assert resp.status == 200
            counts[name] = counts.get(name, 0) + 1
        conn.request("GET", "/gone", headers={"Host": "gw.example.com"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 500  # the spec's answer for a rule whose backend is invalid
    finally:
        conn.close()
    assert set(counts) == {"blue", "green"} and 35 <= counts["blue"] <= 45, counts


def test_https_listener_with_a_secret_in_another_namespace_needs_a_reference_grant(
    kubectl: Kubectl, ns: str, controller: None, backends: dict[str, int], tmp_path: Path
) -> None:
    certs = f"{ns}-certs"
    kubectl("create", "namespace", certs)
    try:
        port = free_port()
        cert, key = key_pair("tls.example.com")
        https = {**listener("https", port, "tls.example.com"), "protocol": "HTTPS",
                 "tls": {"certificateRefs": [{"kind": "Secret", "name": "site",
                                              "namespace": certs}]}}  # fmt: skip
        objects: list[JSON] = [
            service("blue", namespace=ns),
            endpoint_slice("blue", ["127.0.0.1"], port=backends["blue"], namespace=ns),
            tls_secret("site", cert, key, namespace=certs),
            gateway("tls", https, namespace=ns),
            http_route("blue", route_rule(ref("blue")), gateway="tls", namespace=ns),
        ]
        (tmp_path / "tls.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List",
                                                        "items": objects}))  # fmt: skip
        kubectl("apply", "-f", str(tmp_path / "tls.json"))

        def listener_refs(gw: JSON) -> tuple[str, str]:
            listeners = (gw.get("status") or {}).get("listeners") or [{}]
            return _condition(listeners[0].get("conditions") or [], "ResolvedRefs")

        args = ("get", "gateway", "tls", "-n", ns)
        _eventually(kubectl, args, lambda o: listener_refs(o) == ("False", "RefNotPermitted"))
        grant = {
            "apiVersion": "gateway.networking.k8s.io/v1beta1",
            "kind": "ReferenceGrant",
            "metadata": {"name": "gateways", "namespace": certs},
            "spec": {
                "from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                          "namespace": ns}],
                "to": [{"group": "", "kind": "Secret"}],
            },
        }  # fmt: skip
        kubectl("apply", "-f", "-", input=json.dumps(grant))
        gw = _eventually(kubectl, args, lambda o: listener_refs(o) == ("True", "ResolvedRefs"))
        programmed = _condition(gw["status"]["listeners"][0]["conditions"], "Programmed")
        assert programmed == ("True", "Programmed")
        # the reload that programmed it is live once the status says so
        assert served_cn(port, "tls.example.com") == "tls.example.com"
        assert get("tls.example.com", "/", port, https=True) == (200, "blue", "")
    finally:
        kubectl("delete", "namespace", certs, "--wait=false")
