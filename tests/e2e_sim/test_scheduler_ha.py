"""Two scheduler replicas: one leads, and the standby takes over when the leader dies."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_sim.conftest import wait_until
from tests.integration.conftest import Kubectl, Server, free_port


@pytest.fixture
def bare(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "data", free_port()).start()  # the API server alone
    try:
        yield srv
    finally:
        srv.stop()


def _scheduler(srv: Server, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as f:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pyk8s",
                "scheduler",
                "--kubeconfig",
                str(srv.kubeconfig),
                "--port",
                str(free_port()),
            ],
            stdout=f,
            stderr=subprocess.STDOUT,
        )


def test_standby_takes_over_after_the_leader_is_killed(bare: Server, tmp_path: Path) -> None:
    k = Kubectl(bare.kubeconfig)
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
        "status": {
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    k("create", "-f", "-", input=json.dumps(node))
    a = _scheduler(bare, tmp_path / "a.log")
    b = None
    try:

        def holder() -> str:
            lease = k.json("get", "lease", "kube-scheduler", "-n", "kube-system")
            return str(lease["spec"].get("holderIdentity", ""))

        first = wait_until(holder, within=30)
        b = _scheduler(bare, tmp_path / "b.log")
        k("run", "before", "--image=busybox")
        wait_until(lambda: k.json("get", "pod", "before")["spec"].get("nodeName") == "n1")
        a.send_signal(signal.SIGKILL)  # no clean release: the lease must expire
        a.wait()
        second = wait_until(lambda: holder() not in ("", first) and holder(), within=60)
        assert second != first
        k("run", "after", "--image=busybox")
        wait_until(lambda: k.json("get", "pod", "after")["spec"].get("nodeName") == "n1", within=30)
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(timeout=15)
