"""An ``--apiserver-workers`` worker renews nothing itself: when the primary's renewer
writes a new serving certificate, the worker's new TLS handshakes present it without a
restart (:class:`pyk8s.server.certrenew.CertFollower`)."""

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
from pyk8s.apiserver.certs import ensure_pki, server_ssl_context
from pyk8s.server.certrenew import CertFollower, CertRenewer


async def _served_serial(port: int, ca: Path) -> int:
    ctx = ssl.create_default_context(cafile=str(ca))
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname="localhost"
    )
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return x509.load_der_x509_certificate(der).serial_number


async def test_a_worker_serves_the_certificate_the_primary_renewed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts, ips = ["localhost"], ["127.0.0.1"]
    pki = ensure_pki(tmp_path, hostnames=hosts, ips=ips)
    primary_ctx, worker_ctx = server_ssl_context(pki), server_ssl_context(pki)
    runner = web.AppRunner(web.Application())
    await runner.setup()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=worker_ctx).start()
    follower = CertFollower(pki, worker_ctx, poll=0.02)
    follower.start()
    try:
        first = await _served_serial(port, pki.ca_cert)
        # the primary's renewal pass, with its certificate inside the renewal window
        monkeypatch.setattr(certs, "RENEW_BEFORE", datetime.timedelta(days=400))
        renewer = CertRenewer(tmp_path, primary_ctx, hostnames=hosts, ips=ips)
        assert await renewer.check() is True
        renewed = x509.load_pem_x509_certificate(pki.serving_cert.read_bytes()).serial_number
        assert renewed != first
        async with asyncio.timeout(30):  # the follower's next look at the files
            while True:
                served = await _served_serial(port, pki.ca_cert)
                if served != first:
                    break
                await asyncio.sleep(0.02)
        assert served == renewed
    finally:
        await follower.stop()
        await runner.cleanup()
