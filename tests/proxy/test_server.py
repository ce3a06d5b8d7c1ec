"""``pyk8s proxy`` as composed in pyk8s.server.proxy: health and metrics on its port, and
``--cleanup`` removing the jumps and chains (with the fake iptables: no root needed)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import aiohttp

from pyk8s.proxy.iptables import JUMPS
from pyk8s.server.proxy import Options, run
from tests.controllers.conftest import eventually
from tests.integration.conftest import Server, free_port
from tests.proxy.test_proxier import FAKE, calls


async def test_cleanup_removes_jumps_and_exits(tmp_path: Path) -> None:
    log = tmp_path / "log"
    await asyncio.wait_for(  # a hang guard: every fake iptables/nft call is a Python start
        run(Options(cleanup=True, command_prefix=[sys.executable, FAKE, str(log)])), 120
    )
    deletes = [c["argv"] for c in calls(log, "iptables") if "-D" in c["argv"]]
    assert len(deletes) == len(JUMPS)
    assert {c["argv"][2] for c in calls(log, "iptables-save")} == {"filter", "nat"}


async def test_serves_health_and_metrics(cm_server: Server, tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    opts = Options(
        kubeconfig=cm_server.kubeconfig,
        node_name="node-a",
        bind_address="127.0.0.1",
        port=port,
        metrics_bind_address=("127.0.0.1", metrics_port),
        command_prefix=[sys.executable, FAKE, str(tmp_path / "log")],
    )
    task = asyncio.create_task(run(opts))
    try:
        async with aiohttp.ClientSession() as http:

            async def healthy() -> bool:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                        return resp.status == 200
                except aiohttp.ClientConnectionError:
                    return False  # not listening yet

            await eventually(healthy, within=20)
            for listener in (port, metrics_port):  # kube-proxy's --metrics-bind-address too
                async with http.get(f"http://127.0.0.1:{listener}/metrics") as resp:
                    assert "kubeproxy_sync_proxy_rules_duration_seconds" in await resp.text()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 30)
