"""Resource usage of the node, its pods and their containers: /stats/summary,
/metrics/resource and /metrics/cadvisor (what Prometheus scrapes for container series).

``kubectl top`` and metrics-server read the kubelet's summary API; the kubelet has no
cAdvisor here, so container and pod figures come from the runtime's CRI
``ListContainerStats`` (pods are the sums of their containers, as Kubernetes does when
the runtime provides the stats) and node figures from ``/proc/stat``, ``/proc/meminfo``
and ``statvfs``. CPU rates (``usageNanoCores``) need two cumulative samples, so the
provider remembers the previous one per container and for the node.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from pyk8s.kubelet.cri import CRIError, RuntimeService
from pyk8s.kubelet.cri import api_pb2 as pb
from pyk8s.kubelet.runtimestate import CONTAINER_NAME_LABEL

_NS = 1_000_000_000
_CPU_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal (guest is in user)
_POD_MEMORY_SUMS = ("workingSetBytes", "usageBytes", "rssBytes", "pageFaults", "majorPageFaults")


def _rfc3339(ns: int) -> str:
    return datetime.fromtimestamp(ns / _NS, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fs_stats(path: Path, now_ns: int) -> dict[str, Any]:
    st = os.statvfs(path)
    capacity, available = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
    return {
        "time": _rfc3339(now_ns),
        "availableBytes": available,
        "capacityBytes": capacity,
        "usedBytes": (st.f_blocks - st.f_bfree) * st.f_frsize,
        "inodesFree": st.f_favail,
        "inodes": st.f_files,
        "inodesUsed": st.f_files - st.f_ffree,
    }


def _sum(stats: Iterable[dict[str, Any]], keys: Iterable[str]) -> dict[str, Any]:
    """Add up ``keys`` over container cpu/memory dicts; time is the latest sample's."""
    total: dict[str, Any] = {}
    for s in stats:
        total["time"] = max(total.get("time", ""), s["time"])
        for key in keys:
            if key in s:
                total[key] = total.get(key, 0) + s[key]
    return total


class StatsProvider:
    """Builds the summary API document from the CRI and the node's /proc.

    ``root_dir`` is the kubelet's data directory (its filesystem is the node ``fs``),
    ``image_fs`` the runtime's root (``runtime.imageFs``); ``proc`` and ``clock`` are
    there for tests.
    """

    def __init__(
        self,
        cri: RuntimeService,
        node_name: str,
        *,
        root_dir: Path = Path("/"),
        image_fs: Path | None = None,
        proc: Path = Path("/proc"),
        clock: Callable[[], float] = time.time,
        volume_stats: Callable[[str], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.cri = cri
        #: a pod uid's volume entries (the kubelet's VolumeStats.for_pod), if known
        self.volume_stats = volume_stats
        self.node_name = node_name
        self.root_dir = root_dir
        self.image_fs = image_fs or root_dir
        self.proc = proc
        self._clock = clock
        self._prev_cpu: dict[str, tuple[int, int]] = {}  # id or "" (node) -> (time ns, usage ns)

    def _nano_cores(self, key: str, timestamp: int, usage: int) -> int | None:
        """CPU rate between this sample and the previous one for ``key`` (None if unknown)."""
        prev = self._prev_cpu.get(key)
        self._prev_cpu[key] = (timestamp, usage)
        if prev is None or timestamp <= prev[0] or usage < prev[1]:
            return None
        return (usage - prev[1]) * _NS // (timestamp - prev[0])

    def _cpu(self, key: str, timestamp: int, usage: int, rate: int | None) -> dict[str, Any]:
        """CPU figures; ``rate`` (the runtime's own, if any) is used until we have two samples."""
        cpu: dict[str, Any] = {"time": _rfc3339(timestamp), "usageCoreNanoSeconds": usage}
        ours = self._nano_cores(key, timestamp, usage)
        rate = ours if ours is not None else rate
        if rate is not None:
            cpu["usageNanoCores"] = rate
        return cpu

    def _node_cpu(self, now_ns: int) -> dict[str, Any]:
        fields = (self.proc / "stat").read_text().splitlines()[0].split()[1:]
        ticks = sum(int(fields[i]) for i in _CPU_BUSY_FIELDS if i < len(fields))
        usage = ticks * _NS // os.sysconf("SC_CLK_TCK")
        return self._cpu("", now_ns, usage, None)

    def _node_memory(self, now_ns: int) -> dict[str, Any]:
        info: dict[str, int] = {}
        for line in (self.proc / "meminfo").read_text().splitlines():
            name, _, value = line.partition(":")
            parts = value.split()
            if parts:
                info[name] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
        total = info.get("MemTotal", 0)
        usage = total - info.get("MemFree", 0)
        working_set = max(usage - info.get("Inactive(file)", 0), 0)
        return {
            "time": _rfc3339(now_ns),
            "availableBytes": total - working_set,
            "usageBytes": usage,
            "workingSetBytes": working_set,
        }

    def _container(self, stats: pb.ContainerStats, created_at: int) -> dict[str, Any]:
        attrs = stats.attributes
        out: dict[str, Any] = {
            "name": attrs.labels.get(CONTAINER_NAME_LABEL, attrs.metadata.name),
            "startTime": _rfc3339(created_at),
        }
        if stats.HasField("cpu") and stats.cpu.HasField("usage_core_nano_seconds"):
            c = stats.cpu
            runtime_rate = c.usage_nano_cores.value if c.HasField("usage_nano_cores") else None
            out["cpu"] = self._cpu(
                attrs.id, c.timestamp, c.usage_core_nano_seconds.value, runtime_rate
            )
        if stats.HasField("memory"):
            m = stats.memory
            memory: dict[str, Any] = {"time": _rfc3339(m.timestamp)}
            for field, key in (
                ("working_set_bytes", "workingSetBytes"),
                ("available_bytes", "availableBytes"),
                ("usage_bytes", "usageBytes"),
                ("rss_bytes", "rssBytes"),
                ("page_faults", "pageFaults"),
                ("major_page_faults", "majorPageFaults"),
            ):
                if m.HasField(field):
                    memory[key] = getattr(m, field).value
            out["memory"] = memory
        if stats.HasField("writable_layer"):
            layer = stats.writable_layer
            out["rootfs"] = {
                "time": _rfc3339(layer.timestamp),
                "usedBytes": layer.used_bytes.value,
                "inodesUsed": layer.inodes_used.value,
            }
        return out

    async def _pods(self) -> list[dict[str, Any]]:
        sandboxes = {
            s.id: s for s in await self.cri.list_pod_sandbox() if s.state == pb.SANDBOX_READY
        }
        # per (sandbox, container name) the running instances, else only the newest one
        chosen: dict[tuple[str, str], list[pb.Container]] = {}
        for c in sorted(await self.cri.list_containers(), key=lambda c: c.created_at):
            if c.pod_sandbox_id in sandboxes:
                name = c.labels.get(CONTAINER_NAME_LABEL, c.metadata.name)
                chosen.setdefault((c.pod_sandbox_id, name), []).append(c)
        containers: dict[str, pb.Container] = {}
        for group in chosen.values():
            running = [c for c in group if c.state == pb.CONTAINER_RUNNING]
            containers.update((c.id, c) for c in running or group[-1:])
        per_pod: dict[str, list[dict[str, Any]]] = {sid: [] for sid in sandboxes}
        for stats in await self.cri.list_container_stats():
            if (owner := containers.get(stats.attributes.id)) is not None:
                per_pod[owner.pod_sandbox_id].append(self._container(stats, owner.created_at))
        for key in list(self._prev_cpu):  # forget containers that are gone
            if key and key not in containers:
                del self._prev_cpu[key]
        pods = []
        for sid, sandbox in sandboxes.items():
            stats_list = sorted(per_pod[sid], key=lambda s: s["name"])
            pod: dict[str, Any] = {
                "podRef": {
                    "name": sandbox.metadata.name,
                    "namespace": sandbox.metadata.namespace,
                    "uid": sandbox.metadata.uid,
                },
                "startTime": _rfc3339(sandbox.created_at),
                "containers": stats_list,
            }
            cpus = [s["cpu"] for s in stats_list if "cpu" in s]
            if cpus:
                pod["cpu"] = _sum(cpus, ("usageCoreNanoSeconds", "usageNanoCores"))
            memories = [s["memory"] for s in stats_list if "memory" in s]
            if memories:
                pod["memory"] = _sum(memories, _POD_MEMORY_SUMS)
            volumes = self.volume_stats(sandbox.metadata.uid) if self.volume_stats else []
            if volumes:
                pod["volume"] = volumes
            pods.append(pod)
        return sorted(pods, key=lambda p: (p["podRef"]["namespace"], p["podRef"]["name"]))

    async def summary(self) -> dict[str, Any]:
        """The ``/stats/summary`` document (a subset of Kubernetes' statsapi.Summary)."""
        pods = await self._pods()
        now_ns = int(self._clock() * _NS)
        boot = self._boot_time_ns()
        node: dict[str, Any] = {
            "nodeName": self.node_name,
            "cpu": self._node_cpu(now_ns),
            "memory": self._node_memory(now_ns),
            "fs": _fs_stats(self.root_dir, now_ns),
            "runtime": {"imageFs": _fs_stats(self.image_fs, now_ns)},
        }
        if boot is not None:
            node["startTime"] = _rfc3339(boot)
        return {"node": node, "pods": pods}

    async def cadvisor_metrics(self) -> str:
        """``/metrics/cadvisor``: cAdvisor's container series with its labels (container,
        id, image, name, namespace, pod). CPU, memory and the writable layer come from
        the runtime's stats (containerd reads the containers' cgroups), ``id`` is the
        container's cgroup, network counters are read in each pod's network namespace
        (through its sandbox process) and reported on the sandbox as ``container="POD"``.
        """
        samples: dict[str, list[str]] = {name: [] for name, _, _ in _CADVISOR}
        now = self._clock()

        def add(metric: str, labels: dict[str, str], value: float) -> None:
            samples[metric].append(f"{metric}{{{_labels(**labels)}}} {_number(value)}")

        sandboxes = {
            s.id: s for s in await self.cri.list_pod_sandbox() if s.state == pb.SANDBOX_READY
        }
        running = {
            c.id: c
            for c in await self.cri.list_containers()
            if c.pod_sandbox_id in sandboxes and c.state == pb.CONTAINER_RUNNING
        }
        for stats in await self.cri.list_container_stats():
            c = running.get(stats.attributes.id)
            if c is None:
                continue
            meta = sandboxes[c.pod_sandbox_id].metadata
            try:
                pid = _pid(await self.cri.container_info(c.id))
            except CRIError:  # gone since the listing
                continue
            labels = {
                "container": c.labels.get(CONTAINER_NAME_LABEL, c.metadata.name),
                "id": cgroup_path(self.proc, pid) if pid else "",
                "image": c.image.image or c.image_ref,
                "name": c.id,
                "namespace": meta.namespace,
                "pod": meta.name,
            }
            if stats.HasField("cpu") and stats.cpu.HasField("usage_core_nano_seconds"):
                seconds = stats.cpu.usage_core_nano_seconds.value / _NS
                add("container_cpu_usage_seconds_total", labels, seconds)
            if stats.HasField("memory"):
                m = stats.memory
                for field_name, metric in (
                    ("working_set_bytes", "container_memory_working_set_bytes"),
                    ("usage_bytes", "container_memory_usage_bytes"),
                    ("rss_bytes", "container_memory_rss"),
                ):
                    if m.HasField(field_name):
                        add(metric, labels, getattr(m, field_name).value)
                for field_name, kind in (
                    ("page_faults", "pgfault"),
                    ("major_page_faults", "pgmajfault"),
                ):
                    if m.HasField(field_name):
                        value = getattr(m, field_name).value
                        add(
                            "container_memory_failures_total",
                            {**labels, "failure_type": kind, "scope": "container"},
                            value,
                        )
            if stats.HasField("writable_layer"):
                layer = stats.writable_layer
                device = {**labels, "device": layer.fs_id.mountpoint or str(self.image_fs)}
                add("container_fs_usage_bytes", device, layer.used_bytes.value)
                if layer.HasField("inodes_used"):
                    add("container_fs_inodes_total", device, layer.inodes_used.value)
            add("container_start_time_seconds", labels, c.created_at / _NS)
            add("container_last_seen", labels, now)
        for sid, sandbox in sandboxes.items():
            with contextlib.suppress(CRIError):
                status = await self.cri.pod_sandbox_status(sid, verbose=True)
                pid = _pid(dict(status.info))
                if pid is None:
                    continue
                labels = {
                    "container": "POD",
                    "id": cgroup_path(self.proc, pid),
                    "image": "",
                    "name": sid,
                    "namespace": sandbox.metadata.namespace,
                    "pod": sandbox.metadata.name,
                }
                for interface, counters in sorted(net_dev(self.proc, pid).items()):
                    for column, metric in _NET_DEV_COLUMNS.items():
                        if column < len(counters):
                            add(metric, {**labels, "interface": interface}, counters[column])
        samples["machine_cpu_cores"].append(f"machine_cpu_cores {os.cpu_count() or 0}")
        memory = self._node_memory(int(now * _NS))
        total = memory["availableBytes"] + memory["workingSetBytes"]  # MemTotal
        samples["machine_memory_bytes"].append(f"machine_memory_bytes {total}")
        lines = []
        for name, kind, help_text in _CADVISOR:
            if samples[name]:
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples[name]]
        return "\n".join(lines) + "\n"

    def _boot_time_ns(self) -> int | None:
        for line in (self.proc / "stat").read_text().splitlines():
            if line.startswith("btime "):
                return int(line.split()[1]) * _NS
        return None


def _labels(**labels: str) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return ",".join(f'{k}="{escape(v)}"' for k, v in labels.items())


def _epoch(rfc3339: str) -> int:
    return int(datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


_METRICS: tuple[tuple[str, str, str], ...] = (
    ("container_cpu_usage_seconds_total", "counter", "CPU core-seconds used by the container"),
    ("container_memory_working_set_bytes", "gauge", "Working set of the container in bytes"),
    ("container_start_time_seconds", "gauge", "When the container started, unix seconds"),
    ("node_cpu_usage_seconds_total", "counter", "CPU core-seconds used by the node"),
    ("node_memory_working_set_bytes", "gauge", "Working set of the node in bytes"),
    ("pod_cpu_usage_seconds_total", "counter", "CPU core-seconds used by the pod"),
    ("pod_memory_working_set_bytes", "gauge", "Working set of the pod in bytes"),
    ("scrape_error", "gauge", "1 if the kubelet could not read container metrics, else 0"),
)


def resource_metrics(summary: dict[str, Any] | None) -> str:
    """``/metrics/resource`` in Prometheus text format from a :meth:`StatsProvider.summary`.

    ``None`` (the summary could not be built) gives ``scrape_error 1`` and nothing else.
    """
    samples: dict[str, list[str]] = {name: [] for name, _, _ in _METRICS}

    def add(metric: str, labels: str, value: float, time: str | None = None) -> None:
        head = f"{metric}{{{labels}}}" if labels else metric
        stamp = f" {_epoch(time) * 1000}" if time else ""  # sample time in milliseconds
        samples[metric].append(f"{head} {_number(value)}{stamp}")

    samples["scrape_error"].append(f"scrape_error {0 if summary is not None else 1}")
    if summary is not None:
        node = summary.get("node", {})
        if "usageCoreNanoSeconds" in node.get("cpu", {}):
            cpu = node["cpu"]
            add("node_cpu_usage_seconds_total", "", cpu["usageCoreNanoSeconds"] / _NS, cpu["time"])
        if "workingSetBytes" in node.get("memory", {}):
            mem = node["memory"]
            add("node_memory_working_set_bytes", "", mem["workingSetBytes"], mem["time"])
        for pod in summary.get("pods", []):
            ref = pod["podRef"]
            pod_labels = _labels(namespace=ref["namespace"], pod=ref["name"])
            if "cpu" in pod:
                seconds = pod["cpu"].get("usageCoreNanoSeconds", 0) / _NS
                add("pod_cpu_usage_seconds_total", pod_labels, seconds, pod["cpu"]["time"])
            if "workingSetBytes" in pod.get("memory", {}):
                mem = pod["memory"]
                add("pod_memory_working_set_bytes", pod_labels, mem["workingSetBytes"], mem["time"])
            for c in pod.get("containers", []):
                labels = _labels(container=c["name"], namespace=ref["namespace"], pod=ref["name"])
                if "cpu" in c:
                    seconds = c["cpu"]["usageCoreNanoSeconds"] / _NS
                    add("container_cpu_usage_seconds_total", labels, seconds, c["cpu"]["time"])
                if "workingSetBytes" in c.get("memory", {}):
                    mem = c["memory"]
                    working_set = mem["workingSetBytes"]
                    add("container_memory_working_set_bytes", labels, working_set, mem["time"])
                add("container_start_time_seconds", labels, _epoch(c["startTime"]))
    lines = []
    for name, kind, help_text in _METRICS:
        if samples[name]:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples[name]]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- /metrics/cadvisor

_CADVISOR: tuple[tuple[str, str, str], ...] = (
    ("container_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed in seconds."),
    ("container_memory_working_set_bytes", "gauge", "Current working set in bytes."),
    (
        "container_memory_usage_bytes",
        "gauge",
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
    ),
    ("container_memory_rss", "gauge", "Size of RSS in bytes."),
    (
        "container_memory_failures_total",
        "counter",
        "Cumulative count of memory allocation failures.",
    ),
    (
        "container_fs_usage_bytes",
        "gauge",
        "Number of bytes that are consumed by the container on this filesystem.",
    ),
    ("container_fs_inodes_total", "gauge", "Number of Inodes"),
    ("container_network_receive_bytes_total", "counter", "Cumulative count of bytes received"),
    ("container_network_receive_packets_total", "counter", "Cumulative count of packets received"),
    (
        "container_network_receive_packets_dropped_total",
        "counter",
        "Cumulative count of packets dropped while receiving",
    ),
    (
        "container_network_receive_errors_total",
        "counter",
        "Cumulative count of errors encountered while receiving",
    ),
    ("container_network_transmit_bytes_total", "counter", "Cumulative count of bytes transmitted"),
    (
        "container_network_transmit_packets_total",
        "counter",
        "Cumulative count of packets transmitted",
    ),
    (
        "container_network_transmit_packets_dropped_total",
        "counter",
        "Cumulative count of packets dropped while transmitting",
    ),
    (
        "container_network_transmit_errors_total",
        "counter",
        "Cumulative count of errors encountered while transmitting",
    ),
    (
        "container_start_time_seconds",
        "gauge",
        "Start time of the container since unix epoch in seconds.",
    ),
    ("container_last_seen", "gauge", "Last time a container was seen by the exporter"),
    ("machine_cpu_cores", "gauge", "Number of logical CPU cores."),
    ("machine_memory_bytes", "gauge", "Amount of memory installed on the machine."),
)

#: /proc/<pid>/net/dev columns (after the interface name) -> metric
_NET_DEV_COLUMNS = {
    0: "container_network_receive_bytes_total",
    1: "container_network_receive_packets_total",
    2: "container_network_receive_errors_total",
    3: "container_network_receive_packets_dropped_total",
    8: "container_network_transmit_bytes_total",
    9: "container_network_transmit_packets_total",
    10: "container_network_transmit_errors_total",
    11: "container_network_transmit_packets_dropped_total",
}


def _pid(info: dict[str, str]) -> int | None:
    """The process id in a CRI verbose ``info`` document (containerd's JSON)."""
    try:
        doc = orjson.loads(info.get("info", "{}"))
    except orjson.JSONDecodeError:
        return None
    pid = doc.get("pid") if isinstance(doc, dict) else None
    return pid if isinstance(pid, int) and pid > 0 else None


def cgroup_path(proc: Path, pid: int) -> str:
    """A process's cgroup (the ``id`` label cAdvisor gives a container): the unified
    hierarchy's path, else the memory controller's."""
    unified = memory = ""
    with contextlib.suppress(OSError):
        for line in (proc / str(pid) / "cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "":
                unified = path
            elif "memory" in controllers.split(","):
                memory = path
    return memory if memory and memory != "/" else unified


def net_dev(proc: Path, pid: int) -> dict[str, list[int]]:
    """Interface -> the counters of ``/proc/<pid>/net/dev`` (the pod's network namespace),
    loopback left out as cAdvisor does."""
    out: dict[str, list[int]] = {}
    with contextlib.suppress(OSError):
        for line in (proc / str(pid) / "net" / "dev").read_text().splitlines()[2:]:
            name, _, counters = line.partition(":")
            name = name.strip()
            if name and name != "lo":
                out[name] = [int(v) for v in counters.split()]
    return out
