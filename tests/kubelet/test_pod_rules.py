"""The kubelet's pure rules, checked against upstream's behaviour: back-off timing,
service environment variables, resolv.conf per dnsPolicy, and the pod status/phase."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyk8s.kubelet.backoff import Backoff
from pyk8s.kubelet.cri import api_pb2 as pb
from pyk8s.kubelet.envvars import service_env
from pyk8s.kubelet.podstatus import PodView, pod_status
from pyk8s.kubelet.resolv import dns_config
from pyk8s.kubelet.runtimestate import ContainerInfo, PodRuntime, SandboxInfo


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_backoff_is_immediate_then_10s_doubling_to_5_minutes() -> None:
    clock = Clock()
    b = Backoff(clock=clock)
    assert not b.in_backoff_since("p/c", clock.t)  # first restart: immediate
    b.next("p/c")
    delays = []
    for _ in range(8):
        finished = clock.t
        assert b.in_backoff_since("p/c", finished)
        delays.append(b.delay("p/c"))
        clock.t += b.delay("p/c")
        assert not b.in_backoff_since("p/c", finished)
        b.next("p/c")
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]


def test_backoff_resets_after_running_10_minutes() -> None:
    clock = Clock()
    b = Backoff(clock=clock)
    b.next("k")
    b.next("k")
    assert b.delay("k") == 20
    clock.t += 601  # the container ran for more than 2 x 5 min since its last restart
    assert b.delay("k") == 0
    b.next("k")
    assert b.delay("k") == 10


def _svc(name: str, ns: str, ip: str, ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"clusterIP": ip, "ports": ports}}


def test_service_env_links_like_upstream() -> None:
    services = [
        _svc(
            "kubernetes",
            "default",
            "10.43.0.1",
            [{"name": "https", "port": 443, "protocol": "TCP"}],
        ),
        _svc("my-db", "app", "10.43.0.7", [{"name": "sql", "port": 5432}]),
        _svc("other", "elsewhere", "10.43.0.9", [{"port": 80}]),
        _svc("headless", "app", "None", [{"port": 80}]),
    ]
    env = service_env(services, "app")
    assert env["KUBERNETES_SERVICE_HOST"] == "10.43.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert env["KUBERNETES_PORT"] == "tcp://10.43.0.1:443"
    assert env["KUBERNETES_PORT_443_TCP_ADDR"] == "10.43.0.1"
    assert env["MY_DB_SERVICE_HOST"] == "10.43.0.7"
    assert env["MY_DB_PORT_5432_TCP_PROTO"] == "tcp"
    assert not any(k.startswith(("OTHER_", "HEADLESS_")) for k in env)
    # enableServiceLinks: false keeps only the master service
    assert set(service_env(services, "app", False)) == {
        k for k in env if k.startswith("KUBERNETES_")
    }


def _pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "web", "uid": "u1"}, "spec": spec}


def test_dns_cluster_first_default_none(tmp_path: Path) -> None:
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n")
    cfg, missing = dns_config(_pod(), ["10.43.0.10"], resolv_conf=host)
    assert cfg is not None and not missing
    assert list(cfg.servers) == ["10.43.0.10"]
    assert list(cfg.searches) == [
        "web.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example",
    ]  # fmt: skip
    assert list(cfg.options) == ["ndots:5"]
    # no cluster DNS configured: upstream falls back to Default and says so
    assert dns_config(_pod(), [], resolv_conf=host) == (None, True)
    # hostNetwork pods use the host's resolver unless ClusterFirstWithHostNet
    assert dns_config(_pod(hostNetwork=True), ["10.43.0.10"], resolv_conf=host)[0] is None
    with_host = dns_config(
        _pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"), ["10.43.0.10"],
        resolv_conf=host,
    )[0]  # fmt: skip
    assert with_host is not None and list(with_host.servers) == ["10.43.0.10"]
    none = dns_config(
        _pod(dnsPolicy="None", dnsConfig={
            "nameservers": ["1.1.1.1"], "searches": ["a.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "rotate"}],
        }),
        ["10.43.0.10"], resolv_conf=host,
    )[0]  # fmt: skip
    assert none is not None
    assert (list(none.servers), list(none.searches), list(none.options)) == (
        ["1.1.1.1"], ["a.example"], ["ndots:2", "rotate"],
    )  # fmt: skip


def _container(
    name: str, attempt: int, state: int, exit_code: int = 0, reason: str = ""
) -> ContainerInfo:
    return ContainerInfo(
        id=f"{name}-{attempt}", name=name, attempt=attempt, state=state, created_at=1,
        started_at=2_000_000_000, finished_at=3_000_000_000 if state == pb.CONTAINER_EXITED else 0,
        exit_code=exit_code, reason=reason, image_ref="sha256:abc",
    )  # fmt: skip


def _status(spec: dict[str, Any], containers: list[ContainerInfo], **view: Any) -> dict[str, Any]:
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "spec": spec, "status": {}}
    rt = PodRuntime("u", [SandboxInfo("s", 0, True, 1, ["10.42.0.5"])], containers)
    return pod_status(pod, rt, PodView(host_ip="192.0.2.1", now="2026-01-01T00:00:00Z", **view))


def test_status_running_ready_and_ips() -> None:
    st = _status(
        {"containers": [{"name": "a", "image": "i"}]}, [_container("a", 0, pb.CONTAINER_RUNNING)]
    )
    assert st["phase"] == "Running"
    assert st["podIP"] == "10.42.0.5" and st["hostIP"] == "192.0.2.1"
    conds = {c["type"]: c["status"] for c in st["conditions"]}
    assert conds == {
        "PodReadyToStartContainers": "True", "Initialized": "True", "Ready": "True",
        "ContainersReady": "True", "PodScheduled": "True",
    }  # fmt: skip
    cs = st["containerStatuses"][0]
    assert cs["ready"] and cs["started"] and cs["containerID"] == "containerd://a-0"


def test_status_host_ips_of_a_dual_stack_node() -> None:
    """Both node addresses in ``hostIPs`` (the primary in ``hostIP``), and a hostNetwork
    pod's ``podIPs`` are the node's two (issue 20)."""
    running = [_container("a", 0, pb.CONTAINER_RUNNING)]
    spec = {"containers": [{"name": "a", "image": "i"}]}
    st = _status(spec, running, host_ips=("fd00:99::11",))
    assert st["hostIP"] == "192.0.2.1"
    assert st["hostIPs"] == [{"ip": "192.0.2.1"}, {"ip": "fd00:99::11"}]
    host = _status({**spec, "hostNetwork": True}, running, host_ips=("fd00:99::11",))
    assert host["podIPs"] == [{"ip": "192.0.2.1"}, {"ip": "fd00:99::11"}]


def test_status_crash_loop_keeps_pod_running_with_last_state() -> None:
    spec = {"containers": [{"name": "a", "image": "i"}]}
    waiting = {"a": ("CrashLoopBackOff", "back-off 10s restarting failed container=a pod=p_ns(u)")}
    st = _status(spec, [_container("a", 1, pb.CONTAINER_EXITED, 1, "Error")], waiting=waiting)
    cs = st["containerStatuses"][0]
    assert st["phase"] == "Running"  # restartPolicy Always: the pod is still Running
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert cs["restartCount"] == 1 and cs["ready"] is False
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert (ready["reason"], ready["message"]) == (
        "ContainersNotReady", "containers with unready status: [a]",
    )  # fmt: skip


def test_status_phases_by_restart_policy() -> None:
    done = [_container("a", 0, pb.CONTAINER_EXITED, 0), _container("b", 0, pb.CONTAINER_EXITED, 2)]
    spec = {"containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]}
    assert _status({**spec, "restartPolicy": "Never"}, done)["phase"] == "Failed"
    assert _status({**spec, "restartPolicy": "OnFailure"}, done)["phase"] == "Running"
    all_ok = [done[0], _container("b", 0, pb.CONTAINER_EXITED, 0)]
    assert _status({**spec, "restartPolicy": "Never"}, all_ok)["phase"] == "Succeeded"
    # a container that never ran keeps the pod Pending
    assert _status(spec, done[:1])["phase"] == "Pending"


def test_status_init_containers_gate_the_app_containers() -> None:
    spec = {
        "initContainers": [{"name": "i1", "image": "i"}, {"name": "i2", "image": "i"}],
        "containers": [{"name": "a", "image": "i"}],
    }
    st = _status(
        spec,
        [_container("i1", 0, pb.CONTAINER_EXITED, 0), _container("i2", 0, pb.CONTAINER_RUNNING)],
    )
    assert st["phase"] == "Pending"
    init = next(c for c in st["conditions"] if c["type"] == "Initialized")
    assert (init["status"], init["message"]) == ("False", "containers with incomplete status: [i2]")
    assert st["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    failed = _status(
        {**spec, "restartPolicy": "Never"}, [_container("i1", 0, pb.CONTAINER_EXITED, 1)]
    )
    assert failed["phase"] == "Failed"


def test_readiness_gates_hold_ready_until_their_condition_is_true() -> None:
    spec = {
        "containers": [{"name": "a", "image": "i"}],
        "readinessGates": [{"conditionType": "example.com/lb"}],
    }
    running = [_container("a", 0, pb.CONTAINER_RUNNING)]
    st = _status(spec, running)
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ReadinessGatesNotReady")
    assert next(c for c in st["conditions"] if c["type"] == "ContainersReady")["status"] == "True"
    pod = {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": spec,
        "status": {"conditions": [{"type": "example.com/lb", "status": "True"}]},
    }
    rt = PodRuntime("u", [SandboxInfo("s", 0, True, 1, ["10.42.0.5"])], running)
    st = pod_status(pod, rt, PodView(host_ip="192.0.2.1", now="2026-01-01T00:00:00Z"))
    assert next(c for c in st["conditions"] if c["type"] == "Ready")["status"] == "True"
