"""``pyk8s agent --server URL --token TOKEN``: join this host to a cluster as a worker.

Like ``k3s agent``: the token printed by the server (DATA_DIR/server/node-token,
``K10<sha256 of the cluster CA>::server:<secret>``) is all a new host needs. The agent
downloads the CA from ``URL/cacerts`` without trusting it, checks it against the hash in
the token (so a man in the middle cannot pose as the server), writes a kubeconfig that
trusts that CA and authenticates with the secret, and then supervises the node's
components with it: ``pyk8s kubelet`` (its own containerd, host-gw routes to the other
nodes' pods) and ``pyk8s proxy`` — the same children ``pyk8s server`` runs for its own
node.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from pyk8s.server.component import stop_on_signals
from pyk8s.server.supervisor import Supervisor

__all__ = ["JoinError", "Options", "fetch_ca", "parse_token", "run", "write_agent_kubeconfig"]

log = logging.getLogger(__name__)


class JoinError(Exception):
    """The agent cannot join: a malformed token, an unreachable server, a CA mismatch."""


@dataclass
class Options:
    server: str
    token: str
    data_dir: Path
    #: extra ``pyk8s kubelet`` flags (node name, IP, labels, taints, registries, …)
    kubelet_args: list[str] = field(default_factory=list)
    #: extra ``pyk8s proxy`` flags (node name, IP)
    proxy_args: list[str] = field(default_factory=list)


def parse_token(token: str) -> tuple[str, str | None]:
    """(secret, CA sha256 hex or None) from a full ``K10…::server:…`` or a bare secret."""
    token = token.strip()
    if not token:
        raise JoinError("empty token")
    if token.startswith("K10") and "::" in token:
        digest, _, rest = token[3:].partition("::")
        secret = rest.split(":", 1)[1] if ":" in rest else rest
        if len(digest) != 64 or not secret:
            raise JoinError("malformed token: want K10<sha256>::server:<secret>")
        return secret, digest.lower()
    return token, None


async def fetch_ca(server: str, expected_sha256: str | None) -> bytes:
    """The cluster CA from ``server/cacerts``, verified against the token's hash."""
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE  # not trusted yet: checked against the hash below
    url = server.rstrip("/") + "/cacerts"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session,
            session.get(url, ssl=insecure) as resp,
        ):
            if resp.status != 200:
                raise JoinError(f"GET {url}: HTTP {resp.status}")
            ca = await resp.read()
    except (aiohttp.ClientError, OSError, TimeoutError) as err:
        raise JoinError(f"cannot reach the server at {server}: {err}") from err
    if expected_sha256 is not None and hashlib.sha256(ca).hexdigest() != expected_sha256:
        raise JoinError(f"the CA served by {server} does not match the token's hash")
    return ca


def write_agent_kubeconfig(path: Path, server: str, ca: bytes, secret: str) -> None:
    """A kubeconfig trusting ``ca`` and authenticating with the join secret (mode 0600)."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "default",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca).decode(),
                },
            }
        ],
        "users": [{"name": "agent", "user": {"token": secret}}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "user": "agent"}}],
        "current-context": "default",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)  # JSON is YAML: kubectl and our client read it
    os.replace(tmp, path)


def kubelet_args(opts: Options, kubeconfig: Path) -> Sequence[str]:
    return [
        "--kubeconfig", str(kubeconfig), "--data-dir", str(opts.data_dir), "--node-routes",
        *opts.kubelet_args,
    ]  # fmt: skip


async def run(opts: Options) -> None:
    secret, digest = parse_token(opts.token)
    ca = await fetch_ca(opts.server, digest)
    kubeconfig = opts.data_dir / "kubeconfig.yaml"
    write_agent_kubeconfig(kubeconfig, opts.server, ca, secret)
    log.info("joined", extra={"server": opts.server, "kubeconfig": str(kubeconfig)})
    supervisor = Supervisor()
    supervisor.add("kubelet", *kubelet_args(opts, kubeconfig))
    supervisor.add("proxy", "--kubeconfig", str(kubeconfig), *opts.proxy_args)
    stop = stop_on_signals()
    await supervisor.start()
    try:
        await stop.wait()
    finally:
        await supervisor.stop()
