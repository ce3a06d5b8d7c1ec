"""Valid objects of every built-in kind a client creates, one each, for tests that need
the whole API surface (the typed-decoding property test). Webhook configurations match
nothing the tests write; {ns} in a path or body is the namespace."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]

_POD_SPEC: JSON = {
    "containers": [
        {
            "name": "c",
            "image": "busybox",
            "command": ["sleep", "3600"],
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "env": [{"name": "A", "value": "1"}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": 1}},
            "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 5},
        }
    ],
    "restartPolicy": "Always",
    "terminationGracePeriodSeconds": 30,
    "nodeSelector": {"disk": "ssd"},
    "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
}
_TEMPLATE: JSON = {"metadata": {"labels": {"app": "a"}}, "spec": _POD_SPEC}
_SELECTOR: JSON = {"matchLabels": {"app": "a"}}
_RULE: JSON = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}
#: webhook and policy rules that match nothing the tests write
_NOTHING: JSON = {
    "apiGroups": ["example.com"],
    "apiVersions": ["v1"],
    "operations": ["CREATE"],
    "resources": ["widgets"],
}
_WEBHOOK: JSON = {
    "name": "w.example.com",
    "clientConfig": {"url": "https://127.0.0.1:1/hook"},
    "rules": [_NOTHING],
    "sideEffects": "None",
    "admissionReviewVersions": ["v1"],
    "failurePolicy": "Ignore",
    "timeoutSeconds": 5,
}

#: (path under /api or /apis, with {ns} for the namespace, a valid body without a name)
CATALOGUE: list[tuple[str, JSON]] = [
    ("/api/v1/namespaces", {"kind": "Namespace", "apiVersion": "v1"}),
    ("/api/v1/namespaces/{ns}/pods", {"kind": "Pod", "apiVersion": "v1", "spec": _POD_SPEC}),
    (
        "/api/v1/namespaces/{ns}/services",
        {
            "kind": "Service",
            "apiVersion": "v1",
            "spec": {
                "selector": {"app": "a"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
                "sessionAffinity": "None",
            },
        },
    ),
    (
        "/api/v1/namespaces/{ns}/endpoints",
        {
            "kind": "Endpoints",
            "apiVersion": "v1",
            "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}],
        },
    ),
    (
        "/api/v1/namespaces/{ns}/configmaps",
        {"kind": "ConfigMap", "apiVersion": "v1", "data": {"a": "1"}, "immutable": False},
    ),
    (
        "/api/v1/namespaces/{ns}/secrets",
        {"kind": "Secret", "apiVersion": "v1", "type": "Opaque", "data": {"a": "MQ=="}},
    ),
    (
        "/api/v1/namespaces/{ns}/serviceaccounts",
        {"kind": "ServiceAccount", "apiVersion": "v1", "automountServiceAccountToken": False},
    ),
    (
        "/api/v1/nodes",
        {
            "kind": "Node",
            "apiVersion": "v1",
            "metadata": {"labels": {"kubernetes.io/hostname": "n"}},
            "spec": {"podCIDR": "10.42.9.0/24", "unschedulable": True},
        },
    ),
    (
        "/api/v1/namespaces/{ns}/events",
        {
            "kind": "Event",
            "apiVersion": "v1",
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "{ns}"},
            "reason": "Started",
            "message": "started",
            "type": "Normal",
            "count": 1,
            "source": {"component": "test"},
        },
    ),
    (
        "/api/v1/persistentvolumes",
        {
            "kind": "PersistentVolume",
            "apiVersion": "v1",
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": "/tmp/pv"},
                "persistentVolumeReclaimPolicy": "Retain",
            },
        },
    ),
    (
        "/api/v1/namespaces/{ns}/persistentvolumeclaims",
        {
            "kind": "PersistentVolumeClaim",
            "apiVersion": "v1",
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    ),
    (
        "/api/v1/namespaces/{ns}/limitranges",
        {
            "kind": "LimitRange",
            "apiVersion": "v1",
            "spec": {"limits": [{"type": "Container", "max": {"cpu": "64"}}]},
        },
    ),
    (
        "/api/v1/namespaces/{ns}/resourcequotas",
        {"kind": "ResourceQuota", "apiVersion": "v1", "spec": {"hard": {"count/widgets": "1000"}}},
    ),
    (
        "/api/v1/namespaces/{ns}/podtemplates",
        {"kind": "PodTemplate", "apiVersion": "v1", "template": _TEMPLATE},
    ),
    (
        "/api/v1/namespaces/{ns}/replicationcontrollers",
        {
            "kind": "ReplicationController",
            "apiVersion": "v1",
            "spec": {"replicas": 0, "selector": {"app": "a"}, "template": _TEMPLATE},
        },
    ),
    (
        "/apis/apps/v1/namespaces/{ns}/deployments",
        {
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "spec": {
                "replicas": 0,
                "selector": _SELECTOR,
                "template": _TEMPLATE,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
            },
        },
    ),
    (
        "/apis/apps/v1/namespaces/{ns}/replicasets",
        {
            "kind": "ReplicaSet",
            "apiVersion": "apps/v1",
            "spec": {"replicas": 0, "selector": _SELECTOR, "template": _TEMPLATE},
        },
    ),
    (
        "/apis/apps/v1/namespaces/{ns}/statefulsets",
        {
            "kind": "StatefulSet",
            "apiVersion": "apps/v1",
            "spec": {
                "replicas": 0,
                "serviceName": "s",
                "selector": _SELECTOR,
                "template": _TEMPLATE,
            },
        },
    ),
    (
        "/apis/apps/v1/namespaces/{ns}/daemonsets",
        {
            "kind": "DaemonSet",
            "apiVersion": "apps/v1",
            "spec": {"selector": _SELECTOR, "template": _TEMPLATE},
        },
    ),
    (
        "/apis/apps/v1/namespaces/{ns}/controllerrevisions",
        {"kind": "ControllerRevision", "apiVersion": "apps/v1", "revision": 1, "data": {"a": 1}},
    ),
    (
        "/apis/batch/v1/namespaces/{ns}/jobs",
        {
            "kind": "Job",
            "apiVersion": "batch/v1",
            "spec": {
                "suspend": True,
                "backoffLimit": 2,
                "template": {
                    "metadata": {"labels": {"app": "a"}},
                    "spec": {**_POD_SPEC, "restartPolicy": "Never"},
                },
            },
        },
    ),
    (
        "/apis/batch/v1/namespaces/{ns}/cronjobs",
        {
            "kind": "CronJob",
            "apiVersion": "batch/v1",
            "spec": {
                "schedule": "*/5 * * * *",
                "suspend": True,
                "jobTemplate": {
                    "spec": {
                        "template": {
                            "metadata": {"labels": {"app": "a"}},
                            "spec": {**_POD_SPEC, "restartPolicy": "OnFailure"},
                        }
                    }
                },
            },
        },
    ),
    (
        "/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers",
        {
            "kind": "HorizontalPodAutoscaler",
            "apiVersion": "autoscaling/v2",
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
                "minReplicas": 1,
                "maxReplicas": 3,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 50},
                        },
                    }
                ],
            },
        },
    ),
    (
        "/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses",
        {
            "kind": "Ingress",
            "apiVersion": "networking.k8s.io/v1",
            "spec": {
                "rules": [
                    {
                        "host": "a.example.com",
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": "s", "port": {"number": 80}}},
                                }
                            ]
                        },
                    }
                ]
            },
        },
    ),
    (
        "/apis/networking.k8s.io/v1/ingressclasses",
        {
            "kind": "IngressClass",
            "apiVersion": "networking.k8s.io/v1",
            "spec": {"controller": "example.com/ingress"},
        },
    ),
    (
        "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies",
        {
            "kind": "NetworkPolicy",
            "apiVersion": "networking.k8s.io/v1",
            "spec": {
                "podSelector": _SELECTOR,
                "policyTypes": ["Ingress"],
                "ingress": [{"ports": [{"port": 80, "protocol": "TCP"}]}],
            },
        },
    ),
    (
        "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
        {
            "kind": "EndpointSlice",
            "apiVersion": "discovery.k8s.io/v1",
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        },
    ),
    (
        "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases",
        {
            "kind": "Lease",
            "apiVersion": "coordination.k8s.io/v1",
            "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15},
        },
    ),
    (
        "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
        {"kind": "Role", "apiVersion": "rbac.authorization.k8s.io/v1", "rules": [_RULE]},
    ),
    (
        "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
        {
            "kind": "RoleBinding",
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [
                {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}
            ],
        },
    ),
    (
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        {"kind": "ClusterRole", "apiVersion": "rbac.authorization.k8s.io/v1", "rules": [_RULE]},
    ),
    (
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "kind": "ClusterRoleBinding",
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "r",
            },
            "subjects": [{"kind": "Group", "name": "g", "apiGroup": "rbac.authorization.k8s.io"}],
        },
    ),
    (
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
        {
            "kind": "ValidatingWebhookConfiguration",
            "apiVersion": "admissionregistration.k8s.io/v1",
            "webhooks": [_WEBHOOK],
        },
    ),
    (
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
        {
            "kind": "MutatingWebhookConfiguration",
            "apiVersion": "admissionregistration.k8s.io/v1",
            "webhooks": [{**_WEBHOOK, "reinvocationPolicy": "Never"}],
        },
    ),
    (
        "/apis/storage.k8s.io/v1/storageclasses",
        {
            "kind": "StorageClass",
            "apiVersion": "storage.k8s.io/v1",
            "provisioner": "example.com/none",
            "parameters": {"a": "b"},
            "reclaimPolicy": "Delete",
            "allowVolumeExpansion": True,
        },
    ),
    (
        "/apis/scheduling.k8s.io/v1/priorityclasses",
        {
            "kind": "PriorityClass",
            "apiVersion": "scheduling.k8s.io/v1",
            "value": 1000,
            "globalDefault": False,
            "description": "d",
        },
    ),
    (
        "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
        {
            "kind": "PodDisruptionBudget",
            "apiVersion": "policy/v1",
            "spec": {"minAvailable": 1, "selector": _SELECTOR},
        },
    ),
    (
        "/apis/events.k8s.io/v1/namespaces/{ns}/events",
        {
            "kind": "Event",
            "apiVersion": "events.k8s.io/v1",
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "example.com/test",
            "reportingInstance": "i",
            "action": "Started",
            "reason": "Started",
            "type": "Normal",
            "regarding": {"kind": "Pod", "name": "p", "namespace": "{ns}"},
        },
    ),
]
