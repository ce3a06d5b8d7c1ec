"""Renewal of the API server's own certificates while it runs (k3s renews 90 days
before expiry).

Why: ``ensure_pki`` renews a leaf with less than 90 days left, but only when it runs,
which used to be at start: a server up for ten months would serve an expired
certificate. Every hour this runs ``ensure_pki`` again with the start's SANs; when the
serving certificate changed it is loaded into the running TLS context (new handshakes
present it, open connections keep theirs), and when the admin certificate changed the
admin kubeconfig is rewritten. The components' client certificates
(``server/cred/<component>.pem``) are renewed in the same pass
(:func:`pyk8s.server.identities.renew_component_credentials`); each component's client
loads the new file before its next request. Nothing restarts.

``ca.crt`` is also looked at every :data:`CA_POLL` seconds: when ``pyk8s certificate
rotate-ca`` (:mod:`pyk8s.server.rotateca`) installed a new CA, the same pass runs at
once, adds the new CA to the CAs client certificates are verified against, and so
re-issues every leaf from it (ensure_pki renews a leaf its CA did not sign).

:class:`CertFollower` is the other side, in an ``--apiserver-workers`` worker: it writes
nothing, and loads what the primary's renewer wrote into the worker's TLS context.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections.abc import Callable
from pathlib import Path

from pyk8s.apiserver.certs import Pki, ensure_pki
from pyk8s.server.identities import renew_component_credentials

__all__ = ["CertFollower", "CertRenewer"]

log = logging.getLogger(__name__)

#: how often the certificates' remaining lifetime is checked
CHECK_INTERVAL = 3600.0
#: how often ``ca.crt`` is looked at for a rotated CA
CA_POLL = 2.0


class CertRenewer:
    """Checks and renews the PKI under ``tls_parent`` every ``interval`` seconds."""

    def __init__(
        self,
        tls_parent: Path,
        ctx: ssl.SSLContext,
        *,
        hostnames: list[str],
        ips: list[str],
        on_admin_renewed: Callable[[Pki], None] | None = None,
        interval: float = CHECK_INTERVAL,
        ca_poll: float = CA_POLL,
    ) -> None:
        self.tls_parent = tls_parent
        self.ctx = ctx
        self.hostnames = hostnames
        self.ips = ips
        self.on_admin_renewed = on_admin_renewed
        self.interval = interval
        self.ca_poll = ca_poll
        self._ca = _read(Pki.at(tls_parent / "tls").ca_cert)
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> bool:
        """One pass; True when something was renewed."""
        pki = Pki.at(self.tls_parent / "tls")
        before = {p: _read(p) for p in (pki.serving_cert, pki.admin_cert)}
        await asyncio.to_thread(ensure_pki, self.tls_parent, hostnames=self.hostnames, ips=self.ips)
        renewed = False
        ca = _read(pki.ca_cert)
        if ca != self._ca:
            # client certificates of the new CA verify from now on (those of the old one
            # still do: the bundle holds both, and the context only ever adds CAs)
            self.ctx.load_verify_locations(cafile=pki.ca_cert)
            self._ca = ca
            log.info("the cluster CA changed", extra={"file": str(pki.ca_cert)})
            renewed = True
        if _read(pki.serving_cert) != before[pki.serving_cert]:
            self.ctx.load_cert_chain(pki.serving_cert, pki.serving_key)
            log.info("renewed the serving certificate", extra={"file": str(pki.serving_cert)})
            renewed = True
        if _read(pki.admin_cert) != before[pki.admin_cert]:
            if self.on_admin_renewed is not None:
                self.on_admin_renewed(pki)
            log.info("renewed the admin certificate", extra={"file": str(pki.admin_cert)})
            renewed = True
        components = await asyncio.to_thread(renew_component_credentials, pki)
        if components:
            log.info("renewed component certificates", extra={"components": components})
            renewed = True
        return renewed

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="cert-renewer")

    async def _loop(self) -> None:
        ca_cert = Pki.at(self.tls_parent / "tls").ca_cert
        seen, last = _stamp(ca_cert), time.monotonic()
        while True:
            await asyncio.sleep(min(self.ca_poll, self.interval))
            stamp = _stamp(ca_cert)
            if stamp == seen and time.monotonic() - last < self.interval:
                continue
            seen, last = stamp, time.monotonic()
            try:
                await self.check()
            except Exception:
                log.exception("checking the certificates for renewal failed")

    async def stop(self) -> None:
        await _cancel(self._task)
        self._task = None


class CertFollower:
    """A worker's side of renewal: loads a changed serving certificate (or a rotated CA's
    bundle) that the primary's :class:`CertRenewer` wrote into the worker's TLS context,
    looking at the files every ``poll`` seconds."""

    def __init__(self, pki: Pki, ctx: ssl.SSLContext, poll: float = CA_POLL) -> None:
        self.pki, self.ctx, self.poll = pki, ctx, poll
        self._task: asyncio.Task[None] | None = None

    def _stamps(self) -> list[tuple[int, int, int]]:
        return [_stamp(p) for p in (self.pki.ca_cert, self.pki.serving_cert, self.pki.serving_key)]

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="cert-follower")

    async def _loop(self) -> None:
        seen = self._stamps()
        while True:
            await asyncio.sleep(self.poll)
            now = self._stamps()
            if now == seen:
                continue
            try:
                if now[0] != seen[0]:
                    self.ctx.load_verify_locations(cafile=self.pki.ca_cert)
                if now[1:] != seen[1:]:
                    self.ctx.load_cert_chain(self.pki.serving_cert, self.pki.serving_key)
            except (OSError, ssl.SSLError) as err:  # half-written: the next look
                log.warning("loading the renewed certificates failed: %s", err)
                continue
            seen = now
            log.info("loaded the renewed certificates", extra={"dir": str(self.pki.dir)})

    async def stop(self) -> None:
        await _cancel(self._task)
        self._task = None


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _stamp(path: Path) -> tuple[int, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (0, 0, 0)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""
