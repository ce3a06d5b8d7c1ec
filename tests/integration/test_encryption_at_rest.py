"""Secrets encrypted at rest, end to end: what the database holds, and key rotation.

A real ``pyk8s apiserver`` with an EncryptionConfiguration (SQLite) or with k3s's
``--secrets-encryption`` (etcd), secrets written with kubectl: the plaintext and its
base64 must appear nowhere in the SQLite file or in etcd, every stored value carries
upstream's ``k8s:enc:aescbc:v1:<key>:`` prefix, and rotating keys keeps every secret
readable while the rewrite moves them to the new key.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import KUBECTL, Kubectl, Server, free_port, pyk8s_cli

PLAINTEXT = "correct-horse-battery-staple-4417"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _write_config(path: Path, *keys: tuple[str, bytes]) -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "apiserver.config.k8s.io/v1",
                "kind": "EncryptionConfiguration",
                "resources": [
                    {
                        "resources": ["secrets"],
                        "providers": [
                            {"aescbc": {"keys": [{"name": n, "secret": _b64(k)} for n, k in keys]}},
                            {"identity": {}},
                        ],
                    }
                ],
            }
        )
    )
    return path


def _db_bytes(server: Server) -> bytes:
    """Every byte of the SQLite database (its WAL and shared memory too)."""
    db_dir = server.data_dir / "server" / "db"
    return b"".join(p.read_bytes() for p in sorted(db_dir.iterdir()) if p.is_file())


def _stored(server: Server, key: str) -> bytes:
    """The value the database holds for ``key`` now."""
    db = server.data_dir / "server" / "db" / "state.db"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT value FROM log WHERE name = ? ORDER BY id DESC LIMIT 1", (key,)
        ).fetchone()
    finally:
        conn.close()
    assert row is not None, f"{key} is not in {db}"
    return bytes(row[0])


def _secret_value(k: Kubectl, name: str, ns: str = "default") -> str:
    data = k.json("get", "secret", name, "-n", ns)["data"]
    return base64.b64decode(data["password"]).decode()


def _create_secret(k: Kubectl, name: str, ns: str = "default") -> None:
    k("create", "secret", "generic", name, "-n", ns, f"--from-literal=password={PLAINTEXT}")


def _assert_no_plaintext(blob: bytes) -> None:
    assert PLAINTEXT.encode() not in blob
    assert _b64(PLAINTEXT.encode()).encode() not in blob


def test_sqlite_holds_only_ciphertext_and_a_second_key_keeps_secrets_readable(
    tmp_path: Path,
) -> None:
    config = _write_config(tmp_path / "enc.json", ("key1", os.urandom(32)))
    key1 = dict(json.loads(config.read_text())["resources"][0]["providers"][0]["aescbc"]["keys"][0])
    srv = Server(
        tmp_path / "data", free_port(), extra_args=("--encryption-provider-config", str(config))
    )
    try:
        srv.start()
        k = Kubectl(srv.kubeconfig)
        _create_secret(k, "db-pass")
        k("create", "configmap", "plain", f"--from-literal=note={PLAINTEXT}")
        assert _secret_value(k, "db-pass") == PLAINTEXT
        stored = _stored(srv, "/registry/core/secrets/default/db-pass")
        assert stored.startswith(b"k8s:enc:aescbc:v1:key1:")
        _assert_no_plaintext(stored)
        # configmaps are not configured: stored as they are
        assert PLAINTEXT.encode() in _stored(srv, "/registry/core/configmaps/default/plain")
        srv.stop()
        blob = _db_bytes(srv)
        assert b"k8s:enc:aescbc:v1:key1:" in blob
        assert blob.count(PLAINTEXT.encode()) == blob.count(b'"note":"' + PLAINTEXT.encode())

        # a new key first, the old one second: old secrets read, new ones use the new key
        _write_config(
            config,
            ("key2", os.urandom(32)),
            ("key1", base64.b64decode(key1["secret"])),
        )
        srv.start()
        assert _secret_value(k, "db-pass") == PLAINTEXT
        assert _stored(srv, "/registry/core/secrets/default/db-pass").startswith(
            b"k8s:enc:aescbc:v1:key1:"
        )
        _create_secret(k, "newer")
        assert _stored(srv, "/registry/core/secrets/default/newer").startswith(
            b"k8s:enc:aescbc:v1:key2:"
        )
        # a read + unchanged update (what reencryption does) rewrites with the new key
        before = k.json("get", "secret", "db-pass")["metadata"]["resourceVersion"]
        k("replace", "-f", "-", input=k("get", "secret", "db-pass", "-o", "json"))
        after = k.json("get", "secret", "db-pass")["metadata"]["resourceVersion"]
        assert after != before
        assert _stored(srv, "/registry/core/secrets/default/db-pass").startswith(
            b"k8s:enc:aescbc:v1:key2:"
        )
        assert _secret_value(k, "db-pass") == PLAINTEXT
        # a second unchanged update is a no-op again
        k("replace", "-f", "-", input=k("get", "secret", "db-pass", "-o", "json"))
        assert k.json("get", "secret", "db-pass")["metadata"]["resourceVersion"] == after
    finally:
        srv.stop()


def _secrets_encrypt(srv: Server, *args: str) -> str:
    """``pyk8s secrets-encrypt ARGS`` (in this process: a new one spends its time importing)."""
    out = pyk8s_cli("secrets-encrypt", *args, "--data-dir", str(srv.data_dir))
    assert out.returncode == 0, out.stderr
    return out.stdout


async def _etcd_values(hosts: list[tuple[str, int]]) -> dict[str, bytes]:
    from pyk8s.storage.etcd import EtcdStore

    store = await EtcdStore.open(hosts)
    try:
        page = await store.list("/")
        return {kv.key: kv.value for kv in page.kvs}
    finally:
        await store.close()


@pytest.mark.etcd
def test_etcd_secrets_encryption_and_rotate_keys(tmp_path: Path) -> None:
    from tests.etcd_cluster import EtcdCluster, etcd_available

    if not etcd_available():
        pytest.skip("etcd not installed")
    cluster = EtcdCluster(tmp_path / "etcd", size=1).start()
    srv = Server(
        tmp_path / "data",
        free_port(),
        extra_args=("--datastore-endpoint", cluster.endpoint, "--secrets-encryption"),
    )
    try:
        srv.start()
        status = _secrets_encrypt(srv, "status")
        assert status.splitlines()[:3] == [
            "Encryption Status: Enabled",
            "Current Rotation Stage: start",
            "Server Encryption Hashes: All hashes match",
        ]
        assert " *      AES-CBC   aescbckey" in status.splitlines()
        k = Kubectl(srv.kubeconfig)
        names = [f"s{i}" for i in range(5)]
        for name in names:
            _create_secret(k, name)
        values = asyncio.run(_etcd_values(cluster.hosts))
        for name in names:
            assert values[f"/registry/core/secrets/default/{name}"].startswith(
                b"k8s:enc:aescbc:v1:aescbckey:"
            )
        _assert_no_plaintext(b"".join(values.values()))

        assert _secrets_encrypt(srv, "rotate-keys").strip() == "keys rotated, reencryption started"
        deadline = time.monotonic() + 60
        while "Current Rotation Stage: reencrypt_finished" not in (
            status := _secrets_encrypt(srv, "status")
        ):
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        rows = [r for r in status.split("----\n", 1)[1].splitlines() if r]
        assert len(rows) == 1 and rows[0].startswith(" *      AES-CBC   aescbckey-")
        new_key = rows[0].split()[-1]
        values = asyncio.run(_etcd_values(cluster.hosts))
        for name in names:
            assert values[f"/registry/core/secrets/default/{name}"].startswith(
                f"k8s:enc:aescbc:v1:{new_key}:".encode()
            )
            assert _secret_value(k, name) == PLAINTEXT
        _assert_no_plaintext(b"".join(values.values()))
        # a restart reads the rotated configuration the tool wrote
        srv.stop()
        srv.start()
        assert all(_secret_value(k, name) == PLAINTEXT for name in names)
    finally:
        srv.stop()
        cluster.stop()


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        (
            {"aescbc": {"keys": [{"name": "k", "secret": _b64(b"short")}]}},
            'resources[0].providers[0].aescbc.keys[0].secret: Invalid value: "REDACTED": '
            "secret is not of the expected length, got 5, expected one of [16 24 32]",
        ),
        (
            {"kms": {"name": "vault", "endpoint": "unix:///kms.sock"}},
            "resources[0].providers[0].kms: Forbidden: KMS providers are not supported",
        ),
    ],
)
def test_a_malformed_encryption_config_stops_the_apiserver(
    tmp_path: Path, provider: dict[str, object], message: str
) -> None:
    config = tmp_path / "enc.yaml"
    config.write_text(
        json.dumps(
            {
                "apiVersion": "apiserver.config.k8s.io/v1",
                "kind": "EncryptionConfiguration",
                "resources": [{"resources": ["secrets"], "providers": [provider]}],
            }
        )
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pyk8s",
            "apiserver",
            "--data-dir",
            str(tmp_path / "data"),
            "--https-listen-port",
            str(free_port()),
            "--encryption-provider-config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f'Error: error while parsing file "{config}": ')
    assert message in lines[0]
    assert os.path.exists(KUBECTL)  # the module's clients are there


def test_k3s_stepwise_rotation_without_restarts(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data", free_port(), extra_args=("--secrets-encryption",))
    secret_key = "/registry/core/secrets/default/{}".format
    try:
        srv.start()
        k = Kubectl(srv.kubeconfig)
        _create_secret(k, "before")
        first = _stored(srv, secret_key("before"))
        assert first.startswith(b"k8s:enc:aescbc:v1:aescbckey:")

        out = pyk8s_cli("secrets-encrypt", "rotate", "-d", str(srv.data_dir))
        assert out.returncode == 1
        assert "incorrect stage: current stage is start, prepare is required" in out.stderr

        assert _secrets_encrypt(srv, "prepare").strip() == "prepare completed successfully"
        rows = [r.split() for r in _secrets_encrypt(srv, "status").split("----\n")[1].splitlines()]
        assert rows[0] == ["*", "AES-CBC", "aescbckey"]
        new_key = rows[1][1]
        assert rows[1][0] == "AES-CBC" and new_key.startswith("aescbckey-")
        _create_secret(k, "prepared")  # the new key only decrypts for now
        assert _stored(srv, secret_key("prepared")).startswith(b"k8s:enc:aescbc:v1:aescbckey:")

        assert _secrets_encrypt(srv, "rotate").strip() == "rotate completed successfully"
        assert "Current Rotation Stage: rotate" in _secrets_encrypt(srv, "status")
        _create_secret(k, "rotated")
        assert _stored(srv, secret_key("rotated")).startswith(
            f"k8s:enc:aescbc:v1:{new_key}:".encode()
        )
        assert _secret_value(k, "before") == PLAINTEXT  # the old key still decrypts

        assert _secrets_encrypt(srv, "reencrypt").strip() == "reencryption started"
        deadline = time.monotonic() + 60
        while "reencrypt_finished" not in (status := _secrets_encrypt(srv, "status")):
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        assert f" *      AES-CBC   {new_key}" in status.splitlines()
        assert "aescbckey\n" not in status
        for name in ("before", "prepared", "rotated"):
            assert _stored(srv, secret_key(name)).startswith(
                f"k8s:enc:aescbc:v1:{new_key}:".encode()
            )
            assert _secret_value(k, name) == PLAINTEXT

        # disable: new secrets are stored as they are, the encrypted ones still read
        assert _secrets_encrypt(srv, "disable").strip() == "secrets-encryption disabled"
        assert _secrets_encrypt(srv, "status").startswith("Encryption Status: Disabled\n")
        k("create", "secret", "generic", "open", "--from-literal=password=not-secret-at-all")
        assert _stored(srv, secret_key("open")).startswith(b'{"')
        assert _secret_value(k, "before") == PLAINTEXT
        assert _secrets_encrypt(srv, "enable").strip() == "secrets-encryption enabled"
        assert _secrets_encrypt(srv, "status").startswith("Encryption Status: Enabled\n")
        _create_secret(k, "again")
        assert _stored(srv, secret_key("again")).startswith(
            f"k8s:enc:aescbc:v1:{new_key}:".encode()
        )
    finally:
        srv.stop()
    _assert_no_plaintext(_db_bytes(srv))
