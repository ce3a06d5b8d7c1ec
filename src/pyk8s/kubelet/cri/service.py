"""The container runtime as the kubelet sees it: upstream's ``RuntimeService`` and
``ImageManagerService`` interfaces (``cri-api``), as Protocols.

The pod worker, the PLEG, garbage collection, stats and the streaming server depend on
these, not on the gRPC client, so :class:`~pyk8s.kubelet.cri.CRIClient` (containerd over
its socket) and :class:`~pyk8s.kubelet.runtimes.fake.FakeRuntime` (in memory, for tests
without root) are interchangeable. Requests and replies are the CRI's own protobuf
messages (:mod:`pyk8s.kubelet.cri.api_pb2`); failures raise
:class:`~pyk8s.kubelet.cri.CRIError` (:class:`~pyk8s.kubelet.cri.CRINotFound` for an
unknown id).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from pyk8s.kubelet.cri import api_pb2 as pb


class RuntimeService(Protocol):
    """Sandboxes, containers, exec and stats (CRI ``RuntimeService``)."""

    async def version(self) -> pb.VersionResponse: ...

    async def status(self, verbose: bool = False) -> pb.StatusResponse: ...

    async def wait_ready(self, timeout: float = 30.0) -> pb.VersionResponse: ...  # noqa: ASYNC109

    async def run_pod_sandbox(
        self, config: pb.PodSandboxConfig, runtime_handler: str = ""
    ) -> str: ...

    async def stop_pod_sandbox(self, sandbox_id: str) -> None: ...

    async def remove_pod_sandbox(self, sandbox_id: str) -> None: ...

    async def pod_sandbox_status(
        self, sandbox_id: str, verbose: bool = False
    ) -> pb.PodSandboxStatusResponse: ...

    async def list_pod_sandbox(
        self, labels: Mapping[str, str] | None = None, sandbox_id: str = ""
    ) -> list[pb.PodSandbox]: ...

    async def create_container(
        self, sandbox_id: str, config: pb.ContainerConfig, sandbox_config: pb.PodSandboxConfig
    ) -> str: ...

    async def start_container(self, container_id: str) -> None: ...

    async def stop_container(self, container_id: str, timeout: int = 0) -> None: ...  # noqa: ASYNC109

    async def remove_container(self, container_id: str) -> None: ...

    async def list_containers(
        self, sandbox_id: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[pb.Container]: ...

    async def container_status(
        self, container_id: str, verbose: bool = False
    ) -> pb.ContainerStatus: ...

    async def container_info(self, container_id: str) -> dict[str, str]: ...

    async def exec_sync(
        self,
        container_id: str,
        cmd: Sequence[str],
        timeout: int = 10,  # noqa: ASYNC109
    ) -> tuple[int, bytes, bytes]: ...

    async def exec(
        self,
        container_id: str,
        cmd: Sequence[str],
        *,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        tty: bool = False,
    ) -> str: ...

    async def attach(
        self,
        container_id: str,
        *,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        tty: bool = False,
    ) -> str: ...

    async def port_forward(self, sandbox_id: str, ports: Sequence[int] = ()) -> str: ...

    async def container_stats(self, container_id: str) -> pb.ContainerStats: ...

    async def list_container_stats(
        self, sandbox_id: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[pb.ContainerStats]: ...


class ImageService(Protocol):
    """Images (CRI ``ImageService``)."""

    async def list_images(self) -> list[pb.Image]: ...

    async def image_status(self, ref: str) -> pb.Image | None: ...

    async def pull_image(
        self,
        ref: str,
        auth: pb.AuthConfig | None = None,
        sandbox_config: pb.PodSandboxConfig | None = None,
    ) -> str: ...

    async def remove_image(self, ref: str) -> None: ...


class ContainerRuntime(RuntimeService, ImageService, Protocol):
    """Both services, as one runtime endpoint serves them (what the kubelet holds)."""
