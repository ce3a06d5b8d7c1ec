"""The kubelet's Node object and conditions, built from a fake /proc + /etc tree."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from pyk8s.kubelet.nodestatus import (
    HostFacts,
    architecture,
    host_facts,
    node_conditions,
    node_object,
)

MEMINFO = """\
MemTotal:       16318412 kB
MemFree:         1000000 kB
MemAvailable:    8000000 kB
Buffers:          200000 kB
HugePages_Total:       0
"""


def fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    files = {
        "proc/meminfo": MEMINFO,
        "proc/sys/kernel/pid_max": "4194304\n",
        "proc/sys/kernel/random/boot_id": "0f6c2f41-6c56-4c3e-9a3c-3b2d7e0f0a11\n",
        "etc/machine-id": "5e1f7c9a0b2d4e6f8a1b3c5d7e9f0a2b\n",
        "etc/os-release": 'NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
        "sys/class/dmi/id/product_uuid": "4c4c4544-0042-3510-8051-b3c04f4e3232\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    for pid in ("1", "42", "1337"):
        (root / "proc" / pid).mkdir()
    (root / "proc" / "self").mkdir()  # not a pid
    return root


def facts(**changes: object) -> HostFacts:
    base = HostFacts(
        cpus=4,
        memory=16318412 * 1024,
        memory_available=8 * 1024**3,
        ephemeral_storage=100 * 1024**3,
        disk_available=50 * 1024**3,
        kernel_version="6.1.0-13-amd64",
        os_image="Debian GNU/Linux 12 (bookworm)",
        architecture="amd64",
        machine_id="m",
        system_uuid="u",
        boot_id="b",
        hostname="node-a",
        pid_max=4194304,
        pids=300,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_host_facts_from_fake_tree(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    f = host_facts(root, data_dir=tmp_path)
    st = os.statvfs(tmp_path)
    assert f.memory == 16318412 * 1024
    assert f.memory_available == 8000000 * 1024
    assert f.ephemeral_storage == st.f_blocks * st.f_frsize
    assert f.os_image == "Debian GNU/Linux 12 (bookworm)"
    assert f.machine_id == "5e1f7c9a0b2d4e6f8a1b3c5d7e9f0a2b"
    assert f.system_uuid == "4c4c4544-0042-3510-8051-b3c04f4e3232"
    assert f.boot_id == "0f6c2f41-6c56-4c3e-9a3c-3b2d7e0f0a11"
    assert f.pid_max == 4194304
    assert f.pids == 3
    assert f.kernel_version == os.uname().release


def test_missing_files_give_empty_values(tmp_path: Path) -> None:
    f = host_facts(tmp_path / "empty", data_dir=tmp_path / "not" / "yet" / "created")
    assert (f.machine_id, f.boot_id, f.memory, f.pid_max, f.pids) == ("", "", 0, 0, 0)
    assert f.os_image == "Linux"
    assert f.ephemeral_storage > 0  # the nearest existing parent's filesystem


def test_real_host_smoke(tmp_path: Path) -> None:
    f = host_facts(data_dir=tmp_path)
    assert f.cpus > 0 and f.memory > 0 and f.ephemeral_storage > 0
    assert f.architecture in {"amd64", "arm64"} or f.architecture == os.uname().machine
    assert f.pids > 0 and f.hostname


def test_architecture_names() -> None:
    assert architecture("x86_64") == "amd64"
    assert architecture("aarch64") == "arm64"
    assert architecture("mips") == "mips"


def test_node_object_capacity_allocatable_and_info(tmp_path: Path) -> None:
    f = dataclasses.replace(
        host_facts(fake_root(tmp_path), data_dir=tmp_path),
        ephemeral_storage=100 * 1024**3,
        cpus=4,
        architecture="amd64",
    )
    node = node_object(
        "node-a",
        f,
        addresses=[("InternalIP", "10.0.0.5")],
        pod_cidr="10.244.1.0/24",
        runtime_version="containerd://1.6.20",
        labels={"role": "worker"},
        taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}],
    )
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "node-a"
    assert labels["kubernetes.io/os"] == labels["beta.kubernetes.io/os"] == "linux"
    assert labels["kubernetes.io/arch"] == labels["beta.kubernetes.io/arch"] == "amd64"
    assert labels["role"] == "worker"
    assert node["spec"] == {
        "podCIDR": "10.244.1.0/24",
        "podCIDRs": ["10.244.1.0/24"],
        "taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}],
    }
    status = node["status"]
    assert status["capacity"] == {
        "cpu": "4",
        "memory": "16318412Ki",
        "ephemeral-storage": "100Gi",
        "pods": "110",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
    }
    # minus memory.available<100Mi and nodefs.available<10%
    assert status["allocatable"]["memory"] == f"{16318412 - 100 * 1024}Ki"
    assert status["allocatable"]["ephemeral-storage"] == "90Gi"
    assert status["allocatable"]["cpu"] == "4" and status["allocatable"]["pods"] == "110"
    assert status["nodeInfo"] == {
        "machineID": "5e1f7c9a0b2d4e6f8a1b3c5d7e9f0a2b",
        "systemUUID": "4c4c4544-0042-3510-8051-b3c04f4e3232",
        "bootID": "0f6c2f41-6c56-4c3e-9a3c-3b2d7e0f0a11",
        "kernelVersion": os.uname().release,
        "osImage": "Debian GNU/Linux 12 (bookworm)",
        "containerRuntimeVersion": "containerd://1.6.20",
        "kubeletVersion": "v1.32.0",
        "kubeProxyVersion": "",
        "operatingSystem": "linux",
        "architecture": "amd64",
    }
    assert status["addresses"] == [
        {"type": "InternalIP", "address": "10.0.0.5"},
        {"type": "Hostname", "address": "node-a"},
    ]
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}


def test_node_object_without_cidr_or_taints() -> None:
    node = node_object("n", facts(), addresses=[], pod_cidr=None, runtime_version="x://1")
    assert node["spec"] == {}
    assert node["status"]["addresses"] == [{"type": "Hostname", "address": "n"}]


def by_type(conds: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {c["type"]: c for c in conds}


def test_healthy_node_conditions() -> None:
    conds = node_conditions(facts(), "T1", None, runtime_ready=True, network_ready=True)
    assert [c["type"] for c in conds] == ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
    got = {c["type"]: (c["status"], c["reason"], c["message"]) for c in conds}
    assert got == {
        "MemoryPressure": (
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        "DiskPressure": ("False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        "PIDPressure": ("False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        "Ready": ("True", "KubeletReady", "kubelet is posting ready status"),
    }
    assert all(c["lastHeartbeatTime"] == c["lastTransitionTime"] == "T1" for c in conds)


def test_pressure_flips() -> None:
    low = facts(memory_available=50 * 1024**2, disk_available=5 * 1024**3, pids=4100000)
    conds = by_type(node_conditions(low, "T1", None, runtime_ready=True, network_ready=True))
    assert (conds["MemoryPressure"]["status"], conds["MemoryPressure"]["reason"]) == (
        "True",
        "KubeletHasInsufficientMemory",
    )
    assert (conds["DiskPressure"]["status"], conds["DiskPressure"]["reason"]) == (
        "True",
        "KubeletHasDiskPressure",
    )
    assert (conds["PIDPressure"]["status"], conds["PIDPressure"]["reason"]) == (
        "True",
        "KubeletHasInsufficientPID",
    )


def test_transition_time_kept_while_status_unchanged() -> None:
    first = node_conditions(facts(), "T1", None, runtime_ready=True, network_ready=True)
    second = by_type(node_conditions(facts(), "T2", first, runtime_ready=True, network_ready=True))
    assert second["Ready"]["lastTransitionTime"] == "T1"
    assert second["Ready"]["lastHeartbeatTime"] == "T2"
    third = by_type(
        node_conditions(
            facts(memory_available=0),
            "T3",
            list(second.values()),
            runtime_ready=True,
            network_ready=True,
        )
    )
    assert third["MemoryPressure"]["lastTransitionTime"] == "T3"
    assert third["DiskPressure"]["lastTransitionTime"] == "T1"


def test_not_ready_messages() -> None:
    conds = by_type(
        node_conditions(
            facts(),
            "T1",
            None,
            runtime_ready=True,
            network_ready=False,
            network_message="reason:NetworkPluginNotReady message:cni plugin not initialized",
        )
    )
    ready = conds["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "KubeletNotReady")
    assert ready["message"] == (
        "container runtime network not ready: NetworkReady=false "
        "reason:NetworkPluginNotReady message:cni plugin not initialized"
    )
    down = by_type(node_conditions(facts(), "T1", None, runtime_ready=False, network_ready=True))
    assert down["Ready"]["message"] == "container runtime is down"
