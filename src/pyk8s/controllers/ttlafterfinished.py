"""The TTL-after-finished controller: deletes a finished Job ``ttlSecondsAfterFinished``
seconds after it finished, so Jobs (and, through the garbage collector, their pods) do not
pile up.

As upstream: the finish time is the ``lastTransitionTime`` of the Job's Complete or Failed
condition; before deleting, the Job is read fresh from the API server (the TTL may have
been changed since the cache saw it); the delete is conditioned on the Job's
resourceVersion and uses ``propagationPolicy: Background``. Unexpired Jobs are woken with
``requeue_after``.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from pyk8s.api.registry import REGISTRY
from pyk8s.client import ApiError, is_conflict, is_not_found
from pyk8s.controllers.runtime import Manager, Request, Result

log = logging.getLogger(__name__)

Obj = dict[str, Any]

JOBS = REGISTRY.get("batch", "v1", "jobs")


def finish_time(job: Obj) -> float | None:
    for c in (job.get("status") or {}).get("conditions") or ():
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            ts = c.get("lastTransitionTime")
            if not isinstance(ts, str):
                return None
            try:
                return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
            except ValueError:
                return None
    return None


def time_left(job: Obj, now: float) -> float | None:
    """Seconds until the Job expires (≤ 0: expired); None if it never does (yet)."""
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    if ttl is None or (job.get("metadata") or {}).get("deletionTimestamp"):
        return None
    finished = finish_time(job)
    if finished is None:
        return None
    return finished + int(ttl) - now


class TTLAfterFinishedReconciler:
    def __init__(self, manager: Manager) -> None:
        assert JOBS is not None
        self.client = manager.client
        self.jobs = manager.informers.informer(JOBS)

    async def reconcile(self, request: Request) -> Result | None:
        assert JOBS is not None
        job = self.jobs.store.get_by_name(request.namespace, request.name)
        if job is None:
            return None
        left = time_left(job, time.time())
        if left is None:
            return None
        if left > 0:
            return Result(requeue_after=left)
        try:
            fresh = await self.client.get(JOBS, request.name, request.namespace)
        except ApiError as err:
            if is_not_found(err):
                return None
            raise
        left = time_left(fresh, time.time())
        if left is None:
            return None
        if left > 0:
            return Result(requeue_after=left)
        log.info("deleting job %s: ttlSecondsAfterFinished expired", request)
        try:
            await self.client.delete(
                JOBS,
                request.name,
                request.namespace,
                propagation_policy="Background",
                preconditions={"resourceVersion": fresh["metadata"]["resourceVersion"]},
            )
        except ApiError as err:
            if is_not_found(err):
                return None
            if is_conflict(err):
                return Result(requeue=True)
            raise
        return None


def setup(manager: Manager) -> None:
    reconciler = TTLAfterFinishedReconciler(manager)
    controller = manager.add("ttlafterfinished", reconciler, workers=2)
    controller.watch(reconciler.jobs)
