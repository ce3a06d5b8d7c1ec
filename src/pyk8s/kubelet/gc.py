"""Garbage collection of dead containers, dead sandboxes and unused images.

Exited containers stay in the runtime so that ``kubectl logs --previous`` and restart
counts work, and pulled images stay cached; without a collector both grow forever.
:class:`ContainerGC` follows the kubelet's rules: per pod and container name keep only
the newest ``max_per_pod_container`` dead instances; for pods that no longer exist
remove every dead container and every sandbox that is not ready. :class:`ImageGC`
removes images no container uses, least recently used first, once the image
filesystem is fuller than ``high_percent``, until it would be back at ``low_percent``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pyk8s.kubelet import images
from pyk8s.kubelet.cri import ContainerRuntime, CRIError, CRINotFound
from pyk8s.kubelet.cri import api_pb2 as pb
from pyk8s.kubelet.logs import unlink_container_logs
from pyk8s.kubelet.runtimestate import CONTAINER_NAME_LABEL, POD_UID_LABEL

log = logging.getLogger(__name__)


@dataclass
class ContainerGCResult:
    containers: int = 0  # dead containers removed
    sandboxes: int = 0  # dead sandboxes removed


class ContainerGC:
    """Removes dead containers and sandboxes; running ones and ready sandboxes are kept."""

    def __init__(
        self,
        cri: ContainerRuntime,
        *,
        max_per_pod_container: int = 1,
        min_age: float = 0.0,
        clock: Callable[[], float] = time.time,
        log_root: Path = Path("/var/log/pods"),
    ) -> None:
        self.cri = cri
        self.log_root = log_root
        self.max_per_pod_container = max_per_pod_container
        self.min_age = min_age  # seconds since creation before a dead container is evictable
        self._clock = clock

    async def collect(self, active_pod_uids: set[str]) -> ContainerGCResult:
        """One GC pass; ``active_pod_uids`` are the pods that still exist on this node."""
        result = ContainerGCResult()
        result.containers = await self._evict_containers(active_pod_uids)
        result.sandboxes = await self._evict_sandboxes(active_pod_uids)
        return result

    def _evictable(self, containers: Iterable[pb.Container]) -> dict[tuple[str, str], list[str]]:
        """Dead containers old enough, by (pod uid, container name), newest first."""
        cutoff_ns = (self._clock() - self.min_age) * 1e9
        units: dict[tuple[str, str], list[pb.Container]] = {}
        for c in containers:
            if c.state == pb.CONTAINER_RUNNING or c.created_at > cutoff_ns:
                continue
            uid = c.labels.get(POD_UID_LABEL, "")
            name = c.labels.get(CONTAINER_NAME_LABEL, c.metadata.name)
            units.setdefault((uid, name), []).append(c)
        return {
            unit: [c.id for c in sorted(group, key=lambda c: c.created_at, reverse=True)]
            for unit, group in units.items()
        }

    async def _evict_containers(self, active_pod_uids: set[str]) -> int:
        removed = 0
        for (uid, _name), ids in self._evictable(await self.cri.list_containers()).items():
            keep = self.max_per_pod_container if uid in active_pod_uids else 0
            for cid in ids[max(keep, 0) :]:
                removed += await self._remove_container(cid)
        return removed

    async def _remove_container(self, container_id: str) -> int:
        """Remove a container and its log file; 1 if it was removed, 0 if it failed."""
        log_path = ""
        with contextlib.suppress(CRIError):
            log_path = (await self.cri.container_status(container_id)).log_path
        try:
            await self.cri.remove_container(container_id)
        except CRINotFound:
            return 0
        except CRIError as err:
            log.warning("container GC: removing %s: %s", container_id, err)
            return 0
        if log_path:
            with contextlib.suppress(OSError):
                os.unlink(log_path)
        unlink_container_logs(self.log_root, container_id)
        return 1

    async def _evict_sandboxes(self, active_pod_uids: set[str]) -> int:
        """Keep a live pod's newest sandbox; never remove a ready one or one with containers."""
        with_containers = {c.pod_sandbox_id for c in await self.cri.list_containers()}
        by_pod: dict[str, list[pb.PodSandbox]] = {}
        for s in await self.cri.list_pod_sandbox():
            by_pod.setdefault(s.metadata.uid, []).append(s)
        removed = 0
        for uid, sandboxes in by_pod.items():
            sandboxes.sort(key=lambda s: s.created_at, reverse=True)
            candidates = sandboxes if uid not in active_pod_uids else sandboxes[1:]
            for s in candidates:
                if s.state == pb.SANDBOX_READY or s.id in with_containers:
                    continue
                try:
                    await self.cri.stop_pod_sandbox(s.id)
                    await self.cri.remove_pod_sandbox(s.id)
                    removed += 1
                except CRINotFound:
                    pass
                except CRIError as err:
                    log.warning("container GC: removing sandbox %s: %s", s.id, err)
        return removed


def statvfs_usage(path: Path) -> tuple[int, int]:
    """(capacity, available) bytes of the filesystem holding ``path``."""
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize


@dataclass
class _ImageRecord:
    first_seen: float
    last_used: float
    size: int = 0


@dataclass
class ImageGCResult:
    needed: int = 0  # bytes the pass set out to free (0: usage below the high threshold)
    freed: int = 0  # bytes of the images it removed
    removed: list[str] = field(default_factory=list)  # image ids


class ImageGC:
    """Frees image filesystem space by removing unused images, least recently used first."""

    def __init__(
        self,
        cri: ContainerRuntime,
        image_fs: Path,
        *,
        high_percent: int = 85,
        low_percent: int = 80,
        min_age: float = 120.0,
        sandbox_image: str = images.PAUSE_REF,
        usage: Callable[[], tuple[int, int]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= low_percent <= high_percent <= 100:
            raise ValueError("need 0 <= low_percent <= high_percent <= 100")
        self.cri = cri
        self.image_fs = image_fs
        self.high_percent = high_percent
        self.low_percent = low_percent
        self.min_age = min_age  # seconds an image must have been known before removal
        self.sandbox_image = sandbox_image
        self._usage = usage or (lambda: statvfs_usage(self.image_fs))
        self._clock = clock
        self._records: dict[str, _ImageRecord] = {}

    async def detect(self, in_use: Iterable[str] = ()) -> set[str]:
        """Refresh first-seen/last-used records; returns the ids of images in use.

        An image is in use if ``in_use`` names it (by id, tag or digest), any container
        in the runtime was created from it, or it is the sandbox image or pinned.
        """
        now = self._clock()
        names = set(in_use) | {self.sandbox_image}
        for c in await self.cri.list_containers():
            names.update((c.image_ref, c.image.image))
        used: set[str] = set()
        listed = await self.cri.list_images()
        for img in listed:
            record = self._records.setdefault(img.id, _ImageRecord(now, 0.0))
            record.size = img.size
            if img.pinned or names & {img.id, *img.repo_tags, *img.repo_digests}:
                record.last_used = now
                used.add(img.id)
        for gone in self._records.keys() - {img.id for img in listed}:
            del self._records[gone]
        return used

    async def collect(self, in_use: Iterable[str] = ()) -> ImageGCResult:
        """One pass: if usage is at or above ``high_percent``, free down to ``low_percent``."""
        used = await self.detect(in_use)
        capacity, available = self._usage()
        if capacity <= 0 or (capacity - available) * 100 < self.high_percent * capacity:
            return ImageGCResult()
        result = ImageGCResult(needed=capacity * (100 - self.low_percent) // 100 - available)
        now = self._clock()
        unused = sorted(
            (r.last_used, r.first_seen, image_id)
            for image_id, r in self._records.items()
            if image_id not in used
        )
        for _, first_seen, image_id in unused:
            if result.freed >= result.needed:
                break
            if now - first_seen < self.min_age:
                continue
            try:
                await self.cri.remove_image(image_id)
            except CRINotFound:
                pass
            except CRIError as err:
                log.warning("image GC: removing %s: %s", image_id, err)
                continue
            result.freed += self._records.pop(image_id).size
            result.removed.append(image_id)
        if result.freed < result.needed:
            log.warning(
                "image GC: wanted to free %d bytes, found only %d eligible",
                result.needed,
                result.freed,
            )
        return result
