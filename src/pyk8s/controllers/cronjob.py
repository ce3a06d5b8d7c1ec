"""The CronJob controller (upstream's "v2" controller): Jobs on a cron schedule.

Each reconcile looks at one CronJob: it forgets finished Jobs from ``status.active``
(``SawCompletedJob``), finds the most recent schedule time that has passed (in the
CronJob's ``timeZone``), starts a Job for it unless that was already done, the deadline
was missed or the concurrency policy says no, prunes finished Jobs beyond the history
limits, and asks to be woken at the next schedule time (``requeue_after``) — there is no
polling loop, as in upstream's v2 controller.

The schedule is validated with the API's own parser (:func:`parse_cron`, robfig/cron's
wording); :class:`Schedule` adds what validation does not need: the field sets and the
search for the next time, with robfig's rule that day-of-month and day-of-week are OR-ed
when both are restricted. The controller's clock is :attr:`CronJobReconciler.clock`, so
tests can move time instead of waiting for it.
"""

from __future__ import annotations

import copy
import logging
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pyk8s.api.registry import REGISTRY
from pyk8s.api.validation import parse_cron
from pyk8s.client import NORMAL, WARNING, ApiError, is_already_exists, is_conflict, is_not_found
from pyk8s.controllers.runtime import Manager, Request, Result, enqueue_owner

log = logging.getLogger(__name__)

Obj = dict[str, Any]

CRONJOBS = REGISTRY.get("batch", "v1", "cronjobs")
JOBS = REGISTRY.get("batch", "v1", "jobs")

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
OWNER_INDEX = "pyk8s-cronjob-owner-uid"
#: upstream wakes up this long after the schedule time
NEXT_SCHEDULE_DELTA = 0.1
MAX_MISSED = 100

_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_NAMES = {
    3: {
        m: i + 1
        for i, m in enumerate(
            ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        )
    },
    4: {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])},
}
_BOUNDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]


def _field(expr: str, pos: int) -> tuple[frozenset[int], bool]:
    """The values one field allows, and robfig's "star" bit (``*``/``?`` without a step)."""
    lo, hi = _BOUNDS[pos]
    names = _NAMES.get(pos, {})
    values: set[int] = set()
    star = False
    for part in expr.split(","):
        rng, _, step_s = part.partition("/")
        step = int(step_s) if step_s else 1
        if rng in ("*", "?"):
            start, end = lo, hi
            star = star or step == 1
        else:
            a, _, b = rng.partition("-")
            start = names[a.lower()] if a.lower() in names else int(a)
            if b:
                end = names[b.lower()] if b.lower() in names else int(b)
            else:
                end = hi if step_s else start
        values.update(range(start, end + 1, step))
    return frozenset(values), star


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    dom: frozenset[int]
    months: frozenset[int]
    dow: frozenset[int]
    dom_star: bool
    dow_star: bool
    tz: zoneinfo.ZoneInfo

    @classmethod
    def parse(cls, spec: str, tz: str | None = None) -> Schedule:
        """Raises ``ValueError`` (robfig's message) for a bad spec or zone."""
        parse_cron(spec)
        if spec.startswith(("TZ=", "CRON_TZ=")):
            head, _, spec = spec.partition(" ")
            tz = head.split("=", 1)[1]
            spec = spec.strip()
        spec = _DESCRIPTORS.get(spec, spec)
        if spec.startswith("@every"):
            raise ValueError("@every schedules are not supported")
        fields = spec.split()
        parsed = [_field(f, i) for i, f in enumerate(fields)]
        return cls(
            minutes=parsed[0][0],
            hours=parsed[1][0],
            dom=parsed[2][0],
            months=parsed[3][0],
            dow=parsed[4][0],
            dom_star=parsed[2][1],
            dow_star=parsed[4][1],
            tz=zoneinfo.ZoneInfo(tz) if tz else zoneinfo.ZoneInfo("UTC"),
        )

    def _day_matches(self, t: datetime) -> bool:
        dom = t.day in self.dom
        dow = (t.isoweekday() % 7) in self.dow
        if self.dom_star or self.dow_star:
            return dom and dow
        return dom or dow

    def next(self, after: datetime) -> datetime | None:
        """The first schedule time strictly after ``after`` (aware), or None within 5 years."""
        local = after.astimezone(self.tz).replace(tzinfo=None, second=0, microsecond=0)
        t = local + timedelta(minutes=1)
        limit = t + timedelta(days=366 * 5)
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1) + timedelta(days=32)).replace(day=1, hour=0, minute=0)
                continue
            if not self._day_matches(t):
                t = (t + timedelta(days=1)).replace(hour=0, minute=0)
                continue
            if t.hour not in self.hours:
                t = (t + timedelta(hours=1)).replace(minute=0)
                continue
            if t.minute not in self.minutes:
                t += timedelta(minutes=1)
                continue
            aware = t.replace(tzinfo=self.tz)
            # a wall time skipped by a DST jump does not exist: skip it
            roundtrip = aware.astimezone(UTC).astimezone(self.tz).replace(tzinfo=None)
            if roundtrip == t and aware > after:
                return aware
            t += timedelta(minutes=1)
        return None

    def most_recent(self, earliest: datetime, now: datetime) -> tuple[datetime | None, int]:
        """The latest schedule time in (earliest, now] and how many there were (capped
        just above :data:`MAX_MISSED`, as upstream only needs to know "too many")."""
        t = self.next(earliest)
        last: datetime | None = None
        count = 0
        while t is not None and t <= now:
            last, count = t, count + 1
            if count > MAX_MISSED:
                break
            t = self.next(t)
        if count <= MAX_MISSED:
            return last, count
        for window in (timedelta(hours=1), timedelta(days=1), timedelta(days=32)):
            start = max(earliest, now - window)
            t = self.next(start)
            if t is not None and t <= now:
                while True:
                    nxt = self.next(t)
                    if nxt is None or nxt > now:
                        return t, count
                    t = nxt
        return last, count


def _parse_time(ts: Any) -> datetime | None:
    if not isinstance(ts, str) or not ts:
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None


def _fmt(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rfc3339(t: datetime) -> str:
    """Go's time.RFC3339: ``Z`` for UTC, otherwise ``±hh:mm``."""
    s = t.isoformat(timespec="seconds")
    return s[:-6] + "Z" if s.endswith("+00:00") else s


def _owner_uid(job: Obj) -> list[str]:
    for ref in (job.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller") and ref.get("kind") == "CronJob":
            return [str(ref.get("uid", ""))]
    return []


def _finished(job: Obj) -> str | None:
    for c in (job.get("status") or {}).get("conditions") or ():
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return str(c["type"])
    return None


def job_name(cronjob: str, scheduled: datetime) -> str:
    return f"{cronjob}-{int(scheduled.timestamp()) // 60}"


class CronJobReconciler:
    def __init__(self, manager: Manager) -> None:
        assert CRONJOBS is not None and JOBS is not None
        self.client = manager.client
        self.recorder = manager.recorder
        self.cronjobs = manager.informers.informer(CRONJOBS)
        self.jobs = manager.informers.informer(JOBS, indexers={OWNER_INDEX: _owner_uid})
        #: the controller's clock (aware datetimes); tests replace it
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def reconcile(self, request: Request) -> Result | None:
        assert CRONJOBS is not None and JOBS is not None
        cached = self.cronjobs.store.get_by_name(request.namespace, request.name)
        if cached is None:
            return None
        cj = copy.deepcopy(cached)
        children = list(self.jobs.store.by_index(OWNER_INDEX, cj["metadata"]["uid"]))
        known = {a.get("uid") for a in (cj.get("status") or {}).get("active") or ()}
        if any(j["metadata"]["uid"] not in known and not _finished(j) for j in children):
            # our cache may predate the status write that recorded the Job: read it fresh
            try:
                cj = await self.client.get(CRONJOBS, request.name, request.namespace)
            except ApiError as err:
                if is_not_found(err):
                    return None
                raise
        status: Obj = cj.setdefault("status", {})
        before = copy.deepcopy(status)
        active: list[Obj] = list(status.get("active") or [])
        active_uids = {a.get("uid") for a in active}

        for job in children:
            uid = job["metadata"]["uid"]
            done = _finished(job)
            if uid not in active_uids and not done:
                self.recorder.event(
                    cj,
                    WARNING,
                    "UnexpectedJob",
                    f"Saw a job that the controller did not create or forgot: "
                    f"{job['metadata']['name']}",
                )
            elif uid in active_uids and done:
                active = [a for a in active if a.get("uid") != uid]
                self.recorder.event(
                    cj,
                    NORMAL,
                    "SawCompletedJob",
                    f"Saw completed job: {job['metadata']['name']}, condition: {done}",
                )
            if done == "Complete":
                completed = _parse_time((job.get("status") or {}).get("completionTime"))
                last_ok = _parse_time(status.get("lastSuccessfulTime"))
                if completed is not None and (last_ok is None or completed > last_ok):
                    status["lastSuccessfulTime"] = _fmt(completed)
        child_uids = {j["metadata"]["uid"] for j in children}
        for ref in list(active):
            if ref.get("uid") in child_uids:
                continue
            try:
                await self.client.get(JOBS, ref.get("name", ""), request.namespace)
            except ApiError as err:
                if not is_not_found(err):
                    raise
                active = [a for a in active if a.get("uid") != ref.get("uid")]
                self.recorder.event(
                    cj, NORMAL, "MissingJob", f"Active job went missing: {ref.get('name')}"
                )
        status["active"] = active

        result = await self._schedule(cj, status, active)
        if not status.get("active"):
            status.pop("active", None)
        if status != before:
            try:
                await self.client.update_status(CRONJOBS, cj)
            except ApiError as err:
                if is_conflict(err):
                    return Result(requeue=True)
                raise
        await self._cleanup(cj, children)
        return result

    async def _schedule(self, cj: Obj, status: Obj, active: list[Obj]) -> Result | None:
        assert JOBS is not None
        spec = cj.get("spec") or {}
        if cj["metadata"].get("deletionTimestamp"):
            return None
        tz = spec.get("timeZone")
        if tz:
            try:
                zoneinfo.ZoneInfo(tz)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                self.recorder.event(cj, WARNING, "UnknownTimeZone", f"invalid timeZone: {tz!r}")
                return None
        if spec.get("suspend"):
            return None
        try:
            sched = Schedule.parse(str(spec.get("schedule", "")), tz)
        except ValueError as err:
            self.recorder.event(
                cj,
                WARNING,
                "UnparseableSchedule",
                f"unparseable schedule: {spec.get('schedule')!r} : {err}",
            )
            return None
        now = self.clock()
        earliest = _parse_time(status.get("lastScheduleTime")) or _parse_time(
            cj["metadata"].get("creationTimestamp")
        )
        earliest = earliest or now
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None:
            earliest = max(earliest, now - timedelta(seconds=int(deadline)))
        scheduled, missed = sched.most_recent(earliest, now)
        if missed > MAX_MISSED:
            self.recorder.event(
                cj,
                WARNING,
                "TooManyMissedTimes",
                f"too many missed start times: {missed}. Set or decrease "
                ".spec.startingDeadlineSeconds or check clock skew",
            )
        wake = self._requeue(sched, now)
        if scheduled is None:
            return wake
        if deadline is not None and scheduled + timedelta(seconds=int(deadline)) < now:
            self.recorder.event(
                cj,
                WARNING,
                "MissSchedule",
                f"Missed scheduled time to start a job: {_rfc3339(scheduled)}",
            )
            return wake
        name = job_name(cj["metadata"]["name"], scheduled)
        if any(a.get("name") == name for a in active) or status.get("lastScheduleTime") == _fmt(
            scheduled
        ):
            return wake
        policy = spec.get("concurrencyPolicy", "Allow")
        if policy == "Forbid" and active:
            self.recorder.event(
                cj,
                NORMAL,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy "
                "is Forbid",
            )
            return wake
        if policy == "Replace":
            for ref in list(active):
                try:
                    await self.client.delete(
                        JOBS,
                        ref["name"],
                        cj["metadata"]["namespace"],
                        propagation_policy="Background",
                    )
                except ApiError as err:
                    if not is_not_found(err):
                        self.recorder.event(cj, WARNING, "FailedDelete", f"Deleted job: {err}")
                        raise
                self.recorder.event(cj, NORMAL, "SuccessfulDelete", f"Deleted job {ref['name']}")
                active.remove(ref)
        job = self._job(cj, name, scheduled)
        try:
            created = await self.client.create(JOBS, job, cj["metadata"]["namespace"])
        except ApiError as err:
            if not is_already_exists(err):
                self.recorder.event(cj, WARNING, "FailedCreate", f"Error creating job: {err}")
                raise
            # made earlier and the status write was lost: take it back if it is ours
            created = await self.client.get(JOBS, name, cj["metadata"]["namespace"])
            if cj["metadata"]["uid"] not in _owner_uid(created):
                status["lastScheduleTime"] = _fmt(scheduled)
                return wake
        else:
            self.recorder.event(cj, NORMAL, "SuccessfulCreate", f"Created job {name}")
        meta = created["metadata"]
        active.append(
            {
                "kind": "Job",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
                "apiVersion": "batch/v1",
                "resourceVersion": meta.get("resourceVersion", ""),
            }
        )
        status["lastScheduleTime"] = _fmt(scheduled)
        return wake

    def _requeue(self, sched: Schedule, now: datetime) -> Result | None:
        nxt = sched.next(now)
        if nxt is None:
            return None
        return Result(requeue_after=max((nxt - now).total_seconds(), 0) + NEXT_SCHEDULE_DELTA)

    def _job(self, cj: Obj, name: str, scheduled: datetime) -> Obj:
        tmpl = copy.deepcopy((cj.get("spec") or {}).get("jobTemplate") or {})
        tmeta = tmpl.get("metadata") or {}
        annotations = dict(tmeta.get("annotations") or {})
        annotations[SCHEDULED_TIMESTAMP] = _rfc3339(scheduled)
        meta: Obj = {
            "name": name,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": cj["metadata"]["name"],
                    "uid": cj["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        }
        if tmeta.get("labels"):
            meta["labels"] = dict(tmeta["labels"])
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": meta,
            "spec": tmpl.get("spec") or {},
        }

    async def _cleanup(self, cj: Obj, children: list[Obj]) -> None:
        """Delete the oldest finished Jobs beyond successful/failedJobsHistoryLimit."""
        assert JOBS is not None
        spec = cj.get("spec") or {}
        for kind, field in (
            ("Complete", "successfulJobsHistoryLimit"),
            ("Failed", "failedJobsHistoryLimit"),
        ):
            limit = spec.get(field)
            if limit is None:
                continue
            done = [
                j
                for j in children
                if _finished(j) == kind and not j["metadata"].get("deletionTimestamp")
            ]
            if len(done) <= int(limit):
                continue
            done.sort(
                key=lambda j: (
                    (j.get("status") or {}).get("startTime") or "",
                    j["metadata"].get("creationTimestamp") or "",
                )
            )
            for job in done[: len(done) - int(limit)]:
                meta = job["metadata"]
                try:
                    await self.client.delete(
                        JOBS, meta["name"], meta["namespace"], propagation_policy="Background"
                    )
                except ApiError as err:
                    if is_not_found(err):
                        continue
                    self.recorder.event(cj, WARNING, "FailedDelete", f"Deleted job: {err}")
                    raise
                self.recorder.event(cj, NORMAL, "SuccessfulDelete", f"Deleted job {meta['name']}")


def setup(manager: Manager) -> None:
    reconciler = CronJobReconciler(manager)
    controller = manager.add("cronjob", reconciler, workers=2)
    controller.watch(reconciler.cronjobs)
    controller.watch(reconciler.jobs, enqueue_owner("CronJob", "batch/v1"))
