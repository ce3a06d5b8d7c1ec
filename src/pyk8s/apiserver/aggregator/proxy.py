"""The API server as a client of extension API servers: proxying, health and discovery GETs.

Why this exists: a request for a group/version an APIService hands to a Service is not
served here; after authentication and authorization it is passed on, as kube-aggregator's
proxy handler does, to one ready endpoint of that Service (picked by
:class:`~pyk8s.apiserver.serviceresolver.ServiceResolver`, as conversion webhooks are
reached, over the pod network), over HTTPS:

* the backend's certificate is checked against ``spec.caBundle`` (the system roots when
  there is none) for the name ``<service>.<namespace>.svc``, or not at all with
  ``spec.insecureSkipTLSVerify``;
* the API server presents its front-proxy client certificate (``CN=front-proxy-client``)
  and says who the user is in ``X-Remote-User``, ``X-Remote-Group`` (one header per group)
  and ``X-Remote-Extra-<key>`` (key URL-escaped); the caller's own ``Authorization``,
  ``Impersonate-*`` and ``X-Remote-*`` headers are not passed on;
* request bodies stream to the backend; answers of unknown length (a watch) or over
  :data:`WHOLE_BODY` stream back, each event as the backend writes it, and smaller ones
  go back in one write;
* a backend that cannot be reached answers 503 with the dial error as plain text, as
  upstream's proxy does.

WebSocket upgrades are relayed message by message (the subprotocol offer passed on, the
one the backend picks answered, the close code of whichever side ends passed to the
other); other upgrades (SPDY) are not proxied and answer 501.

The availability controller and discovery use :meth:`Backends.get`: a short GET with the
front-proxy certificate, as ``system:kube-aggregator`` in ``system:masters``; the health
GET skips TLS verification, as upstream's does.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
import ssl
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from multidict import CIMultiDict

from pyk8s.apiserver.authn import UserInfo
from pyk8s.apiserver.serviceresolver import NoEndpoints, ServiceResolver
from pyk8s.apiserver.wsrelay import relay_messages, sendable_close_code

__all__ = ["BackendError", "Backends", "GetResult"]

log = logging.getLogger(__name__)

JSON = dict[str, Any]

#: the identity of the API server's own GETs to extension servers (upstream's)
AGGREGATOR_USER = "system:kube-aggregator"
AGGREGATOR_GROUPS = ("system:masters",)
#: upstream's http.Client timeout for the availability check
CHECK_TIMEOUT = 5.0
#: how long a dial to a backend may take before the proxy gives up
CONNECT_TIMEOUT = 30.0
#: answers of known length up to this size are read whole and sent in one write;
#: longer ones, and every answer of unknown length (a watch), stream
WHOLE_BODY = 256 * 1024

_HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
    )
)
#: headers about who is asking that this server already acted on (authentication,
#: impersonation): the backend hears the user only from the X-Remote-* headers we set
_CONSUMED_PREFIXES = ("x-remote-", "impersonate-")


class BackendError(Exception):
    """A GET could not reach the backend; the text is Go's (``Get "…": dial tcp …``)."""

    def __init__(self, url: str, text: str) -> None:
        super().__init__(text)
        self.url = url


@dataclass(frozen=True, slots=True)
class GetResult:
    url: str
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def _go_dial_error(host: str, port: int, err: OSError) -> str:
    reason = os.strerror(err.errno) if err.errno else str(err)
    reason = reason[:1].lower() + reason[1:]
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"dial tcp {shown}: connect: {reason}"


def _ca_bytes(spec: JSON) -> bytes | None:
    raw = spec.get("caBundle")
    if not raw:
        return None
    try:
        return base64.b64decode(str(raw), validate=True)
    except (binascii.Error, ValueError):
        return None


def _ssl_context(
    ca: bytes | None, insecure: bool, client_cert: tuple[Path, Path] | None
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.hostname_checks_common_name = False
        # Go does not insist on the extensions OpenSSL's strict mode wants
        strict = getattr(ssl, "VERIFY_X509_STRICT", 0)
        if strict:
            ctx.verify_flags &= ~strict
        if ca is not None:
            ctx.load_verify_locations(cadata=ca.decode("ascii", "replace"))
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if client_cert is not None:
        ctx.load_cert_chain(*client_cert)
    return ctx


def _service(apiservice: JSON) -> tuple[str, str, int]:
    svc = (apiservice.get("spec") or {}).get("service") or {}
    return str(svc.get("namespace", "")), str(svc.get("name", "")), int(svc.get("port") or 443)


def auth_proxy_headers(user: UserInfo) -> list[tuple[str, str]]:
    """client-go's ``SetAuthProxyHeaders``: the user, one header per group, extras by key."""
    out = [("X-Remote-User", user.name)]
    out += [("X-Remote-Group", g) for g in user.groups]
    for key, values in user.extra.items():
        escaped = urllib.parse.quote(key, safe="")
        out += [(f"X-Remote-Extra-{escaped}", v) for v in values]
    return out


class Backends:
    """HTTPS clients of the remote APIServices: one connection pool per APIService and
    TLS setting; ``resolver`` picks the endpoint of every new request."""

    def __init__(
        self, resolver: ServiceResolver, client_cert: tuple[Path, Path] | None = None
    ) -> None:
        self.resolver = resolver
        self.client_cert = client_cert
        self._sessions: dict[str, tuple[bytes, aiohttp.ClientSession]] = {}
        self._insecure: aiohttp.ClientSession | None = None
        #: pools replaced after a spec change: requests in flight finish on them
        self._retired: list[aiohttp.ClientSession] = []

    async def close(self) -> None:
        for _, session in self._sessions.values():
            await session.close()
        self._sessions.clear()
        for session in self._retired:
            await session.close()
        self._retired.clear()
        if self._insecure is not None:
            await self._insecure.close()
            self._insecure = None

    async def forget(self, name: str) -> None:
        """Close the pool of an APIService that is gone."""
        entry = self._sessions.pop(name, None)
        if entry is not None:
            await entry[1].close()

    def _new_session(self, ctx: ssl.SSLContext) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(ssl=ctx, limit=64, use_dns_cache=False)
        return aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT),
        )

    def _session(self, apiservice: JSON) -> aiohttp.ClientSession:
        spec = apiservice.get("spec") or {}
        key = orjson.dumps(
            [spec.get("service"), spec.get("caBundle"), spec.get("insecureSkipTLSVerify")],
            option=orjson.OPT_SORT_KEYS,
        )
        name = str(apiservice["metadata"]["name"])
        entry = self._sessions.get(name)
        if entry is not None and entry[0] == key:
            return entry[1]
        if entry is not None:
            self._retired.append(entry[1])
        ctx = _ssl_context(
            _ca_bytes(spec), spec.get("insecureSkipTLSVerify") is True, self.client_cert
        )
        session = self._new_session(ctx)
        self._sessions[name] = (key, session)
        return session

    def _insecure_session(self) -> aiohttp.ClientSession:
        if self._insecure is None:
            self._insecure = self._new_session(_ssl_context(None, True, self.client_cert))
        return self._insecure

    async def location(self, apiservice: JSON) -> tuple[str, str]:
        """``(https://host:port, tls server name)`` of one ready endpoint; raises
        :class:`~pyk8s.apiserver.serviceresolver.NoEndpoints`."""
        namespace, name, port = _service(apiservice)
        host, target = await self.resolver(namespace, name, port)
        shown = f"[{host}]:{target}" if ":" in host else f"{host}:{target}"
        return f"https://{shown}", f"{name}.{namespace}.svc"

    # ------------------------------------------------------------------ GETs

    async def get(
        self,
        apiservice: JSON,
        path: str,
        *,
        accept: str = "application/json",
        verify: bool = True,
        timeout: float = CHECK_TIMEOUT,  # noqa: ASYNC109 - Go's http.Client timeout
    ) -> GetResult:
        """GET ``path`` from one endpoint as the aggregator itself. Raises
        :class:`BackendError` (Go's text: ``Get "https://…": dial tcp …``) or
        :class:`~pyk8s.apiserver.serviceresolver.NoEndpoints`."""
        base, server_name = await self.location(apiservice)
        url = base + path
        session = self._session(apiservice) if verify else self._insecure_session()
        headers = CIMultiDict(
            auth_proxy_headers(UserInfo(AGGREGATOR_USER, groups=AGGREGATOR_GROUPS))
        )
        headers["Accept"] = accept
        try:
            async with session.get(
                url,
                headers=headers,
                server_hostname=server_name,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                body = await resp.read()
                return GetResult(url, resp.status, resp.headers.get("Content-Type", ""), body)
        except TimeoutError:
            raise BackendError(
                url,
                f'Get "{url}": context deadline exceeded '
                "(Client.Timeout exceeded while awaiting headers)",
            ) from None
        except aiohttp.ClientConnectorCertificateError as e:
            raise BackendError(
                url, f'Get "{url}": tls: failed to verify certificate: x509: {e.certificate_error}'
            ) from None
        except aiohttp.ClientConnectorError as e:
            host, _, port = base.removeprefix("https://").rpartition(":")
            raise BackendError(
                url, f'Get "{url}": {_go_dial_error(host.strip("[]"), int(port), e.os_error)}'
            ) from None
        except (aiohttp.ClientError, OSError) as e:
            raise BackendError(url, f'Get "{url}": {e}') from None

    # ------------------------------------------------------------------ the proxy

    async def proxy(
        self, request: web.Request, apiservice: JSON, user: UserInfo
    ) -> web.StreamResponse:
        """Pass ``request`` on to the APIService's backend and stream the answer back."""
        upgrade = request.headers.get("Upgrade", "")
        if upgrade and upgrade.lower() != "websocket":
            return web.Response(
                status=501,
                text=f"{upgrade} upgrades are not proxied to aggregated API servers\n",
            )
        try:
            base, server_name = await self.location(apiservice)
        except NoEndpoints as e:
            log.info("no endpoint for APIService %s: %s", apiservice["metadata"]["name"], e)
            return _unavailable("service unavailable")
        headers: CIMultiDict[str] = CIMultiDict()
        for name, value in request.headers.items():
            lowered = name.lower()
            if (
                lowered in _HOP_BY_HOP
                or lowered == "authorization"
                or lowered.startswith(_CONSUMED_PREFIXES)
            ):
                continue
            headers.add(name, value)
        for name, value in auth_proxy_headers(user):
            headers.add(name, value)
        if request.remote:
            forwarded = request.headers.get("X-Forwarded-For")
            headers["X-Forwarded-For"] = (
                f"{forwarded}, {request.remote}" if forwarded else request.remote
            )
        url = base + request.raw_path
        session = self._session(apiservice)
        if upgrade:
            return await _relay_websocket(request, session, url, headers, server_name)
        data = _body(request) if request.body_exists else None
        try:
            upstream = await session.request(
                request.method,
                url,
                headers=headers,
                data=data,
                server_hostname=server_name,
                allow_redirects=False,
            )
        except aiohttp.ClientConnectorCertificateError as e:
            return _unavailable(f"tls: failed to verify certificate: x509: {e.certificate_error}")
        except aiohttp.ClientConnectorError as e:
            host, _, port = base.removeprefix("https://").rpartition(":")
            return _unavailable(_go_dial_error(host.strip("[]"), int(port), e.os_error))
        except (aiohttp.ClientError, OSError) as e:
            return _unavailable(str(e) or type(e).__name__)
        async with upstream:
            response_headers: CIMultiDict[str] = CIMultiDict(
                (k, v) for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP
            )
            length = upstream.headers.get("Content-Length")
            if length is not None and int(length) <= WHOLE_BODY:
                # a small answer of known length goes back in one write
                try:
                    body = await upstream.read()
                except aiohttp.ClientError as e:
                    return _unavailable(str(e) or type(e).__name__)
                return web.Response(
                    status=upstream.status,
                    reason=upstream.reason,
                    body=body,
                    headers=response_headers,
                )
            resp = web.StreamResponse(
                status=upstream.status, reason=upstream.reason, headers=response_headers
            )
            if length is not None:
                resp.content_length = int(length)
            await resp.prepare(request)
            # the backend or the client going away mid-stream ends the response
            with contextlib.suppress(ConnectionResetError, aiohttp.ClientError):
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
            with contextlib.suppress(ConnectionResetError):
                await resp.write_eof()
        return resp


async def _relay_websocket(
    request: web.Request,
    session: aiohttp.ClientSession,
    url: str,
    headers: CIMultiDict[str],
    server_name: str,
) -> web.StreamResponse:
    """A WebSocket session handed to the backend: the client's subprotocol offer, then
    every message both ways, then the close code of whichever side ended."""
    offered = [
        p.strip()
        for value in request.headers.getall("Sec-WebSocket-Protocol", ())
        for p in value.split(",")
        if p.strip()
    ]
    for name in [h for h in headers if h.lower().startswith("sec-websocket-")]:
        del headers[name]
    try:
        upstream = await session.ws_connect(
            url,
            headers=headers,
            protocols=offered,
            server_hostname=server_name,
            max_msg_size=0,
        )
    except aiohttp.WSServerHandshakeError as e:
        return web.Response(status=e.status or 502, text=f"{e.message}\n")
    except aiohttp.ClientConnectorError as e:
        host, _, port = url.removeprefix("https://").partition("/")[0].rpartition(":")
        return _unavailable(_go_dial_error(host.strip("[]"), int(port), e.os_error))
    except (aiohttp.ClientError, OSError) as e:
        return _unavailable(str(e) or type(e).__name__)
    async with upstream:
        ws = web.WebSocketResponse(
            protocols=(upstream.protocol,) if upstream.protocol else (), max_msg_size=0
        )
        await ws.prepare(request)
        relays = [
            asyncio.create_task(relay_messages(ws, upstream)),
            asyncio.create_task(relay_messages(upstream, ws)),
        ]
        try:
            await asyncio.wait(relays, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for relay in relays:
                relay.cancel()
            await asyncio.gather(*relays, return_exceptions=True)
            await ws.close(code=sendable_close_code(upstream.close_code))
    return ws


def _unavailable(text: str) -> web.Response:
    """Upstream's ``http.Error(w, text, 503)``."""
    return web.Response(
        status=503,
        text=text + "\n",
        headers={"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"},
    )


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_any():
        yield chunk
