"""Test hosts: N network namespaces on one bridge, each a node running ``pyk8s agent``.

The harness issue 6 asks for: a bridge in the root namespace carries 10.99.K.0/24 (the
API server is reached at its .1), every host is a netns with a veth on that bridge at
.11, .12, …, its own loopback, its own ``pyk8s agent`` (and so its own containerd, CNI
bridge, kubelet port 10250 and healthz port) joining with the server's node-token (a
controller manager with :data:`JOIN_CONTROLLERS` and :func:`signing_flags` approves and
signs their node certificates). The
agents program host-gw routes between the hosts' pod CIDRs. With ``ipv6=True`` the bridge
and the hosts also get fd00:99:K::/64 addresses (the bridge ::1, host i ::(11+i); no IPv6
default route, so no pod's IPv6 packet can leave the bridge) and each agent gets
``--node-ip v4,v6``: the dual-stack test cluster. Teardown stops the agents,
kills what their containerds left, and deletes the namespaces, veths and the bridge.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyk8s.kubelet.runtimes import ContainerdConfig
from tests.integration.conftest import KUBECTL, Kubectl
from tests.kubelet.runtime_fixtures import _reap_leftovers

#: the controllers an agent's TLS bootstrap needs (approve and sign its node certificate)
JOIN_CONTROLLERS = "csrapproving,csrsigning"


def signing_flags(server_dir: Path) -> list[str]:
    """controller-manager flags to sign with the server's CA, as ``pyk8s server`` gives."""
    tls = server_dir / "server" / "tls"
    return [
        "--cluster-signing-cert-file", str(tls / "ca.crt"),
        "--cluster-signing-key-file", str(tls / "ca.key"),
    ]  # fmt: skip


def sh(*argv: str, netns: str | None = None, check: bool = True) -> str:
    cmd = ["ip", "netns", "exec", netns, *argv] if netns else list(argv)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {out.stderr.strip()}")
    return out.stdout


@dataclass
class Host:
    name: str  # the node name and the netns name
    ip: str
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    #: extra ``pyk8s agent`` flags (e.g. ``--cluster-dns``), kept across restarts
    agent_args: tuple[str, ...] = ()
    #: the host's IPv6 address on a dual-stack test network ("" otherwise)
    ip6: str = ""

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"{self.name}.log"

    def start_agent(self, server: str, token_file: Path) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    # nsenter, not `ip netns exec`: that also remounts /sys, which hides
                    # the cgroup mounts runc needs
                    "nsenter", f"--net=/run/netns/{self.name}",
                    sys.executable, "-m", "pyk8s", "agent",
                    "--server", server, "--token-file", str(token_file),
                    "--data-dir", str(self.data_dir), "--node-name", self.name,
                    "--node-ip", f"{self.ip},{self.ip6}" if self.ip6 else self.ip,
                    *self.agent_args,
                ],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def stop_agent(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@dataclass
class Hosts:
    bridge: str
    subnet_prefix: str  # "10.99.K"
    base: Path
    hosts: list[Host] = field(default_factory=list)

    @property
    def gateway(self) -> str:
        return f"{self.subnet_prefix}.1"

    @classmethod
    def create(
        cls, base: Path, count: int, agent_args: tuple[str, ...] = (), ipv6: bool = False
    ) -> Hosts:
        tag = uuid.uuid4().hex[:6]
        net = cls(f"pkb{tag}", f"10.99.{10 + uuid.uuid4().int % 240}", base)
        v6 = f"fd00:99:{net.subnet_prefix.rsplit('.', 1)[1]}::"
        sh("ip", "link", "add", net.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{net.gateway}/24", "dev", net.bridge)
        if ipv6:
            sh("ip", "addr", "add", f"{v6}1/64", "dev", net.bridge, "nodad")
        sh("ip", "link", "set", net.bridge, "up")
        for i in range(count):
            name = f"pkh{tag}{i}"
            ip = f"{net.subnet_prefix}.{11 + i}"
            sh("ip", "netns", "add", name)
            sh("ip", "link", "add", f"v{tag}{i}", "type", "veth", "peer", "name", "eth0",
               "netns", name)  # fmt: skip
            sh("ip", "link", "set", f"v{tag}{i}", "master", net.bridge, "up")
            sh("ip", "addr", "add", f"{ip}/24", "dev", "eth0", netns=name)
            sh("ip", "link", "set", "eth0", "up", netns=name)
            sh("ip", "link", "set", "lo", "up", netns=name)
            sh("ip", "route", "add", "default", "via", net.gateway, netns=name)
            sh("sysctl", "-qw", "net.ipv4.ip_forward=1", netns=name)
            ip6 = f"{v6}{11 + i}" if ipv6 else ""
            if ipv6:
                sh("ip", "addr", "add", f"{ip6}/64", "dev", "eth0", "nodad", netns=name)
                sh("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1", netns=name)
            net.hosts.append(Host(name, ip, base / name, agent_args=agent_args, ip6=ip6))
        # traffic between hosts crosses the bridge; keep the host's firewall out of it
        sh("sysctl", "-qw", f"net.ipv4.conf.{net.bridge}.forwarding=1")
        return net

    def destroy(self) -> None:
        # every agent gets its SIGTERM first and they stop side by side: one after the
        # other, a stop of some 15 s on a loaded machine is paid once per host
        for host in self.hosts:
            if host.proc is not None:
                host.proc.send_signal(signal.SIGTERM)
        for host in self.hosts:
            host.stop_agent()
            _reap_leftovers(host.data_dir, ContainerdConfig(host.data_dir).socket)
            sh("ip", "netns", "delete", host.name, check=False)
        sh("ip", "link", "delete", self.bridge, check=False)
        if os.environ.get("PYK8S_KEEP_HOSTS") is None:
            subprocess.run(["rm", "-rf", str(self.base)], check=False, timeout=30)


class NsKubectl(Kubectl):
    """kubectl inside a test host's network namespace: its server, or its agent's load
    balancer (127.0.0.1:6444, what the node's own kubeconfigs name), is on its loopback."""

    def __init__(self, kubeconfig: Path, nsenter: list[str]) -> None:
        super().__init__(kubeconfig)
        self.nsenter = nsenter

    def run(
        self, *args: str, input: str | None = None, check: bool = True, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [*self.nsenter, KUBECTL, "--kubeconfig", str(self.kubeconfig), *args],
            input=input, capture_output=True, text=True, check=False, timeout=kw.get("timeout", 60),
        )  # fmt: skip
        if check and out.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{out.stderr}{out.stdout}")
        return out
