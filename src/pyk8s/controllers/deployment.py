"""The Deployment controller: roll a pod template out through ReplicaSets.

Upstream's ``pkg/controller/deployment``, as ``kubectl rollout status|history|undo|pause|
resume|restart`` and ``kubectl describe`` see it:

* one ReplicaSet per template, named ``<deployment>-<pod-template-hash>``, with the
  ``pod-template-hash`` label on its selector, template and pods; claimed by selector
  (adopted/released) with controller ownerReferences;
* ``deployment.kubernetes.io/revision`` on the ReplicaSets and the Deployment (max old
  revision + 1 for the template being rolled out; a reused ReplicaSet — a rollback —
  remembers its former revisions in ``deployment.kubernetes.io/revision-history``),
  ``desired-replicas``/``max-replicas`` annotations for proportional scaling;
* RollingUpdate within ``maxSurge``/``maxUnavailable`` (int or percent; surge rounds up,
  unavailable rounds down, both zero means one unavailable), Recreate (old pods gone
  before new ones are created), ``paused`` (scale only), ``revisionHistoryLimit`` cleanup,
  proportional scaling of several active ReplicaSets;
* status counts and the Available/Progressing conditions with upstream's reasons
  (NewReplicaSetCreated, FoundNewReplicaSet, ReplicaSetUpdated, NewReplicaSetAvailable,
  ProgressDeadlineExceeded, DeploymentPaused/Resumed, MinimumReplicasAvailable/
  Unavailable) and ``ScalingReplicaSet`` events.

Rollback is client-side in apps/v1 (``kubectl rollout undo`` patches the old
ReplicaSet's template back into the Deployment): the controller then finds that
ReplicaSet as the new one and gives it the next revision.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from typing import Any

import orjson

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
from pyk8s.controllers._resources import DEPLOYMENTS, PODS, REPLICASETS
from pyk8s.controllers.replicaset import (
    controller_ref,
    format_time,
    labels_of,
    new_controller_ref,
    parse_time,
)
from pyk8s.controllers.runtime import Controller, Manager, Request, Result

log = logging.getLogger(__name__)

Obj = dict[str, Any]

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_SKIP_COPY = frozenset(
    {LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO}
)
MAX_REV_HISTORY_CHARS = 2000

# condition reasons (upstream's deploymentutil)
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
RS_CREATE_ERROR = "ReplicaSetCreateError"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"

_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_MAX_INT32 = 2**31 - 1


# ----------------------------------------------------------------------- small helpers


def _spec(obj: Obj) -> Obj:
    spec: Obj = obj.get("spec") or {}
    return spec


def _status(obj: Obj) -> Obj:
    status: Obj = obj.get("status") or {}
    return status


def _annotations(obj: Obj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def replicas(obj: Obj) -> int:
    return int(_spec(obj).get("replicas", 1) or 0)


def revision(rs: Obj) -> int:
    try:
        return int(_annotations(rs).get(REVISION, "0"))
    except ValueError:
        return 0


def _created(obj: Obj) -> tuple[float, str]:
    meta = obj.get("metadata") or {}
    return (parse_time(meta.get("creationTimestamp")) or 0.0, str(meta.get("name", "")))


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """An int-or-percent against ``total`` (upstream's GetScaledValueFromIntOrPercent)."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    s = str(value)
    if not s.endswith("%"):
        return int(s)
    v = int(s[:-1]) * total
    return -(-v // 100) if round_up else v // 100


def resolve_fenceposts(d: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as numbers: surge rounds up, unavailable down; never
    both zero."""
    rolling = (_spec(d).get("strategy") or {}).get("rollingUpdate") or {}
    desired = replicas(d)
    surge = scaled_value(rolling.get("maxSurge", "25%"), desired, True)
    unavailable = scaled_value(rolling.get("maxUnavailable", "25%"), desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def is_rolling(d: Obj) -> bool:
    strategy: Obj = _spec(d).get("strategy") or {}
    return bool(strategy.get("type", "RollingUpdate") == "RollingUpdate")


def max_surge(d: Obj) -> int:
    return resolve_fenceposts(d)[0] if is_rolling(d) else 0


def max_unavailable(d: Obj) -> int:
    if not is_rolling(d) or replicas(d) == 0:
        return 0
    return min(resolve_fenceposts(d)[1], replicas(d))


def _prune(value: Any) -> Any:
    """Drop empty values (None, "", False, {}, []) as Go's typed equality ignores them:
    a template a client sends back with ``resources: {}`` is the same template."""
    if isinstance(value, dict):
        out = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, "", False, {}, [])}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def _template_without_hash(template: Obj) -> Obj:
    t: Obj = _prune(copy.deepcopy(template or {}))
    meta = t.get("metadata") or {}
    labels = dict(meta.get("labels") or {})
    labels.pop(HASH_LABEL, None)
    if labels:
        meta["labels"] = labels
    else:
        meta.pop("labels", None)
    meta.pop("creationTimestamp", None)
    if meta:
        t["metadata"] = meta
    else:
        t.pop("metadata", None)
    return t


def equal_ignore_hash(a: Obj, b: Obj) -> bool:
    return _template_without_hash(a) == _template_without_hash(b)


def _fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def compute_hash(template: Obj, collision_count: int | None) -> str:
    """A stable short hash of the template (fnv-32a, encoded with upstream's alphabet)."""
    data = orjson.dumps(_template_without_hash(template), option=orjson.OPT_SORT_KEYS)
    if collision_count is not None:
        data += str(collision_count).encode()
    digits = str(_fnv32a(data))
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in digits)


def has_progress_deadline(d: Obj) -> bool:
    pds = _spec(d).get("progressDeadlineSeconds")
    return pds is not None and int(pds) != _MAX_INT32


def get_condition(status: Obj, ctype: str) -> Obj | None:
    for c in status.get("conditions") or ():
        if c.get("type") == ctype:
            return dict(c)
    return None


def new_condition(ctype: str, status: str, reason: str, message: str) -> Obj:
    now = format_time()
    return {
        "type": ctype,
        "status": status,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


def set_condition(status: Obj, cond: Obj) -> None:
    current = get_condition(status, cond["type"])
    if current and current["status"] == cond["status"] and current.get("reason") == cond["reason"]:
        return
    if current and current["status"] == cond["status"]:
        cond["lastTransitionTime"] = current.get("lastTransitionTime")
    remove_condition(status, cond["type"])
    status.setdefault("conditions", []).append(cond)


def remove_condition(status: Obj, ctype: str) -> None:
    conds = [c for c in status.get("conditions") or () if c.get("type") != ctype]
    if conds:
        status["conditions"] = conds
    else:
        status.pop("conditions", None)


def _normalized_status(status: Obj) -> Obj:
    return {k: v for k, v in status.items() if v not in (0, None, [], {})}


def _rv(obj: Obj) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0


def active(rss: list[Obj]) -> list[Obj]:
    return [rs for rs in rss if replicas(rs) > 0]


def _available(rs: Obj) -> int:
    return int(_status(rs).get("availableReplicas") or 0)


def deployment_complete(d: Obj, status: Obj) -> bool:
    want = replicas(d)
    return (
        int(status.get("updatedReplicas") or 0) == want
        and int(status.get("replicas") or 0) == want
        and int(status.get("availableReplicas") or 0) == want
        and int(status.get("observedGeneration") or 0) >= int(d["metadata"].get("generation") or 0)
    )


def deployment_progressing(d: Obj, new: Obj) -> bool:
    old = _status(d)

    def g(s: Obj, k: str) -> int:
        return int(s.get(k) or 0)

    old_old = g(old, "replicas") - g(old, "updatedReplicas")
    new_old = g(new, "replicas") - g(new, "updatedReplicas")
    return (
        g(new, "updatedReplicas") > g(old, "updatedReplicas")
        or new_old < old_old
        or g(new, "readyReplicas") > g(old, "readyReplicas")
        or g(new, "availableReplicas") > g(old, "availableReplicas")
    )


def deployment_timed_out(d: Obj, status: Obj) -> bool:
    if not has_progress_deadline(d):
        return False
    cond = get_condition(status, "Progressing")
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    if since is None:
        return False
    return since + int(_spec(d)["progressDeadlineSeconds"]) < time.time()


def _set_replicas_annotations(rs: Obj, desired: int, maximum: int) -> bool:
    ann = rs["metadata"].setdefault("annotations", {})
    changed = False
    for key, value in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(maximum))):
        if ann.get(key) != value:
            ann[key] = value
            changed = True
    return changed


def _annotation_int(rs: Obj, key: str) -> int | None:
    try:
        return int(_annotations(rs)[key])
    except (KeyError, ValueError):
        return None


def set_new_rs_annotations(d: Obj, rs: Obj, new_revision: int, exists: bool) -> bool:
    """Copy the Deployment's annotations and move the revision (upstream's
    SetNewReplicaSetAnnotations); True when something changed."""
    ann = rs["metadata"].setdefault("annotations", {})
    changed = False
    for k, v in _annotations(d).items():
        if k in _SKIP_COPY or ann.get(k) == v:
            continue
        ann[k] = v
        changed = True
    old_raw = ann.get(REVISION)
    try:
        old_rev = int(old_raw) if old_raw is not None else 0
    except ValueError:
        return changed
    if old_rev < new_revision:
        ann[REVISION] = str(new_revision)
        changed = True
        if old_raw is not None:
            history = ann.get(REVISION_HISTORY, "")
            if not history:
                ann[REVISION_HISTORY] = old_raw
            else:
                olds = history.split(",")
                total = len(history) + len(old_raw) + 1
                start = 0
                while total > MAX_REV_HISTORY_CHARS and start < len(olds):
                    total -= len(olds[start]) + 1
                    start += 1
                if total <= MAX_REV_HISTORY_CHARS:
                    ann[REVISION_HISTORY] = ",".join([*olds[start:], old_raw])
    if not exists and _set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)):
        changed = True
    return changed


def new_rs_new_replicas(d: Obj, all_rss: list[Obj], new_rs: Obj) -> int:
    if not is_rolling(d):
        return replicas(d)
    current_new = replicas(new_rs)
    if current_new == replicas(d):
        return current_new
    surge = max_surge(d)
    current = sum(replicas(rs) for rs in all_rss)
    max_total = replicas(d) + surge
    if current >= max_total:
        return current_new
    scale_up = min(max_total - current, replicas(d) - current_new)
    return current_new + scale_up


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    if rs is None:
        return False
    return (
        _annotation_int(rs, DESIRED_REPLICAS) == replicas(d)
        and replicas(rs) == replicas(d)
        and _available(rs) == replicas(d)
    )


def _proportion(d: Obj, rs: Obj, to_add: int, added: int) -> int:
    if replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    if replicas(d) == 0:
        fraction = -replicas(rs)
    else:
        deployment_replicas = replicas(d) + max_surge(d)
        annotated = _annotation_int(rs, MAX_REPLICAS)
        if annotated is None:
            annotated = int(_status(d).get("replicas") or 0)
        if annotated == 0:
            fraction = 0
        else:
            size = replicas(rs) * deployment_replicas / annotated
            fraction = math.floor(size + 0.5) - replicas(rs)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


# ---------------------------------------------------------------------------- reconciler


class DeploymentReconciler:
    def __init__(self, manager: Manager) -> None:
        self.client: Client = manager.client
        self.recorder = EventRecorder(manager.client, component="deployment-controller")
        self.deployments: SharedInformer = manager.informers.informer(DEPLOYMENTS)
        self.rss: SharedInformer = manager.informers.informer(REPLICASETS)
        self.pods: SharedInformer = manager.informers.informer(PODS)
        self.controller: Controller | None = None
        #: ReplicaSets written by syncs, by uid, newer than the cache may yet be
        self._written: dict[str, Obj] = {}

    # -- wiring

    def setup(self, controller: Controller) -> None:
        self.controller = controller
        controller.watch(self.deployments)
        self.rss.add_event_handler(
            on_add=self._rs_event,
            on_update=self._rs_updated,
            on_delete=self._rs_deleted,
        )
        self.pods.add_event_handler(on_delete=self._pod_deleted)

    def _enqueue(self, namespace: str, name: str) -> None:
        if self.controller is not None and name:
            self.controller.queue.add(Request(namespace, name))

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        self._rs_event(old)
        self._rs_event(new)

    def _rs_deleted(self, rs: Obj) -> None:
        self._written.pop(rs["metadata"].get("uid", ""), None)
        self._rs_event(rs)

    def _rs_event(self, rs: Obj) -> None:
        ns = rs["metadata"].get("namespace", "")
        ref = controller_ref(rs)
        if ref is not None:
            if ref.get("kind") == "Deployment":
                self._enqueue(ns, str(ref.get("name", "")))
            return
        labels = labels_of(rs)
        for d in self.deployments.store.list():
            if d["metadata"].get("namespace") == ns and self._selector(d).matches(labels):
                self._enqueue(ns, d["metadata"]["name"])

    def _pod_deleted(self, pod: Obj) -> None:
        ns = pod["metadata"].get("namespace", "")
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.rss.store.get_by_name(ns, str(ref.get("name", "")))
        if rs is None:
            return
        owner = controller_ref(rs)
        if owner is not None and owner.get("kind") == "Deployment":
            self._enqueue(ns, str(owner.get("name", "")))

    @staticmethod
    def _selector(d: Obj) -> LabelSelector:
        try:
            return label_selector_from_dict(_spec(d).get("selector"))
        except ValueError:
            return LabelSelector.nothing()

    # -- writes

    async def _update_rs(self, rs: Obj) -> Obj:
        out: Obj = await self.client.update(REPLICASETS, rs, rs["metadata"]["namespace"])
        self._wrote(out)
        return out

    def _wrote(self, rs: Obj) -> None:
        """Remember a ReplicaSet we just wrote until the cache has caught up with it."""
        self._written[rs["metadata"]["uid"]] = rs

    async def _update_status(self, d: Obj, status: Obj) -> None:
        body = copy.deepcopy(d)
        body["status"] = status
        out = await self.client.update_status(DEPLOYMENTS, body, d["metadata"]["namespace"])
        d["metadata"] = out["metadata"]
        d["status"] = out.get("status") or {}

    async def _set_revision(self, d: Obj, rev: str) -> None:
        """SetDeploymentRevision: the Deployment's revision annotation follows its new RS."""
        if _annotations(d).get(REVISION) == rev:
            return
        out = await self.client.patch(
            DEPLOYMENTS,
            d["metadata"]["name"],
            {
                "metadata": {
                    "annotations": {REVISION: rev},
                    "resourceVersion": d["metadata"].get("resourceVersion"),
                }
            },
            d["metadata"]["namespace"],
            patch_type="merge",
        )
        d["metadata"] = out["metadata"]

    # -- reconcile

    async def reconcile(self, request: Request) -> Result | None:
        cached = self.deployments.store.get_by_name(request.namespace, request.name)
        if cached is None:
            return None
        d = copy.deepcopy(cached)
        try:
            return await self._sync(d)
        except ApiError as err:
            if is_conflict(err) or is_not_found(err):
                return Result(requeue=True)
            raise

    async def _sync(self, d: Obj) -> Result | None:
        selector = self._selector(d)
        if selector.empty:
            self.recorder.event(
                d,
                WARNING,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            )
            gen = int(d["metadata"].get("generation") or 0)
            if int(_status(d).get("observedGeneration") or 0) < gen:
                status = copy.deepcopy(_status(d))
                status["observedGeneration"] = gen
                await self._update_status(d, status)
            return None
        rs_list = await self._claim_replicasets(d, selector)
        if d["metadata"].get("deletionTimestamp"):
            return await self._sync_status_only(d, rs_list)
        await self._check_paused_conditions(d)
        if _spec(d).get("paused"):
            return await self._scale_sync(d, rs_list)
        if await self._is_scaling_event(d, rs_list):
            return await self._scale_sync(d, rs_list)
        if (_spec(d).get("strategy") or {}).get("type") == "Recreate":
            return await self._rollout_recreate(d, rs_list)
        return await self._rollout_rolling(d, rs_list)

    # -- claiming

    async def _claim_replicasets(self, d: Obj, selector: LabelSelector) -> list[Obj]:
        ns = d["metadata"]["namespace"]
        uid = d["metadata"]["uid"]
        deleting = bool(d["metadata"].get("deletionTimestamp"))
        claimed: list[Obj] = []
        for cached in self.rss.store.list():
            if cached["metadata"].get("namespace") != ns:
                continue
            written = self._written.get(cached["metadata"].get("uid", ""))
            newer = written if written is not None and _rv(written) > _rv(cached) else cached
            rs = copy.deepcopy(newer)
            ref = controller_ref(rs)
            matches = selector.matches(labels_of(rs))
            if ref is not None:
                if ref.get("uid") != uid:
                    continue
                if matches:
                    claimed.append(rs)
                elif not deleting:
                    refs = [
                        r
                        for r in rs["metadata"].get("ownerReferences") or []
                        if r.get("uid") != uid
                    ]
                    await self._patch_refs(rs, refs or None)
                continue
            if deleting or not matches or rs["metadata"].get("deletionTimestamp"):
                continue
            refs = [
                *(rs["metadata"].get("ownerReferences") or []),
                new_controller_ref(d, "apps/v1", "Deployment"),
            ]
            adopted = await self._patch_refs(rs, refs)
            if adopted is not None:
                claimed.append(adopted)
        return claimed

    async def _patch_refs(self, rs: Obj, refs: list[Obj] | None) -> Obj | None:
        patch = {
            "metadata": {
                "ownerReferences": refs,
                "resourceVersion": rs["metadata"].get("resourceVersion"),
            }
        }
        try:
            out: Obj = await self.client.patch(
                REPLICASETS,
                rs["metadata"]["name"],
                patch,
                rs["metadata"]["namespace"],
                patch_type="merge",
            )
            return out
        except ApiError as err:
            if is_not_found(err) or is_conflict(err):
                return None
            raise

    # -- new and old replica sets

    def _find_new_and_old(self, d: Obj, rs_list: list[Obj]) -> tuple[Obj | None, list[Obj]]:
        template = _spec(d).get("template") or {}
        ordered = sorted(rs_list, key=_created)
        new_rs = next(
            (rs for rs in ordered if equal_ignore_hash(_spec(rs).get("template") or {}, template)),
            None,
        )
        olds = [
            rs
            for rs in rs_list
            if new_rs is None or rs["metadata"]["uid"] != new_rs["metadata"]["uid"]
        ]
        return new_rs, olds

    async def _get_all_rss_and_sync_revision(
        self, d: Obj, rs_list: list[Obj], create: bool
    ) -> tuple[Obj | None, list[Obj]]:
        new_rs, olds = self._find_new_and_old(d, rs_list)
        new_rs = await self._get_new_rs(d, rs_list, new_rs, olds, create)
        return new_rs, olds

    async def _get_new_rs(
        self, d: Obj, rs_list: list[Obj], existing: Obj | None, olds: list[Obj], create: bool
    ) -> Obj | None:
        max_old = max((revision(rs) for rs in olds), default=0)
        new_revision = max_old + 1
        if existing is not None:
            rs = copy.deepcopy(existing)
            annotations_updated = set_new_rs_annotations(d, rs, new_revision, True)
            min_ready = int(_spec(d).get("minReadySeconds") or 0)
            min_ready_changed = int(_spec(rs).get("minReadySeconds") or 0) != min_ready
            if annotations_updated or min_ready_changed:
                rs["spec"]["minReadySeconds"] = min_ready
                rs = await self._update_rs(rs)
            await self._set_revision(d, _annotations(rs).get(REVISION, ""))
            status = copy.deepcopy(_status(d))
            if has_progress_deadline(d) and get_condition(status, "Progressing") is None:
                msg = f'Found new replica set "{rs["metadata"]["name"]}"'
                set_condition(status, new_condition("Progressing", "True", FOUND_NEW_RS, msg))
                await self._update_status(d, status)
            return rs
        if not create:
            return None

        template = copy.deepcopy(_spec(d).get("template") or {})
        collision = _status(d).get("collisionCount")
        pod_hash = compute_hash(template, collision)
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), HASH_LABEL: pod_hash}
        selector = copy.deepcopy(_spec(d).get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: pod_hash}
        ns = d["metadata"]["namespace"]
        new_rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{d['metadata']['name']}-{pod_hash}",
                "namespace": ns,
                "ownerReferences": [new_controller_ref(d, "apps/v1", "Deployment")],
                "labels": dict(tmeta["labels"]),
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": int(_spec(d).get("minReadySeconds") or 0),
                "selector": selector,
                "template": template,
            },
        }
        all_rss = [*olds, new_rs]
        count = new_rs_new_replicas(d, all_rss, new_rs)
        new_rs["spec"]["replicas"] = count
        set_new_rs_annotations(d, new_rs, new_revision, False)
        already_exists = False
        try:
            created: Obj = await self.client.create(REPLICASETS, new_rs, ns)
        except ApiError as err:
            if is_already_exists(err):
                found = await self.client.get(REPLICASETS, new_rs["metadata"]["name"], ns)
                ref = controller_ref(found)
                if (
                    ref is not None
                    and ref.get("uid") == d["metadata"]["uid"]
                    and equal_ignore_hash(
                        _spec(found).get("template") or {}, _spec(d).get("template") or {}
                    )
                ):
                    created = found
                    already_exists = True
                else:
                    # a hash collision: bump collisionCount and retry with a new name
                    status = copy.deepcopy(_status(d))
                    status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
                    await self._update_status(d, status)
                    raise
            else:
                name = new_rs["metadata"]["name"]
                msg = f'Failed to create new replica set "{name}": {err.message}'
                if has_progress_deadline(d):
                    status = copy.deepcopy(_status(d))
                    set_condition(
                        status, new_condition("Progressing", "False", RS_CREATE_ERROR, msg)
                    )
                    await self._update_status(d, status)
                self.recorder.event(d, WARNING, RS_CREATE_ERROR, msg)
                raise
        self._wrote(created)
        if not already_exists and count > 0:
            self.recorder.event(
                d,
                NORMAL,
                "ScalingReplicaSet",
                f"Scaled up replica set {created['metadata']['name']} to {count}",
            )
        await self._set_revision(d, str(new_revision))
        if not already_exists and has_progress_deadline(d):
            status = copy.deepcopy(_status(d))
            msg = f'Created new replica set "{created["metadata"]["name"]}"'
            set_condition(status, new_condition("Progressing", "True", NEW_RS_CREATED, msg))
            await self._update_status(d, status)
        return created

    # -- scaling

    async def _scale_rs(self, rs: Obj, new_scale: int, d: Obj) -> tuple[bool, Obj]:
        size_changes = replicas(rs) != new_scale
        desired, maximum = replicas(d), replicas(d) + max_surge(d)
        annotations_change = (
            _annotation_int(rs, DESIRED_REPLICAS) != desired
            or _annotation_int(rs, MAX_REPLICAS) != maximum
        )
        if not size_changes and not annotations_change:
            return False, rs
        old_scale = replicas(rs)
        body = copy.deepcopy(rs)
        body["spec"]["replicas"] = new_scale
        _set_replicas_annotations(body, desired, maximum)
        out = await self._update_rs(body)
        if size_changes:
            op = "up" if old_scale < new_scale else "down"
            self.recorder.event(
                d,
                NORMAL,
                "ScalingReplicaSet",
                f"Scaled {op} replica set {rs['metadata']['name']} to {new_scale} from {old_scale}",
            )
        return size_changes, out

    async def _scale_and_record(self, rs: Obj, new_scale: int, d: Obj) -> tuple[bool, Obj]:
        if replicas(rs) == new_scale:
            return False, rs
        return await self._scale_rs(rs, new_scale, d)

    async def _scale(self, d: Obj, new_rs: Obj | None, olds: list[Obj]) -> None:
        """Proportional scaling (upstream's DeploymentController.scale)."""
        candidates = active([*([new_rs] if new_rs else []), *olds])
        if len(candidates) <= 1:
            target = (
                candidates[0]
                if candidates
                else (new_rs or (max(olds, key=_created) if olds else None))
            )
            if target is None or replicas(target) == replicas(d):
                return
            await self._scale_rs(target, replicas(d), d)
            return
        if is_saturated(d, new_rs):
            for old in active(olds):
                await self._scale_rs(old, 0, d)
            return
        if not is_rolling(d):
            return
        all_rss = candidates
        total = sum(replicas(rs) for rs in all_rss)
        allowed = replicas(d) + max_surge(d) if replicas(d) > 0 else 0
        to_add = allowed - total
        if to_add > 0:
            all_rss.sort(key=lambda rs: (-replicas(rs), -_created(rs)[0]))
        else:
            all_rss.sort(key=lambda rs: (-replicas(rs), _created(rs)[0]))
        sizes: dict[str, int] = {}
        added = 0
        for rs in all_rss:
            if to_add != 0:
                p = _proportion(d, rs, to_add, added)
                sizes[rs["metadata"]["name"]] = replicas(rs) + p
                added += p
            else:
                sizes[rs["metadata"]["name"]] = replicas(rs)
        for i, rs in enumerate(all_rss):
            name = rs["metadata"]["name"]
            if i == 0 and to_add != 0:
                sizes[name] = max(sizes[name] + to_add - added, 0)
            await self._scale_rs(rs, sizes[name], d)

    async def _is_scaling_event(self, d: Obj, rs_list: list[Obj]) -> bool:
        new_rs, olds = await self._get_all_rss_and_sync_revision(d, rs_list, False)
        for rs in active([*olds, *([new_rs] if new_rs else [])]):
            desired = _annotation_int(rs, DESIRED_REPLICAS)
            if desired is not None and desired != replicas(d):
                return True
        return False

    async def _scale_sync(self, d: Obj, rs_list: list[Obj]) -> Result | None:
        new_rs, olds = await self._get_all_rss_and_sync_revision(d, rs_list, False)
        await self._scale(d, new_rs, olds)
        if _spec(d).get("paused"):
            await self._cleanup(d, olds)
        return await self._sync_status_only(d, None)

    async def _sync_status_only(self, d: Obj, rs_list: list[Obj] | None) -> Result | None:
        fresh = self._fresh_rss(d)
        new_rs, olds = self._find_new_and_old(d, fresh)
        all_rss = [*olds, *([new_rs] if new_rs else [])]
        status = self._calculate_status(all_rss, new_rs, d)
        if _normalized_status(status) != _normalized_status(_status(d)):
            await self._update_status(d, status)
        return None

    def _fresh_rss(self, d: Obj) -> list[Obj]:
        """The deployment's ReplicaSets as the cache has them now (after our writes)."""
        uid = d["metadata"]["uid"]
        ns = d["metadata"]["namespace"]
        by_uid: dict[str, Obj] = {}
        for rs in self.rss.store.list():
            ref = controller_ref(rs)
            if rs["metadata"].get("namespace") == ns and ref is not None and ref.get("uid") == uid:
                by_uid[rs["metadata"]["uid"]] = rs
        for rs_uid, written in list(self._written.items()):
            ref = controller_ref(written)
            if ref is None or ref.get("uid") != uid:
                continue
            cached = by_uid.get(rs_uid)
            if cached is not None and _rv(cached) >= _rv(written):
                del self._written[rs_uid]  # the cache has caught up
            else:
                by_uid[rs_uid] = written
        return list(by_uid.values())

    async def _check_paused_conditions(self, d: Obj) -> None:
        if not has_progress_deadline(d):
            return
        status = copy.deepcopy(_status(d))
        cond = get_condition(status, "Progressing")
        if cond is not None and cond.get("reason") == TIMED_OUT:
            return
        paused = bool(_spec(d).get("paused"))
        changed = False
        if paused and (cond is None or cond.get("reason") != PAUSED):
            set_condition(
                status, new_condition("Progressing", "Unknown", PAUSED, "Deployment is paused")
            )
            changed = True
        elif not paused and cond is not None and cond.get("reason") == PAUSED:
            set_condition(
                status, new_condition("Progressing", "Unknown", RESUMED, "Deployment is resumed")
            )
            changed = True
        if changed:
            await self._update_status(d, status)

    # -- rolling update

    async def _rollout_rolling(self, d: Obj, rs_list: list[Obj]) -> Result | None:
        new_rs, olds = await self._get_all_rss_and_sync_revision(d, rs_list, True)
        assert new_rs is not None
        all_rss = [*olds, new_rs]
        scaled, new_rs = await self._reconcile_new_rs(all_rss, new_rs, d)
        if scaled:
            return await self._sync_rollout_status(d)
        all_rss = [*olds, new_rs]
        if await self._reconcile_old_rss(all_rss, active(olds), new_rs, d):
            return await self._sync_rollout_status(d)
        status = self._calculate_status(all_rss, new_rs, d)
        if deployment_complete(d, status):
            await self._cleanup(d, olds)
        return await self._sync_rollout_status(d)

    async def _reconcile_new_rs(self, all_rss: list[Obj], new_rs: Obj, d: Obj) -> tuple[bool, Obj]:
        if replicas(new_rs) == replicas(d):
            return False, new_rs
        if replicas(new_rs) > replicas(d):
            return await self._scale_and_record(new_rs, replicas(d), d)
        return await self._scale_and_record(new_rs, new_rs_new_replicas(d, all_rss, new_rs), d)

    async def _reconcile_old_rss(
        self, all_rss: list[Obj], olds: list[Obj], new_rs: Obj, d: Obj
    ) -> bool:
        old_count = sum(replicas(rs) for rs in olds)
        if old_count == 0:
            return False
        all_count = sum(replicas(rs) for rs in all_rss)
        min_available = replicas(d) - max_unavailable(d)
        new_unavailable = replicas(new_rs) - _available(new_rs)
        max_scaled_down = all_count - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        olds, cleaned = await self._cleanup_unhealthy(olds, d, max_scaled_down)
        scaled = await self._scale_down_olds_for_rolling([*olds, new_rs], olds, d)
        return cleaned + scaled > 0

    async def _cleanup_unhealthy(
        self, olds: list[Obj], d: Obj, max_cleanup: int
    ) -> tuple[list[Obj], int]:
        olds = sorted(olds, key=_created)
        total = 0
        out: list[Obj] = []
        for rs in olds:
            if total >= max_cleanup or replicas(rs) == 0 or replicas(rs) <= _available(rs):
                out.append(rs)
                continue
            count = min(max_cleanup - total, replicas(rs) - _available(rs))
            _, rs = await self._scale_and_record(rs, replicas(rs) - count, d)
            total += count
            out.append(rs)
        return out, total

    async def _scale_down_olds_for_rolling(
        self, all_rss: list[Obj], olds: list[Obj], d: Obj
    ) -> int:
        min_available = replicas(d) - max_unavailable(d)
        # an RS's status may still count pods it is about to delete: never trust more
        # available pods than it is asked to keep
        available = sum(min(_available(rs), replicas(rs)) for rs in all_rss)
        if available <= min_available:
            return 0
        to_scale_down = available - min_available
        total = 0
        for rs in sorted(olds, key=_created):
            if total >= to_scale_down:
                break
            if replicas(rs) == 0:
                continue
            count = min(replicas(rs), to_scale_down - total)
            await self._scale_and_record(rs, replicas(rs) - count, d)
            total += count
        return total

    # -- recreate

    async def _rollout_recreate(self, d: Obj, rs_list: list[Obj]) -> Result | None:
        new_rs, olds = await self._get_all_rss_and_sync_revision(d, rs_list, False)
        scaled_down = False
        for rs in active(olds):
            scaled, _ = await self._scale_and_record(rs, 0, d)
            scaled_down = scaled_down or scaled
        if scaled_down:
            return await self._sync_rollout_status(d)
        if self._old_pods_running(new_rs, olds):
            return await self._sync_rollout_status(d)
        if new_rs is None:
            new_rs, olds = await self._get_all_rss_and_sync_revision(d, rs_list, True)
            assert new_rs is not None
        await self._scale_and_record(new_rs, replicas(d), d)
        status = self._calculate_status([*olds, new_rs], new_rs, d)
        if deployment_complete(d, status):
            await self._cleanup(d, olds)
        return await self._sync_rollout_status(d)

    def _old_pods_running(self, new_rs: Obj | None, olds: list[Obj]) -> bool:
        if sum(int(_status(rs).get("replicas") or 0) for rs in olds) > 0:
            return True
        old_uids = {rs["metadata"]["uid"] for rs in olds}
        if new_rs is not None:
            old_uids.discard(new_rs["metadata"]["uid"])
        for pod in self.pods.store.list():
            ref = controller_ref(pod)
            if ref is None or ref.get("uid") not in old_uids:
                continue
            if (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
                continue
            return True
        return False

    # -- cleanup

    async def _cleanup(self, d: Obj, olds: list[Obj]) -> None:
        limit = _spec(d).get("revisionHistoryLimit")
        if limit is None:
            return
        cleanable = [rs for rs in olds if not rs["metadata"].get("deletionTimestamp")]
        diff = len(cleanable) - int(limit)
        if diff <= 0:
            return
        cleanable.sort(key=lambda rs: (revision(rs), _created(rs)))
        for rs in cleanable[:diff]:
            st = _status(rs)
            if (
                int(st.get("replicas") or 0) != 0
                or replicas(rs) != 0
                or int(rs["metadata"].get("generation") or 0)
                > int(st.get("observedGeneration") or 0)
            ):
                continue
            self._written.pop(rs["metadata"]["uid"], None)
            try:
                await self.client.delete(
                    REPLICASETS, rs["metadata"]["name"], rs["metadata"]["namespace"]
                )
            except ApiError as err:
                if not is_not_found(err):
                    raise

    # -- status

    def _calculate_status(self, all_rss: list[Obj], new_rs: Obj | None, d: Obj) -> Obj:
        available = sum(_available(rs) for rs in all_rss)
        total = sum(replicas(rs) for rs in all_rss)
        status: Obj = {
            "observedGeneration": int(d["metadata"].get("generation") or 0),
            "replicas": sum(int(_status(rs).get("replicas") or 0) for rs in all_rss),
            "updatedReplicas": int(_status(new_rs).get("replicas") or 0) if new_rs else 0,
            "readyReplicas": sum(int(_status(rs).get("readyReplicas") or 0) for rs in all_rss),
            "availableReplicas": available,
            "unavailableReplicas": max(total - available, 0),
        }
        old = _status(d)
        if old.get("collisionCount") is not None:
            status["collisionCount"] = old["collisionCount"]
        if old.get("conditions"):
            status["conditions"] = copy.deepcopy(old["conditions"])
        if available >= replicas(d) - max_unavailable(d):
            cond = new_condition(
                "Available", "True", MIN_AVAILABLE, "Deployment has minimum availability."
            )
        else:
            cond = new_condition(
                "Available",
                "False",
                MIN_UNAVAILABLE,
                "Deployment does not have minimum availability.",
            )
        set_condition(status, cond)
        return status

    async def _sync_rollout_status(self, d: Obj) -> Result | None:
        fresh = self._fresh_rss(d)
        new_rs, olds = self._find_new_and_old(d, fresh)
        all_rss = [*olds, *([new_rs] if new_rs else [])]
        status = self._calculate_status(all_rss, new_rs, d)
        if not has_progress_deadline(d):
            remove_condition(status, "Progressing")
        current = get_condition(_status(d), "Progressing")
        complete_before = (
            int(status.get("replicas") or 0) == int(status.get("updatedReplicas") or 0)
            and current is not None
            and current.get("reason") == NEW_RS_AVAILABLE
        )
        rs_name = new_rs["metadata"]["name"] if new_rs else None
        if has_progress_deadline(d) and not complete_before:
            if deployment_complete(d, status):
                msg = (
                    f'ReplicaSet "{rs_name}" has successfully progressed.'
                    if rs_name
                    else f'Deployment "{d["metadata"]["name"]}" has successfully progressed.'
                )
                set_condition(status, new_condition("Progressing", "True", NEW_RS_AVAILABLE, msg))
            elif deployment_progressing(d, status):
                msg = (
                    f'ReplicaSet "{rs_name}" is progressing.'
                    if rs_name
                    else f'Deployment "{d["metadata"]["name"]}" is progressing.'
                )
                cond = new_condition("Progressing", "True", RS_UPDATED, msg)
                if current is not None:
                    if current.get("status") == "True":
                        cond["lastTransitionTime"] = current.get("lastTransitionTime")
                    remove_condition(status, "Progressing")
                set_condition(status, cond)
            elif deployment_timed_out(d, status):
                msg = (
                    f'ReplicaSet "{rs_name}" has timed out progressing.'
                    if rs_name
                    else f'Deployment "{d["metadata"]["name"]}" has timed out progressing.'
                )
                set_condition(status, new_condition("Progressing", "False", TIMED_OUT, msg))
        failure = self._replica_failure(all_rss, new_rs)
        if failure is not None:
            set_condition(status, failure)
        else:
            remove_condition(status, "ReplicaFailure")
        if _normalized_status(status) == _normalized_status(_status(d)):
            return self._requeue_stuck(d, status)
        await self._update_status(d, status)
        return self._requeue_stuck(d, status)

    @staticmethod
    def _replica_failure(all_rss: list[Obj], new_rs: Obj | None) -> Obj | None:
        ordered = ([new_rs] if new_rs else []) + [rs for rs in all_rss if rs is not new_rs]
        for rs in ordered:
            cond = get_condition(_status(rs), "ReplicaFailure")
            if cond is not None:
                return {
                    "type": "ReplicaFailure",
                    "status": cond.get("status", "True"),
                    "lastUpdateTime": cond.get("lastTransitionTime") or format_time(),
                    "lastTransitionTime": cond.get("lastTransitionTime") or format_time(),
                    "reason": cond.get("reason", ""),
                    "message": cond.get("message", ""),
                }
        return None

    @staticmethod
    def _requeue_stuck(d: Obj, status: Obj) -> Result | None:
        cond = get_condition(status, "Progressing")
        if (
            cond is None
            or not has_progress_deadline(d)
            or cond.get("reason") in (NEW_RS_AVAILABLE, TIMED_OUT)
            or deployment_complete(d, status)
        ):
            return None
        since = parse_time(cond.get("lastUpdateTime"))
        if since is None:
            return None
        after = since + int(_spec(d)["progressDeadlineSeconds"]) - time.time()
        return Result(requeue_after=max(after, 1.0))


def setup(manager: Manager) -> None:
    reconciler = DeploymentReconciler(manager)
    controller = manager.add("deployment", reconciler, workers=2)
    reconciler.setup(controller)
