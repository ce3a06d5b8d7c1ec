"""The API server's HTTPS client for the webhooks users plug into it.

Why this exists: a CustomResourceDefinition with ``conversion.strategy: Webhook`` and
(next) every admission webhook configuration make the API server a *client* of code the
user runs, usually a pod behind a Service. Upstream has one client for all of them
(``k8s.io/apiserver/pkg/util/webhook``); this module is ours, and the conversion and
admission callers only build a review, POST it here and check the answer.

What it does, as upstream does:

* a ``WebhookClientConfig`` names either a ``url`` or a ``service`` (namespace, name,
  path, port defaulting to 443), plus an optional ``caBundle`` (base64 of PEM). Only
  HTTPS is spoken. With a ``caBundle`` exactly those roots are trusted, otherwise the
  system's; the server must present a certificate whose SANs cover the host (no legacy
  Common Name fallback, as in Go);
* a service is reached by its DNS name ``<name>.<namespace>.svc`` for TLS (SNI and the
  certificate check), but the TCP connection goes to whatever ``resolve_service`` answers,
  asked on every new connection: the API server is not necessarily behind kube-proxy, so
  the caller picks a ready endpoint and maps the service port to its target port;
* the URL gets upstream's ``?timeout=<Go duration>`` parameter so the webhook knows how
  long it has; one connection pool per distinct client config (LRU of 200, as upstream's
  client cache), each bounded;
* every failure is a :class:`WebhookError` whose ``message`` reads exactly like the
  upstream API server's, so users can search for it. The tree::

      WebhookError                  .webhook_name .detail .reason .message .status
      ├── WebhookConfigError        the clientConfig is unusable (no url/service,
      │                             unparsable URL, bad caBundle): "could not get REST client: …"
      └── WebhookCallError          the POST failed: "failed to call webhook: Post "…": …"
          ├── WebhookConnectError   resolving the service or dialing failed
          ├── WebhookTLSError       TLS handshake / x509 verification failed
          ├── WebhookTimeoutError   the deadline passed ("context deadline exceeded")
          ├── WebhookStatusError    a non-2xx answer (.code, .status = the Status)
          └── WebhookResponseError  a 2xx answer whose body is no JSON object

  ``detail`` is Go's error text (``Post "https://…?timeout=30s": dial tcp 10.42.0.7:8443:
  connect: connection refused``), what the conversion webhook message embeds; ``message``
  is the admission plugin's ``failed calling webhook "<name>": failed to call webhook:
  <detail>``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import contextvars
import datetime
import errno
import ipaddress
import logging
import posixpath
import socket
import ssl
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography import x509
from yarl import URL

from pyk8s.api.gofmt import go_quote

__all__ = [
    "DEFAULT_TIMEOUT",
    "ResolveService",
    "WebhookCallError",
    "WebhookClient",
    "WebhookConfigError",
    "WebhookConnectError",
    "WebhookError",
    "WebhookResponseError",
    "WebhookStatusError",
    "WebhookTLSError",
    "WebhookTimeoutError",
    "go_duration",
]

log = logging.getLogger(__name__)

JSON = dict[str, Any]

#: ``resolve_service(namespace, name, port)`` -> ``(host, port)`` to dial for a Service.
#: It may raise; the exception's text is used verbatim (``service "x" not found``).
ResolveService = Callable[[str, str, int], Awaitable[tuple[str, int]]]

#: Upstream's absolute request timeout for webhook clients (conversion uses it as is).
DEFAULT_TIMEOUT: Final = 30.0
#: Upstream's client cache size (``defaultCacheSize``).
CACHE_SIZE: Final = 200
#: Connections one client config may hold open at once.
POOL_LIMIT: Final = 64
#: Go's http.Transport IdleConnTimeout.
IDLE_TIMEOUT: Final = 90.0
#: client-go caps the body it quotes in an unstructured error.
MAX_ERROR_BODY: Final = 2048


# --------------------------------------------------------------------------- errors


class WebhookError(Exception):
    """A webhook could not be called or answered unusably (see the module docstring)."""

    #: what upstream's dispatcher puts between the name and the detail
    prefix = ""

    def __init__(self, webhook_name: str, detail: str, status: JSON | None = None) -> None:
        self.webhook_name = webhook_name
        #: Go's error text, without our prefixes
        self.detail = detail
        #: the ``Status`` the webhook answered with (non-2xx answers only)
        self.status = status
        super().__init__(self.message)

    @property
    def reason(self) -> str:
        """What follows ``failed calling webhook "<name>": `` in upstream's message."""
        return f"{self.prefix}{self.detail}"

    @property
    def message(self) -> str:
        return f'failed calling webhook "{self.webhook_name}": {self.reason}'

    def __str__(self) -> str:
        return self.message


class WebhookConfigError(WebhookError):
    """The client config cannot make a client (upstream: ``HookClient`` failed)."""

    prefix = "could not get REST client: "


class WebhookCallError(WebhookError):
    """The POST itself failed (upstream: ``r.Do(ctx).Into(response)`` returned an error)."""

    prefix = "failed to call webhook: "


class WebhookConnectError(WebhookCallError):
    """The service did not resolve, or the TCP dial failed."""


class WebhookTLSError(WebhookCallError):
    """The TLS handshake failed, usually certificate verification (``x509: …``)."""


class WebhookTimeoutError(WebhookCallError):
    """The deadline passed before the answer was read."""


class WebhookStatusError(WebhookCallError):
    """The webhook answered with a status outside 200-206."""

    @property
    def code(self) -> int:
        return int((self.status or {}).get("code") or 0)


class WebhookResponseError(WebhookCallError):
    """A 2xx answer with an empty, unreadable or non-object body."""


# --------------------------------------------------------------------------- helpers


def go_duration(seconds: float) -> str:
    """``seconds`` as Go's ``time.Duration.String()`` prints it (``30s``, ``1m30s``, ``500ms``)."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _trim(ns / size) + unit
    h, rest = divmod(ns, 3600 * 10**9)
    m, rest = divmod(rest, 60 * 10**9)
    out = sign
    if h:
        out += f"{h}h"
    if h or m:
        out += f"{m}m"
    return out + _trim(rest / 1e9) + "s"


def _trim(v: float) -> str:
    s = f"{v:.9f}".rstrip("0").rstrip(".")
    return s or "0"


def _clean_path(p: str) -> str:
    """Go's ``path.Join("/", p)``: rooted, cleaned, no trailing slash (``/`` when empty)."""
    cleaned = posixpath.normpath("/" + p)
    return "/" + cleaned.lstrip("/")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _join_host_port(host: str, port: int) -> str:
    """Go's ``net.JoinHostPort``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class _Target:
    """Where one client config sends its requests."""

    base: str  # scheme://host[:port] as shown in messages and used for the request
    path: str  # cleaned path
    server_name: str  # the TLS name (URL host or <svc>.<ns>.svc)
    service: tuple[str, str, int] | None  # (namespace, name, port) to resolve at dial time


def _parse_config(cfg: JSON, name: str) -> tuple[_Target, bytes | None]:
    """The target and CA bundle of a WebhookClientConfig, with upstream's errors."""
    ca_b64 = cfg.get("caBundle")
    ca: bytes | None = None
    if ca_b64:
        if isinstance(ca_b64, bytes | bytearray):
            ca = bytes(ca_b64)
        else:
            try:
                ca = base64.b64decode(str(ca_b64), validate=True)
            except (binascii.Error, ValueError) as e:
                raise WebhookConfigError(
                    name, f"unable to load root certificates: illegal base64 data: {e}"
                ) from None
    svc = cfg.get("service")
    if isinstance(svc, dict):
        port = int(svc.get("port") or 443)
        server_name = f"{svc.get('name', '')}.{svc.get('namespace', '')}.svc"
        return (
            _Target(
                base="https://" + _join_host_port(server_name, port),
                path=_clean_path(str(svc.get("path") or "")),
                server_name=server_name,
                service=(str(svc.get("namespace", "")), str(svc.get("name", "")), port),
            ),
            ca,
        )
    url = cfg.get("url")
    if not url:
        inner = WebhookError(name, "webhook configuration must have either service or URL")
        raise WebhookConfigError(name, inner.message)
    try:
        u = urllib.parse.urlsplit(str(url))
        host = u.hostname or ""
        _ = u.port  # raises ValueError on a bad port
    except ValueError as e:
        inner = WebhookError(name, f"Unparsable URL: parse {go_quote(str(url))}: {e}")
        raise WebhookConfigError(name, inner.message) from None
    if u.scheme != "https":
        # Validation of the configurations refuses these; say so if one slips through.
        raise WebhookConfigError(
            name, f'unsupported webhook URL scheme "{u.scheme}": only "https" is allowed'
        )
    if not host:
        inner = WebhookError(name, f"Unparsable URL: parse {go_quote(str(url))}: missing host")
        raise WebhookConfigError(name, inner.message)
    netloc = u.netloc.rpartition("@")[2]
    return (
        _Target(
            base=f"https://{netloc}",
            path=_clean_path(u.path),
            server_name=host,
            service=None,
        ),
        ca,
    )


def _ssl_context(ca: bytes | None, name: str) -> ssl.SSLContext:
    """Go's client TLS: TLS >= 1.2, SANs only, the bundle's roots alone when given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.hostname_checks_common_name = False
    # Go does not insist on the extensions OpenSSL's strict mode wants (authority key id…);
    # a webhook certificate Go accepts must work here too.
    strict = getattr(ssl, "VERIFY_X509_STRICT", 0)
    if strict:
        ctx.verify_flags &= ~strict
    ctx.set_alpn_protocols(["http/1.1"])
    if ca is None:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        return ctx
    try:
        ctx.load_verify_locations(cadata=ca.decode("ascii", "replace"))
    except (ssl.SSLError, ValueError):
        raise WebhookConfigError(
            name, f"unable to load root certificates: {_ca_parse_error(ca)}"
        ) from None
    return ctx


def _ca_parse_error(pem: bytes) -> str:
    """client-go's ``createErrorParsingCAData`` wording for a bundle with no usable cert."""
    text = pem.decode("ascii", "replace")
    begin = "-----BEGIN "
    if begin not in text:
        return "unable to parse bytes as PEM block"
    try:
        x509.load_pem_x509_certificates(pem)
    except ValueError as e:
        if "CERTIFICATE-----" in text:
            return f"failed to parse certificate: {e}"
        return "no valid certificate authority data seen"
    return "no valid certificate authority data seen"


# --------------------------------------------------------------------------- dialing


@dataclass(slots=True)
class _Dial:
    """What the resolver saw for the request in flight (for Go-style messages)."""

    addr: tuple[str, int] | None = None
    error: BaseException | None = None


_dial: contextvars.ContextVar[_Dial | None] = contextvars.ContextVar("webhook_dial", default=None)


class _ResolveFailed(OSError):
    """Carries a resolver failure through aiohttp (which only passes OSErrors on)."""


class _Resolver(AbstractResolver):
    """Maps the service's DNS name to the endpoint ``resolve_service`` picks, per dial."""

    def __init__(self, target: _Target, resolve_service: ResolveService) -> None:
        self._target = target
        self._resolve_service = resolve_service
        self._dns = aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        rec = _dial.get()
        svc = self._target.service
        if svc is not None and host == self._target.server_name:
            try:
                host, port = await self._resolve_service(*svc)
            except Exception as e:  # any resolver failure becomes the message
                if rec is not None:
                    rec.error = e
                raise _ResolveFailed(str(e)) from e
            if _is_ip(host):
                if rec is not None:
                    rec.addr = (host, port)
                fam = socket.AF_INET6 if ":" in host else socket.AF_INET
                return [
                    {
                        "hostname": self._target.server_name,
                        "host": host,
                        "port": port,
                        "family": fam,
                        "proto": 0,
                        "flags": socket.AI_NUMERICHOST,
                    }
                ]
        try:
            res = await self._dns.resolve(host, port, family)
        except OSError as e:
            if rec is not None:
                rec.error = e
            raise
        if rec is not None and res:
            rec.addr = (res[0]["host"], res[0]["port"])
        return res

    async def close(self) -> None:
        await self._dns.close()


_ERRNO_TEXT = {
    errno.ECONNREFUSED: "connection refused",
    errno.EHOSTUNREACH: "no route to host",
    errno.ENETUNREACH: "network is unreachable",
    errno.ETIMEDOUT: "connection timed out",
    errno.ECONNRESET: "connection reset by peer",
}


def _os_text(e: OSError) -> str:
    if e.errno in _ERRNO_TEXT:
        return _ERRNO_TEXT[e.errno]
    text = e.strerror or str(e)
    if "Connect call failed" in text or "refused" in text.lower():
        return "connection refused"
    return text[:1].lower() + text[1:]


# --------------------------------------------------------------------------- x509 wording


def _go_time(t: datetime.datetime) -> str:
    """Go's RFC 3339 rendering (``Z`` for UTC, else the offset)."""
    s = t.replace(microsecond=0).isoformat()
    return s[:-6] + "Z" if s.endswith("+00:00") else s


def _match_dns(pattern: str, host: str) -> bool:
    pattern = pattern.lower().rstrip(".")
    host = host.lower().rstrip(".")
    if pattern == host:
        return True
    if pattern.startswith("*."):
        head, _, tail = host.partition(".")
        return bool(head) and tail == pattern[2:]
    return False


def _hostname_error(cert: x509.Certificate, host: str) -> str | None:
    """Go's ``x509.HostnameError`` text, or None when ``cert`` is valid for ``host``."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = list(san.get_values_for_type(x509.DNSName))
        ips = [str(i) for i in san.get_values_for_type(x509.IPAddress)]
        has_san = True
    except x509.ExtensionNotFound:
        dns, ips, has_san = [], [], False
    if _is_ip(host):
        want = ipaddress.ip_address(host)
        if any(ipaddress.ip_address(i) == want for i in ips):
            return None
    elif any(_match_dns(d, host) for d in dns):
        return None
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    cn = str(cns[0].value) if cns else ""
    if not has_san and cn and _match_dns(cn, host):
        return "x509: certificate relies on legacy Common Name field, use SANs instead"
    if _is_ip(host):
        if not ips:
            return (
                f"x509: cannot validate certificate for {host} because it doesn't contain "
                "any IP SANs"
            )
        valid = ", ".join(ips)
    else:
        valid = ", ".join(dns)
    if not valid:
        return f"x509: certificate is not valid for any names, but wanted to match {host}"
    return f"x509: certificate is valid for {valid}, not {host}"


def _validity_error(cert: x509.Certificate) -> str | None:
    now = datetime.datetime.now(datetime.UTC)
    if now < cert.not_valid_before_utc:
        detail = f"current time {_go_time(now.astimezone())} is before " + _go_time(
            cert.not_valid_before_utc
        )
    elif now > cert.not_valid_after_utc:
        detail = f"current time {_go_time(now.astimezone())} is after " + _go_time(
            cert.not_valid_after_utc
        )
    else:
        return None
    return f"x509: certificate has expired or is not yet valid: {detail}"


_UNKNOWN_AUTHORITY = frozenset({2, 7, 18, 19, 20, 21})  # OpenSSL X509_V_ERR_* codes


def _x509_text(err: ssl.SSLCertVerificationError, leaf: x509.Certificate | None, host: str) -> str:
    """Go's verification message, checked in Go's order: validity, host name, chain."""
    if leaf is not None:
        msg = _validity_error(leaf) or _hostname_error(leaf, host)
        if msg:
            return msg
    code = err.verify_code
    if code in _UNKNOWN_AUTHORITY:
        return "x509: certificate signed by unknown authority"
    if code in (9, 10):
        return "x509: certificate has expired or is not yet valid"
    if code in (62, 64):
        return f"x509: certificate is not valid for {host}"
    if code == 26:
        return "x509: certificate specifies an incompatible key usage"
    return f"x509: {err.verify_message or err.reason or err}"


async def _peer_leaf(
    addr: tuple[str, int], server_name: str, wait: float
) -> x509.Certificate | None:
    """The server's certificate, fetched without verification, to word an x509 failure."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(wait):
            _, writer = await asyncio.open_connection(
                addr[0], addr[1], ssl=ctx, server_hostname=server_name
            )
            try:
                obj = writer.get_extra_info("ssl_object")
                der = obj.getpeercert(binary_form=True) if obj is not None else None
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
    except (OSError, TimeoutError, ssl.SSLError):
        return None
    if not der:
        return None
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        return None


# --------------------------------------------------------------------------- response


_STRUCT = (
    'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; '
    'Kind string "json:\\"kind,omitempty\\"" }'
)


def _json_error(body: bytes, e: orjson.JSONDecodeError) -> str:
    pos = e.pos
    stripped = body.rstrip()
    if pos >= len(stripped):
        reason = "unexpected end of JSON input"
    else:
        ch = body[pos : pos + 1].decode("latin-1")
        reason = f"invalid character '{ch}' looking for beginning of value"
    return f"couldn't get version/kind; json parse error: {reason}"


def _decode_object(body: bytes) -> JSON | str:
    """The JSON object in ``body``, or the decoder's error text (as the Go codec words it)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        return _json_error(body, e)
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        kind = {list: "array", str: "string", bool: "bool"}.get(type(doc), "number")
        return (
            "couldn't get version/kind; json parse error: json: cannot unmarshal "
            f"{kind} into Go value of type {_STRUCT}"
        )
    return doc


_GENERIC = {
    409: ("Conflict", "the server reported a conflict"),
    404: ("NotFound", "the server could not find the requested resource"),
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    401: ("Unauthorized", "the server has asked for the client to provide credentials"),
    405: ("MethodNotAllowed", "the server does not allow this method on the requested resource"),
    422: ("Invalid", "the server rejected our request due to an error in our request"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: (
        "Timeout",
        "the server was unable to return a response in the time allotted, "
        "but may still be processing the request",
    ),
    429: (
        "TooManyRequests",
        "the server has received too many requests and has asked us to try again later",
    ),
}


def _status_from_response(code: int, content_type: str, body: bytes) -> JSON:
    """The Status client-go makes of a non-2xx answer (the body's own Status when it is one)."""
    doc = _decode_object(body) if body else None
    if (
        isinstance(doc, dict)
        and doc.get("kind") == "Status"
        and doc.get("apiVersion", "v1") in ("v1", "")
        and doc.get("status") == "Failure"
    ):
        return doc
    is_text = not content_type or content_type.split(";", 1)[0].strip().startswith("text/")
    server_message = "unknown"
    if is_text:
        server_message = body[:MAX_ERROR_BODY].decode("utf-8", "replace").strip()
    reason, message = (
        "",
        f"the server responded with the status code {code} but did not return more information",
    )
    if code in _GENERIC:
        reason, message = _GENERIC[code]
    elif code == 403:
        reason, message = "Forbidden", server_message
    elif code == 406:
        reason = "NotAcceptable"
        message = (
            server_message
            if server_message not in ("", "unknown")
            else "the server was unable to respond with a content type that the client supports"
        )
    elif code == 415:
        reason, message = "UnsupportedMediaType", server_message
    elif code >= 500:
        reason = "InternalError"
        message = (
            f"an error on the server ({go_quote(server_message)}) has prevented the request "
            "from succeeding"
        )
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": {"causes": [{"reason": "UnexpectedServerResponse", "message": server_message}]},
        "code": code,
    }


# --------------------------------------------------------------------------- the client


@dataclass(slots=True)
class _Entry:
    target: _Target
    session: aiohttp.ClientSession


class WebhookClient:
    """POSTs JSON reviews to webhooks; one instance serves every webhook of the server.

    ``resolve_service(namespace, name, port)`` returns the ``(host, port)`` to dial for a
    Service reference; it is awaited for every new connection (kept-alive ones are reused
    while they last). Call :meth:`close` (or use ``async with``) on shutdown.
    """

    def __init__(
        self,
        resolve_service: ResolveService,
        *,
        user_agent: str = "pyk8s-apiserver",
        pool_limit: int = POOL_LIMIT,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self._resolve_service = resolve_service
        self._user_agent = user_agent
        self._pool_limit = pool_limit
        self._cache_size = cache_size
        self._entries: collections.OrderedDict[bytes, _Entry] = collections.OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> WebhookClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every pooled connection."""
        entries = list(self._entries.values())
        self._entries.clear()
        for e in entries:
            await e.session.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _entry(self, cfg: JSON, name: str) -> _Entry:
        # Like upstream's cache key: the config without the webhook's name.
        svc = cfg.get("service")
        key_doc = {
            "url": cfg.get("url") or "",
            "caBundle": cfg.get("caBundle") or "",
            "service": (
                {
                    "namespace": svc.get("namespace", ""),
                    "name": svc.get("name", ""),
                    "path": svc.get("path") or "",
                    "port": int(svc.get("port") or 443),
                }
                if isinstance(svc, dict)
                else None
            ),
        }
        key = orjson.dumps(key_doc, option=orjson.OPT_SORT_KEYS)
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            return entry
        target, ca = _parse_config(cfg, name)
        ctx = _ssl_context(ca, name)
        connector = aiohttp.TCPConnector(
            ssl=ctx,
            limit=self._pool_limit,
            use_dns_cache=False,
            keepalive_timeout=IDLE_TIMEOUT,
            resolver=_Resolver(target, self._resolve_service),
        )
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),
        )
        entry = _Entry(target, session)
        self._entries[key] = entry
        while len(self._entries) > self._cache_size:
            _, old = self._entries.popitem(last=False)
            task = asyncio.get_running_loop().create_task(old.session.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return entry

    async def post(
        self,
        client_config: JSON,
        path_hint: str,
        body: JSON,
        *,
        timeout: float,  # noqa: ASYNC109 - also sent to the webhook as ?timeout=
        webhook_name: str,
        client_timeout: bool = False,
    ) -> JSON:
        """POST ``body`` as JSON and return the JSON object answered.

        ``client_config`` is a WebhookClientConfig; ``path_hint`` only labels the call in
        logs (``convert``, ``validate``…): the path is always the configured one, as
        upstream. ``timeout`` (seconds) bounds the whole call and goes into the URL as
        ``?timeout=``; ``client_timeout=True`` words an expiry as Go's ``http.Client``
        timeout does (conversion webhooks), otherwise as a context deadline (admission).
        Raises a :class:`WebhookError`; any 2xx answer counts as success, as in client-go.
        """
        entry = self._entry(client_config, webhook_name)
        t = entry.target
        shown = f"{t.base}{t.path}?timeout={go_duration(timeout)}"
        url = URL(shown, encoded=True)
        rec = _Dial()
        token = _dial.set(rec)
        stage = "headers"
        data = orjson.dumps(body)
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, */*",
            "User-Agent": self._user_agent,
        }
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                async with entry.session.post(url, data=data, headers=headers) as resp:
                    stage = "body"
                    payload = await resp.read()
                    status = resp.status
                    content_type = resp.headers.get("Content-Type", "")
        except TimeoutError:
            raise self._timeout(webhook_name, shown, stage, client_timeout) from None
        except aiohttp.ClientConnectorCertificateError as e:
            cert_err = e.certificate_error
            leaf = None
            addr = rec.addr or (_url_addr(t) if t.service is None else None)
            if addr is not None:
                # Only to word the error; never past the caller's deadline by much.
                left = deadline - asyncio.get_running_loop().time()
                leaf = await _peer_leaf(addr, t.server_name, min(max(left, 0.1), 2.0))
            if isinstance(cert_err, ssl.SSLCertVerificationError):
                text = _x509_text(cert_err, leaf, t.server_name)
            else:
                text = f"x509: {cert_err}"
            raise WebhookTLSError(
                webhook_name, f"Post {go_quote(shown)}: tls: failed to verify certificate: {text}"
            ) from None
        except aiohttp.ClientConnectorSSLError as e:
            raise WebhookTLSError(
                webhook_name, f"Post {go_quote(shown)}: {_ssl_text(e.os_error)}"
            ) from None
        except aiohttp.ClientConnectorDNSError as e:
            inner = e.os_error
            if isinstance(inner, _ResolveFailed):
                text = str(rec.error) if rec.error is not None else str(inner)
            else:
                host = urllib.parse.urlsplit(t.base).hostname or t.server_name
                text = f"dial tcp: lookup {host}: no such host"
            raise WebhookConnectError(webhook_name, f"Post {go_quote(shown)}: {text}") from None
        except aiohttp.ClientConnectorError as e:
            addr = rec.addr or _url_addr(t)
            text = f"dial tcp {_join_host_port(*addr)}: connect: {_os_text(e.os_error)}"
            raise WebhookConnectError(webhook_name, f"Post {go_quote(shown)}: {text}") from None
        except aiohttp.ServerDisconnectedError:
            detail = f"Post {go_quote(shown)}: EOF"
            if stage == "body":
                detail = _read_error("unexpected EOF")
            raise WebhookCallError(webhook_name, detail) from None
        except aiohttp.ClientPayloadError:
            raise WebhookCallError(webhook_name, _read_error("unexpected EOF")) from None
        except aiohttp.ClientResponseError:
            broken = "net/http: HTTP/1.x transport connection broken: malformed HTTP response"
            raise WebhookCallError(webhook_name, f"Post {go_quote(shown)}: {broken}") from None
        except aiohttp.ClientOSError as e:
            text = _os_text(e)
            if stage == "body":
                raise WebhookCallError(webhook_name, _read_error(text)) from None
            raise WebhookCallError(webhook_name, f"Post {go_quote(shown)}: {text}") from None
        finally:
            _dial.reset(token)
        log.debug("webhook %s (%s) %s -> %d", webhook_name, path_hint, shown, status)

        if not 200 <= status <= 206:
            st = _status_from_response(status, content_type, payload)
            raise WebhookStatusError(webhook_name, str(st.get("message") or ""), status=st)
        if not payload:
            ct = content_type or "application/json"
            raise WebhookResponseError(
                webhook_name,
                f"0-length response with status code: {status} and content type: {ct}",
            )
        doc = _decode_object(payload)
        if isinstance(doc, str):
            raise WebhookResponseError(webhook_name, doc)
        return doc

    @staticmethod
    def _timeout(name: str, shown: str, stage: str, client_timeout: bool) -> WebhookTimeoutError:
        if stage == "headers":
            why = "context deadline exceeded"
            if client_timeout:
                why += " (Client.Timeout exceeded while awaiting headers)"
            return WebhookTimeoutError(name, f"Post {go_quote(shown)}: {why}")
        why = "context deadline exceeded"
        if client_timeout:
            why += " (Client.Timeout or context cancellation while reading body)"
        return WebhookTimeoutError(name, _read_error(why))


def _read_error(why: str) -> str:
    return f"unexpected error when reading response body. Please retry. Original error: {why}"


def _url_addr(t: _Target) -> tuple[str, int]:
    u = urllib.parse.urlsplit(t.base)
    return (u.hostname or "", u.port or 443)


def _ssl_text(e: OSError) -> str:
    """Go's wording for the handshake failures people meet (plain HTTP on the port…)."""
    reason = getattr(e, "reason", None) or ""
    if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
        return "http: server gave HTTP response to HTTPS client"
    if reason.startswith("TLSV1_ALERT_") or reason.startswith("SSLV3_ALERT_"):
        alert = reason.split("_ALERT_", 1)[1].lower().replace("_", " ")
        return f"remote error: tls: {alert}"
    if isinstance(e, ConnectionResetError) or reason == "UNEXPECTED_EOF_WHILE_READING":
        return "EOF"
    return f"tls: {reason.lower().replace('_', ' ') or e}"
