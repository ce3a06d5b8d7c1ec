"""The APIServices the API server makes for what it serves itself (upstream's
autoregister and crdRegistration controllers).

Every group/version served here has a *local* APIService (no ``spec.service``), so
``kubectl get apiservices`` lists the whole API as on a real cluster: built-in ones
named ``v1.`` (the core group), ``v1.apps``, ``v2.autoscaling``… with upstream's
priorities, labelled ``kube-aggregator.kubernetes.io/automanaged: onstart`` (made or
corrected at start-up; a user may change them afterwards), and one per group/version a
CustomResourceDefinition serves, priorities 1000/100, labelled ``…/automanaged: true``
(kept in step with the CRDs: removed when no CRD serves that group/version any more).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = [
    "AUTOMANAGED_LABEL",
    "BUILTIN_PRIORITIES",
    "CRD_GROUP_PRIORITY",
    "CRD_VERSION_PRIORITY",
    "ONSTART",
    "SYNCED",
    "apiservice_name",
    "crd_group_versions",
    "local_apiservice",
]

JSON = dict[str, Any]

AUTOMANAGED_LABEL = "kube-aggregator.kubernetes.io/automanaged"
#: made at start-up, then left alone
ONSTART = "onstart"
#: kept in step with what is served (CRDs)
SYNCED = "true"

#: (groupPriorityMinimum, versionPriority) of the built-in group/versions, upstream
#: v1.32's table (DefaultGenericAPIServicePriorities merged with kube-apiserver's own);
#: a group/version missing here gets no APIService, as upstream
BUILTIN_PRIORITIES: dict[tuple[str, str], tuple[int, int]] = {
    ("", "v1"): (18000, 1),
    ("apps", "v1"): (17800, 15),
    ("events.k8s.io", "v1"): (17750, 15),
    ("authentication.k8s.io", "v1"): (17700, 15),
    ("authorization.k8s.io", "v1"): (17600, 15),
    ("autoscaling", "v1"): (17500, 15),
    ("autoscaling", "v2"): (17500, 30),
    ("batch", "v1"): (17400, 15),
    ("certificates.k8s.io", "v1"): (17300, 15),
    ("networking.k8s.io", "v1"): (17200, 15),
    ("policy", "v1"): (17100, 15),
    ("rbac.authorization.k8s.io", "v1"): (17000, 15),
    ("storage.k8s.io", "v1"): (16800, 15),
    ("apiextensions.k8s.io", "v1"): (16700, 15),
    ("admissionregistration.k8s.io", "v1"): (16700, 15),
    ("scheduling.k8s.io", "v1"): (16600, 15),
    ("coordination.k8s.io", "v1"): (16500, 15),
    ("node.k8s.io", "v1"): (16300, 15),
    ("discovery.k8s.io", "v1"): (16200, 15),
    ("flowcontrol.apiserver.k8s.io", "v1"): (16100, 21),
}

#: upstream's crdRegistrationController: custom resources rank below every built-in group
CRD_GROUP_PRIORITY = 1000
CRD_VERSION_PRIORITY = 100


def apiservice_name(group: str, version: str) -> str:
    """``v1.apps``; ``v1.`` for the core group."""
    return f"{version}.{group}"


def local_apiservice(group: str, version: str, priorities: tuple[int, int], managed: str) -> JSON:
    """A local APIService for ``group/version`` (served by this API server)."""
    group_priority, version_priority = priorities
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {
            "name": apiservice_name(group, version),
            "labels": {AUTOMANAGED_LABEL: managed},
        },
        "spec": {
            "group": group,
            "version": version,
            "groupPriorityMinimum": group_priority,
            "versionPriority": version_priority,
        },
    }


def crd_group_versions(crds: Iterable[JSON]) -> set[tuple[str, str]]:
    """Every group/version a CRD serves (a CRD being deleted still serves until it is
    gone, as upstream)."""
    out: set[tuple[str, str]] = set()
    for crd in crds:
        spec = crd.get("spec") or {}
        group = str(spec.get("group") or "")
        for v in spec.get("versions") or []:
            if isinstance(v, dict) and v.get("served") and v.get("name"):
                out.add((group, str(v["name"])))
    return out
