"""Persistent storage on the control plane with simulated nodes (issue 16).

The PV binder, the protection and ephemeral-volume controllers run in the server's
controller manager; the local-path provisioner runs here, in a thread, for the three
simulated nodes (a real node runs it inside ``pyk8s kubelet``). Where a test needs a
WaitForFirstConsumer claim scheduled, it sets ``volume.kubernetes.io/selected-node`` as
the scheduler's VolumeBinding plugin does: that annotation is the contract.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.e2e_sim.conftest import Cluster, wait_until

SELECTED_NODE = "volume.kubernetes.io/selected-node"


def wait(check: Any, within: float = 60.0) -> Any:
    return wait_until(check, within, every=0.1)


COLLECTIONS = {
    "PersistentVolume": "/api/v1/persistentvolumes",
    "PersistentVolumeClaim": "/api/v1/namespaces/{ns}/persistentvolumeclaims",
    "Pod": "/api/v1/namespaces/{ns}/pods",
    "StorageClass": "/apis/storage.k8s.io/v1/storageclasses",
}


def apply(cluster: Cluster, *objs: dict[str, Any], ns: str = "") -> None:
    """Create ``objs`` through the official Python client (a kubectl process per apply
    costs seconds on a loaded machine; kubectl is exercised where its output is checked)."""
    api = api_client(cluster)
    for obj in objs:
        url = api.configuration.host + COLLECTIONS[obj["kind"]].format(ns=ns)
        resp = api.call_api(
            "POST", url, header_params={"Content-Type": "application/json"}, body=obj
        )
        resp.read()
        assert resp.status == 201, (resp.status, resp.data)


def pv(name: str, size: str, cls: str, *, policy: str = "Retain", **spec: Any) -> dict[str, Any]:
    labels = spec.pop("labels", {})
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": spec.pop("accessModes", ["ReadWriteOnce"]),
            "persistentVolumeReclaimPolicy": policy,
            "storageClassName": cls,
            "hostPath": {"path": f"/tmp/{name}"},
            **spec,
        },
    }


def pvc(name: str, size: str, cls: str | None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
        **spec,
    }
    if cls is not None:
        body["storageClassName"] = cls
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": body,
    }


def local_class(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": "pyk8s.io/local-path",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    }


PATHS = {
    "pv": "/api/v1/persistentvolumes/{name}",
    "pvc": "/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}",
    "pod": "/api/v1/namespaces/{ns}/pods/{name}",
    "sc": "/apis/storage.k8s.io/v1/storageclasses/{name}",
}
_CLIENTS: dict[Path, Any] = {}


def api_client(cluster: Cluster) -> Any:
    from kubernetes import config

    key = cluster.server.kubeconfig
    if key not in _CLIENTS:
        _CLIENTS[key] = config.new_client_from_config(str(key))
    return _CLIENTS[key]


def read(cluster: Cluster, path: str, **query: str) -> Any:
    """GET ``path`` with the official Python client's ApiClient (polls stay cheap; kubectl
    is a process per call), as a dict; None when it is not found."""
    api = api_client(cluster)
    url = api.configuration.host + path + (f"?{urlencode(query)}" if query else "")
    resp = api.call_api("GET", url, header_params={"Accept": "application/json"})
    resp.read()
    if resp.status == 404:
        return None
    assert resp.status == 200, (resp.status, resp.data)
    return json.loads(resp.data)


def get(cluster: Cluster, kind: str, name: str, ns: str = "") -> Any:
    return read(cluster, PATHS[kind].format(ns=ns, name=name))


def phase(cluster: Cluster, kind: str, name: str, ns: str = "") -> str:
    return str(get(cluster, kind, name, ns).get("status", {}).get("phase", ""))


def gone(cluster: Cluster, kind: str, name: str, ns: str = "") -> bool:
    return get(cluster, kind, name, ns) is None


def events(cluster: Cluster, ns: str, name: str) -> list[tuple[str, str, str]]:
    path = f"/api/v1/namespaces/{ns}/events"
    items = read(cluster, path, fieldSelector=f"involvedObject.name={name}")["items"]
    return [(e["type"], e["reason"], e["message"]) for e in items]


def has_event(cluster: Cluster, ns: str, name: str, reason: str, text: str = "") -> bool:
    return any(r == reason and text in m for _, r, m in events(cluster, ns, name))


def sim_pod(name: str, claim: str, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "busybox:1.36"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }


@pytest.fixture(scope="module")
def nodes(cluster: Cluster) -> list[str]:
    return sorted(n["metadata"]["name"] for n in cluster.kubectl.json("get", "nodes")["items"])


@pytest.fixture(scope="module")
def storage_dirs(
    cluster: Cluster, nodes: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Path]]:
    """The local-path provisioner for the simulated nodes, with a node's credentials
    (``system:node:<name>`` in ``system:nodes``, as a bootstrapped kubelet has: what it may
    do comes from the RBAC ``pyk8s server`` creates); the last node's base directory lies
    under a regular file, so nothing can be made there."""
    from pyk8s.apiserver.certs import Pki, issue_client_cert, write_kubeconfig
    from pyk8s.client import Client, load_config
    from pyk8s.controllers.runtime import Manager
    from pyk8s.localpath import LocalPathProvisioner

    base = tmp_path_factory.mktemp("local-path")
    (base / "blocker").write_text("not a directory")
    dirs = {n: base / n for n in nodes[:-1]}
    dirs[nodes[-1]] = base / "blocker" / nodes[-1]
    pki = Pki.at(cluster.server.data_dir / "server" / "tls")
    kubeconfig = base / "node.kubeconfig"
    cert = issue_client_cert(pki, f"system:node:{nodes[0]}", ["system:nodes"])
    write_kubeconfig(kubeconfig, server=cluster.server.url, pki=pki, client_cert=cert)
    loop = asyncio.new_event_loop()
    stop: list[asyncio.Event] = []
    started = threading.Event()

    async def main() -> None:
        stop.append(asyncio.Event())
        started.set()
        async with Client(load_config(str(kubeconfig))) as client:
            manager = Manager(client, component="pyk8s.io/local-path_sim")
            LocalPathProvisioner(manager, dirs)
            await manager.run(stop[0])

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(10)
    yield dirs
    loop.call_soon_threadsafe(stop[0].set)
    thread.join(15)


def test_static_binding_picks_the_smallest_fit_and_kubectl_columns(
    cluster: Cluster, ns: str
) -> None:
    from kubernetes import client, config

    cls = f"manual-{ns}"
    apply(
        cluster,
        pv(f"{ns}-big", "5Gi", cls, labels={"tier": "big"}),
        pv(f"{ns}-small", "1Gi", cls),
        pv(f"{ns}-rwx", "1Gi", cls, accessModes=["ReadWriteOnce", "ReadWriteMany"]),
        pv(f"{ns}-other", "1Gi", f"other-{ns}"),
    )
    apply(
        cluster,
        pvc("small", "500Mi", cls),
        pvc("sel", "1Gi", cls, selector={"matchLabels": {"tier": "big"}}),
        pvc("pre", "1Gi", cls, volumeName=f"{ns}-rwx"),
        ns=ns,
    )
    for claim in ("small", "sel", "pre"):
        wait(lambda c=claim: phase(cluster, "pvc", c, ns) == "Bound")  # type: ignore[misc]
    core = client.CoreV1Api(config.new_client_from_config(str(cluster.server.kubeconfig)))
    small = core.read_namespaced_persistent_volume_claim("small", ns)
    assert small.spec.volume_name == f"{ns}-small"
    assert small.status.capacity == {"storage": "1Gi"}
    assert small.status.access_modes == ["ReadWriteOnce"]
    assert small.metadata.annotations["pv.kubernetes.io/bind-completed"] == "yes"
    assert small.metadata.annotations["pv.kubernetes.io/bound-by-controller"] == "yes"
    assert small.metadata.finalizers == ["kubernetes.io/pvc-protection"]
    assert get(cluster, "pvc", "sel", ns)["spec"]["volumeName"] == f"{ns}-big"
    pre = get(cluster, "pvc", "pre", ns)
    assert "pv.kubernetes.io/bound-by-controller" not in pre["metadata"]["annotations"]
    volume = get(cluster, "pv", f"{ns}-small")
    assert volume["status"]["phase"] == "Bound"
    assert volume["spec"]["claimRef"]["uid"] == small.metadata.uid
    assert volume["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] == "yes"
    assert volume["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]
    assert phase(cluster, "pv", f"{ns}-other") == "Available"

    out = cluster.kubectl("get", "pv", f"{ns}-small", f"{ns}-other").splitlines()
    assert out[0].split() == [
        "NAME", "CAPACITY", "ACCESS", "MODES", "RECLAIM", "POLICY", "STATUS", "CLAIM",
        "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "REASON", "AGE",
    ]  # fmt: skip
    assert out[1].split()[:8] == [
        f"{ns}-small",
        "1Gi",
        "RWO",
        "Retain",
        "Bound",
        f"{ns}/small",
        cls,
        "<unset>",
    ]
    assert out[2].split()[:5] == [f"{ns}-other", "1Gi", "RWO", "Retain", "Available"]
    out = cluster.kubectl("get", "pvc", "small", "-n", ns).splitlines()
    assert out[0].split() == [
        "NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES", "STORAGECLASS",
        "VOLUMEATTRIBUTESCLASS", "AGE",
    ]  # fmt: skip
    assert out[1].split()[:7] == ["small", "Bound", f"{ns}-small", "1Gi", "RWO", cls, "<unset>"]

    # Retain: the released volume keeps its claimRef and is not reused
    cluster.kubectl("delete", "pvc", "small", "-n", ns, "--wait=false")
    wait(lambda: phase(cluster, "pv", f"{ns}-small") == "Released")
    assert gone(cluster, "pvc", "small", ns)
    apply(cluster, pvc("again", "500Mi", cls), ns=ns)
    wait(lambda: has_event(cluster, ns, "again", "ProvisioningFailed"))
    assert phase(cluster, "pvc", "again", ns) == "Pending"
    assert phase(cluster, "pv", f"{ns}-small") == "Released"


def test_unsatisfiable_claims_and_failed_reclaim(cluster: Cluster, ns: str) -> None:
    apply(cluster, pvc("nothing", "100Gi", ""), pvc("noclass", "1Gi", "missing-class"), ns=ns)
    wait(
        lambda: has_event(
            cluster,
            ns,
            "nothing",
            "FailedBinding",
            "no persistent volumes available for this claim and no storage class is set",
        )
    )
    wait(
        lambda: has_event(
            cluster,
            ns,
            "noclass",
            "ProvisioningFailed",
            'storageclass.storage.k8s.io "missing-class" not found',
        )
    )
    assert phase(cluster, "pvc", "nothing", ns) == "Pending"
    # a volume that fits, made later, is found without the claim changing
    apply(cluster, pv(f"{ns}-late", "100Gi", ""))
    wait(lambda: phase(cluster, "pvc", "nothing", ns) == "Bound")
    assert get(cluster, "pvc", "nothing", ns)["spec"]["volumeName"] == f"{ns}-late"

    # reclaim Delete on a volume no provisioner made: Failed, as upstream has no deleter
    cls = f"del-{ns}"
    apply(cluster, pv(f"{ns}-del", "1Gi", cls, policy="Delete"))
    apply(cluster, pvc("del", "1Gi", cls), ns=ns)
    wait(lambda: phase(cluster, "pvc", "del", ns) == "Bound")
    cluster.kubectl("delete", "pvc", "del", "-n", ns)
    wait(lambda: phase(cluster, "pv", f"{ns}-del") == "Failed")
    volume = get(cluster, "pv", f"{ns}-del")
    assert "no deletable volume plugin matched" in volume["status"]["message"]
    cluster.kubectl("delete", "pv", f"{ns}-del")


def test_wait_for_first_consumer_local_path_provisioning(
    cluster: Cluster, ns: str, nodes: list[str], storage_dirs: dict[str, Path]
) -> None:
    cls = f"lp-{ns}"
    apply(cluster, local_class(cls))
    out = cluster.kubectl("get", "sc", cls).split("\n")
    assert out[0].split() == [
        "NAME",
        "PROVISIONER",
        "RECLAIMPOLICY",
        "VOLUMEBINDINGMODE",
        "ALLOWVOLUMEEXPANSION",
        "AGE",
    ]
    assert out[1].split()[:5] == [cls, "pyk8s.io/local-path", "Delete", "WaitForFirstConsumer",
                                  "false"]  # fmt: skip
    apply(cluster, pvc("data", "2Gi", cls), pvc("bad", "1Gi", cls), ns=ns)
    wait(
        lambda: has_event(
            cluster,
            ns,
            "data",
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding",
        )
    )
    # a pod names it: the claim now waits for that pod to be scheduled
    pod = sim_pod("user", "data", "")
    del pod["spec"]["nodeName"]
    pod["spec"]["nodeSelector"] = {"no-such-node": "x"}
    apply(cluster, pod, ns=ns)
    wait(
        lambda: has_event(
            cluster, ns, "data", "WaitForPodScheduled", "waiting for pod user to be scheduled"
        )
    )
    assert phase(cluster, "pvc", "data", ns) == "Pending"

    node = nodes[0]
    cluster.kubectl("annotate", "pvc", "data", "-n", ns, f"{SELECTED_NODE}={node}")
    wait(lambda: phase(cluster, "pvc", "data", ns) == "Bound")
    claim = get(cluster, "pvc", "data", ns)
    name = f"pvc-{claim['metadata']['uid']}"
    assert claim["spec"]["volumeName"] == name
    ann = claim["metadata"]["annotations"]
    assert ann["volume.kubernetes.io/storage-provisioner"] == "pyk8s.io/local-path"
    assert ann["volume.beta.kubernetes.io/storage-provisioner"] == "pyk8s.io/local-path"
    volume = get(cluster, "pv", name)
    assert volume["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == (
        "pyk8s.io/local-path"
    )
    assert volume["spec"]["hostPath"]["path"] == str(storage_dirs[node] / name)
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert volume["spec"]["capacity"] == {"storage": "2Gi"}
    term = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]
    assert term["matchExpressions"] == [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
    ]
    assert (storage_dirs[node] / name).is_dir()
    reasons = [r for _, r, _ in events(cluster, ns, "data")]
    assert {"ExternalProvisioning", "Provisioning", "ProvisioningSucceeded"} <= set(reasons)

    # a directory that cannot be made: ProvisioningFailed, and no volume
    bad_node = nodes[-1]
    cluster.kubectl("annotate", "pvc", "bad", "-n", ns, f"{SELECTED_NODE}={bad_node}")
    wait(lambda: has_event(cluster, ns, "bad", "ProvisioningFailed", "cannot create directory"))
    bad_uid = get(cluster, "pvc", "bad", ns)["metadata"]["uid"]
    assert gone(cluster, "pv", f"pvc-{bad_uid}")
    assert phase(cluster, "pvc", "bad", ns) == "Pending"

    # released with reclaim Delete: the provisioner removes the directory, then the PV
    cluster.kubectl("delete", "pod", "user", "-n", ns)
    cluster.kubectl("delete", "pvc", "data", "bad", "-n", ns)
    wait(lambda: gone(cluster, "pv", name))
    assert not (storage_dirs[node] / name).exists()


def test_protection_keeps_claims_and_volumes_in_use(
    cluster: Cluster, ns: str, nodes: list[str]
) -> None:
    cls = f"prot-{ns}"
    apply(cluster, pv(f"{ns}-a", "1Gi", cls), pv(f"{ns}-b", "1Gi", cls))
    apply(cluster, pvc("used", "1Gi", cls), pvc("unused", "1Gi", cls), ns=ns)
    for claim in ("used", "unused"):
        wait(lambda c=claim: phase(cluster, "pvc", c, ns) == "Bound")  # type: ignore[misc]
    apply(cluster, sim_pod("app", "used", nodes[0]), ns=ns)
    wait(lambda: phase(cluster, "pod", "app", ns) == "Running")
    used_pv = get(cluster, "pvc", "used", ns)["spec"]["volumeName"]

    # a bound volume is not removed under its claim either
    cluster.kubectl("delete", "pv", used_pv, "--wait=false")
    cluster.kubectl("delete", "pvc", "used", "unused", "-n", ns, "--wait=false")
    wait(lambda: gone(cluster, "pvc", "unused", ns))  # the controller looked
    row = cluster.kubectl("get", "pvc", "used", "-n", ns, "--no-headers").split()
    assert row[:2] == ["used", "Terminating"]
    assert get(cluster, "pv", used_pv)["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]

    cluster.kubectl("delete", "pod", "app", "-n", ns, "--wait=false")
    wait(lambda: gone(cluster, "pvc", "used", ns))
    wait(lambda: gone(cluster, "pv", used_pv))  # released, then let go


def test_generic_ephemeral_volume_gets_a_claim_owned_by_its_pod(cluster: Cluster, ns: str) -> None:
    template = {
        "metadata": {"labels": {"kind": "scratch"}},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "storageClassName": "",
        },
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "eph"},
        "spec": {
            "nodeSelector": {"no-such-node": "x"},
            "containers": [{"name": "c", "image": "busybox:1.36"}],
            "volumes": [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": template}}],
        },
    }
    apply(cluster, pod, ns=ns)
    claim = wait(
        lambda: (
            not gone(cluster, "pvc", "eph-scratch", ns) and get(cluster, "pvc", "eph-scratch", ns)
        )
    )
    pod_uid = get(cluster, "pod", "eph", ns)["metadata"]["uid"]
    assert claim["metadata"]["labels"] == {"kind": "scratch"}
    [owner] = claim["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "Pod",
        "eph",
        pod_uid,
        True,
    )
    cluster.kubectl("delete", "pod", "eph", "-n", ns)
    wait(lambda: gone(cluster, "pvc", "eph-scratch", ns))


def test_server_makes_local_path_the_default_class(cluster: Cluster, ns: str) -> None:
    sc = get(cluster, "sc", "local-path")
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert (sc["provisioner"], sc["reclaimPolicy"], sc["volumeBindingMode"]) == (
        "pyk8s.io/local-path",
        "Delete",
        "WaitForFirstConsumer",
    )
    assert cluster.kubectl("get", "sc", "local-path", "--no-headers").split()[:3] == [
        "local-path",
        "(default)",
        "pyk8s.io/local-path",
    ]
    # DefaultStorageClass: no class named gets the default; "" is a choice of no class
    apply(cluster, pvc("plain", "1Gi", None), pvc("none", "1Gi", ""), ns=ns)
    assert get(cluster, "pvc", "plain", ns)["spec"]["storageClassName"] == "local-path"
    assert get(cluster, "pvc", "none", ns)["spec"]["storageClassName"] == ""
