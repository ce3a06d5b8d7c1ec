"""What one server hands another that joins it (k3s's server bootstrap data).

Servers of one cluster must share the cluster CA *with its key* (each server signs its
own serving, etcd and component certificates, and the controller manager of any of
them signs kubelets' CSRs), the service-account signing key (a token minted by one
server is checked by all), the front-proxy CA, the agents' join token and the
encryption configuration. k3s serves this blob at ``/v1-k3s/server-bootstrap`` to
whoever presents the *server* token; pyk8s does the same at
:data:`SERVER_BOOTSTRAP_PATH`.

The server token (``DATA_DIR/server/server-token``, ``K10<sha256 of the CA>::server:
<secret>``, k3s's format) is distinct from the agents' join token: agents hold the
latter and must not be able to read the CA key. The endpoint compares HTTP Basic
``server:<secret>`` in constant time and answers 401 otherwise; a joining server first
checks the CA it downloads against the token's hash, then reads the blob over TLS
trusting only that CA.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import os
import secrets
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web

from pyk8s.server.agent import JoinError, fetch_ca, parse_token

log = logging.getLogger(__name__)

SERVER_BOOTSTRAP_PATH = "/v1-pyk8s/server-bootstrap"

#: files under DATA_DIR/server every server of a cluster shares (when present)
SHARED_FILES = (
    "tls/ca.crt",
    "tls/ca.key",
    "tls/ca-chain.crt",  # after pyk8s certificate rotate-ca
    "tls/sa.key",
    "tls/sa.pub",
    "tls/front-proxy-ca.crt",
    "tls/front-proxy-ca.key",
    "token",
    "server-token",
    "cred/encryption-config.json",
)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def ensure_server_token(data_dir: Path, ca_cert: Path) -> str:
    """The cluster's server token (made once, kept; a joined server keeps the one it
    joined with), in k3s's full form."""
    import hashlib

    path = data_dir / "server" / "server-token"
    if path.exists():
        return path.read_text().strip()
    digest = hashlib.sha256(ca_cert.read_bytes()).hexdigest()
    token = f"K10{digest}::server:{secrets.token_hex(16)}"
    _write_private(path, (token + "\n").encode())
    return token


def _basic(secret: str) -> str:
    return "Basic " + base64.b64encode(f"server:{secret}".encode()).decode()


def handler(
    data_dir: Path, etcd_client_url: str
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The bootstrap endpoint of this server (``etcd_client_url``: its member's)."""

    async def serve(request: web.Request) -> web.StreamResponse:
        token = (data_dir / "server" / "server-token").read_text().strip()
        secret, _ = parse_token(token)
        given = request.headers.get("Authorization", "")
        if request.method != "GET" or not hmac.compare_digest(
            given.encode("utf-8", "replace"), _basic(secret).encode()
        ):
            log.warning("server bootstrap refused", extra={"remote": request.remote})
            return web.Response(status=401, text="Unauthorized\n")
        files = {}
        for rel in SHARED_FILES:
            path = data_dir / "server" / rel
            if path.is_file():
                files[rel] = base64.b64encode(path.read_bytes()).decode()
        log.info("server bootstrap served", extra={"remote": request.remote})
        return web.json_response({"files": files, "etcdClientURLs": [etcd_client_url]})

    return serve


async def fetch(server: str, token: str, data_dir: Path) -> list[str]:
    """Join: check the CA against the token, read the blob, write the shared files into
    ``data_dir/server``; the existing member's etcd client URLs."""
    secret, digest = parse_token(token)
    if digest is None or not token.startswith("K10") or "::server:" not in token:
        raise JoinError(
            "joining a server needs the server token (DATA_DIR/server/server-token of a "
            "server, K10<sha256>::server:<secret>), not an agent join token"
        )
    ca = await fetch_ca(server, digest)
    ctx = ssl.create_default_context(cadata=ca.decode())
    ctx.check_hostname = False  # the CA is pinned by the token's hash
    url = server.rstrip("/") + SERVER_BOOTSTRAP_PATH
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session,
            session.get(url, ssl=ctx, headers={"Authorization": _basic(secret)}) as resp,
        ):
            if resp.status == 401:
                raise JoinError(f"{server} refused the server token (401)")
            if resp.status != 200:
                raise JoinError(f"GET {url}: HTTP {resp.status}")
            blob = json.loads(await resp.read())
    except (aiohttp.ClientError, OSError, TimeoutError) as err:
        raise JoinError(f"cannot reach the server at {server}: {err}") from err
    for rel, b64 in blob["files"].items():
        if rel not in SHARED_FILES:
            continue
        _write_private(data_dir / "server" / rel, base64.b64decode(b64))
    return [str(u) for u in blob.get("etcdClientURLs", [])]
