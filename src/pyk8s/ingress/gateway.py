"""Gateway API (gateway.networking.k8s.io/v1) Gateways and HTTPRoutes rendered onto the
same nginx the Ingress renderer configures.

Pure, like ``render.py``, whose backend resolution (Service port → ready EndpointSlice
endpoints) and configuration assembly it shares: this module turns Gateways of our
GatewayClass and the HTTPRoutes attached to them into a :class:`~.render.Extra` block
(upstreams, ``map``\\ s and ``server``\\ s) that ``render()`` adds to the Ingress servers,
plus the status conditions the controller writes back.

Matching. An HTTPRoute match (path Exact/PathPrefix/RegularExpression, method, headers
and query parameters Exact/RegularExpression, full matches) needs more than nginx
``location``\\ s can express, so each
(listener port, hostname) server has one ``map`` whose source is the request's method,
the headers any rule names, the raw query string and the normalized path, separated by
newlines (which none of them can contain unescaped), and whose regular expressions,
one per match, are written in the Gateway API's precedence order: Exact path, then the
longest prefix, then a method, then the most header matches, then the most query
parameter matches, then the oldest route (creationTimestamp, then namespace/name), then
rule and match order. nginx checks map regexes in the order they appear, so the first
that matches is the rule the spec picks. ``location /`` rewrites to an internal location
per rule, which applies the rule's filters and proxies the original ``$request_uri``.

Traffic splitting: a rule with several weighted backendRefs gets one upstream whose
servers carry weights (the backend's weight shared among its ready endpoints); nginx's
smooth weighted round-robin then gives the exact ratio per worker, where split_clients
would only give it on average. An invalid backendRef's share goes to a server answering
500 on :data:`SINK_ADDRESS` (the spec's rule), all of it when no backend is valid.

Filters: RequestHeaderModifier, ResponseHeaderModifier (``proxy_hide_header`` +
``add_header``; nginx's own Server and Date headers stay), RequestRedirect and URLRewrite
(hostname; path ReplaceFullPath, or ReplacePrefixMatch on the raw path the match's prefix
starts, computed in the rule's location), RequestMirror (nginx's ``mirror``: a copy of
each request to the mirror's backend, its answer ignored). Not: ExtensionRef, CORS.

Listeners: HTTP, and HTTPS terminating TLS with the first of its ``certificateRefs`` (a
``kubernetes.io/tls`` Secret; one SNI server per hostname). A Secret in another
namespace, like a backendRef to a Service in another namespace, needs a ReferenceGrant
there. Each listener is validated as upstream's conformance suite expects (Accepted,
Programmed, ResolvedRefs, Conflicted with their reasons); only valid ones are served.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyk8s.api.selectors import SelectorError, label_selector_from_dict
from pyk8s.ingress.render import (
    Extra,
    RenderConfig,
    _index,
    certificate_file,
    certificate_problem,
    ready_servers,
    service_port,
)

__all__ = [
    "CONTROLLER_NAME",
    "GROUP",
    "GatewayRendered",
    "render_gateways",
]

Obj = Mapping[str, Any]
GROUP = "gateway.networking.k8s.io"
CONTROLLER_NAME = "pyk8s.io/gateway-controller"
#: (type, status, reason, message)
Condition = tuple[str, str, str, str]

_HOST = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_PATH = re.compile(r"^/[A-Za-z0-9._~!&'()*+,=:@/%-]*$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,256}$")
# no quote, backslash, '$', ';', braces or control characters: nothing reaches nginx's syntax
_VALUE = re.compile(r"^[A-Za-z0-9 ._~!&'()*+,=:@/%#?\[\]|<>^`-]{0,4096}$")
# a RegularExpression value: printable, no quote (it goes into a quoted nginx string)
_REGEX = re.compile(r"^[\x21\x23-\x7e ]+$")
_QUERY_NAME = re.compile(r"^[A-Za-z0-9._~-]{1,256}$")
_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
_NAME_CHARS = re.compile(r"[^a-z0-9-]")
#: where the server answering 500 for invalid backends listens (loopback, never routed)
SINK_ADDRESS = "127.0.0.2"
_PROXY_HEADERS = (
    ("Host", "$host"),
    ("Upgrade", "$http_upgrade"),
    ("Connection", "$proxy_connection"),
    ("X-Real-IP", "$remote_addr"),
    ("X-Forwarded-For", "$proxy_add_x_forwarded_for"),
    ("X-Forwarded-Host", "$host"),
    ("X-Forwarded-Proto", "$scheme"),
)


@dataclass
class GatewayRendered:
    extra: Extra
    #: (namespace, name) → Gateway status (conditions without times, addresses, listeners)
    gateways: dict[tuple[str, str], dict[str, Any]]
    #: (namespace, name) → per-parent status entries for the HTTPRoute
    routes: dict[tuple[str, str], list[dict[str, Any]]]
    #: the ports nginx listens on for the programmed listeners
    ports: frozenset[int] = frozenset()


@dataclass(frozen=True)
class _Match:
    path_type: str
    path: str
    method: str
    headers: tuple[tuple[str, str], ...]
    query: tuple[tuple[str, str], ...]


@dataclass
class _Action:
    upstream: str = ""
    status: int = 0
    redirect: str = ""
    redirect_code: int = 302
    set_headers: list[tuple[str, str]] = field(default_factory=list)
    add_headers: list[tuple[str, str]] = field(default_factory=list)
    remove_headers: list[str] = field(default_factory=list)
    response_set: list[tuple[str, str]] = field(default_factory=list)
    response_add: list[tuple[str, str]] = field(default_factory=list)
    response_remove: list[str] = field(default_factory=list)
    #: URLRewrite hostname (the Host header sent upstream)
    rewrite_host: str = ""
    #: the path a redirect or rewrite gives: "" (unchanged), "full" or "prefix"
    path_mode: str = ""
    path_value: str = ""
    #: the matched prefix ReplacePrefixMatch replaces (per match)
    prefix: str = ""
    #: rules[].timeouts (request, else backendRequest), milliseconds; 0: nginx's defaults
    timeout_ms: int = 0
    #: RequestMirror: the upstreams each request is copied to (answers ignored)
    mirrors: list[str] = field(default_factory=list)


@dataclass
class _Entry:
    order: tuple[Any, ...]
    match: _Match
    action: _Action


@dataclass
class _Server:
    port: int
    hostname: str
    entries: list[_Entry] = field(default_factory=list)
    #: the certificate file of an HTTPS listener ("" for HTTP)
    certificate: str = ""


@dataclass
class _Listener:
    """A listener as validated: its status conditions and what serving it needs."""

    conditions: list[Condition]
    #: served (Programmed=True)
    ok: bool
    certificate: str = ""
    kinds: list[dict[str, str]] = field(default_factory=list)


def granted(
    grants: Iterable[Obj], from_kind: str, from_ns: str, to_kind: str, to_ns: str, to_name: str
) -> bool:
    """Whether a ReferenceGrant in ``to_ns`` lets ``from_kind`` objects of ``from_ns``
    (Gateway API kinds) refer to the core ``to_kind`` object ``to_name``."""
    for grant in grants:
        if (grant.get("metadata") or {}).get("namespace") != to_ns:
            continue
        spec = grant.get("spec") or {}
        if not any(
            f.get("group") == GROUP and f.get("kind") == from_kind and f.get("namespace") == from_ns
            for f in spec.get("from") or []
        ):
            continue
        if any(
            (t.get("group") or "") == ""
            and t.get("kind") == to_kind
            and (not t.get("name") or t.get("name") == to_name)
            for t in spec.get("to") or []
        ):
            return True
    return False


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _age(obj: Obj) -> tuple[str, str, str]:
    """Oldest first: creationTimestamp, then namespace/name."""
    return (str((obj.get("metadata") or {}).get("creationTimestamp") or ""), *_key(obj))


def _unresolved(reason: str, message: str) -> Condition:
    return ("ResolvedRefs", "False", reason, message)


def _generation(obj: Obj) -> int:
    return int((obj.get("metadata") or {}).get("generation") or 0)


def _hostnames(listener_host: str, route_hosts: Sequence[str]) -> list[str]:
    """The hostnames a route serves on a listener: the intersection of both (a wildcard
    on one side takes the other's more specific name); none in common → empty."""
    if not route_hosts:
        return [listener_host]
    if not listener_host:
        return list(route_hosts)
    out: list[str] = []
    for h in route_hosts:
        if h == listener_host or (listener_host.startswith("*.") and h.endswith(listener_host[1:])):
            out.append(h)
        elif h.startswith("*.") and listener_host.endswith(h[1:]):
            out.append(listener_host)
    return out


def _regex(value: str) -> str | None:
    """A user's RegularExpression as a map regex fragment (no newline-crossing ``.``,
    ``^``/``$`` at the field's ends), or None if it cannot go into nginx.conf safely or
    does not compile."""
    if not value or len(value) > 1024 or not _REGEX.match(value) or "\\\\" in value:
        return None
    try:
        re.compile(value)
    except re.error:
        return None
    # multi-line: a user's ^ and $ anchor at the field's ends (fields are lines)
    return f"(?m-s:{value})"


def _match(raw: Obj) -> _Match | str:
    """A validated match (header, query and RegularExpression path values as regex
    fragments), or why it is not supported."""
    path = raw.get("path") or {}
    path_type = str(path.get("type") or "PathPrefix")
    value = str(path.get("value") or "/")
    if path_type == "RegularExpression":
        fragment = _regex(value)
        if fragment is None:
            return f"path regular expression {value!r} is not supported"
        value = fragment
    elif path_type not in ("Exact", "PathPrefix") or not _PATH.match(value):
        return f"path {value!r} ({path_type}) is not supported"
    method = str(raw.get("method") or "")
    if method and method not in _METHODS:
        return f"method {method!r} is not supported"
    headers: list[tuple[str, str]] = []
    for h in raw.get("headers") or []:
        name, val = str(h.get("name") or ""), str(h.get("value") or "")
        kind = h.get("type") or "Exact"
        if kind not in ("Exact", "RegularExpression") or not _HEADER_NAME.match(name):
            return f"header match {name!r} is not supported"
        fragment = _regex(val) if kind == "RegularExpression" else (
            re.escape(val) if _VALUE.match(val) else None)  # fmt: skip
        if fragment is None:
            return f"header match {name!r}: value is not supported"
        headers.append((name.lower(), fragment))
    query: list[tuple[str, str]] = []
    for q in raw.get("queryParams") or []:
        name, val = str(q.get("name") or ""), str(q.get("value") or "")
        kind = q.get("type") or "Exact"
        if kind not in ("Exact", "RegularExpression") or not _QUERY_NAME.match(name):
            return f"query parameter match {name!r} is not supported"
        fragment = _regex(val) if kind == "RegularExpression" else (
            re.escape(val) if _VALUE.match(val) and "&" not in val else None)  # fmt: skip
        if fragment is None:
            return f"query parameter match {name!r}: value is not supported"
        query.append((name, fragment))
    if path_type == "PathPrefix" and value != "/":
        value = value.rstrip("/")
    return _Match(path_type, value, method, tuple(sorted(headers)), tuple(sorted(query)))


def precedence(match: _Match) -> tuple[int, int, int, int, int]:
    """The Gateway API's order among matches on one hostname (smaller first)."""
    # RegularExpression (whose place the spec leaves to implementations) after Exact
    # and before the prefixes, as Envoy Gateway
    return (
        {"Exact": 0, "RegularExpression": 1}.get(match.path_type, 2),
        -len(match.path),
        0 if match.method else 1,
        -len(match.headers),
        -len(match.query),
    )


class _Gateways:
    def __init__(
        self,
        cfg: RenderConfig,
        services: Iterable[Obj],
        slices: Iterable[Obj],
        secrets: Iterable[Obj],
        grants: Sequence[Obj],
    ) -> None:
        self.cfg = cfg
        index = _index(services, slices, secrets)
        self.services, self.slices, self.secrets = index.services, index.slices, index.secrets
        self.grants = grants
        self.upstreams: dict[str, list[str]] = {}
        self.servers: dict[tuple[int, str], _Server] = {}
        #: certificate files by path relative to the prefix
        self.files: dict[str, bytes] = {}
        #: invalid backends' share goes to a server answering 500 on SINK_ADDRESS at
        #: a port nginx listens on anyway (a programmed listener's)
        self.sink_port = 0
        self.sink_used = False

    def listener(
        self, gw: Obj, listener: Obj, conflict: Condition | None, unavailable: Collection[int]
    ) -> _Listener:
        """Validate one listener (upstream's listener conditions and reasons)."""
        protocol = str(listener.get("protocol") or "")
        ns = _key(gw)[0]
        accepted: Condition = ("Accepted", "True", "Accepted", "listener accepted")
        resolved: Condition = ("ResolvedRefs", "True", "ResolvedRefs", "all references resolved")
        certificate = ""
        if protocol not in ("HTTP", "HTTPS"):
            accepted = (
                "Accepted", "False", "UnsupportedProtocol",
                f"protocol {protocol} is not supported (HTTP and HTTPS only)",
            )  # fmt: skip
        elif int(listener.get("port") or 0) in unavailable:
            accepted = (
                "Accepted", "False", "PortUnavailable",
                f"port {listener.get('port')} is in use by another process or not permitted",
            )  # fmt: skip
        elif protocol == "HTTPS":
            tls = listener.get("tls") or {}
            if (tls.get("mode") or "Terminate") != "Terminate":
                accepted = (
                    "Accepted", "False", "UnsupportedValue",
                    "tls mode Passthrough is not supported on an HTTPS listener",
                )  # fmt: skip
            else:
                certificate, resolved = self.certificate(ns, tls.get("certificateRefs") or [])
        raw_kinds = (listener.get("allowedRoutes") or {}).get("kinds")
        kinds = [{"group": GROUP, "kind": "HTTPRoute"}]
        if raw_kinds:
            kinds = [
                {"group": GROUP, "kind": "HTTPRoute"}
                for k in raw_kinds
                if (k.get("group") if k.get("group") is not None else GROUP) == GROUP
                and k.get("kind") == "HTTPRoute"
            ][:1]
            if len(kinds) < len(raw_kinds) and resolved[1] == "True":
                resolved = (
                    "ResolvedRefs", "False", "InvalidRouteKinds",
                    "only HTTPRoute (gateway.networking.k8s.io) routes are supported",
                )  # fmt: skip
        conflicted = conflict or ("Conflicted", "False", "NoConflicts", "no conflicts")
        ok = (
            accepted[1] == "True"
            and conflicted[1] == "False"
            and (resolved[1] == "True" or resolved[2] == "InvalidRouteKinds")
        )
        programmed: Condition = (
            ("Programmed", "True", "Programmed", "listener programmed on nginx")
            if ok
            else ("Programmed", "False", "Invalid", "listener is not valid")
        )
        return _Listener([accepted, programmed, resolved, conflicted], ok, certificate, kinds)

    def certificate(self, ns: str, refs: Sequence[Obj]) -> tuple[str, Condition]:
        """The certificate file of an HTTPS listener (its first certificateRef: one per
        server in nginx) and the ResolvedRefs condition."""
        if not refs:
            return "", _unresolved("InvalidCertificateRef", "no certificateRefs")
        ref = refs[0]
        name, ref_ns = str(ref.get("name") or ""), str(ref.get("namespace") or ns)
        if (ref.get("kind") or "Secret") != "Secret" or (ref.get("group") or "") != "":
            return "", _unresolved(
                "InvalidCertificateRef", f"certificateRef {ref.get('kind')} is not a Secret"
            )
        if ref_ns != ns and not granted(self.grants, "Gateway", ns, "Secret", ref_ns, name):
            return "", _unresolved(
                "RefNotPermitted",
                f"certificateRef to secret {ref_ns}/{name} is not permitted by a ReferenceGrant",
            )
        secret = self.secrets.get((ref_ns, name))
        if secret is None:
            return "", _unresolved("InvalidCertificateRef", f"secret {ref_ns}/{name} not found")
        pem, problem = certificate_problem(secret)
        if pem is None:
            return "", _unresolved("InvalidCertificateRef", f"secret {ref_ns}/{name}: {problem}")
        relative, path = certificate_file(self.cfg, pem)
        self.files[relative] = pem
        return path, ("ResolvedRefs", "True", "ResolvedRefs", "all references resolved")

    def backends(self, ns: str, rule: Obj, name: str) -> tuple[_Action, Condition]:
        """The rule's weighted upstream, or a status when nothing can serve it."""
        weighted: list[str] = []
        problem: Condition | None = None
        total = invalid = 0
        for ref in rule.get("backendRefs") or []:
            kind, group = ref.get("kind") or "Service", ref.get("group") or ""
            weight = max(0, int(ref.get("weight", 1)))
            ref_ns = str(ref.get("namespace") or ns)
            svc_name = str(ref.get("name") or "")
            if kind != "Service" or group != "":
                problem = problem or _unresolved(
                    "InvalidKind", f"backendRef kind {group}/{kind} is not supported"
                )
                invalid += weight
                continue
            if ref_ns != ns and not granted(
                self.grants, "HTTPRoute", ns, "Service", ref_ns, svc_name
            ):
                problem = problem or _unresolved(
                    "RefNotPermitted",
                    f"backendRef to service {ref_ns}/{svc_name} is not permitted by a "
                    "ReferenceGrant",
                )
                invalid += weight
                continue
            svc = self.services.get((ref_ns, svc_name))
            port = service_port(svc, {"number": ref.get("port")}) if svc else None
            if svc is None or port is None:
                what = f"service {ref_ns}/{svc_name}" + ("" if svc is None else " port")
                problem = problem or _unresolved("BackendNotFound", f"{what} not found")
                invalid += weight
                continue
            servers = ready_servers(self.slices.get((ref_ns, svc_name), ()), port)
            if weight <= 0 or not servers:
                continue
            total += weight
            # the backend's weight shared among its endpoints (integers: scaled by 1,000)
            each = max(1, round(weight * 1000 / len(servers)))
            weighted += [f"{s} weight={each}" for s in servers]
        condition = problem or ("ResolvedRefs", "True", "ResolvedRefs", "all references resolved")
        if weighted and invalid and self.sink_port:
            # the invalid backends' share of the requests answers 500 (the spec's rule)
            weighted.append(f"{SINK_ADDRESS}:{self.sink_port} weight={invalid * 1000}")
            self.sink_used = True
        if not weighted:
            # no backend can take the request: 500 (the spec's answer for invalid refs),
            # 503 when valid backends have no ready endpoint
            return _Action(status=500 if problem or total == 0 else 503), condition
        self.upstreams[name] = weighted
        return _Action(upstream=name), condition

    def filters(self, rule: Obj, action: _Action, listener_port: int, ns: str, name: str) -> str:
        """Applies the rule's filters to ``action`` (``ns``: the route's namespace,
        ``name``: the rule's upstream name); the reason one is not supported."""
        for k, f in enumerate(rule.get("filters") or []):
            kind = f.get("type")
            if kind in ("RequestHeaderModifier", "ResponseHeaderModifier"):
                key = kind[0].lower() + kind[1:]
                request = kind == "RequestHeaderModifier"
                mod = f.get(key) or {}
                targets = (
                    ((action.set_headers, "set"), (action.add_headers, "add"))
                    if request
                    else ((action.response_set, "set"), (action.response_add, "add"))
                )
                for target, op in targets:
                    for h in mod.get(op) or []:
                        name, value = str(h.get("name") or ""), str(h.get("value") or "")
                        if not _HEADER_NAME.match(name) or not _VALUE.match(value):
                            return f"header {name!r} in {key} is not supported"
                        target.append((name, value))
                for name in mod.get("remove") or []:
                    if not _HEADER_NAME.match(str(name)):
                        return f"header {name!r} in {key} is not supported"
                    (action.remove_headers if request else action.response_remove).append(str(name))
            elif kind == "RequestRedirect":
                r = f.get("requestRedirect") or {}
                scheme = str(r.get("scheme") or "")
                host = str(r.get("hostname") or "")
                port = r.get("port")
                if scheme not in ("", "http", "https") or (host and not _HOST.match(host)):
                    return "requestRedirect scheme or hostname is not supported"
                problem = _path_modifier(r.get("path") or {}, action)
                if problem:
                    return f"requestRedirect path: {problem}"
                if port is None and not scheme and listener_port not in (80, 443):
                    port = listener_port
                default = {"http": 80, "https": 443}.get(scheme)
                shown = "" if port is None or int(port) == default else f":{int(port)}"
                action.redirect = f"{scheme or '$scheme'}://{host or '$host'}{shown}"
                action.redirect_code = int(r.get("statusCode") or 302)
                action.upstream, action.status = "", 0
            elif kind == "RequestMirror":
                ref = (f.get("requestMirror") or {}).get("backendRef") or {}
                mirror, _cond = self.backends(ns, {"backendRefs": [{**ref, "weight": 1}]},
                                              f"{name}-m{k}")  # fmt: skip
                if mirror.upstream:  # an invalid or empty mirror copies nothing
                    action.mirrors.append(mirror.upstream)
            elif kind == "URLRewrite":
                r = f.get("urlRewrite") or {}
                host = str(r.get("hostname") or "")
                if host and (host.startswith("*") or not _HOST.match(host)):
                    return "urlRewrite hostname is not supported"
                action.rewrite_host = host
                problem = _path_modifier(r.get("path") or {}, action)
                if problem:
                    return f"urlRewrite path: {problem}"
            else:
                return f"filter {kind!r} is not supported"
        return ""


_DURATION = re.compile(r"^(?:[0-9]{1,5}(?:h|m|s|ms)){1,4}$")
_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}


def _timeouts(rule: Obj, action: _Action) -> str:
    """``rules[].timeouts`` onto ``action`` (GEP-2257 durations; "0s" disables); why
    they are not supported. nginx has no whole-request timeout: ``request`` (or
    ``backendRequest``, the smaller) bounds each read from and write to the backend, and
    a backend that takes longer gets 504, as the spec says."""
    timeouts = rule.get("timeouts") or {}
    values = []
    for key in ("request", "backendRequest"):
        raw = str(timeouts.get(key) or "")
        if not raw:
            continue
        if not _DURATION.match(raw):
            return f"timeouts.{key} {raw!r} is not a duration"
        ms = sum(int(n) * _UNIT_MS[u] for n, u in re.findall(r"([0-9]+)(ms|h|m|s)", raw))
        if ms:
            values.append(ms)
    action.timeout_ms = min(values, default=0)
    return ""


def _path_modifier(path: Obj, action: _Action) -> str:
    """An HTTPPathModifier onto ``action``; why it is not supported."""
    if not path:
        return ""
    kind = path.get("type")
    value = str(
        path.get("replaceFullPath" if kind == "ReplaceFullPath" else "replacePrefixMatch") or ""
    )
    if kind not in ("ReplaceFullPath", "ReplacePrefixMatch") or not _PATH.match(value):
        return f"{kind} {value!r} is not supported"
    action.path_mode = "full" if kind == "ReplaceFullPath" else "prefix"
    action.path_value = value
    return ""


def _address_problem(gw: Obj, addresses: Sequence[str]) -> Condition | None:
    """Why the Gateway's ``spec.addresses`` cannot be honoured (this controller's
    addresses are the node's or its LoadBalancer Service's; a Gateway may only ask for
    those), or None."""
    for want in (gw.get("spec") or {}).get("addresses") or []:
        kind, value = want.get("type") or "IPAddress", str(want.get("value") or "")
        if kind != "IPAddress":
            return (
                "Accepted", "False", "UnsupportedAddress",
                f"address type {kind} is not supported (IPAddress only)",
            )  # fmt: skip
        if value not in addresses:
            return (
                "Programmed", "False", "AddressNotAssigned",
                f"address {value} cannot be assigned (this controller's: "
                f"{', '.join(addresses) or 'none'})",
            )  # fmt: skip
    return None


def _conflicts(listeners: Sequence[Obj]) -> dict[str, Condition]:
    """Listener name → Conflicted=True for listeners of one Gateway that share a port
    with another protocol (ProtocolConflict) or a port and hostname (HostnameConflict)."""
    protocols: dict[int, set[str]] = {}
    hosts: dict[tuple[int, str], int] = {}
    for li in listeners:
        port = int(li.get("port") or 0)
        protocols.setdefault(port, set()).add(str(li.get("protocol") or ""))
        where = (port, str(li.get("hostname") or ""))
        hosts[where] = hosts.get(where, 0) + 1
    out: dict[str, Condition] = {}
    for li in listeners:
        port = int(li.get("port") or 0)
        if len(protocols[port]) > 1:
            out[str(li.get("name"))] = (
                "Conflicted", "True", "ProtocolConflict",
                f"port {port} is used with different protocols",
            )  # fmt: skip
        elif hosts[(port, str(li.get("hostname") or ""))] > 1:
            out[str(li.get("name"))] = (
                "Conflicted", "True", "HostnameConflict",
                f"another listener on port {port} has the same hostname",
            )  # fmt: skip
    return out


def _admits(listener: Obj, gw_ns: str, route_ns: str, namespaces: Mapping[str, Obj]) -> bool:
    """Whether the listener's allowedRoutes.namespaces admits a route of ``route_ns``."""
    allowed = (listener.get("allowedRoutes") or {}).get("namespaces") or {}
    where = allowed.get("from") or "Same"
    if where == "All":
        return True
    if where == "Same":
        return route_ns == gw_ns
    if where == "Selector":
        labels = ((namespaces.get(route_ns) or {}).get("metadata") or {}).get("labels") or {}
        try:
            return label_selector_from_dict(allowed.get("selector")).matches(labels)
        except SelectorError:
            return False
    return False


def render_gateways(
    gateways: Sequence[Obj],
    routes: Sequence[Obj],
    services: Iterable[Obj],
    slices: Iterable[Obj],
    cfg: RenderConfig,
    addresses: Sequence[str] = (),
    namespaces: Mapping[str, Obj] | None = None,
    secrets: Iterable[Obj] = (),
    grants: Sequence[Obj] = (),
    unavailable_ports: Collection[int] = (),
) -> GatewayRendered:
    """``gateways`` are already filtered to our GatewayClass; ``routes`` are every
    HTTPRoute (their parentRefs say which Gateway they want); ``namespaces`` by name (for
    allowedRoutes selectors); ``grants`` every ReferenceGrant; ``unavailable_ports`` the
    listener ports nginx could not bind (their listeners get PortUnavailable and stay out
    of the configuration, so they cannot make a reload fail)."""
    g = _Gateways(cfg, services, slices, secrets, grants)
    namespaces = namespaces or {}
    by_key = {_key(gw): gw for gw in gateways}
    attached: dict[tuple[str, str, str], int] = {}
    validated: dict[tuple[str, str, str], _Listener] = {}
    #: Gateway → the condition saying why its spec.addresses cannot be given
    address_problems: dict[tuple[str, str], Condition] = {}
    #: across Gateways (one nginx), the oldest Gateway keeps a port's protocol and a
    #: (port, hostname): port → (protocol, gateway), (port, hostname) → gateway
    port_owner: dict[int, tuple[str, tuple[str, str]]] = {}
    host_owner: dict[tuple[int, str], tuple[str, str]] = {}
    for gw in sorted(gateways, key=_age):
        listeners = (gw.get("spec") or {}).get("listeners") or []
        conflicts = _conflicts(listeners)
        for li in listeners:
            port, host = int(li.get("port") or 0), str(li.get("hostname") or "")
            protocol = str(li.get("protocol") or "")
            owner = port_owner.setdefault(port, (protocol, _key(gw)))
            holder = host_owner.setdefault((port, host), _key(gw))
            if str(li.get("name")) in conflicts:
                continue
            if owner[0] != protocol:
                conflicts[str(li.get("name"))] = (
                    "Conflicted", "True", "ProtocolConflict",
                    f"port {port} is {owner[0]} on Gateway {'/'.join(owner[1])}",
                )  # fmt: skip
            elif holder != _key(gw):
                conflicts[str(li.get("name"))] = (
                    "Conflicted", "True", "HostnameConflict",
                    f"Gateway {'/'.join(holder)} has a listener on port {port} with this "
                    "hostname",
                )  # fmt: skip
        problem = _address_problem(gw, addresses)
        if problem is not None:
            address_problems[_key(gw)] = problem
        for listener in listeners:
            lkey = (*_key(gw), str(listener.get("name")))
            attached[lkey] = 0
            validated[lkey] = g.listener(gw, listener, conflicts.get(lkey[2]), unavailable_ports)
            if problem is not None and validated[lkey].ok:  # the Gateway is not served
                conds = validated[lkey].conditions
                conds[1] = ("Programmed", "False", "Invalid", problem[3])
                validated[lkey].ok = False
            if validated[lkey].ok:
                port = int(listener.get("port") or 0)
                g.sink_port = min(g.sink_port or port, port)
    route_status: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for route in sorted(routes, key=_age):
        ns, name = _key(route)
        spec = route.get("spec") or {}
        route_hosts = [str(h) for h in spec.get("hostnames") or [] if _HOST.match(str(h))]
        parents: list[dict[str, Any]] = []
        age = _age(route)
        # resolve every rule once (its backends and filters), then attach per listener
        resolved: list[tuple[int, Obj, _Action, Condition]] = []
        for i, rule in enumerate(spec.get("rules") or []):
            up = _NAME_CHARS.sub("-", f"gw-{ns}-{name}-r{i}")
            action, resolved_cond = g.backends(ns, rule, up)
            resolved.append((i, rule, action, resolved_cond))
        for ref in spec.get("parentRefs") or []:
            if (ref.get("kind") or "Gateway") != "Gateway" or (ref.get("group") or GROUP) != GROUP:
                continue
            gkey = (str(ref.get("namespace") or ns), str(ref.get("name") or ""))
            parent = by_key.get(gkey)
            if parent is None:
                continue  # not ours: another controller writes this parent's status
            accepted, reason, unsupported = False, "NoMatchingParent", ""
            taken: list[tuple[str, str, str]] = []
            pending: list[tuple[tuple[int, str], _Entry, str]] = []
            for listener in (parent.get("spec") or {}).get("listeners") or []:
                lname = str(listener.get("name"))
                if ref.get("sectionName") and ref.get("sectionName") != lname:
                    continue
                if ref.get("port") and int(ref["port"]) != int(listener.get("port") or 0):
                    continue
                lkey = (*gkey, lname)
                state = validated[lkey]
                if not state.ok:
                    continue
                if not state.kinds or not _admits(listener, gkey[0], ns, namespaces):
                    reason = "NotAllowedByListeners"
                    continue
                hosts = _hostnames(str(listener.get("hostname") or ""), route_hosts)
                if not hosts:
                    reason = "NoMatchingListenerHostname"
                    continue
                accepted = True
                taken.append(lkey)
                port = int(listener.get("port") or 0)
                for i, rule, action, _cond in resolved:
                    act = dataclasses.replace(
                        action, set_headers=[], add_headers=[], remove_headers=[],
                        response_set=[], response_add=[], response_remove=[], mirrors=[],
                    )  # fmt: skip
                    up = _NAME_CHARS.sub("-", f"gw-{ns}-{name}-r{i}")
                    unsupported = unsupported or g.filters(rule, act, port, ns, up)
                    unsupported = unsupported or _timeouts(rule, act)
                    for j, raw in enumerate(rule.get("matches") or [{}]):
                        m = _match(raw)
                        if isinstance(m, str):
                            unsupported = unsupported or m
                            continue
                        order = (*precedence(m), age, i, j)
                        if act.path_mode == "prefix":  # it replaces this match's prefix
                            act = dataclasses.replace(act, prefix=m.path)
                        pending += [
                            ((port, host), _Entry(order, m, act), state.certificate)
                            for host in hosts
                        ]
            if unsupported:
                # a route pyk8s cannot serve as written is not served at all
                accepted, reason = False, "UnsupportedValue"
            else:
                for lkey in taken:
                    attached[lkey] += 1
                for where, entry, cert in pending:
                    server = g.servers.setdefault(where, _Server(*where, certificate=cert))
                    server.entries.append(entry)
            conditions: list[Condition] = [
                ("Accepted", "True", "Accepted", "accepted by pyk8s")
                if accepted
                else ("Accepted", "False", reason, unsupported or "no listener takes this route"),
                next((c for *_, c in resolved if c[1] == "False"), None)
                or ("ResolvedRefs", "True", "ResolvedRefs", "all references resolved"),
            ]
            parents.append(
                {
                    "parentRef": {k: v for k, v in ref.items()},
                    "controllerName": CONTROLLER_NAME,
                    "conditions": [_condition(c, _generation(route)) for c in conditions],
                }
            )
        if parents:
            route_status[(ns, name)] = parents

    #: every programmed listener's port (whether it terminates TLS): nginx listens there
    #: even with no route attached yet
    ports: dict[int, bool] = {}
    gw_status: dict[tuple[str, str], dict[str, Any]] = {}
    for gw in gateways:
        for li in (gw.get("spec") or {}).get("listeners") or []:
            if validated[(*_key(gw), str(li.get("name")))].ok:
                port = int(li.get("port") or 0)
                ports[port] = ports.get(port, False) or li.get("protocol") == "HTTPS"
        gen = _generation(gw)
        listeners = []
        for listener in (gw.get("spec") or {}).get("listeners") or []:
            lkey = (*_key(gw), str(listener.get("name")))
            state = validated[lkey]
            listeners.append(
                {
                    "name": lkey[2],
                    "supportedKinds": state.kinds,
                    "attachedRoutes": attached[lkey],
                    "conditions": [_condition(c, gen) for c in state.conditions],
                }
            )
        states = [validated[(*_key(gw), li["name"])] for li in listeners]
        if all(st.ok for st in states):
            gw_accepted = ("Accepted", "True", "Accepted", "accepted by pyk8s")
        else:
            pairs = zip(listeners, states, strict=True)
            bad = ", ".join(li["name"] for li, st in pairs if not st.ok)
            gw_accepted = (
                "Accepted", "True" if any(st.ok for st in states) else "False",
                "ListenersNotValid", f"listeners not valid: {bad}",
            )  # fmt: skip
        gw_programmed = (
            ("Programmed", "True", "Programmed", "programmed on nginx")
            if any(st.ok for st in states)
            else ("Programmed", "False", "Invalid", "no valid listener")
        )
        problem = address_problems.get(_key(gw))
        if problem is not None:  # its listeners are left out for this reason alone
            gw_accepted = (
                problem if problem[0] == "Accepted" else ("Accepted", "True", "Accepted",
                                                          "accepted by pyk8s")
            )  # fmt: skip
            gw_programmed = ("Programmed", "False", problem[2], problem[3])
        gw_status[_key(gw)] = {
            "addresses": [{"type": "IPAddress", "value": a} for a in addresses],
            "conditions": [_condition(gw_accepted, gen), _condition(gw_programmed, gen)],
            "listeners": listeners,
        }
    text = _text(cfg, g.servers, ports)
    if g.sink_used:
        # with a wildcard listen on that port nginx tells the servers apart by local
        # address and binds nothing new; with a specific one it binds 127.0.0.2 too
        text += f"  server {{\n    listen {SINK_ADDRESS}:{g.sink_port};\n"
        text += '    return 500 "invalid backend\\n";\n  }\n'
    return GatewayRendered(
        extra=Extra(upstreams=g.upstreams, text=text, files=g.files),
        gateways=gw_status,
        routes=route_status,
        ports=frozenset(ports),
    )


def _condition(c: Condition, generation: int) -> dict[str, Any]:
    kind, status, reason, message = c
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def match_regex(m: _Match, header_names: Sequence[str]) -> str:
    """The map key for ``m`` against "method\\nheaders…\\nargs\\nuri" (as PCRE, with
    the newlines written as nginx's ``\\n`` string escape)."""
    headers = dict(m.headers)
    parts = [re.escape(m.method) if m.method else "[A-Z]+"]
    for h in header_names:
        parts.append(headers.get(h, "[^\\n]*"))
    args = "".join(f"(?=(?:[^\\n]*&)?{re.escape(k)}={v}(?:&|\\n))" for k, v in m.query)
    parts.append(args + "[^\\n]*")
    if m.path_type == "RegularExpression":
        path = m.path
    elif m.path_type == "Exact":
        path = re.escape(m.path)
    elif m.path == "/":
        path = "/.*"
    else:
        path = re.escape(m.path) + "(?:/.*)?"
    parts.append(path)
    return "(?s)^" + "\\n".join(parts) + "\\z"


def _text(
    cfg: RenderConfig, servers: Mapping[tuple[int, str], _Server], ports: Mapping[int, bool]
) -> str:
    out: list[str] = []
    for n, (port, host) in enumerate(sorted(servers)):
        server = servers[(port, host)]
        server.entries.sort(key=lambda e: e.order)
        names = sorted({h for e in server.entries for h, _ in e.match.headers})
        source = "\\n".join(
            ["$request_method", *[f"$http_{h.replace('-', '_')}" for h in names], "$args", "$uri"]
        )
        var = f"$pyk8s_gw_{n}"
        out.append(f'  map "{source}" {var} {{\n    default "none";\n')
        actions: list[_Action] = []
        for e in server.entries:
            if e.action not in actions:
                actions.append(e.action)
            out.append(f'    "~{match_regex(e.match, names)}" a{actions.index(e.action)};\n')
        out.append("  }\n")
        where = f"{cfg.bind_address}:{port}" if cfg.bind_address else str(port)
        out.append("  server {\n")
        if server.certificate:
            where += " ssl"
            cert = server.certificate
            out.append(f"    ssl_certificate {cert};\n    ssl_certificate_key {cert};\n")
        out.append(f"    server_name {host or '_'};\n    listen {where};\n")
        out.append(f"    location / {{ rewrite ^ /_pyk8s_gw_{n}/{var} last; }}\n")
        out.append(
            f'    location = /_pyk8s_gw_{n}/none {{ internal; return 404 "no route\\n"; }}\n'
        )
        for a, action in enumerate(actions):
            out.append(f"    location = /_pyk8s_gw_{n}/a{a} {{\n      internal;\n")
            out += [f"      {line}\n" for line in _action_lines(action, f"{n}_{a}")]
            out.append("    }\n")
        for mirror in sorted({m for action in actions for m in action.mirrors}):
            out.append(
                f"    location = /_pyk8s_gw_mirror/{mirror} {{\n      internal;\n"
                f"      proxy_pass http://{mirror}$request_uri;\n    }}\n"
            )
        out.append("  }\n")
        out += _add_maps(actions, n)
    tls_ports = {p for (p, _h), server in servers.items() if server.certificate}
    tls_ports |= {p for p, tls in ports.items() if tls}
    for port in sorted({p for p in {*ports, *(p for p, _h in servers)} if (p, "") not in servers}):
        if port in (cfg.http_port, cfg.https_port):
            continue  # the Ingress servers' catch-all is that port's default
        where = f"{cfg.bind_address}:{port}" if cfg.bind_address else str(port)
        # a host no route names gets 404, not the port's first server (over TLS with
        # the default certificate)
        ssl = " ssl" if port in tls_ports else ""
        out.append(f"  server {{\n    listen {where}{ssl} default_server;\n")
        if ssl:
            cert = cfg.default_certificate
            out.append(f"    ssl_certificate {cert};\n    ssl_certificate_key {cert};\n")
        out.append('    return 404 "no route\\n";\n  }\n')
    return "".join(out)


def _add_maps(actions: Sequence[_Action], n: int) -> list[str]:
    """``add`` appends to a header a request already has: a map per added header."""
    out = []
    for a, action in enumerate(actions):
        for k, (name, value) in enumerate(action.add_headers):
            var = f"$http_{name.lower().replace('-', '_')}"
            out.append(
                f'  map {var} $pyk8s_gw_add_{n}_{a}_{k} {{\n    "" "{value}";\n'
                f'    default "{var},{value}";\n  }}\n'
            )
    return out


def _action_lines(action: _Action, tag: str) -> list[str]:
    lines, uri = _uri_lines(action, tag)
    if action.redirect:
        return [*lines, f"return {action.redirect_code} {action.redirect}{uri};"]
    if action.status:
        return [f"return {action.status};"]
    headers = {k.lower(): (k, v) for k, v in _PROXY_HEADERS}
    if action.rewrite_host:
        headers["host"] = ("Host", action.rewrite_host)
    for name, value in action.set_headers:
        headers[name.lower()] = (name, value)
    for k, (name, _value) in enumerate(action.add_headers):
        headers[name.lower()] = (name, f"$pyk8s_gw_add_{tag}_{k}")
    for name in action.remove_headers:
        headers[name.lower()] = (name, "")
    lines += [f'proxy_set_header {n} "{v}";' for n, v in headers.values()]
    if action.timeout_ms:
        lines += [
            f"proxy_read_timeout {action.timeout_ms}ms;",
            f"proxy_send_timeout {action.timeout_ms}ms;",
        ]
    # the response: a set header replaces the backend's, an added one goes next to it
    hidden = {*action.response_remove, *(n for n, _ in action.response_set)}
    lines += [f"proxy_hide_header {n};" for n in sorted(hidden, key=str.lower)]
    lines += [
        f'add_header {n} "{v}" always;' for n, v in [*action.response_set, *action.response_add]
    ]
    lines += [f"mirror /_pyk8s_gw_mirror/{m};" for m in action.mirrors]
    return [*lines, f"proxy_pass http://{action.upstream}{uri};"]


def _uri_lines(action: _Action, tag: str) -> tuple[list[str], str]:
    """(lines computing the URI a redirect or the upstream gets, that URI)."""
    if action.path_mode == "full":
        return [], f"{action.path_value}$is_args$args"
    if action.path_mode != "prefix":
        return [], "$request_uri"
    # ReplacePrefixMatch: the matched prefix of the request's (raw) path replaced
    prefix = "" if action.prefix == "/" else re.escape(action.prefix)
    base = action.path_value.rstrip("/")
    path, query = f"$pyk8s_gw_path_{tag}", f"$pyk8s_gw_query_{tag}"
    return [
        f'set {path} "/";',
        f'set {query} "";',
        f'if ($request_uri ~ "^{prefix}(/[^?]*)?(\\?.*)?$") {{ set {path} "{base}$1"; '
        f"set {query} $2; }}",
        f'if ({path} = "") {{ set {path} "/"; }}',
    ], f"{path}{query}"
