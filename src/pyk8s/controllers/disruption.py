"""The disruption controller: keeps every PodDisruptionBudget's status true to its pods.

The API server's ``pods/eviction`` subresource (``pyk8s.apiserver.reviews``) decides from
a budget's *status* alone whether a pod may go: it refuses with 429 when
``disruptionsAllowed`` is 0, and charges the budget (decrements it and records the pod in
``status.disruptedPods``) when it lets one through. This controller computes that status,
as upstream's ``pkg/controller/disruption`` does, so that ``kubectl drain`` stops before
it breaks a budget:

* ``expectedPods``: with ``minAvailable`` as an integer, the number of selected pods;
  otherwise (a percentage, or ``maxUnavailable``) the sum of the scales of the controllers
  that own the selected pods, found through the controller ownerReference chain
  (Deployment via its ReplicaSet, ReplicaSet, ReplicationController, StatefulSet, or any
  other kind through its ``scale`` subresource); pods without a controller are left out
  and reported with an ``UnmanagedPods`` event;
* ``desiredHealthy``: ``minAvailable`` (percentages of expectedPods rounded up), or
  expectedPods minus ``maxUnavailable`` (rounded up too), never below 0;
* ``currentHealthy``: selected pods that are Ready, not being deleted and not recently
  evicted (in ``disruptedPods`` for less than two minutes);
* ``disruptionsAllowed``: ``max(0, currentHealthy - desiredHealthy)``, 0 when no pod is
  expected; ``observedGeneration``; the ``DisruptionAllowed`` condition (``SufficientPods``
  / ``InsufficientPods``, or ``SyncFailed`` with the error when the status cannot be
  computed, in which case no disruption is allowed);
* ``disruptedPods`` entries older than two minutes are dropped (with a ``NotDeleted``
  event on the pod that was evicted but did not go), and the budget is re-checked when
  the oldest remaining entry expires.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Iterable
from typing import Any

from pyk8s.api.registry import REGISTRY
from pyk8s.api.selectors import SelectorError, label_selector_from_dict
from pyk8s.client import NORMAL, WARNING, ApiError, is_conflict, is_not_found
from pyk8s.controllers.replicaset import (
    controller_ref,
    format_time,
    is_pod_ready,
    parse_time,
)
from pyk8s.controllers.runtime import Manager, Request, Result

log = logging.getLogger(__name__)

Obj = dict[str, Any]

#: how long an evicted pod may stay before the budget stops counting it as going
#: (upstream's DeletionTimeout)
DELETION_TIMEOUT = 120.0

CONDITION = "DisruptionAllowed"
SUFFICIENT_PODS = "SufficientPods"
INSUFFICIENT_PODS = "InsufficientPods"
SYNC_FAILED = "SyncFailed"

PDBS = REGISTRY.get("policy", "v1", "poddisruptionbudgets")
PODS = REGISTRY.get("", "v1", "pods")
REPLICASETS = REGISTRY.get("apps", "v1", "replicasets")
DEPLOYMENTS = REGISTRY.get("apps", "v1", "deployments")
STATEFULSETS = REGISTRY.get("apps", "v1", "statefulsets")
RCS = REGISTRY.get("", "v1", "replicationcontrollers")
assert PDBS is not None and PODS is not None and REPLICASETS is not None
assert DEPLOYMENTS is not None and STATEFULSETS is not None and RCS is not None


class SyncError(Exception):
    """The budget's status cannot be computed (becomes the SyncFailed condition)."""


def scaled_value(value: int | str, total: int, *, round_up: bool) -> int:
    """upstream's intstr.GetScaledValueFromIntOrPercent."""
    if isinstance(value, bool):
        raise SyncError("invalid value for IntOrString: invalid type: neither int nor string")
    if isinstance(value, int):
        return value
    if not isinstance(value, str) or not value.endswith("%"):
        raise SyncError("invalid value for IntOrString: invalid type: string is not a percentage")
    try:
        pct = int(value[:-1])
    except ValueError as err:
        raise SyncError(f'invalid value "{value}": {err}') from None
    scaled = pct * total / 100
    return math.ceil(scaled) if round_up else math.floor(scaled)


def _group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0]


class DisruptionReconciler:
    def __init__(self, manager: Manager) -> None:
        assert PDBS is not None and PODS is not None and REPLICASETS is not None
        assert DEPLOYMENTS is not None and STATEFULSETS is not None and RCS is not None
        self.client = manager.client
        self.recorder = manager.recorder
        self.pdbs = manager.informers.informer(PDBS)
        self.pods = manager.informers.informer(PODS)
        self.replicasets = manager.informers.informer(REPLICASETS)
        self.deployments = manager.informers.informer(DEPLOYMENTS)
        self.statefulsets = manager.informers.informer(STATEFULSETS)
        self.rcs = manager.informers.informer(RCS)

    # ------------------------------------------------------------------ mapping

    def pod_to_pdbs(self, pod: Obj) -> Iterable[Request]:
        meta = pod.get("metadata") or {}
        ns = meta.get("namespace", "")
        labels = meta.get("labels") or {}
        for pdb in self.pdbs.store.by_index("namespace", ns):
            try:
                selector = label_selector_from_dict((pdb.get("spec") or {}).get("selector"))
            except SelectorError:
                continue
            if selector.matches(labels):
                yield Request(ns, pdb["metadata"]["name"])

    def namespace_pdbs(self, obj: Obj) -> Iterable[Request]:
        """Every budget of the object's namespace (a workload's scale changed)."""
        ns = (obj.get("metadata") or {}).get("namespace", "")
        for pdb in self.pdbs.store.by_index("namespace", ns):
            yield Request(ns, pdb["metadata"]["name"])

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self, request: Request) -> Result | None:
        pdb = self.pdbs.store.get_by_name(request.namespace, request.name)
        if pdb is None:
            return None
        try:
            return await self._try_sync(pdb)
        except ApiError as err:
            if is_conflict(err) or is_not_found(err):
                return Result(requeue=True) if is_conflict(err) else None
            log.warning("failed to sync PDB %s: %s", request, err)
            await self._fail_safe(pdb, str(err))
            raise
        except SyncError as err:
            log.warning("failed to sync PDB %s: %s", request, err)
            await self._fail_safe(pdb, str(err))
            return Result(requeue=True)

    def _pods_for(self, pdb: Obj) -> list[Obj]:
        try:
            selector = label_selector_from_dict((pdb.get("spec") or {}).get("selector"))
        except SelectorError as err:
            raise SyncError(str(err)) from None
        ns = pdb["metadata"].get("namespace", "")
        return [
            p
            for p in self.pods.store.by_index("namespace", ns)
            if selector.matches((p.get("metadata") or {}).get("labels") or {})
        ]

    async def _try_sync(self, pdb: Obj) -> Result | None:
        pods = self._pods_for(pdb)
        if not pods:
            self.recorder.event(pdb, NORMAL, "NoPods", "No matching pods found")
        expected, desired, unmanaged = await self._expected_pod_count(pdb, pods)
        if unmanaged:
            self.recorder.event(
                pdb,
                WARNING,
                "UnmanagedPods",
                "Pods selected by this PodDisruptionBudget (selector: "
                f"{label_selector_from_dict((pdb.get('spec') or {}).get('selector'))}) were "
                "found to be unmanaged. As a result, the status of the PDB cannot be "
                "calculated correctly, which may result in undefined behavior. To account "
                'for these pods please set ".spec.minAvailable" field of the PDB to an '
                "integer value.",
            )
        now = time.time()
        disrupted, recheck = self._disrupted_pod_map(pdb, pods, now)
        healthy = self._count_healthy(pods, disrupted, now)
        await self._update_status(pdb, healthy, desired, expected, disrupted)
        if recheck is not None:
            return Result(requeue_after=max(0.1, recheck - now))
        return None

    async def _expected_pod_count(self, pdb: Obj, pods: list[Obj]) -> tuple[int, int, list[str]]:
        spec = pdb.get("spec") or {}
        max_unavailable = spec.get("maxUnavailable")
        min_available = spec.get("minAvailable")
        expected, desired = 0, 0
        unmanaged: list[str] = []
        if max_unavailable is not None:
            expected, unmanaged = await self._expected_scale(pods)
            mu = scaled_value(max_unavailable, expected, round_up=True)
            desired = max(0, expected - mu)
        elif min_available is not None:
            if isinstance(min_available, int) and not isinstance(min_available, bool):
                desired = min_available
                expected = len(pods)
            else:
                expected, unmanaged = await self._expected_scale(pods)
                desired = scaled_value(min_available, expected, round_up=True)
        return expected, desired, unmanaged

    async def _expected_scale(self, pods: list[Obj]) -> tuple[int, list[str]]:
        """The summed scale of the controllers owning ``pods``; unmanaged pod names."""
        scales: dict[str, int] = {}
        unmanaged: list[str] = []
        for pod in pods:
            ref = controller_ref(pod)
            if ref is None:
                unmanaged.append(pod["metadata"]["name"])
                continue
            if ref.get("uid") in scales:
                continue
            found = await self._find_controller(ref, pod["metadata"].get("namespace", ""))
            if found is None:
                raise SyncError(f'found no controllers for pod "{pod["metadata"]["name"]}"')
            scales[found[0]] = found[1]
        return sum(scales.values()), unmanaged

    async def _find_controller(self, ref: Obj, namespace: str) -> tuple[str, int] | None:
        """(uid, replicas) of the controller ``ref`` names, following RS → Deployment."""
        kind, group = ref.get("kind"), _group_of(str(ref.get("apiVersion", "")))
        name, uid = ref.get("name", ""), ref.get("uid")

        def replicas(obj: Obj) -> int:
            value = (obj.get("spec") or {}).get("replicas")
            return 1 if value is None else int(value)

        if kind == "ReplicaSet" and group in ("apps", "extensions"):
            rs = self.replicasets.store.get_by_name(namespace, name)
            if rs is None or rs["metadata"].get("uid") != uid:
                return None
            owner = controller_ref(rs)
            if owner is not None and owner.get("kind") == "Deployment":
                if _group_of(str(owner.get("apiVersion", ""))) not in ("apps", "extensions"):
                    return None
                dep = self.deployments.store.get_by_name(namespace, owner.get("name", ""))
                if dep is None or dep["metadata"].get("uid") != owner.get("uid"):
                    return None
                return str(dep["metadata"]["uid"]), replicas(dep)
            return str(uid), replicas(rs)
        if kind == "ReplicationController" and group == "":
            rc = self.rcs.store.get_by_name(namespace, name)
            if rc is None or rc["metadata"].get("uid") != uid:
                return None
            return str(uid), replicas(rc)
        if kind == "StatefulSet" and group == "apps":
            ss = self.statefulsets.store.get_by_name(namespace, name)
            if ss is None or ss["metadata"].get("uid") != uid:
                return None
            return str(uid), replicas(ss)
        # any other kind: its scale subresource (upstream's getScaleController)
        version = str(ref.get("apiVersion", "")).rpartition("/")[2]
        resource = REGISTRY.for_kind(group, version, str(kind))
        if resource is None or "scale" not in resource.subresources:
            return None
        try:
            scale = await self.client.get_scale(resource, name, namespace)
        except ApiError as err:
            if is_not_found(err):
                return None
            raise
        if (scale.get("metadata") or {}).get("uid") != uid:
            return None
        return str(uid), int((scale.get("spec") or {}).get("replicas") or 0)

    def _disrupted_pod_map(
        self, pdb: Obj, pods: list[Obj], now: float
    ) -> tuple[dict[str, str], float | None]:
        """The still-fresh entries of status.disruptedPods, and when the oldest expires."""
        disrupted = (pdb.get("status") or {}).get("disruptedPods")
        result: dict[str, str] = {}
        recheck: float | None = None
        if not disrupted:
            return result, recheck
        ns = pdb["metadata"].get("namespace", "")
        for pod in pods:
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            stamp = disrupted.get(meta["name"])
            if stamp is None:
                continue
            when = parse_time(stamp)
            expected_deletion = (when or 0.0) + DELETION_TIMEOUT
            if expected_deletion < now:
                self.recorder.event(
                    pod,
                    WARNING,
                    "NotDeleted",
                    f"Pod was expected by PDB {ns}/{pdb['metadata']['name']} to be deleted "
                    "but it wasn't",
                )
            else:
                if recheck is None or expected_deletion < recheck:
                    recheck = expected_deletion
                result[meta["name"]] = stamp
        return result, recheck

    @staticmethod
    def _count_healthy(pods: list[Obj], disrupted: dict[str, str], now: float) -> int:
        healthy = 0
        for pod in pods:
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            stamp = disrupted.get(meta["name"])
            if stamp is not None and (parse_time(stamp) or 0.0) + DELETION_TIMEOUT > now:
                continue
            if is_pod_ready(pod):
                healthy += 1
        return healthy

    async def _update_status(
        self, pdb: Obj, healthy: int, desired: int, expected: int, disrupted: dict[str, str]
    ) -> None:
        allowed = healthy - desired
        if expected <= 0 or allowed <= 0:
            allowed = 0
        status = pdb.get("status") or {}
        generation = int(pdb["metadata"].get("generation") or 0)
        if (
            status.get("currentHealthy", 0) == healthy
            and status.get("desiredHealthy", 0) == desired
            and status.get("expectedPods", 0) == expected
            and status.get("disruptionsAllowed", 0) == allowed
            and (status.get("disruptedPods") or {}) == disrupted
            and status.get("observedGeneration", 0) == generation
            and _conditions_up_to_date(pdb)
        ):
            return
        new = copy.deepcopy(pdb)
        new_status: Obj = {
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
            "disruptionsAllowed": allowed,
            "observedGeneration": generation,
            "conditions": copy.deepcopy(status.get("conditions") or []),
        }
        if disrupted:
            new_status["disruptedPods"] = disrupted
        new["status"] = new_status
        _set_condition(
            new_status,
            "True" if allowed > 0 else "False",
            SUFFICIENT_PODS if allowed > 0 else INSUFFICIENT_PODS,
            "",
        )
        assert PDBS is not None
        await self.client.update_status(PDBS, new)

    async def _fail_safe(self, pdb: Obj, message: str) -> None:
        """No disruption allowed while the status cannot be computed (upstream's failSafe)."""
        new = copy.deepcopy(pdb)
        status = new.setdefault("status", {})
        status["disruptionsAllowed"] = 0
        _set_condition(status, "False", SYNC_FAILED, message)
        assert PDBS is not None
        try:
            await self.client.update_status(PDBS, new)
        except ApiError as err:
            log.warning("could not record SyncFailed on PDB: %s", err)


def _set_condition(status: Obj, value: str, reason: str, message: str) -> None:
    """apimeta.SetStatusCondition for DisruptionAllowed."""
    conditions: list[Obj] = status.setdefault("conditions", [])
    wanted = {
        "type": CONDITION,
        "status": value,
        "observedGeneration": int(status.get("observedGeneration") or 0),
        "reason": reason,
        "message": message,
    }
    for cond in conditions:
        if cond.get("type") == CONDITION:
            if cond.get("status") != value:
                cond["lastTransitionTime"] = format_time()
            cond.update(wanted)
            return
    conditions.append({**wanted, "lastTransitionTime": format_time()})


def _conditions_up_to_date(pdb: Obj) -> bool:
    status = pdb.get("status") or {}
    cond = next((c for c in status.get("conditions") or () if c.get("type") == CONDITION), None)
    if cond is None:
        return False
    if status.get("observedGeneration", 0) != int(pdb["metadata"].get("generation") or 0):
        return False
    if int(status.get("disruptionsAllowed") or 0) > 0:
        return bool(cond.get("status") == "True" and cond.get("reason") == SUFFICIENT_PODS)
    return bool(cond.get("status") == "False" and cond.get("reason") == INSUFFICIENT_PODS)


def setup(manager: Manager) -> None:
    reconciler = DisruptionReconciler(manager)
    controller = manager.add("disruption", reconciler, workers=2)
    controller.watch(reconciler.pdbs)
    controller.watch(reconciler.pods, reconciler.pod_to_pdbs)
    for informer in (
        reconciler.replicasets,
        reconciler.deployments,
        reconciler.statefulsets,
        reconciler.rcs,
    ):
        controller.watch(informer, reconciler.namespace_pdbs)
