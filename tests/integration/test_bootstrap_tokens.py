"""Bootstrap tokens (``bootstrap.kubernetes.io/token`` Secrets) authenticate as upstream's
bootstrap token authenticator does: the real kubectl with ``--token <id>.<secret>``."""

from __future__ import annotations

import datetime
import json
import secrets
import string
import time
from pathlib import Path
from typing import Any

from pyk8s.apiserver.certs import Pki, write_kubeconfig
from tests.integration.conftest import Kubectl, Server

ALPHABET = string.ascii_lowercase + string.digits


def _token() -> tuple[str, str]:
    return (
        "".join(secrets.choice(ALPHABET) for _ in range(6)),
        "".join(secrets.choice(ALPHABET) for _ in range(16)),
    )


def _secret(token_id: str, token_secret: str, **extra: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "bootstrap.kubernetes.io/token",
        "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
        "stringData": {
            "token-id": token_id,
            "token-secret": token_secret,
            "usage-bootstrap-authentication": "true",
            **extra,
        },
    }


def _as_token(server: Server, tmp_path: Path, token: str) -> Kubectl:
    path = tmp_path / f"{token[:6]}.kubeconfig"
    pki = Pki.at(server.data_dir / "server" / "tls")
    write_kubeconfig(path, server=server.url, pki=pki, user="bootstrap", token=token)
    return Kubectl(path)


def test_a_bootstrap_token_names_its_user_and_groups(
    server: Server, kubectl: Kubectl, tmp_path: Path
) -> None:
    token_id, token_secret = _token()
    secret = _secret(
        token_id,
        token_secret,
        **{"auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token"},
    )
    kubectl("apply", "-f", "-", input=json.dumps(secret))
    joiner = _as_token(server, tmp_path, f"{token_id}.{token_secret}")
    info = json.loads(joiner("auth", "whoami", "-o", "json"))["status"]["userInfo"]
    assert info["username"] == f"system:bootstrap:{token_id}"
    assert info["groups"] == [
        "system:bootstrappers",
        "system:bootstrappers:kubeadm:default-node-token",
        "system:authenticated",
    ]
    # a bootstrapper may do what RBAC grants it, nothing more
    assert joiner.run("get", "secrets", "-A", check=False).stderr.strip() == (
        "Error from server (Forbidden): secrets is forbidden: User "
        f'"system:bootstrap:{token_id}" cannot list resource "secrets" in API group "" '
        "at the cluster scope"
    )
    # deleting the Secret revokes the token (once the API server's cache has seen it go)
    kubectl("-n", "kube-system", "delete", "secret", f"bootstrap-token-{token_id}")
    deadline = time.monotonic() + 10
    while (out := joiner.run("auth", "whoami", check=False)).returncode == 0:
        assert time.monotonic() < deadline, "the token still works after its Secret went"
    assert out.stderr.strip() == "error: You must be logged in to the server (Unauthorized)"


def test_tokens_that_do_not_authenticate(server: Server, kubectl: Kubectl, tmp_path: Path) -> None:
    past = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    cases: list[tuple[str, dict[str, Any]]] = []
    for extra in (
        {"expiration": past},  # expired
        {"usage-bootstrap-authentication": "false"},  # not for authentication
        {"auth-extra-groups": "admins"},  # a group outside system:bootstrappers:
    ):
        token_id, token_secret = _token()
        cases.append((f"{token_id}.{token_secret}", _secret(token_id, token_secret, **extra)))
    token_id, token_secret = _token()
    wrong_type = _secret(token_id, token_secret)
    wrong_type["type"] = "Opaque"
    cases.append((f"{token_id}.{token_secret}", wrong_type))
    token_id, token_secret = _token()
    cases.append((f"{token_id}.{'x' * 16}", _secret(token_id, token_secret)))  # wrong secret
    for token, secret in cases:
        kubectl("apply", "-f", "-", input=json.dumps(secret))
        out = _as_token(server, tmp_path, token).run("auth", "whoami", check=False)
        assert out.returncode != 0, (token, secret)
        assert out.stderr.strip() == "error: You must be logged in to the server (Unauthorized)"
