"""Fault injection on a real node: kill -9 the kubelet, the proxy and the DNS server.

One host (a network namespace) running ``pyk8s agent`` (which supervises ``pyk8s kubelet``
with its containerd, and the node's proxy and DNS server in the kubelet's process), next
to the API server, the controller manager, the scheduler and ``pyk8s dns`` on the
bridge's gateway; a two-replica web Deployment
behind a Service and a client pod asking for it by name. Each process is killed with
SIGKILL and restarted (the kubelet, the proxy and the node's DNS server by the agent's
supervisor, the host's DNS server by the test), and afterwards:

* the kubelet adopts what it left: the same pods (uids) with the same containers, none
  restarted, none duplicated, and the node renews its lease again;
* the Service answers while the proxy is dead (its rules stay in the kernel) and after a
  new proxy has synced them;
* names resolve again once the DNS servers are back.

(The API server, controller manager and scheduler are killed under load in
tests/e2e_sim/test_fault_injection.py.) First, the node's identity: the agent joined with
the bootstrap token and its kubelet is ``system:node:<name>`` (so the restarted kubelet
below works on with the certificate it kept).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_sim.conftest import child_pid, wait_until
from tests.integration.conftest import KUBECTL, Kubectl, Server, free_port
from tests.kubelet.runtime_fixtures import require_runtime
from tests.network.hosts import Host, Hosts, NsKubectl, signing_flags

pytestmark = pytest.mark.e2e

DNS_IP = "10.43.0.10"
IMAGE = "pyk8s.local/busybox:1.35"
URL = "http://web.default.svc.cluster.local/"
HTTPD = "mkdir -p /www; hostname > /www/index.html; exec httpd -f -p 8080 -h /www"


@dataclass
class Node:
    server: Server
    host: Host
    kubectl: Kubectl
    base: Path
    #: the bridge's address in the root namespace, where the API server and DNS listen
    gateway: str
    dns: subprocess.Popen[bytes] | None = None

    def start_dns(self) -> None:
        with (self.base / "dns.log").open("ab") as log:
            self.dns = subprocess.Popen(
                [sys.executable, "-m", "pyk8s", "dns", "--kubeconfig", str(self.server.kubeconfig),
                 "--bind-address", self.gateway, "--cluster-ip", DNS_IP, "--advertise-address",
                 self.gateway, "--health-bind-address", "127.0.0.1", "--health-port",
                 str(free_port())],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def agent_child(self, component: str) -> int | None:
        """The pid of the agent's child running ``component`` (kubelet, proxy or dns)."""
        assert self.host.proc is not None
        return child_pid(self.host.proc.pid, component)

    def fetch(self, count: int) -> list[str]:
        """``count`` bounded requests by name from the client pod ("" = no answer)."""
        script = (
            f"for i in $(seq {count}); do echo R:$(timeout 3 wget -q -O - {URL} 2>/dev/null); done"
        )
        out = self.kubectl.run(
            "exec", "client", "--", "sh", "-c", script, check=False, timeout=5 * count + 30
        )
        return [line[2:].strip() for line in out.stdout.splitlines() if line.startswith("R:")]

    def all_answer(self, count: int = 5) -> bool:
        answers = self.fetch(count)
        return len(answers) == count and all(answers)

    def host_answers(self, url: str, count: int = 5) -> list[str]:
        """``count`` bounded requests from the node's own network namespace (no
        ``kubectl exec``: that goes through the kubelet)."""
        code = (
            "import urllib.request\n"
            f"for _ in range({count}):\n"
            "    try:\n"
            f"        print('R:' + urllib.request.urlopen({url!r}, timeout=3).read().decode())\n"
            "    except OSError:\n"
            "        print('R:')\n"
        )
        out = subprocess.run(
            ["nsenter", f"--net=/run/netns/{self.host.name}", sys.executable, "-c", code],
            capture_output=True, text=True, timeout=5 * count + 30, check=False,
        )  # fmt: skip
        return [line[2:].strip() for line in out.stdout.splitlines() if line.startswith("R:")]


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    require_runtime()
    if shutil.which("ip") is None or not Path(KUBECTL).exists():
        pytest.skip("needs iproute2 and kubectl")
    base = Path(tempfile.mkdtemp(prefix="pyk8s-faults-", dir="/tmp"))
    hosts = Hosts.create(base / "hosts", 1, agent_args=("--cluster-dns", DNS_IP))
    ca = base / "server" / "server" / "tls" / "ca.crt"  # kubelets' serving certs verified
    server = Server(
        base / "server", free_port(),
        extra_args=("--bind-address", "0.0.0.0", "--advertise-address", hosts.gateway,
                    "--kubelet-certificate-authority", str(ca)),
    )  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    n: Node | None = None
    try:
        server.start()
        kubeconfig = str(server.kubeconfig)
        for name, argv in {
            "cm": ["controller-manager", "--kubeconfig", kubeconfig, "--leader-elect", "false",
                   "--secure-port", str(free_port()), *signing_flags(server.data_dir)],
            "scheduler": ["scheduler", "--kubeconfig", kubeconfig, "--leader-elect", "false",
                          "--secure-port", str(free_port())],
        }.items():  # fmt: skip
            with (base / f"{name}.log").open("ab") as log:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "pyk8s", *argv],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        n = Node(server, hosts.hosts[0], Kubectl(server.kubeconfig), base, hosts.gateway)
        n.start_dns()
        n.host.start_agent(
            f"https://{hosts.gateway}:{server.port}", server.data_dir / "server" / "node-token"
        )
        yield n
    finally:
        hosts.destroy()
        if n is not None:
            stop(n.dns)
        for proc in reversed(procs):
            stop(proc)
        server.stop()
        if os.environ.get("PYK8S_KEEP_HOSTS") is None:
            shutil.rmtree(base, ignore_errors=True)


def web() -> dict[str, Any]:
    labels = {"app": "web"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "httpd",
                            "image": IMAGE,
                            "command": ["sh", "-c", HTTPD],
                            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                        }
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    client = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "client", "namespace": "default"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}],
        },
    }
    return {"apiVersion": "v1", "kind": "List", "items": [deployment, service, client]}


def pods(kubectl: Kubectl) -> dict[str, tuple[str, tuple[tuple[str, int], ...]]]:
    """Every live pod: uid, and each container's (id, restartCount)."""
    out = {}
    for p in kubectl.json("get", "pods")["items"]:
        if p["metadata"].get("deletionTimestamp"):
            continue
        statuses = tuple(
            (c.get("containerID", ""), c.get("restartCount", 0))
            for c in p["status"].get("containerStatuses") or []
        )
        out[p["metadata"]["name"]] = (p["metadata"]["uid"], statuses)
    return out


def lease_renewed(kubectl: Kubectl, node: str, after: float) -> bool:
    lease = kubectl.json("get", "lease", node, "-n", "kube-node-lease")
    renewed = lease["spec"].get("renewTime", "")
    return bool(renewed) and datetime.fromisoformat(renewed).timestamp() > after


def kill_agent_child(node: Node, component: str) -> None:
    old = node.agent_child(component)
    assert old is not None, f"the agent runs no {component}"
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: node.agent_child(component) not in (None, old), within=60)


def test_the_agent_joined_as_its_node(node: Node) -> None:
    """Issue 14: the agent's bootstrap token only got certificates (a CSR each for the
    kubelet and the proxy, auto-approved and signed by the controller manager); the
    node's own kubeconfig is ``system:node:<name>``, held by the Node authorizer."""
    kubectl, name = node.kubectl, node.host.name
    wait_until(lambda: kubectl.run("get", "node", name, check=False).returncode == 0, within=90)
    token_id = (node.server.data_dir / "server" / "token").read_text().split(".")[0]

    def issued() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = kubectl.json("get", "csr")["items"]
        return items if all((c.get("status") or {}).get("certificate") for c in items) else []

    # then, once its Node is registered, the kubelet asks for its serving certificate
    csrs: list[dict[str, Any]] = wait_until(lambda: len(issued()) == 3 and issued(), within=60)
    by_signer = {c["spec"]["signerName"]: c["spec"]["username"] for c in csrs}
    assert by_signer == {
        "kubernetes.io/kube-apiserver-client": f"system:bootstrap:{token_id}",  # the proxy's
        "kubernetes.io/kube-apiserver-client-kubelet": f"system:bootstrap:{token_id}",
        "kubernetes.io/kubelet-serving": f"system:node:{name}",
    }
    assert all(c["status"]["conditions"][0]["reason"] == "AutoApproved" for c in csrs)
    # the node's own kubeconfigs name its agent's load balancer on the node's loopback
    ns = ["nsenter", f"--net=/run/netns/{name}"]
    as_node = NsKubectl(node.host.data_dir / "kubeconfig.yaml", ns)
    me = as_node.json("auth", "whoami")["status"]["userInfo"]
    assert me["username"] == f"system:node:{name}" and "system:nodes" in me["groups"]
    as_proxy = NsKubectl(node.host.data_dir / "kube-proxy.kubeconfig", ns)
    assert as_proxy.json("auth", "whoami")["status"]["userInfo"]["username"] == (
        "system:kube-proxy"
    )
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "not-yours"},
              "stringData": {"k": "v"}}  # fmt: skip
    kubectl("apply", "-f", "-", input=json.dumps(secret))
    res = as_node.run("get", "secret", "not-yours", check=False)
    assert (
        f'secrets "not-yours" is forbidden: User "system:node:{name}" cannot get resource '
        '"secrets" in API group "" in the namespace "default": no relationship found between '
        f"node '{name}' and this object"
    ) in res.stderr
    res = as_node.run("get", "nodes", check=False)
    assert "cannot read all nodes, only its own Node object" in res.stderr


def test_kill_9_of_the_kubelet_proxy_and_dns(node: Node) -> None:
    kubectl = node.kubectl
    kubectl("apply", "-f", "-", input=json.dumps(web()))

    def settled() -> bool:
        d = kubectl.json("get", "deployment", "web")
        live = pods(kubectl)
        return (
            d["status"].get("readyReplicas") == 2
            and len(live) == 3
            and all(s and all(cid for cid, _ in s) for _, s in live.values())
        )

    wait_until(settled, within=180)
    wait_until(node.all_answer, within=90, every=1)
    before = pods(kubectl)

    # the kubelet: the agent starts a new one, which adopts every container
    killed_at = time.time()
    kill_agent_child(node, "kubelet")
    wait_until(lambda: lease_renewed(kubectl, node.host.name, killed_at + 1), within=90)
    wait_until(lambda: pods(kubectl) == before, within=60)
    assert node.all_answer()

    # the proxy (in the kubelet's process with the node's DNS server, pyk8s.server.cohost:
    # that process again): the rules stay while it is dead (asked from the node by
    # ClusterIP: the node's DNS server died with it, and kubectl exec needs the kubelet),
    # and a new one takes them over
    url = f"http://{kubectl.json('get', 'service', 'web')['spec']['clusterIP']}/"
    answers = node.host_answers(url)
    assert len(answers) == 5 and all(answers), f"the node cannot reach the Service: {answers}"
    old = node.agent_child("proxy")
    assert old is not None
    os.kill(old, signal.SIGKILL)
    answers = node.host_answers(url)
    assert len(answers) == 5 and all(answers), "the Service stopped answering without its proxy"
    wait_until(lambda: node.agent_child("proxy") not in (None, old), within=60)
    kubectl("scale", "deployment", "web", "--replicas=3")  # a change the new proxy must sync
    wait_until(lambda: len(set(node.fetch(30)) - {""}) == 3, within=90, every=1)

    # the DNS servers (issue 20: one per node, each an endpoint of kube-dns): the node's
    # own (in the kubelet's process), restarted by the agent, and the host's, restarted
    # by the test; names resolve
    # again once each is back
    kill_agent_child(node, "dns")
    wait_until(node.all_answer, within=60, every=1)
    assert node.dns is not None
    node.dns.send_signal(signal.SIGKILL)
    node.dns.wait()
    node.start_dns()
    wait_until(node.all_answer, within=60, every=1)
    live = pods(kubectl)
    assert len(live) == 4, live  # three replicas and the client, none duplicated
    assert all(live[name] == state for name, state in before.items()), (before, live)
