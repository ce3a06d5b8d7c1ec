"""The real kubectl (v1.32) against a pyk8s API server: what a user types, what they see."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import Kubectl, Server

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: busybox:1.36
        ports: [{containerPort: 80}]
      - name: sidecar
        image: busybox:1.36
"""


def test_discovery_and_versions(kubectl: Kubectl) -> None:
    version = json.loads(kubectl("version", "-o", "json"))
    assert version["serverVersion"]["major"] == "1"
    assert version["serverVersion"]["minor"] == "32"
    resources = kubectl("api-resources")
    header = resources.splitlines()[0].split()
    assert header == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    lines = {line.split()[0]: line.split() for line in resources.splitlines()[1:]}
    assert lines["pods"] == ["pods", "po", "v1", "true", "Pod"]
    assert lines["deployments"] == ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    assert lines["nodes"] == ["nodes", "no", "v1", "false", "Node"]
    versions = kubectl("api-versions").split()
    for gv in (
        "v1",
        "apps/v1",
        "batch/v1",
        "autoscaling/v2",
        "autoscaling/v1",
        "networking.k8s.io/v1",
        "rbac.authorization.k8s.io/v1",
        "policy/v1",
        "coordination.k8s.io/v1",
        "discovery.k8s.io/v1",
        "events.k8s.io/v1",
    ):
        assert gv in versions


def test_bootstrap_objects(kubectl: Kubectl) -> None:
    names = kubectl("get", "namespaces", "-o", "name").split()
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert f"namespace/{ns}" in names
    svc = kubectl.json("get", "service", "kubernetes", "-n", "default")
    assert svc["spec"]["clusterIP"] == "10.43.0.1"
    assert svc["spec"]["ports"][0]["port"] == 443


def test_create_get_and_output_formats(kubectl: Kubectl, ns: str) -> None:
    out = kubectl(
        "create", "configmap", "settings", "-n", ns, "--from-literal=a=1", "--from-literal=b=2"
    )
    assert out.strip() == "configmap/settings created"
    cm = kubectl.json("get", "configmap", "settings", "-n", ns)
    assert cm["data"] == {"a": "1", "b": "2"}
    meta = cm["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and int(meta["resourceVersion"]) > 0
    as_yaml = yaml.safe_load(kubectl("get", "cm", "settings", "-n", ns, "-o", "yaml"))
    assert as_yaml["data"] == cm["data"]
    assert kubectl("get", "cm", "settings", "-n", ns, "-o", "name").strip() == "configmap/settings"
    table = kubectl("get", "cm", "settings", "-n", ns).splitlines()
    assert table[0].split() == ["NAME", "DATA", "AGE"]
    assert table[1].split()[:2] == ["settings", "2"]
    assert kubectl("get", "cm", "settings", "-n", ns, "-o", "jsonpath={.data.b}") == "2"
    cols = kubectl(
        "get", "cm", "-n", ns, "-o", "custom-columns=NAME:.metadata.name,A:.data.a"
    ).splitlines()
    assert cols[0].split() == ["NAME", "A"]
    assert cols[1].split() == ["settings", "1"]


def test_deployment_apply_merges_containers_by_name(
    kubectl: Kubectl, ns: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(DEPLOYMENT)
    assert kubectl("apply", "-n", ns, "-f", str(manifest)).strip() == "deployment.apps/web created"
    d = kubectl.json("get", "deploy", "web", "-n", ns)
    assert d["metadata"]["generation"] == 1
    assert d["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": "25%"}
    assert "kubectl.kubernetes.io/last-applied-configuration" in d["metadata"]["annotations"]
    # change one container's image and drop the sidecar: apply merges by name
    changed = yaml.safe_load(DEPLOYMENT)
    changed["spec"]["template"]["spec"]["containers"] = [
        {"name": "web", "image": "busybox:1.37", "ports": [{"containerPort": 80}]}
    ]
    manifest.write_text(yaml.safe_dump(changed))
    assert (
        kubectl("apply", "-n", ns, "-f", str(manifest)).strip() == "deployment.apps/web configured"
    )
    d2 = kubectl.json("get", "deploy", "web", "-n", ns)
    containers = d2["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("web", "busybox:1.37")]
    assert d2["metadata"]["generation"] == 2
    # re-applying the same manifest changes nothing
    assert (
        kubectl("apply", "-n", ns, "-f", str(manifest)).strip() == "deployment.apps/web unchanged"
    )
    assert (
        kubectl.json("get", "deploy", "web", "-n", ns)["metadata"]["resourceVersion"]
        == d2["metadata"]["resourceVersion"]
    )


def test_label_annotate_patch_scale(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(DEPLOYMENT)
    kubectl("create", "-n", ns, "-f", str(tmp_path / "d.yaml"))
    kubectl("label", "deploy", "web", "-n", ns, "tier=frontend")
    kubectl("annotate", "deploy", "web", "-n", ns, "owner=team-a")
    d = kubectl.json("get", "deploy", "web", "-n", ns)
    assert d["metadata"]["labels"]["tier"] == "frontend"
    assert d["metadata"]["annotations"]["owner"] == "team-a"
    assert (
        kubectl("get", "deploy", "-n", ns, "-l", "tier=frontend", "-o", "name").strip()
        == "deployment.apps/web"
    )
    assert kubectl("get", "deploy", "-n", ns, "-l", "tier!=frontend", "-o", "name").strip() == ""
    kubectl("label", "deploy", "web", "-n", ns, "tier-")
    assert "tier" not in kubectl.json("get", "deploy", "web", "-n", ns)["metadata"]["labels"]
    # strategic merge (default), merge and json patches
    kubectl(
        "patch",
        "deploy",
        "web",
        "-n",
        ns,
        "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:2"}]}}}}',
    )
    containers = kubectl.json("get", "deploy", "web", "-n", ns)["spec"]["template"]["spec"][
        "containers"
    ]
    assert {c["name"]: c["image"] for c in containers} == {
        "web": "busybox:1.36",
        "sidecar": "busybox:2",
    }
    kubectl(
        "patch",
        "deploy",
        "web",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"metadata":{"labels":{"merged":"yes"}}}',
    )
    kubectl(
        "patch",
        "deploy",
        "web",
        "-n",
        ns,
        "--type=json",
        "-p",
        '[{"op":"replace","path":"/spec/replicas","value":4}]',
    )
    d = kubectl.json("get", "deploy", "web", "-n", ns)
    assert d["metadata"]["labels"]["merged"] == "yes"
    assert d["spec"]["replicas"] == 4
    assert (
        kubectl("scale", "deploy", "web", "-n", ns, "--replicas=1").strip()
        == "deployment.apps/web scaled"
    )
    assert kubectl.json("get", "deploy", "web", "-n", ns)["spec"]["replicas"] == 1


def test_edit_with_an_editor_script(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    kubectl("create", "configmap", "edited", "-n", ns, "--from-literal=k=old")
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/k: old/k: new/' \"$1\"\n")
    editor.chmod(editor.stat().st_mode | stat.S_IEXEC)
    out = kubectl("edit", "cm", "edited", "-n", ns, env={"KUBE_EDITOR": str(editor)})
    assert out.strip() == "configmap/edited edited"
    assert kubectl.json("get", "cm", "edited", "-n", ns)["data"]["k"] == "new"


def test_invalid_objects_get_upstream_messages(kubectl: Kubectl, ns: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad"},
        "spec": {"containers": [{"name": "c"}]},
    }
    out = kubectl.run("create", "-n", ns, "-f", "-", input=json.dumps(pod), check=False)
    assert out.returncode == 1
    assert 'The Pod "bad" is invalid: spec.containers[0].image: Required value' in out.stderr
    assert kubectl.run("get", "pod", "bad", "-n", ns, check=False).returncode == 1

    out = kubectl.run("get", "pod", "missing", "-n", ns, check=False)
    assert 'Error from server (NotFound): pods "missing" not found' in out.stderr

    kubectl("create", "configmap", "dup", "-n", ns)
    out = kubectl.run("create", "configmap", "dup", "-n", ns, check=False)
    assert 'configmaps "dup" already exists' in out.stderr

    bad_name = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}}
    out = kubectl.run("create", "-n", ns, "-f", "-", input=json.dumps(bad_name), check=False)
    assert 'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name"' in out.stderr


def test_unknown_fields_and_strict_validation(kubectl: Kubectl, ns: str) -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "strict"},
        "data": {"a": "1"},
        "bogus": True,
    }
    out = kubectl.run("create", "-n", ns, "-f", "-", input=json.dumps(cm), check=False)
    assert out.returncode == 1
    assert 'unknown field "bogus"' in out.stderr
    out = kubectl.run("create", "-n", ns, "--validate=warn", "-f", "-", input=json.dumps(cm))
    assert 'unknown field "bogus"' in out.stderr
    assert "bogus" not in kubectl.json("get", "cm", "strict", "-n", ns)


def test_dry_run_server_writes_nothing(kubectl: Kubectl, ns: str) -> None:
    out = kubectl("create", "configmap", "ghost", "-n", ns, "--dry-run=server", "-o", "json")
    assert json.loads(out)["metadata"]["name"] == "ghost"
    assert kubectl.run("get", "cm", "ghost", "-n", ns, check=False).returncode == 1


def test_delete_and_namespace_rules(kubectl: Kubectl, ns: str) -> None:
    kubectl("create", "configmap", "gone", "-n", ns)
    assert kubectl("delete", "configmap", "gone", "-n", ns).strip() == 'configmap "gone" deleted'
    out = kubectl.run("create", "configmap", "x", "-n", "no-such-ns", check=False)
    assert 'namespaces "no-such-ns" not found' in out.stderr
    out = kubectl.run("delete", "namespace", "kube-system", check=False)
    assert out.returncode == 1 and "forbidden" in out.stderr


def test_explain_uses_the_official_schemas(kubectl: Kubectl) -> None:
    out = kubectl("explain", "pods.spec.containers.image")
    assert "FIELD: image <string>" in out
    out = kubectl("explain", "deployment.spec.replicas")
    assert "replicas" in out and "<integer>" in out


def test_get_all_and_multiple_kinds(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(DEPLOYMENT)
    kubectl("create", "-n", ns, "-f", str(tmp_path / "d.yaml"))
    kubectl("create", "service", "clusterip", "web", "-n", ns, "--tcp=80:80")
    out = kubectl("get", "all", "-n", ns, "-o", "name").split()
    assert "service/web" in out and "deployment.apps/web" in out
    out = kubectl("get", "svc,deploy", "-n", ns, "-o", "name").split()
    assert sorted(out) == ["deployment.apps/web", "service/web"]


def test_services_get_unique_cluster_ips_and_node_ports(kubectl: Kubectl, ns: str) -> None:
    for i in range(5):
        kubectl("create", "service", "nodeport", f"np{i}", "-n", ns, "--tcp=80:8080")
    services = kubectl.json("get", "svc", "-n", ns)["items"]
    ips = [s["spec"]["clusterIP"] for s in services]
    ports = [s["spec"]["ports"][0]["nodePort"] for s in services]
    assert len(set(ips)) == 5 and all(ip.startswith("10.43.") for ip in ips)
    assert len(set(ports)) == 5 and all(30000 <= p <= 32767 for p in ports)
    taken = ports[0]
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "clash"},
        "spec": {
            "type": "NodePort",
            "selector": {"a": "b"},
            "ports": [{"port": 80, "nodePort": taken}],
        },
    }
    out = kubectl.run("create", "-n", ns, "-f", "-", input=json.dumps(svc), check=False)
    assert out.returncode == 1
    assert "provided port is already allocated" in out.stderr
    # deleting a service frees its port for the next one
    owner = services[0]["metadata"]["name"]
    kubectl("delete", "svc", owner, "-n", ns)
    kubectl("create", "-n", ns, "-f", "-", input=json.dumps(svc))


def test_watch_streams_changes(kubectl: Kubectl, ns: str, server: Server) -> None:
    import subprocess

    proc = subprocess.Popen(
        [
            "/usr/bin/kubectl",
            "--kubeconfig",
            str(server.kubeconfig),
            "get",
            "cm",
            "-n",
            ns,
            "-w",
            "-o",
            "name",
            "--request-timeout=30s",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        import time

        time.sleep(1)
        kubectl("create", "configmap", "w1", "-n", ns)
        kubectl("create", "configmap", "w2", "-n", ns)
        assert proc.stdout is not None
        seen = [proc.stdout.readline().strip() for _ in range(2)]
        assert seen == ["configmap/w1", "configmap/w2"]
    finally:
        proc.terminate()
        proc.wait()


def test_diff_shows_a_pending_change(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(DEPLOYMENT)
    kubectl("apply", "-n", ns, "-f", str(tmp_path / "d.yaml"))
    changed = DEPLOYMENT.replace("replicas: 2", "replicas: 3")
    (tmp_path / "d.yaml").write_text(changed)
    out = kubectl.run("diff", "-n", ns, "-f", str(tmp_path / "d.yaml"), check=False)
    assert out.returncode == 1, out.stderr  # 1 = differences found
    assert "-  replicas: 2" in out.stdout and "+  replicas: 3" in out.stdout
    assert kubectl.json("get", "deploy", "web", "-n", ns)["spec"]["replicas"] == 2


def test_restart_keeps_objects_and_resource_versions(tmp_path: Path) -> None:
    from tests.integration.conftest import Server, free_port

    srv = Server(tmp_path / "data", free_port()).start()
    try:
        k = Kubectl(srv.kubeconfig)
        k("create", "configmap", "keep", "--from-literal=x=1")
        before = k.json("get", "cm", "keep")
        assert srv.stop() == 0, "SIGTERM must shut down cleanly"
        srv.start()
        after = k.json("get", "cm", "keep")
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        assert after["metadata"]["uid"] == before["metadata"]["uid"]
    finally:
        srv.stop()


def test_unauthenticated_requests_are_anonymous(server: Server) -> None:
    """Upstream's --anonymous-auth (on by default): no credentials is system:anonymous,
    which RBAC's system:public-info-viewer lets read health and version only; a bad
    credential is still 401."""
    import ssl
    import urllib.error
    import urllib.request

    ctx = ssl.create_default_context(cafile=str(server.data_dir / "server" / "tls" / "ca.crt"))
    for path in ("/healthz", "/livez", "/readyz"):
        with urllib.request.urlopen(server.url + path, context=ctx) as r:
            assert r.read() == b"ok"
    with urllib.request.urlopen(server.url + "/version", context=ctx) as r:
        assert json.loads(r.read())["gitVersion"].startswith("v1.32")
    for path, message in (
        (
            "/api/v1/namespaces",
            'namespaces is forbidden: User "system:anonymous" cannot list resource '
            '"namespaces" in API group "" at the cluster scope',
        ),
        ("/apis", 'forbidden: User "system:anonymous" cannot get path "/apis"'),
        ("/healthz/ping", 'forbidden: User "system:anonymous" cannot get path "/healthz/ping"'),
    ):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url + path, context=ctx)
        assert err.value.code == 403
        assert json.loads(err.value.read())["message"] == message
    bad = urllib.request.Request(server.url + "/healthz", headers={"Authorization": "Bearer x"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(bad, context=ctx)
    assert err.value.code == 401
    assert json.loads(err.value.read())["reason"] == "Unauthorized"


@pytest.mark.etcd
def test_apiserver_on_real_etcd(tmp_path: Path) -> None:
    from tests.etcd_cluster import EtcdCluster, etcd_available
    from tests.integration.conftest import Server, free_port

    if not etcd_available():
        pytest.skip("etcd not installed")
    cluster = EtcdCluster(tmp_path / "etcd", size=1).start()
    srv = Server(
        tmp_path / "data", free_port(), extra_args=("--datastore-endpoint", cluster.endpoint)
    )
    try:
        srv.start()
        k = Kubectl(srv.kubeconfig)
        k("apply", "-f", "-", input=DEPLOYMENT.replace("name: web", "name: on-etcd", 1))
        d = k.json("get", "deploy", "on-etcd")
        assert d["spec"]["replicas"] == 2
        k("scale", "deploy", "on-etcd", "--replicas=3")
        assert k.json("get", "deploy", "on-etcd")["spec"]["replicas"] == 3
        rv = k.json("get", "deploy", "on-etcd")["metadata"]["resourceVersion"]
        srv.stop()
        srv.start()
        assert k.json("get", "deploy", "on-etcd")["metadata"]["resourceVersion"] == rv
    finally:
        srv.stop()
        cluster.stop()
