"""kubectl's typed-client commands, which send protobuf bodies, against a pyk8s server.

``kubectl create namespace|configmap|secret|deployment|service|job|cronjob|role|...`` and
``kubectl autoscale`` build typed Go objects and POST them as
``application/vnd.kubernetes.protobuf`` (accepting JSON back); ``kubectl run`` and
``kubectl expose`` send JSON and are here because users type them in the same breath. Each
test checks what was stored with ``kubectl get -o json``.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator

import pytest

from pyk8s.api import protobuf
from tests.integration.conftest import Kubectl, RawClient


@pytest.fixture
def unique() -> str:
    return f"pb-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cluster_cleanup(kubectl: Kubectl) -> Iterator[list[str]]:
    """Cluster-scoped objects (``kind/name``) to delete after the test."""
    created: list[str] = []
    yield created
    for ref in created:
        kubectl.run("delete", ref, "--ignore-not-found", "--wait=false", check=False)


def test_create_namespace(kubectl: Kubectl, unique: str, cluster_cleanup: list[str]) -> None:
    cluster_cleanup.append(f"namespace/{unique}")
    assert kubectl("create", "namespace", unique).strip() == f"namespace/{unique} created"
    ns = kubectl.json("get", "namespace", unique)
    assert ns["metadata"]["name"] == unique
    assert ns["status"]["phase"] == "Active"
    again = kubectl.run("create", "namespace", unique, check=False)
    assert again.returncode != 0
    assert "AlreadyExists" in again.stderr


def test_create_configmap(kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "create", "configmap", "cm", "--from-literal=a=1", "--from-literal=b=")
    cm = kubectl.json("-n", ns, "get", "configmap", "cm")
    assert cm["data"] == {"a": "1", "b": ""}


def test_create_secret_generic(kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "create", "secret", "generic", "s", "--from-literal=a=b")
    s = kubectl.json("-n", ns, "get", "secret", "s")
    assert s["data"] == {"a": base64.b64encode(b"b").decode()}
    assert s["type"] == "Opaque"


def test_create_secret_docker_registry(kubectl: Kubectl, ns: str) -> None:
    kubectl(
        "-n",
        ns,
        "create",
        "secret",
        "docker-registry",
        "reg",
        "--docker-server=r.example",
        "--docker-username=u",
        "--docker-password=p",
    )
    s = kubectl.json("-n", ns, "get", "secret", "reg")
    assert s["type"] == "kubernetes.io/dockerconfigjson"
    config = json.loads(base64.b64decode(s["data"][".dockerconfigjson"]))
    assert config["auths"]["r.example"]["username"] == "u"


def test_create_deployment_keeps_zero_replicas(kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "create", "deployment", "web", "--image=busybox", "--replicas=0")
    d = kubectl.json("-n", ns, "get", "deployment", "web")
    assert d["spec"]["replicas"] == 0
    assert d["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox"


def test_create_deployment_with_port(kubectl: Kubectl, ns: str) -> None:
    kubectl(
        "-n", ns, "create", "deployment", "api", "--image=busybox", "--port=8080", "--replicas=2"
    )
    d = kubectl.json("-n", ns, "get", "deployment", "api")
    assert d["spec"]["replicas"] == 2
    assert d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] == 8080


def test_create_service_nodeport(kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "create", "service", "nodeport", "np", "--tcp=80:8080")
    svc = kubectl.json("-n", ns, "get", "service", "np")
    assert svc["spec"]["type"] == "NodePort"
    (port,) = svc["spec"]["ports"]
    assert (port["port"], port["targetPort"], port["protocol"]) == (80, 8080, "TCP")
    assert 30000 <= port["nodePort"] <= 32767


def test_create_service_clusterip_and_headless(kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "create", "service", "clusterip", "cip", "--tcp=5678:8080")
    kubectl("-n", ns, "create", "service", "clusterip", "hl", "--clusterip=None")
    cip = kubectl.json("-n", ns, "get", "service", "cip")
    assert cip["spec"]["ports"][0]["targetPort"] == 8080
    assert cip["spec"]["clusterIP"] not in ("", "None")
    assert kubectl.json("-n", ns, "get", "service", "hl")["spec"]["clusterIP"] == "None"


def test_create_service_externalname(kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "create", "service", "externalname", "en", "--external-name=db.example.com")
    svc = kubectl.json("-n", ns, "get", "service", "en")
    assert svc["spec"]["type"] == "ExternalName"
    assert svc["spec"]["externalName"] == "db.example.com"


def test_create_job(kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "create", "job", "j", "--image=busybox", "--", "sleep", "1")
    job = kubectl.json("-n", ns, "get", "job", "j")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["sleep", "1"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_create_cronjob(kubectl: Kubectl, ns: str) -> None:
    kubectl(
        "-n",
        ns,
        "create",
        "cronjob",
        "cj",
        "--image=busybox",
        "--schedule=*/5 * * * *",
        "--",
        "date",
    )
    cj = kubectl.json("-n", ns, "get", "cronjob", "cj")
    assert cj["spec"]["schedule"] == "*/5 * * * *"
    pod_spec = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod_spec["containers"][0]["command"] == ["date"]
    assert pod_spec["restartPolicy"] == "OnFailure"


def test_create_job_from_cronjob(kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "create", "cronjob", "nightly", "--image=busybox", "--schedule=0 0 * * *")
    kubectl("-n", ns, "create", "job", "manual", "--from=cronjob/nightly")
    job = kubectl.json("-n", ns, "get", "job", "manual")
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"


def test_create_serviceaccount(kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "create", "serviceaccount", "robot")
    assert kubectl.json("-n", ns, "get", "serviceaccount", "robot")["metadata"]["name"] == "robot"


def test_create_role_and_rolebinding(kubectl: Kubectl, ns: str) -> None:
    kubectl(
        "-n",
        ns,
        "create",
        "role",
        "reader",
        "--verb=get",
        "--verb=list",
        "--resource=pods",
        "--resource=deployments.apps",
    )
    role = kubectl.json("-n", ns, "get", "role", "reader")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]},
    ]
    kubectl(
        "-n",
        ns,
        "create",
        "rolebinding",
        "read",
        "--role=reader",
        "--user=alice",
        f"--serviceaccount={ns}:default",
    )
    rb = kubectl.json("-n", ns, "get", "rolebinding", "read")
    assert rb["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "reader",
    }
    assert [s["kind"] for s in rb["subjects"]] == ["User", "ServiceAccount"]


def test_create_clusterrole_and_binding(
    kubectl: Kubectl, unique: str, cluster_cleanup: list[str]
) -> None:
    cluster_cleanup += [
        f"clusterrole/{unique}",
        f"clusterrole/{unique}-agg",
        f"clusterrolebinding/{unique}",
    ]
    kubectl(
        "create",
        "clusterrole",
        unique,
        "--verb=get",
        "--resource=nodes",
        "--non-resource-url=/logs",
    )
    cr = kubectl.json("get", "clusterrole", unique)
    assert {"verbs": ["get"], "nonResourceURLs": ["/logs"]} in cr["rules"]
    kubectl("create", "clusterrole", f"{unique}-agg", "--aggregation-rule=team=a")
    agg = kubectl.json("get", "clusterrole", f"{unique}-agg")
    assert agg["aggregationRule"] == {"clusterRoleSelectors": [{"matchLabels": {"team": "a"}}]}
    kubectl("create", "clusterrolebinding", unique, f"--clusterrole={unique}", "--group=devs")
    crb = kubectl.json("get", "clusterrolebinding", unique)
    assert crb["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "devs"}
    ]


def test_create_quota(kubectl: Kubectl, ns: str) -> None:
    kubectl(
        "-n", ns, "create", "quota", "q", "--hard=cpu=1,memory=1Gi,pods=10", "--scopes=BestEffort"
    )
    q = kubectl.json("-n", ns, "get", "resourcequota", "q")
    assert q["spec"]["hard"] == {"cpu": "1", "memory": "1Gi", "pods": "10"}
    assert q["spec"]["scopes"] == ["BestEffort"]


def test_create_priorityclass(kubectl: Kubectl, unique: str, cluster_cleanup: list[str]) -> None:
    cluster_cleanup.append(f"priorityclass/{unique}")
    kubectl(
        "create",
        "priorityclass",
        unique,
        "--value=1000",
        "--description=important",
        "--preemption-policy=Never",
    )
    pc = kubectl.json("get", "priorityclass", unique)
    assert (pc["value"], pc["description"], pc["preemptionPolicy"]) == (1000, "important", "Never")
    assert not pc.get("globalDefault", False)


def test_create_pdb(kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "create", "pdb", "min", "--min-available=1", "--selector=app=x")
    kubectl("-n", ns, "create", "pdb", "max", "--max-unavailable=50%", "--selector=app=x")
    kubectl("-n", ns, "create", "pdb", "zero", "--min-available=0", "--selector=app=x")
    pdb = kubectl.json("-n", ns, "get", "pdb", "min")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == {"matchLabels": {"app": "x"}}
    assert kubectl.json("-n", ns, "get", "pdb", "max")["spec"]["maxUnavailable"] == "50%"
    assert kubectl.json("-n", ns, "get", "pdb", "zero")["spec"]["minAvailable"] == 0


def test_create_ingress(kubectl: Kubectl, ns: str) -> None:
    kubectl(
        "-n",
        ns,
        "create",
        "ingress",
        "ing",
        "--class=default",
        "--rule=foo.com/bar=svc1:8080,tls=my-cert",
        "--rule=/named*=svc2:http",
        "--annotation=a=b",
    )
    ing = kubectl.json("-n", ns, "get", "ingress", "ing")
    spec = ing["spec"]
    assert spec["ingressClassName"] == "default"
    assert spec["tls"] == [{"hosts": ["foo.com"], "secretName": "my-cert"}]
    paths = [p for rule in spec["rules"] for p in rule["http"]["paths"]]
    assert {
        "path": "/bar",
        "pathType": "Exact",
        "backend": {"service": {"name": "svc1", "port": {"number": 8080}}},
    } in paths
    assert {
        "path": "/named",
        "pathType": "Prefix",
        "backend": {"service": {"name": "svc2", "port": {"name": "http"}}},
    } in paths
    assert ing["metadata"]["annotations"] == {"a": "b"}


def test_autoscale(kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "create", "deployment", "web", "--image=busybox")
    kubectl("-n", ns, "autoscale", "deployment", "web", "--min=1", "--max=3", "--cpu-percent=50")
    hpa = kubectl.json("-n", ns, "get", "horizontalpodautoscalers.v1.autoscaling", "web")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "web",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 3)
    assert hpa["spec"]["targetCPUUtilizationPercentage"] == 50


def test_run_pod(kubectl: Kubectl, ns: str) -> None:
    kubectl(
        "-n",
        ns,
        "run",
        "p",
        "--image=busybox",
        "--labels=app=p",
        "--env=X=1",
        "--port=80",
        "--",
        "sleep",
        "3600",
    )
    pod = kubectl.json("-n", ns, "get", "pod", "p")
    (c,) = pod["spec"]["containers"]
    assert c["image"] == "busybox"
    assert c["args"] == ["sleep", "3600"]
    assert c["env"] == [{"name": "X", "value": "1"}]
    assert pod["metadata"]["labels"] == {"app": "p"}


def test_expose_deployment(kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "create", "deployment", "web", "--image=busybox", "--port=8080")
    kubectl("-n", ns, "expose", "deployment", "web", "--port=80", "--target-port=8080")
    svc = kubectl.json("-n", ns, "get", "service", "web")
    assert svc["spec"]["selector"] == {"app": "web"}
    assert svc["spec"]["ports"][0]["port"] == 80
    assert svc["spec"]["ports"][0]["targetPort"] == 8080


def test_typed_create_prints_json_responses(kubectl: Kubectl, ns: str) -> None:
    out = json.loads(
        kubectl("-n", ns, "create", "configmap", "shown", "--from-literal=k=v", "-o", "json")
    )
    assert out["kind"] == "ConfigMap"
    assert out["metadata"]["uid"]
    dry = json.loads(
        kubectl(
            "-n",
            ns,
            "create",
            "secret",
            "generic",
            "dry",
            "--from-literal=a=b",
            "--dry-run=server",
            "-o",
            "json",
        )
    )
    assert dry["data"] == {"a": "Yg=="}
    missing = kubectl.run("-n", ns, "get", "secret", "dry", check=False)
    assert "NotFound" in missing.stderr


def test_raw_protobuf_post(raw: RawClient, ns: str) -> None:
    body = protobuf.encode_object(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "raw"}, "data": {"x": "y"}}
    )
    r = raw("POST", f"/api/v1/namespaces/{ns}/configmaps", body, protobuf.MEDIA_TYPE)
    assert r.status == 201, r.body
    assert r.json()["data"] == {"x": "y"}
    bad = raw(
        "POST", f"/api/v1/namespaces/{ns}/configmaps", b"k8s\x00\x0a\xff", protobuf.MEDIA_TYPE
    )
    assert bad.status == 400
    assert bad.json()["reason"] == "BadRequest"
    assert "protobuf" in bad.json()["message"]
