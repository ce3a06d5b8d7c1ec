"""``pyk8s server``'s k3s add-on machinery: its CRDs, the manifests deployer and the Helm
controller, each run where k3s runs it.

* **CRDs at start.** k3s registers its ``Addon`` CRD and, unless
  ``--disable-helm-controller``, the helm-controller's ``HelmChart`` and
  ``HelmChartConfig`` when the server starts, so a HelmChart can be applied on a fresh
  cluster. Here they are created in-process before the API server opens its port, and
  the start waits until they are served: the first request any client can make already
  finds them. A CRD that exists (another server's, an earlier start's) is kept as is.
* **The manifests deployer on every server.** k3s's deploy controller is not
  leader-elected: each server applies its own ``server/manifests`` and the Addons are
  shared (see :mod:`pyk8s.controllers.deploy` for how servers share them).
* **The Helm controller on one server.** k3s runs it among the controllers of its
  ``k3s`` lease in ``kube-system``; here the lease is ``pyk8s``. A server that loses the
  lease stops its controller and campaigns again (k3s exits the whole process, which here
  would take the API server down with it). Its timings come from the environment
  variables k3s's leader election (wrangler) reads, ``CATTLE_ELECTION_LEASE_DURATION``,
  ``CATTLE_ELECTION_RENEW_DEADLINE`` and ``CATTLE_ELECTION_RETRY_PERIOD`` (Go
  durations), so the README's HA timings apply to it as to the scheduler and the
  controller manager; unset, client-go's defaults (15s/10s/2s; wrangler's are
  45s/30s/2s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyk8s.apiserver.handlers import ResourceHandlers
    from pyk8s.client import Client, LeaseSettings

__all__ = [
    "LEASE_ENV",
    "LOCK_NAME",
    "helm_lease",
    "register_crds",
    "run",
    "run_helm_controller",
    "wanted_crds",
]

log = logging.getLogger(__name__)

#: the Lease (in kube-system) of the server that runs the Helm controller (k3s's "k3s")
LOCK_NAME = "pyk8s"
#: how long the start waits for the CRDs to be served
SERVED_WITHIN = 30.0
#: k3s's (wrangler's) leader-election variables -> the LeaseSettings field each sets
LEASE_ENV = {
    "CATTLE_ELECTION_LEASE_DURATION": "lease_duration",
    "CATTLE_ELECTION_RENEW_DEADLINE": "renew_deadline",
    "CATTLE_ELECTION_RETRY_PERIOD": "retry_period",
}


def helm_lease(environ: Mapping[str, str], host: str = "") -> LeaseSettings:
    """The Helm controller's lease timings from k3s's ``CATTLE_ELECTION_*`` variables in
    ``environ`` (client-go's defaults for those unset), its identity ``<host>_<uuid>``;
    ValueError naming the variable whose value is not a Go duration, or client-go's
    complaint about their combination."""
    from pyk8s.client import LeaseSettings
    from pyk8s.server.component import parse_duration

    given: dict[str, float] = {}
    for variable, field in LEASE_ENV.items():
        value = environ.get(variable, "")
        if value:
            try:
                given[field] = parse_duration(value, variable)
            except ValueError:
                raise ValueError(f"{variable}={value!r} is not a valid duration") from None
    try:
        return LeaseSettings(host=host, **given)
    except ValueError as err:
        raise ValueError(f"{', '.join(LEASE_ENV)}: {err}") from None


def wanted_crds(helm_controller: bool) -> list[dict[str, Any]]:
    """k3s's CRDs: the Addon always, HelmChart and HelmChartConfig with the controller."""
    from pyk8s.controllers.deploy import ADDON_CRD
    from pyk8s.controllers.helmchart import CRDS

    return [ADDON_CRD, *(CRDS if helm_controller else ())]


async def register_crds(handlers: ResourceHandlers, crds: Sequence[dict[str, Any]]) -> None:
    """Create the missing ``crds`` through ``handlers`` (before the API server listens)
    and wait until each is served (TimeoutError after :data:`SERVED_WITHIN`)."""
    from pyk8s.server.identities import create_missing

    await create_missing(handlers, crds)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SERVED_WITHIN
    for crd in crds:
        spec = crd["spec"]
        api_version = f"{spec['group']}/{spec['versions'][0]['name']}"
        kind = spec["names"]["kind"]
        while handlers.registry.for_api_version(api_version, kind) is None:
            if loop.time() > deadline:
                raise TimeoutError(f"the {kind} custom resource is not served")
            await asyncio.sleep(0.02)
    log.info("custom resources registered", extra={"crds": [c["metadata"]["name"] for c in crds]})


async def run(
    kubeconfig: Path,
    data_dir: Path,
    helm_controller: bool,
    stop: asyncio.Event,
    node: str,
    lease: LeaseSettings | None = None,
) -> None:
    """The deployer over ``DATA_DIR/server/manifests`` (listed on Addons as server
    ``<node>:<directory>``, ``node`` this server's Node name) and, unless disabled, the
    Helm controller while this server holds :data:`LOCK_NAME` with ``lease``'s timings
    and identity (:func:`helm_lease`), until ``stop``."""
    from pyk8s.client import Client, load_kubeconfig
    from pyk8s.controllers.deploy import ManifestDeployer

    async with Client(load_kubeconfig(kubeconfig)) as client:
        deployer = ManifestDeployer(client, data_dir / "server" / "manifests", node=node)
        jobs = [deployer.run(stop)]
        if helm_controller:
            jobs.append(run_helm_controller(client, kubeconfig, data_dir, stop, lease))
        await asyncio.gather(*jobs)


async def run_helm_controller(
    client: Client,
    kubeconfig: Path,
    data_dir: Path,
    stop: asyncio.Event,
    lease: LeaseSettings | None = None,
) -> None:
    """Run the Helm controller while leading; after a lost lease, a fresh controller
    (its informers start over) campaigns again, a retry period later."""
    from pyk8s.client import LeaseSettings
    from pyk8s.controllers.helmchart import HelmChartController

    lease = lease or LeaseSettings()
    while not stop.is_set():
        controller = HelmChartController(client, kubeconfig, data_dir)
        await controller.manager.run_with_leader_election(stop, LOCK_NAME, lease)
        if not stop.is_set():
            log.warning("leader election lost for %s: campaigning again", LOCK_NAME)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), lease.retry_period)
