"""Audit events of an in-process API server: the Panic stage of a request that failed
unexpectedly, omitManagedFields, and dry-run and patch bodies as requestObject."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from pyk8s.apiserver.audit import Auditor, LogBackend
from pyk8s.apiserver.audit.policy import Policy, PolicyRule
from pyk8s.apiserver.server import APIServer, Config
from pyk8s.storage.sqlite import SqliteStore

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


class Audited:
    def __init__(self, server: APIServer, client: TestClient[Any, Any], log: Path) -> None:
        self.server = server
        self.client = client
        self.log = log

    async def events(self) -> list[dict[str, Any]]:
        """Every event, once the server has stopped (its backend writes all at stop)."""
        await self.client.close()
        await self.server.stop()
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
async def audited(tmp_path: Path) -> AsyncIterator[Audited]:
    store = await SqliteStore.open(tmp_path / "state.db")
    policy = Policy((PolicyRule("RequestResponse"),), omit_managed_fields=True)
    log = tmp_path / "audit.log"
    server = APIServer(
        store, config=Config(compact_interval=0), auditor=Auditor(policy, LogBackend(str(log)))
    )
    await server.start()
    client: TestClient[Any, Any] = TestClient(TestServer(server.app))
    await client.start_server()
    try:
        yield Audited(server, client, log)
    finally:
        await client.close()
        await server.stop()
        await store.close()


async def test_an_unexpected_failure_is_a_panic_event(
    audited: Audited, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object) -> None:
        raise RuntimeError("the strategy fell over")

    monkeypatch.setattr(audited.server.handlers, "serve", broken)
    resp = await audited.client.get(f"{CONFIGMAPS}/x")
    assert resp.status == 500
    audit_id = resp.headers["Audit-Id"]
    events = [e for e in await audited.events() if e["auditID"] == audit_id]
    assert [e["stage"] for e in events] == ["RequestReceived", "Panic"]
    assert events[1]["responseStatus"] == {
        "metadata": {},
        "status": "Failure",
        "message": "APIServer panic'd: the strategy fell over",
        "reason": "InternalError",
        "code": 500,
    }
    assert events[0]["stageTimestamp"] == events[0]["requestReceivedTimestamp"]


async def test_managed_fields_are_left_out_and_patches_are_logged(audited: Audited) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "cm",
            "managedFields": [{"manager": "me", "operation": "Update", "apiVersion": "v1"}],
        },
        "data": {"a": "1"},
    }
    created = await audited.client.post(CONFIGMAPS, json=body)
    assert created.status == 201
    patched = await audited.client.patch(
        f"{CONFIGMAPS}/cm",
        data=json.dumps({"data": {"b": "2"}}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patched.status == 200
    events = await audited.events()
    (create,) = [e for e in events if e["verb"] == "create" and e["stage"] == "ResponseComplete"]
    assert create["requestObject"]["data"] == {"a": "1"}
    assert "managedFields" not in create["requestObject"]["metadata"]
    assert "managedFields" not in create["responseObject"]["metadata"]
    assert create["objectRef"]["name"] == "cm"
    (patch,) = [e for e in events if e["verb"] == "patch" and e["stage"] == "ResponseComplete"]
    assert patch["requestObject"] == {"data": {"b": "2"}}
    assert patch["responseObject"]["data"] == {"a": "1", "b": "2"}
    assert patch["user"] == {"username": "system:anonymous", "groups": ["system:unauthenticated"]}


def test_a_client_gone_before_the_answer_is_closed_early() -> None:
    from aiohttp.test_utils import make_mocked_request

    from pyk8s.api.registry import REGISTRY
    from pyk8s.apiserver.authn import UserInfo
    from pyk8s.apiserver.requestinfo import parse_request

    lines: list[bytes] = []
    backend = LogBackend("-")
    backend.process = lines.append  # type: ignore[method-assign]
    auditor = Auditor(Policy((PolicyRule("Metadata"),)), backend)
    path = CONFIGMAPS
    info = parse_request("GET", path, {"watch": "true"}, REGISTRY)
    context = auditor.begin(
        make_mocked_request("GET", path + "?watch=true"), info, UserInfo("u"), "id-1"
    )
    assert context is not None
    context.complete(None)
    events = [json.loads(line) for line in lines]
    assert [e["stage"] for e in events] == [
        "RequestReceived",
        "ResponseStarted",
        "ResponseComplete",
    ]
    assert events[2]["responseStatus"] == {
        "metadata": {},
        "status": "Success",
        "message": "Connection closed early",
        "code": 200,
    }
    assert events[0]["verb"] == "watch" and events[0]["requestURI"] == path + "?watch=true"


def test_a_non_resource_request_verb_is_the_lower_cased_method() -> None:
    """Upstream's RequestInfo: ``put``/``post``/``head`` for paths outside resources."""
    from pyk8s.api.registry import REGISTRY
    from pyk8s.apiserver.requestinfo import parse_request

    assert parse_request("PUT", "/healthz", {}, REGISTRY).verb == "put"
    assert parse_request("POST", "/apis/apps/v1", {}, REGISTRY).verb == "post"
    assert parse_request("HEAD", "/version", {}, REGISTRY).verb == "head"
    resource = parse_request("PUT", "/api/v1/namespaces/a/pods/p", {}, REGISTRY)
    assert resource.resource_request and resource.verb == "update"
