"""The ReplicaSet controller: keep ``spec.replicas`` pods matching a selector alive.

Upstream's ``pkg/controller/replicaset`` behaviour, which users see through ``kubectl``:

* pods are *claimed* by selector: an orphan whose labels match is adopted (a controller
  ownerReference is patched onto it), an owned pod whose labels stopped matching is
  released (the reference is removed);
* missing pods are created from the template (``generateName: <rs>-``, the template's
  labels/annotations/finalizers, a controller ownerReference) in slow-start batches
  (1, 2, 4, …; a failing batch stops the rest) with ``SuccessfulCreate`` /
  ``FailedCreate`` events and a ``ReplicaFailure`` condition on failure;
* surplus pods are deleted in upstream's order of preference (unscheduled before
  scheduled, Pending before Unknown before Running, not ready before ready, lower
  ``controller.kubernetes.io/pod-deletion-cost`` first, more pods on the same node
  first, ready for less time first, more restarts first, newer first) with
  ``SuccessfulDelete`` events;
* "expectations" remember the creates/deletes in flight so that a stale informer cache
  never makes the controller create or delete twice;
* status: replicas, fullyLabeledReplicas, readyReplicas, availableReplicas (honouring
  ``minReadySeconds``) and observedGeneration.

ReplicationControllers differ only in their kind and their map selector, so the same
:class:`ReplicaSetReconciler` serves both (see :mod:`pyk8s.controllers.replicationcontroller`).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pyk8s.api.registry import Resource
from pyk8s.api.selectors import LabelSelector, label_selector_from_dict
from pyk8s.client import (
    NORMAL,
    WARNING,
    ApiError,
    Client,
    EventRecorder,
    SharedInformer,
    is_conflict,
    is_not_found,
)
from pyk8s.controllers._resources import PODS, REPLICASETS
from pyk8s.controllers.runtime import Controller, Manager, Request, Result

log = logging.getLogger(__name__)

Obj = dict[str, Any]

#: at most this many pods are created or deleted in one sync (upstream's BurstReplicas)
BURST_REPLICAS = 500
#: expectations older than this are considered expired (upstream's ExpectationsTimeout)
EXPECTATIONS_TIMEOUT = 300.0
POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


# ---------------------------------------------------------------------------- helpers


def parse_time(value: str | None) -> float | None:
    """An RFC 3339 timestamp as seconds since the epoch (None when absent or bad)."""
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def format_time(t: float | None = None) -> str:
    stamp = dt.datetime.fromtimestamp(time.time() if t is None else t, dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def controller_ref(obj: Obj) -> Obj | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return dict(ref)
    return None


def new_controller_ref(owner: Obj, api_version: str, kind: str) -> Obj:
    meta = owner["metadata"]
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_condition(pod: Obj, ctype: str) -> Obj | None:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == ctype:
            return dict(cond)
    return None


def is_pod_ready(pod: Obj) -> bool:
    cond = pod_condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def is_pod_available(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least ``min_ready_seconds`` (upstream's podutil.IsPodAvailable)."""
    if not is_pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    cond = pod_condition(pod, "Ready") or {}
    since = parse_time(cond.get("lastTransitionTime"))
    return since is not None and since + min_ready_seconds <= now


def is_pod_active(pod: Obj) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    deleting = (pod.get("metadata") or {}).get("deletionTimestamp")
    return phase not in ("Succeeded", "Failed") and not deleting


def labels_of(obj: Obj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _pod_key(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


# ---------------------------------------------------------------------- expectations


@dataclass
class _Expectation:
    adds: int = 0
    deletes: set[str] = field(default_factory=set)
    stamp: float = field(default_factory=time.monotonic)

    def fulfilled(self) -> bool:
        return self.adds <= 0 and not self.deletes


class Expectations:
    """Creates and deletes in flight per controller key (upstream's
    UIDTrackingControllerExpectations): a sync waits until the informer has seen them."""

    def __init__(self) -> None:
        self._by_key: dict[str, _Expectation] = {}

    def satisfied(self, key: str) -> bool:
        exp = self._by_key.get(key)
        if exp is None or exp.fulfilled():
            return True
        return time.monotonic() - exp.stamp > EXPECTATIONS_TIMEOUT

    def expect_creations(self, key: str, n: int) -> None:
        self._by_key[key] = _Expectation(adds=n)

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        self._by_key[key] = _Expectation(deletes=set(pod_keys))

    def creation_observed(self, key: str) -> None:
        exp = self._by_key.get(key)
        if exp is not None:
            exp.adds -= 1

    def deletion_observed(self, key: str, pod_key: str) -> None:
        exp = self._by_key.get(key)
        if exp is not None:
            exp.deletes.discard(pod_key)

    def delete(self, key: str) -> None:
        self._by_key.pop(key, None)


# --------------------------------------------------------------------- kinds


@dataclass(frozen=True)
class ReplicaKind:
    """What differs between a ReplicaSet and a ReplicationController."""

    resource: Resource
    kind: str
    api_version: str
    component: str
    #: the object's selector as a LabelSelector
    selector: Callable[[Obj], LabelSelector]


def _rs_selector(rs: Obj) -> LabelSelector:
    try:
        return label_selector_from_dict((rs.get("spec") or {}).get("selector"))
    except ValueError:
        return LabelSelector.nothing()


REPLICASET_KIND = ReplicaKind(
    REPLICASETS, "ReplicaSet", "apps/v1", "replicaset-controller", _rs_selector
)


# ---------------------------------------------------------------------- deletion order


def _pod_rank_key(pod: Obj, ranks: dict[str, int], now: float) -> tuple[Any, ...]:
    """Sort key: pods to delete first sort first (upstream's ActivePodsWithRanks)."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    meta = pod.get("metadata") or {}
    phase_order = {"Pending": 0, "Unknown": 1, "Running": 2}
    ready = is_pod_ready(pod)
    try:
        cost = int((meta.get("annotations") or {}).get(POD_DELETION_COST, "0"))
    except ValueError:
        cost = 0
    node = spec.get("nodeName") or ""
    ready_since = 0.0
    if ready:
        cond = pod_condition(pod, "Ready") or {}
        ready_since = parse_time(cond.get("lastTransitionTime")) or 0.0
    restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or ())
    created = parse_time(meta.get("creationTimestamp")) or 0.0
    # logarithmic scale-down: pods created within the same power-of-two age bucket tie
    age = max(now - created, 0.0)
    bucket = math.floor(math.log2(age)) if age >= 1 else -1
    return (
        1 if node else 0,
        phase_order.get(str(status.get("phase") or ""), 3),
        1 if ready else 0,
        cost,
        -ranks.get(node, 0) if node else 0,
        -ready_since,  # ready for less time first
        -restarts,
        bucket,  # newer (younger bucket) first
        -created,
    )


def pods_to_delete(pods: list[Obj], diff: int, related: list[Obj] | None = None) -> list[Obj]:
    """The ``diff`` pods upstream would delete first; ``related`` (the pods of every
    ReplicaSet with the same owner) rank nodes: crowded nodes lose pods first."""
    now = time.time()
    ranks: dict[str, int] = {}
    for p in related if related is not None else pods:
        node = (p.get("spec") or {}).get("nodeName") or ""
        if node:
            ranks[node] = ranks.get(node, 0) + 1
    return sorted(pods, key=lambda p: _pod_rank_key(p, ranks, now))[:diff]


# ---------------------------------------------------------------------- reconciler


class ReplicaSetReconciler:
    """Reconciles one ReplicaSet (or ReplicationController, per ``kind``)."""

    def __init__(self, manager: Manager, kind: ReplicaKind = REPLICASET_KIND) -> None:
        self.kind = kind
        self.client: Client = manager.client
        self.recorder = EventRecorder(manager.client, component=kind.component)
        self.owners: SharedInformer = manager.informers.informer(kind.resource)
        self.pods: SharedInformer = manager.informers.informer(PODS)
        self.expectations = Expectations()
        self.controller: Controller | None = None

    # -- wiring

    def setup(self, controller: Controller) -> None:
        self.controller = controller
        self.owners.add_event_handler(
            on_add=self._owner_changed,
            on_update=lambda old, new: self._owner_changed(new),
            on_delete=self._owner_deleted,
        )
        self.pods.add_event_handler(
            on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted
        )

    def _enqueue(self, namespace: str, name: str) -> None:
        if self.controller is not None and name:
            self.controller.queue.add(Request(namespace, name))

    def _owner_changed(self, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        self._enqueue(meta.get("namespace", ""), meta.get("name", ""))

    def _owner_deleted(self, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        self.expectations.delete(f"{meta.get('namespace', '')}/{meta.get('name', '')}")
        self._owner_changed(obj)

    def _resolve(self, namespace: str, ref: Obj | None) -> Obj | None:
        if ref is None or ref.get("kind") != self.kind.kind:
            return None
        owner = self.owners.store.get_by_name(namespace, str(ref.get("name", "")))
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            return None
        return owner

    def _matching_owners(self, pod: Obj) -> list[Obj]:
        ns = (pod.get("metadata") or {}).get("namespace", "")
        labels = labels_of(pod)
        if not labels:
            return []
        return [
            o
            for o in self.owners.store.list()
            if o["metadata"].get("namespace") == ns and self.kind.selector(o).matches(labels)
        ]

    def _pod_added(self, pod: Obj) -> None:
        ns = pod["metadata"].get("namespace", "")
        if pod["metadata"].get("deletionTimestamp"):
            self._pod_deleted(pod)
            return
        owner = self._resolve(ns, controller_ref(pod))
        if owner is not None:
            self.expectations.creation_observed(f"{ns}/{owner['metadata']['name']}")
            self._enqueue(ns, owner["metadata"]["name"])
            return
        if controller_ref(pod) is None:
            for o in self._matching_owners(pod):
                self._enqueue(ns, o["metadata"]["name"])

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        ns = new["metadata"].get("namespace", "")
        if new["metadata"].get("deletionTimestamp") and not old["metadata"].get(
            "deletionTimestamp"
        ):
            self._pod_deleted(new)
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        if old_ref is not None and (new_ref is None or old_ref.get("uid") != new_ref.get("uid")):
            owner = self._resolve(ns, old_ref)
            if owner is not None:
                self._enqueue(ns, owner["metadata"]["name"])
        owner = self._resolve(ns, new_ref)
        if owner is not None:
            self._enqueue(ns, owner["metadata"]["name"])
            min_ready = int((owner.get("spec") or {}).get("minReadySeconds") or 0)
            became_ready = is_pod_ready(new) and not is_pod_ready(old)
            if min_ready > 0 and became_ready and self.controller is not None:
                # it becomes available only later: look again then (upstream's updatePod)
                req = Request(ns, owner["metadata"]["name"])
                self.controller.queue.add_after(req, min_ready + 1.0)
            return
        if new_ref is None:
            # an orphan: whoever matches may adopt it (or lost it, if its labels changed)
            for o in self._matching_owners(new) + self._matching_owners(old):
                self._enqueue(ns, o["metadata"]["name"])

    def _pod_deleted(self, pod: Obj) -> None:
        ns = pod["metadata"].get("namespace", "")
        owner = self._resolve(ns, controller_ref(pod))
        if owner is None:
            return
        key = f"{ns}/{owner['metadata']['name']}"
        self.expectations.deletion_observed(key, _pod_key(pod))
        self._enqueue(ns, owner["metadata"]["name"])

    # -- reconcile

    async def reconcile(self, request: Request) -> Result | None:
        key = str(request)
        cached = self.owners.store.get_by_name(request.namespace, request.name)
        if cached is None:
            self.expectations.delete(key)
            return None
        rs = copy.deepcopy(cached)
        selector = self.kind.selector(rs)
        needs_sync = self.expectations.satisfied(key) and not rs["metadata"].get(
            "deletionTimestamp"
        )
        all_pods = [
            p
            for p in self.pods.store.list()
            if p["metadata"].get("namespace") == request.namespace and is_pod_active(p)
        ]
        pods = await self._claim_pods(rs, selector, all_pods)
        manage_err: Exception | None = None
        if needs_sync:
            try:
                await self._manage_replicas(key, rs, pods)
            except ApiError as err:
                manage_err = err
        status = self._calculate_status(rs, pods, manage_err)
        try:
            await self._update_status(rs, status)
        except ApiError as err:
            if manage_err is None and is_conflict(err):
                return Result(requeue=True)  # stale: the next sync reads the fresh object
            raise
        if manage_err is not None:
            raise manage_err
        spec = rs.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        if (
            min_ready > 0
            and status.get("readyReplicas", 0) == status.get("replicas", 0)
            and status.get("availableReplicas", 0) != status.get("replicas", 0)
        ):
            return Result(requeue_after=float(min_ready))
        return None

    async def _claim_pods(self, rs: Obj, selector: LabelSelector, pods: list[Obj]) -> list[Obj]:
        """Adopt matching orphans, release owned pods that no longer match (ClaimPods)."""
        uid = rs["metadata"]["uid"]
        deleting = bool(rs["metadata"].get("deletionTimestamp"))
        claimed: list[Obj] = []
        fresh_checked: bool | None = None
        for pod in pods:
            ref = controller_ref(pod)
            matches = selector.matches(labels_of(pod))
            if ref is not None:
                if ref.get("uid") != uid:
                    continue
                if matches:
                    claimed.append(pod)
                elif not deleting:
                    await self._release(rs, pod)
                continue
            if deleting or not matches or pod["metadata"].get("deletionTimestamp"):
                continue
            if fresh_checked is None:
                fresh_checked = await self._can_adopt(rs)
            if not fresh_checked:
                continue
            adopted = await self._adopt(rs, pod)
            if adopted is not None:
                claimed.append(adopted)
        return claimed

    async def _can_adopt(self, rs: Obj) -> bool:
        """Re-read the owner uncached: never adopt for an object that is being deleted."""
        try:
            fresh = await self.client.get(
                self.kind.resource, rs["metadata"]["name"], rs["metadata"]["namespace"]
            )
        except ApiError as err:
            if is_not_found(err):
                return False
            raise
        meta = fresh.get("metadata") or {}
        return meta.get("uid") == rs["metadata"]["uid"] and not meta.get("deletionTimestamp")

    async def _adopt(self, rs: Obj, pod: Obj) -> Obj | None:
        ref = new_controller_ref(rs, self.kind.api_version, self.kind.kind)
        refs = [*(pod["metadata"].get("ownerReferences") or []), ref]
        patch = {
            "metadata": {
                "ownerReferences": refs,
                "resourceVersion": pod["metadata"].get("resourceVersion"),
            }
        }
        try:
            return await self.client.patch(
                PODS,
                pod["metadata"]["name"],
                patch,
                pod["metadata"]["namespace"],
                patch_type="merge",
            )
        except ApiError as err:
            if is_not_found(err) or is_conflict(err):
                return None  # gone or changed: the next sync decides again
            raise

    async def _release(self, rs: Obj, pod: Obj) -> None:
        uid = rs["metadata"]["uid"]
        refs = [r for r in pod["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
        patch = {
            "metadata": {
                "ownerReferences": refs or None,
                "resourceVersion": pod["metadata"].get("resourceVersion"),
            }
        }
        try:
            await self.client.patch(
                PODS,
                pod["metadata"]["name"],
                patch,
                pod["metadata"]["namespace"],
                patch_type="merge",
            )
        except ApiError as err:
            if not (is_not_found(err) or is_conflict(err)):
                raise

    async def _manage_replicas(self, key: str, rs: Obj, pods: list[Obj]) -> None:
        want = int((rs.get("spec") or {}).get("replicas", 1))
        diff = len(pods) - want
        if diff < 0:
            count = min(-diff, BURST_REPLICAS)
            self.expectations.expect_creations(key, count)
            created, err = await self._slow_start(count, lambda: self._create_pod(rs))
            skipped = count - created
            for _ in range(skipped):
                self.expectations.creation_observed(key)
            if err is not None:
                raise err
        elif diff > 0:
            victims = pods_to_delete(pods, min(diff, BURST_REPLICAS), self._related_pods(rs))
            self.expectations.expect_deletions(key, [_pod_key(p) for p in victims])
            results = await asyncio.gather(
                *(self._delete_pod(key, rs, p) for p in victims), return_exceptions=True
            )
            for r in results:
                if isinstance(r, BaseException):
                    raise r

    def _related_pods(self, rs: Obj) -> list[Obj]:
        """Active pods of every sibling with the same controlling owner (and this one's)."""
        ns = rs["metadata"]["namespace"]
        owner = controller_ref(rs)
        uids = {rs["metadata"]["uid"]}
        if owner is not None:
            for other in self.owners.store.list():
                ref = controller_ref(other)
                if (
                    other["metadata"].get("namespace") == ns
                    and ref
                    and ref.get("uid") == owner.get("uid")
                ):
                    uids.add(other["metadata"]["uid"])
        return [
            p
            for p in self.pods.store.list()
            if p["metadata"].get("namespace") == ns
            and is_pod_active(p)
            and (controller_ref(p) or {}).get("uid") in uids
        ]

    @staticmethod
    async def _slow_start(count: int, fn: Callable[[], Any]) -> tuple[int, ApiError | None]:
        """Batches of 1, 2, 4, … calls; stop after the first batch with a failure."""
        done = 0
        batch = 1
        while done < count:
            size = min(batch, count - done)
            results = await asyncio.gather(*(fn() for _ in range(size)), return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            done += size
            if errors:
                err = errors[0]
                if isinstance(err, ApiError):
                    # the failed calls in this batch will never be observed
                    return done - len(errors), err
                raise err
            batch *= 2
        return done, None

    def _pod_from_template(self, rs: Obj) -> Obj:
        template = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
        tmeta = template.get("metadata") or {}
        name = rs["metadata"]["name"]
        meta: Obj = {
            "generateName": f"{name}-",
            "namespace": rs["metadata"]["namespace"],
            "labels": dict(tmeta.get("labels") or {}),
            "ownerReferences": [new_controller_ref(rs, self.kind.api_version, self.kind.kind)],
        }
        if tmeta.get("annotations"):
            meta["annotations"] = dict(tmeta["annotations"])
        if tmeta.get("finalizers"):
            meta["finalizers"] = list(tmeta["finalizers"])
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": template.get("spec") or {},
        }

    async def _create_pod(self, rs: Obj) -> None:
        body = self._pod_from_template(rs)
        try:
            pod = await self.client.create(PODS, body, rs["metadata"]["namespace"])
        except ApiError as err:
            self.recorder.event(rs, WARNING, "FailedCreate", f"Error creating: {err.message}")
            raise
        self.recorder.event(
            rs, NORMAL, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}"
        )

    async def _delete_pod(self, key: str, rs: Obj, pod: Obj) -> None:
        name = pod["metadata"]["name"]
        try:
            await self.client.delete(PODS, name, pod["metadata"]["namespace"])
        except ApiError as err:
            self.expectations.deletion_observed(key, _pod_key(pod))
            if is_not_found(err):
                return
            self.recorder.event(rs, WARNING, "FailedDelete", f"Error deleting: {err.message}")
            raise
        self.recorder.event(rs, NORMAL, "SuccessfulDelete", f"Deleted pod: {name}")

    # -- status

    def _calculate_status(self, rs: Obj, pods: list[Obj], manage_err: Exception | None) -> Obj:
        spec = rs.get("spec") or {}
        old = rs.get("status") or {}
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        now = time.time()
        fully = ready = available = 0
        for p in pods:
            labels = labels_of(p)
            if all(labels.get(k) == v for k, v in template_labels.items()):
                fully += 1
            if is_pod_ready(p):
                ready += 1
                if is_pod_available(p, min_ready, now):
                    available += 1
        status: Obj = {
            "replicas": len(pods),
            "fullyLabeledReplicas": fully,
            "readyReplicas": ready,
            "availableReplicas": available,
            "observedGeneration": int(rs["metadata"].get("generation") or 0),
        }
        conditions = [dict(c) for c in old.get("conditions") or ()]
        failure = next((c for c in conditions if c.get("type") == "ReplicaFailure"), None)
        if manage_err is not None and failure is None:
            reason = "FailedCreate"
            want = int(spec.get("replicas", 1))
            if len(pods) > want:
                reason = "FailedDelete"
            message = manage_err.message if isinstance(manage_err, ApiError) else str(manage_err)
            conditions.append(
                {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "lastTransitionTime": format_time(),
                    "reason": reason,
                    "message": message,
                }
            )
        elif manage_err is None and failure is not None:
            conditions = [c for c in conditions if c.get("type") != "ReplicaFailure"]
        if conditions:
            status["conditions"] = conditions
        return status

    async def _update_status(self, rs: Obj, status: Obj) -> None:
        old = rs.get("status") or {}
        normalized = {k: v for k, v in old.items() if v not in (0, None, [])}
        wanted = {k: v for k, v in status.items() if v not in (0, None, [])}
        if normalized == wanted:
            return
        body = copy.deepcopy(rs)
        body["status"] = status
        ns = rs["metadata"]["namespace"]
        for attempt in range(2):
            try:
                await self.client.update_status(self.kind.resource, body, ns)
                return
            except ApiError as err:
                if is_not_found(err):
                    return
                if not is_conflict(err) or attempt:
                    raise  # the requeue reads the fresh object
            # one retry on a conflict, on the fresh object (as upstream does)
            fresh = await self.client.get(self.kind.resource, rs["metadata"]["name"], ns)
            if fresh["metadata"].get("uid") != rs["metadata"]["uid"]:
                return
            if fresh["metadata"].get("generation") != rs["metadata"].get("generation"):
                raise ApiError(409, "Conflict", "the spec changed; requeued", {})
            fresh["status"] = status
            body = fresh


def setup_replicas(manager: Manager, name: str, kind: ReplicaKind) -> ReplicaSetReconciler:
    reconciler = ReplicaSetReconciler(manager, kind)
    controller = manager.add(name, reconciler, workers=2)
    reconciler.setup(controller)
    return reconciler


def setup(manager: Manager) -> None:
    setup_replicas(manager, "replicaset", REPLICASET_KIND)
