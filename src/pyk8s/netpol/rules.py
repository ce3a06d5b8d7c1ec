"""Compile NetworkPolicies into one node's nftables ruleset, as a pure function.

Enforcement follows kube-router's and Calico's model: every node filters the traffic of
its own pods, ingress at the destination pod's node and egress at the source pod's node,
so a connection between two nodes passes both checks and one on the same node passes
both in one forward hook. Everything lives in one ``inet pyk8s-netpol`` table:

* base chains ``ingress-forward`` (forward hook, priority 0) and ``egress-forward``
  (priority -1) and ``egress-input`` (input hook: a pod talking to its own node) accept
  ``ct state established,related`` (replies of allowed connections) and send packets of
  isolated pods (the ``ingress-isolated``/``egress-isolated`` sets) to the dispatch
  chains ``ingress``/``egress``;
* the dispatch chains jump, per policy, to ``np-<HASH>-ingress``/``-egress`` when the
  pod is one the policy selects (set ``np-<HASH>-pods``), and drop what no policy
  accepted (default deny);
* a policy's chain has one ``accept`` rule per (peer match, port match) of each of its
  rules: pod peers through the per-rule address set ``np-<HASH>-in-N``/``-eg-N``, ipBlock
  peers inline with their ``except``, numeric ports and ranges inline, named ports through
  a set of ``address . protocol . port`` resolved per destination pod.

On a dual-stack cluster (as soon as any pod has an IPv6 address) every address set has
an IPv6 twin, ``<name>-6``, and every rule, dispatch and base-chain match that uses a set
is written for both families, so a policy filters a pod's IPv6 traffic as its IPv4.

Pod and namespace changes only change set elements, so the applier's diff (see
:meth:`NetpolRuleset.diff_text`) is a few ``add element``/``delete element`` lines;
only a policy change rewrites that policy's chain. Node-to-local-pod traffic (the
kubelet's probes) enters through the output hook and is not filtered, as upstream allows.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyk8s.api.selectors import LabelSelector, SelectorError, label_selector_from_dict

__all__ = ["TABLE", "NetpolRuleset", "PodInfo", "compile_policies", "pod_info"]

TABLE = "inet pyk8s-netpol"
_PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}

#: base chain → hook declaration
BASE_CHAINS = {
    "egress-forward": "type filter hook forward priority -1 ; policy accept ;",
    "ingress-forward": "type filter hook forward priority 0 ; policy accept ;",
    "egress-input": "type filter hook input priority -1 ; policy accept ;",
}
_ADDR = "type ipv4_addr ;"
_NAMED = "type ipv4_addr . inet_proto . inet_service ;"
_ADDR6 = "type ipv6_addr ;"
_NAMED6 = "type ipv6_addr . inet_proto . inet_service ;"
#: the suffix of a set's IPv6 twin
V6 = "-6"


@dataclass(frozen=True)
class PodInfo:
    """What enforcement needs of a pod."""

    namespace: str
    name: str
    ip: str
    node: str
    labels: Mapping[str, str]
    #: (port name, protocol) → container port
    named_ports: Mapping[tuple[str, str], int]
    #: the pod's IPv6 address on a dual-stack cluster ("" otherwise)
    ip6: str = ""

    @property
    def ips(self) -> tuple[str, ...]:
        return tuple(a for a in (self.ip, self.ip6) if a)


def pod_info(pod: Mapping[str, Any]) -> PodInfo | None:
    """The pod's addresses and labels; None for host-network pods and pods without an
    address (they are not policy targets or pod peers)."""
    spec, status, meta = pod.get("spec") or {}, pod.get("status") or {}, pod.get("metadata") or {}
    if spec.get("hostNetwork") or status.get("phase") in ("Succeeded", "Failed"):
        return None
    ips = [p.get("ip", "") for p in status.get("podIPs") or []] or [status.get("podIP") or ""]
    ip = next((a for a in ips if a and ":" not in a), "")
    ip6 = next((a for a in ips if a and ":" in a), "")
    if not ip and not ip6:
        return None
    named: dict[tuple[str, str], int] = {}
    for container in spec.get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") and isinstance(port.get("containerPort"), int):
                key = (port["name"], str(port.get("protocol") or "TCP"))
                named.setdefault(key, port["containerPort"])
    return PodInfo(
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
        ip,
        str(spec.get("nodeName") or ""),
        dict(meta.get("labels") or {}),
        named,
        ip6,
    )


@dataclass
class NetpolRuleset:
    """The table: chains (declaration, rules) and sets (declaration, elements)."""

    chains: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    sets: dict[str, tuple[str, frozenset[str]]] = field(default_factory=dict)

    def _elements(self, verb: str, name: str, elements: Iterable[str]) -> list[str]:
        items = sorted(elements)
        return [f"{verb} element {TABLE} {name} {{ {', '.join(items)} }}"] if items else []

    def text(self) -> str:
        """A transaction replacing the whole table (``add`` first makes ``delete`` safe)."""
        out = [f"add table {TABLE}", f"delete table {TABLE}", f"add table {TABLE}"]
        for name, (decl, elements) in sorted(self.sets.items()):
            out.append(f"add set {TABLE} {name} {{ {decl} }}")
            out += self._elements("add", name, elements)
        out += [f"add chain {TABLE} {name} {{ {decl} }}" for name, (decl, _) in self._order()]
        for name, (_, rules) in self._order():
            out += [f"add rule {TABLE} {name} {rule}" for rule in rules]
        return "\n".join(out) + "\n"

    def _order(self) -> list[tuple[str, tuple[str, tuple[str, ...]]]]:
        return sorted(self.chains.items())

    def diff_text(self, old: NetpolRuleset) -> str:
        """The transaction turning ``old`` (what the kernel holds) into this ruleset."""
        out: list[str] = []
        for name, (decl, elements) in sorted(self.sets.items()):
            before = old.sets.get(name)
            if before is None or before[0] != decl:
                if before is not None:  # never happens with our names; be safe
                    return self.text()
                out.append(f"add set {TABLE} {name} {{ {decl} }}")
                out += self._elements("add", name, elements)
            else:
                out += self._elements("delete", name, before[1] - elements)
                out += self._elements("add", name, elements - before[1])
        for name, (decl, _) in self._order():
            if name not in old.chains:
                out.append(f"add chain {TABLE} {name} {{ {decl} }}")
            elif old.chains[name][0] != decl:
                return self.text()
        changed = [n for n, (_, r) in self._order() if n in old.chains and old.chains[n][1] != r]
        gone = sorted(set(old.chains) - set(self.chains))
        out += [f"flush chain {TABLE} {name}" for name in changed + gone]
        for name, (_, rules) in self._order():
            if name not in old.chains or name in changed:
                out += [f"add rule {TABLE} {name} {rule}" for rule in rules]
        out += [f"delete chain {TABLE} {name}" for name in gone]
        out += [f"delete set {TABLE} {name}" for name in sorted(set(old.sets) - set(self.sets))]
        return "\n".join(out) + "\n" if out else ""


@functools.lru_cache(maxsize=4096)
def policy_hash(namespace: str, name: str) -> str:
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).digest()[:5]
    return base64.b32encode(digest).decode()


def _selector(d: Any) -> LabelSelector:
    return _parsed_selector(json.dumps(d, sort_keys=True))


@functools.lru_cache(maxsize=4096)
def _parsed_selector(key: str) -> LabelSelector:
    try:
        return label_selector_from_dict(json.loads(key))
    except SelectorError:  # validation rejects these; match nothing rather than everything
        return LabelSelector.nothing()


def policy_types(spec: Mapping[str, Any]) -> tuple[bool, bool]:
    """(ingress, egress): upstream's defaulting when policyTypes is empty."""
    types = spec.get("policyTypes") or (
        ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]
    )
    return "Ingress" in types, "Egress" in types


class _PodIndex:
    """Pods grouped by namespace and label set, so a selector is matched once per group
    (a Deployment's pods share one), not once per pod."""

    def __init__(self, pods: list[PodInfo]) -> None:
        self.groups: dict[str, dict[tuple[tuple[str, str], ...], list[PodInfo]]] = {}
        for pod in pods:
            key = tuple(sorted(pod.labels.items()))
            self.groups.setdefault(pod.namespace, {}).setdefault(key, []).append(pod)
        self.ips = {
            (ns, key): tuple(a for p in pods for a in p.ips)
            for ns, groups in self.groups.items()
            for key, pods in groups.items()
        }

    def select(self, namespaces: Iterable[str], sel: LabelSelector) -> list[PodInfo]:
        out: list[PodInfo] = []
        for ns in namespaces:
            for labels, pods in self.groups.get(ns, {}).items():
                if sel.matches(dict(labels)):
                    out += pods
        return out

    def add_ips(self, out: set[str], namespaces: Iterable[str], sel: LabelSelector) -> None:
        for ns in namespaces:
            for labels in self.groups.get(ns, {}):
                if sel.matches(dict(labels)):
                    out.update(self.ips[ns, labels])


def _peer_pods(
    peers: list[Any], namespace: str, index: _PodIndex, ns_labels: Mapping[str, Mapping[str, str]]
) -> set[str]:
    """Addresses of the pods the rule's podSelector/namespaceSelector peers select."""
    out: set[str] = set()
    for peer in peers:
        peer = peer or {}
        if peer.get("ipBlock") is not None:
            continue
        pod_sel = peer.get("podSelector")
        ns_sel = peer.get("namespaceSelector")
        if pod_sel is None and ns_sel is None:
            continue
        psel = _selector(pod_sel) if pod_sel is not None else LabelSelector.everything()
        if ns_sel is None:
            namespaces: Iterable[str] = [namespace]
        else:
            nsel = _selector(ns_sel)
            namespaces = [n for n in index.groups if nsel.matches(ns_labels.get(n, {}))]
        index.add_ips(out, namespaces, psel)
    return out


def _block_matches(peers: list[Any], direction: str) -> list[str]:
    out = []
    for peer in peers:
        block = (peer or {}).get("ipBlock")
        if block:
            match = _block_match(
                str(block.get("cidr")), tuple(str(e) for e in block.get("except") or []), direction
            )
            if match:
                out.append(match)
    return out


@functools.lru_cache(maxsize=4096)
def _block_match(cidr: str, excepts: tuple[str, ...], direction: str) -> str:
    """The nft match for one ipBlock ('' for an invalid one: validation rejects those)."""
    try:
        net = ipaddress.ip_network(cidr, strict=False)
        nets = [ipaddress.ip_network(e, strict=False) for e in excepts]
    except ValueError:
        return ""
    fam = "ip" if net.version == 4 else "ip6"
    match = f"{fam} {direction} {net}"
    if nets:
        match += f" {fam} {direction} != {{ {', '.join(str(e) for e in nets)} }}"
    return match


def _port_matches(ports: list[Any], named_set: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(inline matches, the named ports as (name, protocol))."""
    by_proto: dict[str, list[str]] = {}
    any_port: list[str] = []
    named: list[tuple[str, str]] = []
    for port in ports:
        port = port or {}
        proto = str(port.get("protocol") or "TCP")
        p = port.get("port")
        if p is None:
            any_port.append(f"meta l4proto {_PROTOCOLS.get(proto, 'tcp')}")
        elif isinstance(p, str) and not p.isdigit():
            named.append((p, proto))
        else:
            end = port.get("endPort")
            value = f"{int(p)}-{int(end)}" if isinstance(end, int) and end > int(p) else str(p)
            by_proto.setdefault(_PROTOCOLS.get(proto, "tcp"), []).append(value)
    out = list(any_port)
    for proto, values in sorted(by_proto.items()):
        out.append(f"{proto} dport {{ {', '.join(values)} }}")
    if named:
        out.append(f"ip daddr . meta l4proto . th dport @{named_set}")
    return out, named


def _named_elements(pods: Iterable[PodInfo], named: list[tuple[str, str]]) -> set[str]:
    out = set()
    for pod in pods:
        for name, proto in named:
            port = pod.named_ports.get((name, proto))
            if port is not None:
                for ip in pod.ips:
                    out.add(f"{ip} . {_PROTOCOLS.get(proto, 'tcp')} . {port}")
    return out


def _put_set(rs: NetpolRuleset, name: str, decl: str, elements: Iterable[str], dual: bool) -> None:
    """Set ``name`` with the IPv4 elements, and on a dual-stack cluster its IPv6 twin."""
    every = frozenset(elements)
    v4 = frozenset(e for e in every if ":" not in e.split(" ", 1)[0])
    rs.sets[name] = (decl, v4)
    if dual:
        rs.sets[name + V6] = (_NAMED6 if decl == _NAMED else _ADDR6, every - v4)


def _families(match: str, dual: bool) -> list[str]:
    """``match`` (an ``ip …@set`` match), and on a dual-stack cluster its IPv6 twin."""
    return [match, "ip6" + match[2:] + V6] if dual else [match]


def _same_family(peer: str, port: str) -> bool:
    """Whether a peer match and a port match can hold for one packet (not ``ip`` with
    ``ip6``)."""
    families = {m.split(" ", 1)[0] for m in (peer, port) if m.startswith(("ip ", "ip6 "))}
    return len(families) <= 1


def compile_policies(
    policies: Iterable[Mapping[str, Any]],
    pods: Iterable[PodInfo],
    namespaces: Iterable[Mapping[str, Any]],
    node_name: str,
) -> NetpolRuleset:
    """The node's ruleset for these policies, pods (with :func:`pod_info`) and namespaces."""
    all_pods = sorted(pods, key=lambda p: (p.namespace, p.name))
    ns_labels = {
        str((n.get("metadata") or {}).get("name")): dict(
            (n.get("metadata") or {}).get("labels") or {}
        )
        for n in namespaces
    }
    index = _PodIndex(all_pods)
    local = _PodIndex([p for p in all_pods if p.node == node_name])
    dual = any(p.ip6 for p in all_pods)
    rs = NetpolRuleset()
    isolated: dict[str, set[str]] = {"ingress": set(), "egress": set()}
    dispatch: dict[str, list[str]] = {"ingress": [], "egress": []}
    ordered = sorted(policies, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))
    for policy in ordered:
        meta, spec = policy["metadata"], policy.get("spec") or {}
        ns, h = meta["namespace"], policy_hash(meta["namespace"], meta["name"])
        sel = _selector(spec.get("podSelector") or {})
        targets = local.select([ns], sel)
        addresses = frozenset(a for p in targets for a in p.ips)
        _put_set(rs, f"np-{h}-pods", _ADDR, addresses, dual)
        comment = f'comment "{ns}/{meta["name"]}"'
        for direction, enabled in zip(("ingress", "egress"), policy_types(spec), strict=True):
            if not enabled:
                continue
            isolated[direction] |= addresses
            key, peers_key, addr = (
                ("in", "from", "saddr") if direction == "ingress" else ("eg", "to", "daddr")
            )
            chain = f"np-{h}-{direction}"
            which = "daddr" if direction == "ingress" else "saddr"
            dispatch[direction] += [
                f"{match} jump {chain} {comment}"
                for match in _families(f"ip {which} @np-{h}-pods", dual)
            ]
            rules: list[str] = []
            for n, rule in enumerate(spec.get(direction) or []):
                rule = rule or {}
                peers = rule.get(peers_key) or []
                peer_matches = _block_matches(peers, addr)
                pod_peers = _peer_pods(peers, ns, index, ns_labels)
                has_pod_peers = any(
                    (p or {}).get("ipBlock") is None
                    and ((p or {}).get("podSelector") is not None
                         or (p or {}).get("namespaceSelector") is not None)
                    for p in peers
                )  # fmt: skip
                if has_pod_peers:
                    _put_set(rs, f"np-{h}-{key}-{n}", _ADDR, pod_peers, dual)
                    peer_matches += _families(f"ip {addr} @np-{h}-{key}-{n}", dual)
                if peers and not peer_matches:
                    continue  # nothing valid to match
                named_set = f"np-{h}-{key}-{n}-ports"
                port_matches, named = _port_matches(rule.get("ports") or [], named_set)
                if named:
                    # the destination resolves the name: the selected pod for ingress,
                    # any pod for egress
                    dests = targets if direction == "ingress" else all_pods
                    _put_set(rs, named_set, _NAMED, _named_elements(dests, named), dual)
                    port_matches = [
                        m for p in port_matches for m in (_families(p, dual) if "@" in p else [p])
                    ]
                for peer in peer_matches or [""]:
                    for port in port_matches or [""]:
                        if _same_family(peer, port):
                            rules.append(" ".join(x for x in (peer, port, "accept") if x))
            rs.chains[chain] = ("", tuple(rules))
    for direction in ("ingress", "egress"):
        _put_set(rs, f"{direction}-isolated", _ADDR, isolated[direction], dual)
        rules = [*dispatch[direction], 'counter drop comment "default deny"']
        rs.chains[direction] = ("", tuple(rules))
    established = "ct state established,related accept"
    rs.chains["ingress-forward"] = (
        BASE_CHAINS["ingress-forward"],
        (
            established,
            *(f"{m} jump ingress" for m in _families("ip daddr @ingress-isolated", dual)),
        ),
    )
    egress = [f"{m} jump egress" for m in _families("ip saddr @egress-isolated", dual)]
    for name in ("egress-forward", "egress-input"):
        rs.chains[name] = (BASE_CHAINS[name], (established, *egress))
    return rs
