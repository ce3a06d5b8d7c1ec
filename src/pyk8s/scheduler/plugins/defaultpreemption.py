"""DefaultPreemption (PostFilter): when no node fits, evict lower-priority pods somewhere.

As upstream's ``preemption.Evaluator``: per node, a rejection no eviction can fix
(UnschedulableAndUnresolvable) → "Preemption is not helpful for scheduling"; no pod of
lower priority → "No preemption victims found for incoming pod"; otherwise every
lower-priority pod is removed and the filters run again. Where the pod then fits, victims
are reprieved one by one, most important first (higher priority, then older), PDB-protected
pods before the others, keeping only the pods whose return would make the pod not fit.
The node chosen has the fewest PDB violations, then the lowest highest victim priority,
the lowest priority sum, the fewest victims, the latest-started most important victim.

The preemptor is nominated there (the scheduler writes ``status.nominatedNodeName``); each
victim gets a ``DisruptionTarget`` condition (reason PreemptionByScheduler), is deleted,
and gets a ``Preempted`` event. ``preemptionPolicy: Never`` pods never preempt, and a pod
already nominated to a node where a lower-priority pod is terminating waits for it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyk8s.api.registry import REGISTRY
from pyk8s.api.selectors import label_selector_from_dict
from pyk8s.client import Client, ClientError, EventRecorder, is_not_found
from pyk8s.client.events import NORMAL
from pyk8s.scheduler.framework.interface import Code, CycleState, Status, is_success
from pyk8s.scheduler.framework.registry import Lister
from pyk8s.scheduler.framework.types import (
    NodeInfo,
    Obj,
    host_ports,
    pod_key,
    pod_priority,
    pod_requests,
)
from pyk8s.scheduler.plugins.helpers import is_terminating, pod_labels, pod_namespace

if TYPE_CHECKING:
    from pyk8s.scheduler.cache import Cache

log = logging.getLogger(__name__)

NAME = "DefaultPreemption"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
POLICY_NEVER = "not eligible due to preemptionPolicy=Never."
TERMINATING_ON_NOMINATED = "not eligible due to a terminating pod on the nominated node."
PODS = REGISTRY.get("", "v1", "pods")


def _no_objects(group: str, version: str, plural: str, namespace: str) -> list[Obj]:
    return []


def _start_time(pod: Obj) -> str:
    # RFC 3339 UTC timestamps sort as strings; no start time counts as the newest
    return str((pod.get("status") or {}).get("startTime") or "9999")


def without(node: NodeInfo, victims: list[Obj]) -> NodeInfo:
    """A copy of ``node`` as if ``victims`` were gone."""
    gone = {pod_key(p) for p in victims}
    requested = dict(node.requested)
    ports = dict(node.used_ports)
    for p in victims:
        for res, amount in pod_requests(p).items():
            requested[res] = requested.get(res, 0) - amount
        for port in host_ports(p):
            ports[port] = ports.get(port, 1) - 1
            if ports[port] <= 0:
                del ports[port]
    return NodeInfo(
        node=node.node,
        slot=node.slot,
        pods={k: v for k, v in node.pods.items() if k not in gone},
        used_ports=ports,
        requested=requested,
        allocatable=node.allocatable,
        images=node.images,
    )


@dataclass
class Candidate:
    node: str
    victims: list[Obj]
    pdb_violations: int


def pdb_violating(pods: list[Obj], pdbs: list[Obj]) -> tuple[list[Obj], list[Obj]]:
    """Upstream's ``filterPodsWithPDBViolation``: (pods whose eviction would take a PDB
    below its allowed disruptions, the others), each in the given order."""
    allowed = [int((p.get("status") or {}).get("disruptionsAllowed") or 0) for p in pdbs]
    violating: list[Obj] = []
    fine: list[Obj] = []
    for pod in pods:
        violated = False
        for i, pdb in enumerate(pdbs):
            if pod_namespace(pdb) != pod_namespace(pod):
                continue
            sel = label_selector_from_dict((pdb.get("spec") or {}).get("selector"))
            if sel.empty or not sel.matches(pod_labels(pod)):
                continue
            disrupted = (pdb.get("status") or {}).get("disruptedPods") or {}
            if pod["metadata"].get("name") in disrupted:
                continue
            allowed[i] -= 1
            if allowed[i] < 0:
                violated = True
        (violating if violated else fine).append(pod)
    return violating, fine


def _importance(pod: Obj) -> tuple[int, str]:
    """Sort key: more important (higher priority, then started earlier) first."""
    return (-pod_priority(pod), _start_time(pod))


def pick_one(candidates: list[Candidate]) -> Candidate:
    """Upstream's ``pickOneNodeForPreemption``."""
    for c in candidates:
        if not c.victims:
            return c

    def key(c: Candidate) -> tuple[int, int, int, int, str]:
        top = max(pod_priority(v) for v in c.victims)
        total = sum(pod_priority(v) + 2**31 for v in c.victims)
        earliest = min(_start_time(v) for v in c.victims if pod_priority(v) == top)
        # the latest start time of the most important victims wins: negate by inverting
        inverted = "".join(chr(0x10FFFF - ord(ch)) for ch in earliest)
        return (c.pdb_violations, top, total, len(c.victims), inverted)

    return min(candidates, key=key)


class DefaultPreemption:
    name = NAME

    def __init__(
        self,
        run_filters: Callable[[CycleState, Obj, NodeInfo], Status | None],
        *,
        client: Client | None = None,
        recorder: EventRecorder | None = None,
        lister: Lister = _no_objects,
    ) -> None:
        self.run_filters = run_filters
        self.client = client
        self.recorder = recorder
        self.lister = lister
        self._tasks: set[asyncio.Task[None]] = set()

    def _fits(self, state: CycleState, pod: Obj, node: NodeInfo) -> bool:
        return is_success(self.run_filters(state, pod, node))

    def select_victims(
        self, state: CycleState, pod: Obj, info: NodeInfo
    ) -> tuple[Candidate | None, Status | None]:
        """Upstream's ``SelectVictimsOnNode``: the fewest pods to evict on ``info``."""
        priority = pod_priority(pod)
        potential = [p for p in info.pods.values() if pod_priority(p) < priority]
        if not potential:
            return None, Status.unresolvable(NO_VICTIMS)
        again = self.run_filters(state, pod, without(info, potential))
        if not is_success(again):
            assert again is not None
            return None, again
        potential.sort(key=_importance)
        pdbs = self.lister("policy", "v1", "poddisruptionbudgets", pod_namespace(pod))
        violating, fine = pdb_violating(potential, pdbs)
        victims: list[Obj] = []
        kept = {pod_key(p): p for p in potential}
        violations = 0

        def reprieve(p: Obj) -> bool:
            del kept[pod_key(p)]
            if self._fits(state, pod, without(info, list(kept.values()))):
                return True
            kept[pod_key(p)] = p
            victims.append(p)
            return False

        for p in violating:
            if not reprieve(p):
                violations += 1
        for p in fine:
            reprieve(p)
        return Candidate(info.name, victims, violations), None

    def post_filter(
        self, state: CycleState, pod: Obj, cache: Cache, statuses: Mapping[str, Status]
    ) -> tuple[str | None, Status | None]:
        if (pod.get("spec") or {}).get("preemptionPolicy") == "Never":
            return None, Status.unschedulable(POLICY_NEVER, plugin=NAME)
        priority = pod_priority(pod)
        nominated = str((pod.get("status") or {}).get("nominatedNodeName") or "")
        if nominated and nominated in cache.nodes:
            st = statuses.get(nominated)
            if st is None or st.code != Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                for p in cache.nodes[nominated].pods.values():
                    if is_terminating(p) and pod_priority(p) < priority:
                        return None, Status.unschedulable(TERMINATING_ON_NOMINATED, plugin=NAME)
        results: dict[str, Status] = {}
        candidates: list[Candidate] = []
        for info in cache.node_infos():
            st = statuses.get(info.name)
            if st is not None and st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                results[info.name] = Status.unresolvable(NOT_HELPFUL)
                continue
            cand, why = self.select_victims(state, pod, info)
            if cand is None:
                assert why is not None
                results[info.name] = why
            else:
                candidates.append(cand)
        if not candidates:
            from pyk8s.scheduler.framework.runtime import fit_error_message

            return None, Status.unschedulable(
                "preemption: " + fit_error_message(len(cache), results), plugin=NAME
            )
        best = pick_one(candidates)
        self._spawn(self.prepare(pod, best))
        return best.node, None

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (unit tests of the choice): nothing to evict with
            coro.close()
            return
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def prepare(self, pod: Obj, cand: Candidate) -> None:
        """Upstream's ``prepareCandidate``: mark, delete and report every victim."""
        if self.client is None:
            return
        assert PODS is not None
        scheduler = (pod.get("spec") or {}).get("schedulerName") or "default-scheduler"
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        cond = {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "PreemptionByScheduler",
            "message": f"{scheduler}: preempting to accommodate a higher priority pod",
            "lastTransitionTime": now,
        }
        uid = pod["metadata"].get("uid", "")
        for victim in cand.victims:
            meta = victim["metadata"]
            try:
                await self.client.patch(
                    PODS,
                    meta["name"],
                    {"status": {"conditions": [cond]}},
                    meta["namespace"],
                    subresource="status",
                )
                await self.client.delete(PODS, meta["name"], meta["namespace"])
            except ClientError as err:
                if not is_not_found(err):
                    log.warning("preempting %s failed: %s", pod_key(victim), err)
                continue
            if self.recorder is not None:
                self.recorder.event(
                    victim, NORMAL, "Preempted", f"Preempted by pod {uid} on node {cand.node}"
                )
