"""NetworkPolicy compilation (pure) and the diff transactions against a real nftables in a
throwaway network namespace."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from pyk8s.netpol.rules import NetpolRuleset, PodInfo, compile_policies, pod_info, policy_hash

NODE = "n1"


def _pod(ns: str, name: str, ip: str, node: str = NODE, **labels: str) -> PodInfo:
    info = pod_info(
        {
            "metadata": {"namespace": ns, "name": name, "labels": labels},
            "spec": {
                "nodeName": node,
                "containers": [{"ports": [{"name": "http", "containerPort": 8080}]}],
            },
            "status": {"podIP": ip},
        }
    )
    assert info is not None
    return info


def _ns(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}}}


def _policy(ns: str, name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name}, "spec": {"podSelector": {}, **spec}}


PODS = [
    _pod("a", "web", "10.42.0.5", app="web"),
    _pod("a", "db", "10.42.0.6", app="db"),
    _pod("a", "remote", "10.42.1.5", node="n2", app="web"),
    _pod("b", "client", "10.42.1.9", node="n2", app="client"),
    _pod("c", "other", "10.42.0.7", app="client"),
]
NAMESPACES = [_ns("a"), _ns("b", team="x"), _ns("c")]


def _chain(rs: NetpolRuleset, ns: str, name: str, direction: str) -> tuple[str, ...]:
    return rs.chains[f"np-{policy_hash(ns, name)}-{direction}"][1]


def _set(rs: NetpolRuleset, ns: str, name: str, suffix: str) -> frozenset[str]:
    return rs.sets[f"np-{policy_hash(ns, name)}-{suffix}"][1]


def test_pod_info_skips_host_network_finished_and_unaddressed_pods() -> None:
    base = {"metadata": {"namespace": "a", "name": "p"}, "spec": {}, "status": {}}
    assert pod_info(base) is None
    assert pod_info({**base, "spec": {"hostNetwork": True}, "status": {"podIP": "1.2.3.4"}}) is None
    done = {**base, "status": {"podIP": "10.42.0.9", "phase": "Succeeded"}}
    assert pod_info(done) is None
    dual = {**base, "status": {"podIPs": [{"ip": "fd00::5"}, {"ip": "10.42.0.9"}]}}
    assert pod_info(dual) is not None and pod_info(dual).ip == "10.42.0.9"  # type: ignore[union-attr]


def test_no_policy_isolates_nothing() -> None:
    rs = compile_policies([], PODS, NAMESPACES, NODE)
    assert rs.sets["ingress-isolated"][1] == frozenset()
    assert rs.sets["egress-isolated"][1] == frozenset()
    assert rs.chains["ingress-forward"][1][0] == "ct state established,related accept"


def test_default_deny_selects_only_local_pods_of_its_namespace() -> None:
    deny = _policy("a", "deny", policyTypes=["Ingress"])
    rs = compile_policies([deny], PODS, NAMESPACES, NODE)
    # only this node's pods in namespace a; the remote pod is isolated on its own node
    assert rs.sets["ingress-isolated"][1] == {"10.42.0.5", "10.42.0.6"}
    assert rs.sets["egress-isolated"][1] == frozenset()
    assert _chain(rs, "a", "deny", "ingress") == ()  # no rule: nothing allowed
    assert rs.chains["ingress"][1][-1] == 'counter drop comment "default deny"'
    # policyTypes defaulting when absent: an egress list makes it Ingress+Egress
    both = _policy("a", "both", egress=[{}])
    rs = compile_policies([both], PODS, NAMESPACES, NODE)
    assert _chain(rs, "a", "both", "egress") == ("accept",)
    assert rs.sets["egress-isolated"][1] == {"10.42.0.5", "10.42.0.6"}


def test_pod_and_namespace_selectors_alone_and_combined() -> None:
    policy = _policy(
        "a", "p",
        podSelector={"matchLabels": {"app": "web"}},
        ingress=[
            {"from": [{"podSelector": {"matchLabels": {"app": "db"}}}]},
            {"from": [{"namespaceSelector": {"matchLabels": {"team": "x"}}}]},
            {"from": [{"namespaceSelector": {},
                       "podSelector": {"matchLabels": {"app": "client"}}}]},
            {"from": [{"namespaceSelector": {"matchExpressions": [
                {"key": "team", "operator": "DoesNotExist"}]}}]},
        ],
    )  # fmt: skip
    rs = compile_policies([policy], PODS, NAMESPACES, NODE)
    assert _set(rs, "a", "p", "pods") == {"10.42.0.5"}
    assert _set(rs, "a", "p", "in-0") == {"10.42.0.6"}  # same namespace only
    assert _set(rs, "a", "p", "in-1") == {"10.42.1.9"}  # every pod of namespace b
    assert _set(rs, "a", "p", "in-2") == {"10.42.1.9", "10.42.0.7"}  # label in any namespace
    assert _set(rs, "a", "p", "in-3") == {"10.42.0.5", "10.42.0.6", "10.42.1.5", "10.42.0.7"}
    h = policy_hash("a", "p")
    assert _chain(rs, "a", "p", "ingress")[0] == f"ip saddr @np-{h}-in-0 accept"
    assert f"ip daddr @np-{h}-pods jump np-{h}-ingress" in rs.chains["ingress"][1][0]


def test_ip_block_with_except_and_ports() -> None:
    policy = _policy(
        "b", "egress",
        policyTypes=["Egress"],
        egress=[{
            "to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.2.0.0/16"]}},
                   {"ipBlock": {"cidr": "fd00::/64"}}],
            "ports": [{"protocol": "TCP", "port": 80, "endPort": 90},
                      {"protocol": "UDP", "port": 53}, {"protocol": "SCTP"}],
        }],
    )  # fmt: skip
    rs = compile_policies([policy], PODS, NAMESPACES, "n2")
    rules = _chain(rs, "b", "egress", "egress")
    peer = "ip daddr 10.0.0.0/8 ip daddr != { 10.1.0.0/16, 10.2.0.0/16 }"
    assert rules == (
        f"{peer} meta l4proto sctp accept",
        f"{peer} tcp dport {{ 80-90 }} accept",
        f"{peer} udp dport {{ 53 }} accept",
        "ip6 daddr fd00::/64 meta l4proto sctp accept",
        "ip6 daddr fd00::/64 tcp dport { 80-90 } accept",
        "ip6 daddr fd00::/64 udp dport { 53 } accept",
    )
    assert rs.sets["egress-isolated"][1] == {"10.42.1.9"}


def test_named_ports_resolve_per_destination_pod() -> None:
    other = _pod("a", "alt", "10.42.0.8", app="web")
    other = PodInfo(**{**other.__dict__, "named_ports": {("http", "TCP"): 9090}})
    policy = _policy("a", "named", ingress=[{"ports": [{"port": "http", "protocol": "TCP"}]}])
    egress = _policy("b", "out", policyTypes=["Egress"], egress=[{"ports": [{"port": "http"}]}])
    rs = compile_policies([policy, egress], [*PODS, other], NAMESPACES, NODE)
    h = policy_hash("a", "named")
    assert _chain(rs, "a", "named", "ingress") == (
        f"ip daddr . meta l4proto . th dport @np-{h}-in-0-ports accept",
    )
    # ingress: the selected (local) pods' own numbers
    assert _set(rs, "a", "named", "in-0-ports") == {
        "10.42.0.5 . tcp . 8080", "10.42.0.6 . tcp . 8080", "10.42.0.8 . tcp . 9090",
    }  # fmt: skip
    # egress: any destination pod's, remote ones included
    assert "10.42.1.5 . tcp . 8080" in _set(rs, "b", "out", "eg-0-ports")


def test_label_change_is_only_set_elements() -> None:
    policy = _policy(
        "a", "p", ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"team": "x"}}}]}]
    )
    before = compile_policies([policy], PODS, NAMESPACES, NODE)
    relabelled = [*NAMESPACES[:2], _ns("c", team="x")]
    after = compile_policies([policy], PODS, relabelled, NODE)
    h = policy_hash("a", "p")
    assert after.diff_text(before) == (
        f"add element inet pyk8s-netpol np-{h}-in-0 {{ 10.42.0.7 }}\n"
    )
    assert before.diff_text(before) == ""


def _nft_or_skip() -> None:
    if os.geteuid() != 0 or shutil.which("nft") is None:
        pytest.skip("needs root and nft")


@pytest.fixture
def netns() -> Iterator[list[str]]:
    _nft_or_skip()
    name = f"npt-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield ["ip", "netns", "exec", name]
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _nft(prefix: list[str], text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, "nft", "-f", "-"], input=text, capture_output=True, text=True, check=False
    )


def _listing(prefix: list[str]) -> str:
    out = subprocess.run(
        [*prefix, "nft", "list", "table", "inet", "pyk8s-netpol"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout


def test_diffs_reach_the_same_kernel_state_as_full_transactions(netns: list[str]) -> None:
    allow = _policy(
        "a", "allow",
        ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"team": "x"}}},
                           {"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24"]}}],
                  "ports": [{"port": "http", "protocol": "TCP"}, {"port": 80, "endPort": 81}]}],
        egress=[{"to": [{"ipBlock": {"cidr": "10.42.1.9/32"}}]}],
    )  # fmt: skip
    steps = [
        compile_policies([], PODS, NAMESPACES, NODE),
        compile_policies([allow], PODS, NAMESPACES, NODE),
        compile_policies([allow], PODS, [*NAMESPACES[:2], _ns("c", team="x")], NODE),
        compile_policies([allow], PODS[1:], NAMESPACES, NODE),
        compile_policies([], PODS, NAMESPACES, NODE),
    ]
    done = _nft(netns, steps[0].text())
    assert done.returncode == 0, done.stdout + done.stderr
    for old, new in itertools.pairwise(steps):
        diff = new.diff_text(old)
        done = _nft(netns, diff)
        assert done.returncode == 0, diff + done.stderr
        incremental = _listing(netns)
        assert _nft(netns, new.text()).returncode == 0
        assert incremental == _listing(netns)
    # a broken transaction leaves the rules as they were
    before = _listing(netns)
    assert _nft(netns, "add rule inet pyk8s-netpol ingress bogus\n").returncode != 0
    assert _listing(netns) == before


def test_except_must_be_a_strict_subset_of_the_cidr() -> None:
    from pyk8s.api.validation.groups import create_network_policy

    block = {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24", "10.0.0.0/16", "10.0.1.0/24",
                                               "fd00::/64"]}  # fmt: skip
    policy = _policy("a", "p", ingress=[{"from": [{"ipBlock": block}]}])
    errs = create_network_policy(policy)
    assert [(e.field, e.detail) for e in errs] == [
        (f"spec.ingress[0].from[0].ipBlock.except[{n}]", "must be a strict subset of `cidr`")
        for n in (0, 1, 3)
    ]


def test_dual_stack_pods_are_filtered_in_both_families(netns: list[str]) -> None:
    """As soon as a pod has an IPv6 address every set gets an IPv6 twin and every set
    match an ``ip6`` rule, so a policy covers the pods' IPv6 traffic too (issue 20); the
    kernel takes the table, full and as a diff from the single-stack one."""

    def dual(pod: PodInfo, ip6: str) -> PodInfo:
        return PodInfo(**{**pod.__dict__, "ip6": ip6})

    pods = [dual(p, f"fd00:42::{i + 5}") for i, p in enumerate(PODS)]
    policy = _policy(
        "a", "p", podSelector={"matchLabels": {"app": "web"}},
        ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"team": "x"}}}],
                  "ports": [{"port": "http", "protocol": "TCP"}]}],
    )  # fmt: skip
    rs = compile_policies([policy], pods, NAMESPACES, NODE)
    h = policy_hash("a", "p")
    assert _set(rs, "a", "p", "pods") == {"10.42.0.5"}
    assert _set(rs, "a", "p", "pods-6") == {"fd00:42::5"}
    assert _set(rs, "a", "p", "in-0-6") == {"fd00:42::8"}  # b/client
    assert _set(rs, "a", "p", "in-0-ports-6") == {"fd00:42::5 . tcp . 8080"}
    assert _chain(rs, "a", "p", "ingress") == (
        f"ip saddr @np-{h}-in-0 ip daddr . meta l4proto . th dport @np-{h}-in-0-ports accept",
        f"ip6 saddr @np-{h}-in-0-6 ip6 daddr . meta l4proto . th dport @np-{h}-in-0-ports-6 accept",
    )
    assert rs.sets["ingress-isolated-6"][1] == {"fd00:42::5"}
    assert "ip6 daddr @ingress-isolated-6 jump ingress" in rs.chains["ingress-forward"][1]
    single = compile_policies([policy], PODS, NAMESPACES, NODE)
    assert not any(name.endswith("-6") for name in single.sets)  # nothing new single-stack
    assert _nft(netns, single.text()).returncode == 0
    done = _nft(netns, rs.diff_text(single))
    assert done.returncode == 0, done.stderr
    incremental = sorted(_listing(netns).splitlines())
    assert _nft(netns, rs.text()).returncode == 0
    assert incremental == sorted(_listing(netns).splitlines())  # the same, in creation order
