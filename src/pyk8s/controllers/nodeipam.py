"""The node IPAM controller: a pod CIDR for every node, carved out of the cluster CIDR.

Pod networking (CNI host-local IPAM on real nodes, pod IPs on simulated ones) needs each
node to own a disjoint range. Upstream's ``nodeipam`` controller with the
``RangeAllocator`` hands every node without ``spec.podCIDR`` the next free subnet of
``--cluster-cidr`` (``--node-cidr-mask-size``); k3s runs it with ``10.42.0.0/16`` and
``/24`` per node, the defaults here. On a dual-stack cluster (``--cluster-cidr
10.42.0.0/16,fd00:42::/56``) every new node gets one CIDR of each family, in the
flag's order (``--node-cidr-mask-size-ipv4``/``-ipv6``: /24 and /64, upstream's
defaults). Like upstream it

* marks the CIDRs of every existing node as used before allocating anything (so a
  restart never hands out a CIDR twice), also when a node's CIDR is outside the range;
* writes ``spec.podCIDR`` and ``spec.podCIDRs`` with optimistic concurrency (a node whose
  spec changed meanwhile is retried, the reserved CIDR kept for it);
* releases a node's CIDR when the node is deleted;
* records ``CIDRNotAvailable`` on a node when the range is exhausted, and
  ``CIDRAssignmentFailed`` when the update fails.

One worker: allocation is a read-modify-write of the allocator's in-memory bitmap.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyk8s.api.dualstack import parse_cidrs
from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import WARNING, Client, EventRecorder, Store, is_conflict, is_not_found
from pyk8s.client.errors import ClientError
from pyk8s.controllers.runtime import Manager, Request, Result

__all__ = [
    "CLUSTER_CIDR",
    "NODE_CIDR_MASK_SIZE",
    "NODE_CIDR_MASK_SIZE_IPV6",
    "CIDRSet",
    "NodeIPAMReconciler",
    "Settings",
    "setup",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

NODES: Resource = REGISTRY.get("", "v1", "nodes")  # type: ignore[assignment]

#: k3s's --cluster-cidr and upstream's --node-cidr-mask-size for IPv4 and IPv6
CLUSTER_CIDR = "10.42.0.0/16"
NODE_CIDR_MASK_SIZE = 24
NODE_CIDR_MASK_SIZE_IPV6 = 64


@dataclass
class Settings:
    """``--cluster-cidr`` (one CIDR, or one per family) and the per-family node masks."""

    cluster_cidr: str = CLUSTER_CIDR
    node_cidr_mask_size_ipv4: int = NODE_CIDR_MASK_SIZE
    node_cidr_mask_size_ipv6: int = NODE_CIDR_MASK_SIZE_IPV6

    def cidr_sets(self) -> list[CIDRSet]:
        out = []
        for cidr in parse_cidrs(self.cluster_cidr, "cluster-cidr"):
            v6 = ipaddress.ip_network(cidr).version == 6
            mask = self.node_cidr_mask_size_ipv6 if v6 else self.node_cidr_mask_size_ipv4
            out.append(CIDRSet(cidr, mask))
        return out


class CIDRSet:
    """The subnets of one cluster CIDR, as a set of used indexes (upstream's cidrset)."""

    def __init__(self, cluster_cidr: str, mask_size: int) -> None:
        self.cluster = ipaddress.ip_network(cluster_cidr, strict=True)
        if mask_size < self.cluster.prefixlen or mask_size > self.cluster.max_prefixlen:
            raise ValueError(f"node CIDR mask /{mask_size} does not fit in {cluster_cidr}")
        self.mask_size = mask_size
        self.size = 1 << (mask_size - self.cluster.prefixlen)
        self._step = 1 << (self.cluster.max_prefixlen - mask_size)
        self._used: set[int] = set()
        self._next = 0

    def _subnet(self, index: int) -> Network:
        base = int(self.cluster.network_address) + index * self._step
        return ipaddress.ip_network((base, self.mask_size))

    def _index(self, cidr: str) -> int | None:
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return None
        if net.version != self.cluster.version or net.prefixlen != self.mask_size:
            return None
        if not net.subnet_of(self.cluster):  # type: ignore[arg-type]
            return None
        return (int(net.network_address) - int(self.cluster.network_address)) // self._step

    def occupy(self, cidr: str) -> None:
        index = self._index(cidr)
        if index is not None:
            self._used.add(index)

    def release(self, cidr: str) -> None:
        index = self._index(cidr)
        if index is not None:
            self._used.discard(index)

    def allocate_next(self) -> str | None:
        """The next free subnet (round robin, as upstream), or None when all are used."""
        for i in range(self.size):
            index = (self._next + i) % self.size
            if index not in self._used:
                self._used.add(index)
                self._next = (index + 1) % self.size
                return str(self._subnet(index))
        return None

    def __len__(self) -> int:
        return len(self._used)


class NodeIPAMReconciler:
    def __init__(
        self,
        client: Client,
        nodes: Store,
        recorder: EventRecorder,
        cidrs: CIDRSet | Sequence[CIDRSet],
    ) -> None:
        self.client = client
        self.nodes = nodes
        self.recorder = recorder
        #: one set per cluster CIDR (two on a dual-stack cluster), the primary first
        self.sets = [cidrs] if isinstance(cidrs, CIDRSet) else list(cidrs)
        #: CIDRs by node name: what this allocator gave or saw (released on node deletion)
        self.assigned: dict[str, list[str]] = {}

    def _occupy(self, cidr: str) -> None:
        for cidr_set in self.sets:
            cidr_set.occupy(cidr)

    def _release(self, cidr: str) -> None:
        for cidr_set in self.sets:
            cidr_set.release(cidr)

    async def warm_up(self) -> None:
        """Occupy the CIDRs of every node that has them, before any allocation."""
        for node in self.nodes.list():
            name = node["metadata"]["name"]
            have = _node_cidrs(node)
            for cidr in have:
                self._occupy(cidr)
            if have:
                self.assigned.setdefault(name, have)

    async def reconcile(self, request: Request) -> Result | None:
        name = request.name
        node = self.nodes.get(name)
        if node is None:
            for cidr in self.assigned.pop(name, []):
                self._release(cidr)
                log.info("released pod CIDR %s of deleted node %s", cidr, name)
            return None
        have = _node_cidrs(node)
        if have:
            for cidr in have:
                self._occupy(cidr)
            for old in self.assigned.get(name, []):
                if old not in have:
                    self._release(old)
            self.assigned[name] = have
            return None
        cidrs = self.assigned.get(name)
        if cidrs is None:
            cidrs = []
            for cidr_set in self.sets:
                got = cidr_set.allocate_next()
                if got is None:
                    for taken in cidrs:
                        self._release(taken)
                    self.recorder.event(
                        node,
                        WARNING,
                        "CIDRNotAvailable",
                        f"Node {name} status is now: CIDRNotAvailable",
                    )
                    return Result(requeue_after=30.0)
                cidrs.append(got)
            self.assigned[name] = cidrs
        patch = {
            "metadata": {"resourceVersion": node["metadata"].get("resourceVersion")},
            "spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs},
        }
        try:
            await self.client.patch(NODES, name, patch, patch_type="merge")
        except ClientError as err:
            if is_not_found(err):
                return None  # deleted: the delete event releases the CIDRs
            if is_conflict(err):
                return Result(requeue=True)  # keep the reservation, retry with fresh data
            self.recorder.event(
                node,
                WARNING,
                "CIDRAssignmentFailed",
                f"Node {name} status is now: CIDRAssignmentFailed",
            )
            raise
        log.info("assigned pod CIDRs %s to node %s", ",".join(cidrs), name)
        return None


def _node_cidrs(node: Obj) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = [str(c) for c in spec.get("podCIDRs") or [] if c]
    if not cidrs and spec.get("podCIDR"):
        cidrs = [str(spec["podCIDR"])]
    return cidrs


def setup(manager: Manager) -> None:
    informer = manager.informers.informer(NODES)
    settings = manager.settings.get("nodeipam")
    if not isinstance(settings, Settings):
        settings = Settings()
    reconciler = NodeIPAMReconciler(
        manager.client, informer.store, manager.recorder, settings.cidr_sets()
    )
    manager.on_synced.append(reconciler.warm_up)
    controller = manager.add("nodeipam", reconciler, workers=1)
    controller.watch(informer)
