"""Node lifecycle: notice dead nodes, taint them, and evict their pods (upstream's
``node-lifecycle-controller`` plus the ``taint-eviction-controller``).

A kubelet proves it is alive by renewing its Lease in ``kube-node-lease`` (and by posting
node status). When neither moved for ``NODE_MONITOR_GRACE_PERIOD`` (50 s in v1.32;
40 s before) as observed locally, the node's conditions become ``Unknown`` with reason
``NodeStatusUnknown`` and message "Kubelet stopped posting node status." (or
``NodeStatusNeverUpdated`` / "Kubelet never posted node status." for a condition the
kubelet never reported), a ``NodeNotReady`` event is recorded and the node's pods get
``Ready=False``. The node is checked every ``NODE_MONITOR_PERIOD`` (5 s).

Taints follow the Ready condition, as upstream's taint-based eviction does:
Ready=Unknown → ``node.kubernetes.io/unreachable``; Ready=False →
``node.kubernetes.io/not-ready``; each with effect ``NoSchedule`` (the scheduler stops
placing pods there) and ``NoExecute`` (with ``timeAdded``: running pods must leave).
Ready=True removes them.

Eviction (the taint-eviction controller): a pod on a node with ``NoExecute`` taints is
deleted at once if it does not tolerate one of them, else when the shortest
``tolerationSeconds`` of the matching tolerations has passed since the taint was added
(300 s by default: the API server's DefaultTolerationSeconds admission adds those);
tolerations without ``tolerationSeconds`` tolerate forever. Before deleting, the pod
gets the ``DisruptionTarget`` condition (reason ``DeletionByTaintManager``) and a
``TaintManagerEviction`` event "Marking for deletion Pod ns/name".

The grace and monitor periods are module attributes read by :func:`setup`, so a test
(or a deployment) can shorten them.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pyk8s.api.taints import tolerates
from pyk8s.client import NORMAL, Client, EventRecorder, SharedInformer, Store, is_conflict
from pyk8s.client.errors import ClientError, is_not_found
from pyk8s.controllers._resources import LEASES, NODES, PODS
from pyk8s.controllers.runtime import Manager, Request, Result

__all__ = [
    "NODE_MONITOR_GRACE_PERIOD",
    "NODE_MONITOR_PERIOD",
    "TAINT_NOT_READY",
    "TAINT_UNREACHABLE",
    "NodeLifecycleReconciler",
    "TaintEvictionReconciler",
    "setup",
    "tolerates",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]


#: --node-monitor-grace-period (v1.32 default) and --node-monitor-period
NODE_MONITOR_GRACE_PERIOD = 50.0
NODE_MONITOR_PERIOD = 5.0
LEASE_NAMESPACE = "kube-node-lease"

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
_CONDITION_TAINTS = (TAINT_NOT_READY, TAINT_UNREACHABLE)
#: the conditions a kubelet posts, which go Unknown together
NODE_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
POD_NODE_INDEX = "spec.nodeName"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ts(t: dt.datetime | None = None) -> str:
    return (t or _now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_ts(text: Any) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def _condition(obj: Obj, ctype: str) -> Obj | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return dict(c)
    return None


@dataclass
class _Health:
    """What this controller last saw of a node's heartbeats, and when (its own clock)."""

    probe: float
    heartbeat: str = ""
    lease_renew: str = ""


class NodeLifecycleReconciler:
    """Marks silent nodes Unknown and keeps the condition taints in step with Ready."""

    def __init__(
        self,
        client: Client,
        nodes: Store,
        leases: Store,
        pods: Store,
        recorder: EventRecorder,
        *,
        grace_period: float,
        monitor_period: float,
    ) -> None:
        self.client = client
        self.nodes = nodes
        self.leases = leases
        self.pods = pods
        self.recorder = recorder
        self.grace_period = grace_period
        self.monitor_period = monitor_period
        self.health: dict[str, _Health] = {}

    def _observe(self, node: Obj) -> _Health:
        """Refresh the local probe time when the node's heartbeat or lease moved."""
        name = node["metadata"]["name"]
        now = asyncio.get_running_loop().time()
        ready = _condition(node, "Ready") or {}
        heartbeat = str(ready.get("lastHeartbeatTime") or "")
        lease = self.leases.get(f"{LEASE_NAMESPACE}/{name}")
        renew = str(((lease or {}).get("spec") or {}).get("renewTime") or "")
        h = self.health.get(name)
        if h is None:
            h = self.health[name] = _Health(now, heartbeat, renew)
        if heartbeat != h.heartbeat or renew != h.lease_renew:
            h.probe, h.heartbeat, h.lease_renew = now, heartbeat, renew
        return h

    async def reconcile(self, request: Request) -> Result | None:
        name = request.name
        node = self.nodes.get(name)
        if node is None:
            self.health.pop(name, None)
            return None
        h = self._observe(node)
        silent = asyncio.get_running_loop().time() - h.probe
        try:
            if silent > self.grace_period:
                node = await self._mark_unknown(node)
            await self._sync_taints(node)
        except ClientError as err:
            if is_not_found(err):
                return None
            if is_conflict(err):
                return Result(requeue=True)  # the cache is behind: look again
            raise
        left = self.grace_period - silent
        return Result(requeue_after=max(min(self.monitor_period, left + 0.05), 0.05))

    async def _mark_unknown(self, node: Obj) -> Obj:
        status = node.get("status") or {}
        by_type = {c.get("type"): c for c in status.get("conditions") or []}
        changed = False
        now = _ts()
        conditions = [dict(c) for c in status.get("conditions") or []]
        for ctype in NODE_CONDITIONS:
            cur = by_type.get(ctype)
            if cur is None:
                conditions.append(
                    {
                        "type": ctype,
                        "status": "Unknown",
                        "reason": "NodeStatusNeverUpdated",
                        "message": "Kubelet never posted node status.",
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                )
                changed = True
            elif cur.get("status") != "Unknown":
                for c in conditions:
                    if c.get("type") == ctype:
                        c.update(
                            status="Unknown",
                            reason="NodeStatusUnknown",
                            message="Kubelet stopped posting node status.",
                            lastTransitionTime=now,
                        )
                changed = True
        if not changed:
            return node
        body = copy.deepcopy(node)
        body["status"]["conditions"] = conditions
        updated: Obj = await self.client.update_status(NODES, body)
        name = node["metadata"]["name"]
        log.info("node %s stopped posting status: Ready=Unknown", name)
        self.recorder.event(
            node, NORMAL, "NodeNotReady", f"Node {name} status is now: NodeNotReady"
        )
        await self._mark_pods_not_ready(name)
        return updated

    async def _mark_pods_not_ready(self, node_name: str) -> None:
        """Upstream's MarkPodsNotReady: the node's pods are no longer Ready."""
        for pod in self.pods.by_index(POD_NODE_INDEX, node_name):
            ready = _condition(pod, "Ready")
            if ready is None or ready.get("status") == "False":
                continue
            body = copy.deepcopy(pod)
            for c in body["status"]["conditions"]:
                if c.get("type") == "Ready":
                    c.update(status="False", lastTransitionTime=_ts())
            try:
                await self.client.update_status(PODS, body)
            except ClientError as err:
                if not (is_conflict(err) or is_not_found(err)):
                    log.warning("marking pod not ready failed: %s", err)
                continue
            self.recorder.event(pod, "Warning", "NodeNotReady", "Node is not ready")

    async def _sync_taints(self, node: Obj) -> None:
        ready = (_condition(node, "Ready") or {}).get("status")
        if ready is None:
            return  # no kubelet report yet: admission's not-ready taint stays as it is
        want_key = {"Unknown": TAINT_UNREACHABLE, "False": TAINT_NOT_READY}.get(str(ready))
        taints: list[Obj] = list((node.get("spec") or {}).get("taints") or [])
        kept = [
            t
            for t in taints
            if t.get("key") not in _CONDITION_TAINTS
            or (t.get("key") == want_key and t.get("effect") in ("NoSchedule", "NoExecute"))
        ]
        if want_key is not None:
            for effect in ("NoSchedule", "NoExecute"):
                if not any(t.get("key") == want_key and t.get("effect") == effect for t in kept):
                    taint: Obj = {"key": want_key, "effect": effect}
                    if effect == "NoExecute":
                        taint["timeAdded"] = _ts()
                    kept.append(taint)
        if kept == taints:
            return
        body = copy.deepcopy(node)
        body.setdefault("spec", {})["taints"] = kept
        if not kept:
            body["spec"].pop("taints")
        await self.client.update(NODES, body)
        log.info(
            "node %s taints now %s",
            node["metadata"]["name"],
            [f"{t['key']}:{t['effect']}" for t in kept],
        )


class TaintEvictionReconciler:
    """Deletes pods that do not (or no longer) tolerate their node's NoExecute taints."""

    def __init__(self, client: Client, nodes: Store, pods: Store, recorder: EventRecorder) -> None:
        self.client = client
        self.nodes = nodes
        self.pods = pods
        self.recorder = recorder

    async def reconcile(self, request: Request) -> Result | None:
        pod = self.pods.get(f"{request.namespace}/{request.name}")
        if pod is None or (pod.get("metadata") or {}).get("deletionTimestamp"):
            return None
        node = self.nodes.get(str((pod.get("spec") or {}).get("nodeName") or ""))
        if node is None:
            return None
        taints = [
            t
            for t in (node.get("spec") or {}).get("taints") or []
            if t.get("effect") == "NoExecute"
        ]
        if not taints:
            return None
        tolerations = (pod.get("spec") or {}).get("tolerations") or []
        now = _now()
        wait: float | None = None  # None: tolerated forever
        for taint in taints:
            matching = [t for t in tolerations if tolerates(t, taint)]
            if not matching:
                return await self._evict(pod)
            seconds = [
                float(t["tolerationSeconds"])
                for t in matching
                if t.get("tolerationSeconds") is not None
            ]
            if not seconds:
                continue
            added = _parse_ts(taint.get("timeAdded")) or now
            left = (added - now).total_seconds() + max(min(seconds), 0.0)
            wait = left if wait is None else min(wait, left)
        if wait is None:
            return None
        if wait <= 0:
            return await self._evict(pod)
        return Result(requeue_after=wait)

    async def _evict(self, pod: Obj) -> Result | None:
        meta = pod["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        self.recorder.event(
            pod, NORMAL, "TaintManagerEviction", f"Marking for deletion Pod {ns}/{name}"
        )
        body = copy.deepcopy(pod)
        conds = [
            c
            for c in (body.get("status") or {}).get("conditions") or []
            if c.get("type") != "DisruptionTarget"
        ]
        conds.append(
            {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "DeletionByTaintManager",
                "message": "Taint manager: deleting due to NoExecute taint",
                "lastTransitionTime": _ts(),
            }
        )
        body.setdefault("status", {})["conditions"] = conds
        try:
            await self.client.update_status(PODS, body)
        except ClientError as err:
            if is_not_found(err):
                return None
            if is_conflict(err):
                return Result(requeue=True)
            raise
        try:
            await self.client.delete(
                PODS, name, ns, preconditions={"uid": str(meta.get("uid", ""))}
            )
        except ClientError as err:
            if not (is_not_found(err) or is_conflict(err)):
                raise
        log.info("evicted pod %s/%s from a NoExecute-tainted node", ns, name)
        return None


def _pod_node(pod: Obj) -> list[str]:
    node = (pod.get("spec") or {}).get("nodeName")
    return [str(node)] if node else []


def setup(manager: Manager) -> None:
    nodes = manager.informers.informer(NODES)
    leases = manager.informers.informer(LEASES, LEASE_NAMESPACE)
    pods: SharedInformer = manager.informers.informer(PODS, indexers={POD_NODE_INDEX: _pod_node})
    lifecycle = NodeLifecycleReconciler(
        manager.client,
        nodes.store,
        leases.store,
        pods.store,
        manager.recorder,
        grace_period=NODE_MONITOR_GRACE_PERIOD,
        monitor_period=NODE_MONITOR_PERIOD,
    )
    controller = manager.add("nodelifecycle", lifecycle, workers=2)
    controller.watch(nodes)

    def lease_node(lease: Obj) -> Iterable[Request]:
        yield Request("", str(lease["metadata"].get("name", "")))

    controller.watch(leases, lease_node)

    eviction = TaintEvictionReconciler(manager.client, nodes.store, pods.store, manager.recorder)
    evictor = manager.add("taint-eviction", eviction, workers=2)
    evictor.watch(pods)

    def pods_on_node(node: Obj) -> Iterable[Request]:
        for pod in pods.store.by_index(POD_NODE_INDEX, str(node["metadata"].get("name", ""))):
            meta = pod["metadata"]
            yield Request(str(meta.get("namespace", "")), str(meta["name"]))

    evictor.watch(nodes, pods_on_node)
