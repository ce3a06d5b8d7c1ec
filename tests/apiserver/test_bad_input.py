"""Input that breaks nothing: typed decoding of every write, the last-resort handler and
the audit ID every response carries, in process.

An :class:`APIServer` over a SQLite store, served by aiohttp's test server (no
authentication: every caller is admitted). The property test mutates valid objects of
every built-in kind into wrong JSON types at random paths and asserts what a client sees:
a 4xx Status, never a 5xx, and nothing written.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from pyk8s.apiserver.server import APIServer, Config
from pyk8s.storage.sqlite import SqliteStore

JSON = dict[str, Any]
NS = "default"


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


class Cluster:
    """An in-process API server and a client of it, on an event loop of its own (the
    property test calls it from hypothesis's synchronous examples)."""

    def __init__(self, tmp_path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.tmp_path = tmp_path
        self.loop.run_until_complete(self._start())

    async def _start(self) -> None:
        self.store = await SqliteStore.open(self.tmp_path / "state.db")
        self.server = APIServer(self.store, config=Config(compact_interval=0))
        await self.server.start()
        self.client: TestClient[Any, Any] = TestClient(TestServer(self.server.app))
        await self.client.start_server()

    async def _stop(self) -> None:
        await self.client.close()
        await self.server.stop()
        await self.store.close()

    def close(self) -> None:
        self.loop.run_until_complete(self._stop())
        self.loop.close()

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> Answer:
        async def go() -> Answer:
            data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
            resp = await self.client.request(
                method, path, data=data, headers={"Content-Type": content_type, **(headers or {})}
            )
            return Answer(resp.status, await resp.read(), dict(resp.headers))

        return self.loop.run_until_complete(go())

    def revision(self) -> int:
        return self.loop.run_until_complete(self.store.current_revision())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("bad-input"))
    try:
        yield c
    finally:
        c.close()


# --------------------------------------------------------------------------- last resort


def test_an_unexpected_error_is_an_internal_error_without_python_internals(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise AttributeError("'str' object has no attribute 'get'")

    monkeypatch.setattr(cluster.server.handlers, "lookup", broken)
    with caplog.at_level(logging.ERROR, logger="pyk8s.apiserver.server"):
        got = cluster("DELETE", f"/api/v1/namespaces/{NS}/configmaps/anything")
    assert got.status == 500
    assert got.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Internal error occurred: an unexpected error occurred while serving "
        "the request",
        "reason": "InternalError",
        "code": 500,
    }
    assert b"AttributeError" not in got.body and b"Traceback" not in got.body
    audit_id = got.headers["Audit-Id"]
    logged = [r for r in caplog.records if audit_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert logged[0].exc_info[0] is AttributeError


def test_every_response_carries_an_audit_id(cluster: Cluster) -> None:
    ok = cluster("GET", f"/api/v1/namespaces/{NS}")
    missing = cluster("GET", "/api/v1/namespaces/nope")
    assert ok.status == 200 and missing.status == 404
    assert ok.headers["Audit-Id"] != missing.headers["Audit-Id"]
    assert len(ok.headers["Audit-Id"]) == 36  # a UUID, as upstream's
    mine = cluster("GET", "/version", headers={"Audit-ID": "my-request-1"})
    assert mine.headers["Audit-Id"] == "my-request-1"
