"""The DaemonSet controller: one pod on every eligible node.

Upstream's ``pkg/controller/daemon``, as users see it through ``kubectl``:

* a node is eligible when it matches the template's ``nodeSelector`` and required node
  affinity and the pod tolerates its NoSchedule/NoExecute taints; DaemonSet pods get
  upstream's automatic tolerations (``node.kubernetes.io/not-ready`` and ``unreachable``
  NoExecute; ``disk-pressure``, ``memory-pressure``, ``pid-pressure``, ``unschedulable``
  NoSchedule; ``network-unavailable`` NoSchedule for hostNetwork pods). An untolerated
  NoSchedule taint only stops new pods; an untolerated NoExecute taint also removes them;
* pods are not bound by the controller: like upstream, each gets a required node affinity
  ``matchFields metadata.name In [<node>]`` and the scheduler binds it;
* pods are labelled ``controller-revision-hash`` (the template's ControllerRevision hash)
  and ``pod-template-generation``; surplus pods on a node, failed pods and pods for nodes
  that left are deleted; "expectations" keep a stale cache from creating twice;
* RollingUpdate replaces old pods within ``maxUnavailable`` (or, with ``maxSurge``, starts
  the new pod first and deletes the old one once the new one is available); OnDelete
  leaves old pods until the user deletes them;
* status: desiredNumberScheduled, currentNumberScheduled, numberMisscheduled, numberReady,
  numberAvailable, numberUnavailable, updatedNumberScheduled, observedGeneration,
  collisionCount; events SuccessfulCreate/SuccessfulDelete/FailedDaemonPod.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from typing import Any

from pyk8s.api.selectors import LabelSelector, label_selector_from_dict
from pyk8s.api.taints import tolerates
from pyk8s.client import (
    NORMAL,
    WARNING,
    ApiError,
    Client,
    EventRecorder,
    SharedInformer,
    is_already_exists,
    is_not_found,
)
from pyk8s.controllers import _history as history
from pyk8s.controllers._resources import CONTROLLER_REVISIONS, DAEMONSETS, NODES, PODS
from pyk8s.controllers.replicaset import (
    Expectations,
    controller_ref,
    is_pod_available,
    is_pod_ready,
    labels_of,
    new_controller_ref,
    parse_time,
)
from pyk8s.controllers.runtime import Controller, Manager, Request, Result, enqueue_owner

log = logging.getLogger(__name__)

Obj = dict[str, Any]

KIND = "DaemonSet"
API_VERSION = "apps/v1"
HASH_LABEL = "controller-revision-hash"
GENERATION_LABEL = "pod-template-generation"

_AUTO_TOLERATIONS: tuple[tuple[str, str], ...] = (
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
)
_NETWORK_UNAVAILABLE = ("node.kubernetes.io/network-unavailable", "NoSchedule")


# ---------------------------------------------------------------------------- matching


def _match_expression(expr: Obj, labels: dict[str, str]) -> bool:
    key = str(expr.get("key", ""))
    op = expr.get("operator")
    values = [str(v) for v in expr.get("values") or []]
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt") and key in labels and len(values) == 1:
        try:
            have, want = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def _match_term(term: Obj, node: Obj) -> bool:
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False
    labels = labels_of(node)
    if not all(_match_expression(e, labels) for e in exprs):
        return False
    field_values = {"metadata.name": str(node["metadata"].get("name", ""))}
    return all(_match_expression(f, field_values) for f in fields)


def node_matches(pod_spec: Obj, node: Obj) -> bool:
    """nodeSelector and required node affinity (upstream's RequiredNodeAffinity)."""
    labels = labels_of(node)
    for k, v in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if required is None:
        return True
    return any(_match_term(t, node) for t in required.get("nodeSelectorTerms") or [])


def with_daemon_tolerations(pod_spec: Obj) -> Obj:
    """The pod spec with upstream's automatic DaemonSet tolerations added."""
    spec = copy.deepcopy(pod_spec)
    tolerations = list(spec.get("tolerations") or [])
    wanted = list(_AUTO_TOLERATIONS)
    if spec.get("hostNetwork"):
        wanted.append(_NETWORK_UNAVAILABLE)
    for key, effect in wanted:
        if any(t.get("key") == key and t.get("effect") == effect for t in tolerations):
            continue
        tolerations.append({"key": key, "operator": "Exists", "effect": effect})
    spec["tolerations"] = tolerations
    return spec


def should_run(pod_spec: Obj, node: Obj) -> tuple[bool, bool]:
    """(should run a new pod, may keep a running one) — nodeShouldRunDaemonPod."""
    if not node_matches(pod_spec, node):
        return False, False
    tolerations = pod_spec.get("tolerations") or []
    run = keep = True
    for taint in (node.get("spec") or {}).get("taints") or ():
        effect = taint.get("effect")
        if effect not in ("NoSchedule", "NoExecute"):
            continue
        if any(tolerates(t, taint) for t in tolerations):
            continue
        run = False
        if effect == "NoExecute":
            keep = False
    return run, keep


def target_node(pod: Obj) -> str:
    """spec.nodeName, or the node the affinity term pins it to (GetTargetNodeName)."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or ():
        for f in term.get("matchFields") or ():
            values = f.get("values") or []
            if f.get("key") == "metadata.name" and f.get("operator") == "In" and len(values) == 1:
                return str(values[0])
    return ""


def pin_to_node(pod_spec: Obj, node_name: str) -> Obj:
    """Replace the required node affinity with ``metadata.name In [node]`` (upstream's
    ReplaceDaemonSetPodNodeNameNodeAffinity)."""
    spec = copy.deepcopy(pod_spec)
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
        "nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}
        ]
    }
    return spec


def _scaled(value: Any, total: int, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


def _selector(ds: Obj) -> LabelSelector:
    try:
        return label_selector_from_dict((ds.get("spec") or {}).get("selector"))
    except ValueError:
        return LabelSelector.nothing()


def _is_terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def _created(pod: Obj) -> float:
    return parse_time(pod["metadata"].get("creationTimestamp")) or 0.0


# ---------------------------------------------------------------------- reconciler


class DaemonSetReconciler:
    def __init__(self, manager: Manager) -> None:
        self.client: Client = manager.client
        self.recorder = EventRecorder(manager.client, component="daemonset-controller")
        self.sets: SharedInformer = manager.informers.informer(DAEMONSETS)
        self.pods: SharedInformer = manager.informers.informer(PODS)
        self.nodes: SharedInformer = manager.informers.informer(NODES)
        self.revisions: SharedInformer = manager.informers.informer(CONTROLLER_REVISIONS)
        self.expectations = Expectations()
        self.controller: Controller | None = None

    def setup(self, controller: Controller) -> None:
        self.controller = controller
        controller.watch(self.sets)
        controller.watch(self.revisions, enqueue_owner(KIND))
        self.pods.add_event_handler(
            on_add=self._pod_added,
            on_update=lambda old, new: self._pod_changed(new),
            on_delete=self._pod_deleted,
        )
        self.nodes.add_event_handler(
            on_add=self._enqueue_all,
            on_update=lambda old, new: self._enqueue_all(new),
            on_delete=self._enqueue_all,
        )

    def _enqueue(self, namespace: str, name: str) -> None:
        if self.controller is not None and name:
            self.controller.queue.add(Request(namespace, name))

    def _enqueue_all(self, _node: Obj) -> None:
        for ds in self.sets.store.list():
            self._enqueue(ds["metadata"].get("namespace", ""), ds["metadata"]["name"])

    def _owner_key(self, pod: Obj) -> tuple[str, str] | None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != KIND:
            return None
        return pod["metadata"].get("namespace", ""), str(ref.get("name", ""))

    def _pod_added(self, pod: Obj) -> None:
        owner = self._owner_key(pod)
        if owner is not None:
            self.expectations.creation_observed(f"{owner[0]}/{owner[1]}")
            self._enqueue(*owner)

    def _pod_changed(self, pod: Obj) -> None:
        owner = self._owner_key(pod)
        if owner is not None:
            self._enqueue(*owner)

    def _pod_deleted(self, pod: Obj) -> None:
        owner = self._owner_key(pod)
        if owner is not None:
            key = f"{owner[0]}/{owner[1]}"
            meta = pod["metadata"]
            self.expectations.deletion_observed(key, f"{meta.get('namespace')}/{meta['name']}")
            self._enqueue(*owner)

    # -- reconcile

    async def reconcile(self, request: Request) -> Result | None:
        key = str(request)
        cached = self.sets.store.get_by_name(request.namespace, request.name)
        if cached is None:
            self.expectations.delete(key)
            return None
        ds = copy.deepcopy(cached)
        if ds["metadata"].get("deletionTimestamp"):
            return None
        uid = ds["metadata"]["uid"]
        pods = [
            p
            for p in self.pods.store.by_index("namespace", request.namespace)
            if (controller_ref(p) or {}).get("uid") == uid
        ]
        current, collision = await self._construct_history(ds)
        hash_ = labels_of(current).get(HASH_LABEL, "")
        by_node: dict[str, list[Obj]] = {}
        for p in pods:
            by_node.setdefault(target_node(p), []).append(p)
        nodes = self.nodes.store.list()
        template_spec = with_daemon_tolerations(
            ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
        )
        if self.expectations.satisfied(key):
            acted = await self._manage(key, ds, nodes, by_node, template_spec, hash_)
            strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
            if not acted and strategy.get("type", "RollingUpdate") == "RollingUpdate":
                await self._rolling_update(key, ds, nodes, by_node, template_spec, hash_)
        await self._cleanup_history(ds, pods, current)
        status = self._status(ds, nodes, by_node, template_spec, hash_, collision)
        await self._update_status(ds, status)
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        if min_ready > 0 and status["numberAvailable"] != status["numberReady"]:
            return Result(requeue_after=float(min_ready))
        return None

    async def _construct_history(self, ds: Obj) -> tuple[Obj, int | None]:
        """The ControllerRevision of the current template (created or renumbered)."""
        uid = ds["metadata"]["uid"]
        ns = ds["metadata"]["namespace"]
        revs = history.sort_revisions(
            [
                r
                for r in self.revisions.store.by_index("namespace", ns)
                if (controller_ref(r) or {}).get("uid") == uid
            ]
        )
        collision: int | None = (ds.get("status") or {}).get("collisionCount")
        next_number = (history.revision_number(revs[-1]) + 1) if revs else 1
        ref = new_controller_ref(ds, API_VERSION, KIND)
        tlabels = dict(
            (((ds.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels")
            or {}
        )
        wanted = history.new_revision(ds, ref, tlabels, next_number, collision)
        h = wanted["metadata"]["labels"].pop(history.REVISION_HASH_LABEL)
        wanted["metadata"]["labels"][HASH_LABEL] = h
        equal = [r for r in revs if history.equal_revision(r, wanted)]
        if equal:
            cur = equal[-1]
            if cur is not revs[-1]:
                body = copy.deepcopy(cur)
                body["revision"] = next_number
                cur = await self.client.update(CONTROLLER_REVISIONS, body, ns)
            return cur, collision
        try:
            created: Obj = await self.client.create(CONTROLLER_REVISIONS, wanted, ns)
            return created, collision
        except ApiError as err:
            if not is_already_exists(err):
                raise
        existing = await self.client.get(CONTROLLER_REVISIONS, wanted["metadata"]["name"], ns)
        if history.equal_revision(existing, wanted):
            return existing, collision
        collision = int(collision or 0) + 1
        body = copy.deepcopy(ds)
        body.setdefault("status", {})["collisionCount"] = collision
        await self.client.update_status(DAEMONSETS, body, ns)
        raise ApiError(409, "AlreadyExists", "controller revision hash collision", {})

    async def _manage(
        self,
        key: str,
        ds: Obj,
        nodes: list[Obj],
        by_node: dict[str, list[Obj]],
        spec: Obj,
        hash_: str,
    ) -> bool:
        """Create and delete so that each eligible node runs one pod; True if it acted."""
        node_names = {n["metadata"]["name"] for n in nodes}
        to_create: list[str] = []
        to_delete: list[Obj] = []
        surge = self._max_surge(ds, len(nodes)) > 0
        for node in nodes:
            name = node["metadata"]["name"]
            run, keep = should_run(spec, node)
            here = [p for p in by_node.get(name, []) if not _is_terminating(p)]
            if run and not here:
                to_create.append(name)
            elif keep and here:
                alive = []
                for p in here:
                    if (p.get("status") or {}).get("phase") == "Failed":
                        self.recorder.event(
                            ds,
                            WARNING,
                            "FailedDaemonPod",
                            f"Found failed daemon pod {p['metadata']['namespace']}/"
                            f"{p['metadata']['name']} on node {name}, will try to kill it",
                        )
                        to_delete.append(p)
                    else:
                        alive.append(p)
                if len(alive) > 1 and not (surge and self._old_and_new(alive, hash_)):
                    alive.sort(key=_created)
                    to_delete.extend(alive[1:])
            elif not keep and here:
                to_delete.extend(here)
        # pods whose node left the cluster
        for name, pods in by_node.items():
            if name not in node_names:
                to_delete.extend(p for p in pods if not _is_terminating(p))
        await self._sync_nodes(key, ds, to_create, to_delete, spec, hash_)
        return bool(to_create or to_delete)

    @staticmethod
    def _old_and_new(pods: list[Obj], hash_: str) -> bool:
        return len(pods) == 2 and sum(labels_of(p).get(HASH_LABEL) == hash_ for p in pods) == 1

    async def _sync_nodes(
        self,
        key: str,
        ds: Obj,
        to_create: list[str],
        to_delete: list[Obj],
        spec: Obj,
        hash_: str,
    ) -> None:
        if to_delete:
            self.expectations.expect_deletions(
                key, [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in to_delete]
            )
            for p in to_delete:
                await self._delete_pod(key, ds, p)
        if to_create:
            self.expectations.expect_creations(key, len(to_create))
            for node in to_create:
                try:
                    await self._create_pod(ds, node, spec, hash_)
                except ApiError:
                    self.expectations.creation_observed(key)
                    raise

    async def _create_pod(self, ds: Obj, node: str, spec: Obj, hash_: str) -> None:
        template = (ds.get("spec") or {}).get("template") or {}
        tmeta = template.get("metadata") or {}
        labels = dict(tmeta.get("labels") or {})
        labels[HASH_LABEL] = hash_
        labels[GENERATION_LABEL] = str(ds["metadata"].get("generation") or 1)
        meta: Obj = {
            "generateName": f"{ds['metadata']['name']}-",
            "namespace": ds["metadata"]["namespace"],
            "labels": labels,
            "ownerReferences": [new_controller_ref(ds, API_VERSION, KIND)],
        }
        if tmeta.get("annotations"):
            meta["annotations"] = dict(tmeta["annotations"])
        if tmeta.get("finalizers"):
            meta["finalizers"] = list(tmeta["finalizers"])
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": pin_to_node(spec, node),
        }
        try:
            pod = await self.client.create(PODS, body, ds["metadata"]["namespace"])
        except ApiError as err:
            self.recorder.event(ds, WARNING, "FailedCreate", f"Error creating: {err.message}")
            raise
        self.recorder.event(
            ds, NORMAL, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}"
        )

    async def _delete_pod(self, key: str, ds: Obj, pod: Obj) -> None:
        name = pod["metadata"]["name"]
        try:
            await self.client.delete(PODS, name, pod["metadata"]["namespace"])
        except ApiError as err:
            self.expectations.deletion_observed(key, f"{pod['metadata']['namespace']}/{name}")
            if is_not_found(err):
                return
            self.recorder.event(ds, WARNING, "FailedDelete", f"Error deleting: {err.message}")
            raise
        self.recorder.event(ds, NORMAL, "SuccessfulDelete", f"Deleted pod: {name}")

    # -- rolling update

    def _max_surge(self, ds: Obj, total: int) -> int:
        strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return 0
        return _scaled((strategy.get("rollingUpdate") or {}).get("maxSurge"), total, 0)

    def _max_unavailable(self, ds: Obj, total: int) -> int:
        strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
        rolling = strategy.get("rollingUpdate") or {}
        value = _scaled(rolling.get("maxUnavailable"), total, 1)
        if value == 0 and self._max_surge(ds, total) == 0:
            value = 1
        return value

    async def _rolling_update(
        self,
        key: str,
        ds: Obj,
        nodes: list[Obj],
        by_node: dict[str, list[Obj]],
        spec: Obj,
        hash_: str,
    ) -> None:
        """Upstream's rollingUpdate: replace old pods node by node within the budget."""
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        now = time.time()
        eligible = [n["metadata"]["name"] for n in nodes if should_run(spec, n)[0]]
        total = len(eligible)
        max_surge = self._max_surge(ds, total)
        max_unavailable = self._max_unavailable(ds, total)
        to_delete: list[Obj] = []
        to_create: list[str] = []
        if max_surge == 0:
            unavailable = 0
            candidates: list[Obj] = []
            for name in eligible:
                pods = [p for p in by_node.get(name, []) if not _is_terminating(p)]
                if not pods:
                    unavailable += 1
                    continue
                pod = pods[0]
                available = is_pod_available(pod, min_ready, now)
                if not available:
                    unavailable += 1
                if labels_of(pod).get(HASH_LABEL) == hash_:
                    continue
                if not available:
                    to_delete.append(pod)  # an old pod that is down anyway
                else:
                    candidates.append(pod)
            budget = max_unavailable - unavailable
            to_delete.extend(candidates[: max(budget, 0)])
        else:
            surging = 0
            for name in eligible:
                pods = [p for p in by_node.get(name, []) if not _is_terminating(p)]
                new = [p for p in pods if labels_of(p).get(HASH_LABEL) == hash_]
                old = [p for p in pods if labels_of(p).get(HASH_LABEL) != hash_]
                if old and new:
                    if is_pod_available(new[0], min_ready, now):
                        to_delete.extend(old)
                    else:
                        surging += 1
            for name in eligible:
                pods = [p for p in by_node.get(name, []) if not _is_terminating(p)]
                if not pods or any(labels_of(p).get(HASH_LABEL) == hash_ for p in pods):
                    continue
                if not is_pod_available(pods[0], min_ready, now):
                    to_delete.extend(pods)
                elif surging < max_surge:
                    to_create.append(name)
                    surging += 1
        if to_delete or to_create:
            await self._sync_nodes(key, ds, to_create, to_delete, spec, hash_)

    # -- status and history

    def _status(
        self,
        ds: Obj,
        nodes: list[Obj],
        by_node: dict[str, list[Obj]],
        spec: Obj,
        hash_: str,
        collision: int | None,
    ) -> Obj:
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        now = time.time()
        desired = current = misscheduled = ready = available = updated = 0
        for node in nodes:
            run, _keep = should_run(spec, node)
            pods = [p for p in by_node.get(node["metadata"]["name"], []) if not _is_terminating(p)]
            if run:
                desired += 1
                if pods:
                    current += 1
                    pods.sort(key=_created)
                    pod = pods[0]
                    if is_pod_ready(pod):
                        ready += 1
                        if is_pod_available(pod, min_ready, now):
                            available += 1
                    if any(labels_of(p).get(HASH_LABEL) == hash_ for p in pods):
                        updated += 1
            elif pods:
                misscheduled += 1
        status: Obj = {
            "currentNumberScheduled": current,
            "numberMisscheduled": misscheduled,
            "desiredNumberScheduled": desired,
            "numberReady": ready,
            "observedGeneration": int(ds["metadata"].get("generation") or 0),
            "updatedNumberScheduled": updated,
            "numberAvailable": available,
            "numberUnavailable": desired - available,
        }
        if collision is not None:
            status["collisionCount"] = collision
        return status

    async def _update_status(self, ds: Obj, status: Obj) -> None:
        old = ds.get("status") or {}
        merged = {**old, **status}
        for k in ("numberAvailable", "numberUnavailable", "updatedNumberScheduled"):
            if merged.get(k) == 0:
                merged.pop(k)

        def norm(s: Obj) -> Obj:
            return {k: v for k, v in s.items() if v not in (0, None, "", [])}

        if norm(old) == norm(merged):
            return
        body = copy.deepcopy(ds)
        body["status"] = merged
        try:
            await self.client.update_status(DAEMONSETS, body, ds["metadata"]["namespace"])
        except ApiError as err:
            if not is_not_found(err):
                raise

    async def _cleanup_history(self, ds: Obj, pods: list[Obj], current: Obj) -> None:
        limit = (ds.get("spec") or {}).get("revisionHistoryLimit")
        limit = 10 if limit is None else int(limit)
        uid = ds["metadata"]["uid"]
        live = {labels_of(p).get(HASH_LABEL) for p in pods}
        old = [
            r
            for r in history.sort_revisions(
                [
                    r
                    for r in self.revisions.store.by_index("namespace", ds["metadata"]["namespace"])
                    if (controller_ref(r) or {}).get("uid") == uid
                ]
            )
            if r["metadata"]["name"] != current["metadata"]["name"]
            and labels_of(r).get(HASH_LABEL) not in live
        ]
        for rev in old[: max(len(old) - limit, 0)]:
            try:
                await self.client.delete(
                    CONTROLLER_REVISIONS, rev["metadata"]["name"], rev["metadata"]["namespace"]
                )
            except ApiError as err:
                if not is_not_found(err):
                    raise


def setup(manager: Manager) -> None:
    reconciler = DaemonSetReconciler(manager)
    controller = manager.add("daemonset", reconciler, workers=2)
    reconciler.setup(controller)
