"""``pyk8s token create|list|delete|rotate`` against the shared API server: a created
token authenticates as ``system:bootstrap:<id>`` in its groups, shows in the list with
kubeadm's columns, stops working when deleted or expired; bad flags are refused with
kubeadm's texts; rotate replaces the server's join token files and revokes the old one;
a token whose CA hash is not the server's is refused naming both hashes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from pyk8s.cli import main
from pyk8s.server.agent import JoinError, fetch_ca
from tests.integration.conftest import Kubectl, Server


def _token(
    server: Server, *args: str, data_dir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``pyk8s token …`` in this process (a fresh interpreter costs seconds per call)."""
    argv = ["token", *args[:1], "--data-dir", str(data_dir or server.data_dir), *args[1:]]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def _whoami(server: Server, kubectl: Kubectl, token: str) -> subprocess.CompletedProcess[str]:
    return kubectl.run(
        "--kubeconfig", str(server.token_kubeconfig(token, server.data_dir.parent / "tok.kc")),
        "auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
        check=False,
    )  # fmt: skip


def test_create_list_use_and_delete(server: Server, kubectl: Kubectl) -> None:
    out = _token(server, "create", "--ttl", "2h", "--description", "for rack 7",
                 "--groups", "system:bootstrappers:rack7")  # fmt: skip
    assert out.returncode == 0, out.stderr
    full = out.stdout.strip()
    ca = (server.data_dir / "server" / "tls" / "ca.crt").read_bytes()
    digest, _, token = full.removeprefix("K10").partition("::")
    assert digest == hashlib.sha256(ca).hexdigest()
    token_id = token.partition(".")[0]

    who = _whoami(server, kubectl, token)
    assert who.stdout.startswith(f"system:bootstrap:{token_id} "), who.stderr
    assert "system:bootstrappers:rack7" in who.stdout and "system:bootstrappers" in who.stdout

    listing = _token(server, "list").stdout.splitlines()
    assert listing[0].split() == ["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA",
                                  "GROUPS"]  # fmt: skip
    row = next(line for line in listing if line.startswith(token))
    assert row.split()[1] in ("1h", "2h")
    assert row.split()[3:] == ["authentication,signing", "for", "rack", "7",
                               "system:bootstrappers:rack7"]  # fmt: skip
    secret = kubectl.json("get", "secret", "-n", "kube-system", f"bootstrap-token-{token_id}")
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    assert base64.b64decode(secret["data"]["expiration"]).decode().endswith("Z")

    # the join token the server made itself never expires
    own = (server.data_dir / "server" / "token").read_text().strip()
    own_row = next(line for line in listing if line.startswith(own))
    assert own_row.split()[1:3] == ["<forever>", "<never>"]

    deleted = _token(server, "delete", full)
    assert deleted.stdout.strip() == f'bootstrap token "{token_id}" deleted', deleted.stderr
    who = _whoami(server, kubectl, token)
    assert who.returncode != 0 and "Unauthorized" in who.stderr


def test_an_expired_token_stops_authenticating(server: Server, kubectl: Kubectl) -> None:
    out = _token(server, "create", "--ttl", "3s")
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip().rpartition("::")[2]
    assert _whoami(server, kubectl, token).returncode == 0
    deadline = time.monotonic() + 30
    while _whoami(server, kubectl, token).returncode == 0:
        assert time.monotonic() < deadline, "the token still authenticates after its expiry"
        time.sleep(0.5)


def test_bad_flags_are_refused_with_kubeadms_texts(server: Server) -> None:
    bad_group = _token(server, "create", "--groups", "rack7")
    assert bad_group.returncode == 1
    assert 'bootstrap group "rack7" is invalid' in bad_group.stderr
    bad_usage = _token(server, "create", "--usages", "signing,flying")
    assert "invalid bootstrap token usage string: flying" in bad_usage.stderr
    bad_token = _token(server, "create", "ABC.def")
    assert 'the bootstrap token "ABC.def" was not of the form' in bad_token.stderr
    fixed = "abcdef.0123456789abcdef"
    assert _token(server, "create", fixed).returncode == 0
    again = _token(server, "create", fixed)
    assert again.returncode == 1 and 'a token with id "abcdef" already exists' in again.stderr
    assert _token(server, "delete", "abcdef").returncode == 0


def test_rotate_replaces_the_join_token(server: Server, kubectl: Kubectl, tmp_path: Path) -> None:
    # a copy of the server's data dir layout, so the shared server's own token stays
    (tmp_path / "server").mkdir()
    shutil.copy(server.kubeconfig, tmp_path / "kubeconfig.yaml")
    old = _token(server, "create", "--ttl", "0").stdout.strip().rpartition("::")[2]
    (tmp_path / "server" / "token").write_text(old + "\n")

    out = _token(server, "rotate", data_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    new = out.stdout.strip().rpartition("::")[2]
    assert new != old
    assert (tmp_path / "server" / "token").read_text().strip() == new
    assert (tmp_path / "server" / "node-token").read_text().strip() == out.stdout.strip()
    assert _whoami(server, kubectl, new).returncode == 0
    assert "Unauthorized" in _whoami(server, kubectl, old).stderr
    _token(server, "delete", new)


def test_a_token_of_another_cluster_is_refused_naming_the_hashes(server: Server) -> None:
    ca = (server.data_dir / "server" / "tls" / "ca.crt").read_bytes()
    other = "0" * 64
    with pytest.raises(JoinError) as err:
        asyncio.run(fetch_ca(server.url, other))
    assert str(err.value) == (
        f"the CA served by {server.url} does not match the token's hash: token CA hash "
        f"{other}, server CA hash {hashlib.sha256(ca).hexdigest()} (a token of another cluster?)"
    )
    assert asyncio.run(fetch_ca(server.url, hashlib.sha256(ca).hexdigest())) == ca
