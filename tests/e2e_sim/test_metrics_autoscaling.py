"""metrics-server, ``kubectl top`` and the HorizontalPodAutoscaler on simulated nodes.

``pyk8s server`` (its supervised metrics-server scraping every 2 s, the HPA controller
syncing every 2 s) and ``pyk8s sim-nodes``, whose pods use what their
``kwok.x-k8s.io/usage-cpu``/``-memory`` annotations say. Everything is observed through
the real kubectl: the APIService, ``kubectl top``, the HPA's TARGETS column, its
conditions and events.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_sim.conftest import Cluster, wait_until
from tests.integration.conftest import KUBECTL, Kubectl, Server, free_port

JSON = dict[str, Any]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    import os

    if not os.path.exists(KUBECTL):
        pytest.skip(f"kubectl is not installed at {KUBECTL}")
    base = tmp_path_factory.mktemp("metrics")
    server = Server(
        base / "data",
        free_port(),
        command="server",
        extra_args=(
            "--disable-agent",
            f"--kube-controller-manager-arg=secure-port={free_port()}",
            "--kube-controller-manager-arg=horizontal-pod-autoscaler-sync-period=2s",
            f"--kube-scheduler-arg=secure-port={free_port()}",
            "--metrics-server-arg=metric-resolution=2s",
        ),
    ).start()
    kubectl = Kubectl(server.kubeconfig)
    sim_log = base / "sim-nodes.log"
    with open(sim_log, "wb") as log:
        sim = subprocess.Popen(
            [sys.executable, "-m", "pyk8s", "sim-nodes", "--kubeconfig", str(server.kubeconfig),
             "--count", "2", "--cpu", "4", "--memory", "8Gi", "--port", str(free_port())],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    c = Cluster(server, kubectl, sim, sim_log)
    try:
        c.wait(lambda: len(kubectl.json("get", "nodes")["items"]) == 2)
        metrics_api = "apiservice/v1beta1.metrics.k8s.io"
        c.wait(lambda: kubectl.run("get", metrics_api, check=False).returncode == 0)
        kubectl("wait", "--for=condition=Available", metrics_api, "--timeout=60s")
        yield c
    finally:
        sim.terminate()
        try:
            sim.wait(timeout=15)
        except subprocess.TimeoutExpired:
            sim.kill()
        server.stop()


@pytest.fixture
def ns(cluster: Cluster) -> str:
    name = f"hpa-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    cluster.wait(
        lambda: cluster.kubectl.run("get", "sa", "default", "-n", name, check=False).returncode == 0
    )
    return name


def deployment(name: str, replicas: int, cpu_usage: str, requests: JSON | None) -> JSON:
    container: JSON = {"name": "app", "image": "busybox"}
    if requests is not None:
        container["resources"] = {"requests": requests}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {
                    "labels": {"app": name},
                    "annotations": {
                        "kwok.x-k8s.io/usage-cpu": cpu_usage,
                        "kwok.x-k8s.io/usage-memory": "64Mi",
                    },
                },
                "spec": {"containers": [container]},
            },
        },
    }


def apply(kubectl: Kubectl, ns: str, obj: JSON, tmp: Path) -> None:
    path = tmp / f"{obj['kind']}-{obj['metadata']['name']}.json"
    path.write_text(json.dumps(obj))
    kubectl("apply", "-n", ns, "-f", str(path))


def events(kubectl: Kubectl, ns: str, reason: str) -> list[str]:
    items = kubectl.json("get", "events", "-n", ns, "--field-selector", f"reason={reason}")["items"]
    return [str(e["message"]) for e in items]


def condition(kubectl: Kubectl, ns: str, name: str, ctype: str) -> JSON:
    hpa = kubectl.json("get", "hpa", "-n", ns, name)
    return next(c for c in hpa["status"].get("conditions", []) if c["type"] == ctype)


def test_kubectl_top_nodes_and_pods(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    kubectl = cluster.kubectl
    apply(kubectl, ns, deployment("busy", 2, "250m", {"cpu": "100m"}), tmp_path)
    apply(kubectl, ns, deployment("idle", 1, "5m", {"cpu": "100m"}), tmp_path)

    def top_pods() -> list[list[str]]:
        out = kubectl("top", "pods", "-A", "--containers", "--sort-by=cpu", check=False)
        rows = [line.split() for line in out.splitlines()[1:] if line.split()[:1] == [ns]]
        return rows if len(rows) == 3 else []

    rows = cluster.wait(top_pods)
    assert [(r[2], r[3], r[4]) for r in rows] == [
        ("app", "250m", "64Mi"), ("app", "250m", "64Mi"), ("app", "5m", "64Mi")
    ]  # fmt: skip
    assert [r[1].split("-")[0] for r in rows] == ["busy", "busy", "idle"]
    nodes = kubectl("top", "nodes", "--sort-by=memory").splitlines()
    assert nodes[0].split() == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    assert sorted(line.split()[0] for line in nodes[1:]) == ["sim-0", "sim-1"]
    # a pod with no samples: upstream's 404
    missing = kubectl.run(
        "get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/nope", check=False
    )
    assert missing.returncode != 0
    assert f'podmetrics.metrics.k8s.io "{ns}/nope" not found' in missing.stderr
    # label selectors, through the aggregated API
    path = f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods?labelSelector=app%3Didle"
    listed = json.loads(kubectl("get", "--raw", path))
    assert [i["metadata"]["labels"]["app"] for i in listed["items"]] == ["idle"]
    assert listed["items"][0]["containers"][0]["usage"]["cpu"] == "5m"
    # the view role reads metrics (system:aggregated-metrics-reader aggregates into it);
    # metrics-server asks the API server about the user the aggregator names
    kubectl("create", "rolebinding", "viewer", "-n", ns, "--clusterrole=view", "--user=viewer")
    viewed = cluster.wait(
        lambda: kubectl.run("top", "pods", "-n", ns, "--as=viewer", check=False).stdout
    )
    assert "busy-" in viewed
    denied = kubectl.run("top", "pods", "-n", "default", "--as=viewer", check=False)
    assert 'User "viewer" cannot list resource "pods" in API group "metrics.k8s.io"' in (
        denied.stderr
    )


def test_hpa_scales_up_under_load_and_back_down(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    kubectl = cluster.kubectl
    apply(kubectl, ns, deployment("web", 1, "150m", {"cpu": "100m"}), tmp_path)
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 3,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 5}},
        },
    }  # fmt: skip
    apply(kubectl, ns, hpa, tmp_path)
    cluster.wait(lambda: events(kubectl, ns, "SuccessfulRescale"), within=90)
    assert events(kubectl, ns, "SuccessfulRescale")[0] == (
        "New size: 3; reason: cpu resource utilization (percentage of request) above target"
    )
    cluster.wait(
        lambda: kubectl.json("get", "deploy", "-n", ns, "web")["status"].get("readyReplicas") == 3
    )
    row = cluster.wait(
        lambda: [
            line.split()
            for line in kubectl("get", "hpa", "-n", ns).splitlines()[1:]
            if "150%/50%" in line and line.split()[6] == "3"
        ]
    )[0]
    assert row[:7] == ["web", "Deployment/web", "cpu:", "150%/50%", "1", "3", "3"]
    assert condition(kubectl, ns, "web", "ScalingActive")["reason"] == "ValidMetricFound"
    limited = cluster.wait(
        lambda: (c := condition(kubectl, ns, "web", "ScalingLimited"))["status"] == "True" and c
    )
    assert limited["reason"] == "TooManyReplicas"
    assert limited["message"] == "the desired replica count is more than the maximum replica count"

    # the load stops: after the 5 s window, back to one replica
    kubectl("annotate", "pods", "-n", ns, "-l", "app=web", "--overwrite",
            "kwok.x-k8s.io/usage-cpu=10m")  # fmt: skip
    cluster.wait(
        lambda: kubectl.json("get", "deploy", "-n", ns, "web")["spec"]["replicas"] == 1, within=90
    )
    # the Event is written after the scale (the recorder queues it): wait for it
    down = "New size: 1; reason: All metrics below target"
    assert down in cluster.wait(
        lambda: down in (got := events(kubectl, ns, "SuccessfulRescale")) and got
    )
    assert condition(kubectl, ns, "web", "AbleToScale")["status"] == "True"


def test_target_without_requests_gets_failed_get_resource_metric(
    cluster: Cluster, ns: str, tmp_path: Path
) -> None:
    kubectl = cluster.kubectl
    apply(kubectl, ns, deployment("norequests", 2, "300m", None), tmp_path)
    cluster.wait(
        lambda: (
            kubectl.json("get", "deploy", "-n", ns, "norequests")["status"].get("readyReplicas")
            == 2
        )
    )
    kubectl("autoscale", "deployment", "norequests", "-n", ns, "--cpu-percent=50", "--max=5")
    # (before metrics-server has two samples of the pods, the metrics are what is missing)
    missing = "failed to get cpu utilization: missing request for cpu in container app of Pod "
    cluster.wait(
        lambda: any(m.startswith(missing + "norequests-")
                    for m in events(kubectl, ns, "FailedGetResourceMetric")),
        within=90,
    )  # fmt: skip
    unable = "the HPA was unable to compute the replica count: "
    cluster.wait(
        lambda: condition(kubectl, ns, "norequests", "ScalingActive")["message"].startswith(
            unable + missing
        )
    )
    active = condition(kubectl, ns, "norequests", "ScalingActive")
    assert active["status"] == "False"
    assert active["reason"] == "FailedGetResourceMetric"
    assert active["message"].startswith(unable + missing + "norequests-")
    assert kubectl.json("get", "deploy", "-n", ns, "norequests")["spec"]["replicas"] == 2
    assert events(kubectl, ns, "SuccessfulRescale") == []
    assert "<unknown>/50%" in kubectl("get", "hpa", "-n", ns, "norequests")


# --------------------------------------------------------------------------- custom metrics


class MetricsAdapter:
    """A custom + external metrics API server (what prometheus-adapter is upstream): a
    fixed total load of 3 ``jobs_per_pod`` spread over the pods its caller selects, and
    an external ``queue_messages`` of 30; client certificates of the front proxy only."""

    def __init__(self, directory: Path, kubectl: Kubectl, ns: str) -> None:
        import http.server
        import ssl
        import threading

        from tests.integration.test_crd_conversion import make_pki

        self.pki = make_pki(directory, [f"adapter.{ns}.svc"])
        cm = kubectl.json("get", "configmap", "-n", "kube-system",
                          "extension-apiserver-authentication")  # fmt: skip
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.pki.cert_file), str(self.pki.key_file))
        ctx.load_verify_locations(cadata=cm["data"]["requestheader-client-ca-file"])
        ctx.verify_mode = ssl.CERT_REQUIRED
        adapter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = adapter.answer(self.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.kubectl, self.ns = kubectl, ns
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = int(self.httpd.server_address[1])
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, path: str) -> tuple[int, JSON]:
        from urllib.parse import parse_qs, urlsplit

        url = urlsplit(path)
        query = parse_qs(url.query)
        parts = url.path.strip("/").split("/")
        if len(parts) == 3:  # discovery
            group, version = parts[1], parts[2]
            name = "pods/jobs_per_pod" if group.startswith("custom") else "queue_messages"
            return 200, {"kind": "APIResourceList", "apiVersion": "v1",
                         "groupVersion": f"{group}/{version}",
                         "resources": [{"name": name, "singularName": "", "namespaced": True,
                                        "kind": "MetricValueList", "verbs": ["get"]}]}  # fmt: skip
        now = "2026-01-01T00:00:00Z"
        if parts[-1] == "jobs_per_pod":
            selector = query.get("labelSelector", [""])[0]
            pods = self.kubectl.json("get", "pods", "-n", self.ns, "-l", selector)["items"]
            running = [p for p in pods if p["status"].get("phase") == "Running"]
            each = f"{3000 // max(len(running), 1)}m"
            items = [{"describedObject": {"kind": "Pod", "namespace": self.ns,
                                          "name": p["metadata"]["name"], "apiVersion": "/v1"},
                      "metric": {"name": "jobs_per_pod"}, "timestamp": now, "value": each}
                     for p in running]  # fmt: skip
            return 200, {"kind": "MetricValueList", "apiVersion": "custom.metrics.k8s.io/v1beta2",
                         "metadata": {}, "items": items}  # fmt: skip
        if parts[-1] == "queue_messages":
            assert query.get("labelSelector") == ["queue=jobs"], query
            return 200, {"kind": "ExternalMetricValueList",
                         "apiVersion": "external.metrics.k8s.io/v1beta1", "metadata": {},
                         "items": [{"metricName": "queue_messages", "timestamp": now,
                                    "value": "30"}]}  # fmt: skip
        return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404}

    def stop(self) -> None:
        self.httpd.shutdown()


def test_hpa_on_custom_pods_and_external_metrics(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    import base64

    from tests.integration.test_crd_conversion import apply as apply_all
    from tests.integration.test_crd_conversion import selectorless_service

    kubectl = cluster.kubectl
    adapter = MetricsAdapter(tmp_path, kubectl, ns)
    apiservices = [("custom.metrics.k8s.io", "v1beta2"), ("external.metrics.k8s.io", "v1beta1")]
    try:
        apply_all(kubectl, ns, *selectorless_service("adapter", adapter.port))
        for group, version in apiservices:
            apply(kubectl, ns, {
                "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                "metadata": {"name": f"{version}.{group}"},
                "spec": {"group": group, "version": version,
                         "service": {"namespace": ns, "name": "adapter"},
                         "caBundle": base64.b64encode(adapter.pki.ca_pem).decode(),
                         "groupPriorityMinimum": 100, "versionPriority": 100},
            }, tmp_path)  # fmt: skip
            kubectl("wait", "--for=condition=Available", f"apiservice/{version}.{group}",
                    "--timeout=60s")  # fmt: skip
        for name in ("jobs", "queue"):
            apply(kubectl, ns, deployment(name, 1, "1m", None), tmp_path)
        pods_metric = {
            "type": "Pods",
            "pods": {
                "metric": {"name": "jobs_per_pod"},
                "target": {"type": "AverageValue", "averageValue": "1"},
            },
        }
        external_metric = {"type": "External", "external": {
            "metric": {"name": "queue_messages", "selector": {"matchLabels": {"queue": "jobs"}}},
            "target": {"type": "AverageValue", "averageValue": "10"}}}  # fmt: skip
        for name, metric in (("jobs", pods_metric), ("queue", external_metric)):
            apply(kubectl, ns, {
                "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": name},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                            "name": name},
                         "minReplicas": 1, "maxReplicas": 5, "metrics": [metric]},
            }, tmp_path)  # fmt: skip

        def rescaled() -> list[str]:
            messages = events(kubectl, ns, "SuccessfulRescale")
            return messages if len(messages) >= 2 else []

        messages = cluster.wait(rescaled, within=90)
        assert "New size: 3; reason: pods metric jobs_per_pod above target" in messages
        assert (
            "New size: 3; reason: external metric queue_messages(&LabelSelector{MatchLabels:"
            "map[string]string{queue: jobs,},MatchExpressions:[]LabelSelectorRequirement{},})"
            " above target"
        ) in messages
        # at three pods the load per pod meets the target: no further change
        hpa = cluster.wait(
            lambda: (h := kubectl.json("get", "hpa", "-n", ns, "jobs"))["status"].get(
                "currentReplicas") == 3 and h.get("status", {}).get("currentMetrics") and h
        )  # fmt: skip
        assert hpa["status"]["currentMetrics"][0]["pods"]["current"]["averageValue"] == "1"
        assert hpa["status"]["desiredReplicas"] == 3
        rows = cluster.wait(lambda: [
            line.split()[:4] for line in kubectl("get", "hpa", "-n", ns).splitlines()[1:]
            if "<unknown>" not in line
        ])  # fmt: skip
        assert sorted(rows) == [
            ["jobs", "Deployment/jobs", "1/1", "1"], ["queue", "Deployment/queue", "10/10", "(avg)"]
        ]  # fmt: skip
        active = condition(kubectl, ns, "queue", "ScalingActive")
        assert active["message"].startswith(
            "the HPA was able to successfully calculate a replica count from external metric"
        )
    finally:
        for group, version in apiservices:
            kubectl.run("delete", "apiservice", f"{version}.{group}", check=False)
        adapter.stop()


def test_missing_target_and_unauthenticated_callers(
    cluster: Cluster, ns: str, tmp_path: Path
) -> None:
    import ssl
    import urllib.error
    import urllib.request

    kubectl = cluster.kubectl
    apply(kubectl, ns, {
        "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "nope"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "nope"},
                 "maxReplicas": 3, "targetCPUUtilizationPercentage": 50},
    }, tmp_path)  # fmt: skip
    messages = cluster.wait(lambda: events(kubectl, ns, "FailedGetScale"), within=60)
    assert messages[0] == 'deployments.apps "nope" not found'
    able = cluster.wait(lambda: condition(kubectl, ns, "nope", "AbleToScale"))
    assert (able["status"], able["reason"]) == ("False", "FailedGetScale")
    assert able["message"] == (
        "the HPA controller was unable to get the target's current scale: "
        'deployments.apps "nope" not found'
    )
    # metrics-server itself answers only the front proxy
    endpoint = kubectl.json("get", "endpointslice", "-n", "kube-system", "metrics-server-pyk8s")
    address = endpoint["endpoints"][0]["addresses"][0]
    port = endpoint["ports"][0]["port"]
    insecure = ssl.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
    url = f"https://{address}:{port}/apis/metrics.k8s.io/v1beta1/nodes"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, context=insecure, timeout=10)
    assert refused.value.code == 401
    assert json.loads(refused.value.read())["reason"] == "Unauthorized"


def test_metrics_server_process_health_metrics_and_clean_stop(
    cluster: Cluster, tmp_path: Path
) -> None:
    import signal
    import urllib.request

    bad = subprocess.run(
        [sys.executable, "-m", "pyk8s", "metrics-server", "--metric-resolution", "soon"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 1
    assert 'invalid argument "soon" for "--metric-resolution" flag' in bad.stderr
    health = free_port()
    with open(tmp_path / "metrics-server.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pyk8s", "metrics-server", "--kubeconfig",
             str(cluster.server.kubeconfig), "--secure-port", "0", "--bind-address", "127.0.0.1",
             "--health-port", str(health), "--metric-resolution", "1s",
             "--cert-dir", str(tmp_path / "certs")],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:

        def get(path: str) -> str:
            url = f"http://127.0.0.1:{health}{path}"
            try:
                return str(urllib.request.urlopen(url, timeout=5).read().decode())
            except OSError as err:  # not listening yet, or 500 before the first round
                return repr(err)

        wait_until(lambda: get("/healthz") == "ok")  # after the first scrape round
        assert "metrics_server_manager_tick_duration_seconds_count" in get("/metrics")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = (tmp_path / "metrics-server.log").read_text().splitlines()
    assert json.loads(lines[0])["component"] == "metrics-server"  # structured logs
