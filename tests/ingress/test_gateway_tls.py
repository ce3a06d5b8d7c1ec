"""Gateway API HTTPS listeners, ReferenceGrants and listener validation: the conditions
and reasons upstream's conformance suite expects (InvalidCertificateRef, RefNotPermitted,
InvalidRouteKinds, ProtocolConflict, HostnameConflict, UnsupportedValue,
ListenersNotValid), allowedRoutes namespace selectors, and TLS termination by SNI on a
real nginx with certificates from Secrets."""

from __future__ import annotations

import asyncio
import http.client
import http.server
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from pyk8s.ingress.controller import not_programmed, port_bindable
from pyk8s.ingress.gateway import render_gateways
from pyk8s.ingress.nginx import NGINX, Nginx
from pyk8s.ingress.render import RenderConfig, render
from tests.ingress.gateway_objects import gateway, http_route, listener, ref, route_rule
from tests.ingress.objects import endpoint_slice, key_pair, service, tls_secret
from tests.ingress.requests import get, served_cn
from tests.integration.conftest import free_port

JSON = dict[str, Any]
CFG = RenderConfig(prefix="/p", default_certificate="/p/c.pem")
CERT, KEY = key_pair("secure.example.com")
#: the plain HTTP listener's port in the nginx fixture
PLAIN = [0]


def https(name: str, port: int, *secrets: tuple[str, str], hostname: str = "", **tls: Any) -> JSON:
    out = listener(name, port, hostname)
    out["protocol"] = "HTTPS"
    refs = [{"kind": "Secret", "name": n, **({"namespace": ns} if ns else {})} for n, ns in secrets]
    out["tls"] = {"mode": "Terminate", "certificateRefs": refs, **tls}
    return out


def grant(namespace: str, from_kind: str, from_ns: str, to_kind: str, name: str = "") -> JSON:
    to: JSON = {"group": "", "kind": to_kind, **({"name": name} if name else {})}
    return {
        "apiVersion": "gateway.networking.k8s.io/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": {"name": "g", "namespace": namespace},
        "spec": {
            "from": [
                {"group": "gateway.networking.k8s.io", "kind": from_kind, "namespace": from_ns}
            ],
            "to": [to],
        },
    }


def listener_conditions(rendered: Any, name: str) -> dict[str, tuple[str, str]]:
    (status,) = rendered.gateways.values()
    (li,) = (x for x in status["listeners"] if x["name"] == name)
    return {c["type"]: (c["status"], c["reason"]) for c in li["conditions"]}


def gateway_conditions(rendered: Any) -> dict[str, tuple[str, str]]:
    (status,) = rendered.gateways.values()
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def route_conditions(rendered: Any, name: str = "r") -> dict[str, tuple[str, str]]:
    (parent,) = rendered.routes[("default", name)]
    return {c["type"]: (c["status"], c["reason"]) for c in parent["conditions"]}


def test_an_https_listener_terminates_tls_with_its_secrets_certificate() -> None:
    secret = tls_secret("site", CERT, KEY)
    gw = gateway("gw", https("tls", 9443, ("site", ""), hostname="secure.example.com"))
    out = render_gateways([gw], [http_route("r", route_rule(ref("web")))], [service("web")],
                          [endpoint_slice("web", ["10.0.0.1"])], CFG, secrets=[secret])  # fmt: skip
    assert listener_conditions(out, "tls") == {
        "Accepted": ("True", "Accepted"),
        "Programmed": ("True", "Programmed"),
        "ResolvedRefs": ("True", "ResolvedRefs"),
        "Conflicted": ("False", "NoConflicts"),
    }
    ((relative, pem),) = out.extra.files.items()
    assert CERT in pem and KEY in pem
    assert f"ssl_certificate /p/{relative};" in out.extra.text
    assert "listen 9443 ssl;" in out.extra.text
    assert "listen 9443 ssl default_server;" in out.extra.text  # unknown SNI: the default
    assert route_conditions(out)["Accepted"] == ("True", "Accepted")


@pytest.mark.parametrize(
    ("listeners", "secrets", "grants", "reason"),
    [
        ([https("tls", 443, ("missing", ""))], [], [], "InvalidCertificateRef"),
        ([https("tls", 443)], [], [], "InvalidCertificateRef"),
        ([https("tls", 443, ("bad", ""))], [tls_secret("bad", CERT, CERT)], [],
         "InvalidCertificateRef"),
        ([https("tls", 443, ("site", "certs"))], [tls_secret("site", CERT, KEY, "certs")], [],
         "RefNotPermitted"),
        # a grant for another kind or from another namespace does not do
        ([https("tls", 443, ("site", "certs"))], [tls_secret("site", CERT, KEY, "certs")],
         [grant("certs", "HTTPRoute", "default", "Secret"),
          grant("certs", "Gateway", "other", "Secret")], "RefNotPermitted"),
        ([https("tls", 443, ("site", "certs"))], [tls_secret("site", CERT, KEY, "certs")],
         [grant("certs", "Gateway", "default", "Secret", "site")], "ResolvedRefs"),
    ],
)  # fmt: skip
def test_certificate_refs_resolve_or_say_why(
    listeners: list[JSON], secrets: list[JSON], grants: list[JSON], reason: str
) -> None:
    out = render_gateways([gateway("gw", *listeners)], [], [], [], CFG, secrets=secrets,
                          grants=grants)  # fmt: skip
    conds = listener_conditions(out, "tls")
    assert conds["ResolvedRefs"][1] == reason
    ok = reason == "ResolvedRefs"
    assert conds["Programmed"] == (("True", "Programmed") if ok else ("False", "Invalid"))
    assert gateway_conditions(out) == (
        {"Accepted": ("True", "Accepted"), "Programmed": ("True", "Programmed")}
        if ok
        else {"Accepted": ("False", "ListenersNotValid"), "Programmed": ("False", "Invalid")}
    )
    assert ("ssl_certificate" in out.extra.text) == ok


def test_listener_validation_reasons() -> None:
    kinds = listener("kinds", 8082, "k.example.com")
    kinds["allowedRoutes"]["kinds"] = [{"kind": "TCPRoute"}]
    gw = gateway(
        "gw",
        listener("a", 8080, "x.example.com"),
        listener("b", 8080, "x.example.com"),  # same port and hostname
        listener("c", 8081),
        https("d", 8081, ("site", "")),  # one port, two protocols
        https("e", 8443, ("site", ""), hostname="e.example.com", mode="Passthrough"),
        {**listener("f", 9000), "protocol": "TCP"},
        kinds,
        listener("ok", 8083),
    )
    out = render_gateways([gw], [http_route("r", route_rule(ref("web")))], [service("web")], [],
                          CFG, secrets=[tls_secret("site", CERT, KEY)])  # fmt: skip
    expect = {
        "a": ("Conflicted", "True", "HostnameConflict"),
        "b": ("Conflicted", "True", "HostnameConflict"),
        "c": ("Conflicted", "True", "ProtocolConflict"),
        "d": ("Conflicted", "True", "ProtocolConflict"),
        "e": ("Accepted", "False", "UnsupportedValue"),
        "f": ("Accepted", "False", "UnsupportedProtocol"),
        "kinds": ("ResolvedRefs", "False", "InvalidRouteKinds"),
    }
    for name, (kind, state, reason) in expect.items():
        conds = listener_conditions(out, name)
        assert conds[kind] == (state, reason), (name, conds)
        assert conds["Programmed"] == ("False", "Invalid") or name == "kinds", (name, conds)
    (status,) = out.gateways.values()
    by_name = {li["name"]: li for li in status["listeners"]}
    assert by_name["kinds"]["supportedKinds"] == [] and by_name["kinds"]["attachedRoutes"] == 0
    assert by_name["ok"]["attachedRoutes"] == 1
    assert gateway_conditions(out) == {
        "Accepted": ("True", "ListenersNotValid"),
        "Programmed": ("True", "Programmed"),
    }


def test_cross_namespace_backends_need_a_reference_grant() -> None:
    route = http_route("r", route_rule(ref("web") | {"namespace": "apps"}))
    svc = service("web", namespace="apps")
    gw = gateway("gw", listener("http", 8080))
    out = render_gateways([gw], [route], [svc], [], CFG)
    assert route_conditions(out)["ResolvedRefs"] == ("False", "RefNotPermitted")
    wrong = grant("apps", "HTTPRoute", "default", "Service", "api")  # another service
    out = render_gateways([gw], [route], [svc], [], CFG, grants=[wrong])
    assert route_conditions(out)["ResolvedRefs"] == ("False", "RefNotPermitted")
    out = render_gateways([gw], [route], [svc], [], CFG,
                          grants=[grant("apps", "HTTPRoute", "default", "Service")])  # fmt: skip
    assert route_conditions(out)["ResolvedRefs"] == ("True", "ResolvedRefs")


def test_allowed_routes_from_namespaces_with_a_selector() -> None:
    selecting = listener("http", 8080, allowed="Selector")
    selecting["allowedRoutes"]["namespaces"]["selector"] = {"matchLabels": {"gw": "yes"}}
    gw = gateway("gw", selecting, namespace="infra")
    routes = [
        http_route(n, route_rule(ref("web")), namespace=n, gateway_namespace="infra")
        for n in ("team-a", "team-b")
    ]
    namespaces = {
        "team-a": {"metadata": {"name": "team-a", "labels": {"gw": "yes"}}},
        "team-b": {"metadata": {"name": "team-b", "labels": {"gw": "no"}}},
    }
    out = render_gateways([gw], routes, [], [], CFG, namespaces=namespaces)
    accepted = {k[0]: v[0]["conditions"][0]["reason"] for k, v in out.routes.items()}
    assert accepted == {"team-a": "Accepted", "team-b": "NotAllowedByListeners"}


class _Name(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = f"{self.server.name} {self.path}\n".encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def tls_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    if not os.path.exists(NGINX):
        pytest.skip("nginx is not installed")
    backends = []
    for name in ("web", "api"):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Name)
        srv.name = name  # type: ignore[attr-defined]
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        backends.append(srv)
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
    port = free_port()
    PLAIN[0] = free_port()
    other_cert, other_key = key_pair("api.example.com")
    secrets = [tls_secret("secure", CERT, KEY), tls_secret("api", other_cert, other_key, "certs")]
    gw = gateway(
        "gw",
        https("secure", port, ("secure", ""), hostname="secure.example.com"),
        https("api", port, ("api", "certs"), hostname="api.example.com"),
        listener("plain", PLAIN[0], "half.example.com"),
    )
    routes = [
        http_route("web", route_rule(ref("web")), section="secure"),
        http_route("api", route_rule(ref("api")), section="api"),
        http_route("half", route_rule(ref("web"), ref("missing")), section="plain"),
    ]
    svcs = [service("web"), service("api")]
    slices = [
        endpoint_slice(srv.name, ["127.0.0.1"], port=srv.server_address[1])  # type: ignore[attr-defined]
        for srv in backends
    ]
    grants = [grant("certs", "Gateway", "default", "Secret", "api")]
    gws = render_gateways([gw], routes, svcs, slices, cfg, secrets=secrets, grants=grants)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(nginx.apply(render([], svcs, slices, [], cfg, gws.extra)))
    try:
        yield port
    finally:
        loop.run_until_complete(nginx.stop())
        loop.close()
        for srv in backends:
            srv.shutdown()


def test_https_listeners_answer_by_sni_with_their_certificates(tls_port: int) -> None:
    assert served_cn(tls_port, "secure.example.com") == "secure.example.com"
    assert served_cn(tls_port, "api.example.com") == "api.example.com"
    assert get("secure.example.com", "/x", tls_port, https=True) == (200, "web /x\n", "")
    assert get("api.example.com", "/y", tls_port, https=True) == (200, "api /y\n", "")
    # a name no listener has: the default certificate, and 404
    assert served_cn(tls_port, "nobody.example.com") != "secure.example.com"
    assert get("nobody.example.com", "/", tls_port, https=True)[0] == 404


def test_a_configuration_nginx_refuses_leaves_gatewaysnot_programmed() -> None:
    out = render_gateways([gateway("gw", listener("http", 8080))], [], [], [], CFG)
    refused = not_programmed(out, "bind() to 0.0.0.0:80 failed")
    (status,) = refused.gateways.values()
    for conditions in (status["conditions"], status["listeners"][0]["conditions"]):
        programmed = next(c for c in conditions if c["type"] == "Programmed")
        assert (programmed["status"], programmed["reason"]) == ("False", "Invalid")
        assert "bind() to 0.0.0.0:80 failed" in programmed["message"]
    assert gateway_conditions(out)["Programmed"] == ("True", "Programmed")  # a copy


def test_an_invalid_backends_share_of_requests_answers_500(tls_port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", PLAIN[0], timeout=10)
    try:  # one keep-alive connection: one worker's exact weighted round-robin
        statuses = []
        for _ in range(20):
            conn.request("GET", "/", headers={"Host": "half.example.com"})
            resp = conn.getresponse()
            resp.read()
            statuses.append(resp.status)
    finally:
        conn.close()
    assert sorted(statuses) == [200] * 10 + [500] * 10, statuses


def test_a_port_nginx_cannot_bind_is_unavailable_and_left_out() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        assert not port_bindable("127.0.0.1", busy)
        assert port_bindable("127.0.0.1", free_port())
    gw = gateway("gw", listener("busy", busy), listener("free", 8090))
    out = render_gateways([gw], [http_route("r", route_rule(ref("web")))], [service("web")], [],
                          CFG, unavailable_ports={busy})  # fmt: skip
    assert listener_conditions(out, "busy")["Accepted"] == ("False", "PortUnavailable")
    assert listener_conditions(out, "busy")["Programmed"] == ("False", "Invalid")
    assert f"listen {busy}" not in out.extra.text and "listen 8090" in out.extra.text
    assert out.ports == {8090}


@pytest.mark.parametrize(
    ("wanted", "accepted", "programmed"),
    [
        ([{"value": "127.0.0.1"}], ("True", "Accepted"), ("True", "Programmed")),
        ([{"type": "IPAddress", "value": "10.9.9.9"}], ("True", "Accepted"),
         ("False", "AddressNotAssigned")),
        ([{"type": "Hostname", "value": "gw.example.com"}], ("False", "UnsupportedAddress"),
         ("False", "UnsupportedAddress")),
    ],
)  # fmt: skip
def test_gateway_spec_addresses(
    wanted: list[JSON], accepted: tuple[str, str], programmed: tuple[str, str]
) -> None:
    gw = gateway("gw", listener("http", 8090))
    gw["spec"]["addresses"] = wanted
    out = render_gateways([gw], [http_route("r", route_rule(ref("web")))], [service("web")], [],
                          CFG, addresses=["127.0.0.1"])  # fmt: skip
    assert gateway_conditions(out) == {"Accepted": accepted, "Programmed": programmed}
    served = programmed[0] == "True"
    assert listener_conditions(out, "http")["Programmed"][0] == programmed[0]
    assert ("listen 8090" in out.extra.text) == served


def test_listeners_of_different_gateways_conflict_on_one_nginx_the_oldest_wins() -> None:
    old = gateway("old", listener("http", 8090, "a.example.com"))
    new = gateway(
        "new",
        listener("same-host", 8090, "a.example.com"),
        listener("other-host", 8090, "b.example.com"),
    )
    tls = gateway("tls", https("tls", 8090, ("site", ""), hostname="c.example.com"))
    for gw, month in ((old, 1), (new, 2), (tls, 3)):
        gw["metadata"]["creationTimestamp"] = f"2026-0{month}-01T00:00:00Z"
    out = render_gateways([tls, new, old], [], [], [], CFG,
                          secrets=[tls_secret("site", CERT, KEY)])  # fmt: skip

    def conflicted(gw: str, name: str) -> tuple[str, str]:
        (li,) = (x for x in out.gateways[("default", gw)]["listeners"] if x["name"] == name)
        return next((c["status"], c["reason"]) for c in li["conditions"]
                    if c["type"] == "Conflicted")  # fmt: skip

    assert conflicted("old", "http") == ("False", "NoConflicts")
    assert conflicted("new", "same-host") == ("True", "HostnameConflict")
    assert conflicted("new", "other-host") == ("False", "NoConflicts")
    assert conflicted("tls", "tls") == ("True", "ProtocolConflict")
