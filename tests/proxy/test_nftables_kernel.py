"""The nftables applier against the kernel, in a throwaway network namespace: the full
transaction, an incremental one that changes only one service's chains, a failed
transaction that leaves the previous rules in place (and makes the next one full), and a
table deleted behind the proxy's back being rewritten on the periodic full sync."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from pyk8s.proxy.nftables import NftablesError, NftApplier, cleanup_nftables
from pyk8s.proxy.nftrules import render_nft
from tests.proxy.test_rules import CONFIG, ep, slice_, svc

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]


@pytest.fixture
def prefix() -> Iterator[list[str]]:
    name = f"pk-{uuid.uuid4().hex[:6]}-nft"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield ["ip", "netns", "exec", name]
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def listing(prefix: list[str]) -> str:
    done = subprocess.run([*prefix, "nft", "list", "ruleset"], capture_output=True, text=True)
    return done.stdout


async def test_full_incremental_and_failed_transactions(prefix: list[str]) -> None:
    registry = CollectorRegistry()
    applier = NftApplier(prefix, registry)
    # stale chains deleted at once (their later deletion: test_nft_partial.py)
    applier.stale_chain_delay = applier.stale_chains_max = 0
    two = render_nft([svc()], [slice_(ep("10.42.1.2"), ep("10.42.1.3"))], CONFIG)
    one = render_nft([svc()], [slice_(ep("10.42.1.2"))], CONFIG)
    assert await applier.apply(two) and applier.last_kind == "full"
    assert "dnat to 10.42.1.3:8080" in listing(prefix)
    assert await applier.apply(one) and applier.last_kind == "partial"
    ruleset = listing(prefix)
    assert "10.42.1.3" not in ruleset and "dnat to 10.42.1.2:8080" in ruleset
    assert "10.96.0.20 . tcp . 80 : goto service-" in ruleset
    assert not await applier.apply(one)  # nothing changed: no transaction

    broken = dataclasses.replace(one, chains={**one.chains, "services": ("no such statement",)})
    with pytest.raises(NftablesError):
        await applier.apply(broken)
    assert listing(prefix) == ruleset  # the failed transaction changed nothing
    failures = "kubeproxy_sync_proxy_rules_nftables_sync_failures_total"
    assert registry.get_sample_value(failures) == 1
    assert await applier.apply(one) and applier.last_kind == "full"  # after a failure

    await cleanup_nftables(prefix)  # someone deletes the table
    assert await applier.apply(one, force=True) and applier.last_kind == "full"
    assert listing(prefix) == ruleset
