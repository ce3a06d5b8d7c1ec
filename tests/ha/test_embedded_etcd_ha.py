"""Three ``pyk8s server``s on embedded etcd survive the loss of one (issue 19).

One test, because every step needs the cluster the previous one built. Each server is
a test host of its own (:class:`tests.network.hosts.Hosts`: a network namespace on a
bridge, 10.99.K.11-13; the test itself stays in the root namespace and reaches them over
the bridge). Server 1 starts with ``--cluster-init``, servers 2 and 3 join it with the
server token (with the same API port, so the ``kubernetes`` Endpoints are one subset;
server ``i`` is node ``s<i>``, so lease holders name their server). The components and
the Helm controller run with the README's HA leader-election timings (5 s lease). Two
simulated nodes and a writer reach the servers through the agent's client-side load
balancer (:class:`pyk8s.client.loadbalancer.LoadBalancer`), which learns the servers
from the ``kubernetes`` Endpoints. Then server 1 is killed like a host (SIGKILL to it,
its etcd and its components at once), and the test waits for: writes through the load
balancer succeeding again (how long that took is printed, not asserted), no
acknowledged write lost, the controller manager's, the scheduler's and the Helm
controller's leases held and renewed by a surviving server (whoever led before: a
standby may have taken a lease earlier), the nodes renewing their Leases and staying
Ready, and the Endpoints listing just the two survivors. Server 1 then starts again on
its data dir (its etcd member re-joins) and serves a write made while it was gone.
Last, server 3 dies for good: deleting its Node (annotated by server 3 with its etcd
member, as k3s does) removes that member from the etcd cluster and server 3 from the
Addon of a manifest it shared with server 2, whose removal on server 2 then deletes
the manifest's object.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e_sim.conftest import wait_until
from tests.etcd_cluster import etcd_available
from tests.ha.cluster import (
    HA_LEASE_ENV,
    HA_LEASES,
    HAServer,
    etcd_members,
    kill_host,
    node_name,
    start_cluster,
    stop_all,
)
from tests.integration.conftest import Kubectl, free_port
from tests.network.hosts import Hosts


@dataclass
class Writer:
    """Creates ConfigMaps through the load balancer, one after another, and records
    which were acknowledged and when each attempt ended."""

    acked: list[str] = field(default_factory=list)
    #: (monotonic end time, ok)
    attempts: list[tuple[float, bool]] = field(default_factory=list)
    stop: bool = False


class Balanced:
    """The load balancer, a writer and nothing else, on an event loop in a thread."""

    def __init__(self, seed: str, kubeconfig: Path, out: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.writer = Writer()
        self._seed = seed
        self._kubeconfig = kubeconfig
        self.kubeconfig = out
        self._ready = threading.Event()
        self._done = asyncio.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._error: BaseException | None = None

    def __enter__(self) -> Balanced:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        self.writer.stop = True
        self.loop.call_soon_threadsafe(self._done.set)
        self._thread.join(30)

    def start_writing(self) -> None:
        asyncio.run_coroutine_threadsafe(self._write(), self.loop)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        from pyk8s.client import Client, load_config
        from pyk8s.client.loadbalancer import LoadBalancer

        try:
            self.lb = LoadBalancer([self._seed])
            await self.lb.start()
            text = self._kubeconfig.read_text().replace(
                f"https://{self._seed}", f"https://127.0.0.1:{self.lb.port}"
            )
            self.kubeconfig.write_text(text)
            self.client = Client(load_config(str(self.kubeconfig)), timeout=5)
            await self.client.__aenter__()
        except BaseException as err:
            self._error = err
            self._ready.set()
            return
        follow = asyncio.create_task(self.lb.follow_endpoints(self.client, self._done))
        self._ready.set()
        await self._done.wait()
        await follow
        await self.client.__aexit__(None, None, None)
        await self.lb.stop()

    async def _write(self) -> None:
        from pyk8s.client import ClientError

        i = 0
        while not self.writer.stop and i < 5000:
            name = f"w-{i}"
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
            try:
                await self.client.create(("v1", "ConfigMap"), body, "default")
                self.writer.acked.append(name)
                self.writer.attempts.append((time.monotonic(), True))
                i += 1
            except ClientError as err:
                self.writer.attempts.append((time.monotonic(), False))
                if getattr(err, "status", 0) == 409:  # an earlier attempt committed
                    i += 1
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.02)


@pytest.fixture
def servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[HAServer]]:
    """The three servers, each on a test host of its own; stopped, and the hosts torn
    down, whatever happens."""
    if not etcd_available():
        pytest.fail("etcd-server (/usr/bin/etcd) is not installed: bash scripts/setup.sh")
    for key, value in HA_LEASE_ENV.items():
        monkeypatch.setenv(key, value)
    hosts = Hosts.create(tmp_path / "hosts", 3)
    started: list[HAServer] = []
    try:
        start_cluster(tmp_path, started, extra=HA_LEASES, hosts=hosts)
        yield started
    finally:
        try:
            stop_all(started)
        finally:
            hosts.destroy()


#: the controller manager's, the scheduler's and the Helm controller's (k3s's "k3s")
LEADER_LEASES = ("kube-controller-manager", "kube-scheduler", "pyk8s")


def _leader(k: Kubectl, name: str) -> tuple[str, float]:
    """The server (its node name: the identity is ``<node>_<uuid>``) holding the leader
    lease ``name``, and its renewTime (epoch s); ("", 0) while nobody holds it."""
    from datetime import datetime

    spec = k.json("get", "lease", name, "-n", "kube-system")["spec"]
    holder = str(spec.get("holderIdentity") or "")
    if not holder or not spec.get("renewTime"):
        return "", 0.0
    renewed = datetime.fromisoformat(spec["renewTime"].replace("Z", "+00:00"))
    return holder.partition("_")[0], renewed.timestamp()


def _renewed_by(k: Kubectl, lease: str, servers: list[str], after: float) -> float:
    """Wait until one of ``servers`` holds ``lease`` with a renewTime after ``after``
    (epoch s); that renewTime."""

    def renewed() -> float:
        holder, at = _leader(k, lease)
        return at if holder in servers and at > after else 0.0

    return float(wait_until(renewed, within=60))


def _identity_hosts(k: Kubectl) -> list[str]:
    from pyk8s.apiserver.identity_lease import IDENTITY_LABEL

    selector = f"{IDENTITY_LABEL}=kube-apiserver"
    leases = k.json("get", "leases", "-n", "kube-system", "-l", selector)["items"]
    return sorted(x["metadata"]["labels"].get("kubernetes.io/hostname", "") for x in leases)


def _endpoints(k: Kubectl) -> list[str]:
    ep = k.json("get", "endpoints", "kubernetes")
    return sorted(a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or [])


def _nodes_ready_and_renewed(k: Kubectl, after: float) -> bool:
    """Both simulated nodes Ready, their Leases renewed after ``after`` (epoch s)."""
    from datetime import datetime

    nodes = k.json("get", "nodes")["items"]
    ready = [
        n
        for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    ]
    if len(ready) != 2:
        return False
    for n in nodes:
        lease = k.json("get", "lease", n["metadata"]["name"], "-n", "kube-node-lease")
        renewed = datetime.fromisoformat(lease["spec"]["renewTime"].replace("Z", "+00:00"))
        if renewed.timestamp() <= after:
            return False
    return True


def test_three_servers_survive_losing_the_first(servers: list[HAServer], tmp_path: Path) -> None:
    s1, s2, s3 = servers
    k2 = Kubectl(s2.kubeconfig)
    _share_a_manifest(s2, s3)  # for the last step: applied meanwhile
    addresses = sorted(s.address for s in servers)
    assert wait_until(lambda: _endpoints(k2) == addresses, within=60)
    names = [node_name(i) for i in range(3)]
    # an identity Lease per API server, named after its node (upstream: its host name)
    assert wait_until(lambda: _identity_hosts(k2) == names, within=30)
    # held by one of the servers (not necessarily the first)
    assert wait_until(lambda: all(_leader(k2, n)[0] in names for n in LEADER_LEASES), within=60)
    before = {lease: _leader(k2, lease)[0] for lease in LEADER_LEASES}
    print(f"leaders before the kill: {before}")
    with Balanced(f"{s1.address}:{s1.port}", s1.kubeconfig, tmp_path / "lb.yaml") as lb:
        assert wait_until(lambda: len(lb.lb.servers) == 3, within=30)
        log = open(tmp_path / "sim.log", "wb")  # noqa: SIM115
        sim = subprocess.Popen(
            [sys.executable, "-m", "pyk8s", "sim-nodes", "--kubeconfig", str(lb.kubeconfig),
             "--count", "2", "--name-prefix", "ha-", "--port", str(free_port())],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        try:
            wait_until(lambda: _nodes_ready_and_renewed(k2, 0), within=60)
            lb.start_writing()
            assert wait_until(lambda: len(lb.writer.acked) >= 20, within=30)
            killed_at, killed_epoch = time.monotonic(), time.time()
            kill_host(s1)

            def resumed() -> float | None:
                after = [t for t, ok in lb.writer.attempts if ok and t > killed_at]
                return after[0] - killed_at if after else None

            first_write = wait_until(resumed, within=60)
            print(f"first acknowledged write {first_write:.2f}s after the kill")
            # a survivor holds each lease and renews it after the kill, and again later
            for lease in LEADER_LEASES:
                renewed = _renewed_by(k2, lease, names[1:], killed_epoch)
                assert _renewed_by(k2, lease, names[1:], renewed)
            assert wait_until(lambda: _nodes_ready_and_renewed(k2, killed_epoch), within=60)
            assert wait_until(lambda: _endpoints(k2) == [s2.address, s3.address], within=60)
            assert wait_until(
                lambda: lb.lb.servers[:2] == [f"{s2.address}:{s2.port}", f"{s3.address}:{s3.port}"],
                within=30,
            )
            acked = len(lb.writer.acked)
            assert wait_until(lambda: len(lb.writer.acked) > acked + 5, within=30)
            lb.writer.stop = True
            stored = {i["metadata"]["name"] for i in k2.json("get", "configmaps")["items"]}
            lost = [n for n in lb.writer.acked if n not in stored]
            assert not lost, f"acknowledged writes lost: {lost[:10]}"
        finally:
            sim.terminate()
            sim.wait(timeout=20)
    # server 1 comes back on its data dir: its member re-joins and catches up
    s1.start(timeout=120)
    last = Kubectl(s1.kubeconfig).json("get", "configmap", lb.writer.acked[-1])
    assert last["metadata"]["name"] == lb.writer.acked[-1]
    assert wait_until(lambda: _endpoints(k2) == addresses, within=60)
    _removing_a_dead_servers_node_removes_its_member(k2, s2, s3)


def _manifests(srv: HAServer) -> Path:
    return srv.data_dir.resolve() / "server" / "manifests"


def _share_a_manifest(*servers: HAServer) -> None:
    """The same manifest (a ConfigMap ``ha-addon``) in each server's manifests dir."""
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ha-addon"}}
    for srv in servers:
        _manifests(srv).mkdir(parents=True, exist_ok=True)
        (_manifests(srv) / "ha-addon.json").write_text(json.dumps(manifest))


def _removing_a_dead_servers_node_removes_its_member(
    k: Kubectl, s2: HAServer, s3: HAServer
) -> None:
    """k3s: server 3's Node (as its agent would register it) gets its etcd member's name
    and address from server 3; after server 3 dies for good, ``kubectl delete node``
    removes that member, and the Node goes once a server has done so (finalizer). Server
    3 also leaves the Addon of a manifest it shared with server 2, so removing the file
    from server 2 then deletes its objects."""
    from pyk8s.controllers.deploy import SERVERS_ANNOTATION
    from pyk8s.server.etcd_members import FINALIZER, NODE_NAME_ANNOTATION

    dirs = [_manifests(srv) for srv in (s2, s3)]

    def holders() -> str:
        addon = k.json("get", "addon", "ha-addon", "-n", "kube-system")
        return str(addon["metadata"]["annotations"][SERVERS_ANNOTATION])

    assert wait_until(lambda: holders() == f"s2:{dirs[0]},s3:{dirs[1]}", within=30)
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "s3"}}
    k.run("create", "-f", "-", input=json.dumps(node))
    members = asyncio.run(etcd_members(s2))
    assert len(members) == 3

    def annotated() -> str:
        meta = k.json("get", "node", "s3")["metadata"]
        name = (meta.get("annotations") or {}).get(NODE_NAME_ANNOTATION, "")
        return str(name) if FINALIZER in (meta.get("finalizers") or []) else ""

    member = wait_until(annotated, within=30)
    assert member in members and member.startswith("s3-")
    kill_host(s3)
    k.run("delete", "node", "s3", "--wait=false")
    assert wait_until(lambda: "node/s3" not in k("get", "nodes", "-o", "name").split(), within=30)
    left = [m for m in members if m != member]  # as server 2's member sees it (applied)
    assert wait_until(lambda: asyncio.run(etcd_members(s2)) == left, within=30)
    assert holders() == f"s2:{dirs[0]}"  # dropped before the finalizer went
    (dirs[0] / "ha-addon.json").unlink()
    assert wait_until(
        lambda: "NotFound" in k.run("get", "configmap", "ha-addon", check=False).stderr,
        within=30,
    )
