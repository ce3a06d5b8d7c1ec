"""``pyk8s sim-nodes``: run :class:`~pyk8s.kubelet.simulated.SimulatedNodes` as a process.

Composition only: parse the flags into a :class:`~pyk8s.kubelet.simulated.NodeTemplate`,
open a client (with a higher client-side rate limit than a controller's, since one
process speaks for many kubelets), serve ``/healthz`` and ``/metrics``, and stop on
SIGTERM/SIGINT. Killing the process stops every node's lease renewal at once; to kill
nodes one at a time, ``SIGUSR1`` stops the highest-numbered running node and ``SIGUSR2``
restarts the node stopped last.

The same HTTP port serves each node's ``/metrics/resource`` (synthetic usage, see
:mod:`pyk8s.kubelet.simusage`) on kwok's path ``/metrics/nodes/{node}/metrics/resource``,
announced on the Node for metrics-server to scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from pyk8s.client import Client, load_config
from pyk8s.kubelet.simulated import RENEW_INTERVAL, NodeTemplate, SimulatedNodes, parse_taint
from pyk8s.kubelet.stats import resource_metrics
from pyk8s.server import gcfreeze
from pyk8s.server.component import HealthServer, stop_on_signals

__all__ = ["Options", "parse_key_values", "run", "template_from"]

log = logging.getLogger(__name__)


@dataclass
class Options:
    kubeconfig: Path | None = None
    count: int = 1
    name_prefix: str = "sim-"
    cpu: str = "8"
    memory: str = "32Gi"
    pods: int = 110
    ephemeral_storage: str = "100Gi"
    extended: list[str] = field(default_factory=list)
    labels: str = ""
    taints: str = ""
    bind_address: str = "127.0.0.1"
    port: int = 10260
    qps: float = 500.0
    burst: int = 1000
    #: seconds; renewed every quarter of it, as the kubelet; 0: no Leases
    lease_duration: int = 40


def parse_key_values(text: str, what: str) -> dict[str, str]:
    """``k=v,k2=v2`` → dict (ValueError with a readable message otherwise)."""
    out: dict[str, str] = {}
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"invalid {what} {item!r}: want key=value")
        out[key] = value
    return out


def template_from(opts: Options) -> NodeTemplate:
    extended: dict[str, str] = {}
    for item in opts.extended:
        extended.update(parse_key_values(item, "extended resource"))
    taints = [parse_taint(t.strip()) for t in opts.taints.split(",") if t.strip()]
    return NodeTemplate(
        cpu=opts.cpu,
        memory=opts.memory,
        pods=opts.pods,
        ephemeral_storage=opts.ephemeral_storage,
        extended=extended,
        labels=parse_key_values(opts.labels, "label"),
        taints=taints,
    )


async def run(opts: Options) -> None:
    if opts.count < 1:
        raise ValueError("--count must be at least 1")
    template = template_from(opts)
    config = load_config(str(opts.kubeconfig) if opts.kubeconfig else None)
    # the nodes' heartbeats (Leases, node status) have a client of their own, as the
    # kubelet's heartbeat client: their connections never queue the pods' status writes.
    # Each real kubelet has its own connection; with 100 for 5,000 nodes a loaded API
    # server (0.35 s a request) saw ~250 renewals/s instead of 500: room for a tenth of
    # the nodes in flight keeps the interval up to ~1 s of latency
    beat_connections = max(100, opts.count // 10)
    async with (
        Client(config, qps=opts.qps, burst=opts.burst, user_agent="pyk8s-sim-nodes") as c,
        Client(
            config,
            qps=opts.qps,
            burst=opts.burst,
            user_agent="pyk8s-sim-nodes",
            connection_limit=beat_connections,
        ) as beats,
    ):
        host = "127.0.0.1" if opts.bind_address in ("0.0.0.0", "") else opts.bind_address
        host = f"[{host}]" if ":" in host else host
        sim = SimulatedNodes(
            c,
            count=opts.count,
            name_prefix=opts.name_prefix,
            template=template,
            heartbeat_client=beats,
            lease_duration=opts.lease_duration,
            renew_interval=opts.lease_duration / 4 if opts.lease_duration > 0 else RENEW_INTERVAL,
        )

        async def node_resource_metrics(request: web.Request) -> web.Response:
            summary = sim.resource_summary(request.match_info["node"], time.time())
            if summary is None:
                raise web.HTTPNotFound(text="404 page not found\n")
            return web.Response(
                text=resource_metrics(summary), content_type="text/plain", charset="utf-8"
            )

        routes = [web.get("/metrics/nodes/{node}/metrics/resource", node_resource_metrics)]
        health = HealthServer(sim.registry, sim.healthy, opts.bind_address, opts.port, routes)
        await health.start()
        sim.metrics_url = f"http://{host}:{health.port}"
        stop = stop_on_signals()
        stopped: list[str] = []

        def stop_one() -> None:
            running = [n for n, node in sim.nodes.items() if node.running]
            if running:
                stopped.append(running[-1])
                sim.stop_node(running[-1])

        def restart_one() -> None:
            if stopped:
                sim.start_node(stopped.pop())

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, stop_one)
        loop.add_signal_handler(signal.SIGUSR2, restart_one)
        # the informers' nodes and pods and the nodes' lease tasks, frozen as they grow:
        # the collector's full collections walked them all, about half of this process's
        # CPU at 5,000 nodes
        # and the youngest generation collected 20,000 allocations apart, not 700: what a
        # request allocates is mostly freed by reference counting before then
        freezer = asyncio.create_task(
            gcfreeze.run(young=gcfreeze.YOUNG_THRESHOLD), name="gc-freeze"
        )
        try:
            await sim.start()
            log.info("simulated nodes registered", extra={"count": opts.count})
            await stop.wait()
        finally:
            freezer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await freezer
            await sim.stop()
            await health.stop()
