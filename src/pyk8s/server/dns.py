"""``pyk8s dns``: cluster DNS (the CoreDNS role) as a process.

Composition only: open a client, start the Services and EndpointSlices informers, serve
DNS on UDP and TCP (``0.0.0.0:53`` by default), forward other names to the upstreams
given or else to the host's ``/etc/resolv.conf`` nameservers, serve ``/healthz``,
CoreDNS's ``/health`` and ``/ready``, and ``/metrics`` on one HTTP port (8080 by
default, CoreDNS's health port), and stop on SIGTERM/SIGINT. DNS starts answering
after the first list of both resources or after :data:`SYNC_WAIT` seconds, whichever
comes first (as CoreDNS does); ``/healthz`` and ``/ready`` are 200 only once both
informers have synced.

Every node runs one (``pyk8s server`` for its own node, ``pyk8s agent`` for a joined
one), bound to the node's address. Each publishes itself in an EndpointSlice of the
``kube-dns`` Service that it alone owns, ``kube-system/kube-dns-<node>`` (labelled
``endpointslice.kubernetes.io/managed-by: dns.pyk8s.io``, so the EndpointSlice
controller leaves it alone), ready once serving and marked not ready / terminating on
SIGTERM, so the kube-dns ClusterIP reaches every node's DNS that is up. A server that
dies without SIGTERM is taken out by the others when its Lease stops being renewed
(:mod:`pyk8s.dns.peers`).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from pyk8s.api.registry import REGISTRY
from pyk8s.client import Client, component_user_agent, is_already_exists, is_not_found, load_config
from pyk8s.client.errors import ClientError
from pyk8s.dns.forward import RESOLV_CONF, Forwarder, Upstream, nameservers, parse_upstream
from pyk8s.dns.peers import PeerLiveness
from pyk8s.dns.records import DEFAULT_DOMAIN, TTL, Zone
from pyk8s.dns.server import ClusterInformers, DNSServer
from pyk8s.server.component import HealthServer, stop_on_signals, tcp_site

__all__ = ["Options", "run", "upstreams_for"]

log = logging.getLogger(__name__)

SYNC_WAIT = 5.0

Obj = dict[str, Any]


@dataclass
class Options:
    kubeconfig: Path | None = None
    bind_address: str = "0.0.0.0"
    port: int = 53
    cluster_domain: str = DEFAULT_DOMAIN
    #: ``IP`` or ``IP:PORT`` (``[IPv6]:PORT``); empty: the nameservers of ``resolv_conf``
    upstreams: list[str] = field(default_factory=list)
    resolv_conf: Path = RESOLV_CONF
    forward_timeout: float = 2.0
    ttl: int = TTL
    health_bind_address: str = "0.0.0.0"
    health_port: int = 8080
    #: CoreDNS's ready plugin listener (8181 there): ``/ready`` alone on this port too;
    #: 0 serves it only on the health port
    ready_port: int = 0
    #: CoreDNS's ``pods`` option for ``<ip>.<ns>.pod`` names: insecure (k3s's), verified
    #: (only addresses of that namespace's pods; watches Pods) or disabled
    pods: str = "insecure"
    #: publish ``kube-system/kube-dns`` at this ClusterIP (what ``pyk8s server`` does;
    #: "" leaves the Service alone, as ``pyk8s agent``'s DNS does)
    cluster_ip: str = ""
    #: publish this server as ``advertise_address``:``port`` in its node's kube-dns
    #: EndpointSlice (:func:`slice_name`); "" publishes no endpoint
    advertise_address: str = ""
    #: the node this server runs on (the slice's name and ``nodeName``); "" = host name
    node_name: str = ""


def _is_self(upstream: Upstream, opts: Options) -> bool:
    """Whether forwarding to ``upstream`` would reach this server (a forwarding loop)."""
    if upstream.port != opts.port:
        return False
    host = ipaddress.ip_address(upstream.host.split("%")[0])
    listen = ipaddress.ip_address(opts.bind_address)
    return host == listen or (listen.is_unspecified and host.is_loopback)


def upstreams_for(opts: Options) -> list[Upstream]:
    """The upstreams to forward to, without ones that are this server itself."""
    given = [parse_upstream(u) for u in opts.upstreams] or nameservers(opts.resolv_conf)
    kept = [u for u in given if not _is_self(u, opts)]
    for u in given:
        if u not in kept:
            log.warning("not forwarding to %s: that is this server", u)
    if not kept:
        log.warning("no upstream resolvers: names outside the cluster get SERVFAIL")
    return kept


LABELS = {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}
PORTS = [("dns", "UDP"), ("dns-tcp", "TCP")]
#: ``endpointslice.kubernetes.io/managed-by`` of the per-node slices (the EndpointSlice
#: controller leaves slices managed by others alone)
MANAGED_BY = "dns.pyk8s.io"


def slice_name(node: str) -> str:
    """The EndpointSlice in which the DNS server on ``node`` publishes itself."""
    return f"kube-dns-{node}"


def kube_dns_service(cluster_ip: str, port: int) -> Obj:
    """The ``kube-dns`` Service (no selector: the DNS servers are not pods), with
    upstream's names and ports."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": LABELS},
        "spec": {
            "clusterIP": cluster_ip,
            "ports": [{"name": n, "protocol": p, "port": 53, "targetPort": port} for n, p in PORTS],
        },
    }


def node_slice(node: str, address: str, port: int, ready: bool = True) -> Obj:
    """This node's kube-dns EndpointSlice: one endpoint, this server; on shutdown
    ``ready=False`` (not ready, not serving, terminating) so proxies stop sending to it."""
    conditions = {"ready": ready, "serving": ready, "terminating": not ready}
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name(node),
            "namespace": "kube-system",
            "labels": {
                "kubernetes.io/service-name": "kube-dns",
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
                **LABELS,
            },
        },
        "addressType": "IPv6" if ":" in address else "IPv4",
        "endpoints": [{"addresses": [address], "conditions": conditions, "nodeName": node}],
        "ports": [{"name": n, "protocol": p, "port": port} for n, p in PORTS],
    }


async def _apply(client: Client, res: Any, obj: Obj, fields: tuple[str, ...]) -> None:
    """Create ``obj`` in kube-system, or copy ``fields`` onto the existing one."""
    # look before creating: creating an existing Service with the same fixed ClusterIP
    # is refused as an IP conflict (422), as upstream does, not as AlreadyExists
    try:
        current = await client.get(res, obj["metadata"]["name"], "kube-system")
    except ClientError as err:
        if not is_not_found(err):
            raise
        try:
            await client.create(res, obj)
        except ClientError as created:
            if not is_already_exists(created):
                raise
        return
    if fields:
        current.update({k: obj[k] for k in fields})
        current["metadata"]["labels"] = obj["metadata"]["labels"]
        await client.update(res, current)


async def publish_service(client: Client, cluster_ip: str, port: int) -> None:
    """Create the kube-dns Service if it is missing (idempotent)."""
    services = REGISTRY.get("", "v1", "services")
    assert services is not None
    await _apply(client, services, kube_dns_service(cluster_ip, port), ())
    log.info("kube-dns published", extra={"clusterIP": cluster_ip})


async def publish_endpoint(client: Client, node: str, address: str, port: int, ready: bool) -> None:
    """Create or update this node's kube-dns EndpointSlice (idempotent)."""
    slices = REGISTRY.get("discovery.k8s.io", "v1", "endpointslices")
    assert slices is not None
    obj = node_slice(node, address, port, ready)
    await _apply(client, slices, obj, ("addressType", "endpoints", "ports"))
    log.info("kube-dns endpoint", extra={"node": node, "endpoint": address, "ready": ready})


def coredns_routes(server: DNSServer) -> list[web.RouteDef]:
    """CoreDNS's ``/health`` (its health plugin: 200 ``OK`` while the process serves) and
    ``/ready`` (its ready plugin: 200 ``OK`` once the informers synced, else 503), here
    on the one health port."""

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def ready(_: web.Request) -> web.Response:
        if server.healthy():
            return web.Response(text="OK")
        return web.Response(status=503, text="kubernetes")  # CoreDNS names the plugin

    return [web.get("/health", health), web.get("/ready", ready)]


async def _serve_ready(server: DNSServer, host: str, port: int) -> web.AppRunner:
    """CoreDNS's ready plugin on a port of its own (``/ready`` only)."""
    app = web.Application()
    app.router.add_routes([r for r in coredns_routes(server) if r.path == "/ready"])
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await tcp_site(runner, host, port).start()
    return runner


async def run(opts: Options) -> None:
    if not 0 < opts.ttl <= 3600:
        raise ValueError("--ttl must be between 1 and 3600")
    upstreams = upstreams_for(opts)
    node = (opts.node_name or socket.gethostname()).lower()
    config = load_config(str(opts.kubeconfig) if opts.kubeconfig else None)
    async with Client(config, user_agent=component_user_agent("coredns")) as client:
        informers = ClusterInformers(client, pods=opts.pods == "verified")
        zone = Zone(
            informers.catalog,
            opts.cluster_domain,
            opts.ttl,
            serial=int(time.time()),
            pods=opts.pods,
        )
        server = DNSServer(
            zone, Forwarder(upstreams, opts.forward_timeout), opts.bind_address, opts.port,
            ready=informers.synced,
        )  # fmt: skip
        health = HealthServer(
            server.registry, server.healthy, opts.health_bind_address, opts.health_port,
            routes=coredns_routes(server),
        )  # fmt: skip
        ready: web.AppRunner | None = None
        stop = stop_on_signals()
        await health.start()
        peers: PeerLiveness | None = None
        try:
            if opts.ready_port:
                ready = await _serve_ready(server, opts.health_bind_address, opts.ready_port)
            if not await informers.start(within=SYNC_WAIT):
                log.warning("serving DNS before the informers synced")
            await server.start()
            if opts.cluster_ip:
                await publish_service(client, opts.cluster_ip, opts.port)
            if opts.advertise_address:
                address = opts.advertise_address

                async def republish() -> None:
                    await publish_endpoint(client, node, address, opts.port, True)

                await republish()
                peers = PeerLiveness(client, node, informers.slices.store, MANAGED_BY, republish)
                peers.start()
            log.info(
                "dns started",
                extra={"domain": opts.cluster_domain, "upstreams": [str(u) for u in upstreams]},
            )
            await stop.wait()
            if peers is not None:
                await peers.stop(release=False)  # no republishing from here on
            if opts.advertise_address:
                try:
                    await publish_endpoint(client, node, opts.advertise_address, opts.port, False)
                except (ClientError, OSError) as err:
                    log.warning("cannot mark the kube-dns endpoint not ready: %s", err)
            if peers is not None:
                await peers.stop(release=True)  # gone cleanly: the peers leave the slice be
        finally:
            await server.stop()
            await informers.stop()
            await health.stop()
            if ready is not None:
                await ready.cleanup()
