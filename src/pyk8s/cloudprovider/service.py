"""The service controller: a cloud load balancer for every LoadBalancer Service.

Upstream's ``service-lb-controller`` (k8s.io/cloud-provider/controllers/service), level
based: for each Service of ``type: LoadBalancer`` whose ``spec.loadBalancerClass`` is
unset or one the provider answers, it

* adds the finalizer ``service.kubernetes.io/load-balancer-cleanup`` first, so a delete
  waits for the load balancer to go;
* calls the provider's ``ensure_load_balancer`` with the eligible nodes (Ready, without
  ``node.kubernetes.io/exclude-from-external-load-balancers``, not being deleted by the
  autoscaler) and writes what it returns to ``status.loadBalancer``;
* records ``EnsuringLoadBalancer``/``EnsuredLoadBalancer`` when the service's load
  balancer spec changed, ``UpdatedLoadBalancer`` when only the nodes did, and
  ``SyncLoadBalancerFailed`` (Warning) when the provider fails (then retried with
  backoff);
* when a service of a class it answers is deleted or changes type:
  ``DeletingLoadBalancer``, ``ensure_load_balancer_deleted``, ``DeletedLoadBalancer``,
  clears the status and removes the finalizer.

Node changes that matter to a load balancer (readiness, labels, addresses, taints)
re-queue every load balancer, and each is ensured again every 30 s; a change to one load
balancer re-queues the others (they may share ports on a node); EndpointSlice changes
re-queue the Local-policy ones.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import NORMAL, WARNING, Client, EventRecorder, Store, is_conflict, is_not_found
from pyk8s.client.errors import ClientError
from pyk8s.cloudprovider.node import node_ready
from pyk8s.cloudprovider.provider import LoadBalancer, Obj
from pyk8s.controllers.runtime import Request, Result

__all__ = [
    "EXCLUDE_LB_LABEL",
    "FINALIZER",
    "ServiceReconciler",
    "eligible_nodes",
    "node_lb_key",
]

log = logging.getLogger(__name__)

SERVICES: Resource = REGISTRY.get("", "v1", "services")  # type: ignore[assignment]
FINALIZER = "service.kubernetes.io/load-balancer-cleanup"
EXCLUDE_LB_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
TO_BE_DELETED_TAINT = "ToBeDeletedByClusterAutoscaler"
#: a load balancer is ensured again this often (what the provider checks on the nodes
#: — a port freed by a host process — sends no event)
RESYNC_PERIOD = 30.0


def _included(node: Obj) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    taints = (node.get("spec") or {}).get("taints") or []
    return (
        EXCLUDE_LB_LABEL not in labels
        and not any(t.get("key") == TO_BE_DELETED_TAINT for t in taints)
        and not (node.get("metadata") or {}).get("deletionTimestamp")
    )


def eligible_nodes(nodes: Sequence[Obj]) -> list[Obj]:
    """The nodes a load balancer may send traffic to, by name."""
    eligible = (n for n in nodes if _included(n) and node_ready(n) is True)
    return sorted(eligible, key=lambda n: n["metadata"]["name"])


def node_lb_key(node: Obj) -> tuple[Any, ...]:
    """What about a node matters to a load balancer (a heartbeat changes none of it)."""
    meta, status = node.get("metadata") or {}, node.get("status") or {}
    return (
        node_ready(node) is True,
        _included(node),
        orjson.dumps(meta.get("labels") or {}, option=orjson.OPT_SORT_KEYS),
        tuple((a.get("type"), a.get("address")) for a in status.get("addresses") or []),
    )


def _spec_key(svc: Obj) -> str:
    """The load-balancer-relevant spec (upstream's needsUpdate compares these fields)."""
    spec = svc.get("spec") or {}
    fields = {
        k: spec.get(k)
        for k in (
            "ports",
            "loadBalancerIP",
            "loadBalancerSourceRanges",
            "externalTrafficPolicy",
            "healthCheckNodePort",
            "externalIPs",
            "sessionAffinity",
            "loadBalancerClass",
            "allocateLoadBalancerNodePorts",
        )
    }
    fields["uid"] = (svc.get("metadata") or {}).get("uid")
    return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()


class ServiceReconciler:
    def __init__(
        self,
        client: Client,
        services: Store,
        nodes: Store,
        recorder: EventRecorder,
        balancer: LoadBalancer,
        owns: Callable[[Obj], bool],
        cluster_name: str = "kubernetes",
        resync_period: float = RESYNC_PERIOD,
    ) -> None:
        self.client = client
        self.resync_period = resync_period
        self.services = services
        self.nodes = nodes
        self.recorder = recorder
        self.balancer = balancer
        self.owns = owns
        self.cluster_name = cluster_name
        #: per (namespace, name): (spec key, node names) last ensured
        self._ensured: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}

    def wants_load_balancer(self, svc: Obj) -> bool:
        return (
            (svc.get("spec") or {}).get("type") == "LoadBalancer"
            and self.owns(svc)
            and not (svc.get("metadata") or {}).get("deletionTimestamp")
        )

    async def reconcile(self, request: Request) -> Result | None:
        svc: Obj | None = self.services.get_by_name(request.namespace, request.name)
        key = (request.namespace, request.name)
        if svc is None:
            self._ensured.pop(key, None)
            return None
        finalizers = svc["metadata"].get("finalizers") or []
        if not self.wants_load_balancer(svc):
            self._ensured.pop(key, None)
            # another class's controller (e.g. the address-pool one beside the node-ports
            # one) uses the same finalizer: its cleanup is its own
            if FINALIZER in finalizers and self.owns(svc):
                await self._delete(svc)
            return None
        if FINALIZER not in finalizers:
            svc = await self._set_finalizers(svc, [*finalizers, FINALIZER])
            if svc is None:
                return None
        nodes = eligible_nodes(self.nodes.list())
        names = tuple(n["metadata"]["name"] for n in nodes)
        spec = _spec_key(svc)
        previous = self._ensured.get(key)
        spec_changed = previous is None or previous[0] != spec
        if spec_changed:
            self.recorder.event(svc, NORMAL, "EnsuringLoadBalancer", "Ensuring load balancer")
        try:
            status = await self.balancer.ensure_load_balancer(self.cluster_name, svc, nodes)
        except Exception as err:
            self._ensured.pop(key, None)
            self.recorder.event(
                svc,
                WARNING,
                "SyncLoadBalancerFailed",
                f"Error syncing load balancer: failed to ensure load balancer: {err}",
            )
            raise
        await self._write_status(svc, status)
        self._ensured[key] = (spec, names)
        if spec_changed:
            self.recorder.event(svc, NORMAL, "EnsuredLoadBalancer", "Ensured load balancer")
        elif previous is not None and previous[1] != names:
            self.recorder.event(
                svc, NORMAL, "UpdatedLoadBalancer", "Updated load balancer with new hosts"
            )
        return Result(requeue_after=self.resync_period)

    async def _delete(self, svc: Obj) -> None:
        self.recorder.event(svc, NORMAL, "DeletingLoadBalancer", "Deleting load balancer")
        try:
            await self.balancer.ensure_load_balancer_deleted(self.cluster_name, svc)
        except Exception as err:
            self.recorder.event(
                svc,
                WARNING,
                "SyncLoadBalancerFailed",
                f"Error syncing load balancer: failed to delete load balancer: {err}",
            )
            raise
        if not svc["metadata"].get("deletionTimestamp"):
            svc = await self._write_status(svc, {})
        self.recorder.event(svc, NORMAL, "DeletedLoadBalancer", "Deleted load balancer")
        remaining = [f for f in svc["metadata"].get("finalizers") or [] if f != FINALIZER]
        await self._set_finalizers(svc, remaining)

    async def _set_finalizers(self, svc: Obj, finalizers: list[str]) -> Obj | None:
        """The service with ``finalizers`` (compare-and-swap; a conflict re-queues)."""
        meta = svc["metadata"]
        patch = {
            "metadata": {
                "finalizers": finalizers or None,
                "resourceVersion": meta.get("resourceVersion"),
            }
        }
        try:
            return await self.client.patch(
                SERVICES, meta["name"], patch, meta.get("namespace"), patch_type="merge"
            )
        except ClientError as err:
            if is_not_found(err):
                return None
            if is_conflict(err):
                return None  # the newer version is queued and re-read
            raise

    async def _write_status(self, svc: Obj, status: dict[str, Any]) -> Obj:
        """``status.loadBalancer`` set to ``status``; the service as written."""
        current = (svc.get("status") or {}).get("loadBalancer") or {}
        wanted = copy.deepcopy(status)
        if current == wanted:
            return svc
        meta = svc["metadata"]
        patch = {"status": {"loadBalancer": {"ingress": wanted.get("ingress") or None}}}
        try:
            return await self.client.patch(
                SERVICES,
                meta["name"],
                patch,
                meta.get("namespace"),
                patch_type="merge",
                subresource="status",
            )
        except ClientError as err:
            if not is_not_found(err):
                raise
        return svc
