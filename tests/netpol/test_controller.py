"""The policy controller's loop against a real API server, with the proxy tests' fake nft
(tests/proxy/fake_iptables.py) recording what would have run: no root needed."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from pathlib import Path
from typing import Any

from pyk8s.api.registry import REGISTRY
from pyk8s.client import Client
from pyk8s.netpol.controller import NAMESPACES, PODS, POLICIES, NetpolController
from pyk8s.netpol.rules import policy_hash
from tests.controllers.conftest import eventually

FAKE = str(Path(__file__).parents[1] / "proxy" / "fake_iptables.py")
EVENTS = REGISTRY.get("", "v1", "events")


def transactions(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return [c for c in calls if c["argv"][:2] == ["nft", "-f"]]


async def test_failed_transactions_are_retried_reported_and_labels_update_sets(
    client: Client, namespace: str, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    failing = Path(f"{log}.fail")
    await asyncio.to_thread(failing.touch)
    controller = NetpolController(
        client, "node-a", command_prefix=[sys.executable, FAKE, str(log)], min_sync_period=0.2
    )
    policy = {
        "metadata": {"name": "from-team"},
        "spec": {
            "podSelector": {},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "x"}}}]}],
        },
    }
    await client.create(POLICIES, policy, namespace)
    pod = await client.create(
        PODS,
        {"metadata": {"name": "p"}, "spec": {"nodeName": "node-a",
         "containers": [{"name": "c", "image": "busybox"}]}},
        namespace,
    )  # fmt: skip
    pod["status"] = {"phase": "Running", "podIP": "10.42.0.9", "podIPs": [{"ip": "10.42.0.9"}]}
    await client.update_status(PODS, pod, namespace)
    await controller.start()
    try:
        await eventually(lambda: asyncio.sleep(0, controller.failures >= 3), within=15)
        assert not controller.healthy()
        tries = [c["t"] for c in await asyncio.to_thread(transactions, log)]
        gaps = [b - a for a, b in itertools.pairwise(tries)]
        assert gaps[0] >= 0.19 and gaps[1] >= 0.39, gaps  # 0.2 s, then 0.4 s, ...
        failed = controller.registry.get_sample_value("pyk8s_netpol_sync_failures_total")
        assert failed is not None and failed >= 3
        await controller.recorder.flush()
        events = await client.list(EVENTS, "default")
        warned = [e for e in events["items"] if e["reason"] == "FailedToSyncNetworkPolicy"
                  and e["involvedObject"]["name"] == "node-a"]  # fmt: skip
        assert len(warned) == 1 and warned[0]["type"] == "Warning", warned
        assert "Could not process rule" in warned[0]["message"]

        await asyncio.to_thread(failing.unlink)
        await eventually(lambda: asyncio.sleep(0, controller.healthy()), within=15)
        full = (await asyncio.to_thread(transactions, log))[-1]["stdin"]
        assert full.startswith("add table inet pyk8s-netpol\ndelete table inet pyk8s-netpol\n")
        assert "add element inet pyk8s-netpol ingress-isolated { 10.42.0.9 }" in full
        h = policy_hash(namespace, "from-team")
        assert f"add set inet pyk8s-netpol np-{h}-in-0" in full

        # a namespace label change is one element added to the rule's peer set
        count = len(await asyncio.to_thread(transactions, log))
        ns = await client.get(NAMESPACES, namespace)
        ns["metadata"].setdefault("labels", {})["team"] = "x"
        await client.update(NAMESPACES, ns)

        async def next_transaction() -> str | None:
            done = await asyncio.to_thread(transactions, log)
            return str(done[-1]["stdin"]) if len(done) > count else None

        diff = await eventually(next_transaction, within=15)
        assert diff == f"add element inet pyk8s-netpol np-{h}-in-0 {{ 10.42.0.9 }}\n"
    finally:
        await asyncio.wait_for(controller.stop(), 30)
