"""Kubeconfig and in-cluster loading, and the TLS context built from them (no server needed)."""

from __future__ import annotations

import base64
import datetime as dt
import os
import ssl
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pyk8s.client import config as cfgmod
from pyk8s.client.config import Config, load_config, load_incluster_config, load_kubeconfig
from pyk8s.client.errors import ConfigError


def _pair(cn: str, issuer: tuple[Any, Any] | None = None) -> tuple[bytes, bytes, Any, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = (issuer[0].subject, issuer[1]) if issuer else (name, key)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), True)
        .sign(issuer_key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return cert_pem, key_pem, cert, key


@pytest.fixture(scope="module")
def pki() -> dict[str, bytes]:
    ca_pem, _ca_key_pem, ca, ca_key = _pair("ca")
    cert_pem, key_pem, _, _ = _pair("admin", (ca, ca_key))
    return {"ca": ca_pem, "cert": cert_pem, "key": key_pem}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_kubeconfig(path: Path, users: list[Any], current: str = "c1", **extra: Any) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "k1", "cluster": {"server": "https://10.0.0.1:6443/", **extra}},
            {"name": "k2", "cluster": {"server": "https://10.0.0.2:6443"}},
        ],
        "contexts": [
            {"name": "c1", "context": {"cluster": "k1", "user": "u1"}},
            {"name": "c2", "context": {"cluster": "k2", "user": "u2", "namespace": "team"}},
        ],
        "users": users,
        "current-context": current,
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_embedded_data_and_ssl_context(tmp_path: Path, pki: dict[str, bytes]) -> None:
    kc = write_kubeconfig(
        tmp_path / "config",
        [
            {
                "name": "u1",
                "user": {
                    "client-certificate-data": b64(pki["cert"]),
                    "client-key-data": b64(pki["key"]),
                },
            },
            {"name": "u2", "user": {"token": "abc"}},
        ],
        **{"certificate-authority-data": b64(pki["ca"])},
    )
    cfg = load_kubeconfig(kc)
    assert cfg.server == "https://10.0.0.1:6443"
    assert cfg.ca_data == pki["ca"] and cfg.key_data == pki["key"]
    assert cfg.namespace == "default"
    assert cfg.authorization() is None
    before = set(os.listdir(cfgmod._private_tmpdir_base() or "/tmp"))
    ctx = cfg.ssl_context()
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_REQUIRED
    assert len(ctx.get_ca_certs()) == 1
    after = set(os.listdir(cfgmod._private_tmpdir_base() or "/tmp"))
    assert not [n for n in after - before if n.startswith("pyk8s-tls-")]  # nothing left

    other = load_kubeconfig(kc, context="c2")
    assert other.server == "https://10.0.0.2:6443" and other.namespace == "team"
    assert other.authorization() == "Bearer abc"
    assert repr(other).count("abc") == 0  # secrets stay out of reprs


def test_files_relative_to_the_kubeconfig(tmp_path: Path, pki: dict[str, bytes]) -> None:
    (tmp_path / "pki").mkdir()
    for name in ("ca", "cert", "key"):
        (tmp_path / "pki" / f"{name}.pem").write_bytes(pki[name])
    (tmp_path / "pki" / "token").write_text("tok-1\n")
    kc = write_kubeconfig(
        tmp_path / "config",
        [
            {
                "name": "u1",
                "user": {"client-certificate": "pki/cert.pem", "client-key": "pki/key.pem"},
            },
            {"name": "u2", "user": {"tokenFile": "pki/token"}},
        ],
        **{"certificate-authority": "pki/ca.pem"},
    )
    cfg = load_kubeconfig(kc)
    assert cfg.ca_file == str(tmp_path / "pki" / "ca.pem")
    assert cfg.ssl_context() is not None
    tok = load_kubeconfig(kc, "c2")
    assert tok.authorization() == "Bearer tok-1"
    (tmp_path / "pki" / "token").write_text("tok-2")
    assert tok.bearer_token() == "tok-1"  # cached for a minute
    tok._token_cache = None
    assert tok.bearer_token() == "tok-2"


def test_insecure_and_plain_http(tmp_path: Path) -> None:
    kc = write_kubeconfig(
        tmp_path / "config",
        [{"name": "u1", "user": {"username": "a", "password": "b"}}],
        **{"insecure-skip-tls-verify": True},
    )
    cfg = load_kubeconfig(kc)
    ctx = cfg.ssl_context()
    assert ctx is not None and ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
    assert cfg.authorization() == "Basic " + b64(b"a:b")
    assert Config(server="http://127.0.0.1:8080").ssl_context() is None


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no kubeconfig"):
        load_kubeconfig(tmp_path / "missing")
    kc = write_kubeconfig(tmp_path / "config", [], current="c9")
    with pytest.raises(ConfigError, match='context "c9"'):
        load_kubeconfig(kc)
    with pytest.raises(ConfigError, match='user "u1"'):
        load_kubeconfig(kc, "c1")
    kc = write_kubeconfig(tmp_path / "exec", [{"name": "u1", "user": {"exec": {"command": "x"}}}])
    with pytest.raises(ConfigError, match="exec"):
        load_kubeconfig(kc)


def test_kubeconfig_env_merges_first_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = write_kubeconfig(tmp_path / "a", [{"name": "u1", "user": {"token": "from-a"}}])
    b = tmp_path / "b"
    b.write_text(
        yaml.safe_dump(
            {
                "users": [{"name": "u1", "user": {"token": "from-b"}}],
                "current-context": "c2",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", f"{a}{os.pathsep}{b}")
    cfg = load_config()  # a's user u1 and current-context c1 win over b's
    assert cfg.authorization() == "Bearer from-a"
    assert cfg.server == "https://10.0.0.1:6443"


def test_kubeconfig_env_undefined_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b = tmp_path / "b"
    b.write_text(yaml.safe_dump({"current-context": "c2"}))
    a = write_kubeconfig(tmp_path / "a", [{"name": "u1", "user": {"token": "t"}}])
    monkeypatch.setenv("KUBECONFIG", f"{b}{os.pathsep}{a}")
    with pytest.raises(ConfigError, match='user "u2"'):
        load_config()


def test_incluster(tmp_path: Path, pki: dict[str, bytes]) -> None:
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_bytes(pki["ca"])
    (tmp_path / "namespace").write_text("kube-system")
    env = {"KUBERNETES_SERVICE_HOST": "10.43.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    cfg = load_incluster_config(tmp_path, env)
    assert cfg.server == "https://10.43.0.1:443"
    assert cfg.namespace == "kube-system"
    assert cfg.authorization() == "Bearer sa-token"
    assert cfg.ssl_context() is not None
    v6 = load_incluster_config(tmp_path, {**env, "KUBERNETES_SERVICE_HOST": "fd00::1"})
    assert v6.server == "https://[fd00::1]:443"
    with pytest.raises(ConfigError, match="KUBERNETES_SERVICE_HOST"):
        load_incluster_config(tmp_path, {})
