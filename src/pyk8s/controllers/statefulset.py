"""The StatefulSet controller: pods with a stable identity, storage and order.

Upstream's ``pkg/controller/statefulset``, as users see it through ``kubectl``:

* pods are named ``<set>-<ordinal>`` (from ``spec.ordinals.start``) and labelled
  ``statefulset.kubernetes.io/pod-name``, ``apps.kubernetes.io/pod-index`` and
  ``controller-revision-hash`` (the ControllerRevision's name); ``hostname`` is the pod's
  name and ``subdomain`` the set's ``serviceName``, so cluster DNS gives each a stable name;
* every ``volumeClaimTemplates`` entry becomes a PVC ``<claim>-<set>-<ordinal>`` created
  before the pod and mounted through a ``persistentVolumeClaim`` volume; claims are kept
  (``persistentVolumeClaimRetentionPolicy`` Retain) unless the policy says Delete, in which
  case they get an ownerReference to the set (whenDeleted) or to the condemned pod
  (whenScaled) and the garbage collector removes them;
* ``podManagementPolicy`` OrderedReady creates ordinals one at a time, each only once all
  lower ones are Running and Ready, and removes from the highest ordinal down; Parallel
  creates and deletes without waiting;
* template history is kept in ControllerRevisions (see :mod:`._history`);
  ``status.currentRevision``/``updateRevision`` name them; RollingUpdate replaces pods from
  the highest ordinal down to ``partition``, one at a time, waiting for each to be ready;
  OnDelete only uses the new template for pods the user deletes;
* status: replicas, readyReplicas, currentReplicas, updatedReplicas, availableReplicas
  (honouring ``minReadySeconds``), observedGeneration, collisionCount;
* events ``SuccessfulCreate``/``SuccessfulDelete`` ("create Pod web-0 in StatefulSet web
  successful") and their ``Failed…`` counterparts, also for claims.

Like upstream, there are no expectations: pod names are deterministic, so a stale cache
at worst makes a create fail with AlreadyExists (or a delete with NotFound), which the
next sync resolves.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from typing import Any

from pyk8s.api.selectors import LabelSelector, label_selector_from_dict
from pyk8s.client import (
    NORMAL,
    WARNING,
    ApiError,
    Client,
    EventRecorder,
    SharedInformer,
    is_already_exists,
    is_conflict,
    is_not_found,
)
from pyk8s.controllers import _history as history
from pyk8s.controllers._resources import CONTROLLER_REVISIONS, PODS, PVCS, STATEFULSETS
from pyk8s.controllers.replicaset import (
    controller_ref,
    is_pod_available,
    is_pod_ready,
    labels_of,
    new_controller_ref,
)
from pyk8s.controllers.runtime import Controller, Manager, Request, Result, enqueue_owner

log = logging.getLogger(__name__)

Obj = dict[str, Any]

KIND = "StatefulSet"
API_VERSION = "apps/v1"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"

_NAME_RE = re.compile(r"^(.*)-([0-9]+)$")


# ---------------------------------------------------------------------------- helpers


def parent_and_ordinal(pod: Obj) -> tuple[str, int]:
    """``web-3`` → ("web", 3); ("", -1) for a name that is not a set member's."""
    m = _NAME_RE.match(str((pod.get("metadata") or {}).get("name", "")))
    if not m:
        return "", -1
    return m.group(1), int(m.group(2))


def ordinal(pod: Obj) -> int:
    return parent_and_ordinal(pod)[1]


def is_member_of(sts: Obj, pod: Obj) -> bool:
    return bool(parent_and_ordinal(pod)[0] == sts["metadata"]["name"])


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def is_terminating(pod: Obj) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def is_running_and_ready(pod: Obj) -> bool:
    return _phase(pod) == "Running" and is_pod_ready(pod)


def is_healthy(pod: Obj) -> bool:
    return is_running_and_ready(pod) and not is_terminating(pod)


def pod_revision(pod: Obj) -> str:
    return labels_of(pod).get(history.POD_REVISION_LABEL, "")


def _spec(sts: Obj) -> Obj:
    return sts.get("spec") or {}


def replicas_of(sts: Obj) -> int:
    r = _spec(sts).get("replicas")
    return 1 if r is None else int(r)


def start_ordinal(sts: Obj) -> int:
    return int((_spec(sts).get("ordinals") or {}).get("start") or 0)


def _strategy(sts: Obj) -> Obj:
    return _spec(sts).get("updateStrategy") or {"type": "RollingUpdate"}


def claim_name(template_name: str, sts_name: str, ord_: int) -> str:
    return f"{template_name}-{sts_name}-{ord_}"


def _selector(sts: Obj) -> LabelSelector:
    try:
        return label_selector_from_dict(_spec(sts).get("selector"))
    except ValueError:
        return LabelSelector.nothing()


def _retention(sts: Obj) -> tuple[str, str]:
    policy = _spec(sts).get("persistentVolumeClaimRetentionPolicy") or {}
    return (
        str(policy.get("whenDeleted") or "Retain"),
        str(policy.get("whenScaled") or "Retain"),
    )


def _owner_ref(owner: Obj, api_version: str, kind: str, *, controller: bool) -> Obj:
    ref = new_controller_ref(owner, api_version, kind)
    if not controller:
        ref.pop("controller", None)
    return ref


def pvcs_for(sts: Obj, pod_name: str, ord_: int) -> list[Obj]:
    """The claims a pod of ``sts`` with ordinal ``ord_`` uses (getPersistentVolumeClaims)."""
    match_labels = dict((_spec(sts).get("selector") or {}).get("matchLabels") or {})
    when_deleted, _ = _retention(sts)
    out = []
    for tmpl in _spec(sts).get("volumeClaimTemplates") or ():
        tmeta = tmpl.get("metadata") or {}
        name = str(tmeta.get("name", ""))
        meta: Obj = {
            "name": claim_name(name, sts["metadata"]["name"], ord_),
            "namespace": sts["metadata"]["namespace"],
            "labels": {**(tmeta.get("labels") or {}), **match_labels},
        }
        if tmeta.get("annotations"):
            meta["annotations"] = dict(tmeta["annotations"])
        if when_deleted == "Delete":
            meta["ownerReferences"] = [_owner_ref(sts, API_VERSION, KIND, controller=False)]
        out.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": meta,
                "spec": copy.deepcopy(tmpl.get("spec") or {}),
            }
        )
    return out


def new_pod(sts: Obj, revision: Obj, ord_: int) -> Obj:
    """A pod of ``sts`` at ordinal ``ord_`` from ``revision``'s template."""
    template = history.template_from_revision(revision)
    tmeta = template.get("metadata") or {}
    set_name = sts["metadata"]["name"]
    name = f"{set_name}-{ord_}"
    labels = dict(tmeta.get("labels") or {})
    labels[POD_NAME_LABEL] = name
    labels[POD_INDEX_LABEL] = str(ord_)
    labels[history.POD_REVISION_LABEL] = revision["metadata"]["name"]
    meta: Obj = {
        "name": name,
        "namespace": sts["metadata"]["namespace"],
        "labels": labels,
        "ownerReferences": [new_controller_ref(sts, API_VERSION, KIND)],
    }
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        meta["finalizers"] = list(tmeta["finalizers"])
    spec = copy.deepcopy(template.get("spec") or {})
    spec["hostname"] = name
    if _spec(sts).get("serviceName"):
        spec["subdomain"] = _spec(sts)["serviceName"]
    claims = pvcs_for(sts, name, ord_)
    if claims:
        claim_volumes = {
            t["metadata"]["name"]: claim["metadata"]["name"]
            for t, claim in zip(_spec(sts).get("volumeClaimTemplates") or (), claims, strict=True)
        }
        volumes = [v for v in spec.get("volumes") or () if v.get("name") not in claim_volumes]
        for vname, cname in claim_volumes.items():
            volumes.append({"name": vname, "persistentVolumeClaim": {"claimName": cname}})
        spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


# ---------------------------------------------------------------------- reconciler


class StatefulSetReconciler:
    def __init__(self, manager: Manager) -> None:
        self.client: Client = manager.client
        self.recorder = EventRecorder(manager.client, component="statefulset-controller")
        self.sets: SharedInformer = manager.informers.informer(STATEFULSETS)
        self.pods: SharedInformer = manager.informers.informer(PODS)
        self.revisions: SharedInformer = manager.informers.informer(CONTROLLER_REVISIONS)
        self.claims: SharedInformer = manager.informers.informer(PVCS)
        self.controller: Controller | None = None

    def setup(self, controller: Controller) -> None:
        self.controller = controller
        controller.watch(self.sets)
        controller.watch(self.pods, self._pod_owners)
        controller.watch(self.revisions, enqueue_owner(KIND))

    def _pod_owners(self, pod: Obj) -> list[Request]:
        ns = (pod.get("metadata") or {}).get("namespace", "")
        ref = controller_ref(pod)
        if ref is not None:
            return [Request(ns, str(ref.get("name", "")))] if ref.get("kind") == KIND else []
        # an orphan: a set it belongs to (by name and selector) may adopt it
        parent, _ = parent_and_ordinal(pod)
        sts = self.sets.store.get_by_name(ns, parent) if parent else None
        if sts is not None and _selector(sts).matches(labels_of(pod)):
            return [Request(ns, parent)]
        return []

    # -- reconcile

    async def reconcile(self, request: Request) -> Result | None:
        cached = self.sets.store.get_by_name(request.namespace, request.name)
        if cached is None:
            return None
        sts = copy.deepcopy(cached)
        if sts["metadata"].get("deletionTimestamp"):
            return None
        pods = await self._claim_pods(sts)
        revisions = self._owned_revisions(sts)
        current, update, collision = await self._get_revisions(sts, revisions)
        status = await self._update_set(sts, current, update, collision, pods)
        await self._update_status(sts, status)
        await self._truncate_history(sts, pods, current, update)
        min_ready = int(_spec(sts).get("minReadySeconds") or 0)
        if min_ready > 0 and status.get("availableReplicas", 0) != status.get("readyReplicas", 0):
            return Result(requeue_after=float(min_ready))
        return None

    async def _claim_pods(self, sts: Obj) -> list[Obj]:
        """Owned pods; orphans that are members and match the selector are adopted."""
        uid = sts["metadata"]["uid"]
        selector = _selector(sts)
        out: list[Obj] = []
        for pod in self.pods.store.by_index("namespace", sts["metadata"]["namespace"]):
            ref = controller_ref(pod)
            if ref is not None:
                if ref.get("uid") == uid:
                    out.append(pod)
                continue
            if is_terminating(pod) or not is_member_of(sts, pod):
                continue
            if not selector.matches(labels_of(pod)):
                continue
            refs = [*(pod["metadata"].get("ownerReferences") or [])]
            refs.append(new_controller_ref(sts, API_VERSION, KIND))
            patch = {
                "metadata": {
                    "ownerReferences": refs,
                    "resourceVersion": pod["metadata"].get("resourceVersion"),
                }
            }
            try:
                adopted = await self.client.patch(
                    PODS,
                    pod["metadata"]["name"],
                    patch,
                    pod["metadata"]["namespace"],
                    patch_type="merge",
                )
            except ApiError as err:
                if is_not_found(err) or is_conflict(err):
                    continue
                raise
            out.append(adopted)
        return out

    def _owned_revisions(self, sts: Obj) -> list[Obj]:
        uid = sts["metadata"]["uid"]
        revs = [
            r
            for r in self.revisions.store.by_index("namespace", sts["metadata"]["namespace"])
            if (controller_ref(r) or {}).get("uid") == uid
        ]
        return history.sort_revisions(revs)

    async def _get_revisions(self, sts: Obj, revisions: list[Obj]) -> tuple[Obj, Obj, int | None]:
        """(current revision, update revision, collisionCount) — getStatefulSetRevisions."""
        status = sts.get("status") or {}
        collision: int | None = status.get("collisionCount")
        next_number = (history.revision_number(revisions[-1]) + 1) if revisions else 1
        ref = new_controller_ref(sts, API_VERSION, KIND)
        tlabels = dict(
            ((_spec(sts).get("template") or {}).get("metadata") or {}).get("labels") or {}
        )
        wanted = history.new_revision(sts, ref, tlabels, next_number, collision)
        equal = [r for r in revisions if history.equal_revision(r, wanted)]
        if equal and equal[-1] is revisions[-1]:
            update = equal[-1]
        elif equal:
            update = await self._renumber(equal[-1], next_number)
        else:
            update, collision = await self._create_revision(sts, wanted, collision)
        current_name = status.get("currentRevision")
        current = next(
            (r for r in revisions if r["metadata"]["name"] == current_name and current_name),
            update,
        )
        return current, update, collision

    async def _renumber(self, rev: Obj, number: int) -> Obj:
        body = copy.deepcopy(rev)
        body["revision"] = number
        updated: Obj = await self.client.update(
            CONTROLLER_REVISIONS, body, rev["metadata"]["namespace"]
        )
        return updated

    async def _create_revision(
        self, sts: Obj, wanted: Obj, collision: int | None
    ) -> tuple[Obj, int | None]:
        ns = sts["metadata"]["namespace"]
        try:
            created: Obj = await self.client.create(CONTROLLER_REVISIONS, wanted, ns)
            return created, collision
        except ApiError as err:
            if not is_already_exists(err):
                raise
        existing = await self.client.get(CONTROLLER_REVISIONS, wanted["metadata"]["name"], ns)
        if (controller_ref(existing) or {}).get("uid") == sts["metadata"]["uid"] and (
            history.equal_revision(existing, wanted)
        ):
            return existing, collision
        # a hash collision: the next sync retries with a bumped collisionCount
        collision = int(collision or 0) + 1
        body = copy.deepcopy(sts)
        body.setdefault("status", {})["collisionCount"] = collision
        await self.client.update_status(STATEFULSETS, body, ns)
        raise ApiError(409, "AlreadyExists", "controller revision hash collision", {})

    # -- the core: updateStatefulSet

    async def _update_set(
        self, sts: Obj, current: Obj, update: Obj, collision: int | None, pods: list[Obj]
    ) -> Obj:
        status = self._compute_status(sts, current, update, collision, pods)
        await self._manage(sts, current, update, pods, status)
        return status

    def _compute_status(
        self, sts: Obj, current: Obj, update: Obj, collision: int | None, pods: list[Obj]
    ) -> Obj:
        min_ready = int(_spec(sts).get("minReadySeconds") or 0)
        now = time.time()
        st: Obj = {
            "observedGeneration": int(sts["metadata"].get("generation") or 0),
            "replicas": 0,
            "readyReplicas": 0,
            "currentReplicas": 0,
            "updatedReplicas": 0,
            "availableReplicas": 0,
            "currentRevision": current["metadata"]["name"],
            "updateRevision": update["metadata"]["name"],
            "collisionCount": int(collision or 0),
        }
        for pod in pods:
            if _phase(pod):
                st["replicas"] += 1
            if is_running_and_ready(pod):
                st["readyReplicas"] += 1
                if is_pod_available(pod, min_ready, now):
                    st["availableReplicas"] += 1
            if not is_terminating(pod):
                rev = pod_revision(pod)
                if rev == current["metadata"]["name"]:
                    st["currentReplicas"] += 1
                if rev == update["metadata"]["name"]:
                    st["updatedReplicas"] += 1
        self._complete_rolling_update(sts, st)
        return st

    @staticmethod
    def _complete_rolling_update(sts: Obj, st: Obj) -> None:
        if (
            _strategy(sts).get("type") == "RollingUpdate"
            and st["updatedReplicas"] == st["replicas"]
            and st["readyReplicas"] == st["replicas"]
        ):
            st["currentReplicas"] = st["updatedReplicas"]
            st["currentRevision"] = st["updateRevision"]

    async def _manage(
        self, sts: Obj, current: Obj, update: Obj, pods: list[Obj], status: Obj
    ) -> None:
        want = replicas_of(sts)
        start = start_ordinal(sts)
        end = start + want
        replicas: dict[int, Obj] = {}
        condemned: list[Obj] = []
        for member in pods:
            o = ordinal(member)
            if start <= o < end:
                replicas[o] = member
            elif o >= 0:
                condemned.append(member)
        condemned.sort(key=ordinal, reverse=True)
        monotonic = _spec(sts).get("podManagementPolicy") != "Parallel"
        strategy = _strategy(sts)
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)

        first_unhealthy: Obj | None = None
        for o in range(start, end):
            pod = replicas.get(o)
            if pod is not None and not is_healthy(pod):
                first_unhealthy = pod
                break
        if first_unhealthy is None:
            first_unhealthy = next((p for p in condemned if not is_healthy(p)), None)

        for o in range(start, end):
            pod = replicas.get(o)
            if (
                pod is not None
                and _phase(pod) in ("Failed", "Succeeded")
                and not (is_terminating(pod))
            ):
                await self._delete_pod(sts, pod)
                if monotonic:
                    return
                continue
            if pod is None:
                use_current = strategy.get("type") == "RollingUpdate" and o - start < partition
                revision = current if use_current else update
                created = await self._create_pod(sts, new_pod(sts, revision, o))
                if created:
                    status["replicas"] += 1
                    if revision is current:
                        status["currentReplicas"] += 1
                    if revision is update:
                        status["updatedReplicas"] += 1
                if monotonic:
                    return
                continue
            if is_terminating(pod):
                if monotonic:
                    return
                continue
            if monotonic and not is_running_and_ready(pod):
                return
            await self._ensure_claims(sts, pod, o)

        for victim in condemned:
            if is_terminating(victim):
                if monotonic:
                    return
                continue
            if monotonic and not is_running_and_ready(victim) and victim is not first_unhealthy:
                return
            await self._delete_pod(sts, victim)
            if monotonic:
                return

        if strategy.get("type") == "OnDelete":
            return
        update_name = update["metadata"]["name"]
        for o in range(end - 1, start + partition - 1, -1):
            pod = replicas.get(o)
            if pod is None:
                return
            if pod_revision(pod) != update_name and not is_terminating(pod):
                await self._delete_pod(sts, pod)
                return
            if not is_healthy(pod):
                return

    # -- writes

    async def _ensure_claims(self, sts: Obj, pod: Obj, o: int) -> None:
        ns = sts["metadata"]["namespace"]
        for claim in pvcs_for(sts, pod["metadata"]["name"], o):
            existing = self.claims.store.get_by_name(ns, claim["metadata"]["name"])
            if existing is not None:
                if existing["metadata"].get("deletionTimestamp"):
                    raise ApiError(
                        409,
                        "Conflict",
                        f"pvc {claim['metadata']['name']} is being deleted",
                        {},
                    )
                continue
            msg_base = (
                f"Claim {claim['metadata']['name']} Pod {pod['metadata']['name']} "
                f"in StatefulSet {sts['metadata']['name']}"
            )
            try:
                await self.client.create(PVCS, claim, ns)
            except ApiError as err:
                if is_already_exists(err):
                    continue
                self.recorder.event(
                    sts,
                    WARNING,
                    "FailedCreate",
                    f"create Claim {claim['metadata']['name']} for Pod "
                    f"{pod['metadata']['name']} in StatefulSet {sts['metadata']['name']} "
                    f"failed error: {err.message}",
                )
                raise
            self.recorder.event(sts, NORMAL, "SuccessfulCreate", f"create {msg_base} success")

    async def _create_pod(self, sts: Obj, pod: Obj) -> bool:
        """Claims first, then the pod; False when it already existed (a stale cache)."""
        name = pod["metadata"]["name"]
        await self._ensure_claims(sts, pod, ordinal(pod))
        try:
            await self.client.create(PODS, pod, sts["metadata"]["namespace"])
        except ApiError as err:
            if is_already_exists(err):
                return False
            self.recorder.event(
                sts,
                WARNING,
                "FailedCreate",
                f"create Pod {name} in StatefulSet {sts['metadata']['name']} failed error: "
                f"{err.message}",
            )
            raise
        self.recorder.event(
            sts,
            NORMAL,
            "SuccessfulCreate",
            f"create Pod {name} in StatefulSet {sts['metadata']['name']} successful",
        )
        return True

    async def _delete_pod(self, sts: Obj, pod: Obj) -> None:
        name = pod["metadata"]["name"]
        o = ordinal(pod)
        _, when_scaled = _retention(sts)
        if when_scaled == "Delete" and o >= start_ordinal(sts) + replicas_of(sts):
            await self._claims_owned_by_pod(sts, pod, o)
        try:
            await self.client.delete(PODS, name, sts["metadata"]["namespace"])
        except ApiError as err:
            if is_not_found(err):
                return
            self.recorder.event(
                sts,
                WARNING,
                "FailedDelete",
                f"delete Pod {name} in StatefulSet {sts['metadata']['name']} failed error: "
                f"{err.message}",
            )
            raise
        self.recorder.event(
            sts,
            NORMAL,
            "SuccessfulDelete",
            f"delete Pod {name} in StatefulSet {sts['metadata']['name']} successful",
        )

    async def _claims_owned_by_pod(self, sts: Obj, pod: Obj, o: int) -> None:
        """whenScaled: Delete — the condemned pod owns its claims, so the GC removes them."""
        ns = sts["metadata"]["namespace"]
        for claim in pvcs_for(sts, pod["metadata"]["name"], o):
            existing = self.claims.store.get_by_name(ns, claim["metadata"]["name"])
            if existing is None:
                continue
            refs = list(existing["metadata"].get("ownerReferences") or [])
            if any(r.get("uid") == pod["metadata"]["uid"] for r in refs):
                continue
            refs.append(_owner_ref(pod, "v1", "Pod", controller=False))
            try:
                await self.client.patch(
                    PVCS,
                    existing["metadata"]["name"],
                    {"metadata": {"ownerReferences": refs}},
                    ns,
                    patch_type="merge",
                )
            except ApiError as err:
                if not is_not_found(err):
                    raise

    async def _update_status(self, sts: Obj, status: Obj) -> None:
        old = sts.get("status") or {}
        merged = {**old, **status}
        if merged.get("collisionCount") == 0 and "collisionCount" not in old:
            merged.pop("collisionCount")

        def norm(s: Obj) -> Obj:
            return {k: v for k, v in s.items() if v not in (0, None, "", [])}

        if norm(old) == norm(merged):
            return
        body = copy.deepcopy(sts)
        body["status"] = merged
        try:
            await self.client.update_status(STATEFULSETS, body, sts["metadata"]["namespace"])
        except ApiError as err:
            if is_not_found(err):
                return
            raise

    async def _truncate_history(self, sts: Obj, pods: list[Obj], current: Obj, update: Obj) -> None:
        limit = _spec(sts).get("revisionHistoryLimit")
        limit = 10 if limit is None else int(limit)
        live = {current["metadata"]["name"], update["metadata"]["name"]}
        live.update(pod_revision(p) for p in pods)
        old = [r for r in self._owned_revisions(sts) if r["metadata"]["name"] not in live]
        for rev in old[: max(len(old) - limit, 0)]:
            try:
                await self.client.delete(
                    CONTROLLER_REVISIONS, rev["metadata"]["name"], rev["metadata"]["namespace"]
                )
            except ApiError as err:
                if not is_not_found(err):
                    raise


def setup(manager: Manager) -> None:
    reconciler = StatefulSetReconciler(manager)
    controller = manager.add("statefulset", reconciler, workers=2)
    reconciler.setup(controller)
