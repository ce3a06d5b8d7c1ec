"""An in-memory container runtime implementing the kubelet's CRI Protocols, for tests.

Why: the pod worker's logic (volumes before the sandbox, container start order, restarts,
termination, cleanup) should be testable without root, containerd or images. Like
upstream's ``FakeRuntimeService``/``FakeImageService`` it keeps sandboxes, containers and
images in dicts, answers with the CRI's own messages and records every call. It behaves
as containerd does where the kubelet can tell: a container whose mount source does not
exist fails to be created, a stopped container exits 143 after SIGTERM (137 when killed
at once), stopping a sandbox kills its containers. Tests make containers exit with
:meth:`FakeRuntime.exit` and script exec results with ``exec_handler``.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pyk8s.kubelet.cri import CRIError, CRINotFound
from pyk8s.kubelet.cri import api_pb2 as pb

ExecHandler = Callable[[str, Sequence[str]], tuple[int, bytes, bytes]]


def _exists(path: str) -> bool:
    """Whether a mount source exists (a stat of local disk, as runc does)."""
    return os.path.exists(path)


def _ok(_cid: str, _cmd: Sequence[str]) -> tuple[int, bytes, bytes]:
    return 0, b"", b""


@dataclass
class _Sandbox:
    id: str
    config: pb.PodSandboxConfig
    state: int
    created_at: int
    ip: str


@dataclass
class _Container:
    id: str
    sandbox_id: str
    config: pb.ContainerConfig
    log_path: str
    created_at: int
    state: int = pb.CONTAINER_CREATED
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""


@dataclass
class FakeRuntime:
    """``ContainerRuntime`` in memory: ``calls`` lists (method, id or image) in order."""

    images: set[str] = field(default_factory=set)
    #: image refs whose pull fails (with this message)
    pull_errors: dict[str, str] = field(default_factory=dict)
    exec_handler: ExecHandler = _ok
    calls: list[tuple[str, str]] = field(default_factory=list)
    sandboxes: dict[str, _Sandbox] = field(default_factory=dict)
    containers: dict[str, _Container] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08x}"

    @staticmethod
    def _now() -> int:
        return time.time_ns()

    def _sandbox(self, sid: str) -> _Sandbox:
        s = self.sandboxes.get(sid)
        if s is None:
            raise CRINotFound(f"an error occurred when try to find sandbox {sid!r}: not found")
        return s

    def _container(self, cid: str) -> _Container:
        c = self.containers.get(cid)
        if c is None:
            raise CRINotFound(f"an error occurred when try to find container {cid!r}: not found")
        return c

    # ---- test controls

    def exit(self, container_id: str, code: int, reason: str = "") -> None:
        """The container's process ends with ``code``."""
        c = self._container(container_id)
        c.state, c.finished_at, c.exit_code = pb.CONTAINER_EXITED, self._now(), code
        c.reason = reason or ("Completed" if code == 0 else "Error")

    def running(self, name: str = "") -> list[str]:
        """Ids of running containers (named ``name``, if given)."""
        return [
            c.id
            for c in self.containers.values()
            if c.state == pb.CONTAINER_RUNNING and (not name or c.config.metadata.name == name)
        ]

    # ---- runtime

    async def version(self) -> pb.VersionResponse:
        return pb.VersionResponse(
            version="0.1.0", runtime_name="fake", runtime_version="0.1", runtime_api_version="v1"
        )

    async def status(self, verbose: bool = False) -> pb.StatusResponse:
        conds = [pb.RuntimeCondition(type=t, status=True) for t in ("RuntimeReady", "NetworkReady")]
        return pb.StatusResponse(status=pb.RuntimeStatus(conditions=conds))

    async def wait_ready(self, timeout: float = 30.0) -> pb.VersionResponse:  # noqa: ASYNC109
        return await self.version()

    async def run_pod_sandbox(self, config: pb.PodSandboxConfig, runtime_handler: str = "") -> str:
        sid = self._id("sb")
        self.calls.append(("RunPodSandbox", sid))
        n = len(self.sandboxes) + 2
        ip = f"10.88.{n // 250}.{n % 250 + 1}"
        self.sandboxes[sid] = _Sandbox(sid, config, pb.SANDBOX_READY, self._now(), ip)
        return sid

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        self.calls.append(("StopPodSandbox", sandbox_id))
        s = self._sandbox(sandbox_id)
        for c in self.containers.values():
            if c.sandbox_id == sandbox_id and c.state == pb.CONTAINER_RUNNING:
                self.exit(c.id, 137)
        s.state = pb.SANDBOX_NOTREADY

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        self.calls.append(("RemovePodSandbox", sandbox_id))
        self._sandbox(sandbox_id)
        del self.sandboxes[sandbox_id]
        for cid in [c.id for c in self.containers.values() if c.sandbox_id == sandbox_id]:
            del self.containers[cid]

    async def pod_sandbox_status(
        self, sandbox_id: str, verbose: bool = False
    ) -> pb.PodSandboxStatusResponse:
        s = self._sandbox(sandbox_id)
        status = pb.PodSandboxStatus(
            id=s.id,
            metadata=s.config.metadata,
            state=s.state,  # type: ignore[arg-type]
            created_at=s.created_at,
            network=pb.PodSandboxNetworkStatus(ip=s.ip),
            labels=dict(s.config.labels),
            annotations=dict(s.config.annotations),
        )
        return pb.PodSandboxStatusResponse(status=status)

    async def list_pod_sandbox(
        self, labels: Mapping[str, str] | None = None, sandbox_id: str = ""
    ) -> list[pb.PodSandbox]:
        want = dict(labels or {})
        return [
            pb.PodSandbox(
                id=s.id,
                metadata=s.config.metadata,
                state=s.state,  # type: ignore[arg-type]
                created_at=s.created_at,
                labels=dict(s.config.labels),
                annotations=dict(s.config.annotations),
            )
            for s in self.sandboxes.values()
            if (not sandbox_id or s.id == sandbox_id)
            and all(s.config.labels.get(k) == v for k, v in want.items())
        ]

    async def create_container(
        self, sandbox_id: str, config: pb.ContainerConfig, sandbox_config: pb.PodSandboxConfig
    ) -> str:
        s = self._sandbox(sandbox_id)
        if s.state != pb.SANDBOX_READY:
            raise CRIError(f"sandbox {sandbox_id} is not ready")
        for m in config.mounts:
            if not _exists(m.host_path):
                raise CRIError(
                    f"failed to create containerd container: mount source {m.host_path!r}: "
                    "no such file or directory"
                )
        cid = self._id("c")
        self.calls.append(("CreateContainer", cid))
        log_path = os.path.join(sandbox_config.log_directory, config.log_path)
        self.containers[cid] = _Container(cid, sandbox_id, config, log_path, self._now())
        return cid

    async def start_container(self, container_id: str) -> None:
        self.calls.append(("StartContainer", container_id))
        c = self._container(container_id)
        if c.state != pb.CONTAINER_CREATED:
            raise CRIError(f"container {container_id} is not in created state")
        c.state, c.started_at = pb.CONTAINER_RUNNING, self._now()

    async def stop_container(self, container_id: str, timeout: int = 0) -> None:  # noqa: ASYNC109
        self.calls.append(("StopContainer", container_id))
        c = self._container(container_id)
        if c.state == pb.CONTAINER_RUNNING:
            self.exit(container_id, 143 if timeout > 0 else 137)

    async def remove_container(self, container_id: str) -> None:
        self.calls.append(("RemoveContainer", container_id))
        self._container(container_id)
        del self.containers[container_id]

    def _pb_container(self, c: _Container) -> pb.Container:
        return pb.Container(
            id=c.id,
            pod_sandbox_id=c.sandbox_id,
            metadata=c.config.metadata,
            image=c.config.image,
            image_ref=c.config.image.image,
            state=c.state,  # type: ignore[arg-type]
            created_at=c.created_at,
            labels=dict(c.config.labels),
            annotations=dict(c.config.annotations),
        )

    async def list_containers(
        self, sandbox_id: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[pb.Container]:
        want = dict(labels or {})
        return [
            self._pb_container(c)
            for c in self.containers.values()
            if (not sandbox_id or c.sandbox_id == sandbox_id)
            and all(c.config.labels.get(k) == v for k, v in want.items())
        ]

    async def container_status(
        self, container_id: str, verbose: bool = False
    ) -> pb.ContainerStatus:
        c = self._container(container_id)
        return pb.ContainerStatus(
            id=c.id,
            metadata=c.config.metadata,
            state=c.state,  # type: ignore[arg-type]
            created_at=c.created_at,
            started_at=c.started_at,
            finished_at=c.finished_at,
            exit_code=c.exit_code,
            image=c.config.image,
            image_ref=c.config.image.image,
            reason=c.reason,
            labels=dict(c.config.labels),
            annotations=dict(c.config.annotations),
            mounts=list(c.config.mounts),
            log_path=c.log_path,
        )

    async def container_info(self, container_id: str) -> dict[str, str]:
        self._container(container_id)
        return {}

    async def exec_sync(
        self,
        container_id: str,
        cmd: Sequence[str],
        timeout: int = 10,  # noqa: ASYNC109
    ) -> tuple[int, bytes, bytes]:
        self.calls.append(("ExecSync", container_id))
        if self._container(container_id).state != pb.CONTAINER_RUNNING:
            raise CRIError(f"container {container_id} is not running")
        return self.exec_handler(container_id, cmd)

    async def exec(
        self,
        container_id: str,
        cmd: Sequence[str],
        *,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        tty: bool = False,
    ) -> str:
        raise CRIError("the fake runtime has no streaming server")

    async def attach(
        self,
        container_id: str,
        *,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        tty: bool = False,
    ) -> str:
        raise CRIError("the fake runtime has no streaming server")

    async def port_forward(self, sandbox_id: str, ports: Sequence[int] = ()) -> str:
        raise CRIError("the fake runtime has no streaming server")

    def _stats(self, c: _Container) -> pb.ContainerStats:
        now = self._now()
        attrs = pb.ContainerAttributes(
            id=c.id, metadata=c.config.metadata, labels=dict(c.config.labels)
        )
        return pb.ContainerStats(
            attributes=attrs,
            cpu=pb.CpuUsage(timestamp=now, usage_core_nano_seconds=pb.UInt64Value(value=0)),
            memory=pb.MemoryUsage(timestamp=now, working_set_bytes=pb.UInt64Value(value=0)),
        )

    async def container_stats(self, container_id: str) -> pb.ContainerStats:
        return self._stats(self._container(container_id))

    async def list_container_stats(
        self, sandbox_id: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[pb.ContainerStats]:
        items = await self.list_containers(sandbox_id, labels)
        return [self._stats(self.containers[c.id]) for c in items]

    # ---- images

    async def list_images(self) -> list[pb.Image]:
        return [pb.Image(id=ref, repo_tags=[ref]) for ref in sorted(self.images)]

    async def image_status(self, ref: str) -> pb.Image | None:
        return pb.Image(id=ref, repo_tags=[ref]) if ref in self.images else None

    async def pull_image(
        self,
        ref: str,
        auth: pb.AuthConfig | None = None,
        sandbox_config: pb.PodSandboxConfig | None = None,
    ) -> str:
        self.calls.append(("PullImage", ref))
        if ref in self.pull_errors:
            raise CRIError(self.pull_errors[ref])
        self.images.add(ref)
        return ref

    async def remove_image(self, ref: str) -> None:
        self.images.discard(ref)
