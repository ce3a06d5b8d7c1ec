"""``pyk8s apiserver --apiserver-workers 2``: two real API server processes on one port
over one SQLite file, told apart by who holds each connection.

The kernel (SO_REUSEPORT) hands each new connection to one of the listening processes;
``ss -tnp`` names the process that accepted it. A test opens connections until it holds
one served by each process, then shows a user's guarantees across them: a write through
one is seen by a GET, a consistent LIST and a watch through the other, a stale
resourceVersion is refused by the other, and a worker killed with SIGKILL is restarted by
the supervisor with nothing acknowledged lost.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import KUBECTL, Server, free_port, pyk8s_cli

PID = re.compile(r"pid=(\d+)")


def _ss(*args: str) -> list[str]:
    out = subprocess.run(["ss", "-tnpH", *args], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def listening_pids(port: int) -> set[int]:
    """The processes with a socket listening on ``port``."""
    return {int(m) for line in _ss("-l", f"( sport = :{port} )") for m in PID.findall(line)}


def serving_pid(port: int, client_port: int) -> int | None:
    """The process that accepted the connection from local ``client_port``."""
    for line in _ss("state", "established", f"( sport = :{port} and dport = :{client_port} )"):
        found = PID.findall(line)
        if found:
            return int(found[0])
    return None


def wait_for(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Conn:
    """One kept-alive HTTPS connection with the admin certificate, and the pid that
    serves it."""

    def __init__(self, server: Server, ctx: ssl.SSLContext) -> None:
        self.conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=20)
        self.conn.connect()
        assert self.conn.sock is not None
        local = self.conn.sock.getsockname()[1]
        self.pid = wait_for("the accepting process", lambda: serving_pid(server.port, local))

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        self.conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        raw = resp.read()
        ctype = resp.getheader("Content-Type", "")
        return resp.status, json.loads(raw) if "json" in ctype else raw.decode()

    def close(self) -> None:
        self.conn.close()


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not os.path.exists(KUBECTL):
        pytest.skip(f"kubectl is not installed at {KUBECTL}")
    base = tmp_path_factory.mktemp("workers")
    srv = Server(base / "data", free_port(), extra_args=("--apiserver-workers", "2")).start()
    try:
        wait_for("two listening processes", lambda: len(listening_pids(srv.port)) == 2)
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def tls(workers: Server) -> ssl.SSLContext:
    tls_dir = workers.data_dir / "server" / "tls"
    ctx = ssl.create_default_context(cafile=str(tls_dir / "ca.crt"))
    ctx.load_cert_chain(str(tls_dir / "admin.crt"), str(tls_dir / "admin.key"))
    return ctx


def one_per_process(server: Server, ctx: ssl.SSLContext) -> dict[int, Conn]:
    """A connection served by each listening process (new connections until each has
    one: the kernel picks by a hash of the connection's addresses)."""
    want = listening_pids(server.port)
    got: dict[int, Conn] = {}
    for _ in range(200):
        conn = Conn(server, ctx)
        if conn.pid in got:
            conn.close()
        else:
            got[conn.pid] = conn
        if set(got) == want:
            return got
    raise AssertionError(f"no connection reached each of {want}: {set(got)}")


def connect_to(server: Server, ctx: ssl.SSLContext, pid: int) -> Conn:
    """A new connection that ``pid`` serves."""
    for _ in range(200):
        conn = Conn(server, ctx)
        if conn.pid == pid:
            return conn
        conn.close()
    raise AssertionError(f"no connection reached {pid}")


@pytest.fixture
def pair(workers: Server, tls: ssl.SSLContext) -> Iterator[tuple[Conn, Conn]]:
    """(a connection to the primary, one to the worker)."""
    conns = one_per_process(workers, tls)
    assert workers.proc is not None
    primary = conns.pop(workers.proc.pid)
    (worker,) = conns.values()
    try:
        yield primary, worker
    finally:
        primary.close()
        worker.close()


def namespace(conn: Conn) -> str:
    name = f"w-{uuid.uuid4().hex[:8]}"
    code, _ = conn.request(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "metadata": {"name": name}}
    )
    assert code == 201
    return name


def configmap(name: str, value: str = "1") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"v": value},
    }


def requests_counted(conn: Conn, verb: str, resource: str) -> float:
    """The process's own apiserver_request_total for ``verb`` on ``resource`` (code 200)."""
    code, text = conn.request("GET", "/metrics")
    assert code == 200
    total = 0.0
    for line in text.splitlines():
        if (
            line.startswith("apiserver_request_total{")
            and f'verb="{verb}"' in line
            and f'resource="{resource}"' in line
            and 'code="200"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_two_processes_serve_the_port_each_with_its_own_metrics(
    workers: Server, pair: tuple[Conn, Conn]
) -> None:
    primary, worker = pair
    assert primary.pid != worker.pid
    assert listening_pids(workers.port) == {primary.pid, worker.pid}
    for conn in pair:
        assert conn.request("GET", "/readyz") == (200, "ok")
    before = (
        requests_counted(primary, "get", "namespaces"),
        requests_counted(worker, "get", "namespaces"),
    )
    for _ in range(3):
        assert worker.request("GET", "/api/v1/namespaces/default")[0] == 200
    after = (
        requests_counted(primary, "get", "namespaces"),
        requests_counted(worker, "get", "namespaces"),
    )
    assert after == (before[0], before[1] + 3)


def test_a_write_through_one_process_is_read_and_watched_through_the_other(
    workers: Server, tls: ssl.SSLContext, pair: tuple[Conn, Conn]
) -> None:
    primary, worker = pair
    for writer, reader in ((primary, worker), (worker, primary)):
        ns = namespace(writer)
        code, listed = reader.request("GET", f"/api/v1/namespaces/{ns}/configmaps")
        assert code == 200 and listed["items"] == []
        # a watch from the empty list's revision, on another connection to the reader
        watch = connect_to(workers, tls, reader.pid)
        rv = listed["metadata"]["resourceVersion"]
        watch.conn.request(
            "GET", f"/api/v1/namespaces/{ns}/configmaps?watch=1&resourceVersion={rv}"
        )
        stream = watch.conn.getresponse()
        assert stream.status == 200
        code, made = writer.request("POST", f"/api/v1/namespaces/{ns}/configmaps", configmap("a"))
        assert code == 201
        # read-your-writes on the other process: a GET and a consistent LIST at once
        code, got = reader.request("GET", f"/api/v1/namespaces/{ns}/configmaps/a")
        assert code == 200 and got["metadata"]["uid"] == made["metadata"]["uid"]
        code, listed = reader.request("GET", f"/api/v1/namespaces/{ns}/configmaps")
        assert [i["metadata"]["uid"] for i in listed["items"]] == [made["metadata"]["uid"]]
        made_rv = int(made["metadata"]["resourceVersion"])
        assert int(listed["metadata"]["resourceVersion"]) >= made_rv
        event = json.loads(stream.readline())
        assert event["type"] == "ADDED"
        assert event["object"]["metadata"]["uid"] == made["metadata"]["uid"]
        assert int(event["object"]["metadata"]["resourceVersion"]) == made_rv
        watch.close()


def test_a_stale_resource_version_is_refused_by_the_other_process(
    pair: tuple[Conn, Conn],
) -> None:
    primary, worker = pair
    ns = namespace(primary)
    path = f"/api/v1/namespaces/{ns}/configmaps"
    assert primary.request("POST", path, configmap("c"))[0] == 201
    code, seen = primary.request("GET", f"{path}/c")
    assert code == 200
    # the worker updates it from the same read, then the primary's stale update loses
    code, updated = worker.request("PUT", f"{path}/c", {**seen, "data": {"v": "worker"}})
    assert code == 200
    code, refused = primary.request("PUT", f"{path}/c", {**seen, "data": {"v": "primary"}})
    assert code == 409 and refused["reason"] == "Conflict"
    code, now = primary.request("GET", f"{path}/c")
    assert now["data"] == {"v": "worker"}
    assert now["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"]


def test_a_killed_worker_is_restarted_and_loses_no_acknowledged_write(
    workers: Server, tls: ssl.SSLContext, pair: tuple[Conn, Conn]
) -> None:
    primary, worker = pair
    ns = namespace(worker)
    path = f"/api/v1/namespaces/{ns}/configmaps"
    acknowledged = []
    for i in range(20):
        code, made = worker.request("POST", path, configmap(f"k{i}"))
        assert code == 201
        acknowledged.append((made["metadata"]["name"], made["metadata"]["uid"]))
    os.kill(worker.pid, signal.SIGKILL)
    restarted = wait_for(
        "a new worker listening",
        lambda: (
            (pids := listening_pids(workers.port)) - {primary.pid, worker.pid} and len(pids) == 2
        ),
    )
    assert restarted
    code, listed = primary.request("GET", path)
    assert code == 200
    assert sorted((i["metadata"]["name"], i["metadata"]["uid"]) for i in listed["items"]) == (
        sorted(acknowledged)
    )
    # and the new worker serves them too
    (new_pid,) = listening_pids(workers.port) - {primary.pid}
    again = connect_to(workers, tls, new_pid)
    code, listed = again.request("GET", path)
    assert len(listed["items"]) == 20
    assert again.request("POST", path, configmap("after"))[0] == 201
    again.close()


def test_sigterm_stops_the_workers_cleanly(workers: Server) -> None:
    """(The last test of the module: it stops the module's server.)"""
    assert workers.proc is not None
    pids = listening_pids(workers.port)
    assert len(pids) == 2
    assert workers.stop() == 0
    assert not listening_pids(workers.port)
    alive = [f"/proc/{p}" for p in pids]
    assert wait_for("the workers' exit", lambda: not any(os.path.exists(p) for p in alive))
    log = workers.data_dir.parent / f"{workers.data_dir.name}.log"
    stopped = [
        json.loads(line)
        for line in log.read_text().splitlines()
        if '"apiserver-worker"' in line and "shutting down" in line
    ]
    assert stopped  # the worker ran its own clean stop (SIGTERM), not a kill


@pytest.mark.parametrize(
    ("command", "args", "said"),
    [
        ("apiserver", ["--datastore-endpoint", "etcd://127.0.0.1:1"], "not etcd"),
        ("server", ["--cluster-init"], "not the embedded etcd"),
        ("apiserver", ["--secrets-encryption"], "--secrets-encryption"),
        ("apiserver", ["--audit-log-path", "/tmp/audit.log"], "--audit-log-path"),
    ],
)
def test_workers_are_refused_where_several_processes_would_be_wrong(
    tmp_path: Path, command: str, args: list[str], said: str
) -> None:
    out = pyk8s_cli(command, "--data-dir", str(tmp_path / "d"), "--apiserver-workers", "2", *args)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0] and "--apiserver-workers 2" in lines[0]
    assert not (tmp_path / "d").exists()  # refused before anything was written
