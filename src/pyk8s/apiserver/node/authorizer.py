"""The Node authorizer (``--authorization-mode Node``), as upstream's.

Why: every kubelet needs secrets, configmaps and volumes -- but only those of the pods
bound to its own node. RBAC cannot say "the secrets of my pods", so upstream puts this
authorizer in front of RBAC for users ``system:node:<name>`` in ``system:nodes``:

* secrets and configmaps: get/list/watch of one named object related to the node in the
  graph (:mod:`.graph`); PVCs, PVs: get of a related one; a PVC's status: update/patch;
* VolumeAttachments: get/list/watch of one by name (upstream: get of one related to the
  node; the kubelet here watches the one it waits for);
* ``serviceaccounts/token``: create, for a service account one of its pods runs as;
* Leases: in ``kube-node-lease``, only the node's own (create is checked by
  NodeRestriction, which sees the object);
* Nodes: read only its own; create/update/patch and status writes are allowed here and
  narrowed to its own Node by NodeRestriction;
* Pods: get of a pod bound to it; list/watch only with ``spec.nodeName=<itself>``;
  create/delete (mirror pods), status updates and evictions, narrowed by NodeRestriction;
* everything else: upstream's ``system:node`` rules, the same for every node.

A refusal is never a deny: the authorizer abstains with upstream's reason, so RBAC may
still allow the request (a node bound to more by a ClusterRoleBinding gets it).
"""

from __future__ import annotations

from pyk8s.api.selectors import SelectorError, parse_field_selector
from pyk8s.apiserver.authn import UserInfo
from pyk8s.apiserver.authz import Decision, RequestAttributes
from pyk8s.apiserver.node import node_identity
from pyk8s.apiserver.node.graph import (
    CONFIGMAP,
    POD,
    PV,
    PVC,
    SECRET,
    SERVICE_ACCOUNT,
    NodeGraph,
)
from pyk8s.apiserver.rbac.bootstrappolicy import cluster_roles
from pyk8s.apiserver.rbac.rules import rule_allows, rules_from_json
from pyk8s.apiserver.reviews import Rules
from pyk8s.apiserver.watchcache import WatchCache

__all__ = ["NODE_LEASE_NAMESPACE", "NodeAuthorizer"]

NODE_LEASE_NAMESPACE = "kube-node-lease"

_ALLOW = Decision.allow()
_NO_OPINION = Decision.abstain()


def _field_requires(attrs: RequestAttributes, field: str) -> str | None:
    """The value a list/watch's field selector requires of ``field`` (``=`` or ``==``)."""
    if not attrs.field_selector:
        return None
    try:
        return parse_field_selector(attrs.field_selector).requires_exact_match(field)
    except SelectorError:
        return None


class NodeAuthorizer:
    """Upstream's ``NodeAuthorizer`` (see the module docstring)."""

    def __init__(self, cache: WatchCache) -> None:
        self.graph = NodeGraph(cache)
        role = next(r for r in cluster_roles() if r["metadata"]["name"] == "system:node")
        self._node_rules = rules_from_json(role["rules"])

    async def authorize(self, user: UserInfo, attributes: RequestAttributes) -> Decision:
        node, is_node = node_identity(user)
        if not is_node:
            return _NO_OPINION
        if not node:
            return Decision.abstain(f'unknown node for user "{user.name}"')
        a = attributes
        if a.resource_request:
            decide = _BY_RESOURCE.get((a.api_group, a.resource))
            if decide is not None:
                return decide(self, node, a)
        if any(rule_allows(rule, a) for rule in self._node_rules):
            return _ALLOW
        return _NO_OPINION

    async def rules_for(self, user: UserInfo, namespace: str) -> Rules:
        if node_identity(user)[1]:
            return Rules(
                incomplete=True,
                evaluation_error="node authorizer does not support user rule resolution",
            )
        return Rules()

    # ------------------------------------------------------------------ the graph

    def _related(self, node: str, vertex_type: str, a: RequestAttributes) -> Decision:
        if not a.name:
            return Decision.abstain("No Object name found")
        if self.graph.has_path((vertex_type, a.namespace, a.name), node):
            return _ALLOW
        return Decision.abstain(f"no relationship found between node '{node}' and this object")

    def _get(self, node: str, vertex_type: str, a: RequestAttributes) -> Decision:
        if a.verb != "get":
            return Decision.abstain("can only get individual resources of this type")
        if a.subresource:
            return Decision.abstain("cannot get subresource")
        return self._related(node, vertex_type, a)

    def _read_namespaced(self, node: str, vertex_type: str, a: RequestAttributes) -> Decision:
        if a.verb not in ("get", "list", "watch"):
            return Decision.abstain("can only read resources of this type")
        if a.subresource:
            return Decision.abstain("cannot read subresource")
        if not a.namespace:
            return Decision.abstain("can only read namespaced object of this type")
        return self._related(node, vertex_type, a)

    # ------------------------------------------------------------------ per resource

    def _secret(self, node: str, a: RequestAttributes) -> Decision:
        return self._read_namespaced(node, SECRET, a)

    def _configmap(self, node: str, a: RequestAttributes) -> Decision:
        return self._read_namespaced(node, CONFIGMAP, a)

    def _pvc(self, node: str, a: RequestAttributes) -> Decision:
        if a.subresource != "status":
            return self._get(node, PVC, a)
        if a.verb not in ("update", "patch"):
            return Decision.abstain("can only get/update/patch this type")
        return self._related(node, PVC, a)

    def _pv(self, node: str, a: RequestAttributes) -> Decision:
        return self._get(node, PV, a)

    def _volume_attachment(self, node: str, a: RequestAttributes) -> Decision:
        # upstream: get only; here also list/watch of one by name, so the kubelet waits
        # for the attacher's status write on a watch instead of polling
        if a.verb not in ("get", "list", "watch") or a.subresource:
            return Decision.abstain("can only get individual resources of this type")
        if not a.name:
            return Decision.abstain("No Object name found")
        return _ALLOW

    def _service_account(self, node: str, a: RequestAttributes) -> Decision:
        if a.verb != "create" or not a.name:
            return Decision.abstain("can only create tokens for individual service accounts")
        if a.subresource != "token":
            return Decision.abstain("can only create token subresource of serviceaccount")
        return self._related(node, SERVICE_ACCOUNT, a)

    def _lease(self, node: str, a: RequestAttributes) -> Decision:
        if a.verb not in ("get", "create", "update", "patch", "delete"):
            return Decision.abstain("can only get, create, update, patch, or delete a node lease")
        if a.namespace != NODE_LEASE_NAMESPACE:
            return Decision.abstain(
                f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace'
            )
        if a.verb != "create" and a.name != node:
            return Decision.abstain(
                "can only access node lease with the same name as the requesting node"
            )
        return _ALLOW

    def _node(self, node: str, a: RequestAttributes) -> Decision:
        if not a.subresource:
            if a.verb in ("create", "update", "patch"):
                return _ALLOW  # NodeRestriction keeps a node to its own Node
            if a.verb in ("get", "list", "watch"):
                # by name, not the graph: a kubelet reads its Node before creating it
                if a.name == node:
                    return _ALLOW
                if not a.name:
                    return Decision.abstain(
                        f"node '{node}' cannot read all nodes, only its own Node object"
                    )
                return Decision.abstain(
                    f"node '{node}' cannot read '{a.name}', only its own Node object"
                )
        elif a.subresource == "status" and a.verb in ("update", "patch"):
            return _ALLOW  # NodeRestriction keeps a node to its own status
        return _NO_OPINION

    def _pod(self, node: str, a: RequestAttributes) -> Decision:
        if not a.subresource:
            if a.verb == "get":
                return self._get(node, POD, a)
            if a.verb in ("list", "watch"):
                if _field_requires(a, "spec.nodeName") == node:
                    return _ALLOW
                if a.name:
                    return self._related(node, POD, a)
                return Decision.abstain(
                    "can only list/watch pods with spec.nodeName field selector"
                )
            if a.verb in ("create", "delete"):
                return _ALLOW  # mirror pods; NodeRestriction keeps them to the node
        elif a.subresource == "status" and a.verb in ("update", "patch"):
            return _ALLOW  # NodeRestriction keeps a node to its own pods
        elif a.subresource == "eviction" and a.verb == "create":
            return _ALLOW  # NodeRestriction keeps a node to evicting its own pods
        return _NO_OPINION


_BY_RESOURCE = {
    ("", "secrets"): NodeAuthorizer._secret,
    ("", "configmaps"): NodeAuthorizer._configmap,
    ("", "persistentvolumeclaims"): NodeAuthorizer._pvc,
    ("", "persistentvolumes"): NodeAuthorizer._pv,
    ("storage.k8s.io", "volumeattachments"): NodeAuthorizer._volume_attachment,
    ("", "serviceaccounts"): NodeAuthorizer._service_account,
    ("coordination.k8s.io", "leases"): NodeAuthorizer._lease,
    ("", "nodes"): NodeAuthorizer._node,
    ("", "pods"): NodeAuthorizer._pod,
}
