"""nginx as the controller's child process, and the only way its configuration changes.

nginx gets its own prefix (``nginx.conf``, pid, logs, temp dirs, certificates) under the
controller's data dir, so several controllers (tests) run side by side and nothing of
Debian's ``/etc/nginx`` is touched. A new configuration is applied as: certificate
files (content-addressed, so the running config's stay valid) → ``nginx.conf.new`` →
``nginx -t`` on it → atomic rename over ``nginx.conf`` → SIGHUP to the master (what
``nginx -s reload`` sends; old workers finish their in-flight requests) → wait until
the status socket answers the new configuration's hash. A configuration ``nginx -t``
refuses never replaces the running one.

nginx dies with the controller (PDEATHSIG, so even a SIGKILLed controller leaves no
orphan) and is stopped gracefully (SIGQUIT) on :meth:`Nginx.stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import datetime
import logging
import os
import pwd
import signal
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pyk8s.ingress.render import Rendered

__all__ = ["NGINX", "Nginx", "NginxError", "self_signed", "write_default_certificate"]

log = logging.getLogger(__name__)

NGINX = "/usr/sbin/nginx"
_TEMP_DIRS = ("body", "proxy", "fastcgi", "uwsgi", "scgi")
#: upstream ingress-nginx's default certificate's subject
FAKE_CERT_CN = "Kubernetes Ingress Controller Fake Certificate"


class NginxError(Exception):
    """nginx refused a configuration, or would not start or reload."""


def self_signed(common_name: str, dns_name: str, days: int = 365) -> tuple[bytes, bytes]:
    """A self-signed certificate for ``dns_name`` and its key, PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def write_default_certificate(path: Path) -> None:
    """A self-signed certificate + key (one PEM file) for hosts without a usable Secret."""
    cert, key = self_signed(FAKE_CERT_CN, "ingress.local")
    _write_private(path, cert + key)


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and fields[2] == str(pgid):
            return True
    return False


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Nginx:
    """One nginx master under ``prefix``."""

    def __init__(self, prefix: Path, binary: str = NGINX) -> None:
        self.prefix = prefix.resolve()
        self.binary = binary
        self.proc: asyncio.subprocess.Process | None = None
        self.live_hash = ""
        #: seconds the last successful apply took (test + swap + reload until live)
        self.last_reload_seconds = 0.0

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def status_socket(self) -> Path:
        return self.prefix / "status.sock"

    @property
    def default_certificate(self) -> Path:
        return self.prefix / "ssl" / "default.pem"

    def prepare(self) -> None:
        """The prefix's directories; workers (``nobody`` when we are root) own the temp
        dirs (its parents must let them through); certificates are readable only by us
        (the master reads them)."""
        for sub in ("logs", "ssl", *(f"temp/{d}" for d in _TEMP_DIRS)):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        (self.prefix / "ssl").chmod(0o700)
        self.prefix.chmod(0o711)  # workers reach temp/ (large request bodies), list nothing
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            for d in _TEMP_DIRS:
                os.chown(self.prefix / "temp" / d, nobody.pw_uid, nobody.pw_gid)
        if not self.default_certificate.exists():
            write_default_certificate(self.default_certificate)

    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def test(self, conf: Path) -> None:
        """``nginx -t`` on ``conf``; NginxError with nginx's words if it refuses."""
        proc = await asyncio.create_subprocess_exec(
            self.binary, "-t", "-q", "-p", str(self.prefix), "-c", str(conf),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise NginxError(out.decode(errors="replace").strip())

    async def apply(self, rendered: Rendered, live_within: float = 10.0) -> None:
        """Make ``rendered`` nginx's configuration, or raise NginxError keeping the old."""
        started = time.monotonic()
        for relative, data in rendered.files.items():
            path = self.prefix / relative
            if not path.exists():
                _write_private(path, data)
        candidate = self.prefix / "nginx.conf.new"
        candidate.write_text(rendered.config)
        await self.test(candidate)
        os.replace(candidate, self.conf)
        if self.running():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGHUP)
        else:
            await self.start()
        await self._wait_live(rendered.hash, live_within)
        self.live_hash = rendered.hash
        self.last_reload_seconds = time.monotonic() - started
        self._forget_certificates(set(rendered.files))

    async def start(self) -> None:
        """Start nginx (again): a master that died by SIGKILL leaves its workers holding
        the listening sockets, so its process group goes first."""
        if self.proc is not None:
            self._kill_group(self.proc.pid)
            for _ in range(200):  # until the kernel has closed their sockets (bounded)
                if not _group_alive(self.proc.pid):
                    break
                await asyncio.sleep(0.01)
        self.status_socket.unlink(missing_ok=True)
        self.proc = await asyncio.create_subprocess_exec(
            self.binary, "-p", str(self.prefix), "-c", str(self.conf), "-g", "daemon off;",
            preexec_fn=_die_with_parent, start_new_session=True,
        )  # fmt: skip
        log.info("nginx started", extra={"pid": self.proc.pid, "prefix": str(self.prefix)})

    async def _wait_live(self, digest: str, within: float, agreeing: int = 4) -> None:
        """Until ``agreeing`` connections in a row answer ``digest``: right after a
        reload the old workers may still accept a connection or two before the master
        tells them to stop listening."""
        deadline = time.monotonic() + within
        streak = 0
        while time.monotonic() < deadline:
            if not self.running():
                raise NginxError(f"nginx exited with {self.proc.returncode if self.proc else '?'}")
            streak = streak + 1 if await self.live() == digest else 0
            if streak >= agreeing:
                return
            await asyncio.sleep(0.002 if streak else 0.005)
        raise NginxError(f"nginx did not load configuration {digest} within {within}s")

    async def live(self) -> str:
        """The configuration hash the workers answer with ("" if none answers)."""
        try:
            reader, writer = await asyncio.open_unix_connection(str(self.status_socket))
        except OSError:
            return ""
        try:
            writer.write(b"GET /configuration-hash HTTP/1.0\r\nHost: status\r\n\r\n")
            async with asyncio.timeout(2.0):  # not wait_for: it can swallow a cancellation
                data = await reader.read()
        except (OSError, TimeoutError):
            return ""
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        head, _, body = data.partition(b"\r\n\r\n")
        return body.decode().strip() if head.startswith(b"HTTP/1.1 200") else ""

    def _forget_certificates(self, keep: set[str]) -> None:
        for path in (self.prefix / "ssl").glob("*.pem"):
            relative = f"ssl/{path.name}"
            if path != self.default_certificate and relative not in keep:
                path.unlink(missing_ok=True)

    async def stop(self, grace: float = 10.0) -> None:
        """Graceful (SIGQUIT: workers finish what they serve), then SIGKILL."""
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGQUIT)
        try:
            async with asyncio.timeout(grace):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
        self._kill_group(proc.pid)
        log.info("nginx stopped", extra={"code": proc.returncode})

    @staticmethod
    def _kill_group(pid: int) -> None:
        """SIGKILL what is left of the process group nginx's master led (its own
        session: nothing else is in it)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
