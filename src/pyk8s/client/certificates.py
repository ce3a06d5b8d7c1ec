"""Client certificates through the CertificateSigningRequest API: TLS bootstrap and rotation.

Why here: a kubelet (upstream's ``--bootstrap-kubeconfig`` / ``--rotate-certificates``)
and a joining agent (its kube-proxy identity) both get their client certificates the
same way, and both only talk to the API server, so the shared piece lives with the
client: make a key and a certificate request, create a CertificateSigningRequest, wait
for it to be approved and issued (a Denied or Failed request is an error), and keep the
result as one PEM file holding the certificate and its key (upstream's
``kubelet-client-current.pem``), with a kubeconfig pointing at that file.

:class:`CertificateManager` is upstream's certificate manager: it renews the
certificate when 70-90 % of its lifetime has passed (the point is jittered once per
certificate, as upstream, so a fleet does not renew at once), authenticating with the
certificate it is replacing, and tells its owner so the new one is used without a
restart (:meth:`pyk8s.client.Client.reload_client_certificate`).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import json
import logging
import os
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pyk8s.client.errors import ClientError
from pyk8s.client.rest import Client

__all__ = [
    "KUBELET_CLIENT_PEM",
    "SERVING_USAGES",
    "CertificateError",
    "CertificateManager",
    "certificate_subject",
    "certificate_validity",
    "new_key_pem",
    "read_pem_pair",
    "request_certificate",
    "rotation_deadline",
    "write_cert_kubeconfig",
    "write_client_kubeconfig",
    "write_pem_pair",
]

log = logging.getLogger(__name__)

CSR_API = "certificates.k8s.io/v1"
CSR_KIND = "CertificateSigningRequest"
CLIENT_USAGES = ("digital signature", "client auth")
#: a kubelet serving certificate's usages for an ECDSA key (upstream adds key
#: encipherment only for RSA)
SERVING_USAGES = ("digital signature", "server auth")
#: upstream's name for the kubelet's current client certificate and key
KUBELET_CLIENT_PEM = "kubelet-client-current.pem"
#: (DNS names, IP addresses) a serving certificate is for, asked before each request
SubjectAltNames = Callable[[], Awaitable[tuple[Sequence[str], Sequence[str]]]]
#: how often a serving certificate's names are compared with the wanted ones
TEMPLATE_CHECK = 60.0


class CertificateError(ClientError):
    """The certificate request was denied, failed, or not issued in time."""


def new_key_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def csr_pem(
    key_pem: bytes,
    common_name: str,
    organizations: Iterable[str] = (),
    dns_names: Iterable[str] = (),
    ips: Iterable[str] = (),
) -> bytes:
    """A PEM CERTIFICATE REQUEST for ``CN=common_name, O=organizations`` (+ SANs)."""
    key = serialization.load_pem_private_key(key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def certificate_names(cert_pem: bytes) -> tuple[list[str], list[str]]:
    """A certificate's (DNS names, IP addresses), each sorted."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    dns = sorted(set(san.get_values_for_type(x509.DNSName)))
    ips = sorted({str(ip) for ip in san.get_values_for_type(x509.IPAddress)})
    return dns, ips


def certificate_subject(cert_pem: bytes) -> tuple[str, list[str]]:
    """A certificate's (common name, organizations): the user and groups it names."""
    subject = x509.load_pem_x509_certificate(cert_pem).subject
    cns = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return (str(cns[0].value) if cns else "", [str(o.value) for o in orgs])


def certificate_validity(cert_pem: bytes) -> tuple[datetime.datetime, datetime.datetime]:
    cert = x509.load_pem_x509_certificate(cert_pem)
    return cert.not_valid_before_utc, cert.not_valid_after_utc


def rotation_deadline(
    not_before: datetime.datetime, not_after: datetime.datetime, rand: float | None = None
) -> datetime.datetime:
    """Upstream's ``nextRotationDeadline``: 70 % of the lifetime plus up to 20 % jitter."""
    total = (not_after - not_before).total_seconds()
    fraction = 0.7 + 0.2 * (random.random() if rand is None else rand)
    return not_before + datetime.timedelta(seconds=total * fraction)


def write_pem_pair(path: Path, cert_pem: bytes, key_pem: bytes) -> None:
    """Certificate then key in one PEM file (mode 0600), replaced atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(cert_pem.rstrip(b"\n") + b"\n" + key_pem)
    os.replace(tmp, path)


def read_pem_pair(path: Path) -> tuple[bytes, bytes] | None:
    """(certificate, key) PEMs from a :func:`write_pem_pair` file; None when missing,
    unreadable or expired."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head, sep, _tail = data.partition(b"-----END CERTIFICATE-----")
    if not sep:
        return None
    cert = head + sep + b"\n"
    key = data[len(head + sep) :].lstrip(b"\n")
    try:
        _, not_after = certificate_validity(cert)
        serialization.load_pem_private_key(key, None)
    except ValueError:
        return None
    if not_after <= datetime.datetime.now(datetime.UTC):
        return None
    return cert, key


def write_client_kubeconfig(
    path: Path, server: str, ca_pem: bytes, user: str, credentials: dict[str, str]
) -> None:
    """A kubeconfig (mode 0600, replaced atomically) trusting ``ca_pem`` and
    authenticating as ``credentials`` (kubeconfig user fields: ``token``, or
    ``client-certificate`` and ``client-key``)."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "default",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "user": user}}],
        "current-context": "default",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)  # JSON is YAML: kubectl and our client read it
    os.replace(tmp, path)


def write_cert_kubeconfig(
    path: Path, server: str, ca_pem: bytes, pem_file: Path, user: str
) -> None:
    """A kubeconfig whose client certificate and key are both read from ``pem_file``, as
    the kubelet's points at kubelet-client-current.pem."""
    credentials = {"client-certificate": str(pem_file), "client-key": str(pem_file)}
    write_client_kubeconfig(path, server, ca_pem, user, credentials)


async def request_certificate(
    client: Client,
    request: bytes,
    signer: str,
    usages: Sequence[str] = CLIENT_USAGES,
    *,
    expiration_seconds: int | None = None,
    within: float = 900.0,
    poll: float = 0.2,
) -> bytes:
    """Create a CertificateSigningRequest for ``request`` (PEM) and wait for its
    certificate; :class:`CertificateError` when it is denied, fails or times out."""
    spec: dict[str, object] = {
        "request": base64.b64encode(request).decode(),
        "signerName": signer,
        "usages": list(usages),
    }
    if expiration_seconds is not None:
        spec["expirationSeconds"] = expiration_seconds
    body = {
        "apiVersion": CSR_API,
        "kind": CSR_KIND,
        "metadata": {"generateName": "csr-"},
        "spec": spec,
    }
    resource = await client.resource(CSR_API, CSR_KIND)
    created = await client.create(resource, body)
    name = created["metadata"]["name"]
    log.info("certificate signing request created", extra={"csr": name, "signer": signer})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        csr = await client.get(resource, name)
        status = csr.get("status") or {}
        for c in status.get("conditions") or ():
            if c.get("type") in ("Denied", "Failed"):
                raise CertificateError(
                    f"certificate signing request {name} is {c['type']}: "
                    f"{c.get('reason', '')} {c.get('message', '')}".strip()
                )
        if status.get("certificate"):
            return base64.b64decode(status["certificate"])
        await asyncio.sleep(poll)
    raise CertificateError(f"certificate signing request {name} not issued within {within:.0f}s")


class CertificateManager:
    """Keeps one certificate (a :func:`write_pem_pair` file) valid: a client certificate
    obtained with ``bootstrap`` credentials when there is none and renewed with itself
    before expiry, or (with ``sans``) a kubelet serving certificate for the addresses
    ``sans`` returns at each request, as upstream's serving certificate manager asks the
    node's current addresses."""

    def __init__(
        self,
        pem_file: Path,
        common_name: str,
        organizations: Sequence[str],
        signer: str,
        *,
        usages: Sequence[str] = CLIENT_USAGES,
        expiration_seconds: int | None = None,
        sans: SubjectAltNames | None = None,
    ) -> None:
        self.pem_file = pem_file
        self.sans = sans
        self.common_name = common_name
        self.organizations = tuple(organizations)
        self.signer = signer
        self.usages = tuple(usages)
        self.expiration_seconds = expiration_seconds
        self._jitter = random.random()

    def current(self) -> tuple[bytes, bytes] | None:
        return read_pem_pair(self.pem_file)

    async def obtain(self, client: Client) -> tuple[bytes, bytes]:
        """A new key and certificate through ``client``, written to :attr:`pem_file`."""
        key = new_key_pem()
        dns_names, ips = await self.sans() if self.sans is not None else ((), ())
        request = csr_pem(key, self.common_name, self.organizations, dns_names, ips)
        cert = await request_certificate(
            client,
            request,
            self.signer,
            self.usages,
            expiration_seconds=self.expiration_seconds,
        )
        await asyncio.to_thread(write_pem_pair, self.pem_file, cert, key)
        self._jitter = random.random()
        return cert, key

    async def _names_wanted(self) -> bool:
        """The current certificate names exactly what ``sans`` returns now."""
        pair = self.current()
        if pair is None or self.sans is None:
            return False
        dns_names, ips = await self.sans()
        wanted_ips = sorted({str(ipaddress.ip_address(ip)) for ip in ips})
        return certificate_names(pair[0]) == (sorted(set(dns_names)), wanted_ips)

    def next_rotation(self) -> datetime.datetime | None:
        pair = self.current()
        if pair is None:
            return None
        return rotation_deadline(*certificate_validity(pair[0]), self._jitter)

    async def rotate_forever(
        self, client: Client, on_rotated: Callable[[Path], None], *, retry: float = 10.0
    ) -> None:
        """Renew at each rotation deadline through ``client`` (authenticated by the
        current certificate) and call ``on_rotated`` with the file; runs until cancelled.
        A serving certificate is also renewed as soon as it no longer names what ``sans``
        returns (upstream's manager renews when the template changed: a node's new
        address), looked at every :data:`TEMPLATE_CHECK` seconds."""
        while True:
            when = self.next_rotation()
            now = datetime.datetime.now(datetime.UTC)
            wait = 0.0 if when is None else (when - now).total_seconds()
            if wait > 0 and self.sans is not None and not await self._names_wanted():
                log.info("the certificate's names changed", extra={"file": str(self.pem_file)})
                wait = 0.0
            if wait > 0:
                ceiling = 3600.0 if self.sans is None else TEMPLATE_CHECK
                await asyncio.sleep(min(wait, ceiling))
                continue
            try:
                await self.obtain(client)
            except (ClientError, OSError) as err:
                log.warning("certificate rotation failed, retrying: %s", err)
                await asyncio.sleep(retry)
                continue
            log.info("certificate rotated", extra={"file": str(self.pem_file)})
            on_rotated(self.pem_file)
