"""``pyk8s agent --server URL --token TOKEN``: join this host to a cluster as a worker.

Like ``k3s agent`` with a bootstrap token (``kubeadm join`` underneath): the token
printed by the server (DATA_DIR/server/node-token, ``K10<sha256 of the cluster
CA>::<id>.<secret>``) is all a new host needs. The agent downloads the CA from
``URL/cacerts`` without trusting it, checks it against the hash in the token (so a man
in the middle cannot pose as the server), and writes a *bootstrap* kubeconfig that
trusts that CA and authenticates with the token -- as ``system:bootstrap:<id>`` in
``system:bootstrappers``, which may do little more than ask for certificates. With it:

* the kubelet (``pyk8s kubelet --bootstrap-kubeconfig``) requests a client certificate
  for ``system:node:<name>`` (``O=system:nodes``), which the controller manager's
  ``csrapproving`` approves and ``csrsigning`` signs; from then on the kubelet is that
  node, held to its own objects by the Node authorizer and NodeRestriction, and renews
  its certificate before it expires; it also serves with a certificate for its Node's
  addresses from the ``kubernetes.io/kubelet-serving`` signer, which ``pyk8s server``'s
  API server verifies (``--rotate-server-certificates``);
* the agent requests a ``system:kube-proxy`` client certificate for the host's proxy
  and renews it before it expires (with itself), the proxy and DNS loading the new file.

Before it starts them, the agent reads the server's cluster CIDRs, service CIDRs, DNS
address and domain (:mod:`pyk8s.server.clusterconfig`) and hands them to the kubelet,
proxy and DNS, its own flags still winning. Certificates are kept under the data dir,
so a restarted agent reuses them (no new request). The kubelet runs its own containerd,
with host-gw routes to the other nodes' pods, and the proxy and the node's cluster DNS
(``pyk8s dns``, on the node's address, see :mod:`pyk8s.server.dns`) run beside it --
the same children ``pyk8s server`` runs for its own node. They reach the API servers
through k3s's client-side load balancer on loopback (``--lb-server-port``, 6444), which
follows the ``kubernetes`` Endpoints and fails over between servers.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from pyk8s.api.certificates import KUBE_APISERVER_CLIENT, KUBE_PROXY_USER
from pyk8s.client import Client, component_user_agent, load_config
from pyk8s.client.certificates import (
    CertificateManager,
    write_cert_kubeconfig,
    write_client_kubeconfig,
)
from pyk8s.client.loadbalancer import LoadBalancer
from pyk8s.server import clusterconfig
from pyk8s.server.component import stop_on_signals
from pyk8s.server.supervisor import Supervisor

__all__ = ["JoinError", "Options", "fetch_ca", "parse_token", "run", "write_agent_kubeconfig"]

log = logging.getLogger(__name__)

_USER_AGENT = component_user_agent("kube-proxy")


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
    #: ``pyk8s dns`` flags (node address and name); empty: no DNS on this node
    dns_args: list[str] = field(default_factory=list)
    #: k3s's --lb-server-port: the loopback load balancer the node's components reach
    #: every API server through (:mod:`pyk8s.client.loadbalancer`)
    lb_server_port: int = 6444


def parse_token(token: str) -> tuple[str, str | None]:
    """(token, CA sha256 hex or None) from a full ``K10<sha256>::<id>.<secret>`` (or
    k3s's ``K10<sha256>::server:<secret>``) or a bare token."""
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
    if expected_sha256 is not None and (got := hashlib.sha256(ca).hexdigest()) != expected_sha256:
        raise JoinError(
            f"the CA served by {server} does not match the token's hash: token CA hash "
            f"{expected_sha256}, server CA hash {got} (a token of another cluster?)"
        )
    return ca


def write_agent_kubeconfig(path: Path, server: str, ca: bytes, secret: str) -> None:
    """A kubeconfig trusting ``ca`` and authenticating with the join token (mode 0600)."""
    write_client_kubeconfig(path, server, ca, "agent", {"token": secret})


def kubelet_args(
    opts: Options,
    kubeconfig: Path,
    bootstrap: Path,
    proxy: Path,
    learned: clusterconfig.AgentFlags,
) -> Sequence[str]:
    """The kubelet's command line: the server's settings first, so that the agent's own
    flags (later) win."""
    return [
        "--kubeconfig", str(kubeconfig), "--bootstrap-kubeconfig", str(bootstrap),
        "--data-dir", str(opts.data_dir), "--node-routes",
        "--node-routes-kubeconfig", str(proxy), "--rotate-server-certificates", "true",
        *learned.kubelet, *opts.kubelet_args,
    ]  # fmt: skip


async def proxy_kubeconfig(
    opts: Options, server: str, ca: bytes, bootstrap: Path
) -> tuple[Path, CertificateManager]:
    """A kubeconfig for the host's proxy as ``system:kube-proxy``: the certificate kept
    from an earlier start, else one requested with the bootstrap credentials; and the
    manager that renews it."""
    manager = CertificateManager(
        opts.data_dir / "pki" / "kube-proxy.pem", KUBE_PROXY_USER, [], KUBE_APISERVER_CLIENT
    )
    if manager.current() is None:
        async with Client(load_config(str(bootstrap)), user_agent=_USER_AGENT) as client:
            await manager.obtain(client)
    path = opts.data_dir / "kube-proxy.kubeconfig"
    await asyncio.to_thread(
        write_cert_kubeconfig, path, server, ca, manager.pem_file, KUBE_PROXY_USER
    )
    return path, manager


async def run(opts: Options) -> None:
    token, digest = parse_token(opts.token)
    ca = await fetch_ca(opts.server, digest)
    split = urlsplit(opts.server)
    lb = LoadBalancer([f"{split.hostname}:{split.port or 6443}"], port=opts.lb_server_port)
    await lb.start()
    try:
        await _run(opts, lb, token, ca)
    finally:
        await lb.stop()


async def _run(opts: Options, lb: LoadBalancer, token: str, ca: bytes) -> None:
    bootstrap = opts.data_dir / "bootstrap-kubeconfig.yaml"
    write_agent_kubeconfig(bootstrap, lb.url, ca, token)
    kubeconfig = opts.data_dir / "kubeconfig.yaml"  # the kubelet writes it (node identity)
    proxy, proxy_certificate = await proxy_kubeconfig(opts, lb.url, ca, bootstrap)
    learned = clusterconfig.AgentFlags(await clusterconfig.fetch(bootstrap, _USER_AGENT))
    log.info("joined", extra={"server": opts.server, "kubeconfig": str(kubeconfig)})
    supervisor = Supervisor()
    supervisor.add("kubelet", *kubelet_args(opts, kubeconfig, bootstrap, proxy, learned))
    supervisor.add("proxy", "--kubeconfig", str(proxy), *learned.proxy, *opts.proxy_args)
    if opts.dns_args:
        # the node's DNS reads Services/EndpointSlices and writes its own kube-dns slice
        # as the host's proxy (system:kube-proxy, pyk8s:kube-dns-publisher)
        supervisor.add("dns", "--kubeconfig", str(proxy), *learned.dns, *opts.dns_args)
    stop = stop_on_signals()
    await supervisor.start()
    async with Client(load_config(str(proxy)), user_agent=_USER_AGENT) as client:
        follow = asyncio.create_task(lb.follow_endpoints(client, stop), name="lb-servers")
        # renewed before expiry with itself; the proxy and DNS load the new file
        rotation = asyncio.create_task(
            proxy_certificate.rotate_forever(
                client, lambda pem: client.reload_client_certificate(str(pem), str(pem))
            ),
            name="proxy-certificate-rotation",
        )
        try:
            await stop.wait()
        finally:
            rotation.cancel()
            await supervisor.stop()
            await follow
