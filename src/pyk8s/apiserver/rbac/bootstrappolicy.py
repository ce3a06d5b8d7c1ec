"""Upstream's bootstrap RBAC policy (v1.32), as data: the ClusterRoles, Roles and their
bindings every cluster starts with.

Why these exact rules: users and charts rely on the upstream names and contents --
``view``/``edit``/``admin`` for namespace users, ``system:basic-user`` and
``system:discovery`` for everyone authenticated, the ``system:controller:*`` roles for
each controller's service account. The rules are upstream's
(``plugin/pkg/auth/authorizer/rbac/bootstrappolicy``), for the controllers pyk8s runs.

The notation below is short on purpose: ``_r("get list watch", ",apps", "pods services")``
is a rule with verbs and resources split on spaces and API groups split on commas (so
``""`` is the core group alone and ``",events.k8s.io"`` the core group and
``events.k8s.io``); ``_urls`` is a non-resource rule.

The aggregated roles (``admin``, ``edit``, ``view``) are served with the rules their
``aggregationRule`` gathers from the bootstrap roles already filled in
(:func:`pyk8s.api.rbac.aggregated_rules`, the clusterrole-aggregation controller's
algorithm), so a
server without a controller manager still has usable ``view``/``edit``/``admin`` roles;
the controller keeps them current as labelled roles are added.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pyk8s.api.rbac import aggregated_rules
from pyk8s.apiserver.rbac.rules import Rule

__all__ = [
    "AUTOUPDATE_ANNOTATION",
    "cluster_role_bindings",
    "cluster_roles",
    "namespaced_role_bindings",
    "namespaced_roles",
]

JSON = dict[str, Any]

AUTOUPDATE_ANNOTATION = "rbac.authorization.kubernetes.io/autoupdate"
API_VERSION = "rbac.authorization.k8s.io/v1"
_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
_AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"

READ = "get list watch"
WRITE = "create delete deletecollection patch update"
EVENTS = ",events.k8s.io"


def _r(verbs: str, groups: str, resources: str, names: str = "") -> Rule:
    return Rule(
        tuple(verbs.split()),
        tuple(groups.split(",")),
        tuple(resources.split()),
        tuple(names.split()),
    )


def _urls(verbs: str, urls: str) -> Rule:
    return Rule(tuple(verbs.split()), non_resource_urls=tuple(urls.split()))


_EVENT_WRITER = _r("create patch update", EVENTS, "events")


# --------------------------------------------------------------------------- ClusterRoles

#: name -> (rules, extra labels, aggregated-from label suffix or "")
_CLUSTER_ROLES: dict[str, tuple[tuple[Rule, ...], Mapping[str, str], str]] = {
    "cluster-admin": ((_r("*", "*", "*"), _urls("*", "*")), {}, ""),
    "admin": ((), {}, "admin"),
    "edit": ((), {f"{_AGGREGATE}admin": "true"}, "edit"),
    "view": ((), {f"{_AGGREGATE}edit": "true"}, "view"),
    "system:aggregate-to-admin": (
        (
            _r("create", "authorization.k8s.io", "localsubjectaccessreviews"),
            _r(f"{WRITE} get list watch", "rbac.authorization.k8s.io", "rolebindings roles"),
        ),
        {f"{_AGGREGATE}admin": "true"},
        "",
    ),
    "system:aggregate-to-edit": (
        (
            _r(
                READ, "", "pods/attach pods/exec pods/portforward pods/proxy secrets services/proxy"
            ),
            _r("impersonate", "", "serviceaccounts"),
            _r(WRITE, "", "pods pods/attach pods/exec pods/portforward pods/proxy"),
            _r("create", "", "pods/eviction"),
            _r(
                WRITE,
                "",
                "configmaps events persistentvolumeclaims replicationcontrollers "
                "replicationcontrollers/scale secrets serviceaccounts services services/proxy",
            ),
            _r("create", "", "serviceaccounts/token"),
            _r(
                WRITE,
                "apps",
                "daemonsets deployments deployments/rollback deployments/scale replicasets "
                "replicasets/scale statefulsets statefulsets/scale",
            ),
            _r(WRITE, "autoscaling", "horizontalpodautoscalers"),
            _r(WRITE, "batch", "cronjobs jobs"),
            _r(
                WRITE,
                "extensions",
                "daemonsets deployments deployments/rollback deployments/scale ingresses "
                "networkpolicies replicasets replicasets/scale replicationcontrollers/scale",
            ),
            _r(WRITE, "policy", "poddisruptionbudgets"),
            _r(WRITE, "networking.k8s.io", "ingresses networkpolicies"),
            _r(f"{WRITE} get list watch", "coordination.k8s.io", "leases"),
        ),
        {f"{_AGGREGATE}edit": "true"},
        "",
    ),
    "system:aggregate-to-view": (
        (
            _r(
                READ,
                "",
                "configmaps endpoints persistentvolumeclaims persistentvolumeclaims/status pods "
                "replicationcontrollers replicationcontrollers/scale serviceaccounts services "
                "services/status",
            ),
            _r(
                READ,
                "",
                "bindings events limitranges namespaces/status pods/log pods/status "
                "replicationcontrollers/status resourcequotas resourcequotas/status",
            ),
            _r(READ, "", "namespaces"),
            _r(READ, "discovery.k8s.io", "endpointslices"),
            _r(
                READ,
                "apps",
                "controllerrevisions daemonsets daemonsets/status deployments deployments/scale "
                "deployments/status replicasets replicasets/scale replicasets/status "
                "statefulsets statefulsets/scale statefulsets/status",
            ),
            _r(READ, "autoscaling", "horizontalpodautoscalers horizontalpodautoscalers/status"),
            _r(READ, "batch", "cronjobs cronjobs/status jobs jobs/status"),
            _r(
                READ,
                "extensions",
                "daemonsets daemonsets/status deployments deployments/scale deployments/status "
                "ingresses ingresses/status networkpolicies replicasets replicasets/scale "
                "replicasets/status replicationcontrollers/scale",
            ),
            _r(READ, "policy", "poddisruptionbudgets poddisruptionbudgets/status"),
            _r(READ, "networking.k8s.io", "ingresses ingresses/status networkpolicies"),
        ),
        {f"{_AGGREGATE}view": "true"},
        "",
    ),
    "system:auth-delegator": (
        (
            _r("create", "authentication.k8s.io", "tokenreviews"),
            _r("create", "authorization.k8s.io", "subjectaccessreviews"),
        ),
        {},
        "",
    ),
    "system:basic-user": (
        (
            _r(
                "create", "authorization.k8s.io", "selfsubjectaccessreviews selfsubjectrulesreviews"
            ),
            _r("create", "authentication.k8s.io", "selfsubjectreviews"),
        ),
        {},
        "",
    ),
    "system:certificates.k8s.io:certificatesigningrequests:nodeclient": (
        (_r("create", "certificates.k8s.io", "certificatesigningrequests/nodeclient"),),
        {},
        "",
    ),
    "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient": (
        (_r("create", "certificates.k8s.io", "certificatesigningrequests/selfnodeclient"),),
        {},
        "",
    ),
    "system:certificates.k8s.io:kube-apiserver-client-approver": (
        (_r("approve", "certificates.k8s.io", "signers", "kubernetes.io/kube-apiserver-client"),),
        {},
        "",
    ),
    "system:certificates.k8s.io:kube-apiserver-client-kubelet-approver": (
        (
            _r(
                "approve",
                "certificates.k8s.io",
                "signers",
                "kubernetes.io/kube-apiserver-client-kubelet",
            ),
        ),
        {},
        "",
    ),
    "system:certificates.k8s.io:kubelet-serving-approver": (
        (_r("approve", "certificates.k8s.io", "signers", "kubernetes.io/kubelet-serving"),),
        {},
        "",
    ),
    "system:certificates.k8s.io:legacy-unknown-approver": (
        (_r("approve", "certificates.k8s.io", "signers", "kubernetes.io/legacy-unknown"),),
        {},
        "",
    ),
    "system:discovery": (
        (
            _urls(
                "get",
                "/api /api/* /apis /apis/* /healthz /livez /openapi /openapi/* /readyz "
                "/version /version/",
            ),
        ),
        {},
        "",
    ),
    "system:heapster": (
        (
            _r(READ, "", "events namespaces nodes pods"),
            _r(READ, "extensions", "deployments"),
        ),
        {},
        "",
    ),
    "system:kube-aggregator": ((_r(READ, "", "endpoints services"),), {}, ""),
    "system:kube-controller-manager": (
        (
            _EVENT_WRITER,
            _r("create", "coordination.k8s.io", "leases"),
            _r("get update", "coordination.k8s.io", "leases", "kube-controller-manager"),
            _r("create", "", "secrets serviceaccounts"),
            _r("delete", "", "secrets"),
            _r("get", "", "configmaps namespaces secrets serviceaccounts"),
            _r("update", "", "secrets serviceaccounts"),
            _r("create", "authentication.k8s.io", "tokenreviews"),
            _r("create", "authorization.k8s.io", "subjectaccessreviews"),
            _r("list watch", "*", "*"),
            _r("create", "", "serviceaccounts/token"),
        ),
        {},
        "",
    ),
    "system:kube-dns": ((_r("list watch", "", "endpoints services"),), {}, ""),
    "system:kube-scheduler": (
        (
            _EVENT_WRITER,
            _r("create", "coordination.k8s.io", "leases"),
            _r("get update", "coordination.k8s.io", "leases", "kube-scheduler"),
            _r(READ, "", "nodes"),
            _r(f"delete {READ}", "", "pods"),
            _r("create", "", "bindings pods/binding"),
            _r("patch update", "", "pods/status"),
            _r(READ, "", "replicationcontrollers services"),
            _r(READ, "apps,extensions", "replicasets"),
            _r(READ, "apps", "statefulsets"),
            _r(READ, "policy", "poddisruptionbudgets"),
            _r(READ, "", "persistentvolumeclaims persistentvolumes"),
            _r("create", "authentication.k8s.io", "tokenreviews"),
            _r("create", "authorization.k8s.io", "subjectaccessreviews"),
            _r(READ, "storage.k8s.io", "csinodes"),
            _r(READ, "", "namespaces"),
            _r(READ, "storage.k8s.io", "csidrivers"),
            _r(READ, "storage.k8s.io", "csistoragecapacities"),
        ),
        {},
        "",
    ),
    "system:kubelet-api-admin": (
        (
            _r(READ, "", "nodes"),
            _r("proxy", "", "nodes"),
            _r("*", "", "nodes/log nodes/metrics nodes/proxy nodes/stats"),
        ),
        {},
        "",
    ),
    "system:monitoring": (
        (
            _urls(
                "get",
                "/healthz /healthz/* /livez /livez/* /metrics /metrics/slis /readyz /readyz/*",
            ),
        ),
        {},
        "",
    ),
    "system:node": (
        (
            _r("create", "authentication.k8s.io", "tokenreviews"),
            _r("create", "authorization.k8s.io", "localsubjectaccessreviews subjectaccessreviews"),
            _r(READ, "", "services"),
            _r(f"create {READ}", "", "nodes"),
            _r("patch update", "", "nodes/status"),
            _r("patch update", "", "nodes"),
            _r("create patch update", "", "events"),
            _r(READ, "", "pods"),
            _r("create delete", "", "pods"),
            _r("patch update", "", "pods/status"),
            _r("create", "", "pods/eviction"),
            _r(READ, "", "configmaps secrets"),
            _r("get", "", "persistentvolumeclaims persistentvolumes"),
            _r("get", "", "endpoints"),
            _r(f"create {READ}", "certificates.k8s.io", "certificatesigningrequests"),
            _r("create delete get patch update", "coordination.k8s.io", "leases"),
            _r("get", "storage.k8s.io", "volumeattachments"),
            _r("create", "", "serviceaccounts/token"),
            _r("get patch update", "", "persistentvolumeclaims/status"),
            _r(READ, "storage.k8s.io", "csidrivers"),
            _r("create delete get patch update", "storage.k8s.io", "csinodes"),
            _r(READ, "node.k8s.io", "runtimeclasses"),
        ),
        {},
        "",
    ),
    "system:node-bootstrapper": (
        (_r(f"create {READ}", "certificates.k8s.io", "certificatesigningrequests"),),
        {},
        "",
    ),
    "system:node-problem-detector": (
        (_r("get", "", "nodes"), _r("patch", "", "nodes/status"), _EVENT_WRITER),
        {},
        "",
    ),
    "system:node-proxier": (
        (
            _r("list watch", "", "endpoints services"),
            _r(READ, "", "nodes"),
            _EVENT_WRITER,
            _r("list watch", "discovery.k8s.io", "endpointslices"),
        ),
        {},
        "",
    ),
    # pyk8s's own: NetworkPolicy enforcement runs inside the node's proxy (as kube-router's
    # network policy controller, which reads the same objects)
    "system:pyk8s:network-policy": (
        (
            _r("list watch", "", "pods namespaces"),
            _r("list watch", "networking.k8s.io", "networkpolicies"),
        ),
        {},
        "",
    ),
    # pyk8s's own: the layer-2 speaker in the node's proxy keeps a Lease per node (MetalLB's
    # speaker reads services and endpoints and announces; its liveness is memberlist there)
    "system:pyk8s:lb-speaker": (
        (_r("create get list watch update", "coordination.k8s.io", "leases"),),
        {},
        "",
    ),
    "system:persistent-volume-provisioner": (
        (
            _r(f"create delete {READ}", "", "persistentvolumes"),
            _r("get list update watch", "", "persistentvolumeclaims"),
            _r(READ, "storage.k8s.io", "storageclasses"),
            _r("watch", "", "events"),
            _EVENT_WRITER,
        ),
        {},
        "",
    ),
    "system:public-info-viewer": (
        (_urls("get", "/healthz /livez /readyz /version /version/"),),
        {},
        "",
    ),
    "system:service-account-issuer-discovery": (
        (_urls("get", "/.well-known/openid-configuration /openid/v1/jwks"),),
        {},
        "",
    ),
    "system:volume-scheduler": (
        (
            _r("get list patch update watch", "", "persistentvolumes"),
            _r(READ, "storage.k8s.io", "storageclasses"),
            _r("get list patch update watch", "", "persistentvolumeclaims"),
        ),
        {},
        "",
    ),
}

#: the ``system:controller:<name>`` roles of the controllers pyk8s runs (each bound to
#: the ``kube-system/<name>`` service account)
_CONTROLLER_ROLES: dict[str, tuple[Rule, ...]] = {
    "attachdetach-controller": (
        _r("list watch", "", "persistentvolumes persistentvolumeclaims"),
        _r("get list watch", "", "nodes"),
        _r("patch update", "", "nodes/status"),
        _r("list watch", "", "pods"),
        _EVENT_WRITER,
        _r("get create delete list watch", "storage.k8s.io", "volumeattachments"),
        _r("get list watch", "storage.k8s.io", "csidrivers csinodes"),
    ),
    "certificate-controller": (
        _r("delete get list watch", "certificates.k8s.io", "certificatesigningrequests"),
        _r(
            "update",
            "certificates.k8s.io",
            "certificatesigningrequests/status certificatesigningrequests/approval",
        ),
        _r(
            "approve",
            "certificates.k8s.io",
            "signers",
            "kubernetes.io/kube-apiserver-client-kubelet",
        ),
        _r(
            "sign",
            "certificates.k8s.io",
            "signers",
            "kubernetes.io/legacy-unknown kubernetes.io/kube-apiserver-client "
            "kubernetes.io/kube-apiserver-client-kubelet kubernetes.io/kubelet-serving",
        ),
        _r("create", "authorization.k8s.io", "subjectaccessreviews"),
        _EVENT_WRITER,
    ),
    "clusterrole-aggregation-controller": (
        _r("escalate get list patch update watch", "rbac.authorization.k8s.io", "clusterroles"),
    ),
    "cronjob-controller": (
        _r("get list update watch", "batch", "cronjobs"),
        _r(f"create delete {READ} patch update", "batch", "jobs"),
        _r("update", "batch", "cronjobs/status"),
        _r("update", "batch", "cronjobs/finalizers"),
        _r("delete list watch", "", "pods"),
        _EVENT_WRITER,
    ),
    "daemon-set-controller": (
        _r(READ, "apps,extensions", "daemonsets"),
        _r("update", "apps,extensions", "daemonsets/status"),
        _r("update", "apps,extensions", "daemonsets/finalizers"),
        _r("list watch", "", "nodes"),
        _r("create delete list patch watch", "", "pods"),
        _r("create", "", "pods/binding"),
        _r(f"create delete {READ} patch update", "apps", "controllerrevisions"),
        _EVENT_WRITER,
    ),
    "deployment-controller": (
        _r("get list update watch", "apps,extensions", "deployments"),
        _r("update", "apps,extensions", "deployments/status"),
        _r("update", "apps,extensions", "deployments/finalizers"),
        _r(f"create delete {READ} patch update", "apps,extensions", "replicasets"),
        _r("get list update watch", "", "pods"),
        _EVENT_WRITER,
    ),
    "disruption-controller": (
        _r(READ, "apps,extensions", "deployments"),
        _r(READ, "apps,extensions", "replicasets"),
        _r(READ, "", "replicationcontrollers"),
        _r(READ, "policy", "poddisruptionbudgets"),
        _r(READ, "apps", "statefulsets"),
        _r("update", "policy", "poddisruptionbudgets/status"),
        _r("patch update", "", "pods/status"),
        _r("get", "*", "*/scale"),
        _EVENT_WRITER,
    ),
    "endpoint-controller": (
        _r(READ, "", "pods services"),
        _r(f"create delete {READ} update", "", "endpoints"),
        _r("create", "", "endpoints/restricted"),
        _EVENT_WRITER,
    ),
    "endpointslice-controller": (
        _r(READ, "", "nodes pods services"),
        _r("update", "", "services/finalizers"),
        _r(f"create delete {READ} update", "discovery.k8s.io", "endpointslices"),
        _EVENT_WRITER,
    ),
    "generic-garbage-collector": (_r(f"delete {READ} patch update", "*", "*"), _EVENT_WRITER),
    "horizontal-pod-autoscaler": (
        _r(READ, "autoscaling", "horizontalpodautoscalers"),
        _r("update", "autoscaling", "horizontalpodautoscalers/status"),
        _r("get update", "*", "*/scale"),
        _r("list", "", "pods"),
        _r("list", "metrics.k8s.io", "pods"),
        _r("get list", "custom.metrics.k8s.io", "*"),
        _r("get list", "external.metrics.k8s.io", "*"),
        _EVENT_WRITER,
    ),
    "ephemeral-volume-controller": (
        _r(READ, "", "pods"),
        _r("update", "", "pods/finalizers"),
        _r(f"create {READ}", "", "persistentvolumeclaims"),
        _EVENT_WRITER,
    ),
    "job-controller": (
        _r("get list patch update watch", "batch", "jobs"),
        _r("update", "batch", "jobs/status"),
        _r("update", "batch", "jobs/finalizers"),
        _r("create delete list patch watch", "", "pods"),
        _EVENT_WRITER,
    ),
    "namespace-controller": (
        _r(f"delete {READ}", "", "namespaces"),
        _r("update", "", "namespaces/finalize namespaces/status"),
        _r(f"delete deletecollection {READ}", "*", "*"),
    ),
    "node-controller": (
        _r(f"delete {READ} patch update", "", "nodes"),
        _r("patch update", "", "nodes/status"),
        _r("patch update", "", "pods/status"),
        _r(f"delete {READ}", "", "pods"),
        _EVENT_WRITER,
    ),
    "persistent-volume-binder": (
        _r(f"create delete {READ} update", "", "persistentvolumes"),
        _r("update", "", "persistentvolumes/status"),
        _r(f"{READ} update", "", "persistentvolumeclaims"),
        _r("update", "", "persistentvolumeclaims/status"),
        _r(f"create delete {READ}", "", "pods"),
        _r(READ, "storage.k8s.io", "storageclasses"),
        _r("create delete get update", "", "endpoints"),
        _r("create delete get", "", "services"),
        _r("get", "", "secrets"),
        _r("get list", "", "nodes"),
        _r("watch", "", "events"),
        _EVENT_WRITER,
    ),
    "pod-garbage-collector": (
        _r("delete list watch", "", "pods"),
        _r(READ, "", "nodes"),
        _r("patch", "", "pods/status"),
    ),
    "pv-protection-controller": (_r(f"{READ} update", "", "persistentvolumes"), _EVENT_WRITER),
    "pvc-protection-controller": (
        _r(f"{READ} update", "", "persistentvolumeclaims"),
        _r(READ, "", "pods"),
        _EVENT_WRITER,
    ),
    "replicaset-controller": (
        _r("get list update watch", "apps,extensions", "replicasets"),
        _r("update", "apps,extensions", "replicasets/status"),
        _r("update", "apps,extensions", "replicasets/finalizers"),
        _r("create delete list patch watch", "", "pods"),
        _EVENT_WRITER,
    ),
    "replication-controller": (
        _r("get list update watch", "", "replicationcontrollers"),
        _r("update", "", "replicationcontrollers/status"),
        _r("update", "", "replicationcontrollers/finalizers"),
        _r("create delete list patch watch", "", "pods"),
        _EVENT_WRITER,
    ),
    "resourcequota-controller": (
        _r("list watch", "*", "*"),
        _r("update", "", "resourcequotas/status"),
        _EVENT_WRITER,
    ),
    "root-ca-cert-publisher": (_r("create update", "", "configmaps"), _EVENT_WRITER),
    "service-account-controller": (_r("create", "", "serviceaccounts"), _EVENT_WRITER),
    "statefulset-controller": (
        _r("list watch", "", "pods"),
        _r(READ, "apps", "statefulsets"),
        _r("update", "apps", "statefulsets/status"),
        _r("update", "apps", "statefulsets/finalizers"),
        _r("create delete get patch update", "", "pods"),
        _r(f"create delete {READ} patch update", "apps", "controllerrevisions"),
        _r(f"create {READ}", "", "persistentvolumeclaims"),
        _r("delete update", "", "persistentvolumeclaims"),
        _r("update", "", "pods/finalizers"),
        _EVENT_WRITER,
    ),
    "ttl-after-finished-controller": (_r(f"delete {READ}", "batch", "jobs"), _EVENT_WRITER),
}

# --------------------------------------------------------------------------- bindings

_USER, _GROUP, _SA = "User", "Group", "ServiceAccount"

#: ClusterRoleBinding name -> (ClusterRole, subjects as (kind, name[, namespace]))
_CLUSTER_BINDINGS: dict[str, tuple[str, tuple[tuple[str, ...], ...]]] = {
    "cluster-admin": ("cluster-admin", ((_GROUP, "system:masters"),)),
    "system:basic-user": ("system:basic-user", ((_GROUP, "system:authenticated"),)),
    "system:discovery": ("system:discovery", ((_GROUP, "system:authenticated"),)),
    "system:public-info-viewer": (
        "system:public-info-viewer",
        ((_GROUP, "system:authenticated"), (_GROUP, "system:unauthenticated")),
    ),
    "system:kube-controller-manager": (
        "system:kube-controller-manager",
        ((_USER, "system:kube-controller-manager"),),
    ),
    "system:kube-dns": ("system:kube-dns", ((_SA, "kube-dns", "kube-system"),)),
    "system:kube-scheduler": ("system:kube-scheduler", ((_USER, "system:kube-scheduler"),)),
    "system:volume-scheduler": ("system:volume-scheduler", ((_USER, "system:kube-scheduler"),)),
    "system:node": ("system:node", ()),
    "system:node-proxier": ("system:node-proxier", ((_USER, "system:kube-proxy"),)),
    "system:pyk8s:network-policy": (
        "system:pyk8s:network-policy",
        ((_USER, "system:kube-proxy"),),
    ),
    "system:pyk8s:lb-speaker": ("system:pyk8s:lb-speaker", ((_USER, "system:kube-proxy"),)),
    "system:monitoring": ("system:monitoring", ((_GROUP, "system:monitoring"),)),
    "system:service-account-issuer-discovery": (
        "system:service-account-issuer-discovery",
        ((_GROUP, "system:serviceaccounts"),),
    ),
}

#: kube-system Roles (name -> rules) and RoleBindings (name -> (Role, subjects))
_KUBE_SYSTEM_ROLES: dict[str, tuple[Rule, ...]] = {
    "extension-apiserver-authentication-reader": (
        _r(READ, "", "configmaps", "extension-apiserver-authentication"),
    ),
    "system::leader-locking-kube-controller-manager": (
        _r("watch", "", "configmaps"),
        _r("get update", "", "configmaps", "kube-controller-manager"),
    ),
    "system::leader-locking-kube-scheduler": (
        _r("watch", "", "configmaps"),
        _r("get update", "", "configmaps", "kube-scheduler"),
    ),
    "system:controller:token-cleaner": (
        _r("delete get list watch", "", "secrets"),
        _EVENT_WRITER,
    ),
}
_KUBE_SYSTEM_BINDINGS: dict[str, tuple[str, tuple[tuple[str, ...], ...]]] = {
    "system::extension-apiserver-authentication-reader": (
        "extension-apiserver-authentication-reader",
        ((_USER, "system:kube-controller-manager"), (_USER, "system:kube-scheduler")),
    ),
    "system::leader-locking-kube-controller-manager": (
        "system::leader-locking-kube-controller-manager",
        (
            (_USER, "system:kube-controller-manager"),
            (_SA, "kube-controller-manager", "kube-system"),
        ),
    ),
    "system::leader-locking-kube-scheduler": (
        "system::leader-locking-kube-scheduler",
        ((_USER, "system:kube-scheduler"), (_SA, "kube-scheduler", "kube-system")),
    ),
    "system:controller:token-cleaner": (
        "system:controller:token-cleaner",
        ((_SA, "token-cleaner", "kube-system"),),
    ),
}


# --------------------------------------------------------------------------- objects


def _meta(name: str, labels: Mapping[str, str] = {}, namespace: str = "") -> JSON:
    meta: JSON = {
        "name": name,
        "labels": {**_LABELS, **labels},
        "annotations": {AUTOUPDATE_ANNOTATION: "true"},
    }
    if namespace:
        meta["namespace"] = namespace
    return meta


def _subject(spec: Sequence[str]) -> JSON:
    kind, name, *rest = spec
    if kind == _SA:
        return {"kind": kind, "name": name, "namespace": rest[0]}
    return {"kind": kind, "apiGroup": "rbac.authorization.k8s.io", "name": name}


def _binding(
    kind: str,
    name: str,
    role_kind: str,
    role: str,
    subjects: Iterable[Sequence[str]],
    namespace: str = "",
) -> JSON:
    obj: JSON = {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": _meta(name, namespace=namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
    }
    found = [_subject(s) for s in subjects]
    if found:
        obj["subjects"] = found
    return obj


def cluster_roles() -> list[JSON]:
    """Every bootstrap ClusterRole, aggregated ones with their rules filled in."""
    roles: list[JSON] = []
    for name, (rules, labels, aggregate) in _CLUSTER_ROLES.items():
        obj: JSON = {
            "apiVersion": API_VERSION,
            "kind": "ClusterRole",
            "metadata": _meta(name, labels),
        }
        if aggregate:
            obj["aggregationRule"] = {
                "clusterRoleSelectors": [{"matchLabels": {f"{_AGGREGATE}{aggregate}": "true"}}]
            }
        obj["rules"] = [r.to_json() for r in rules]
        roles.append(obj)
    for name, rules in _CONTROLLER_ROLES.items():
        roles.append(
            {
                "apiVersion": API_VERSION,
                "kind": "ClusterRole",
                "metadata": _meta(f"system:controller:{name}"),
                "rules": [r.to_json() for r in rules],
            }
        )
    # view feeds edit feeds admin: fill until nothing changes
    aggregated = [r for r in roles if "aggregationRule" in r]
    changed = True
    while changed:
        changed = False
        for role in aggregated:
            rules_now = aggregated_rules(role, roles)
            if rules_now != role["rules"]:
                role["rules"] = rules_now
                changed = True
    return roles


def cluster_role_bindings() -> list[JSON]:
    out = [
        _binding("ClusterRoleBinding", name, "ClusterRole", role, subjects)
        for name, (role, subjects) in _CLUSTER_BINDINGS.items()
    ]
    out += [
        _binding(
            "ClusterRoleBinding",
            f"system:controller:{name}",
            "ClusterRole",
            f"system:controller:{name}",
            [(_SA, name, "kube-system")],
        )
        for name in _CONTROLLER_ROLES
    ]
    return out


def namespaced_roles() -> list[JSON]:
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "Role",
            "metadata": _meta(name, namespace="kube-system"),
            "rules": [r.to_json() for r in rules],
        }
        for name, rules in _KUBE_SYSTEM_ROLES.items()
    ]


def namespaced_role_bindings() -> list[JSON]:
    return [
        _binding("RoleBinding", name, "Role", role, subjects, namespace="kube-system")
        for name, (role, subjects) in _KUBE_SYSTEM_BINDINGS.items()
    ]
