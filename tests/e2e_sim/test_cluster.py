"""kubectl scenarios on a whole pyk8s control plane with simulated nodes."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e_sim.conftest import Cluster


def _node_of(pod: dict[str, Any]) -> str:
    return str(pod["spec"].get("nodeName", ""))


def _running(pod: dict[str, Any]) -> bool:
    return pod.get("status", {}).get("phase") == "Running"


def test_nodes_are_ready_with_capacity(cluster: Cluster) -> None:
    out = cluster.kubectl("get", "nodes").splitlines()
    assert out[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert len(out) == 4 and all(" Ready " in line for line in out[1:])
    node = cluster.kubectl.json("get", "node", "sim-0")
    assert node["status"]["allocatable"]["cpu"] == "4"
    # node IPAM assigns the pod CIDR shortly after the node registers
    cidr = cluster.wait(lambda: cluster.kubectl.json("get", "node", "sim-0")["spec"].get("podCIDR"))
    assert cidr.startswith("10.42.")


def test_pod_is_scheduled_and_runs(cluster: Cluster, ns: str) -> None:
    cluster.kubectl("run", "hello", "-n", ns, "--image=busybox:1.36")
    pod = cluster.wait(lambda: next((p for p in cluster.pods(ns) if _running(p)), None))
    assert _node_of(pod).startswith("sim-")
    assert pod["status"]["podIP"].startswith("10.42.")

    # the scheduler's recorder writes its Event apart from (after) the binding: wait for it
    def reasons() -> set[str]:
        events = cluster.kubectl("get", "events", "-n", ns, "-o", "json")
        return {e["reason"] for e in json.loads(events)["items"]}

    assert "Scheduled" in cluster.wait(lambda: "Scheduled" in reasons() and reasons())


def test_impossible_pod_gets_upstream_message(cluster: Cluster, ns: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "huge"},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "64"}}}
            ]
        },
    }
    cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(pod))

    def condition() -> dict[str, Any] | None:
        got = cluster.kubectl.json("get", "pod", "huge", "-n", ns)
        return next(
            (
                c
                for c in got["status"].get("conditions", [])
                if c["type"] == "PodScheduled" and c["status"] == "False"
            ),
            None,
        )

    cond = cluster.wait(condition)
    assert cond["reason"] == "Unschedulable"
    assert cond["message"].startswith("0/3 nodes are available: 3 Insufficient cpu.")

    # the FailedScheduling Event is written apart from the condition (the recorder queues
    # it): wait for kubectl describe to show it
    def described() -> str:
        out = cluster.kubectl("describe", "pod", "huge", "-n", ns)
        return out if "FailedScheduling" in out else ""

    assert "FailedScheduling" in cluster.wait(described)


def test_cordon_and_taints_steer_pods(cluster: Cluster, ns: str) -> None:
    cluster.kubectl("cordon", "sim-0")
    cluster.kubectl("taint", "node", "sim-1", "dedicated=db:NoSchedule")
    try:
        for i in range(3):
            cluster.kubectl("run", f"p{i}", "-n", ns, "--image=busybox")
        cluster.wait(lambda: len([p for p in cluster.pods(ns) if _node_of(p)]) == 3)
        assert {_node_of(p) for p in cluster.pods(ns)} == {"sim-2"}
        tolerating = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "db"},
            "spec": {
                "nodeSelector": {"kubernetes.io/hostname": "sim-1"},
                "tolerations": [
                    {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}
                ],
                "containers": [{"name": "c", "image": "busybox"}],
            },
        }
        cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(tolerating))
        pod = cluster.wait(lambda: _node_of(cluster.kubectl.json("get", "pod", "db", "-n", ns)))
        assert pod == "sim-1"
    finally:
        cluster.kubectl("uncordon", "sim-0")
        cluster.kubectl("taint", "node", "sim-1", "dedicated-")


def test_job_retries_to_its_backoff_limit(cluster: Cluster, ns: str) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "flaky"},
        "spec": {
            "backoffLimit": 1,
            "template": {
                "metadata": {
                    "annotations": {"pyk8s.io/sim-exit-code": "1", "pyk8s.io/sim-run-seconds": "1"}
                },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}],
                },
            },
        },
    }
    cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(job))

    def failed() -> dict[str, Any] | None:
        got = cluster.kubectl.json("get", "job", "flaky", "-n", ns)
        return next(
            (
                c
                for c in got.get("status", {}).get("conditions", [])
                if c["type"] == "Failed" and c["status"] == "True"
            ),
            None,
        )

    cond = cluster.wait(failed, within=90)
    assert cond["reason"] == "BackoffLimitExceeded"
    assert cluster.kubectl.json("get", "job", "flaky", "-n", ns)["status"]["failed"] == 2


def test_job_completes(cluster: Cluster, ns: str) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "ok"},
        "spec": {
            "completions": 2,
            "parallelism": 2,
            "template": {
                "metadata": {"annotations": {"pyk8s.io/sim-run-seconds": "1"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}],
                },
            },
        },
    }
    cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(job))

    # succeeded reaches 2 in one status write (SuccessCriteriaMet), the Complete condition
    # that kubectl's STATUS column shows comes in a later one, as upstream: wait for both
    def complete() -> bool:
        status = cluster.kubectl.json("get", "job", "ok", "-n", ns).get("status", {})
        done = any(
            c["type"] == "Complete" and c["status"] == "True" for c in status.get("conditions", [])
        )
        return done and status.get("succeeded") == 2

    cluster.wait(complete, within=90)
    out = cluster.kubectl("get", "job", "ok", "-n", ns).splitlines()
    assert out[0].split()[:3] == ["NAME", "STATUS", "COMPLETIONS"]
    assert out[1].split()[:3] == ["ok", "Complete", "2/2"]


def test_namespace_deletion_cleans_up(cluster: Cluster) -> None:
    cluster.kubectl("create", "namespace", "doomed")
    cluster.wait(
        lambda: (
            cluster.kubectl.run("get", "sa", "default", "-n", "doomed", check=False).returncode == 0
        ),
        within=30,
    )
    cluster.kubectl("create", "configmap", "c", "-n", "doomed")
    cluster.kubectl("run", "p", "-n", "doomed", "--image=busybox")
    cluster.kubectl("delete", "namespace", "doomed", "--wait=true", timeout=120)
    assert cluster.kubectl.run("get", "namespace", "doomed", check=False).returncode == 1


def test_service_gets_endpoints_from_running_pods(cluster: Cluster, ns: str) -> None:
    for i in range(2):
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"web{i}", "labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "image": "busybox",
                        "ports": [{"name": "http", "containerPort": 8080}],
                    }
                ]
            },
        }
        cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(pod))
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
    }
    cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(svc))

    def addresses() -> list[str]:
        ep = cluster.kubectl.json("get", "endpoints", "web", "-n", ns)
        subsets = ep.get("subsets") or []
        got = [a["ip"] for s in subsets for a in s.get("addresses", [])]
        return got if len(got) == 2 else []

    ips = cluster.wait(addresses, within=60)
    pod_ips = {p["status"].get("podIP") for p in cluster.pods(ns, "app=web")}
    assert set(ips) == pod_ips
    ep = cluster.kubectl.json("get", "endpoints", "web", "-n", ns)
    assert ep["subsets"][0]["ports"][0]["port"] == 8080


def test_cronjob_runs_on_its_schedule(cluster: Cluster, ns: str) -> None:
    """A real every-minute schedule: the first Job appears within a minute and completes."""
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "tick"},
        "spec": {
            "schedule": "* * * * *",
            "successfulJobsHistoryLimit": 1,
            "jobTemplate": {
                "spec": {
                    "template": {
                        "metadata": {"annotations": {"pyk8s.io/sim-run-seconds": "1"}},
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "c", "image": "busybox"}],
                        },
                    }
                }
            },
        },
    }
    cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(cronjob))

    def completed_job() -> str:
        for job in cluster.kubectl.json("get", "jobs", "-n", ns)["items"]:
            owners = job["metadata"].get("ownerReferences") or []
            done = any(
                c["type"] == "Complete" and c["status"] == "True"
                for c in job.get("status", {}).get("conditions", [])
            )
            if done and owners and owners[0]["kind"] == "CronJob":
                return str(job["metadata"]["name"])
        return ""

    name = cluster.wait(completed_job, within=150)
    assert name.startswith("tick-")
    cj = cluster.kubectl.json("get", "cronjob", "tick", "-n", ns)
    assert cj["status"].get("lastScheduleTime")
    cluster.wait(
        lambda: cluster.kubectl.json("get", "cronjob", "tick", "-n", ns)["status"].get(
            "lastSuccessfulTime"
        ),
        within=60,
    )


def test_components_are_named_as_field_managers(cluster: Cluster, ns: str) -> None:
    """Each component's user agent is upstream's shape, so managedFields name it as on a
    kubeadm cluster (``--show-managed-fields``)."""
    cluster.kubectl("create", "deployment", "named", "-n", ns, "--image=busybox:1.36")

    def managers(kind: str, name: str) -> set[tuple[str, str, str]]:
        obj = cluster.kubectl.json("get", kind, name, "-n", ns, "--show-managed-fields")
        return {
            (m["manager"], m["operation"], m.get("subresource", ""))
            for m in obj["metadata"].get("managedFields", [])
        }

    want = ("kube-controller-manager", "Update", "status")

    def status_written() -> set[tuple[str, str, str]] | None:
        got = managers("deployment", "named")
        return got if want in got else None

    got = cluster.wait(status_written)
    assert ("kubectl-create", "Update", "") in got
    huge = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "unplaceable"},
        "spec": {
            "containers": [{"name": "c", "image": "b", "resources": {"requests": {"cpu": "64"}}}]
        },
    }
    cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(huge))
    cluster.wait(lambda: ("kube-scheduler", "Update", "status") in managers("pod", "unplaceable"))
