"""``pyk8s certificate check|rotate`` on a server data dir made by the server's own PKI
code: every component certificate is listed with its subject and expiry, a certificate
near its end is flagged, and rotate sets the chosen ones aside so the next start issues
new ones from the same CA."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509

from pyk8s.apiserver.certs import ensure_pki, issue_client_cert, write_kubeconfig
from pyk8s.cli import main
from pyk8s.client.certificates import write_pem_pair
from pyk8s.server.certcheck import check
from pyk8s.server.identities import renew_component_credentials, write_component_kubeconfigs


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    pki = ensure_pki(tmp_path / "server", hostnames=["node1"], ips=["10.0.0.1"])
    write_component_kubeconfigs(pki, "https://127.0.0.1:6443", "abcdef.0123456789abcdef")
    return tmp_path


def test_check_lists_each_component(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certificate", "check", "--data-dir", str(data_dir), "-o", "table"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["FILENAME", "SUBJECT", "USAGES", "EXPIRES", "RESIDUAL", "TIME",
                                "STATUS"]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["admin.crt"][1] == "CN=system:admin,O=system:masters"
    assert rows["admin.crt"][2] == "ClientAuth"
    assert rows["serving.crt"][2] == "ServerAuth"
    # a component kubeconfig names its certificate file, which the server renews
    assert rows["scheduler.pem"][1] == "CN=system:kube-scheduler"
    assert rows["controller-manager.pem"][1] == "CN=system:kube-controller-manager"
    assert all(r[-1] == "OK" and r[-2] in ("364d", "365d") for r in rows.values())

    assert main(["certificate", "check", "-d", str(data_dir), "--service", "kube-proxy"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("kube-proxy: certificate proxy.pem (CN=system:kube-proxy) is ok")

    assert main(["certificate", "check", "-d", str(data_dir), "--service", "nope"]) == 1
    assert "unknown service 'nope'" in capsys.readouterr().err


def test_a_certificate_near_its_end_is_flagged(data_dir: Path) -> None:
    pki = ensure_pki(data_dir / "server", hostnames=["node1"], ips=["10.0.0.1"])
    short = issue_client_cert(pki, "system:kube-scheduler", validity=datetime.timedelta(days=30))
    path = data_dir / "server" / "cred" / "scheduler.kubeconfig"
    write_kubeconfig(path, server="https://x", pki=pki, client_cert=short)
    now = datetime.datetime.now(datetime.UTC)
    (info,) = check(data_dir, ["scheduler"])
    assert info.status(now) == "WARNING" and info.remaining(now).days == 29
    assert info.status(now + datetime.timedelta(days=31)) == "EXPIRED"


def test_the_server_renews_a_component_certificate_near_its_end(data_dir: Path) -> None:
    """What the running server's hourly pass does (CertRenewer): a component certificate
    with less than 90 days left is replaced in its file; the others are kept."""
    pki = ensure_pki(data_dir / "server", hostnames=["node1"], ips=["10.0.0.1"])
    pem = data_dir / "server" / "cred" / "scheduler.pem"
    short = issue_client_cert(pki, "system:kube-scheduler", validity=datetime.timedelta(days=30))
    write_pem_pair(pem, *short)
    proxy_before = (data_dir / "server" / "cred" / "proxy.pem").read_bytes()
    assert renew_component_credentials(pki) == ["scheduler"]
    (info,) = check(data_dir, ["scheduler"])
    assert info.file == pem and info.subject == "CN=system:kube-scheduler"
    assert info.remaining(datetime.datetime.now(datetime.UTC)).days in (364, 365)
    assert (data_dir / "server" / "cred" / "proxy.pem").read_bytes() == proxy_before
    assert renew_component_credentials(pki) == []


def test_rotate_sets_certificates_aside_and_the_same_ca_issues_new_ones(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tls = data_dir / "server" / "tls"
    ca_before = (tls / "ca.crt").read_bytes()
    serving_before = x509.load_pem_x509_certificate((tls / "serving.crt").read_bytes())
    admin_before = (tls / "admin.crt").read_bytes()
    assert main(["certificate", "rotate", "-d", str(data_dir), "--service", "api-server"]) == 0
    assert "restart pyk8s server" in capsys.readouterr().out
    (backup,) = tls.glob("tls-*")
    assert {p.name for p in backup.iterdir()} == {
        "serving.crt", "serving.key", "apiserver-kubelet-client.crt",
        "apiserver-kubelet-client.key",
    }  # fmt: skip
    assert not (tls / "serving.crt").exists() and (tls / "admin.crt").read_bytes() == admin_before

    ensure_pki(data_dir / "server", hostnames=["node1"], ips=["10.0.0.1"])  # the next start
    serving = x509.load_pem_x509_certificate((tls / "serving.crt").read_bytes())
    assert serving.serial_number != serving_before.serial_number
    assert (tls / "ca.crt").read_bytes() == ca_before
    assert (tls / "admin.crt").read_bytes() == admin_before


def test_after_rotate_ca_the_running_parts_issue_from_the_new_ca(data_dir: Path) -> None:
    """What a running server does after ``rotate-ca`` without a restart: its renewal pass
    re-issues every component certificate from the new CA, and the controller manager's
    CSR signer (built before) signs kubelets' requests with it."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from pyk8s.controllers.csrsigning import Signer

    tls = data_dir / "server" / "tls"
    signer = Signer(str(tls / "ca.crt"), str(tls / "ca.key"), 3600)
    stage = data_dir / "stage"
    rotate = ["certificate", "rotate-ca", "--data-dir", str(data_dir), "--path", str(stage)]
    assert main([*rotate, "--generate"]) == 0
    assert main(rotate) == 0
    new_ca = x509.load_pem_x509_certificate((tls / "ca.crt").read_bytes())
    pki = ensure_pki(data_dir / "server", hostnames=["node1"], ips=["10.0.0.1"])
    renewed = renew_component_credentials(pki)
    assert "scheduler" in renewed and "controller-manager" in renewed
    leaves = [tls / n for n in ("serving.crt", "admin.crt", "apiserver-kubelet-client.crt")]
    for path in [*leaves, *(data_dir / "server" / "cred").glob("*.pem")]:
        assert x509.load_pem_x509_certificate(path.read_bytes()).issuer == new_ca.subject, path
    assert renew_component_credentials(pki) == []
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "system:node:n1")])
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name)
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )
    signed = x509.load_pem_x509_certificate(signer.sign(csr, ["client auth"], None))
    signed.verify_directly_issued_by(new_ca)


@pytest.mark.parametrize("topology", ["cross-signed root", "intermediate of the old CA"])
def test_a_client_trusting_only_the_old_ca_verifies_what_the_new_one_signed(
    data_dir: Path, topology: str
) -> None:
    """The serving certificate after rotate-ca, as a client that has only the old CA
    checks it (the chain the server sends: the leaf file with ca-chain.crt appended)."""
    from cryptography.x509 import DNSName
    from cryptography.x509.verification import PolicyBuilder, Store

    from pyk8s.apiserver import certs

    tls = data_dir / "server" / "tls"
    old = x509.load_pem_x509_certificate((tls / "ca.crt").read_bytes())
    stage = data_dir / "stage"
    rotate = ["certificate", "rotate-ca", "--data-dir", str(data_dir), "--path", str(stage)]
    if topology == "cross-signed root":
        assert main([*rotate, "--generate"]) == 0
    else:  # k3s's custom-CA topology: the new signing CA is an intermediate of the old
        pki = certs.Pki.at(tls)
        old_key = certs._load_ec_key(pki.ca_key)
        assert old_key is not None
        ca, key = certs._make_ca("intermediate")
        inter = certs.cross_signed(ca, key, old, old_key)
        (stage / "tls").mkdir(parents=True)
        (stage / "tls" / "ca.crt").write_bytes(certs._cert_pem(inter))
        (stage / "tls" / "ca.key").write_bytes(certs._key_pem(key))
    assert main(rotate) == 0
    ensure_pki(data_dir / "server", hostnames=["node1"], ips=["10.0.0.1"])
    leaf, *chain = x509.load_pem_x509_certificates((tls / "serving.crt").read_bytes())
    new = x509.load_pem_x509_certificate((tls / "ca.crt").read_bytes())
    assert leaf.issuer == new.subject != old.subject
    for trusted in ([old], [new]):
        verifier = PolicyBuilder().store(Store(trusted)).build_server_verifier(DNSName("node1"))
        verifier.verify(leaf, chain)
