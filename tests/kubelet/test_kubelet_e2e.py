"""The kubelet end to end: ``pyk8s kubelet`` (its own containerd) runs real pods.

Each test creates pods bound to the session's node (``spec.nodeName``) in a fresh
namespace and checks what a user would see: the pod status (phase, conditions, container
states and reasons), events, the container's CRI log file, files written through
hostPath volumes.
"""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path
from typing import Any

import pytest

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import Client
from pyk8s.kubelet.cri import CRIClient
from pyk8s.kubelet.images import BUSYBOX_REF
from pyk8s.kubelet.runtimes import ContainerdConfig
from pyk8s.kubelet.runtimes.containerd import RegistryHost
from tests.controllers.conftest import eventually
from tests.kubelet.node_fixtures import Node
from tests.kubelet.registry_fixtures import Registry

pytestmark = pytest.mark.e2e

PODS: Resource = REGISTRY.get("", "v1", "pods")  # type: ignore[assignment]
CONFIGMAPS: Resource = REGISTRY.get("", "v1", "configmaps")  # type: ignore[assignment]
SECRETS: Resource = REGISTRY.get("", "v1", "secrets")  # type: ignore[assignment]
EVENTS: Resource = REGISTRY.get("", "v1", "events")  # type: ignore[assignment]

Obj = dict[str, Any]


def container(name: str, script: str, **extra: Any) -> Obj:
    return {
        "name": name,
        "image": BUSYBOX_REF,  # its tag is not "latest": the API defaults IfNotPresent
        "command": ["sh", "-c", script],
        **extra,
    }


async def run_pod(
    client: Client, ns: str, node: Node, name: str, containers: list[Obj], **spec: Any
) -> Obj:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"nodeName": node.name, "containers": containers, **spec},
    }
    pod: Obj = await client.create(PODS, body)
    return pod


async def get(client: Client, ns: str, name: str) -> Obj:
    pod: Obj = await client.get(PODS, name, ns)
    return pod


def status_of(pod: Obj, name: str, key: str = "containerStatuses") -> Obj:
    return next(c for c in pod["status"].get(key) or [] if c["name"] == name)


def condition(pod: Obj, ctype: str) -> str:
    return next(
        (c["status"] for c in pod["status"].get("conditions") or [] if c["type"] == ctype), ""
    )


async def wait_phase(client: Client, ns: str, name: str, phase: str, within: float = 30) -> Obj:
    async def check() -> Obj | None:
        pod = await get(client, ns, name)
        return pod if pod.get("status", {}).get("phase") == phase else None

    result: Obj = await eventually(check, within=within)
    return result


def log_text(node: Node, pod: Obj, cname: str, attempt: int = 0) -> str:
    meta = pod["metadata"]
    path = node.log_root / f"{meta['namespace']}_{meta['name']}_{meta['uid']}" / cname
    raw = (path / f"{attempt}.log").read_text()
    # CRI format: "<time> <stream> <P|F> <content>"
    return "\n".join(line.split(" ", 3)[3] for line in raw.splitlines() if line.count(" ") >= 3)


async def wait_log(node: Node, pod: Obj, cname: str, needle: str, within: float = 20) -> str:
    async def check() -> str | None:
        try:
            text = log_text(node, pod, cname)
        except OSError:
            return None
        return text if needle in text else None

    result: str = await eventually(check, within=within)
    return result


async def events_for(client: Client, ns: str, name: str) -> list[tuple[str, str]]:
    items = (await client.list(EVENTS, ns))["items"]
    return [
        (e.get("reason", ""), e.get("message", ""))
        for e in items
        if e["involvedObject"].get("name") == name
    ]


async def test_pod_runs_reports_status_and_logs(client: Client, namespace: str, node: Node) -> None:
    pod = await run_pod(
        client, namespace, node, "hello", [container("c", "echo hello from pyk8s; exec sleep 3600")]
    )
    running = await wait_phase(client, namespace, "hello", "Running")
    st = running["status"]
    assert ipaddress.ip_address(st["podIP"]) in ipaddress.ip_network(node.pod_cidr)
    assert st["hostIP"] == "127.0.0.1"
    assert st["qosClass"] == "BestEffort"
    assert st["startTime"]
    cs = status_of(running, "c")
    assert "running" in cs["state"] and cs["containerID"].startswith("containerd://")
    assert cs["restartCount"] == 0 and cs["image"] == BUSYBOX_REF

    async def ready() -> bool:
        p = await get(client, namespace, "hello")
        return all(condition(p, t) == "True" for t in ("Initialized", "ContainersReady", "Ready"))

    await eventually(ready)
    assert "hello from pyk8s" in await wait_log(node, pod, "c", "hello from pyk8s")

    # the kubelet's recorder writes its Events apart from the status: wait for them
    async def started() -> bool:
        reasons = {r for r, _ in await events_for(client, namespace, "hello")}
        return {"Pulled", "Created", "Started"} <= reasons

    assert await eventually(started)


async def test_restart_policy_never_ends_in_succeeded_or_failed(
    client: Client, namespace: str, node: Node
) -> None:
    await run_pod(
        client, namespace, node, "ok", [container("c", "echo done")], restartPolicy="Never"
    )
    await run_pod(
        client, namespace, node, "bad",
        [container("c", "echo 'disk on fire' > /dev/termination-log; exit 3")],
        restartPolicy="Never",
    )  # fmt: skip
    ok = await wait_phase(client, namespace, "ok", "Succeeded")
    term = status_of(ok, "c")["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (0, "Completed")
    bad = await wait_phase(client, namespace, "bad", "Failed")
    term = status_of(bad, "c")["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (3, "Error")
    assert term["message"].strip() == "disk on fire"
    assert condition(bad, "Ready") == "False"


@pytest.mark.slow
async def test_crash_loop_backs_off_10s_then_20s(
    client: Client, namespace: str, node: Node
) -> None:
    await run_pod(client, namespace, node, "crash", [container("c", "echo boom; exit 1")])

    async def waiting(message: str) -> Obj | None:
        pod = await get(client, namespace, "crash")
        cs = (pod.get("status", {}).get("containerStatuses") or [{}])[0]
        w = (cs.get("state") or {}).get("waiting") or {}
        return (
            cs
            if w.get("reason") == "CrashLoopBackOff" and message in w.get("message", "")
            else None
        )

    first = await eventually(lambda: waiting("back-off 10s"), within=30)
    # the first restart is immediate, the second waits 10 s: in back-off after 1 restart
    assert first["restartCount"] == 1
    assert first["lastState"]["terminated"]["exitCode"] == 1
    second = await eventually(lambda: waiting("back-off 20s"), within=45)
    assert second["restartCount"] == 2
    pod = await get(client, namespace, "crash")
    assert pod["status"]["phase"] == "Running"  # restartPolicy Always never ends the pod
    assert "BackOff" in {r for r, _ in await events_for(client, namespace, "crash")}


async def test_init_containers_env_and_volumes(
    client: Client, namespace: str, node: Node, tmp_path: Path
) -> None:
    meta = {"namespace": namespace}
    await client.create(CONFIGMAPS, {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", **meta},
        "data": {"greeting": "hi-from-cm", "file.txt": "cm-file"},
    })  # fmt: skip
    await client.create(SECRETS, {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec", **meta},
        "stringData": {"password": "s3cret"},
    })  # fmt: skip
    host = tmp_path / "host"
    work = {"name": "w", "mountPath": "/work"}
    script = (
        "cat /work/order; "
        "echo env=$GREETING,$PASSWORD,$MY_POD,$MY_IP,$CPU_LIMIT,$FROM_CM_greeting; "
        "echo cm=$(cat /cfg/file.txt); echo sec=$(cat /sec/password); "
        "echo labels=$(cat /info/labels); echo proj=$(cat /proj/greeting)$(cat /proj/password); "
        "echo mem=$(grep ' /mem ' /proc/mounts | cut -d' ' -f3); "
        "echo via-host > /host/out; "
        "echo ro=$(touch /cfg/x 2>/dev/null && echo writable || echo readonly); "
        "exec sleep 3600"
    )
    main = container("main", script, env=[
        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
        {"name": "MY_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
    ], envFrom=[{"configMapRef": {"name": "cfg"}, "prefix": "FROM_CM_"}],
       resources={"limits": {"cpu": "2", "memory": "64Mi"}},
       volumeMounts=[
        work, {"name": "cfg", "mountPath": "/cfg"}, {"name": "sec", "mountPath": "/sec"},
        {"name": "info", "mountPath": "/info"}, {"name": "proj", "mountPath": "/proj"},
        {"name": "mem", "mountPath": "/mem"}, {"name": "host", "mountPath": "/host"},
    ])  # fmt: skip
    pod = await run_pod(
        client, namespace, node, "init",
        [main],
        initContainers=[
            container("i1", "echo one > /work/order", volumeMounts=[work]),
            container("i2", "echo two >> /work/order", volumeMounts=[work]),
        ],
        volumes=[
            {"name": "w", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "cfg"}},
            {"name": "sec", "secret": {"secretName": "sec"}},
            {"name": "info", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
            {"name": "proj", "projected": {"sources": [
                {"configMap": {"name": "cfg", "items": [{"key": "greeting", "path": "greeting"}]}},
                {"secret": {"name": "sec"}}]}},
            {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            {"name": "host", "hostPath": {"path": str(host), "type": "DirectoryOrCreate"}},
        ],
    )  # fmt: skip
    running = await wait_phase(client, namespace, "init", "Running")
    inits = running["status"]["initContainerStatuses"]
    assert [i["state"]["terminated"]["reason"] for i in inits] == ["Completed", "Completed"]
    assert running["status"]["qosClass"] == "Burstable"  # the init containers have no limits
    text = await wait_log(node, pod, "main", "ro=")
    ip = running["status"]["podIP"]
    assert "one\ntwo\n" in text + "\n"
    assert f"env=hi-from-cm,s3cret,init,{ip},2,hi-from-cm" in text
    assert "cm=cm-file" in text and "sec=s3cret" in text
    assert 'labels=app="init"' in text
    assert "proj=hi-from-cms3cret" in text
    assert "mem=tmpfs" in text
    assert "ro=readonly" in text  # configMap volumes are mounted read-only, as upstream
    assert (host / "out").read_text() == "via-host\n"


async def test_missing_configmap_then_created(client: Client, namespace: str, node: Node) -> None:
    env = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "late", "key": "x"}}}]
    pod = await run_pod(
        client, namespace, node, "late", [container("c", "echo x=$X; exec sleep 3600", env=env)]
    )

    async def config_error() -> Obj | None:
        p = await get(client, namespace, "late")
        cs = (p.get("status", {}).get("containerStatuses") or [{}])[0]
        w = (cs.get("state") or {}).get("waiting") or {}
        return w if w.get("reason") == "CreateContainerConfigError" else None

    waiting = await eventually(config_error)
    assert waiting["message"] == 'configmap "late" not found'
    await client.create(CONFIGMAPS, {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "late", "namespace": namespace},
        "data": {"x": "arrived"},
    })  # fmt: skip
    await wait_phase(client, namespace, "late", "Running", within=30)
    assert "x=arrived" in await wait_log(node, pod, "c", "x=")


async def test_image_never_pulled_is_reported(client: Client, namespace: str, node: Node) -> None:
    c = container("c", "true")
    c.update(image="pyk8s.local/not-here:1.0", imagePullPolicy="Never")
    await run_pod(client, namespace, node, "noimg", [c])

    async def never() -> Obj | None:
        p = await get(client, namespace, "noimg")
        cs = (p.get("status", {}).get("containerStatuses") or [{}])[0]
        w = (cs.get("state") or {}).get("waiting") or {}
        return w if w.get("reason") == "ErrImageNeverPull" else None

    w = await eventually(never)
    assert "pyk8s.local/not-here:1.0" in w["message"]
    assert (await get(client, namespace, "noimg"))["status"]["phase"] == "Pending"


async def test_trace_of_a_pod_with_a_missing_image_ends_at_the_pull_error(
    client: Client, namespace: str, node: Node
) -> None:
    """``pyk8s trace``'s timeline from what the real kubelet records: the image it may not
    pull is the last step, with the kubelet's message."""
    from pyk8s.trace.timeline import build

    c = container("c", "true")
    c.update(image="pyk8s.local/trace-missing:1.0", imagePullPolicy="Never")
    await run_pod(client, namespace, node, "tracenoimg", [c])

    async def stuck() -> Obj | None:
        p = await get(client, namespace, "tracenoimg")
        cs = (p.get("status", {}).get("containerStatuses") or [{}])[0]
        waiting = (cs.get("state") or {}).get("waiting") or {}
        return p if waiting.get("reason") == "ErrImageNeverPull" else None

    pod = await eventually(stuck)

    # the kubelet's Event is written apart from (maybe after) the status: wait for it
    async def with_event() -> list[Obj]:
        items: list[Obj] = (await client.list(EVENTS, namespace))["items"]
        pulled = any(e.get("reason") == "ErrImageNeverPull" for e in items)
        return items if pulled else []

    events = await eventually(with_event)
    tl = build(pod, events)
    assert tl.result == "Failed" and tl.node == node.name
    last = tl.steps[-1]
    assert last.failed and last.step == "ErrImageNeverPull", tl.steps
    assert "pyk8s.local/trace-missing:1.0" in last.detail
    assert last.precise, "the kubelet's Event carries a sub-second time"
    assert tl.steps[0].step == "Created"
    assert "PodReadyToStartContainers" in [s.step for s in tl.steps]


async def test_memory_hog_is_oom_killed(client: Client, namespace: str, node: Node) -> None:
    hog = container(
        "hog", "x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; while true; do x=$x$x; done",
        resources={"limits": {"memory": "20Mi"}},
    )  # fmt: skip
    await run_pod(client, namespace, node, "hog", [hog], restartPolicy="Never")
    pod = await wait_phase(client, namespace, "hog", "Failed", within=60)
    term = status_of(pod, "hog")["state"]["terminated"]
    assert (term["reason"], term["exitCode"]) == ("OOMKilled", 137)


async def test_two_containers_share_localhost(client: Client, namespace: str, node: Node) -> None:
    server = container(
        "web", "mkdir -p /www; echo from-web > /www/index.html; exec httpd -f -p 8080 -h /www"
    )
    probe = container(
        "probe",
        "for i in $(seq 50); do wget -q -O - http://127.0.0.1:8080/ && break; sleep 0.2; done; "
        "exec sleep 3600",
    )
    pod = await run_pod(client, namespace, node, "duo", [server, probe])
    assert "from-web" in await wait_log(node, pod, "probe", "from-web")


async def test_liveness_failure_restarts_container(
    client: Client, namespace: str, node: Node
) -> None:
    c = container(
        "c", "touch /tmp/healthy; sleep 2; rm /tmp/healthy; exec sleep 3600",
        livenessProbe={"exec": {"command": ["cat", "/tmp/healthy"]},
                       "periodSeconds": 1, "failureThreshold": 2},
    )  # fmt: skip
    await run_pod(client, namespace, node, "live", [c], terminationGracePeriodSeconds=1)

    async def restarted() -> Obj | None:
        p = await get(client, namespace, "live")
        cs = (p.get("status", {}).get("containerStatuses") or [{}])[0]
        return p if cs.get("restartCount", 0) >= 1 and "running" in cs.get("state", {}) else None

    await eventually(restarted, within=40)
    killing = ("Killing", "Container c failed liveness probe, will be restarted")

    # the kubelet's recorder writes its Events apart from the restart: wait for them
    async def probe_events() -> list[tuple[str, str]]:
        events = await events_for(client, namespace, "live")
        return events if killing in events else []

    events = await eventually(probe_events)
    assert killing in events
    assert any(r == "Unhealthy" and m.startswith("Liveness probe failed:") for r, m in events)


async def test_readiness_probe_drives_ready(client: Client, namespace: str, node: Node) -> None:
    c = container(
        "c", "sleep 2; touch /tmp/ready; sleep 4; rm /tmp/ready; exec sleep 3600",
        readinessProbe={"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1},
    )  # fmt: skip
    await run_pod(client, namespace, node, "ready", [c])
    await wait_phase(client, namespace, "ready", "Running")

    async def ready_is(value: str) -> bool:
        p = await get(client, namespace, "ready")
        return condition(p, "Ready") == value and status_of(p, "c")["ready"] == (value == "True")

    await eventually(lambda: ready_is("True"), within=20)
    await eventually(lambda: ready_is("False"), within=20)


async def test_graceful_delete_runs_prestop_then_sigterm(
    client: Client, namespace: str, node: Node, tmp_path: Path
) -> None:
    host = tmp_path / "grace"
    c = container(
        "c", "trap 'echo got-TERM >> /h/log; exit 0' TERM; while true; do sleep 0.2; done",
        volumeMounts=[{"name": "h", "mountPath": "/h"}],
        lifecycle={"preStop": {"exec": {"command": ["sh", "-c", "echo prestop >> /h/log"]}}},
    )  # fmt: skip
    await run_pod(
        client, namespace, node, "grace", [c], terminationGracePeriodSeconds=20,
        volumes=[{"name": "h", "hostPath": {"path": str(host), "type": "DirectoryOrCreate"}}],
    )  # fmt: skip
    pod = await wait_phase(client, namespace, "grace", "Running")
    await asyncio.sleep(0.5)
    await client.delete(PODS, "grace", namespace)

    async def gone() -> bool:
        items = (await client.list(PODS, namespace))["items"]
        return not any(p["metadata"]["name"] == "grace" for p in items)

    await eventually(gone, within=25)
    assert (host / "log").read_text().split() == ["prestop", "got-TERM"]
    async with CRIClient(str(node.socket)) as cri:
        uid = pod["metadata"]["uid"]

        async def removed() -> bool:
            return not await cri.list_pod_sandbox(labels={"io.kubernetes.pod.uid": uid})

        await eventually(removed, within=30)  # a StopPodSandbox + RemovePodSandbox away


async def test_kubelet_killed_and_restarted_adopts_running_pods(
    client: Client, namespace: str, node: Node
) -> None:
    await run_pod(client, namespace, node, "steady", [container("c", "exec sleep 3600")])
    before = status_of(await wait_phase(client, namespace, "steady", "Running"), "c")
    await asyncio.to_thread(node.restart, True)  # kill -9, then start again
    await asyncio.sleep(3)  # a few PLEG relists and syncs of the new kubelet
    after = await get(client, namespace, "steady")
    cs = status_of(after, "c")
    assert after["status"]["phase"] == "Running"
    assert cs["containerID"] == before["containerID"]
    assert cs["restartCount"] == 0
    assert node.proc is not None and node.proc.poll() is None
    # and the restarted kubelet keeps working: a new pod runs
    await run_pod(client, namespace, node, "fresh", [container("c", "exec sleep 3600")])
    await wait_phase(client, namespace, "fresh", "Running")


async def test_force_deleted_pod_is_cleaned_up(client: Client, namespace: str, node: Node) -> None:
    pod = await run_pod(client, namespace, node, "gone", [container("c", "exec sleep 3600")])
    await wait_phase(client, namespace, "gone", "Running")
    await client.delete(PODS, "gone", namespace, grace_period_seconds=0)
    uid = pod["metadata"]["uid"]
    async with CRIClient(str(node.socket)) as cri:

        async def removed() -> bool:
            sandboxes = await cri.list_pod_sandbox(labels={"io.kubernetes.pod.uid": uid})
            containers = await cri.list_containers(labels={"io.kubernetes.pod.uid": uid})
            return not sandboxes and not containers

        await eventually(removed, within=20)


async def test_configmap_volume_follows_updates(client: Client, namespace: str, node: Node) -> None:
    meta = {"name": "live-cfg", "namespace": namespace}
    cm = await client.create(CONFIGMAPS, {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"v": "one"},
    })  # fmt: skip
    c = container(
        "c", "while true; do echo v=$(cat /cfg/v); sleep 0.5; done",
        volumeMounts=[{"name": "cfg", "mountPath": "/cfg"}],
    )  # fmt: skip
    pod = await run_pod(
        client, namespace, node, "follow", [c],
        volumes=[{"name": "cfg", "configMap": {"name": "live-cfg"}}],
    )  # fmt: skip
    await wait_log(node, pod, "c", "v=one")
    cm["data"] = {"v": "two"}
    await client.update(CONFIGMAPS, cm)
    await wait_log(node, pod, "c", "v=two", within=40)


async def test_host_network_and_security_context(
    client: Client, namespace: str, node: Node
) -> None:
    c = container(
        "c", "echo uid=$(id -u) gid=$(id -g); touch /x 2>/dev/null || echo rootfs=ro; "
        "exec sleep 3600",
        securityContext={"runAsUser": 1234, "runAsGroup": 2345, "readOnlyRootFilesystem": True},
    )  # fmt: skip
    pod = await run_pod(client, namespace, node, "hostnet", [c], hostNetwork=True)
    running = await wait_phase(client, namespace, "hostnet", "Running")
    assert running["status"]["podIP"] == "127.0.0.1"  # the node's address
    text = await wait_log(node, pod, "c", "rootfs=")
    assert "uid=1234 gid=2345" in text and "rootfs=ro" in text


async def test_persistent_volume_claim_on_host_path(
    client: Client, namespace: str, node: Node, tmp_path: Path
) -> None:
    pvs: Resource = REGISTRY.get("", "v1", "persistentvolumes")  # type: ignore[assignment]
    pvcs: Resource = REGISTRY.get("", "v1", "persistentvolumeclaims")  # type: ignore[assignment]
    pv_name = f"pv-{namespace}"
    await client.create(pvs, {
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv_name},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "hostPath": {"path": str(tmp_path / "pv")}, "storageClassName": "manual"},
    })  # fmt: skip
    claim = await client.create(pvcs, {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "manual",
                 "volumeName": pv_name, "resources": {"requests": {"storage": "1Gi"}}},
    })  # fmt: skip
    assert claim["spec"]["volumeName"] == pv_name
    # bound by hand, as the PV controller would: the PV's claimRef and the claim's phase
    # (the kubelet, as upstream's, mounts only a Bound claim whose PV points back at it)
    ref = {"kind": "PersistentVolumeClaim", "namespace": namespace, "name": "data",
           "uid": claim["metadata"]["uid"]}  # fmt: skip
    await client.patch(pvs, pv_name, {"spec": {"claimRef": ref}}, patch_type="merge")
    await client.patch(
        pvcs, "data", {"status": {"phase": "Bound"}}, namespace,
        patch_type="merge", subresource="status",
    )  # fmt: skip
    c = container(
        "c", "echo kept > /data/file; exec sleep 3600",
        volumeMounts=[{"name": "d", "mountPath": "/data"}],
    )  # fmt: skip
    await run_pod(
        client, namespace, node, "pvc", [c],
        volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
    )  # fmt: skip
    await wait_phase(client, namespace, "pvc", "Running")

    async def written() -> bool:
        path = tmp_path / "pv" / "file"
        return path.exists() and path.read_text() == "kept\n"

    await eventually(written)
    await client.delete(pvs, pv_name)


async def test_service_account_token_is_mounted_and_valid(
    client: Client, namespace: str, node: Node
) -> None:
    sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount"
    c = container(
        "c", f"echo ns=$(cat {sa_dir}/namespace); echo token=$(cat {sa_dir}/token); "
        f"grep -q 'BEGIN CERTIFICATE' {sa_dir}/ca.crt && echo ca=ok; exec sleep 3600",
    )  # fmt: skip
    pod = await run_pod(client, namespace, node, "sa", [c])
    spec = (await get(client, namespace, "sa"))["spec"]
    assert any(v["name"].startswith("kube-api-access-") for v in spec["volumes"])
    text = await wait_log(node, pod, "c", "ca=ok", within=40)
    assert f"ns={namespace}" in text
    token = text.split("token=", 1)[1].split()[0]
    reviews: Resource = REGISTRY.get("authentication.k8s.io", "v1", "tokenreviews")  # type: ignore[assignment]
    review = await client.create(reviews, {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token},
    })  # fmt: skip
    assert review["status"]["authenticated"] is True
    assert review["status"]["user"]["username"] == f"system:serviceaccount:{namespace}:default"


async def test_image_pulled_with_pull_secret_else_image_pull_backoff(
    client: Client, namespace: str, node: Node, registry: Registry
) -> None:
    # what `--insecure-registry HOST:PORT` writes; containerd rereads it on every pull
    config = ContainerdConfig(node.data_dir, registries={registry.host: RegistryHost(registry.url)})
    await asyncio.to_thread(config.write_registry_hosts)
    secret = registry.dockerconfigjson()
    secret["metadata"]["namespace"] = namespace
    await client.create(SECRETS, secret)
    c = container("c", "echo pulled-and-running; exec sleep 3600")
    c.update(image=registry.busybox, imagePullPolicy="Always")
    pod = await run_pod(
        client, namespace, node, "pulled", [c], imagePullSecrets=[{"name": "regcred"}]
    )
    await wait_phase(client, namespace, "pulled", "Running", within=60)
    await wait_log(node, pod, "c", "pulled-and-running")
    reasons = [r for r, m in await events_for(client, namespace, "pulled") if "Pull" in r]
    assert reasons[:2] == ["Pulling", "Pulled"]

    await run_pod(client, namespace, node, "denied", [dict(c, name="c")])  # no pull secret

    async def backoff() -> Obj | None:
        p = await get(client, namespace, "denied")
        cs = (p.get("status", {}).get("containerStatuses") or [{}])[0]
        w = (cs.get("state") or {}).get("waiting") or {}
        return w if w.get("reason") in ("ErrImagePull", "ImagePullBackOff") else None

    waiting = await eventually(backoff, within=30)
    if waiting["reason"] == "ErrImagePull":
        assert "401 Unauthorized" in waiting["message"]
    await eventually(lambda: _reason_is(client, namespace, "denied", "ImagePullBackOff"), within=30)


async def _reason_is(client: Client, ns: str, name: str, reason: str) -> bool:
    p = await get(client, ns, name)
    cs = (p.get("status", {}).get("containerStatuses") or [{}])[0]
    return bool(((cs.get("state") or {}).get("waiting") or {}).get("reason") == reason)


async def test_active_deadline_fails_the_pod(client: Client, namespace: str, node: Node) -> None:
    await run_pod(
        client, namespace, node, "deadline", [container("c", "exec sleep 3600")],
        activeDeadlineSeconds=3, terminationGracePeriodSeconds=1,
    )  # fmt: skip
    pod = await wait_phase(client, namespace, "deadline", "Failed", within=30)
    assert pod["status"]["reason"] == "DeadlineExceeded"
    assert "terminated" in status_of(pod, "c")["state"]


async def test_http_readiness_and_tcp_liveness(client: Client, namespace: str, node: Node) -> None:
    c = container(
        "web", "mkdir -p /www; (sleep 4; echo ok > /www/ready) & exec httpd -f -p 8080 -h /www",
        ports=[{"name": "http", "containerPort": 8080}],
        readinessProbe={"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1},
        livenessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1},
    )  # fmt: skip
    await run_pod(client, namespace, node, "probed", [c])
    pod = await wait_phase(client, namespace, "probed", "Running")
    assert condition(pod, "Ready") == "False"  # /ready is a 404 for the first 4 s

    async def ready() -> Obj | None:
        p = await get(client, namespace, "probed")
        return p if condition(p, "Ready") == "True" else None

    pod = await eventually(ready, within=20)
    assert status_of(pod, "web")["restartCount"] == 0

    # the kubelet's recorder writes the Event apart from the probe's status: wait for it
    async def unhealthy() -> bool:
        return any(
            r == "Unhealthy"
            and "Readiness probe failed: HTTP probe failed with statuscode: 404" in m
            for r, m in await events_for(client, namespace, "probed")
        )

    assert await eventually(unhealthy)
