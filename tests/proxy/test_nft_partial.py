"""Partial nftables syncs (issue 20): re-rendering only the Services that changed gives
the same table as rendering everything, in Python and in the kernel.

A scripted series of changes (an endpoint moved, affinity switched off, a service left
without endpoints, a second service claiming the same external IP and port, a service
deleted) goes through :meth:`NftRenderer.update` and is compared, step by step, with a
fresh full render; in a throwaway network namespace (root) the partial transactions are
compared with a full transaction of the same ruleset in a second namespace, by their
``nft -j list table`` listings, for both the ``ip`` and the ``ip6`` table of a
dual-stack node. A table written in pieces side by side (a proxy's first sync, each piece
as soon as it is rendered, or over a table in place through a staging table) is compared
the same way with one written in one transaction.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from pyk8s.proxy import nftrules
from pyk8s.proxy.iptables import run
from pyk8s.proxy.model import service_key, slice_service_key
from pyk8s.proxy.nftables import NftablesError, NftApplier, cleanup_nftables
from pyk8s.proxy.nftrules import IPV4, IPV6, NftRenderer, NftRuleset, render_nft
from pyk8s.proxy.rules import ProxyConfig, family_config
from tests.proxy.test_dualstack_rules import DUAL
from tests.proxy.test_rules import CONFIG, ep, slice_, svc

Objects = tuple[list[dict[str, Any]], list[dict[str, Any]]]


def _dual(service: dict[str, Any], v6_index: int) -> dict[str, Any]:
    ip = service["spec"]["clusterIP"]
    service["spec"]["clusterIPs"] = [ip, f"fd00:43::{v6_index}"]
    service["spec"]["ipFamilies"] = ["IPv4", "IPv6"]
    return service


def _slices(name: str, *ips: str) -> list[dict[str, Any]]:
    """One IPv4 and one IPv6 slice of ``name`` (the IPv6 endpoints mirror the IPv4 ones)."""
    v4 = slice_(*[ep(ip) for ip in ips], service=name)
    v6 = slice_(*[ep("fd00:42::" + ip.replace(".", ":")) for ip in ips], service=name)
    v4["metadata"]["name"], v6["metadata"]["name"] = f"{name}-v4", f"{name}-v6"
    v6["addressType"] = "IPv6"
    return [v4, v6]


def steps() -> list[Objects]:
    """The cluster after each change, the first being the state of the full sync."""
    web = _dual(svc("web"), 20)
    affinity = {"sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}  # fmt: skip
    api = _dual(
        svc("api", clusterIP="10.96.0.21", type="NodePort", externalIPs=["192.0.2.50"],
            ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}],
            **affinity),
        21,
    )  # fmt: skip
    api_plain = _dual(
        svc("api", clusterIP="10.96.0.21", type="NodePort", externalIPs=["192.0.2.50"],
            ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]),
        21,
    )  # fmt: skip
    shared = _dual(svc("zz-shared", clusterIP="10.96.0.23", externalIPs=["192.0.2.50"]), 23)
    lb = _dual(
        svc("lb", clusterIP="10.96.0.22", type="LoadBalancer",
            loadBalancerSourceRanges=["203.0.113.0/24"],
            status={"loadBalancer": {"ingress": [{"ip": "192.0.2.60"}]}}),
        22,
    )  # fmt: skip
    dns = _dual(
        svc("dns", clusterIP="10.96.0.10",
            ports=[{"name": "dns", "port": 53, "protocol": "UDP"}]),
        10,
    )  # fmt: skip
    dns_slices = _slices("dns", "10.42.3.2")
    for sl in dns_slices:
        sl["ports"] = [{"name": "dns", "port": 53, "protocol": "UDP"}]

    def state(services: list[dict[str, Any]], *slices: list[dict[str, Any]]) -> Objects:
        return services, [sl for group in slices for sl in group]

    return [
        state([web, api, lb, dns], _slices("web", "10.42.1.2", "10.42.1.3"),
              _slices("api", "10.42.2.2"), _slices("lb", "10.42.4.2"), dns_slices),
        # an endpoint moves
        state([web, api, lb, dns], _slices("web", "10.42.1.2", "10.42.1.4"),
              _slices("api", "10.42.2.2"), _slices("lb", "10.42.4.2"), dns_slices),
        # affinity off; web loses its endpoints (rejected); a service claims api's address
        state([web, api_plain, lb, dns, shared], _slices("web"), _slices("api", "10.42.2.2"),
              _slices("lb", "10.42.4.2"), dns_slices, _slices("zz-shared", "10.42.5.2")),
        # the claimant goes (api's element comes back), the LB is deleted, web recovers
        state([web, api_plain, dns], _slices("web", "10.42.1.5"), _slices("api", "10.42.2.2"),
              dns_slices),
    ]  # fmt: skip


def changed(before: Objects, after: Objects) -> dict[str, Any]:
    """What the proxier hands :meth:`NftRenderer.update`: every Service whose Service or
    slices differ (the proxier learns these from its informers' events)."""

    def index(objs: Objects) -> dict[str, Any]:
        out: dict[str, Any] = {service_key(s): [s, []] for s in objs[0]}
        for sl in objs[1]:
            out.setdefault(slice_service_key(sl) or "", [None, []])[1].append(sl)
        return out

    old, new = index(before), index(after)
    return {
        key: (new.get(key, [None, []])[0], new.get(key, [None, []])[1])
        for key in old.keys() | new.keys()
        if old.get(key) != new.get(key)
    }


@pytest.mark.parametrize("family", [4, 6])
def test_partial_renders_equal_full_renders(family: int) -> None:
    config = family_config(DUAL, family)
    series = steps()
    renderer = NftRenderer(config)
    previous = renderer.render(*series[0])
    for before, after in itertools.pairwise(series):
        update = changed(before, after)
        partial = renderer.update(update)
        full = render_nft(*after, config)
        assert partial.chains == full.chains
        assert partial.elements == full.elements
        assert partial.dynamic_sets == full.dynamic_sets
        diff = partial.diff_text(previous)
        assert sorted(diff.splitlines()) == sorted(full.diff_text(previous).splitlines())
        untouched = {service_key(s) for s in after[0]} - set(update)
        chain_lines = [line for line in diff.splitlines() if " element " not in line]
        for key in untouched:  # no chain of an unchanged service is rewritten
            assert not any(f"/{key.split('/')[1]}/" in line for line in chain_lines)
        previous = partial
    assert any(k.startswith("192.0.2.50 ") for k in previous.elements["service-ips"]) == (
        family == 4
    )


def test_a_shared_map_key_goes_back_to_the_remaining_service() -> None:
    series = steps()
    renderer = NftRenderer(CONFIG)
    renderer.render(*series[1])
    claimed = renderer.update(changed(series[1], series[2])).elements["service-ips"]
    assert "zz-shared" in claimed["192.0.2.50 . tcp . 80"]  # the later service port wins
    released = renderer.update(changed(series[2], series[3])).elements["service-ips"]
    assert "default/api/tcp/http" in released["192.0.2.50 . tcp . 80"]


def test_a_full_render_reuses_the_renderers_own_service_ports() -> None:
    """The proxier's periodic full render re-renders nothing unchanged, even after the
    shared render cache was emptied (it is when it fills up)."""
    renderer = NftRenderer(CONFIG)
    first = renderer.render(*steps()[0])
    nftrules._fragments.clear()
    again = renderer.render(*steps()[0])
    assert again.chains == first.chains
    assert all(again.chains[c] is first.chains[c] for c in first.chains if "/web/" in c)


def test_update_needs_a_render_first() -> None:
    with pytest.raises(ValueError):
        NftRenderer(CONFIG).update({})


# ---------------------------------------------------------------- in the kernel (root)


@pytest.fixture
def netns() -> Iterator[tuple[list[str], list[str]]]:
    names = [f"pk-{uuid.uuid4().hex[:6]}-nftp" for _ in range(2)]
    for name in names:
        subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield (["ip", "netns", "exec", names[0]], ["ip", "netns", "exec", names[1]])
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], check=False)


def listing(prefix: list[str], family: str) -> dict[str, Any]:
    """The table as the kernel holds it, without handles or order: chain → its rules,
    map/set → its declaration and sorted elements."""
    done = subprocess.run(
        [*prefix, "nft", "-j", "list", "table", family, "kube-proxy"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    chains: dict[str, list[Any]] = {}
    sets: dict[str, Any] = {}
    for item in json.loads(done.stdout)["nftables"]:
        kind, body = next(iter(item.items()))
        body = {k: v for k, v in body.items() if k != "handle"} if isinstance(body, dict) else body
        if kind == "chain":
            chains.setdefault(body["name"], []).insert(0, body)
        elif kind == "rule":
            chains.setdefault(body["chain"], []).append(body["expr"])
        elif kind in ("set", "map"):
            elem = sorted(json.dumps(e, sort_keys=True) for e in body.pop("elem", []))
            sets[body["name"]] = (body, elem)
    return {"chains": chains, "sets": sets}


def in_use(table: dict[str, Any]) -> dict[str, Any]:
    """A :func:`listing` without the empty chains of Services (stale ones, flushed by a
    partial transaction and deleted by a later one)."""
    chains = {n: c for n, c in table["chains"].items() if "/" not in n or len(c) > 1}
    return {**table, "chains": chains}


@pytest.mark.e2e
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
async def test_partial_transactions_leave_the_table_a_full_one_writes(
    netns: tuple[list[str], list[str]],
) -> None:
    partial_ns, full_ns = netns
    series = steps()
    for family in (4, 6):
        config: ProxyConfig = family_config(DUAL, family)
        name = "ip6" if family == 6 else "ip"
        applier = NftApplier(partial_ns)
        applier.stale_chain_delay = 0  # (a stale chain may go with the next forced sync)
        renderer = NftRenderer(config)
        assert await applier.apply(renderer.render(*series[0]))
        seen = listing(partial_ns, name)
        for before, after in itertools.pairwise(series):
            ruleset: NftRuleset = renderer.update(changed(before, after))
            assert await applier.apply(ruleset) and applier.last_kind == "partial"
            assert await NftApplier(full_ns).apply(render_nft(*after, config))  # full
            now = listing(partial_ns, name)
            assert in_use(now) == listing(full_ns, name)  # stale chains: flushed, not gone
            assert now != seen  # the change reached the kernel
            seen = now
        assert seen != listing(full_ns, name)  # the deleted Services' empty chains
        assert await applier.apply(ruleset, force=True)  # the periodic sync deletes them
        assert listing(partial_ns, name) == listing(full_ns, name)


@pytest.mark.e2e
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
async def test_a_table_written_in_pieces_is_the_table_written_whole(
    netns: tuple[list[str], list[str]],
) -> None:
    """A proxy's first sync writes a table that does not exist in pieces (as it renders
    it, or rendered); a table in
    place (a restarted proxy's) is rewritten in pieces through a staging table; a failed
    piece leaves the rules that were in place, and the next sync (one transaction)
    replaces whatever it left."""
    pieces_ns, whole_ns = netns
    series = steps()

    def applier() -> NftApplier:
        made = NftApplier(pieces_ns)
        made.piece_chains = made.staged_chains = 1  # a small table in pieces too
        return made

    async def tables() -> str:
        return (await run([*pieces_ns, "nft", "list", "tables"]))[1]

    for family in (IPV4, IPV6):
        config = family_config(DUAL, 6 if family is IPV6 else 4)
        first, later = render_nft(*series[0], config), render_nft(*series[2], config)
        endpoint_chain = next(c for c in later.chains if c.startswith("endpoint-"))
        broken = NftRuleset(family, {**later.chains, endpoint_chain: ("no such statement",)},
                            later.elements, later.dynamic_sets)  # fmt: skip
        streamed = applier()  # a first sync: each piece goes in as soon as it is rendered
        assert await streamed.render_and_apply(NftRenderer(config), *series[0])
        assert streamed.last_kind == "created"
        assert await NftApplier(whole_ns).apply(first)
        assert listing(pieces_ns, family.name) == listing(whole_ns, family.name)
        restarted = applier()  # over the table in place: as a whole (here through staging)
        assert await restarted.render_and_apply(NftRenderer(config), *series[0])
        assert restarted.last_kind == "staged"
        assert listing(pieces_ns, family.name) == listing(whole_ns, family.name)
        await cleanup_nftables(pieces_ns, family)

        new = applier()
        assert await new.apply(first) and new.last_kind == "created"
        assert listing(pieces_ns, family.name) == listing(whole_ns, family.name)

        restarted = applier()
        assert await restarted.apply(later) and restarted.last_kind == "staged"  # it exists
        assert await NftApplier(whole_ns).apply(later)
        assert listing(pieces_ns, family.name) == listing(whole_ns, family.name)
        assert "staging" not in await tables()

        failing = applier()  # a failed rewrite: the table in place stays
        with pytest.raises(NftablesError):
            await failing.apply(broken)
        assert listing(pieces_ns, family.name) == listing(whole_ns, family.name)
        assert await failing.apply(later) and failing.last_kind == "full"
        assert "staging" not in await tables()

        await cleanup_nftables(pieces_ns, family)
        failing = applier()  # a failed first write: nothing hooked
        with pytest.raises(NftablesError):
            await failing.apply(broken)
        _, left = await run([*pieces_ns, "nft", "list", "chains", family.name])
        assert "services" in left and "hook" not in left  # written in part, never hooked
        assert await failing.apply(later) and failing.last_kind == "full"
        assert listing(pieces_ns, family.name) == listing(whole_ns, family.name)
