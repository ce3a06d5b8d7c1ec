"""host-gw pod routes: every node's pod CIDR is routed via that node's address.

The flat pod network without NAT or overlay (flannel's host-gw backend): each agent
watches the Nodes and keeps, in its host's routing table, ``<podCIDR> via <InternalIP>``
for every *other* node; its own pod CIDR is on its local CNI bridge. This works when the
nodes share an L2 segment, the model pyk8s' multi-node tests build with network
namespaces on one bridge. Pod traffic keeps the pods' addresses between nodes; only what
leaves the cluster CIDR is masqueraded (one nat rule per node, the CNI bridge's own
``ipMasq`` being off: :func:`ensure_egress_masquerade`, which a kubelet without host-gw
routes also uses, with its own pod CIDR in place of the cluster's). A dual-stack cluster
gets both: each pod CIDR is routed via the node's InternalIP of its family, and each
family masquerades what leaves its own cluster CIDR (iptables, ip6tables). Routes we
installed are tagged with our own routing protocol number, so a restart finds and
reconciles them and nothing else is ever touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import Client, SharedInformer

__all__ = [
    "ROUTE_PROTOCOL",
    "HostGwRoutes",
    "desired_routes",
    "egress_masquerade_rule",
    "ensure_egress_masquerade",
    "parse_routes",
]

log = logging.getLogger(__name__)

NODES: Resource = REGISTRY.get("", "v1", "nodes")  # type: ignore[assignment]
#: the ``proto`` our routes carry (an unassigned number; iproute2 shows it as-is)
ROUTE_PROTOCOL = "201"
RESYNC_SECONDS = 30.0

Runner = Callable[[Sequence[str]], Awaitable[str]]


def desired_routes(nodes: Sequence[Mapping[str, Any]], self_name: str) -> dict[str, str]:
    """pod CIDR -> gateway (the node's InternalIP of the CIDR's family) for every other
    node that has both."""
    out: dict[str, str] = {}
    for node in nodes:
        if node["metadata"]["name"] == self_name:
            continue
        spec, status = node.get("spec") or {}, node.get("status") or {}
        gateways: dict[int, str] = {}
        for a in status.get("addresses") or []:
            if a.get("type") == "InternalIP" and a.get("address"):
                with contextlib.suppress(ValueError):
                    version = ipaddress.ip_address(a["address"]).version
                    gateways.setdefault(version, str(a["address"]))
        cidrs = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
        for cidr in cidrs:
            net = ipaddress.ip_network(cidr, strict=False)
            if net.version in gateways:
                out[str(net)] = gateways[net.version]
    return out


def parse_routes(text: str) -> dict[str, str]:
    """``ip route show proto 201`` output -> destination -> gateway."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] == "via":
            out[fields[0]] = fields[2]
    return out


def egress_masquerade_rule(pod_cidr: str, cluster_cidr: str) -> list[str]:
    """Pods' traffic to anything outside the cluster CIDR leaves with the node's address;
    pod-to-pod traffic, also across nodes, keeps the pod's (flannel's rule)."""
    return [
        "POSTROUTING", "-s", pod_cidr, "!", "-d", cluster_cidr,
        "-m", "comment", "--comment", "pyk8s: pod egress", "-j", "MASQUERADE",
    ]  # fmt: skip


async def _iptables(argv: Sequence[str]) -> str:
    """iptables, or ip6tables when ``argv`` starts with ``-6``."""
    tool = "iptables"
    if argv[:1] == ["-6"]:
        tool, argv = "ip6tables", argv[1:]
    proc = await asyncio.create_subprocess_exec(
        tool, "-w", *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} {' '.join(argv)}: {err.decode(errors='replace').strip()}")
    return out.decode()


async def _has_rule(iptables: Runner, rule: Sequence[str], family: Sequence[str] = ()) -> bool:
    try:
        await iptables([*family, "-t", "nat", "-C", *rule])
    except RuntimeError:
        return False
    return True


async def ensure_egress_masquerade(
    pod_cidr: str, cluster_cidr: str, iptables: Runner = _iptables
) -> None:
    """Add :func:`egress_masquerade_rule` (iptables or ip6tables, by the CIDR's family)
    unless it is there. One rule per node instead of the CNI bridge plugin's ``ipMasq``,
    which runs iptables some ten times per pod, on both ADD and DEL (~60 ms of CPU a pod)."""
    family = ["-6"] if ipaddress.ip_network(pod_cidr, strict=False).version == 6 else []
    rule = egress_masquerade_rule(pod_cidr, cluster_cidr)
    if not await _has_rule(iptables, rule, family):
        await iptables([*family, "-t", "nat", "-A", *rule])


async def _ip(argv: Sequence[str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        "ip", *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(argv)}: {err.decode(errors='replace').strip()}")
    return out.decode()


class HostGwRoutes:
    """Keeps the host's routes to other nodes' pod CIDRs; ``await start()``/``stop()``."""

    def __init__(
        self,
        client: Client,
        node_name: str,
        run: Runner = _ip,
        *,
        cluster_cidr: str = "10.42.0.0/16",
        iptables: Runner | None = None,
    ) -> None:
        self.node_name = node_name
        self.run = run
        self.cluster_cidr = cluster_cidr
        self.iptables = iptables or _iptables
        self.nodes = SharedInformer.for_resource(client, NODES)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.nodes.add_event_handler(
            on_add=lambda _n: self._wake.set(),
            on_update=lambda _o, _n: self._wake.set(),
            on_delete=lambda _n: self._wake.set(),
        )
        self.nodes.start()
        await self.nodes.wait_synced()
        self._task = asyncio.create_task(self._loop(), name="host-gw-routes")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.nodes.stop()

    async def sync(self) -> None:
        """Make our routes exactly the desired ones; masquerade pod egress off-cluster."""
        me = self.nodes.store.get(self.node_name)
        spec = (me or {}).get("spec") or {}
        cluster = {
            ipaddress.ip_network(c, strict=False).version: c
            for c in self.cluster_cidr.split(",")
            if c
        }
        for cidr in spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []):
            version = ipaddress.ip_network(cidr, strict=False).version
            if version not in cluster:
                continue
            await ensure_egress_masquerade(cidr, cluster[version], self.iptables)
        want = desired_routes(self.nodes.store.list(), self.node_name)
        have = parse_routes(await self.run(["route", "show", "proto", ROUTE_PROTOCOL]))
        have |= parse_routes(await self.run(["-6", "route", "show", "proto", ROUTE_PROTOCOL]))
        for dst, gateway in want.items():
            if have.get(dst) != gateway:
                await self.run(["route", "replace", dst, "via", gateway, "proto", ROUTE_PROTOCOL])
                log.info("pod route added", extra={"dst": dst, "via": gateway})
        for dst in have.keys() - want.keys():
            await self.run(["route", "del", dst, "proto", ROUTE_PROTOCOL])
            log.info("pod route removed", extra={"dst": dst})

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("syncing pod routes failed: %s", err)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), RESYNC_SECONDS)
