"""The proxier against a real API server, programming iptables or nftables inside throwaway
network namespaces: a Service with a manual EndpointSlice reaches both busybox backends by
ClusterIP, follows the slice when it shrinks, answers on its NodePort, and cleanup leaves
no rule behind; a UDP service follows its endpoint change although the client keeps its
socket (stale conntrack entries cleared)."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pyk8s.client import Client
from pyk8s.proxy.iptables import cleanup
from pyk8s.proxy.model import port_proto_hash
from pyk8s.proxy.nftables import cleanup_nftables
from pyk8s.proxy.proxier import ENDPOINT_SLICES, SERVICES, Proxier
from tests.controllers.conftest import eventually
from tests.proxy.netns import NODE_IP, Network, network

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]


def endpoint_slice(name: str, ips: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
    }


async def answers(net: Network, url: str, n: int) -> Counter[str]:
    return Counter(await asyncio.gather(*(asyncio.to_thread(net.fetch, url) for _ in range(n))))


def saved_rules(net: Network, mode: str) -> str:
    if mode == "nftables":
        return net.in_client("nft", "list", "ruleset")
    return net.in_client("iptables-save")


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
async def test_service_traffic_through_the_proxy(
    client: Client, namespace: str, tmp_path: Path, mode: str
) -> None:
    with network(tmp_path) as net:
        svc = await client.create(
            SERVICES,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web"},
                "spec": {
                    "type": "NodePort",
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
                },
            },
            namespace,
        )
        cluster_ip = svc["spec"]["clusterIP"]
        node_port = svc["spec"]["ports"][0]["nodePort"]
        ips = sorted(net.backends.values())
        eps = await client.create(ENDPOINT_SLICES, endpoint_slice("web-1", ips), namespace)

        proxier = Proxier(
            client, "node-a", command_prefix=net.prefix, min_sync_period=0.2, mode=mode
        )
        await asyncio.wait_for(proxier.start(), 30)
        try:
            url = f"http://{cluster_ip}:80/"

            async def both() -> bool:
                got = await answers(net, url, 16)
                assert set(got) == {"backend-1", "backend-2"}, got
                return True

            await eventually(both, within=30)
            assert proxier.healthy()
            assert proxier.last_programming_latency is not None

            # scale the slice down: the rotation follows
            eps["endpoints"] = eps["endpoints"][:1]
            await client.update(ENDPOINT_SLICES, eps, namespace)

            async def only_first() -> bool:
                got = await answers(net, url, 10)
                assert set(got) == {"backend-1"}, got
                return True

            await eventually(only_first, within=20)
            gone = "KUBE-SEP-" + port_proto_hash(f"{namespace}/web:http", "tcp", f"{ips[1]}:8080")
            if mode == "nftables":
                gone = f"/{namespace}/web/tcp/http__{ips[1]}/8080"

            async def chain_deleted() -> bool:
                saved = await asyncio.to_thread(saved_rules, net, mode)
                assert gone not in saved
                return True

            await eventually(chain_deleted, within=10)

            # NodePort on the node's own address
            async def node_port_answers() -> bool:
                got = await answers(net, f"http://{NODE_IP}:{node_port}/", 4)
                assert set(got) == {"backend-1"}, got
                return True

            await eventually(node_port_answers, within=20)
            saved = saved_rules(net, mode)
            assert (
                f"tcp . {node_port} : goto" if mode == "nftables" else f"--dport {node_port}"
            ) in saved
            assert proxier.restores >= 2
        finally:
            await asyncio.wait_for(proxier.stop(), 30)

        await cleanup(net.prefix)
        await cleanup_nftables(net.prefix)
        assert "KUBE-" not in net.in_client("iptables-save")
        assert "kube-proxy" not in net.in_client("nft", "list", "tables")
        assert await answers(net, url, 1) == Counter({"": 1})


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
async def test_client_ip_affinity_sticks_to_one_backend(
    client: Client, namespace: str, tmp_path: Path, mode: str
) -> None:
    with network(tmp_path) as net:
        svc = await client.create(
            SERVICES,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web"},
                "spec": {
                    "sessionAffinity": "ClientIP",
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
                },
            },
            namespace,
        )
        ips = sorted(net.backends.values())
        await client.create(ENDPOINT_SLICES, endpoint_slice("web-1", ips), namespace)
        proxier = Proxier(
            client, "node-a", command_prefix=net.prefix, min_sync_period=0.2, mode=mode
        )
        await asyncio.wait_for(proxier.start(), 30)
        try:
            url = f"http://{svc['spec']['clusterIP']}:80/"
            first = await eventually(lambda: asyncio.to_thread(net.fetch, url), within=20)
            got = await answers(net, url, 12)
            assert got == Counter({first: 12})
        finally:
            await asyncio.wait_for(proxier.stop(), 30)
            await cleanup(net.prefix)
            await cleanup_nftables(net.prefix)
