"""``pyk8s server`` runs its cloud controllers in the controller manager's process.

As k3s embeds its cloud controller: no ``cloud-controller-manager`` child, yet the
controllers hold their own Lease (``kube-system/cloud-controller-manager``), write with
their own client (the field manager of a Service's finalizer, the source of its Events),
and count their reconciles on the controller manager's /metrics.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

from tests.e2e_sim.conftest import Cluster, child_pid


def _cm_port(pid: int) -> int:
    """The controller manager's /metrics port, from its command line
    (``--secure-port N``, as the test server passes it through)."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().split()
    return int(argv[argv.index("--secure-port") + 1])


def test_the_cloud_controllers_run_in_the_controller_manager(cluster: Cluster, ns: str) -> None:
    assert cluster.server.proc is not None
    server = cluster.server.proc.pid
    cm = cluster.wait(lambda: child_pid(server, "controller-manager"))
    assert child_pid(server, "cloud-controller-manager") is None

    # each leader election writes its Lease once its process is up: wait for both
    def holders() -> dict[str, Any]:
        leases = cluster.kubectl.json("get", "leases", "-n", "kube-system")["items"]
        got = {item["metadata"]["name"]: item["spec"].get("holderIdentity") for item in leases}
        return (
            got
            if got.get("kube-controller-manager") and got.get("cloud-controller-manager")
            else {}
        )

    held = cluster.wait(holders)
    assert held.get("kube-controller-manager")
    assert held.get("cloud-controller-manager")

    cluster.kubectl("create", "service", "loadbalancer", "lb", "--tcp", "8080:80", "-n", ns)

    def writers() -> set[str]:
        """Who wrote the Service once the service controller has taken it (its
        cleanup finalizer, as upstream's adds before it makes the load balancer)."""
        svc = cluster.kubectl.json("get", "service", "lb", "-n", ns, "--show-managed-fields")
        meta: dict[str, Any] = svc["metadata"]
        if "service.kubernetes.io/load-balancer-cleanup" not in meta.get("finalizers", []):
            return set()
        return {f["manager"] for f in meta.get("managedFields") or []}

    assert "cloud-controller-manager" in cluster.wait(writers)

    # the Event is queued by the controller's recorder and written apart from the finalizer
    def ensuring() -> list[dict[str, Any]]:
        events = cluster.kubectl.json("get", "events", "-n", ns)["items"]
        return [e for e in events if e["reason"] == "EnsuringLoadBalancer"]

    assert cluster.wait(ensuring)[0]["source"]["component"] == "cloud-controller-manager"

    url = f"http://127.0.0.1:{_cm_port(cm)}/metrics"

    def reconciled() -> bool:
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
        return 'controller_runtime_reconcile_total{controller="service-lb-controller"' in text

    assert cluster.wait(reconciled)
