"""Upstream's three certificates admission plugins, on CertificateSigningRequests.

Why: who may approve a request and who may issue its certificate are decided per
signer, not by the CSR resource's own verbs (anyone who may update ``/approval`` could
otherwise approve a request for the API server's client signer). As upstream, each is a
named plugin, on by default, that ``--disable-admission-plugins`` can turn off:

* **CertificateApproval**: an update through ``/approval`` needs the ``approve`` verb on
  ``signers`` (certificates.k8s.io) named after the request's signer or ``<domain>/*``;
* **CertificateSigning**: an update through ``/status`` that changes
  ``status.certificate`` needs ``sign`` on the same names;
* **CertificateSubjectRestriction**: a ``kubernetes.io/kube-apiserver-client`` request
  for ``O=system:masters`` is refused (that group bypasses authorization).

Refusals are upstream's texts (``user not permitted to approve requests with signerName
"…"``, ``use of kubernetes.io/kube-apiserver-client signer with system:masters group is
not allowed``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pyk8s.api.certificates import KUBE_APISERVER_CLIENT, CSRError, parse_request, request_pem
from pyk8s.apiserver.admission import CREATE, UPDATE, Attributes, Context, Plugin, forbidden
from pyk8s.apiserver.authz import RequestAttributes

__all__ = ["CertificateApproval", "CertificateSigning", "CertificateSubjectRestriction"]

GROUP = "certificates.k8s.io"
MASTERS = "system:masters"


def _is_csr(attrs: Attributes) -> bool:
    return attrs.group_resource == (GROUP, "certificatesigningrequests")


def _signer(attrs: Attributes) -> str:
    obj = attrs.obj or {}
    return str((obj.get("spec") or {}).get("signerName") or "")


class _SignerVerb(Plugin):
    """Requires ``verb`` on the request's signer for updates through ``subresource``."""

    operations: ClassVar[frozenset[str]] = frozenset({UPDATE})
    verb: ClassVar[str] = ""
    subresource: ClassVar[str] = ""

    def __init__(self, context: Context) -> None:
        self.authorizer: Any = context.authorizer

    def handles(self, attrs: Attributes) -> bool:
        return (
            attrs.operation == UPDATE and attrs.subresource == self.subresource and _is_csr(attrs)
        )

    def changed(self, attrs: Attributes) -> bool:
        return True

    async def validate(self, attrs: Attributes) -> None:
        if self.authorizer is None or not self.changed(attrs):
            return
        signer = _signer(attrs)
        domain = signer.split("/", 1)[0]
        for name in (signer, f"{domain}/*"):
            decision = await self.authorizer.authorize(
                attrs.user,
                RequestAttributes(
                    verb=self.verb, api_group=GROUP, resource="signers", name=name,
                    api_version="v1",
                ),
            )  # fmt: skip
            if decision.allowed:
                return
        raise forbidden(
            attrs, f'user not permitted to {self.verb} requests with signerName "{signer}"'
        )


class CertificateApproval(_SignerVerb):
    name = "CertificateApproval"
    verb = "approve"
    subresource = "approval"


class CertificateSigning(_SignerVerb):
    name = "CertificateSigning"
    verb = "sign"
    subresource = "status"

    def changed(self, attrs: Attributes) -> bool:
        def cert(obj: dict[str, Any] | None) -> str:
            return str(((obj or {}).get("status") or {}).get("certificate") or "")

        return cert(attrs.obj) != cert(attrs.old)


class CertificateSubjectRestriction(Plugin):
    name = "CertificateSubjectRestriction"
    operations: ClassVar[frozenset[str]] = frozenset({CREATE})

    def __init__(self, context: Context) -> None:
        pass

    def handles(self, attrs: Attributes) -> bool:
        return attrs.operation == CREATE and not attrs.subresource and _is_csr(attrs)

    async def validate(self, attrs: Attributes) -> None:
        if _signer(attrs) != KUBE_APISERVER_CLIENT:
            return
        try:
            parsed = parse_request(request_pem(attrs.obj or {}))
        except CSRError:
            return  # validation reports it
        if MASTERS in parsed.organizations:
            raise forbidden(
                attrs, f"use of {KUBE_APISERVER_CLIENT} signer with {MASTERS} group is not allowed"
            )
