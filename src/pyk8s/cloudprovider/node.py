"""The cloud node controllers: initialising new nodes, and noticing nodes the cloud lost.

* ``cloud-node-controller`` (upstream's CloudNodeController): a kubelet started with
  ``--cloud-provider=external`` registers its Node with the taint
  ``node.cloudprovider.kubernetes.io/uninitialized:NoSchedule``; this controller asks the
  provider's instances for the node's metadata and writes ``spec.providerID`` (if unset),
  the instance-type, zone and region labels (GA and beta keys, as upstream), the
  addresses (``status.addresses``), and then removes the taint so pods may land.
* ``cloud-node-lifecycle-controller`` (upstream's CloudNodeLifecycleController): a node
  that is not Ready is looked up; if the provider says its instance no longer exists the
  Node is deleted (event ``DeletingNode``), if it says the instance is shut down the node
  gets ``node.cloudprovider.kubernetes.io/shutdown:NoSchedule`` (removed when the node is
  Ready again). Not-Ready nodes are looked at again every ``monitor_period`` seconds.
"""

from __future__ import annotations

import copy
import logging

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import NORMAL, WARNING, Client, EventRecorder, Store, is_conflict, is_not_found
from pyk8s.client.errors import ClientError
from pyk8s.cloudprovider.provider import JSON, InstanceNotFound, InstancesV2, Obj
from pyk8s.controllers.runtime import Request, Result

__all__ = [
    "SHUTDOWN_TAINT",
    "UNINITIALIZED_TAINT",
    "CloudNodeReconciler",
    "NodeLifecycleReconciler",
    "node_ready",
]

log = logging.getLogger(__name__)

NODES: Resource = REGISTRY.get("", "v1", "nodes")  # type: ignore[assignment]
UNINITIALIZED_TAINT = "node.cloudprovider.kubernetes.io/uninitialized"
SHUTDOWN_TAINT = "node.cloudprovider.kubernetes.io/shutdown"
#: upstream's --node-monitor-period for the lifecycle controller
MONITOR_PERIOD = 5.0


def _taints(node: Obj) -> list[JSON]:
    return list((node.get("spec") or {}).get("taints") or [])


def _has_taint(node: Obj, key: str) -> bool:
    return any(t.get("key") == key for t in _taints(node))


def node_ready(node: Obj) -> bool | None:
    """The Ready condition: True, False, or None when the node reports none yet."""
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return None


async def _update(client: Client, node: JSON) -> Result | None:
    """PUT ``node`` (status included: a node's main resource writes it) with its
    resourceVersion; a requeue if it changed meanwhile, None when written or gone."""
    try:
        await client.update(NODES, node)
    except ClientError as err:
        if is_conflict(err):
            return Result(requeue=True)
        if not is_not_found(err):
            raise
    return None


class CloudNodeReconciler:
    def __init__(
        self, client: Client, nodes: Store, recorder: EventRecorder, instances: InstancesV2
    ) -> None:
        self.client = client
        self.nodes = nodes
        self.recorder = recorder
        self.instances = instances

    async def reconcile(self, request: Request) -> Result | None:
        cached = self.nodes.get_by_name(None, request.name)
        if cached is None or not _has_taint(cached, UNINITIALIZED_TAINT):
            return None
        try:
            md = await self.instances.instance_metadata(cached)
        except InstanceNotFound:
            self.recorder.event(
                cached, WARNING, "FailedToInitialize", "the cloud has no instance for this node"
            )
            return Result(requeue_after=30.0)
        name = request.name
        base = cached
        if md.node_addresses:
            addresses = [{"type": t, "address": a} for t, a in md.node_addresses]
            if addresses != (cached.get("status") or {}).get("addresses"):
                try:
                    base = await self.client.patch(
                        NODES,
                        name,
                        {"status": {"addresses": addresses}},
                        patch_type="merge",
                        subresource="status",
                    )
                except ClientError as err:
                    if is_not_found(err):
                        return None
                    raise
        node = copy.deepcopy(dict(base))
        meta, spec = node["metadata"], node.setdefault("spec", {})
        labels = meta.setdefault("labels", {})
        if md.instance_type:
            labels["node.kubernetes.io/instance-type"] = md.instance_type
            labels["beta.kubernetes.io/instance-type"] = md.instance_type
        if md.zone:
            labels["topology.kubernetes.io/zone"] = md.zone
            labels["failure-domain.beta.kubernetes.io/zone"] = md.zone
        if md.region:
            labels["topology.kubernetes.io/region"] = md.region
            labels["failure-domain.beta.kubernetes.io/region"] = md.region
        if not spec.get("providerID"):
            spec["providerID"] = md.provider_id
        spec["taints"] = [t for t in _taints(node) if t.get("key") != UNINITIALIZED_TAINT]
        retry = await _update(self.client, node)
        if retry is None:
            self.recorder.event(cached, NORMAL, "Synced", "Node synced successfully")
            log.info("node initialised", extra={"node": name, "providerID": spec["providerID"]})
        return retry


class NodeLifecycleReconciler:
    def __init__(
        self,
        client: Client,
        nodes: Store,
        recorder: EventRecorder,
        instances: InstancesV2,
        monitor_period: float = MONITOR_PERIOD,
    ) -> None:
        self.client = client
        self.nodes = nodes
        self.recorder = recorder
        self.instances = instances
        self.monitor_period = monitor_period

    async def _set_shutdown_taint(self, cached: Obj, on: bool) -> Result | None:
        node = copy.deepcopy(dict(cached))
        taints = [t for t in _taints(node) if t.get("key") != SHUTDOWN_TAINT]
        if on:
            taints.append({"key": SHUTDOWN_TAINT, "effect": "NoSchedule"})
        node.setdefault("spec", {})["taints"] = taints
        return await _update(self.client, node)

    async def reconcile(self, request: Request) -> Result | None:
        cached = self.nodes.get_by_name(None, request.name)
        if cached is None:
            return None
        ready = node_ready(cached)
        if ready:
            if _has_taint(cached, SHUTDOWN_TAINT):
                return await self._set_shutdown_taint(cached, False)
            return None
        if ready is None:  # not reporting yet: nothing to judge
            return Result(requeue_after=self.monitor_period)
        if not await self.instances.instance_exists(cached):
            self.recorder.event(
                cached,
                NORMAL,
                "DeletingNode",
                f"Deleting node {request.name} because it does not exist in the cloud provider",
            )
            try:
                await self.client.delete(NODES, request.name)
            except ClientError as err:
                if not is_not_found(err):
                    raise
            return None
        shutdown = await self.instances.instance_shutdown(cached)
        if shutdown != _has_taint(cached, SHUTDOWN_TAINT):
            retry = await self._set_shutdown_taint(cached, shutdown)
            if retry is not None:
                return retry
        return Result(requeue_after=self.monitor_period)
