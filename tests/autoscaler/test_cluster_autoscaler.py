"""``pyk8s cluster-autoscaler`` against a whole control plane, as a user runs it:
``pyk8s server --disable-agent``, one ``pyk8s sim-nodes`` node that fits nothing big,
and the autoscaler process with two node groups; the real kubectl drives and reads.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e_sim.conftest import wait_until
from tests.integration.conftest import KUBECTL, Kubectl, Server, free_port

GROUPS = """
nodeGroups:
- name: big
  minSize: 0
  maxSize: 5
  template: {capacity: {cpu: "4", memory: 8Gi, pods: "110"}, labels: {pool: big}, taints: []}
- name: small
  minSize: 0
  maxSize: 3
  template: {capacity: {cpu: "1", memory: 2Gi, pods: "110"}, labels: {pool: small}}
"""


@dataclass
class Env:
    kubectl: Kubectl
    metrics_url: str

    def group_nodes(self, group: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.kubectl.json(
            "get", "nodes", "-l", f"pyk8s.io/node-group={group}"
        )["items"]
        return items

    def events(self, ns: str, reason: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.kubectl.json(
            "get", "events", "-n", ns, "--field-selector", f"reason={reason}"
        )["items"]
        return items

    def metric(self, line_prefix: str) -> float | None:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:
            for line in resp.read().decode().splitlines():
                if line.startswith(line_prefix + " "):
                    return float(line.split()[-1])
        return None


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return -9


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    import os

    if not os.path.exists(KUBECTL):
        pytest.skip(f"kubectl is not installed at {KUBECTL}")
    base = tmp_path_factory.mktemp("autoscaler")
    server = Server(
        base / "data", free_port(), command="server", extra_args=("--disable-agent",)
    ).start()
    kubectl = Kubectl(server.kubeconfig)
    groups = base / "groups.yaml"
    groups.write_text(GROUPS)
    port = free_port()
    kc = str(server.kubeconfig)
    py = [sys.executable, "-m", "pyk8s"]
    with open(base / "sim.log", "wb") as sim_log, open(base / "ca.log", "wb") as ca_log:
        sim = subprocess.Popen(
            [*py, "sim-nodes", "--kubeconfig", kc, "--count", "1", "--cpu", "1",
             "--memory", "2Gi", "--labels", "pool=base", "--port", str(free_port())],
            stdout=sim_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        ca = subprocess.Popen(
            [*py, "cluster-autoscaler", "--kubeconfig", kc, "--config", str(groups),
             "--scan-interval", "1s", "--scale-down-unneeded-time", "3s",
             "--scale-down-delay-after-add", "10s", "--expander", "least-waste",
             "--address", f"127.0.0.1:{port}"],
            stdout=ca_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    e = Env(kubectl, f"http://127.0.0.1:{port}/metrics")
    try:
        wait_until(lambda: len(kubectl.json("get", "nodes")["items"]) == 1, within=60)
        wait_until(
            lambda: (
                kubectl.run(
                    "get",
                    "configmap",
                    "-n",
                    "kube-system",
                    "cluster-autoscaler-status",
                    check=False,
                ).returncode
                == 0
            ),
            within=60,
        )
        yield e
    finally:
        rc = _stop(ca)
        _stop(sim)
        server.stop()
    assert rc == 0, (base / "ca.log").read_text()[-3000:]


@pytest.fixture
def ns(env: Env) -> str:
    name = f"ca-{uuid.uuid4().hex[:6]}"
    env.kubectl("create", "namespace", name)
    wait_until(
        lambda: env.kubectl.run("get", "sa", "default", "-n", name, check=False).returncode == 0,
        within=30,
    )
    return name


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
                            {
                                "name": "c",
                                "image": "busybox",
                                "resources": {"requests": {"cpu": cpu, "memory": "10Mi"}},
                            }
                        ],
                    },
                },
            },
        }
    )


def test_pending_pods_scale_up_the_right_group_then_it_scales_down_to_min(
    env: Env, ns: str
) -> None:
    env.kubectl("apply", "-n", ns, "-f", "-", input=deployment("web", 200, "100m", "big"))

    def all_running() -> bool:
        pods = env.kubectl.json("get", "pods", "-n", ns)["items"]
        return len(pods) == 200 and all(p["status"].get("phase") == "Running" for p in pods)

    wait_until(all_running, within=180, every=2)
    big = env.group_nodes("big")
    # 200 pods of 100m fill five 4-cpu nodes exactly: the group went to its max, no further
    assert len(big) == 5
    assert env.group_nodes("small") == []
    assert {n["metadata"]["labels"]["pool"] for n in big} == {"big"}
    messages = {e["message"] for e in env.events(ns, "TriggeredScaleUp")}
    assert any(m.startswith("pod triggered scale-up: [{big 0->") for m in messages), messages
    assert all(m.endswith("(max: 5)}]") for m in messages), messages
    lease = env.kubectl.json("get", "lease", "-n", "kube-system", "cluster-autoscaler")
    assert lease["spec"]["holderIdentity"]  # leader-elected, as upstream
    status = env.kubectl.json("get", "configmap", "-n", "kube-system", "cluster-autoscaler-status")
    assert "name: big" in status["data"]["status"]

    env.kubectl("delete", "deployment", "web", "-n", ns, "--wait=false")
    wait_until(lambda: env.group_nodes("big") == [], within=120, every=1)

    # empty nodes, or nodes whose last pods were still terminating (drained); the
    # autoscaler counts a node once the provider's delete has returned, which may be after
    # the Node is gone: wait for the count
    def scaled_down() -> float:
        return sum(
            env.metric(f'cluster_autoscaler_scaled_down_nodes_total{{reason="{reason}"}}') or 0
            for reason in ("empty", "underutilized")
        )

    wait_until(lambda: scaled_down() >= 5, within=30)
    assert scaled_down() == 5


def test_a_pdb_blocks_scale_down(env: Env, ns: str) -> None:
    env.kubectl("apply", "-n", ns, "-f", "-", input=deployment("guarded", 1, "100m", "small"))
    wait_until(
        lambda: [p for p in env.kubectl.json("get", "pods", "-n", ns)["items"]
                 if p["status"].get("phase") == "Running"],
        within=90,
    )  # fmt: skip
    (node,) = env.group_nodes("small")
    env.kubectl(
        "create", "poddisruptionbudget", "guard", "-n", ns, "--selector=app=guarded",
        "--min-available=1",
    )  # fmt: skip
    # the node is 10 % used (a scale-down candidate); the autoscaler looks, and says why not
    wait_until(
        lambda: (
            env.metric('cluster_autoscaler_unremovable_nodes_count{reason="NotEnoughPdb"}') == 1
        ),
        within=60,
    )
    (still,) = env.group_nodes("small")
    assert still["metadata"]["uid"] == node["metadata"]["uid"]
    taints = still["spec"].get("taints") or []
    assert not [t for t in taints if t["key"] == "ToBeDeletedByClusterAutoscaler"]
    env.kubectl("delete", "deployment", "guarded", "-n", ns)
    env.kubectl("delete", "pdb", "guard", "-n", ns)
    wait_until(lambda: env.group_nodes("small") == [], within=90)


def test_no_group_fits_not_trigger_scale_up(env: Env, ns: str) -> None:
    env.kubectl("run", "huge", "-n", ns, "--image=busybox", "--overrides",
                json.dumps({"spec": {"containers": [{"name": "huge", "image": "busybox",
                            "resources": {"requests": {"cpu": "64"}}}]}}))  # fmt: skip
    events = wait_until(lambda: env.events(ns, "NotTriggerScaleUp"), within=60)
    message = events[0]["message"]
    assert message.startswith("pod didn't trigger scale-up: "), message
    assert "2 Insufficient cpu" in message, message
    assert env.group_nodes("big") == [] and env.group_nodes("small") == []


def test_scale_down_disabled_annotation_keeps_a_node(env: Env, ns: str) -> None:
    env.kubectl("apply", "-n", ns, "-f", "-", input=deployment("kept", 1, "100m", "small"))
    (node,) = wait_until(lambda: env.group_nodes("small"), within=90)
    name = node["metadata"]["name"]
    env.kubectl(
        "annotate", "node", name, "cluster-autoscaler.kubernetes.io/scale-down-disabled=true"
    )
    env.kubectl("delete", "deployment", "kept", "-n", ns)
    # the node is empty now; the autoscaler looks, and says why it keeps it
    wait_until(
        lambda: (
            env.metric(
                'cluster_autoscaler_unremovable_nodes_count{reason="ScaleDownDisabledAnnotation"}'
            )
            == 1
        ),
        within=60,
    )
    assert [n["metadata"]["name"] for n in env.group_nodes("small")] == [name]
    env.kubectl("annotate", "node", name, "cluster-autoscaler.kubernetes.io/scale-down-disabled-")
    wait_until(lambda: env.group_nodes("small") == [], within=90)
