"""Fixtures for the client tests: a real API server (one per module) and a Client on it."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import Client, load_kubeconfig
from tests.integration.conftest import KUBECTL, Server, free_port


def _res(api_version: str, kind: str) -> Resource:
    r = REGISTRY.for_api_version(api_version, kind)
    assert r is not None
    return r


NAMESPACES = _res("v1", "Namespace")
CONFIGMAPS = _res("v1", "ConfigMap")
SECRETS = _res("v1", "Secret")
PODS = _res("v1", "Pod")
EVENTS = _res("v1", "Event")
LEASES = _res("coordination.k8s.io/v1", "Lease")
DEPLOYMENTS = _res("apps/v1", "Deployment")


def start_server(base: os.PathLike[str] | str) -> Server:
    if not os.path.exists(KUBECTL):
        pytest.skip(f"kubectl is not installed at {KUBECTL}")
    from pathlib import Path

    return Server(Path(base) / "data", free_port()).start()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("client"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def client(server: Server) -> AsyncIterator[Client]:
    async with Client(load_kubeconfig(server.kubeconfig)) as c:
        yield c


@pytest.fixture
async def ns(client: Client) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    await client.create(
        NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    return name


def configmap(name: str, data: dict[str, str] | None = None, **labels: str) -> dict[str, object]:
    meta: dict[str, object] = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {}}
