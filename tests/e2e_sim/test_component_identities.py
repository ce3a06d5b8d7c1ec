"""Each component ``pyk8s server`` supervises runs as its own user, not as the admin.

The scheduler of this cluster holds only ``system:kube-scheduler``'s certificate and still
schedules pods (upstream's bootstrap policy grants it what it needs), the controller
manager only ``system:kube-controller-manager``'s (its controllers write as their own
service accounts, so every workload test here runs through them); the proxy and DNS
credentials ``pyk8s server`` writes for its node are checked with kubectl: who they are
(``kubectl auth whoami``, a SelfSubjectReview) and what upstream's policy lets them do.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.e2e_sim.conftest import Cluster
from tests.integration.conftest import Kubectl, free_port


def _cred(cluster: Cluster, component: str) -> Kubectl:
    path = cluster.server.data_dir / "server" / "cred" / f"{component}.kubeconfig"
    assert path.stat().st_mode & 0o777 == 0o600
    return Kubectl(path)


@pytest.mark.parametrize(
    ("component", "user", "group"),
    [
        ("scheduler", "system:kube-scheduler", "system:authenticated"),
        ("proxy", "system:kube-proxy", "system:authenticated"),
        ("dns", "system:serviceaccount:kube-system:coredns", "system:serviceaccounts"),
        ("controller-manager", "system:kube-controller-manager", "system:authenticated"),
        (
            "cloud-controller-manager",
            "system:serviceaccount:kube-system:cloud-controller-manager",
            "system:serviceaccounts",
        ),
        (
            "metrics-server",
            "system:serviceaccount:kube-system:metrics-server",
            "system:serviceaccounts",
        ),
    ],
)
def test_each_component_is_its_own_user(
    cluster: Cluster, component: str, user: str, group: str
) -> None:
    review = json.loads(_cred(cluster, component)("auth", "whoami", "-o", "json"))
    info = review["status"]["userInfo"]
    assert info["username"] == user
    assert group in info["groups"]
    assert "system:masters" not in info["groups"]


@pytest.mark.parametrize(
    ("component", "allowed", "denied"),
    [
        (
            "scheduler",
            [("create", "pods --subresource=binding"), ("list", "nodes"),
             ("patch", "pods --subresource=status"), ("list", "persistentvolumeclaims"),
             ("create", "events.events.k8s.io")],
            [("list", "secrets"), ("create", "pods"), ("delete", "nodes")],
        ),
        (
            "proxy",
            [("watch", "endpointslices.discovery.k8s.io"), ("list", "services"),
             ("get", "nodes")],
            [("list", "secrets"), ("create", "pods"), ("update", "services")],
        ),
        (
            "dns",
            [("watch", "endpointslices.discovery.k8s.io"), ("list", "services"),
             ("list", "namespaces")],
            [("get", "secrets"), ("create", "services"), ("list", "nodes")],
        ),
        (
            # the controllers write as their own service accounts
            "controller-manager",
            [("list", "pods"), ("watch", "deployments.apps"), ("create", "serviceaccounts"),
             ("create", "serviceaccounts --subresource=token")],
            [("create", "pods"), ("delete", "nodes"), ("update", "deployments.apps")],
        ),
        (
            # k3s's cloud-controller-manager role
            "cloud-controller-manager",
            [("delete", "nodes"), ("patch", "services --subresource=status"),
             ("update", "leases.coordination.k8s.io")],
            [("get", "secrets"), ("create", "pods"), ("delete", "services")],
        ),
        (
            # metrics-server's manifest: what it serves, delegated authorization
            "metrics-server",
            [("get", "nodes --subresource=metrics"), ("watch", "pods"),
             ("create", "subjectaccessreviews.authorization.k8s.io")],
            [("get", "secrets"), ("create", "apiservices.apiregistration.k8s.io"),
             ("update", "services")],
        ),
    ],
)  # fmt: skip
def test_each_component_may_do_what_it_needs_and_no_more(
    cluster: Cluster,
    component: str,
    allowed: list[tuple[str, str]],
    denied: list[tuple[str, str]],
) -> None:
    kubectl = _cred(cluster, component)
    for verb, resource in allowed:
        out = kubectl.run("auth", "can-i", verb, *resource.split(), "-A", check=False)
        assert out.stdout.strip() == "yes", (component, verb, resource, out.stderr)
    for verb, resource in denied:
        out = kubectl.run("auth", "can-i", verb, *resource.split(), "-A", check=False)
        assert out.stdout.strip() == "no", (component, verb, resource)


def test_no_child_of_the_server_runs_as_the_admin(cluster: Cluster) -> None:
    """Every component ``pyk8s server`` starts has a kubeconfig of its own."""
    assert cluster.server.proc is not None
    ps = subprocess.run(["ps", "-eww", "-o", "pid=,ppid=,args="], capture_output=True,
                        text=True, check=True)  # fmt: skip
    procs = [line.split(None, 2) for line in ps.stdout.splitlines()]
    # forked by the server's zygote (pyk8s.server.zygote), or exec'ed by the server
    parents = {str(cluster.server.proc.pid)}
    parents |= {pid for pid, ppid, args in procs if ppid in parents and " zygote" in args}
    children = [args for _pid, ppid, args in procs
                if ppid in parents and " zygote" not in args]  # fmt: skip
    # the controller manager (with the cloud controllers and the scheduler,
    # pyk8s.server.cohost), metrics-server
    assert len(children) >= 2, children
    cred = str(cluster.server.data_dir / "server" / "cred")
    assert all(f"--kubeconfig {cred}/" in line for line in children), children
    # the components run inside another's process are given their own kubeconfig too
    guests = [arg for line in children for arg in line.split("--embedded-")[1:]]
    assert any(arg.startswith("scheduler-arg=") for arg in guests), children
    for guest in {arg.split("-arg=")[0] for arg in guests}:
        own = f"--embedded-{guest}-arg=--kubeconfig --embedded-{guest}-arg={cred}/"
        assert any(own in line for line in children), (guest, children)


def test_the_scheduler_runs_with_its_own_credentials(cluster: Cluster) -> None:
    cred = cluster.server.data_dir / "server" / "cred" / "scheduler.kubeconfig"
    ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True, check=True)
    # it runs in the controller manager's process (pyk8s.server.cohost), with its argv
    flag = "--embedded-scheduler-arg="
    own = [line for line in ps.stdout.splitlines() if f"{flag}--kubeconfig {flag}{cred}" in line]
    assert own and all(" controller-manager " in line for line in own), own
    admin = str(cluster.server.kubeconfig)
    assert not [line for line in ps.stdout.splitlines() if f"{flag}{admin}" in line]
    # ... and still schedules: a pod gets a node
    ns = "identities"
    cluster.kubectl.run("create", "namespace", ns, check=False)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "scheduled", "namespace": ns},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    node = cluster.wait(
        lambda: cluster.kubectl.json("-n", ns, "get", "pod", "scheduled")["spec"].get("nodeName")
    )
    assert node


def test_dns_serves_and_publishes_kube_dns_with_its_own_credentials(
    cluster: Cluster, tmp_path: Path
) -> None:
    """``pyk8s dns`` with the credentials ``pyk8s server`` wrote for it: it publishes
    kube-system/kube-dns and answers for a Service (the addresses are the test's own)."""
    import dns.exception
    import dns.message
    import dns.query

    port, health_port = free_port(), free_port()
    cred = cluster.server.data_dir / "server" / "cred" / "dns.kubeconfig"
    log = tmp_path / "dns.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pyk8s", "dns", "--kubeconfig", str(cred),
             "--bind-address", "127.0.0.1", "--port", str(port),
             "--health-bind-address", "127.0.0.1", "--health-port", str(health_port),
             "--cluster-ip", "10.43.0.10", "--advertise-address", "127.0.0.1",
             "--node-name", "dns-identity-node"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        ns = "dns-identity"
        cluster.kubectl.run("create", "namespace", ns, check=False)
        cluster.kubectl("-n", ns, "create", "service", "clusterip", "web", "--tcp=80:80")
        ip = cluster.kubectl.json("-n", ns, "get", "service", "web")["spec"]["clusterIP"]

        def answer() -> str:
            assert proc.poll() is None, log.read_text()
            query = dns.message.make_query(f"web.{ns}.svc.cluster.local", "A")
            try:
                reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=1)
            except dns.exception.Timeout:
                return ""  # not listening yet
            return " ".join(str(rr) for rrset in reply.answer for rr in rrset)

        assert cluster.wait(answer, within=30) == ip
        # CoreDNS's health and ready plugins' paths (both on the one health port here)
        for path in ("/health", "/ready"):
            url = f"http://127.0.0.1:{health_port}{path}"
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url) as r:
                assert (r.status, r.read()) == (200, b"OK")

        def published() -> str:
            assert proc.poll() is None, log.read_text()
            out = cluster.kubectl.run(
                "-n", "kube-system", "get", "endpointslice", "kube-dns-dns-identity-node",
                "-o", "json",
                check=False,
            )  # fmt: skip
            return out.stdout

        slice_json = cluster.wait(published, within=30)
        assert json.loads(slice_json)["endpoints"][0]["addresses"] == ["127.0.0.1"]
        assert "Forbidden" not in log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
