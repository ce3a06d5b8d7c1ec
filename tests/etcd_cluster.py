"""Start real etcd members (Debian's etcd-server, /usr/bin/etcd) on loopback for tests.

Each member gets free ports and its own data directory; ``EtcdCluster`` starts 1 or N
members as one cluster, can stop and restart a member, and cleans everything up.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def etcd_available() -> bool:
    return os.path.exists(ETCD)


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"


@dataclass
class EtcdCluster:
    base_dir: Path
    size: int = 1
    members: list[Member] = field(default_factory=list)

    def __post_init__(self) -> None:
        for i in range(self.size):
            self.members.append(Member(f"m{i}", free_port(), free_port(), self.base_dir / f"m{i}"))

    @property
    def endpoint(self) -> str:
        """The ``--datastore-endpoint`` naming every member."""
        return "etcd://" + ",".join(f"127.0.0.1:{m.client_port}" for m in self.members)

    @property
    def hosts(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", m.client_port) for m in self.members]

    def _start_member(self, m: Member, state: str) -> None:
        initial = ",".join(f"{x.name}={x.peer_url}" for x in self.members)
        log = open(self.base_dir / f"{m.name}.log", "ab")  # noqa: SIM115
        m.proc = subprocess.Popen(
            [
                ETCD,
                "--name",
                m.name,
                "--data-dir",
                str(m.data_dir),
                "--listen-client-urls",
                m.client_url,
                "--advertise-client-urls",
                m.client_url,
                "--listen-peer-urls",
                m.peer_url,
                "--initial-advertise-peer-urls",
                m.peer_url,
                "--initial-cluster",
                initial,
                "--initial-cluster-state",
                state,
                "--initial-cluster-token",
                "pyk8s-test",
                "--heartbeat-interval",
                "50",
                "--election-timeout",
                "500",
                "--logger",
                "zap",
                "--log-level",
                "warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def start(self, timeout: float = 30.0) -> EtcdCluster:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        for m in self.members:
            self._start_member(m, "new")
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 30.0, members: list[Member] | None = None) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        for m in members or [x for x in self.members if x.proc is not None]:
            while True:
                try:
                    with urllib.request.urlopen(m.client_url + "/health", timeout=1) as r:
                        if b'"health":"true"' in r.read():
                            break
                except OSError:
                    pass
                if m.proc is not None and m.proc.poll() is not None:
                    raise RuntimeError(f"etcd member {m.name} exited; see {self.base_dir}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"etcd member {m.name} not healthy; see {self.base_dir}")
                time.sleep(0.1)

    def stop_member(self, index: int) -> None:
        m = self.members[index]
        if m.proc is not None:
            m.proc.send_signal(signal.SIGTERM)
            m.proc.wait(timeout=10)
            m.proc = None

    def kill_member(self, index: int) -> None:
        """SIGKILL one member (no clean shutdown: what a crash or an OOM kill does)."""
        m = self.members[index]
        if m.proc is not None:
            m.proc.kill()
            m.proc.wait(timeout=10)
            m.proc = None

    def restart_member(self, index: int) -> None:
        m = self.members[index]
        self._start_member(m, "existing")
        self.wait_healthy(members=[m])

    def stop(self) -> None:
        for i in range(len(self.members)):
            try:
                self.stop_member(i)
            except subprocess.TimeoutExpired:
                proc = self.members[i].proc
                if proc is not None:
                    proc.kill()
                    proc.wait()
        shutil.rmtree(self.base_dir, ignore_errors=True)
