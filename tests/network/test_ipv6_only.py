"""An IPv6-only cluster end to end (issue 20): ``pyk8s server --cluster-cidr fd00:42::/56
--service-cidr fd00:43::/112 --node-ip <the host's IPv6 address>`` alone in a test host
(a network namespace), real containers. The node gets an IPv6 pod CIDR and InternalIP
only, pods an IPv6 address only, kube-dns the service range's 10th address; a pod reaches
a Service at its IPv6 ClusterIP (the proxy's ``ip6`` table) and cluster DNS answers its
AAAA record at that kube-dns address; ``kubectl exec`` reaches the kubelet at the node's
IPv6 address (its ``--address 0.0.0.0`` serves both families, as upstream's), and so do
the kubelet's and the proxy's health ports."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.controllers.conftest import eventually
from tests.integration.conftest import KUBECTL, Kubectl
from tests.kubelet.runtime_fixtures import require_runtime
from tests.network.hosts import Host, Hosts, NsKubectl, sh
from tests.network.test_services_multinode import (
    HTTPD,
    IMAGE,
    _apply,
    _ensure_client,
    _fetch_in_client,
    _json,
    _kubectl,
    _nodes_ready,
)

pytestmark = pytest.mark.e2e

CLUSTER_CIDR = "fd00:42::/56"
SERVICE_CIDR = "fd00:43::/112"
DNS_IP = "fd00:43::a"  # the service range's 10th address, as k3s picks kube-dns's


@dataclass
class Node:
    host: Host
    kubectl: Kubectl


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    """``pyk8s server`` (control plane and node) alone in a test host, IPv6 only."""
    require_runtime()
    if shutil.which("ip") is None or not Path(KUBECTL).exists():
        pytest.skip("needs iproute2 and kubectl")
    base = Path(tempfile.mkdtemp(prefix="pyk8s-v6-", dir="/tmp"))
    hosts = Hosts.create(base / "hosts", 1, ipv6=True)
    host = hosts.hosts[0]
    host.data_dir.mkdir(parents=True)
    ns = ["nsenter", f"--net=/run/netns/{host.name}"]
    with host.log_file.open("ab") as log:
        host.proc = subprocess.Popen(
            [*ns, sys.executable, "-m", "pyk8s", "server", "--data-dir", str(host.data_dir),
             "--node-name", host.name, "--node-ip", host.ip6, "--etcd-disable-snapshots",
             "--cluster-cidr", CLUSTER_CIDR, "--service-cidr", SERVICE_CIDR,
             "--disable", "metrics-server,ingress", "--disable-scheduler",
             "--disable-cloud-controller", "--disable-helm-controller"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        kubectl = NsKubectl(host.data_dir / "kubeconfig.yaml", ns)
        deadline = time.monotonic() + 120
        while kubectl.run("get", "serviceaccount", "default", check=False).returncode != 0:
            assert host.proc.poll() is None, host.log_file.read_text()[-3000:]
            assert time.monotonic() < deadline, host.log_file.read_text()[-3000:]
            time.sleep(0.5)
        yield Node(host, kubectl)
    finally:
        hosts.destroy()
        shutil.rmtree(base, ignore_errors=True)


def _web() -> list[dict[str, Any]]:
    labels = {"app": "web6"}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web6", "namespace": "default", "labels": labels},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "httpd", "image": IMAGE, "command": ["sh", "-c", HTTPD],
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
            }],
        },
    }  # fmt: skip
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web6", "namespace": "default"},
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    return [pod, service]


def _get(host: str, url: str) -> str:
    """An HTTP(S) GET from inside the test host (its loopback and addresses)."""
    return sh("curl", "-sk", "--max-time", "3", url, netns=host, check=False)


async def test_ipv6_only_cluster_serves_pods_services_and_dns(node: Node) -> None:
    host, kubectl = node.host, node.kubectl
    await _nodes_ready(kubectl, 1)
    got = await _json(kubectl, "get", "node", host.name)
    assert got["spec"]["podCIDRs"] == ["fd00:42::/64"], got["spec"]
    internal = [a["address"] for a in got["status"]["addresses"] if a["type"] == "InternalIP"]
    assert internal == [host.ip6], got["status"]["addresses"]
    dns = await _json(kubectl, "get", "service", "-n", "kube-system", "kube-dns")
    assert (dns["spec"]["clusterIPs"], dns["spec"]["ipFamilies"]) == ([DNS_IP], ["IPv6"])

    pod, service = _web()
    pod["spec"]["nodeName"] = host.name
    await _apply(kubectl, pod, service)
    await _ensure_client(kubectl, host.name)
    spec = (await _json(kubectl, "get", "service", "web6"))["spec"]
    assert spec["ipFamilies"] == ["IPv6"] and spec["ipFamilyPolicy"] == "SingleStack", spec
    (cluster_ip,) = spec["clusterIPs"]
    assert ipaddress.ip_address(cluster_ip) in ipaddress.ip_network(SERVICE_CIDR)

    async def ready_pod() -> dict[str, Any] | None:
        got = await _json(kubectl, "get", "pod", "web6")
        ready = [c for c in got["status"].get("conditions") or [] if c["type"] == "Ready"]
        return got if ready and ready[0]["status"] == "True" else None

    web = await eventually(ready_pod, within=90, every=0.5)
    ips = [x["ip"] for x in web["status"]["podIPs"]]
    assert len(ips) == 1 and ipaddress.ip_address(ips[0]) in ipaddress.ip_network("fd00:42::/64")
    assert web["status"]["hostIPs"] == [{"ip": host.ip6}], web["status"]

    # kubectl exec: the API server reaches the kubelet at [node IPv6]:10250
    resolv = await _kubectl(kubectl, "exec", "client", "--", "cat", "/etc/resolv.conf")
    assert f"nameserver {DNS_IP}" in resolv.stdout, resolv.stdout

    async def answered() -> bool:
        return await _fetch_in_client(kubectl, f"http://[{cluster_ip}]/", 1) == ["web6"]

    await eventually(answered, within=60, every=1)
    assert await _fetch_in_client(kubectl, f"http://[{cluster_ip}]/", 5) == ["web6"] * 5

    fqdn = "web6.default.svc.cluster.local"
    out = await _kubectl(kubectl, "exec", "client", "--", "nslookup", "-type=AAAA", fqdn)
    assert cluster_ip in out.stdout, out.stdout
    assert await _fetch_in_client(kubectl, "http://web6/", 1) == ["web6"]

    # the kubelet's HTTPS port and the proxy's health port answer at the IPv6 address
    assert "Unauthorized" in _get(host.name, f"https://[{host.ip6}]:10250/pods")
    assert _get(host.name, f"http://[{host.ip6}]:10256/healthz") == "ok"
