"""``pyk8s trace`` against the control plane with simulated nodes: the CLI's entry point
with the kubeconfig as a user passes it, pods created through the real kubectl."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from pyk8s import cli
from tests.e2e_sim.conftest import Cluster


def trace(
    capsys: pytest.CaptureFixture[str], cluster: Cluster, ns: str, target: str, *extra: str
) -> tuple[int, str, str]:
    """``pyk8s trace`` through the CLI's own entry point (in-process: no interpreter start
    per call); its exit code, stdout and stderr."""
    kubeconfig = str(cluster.server.kubeconfig)
    code = cli.main(["trace", target, "-n", ns, "--kubeconfig", kubeconfig, *extra])
    out, err = capsys.readouterr()
    return code, out, err


def pod(name: str, **spec: Any) -> str:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "initContainers": [{"name": "setup", "image": "busybox:1.36"}],
            "containers": [{"name": "app", "image": "busybox:1.36"}],
            **spec,
        },
    }
    return json.dumps(body)


def test_pod_on_a_simulated_node_shows_every_step_in_order(
    cluster: Cluster, ns: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.kubectl("create", "-n", ns, "-f", "-", input=pod("p"))
    code, out, err = trace(
        capsys, cluster, ns, "pod/p", "--follow", "-o", "json", "--timeout", "45"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["result"] == "Ready"
    steps = [s["step"] for s in doc["steps"]]
    want = [
        "Created",
        "Scheduled",
        "PodReadyToStartContainers",
        "Started setup",
        "Finished setup",
        "Initialized",
        "Started app",
        "ContainersReady",
        "Ready",
    ]
    assert [s for s in steps if s in want] == want, steps
    node = cluster.kubectl.json("get", "pod", "p", "-n", ns)["spec"]["nodeName"]
    scheduled = doc["steps"][steps.index("Scheduled")]
    assert node in scheduled["detail"] and doc["node"] == node
    assert scheduled["precise"], "the scheduler's Event carries a sub-second time"
    offsets = [s["sinceCreatedSeconds"] for s in doc["steps"]]
    # a whole-second time may read up to 1 s before the sub-second step it follows
    assert all(b > a - 1 for a, b in itertools.pairwise(offsets)), offsets
    total = sum(s["gapSeconds"] for s in doc["steps"])
    assert abs(total - offsets[-1]) < 1.0, (total, offsets)

    # the components' spans (sent in batches) add the steps no Event tells, in order
    spanned = ["Admitted", "Stored", "Queued", "SchedulingCycle", "Scheduled"]
    spanned += ["SeenByKubelet", "SandboxCreated", "Ready"]

    def with_spans() -> dict[str, Any] | None:
        code, out, _ = trace(capsys, cluster, ns, "pod/p", "-o", "json")
        d = json.loads(out)
        got = {s["step"]: s for s in d["steps"]}
        complete = set(spanned) <= got.keys() and got["Ready"]["precise"]
        return d if code == 0 and complete else None

    doc = cluster.wait(with_spans, within=30)
    steps = [s["step"] for s in doc["steps"]]
    assert [s for s in steps if s in spanned] == spanned, steps
    by_step = {s["step"]: s for s in doc["steps"]}
    # the plugins that changed the pod, in the chain's order: it names no service account,
    # priority or tolerations (and no LimitRange, webhook or AlwaysPullImages applies)
    admitted = by_step["Admitted"]["detail"]
    assert admitted.startswith(
        "mutated by: ServiceAccount, Priority, DefaultTolerationSeconds ("
    ), admitted
    assert f"picked {node}" in by_step["SchedulingCycle"]["detail"]
    assert "3/3 nodes feasible" in by_step["SchedulingCycle"]["detail"]
    assert f"bound to {node} by " in by_step["Scheduled"]["detail"]
    assert node in by_step["SeenByKubelet"]["detail"]
    pod_ip = cluster.kubectl.json("get", "pod", "p", "-n", ns)["status"]["podIP"]
    assert pod_ip in by_step["SandboxCreated"]["detail"]
    # Ready from the kubelet's span is sub-second: the gaps add up to the pod's age at it
    total = sum(s["gapSeconds"] for s in doc["steps"])
    assert abs(total - doc["steps"][-1]["sinceCreatedSeconds"]) < 0.1, doc["steps"]

    code, out, err = trace(capsys, cluster, ns, "p")  # a bare NAME is a pod
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].split() == ["STEP", "TIME", "+GAP", "DETAIL"]
    assert lines[2].startswith("Created") and "Ready" in lines[-2]
    assert lines[-1].startswith("result: Ready")


def test_unschedulable_pod_ends_at_the_schedulers_reason(
    cluster: Cluster, ns: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.kubectl(
        "create", "-n", ns, "-f", "-", input=pod("stuck", nodeSelector={"no-such": "label"})
    )
    code, out, err = trace(capsys, cluster, ns, "pod/stuck", "--follow", "--timeout", "45")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[2].startswith("Created")
    last = lines[-2]
    assert last.startswith("!FailedScheduling"), out
    assert "0/3 nodes are available" in last and "node affinity/selector" in last
    assert lines[-1].startswith("result: Failed")

    def cycle() -> dict[str, Any] | None:
        code, out, _ = trace(capsys, cluster, ns, "pod/stuck", "-o", "json")
        steps = {s["step"]: s for s in json.loads(out)["steps"]}
        return steps.get("SchedulingCycle") if code == 0 else None

    step = cluster.wait(cycle, within=30)
    assert step["failed"]
    assert "0/3 nodes feasible" in step["detail"], step
    assert "filtered out: 3 node(s) didn't match Pod's node affinity/selector" in step["detail"]


def test_deployment_traces_its_newest_pod(
    cluster: Cluster, ns: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.kubectl("create", "deployment", "web", "--image=busybox:1.36", "-n", ns)
    pods = cluster.wait(lambda: cluster.pods(ns, "app=web"), within=30)
    code, out, err = trace(capsys, cluster, ns, "deployment/web", "-o", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["pod"]["name"] == pods[0]["metadata"]["name"]
    assert [s["step"] for s in doc["steps"]][:1] == ["Created"]
    code, _, err = trace(capsys, cluster, ns, "deployment/nope")
    assert code == 1 and "not found" in err
