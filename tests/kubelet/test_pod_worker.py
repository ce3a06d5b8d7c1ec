"""The pod worker on the in-memory FakeRuntime: no root, no containerd, no API server.

What a user would see of it: volumes (a claim's local PV, an emptyDir, a configMap) are
set up before the sandbox and containers are created, containers get their mounts
(API data read-only), a claim that is missing, unbound or being deleted keeps the pod
from starting with upstream's ``FailedMount`` event, a failed container is restarted,
and a deleted pod's containers, sandbox and volume directories go away while the
claim's data stays.
"""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pyk8s.client.errors import ApiError
from pyk8s.kubelet.cri import api_pb2 as pb
from pyk8s.kubelet.pods import NodeInfo, PodWorker
from pyk8s.kubelet.podstatus import pod_status
from pyk8s.kubelet.runtimes import FakeRuntime
from pyk8s.kubelet.runtimestate import Relister, read_pod_runtime
from pyk8s.kubelet.stats import StatsProvider
from pyk8s.kubelet.volumestats import VolumeStats, VolumeStatsCollector

Obj = dict[str, Any]
IMAGE = "registry.local/busybox:1"


class FakeClient:
    """The API calls the pod worker makes, on in-memory objects."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.status_patches: list[Obj] = []
        self.deleted: list[str] = []

    def put(self, plural: str, obj: Obj) -> Obj:
        meta = obj["metadata"]
        self.objects[(plural, meta.get("namespace", ""), meta["name"])] = obj
        return obj

    async def get(self, res: Any, name: str, namespace: str | None = None) -> Obj:
        obj = self.objects.get((res.plural, namespace or "", name))
        if obj is None:
            message = f'{res.plural} "{name}" not found'
            raise ApiError(404, "NotFound", message, {"reason": "NotFound", "code": 404})
        return copy.deepcopy(obj)

    async def patch(self, res: Any, name: str, body: Obj, namespace: str | None = None,
                    **kw: Any) -> Obj:  # fmt: skip
        if kw.get("subresource") == "status":
            self.status_patches.append(body["status"])
        return body

    async def delete(self, res: Any, name: str, namespace: str | None = None, **kw: Any) -> Obj:
        self.deleted.append(name)
        return {}


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def event(self, obj: Any, event_type: str, reason: str, message: str) -> None:
        self.events.append((event_type, reason, message))

    def reasons(self) -> list[str]:
        return [r for _, r, _ in self.events]


def make_pod(volumes: list[Obj], mounts: list[Obj], policy: str = "Always") -> Obj:
    return {
        "metadata": {"name": "web", "namespace": "ns", "uid": "uid-web"},
        "spec": {
            "restartPolicy": policy,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": IMAGE, "volumeMounts": mounts}],
            "volumes": volumes,
        },
        "status": {"phase": "Pending"},
    }


def new_worker(
    tmp_path: Path,
    runtime: FakeRuntime,
    client: FakeClient | None = None,
    recorder: Recorder | None = None,
    **kwargs: Any,
) -> PodWorker:
    """A pod worker of node n1 over ``runtime``, its directories under ``tmp_path``."""
    return PodWorker(
        client or FakeClient(),  # type: ignore[arg-type]
        runtime,
        recorder or Recorder(),  # type: ignore[arg-type]
        NodeInfo(name="n1", host_ip="192.0.2.1"),
        root=tmp_path / "kubelet",
        log_root=tmp_path / "logs",
        **kwargs,
    )


@pytest.fixture
def env(tmp_path: Path) -> tuple[PodWorker, FakeRuntime, FakeClient, Recorder]:
    runtime = FakeRuntime(images={IMAGE})
    client, recorder = FakeClient(), Recorder()
    return new_worker(tmp_path, runtime, client, recorder), runtime, client, recorder


def read(path: Path) -> str:
    return path.read_text()


def write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def bound_claim(client: FakeClient, disk: Path) -> None:
    client.put("persistentvolumeclaims", {
        "metadata": {"name": "data", "namespace": "ns", "uid": "uid-data"},
        "spec": {"volumeName": "pv-1"}, "status": {"phase": "Bound"}})  # fmt: skip
    client.put("persistentvolumes", {
        "metadata": {"name": "pv-1"},
        "spec": {"local": {"path": str(disk)},
                 "claimRef": {"name": "data", "namespace": "ns", "uid": "uid-data"}}})  # fmt: skip


VOLUMES = [
    {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
    {"name": "scratch", "emptyDir": {}},
    {"name": "cfg", "configMap": {"name": "cfg"}},
]
MOUNTS = [
    {"name": "data", "mountPath": "/data"},
    {"name": "scratch", "mountPath": "/tmp"},
    {"name": "cfg", "mountPath": "/etc/cfg"},
]


async def test_volumes_before_containers_and_torn_down_with_the_pod(
    env: tuple[PodWorker, FakeRuntime, FakeClient, Recorder], tmp_path: Path
) -> None:
    worker, runtime, client, _ = env
    disk = tmp_path / "disk"
    disk.mkdir()
    (disk / "kept").write_text("data")
    bound_claim(client, disk)
    client.put("configmaps", {"metadata": {"name": "cfg", "namespace": "ns"},
                              "data": {"k": "v"}})  # fmt: skip
    pod = make_pod(VOLUMES, MOUNTS)
    await worker.sync(pod)
    assert [c for c, _ in runtime.calls] == ["RunPodSandbox", "CreateContainer", "StartContainer"]
    (cid,) = runtime.running("app")
    mounts = {m.container_path: m for m in runtime.containers[cid].config.mounts}
    assert mounts["/data"].host_path == str(disk) and not mounts["/data"].readonly
    assert mounts["/etc/cfg"].readonly  # API data is read-only whatever the pod says
    assert read(Path(mounts["/etc/cfg"].host_path, "k")) == "v"
    assert client.status_patches[-1]["phase"] == "Running"
    pod_dir = worker.volumes.pod_dir("uid-web")
    assert (pod_dir / "volumes" / "kubernetes.io~empty-dir" / "scratch").is_dir()

    pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    pod["metadata"]["deletionGracePeriodSeconds"] = 1
    await worker.sync(pod)
    assert runtime.containers == {} and runtime.sandboxes == {}
    assert not pod_dir.exists()
    assert (disk / "kept").read_text() == "data"  # a claim's data outlives the pod
    assert client.deleted == ["web"]
    assert client.status_patches[-1]["phase"] == "Failed"  # exited 143 after SIGTERM


async def test_a_finished_pod_that_is_not_deleted_releases_its_volumes(
    env: tuple[PodWorker, FakeRuntime, FakeClient, Recorder], tmp_path: Path
) -> None:
    """Succeeded and kept (a Job's pod): its emptyDir is emptied and its volumes are
    released, the pod dir and the stopped container stay, the claim's data stays."""
    worker, runtime, client, _ = env
    disk = tmp_path / "disk"
    disk.mkdir()
    (disk / "kept").write_text("data")
    bound_claim(client, disk)
    client.put("configmaps", {"metadata": {"name": "cfg", "namespace": "ns"},
                              "data": {"k": "v"}})  # fmt: skip
    pod = make_pod(VOLUMES, MOUNTS, policy="Never")
    await worker.sync(pod)
    (cid,) = runtime.running("app")
    pod_dir = worker.volumes.pod_dir("uid-web")
    scratch = pod_dir / "volumes" / "kubernetes.io~empty-dir" / "scratch"
    (scratch / "tmp-file").write_text("x")
    assert worker.volumes.mounted.get("uid-web")
    runtime.exit(cid, 0)
    await worker.sync(pod)
    assert client.status_patches[-1]["phase"] == "Succeeded"
    assert not scratch.exists()
    assert not worker.volumes.mounted.get("uid-web")
    assert pod_dir.is_dir() and list(runtime.containers) == [cid]
    assert (disk / "kept").read_text() == "data"
    # the next look at the finished pod (its status now Succeeded) leaves it so
    await worker.sync({**pod, "status": client.status_patches[-1]})
    assert pod_dir.is_dir() and not scratch.exists()


@pytest.mark.parametrize(
    ("claim", "message"),
    [
        (None, 'failed to fetch PVC from API server: persistentvolumeclaims "data" not found'),
        ({"spec": {}, "status": {"phase": "Pending"}},
         'PVC ns/data has non-bound phase ("Pending") or empty pvc.Spec.VolumeName ("")'),
        ({"spec": {"volumeName": "pv-1"}, "status": {"phase": "Bound"},
          "deletionTimestamp": "2026-01-01T00:00:00Z"},
         "can't start pod because PVC ns/data is being deleted"),
    ],
)  # fmt: skip
async def test_a_claim_that_cannot_be_used_keeps_the_pod_from_starting(
    env: tuple[PodWorker, FakeRuntime, FakeClient, Recorder],
    claim: Obj | None,
    message: str,
) -> None:
    worker, runtime, client, recorder = env
    if claim is not None:
        meta = {"name": "data", "namespace": "ns", "uid": "uid-data"}
        if "deletionTimestamp" in claim:
            meta["deletionTimestamp"] = claim.pop("deletionTimestamp")
        client.put("persistentvolumeclaims", {"metadata": meta, **claim})
    pod = make_pod(VOLUMES[:2], MOUNTS[:2])
    # retried soon (the object may appear in a moment), then less and less often
    assert [await worker.sync(pod) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert runtime.calls == []  # no sandbox without its volumes (the emptyDir is set up)
    assert set(recorder.events) == {
        ("Warning", "FailedMount",
         "Unable to attach or mount volumes: unmounted volumes=[data], unattached "
         f"volumes=[], failed to process volumes=[data]: error processing PVC ns/data: {message}"),
    }  # fmt: skip
    assert client.status_patches[-1]["containerStatuses"][0]["state"] == {
        "waiting": {"reason": "ContainerCreating"}
    }


async def test_a_failed_container_is_restarted_in_the_same_sandbox(
    env: tuple[PodWorker, FakeRuntime, FakeClient, Recorder],
) -> None:
    worker, runtime, client, recorder = env
    pod = make_pod([{"name": "scratch", "emptyDir": {}}], [MOUNTS[1]], policy="OnFailure")
    await worker.sync(pod)
    (first,) = runtime.running("app")
    runtime.exit(first, 1)
    await worker.sync(pod)
    (second,) = runtime.running("app")
    assert second != first
    assert runtime.containers[second].config.metadata.attempt == 1
    assert [c for c, _ in runtime.calls].count("RunPodSandbox") == 1
    runtime.exit(second, 0)  # OnFailure: a success is final
    await worker.sync(pod)
    assert runtime.running() == []
    assert client.status_patches[-1]["phase"] == "Succeeded"
    assert recorder.reasons().count("Started") == 2
    (sandbox,) = runtime.sandboxes.values()
    assert sandbox.state == pb.SANDBOX_NOTREADY


async def test_volume_usage_in_the_summary_and_the_claim_gauges(
    env: tuple[PodWorker, FakeRuntime, FakeClient, Recorder], tmp_path: Path
) -> None:
    worker, runtime, client, _ = env
    disk = tmp_path / "disk"
    disk.mkdir()
    bound_claim(client, disk)
    pod = make_pod(VOLUMES[:2], MOUNTS[:2])
    await worker.sync(pod)
    scratch = worker.volumes.volume_dir("uid-web", "empty-dir", "scratch")
    write(scratch / "blob", b"x" * 65536)
    stats = VolumeStats()
    await stats.refresh(worker.volumes.mounted, worker.volumes.namespaces)
    provider = StatsProvider(runtime, "n1", root_dir=tmp_path, volume_stats=stats.for_pod)
    (entry,) = (await provider.summary())["pods"]
    volumes = {v["name"]: v for v in entry["volume"]}
    assert volumes["scratch"]["usedBytes"] >= 65536 and volumes["scratch"]["inodesUsed"] == 2
    assert "pvcRef" not in volumes["scratch"]
    assert volumes["data"]["pvcRef"] == {"name": "data", "namespace": "ns"}
    data = volumes["data"]
    assert 0 < data["usedBytes"] <= data["capacityBytes"]  # a local PV: its filesystem
    assert 0 < data["availableBytes"] <= data["capacityBytes"] - data["usedBytes"]
    registry = CollectorRegistry()
    registry.register(VolumeStatsCollector(stats))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    labels = (("namespace", "ns"), ("persistentvolumeclaim", "data"))
    assert samples[("kubelet_volume_stats_capacity_bytes", labels)] == data["capacityBytes"]
    assert samples[("kubelet_volume_stats_used_bytes", labels)] == data["usedBytes"]
    assert samples[("kubelet_volume_stats_inodes_used", labels)] == data["inodesUsed"]
    assert len(samples) == 6  # one series per metric: only claims have gauges


class CountingRuntime(FakeRuntime):
    """A FakeRuntime that also counts the reads (lists and status calls) made of it."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.reads: Counter[str] = Counter()

    async def list_pod_sandbox(self, *a: Any, **kw: Any) -> list[pb.PodSandbox]:
        self.reads["ListPodSandbox"] += 1
        return await super().list_pod_sandbox(*a, **kw)

    async def list_containers(self, *a: Any, **kw: Any) -> list[pb.Container]:
        self.reads["ListContainers"] += 1
        return await super().list_containers(*a, **kw)

    async def pod_sandbox_status(self, *a: Any, **kw: Any) -> pb.PodSandboxStatusResponse:
        self.reads["PodSandboxStatus"] += 1
        return await super().pod_sandbox_status(*a, **kw)

    async def container_status(self, *a: Any, **kw: Any) -> pb.ContainerStatus:
        self.reads["ContainerStatus"] += 1
        return await super().container_status(*a, **kw)


def _comparable(status: Obj) -> Obj:
    """A pod status without the times a status write stamps (conditions' transitions)."""
    return {k: v for k, v in status.items() if k != "conditions"}


async def test_a_new_pod_is_read_back_only_for_what_its_sync_made(tmp_path: Path) -> None:
    """The first sync of a pod PLEG has seen nothing of lists nothing: it reads the sandbox
    and the container it created by id, and writes the status a full read gives; PLEG's
    next relist does not wake the pod for the worker's own starts, only for an exit."""
    runtime = CountingRuntime(images={IMAGE})
    client, recorder = FakeClient(), Recorder()
    relister = Relister(runtime)
    worker = new_worker(tmp_path, runtime, client, recorder, pleg=relister)
    assert await relister.relist() == set()
    runtime.reads.clear()
    pod = make_pod([], [])
    await worker.sync(pod)
    assert runtime.reads == {"PodSandboxStatus": 1, "ContainerStatus": 1}
    (written,) = client.status_patches
    assert written["phase"] == "Running" and written["podIP"]
    full = await read_pod_runtime(runtime, "uid-web")
    assert _comparable(written) == _comparable(pod_status(pod, full, worker._view(pod, full)))
    assert await relister.relist() == set()  # the worker's own sandbox and start

    (cid,) = runtime.running("app")
    runtime.exit(cid, 1)
    assert await relister.relist() == {"uid-web"}
    pod["status"] = written
    await worker.sync(pod)  # restarts it (restartPolicy Always), after a full read
    restarted = client.status_patches[-1]
    (app,) = restarted["containerStatuses"]
    assert app["restartCount"] == 1 and "running" in app["state"]
    assert app["lastState"]["terminated"]["exitCode"] == 1
    full = await read_pod_runtime(runtime, "uid-web")
    pod_now = {**pod, "status": restarted}
    assert _comparable(restarted) == _comparable(pod_status(pod, full, worker._view(pod_now, full)))
    assert await relister.relist() == set()


class MidSyncRuntime(FakeRuntime):
    """A FakeRuntime that runs ``hook`` (a PLEG relist, say) right after a container is
    created, or starts, or after a container's status was read (``after``: which)."""

    def __init__(self, after: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.after = after
        self.hook: Any = None

    async def create_container(self, *a: Any, **kw: Any) -> str:
        cid = await super().create_container(*a, **kw)
        if self.after == "create" and self.hook is not None:
            await self.hook(cid)
        return cid

    async def start_container(self, container_id: str) -> None:
        await super().start_container(container_id)
        if self.after == "start" and self.hook is not None:
            await self.hook(container_id)

    async def container_status(self, *a: Any, **kw: Any) -> pb.ContainerStatus:
        status = await super().container_status(*a, **kw)
        if self.after == "status" and self.hook is not None:
            await self.hook(status.id)
        return status


@pytest.mark.parametrize("after", ["create", "start", "status"])
async def test_a_relist_during_a_sync_wakes_the_pod_only_for_what_the_sync_missed(
    tmp_path: Path, after: str
) -> None:
    """PLEG relists while the pod worker creates and starts a container: the create and
    start wake nobody (a relist that caught the container created, not yet started, saw
    it before the worker did); a crash after the worker's read-back wakes the pod once
    its sync ends."""
    crash = after == "status"
    runtime = MidSyncRuntime(after, images={IMAGE})
    relister = Relister(runtime)
    woken: list[str] = []
    worker = new_worker(tmp_path, runtime, wake=woken.append, pleg=relister)
    relisted: list[set[str]] = []

    async def relist_mid_sync(cid: str) -> None:
        if crash:
            runtime.exit(cid, 2)  # after the worker read it running
        relisted.append(await relister.relist())

    runtime.hook = relist_mid_sync
    await worker.sync(make_pod([], []))
    runtime.hook = None
    assert relisted == [set()]  # held while the pod was being synced
    assert woken == (["uid-web"] if crash else [])
    assert await relister.relist() == set()
