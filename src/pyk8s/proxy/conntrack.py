"""Clear stale UDP and SCTP conntrack entries after a sync, as upstream kube-proxy does.

A UDP "connection" lives in conntrack for as long as packets keep flowing, and its DNAT
was decided when the first packet passed: a resolver that reuses one socket keeps talking
to a DNS endpoint that is gone, and a client that was rejected while a service had no
endpoints keeps being rejected after they appear. So, in every proxy mode, after the new
rules are in place:

* an endpoint no longer behind a service address: delete the entries from that address to
  that endpoint (``conntrack -D -p udp --orig-dst SVC --orig-port-dst PORT --dst-nat EP``);
* a service address (cluster IP, external IP, load-balancer IP, NodePort) that went away,
  or that has endpoints now and had none before: delete every entry to it.

IPv6 destinations (a dual-stack node's ``ip6`` services) are cleared the same way with
``conntrack -f ipv6``.

TCP needs none of this (a connection to a removed endpoint is reset). :func:`destinations`
and :func:`stale_flows` are pure; :func:`clear` runs the ``conntrack`` commands.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pyk8s.proxy.iptables import run
from pyk8s.proxy.model import categorize, endpoints_by_port, service_ports

__all__ = ["Destination", "clear", "destinations", "stale_flows"]

log = logging.getLogger(__name__)

#: (protocol, address, port); address '' is an IPv4 NodePort (any local address), '::'
#: an IPv6 one
Destination = tuple[str, str, int]
CONNECTIONLESS = frozenset({"UDP", "SCTP"})


def destinations(
    services: Iterable[Mapping[str, Any]],
    endpoint_slices: Iterable[Mapping[str, Any]],
    node_name: str,
    family: int = 4,
) -> dict[Destination, frozenset[str]]:
    """Every UDP/SCTP service destination of IP ``family`` → the endpoint addresses the
    rules send it to."""
    ports = [
        sp for svc in services for sp in service_ports(svc, family) if sp.protocol in CONNECTIONLESS
    ]
    if not ports:
        return {}
    by_port = endpoints_by_port(endpoint_slices, node_name, family)
    out: dict[Destination, frozenset[str]] = {}
    for sp in ports:
        eps = by_port.get((sp.namespace, sp.service, sp.port_name, sp.protocol), [])
        cluster, local, _ = categorize(sp, eps)
        internal = local if sp.internal_policy_local else cluster
        external = local if sp.external_policy_local else cluster
        proto = sp.proto
        out[(proto, sp.cluster_ip, sp.port)] = frozenset(e.ip for e in internal)
        for ip in (*sp.external_ips, *sp.load_balancer_ips):
            out[(proto, ip, sp.port)] = frozenset(e.ip for e in external)
        if sp.node_port:
            any_local = "::" if family == 6 else ""
            out[(proto, any_local, sp.node_port)] = frozenset(e.ip for e in external)
    return out


def _filter(dest: Destination, endpoint: str = "") -> list[str]:
    proto, ip, port = dest
    argv = ["-D", "-f", "ipv6", "-p", proto] if ":" in ip else ["-D", "-p", proto]
    if ip and ip != "::":
        argv += ["--orig-dst", ip]
    argv += ["--orig-port-dst", str(port)]
    if endpoint:
        argv += ["--dst-nat", endpoint]
    return argv


def stale_flows(
    before: Mapping[Destination, frozenset[str]], after: Mapping[Destination, frozenset[str]]
) -> list[list[str]]:
    """The ``conntrack`` argument lists that clear what the change from ``before`` to
    ``after`` left stale (in a stable order)."""
    out: list[list[str]] = []
    for dest in sorted(set(before) | set(after)):
        old, new = before.get(dest), after.get(dest)
        if new is None or (new and not old):
            out.append(_filter(dest))  # the address went away, or has endpoints at last
            continue
        if old:
            out += [_filter(dest, ip) for ip in sorted(old - new)]
    return out


async def clear(prefix: Sequence[str], flows: Iterable[Sequence[str]]) -> int:
    """Run ``conntrack`` for each filter; how many commands failed (exit status 1 with
    nothing deleted is success)."""
    failed = 0
    for argv in flows:
        try:
            code, out = await run([*prefix, "conntrack", *argv])
        except OSError as err:  # no conntrack binary: the rules are in place regardless
            code, out = -1, str(err)
        if code not in (0, 1) or (code == 1 and "0 flow entries" not in out):
            failed += 1
            log.warning(
                "clearing conntrack entries failed",
                extra={"filter": " ".join(argv), "error": out.strip()},
            )
    return failed
