"""Defaulting against what a v1.32 API server returns for the same request.

The expected objects are what ``kubectl get -o yaml`` shows right after ``kubectl create``
on a real cluster, minus what is not defaulting's to add: server-set metadata (uid,
resourceVersion, creationTimestamp…), allocated cluster IPs and node ports, admission
(pod priority, service account, tolerations) and status written by controllers.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyk8s.api.defaults import apply_defaults, image_pull_policy
from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.api.schema import Schemas, schemas
from tests.api.helpers import res

JSON = dict[str, Any]

DIGEST = "sha256:" + "a" * 64


def default(obj: JSON, **kw: Any) -> JSON:
    """Default ``obj`` and check the promises every call keeps."""
    before = copy.deepcopy(obj)
    r = res(obj["apiVersion"], obj["kind"])
    out = apply_defaults(r, obj, **kw)
    assert obj == before, "the input was mutated"
    assert apply_defaults(r, out, **kw) == out, "defaulting twice differs from once"
    assert_known_fields(r, out)
    return out


def assert_known_fields(r: Resource, obj: JSON) -> None:
    """Every key in ``obj`` is a field of the official v1.32 schema (no misspelled default)."""
    s = schemas()
    name = s.name_for(r.group, r.version, r.kind)
    assert name is not None
    _walk(s, s.get(name), obj, r.kind)


def _walk(s: Schemas, node: JSON, value: Any, path: str) -> None:
    node = s.resolve(node)
    if isinstance(value, dict):
        if "properties" in node:
            for key, child in value.items():
                prop = s.property(node, key)
                assert prop is not None, f"{path}.{key} is not in the schema"
                _walk(s, prop, child, f"{path}.{key}")
        elif (extra := s.additional(node)) is not None:
            for key, child in value.items():
                _walk(s, extra, child, f"{path}[{key}]")
    elif isinstance(value, list) and (item := s.items(node)) is not None:
        for i, child in enumerate(value):
            _walk(s, item, child, f"{path}[{i}]")


CONTAINER_DEFAULTS = {
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
}
POD_SPEC_DEFAULTS = {
    "dnsPolicy": "ClusterFirst",
    "restartPolicy": "Always",
    "schedulerName": "default-scheduler",
    "securityContext": {},
    "terminationGracePeriodSeconds": 30,
}


# --- the realistic manifests ------------------------------------------------------------


def test_kubectl_create_deployment() -> None:
    # the body `kubectl create deployment web --image=nginx` (v1.32) sends
    sent = {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": "web", "creationTimestamp": None, "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"creationTimestamp": None, "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]},
            },
            "strategy": {},
        },
        "status": {},
    }
    assert default(sent) == {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": "web", "creationTimestamp": None, "labels": {"app": "web"}},
        "spec": {
            "progressDeadlineSeconds": 600,
            "replicas": 1,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                "type": "RollingUpdate",
            },
            "template": {
                "metadata": {"creationTimestamp": None, "labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "image": "nginx",
                            "imagePullPolicy": "Always",
                            "name": "nginx",
                            "resources": {},
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File",
                        }
                    ],
                    "dnsPolicy": "ClusterFirst",
                    "restartPolicy": "Always",
                    "schedulerName": "default-scheduler",
                    "securityContext": {},
                    "terminationGracePeriodSeconds": 30,
                },
            },
        },
        "status": {},
    }


def test_bare_pod() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "nginx:1.27",
                    "ports": [{"containerPort": 80, "name": "http"}],
                    "env": [
                        {"name": "GREETING", "value": "hi"},
                        {
                            "name": "POD_NAME",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                        },
                    ],
                    "readinessProbe": {"httpGet": {"port": "http"}},
                    "livenessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 5},
                    "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/web"}],
                }
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": "web-config"}},
                {"name": "scratch"},
            ],
        },
    }
    assert default(pod) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "nginx:1.27",
                    "imagePullPolicy": "IfNotPresent",
                    "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}],
                    "env": [
                        {"name": "GREETING", "value": "hi"},
                        {
                            "name": "POD_NAME",
                            "valueFrom": {
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}
                            },
                        },
                    ],
                    "readinessProbe": {
                        "httpGet": {"path": "/", "port": "http", "scheme": "HTTP"},
                        "failureThreshold": 3,
                        "periodSeconds": 10,
                        "successThreshold": 1,
                        "timeoutSeconds": 1,
                    },
                    "livenessProbe": {
                        "tcpSocket": {"port": 80},
                        "failureThreshold": 3,
                        "periodSeconds": 5,
                        "successThreshold": 1,
                        "timeoutSeconds": 1,
                    },
                    "resources": {
                        "limits": {"cpu": "500m", "memory": "128Mi"},
                        "requests": {"cpu": "500m", "memory": "128Mi"},
                    },
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/web"}],
                }
            ],
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": True,
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "terminationGracePeriodSeconds": 30,
            "volumes": [
                {"name": "config", "configMap": {"name": "web-config", "defaultMode": 420}},
                {"name": "scratch", "emptyDir": {}},
            ],
        },
    }


def test_nodeport_service() -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {
            "type": "NodePort",
            "selector": {"app": "web"},
            "ports": [
                {"port": 80, "nodePort": 30080},
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"},
            ],
        },
    }
    assert default(svc) == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {
            "externalTrafficPolicy": "Cluster",
            "internalTrafficPolicy": "Cluster",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "ports": [
                {"nodePort": 30080, "port": 80, "protocol": "TCP", "targetPort": 80},
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"},
            ],
            "selector": {"app": "web"},
            "sessionAffinity": "None",
            "type": "NodePort",
        },
    }


def test_job() -> None:
    # the pi Job of the Kubernetes docs
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "pi"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "pi",
                            "image": "perl:5.34.0",
                            "command": ["perl", "-Mbignum=bpi", "-wle", "print bpi(2000)"],
                        }
                    ],
                    "restartPolicy": "Never",
                }
            },
            "backoffLimit": 4,
        },
    }
    assert default(job) == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "pi"},
        "spec": {
            "backoffLimit": 4,
            "completionMode": "NonIndexed",
            "completions": 1,
            "parallelism": 1,
            "podReplacementPolicy": "TerminatingOrFailed",
            "suspend": False,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "command": ["perl", "-Mbignum=bpi", "-wle", "print bpi(2000)"],
                            "image": "perl:5.34.0",
                            "imagePullPolicy": "IfNotPresent",
                            "name": "pi",
                            **CONTAINER_DEFAULTS,
                        }
                    ],
                    **POD_SPEC_DEFAULTS,
                    "restartPolicy": "Never",
                }
            },
        },
    }


def test_cronjob() -> None:
    # the hello CronJob of the Kubernetes docs
    container = {
        "name": "hello",
        "image": "busybox:1.28",
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/sh", "-c", "date; echo Hello from the Kubernetes cluster"],
    }
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "hello"},
        "spec": {
            "schedule": "* * * * *",
            "jobTemplate": {
                "spec": {
                    "template": {"spec": {"containers": [container], "restartPolicy": "OnFailure"}}
                }
            },
        },
    }
    assert default(cron) == {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "hello"},
        "spec": {
            "concurrencyPolicy": "Allow",
            "failedJobsHistoryLimit": 1,
            "schedule": "* * * * *",
            "successfulJobsHistoryLimit": 3,
            "suspend": False,
            # the job spec itself is not defaulted: no backoffLimit, completions, …
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [{**container, **CONTAINER_DEFAULTS}],
                            **POD_SPEC_DEFAULTS,
                            "restartPolicy": "OnFailure",
                        }
                    }
                }
            },
        },
    }


def test_statefulset() -> None:
    # the web StatefulSet of the Kubernetes docs
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "nginx"}},
            "serviceName": "nginx",
            "replicas": 3,
            "minReadySeconds": 10,
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {
                    "terminationGracePeriodSeconds": 10,
                    "containers": [
                        {
                            "name": "nginx",
                            "image": "registry.k8s.io/nginx-slim:0.24",
                            "ports": [{"containerPort": 80, "name": "web"}],
                            "volumeMounts": [{"name": "www", "mountPath": "/usr/share/nginx/html"}],
                        }
                    ],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "www"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": "my-storage-class",
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }
    assert default(sts) == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web"},
        "spec": {
            "minReadySeconds": 10,
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": "Retain",
                "whenScaled": "Retain",
            },
            "podManagementPolicy": "OrderedReady",
            "replicas": 3,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": {"app": "nginx"}},
            "serviceName": "nginx",
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {
                    "containers": [
                        {
                            "image": "registry.k8s.io/nginx-slim:0.24",
                            "imagePullPolicy": "IfNotPresent",
                            "name": "nginx",
                            "ports": [{"containerPort": 80, "name": "web", "protocol": "TCP"}],
                            **CONTAINER_DEFAULTS,
                            "volumeMounts": [{"mountPath": "/usr/share/nginx/html", "name": "www"}],
                        }
                    ],
                    **POD_SPEC_DEFAULTS,
                    "terminationGracePeriodSeconds": 10,
                },
            },
            "updateStrategy": {"rollingUpdate": {"partition": 0}, "type": "RollingUpdate"},
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "www"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                        "storageClassName": "my-storage-class",
                        "volumeMode": "Filesystem",
                    },
                    "status": {"phase": "Pending"},
                }
            ],
        },
    }


def test_daemonset() -> None:
    ds = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {
                    "containers": [{"name": "agent", "image": "agent:v1"}],
                    "volumes": [{"name": "logs", "hostPath": {"path": "/var/log"}}],
                },
            },
        },
    }
    spec = default(ds)["spec"]
    assert spec["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }
    assert spec["revisionHistoryLimit"] == 10
    assert spec["template"]["spec"]["volumes"] == [
        {"name": "logs", "hostPath": {"path": "/var/log", "type": ""}}
    ]
    assert "enableServiceLinks" not in spec["template"]["spec"]  # pods only


# --- pods and pod templates -------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("library/nginx:latest", "Always"),
        ("nginx:1.27", "IfNotPresent"),
        (f"nginx@{DIGEST}", "IfNotPresent"),
        (f"nginx:latest@{DIGEST}", "Always"),
        (f"nginx:1.27@{DIGEST}", "IfNotPresent"),
        ("registry.k8s.io/pause:3.10", "IfNotPresent"),
        ("registry.k8s.io/pause", "Always"),
        ("localhost:5000/app", "Always"),
        ("localhost:5000/app:v1", "IfNotPresent"),
        ("localhost/app", "Always"),
        ("[::1]:5000/team/app:latest", "Always"),
        ("ghcr.io/org/sub/app:Latest", "IfNotPresent"),  # tags are case-sensitive
        ("", "IfNotPresent"),  # unparsable: upstream ignores the error
        ("NGINX", "IfNotPresent"),  # upper case repository: unparsable
        ("nginx@sha256:abc", "IfNotPresent"),  # bad digest: unparsable
        ("a" * 64, "IfNotPresent"),  # an image id, not a name
        (None, "IfNotPresent"),
    ],
)
def test_image_pull_policy(image: str | None, policy: str) -> None:
    assert image_pull_policy(image) == policy


def pod(spec: JSON, **extra: Any) -> JSON:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec, **extra}


def test_pod_init_and_ephemeral_containers_are_defaulted() -> None:
    spec = default(
        pod(
            {
                "initContainers": [{"name": "init", "image": "busybox"}],
                "containers": [{"name": "app", "image": "app:v1"}],
                "ephemeralContainers": [{"name": "debug", "image": "busybox:1.36"}],
            }
        )
    )["spec"]
    assert spec["initContainers"][0] == {
        "name": "init",
        "image": "busybox",
        "imagePullPolicy": "Always",
        **CONTAINER_DEFAULTS,
    }
    assert spec["ephemeralContainers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert spec["ephemeralContainers"][0]["terminationMessagePolicy"] == "File"


def test_probe_and_lifecycle_handlers() -> None:
    container = {
        "name": "app",
        "image": "app:v1",
        "startupProbe": {"grpc": {"port": 9000}},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTPS"}},
        "lifecycle": {
            "postStart": {"httpGet": {"port": 8080}},
            "preStop": {"exec": {"command": ["sleep", "5"]}},
        },
    }
    c = default(pod({"containers": [container]}))["spec"]["containers"][0]
    probe = {"timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    assert c["startupProbe"] == {"grpc": {"port": 9000, "service": ""}, **probe}
    assert c["livenessProbe"] == {
        "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTPS"},
        **probe,
    }
    assert c["lifecycle"] == {
        "postStart": {"httpGet": {"path": "/", "port": 8080, "scheme": "HTTP"}},
        "preStop": {"exec": {"command": ["sleep", "5"]}},
    }


def test_volume_sources() -> None:
    volumes = [
        {"name": "s", "secret": {"secretName": "x"}},
        {"name": "d", "downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "x"}}]}},
        {
            "name": "p",
            "projected": {
                "sources": [
                    {"serviceAccountToken": {"path": "token"}},
                    {"downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "x"}}]}},
                    {"configMap": {"name": "c"}},
                ]
            },
        },
        {"name": "e", "emptyDir": {"medium": "Memory"}},
        {"name": "i", "iscsi": {"targetPortal": "t", "iqn": "q", "lun": 0}},
        {"name": "r", "rbd": {"monitors": ["m"], "image": "img"}},
        {"name": "a", "azureDisk": {"diskName": "d", "diskURI": "u"}},
        {
            "name": "o",
            "ephemeral": {
                "volumeClaimTemplate": {
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    }
                }
            },
        },
    ]
    out = default(pod({"containers": [{"name": "c", "image": "c:1"}], "volumes": volumes}))
    by_name = {v["name"]: v for v in out["spec"]["volumes"]}
    field_ref = {"apiVersion": "v1", "fieldPath": "x"}
    assert by_name["s"]["secret"] == {"secretName": "x", "defaultMode": 420}
    assert by_name["d"]["downwardAPI"] == {
        "defaultMode": 420,
        "items": [{"path": "n", "fieldRef": field_ref}],
    }
    assert by_name["p"]["projected"] == {
        "defaultMode": 420,
        "sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
            {"downwardAPI": {"items": [{"path": "n", "fieldRef": field_ref}]}},
            {"configMap": {"name": "c"}},
        ],
    }
    assert by_name["e"] == {"name": "e", "emptyDir": {"medium": "Memory"}}
    assert by_name["i"]["iscsi"]["iscsiInterface"] == "default"
    assert by_name["r"]["rbd"] == {
        "monitors": ["m"],
        "image": "img",
        "pool": "rbd",
        "user": "admin",
        "keyring": "/etc/ceph/keyring",
    }
    assert by_name["a"]["azureDisk"] == {
        "diskName": "d",
        "diskURI": "u",
        "cachingMode": "ReadWrite",
        "fsType": "ext4",
        "readOnly": False,
        "kind": "Shared",
    }
    claim = by_name["o"]["ephemeral"]["volumeClaimTemplate"]
    assert claim["spec"]["volumeMode"] == "Filesystem"
    assert "status" not in claim  # a template's spec only


def test_pod_requests_default_to_limits_only_in_pods() -> None:
    resources = {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "250m"}}
    container = {"name": "c", "image": "c:1", "resources": resources}
    spec = default(pod({"containers": [container], "initContainers": [container]}))["spec"]
    for c in (spec["containers"][0], spec["initContainers"][0]):
        assert c["resources"]["requests"] == {"cpu": "250m", "memory": "1Gi"}
    rs = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "r"},
        "spec": {"template": {"spec": {"containers": [container]}}},
    }
    out = default(rs)
    assert out["spec"]["replicas"] == 1
    assert out["spec"]["template"]["spec"]["containers"][0]["resources"] == resources


def test_host_network_pods_get_host_ports() -> None:
    ports = [{"containerPort": 53, "protocol": "UDP"}, {"containerPort": 80, "hostPort": 8080}]
    spec = default(
        pod({"hostNetwork": True, "containers": [{"name": "c", "image": "c:1", "ports": ports}]})
    )["spec"]
    assert spec["containers"][0]["ports"] == [
        {"containerPort": 53, "hostPort": 53, "protocol": "UDP"},
        {"containerPort": 80, "hostPort": 8080, "protocol": "TCP"},
    ]
    template = {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {"name": "t"},
        "template": {
            "spec": {
                "hostNetwork": True,
                "containers": [{"name": "c", "image": "c:1", "ports": [{"containerPort": 53}]}],
            }
        },
    }
    # the DefaultHostNetworkHostPortsInPodTemplates gate is off in v1.32
    out = default(template)["template"]["spec"]
    assert out["containers"][0]["ports"] == [{"containerPort": 53, "protocol": "TCP"}]
    assert out["dnsPolicy"] == "ClusterFirst"


def test_service_account_alias_mirrors_the_name() -> None:
    c = [{"name": "c", "image": "c:1"}]
    assert (
        default(pod({"containers": c, "serviceAccountName": "sa"}))["spec"]["serviceAccount"]
        == "sa"
    )
    old = default(pod({"containers": c, "serviceAccount": "legacy"}))["spec"]
    assert (old["serviceAccountName"], old["serviceAccount"]) == ("legacy", "legacy")
    both = default(pod({"containers": c, "serviceAccountName": "new", "serviceAccount": "old"}))
    assert both["spec"]["serviceAccount"] == "new"  # the new field wins
    assert "serviceAccount" not in default(pod({"containers": c}))["spec"]


def test_pod_status_ips_agree() -> None:
    status = {"phase": "Running", "podIP": "10.42.0.5", "hostIP": "192.168.1.2"}
    out = default(pod({"containers": []}, status=status))["status"]
    assert out["podIPs"] == [{"ip": "10.42.0.5"}]
    assert out["hostIPs"] == [{"ip": "192.168.1.2"}]
    plural = {"podIPs": [{"ip": "10.42.0.6"}, {"ip": "fd00::6"}]}
    out = default(pod({"containers": []}, status=plural))["status"]
    assert out["podIP"] == "10.42.0.6"
    assert out["podIPs"] == plural["podIPs"]


def test_user_values_win() -> None:
    container = {
        "name": "c",
        "image": "nginx",
        "imagePullPolicy": "Never",
        "terminationMessagePath": "/tmp/log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "ports": [{"containerPort": 53, "protocol": "UDP"}],
        "readinessProbe": {
            "exec": {"command": ["true"]},
            "timeoutSeconds": 5,
            "periodSeconds": 2,
            "successThreshold": 2,
            "failureThreshold": 9,
        },
    }
    spec = {
        "containers": [container],
        "dnsPolicy": "Default",
        "restartPolicy": "Never",
        "schedulerName": "custom",
        "securityContext": {"runAsUser": 1000},
        "terminationGracePeriodSeconds": 0,
        "enableServiceLinks": False,
        "volumes": [{"name": "s", "secret": {"secretName": "s", "defaultMode": 256}}],
    }
    assert default(pod(spec))["spec"] == spec
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "replicas": 0,
            "revisionHistoryLimit": 0,
            "progressDeadlineSeconds": 60,
            "strategy": {"type": "Recreate"},
            "template": {"spec": spec},
        },
    }
    out = default(deploy)["spec"]
    assert out["replicas"] == 0
    assert out["revisionHistoryLimit"] == 0
    assert out["strategy"] == {"type": "Recreate"}
    partial: JSON = copy.deepcopy(deploy)
    partial["spec"]["strategy"] = {"rollingUpdate": {"maxSurge": 1}}
    assert default(partial)["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"},
    }


def test_replication_controller_takes_selector_and_labels_from_its_template() -> None:
    rc: JSON = {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "rc"},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {"containers": [{"name": "c", "image": "c:1"}]},
            }
        },
    }
    out = default(rc)
    assert out["metadata"]["labels"] == {"app": "x"}
    assert out["spec"]["selector"] == {"app": "x"}
    assert out["spec"]["replicas"] == 1
    assert out["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    rc["metadata"]["labels"] = {"team": "a"}
    rc["spec"]["selector"] = {"app": "x", "tier": "web"}
    out = default(rc)
    assert out["metadata"]["labels"] == {"team": "a"}
    assert out["spec"]["selector"] == {"app": "x", "tier": "web"}


# --- workloads ---------------------------------------------------------------------------


def job(spec: JSON, labels: JSON | None = None) -> JSON:
    meta: JSON = {"name": "j"}
    if labels is not None:
        meta["labels"] = labels
    template = {"spec": {"containers": [{"name": "c", "image": "c:1"}], "restartPolicy": "Never"}}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {"template": template, **spec},
    }


def test_job_completions_and_parallelism() -> None:
    out = default(job({"parallelism": 3}))["spec"]
    assert out["parallelism"] == 3
    assert "completions" not in out  # a work queue: completions stay unset
    out = default(job({"completions": 5}))["spec"]
    assert (out["completions"], out["parallelism"]) == (5, 1)
    out = default(job({"completions": 4, "completionMode": "Indexed", "backoffLimitPerIndex": 1}))
    assert out["spec"]["backoffLimit"] == 2147483647
    assert out["spec"]["completionMode"] == "Indexed"


def test_job_pod_failure_policy() -> None:
    policy = {
        "rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
        ]
    }
    out = default(job({"podFailurePolicy": policy}))["spec"]
    assert out["podFailurePolicy"]["rules"][0]["onPodConditions"] == [
        {"type": "DisruptionTarget", "status": "True"}
    ]
    assert out["podReplacementPolicy"] == "Failed"


def test_job_labels_come_from_the_template() -> None:
    j = job({})
    j["spec"]["template"]["metadata"] = {"labels": {"app": "batch"}}
    assert default(j)["metadata"]["labels"] == {"app": "batch"}
    j["metadata"]["labels"] = {"own": "yes"}
    assert default(j)["metadata"]["labels"] == {"own": "yes"}


def test_statefulset_update_strategy_variants() -> None:
    def sts(strategy: JSON) -> JSON:
        return {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "s"},
            "spec": {"updateStrategy": strategy, "template": {"spec": {"containers": []}}},
        }

    assert default(sts({"type": "OnDelete"}))["spec"]["updateStrategy"] == {"type": "OnDelete"}
    # an explicit type without rollingUpdate is left as sent, as upstream
    explicit = default(sts({"type": "RollingUpdate"}))["spec"]["updateStrategy"]
    assert explicit == {"type": "RollingUpdate"}
    given = default(sts({"type": "RollingUpdate", "rollingUpdate": {}}))["spec"]
    assert given["updateStrategy"]["rollingUpdate"] == {"partition": 0}
    partial = default(sts({"rollingUpdate": {"partition": 2}}))["spec"]["updateStrategy"]
    assert partial == {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}


# --- services ----------------------------------------------------------------------------


def service(spec: JSON) -> JSON:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": spec}


def test_cluster_ip_service() -> None:
    out = default(service({"selector": {"app": "a"}, "ports": [{"port": 443, "name": "https"}]}))
    assert out["spec"] == {
        "internalTrafficPolicy": "Cluster",
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}],
        "selector": {"app": "a"},
        "sessionAffinity": "None",
        "type": "ClusterIP",
    }
    assert "externalTrafficPolicy" not in out["spec"]


def test_load_balancer_service() -> None:
    svc = service({"type": "LoadBalancer", "ports": [{"port": 80, "targetPort": 0}]})
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb"}]}}
    out = default(svc)
    assert out["spec"]["allocateLoadBalancerNodePorts"] is True
    assert out["spec"]["externalTrafficPolicy"] == "Cluster"
    assert out["spec"]["ports"][0]["targetPort"] == 80
    assert out["status"]["loadBalancer"]["ingress"] == [
        {"ip": "203.0.113.9", "ipMode": "VIP"},
        {"hostname": "lb"},
    ]


def test_external_name_service() -> None:
    out = default(service({"type": "ExternalName", "externalName": "example.com"}))
    assert out["spec"] == {
        "externalName": "example.com",
        "sessionAffinity": "None",
        "type": "ExternalName",
    }


def test_cluster_ip_with_external_ips_is_externally_accessible() -> None:
    out = default(service({"externalIPs": ["198.51.100.7"], "ports": [{"port": 80}]}))
    assert out["spec"]["externalTrafficPolicy"] == "Cluster"


def test_session_affinity() -> None:
    out = default(service({"sessionAffinity": "ClientIP", "ports": [{"port": 80}]}))
    assert out["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    kept = {"clientIP": {"timeoutSeconds": 60}}
    out = default(service({"sessionAffinity": "ClientIP", "sessionAffinityConfig": kept}))
    assert out["spec"]["sessionAffinityConfig"] == kept
    # with affinity None upstream drops a stray config
    out = default(service({"sessionAffinityConfig": kept}))
    assert "sessionAffinityConfig" not in out["spec"]


def test_headless_services() -> None:
    with_selector = default(service({"clusterIP": "None", "selector": {"app": "a"}}))["spec"]
    assert with_selector["clusterIPs"] == ["None"]
    assert with_selector["ipFamilyPolicy"] == "SingleStack"
    assert with_selector["ipFamilies"] == ["IPv4"]
    # headless without a selector defaults to dual-stack, even on a single-stack cluster
    selectorless = default(service({"clusterIP": "None"}))["spec"]
    assert selectorless["ipFamilyPolicy"] == "RequireDualStack"
    assert selectorless["ipFamilies"] == ["IPv4", "IPv6"]


def test_service_ip_families_follow_cluster_ips_and_cluster_config() -> None:
    out = default(service({"clusterIP": "fd00::10"}), service_ip_families=("IPv4", "IPv6"))
    assert out["spec"]["clusterIPs"] == ["fd00::10"]
    assert out["spec"]["ipFamilies"] == ["IPv6"]
    dual = default(
        service({"ipFamilyPolicy": "PreferDualStack"}), service_ip_families=("IPv4", "IPv6")
    )
    assert dual["spec"]["ipFamilies"] == ["IPv4", "IPv6"]
    single = default(service({"ipFamilyPolicy": "PreferDualStack"}))
    assert single["spec"]["ipFamilies"] == ["IPv4"]


def test_updates_skip_create_time_steps() -> None:
    out = default(service({"ports": [{"port": 80}]}), create=False)
    assert "ipFamilyPolicy" not in out["spec"]
    assert "ipFamilies" not in out["spec"]
    assert out["spec"]["type"] == "ClusterIP"
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}, "spec": {}}
    assert default(ns, create=False)["spec"] == {}


# --- the other kinds ---------------------------------------------------------------------


def test_namespace() -> None:
    ns: JSON = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}
    assert default(ns) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "team-a", "labels": {"kubernetes.io/metadata.name": "team-a"}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }
    ns["metadata"]["labels"] = {"kubernetes.io/metadata.name": "wrong", "env": "prod"}
    ns["spec"] = {"finalizers": ["example.com/cleanup"]}
    ns["status"] = {"phase": "Terminating"}
    out = default(ns)
    assert out["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a", "env": "prod"}
    assert out["spec"]["finalizers"] == ["example.com/cleanup", "kubernetes"]
    assert out["status"]["phase"] == "Terminating"
    # the namespace controller's /finalize call, once the namespace is empty
    ns["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    ns["spec"] = {"finalizers": []}
    assert default(ns)["spec"] == {"finalizers": []}


def test_secret() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"a": "YQ==", "b": "Yg=="},
        "stringData": {"b": "new", "c": "héllo"},
    }
    assert default(secret) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"a": "YQ==", "b": "bmV3", "c": "aMOpbGxv"},
        "type": "Opaque",
    }
    tls = {**secret, "type": "kubernetes.io/tls"}
    assert default(tls)["type"] == "kubernetes.io/tls"


def test_persistent_volumes_and_claims() -> None:
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "pv"},
        "spec": {
            "capacity": {"storage": "5Gi"},
            "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/data"},
        },
    }
    assert default(pv) == {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "pv"},
        "spec": {
            "capacity": {"storage": "5Gi"},
            "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/data", "type": ""},
            "persistentVolumeReclaimPolicy": "Retain",
            "volumeMode": "Filesystem",
        },
        "status": {"phase": "Pending"},
    }
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "c"},
        "spec": {"accessModes": ["ReadWriteOnce"], "volumeMode": "Block"},
    }
    out = default(pvc)
    assert out["spec"]["volumeMode"] == "Block"
    assert out["status"] == {"phase": "Pending"}


def test_network_policy() -> None:
    def netpol(spec: JSON) -> JSON:
        meta = {"name": "n"}
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta,
            "spec": spec,
        }

    ingress_only = default(
        netpol({"podSelector": {}, "ingress": [{"ports": [{"port": 80}, {"protocol": "UDP"}]}]})
    )["spec"]
    assert ingress_only["policyTypes"] == ["Ingress"]
    assert ingress_only["ingress"][0]["ports"] == [
        {"port": 80, "protocol": "TCP"},
        {"protocol": "UDP"},
    ]
    both = default(netpol({"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}))["spec"]
    assert both["policyTypes"] == ["Ingress", "Egress"]
    assert both["egress"][0]["ports"] == [{"port": 53, "protocol": "TCP"}]
    explicit = default(netpol({"podSelector": {}, "policyTypes": ["Egress"]}))["spec"]
    assert explicit["policyTypes"] == ["Egress"]


def test_endpoints_and_endpoint_slices() -> None:
    ep = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "e"},
        "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}],
    }
    assert default(ep)["subsets"][0]["ports"] == [{"port": 80, "protocol": "TCP"}]
    slice_ = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "e-abc"},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"]}],
        "ports": [{"port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}],
    }
    assert default(slice_)["ports"] == [
        {"name": "", "port": 80, "protocol": "TCP"},
        {"name": "dns", "port": 53, "protocol": "UDP"},
    ]


def test_horizontal_pod_autoscaler_v2() -> None:
    hpa: JSON = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "maxReplicas": 10,
        },
    }
    out = default(hpa)["spec"]
    assert out["minReplicas"] == 1
    assert out["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80},
            },
        }
    ]
    assert "behavior" not in out
    hpa["spec"]["behavior"] = {"scaleDown": {"stabilizationWindowSeconds": 60}}
    out = default(hpa)["spec"]
    assert out["behavior"] == {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15},
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": 60,
            "selectPolicy": "Max",
            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
        },
    }
    v1 = {**hpa, "apiVersion": "autoscaling/v1", "spec": {"maxReplicas": 3}}
    assert default(v1)["spec"] == {"maxReplicas": 3, "minReplicas": 1}


def test_rbac_bindings() -> None:
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "b"},
        "roleRef": {"kind": "Role", "name": "reader"},
        "subjects": [
            {"kind": "User", "name": "jane"},
            {"kind": "Group", "name": "devs"},
            {"kind": "ServiceAccount", "name": "default", "namespace": "ns"},
        ],
    }
    out = default(binding)
    group = "rbac.authorization.k8s.io"
    assert out["roleRef"] == {"apiGroup": group, "kind": "Role", "name": "reader"}
    assert [s.get("apiGroup") for s in out["subjects"]] == [group, group, None]
    cluster = {**binding, "kind": "ClusterRoleBinding"}
    assert default(cluster)["roleRef"]["apiGroup"] == group


def test_cluster_scoped_classes() -> None:
    sc = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": "fast"},
        "provisioner": "x",
    }
    out = default(sc)
    assert (out["reclaimPolicy"], out["volumeBindingMode"]) == ("Delete", "Immediate")
    pc = {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": "high"},
        "value": 1000,
    }
    assert default(pc)["preemptionPolicy"] == "PreemptLowerPriority"
    ic = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": "nginx"},
        "spec": {
            "controller": "k8s.io/ingress-nginx",
            "parameters": {"kind": "IngressParameters", "name": "p"},
        },
    }
    assert default(ic)["spec"]["parameters"]["scope"] == "Cluster"


def test_limit_range() -> None:
    lr = {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "l"},
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "max": {"cpu": "2", "memory": "1Gi"},
                    "min": {"cpu": "100m", "ephemeral-storage": "1Mi"},
                    "default": {"memory": "512Mi"},
                },
                {"type": "Pod", "max": {"cpu": "4"}},
            ]
        },
    }
    limits = default(lr)["spec"]["limits"]
    assert limits[0]["default"] == {"memory": "512Mi", "cpu": "2"}
    assert limits[0]["defaultRequest"] == {
        "memory": "512Mi",
        "cpu": "2",
        "ephemeral-storage": "1Mi",
    }
    assert limits[1] == {"type": "Pod", "max": {"cpu": "4"}}


def test_node() -> None:
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n1"},
        "spec": {"podCIDR": "10.42.1.0/24"},
        "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
    }
    out = default(node)
    assert out["status"]["allocatable"] == {"cpu": "4", "memory": "8Gi", "pods": "110"}
    assert out["spec"]["podCIDRs"] == ["10.42.1.0/24"]


def test_undefaulted_kinds_are_copied_unchanged() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}
    out = default(cm)
    assert out == cm
    assert out is not cm


# --- properties over every resource -----------------------------------------------------


@pytest.mark.parametrize("resource", list(REGISTRY), ids=lambda r: f"{r.api_version}/{r.kind}")
def test_every_resource_accepts_a_minimal_object(resource: Resource) -> None:
    obj = {"apiVersion": resource.api_version, "kind": resource.kind, "metadata": {"name": "x"}}
    for out in (default(obj), default(obj, create=False)):
        # defaulting fills fields in; it never renames or re-kinds what the user sent
        assert (out["kind"], out["metadata"]["name"]) == (resource.kind, "x")
        assert out["apiVersion"] == resource.api_version


_FIELDS = """
    spec template containers initContainers ports volumes image status type metadata labels
    selector strategy rollingUpdate updateStrategy clusterIP clusterIPs ipFamilies
    ipFamilyPolicy sessionAffinity sessionAffinityConfig targetPort port hostNetwork resources
    limits requests subjects roleRef behavior scaleUp metrics stringData data podIP podIPs
    finalizers name serviceAccount serviceAccountName jobTemplate podFailurePolicy rules
    onPodConditions egress ingress items fieldRef env valueFrom readinessProbe httpGet grpc
    capacity allocatable podCIDR podCIDRs
""".split()  # noqa: SIM905
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 3),
    st.sampled_from("- None ClientIP RollingUpdate LoadBalancer 10.0.0.1 nginx User x".split()),  # noqa: SIM905
    st.just(""),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(_FIELDS), inner, max_size=5),
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(
    resource=st.sampled_from(list(REGISTRY)),
    body=st.dictionaries(st.sampled_from(_FIELDS), _VALUES, max_size=6),
    create=st.booleans(),
)
def test_malformed_objects_never_crash_and_stay_idempotent(
    resource: Resource, body: JSON, create: bool
) -> None:
    # defaulting runs before validation, so it must survive anything that decodes
    obj = {"apiVersion": resource.api_version, "kind": resource.kind, **body}
    before = copy.deepcopy(obj)
    once = apply_defaults(resource, obj, create=create)
    assert obj == before
    assert apply_defaults(resource, once, create=create) == once
