"""``pyk8s cluster-autoscaler``: the autoscaler as its own process, with its nodes
simulated in the same process.

Why the simulated nodes live here rather than in a separate ``pyk8s sim-nodes``
process: the autoscaler must create and destroy nodes one at a time, at run time, and
know when each is up — a cloud provider's API. Hosting a
:class:`~pyk8s.kubelet.simulated.SimulatedNodes` pool in-process makes that a method call
(:meth:`~SimulatedNodes.add_node` / :meth:`~SimulatedNodes.remove_node`) with no file or
socket protocol to invent, and the pool still uses one pod watch for all its nodes. The
autoscaler itself only sees the :class:`~pyk8s.autoscaler.NodeProvider` seam, so a
provider that makes real machines would plug in the same way. On start, Nodes already
labelled with a group (a restarted autoscaler) are adopted: their leases resume.

Leader-elected on the Lease ``kube-system/cluster-autoscaler`` (``--leader-elect``, as
upstream); serves ``/healthz`` and ``/metrics`` (upstream's port 8085) and stops on
SIGTERM.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.autoscaler import Autoscaler, NodeGroup, Options, load_node_groups
from pyk8s.autoscaler.config import GROUP_LABEL
from pyk8s.client import (
    Client,
    LeaderElectionConfig,
    component_user_agent,
    load_config,
    run_while_leading,
)
from pyk8s.kubelet.simulated import NodeTemplate, SimulatedNodes
from pyk8s.server.component import HealthServer, stop_on_signals

__all__ = ["RunOptions", "SimulatedNodeProvider", "run"]

log = logging.getLogger(__name__)

LOCK_NAME = "cluster-autoscaler"
NODES: Resource = REGISTRY.get("", "v1", "nodes")  # type: ignore[assignment]
_STANDARD = ("cpu", "memory", "pods", "ephemeral-storage")


def node_template(group: NodeGroup) -> NodeTemplate:
    cap = group.capacity
    labels = group.node_labels("")
    del labels["kubernetes.io/hostname"]  # the simulated node sets its own
    return NodeTemplate(
        cpu=cap["cpu"],
        memory=cap["memory"],
        pods=int(cap.get("pods", "110")),
        ephemeral_storage=cap.get("ephemeral-storage", "100Gi"),
        extended={k: v for k, v in cap.items() if k not in _STANDARD},
        labels=labels,
        taints=[dict(t) for t in group.taints],
    )


class SimulatedNodeProvider:
    """A :class:`~pyk8s.autoscaler.NodeProvider` whose machines are simulated nodes."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.pool = SimulatedNodes(client, count=0)

    async def start(self, groups: list[NodeGroup]) -> None:
        await self.pool.start()
        by_name = {g.name: g for g in groups}
        nodes = await self.client.list(NODES, label_selector=GROUP_LABEL)
        for node in nodes.get("items") or []:
            group = by_name.get(node["metadata"]["labels"][GROUP_LABEL])
            if group is not None:
                await self.pool.add_node(node["metadata"]["name"], node_template(group))
                log.info("adopted node %s of group %s", node["metadata"]["name"], group.name)

    async def stop(self) -> None:
        await self.pool.stop()

    async def create_node(self, group: NodeGroup, name: str) -> None:
        await self.pool.add_node(name, node_template(group))

    async def delete_node(self, group: NodeGroup, name: str) -> None:
        await self.pool.remove_node(name)


@dataclass
class RunOptions:
    config: Path
    kubeconfig: Path | None = None
    autoscaler: Options = field(default_factory=Options)
    bind_address: str = "127.0.0.1"
    port: int = 8085
    qps: float = 500.0
    burst: int = 1000
    #: upstream's --leader-elect: one active autoscaler per cluster (Lease
    #: kube-system/cluster-autoscaler); a standby hosts no nodes until it leads
    leader_elect: bool = True


async def run(opts: RunOptions) -> None:
    groups = load_node_groups(opts.config)
    config = load_config(str(opts.kubeconfig) if opts.kubeconfig else None)
    async with Client(
        config,
        qps=opts.qps,
        burst=opts.burst,
        user_agent=component_user_agent("cluster-autoscaler"),
    ) as client:
        provider = SimulatedNodeProvider(client)
        autoscaler = Autoscaler(client, groups, provider, opts.autoscaler)
        health = HealthServer(autoscaler.registry, autoscaler.healthy, opts.bind_address, opts.port)
        await health.start()
        stop = stop_on_signals()

        async def lead() -> None:
            await provider.start(groups)
            await autoscaler.run(stop)

        try:
            if not opts.leader_elect:
                await lead()
                return
            # renewals through a client of their own: the simulated kubelets' status
            # writes and the scale-up events never hold one past its deadline
            agent = f"{client.user_agent}/leader-election"
            async with Client(config, user_agent=agent) as election_client:
                election = LeaderElectionConfig(lock_name=LOCK_NAME, on_started_leading=lead)
                await run_while_leading(election_client, election, stop)
                stop.set()  # leadership lost: stop, as upstream (a restart campaigns again)
        finally:
            await provider.stop()
            await health.stop()
