"""The Job controller: completions with parallelism, the backoff limit, Indexed jobs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from pyk8s.api.registry import REGISTRY
from pyk8s.client import Client
from pyk8s.controllers import job as job_controller
from pyk8s.controllers.runtime import Manager
from tests.controllers.conftest import eventually
from tests.controllers.podsim import set_terminated
from tests.controllers.synced import touch_and_wait_for_sync

JOBS = REGISTRY.get("batch", "v1", "jobs")
PODS = REGISTRY.get("", "v1", "pods")
EVENTS = REGISTRY.get("", "v1", "events")

Run = Callable[..., Awaitable[Manager]]


@pytest.fixture(autouse=True)
def short_backoff() -> Iterator[None]:
    saved = job_controller.POD_FAILURE_BACKOFF
    job_controller.POD_FAILURE_BACKOFF = 0.2
    yield
    job_controller.POD_FAILURE_BACKOFF = saved


def job_body(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox"}],
                }
            },
            **spec,
        },
    }


async def pods_of(client: Client, ns: str, job: str) -> list[dict[str, Any]]:
    assert PODS is not None
    got = await client.list(PODS, ns, label_selector=f"batch.kubernetes.io/job-name={job}")
    return list(got["items"])


def running(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        p
        for p in pods
        if p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
        and not p["metadata"].get("deletionTimestamp")
    ]


def condition(job: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for c in job.get("status", {}).get("conditions") or ():
        if c["type"] == ctype and c["status"] == "True":
            return dict(c)
    return None


async def test_completions_with_parallelism(
    client: Client, namespace: str, run_controllers: Run
) -> None:
    assert JOBS is not None and EVENTS is not None
    manager = await run_controllers("job")
    created = await client.create(JOBS, job_body("pi", completions=3, parallelism=2), namespace)
    max_active = 0
    done = 0
    while done < 3:

        async def two_or_rest(want: int = min(2, 3 - done)) -> list[dict[str, Any]] | None:
            act = running(await pods_of(client, namespace, "pi"))
            return act if len(act) == want else None

        act = await eventually(two_or_rest, within=30)
        max_active = max(max_active, len(act))
        pod = act[0]
        meta = pod["metadata"]
        assert meta["generateName"] == "pi-"
        assert meta["labels"]["batch.kubernetes.io/job-name"] == "pi"
        assert meta["labels"]["batch.kubernetes.io/controller-uid"] == created["metadata"]["uid"]
        assert "batch.kubernetes.io/job-tracking" in meta["finalizers"]
        [ref] = meta["ownerReferences"]
        assert ref["kind"] == "Job" and ref["controller"] is True
        await set_terminated(client, pod, 0)
        done += 1
    assert max_active == 2

    async def complete() -> dict[str, Any] | None:
        j = await client.get(JOBS, "pi", namespace)
        return j if condition(j, "Complete") else None

    job = await eventually(complete, within=30)
    # settled: a finished Job is not rewritten again and again. The controller reconciles
    # it once more after the touch reached its cache; that pass writes nothing.
    touched = await touch_and_wait_for_sync(client, manager, "job", JOBS, namespace, "pi")
    assert (await client.get(JOBS, "pi", namespace))["metadata"]["resourceVersion"] == touched[
        "metadata"
    ]["resourceVersion"]
    status = job["status"]
    assert status["succeeded"] == 3
    assert status.get("failed", 0) == 0
    assert status.get("active", 0) == 0
    assert status["startTime"] and status["completionTime"]
    assert condition(job, "SuccessCriteriaMet") is not None
    # every pod was counted and released: no finalizer left, no extra pod created
    pods = await pods_of(client, namespace, "pi")
    assert len(pods) == 3
    assert all(
        "batch.kubernetes.io/job-tracking" not in (p["metadata"].get("finalizers") or [])
        for p in pods
    )

    async def completed_event() -> bool:
        evs = await client.list(EVENTS, namespace)
        reasons = [e["reason"] for e in evs["items"]]
        return "Completed" in reasons and reasons.count("SuccessfulCreate") >= 1

    await eventually(completed_event, within=20)


async def test_backoff_limit(client: Client, namespace: str, run_controllers: Run) -> None:
    assert JOBS is not None and EVENTS is not None
    await run_controllers("job")
    await client.create(JOBS, job_body("fails", backoffLimit=1), namespace)
    for _attempt in range(2):

        async def one_active() -> dict[str, Any] | None:
            act = running(await pods_of(client, namespace, "fails"))
            return act[0] if len(act) == 1 else None

        pod = await eventually(one_active, within=30)
        await set_terminated(client, pod, 1)

    async def failed() -> dict[str, Any] | None:
        j = await client.get(JOBS, "fails", namespace)
        return j if condition(j, "Failed") else None

    job = await eventually(failed, within=30)
    cond = condition(job, "Failed")
    assert cond is not None
    assert cond["reason"] == "BackoffLimitExceeded"
    assert cond["message"] == "Job has reached the specified backoff limit"
    assert job["status"]["failed"] == 2
    assert len(await pods_of(client, namespace, "fails")) == 2

    async def warning() -> bool:
        evs = await client.list(EVENTS, namespace)
        return any(
            e["reason"] == "BackoffLimitExceeded" and e["type"] == "Warning" for e in evs["items"]
        )

    await eventually(warning, within=20)


async def test_indexed_job(client: Client, namespace: str, run_controllers: Run) -> None:
    assert JOBS is not None
    await run_controllers("job")
    await client.create(
        JOBS, job_body("idx", completions=3, parallelism=3, completionMode="Indexed"), namespace
    )

    async def three() -> list[dict[str, Any]] | None:
        act = running(await pods_of(client, namespace, "idx"))
        return act if len(act) == 3 else None

    pods = await eventually(three, within=30)
    by_index = {
        p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p for p in pods
    }
    assert sorted(by_index) == ["0", "1", "2"]
    for i, p in by_index.items():
        assert p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == i
        assert p["spec"]["hostname"] == f"idx-{i}"
        assert p["metadata"]["generateName"] == f"idx-{i}-"
    await set_terminated(client, by_index["1"], 0)

    async def index_one_done() -> dict[str, Any] | None:
        j = await client.get(JOBS, "idx", namespace)
        return j if j.get("status", {}).get("completedIndexes") == "1" else None

    await eventually(index_one_done, within=30)
    await set_terminated(client, by_index["0"], 0)
    await set_terminated(client, by_index["2"], 0)

    async def complete() -> dict[str, Any] | None:
        j = await client.get(JOBS, "idx", namespace)
        return j if condition(j, "Complete") else None

    job = await eventually(complete, within=30)
    assert job["status"]["completedIndexes"] == "0-2"
    assert job["status"]["succeeded"] == 3
    assert len(await pods_of(client, namespace, "idx")) == 3


def test_index_intervals() -> None:
    assert job_controller.format_indexes({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    assert job_controller.parse_indexes("0-2,5,7-8", 8) == {0, 1, 2, 5, 7}


async def test_ttl_after_finished_deletes_the_job(
    client: Client, namespace: str, run_controllers: Run
) -> None:
    assert JOBS is not None
    await run_controllers("job", "ttlafterfinished")
    await client.create(JOBS, job_body("short", ttlSecondsAfterFinished=1), namespace)

    async def one_active() -> dict[str, Any] | None:
        act = running(await pods_of(client, namespace, "short"))
        return act[0] if len(act) == 1 else None

    await set_terminated(client, await eventually(one_active, within=30), 0)

    async def gone() -> bool:
        jobs = await client.list(JOBS, namespace)
        return not jobs["items"]

    await eventually(gone, within=30)


async def test_pod_failure_policy_fail_job(
    client: Client, namespace: str, run_controllers: Run
) -> None:
    assert JOBS is not None
    await run_controllers("job")
    policy = {
        "rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
        ]
    }
    await client.create(JOBS, job_body("pfp", backoffLimit=6, podFailurePolicy=policy), namespace)

    async def one_active() -> dict[str, Any] | None:
        act = running(await pods_of(client, namespace, "pfp"))
        return act[0] if len(act) == 1 else None

    pod = await eventually(one_active, within=30)
    await set_terminated(client, pod, 42)

    async def failed() -> dict[str, Any] | None:
        j = await client.get(JOBS, "pfp", namespace)
        return j if condition(j, "Failed") else None

    job = await eventually(failed, within=30)
    cond = condition(job, "Failed")
    assert cond is not None and cond["reason"] == "PodFailurePolicy"
    name = pod["metadata"]["name"]
    assert cond["message"] == (
        f"Container main for pod {namespace}/{name} failed with exit code 42 "
        "matching FailJob rule at index 1"
    )
    assert condition(job, "FailureTarget") is not None


async def test_active_deadline(client: Client, namespace: str, run_controllers: Run) -> None:
    assert JOBS is not None
    await run_controllers("job")
    await client.create(JOBS, job_body("slow", activeDeadlineSeconds=2), namespace)

    async def failed() -> dict[str, Any] | None:
        j = await client.get(JOBS, "slow", namespace)
        return j if condition(j, "Failed") else None

    job = await eventually(failed, within=30)
    cond = condition(job, "Failed")
    assert cond is not None and cond["reason"] == "DeadlineExceeded"
    assert cond["message"] == "Job was active longer than specified deadline"
    # the pod that was still running was stopped
    assert running(await pods_of(client, namespace, "slow")) == []


async def test_deleted_job_releases_its_pods(
    client: Client, namespace: str, run_controllers: Run
) -> None:
    assert JOBS is not None
    await run_controllers("job")
    await client.create(JOBS, job_body("bye"), namespace)

    async def one_active() -> dict[str, Any] | None:
        act = running(await pods_of(client, namespace, "bye"))
        return act[0] if len(act) == 1 else None

    pod = await eventually(one_active, within=30)
    await client.delete(JOBS, "bye", namespace)

    async def released() -> bool:
        pods = await pods_of(client, namespace, "bye")
        return [p["metadata"]["name"] for p in pods] == [pod["metadata"]["name"]] and (
            "batch.kubernetes.io/job-tracking" not in (pods[0]["metadata"].get("finalizers") or [])
        )

    await eventually(released, within=30)


async def test_suspend_and_resume(client: Client, namespace: str, run_controllers: Run) -> None:
    assert JOBS is not None
    await run_controllers("job")
    await client.create(JOBS, job_body("sleepy", suspend=True), namespace)

    async def suspended() -> dict[str, Any] | None:
        j = await client.get(JOBS, "sleepy", namespace)
        return j if condition(j, "Suspended") else None

    job = await eventually(suspended, within=30)
    cond = condition(job, "Suspended")
    assert cond is not None and cond["reason"] == "JobSuspended"
    assert "startTime" not in job["status"]
    assert await pods_of(client, namespace, "sleepy") == []
    await client.patch(JOBS, "sleepy", {"spec": {"suspend": False}}, namespace, patch_type="merge")

    async def resumed() -> dict[str, Any] | None:
        j = await client.get(JOBS, "sleepy", namespace)
        conds = {c["type"]: c for c in j["status"].get("conditions") or ()}
        ok = conds.get("Suspended", {}).get("reason") == "JobResumed"
        return j if ok and running(await pods_of(client, namespace, "sleepy")) else None

    job = await eventually(resumed, within=30)
    assert job["status"]["startTime"]
