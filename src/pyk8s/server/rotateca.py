"""``pyk8s certificate rotate-ca``: replace the cluster CA with a cross-signed transition
(k3s's command of the same name).

Why: the cluster CA lives ten years and every kubeconfig, agent and pod trusts it; when
its key may have leaked, or policy wants a new one, it has to be replaced without
cutting off everything that trusts the old one. As on k3s the new CA is staged in a
directory (``DIR/tls/ca.crt`` and ``ca.key``; ``--generate`` makes one, the job of k3s's
``rotate-default-ca-certs.sh``), checked, and only then installed:

* ``ca.crt`` holds the new CA first; the certificates after it are intermediates. Unless
  ``--force``, one of them (or the new CA itself) must carry the new CA's subject and key
  and chain to the current CA: a cross-signed copy. A key that does not match, a file
  that does not parse, a certificate that is no CA or is expired, or a CA that is not
  cross-signed is refused with a one-line error before anything is written.
* Installed, ``DATA_DIR/server/tls/ca.crt`` becomes the trust bundle *new CA + current
  CA* (the first certificate signs), ``ca-chain.crt`` the intermediates, which are sent
  with every leaf the server presents (:func:`pyk8s.apiserver.certs.ensure_pki`): a client
  that still trusts only the old CA verifies the new serving certificate through the
  cross-signed copy, and client certificates of either CA are accepted. The old files
  go to ``tls/ca-<unix seconds>/``; the join tokens' CA hash is updated.
* A running ``pyk8s server`` notices the new ``ca.crt`` within seconds
  (:class:`pyk8s.server.certrenew.CertRenewer`) and re-issues its serving, admin and
  component certificates from the new CA without a restart. The service-account signing
  key is never touched, so issued tokens stay valid.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pyk8s.apiserver.certs import Pki, install_ca, new_rotated_ca

__all__ = ["RotateError", "Staged", "generate", "install", "load_staged"]

#: files k3s's rotate-ca also takes that pyk8s does not rotate
UNSUPPORTED = ("sa.key", "sa.pub", "front-proxy-ca.crt", "front-proxy-ca.key")
#: how long a chain of intermediates from the new CA to the current one may be
MAX_DEPTH = 4


class RotateError(Exception):
    """A staged CA that is refused; the message is one line."""


@dataclass(frozen=True, slots=True)
class Staged:
    """A checked new CA: what install writes."""

    ca: x509.Certificate
    bundle: bytes
    key: bytes
    chain: bytes
    cross_signed: bool
    previous: x509.Certificate


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _certs(path: Path) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except FileNotFoundError:
        raise RotateError(f"{path}: no such file") from None
    except (OSError, ValueError) as err:
        raise RotateError(f"{path}: not a PEM certificate file ({err})") from None
    return certs


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _chains_to(
    cert: x509.Certificate, others: list[x509.Certificate], root: x509.Certificate, depth: int
) -> bool:
    if _issued_by(cert, root):
        return True
    return depth > 0 and any(
        o is not cert and _issued_by(cert, o) and _chains_to(o, others, root, depth - 1)
        for o in others
    )


def _self_signed(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer and _issued_by(cert, cert)


def _check_ca(cert: x509.Certificate, path: Path) -> None:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise RotateError(f"{path}: {cert.subject.rfc4514_string()} is not a CA certificate")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.key_cert_sign:
        raise RotateError(f"{path}: the CA certificate may not sign certificates (keyCertSign)")
    now = time.time()
    if cert.not_valid_after_utc.timestamp() <= now:
        raise RotateError(f"{path}: the CA certificate expired at {cert.not_valid_after_utc}")
    if cert.not_valid_before_utc.timestamp() > now + 3600:
        raise RotateError(f"{path}: the CA certificate is valid from {cert.not_valid_before_utc}")


def load_staged(data_dir: Path, path: Path, *, force: bool = False) -> Staged:
    """Read and check the CA staged under ``path/tls`` against the cluster CA of
    ``data_dir``; RotateError with a one-line reason when it cannot be installed."""
    pki = Pki.at(data_dir / "server" / "tls")
    if not pki.ca_cert.exists():
        raise RotateError(f"no cluster CA at {pki.ca_cert}: not a server data dir")
    tls = path / "tls"
    if tls.resolve() == pki.dir.resolve():
        raise RotateError(f"--path {path} is the data dir's own; stage the new CA elsewhere")
    for name in UNSUPPORTED:
        if (tls / name).exists():
            raise RotateError(f"{tls / name}: only the cluster CA (ca.crt, ca.key) is rotated")
    crt_path, key_path = tls / "ca.crt", tls / "ca.key"
    staged = _certs(crt_path)
    if not staged:
        raise RotateError(f"{crt_path}: no certificate in it")
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except FileNotFoundError:
        raise RotateError(f"{key_path}: no such file") from None
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise RotateError(f"{key_path}: not an unencrypted PEM private key ({err})") from None
    new = staged[0]
    key_spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if _spki(new) != key_spki:
        raise RotateError(f"{key_path} does not match the certificate in {crt_path}")
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise RotateError(f"{key_path}: pyk8s's CA keys are ECDSA; this is another kind")
    _check_ca(new, crt_path)
    current_bundle = _certs(pki.ca_cert)
    current = current_bundle[0]
    if _spki(new) == _spki(current):
        raise RotateError(f"{crt_path}: this key is already the cluster CA's")
    if new.subject == current.subject:
        raise RotateError(f"{crt_path}: the new CA has the current CA's subject; it needs its own")
    others = staged[1:]
    # the new CA itself, or a certificate with its subject and key, signed (through the
    # staged intermediates) by the current CA: a client that trusts only the current CA
    # can then verify what the new one signs
    candidates = [new, *(o for o in others if o.subject == new.subject)]
    linked = any(
        _spki(c) == _spki(new) and _chains_to(c, others, current, MAX_DEPTH) for c in candidates
    )
    if not linked and not force:
        raise RotateError(
            f"{crt_path}: the new CA ({new.subject.rfc4514_string()}) is not cross-signed by "
            f"the current one ({current.subject.rfc4514_string()}), so clients that trust only "
            "the current CA would stop trusting the server; stage one made with --generate, or "
            "pass --force"
        )
    # sent with every leaf: the cross-signed copies, and the new CA itself when it is an
    # intermediate (a self-signed root only helps a client that trusts it already)
    chain = b"".join(_pem(c) for c in staged if not _self_signed(c))
    # the previous CA stays trusted; older ones (kept after an earlier rotation) go
    bundle = _pem(new) + _pem(current)
    return Staged(
        new,
        bundle,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
        chain,
        linked,
        current,
    )


def install(data_dir: Path, staged: Staged) -> Path:
    """Install a checked CA; the directory the previous CA files were copied to."""
    pki = Pki.at(data_dir / "server" / "tls")
    backup = pki.dir / f"ca-{int(time.time())}"
    while backup.exists():
        backup = backup.with_name(backup.name + "-1")
    install_ca(pki, bundle=staged.bundle, key=staged.key, chain=staged.chain, backup=backup)
    _rehash_tokens(data_dir, pki.ca_cert)
    return backup


def _rehash_tokens(data_dir: Path, ca_cert: Path) -> None:
    """The join tokens name the CA by its hash (``K10<sha256>::…``): give them the new
    one, keeping their secrets."""
    digest = hashlib.sha256(ca_cert.read_bytes()).hexdigest()
    for name in ("node-token", "server-token"):
        path = data_dir / "server" / name
        if not path.exists():
            continue
        text = path.read_text()
        token = text.strip()
        if token.startswith("K10") and "::" in token:
            rest = token.split("::", 1)[1]
            path.write_text(f"K10{digest}::{rest}" + ("\n" if text.endswith("\n") else ""))


def generate(data_dir: Path, path: Path) -> Path:
    """Write a new CA, cross-signed by the current one, to ``path/tls``; that directory."""
    pki = Pki.at(data_dir / "server" / "tls")
    tls = path / "tls"
    for name in ("ca.crt", "ca.key"):
        if (tls / name).exists():
            raise RotateError(f"{tls / name} exists; stage the new CA in an empty directory")
    try:
        crt, key = new_rotated_ca(pki)
    except FileNotFoundError:
        raise RotateError(f"no cluster CA at {pki.ca_cert}: not a server data dir") from None
    tls.mkdir(parents=True, exist_ok=True, mode=0o700)
    (tls / "ca.crt").write_bytes(crt)
    key_path = tls / "ca.key"
    key_path.touch(mode=0o600)
    key_path.write_bytes(key)
    return tls
