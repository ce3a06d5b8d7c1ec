"""The resource registry: every built-in resource the API server serves, from one table.

Discovery (/api, /apis, aggregated discovery), routing, storage keys, ``kubectl
api-resources`` columns, short names (``po``, ``deploy``) and categories (``kubectl get
all``) all come from here, so they cannot disagree. The values are upstream v1.32's.

A resource served at several versions or in two groups has one storage, as upstream: its
entries name the version (``storage_version``) and group (``storage_group``) objects are
stored at, so they share one key prefix, and the API server converts at the storage
boundary (:mod:`pyk8s.api.conversion`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

GROUP_FLOWCONTROL = "flowcontrol.apiserver.k8s.io"

#: every verb a full resource supports, in the order discovery lists them
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class Resource:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    #: the resource name in storage keys; resources served at several versions share it
    storage_name: str = field(default="")
    #: False for "virtual" resources (access reviews, TokenReview): a create computes an
    #: answer from the request and returns it; nothing is ever written to storage
    stored: bool = True
    #: the version objects are stored at ("" for this one); a resource served at several
    #: versions (autoscaling/v1 and v2 HPAs) keeps one storage, converted at the boundary
    storage_version: str = ""
    #: the group objects are stored in (None for this one): events.k8s.io Events are core
    #: Events, under the core events keys
    storage_group: str | None = None

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def api_version(self) -> str:
        """``v1`` for the core group, else ``group/version`` (what objects carry)."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_api_version(self) -> str:
        """The apiVersion objects carry in storage (``autoscaling/v2`` for v1 HPAs too)."""
        group = self.group if self.storage_group is None else self.storage_group
        version = self.storage_version or self.version
        return f"{group}/{version}" if group else version

    @property
    def converts(self) -> bool:
        """Whether objects are converted between storage and this version."""
        return self.storage_api_version != self.api_version

    @property
    def group_resource(self) -> str:
        """``deployments.apps`` (``pods`` for the core group), as errors name resources."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def key_prefix(self, namespace: str | None = None) -> str:
        """The storage key prefix of this resource (of one namespace when given)."""
        group = self.group if self.storage_group is None else self.storage_group
        base = f"/registry/{group or 'core'}/{self.storage_name or self.plural}/"
        if self.namespaced and namespace:
            return f"{base}{namespace}/"
        return base

    def key(self, namespace: str | None, name: str) -> str:
        return self.key_prefix(namespace) + name


def _r(
    group: str,
    version: str,
    kind: str,
    plural: str,
    namespaced: bool = True,
    short: Iterable[str] = (),
    categories: Iterable[str] = (),
    sub: Iterable[str] = (),
    verbs: tuple[str, ...] = ALL_VERBS,
    storage_name: str = "",
    stored: bool = True,
    storage_version: str = "",
    storage_group: str | None = None,
) -> Resource:
    return Resource(
        group,
        version,
        kind,
        plural,
        namespaced,
        tuple(short),
        tuple(categories),
        tuple(sub),
        verbs,
        storage_name,
        stored,
        storage_version,
        storage_group,
    )


def _review(group: str, kind: str, plural: str, namespaced: bool = False) -> Resource:
    """A create-only v1 review: answered from the request, never stored (``stored=False``)."""
    return _r(group, "v1", kind, plural, namespaced, verbs=("create",), stored=False)


ALL = ("all",)
_STATUS = ("status",)

RESOURCES: tuple[Resource, ...] = (
    # core/v1
    _r(
        "",
        "v1",
        "Namespace",
        "namespaces",
        False,
        ["ns"],
        sub=["status", "finalize"],
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    _r(
        "",
        "v1",
        "Pod",
        "pods",
        True,
        ["po"],
        ALL,
        [
            "status",
            "binding",
            "log",
            "exec",
            "attach",
            "portforward",
            "eviction",
            "ephemeralcontainers",
            "proxy",
        ],
    ),
    _r("", "v1", "Service", "services", True, ["svc"], ALL, ["status", "proxy"]),
    _r("", "v1", "Endpoints", "endpoints", True, ["ep"]),
    _r("", "v1", "ConfigMap", "configmaps", True, ["cm"]),
    _r("", "v1", "Secret", "secrets", True),
    _r("", "v1", "ServiceAccount", "serviceaccounts", True, ["sa"], sub=["token"]),
    _r("", "v1", "Node", "nodes", False, ["no"], sub=["status", "proxy"]),
    _r("", "v1", "Event", "events", True, ["ev"], storage_name="events"),
    _r("", "v1", "PersistentVolume", "persistentvolumes", False, ["pv"], sub=_STATUS),
    _r("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, ["pvc"], sub=_STATUS),
    _r("", "v1", "LimitRange", "limitranges", True, ["limits"]),
    _r("", "v1", "ResourceQuota", "resourcequotas", True, ["quota"], sub=_STATUS),
    _r("", "v1", "PodTemplate", "podtemplates", True),
    _r(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        True,
        ["rc"],
        ALL,
        ["status", "scale"],
    ),
    _r("", "v1", "Binding", "bindings", True, verbs=("create",)),
    # apps/v1
    _r("apps", "v1", "Deployment", "deployments", True, ["deploy"], ALL, ["status", "scale"]),
    _r("apps", "v1", "ReplicaSet", "replicasets", True, ["rs"], ALL, ["status", "scale"]),
    _r("apps", "v1", "StatefulSet", "statefulsets", True, ["sts"], ALL, ["status", "scale"]),
    _r("apps", "v1", "DaemonSet", "daemonsets", True, ["ds"], ALL, _STATUS),
    _r("apps", "v1", "ControllerRevision", "controllerrevisions", True),
    # authentication.k8s.io/v1, authorization.k8s.io/v1: create-only reviews, never stored
    _review("authentication.k8s.io", "SelfSubjectReview", "selfsubjectreviews"),
    _review("authentication.k8s.io", "TokenReview", "tokenreviews"),
    _review("authorization.k8s.io", "LocalSubjectAccessReview", "localsubjectaccessreviews", True),
    _review("authorization.k8s.io", "SelfSubjectAccessReview", "selfsubjectaccessreviews"),
    _review("authorization.k8s.io", "SelfSubjectRulesReview", "selfsubjectrulesreviews"),
    _review("authorization.k8s.io", "SubjectAccessReview", "subjectaccessreviews"),
    # batch/v1
    _r("batch", "v1", "Job", "jobs", True, (), ALL, _STATUS),
    _r("batch", "v1", "CronJob", "cronjobs", True, ["cj"], ALL, _STATUS),
    # autoscaling
    _r(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        True,
        ["hpa"],
        ALL,
        _STATUS,
    ),
    _r(
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        True,
        ["hpa"],
        ALL,
        _STATUS,
        storage_version="v2",  # one storage, converted (pyk8s.api.conversion)
    ),
    # networking.k8s.io/v1
    _r("networking.k8s.io", "v1", "Ingress", "ingresses", True, ["ing"], sub=_STATUS),
    _r("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False),
    _r("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, ["netpol"]),
    # discovery.k8s.io/v1
    _r("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True),
    # certificates.k8s.io/v1
    _r(
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        False,
        ["csr"],
        sub=["status", "approval"],
    ),
    # coordination.k8s.io/v1
    _r("coordination.k8s.io", "v1", "Lease", "leases", True),
    # rbac.authorization.k8s.io/v1
    _r("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    _r("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    _r("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    _r("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    # apiextensions.k8s.io/v1
    _r(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        False,
        ["crd", "crds"],
        ["api-extensions"],
        _STATUS,
    ),
    # admissionregistration.k8s.io/v1
    _r(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        False,
        categories=["api-extensions"],
    ),
    _r(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        False,
        categories=["api-extensions"],
    ),
    _r(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
        False,
        categories=["api-extensions"],
        sub=_STATUS,
    ),
    _r(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
        False,
        categories=["api-extensions"],
    ),
    # apiregistration.k8s.io/v1
    _r(
        "apiregistration.k8s.io",
        "v1",
        "APIService",
        "apiservices",
        False,
        categories=["api-extensions"],
        sub=_STATUS,
    ),
    # storage.k8s.io/v1
    _r("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, ["sc"]),
    _r("storage.k8s.io", "v1", "CSIDriver", "csidrivers", False),
    _r("storage.k8s.io", "v1", "CSINode", "csinodes", False),
    _r("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", False, sub=_STATUS),
    # flowcontrol.apiserver.k8s.io/v1 (API Priority and Fairness)
    _r(GROUP_FLOWCONTROL, "v1", "FlowSchema", "flowschemas", False, sub=_STATUS),
    _r(
        GROUP_FLOWCONTROL,
        "v1",
        "PriorityLevelConfiguration",
        "prioritylevelconfigurations",
        False,
        sub=_STATUS,
    ),
    # scheduling.k8s.io/v1
    _r("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False, ["pc"]),
    # policy/v1
    _r("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True, ["pdb"], sub=_STATUS),
    # events.k8s.io/v1
    # core Events, converted (pyk8s.api.conversion)
    _r("events.k8s.io", "v1", "Event", "events", True, ["ev"], storage_group=""),
)

#: the preferred version of each built-in group, first listed wins (autoscaling: v2, as
#: upstream); :meth:`Registry.preferred_version` also knows the groups added at run time
PREFERRED_VERSIONS: dict[str, str] = {}
for _res in RESOURCES:
    PREFERRED_VERSIONS.setdefault(_res.group, _res.version)


class Registry:
    """Lookups over the served resources by group/version/plural, kind, or short name.

    The registry is mutable, as upstream's is: CustomResourceDefinitions add and remove
    resources while the server runs. Every change bumps :attr:`generation`, so whatever
    is derived from the registry (discovery, OpenAPI documents) knows when to rebuild.
    Readers see a consistent snapshot: each change replaces the lookup tables whole.
    """

    def __init__(self, resources: Iterable[Resource] = RESOURCES) -> None:
        self.generation = 0
        self._set(tuple(resources))

    def _set(self, resources: tuple[Resource, ...]) -> None:
        self.resources = resources
        self._by_path = {(r.group, r.version, r.plural): r for r in resources}
        self._by_kind = {(r.group, r.version, r.kind): r for r in resources}
        #: (group, plural) -> the first-listed (preferred) version's resource
        by_group_resource: dict[tuple[str, str], Resource] = {}
        for r in resources:
            by_group_resource.setdefault((r.group, r.plural), r)
        self._by_group_resource = by_group_resource
        self.generation += 1

    def add(self, resource: Resource) -> None:
        """Serve ``resource`` (replacing the entry at its group/version/plural, if any).

        A group's versions keep the order they were first added in; add the preferred
        version of a new group first."""
        key = (resource.group, resource.version, resource.plural)
        if key in self._by_path:
            self._set(tuple(resource if _path(r) == key else r for r in self.resources))
        else:
            self._set((*self.resources, resource))

    def remove(self, group: str, version: str, plural: str) -> Resource | None:
        """Stop serving a resource; returns what was removed (None if it was not served)."""
        gone = self._by_path.get((group, version, plural))
        if gone is not None:
            self._set(tuple(r for r in self.resources if r is not gone))
        return gone

    def __iter__(self) -> Iterator[Resource]:
        return iter(self.resources)

    def get(self, group: str, version: str, plural: str) -> Resource | None:
        return self._by_path.get((group, version, plural))

    def for_group_resource(self, group: str, plural: str) -> Resource | None:
        """The preferred version of ``plural`` in ``group`` (``("apps", "deployments")``)."""
        return self._by_group_resource.get((group, plural))

    def for_kind(self, group: str, version: str, kind: str) -> Resource | None:
        return self._by_kind.get((group, version, kind))

    def for_api_version(self, api_version: str, kind: str) -> Resource | None:
        group, _, version = api_version.rpartition("/")
        return self.for_kind(group, version, kind)

    def group_versions(self) -> dict[str, list[str]]:
        """Each group with its versions, preferred version first."""
        out: dict[str, list[str]] = {}
        for r in self.resources:
            versions = out.setdefault(r.group, [])
            if r.version not in versions:
                versions.append(r.version)
        return out

    def preferred_version(self, group: str) -> str | None:
        """The version a client should use for ``group`` (None if nothing is served)."""
        builtin = PREFERRED_VERSIONS.get(group)
        versions = self.group_versions().get(group, [])
        if builtin in versions:
            return builtin
        return versions[0] if versions else None

    def in_group_version(self, group: str, version: str) -> list[Resource]:
        return [r for r in self.resources if r.group == group and r.version == version]


def _path(r: Resource) -> tuple[str, str, str]:
    return (r.group, r.version, r.plural)


#: the built-in resources (the API server copies it: its own registry grows with CRDs)
REGISTRY = Registry()
