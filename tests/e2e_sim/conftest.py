"""A whole control plane on simulated nodes, as a user runs it.

``pyk8s server`` (API server + supervised controller-manager and scheduler processes) and
``pyk8s sim-nodes --count 3`` as real processes; tests drive the real kubectl.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import KUBECTL, Kubectl, Server, free_port


def wait_until(check: Callable[[], Any], within: float = 60.0, every: float = 0.5) -> Any:
    """Poll ``check`` until truthy (returned) or fail after ``within`` s."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (AssertionError, json.JSONDecodeError, KeyError) as err:
            last = err
        time.sleep(every)
    raise AssertionError(f"condition not met within {within}s; last: {last!r}")


def child_pid(parent: int, component: str) -> int | None:
    """The pid of the child of ``parent`` (or of its zygote, :mod:`pyk8s.server.zygote`)
    whose command line holds the word ``component`` (a supervisor's kubelet, proxy,
    scheduler...) or runs it inside its process (``--embedded-COMPONENT-arg=…``,
    :mod:`pyk8s.server.cohost`: the kubelet's for the proxy), read from /proc; None
    while there is none. A forked child's title is one string (setproctitle), an exec'ed
    one's argv is split by NULs."""
    embedded = f"--embedded-{component}-arg=".encode()
    for task in os.listdir(f"/proc/{parent}/task"):
        try:
            children = Path(f"/proc/{parent}/task/{task}/children").read_text().split()
        except FileNotFoundError:
            continue
        for pid in children:
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split()
            except FileNotFoundError:
                continue
            if b"zygote" in argv:
                found = child_pid(int(pid), component)
                if found is not None:
                    return found
            elif component.encode() in argv or any(a.startswith(embedded) for a in argv):
                return int(pid)
    return None


@dataclass
class Cluster:
    server: Server
    kubectl: Kubectl
    sim: subprocess.Popen[bytes]
    sim_log: Path

    def wait(self, check: Callable[[], Any], within: float = 60.0) -> Any:
        return wait_until(check, within)

    def pods(self, ns: str, selector: str = "") -> list[dict[str, Any]]:
        args = ["get", "pods", "-n", ns]
        if selector:
            args += ["-l", selector]
        items: list[dict[str, Any]] = self.kubectl.json(*args)["items"]
        return items


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    import os

    if not os.path.exists(KUBECTL):
        pytest.skip(f"kubectl is not installed at {KUBECTL}")
    base = tmp_path_factory.mktemp("cluster")
    server = Server(
        base / "data", free_port(), command="server", extra_args=("--disable-agent",)
    ).start()
    kubectl = Kubectl(server.kubeconfig)
    sim_log = base / "sim-nodes.log"
    with open(sim_log, "wb") as log:
        sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pyk8s",
                "sim-nodes",
                "--kubeconfig",
                str(server.kubeconfig),
                "--count",
                "3",
                "--cpu",
                "4",
                "--memory",
                "8Gi",
                "--port",
                str(free_port()),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    c = Cluster(server, kubectl, sim, sim_log)
    try:
        c.wait(
            lambda: (
                len(
                    [
                        n
                        for n in kubectl.json("get", "nodes")["items"]
                        if any(
                            cond["type"] == "Ready" and cond["status"] == "True"
                            for cond in n["status"].get("conditions", [])
                        )
                    ]
                )
                == 3
            ),
            within=60,
        )
        yield c
    finally:
        sim.terminate()
        try:
            sim.wait(timeout=15)
        except subprocess.TimeoutExpired:
            sim.kill()
        server.stop()


@pytest.fixture
def ns(cluster: Cluster) -> str:
    import uuid

    name = f"e2e-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    cluster.wait(
        lambda: (
            cluster.kubectl.run("get", "sa", "default", "-n", name, check=False).returncode == 0
        ),
        within=30,
    )
    return name
