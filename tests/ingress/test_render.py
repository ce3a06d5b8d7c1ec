"""The renderer: Ingress, Service, EndpointSlice and Secret objects in, nginx.conf out.

The text is read back into servers and locations (a small brace parser), so each test
states what nginx is told; test_nginx_routing.py then checks that nginx, given such a
text, routes requests the way the Ingress API says.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pyk8s.ingress.nginx import write_default_certificate
from pyk8s.ingress.render import Finding, RenderConfig, Rendered, owns, render
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

CFG = RenderConfig(prefix="/run/ing", default_certificate="/run/ing/ssl/default.pem")
JSON = dict[str, Any]


def blocks(text: str, keyword: str) -> list[tuple[str, str]]:
    """``keyword ARGS { BODY }`` blocks at the top level of ``text``: (ARGS, BODY)."""
    out: list[tuple[str, str]] = []
    pattern = re.compile(rf"(?m)^\s*{keyword}\b([^{{;]*)\{{")
    pos = 0
    while (m := pattern.search(text, pos)) is not None:
        depth, i = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        out.append((m.group(1).strip(), text[m.end() : i - 1]))
        pos = i
    return out


def servers(r: Rendered) -> dict[str, dict[str, str]]:
    """server_name → {location args → body} (the status server left out)."""
    ((_, http),) = blocks(r.config, "http")
    out: dict[str, dict[str, str]] = {}
    for _, body in blocks(http, "server"):
        name = re.search(r"server_name ([^;]+);", body)
        if name is None:
            continue
        out[name.group(1)] = dict(blocks(body, "location"))
    return out


def upstream_of(body: str) -> str:
    m = re.search(r"proxy_pass http://([^;]+);", body)
    if m:
        return m.group(1)
    m = re.search(r"return (\d+)", body)
    assert m, body
    return m.group(1)


def reasons(r: Rendered) -> list[tuple[str, str]]:
    return [(f.name, f.reason) for f in r.findings]


WEB = [service("web"), service("api"), service("other")]
SLICES = [
    endpoint_slice("web", ["10.42.0.5", "10.42.0.6"]),
    endpoint_slice("api", ["10.42.0.7"]),
    endpoint_slice("other", ["10.42.0.8"]),
]


def go(*ingresses: JSON, services: list[JSON] = WEB, slices: list[JSON] = SLICES,
       secrets: list[JSON] | None = None, cfg: RenderConfig = CFG) -> Rendered:  # fmt: skip
    return render(list(ingresses), services, slices, secrets or [], cfg)


# ---------------------------------------------------------------------------- paths


def test_path_types_become_exact_element_prefix_and_plain_prefix_locations() -> None:
    r = go(
        ingress(
            "i",
            rule(
                "a.example.com",
                path("/exact", "web", "Exact"),
                path("/foo", "api", "Prefix"),
                path("/bar/", "api", "Prefix"),
                path("/impl", "other", "ImplementationSpecific"),
            ),
        )
    )
    locs = servers(r)["a.example.com"]
    assert upstream_of(locs["= /exact"]) == "default-web-80"
    # Prefix matches by element: /foo itself and everything under /foo/, not /foobar
    assert upstream_of(locs["= /foo"]) == upstream_of(locs["/foo/"]) == "default-api-80"
    assert "/foo" not in locs
    # a trailing slash is the same element prefix
    assert upstream_of(locs["= /bar"]) == upstream_of(locs["/bar/"]) == "default-api-80"
    assert upstream_of(locs["/impl"]) == "default-other-80"
    # no rule for "/": the built-in default backend
    assert 'return 404 "default backend - 404' in locs["/"]
    assert r.findings == []


def test_prefix_root_is_the_hosts_catch_all() -> None:
    r = go(ingress("i", rule("a.example.com", path("/", "web"))))
    locs = servers(r)["a.example.com"]
    assert list(locs) == ["/"]
    assert upstream_of(locs["/"]) == "default-web-80"


def test_exact_takes_the_exact_match_and_prefix_the_rest_without_a_conflict() -> None:
    r = go(
        ingress("a", rule("h.example.com", path("/foo", "web", "Exact"))),
        ingress("b", rule("h.example.com", path("/foo", "api", "Prefix"))),
    )
    locs = servers(r)["h.example.com"]
    assert upstream_of(locs["= /foo"]) == "default-web-80"
    assert upstream_of(locs["/foo/"]) == "default-api-80"
    assert r.findings == []


def test_the_same_path_twice_goes_to_the_oldest_ingress_and_warns_the_other() -> None:
    r = go(
        ingress("new", rule("h.example.com", path("/x", "api")), created="2026-02-01T00:00:00Z"),
        ingress("old", rule("h.example.com", path("/x", "web")), created="2026-01-01T00:00:00Z"),
    )
    locs = servers(r)["h.example.com"]
    assert upstream_of(locs["= /x"]) == upstream_of(locs["/x/"]) == "default-web-80"
    assert reasons(r) == [("new", "Conflict")]
    assert "default/old" in r.findings[0].message


def test_prefix_beats_implementation_specific_on_the_same_location() -> None:
    r = go(
        ingress("a", rule("h.example.com", path("/x/", "api", "ImplementationSpecific"))),
        ingress(
            "b", rule("h.example.com", path("/x", "web", "Prefix")), created="2026-03-01T00:00:00Z"
        ),
    )
    assert upstream_of(servers(r)["h.example.com"]["/x/"]) == "default-web-80"
    assert reasons(r) == [("a", "Conflict")]


def test_rules_of_several_ingresses_for_one_host_share_its_server() -> None:
    r = go(
        ingress("a", rule("h.example.com", path("/a", "web"))),
        ingress("b", rule("h.example.com", path("/b", "api")), namespace="team"),
        services=[*WEB, service("api", namespace="team")],
        slices=[*SLICES, endpoint_slice("api", ["10.42.1.1"], namespace="team")],
    )
    locs = servers(r)["h.example.com"]
    assert upstream_of(locs["/a/"]) == "default-web-80"
    assert upstream_of(locs["/b/"]) == "team-api-80"
    assert r.upstreams["team-api-80"] == ["10.42.1.1:8080"]


def test_wildcard_host_matches_one_label_only() -> None:
    r = go(ingress("i", rule("*.example.com", path("/", "web"))))
    assert r"~^[^.]+\.example\.com$" in servers(r)


def test_rules_without_a_host_go_to_the_catch_all_server() -> None:
    r = go(ingress("i", rule("", path("/any", "web"))))
    catch_all = servers(r)["_"]
    assert upstream_of(catch_all["/any/"]) == "default-web-80"
    assert "default_server" in r.config


# ---------------------------------------------------------------------------- backends


def test_upstreams_are_the_ready_endpoints_on_the_resolved_target_port() -> None:
    svc = service("web", {"name": "web", "port": 80, "targetPort": "http-alt"})
    slices = [endpoint_slice("web", ["10.42.0.9", "10.42.0.5", "10.42.0.6"], port=9090,
                             port_name="web", not_ready=("10.42.0.6",))]  # fmt: skip
    r = go(
        ingress("i", rule("h.example.com", path("/", "web", port="web"))),
        services=[svc],
        slices=slices,
    )
    assert r.upstreams == {"default-web-80": ["10.42.0.5:9090", "10.42.0.9:9090"]}
    assert "server 10.42.0.5:9090" in r.config
    assert "10.42.0.6" not in r.config


def test_a_missing_service_or_port_answers_503_with_an_event() -> None:
    r = go(
        ingress(
            "i",
            rule(
                "h.example.com",
                path("/gone", "nosuch"),
                path("/port", "web", port=81),
                path("/named", "web", port="nope"),
            ),
        )
    )
    locs = servers(r)["h.example.com"]
    assert upstream_of(locs["/gone/"]) == "503"
    assert upstream_of(locs["/port/"]) == "503"
    assert upstream_of(locs["/named/"]) == "503"
    assert reasons(r) == [("i", "ServiceNotFound"), ("i", "PortNotFound"), ("i", "PortNotFound")]
    assert 'service "default/nosuch" not found' in r.findings[0].message
    assert "does not have port 81" in r.findings[1].message


def test_a_service_without_ready_endpoints_answers_503_without_an_event() -> None:
    r = go(
        ingress("i", rule("h.example.com", path("/", "web"))),
        slices=[endpoint_slice("web", ["10.42.0.5"], not_ready=("10.42.0.5",))],
    )
    assert upstream_of(servers(r)["h.example.com"]["/"]) == "503"
    assert r.findings == []
    assert r.upstreams == {}
    assert not blocks(blocks(r.config, "http")[0][1], "upstream")


def test_default_backend_of_the_cluster_and_of_an_ingresss_hosts() -> None:
    r = go(
        ingress("fallback", default_backend=backend("other")),
        ingress("i", rule("h.example.com", path("/app", "web")), default_backend=backend("api"),
                created="2026-02-01T00:00:00Z"),
        ingress("j", rule("j.example.com", path("/app", "web")), created="2026-02-01T00:00:00Z"),
    )  # fmt: skip
    s = servers(r)
    assert upstream_of(s["_"]["/"]) == "default-other-80"  # the oldest defaultBackend
    assert upstream_of(s["h.example.com"]["/"]) == "default-api-80"  # its own
    assert upstream_of(s["j.example.com"]["/"]) == "default-other-80"  # the cluster's
    assert r.findings == []


def test_without_a_default_backend_unmatched_requests_get_the_builtin_404() -> None:
    r = go(ingress("i", rule("h.example.com", path("/app", "web"))))
    assert 'return 404 "default backend - 404' in servers(r)["_"]["/"]


def test_a_second_cluster_default_backend_is_a_conflict() -> None:
    r = go(
        ingress("first", default_backend=backend("web")),
        ingress("second", default_backend=backend("api"), created="2026-05-01T00:00:00Z"),
    )
    assert upstream_of(servers(r)["_"]["/"]) == "default-web-80"
    assert reasons(r) == [("second", "Conflict")]


# ---------------------------------------------------------------------------- TLS


def test_tls_hosts_get_their_secrets_certificate_by_sni_and_redirect_http() -> None:
    cert, key = key_pair("secure.example.com")
    r = go(
        ingress(
            "i",
            rule("secure.example.com", path("/", "web")),
            rule("plain.example.com", path("/", "api")),
            tls=[{"hosts": ["secure.example.com"], "secretName": "secure-tls"}],
        ),
        secrets=[tls_secret("secure-tls", cert, key)],
    )
    ((name, pem),) = r.files.items()
    assert name.startswith("ssl/") and pem.startswith(cert.rstrip(b"\n")) and pem.endswith(key)
    ((_, http),) = blocks(r.config, "http")
    bodies = {re.search(r"server_name ([^;]+);", b).group(1): b  # type: ignore[union-attr]
              for _, b in blocks(http, "server") if "server_name" in b}  # fmt: skip
    assert f"ssl_certificate /run/ing/{name};" in bodies["secure.example.com"]
    assert "ssl_certificate " not in bodies["plain.example.com"]  # not on the HTTPS port
    assert f"ssl_certificate {CFG.default_certificate};" in bodies["_"]
    s = servers(r)
    assert "return 308 https://$host$request_uri;" in s["secure.example.com"]["/"]
    assert "return 308" not in s["plain.example.com"]["/"]
    assert r.findings == []


@pytest.mark.parametrize(
    ("secrets", "reason"),
    [
        ([], "SecretNotFound"),
        ([tls_secret("s", key_pair("x")[0], key_pair("x")[1])], "InvalidSecret"),  # other key
        ([{"metadata": {"name": "s", "namespace": "default"}, "data": {"tls.crt": "bm9wZQ==",
                                                                      "tls.key": "bm9wZQ=="}}],
         "InvalidSecret"),
    ],
)  # fmt: skip
def test_a_missing_or_invalid_secret_falls_back_to_the_default_certificate(
    secrets: list[JSON], reason: str
) -> None:
    r = go(
        ingress("i", rule("s.example.com", path("/", "web")),
                tls=[{"hosts": ["s.example.com"], "secretName": "s"}]),
        secrets=secrets,
    )  # fmt: skip
    assert reasons(r) == [("i", reason)]
    assert "using the default certificate" in r.findings[0].message
    assert r.files == {}
    default = f"ssl_certificate {CFG.default_certificate};"
    assert r.config.count(default) == 2  # the catch-all's and this host's
    assert r.config.count("ssl_certificate ") == 2
    assert "return 308" in servers(r)["s.example.com"]["/"]  # still a TLS host


def test_a_certificate_for_other_names_falls_back_to_the_default_certificate() -> None:
    wildcard = tls_secret("wild", *key_pair("*.example.com"))
    r = go(
        ingress(
            "i",
            rule("a.example.com", path("/", "web")),
            rule("a.b.example.com", path("/", "web")),
            tls=[{"hosts": ["a.example.com", "a.b.example.com"], "secretName": "wild"}],
        ),
        secrets=[wildcard],
    )
    ((name, _pem),) = r.files.items()
    assert f"ssl_certificate /run/ing/{name};" in r.config  # *.example.com: a.example.com
    assert reasons(r) == [("i", "InvalidSecret")]  # not a.b.example.com (one label only)
    assert "not valid for a.b.example.com; using the default certificate" in r.findings[0].message
    default = f"ssl_certificate {CFG.default_certificate};"
    assert r.config.count(default) == 2  # the catch-all's and a.b.example.com's


def test_ssl_redirect_annotations() -> None:
    cert, key = key_pair("a.example.com")
    r = go(
        ingress("off", rule("a.example.com", path("/", "web")),
                tls=[{"hosts": ["a.example.com"], "secretName": "a"}],
                annotations={"nginx.ingress.kubernetes.io/ssl-redirect": "false"}),
        ingress("forced", rule("b.example.com", path("/", "web")),
                annotations={"nginx.ingress.kubernetes.io/force-ssl-redirect": "true"}),
        secrets=[tls_secret("a", cert, key)],
        cfg=RenderConfig(prefix="/p", default_certificate="/p/d.pem", https_redirect_port=8443),
    )  # fmt: skip
    s = servers(r)
    assert "return 308" not in s["a.example.com"]["/"]
    assert "return 308 https://$host:8443$request_uri;" in s["b.example.com"]["/"]


# ---------------------------------------------------------------------------- annotations


def test_timeout_and_body_size_annotations_per_location() -> None:
    r = go(
        ingress("slow", rule("h.example.com", path("/slow", "web")),
                annotations={"nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
                             "nginx.ingress.kubernetes.io/proxy-send-timeout": "120",
                             "nginx.ingress.kubernetes.io/proxy-connect-timeout": "2",
                             "nginx.ingress.kubernetes.io/proxy-body-size": "8m"}),
        ingress("fast", rule("h.example.com", path("/fast", "web"))),
    )  # fmt: skip
    s = servers(r)["h.example.com"]
    for needle in ("proxy_read_timeout 3600s;", "proxy_send_timeout 120s;",
                   "proxy_connect_timeout 2s;", "client_max_body_size 8m;"):  # fmt: skip
        assert needle in s["/slow/"]
    assert "proxy_read_timeout 60s;" in s["/fast/"]
    assert "proxy_connect_timeout 5s;" in s["/fast/"]


def test_websocket_upgrades_are_passed_on() -> None:
    r = go(ingress("i", rule("h.example.com", path("/", "web"))))
    assert "proxy_http_version 1.1;" in r.config
    assert "proxy_set_header Upgrade $http_upgrade;" in r.config
    assert "proxy_set_header Connection $proxy_connection;" in r.config


@pytest.mark.parametrize(
    ("annotation", "value"),
    [("proxy-read-timeout", "60; include /etc/passwd"), ("proxy-body-size", "1m }")],
)
def test_annotation_values_cannot_inject_directives(annotation: str, value: str) -> None:
    r = go(ingress("i", rule("h.example.com", path("/", "web")),
                   annotations={f"nginx.ingress.kubernetes.io/{annotation}": value}))  # fmt: skip
    assert value not in r.config
    assert reasons(r) == [("i", "InvalidAnnotation")]


@pytest.mark.parametrize("bad", ["/a;b", "/a{", "/a b", '/a"'])
def test_paths_that_would_inject_directives_are_refused(bad: str) -> None:
    r = go(ingress("i", rule("h.example.com", path(bad, "web"), path("/ok", "web"))))
    assert bad not in r.config
    assert "/ok/" in servers(r)["h.example.com"]
    assert reasons(r) == [("i", "InvalidPath")]


def test_invalid_hosts_are_refused() -> None:
    bad, ok = rule("bad host;", path("/", "web")), rule("ok.example.com", path("/", "web"))
    r = go(ingress("i", bad, ok))
    assert "bad host" not in r.config
    assert reasons(r) == [("i", "InvalidHost")]


# ---------------------------------------------------------------------------- the whole


def test_the_hash_depends_on_the_content_not_the_order() -> None:
    a = ingress("a", rule("a.example.com", path("/", "web")))
    b = ingress("b", rule("b.example.com", path("/", "api")))
    assert go(a, b).hash == go(b, a).hash
    moved = [endpoint_slice("web", ["10.42.0.5"]), *SLICES[1:]]
    assert go(a, b).hash != go(a, b, slices=moved).hash
    assert go(a).hash in go(a).config


@pytest.mark.parametrize(
    ("spec_class", "annotation", "default", "ours"),
    [
        ("pyk8s", None, False, True),
        ("other", None, True, False),
        (None, "pyk8s", False, True),
        (None, "traefik", True, False),
        (None, None, True, True),
        (None, None, False, False),
    ],
)
def test_which_ingresses_are_ours(
    spec_class: str | None, annotation: str | None, default: bool, ours: bool
) -> None:
    annotations = {"kubernetes.io/ingress.class": annotation} if annotation else {}
    i = ingress("i", class_name=spec_class, annotations=annotations)
    assert owns(i, "pyk8s", default) is ours


def test_findings_name_the_ingress() -> None:
    r = go(ingress("i", rule("h.example.com", path("/", "nosuch")), namespace="team"))
    assert r.findings == [
        Finding("team", "i", "ServiceNotFound", 'service "team/nosuch" not found')
    ]


@pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
                    reason="nginx is not installed")  # fmt: skip
def test_nginx_accepts_a_config_with_every_feature(tmp_path: Path) -> None:
    for d in ("logs", "ssl", "temp"):
        (tmp_path / d).mkdir()
    write_default_certificate(tmp_path / "ssl" / "default.pem")
    cfg = RenderConfig(prefix=str(tmp_path), default_certificate=str(tmp_path / "ssl/default.pem"),
                       status_socket=str(tmp_path / "s.sock"))  # fmt: skip
    cert, key = key_pair("s.example.com")
    r = go(
        ingress("all", rule("s.example.com", path("/e", "web", "Exact"), path("/p", "api"),
                            path("/i", "other", "ImplementationSpecific"), path("/", "nosuch")),
                rule("*.example.com", path("/", "web")), rule("", path("/", "api")),
                tls=[{"hosts": ["s.example.com", "*.example.com"], "secretName": "s"}],
                default_backend=backend("other"),
                annotations={"nginx.ingress.kubernetes.io/proxy-read-timeout": "5"}),
        secrets=[tls_secret("s", cert, key)],
        cfg=cfg,
    )  # fmt: skip
    for relative, data in r.files.items():
        (tmp_path / relative).write_bytes(data)
    (tmp_path / "nginx.conf").write_text(r.config)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    done = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_only_tls_hosts_and_the_catch_all_listen_on_the_https_port() -> None:
    cert, key = key_pair("s.example.com")
    s, p = rule("s.example.com", path("/", "web")), rule("p.example.com", path("/", "web"))
    r = go(
        ingress("i", s, p, tls=[{"hosts": ["s.example.com"], "secretName": "s"}]),
        secrets=[tls_secret("s", cert, key)],
    )  # fmt: skip
    ((_, http),) = blocks(r.config, "http")
    https = {re.search(r"server_name ([^;]+);", b).group(1)  # type: ignore[union-attr]
             for _, b in blocks(http, "server") if f"listen {CFG.https_port} ssl" in b}  # fmt: skip
    assert https == {"_", "s.example.com"}
