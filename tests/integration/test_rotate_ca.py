"""``pyk8s certificate rotate-ca`` as a k3s user runs it (issue 19): a new cluster CA,
cross-signed by the current one, installed while the server runs.

A real ``pyk8s apiserver`` of its own (its CA is replaced, so not the session's), the
real kubectl with the kubeconfig handed out before the rotation (trusting only the old
CA, presenting the old admin certificate), with the rewritten one, and with one that
trusts only the new CA; a service-account token issued before the rotation still
works; after a restart the new CA is kept. Bad input (a key of another CA, a corrupt
certificate, a CA that is not cross-signed) is refused before anything is written.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pyk8s.apiserver import certs
from pyk8s.apiserver.certs import ensure_pki
from tests.integration.conftest import KUBECTL, Kubectl, Server, free_port
from tests.integration.conftest import pyk8s_cli as pyk8s

pytestmark = pytest.mark.skipif(not os.path.exists(KUBECTL), reason="kubectl not installed")


def _files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def _wait(check: Callable[[], object], what: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _rotate(data: Path, path: Path, *flags: str) -> tuple[int, str, str]:
    out = pyk8s("certificate", "rotate-ca", "--data-dir", str(data), "--path", str(path), *flags)
    return out.returncode, out.stdout, out.stderr


def _refused(data: Path, stage: Path, words: str) -> None:
    tls = data / "server" / "tls"
    before = _files(tls)
    code, out, err = _rotate(data, stage)
    assert code == 1 and out == "", (out, err)
    assert err.startswith("pyk8s certificate: error: ") and err.count("\n") == 1, err
    assert words in err, err
    assert _files(tls) == before  # nothing touched


def test_bad_input_is_refused_before_anything_is_touched(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ensure_pki(data / "server", hostnames=[], ips=[])
    stage = tmp_path / "stage"
    code, out, err = _rotate(data, stage, "--generate")
    assert code == 0 and "rotate-ca --path" in out, err
    assert _rotate(data, stage, "--generate")[2].endswith(
        "stage the new CA in an empty directory\n"
    )

    mismatched = tmp_path / "mismatched"
    shutil.copytree(stage, mismatched)
    other = ec.generate_private_key(ec.SECP256R1())
    (mismatched / "tls" / "ca.key").write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    _refused(data, mismatched, "ca.key does not match the certificate in")

    corrupt = tmp_path / "corrupt"
    shutil.copytree(stage, corrupt)
    pem = bytearray((corrupt / "tls" / "ca.crt").read_bytes())
    pem[100:140] = b"!" * 40
    (corrupt / "tls" / "ca.crt").write_bytes(bytes(pem))
    _refused(data, corrupt, "not a PEM certificate file")

    # another cluster's CA: a CA, its key matches, but the current CA never signed it
    foreign = tmp_path / "foreign"
    ca, key = certs._make_ca("other-cluster-ca")
    (foreign / "tls").mkdir(parents=True)
    (foreign / "tls" / "ca.crt").write_bytes(certs._cert_pem(ca))
    (foreign / "tls" / "ca.key").write_bytes(certs._key_pem(key))
    _refused(data, foreign, "is not cross-signed by the current one")
    code, out, err = _rotate(data, foreign, "--force")
    assert code == 0 and "not cross-signed" in out, err
    new = (foreign / "tls" / "ca.crt").read_bytes()
    assert (data / "server" / "tls" / "ca.crt").read_bytes().startswith(new)


def _first(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _served_issuer(port: int) -> x509.Name:
    return _first(ssl.get_server_certificate(("127.0.0.1", port)).encode()).issuer


def _kubeconfig(path: Path, server: str, ca: bytes, cert: bytes, key: bytes) -> Path:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "c", "cluster": {"server": server, "certificate-authority-data": b64(ca)}}
        ],
        "users": [
            {
                "name": "u",
                "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)},
            }
        ],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_rotate_ca_while_the_server_runs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    server = Server(data, free_port()).start()
    tls = data / "server" / "tls"
    try:
        old_kubeconfig = tmp_path / "old.yaml"
        shutil.copy(server.kubeconfig, old_kubeconfig)
        old = Kubectl(old_kubeconfig)
        old("create", "serviceaccount", "rotator", "-n", "default")
        token = old("create", "token", "rotator", "-n", "default").strip()
        old_ca = tls.joinpath("ca.crt").read_bytes()
        sa_key = tls.joinpath("sa.key").read_bytes()

        stage = tmp_path / "stage"
        assert _rotate(data, stage, "--generate")[0] == 0
        code, out, err = _rotate(data, stage)
        assert code == 0 and "stays trusted" in out, err
        new_ca = _first((stage / "tls" / "ca.crt").read_bytes())
        bundle = tls.joinpath("ca.crt").read_bytes()
        assert bundle.startswith(new_ca.public_bytes(serialization.Encoding.PEM))
        assert bundle.endswith(old_ca)  # the old CA stays trusted
        digest = hashlib.sha256(bundle).hexdigest()
        assert (data / "server" / "node-token").read_text().startswith(f"K10{digest}::")

        # the running server serves a certificate of the new CA, with no restart
        _wait(lambda: _served_issuer(server.port) == new_ca.subject, "the new serving cert")
        # the kubeconfig handed out before: trusts only the old CA (the server sends the
        # new CA cross-signed by it), presents the old admin certificate
        assert (
            old("get", "serviceaccount", "rotator", "-o", "name").strip()
            == "serviceaccount/rotator"
        )
        # the admin kubeconfig is rewritten: the bundle, a certificate of the new CA
        admin = tls / "admin.crt"
        _wait(lambda: _first(admin.read_bytes()).issuer == new_ca.subject, "a new admin cert")
        _wait(
            lambda: base64.b64encode(bundle).decode() in server.kubeconfig.read_text(), "kubeconfig"
        )
        assert Kubectl(server.kubeconfig)("get", "namespace", "default", "-o", "name")
        # a client that trusts only the new CA
        only_new = _kubeconfig(
            tmp_path / "new-only.yaml",
            server.url,
            new_ca.public_bytes(serialization.Encoding.PEM),
            admin.read_bytes(),
            tls.joinpath("admin.key").read_bytes(),
        )
        assert Kubectl(only_new)("get", "namespace", "default", "-o", "name")
        # the service-account key is untouched: a token issued before still authenticates
        assert tls.joinpath("sa.key").read_bytes() == sa_key
        by_token = Kubectl(server.token_kubeconfig(token, tmp_path / "token.yaml"))
        whoami = by_token.run("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
        assert whoami.stdout == "system:serviceaccount:default:rotator", whoami.stderr

        # a restart keeps the new CA; the old kubeconfig still works
        server.stop()
        server.start()
        assert tls.joinpath("ca.crt").read_bytes() == bundle
        assert _served_issuer(server.port) == new_ca.subject
        assert (
            old("get", "serviceaccount", "rotator", "-o", "name").strip()
            == "serviceaccount/rotator"
        )
    finally:
        server.stop()
