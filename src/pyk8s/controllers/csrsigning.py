"""The CSR signing controller (upstream ``csrsigning``): issues approved certificates.

Why: a CertificateSigningRequest is only a wish until a signer answers it. Like
kube-controller-manager with ``--cluster-signing-cert-file/-key-file``, this controller
signs, with the cluster CA, approved requests for upstream's built-in signers

* ``kubernetes.io/kube-apiserver-client``: client certificates the API server trusts,
* ``kubernetes.io/kube-apiserver-client-kubelet``: kubelets' client certificates
  (``CN=system:node:<name>``, ``O=system:nodes``, client usages, no SANs),
* ``kubernetes.io/kubelet-serving``: kubelets' serving certificates (same subject,
  DNS/IP SANs, server usages),
* ``kubernetes.io/legacy-unknown``: anything approved (such requests can no longer be
  created through certificates.k8s.io/v1),

each after its own check of the request (:func:`pyk8s.api.certificates.signer_check`); a
request a signer refuses gets the ``Failed`` condition with reason
``SignerValidationFailure``. A denied, failed or already issued request is left alone,
and requests for other signers are someone else's. The certificate lives for
``spec.expirationSeconds`` capped by ``--cluster-signing-duration`` (one year by
default), backdated five minutes for clock skew and never past the CA's own expiry, as
upstream's ``LocalSigner``. Instead of one CA for all, each signer may have its own
(``--cluster-signing-kubelet-serving-cert-file`` …, :data:`SIGNER_FLAGS`); a signer
without one does not sign. The CA files are read again when they change (upstream's
dynamic file content), so a CA installed by ``pyk8s certificate rotate-ca`` signs from
the next request on; a pair that does not match (caught mid-replacement) keeps the
previous one.
"""

from __future__ import annotations

import base64
import datetime
import logging
import os
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from pyk8s.api.certificates import (
    APPROVED,
    DENIED,
    FAILED,
    KUBE_APISERVER_CLIENT,
    KUBE_APISERVER_CLIENT_KUBELET,
    KUBELET_SERVING,
    LEGACY_UNKNOWN,
    CSRError,
    has_condition,
    parse_request,
    request_pem,
    signer_check,
)
from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import ApiError, is_conflict, is_not_found
from pyk8s.controllers.runtime import Manager, Request, Result

__all__ = ["CSRS", "SIGNERS", "SIGNER_FLAGS", "Settings", "Signer", "setup", "write_or_requeue"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
CSRS: Resource = REGISTRY.get("certificates.k8s.io", "v1", "certificatesigningrequests")  # type: ignore[assignment]
SIGNERS = (KUBE_APISERVER_CLIENT, KUBE_APISERVER_CLIENT_KUBELET, KUBELET_SERVING, LEGACY_UNKNOWN)
#: signer -> the name of its own --cluster-signing-<name>-cert-file/-key-file pair
SIGNER_FLAGS = {
    KUBE_APISERVER_CLIENT: "kube-apiserver-client",
    KUBE_APISERVER_CLIENT_KUBELET: "kubelet-client",
    KUBELET_SERVING: "kubelet-serving",
    LEGACY_UNKNOWN: "legacy-unknown",
}
#: upstream's --cluster-signing-duration default (8760h)
DEFAULT_DURATION = 365 * 24 * 3600.0
BACKDATE = datetime.timedelta(minutes=5)

_KEY_USAGES = {
    "digital signature": "digital_signature",
    "content commitment": "content_commitment",
    "key encipherment": "key_encipherment",
    "key agreement": "key_agreement",
    "data encipherment": "data_encipherment",
    "cert sign": "key_cert_sign",
    "crl sign": "crl_sign",
    "encipher only": "encipher_only",
    "decipher only": "decipher_only",
}
_EXT_USAGES = {
    "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp signing": ExtendedKeyUsageOID.OCSP_SIGNING,
}


@dataclass
class Settings:
    """--cluster-signing-cert-file, --cluster-signing-key-file, --cluster-signing-duration
    (seconds), and upstream's per-signer pairs (``per_signer``: signer name -> (cert
    file, key file), from ``--cluster-signing-<SIGNER_FLAGS name>-cert-file/-key-file``),
    which may not be combined with the general pair. A signer with no files is not run;
    with none at all the controller does not run, as upstream."""

    cert_file: str = ""
    key_file: str = ""
    duration: float = DEFAULT_DURATION
    per_signer: dict[str, tuple[str, str]] = field(default_factory=dict)

    def files(self) -> dict[str, tuple[str, str]]:
        """signer -> (cert file, key file) of each signer to run; ValueError for upstream's
        refused combinations."""
        if self.per_signer and (self.cert_file or self.key_file):
            raise ValueError(
                "cannot specify --cluster-signing-{cert,key}-file and other "
                "--cluster-signing-*-file flags at the same time"
            )
        if self.cert_file or self.key_file:
            if not (self.cert_file and self.key_file):
                raise ValueError(
                    "--cluster-signing-cert-file and --cluster-signing-key-file go together"
                )
            return {signer: (self.cert_file, self.key_file) for signer in SIGNERS}
        for signer, (cert, key) in self.per_signer.items():
            if not (cert and key):
                flag = f"--cluster-signing-{SIGNER_FLAGS[signer]}"
                raise ValueError(f"{flag}-cert-file and {flag}-key-file go together")
        return dict(self.per_signer)


def _stamp(*paths: str) -> tuple[tuple[int, int, int], ...]:
    out = []
    for path in paths:
        st = os.stat(path)
        out.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


class Signer:
    """Signs certificate requests with one CA (upstream's ``LocalSigner``)."""

    def __init__(self, cert_file: str, key_file: str, max_duration: float) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.max_duration = max_duration
        self._stamp = _stamp(cert_file, key_file)
        self.ca, self.key = self._load()

    def _load(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey]:
        ca = x509.load_pem_x509_certificate(Path(self.cert_file).read_bytes())
        key = serialization.load_pem_private_key(Path(self.key_file).read_bytes(), None)
        if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
            raise ValueError(f"{self.key_file}: unsupported CA key type")
        fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if ca.public_key().public_bytes(*fmt) != key.public_key().public_bytes(*fmt):
            raise ValueError(f"{self.key_file} does not match {self.cert_file}")
        return ca, key

    def _reload(self) -> None:
        """Read the files again when they changed since they were read."""
        try:
            stamp = _stamp(self.cert_file, self.key_file)
            if stamp == self._stamp:
                return
            self.ca, self.key = self._load()
        except (OSError, ValueError) as err:
            log.warning("keeping the signing CA read before", extra={"error": str(err)})
            return
        self._stamp = stamp
        log.info("signing CA reloaded", extra={"file": self.cert_file})

    def sign(
        self,
        csr: x509.CertificateSigningRequest,
        usages: list[str],
        expiration_seconds: int | None,
        now: datetime.datetime | None = None,
    ) -> bytes:
        self._reload()
        now = now or datetime.datetime.now(datetime.UTC)
        duration = self.max_duration
        if expiration_seconds is not None:
            duration = min(duration, float(expiration_seconds))
        not_before = now - BACKDATE
        not_after = min(now + datetime.timedelta(seconds=duration), self.ca.not_valid_after_utc)
        public_key = csr.public_key()
        if not isinstance(public_key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
            raise CSRError("unsupported public key type")
        flags = {v: False for v in _KEY_USAGES.values()}
        for u in usages:
            if u in _KEY_USAGES:
                flags[_KEY_USAGES[u]] = True
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.ca.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
        )
        if any(flags.values()):
            builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
        ext = [_EXT_USAGES[u] for u in usages if u in _EXT_USAGES]
        if ext:
            builder = builder.add_extension(x509.ExtendedKeyUsage(ext), critical=False)
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            pass
        else:
            builder = builder.add_extension(san, critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CSRSigningReconciler:
    def __init__(self, manager: Manager, signers: dict[str, Signer]) -> None:
        self.client = manager.client
        self.csrs = manager.informers.informer(CSRS).store
        self.signers = signers

    async def reconcile(self, request: Request) -> Result | None:
        csr = self.csrs.get_by_name(None, request.name)
        if csr is None:
            return None
        spec = csr.get("spec") or {}
        signer = spec.get("signerName")
        status = csr.get("status") or {}
        if signer not in self.signers or status.get("certificate"):
            return None
        if not has_condition(csr, APPROVED) or has_condition(csr, DENIED):
            return None
        if has_condition(csr, FAILED):
            return None
        usages = [str(u) for u in spec.get("usages") or ()]
        try:
            parsed = parse_request(request_pem(csr))
            why = signer_check(str(signer), parsed, usages)
        except CSRError as err:
            why = str(err)
            parsed = None
        new = {**csr, "status": dict(status)}
        if why is not None or parsed is None:
            log.info("csr %s refused by %s: %s", request.name, signer, why)
            now = _now()
            new["status"]["conditions"] = [
                *(status.get("conditions") or ()),
                {
                    "type": FAILED,
                    "status": "True",
                    "reason": "SignerValidationFailure",
                    "message": why or "",
                    "lastUpdateTime": now,
                    "lastTransitionTime": now,
                },
            ]
        else:
            exp = spec.get("expirationSeconds")
            pem = self.signers[str(signer)].sign(
                parsed.csr, usages, exp if isinstance(exp, int) else None
            )
            new["status"]["certificate"] = base64.b64encode(pem).decode()
        return await write_or_requeue(self.client.update_status(CSRS, new))


async def write_or_requeue(write: Awaitable[Any]) -> Result | None:
    """Run a write of a CSR: a conflict (it changed under us) looks again, a vanished
    request is done."""
    try:
        await write
    except ApiError as err:
        if is_not_found(err):
            return None
        if is_conflict(err):
            return Result(requeue=True)
        raise
    return None


def setup(manager: Manager) -> None:
    settings = manager.settings.get("csrsigning")
    files = settings.files() if isinstance(settings, Settings) else {}
    if not files:
        log.info("csrsigning: no --cluster-signing-*-file flags, not signing")
        return
    assert isinstance(settings, Settings)
    signers = {
        signer: Signer(cert, key, settings.duration) for signer, (cert, key) in files.items()
    }
    reconciler = CSRSigningReconciler(manager, signers)
    controller = manager.add("csrsigning", reconciler, workers=2)
    controller.watch(manager.informers.informer(CSRS))
