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
    CSRError,
    ParsedCSR,
    has_condition,
    is_node_client_cert,
    parse_request,
    request_pem,
)
from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.controllers.csrsigning import CSRS, write_or_requeue
from pyk8s.controllers.runtime import Manager, Request, Result

__all__ = ["recognise", "setup"]

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

    async def reconcile(self, request: Request) -> Result | None:
        csr = self.csrs.get_by_name(None, request.name)
        if csr is None or has_condition(csr, APPROVED) or has_condition(csr, DENIED):
            return None
        tried = []
        for subresource, message in recognise(csr):
            tried.append(subresource)
            if not await self._allowed(csr, subresource):
                continue
            status = dict(csr.get("status") or {})
            status["conditions"] = [
                *(status.get("conditions") or ()),
                {"type": APPROVED, "status": "True", "reason": "AutoApproved", "message": message},
            ]
            log.info("approving csr %s (%s)", request.name, subresource)
            body = {**csr, "status": status}
            return await write_or_requeue(self.client.update(CSRS, body, subresource="approval"))
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
