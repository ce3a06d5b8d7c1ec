"""Component client certificates are renewed while the components run (issue 14).

``pyk8s server`` gives each component a certificate file (``server/cred/<name>.pem``,
named by its kubeconfig) and renews it before expiry; the component's client loads the
changed file before its next request, without a restart. Here the certificates live six
seconds and are renewed when less than four are left, so the real scheduler outlives
its first certificate within the test: it keeps renewing its leader Lease after that
certificate expired, and the expired one is refused by the API server.
"""

from __future__ import annotations

import asyncio
import datetime
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pyk8s.apiserver.certs import Pki
from pyk8s.client import Client, ClientError, Config, load_kubeconfig
from pyk8s.client.certificates import certificate_validity, read_pem_pair
from pyk8s.server.identities import renew_component_credentials, write_component_kubeconfigs
from tests.controllers.conftest import eventually
from tests.integration.conftest import Server, free_port

VALIDITY = datetime.timedelta(seconds=6)
RENEW_BEFORE = datetime.timedelta(seconds=4)


async def test_the_scheduler_keeps_working_past_its_first_certificate(
    server: Server, tmp_path: Path
) -> None:
    # the shared server's CA, with the component files in this test's own directory
    tls = tmp_path / "tls"
    tls.mkdir()
    for name in ("ca.crt", "ca.key"):
        shutil.copy(server.data_dir / "server" / "tls" / name, tls / name)
    pki = Pki.at(tls)
    kubeconfigs = write_component_kubeconfigs(pki, server.url, validity=VALIDITY)
    pem = tmp_path / "cred" / "scheduler.pem"
    first = read_pem_pair(pem)
    assert first is not None
    first_expiry = certificate_validity(first[0])[1]
    log_path = tmp_path / "scheduler.log"
    with log_path.open("wb") as log:
        proc = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-m", "pyk8s", "scheduler", "--kubeconfig",
             str(kubeconfigs["scheduler"]), "--leader-elect", "true",
             "--secure-port", str(free_port())],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    async def renew_forever() -> None:  # the running server's CertRenewer pass, faster
        while True:
            await asyncio.to_thread(
                renew_component_credentials, pki, renew_before=RENEW_BEFORE, validity=VALIDITY
            )
            await asyncio.sleep(0.5)

    renewer = asyncio.create_task(renew_forever())
    try:
        async with Client(load_kubeconfig(server.kubeconfig)) as admin:
            leases = await admin.resource("coordination.k8s.io/v1", "Lease")

            async def renewed_after_first_expiry() -> bool:
                try:
                    lease = await admin.get(leases, "kube-scheduler", "kube-system")
                except ClientError:
                    return False
                renew = datetime.datetime.fromisoformat(lease["spec"]["renewTime"])
                return renew > first_expiry + datetime.timedelta(seconds=1)

            assert await eventually(renewed_after_first_expiry, within=30), log_path.read_text()
        current = read_pem_pair(pem)
        assert current is not None and current[0] != first[0]
        assert certificate_validity(current[0])[1] > first_expiry
        # the first certificate itself is now refused
        old = tmp_path / "first.pem"
        old.write_bytes(first[0] + first[1])
        config = Config(server=server.url, ca_file=str(pki.ca_cert), cert_file=str(old),
                        key_file=str(old))  # fmt: skip
        async with Client(config, max_retries=0) as expired:
            with pytest.raises(ClientError):
                await expired.request("GET", "/api")
        assert "client certificate reloaded" in log_path.read_text(), log_path.read_text()
    finally:
        renewer.cancel()
        proc.terminate()
        await asyncio.to_thread(proc.wait, 30)
        async with Client(load_kubeconfig(server.kubeconfig)) as admin:
            leases = await admin.resource("coordination.k8s.io/v1", "Lease")
            await admin.delete(leases, "kube-scheduler", "kube-system")
