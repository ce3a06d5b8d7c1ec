"""The Job controller: runs a Job's pods to completion, as upstream's job controller does.

A Job wants ``completions`` pods to succeed, at most ``parallelism`` at a time, and gives
up after ``backoffLimit`` failures or ``activeDeadlineSeconds``. Pods are counted exactly
once even when they are deleted quickly, because every pod is created with the
``batch.kubernetes.io/job-tracking`` finalizer: a finished pod's UID first goes into
``status.uncountedTerminatedPods``, then the finalizer is removed, then the UID moves into
the ``succeeded``/``failed`` counters (upstream's "tracking with finalizers").

As upstream v1.32 (JobSuccessPolicy and JobPodReplacementPolicy on by default), a Job
first gets the interim ``SuccessCriteriaMet``/``FailureTarget`` condition, its remaining
pods are deleted, and only when none is left terminating does it get ``Complete``/``Failed``.
"""

from __future__ import annotations

import copy
import logging
import time
from datetime import UTC, datetime
from typing import Any

from pyk8s.api.registry import REGISTRY
from pyk8s.client import NORMAL, WARNING, ApiError, is_conflict, is_not_found
from pyk8s.controllers.runtime import Manager, Request, Result, enqueue_owner

log = logging.getLogger(__name__)

Obj = dict[str, Any]

JOBS = REGISTRY.get("batch", "v1", "jobs")
PODS = REGISTRY.get("", "v1", "pods")

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
OWNER_INDEX = "pyk8s-job-owner-uid"

#: first delay before recreating a pod after a failure, doubled per failure (upstream 10 s)
POD_FAILURE_BACKOFF: float = 10.0
#: cap of that delay (six minutes, as upstream documents)
POD_FAILURE_BACKOFF_CAP: float = 360.0
#: how long to wait for the cache to show our own creates/deletes before acting anyway
EXPECTATIONS_TIMEOUT: float = 30.0

BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
DEADLINE_EXCEEDED = "DeadlineExceeded"
POD_FAILURE_POLICY = "PodFailurePolicy"
COMPLETIONS_REACHED = "CompletionsReached"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(ts: Any) -> float | None:
    if not isinstance(ts, str) or not ts:
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _owner_uid(pod: Obj) -> list[str]:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller") and ref.get("kind") == "Job":
            return [str(ref.get("uid", ""))]
    return []


def _owner_name(pod: Obj) -> str:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller") and ref.get("kind") == "Job":
            return str(ref.get("name", ""))
    return ""


def _condition(job: Obj, ctype: str) -> Obj | None:
    for c in (job.get("status") or {}).get("conditions") or ():
        if c.get("type") == ctype and c.get("status") == "True":
            return dict(c)
    return None


def is_finished(job: Obj) -> bool:
    return _condition(job, "Complete") is not None or _condition(job, "Failed") is not None


def _set_condition(status: Obj, ctype: str, cstatus: str, reason: str, message: str) -> bool:
    conds: list[Obj] = status.setdefault("conditions", [])
    now = _now()
    for c in conds:
        if c.get("type") == ctype:
            if c.get("status") == cstatus and c.get("reason") == reason:
                return False
            c.update(status=cstatus, reason=reason, message=message, lastProbeTime=now)
            c["lastTransitionTime"] = now
            return True
    conds.append(
        {
            "type": ctype,
            "status": cstatus,
            "lastProbeTime": now,
            "lastTransitionTime": now,
            "reason": reason,
            "message": message,
        }
    )
    return True


def _normal(status: Obj) -> Obj:
    """The status without empty fields, to compare what we would write with what is."""
    return {k: v for k, v in status.items() if v not in (0, "", None, {}, [])}


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def _is_ready(pod: Obj) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def _index(pod: Obj) -> int | None:
    meta = pod.get("metadata") or {}
    raw = (meta.get("annotations") or {}).get(COMPLETION_INDEX)
    if raw is None:
        raw = (meta.get("labels") or {}).get(COMPLETION_INDEX)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _has_finalizer(pod: Obj) -> bool:
    return TRACKING_FINALIZER in ((pod.get("metadata") or {}).get("finalizers") or ())


def _pod_failed(pod: Obj) -> bool:
    """Failed, or deleted before it finished (upstream counts that as a failure)."""
    phase = _phase(pod)
    if phase == "Failed":
        return True
    return bool((pod.get("metadata") or {}).get("deletionTimestamp")) and phase != "Succeeded"


def _pod_finished(pod: Obj) -> bool:
    return _phase(pod) == "Succeeded" or _pod_failed(pod)


def format_indexes(indexes: set[int]) -> str:
    """Upstream's compressed interval list: ``1,3-5,7``."""
    out: list[str] = []
    items = sorted(indexes)
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1] == items[j] + 1:
            j += 1
        out.append(str(items[i]) if i == j else f"{items[i]}-{items[j]}")
        i = j + 1
    return ",".join(out)


def parse_indexes(text: str | None, completions: int) -> set[int]:
    got: set[int] = set()
    for part in (text or "").split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            continue
        got.update(i for i in range(a, b + 1) if i < completions)
    return got


def match_pod_failure_policy(job: Obj, pod: Obj) -> tuple[str, str] | None:
    """The action (FailJob/Ignore/Count/FailIndex) of the first matching rule and the
    message upstream puts in the condition, or ``None`` when no rule matches."""
    policy = (job.get("spec") or {}).get("podFailurePolicy") or {}
    meta = pod.get("metadata") or {}
    who = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    status = pod.get("status") or {}
    for i, rule in enumerate(policy.get("rules") or ()):
        action = str(rule.get("action", ""))
        on_codes = rule.get("onExitCodes")
        if on_codes:
            values = {int(v) for v in on_codes.get("values") or ()}
            op = on_codes.get("operator")
            only = on_codes.get("containerName")
            for cs in list(status.get("initContainerStatuses") or ()) + list(
                status.get("containerStatuses") or ()
            ):
                if only and cs.get("name") != only:
                    continue
                term = (cs.get("state") or {}).get("terminated")
                if not term:
                    continue
                code = int(term.get("exitCode", 0))
                if code == 0:
                    continue
                if (op == "In" and code in values) or (op == "NotIn" and code not in values):
                    msg = (
                        f"Container {cs.get('name')} for pod {who} failed with exit code "
                        f"{code} matching {action} rule at index {i}"
                    )
                    return action, msg
        for pat in rule.get("onPodConditions") or ():
            for cond in status.get("conditions") or ():
                if cond.get("type") == pat.get("type") and cond.get("status") == pat.get(
                    "status", "True"
                ):
                    msg = (
                        f"Pod {who} has condition {cond.get('type')} matching {action} "
                        f"rule at index {i}"
                    )
                    return action, msg
    return None


class JobReconciler:
    def __init__(self, manager: Manager) -> None:
        assert JOBS is not None and PODS is not None
        self.manager = manager
        self.client = manager.client
        self.recorder = manager.recorder
        self.jobs = manager.informers.informer(JOBS)
        self.pods = manager.informers.informer(PODS, indexers={OWNER_INDEX: _owner_uid})
        #: job uid -> monotonic time of the latest pod failure we saw, for pod backoff
        self._last_failure: dict[str, tuple[int, float]] = {}
        # expectations (upstream's ControllerExpectations): what we wrote and the cache
        # has not shown yet; acting on a stale cache would create or count twice
        #: job uid -> (names of pods created, names of pods deleted, monotonic deadline)
        self._expect: dict[str, tuple[set[str], set[str], float]] = {}
        #: job uid -> uids of pods whose finalizer we removed (already counted)
        self._unfinalized: dict[str, set[str]] = {}

    # ------------------------------------------------------------------ helpers

    async def _update_status(self, job: Obj) -> Obj:
        assert JOBS is not None
        result: Obj = await self.client.update_status(JOBS, job)
        return result

    async def _remove_finalizers(self, job_uid: str, pods: list[Obj]) -> None:
        assert PODS is not None
        for pod in pods:
            meta = pod["metadata"]
            fins = [f for f in meta.get("finalizers") or () if f != TRACKING_FINALIZER]
            patch = [
                {
                    "op": "test",
                    "path": "/metadata/resourceVersion",
                    "value": meta["resourceVersion"],
                },
                {"op": "replace", "path": "/metadata/finalizers", "value": fins},
            ]
            if job_uid:
                self._unfinalized.setdefault(job_uid, set()).add(meta["uid"])
            try:
                await self.client.patch(
                    PODS, meta["name"], patch, meta["namespace"], patch_type="json"
                )
            except ApiError as err:
                if is_not_found(err):
                    continue
                # a stale copy: retry with a fresh read
                fresh = await self.client.get(PODS, meta["name"], meta["namespace"])
                fins = [
                    f for f in fresh["metadata"].get("finalizers") or () if f != TRACKING_FINALIZER
                ]
                await self.client.patch(
                    PODS,
                    meta["name"],
                    {"metadata": {"finalizers": fins or None}},
                    meta["namespace"],
                    patch_type="merge",
                )

    async def _delete_pod(self, job: Obj, pod: Obj) -> None:
        assert PODS is not None
        meta = pod["metadata"]
        self._expectations(job)[1].add(meta["name"])
        try:
            await self.client.delete(PODS, meta["name"], meta["namespace"])
        except ApiError as err:
            if not is_not_found(err):
                raise
        self.recorder.event(job, NORMAL, "SuccessfulDelete", f"Deleted pod: {meta['name']}")

    async def _create_pod(self, job: Obj, index: int | None) -> None:
        assert PODS is not None
        meta = job["metadata"]
        tmpl = copy.deepcopy((job.get("spec") or {}).get("template") or {})
        pmeta: Obj = dict(tmpl.get("metadata") or {})
        pmeta.pop("name", None)
        pmeta.pop("namespace", None)
        spec: Obj = dict(tmpl.get("spec") or {})
        prefix = meta["name"] if index is None else f"{meta['name']}-{index}"
        pmeta["generateName"] = f"{prefix}-"
        pmeta["labels"] = dict(pmeta.get("labels") or {})
        pmeta["annotations"] = dict(pmeta.get("annotations") or {})
        if index is not None:
            pmeta["annotations"][COMPLETION_INDEX] = str(index)
            pmeta["labels"][COMPLETION_INDEX] = str(index)
            if not spec.get("hostname"):
                spec["hostname"] = f"{meta['name']}-{index}"
            for c in spec.get("containers") or ():
                env = c.setdefault("env", [])
                if not any(e.get("name") == "JOB_COMPLETION_INDEX" for e in env):
                    env.append(
                        {
                            "name": "JOB_COMPLETION_INDEX",
                            "valueFrom": {
                                "fieldRef": {"fieldPath": f"metadata.labels['{COMPLETION_INDEX}']"}
                            },
                        }
                    )
        if not pmeta["annotations"]:
            del pmeta["annotations"]
        pmeta["finalizers"] = [*(pmeta.get("finalizers") or ()), TRACKING_FINALIZER]
        pmeta["ownerReferences"] = [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        body: Obj = {"apiVersion": "v1", "kind": "Pod", "metadata": pmeta, "spec": spec}
        try:
            created = await self.client.create(PODS, body, meta["namespace"])
        except ApiError as err:
            self.recorder.event(job, WARNING, "FailedCreate", f"Error creating: {err}")
            raise
        self._expectations(job)[0].add(created["metadata"]["name"])
        self.recorder.event(
            job, NORMAL, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}"
        )

    def _expectations(self, job: Obj) -> tuple[set[str], set[str], float]:
        uid = job["metadata"]["uid"]
        exp = self._expect.get(uid)
        if exp is None or exp[2] < time.monotonic():
            exp = self._expect[uid] = (set(), set(), time.monotonic() + EXPECTATIONS_TIMEOUT)
        return exp

    def _satisfied(self, uid: str, pods: list[Obj]) -> bool:
        exp = self._expect.get(uid)
        if exp is None:
            return True
        if exp[2] < time.monotonic():
            del self._expect[uid]
            return True
        by_name = {p["metadata"]["name"]: p for p in pods}
        exp[0].intersection_update(n for n in exp[0] if n not in by_name)
        exp[1].intersection_update(
            n
            for n in exp[1]
            if n in by_name and not by_name[n]["metadata"].get("deletionTimestamp")
        )
        if exp[0] or exp[1]:
            return False
        del self._expect[uid]
        return True

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self, request: Request) -> Result | None:
        cached = self.jobs.store.get_by_name(request.namespace, request.name)
        if cached is None:
            # the Job is gone: its pods must not stay stuck on our finalizer
            orphans = [
                p
                for p in self.pods.store.by_index("namespace", request.namespace)
                if _has_finalizer(p) and _owner_name(p) == request.name
            ]
            await self._remove_finalizers("", orphans)
            return None
        job = copy.deepcopy(cached)
        meta, spec = job["metadata"], job.get("spec") or {}
        uid = meta["uid"]
        all_pods = list(self.pods.store.by_index(OWNER_INDEX, uid))
        # a pod whose finalizer we removed was counted: ignore a stale copy still showing it
        counted = self._unfinalized.get(uid, set())
        counted.intersection_update(p["metadata"]["uid"] for p in all_pods if _has_finalizer(p))
        if not counted:
            self._unfinalized.pop(uid, None)
        all_pods = [
            p for p in all_pods if not (_has_finalizer(p) and p["metadata"]["uid"] in counted)
        ]
        if is_finished(job):
            await self._remove_finalizers(uid, [p for p in all_pods if _has_finalizer(p)])
            self._last_failure.pop(uid, None)
            return None
        status: Obj = job.setdefault("status", {})
        old_status = copy.deepcopy(status)
        indexed = spec.get("completionMode") == "Indexed"
        completions: int | None = spec.get("completions")
        parallelism = int(spec.get("parallelism", 1) or 0)
        backoff_limit = int(spec.get("backoffLimit", 6))
        suspended = bool(spec.get("suspend"))

        uncounted: Obj = status.get("uncountedTerminatedPods") or {}
        unc_succeeded = list(uncounted.get("succeeded") or ())
        unc_failed = list(uncounted.get("failed") or ())
        in_uncounted = set(unc_succeeded) | set(unc_failed)
        completed_idx = (
            parse_indexes(status.get("completedIndexes"), completions or 0) if indexed else set()
        )

        # 1. newly finished pods (still carrying our finalizer) go into uncounted
        fail_job: tuple[str, str] | None = None
        new_failures = 0
        to_unfinalize: list[Obj] = []
        for pod in all_pods:
            if not _has_finalizer(pod):
                continue
            puid = pod["metadata"]["uid"]
            if not _pod_finished(pod):
                continue
            to_unfinalize.append(pod)
            if puid in in_uncounted:
                continue
            if _phase(pod) == "Succeeded":
                idx = _index(pod)
                if indexed and (idx is None or idx in completed_idx):
                    # a duplicate success of an index: counted once, as upstream
                    if idx is not None:
                        unc_succeeded.append(puid)
                    continue
                unc_succeeded.append(puid)
                if indexed and idx is not None:
                    completed_idx.add(idx)
            else:
                matched = match_pod_failure_policy(job, pod) if _phase(pod) == "Failed" else None
                if matched is not None and matched[0] == "Ignore":
                    continue
                if matched is not None and matched[0] == "FailJob" and fail_job is None:
                    fail_job = (POD_FAILURE_POLICY, matched[1])
                unc_failed.append(puid)
                new_failures += 1

        if new_failures:
            self._last_failure[uid] = (
                int(status.get("failed", 0)) + len(unc_failed),
                time.monotonic(),
            )

        succeeded_pods = [p for p in all_pods if _phase(p) == "Succeeded"]
        active_pods = [
            p
            for p in all_pods
            if not _pod_finished(p) and not (p["metadata"].get("deletionTimestamp"))
        ]
        terminating = [
            p
            for p in all_pods
            if p["metadata"].get("deletionTimestamp") and _phase(p) not in ("Succeeded", "Failed")
        ]
        counted_succeeded = int(status.get("succeeded", 0))
        counted_failed = int(status.get("failed", 0))
        # pods counted as succeeded but whose uid is still in uncounted count once
        total_succeeded = counted_succeeded + len(unc_succeeded)
        total_failed = counted_failed + len(unc_failed)
        total_succeeded_effective = len(completed_idx) if indexed else total_succeeded

        # 2. decide whether the job has finished
        now_wall = time.time()
        if not suspended and not status.get("startTime"):
            status["startTime"] = _now()
        interim_fail = _condition(job, "FailureTarget")
        interim_ok = _condition(job, "SuccessCriteriaMet")
        requeue_after = 0.0
        if interim_fail is None and interim_ok is None:
            if fail_job is not None:
                _set_condition(status, "FailureTarget", "True", *fail_job)
            elif total_failed > backoff_limit:
                _set_condition(
                    status,
                    "FailureTarget",
                    "True",
                    BACKOFF_LIMIT_EXCEEDED,
                    "Job has reached the specified backoff limit",
                )
            elif spec.get("activeDeadlineSeconds") is not None and status.get("startTime"):
                started = _parse_time(status["startTime"]) or now_wall
                left = started + int(spec["activeDeadlineSeconds"]) - now_wall
                if left <= 0 and not suspended:
                    _set_condition(
                        status,
                        "FailureTarget",
                        "True",
                        DEADLINE_EXCEEDED,
                        "Job was active longer than specified deadline",
                    )
                elif not suspended:
                    requeue_after = max(left, 0.1)
            if _condition(job, "FailureTarget") is None:
                done = False
                if completions is None:
                    done = bool(succeeded_pods or total_succeeded) and not active_pods
                else:
                    done = total_succeeded_effective >= completions
                if done:
                    _set_condition(
                        status,
                        "SuccessCriteriaMet",
                        "True",
                        COMPLETIONS_REACHED,
                        "Reached expected number of succeeded pods",
                    )
        finishing = _condition(job, "FailureTarget") or _condition(job, "SuccessCriteriaMet")

        # 3. record uncounted before touching finalizers
        status["uncountedTerminatedPods"] = {}
        if unc_succeeded:
            status["uncountedTerminatedPods"]["succeeded"] = unc_succeeded
        if unc_failed:
            status["uncountedTerminatedPods"]["failed"] = unc_failed
        if indexed:
            status["completedIndexes"] = format_indexes(completed_idx)
        status["active"] = len(active_pods)
        status["ready"] = sum(1 for p in active_pods if _is_ready(p))
        status["terminating"] = len(terminating)
        if suspended and not finishing:
            if _set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended"):
                self.recorder.event(job, NORMAL, "Suspended", "Job suspended")
        elif _condition(job, "Suspended") is not None:
            _set_condition(status, "Suspended", "False", "JobResumed", "Job resumed")
            self.recorder.event(job, NORMAL, "Resumed", "Job resumed")
        try:
            if _normal(status) != _normal(old_status):
                job = await self._update_status(job)
                status = job.setdefault("status", {})
        except ApiError as err:
            if is_conflict(err):
                return Result(requeue=True)
            raise

        # 4. remove finalizers of finished pods, then move them into the counters
        if to_unfinalize:
            await self._remove_finalizers(uid, to_unfinalize)
        uncounted = status.get("uncountedTerminatedPods") or {}
        if uncounted.get("succeeded") or uncounted.get("failed"):
            status["succeeded"] = int(status.get("succeeded", 0)) + len(
                uncounted.get("succeeded") or ()
            )
            status["failed"] = int(status.get("failed", 0)) + len(uncounted.get("failed") or ())
            if indexed:
                status["succeeded"] = len(
                    parse_indexes(status.get("completedIndexes"), completions or 0)
                )
            status["uncountedTerminatedPods"] = {}
            try:
                job = await self._update_status(job)
                status = job["status"]
            except ApiError as err:
                if is_conflict(err):
                    return Result(requeue=True)
                raise

        # 5. finishing: delete what is left, then the terminal condition
        if finishing:
            for pod in active_pods:
                await self._delete_pod(job, pod)
            if active_pods or terminating:
                return None
            ok = finishing["type"] == "SuccessCriteriaMet"
            final = "Complete" if ok else "Failed"
            _set_condition(status, final, "True", finishing["reason"], finishing["message"])
            if ok:
                status["completionTime"] = _now()
            status.pop("active", None)
            status["ready"] = 0
            status["terminating"] = 0
            try:
                await self._update_status(job)
            except ApiError as err:
                if is_conflict(err):
                    return Result(requeue=True)
                raise
            if ok:
                self.recorder.event(job, NORMAL, "Completed", "Job completed")
            else:
                self.recorder.event(job, WARNING, finishing["reason"], finishing["message"])
            self._last_failure.pop(uid, None)
            return None

        if not self._satisfied(uid, all_pods):
            return Result(requeue_after=1.0)

        # 6. suspended: no pods run
        if suspended:
            for pod in active_pods:
                await self._delete_pod(job, pod)
            return None

        # 7. reach the wanted number of active pods (after the failure backoff)
        want_new: list[int | None] = []
        if indexed:
            assert completions is not None
            running = {_index(p) for p in active_pods}
            succeeded_idx = completed_idx | {
                i for i in (_index(p) for p in succeeded_pods) if i is not None
            }
            missing = [i for i in range(completions) if i not in succeeded_idx and i not in running]
            room = max(parallelism - len(active_pods), 0)
            want_new = list(missing[:room])
            excess = [p for p in active_pods if _index(p) in succeeded_idx]
        else:
            if completions is None:
                wanted = 0 if (succeeded_pods or total_succeeded) else parallelism
            else:
                wanted = max(min(parallelism, completions - total_succeeded), 0)
            diff = wanted - len(active_pods)
            want_new = [None] * max(diff, 0)
            excess = []
            if diff < 0:
                ranked = sorted(active_pods, key=lambda p: (_is_ready(p), _phase(p) == "Running"))
                excess = ranked[:-diff]
        for pod in excess:
            await self._delete_pod(job, pod)
        if want_new:
            wait = self._backoff_left(uid)
            if wait > 0:
                return Result(requeue_after=wait)
            for idx in want_new:
                await self._create_pod(job, idx)
        if requeue_after:
            return Result(requeue_after=requeue_after)
        return None

    def _backoff_left(self, uid: str) -> float:
        last = self._last_failure.get(uid)
        if last is None:
            return 0.0
        failures, at = last
        delay = min(POD_FAILURE_BACKOFF * 2.0 ** max(failures - 1, 0), POD_FAILURE_BACKOFF_CAP)
        return at + delay - time.monotonic()


def setup(manager: Manager) -> None:
    reconciler = JobReconciler(manager)
    controller = manager.add("job", reconciler, workers=2)
    controller.watch(reconciler.jobs)
    controller.watch(reconciler.pods, enqueue_owner("Job", "batch/v1"))
