"""Ingress, Service, EndpointSlice and Secret objects in, one ``nginx.conf`` out.

Pure: no I/O, no clock, so the routing rules (the part users depend on) are tested as
plain functions and the controller only writes what this returns. The rules are
ingress-nginx's, which are the Ingress API's documented ones:

* one ``server`` per host, every Ingress naming the host merged into it; a wildcard host
  ``*.example.com`` matches exactly one label (a regular-expression ``server_name``, since
  nginx's own ``*.`` matches any depth); rules without a host go to the catch-all server;
* ``Exact`` is ``location = /p``; ``Prefix`` matches by path element (``/foo`` matches
  ``/foo`` and ``/foo/bar``, not ``/foobar``): ``location = /foo`` plus ``location /foo/``;
  ``ImplementationSpecific`` is a plain nginx prefix (``location /foo``), as in
  ingress-nginx without ``use-regex``. nginx then gives an exact match first and the
  longest prefix next, which is the API's precedence. Two rules rendering the same
  location: Exact beats Prefix beats ImplementationSpecific, then the oldest Ingress wins,
  and the loser gets a warning;
* backends go straight to the ready endpoints of the Service's EndpointSlices (the
  Service port, named or numbered, resolved to the slice's port, i.e. the targetPort);
  a missing Service or port answers 503 for that path, with a warning; a Service with no
  ready endpoint answers 503;
* paths that match nothing go to the Ingress's ``spec.defaultBackend``, else the
  cluster's (the oldest Ingress with one), else a built-in 404;
* TLS from ``kubernetes.io/tls`` Secrets per host (SNI); a missing or invalid Secret
  falls back to the default certificate, with a warning; a TLS host redirects HTTP to
  HTTPS (308) unless ``nginx.ingress.kubernetes.io/ssl-redirect: "false"``;
  ``force-ssl-redirect: "true"`` redirects hosts without TLS too. Only TLS hosts listen
  on the HTTPS port (ingress-nginx serves every host there, with the default
  certificate): nginx builds one SSL context per server block, so 1,000 plain hosts
  would cost seconds per reload; HTTPS to a plain host reaches the catch-all server;
* WebSocket upgrades pass through; ``proxy-connect-timeout``, ``proxy-send-timeout``,
  ``proxy-read-timeout`` (seconds) and ``proxy-body-size`` annotations per location.

Everything an object contributes to the text is checked first (hosts, paths and
annotation values against strict patterns), so no object can inject nginx directives.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

__all__ = [
    "ANNOTATION_PREFIX",
    "Extra",
    "Finding",
    "RenderConfig",
    "Rendered",
    "certificate_file",
    "certificate_problem",
    "owns",
    "ready_servers",
    "render",
    "service_port",
]

Obj = Mapping[str, Any]

ANNOTATION_PREFIX = "nginx.ingress.kubernetes.io/"
CLASS_ANNOTATION = "kubernetes.io/ingress.class"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
WARNING = "Warning"

_HOST = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# RFC 3986 path characters without ';' (an nginx statement end), quotes, braces, spaces
_PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,=:@/%-]*$")
_SECONDS = re.compile(r"^[0-9]{1,6}$")
_SIZE = re.compile(r"^[0-9]{1,9}[kKmMgG]?$")
_NAME_CHARS = re.compile(r"[^a-z0-9-]")
_TYPE_RANK = {"Exact": 0, "Prefix": 1, "ImplementationSpecific": 2}
_DEFAULTS = {
    "proxy-connect-timeout": "5",
    "proxy-send-timeout": "60",
    "proxy-read-timeout": "60",
    "proxy-body-size": "1m",
}


#: nginx's own ports on the host: internal, the targets of the controller's LoadBalancer
#: Service (80/443 are what users see), so off the ports users give their own
#: LoadBalancer Services (8080, 8443, ...), beside ingress-nginx's other internal 10xxx
#: ports (10254 health, 10246 status)
HTTP_PORT, HTTPS_PORT = 10080, 10443


@dataclass(frozen=True)
class RenderConfig:
    """Where nginx lives and listens; paths are absolute (they go into the text)."""

    prefix: str
    default_certificate: str
    http_port: int = HTTP_PORT
    https_port: int = HTTPS_PORT
    #: empty: every address
    bind_address: str = ""
    #: the port clients use for HTTPS (the Service's 443), for the redirect's Location
    https_redirect_port: int = 443
    status_socket: str = ""
    worker_processes: str = "auto"


@dataclass(frozen=True)
class Finding:
    """Something to tell an Ingress's owner (an Event on it)."""

    namespace: str
    name: str
    reason: str
    message: str
    type: str = WARNING


@dataclass(frozen=True)
class Extra:
    """What another front-end (the Gateway API, gateway.py) adds to the same nginx:
    upstreams (name → "ip:port [weight=N]" servers) and http-level text (maps, servers)."""

    upstreams: Mapping[str, Sequence[str]] = field(default_factory=dict)
    text: str = ""
    #: files the text names (certificates), relative to the prefix
    files: Mapping[str, bytes] = field(default_factory=dict)


@dataclass
class Rendered:
    config: str
    #: files the config names, relative to the prefix (certificates), by content
    files: dict[str, bytes]
    findings: list[Finding]
    #: the hash the status endpoint answers once this config is live
    hash: str
    #: upstream name → its "ip:port" servers
    upstreams: dict[str, list[str]]


def owns(ingress: Obj, class_name: str, controller_is_default: bool) -> bool:
    """Whether this controller serves ``ingress``: its ``ingressClassName`` (or the old
    ``kubernetes.io/ingress.class`` annotation) names our class, or it names none and
    our IngressClass is the cluster's default."""
    spec = ingress.get("spec") or {}
    annotations = (ingress.get("metadata") or {}).get("annotations") or {}
    named = spec.get("ingressClassName") or annotations.get(CLASS_ANNOTATION)
    if named:
        return bool(named == class_name)
    return controller_is_default


# ---------------------------------------------------------------------------- inputs


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _age(obj: Obj) -> tuple[str, str, str]:
    """Oldest first: creationTimestamp, then namespace/name (RFC 3339 sorts as text)."""
    meta = obj.get("metadata") or {}
    return (str(meta.get("creationTimestamp") or ""), *_key(obj))


@functools.lru_cache(maxsize=1024)
def _certificate(crt_b64: str, key_b64: str) -> tuple[bytes | None, str]:
    try:
        crt = base64.b64decode(crt_b64, validate=True)
        key = base64.b64decode(key_b64, validate=True)
    except (binascii.Error, ValueError):
        return None, "tls.crt or tls.key is not base64"
    try:
        cert = x509.load_pem_x509_certificate(crt)
    except ValueError as err:
        return None, f"tls.crt is not a PEM certificate: {err}"
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as err:
        return None, f"tls.key is not a PEM private key: {err}"
    raw = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.PEM
    if cert.public_key().public_bytes(encoding, raw) != private.public_key().public_bytes(
        encoding, raw
    ):
        return None, "tls.key does not match the certificate in tls.crt"
    return crt.rstrip(b"\n") + b"\n" + key, ""


@functools.lru_cache(maxsize=1024)
def certificate_names(pem: bytes) -> tuple[str, ...]:
    """The DNS names a certificate is for: its subjectAltName DNS names, else its common
    name (lower case)."""
    cert = x509.load_pem_x509_certificate(pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = san.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = [
            str(a.value) for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        ]
    return tuple(n.lower() for n in names)


def covers(names: Iterable[str], host: str) -> bool:
    """Whether a certificate for ``names`` is valid for ``host`` (a ``*.`` name covers
    one label, as TLS clients check)."""
    host = host.lower()
    for name in names:
        if name == host:
            return True
        first, _, rest = host.partition(".")
        if name.startswith("*.") and first and rest == name[2:]:
            return True
    return False


def certificate_file(cfg: RenderConfig, pem: bytes) -> tuple[str, str]:
    """Where a certificate+key PEM is written: (relative to the prefix, absolute); named
    by content, so an unchanged certificate keeps its file."""
    relative = f"ssl/{hashlib.sha256(pem).hexdigest()[:32]}.pem"
    return relative, f"{cfg.prefix}/{relative}"


def certificate_problem(secret: Obj) -> tuple[bytes | None, str]:
    """The PEM chain + key nginx loads from a TLS Secret, or why there is none."""
    data = secret.get("data") or {}
    crt, key = data.get("tls.crt"), data.get("tls.key")
    if not crt or not key:
        return None, "the secret has no tls.crt and tls.key"
    return _certificate(str(crt), str(key))


@dataclass
class _Index:
    services: dict[tuple[str, str], Obj]
    slices: dict[tuple[str, str], list[Obj]]
    secrets: dict[tuple[str, str], Obj]


def _index(services: Iterable[Obj], slices: Iterable[Obj], secrets: Iterable[Obj]) -> _Index:
    by_service: dict[tuple[str, str], list[Obj]] = {}
    for s in slices:
        meta = s.get("metadata") or {}
        svc = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if svc:
            by_service.setdefault((str(meta.get("namespace") or ""), svc), []).append(s)
    return _Index(
        services={_key(s): s for s in services},
        slices=by_service,
        secrets={_key(s): s for s in secrets},
    )


# ---------------------------------------------------------------------------- model


@dataclass(frozen=True)
class _Target:
    """Where a location sends a request: an upstream, or a fixed status."""

    upstream: str = ""
    status: int = 0


@dataclass(frozen=True)
class _Location:
    modifier: str  # "=" or ""
    path: str
    target: _Target
    settings: tuple[tuple[str, str], ...]  # annotation name → value (validated)
    ssl_redirect: bool | None  # None: redirect iff the host has TLS
    force_ssl_redirect: bool


@dataclass
class _Candidate:
    rank: int
    age: tuple[str, str, str]
    source: tuple[str, str]
    path_type: str
    path: str
    location: _Location


@dataclass
class _Server:
    host: str
    candidates: dict[tuple[str, str], list[_Candidate]] = field(default_factory=dict)
    default: tuple[tuple[str, str, str], _Location] | None = None
    tls: tuple[tuple[str, str, str], str | None] | None = None  # age, cert file


class _Renderer:
    def __init__(self, cfg: RenderConfig, index: _Index) -> None:
        self.cfg = cfg
        self.index = index
        self.findings: list[Finding] = []
        self.upstreams: dict[str, list[str]] = {}
        self.files: dict[str, bytes] = {}
        #: certificate file → the DNS names it is for
        self.names: dict[str, tuple[str, ...]] = {}
        self.servers: dict[str, _Server] = {}

    def warn(self, ingress: Obj, reason: str, message: str) -> None:
        ns, name = _key(ingress)
        finding = Finding(ns, name, reason, message)
        if finding not in self.findings:
            self.findings.append(finding)

    def server(self, host: str) -> _Server:
        if host not in self.servers:
            self.servers[host] = _Server(host)
        return self.servers[host]

    # ------------------------------------------------------------------ backends

    def target(self, ingress: Obj, backend: Obj) -> _Target:
        ns, _ = _key(ingress)
        service = backend.get("service")
        if not isinstance(service, Mapping):
            self.warn(ingress, "UnsupportedBackend", "only service backends are supported")
            return _Target(status=503)
        name = str(service.get("name") or "")
        svc = self.index.services.get((ns, name))
        if svc is None:
            self.warn(ingress, "ServiceNotFound", f'service "{ns}/{name}" not found')
            return _Target(status=503)
        wanted = service.get("port") or {}
        port = service_port(svc, wanted)
        if port is None:
            shown = wanted.get("name") or wanted.get("number")
            self.warn(ingress, "PortNotFound", f'service "{ns}/{name}" does not have port {shown}')
            return _Target(status=503)
        servers = ready_servers(self.index.slices.get((ns, name), ()), port)
        if not servers:
            return _Target(status=503)
        upstream = _NAME_CHARS.sub("-", f"{ns}-{name}-{port.get('port')}")
        self.upstreams[upstream] = servers
        return _Target(upstream=upstream)

    # ------------------------------------------------------------------ rules

    def location(self, ingress: Obj, modifier: str, path: str, target: _Target) -> _Location:
        annotations = (ingress.get("metadata") or {}).get("annotations") or {}
        settings: list[tuple[str, str]] = []
        for name, default in _DEFAULTS.items():
            value = str(annotations.get(ANNOTATION_PREFIX + name, default))
            pattern = _SIZE if name == "proxy-body-size" else _SECONDS
            if not pattern.match(value):
                self.warn(
                    ingress,
                    "InvalidAnnotation",
                    f"{ANNOTATION_PREFIX}{name}: {value!r} is not valid; using {default}",
                )
                value = default
            settings.append((name, value))
        redirect = annotations.get(ANNOTATION_PREFIX + "ssl-redirect")
        force = annotations.get(ANNOTATION_PREFIX + "force-ssl-redirect")
        return _Location(
            modifier=modifier,
            path=path,
            target=target,
            settings=tuple(settings),
            ssl_redirect=None if redirect is None else str(redirect).lower() == "true",
            force_ssl_redirect=str(force).lower() == "true",
        )

    def add_rules(self, ingress: Obj) -> None:
        spec = ingress.get("spec") or {}
        age = _age(ingress)
        source = _key(ingress)
        default_backend = spec.get("defaultBackend")
        own_default = (
            self.location(ingress, "", "/", self.target(ingress, default_backend))
            if isinstance(default_backend, Mapping)
            else None
        )
        for rule in spec.get("rules") or []:
            host = str(rule.get("host") or "")
            if host and not _HOST.match(host):
                self.warn(ingress, "InvalidHost", f"host {host!r} is not a valid DNS name")
                continue
            server = self.server(host)
            if (
                own_default is not None
                and host
                and (server.default is None or age < server.default[0])
            ):
                server.default = (age, own_default)
            for p in (rule.get("http") or {}).get("paths") or []:
                self.add_path(ingress, server, age, source, p)

    def add_path(
        self,
        ingress: Obj,
        server: _Server,
        age: tuple[str, str, str],
        source: tuple[str, str],
        p: Obj,
    ) -> None:
        path_type = str(p.get("pathType") or "ImplementationSpecific")
        path = str(p.get("path") or "/")
        if path_type not in _TYPE_RANK or not _PATH.match(path):
            self.warn(ingress, "InvalidPath", f"path {path!r} ({path_type}) is not supported")
            return
        target = self.target(ingress, p.get("backend") or {})
        keys: list[tuple[str, str]]
        if path_type == "Exact":
            keys = [("=", path)]
        elif path_type == "Prefix":
            trimmed = path.rstrip("/")
            keys = [("=", trimmed), ("", trimmed + "/")] if trimmed else [("", "/")]
        else:
            keys = [("", path)]
        for modifier, where in keys:
            candidate = _Candidate(
                rank=_TYPE_RANK[path_type],
                age=age,
                source=source,
                path_type=path_type,
                path=path,
                location=self.location(ingress, modifier, where, target),
            )
            server.candidates.setdefault((modifier, where), []).append(candidate)

    def add_tls(self, ingress: Obj) -> None:
        ns, _ = _key(ingress)
        age = _age(ingress)
        for tls in (ingress.get("spec") or {}).get("tls") or []:
            secret_name = tls.get("secretName")
            cert_file: str | None = None
            if secret_name:
                cert_file = self.certificate(ingress, ns, str(secret_name))
            for host in tls.get("hosts") or []:
                host = str(host)
                if not _HOST.match(host):
                    self.warn(ingress, "InvalidHost", f"TLS host {host!r} is not a valid DNS name")
                    continue
                host_file = cert_file
                if cert_file and not covers(self.names[cert_file], host):
                    # ingress-nginx serves such a host with the default certificate
                    self.warn(
                        ingress,
                        "InvalidSecret",
                        f'secret "{ns}/{secret_name}": the certificate is not valid for '
                        f"{host}; using the default certificate",
                    )
                    host_file = None
                server = self.server(host)
                if server.tls is None or age < server.tls[0]:
                    server.tls = (age, host_file)

    def certificate(self, ingress: Obj, ns: str, name: str) -> str | None:
        secret = self.index.secrets.get((ns, name))
        if secret is None:
            self.warn(
                ingress,
                "SecretNotFound",
                f'secret "{ns}/{name}" not found; using the default certificate',
            )
            return None
        pem, problem = certificate_problem(secret)
        if pem is None:
            self.warn(
                ingress,
                "InvalidSecret",
                f'secret "{ns}/{name}": {problem}; using the default certificate',
            )
            return None
        relative, path = certificate_file(self.cfg, pem)
        self.files[relative] = pem
        self.names[path] = certificate_names(pem)
        return path

    # ------------------------------------------------------------------ text

    def winners(self, server: _Server, ingresses: Mapping[tuple[str, str], Obj]) -> list[_Location]:
        out: list[_Location] = []
        for (modifier, _where), candidates in sorted(server.candidates.items()):
            candidates.sort(key=lambda c: (c.rank, c.age))
            best = candidates[0]
            out.append(best.location)
            for lost in candidates[1:]:
                if modifier == "=" and lost.path_type == "Prefix" and best.path_type == "Exact":
                    continue  # Exact before Prefix on an exact match: precedence, not conflict
                owner = f"{best.source[0]}/{best.source[1]}"
                host = server.host or "*"
                self.warn(
                    ingresses[lost.source],
                    "Conflict",
                    f"path {lost.path} ({lost.path_type}) on host {host} is served by "
                    f"{owner} ({best.path} {best.path_type}), which takes precedence",
                )
        return out


def service_port(svc: Obj, wanted: Obj) -> Obj | None:
    for port in (svc.get("spec") or {}).get("ports") or []:
        if (port.get("protocol") or "TCP") != "TCP":
            continue
        if wanted.get("name") and port.get("name") == wanted.get("name"):
            return dict(port)
        if wanted.get("number") and port.get("port") == wanted.get("number"):
            return dict(port)
    return None


def ready_servers(slices: Iterable[Obj], port: Obj) -> list[str]:
    """``ip:port`` of every ready endpoint for the Service port (by the slice port's
    name, which is the Service port's; its number is the resolved targetPort)."""
    name = port.get("name") or ""
    out: set[str] = set()
    for s in slices:
        numbers = [
            p.get("port")
            for p in s.get("ports") or []
            if (p.get("name") or "") == name and (p.get("protocol") or "TCP") == "TCP"
        ]
        if not numbers or numbers[0] is None:
            continue
        v6 = s.get("addressType") == "IPv6"
        for ep in s.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            for address in ep.get("addresses") or []:
                out.add(f"[{address}]:{numbers[0]}" if v6 else f"{address}:{numbers[0]}")
    return sorted(out)


def _server_name(host: str) -> str:
    if not host:
        return "_"
    if host.startswith("*."):
        rest = re.escape(host[2:])
        return f"~^[^.]+\\.{rest}$"
    return host


def _listen(cfg: RenderConfig, port: int, extra: str) -> str:
    where = f"{cfg.bind_address}:{port}" if cfg.bind_address else str(port)
    return f"    listen {where}{extra};\n"


def _location_text(
    cfg: RenderConfig, loc: _Location, host_has_tls: bool, indent: str = "    "
) -> str:
    lines = [f"{indent}location {loc.modifier + ' ' if loc.modifier else ''}{loc.path} {{"]
    redirect = loc.force_ssl_redirect or (
        host_has_tls and (loc.ssl_redirect if loc.ssl_redirect is not None else True)
    )
    if redirect:
        port = "" if cfg.https_redirect_port == 443 else f":{cfg.https_redirect_port}"
        to = f"https://$host{port}$request_uri"
        lines.append(f"{indent}    if ($scheme = http) {{ return 308 {to}; }}")
    if loc.target.upstream:
        s = dict(loc.settings)
        lines += [
            f"{indent}    proxy_connect_timeout {s['proxy-connect-timeout']}s;",
            f"{indent}    proxy_send_timeout {s['proxy-send-timeout']}s;",
            f"{indent}    proxy_read_timeout {s['proxy-read-timeout']}s;",
            f"{indent}    client_max_body_size {s['proxy-body-size']};",
            f"{indent}    proxy_pass http://{loc.target.upstream};",
        ]
    elif loc.target.status:
        lines.append(f"{indent}    return {loc.target.status};")
    else:
        lines.append(f'{indent}    return 404 "default backend - 404\\n";')
    lines.append(f"{indent}}}")
    return "\n".join(lines) + "\n"


_BUILTIN_404 = _Location("", "/", _Target(), (), False, False)


def render(
    ingresses: Sequence[Obj],
    services: Iterable[Obj],
    slices: Iterable[Obj],
    secrets: Iterable[Obj],
    cfg: RenderConfig,
    extra: Extra = Extra(),
) -> Rendered:
    """The whole nginx configuration for ``ingresses`` (already filtered to ours), with
    ``extra`` (the Gateway API's upstreams and servers) added."""
    r = _Renderer(cfg, _index(services, slices, secrets))
    ordered = sorted(ingresses, key=_age)
    by_key = {_key(i): i for i in ordered}
    catch_all = r.server("")
    cluster_default: tuple[tuple[str, str], _Location] | None = None
    for ingress in ordered:
        r.add_rules(ingress)
        r.add_tls(ingress)
        backend = (ingress.get("spec") or {}).get("defaultBackend")
        if isinstance(backend, Mapping):
            if cluster_default is None:
                loc = r.location(ingress, "", "/", r.target(ingress, backend))
                cluster_default = (_key(ingress), loc)
            elif not (ingress.get("spec") or {}).get("rules"):
                owner = "/".join(cluster_default[0])
                r.warn(
                    ingress,
                    "Conflict",
                    f"the default backend is {owner}'s (the oldest Ingress with one)",
                )
    fallback = cluster_default[1] if cluster_default else _BUILTIN_404
    if catch_all.default is None:
        catch_all.default = (("", "", ""), fallback)

    body: list[str] = []
    upstreams = {**r.upstreams, **extra.upstreams}
    for name in sorted(upstreams):
        body.append(f"  upstream {name} {{\n")
        body += [f"    server {s} max_fails=0;\n" for s in upstreams[name]]
        body.append("    keepalive 64;\n  }\n")
    hosts = sorted(r.servers, key=lambda h: (h != "", h))
    for host in hosts:
        server = r.servers[host]
        locations = r.winners(server, by_key)
        has_tls = server.tls is not None
        if not any(loc.modifier == "" and loc.path == "/" for loc in locations):
            default = server.default[1] if server.default else fallback
            locations.append(default)
        default_server = " default_server" if not host else ""
        body.append("  server {\n")
        body.append(f"    server_name {_server_name(host)};\n")
        body.append(_listen(cfg, cfg.http_port, default_server))
        if has_tls or not host:
            # only TLS hosts (and the catch-all) on the HTTPS port: nginx builds an SSL
            # context per server block, ~5 ms each, which made 1,000 plain hosts a 6 s reload
            body.append(_listen(cfg, cfg.https_port, " ssl" + default_server))
        if has_tls or not host:
            # per server, not at http level: nginx builds an SSL context for every server
            # block that inherits a certificate (1.4 s of CPU per reload at 1,000 hosts)
            cert = (server.tls[1] if server.tls else None) or cfg.default_certificate
            body.append(f"    ssl_certificate {cert};\n")
            body.append(f"    ssl_certificate_key {cert};\n")
        body += [_location_text(cfg, loc, has_tls) for loc in locations]
        body.append("  }\n")
    body.append(extra.text)
    text = "".join(body)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Rendered(
        config=_main(cfg, text, digest),
        files={**r.files, **extra.files},
        findings=r.findings,
        hash=digest,
        upstreams=r.upstreams,
    )


def _main(cfg: RenderConfig, servers: str, digest: str) -> str:
    p = cfg.prefix
    status = ""
    if cfg.status_socket:
        status = (
            "  server {\n"
            f"    listen unix:{cfg.status_socket};\n"
            f'    location = /configuration-hash {{ return 200 "{digest}"; }}\n'
            '    location = /healthz { return 200 "ok"; }\n'
            "  }\n"
        )
    return (
        f"# rendered by pyk8s ingress-controller; configuration hash {digest}\n"
        f"worker_processes {cfg.worker_processes};\n"
        "worker_rlimit_nofile 65536;\n"
        f"pid {p}/nginx.pid;\n"
        f"error_log {p}/logs/error.log warn;\n"
        "events {\n  worker_connections 16384;\n  multi_accept on;\n}\n"
        "http {\n"
        "  access_log off;\n"
        f"  client_body_temp_path {p}/temp/body;\n"
        f"  proxy_temp_path {p}/temp/proxy;\n"
        f"  fastcgi_temp_path {p}/temp/fastcgi;\n"
        f"  uwsgi_temp_path {p}/temp/uwsgi;\n"
        f"  scgi_temp_path {p}/temp/scgi;\n"
        "  server_tokens off;\n"
        "  sendfile on;\n"
        "  tcp_nodelay on;\n"
        "  keepalive_timeout 75s;\n"
        "  keepalive_requests 1000;\n"
        "  server_names_hash_bucket_size 128;\n"
        "  server_names_hash_max_size 16384;\n"
        "  map $http_upgrade $proxy_connection {\n    default upgrade;\n    '' '';\n  }\n"
        "  proxy_http_version 1.1;\n"
        "  proxy_set_header Host $host;\n"
        "  proxy_set_header Upgrade $http_upgrade;\n"
        "  proxy_set_header Connection $proxy_connection;\n"
        "  proxy_set_header X-Real-IP $remote_addr;\n"
        "  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        "  proxy_set_header X-Forwarded-Host $host;\n"
        "  proxy_set_header X-Forwarded-Proto $scheme;\n"
        "  proxy_buffering on;\n"
        "  proxy_max_temp_file_size 0;\n"
        "  proxy_next_upstream error timeout;\n"
        "  ssl_protocols TLSv1.2 TLSv1.3;\n"
        "  ssl_session_cache shared:SSL:10m;\n"
        f"{servers}"
        f"{status}"
        "}\n"
    )
