"""Render kube-proxy's nftables ruleset (upstream's nftables proxier design), as a pure function.

Same input and the same Kubernetes semantics as the iptables renderer (the records and
endpoint categories of :mod:`pyk8s.proxy.model`), written as one ``kube-proxy`` table per
address family (``ip`` and, on a dual-stack node, ``ip6``, each from the model's
service ports and endpoints of that family):

* base chains hooked at upstream's priorities (``nat-prerouting``/``nat-output`` jump to
  ``services``, ``nat-postrouting`` to ``masquerading``, the ``filter-*`` chains check for
  services without endpoints, load-balancer source ranges and unused cluster-IP ports);
* service dispatch through verdict maps keyed by ``address . protocol . port``
  (``service-ips``) and ``protocol . port`` (``service-nodeports``), so a packet costs one
  map lookup whatever the number of services;
* per service port ``service-<HASH>-ns/svc/proto/port`` (cluster policy), ``local-…``
  (local policy), ``external-…`` (NodePort, external IPs, load-balancer IPs) and
  ``firewall-…`` chains; per endpoint ``endpoint-<HASH>-ns/svc/proto/port__ip/port`` chains
  that DNAT; endpoints are picked with ``numgen random mod n vmap``;
* ClientIP session affinity in a per-endpoint dynamic set with the service's timeout;
* services without endpoints are rejected (dropped when only local endpoints are wanted
  and there are none) through the ``no-endpoint-*`` maps.

The result is a :class:`NftRuleset` (chains → rules, maps/sets → elements) from which the
applier writes either a full transaction or only the difference to the previous ruleset.
:class:`NftRenderer` keeps a table between syncs and re-renders only the Services that
changed, so a sync's work (and its diff) is proportional to the change, not the cluster.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections import deque
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyk8s.proxy.model import (
    Endpoint,
    ServicePort,
    b32,
    categorize,
    endpoints_by_port,
    memo,
    service_key,
    service_ports,
    slice_service_key,
)
from pyk8s.proxy.rules import ProxyConfig

__all__ = [
    "TABLE",
    "Family",
    "NftRenderer",
    "NftRuleset",
    "render_nft",
]

TABLE = "kube-proxy"
_CHAIN_BASE_MAX = 240


@dataclass(frozen=True)
class Family:
    """What differs between the ``ip`` and ``ip6`` tables."""

    name: str = "ip"  # nft family and the address match keyword
    addr_type: str = "ipv4_addr"
    loopback: str = "127.0.0.0/8"


IPV4 = Family()
#: the IPv6 table of a dual-stack (or IPv6-only) node
IPV6 = Family("ip6", "ipv6_addr", "::1")


def _hash_and_truncate(name: str) -> str:
    """Upstream's chain-name base: 8 base32 characters of the SHA-256, ``-``, the name (the
    first 8 characters encode exactly the first 5 bytes)."""
    digest = b32(hashlib.sha256(name.encode()).digest()[:5])
    out = f"{digest}-{name}"
    return out if len(out) <= _CHAIN_BASE_MAX else out[: _CHAIN_BASE_MAX - 3] + "..."


def _port_base(sp: ServicePort) -> str:
    return _hash_and_truncate(f"{sp.namespace}/{sp.service}/{sp.proto}/{sp.port_name}")


def _endpoint_base(sp: ServicePort, ep: Endpoint) -> str:
    ip = ep.ip.replace(":", ".")
    return _hash_and_truncate(
        f"{sp.namespace}/{sp.service}/{sp.proto}/{sp.port_name}__{ip}/{ep.port}"
    )


#: maps and sets every table has: name → declaration body
MAPS = {
    "service-ips": "type {addr} . inet_proto . inet_service : verdict ;"
    ' comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ;',
    "service-nodeports": 'type inet_proto . inet_service : verdict ; comment "NodePort traffic" ;',
    "no-endpoint-services": "type {addr} . inet_proto . inet_service : verdict ;"
    ' comment "vmap to drop or reject packets to services with no endpoints" ;',
    "no-endpoint-nodeports": "type inet_proto . inet_service : verdict ;"
    ' comment "vmap to drop or reject packets to service nodeports with no endpoints" ;',
    "firewall-ips": "type {addr} . inet_proto . inet_service : verdict ;"
    ' comment "destinations that are subject to LoadBalancerSourceRanges" ;',
}
SETS = {
    "cluster-ips": 'type {addr} ; comment "Active ClusterIPs" ;',
    "nodeport-ips": 'type {addr} ; comment "IPs that accept NodePort traffic" ;',
}
#: base chain → hook declaration (upstream's priorities)
HOOKS = {
    "filter-prerouting": "type filter hook prerouting priority -110 ;",
    "filter-input": "type filter hook input priority -110 ;",
    "filter-forward": "type filter hook forward priority -110 ;",
    "filter-output": "type filter hook output priority -110 ;",
    "filter-output-post-dnat": "type filter hook output priority -90 ;",
    "nat-prerouting": "type nat hook prerouting priority -100 ;",
    "nat-output": "type nat hook output priority -100 ;",
    "nat-postrouting": "type nat hook postrouting priority 100 ;",
}
#: the table's other chains shared by every Service (:func:`_write_base`)
SHARED_CHAINS = (
    "cluster-ips-check",
    "firewall-check",
    "mark-for-masquerade",
    "masquerading",
    "nodeport-endpoints-check",
    "reject-chain",
    "service-endpoints-check",
    "services",
)


@dataclass
class _Touched:
    """What :meth:`NftRenderer.update` changed (ordered, for a deterministic transaction)."""

    chains: dict[str, None] = field(default_factory=dict)
    sets: dict[str, None] = field(default_factory=dict)
    elements: dict[str, dict[str, None]] = field(default_factory=dict)


@dataclass
class NftRuleset:
    """One family's ``kube-proxy`` table: every chain's rules (base chains included), the
    elements of every map and set, and the per-endpoint affinity sets."""

    family: Family = IPV4
    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: map or set → key → value ('' for a set element)
    elements: dict[str, dict[str, str]] = field(default_factory=dict)
    #: affinity set → declaration body
    dynamic_sets: dict[str, str] = field(default_factory=dict)
    #: the ruleset this one was derived from by :meth:`NftRenderer.update`, and what the
    #: update touched: a diff against exactly that ruleset only looks at those names
    _base: NftRuleset | None = field(default=None, init=False, repr=False, compare=False)
    _touched: _Touched | None = field(default=None, init=False, repr=False, compare=False)

    def _p(self, table: str = TABLE) -> str:
        return f"{self.family.name} {table}"

    def text(self) -> str:
        """A transaction that replaces the whole table (``add`` then ``delete`` makes the
        delete safe when the table does not exist; ``nft -f`` applies it atomically).

        Rules holding an anonymous set (the ``numgen … vmap { … }`` of every service chain,
        the source ranges of a firewall chain) are written right after the chains they jump
        to are declared, before the bulk of the rules: the kernel walks the whole
        transaction so far each time it binds an anonymous set, so late ones make a
        1,000-service transaction quadratic."""
        p = self._p()
        out = [f"add table {p}", f"delete table {p}", *self._declarations()]
        out += self._chain_lines(self.chains, set())
        for name, elements in self.elements.items():
            out += _element_lines("add", p, name, elements)
        return "\n".join(out) + "\n"

    def fresh_texts(self, pieces: int, table: str = TABLE) -> Iterator[str]:
        """The whole table (named ``table``) as several transactions, for a table that does
        not exist yet (a node's first sync). The first ``create``\\s it (failing if it exists)
        with its maps, sets, shared chains and the elements that go to none of the
        Services' chains; then come the Services' chains, their rules and the elements
        that go to them, in ``pieces`` transactions of about the same number of chains
        (chains that jump to one another, a service port's, stay together), which may
        run side by side; the last adds the hooked base chains. Until the last one
        commits no packet enters the table, so the pieces are as good as one transaction,
        and each is cheaper in the kernel: it binds its anonymous sets against a short
        transaction."""
        p = self._p(table)
        shared = [c for c in self.chains if c in SHARED_CHAINS]
        services = [c for c in self.chains if c not in HOOKS and c not in SHARED_CHAINS]
        chunks = _chain_groups(services, self.chains, -(-len(services) // max(pieces, 1)))
        where = {c: i for i, chunk in enumerate(chunks) for c in chunk}
        elements: list[dict[str, dict[str, str]]] = [{} for _ in range(len(chunks) + 1)]
        for name, items in self.elements.items():
            for key, value in items.items():
                target = _TARGET.search(value)
                i = where.get(target.group(1), -1) if target else -1
                elements[i + 1].setdefault(name, {})[key] = value
        head = self._declarations("create", p) + self._chain_lines(shared, set(), p)
        for i, chunk in enumerate([[], *chunks]):
            out = head if i == 0 else self._chain_lines(chunk, set(shared), p)
            for name, items in elements[i].items():
                out += _element_lines("add", p, name, items)
            yield "\n".join(out) + "\n"
        hooked = self._chain_lines([c for c in self.chains if c in HOOKS], set(), p)
        yield "\n".join(hooked) + "\n"

    def head_text(self, table: str = TABLE) -> str:
        """The first transaction of a table written as it is rendered
        (:meth:`NftRenderer.render_steps`): creates it (failing if it exists) with
        its maps, its sets and the shared chains. The Services' chains and affinity sets
        follow in pieces (:meth:`piece_texts`), the elements and hooked chains last
        (:meth:`tail_text`)."""
        p = self._p(table)
        shared = [c for c in self.chains if c in SHARED_CHAINS]
        out = self._declarations("create", p, affinity=False) + self._chain_lines(shared, set(), p)
        return "\n".join(out) + "\n"

    def piece_texts(
        self, chains: Sequence[str], sets: Sequence[str], table: str = TABLE
    ) -> tuple[str, str]:
        """Some Services' ``chains`` and affinity ``sets`` (after :meth:`head_text`), as
        two transactions to run one after the other: the affinity sets and the endpoint
        chains, then the chains that jump to them. Each anonymous set (a service chain's
        ``numgen … vmap``) is bound by walking its whole transaction so far, which the
        second keeps short. Each chain is written with its rules in a block, which
        ``nft`` parses faster than one ``add rule`` a line (at 1,000 services in pieces
        of 2,500 chains the two take ~15 % less CPU than one transaction of ``add``
        lines; one transaction of blocks would take more: every bind would walk all the
        rules before it)."""
        p = self._p(table)
        first = [f"add set {p} {n} {{ {self.dynamic_sets[n]} }}" for n in sets]
        second = first.copy()  # (again: blocks alone do not make nft read the table's sets)
        for chain in chains:
            rules = self.chains[chain]
            line = f"add chain {p} {chain} {{ {' ; '.join(rules)} ; }}" if rules else ""
            (first if chain.startswith("endpoint-") else second).append(
                line or f"add chain {p} {chain}"
            )
        return "\n".join(first) + "\n", "\n".join(second) + "\n"

    def tail_text(self, table: str = TABLE) -> str:
        """The last transaction of a table written in pieces: every map and set element
        (known once every Service is rendered: two may claim one key), then the hooked
        base chains, so that no packet enters the table before it is whole."""
        p = self._p(table)
        out = [
            line
            for n, items in self.elements.items()
            for line in _element_lines("add", p, n, items)
        ]
        out += self._chain_lines([c for c in self.chains if c in HOOKS], set(), p)
        return "\n".join(out) + "\n"

    def _declarations(self, verb: str = "add", p: str = "", affinity: bool = True) -> list[str]:
        """The table (``verb``: ``add``, or ``create`` to fail if it exists), its maps and
        its sets (``p``: family and table, ours by default; ``affinity``: also the
        Services' affinity sets)."""
        p, addr = p or self._p(), self.family.addr_type
        out = [f'{verb} table {p} {{ comment "rules for kube-proxy" ; }}']
        out += [f"add map {p} {name} {{ {body.format(addr=addr)} }}" for name, body in MAPS.items()]
        out += [f"add set {p} {name} {{ {body.format(addr=addr)} }}" for name, body in SETS.items()]
        if affinity:
            out += [f"add set {p} {name} {{ {body} }}" for name, body in self.dynamic_sets.items()]
        return out

    def _chain_lines(self, chains: Iterable[str], declared: set[str], p: str = "") -> list[str]:
        """``add chain`` and ``add rule`` commands for ``chains`` (``declared``: chains
        that exist before them), anonymous sets early (see :meth:`text`)."""
        p = p or self._p()
        out: list[str] = []
        later: list[str] = []
        for chain in chains:
            rules = self.chains[chain]
            hook = HOOKS.get(chain)
            out.append(f"add chain {p} {chain} {{ {hook} }}" if hook else f"add chain {p} {chain}")
            declared.add(chain)
            lines = [f"add rule {p} {chain} {rule}" for rule in rules]
            joined = " ".join(rules)
            if "{" in joined and declared.issuperset(_TARGET.findall(joined)):
                out += lines
            else:
                later += lines
        return out + later

    def diff_text(self, previous: NftRuleset, delete_stale: bool = True) -> str:
        """A transaction turning ``previous`` (in the kernel) into this ruleset that touches
        only what changed: new chains and sets are added, changed chains flushed and
        refilled, map elements deleted/added one by one, stale chains flushed and deleted
        after nothing points at them any more, stale affinity sets deleted last.

        A ruleset :meth:`NftRenderer.update` derived from ``previous`` compares only the
        chains, sets and elements of the Services that changed (upstream's partial sync);
        any other pair is compared in full.

        A changed chain is written with its rules in a block (``add chain … { … }``):
        without ``add rule``, elements or deletes, ``nft`` reads none of the table
        first (at 1,000 services x 10 endpoints a moved endpoint took ~20 ms of CPU
        instead of ~55). A chain whose rules name a set (``@…``) is written rule by rule
        (``add rule`` makes ``nft`` read the sets). ``delete_stale`` False leaves the
        stale chains flushed but in place, for the caller to delete later
        (:meth:`gone_chains`), as upstream does."""
        p = self._p()
        now, before = self.chains, previous.chains
        touched = self._touched if self._base is previous else None
        stale = self.gone_chains(previous)
        if touched is None:
            chains: Iterable[str] = now
            sets: Iterable[str] = {**previous.dynamic_sets, **self.dynamic_sets}
            names = sorted(set(self.elements) | set(previous.elements))
        else:
            chains = [c for c in touched.chains if c in now]
            sets = touched.sets
            names = sorted(touched.elements)
        new_sets = [n for n in sets if n in self.dynamic_sets and n not in previous.dynamic_sets]
        old_sets = [n for n in sets if n in previous.dynamic_sets and n not in self.dynamic_sets]
        out = [f"add set {p} {n} {{ {self.dynamic_sets[n]} }}" for n in new_sets]
        out += [f"add chain {p} {c}" for c in chains if c not in before]
        for chain in chains:
            rules, old = now[chain], before.get(chain)
            if old == rules:
                continue
            if old:
                out.append(f"flush chain {p} {chain}")
            if any("@" in rule for rule in rules):
                out += [f"add rule {p} {chain} {rule}" for rule in rules]
            elif rules:
                out.append(f"add chain {p} {chain} {{ {' ; '.join(rules)} ; }}")
        changes = []
        for name in names:
            want, had = self.elements.get(name, {}), previous.elements.get(name, {})
            keys: Iterable[str] = (
                set(want) | set(had) if touched is None else touched.elements[name]
            )
            changes.append((name, want, had, keys))
        for name, want, had, keys in changes:  # deletes first: a changed value goes and comes
            gone = {k: had[k] for k in keys if k in had and want.get(k) != had[k]}
            out += _element_lines("delete", p, name, gone)
        for name, want, had, keys in changes:
            added = {k: want[k] for k in keys if k in want and had.get(k) != want[k]}
            out += _element_lines("add", p, name, added)
        out += [f"flush chain {p} {c}" for c in stale]
        if delete_stale:
            out += [f"delete chain {p} {c}" for c in stale]
        out += [f"delete set {p} {n}" for n in old_sets]
        return "\n".join(out) + "\n" if out else ""

    def gone_chains(self, previous: NftRuleset) -> list[str]:
        """The chains of ``previous`` that this ruleset no longer has (looking at the
        changed Services' only, when :meth:`NftRenderer.update` derived it from
        ``previous``)."""
        touched = self._touched if self._base is previous else None
        names = previous.chains if touched is None else touched.chains
        return [c for c in names if c in previous.chains and c not in self.chains]


#: the chains a rule jumps or goes to
_TARGET = re.compile(r"(?:goto|jump) ([^\s,}]+)")

#: a service port's place in the merge order (upstream's ServicePortName, then protocol)
SortKey = tuple[str, str]
Part = tuple[SortKey, NftRuleset]


class NftRenderer:
    """One family's ``kube-proxy`` table kept between syncs, re-rendered per Service.

    :meth:`render` renders every Service (a proxy's first sync and its periodic full
    ones); :meth:`update` re-renders only the Services that changed and returns a ruleset
    whose :meth:`NftRuleset.diff_text` against the previous one looks at nothing else, as
    upstream's partial syncs rewrite only the chains of changed services. The rendered
    service ports are cached (:func:`_fragment`), so neither re-renders an unchanged
    port. Two Services claiming the same map key (an external IP and port) resolve as a
    full render does: the last service port in name order wins.
    """

    def __init__(self, config: ProxyConfig, family: Family | None = None) -> None:
        self.config = config
        self.family = family or (IPV6 if config.ip_family == 6 else IPV4)
        self._version = 6 if self.family.name == "ip6" else 4
        #: the last rendered ruleset (None before the first :meth:`render`)
        self.ruleset: NftRuleset | None = None
        self._parts: dict[str, tuple[Part, ...]] = {}
        #: map → key → service port → value, for keys more than one port could claim
        self._claims: dict[str, dict[str, dict[SortKey, str]]] = {}
        #: the rendered service ports by their input, since the last :meth:`render` (the
        #: next one reuses them even when the shared cache was emptied in between)
        self._live: dict[tuple[ServicePort, tuple[Endpoint, ...]], NftRuleset] = {}
        self._earlier: dict[tuple[ServicePort, tuple[Endpoint, ...]], NftRuleset] = {}
        #: the chains and affinity sets added since the last step (:meth:`render_steps`)
        self._fresh: tuple[list[str], list[str]] | None = None

    def render(
        self, services: Iterable[Mapping[str, Any]], endpoint_slices: Iterable[Mapping[str, Any]]
    ) -> NftRuleset:
        """The complete table for these Services and EndpointSlices."""
        return deque(self.render_steps(services, endpoint_slices), maxlen=1)[0][0]  # the last

    def render_steps(
        self,
        services: Iterable[Mapping[str, Any]],
        endpoint_slices: Iterable[Mapping[str, Any]],
        size: int = 0,
    ) -> Iterator[tuple[NftRuleset, list[str], list[str]]]:
        """:meth:`render` in steps, so that a first sync can write the table in pieces
        while the rest is still being rendered: yields the table being built with the
        chains and affinity sets added since the previous step, once with the shared
        chains only (if ``size``), then once ``size / 4`` chains are in (the first piece
        starts early), then whenever ``size`` more are (a Service's all in one step), and
        last with the rest (:attr:`ruleset` is the whole table by then). It must be run
        to its end."""
        by_service: dict[str, list[Mapping[str, Any]]] = {}
        for sl in endpoint_slices:
            key = slice_service_key(sl)
            if key is not None:
                by_service.setdefault(key, []).append(sl)
        svcs = {service_key(svc): svc for svc in services}
        out = NftRuleset(family=self.family, elements={n: {} for n in (*MAPS, *SETS)})
        _write_base(out, self.config)
        for ip in self.config.nodeport_addresses:
            out.elements["nodeport-ips"][ip] = ""
        self._parts, self._claims = {}, {}
        self._earlier, self._live = self._live, {}
        if size:
            yield out, [], []
        fresh = self._fresh = ([], [])
        step = -(-size // 4)  # (0: no steps)
        for key in sorted(svcs):
            self._replace(out, key, self._service_parts(svcs[key], by_service.get(key, ())), None)
            if step and len(fresh[0]) >= step:
                yield out, *fresh
                fresh = self._fresh = ([], [])
                step = size
        self._earlier, self._fresh = {}, None
        self.ruleset = out
        yield out, *fresh

    def update(
        self, changed: Mapping[str, tuple[Mapping[str, Any] | None, Sequence[Mapping[str, Any]]]]
    ) -> NftRuleset:
        """The table with the Services in ``changed`` (key → the Service, None once
        deleted, and its EndpointSlices) re-rendered; :meth:`render` must have run."""
        previous = self.ruleset
        if previous is None:
            raise ValueError("NftRenderer.update before the first render")
        out = NftRuleset(
            family=self.family,
            chains=dict(previous.chains),
            elements=dict(previous.elements),  # each map is copied when first changed
            dynamic_sets=dict(previous.dynamic_sets),
        )
        touched = _Touched()
        for key in sorted(changed):
            svc, slices = changed[key]
            parts = self._service_parts(svc, slices) if svc is not None else ()
            self._replace(out, key, parts, touched)
        previous._base = previous._touched = None  # diffs only ever go one generation back
        out._base, out._touched = previous, touched
        self.ruleset = out
        return out

    def _service_parts(
        self, svc: Mapping[str, Any], slices: Sequence[Mapping[str, Any]]
    ) -> tuple[Part, ...]:
        ports = service_ports(svc, self._version)
        if not ports:
            return ()
        by_port = endpoints_by_port(slices, self.config.node_name, self._version)
        parts = []
        for sp in ports:
            eps = tuple(by_port.get((sp.namespace, sp.service, sp.port_name, sp.protocol), ()))
            made = self._live.get((sp, eps)) or self._earlier.get((sp, eps))
            if made is None:
                made = _fragment(self.config, self.family, sp, eps)
            self._live[(sp, eps)] = made
            parts.append(((sp.name, sp.proto), made))
        parts.sort(key=lambda part: part[0])
        return tuple(parts)

    def _replace(
        self, out: NftRuleset, key: str, parts: tuple[Part, ...], touched: _Touched | None
    ) -> None:
        """Swap one Service's chains, sets and elements in ``out`` (recording what changed
        in ``touched``; None: ``out`` is being built from scratch)."""
        old = self._parts.pop(key, ())
        if parts:
            self._parts[key] = parts
        old_chains = {c: r for _, f in old for c, r in f.chains.items()}
        old_sets = {n: b for _, f in old for n, b in f.dynamic_sets.items()}
        for chain in old_chains:  # re-added below in the new order: endpoints first
            del out.chains[chain]
        for name in old_sets:
            del out.dynamic_sets[name]
        new_chains: dict[str, tuple[str, ...]] = {}
        new_sets: dict[str, str] = {}
        for _, f in parts:
            new_chains.update(f.chains)
            new_sets.update(f.dynamic_sets)
        out.chains.update(new_chains)
        out.dynamic_sets.update(new_sets)
        if self._fresh is not None:
            self._fresh[0].extend(new_chains)
            self._fresh[1].extend(new_sets)
        if touched is not None:
            for chain in {**old_chains, **new_chains}:
                if old_chains.get(chain) != new_chains.get(chain):
                    touched.chains[chain] = None
            for name in {**old_sets, **new_sets}:
                if old_sets.get(name) != new_sets.get(name):
                    touched.sets[name] = None
        keys: dict[tuple[str, str], None] = {}
        for sort_key, f in old:
            for name, elements in f.elements.items():
                claims = self._claims[name]
                for k in elements:
                    claims[k].pop(sort_key, None)
                    keys[(name, k)] = None
        for sort_key, f in parts:
            for name, elements in f.elements.items():
                claims = self._claims.setdefault(name, {})
                for k, v in elements.items():
                    claims.setdefault(k, {})[sort_key] = v
                    keys[(name, k)] = None
        for name, k in keys:
            claims = self._claims[name]
            owners = claims.get(k)
            value = owners[max(owners)] if owners else None
            if not owners:
                claims.pop(k, None)
            elements = out.elements[name]
            if elements.get(k, None if k in elements else "absent") == value:
                continue  # already so (present with this value, or absent and unclaimed)
            if touched is not None:
                if name not in touched.elements:  # copy on first write: previous stays as it was
                    elements = out.elements[name] = dict(elements)
                    touched.elements[name] = {}
                touched.elements[name][k] = None
            if value is None:
                del elements[k]
            else:
                elements[k] = value


def _element_lines(op: str, p: str, name: str, elements: Mapping[str, str]) -> list[str]:
    """``op element`` commands, 1,000 elements per command (deletes name keys only)."""
    items = [f"{k} : {v}" if v and op == "add" else k for k, v in sorted(elements.items())]
    return [
        f"{op} element {p} {name} {{ {', '.join(items[i : i + 1000])} }}"
        for i in range(0, len(items), 1000)
    ]


def _chain_groups(
    names: Sequence[str], chains: Mapping[str, Sequence[str]], size: int
) -> list[list[str]]:
    """``names`` in order, cut into lists of about ``size`` chains, chains that jump to
    one another in the same list (an ``endpoint-`` chain jumps to shared chains only)."""
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while (up := parent.get(name, name)) != name:
            name = parent[name] = parent.get(up, up)
        return name

    known = set(names)
    for name in names:
        if not name.startswith("endpoint-"):
            for target in _TARGET.findall(" ".join(chains[name])):
                if target in known:
                    parent[root(target)] = root(name)
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(root(name), []).append(name)
    out: list[list[str]] = []
    for group in groups.values():
        if not out or len(out[-1]) >= size:
            out.append([])
        out[-1] += group
    return out


def render_nft(
    services: Iterable[Mapping[str, Any]],
    endpoint_slices: Iterable[Mapping[str, Any]],
    config: ProxyConfig,
    family: Family | None = None,
) -> NftRuleset:
    """The complete ``kube-proxy`` table for these Services and EndpointSlices on this node
    (the ``ip6`` table when ``config.ip_family`` is 6)."""
    return NftRenderer(config, family).render(services, endpoint_slices)


#: rendered service ports remembered between syncs (see :func:`_fragment`)
FRAGMENT_CACHE_SIZE = 20000
_fragments: dict[Hashable, Any] = {}


def _fragment(
    config: ProxyConfig, family: Family, sp: ServicePort, endpoints: tuple[Endpoint, ...]
) -> NftRuleset:
    """One service port's chains, sets and elements, rendered once per distinct input (a
    sync at 10,000 services re-renders only the ones that changed)."""

    def make() -> NftRuleset:
        out = NftRuleset(family=family, elements={n: {} for n in (*MAPS, *SETS)})
        _write_service_port(out, config, sp, list(endpoints))
        return out

    return memo(_fragments, (config, family, sp, endpoints), make, FRAGMENT_CACHE_SIZE)


def _write_base(out: NftRuleset, config: ProxyConfig) -> None:
    ip, mark = out.family.name, f"{config.masquerade_mark:#x}"
    if config.nodeport_addresses:
        nodeports = f"{ip} daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports"
    else:
        nodeports = (
            f"fib daddr type local {ip} daddr != {out.family.loopback}"
            " meta l4proto . th dport vmap @service-nodeports"
        )
    dest = f"{ip} daddr . meta l4proto . th dport"
    out.chains.update({
        "filter-prerouting": ("ct state new jump firewall-check",),
        "filter-input": ("ct state new jump nodeport-endpoints-check",
                         "ct state new jump service-endpoints-check"),
        "filter-forward": ("ct state new jump service-endpoints-check",
                           "ct state new jump cluster-ips-check"),
        "filter-output": ("ct state new jump service-endpoints-check",
                          "ct state new jump firewall-check"),
        "filter-output-post-dnat": ("ct state new jump cluster-ips-check",),
        "nat-prerouting": ("jump services",),
        "nat-output": ("jump services",),
        "nat-postrouting": ("jump masquerading",),
        "cluster-ips-check": (
            f'{ip} daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"',  # noqa: E501
        ),
        "firewall-check": (f"{dest} vmap @firewall-ips",),
        "mark-for-masquerade": (f"mark set mark or {mark}",),
        "masquerading": (f"mark and {mark} == 0 return", f"mark set mark xor {mark}",
                         "masquerade fully-random"),
        "nodeport-endpoints-check": (
            (f"{ip} daddr @nodeport-ips " if config.nodeport_addresses
             else f"fib daddr type local {ip} daddr != {out.family.loopback} ")
            + "meta l4proto . th dport vmap @no-endpoint-nodeports",
        ),
        "reject-chain": ("reject",),
        "service-endpoints-check": (f"{dest} vmap @no-endpoint-services",),
        "services": (f"{dest} vmap @service-ips", nodeports),
    })  # fmt: skip


def _write_service_port(
    out: NftRuleset, config: ProxyConfig, sp: ServicePort, endpoints: list[Endpoint]
) -> None:
    ip, proto, base = out.family.name, sp.proto, _port_base(sp)
    cluster, local, has_endpoints = categorize(sp, endpoints)
    svc_chain, local_chain, ext_chain = f"service-{base}", f"local-{base}", f"external-{base}"
    fw_chain = f"firewall-{base}"
    internal_chain = local_chain if sp.internal_policy_local else svc_chain
    external_policy_chain = local_chain if sp.external_policy_local else svc_chain
    internal_ok = bool(local if sp.internal_policy_local else cluster)
    external_ok = bool(local if sp.external_policy_local else cluster)
    uses_ext = has_endpoints and sp.externally_accessible
    reject = "goto reject-chain"
    internal_verdict = "drop" if has_endpoints else reject
    external_verdict = "drop" if has_endpoints else reject
    maps = out.elements

    def key(addr: str, port: int) -> str:
        return f"{addr} . {proto} . {port}"

    maps["cluster-ips"][sp.cluster_ip] = ""
    if internal_ok:
        maps["service-ips"][key(sp.cluster_ip, sp.port)] = f"goto {internal_chain}"
    else:
        maps["no-endpoint-services"][key(sp.cluster_ip, sp.port)] = internal_verdict
    for addr in sp.external_ips:
        if has_endpoints:
            maps["service-ips"][key(addr, sp.port)] = f"goto {ext_chain}"
        if not external_ok:
            maps["no-endpoint-services"][key(addr, sp.port)] = external_verdict
    uses_fw = bool(sp.load_balancer_ips and sp.source_ranges)
    for addr in sp.load_balancer_ips:
        if has_endpoints:
            maps["service-ips"][key(addr, sp.port)] = f"goto {ext_chain}"
        if uses_fw:
            maps["firewall-ips"][key(addr, sp.port)] = f"goto {fw_chain}"
        if not external_ok:
            maps["no-endpoint-services"][key(addr, sp.port)] = external_verdict
    if sp.node_port:
        if has_endpoints:
            maps["service-nodeports"][f"{proto} . {sp.node_port}"] = f"goto {ext_chain}"
        if not external_ok:
            maps["no-endpoint-nodeports"][f"{proto} . {sp.node_port}"] = external_verdict

    chains = out.chains
    masq = ""
    if config.masquerade_all:
        masq = f"{ip} daddr {sp.cluster_ip} {proto} dport {sp.port} jump mark-for-masquerade"
    elif config.cluster_cidr:
        masq = (
            f"{ip} daddr {sp.cluster_ip} {proto} dport {sp.port}"
            f" {ip} saddr != {config.cluster_cidr} jump mark-for-masquerade"
        )
    # each chain after the chains it jumps to (see NftRuleset.text): endpoints first
    bases = {e.address: _endpoint_base(sp, e) for e in [*cluster, *local]}
    for ep in {e.address: e for e in [*cluster, *local]}.values():
        rules: list[str] = [f"{ip} saddr {ep.ip} jump mark-for-masquerade"]
        if sp.affinity_seconds:
            name = f"affinity-{bases[ep.address]}"
            out.dynamic_sets[name] = (
                f"type {out.family.addr_type} ; flags dynamic,timeout ;"
                f" timeout {sp.affinity_seconds}s ;"
            )
            rules.append(f"update @{name} {{ {ip} saddr }}")
        target = f"[{ep.ip}]:{ep.port}" if ":" in ep.ip else ep.address
        rules.append(f"meta l4proto {proto} dnat to {target}")
        chains[f"endpoint-{bases[ep.address]}"] = tuple(rules)
    for chain, eps in ((svc_chain, cluster), (local_chain, local)):
        if not eps:
            continue
        rules = [masq] if masq and chain == internal_chain else []
        if sp.affinity_seconds:
            rules += [
                f"{ip} saddr @affinity-{bases[e.address]} goto endpoint-{bases[e.address]}"
                for e in eps
            ]
        picks = ", ".join(f"{i} : goto endpoint-{bases[e.address]}" for i, e in enumerate(eps))
        rules.append(f"numgen random mod {len(eps)} vmap {{ {picks} }}")
        chains[chain] = tuple(rules)
    if uses_ext:
        rules = []
        if not sp.external_policy_local:
            rules.append("jump mark-for-masquerade")
        else:
            if config.cluster_cidr:
                rules.append(
                    f'{ip} saddr {config.cluster_cidr} goto {svc_chain} comment "short-circuit pod traffic"'  # noqa: E501
                )
            rules += [
                'fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"',
                f'fib saddr type local goto {svc_chain} comment "short-circuit local traffic"',
            ]
        if external_ok:
            rules.append(f"goto {external_policy_chain}")
        chains[ext_chain] = tuple(rules)
    if uses_fw:
        sources = list(sp.source_ranges)
        if any(_in_any(n, sp.source_ranges) for n in config.node_ips):
            sources += list(sp.load_balancer_ips)
        chains[fw_chain] = (f"{ip} saddr != {{ {', '.join(sources)} }} drop",)


def _in_any(ip: str, cidrs: Iterable[str]) -> bool:
    addr = ipaddress.ip_address(ip)
    return any(addr in ipaddress.ip_network(c) for c in cidrs)
