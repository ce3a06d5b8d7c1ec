"""The kubelet reports Ready as soon as the runtime's network is, not at the next sync.

Upstream's kubelet polls the runtime quickly from start until the node is first Ready
(fastStatusUpdateOnce); before that, pyk8s waited for the next 10 s status sync after
the CNI config was written. The status interval here is an hour, so only the fast path
can deliver the Ready report in time.
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

from pyk8s.kubelet.node import NodeAgent, RuntimeHealth

Obj = dict[str, Any]


class _FakeNodes:
    """The three Node calls the agent makes (create, get, merge-patch of status); the
    Lease is created and otherwise ignored."""

    def __init__(self) -> None:
        self.node: Obj = {}
        self.patches: list[Obj] = []

    async def create(self, _resource: object, body: Obj) -> Obj:
        if body.get("kind") != "Node":
            return copy.deepcopy(body)
        self.node = copy.deepcopy(body)
        self.node["metadata"]["uid"] = "u-1"
        return copy.deepcopy(self.node)

    async def get(self, _resource: object, _name: str) -> Obj:
        return copy.deepcopy(self.node)

    async def patch(self, _resource: object, _name: str, body: Obj, **_kw: object) -> Obj:
        self.patches.append(body)
        self.node["status"].update(copy.deepcopy(body["status"]))
        return copy.deepcopy(self.node)


def _ready(node: Obj) -> str:
    return next(c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready")


async def test_ready_reported_when_network_becomes_ready(tmp_path: Path) -> None:
    health = RuntimeHealth(True, False, "reason:NetworkPluginNotReady message:cni")
    nodes = _FakeNodes()

    async def runtime() -> RuntimeHealth:
        return health

    agent = NodeAgent(
        nodes, "n1", tmp_path, "10.0.0.5", "containerd://2", runtime,  # type: ignore[arg-type]
        pod_cidr="10.42.0.0/24", renew_interval=3600, status_interval=3600,
    )  # fmt: skip
    await agent.start()
    try:
        assert _ready(nodes.node) == "False"
        health = RuntimeHealth(True, True, "")
        for _ in range(100):  # bounded: 10 s
            if nodes.patches and _ready(nodes.node) == "True":
                break
            await asyncio.sleep(0.1)
        assert _ready(nodes.node) == "True", nodes.node["status"]["conditions"]
    finally:
        await agent.stop()
