"""certificates.k8s.io/v1 rules shared by the API server, the signers and the approver.

Why one module: the API server validates a CertificateSigningRequest's PEM request and
its conditions, the ``csrsigning`` controller checks what each built-in signer may sign,
and the ``csrapproving`` controller recognises node client requests; all three read the
same request the same way (upstream keeps these in pkg/apis/certificates). Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

__all__ = [
    "ALL_USAGES",
    "APPROVED",
    "DENIED",
    "FAILED",
    "KUBELET_SERVING",
    "KUBE_APISERVER_CLIENT",
    "KUBE_APISERVER_CLIENT_KUBELET",
    "KUBE_PROXY_USER",
    "LEGACY_UNKNOWN",
    "NODES_GROUP",
    "NODE_USER_PREFIX",
    "CSRError",
    "ParsedCSR",
    "condition",
    "has_condition",
    "is_node_client_cert",
    "is_node_serving_cert",
    "parse_request",
    "request_pem",
    "signer_check",
]

KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"
KUBE_APISERVER_CLIENT_KUBELET = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
LEGACY_UNKNOWN = "kubernetes.io/legacy-unknown"

APPROVED = "Approved"
DENIED = "Denied"
FAILED = "Failed"

#: upstream's KeyUsage values, in its order
ALL_USAGES = (
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
)

NODE_USER_PREFIX = "system:node:"
KUBE_PROXY_USER = "system:kube-proxy"
NODES_GROUP = "system:nodes"


class CSRError(ValueError):
    """``spec.request`` is not a signed PEM CERTIFICATE REQUEST (message as upstream's)."""


@dataclass(frozen=True)
class ParsedCSR:
    """What the signers and the approver look at in an x509 certificate request."""

    common_name: str
    organizations: tuple[str, ...]
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    emails: tuple[str, ...]
    uris: tuple[str, ...]
    csr: x509.CertificateSigningRequest


def request_pem(obj: dict[str, Any]) -> bytes:
    """``spec.request`` decoded from base64 (b"" when missing or malformed)."""
    raw = (obj.get("spec") or {}).get("request")
    if not isinstance(raw, str):
        return b""
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return b""


def parse_request(pem: bytes) -> ParsedCSR:
    """Upstream's ``ParseCSR`` + signature check: the first PEM block must be a
    CERTIFICATE REQUEST whose signature verifies."""
    text = pem.lstrip()
    begin = b"-----BEGIN CERTIFICATE REQUEST-----"
    if not text.startswith(b"-----BEGIN ") or not text.startswith(begin):
        raise CSRError("PEM block type must be CERTIFICATE REQUEST")
    try:
        csr = x509.load_pem_x509_csr(text)
    except ValueError as err:
        raise CSRError(f"x509: malformed certificate request: {err}") from None
    if not csr.is_signature_valid:
        raise CSRError("x509: ECDSA verification failure")
    subject = csr.subject
    cn = [str(a.value) for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    dns: list[str] = []
    ips: list[str] = []
    emails: list[str] = []
    uris: list[str] = []
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        pass
    else:
        dns = [str(v) for v in san.get_values_for_type(x509.DNSName)]
        ips = [str(v) for v in san.get_values_for_type(x509.IPAddress)]
        emails = [str(v) for v in san.get_values_for_type(x509.RFC822Name)]
        uris = [str(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
    return ParsedCSR(
        cn[0] if cn else "", tuple(orgs), tuple(dns), tuple(ips), tuple(emails), tuple(uris), csr
    )


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == type_:
            return c
    return None


def has_condition(obj: dict[str, Any], type_: str) -> bool:
    """Whether a condition of ``type_`` is there with status True (upstream's
    ``HasTrueCondition``; Approved/Denied/Failed may only be True)."""
    c = condition(obj, type_)
    return c is not None and c.get("status", "True") in ("True", "")


def _usages_ok(usages: Iterable[str], allowed: set[str], required: set[str]) -> bool:
    given = set(usages)
    return given <= allowed and required <= given


def _key_ok(csr: x509.CertificateSigningRequest) -> bool:
    key = csr.public_key()
    return isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey))


#: the usages a kubelet client certificate may (and must) ask for (upstream's
#: kubeletClientRequiredUsages, with and without the legacy key encipherment)
_CLIENT_ALLOWED = {"digital signature", "key encipherment", "client auth"}
_SERVING_ALLOWED = {"digital signature", "key encipherment", "server auth"}


def is_node_client_cert(parsed: ParsedCSR, usages: Iterable[str]) -> bool:
    """Upstream's ``IsKubeletClientCSR``: O=[system:nodes], CN=system:node:<name>, no
    SANs, usages client auth + digital signature (+ key encipherment)."""
    return (
        parsed.organizations == (NODES_GROUP,)
        and parsed.common_name.startswith(NODE_USER_PREFIX)
        and not (parsed.dns_names or parsed.ip_addresses or parsed.emails or parsed.uris)
        and _usages_ok(usages, _CLIENT_ALLOWED, {"digital signature", "client auth"})
    )


def is_node_serving_cert(parsed: ParsedCSR, usages: Iterable[str]) -> bool:
    """Upstream's ``IsKubeletServingCSR``: O=[system:nodes], CN=system:node:<name>, at
    least one DNS or IP SAN, no email or URI SANs, usages server auth + digital
    signature (+ key encipherment)."""
    return (
        parsed.organizations == (NODES_GROUP,)
        and parsed.common_name.startswith(NODE_USER_PREFIX)
        and bool(parsed.dns_names or parsed.ip_addresses)
        and not (parsed.emails or parsed.uris)
        and _usages_ok(usages, _SERVING_ALLOWED, {"digital signature", "server auth"})
    )


def signer_check(signer: str, parsed: ParsedCSR, usages: Iterable[str]) -> str | None:
    """Why the built-in ``signer`` refuses this request (None: it may sign it), as
    upstream's csrsigning ``isRequestForSignerFn`` decides. The caller marks the CSR
    Failed (reason ``SignerValidationFailure``) with this message."""
    given = list(usages)
    if signer == KUBE_APISERVER_CLIENT_KUBELET:
        if not is_node_client_cert(parsed, given):
            return "invalid kubelet client CSR"
    elif signer == KUBELET_SERVING:
        if not is_node_serving_cert(parsed, given):
            return "invalid kubelet serving CSR"
    elif signer == LEGACY_UNKNOWN:
        pass  # upstream's legacy-unknown signer signs any approved request
    elif signer == KUBE_APISERVER_CLIENT:
        if not set(given) <= _CLIENT_ALLOWED or "client auth" not in given:
            return "invalid usage for client certificate"
    else:
        return f"unknown signer {signer!r}"
    if not _key_ok(parsed.csr):
        return "unsupported public key type"
    return None
