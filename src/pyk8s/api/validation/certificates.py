"""certificates.k8s.io/v1 CertificateSigningRequest validation (upstream's
pkg/apis/certificates/validation, v1.32): the request must be a signed PEM CERTIFICATE
REQUEST, ``signerName`` a ``domain/path``, usages from the known set, expirationSeconds
at least 600, Approved/Denied/Failed only True, Approved and Denied exclusive, and an
update may neither remove those conditions nor touch them outside the ``approval``
subresource, nor set the certificate outside ``status`` or before approval.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from pyk8s.api import errors
from pyk8s.api.certificates import (
    ALL_USAGES,
    APPROVED,
    DENIED,
    FAILED,
    LEGACY_UNKNOWN,
    CSRError,
    has_condition,
    parse_request,
    request_pem,
)
from pyk8s.api.validation import names
from pyk8s.api.validation._util import JSON, Errs, d, lst, s
from pyk8s.api.validation.meta import validate_object_meta, validate_object_meta_update

__all__ = ["Options", "create_csr", "update_csr", "validate_signer_name"]

_SIGNER_FORMAT = "must be a fully qualified domain and path of the form 'example.com/signer-name'"
_MAX_SUBDOMAIN = 253
_EXCLUSIVE = (APPROVED, DENIED, FAILED)


@dataclass(frozen=True)
class Options:
    """What the kind of write may change (upstream's validation options)."""

    #: the approval subresource: Approved/Denied conditions may be added
    allow_approval: bool = False
    #: the status subresource: the certificate may be set (once approved)
    allow_certificate: bool = False


def _any_name(name: str, prefix: bool) -> list[str]:
    return []  # upstream's ValidateCertificateRequestName accepts any name


def validate_signer_name(path: str, signer: str) -> Errs:
    if not signer:
        return [errors.required(path, "")]
    segments = signer.split("/")
    if len(segments) != 2:
        return [errors.invalid(path, signer, _SIGNER_FORMAT)]
    domain, rest = segments
    errs: Errs = []
    if len(domain) > _MAX_SUBDOMAIN:
        errs.append(errors.too_long(path, _MAX_SUBDOMAIN))
    labels = domain.split(".")
    for label in labels:
        problems = names.is_dns1123_label(label)
        if problems:
            errs += [
                errors.invalid(path, domain, f"validating label {label!r}: {p}") for p in problems
            ]
            break
    if len(labels) < 2:
        errs.append(
            errors.invalid(
                path, domain, "should be a domain with at least two segments separated by dots"
            )
        )
    for label in rest.split("."):
        problems = names.is_dns1123_label(label)
        if problems:
            errs += [
                errors.invalid(path, rest, f"validating label {label!r}: {p}") for p in problems
            ]
            break
    if len(rest) > _MAX_SUBDOMAIN - len(domain) - 1:
        errs.append(errors.too_long(path, _MAX_SUBDOMAIN - len(domain) - 1))
    return errs


def _certificate_errors(value: object) -> str | None:
    """Upstream's validateCertificate: PEM CERTIFICATE blocks only, at least one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return "illegal base64 data"
    from cryptography import x509

    blocks = 0
    for chunk in data.split(b"-----BEGIN ")[1:]:
        kind = chunk.split(b"-----", 1)[0].decode(errors="replace")
        if kind != "CERTIFICATE":
            return f"only CERTIFICATE PEM blocks are allowed, found {kind!r}"
        blocks += 1
    if blocks == 0:
        return "must contain at least one CERTIFICATE PEM block"
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError as err:
        return str(err)
    return None


def _conditions(obj: JSON) -> Errs:
    errs: Errs = []
    path = "status.conditions"
    seen: set[str] = set()
    conds = lst(d(obj.get("status")).get("conditions"))
    for i, c in enumerate(conds):
        c = d(c)
        t = s(c.get("type"))
        if not t:
            errs.append(errors.required(f"{path}[{i}].type", ""))
        if t in _EXCLUSIVE:
            if t in seen:
                errs.append(errors.duplicate(f"{path}[{i}].type", t))
            seen.add(t)
            if c.get("status") != "True":
                errs.append(errors.not_supported(f"{path}[{i}].status", c.get("status"), ["True"]))
        elif c.get("status") not in ("True", "False", "Unknown"):
            errs.append(
                errors.not_supported(
                    f"{path}[{i}].status", c.get("status"), ["False", "True", "Unknown"]
                )
            )
    if APPROVED in seen and DENIED in seen:
        errs.append(
            errors.invalid(path, conds, "Approved and Denied conditions are mutually exclusive")
        )
    return errs


def create_csr(obj: JSON) -> Errs:
    errs = validate_object_meta(d(obj.get("metadata")), False, _any_name)
    spec = d(obj.get("spec"))
    pem = request_pem(obj)
    try:
        parse_request(pem)
    except CSRError as err:
        errs.append(errors.invalid("spec.request", s(spec.get("request")), str(err)))
    usages = lst(spec.get("usages"))
    if not usages:
        errs.append(errors.required("spec.usages", "usages must be provided"))
    seen: set[str] = set()
    for i, u in enumerate(usages):
        if u not in ALL_USAGES:
            errs.append(errors.not_supported(f"spec.usages[{i}]", u, sorted(ALL_USAGES)))
        elif u in seen:
            errs.append(errors.duplicate(f"spec.usages[{i}]", u))
        seen.add(u)
    errs += validate_signer_name("spec.signerName", s(spec.get("signerName")))
    if spec.get("signerName") == LEGACY_UNKNOWN:
        errs.append(
            errors.invalid(
                "spec.signerName",
                LEGACY_UNKNOWN,
                "the legacy signerName is not allowed via this API version",
            )
        )
    exp = spec.get("expirationSeconds")
    if isinstance(exp, int) and not isinstance(exp, bool) and exp < 600:
        errs.append(
            errors.invalid(
                "spec.expirationSeconds",
                exp,
                "may not specify a duration less than 600 seconds (10 minutes)",
            )
        )
    errs += _conditions(obj)
    problem = _certificate_errors(d(obj.get("status")).get("certificate"))
    if problem is not None:
        errs.append(errors.invalid("status.certificate", "<certificate data>", problem))
    return errs


def _of_type(obj: JSON, t: str) -> list[JSON]:
    return [d(c) for c in lst(d(obj.get("status")).get("conditions")) if d(c).get("type") == t]


def update_csr(new: JSON, old: JSON, opts: Options = Options()) -> Errs:
    errs = create_csr(new)
    path = "status.conditions"
    for t in _EXCLUSIVE:
        if len(_of_type(new, t)) < len(_of_type(old, t)):
            errs.append(errors.forbidden(path, f'updates may not remove a condition of type "{t}"'))
    if not opts.allow_approval:
        for t in (APPROVED, DENIED):
            before, after = _of_type(old, t), _of_type(new, t)
            if len(after) > len(before):
                errs.append(
                    errors.forbidden(path, f'updates may not add a condition of type "{t}"')
                )
            elif after != before:
                errs.append(
                    errors.forbidden(path, f'updates may not modify a condition of type "{t}"')
                )
    cert_new = d(new.get("status")).get("certificate") or ""
    cert_old = d(old.get("status")).get("certificate") or ""
    if cert_new != cert_old:
        bad = "status.certificate"
        if cert_old:
            errs.append(
                errors.invalid(
                    bad, "<certificate data>", "updates may not modify existing certificate content"
                )
            )
        elif not opts.allow_certificate:
            errs.append(
                errors.invalid(bad, "<certificate data>", "updates may not set certificate content")
            )
        elif not has_condition(old, APPROVED):
            errs.append(
                errors.invalid(
                    bad, "<certificate data>", "certificate issuance requires an Approved condition"
                )
            )
        elif has_condition(old, FAILED):
            errs.append(
                errors.invalid(
                    bad,
                    "<certificate data>",
                    "certificate issuance forbidden with a Failed condition",
                )
            )
    return errs + validate_object_meta_update(new.get("metadata"), old.get("metadata"), core=False)
