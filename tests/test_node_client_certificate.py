"""``pyk8s server`` issues its own kubelet's client certificate (issue 21): no TLS
bootstrap round trip on the way to the node's first Ready, as k3s's server writes its
agent's ``client-kubelet.crt``. The certificate names ``system:node:<name>`` in
``system:nodes``, where the kubelet run with those flags reads it; a valid one from the
same CA for the same node is kept (the kubelet renews it through CSRs). The server also
makes each controller's ServiceAccount with its bootstrap objects, so the controller
manager's first token request for it succeeds."""

from __future__ import annotations

import datetime
from pathlib import Path

from pyk8s.apiserver.certs import ensure_pki, issue_client_cert, issued_by_ca
from pyk8s.client.certificates import certificate_subject, read_pem_pair, write_pem_pair
from pyk8s.server.controller_credentials import SERVICE_ACCOUNTS
from pyk8s.server.identities import (
    component_flags,
    controller_service_accounts,
    ensure_node_client_certificate,
)


def test_the_server_issues_its_kubelets_node_certificate(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "server", hostnames=["node1"], ips=["10.0.0.1"])
    argv = [*component_flags("kubelet", pki), "--data-dir", str(tmp_path / "agent"),
            "--node-name", "Node1", "--node-routes"]  # fmt: skip
    pem = ensure_node_client_certificate(pki, argv)
    assert pem == tmp_path / "agent" / "kubelet" / "pki" / "kubelet-client-current.pem"
    assert pem.stat().st_mode & 0o777 == 0o600
    pair = read_pem_pair(pem)
    assert pair is not None and issued_by_ca(pki, pair[0])
    assert certificate_subject(pair[0]) == ("system:node:node1", ["system:nodes"])

    # kept on the next start; the kubelet renews it itself
    assert ensure_node_client_certificate(pki, argv) == pem
    assert read_pem_pair(pem) == pair

    # a passed-through --kubelet-arg comes last and wins, as in the kubelet's parser
    moved = [*argv, "--node-name", "node2", "--cert-dir", str(tmp_path / "pki2")]
    other = ensure_node_client_certificate(pki, moved)
    assert other == tmp_path / "pki2" / "kubelet-client-current.pem"
    got = read_pem_pair(other)
    assert got is not None and certificate_subject(got[0])[0] == "system:node:node2"


def test_a_stale_node_certificate_is_replaced(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "server", hostnames=["node1"], ips=["10.0.0.1"])
    argv = ["--data-dir", str(tmp_path / "agent"), "--node-name", "node1"]
    pem = tmp_path / "agent" / "kubelet" / "pki" / "kubelet-client-current.pem"
    other_ca = ensure_pki(tmp_path / "other", hostnames=["x"], ips=["10.0.0.2"])
    stale = [
        issue_client_cert(pki, "system:node:someone-else", ["system:nodes"]),  # another node
        issue_client_cert(other_ca, "system:node:node1", ["system:nodes"]),  # another CA
        issue_client_cert(  # expired
            pki, "system:node:node1", ["system:nodes"], validity=-datetime.timedelta(seconds=1)
        ),
    ]
    for cert, key in stale:
        write_pem_pair(pem, cert, key)
        assert ensure_node_client_certificate(pki, argv) == pem
        pair = read_pem_pair(pem)
        assert pair is not None and pair[0] != cert and issued_by_ca(pki, pair[0])
        assert certificate_subject(pair[0]) == ("system:node:node1", ["system:nodes"])


def test_no_data_dir_no_certificate(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "server", hostnames=["node1"], ips=["10.0.0.1"])
    assert ensure_node_client_certificate(pki, ["--node-name", "node1"]) is None


def test_every_controllers_service_account_is_made_by_the_server() -> None:
    accounts = controller_service_accounts()
    names = [sa["metadata"]["name"] for sa in accounts]
    assert sorted(set(names)) == names == sorted(set(SERVICE_ACCOUNTS.values()))
    assert {"node-controller", "certificate-controller"} <= set(names)
    assert all(
        sa["kind"] == "ServiceAccount" and sa["metadata"]["namespace"] == "kube-system"
        for sa in accounts
    )
