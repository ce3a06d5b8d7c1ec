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


class _Events:
    """A watch stream of what the test puts in ``queue``."""

    def __init__(self, queue: asyncio.Queue[tuple[str, Obj]]) -> None:
        self.queue = queue

    async def __aenter__(self) -> _Events:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None

    def __aiter__(self) -> _Events:
        return self

    async def __anext__(self) -> tuple[str, Obj]:
        return await self.queue.get()


class _FakeNodes:
    """The Node calls the agent makes (create, get, merge-patch of status, a watch of
    its Node); the Lease is created and otherwise ignored."""

    def __init__(self) -> None:
        self.node: Obj = {}
        self.patches: list[Obj] = []
        self.events: asyncio.Queue[tuple[str, Obj]] = asyncio.Queue()
        self.watched: list[tuple[str, str | None]] = []

    def watch(self, _resource: object, *, name: str, resource_version: str | None,
              **_kw: object) -> _Events:  # fmt: skip
        self.watched.append((name, resource_version))
        return _Events(self.events)

    async def create(self, _resource: object, body: Obj) -> Obj:
        if body.get("kind") != "Node":
            return copy.deepcopy(body)
        self.node = copy.deepcopy(body)
        self.node["metadata"]["uid"] = "u-1"
        self.node["metadata"]["resourceVersion"] = "7"
        return copy.deepcopy(self.node)

    async def get(self, _resource: object, _name: str) -> Obj:
        return copy.deepcopy(self.node)

    async def patch(self, _resource: object, _name: str, body: Obj, **_kw: object) -> Obj:
        self.patches.append(body)
        self.node["status"].update(copy.deepcopy(body["status"]))
        return copy.deepcopy(self.node)


def _ready(node: Obj) -> str:
    return str(next(c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"))


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


async def test_pod_cidr_from_a_watch_of_the_node(tmp_path: Path) -> None:
    """A node registered without a pod CIDR watches its Node from the version it
    registered, and writes its network config the moment the CIDR is assigned (no status
    sync or poll in between: both intervals are an hour), then reports Ready."""
    health = RuntimeHealth(True, False, "reason:NetworkPluginNotReady message:cni")
    nodes = _FakeNodes()
    cidrs: list[str] = []

    async def runtime() -> RuntimeHealth:
        return health

    def on_pod_cidr(cidr: str) -> None:
        nonlocal health
        cidrs.append(cidr)
        health = RuntimeHealth(True, True, "")  # as containerd, once the config is there

    agent = NodeAgent(
        nodes, "n1", tmp_path, "10.0.0.5", "containerd://2", runtime,  # type: ignore[arg-type]
        renew_interval=3600, status_interval=3600, on_pod_cidr=on_pod_cidr,
    )  # fmt: skip
    await agent.start()
    try:
        assert _ready(nodes.node) == "False" and not cidrs
        for _ in range(100):  # bounded: 10 s
            if nodes.watched:
                break
            await asyncio.sleep(0.1)
        assert nodes.watched == [("n1", "7")]
        assigned = copy.deepcopy(nodes.node)
        assigned["spec"]["podCIDR"] = "10.42.3.0/24"
        assigned["spec"]["podCIDRs"] = ["10.42.3.0/24"]
        assigned["metadata"]["resourceVersion"] = "8"
        nodes.node["spec"] = copy.deepcopy(assigned["spec"])
        await nodes.events.put(("MODIFIED", assigned))
        for _ in range(100):
            if nodes.patches and _ready(nodes.node) == "True":
                break
            await asyncio.sleep(0.1)
        assert cidrs == ["10.42.3.0/24"]
        assert _ready(nodes.node) == "True", nodes.node["status"]["conditions"]
    finally:
        await agent.stop()
