"""NodeRestriction: a kubelet may change only what belongs to its own node.

Why: the Node authorizer lets every node create, update and patch Nodes, write pod
statuses, create mirror pods and leases -- it cannot see which object a write names or
what it holds. This plugin (upstream's of the same name, in the mutating phase, as
upstream's ``Admit``) sees the object and keeps a node (``system:node:<name>`` in
``system:nodes``) to:

* its own Node, without adding or changing ``node-restriction.kubernetes.io/`` labels or
  ``kubernetes.io``/``k8s.io`` labels the kubelet does not own, its taints or configSource;
* mirror pods bound to itself, owned by its Node, referencing no secret, configmap,
  service account or claim; deleting, evicting and updating the status of its own pods;
* its own Lease in ``kube-node-lease``; PVC status (capacity, conditions) only;
* service-account tokens bound to a pod on itself.

Refusals are 403 Forbidden with upstream's texts (``nodes "b" is forbidden: node "a" is
not allowed to modify node "b"``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, ClassVar

from pyk8s.api import errors
from pyk8s.apiserver.admission import (
    CREATE,
    DELETE,
    UPDATE,
    Attributes,
    Context,
    Plugin,
    forbidden,
)
from pyk8s.apiserver.node import node_identity
from pyk8s.apiserver.node.authorizer import NODE_LEASE_NAMESPACE
from pyk8s.apiserver.node.graph import (
    MIRROR_POD_ANNOTATION,
    pod_configmap_names,
    pod_secret_names,
)

__all__ = ["NodeRestriction", "forbidden_labels"]

JSON = dict[str, Any]

NODE_RESTRICTION_LABEL_NAMESPACE = "node-restriction.kubernetes.io"
#: labels a kubelet sets on its own Node (upstream's ``kubeletapis.IsKubeletLabel``)
KUBELET_LABELS = frozenset(
    {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
    }
)
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


def _in_namespace(label_namespace: str, namespace: str) -> bool:
    return label_namespace == namespace or label_namespace.endswith("." + namespace)


def _label_namespace(key: str) -> str:
    prefix, slash, _ = key.partition("/")
    return prefix if slash else ""


def _is_kubelet_label(key: str) -> bool:
    ns = _label_namespace(key)
    return key in KUBELET_LABELS or any(_in_namespace(ns, k) for k in KUBELET_LABEL_NAMESPACES)


def forbidden_labels(new: Mapping[str, str], old: Mapping[str, str]) -> list[str]:
    """The added, removed or changed label keys a node may not touch, sorted."""
    modified = {k for k in new.keys() | old.keys() if new.get(k) != old.get(k)}
    out = []
    for key in modified:
        ns = _label_namespace(key)
        restricted = _in_namespace(ns, NODE_RESTRICTION_LABEL_NAMESPACE)
        kubernetes = any(_in_namespace(ns, k) for k in ("kubernetes.io", "k8s.io"))
        if restricted or (kubernetes and not _is_kubelet_label(key)):
            out.append(key)
    return sorted(out)


def _meta(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (obj or {}).get("metadata") or {}


def _spec(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (obj or {}).get("spec") or {}


class NodeRestriction(Plugin):
    name = "NodeRestriction"
    operations: ClassVar[frozenset[str]] = frozenset({CREATE, UPDATE, DELETE})

    def __init__(self, context: Context) -> None:
        self.reader = context.reader

    async def admit(self, attrs: Attributes) -> bool:
        """Refuses what a node may not write; never changes the object (upstream's
        plugin is a mutating one, so it runs before the webhooks)."""
        node, is_node = node_identity(attrs.user)
        if not is_node:
            return False
        if not node:
            raise forbidden(attrs, f'could not determine node from user "{attrs.user.name}"')
        group_resource = attrs.group_resource
        if group_resource == ("", "pods"):
            if not attrs.subresource:
                await self._pod(node, attrs)
            elif attrs.subresource == "status":
                self._pod_status(node, attrs)
            elif attrs.subresource == "eviction":
                await self._pod_eviction(node, attrs)
            else:
                raise forbidden(
                    attrs,
                    f'unexpected pod subresource "{attrs.subresource}", '
                    "only 'status' and 'eviction' are allowed",
                )
        elif group_resource == ("", "nodes"):
            self._node(node, attrs)
        elif group_resource == ("", "persistentvolumeclaims"):
            if attrs.subresource != "status":
                raise forbidden(attrs, "may only update PVC status")
            self._pvc_status(node, attrs)
        elif group_resource == ("", "serviceaccounts"):
            await self._service_account(node, attrs)
        elif group_resource == ("coordination.k8s.io", "leases"):
            self._lease(node, attrs)
        return False

    async def _existing_pod(self, attrs: Attributes, name: str) -> JSON:
        pod = await self.reader.get("", "pods", attrs.namespace, name)
        if pod is None:
            raise errors.not_found("pods", name)
        return pod

    # ------------------------------------------------------------------ pods

    async def _pod(self, node: str, attrs: Attributes) -> None:
        if attrs.operation == CREATE:
            await self._mirror_pod(node, attrs)
        elif attrs.operation == DELETE:
            pod = await self._existing_pod(attrs, attrs.name)
            if _spec(pod).get("nodeName") != node:
                raise forbidden(
                    attrs, f'node "{node}" can only delete pods with spec.nodeName set to itself'
                )
        else:
            raise forbidden(
                attrs,
                f'unexpected operation "{attrs.operation}", '
                f'node "{node}" can only create and delete mirror pods',
            )

    async def _mirror_pod(self, node: str, attrs: Attributes) -> None:
        pod = attrs.obj or {}
        meta, spec = _meta(pod), _spec(pod)
        if MIRROR_POD_ANNOTATION not in (meta.get("annotations") or {}):
            raise forbidden(
                attrs,
                f'pod does not have "{MIRROR_POD_ANNOTATION}" annotation, '
                f'node "{node}" can only create mirror pods',
            )
        if spec.get("nodeName") != node:
            raise forbidden(
                attrs, f'node "{node}" can only create pods with spec.nodeName set to itself'
            )
        owners = meta.get("ownerReferences") or []
        if len(owners) > 1:
            raise forbidden(
                attrs,
                f'node "{node}" can only create pods with a single owner reference set to itself',
            )
        if not owners:
            raise forbidden(
                attrs, f'node "{node}" can only create pods with an owner reference set to itself'
            )
        owner = owners[0]
        if (owner.get("apiVersion"), owner.get("kind"), owner.get("name")) != ("v1", "Node", node):
            raise forbidden(
                attrs, f'node "{node}" can only create pods with an owner reference set to itself'
            )
        if owner.get("controller") is not True:
            raise forbidden(
                attrs,
                f'node "{node}" can only create pods with a controller owner reference set to '
                "itself",
            )
        if owner.get("blockOwnerDeletion") is True:
            raise forbidden(
                attrs, f'node "{node}" must not set blockOwnerDeletion on an owner reference'
            )
        node_obj = await self.reader.get("", "nodes", "", node)
        if node_obj is None:
            raise errors.not_found("nodes", node)
        uid = str(_meta(node_obj).get("uid") or "")
        if owner.get("uid") != uid:
            raise forbidden(
                attrs, f"node {node} UID mismatch: expected {owner.get('uid', '')} got {uid}"
            )
        if spec.get("serviceAccountName"):
            raise forbidden(
                attrs, f'node "{node}" can not create pods that reference a service account'
            )
        if any(pod_secret_names(spec)):
            raise forbidden(attrs, f'node "{node}" can not create pods that reference secrets')
        if any(pod_configmap_names(spec)):
            raise forbidden(attrs, f'node "{node}" can not create pods that reference configmaps')
        volumes = [v for v in spec.get("volumes") or () if isinstance(v, Mapping)]
        for v in volumes:
            for source in (v.get("projected") or {}).get("sources") or ():
                if isinstance(source, Mapping) and source.get("clusterTrustBundle") is not None:
                    raise forbidden(
                        attrs,
                        f'node "{node}" can not create pods that reference clustertrustbundles',
                    )
        if any(v.get("persistentVolumeClaim") is not None for v in volumes):
            raise forbidden(
                attrs, f'node "{node}" can not create pods that reference persistentvolumeclaims'
            )

    def _pod_status(self, node: str, attrs: Attributes) -> None:
        if attrs.operation != UPDATE:
            raise forbidden(attrs, f'unexpected operation "{attrs.operation}"')
        if _spec(attrs.old).get("nodeName") != node:
            raise forbidden(
                attrs,
                f'node "{node}" can only update pod status for pods with spec.nodeName set to '
                "itself",
            )
        if (_meta(attrs.old).get("labels") or {}) != (_meta(attrs.obj).get("labels") or {}):
            raise forbidden(attrs, f'node "{node}" cannot update labels through pod status')

        def claims(pod: Mapping[str, Any] | None) -> list[tuple[Any, Any]]:
            statuses = ((pod or {}).get("status") or {}).get("resourceClaimStatuses") or []
            return [(s.get("name"), s.get("resourceClaimName")) for s in statuses]

        if claims(attrs.old) != claims(attrs.obj):
            raise forbidden(attrs, f'node "{node}" cannot update resource claim statues')

    async def _pod_eviction(self, node: str, attrs: Attributes) -> None:
        if attrs.operation != CREATE:
            raise forbidden(attrs, f"unexpected operation {attrs.operation}")
        name = attrs.name or str(_meta(attrs.obj).get("name") or "")
        if not name:
            raise forbidden(attrs, "could not determine pod from request data")
        pod = await self._existing_pod(attrs, name)
        if _spec(pod).get("nodeName") != node:
            raise forbidden(
                attrs, f"node {node} can only evict pods with spec.nodeName set to itself"
            )

    # ------------------------------------------------------------------ nodes

    def _node(self, node: str, attrs: Attributes) -> None:
        requested = attrs.name or (
            str(_meta(attrs.obj).get("name") or "") if attrs.operation == CREATE else ""
        )
        if requested != node:
            raise forbidden(attrs, f'node "{node}" is not allowed to modify node "{requested}"')
        new_spec, old_spec = _spec(attrs.obj), _spec(attrs.old)
        new_labels = _meta(attrs.obj).get("labels") or {}
        if attrs.operation == CREATE:
            if new_spec.get("configSource") is not None:
                raise forbidden(
                    attrs,
                    f'node "{node}" is not allowed to create pods with a non-nil configSource',
                )
            labels = forbidden_labels(new_labels, {})
            if labels:
                raise forbidden(
                    attrs,
                    f'node "{node}" is not allowed to set the following labels: '
                    + ", ".join(labels),
                )
        elif attrs.operation == UPDATE:
            source = new_spec.get("configSource")
            if source is not None and source != old_spec.get("configSource"):
                raise forbidden(
                    attrs,
                    f'node "{node}" is not allowed to update configSource to a new non-nil '
                    "configSource",
                )
            if (new_spec.get("taints") or []) != (old_spec.get("taints") or []):
                raise forbidden(attrs, f'node "{node}" is not allowed to modify taints')
            labels = forbidden_labels(new_labels, _meta(attrs.old).get("labels") or {})
            if labels:
                raise forbidden(attrs, "is not allowed to modify labels: " + ", ".join(labels))

    # ------------------------------------------------------------------ the rest

    def _pvc_status(self, node: str, attrs: Attributes) -> None:
        if attrs.operation != UPDATE:
            raise forbidden(attrs, f'unexpected operation "{attrs.operation}"')

        def comparable(pvc: Mapping[str, Any] | None) -> JSON:
            out = copy.deepcopy(dict(pvc or {}))
            meta = out.setdefault("metadata", {})
            for key in ("resourceVersion", "managedFields"):
                meta.pop(key, None)
            status = out.setdefault("status", {})
            for key in ("capacity", "conditions", "allocatedResourceStatuses"):
                status.pop(key, None)
            status.pop("allocatedResources", None)
            return out

        if comparable(attrs.old) != comparable(attrs.obj):
            raise forbidden(
                attrs,
                f'node "{node}" is not allowed to update fields other than status.capacity '
                "and status.conditions",
            )

    async def _service_account(self, node: str, attrs: Attributes) -> None:
        if attrs.operation != CREATE or attrs.subresource != "token":
            return
        ref = _spec(attrs.obj).get("boundObjectRef")
        if (
            not isinstance(ref, Mapping)
            or ref.get("apiVersion") != "v1"
            or ref.get("kind") != "Pod"
            or not ref.get("name")
        ):
            raise forbidden(attrs, "node requested token not bound to a pod")
        if not ref.get("uid"):
            raise forbidden(attrs, "node requested token with a pod binding without a uid")
        pod = await self._existing_pod(attrs, str(ref["name"]))
        if ref.get("uid") != _meta(pod).get("uid"):
            raise forbidden(
                attrs,
                f"the UID in the bound object reference ({ref['uid']}) does not match the UID "
                "in record. The object might have been deleted and then recreated",
            )
        if _spec(pod).get("nodeName") != node:
            raise forbidden(
                attrs, "node requested token bound to a pod scheduled on a different node"
            )

    def _lease(self, node: str, attrs: Attributes) -> None:
        if attrs.namespace != NODE_LEASE_NAMESPACE:
            raise forbidden(
                attrs, f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace'
            )
        name = str(_meta(attrs.obj).get("name") or "") if attrs.operation == CREATE else attrs.name
        if name != node:
            raise forbidden(
                attrs, "can only access node lease with the same name as the requesting node"
            )
