"""Two API servers over one store are both in the ``kubernetes`` Endpoints and
EndpointSlice (upstream's lease endpoint reconciler); one that stops cleanly leaves at
once, one that dies leaves when its lease expires; each server's identity Lease is
renewed and a stale one collected."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pyk8s.api import errors
from pyk8s.apiserver.endpoints_reconciler import LEASE_PREFIX
from pyk8s.apiserver.identity_lease import IDENTITY_LABEL, lease_name
from pyk8s.apiserver.server import APIServer, Config
from pyk8s.storage import Store
from pyk8s.storage.sqlite import SqliteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await SqliteStore.open(tmp_path / "state.db")
    try:
        yield s
    finally:
        await s.close()


def _server(store: Store, ip: str) -> APIServer:
    return APIServer(
        store,
        config=Config(
            compact_interval=0,
            advertise_address=ip,
            endpoint_lease_ttl=2,
            endpoint_reconcile_interval=0.2,
        ),
    )


async def _addresses(server: APIServer) -> tuple[list[str], list[str]]:
    """(Endpoints addresses, EndpointSlice addresses) of default/kubernetes."""
    reg = server.handlers.registry
    ep_r = reg.for_api_version("v1", "Endpoints")
    slice_r = reg.for_api_version("discovery.k8s.io/v1", "EndpointSlice")
    assert ep_r is not None and slice_r is not None
    ep: dict[str, Any]
    ep, _ = await server.handlers.rest(ep_r).read("default", "kubernetes")
    sl, _ = await server.handlers.rest(slice_r).read("default", "kubernetes")
    return (
        [a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []],
        [a for e in sl.get("endpoints") or [] for a in e["addresses"]],
    )


async def _until(server: APIServer, want: list[str], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while (got := await _addresses(server)) != (want, want):
        assert time.monotonic() < deadline, f"endpoints {got}, want {want}"
        await asyncio.sleep(0.1)


async def test_both_servers_listed_and_a_dead_one_expires(store: Store) -> None:
    a, b = _server(store, "10.0.0.2"), _server(store, "10.0.0.1")
    await a.start()
    await b.start()
    try:
        # b's start reconciled with a's lease live: both, in address order, and a's
        # next passes leave them so
        assert await _addresses(b) == (["10.0.0.1", "10.0.0.2"],) * 2
        ep_r = a.handlers.registry.for_api_version("v1", "Endpoints")
        assert ep_r is not None
        written = (await store.get(ep_r.key("default", "kubernetes"))).mod_revision
        # a renews its lease (the proof that it reconciled again) ...
        lease = (await store.get(LEASE_PREFIX + "10.0.0.2")).mod_revision
        deadline = time.monotonic() + 15
        while (await store.get(LEASE_PREFIX + "10.0.0.2")).mod_revision == lease:
            assert time.monotonic() < deadline, "the lease was not renewed"
            await asyncio.sleep(0.1)
        # ... and leaves the unchanged endpoints alone
        assert (await store.get(ep_r.key("default", "kubernetes"))).mod_revision == written

        # b dies (no clean shutdown): it drops out when its lease expires
        await b.endpoints.stop(remove=False)
        await _until(a, ["10.0.0.2"])
        assert [kv.key for kv in (await store.list(LEASE_PREFIX)).kvs] == [
            LEASE_PREFIX + "10.0.0.2"
        ]
    finally:
        await b.stop()
        await a.stop()


async def test_a_clean_stop_leaves_at_once(store: Store) -> None:
    a, b = _server(store, "10.0.0.1"), _server(store, "10.0.0.2")
    await a.start()
    await b.start()
    try:
        await _until(a, ["10.0.0.1", "10.0.0.2"])
        await b.stop()
        # the stop itself rewrote them: no wait for the lease to expire
        assert await _addresses(a) == (["10.0.0.1"],) * 2
    finally:
        await a.stop()


async def test_identity_lease_renewed_and_expired_ones_collected(store: Store) -> None:
    a = _server(store, "10.0.0.1")
    await a.start()
    try:
        r = a.identity.resource
        rest = a.handlers.rest(r)
        own, _ = await rest.read("kube-system", lease_name(socket.gethostname()))
        assert own["metadata"]["labels"][IDENTITY_LABEL] == "kube-apiserver"
        assert own["spec"]["leaseDurationSeconds"] == 3600
        assert own["spec"]["holderIdentity"].startswith(own["metadata"]["name"] + "_")
        stale = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "apiserver-gone", "namespace": "kube-system",
                         "labels": {IDENTITY_LABEL: "kube-apiserver"}},
            "spec": {"holderIdentity": "apiserver-gone_x", "leaseDurationSeconds": 3600,
                     "renewTime": "2020-01-01T00:00:00.000000Z"},
        }  # fmt: skip
        await a.handlers.create_object(r, stale)
        deadline = time.monotonic() + 15
        while True:  # the next tick renews ours and collects the stale one
            renewed, _ = await rest.read("kube-system", own["metadata"]["name"])
            if renewed["spec"]["renewTime"] != own["spec"]["renewTime"]:
                break
            assert time.monotonic() < deadline, "the identity lease was not renewed"
            await asyncio.sleep(0.1)
        # the same tick collects the stale one right after the renewal
        while True:
            try:
                await rest.read("kube-system", "apiserver-gone")
            except errors.StatusError as err:
                assert err.code == 404
                break
            assert time.monotonic() < deadline, "the expired identity lease was not collected"
            await asyncio.sleep(0.1)
    finally:
        await a.stop()
