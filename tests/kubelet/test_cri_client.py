"""End-to-end checks of CRIClient against a real containerd started just for the test.

Nothing is pulled from the internet: our busybox and pause images are built from the
host's static busybox (:mod:`pyk8s.kubelet.images`) and imported into that containerd.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from pyk8s.kubelet import images
from pyk8s.kubelet.cri import CRIClient, CRIError, CRINotFound, api_pb2

pytestmark = pytest.mark.e2e

TEST_IMAGE = images.BUSYBOX_REF
PAUSE_IMAGE = images.PAUSE_REF


def _sandbox_config(name: str, log_dir: Path) -> api_pb2.PodSandboxConfig:
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="default"),
        hostname=name,
        log_directory=str(log_dir),
        labels={"app": "pyk8s-test"},
        linux=api_pb2.LinuxPodSandboxConfig(
            security_context=api_pb2.LinuxSandboxSecurityContext(
                namespace_options=api_pb2.NamespaceOption(
                    network=api_pb2.POD, pid=api_pb2.CONTAINER, ipc=api_pb2.POD
                )
            )
        ),
    )


async def test_version_and_status(cri: CRIClient) -> None:
    async with asyncio.timeout(20):
        v = await cri.version()
        assert v.runtime_name == "containerd"
        assert v.runtime_api_version == "v1"
        status = await cri.status()
        types = {c.type for c in status.status.conditions}
        assert "RuntimeReady" in types


async def test_pod_lifecycle(cri: CRIClient, tmp_path: Path) -> None:
    async with asyncio.timeout(45):
        image = await cri.image_status(TEST_IMAGE)
        assert image is not None and TEST_IMAGE in image.repo_tags

        sandbox_config = _sandbox_config("web-0", tmp_path)
        sandbox_id = await cri.run_pod_sandbox(sandbox_config)
        status = await cri.pod_sandbox_status(sandbox_id)
        assert status.status.state == api_pb2.SANDBOX_READY
        assert status.status.network.ip.startswith("10.88.")

        config = api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name="main"),
            image=api_pb2.ImageSpec(image=TEST_IMAGE),
            command=["/bin/sh", "-c"],
            args=["echo hello; exec sleep 3600"],
            envs=[api_pb2.KeyValue(key="GREETING", value="hi")],
            log_path="main/0.log",
            labels={"container": "main"},
        )
        container_id = await cri.create_container(sandbox_id, config, sandbox_config)
        await cri.start_container(container_id)

        cstatus = await cri.container_status(container_id)
        assert cstatus.state == api_pb2.CONTAINER_RUNNING
        listed = await cri.list_containers(sandbox_id=sandbox_id)
        assert [c.id for c in listed] == [container_id]

        code, out, err = await cri.exec_sync(container_id, ["cat", "/etc/hostname"], timeout=10)
        assert (code, out.strip(), err) == (0, b"web-0", b"")
        code, _, _ = await cri.exec_sync(container_id, ["sh", "-c", "exit 3"], timeout=10)
        assert code == 3

        url = await cri.exec(container_id, ["sh"], stdin=True)
        assert url.startswith("http://127.0.0.1:")

        log_file = tmp_path / "main" / "0.log"
        for _ in range(50):
            if log_file.exists() and "hello" in log_file.read_text():
                break
            await asyncio.sleep(0.1)
        # CRI log format: "<RFC3339Nano time> stdout F hello"
        line = log_file.read_text().splitlines()[0].split(" ", 3)
        assert line[1:] == ["stdout", "F", "hello"]

        await cri.stop_container(container_id, timeout=0)
        assert (await cri.container_status(container_id)).state == api_pb2.CONTAINER_EXITED
        await cri.remove_container(container_id)
        with pytest.raises(CRINotFound):
            await cri.container_status(container_id)

        await cri.stop_pod_sandbox(sandbox_id)
        await cri.remove_pod_sandbox(sandbox_id)
        assert await cri.list_pod_sandbox() == []
        assert await cri.list_pod_sandbox(labels={"app": "pyk8s-test"}) == []


async def test_images(cri: CRIClient) -> None:
    async with asyncio.timeout(30):
        tags = {t for img in await cri.list_images() for t in img.repo_tags}
        assert {TEST_IMAGE, PAUSE_IMAGE} <= tags
        assert await cri.image_status("pyk8s.local/missing:1") is None

        with pytest.raises(CRIError) as info:
            await cri.pull_image("127.0.0.1:1/nope:1")
        assert not isinstance(info.value, CRINotFound)

        await cri.remove_image(TEST_IMAGE)
        assert await cri.image_status(TEST_IMAGE) is None


async def test_unreachable_socket_is_an_error() -> None:
    async with CRIClient("/tmp/pyk8s-no-such.sock", timeout=1) as client:
        with pytest.raises(CRIError):
            await client.wait_ready(0.5)


async def test_containers_of_a_pod_share_its_network(cri: CRIClient, tmp_path: Path) -> None:
    """A pod gets its own IP on the bridge; its containers talk to each other over localhost."""
    async with asyncio.timeout(45):
        sandbox_config = _sandbox_config("duo", tmp_path)
        sandbox_id = await cri.run_pod_sandbox(sandbox_config)
        ip = (await cri.pod_sandbox_status(sandbox_id)).status.network.ip
        assert ip.startswith("10.88.")

        def container(name: str, script: str) -> api_pb2.ContainerConfig:
            return api_pb2.ContainerConfig(
                metadata=api_pb2.ContainerMetadata(name=name),
                image=api_pb2.ImageSpec(image=TEST_IMAGE),
                command=["sh", "-c", script],
                log_path=f"{name}/0.log",
            )

        server = container(
            "server",
            "mkdir -p /www && echo from-server > /www/index.html && exec httpd -f -p 8080 -h /www",
        )
        client = container("client", "exec sleep 3600")
        ids = [await cri.create_container(sandbox_id, c, sandbox_config) for c in (server, client)]
        for cid in ids:
            await cri.start_container(cid)
        for _ in range(50):
            code, out, _ = await cri.exec_sync(
                ids[1], ["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"], timeout=5
            )
            if code == 0:
                break
            await asyncio.sleep(0.1)
        assert (code, out.strip()) == (0, b"from-server")
        # the pod's own IP reaches the same server from inside the pod
        code, out, _ = await cri.exec_sync(
            ids[1], ["wget", "-q", "-O", "-", f"http://{ip}:8080/"], timeout=5
        )
        assert (code, out.strip()) == (0, b"from-server")
        await cri.stop_pod_sandbox(sandbox_id)
        await cri.remove_pod_sandbox(sandbox_id)
