"""``pyk8s cloud-controller-manager``: the cloud controllers for one provider, leader-elected.

Composition only, like ``controller_manager``: build the provider named by
``--cloud-provider`` (``local`` by default), add the controllers ``--controllers`` picks
to a Manager, serve ``/healthz`` and ``/metrics`` on upstream's port 10258, and run while
holding the Lease ``kube-system/cloud-controller-manager``; SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from pyk8s.client import Client, LeaseSettings, component_user_agent, load_config
from pyk8s.cloudprovider import get_provider, selected, setup
from pyk8s.cloudprovider.provider import Interface
from pyk8s.controllers.runtime import Manager
from pyk8s.server.component import HealthServer, stop_on_signals

__all__ = ["Options", "build", "lead", "run"]

log = logging.getLogger(__name__)

COMPONENT = "cloud-controller-manager"


@dataclass
class Options:
    kubeconfig: Path | None = None
    cloud_provider: str = "local"
    #: the local provider's address-pool mode (``--lb-address-pool``), and the one
    #: ``spec.loadBalancerClass`` it answers alone (``--lb-class``)
    lb_address_pools: list[str] = field(default_factory=list)
    lb_class: str = ""
    controllers: list[str] = field(default_factory=lambda: ["*"])
    leader_elect: bool = True
    #: --leader-elect-lease-duration / -renew-deadline / -retry-period (and the identity's host)
    lease: LeaseSettings = field(default_factory=LeaseSettings)
    bind_address: str = "127.0.0.1"
    port: int = 10258


def check(opts: Options) -> None:
    """ValueError for an unknown provider or controller (before anything starts)."""
    _provider(opts)
    selected(opts.controllers)


def _provider(opts: Options) -> Interface:
    options: dict[str, object] = {}
    if opts.lb_address_pools:
        options["address_pools"] = opts.lb_address_pools
    if opts.lb_class:
        options["lb_class"] = opts.lb_class
    return get_provider(opts.cloud_provider, **options)


def build(client: Client, opts: Options, shared_with: Manager | None = None) -> Manager:
    """A Manager with the cloud controllers ``opts`` picks, writing through ``client``;
    with ``shared_with``, on that Manager's informers and metrics (``pyk8s server`` runs
    them in its controller manager's process, as k3s embeds its cloud controller)."""
    manager = Manager(client, component=COMPONENT, shared_with=shared_with)
    provider = _provider(opts)
    names: list[str] = []
    manager.set_up(lambda: names.extend(setup(manager, provider, opts.controllers)))
    log.info(
        "cloud-controller-manager starting",
        extra={"provider": provider.provider_name(), "controllers": names},
    )
    return manager


async def lead(manager: Manager, opts: Options, stop: asyncio.Event) -> None:
    """Run ``manager`` until ``stop``, holding the Lease ``kube-system/cloud-controller-
    manager`` if ``opts`` elects a leader (returns when it is lost)."""
    if opts.leader_elect:
        await manager.run_with_leader_election(stop, COMPONENT, opts.lease)
    else:
        await manager.run(stop)


async def run(opts: Options) -> None:
    check(opts)
    config = load_config(str(opts.kubeconfig) if opts.kubeconfig else None)
    async with Client(config, user_agent=component_user_agent(COMPONENT)) as client:
        manager = build(client, opts)
        health = HealthServer(manager.metrics_registry, lambda: True, opts.bind_address, opts.port)
        await health.start()
        try:
            await lead(manager, opts, stop_on_signals())
        finally:
            await health.stop()
