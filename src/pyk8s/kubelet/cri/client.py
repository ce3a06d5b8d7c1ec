"""An asyncio client for a container runtime's CRI (runtime.v1) socket.

The kubelet drives containerd only through this class: it hides the gRPC channel,
stubs and request wrapping, returns the protobuf response messages (or a plain
value where that is all a caller wants), and turns gRPC failures into two
exceptions the kubelet can act on: ``CRINotFound`` (the object is gone) and
``CRIError`` (anything else).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
import grpc.aio

from . import api_pb2 as pb
from . import api_pb2_grpc as pb_grpc

_T = TypeVar("_T")

# Sent on the wire but unimportant to us: the CRI version string the kubelet speaks.
_KUBELET_CRI_VERSION = "v1"


class CRIError(Exception):
    """A CRI call failed; ``code`` is the gRPC status code (None if not from gRPC)."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code


class CRINotFound(CRIError):
    """The runtime says the sandbox, container or image does not exist."""


def _translate(err: grpc.aio.AioRpcError, what: str) -> CRIError:
    code = err.code()
    text = f"{what}: {code.name if code else 'UNKNOWN'}: {err.details()}"
    if code == grpc.StatusCode.NOT_FOUND:
        return CRINotFound(text, code)
    return CRIError(text, code)


class CRIClient:
    """Talks runtime.v1 RuntimeService and ImageService over a unix socket.

    Use as ``async with CRIClient("/run/containerd/containerd.sock") as cri: ...``.
    ``timeout`` bounds every call except image pulls, which use ``pull_timeout``.
    """

    def __init__(
        self, socket_path: str, *, timeout: float = 30.0, pull_timeout: float = 600.0
    ) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self.pull_timeout = pull_timeout
        self._channel: grpc.aio.Channel | None = None
        self._runtime: Any = None
        self._images: Any = None

    async def __aenter__(self) -> Self:
        self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def connect(self) -> None:
        """Open the channel (lazily: gRPC dials on the first call)."""
        if self._channel is not None:
            return
        self._channel = grpc.aio.insecure_channel(
            f"unix://{self.socket_path}",
            options=[
                ("grpc.max_receive_message_length", 16 * 1024 * 1024),
                ("grpc.enable_http_proxy", 0),
            ],
        )
        self._runtime = pb_grpc.RuntimeServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self._images = pb_grpc.ImageServiceStub(self._channel)  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def _call(
        self, what: str, rpc: Callable[..., Awaitable[_T]], request: Any, deadline: float | None
    ) -> _T:
        if self._channel is None:
            raise CRIError(f"{what}: client is not connected")
        try:
            return await rpc(request, timeout=self.timeout if deadline is None else deadline)
        except grpc.aio.AioRpcError as err:
            raise _translate(err, what) from err

    async def _rt(self, method: str, request: Any, deadline: float | None = None) -> Any:
        return await self._call(method, getattr(self._runtime, method), request, deadline)

    async def _img(self, method: str, request: Any, deadline: float | None = None) -> Any:
        return await self._call(method, getattr(self._images, method), request, deadline)

    # ---- runtime ----

    async def version(self) -> pb.VersionResponse:
        resp: pb.VersionResponse = await self._rt(
            "Version", pb.VersionRequest(version=_KUBELET_CRI_VERSION)
        )
        return resp

    async def status(self, verbose: bool = False) -> pb.StatusResponse:
        resp: pb.StatusResponse = await self._rt("Status", pb.StatusRequest(verbose=verbose))
        return resp

    async def wait_ready(self, timeout: float = 30.0) -> pb.VersionResponse:  # noqa: ASYNC109
        """Poll Version until the runtime answers, or raise CRIError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                resp: pb.VersionResponse = await self._rt(
                    "Version",
                    pb.VersionRequest(version=_KUBELET_CRI_VERSION),
                    deadline=max(0.1, min(2.0, left)),
                )
                return resp
            except CRIError as err:
                if time.monotonic() >= deadline:
                    raise CRIError(
                        f"runtime at {self.socket_path} not ready after {timeout}s: {err}",
                        err.code,
                    ) from err
            await asyncio.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    # ---- pod sandboxes ----

    async def run_pod_sandbox(self, config: pb.PodSandboxConfig, runtime_handler: str = "") -> str:
        req = pb.RunPodSandboxRequest(config=config, runtime_handler=runtime_handler)
        resp: pb.RunPodSandboxResponse = await self._rt("RunPodSandbox", req)
        return resp.pod_sandbox_id

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        await self._rt("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id))

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        await self._rt("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))

    async def pod_sandbox_status(
        self, sandbox_id: str, verbose: bool = False
    ) -> pb.PodSandboxStatusResponse:
        req = pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=verbose)
        resp: pb.PodSandboxStatusResponse = await self._rt("PodSandboxStatus", req)
        return resp

    async def list_pod_sandbox(
        self, labels: Mapping[str, str] | None = None, sandbox_id: str = ""
    ) -> list[pb.PodSandbox]:
        filt = pb.PodSandboxFilter(id=sandbox_id, label_selector=dict(labels or {}))
        resp: pb.ListPodSandboxResponse = await self._rt(
            "ListPodSandbox", pb.ListPodSandboxRequest(filter=filt)
        )
        return list(resp.items)

    # ---- containers ----

    async def create_container(
        self, sandbox_id: str, config: pb.ContainerConfig, sandbox_config: pb.PodSandboxConfig
    ) -> str:
        req = pb.CreateContainerRequest(
            pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox_config
        )
        resp: pb.CreateContainerResponse = await self._rt("CreateContainer", req)
        return resp.container_id

    async def start_container(self, container_id: str) -> None:
        await self._rt("StartContainer", pb.StartContainerRequest(container_id=container_id))

    # ``timeout`` here is the CRI's grace period, not a bound on our await.
    async def stop_container(self, container_id: str, timeout: int = 0) -> None:  # noqa: ASYNC109
        """Stop with SIGTERM, then SIGKILL after ``timeout`` seconds (0: kill at once)."""
        req = pb.StopContainerRequest(container_id=container_id, timeout=timeout)
        await self._rt("StopContainer", req, deadline=self.timeout + timeout)

    async def remove_container(self, container_id: str) -> None:
        await self._rt("RemoveContainer", pb.RemoveContainerRequest(container_id=container_id))

    async def list_containers(
        self, sandbox_id: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[pb.Container]:
        filt = pb.ContainerFilter(
            pod_sandbox_id=sandbox_id or "", label_selector=dict(labels or {})
        )
        resp: pb.ListContainersResponse = await self._rt(
            "ListContainers", pb.ListContainersRequest(filter=filt)
        )
        return list(resp.containers)

    async def container_status(
        self, container_id: str, verbose: bool = False
    ) -> pb.ContainerStatus:
        req = pb.ContainerStatusRequest(container_id=container_id, verbose=verbose)
        resp: pb.ContainerStatusResponse = await self._rt("ContainerStatus", req)
        return resp.status

    async def container_info(self, container_id: str) -> dict[str, str]:
        """The runtime's verbose extras of a container (containerd: ``info``, a JSON
        document with its ``pid``)."""
        req = pb.ContainerStatusRequest(container_id=container_id, verbose=True)
        resp: pb.ContainerStatusResponse = await self._rt("ContainerStatus", req)
        return dict(resp.info)

    async def exec_sync(
        self,
        container_id: str,
        cmd: Sequence[str],
        timeout: int = 10,  # noqa: ASYNC109
    ) -> tuple[int, bytes, bytes]:
        """Run ``cmd`` in the container and wait; returns (exit_code, stdout, stderr)."""
        req = pb.ExecSyncRequest(container_id=container_id, cmd=list(cmd), timeout=timeout)
        resp: pb.ExecSyncResponse = await self._rt("ExecSync", req, deadline=self.timeout + timeout)
        return resp.exit_code, resp.stdout, resp.stderr

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
        """Ask for a streaming exec session; returns the runtime's streaming URL."""
        req = pb.ExecRequest(
            container_id=container_id,
            cmd=list(cmd),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr and not tty,
            tty=tty,
        )
        resp: pb.ExecResponse = await self._rt("Exec", req)
        return resp.url

    async def attach(
        self,
        container_id: str,
        *,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        tty: bool = False,
    ) -> str:
        req = pb.AttachRequest(
            container_id=container_id,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr and not tty,
            tty=tty,
        )
        resp: pb.AttachResponse = await self._rt("Attach", req)
        return resp.url

    async def port_forward(self, sandbox_id: str, ports: Sequence[int] = ()) -> str:
        req = pb.PortForwardRequest(pod_sandbox_id=sandbox_id, port=list(ports))
        resp: pb.PortForwardResponse = await self._rt("PortForward", req)
        return resp.url

    async def container_stats(self, container_id: str) -> pb.ContainerStats:
        req = pb.ContainerStatsRequest(container_id=container_id)
        resp: pb.ContainerStatsResponse = await self._rt("ContainerStats", req)
        return resp.stats

    async def list_container_stats(
        self, sandbox_id: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[pb.ContainerStats]:
        filt = pb.ContainerStatsFilter(
            pod_sandbox_id=sandbox_id or "", label_selector=dict(labels or {})
        )
        resp: pb.ListContainerStatsResponse = await self._rt(
            "ListContainerStats", pb.ListContainerStatsRequest(filter=filt)
        )
        return list(resp.stats)

    # ---- images ----

    async def list_images(self) -> list[pb.Image]:
        resp: pb.ListImagesResponse = await self._img("ListImages", pb.ListImagesRequest())
        return list(resp.images)

    async def image_status(self, ref: str) -> pb.Image | None:
        """The image named ``ref``, or None if the runtime does not have it."""
        req = pb.ImageStatusRequest(image=pb.ImageSpec(image=ref))
        try:
            resp: pb.ImageStatusResponse = await self._img("ImageStatus", req)
        except CRINotFound:
            return None
        # The CRI reports a missing image as an empty response, not an error.
        return resp.image if resp.HasField("image") and resp.image.id else None

    async def pull_image(
        self,
        ref: str,
        auth: pb.AuthConfig | None = None,
        sandbox_config: pb.PodSandboxConfig | None = None,
    ) -> str:
        """Pull ``ref``; returns the runtime's image reference (usually its digest id)."""
        req = pb.PullImageRequest(image=pb.ImageSpec(image=ref))
        if auth is not None:
            req.auth.CopyFrom(auth)
        if sandbox_config is not None:
            req.sandbox_config.CopyFrom(sandbox_config)
        resp: pb.PullImageResponse = await self._img("PullImage", req, deadline=self.pull_timeout)
        return resp.image_ref

    async def remove_image(self, ref: str) -> None:
        await self._img("RemoveImage", pb.RemoveImageRequest(image=pb.ImageSpec(image=ref)))
