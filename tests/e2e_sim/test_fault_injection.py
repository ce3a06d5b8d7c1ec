"""Fault injection: kill -9 each control-plane process under load, and lose nothing.

``pyk8s server --disable-agent`` (the API server, with the controller manager and the
scheduler as supervised children) over SQLite and over a real etcd, ``pyk8s sim-nodes``
for nodes, and a steady load from the official Python client: a writer creating and
updating ConfigMaps, a watcher following them from resourceVersion to resourceVersion,
and a Deployment scaled between faults. In turn the controller manager, the scheduler,
the simulated nodes and the API server itself are killed with SIGKILL and restarted (the
first two by ``pyk8s server``'s supervisor, as a user's server restarts them; the others
by the test); over etcd, the etcd member itself is killed and restarted last, under the
running API server. Afterwards:

* every create that was answered 201, and every update answered 200, is there;
* the watcher, which resumed each broken watch from the last resourceVersion it saw (or,
  answered 410, relisted), holds exactly what a fresh list holds, and never saw a
  resourceVersion go backwards within one watch;
* the Deployment converged to its last spec with one ReplicaSet and exactly that many
  pods (none duplicated by a controller that came back).

The real kubelet, kube-proxy and DNS (containerd, iptables) are killed and restarted in
their own e2e tests; here the node is simulated, so a run takes about a minute per store.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import urllib3

from tests.e2e_sim.conftest import child_pid, wait_until
from tests.etcd_cluster import EtcdCluster, etcd_available
from tests.integration.conftest import KUBECTL, Kubectl, Server, free_port

NS = "faults"
APP = "steady"
#: errors a client sees while a process it talks to is down
TRANSIENT = (urllib3.exceptions.HTTPError, OSError)


@dataclass
class Cluster:
    server: Server
    cm_port: int
    scheduler_port: int
    sim_port: int
    base: Path
    sim: subprocess.Popen[bytes] | None = None
    etcd: EtcdCluster | None = None

    def start_sim(self) -> None:
        with open(self.base / "sim-nodes.log", "ab") as log:
            self.sim = subprocess.Popen(
                [sys.executable, "-m", "pyk8s", "sim-nodes", "--kubeconfig",
                 str(self.server.kubeconfig), "--count", "2", "--cpu", "8", "--memory", "16Gi",
                 "--port", str(self.sim_port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_until(lambda: healthy(self.sim_port), within=60)

    def stop_sim(self, sig: int = signal.SIGTERM) -> None:
        if self.sim is not None:
            self.sim.send_signal(sig)
            try:
                self.sim.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.sim.kill()
                self.sim.wait()
            self.sim = None

    def child(self, component: str) -> int | None:
        """The pid of ``pyk8s server``'s child running ``component``."""
        assert self.server.proc is not None
        return child_pid(self.server.proc.pid, component)


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(params=["sqlite", "etcd"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    if not os.path.exists(KUBECTL):
        pytest.skip(f"kubectl is not installed at {KUBECTL}")
    store_args: tuple[str, ...] = ()
    etcd: EtcdCluster | None = None
    if request.param == "etcd":
        if not etcd_available():
            pytest.skip("etcd is not installed")
        etcd = EtcdCluster(tmp_path / "etcd", size=1).start()
        store_args = ("--datastore-endpoint", etcd.endpoint)
    cm_port, scheduler_port = free_port(), free_port()
    server = Server(
        tmp_path / "data",
        free_port(),
        command="server",
        extra_args=(
            "--disable-agent",
            f"--kube-controller-manager-arg=secure-port={cm_port}",
            f"--kube-scheduler-arg=secure-port={scheduler_port}",
            # one of each: a restarted process need not wait out its predecessor's lease
            "--kube-controller-manager-arg=leader-elect=false",
            "--kube-scheduler-arg=leader-elect=false",
            *store_args,
        ),
    ).start()
    c = Cluster(server, cm_port, scheduler_port, free_port(), tmp_path, etcd=etcd)
    try:
        c.start_sim()
        yield c
    finally:
        c.stop_sim()
        server.stop()
        if etcd is not None:
            etcd.stop()


# ------------------------------------------------------------------------------ the load


@dataclass
class Load:
    """What the clients were told, and what the watcher saw."""

    stop_writing: threading.Event = field(default_factory=threading.Event)
    stop_watching: threading.Event = field(default_factory=threading.Event)
    created: set[str] = field(default_factory=set)
    #: name → the last data["v"] an update of it was answered 200 for
    updated: dict[str, int] = field(default_factory=dict)
    unanswered: int = 0
    watched: dict[str, str] = field(default_factory=dict)  # name → resourceVersion
    #: watches the server ended (timeoutSeconds), and watches broken by a fault; both
    #: went on from the last resourceVersion seen
    resumed: int = 0
    broken: int = 0
    relisted: int = 0
    backwards: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def api_client(kubeconfig: Path) -> Any:
    from kubernetes import config

    return config.new_client_from_config(str(kubeconfig))


def write(load: Load, kubeconfig: Path) -> None:
    """Create a ConfigMap, and update an earlier one, over and over."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(api_client(kubeconfig))
    i = 0
    while not load.stop_writing.is_set():
        i += 1
        name = f"cm-{i:05}"
        try:
            core.create_namespaced_config_map(
                NS,
                {"metadata": {"name": name}, "data": {"v": "0"}},
                _request_timeout=10,
            )
            with load.lock:
                load.created.add(name)
            if i % 2 == 0:
                target = f"cm-{i // 2:05}"
                if target in load.created:
                    core.patch_namespaced_config_map(
                        target, NS, {"data": {"v": str(i)}}, _request_timeout=10
                    )
                    with load.lock:
                        load.updated[target] = i
        except (ApiException, *TRANSIENT) as err:
            load.unanswered += 1
            if not isinstance(err, ApiException) or err.status >= 500:
                time.sleep(0.1)  # the server is down or starting: try again shortly
            elif err.status != 429:
                load.problems.append(f"{name}: {err.status} {err.reason}")
        time.sleep(0.01)


def watch(load: Load, kubeconfig: Path) -> None:
    """Follow the namespace's ConfigMaps as an informer does: list, then watch from the
    list's resourceVersion; a broken watch resumes from the last resourceVersion seen; a
    410 relists."""
    from kubernetes import client
    from kubernetes import watch as k8s_watch
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(api_client(kubeconfig))
    rv = ""
    while not load.stop_watching.is_set():
        try:
            if not rv:
                listed = core.list_namespaced_config_map(NS, _request_timeout=10)
                with load.lock:
                    load.watched = {
                        i.metadata.name: i.metadata.resource_version for i in listed.items
                    }
                rv = listed.metadata.resource_version
            last = int(rv)
            stream = k8s_watch.Watch().stream(
                core.list_namespaced_config_map,
                NS,
                resource_version=rv,
                timeout_seconds=5,
                _request_timeout=15,
            )
            for event in stream:
                meta = event["object"].metadata
                if int(meta.resource_version) <= last:
                    load.backwards.append((meta.name, meta.resource_version))
                last = int(meta.resource_version)
                with load.lock:
                    if event["type"] == "DELETED":
                        load.watched.pop(meta.name, None)
                    else:
                        load.watched[meta.name] = meta.resource_version
                rv = meta.resource_version
            load.resumed += 1  # the server ended the watch (timeout): go on from rv
        except ApiException as err:
            if err.status == 410:
                load.relisted += 1
                rv = ""
            else:
                time.sleep(0.2)
        except TRANSIENT:
            load.broken += 1
            time.sleep(0.2)


# ------------------------------------------------------------------------------ the checks


def deployment(replicas: int) -> dict[str, Any]:
    labels = {"app": APP}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "pyk8s.local/busybox:1.35"}]},
            },
        },
    }


def converged(kubectl: Kubectl, replicas: int) -> bool:
    d = kubectl.json("get", "deployment", APP, "-n", NS)
    status = d.get("status", {})
    if (
        d["spec"]["replicas"] != replicas
        or status.get("observedGeneration", 0) < d["metadata"]["generation"]
    ):
        return False
    counts = [status.get(k, 0) for k in ("replicas", "updatedReplicas", "readyReplicas")]
    if counts != [replicas] * 3 or status.get("availableReplicas", 0) != replicas:
        return False
    pods = [
        p
        for p in kubectl.json("get", "pods", "-n", NS, "-l", f"app={APP}")["items"]
        if not p["metadata"].get("deletionTimestamp")
    ]
    return len(pods) == replicas


def scale_and_converge(kubectl: Kubectl, replicas: int) -> None:
    wait_until(
        lambda: (
            kubectl.run(
                "scale", "deployment", APP, "-n", NS, f"--replicas={replicas}", check=False
            ).returncode
            == 0
        ),
        within=60,
    )
    wait_until(lambda: converged(kubectl, replicas), within=90)


def kill_child_and_wait(cluster: Cluster, component: str, port: int) -> None:
    """SIGKILL one of ``pyk8s server``'s children; its supervisor starts a new one."""
    old = cluster.child(component)
    assert old is not None, f"no {component} child"
    os.kill(old, signal.SIGKILL)
    wait_until(
        lambda: cluster.child(component) not in (None, old) and healthy(port),
        within=60,
    )


def test_kill_9_of_every_process_under_load_loses_nothing(cluster: Cluster) -> None:
    kubectl = Kubectl(cluster.server.kubeconfig)
    kubectl("create", "namespace", NS)
    wait_until(lambda: kubectl.run("get", "sa", "default", "-n", NS, check=False).returncode == 0)
    kubectl("create", "-n", NS, "-f", "-", input=json.dumps(deployment(3)))
    wait_until(lambda: converged(kubectl, 3), within=90)

    load = Load()
    threads = [
        threading.Thread(target=write, args=(load, cluster.server.kubeconfig), daemon=True),
        threading.Thread(target=watch, args=(load, cluster.server.kubeconfig), daemon=True),
    ]
    for t in threads:
        t.start()

    def progress() -> Callable[[], bool]:
        """Wait for the writer to be answered again after a fault."""
        before = len(load.created)
        return lambda: len(load.created) > before + 5

    try:
        kill_child_and_wait(cluster, "controller-manager", cluster.cm_port)
        scale_and_converge(kubectl, 5)

        # the scheduler runs in the controller manager's process (pyk8s.server.cohost):
        # that process again, now waited for until the scheduler is back
        kill_child_and_wait(cluster, "scheduler", cluster.scheduler_port)
        scale_and_converge(kubectl, 7)

        cluster.stop_sim(signal.SIGKILL)
        cluster.start_sim()
        scale_and_converge(kubectl, 4)

        assert cluster.server.stop(signal.SIGKILL) == -signal.SIGKILL
        cluster.server.start()
        wait_until(progress(), within=60)

        if cluster.etcd is not None:
            # the datastore dies under the running API server: writes fail meanwhile
            # (unacknowledged), then the server's store client and cache watch reconnect
            cluster.etcd.kill_member(0)
            cluster.etcd.restart_member(0)
            wait_until(progress(), within=60)
        scale_and_converge(kubectl, 6)
        wait_until(progress(), within=60)
    finally:
        load.stop_writing.set()
        threads[0].join(timeout=30)

    # no acknowledged write was lost
    assert load.created, "the writer was never answered"
    stored = {
        cm["metadata"]["name"]: cm for cm in kubectl.json("get", "configmaps", "-n", NS)["items"]
    }
    lost = sorted(load.created - stored.keys())
    assert not lost, f"acknowledged creates lost: {lost[:10]}"
    stale = {
        name: (v, stored[name]["data"]["v"])
        for name, v in load.updated.items()
        if int(stored[name]["data"]["v"]) < v
    }
    assert not stale, f"acknowledged updates lost: {stale}"
    assert not load.problems, load.problems[:5]
    assert load.unanswered > 0, "the writer never met a fault"

    # the watcher resumed (or relisted) through every fault and sees what a list sees
    listed = {name: cm["metadata"]["resourceVersion"] for name, cm in stored.items()}
    try:
        wait_until(lambda: dict(load.watched) == listed, within=30)
    finally:
        load.stop_watching.set()
        threads[1].join(timeout=30)
    assert load.backwards == [], f"a resumed watch went back in time: {load.backwards[:5]}"
    assert load.broken + load.relisted > 0, "the API server's death broke no watch"
    print(
        f"created {len(load.created)}, updated {len(load.updated)}, unanswered "
        f"{load.unanswered}; watches ended {load.resumed}, broken {load.broken}, relisted "
        f"{load.relisted}"
    )

    # one ReplicaSet, exactly the Deployment's pods, none duplicated
    assert converged(kubectl, 6)
    sets = kubectl.json("get", "replicasets", "-n", NS, "-l", f"app={APP}")["items"]
    assert len(sets) == 1, [s["metadata"]["name"] for s in sets]
    pods = [
        p
        for p in kubectl.json("get", "pods", "-n", NS, "-l", f"app={APP}")["items"]
        if not p["metadata"].get("deletionTimestamp")
    ]
    owners = {p["metadata"]["ownerReferences"][0]["name"] for p in pods}
    assert owners == {sets[0]["metadata"]["name"]}
    assert len(pods) == 6
