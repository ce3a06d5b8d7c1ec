"""The pod garbage collector (upstream ``PodGC``): removes Pod objects nobody else will.

No kubelet will ever finish a pod whose node is gone, and terminated pods pile up in the
store forever unless something deletes them. Like upstream's ``pkg/controller/podgc``,
every sweep (each ``GC_CHECK_PERIOD`` seconds, and soon after any pod or node change):

* ``gcTerminated``: if more than ``terminated_pod_threshold`` pods are terminated
  (phase neither Pending, Running nor Unknown), delete the overflow only, evicted pods
  (Failed, reason ``Evicted``) first, then oldest ``creationTimestamp``, then name.
  A threshold ≤ 0 turns this rule off (upstream's ``--terminated-pod-gc-threshold``).
* ``gcTerminating``: force-delete pods with a ``deletionTimestamp`` on a node that is not
  Ready and carries the ``node.kubernetes.io/out-of-service`` taint.
* ``gcOrphaned``: pods bound to a node missing from the cache for ``QUARANTINE_TIME``
  seconds, whose absence is then confirmed by a GET (NotFound), get the
  ``DisruptionTarget`` condition (reason ``DeletionByPodGC``, message
  ``PodGC: node no longer exists``) and are force-deleted.
* ``gcUnscheduledTerminating``: terminating pods never bound to a node are force-deleted.

Every deletion goes through ``markFailedAndDeletePod``: a pod not yet in a terminal phase
is first set to phase Failed (plus the condition, if any) in its status, then deleted with
``gracePeriodSeconds: 0``. Upstream records no events for these deletions, nor do we.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import logging
import time
from typing import Any

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import ClientError, is_conflict, is_not_found
from pyk8s.client.informer import Store
from pyk8s.client.rest import Client
from pyk8s.controllers.runtime import Manager, Request, Result

log = logging.getLogger(__name__)

Obj = dict[str, Any]

PODS: Resource = REGISTRY.get("", "v1", "pods")  # type: ignore[assignment]
NODES: Resource = REGISTRY.get("", "v1", "nodes")  # type: ignore[assignment]

#: upstream ``gcCheckPeriod``: how often the whole sweep runs
GC_CHECK_PERIOD = 20.0
#: upstream ``quarantineTime``: how long a node must be missing before its pods are orphans
QUARANTINE_TIME = 40.0
#: upstream default of ``--terminated-pod-gc-threshold``
TERMINATED_POD_GC_THRESHOLD = 12500

OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"
#: the single work-queue key the sweep runs under
SWEEP = Request("", "podgc")


def _now_ts() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def is_terminated(pod: Obj) -> bool:
    return _phase(pod) not in ("Pending", "Running", "Unknown")


def is_terminating(pod: Obj) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def is_evicted(pod: Obj) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Failed" and status.get("reason") == "Evicted"


def eviction_and_creation_order(pod: Obj) -> tuple[bool, float, str]:
    """Sort key of upstream's ``byEvictionAndCreationTimestamp``."""
    meta = pod.get("metadata") or {}
    created = 0.0
    ts = meta.get("creationTimestamp")
    if isinstance(ts, str):
        with contextlib.suppress(ValueError):
            created = dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    return (not is_evicted(pod), created, str(meta.get("name", "")))


def node_ready(node: Obj) -> bool:
    for c in (node.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def has_taint(node: Obj, key: str) -> bool:
    return any(t.get("key") == key for t in (node.get("spec") or {}).get("taints") or ())


def _node_name(pod: Obj) -> str:
    return str((pod.get("spec") or {}).get("nodeName") or "")


class PodGCReconciler:
    def __init__(
        self,
        client: Client,
        pods: Store,
        nodes: Store,
        *,
        terminated_pod_threshold: int = TERMINATED_POD_GC_THRESHOLD,
    ) -> None:
        self.client = client
        self.pods = pods
        self.nodes = nodes
        self.terminated_pod_threshold = terminated_pod_threshold
        #: node name -> when it was first seen missing (the quarantine queue)
        self.missing_since: dict[str, float] = {}

    async def reconcile(self, request: Request) -> Result | None:
        pods = self.pods.list()
        again = False
        if self.terminated_pod_threshold > 0:
            again |= await self.gc_terminated(pods)
        again |= await self.gc_terminating(pods)
        wait = await self.gc_orphaned(pods)
        again |= await self.gc_unscheduled_terminating(pods)
        if again:
            return Result(requeue=True)
        return Result(requeue_after=min(GC_CHECK_PERIOD, wait))

    async def gc_terminated(self, pods: list[Obj]) -> bool:
        terminated = [p for p in pods if is_terminated(p)]
        delete_count = len(terminated) - self.terminated_pod_threshold
        if delete_count <= 0:
            return False
        log.info("Garbage collecting terminated pods: %d", delete_count)
        terminated.sort(key=eviction_and_creation_order)
        again = False
        for pod in terminated[:delete_count]:
            again |= await self.mark_failed_and_delete(pod)
        return again

    async def gc_terminating(self, pods: list[Obj]) -> bool:
        again = False
        doomed: list[Obj] = []
        for pod in pods:
            if not is_terminating(pod):
                continue
            node = self.nodes.get_by_name(None, _node_name(pod)) if _node_name(pod) else None
            if node is None:
                continue
            if not node_ready(node) and has_taint(node, OUT_OF_SERVICE):
                doomed.append(pod)
        doomed.sort(key=eviction_and_creation_order)
        for pod in doomed:
            log.info("Garbage collecting pod that is terminating on an out-of-service node")
            again |= await self.mark_failed_and_delete(pod)
        return again

    async def gc_orphaned(self, pods: list[Obj]) -> float:
        """Delete pods of nodes gone for ``QUARANTINE_TIME``; seconds until the next is due."""
        existing = {str(n["metadata"].get("name", "")) for n in self.nodes.list()}
        now = time.monotonic()
        missing = {_node_name(p) for p in pods if _node_name(p)} - existing
        for name in list(self.missing_since):
            if name not in missing:
                del self.missing_since[name]
        wait = GC_CHECK_PERIOD
        deleted_nodes: set[str] = set()
        for name in missing:
            since = self.missing_since.setdefault(name, now)
            left = since + QUARANTINE_TIME - now
            if left > 0:
                wait = min(wait, left)
                continue
            try:
                await self.client.get(NODES, name)
            except ClientError as err:
                if is_not_found(err):
                    deleted_nodes.add(name)
                    continue
                raise
            self.missing_since.pop(name, None)  # it exists after all: the cache was behind
        for pod in pods:
            if _node_name(pod) not in deleted_nodes:
                continue
            meta = pod["metadata"]
            log.info(
                "Found orphaned Pod %s/%s assigned to the Node %s, deleting",
                meta.get("namespace"),
                meta.get("name"),
                _node_name(pod),
            )
            condition = {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "DeletionByPodGC",
                "message": "PodGC: node no longer exists",
            }
            if await self.mark_failed_and_delete(pod, condition):
                wait = 0.0
        return max(wait, 0.0)

    async def gc_unscheduled_terminating(self, pods: list[Obj]) -> bool:
        again = False
        for pod in pods:
            if not is_terminating(pod) or _node_name(pod):
                continue
            log.info("Found unscheduled terminating Pod not assigned to any Node, deleting")
            again |= await self.mark_failed_and_delete(pod)
        return again

    async def mark_failed_and_delete(self, pod: Obj, condition: Obj | None = None) -> bool:
        """Upstream ``markFailedAndDeletePodWithCondition``; True if it must be retried."""
        meta = pod["metadata"]
        ns, name = str(meta.get("namespace", "")), str(meta["name"])
        log.info("PodGC is force deleting Pod %s/%s", ns, name)
        try:
            if _phase(pod) not in ("Succeeded", "Failed"):
                body = copy.deepcopy(pod)
                status = body.setdefault("status", {})
                status["phase"] = "Failed"
                if condition is not None:
                    conds = [
                        c
                        for c in status.get("conditions") or []
                        if c.get("type") != condition["type"]
                    ]
                    old = next(
                        (
                            c
                            for c in status.get("conditions") or []
                            if c.get("type") == condition["type"]
                        ),
                        None,
                    )
                    new = dict(condition)
                    if old is not None and old.get("status") == new["status"]:
                        new["lastTransitionTime"] = old.get("lastTransitionTime") or _now_ts()
                    else:
                        new["lastTransitionTime"] = _now_ts()
                    conds.append(new)
                    status["conditions"] = conds
                await self.client.update_status(PODS, body, ns)
            await self.client.delete(PODS, name, ns, grace_period_seconds=0)
        except ClientError as err:
            if is_not_found(err):
                return False
            if is_conflict(err):
                return True
            raise
        return False


def setup(manager: Manager) -> None:
    pods = manager.informers.informer(PODS)
    nodes = manager.informers.informer(NODES)
    reconciler = PodGCReconciler(
        manager.client,
        pods.store,
        nodes.store,
        terminated_pod_threshold=TERMINATED_POD_GC_THRESHOLD,
    )
    controller = manager.add("podgc", reconciler, workers=1)

    def sweep(_obj: Obj) -> list[Request]:
        return [SWEEP]

    controller.watch(pods, sweep)
    controller.watch(nodes, sweep)
