"""``--use-service-account-credentials``: each controller writes as its own service account.

Why: upstream's kube-controller-manager with this flag (kubeadm's default) runs as
``system:kube-controller-manager`` -- which may read everything but write almost
nothing -- and gives each controller a client authenticated as
``system:serviceaccount:kube-system:<controller>``, bound by upstream's bootstrap policy
to the ``system:controller:<controller>`` role: a compromised or buggy controller can do
only its own job, and the audit log names who did what. As upstream's
``SAControllerClientBuilder``, the controller manager makes the service account if it
is missing and keeps a short-lived TokenRequest token for it, renewed well before it
expires; informers stay on the controller manager's own credentials (its role lists and
watches everything), so the caches are still shared.

The tokens are kept in files of a private directory the clients re-read (so a renewed
token is picked up without rebuilding a client).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, cast

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import (
    Client,
    ClientError,
    EventRecorder,
    component_user_agent,
    is_already_exists,
    is_not_found,
)
from pyk8s.controllers.runtime import Manager

__all__ = ["SERVICE_ACCOUNTS", "ControllerCredentials", "service_account"]

log = logging.getLogger(__name__)

NAMESPACE = "kube-system"
SA: Resource = REGISTRY.get("", "v1", "serviceaccounts")  # type: ignore[assignment]
TOKEN_SECONDS = 3600
#: renew when this much of a token's life has passed
RENEW_AFTER = TOKEN_SECONDS * 0.5

#: pyk8s controller -> upstream's service account for it (``system:controller:<sa>``)
SERVICE_ACCOUNTS: dict[str, str] = {
    "namespace": "namespace-controller",
    "serviceaccount": "service-account-controller",
    "garbagecollector": "generic-garbage-collector",
    "nodeipam": "node-controller",
    "nodelifecycle": "node-controller",
    "podgc": "pod-garbage-collector",
    "replicaset": "replicaset-controller",
    "replicationcontroller": "replication-controller",
    "deployment": "deployment-controller",
    "statefulset": "statefulset-controller",
    "daemonset": "daemon-set-controller",
    "job": "job-controller",
    "cronjob": "cronjob-controller",
    "ttlafterfinished": "ttl-after-finished-controller",
    "endpointslice": "endpointslice-controller",
    "endpoints": "endpoint-controller",
    "disruption": "disruption-controller",
    "resourcequota": "resourcequota-controller",
    "persistentvolume": "persistent-volume-binder",
    "pvcprotection": "pvc-protection-controller",
    "pvprotection": "pv-protection-controller",
    "ephemeralvolume": "ephemeral-volume-controller",
    "attachdetach": "attachdetach-controller",
    "clusterroleaggregation": "clusterrole-aggregation-controller",
    "horizontalpodautoscaler": "horizontal-pod-autoscaler",
    "csrsigning": "certificate-controller",
    "csrapproving": "certificate-controller",
    "csrcleaner": "certificate-controller",
    "tokencleaner": "token-cleaner",
}


def service_account(account: str) -> dict[str, Any]:
    """A controller's ServiceAccount, as the controller manager makes a missing one;
    ``pyk8s server`` makes them all with its bootstrap objects, so on a fresh start
    each controller's first token request finds its account (one round trip, not
    three, before the controllers a new node waits on can start)."""
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": account, "namespace": NAMESPACE}}  # fmt: skip


class _AsServiceAccount:
    """The manager as one controller sees it: its own client and event recorder (so its
    Events are written as its account too, as upstream's per-controller broadcaster),
    everything else shared."""

    def __init__(self, manager: Manager, client: Client, recorder: EventRecorder) -> None:
        self._manager = manager
        self.client = client
        self.recorder = recorder

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)


class ControllerCredentials:
    """Service-account clients for controllers, their tokens kept fresh (module doc)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.dir = Path(tempfile.mkdtemp(prefix="pyk8s-controller-tokens-"))
        self.clients: dict[str, Client] = {}
        self.recorders: dict[str, EventRecorder] = {}
        #: each account's first token request, shared by the controllers using it
        self._first: dict[str, asyncio.Future[None]] = {}
        self._renewal: asyncio.Task[None] | None = None

    def _token_file(self, account: str) -> Path:
        return self.dir / f"{account}.token"

    async def _create_account(self, account: str) -> None:
        try:
            await self.client.create(SA, service_account(account), NAMESPACE)
        except ClientError as err:
            if not is_already_exists(err):
                raise

    async def _refresh(self, account: str) -> None:
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": TOKEN_SECONDS},
        }
        try:  # the account is there after the first start: one request, not two
            out = await self.client.create_subresource(SA, account, "token", request, NAMESPACE)
        except ClientError as err:
            if not is_not_found(err):
                raise
            await self._create_account(account)
            out = await self.client.create_subresource(SA, account, "token", request, NAMESPACE)
        path = self._token_file(account)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(out["status"]["token"])
        os.replace(tmp, path)

    async def view(self, manager: Manager, controller: str) -> Manager:
        """``manager`` with ``client`` authenticated as ``controller``'s account (views
        may be made concurrently: the controller manager makes all at once)."""
        account = SERVICE_ACCOUNTS.get(controller)
        if account is None:
            log.warning("no service account for controller %s: using our own", controller)
            return manager
        if account not in self._first:
            self._first[account] = asyncio.ensure_future(self._refresh(account))
        await asyncio.shield(self._first[account])
        if account not in self.clients:
            base = self.client.config
            config = dataclasses.replace(
                base, cert_data=None, cert_file=None, key_data=None, key_file=None,
                token=None, token_file=str(self._token_file(account)),
            )  # fmt: skip
            ua = component_user_agent("kube-controller-manager") + f"/{account}"
            self.clients[account] = Client(config, user_agent=ua)
            self.recorders[account] = EventRecorder(
                self.clients[account], component=manager.recorder.component
            )
        view = _AsServiceAccount(manager, self.clients[account], self.recorders[account])
        return cast(Manager, view)

    def start(self) -> None:
        self._renewal = asyncio.create_task(self._renew_forever(), name="controller-tokens")

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(RENEW_AFTER)
            for account in list(self.clients):
                try:
                    await self._refresh(account)
                except ClientError as err:
                    log.warning("renewing the token of %s failed: %s", account, err)

    async def close(self) -> None:
        if self._renewal is not None:
            self._renewal.cancel()
        for recorder in self.recorders.values():
            await recorder.close()
        for client in self.clients.values():
            await client.close()
        shutil.rmtree(self.dir, ignore_errors=True)
