"""Cluster autoscaler: time from 1,000 unschedulable pods to all Running on new simulated
nodes (goal ≤ 60 s), next to the same 1,000 pods on the same number of nodes already
present (the baseline: scheduling and simulated start-up alone).

The scale-up is measured twice: with the loop every ``--scan-interval`` only (upstream's
default), and with ``--frequent-loops-enabled`` (upstream's LoopTrigger: the next loop at
once after a scale-up, or when a pod is marked unschedulable). Where the time goes without
it: the pods reach the scheduler's Unschedulable verdict over tens of seconds (the
Deployment's ReplicaSet creates them in slow-start batches, the scheduler marks each), so
each 10-s loop sees only the pods marked so far and adds nodes for those; the last batch
waits for the next tick.

``python -m bench.autoscaler.run [--pods 1000] [--cpu 100m]``. Real processes on
loopback: ``pyk8s server --disable-agent`` (API server, scheduler, controller-manager),
``pyk8s sim-nodes`` for the baseline nodes, ``pyk8s cluster-autoscaler`` for the scale-up;
a Deployment creates the pods; the real kubectl watches. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.integration.conftest import Kubectl, Server, free_port  # noqa: E402

NODE_CPU_MILLI = 4000


def deployment(name: str, replicas: int, cpu: str, pool: str) -> str:
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "nodeSelector": {"pool": pool},
                        "terminationGracePeriodSeconds": 0,
                        "containers": [
                            {"name": "c", "image": "busybox",
                             "resources": {"requests": {"cpu": cpu, "memory": "16Mi"}}}
                        ],
                    },
                },
            },
        }
    )  # fmt: skip


def running(kubectl: Kubectl, app: str) -> int:
    out = kubectl(
        "get", "pods", "-l", f"app={app}", "--field-selector=status.phase=Running", "-o", "name",
        timeout=120,
    )  # fmt: skip
    return len(out.split())


def time_to_running(
    kubectl: Kubectl, app: str, pods: int, cpu: str, pool: str
) -> tuple[float, float]:
    """Seconds from applying the Deployment until all its pods run, and the wall-clock
    start (to place the nodes' registration times)."""
    started_at = time.time()
    start = time.monotonic()
    kubectl("apply", "-f", "-", input=deployment(app, pods, cpu, pool))
    deadline = start + 900
    while time.monotonic() < deadline:
        if running(kubectl, app) >= pods:
            return time.monotonic() - start, started_at
        time.sleep(0.5)
    return math.inf, started_at


def last_registration(kubectl: Kubectl, selector: str, since: float) -> float:
    """Seconds from ``since`` to the newest matching Node's creation (1 s resolution)."""
    nodes = kubectl.json("get", "nodes", "-l", selector)["items"]
    stamps = [
        datetime.strptime(n["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
        .replace(tzinfo=UTC)
        .timestamp()
        for n in nodes
    ]
    return max(stamps, default=since) - since


def clean(kubectl: Kubectl, deployment: str, nodes: str) -> None:
    """Delete a run's Deployment and nodes, and wait until no node or pod is left."""
    kubectl("delete", "deployment", deployment, "--wait=false")
    kubectl("delete", "nodes", "-l", nodes, "--wait=false")
    clean_by = time.monotonic() + 180
    while time.monotonic() < clean_by and (
        kubectl.json("get", "nodes")["items"] or kubectl("get", "pods", "-o", "name")
    ):
        time.sleep(1)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--cpu", default="100m", help="each pod's CPU request")
    ap.add_argument("--scan-interval", default="10s", help="the autoscaler's (upstream: 10s)")
    args = ap.parse_args()
    per_node = NODE_CPU_MILLI // int(args.cpu.removesuffix("m"))
    nodes = math.ceil(args.pods / per_node)
    base = Path(tempfile.mkdtemp(prefix="bench-ca-"))
    server = Server(
        base / "data", free_port(), command="server", extra_args=("--disable-agent",)
    ).start()
    kubectl = Kubectl(server.kubeconfig)
    kc = str(server.kubeconfig)
    py = [sys.executable, "-m", "pyk8s"]
    groups = base / "groups.yaml"
    groups.write_text(
        f"nodeGroups:\n- name: big\n  minSize: 0\n  maxSize: {nodes * 2}\n  template: "
        '{capacity: {cpu: "4", memory: 32Gi, pods: "110"}, labels: {pool: big}}\n'
    )
    procs: list[subprocess.Popen[bytes]] = []
    autoscaled: list[tuple[bool, float, int, float]] = []
    try:
        with open(base / "sim.log", "wb") as log:
            procs.append(subprocess.Popen(
                [*py, "sim-nodes", "--kubeconfig", kc, "--count", str(nodes), "--cpu", "4",
                 "--memory", "32Gi", "--labels", "pool=pre", "--name-prefix", "pre-",
                 "--port", str(free_port())],
                stdout=log, stderr=subprocess.STDOUT,
            ))  # fmt: skip
        while len(kubectl.json("get", "nodes")["items"]) < nodes:
            time.sleep(0.5)
        baseline, _ = time_to_running(kubectl, "pre", args.pods, args.cpu, "pre")
        # a clean slate: the baseline's nodes and pods gone before the autoscaled run
        stop(procs.pop())
        clean(kubectl, "pre", "pool=pre")
        for frequent in (False, True):
            with open(base / f"ca-{frequent}.log", "wb") as log:
                procs.append(subprocess.Popen(
                    [*py, "cluster-autoscaler", "--kubeconfig", kc, "--config", str(groups),
                     "--scan-interval", args.scan_interval,
                     f"--frequent-loops-enabled={str(frequent).lower()}",
                     "--address", f"127.0.0.1:{free_port()}"],
                    stdout=log, stderr=subprocess.STDOUT,
                ))  # fmt: skip
            time.sleep(3)  # the autoscaler's informers sync (not part of the measured time)
            took, started_at = time_to_running(kubectl, "big", args.pods, args.cpu, "big")
            group = "pyk8s.io/node-group=big"
            added = len(kubectl.json("get", "nodes", "-l", group)["items"])
            last_node = last_registration(kubectl, group, started_at)
            autoscaled.append((frequent, took, added, last_node))
            stop(procs.pop())
            clean(kubectl, "big", group)
    finally:
        for proc in reversed(procs):
            stop(proc)
        server.stop()
    print(
        f"{args.pods} pods of {args.cpu} CPU; nodes of 4 CPU ({per_node} pods each); "
        f"autoscaler scan interval {args.scan_interval}\n"
    )
    print(f"{'case':<44} {'nodes':>6} {'last node registered':>21} {'all Running':>12}")
    print(f"{'nodes already present (sim-nodes)':<44} {nodes:>6} {'-':>21} {baseline:>11.1f}s")
    for frequent, took, added, last_node in autoscaled:
        case = "scale-up, " + ("--frequent-loops-enabled" if frequent else "scan interval only")
        print(f"{case:<44} {added:>6} {last_node:>20.0f}s {took:>11.1f}s")


if __name__ == "__main__":
    main()
