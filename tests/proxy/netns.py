"""A throwaway network for e2e tests, all in fresh network namespaces (the host's own
network and iptables are never touched).

``client`` namespace: an interface holding the "node address" (and the default
route, so service IPs are routable), and one veth pair per backend. Each ``backend``
namespace holds the other end of its pair and runs ``busybox httpd`` on port 8080 serving
its own name. Everything is removed on exit.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

BUSYBOX = shutil.which("busybox") or "/usr/bin/busybox"
NODE_IP = "10.0.0.1"


def sh(*argv: str, timeout: float = 10) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=timeout).stdout


@dataclass
class Network:
    client: str
    backends: dict[str, str] = field(default_factory=dict)  # netns → IP

    def in_client(self, *argv: str, timeout: float = 10) -> str:
        return sh("ip", "netns", "exec", self.client, *argv, timeout=timeout)

    def fetch(self, url: str) -> str:
        """One HTTP GET from the client namespace ('' if it failed). Bounded by
        ``timeout``: this busybox's own ``wget -T`` crashes."""
        done = subprocess.run(
            [*self.prefix, "timeout", "3", BUSYBOX, "wget", "-q", "-O", "-", url],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    @property
    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.client]


@contextmanager
def network(tmp: Path, backends: int = 2) -> Iterator[Network]:
    tag = uuid.uuid4().hex[:6]
    net = Network(client=f"pk-{tag}-c")
    made: list[str] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        sh("ip", "netns", "add", net.client)
        made.append(net.client)
        c = net.in_client
        c("ip", "link", "set", "lo", "up")
        # a veth whose peer stays here stands in for the node's uplink
        c("ip", "link", "add", "node0", "type", "veth", "peer", "name", "node0p")
        c("ip", "addr", "add", f"{NODE_IP}/24", "dev", "node0")
        c("ip", "link", "set", "node0p", "up")
        c("ip", "link", "set", "node0", "up")
        c("ip", "route", "add", "default", "dev", "node0")
        for i in range(1, backends + 1):
            ns = f"pk-{tag}-b{i}"
            sh("ip", "netns", "add", ns)
            made.append(ns)
            c("ip", "link", "add", f"c{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            c("ip", "addr", "add", f"10.42.{i}.1/24", "dev", f"c{i}")
            c("ip", "link", "set", f"c{i}", "up")
            b = ["ip", "netns", "exec", ns]
            sh(*b, "ip", "link", "set", "lo", "up")
            sh(*b, "ip", "addr", "add", f"10.42.{i}.2/24", "dev", "eth0")
            sh(*b, "ip", "link", "set", "eth0", "up")
            sh(*b, "ip", "route", "add", "default", "via", f"10.42.{i}.1")
            root = tmp / ns
            root.mkdir()
            (root / "index.html").write_text(f"backend-{i}\n")
            procs.append(
                subprocess.Popen(
                    [*b, BUSYBOX, "httpd", "-f", "-p", "8080", "-h", str(root)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            net.backends[ns] = f"10.42.{i}.2"
        yield net
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=5)
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], check=False, timeout=10)
