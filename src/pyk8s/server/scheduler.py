"""``pyk8s scheduler``: kube-scheduler as its own process, leader-elected on the Lease
``kube-system/kube-scheduler`` like upstream, with /healthz and /metrics on port 10259.

``--config`` takes a KubeSchedulerConfiguration (YAML): its ``profiles`` (scheduler
names and enabled/disabled plugins per extension point) and ``leaderElection.leaderElect``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pyk8s.client import (
    Client,
    EventRecorder,
    LeaseSettings,
    component_user_agent,
    load_config,
    run_while_leading,
)
from pyk8s.scheduler import Scheduler
from pyk8s.scheduler.scheduler import DEFAULT_SCHEDULER_NAME
from pyk8s.server import gcfreeze
from pyk8s.server.component import HealthServer, stop_on_signals

log = logging.getLogger(__name__)

LOCK_NAME = "kube-scheduler"
#: Events (one Scheduled per bound pod) waiting for a writer, and the writers: upstream's
#: events/v1 broadcaster writes every event from a goroutine of its own, so a burst of
#: binds loses none; with the recorder's defaults (1,000 waiting, 16 writers) a 5,000-node
#: bench/scale run logged "event queue full" for 3,000 to 6,500 of 10,000 pods
EVENT_QUEUE_SIZE = 20_000
EVENT_WRITERS = 64


@dataclass
class Options:
    kubeconfig: Path | None = None
    leader_elect: bool = True
    #: --leader-elect-lease-duration / -renew-deadline / -retry-period (and the identity's host)
    lease: LeaseSettings = field(default_factory=LeaseSettings)
    bind_address: str = "127.0.0.1"
    port: int = 10259
    config: Path | None = None
    #: client-side rate limit; None takes the config's clientConnection (upstream: 50/100)
    kube_api_qps: float | None = None
    kube_api_burst: int | None = None


def load_scheduler_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    doc = yaml.safe_load(path.read_text()) or {}
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: not a KubeSchedulerConfiguration")
    kind = doc.get("kind", "KubeSchedulerConfiguration")
    if kind != "KubeSchedulerConfiguration":
        raise ValueError(f"{path}: kind {kind!r} is not KubeSchedulerConfiguration")
    return doc


async def run(opts: Options) -> None:
    cfg = load_scheduler_config(opts.config)
    leader_elect = opts.leader_elect and (cfg.get("leaderElection") or {}).get("leaderElect", True)
    config = load_config(str(opts.kubeconfig) if opts.kubeconfig else None)
    connection = cfg.get("clientConnection") or {}
    qps = opts.kube_api_qps or float(connection.get("qps", 50.0))
    burst = opts.kube_api_burst or int(connection.get("burst", 100))
    agent = component_user_agent("kube-scheduler")
    # three clients, each with its own rate limit, as upstream's createClients and
    # leader election make: lease renewals and events never queue behind the
    # binds and status writes of a large batch of pods (under such a batch the shared
    # limiter once held a renewal past its deadline, and the scheduler lost its lease)
    async with (
        Client(config, qps=qps, burst=burst, user_agent=agent) as client,
        Client(config, qps=qps, burst=burst, user_agent=agent) as event_client,
        Client(
            config, qps=qps, burst=burst, user_agent=f"{agent}/leader-election"
        ) as election_client,
    ):
        recorder = EventRecorder(
            event_client,
            DEFAULT_SCHEDULER_NAME,
            queue_size=EVENT_QUEUE_SIZE,
            writers=EVENT_WRITERS,
        )
        # validates the profiles before we campaign
        scheduler = Scheduler(client, cfg, recorder=recorder)
        health = HealthServer(scheduler.registry, lambda: True, opts.bind_address, opts.port)
        await health.start()
        stop = stop_on_signals()
        # the informers' copies of every node and pod, frozen as they grow: the collector's
        # full collections walked them all, a third of the scheduler's CPU at 5,000 nodes
        # and the youngest generation collected 20,000 allocations apart, not 700: what a
        # request allocates is mostly freed by reference counting before then
        freezer = asyncio.create_task(
            gcfreeze.run(young=gcfreeze.YOUNG_THRESHOLD), name="gc-freeze"
        )
        try:
            if not leader_elect:
                await scheduler.run(stop)
                return

            async def lead() -> None:
                await scheduler.run(stop)

            election = opts.lease.config(LOCK_NAME, lead)
            await run_while_leading(election_client, election, stop)
            stop.set()  # leadership lost: stop, as upstream (a restart campaigns again)
        finally:
            freezer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await freezer
            await health.stop()
