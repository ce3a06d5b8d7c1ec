"""``pyk8s ingress-controller`` end to end: real pods, kubectl, nginx on loopback.

One Ingress with two hosts, three paths of different types, a TLS host whose Secret is
made with ``cryptography`` and a default backend, served by busybox httpd pods of three
Deployments (each answers its own name and pod name); requests carrying the Host header
or SNI reach nginx's ports on loopback. Scaling a Deployment changes nginx's upstreams
while a bounded loop of requests counts errors: there must be none.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.addon_identity import addon_kubeconfig, can_i
from tests.controllers import conftest as controllers_fixtures
from tests.ingress.objects import backend, ingress, key_pair, path, rule
from tests.ingress.requests import get, served_cn
from tests.integration.conftest import Kubectl, Server, free_port
from tests.kubelet import node_fixtures
from tests.kubelet.node_fixtures import Node

pytestmark = pytest.mark.e2e

cm_server = controllers_fixtures.cm_server
node = node_fixtures.node

JSON = dict[str, Any]
#: files every backend serves, each holding "<deployment> <pod name>"
FILES = ("index.html", "api/index.html", "api/x.html", "apix.html")


def deployment(name: str, node_name: str) -> JSON:
    script = (
        f"for f in {' '.join(FILES)}; do mkdir -p /www/$(dirname $f); "
        f'echo "{name} $(hostname)" > /www/$f; done; exec httpd -f -p 8080 -h /www'
    )
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeName": node_name,
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "httpd",
                            "image": "pyk8s.local/busybox:1.35",
                            "command": ["sh", "-c", script],
                            "ports": [{"containerPort": 8080, "name": "http"}],
                            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                        }
                    ],
                },
            },
        },
    }


def svc(name: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"name": "web", "port": 80,
                                                        "targetPort": "http"}]},
    }  # fmt: skip


@dataclass
class Ingress:
    kubectl: Kubectl
    namespace: str
    http_port: int
    https_port: int
    health_port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def get(self, host: str, target: str = "/", https: bool = False) -> tuple[int, str]:
        status, body, _ = get(host, target, self.https_port if https else self.http_port, https)
        return status, body.strip()

    def wait(self, what: str, check: Callable[[], bool], within: float = 60) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if check():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{what}: not within {within}s\n{self.log.read_text()[-3000:]}")


def _ok(fn: Callable[[], bool]) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return fn()
        except OSError:
            return False

    return check


@pytest.fixture(scope="module")
def cluster(cm_server: Server, node: Node) -> Iterator[Ingress]:
    kubectl = Kubectl(cm_server.kubeconfig)
    namespace = f"ing-{os.getpid()}-{int(time.time()) % 10000}"
    kubectl("create", "namespace", namespace)
    base = Path(tempfile.mkdtemp(prefix="pyk8s-ingress-", dir="/tmp"))
    with (base / "controller-manager.log").open("wb") as log:
        cm = subprocess.Popen(
            [sys.executable, "-m", "pyk8s", "controller-manager",
             "--kubeconfig", str(cm_server.kubeconfig),
             "--controllers", "endpointslice,replicaset,deployment",
             "--leader-elect", "false", "--port", str(free_port())],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    objects = [x for n in ("web", "api", "fallback") for x in (deployment(n, node.name), svc(n))]
    kubectl("apply", "-n", namespace, "-f", "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))  # fmt: skip
    ports = free_port(), free_port(), free_port()
    # its own identity, as pyk8s server runs it; publishing in this namespace needs the
    # publisher role bound here too (pyk8s server's binding is in kube-system)
    identity = addon_kubeconfig(cm_server, "ingress-controller", base / "ingress.kubeconfig")
    kubectl("create", "rolebinding", "publisher", "-n", namespace,
            "--clusterrole", "pyk8s:ingress-controller-publisher",
            "--serviceaccount", "kube-system:pyk8s-ingress")  # fmt: skip
    log_path = base / "ingress-controller.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pyk8s", "ingress-controller",
             "--kubeconfig", str(identity), "--data-dir", str(base),
             "--http-port", str(ports[0]), "--https-port", str(ports[1]),
             "--bind-address", "127.0.0.1", "--healthz-port", str(ports[2]),
             "--node-ip", "127.0.0.1", "--publish-service", f"{namespace}/pyk8s-ingress"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    ing = Ingress(kubectl, namespace, ports[0], ports[1], ports[2], proc, log_path)
    try:
        kubectl("wait", "-n", namespace, "--for=condition=Available", "deployment", "--all",
                "--timeout=90s", timeout=100)  # fmt: skip
        yield ing
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
        cm.terminate()
        cm.wait(timeout=30)
        kubectl.run("delete", "namespace", namespace, "--wait=false", check=False)


def site(tmp: Path, kubectl: Kubectl, namespace: str) -> None:
    cert, key = key_pair("b.example.com")
    (tmp / "tls.crt").write_bytes(cert)
    (tmp / "tls.key").write_bytes(key)
    kubectl("create", "secret", "tls", "b-tls", "-n", namespace,
            "--cert", str(tmp / "tls.crt"), "--key", str(tmp / "tls.key"))  # fmt: skip
    body = ingress(
        "site",
        rule("a.example.com", path("/", "web", "ImplementationSpecific", port="web"),
             path("/index.html", "api", "Exact", port="web"), path("/api", "api", port="web"),
             path("/missing", "nosuch", "Exact")),
        rule("b.example.com", path("/", "api", port="web")),
        tls=[{"hosts": ["b.example.com"], "secretName": "b-tls"}],
        default_backend=backend("fallback", "web"),
        class_name=None,  # the default IngressClass takes it
        namespace=namespace,
    )  # fmt: skip
    del body["metadata"]["creationTimestamp"]
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))


def test_hosts_paths_tls_and_default_backend_answer_from_the_right_pods(
    cluster: Ingress, tmp_path: Path
) -> None:
    k, ns = cluster.kubectl, cluster.namespace
    site(tmp_path, k, ns)
    cluster.wait("the Ingress served", _ok(lambda: cluster.get("a.example.com")[0] == 200))
    assert cluster.get("a.example.com", "/")[1].startswith("web ")  # ImplementationSpecific /
    assert cluster.get("a.example.com", "/index.html")[1].startswith("api ")  # Exact
    assert cluster.get("a.example.com", "/api/x.html")[1].startswith("api ")  # Prefix
    assert cluster.get("a.example.com", "/apix.html")[1].startswith("web ")  # not /api's
    assert cluster.get("a.example.com", "/missing")[0] == 503
    assert cluster.get("c.example.com", "/")[1].startswith("fallback ")  # default backend
    # TLS: the Secret's certificate by SNI, HTTP redirected
    assert served_cn(cluster.https_port, "b.example.com") == "b.example.com"
    assert cluster.get("b.example.com", "/", https=True)[1].startswith("api ")
    assert cluster.get("b.example.com", "/")[0] == 308
    # the class, the Service, its EndpointSlice, the status and the event
    klass = k.json("get", "ingressclass", "pyk8s")
    assert klass["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"] == "true"
    lb = k.json("get", "service", "pyk8s-ingress", "-n", ns)
    assert lb["spec"]["type"] == "LoadBalancer"
    assert [(p["port"], p["targetPort"]) for p in lb["spec"]["ports"]] == [
        (80, cluster.http_port), (443, cluster.https_port)]  # fmt: skip
    (eps,) = k.json("get", "endpointslices", "-n", ns, "-l",
                    "kubernetes.io/service-name=pyk8s-ingress")["items"]  # fmt: skip
    assert eps["endpoints"][0]["addresses"] == ["127.0.0.1"]

    def status() -> Any:
        return k.json("get", "ingress", "site", "-n", ns).get("status", {}).get("loadBalancer")

    cluster.wait("status.loadBalancer", lambda: status() == {"ingress": [{"ip": "127.0.0.1"}]})
    assert "127.0.0.1" in k("get", "ingress", "site", "-n", ns)  # ADDRESS column

    # the controller's recorder writes Events apart from the status: wait for the one
    def service_not_found() -> bool:
        events = k.json("get", "events", "-n", ns, "--field-selector", "involvedObject.name=site")
        return any(e["reason"] == "ServiceNotFound" for e in events["items"])

    cluster.wait("the ServiceNotFound event", service_not_found)
    with urllib.request.urlopen(f"http://127.0.0.1:{cluster.health_port}/metrics") as resp:
        metrics = resp.read().decode()
    assert "nginx_ingress_controller_config_last_reload_successful 1.0" in metrics


def test_the_controller_runs_as_its_own_limited_identity(cluster: Ingress) -> None:
    """ingress-nginx's rights: it watches Secrets (TLS) but may not read one by name,
    writes Ingress status but not Ingresses, and cannot touch pods or nodes."""
    identity = cluster.log.parent / "ingress.kubeconfig"
    whoami = Kubectl(identity).json("auth", "whoami")["status"]["userInfo"]["username"]
    assert whoami == "system:serviceaccount:kube-system:pyk8s-ingress"
    assert can_i(identity, "watch", "secrets", "-A")
    assert can_i(identity, "update", "ingresses", "--subresource=status", "-n", cluster.namespace)
    assert not can_i(identity, "get", "secrets", "-n", "kube-system")
    assert not can_i(identity, "update", "ingresses", "-n", cluster.namespace)
    assert not can_i(identity, "create", "pods", "-n", cluster.namespace)
    assert not can_i(identity, "delete", "nodes")


def test_scaling_a_backend_changes_upstreams_without_a_failed_request(cluster: Ingress) -> None:
    k, ns = cluster.kubectl, cluster.namespace
    cluster.wait("the Ingress served", _ok(lambda: cluster.get("a.example.com")[0] == 200))
    k("scale", "deployment", "web", "-n", ns, "--replicas=3")
    errors: list[str] = []
    seen: set[str] = set()
    recent: list[str] = []

    def one() -> str:
        try:
            status, body = cluster.get("a.example.com", "/")
        except OSError as err:
            errors.append(repr(err))
            return ""
        if status != 200:
            errors.append(f"{status} {body}")
        return body

    for _ in range(3000):  # bounded: scale up until three pods answer
        seen.add(one())
        if len({s for s in seen if s.startswith("web ")}) == 3:
            break
    assert len({s for s in seen if s.startswith("web ")}) == 3, seen
    k("scale", "deployment", "web", "-n", ns, "--replicas=1")
    for _ in range(3000):  # and down until the last 50 answers come from one pod
        recent = [*recent[-49:], one()]
        if len(recent) == 50 and len(set(recent)) == 1:
            break
    assert len(set(recent)) == 1, set(recent)
    assert errors == []


def test_nginx_killed_is_started_again(cluster: Ingress) -> None:
    pid_file = cluster.log.parent / "ingress-nginx" / "nginx.pid"
    old = int(pid_file.read_text())
    os.kill(old, signal.SIGKILL)

    def again() -> bool:
        return int(pid_file.read_text() or 0) != old and cluster.get("a.example.com")[0] == 200

    cluster.wait("nginx started again", _ok(again))
    with urllib.request.urlopen(f"http://127.0.0.1:{cluster.health_port}/metrics") as resp:
        metrics = resp.read().decode()
    restarts = re.search(r"^pyk8s_ingress_nginx_restarts_total (\S+)$", metrics, re.M)
    assert restarts is not None and float(restarts.group(1)) >= 1


def test_sigterm_stops_the_controller_and_nginx(cluster: Ingress, tmp_path: Path) -> None:
    pid_file = cluster.log.parent / "ingress-nginx" / "nginx.pid"
    nginx_pid = int(pid_file.read_text())
    cluster.proc.send_signal(signal.SIGTERM)
    assert cluster.proc.wait(timeout=30) == 0
    assert not Path(f"/proc/{nginx_pid}").exists()
