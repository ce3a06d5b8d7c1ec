"""Keep pod and service traffic from leaking through the host's default route.

When a node is gone, its pod CIDR's host-gw route goes with it, and a packet for one of
its pods would otherwise follow the default route out of the host (to the LAN or the
internet, with a cluster-internal address). So every node keeps:

* ``unreachable <cluster CIDR>`` in the main table: the node's own pod CIDR (on its CNI
  bridge) and the other nodes' (host-gw, :mod:`pyk8s.network.routes`) are more specific
  and win; anything else in the cluster CIDR is answered "no route to host".
* for the service CIDR, two routing *rules* instead of a route: traffic the host itself
  sends is looked up in the main table as before (kube-proxy's iptables mode DNATs it in
  OUTPUT, *after* the first route lookup, so an unreachable route would refuse every
  ClusterIP connection from the host before the DNAT could happen), and everything
  forwarded (pods, other hosts) that is still addressed to the service CIDR after
  PREROUTING's DNAT (a Service kube-proxy has no rule for) is unreachable.

Everything carries our route protocol (201, as the host-gw routes), so ``pyk8s killall``
finds and removes it and nothing else is touched.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, Sequence

from pyk8s.network.routes import ROUTE_PROTOCOL
from pyk8s.network.routes import _ip as ip_command

__all__ = ["RULE_PRIORITY", "ensure_unreachable", "remove_unreachable"]

log = logging.getLogger(__name__)

#: the rules' priorities: below the main table's 32766
RULE_PRIORITY = 32000

Runner = Callable[[Sequence[str]], Awaitable[str]]


def _family(cidr: str) -> str:
    return "-6" if ipaddress.ip_network(cidr, strict=False).version == 6 else "-4"


async def _our_rules(run: Runner, family: str) -> list[dict[str, object]]:
    rules: list[dict[str, object]] = json.loads(await run([family, "-j", "rule", "show"]) or "[]")
    return [r for r in rules if str(r.get("protocol")) == ROUTE_PROTOCOL]


async def ensure_unreachable(
    cluster_cidrs: Sequence[str], service_cidrs: Sequence[str], run: Runner = ip_command
) -> None:
    """Install (idempotently) the unreachable route and rules."""
    for cidr in cluster_cidrs:
        dst = str(ipaddress.ip_network(cidr, strict=False))
        await run([_family(dst), "route", "replace", "unreachable", dst, "proto", ROUTE_PROTOCOL])
    for cidr in service_cidrs:
        net = ipaddress.ip_network(cidr, strict=False)
        family = _family(str(net))
        have = {
            (r.get("dst"), r.get("dstlen"), r.get("priority"))
            for r in await _our_rules(run, family)
        }
        key = (str(net.network_address), net.prefixlen)
        if (*key, RULE_PRIORITY) not in have:
            await run([family, "rule", "add", "iif", "lo", "to", str(net), "lookup", "main",
                       "priority", str(RULE_PRIORITY), "protocol", ROUTE_PROTOCOL])  # fmt: skip
        if (*key, RULE_PRIORITY + 1) not in have:
            await run([family, "rule", "add", "to", str(net), "unreachable",
                       "priority", str(RULE_PRIORITY + 1), "protocol", ROUTE_PROTOCOL])  # fmt: skip
    log.info(
        "unreachable routes in place",
        extra={"clusterCIDRs": list(cluster_cidrs), "serviceCIDRs": list(service_cidrs)},
    )


async def remove_unreachable(run: Runner = ip_command) -> None:
    """Remove every route and rule with our protocol (the host-gw routes too)."""
    for family in ("-4", "-6"):
        await run([family, "route", "flush", "proto", ROUTE_PROTOCOL])
        for rule in await _our_rules(run, family):
            await run([family, "rule", "del", "priority", str(rule["priority"]),
                       "protocol", ROUTE_PROTOCOL])  # fmt: skip
