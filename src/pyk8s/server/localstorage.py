"""The ``local-path`` StorageClass ``pyk8s server`` creates, as k3s ships its own.

Why: a claim that names no class needs a default one to be provisioned at all, and
most charts' claims name none. The class is WaitForFirstConsumer (a node-local
directory can only be made once the scheduler picked the pod's node) with reclaim
policy Delete, served by the provisioner each node agent runs
(:mod:`pyk8s.localpath`). An existing class of that name is left as its owner edited
it.

The provisioner runs in every node's kubelet process with the node's credentials
(``system:node:<name>`` once the kubelet has bootstrapped its certificate). The Node
authorizer has no opinion on what a provisioner does (list claims, create and delete
PersistentVolumes), so RBAC decides: the ClusterRole ``pyk8s:local-path-provisioner``
(k3s's ``local-path-provisioner-role``, less its ConfigMap rules) is bound to the group
``system:nodes``. Unlike k3s, whose provisioner is one Deployment with a service account,
every node may therefore create and delete PersistentVolumes.
"""

from __future__ import annotations

from typing import Any

from pyk8s.api.pvbinding import ANN_DEFAULT_CLASS
from pyk8s.apiserver.handlers import ResourceHandlers
from pyk8s.localpath import PROVISIONER_NAME
from pyk8s.server.identities import create_missing

LOCAL_PATH_CLASS: dict[str, Any] = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {"name": "local-path", "annotations": {ANN_DEFAULT_CLASS: "true"}},
    "provisioner": PROVISIONER_NAME,
    "reclaimPolicy": "Delete",
    "volumeBindingMode": "WaitForFirstConsumer",
}


_RBAC = "rbac.authorization.k8s.io/v1"
_ROLE = "pyk8s:local-path-provisioner"

PROVISIONER_POLICY: tuple[dict[str, Any], ...] = (
    {
        "apiVersion": _RBAC,
        "kind": "ClusterRole",
        "metadata": {"name": _ROLE},
        "rules": [
            {"apiGroups": [""], "resources": ["persistentvolumeclaims"],
             "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["persistentvolumes"],
             "verbs": ["get", "list", "watch", "create", "delete"]},
            {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"],
             "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        ],
    },
    {
        "apiVersion": _RBAC,
        "kind": "ClusterRoleBinding",
        "metadata": {"name": _ROLE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": _ROLE},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                      "name": "system:nodes"}],
    },
)  # fmt: skip


async def ensure_local_storage(handlers: ResourceHandlers) -> None:
    """The provisioners' RBAC and the default ``local-path`` class (existing ones kept)."""
    await create_missing(handlers, (*PROVISIONER_POLICY, LOCAL_PATH_CLASS))
