"""certificates.k8s.io/v1 CertificateSigningRequests through kubectl and the Python client:
the requester comes from authentication, upstream's validation and column set, the
approval and status doors and who may use them."""

from __future__ import annotations

import base64
import json
import subprocess
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.conftest import Kubectl, RawClient

CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"


def make_csr(cn: str, orgs: tuple[str, ...] = ()) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
        + [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )
    req = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return base64.b64encode(req.public_bytes(serialization.Encoding.PEM)).decode()


def csr_doc(name: str, **spec: Any) -> dict[str, Any]:
    body = {
        "request": make_csr(name),
        "signerName": CLIENT_SIGNER,
        "usages": ["client auth"],
        **spec,
    }
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": body,
    }


def apply(kubectl: Kubectl, doc: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return kubectl.run("create", "-f", "-", input=json.dumps(doc), check=False)


def test_kubectl_create_get_approve_deny(kubectl: Kubectl) -> None:
    doc = csr_doc("csr-alice", expirationSeconds=86400, username="mallory", groups=["x"])
    assert apply(kubectl, doc).returncode == 0
    apply(kubectl, csr_doc("csr-bob"))
    got = kubectl.json("get", "csr", "csr-alice", "-o", "json")
    # the requester is who authenticated, not what the body said
    assert got["spec"]["username"] == "system:admin"
    assert "system:masters" in got["spec"]["groups"]
    out = kubectl("get", "csr", "csr-alice", "csr-bob")
    header = out.splitlines()[0].split()
    assert header == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"]
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows["csr-alice"][2:] == [CLIENT_SIGNER, "system:admin", "24h", "Pending"]
    assert rows["csr-bob"][4:] == ["<none>", "Pending"]

    assert "approved" in kubectl("certificate", "approve", "csr-alice")
    assert "denied" in kubectl("certificate", "deny", "csr-bob")
    rows = {line.split()[0]: line.split() for line in kubectl("get", "csr").splitlines()[1:]}
    assert rows["csr-alice"][-1] == "Approved"
    assert rows["csr-bob"][-1] == "Denied"
    cond = kubectl.json("get", "csr", "csr-alice", "-o", "json")["status"]["conditions"][0]
    assert cond["type"] == "Approved" and cond["reason"] == "KubectlApprove"
    assert cond["lastUpdateTime"] and cond["lastTransitionTime"]
    # a decided request cannot be flipped
    res = kubectl.run("certificate", "deny", "csr-alice", check=False)
    assert "already Approved" in res.stderr


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"request": base64.b64encode(b"not a pem").decode()},
            "spec.request: Invalid value: ",
        ),
        ({"signerName": "nodomain"}, 'spec.signerName: Invalid value: "nodomain": must be a'),
        (
            {"signerName": "example/x"},
            "should be a domain with at least two segments separated by dots",
        ),
        ({"signerName": ""}, "spec.signerName: Required value"),
        ({"usages": ["fly"]}, 'spec.usages[0]: Unsupported value: "fly"'),
        ({"usages": []}, "spec.usages: Required value: usages must be provided"),
        (
            {"expirationSeconds": 599},
            "spec.expirationSeconds: Invalid value: 599: may not specify a duration less "
            "than 600 seconds (10 minutes)",
        ),
        (
            {"signerName": "kubernetes.io/legacy-unknown"},
            'spec.signerName: Invalid value: "kubernetes.io/legacy-unknown": the legacy '
            "signerName is not allowed via this API version",
        ),
    ],
)
def test_invalid_requests_are_422(kubectl: Kubectl, spec: dict[str, Any], message: str) -> None:
    res = apply(kubectl, csr_doc("csr-bad", **spec))
    assert res.returncode != 0
    assert "is invalid" in res.stderr and message in res.stderr, res.stderr


def test_pem_type_message(raw: RawClient) -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    body = csr_doc("csr-pem", request=base64.b64encode(pem).decode())
    r = raw(
        "POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", json.dumps(body).encode()
    )
    assert r.status == 422
    cause = r.json()["details"]["causes"][0]
    assert cause["field"] == "spec.request"
    assert cause["message"].endswith("PEM block type must be CERTIFICATE REQUEST")


def test_masters_client_certificate_refused(kubectl: Kubectl) -> None:
    doc = csr_doc("csr-root")
    doc["spec"]["request"] = make_csr("root", ("system:masters",))
    res = apply(kubectl, doc)
    assert res.returncode != 0
    assert (
        'certificatesigningrequests.certificates.k8s.io "csr-root" is forbidden: use of '
        "kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed"
    ) in res.stderr


def test_python_client_status_and_approval_doors(api: Any) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    certs = client.CertificatesV1Api(api)
    body = csr_doc("csr-py")
    created = certs.create_certificate_signing_request(body)
    assert created.spec.username == "system:admin"
    # spec is immutable: an update of the main resource keeps the stored one
    created.spec.usages = ["client auth", "digital signature"]
    created.metadata.labels = {"a": "b"}
    updated = certs.replace_certificate_signing_request("csr-py", created)
    assert updated.spec.usages == ["client auth"] and updated.metadata.labels == {"a": "b"}
    # a certificate before approval is refused on the status door
    fake = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n").decode()
    patch = {"status": {"certificate": fake}}
    with pytest.raises(ApiException) as err:
        certs.patch_certificate_signing_request_status("csr-py", patch)
    assert err.value.status == 422
    # approval is not accepted on the status door
    cond = {"type": "Approved", "status": "True", "reason": "R", "message": "m"}
    with pytest.raises(ApiException) as err:
        certs.patch_certificate_signing_request_status("csr-py", {"status": {"conditions": [cond]}})
    assert err.value.status == 422
    assert 'updates may not add a condition of type \\"Approved\\"' in err.value.body
    out = certs.patch_certificate_signing_request_approval(
        "csr-py", {"status": {"conditions": [cond]}}
    )
    assert [c.type for c in out.status.conditions] == ["Approved"]
    both = [cond, {**cond, "type": "Denied"}]
    with pytest.raises(ApiException) as err:
        certs.patch_certificate_signing_request_approval("csr-py", {"status": {"conditions": both}})
    assert "Approved and Denied conditions are mutually exclusive" in err.value.body


def test_approving_needs_the_approve_verb_on_the_signer(kubectl: Kubectl) -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "csr-approver-no-signer"},
        "rules": [
            {
                "apiGroups": ["certificates.k8s.io"],
                "resources": ["certificatesigningrequests", "certificatesigningrequests/approval"],
                "verbs": ["get", "list", "update"],
            }
        ],
    }
    kubectl("apply", "-f", "-", input=json.dumps(role))
    kubectl(
        "create", "clusterrolebinding", "csr-approver-carol",
        "--clusterrole=csr-approver-no-signer", "--user=carol",
    )  # fmt: skip
    apply(kubectl, csr_doc("csr-carol"))
    res = kubectl.run("certificate", "approve", "csr-carol", "--as=carol", check=False)
    assert res.returncode != 0
    assert (
        'certificatesigningrequests.certificates.k8s.io "csr-carol" is forbidden: user not '
        'permitted to approve requests with signerName "kubernetes.io/kube-apiserver-client"'
    ) in res.stderr
    # upstream's system:certificates.k8s.io:kube-apiserver-client-approver grants it
    kubectl(
        "create", "clusterrolebinding", "csr-approver-carol-signer",
        "--clusterrole=system:certificates.k8s.io:kube-apiserver-client-approver",
        "--user=carol",
    )  # fmt: skip
    assert "approved" in kubectl("certificate", "approve", "csr-carol", "--as=carol")
