"""A dead node's DNS leaves kube-dns (issue 20): a DNS server whose Lease stops being
renewed gets its node's EndpointSlice marked not ready by the others, its slice and
Lease are deleted once silent for long, and a live server puts its own slice back ready
when it finds it marked down."""

from __future__ import annotations

import uuid
from typing import Any

from pyk8s.client import Client, SharedInformer
from pyk8s.dns.peers import LEASES, SLICES, PeerLiveness, lease_name
from pyk8s.server.dns import MANAGED_BY, publish_endpoint, slice_name
from tests.controllers.conftest import eventually


async def _ready(client: Client, node: str) -> bool | None:
    es = await client.get(SLICES, slice_name(node), "kube-system")
    return bool(es["endpoints"][0]["conditions"]["ready"])


async def test_silent_peers_leave_and_live_servers_come_back(client: Client) -> None:
    tag = uuid.uuid4().hex[:6]
    me, dead = f"me-{tag}", f"dead-{tag}"
    for node, address in ((me, "10.77.0.1"), (dead, "10.77.0.2")):
        await publish_endpoint(client, node, address, 53, True)
    slices = SharedInformer.for_resource(client, SLICES, namespace="kube-system")
    slices.start()
    await slices.wait_synced()
    republished: list[str] = []

    async def republish() -> None:
        republished.append(me)
        await publish_endpoint(client, me, "10.77.0.1", 53, True)

    # the dead node's server renewed its Lease once, then nothing more
    ghost = PeerLiveness(client, dead, slices.store, MANAGED_BY, republish)
    await ghost.run_once()
    peers = PeerLiveness(
        client, me, slices.store, MANAGED_BY, republish, lease_seconds=0.5, delete_after=3.0
    )
    try:
        await peers.run_once()  # first sight of the dead Lease: not silent yet
        assert await _ready(client, dead) is True

        async def taken_out() -> bool:
            await peers.run_once()
            return await _ready(client, dead) is False

        await eventually(taken_out, within=20, every=0.3)
        assert await _ready(client, me) is True

        # our own slice marked down while we run: put back on the next pass
        await publish_endpoint(client, me, "10.77.0.1", 53, False)

        async def back() -> bool:
            await peers.run_once()
            return await _ready(client, me) is True

        await eventually(back, within=20, every=0.3)
        assert republished

        async def removed() -> bool:
            await peers.run_once()
            names = {s["metadata"]["name"] for s in slices.store.list()}
            return slice_name(dead) not in names

        await eventually(removed, within=30, every=0.5)
        leases: dict[str, Any] = await client.list(LEASES, "kube-system")
        assert lease_name(dead) not in {x["metadata"]["name"] for x in leases["items"]}
        assert lease_name(me) in {x["metadata"]["name"] for x in leases["items"]}
    finally:
        await peers.stop(release=True)
        await slices.stop()
        await client.delete(SLICES, slice_name(me), "kube-system")
