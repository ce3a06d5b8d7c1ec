"""k3s's managed-etcd node controllers: ``kubectl delete node`` of a server removes its
etcd member.

Why: a server host that is gone for good stays an etcd member forever otherwise. Every
member counts towards quorum, so with three servers one dead member already means that
losing one more server stops the cluster; and only ``--cluster-reset`` got rid of it.
k3s removes the member of a deleted server Node, and so does this.

As k3s (``pkg/etcd``: its metadata and member controllers), in every server that runs
an embedded etcd member:

* **its own Node** (``--node-name``, else the host name) gets k3s's annotations
  ``etcd.k3s.cattle.io/node-name`` (the member's name) and
  ``etcd.k3s.cattle.io/node-address`` (its peer address), the
  ``node-role.kubernetes.io/etcd``, ``control-plane`` and ``master`` labels, and the
  finalizer ``wrangler.cattle.io/managed-etcd-controller`` (the one k3s's wrangler
  ``OnRemove`` handler adds), so the deletion waits for the removal;
* **a Node being deleted** with that finalizer: the member with the annotated name
  *and* address is removed (MemberRemove through this server's member), the server is
  dropped from every Addon's ``addon.pyk8s.io/servers`` (an Addon it alone held goes
  with its objects: :func:`pyk8s.controllers.deploy.forget_node`; k3s has no such list),
  then the finalizer. Every server races for it; a member already gone counts as
  removed.

A server runs it without leader election, as the removal is idempotent and each server
must annotate its own Node. Nodes without the finalizer (agents) are left alone.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from pyk8s.client import Client, ClientError, load_kubeconfig
from pyk8s.controllers._resources import NODES
from pyk8s.controllers.deploy import forget_node
from pyk8s.controllers.pvcprotection import set_finalizer
from pyk8s.controllers.runtime import Manager, Request, Result
from pyk8s.server.embedded_etcd import EtcdError, member_remove
from pyk8s.storage.endpoint import EtcdTLS

__all__ = ["FINALIZER", "NODE_ADDRESS_ANNOTATION", "NODE_NAME_ANNOTATION", "run"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

NODE_NAME_ANNOTATION = "etcd.k3s.cattle.io/node-name"
NODE_ADDRESS_ANNOTATION = "etcd.k3s.cattle.io/node-address"
FINALIZER = "wrangler.cattle.io/managed-etcd-controller"
ROLE_LABELS = (
    "node-role.kubernetes.io/etcd",
    "node-role.kubernetes.io/control-plane",
    "node-role.kubernetes.io/master",
)
#: a failed removal (etcd without quorum, a member still starting) is tried again after
RETRY = 5.0


class EtcdMemberReconciler:
    """One Node: annotate our own, remove a deleted one's member."""

    def __init__(
        self, manager: Manager, node_name: str, member: str, address: str, etcd: tuple[str, EtcdTLS]
    ) -> None:
        self.client = manager.client
        self.nodes = manager.informers.informer(NODES)
        self.node_name = node_name
        self.member, self.address = member, address
        self.etcd = etcd

    async def reconcile(self, request: Request) -> Result | None:
        node = self.nodes.store.get_by_name(None, request.name)
        if node is None:
            return None
        meta = node["metadata"]
        if meta.get("deletionTimestamp"):
            if FINALIZER not in (meta.get("finalizers") or []):
                return None
            return await self._remove(node)
        if request.name == self.node_name:
            await self._annotate_self(node)
        return None

    async def _annotate_self(self, node: Obj) -> None:
        meta = node["metadata"]
        annotations = meta.get("annotations") or {}
        labels = meta.get("labels") or {}
        finalizers = list(meta.get("finalizers") or [])
        want = {NODE_NAME_ANNOTATION: self.member, NODE_ADDRESS_ANNOTATION: self.address}
        if (
            all(annotations.get(k) == v for k, v in want.items())
            and all(labels.get(k) == "true" for k in ROLE_LABELS)
            and FINALIZER in finalizers
        ):
            return
        if FINALIZER not in finalizers:
            finalizers.append(FINALIZER)
        patch = {
            "metadata": {
                "resourceVersion": meta.get("resourceVersion"),
                "annotations": want,
                "labels": dict.fromkeys(ROLE_LABELS, "true"),
                "finalizers": finalizers,
            }
        }
        await self.client.patch(NODES, meta["name"], patch, None, patch_type="merge")
        log.info(
            "annotated this server's node", extra={"node": meta["name"], "member": self.member}
        )

    async def _remove(self, node: Obj) -> Result | None:
        meta = node["metadata"]
        annotations = meta.get("annotations") or {}
        name = annotations.get(NODE_NAME_ANNOTATION)
        address = annotations.get(NODE_ADDRESS_ANNOTATION)
        if name and address:
            target, tls = self.etcd
            try:
                removed = await member_remove(target, tls, name, address)
            except (EtcdError, OSError) as err:
                log.warning("etcd member removal failed: %s", err, extra={"node": meta["name"]})
                return Result(requeue_after=RETRY)
            if not removed:  # member_remove logs a removal
                log.info("no etcd member %s left", name, extra={"node": meta["name"]})
        try:
            await forget_node(self.client, meta["name"])
        except ClientError as err:  # another server's update won: look again
            log.warning(
                "dropping the node from addons failed: %s", err, extra={"node": meta["name"]}
            )
            return Result(requeue_after=RETRY)
        await set_finalizer(self.client, NODES, node, FINALIZER, False)
        return None


async def run(
    kubeconfig: Path,
    node_name: str,
    member: str,
    address: str,
    etcd: tuple[str, EtcdTLS],
    stop: asyncio.Event,
) -> None:
    """Run the controller for this server (its Node ``node_name``, its member ``member``
    on ``address``; ``etcd`` is the local member's ``host:port`` and client TLS) until
    ``stop``."""
    async with Client(load_kubeconfig(kubeconfig)) as client:
        manager = Manager(client, component="etcd-member-controller")
        reconciler = EtcdMemberReconciler(manager, node_name, member, address, etcd)
        controller = manager.add("managed-etcd-controller", reconciler, workers=1)
        controller.watch(reconciler.nodes)
        await manager.run(stop)
