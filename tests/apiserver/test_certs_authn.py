"""PKI and authentication against real clients: kubectl, the ``kubernetes`` client, ssl.

A real TLS aiohttp server on a free loopback port runs the authenticator chain and
answers with the user it found, so each check goes through the same handshake and
headers users' tools produce -- EC keys in kubeconfigs, CERT_OPTIONAL client certs,
bearer tokens -- rather than through our own idea of them.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import ssl
import stat
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from pyk8s.apiserver.authn import (
    ANONYMOUS,
    CLOCK_LEEWAY,
    AuthenticationFailed,
    AuthenticatorChain,
    ServiceAccountTokenAuthenticator,
    TokenFileAuthenticator,
    UserInfo,
    X509Authenticator,
    issue_service_account_token,
    parse_token_csv,
)
from pyk8s.apiserver.authz import (
    AlwaysAllowAuthenticated,
    AuthorizerChain,
    Decision,
    PrivilegedGroups,
    RequestAttributes,
    forbidden,
)
from pyk8s.apiserver.certs import (
    Pki,
    ensure_pki,
    issue_client_cert,
    server_ssl_context,
    write_kubeconfig,
)

KUBECTL = "/usr/bin/kubectl"
needs_kubectl = pytest.mark.skipif(not os.access(KUBECTL, os.X_OK), reason="no kubectl")


@dataclass
class Server:
    url: str
    pki: Pki
    tmp: Path
    hits: list[str]
    service_accounts: dict[tuple[str, str], str]


def _user_json(user: UserInfo | None) -> Any:
    if user is None:
        return None
    return {
        "name": user.name,
        "uid": user.uid,
        "groups": list(user.groups),
        "extra": {k: list(v) for k, v in user.extra.items()},
    }


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return ensure_pki(tmp_path / "data", hostnames=["pyk8s.test"], ips=["10.43.0.1"])


@pytest.fixture
async def server(pki: Pki, tmp_path: Path) -> AsyncIterator[Server]:
    token_file = tmp_path / "tokens.csv"
    token_file.write_text('secret-token,alice,uid-alice,"dev,ops"\nbob-token,bob,uid-bob\n')
    service_accounts = {("default", "builder"): "sa-uid-1"}

    async def lookup(ns: str, name: str) -> str | None:
        return service_accounts.get((ns, name))

    chain = AuthenticatorChain(
        [
            X509Authenticator(),
            TokenFileAuthenticator(token_file),
            ServiceAccountTokenAuthenticator(pki, service_account_lookup=lookup),
        ]
    )
    hits: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        hits.append(request.path)
        try:
            user = await chain.authenticate(request)
        except AuthenticationFailed as e:
            return web.json_response(e.status(), status=e.code)
        return web.json_response({"user": _user_json(user)})

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(pki))
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Server(f"https://127.0.0.1:{port}", pki, tmp_path, hits, service_accounts)
    finally:
        await runner.cleanup()


def _client_ctx(
    pki: Pki, cert: tuple[bytes, bytes] | None = None, *, tmp: Path | None = None
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # Python 3.13's default; be ready for it
    if cert is not None:
        assert tmp is not None
        cf, kf = tmp / "client.crt", tmp / "client.key"
        cf.write_bytes(cert[0])
        kf.write_bytes(cert[1])
        ctx.load_cert_chain(cf, kf)
    return ctx


async def _get(
    url: str,
    ctx: ssl.SSLContext,
    headers: dict[str, str] | None = None,
    server_hostname: str | None = None,
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(url, ssl=ctx, headers=headers or {}, server_hostname=server_hostname) as r,
    ):
        return r.status, await r.json()


async def _kubectl(kubeconfig: Path, *args: str, home: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        KUBECTL,
        "--kubeconfig",
        str(kubeconfig),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"HOME": str(home), "PATH": os.environ.get("PATH", "")},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


# --------------------------------------------------------------------------- kubectl


@needs_kubectl
async def test_kubectl_admin_kubeconfig(server: Server) -> None:
    kc = server.tmp / "admin.yaml"
    write_kubeconfig(kc, server=server.url, pki=server.pki)
    assert stat.S_IMODE(kc.stat().st_mode) == 0o600
    rc, out, err = await _kubectl(kc, "get", "--raw", "/whoami", home=server.tmp)
    assert rc == 0, err
    user = json.loads(out)["user"]
    assert user["name"] == "system:admin"
    assert user["groups"] == ["system:masters", "system:authenticated"]


@needs_kubectl
async def test_kubectl_via_localhost_name(server: Server) -> None:
    kc = server.tmp / "admin.yaml"
    write_kubeconfig(kc, server=server.url.replace("127.0.0.1", "localhost"), pki=server.pki)
    rc, out, err = await _kubectl(kc, "get", "--raw", "/whoami", home=server.tmp)
    assert rc == 0, err
    assert json.loads(out)["user"]["name"] == "system:admin"


@needs_kubectl
async def test_kubectl_token_file_user(server: Server) -> None:
    kc = server.tmp / "alice.yaml"
    write_kubeconfig(kc, server=server.url, pki=server.pki, user="alice", token="secret-token")
    rc, out, err = await _kubectl(kc, "get", "--raw", "/whoami", home=server.tmp)
    assert rc == 0, err
    assert json.loads(out)["user"] == {
        "name": "alice",
        "uid": "uid-alice",
        "extra": {},
        "groups": ["dev", "ops", "system:authenticated"],
    }


@needs_kubectl
async def test_kubectl_service_account_token(server: Server) -> None:
    token = issue_service_account_token(
        server.pki,
        "default",
        "builder",
        "sa-uid-1",
        expiry=datetime.timedelta(minutes=10),
        pod=("web-0", "pod-uid-1"),
    )
    kc = server.tmp / "sa.yaml"
    write_kubeconfig(kc, server=server.url, pki=server.pki, token=token)
    rc, out, err = await _kubectl(kc, "get", "--raw", "/whoami", home=server.tmp)
    assert rc == 0, err
    user = json.loads(out)["user"]
    assert user["name"] == "system:serviceaccount:default:builder"
    assert user["uid"] == "sa-uid-1"
    assert user["groups"] == [
        "system:serviceaccounts",
        "system:serviceaccounts:default",
        "system:authenticated",
    ]
    assert user["extra"]["authentication.kubernetes.io/pod-name"] == ["web-0"]


@needs_kubectl
async def test_kubectl_bad_token_is_unauthorized(server: Server) -> None:
    kc = server.tmp / "bad.yaml"
    write_kubeconfig(kc, server=server.url, pki=server.pki, token="not-a-token")
    rc, _, err = await _kubectl(kc, "get", "--raw", "/whoami", home=server.tmp)
    assert rc != 0
    assert "Unauthorized" in err


@needs_kubectl
async def test_kubectl_issued_client_cert(server: Server) -> None:
    cert = issue_client_cert(server.pki, "system:node:n1", ["system:nodes"])
    kc = server.tmp / "node.yaml"
    write_kubeconfig(kc, server=server.url, pki=server.pki, user="node", client_cert=cert)
    rc, out, err = await _kubectl(kc, "get", "--raw", "/whoami", home=server.tmp)
    assert rc == 0, err
    user = json.loads(out)["user"]
    assert (user["name"], user["groups"]) == (
        "system:node:n1",
        ["system:nodes", "system:authenticated"],
    )


# --------------------------------------------------------------------------- kubernetes client


async def test_kubernetes_python_client_admin(server: Server) -> None:
    kubernetes = pytest.importorskip("kubernetes")
    kc = server.tmp / "admin.yaml"
    write_kubeconfig(kc, server=server.url, pki=server.pki)

    def call() -> Any:
        api = kubernetes.config.new_client_from_config(config_file=str(kc))
        try:
            resp = api.call_api("GET", api.configuration.host + "/whoami")
            resp.read()
            return json.loads(resp.data)
        finally:
            api.close()

    body = await asyncio.to_thread(call)
    assert body["user"]["name"] == "system:admin"


# --------------------------------------------------------------------------- python ssl


async def test_no_credentials_is_none(server: Server) -> None:
    status, body = await _get(server.url + "/whoami", _client_ctx(server.pki))
    assert (status, body) == (200, {"user": None})


async def test_admin_cert_python_ssl(server: Server) -> None:
    pki = server.pki
    ctx = _client_ctx(
        pki, (pki.admin_cert.read_bytes(), pki.admin_key.read_bytes()), tmp=server.tmp
    )
    for host in ("localhost", "pyk8s.test", "kubernetes.default.svc"):
        status, body = await _get(server.url + "/whoami", ctx, server_hostname=host)
        assert status == 200
        assert body["user"]["name"] == "system:admin"
        assert body["user"]["groups"] == ["system:masters", "system:authenticated"]


async def test_bad_bearer_token_401(server: Server) -> None:
    ctx = _client_ctx(server.pki)
    status, body = await _get(server.url + "/x", ctx, {"Authorization": "Bearer nope"})
    assert status == 401
    assert body["reason"] == "Unauthorized"
    assert body["code"] == 401


async def test_websocket_protocol_token(server: Server) -> None:
    enc = base64.urlsafe_b64encode(b"bob-token").rstrip(b"=").decode()
    headers = {
        "Sec-WebSocket-Protocol": f"v5.channel.k8s.io, base64url.bearer.authorization.k8s.io.{enc}"
    }
    status, body = await _get(server.url + "/x", _client_ctx(server.pki), headers)
    assert status == 200
    assert body["user"]["name"] == "bob"


async def _handshake_fails(server: Server, cert: tuple[bytes, bytes]) -> None:
    ctx = _client_ctx(server.pki, cert, tmp=server.tmp)
    before = len(server.hits)
    with pytest.raises((aiohttp.ClientError, ssl.SSLError, OSError)):
        await _get(server.url + "/whoami", ctx)
    assert len(server.hits) == before, "the request must never reach a handler"


async def test_cert_from_other_ca_rejected(server: Server, tmp_path: Path) -> None:
    other = ensure_pki(tmp_path / "other", hostnames=[], ips=[])
    await _handshake_fails(server, (other.admin_cert.read_bytes(), other.admin_key.read_bytes()))


async def test_serving_cert_is_not_a_client_cert(server: Server) -> None:
    pki = server.pki
    await _handshake_fails(server, (pki.serving_cert.read_bytes(), pki.serving_key.read_bytes()))


async def test_server_cert_fails_for_unknown_name(server: Server) -> None:
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await _get(server.url + "/", _client_ctx(server.pki), server_hostname="evil.example")


# --------------------------------------------------------------------------- service accounts


async def test_service_account_token_failures(server: Server, tmp_path: Path) -> None:
    ctx = _client_ctx(server.pki)

    async def status_of(token: str) -> int:
        status, _ = await _get(server.url + "/x", ctx, {"Authorization": f"Bearer {token}"})
        return status

    pki = server.pki
    ok = issue_service_account_token(pki, "default", "builder", "sa-uid-1")
    assert await status_of(ok) == 200
    expired = issue_service_account_token(
        pki,
        "default",
        "builder",
        "sa-uid-1",
        expiry=datetime.timedelta(minutes=1),
        now=datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1),
    )
    assert await status_of(expired) == 401
    wrong_aud = issue_service_account_token(pki, "default", "builder", "sa-uid-1", ["vault"])
    assert await status_of(wrong_aud) == 401
    recreated = issue_service_account_token(pki, "default", "builder", "old-uid")
    assert await status_of(recreated) == 401
    other = ensure_pki(tmp_path / "other", hostnames=[], ips=[])
    forged = issue_service_account_token(other, "default", "builder", "sa-uid-1")
    assert await status_of(forged) == 401
    foreign = jwt.encode({"iss": "someone-else", "sub": "x"}, "k" * 32, algorithm="HS256")
    assert await status_of(foreign) == 401  # no one's token: invalid bearer token
    del server.service_accounts[("default", "builder")]
    assert await status_of(ok) == 401


async def test_service_account_token_claims(pki: Pki) -> None:
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    token = issue_service_account_token(
        pki, "ns1", "sa1", "u1", ["aud1"], datetime.timedelta(seconds=3600), now=now
    )
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256" and header["kid"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == "https://kubernetes.default.svc.cluster.local"
    assert claims["sub"] == "system:serviceaccount:ns1:sa1"
    assert claims["aud"] == ["aud1"]
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["kubernetes.io"]["serviceaccount"] == {"name": "sa1", "uid": "u1"}
    auth = ServiceAccountTokenAuthenticator(pki, audiences=["aud1"])
    with pytest.raises(AuthenticationFailed):  # 2030 token: not valid yet
        await auth.authenticate_token(token)


async def test_service_account_token_verified_once_until_it_expires(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = issue_service_account_token(pki, "ns1", "sa1", "u1")
    auth = ServiceAccountTokenAuthenticator(pki)
    first = await auth.authenticate_token(token)
    assert first is not None and first.name == "system:serviceaccount:ns1:sa1"

    def no_decode(*_args: Any, **_kwargs: Any) -> Any:
        raise jwt.InvalidTokenError("decoded again")

    monkeypatch.setattr(jwt, "decode", no_decode)
    assert await auth.authenticate_token(token) == first  # remembered
    expired = time.time() + 3600 + CLOCK_LEEWAY.total_seconds() + 1
    monkeypatch.setattr(time, "time", lambda: expired)
    assert await auth.authenticate_token(token) is None  # forgotten: decoded (and refused)


# --------------------------------------------------------------------------- PKI files


def test_ensure_pki_reuses_and_regenerates_serving_cert(tmp_path: Path) -> None:
    data = tmp_path / "data"
    p1 = ensure_pki(data, hostnames=["a.example"], ips=["10.0.0.1"])
    files = [
        p1.ca_cert,
        p1.ca_key,
        p1.serving_cert,
        p1.serving_key,
        p1.admin_cert,
        p1.admin_key,
        p1.sa_key,
        p1.sa_pub,
    ]
    first = {f: f.read_bytes() for f in files}
    for f in (p1.ca_key, p1.serving_key, p1.admin_key, p1.sa_key):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert stat.S_IMODE(p1.dir.stat().st_mode) == 0o700

    p2 = ensure_pki(data, hostnames=["a.example"], ips=["10.0.0.1"])
    assert p2 == p1
    assert {f: f.read_bytes() for f in files} == first

    ensure_pki(data, hostnames=["b.example"], ips=["10.0.0.1"])
    changed = {f for f in files if f.read_bytes() != first[f]}
    assert changed == {p1.serving_cert}
    cert = x509.load_pem_x509_certificate(p1.serving_cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = set(san.get_values_for_type(x509.DNSName))
    assert "b.example" in dns and "a.example" not in dns
    assert {
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    } <= dns
    assert {str(i) for i in san.get_values_for_type(x509.IPAddress)} >= {
        "127.0.0.1",
        "::1",
        "10.0.0.1",
    }
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(first[p1.ca_cert]))


def test_ensure_pki_replaces_expired_leaf_and_broken_ca(tmp_path: Path) -> None:
    data = tmp_path / "data"
    p = ensure_pki(data, hostnames=[], ips=[])
    ca = p.ca_cert.read_bytes()
    p.admin_cert.write_bytes(b"garbage")
    ensure_pki(data, hostnames=[], ips=[])
    assert x509.load_pem_x509_certificate(p.admin_cert.read_bytes())
    assert p.ca_cert.read_bytes() == ca
    p.ca_key.unlink()
    serving = p.serving_cert.read_bytes()
    sa = p.sa_key.read_bytes()
    ensure_pki(data, hostnames=[], ips=[])
    assert p.ca_cert.read_bytes() != ca
    assert p.serving_cert.read_bytes() != serving  # reissued by the new CA
    assert p.sa_key.read_bytes() == sa  # tokens outlive a CA change


def test_keys_are_ecdsa_p256(pki: Pki) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(pki.admin_key.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"


def test_kubeconfig_embeds_data(pki: Pki, tmp_path: Path) -> None:
    import yaml

    kc = tmp_path / "k.yaml"
    write_kubeconfig(kc, server="https://127.0.0.1:6443", pki=pki)
    cfg = yaml.safe_load(kc.read_text())
    assert cfg["current-context"] == "default"
    cluster = cfg["clusters"][0]["cluster"]
    assert base64.b64decode(cluster["certificate-authority-data"]) == pki.ca_cert.read_bytes()
    user = cfg["users"][0]["user"]
    assert base64.b64decode(user["client-key-data"]) == pki.admin_key.read_bytes()


# --------------------------------------------------------------------------- units


def test_parse_token_csv() -> None:
    tokens = parse_token_csv('t1,u1,id1,"a,b"\n\nt2, u2, id2\nt3,u3,id3,""\n')
    assert tokens["t1"] == UserInfo("u1", "id1", ("a", "b"))
    assert tokens["t2"] == UserInfo("u2", "id2")
    assert tokens["t3"].groups == ()
    with pytest.raises(ValueError, match="3 columns"):
        parse_token_csv("t1,u1\n")


async def test_authorizer_chain() -> None:
    admin = UserInfo("root", groups=("system:masters", "system:authenticated"))
    alice = UserInfo("alice", groups=("system:authenticated",))
    attrs = RequestAttributes("list", resource="pods", namespace="default")

    class Deny:
        async def authorize(self, user: UserInfo, attributes: RequestAttributes) -> Decision:
            return Decision.deny("nope") if user.name == "alice" else Decision.abstain()

    chain = AuthorizerChain([PrivilegedGroups(), Deny(), AlwaysAllowAuthenticated()])
    assert (await chain.authorize(admin, attrs)).allowed
    d = await chain.authorize(alice, attrs)
    assert not d.allowed and d.reason == "nope"
    d = await chain.authorize(ANONYMOUS, attrs)
    assert not d.allowed and d.no_opinion


def test_forbidden_messages() -> None:
    bob = UserInfo("bob")
    e = forbidden(bob, RequestAttributes("list", resource="pods", namespace="default"))
    assert e.code == 403 and e.reason == "Forbidden"
    assert e.message == (
        'pods is forbidden: User "bob" cannot list resource "pods" in API '
        'group "" in the namespace "default"'
    )
    e = forbidden(bob, RequestAttributes("get", "apps", "deployments", "scale", "ns", "web"))
    assert e.message == (
        'deployments.apps "web" is forbidden: User "bob" cannot get resource '
        '"deployments/scale" in API group "apps" in the namespace "ns"'
    )
    assert e.details == {"kind": "deployments", "group": "apps", "name": "web"}
    e = forbidden(bob, RequestAttributes("get", resource="nodes"), "RBAC: no")
    assert e.message.endswith("at the cluster scope: RBAC: no")
    e = forbidden(bob, RequestAttributes("get", path="/metrics", resource_request=False))
    assert e.message == 'forbidden: User "bob" cannot get path "/metrics"'
