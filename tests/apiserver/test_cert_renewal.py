"""The running API server's serving certificate is renewed in place: a check with a
year left renews nothing; once the certificate is inside the renewal window, the next
check issues a new one from the same CA and new TLS handshakes get it without a
restart, and the admin kubeconfig is rewritten."""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509

from pyk8s.apiserver import certs
from pyk8s.apiserver.certs import Pki, ensure_pki, server_ssl_context
from pyk8s.server.certrenew import CertRenewer


async def _served_cert(port: int, ca: Path) -> x509.Certificate:
    ctx = ssl.create_default_context(cafile=str(ca))
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname="localhost"
    )
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return x509.load_der_x509_certificate(der)


async def test_serving_certificate_renewed_without_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts, ips = ["localhost"], ["127.0.0.1"]
    pki = ensure_pki(tmp_path, hostnames=hosts, ips=ips)
    ctx = server_ssl_context(pki)
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=ctx)
    await site.start()
    admins: list[Pki] = []
    renewer = CertRenewer(tmp_path, ctx, hostnames=hosts, ips=ips, on_admin_renewed=admins.append)
    try:
        first = await _served_cert(port, pki.ca_cert)
        assert await renewer.check() is False
        assert (await _served_cert(port, pki.ca_cert)).serial_number == first.serial_number

        # a year-long certificate is inside a 400-day renewal window
        monkeypatch.setattr(certs, "RENEW_BEFORE", datetime.timedelta(days=400))
        ca = pki.ca_cert.read_bytes()
        assert await renewer.check() is True
        second = await _served_cert(port, pki.ca_cert)
        assert second.serial_number != first.serial_number
        assert second.not_valid_after_utc >= first.not_valid_after_utc
        assert pki.ca_cert.read_bytes() == ca
        assert len(admins) == 1
    finally:
        await runner.cleanup()
