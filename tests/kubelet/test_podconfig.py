"""Pod → CRI config translation: the fields a runtime receives, resource formulas, env."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from pyk8s.kubelet.cri import api_pb2
from pyk8s.kubelet.podconfig import (
    EnvError,
    container_config,
    expand,
    linux_resources,
    resolve_env,
    sandbox_config,
)

POD: dict[str, Any] = {
    "metadata": {
        "name": "web",
        "namespace": "shop",
        "uid": "u-1",
        "labels": {"app": "web"},
        "annotations": {"note": "hi"},
    },
    "spec": {
        "nodeName": "node-a",
        "serviceAccountName": "sa",
        "terminationGracePeriodSeconds": 30,
        "securityContext": {
            "runAsUser": 1000,
            "runAsGroup": 2000,
            "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}],
        },
        "containers": [
            {
                "name": "app",
                "image": "busybox:1.36",
                "command": ["sh", "-c"],
                "args": ["echo $(GREETING) $$(HOME)"],
                "workingDir": "/srv",
                "tty": True,
                "ports": [
                    {"containerPort": 80, "hostPort": 8080, "protocol": "TCP"},
                    {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "1.2.3.4"},
                    {"containerPort": 9090},
                ],
                "securityContext": {
                    "runAsUser": 0,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"add": ["net_admin"], "drop": ["ALL"]},
                },
                "resources": {
                    "requests": {"cpu": "500m", "memory": "32Mi"},
                    "limits": {"cpu": "250m", "memory": "64Mi"},
                },
            }
        ],
    },
}


def pod(**spec: Any) -> dict[str, Any]:
    p = copy.deepcopy(POD)
    p["spec"].update(spec)
    return p


def test_sandbox_config_fields() -> None:
    cfg = sandbox_config(POD, attempt=2, log_root=Path("/logs"))
    assert cfg.metadata == api_pb2.PodSandboxMetadata(
        name="web", namespace="shop", uid="u-1", attempt=2
    )
    assert cfg.hostname == "web"
    assert cfg.log_directory == "/logs/shop_web_u-1"
    assert dict(cfg.labels) == {
        "app": "web",
        "io.kubernetes.pod.name": "web",
        "io.kubernetes.pod.namespace": "shop",
        "io.kubernetes.pod.uid": "u-1",
    }
    assert dict(cfg.annotations) == {"note": "hi"}
    assert list(cfg.port_mappings) == [
        api_pb2.PortMapping(protocol=api_pb2.TCP, container_port=80, host_port=8080),
        api_pb2.PortMapping(
            protocol=api_pb2.UDP, container_port=53, host_port=5353, host_ip="1.2.3.4"
        ),
    ]
    linux = cfg.linux
    assert linux.cgroup_parent == ""
    assert dict(linux.sysctls) == {"net.core.somaxconn": "1024"}
    sc = linux.security_context
    assert sc.run_as_user.value == 1000 and sc.run_as_group.value == 2000
    assert sc.namespace_options == api_pb2.NamespaceOption(
        network=api_pb2.POD, pid=api_pb2.CONTAINER, ipc=api_pb2.POD
    )
    assert not cfg.HasField("dns_config")


def test_sandbox_host_namespaces_and_dns() -> None:
    dns = api_pb2.DNSConfig(servers=["10.0.0.10"], searches=["shop.svc.cluster.local"])
    cfg = sandbox_config(pod(hostNetwork=True, hostPID=True, hostIPC=True, hostname="h"), dns=dns)
    assert cfg.hostname == ""
    assert cfg.dns_config == dns
    assert cfg.linux.security_context.namespace_options == api_pb2.NamespaceOption(
        network=api_pb2.NODE, pid=api_pb2.NODE, ipc=api_pb2.NODE
    )
    shared = sandbox_config(pod(shareProcessNamespace=True, hostname="custom"))
    assert shared.hostname == "custom"
    assert shared.linux.security_context.namespace_options.pid == api_pb2.POD
    assert shared.linux.security_context.run_as_user.value == 1000


def test_container_config_fields() -> None:
    c = POD["spec"]["containers"][0]
    mount = api_pb2.Mount(container_path="/data", host_path="/var/lib/x", readonly=True)
    env = [("GREETING", "hello"), ("HOME", "/root")]
    cfg = container_config(POD, c, restart_count=3, env=env, mounts=[mount])
    assert cfg.metadata == api_pb2.ContainerMetadata(name="app", attempt=3)
    assert cfg.image.image == "busybox:1.36"
    assert list(cfg.command) == ["sh", "-c"]
    assert list(cfg.args) == ["echo hello $(HOME)"]
    assert cfg.working_dir == "/srv"
    assert [(kv.key, kv.value) for kv in cfg.envs] == [("GREETING", "hello"), ("HOME", "/root")]
    assert list(cfg.mounts) == [mount]
    assert cfg.log_path == "app/3.log"
    assert dict(cfg.labels) == {
        "io.kubernetes.container.name": "app",
        "io.kubernetes.pod.name": "web",
        "io.kubernetes.pod.namespace": "shop",
        "io.kubernetes.pod.uid": "u-1",
    }
    ann = dict(cfg.annotations)
    assert ann["io.kubernetes.container.restartCount"] == "3"
    assert ann["io.kubernetes.container.terminationMessagePath"] == "/dev/termination-log"
    assert ann["io.kubernetes.container.terminationMessagePolicy"] == "File"
    assert ann["io.kubernetes.pod.terminationGracePeriod"] == "30"
    assert len(ann["io.kubernetes.container.hash"]) <= 8
    assert (cfg.tty, cfg.stdin, cfg.stdin_once) == (True, False, False)
    sc = cfg.linux.security_context
    assert sc.run_as_user.value == 0  # container overrides pod
    assert sc.run_as_group.value == 2000  # inherited from pod
    assert sc.readonly_rootfs and not sc.privileged
    assert list(sc.capabilities.add_capabilities) == ["NET_ADMIN"]
    assert list(sc.capabilities.drop_capabilities) == ["ALL"]
    assert sc.namespace_options.pid == api_pb2.CONTAINER
    assert cfg.linux.resources.memory_limit_in_bytes == 67108864


def test_container_hash_tracks_image() -> None:
    c = POD["spec"]["containers"][0]
    h1 = container_config(POD, c, restart_count=0, env=[], mounts=[])
    h2 = container_config(POD, {**c, "image": "busybox:1.37"}, restart_count=0, env=[], mounts=[])
    key = "io.kubernetes.container.hash"
    assert h1.annotations[key] != h2.annotations[key]
    assert (
        h1.annotations[key]
        == container_config(POD, c, restart_count=5, env=[], mounts=[]).annotations[key]
    )


def test_no_command_keeps_image_entrypoint() -> None:
    cfg = container_config(POD, {"name": "x", "image": "nginx"}, restart_count=0, env=[], mounts=[])
    assert list(cfg.command) == [] and list(cfg.args) == []


@pytest.mark.parametrize(
    ("resources", "shares", "quota", "memory"),
    [
        ({"requests": {"cpu": "500m"}}, 512, 0, 0),
        ({"limits": {"cpu": "250m", "memory": "64Mi"}}, 256, 25000, 67108864),
        ({"requests": {"cpu": "100m"}, "limits": {"cpu": "5m"}}, 102, 1000, 0),
        ({"requests": {"cpu": "1m"}}, 2, 0, 0),
        ({}, 2, 0, 0),
        ({"requests": {"cpu": "2"}, "limits": {"cpu": "2", "memory": "1Gi"}}, 2048, 200000, 2**30),
    ],
)
def test_linux_resources_formulas(
    resources: dict[str, Any], shares: int, quota: int, memory: int
) -> None:
    r = linux_resources({"name": "c", "image": "i", "resources": resources})
    assert (r.cpu_shares, r.cpu_period, r.cpu_quota, r.memory_limit_in_bytes) == (
        shares,
        100000,
        quota,
        memory,
    )


def _oom(resources: dict[str, Any], machine_memory: int = 0, **spec: Any) -> int:
    c = {"name": "c", "image": "i", "resources": resources}
    p = {"metadata": {"name": "p", "uid": "u"}, "spec": {"containers": [c], **spec}}
    return int(linux_resources(c, pod=p, machine_memory=machine_memory).oom_score_adj)


def test_oom_score_adj_per_qos() -> None:
    both = {"cpu": "1", "memory": "1Gi"}
    assert _oom({"requests": both, "limits": both}) == -997  # Guaranteed
    assert _oom({}) == 1000  # BestEffort
    assert _oom({}, priorityClassName="system-node-critical") == -997
    gib = 2**30
    assert _oom({"requests": {"memory": "1Gi"}}, machine_memory=4 * gib) == 750
    assert _oom({"requests": {"memory": "4Gi"}}, machine_memory=4 * gib) == 3
    assert _oom({"requests": {"memory": "1Ki"}}, machine_memory=4 * gib) == 999
    assert _oom({"requests": {"cpu": "1"}}) == 999  # machine memory unknown


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)-$(B)", "a-$(B)"),
        ("$$(A)", "$(A)"),
        ("$$$(A)", "$a"),
        ("cost $5 $", "cost $5 $"),
        ("$(A", "$(A"),
        ("$()", "$()"),
    ],
)
def test_expand(text: str, expected: str) -> None:
    assert expand(text, {"A": "a"}) == expected


def _env(container: dict[str, Any], **kw: Any) -> list[tuple[str, str]]:
    args: dict[str, Any] = {
        "node_name": "node-a",
        "host_ip": "10.0.0.1",
        "pod_ip": "10.244.0.5",
        "config_maps": {"cfg": {"MODE": "prod", "LEVEL": "3"}},
        "secrets": {"creds": {"TOKEN": b"s3cret", "USER": "bob"}},
    }
    args.update(kw)
    return resolve_env(POD, {"name": "c", "image": "i", **container}, **args)


def test_env_all_sources_in_order() -> None:
    container = {
        "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1500m"}},
        "envFrom": [
            {"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
            {"secretRef": {"name": "creds"}},
            {"configMapRef": {"name": "absent", "optional": True}},
        ],
        "env": [
            {"name": "USER", "value": "alice"},
            {"name": "GREETING", "value": "hi $(USER) from $(CFG_MODE) $(SVC_HOST) $(NOPE)"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {
                "name": "NOTE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['note']"}},
            },
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "POD_IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}},
            {"name": "CPU_LIM", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {
                "name": "CPU_REQ_M",
                "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}},
            },
            {
                "name": "MEM_REQ_MI",
                "valueFrom": {
                    "resourceFieldRef": {"resource": "requests.memory", "divisor": "1Mi"}
                },
            },
            {"name": "MEM_LIM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "LEVEL"}}},
            {"name": "TOK", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "TOKEN"}}},
            {
                "name": "SKIPPED",
                "valueFrom": {"secretKeyRef": {"name": "creds", "key": "X", "optional": True}},
            },
            {"name": "EMPTY"},
        ],
    }
    env = _env(
        container,
        service_env={"SVC_HOST": "10.96.0.1", "USER": "svc"},
        node_allocatable={"memory": "8Gi", "cpu": "4"},
        pod_ips=["10.244.0.5", "fd00::5"],
    )
    assert env == [
        ("CFG_MODE", "prod"),
        ("CFG_LEVEL", "3"),
        ("TOKEN", "s3cret"),
        ("USER", "alice"),
        ("GREETING", "hi alice from prod 10.96.0.1 $(NOPE)"),
        ("POD", "web"),
        ("NS", "shop"),
        ("UID", "u-1"),
        ("APP", "web"),
        ("NOTE", "hi"),
        ("NODE", "node-a"),
        ("SA", "sa"),
        ("HOST_IP", "10.0.0.1"),
        ("POD_IP", "10.244.0.5"),
        ("POD_IPS", "10.244.0.5,fd00::5"),
        ("CPU_LIM", "2"),
        ("CPU_REQ_M", "250"),
        ("MEM_REQ_MI", "64"),
        ("MEM_LIM", str(8 * 2**30)),
        ("LEVEL", "3"),
        ("TOK", "s3cret"),
        ("EMPTY", ""),
        ("SVC_HOST", "10.96.0.1"),
    ]


@pytest.mark.parametrize(
    ("container", "message"),
    [
        ({"envFrom": [{"configMapRef": {"name": "nope"}}]}, 'configmap "nope" not found'),
        ({"envFrom": [{"secretRef": {"name": "nope"}}]}, 'secret "nope" not found'),
        (
            {"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "k"}}}]},
            'configmap "x" not found',
        ),
        (
            {"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]},
            "couldn't find key k in ConfigMap shop/cfg",
        ),
        (
            {"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}}]},
            "couldn't find key k in Secret shop/creds",
        ),
    ],
)
def test_env_missing_sources(container: dict[str, Any], message: str) -> None:
    with pytest.raises(EnvError) as err:
        _env(container)
    assert err.value.reason == "CreateContainerConfigError"
    assert err.value.message == message
    assert str(err.value) == message


def test_env_optional_missing_sources_are_skipped() -> None:
    env = _env(
        {
            "env": [
                {
                    "name": "A",
                    "valueFrom": {"configMapKeyRef": {"name": "x", "key": "k", "optional": True}},
                },
                {
                    "name": "B",
                    "valueFrom": {"secretKeyRef": {"name": "x", "key": "k", "optional": True}},
                },
                {"name": "C", "value": "$(A)"},
            ]
        }
    )
    assert env == [("C", "$(A)")]
