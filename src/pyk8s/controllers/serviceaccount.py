"""Per-namespace defaults every workload expects: the ``default`` ServiceAccount and the
``kube-root-ca.crt`` ConfigMap.

Pods that name no service account run as ``default``, and admission rejects them if it
does not exist; pods that talk to the API server mount ``kube-root-ca.crt`` (its
``ca.crt`` key) to verify it. Upstream keeps both with two controllers of
kube-controller-manager, reproduced here:

* ``serviceaccount`` (upstream's ServiceAccountsController): a ``default``
  ServiceAccount in every active namespace, recreated when deleted;
* ``root-ca-cert-publisher``: a ``kube-root-ca.crt`` ConfigMap with the cluster CA under
  ``ca.crt`` and upstream's ``kubernetes.io/description`` annotation in every namespace
  not being deleted; edits are put back. The CA is the one in the kubeconfig the
  controller manager's client was built from (``Config.ca_data`` / ``ca_file``).

Both are keyed by namespace name, watch namespaces plus only the objects they own (field
selectors on the name), and skip terminating namespaces, where the API server refuses
new objects anyway.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from pyk8s.client import ApiError, Client, Config, Store, is_already_exists, is_not_found
from pyk8s.client.errors import is_forbidden
from pyk8s.controllers._resources import CONFIGMAPS, NAMESPACES, SERVICE_ACCOUNTS
from pyk8s.controllers.runtime import Manager, Request, Result

__all__ = [
    "DEFAULT_SERVICE_ACCOUNT",
    "DESCRIPTION",
    "DESCRIPTION_ANNOTATION",
    "ROOT_CA_CONFIGMAP",
    "RootCAPublisher",
    "ServiceAccountsReconciler",
    "cluster_ca",
    "setup",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]


DEFAULT_SERVICE_ACCOUNT = "default"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. "
    "No other usage is guaranteed across distributions of Kubernetes clusters."
)


def _active(ns: Obj | None) -> bool:
    if ns is None:
        return False
    if (ns.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return bool((ns.get("status") or {}).get("phase", "Active") == "Active")


def _by_namespace(obj: Obj) -> list[Request]:
    ns = (obj.get("metadata") or {}).get("namespace")
    return [Request("", str(ns))] if ns else []


def _namespace_itself(obj: Obj) -> list[Request]:
    name = (obj.get("metadata") or {}).get("name")
    return [Request("", str(name))] if name else []


def _ignorable(err: ApiError) -> bool:
    """Races with namespace deletion (404, 403 NamespaceTerminating) and with ourselves."""
    return is_already_exists(err) or is_not_found(err) or is_forbidden(err)


class ServiceAccountsReconciler:
    """Request("", namespace): make sure its ``default`` ServiceAccount exists."""

    def __init__(self, client: Client, namespaces: Store, service_accounts: Store) -> None:
        self.client = client
        self.namespaces = namespaces
        self.service_accounts = service_accounts

    async def reconcile(self, request: Request) -> Result | None:
        ns = request.name
        if not _active(self.namespaces.get_by_name(None, ns)):
            return None
        if self.service_accounts.get_by_name(ns, DEFAULT_SERVICE_ACCOUNT) is not None:
            return None
        body = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": DEFAULT_SERVICE_ACCOUNT, "namespace": ns},
        }
        try:
            await self.client.create(SERVICE_ACCOUNTS, body, ns)
        except ApiError as err:
            if not _ignorable(err):
                raise
        return None


class RootCAPublisher:
    """Request("", namespace): make sure its ``kube-root-ca.crt`` holds the cluster CA."""

    def __init__(self, client: Client, namespaces: Store, configmaps: Store, ca: str) -> None:
        self.client = client
        self.namespaces = namespaces
        self.configmaps = configmaps
        self.ca = ca

    async def reconcile(self, request: Request) -> Result | None:
        ns = request.name
        if not _active(self.namespaces.get_by_name(None, ns)):
            return None
        data = {"ca.crt": self.ca}
        current = self.configmaps.get_by_name(ns, ROOT_CA_CONFIGMAP)
        try:
            if current is None:
                body = {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {
                        "name": ROOT_CA_CONFIGMAP,
                        "namespace": ns,
                        "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION},
                    },
                    "data": data,
                }
                await self.client.create(CONFIGMAPS, body, ns)
                return None
            meta = current.get("metadata") or {}
            annotations = meta.get("annotations") or {}
            if (
                current.get("data") == data
                and not current.get("binaryData")
                and annotations.get(DESCRIPTION_ANNOTATION) == DESCRIPTION
            ):
                return None
            new = copy.deepcopy(current)
            new["data"] = data
            new.pop("binaryData", None)
            new["metadata"].setdefault("annotations", {})[DESCRIPTION_ANNOTATION] = DESCRIPTION
            await self.client.update(CONFIGMAPS, new, ns)  # resourceVersion: 409 → retried
        except ApiError as err:
            if not _ignorable(err):
                raise
        return None


def cluster_ca(config: Config) -> str | None:
    """The PEM CA bundle of the kubeconfig the client came from (None when it has none)."""
    if config.ca_data:
        return config.ca_data.decode("utf-8", "replace")
    if config.ca_file:
        try:
            return Path(config.ca_file).read_text()
        except OSError as err:
            log.warning("cannot read the cluster CA %s: %s", config.ca_file, err)
    return None


def setup(manager: Manager) -> None:
    ns_informer = manager.informers.informer(NAMESPACES)

    sa_informer = manager.informers.informer(
        SERVICE_ACCOUNTS, field_selector=f"metadata.name={DEFAULT_SERVICE_ACCOUNT}"
    )
    sa = manager.add(
        "serviceaccount",
        ServiceAccountsReconciler(manager.client, ns_informer.store, sa_informer.store),
    )
    sa.watch(ns_informer, _namespace_itself)
    sa.watch(sa_informer, _by_namespace)

    ca = cluster_ca(manager.client.config)
    if ca is None:
        log.warning("the kubeconfig has no cluster CA: %s is not published", ROOT_CA_CONFIGMAP)
        return
    cm_informer = manager.informers.informer(
        CONFIGMAPS, field_selector=f"metadata.name={ROOT_CA_CONFIGMAP}"
    )
    publisher = manager.add(
        "root-ca-cert-publisher",
        RootCAPublisher(manager.client, ns_informer.store, cm_informer.store, ca),
    )
    publisher.watch(ns_informer, _namespace_itself)
    publisher.watch(cm_informer, _by_namespace)
