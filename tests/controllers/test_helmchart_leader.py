"""The Helm controller of ``pyk8s server`` runs on one server at a time: the holder of the
``kube-system/pyk8s`` Lease (k3s's ``k3s`` lease). Two servers' controllers campaign;
when the leader stops (releasing the lease), the other takes over and reconciles."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from pyk8s.client import ApiError, Client
from pyk8s.client.leaderelection import LEASES
from pyk8s.controllers.helmchart import CRDS, FINALIZER, HELMCHARTS
from pyk8s.server import manifests
from tests.controllers.conftest import eventually, serve_crds


async def _holder(client: Client) -> str:
    try:
        lease = await client.get(LEASES, manifests.LOCK_NAME, "kube-system")
    except ApiError:
        return ""
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


async def test_the_standby_takes_the_helm_controller_over(
    client: Client, cm_server: Any, tmp_path: Path
) -> None:
    await serve_crds(client, CRDS)
    kubeconfig = cm_server.kubeconfig
    stops = [asyncio.Event(), asyncio.Event()]
    first = asyncio.create_task(
        manifests.run_helm_controller(client, kubeconfig, tmp_path, stops[0])
    )
    leader = await eventually(lambda: _holder(client))
    second = asyncio.create_task(
        manifests.run_helm_controller(client, kubeconfig, tmp_path, stops[1])
    )
    name = f"lead-{uuid.uuid4().hex[:6]}"
    try:
        stops[0].set()  # the leader goes, releasing the lease
        await asyncio.wait_for(first, 30)

        async def taken_over() -> str:
            holder = await _holder(client)
            return holder if holder and holder != leader else ""

        await eventually(taken_over, within=30)
        chart = {
            "apiVersion": HELMCHARTS[0], "kind": HELMCHARTS[1],
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"chart": str(tmp_path / "no-such-chart.tgz")},
        }  # fmt: skip
        await client.create(HELMCHARTS, chart, "default")

        async def finalized() -> bool:
            got = await client.get(HELMCHARTS, name, "default")
            return FINALIZER in (got["metadata"].get("finalizers") or [])

        assert await eventually(finalized, within=30)  # the new leader reconciles
        await client.delete(HELMCHARTS, name, "default")

        async def gone() -> bool:
            try:
                await client.get(HELMCHARTS, name, "default")
            except ApiError as err:
                return err.status == 404
            return False

        assert await eventually(gone, within=30)  # ...and releases its finalizer
    finally:
        for stop in stops:
            stop.set()
        await asyncio.wait_for(asyncio.gather(first, second), 30)
