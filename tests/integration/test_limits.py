"""The in-flight limits of a real ``pyk8s apiserver``, seen by its clients.

A server with ``--max-requests-inflight 1 --max-mutating-requests-inflight 1`` and API
Priority and Fairness off (``--enable-priority-and-fairness=false``: the two limits answer
429 themselves, as upstream's max-in-flight filter; APF has
tests/apiserver/test_flowcontrol.py) and a token user (``alice``, not in
``system:masters``). A request is held in flight by sending its headers and
withholding its body (the server has admitted it and waits to read it), so "the limit is
full" is a state the test makes, not a race it hopes for.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.conftest import Kubectl, RawResponse, Server, free_port

TOKEN = "alice-token-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("limits")
    tokens = base / "tokens.csv"
    tokens.write_text(f'{TOKEN},alice,alice-uid,"developers"\n')
    srv = Server(
        base / "data",
        free_port(),
        extra_args=(
            "--max-requests-inflight=1",
            "--max-mutating-requests-inflight=1",
            "--enable-priority-and-fairness=false",
            f"--token-auth-file={tokens}",
        ),
    ).start()
    Kubectl(srv.kubeconfig)(
        "create", "clusterrolebinding", "alice-edits", "--clusterrole=cluster-admin", "--user=alice"
    )
    try:
        yield srv
    finally:
        srv.stop()


def tls(server: Server) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(server.data_dir / "server" / "tls" / "ca.crt"))


def as_alice(server: Server, method: str, path: str, body: Any = None) -> RawResponse:
    req = urllib.request.Request(
        server.url + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, context=tls(server), timeout=30) as r:
            return RawResponse(r.status, dict(r.headers), r.read())
    except urllib.error.HTTPError as err:
        return RawResponse(err.code, dict(err.headers), err.read())


class HeldRequest:
    """A request whose body is withheld: admitted, it holds its slot until :meth:`finish`."""

    def __init__(self, server: Server, method: str, path: str, body: Any) -> None:
        self.body = json.dumps(body).encode()
        raw = socket.create_connection(("127.0.0.1", server.port))
        self.sock = tls(server).wrap_socket(raw, server_hostname="127.0.0.1")
        self.sock.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n".encode()
        )

    def finish(self) -> int:
        self.sock.sendall(self.body)
        self.sock.settimeout(30)
        answer = b""
        while chunk := self.sock.recv(65536):
            answer += chunk
        self.sock.close()
        return int(answer.split(b" ", 2)[1])


def configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}


def rejected_once_admitted(server: Server, ns: str) -> RawResponse:
    """POSTs as alice until the held request has its slot: each is either created (the
    held one not admitted yet) or the 429 that proves it was."""
    for i in range(200):
        got = as_alice(server, "POST", f"/api/v1/namespaces/{ns}/configmaps", configmap(f"p{i}"))
        if got.status == 429:
            return got
        assert got.status == 201, got.body
    raise AssertionError("the held request never took its slot")


def test_a_mutating_request_over_the_limit_is_429_with_retry_after(limited: Server) -> None:
    kubectl = Kubectl(limited.kubeconfig)
    ns = f"t-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", ns)
    held = HeldRequest(limited, "POST", f"/api/v1/namespaces/{ns}/configmaps", configmap("held"))

    got = rejected_once_admitted(limited, ns)
    assert got.headers["Retry-After"] == "1"
    assert got.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert got.body == b"Too many requests, please try again later.\n"

    # the official Python client sees TooManyRequests with the header
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    conf = client.Configuration()
    conf.host = limited.url
    conf.ssl_ca_cert = str(limited.data_dir / "server" / "tls" / "ca.crt")
    conf.api_key = {"authorization": f"Bearer {TOKEN}"}
    with client.ApiClient(conf) as api_client:
        core = client.CoreV1Api(api_client)
        with pytest.raises(ApiException) as err:
            core.create_namespaced_config_map(ns, configmap("from-python"))
        assert err.value.status == 429
        assert err.value.headers["Retry-After"] == "1"
        # reads have their own limit, untouched by the held write
        assert core.list_namespaced_config_map(ns).items is not None

    # system:masters (the admin kubeconfig) is served over the limit
    kubectl("create", "configmap", "by-admin", "-n", ns)

    assert held.finish() == 201
    after = as_alice(limited, "POST", f"/api/v1/namespaces/{ns}/configmaps", configmap("after"))
    assert after.status == 201, after.body

    metrics = kubectl("get", "--raw", "/metrics")
    terminations = [
        line
        for line in metrics.splitlines()
        if line.startswith("apiserver_request_terminations_total{")
        and 'code="429"' in line
        and 'resource="configmaps"' in line
        and 'verb="POST"' in line
    ]
    assert terminations and float(terminations[0].rsplit(" ", 1)[1]) >= 2
    assert 'apiserver_current_inflight_requests{request_kind="mutating"}' in metrics


def test_watches_hold_no_slot(limited: Server) -> None:
    """With room for one read at a time, three open watches leave it free."""
    watches = []
    for _ in range(3):
        req = urllib.request.Request(
            limited.url + "/api/v1/configmaps?watch=true&timeoutSeconds=60",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        resp = urllib.request.urlopen(req, context=tls(limited), timeout=30)
        assert resp.status == 200  # headers came: the watch is being served
        watches.append(resp)
    try:
        got = as_alice(limited, "GET", "/api/v1/namespaces/default/configmaps")
        assert got.status == 200, got.body
    finally:
        for resp in watches:
            resp.close()


def test_cheap_reads_read_at_once_are_shed_and_the_admin_never_is(limited: Server) -> None:
    """Cached lists finish in one step of the server's event loop, so at handler start at
    most one is ever being served; a request counts from when it is read, so a burst of
    them on many connections is over a limit of one, as upstream's server would count it
    (each read request starts its handler chain at once there). The admin (in
    system:masters) sends in the same bursts and is always served."""
    ctx = tls(limited)
    admin_ctx = tls(limited)
    pki = limited.data_dir / "server" / "tls"
    admin_ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    path = "/api/v1/namespaces/default/configmaps"
    alice = [http.client.HTTPSConnection("127.0.0.1", limited.port, context=ctx) for _ in range(30)]
    admin = [
        http.client.HTTPSConnection("127.0.0.1", limited.port, context=admin_ctx) for _ in range(5)
    ]
    statuses: dict[str, list[int]] = {"alice": [], "admin": []}
    retry_afters: list[str | None] = []
    try:
        for _ in range(50):  # bursts until one proves the shedding (the first, as a rule)
            for conn in alice:
                conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
            for conn in admin:
                conn.request("GET", path)
            for who, conns in (("alice", alice), ("admin", admin)):
                for conn in conns:
                    resp = conn.getresponse()
                    resp.read()
                    statuses[who].append(resp.status)
                    if resp.status == 429:
                        retry_afters.append(resp.getheader("Retry-After"))
            if 429 in statuses["alice"]:
                break
    finally:
        for conn in alice + admin:
            conn.close()
    assert 429 in statuses["alice"], "no burst was over the limit"
    assert set(statuses["alice"]) == {200, 429}, statuses["alice"]
    assert retry_afters and all(value == "1" for value in retry_afters)
    assert set(statuses["admin"]) == {200}
