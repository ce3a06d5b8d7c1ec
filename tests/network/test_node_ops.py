"""Running a node for real, k3s-style, on one test host (a network namespace running
``pyk8s agent``): the unreachable routes for the cluster and service CIDRs, image tars
dropped into ``DATA_DIR/images`` while the node runs, a registry mirror from
``DATA_DIR/etc/registries.yaml``, a LoadBalancer Service on 8080 beside the bundled
ingress controller, and last ``pyk8s killall``, which must leave no
process, mount, interface, route or KUBE- chain of the node behind — and nothing of any
other node (it runs against this host's data dir only).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pyk8s.kubelet import images
from tests.integration.conftest import KUBECTL, Kubectl, free_port
from tests.kubelet.registry_fixtures import REGISTRY_BIN, Registry, push_oci_archive
from tests.kubelet.runtime_fixtures import require_runtime
from tests.network.hosts import Host, Hosts, NsKubectl, sh

pytestmark = pytest.mark.e2e


@dataclass
class Node:
    host: Host
    kubectl: Kubectl
    proc: subprocess.Popen[bytes]
    #: the test hosts' bridge address in the root namespace (reachable from the node)
    gateway: str

    @property
    def agent_dir(self) -> Path:
        return self.host.data_dir / "agent"


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    """``pyk8s server`` (control plane and this host's node) alone in a network namespace."""
    require_runtime()
    if shutil.which("ip") is None or not Path(KUBECTL).exists():
        pytest.skip("needs iproute2 and kubectl")
    base = Path(tempfile.mkdtemp(prefix="pyk8s-ops-", dir="/tmp"))
    hosts = Hosts.create(base / "hosts", 1)
    host = hosts.hosts[0]
    host.data_dir.mkdir(parents=True)
    ns = ["nsenter", f"--net=/run/netns/{host.name}"]
    with host.log_file.open("ab") as log:
        proc = subprocess.Popen(
            [*ns, sys.executable, "-m", "pyk8s", "server", "--data-dir", str(host.data_dir),
             "--node-name", host.name, "--node-ip", host.ip, "--etcd-disable-snapshots",
             "--disable", "metrics-server,coredns", "--disable-scheduler"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    host.proc = proc
    try:
        kubeconfig = host.data_dir / "kubeconfig.yaml"
        kubectl = NsKubectl(kubeconfig, ns)
        deadline = time.monotonic() + 120
        while kubectl.run("get", "node", host.name, check=False).returncode != 0:
            assert proc.poll() is None, host.log_file.read_text()[-3000:]
            assert time.monotonic() < deadline, host.log_file.read_text()[-3000:]
            time.sleep(0.5)
        deadline = time.monotonic() + 60
        while kubectl.run("get", "serviceaccount", "default", check=False).returncode != 0:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        yield Node(host, kubectl, proc, hosts.gateway)
    finally:
        if proc.poll() is None:  # the killall test did not run or failed: clean up
            killall = [sys.executable, "-m", "pyk8s", "killall", "--data-dir", str(host.data_dir)]
            subprocess.run([*ns, *killall], capture_output=True, timeout=120, check=False)
        hosts.destroy()
        shutil.rmtree(base, ignore_errors=True)


def _pod(name: str, node: str, image: str = "pyk8s.local/busybox:1.35", **extra: Any) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {
            "nodeName": node, "terminationGracePeriodSeconds": 1,
            "volumes": [{"name": "scratch", "emptyDir": {"medium": "Memory"}}],
            "containers": [{
                "name": "c", "image": image, "command": ["sleep", "3600"],
                "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}], **extra,
            }],
        },
    })  # fmt: skip


def _wait_running(kubectl: Kubectl, name: str) -> None:
    kubectl("wait", "--for=jsonpath={.status.phase}=Running", f"pod/{name}", "--timeout=60s",
            timeout=70)  # fmt: skip


def test_unreachable_routes_for_cluster_and_service_cidrs(node: Node) -> None:
    host = node.host
    node.kubectl("apply", "-f", "-", input=_pod("sleeper", host.name))  # makes the bridge
    _wait_running(node.kubectl, "sleeper")
    routes = sh("ip", "route", "show", netns=host.name)
    assert "unreachable 10.42.0.0/16 proto 201" in routes
    assert "10.42.0.0/24 dev cni0" in routes  # the node's own pod CIDR: more specific
    rules = sh("ip", "rule", "show", netns=host.name)
    assert "to 10.43.0.0/16 iif lo lookup main proto 201" in rules
    assert "to 10.43.0.0/16 unreachable proto 201" in rules
    # a pod address of no node: no route; a service address: fine from the host itself
    # (kube-proxy DNATs it after this lookup), unreachable for a forwarded packet
    assert "No route to host" in _route_get(host, "10.42.200.5")
    assert "default" not in _route_get(host, "10.42.200.5", "from", "10.99.0.200", "iif", "eth0")
    assert " via " in _route_get(host, "10.43.0.99")
    assert "unreachable" in _route_get(host, "10.43.0.99", "from", "10.42.0.9", "iif", "cni0")


def _route_get(host: Host, *args: str) -> str:
    out = subprocess.run(["ip", "netns", "exec", host.name, "ip", "route", "get", *args],
                         capture_output=True, text=True, timeout=10, check=False)  # fmt: skip
    return out.stdout + out.stderr


def _waiting_reason(kubectl: Kubectl, name: str) -> str:
    return kubectl(
        "get", "pod", name, "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}"
    )


def test_image_archive_dropped_in_while_running_starts_a_waiting_pod(
    node: Node, tmp_path: Path
) -> None:
    kubectl = node.kubectl
    kubectl("apply", "-f", "-", input=_pod("airgapped", node.host.name,
                                           image="pyk8s.local/airgapped:v1",
                                           imagePullPolicy="Never"))  # fmt: skip
    deadline = time.monotonic() + 60
    while _waiting_reason(kubectl, "airgapped") != "ErrImageNeverPull":
        assert time.monotonic() < deadline, kubectl("describe", "pod", "airgapped")
        time.sleep(0.3)
    archive = images.build_busybox_image(tmp_path / "airgapped.tar", "pyk8s.local/airgapped:v1")
    target = node.agent_dir / "images"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(archive, target / ".airgapped.tar.tmp")
    (target / ".airgapped.tar.tmp").rename(target / "airgapped.tar")  # as a user would mv it
    _wait_running(kubectl, "airgapped")


def test_the_api_server_verifies_the_kubelets_serving_certificate(node: Node) -> None:
    """Issue 14: the server's kubelet serves a kubelet-serving certificate for its Node's
    addresses (its CSR as system:node:<name>, auto-approved), which ``pyk8s server``'s API
    server checks against the cluster CA before exec reaches the pod."""
    kubectl, name = node.kubectl, node.host.name

    def serving() -> dict[str, Any] | None:
        for csr in json.loads(kubectl("get", "csr", "-o", "json"))["items"]:
            if csr["spec"]["signerName"] == "kubernetes.io/kubelet-serving" and (
                csr.get("status") or {}
            ).get("certificate"):
                return dict(csr)
        return None

    deadline = time.monotonic() + 60
    while (csr := serving()) is None:
        assert time.monotonic() < deadline, kubectl("get", "csr")
        time.sleep(0.5)
    assert csr["spec"]["username"] == f"system:node:{name}"
    assert csr["status"]["conditions"][0]["reason"] == "AutoApproved"
    assert (node.agent_dir / "kubelet" / "pki" / "kubelet-server-current.pem").exists()
    out = kubectl("exec", "airgapped", "--", "echo", "verified")
    assert out.strip() == "verified"


def test_the_servers_kubelet_has_its_node_certificate_from_the_server(node: Node) -> None:
    """Issue 21: ``pyk8s server`` issues its own kubelet's ``system:node:<name>`` client
    certificate (k3s's server writes its agent's), so no node-client CSR is made on the
    way to the node's first Ready; the kubelet is still that node, as NodeRestriction
    and the Node authorizer see it."""
    kubectl, name = node.kubectl, node.host.name
    signers = [c["spec"]["signerName"] for c in kubectl.json("get", "csr")["items"]]
    assert "kubernetes.io/kube-apiserver-client-kubelet" not in signers, signers
    ns = ["nsenter", f"--net=/run/netns/{name}"]
    as_kubelet = NsKubectl(node.host.data_dir / "server" / "cred" / "kubelet.kubeconfig", ns)
    me = as_kubelet.json("auth", "whoami")["status"]["userInfo"]
    assert me["username"] == f"system:node:{name}" and "system:nodes" in me["groups"]
    assert as_kubelet.run("auth", "can-i", "delete", "nodes", check=False).stdout.strip() == "no"


def test_registry_mirror_from_registries_yaml(node: Node, tmp_path: Path) -> None:
    """``image: docker.io/library/busybox:bars`` comes from a local docker-registry named as
    docker.io's mirror in registries.yaml, written while the node runs."""
    port = free_port()
    registry = Registry(f"{node.gateway}:{port}", "", "")
    config = {"version": 0.1, "log": {"level": "warn"},
              "storage": {"filesystem": {"rootdirectory": str(tmp_path / "data")}},
              "http": {"addr": registry.host}}  # fmt: skip
    (tmp_path / "config.yml").write_text(json.dumps(config))
    with (tmp_path / "registry.log").open("wb") as log:
        proc = subprocess.Popen([REGISTRY_BIN, "serve", str(tmp_path / "config.yml")],
                                stdout=log, stderr=log)  # fmt: skip
    try:
        archive = images.build_busybox_image(tmp_path / "bb.tar", "docker.io/library/busybox:bars")
        deadline = time.monotonic() + 15
        while True:
            try:
                asyncio.run(push_oci_archive(registry, archive, "library/busybox", "bars"))
                break
            except aiohttp.ClientError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        etc = node.agent_dir / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "registries.yaml").write_text(
            f"mirrors:\n  docker.io:\n    endpoint:\n      - http://{registry.host}\n"
        )
        hosts = node.agent_dir / "containerd" / "certs.d" / "docker.io" / "hosts.toml"
        deadline = time.monotonic() + 10  # the node applies the file within a second
        while not hosts.exists() or registry.host not in hosts.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        pod = _pod("mirrored", node.host.name, image="docker.io/library/busybox:bars")
        node.kubectl("apply", "-f", "-", input=pod)
        _wait_running(node.kubectl, "mirrored")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_manifest_dropped_into_the_server_directory_is_applied(node: Node) -> None:
    manifests = node.host.data_dir / "server" / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    (manifests / "greeting.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\n  namespace: default\n"
        "data:\n  text: hello\n"
    )
    deadline = time.monotonic() + 30
    while node.kubectl.run("get", "configmap", "greeting", check=False).returncode != 0:
        assert time.monotonic() < deadline, node.host.log_file.read_text()[-2000:]
        time.sleep(0.3)
    addon = json.loads(node.kubectl("get", "addon", "greeting", "-n", "kube-system", "-o", "json"))
    assert addon["spec"]["source"] == str((manifests / "greeting.yaml").resolve())


def test_a_load_balancer_on_8080_beside_the_bundled_ingress(node: Node) -> None:
    """The node's nginx listens on internal ports (10080/10443, its LoadBalancer Service
    answering on 80/443), so a user's LoadBalancer Service on 8080 gets the node's
    address: ServiceLB no longer finds the port taken (PortInUse)."""
    kubectl, host = node.kubectl, node.host
    kubectl("create", "service", "loadbalancer", "web8080", "--tcp=8080:8080")

    def address(namespace: str, name: str) -> str:
        return kubectl("get", "service", name, "-n", namespace,
                       "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")  # fmt: skip

    deadline = time.monotonic() + 60
    while address("default", "web8080") != host.ip:
        events = kubectl("get", "events", "--field-selector", "involvedObject.name=web8080")
        assert "PortInUse" not in events, events
        assert time.monotonic() < deadline, events
        time.sleep(0.5)
    while address("kube-system", "pyk8s-ingress") != host.ip:
        assert time.monotonic() < deadline, kubectl("get", "events", "-n", "kube-system")
        time.sleep(0.5)
    # port 80 of the node reaches nginx (no Ingress for this host: its default 404)
    curl = ["ip", "netns", "exec", host.name, "curl", "-s", "-o", "/dev/null",
            "-w", "%{http_code}", f"http://{host.ip}/"]  # fmt: skip
    assert subprocess.run(curl, capture_output=True, text=True, timeout=20).stdout == "404"


def _nft_tables(host: Host) -> str:
    if shutil.which("nft") is None:
        return ""
    return sh("nft", "list", "tables", netns=host.name, check=False)


def _processes_naming(path: str) -> list[str]:
    out = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(path.encode() in a for a in argv):
            out.append(f"{proc.name}: {b' '.join(argv)[:200]!r}")
    return out


def test_killall_leaves_nothing_behind(node: Node) -> None:
    kubectl, host = node.kubectl, node.host
    kubectl("apply", "-f", "-", input=_pod("sleeper", host.name))
    _wait_running(kubectl, "sleeper")
    data = str(host.data_dir.resolve())
    # the node as it runs: processes, mounts, the bridge and a veth, routes, chains
    assert _processes_naming(data)
    assert any(f" {data}/" in line for line in Path("/proc/mounts").read_text().splitlines())
    links = sh("ip", "-o", "link", netns=host.name)
    assert "cni0" in links and "veth" in links
    # kube-proxy's rules: the nftables kube-proxy table, or KUBE- chains in iptables mode
    assert "KUBE-" in sh("iptables-save", netns=host.name) or "kube-proxy" in _nft_tables(host)
    a_pid = os.getpid()  # this test's own process is not the node's

    out = subprocess.run(
        ["nsenter", f"--net=/run/netns/{host.name}", sys.executable, "-m", "pyk8s", "killall",
         "--data-dir", str(host.data_dir)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert re.match(r"stopped \d+ processes and [1-9]\d* containers", out.stdout), out.stdout

    assert node.proc.wait(timeout=10) is not None
    assert _processes_naming(data) == []
    assert os.getpid() == a_pid
    assert [line for line in Path("/proc/mounts").read_text().splitlines() if data in line] == []
    links = sh("ip", "-o", "link", netns=host.name)
    assert {m.split(":")[0] for m in re.findall(r"^\d+: ([^:@]+)", links, re.M)} == {"lo", "eth0"}
    routes = sh("ip", "route", "show", netns=host.name)
    assert "proto 201" not in routes and "10.42." not in routes and "cni0" not in routes
    assert "proto 201" not in sh("ip", "rule", "show", netns=host.name)
    rules = sh("iptables-save", netns=host.name)
    assert "KUBE-" not in rules and "CNI-" not in rules and "pyk8s" not in rules
    assert "kube-proxy" not in _nft_tables(host)
    assert "pyk8s-netpol" not in _nft_tables(host)
