"""Two kubelet identities against one API server: the Node authorizer and NodeRestriction.

Each node is a client certificate from the cluster CA for ``system:node:<name>`` in
``system:nodes`` (what a kubelet holds after its TLS bootstrap); pods are bound to the
nodes directly (``spec.nodeName``), as the scheduler would. What each node may read and
write is checked with the real kubectl and the official Python client, against
upstream's texts.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from pyk8s.apiserver.certs import Pki, issue_client_cert, write_kubeconfig
from tests.integration.conftest import Kubectl, Server

NodeClient = tuple[str, Kubectl, Any]


def _apply(kubectl: Kubectl, *objs: dict[str, Any], ns: str = "default") -> None:
    items = json.dumps({"apiVersion": "v1", "kind": "List", "items": objs})
    kubectl("-n", ns, "apply", "-f", "-", input=items)


@pytest.fixture
def make_node(server: Server, kubectl: Kubectl, tmp_path: Path) -> Callable[[], NodeClient]:
    """A Node object and a kubelet's credentials for it: (name, kubectl, Python client)."""
    pki = Pki.at(server.data_dir / "server" / "tls")

    def make() -> NodeClient:
        name = f"node-{uuid.uuid4().hex[:6]}"
        _apply(kubectl, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
        path = tmp_path / f"{name}.kubeconfig"
        cert = issue_client_cert(pki, f"system:node:{name}", ["system:nodes"])
        write_kubeconfig(path, server=server.url, pki=pki, client_cert=cert)
        return name, Kubectl(path), config.new_client_from_config(str(path))

    return make


def _pod(name: str, node: str, secret: str, configmap: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "env": [
                        {
                            "name": "CM",
                            "valueFrom": {"configMapKeyRef": {"name": configmap, "key": "k"}},
                        }
                    ],
                    "volumeMounts": [{"name": "s", "mountPath": "/s"}],
                }
            ],
            "volumes": [{"name": "s", "secret": {"secretName": secret}}],
        },
    }


@pytest.fixture
def two_nodes(
    kubectl: Kubectl, ns: str, make_node: Callable[[], NodeClient]
) -> tuple[NodeClient, NodeClient]:
    """Nodes a and b, each running one pod that mounts its own secret and configmap."""
    a, b = make_node(), make_node()
    for node, tag in ((a[0], "a"), (b[0], "b")):
        _apply(
            kubectl,
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"secret-{tag}"},
             "stringData": {"k": tag}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{tag}"},
             "data": {"k": tag}},
            _pod(f"pod-{tag}", node, f"secret-{tag}", f"cm-{tag}"),
            ns=ns,
        )  # fmt: skip
    return a, b


def _forbidden(kubectl: Kubectl, *args: str) -> str:
    out = kubectl.run(*args, check=False)
    assert out.returncode != 0, out.stdout
    return out.stderr.strip()


def test_a_node_reads_only_the_secrets_and_configmaps_of_its_own_pods(
    ns: str, two_nodes: tuple[NodeClient, NodeClient]
) -> None:
    (a, kubectl_a, _), _ = two_nodes
    assert kubectl_a("-n", ns, "get", "secret", "secret-a", "-o", "name") == "secret/secret-a\n"
    assert kubectl_a("-n", ns, "get", "configmap", "cm-a", "-o", "name") == "configmap/cm-a\n"
    assert _forbidden(kubectl_a, "-n", ns, "get", "secret", "secret-b") == (
        f'Error from server (Forbidden): secrets "secret-b" is forbidden: User "system:node:{a}" '
        f'cannot get resource "secrets" in API group "" in the namespace "{ns}": '
        f"no relationship found between node '{a}' and this object"
    )
    assert _forbidden(kubectl_a, "-n", ns, "get", "configmap", "cm-b") == (
        f'Error from server (Forbidden): configmaps "cm-b" is forbidden: User "system:node:{a}" '
        f'cannot get resource "configmaps" in API group "" in the namespace "{ns}": '
        f"no relationship found between node '{a}' and this object"
    )
    # listing every secret is not reading one named object
    assert _forbidden(kubectl_a, "-n", ns, "get", "secrets") == (
        f'Error from server (Forbidden): secrets is forbidden: User "system:node:{a}" cannot '
        f'list resource "secrets" in API group "" in the namespace "{ns}": No Object name found'
    )
    # a watch of the one secret by name is (what a kubelet's secret manager does)
    selected = kubectl_a(
        "-n", ns, "get", "secrets", "--field-selector", "metadata.name=secret-a", "-o", "name"
    )
    assert selected == "secret/secret-a\n"


def test_the_graph_follows_pods_coming_and_going(
    kubectl: Kubectl, ns: str, two_nodes: tuple[NodeClient, NodeClient]
) -> None:
    (a, kubectl_a, _), _ = two_nodes
    _apply(kubectl, _pod("pod-b-on-a", a, "secret-b", "cm-b"), ns=ns)
    kubectl_a("-n", ns, "get", "secret", "secret-b")  # now a pod on a mounts it
    # a bound pod lingers terminating until its kubelet confirms: this one has none
    kubectl("-n", ns, "delete", "pod", "pod-b-on-a", "--grace-period=0", "--force")
    deadline = time.monotonic() + 30
    while kubectl_a.run("-n", ns, "get", "secret", "secret-b", check=False).returncode == 0:
        assert time.monotonic() < deadline, "node a still reads secret-b after its pod left"
        time.sleep(0.1)
    assert "no relationship found" in _forbidden(kubectl_a, "-n", ns, "get", "secret", "secret-b")


def test_a_node_reads_only_its_own_node_and_pods(
    ns: str, two_nodes: tuple[NodeClient, NodeClient]
) -> None:
    (a, kubectl_a, _), (b, _, _) = two_nodes
    assert kubectl_a("get", "node", a, "-o", "name") == f"node/{a}\n"
    assert _forbidden(kubectl_a, "get", "node", b) == (
        f'Error from server (Forbidden): nodes "{b}" is forbidden: User "system:node:{a}" cannot '
        f'get resource "nodes" in API group "" at the cluster scope: '
        f"node '{a}' cannot read '{b}', only its own Node object"
    )
    mine = kubectl_a("get", "pods", "-A", "--field-selector", f"spec.nodeName={a}", "-o", "name")
    assert mine == "pod/pod-a\n"
    assert kubectl_a("-n", ns, "get", "pod", "pod-a", "-o", "name") == "pod/pod-a\n"
    assert "no relationship found" in _forbidden(kubectl_a, "-n", ns, "get", "pod", "pod-b")
    assert _forbidden(kubectl_a, "get", "pods", "-A") == (
        f'Error from server (Forbidden): pods is forbidden: User "system:node:{a}" cannot list '
        'resource "pods" in API group "" at the cluster scope: '
        "can only list/watch pods with spec.nodeName field selector"
    )


def test_a_node_patches_only_its_own_node(two_nodes: tuple[NodeClient, NodeClient]) -> None:
    (a, kubectl_a, api_a), (b, _, _) = two_nodes
    kubectl_a("label", "node", a, "example.com/rack=r1")
    kubectl_a("label", "node", a, "node.kubernetes.io/exclude-from-external-load-balancers=")
    # kubectl label and patch read the node first (refused: not its own); the Python
    # client's patch goes straight to NodeRestriction
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(api_a).patch_node(b, {"metadata": {"labels": {"example.com/x": "1"}}})
    assert err.value.status == 403
    assert json.loads(err.value.body)["message"] == (
        f'nodes "{b}" is forbidden: node "{a}" is not allowed to modify node "{b}"'
    )
    assert _forbidden(kubectl_a, "label", "node", a, "node-restriction.kubernetes.io/pool=x") == (
        f'Error from server (Forbidden): nodes "{a}" is forbidden: '
        "is not allowed to modify labels: node-restriction.kubernetes.io/pool"
    )
    assert _forbidden(kubectl_a, "taint", "node", a, "k=v:NoSchedule") == (
        f'Error from server (Forbidden): nodes "{a}" is forbidden: '
        f'node "{a}" is not allowed to modify taints'
    )


def test_a_node_updates_the_status_of_its_own_pods_only(
    ns: str, two_nodes: tuple[NodeClient, NodeClient]
) -> None:
    (a, _, api_a), _ = two_nodes
    core = client.CoreV1Api(api_a)
    status = {"status": {"phase": "Running", "message": "seen by the test"}}
    done = core.patch_namespaced_pod_status("pod-a", ns, status)
    assert done.status.phase == "Running"
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_pod_status("pod-b", ns, status)
    assert err.value.status == 403
    assert json.loads(err.value.body)["message"] == (
        f'pods "pod-b" is forbidden: node "{a}" can only update pod status for pods with '
        "spec.nodeName set to itself"
    )
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_pod_status("pod-a", ns, {"metadata": {"labels": {"app": "x"}}})
    assert json.loads(err.value.body)["message"] == (
        f'pods "pod-a" is forbidden: node "{a}" cannot update labels through pod status'
    )
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_pod("pod-b", ns)
    assert json.loads(err.value.body)["message"] == (
        f'pods "pod-b" is forbidden: node "{a}" can only delete pods with spec.nodeName set to '
        "itself"
    )


def test_a_node_creates_only_mirror_pods_of_its_own(
    ns: str, two_nodes: tuple[NodeClient, NodeClient]
) -> None:
    (a, kubectl_a, _), _ = two_nodes
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "static", "namespace": ns},
        "spec": {"nodeName": a, "containers": [{"name": "c", "image": "busybox"}]},
    }
    out = kubectl_a.run("create", "-f", "-", input=json.dumps(pod), check=False)
    assert out.stderr.strip() == (
        'Error from server (Forbidden): error when creating "STDIN": pods "static" is forbidden: '
        'pod does not have "kubernetes.io/config.mirror" annotation, '
        f'node "{a}" can only create mirror pods'
    )


def test_a_node_holds_only_its_own_lease(two_nodes: tuple[NodeClient, NodeClient]) -> None:
    (a, kubectl_a, _), (b, _, _) = two_nodes

    def lease(name: str) -> str:
        return json.dumps(
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40},
            }
        )

    kubectl_a("create", "-f", "-", input=lease(a))
    out = kubectl_a.run("create", "-f", "-", input=lease(b), check=False)
    assert out.stderr.strip() == (
        'Error from server (Forbidden): error when creating "STDIN": '
        f'leases.coordination.k8s.io "{b}" is forbidden: '
        "can only access node lease with the same name as the requesting node"
    )


def test_a_node_is_who_its_certificate_says(two_nodes: tuple[NodeClient, NodeClient]) -> None:
    (a, kubectl_a, _), _ = two_nodes
    review = json.loads(kubectl_a("auth", "whoami", "-o", "json"))
    assert review["status"]["userInfo"]["username"] == f"system:node:{a}"
    assert "system:nodes" in review["status"]["userInfo"]["groups"]
