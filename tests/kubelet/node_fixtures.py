"""A real node for e2e tests: ``pyk8s kubelet`` as a process, with its own containerd.

The ``node`` fixture (one per test module) runs exactly what a user runs — ``pyk8s
kubelet`` — against the shared test API server, with a private data dir, containerd,
log root and CNI bridge on a random /24, registered under a unique node name. Tests put
pods on it by setting ``spec.nodeName``; no scheduler is involved. ``node.restart(kill=True)``
kill -9s the kubelet and starts a new one on the same state (the adoption scenario).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pyk8s.kubelet.runtimes import ContainerdConfig
from tests.integration.conftest import Server, free_port
from tests.kubelet.runtime_fixtures import _reap_leftovers, remove_cni_nat, require_runtime


@dataclass
class Node:
    name: str
    data_dir: Path
    log_root: Path
    pod_cidr: str
    bridge: str
    kubeconfig: Path
    healthz_port: int
    port: int
    proc: subprocess.Popen[bytes] | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return ContainerdConfig(self.data_dir).socket

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def start(self) -> None:
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "pyk8s", "kubelet",
                    "--kubeconfig", str(self.kubeconfig),
                    "--data-dir", str(self.data_dir),
                    "--node-name", self.name,
                    "--node-ip", "127.0.0.1",
                    "--pod-cidr", self.pod_cidr,
                    "--cni-bridge", self.bridge,
                    "--log-root", str(self.log_root),
                    "--healthz-port", str(self.healthz_port),
                    "--address", "127.0.0.1", "--port", str(self.port),
                    *self.extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kubelet exited: {self.log_tail()}")
            url = f"http://127.0.0.1:{self.healthz_port}/healthz"
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    if resp.read().strip() == b"ok":
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"kubelet not healthy: {self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is None:
            return 0
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code

    def restart(self, kill: bool = False) -> None:
        self.stop(signal.SIGKILL if kill else signal.SIGTERM)
        self.start()

    def log_tail(self) -> str:
        return self.log_file.read_text(errors="replace")[-4000:] if self.log_file.exists() else ""


@pytest.fixture(scope="module")
def node(cm_server: Server) -> Iterator[Node]:
    """The node, plus a controller-manager running the serviceaccount controllers (pods
    mount a token and the ``kube-root-ca.crt`` ConfigMap they publish)."""
    require_runtime()
    base = Path(tempfile.mkdtemp(prefix="pyk8s-node-", dir="/tmp"))
    suffix = uuid.uuid4().hex[:8]
    n = Node(
        name=f"node-{suffix}",
        data_dir=base / "agent",
        log_root=base / "pods",
        pod_cidr=f"10.88.{150 + uuid.uuid4().int % 50}.0/24",
        bridge=f"pk{suffix}",
        kubeconfig=cm_server.kubeconfig,
        healthz_port=free_port(),
        port=free_port(),
    )
    with (base / "controller-manager.log").open("ab") as log:
        cm = subprocess.Popen(
            [
                sys.executable, "-m", "pyk8s", "controller-manager",
                "--kubeconfig", str(cm_server.kubeconfig), "--controllers", "serviceaccount",
                "--leader-elect", "false", "--port", str(free_port()),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        n.start()
        yield n
    finally:
        n.stop()
        cm.terminate()
        cm.wait(timeout=30)
        # containerd is gone; kill the shims it left (containers of this test run)
        _reap_leftovers(n.data_dir, n.socket)
        remove_cni_nat(n.pod_cidr)
        subprocess.run(["ip", "link", "delete", n.bridge], capture_output=True, timeout=10)
        if os.environ.get("PYK8S_KEEP_NODE") is None:
            subprocess.run(["rm", "-rf", str(base)], check=False, timeout=30)
