"""Failover benchmark: three servers on embedded etcd, the scheduler's leader killed like
a host.

Three ``pyk8s server``s (``--cluster-init`` and two joins, loopback addresses, see
tests/ha/cluster.py) and one simulated node; a client writes ConfigMaps one after
another through the agent's client-side load balancer
(:class:`pyk8s.client.loadbalancer.LoadBalancer`). Then the server whose scheduler
holds the ``kube-scheduler`` lease is SIGKILLed with its etcd and components, and the
script measures:

* **time to the first acknowledged write** after the kill (the issue's goal: 10 s);
* **time to the next pod scheduled**: a pod created right after the kill gets a node
  once a surviving scheduler holds the lease (the issue's goal: 10 s);
* **write latency** p50/p99 before (three members) and after (two members);
* **baseline, same run**: the same writes straight to a surviving server, without the
  load balancer, before the kill.

It does so twice, each time on a fresh cluster: with upstream's leader-election
timings (15 s lease, 10 s renew deadline, 2 s retry: the baseline) and with the HA
timings the README documents (5 s / 3 s / 1 s, passed as ``--kube-scheduler-arg`` and
``--kube-controller-manager-arg``).

Usage: python3 bench/ha_failover/run.py [--writes 300] [--rounds 1]
A measurement, never a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._table import Row  # noqa: E402
from tests.ha.cluster import (  # noqa: E402
    HA_LEASES,
    HAServer,
    kill_host,
    node_name,
    start_cluster,
    stop_all,
)
from tests.integration.conftest import free_port  # noqa: E402

from pyk8s.client import Client, ClientError, load_config  # noqa: E402
from pyk8s.client.loadbalancer import LoadBalancer  # noqa: E402

CM = ("v1", "ConfigMap")


async def writes(client: Client, prefix: str, n: int) -> Row:
    latencies = []
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{prefix}-{i}"}}
        await client.create(CM, body, "default")
        latencies.append(time.perf_counter() - t)
    return Row(prefix, 1, n, time.perf_counter() - start, latencies)


async def until_write(client: Client, since: float) -> tuple[float, list[str]]:
    """Seconds from ``since`` to the first acknowledged write, and the failures seen."""
    errors: list[str] = []
    i = 0
    while True:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"fail-{i}"}}
        try:
            await client.create(CM, body, "default")
            return time.perf_counter() - since, errors
        except ClientError as err:
            errors.append(f"{time.perf_counter() - since:6.2f}s {type(err).__name__}: {err}"[:160])
            i += 1
            await asyncio.sleep(0.05)


async def until_scheduled(client: Client, since: float) -> float:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "after-kill"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    while True:
        try:
            await client.create(("v1", "Pod"), pod, "default")
            break
        except ClientError as err:
            if getattr(err, "status", 0) == 409:
                break
            await asyncio.sleep(0.1)
    while True:
        try:
            got = await client.get(("v1", "Pod"), "after-kill", "default")
            if got["spec"].get("nodeName"):
                return time.perf_counter() - since
        except ClientError:
            pass
        await asyncio.sleep(0.1)


async def etcd_leader(srv: HAServer) -> bool:
    """Whether the server's etcd member is the raft leader now."""
    from aetcd import rpc

    from pyk8s.server.embedded_etcd import recorded_endpoint
    from pyk8s.storage.endpoint import parse_endpoint
    from pyk8s.storage.etcd import channel

    endpoint = recorded_endpoint(srv.data_dir)
    assert endpoint is not None
    ep = parse_endpoint(endpoint)
    host, port = ep.hosts[0]
    async with channel(f"{host}:{port}", ep.tls) as chan:
        status = await rpc.MaintenanceStub(chan).Status(rpc.StatusRequest(), timeout=5)
    return bool(status.leader == status.header.member_id)


def start_sim(kubeconfig: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pyk8s", "sim-nodes", "--kubeconfig", str(kubeconfig),
             "--count", "1", "--name-prefix", "ha-", "--port", str(free_port())],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def lb_kubeconfig(srv: HAServer, port: int, out: Path) -> Path:
    out.write_text(srv.kubeconfig.read_text().replace(srv.url, f"https://127.0.0.1:{port}"))
    return out


@dataclass
class Measured:
    timings: str
    killed: str
    etcd_leader: bool
    rows: list[tuple[str, Row]]
    first_write: float
    scheduled: float
    errors: list[str]


async def scheduler_leader(client: Client, servers: list[HAServer]) -> HAServer:
    """The server whose scheduler holds the lease (identity ``<node>_<uuid>``)."""
    while True:
        try:
            lease = await client.get(("coordination.k8s.io/v1", "Lease"), "kube-scheduler",
                                     "kube-system")  # fmt: skip
            holder = (lease.get("spec") or {}).get("holderIdentity") or ""
            for i, srv in enumerate(servers):
                if holder.startswith(f"{node_name(i)}_"):
                    return srv
        except ClientError:
            pass
        await asyncio.sleep(0.2)


async def run(servers: list[HAServer], base: Path, n: int, timings: str) -> Measured:
    s1 = servers[0]
    lb = LoadBalancer([f"{s1.address}:{s1.port}"])
    await lb.start()
    stop = asyncio.Event()
    kubeconfig = lb_kubeconfig(s1, lb.port, base / "lb.yaml")
    async with (
        Client(load_config(str(kubeconfig)), timeout=5) as client,
        # a short request timeout while waiting for the first write, so the time measured
        # is the cluster's, not a timeout's (writes take ~10 ms; p99 ~100 ms here)
        Client(load_config(str(kubeconfig)), timeout=1) as eager,
    ):
        follow = asyncio.create_task(lb.follow_endpoints(client, stop))
        while len(lb.servers) < 3:  # noqa: ASYNC110 (the list is plain state, polled)
            await asyncio.sleep(0.2)
        victim = await scheduler_leader(client, servers)
        survivor = next(s for s in servers if s is not victim)
        sim = await asyncio.to_thread(start_sim, kubeconfig, base / "sim.log")
        try:
            async with Client(load_config(str(survivor.kubeconfig)), timeout=5) as direct:
                await writes(direct, "warm-direct", 50)  # first requests pay for connections
                await writes(client, "warm-lb", 50)
                baseline = await writes(direct, "direct", n)
            before = await writes(client, "lb-before", n)
            await asyncio.sleep(2)  # the node registered and Ready (sim-nodes is quick)
            leader = await etcd_leader(victim)
            since = time.perf_counter()
            await asyncio.to_thread(kill_host, victim)
            (first_write, errors), scheduled = await asyncio.gather(
                until_write(eager, since), until_scheduled(client, since)
            )
            after = await writes(client, "lb-after", n)
        finally:
            sim.terminate()
            sim.wait(timeout=20)
            stop.set()
            await follow
    await lb.stop()
    rows = [
        ("baseline: straight to a survivor", baseline),
        ("through the LB, 3 servers", before),
        ("through the LB, after the kill", after),
    ]
    killed = node_name(servers.index(victim))
    return Measured(timings, killed, leader, rows, first_write, scheduled, errors)


def report(results: list[Measured], n: int) -> None:
    print(f"\n{n} sequential ConfigMap creates per row; 3 servers on loopback, 1 sim node\n")
    print(f"{'leader election':<22} {'writes':<34} {'p50 ms':>8} {'p99 ms':>8} {'writes/s':>9}")
    for m in results:
        for label, row in m.rows:
            print(f"{m.timings:<22} {label:<34} {row.pct(0.5):8.1f} {row.pct(0.99):8.1f} "
                  f"{row.rate:9.1f}")  # fmt: skip
    print("\nkill -9 of the scheduler's leader server; seconds after the kill (goal: 10)\n")
    print(f"{'leader election':<22} {'killed':<7} {'its etcd':<9} {'first write':>12} "
          f"{'next pod scheduled':>19}")  # fmt: skip
    for m in results:
        role = "leader" if m.etcd_leader else "follower"
        print(f"{m.timings:<22} {m.killed:<7} {role:<9} {m.first_write:12.2f} "
              f"{m.scheduled:19.2f}")  # fmt: skip
    for m in results:
        print(f"\n{m.timings}: failed writes before the first success ({len(m.errors)}):")
        for line in m.errors[:10]:
            print("  " + line)


CONFIGS = (
    ("upstream 15s/10s/2s", ()),
    ("HA 5s/3s/1s", HA_LEASES),
)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--writes", type=int, default=300)
    p.add_argument("--rounds", type=int, default=1, help="alternations of the two timings")
    args = p.parse_args()
    results: list[Measured] = []
    for _ in range(args.rounds):
        for label, extra in CONFIGS:
            with tempfile.TemporaryDirectory(prefix="pyk8s-ha-bench-") as tmp:
                base = Path(tmp)
                servers: list[HAServer] = []
                try:
                    t = time.perf_counter()
                    start_cluster(base, servers, extra=extra)
                    print(f"{label}: 3 servers up in {time.perf_counter() - t:.1f}s", flush=True)
                    results.append(asyncio.run(run(servers, base, args.writes, label)))
                finally:
                    stop_all(servers)
    report(results, args.writes)


if __name__ == "__main__":
    main()
