"""The Gateway API renderer as plain functions: the spec's match precedence, listener
attachment (sectionName, allowedRoutes, hostnames), backend weights and the status
conditions routes and Gateways get."""

from __future__ import annotations

import re
from typing import Any

from pyk8s.ingress.gateway import render_gateways
from pyk8s.ingress.render import RenderConfig
from tests.ingress.gateway_objects import gateway, http_route, listener, ref, route_rule
from tests.ingress.objects import endpoint_slice, service

JSON = dict[str, Any]
CFG = RenderConfig(prefix="/p", default_certificate="/p/c.pem")


def _prefix(value: str) -> JSON:
    return {"path": {"type": "PathPrefix", "value": value}}


def _conditions(status: list[JSON]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status[0]["conditions"]}


def _backends(*names: str, endpoints: int = 1) -> tuple[list[JSON], list[JSON]]:
    addresses = [f"10.0.0.{i + 1}" for i in range(endpoints)]
    return [service(n) for n in names], [endpoint_slice(n, addresses) for n in names]


def test_map_entries_follow_the_specs_precedence() -> None:
    matches = [
        ("prefix-short", _prefix("/a")),
        ("query", {**_prefix("/a/b"), "queryParams": [{"name": "q", "value": "1"}]}),
        ("headers-1", {**_prefix("/a/b"), "headers": [{"name": "x", "value": "1"}]}),
        ("headers-2", {**_prefix("/a/b"), "headers": [{"name": "x", "value": "1"},
                                                       {"name": "y", "value": "2"}]}),
        ("method", {**_prefix("/a/b"), "method": "POST"}),
        ("prefix-long", _prefix("/a/b")),
        ("exact", {"path": {"type": "Exact", "value": "/a"}}),
    ]  # fmt: skip
    services, slices = _backends(*(n for n, _ in matches))
    routes = [http_route("r", *(route_rule(ref(n), matches=[m]) for n, m in matches))]
    text = render_gateways([gateway("gw", listener("http", 80))], routes, services, slices, CFG)
    body = text.extra.text
    # each map entry's action proxies to its rule's upstream: read the order back
    order = re.findall(r'"~.*?" (a\d+);', body)
    upstream = {a: re.search(rf"location = /_pyk8s_gw_0/{a} .*?proxy_pass http://([^$]+)\$",
                             body, re.S).group(1) for a in set(order)}  # type: ignore[union-attr]  # fmt: skip
    rule_index = [int(upstream[a].rsplit("-r", 1)[1]) for a in order]
    assert [matches[i][0] for i in rule_index] == [
        "exact", "method", "headers-2", "headers-1", "query", "prefix-long", "prefix-short"
    ]  # fmt: skip


def test_equal_matches_go_to_the_oldest_route() -> None:
    services, slices = _backends("old", "new")
    routes = [
        http_route("b-new", route_rule(ref("new")), created="2026-02-01T00:00:00Z"),
        http_route("a-old", route_rule(ref("old")), created="2026-01-01T00:00:00Z"),
    ]
    body = render_gateways([gateway("gw", listener("h", 80))], routes, services, slices, CFG)
    first = re.search(r'"~.*?" (a\d+);', body.extra.text).group(1)  # type: ignore[union-attr]
    assert f"location = /_pyk8s_gw_0/{first} " in body.extra.text
    block = body.extra.text.split(f"location = /_pyk8s_gw_0/{first} ")[1].split("}")[0]
    assert "gw-default-a-old-r0" in block


def test_weights_are_shared_among_a_backends_endpoints() -> None:
    services, slices = _backends("a", endpoints=2)
    s2, sl2 = _backends("b")
    routes = [http_route("r", route_rule(ref("a", weight=80), ref("b", weight=20)))]
    gw = gateway("gw", listener("h", 80))
    out = render_gateways([gw], routes, services + s2, slices + sl2, CFG)
    servers = out.extra.upstreams["gw-default-r-r0"]
    assert sorted(servers) == sorted(
        ["10.0.0.1:8080 weight=40000", "10.0.0.2:8080 weight=40000", "10.0.0.1:8080 weight=20000"]
    )


def test_route_status_reasons_and_attached_routes() -> None:
    services, slices = _backends("web")
    gw = gateway(
        "gw",
        listener("same", 80, "a.example.com"),
        listener("all", 81, "*.example.com", allowed="All"),
    )
    routes = [
        http_route("ok", route_rule(ref("web")), hostnames=("a.example.com",)),
        http_route("missing", route_rule(ref("nope")), section="same"),
        http_route("other-ns", route_rule(ref("web")), namespace="team",
                   gateway_namespace="default", section="same"),
        http_route("other-ns-all", route_rule(ref("web")), namespace="team",
                   gateway_namespace="default", section="all"),
        http_route("no-host", route_rule(ref("web")), hostnames=("b.other.org",)),
        http_route("bad-header", route_rule(ref("web"), requestHeaderModifier={
            "set": [{"name": "X", "value": 'a"; }'}]})),
    ]  # fmt: skip
    out = render_gateways([gw], routes, services, slices, CFG, addresses=["192.0.2.1"])
    st = {name: _conditions(out.routes[(ns, name)]) for ns, name in out.routes}
    assert st["ok"] == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}
    assert st["missing"]["ResolvedRefs"] == ("False", "BackendNotFound")
    assert st["missing"]["Accepted"] == ("True", "Accepted")
    assert st["other-ns"]["Accepted"] == ("False", "NotAllowedByListeners")
    assert st["other-ns-all"]["Accepted"] == ("True", "Accepted")
    assert st["no-host"]["Accepted"] == ("False", "NoMatchingListenerHostname")
    assert st["bad-header"]["Accepted"] == ("False", "UnsupportedValue")
    assert 'a"' not in out.extra.text
    status = out.gateways[("default", "gw")]
    assert status["addresses"] == [{"type": "IPAddress", "value": "192.0.2.1"}]
    attached = {lst["name"]: lst["attachedRoutes"] for lst in status["listeners"]}
    # same: ok, missing; all: ok (a.example.com fits *.example.com), other-ns-all
    assert attached == {"same": 2, "all": 2}


def test_regular_expressions_that_cannot_go_into_nginx_conf_are_unsupported() -> None:
    services, slices = _backends("web")
    for bad in ('a"b', "a\\\\b", "(unclosed", "x" * 1100, "a\nb"):
        route = http_route(
            "r", route_rule(ref("web"), matches=[{"path": {"type": "RegularExpression",
                                                            "value": bad}}])
        )  # fmt: skip
        out = render_gateways([gateway("gw", listener("http", 80))], [route], services, slices, CFG)
        assert _conditions(out.routes[("default", "r")])["Accepted"] == (
            "False", "UnsupportedValue"), bad  # fmt: skip
        assert "a0" not in out.extra.text
