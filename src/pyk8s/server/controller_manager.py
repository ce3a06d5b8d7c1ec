"""``pyk8s controller-manager``: every controller in one process, leader-elected.

Controllers are modules of :mod:`pyk8s.controllers`, each with ``setup(manager)``;
``--controllers`` picks them like upstream's flag (``*`` = all, ``-name`` disables one).
``pyk8s server`` runs its cloud controllers (:mod:`pyk8s.server.cloud_controller_manager`)
in this process too, as k3s embeds its cloud controller: one process fewer (~20 MiB idle),
one set of watches, their own user and Lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from pyk8s.client import Client, LeaseSettings, component_user_agent, load_config
from pyk8s.controllers.csrsigning import Settings as CSRSigningSettings
from pyk8s.controllers.horizontalpodautoscaler import Settings as HPASettings
from pyk8s.controllers.nodeipam import Settings as NodeIPAMSettings
from pyk8s.controllers.runtime import Manager, select_controllers
from pyk8s.server import cloud_controller_manager
from pyk8s.server.component import HealthServer, stop_on_signals
from pyk8s.server.controller_credentials import ControllerCredentials

log = logging.getLogger(__name__)

#: every controller pyk8s has, in start order
CONTROLLERS: tuple[str, ...] = (
    "namespace",
    "serviceaccount",
    "garbagecollector",
    "nodeipam",
    "nodelifecycle",
    "podgc",
    "replicaset",
    "replicationcontroller",
    "deployment",
    "statefulset",
    "daemonset",
    "job",
    "cronjob",
    "ttlafterfinished",
    "endpointslice",
    "endpoints",
    "disruption",
    "resourcequota",
    "persistentvolume",
    "pvcprotection",
    "pvprotection",
    "ephemeralvolume",
    "attachdetach",
    "clusterroleaggregation",
    "horizontalpodautoscaler",
    "csrsigning",
    "csrapproving",
    "csrcleaner",
    "tokencleaner",
)
#: built but left out of ``*``, as upstream (kubeadm and k3s ask for them by name)
DISABLED_BY_DEFAULT = frozenset({"tokencleaner"})


@dataclass
class Options:
    kubeconfig: Path | None = None
    controllers: list[str] = field(default_factory=lambda: ["*"])
    leader_elect: bool = True
    #: --leader-elect-lease-duration / -renew-deadline / -retry-period (and the identity's host)
    lease: LeaseSettings = field(default_factory=LeaseSettings)
    bind_address: str = "127.0.0.1"
    port: int = 10257
    #: --horizontal-pod-autoscaler-sync-period / -downscale-stabilization / -tolerance
    hpa: HPASettings = field(default_factory=HPASettings)
    #: upstream's --use-service-account-credentials: each controller writes as its own
    #: kube-system service account (pyk8s.server.controller_credentials)
    use_service_account_credentials: bool = False
    #: --cluster-signing-cert-file / -key-file / -duration
    csr_signing: CSRSigningSettings = field(default_factory=CSRSigningSettings)
    #: --cluster-cidr (one, or a v4,v6 pair) and --node-cidr-mask-size-ipv4/-ipv6
    nodeipam: NodeIPAMSettings = field(default_factory=NodeIPAMSettings)


def selected(names: list[str]) -> list[str]:
    return select_controllers(names, CONTROLLERS, DISABLED_BY_DEFAULT)


def _set_up_as(module: ModuleType, view: asyncio.Future[Manager]) -> None:
    module.setup(view.result())


def setup_controllers(
    manager: Manager, names: list[str], credentials: ControllerCredentials | None = None
) -> list[str]:
    """Set up every named controller that is built; returns their names. With
    ``credentials``, each is set up with its own view of the manager (its service
    account's client) once that is made, while the manager runs: the others, and the CSR
    approver and signer a new node waits on, need not wait for ~25 accounts' tokens."""
    done = []
    for name in names:
        module_name = f"pyk8s.controllers.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            log.debug("controller %s is not built yet", name)
            continue
        if credentials is None:
            manager.set_up(functools.partial(module.setup, manager))
        else:
            view = asyncio.ensure_future(credentials.view(manager, name))
            manager.set_up_when(view, functools.partial(_set_up_as, module, view))
        done.append(name)
    return done


def preload() -> None:
    """Import every controller (:mod:`pyk8s.server.startgate`: while the API server
    starts, before this process may)."""
    for name in CONTROLLERS:
        with contextlib.suppress(ModuleNotFoundError):
            importlib.import_module(f"pyk8s.controllers.{name}")


async def run(opts: Options, cloud: cloud_controller_manager.Options | None = None) -> None:
    """Run the controllers; with ``cloud``, the cloud controllers too (``pyk8s server``:
    as their own user, under their own Lease, on this process's informers and /metrics)."""
    config = load_config(str(opts.kubeconfig) if opts.kubeconfig else None)
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            Client(config, user_agent=component_user_agent("kube-controller-manager"))
        )
        manager = Manager(client)
        manager.settings["horizontalpodautoscaler"] = opts.hpa
        manager.settings["csrsigning"] = opts.csr_signing
        manager.settings["nodeipam"] = opts.nodeipam
        wanted = selected(opts.controllers)
        credentials = None
        if opts.use_service_account_credentials:
            credentials = ControllerCredentials(client)
            credentials.start()
        names = setup_controllers(manager, wanted, credentials)
        log.info("controller-manager starting", extra={"controllers": names})
        stop = stop_on_signals()
        jobs = [_lead(manager, stop, opts.leader_elect, opts.lease)]
        if cloud is not None:
            cloud_manager = cloud_controller_manager.build(
                await stack.enter_async_context(_cloud_client(cloud)), cloud, shared_with=manager
            )
            jobs.append(cloud_controller_manager.lead(cloud_manager, cloud, stop))
        health = HealthServer(manager.metrics_registry, lambda: True, opts.bind_address, opts.port)
        await health.start()
        try:
            await _until_one_returns(jobs, stop)
        finally:
            await health.stop()
            await manager.informers.stop()
            if credentials is not None:
                await credentials.close()


def _cloud_client(cloud: cloud_controller_manager.Options) -> Client:
    config = load_config(str(cloud.kubeconfig) if cloud.kubeconfig else None)
    return Client(config, user_agent=component_user_agent(cloud_controller_manager.COMPONENT))


async def _lead(manager: Manager, stop: asyncio.Event, elect: bool, lease: LeaseSettings) -> None:
    if elect:
        await manager.run_with_leader_election(stop, "kube-controller-manager", lease)
    else:
        await manager.run(stop)


async def _until_one_returns(jobs: list[Coroutine[Any, Any, None]], stop: asyncio.Event) -> None:
    """Run ``jobs`` until one returns (its lease lost: the process exits, as each of
    upstream's managers does), then stop the others; the first error is raised."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        for task in tasks:
            await task
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
