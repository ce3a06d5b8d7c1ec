"""The cluster's PKI: one CA, the API server's serving cert, client certs, the SA key.

Why this exists: kubectl and the official clients speak to the API server only over TLS,
and upstream identifies most callers (the admin, kubelets, controllers) by client
certificates whose subject carries the user (CN) and groups (O). Like k3s, ``pyk8s
server`` creates all of it on first start under ``<data-dir>/tls/`` and reuses it on
every later start, so kubeconfigs already handed out keep working:

* ``ca.crt``/``ca.key`` -- self-signed CA (10 years) that signs everything else and that
  clients trust (``certificate-authority-data``). After ``pyk8s certificate rotate-ca``
  (:mod:`pyk8s.server.rotateca`) ``ca.crt`` is a bundle: the signing CA first, then the
  previous one, so certificates of either are trusted; ``ca-chain.crt`` then holds the
  new CA cross-signed by the previous one, appended to every leaf written here, so a
  client that trusts only the previous CA still verifies them;
* ``serving.crt``/``serving.key`` -- the API server's cert (1 year); its SANs cover
  loopback, this host's name and addresses, the in-cluster ``kubernetes.default.svc…``
  names and whatever the caller adds. It is the only file regenerated when the wanted
  SANs change, so clients trusting the CA never notice;
* ``admin.crt``/``admin.key`` -- ``CN=system:admin, O=system:masters`` for the admin
  kubeconfig;
* ``apiserver-kubelet-client.crt``/``.key`` -- ``CN=kube-apiserver-kubelet-client,
  O=system:masters``: what the API server presents to kubelets when it proxies logs,
  exec, attach and port-forward (kubeadm's file of the same name);
* ``sa.key``/``sa.pub`` -- the key pair that signs service-account tokens (JWT, ES256);
* ``front-proxy-ca.crt``/``.key`` -- a second CA, for API aggregation only (kubeadm's
  names): it signs ``front-proxy-client.crt``/``.key`` (``CN=front-proxy-client``), the
  certificate the API server presents to extension API servers when it proxies a request
  to them, which lets them trust the ``X-Remote-User``/``-Group``/``-Extra-`` headers it
  sends. A separate CA, so that no cluster client certificate can assert other identities.

Keys are ECDSA P-256 (Go's crypto/tls, OpenSSL and so Python's ``ssl`` all accept them;
they are small and fast to make). Key files are written mode 0600, atomically, under an
``flock`` so two processes starting at once agree on one CA. Certificates carry the
extensions strict verifiers insist on (Python 3.13's ``VERIFY_X509_STRICT``): key usage,
extended key usage, subject and authority key identifiers. Serving certs are
``serverAuth`` only, client certs ``clientAuth`` only, so the serving cert can't be
replayed as a client identity.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import fcntl
import ipaddress
import json
import os
import shutil
import socket
import ssl
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "ADMIN_GROUP",
    "ADMIN_USER",
    "DEFAULT_DNS_NAMES",
    "FRONT_PROXY_CLIENT_USER",
    "KUBELET_CLIENT_USER",
    "Pki",
    "cross_signed",
    "ensure_pki",
    "install_ca",
    "issue_client_cert",
    "issued_by_ca",
    "new_rotated_ca",
    "server_ssl_context",
    "write_kubeconfig",
]

ADMIN_USER = "system:admin"
ADMIN_GROUP = "system:masters"
#: the identity the API server uses towards kubelets (upstream's kubeadm name)
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"
#: the identity the API server uses towards extension API servers (kubeadm's name)
FRONT_PROXY_CLIENT_USER = "front-proxy-client"

#: Names every serving cert carries, whatever the caller asks for.
DEFAULT_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
DEFAULT_IPS = ("127.0.0.1", "::1")

CA_VALIDITY = datetime.timedelta(days=3650)
LEAF_VALIDITY = datetime.timedelta(days=365)
#: A leaf cert with less than this left is renewed on the next ``ensure_pki`` (k3s: 90 days).
RENEW_BEFORE = datetime.timedelta(days=90)
#: Back-date ``notBefore`` so nodes with slightly slow clocks accept fresh certs.
CLOCK_SKEW = datetime.timedelta(hours=1)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Pki:
    """Where the PKI files live (all PEM)."""

    dir: Path
    ca_cert: Path
    ca_key: Path
    #: intermediates sent with the leaves (rotate-ca's cross-signed CA), when present
    ca_chain: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    kubelet_client_cert: Path
    kubelet_client_key: Path
    sa_key: Path
    sa_pub: Path
    front_proxy_ca_cert: Path
    front_proxy_ca_key: Path
    front_proxy_client_cert: Path
    front_proxy_client_key: Path

    @classmethod
    def at(cls, tls_dir: Path) -> Pki:
        """The file layout under ``tls_dir`` (nothing is read or created)."""
        return cls(
            dir=tls_dir,
            ca_cert=tls_dir / "ca.crt",
            ca_key=tls_dir / "ca.key",
            ca_chain=tls_dir / "ca-chain.crt",
            serving_cert=tls_dir / "serving.crt",
            serving_key=tls_dir / "serving.key",
            admin_cert=tls_dir / "admin.crt",
            admin_key=tls_dir / "admin.key",
            kubelet_client_cert=tls_dir / "apiserver-kubelet-client.crt",
            kubelet_client_key=tls_dir / "apiserver-kubelet-client.key",
            sa_key=tls_dir / "sa.key",
            sa_pub=tls_dir / "sa.pub",
            front_proxy_ca_cert=tls_dir / "front-proxy-ca.crt",
            front_proxy_ca_key=tls_dir / "front-proxy-ca.key",
            front_proxy_client_cert=tls_dir / "front-proxy-client.crt",
            front_proxy_client_key=tls_dir / "front-proxy-client.key",
        )


# --------------------------------------------------------------------------- helpers


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # SEC1 "EC PRIVATE KEY", as k3s writes; Go, OpenSSL and the Python client all read it.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` with ``mode`` from the first byte, then rename in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _locked(tls_dir: Path) -> Iterator[None]:
    tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(tls_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _load_ec_key(path: Path) -> ec.EllipticCurvePrivateKey | None:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    return key if isinstance(key, ec.EllipticCurvePrivateKey) else None


def _load_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _same_public_key(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert.public_key().public_bytes(*fmt) == key.public_key().public_bytes(*fmt)


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _name(cn: str, orgs: Iterable[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _sign_leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    *,
    server: bool,
    dns_names: Iterable[str] = (),
    ips: Iterable[IPAddress] = (),
    validity: datetime.timedelta = LEAF_VALIDITY,
    client_too: bool = False,
) -> x509.Certificate:
    now = _now()
    usages = [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
    if client_too and server:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(min(now + validity, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    sans += [x509.IPAddress(i) for i in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _make_ca(prefix: str = "pyk8s-ca") -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    now = _now()
    subject = _name(f"{prefix}@{int(now.timestamp())}")
    cert = _ca_builder(subject, subject, key, now + CA_VALIDITY).sign(key, hashes.SHA256())
    return cert, key


def _ca_builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    not_after: datetime.datetime,
) -> x509.CertificateBuilder:
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def cross_signed(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    """``ca``'s subject and key, signed by ``issuer``: sent as an intermediate with the
    leaves ``ca`` signs, it lets a client that trusts only ``issuer`` verify them. It
    lives no longer than either CA."""
    not_after = min(ca.not_valid_after_utc, issuer.not_valid_after_utc)
    builder = _ca_builder(ca.subject, issuer.subject, ca_key, not_after).add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
        critical=False,
    )
    return builder.sign(issuer_key, hashes.SHA256())


def _host_names_and_ips() -> tuple[set[str], set[IPAddress]]:
    """This host's name(s) and the addresses they resolve to (best effort, no DNS waits)."""
    names: set[str] = set()
    ips: set[IPAddress] = set()
    for n in (socket.gethostname(), socket.getfqdn()):
        if n:
            names.add(n.lower())
    for n in list(names):
        try:
            infos = socket.getaddrinfo(n, None, proto=socket.IPPROTO_TCP)
        except OSError:
            continue
        for info in infos:
            addr = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone id
            with contextlib.suppress(ValueError):
                ips.add(ipaddress.ip_address(addr))
    return names, ips


def _wanted_sans(hostnames: Iterable[str], ips: Iterable[str]) -> tuple[set[str], set[IPAddress]]:
    dns, addrs = _host_names_and_ips()
    dns.update(DEFAULT_DNS_NAMES)
    addrs.update(ipaddress.ip_address(i) for i in DEFAULT_IPS)
    for h in hostnames:
        try:  # an address passed as a host name still belongs in the IP SANs
            addrs.add(ipaddress.ip_address(h))
        except ValueError:
            dns.add(h.lower())
    addrs.update(ipaddress.ip_address(i) for i in ips)
    return dns, addrs


def _cert_sans(cert: x509.Certificate) -> tuple[set[str], set[IPAddress]]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    dns = {d.lower() for d in ext.get_values_for_type(x509.DNSName)}
    addrs: set[IPAddress] = set()
    for a in ext.get_values_for_type(x509.IPAddress):
        if isinstance(a, ipaddress.IPv4Address | ipaddress.IPv6Address):
            addrs.add(a)
    return dns, addrs


def _leaf_usable(
    cert: x509.Certificate | None,
    key: ec.EllipticCurvePrivateKey | None,
    ca: x509.Certificate,
) -> bool:
    if cert is None or key is None:
        return False
    return (
        _same_public_key(cert, key)
        and _issued_by(cert, ca)
        and cert.not_valid_after_utc - _now() > RENEW_BEFORE
    )


# --------------------------------------------------------------------------- public API


def ensure_pki(data_dir: Path, *, hostnames: list[str], ips: list[str]) -> Pki:
    """Create or reuse the PKI under ``data_dir/tls`` and return its paths.

    Reuses every file that is still good: the CA while it is unexpired; each leaf while it
    matches its key, is signed by the CA and has more than :data:`RENEW_BEFORE` left; the
    serving cert additionally only while its SANs are exactly the wanted ones. A new CA
    (first start, or the old one expired/unreadable) reissues every leaf. The SA key pair
    is made once and kept (rotating it would invalidate every issued token).
    """
    pki = Pki.at(Path(data_dir) / "tls")
    want_dns, want_ips = _wanted_sans(hostnames, ips)
    with _locked(pki.dir):
        os.chmod(pki.dir, 0o700)
        ca = _load_cert(pki.ca_cert)
        ca_key = _load_ec_key(pki.ca_key)
        if (
            ca is None
            or ca_key is None
            or not _same_public_key(ca, ca_key)
            or ca.not_valid_after_utc <= _now()
        ):
            ca, ca_key = _make_ca()
            _write_atomic(pki.ca_key, _key_pem(ca_key), 0o600)
            _write_atomic(pki.ca_cert, _cert_pem(ca), 0o644)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(pki.ca_chain)  # a chain to an older CA is no chain to this one
        chain = _chain_pem(pki)

        serving = _load_cert(pki.serving_cert)
        serving_key = _load_ec_key(pki.serving_key)
        if not _leaf_usable(serving, serving_key, ca) or (
            serving is not None and _cert_sans(serving) != (want_dns, want_ips)
        ):
            serving_key = serving_key or _new_key()
            serving = _sign_leaf(
                ca,
                ca_key,
                serving_key,
                _name("kube-apiserver"),
                server=True,
                dns_names=sorted(want_dns),
                ips=sorted(want_ips, key=lambda a: (a.version, int(a))),
            )
            _write_atomic(pki.serving_key, _key_pem(serving_key), 0o600)
            _write_atomic(pki.serving_cert, _cert_pem(serving) + chain, 0o644)

        admin = _load_cert(pki.admin_cert)
        admin_key = _load_ec_key(pki.admin_key)
        if not _leaf_usable(admin, admin_key, ca):
            admin_key = _new_key()
            admin = _sign_leaf(
                ca, ca_key, admin_key, _name(ADMIN_USER, [ADMIN_GROUP]), server=False
            )
            _write_atomic(pki.admin_key, _key_pem(admin_key), 0o600)
            _write_atomic(pki.admin_cert, _cert_pem(admin) + chain, 0o644)

        kc_cert, kc_key = _load_cert(pki.kubelet_client_cert), _load_ec_key(pki.kubelet_client_key)
        if not _leaf_usable(kc_cert, kc_key, ca):
            kc_key = _new_key()
            subject = _name(KUBELET_CLIENT_USER, [ADMIN_GROUP])
            kc_cert = _sign_leaf(ca, ca_key, kc_key, subject, server=False)
            _write_atomic(pki.kubelet_client_key, _key_pem(kc_key), 0o600)
            _write_atomic(pki.kubelet_client_cert, _cert_pem(kc_cert) + chain, 0o644)

        _ensure_front_proxy(pki)

        sa_key = _load_ec_key(pki.sa_key)
        if sa_key is None:
            sa_key = _new_key()
            _write_atomic(pki.sa_key, _key_pem(sa_key), 0o600)
        sa_pub = sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        try:
            pub_ok = pki.sa_pub.read_bytes() == sa_pub
        except OSError:
            pub_ok = False
        if not pub_ok:
            _write_atomic(pki.sa_pub, sa_pub, 0o644)
    return pki


def _ensure_front_proxy(pki: Pki) -> None:
    """The front-proxy CA (kept while unexpired) and its client cert (renewed like the
    other leaves; reissued with a new CA)."""
    ca = _load_cert(pki.front_proxy_ca_cert)
    ca_key = _load_ec_key(pki.front_proxy_ca_key)
    if (
        ca is None
        or ca_key is None
        or not _same_public_key(ca, ca_key)
        or ca.not_valid_after_utc <= _now()
    ):
        ca, ca_key = _make_ca("pyk8s-front-proxy-ca")
        _write_atomic(pki.front_proxy_ca_key, _key_pem(ca_key), 0o600)
        _write_atomic(pki.front_proxy_ca_cert, _cert_pem(ca), 0o644)
    cert = _load_cert(pki.front_proxy_client_cert)
    key = _load_ec_key(pki.front_proxy_client_key)
    if not _leaf_usable(cert, key, ca):
        key = _new_key()
        cert = _sign_leaf(ca, ca_key, key, _name(FRONT_PROXY_CLIENT_USER), server=False)
        _write_atomic(pki.front_proxy_client_key, _key_pem(key), 0o600)
        _write_atomic(pki.front_proxy_client_cert, _cert_pem(cert), 0o644)


def new_rotated_ca(pki: Pki) -> tuple[bytes, bytes]:
    """A new cluster CA for ``pyk8s certificate rotate-ca --generate``: ``(ca.crt,
    ca.key)`` PEM, the certificate file holding the new self-signed CA followed by the
    same CA cross-signed by the current one."""
    current, current_key = _load_cert(pki.ca_cert), _load_ec_key(pki.ca_key)
    if current is None or current_key is None or not _same_public_key(current, current_key):
        raise FileNotFoundError(f"no usable cluster CA in {pki.dir}")
    ca, key = _make_ca()
    if ca.subject == current.subject:  # made within the same second as the current one
        ca, key = _make_ca("pyk8s-ca-next")
    cross = cross_signed(ca, key, current, current_key)
    return _cert_pem(ca) + _cert_pem(cross), _key_pem(key)


def install_ca(pki: Pki, *, bundle: bytes, key: bytes, chain: bytes, backup: Path) -> None:
    """Replace the cluster CA (rotate-ca, after its checks): the current files are copied
    to ``backup`` first; ``ca.crt`` is written last, under the lock ensure_pki takes, so a
    running server sees the old CA or the whole new one."""
    with _locked(pki.dir):
        backup.mkdir(mode=0o700)
        for path in (pki.ca_cert, pki.ca_key, pki.ca_chain):
            if path.exists():
                shutil.copy2(path, backup / path.name)
        _write_atomic(pki.ca_key, key, 0o600)
        if chain:
            _write_atomic(pki.ca_chain, chain, 0o644)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(pki.ca_chain)
        _write_atomic(pki.ca_cert, bundle, 0o644)


def server_ssl_context(pki: Pki, extra_client_cas: Iterable[Path] = ()) -> ssl.SSLContext:
    """The API server's TLS context: our serving cert; client certs optional but, when
    presented, verified against the cluster CA, the front-proxy CA or ``extra_client_cas``
    (an unknown one fails the handshake; which CA signed it decides what the
    authenticators make of it)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(pki.serving_cert, pki.serving_key)
    ctx.load_verify_locations(cafile=pki.ca_cert)
    for ca in {pki.front_proxy_ca_cert, *extra_client_cas}:
        if ca.exists():
            ctx.load_verify_locations(cafile=ca)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    # aiohttp serves HTTP/1.1 only; say so, so Go clients don't try h2.
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def issue_client_cert(
    pki: Pki,
    cn: str,
    groups: Iterable[str] = (),
    *,
    validity: datetime.timedelta = LEAF_VALIDITY,
) -> tuple[bytes, bytes]:
    """A client cert for user ``cn`` in ``groups`` (O=), signed by the cluster CA.

    Returns ``(cert_pem, key_pem)``; nothing is written to disk.
    """
    ca = _load_cert(pki.ca_cert)
    ca_key = _load_ec_key(pki.ca_key)
    if ca is None or ca_key is None:
        raise FileNotFoundError(f"no usable CA in {pki.dir}; call ensure_pki first")
    key = _new_key()
    cert = _sign_leaf(ca, ca_key, key, _name(cn, groups), server=False, validity=validity)
    return _cert_pem(cert), _key_pem(key)


def issued_by_ca(pki: Pki, cert_pem: bytes) -> bool:
    """Whether the (first) certificate of ``cert_pem`` is signed by the signing cluster
    CA; False when either does not parse."""
    ca = _load_cert(pki.ca_cert)
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return False
    return ca is not None and _issued_by(cert, ca)


def ensure_leaf(
    pki: Pki,
    cert_path: Path,
    key_path: Path,
    cn: str,
    *,
    server: bool,
    client_too: bool = False,
    hostnames: Iterable[str] = (),
    ips: Iterable[str] = (),
) -> None:
    """Keep or (re)issue one leaf signed by the cluster CA, renewed like ensure_pki's:
    kept while it matches its key, the CA and (for a serving one) the wanted SANs, with
    more than :data:`RENEW_BEFORE` left. Used for the embedded etcd's certificates."""
    ca = _load_cert(pki.ca_cert)
    ca_key = _load_ec_key(pki.ca_key)
    if ca is None or ca_key is None:
        raise FileNotFoundError(f"no usable CA in {pki.dir}; call ensure_pki first")
    dns: set[str] = set()
    addrs: set[IPAddress] = set()
    if server:
        dns, addrs = _wanted_sans(hostnames, ips)
    with _locked(cert_path.parent):
        cert, key = _load_cert(cert_path), _load_ec_key(key_path)
        if _leaf_usable(cert, key, ca) and (
            not server or (cert is not None and _cert_sans(cert) == (dns, addrs))
        ):
            return
        key = key or _new_key()
        cert = _sign_leaf(
            ca,
            ca_key,
            key,
            _name(cn),
            server=server,
            client_too=client_too,
            dns_names=sorted(dns),
            ips=sorted(addrs, key=lambda a: (a.version, int(a))),
        )
        _write_atomic(key_path, _key_pem(key), 0o600)
        _write_atomic(cert_path, _cert_pem(cert) + _chain_pem(pki), 0o644)


def _chain_pem(pki: Pki) -> bytes:
    try:
        return pki.ca_chain.read_bytes()
    except FileNotFoundError:
        return b""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    pki: Pki,
    user: str = "default",
    cluster: str = "default",
    client_cert: tuple[bytes, bytes] | None = None,
    token: str | None = None,
) -> None:
    """Write a self-contained kubeconfig (mode 0600) the way k3s writes ``k3s.yaml``.

    The CA, client cert and key are embedded as ``*-data``. The client identity is the
    admin cert unless ``client_cert=(cert_pem, key_pem)`` or a bearer ``token`` is given.
    The context is named after ``cluster`` and is the current one.
    """
    q = json.dumps  # a JSON string is a valid YAML scalar, whatever it contains
    ca_pem = pki.ca_cert.read_bytes()
    lines = [
        "apiVersion: v1",
        "clusters:",
        "- cluster:",
        f"    certificate-authority-data: {_b64(ca_pem)}",
        f"    server: {q(server)}",
        f"  name: {q(cluster)}",
        "contexts:",
        "- context:",
        f"    cluster: {q(cluster)}",
        f"    user: {q(user)}",
        f"  name: {q(cluster)}",
        f"current-context: {q(cluster)}",
        "kind: Config",
        "preferences: {}",
        "users:",
        f"- name: {q(user)}",
        "  user:",
    ]
    if token is not None:
        lines.append(f"    token: {q(token)}")
    else:
        cert_pem, key_pem = client_cert or (pki.admin_cert.read_bytes(), pki.admin_key.read_bytes())
        lines.append(f"    client-certificate-data: {_b64(cert_pem)}")
        lines.append(f"    client-key-data: {_b64(key_pem)}")
    _write_atomic(Path(path), ("\n".join(lines) + "\n").encode(), 0o600)
