"""Three ``pyk8s server``s on embedded etcd, for the HA test and the failover benchmark.

Each runs either on a test host of its own (:class:`tests.network.hosts.Hosts`: a
network namespace on a bridge, the server started under ``nsenter --net``), as the HA
test runs them, or on its own loopback address (127.0.0.2-4) of this host, as the
benchmark does. Either way they share one API port (upstream's lease endpoint reconciler
expects one port) and each has its own etcd ports and data dir; the first starts with
``--cluster-init``, the others join it with its server token, both at once (etcd adds a
member only while quorum stays safe, so the second join waits for the first, retrying
as k3s does). Server ``i`` is node ``s<i>`` (``--node-name``): its etcd member is
``s<i>-<hex>`` and its components' lease identities ``s<i>_<uuid>``, so the test can
tell which server leads."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tests.integration.conftest import Server, free_port

if TYPE_CHECKING:
    from tests.network.hosts import Hosts

ADDRESSES = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
#: the leader-election timings the README documents for HA servers (kube-vip's
#: defaults): a standby takes over within ~5-7 s of a leader's host dying, not ~17-20
HA_LEASES = tuple(
    f"--kube-{component}-arg=leader-elect-{flag}"
    for component in ("scheduler", "controller-manager")
    for flag in ("lease-duration=5s", "renew-deadline=3s", "retry-period=1s")
)
#: the same timings for the Helm controller's ``pyk8s`` lease (k3s's wrangler variables)
HA_LEASE_ENV = {
    "CATTLE_ELECTION_LEASE_DURATION": "5s",
    "CATTLE_ELECTION_RENEW_DEADLINE": "3s",
    "CATTLE_ELECTION_RETRY_PERIOD": "1s",
}


def port_free_on_all(port: int) -> bool:
    for address in ADDRESSES:
        with socket.socket() as s:
            try:
                s.bind((address, port))
            except OSError:
                return False
    return True


def shared_port() -> int:
    """A port free on every server address (the servers share the API port, as
    upstream's lease endpoint reconciler expects)."""
    while True:
        port = free_port()
        if port_free_on_all(port):
            return port


@dataclass
class HAServer(Server):
    address: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"https://{self.address}:{self.port}"


def node_name(i: int) -> str:
    return f"s{i + 1}"


def ha_server(
    base: Path, i: int, port: int, *extra: str, address: str = "", netns: str = ""
) -> HAServer:
    """Server ``i`` on ``address`` (default: its loopback address), inside the network
    namespace ``netns`` when given."""
    address = address or ADDRESSES[i]
    wrapper = ("nsenter", f"--net=/run/netns/{netns}") if netns else ()
    args = (
        "--bind-address", address, "--advertise-address", address, "--node-name", node_name(i),
        "--etcd-client-port", str(free_port()), "--etcd-peer-port", str(free_port()),
        "--kube-controller-manager-arg", f"secure-port={free_port()}",
        "--kube-scheduler-arg", f"secure-port={free_port()}",
        "--disable-agent", "--disable-cloud-controller", "--disable", "metrics-server",
        "--disable", "coredns", "--etcd-disable-snapshots", *extra,
    )  # fmt: skip
    return HAServer(
        base / f"s{i + 1}", port, extra_args=args, command="server", wrapper=wrapper,
        address=address,
    )  # fmt: skip


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                for child in f.read().split():
                    out += [int(child), *descendants(int(child))]
    return out


def kill_host(srv: Server) -> None:
    """SIGKILL the server and everything it started, at once (a host that vanished:
    no clean lease release, no member leaving)."""
    assert srv.proc is not None
    pids = [srv.proc.pid, *descendants(srv.proc.pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    srv.proc.wait()
    srv.proc = None


def start_cluster(
    base: Path,
    started: list[HAServer],
    timeout: float = 120.0,
    extra: tuple[str, ...] = (),
    hosts: Hosts | None = None,
) -> None:
    """Start the three servers (each with ``extra`` flags), on the three ``hosts`` when
    given (else on loopback addresses), appending each to ``started`` once it serves
    (the caller stops whatever is there, also when a start fails)."""
    # a fresh namespace has every port free
    port = free_port() if hosts else shared_port()

    def where(i: int) -> dict[str, str]:
        return {"address": hosts.hosts[i].ip, "netns": hosts.hosts[i].name} if hosts else {}

    first = ha_server(base, 0, port, "--cluster-init", *extra, **where(0))
    first.start(timeout=timeout)
    started.append(first)
    token = first.data_dir / "server" / "server-token"
    join = ("--server", first.url, "--token-file", str(token), *extra)
    joining = [ha_server(base, i, port, *join, **where(i)) for i in (1, 2)]
    started.extend(joining)
    # both at once: etcd adds the second member only once the first one runs, and the
    # join retries until then (the servers' start-up overlaps)
    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(srv.start, timeout) for srv in joining]:
            done.result()


def stop_all(servers: list[HAServer]) -> None:
    """SIGTERM every server at once (each stop waits for its components), then reap."""
    for srv in servers:
        if srv.proc is not None:
            srv.proc.send_signal(signal.SIGTERM)
    for srv in servers:
        srv.stop()


async def etcd_members(srv: HAServer) -> list[str]:
    """The etcd cluster's member names, as the server's own member lists them."""
    from aetcd import rpc

    from pyk8s.server.embedded_etcd import recorded_endpoint
    from pyk8s.storage.endpoint import parse_endpoint
    from pyk8s.storage.etcd import channel

    endpoint = recorded_endpoint(srv.data_dir)
    assert endpoint is not None
    ep = parse_endpoint(endpoint)
    host, port = ep.hosts[0]
    async with channel(f"{host}:{port}", ep.tls) as chan:
        listed = await rpc.ClusterStub(chan).MemberList(rpc.MemberListRequest(), timeout=5)
    return sorted(m.name for m in listed.members)
