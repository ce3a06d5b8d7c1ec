"""``pyk8s metrics-adapter``: the custom metrics API as a process, shaped as
``pyk8s metrics-server`` (:mod:`pyk8s.server.metrics_server`).

Composition only: open a client, keep an informer on Pods, scrape every annotated pod's
Prometheus endpoint each ``--scrape-interval`` (15 s) into
:class:`~pyk8s.metricsadapter.series.SeriesStore`, serve ``custom.metrics.k8s.io``
(v1beta2 and v1beta1) over HTTPS on ``--secure-port`` behind the front proxy's trust (the
``kube-system/extension-apiserver-authentication`` ConfigMap, read at start and every
minute), ``/healthz`` and ``/metrics`` on ``--health-port``, and stop on SIGTERM/SIGINT.
With ``--advertise-address`` it registers itself as prometheus-adapter's manifests do: a
selectorless ``kube-system/custom-metrics-apiserver`` Service with an EndpointSlice at
this process, the APIServices ``v1beta2.custom.metrics.k8s.io`` and
``v1beta1.custom.metrics.k8s.io``, and the ``custom-metrics-server-resources``
ClusterRole (everything in the group, for the HPA's identity to be bound to).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, Histogram

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import Client, SharedInformer, component_user_agent, load_config
from pyk8s.metricsadapter.api import GROUP, VERSIONS, CustomMetricsAPI
from pyk8s.metricsadapter.series import PodScraper, SeriesStore, scrape_url
from pyk8s.server.component import HealthServer, stop_on_signals
from pyk8s.server.metrics_server import (
    NAMESPACE,
    FrontProxyTrust,
    register_objects,
    serve_https,
    serving_files,
)

__all__ = ["Options", "registration_objects", "run"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

PODS: Resource = REGISTRY.get("", "v1", "pods")  # type: ignore[assignment]
SERVICES: Resource = REGISTRY.get("", "v1", "services")  # type: ignore[assignment]
SLICES: Resource = REGISTRY.get("discovery.k8s.io", "v1", "endpointslices")  # type: ignore[assignment]
CLUSTERROLES: Resource = REGISTRY.get("rbac.authorization.k8s.io", "v1", "clusterroles")  # type: ignore[assignment]
APISERVICES: Resource = REGISTRY.get("apiregistration.k8s.io", "v1", "apiservices")  # type: ignore[assignment]

SERVICE_NAME = "custom-metrics-apiserver"


@dataclass
class Options:
    kubeconfig: Path | None = None
    bind_address: str = "0.0.0.0"
    secure_port: int = 6443
    scrape_interval: float = 15.0
    scrape_timeout: float = 10.0
    tls_cert_file: Path | None = None
    tls_private_key_file: Path | None = None
    cert_dir: Path = Path("apiserver.local.config/certificates")
    health_bind_address: str = "0.0.0.0"
    health_port: int = 10264
    #: register the Service, EndpointSlice and APIServices pointing at this address
    advertise_address: str = ""


def registration_objects(address: str, port: int) -> list[tuple[Resource, Obj]]:
    """The Service, its EndpointSlice, one APIService per version and the ClusterRole."""
    labels = {"app.kubernetes.io/name": "pyk8s-metrics-adapter"}
    objects: list[tuple[Resource, Obj]] = [
        (SERVICES, {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": SERVICE_NAME, "namespace": NAMESPACE, "labels": labels},
            "spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                "targetPort": port}]},
        }),
        (SLICES, {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{SERVICE_NAME}-pyk8s", "namespace": NAMESPACE,
                         "labels": {"kubernetes.io/service-name": SERVICE_NAME, **labels}},
            "addressType": "IPv6" if ":" in address else "IPv4",
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "protocol": "TCP", "port": port}],
        }),
    ]  # fmt: skip
    for priority, version in zip((200, 100), VERSIONS, strict=True):
        objects.append((APISERVICES, {
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": f"{version}.{GROUP}", "labels": labels},
            "spec": {"group": GROUP, "version": version, "insecureSkipTLSVerify": True,
                     "service": {"name": SERVICE_NAME, "namespace": NAMESPACE, "port": 443},
                     "groupPriorityMinimum": 100, "versionPriority": priority},
        }))  # fmt: skip
    objects.append((CLUSTERROLES, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "custom-metrics-server-resources", "labels": labels},
        "rules": [{"apiGroups": [GROUP], "resources": ["*"], "verbs": ["*"]}],
    }))  # fmt: skip
    return objects


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.round = Histogram(
            "metrics_adapter_scrape_duration_seconds",
            "Time to scrape every annotated pod once.",
            registry=registry,
        )
        self.pods = Gauge(
            "metrics_adapter_scraped_pods", "Pods scraped in the last round.", registry=registry
        )
        self.failed = Gauge(
            "metrics_adapter_scrape_failed_pods",
            "Annotated pods that could not be scraped in the last round.",
            registry=registry,
        )


async def run(opts: Options) -> None:
    if opts.scrape_interval <= 0:
        raise ValueError("--scrape-interval must be positive")
    config = load_config(str(opts.kubeconfig) if opts.kubeconfig else None)
    cert, key = serving_files(
        opts.tls_cert_file, opts.tls_private_key_file, opts.cert_dir, opts.advertise_address,
        service=SERVICE_NAME,
    )  # fmt: skip
    async with Client(config, user_agent=component_user_agent("metrics-adapter")) as client:
        trust = FrontProxyTrust(client)
        requestheader = await trust.load()
        pods = SharedInformer.for_resource(client, PODS)
        store = SeriesStore()
        registry = CollectorRegistry()
        metrics = _Metrics(registry)
        scraped = asyncio.Event()
        api = CustomMetricsAPI(
            store,
            client=client,
            pods=lambda ns: [p for p in pods.store.list() if p["metadata"].get("namespace") == ns],
            requestheader=trust.current,
        )
        scraper = PodScraper(timeout=min(opts.scrape_timeout, opts.scrape_interval))
        runner = web.AppRunner(api.app, access_log=None, handle_signals=False)
        health = HealthServer(registry, scraped.is_set, opts.health_bind_address, opts.health_port)
        stop = stop_on_signals()
        pods.start()
        tasks: list[asyncio.Task[None]] = []
        try:
            await health.start()
            port = await serve_https(
                runner, opts.bind_address, opts.secure_port, cert, key, requestheader.client_ca
            )
            await pods.wait_synced()

            async def scrape_loop() -> None:
                loop = asyncio.get_running_loop()
                while True:
                    started = loop.time()
                    pod_list = pods.store.list()
                    with metrics.round.time():
                        got = await scraper.scrape(pod_list)
                    now = time.time()
                    for key_, samples in got.items():
                        store.update(key_, now, samples)
                    # a pod that failed this round keeps its last values until it is gone
                    targets = {(p["metadata"].get("namespace", ""), p["metadata"]["name"])
                               for p in pod_list if scrape_url(p) is not None}  # fmt: skip
                    store.retain(targets)
                    metrics.pods.set(len(got))
                    metrics.failed.set(len(targets) - len(got))
                    scraped.set()
                    await asyncio.sleep(max(0.0, opts.scrape_interval - (loop.time() - started)))

            tasks = [
                asyncio.create_task(scrape_loop(), name="scrape"),
                asyncio.create_task(trust.refresh_forever(), name="requestheader"),
            ]
            if opts.advertise_address:
                await register_objects(client, registration_objects(opts.advertise_address, port))
                log.info("custom metrics API registered",
                         extra={"group": GROUP, "endpoint": opts.advertise_address})  # fmt: skip
            log.info("metrics-adapter started",
                     extra={"port": port, "interval": opts.scrape_interval})  # fmt: skip
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await runner.cleanup()
            await scraper.close()
            await pods.stop()
            await health.stop()
