"""The admission chain as users meet it: the real kubectl and the official Python client
against a running ``pyk8s apiserver``, checked against upstream's exact texts.

LimitRanger (defaults, the ``kubernetes.io/limit-ranger`` annotation, min/max refusals),
PodSecurity (enforce refusals, ``Warning:`` lines for warn labels, workloads and namespace
relabelling, invalid labels), ResourceQuota on update (a Service turned LoadBalancer),
NamespaceLifecycle (system namespaces, terminating namespaces), and the
``--enable-admission-plugins`` / ``--disable-admission-plugins`` flags. The session
server runs no controllers, so quota usage is written through the status subresource,
as the quota controller would.

Also here: a Service whose deletion ends by its last finalizer going (foreground
cascade, or a custom finalizer patched away) gives back its ClusterIP and NodePort.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Kubectl, RawClient, Server, free_port, pyk8s_cli

JSON = dict[str, Any]


def apply(kubectl: Kubectl, obj: JSON, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    return kubectl.run("apply", "-f", "-", input=json.dumps(obj), check=check)


def create(kubectl: Kubectl, obj: JSON, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    return kubectl.run("create", "-f", "-", input=json.dumps(obj), check=check)


def pod(name: str, ns: str, **container: Any) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [{"name": "c", "image": "busybox", **container}]},
    }


def new_namespace(kubectl: Kubectl, **labels: str) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    meta: JSON = {"name": name}
    if labels:
        meta["labels"] = labels
    create(kubectl, {"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
    return name


def warnings(out: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in out.stderr.splitlines() if line.startswith("Warning: ")]


def core(api: Any) -> Any:
    from kubernetes import client

    return client.CoreV1Api(api)


def api_error(call: Callable[[], Any]) -> tuple[int, JSON]:
    """Status code and Status body of a call the Python client must see refused."""
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as info:
        call()
    return int(info.value.status), json.loads(info.value.body or "{}")


def wait_until(check: Callable[[], Any], within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"not within {within}s; last: {last!r}")


RESTRICTED_C = (
    'allowPrivilegeEscalation != false (container "c" must set '
    "securityContext.allowPrivilegeEscalation=false), "
    'unrestricted capabilities (container "c" must set '
    'securityContext.capabilities.drop=["ALL"]), '
    'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), '
    'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to '
    '"RuntimeDefault" or "Localhost")'
)


# ---------------------------------------------------------------------- LimitRanger


def limit_range(ns: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "limits", "namespace": ns},
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "default": {"cpu": "200m", "memory": "128Mi"},
                    "defaultRequest": {"cpu": "100m", "memory": "64Mi"},
                    "max": {"cpu": "1"},
                },
                {"type": "PersistentVolumeClaim", "min": {"storage": "2Gi"}},
            ]
        },
    }


def test_limitrange_defaults_new_pods(kubectl: Kubectl, api: Any, ns: str) -> None:
    apply(kubectl, limit_range(ns))
    apply(kubectl, pod("p", ns))
    got = kubectl.json("get", "pod", "p", "-n", ns)
    assert got["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "200m", "memory": "128Mi"},
        "requests": {"cpu": "100m", "memory": "64Mi"},
    }
    assert got["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container c; "
        "cpu, memory limit for container c"
    )
    # what the container states itself is kept; only the rest is defaulted
    from kubernetes import client

    body = client.V1Pod(
        metadata=client.V1ObjectMeta(name="own"),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="c",
                    image="busybox",
                    resources=client.V1ResourceRequirements(
                        limits={"cpu": "500m"}, requests={"cpu": "300m"}
                    ),
                )
            ]
        ),
    )
    made = core(api).create_namespaced_pod(ns, body)
    assert made.spec.containers[0].resources.limits == {"cpu": "500m", "memory": "128Mi"}
    assert made.spec.containers[0].resources.requests == {"cpu": "300m", "memory": "64Mi"}
    assert made.metadata.annotations["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: memory request for container c; memory limit for container c"
    )


def test_limitrange_refuses_a_pod_over_max(kubectl: Kubectl, api: Any, ns: str) -> None:
    apply(kubectl, limit_range(ns))
    big = pod("big", ns, resources={"limits": {"cpu": "2"}})
    out = apply(kubectl, big, check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        'Error from server (Forbidden): error when creating "STDIN": pods "big" is forbidden: '
        "maximum cpu usage per Container is 1, but limit is 2"
    )
    code, status = api_error(lambda: core(api).create_namespaced_pod(ns, big))
    assert code == 403
    assert status["reason"] == "Forbidden"
    assert status["message"] == (
        'pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2'
    )
    assert status["details"] == {"name": "big", "kind": "pods"}
    assert kubectl.json("get", "pods", "-n", ns)["items"] == []


def test_limitrange_refuses_a_claim_under_min(kubectl: Kubectl, ns: str) -> None:
    apply(kubectl, limit_range(ns))
    claim: JSON = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "small", "namespace": ns},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    out = apply(kubectl, claim, check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        'Error from server (Forbidden): error when creating "STDIN": persistentvolumeclaims '
        '"small" is forbidden: minimum storage usage per PersistentVolumeClaim is 2Gi, '
        "but request is 1Gi"
    )
    claim["spec"]["resources"]["requests"]["storage"] = "3Gi"
    apply(kubectl, claim)


# ---------------------------------------------------------------------- PodSecurity


def test_enforce_restricted_refuses_a_plain_pod(kubectl: Kubectl, api: Any) -> None:
    ns = new_namespace(kubectl, **{"pod-security.kubernetes.io/enforce": "restricted"})
    out = apply(kubectl, pod("plain", ns), check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        'Error from server (Forbidden): error when creating "STDIN": pods "plain" is forbidden: '
        f'violates PodSecurity "restricted:latest": {RESTRICTED_C}'
    )
    code, status = api_error(lambda: core(api).create_namespaced_pod(ns, pod("plain", ns)))
    assert code == 403
    assert status["message"] == (
        f'pods "plain" is forbidden: violates PodSecurity "restricted:latest": {RESTRICTED_C}'
    )
    # a pod that meets the level is admitted
    ok = pod(
        "ok",
        ns,
        securityContext={
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    )
    assert warnings(apply(kubectl, ok)) == []


def test_warn_label_prints_warnings_and_admits(kubectl: Kubectl) -> None:
    ns = new_namespace(kubectl, **{"pod-security.kubernetes.io/warn": "baseline"})
    out = apply(kubectl, pod("priv", ns, securityContext={"privileged": True}))
    assert out.stdout.strip() == "pod/priv created"
    assert warnings(out) == [
        'Warning: would violate PodSecurity "baseline:latest": privileged '
        '(container "c" must not set securityContext.privileged=true)'
    ]
    assert kubectl.json("get", "pod", "priv", "-n", ns)["metadata"]["name"] == "priv"
    # a pod within baseline prints nothing
    assert warnings(apply(kubectl, pod("plain", ns))) == []


def test_a_deployment_under_enforce_is_created_with_a_warning(kubectl: Kubectl) -> None:
    ns = new_namespace(kubectl, **{"pod-security.kubernetes.io/enforce": "restricted"})
    out = kubectl.run("create", "deployment", "web", "-n", ns, "--image=busybox")
    assert out.stdout.strip() == "deployment.apps/web created"
    restricted_busybox = RESTRICTED_C.replace('"c"', '"busybox"')
    assert warnings(out) == [
        f'Warning: would violate PodSecurity "restricted:latest": {restricted_busybox}'
    ]
    assert kubectl.json("get", "deployment", "web", "-n", ns)["metadata"]["name"] == "web"


def test_labelling_a_namespace_warns_about_existing_pods(kubectl: Kubectl) -> None:
    ns = new_namespace(kubectl)
    for name in ("a", "b"):
        apply(kubectl, pod(name, ns))
    out = kubectl.run("label", "ns", ns, "pod-security.kubernetes.io/enforce=restricted")
    assert out.stdout.strip() == f"namespace/{ns} labeled"
    assert warnings(out) == [
        f'Warning: existing pods in namespace "{ns}" violate the new PodSecurity enforce level '
        '"restricted:latest"',
        "Warning: a (and 1 other pod): allowPrivilegeEscalation != false, "
        "unrestricted capabilities, runAsNonRoot != true, seccompProfile",
    ]
    # the pods stay; a new one is refused
    assert len(kubectl.json("get", "pods", "-n", ns)["items"]) == 2
    assert apply(kubectl, pod("c", ns), check=False).returncode == 1


def test_an_invalid_level_label_is_422(kubectl: Kubectl, api: Any) -> None:
    ns = new_namespace(kubectl)
    out = kubectl.run("label", "ns", ns, "pod-security.kubernetes.io/enforce=strict", check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f'The Namespace "{ns}" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: '
        'Invalid value: "strict": must be one of privileged, baseline, restricted'
    )
    from kubernetes import client

    body = client.V1Namespace(
        metadata=client.V1ObjectMeta(
            name=f"t-{uuid.uuid4().hex[:8]}",
            labels={"pod-security.kubernetes.io/warn-version": "latest-1"},
        )
    )
    code, status = api_error(lambda: core(api).create_namespace(body))
    assert code == 422
    assert status["reason"] == "Invalid"
    assert status["details"]["kind"] == "Namespace"
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "latest-1": must be "latest" or "v1.x"',
            "field": "metadata.labels[pod-security.kubernetes.io/warn-version]",
        }
    ]


def test_pod_updates_are_admitted_too(kubectl: Kubectl, api: Any) -> None:
    ns = new_namespace(kubectl)
    apply(kubectl, pod("p", ns))
    kubectl.run("label", "ns", ns, "pod-security.kubernetes.io/enforce=restricted")
    # a change PodSecurity does not look at (labels) passes
    kubectl("label", "pod", "p", "-n", ns, "tier=web")
    # a new image is a significant update: checked against the level, refused
    refused = f'pods "p" is forbidden: violates PodSecurity "restricted:latest": {RESTRICTED_C}'
    out = kubectl.run("set", "image", "pod/p", "c=busybox:1.36", "-n", ns, check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == f"error: failed to patch image update to pod template: {refused}"
    image = '{"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}'
    out = kubectl.run("patch", "pod", "p", "-n", ns, "-p", image, check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == f"Error from server (Forbidden): {refused}"
    patch = {"spec": {"containers": [{"name": "c", "image": "busybox:1.37"}]}}
    code, status = api_error(lambda: core(api).patch_namespaced_pod("p", ns, patch))
    assert code == 403
    assert status["message"].startswith('pods "p" is forbidden: violates PodSecurity')
    assert kubectl.json("get", "pod", "p", "-n", ns)["spec"]["containers"][0]["image"] == "busybox"


# ---------------------------------------------------------------------- ResourceQuota


def set_quota_status(kubectl: Kubectl, ns: str, name: str, hard: JSON, used: JSON) -> None:
    """What the quota controller would write (the session server runs no controllers)."""
    kubectl(
        "patch",
        "resourcequota",
        name,
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"hard": hard, "used": used}}),
    )


def test_turning_a_service_into_a_loadbalancer_is_charged(
    kubectl: Kubectl, api: Any, ns: str
) -> None:
    kubectl("create", "quota", "q", "-n", ns, "--hard=services.loadbalancers=0")
    kubectl("create", "service", "clusterip", "s", "-n", ns, "--tcp=80:80")
    to_lb = ["patch", "svc", "s", "-n", ns, "-p", '{"spec":{"type":"LoadBalancer"}}']
    # the quota's limits are known but its usage is not (the controller has not counted
    # yet): upstream refuses rather than guess
    set_quota_status(kubectl, ns, "q", {"services.loadbalancers": "0"}, {})
    out = kubectl.run(*to_lb, check=False)
    assert out.stderr.strip() == (
        'Error from server (Forbidden): services "s" is forbidden: status unknown for quota: q, '
        "resources: services.loadbalancers"
    )
    set_quota_status(
        kubectl, ns, "q", {"services.loadbalancers": "0"}, {"services.loadbalancers": "0"}
    )
    out = kubectl.run(*to_lb, check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        'Error from server (Forbidden): services "s" is forbidden: exceeded quota: q, '
        "requested: services.loadbalancers=1, used: services.loadbalancers=0, "
        "limited: services.loadbalancers=0"
    )
    # the same through the Python client's replace (an UPDATE, not a patch)
    svc = core(api).read_namespaced_service("s", ns)
    svc.spec.type = "LoadBalancer"
    code, status = api_error(lambda: core(api).replace_namespaced_service("s", ns, svc))
    assert code == 403
    assert status["message"].startswith('services "s" is forbidden: exceeded quota: q,')
    assert kubectl.json("get", "svc", "s", "-n", ns)["spec"]["type"] == "ClusterIP"
    # room for one: the change is admitted and charged to the quota at once
    kubectl(
        "patch", "quota", "q", "-n", ns, "-p", '{"spec":{"hard":{"services.loadbalancers":"1"}}}'
    )
    set_quota_status(
        kubectl, ns, "q", {"services.loadbalancers": "1"}, {"services.loadbalancers": "0"}
    )
    kubectl(*to_lb)
    assert kubectl.json("get", "svc", "s", "-n", ns)["spec"]["type"] == "LoadBalancer"
    used = kubectl.json("get", "quota", "q", "-n", ns)["status"]["used"]
    assert used == {"services.loadbalancers": "1"}
    # an update that adds nothing is not charged again
    kubectl("label", "svc", "s", "-n", ns, "tier=edge")


# ---------------------------------------------------------------------- NamespaceLifecycle


def test_system_namespaces_cannot_be_deleted(kubectl: Kubectl, api: Any, raw: RawClient) -> None:
    out = kubectl.run("delete", "namespace", "kube-system", check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        'Error from server (Forbidden): namespaces "kube-system" is forbidden: '
        "this namespace may not be deleted"
    )
    # upstream's immortal namespaces are these three (kube-node-lease is not one of them)
    for name in ("default", "kube-public"):
        code, status = api_error(partial(core(api).delete_namespace, name))
        assert code == 403
        assert status["message"] == (
            f'namespaces "{name}" is forbidden: this namespace may not be deleted'
        )
    # namespaces have no deletecollection (upstream's verbs), so kube-system cannot go
    # that way either
    verbs = {
        r["name"]: r["verbs"] for r in json.loads(kubectl("get", "--raw", "/api/v1"))["resources"]
    }
    assert "deletecollection" not in verbs["namespaces"]
    resp = raw(
        "DELETE", "/api/v1/namespaces?labelSelector=kubernetes.io/metadata.name%3Dkube-system"
    )
    assert resp.status == 405
    assert resp.json()["reason"] == "MethodNotAllowed"
    for name in ("kube-system", "default"):
        got = kubectl.json("get", "namespace", name)
        assert "deletionTimestamp" not in got["metadata"]
        assert got["status"]["phase"] == "Active"


def terminating_namespace(kubectl: Kubectl) -> str:
    ns = new_namespace(kubectl)
    # a finalizer of our own keeps it Terminating whatever controllers run
    kubectl("patch", "ns", ns, "--type=merge", "-p", '{"metadata":{"finalizers":["t.io/hold"]}}')
    kubectl("delete", "ns", ns, "--wait=false")
    assert kubectl.json("get", "ns", ns)["status"]["phase"] == "Terminating"
    return ns


def test_no_new_content_in_a_terminating_namespace(kubectl: Kubectl, api: Any) -> None:
    ns = terminating_namespace(kubectl)
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c2", "namespace": ns}}
    out = apply(kubectl, cm, check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        'Error from server (Forbidden): error when creating "STDIN": configmaps "c2" is '
        f"forbidden: unable to create new content in namespace {ns} because it is being "
        "terminated"
    )
    code, status = api_error(
        lambda: core(api).create_namespaced_config_map(ns, {"metadata": {"name": "c2"}})
    )
    assert code == 403
    assert status["details"] == {
        "name": "c2",
        "kind": "configmaps",
        "causes": [
            {
                "reason": "NamespaceTerminating",
                "message": f"namespace {ns} is being terminated",
                "field": "metadata.namespace",
            }
        ],
    }


def test_a_terminating_namespace_refuses_creates_403(kubectl: Kubectl, api: Any) -> None:
    """What holds today, whatever the name in the message."""
    ns = terminating_namespace(kubectl)
    code, status = api_error(
        lambda: core(api).create_namespaced_config_map(ns, {"metadata": {"name": "c2"}})
    )
    assert code == 403
    assert status["reason"] == "Forbidden"
    assert status["message"].endswith(
        f"is forbidden: unable to create new content in namespace {ns} because it is being "
        "terminated"
    )
    assert status["details"]["causes"] == [
        {
            "reason": "NamespaceTerminating",
            "message": f"namespace {ns} is being terminated",
            "field": "metadata.namespace",
        }
    ]
    # what is there can still be changed and deleted (only creates are refused)
    assert kubectl.json("get", "ns", ns)["status"]["phase"] == "Terminating"


# ---------------------------------------------------------------------- plugin flags


@pytest.fixture(scope="module")
def flagged_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A second API server: AlwaysPullImages on, ServiceAccount off."""
    base = tmp_path_factory.mktemp("admission-flags")
    srv = Server(
        base / "data",
        free_port(),
        extra_args=(
            "--enable-admission-plugins=AlwaysPullImages",
            "--disable-admission-plugins",
            "ServiceAccount",
        ),
    ).start()
    try:
        yield srv
    finally:
        srv.stop()


def test_always_pull_images_when_enabled(flagged_server: Server) -> None:
    kubectl = Kubectl(flagged_server.kubeconfig)
    ns = new_namespace(kubectl)
    p = pod("p", ns, imagePullPolicy="IfNotPresent")
    p["spec"]["initContainers"] = [{"name": "init", "image": "busybox", "imagePullPolicy": "Never"}]
    apply(kubectl, p)
    got = kubectl.json("get", "pod", "p", "-n", ns)["spec"]
    assert got["containers"][0]["imagePullPolicy"] == "Always"
    assert got["initContainers"][0]["imagePullPolicy"] == "Always"
    # ServiceAccount is off: no account is filled in and no token volume is mounted
    assert "serviceAccountName" not in got
    assert not any(v["name"].startswith("kube-api-access-") for v in got.get("volumes", []))
    assert "volumeMounts" not in got["containers"][0]


def test_default_plugins_leave_pull_policy_and_mount_the_token(kubectl: Kubectl, ns: str) -> None:
    apply(kubectl, pod("p", ns, imagePullPolicy="IfNotPresent"))
    got = kubectl.json("get", "pod", "p", "-n", ns)["spec"]
    assert got["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert got["serviceAccountName"] == "default"
    assert [v["name"][:16] for v in got["volumes"]] == ["kube-api-access-"]


@pytest.mark.parametrize("command", ["apiserver", "server"])
def test_an_unknown_plugin_name_stops_the_server(command: str, tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pyk8s",
            command,
            "--data-dir",
            str(tmp_path / "data"),
            "--enable-admission-plugins=AlwaysPullImages,NoSuchPlugin",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1
    assert out.stderr.strip() == 'Error: enable-admission-plugins plugin "NoSuchPlugin" is unknown'
    assert not (tmp_path / "data").exists()  # refused before anything was set up
    # the same check in this process (a new one spends its time importing)
    out = pyk8s_cli(
        command, "--data-dir", str(tmp_path / "data"),
        "--enable-admission-plugins=AlwaysPullImages",
        "--disable-admission-plugins=AlwaysPullImages,Other",
    )  # fmt: skip
    assert out.returncode == 1
    assert out.stderr.strip() == (
        'Error: [disable-admission-plugins plugin "Other" is unknown, [AlwaysPullImages] in '
        "enable-admission-plugins and disable-admission-plugins overlapped]"
    )


# ---------------------------------------------------------------------- Service allocations


def node_port_service(ns: str, name: str, ip: str = "", node_port: int = 0) -> JSON:
    spec: JSON = {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]}
    if ip:
        spec["clusterIP"] = ip
    if node_port:
        spec["ports"][0]["nodePort"] = node_port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def allocations(kubectl: Kubectl, ns: str, name: str) -> tuple[str, int]:
    spec = kubectl.json("get", "svc", name, "-n", ns)["spec"]
    return spec["clusterIP"], int(spec["ports"][0]["nodePort"])


def gone(kubectl: Kubectl, *args: str) -> bool:
    out = kubectl.run("get", *args, check=False)
    return out.returncode == 1 and "NotFound" in out.stderr


@pytest.fixture
def garbage_collector(server: Server, tmp_path: Path) -> Iterator[None]:
    """The garbage collector (it removes foregroundDeletion finalizers), as a
    ``pyk8s controller-manager`` process against the session server."""
    with open(tmp_path / "cm.log", "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pyk8s",
                "controller-manager",
                "--kubeconfig",
                str(server.kubeconfig),
                "--controllers",
                "garbagecollector",
                "--leader-elect",
                "false",
                "--port",
                str(free_port()),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_foreground_deletion_releases_the_service_allocations(
    kubectl: Kubectl, ns: str, garbage_collector: None
) -> None:
    apply(kubectl, node_port_service(ns, "x"))
    ip, port = allocations(kubectl, ns, "x")
    out = kubectl.run("delete", "svc", "x", "-n", ns, "--cascade=foreground", timeout=90)
    assert out.stdout.strip() == 'service "x" deleted'
    wait_until(lambda: gone(kubectl, "svc", "x", "-n", ns))
    # the same address and port can be asked for again
    out = apply(kubectl, node_port_service(ns, "again", ip, port))
    assert out.stdout.strip() == "service/again created"
    assert allocations(kubectl, ns, "again") == (ip, port)


def test_a_custom_finalizer_patched_away_releases_the_allocations(
    kubectl: Kubectl, api: Any, ns: str
) -> None:
    svc = node_port_service(ns, "held")
    svc["metadata"]["finalizers"] = ["example.com/hold"]
    apply(kubectl, svc)
    ip, port = allocations(kubectl, ns, "held")
    kubectl("delete", "svc", "held", "-n", ns, "--wait=false")
    got = kubectl.json("get", "svc", "held", "-n", ns)
    assert got["metadata"]["deletionTimestamp"]
    # still held while the finalizer is there
    code, status = api_error(
        lambda: core(api).create_namespaced_service(ns, node_port_service(ns, "early", ip))
    )
    assert code == 422
    assert status["message"] == (
        f'Service "early" is invalid: spec.clusterIPs: Invalid value: []string{{"{ip}"}}: '
        f"failed to allocate IP {ip}: provided IP is already allocated"
    )
    kubectl(
        "patch",
        "svc",
        "held",
        "-n",
        ns,
        "--type=json",
        "-p",
        '[{"op":"remove","path":"/metadata/finalizers"}]',
    )
    wait_until(lambda: gone(kubectl, "svc", "held", "-n", ns))
    made = core(api).create_namespaced_service(ns, node_port_service(ns, "again", ip, port))
    assert made.spec.cluster_ip == ip
    assert made.spec.ports[0].node_port == port
