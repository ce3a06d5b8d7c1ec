"""The certificate controllers against a real API server: a node bootstraps with the
cluster's join token (csrapproving approves after a SubjectAccessReview, csrsigning signs
with the cluster CA), renews its own certificate and keeps working with the new one
without a restart; signer checks, expirationSeconds, the kube-proxy certificate, and the
token cleaner."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from pyk8s.client import Client, ClientError, Config, load_kubeconfig
from pyk8s.client import certificates as certs
from pyk8s.controllers.csrcleaner import deadline
from pyk8s.controllers.csrsigning import CSRS, SIGNERS, Settings
from pyk8s.controllers.runtime import Manager
from pyk8s.server.controller_manager import setup_controllers
from pyk8s.server.identities import JOIN_GROUP
from tests.controllers.conftest import eventually
from tests.integration.conftest import Server, free_port

KUBELET_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"


@pytest.fixture
async def signing(cm_server: Server) -> AsyncIterator[Manager]:
    """csrsigning + csrapproving + tokencleaner in this loop, signing with the CA."""
    async with signing_controllers(cm_server) as manager:
        yield manager


@contextlib.asynccontextmanager
async def signing_controllers(server: Server) -> AsyncIterator[Manager]:
    tls = server.data_dir / "server" / "tls"
    client = Client(load_kubeconfig(server.kubeconfig))
    await client.__aenter__()
    manager = Manager(client)
    manager.settings["csrsigning"] = Settings(str(tls / "ca.crt"), str(tls / "ca.key"))
    names = ["csrsigning", "csrapproving", "tokencleaner"]
    assert setup_controllers(manager, names) == names
    stop = asyncio.Event()
    task = asyncio.create_task(manager.run(stop))
    await eventually(lambda: asyncio.sleep(0, manager.healthy), within=30)
    # the server creates its join token's Secret just after it starts serving
    token_id = (server.data_dir / "server" / "token").read_text().split(".")[0]
    secrets = await client.resource("v1", "Secret")

    async def token_exists() -> bool:
        try:
            return bool(await client.get(secrets, f"bootstrap-token-{token_id}", "kube-system"))
        except ClientError:
            return False

    await eventually(token_exists, within=30)
    yield manager
    stop.set()
    await asyncio.wait_for(task, 30)
    await client.__aexit__(None, None, None)


def bootstrap_client(server: Server) -> Client:
    token = (server.data_dir / "server" / "token").read_text().strip()
    ca = server.data_dir / "server" / "tls" / "ca.crt"
    return Client(Config(server=server.url, ca_file=str(ca), token=token))


async def whoami(client: Client) -> dict[str, Any]:
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    out = await client.request(
        "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body=review
    )
    info: dict[str, Any] = out["status"]["userInfo"]
    return info


def subject(pem: bytes) -> tuple[str, list[str]]:
    cert = x509.load_pem_x509_certificate(pem)
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return str(cn), [str(o) for o in orgs]


async def approved_by(admin: Client, pem: bytes) -> str:
    """The approval message of the CSR that produced ``pem``."""
    for csr in (await admin.list(CSRS))["items"]:
        cert = (csr.get("status") or {}).get("certificate")
        if cert and base64.b64decode(cert) == pem:
            conds = csr["status"]["conditions"]
            assert conds[0]["reason"] == "AutoApproved"
            return str(conds[0]["message"])
    raise AssertionError("no CSR issued this certificate")


async def test_node_bootstraps_renews_and_keeps_working(
    signing: Manager, cm_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = signing.client
    async with bootstrap_client(cm_server) as boot:
        me = await whoami(boot)
        token_id = (cm_server.data_dir / "server" / "token").read_text().split(".")[0]
        assert me["username"] == f"system:bootstrap:{token_id}"
        assert {"system:bootstrappers", JOIN_GROUP} <= set(me["groups"])
        pem_file = tmp_path / "kubelet-client-current.pem"
        manager = certs.CertificateManager(
            pem_file, "system:node:n1", ["system:nodes"], KUBELET_SIGNER
        )
        cert, _key = await manager.obtain(boot)
    assert subject(cert) == ("system:node:n1", ["system:nodes"])
    assert await approved_by(admin, cert) == (
        "Auto approving kubelet client certificate after SubjectAccessReview."
    )
    # a restarted kubelet keeps it: no request, so an unreachable server does not matter
    from pyk8s.server import kubelet

    unreachable = tmp_path / "bootstrap.kubeconfig"
    certs.write_cert_kubeconfig(unreachable, "https://127.0.0.1:9", b"", pem_file, "x")
    opts = kubelet.Options(
        tmp_path, kubeconfig=tmp_path / "node.kubeconfig", bootstrap_kubeconfig=unreachable
    )
    await kubelet.bootstrap_client_certificate(opts, manager)
    assert pem_file.read_bytes().startswith(cert.rstrip(b"\n"))
    assert "kubelet-client-current.pem" in opts.kubeconfig.read_text()  # type: ignore[union-attr]
    ca = (cm_server.data_dir / "server" / "tls" / "ca.crt").read_bytes()
    kubeconfig = tmp_path / "kubelet.kubeconfig"
    certs.write_cert_kubeconfig(kubeconfig, cm_server.url, ca, pem_file, "default-auth")
    async with Client(load_kubeconfig(kubeconfig)) as node:
        me = await whoami(node)
        assert me["username"] == "system:node:n1"
        assert "system:nodes" in me["groups"]
        # rotation: the deadline has passed, so the manager renews at once with the
        # node's own certificate (selfnodeclient) and the client swaps to it
        real = certs.rotation_deadline
        calls = []

        def due_once(*args: Any) -> datetime.datetime:
            calls.append(args)
            if len(calls) == 1:
                return datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
            return real(*args)

        monkeypatch.setattr(certs, "rotation_deadline", due_once)
        rotated = asyncio.Event()

        def on_rotated(path: Path) -> None:
            node.reload_client_certificate(str(path), str(path), grace=0.1)
            rotated.set()

        task = asyncio.create_task(manager.rotate_forever(node, on_rotated))
        try:
            await asyncio.wait_for(rotated.wait(), 30)
        finally:
            task.cancel()
        renewed = pem_file.read_bytes()
        new_cert = renewed[: renewed.index(b"-----END CERTIFICATE-----") + 26]
        assert new_cert.strip() != cert.strip()
        assert await approved_by(admin, new_cert.strip() + b"\n") == (
            "Auto approving self kubelet client certificate after SubjectAccessReview."
        )
        await asyncio.sleep(0.3)  # past the grace: the old connections are closed
        assert (await whoami(node))["username"] == "system:node:n1"


async def test_kube_proxy_certificate_for_a_joining_host(
    signing: Manager, cm_server: Server, tmp_path: Path
) -> None:
    async with bootstrap_client(cm_server) as boot:
        manager = certs.CertificateManager(
            tmp_path / "proxy.pem", "system:kube-proxy", [], "kubernetes.io/kube-apiserver-client"
        )
        cert, _ = await manager.obtain(boot)
    assert subject(cert) == ("system:kube-proxy", [])
    assert "kube-proxy" in await approved_by(signing.client, cert)
    # the agent renews it with itself (no join token), as a node renews its own
    ca = (cm_server.data_dir / "server" / "tls" / "ca.crt").read_bytes()
    kubeconfig = tmp_path / "proxy.kubeconfig"
    certs.write_cert_kubeconfig(kubeconfig, cm_server.url, ca, manager.pem_file, "proxy")
    async with Client(load_kubeconfig(kubeconfig)) as proxy:
        renewed, _ = await manager.obtain(proxy)
    assert renewed != cert and subject(renewed) == ("system:kube-proxy", [])
    assert "kube-proxy" in await approved_by(signing.client, renewed)


async def _approve(admin: Client, name: str) -> None:
    csr = await admin.get(CSRS, name)
    cond = {"type": "Approved", "status": "True", "reason": "Test", "message": "by test"}
    csr["status"] = {"conditions": [cond]}
    await admin.update(CSRS, csr, subresource="approval")


async def test_signer_checks_and_expiration(signing: Manager) -> None:
    admin = signing.client
    key = certs.new_key_pem()
    # a kubelet client certificate may not carry SANs: Failed, SignerValidationFailure
    bad = certs.csr_pem(key, "system:node:n2", ["system:nodes"], dns_names=["n2"])
    short = certs.csr_pem(key, "someone", ["devs"])
    for name, req, signer, exp in (
        ("sig-bad", bad, KUBELET_SIGNER, None),
        ("sig-short", short, "kubernetes.io/kube-apiserver-client", 600),
    ):
        spec: dict[str, Any] = {
            "request": base64.b64encode(req).decode(),
            "signerName": signer,
            "usages": ["digital signature", "client auth"],
        }
        if exp:
            spec["expirationSeconds"] = exp
        body = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest"}
        await admin.create(CSRS, {**body, "metadata": {"name": name}, "spec": spec})
        await _approve(admin, name)

    async def failed() -> Any:
        conds = ((await admin.get(CSRS, "sig-bad")).get("status") or {}).get("conditions")
        return [c for c in conds or () if c["type"] == "Failed"]

    (cond,) = await eventually(failed)
    assert cond["reason"] == "SignerValidationFailure"
    assert cond["message"] == "invalid kubelet client CSR"
    assert "certificate" not in (await admin.get(CSRS, "sig-bad"))["status"]

    async def issued() -> Any:
        return ((await admin.get(CSRS, "sig-short")).get("status") or {}).get("certificate")

    cert = x509.load_pem_x509_certificate(base64.b64decode(await eventually(issued)))
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == datetime.timedelta(seconds=600 + 300)  # backdated five minutes


async def test_token_cleaner_deletes_expired_tokens(signing: Manager) -> None:
    admin = signing.client
    secrets = await admin.resource("v1", "Secret")

    def b64(s: str) -> str:
        return base64.b64encode(s.encode()).decode()

    past = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)).isoformat()
    soon = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=2)).isoformat()
    for token_id, when in (("old111", past), ("soon22", soon)):
        await admin.create(
            secrets,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
                "type": "bootstrap.kubernetes.io/token",
                "data": {"token-id": b64(token_id), "expiration": b64(when)},
            },
        )

    async def gone(name: str) -> bool:
        names = {s["metadata"]["name"] for s in (await admin.list(secrets, "kube-system"))["items"]}
        return name not in names

    await eventually(lambda: gone("bootstrap-token-old111"))
    await eventually(lambda: gone("bootstrap-token-soon22"))  # looked at again when due
    # the join token has no expiration and stays
    token_id = await whoami_token_id(admin)
    assert not await gone(f"bootstrap-token-{token_id}")


async def whoami_token_id(admin: Client) -> str:
    secrets = await admin.resource("v1", "Secret")
    items = (await admin.list(secrets, "kube-system"))["items"]
    joins = [s for s in items if s.get("type") == "bootstrap.kubernetes.io/token"]
    return str(joins[0]["metadata"]["name"]).removeprefix("bootstrap-token-")


def test_cleaner_deadlines() -> None:
    created = "2026-01-01T00:00:00Z"
    t0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    pending = {"metadata": {"creationTimestamp": created}}
    assert deadline(pending) == t0 + datetime.timedelta(hours=24)
    cond = {"type": "Denied", "status": "True", "lastUpdateTime": "2026-01-01T02:00:00Z"}
    denied = {**pending, "status": {"conditions": [cond]}}
    assert deadline(denied) == t0 + datetime.timedelta(hours=3)


@pytest.fixture
def verifying_server(tmp_path: Path) -> Iterator[Server]:
    """An API server checking kubelets' serving certificates against its cluster CA."""
    data = tmp_path / "data"
    ca = ("--kubelet-certificate-authority", str(data / "server" / "tls" / "ca.crt"))
    server = Server(data, free_port(), extra_args=ca).start()
    try:
        yield server
    finally:
        server.stop()


async def test_kubelet_serving_certificate_is_approved_for_the_nodes_addresses(
    verifying_server: Server,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--rotate-server-certificates``: the node asks for a serving certificate for its
    Node's addresses, csrapproving approves it after checking them, and the API server
    (``--kubelet-certificate-authority``) reaches the kubelet only once it serves it; a
    request naming an address the Node does not have stays pending."""
    async with signing_controllers(verifying_server) as signing:
        await _serving_certificate(signing, verifying_server, tmp_path, caplog, monkeypatch)


async def _serving_certificate(
    signing: Manager,
    cm_server: Server,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aiohttp import web

    from pyk8s.kubelet.server import kubelet_ssl_context
    from pyk8s.server import kubelet

    admin = signing.client
    pem_file = tmp_path / "client.pem"
    async with bootstrap_client(cm_server) as boot:
        await certs.CertificateManager(
            pem_file, "system:node:serve1", ["system:nodes"], KUBELET_SIGNER
        ).obtain(boot)
    ca = (cm_server.data_dir / "server" / "tls" / "ca.crt").read_bytes()
    kubeconfig = tmp_path / "kubelet.kubeconfig"
    certs.write_cert_kubeconfig(kubeconfig, cm_server.url, ca, pem_file, "default-auth")
    # the kubelet's HTTPS server, self-signed until its serving certificate arrives
    tls = kubelet_ssl_context(tmp_path / "pki", None)

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    nodes = await admin.resource("v1", "Node")
    try:
        async with Client(load_kubeconfig(kubeconfig)) as node:
            await node.create(nodes, {
                "apiVersion": "v1", "kind": "Node", "metadata": {"name": "serve1"},
                "status": {
                    "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                                  {"type": "Hostname", "address": "serve1"}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
                },
            })  # fmt: skip
            proxied = "/api/v1/nodes/serve1/proxy/healthz"
            with pytest.raises(ClientError, match="certificate verify failed"):
                await admin.request("GET", proxied, raw=True)
            opts = kubelet.Options(tmp_path, cert_dir=tmp_path / "pki")
            manager = kubelet._serving_manager(opts, "serve1", node)
            serving = asyncio.create_task(kubelet.serve_issued_certificate(manager, node, tls))
            try:
                pair = await eventually(lambda: asyncio.sleep(0, manager.current()), within=30)
                cert = x509.load_pem_x509_certificate(pair[0])
                sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                assert sans.get_values_for_type(x509.DNSName) == ["serve1"]
                assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
                assert subject(pair[0]) == ("system:node:serve1", ["system:nodes"])
                assert await approved_by(admin, pair[0]) == (
                    "Auto approving kubelet serving certificate after checking the node's "
                    "addresses."
                )
                # loaded into the live server: the API server now verifies and gets through
                got = await eventually(
                    lambda: _maybe(admin.request("GET", proxied, raw=True)), within=30
                )
                assert got == b"ok"
                # the Node's addresses change: a certificate for the new ones, at once
                monkeypatch.setattr(certs, "TEMPLATE_CHECK", 0.2)
                serving.cancel()
                serving = asyncio.create_task(kubelet.serve_issued_certificate(manager, node, tls))
                await admin.patch(nodes, "serve1", {"status": {"addresses": [
                    {"type": "InternalIP", "address": "127.0.0.1"},
                    {"type": "InternalIP", "address": "127.0.0.2"},
                    {"type": "Hostname", "address": "serve1"},
                ]}}, subresource="status", patch_type="merge")  # fmt: skip

                async def renamed() -> bool:
                    pair = manager.current()
                    return pair is not None and certs.certificate_names(pair[0]) == (
                        ["serve1"],
                        ["127.0.0.1", "127.0.0.2"],
                    )

                await eventually(renamed, within=30)
                # another host's address: not approved, left for an admin
                key = certs.new_key_pem()
                request = certs.csr_pem(
                    key, "system:node:serve1", ["system:nodes"], ips=["10.9.9.9"]
                )
                with caplog.at_level("INFO", logger="pyk8s.controllers.csrapproving"):
                    waiting = asyncio.create_task(
                        certs.request_certificate(
                            node, request, "kubernetes.io/kubelet-serving",
                            certs.SERVING_USAGES, within=30,
                        )
                    )  # fmt: skip
                    try:
                        await eventually(
                            lambda: asyncio.sleep(
                                0, "node serve1 does not have: left pending" in caplog.text
                            ),
                            within=30,
                        )
                    finally:
                        waiting.cancel()
            finally:
                serving.cancel()
    finally:
        await runner.cleanup()
        await admin.delete(nodes, "serve1")


async def _maybe(call: Any) -> Any:
    try:
        return await call
    except ClientError:
        return None


def test_per_signer_files_as_upstream() -> None:
    """--cluster-signing-<signer>-cert-file/-key-file: only those signers run; not
    together with the general pair; never half a pair."""
    serving = Settings(per_signer={"kubernetes.io/kubelet-serving": ("s.crt", "s.key")})
    assert serving.files() == {"kubernetes.io/kubelet-serving": ("s.crt", "s.key")}
    everything = Settings("ca.crt", "ca.key").files()
    assert set(everything) == set(SIGNERS) and "kubernetes.io/legacy-unknown" in everything
    assert Settings().files() == {}
    with pytest.raises(ValueError, match="at the same time"):
        Settings("ca.crt", "ca.key", per_signer=serving.per_signer).files()
    with pytest.raises(ValueError, match="--cluster-signing-kubelet-client-cert-file and"):
        Settings(per_signer={"kubernetes.io/kube-apiserver-client-kubelet": ("c", "")}).files()
