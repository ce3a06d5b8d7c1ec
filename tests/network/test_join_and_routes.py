"""Joining a worker (token parsing, the CA check), host-gw route computation and the
node's egress masquerade rule."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from pathlib import Path

import pytest

from pyk8s.client import load_kubeconfig
from pyk8s.network.routes import desired_routes, ensure_egress_masquerade, parse_routes
from pyk8s.server.agent import JoinError, fetch_ca, parse_token, write_agent_kubeconfig
from tests.integration.conftest import Server


def _node(name: str, ip: str | None, cidr: str | None) -> dict[str, object]:
    return {
        "metadata": {"name": name},
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]} if cidr else {},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}] if ip else []},
    }


def test_routes_to_every_other_node_with_a_cidr_and_an_address() -> None:
    nodes = [
        _node("a", "10.99.0.11", "10.42.0.0/24"),
        _node("b", "10.99.0.12", "10.42.1.0/24"),
        _node("c", None, "10.42.2.0/24"),  # no address yet
        _node("d", "10.99.0.14", None),  # no pod CIDR yet
    ]
    assert desired_routes(nodes, "a") == {"10.42.1.0/24": "10.99.0.12"}
    assert desired_routes(nodes, "b") == {"10.42.0.0/24": "10.99.0.11"}


def test_parse_ip_route_output() -> None:
    text = (
        "10.42.1.0/24 via 10.99.0.12 dev eth0 proto 201 \n"
        "10.42.2.0/24 via 10.99.0.13 dev eth0 proto 201\n"
    )
    assert parse_routes(text) == {"10.42.1.0/24": "10.99.0.12", "10.42.2.0/24": "10.99.0.13"}


async def test_egress_masquerade_is_one_rule_added_once_per_family() -> None:
    """The node's one MASQUERADE rule per pod CIDR (in place of the CNI bridge's chain per
    pod): checked first, added when missing, ip6tables for an IPv6 CIDR."""
    rules: list[list[str]] = []

    async def iptables(argv: Sequence[str]) -> str:
        family, rest = (["-6"], list(argv[1:])) if argv[:1] == ["-6"] else ([], list(argv))
        assert rest[:2] == ["-t", "nat"]
        rule = [*family, *rest[3:]]
        if rest[2] == "-C" and rule not in rules:
            raise RuntimeError("no such rule")
        if rest[2] == "-A":
            rules.append(rule)
        return ""

    for _ in range(2):
        await ensure_egress_masquerade("10.88.1.0/24", "10.88.1.0/24", iptables)
        await ensure_egress_masquerade("fd00:1::/64", "fd00:1::/64", iptables)
    assert rules == [
        ["POSTROUTING", "-s", "10.88.1.0/24", "!", "-d", "10.88.1.0/24", "-m", "comment",
         "--comment", "pyk8s: pod egress", "-j", "MASQUERADE"],
        ["-6", "POSTROUTING", "-s", "fd00:1::/64", "!", "-d", "fd00:1::/64", "-m", "comment",
         "--comment", "pyk8s: pod egress", "-j", "MASQUERADE"],
    ]  # fmt: skip


def test_token_forms() -> None:
    digest = "ab" * 32
    assert parse_token(f"K10{digest}::server:s3cret") == ("s3cret", digest)
    token = "abcdef.0123456789abcdef"
    assert parse_token(f"K10{digest}::{token}") == (token, digest)
    assert parse_token("plainsecret") == ("plainsecret", None)
    with pytest.raises(JoinError):
        parse_token("K10abc::server:x")
    with pytest.raises(JoinError):
        parse_token("  ")


async def _join_token_stored(server: Server, token: str) -> None:
    """The server writes the join token's Secret after /readyz says ok (the fixture's
    signal), so a request with the token waits for it as an agent's retries would."""
    from pyk8s.client import Client, is_not_found

    name = f"bootstrap-token-{token.split('.')[0]}"
    async with Client(load_kubeconfig(server.kubeconfig)) as admin:
        for _ in range(300):
            try:
                await admin.request("GET", f"/api/v1/namespaces/kube-system/secrets/{name}")
                return
            except Exception as e:
                if not is_not_found(e):
                    raise
            await asyncio.sleep(0.1)
    raise AssertionError(f"secret {name} never written")


async def test_join_checks_the_ca_against_the_token(cm_server: Server, tmp_path: Path) -> None:
    full = (cm_server.data_dir / "server" / "node-token").read_text().strip()
    secret, digest = parse_token(full)
    assert secret == (cm_server.data_dir / "server" / "token").read_text().strip()
    await _join_token_stored(cm_server, secret)
    ca = await fetch_ca(cm_server.url, digest)
    assert hashlib.sha256(ca).hexdigest() == digest
    with pytest.raises(JoinError, match="does not match"):
        await fetch_ca(cm_server.url, "00" * 32)
    # the bootstrap kubeconfig the agent writes authenticates with the join token, as
    # system:bootstrap:<id>, which may not read the cluster (it asks for certificates)
    path = tmp_path / "kubeconfig.yaml"
    write_agent_kubeconfig(path, cm_server.url, ca, secret)
    from pyk8s.client import Client, is_forbidden

    async with Client(load_kubeconfig(path)) as client:
        version = await client.request("GET", "/version")
        assert version["gitVersion"].startswith("v1.32")
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        out = await client.request(
            "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body=review
        )
        assert out["status"]["userInfo"]["username"] == f"system:bootstrap:{secret[:6]}"
        with pytest.raises(Exception) as err:
            await client.request("GET", "/api/v1/namespaces")
        assert is_forbidden(err.value)
