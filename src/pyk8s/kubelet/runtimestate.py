"""What the container runtime holds for one pod, read back through the CRI.

The kubelet keeps no database of its own: after a restart (even a kill -9) everything it
needs — which sandbox a pod has, which containers ran, how often each was restarted, how
they exited — is in the runtime, found by the ``io.kubernetes.pod.uid`` label every
sandbox and container carries (:mod:`pyk8s.kubelet.podconfig` sets it). This module turns
those CRI lists into a small snapshot the pod worker and the status builder read, and
PLEG (:class:`Relister`) notices changes by diffing two cluster-wide lists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from pyk8s.kubelet.cri import CRINotFound, RuntimeService
from pyk8s.kubelet.cri import api_pb2 as pb

__all__ = [
    "POD_UID_LABEL",
    "ContainerInfo",
    "PodRuntime",
    "Relister",
    "SandboxInfo",
    "read_pod_runtime",
    "sandbox_info",
    "with_new_containers",
]

POD_UID_LABEL = "io.kubernetes.pod.uid"
CONTAINER_NAME_LABEL = "io.kubernetes.container.name"
HASH_ANNOTATION = "io.kubernetes.container.hash"
RUNTIME_PREFIX = "containerd://"


@dataclass
class ContainerInfo:
    """One container instance (one attempt of one container of the pod spec)."""

    id: str
    name: str
    attempt: int
    state: int
    created_at: int = 0  # ns since the epoch, as the CRI reports times
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    image: str = ""
    image_ref: str = ""
    hash: str = ""
    log_path: str = ""
    mounts: dict[str, str] = field(default_factory=dict)  # container path -> host path

    @property
    def running(self) -> bool:
        return self.state == pb.CONTAINER_RUNNING

    @property
    def exited(self) -> bool:
        return self.state == pb.CONTAINER_EXITED

    @property
    def container_id(self) -> str:
        return RUNTIME_PREFIX + self.id


@dataclass
class SandboxInfo:
    id: str
    attempt: int
    ready: bool
    created_at: int
    ips: list[str] = field(default_factory=list)


@dataclass
class PodRuntime:
    uid: str
    sandboxes: list[SandboxInfo] = field(default_factory=list)  # newest first
    containers: list[ContainerInfo] = field(default_factory=list)

    @property
    def sandbox(self) -> SandboxInfo | None:
        return self.sandboxes[0] if self.sandboxes else None

    def instances(self, name: str) -> list[ContainerInfo]:
        """Every instance of container ``name``, newest first."""
        found = [c for c in self.containers if c.name == name]
        return sorted(found, key=lambda c: (c.attempt, c.created_at), reverse=True)

    def latest(self, name: str) -> ContainerInfo | None:
        found = self.instances(name)
        return found[0] if found else None

    def previous(self, name: str) -> ContainerInfo | None:
        found = self.instances(name)
        return found[1] if len(found) > 1 else None

    def running(self) -> list[ContainerInfo]:
        return [c for c in self.containers if c.running]


def _container_info(c: pb.Container, st: pb.ContainerStatus | None) -> ContainerInfo:
    info = ContainerInfo(
        id=c.id,
        name=c.labels.get(CONTAINER_NAME_LABEL, c.metadata.name),
        attempt=c.metadata.attempt,
        state=c.state,
        created_at=c.created_at,
        image=c.image.image,
        image_ref=c.image_ref,
        hash=c.annotations.get(HASH_ANNOTATION, ""),
    )
    if st is not None:
        info.state = st.state
        info.started_at, info.finished_at = st.started_at, st.finished_at
        info.exit_code, info.reason, info.message = st.exit_code, st.reason, st.message
        info.image_ref = st.image_ref or info.image_ref
        info.log_path = st.log_path
        info.mounts = {m.container_path: m.host_path for m in st.mounts}
    return info


async def _status_or_none(cri: RuntimeService, cid: str) -> pb.ContainerStatus | None:
    try:
        return await cri.container_status(cid)
    except CRINotFound:
        return None


async def sandbox_info(cri: RuntimeService, sandbox_id: str) -> SandboxInfo | None:
    """One sandbox (with its IPs when ready) by id, from its status alone: what a pod
    worker that has just created it needs, without listing the pod's objects again."""
    try:
        status = (await cri.pod_sandbox_status(sandbox_id)).status
    except CRINotFound:
        return None
    info = SandboxInfo(
        status.id,
        status.metadata.attempt,
        status.state == pb.SANDBOX_READY,
        status.created_at,
    )
    if info.ready:
        net = status.network
        info.ips = [ip for ip in [net.ip, *(a.ip for a in net.additional_ips)] if ip]
    return info


async def with_new_containers(cri: RuntimeService, rt: PodRuntime, ids: list[str]) -> PodRuntime:
    """``rt`` plus the containers ``ids`` a pod worker has just created (one status call
    each, no lists): the snapshot a full :func:`read_pod_runtime` would return when
    nothing but those creations (and starts) happened since ``rt`` was read."""
    statuses = await asyncio.gather(*(_status_or_none(cri, cid) for cid in ids))
    new = [_status_info(st) for st in statuses if st is not None]
    known = {c.id for c in new}
    containers = [c for c in rt.containers if c.id not in known] + new
    return PodRuntime(rt.uid, list(rt.sandboxes), containers)


def _status_info(st: pb.ContainerStatus) -> ContainerInfo:
    """A :class:`ContainerInfo` from a ContainerStatus alone (it carries what the list
    entry would: metadata, labels, annotations, image)."""
    listed = pb.Container(
        id=st.id,
        metadata=st.metadata,
        image=st.image,
        image_ref=st.image_ref,
        state=st.state,
        created_at=st.created_at,
        labels=st.labels,
        annotations=st.annotations,
    )
    return _container_info(listed, st)


async def read_pod_runtime(cri: RuntimeService, uid: str) -> PodRuntime:
    """Sandboxes (with the newest ready one's IPs) and containers (with status) of ``uid``."""
    labels = {POD_UID_LABEL: uid}
    sandboxes, containers = await asyncio.gather(
        cri.list_pod_sandbox(labels=labels), cri.list_containers(labels=labels)
    )
    rt = PodRuntime(uid)
    for s in sorted(sandboxes, key=lambda s: (s.metadata.attempt, s.created_at), reverse=True):
        rt.sandboxes.append(
            SandboxInfo(s.id, s.metadata.attempt, s.state == pb.SANDBOX_READY, s.created_at)
        )
    ready = next((s for s in rt.sandboxes if s.ready), None)
    if ready is not None and rt.sandboxes[0] is ready:
        try:
            status = (await cri.pod_sandbox_status(ready.id)).status
        except CRINotFound:
            ready.ready = False
        else:
            net = status.network
            ready.ips = [ip for ip in [net.ip, *(a.ip for a in net.additional_ips)] if ip]
    statuses = await asyncio.gather(*(_status_or_none(cri, c.id) for c in containers))
    rt.containers = [_container_info(c, st) for c, st in zip(containers, statuses, strict=True)]
    return rt


class Relister:
    """PLEG: list every sandbox and container, diff with the last list, name the pod uids
    whose runtime state changed (upstream's generic PLEG relists every second).

    The pod worker tells it which pods it is syncing and what each sync ended up seeing
    (:meth:`sync_started`, :meth:`observe`, :meth:`sync_ended`): the changes a sync makes
    itself (its sandbox, its container starts) then wake nobody, and a change a relist
    sees while the pod is being synced is held until the sync ends, and wakes the pod
    only if the sync did not see it too."""

    def __init__(self, cri: RuntimeService) -> None:
        self.cri = cri
        self._last: dict[str, tuple[str, int]] = {}
        #: the pod uids of ``_last``
        self._uids: set[str] = set()
        #: pods being synced -> what relists saw change meanwhile (id -> state, None: gone)
        self._deferred: dict[str, dict[str, int | None]] = {}
        #: pods being synced -> the states their sync ended up seeing (once it has)
        self._seen: dict[str, dict[str, int] | None] = {}

    async def relist(self) -> set[str]:
        sandboxes, containers = await asyncio.gather(
            self.cri.list_pod_sandbox(), self.cri.list_containers()
        )
        now: dict[str, tuple[str, int]] = {}
        items: Iterable[pb.PodSandbox | pb.Container] = [*sandboxes, *containers]
        for item in items:
            now[item.id] = (item.labels.get(POD_UID_LABEL, ""), int(item.state))
        diff: list[tuple[str, str, int | None]] = [
            (uid, key, state)
            for key, (uid, state) in now.items()
            if self._last.get(key) != (uid, state)
        ]
        diff += [(uid, key, None) for key, (uid, _) in self._last.items() if key not in now]
        changed: set[str] = set()
        for uid, key, st in diff:
            if uid in self._seen:
                self._deferred.setdefault(uid, {})[key] = st
            elif uid:
                changed.add(uid)
        self._last = now
        self._uids = {uid for uid, _ in now.values() if uid}
        return changed

    def sync_started(self, uid: str) -> None:
        self._seen[uid] = None

    def observe(self, rt: PodRuntime) -> None:
        """Take the states a pod worker has just read (or made) as seen: the next relist
        then names the pod only if its runtime changed again since. A relist that
        overlaps can only overwrite this with what it listed itself (and so wake the pod:
        one sync more, never one less)."""
        seen: dict[str, int] = {}
        for s in rt.sandboxes:
            seen[s.id] = int(pb.SANDBOX_READY if s.ready else pb.SANDBOX_NOTREADY)
        for c in rt.containers:
            seen[c.id] = int(c.state)
        for key, state in seen.items():
            self._last[key] = (rt.uid, state)
        if seen:
            self._uids.add(rt.uid)
        if rt.uid in self._seen:
            self._seen[rt.uid] = seen

    def sync_ended(self, uid: str) -> bool:
        """The sync of ``uid`` is over; whether a relist saw the pod's runtime change
        during it in a way the sync did not see (then the pod needs another sync)."""
        seen = self._seen.pop(uid, None)
        deferred = self._deferred.pop(uid, None)
        if not deferred:
            return False
        # a sync that failed (or terminated the pod) has said nothing of what it saw
        news = {
            key: st for key, st in deferred.items() if seen is None or _moved_on(st, seen.get(key))
        }
        # the pod is woken for them now: the next relist compares with what it saw
        for key, st in news.items():
            if st is None:
                self._last.pop(key, None)
            else:
                self._last[key] = (uid, st)
        return bool(news)

    def knows(self, uid: str) -> bool:
        """Whether the runtime had a sandbox or container of ``uid`` at the last relist
        (or a pod worker has since told of one)."""
        return uid in self._uids

    def known_uids(self) -> set[str]:
        """Pod uids the runtime had sandboxes or containers for at the last relist."""
        return set(self._uids)


def _moved_on(listed: int | None, seen: int | None) -> bool:
    """Whether the state a relist ``listed`` of a sandbox or container (None: gone) is news
    to a sync that saw it ``seen`` (None: not at all). States only move forward (a
    container is created, running, exited; a sandbox ready, then not ready), so one behind
    what the sync saw (the container a relist caught between its create and its start)
    is older than what the sync saw, not news."""
    return listed is None or seen is None or listed > seen
