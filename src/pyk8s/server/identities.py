"""An identity per component: the client certificates ``pyk8s server`` gives its children.

Why: with RBAC on, a component that runs with the admin kubeconfig (``system:masters``)
can do anything, and so can whoever takes it over. As kubeadm and k3s do, each component
``pyk8s server`` supervises gets its own client certificate from the cluster CA, written
at every start into ``DATA_DIR/server/cred/<component>.kubeconfig`` (mode 0600), naming
the user upstream's bootstrap policy grants what that component needs:

========================  ==========================================  =====================
component                 user (groups)                               granted by
========================  ==========================================  =====================
``scheduler``             ``system:kube-scheduler``                   system:kube-scheduler,
                                                                      system:volume-scheduler
``proxy``                 ``system:kube-proxy``                       system:node-proxier
``dns``                   ``system:serviceaccount:kube-system:        system:coredns (k3s's
                          coredns`` (``system:serviceaccounts``, …)   CoreDNS role, below)
========================  ==========================================  =====================

The DNS server reads EndpointSlices, which upstream's ``system:kube-dns`` role predates;
``pyk8s server`` therefore creates k3s's ``system:coredns`` ClusterRole and its binding
to the ``kube-system/coredns`` service account (as k3s's bundled CoreDNS manifest does),
and the DNS server authenticates as that account. It also publishes the ``kube-dns``
Service and EndpointSlice itself (k3s applies them from a manifest), which a Role in
``kube-system`` allows it: creating Services and EndpointSlices there, reading and
updating only its own (``kube-dns``, ``kube-dns-pyk8s``). The controller manager keeps the admin
credentials (upstream's ``system:kube-controller-manager`` alone cannot run the
controllers without ``--use-service-account-credentials``), and so does the kubelet of
the server's own node until it bootstraps a node certificate.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from pyk8s.api import errors
from pyk8s.apiserver.certs import Pki, issue_client_cert, write_kubeconfig
from pyk8s.apiserver.handlers import ResourceHandlers

__all__ = ["COMPONENT_USERS", "ensure_component_policy", "write_component_kubeconfigs"]

log = logging.getLogger(__name__)

SA_GROUPS = ("system:serviceaccounts", "system:serviceaccounts:kube-system")

#: component -> (user, groups) of its client certificate
COMPONENT_USERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "scheduler": ("system:kube-scheduler", ()),
    "proxy": ("system:kube-proxy", ()),
    "dns": ("system:serviceaccount:kube-system:coredns", SA_GROUPS),
}

_RBAC = "rbac.authorization.k8s.io/v1"
#: k3s's CoreDNS role and binding (its coredns.yaml manifest), and the DNS publisher's
COMPONENT_POLICY: tuple[dict[str, Any], ...] = (
    {
        "apiVersion": _RBAC,
        "kind": "ClusterRole",
        "metadata": {
            "name": "system:coredns",
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        },
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["endpoints", "services", "pods", "namespaces"],
                "verbs": ["list", "watch"],
            },
            {
                "apiGroups": ["discovery.k8s.io"],
                "resources": ["endpointslices"],
                "verbs": ["list", "watch"],
            },
        ],
    },
    {
        "apiVersion": _RBAC,
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": "system:coredns",
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "system:coredns"},
        "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}],
    },
    # pyk8s's own: the DNS server publishes the kube-dns Service and its EndpointSlice
    {
        "apiVersion": _RBAC,
        "kind": "Role",
        "metadata": {"name": "pyk8s:kube-dns-publisher", "namespace": "kube-system"},
        "rules": [
            {"apiGroups": [""], "resources": ["services"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["services"], "verbs": ["get"],
             "resourceNames": ["kube-dns"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
             "verbs": ["create"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
             "verbs": ["get", "update"], "resourceNames": ["kube-dns-pyk8s"]},
        ],
    },
    {
        "apiVersion": _RBAC,
        "kind": "RoleBinding",
        "metadata": {"name": "pyk8s:kube-dns-publisher", "namespace": "kube-system"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": "pyk8s:kube-dns-publisher"},
        "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}],
    },
)  # fmt: skip


def write_component_kubeconfigs(pki: Pki, server_url: str) -> dict[str, Path]:
    """A fresh client certificate and kubeconfig for each component of
    :data:`COMPONENT_USERS`, by component name."""
    cred_dir = pki.dir.parent / "cred"
    paths: dict[str, Path] = {}
    for component, (user, groups) in COMPONENT_USERS.items():
        path = cred_dir / f"{component}.kubeconfig"
        cert = issue_client_cert(pki, user, groups)
        write_kubeconfig(path, server=server_url, pki=pki, user=user, client_cert=cert)
        paths[component] = path
    return paths


async def ensure_component_policy(handlers: ResourceHandlers) -> None:
    """Create the RBAC objects the components' identities need beyond upstream's
    bootstrap policy (an existing one is left as its owner edited it)."""
    for obj in COMPONENT_POLICY:
        r = handlers.registry.for_api_version(obj["apiVersion"], obj["kind"])
        assert r is not None
        try:
            await handlers.create_object(r, copy.deepcopy(obj))
        except errors.StatusError as err:
            if err.code != 409:
                log.warning("%s %s: %s", obj["kind"], obj["metadata"]["name"], err)
