"""What a real kubelet reports about its host: the Node object and its conditions.

The kubelet registers a Node describing the machine it runs on (capacity, allocatable,
``nodeInfo``, addresses, well-known labels) and keeps its pressure and Ready conditions
current. This module holds the pure part of that: :func:`host_facts` reads the host
(``/proc``, ``/etc``, ``statvfs``) into a :class:`HostFacts`, and :func:`node_object` /
:func:`node_conditions` turn facts into API objects. No API calls, no container runtime —
every file is read relative to a ``root`` so tests can point at a fake tree.

Defaults follow upstream's kubelet: 110 pods, allocatable = capacity minus the default
hard eviction thresholds (``memory.available<100Mi``, ``nodefs.available<10%``), and the
reasons/messages of the pressure and Ready conditions.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyk8s.api.quantity import BINARY_SI, format_quantity

Obj = dict[str, Any]

MAX_PODS = 110
KUBELET_PORT = 10250
EVICTION_MEMORY_AVAILABLE = 100 * 1024 * 1024  # memory.available<100Mi
EVICTION_NODEFS_PERCENT = 10  # nodefs.available<10%
PID_PRESSURE_PERCENT = 95  # PIDPressure when more than this share of pid_max is in use

_ARCH = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "i686": "386",
    "i386": "386",
    "riscv64": "riscv64",
}


@dataclass(frozen=True)
class HostFacts:
    """One reading of the host, in plain numbers and strings (bytes for sizes)."""

    cpus: int
    memory: int
    memory_available: int
    ephemeral_storage: int
    disk_available: int
    kernel_version: str
    os_image: str
    architecture: str
    machine_id: str
    system_uuid: str
    boot_id: str
    hostname: str
    pid_max: int
    pids: int


def _read(root: Path, rel: str) -> str:
    """The stripped text of ``root/rel``, or ``""`` if it cannot be read."""
    try:
        return (root / rel).read_text().strip()
    except OSError:
        return ""


def _meminfo(root: Path) -> dict[str, int]:
    """``/proc/meminfo`` as bytes per field (its values are in kB, i.e. KiB)."""
    out: dict[str, int] = {}
    for line in _read(root, "proc/meminfo").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            factor = 1024 if parts[1:] == ["kB"] else 1
            out[key.strip()] = int(parts[0]) * factor
    return out


def _os_image(root: Path) -> str:
    """``PRETTY_NAME`` from ``/etc/os-release`` (quotes removed), else ``"Linux"``."""
    for line in _read(root, "etc/os-release").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "PRETTY_NAME":
            return value.strip().strip("\"'")
    return "Linux"


def _pid_count(root: Path) -> int:
    try:
        return sum(1 for p in (root / "proc").iterdir() if p.name.isdigit())
    except OSError:
        return 0


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def architecture(machine: str) -> str:
    """Go's GOARCH name for a ``uname -m`` machine (unknown names pass through)."""
    return _ARCH.get(machine, machine)


def host_facts(root: Path = Path("/"), data_dir: Path = Path("/var/lib/kubelet")) -> HostFacts:
    """Read the host under ``root``; disk numbers come from the filesystem of ``data_dir``.

    ``data_dir`` falls back to its nearest existing parent, so a kubelet that has not
    created its directory yet still reports the disk it will use.
    """
    mem = _meminfo(root)
    d = data_dir
    while not d.exists() and d != d.parent:
        d = d.parent
    st = os.statvfs(d)
    uname = os.uname()
    pid_max = _read(root, "proc/sys/kernel/pid_max")
    return HostFacts(
        cpus=_cpus(),
        memory=mem.get("MemTotal", 0),
        memory_available=mem.get("MemAvailable", mem.get("MemFree", 0)),
        ephemeral_storage=st.f_blocks * st.f_frsize,
        disk_available=st.f_bavail * st.f_frsize,
        kernel_version=uname.release,
        os_image=_os_image(root),
        architecture=architecture(uname.machine),
        machine_id=_read(root, "etc/machine-id"),
        system_uuid=_read(root, "sys/class/dmi/id/product_uuid"),
        boot_id=_read(root, "proc/sys/kernel/random/boot_id"),
        hostname=socket.gethostname().lower(),
        pid_max=int(pid_max) if pid_max.isdigit() else 0,
        pids=_pid_count(root),
    )


def _bytes(n: int) -> str:
    return format_quantity(max(n, 0), BINARY_SI)


def capacity(facts: HostFacts) -> dict[str, str]:
    """``status.capacity`` as the kubelet reports it."""
    return {
        "cpu": str(facts.cpus),
        "memory": _bytes(facts.memory),
        "ephemeral-storage": _bytes(facts.ephemeral_storage),
        "pods": str(MAX_PODS),
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
    }


def allocatable(facts: HostFacts) -> dict[str, str]:
    """Capacity minus the default hard eviction thresholds (no kube/system reserved)."""
    nodefs_reserve = facts.ephemeral_storage * EVICTION_NODEFS_PERCENT // 100
    return {
        **capacity(facts),
        "memory": _bytes(facts.memory - EVICTION_MEMORY_AVAILABLE),
        "ephemeral-storage": _bytes(facts.ephemeral_storage - nodefs_reserve),
    }


def node_object(
    name: str,
    facts: HostFacts,
    *,
    addresses: list[tuple[str, str]],
    pod_cidr: str | None,
    runtime_version: str,
    kubelet_version: str = "v1.32.0",
    labels: dict[str, str] | None = None,
    taints: list[Obj] | None = None,
    kubelet_port: int = KUBELET_PORT,
) -> Obj:
    """The Node the kubelet registers: labels, spec (podCIDR, taints) and status.

    ``addresses`` is ``[(type, address), ...]`` (e.g. ``("InternalIP", "10.0.0.5")``); a
    ``Hostname`` address with ``name`` is appended unless one is given.
    """
    all_labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": facts.architecture,
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": facts.architecture,
        **(labels or {}),
    }
    spec: Obj = {}
    if pod_cidr:
        spec["podCIDR"] = pod_cidr
        spec["podCIDRs"] = [pod_cidr]
    if taints:
        spec["taints"] = [dict(t) for t in taints]
    addrs = [{"type": t, "address": a} for t, a in addresses]
    if not any(a["type"] == "Hostname" for a in addrs):
        addrs.append({"type": "Hostname", "address": name})
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": all_labels},
        "spec": spec,
        "status": {
            "capacity": capacity(facts),
            "allocatable": allocatable(facts),
            "addresses": addrs,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
            "nodeInfo": {
                "machineID": facts.machine_id,
                "systemUUID": facts.system_uuid,
                "bootID": facts.boot_id,
                "kernelVersion": facts.kernel_version,
                "osImage": facts.os_image,
                "containerRuntimeVersion": runtime_version,
                "kubeletVersion": kubelet_version,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": facts.architecture,
            },
        },
    }


def _pressure(facts: HostFacts) -> list[tuple[str, bool, tuple[str, str], tuple[str, str]]]:
    """(type, under pressure?, (reason, message) when fine, (reason, message) when not)."""
    disk_low = facts.disk_available * 100 < facts.ephemeral_storage * EVICTION_NODEFS_PERCENT
    pids_high = facts.pid_max > 0 and facts.pids * 100 > facts.pid_max * PID_PRESSURE_PERCENT
    return [
        (
            "MemoryPressure",
            facts.memory_available < EVICTION_MEMORY_AVAILABLE,
            ("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            ("KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
        ),
        (
            "DiskPressure",
            disk_low,
            ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("KubeletHasDiskPressure", "kubelet has disk pressure"),
        ),
        (
            "PIDPressure",
            pids_high,
            ("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ("KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
        ),
    ]


def node_conditions(
    facts: HostFacts,
    now: str,
    previous: list[Obj] | None,
    runtime_ready: bool,
    network_ready: bool,
    network_message: str = "",
) -> list[Obj]:
    """MemoryPressure, DiskPressure, PIDPressure and Ready, in upstream's order.

    ``lastHeartbeatTime`` is ``now``; ``lastTransitionTime`` is kept from the same type in
    ``previous`` when its status is unchanged, else ``now``. ``network_message`` is the
    runtime's reason/message for NetworkReady=false, appended to the Ready message.
    """
    before = {c.get("type"): c for c in previous or []}

    def cond(ctype: str, status: str, reason: str, message: str) -> Obj:
        old = before.get(ctype)
        kept = old is not None and old.get("status") == status and old.get("lastTransitionTime")
        return {
            "type": ctype,
            "status": status,
            "lastHeartbeatTime": now,
            "lastTransitionTime": kept or now,
            "reason": reason,
            "message": message,
        }

    out = []
    for ctype, bad, fine, pressed in _pressure(facts):
        reason, message = pressed if bad else fine
        out.append(cond(ctype, "True" if bad else "False", reason, message))
    errors = []
    if not runtime_ready:
        errors.append("container runtime is down")
    if not network_ready:
        detail = f" {network_message}" if network_message else ""
        errors.append(f"container runtime network not ready: NetworkReady=false{detail}")
    if errors:
        out.append(cond("Ready", "False", "KubeletNotReady", ", ".join(errors)))
    else:
        out.append(cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"))
    return out
