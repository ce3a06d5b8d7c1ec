"""The webhook client and CRD conversion through a webhook, against a real HTTPS server.

A local aiohttp server with a certificate from a CA made here plays the user's webhook:
one path converts correctly, the others misbehave the ways webhooks do in the field
(wrong uid, wrong count, renamed object, invalid labels, a failure result, a slow
answer, non-JSON, HTTP errors). The service reference is resolved to the server's
loopback port, so TLS is checked against ``<name>.<namespace>.svc`` as upstream does.
Messages are compared whole, because users search for them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pyk8s.apiserver import certs
from pyk8s.apiserver.conversionwebhook import ConversionError, convert
from pyk8s.apiserver.webhook import (
    WebhookClient,
    WebhookConfigError,
    WebhookConnectError,
    WebhookError,
    WebhookResponseError,
    WebhookStatusError,
    WebhookTimeoutError,
    WebhookTLSError,
    go_duration,
)

JSON = dict[str, Any]
SVC_NAME, SVC_NS = "conv", "webhooks"
SERVER_NAME = f"{SVC_NAME}.{SVC_NS}.svc"


# --------------------------------------------------------------------------- PKI


@dataclass
class Pem:
    ca: bytes
    cert: bytes
    key: bytes


def _make_pem(dns: list[str], validity: datetime.timedelta = certs.LEAF_VALIDITY) -> Pem:
    ca, ca_key = certs._make_ca()
    key = certs._new_key()
    leaf = certs._sign_leaf(
        ca,
        ca_key,
        key,
        certs._name("webhook"),
        server=True,
        dns_names=dns,
        ips=[ipaddress.ip_address("127.0.0.1")],
        validity=validity,
    )
    return Pem(
        ca=ca.public_bytes(serialization.Encoding.PEM),
        cert=leaf.public_bytes(serialization.Encoding.PEM),
        key=certs._key_pem(key),
    )


@pytest.fixture(scope="module")
def pem() -> Pem:
    return _make_pem([SERVER_NAME, "localhost"])


@pytest.fixture(scope="module")
def other_ca() -> bytes:
    return _make_pem(["unused"]).ca


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --------------------------------------------------------------------------- the webhook


@dataclass
class Seen:
    path: str
    query: str
    host: str
    peer: tuple[str, int]
    body: JSON


@dataclass
class Hook:
    port: int
    plain_port: int
    seen: list[Seen] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"


def _converted(obj: JSON, desired: str) -> JSON:
    """The correct v1 <-> v2 conversion: spec.host <-> spec.hostname, plus a label."""
    out: JSON = orjson.loads(orjson.dumps(obj))
    out["apiVersion"] = desired
    spec = out.setdefault("spec", {})
    if desired.endswith("/v2") and "host" in spec:
        spec["hostname"] = spec.pop("host")
    elif desired.endswith("/v1") and "hostname" in spec:
        spec["host"] = spec.pop("hostname")
    meta = out["metadata"]
    meta.setdefault("labels", {})["converted-by"] = "webhook"
    meta["resourceVersion"] = "999"  # not the webhook's to change: restored
    meta["generation"] = 42
    return out


def _answer(review: JSON, objects: list[Any], **result: Any) -> JSON:
    req = review["request"]
    return {
        "apiVersion": review["apiVersion"],
        "kind": "ConversionReview",
        "response": {
            "uid": req["uid"],
            "convertedObjects": objects,
            "result": result or {"status": "Success"},
        },
    }


async def _handle(request: web.Request, hook: Hook) -> web.StreamResponse:
    body = await request.json()
    peer = request.transport.get_extra_info("peername") if request.transport else ("", 0)
    hook.seen.append(Seen(request.path, request.query_string, request.host, tuple(peer[:2]), body))
    path = request.path
    review = body
    req = review.get("request") or {}
    desired = req.get("desiredAPIVersion", "")
    good = [_converted(o, desired) for o in req.get("objects") or []]
    if path.startswith("/echo"):
        return web.json_response({"apiVersion": "v1", "kind": "Echo", "got": body})
    if path == "/convert":
        return web.json_response(_answer(review, good))
    if path == "/v1beta1":  # old-style answer: no uid, no apiVersion check
        return web.json_response(
            {"response": {"convertedObjects": good, "result": {"status": "Success"}}}
        )
    if path == "/wrong-uid":
        ans = _answer(review, good)
        ans["response"]["uid"] = "not-the-uid"
        return web.json_response(ans)
    if path == "/wrong-count":
        return web.json_response(_answer(review, []))
    if path == "/rename":
        for o in good:
            o["metadata"]["name"] = "renamed"
        return web.json_response(_answer(review, good))
    if path == "/old-version":
        return web.json_response(_answer(review, req["objects"]))
    if path == "/bad-label":
        for o in good:
            o["metadata"]["labels"]["bad key!"] = "x"
        return web.json_response(_answer(review, good))
    if path == "/fail":
        return web.json_response(
            _answer(review, [], status="Failure", message="cannot convert spec.host: empty")
        )
    if path == "/slow":
        await asyncio.sleep(5)
        return web.json_response(_answer(review, good))
    if path == "/boom":
        return web.Response(status=500, text="boom\n", content_type="text/plain")
    if path == "/forbidden":
        status = {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": "you shall not pass",
            "reason": "Forbidden",
            "code": 403,
        }
        return web.json_response(status, status=403)
    if path == "/not-json":
        return web.Response(text="not json", content_type="application/json")
    if path == "/empty":
        return web.Response(body=b"", content_type="application/json")
    return web.Response(status=404)


@contextlib.asynccontextmanager
async def _serve(pem: Pem, tmp_path: Path) -> AsyncIterator[Hook]:
    """The webhook over TLS with ``pem``'s certificate, plus the same app in plain HTTP."""
    (tmp_path / "tls.crt").write_bytes(pem.cert)
    (tmp_path / "tls.key").write_bytes(pem.key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    h = Hook(port=0, plain_port=0)

    async def handle(request: web.Request) -> web.StreamResponse:
        return await _handle(request, h)

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    plain = web.TCPSite(runner, "127.0.0.1", 0)
    await plain.start()
    h.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    h.plain_port = plain._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield h
    finally:
        await runner.cleanup()


@pytest.fixture
async def hook(pem: Pem, tmp_path: Path) -> AsyncIterator[Hook]:
    async with _serve(pem, tmp_path) as h:
        yield h


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _resolver(ports: dict[tuple[str, str, int], int]) -> Callable[..., Any]:
    async def resolve(namespace: str, name: str, port: int) -> tuple[str, int]:
        try:
            return "127.0.0.1", ports[(namespace, name, port)]
        except KeyError:
            raise LookupError(f'service "{name}" not found') from None

    return resolve


@pytest.fixture
async def client(hook: Hook) -> AsyncIterator[WebhookClient]:
    c = WebhookClient(_resolver({(SVC_NS, SVC_NAME, 443): hook.port}))
    yield c
    await c.close()


def _svc(pem: Pem | None, path: str, name: str = SVC_NAME, ca: bytes | None = None) -> JSON:
    cfg: JSON = {"service": {"namespace": SVC_NS, "name": name, "path": path}}
    if ca is not None:
        cfg["caBundle"] = _b64(ca)
    elif pem is not None:
        cfg["caBundle"] = _b64(pem.ca)
    return cfg


async def _fail(client: WebhookClient, cfg: JSON, *, within: float = 10) -> WebhookError:
    with pytest.raises(WebhookError) as ei:
        await client.post(cfg, "validate", {"x": 1}, timeout=within, webhook_name="w.example.com")
    return ei.value


# --------------------------------------------------------------------------- the client


def test_go_duration() -> None:
    assert [go_duration(s) for s in (30, 10, 1.5, 0.3, 90, 3600, 0)] == [
        "30s",
        "10s",
        "1.5s",
        "300ms",
        "1m30s",
        "1h0m0s",
        "0s",
    ]


async def test_service_reference_is_verified_as_svc_name_and_dialed_at_the_endpoint(
    client: WebhookClient, hook: Hook, pem: Pem
) -> None:
    got = await client.post(
        _svc(pem, "/echo/"), "validate", {"hello": "world"}, timeout=10, webhook_name="w"
    )
    assert got == {"apiVersion": "v1", "kind": "Echo", "got": {"hello": "world"}}
    seen = hook.seen[-1]
    assert seen.path == "/echo"  # cleaned as Go's path.Join does
    assert seen.query == "timeout=10s"
    assert seen.host.startswith(SERVER_NAME)


async def test_connections_are_reused(client: WebhookClient, hook: Hook, pem: Pem) -> None:
    for _ in range(3):
        await client.post(_svc(pem, "/echo"), "validate", {}, timeout=10, webhook_name="w")
    assert len({s.peer for s in hook.seen}) == 1


async def test_url_reference(client: WebhookClient, hook: Hook, pem: Pem) -> None:
    for url in (hook.url("/echo"), f"https://localhost:{hook.port}/echo"):
        got = await client.post(
            {"url": url, "caBundle": _b64(pem.ca)}, "v", {"a": 1}, timeout=2, webhook_name="w"
        )
        assert got["got"] == {"a": 1}
    assert hook.seen[-1].query == "timeout=2s"


async def test_connection_refused(pem: Pem) -> None:
    port = _free_port()
    async with WebhookClient(_resolver({(SVC_NS, SVC_NAME, 443): port})) as c:
        e = await _fail(c, _svc(pem, "/convert"))
    assert isinstance(e, WebhookConnectError)
    assert e.message == (
        'failed calling webhook "w.example.com": failed to call webhook: Post '
        f'"https://{SERVER_NAME}:443/convert?timeout=10s": dial tcp 127.0.0.1:{port}: '
        "connect: connection refused"
    )


async def test_unresolvable_service_uses_the_resolvers_words(
    client: WebhookClient, pem: Pem
) -> None:
    e = await _fail(client, _svc(pem, "/convert", name="nope"))
    assert isinstance(e, WebhookConnectError)
    assert e.detail == (
        f'Post "https://nope.{SVC_NS}.svc:443/convert?timeout=10s": service "nope" not found'
    )


async def test_timeout_is_a_context_deadline(client: WebhookClient, pem: Pem) -> None:
    e = await _fail(client, _svc(pem, "/slow"), within=0.3)
    assert isinstance(e, WebhookTimeoutError)
    assert e.message == (
        'failed calling webhook "w.example.com": failed to call webhook: Post '
        f'"https://{SERVER_NAME}:443/slow?timeout=300ms": context deadline exceeded'
    )


async def test_unknown_authority(client: WebhookClient, pem: Pem, other_ca: bytes) -> None:
    e = await _fail(client, _svc(None, "/convert", ca=other_ca))
    assert isinstance(e, WebhookTLSError)
    assert e.detail == (
        f'Post "https://{SERVER_NAME}:443/convert?timeout=10s": '
        "tls: failed to verify certificate: x509: certificate signed by unknown authority"
    )


async def test_without_ca_bundle_the_system_roots_are_used(client: WebhookClient) -> None:
    e = await _fail(client, _svc(None, "/convert"))
    assert e.detail.endswith("x509: certificate signed by unknown authority")


async def test_name_not_in_certificate(pem: Pem, hook: Hook) -> None:
    async with WebhookClient(_resolver({(SVC_NS, "other", 443): hook.port})) as c:
        e = await _fail(c, _svc(pem, "/convert", name="other"))
    assert isinstance(e, WebhookTLSError)
    assert e.detail == (
        f'Post "https://other.{SVC_NS}.svc:443/convert?timeout=10s": tls: failed to verify '
        f"certificate: x509: certificate is valid for {SERVER_NAME}, localhost, "
        f"not other.{SVC_NS}.svc"
    )


async def test_expired_certificate(tmp_path: Path) -> None:
    expired = _make_pem([SERVER_NAME], validity=-datetime.timedelta(minutes=30))
    not_after = x509.load_pem_x509_certificate(expired.cert).not_valid_after_utc
    async with (
        _serve(expired, tmp_path) as h,
        WebhookClient(_resolver({(SVC_NS, SVC_NAME, 443): h.port})) as c,
    ):
        e = await _fail(c, _svc(expired, "/echo"))
    assert isinstance(e, WebhookTLSError)
    assert e.detail.startswith(
        f'Post "https://{SERVER_NAME}:443/echo?timeout=10s": tls: failed to verify '
        "certificate: x509: certificate has expired or is not yet valid: current time "
    )
    assert e.detail.endswith(f" is after {not_after.strftime('%Y-%m-%dT%H:%M:%SZ')}")


async def test_evicted_clients_are_closed_and_rebuilt(hook: Hook, pem: Pem) -> None:
    resolve = _resolver({(SVC_NS, SVC_NAME, 443): hook.port})
    async with WebhookClient(resolve, cache_size=1) as c:
        for path in ("/echo", "/echo/a", "/echo"):
            await c.post(_svc(pem, path), "v", {}, timeout=5, webhook_name="w")
    assert [s.path for s in hook.seen] == ["/echo", "/echo/a", "/echo"]


async def test_plain_http_server(client: WebhookClient, hook: Hook, pem: Pem) -> None:
    url = f"https://127.0.0.1:{hook.plain_port}/echo"
    e = await _fail(client, {"url": url, "caBundle": _b64(pem.ca)})
    assert isinstance(e, WebhookTLSError)
    assert e.detail == f'Post "{url}?timeout=10s": http: server gave HTTP response to HTTPS client'


async def test_http_errors(client: WebhookClient, pem: Pem) -> None:
    e = await _fail(client, _svc(pem, "/boom"))
    assert isinstance(e, WebhookStatusError)
    assert e.code == 500
    assert e.message == (
        'failed calling webhook "w.example.com": failed to call webhook: an error on the '
        'server ("boom") has prevented the request from succeeding'
    )
    e = await _fail(client, _svc(pem, "/forbidden"))
    assert isinstance(e, WebhookStatusError)
    assert (e.code, e.detail) == (403, "you shall not pass")
    assert e.status is not None and e.status["reason"] == "Forbidden"


async def test_unusable_bodies(client: WebhookClient, pem: Pem) -> None:
    e = await _fail(client, _svc(pem, "/not-json"))
    assert isinstance(e, WebhookResponseError)
    assert e.detail == (
        "couldn't get version/kind; json parse error: "
        "invalid character 'n' looking for beginning of value"
    )
    e = await _fail(client, _svc(pem, "/empty"))
    assert e.detail == "0-length response with status code: 200 and content type: application/json"


async def test_config_errors(client: WebhookClient) -> None:
    e = await _fail(client, {})
    assert isinstance(e, WebhookConfigError)
    assert e.message == (
        'failed calling webhook "w.example.com": could not get REST client: failed calling '
        'webhook "w.example.com": webhook configuration must have either service or URL'
    )
    e = await _fail(client, _svc(None, "/x", ca=b"not a pem"))
    assert isinstance(e, WebhookConfigError)
    assert e.detail == "unable to load root certificates: unable to parse bytes as PEM block"


# --------------------------------------------------------------------------- conversion


def _crd(pem: Pem, path: str, review_versions: list[str] | None = None) -> JSON:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com",
            "names": {"kind": "CronTab", "plural": "crontabs"},
            "scope": "Namespaced",
            "conversion": {
                "strategy": "Webhook",
                "webhook": {
                    "clientConfig": _svc(pem, path),
                    "conversionReviewVersions": review_versions or ["v1", "v1beta1"],
                },
            },
        },
    }


def _crontab(name: str, version: str = "v1", **spec: Any) -> JSON:
    return {
        "apiVersion": f"stable.example.com/{version}",
        "kind": "CronTab",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "resourceVersion": "7",
            "generation": 1,
            "labels": {"app": "cron"},
        },
        "spec": spec or {"host": "a.example.com"},
    }


async def _conversion_error(
    client: WebhookClient, crd: JSON, objects: list[JSON], desired: str, **kw: Any
) -> ConversionError:
    with pytest.raises(ConversionError) as ei:
        await convert(client, crd, objects, desired, **kw)
    assert ei.value.code == 500
    return ei.value


async def test_convert_sends_only_what_needs_converting(
    client: WebhookClient, hook: Hook, pem: Pem
) -> None:
    a, b = _crontab("a"), _crontab("b", "v2", hostname="b.example.com")
    before = orjson.dumps([a, b])
    out = await convert(client, _crd(pem, "/convert"), [a, b], "stable.example.com/v2")

    review = hook.seen[-1].body
    assert hook.seen[-1].query == "timeout=30s"
    assert review["apiVersion"] == "apiextensions.k8s.io/v1"
    assert review["kind"] == "ConversionReview"
    assert review["request"]["desiredAPIVersion"] == "stable.example.com/v2"
    assert [o["metadata"]["name"] for o in review["request"]["objects"]] == ["a"]

    assert out[1] is b
    assert out[0]["apiVersion"] == "stable.example.com/v2"
    assert out[0]["spec"] == {"hostname": "a.example.com"}
    # labels and annotations are the webhook's to change; the rest of metadata is restored
    assert out[0]["metadata"] == {
        **a["metadata"],
        "labels": {"app": "cron", "converted-by": "webhook"},
    }
    assert orjson.dumps([a, b]) == before  # inputs untouched


async def test_convert_nothing_to_do_makes_no_call(
    client: WebhookClient, hook: Hook, pem: Pem
) -> None:
    b = _crontab("b", "v2")
    assert await convert(client, _crd(pem, "/convert"), [b], "stable.example.com/v2") == [b]
    assert hook.seen == []


async def test_convert_v1beta1_review(client: WebhookClient, hook: Hook, pem: Pem) -> None:
    crd = _crd(pem, "/v1beta1", ["v1beta1"])
    out = await convert(client, crd, [_crontab("a")], "stable.example.com/v2")
    assert hook.seen[-1].body["apiVersion"] == "apiextensions.k8s.io/v1beta1"
    assert out[0]["spec"] == {"hostname": "a.example.com"}


SUBJECT = "conversion webhook for stable.example.com/v1, Kind=CronTab"


async def test_convert_wrong_uid(client: WebhookClient, hook: Hook, pem: Pem) -> None:
    e = await _conversion_error(
        client, _crd(pem, "/wrong-uid"), [_crontab("a")], "stable.example.com/v2"
    )
    uid = hook.seen[-1].body["request"]["uid"]
    assert e.message == f'{SUBJECT} failed: expected response.uid="{uid}", got "not-the-uid"'
    assert e.status()["reason"] == ""
    internal = e.internal()
    assert (internal.code, internal.reason) == (500, "InternalError")
    assert internal.message == f"Internal error occurred: {e.message}"


async def test_convert_wrong_count(client: WebhookClient, pem: Pem) -> None:
    e = await _conversion_error(
        client, _crd(pem, "/wrong-count"), [_crontab("a")], "stable.example.com/v2"
    )
    assert e.message == f"{SUBJECT} returned 0 objects, expected 1"


async def test_convert_renamed_object_is_refused(client: WebhookClient, pem: Pem) -> None:
    e = await _conversion_error(
        client, _crd(pem, "/rename"), [_crontab("a")], "stable.example.com/v2"
    )
    assert e.message == f"{SUBJECT} returned invalid object: must have the same name: a != renamed"
    # several objects: upstream's list wording, the list named at the desired version
    e = await _conversion_error(
        client, _crd(pem, "/rename"), [_crontab("a"), _crontab("b")], "stable.example.com/v2"
    )
    assert e.message == (
        "conversion webhook for stable.example.com/v2, Kind=CronTabList returned invalid "
        "converted object at index 0: must have the same name: a != renamed"
    )


async def test_convert_wrong_api_version(client: WebhookClient, pem: Pem) -> None:
    e = await _conversion_error(
        client, _crd(pem, "/old-version"), [_crontab("a")], "stable.example.com/v2"
    )
    assert e.message == (
        f"{SUBJECT} returned invalid object at index 0: invalid groupVersion "
        "(expected stable.example.com/v2, received stable.example.com/v1)"
    )


async def test_convert_invalid_label(client: WebhookClient, pem: Pem) -> None:
    e = await _conversion_error(
        client, _crd(pem, "/bad-label"), [_crontab("a")], "stable.example.com/v2"
    )
    assert e.message.startswith(
        f'{SUBJECT} returned invalid metadata: metadata.labels: Invalid value: "bad key!": '
        "name part must consist of alphanumeric characters"
    )


async def test_convert_failure_result(client: WebhookClient, pem: Pem) -> None:
    e = await _conversion_error(
        client, _crd(pem, "/fail"), [_crontab("a")], "stable.example.com/v2"
    )
    assert e.message == f"{SUBJECT} failed: cannot convert spec.host: empty"


async def test_convert_timeout(client: WebhookClient, pem: Pem) -> None:
    e = await _conversion_error(
        client, _crd(pem, "/slow"), [_crontab("a")], "stable.example.com/v2", timeout=0.3
    )
    assert e.message == (
        f'{SUBJECT} failed: Post "https://{SERVER_NAME}:443/slow?timeout=300ms": '
        "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
    )


async def test_convert_bad_ca(client: WebhookClient, pem: Pem, other_ca: bytes) -> None:
    crd = _crd(pem, "/convert")
    crd["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"] = _b64(other_ca)
    e = await _conversion_error(client, crd, [_crontab("a")], "stable.example.com/v2")
    assert e.message == (
        f'{SUBJECT} failed: Post "https://{SERVER_NAME}:443/convert?timeout=30s": '
        "tls: failed to verify certificate: x509: certificate signed by unknown authority"
    )


async def test_convert_connection_refused(pem: Pem) -> None:
    port = _free_port()
    async with WebhookClient(_resolver({(SVC_NS, SVC_NAME, 443): port})) as c:
        e = await _conversion_error(
            c, _crd(pem, "/convert"), [_crontab("a")], "stable.example.com/v2"
        )
    assert e.message == (
        f'{SUBJECT} failed: Post "https://{SERVER_NAME}:443/convert?timeout=30s": '
        f"dial tcp 127.0.0.1:{port}: connect: connection refused"
    )
