"""The proxier against a real API server, programming iptables or nftables inside throwaway
network namespaces: a Service with a manual EndpointSlice reaches both busybox backends by
ClusterIP, follows the slice when it shrinks, answers on its NodePort, and cleanup leaves
no rule behind; a UDP service follows its endpoint change although the client keeps its
socket (stale conntrack entries cleared)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
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

        if mode == "nftables":  # an iptables-mode proxy ran on this node before
            net.in_client("iptables", "-w", "-t", "nat", "-N", "KUBE-SVC-LEFTOVER")
        proxier = Proxier(
            client, "node-a", command_prefix=net.prefix, min_sync_period=0.2, mode=mode
        )
        await asyncio.wait_for(proxier.start(), 30)
        try:
            if mode == "nftables":  # ... and its rules are gone
                assert "KUBE-" not in net.in_client("iptables-save")
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


UDP_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5353))
while True:
    data, peer = s.recvfrom(512)
    s.sendto(sys.argv[1].encode() + b" " + data, peer)
"""
UDP_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 40053))  # one source port, as a resolver reusing its socket
s.settimeout(1)
s.sendto(b"query", (sys.argv[1], 53))
try:
    print(s.recvfrom(512)[0].decode())
except OSError:
    print("")
"""


def udp_servers(net: Network) -> list[subprocess.Popen[bytes]]:
    """In every backend, a UDP server on 5353 answering with its namespace's name."""
    return [
        subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", UDP_SERVER, ns])
        for ns in net.backends
    ]


def udp_query(net: Network, ip: str) -> str:
    return net.in_client(sys.executable, "-c", UDP_CLIENT, ip).strip()


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
async def test_udp_service_follows_its_endpoint_change(
    client: Client, namespace: str, tmp_path: Path, mode: str
) -> None:
    """A DNS-like UDP service: the client keeps asking from the same source port while the
    endpoint moves; the stale conntrack entry to the old endpoint must go (the old backend
    still answers, so without the cleanup every reply would keep coming from it)."""
    with network(tmp_path) as net:
        servers = udp_servers(net)
        try:
            svc = await client.create(
                SERVICES,
                {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                 "spec": {"ports": [{"name": "dns", "port": 53, "protocol": "UDP",
                                     "targetPort": 5353}]}},
                namespace,
            )  # fmt: skip
            ip = svc["spec"]["clusterIP"]
            (first, b1), (second, b2) = sorted(net.backends.items())
            sl = endpoint_slice("web-1", [b1])
            sl["ports"] = [{"name": "dns", "port": 5353, "protocol": "UDP"}]
            sl = await client.create(ENDPOINT_SLICES, sl, namespace)
            proxier = Proxier(
                client, "node-a", command_prefix=net.prefix, min_sync_period=0.2, mode=mode
            )
            await asyncio.wait_for(proxier.start(), 30)
            try:

                async def answered_by(backend: str) -> bool:
                    got = await asyncio.to_thread(udp_query, net, ip)
                    assert got == f"{backend} query", got
                    return True

                await eventually(lambda: answered_by(first), within=20, every=0.2)
                assert await answered_by(first)  # the conntrack entry is in use
                sl["endpoints"] = [{"addresses": [b2], "conditions": {"ready": True}}]
                await client.update(ENDPOINT_SLICES, sl, namespace)
                await eventually(lambda: answered_by(second), within=15, every=0.2)
            finally:
                await asyncio.wait_for(proxier.stop(), 30)
                await cleanup(net.prefix)
                await cleanup_nftables(net.prefix)
        finally:
            for proc in servers:
                proc.kill()
                proc.wait(timeout=5)
