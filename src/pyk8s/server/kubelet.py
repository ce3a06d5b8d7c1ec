"""``pyk8s kubelet``: the node agent as a process — containerd, CNI, the kubelet loops.

Composition only. Unless ``--container-runtime-endpoint`` names an existing CRI socket,
it runs its own containerd under ``DATA_DIR/containerd`` (adopting one it started before
if that survived a crash), imports the locally built busybox and pause images, writes the
node's bridge CNI config once the node has a pod CIDR, runs
:class:`~pyk8s.kubelet.kubelet.Kubelet`, serves ``/healthz`` and ``/metrics`` (upstream's
healthz port 10248), and on SIGTERM stops its loops and its containerd — the containers
keep running in their shims and the next start adopts them. Beside the kubelet it runs
this node's local-path provisioner (:mod:`pyk8s.localpath`), which makes volumes under
``--default-local-storage-path`` (default ``DATA_DIR/storage``) for claims scheduled here.

With ``--bootstrap-kubeconfig`` it does upstream's TLS bootstrap first: a client
certificate for ``system:node:<name>`` requested through a CertificateSigningRequest (or
the one kept from an earlier start), renewed before it expires while the kubelet runs
(:mod:`pyk8s.client.certificates`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from pyk8s.api.certificates import KUBE_APISERVER_CLIENT_KUBELET as KUBELET_CLIENT_SIGNER
from pyk8s.api.certificates import KUBELET_SERVING, NODES_GROUP
from pyk8s.client import Client, ClientError, component_user_agent, is_not_found, load_config
from pyk8s.client.certificates import (
    KUBELET_CLIENT_PEM,
    SERVING_USAGES,
    CertificateManager,
    write_cert_kubeconfig,
)
from pyk8s.controllers.runtime import Manager
from pyk8s.controllers.runtime.controller import ControllerMetrics
from pyk8s.kubelet.airgap import ImageDirWatcher
from pyk8s.kubelet.auth import KubeletAuth
from pyk8s.kubelet.cni import write_bridge_conflist
from pyk8s.kubelet.cri import CRIClient
from pyk8s.kubelet.kubelet import Kubelet, KubeletConfig
from pyk8s.kubelet.node import default_host_ip
from pyk8s.kubelet.registries import (
    Registries,
    RegistriesError,
    auth_toml,
    hosts_tomls,
    write_hosts,
)
from pyk8s.kubelet.registries import load as load_registries
from pyk8s.kubelet.runtimes import Containerd, ContainerdConfig
from pyk8s.kubelet.runtimes.containerd import RegistryHost
from pyk8s.kubelet.server import KubeletServer, kubelet_ssl_context
from pyk8s.kubelet.simulated import parse_taint
from pyk8s.kubelet.stats import StatsProvider
from pyk8s.localpath import PROVISIONER_NAME, LocalPathProvisioner
from pyk8s.network.routes import HostGwRoutes, ensure_egress_masquerade
from pyk8s.network.safety import ensure_unreachable
from pyk8s.server import startgate
from pyk8s.server.component import HealthServer, stop_on_signals
from pyk8s.server.sim_nodes import parse_key_values

__all__ = ["Options", "run"]

#: started early by pyk8s server, this process starts its container runtime and imports
#: its images while the API server starts, and waits for it only before its first
#: request (:mod:`pyk8s.server.startgate`)
WAITS_AT_GATE = True

log = logging.getLogger(__name__)

SERVER_PEM = "kubelet-server-current.pem"


@dataclass
class Options:
    data_dir: Path
    kubeconfig: Path | None = None
    node_name: str = ""
    node_ip: str = ""
    container_runtime_endpoint: str = ""
    pod_cidr: str = ""
    cluster_dns: list[str] = field(default_factory=list)
    cluster_domain: str = "cluster.local"
    node_labels: str = ""
    register_with_taints: str = ""
    #: "external": a cloud controller manager initialises this node, so it registers
    #: with the node.cloudprovider.kubernetes.io/uninitialized taint (as upstream)
    cloud_provider: str = ""
    cni_bridge: str = "cni0"
    #: registries reached over plain HTTP ("host:port"), e.g. a local docker-registry
    insecure_registries: list[str] = field(default_factory=list)
    #: the containerd runtime handler of pods ("runc", "crun"; "": runc)
    default_runtime: str = ""
    log_root: Path = Path("/var/log/pods")
    healthz_bind_address: str = "127.0.0.1"
    healthz_port: int = 10248
    #: the HTTPS server (logs, exec, attach, port-forward, stats) for the API server
    address: str = "0.0.0.0"
    port: int = 10250
    #: route other nodes' pod CIDRs via their addresses (host-gw); off for a lone node
    node_routes: bool = False
    cluster_cidr: str = "10.42.0.0/16"
    #: with the cluster CIDR, made unreachable past the more specific pod routes
    #: (:mod:`pyk8s.network.safety`)
    service_cidr: str = "10.43.0.0/16"
    #: where the local-path provisioner makes volumes (default DATA_DIR/storage)
    local_storage_path: Path | None = None
    #: upstream's TLS bootstrap: with no usable client certificate yet, get one for
    #: system:node:<name> with these (bootstrap token) credentials and write
    #: ``kubeconfig`` pointing at it
    bootstrap_kubeconfig: Path | None = None
    #: where kubelet-client-current.pem lives (default DATA_DIR/kubelet/pki)
    cert_dir: Path | None = None
    #: renew the client certificate before it expires (upstream's --rotate-certificates)
    rotate_certificates: bool = True
    #: serve with a certificate from the cluster's kubernetes.io/kubelet-serving signer
    #: (CSR for the Node's addresses, renewed before expiry) instead of the self-signed
    #: one (upstream's --rotate-server-certificates / serverTLSBootstrap)
    rotate_server_certificates: bool = False
    #: who the host-gw routes read all Nodes as: a node identity may read only its own
    #: Node, so a bootstrapped kubelet routes with the host proxy's (system:kube-proxy,
    #: whose system:node-proxier role lists nodes); None: the kubelet's own
    node_routes_kubeconfig: Path | None = None


def _client_ca(pki: Path, ca_data: bytes | None, ca_file: str | None) -> Path | None:
    """The CA the kubelet's clients (the API server) must present certs from: the
    cluster CA from the kubeconfig, as upstream's ``--client-ca-file``."""
    if ca_file:
        return Path(ca_file)
    if not ca_data:
        return None
    pki.mkdir(parents=True, exist_ok=True)
    path = pki / "client-ca.crt"
    path.write_bytes(ca_data)
    return path


def _certificate_manager(opts: Options, node_name: str) -> CertificateManager | None:
    """The client certificate manager when the kubeconfig's identity is (or will be) the
    bootstrapped kubelet-client-current.pem."""
    if opts.bootstrap_kubeconfig is None:
        return None
    cert_dir = opts.cert_dir or opts.data_dir / "kubelet" / "pki"
    return CertificateManager(
        cert_dir / KUBELET_CLIENT_PEM,
        f"system:node:{node_name}",
        [NODES_GROUP],
        KUBELET_CLIENT_SIGNER,
    )


def _serving_manager(opts: Options, node_name: str, client: Client) -> CertificateManager:
    """Upstream's serving certificate manager: ``CN=system:node:<name>, O=system:nodes``
    for the Node's current addresses (Hostname and DNS ones as DNS names, IPs as IPs)."""

    async def node_addresses() -> tuple[list[str], list[str]]:
        while True:  # the kubelet registers its Node and status concurrently
            try:
                node = await client.get(await client.resource("v1", "Node"), node_name)
            except ClientError as err:
                if not is_not_found(err):
                    raise
                node = {}
            addresses = (node.get("status") or {}).get("addresses") or ()
            ips = [a["address"] for a in addresses if a.get("type") in _IP_ADDRESSES]
            dns = [a["address"] for a in addresses if a.get("type") not in _IP_ADDRESSES]
            if ips or dns:
                return sorted(set(dns)), sorted(set(ips))
            await asyncio.sleep(0.5)

    cert_dir = opts.cert_dir or opts.data_dir / "kubelet" / "pki"
    return CertificateManager(
        cert_dir / SERVER_PEM,
        f"system:node:{node_name}",
        [NODES_GROUP],
        KUBELET_SERVING,
        usages=SERVING_USAGES,
        sans=node_addresses,
    )


_IP_ADDRESSES = ("InternalIP", "ExternalIP")


async def serve_issued_certificate(
    manager: CertificateManager, client: Client, tls: ssl.SSLContext
) -> None:
    """Get a serving certificate when there is none, load it into the live serving
    context (new handshakes present it, as the API server's renewal does), and keep it
    renewed; runs until cancelled."""

    def load(path: Path) -> None:
        tls.load_cert_chain(path, path)
        log.info("serving certificate loaded", extra={"file": str(path)})

    while manager.current() is None:
        try:
            await manager.obtain(client)
        except ClientError as err:
            log.warning("serving certificate request failed, retrying: %s", err)
            await asyncio.sleep(10.0)
    load(manager.pem_file)
    await manager.rotate_forever(client, load)


async def bootstrap_client_certificate(opts: Options, manager: CertificateManager) -> None:
    """Upstream's ``LoadClientCert``: keep a valid stored certificate, else request one
    with the bootstrap credentials; then (re)write ``--kubeconfig`` to use it."""
    assert opts.bootstrap_kubeconfig is not None and opts.kubeconfig is not None
    await startgate.until_open()
    boot = load_config(str(opts.bootstrap_kubeconfig))
    if manager.current() is None:
        log.info("requesting a client certificate", extra={"user": manager.common_name})
        async with Client(boot, user_agent=component_user_agent("kubelet")) as client:
            await manager.obtain(client)
    ca = boot.ca_data
    if not ca and boot.ca_file:
        ca = await asyncio.to_thread(Path(boot.ca_file).read_bytes)
    await asyncio.to_thread(
        write_cert_kubeconfig,
        opts.kubeconfig,
        boot.server,
        ca or b"",
        manager.pem_file,
        "default-auth",
    )


def _load_registries(path: Path) -> Registries | None:
    """registries.yaml (None when it cannot be read: the last good hosts files stay)."""
    try:
        return load_registries(path)
    except (RegistriesError, OSError) as err:
        log.error("ignoring %s: %s", path, err)
        return None


def _wake_pods(kubelet: Kubelet) -> None:
    """Sync every pod now (an image they wait for may have arrived)."""
    for pod in kubelet.pods.store.list():
        kubelet.queue.add(f"{pod['metadata'].get('namespace', '')}/{pod['metadata']['name']}")


def _signature(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except FileNotFoundError:
        return (0, 0)
    return (st.st_size, st.st_mtime_ns)


async def _watch_node_files(
    airgap: ImageDirWatcher, registries_file: Path, hosts_dir: Path | None
) -> None:
    """Once a second: new image archives, and registries.yaml changes (rewritten into
    containerd's hosts.toml files, which it reads on every pull)."""
    seen: tuple[int, int] | None = None
    while True:
        await asyncio.sleep(airgap.interval)
        try:
            await airgap.poll()
            if hosts_dir is None:
                continue
            sig = await asyncio.to_thread(_signature, registries_file)
            if seen is not None and sig != seen:
                mirrors = _load_registries(registries_file)
                if mirrors is not None and write_hosts(hosts_dir, hosts_tomls(mirrors)):
                    log.info("registry mirrors updated", extra={"path": str(registries_file)})
            seen = sig
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.warning("watching the node's files failed: %s", err)


#: what ``--cloud-provider=external`` adds at registration (upstream's
#: cloudproviderapi.TaintExternalCloudProvider)
UNINITIALIZED_TAINT = "node.cloudprovider.kubernetes.io/uninitialized=true:NoSchedule"


def registration_taints(opts: Options) -> list[dict[str, Any]]:
    """``--register-with-taints``, plus the uninitialized taint with an external cloud."""
    specs = [t for t in opts.register_with_taints.split(",") if t.strip()]
    if opts.cloud_provider == "external":
        specs.append(UNINITIALIZED_TAINT)
    elif opts.cloud_provider:
        raise ValueError(f"--cloud-provider {opts.cloud_provider!r}: only 'external' is known")
    return [parse_taint(t) for t in specs]


async def run(opts: Options) -> None:
    node_name = (opts.node_name or socket.gethostname()).lower()
    # --node-ip v4,v6 on a dual-stack node: the first is the node's primary address
    host_ip, *secondary_ips = (opts.node_ip or default_host_ip()).split(",")
    certificates = _certificate_manager(opts, node_name)
    # the TLS bootstrap (waiting for the controller manager to sign) overlaps the runtime's
    # start and image imports: neither needs the other
    bootstrap = (
        asyncio.create_task(bootstrap_client_certificate(opts, certificates), name="tls-bootstrap")
        if certificates is not None
        else None
    )
    endpoint = opts.container_runtime_endpoint.removeprefix("unix://")
    containerd: Containerd | None = None
    cni_conf = ContainerdConfig(opts.data_dir).cni_conf
    image_fs = ContainerdConfig(opts.data_dir).root
    registries_file = opts.data_dir / "etc" / "registries.yaml"
    mirrors = _load_registries(registries_file)
    if not endpoint:
        registries = {h: RegistryHost(f"http://{h}") for h in opts.insecure_registries}
        containerd = Containerd(
            ContainerdConfig(
                opts.data_dir,
                registries=registries,
                registry_auth=auth_toml(mirrors) if mirrors is not None else "",
                default_runtime=opts.default_runtime or "runc",
            )
        )
        await containerd.start()
        if mirrors is not None:
            write_hosts(containerd.config.registry_config_dir, hosts_tomls(mirrors))
        await containerd.ensure_local_images()
        socket_path = containerd.socket
    else:
        socket_path = Path(endpoint)
    # k3s's air-gap directory, imported now and whenever an archive is added
    runtime = containerd or Containerd(ContainerdConfig(opts.data_dir, endpoint=socket_path))
    woken: list[Kubelet] = []

    def imported(_path: Path) -> None:
        for k in woken:
            _wake_pods(k)

    airgap = ImageDirWatcher(opts.data_dir / "images", runtime.import_image, imported)
    await airgap.import_existing()

    masquerading: set[asyncio.Task[None]] = set()

    async def masquerade(cidr: str) -> None:
        try:
            for c in (c.strip() for c in cidr.split(",")):
                if c:
                    await ensure_egress_masquerade(c, c)
        except (RuntimeError, OSError) as err:
            log.warning("cannot masquerade the pods' egress: %s", err)

    def on_pod_cidr(cidr: str) -> None:
        # the node masquerades its pods' egress with one rule, not the bridge plugin a
        # chain per pod; with host-gw routes (HostGwRoutes) only what leaves the cluster CIDR
        path = write_bridge_conflist(cni_conf, cidr, bridge=opts.cni_bridge, ip_masq=False)
        log.info("CNI config written", extra={"path": str(path), "podCIDR": cidr})
        if not opts.node_routes:
            task = asyncio.create_task(masquerade(cidr), name="pod-egress-masquerade")
            masquerading.add(task)
            task.add_done_callback(masquerading.discard)

    if opts.pod_cidr:
        on_pod_cidr(opts.pod_cidr)
    try:
        await ensure_unreachable(opts.cluster_cidr.split(","), opts.service_cidr.split(","))
    except (RuntimeError, OSError, ValueError) as err:
        log.warning("cannot install the unreachable routes: %s", err)
    config = KubeletConfig(
        node_name=node_name, root_dir=opts.data_dir / "kubelet", host_ip=host_ip,
        secondary_ips=tuple(secondary_ips),
        log_root=opts.log_root, pod_cidr=opts.pod_cidr or None,
        cluster_dns=list(opts.cluster_dns), cluster_domain=opts.cluster_domain,
        labels=parse_key_values(opts.node_labels, "label"),
        taints=registration_taints(opts),
        on_pod_cidr=on_pod_cidr, image_fs=image_fs if containerd is not None else None,
    )  # fmt: skip
    registry = CollectorRegistry()
    probe_registry = CollectorRegistry()  # served apart, on /metrics/probes
    if bootstrap is not None:
        await bootstrap
    await startgate.until_open()
    kube = load_config(str(opts.kubeconfig) if opts.kubeconfig else None)
    pki = opts.data_dir / "kubelet" / "pki"
    client_ca = await asyncio.to_thread(_client_ca, pki, kube.ca_data, kube.ca_file)
    tls = await asyncio.to_thread(kubelet_ssl_context, pki, client_ca)
    try:
        async with (
            Client(kube, user_agent=component_user_agent("kubelet")) as client,
            CRIClient(str(socket_path)) as cri,
        ):
            stats = StatsProvider(cri, node_name, root_dir=config.root_dir, image_fs=image_fs)
            # with a client CA, callers are authorized by the API server (webhook mode),
            # and may come with a bearer token instead of a certificate
            auth = KubeletAuth(client, node_name) if client_ca is not None else None
            if auth is not None:
                tls.verify_mode = ssl.CERT_OPTIONAL
            server = KubeletServer(
                cri, host=opts.address, port=opts.port, ssl_context=tls, registry=registry,
                cadvisor=stats.cadvisor_metrics, probe_registry=probe_registry,
                summary=stats.summary, auth=auth,
            )  # fmt: skip
            await server.start()
            config.kubelet_port = server.port
            kubelet = Kubelet(client, cri, config, registry, probe_registry)
            woken.append(kubelet)
            stats.volume_stats = kubelet.volume_stats.for_pod  # the pods' volume entries
            health = HealthServer(
                registry, kubelet.healthy, opts.healthz_bind_address, opts.healthz_port
            )
            await health.start()
            stop = stop_on_signals()
            routes_client = client
            if opts.node_routes and opts.node_routes_kubeconfig is not None:
                routes_client = Client(
                    load_config(str(opts.node_routes_kubeconfig)),
                    user_agent=component_user_agent("kubelet"),
                )
            routes = (
                HostGwRoutes(routes_client, node_name, cluster_cidr=opts.cluster_cidr)
                if opts.node_routes
                else None
            )
            provisioner = Manager(client, component=f"{PROVISIONER_NAME}_{node_name}")
            provisioner.metrics = ControllerMetrics(registry)
            storage = opts.local_storage_path or opts.data_dir / "storage"
            LocalPathProvisioner(provisioner, {node_name: storage})
            provisioning = asyncio.create_task(provisioner.run(stop), name="local-path")
            rotation = None
            if certificates is not None and opts.rotate_certificates:

                def rotated(path: Path) -> None:
                    client.reload_client_certificate(str(path), str(path))

                rotation = asyncio.create_task(
                    certificates.rotate_forever(client, rotated), name="certificate-rotation"
                )
            serving = None
            if opts.rotate_server_certificates:
                serving = asyncio.create_task(
                    serve_issued_certificate(
                        _serving_manager(opts, node_name, client), client, tls
                    ),
                    name="serving-certificate",
                )
            files = asyncio.create_task(
                _watch_node_files(
                    airgap,
                    registries_file,
                    containerd.config.registry_config_dir if containerd is not None else None,
                ),
                name="node-files",
            )
            try:
                await kubelet.start()
                if routes is not None:
                    await routes.start()
                await stop.wait()
            finally:
                stop.set()
                files.cancel()
                for task in (rotation, serving):
                    if task is not None:
                        task.cancel()
                await provisioning
                if routes is not None:
                    await routes.stop()
                if routes_client is not client:
                    await routes_client.close()
                await kubelet.stop()
                await server.stop()
                await health.stop()
    finally:
        if containerd is not None:
            await containerd.stop()
