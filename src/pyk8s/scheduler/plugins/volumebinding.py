"""VolumeBinding: a pod's PersistentVolumeClaims decide where it may run, as upstream's
``volumebinding`` plugin (v1.32) does.

* **PreFilter** reads the pod's claims (``persistentVolumeClaim`` and generic
  ``ephemeral`` volumes): a missing claim, one being deleted, one whose volume is lost, or an
  ephemeral claim the pod does not own makes the pod unschedulable with upstream's message;
  an unbound claim whose class binds ``Immediate`` leaves it waiting for the PV controller
  (``pod has unbound immediate PersistentVolumeClaims``). A pod without claims is skipped.
* **Filter**, per node: a bound claim's PersistentVolume must allow the node
  (``spec.nodeAffinity``); an unbound ``WaitForFirstConsumer`` claim needs an Available
  PV that matches it (class, access modes, size, selector, volume mode; the smallest wins)
  and allows the node, or a class whose provisioner can provision there
  (``allowedTopologies``). A claim already given a ``volume.kubernetes.io/selected-node``
  only fits that node.
* **Reserve** assumes the chosen PVs and provisions in memory (so the next pod does not
  take the same PV); **Unreserve** forgets them.
* **PreBind** writes them: the PV's ``claimRef`` for a static binding, the claim's
  ``volume.kubernetes.io/selected-node`` annotation for one to provision; then waits until
  the PV controller has bound every claim (``pv.kubernetes.io/bind-completed``), for at most
  ``bindTimeoutSeconds`` (600 s), before the pod is bound. The wait wakes on the
  scheduler's claim and volume events (upstream polls every second); a one-second
  re-check stays as a safety net.

The PersistentVolume controller (``pyk8s.controllers``) does the binding proper; the
contract between us is upstream's (annotations, ``claimRef``, PV node affinity).
Not done: storage capacity (CSIStorageCapacity) checks and the capacity score.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pyk8s.api.pvbinding import (
    ANN_BIND_COMPLETED,
    ANN_BOUND_BY_CONTROLLER,
    ANN_SELECTED_NODE,
    WAIT_FOR_FIRST_CONSUMER,
    check_volume_satisfies_claim,
    claim_class,
    ephemeral_claim_name,
    is_volume_bound_to_claim,
    volume_capacity,
    volume_class,
)
from pyk8s.api.selectors import label_selector_from_dict
from pyk8s.client import Client, ClientError
from pyk8s.scheduler.framework.interface import Code, CycleState, Status
from pyk8s.scheduler.framework.registry import Lister
from pyk8s.scheduler.framework.types import NodeInfo, Obj
from pyk8s.scheduler.plugins.helpers import match_terms

if TYPE_CHECKING:
    from pyk8s.scheduler.cache import Cache

NAME = "VolumeBinding"
_STATE = NAME + "/state"

ERR_UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
ERR_BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"
ERR_NODE_CONFLICT = "node(s) had volume node affinity conflict"
ERR_PV_NOT_EXIST = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"

NOT_SUPPORTED_PROVISIONER = "kubernetes.io/no-provisioner"
DEFAULT_BIND_TIMEOUT = 600.0
#: the re-check when no claim or volume event came (upstream's poll period)
POLL_INTERVAL = 1.0
#: the events after which a waiting PreBind looks again
_WAKING = frozenset(
    {"PersistentVolumeClaim/Update", "PersistentVolume/Add", "PersistentVolume/Update"}
)

#: upstream's EventsToRegister: after these a pod this plugin rejected may fit
EVENTS = (
    "PersistentVolumeClaim/Add",
    "PersistentVolumeClaim/Update",
    "PersistentVolume/Add",
    "PersistentVolume/Update",
    "StorageClass/Add",
    "StorageClass/Update",
    "CSINode/Add",
    "CSINode/Update",
    "Node/Add",
    "Node/Update",
)


class BindError(Exception):
    """PreBind could not complete the pod's volume bindings."""


# ---------------------------------------------------------------------- claim helpers


def pod_claim_names(pod: Obj) -> list[tuple[str, bool]]:
    """(claim name, is generic ephemeral) of every volume of ``pod`` backed by a claim."""
    out = []
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        if vol.get("persistentVolumeClaim"):
            out.append((str(vol["persistentVolumeClaim"].get("claimName", "")), False))
        elif vol.get("ephemeral"):
            out.append((ephemeral_claim_name(pod, vol), True))
    return out


def by_name(objs: Iterable[Obj]) -> dict[str, Obj]:
    return {str(o["metadata"]["name"]): o for o in objs}


def pv_allows_node(pv: Obj, node: Obj) -> bool:
    """Upstream's ``CheckNodeAffinity``: the PV's required node selector terms (ORed)."""
    required = ((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required")
    if not required:
        return True
    return match_terms(required.get("nodeSelectorTerms") or [], node)


def topology_allows(terms: Sequence[Mapping[str, Any]], labels: Mapping[str, str]) -> bool:
    """Upstream's ``MatchTopologySelectorTerms`` (a class's ``allowedTopologies``):
    no terms allow every node; terms are ORed, their expressions ANDed."""
    if not terms:
        return True
    for term in terms:
        exprs = term.get("matchLabelExpressions") or []
        if all(labels.get(e.get("key", "")) in (e.get("values") or []) for e in exprs):
            return True
    return False


def matching_volume(
    claim: Obj, volumes: Iterable[Obj], node: Obj, excluded: set[str]
) -> Obj | None:
    """Upstream's ``FindMatchingVolume`` on the scheduler's path (a node given): the PV
    pre-bound to the claim, else the Available PV that satisfies the claim (the binder's
    rules), matches its selector and allows the node, fewest access modes then smallest
    first; PVs in ``excluded`` (taken by other claims) are skipped."""
    spec = claim.get("spec") or {}
    try:
        selector = label_selector_from_dict(spec.get("selector") or {})
    except ValueError:
        return None
    best: tuple[int, Decimal] | None = None
    chosen: Obj | None = None
    for pv in volumes:
        if str(pv["metadata"]["name"]) in excluded or (pv["metadata"]).get("deletionTimestamp"):
            continue
        if is_volume_bound_to_claim(pv, claim):
            if not check_volume_satisfies_claim(pv, claim) and pv_allows_node(pv, node):
                return pv
            continue
        if (pv.get("spec") or {}).get("claimRef") or check_volume_satisfies_claim(pv, claim):
            continue
        if (pv.get("status") or {}).get("phase") != "Available":
            continue
        if not selector.matches(dict(pv["metadata"].get("labels") or {})):
            continue
        if not pv_allows_node(pv, node):
            continue
        rank = (len((pv.get("spec") or {}).get("accessModes") or ()), volume_capacity(pv))
        if best is None or rank < best:
            best, chosen = rank, pv
    return chosen


# ---------------------------------------------------------------------- cycle state


@dataclass
class PodVolumes:
    """What one node needs for the pod's unbound claims (upstream's ``PodVolumes``)."""

    static: list[tuple[Obj, Obj]] = field(default_factory=list)  # (claim, pv)
    provision: list[Obj] = field(default_factory=list)  # claims
    node: Obj | None = None


@dataclass
class _State:
    bound: list[Obj] = field(default_factory=list)
    delayed: list[Obj] = field(default_factory=list)
    by_node: dict[str, PodVolumes] = field(default_factory=dict)
    all_bound: bool = True
    #: every PV by name, and per delayed claim the PVs of its class (read once a cycle)
    pvs: dict[str, Obj] = field(default_factory=dict)
    candidates: dict[str, list[Obj]] = field(default_factory=dict)


def _revision(obj: Obj) -> int:
    """An object's resourceVersion as a number (0 when it has none or it is not one)."""
    rv = str(obj.get("metadata", {}).get("resourceVersion") or "")
    return int(rv) if rv.isdigit() else 0


def _key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


class VolumeBinding:
    name = NAME

    def __init__(
        self,
        lister: Lister,
        client: Client | None = None,
        bind_timeout: float = DEFAULT_BIND_TIMEOUT,
    ) -> None:
        self.lister = lister
        self.client = client
        self.bind_timeout = bind_timeout
        #: PV name -> claim key, and claim key -> selected node, assumed by Reserve
        self.assumed_pvs: dict[str, str] = {}
        self.assumed_provisions: dict[str, str] = {}
        #: PreBinds waiting for the PV controller, woken by the next claim or volume event
        self._waiters: set[asyncio.Future[None]] = set()

    # ------------------------------------------------------------ lookups

    def _claims(self, namespace: str) -> dict[str, Obj]:
        return by_name(self.lister("", "v1", "persistentvolumeclaims", namespace))

    def _pvs(self) -> dict[str, Obj]:
        return {
            str(p["metadata"]["name"]): p for p in self.lister("", "v1", "persistentvolumes", "")
        }

    def _class(self, name: str) -> Obj | None:
        for sc in self.lister("storage.k8s.io", "v1", "storageclasses", ""):
            if sc["metadata"]["name"] == name:
                return sc
        return None

    def _delay_binding(self, claim: Obj) -> bool:
        """Upstream's ``IsDelayBindingMode``: a missing class means Immediate."""
        name = claim_class(claim)
        sc = self._class(name) if name else None
        return sc is not None and sc.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER

    def events_to_register(self) -> Sequence[str]:
        return EVENTS

    def observe_cluster_event(self, event: str) -> None:
        if event not in _WAKING:
            return
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    # ------------------------------------------------------------ filtering

    def pre_filter(self, state: CycleState, pod: Obj, cache: Cache) -> Status | None:
        names = pod_claim_names(pod)
        if not names:
            return Status(Code.SKIP)
        meta = pod["metadata"]
        claims = self._claims(str(meta.get("namespace", "")))
        data = _State()
        immediate = False
        for name, ephemeral in names:
            claim = claims.get(name)
            if claim is None:
                if ephemeral:
                    return Status.unresolvable(
                        "waiting for ephemeral volume controller to create the "
                        f'persistentvolumeclaim "{name}"',
                        plugin=NAME,
                    )
                return Status.unresolvable(f'persistentvolumeclaim "{name}" not found', plugin=NAME)
            cspec, cstatus = claim.get("spec") or {}, claim.get("status") or {}
            if cstatus.get("phase") == "Lost":
                return Status.unresolvable(
                    f'persistentvolumeclaim "{name}" bound to non-existent persistentvolume '
                    f'"{cspec.get("volumeName", "")}"',
                    plugin=NAME,
                )
            if claim["metadata"].get("deletionTimestamp"):
                return Status.unresolvable(
                    f'persistentvolumeclaim "{name}" is being deleted', plugin=NAME
                )
            if ephemeral and not any(
                o.get("controller") and o.get("uid") == meta.get("uid")
                for o in claim["metadata"].get("ownerReferences") or []
            ):
                return Status.unresolvable(
                    f"PVC {meta.get('namespace')}/{name} was not created for pod "
                    f"{meta.get('namespace')}/{meta.get('name')} (pod is not owner)",
                    plugin=NAME,
                )
            if cspec.get("volumeName"):
                data.bound.append(claim)
            elif self._delay_binding(claim):
                data.delayed.append(claim)
            else:
                immediate = True
        if immediate:
            return Status.unresolvable(ERR_UNBOUND_IMMEDIATE, plugin=NAME)
        data.all_bound = not data.delayed
        data.pvs = self._pvs()
        for claim in data.delayed:
            wanted = claim_class(claim)
            data.candidates[_key(claim)] = sorted(
                (
                    p
                    for p in data.pvs.values()
                    if volume_class(p) == wanted or is_volume_bound_to_claim(p, claim)
                ),
                key=lambda pv: str(pv["metadata"]["name"]),
            )
        state[_STATE] = data
        return None

    def filter(self, state: CycleState, pod: Obj, node: NodeInfo) -> Status | None:
        data: _State | None = state.get(_STATE)
        if data is None:
            return None
        reasons = self._find(data, node)
        if reasons:
            return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, tuple(reasons), NAME)
        return None

    def _find(self, data: _State, node: NodeInfo) -> list[str]:
        """Upstream's ``FindPodVolumes`` on one node: the reasons it does not fit."""
        pvs = data.pvs
        reasons = []
        for claim in data.bound:
            pv = pvs.get(str(claim["spec"]["volumeName"]))
            if pv is None:
                return [ERR_PV_NOT_EXIST]
            if not pv_allows_node(pv, node.node):
                reasons.append(ERR_NODE_CONFLICT)
                break
        if not data.delayed:
            return reasons
        found = PodVolumes(node=node.node)
        satisfied = True
        to_match: list[Obj] = []
        for claim in data.delayed:
            selected = (claim["metadata"].get("annotations") or {}).get(ANN_SELECTED_NODE)
            if selected is None and self.assumed_provisions.get(_key(claim)) is not None:
                selected = self.assumed_provisions[_key(claim)]
            if selected is not None:
                if selected != node.name:
                    satisfied = False
                    break
                found.provision.append(claim)
            else:
                to_match.append(claim)
        if satisfied:
            excluded = set(self.assumed_pvs)
            for claim in to_match:
                pv = matching_volume(claim, data.candidates[_key(claim)], node.node, excluded)
                if pv is None:
                    found.provision.append(claim)
                    continue
                excluded.add(str(pv["metadata"]["name"]))
                found.static.append((claim, pv))
            for claim in found.provision:
                if not self._can_provision(claim, node):
                    satisfied = False
                    break
        if not satisfied:
            reasons.append(ERR_BIND_CONFLICT)
        else:
            data.by_node[node.name] = found
        return reasons

    def _can_provision(self, claim: Obj, node: NodeInfo) -> bool:
        """Upstream's ``checkVolumeProvisions``: the class has a provisioner that may
        provision on the node (a claim already selected for it has been checked)."""
        if ANN_SELECTED_NODE in (claim["metadata"].get("annotations") or {}):
            return True
        sc = self._class(claim_class(claim))
        if sc is None:
            return False
        provisioner = str(sc.get("provisioner") or "")
        if provisioner in ("", NOT_SUPPORTED_PROVISIONER):
            return False
        return topology_allows(sc.get("allowedTopologies") or [], node.labels)

    # ------------------------------------------------------------ binding cycle

    def reserve(self, state: CycleState, pod: Obj, node_name: str) -> Status | None:
        data: _State | None = state.get(_STATE)
        if data is None or data.all_bound:
            return None
        found = data.by_node.get(node_name)
        if found is None:
            return Status.error(f"no volume decisions for node {node_name!r}", plugin=NAME)
        for claim, pv in found.static:
            owner = self.assumed_pvs.get(str(pv["metadata"]["name"]))
            if owner is not None and owner != _key(claim):
                return Status.unschedulable(ERR_BIND_CONFLICT, plugin=NAME)
        for claim, pv in found.static:
            self.assumed_pvs[str(pv["metadata"]["name"])] = _key(claim)
        for claim in found.provision:
            self.assumed_provisions[_key(claim)] = node_name
        return None

    def unreserve(self, state: CycleState, pod: Obj, node_name: str) -> None:
        data: _State | None = state.get(_STATE)
        found = data.by_node.get(node_name) if data is not None else None
        if found is None:
            return
        for claim, pv in found.static:
            if self.assumed_pvs.get(str(pv["metadata"]["name"])) == _key(claim):
                del self.assumed_pvs[str(pv["metadata"]["name"])]
        for claim in found.provision:
            self.assumed_provisions.pop(_key(claim), None)

    async def pre_bind(self, state: CycleState, pod: Obj, node_name: str) -> Status | None:
        data: _State | None = state.get(_STATE)
        if data is None or data.all_bound:
            return None
        found = data.by_node.get(node_name)
        if found is None:
            return Status.error(f"no volume decisions for node {node_name!r}", plugin=NAME)
        try:
            written = await self._write(found, node_name)
            await self._wait_bound(found, written)
        except (BindError, ClientError) as err:
            return Status.error(f"binding volumes: {err}", plugin=NAME)
        finally:
            self.unreserve(state, pod, node_name)
        return None

    async def _write(self, found: PodVolumes, node_name: str) -> dict[str, int]:
        """The API updates: claimRef on chosen PVs, selected-node on claims to provision
        (each with the resourceVersion seen, so a concurrent change is a conflict).

        Returns the resourceVersion each annotated claim got, so the wait does not take
        the informer's older copy (still without the annotation) for a reset one: upstream
        puts its own writes into an assume cache for the same reason."""
        from pyk8s.api.registry import REGISTRY

        pvs, pvcs = (
            REGISTRY.get("", "v1", "persistentvolumes"),
            REGISTRY.get("", "v1", "persistentvolumeclaims"),
        )
        if self.client is None or pvs is None or pvcs is None:
            raise BindError("no API client")
        written: dict[str, int] = {}
        for claim, pv in found.static:
            meta = claim["metadata"]
            ref = {
                "kind": "PersistentVolumeClaim",
                "apiVersion": "v1",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            }
            if is_volume_bound_to_claim(pv, claim):
                continue
            body = {
                "metadata": {
                    "resourceVersion": pv["metadata"].get("resourceVersion"),
                    "annotations": {ANN_BOUND_BY_CONTROLLER: "yes"},
                },
                "spec": {"claimRef": ref},
            }
            await self.client.patch(pvs, pv["metadata"]["name"], body, patch_type="merge")
        for claim in found.provision:
            meta = claim["metadata"]
            if (meta.get("annotations") or {}).get(ANN_SELECTED_NODE) == node_name:
                continue
            body = {
                "metadata": {
                    "resourceVersion": meta.get("resourceVersion"),
                    "annotations": {ANN_SELECTED_NODE: node_name},
                }
            }
            patched = await self.client.patch(
                pvcs, meta["name"], body, meta["namespace"], patch_type="merge"
            )
            written[_key(claim)] = _revision(patched)
        return written

    async def _wait_bound(self, found: PodVolumes, written: dict[str, int]) -> None:
        """Upstream's ``checkBindings`` until every claim is bound, or the bind timeout."""
        deadline = time.monotonic() + self.bind_timeout
        while not self._bindings_done(found, written):
            left = deadline - time.monotonic()
            if left <= 0:
                raise BindError("context deadline exceeded")
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.add(waiter)
            try:
                await asyncio.wait_for(waiter, min(left, POLL_INTERVAL))
            except TimeoutError:
                pass
            finally:
                self._waiters.discard(waiter)

    def _bindings_done(self, found: PodVolumes, written: dict[str, int]) -> bool:
        done = True
        provisioned = {_key(c) for c in found.provision}
        for old in [c for c, _ in found.static] + found.provision:
            ns, name = old["metadata"]["namespace"], old["metadata"]["name"]
            claim = self._claims(ns).get(name)
            if claim is None or claim["metadata"].get("uid") != old["metadata"].get("uid"):
                raise BindError(f'persistentvolumeclaim "{name}" was deleted')
            if _revision(claim) < written.get(_key(claim), 0):
                done = False  # the informer has not seen our own write yet
                continue
            ann = claim["metadata"].get("annotations") or {}
            if not (claim.get("spec") or {}).get("volumeName"):
                if _key(claim) in provisioned and ANN_SELECTED_NODE not in ann:
                    raise BindError(f'selectedNode annotation reset for PVC "{name}"')
                done = False
            elif ANN_BIND_COMPLETED not in ann:
                done = False
        if done and found.node is not None:
            pvs = self._pvs()
            for claim in [c for c, _ in found.static] + found.provision:
                fresh = self._claims(claim["metadata"]["namespace"])[claim["metadata"]["name"]]
                volume = str(fresh["spec"]["volumeName"])
                pv = pvs.get(volume)
                if pv is None:
                    return False
                if not pv_allows_node(pv, found.node):
                    raise BindError(
                        f'pv "{volume}" node affinity doesn\'t match node '
                        f'"{found.node["metadata"]["name"]}"'
                    )
        return done
