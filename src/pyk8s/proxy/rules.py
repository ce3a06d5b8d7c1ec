"""Render the whole kube-proxy ruleset as ``iptables-restore`` input, as a pure function.

Given the Services and EndpointSlices (and this node's name, the cluster CIDR and the
masquerade mark) this writes the filter and nat tables' KUBE-* chains in upstream
kube-proxy's shape:

* nat ``KUBE-SERVICES`` matches each cluster IP / external IP / load-balancer IP and port
  and jumps to the service port's chain; its last rule sends local-destination traffic to
  ``KUBE-NODEPORTS``;
* ``KUBE-SVC-<hash>`` (cluster policy) and ``KUBE-SVL-<hash>`` (local policy) pick an
  endpoint with ``-m statistic --mode random --probability 1/n`` (or ``-m recent`` for
  ClientIP affinity); ``KUBE-EXT-<hash>`` handles external destinations (NodePort,
  external IPs, load-balancer IPs); ``KUBE-FW-<hash>`` admits load-balancer traffic from
  ``loadBalancerSourceRanges`` only; ``KUBE-SEP-<hash>`` DNATs to one endpoint;
* ``KUBE-MARK-MASQ`` sets the masquerade mark, ``KUBE-POSTROUTING`` masquerades marked
  packets;
* filter ``KUBE-NODEPORTS`` accepts each Local-policy load balancer's health-check node
  port (the proxy answers it);
* filter ``KUBE-SERVICES`` / ``KUBE-EXTERNAL-SERVICES`` reject traffic to services without
  endpoints (drop it when only local endpoints are wanted and there are none), and
  ``KUBE-FORWARD`` accepts marked and established forwarded traffic.

Chain names hash exactly as upstream does (see :func:`pyk8s.proxy.model.port_proto_hash`),
so rules from this proxy and from upstream kube-proxy for the same service are named alike.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyk8s.proxy.model import (
    Endpoint,
    ServicePort,
    categorize,
    endpoints_by_port,
    health_checks,
    memo,
    port_proto_hash,
    service_ports,
)

__all__ = [
    "FILTER_CHAINS",
    "MASQ_MARK",
    "NAT_CHAINS",
    "SERVICE_CHAIN_PREFIXES",
    "ProxyConfig",
    "Ruleset",
    "family_config",
    "render",
]

MASQ_MARK = 0x4000
#: the fixed chains of each table, created on every sync
FILTER_CHAINS = (
    "KUBE-SERVICES",
    "KUBE-EXTERNAL-SERVICES",
    "KUBE-FORWARD",
    "KUBE-NODEPORTS",
    "KUBE-PROXY-FIREWALL",
)
NAT_CHAINS = ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ")
#: the per-service nat chains (stale ones are deleted)
SERVICE_CHAIN_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-")


@dataclass(frozen=True)
class ProxyConfig:
    node_name: str
    cluster_cidr: str = "10.42.0.0/16"
    masquerade_mark: int = MASQ_MARK
    #: addresses NodePorts answer on; empty means every local address but 127.0.0.0/8
    nodeport_addresses: tuple[str, ...] = ()
    #: mark (and masquerade) every service packet, not only off-cluster ones
    masquerade_all: bool = False
    #: this node's addresses (a load balancer's source ranges may admit the node itself)
    node_ips: tuple[str, ...] = ()
    #: the IP family this config renders (4 or 6); see :func:`family_config`
    ip_family: int = 4


def family_config(config: ProxyConfig, family: int) -> ProxyConfig:
    """``config``'s part for one IP family (upstream runs one proxier per family): that
    family's cluster CIDR (``cluster_cidr`` may be a ``v4,v6`` pair), node addresses and
    NodePort addresses."""

    def ours(text: str) -> bool:
        try:
            return ipaddress.ip_network(text.strip(), strict=False).version == family
        except ValueError:
            return False

    cidrs = [c.strip() for c in config.cluster_cidr.split(",") if ours(c)]
    return dataclasses.replace(
        config,
        cluster_cidr=cidrs[0] if cidrs else "",
        nodeport_addresses=tuple(a for a in config.nodeport_addresses if ours(a)),
        node_ips=tuple(a for a in config.node_ips if ours(a)),
        ip_family=family,
    )


@dataclass
class Ruleset:
    """The rendered tables. ``text()`` is the ``iptables-restore --noflush`` input."""

    filter_chains: list[str] = field(default_factory=list)
    filter_rules: list[str] = field(default_factory=list)
    nat_chains: list[str] = field(default_factory=list)
    nat_rules: list[str] = field(default_factory=list)

    def text(self, stale_nat_chains: Iterable[str] = ()) -> str:
        """The restore input; ``stale_nat_chains`` are flushed and deleted too."""
        stale = sorted(set(stale_nat_chains) - set(self.nat_chains))
        lines = ["*filter"]
        lines += [f":{c} - [0:0]" for c in self.filter_chains]
        lines += self.filter_rules
        lines += ["COMMIT", "*nat"]
        lines += [f":{c} - [0:0]" for c in [*self.nat_chains, *stale]]
        lines += self.nat_rules
        lines += [f"-X {c}" for c in stale]
        lines.append("COMMIT")
        return "\n".join(lines) + "\n"

    def nat_by_chain(self) -> dict[str, list[str]]:
        """The nat rules grouped by the chain they are appended to (every chain present)."""
        out: dict[str, list[str]] = {c: [] for c in self.nat_chains}
        for rule in self.nat_rules:
            out.setdefault(rule.split(" ", 2)[1], []).append(rule)
        return out

    def partial_text(self, previous: Ruleset) -> str:
        """The restore input that turns ``previous`` (applied) into this ruleset touching
        only the nat chains that changed (upstream's MinimizeIPTablesRestore): with
        ``--noflush`` a chain that is not declared keeps its rules, so a one-endpoint change
        among 1,000 services rewrites a handful of chains instead of 30,000 rules."""
        now, before = self.nat_by_chain(), previous.nat_by_chain()
        changed = [c for c, rules in now.items() if before.get(c) != rules]
        stale = sorted(set(before) - set(now))
        lines = ["*filter"]
        lines += [f":{c} - [0:0]" for c in self.filter_chains]
        lines += self.filter_rules
        lines += ["COMMIT", "*nat"]
        lines += [f":{c} - [0:0]" for c in [*changed, *stale]]
        lines += [rule for c in changed for rule in now[c]]
        lines += [f"-X {c}" for c in stale]
        lines.append("COMMIT")
        return "\n".join(lines) + "\n"

    @property
    def service_chains(self) -> set[str]:
        return {c for c in self.nat_chains if c.startswith(SERVICE_CHAIN_PREFIXES)}


def _q(comment: str) -> str:
    return f'-m comment --comment "{comment}"'


def _match(sp: ServicePort, dest: str, port: int) -> str:
    d = f" -d {dest}" if dest else ""
    return f"-m {sp.proto} -p {sp.proto}{d} --dport {port}"


def render(
    services: Iterable[Mapping[str, Any]],
    endpoint_slices: Iterable[Mapping[str, Any]],
    config: ProxyConfig,
) -> Ruleset:
    """The complete ruleset for these Services and EndpointSlices on this node, for
    ``config.ip_family`` (``iptables-restore`` input for 4, ``ip6tables-restore`` for 6)."""
    out = Ruleset(filter_chains=list(FILTER_CHAINS), nat_chains=list(NAT_CHAINS))
    _write_base(out, config)
    family = config.ip_family
    by_port = endpoints_by_port(endpoint_slices, config.node_name, family)
    ports = [sp for svc in services for sp in service_ports(svc, family)]
    ports.sort(key=lambda sp: (sp.name, sp.proto))
    for sp in ports:
        eps = by_port.get((sp.namespace, sp.service, sp.port_name, sp.protocol), [])
        _append(out, _service_port_rules(config, sp, tuple(eps)))
    for hc in health_checks(ports, {}).values():  # admit each health-check node port once
        out.filter_rules.append(
            f"-A KUBE-NODEPORTS {_q(f'{hc.namespace}/{hc.service} health check node port')}"
            f" -m tcp -p tcp --dport {hc.port} -j ACCEPT"
        )
    nodeports = _q("kubernetes service nodeports; NOTE: this must be the last rule in this chain")
    if config.nodeport_addresses:
        for ip in config.nodeport_addresses:
            out.nat_rules.append(f"-A KUBE-SERVICES {nodeports} -d {ip} -j KUBE-NODEPORTS")
    else:
        out.nat_rules.append(
            f"-A KUBE-SERVICES {nodeports} -m addrtype --dst-type LOCAL"
            f" ! -d {'::1/128' if family == 6 else '127.0.0.0/8'} -j KUBE-NODEPORTS"
        )
    return out


#: how many rendered service ports are remembered (a ruleset of 1,000 services reuses all
#: but the changed ones on the next sync)
FRAGMENT_CACHE_SIZE = 20000
_fragments: dict[Hashable, Any] = {}


def _service_port_rules(
    config: ProxyConfig, sp: ServicePort, endpoints: tuple[Endpoint, ...]
) -> Ruleset:
    """The chains and rules of one service port, rendered once per distinct input (the
    inputs are frozen values, so an unchanged service is never written twice)."""

    def make() -> Ruleset:
        out = Ruleset()
        _write_service_port(out, config, sp, list(endpoints))
        return out

    return memo(_fragments, (config, sp, endpoints), make, FRAGMENT_CACHE_SIZE)


def _append(out: Ruleset, part: Ruleset) -> None:
    out.filter_chains += part.filter_chains
    out.filter_rules += part.filter_rules
    out.nat_chains += part.nat_chains
    out.nat_rules += part.nat_rules


def _write_base(out: Ruleset, config: ProxyConfig) -> None:
    mark = f"{config.masquerade_mark:#x}"
    out.nat_rules += [
        f"-A KUBE-POSTROUTING -m mark ! --mark {mark}/{mark} -j RETURN",
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {mark}",
        f"-A KUBE-POSTROUTING {_q('kubernetes service traffic requiring SNAT')}"
        " -j MASQUERADE --random-fully",
        f"-A KUBE-MARK-MASQ -j MARK --or-mark {mark}",
    ]
    out.filter_rules += [
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        f"-A KUBE-FORWARD {_q('kubernetes forwarding rules')} -m mark --mark {mark}/{mark}"
        " -j ACCEPT",
        f"-A KUBE-FORWARD {_q('kubernetes forwarding conntrack rule')}"
        " -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    ]


def _write_service_port(
    out: Ruleset, config: ProxyConfig, sp: ServicePort, endpoints: list[Endpoint]
) -> None:
    h = sp.hash
    svc_chain, svl_chain, ext_chain = f"KUBE-SVC-{h}", f"KUBE-SVL-{h}", f"KUBE-EXT-{h}"
    cluster, local, has_endpoints = categorize(sp, endpoints)
    internal = local if sp.internal_policy_local else cluster
    external = local if sp.external_policy_local else cluster
    internal_chain = svl_chain if sp.internal_policy_local else svc_chain
    external_policy_chain = svl_chain if sp.external_policy_local else svc_chain
    name = sp.name
    cidr = config.cluster_cidr

    # filter: what happens to traffic no endpoint can take
    target = "DROP" if has_endpoints else "REJECT"
    why = _q(f"{name} has {'no local endpoints' if has_endpoints else 'no endpoints'}")

    # the cluster IP
    if internal:
        out.nat_rules.append(
            f"-A KUBE-SERVICES {_q(f'{name} cluster IP')}"
            f" {_match(sp, sp.cluster_ip, sp.port)} -j {internal_chain}"
        )
    else:
        out.filter_rules.append(
            f"-A KUBE-SERVICES {why} {_match(sp, sp.cluster_ip, sp.port)} -j {target}"
        )
    # external destinations; load-balancer IPs with source ranges go through KUBE-FW
    fw_chain = f"KUBE-FW-{h}" if has_endpoints and sp.source_ranges else ""
    for kind, ips, via in (
        ("external IP", sp.external_ips, ext_chain),
        ("loadbalancer IP", sp.load_balancer_ips, fw_chain or ext_chain),
    ):
        for ip in ips:
            if has_endpoints:
                out.nat_rules.append(
                    f"-A KUBE-SERVICES {_q(f'{name} {kind}')} {_match(sp, ip, sp.port)} -j {via}"
                )
            if fw_chain and via == fw_chain:
                out.filter_rules.append(
                    f"-A KUBE-PROXY-FIREWALL {_q(f'{name} traffic not accepted by {fw_chain}')}"
                    f" {_match(sp, ip, sp.port)} -j DROP"
                )
            if not external:
                out.filter_rules.append(
                    f"-A KUBE-EXTERNAL-SERVICES {why} {_match(sp, ip, sp.port)} -j {target}"
                )
    if sp.node_port:
        if has_endpoints:
            out.nat_rules.append(
                f"-A KUBE-NODEPORTS {_q(name)} {_match(sp, '', sp.node_port)} -j {ext_chain}"
            )
        if not external:
            out.filter_rules.append(
                f"-A KUBE-EXTERNAL-SERVICES {why} -m addrtype --dst-type LOCAL"
                f" {_match(sp, '', sp.node_port)} -j {target}"
            )

    # masquerade off-cluster traffic to the cluster IP (it may bounce off-node)
    if internal:
        match = f"{_q(f'{name} cluster IP')} {_match(sp, sp.cluster_ip, sp.port)}"
        if config.masquerade_all:
            out.nat_rules.append(f"-A {internal_chain} {match} -j KUBE-MARK-MASQ")
        elif cidr:
            out.nat_rules.append(f"-A {internal_chain} {match} ! -s {cidr} -j KUBE-MARK-MASQ")

    if has_endpoints and sp.externally_accessible:
        out.nat_chains.append(ext_chain)
        rules = out.nat_rules
        if not sp.external_policy_local:
            what = _q(f"masquerade traffic for {name} external destinations")
            rules.append(f"-A {ext_chain} {what} -j KUBE-MARK-MASQ")
        else:
            if cidr:
                what = _q(f"pod traffic for {name} external destinations")
                rules.append(f"-A {ext_chain} {what} -s {cidr} -j {svc_chain}")
            what = _q(f"masquerade LOCAL traffic for {name} external destinations")
            rules.append(f"-A {ext_chain} {what} -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ")
            what = _q(f"route LOCAL traffic for {name} external destinations")
            rules.append(f"-A {ext_chain} {what} -m addrtype --src-type LOCAL -j {svc_chain}")
        if external:
            rules.append(f"-A {ext_chain} -j {external_policy_chain}")

    if fw_chain:
        _write_firewall(out, config, sp, fw_chain, ext_chain)
    if cluster:
        out.nat_chains.append(svc_chain)
        _write_balancing(out, sp, svc_chain, cluster)
    if local:
        out.nat_chains.append(svl_chain)
        _write_balancing(out, sp, svl_chain, local)

    seen: set[str] = set()
    for ep in [*cluster, *local]:
        if ep.address in seen:
            continue
        seen.add(ep.address)
        sep = _sep_chain(sp, ep)
        out.nat_chains.append(sep)
        affinity = f" -m recent --name {sep} --set" if sp.affinity_seconds else ""
        out.nat_rules += [
            f"-A {sep} {_q(name)} -s {ep.ip} -j KUBE-MARK-MASQ",
            f"-A {sep} {_q(name)}{affinity} -m {sp.proto} -p {sp.proto}"
            f" -j DNAT --to-destination {ep.address}",
        ]


def _write_firewall(
    out: Ruleset, config: ProxyConfig, sp: ServicePort, fw_chain: str, ext_chain: str
) -> None:
    """Load-balancer traffic from an allowed source range goes on to KUBE-EXT; the rest
    falls through un-DNATed and is dropped by filter KUBE-PROXY-FIREWALL."""
    out.nat_chains.append(fw_chain)
    head = f"-A {fw_chain} {_q(f'{sp.name} loadbalancer IP')}"
    nets = [ipaddress.ip_network(r) for r in sp.source_ranges]
    for cidr in sp.source_ranges:
        out.nat_rules.append(f"{head} -s {cidr} -j {ext_chain}")
    node_allowed = any(ipaddress.ip_address(ip) in n for ip in config.node_ips for n in nets)
    if node_allowed:  # the node reaching its own LB IP arrives with the LB IP as source
        out.nat_rules += [f"{head} -s {ip} -j {ext_chain}" for ip in sp.load_balancer_ips]
    dropped = f"other traffic to {sp.name} will be dropped by KUBE-PROXY-FIREWALL"
    out.nat_rules.append(f"-A {fw_chain} {_q(dropped)}")


def _sep_chain(sp: ServicePort, ep: Endpoint) -> str:
    return "KUBE-SEP-" + port_proto_hash(sp.name, sp.proto, ep.address)


def _write_balancing(out: Ruleset, sp: ServicePort, chain: str, endpoints: list[Endpoint]) -> None:
    """Jump to one endpoint: the i-th of n rules matches with probability 1/(n-i), so
    each endpoint is picked with probability 1/n; with affinity a recent client first
    goes back to the endpoint it used."""
    if sp.affinity_seconds:
        for ep in endpoints:
            sep = _sep_chain(sp, ep)
            out.nat_rules.append(
                f"-A {chain} {_q(f'{sp.name} -> {ep.address}')} -m recent --name {sep}"
                f" --rcheck --seconds {sp.affinity_seconds} --reap -j {sep}"
            )
    n = len(endpoints)
    for i, ep in enumerate(endpoints):
        chance = (
            f" -m statistic --mode random --probability {1 / (n - i):.10f}" if i < n - 1 else ""
        )
        out.nat_rules.append(
            f"-A {chain} {_q(f'{sp.name} -> {ep.address}')}{chance} -j {_sep_chain(sp, ep)}"
        )
