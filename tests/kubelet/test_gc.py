"""Container, sandbox and image garbage collection against a private containerd."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from pyk8s.kubelet import images
from pyk8s.kubelet.cri import CRIClient, api_pb2
from pyk8s.kubelet.gc import ContainerGC, ImageGC
from pyk8s.kubelet.runtimes import Containerd

pytestmark = pytest.mark.e2e


class Pod:
    """A sandbox labelled like the kubelet's, plus helpers to run containers in it."""

    def __init__(self, cri: CRIClient, log_dir: Path, name: str) -> None:
        self.cri, self.uid, self.name = cri, uuid.uuid4().hex, name
        self.config = api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name=name, uid=self.uid, namespace="default"),
            log_directory=str(log_dir / name),
            labels={"io.kubernetes.pod.uid": self.uid, "io.kubernetes.pod.name": name},
        )
        self.sandbox_id = ""

    async def start(self, attempt: int = 0) -> Pod:
        self.config.metadata.attempt = attempt
        self.sandbox_id = await self.cri.run_pod_sandbox(self.config)
        return self

    async def container(
        self,
        name: str,
        attempt: int,
        script: str,
        image: str = images.BUSYBOX_REF,
        start: bool = True,
    ) -> str:
        config = api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name=name, attempt=attempt),
            image=api_pb2.ImageSpec(image=image),
            command=["sh", "-c", script],
            log_path=f"{name}/{attempt}.log",
            labels={"io.kubernetes.pod.uid": self.uid, "io.kubernetes.container.name": name},
        )
        cid = await self.cri.create_container(self.sandbox_id, config, self.config)
        if start:
            await self.cri.start_container(cid)
        return cid

    async def exited(self, name: str, attempt: int) -> str:
        cid = await self.container(name, attempt, "exit 0")
        for _ in range(200):
            if (await self.cri.container_status(cid)).state == api_pb2.CONTAINER_EXITED:
                return cid
            await asyncio.sleep(0.05)
        raise AssertionError(f"container {name}/{attempt} did not exit")


async def _container_ids(cri: CRIClient) -> set[str]:
    return {c.id for c in await cri.list_containers()}


async def test_keeps_newest_dead_container_per_name(cri: CRIClient, tmp_path: Path) -> None:
    async with asyncio.timeout(60):
        pod = await Pod(cri, tmp_path, "web").start()
        dead = [await pod.exited("app", attempt) for attempt in range(3)]
        running = await pod.container("side", 0, "exec sleep 600")
        old_log = Path(pod.config.log_directory) / "app" / "0.log"
        assert old_log.exists()

        result = await ContainerGC(cri).collect({pod.uid})

        assert (result.containers, result.sandboxes) == (2, 0)
        assert await _container_ids(cri) == {dead[2], running}
        assert not old_log.exists()
        # a second pass finds nothing more to do
        result = await ContainerGC(cri).collect({pod.uid})
        assert (result.containers, result.sandboxes) == (0, 0)


async def test_max_per_pod_container_is_configurable(cri: CRIClient, tmp_path: Path) -> None:
    async with asyncio.timeout(60):
        pod = await Pod(cri, tmp_path, "web").start()
        dead = [await pod.exited("app", attempt) for attempt in range(3)]
        result = await ContainerGC(cri, max_per_pod_container=2).collect({pod.uid})
        assert result.containers == 1
        assert await _container_ids(cri) == set(dead[1:])


async def test_deleted_pods_lose_dead_containers_and_sandboxes(
    cri: CRIClient, tmp_path: Path
) -> None:
    async with asyncio.timeout(90):
        gone = await Pod(cri, tmp_path, "gone").start()
        await gone.exited("app", 0)
        await gone.exited("app", 1)
        await cri.stop_pod_sandbox(gone.sandbox_id)

        # deleted too, but still running: nothing of it may be touched
        lingering = await Pod(cri, tmp_path, "lingering").start()
        still_running = await lingering.container("app", 0, "exec sleep 600")

        # a live pod whose sandbox was recreated: the old dead sandbox goes, the new stays
        live = await Pod(cri, tmp_path, "live").start()
        old_sandbox = live.sandbox_id
        await cri.stop_pod_sandbox(old_sandbox)
        await live.start(attempt=1)

        result = await ContainerGC(cri).collect({live.uid})

        assert (result.containers, result.sandboxes) == (2, 2)
        assert await _container_ids(cri) == {still_running}
        sandboxes = {s.id for s in await cri.list_pod_sandbox()}
        assert sandboxes == {lingering.sandbox_id, live.sandbox_id}
        assert old_sandbox not in sandboxes


async def _import(containerd: Containerd, ref: str, cmd: str) -> None:
    archive = await asyncio.to_thread(
        images.build_busybox_image, containerd.config.base / f"{cmd}.tar", ref, [cmd]
    )
    await containerd.import_image(archive)


class FakeDisk:
    """What ImageGC sees of the image filesystem: (capacity, available) bytes."""

    def __init__(self) -> None:
        self.capacity, self.available = 100, 50

    def __call__(self) -> tuple[int, int]:
        return self.capacity, self.available


async def test_image_gc_removes_least_recently_used_unused_images(
    cri: CRIClient, containerd_with_images: Containerd
) -> None:
    async with asyncio.timeout(60):
        a, b = "pyk8s.local/extra-a:1", "pyk8s.local/extra-b:1"
        await _import(containerd_with_images, a, "a")
        await _import(containerd_with_images, b, "b")
        ids = {}
        for ref in (a, b, images.BUSYBOX_REF, images.PAUSE_REF):
            image = await cri.image_status(ref)
            assert image is not None
            ids[ref] = image.id
        disk, now = FakeDisk(), [1000.0]
        gc = ImageGC(cri, Path("/"), min_age=120, usage=disk, clock=lambda: now[0])

        await gc.detect({a})  # a was used at t=1000, b never
        now[0] = 1060.0
        disk.available = 10  # 90% full
        result = await gc.collect({images.BUSYBOX_REF})
        assert result.removed == []  # first seen only 60s ago: too young
        assert result.needed == 10

        now[0] = 2000.0
        disk.available = 50  # 50% full: below the high threshold, nothing to do
        assert await gc.collect() == type(result)()

        disk.available = 10  # needs 10 bytes: the least recently used image suffices
        result = await gc.collect({images.BUSYBOX_REF})
        assert result.removed == [ids[b]]
        assert result.freed > 0
        assert await cri.image_status(b) is None

        disk.capacity, disk.available = 10**15, 0  # more than all images: remove every unused
        result = await gc.collect({images.BUSYBOX_REF})
        assert result.removed == [ids[a]]
        assert await cri.image_status(images.BUSYBOX_REF) is not None
        assert await cri.image_status(images.PAUSE_REF) is not None  # the sandbox image


async def test_image_gc_keeps_images_of_containers(
    cri: CRIClient, containerd_with_images: Containerd, tmp_path: Path
) -> None:
    async with asyncio.timeout(60):
        extra = "pyk8s.local/extra-c:1"
        await _import(containerd_with_images, extra, "c")
        pod = await Pod(cri, tmp_path, "user").start()
        await pod.container("app", 0, "exit 0", image=extra, start=False)
        disk = FakeDisk()
        disk.capacity, disk.available = 10**15, 0
        result = await ImageGC(cri, Path("/"), min_age=0, usage=disk).collect(set())
        busybox = await cri.image_status(images.BUSYBOX_REF)
        assert busybox is None  # unused by anything
        assert len(result.removed) == 1
        assert await cri.image_status(extra) is not None  # a (created) container uses it
        assert await cri.image_status(images.PAUSE_REF) is not None


async def test_image_gc_uses_statvfs_by_default(cri: CRIClient, tmp_path: Path) -> None:
    async with asyncio.timeout(30):
        # a real filesystem is nowhere near 100% full: a 100% threshold never collects
        result = await ImageGC(cri, tmp_path, high_percent=100, low_percent=100).collect()
        assert result.removed == [] and result.needed == 0
