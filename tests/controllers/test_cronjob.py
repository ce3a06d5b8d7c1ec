"""The CronJob controller: the schedule arithmetic, and a real run on a clock moved so the
next minute is seconds away."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pyk8s.api.registry import REGISTRY
from pyk8s.client import ApiError, Client, is_not_found
from pyk8s.controllers.cronjob import CronJobReconciler, Schedule, job_name
from pyk8s.controllers.runtime import Manager
from tests.controllers.conftest import eventually
from tests.controllers.podsim import set_terminated

CRONJOBS = REGISTRY.get("batch", "v1", "cronjobs")
JOBS = REGISTRY.get("batch", "v1", "jobs")
PODS = REGISTRY.get("", "v1", "pods")
EVENTS = REGISTRY.get("", "v1", "events")

Run = Callable[..., Awaitable[Manager]]


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def test_descriptors_and_ranges() -> None:
    assert Schedule.parse("@hourly").next(utc(2024, 5, 1, 10, 15)) == utc(2024, 5, 1, 11, 0)
    assert Schedule.parse("@daily").next(utc(2024, 5, 1, 10, 15)) == utc(2024, 5, 2, 0, 0)
    assert Schedule.parse("@weekly").next(utc(2024, 5, 1)) == utc(2024, 5, 5)  # a Sunday
    # Friday 17:50 → Monday 09:00
    weekdays = Schedule.parse("*/15 9-17 * * mon-fri")
    assert weekdays.next(utc(2024, 5, 3, 17, 50)) == utc(2024, 5, 6, 9, 0)
    assert weekdays.next(utc(2024, 5, 6, 9, 0)) == utc(2024, 5, 6, 9, 15)
    assert Schedule.parse("0 0 29 feb *").next(utc(2024, 3, 1)) == utc(2028, 2, 29)


def test_day_of_month_or_day_of_week() -> None:
    # both restricted: either matches (the 13th, or any Friday)
    s = Schedule.parse("0 0 13 * 5")
    assert s.next(utc(2024, 9, 1)) == utc(2024, 9, 6)  # Friday 6th
    assert s.next(utc(2024, 9, 10)) == utc(2024, 9, 13)  # the 13th (also a Friday)
    # one is a star: both must match
    assert Schedule.parse("0 0 * * 5").next(utc(2024, 9, 7)) == utc(2024, 9, 13)


def test_time_zone_follows_daylight_saving() -> None:
    s = Schedule.parse("0 9 * * *", "America/New_York")
    assert s.next(utc(2024, 3, 9, 15, 0)) == utc(2024, 3, 10, 13, 0)  # EDT
    assert s.next(utc(2024, 3, 8, 15, 0)) == utc(2024, 3, 9, 14, 0)  # EST
    assert Schedule.parse("CRON_TZ=Asia/Tokyo 0 0 * * *").next(utc(2024, 1, 1, 12)) == utc(
        2024, 1, 1, 15
    )


def test_most_recent_and_too_many_missed() -> None:
    s = Schedule.parse("*/5 * * * *")
    now = utc(2024, 1, 1, 12, 7, 30)
    assert s.most_recent(utc(2024, 1, 1, 11, 58), now) == (utc(2024, 1, 1, 12, 5), 2)
    assert s.most_recent(utc(2024, 1, 1, 12, 5, 10), now) == (None, 0)
    last, count = Schedule.parse("* * * * *").most_recent(utc(2024, 1, 1, 8), now)
    assert last == utc(2024, 1, 1, 12, 7) and count > 100


def test_bad_specs_are_rejected() -> None:
    with pytest.raises(ValueError, match="expected exactly 5 fields"):
        Schedule.parse("* * *")
    with pytest.raises(ValueError):
        Schedule.parse("61 * * * *")


def test_job_names_are_minutes_since_epoch() -> None:
    assert job_name("hello", utc(2024, 1, 1, 0, 1)) == "hello-28401121"  # 1704067260 s / 60


async def test_a_scheduled_run_and_history_limit(
    client: Client, namespace: str, run_controllers: Run
) -> None:
    assert CRONJOBS is not None and JOBS is not None and PODS is not None
    assert EVENTS is not None
    if datetime.now(UTC).second >= 50:  # keep the whole arrangement inside one minute
        await asyncio.sleep(61 - datetime.now(UTC).second)
    manager = await run_controllers("cronjob", "job")
    [reconciler] = [c.reconciler for c in manager.controllers if c.name == "cronjob"]
    assert isinstance(reconciler, CronJobReconciler)
    real = datetime.now(UTC)
    offset = timedelta(seconds=57 - real.second - real.microsecond / 1e6)
    reconciler.clock = lambda: datetime.now(UTC) + offset  # the next minute is ~3 s away
    first = real.replace(second=0, microsecond=0) + timedelta(minutes=1)

    await client.create(
        CRONJOBS,
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "tick"},
            "spec": {
                "schedule": "* * * * *",
                "successfulJobsHistoryLimit": 1,
                "jobTemplate": {
                    "metadata": {"labels": {"made-by": "tick"}},
                    "spec": {
                        "template": {
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [{"name": "c", "image": "busybox"}],
                            }
                        }
                    },
                },
            },
        },
        namespace,
    )

    async def job_for(when: datetime) -> dict[str, Any] | None:
        try:
            return await client.get(JOBS, job_name("tick", when), namespace)
        except ApiError as err:
            if is_not_found(err):
                return None
            raise

    async def run_once(when: datetime) -> dict[str, Any]:
        job: dict[str, Any] = await eventually(lambda: job_for(when), within=30)
        ann = job["metadata"]["annotations"]
        assert ann["batch.kubernetes.io/cronjob-scheduled-timestamp"] == when.strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        assert job["metadata"]["labels"]["made-by"] == "tick"
        [ref] = job["metadata"]["ownerReferences"]
        assert ref["kind"] == "CronJob" and ref["name"] == "tick" and ref["controller"]

        async def listed_active() -> bool:
            cj = await client.get(CRONJOBS, "tick", namespace)
            st = cj.get("status", {})
            return [a["name"] for a in st.get("active") or []] == [
                job["metadata"]["name"]
            ] and st.get("lastScheduleTime") == when.strftime("%Y-%m-%dT%H:%M:%SZ")

        await eventually(listed_active, within=30)

        async def pod() -> dict[str, Any] | None:
            got = await client.list(
                PODS,
                namespace,
                label_selector=f"batch.kubernetes.io/job-name={job['metadata']['name']}",
            )
            return got["items"][0] if got["items"] else None

        await set_terminated(client, await eventually(pod, within=30), 0)

        async def saw_completed() -> dict[str, Any] | None:
            cj = await client.get(CRONJOBS, "tick", namespace)
            st = cj.get("status", {})
            return cj if not st.get("active") and st.get("lastSuccessfulTime") else None

        await eventually(saw_completed, within=30)
        return job

    first_job = await run_once(first)

    # a minute later (moved, not waited for): the next run; the history limit of 1 then
    # removes the first Job
    offset += timedelta(minutes=1)
    await client.patch(
        CRONJOBS,
        "tick",
        {"metadata": {"annotations": {"poke": "1"}}},
        namespace,
        patch_type="merge",
    )
    await run_once(first + timedelta(minutes=1))

    async def first_deleted() -> bool:
        jobs = await client.list(JOBS, namespace)
        names = [j["metadata"]["name"] for j in jobs["items"]]
        return first_job["metadata"]["name"] not in names and len(names) == 1

    await eventually(first_deleted, within=30)

    async def events() -> bool:
        evs = await client.list(EVENTS, namespace)
        reasons = {e["reason"] for e in evs["items"] if e["involvedObject"]["kind"] == "CronJob"}
        return {"SuccessfulCreate", "SawCompletedJob", "SuccessfulDelete"} <= reasons

    await eventually(events, within=20)
