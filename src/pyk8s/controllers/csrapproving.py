"""The CSR approving controller (upstream ``csrapproving``): approves node client CSRs.

Why: a joining node asks for its client certificate with a bootstrap token and cannot
wait for a human. As upstream's ``sarApprover``, a pending request for the
``kubernetes.io/kube-apiserver-client-kubelet`` signer that is a node client request
(``O=system:nodes``, ``CN=system:node:<name>``, client usages, no SANs) is approved when
a SubjectAccessReview says its *requester* may

* ``create certificatesigningrequests/selfnodeclient`` -- a node renewing its own
  certificate (the requester is the CN), or
* ``create certificatesigningrequests/nodeclient`` -- anyone else, in practice a
  bootstrap token's ``system:bootstrappers`` group;

(kubeadm's and pyk8s's bindings grant these, :mod:`pyk8s.server.identities`). A
recognised request the review does not allow is left pending, never denied.

pyk8s adds one recogniser upstream has no counterpart for, because a joining host needs
a kube-proxy identity and pyk8s has no k3s-style supervisor to hand one out: a
``kubernetes.io/kube-apiserver-client`` request for exactly ``CN=system:kube-proxy``
(no organisation, no SANs, client usages) is approved when the requester may
``create certificatesigningrequests/kubeproxyclient``.

Kubelet serving certificates (``kubernetes.io/kubelet-serving``): upstream approves none
(kubeadm's ``serverTLSBootstrap`` leaves them to an admin or an external approver) and
k3s issues them from its supervisor without a CSR. pyk8s approves them here the way the
common external approvers do, by checking what the certificate would name against the
Node: a serving request (upstream's ``IsKubeletServingCSR``) is approved when its
requester is the node it names (``spec.username`` is the CN, ``system:nodes`` among its
groups), that Node exists, and every DNS name and IP address in it is one of the Node's
``status.addresses`` (a node cannot get a certificate for another host's address). Any
other serving request is left pending for an admin (``kubectl certificate approve``).
"""

from __future__ import annotations

import logging
from typing import Any

from pyk8s.api.certificates import (
    APPROVED,
    DENIED,
    KUBE_APISERVER_CLIENT,
    KUBE_APISERVER_CLIENT_KUBELET,
    KUBE_PROXY_USER,
    KUBELET_SERVING,
    NODE_USER_PREFIX,
    NODES_GROUP,
    CSRError,
    ParsedCSR,
    has_condition,
    is_node_client_cert,
    is_node_serving_cert,
    parse_request,
    request_pem,
)
from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.controllers._resources import NODES
from pyk8s.controllers.csrsigning import CSRS, write_or_requeue
from pyk8s.controllers.runtime import Manager, Request, Result

__all__ = ["names_only_node_addresses", "recognise", "serving_node", "setup"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ACCESS_REVIEWS: Resource = REGISTRY.get("authorization.k8s.io", "v1", "subjectaccessreviews")  # type: ignore[assignment]

_SELF = (
    "selfnodeclient",
    "Auto approving self kubelet client certificate after SubjectAccessReview.",
)
_NODE = ("nodeclient", "Auto approving kubelet client certificate after SubjectAccessReview.")
_PROXY = (
    "kubeproxyclient",
    "Auto approving kube-proxy client certificate after SubjectAccessReview.",
)


def _is_kube_proxy_client(parsed: ParsedCSR, usages: list[str]) -> bool:
    return (
        parsed.common_name == KUBE_PROXY_USER
        and not parsed.organizations
        and not (parsed.dns_names or parsed.ip_addresses or parsed.emails or parsed.uris)
        and "client auth" in usages
        and set(usages) <= {"digital signature", "key encipherment", "client auth"}
    )


_SERVING_MESSAGE = "Auto approving kubelet serving certificate after checking the node's addresses."


def serving_node(csr: Obj) -> str | None:
    """The Node a kubelet serving request is from and for (None: not one, or its
    requester is not the node it names)."""
    spec = csr.get("spec") or {}
    if spec.get("signerName") != KUBELET_SERVING:
        return None
    try:
        parsed = parse_request(request_pem(csr))
    except CSRError:
        return None
    usages = [str(u) for u in spec.get("usages") or ()]
    if not is_node_serving_cert(parsed, usages):
        return None
    if spec.get("username") != parsed.common_name or NODES_GROUP not in (spec.get("groups") or ()):
        return None
    return parsed.common_name.removeprefix(NODE_USER_PREFIX)


def names_only_node_addresses(csr: Obj, node: Obj) -> bool:
    """Every DNS name and IP address of the request is one of the Node's addresses."""
    parsed = parse_request(request_pem(csr))
    known = {str(a.get("address")) for a in (node.get("status") or {}).get("addresses") or ()}
    return set(parsed.dns_names) <= known and {str(ip) for ip in parsed.ip_addresses} <= known


def recognise(csr: Obj) -> list[tuple[str, str]]:
    """(subresource to review, approval message) for each recogniser that matches, in
    upstream's order (self first)."""
    spec = csr.get("spec") or {}
    usages = [str(u) for u in spec.get("usages") or ()]
    try:
        parsed = parse_request(request_pem(csr))
    except CSRError:
        return []
    signer = spec.get("signerName")
    if signer == KUBE_APISERVER_CLIENT_KUBELET and is_node_client_cert(parsed, usages):
        out = []
        if spec.get("username") == parsed.common_name:
            out.append(_SELF)
        out.append(_NODE)
        return out
    if signer == KUBE_APISERVER_CLIENT and _is_kube_proxy_client(parsed, usages):
        return [_PROXY]
    return []


class CSRApprovingReconciler:
    def __init__(self, manager: Manager) -> None:
        self.client = manager.client
        self.csrs = manager.informers.informer(CSRS).store
        self.nodes = manager.informers.informer(NODES).store

    async def _allowed(self, csr: Obj, subresource: str) -> bool:
        spec = csr.get("spec") or {}
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": spec.get("username", ""),
                "uid": spec.get("uid", ""),
                "groups": spec.get("groups") or [],
                "extra": spec.get("extra") or {},
                "resourceAttributes": {
                    "group": "certificates.k8s.io",
                    "resource": "certificatesigningrequests",
                    "verb": "create",
                    "subresource": subresource,
                    "version": "*",
                },
            },
        }
        out = await self.client.create(ACCESS_REVIEWS, review)
        return bool((out.get("status") or {}).get("allowed"))

    async def _approve(self, csr: Obj, message: str) -> Result | None:
        status = dict(csr.get("status") or {})
        status["conditions"] = [
            *(status.get("conditions") or ()),
            {"type": APPROVED, "status": "True", "reason": "AutoApproved", "message": message},
        ]
        body = {**csr, "status": status}
        return await write_or_requeue(self.client.update(CSRS, body, subresource="approval"))

    async def _serving(self, csr: Obj, node_name: str) -> Result | None:
        name = csr["metadata"]["name"]
        node = self.nodes.get_by_name(None, node_name)
        if node is None:  # the kubelet asks after registering: our cache may lag
            return Result(requeue_after=1.0)
        if not names_only_node_addresses(csr, node):
            log.info("csr %s names addresses node %s does not have: left pending", name, node_name)
            return None
        log.info("approving csr %s (kubelet serving, node %s)", name, node_name)
        return await self._approve(csr, _SERVING_MESSAGE)

    async def reconcile(self, request: Request) -> Result | None:
        csr = self.csrs.get_by_name(None, request.name)
        if csr is None or has_condition(csr, APPROVED) or has_condition(csr, DENIED):
            return None
        node_name = serving_node(csr)
        if node_name is not None:
            return await self._serving(csr, node_name)
        tried = []
        for subresource, message in recognise(csr):
            tried.append(subresource)
            if not await self._allowed(csr, subresource):
                continue
            log.info("approving csr %s (%s)", request.name, subresource)
            return await self._approve(csr, message)
        if tried:
            log.info(
                "recognized csr %s as %s but subject access review was not approved",
                request.name,
                tried,
            )
        return None


def setup(manager: Manager) -> None:
    reconciler = CSRApprovingReconciler(manager)
    controller = manager.add("csrapproving", reconciler, workers=2)
    controller.watch(manager.informers.informer(CSRS))
    manager.informers.informer(NODES)  # serving requests are checked against the Node
