"""Time from a LoadBalancer Service's create to the first connection through it (root).

The ``local`` cloud provider's load balancers are answered by kube-proxy on the nodes'
own addresses, so a new LoadBalancer Service first needs the cloud controller manager to
write ``status.loadBalancer.ingress`` and then the proxy to program that address. Here a
real ``pyk8s apiserver`` on loopback, the cloud controller manager (local provider) and
the proxy (iptables mode, default 1 s min sync period) run in this process; the "node" is
a private network namespace (tests/proxy/netns.py) whose address the Node object
reports, and the backend is a busybox httpd in a second namespace, named by a manual
EndpointSlice. A poller in the node namespace, started before the create, tries a TCP
connection every 2 ms and reports when the first one succeeds.

Baseline, same run: a ClusterIP Service created the same way (the proxy alone). Usage:
``sudo python bench/loadbalancer/run.py [--rounds 10]``.

With ``--address-pool`` it measures the address-pool mode (MetalLB layer 2) instead: the
cloud controller manager gives each LoadBalancer a pool address, ``pyk8s proxy`` runs
as a process inside the node namespace (its layer-2 speaker answers ARP there), and the
poller runs in a second namespace on the node's link, so the first connection needs the
address, the proxy's rules and an ARP answer. Baseline, same run: a ClusterIP Service
reached from the node itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._table import Row  # noqa: E402
from tests.integration.conftest import Server, free_port  # noqa: E402
from tests.proxy.netns import NODE_IP, network, sh  # noqa: E402

from pyk8s.api.registry import REGISTRY  # noqa: E402
from pyk8s.client import Client, load_kubeconfig  # noqa: E402
from pyk8s.cloudprovider import get_provider, setup  # noqa: E402
from pyk8s.controllers.runtime import Manager  # noqa: E402
from pyk8s.proxy.iptables import cleanup  # noqa: E402
from pyk8s.proxy.proxier import Proxier  # noqa: E402

NODES = REGISTRY.get("", "v1", "nodes")
SERVICES = REGISTRY.get("", "v1", "services")
SLICES = REGISTRY.get("discovery.k8s.io", "v1", "endpointslices")
NODE = "bench-node"

POLLER = """
import socket, sys, time
host, port, limit = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
print("ready", flush=True)
while time.monotonic() < limit:
    s = socket.socket()
    s.settimeout(0.05)
    try:
        s.connect((host, port))
        print(time.monotonic(), flush=True)
        break
    except OSError:
        time.sleep(0.002)
    finally:
        s.close()
else:
    print("timeout", flush=True)
"""


def service(name: str, kind: str, port: int, cluster_ip: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "type": kind,
            "clusterIP": cluster_ip,
            "ports": [{"port": port, "targetPort": 8080}],
        },
    }


def endpoint_slice(name: str, ip: str) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{name}-1",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": name},
        },
        "addressType": "IPv4",
        "ports": [{"port": 8080, "protocol": "TCP", "name": ""}],
        "endpoints": [{"addresses": [ip], "nodeName": NODE, "conditions": {"ready": True}}],
    }


async def node(client: Client) -> None:
    body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}
    await client.create(NODES, body)
    status = {
        "addresses": [{"type": "InternalIP", "address": NODE_IP}],
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    await client.patch(NODES, NODE, {"status": status}, patch_type="merge", subresource="status")


async def first_connection(
    client: Client,
    prefix: list[str],
    name: str,
    kind: str,
    port: int,
    cluster_ip: str,
    ip: str,
    target: str = "",
) -> tuple[float, float | None]:
    """(seconds to the first connection, seconds to status.loadBalancer.ingress or None);
    ``target`` defaults to the node's address (LoadBalancer) or the cluster IP."""
    target = target or (NODE_IP if kind == "LoadBalancer" else cluster_ip)
    poller = await asyncio.create_subprocess_exec(
        *prefix, sys.executable, "-c", POLLER, target, str(port), "20",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert poller.stdout is not None
    assert (await poller.stdout.readline()).strip() == b"ready"
    start = time.monotonic()
    await client.create(SERVICES, service(name, kind, port, cluster_ip), "default")
    await client.create(SLICES, endpoint_slice(name, ip), "default")
    status_at: float | None = None
    line = b""
    reader = asyncio.ensure_future(poller.stdout.readline())
    while not reader.done():
        if kind == "LoadBalancer" and status_at is None:
            svc = await client.get(SERVICES, name, "default")
            if (svc.get("status") or {}).get("loadBalancer", {}).get("ingress"):
                status_at = time.monotonic() - start
        await asyncio.wait({reader}, timeout=0.01)
    line = reader.result().strip()
    await poller.wait()
    if line == b"timeout" or not line:
        raise RuntimeError(f"{name}: no connection within 20 s")
    return float(line) - start, status_at


async def run(rounds: int, tmp: Path) -> list[tuple[str, list[float], list[float]]]:
    server = Server(tmp / "server", free_port()).start()
    stop = asyncio.Event()
    try:
        with network(tmp, backends=1) as net:
            (backend_ip,) = net.backends.values()
            async with Client(load_kubeconfig(server.kubeconfig)) as client:
                await node(client)
                manager = Manager(client, component="cloud-controller-manager")
                setup(manager, get_provider("local"), ["*"])
                ccm = asyncio.create_task(manager.run(stop))
                proxier = Proxier(client, NODE, command_prefix=net.prefix, node_ips=[NODE_IP])
                await proxier.start()
                try:
                    results: dict[str, tuple[list[float], list[float]]] = {
                        "ClusterIP": ([], []),
                        "LoadBalancer": ([], []),
                    }
                    for i in range(rounds):
                        for kind in ("ClusterIP", "LoadBalancer"):
                            name = f"{kind.lower()}-{i}"
                            took, status = await first_connection(
                                client, net.prefix, name, kind, 9000 + i,
                                f"10.43.250.{10 + 2 * i + (kind == 'LoadBalancer')}", backend_ip,
                            )  # fmt: skip
                            results[kind][0].append(took)
                            if status is not None:
                                results[kind][1].append(status)
                            await asyncio.sleep(1.2)  # past the proxy's min sync period
                finally:
                    await proxier.stop()
                    stop.set()
                    await ccm
                    with contextlib.suppress(Exception):
                        await cleanup(net.prefix)
    finally:
        server.stop()
    return [(k, v[0], v[1]) for k, v in results.items()]


async def proxy_ready(
    net: Any, proxy: asyncio.subprocess.Process, log: Path, within: float = 120
) -> None:
    """Until the proxy in the node namespace answers /healthz (it has synced once)."""
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(net.fetch, "http://127.0.0.1:10256/healthz"):
        if proxy.returncode is not None or time.monotonic() > deadline:
            tail = (await asyncio.to_thread(log.read_text, errors="replace"))[-2000:]
            raise RuntimeError(f"pyk8s proxy did not become healthy:\n{tail}")
        await asyncio.sleep(0.5)


POOL = "10.0.0.200-10.0.0.250"
OUTSIDE_IP = "10.0.0.2"


def _remove(netns: str, link: str) -> None:
    subprocess.run(["ip", "netns", "del", netns], check=False, timeout=10)
    subprocess.run(["ip", "link", "del", link], check=False, timeout=10)


async def run_pool(rounds: int, tmp: Path) -> list[tuple[str, list[float], list[float]]]:
    """The address-pool rows: ClusterIP from the node, LoadBalancer from the link."""
    stop = asyncio.Event()
    proxy: asyncio.subprocess.Process | None = None
    results: dict[str, tuple[list[float], list[float]]] = {
        "ClusterIP": ([], []),
        "LoadBalancer": ([], []),
    }
    with network(tmp, backends=1) as net:
        (backend_ip,) = net.backends.values()
        outside, uplink = f"{net.client}o", f"{net.client}a"
        # the API server is reached from the node namespace over a veth of its own
        api_ip = f"10.251.{uuid.uuid4().int % 250}"
        sh("ip", "link", "add", uplink, "type", "veth", "peer", "name", "api0", "netns",
           net.client)  # fmt: skip
        server: Server | None = None
        try:
            sh("ip", "addr", "add", f"{api_ip}.1/30", "dev", uplink)
            sh("ip", "link", "set", uplink, "up")
            net.in_client("ip", "addr", "add", f"{api_ip}.2/30", "dev", "api0")
            net.in_client("ip", "link", "set", "api0", "up")
            server = Server(
                tmp / "server", free_port(),
                extra_args=("--bind-address", "0.0.0.0", "--advertise-address", f"{api_ip}.1"),
            ).start()  # fmt: skip
            kubeconfig = tmp / "node.kubeconfig"
            text = server.kubeconfig.read_text()
            kubeconfig.write_text(text.replace("127.0.0.1", f"{api_ip}.1"))
            # the node's uplink peer moves to another host on the same link
            sh("ip", "netns", "add", outside)
            net.in_client("ip", "link", "set", "node0p", "netns", outside)
            net.in_client("sysctl", "-qw", "net.ipv4.ip_forward=1")
            o = ["ip", "netns", "exec", outside]
            sh(*o, "ip", "addr", "add", f"{OUTSIDE_IP}/24", "dev", "node0p")
            sh(*o, "ip", "link", "set", "node0p", "up")
            sh(*o, "ip", "link", "set", "lo", "up")
            async with Client(load_kubeconfig(server.kubeconfig)) as client:
                await node(client)
                manager = Manager(client, component="cloud-controller-manager")
                setup(manager, get_provider("local", address_pools=[POOL]), ["*"])
                ccm = asyncio.create_task(manager.run(stop))
                with (tmp / "proxy.log").open("wb") as log:
                    proxy = await asyncio.create_subprocess_exec(
                        *net.prefix, sys.executable, "-m", "pyk8s", "proxy",
                        "--kubeconfig", str(kubeconfig), "--hostname-override", NODE,
                        "--node-ip", NODE_IP, "--proxy-mode", "iptables",
                        "--disable-network-policy", stdout=log, stderr=asyncio.subprocess.STDOUT,
                    )  # fmt: skip
                try:
                    await proxy_ready(net, proxy, tmp / "proxy.log")
                    for i in range(rounds):
                        for kind in ("ClusterIP", "LoadBalancer"):
                            name = f"{kind.lower()}-{i}"
                            lb = kind == "LoadBalancer"
                            took, status = await first_connection(
                                client, o if lb else net.prefix, name, kind, 9000 + i,
                                f"10.43.250.{10 + 2 * i + lb}", backend_ip,
                                target=f"10.0.0.{200 + i}" if lb else "",
                            )  # fmt: skip
                            results[kind][0].append(took)
                            if status is not None:
                                results[kind][1].append(status)
                            await asyncio.sleep(1.2)  # past the proxy's min sync period
                finally:
                    stop.set()
                    await ccm
        finally:
            if proxy is not None and proxy.returncode is None:
                proxy.terminate()
                await proxy.wait()
            with contextlib.suppress(Exception):
                await cleanup(net.prefix)
            _remove(outside, uplink)
            if server is not None:
                server.stop()
    return [(k, v[0], v[1]) for k, v in results.items()]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000 if s else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--address-pool", action="store_true", help="the address-pool mode (layer-2 speaker)"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/loadbalancer/run.py needs root (network namespaces)")
    with tempfile.TemporaryDirectory(prefix="pyk8s-lb-bench-") as tmp:
        bench = run_pool if args.address_pool else run
        results = asyncio.run(bench(args.rounds, Path(tmp)))
    print(f"\n### Service create → first TCP connection ({args.rounds} rounds each)\n")
    print("| service | p50 ms | p90 ms | max ms | status.loadBalancer written, p50 ms |")
    print("|---|---:|---:|---:|---:|")
    labels = {"ClusterIP": "ClusterIP (baseline: proxy only)",
              "LoadBalancer": "LoadBalancer (local provider, node address)"}  # fmt: skip
    if args.address_pool:
        labels = {
            "ClusterIP": "ClusterIP from the node (baseline: proxy only)",
            "LoadBalancer": "LoadBalancer (address pool, from another host: ARP)",
        }
    for kind, took, status in results:
        row = Row(kind, 1, len(took), sum(took), took)
        status_p50 = f"{pct(status, 0.5):.0f}" if status else "-"
        print(
            f"| {labels[kind]} | {row.pct(0.5):.0f} | {row.pct(0.9):.0f} | "
            f"{max(took) * 1000:.0f} | {status_p50} |"
        )


if __name__ == "__main__":
    main()
