"""``pyk8s certificate check|rotate``: the server's component certificates (k3s's
``certificate`` command).

Why: every component of ``pyk8s server`` talks TLS with a certificate from the cluster
CA, and an operator needs to see what expires when and to replace certificates by
hand (a suspected key leak, a changed policy). ``check`` reads the files only;
``rotate`` moves the chosen services' certificates and keys to a backup directory
``DATA_DIR/server/tls/tls-<unix seconds>`` (as k3s does), and the next start of ``pyk8s
server`` issues new ones from the same CA, so nothing that trusts the CA needs to
change. Component certificates (``server/cred/<component>.pem``, named by their
kubeconfigs) get a new certificate at every start anyway and are renewed by the running
server 90 days before expiry, and the kubelet renews its own through CSRs.
"""

from __future__ import annotations

import datetime
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from pyk8s.apiserver.certs import RENEW_BEFORE
from pyk8s.client.config import load_kubeconfig

__all__ = ["SERVICES", "CertInfo", "check", "format_check", "rotate"]

#: service -> its certificate files under DATA_DIR/server/tls (k3s's service names)
TLS_FILES: dict[str, tuple[str, ...]] = {
    "admin": ("admin.crt",),
    "api-server": ("serving.crt", "apiserver-kubelet-client.crt"),
    "auth-proxy": ("front-proxy-client.crt",),
}
#: service -> its kubeconfig under DATA_DIR/server/cred
KUBECONFIGS: dict[str, str] = {
    "controller-manager": "controller-manager.kubeconfig",
    "scheduler": "scheduler.kubeconfig",
    "kube-proxy": "proxy.kubeconfig",
    "dns": "dns.kubeconfig",
    "kubelet": "kubelet.kubeconfig",
    # the add-ons' identities (pyk8s.server.addon_identities); k3s's name for the first
    "cloud-controller": "cloud-controller-manager.kubeconfig",
    "metrics-server": "metrics-server.kubeconfig",
    "metrics-adapter": "metrics-adapter.kubeconfig",
    "ingress-controller": "ingress-controller.kubeconfig",
    "csi-hostpath": "csi-hostpath.kubeconfig",
}
SERVICES = (*TLS_FILES, *KUBECONFIGS)


@dataclass(frozen=True, slots=True)
class CertInfo:
    service: str
    file: Path
    subject: str
    usages: str
    not_after: datetime.datetime

    def remaining(self, now: datetime.datetime) -> datetime.timedelta:
        return self.not_after - now

    def status(self, now: datetime.datetime) -> str:
        left = self.remaining(now)
        if left <= datetime.timedelta(0):
            return "EXPIRED"
        return "WARNING" if left < RENEW_BEFORE else "OK"


def _usages(cert: x509.Certificate) -> str:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return "<none>"
    names = {
        ExtendedKeyUsageOID.SERVER_AUTH: "ServerAuth",
        ExtendedKeyUsageOID.CLIENT_AUTH: "ClientAuth",
    }
    return ",".join(names.get(u, u.dotted_string) for u in eku)


def _info(service: str, file: Path, pem: bytes) -> CertInfo:
    cert = x509.load_pem_x509_certificate(pem)
    return CertInfo(
        service, file, cert.subject.rfc4514_string(), _usages(cert), cert.not_valid_after_utc
    )


def _unknown(services: Sequence[str]) -> None:
    for name in services:
        if name not in SERVICES:
            raise ValueError(f"unknown service {name!r}; one of {', '.join(SERVICES)}")


def check(data_dir: Path, services: Sequence[str] = ()) -> list[CertInfo]:
    """The certificates of ``services`` (all when empty) that exist, in service order."""
    _unknown(services)
    server = data_dir / "server"
    out: list[CertInfo] = []
    for service in services or SERVICES:
        for name in TLS_FILES.get(service, ()):
            path = server / "tls" / name
            if path.exists():
                out.append(_info(service, path, path.read_bytes()))
        if service in KUBECONFIGS:
            path = server / "cred" / KUBECONFIGS[service]
            if not path.exists():
                continue
            cfg = load_kubeconfig(path)
            if cfg.cert_data:
                out.append(_info(service, path, cfg.cert_data))
            elif cfg.cert_file and Path(cfg.cert_file).exists():
                cert_path = Path(cfg.cert_file)
                out.append(_info(service, cert_path, cert_path.read_bytes()))
    return out


def format_check(infos: Sequence[CertInfo], output: str, now: datetime.datetime) -> str:
    """k3s's outputs: a line per certificate (``text``) or its table."""
    if output == "table":
        rows = [["FILENAME", "SUBJECT", "USAGES", "EXPIRES", "RESIDUAL TIME", "STATUS"]]
        for i in infos:
            days = i.remaining(now).days
            rows.append(
                [
                    i.file.name,
                    i.subject,
                    i.usages,
                    i.not_after.strftime("%b %d, %Y %H:%M UTC"),
                    f"{days}d" if days >= 0 else "0d",
                    i.status(now),
                ]
            )
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
        return "\n".join(
            "".join(c.ljust(w + 2) for c, w in zip(r, widths, strict=False)) + r[-1] for r in rows
        )
    lines = []
    for i in infos:
        state = {"OK": "is ok", "WARNING": "will expire soon", "EXPIRED": "has expired"}[
            i.status(now)
        ]
        lines.append(
            f"{i.service}: certificate {i.file.name} ({i.subject}) {state}, expires at "
            f"{i.not_after.strftime('%Y-%m-%dT%H:%M:%SZ')} ({i.remaining(now).days} days left)"
        )
    return "\n".join(lines)


def rotate(data_dir: Path, services: Sequence[str] = ()) -> Path:
    """Move the certificates (and keys) of ``services`` (all when empty) to a new backup
    directory, which is returned; the next server start issues new ones."""
    _unknown(services)
    tls = data_dir / "server" / "tls"
    if not (tls / "ca.crt").exists():
        raise FileNotFoundError(f"no cluster CA at {tls / 'ca.crt'}: not a server data dir")
    backup = tls / f"tls-{int(time.time())}"
    backup.mkdir(mode=0o700)
    for service in services or SERVICES:
        for name in TLS_FILES.get(service, ()):
            for path in (tls / name, tls / name.replace(".crt", ".key")):
                if path.exists():
                    shutil.move(path, backup / path.name)
        if service in KUBECONFIGS:
            path = data_dir / "server" / "cred" / KUBECONFIGS[service]
            if path.exists():
                # the certificate file the kubeconfig names (the kubelet's comes from a
                # CSR: without it, its next start bootstraps a new one with the join token)
                cfg = load_kubeconfig(path)
                for file in (cfg.cert_file, cfg.key_file):
                    if file and os.path.exists(file):
                        shutil.move(file, backup / Path(file).name)
            if path.exists():
                shutil.move(path, backup / path.name)
    return backup
