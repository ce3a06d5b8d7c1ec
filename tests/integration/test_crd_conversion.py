"""Custom resources in two versions converted by a webhook, as users run it.

A CRD ``stable.example.com`` serves ``v1alpha1`` (``spec.host`` + ``spec.port``) and
``v1`` (``spec.address: "host:port"``, the storage version), with
``conversion.strategy: Webhook``. The webhook is an HTTPS server this module runs on
127.0.0.1 with a CA it makes (the CRD carries the ``caBundle``). It is reached two ways,
one CRD each:

* ``url``: ``https://127.0.0.1:<port>/convert``;
* ``service``: a selector-less Service with an EndpointSlice (label
  ``kubernetes.io/service-name``) pointing at 127.0.0.1:<port>, so the API server's
  service path (EndpointSlice lookup, TLS checked against ``<svc>.<ns>.svc``) runs
  without containers.

The tests drive the real kubectl and the official Python client against ``pyk8s
apiserver`` and check what a user sees: objects created at one version read back at the
other, lists and watches at both, updates at the old version stored at the new one, the
ConversionReview requests the webhook received, and a webhook that is down answering
reads with upstream's 500 instead of hanging.

One more test (``e2e``: root, containerd) serves the same webhook from a pod on a real
kubelet behind a Service with a selector: the EndpointSlice controller publishes the pod
and the API server dials its pod IP. Our test images are busybox-static, which has no TLS
server, so that pod runs the host's Python, mounted read-only.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import http.server
import inspect
import ipaddress
import json
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.controllers import conftest as controllers_fixtures
from tests.integration import pod_servers
from tests.integration.conftest import Kubectl, Server, free_port
from tests.integration.pod_servers import run_server_pod, serve_tls
from tests.kubelet import node_fixtures

#: the e2e test's fixtures: its own API server and a kubelet with containerd
cm_server = controllers_fixtures.cm_server
node = node_fixtures.node
endpointslice_controller = pod_servers.endpointslice_controller

JSON = dict[str, Any]
GROUP = "stable.example.com"
OLD, NEW = f"{GROUP}/v1alpha1", f"{GROUP}/v1"
SVC_NAME = "backend-converter"


# --------------------------------------------------------------------------- PKI


@dataclass
class Pki:
    ca_pem: bytes
    cert_file: Path
    key_file: Path


def make_pki(directory: Path, dns_names: list[str]) -> Pki:
    """A CA and a serving certificate for 127.0.0.1 and ``dns_names``, signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "conversion-test-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "converter")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                + [x509.DNSName(n) for n in dns_names]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Pki(ca.public_bytes(serialization.Encoding.PEM), cert_file, key_file)


# --------------------------------------------------------------------------- the webhook


def to_v1(obj: JSON) -> JSON:
    spec = dict(obj.get("spec") or {})
    host, port = spec.pop("host", ""), spec.pop("port", 0)
    return {**obj, "apiVersion": NEW, "spec": {**spec, "address": f"{host}:{port}"}}


def to_v1alpha1(obj: JSON) -> JSON:
    spec = dict(obj.get("spec") or {})
    host, _, port = str(spec.pop("address", ":0")).rpartition(":")
    return {**obj, "apiVersion": OLD, "spec": {**spec, "host": host, "port": int(port)}}


def convert_review(review: JSON) -> JSON:
    """What a correct webhook answers: every object at the desired version."""
    request = review["request"]
    desired = request["desiredAPIVersion"]
    fn = to_v1 if desired == NEW else to_v1alpha1
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "response": {
            "uid": request["uid"],
            "convertedObjects": [fn(o) for o in request["objects"]],
            "result": {"status": "Success"},
        },
    }


@dataclass
class Webhook:
    """The in-process conversion webhook: the reviews it received, by request path."""

    port: int
    pki: Pki
    reviews: list[tuple[str, JSON]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self, path: str, kind: str | None = None) -> list[JSON]:
        with self.lock:
            out = [r for p, r in self.reviews if p.split("?", 1)[0] == path]
        if kind is not None:
            out = [r for r in out if any(o.get("kind") == kind for o in r["request"]["objects"])]
        return out


def _handler(hook: Webhook) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the API server's client expects

        def do_POST(self) -> None:
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with hook.lock:
                hook.reviews.append((self.path, review))
            body = json.dumps(convert_review(review)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def webhook_ns(kubectl: Kubectl) -> str:
    name = f"conv-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    return name


@contextlib.contextmanager
def serve_https(
    pki: Pki, handler: type[http.server.BaseHTTPRequestHandler], name: str
) -> Iterator[int]:
    """Serve ``handler`` over TLS with ``pki``'s key pair on a loopback port (yielded), in
    a thread named ``name``, until the block ends."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(pki.cert_file), str(pki.key_file))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, name=name, daemon=True).start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory, webhook_ns: str) -> Iterator[Webhook]:
    pki = make_pki(tmp_path_factory.mktemp("webhook-pki"), [f"{SVC_NAME}.{webhook_ns}.svc"])
    hook = Webhook(0, pki)
    with serve_https(pki, _handler(hook), "conversion-webhook") as port:
        hook.port = port
        yield hook


def closed_port() -> int:
    """A loopback port nobody listens on (connections are refused)."""
    return free_port()


# --------------------------------------------------------------------------- CRDs


def crd_manifest(kind: str, client_config: JSON) -> JSON:
    plural = kind.lower() + "s"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
            "conversion": {
                "strategy": "Webhook",
                "webhook": {"clientConfig": client_config, "conversionReviewVersions": ["v1"]},
            },
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": False,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["host", "port"],
                                    "properties": {
                                        "host": {"type": "string"},
                                        "port": {
                                            "type": "integer",
                                            "minimum": 1,
                                            "maximum": 65535,
                                        },
                                    },
                                }
                            },
                        }
                    },
                },
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["address"],
                                    "properties": {
                                        "address": {
                                            "type": "string",
                                            "pattern": "^[^:]+:[0-9]+$",
                                        }
                                    },
                                }
                            },
                        }
                    },
                },
            ],
        },
    }


@dataclass
class Crd:
    kind: str
    plural: str
    #: the request path the webhook sees for this CRD
    path: str

    def resource(self, version: str) -> str:
        """kubectl's fully qualified ``plural.version.group``."""
        return f"{self.plural}.{version}.{GROUP}"


def install(kubectl: Kubectl, manifest: JSON) -> None:
    name = manifest["metadata"]["name"]
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=30s")
    # Established is set as the resource is installed; wait until kubectl can use it.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if kubectl.run("get", manifest["spec"]["names"]["plural"], "-A", check=False).returncode:
            time.sleep(0.2)
            continue
        return
    raise AssertionError(f"{name} not served")


def apply(kubectl: Kubectl, namespace: str, *objects: JSON) -> None:
    items = list(objects)
    kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps({"kind": "List", "apiVersion": "v1", "items": items}),
    )


def selectorless_service(name: str, port: int) -> tuple[JSON, JSON]:
    """A Service without a selector and its EndpointSlice naming 127.0.0.1:``port``."""
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]},
    }
    endpoints = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": f"{name}-1", "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }
    return service, endpoints


@pytest.fixture(scope="module")
def url_crd(kubectl: Kubectl, webhook: Webhook) -> Iterator[Crd]:
    cfg = {
        "url": f"https://127.0.0.1:{webhook.port}/convert/url",
        "caBundle": base64.b64encode(webhook.pki.ca_pem).decode(),
    }
    manifest = crd_manifest("UrlBackend", cfg)
    install(kubectl, manifest)
    yield Crd("UrlBackend", "urlbackends", "/convert/url")
    kubectl("delete", "crd", manifest["metadata"]["name"], "--timeout=60s")


@pytest.fixture(scope="module")
def service_crd(kubectl: Kubectl, webhook: Webhook, webhook_ns: str) -> Iterator[Crd]:
    """The webhook behind a selector-less Service whose EndpointSlice names 127.0.0.1."""
    apply(kubectl, webhook_ns, *selectorless_service(SVC_NAME, webhook.port))
    cfg = {
        "service": {
            "namespace": webhook_ns,
            "name": SVC_NAME,
            "path": "/convert/service",
            "port": 443,
        },
        "caBundle": base64.b64encode(webhook.pki.ca_pem).decode(),
    }
    manifest = crd_manifest("SvcBackend", cfg)
    install(kubectl, manifest)
    yield Crd("SvcBackend", "svcbackends", "/convert/service")
    kubectl("delete", "crd", manifest["metadata"]["name"], "--timeout=60s")


@pytest.fixture(params=["url", "service"])
def crd(request: pytest.FixtureRequest) -> Crd:
    return request.getfixturevalue(f"{request.param}_crd")  # type: ignore[no-any-return]


def old_object(crd: Crd, name: str, host: str = "db.example", port: int = 5432) -> JSON:
    return {
        "apiVersion": OLD,
        "kind": crd.kind,
        "metadata": {"name": name, "labels": {"tier": "backend"}},
        "spec": {"host": host, "port": port},
    }


def new_object(crd: Crd, name: str, address: str) -> JSON:
    return {
        "apiVersion": NEW,
        "kind": crd.kind,
        "metadata": {"name": name},
        "spec": {"address": address},
    }


# --------------------------------------------------------------------------- tests


def test_create_at_v1alpha1_read_at_v1(
    kubectl: Kubectl, ns: str, crd: Crd, webhook: Webhook
) -> None:
    apply(kubectl, ns, old_object(crd, "db"))

    as_v1 = kubectl.json("get", crd.resource("v1"), "db", "-n", ns)
    assert as_v1["apiVersion"] == NEW
    assert as_v1["spec"] == {"address": "db.example:5432"}
    assert as_v1["metadata"]["labels"] == {"tier": "backend"}

    as_old = kubectl.json("get", crd.resource("v1alpha1"), "db", "-n", ns)
    assert as_old["apiVersion"] == OLD
    assert as_old["spec"] == {"host": "db.example", "port": 5432}
    assert as_old["metadata"]["uid"] == as_v1["metadata"]["uid"]

    # The create was converted to the storage version, the v1alpha1 read back from it.
    reviews = [
        r
        for r in webhook.received(crd.path, crd.kind)
        if any(
            o["metadata"].get("name") == "db" and o["metadata"].get("namespace") == ns
            for o in r["request"]["objects"]
        )
    ]
    desired = [r["request"]["desiredAPIVersion"] for r in reviews]
    assert desired[0] == NEW
    assert OLD in desired
    for review in reviews:
        assert review["apiVersion"] == "apiextensions.k8s.io/v1"
        assert review["kind"] == "ConversionReview"
        assert uuid.UUID(review["request"]["uid"])
        for obj in review["request"]["objects"]:
            assert obj["apiVersion"] != review["request"]["desiredAPIVersion"]
    first = reviews[0]["request"]["objects"]
    assert [o["apiVersion"] for o in first] == [OLD]
    assert first[0]["spec"] == {"host": "db.example", "port": 5432}


def test_list_at_both_versions(api: Any, ns: str, crd: Crd) -> None:
    from kubernetes import client

    co = client.CustomObjectsApi(api)
    for i, port in enumerate((5432, 6379, 27017)):
        co.create_namespaced_custom_object(
            GROUP, "v1alpha1", ns, crd.plural, old_object(crd, f"b{i}", f"h{i}", port)
        )

    new = co.list_namespaced_custom_object(GROUP, "v1", ns, crd.plural)
    assert new["apiVersion"] == NEW
    assert {o["metadata"]["name"]: o["spec"] for o in new["items"]} == {
        "b0": {"address": "h0:5432"},
        "b1": {"address": "h1:6379"},
        "b2": {"address": "h2:27017"},
    }
    assert {o["apiVersion"] for o in new["items"]} == {NEW}

    old = co.list_namespaced_custom_object(GROUP, "v1alpha1", ns, crd.plural)
    assert old["apiVersion"] == OLD
    assert {o["metadata"]["name"]: o["spec"] for o in old["items"]} == {
        "b0": {"host": "h0", "port": 5432},
        "b1": {"host": "h1", "port": 6379},
        "b2": {"host": "h2", "port": 27017},
    }
    assert {o["apiVersion"] for o in old["items"]} == {OLD}


def test_kubectl_lists_at_the_old_version(kubectl: Kubectl, ns: str, crd: Crd) -> None:
    apply(kubectl, ns, old_object(crd, "cache", "redis", 6379))
    out = kubectl(
        "get",
        crd.resource("v1alpha1"),
        "-n",
        ns,
        "-o",
        "custom-columns=NAME:.metadata.name,HOST:.spec.host,PORT:.spec.port",
    )
    assert out.split() == ["NAME", "HOST", "PORT", "cache", "redis", "6379"]


def test_watch_at_v1alpha1(api: Any, ns: str, crd: Crd) -> None:
    from kubernetes import client, watch

    co = client.CustomObjectsApi(api)
    rv = co.list_namespaced_custom_object(GROUP, "v1alpha1", ns, crd.plural)["metadata"][
        "resourceVersion"
    ]
    seen: list[tuple[str, JSON]] = []
    errors: list[BaseException] = []

    def consume() -> None:
        w = watch.Watch()
        try:
            for ev in w.stream(
                co.list_namespaced_custom_object,
                GROUP,
                "v1alpha1",
                ns,
                crd.plural,
                resource_version=rv,
                timeout_seconds=20,
            ):
                seen.append((ev["type"], ev["object"]))
                if len(seen) == 2:
                    w.stop()
        except BaseException as e:  # surfaced in the main thread
            errors.append(e)

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    # Written at v1 (the storage version), watched at v1alpha1.
    co.create_namespaced_custom_object(
        GROUP,
        "v1",
        ns,
        crd.plural,
        {
            "apiVersion": NEW,
            "kind": crd.kind,
            "metadata": {"name": "w"},
            "spec": {"address": "queue:5672"},
        },
    )
    co.patch_namespaced_custom_object(
        GROUP, "v1", ns, crd.plural, "w", {"spec": {"address": "queue:5673"}}
    )
    t.join(30)
    assert not errors, errors
    assert [(typ, o["apiVersion"], o["spec"]) for typ, o in seen] == [
        ("ADDED", OLD, {"host": "queue", "port": 5672}),
        ("MODIFIED", OLD, {"host": "queue", "port": 5673}),
    ]


def test_update_at_v1alpha1_is_stored_as_v1(
    api: Any, kubectl: Kubectl, ns: str, crd: Crd, webhook: Webhook
) -> None:
    from kubernetes import client

    co = client.CustomObjectsApi(api)
    co.create_namespaced_custom_object(GROUP, "v1alpha1", ns, crd.plural, old_object(crd, "u"))
    current = co.get_namespaced_custom_object(GROUP, "v1alpha1", ns, crd.plural, "u")
    current["spec"]["port"] = 6432
    replaced = co.replace_namespaced_custom_object(GROUP, "v1alpha1", ns, crd.plural, "u", current)
    assert replaced["apiVersion"] == OLD
    assert replaced["spec"] == {"host": "db.example", "port": 6432}
    assert replaced["metadata"]["generation"] == 2

    # The update went to the webhook as v1alpha1 with v1 desired (the storage version) …
    sent = [
        o
        for r in webhook.received(crd.path, crd.kind)
        if r["request"]["desiredAPIVersion"] == NEW
        for o in r["request"]["objects"]
        if o["metadata"].get("namespace") == ns and o["metadata"]["name"] == "u"
    ]
    assert [o["spec"] for o in sent][-1] == {"host": "db.example", "port": 6432}
    # … and is stored at v1: reading at v1 needs no conversion and shows the new address.
    before = len(webhook.received(crd.path, crd.kind))
    as_v1 = kubectl.json("get", crd.resource("v1"), "u", "-n", ns)
    assert as_v1["spec"] == {"address": "db.example:6432"}
    assert len(webhook.received(crd.path, crd.kind)) == before

    # A merge patch at v1alpha1 too.
    kubectl(
        "patch",
        crd.resource("v1alpha1"),
        "u",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"spec":{"host":"db2.example"}}',
    )
    assert kubectl.json("get", crd.resource("v1"), "u", "-n", ns)["spec"] == {
        "address": "db2.example:6432"
    }
    stored = kubectl.json("get", "crd", f"{crd.plural}.{GROUP}")["status"]["storedVersions"]
    assert stored == ["v1"]


def test_v1alpha1_schema_is_checked_before_conversion(kubectl: Kubectl, ns: str, crd: Crd) -> None:
    bad = old_object(crd, "bad", port=70000)
    out = kubectl.run("apply", "-n", ns, "-f", "-", input=json.dumps(bad), check=False)
    assert out.returncode != 0
    assert (
        "spec.port: Invalid value: 70000: spec.port in body should be less than or equal to 65535"
        in out.stderr
    )


# --------------------------------------------------------------------------- a webhook that is down


@pytest.fixture(scope="module")
def dead_crd(kubectl: Kubectl, webhook: Webhook) -> Iterator[tuple[Crd, int]]:
    port = closed_port()
    cfg = {
        "url": f"https://127.0.0.1:{port}/convert",
        "caBundle": base64.b64encode(webhook.pki.ca_pem).decode(),
    }
    manifest = crd_manifest("DeadBackend", cfg)
    install(kubectl, manifest)
    yield Crd("DeadBackend", "deadbackends", "/convert"), port
    kubectl("delete", "crd", manifest["metadata"]["name"], "--timeout=60s")


def test_webhook_down_fails_reads_with_upstreams_message(
    kubectl: Kubectl, raw: Any, ns: str, dead_crd: tuple[Crd, int]
) -> None:
    crd, port = dead_crd
    # At the storage version nothing needs converting: these work with the webhook down.
    for name in ("x", "x2"):
        apply(kubectl, ns, new_object(crd, name, "a:1"))
    assert kubectl.json("get", crd.resource("v1"), "x", "-n", ns)["spec"] == {"address": "a:1"}
    assert len(kubectl.json("get", crd.resource("v1"), "-n", ns)["items"]) == 2

    failed = f'failed: Post "https://127.0.0.1:{port}/convert?timeout=30s": '
    failed += f"dial tcp 127.0.0.1:{port}: connect: connection refused"

    # A read at v1alpha1 sends the stored v1 object to the webhook: refused at once.
    started = time.monotonic()
    got = raw("GET", f"/apis/{GROUP}/v1alpha1/namespaces/{ns}/{crd.plural}/x")
    assert time.monotonic() - started < 10
    assert got.status == 500
    status = got.json()
    assert (status["kind"], status["status"], status["code"]) == ("Status", "Failure", 500)
    assert status["message"] == f"conversion webhook for {NEW}, Kind={crd.kind} {failed}"

    out = kubectl.run("get", crd.resource("v1alpha1"), "x", "-n", ns, check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f"Error from server: conversion webhook for {NEW}, Kind={crd.kind} {failed}"
    )

    # A list is converted as the list of the requested version.
    got = raw("GET", f"/apis/{GROUP}/v1alpha1/namespaces/{ns}/{crd.plural}")
    assert got.status == 500
    assert got.json()["message"] == f"conversion webhook for {OLD}, Kind={crd.kind}List {failed}"


def test_webhook_down_fails_writes_as_an_internal_error(
    raw: Any, kubectl: Kubectl, ns: str, dead_crd: tuple[Crd, int]
) -> None:
    """A write at v1alpha1 must be converted to v1 before it is stored."""
    crd, port = dead_crd
    failed = f'failed: Post "https://127.0.0.1:{port}/convert?timeout=30s": '
    failed += f"dial tcp 127.0.0.1:{port}: connect: connection refused"
    body = json.dumps(old_object(crd, "y")).encode()
    got = raw("POST", f"/apis/{GROUP}/v1alpha1/namespaces/{ns}/{crd.plural}", body)
    assert got.status == 500
    assert kubectl.run("get", crd.resource("v1"), "y", "-n", ns, check=False).returncode == 1
    assert got.json()["reason"] == "InternalError"
    assert got.json()["message"] == (
        f"Internal error occurred: conversion webhook for {OLD}, Kind={crd.kind} {failed}"
    )


def test_webhook_down_fails_a_list_of_one_as_a_list(
    raw: Any, kubectl: Kubectl, ns: str, dead_crd: tuple[Crd, int]
) -> None:
    """Upstream converts the list object, whatever its length."""
    crd, _ = dead_crd
    apply(kubectl, ns, new_object(crd, "only", "a:1"))
    got = raw("GET", f"/apis/{GROUP}/v1alpha1/namespaces/{ns}/{crd.plural}")
    assert got.status == 500
    assert got.json()["message"].startswith(
        f"conversion webhook for {OLD}, Kind={crd.kind}List failed: "
    )


def test_service_whose_endpoint_refuses_fails_reads(
    kubectl: Kubectl, raw: Any, ns: str, webhook: Webhook
) -> None:
    """The Service path, with the EndpointSlice pointing at a port nobody listens on."""
    port = closed_port()
    apply(kubectl, ns, *selectorless_service("gone", port))
    cfg = {
        "service": {"namespace": ns, "name": "gone", "path": "/convert"},
        "caBundle": base64.b64encode(webhook.pki.ca_pem).decode(),
    }
    manifest = crd_manifest("GoneBackend", cfg)
    install(kubectl, manifest)
    try:
        crd = Crd("GoneBackend", "gonebackends", "/convert")
        apply(kubectl, ns, new_object(crd, "x", "a:1"))
        got = raw("GET", f"/apis/{GROUP}/v1alpha1/namespaces/{ns}/gonebackends/x")
        assert got.status == 500
        assert got.json()["message"] == (
            f"conversion webhook for {NEW}, Kind=GoneBackend failed: "
            f'Post "https://gone.{ns}.svc:443/convert?timeout=30s": '
            f"dial tcp 127.0.0.1:{port}: connect: connection refused"
        )
    finally:
        kubectl("delete", "crd", manifest["metadata"]["name"], "--timeout=60s")


# --------------------------------------------------------------------------- a webhook in a pod

#: the webhook as a pod runs it: the conversion above, served over TLS on :8443
POD_SERVER = "\n\n".join(
    [
        "from __future__ import annotations\n"
        "import http.server, json, ssl\n"
        "from typing import Any\n"
        f"JSON = dict[str, Any]\nOLD, NEW = {OLD!r}, {NEW!r}",
        inspect.getsource(to_v1),
        inspect.getsource(to_v1alpha1),
        inspect.getsource(convert_review),
        """
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        req = review["request"]
        print("review", review["apiVersion"], req["desiredAPIVersion"],
              " ".join(o["metadata"]["name"] for o in req["objects"]), flush=True)
        body = json.dumps(convert_review(review)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
""",
        serve_tls("Handler"),
    ]
)


@pytest.mark.e2e
def test_webhook_served_from_a_pod(
    cm_server: Server, node: Any, endpointslice_controller: None, tmp_path: Path
) -> None:
    """The webhook runs in a pod behind a Service with a selector: the EndpointSlice
    controller publishes the pod, the API server dials its pod IP and checks TLS against
    ``converter.<ns>.svc``."""
    kubectl = Kubectl(cm_server.kubeconfig)
    ns = f"podconv-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)
    pki = make_pki(tmp_path, [f"converter.{ns}.svc"])
    manifest = crd_manifest(
        "PodBackend",
        {
            "service": {"namespace": ns, "name": "converter", "path": "/convert"},
            "caBundle": base64.b64encode(pki.ca_pem).decode(),
        },
    )
    try:
        run_server_pod(kubectl, ns, "converter", node.name, POD_SERVER, pki)
        pod_ip = kubectl.json("get", "pod", "converter", "-n", ns)["status"]["podIP"]

        def published() -> bool:
            for s in kubectl.json("get", "endpointslices", "-n", ns)["items"]:
                for ep in s.get("endpoints") or []:
                    if pod_ip in ep["addresses"] and ep["conditions"].get("ready"):
                        return True
            return False

        deadline = time.monotonic() + 60
        while not published():
            assert time.monotonic() < deadline, "the pod never reached an EndpointSlice"
            time.sleep(0.5)

        install(kubectl, manifest)
        crd = Crd("PodBackend", "podbackends", "/convert")
        apply(kubectl, ns, old_object(crd, "db"))
        as_v1 = kubectl.json("get", crd.resource("v1"), "db", "-n", ns)
        assert as_v1["spec"] == {"address": "db.example:5432"}
        listed = kubectl.json("get", crd.resource("v1alpha1"), "-n", ns)["items"]
        assert [o["spec"] for o in listed] == [{"host": "db.example", "port": 5432}]

        logs = kubectl("logs", "converter", "-n", ns)
        assert f"review apiextensions.k8s.io/v1 {NEW} db" in logs.splitlines()
        assert f"review apiextensions.k8s.io/v1 {OLD} db" in logs.splitlines()
    finally:
        kubectl("delete", "crd", manifest["metadata"]["name"], "--timeout=60s", check=False)
        kubectl("delete", "namespace", ns, "--wait=false", check=False)
