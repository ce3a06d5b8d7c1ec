"""The official ``kubernetes`` Python client against pyk8s: CRUD and watch on every group."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

LABELS = {"app": "demo"}
POD_TEMPLATE = {
    "metadata": {"labels": LABELS},
    "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
}

# (API class, kind, plural used in method names, a minimal body)
NAMESPACED: list[tuple[str, str, str, dict[str, Any]]] = [
    ("CoreV1Api", "ConfigMap", "config_map", {"data": {"a": "1"}}),
    ("CoreV1Api", "Secret", "secret", {"stringData": {"a": "1"}}),
    ("CoreV1Api", "ServiceAccount", "service_account", {}),
    (
        "CoreV1Api",
        "Service",
        "service",
        {"spec": {"selector": LABELS, "ports": [{"port": 80, "targetPort": 8080}]}},
    ),
    ("CoreV1Api", "Endpoints", "endpoints", {"subsets": []}),
    ("CoreV1Api", "Pod", "pod", {"spec": POD_TEMPLATE["spec"]}),
    (
        "CoreV1Api",
        "PersistentVolumeClaim",
        "persistent_volume_claim",
        {"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
    ),
    (
        "CoreV1Api",
        "LimitRange",
        "limit_range",
        {"spec": {"limits": [{"type": "Container", "default": {"cpu": "100m"}}]}},
    ),
    ("CoreV1Api", "ResourceQuota", "resource_quota", {"spec": {"hard": {"pods": "10"}}}),
    ("CoreV1Api", "PodTemplate", "pod_template", {"template": POD_TEMPLATE}),
    (
        "CoreV1Api",
        "ReplicationController",
        "replication_controller",
        {"spec": {"replicas": 1, "selector": LABELS, "template": POD_TEMPLATE}},
    ),
    (
        "CoreV1Api",
        "Event",
        "event",
        {"involvedObject": {"kind": "Pod", "name": "x"}, "reason": "Test", "message": "hello"},
    ),
    (
        "AppsV1Api",
        "Deployment",
        "deployment",
        {"spec": {"selector": {"matchLabels": LABELS}, "template": POD_TEMPLATE}},
    ),
    (
        "AppsV1Api",
        "ReplicaSet",
        "replica_set",
        {"spec": {"selector": {"matchLabels": LABELS}, "template": POD_TEMPLATE}},
    ),
    (
        "AppsV1Api",
        "StatefulSet",
        "stateful_set",
        {
            "spec": {
                "serviceName": "s",
                "selector": {"matchLabels": LABELS},
                "template": POD_TEMPLATE,
            }
        },
    ),
    (
        "AppsV1Api",
        "DaemonSet",
        "daemon_set",
        {"spec": {"selector": {"matchLabels": LABELS}, "template": POD_TEMPLATE}},
    ),
    ("AppsV1Api", "ControllerRevision", "controller_revision", {"revision": 1, "data": {}}),
    (
        "BatchV1Api",
        "Job",
        "job",
        {
            "spec": {
                "template": {
                    **POD_TEMPLATE,
                    "spec": {**POD_TEMPLATE["spec"], "restartPolicy": "Never"},
                }
            }
        },
    ),
    (
        "BatchV1Api",
        "CronJob",
        "cron_job",
        {
            "spec": {
                "schedule": "*/5 * * * *",
                "jobTemplate": {
                    "spec": {
                        "template": {
                            **POD_TEMPLATE,
                            "spec": {**POD_TEMPLATE["spec"], "restartPolicy": "OnFailure"},
                        }
                    }
                },
            }
        },
    ),
    (
        "AutoscalingV2Api",
        "HorizontalPodAutoscaler",
        "horizontal_pod_autoscaler",
        {
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
                "minReplicas": 1,
                "maxReplicas": 3,
            }
        },
    ),
    (
        "AutoscalingV1Api",
        "HorizontalPodAutoscaler",
        "horizontal_pod_autoscaler",
        {
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
                "maxReplicas": 3,
            }
        },
    ),
    (
        "NetworkingV1Api",
        "Ingress",
        "ingress",
        {"spec": {"defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}}},
    ),
    ("NetworkingV1Api", "NetworkPolicy", "network_policy", {"spec": {"podSelector": {}}}),
    (
        "DiscoveryV1Api",
        "EndpointSlice",
        "endpoint_slice",
        {"addressType": "IPv4", "endpoints": [{"addresses": ["10.42.0.5"]}]},
    ),
    ("CoordinationV1Api", "Lease", "lease", {"spec": {"holderIdentity": "me"}}),
    (
        "RbacAuthorizationV1Api",
        "Role",
        "role",
        {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]},
    ),
    (
        "RbacAuthorizationV1Api",
        "RoleBinding",
        "role_binding",
        {
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [
                {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}
            ],
        },
    ),
    (
        "PolicyV1Api",
        "PodDisruptionBudget",
        "pod_disruption_budget",
        {"spec": {"minAvailable": 1, "selector": {"matchLabels": LABELS}}},
    ),
    (
        "EventsV1Api",
        "Event",
        "event",
        {
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "pyk8s.io/test",
            "reportingInstance": "test-1",
            "action": "Testing",
            "reason": "Test",
            "type": "Normal",
            "regarding": {"kind": "Pod", "name": "x"},
        },
    ),
]

CLUSTER: list[tuple[str, str, str, dict[str, Any]]] = [
    ("CoreV1Api", "Namespace", "namespace", {}),
    ("CoreV1Api", "Node", "node", {}),
    (
        "CoreV1Api",
        "PersistentVolume",
        "persistent_volume",
        {
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": "/tmp/pv"},
            }
        },
    ),
    ("NetworkingV1Api", "IngressClass", "ingress_class", {"spec": {"controller": "x.io/c"}}),
    (
        "RbacAuthorizationV1Api",
        "ClusterRole",
        "cluster_role",
        {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]},
    ),
    (
        "RbacAuthorizationV1Api",
        "ClusterRoleBinding",
        "cluster_role_binding",
        {
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "r",
            },
            "subjects": [
                {"kind": "Group", "name": "devs", "apiGroup": "rbac.authorization.k8s.io"}
            ],
        },
    ),
    ("StorageV1Api", "StorageClass", "storage_class", {"provisioner": "x.io/p"}),
    ("SchedulingV1Api", "PriorityClass", "priority_class", {"value": 1000}),
]


def _api_version(api_class: str) -> str:
    group = {
        "CoreV1Api": "v1",
        "AppsV1Api": "apps/v1",
        "BatchV1Api": "batch/v1",
        "AutoscalingV2Api": "autoscaling/v2",
        "AutoscalingV1Api": "autoscaling/v1",
        "NetworkingV1Api": "networking.k8s.io/v1",
        "DiscoveryV1Api": "discovery.k8s.io/v1",
        "CoordinationV1Api": "coordination.k8s.io/v1",
        "RbacAuthorizationV1Api": "rbac.authorization.k8s.io/v1",
        "PolicyV1Api": "policy/v1",
        "EventsV1Api": "events.k8s.io/v1",
        "StorageV1Api": "storage.k8s.io/v1",
        "SchedulingV1Api": "scheduling.k8s.io/v1",
    }
    return group[api_class]


@pytest.mark.parametrize(
    ("api_class", "kind", "plural", "body"),
    NAMESPACED,
    ids=[f"{a}.{k}" for a, k, _, _ in NAMESPACED],
)
def test_namespaced_crud(
    api: Any, ns: str, api_class: str, kind: str, plural: str, body: dict[str, Any]
) -> None:
    c = getattr(client, api_class)(api)
    name = f"{kind.lower()}-x"
    obj = {
        "apiVersion": _api_version(api_class),
        "kind": kind,
        "metadata": {"name": name, "labels": {"suite": "crud"}},
        **body,
    }
    for ref in ("involvedObject", "regarding"):  # events name an object in their namespace
        if ref in obj:
            obj[ref] = {**obj[ref], "namespace": ns}
    created = getattr(c, f"create_namespaced_{plural}")(ns, obj)
    assert created.metadata.name == name and created.metadata.uid
    got = getattr(c, f"read_namespaced_{plural}")(name, ns)
    assert got.metadata.resource_version == created.metadata.resource_version
    listed = getattr(c, f"list_namespaced_{plural}")(ns, label_selector="suite=crud")
    assert [i.metadata.name for i in listed.items] == [name]
    patched = getattr(c, f"patch_namespaced_{plural}")(
        name, ns, {"metadata": {"labels": {"patched": "yes"}}}
    )
    assert patched.metadata.labels["patched"] == "yes"
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)
    patched.metadata.annotations = {"replaced": "yes"}
    replaced = getattr(c, f"replace_namespaced_{plural}")(name, ns, patched)
    assert replaced.metadata.annotations["replaced"] == "yes"
    with pytest.raises(ApiException) as stale:
        getattr(c, f"replace_namespaced_{plural}")(name, ns, patched)  # old resourceVersion
    assert stale.value.status == 409
    getattr(c, f"delete_namespaced_{plural}")(name, ns, grace_period_seconds=0)
    _release_protection(
        kind,
        getattr(c, f"read_namespaced_{plural}"),
        getattr(c, f"patch_namespaced_{plural}"),
        name,
        ns,
    )
    with pytest.raises(ApiException) as gone:
        getattr(c, f"read_namespaced_{plural}")(name, ns)
    assert gone.value.status == 404


#: the finalizer admission (StorageObjectInUseProtection) puts on claims and volumes; with no
#: controller manager beside this API server, nothing removes it, as upstream
PROTECTION = {
    "PersistentVolumeClaim": "kubernetes.io/pvc-protection",
    "PersistentVolume": "kubernetes.io/pv-protection",
}


def _release_protection(kind: str, read: Any, patch: Any, *key: str) -> None:
    """A protected kind's delete leaves it Terminating with its finalizer; the test plays the
    protection controller (the object is in use by nothing) and removes it."""
    if kind not in PROTECTION:
        return
    terminating = read(*key)
    assert terminating.metadata.deletion_timestamp is not None
    assert PROTECTION[kind] in (terminating.metadata.finalizers or [])
    patch(*key, {"metadata": {"finalizers": None}})  # finalizers merge by value: null drops them


@pytest.mark.parametrize(
    ("api_class", "kind", "plural", "body"), CLUSTER, ids=[f"{a}.{k}" for a, k, _, _ in CLUSTER]
)
def test_cluster_scoped_crud(
    api: Any, api_class: str, kind: str, plural: str, body: dict[str, Any]
) -> None:
    c = getattr(client, api_class)(api)
    name = f"{kind.lower()}-crud-{int(time.time() * 1000) % 100000}"
    obj = {"apiVersion": _api_version(api_class), "kind": kind, "metadata": {"name": name}, **body}
    created = getattr(c, f"create_{plural}")(obj)
    assert created.metadata.name == name
    assert getattr(c, f"read_{plural}")(name).metadata.uid == created.metadata.uid
    names = [i.metadata.name for i in getattr(c, f"list_{plural}")().items]
    assert name in names
    patched = getattr(c, f"patch_{plural}")(name, {"metadata": {"labels": {"p": "1"}}})
    assert patched.metadata.labels["p"] == "1"
    getattr(c, f"delete_{plural}")(name)
    _release_protection(kind, getattr(c, f"read_{plural}"), getattr(c, f"patch_{plural}"), name)
    if kind != "Namespace":  # a namespace is finalized by the namespace controller
        with pytest.raises(ApiException) as gone:
            getattr(c, f"read_{plural}")(name)
        assert gone.value.status == 404


def test_watch_sees_added_modified_deleted(api: Any, ns: str) -> None:
    core = client.CoreV1Api(api)
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    events: list[tuple[str, str, str]] = []
    w = watch.Watch()

    def run() -> None:
        for ev in w.stream(
            core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=20
        ):
            events.append(
                (
                    ev["type"],
                    ev["object"].metadata.name,
                    ev["object"].data.get("k", "") if ev["object"].data else "",
                )
            )
            if len(events) == 3:
                w.stop()

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.5)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "w"}, "data": {"k": "1"}})
    core.patch_namespaced_config_map("w", ns, {"data": {"k": "2"}})
    core.delete_namespaced_config_map("w", ns)
    t.join(timeout=30)
    assert events == [("ADDED", "w", "1"), ("MODIFIED", "w", "2"), ("DELETED", "w", "2")]


def test_paginated_list_with_continue(api: Any, ns: str) -> None:
    core = client.CoreV1Api(api)
    for i in range(12):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"p{i:02d}"}})
    first = core.list_namespaced_config_map(ns, limit=5)
    assert len(first.items) == 5 and first.metadata._continue
    assert first.metadata.remaining_item_count >= 7
    names = [i.metadata.name for i in first.items]
    token = first.metadata._continue
    while token:
        page = core.list_namespaced_config_map(ns, limit=5, _continue=token)
        names += [i.metadata.name for i in page.items]
        token = page.metadata._continue
    assert [n for n in names if n.startswith("p")] == [f"p{i:02d}" for i in range(12)]


def test_finalizers_hold_deletion_until_removed(api: Any, ns: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(
        ns, {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
    )
    core.delete_namespaced_config_map("held", ns)
    held = core.read_namespaced_config_map("held", ns)
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("held", ns, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("held", ns)
    assert gone.value.status == 404


def test_generation_moves_only_on_spec_changes(api: Any, ns: str) -> None:
    apps = client.AppsV1Api(api)
    d = apps.create_namespaced_deployment(
        ns,
        {
            "metadata": {"name": "gen"},
            "spec": {"selector": {"matchLabels": LABELS}, "template": POD_TEMPLATE},
        },
    )
    assert d.metadata.generation == 1
    d = apps.patch_namespaced_deployment("gen", ns, {"metadata": {"labels": {"x": "y"}}})
    assert d.metadata.generation == 1
    d = apps.patch_namespaced_deployment("gen", ns, {"spec": {"replicas": 5}})
    assert d.metadata.generation == 2
    d = apps.patch_namespaced_deployment_status("gen", ns, {"status": {"replicas": 5}})
    assert d.metadata.generation == 2 and d.status.replicas == 5
    # the main resource cannot write status, the status subresource cannot write spec
    d = apps.patch_namespaced_deployment("gen", ns, {"status": {"replicas": 1}})
    assert d.status.replicas == 5
    d = apps.patch_namespaced_deployment_status("gen", ns, {"spec": {"replicas": 1}})
    assert d.spec.replicas == 5


def test_pod_binding_and_graceful_delete(api: Any, ns: str) -> None:
    core = client.CoreV1Api(api)
    pod = core.create_namespaced_pod(
        ns, {"metadata": {"name": "bindme"}, "spec": POD_TEMPLATE["spec"]}
    )
    assert pod.status.phase == "Pending" and pod.status.qos_class == "BestEffort"
    assert pod.spec.service_account_name == "default"
    assert {t.key for t in pod.spec.tolerations} >= {
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    }
    core.create_namespaced_pod_binding(
        "bindme",
        ns,
        {
            "metadata": {"name": "bindme"},
            "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"},
        },
        _preload_content=False,
    )
    bound = core.read_namespaced_pod("bindme", ns)
    assert bound.spec.node_name == "node-1"
    with pytest.raises(ApiException) as again:
        core.create_namespaced_pod_binding(
            "bindme",
            ns,
            {
                "metadata": {"name": "bindme"},
                "target": {"apiVersion": "v1", "kind": "Node", "name": "node-2"},
            },
            _preload_content=False,
        )
    assert again.value.status == 409
    # a bound pod is deleted gracefully: it stays, marked, until the kubelet confirms
    core.delete_namespaced_pod("bindme", ns)
    marked = core.read_namespaced_pod("bindme", ns)
    assert marked.metadata.deletion_timestamp is not None
    assert marked.metadata.deletion_grace_period_seconds == 30
    core.delete_namespaced_pod("bindme", ns, grace_period_seconds=0)
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_pod("bindme", ns)
    assert gone.value.status == 404


def test_delete_collection_with_label_selector(api: Any, ns: str) -> None:
    core = client.CoreV1Api(api)
    for i in range(3):
        core.create_namespaced_config_map(
            ns, {"metadata": {"name": f"dc{i}", "labels": {"batch": "x"}}}
        )
    core.create_namespaced_config_map(ns, {"metadata": {"name": "survivor"}})
    core.delete_collection_namespaced_config_map(ns, label_selector="batch=x")
    names = {i.metadata.name for i in core.list_namespaced_config_map(ns).items}
    assert "survivor" in names and not any(n.startswith("dc") for n in names)


def test_field_selector_on_pods(api: Any, ns: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(
        ns, {"metadata": {"name": "fs1"}, "spec": {**POD_TEMPLATE["spec"], "nodeName": "n1"}}
    )
    core.create_namespaced_pod(ns, {"metadata": {"name": "fs2"}, "spec": POD_TEMPLATE["spec"]})
    on_n1 = core.list_namespaced_pod(ns, field_selector="spec.nodeName=n1")
    assert [p.metadata.name for p in on_n1.items] == ["fs1"]
    with pytest.raises(ApiException) as bad:
        core.list_namespaced_pod(ns, field_selector="spec.bogus=1")
    assert bad.value.status == 400


def test_scale_subresource(api: Any, ns: str) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(
        ns,
        {
            "metadata": {"name": "sc"},
            "spec": {"selector": {"matchLabels": LABELS}, "template": POD_TEMPLATE},
        },
    )
    scale = apps.read_namespaced_deployment_scale("sc", ns)
    assert scale.spec.replicas == 1 and scale.status.selector == "app=demo"
    apps.patch_namespaced_deployment_scale("sc", ns, {"spec": {"replicas": 4}})
    assert apps.read_namespaced_deployment("sc", ns).spec.replicas == 4
