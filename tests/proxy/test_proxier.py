"""The applier and the proxier loop against a real API server, with a fake iptables
(tests/proxy/fake_iptables.py) recording what would have run: no root needed."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest

from pyk8s.api.registry import REGISTRY
from pyk8s.client import Client
from pyk8s.proxy.iptables import JUMPS, Applier
from pyk8s.proxy.proxier import ENDPOINT_SLICES, SERVICES, Proxier
from pyk8s.proxy.rules import ProxyConfig, render
from tests.controllers.conftest import eventually

FAKE = str(Path(__file__).with_name("fake_iptables.py"))
EVENTS = REGISTRY.get("", "v1", "events")


def calls(log: Path, tool: str | None = None) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    out = [json.loads(line) for line in log.read_text().splitlines()]
    return [c for c in out if tool is None or c["argv"][0] == tool]


async def test_applier_restores_only_changes_and_adds_jumps_once(tmp_path: Path) -> None:
    log = tmp_path / "log"
    applier = Applier([sys.executable, FAKE, str(log)])
    await applier.ensure_jumps()
    await applier.ensure_jumps()
    assert len([c for c in calls(log, "iptables") if "-I" in c["argv"]]) == len(JUMPS)

    empty = render([], [], ProxyConfig("n"))
    assert await applier.apply(empty)
    assert not await applier.apply(empty)
    assert await applier.apply(empty, force=True)
    restores = calls(log, "iptables-restore")
    assert len(restores) == 2
    assert restores[0]["argv"][1:] == ["-w", "5", "--noflush", "--counters"]
    assert restores[0]["stdin"] == empty.text()
    assert len(calls(log, "iptables-save")) == 1  # stale chains are read once
    assert applier.restore_seconds.collect()[0].samples


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }


async def test_proxier_batches_changes_into_min_sync_period(
    client: Client, namespace: str, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    proxier = Proxier(
        client,
        "node-a",
        command_prefix=[sys.executable, FAKE, str(log)],
        min_sync_period=1.0,
        mode="iptables",
    )
    # When the proxier starts each restore, seen from inside it: the fake's own clock
    # would add the jitter of starting a Python process to the spacing.
    started: list[float] = []
    apply = proxier.applier.apply

    async def timed_apply(*args: Any, **kwargs: Any) -> bool:
        started.append(time.monotonic())
        return await apply(*args, **kwargs)

    proxier.applier.apply = timed_apply  # type: ignore[method-assign]
    await asyncio.wait_for(proxier.start(), 30)
    try:
        await eventually(lambda: asyncio.sleep(0, proxier.healthy()), within=60)
        assert calls(log, "iptables-restore")
        changes_from = time.monotonic()
        created = [await client.create(SERVICES, service(f"s{i}"), namespace) for i in range(5)]
        await client.create(
            ENDPOINT_SLICES,
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {"name": "s0-1", "labels": {"kubernetes.io/service-name": "s0"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [{"addresses": ["10.42.7.7"]}],
            },
            namespace,
        )
        ip = created[4]["spec"]["clusterIP"]

        async def programmed() -> bool:
            last = calls(log, "iptables-restore")[-1]["stdin"]
            return f"-d {ip} --dport 80 -j REJECT" in last and "10.42.7.7:8080" in last

        await eventually(programmed, within=30)
        programmed_by = time.monotonic()
        assert all(b - a >= 0.99 for a, b in itertools.pairwise(started)), started
        # six changes, batched: however long they took to arrive (a loaded machine spreads
        # them out), they cost at most one restore per elapsed min_sync_period (with the
        # spacing's tolerance above), plus one already due when the first arrived
        periods = (programmed_by - changes_from) / (0.99 * proxier.min_sync_period)
        restores = [t for t in started if changes_from <= t <= programmed_by]
        assert 1 <= len(restores) <= 1 + int(periods), (restores, periods)
        assert proxier.last_programming_latency is not None
        assert proxier.last_programming_latency >= 0
        metrics = generate_latest(proxier.registry).decode()
        assert "kubeproxy_network_programming_duration_seconds_count" in metrics
        assert 'kubeproxy_sync_proxy_rules_iptables_total{table="nat"}' in metrics
    finally:
        await asyncio.wait_for(proxier.stop(), 30)
    assert not proxier.healthy()


async def test_failed_nftables_sync_is_retried_with_backoff_and_reported(
    client: Client, namespace: str, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    failing = Path(f"{log}.fail")
    await asyncio.to_thread(failing.touch)
    proxier = Proxier(
        client,
        "node-a",
        command_prefix=[sys.executable, FAKE, str(log)],
        min_sync_period=0.2,
        mode="nftables",
    )
    await asyncio.wait_for(proxier.start(), 30)
    try:
        await client.create(SERVICES, service("web"), namespace)
        await eventually(lambda: asyncio.sleep(0, proxier.failures >= 3), within=15)
        assert not proxier.healthy()
        tries = [c["t"] for c in calls(log, "nft") if c["argv"][:2] == ["nft", "-f"]]
        gaps = [b - a for a, b in itertools.pairwise(tries)]
        assert gaps[0] >= 0.19 and gaps[1] >= 0.39, gaps  # 0.2 s, then 0.4 s, ...
        failures = proxier.registry.get_sample_value(
            "kubeproxy_sync_proxy_rules_nftables_sync_failures_total"
        )
        assert failures is not None and failures >= 3
        await proxier.recorder.flush()
        events = await client.list(EVENTS, "default")
        warned = [e for e in events["items"] if e["reason"] == "FailedToSyncProxyRules"
                  and e["involvedObject"]["name"] == "node-a"]  # fmt: skip
        assert len(warned) == 1 and warned[0]["type"] == "Warning", warned  # once a streak
        assert "Could not process rule" in warned[0]["message"]

        await asyncio.to_thread(failing.unlink)
        await eventually(lambda: asyncio.sleep(0, proxier.healthy()), within=15)
        last = [c for c in calls(log, "nft") if c["argv"][:2] == ["nft", "-f"]][-1]["stdin"]
        assert last.startswith("add table ip kube-proxy\ndelete table ip kube-proxy\n")
        assert proxier.failures == 0
    finally:
        await asyncio.wait_for(proxier.stop(), 30)


async def test_a_node_with_addresses_of_both_families_programs_both(
    client: Client, tmp_path: Path
) -> None:
    """As upstream decides dual stack from the node's addresses: an IPv4 cluster CIDR
    alone, but node IPs of both families, gives the ip and the ip6 table (issue 20)."""
    log = tmp_path / "log"
    proxier = Proxier(
        client,
        "node-a",
        node_ips=("10.0.0.1", "fd00:99::1"),
        command_prefix=[sys.executable, FAKE, str(log)],
        mode="nftables",
    )
    await asyncio.wait_for(proxier.start(), 30)
    try:
        assert proxier.families == [4, 6]

        def tables() -> set[str]:
            nft = [c["stdin"] for c in calls(log, "nft") if c["argv"][:2] == ["nft", "-f"]]
            return {t.split("\n", 1)[0] for t in nft}

        await eventually(
            lambda: asyncio.sleep(0, {"add table ip kube-proxy", "add table ip6 kube-proxy"}
                                  <= tables()),
            within=15,
        )  # fmt: skip
    finally:
        await asyncio.wait_for(proxier.stop(), 30)
