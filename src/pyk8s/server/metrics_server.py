"""``pyk8s metrics-server``: the resource metrics API as a process.

Composition only: open a client, keep informers on Nodes and Pods, scrape every node's
kubelet each ``--metric-resolution`` (15 s, upstream's default) into
:class:`~pyk8s.metricsserver.storage.Storage`, serve ``metrics.k8s.io/v1beta1`` over
HTTPS on ``--secure-port`` (a self-signed serving certificate under ``--cert-dir`` unless
``--tls-cert-file`` is given, as upstream), ``/healthz`` and ``/metrics`` on
``--health-port``, and stop on SIGTERM/SIGINT.

Front-proxy trust comes from the ``kube-system/extension-apiserver-authentication``
ConfigMap, read at start (waited for) and every minute after. With ``--advertise-address``
the server registers itself as upstream's manifest does: a ``kube-system/metrics-server``
Service (selectorless here, since it is not a pod, with an EndpointSlice pointing at
this process, like ``pyk8s dns`` publishes kube-dns) and the APIService
``v1beta1.metrics.k8s.io`` (``insecureSkipTLSVerify``, priorities 100/100, as in
upstream's components.yaml).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from prometheus_client import CollectorRegistry, Gauge, Histogram

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import (
    Client,
    SharedInformer,
    component_user_agent,
    is_already_exists,
    is_not_found,
    load_config,
)
from pyk8s.client.config import Config
from pyk8s.client.errors import ClientError
from pyk8s.metricsserver.api import MetricsAPI, RequestHeader, serving_context
from pyk8s.metricsserver.scraper import DEFAULT_ADDRESS_TYPES, Scraper
from pyk8s.metricsserver.storage import Storage
from pyk8s.server.component import HealthServer, stop_on_signals, tcp_site

__all__ = [
    "FrontProxyTrust",
    "Options",
    "register_objects",
    "run",
    "serve_https",
    "serving_files",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

NODES: Resource = REGISTRY.get("", "v1", "nodes")  # type: ignore[assignment]
PODS: Resource = REGISTRY.get("", "v1", "pods")  # type: ignore[assignment]
CONFIGMAPS: Resource = REGISTRY.get("", "v1", "configmaps")  # type: ignore[assignment]
SERVICES: Resource = REGISTRY.get("", "v1", "services")  # type: ignore[assignment]
SLICES: Resource = REGISTRY.get("discovery.k8s.io", "v1", "endpointslices")  # type: ignore[assignment]
CLUSTERROLES: Resource = REGISTRY.get("rbac.authorization.k8s.io", "v1", "clusterroles")  # type: ignore[assignment]
APISERVICES: Resource = REGISTRY.get("apiregistration.k8s.io", "v1", "apiservices")  # type: ignore[assignment]

APISERVICE_NAME = "v1beta1.metrics.k8s.io"
SERVICE_NAME = "metrics-server"
NAMESPACE = "kube-system"
AUTH_CONFIGMAP = "extension-apiserver-authentication"
AUTH_REFRESH = 60.0


@dataclass
class Options:
    kubeconfig: Path | None = None
    bind_address: str = "0.0.0.0"
    secure_port: int = 4443
    metric_resolution: float = 15.0
    kubelet_insecure_tls: bool = False
    kubelet_client_certificate: Path | None = None
    kubelet_client_key: Path | None = None
    kubelet_certificate_authority: Path | None = None
    kubelet_preferred_address_types: tuple[str, ...] = DEFAULT_ADDRESS_TYPES
    kubelet_request_timeout: float = 10.0
    tls_cert_file: Path | None = None
    tls_private_key_file: Path | None = None
    cert_dir: Path = Path("apiserver.local.config/certificates")
    health_bind_address: str = "0.0.0.0"
    health_port: int = 10263
    #: register the Service, EndpointSlice and APIService pointing at this address
    advertise_address: str = ""


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.tick = Histogram(
            "metrics_server_manager_tick_duration_seconds",
            "The total time spent collecting and storing metrics in seconds.",
            registry=registry,
        )
        self.nodes = Gauge(
            "metrics_server_storage_points",
            "Number of metrics points stored.",
            ["type"],
            registry=registry,
        )
        self.failed = Gauge(
            "metrics_server_scrape_failed_nodes",
            "Nodes that could not be scraped in the last round.",
            registry=registry,
        )


def write_self_signed(cert: Path, key_path: Path, hosts: list[str]) -> None:
    """A self-signed serving certificate for ``hosts`` (names or IPs), as upstream
    metrics-server makes in ``--cert-dir`` when given none."""
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"localhost@{int(now.timestamp())}")])
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    built = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert.parent.mkdir(parents=True, exist_ok=True)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    cert.write_bytes(built.public_bytes(serialization.Encoding.PEM))


def serving_files(
    tls_cert_file: Path | None,
    tls_private_key_file: Path | None,
    cert_dir: Path,
    advertise_address: str,
    service: str = SERVICE_NAME,
) -> tuple[str, str]:
    """The serving certificate and key: the flags' files, else a self-signed pair in
    ``cert_dir`` for the Service's names (made once), as an extension API server does."""
    if tls_cert_file and tls_private_key_file:
        return str(tls_cert_file), str(tls_private_key_file)
    cert = cert_dir / "apiserver.crt"
    key = cert_dir / "apiserver.key"
    if not (cert.exists() and key.exists()):
        hosts = ["localhost", "127.0.0.1", socket.gethostname(), f"{service}.{NAMESPACE}.svc"]
        hosts += [advertise_address] if advertise_address else []
        write_self_signed(cert, key, hosts)
    return str(cert), str(key)


def kubelet_context(opts: Options, config: Config) -> ssl.SSLContext:
    """TLS towards the kubelets: the client certificate of the flags, else the
    kubeconfig's (with its CA); ``--kubelet-certificate-authority`` to verify them, or
    no verification with ``--kubelet-insecure-tls``."""
    from_config = config.ssl_context() if (config.cert_file or config.cert_data) else None
    if opts.kubelet_client_certificate and opts.kubelet_client_key:
        ctx = ssl.create_default_context()
        ctx.load_cert_chain(str(opts.kubelet_client_certificate), str(opts.kubelet_client_key))
    else:
        ctx = from_config or ssl.create_default_context()
    if opts.kubelet_certificate_authority:
        ctx.load_verify_locations(cafile=str(opts.kubelet_certificate_authority))
    if opts.kubelet_insecure_tls:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def registration_objects(address: str, port: int) -> tuple[Obj, Obj, Obj, Obj]:
    """The Service, its EndpointSlice, the APIService and the ClusterRole that lets the
    view/edit/admin roles read metrics (upstream's names, ports and rules)."""
    labels = {"k8s-app": "metrics-server"}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVICE_NAME, "namespace": NAMESPACE, "labels": labels},
        "spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
    }
    endpoints = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{SERVICE_NAME}-pyk8s",
            "namespace": NAMESPACE,
            "labels": {"kubernetes.io/service-name": SERVICE_NAME, **labels},
        },
        "addressType": "IPv6" if ":" in address else "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "protocol": "TCP", "port": port}],
    }
    apiservice = {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": APISERVICE_NAME, "labels": labels},
        "spec": {
            "group": "metrics.k8s.io",
            "version": "v1beta1",
            "service": {"name": SERVICE_NAME, "namespace": NAMESPACE, "port": 443},
            "insecureSkipTLSVerify": True,
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
        },
    }
    reader = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": "system:aggregated-metrics-reader",
            "labels": {
                **labels,
                **{f"rbac.authorization.k8s.io/aggregate-to-{role}": "true"
                   for role in ("admin", "edit", "view")},
            },
        },
        "rules": [{"apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"],
                   "verbs": ["get", "list", "watch"]}],
    }  # fmt: skip
    return service, endpoints, apiservice, reader


async def register(client: Client, address: str, port: int) -> None:
    """Create or update the four objects (idempotent)."""
    await register_objects(
        client,
        zip(
            (SERVICES, SLICES, APISERVICES, CLUSTERROLES),
            registration_objects(address, port),
            strict=True,
        ),
    )
    log.info("metrics API registered", extra={"apiservice": APISERVICE_NAME, "endpoint": address})


async def register_objects(client: Client, objects: Iterable[tuple[Resource, Obj]]) -> None:
    """Create each object, or update the fields that say where it points (idempotent;
    an existing Service is kept as it is)."""
    for res, obj in objects:
        meta = obj["metadata"]
        namespace = meta.get("namespace")
        try:
            current = await client.get(res, meta["name"], namespace)
        except ClientError as err:
            if not is_not_found(err):
                raise
            try:
                await client.create(res, obj)
            except ClientError as created:
                if not is_already_exists(created):
                    raise
            continue
        if res is SERVICES:
            continue
        fields = {SLICES: ("addressType", "endpoints", "ports"), CLUSTERROLES: ("rules",)}.get(
            res, ("spec",)
        )
        if any(current.get(f) != obj[f] for f in fields):
            current.update({f: obj[f] for f in fields})
            await client.update(res, current)


async def read_requestheader(client: Client) -> RequestHeader | None:
    try:
        cm = await client.get(CONFIGMAPS, AUTH_CONFIGMAP, NAMESPACE)
        return RequestHeader.from_configmap(cm)
    except (ClientError, ValueError) as err:
        log.warning("cannot read %s/%s: %s", NAMESPACE, AUTH_CONFIGMAP, err)
        return None


class FrontProxyTrust:
    """What the front proxy's trust currently is: read at start (waited for, as an
    extension API server cannot authenticate anyone without it) and every minute."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.requestheader: RequestHeader | None = None

    async def load(self) -> RequestHeader:
        got = await read_requestheader(self.client)
        while got is None:
            await asyncio.sleep(2.0)
            got = await read_requestheader(self.client)
        self.requestheader = got
        return got

    def current(self) -> RequestHeader | None:
        return self.requestheader

    async def refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(AUTH_REFRESH)
            fresh = await read_requestheader(self.client)
            if fresh is not None:
                self.requestheader = fresh


async def serve_https(
    runner: web.AppRunner, bind_address: str, port: int, cert: str, key: str, client_ca: str
) -> int:
    """Serve ``runner``'s application over TLS that asks for front-proxy client
    certificates; the port bound (``port`` 0: any free one)."""
    await runner.setup()
    ctx = serving_context(cert, key, client_ca)
    await tcp_site(runner, bind_address, port, ctx).start()
    return int(runner.addresses[0][1])


async def run(opts: Options) -> None:
    if opts.metric_resolution <= 0:
        raise ValueError("--metric-resolution must be positive")
    config = load_config(str(opts.kubeconfig) if opts.kubeconfig else None)
    cert, key = serving_files(
        opts.tls_cert_file, opts.tls_private_key_file, opts.cert_dir, opts.advertise_address
    )
    kubelet_ssl = kubelet_context(opts, config)
    async with Client(config, user_agent=component_user_agent("metrics-server")) as client:
        trust = FrontProxyTrust(client)
        requestheader = await trust.load()
        nodes = SharedInformer.for_resource(client, NODES)
        pods = SharedInformer.for_resource(client, PODS)
        storage = Storage()
        registry = CollectorRegistry()
        metrics = _Metrics(registry)
        scraped = asyncio.Event()
        api = MetricsAPI(
            storage,
            client=client,
            nodes=nodes.store.list,
            node=nodes.store.get,
            pods=pods.store.list,
            pod=lambda ns, name: pods.store.get_by_name(ns, name),
            requestheader=trust.current,
        )
        scraper = Scraper(
            kubelet_ssl,
            timeout=min(opts.kubelet_request_timeout, opts.metric_resolution),
            address_types=opts.kubelet_preferred_address_types,
        )
        runner = web.AppRunner(api.app, access_log=None, handle_signals=False)
        health = HealthServer(registry, scraped.is_set, opts.health_bind_address, opts.health_port)
        stop = stop_on_signals()
        nodes.start()
        pods.start()
        tasks: list[asyncio.Task[None]] = []
        try:
            await health.start()
            port = await serve_https(
                runner, opts.bind_address, opts.secure_port, cert, key, requestheader.client_ca
            )
            await nodes.wait_synced()
            await pods.wait_synced()

            async def scrape_loop() -> None:
                loop = asyncio.get_running_loop()
                while True:
                    started = loop.time()
                    node_list = nodes.store.list()
                    with metrics.tick.time():
                        samples = await scraper.scrape(node_list, time.time())
                        storage.store(samples)
                    metrics.failed.set(len(node_list) - len(samples))
                    metrics.nodes.labels("node").set(len(storage.node_names()))
                    metrics.nodes.labels("container").set(len(storage.pod_keys()))
                    scraped.set()
                    log.debug("scrape round", extra={"nodes": len(node_list),
                                                     "scraped": len(samples)})  # fmt: skip
                    await asyncio.sleep(max(0.0, opts.metric_resolution - (loop.time() - started)))

            tasks = [
                asyncio.create_task(scrape_loop(), name="scrape"),
                asyncio.create_task(trust.refresh_forever(), name="requestheader"),
            ]
            if opts.advertise_address:
                await register(client, opts.advertise_address, port)
            log.info(
                "metrics-server started",
                extra={"port": port, "resolution": opts.metric_resolution},
            )
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await runner.cleanup()
            await scraper.close()
            await nodes.stop()
            await pods.stop()
            await health.stop()
