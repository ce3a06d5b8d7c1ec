"""Per-volume usage: the ``volume`` entries of each pod in ``/stats/summary`` and the
``kubelet_volume_stats_*`` gauges of claims on ``/metrics``, as upstream reports them.

Upstream measures volumes in the background (every ``volumeStatsAggPeriod``, 1 minute)
because walking a directory tree is slow; so does :class:`VolumeStats`: ``refresh``
walks every set-up volume in a thread and caches the figures, which the summary and the
metrics read. Capacity, available and inodes come from ``statvfs`` of the volume's
filesystem; used bytes and inodes from a walk of its tree (upstream's ``du``-based
``MetricsDu``) — except CSI volumes whose driver has GET_VOLUME_STATS (its
NodeGetVolumeStats figures, upstream's ``MetricsCSI``) and ``local`` volumes, whose
whole filesystem is the volume
(``MetricsStatFS``: used = capacity - free). A pod's own ``hostPath`` volumes are not
reported (upstream's ``MetricsNil``); a claim bound to a hostPath PV (what the local-path
provisioner makes) is, by walking its directory.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pyk8s.kubelet.volumes import MountedVolume

#: upstream's default volumeStatsAggPeriod
REFRESH_PERIOD = 60.0

_DU = {
    "kubernetes.io/empty-dir",
    "kubernetes.io/configmap",
    "kubernetes.io/secret",
    "kubernetes.io/projected",
    "kubernetes.io/downward-api",
    "kubernetes.io/csi",
}
_STATFS = {"kubernetes.io/local-volume"}
_LABELS = ("namespace", "persistentvolumeclaim")
_METRICS = (
    ("capacity_bytes", "capacityBytes", "Capacity in bytes of the volume"),
    ("available_bytes", "availableBytes", "Number of available bytes in the volume"),
    ("used_bytes", "usedBytes", "Number of used bytes in the volume"),
    ("inodes", "inodes", "Maximum number of inodes in the volume"),
    ("inodes_free", "inodesFree", "Number of free inodes in the volume"),
    ("inodes_used", "inodesUsed", "Number of used inodes in the volume"),
)


def _walk(path: Path) -> tuple[int, int]:
    """(bytes, inodes) used under ``path``: allocated blocks, each inode counted once,
    symlinks not followed (as ``du``)."""
    seen: set[tuple[int, int]] = set()
    used = inodes = 0
    stack = [str(path)]
    while stack:
        top = stack.pop()
        try:
            st = os.lstat(top)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            used += st.st_blocks * 512
            inodes += 1
        if os.path.isdir(top) and not os.path.islink(top):
            try:
                with os.scandir(top) as it:
                    stack.extend(e.path for e in it)
            except OSError:
                continue
    return used, inodes


def measure(path: Path, plugin: str, now: float | None = None) -> dict[str, Any] | None:
    """A summary API ``VolumeStats`` (without name/pvcRef) for one volume, or None for a
    plugin upstream does not measure."""
    claim_host_path = plugin == "kubernetes.io/host-path"
    if plugin not in _DU and plugin not in _STATFS and not claim_host_path:
        return None
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    capacity, available = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
    if plugin in _STATFS:
        used, inodes_used = capacity - st.f_bfree * st.f_frsize, st.f_files - st.f_ffree
    else:
        used, inodes_used = _walk(path)
    stamp = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
    return {
        "time": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "availableBytes": available,
        "capacityBytes": capacity,
        "usedBytes": used,
        "inodesFree": st.f_favail,
        "inodes": st.f_files,
        "inodesUsed": inodes_used,
    }


def _driver_stats(vol: MountedVolume) -> dict[str, Any] | None:
    """The volume's own figures (CSI NodeGetVolumeStats); None if the call fails."""
    assert vol.metrics is not None
    try:
        figures = vol.metrics()
    except Exception:  # a driver that fails: measured like any directory instead
        return None
    if not figures:
        return None
    stamp = datetime.fromtimestamp(time.time(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"time": stamp, **figures}


@dataclass
class VolumeStats:
    """The cached figures of every set-up volume, by pod uid (refreshed in a thread)."""

    #: pod uid -> its volumes' summary entries
    by_pod: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: pod uid -> namespace (for the claims' metric labels)
    namespaces: dict[str, str] = field(default_factory=dict)

    def _compute(
        self,
        mounted: Mapping[str, Mapping[str, MountedVolume]],
        namespaces: Mapping[str, str],
    ) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for uid, volumes in mounted.items():
            entries = []
            for name, vol in sorted(volumes.items()):
                if vol.plugin == "kubernetes.io/host-path" and not vol.claim:
                    continue  # a pod's own hostPath: not measured (upstream)
                stats = _driver_stats(vol) if vol.metrics is not None else None
                if stats is None:
                    stats = measure(vol.path, vol.plugin)
                if stats is None:
                    continue
                stats["name"] = name
                if vol.claim:
                    stats["pvcRef"] = {"name": vol.claim, "namespace": namespaces.get(uid, "")}
                entries.append(stats)
            out[uid] = entries
        return out

    async def refresh(
        self,
        mounted: Mapping[str, Mapping[str, MountedVolume]],
        namespaces: Mapping[str, str],
        *,
        new_only: bool = False,
    ) -> None:
        """Measure every pod's volumes; with ``new_only`` just the pods not measured yet
        (upstream starts a pod's calculator, which measures at once, when it first sees
        the pod). Pods no longer mounted are dropped either way."""
        wanted = {
            uid: dict(v) for uid, v in mounted.items() if not new_only or uid not in self.by_pod
        }
        fresh = await asyncio.to_thread(self._compute, wanted, dict(namespaces))
        kept = {u: e for u, e in self.by_pod.items() if u in mounted} if new_only else {}
        self.by_pod = {**kept, **fresh}
        self.namespaces = dict(namespaces)

    def for_pod(self, uid: str) -> list[dict[str, Any]]:
        return list(self.by_pod.get(uid, ()))


class VolumeStatsCollector(Collector):
    """``kubelet_volume_stats_*`` gauges, labelled namespace and persistentvolumeclaim,
    for every claim mounted on the node (one series per claim)."""

    def __init__(self, stats: VolumeStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = {
            key: GaugeMetricFamily(
                f"kubelet_volume_stats_{suffix}",
                help_text,
                labels=["namespace", "persistentvolumeclaim"],
            )
            for suffix, key, help_text in _METRICS
        }
        seen: set[tuple[str, str]] = set()
        for entries in self.stats.by_pod.values():
            for e in entries:
                ref = e.get("pvcRef")
                if ref is None or (ref["namespace"], ref["name"]) in seen:
                    continue
                seen.add((ref["namespace"], ref["name"]))
                for key, family in families.items():
                    family.add_metric([ref["namespace"], ref["name"]], float(e[key]))
        yield from families.values()
