"""The kubelet's API asks the API server who may call it (upstream's webhook mode).

A kubelet server for node ``n`` with a real API server behind its authorizer; callers
present client certificates from the cluster CA (or a service-account token) over real
HTTPS, and get what a SubjectAccessReview on ``nodes/<subresource>`` allows, with
upstream's refusal texts.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest

from pyk8s.apiserver.certs import Pki, issue_client_cert
from pyk8s.client import Client
from pyk8s.kubelet.auth import KubeletAuth, request_attributes
from pyk8s.kubelet.cri import CRIClient
from pyk8s.kubelet.server import KubeletServer, kubelet_ssl_context
from tests.integration.conftest import KUBECTL, Server


def test_paths_map_to_upstreams_subresources() -> None:
    assert request_attributes("GET", "/stats/summary") == ("get", "stats")
    assert request_attributes("GET", "/metrics/resource") == ("get", "metrics")
    assert request_attributes("GET", "/metrics") == ("get", "metrics")
    assert request_attributes("GET", "/logs/syslog") == ("get", "log")
    assert request_attributes("GET", "/spec/") == ("get", "spec")
    assert request_attributes("POST", "/exec/ns/pod/c?command=ls") == ("create", "proxy")
    assert request_attributes("GET", "/containerLogs/ns/pod/c") == ("get", "proxy")
    assert request_attributes("GET", "/healthz") == ("get", "proxy")


async def _summary() -> dict[str, Any]:
    return {"node": {"nodeName": "n"}, "pods": []}


@pytest.fixture
async def kubelet(cm_server: Server, client: Client, tmp_path: Path) -> AsyncIterator[str]:
    """A kubelet API for node ``n`` on loopback; its URL."""
    ctx = kubelet_ssl_context(tmp_path / "pki", cm_server.data_dir / "server" / "tls" / "ca.crt")
    ctx.verify_mode = ssl.CERT_OPTIONAL  # as pyk8s kubelet with webhook auth: a token will do
    server = KubeletServer(
        cast(CRIClient, None),  # no container is asked for here
        host="127.0.0.1",
        port=0,
        ssl_context=ctx,
        summary=_summary,
        auth=KubeletAuth(client, "n"),
    )
    await server.start()
    try:
        yield f"https://127.0.0.1:{server.port}"
    finally:
        await server.stop()


def _cert_context(cm_server: Server, tmp_path: Path, user: str, *groups: str) -> ssl.SSLContext:
    pki = Pki.at(cm_server.data_dir / "server" / "tls")
    cert, key = issue_client_cert(pki, user, groups)
    name = uuid.uuid4().hex
    (tmp_path / f"{name}.crt").write_bytes(cert)
    (tmp_path / f"{name}.key").write_bytes(key)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the kubelet's own serving cert is self-signed
    ctx.load_cert_chain(tmp_path / f"{name}.crt", tmp_path / f"{name}.key")
    return ctx


async def _get(url: str, ctx: ssl.SSLContext, headers: dict[str, str] | None = None) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, ssl=ctx, headers=headers or {}) as resp,
    ):
        return resp.status, await resp.text()


def _kubectl(cm_server: Server, *args: str, stdin: str | None = None) -> str:
    out = subprocess.run(
        [KUBECTL, "--kubeconfig", str(cm_server.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


async def test_the_api_server_and_admins_get_through(
    kubelet: str, cm_server: Server, tmp_path: Path
) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    tls = cm_server.data_dir / "server" / "tls"
    ctx.load_cert_chain(tls / "apiserver-kubelet-client.crt", tls / "apiserver-kubelet-client.key")
    assert await _get(f"{kubelet}/healthz", ctx) == (200, "ok")
    status, body = await _get(f"{kubelet}/stats/summary", ctx)
    assert status == 200 and json.loads(body)["node"]["nodeName"] == "n"


async def test_another_node_is_refused_with_upstreams_text(
    kubelet: str, cm_server: Server, tmp_path: Path
) -> None:
    other = _cert_context(cm_server, tmp_path, "system:node:m", "system:nodes")
    assert await _get(f"{kubelet}/stats/summary", other) == (
        403,
        "Forbidden (user=system:node:m, verb=get, resource=nodes, subresource=stats)",
    )
    assert await _get(f"{kubelet}/healthz", other) == (
        403,
        "Forbidden (user=system:node:m, verb=get, resource=nodes, subresource=proxy)",
    )


async def test_rbac_on_nodes_subresources_decides(
    kubelet: str, cm_server: Server, tmp_path: Path
) -> None:
    user = f"scraper-{uuid.uuid4().hex[:6]}"
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": user},
        "rules": [{"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]}],
    }
    _kubectl(cm_server, "apply", "-f", "-", stdin=json.dumps(role))
    _kubectl(cm_server, "create", "clusterrolebinding", user, f"--clusterrole={user}",
             f"--user={user}")  # fmt: skip
    scraper = _cert_context(cm_server, tmp_path, user)
    status, _ = await _get(f"{kubelet}/metrics", scraper)
    assert status == 200
    assert await _get(f"{kubelet}/stats/summary", scraper) == (
        403,
        f"Forbidden (user={user}, verb=get, resource=nodes, subresource=stats)",
    )


async def test_a_bearer_token_is_reviewed(kubelet: str, cm_server: Server, tmp_path: Path) -> None:
    ns = f"kz-{uuid.uuid4().hex[:6]}"
    _kubectl(cm_server, "create", "namespace", ns)
    _kubectl(cm_server, "-n", ns, "create", "serviceaccount", "stats")
    _kubectl(cm_server, "create", "clusterrolebinding", ns,
             "--clusterrole=system:kubelet-api-admin", f"--serviceaccount={ns}:stats")  # fmt: skip
    token = _kubectl(cm_server, "-n", ns, "create", "token", "stats").strip()
    anonymous = ssl.create_default_context()
    anonymous.check_hostname = False
    anonymous.verify_mode = ssl.CERT_NONE
    auth = {"Authorization": f"Bearer {token}"}
    status, body = await _get(f"{kubelet}/stats/summary", anonymous, auth)
    assert status == 200, body
    assert await _get(f"{kubelet}/stats/summary", anonymous) == (401, "Unauthorized")
    bad = {"Authorization": "Bearer not-a-token"}
    assert await _get(f"{kubelet}/stats/summary", anonymous, bad) == (401, "Unauthorized")
