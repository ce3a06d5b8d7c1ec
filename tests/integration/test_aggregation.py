"""API aggregation end to end: an extension API server behind an APIService, as users run it.

The extension server (``wardle.example.com/v1alpha1``, one namespaced resource
``flunders``) is a small HTTPS server this module runs on 127.0.0.1, behind a
selector-less Service whose EndpointSlice names 127.0.0.1 (as the conversion webhook
tests do). It trusts exactly what the ``extension-apiserver-authentication`` ConfigMap
publishes: it requires a client certificate signed by the ``requestheader-client-ca-file``
CA, and records the ``X-Remote-*`` headers of every request. The APIService is created
with the official Python client's ``kubernetes.utils.create_from_yaml``.

Checked as a user sees it: the local APIServices of every built-in and CRD group/version,
``kubectl get --raw``, ``kubectl api-resources`` and ``kubectl get flunders`` through the
proxy, a watch streamed event by event, requestheader authentication of the front-proxy
certificate, and the ``Available`` condition turning False with upstream's reasons when
the backend's endpoints or the backend itself go away.

One ``e2e`` test (root, containerd) runs the extension server in a pod (busybox with the
host's Python mounted, as the conversion webhook's e2e test does) behind a Service with a
selector, and deletes the pod.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import http.server
import inspect
import json
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.controllers import conftest as controllers_fixtures
from tests.integration import pod_servers
from tests.integration.conftest import Kubectl, RawClient, Server, free_port
from tests.integration.pod_servers import run_server_pod, serve_tls
from tests.integration.test_crd_conversion import (
    apply,
    make_pki,
    selectorless_service,
)
from tests.kubelet import node_fixtures

#: the e2e test's fixtures: its own API server and a kubelet with containerd
cm_server = controllers_fixtures.cm_server
node = node_fixtures.node
endpointslice_controller = pod_servers.endpointslice_controller

JSON = dict[str, Any]
GROUP = "wardle.example.com"
VERSION = "v1alpha1"
APISERVICE = f"{VERSION}.{GROUP}"


# --------------------------------------------------------------------------- the server


def flunder(namespace: str, name: str) -> JSON:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Flunder",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "resourceVersion": "1",
        },
        "spec": {"reference": name + "-ref"},
    }


def resource_list(group: str = GROUP, version: str = VERSION) -> JSON:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}",
        "resources": [
            {
                "name": "flunders",
                "singularName": "flunder",
                "namespaced": True,
                "kind": "Flunder",
                "verbs": ["get", "list", "watch"],
                "shortNames": ["fl"],
            }
        ],
    }


def openapi_v3_document() -> JSON:
    """The OpenAPI v3 document of the group/version (what ``kubectl explain`` reads)."""
    spec = {
        "type": "object",
        "description": "What the flunder refers to.",
        "properties": {
            "reference": {"type": "string", "description": "The name of another flunder."}
        },
    }
    flunder = {
        "type": "object",
        "description": "A Flunder is what the wardle server serves.",
        "properties": {
            "apiVersion": {"type": "string", "description": "The versioned schema."},
            "kind": {"type": "string", "description": "The REST resource."},
            "spec": spec,
        },
        "x-kubernetes-group-version-kind": [
            {"group": GROUP, "kind": "Flunder", "version": VERSION}
        ],
    }
    gvk = {"group": GROUP, "kind": "Flunder", "version": VERSION}
    list_path = f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/flunders"
    return {
        "openapi": "3.0.0",
        "info": {"title": "Wardle", "version": "v0.1"},
        "paths": {list_path: {"get": {"x-kubernetes-group-version-kind": gvk, "responses": {}}}},
        "components": {"schemas": {f"com.example.wardle.{VERSION}.Flunder": flunder}},
    }


def answer(path: str, accept: str) -> tuple[int, JSON]:
    """What the extension server answers a GET of ``path`` (no watch)."""
    parts = [p for p in path.split("/") if p]
    if parts == ["openapi", "v3"]:
        url = f"/openapi/v3/apis/{GROUP}/{VERSION}?hash=0123ABCD"
        return 200, {"paths": {f"apis/{GROUP}/{VERSION}": {"serverRelativeURL": url}}}
    if parts == ["openapi", "v3", "apis", GROUP, VERSION]:
        return 200, openapi_v3_document()
    if parts == ["apis"]:
        # a legacy group list only: the API server falls back to /apis/<group>/<version>
        version = {"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION}
        group = {"name": GROUP, "versions": [version], "preferredVersion": version}
        return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]}
    if len(parts) == 3 and parts[0] == "apis":
        return 200, resource_list(parts[1], parts[2])
    if len(parts) in (6, 7) and parts[:4] == ["apis", GROUP, VERSION, "namespaces"]:
        namespace = parts[4]
        if len(parts) == 7:
            return 200, flunder(namespace, parts[6])
        items = [flunder(namespace, "one"), flunder(namespace, "two")]
        if "as=Table" in accept:
            return 200, {
                "kind": "Table",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": "1"},
                "columnDefinitions": [
                    {"name": "Name", "type": "string", "format": "name"},
                    {"name": "Reference", "type": "string", "format": ""},
                ],
                "rows": [
                    {"cells": [o["metadata"]["name"], o["spec"]["reference"]], "object": None}
                    for o in items
                ],
            }
        return 200, {
            "kind": "FlunderList",
            "apiVersion": f"{GROUP}/{VERSION}",
            "metadata": {"resourceVersion": "1"},
            "items": items,
        }
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404}
    return 404, {**status, "reason": "NotFound", "message": "not found"}


def make_handler(
    record: Callable[[str, list[tuple[str, str]], str], None], release: Callable[[], None]
) -> type[http.server.BaseHTTPRequestHandler]:
    """Requests are recorded (path, headers, client certificate CN); a watch sends one
    event, waits for ``release()``, then sends the second."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            cert = self.connection.getpeercert() or {}  # type: ignore[attr-defined]
            cn = "".join(v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName")
            record(self.path, list(self.headers.items()), cn)
            path, _, query = self.path.partition("?")
            if "watch=true" in query or "watch=1" in query:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                namespace = path.split("/")[5]
                for n, name in enumerate(("one", "two")):
                    if n:
                        release()
                    event = json.dumps({"type": "ADDED", "object": flunder(namespace, name)})
                    data = (event + "\n").encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                return
            code, body = answer(path, self.headers.get("Accept", ""))
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@dataclass
class Extension:
    """The in-process extension server and the requests it received."""

    port: int
    ca_pem: bytes
    requests: list[tuple[str, list[tuple[str, str]], str]] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    httpd: http.server.ThreadingHTTPServer | None = None

    def record(self, path: str, headers: list[tuple[str, str]], cn: str) -> None:
        with self.lock:
            self.requests.append((path, headers, cn))

    def received(self, path: str) -> list[tuple[list[tuple[str, str]], str]]:
        with self.lock:
            return [(h, cn) for p, h, cn in self.requests if p.split("?", 1)[0] == path]

    def proxied(self, path: str) -> list[tuple[list[tuple[str, str]], str]]:
        """The requests for ``path`` made for users (not the API server's own checks)."""
        own = ("X-Remote-User", "system:kube-aggregator")
        return [(h, cn) for h, cn in self.received(path) if own not in h]

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


def front_proxy_ca(kubectl: Kubectl) -> str:
    """The CA the API server's front-proxy certificate comes from, as published."""
    cm = kubectl.json("get", "configmap", "-n", "kube-system", "extension-apiserver-authentication")
    return str(cm["data"]["requestheader-client-ca-file"])


def start_extension(
    directory: Path, service_name: str, namespace: str, kubectl: Kubectl
) -> Extension:
    pki = make_pki(directory, [f"{service_name}.{namespace}.svc"])
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(pki.cert_file), str(pki.key_file))
    ctx.load_verify_locations(cadata=front_proxy_ca(kubectl))
    ctx.verify_mode = ssl.CERT_REQUIRED
    ext = Extension(0, pki.ca_pem)
    handler = make_handler(ext.record, lambda: ext.released.wait(30))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    ext.port, ext.httpd = int(httpd.server_address[1]), httpd
    threading.Thread(target=httpd.serve_forever, name="extension", daemon=True).start()
    return ext


def apiservice_manifest(name: str, group: str, namespace: str, service: str, ca_pem: bytes) -> JSON:
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": name},
        "spec": {
            "group": group,
            "version": VERSION,
            "service": {"namespace": namespace, "name": service},
            "caBundle": base64.b64encode(ca_pem).decode(),
            "groupPriorityMinimum": 1000,
            "versionPriority": 15,
        },
    }


def available(kubectl: Kubectl, name: str) -> JSON:
    got = kubectl.json("get", "apiservice", name)
    return next(c for c in got["status"]["conditions"] if c["type"] == "Available")


@pytest.fixture(scope="module")
def ext_ns(kubectl: Kubectl) -> str:
    name = f"wardle-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    return name


@pytest.fixture(scope="module")
def extension(
    tmp_path_factory: pytest.TempPathFactory, kubectl: Kubectl, api: Any, ext_ns: str
) -> Iterator[Extension]:
    """The extension server registered with ``kubernetes.utils.create_from_yaml``."""
    from kubernetes import utils

    ext = start_extension(tmp_path_factory.mktemp("wardle"), "api", ext_ns, kubectl)
    apply(kubectl, ext_ns, *selectorless_service("api", ext.port))
    manifest = tmp_path_factory.mktemp("apiservice") / "apiservice.yaml"
    manifest.write_text(
        yaml.safe_dump(apiservice_manifest(APISERVICE, GROUP, ext_ns, "api", ext.ca_pem))
    )
    created = utils.create_from_yaml(api, str(manifest))
    assert created[0][0].metadata.name == APISERVICE
    kubectl("wait", "--for=condition=Available", f"apiservice/{APISERVICE}", "--timeout=60s")
    try:
        yield ext
    finally:
        kubectl("delete", "apiservice", APISERVICE, check=False)
        ext.released.set()
        ext.stop()


# --------------------------------------------------------------------------- local ones


def test_builtin_groups_have_local_apiservices(kubectl: Kubectl) -> None:
    for name in ("v1.", "v1.apps", "v2.autoscaling", "v1.apiextensions.k8s.io"):
        kubectl("wait", "--for=condition=Available", f"apiservice/{name}", "--timeout=30s")
    rows = {
        line.split()[0]: line.split()[1:] for line in kubectl("get", "apiservices").splitlines()
    }
    assert rows["NAME"] == ["SERVICE", "AVAILABLE", "AGE"]
    assert rows["v1."][:2] == ["Local", "True"]
    assert rows["v2.autoscaling"][:2] == ["Local", "True"]
    apps = kubectl.json("get", "apiservice", "v1.apps")
    assert apps["spec"] == {
        "group": "apps",
        "version": "v1",
        "groupPriorityMinimum": 17800,
        "versionPriority": 15,
    }
    assert apps["metadata"]["labels"] == {"kube-aggregator.kubernetes.io/automanaged": "onstart"}
    assert available(kubectl, "v1.apps") | {"lastTransitionTime": ""} == {
        "type": "Available",
        "status": "True",
        "reason": "Local",
        "message": "Local APIServices are always available",
        "lastTransitionTime": "",
    }


def test_crd_group_versions_come_and_go(kubectl: Kubectl) -> None:
    group = f"g{uuid.uuid4().hex[:6]}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gizmos.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo"},
            "versions": [
                {
                    "name": v,
                    "served": True,
                    "storage": v == "v1",
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                }
                for v in ("v1", "v1beta1")
            ],
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(crd))
    deadline = time.monotonic() + 30
    while kubectl.run("get", "apiservice", f"v1beta1.{group}", check=False).returncode:
        assert time.monotonic() < deadline, "no APIService for the CRD's group/version"
        time.sleep(0.2)
    kubectl("wait", "--for=condition=Available", f"apiservice/v1.{group}", "--timeout=30s")
    got = kubectl.json("get", "apiservice", f"v1.{group}")
    assert got["spec"]["groupPriorityMinimum"] == 1000
    assert got["spec"]["versionPriority"] == 100
    assert got["metadata"]["labels"] == {"kube-aggregator.kubernetes.io/automanaged": "true"}
    kubectl("delete", "crd", f"gizmos.{group}", "--timeout=60s")
    kubectl(
        "wait",
        "--for=delete",
        f"apiservice/v1.{group}",
        f"apiservice/v1beta1.{group}",
        "--timeout=30s",
    )


def test_python_client_e2e_apiservice_from_yaml_with_conflict(api: Any, tmp_path: Path) -> None:
    """The official Python client's own e2e check (test_utils.py), against our server."""
    from kubernetes import client, utils

    manifest = tmp_path / "api-service.yaml"
    manifest.write_text(
        "apiVersion: apiregistration.k8s.io/v1\n"
        "kind: APIService\n"
        "metadata:\n  name: v1alpha1.wardle.k8s.io\n"
        "spec:\n  insecureSkipTLSVerify: true\n  group: wardle.k8s.io\n"
        "  groupPriorityMinimum: 1000\n  versionPriority: 15\n"
        "  service:\n    name: api\n    namespace: wardle\n  version: v1alpha1\n"
    )
    utils.create_from_yaml(api, str(manifest))
    reg_api = client.ApiregistrationV1Api(api)
    try:
        svc = reg_api.read_api_service(name="v1alpha1.wardle.k8s.io")
        assert (svc.metadata.name, svc.spec.group, svc.spec.version) == (
            "v1alpha1.wardle.k8s.io",
            "wardle.k8s.io",
            "v1alpha1",
        )
        assert svc.spec.service.port == 443
        with pytest.raises(utils.FailToCreateError) as raised:
            utils.create_from_yaml(api, str(manifest))
        assert str(raised.value) == (
            'Error from server (Conflict): {"kind":"Status","apiVersion":"v1","metadata":{},'
            '"status":"Failure","message":"apiservices.apiregistration.k8s.io '
            '\\"v1alpha1.wardle.k8s.io\\" already exists","reason":"AlreadyExists",'
            '"details":{"name":"v1alpha1.wardle.k8s.io","group":"apiregistration.k8s.io",'
            '"kind":"apiservices"},"code":409}\n'
        )
    finally:
        reg_api.delete_api_service(name="v1alpha1.wardle.k8s.io", body={})


def test_invalid_apiservice_is_refused_with_upstreams_message(kubectl: Kubectl) -> None:
    bad = apiservice_manifest("wardle", GROUP, "default", "api", b"")
    del bad["spec"]["caBundle"]
    bad["spec"]["versionPriority"] = 0
    out = kubectl.run("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert out.returncode != 0
    assert (
        'The APIService "wardle" is invalid: \n'
        '* metadata.name: Invalid value: "wardle": must be `spec.version+"."+spec.group`: '
        '"v1alpha1.wardle.example.com"\n'
        "* spec.versionPriority: Invalid value: 0: must be positive and less than 1000"
    ) in out.stderr


# --------------------------------------------------------------------------- the proxy


def test_raw_get_is_proxied_with_the_users_identity(kubectl: Kubectl, extension: Extension) -> None:
    path = f"/apis/{GROUP}/{VERSION}"
    before = len(extension.proxied(path))
    got = json.loads(kubectl("get", "--raw", path))
    assert got == resource_list()
    headers, cn = extension.proxied(path)[before]
    assert cn == "front-proxy-client"
    names = [k.lower() for k, _ in headers]
    assert "authorization" not in names
    assert [v for k, v in headers if k.lower() == "x-remote-user"] == ["system:admin"]
    assert sorted(v for k, v in headers if k.lower() == "x-remote-group") == [
        "system:authenticated",
        "system:masters",
    ]


def test_impersonated_user_is_what_the_server_hears(kubectl: Kubectl, extension: Extension) -> None:
    path = f"/apis/{GROUP}/{VERSION}"
    before = len(extension.proxied(path))
    kubectl("get", "--raw", path, "--as=alice", "--as-group=dev")
    headers, _ = extension.proxied(path)[before]
    assert not [k for k, _ in headers if k.lower().startswith("impersonate-")]
    assert [v for k, v in headers if k.lower() == "x-remote-user"] == ["alice"]
    assert [v for k, v in headers if k.lower() == "x-remote-group"] == [
        "dev",
        "system:authenticated",
    ]


def test_the_api_server_authorizes_before_proxying(
    kubectl: Kubectl, extension: Extension, ext_ns: str
) -> None:
    """RBAC is checked here: a user without a grant never reaches the backend."""
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{ext_ns}/flunders"
    before = len(extension.proxied(path))
    denied = kubectl.run("get", "flunders", "-n", ext_ns, "--as=bob", check=False)
    assert denied.returncode != 0
    assert (
        f'flunders.{GROUP} is forbidden: User "bob" cannot list resource "flunders" in API '
        f'group "{GROUP}" in the namespace "{ext_ns}"'
    ) in denied.stderr
    assert len(extension.proxied(path)) == before
    kubectl(
        "create", "role", "flunder-reader", "-n", ext_ns,
        "--verb=get,list", f"--resource=flunders.{GROUP}",
    )  # fmt: skip
    kubectl("create", "rolebinding", "bob", "-n", ext_ns, "--role=flunder-reader", "--user=bob")
    assert kubectl("get", "flunders", "-n", ext_ns, "--as=bob", "-o", "name").split() == [
        f"flunder.{GROUP}/one",
        f"flunder.{GROUP}/two",
    ]
    headers, _ = extension.proxied(path)[before]
    assert [v for k, v in headers if k.lower() == "x-remote-user"] == ["bob"]


def test_availability_check_and_discovery_identify_the_aggregator(extension: Extension) -> None:
    checks = extension.received(f"/apis/{GROUP}/{VERSION}")
    aggregator = [h for h, _ in checks if ("X-Remote-User", "system:kube-aggregator") in h]
    assert aggregator, "the availability check never reached the server"
    assert ("X-Remote-Group", "system:masters") in aggregator[0]
    assert extension.received("/apis"), "the aggregated discovery document was never asked for"


def test_kubectl_api_resources_and_get_through_the_proxy(
    kubectl: Kubectl, extension: Extension, ext_ns: str
) -> None:
    resources = kubectl("api-resources", f"--api-group={GROUP}").splitlines()
    assert resources[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert resources[1].split() == ["flunders", "fl", f"{GROUP}/{VERSION}", "true", "Flunder"]
    table = kubectl("get", "flunders", "-n", ext_ns).splitlines()
    assert [line.split() for line in table] == [
        ["NAME", "REFERENCE"],
        ["one", "one-ref"],
        ["two", "two-ref"],
    ]
    one = kubectl.json("get", "fl", "one", "-n", ext_ns)
    assert one == flunder(ext_ns, "one")
    groups = json.loads(kubectl("get", "--raw", "/apis"))["groups"]
    assert {"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION} in next(
        g["versions"] for g in groups if g["name"] == GROUP
    )
    assert json.loads(kubectl("get", "--raw", f"/apis/{GROUP}"))["preferredVersion"]["version"] == (
        VERSION
    )


def test_kubectl_explain_reads_the_extension_servers_openapi(
    kubectl: Kubectl, raw: RawClient, extension: Extension
) -> None:
    got = raw("GET", "/openapi/v3", headers={"Accept": "application/json"})
    etag = got.headers["ETag"]
    assert raw("GET", "/openapi/v3", headers={"If-None-Match": etag}).status == 304
    index = got.json()["paths"]
    assert index[f"apis/{GROUP}/{VERSION}"] == {
        "serverRelativeURL": f"/openapi/v3/apis/{GROUP}/{VERSION}?hash=0123ABCD"
    }
    assert "apis/apps/v1" in index
    explained = kubectl("explain", "flunders")
    assert f"GROUP:      {GROUP}" in explained
    assert "KIND:       Flunder" in explained
    assert "A Flunder is what the wardle server serves." in explained
    field = kubectl("explain", "flunders.spec.reference")
    assert "The name of another flunder." in field


def test_python_client_lists_through_the_proxy(api: Any, extension: Extension, ext_ns: str) -> None:
    from kubernetes import client

    custom = client.CustomObjectsApi(api)
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, ext_ns, "flunders")
    assert [o["metadata"]["name"] for o in listed["items"]] == ["one", "two"]


def test_a_watch_streams_event_by_event(raw: RawClient, extension: Extension, ext_ns: str) -> None:
    """The first event arrives while the backend still holds the second one back."""
    extension.released.clear()
    host, port = raw.url.removeprefix("https://").split(":")
    conn = http.client.HTTPSConnection(host, int(port), context=raw.ctx, timeout=30)
    try:
        conn.request("GET", f"/apis/{GROUP}/{VERSION}/namespaces/{ext_ns}/flunders?watch=true")
        resp = conn.getresponse()
        assert resp.status == 200
        first = json.loads(resp.readline())
        assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "one")
        extension.released.set()
        second = json.loads(resp.readline())
        assert second["object"]["metadata"]["name"] == "two"
        assert resp.read() == b""
    finally:
        extension.released.set()
        conn.close()


def start_websocket_backend(pki_dir: Path, namespace: str, kubectl: Kubectl) -> tuple[int, bytes]:
    """An aiohttp extension server (its own thread and loop) for ``ws.example.com/v1``:
    discovery, and an echo WebSocket that first says who it is talking to."""
    from aiohttp import web

    pki = make_pki(pki_dir, [f"ws.{namespace}.svc"])
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(pki.cert_file), str(pki.key_file))
    ctx.load_verify_locations(cadata=front_proxy_ca(kubectl))
    ctx.verify_mode = ssl.CERT_REQUIRED

    async def discovery(request: web.Request) -> web.Response:
        return web.json_response(resource_list("ws.example.com", "v1"))

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("echo.pyk8s.io",))
        await ws.prepare(request)
        await ws.send_str("hello " + request.headers.get("X-Remote-User", ""))
        async for msg in ws:
            if msg.data == "bye":
                await ws.close(code=4000)
            elif isinstance(msg.data, str):
                await ws.send_str(msg.data.upper())
            else:
                await ws.send_bytes(bytes(reversed(msg.data)))
        return ws

    app = web.Application()
    app.router.add_get("/apis/ws.example.com/v1", discovery)
    app.router.add_get("/apis/ws.example.com/v1/namespaces/{ns}/things/{name}/echo", echo)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    loop.run_until_complete(site.start())
    port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    threading.Thread(target=loop.run_forever, name="ws-extension", daemon=True).start()
    return port, pki.ca_pem


def test_websocket_upgrade_is_relayed(
    tmp_path: Path, kubectl: Kubectl, server: Server, ns: str
) -> None:
    """A WebSocket under an aggregated API reaches the backend with the user's identity
    and the subprotocol offer; messages go both ways; the backend's close code comes back."""
    import aiohttp

    port, ca_pem = start_websocket_backend(tmp_path, ns, kubectl)
    apply(kubectl, ns, *selectorless_service("ws", port))
    manifest = apiservice_manifest("v1.ws.example.com", "ws.example.com", ns, "ws", ca_pem)
    manifest["spec"]["version"] = "v1"
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    tls = server.data_dir / "server" / "tls"
    ctx = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    ctx.load_cert_chain(str(tls / "admin.crt"), str(tls / "admin.key"))

    async def session() -> tuple[list[Any], str | None, int | None]:
        url = f"{server.url}/apis/ws.example.com/v1/namespaces/{ns}/things/x/echo"
        async with (
            aiohttp.ClientSession() as client,
            client.ws_connect(url, ssl=ctx, protocols=("echo.pyk8s.io",)) as ws,
        ):
            got: list[Any] = [(await ws.receive()).data]
            await ws.send_str("hi")
            got.append((await ws.receive()).data)
            await ws.send_bytes(b"abc")
            got.append((await ws.receive()).data)
            await ws.send_str("bye")
            closing = await ws.receive()
            assert closing.type == aiohttp.WSMsgType.CLOSE, closing
            return got, ws.protocol, closing.data

    try:
        kubectl(
            "wait", "--for=condition=Available", "apiservice/v1.ws.example.com", "--timeout=60s"
        )
        got, protocol, code = asyncio.run(session())
        assert got == ["hello system:admin", "HI", b"cba"]
        assert (protocol, code) == ("echo.pyk8s.io", 4000)
    finally:
        kubectl("delete", "apiservice", "v1.ws.example.com", check=False)


# --------------------------------------------------------------------------- requestheader


def _self_subject_review(server: Server, cert: str, headers: dict[str, str]) -> tuple[int, JSON]:
    tls = server.data_dir / "server" / "tls"
    ctx = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    ctx.load_cert_chain(str(tls / f"{cert}.crt"), str(tls / f"{cert}.key"))
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=30)
    body = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    try:
        conn.request(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            body=body,
            headers={"Content-Type": "application/json", **headers},
        )
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


ASSERTED = {
    "X-Remote-User": "alice",
    "X-Remote-Group": "dev",
    "X-Remote-Extra-Acme.com%2Fproject": "x",
}


def test_front_proxy_certificate_asserts_the_user(server: Server) -> None:
    code, review = _self_subject_review(server, "front-proxy-client", ASSERTED)
    assert code == 201, review
    assert review["status"]["userInfo"] == {
        "username": "alice",
        "groups": ["dev", "system:authenticated"],
        "extra": {"acme.com/project": ["x"]},
    }


def test_cluster_certificates_cannot_assert_users(server: Server) -> None:
    code, review = _self_subject_review(server, "admin", ASSERTED)
    assert code == 201
    assert review["status"]["userInfo"]["username"] == "system:admin"


def test_front_proxy_certificate_without_a_user_is_unauthorized(server: Server) -> None:
    code, status = _self_subject_review(server, "front-proxy-client", {})
    assert (code, status["reason"]) == (401, "Unauthorized")


def test_extension_apiserver_authentication_configmap(kubectl: Kubectl, server: Server) -> None:
    data = kubectl.json(
        "get", "configmap", "-n", "kube-system", "extension-apiserver-authentication"
    )["data"]
    tls = server.data_dir / "server" / "tls"
    assert data == {
        "client-ca-file": (tls / "ca.crt").read_text(),
        "requestheader-client-ca-file": (tls / "front-proxy-ca.crt").read_text(),
        "requestheader-allowed-names": '["front-proxy-client"]',
        "requestheader-username-headers": '["X-Remote-User"]',
        "requestheader-group-headers": '["X-Remote-Group"]',
        "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
    }


def test_requestheader_flags(tmp_path: Path) -> None:
    """kube-apiserver's --requestheader-* flags: other header names, published as such."""
    srv = Server(
        tmp_path / "data",
        free_port(),
        extra_args=(
            "--requestheader-username-headers=X-Proxy-User",
            "--requestheader-group-headers=X-Proxy-Group",
            "--requestheader-allowed-names=front-proxy-client,other-proxy",
        ),
    ).start()
    try:
        code, _ = _self_subject_review(srv, "front-proxy-client", ASSERTED)
        assert code == 401  # X-Remote-User is no longer the username header
        code, review = _self_subject_review(
            srv, "front-proxy-client", {"X-Proxy-User": "bob", "X-Proxy-Group": "ops"}
        )
        assert code == 201
        assert review["status"]["userInfo"] == {
            "username": "bob",
            "groups": ["ops", "system:authenticated"],
        }
        data = Kubectl(srv.kubeconfig).json(
            "get", "configmap", "-n", "kube-system", "extension-apiserver-authentication"
        )["data"]
        assert data["requestheader-username-headers"] == '["X-Proxy-User"]'
        assert data["requestheader-allowed-names"] == '["front-proxy-client","other-proxy"]'
    finally:
        srv.stop()


# --------------------------------------------------------------------------- availability


AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def discovered(raw: RawClient, group: str) -> list[JSON]:
    """The versions aggregated discovery lists for ``group``."""
    got = raw("GET", "/apis", headers={"Accept": AGGREGATED}).json()
    return next((i["versions"] for i in got["items"] if i["metadata"]["name"] == group), [])


def test_available_turns_false_when_the_backend_goes_away(
    tmp_path: Path, kubectl: Kubectl, raw: RawClient, ns: str
) -> None:
    """Its EndpointSlice deleted: EndpointsNotFound at once (the watch of EndpointSlices);
    back, then the server stopped: FailedDiscoveryCheck at the next periodic check."""
    group = "down.example.com"
    name = f"{VERSION}.{group}"
    ext = start_extension(tmp_path, "down", ns, kubectl)
    service, endpoints = selectorless_service("down", ext.port)
    apply(kubectl, ns, service, endpoints)
    kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(apiservice_manifest(name, group, ns, "down", ext.ca_pem)),
    )
    try:
        kubectl("wait", "--for=condition=Available", f"apiservice/{name}", "--timeout=50s")
        kubectl("delete", "endpointslice", "-n", ns, endpoints["metadata"]["name"])
        kubectl("wait", "--for=condition=Available=False", f"apiservice/{name}", "--timeout=30s")
        condition = available(kubectl, name)
        assert (condition["reason"], condition["message"]) == (
            "EndpointsNotFound",
            f'cannot find endpointslices for service/down in "{ns}"',
        )
        row = kubectl("get", "apiservice", name, "--no-headers").split()
        assert row[1:3] == [f"{ns}/down", "False"] and row[3] == "(EndpointsNotFound)"
        [version] = discovered(raw, group)
        assert (version["version"], version["freshness"]) == (VERSION, "Stale")
        out = kubectl.run("get", "--raw", f"/apis/{group}/{VERSION}", check=False)
        assert out.returncode != 0
        assert (
            "Error from server (ServiceUnavailable): "
            "the server is currently unable to handle the request" in out.stderr
        )

        apply(kubectl, ns, endpoints)
        kubectl("wait", "--for=condition=Available", f"apiservice/{name}", "--timeout=60s")
        [version] = discovered(raw, group)
        assert version["freshness"] == "Current"
        assert [r["resource"] for r in version["resources"]] == ["flunders"]
        ext.stop()
        kubectl("wait", "--for=condition=Available=False", f"apiservice/{name}", "--timeout=90s")
        condition = available(kubectl, name)
        url = f"https://127.0.0.1:{ext.port}/apis/{group}/{VERSION}"
        assert condition["reason"] == "FailedDiscoveryCheck"
        assert condition["message"] == (
            f'failing or missing response from {url}: Get "{url}": '
            f"dial tcp 127.0.0.1:{ext.port}: connect: connection refused"
        )
    finally:
        kubectl("delete", "apiservice", name, check=False)
        ext.stop()


# --------------------------------------------------------------------------- in a pod

#: the extension server as a pod runs it: the same answers over TLS on :8443, each
#: request's path and X-Remote-User printed
POD_SERVER = "\n\n".join(
    [
        "from __future__ import annotations\n"
        "import http.server, json, ssl, time\n"
        "from typing import Any, Callable\n"
        f"JSON = dict[str, Any]\nGROUP, VERSION = {GROUP!r}, {VERSION!r}",
        inspect.getsource(flunder),
        inspect.getsource(resource_list),
        inspect.getsource(openapi_v3_document),
        inspect.getsource(answer),
        inspect.getsource(make_handler),
        """
def record(path, headers, cn):
    user = dict(headers).get("X-Remote-User", "")
    print("request", path, user, cn, flush=True)
""",
        serve_tls("make_handler(record, lambda: None)", verify_clients=True),
    ]
)


@pytest.mark.e2e
def test_extension_server_in_a_pod(
    cm_server: Server, node: Any, endpointslice_controller: None, tmp_path: Path
) -> None:
    """The extension server runs in a pod behind a Service with a selector: the
    EndpointSlice controller publishes the pod, the API server proxies to its pod IP;
    the pod deleted, the APIService turns unavailable."""
    kubectl = Kubectl(cm_server.kubeconfig)
    ns = f"wardle-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)
    pki = make_pki(tmp_path, [f"wardle.{ns}.svc"])
    manifest = apiservice_manifest(APISERVICE, GROUP, ns, "wardle", pki.ca_pem)
    try:
        run_server_pod(
            kubectl, ns, "wardle", node.name, POD_SERVER, pki,
            {"requestheader-ca.crt": front_proxy_ca(kubectl)},
        )  # fmt: skip
        kubectl("apply", "-f", "-", input=json.dumps(manifest))
        kubectl("wait", "--for=condition=Available", f"apiservice/{APISERVICE}", "--timeout=90s")

        assert json.loads(kubectl("get", "--raw", f"/apis/{GROUP}/{VERSION}")) == resource_list()
        resources = kubectl("api-resources", f"--api-group={GROUP}").splitlines()
        assert resources[1].split() == ["flunders", "fl", f"{GROUP}/{VERSION}", "true", "Flunder"]
        assert kubectl("get", "flunders", "-n", ns, "--no-headers").split() == [
            "one", "one-ref", "two", "two-ref",
        ]  # fmt: skip
        logs = kubectl("logs", "wardle", "-n", ns).splitlines()
        assert f"request /apis/{GROUP}/{VERSION} system:admin front-proxy-client" in logs

        kubectl("delete", "pod", "wardle", "-n", ns, "--grace-period=0", "--force")
        kubectl(
            "wait", "--for=condition=Available=False", f"apiservice/{APISERVICE}",
            "--timeout=90s",
        )  # fmt: skip
        condition = available(kubectl, APISERVICE)
        assert condition["reason"] in (
            "MissingEndpoints",
            "EndpointsNotFound",
            "FailedDiscoveryCheck",
        )
        out = kubectl.run("get", "flunders", "-n", ns, check=False)
        assert out.returncode != 0
    finally:
        kubectl("delete", "apiservice", APISERVICE, check=False)
        kubectl("delete", "namespace", ns, "--wait=false", check=False)
