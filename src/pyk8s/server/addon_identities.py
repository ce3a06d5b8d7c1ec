"""Identities for the add-ons ``pyk8s server`` supervises: cloud controller manager,
metrics-server, metrics adapter, ingress controller and CSI hostpath driver.

Why: each of these used to run with the admin kubeconfig, so a flaw in any of them (the
ingress controller parses user input, the metrics servers answer the network) was a
flaw in the whole cluster. Upstream and k3s run them as pods with a ServiceAccount bound
to the roles their manifests ship; ``pyk8s server`` runs them as child processes, so
each gets a client certificate from the cluster CA for that account's name
(``system:serviceaccount:kube-system:<account>``, groups ``system:serviceaccounts``,
``system:serviceaccounts:kube-system``; as :mod:`pyk8s.server.identities` does for DNS)
and the same roles:

=========================  ==========================  ====================================
component                  account (kube-system)       roles (where from)
=========================  ==========================  ====================================
cloud-controller-manager   cloud-controller-manager    ``system:cloud-controller-manager``
                                                       (k3s's ccm.yaml rules)
metrics-server             metrics-server              ``system:metrics-server``,
                                                       ``system:auth-delegator``,
                                                       ``extension-apiserver-authentication-
                                                       reader`` (metrics-server's manifest)
metrics-adapter            custom-metrics-apiserver    ``custom-metrics-resource-reader``,
                                                       auth-delegator, auth-reader
                                                       (prometheus-adapter's manifest)
ingress-controller         pyk8s-ingress               ``pyk8s-ingress`` (ingress-nginx's
                                                       ClusterRole, plus Gateway API)
csi-hostpath               csi-hostpath                ``pyk8s:csi-hostpath`` (the
                                                       external-provisioner, -attacher and
                                                       -resizer roles)
=========================  ==========================  ====================================

What their manifests install with an administrator's rights (APIServices, the metrics
reader ClusterRoles, the Gateway API CRDs, the CSIDriver and StorageClass) ``pyk8s
server`` installs itself before starting the component (:func:`installs`), as k3s's
deploy controller applies its manifests; the components only read them. What pyk8s's
components do that a pod does not -- publish their own Service and EndpointSlice at the
host's address -- a ``pyk8s:<component>-publisher`` ClusterRole, bound in kube-system,
allows: creating Services and EndpointSlices there, reading and updating only their own
by name.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ADDON_POLICY", "ADDON_USERS", "installs"]

Obj = dict[str, Any]

_RBAC = "rbac.authorization.k8s.io/v1"
_NS = "kube-system"
SA_GROUPS = ("system:serviceaccounts", f"system:serviceaccounts:{_NS}")

#: component -> its kube-system ServiceAccount
ACCOUNTS: dict[str, str] = {
    "cloud-controller-manager": "cloud-controller-manager",
    "metrics-server": "metrics-server",
    "metrics-adapter": "custom-metrics-apiserver",
    "ingress-controller": "pyk8s-ingress",
    "csi-hostpath": "csi-hostpath",
}
#: component -> (user, groups) of its client certificate
ADDON_USERS: dict[str, tuple[str, tuple[str, ...]]] = {
    component: (f"system:serviceaccount:{_NS}:{account}", SA_GROUPS)
    for component, account in ACCOUNTS.items()
}

READ = ["get", "list", "watch"]


def _rule(groups: str, resources: str, verbs: list[str], names: tuple[str, ...] = ()) -> Obj:
    rule: Obj = {
        "apiGroups": groups.split(",") if groups else [""],
        "resources": resources.split(),
        "verbs": verbs,
    }
    if names:
        rule["resourceNames"] = list(names)
    return rule


def _account(component: str) -> Obj:
    return {"kind": "ServiceAccount", "name": ACCOUNTS[component], "namespace": _NS}


def _cluster_role(name: str, rules: list[Obj]) -> Obj:
    return {"apiVersion": _RBAC, "kind": "ClusterRole", "metadata": {"name": name},
            "rules": rules}  # fmt: skip


def _cluster_binding(name: str, role: str, component: str) -> Obj:
    return {
        "apiVersion": _RBAC, "kind": "ClusterRoleBinding", "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [_account(component)],
    }  # fmt: skip


def _role_binding(name: str, kind: str, role: str, component: str) -> Obj:
    return {
        "apiVersion": _RBAC, "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": _NS},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": [_account(component)],
    }  # fmt: skip


def _publisher(component: str, service: str, slice_name: str) -> list[Obj]:
    """pyk8s's own: the component publishes its Service and EndpointSlice (a ClusterRole
    bound in kube-system; a component told to publish elsewhere needs a RoleBinding to it
    there)."""
    name = f"pyk8s:{component}-publisher"
    role = _cluster_role(name, [
        _rule("", "services", ["create"]),
        _rule("", "services", ["get"], (service,)),
        _rule("discovery.k8s.io", "endpointslices", ["create"]),
        _rule("discovery.k8s.io", "endpointslices", ["get", "update"], (slice_name,)),
    ])  # fmt: skip
    return [role, _role_binding(name, "ClusterRole", name, component)]


def _aggregated_server(component: str, prefix: str, reader: str, reader_rules: list[Obj],
                       apiservices: tuple[str, ...], published_role: str,
                       service: str) -> list[Obj]:  # fmt: skip
    """An aggregated API server's roles: reading what it serves, delegated authn/authz,
    the front proxy's CA, and reading (not writing) its APIServices and the ClusterRole
    it publishes, which ``pyk8s server`` installs."""
    registration = f"pyk8s:{component}-registration"
    return [
        _cluster_role(reader, reader_rules),
        _cluster_binding(reader, reader, component),
        _cluster_binding(f"{prefix}:system:auth-delegator", "system:auth-delegator", component),
        _role_binding(f"{prefix}-auth-reader", "Role",
                      "extension-apiserver-authentication-reader", component),
        _cluster_role(registration, [
            _rule("apiregistration.k8s.io", "apiservices", ["get"], apiservices),
            _rule("rbac.authorization.k8s.io", "clusterroles", ["get"], (published_role,)),
        ]),
        _cluster_binding(registration, registration, component),
        *_publisher(component, service, f"{service}-pyk8s"),
    ]  # fmt: skip


_CCM: list[Obj] = [
    # k3s's ccm.yaml, plus what upstream's service controller also writes (the status
    # of a LoadBalancer) and the EndpointSlices the local provider reads
    _cluster_role("system:cloud-controller-manager", [
        _rule("coordination.k8s.io", "leases", ["get", "create", "update"]),
        _rule("", "events", ["create", "patch", "update"]),
        _rule("", "nodes", ["*"]),
        _rule("", "nodes/status", ["patch"]),
        _rule("", "services", ["list", "patch", "update", "watch"]),
        _rule("", "services/status", ["patch", "update"]),
        _rule("", "serviceaccounts", ["create"]),
        _rule("", "persistentvolumes", ["get", "list", "update", "watch"]),
        _rule("", "endpoints", ["create", "get", "list", "watch", "update"]),
        _rule("discovery.k8s.io", "endpointslices", ["list", "watch"]),
    ]),
    _cluster_binding("system:cloud-controller-manager", "system:cloud-controller-manager",
                     "cloud-controller-manager"),
]  # fmt: skip

_METRICS_SERVER = _aggregated_server(
    "metrics-server", "metrics-server", "system:metrics-server",
    [_rule("", "nodes/metrics", ["get"]), _rule("", "pods nodes", READ)],
    ("v1beta1.metrics.k8s.io",), "system:aggregated-metrics-reader", "metrics-server",
)  # fmt: skip

_METRICS_ADAPTER = _aggregated_server(
    "metrics-adapter", "custom-metrics", "custom-metrics-resource-reader",
    [_rule("", "namespaces pods services", READ)],
    ("v1beta2.custom.metrics.k8s.io", "v1beta1.custom.metrics.k8s.io"),
    "custom-metrics-server-resources", "custom-metrics-apiserver",
)  # fmt: skip

_GATEWAY = "gateway.networking.k8s.io"
_GATEWAY_KINDS = ("gatewayclasses", "gateways", "httproutes", "referencegrants")
_INGRESS: list[Obj] = [
    # ingress-nginx's ClusterRole, with what pyk8s's controller adds: its default
    # IngressClass and GatewayClass, the Gateway API (status of Gateways and routes)
    _cluster_role("pyk8s-ingress", [
        _rule("", "configmaps endpoints nodes pods secrets namespaces", ["list", "watch"]),
        _rule("", "nodes", ["get"]),
        _rule("", "services", READ),
        _rule("networking.k8s.io", "ingresses", READ),
        _rule("", "events", ["create", "patch"]),
        _rule("networking.k8s.io", "ingresses/status", ["update"]),
        _rule("networking.k8s.io", "ingressclasses", [*READ, "create"]),
        _rule("discovery.k8s.io", "endpointslices", READ),
        _rule("apiextensions.k8s.io", "customresourcedefinitions", ["get"],
              tuple(f"{kind}.{_GATEWAY}" for kind in _GATEWAY_KINDS)),
        _rule(_GATEWAY, " ".join(_GATEWAY_KINDS), READ),
        _rule(_GATEWAY, "gatewayclasses", ["create"]),
        _rule(_GATEWAY, "gatewayclasses/status gateways/status httproutes/status",
              ["update", "patch"]),
    ]),
    _cluster_binding("pyk8s-ingress", "pyk8s-ingress", "ingress-controller"),
    *_publisher("ingress-controller", "pyk8s-ingress", "pyk8s-ingress"),
]  # fmt: skip

_CSI: list[Obj] = [
    # external-provisioner, external-attacher and external-resizer's roles in one
    _cluster_role("pyk8s:csi-hostpath", [
        _rule("", "persistentvolumes", [*READ, "create", "delete", "patch"]),
        _rule("", "persistentvolumeclaims", READ),
        _rule("", "persistentvolumeclaims/status", ["patch"]),
        _rule("storage.k8s.io", "storageclasses csinodes", READ),
        _rule("", "nodes pods", READ),
        _rule("storage.k8s.io", "volumeattachments", [*READ, "patch"]),
        _rule("storage.k8s.io", "volumeattachments/status", ["patch"]),
        _rule("", "events", ["list", "watch", "create", "update", "patch"]),
    ]),
    _cluster_binding("pyk8s:csi-hostpath", "pyk8s:csi-hostpath", "csi-hostpath"),
]  # fmt: skip

#: every RBAC object the add-ons' identities need
ADDON_POLICY: tuple[Obj, ...] = (*_CCM, *_METRICS_SERVER, *_METRICS_ADAPTER, *_INGRESS, *_CSI)


def installs(component: str) -> list[Obj]:
    """What ``pyk8s server`` creates for ``component`` before starting it (the parts of
    its manifest an administrator applies)."""
    if component == "metrics-server":
        from pyk8s.server import metrics_server

        return list(metrics_server.registration_objects("127.0.0.1", 0)[2:])
    if component == "metrics-adapter":
        from pyk8s.server import metrics_adapter

        return [obj for _res, obj in metrics_adapter.registration_objects("127.0.0.1", 0)[2:]]
    if component == "ingress-controller":
        from pyk8s.ingress.gateway_crds import CRDS

        return [dict(crd) for crd in CRDS]
    if component == "csi-hostpath":
        from pyk8s.server import csi_hostpath

        driver = csi_hostpath.Options().drivername
        return [obj for _res, obj in csi_hostpath.cluster_objects(driver)]
    return []
