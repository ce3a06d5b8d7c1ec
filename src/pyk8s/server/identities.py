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
``controller-manager``    ``system:kube-controller-manager``, each    system:kube-controller-
                          controller as ``kube-system/<controller>``  manager, system:
                          (``--use-service-account-credentials``)     controller:<controller>
========================  ==========================================  =====================

Joining hosts (:mod:`pyk8s.server.agent`) authenticate with the cluster's bootstrap token
(``DATA_DIR/server/token``, a ``bootstrap.kubernetes.io/token`` Secret in kube-system
whose extra group is :data:`JOIN_GROUP`) and then only as that: kubeadm's bindings let
the group create node client CSRs that the ``csrapproving`` controller approves
(``pyk8s:kubelet-bootstrap``, ``pyk8s:node-autoapprove-bootstrap``), let nodes renew
their own (``pyk8s:node-autoapprove-certificate-rotation``), and, pyk8s's own, let the
group get a ``system:kube-proxy`` client certificate for the host's proxy
(``pyk8s:kube-proxy-bootstrap``), which ``system:kube-proxy`` itself may renew
(``pyk8s:kube-proxy-certificate-rotation``, ``pyk8s:kube-proxy-csr-requester``). (The
local-path provisioner each kubelet runs with its node identity gets its rights from
:mod:`pyk8s.server.localstorage`.)

The DNS server reads EndpointSlices, which upstream's ``system:kube-dns`` role predates;
``pyk8s server`` therefore creates k3s's ``system:coredns`` ClusterRole and its binding
to the ``kube-system/coredns`` service account (as k3s's bundled CoreDNS manifest does),
and the DNS server authenticates as that account. It also publishes the ``kube-dns``
Service and EndpointSlice itself (k3s applies them from a manifest), which a Role in
``kube-system`` allows it: creating Services there and reading only ``kube-dns``;
creating, reading and updating EndpointSlices there (one per node, ``kube-dns-<node>``,
which resourceNames cannot name). A joined node's DNS runs with that node's
``system:kube-proxy`` certificate, also bound to that Role. The kubelet of the server's
own node gets its ``system:node:<name>`` client certificate (``system:nodes``) from the
server itself, written before the kubelet starts, as k3s's server writes its agent's
``client-kubelet.crt``: a TLS bootstrap would wait for the controller manager's
approver and signer on the way to the node's first Ready. It still has the join token's
bootstrap kubeconfig and renews the certificate through CSRs, as an agent's kubelet
does, which bootstraps its first one. The add-ons (cloud controller manager,
metrics-server, metrics adapter, ingress controller, CSI hostpath) get theirs from
:mod:`pyk8s.server.addon_identities`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import datetime
import logging
import secrets
import socket
import string
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pyk8s.api import errors
from pyk8s.api.certificates import NODES_GROUP
from pyk8s.apiserver.certs import (
    LEAF_VALIDITY,
    RENEW_BEFORE,
    Pki,
    issue_client_cert,
    issued_by_ca,
    write_kubeconfig,
)
from pyk8s.apiserver.handlers import ResourceHandlers
from pyk8s.client.certificates import (
    KUBELET_CLIENT_PEM,
    certificate_subject,
    certificate_validity,
    read_pem_pair,
    write_cert_kubeconfig,
    write_pem_pair,
)
from pyk8s.server.addon_identities import ADDON_POLICY, ADDON_USERS
from pyk8s.server.controller_credentials import SERVICE_ACCOUNTS, service_account

__all__ = [
    "COMPONENT_USERS",
    "CONTROLLER_MANAGER_USER",
    "JOIN_GROUP",
    "JOIN_POLICY",
    "component_flags",
    "controller_service_accounts",
    "create_missing",
    "ensure_component_policy",
    "ensure_join_token",
    "ensure_node_client_certificate",
    "new_bootstrap_token",
    "renew_component_credentials",
    "write_component_kubeconfigs",
]

log = logging.getLogger(__name__)

SA_GROUPS = ("system:serviceaccounts", "system:serviceaccounts:kube-system")

#: the extra group of the cluster's join token (kubeadm's is
#: system:bootstrappers:kubeadm:default-node-token)
JOIN_GROUP = "system:bootstrappers:pyk8s:default-node-token"

#: component -> (user, groups) of its client certificate
COMPONENT_USERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "scheduler": ("system:kube-scheduler", ()),
    "proxy": ("system:kube-proxy", ()),
    "dns": ("system:serviceaccount:kube-system:coredns", SA_GROUPS),
}
#: the controller manager's user: it needs :func:`component_flags`
#: (``--use-service-account-credentials``) to run its controllers
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"

_RBAC = "rbac.authorization.k8s.io/v1"
_BOOTSTRAPPING = {"kubernetes.io/bootstrapping": "rbac-defaults"}


def _cluster_binding(name: str, role: str, kind: str, subject: str) -> dict[str, Any]:
    return {
        "apiVersion": _RBAC,
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": subject}],
    }


#: what pyk8s's controllers do beyond their upstream roles: they patch where upstream's
#: update, the serviceaccount controller also publishes kube-root-ca.crt (upstream's
#: root-ca-cert-publisher), and csrapproving approves two more kinds of request
_CONTROLLER_EXTRAS: dict[str, list[dict[str, Any]]] = {
    "deployment-controller": [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]}
    ],
    "statefulset-controller": [
        {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["patch"]}
    ],
    "pvc-protection-controller": [
        {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["patch"]}
    ],
    "pv-protection-controller": [
        {"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["patch"]}
    ],
    "pod-garbage-collector": [
        {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["update"]}
    ],
    "service-account-controller": [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "update"]}
    ],
    # csrapproving's pyk8s-only approvals: kubelet serving CSRs checked against the
    # Node's addresses, and agents' kube-proxy client CSRs (upstream's role may approve
    # only kube-apiserver-client-kubelet, the one signer its approver handles)
    "certificate-controller": [
        {
            "apiGroups": ["certificates.k8s.io"],
            "resources": ["signers"],
            "verbs": ["approve"],
            "resourceNames": [
                "kubernetes.io/kubelet-serving",
                "kubernetes.io/kube-apiserver-client",
            ],
        }
    ],
}


def _controller_extra(account: str, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    name = f"pyk8s:controller:{account}"
    return [
        {"apiVersion": _RBAC, "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules},
        {
            "apiVersion": _RBAC,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": "kube-system"}],
        },
    ]  # fmt: skip


CONTROLLER_POLICY: tuple[dict[str, Any], ...] = tuple(
    obj
    for account, rules in _CONTROLLER_EXTRAS.items()
    for obj in _controller_extra(account, rules)
)

#: who may bootstrap and renew node and kube-proxy certificates (the module docstring)
JOIN_POLICY: tuple[dict[str, Any], ...] = (
    _cluster_binding("pyk8s:kubelet-bootstrap", "system:node-bootstrapper", "Group", JOIN_GROUP),
    _cluster_binding(
        "pyk8s:node-autoapprove-bootstrap",
        "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
        "Group",
        JOIN_GROUP,
    ),
    _cluster_binding(
        "pyk8s:node-autoapprove-certificate-rotation",
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
        "Group",
        "system:nodes",
    ),
    {
        "apiVersion": _RBAC,
        "kind": "ClusterRole",
        "metadata": {"name": "pyk8s:kube-proxy-bootstrap"},
        "rules": [
            {
                "apiGroups": ["certificates.k8s.io"],
                "resources": ["certificatesigningrequests/kubeproxyclient"],
                "verbs": ["create"],
            }
        ],
    },
    _cluster_binding(
        "pyk8s:kube-proxy-bootstrap", "pyk8s:kube-proxy-bootstrap", "Group", JOIN_GROUP
    ),
    # an agent renews its proxy's certificate with that certificate (as a node renews its
    # own through selfnodeclient)
    _cluster_binding(
        "pyk8s:kube-proxy-certificate-rotation",
        "pyk8s:kube-proxy-bootstrap",
        "User",
        "system:kube-proxy",
    ),
    _cluster_binding(
        "pyk8s:kube-proxy-csr-requester", "system:node-bootstrapper", "User", "system:kube-proxy"
    ),
)
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
            # one slice per node, kube-dns-<node>: not expressible as resourceNames;
            # a removed node's slice is deleted by the other DNS servers
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
             "verbs": ["create", "get", "update", "delete"]},
            # each DNS server's liveness Lease, kube-dns-<node> (pyk8s.dns.peers)
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "verbs": ["create", "get", "list", "update", "delete"]},
        ],
    },
    {
        "apiVersion": _RBAC,
        "kind": "RoleBinding",
        "metadata": {"name": "pyk8s:kube-dns-publisher", "namespace": "kube-system"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": "pyk8s:kube-dns-publisher"},
        # an agent's DNS runs with the host's kube-proxy certificate
        "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"},
                     {"kind": "User", "name": "system:kube-proxy",
                      "apiGroup": "rbac.authorization.k8s.io"}],
    },
)  # fmt: skip


def component_flags(component: str, pki: Pki) -> list[str]:
    """Flags ``pyk8s server`` gives a child beside its kubeconfig: the kubelet
    bootstraps its node certificate as an agent's does and serves with one from the
    kubelet-serving signer; the controller manager signs
    with the cluster CA and runs the token cleaner (kubeadm's and k3s's
    ``--controllers=*,tokencleaner``). A flag passed through by the user comes later and
    wins."""
    if component == "kubelet":
        return [
            "--bootstrap-kubeconfig", str(_kubelet_bootstrap(pki)),
            "--node-routes-kubeconfig", str(pki.dir.parent / "cred" / "proxy.kubeconfig"),
            "--rotate-server-certificates", "true",
        ]  # fmt: skip
    if component != "controller-manager":
        return []
    return [
        "--cluster-signing-cert-file", str(pki.ca_cert),
        "--cluster-signing-key-file", str(pki.ca_key),
        "--controllers", "*,tokencleaner", "--use-service-account-credentials",
    ]  # fmt: skip


def write_component_kubeconfigs(
    pki: Pki,
    server_url: str,
    join_token: str | None = None,
    *,
    validity: datetime.timedelta = LEAF_VALIDITY,
) -> dict[str, Path]:
    """A fresh client certificate and kubeconfig for each component of
    :data:`COMPONENT_USERS` and the add-ons' ``ADDON_USERS``, by component name; with the
    ``join_token``, also the controller manager's and, for this host's kubelet, the
    bootstrap kubeconfig it gets its node certificate with and the path of the
    kubeconfig it then writes (both need :func:`component_flags`).

    Each kubeconfig names its certificate file, ``cred/<component>.pem`` (as k3s's name
    ``tls/client-<component>.crt``), which :func:`renew_component_credentials` replaces
    before it expires and the component's client loads again without a restart."""
    cred_dir = pki.dir.parent / "cred"
    users = _component_users(with_controller_manager=join_token is not None)
    ca_pem = pki.ca_cert.read_bytes()
    paths: dict[str, Path] = {}
    for component, (user, groups) in users.items():
        path = cred_dir / f"{component}.kubeconfig"
        pem = cred_dir / f"{component}.pem"
        write_pem_pair(pem, *issue_client_cert(pki, user, groups, validity=validity))
        write_cert_kubeconfig(path, server_url, ca_pem, pem, user)
        paths[component] = path
    if join_token is not None:
        bootstrap = _kubelet_bootstrap(pki)
        write_kubeconfig(
            bootstrap, server=server_url, pki=pki, user="kubelet-bootstrap", token=join_token
        )
        paths["kubelet"] = cred_dir / "kubelet.kubeconfig"
    return paths


def _component_users(
    with_controller_manager: bool = True,
) -> dict[str, tuple[str, tuple[str, ...]]]:
    users = {**COMPONENT_USERS, **ADDON_USERS}
    if with_controller_manager:
        users["controller-manager"] = (CONTROLLER_MANAGER_USER, ())
    return users


def renew_component_credentials(
    pki: Pki,
    *,
    renew_before: datetime.timedelta = RENEW_BEFORE,
    validity: datetime.timedelta = LEAF_VALIDITY,
) -> list[str]:
    """Re-issue each component certificate under ``cred/`` with less than
    ``renew_before`` left (as ensure_pki renews the server's own, k3s's 90 days),
    replacing the file atomically, and each one another CA signed (``pyk8s certificate
    rotate-ca`` installed a new one); the components renewed. Their clients notice the
    changed file and present the new certificate on new connections."""
    cred_dir = pki.dir.parent / "cred"
    now = datetime.datetime.now(datetime.UTC)
    renewed = []
    for component, (user, groups) in _component_users().items():
        pem = cred_dir / f"{component}.pem"
        if not pem.exists():
            continue
        pair = read_pem_pair(pem)  # None: unreadable or already expired
        if (
            pair is not None
            and certificate_validity(pair[0])[1] - now > renew_before
            and issued_by_ca(pki, pair[0])
        ):
            continue
        write_pem_pair(pem, *issue_client_cert(pki, user, groups, validity=validity))
        renewed.append(component)
    return renewed


def _kubelet_identity(kubelet_argv: Sequence[str]) -> tuple[str, Path] | None:
    """(node name, client certificate file) of a ``pyk8s kubelet`` run with
    ``kubelet_argv``, as it works them out itself (the last flag wins, as a
    ``--kubelet-arg`` passed through); None without ``--data-dir``."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--node-name", default="")
    parser.add_argument("--cert-dir", type=Path)
    flags, _rest = parser.parse_known_args(list(kubelet_argv))
    if flags.data_dir is None:
        return None
    node = (flags.node_name or socket.gethostname()).lower()
    cert_dir = flags.cert_dir or flags.data_dir / "kubelet" / "pki"
    return node, cert_dir / KUBELET_CLIENT_PEM


def ensure_node_client_certificate(pki: Pki, kubelet_argv: Sequence[str]) -> Path | None:
    """The client certificate of the server's own kubelet (``system:node:<name>`` in
    ``system:nodes``, the module docstring), issued by the cluster CA into the file the
    kubelet run with ``kubelet_argv`` reads, unless that holds a valid one for the same
    user from this CA (the kubelet renews it through CSRs). Returns the file."""
    identity = _kubelet_identity(kubelet_argv)
    if identity is None:
        return None
    node, pem = identity
    user = f"system:node:{node}"
    pair = read_pem_pair(pem)  # None: missing, unreadable or expired
    if (
        pair is not None
        and certificate_subject(pair[0]) == (user, [NODES_GROUP])
        and issued_by_ca(pki, pair[0])
    ):
        return pem
    write_pem_pair(pem, *issue_client_cert(pki, user, (NODES_GROUP,)))
    log.info("node client certificate issued", extra={"user": user, "file": str(pem)})
    return pem


def controller_service_accounts() -> list[dict[str, Any]]:
    """The ServiceAccounts the controller manager's controllers run as
    (``--use-service-account-credentials``, :func:`component_flags`)."""
    return [service_account(a) for a in sorted(set(SERVICE_ACCOUNTS.values()))]


def _kubelet_bootstrap(pki: Pki) -> Path:
    return pki.dir.parent / "cred" / "kubelet-bootstrap.kubeconfig"


async def ensure_component_policy(handlers: ResourceHandlers) -> None:
    """Create the RBAC objects the components' identities need beyond upstream's
    bootstrap policy (an existing one is left as its owner edited it)."""
    await create_missing(
        handlers, (*COMPONENT_POLICY, *CONTROLLER_POLICY, *JOIN_POLICY, *ADDON_POLICY)
    )


async def create_missing(handlers: ResourceHandlers, objs: Iterable[dict[str, Any]]) -> None:
    """Create each of ``objs`` that does not exist yet (an existing one is kept as is),
    all at once: the store commits concurrent writes together."""

    async def create(obj: dict[str, Any]) -> None:
        r = handlers.registry.for_api_version(obj["apiVersion"], obj["kind"])
        assert r is not None
        try:
            await handlers.create_object(r, copy.deepcopy(obj))
        except errors.StatusError as err:
            if err.code != 409:
                log.warning("%s %s: %s", obj["kind"], obj["metadata"]["name"], err)

    await asyncio.gather(*(create(obj) for obj in objs))


def new_bootstrap_token() -> str:
    """A fresh ``<id>.<secret>`` bootstrap token (6 and 16 of ``[a-z0-9]``)."""
    alphabet = string.ascii_lowercase + string.digits
    token_id = "".join(secrets.choice(alphabet) for _ in range(6))
    secret = "".join(secrets.choice(alphabet) for _ in range(16))
    return f"{token_id}.{secret}"


def join_token_secret(token: str) -> dict[str, Any]:
    """The ``bootstrap.kubernetes.io/token`` Secret that makes ``token`` authenticate as
    ``system:bootstrap:<id>`` in :data:`JOIN_GROUP` (no expiration: k3s's node token
    does not expire either)."""
    token_id, _, secret = token.partition(".")

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "data": {
            "description": b64("pyk8s join token (DATA_DIR/server/node-token)"),
            "token-id": b64(token_id),
            "token-secret": b64(secret),
            "usage-bootstrap-authentication": b64("true"),
            "usage-bootstrap-signing": b64("true"),
            "auth-extra-groups": b64(JOIN_GROUP),
        },
    }


async def ensure_join_token(handlers: ResourceHandlers, token: str) -> None:
    """Create the join token's Secret, or put it back as it should be."""
    await handlers.ensure(join_token_secret(token), update=True)
