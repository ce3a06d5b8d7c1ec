"""Responses byte for byte as kube-apiserver writes them: Status keys in metav1.Status's
field order (details before code; name, group, kind inside details; causes as reason,
message, field) and a newline after every JSON body. Clients that compare error bodies
(the Python client's create_from_yaml conflict handling) depend on it."""

from __future__ import annotations

import json

from tests.integration.conftest import RawClient


def _deployment(name: str) -> bytes:
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        }
    ).encode()


def test_conflict_status_bytes(raw: RawClient, ns: str) -> None:
    path = f"/apis/apps/v1/namespaces/{ns}/deployments"
    assert raw("POST", path, _deployment("wire")).status == 201
    got = raw("POST", path, _deployment("wire"))
    assert got.status == 409
    assert got.body == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"deployments.apps \\"wire\\" already exists","reason":"AlreadyExists",'
        b'"details":{"name":"wire","group":"apps","kind":"deployments"},"code":409}\n'
    )


def test_invalid_status_bytes(raw: RawClient, ns: str) -> None:
    body = json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}}
    ).encode()
    got = raw("POST", f"/api/v1/namespaces/{ns}/configmaps", body)
    assert got.status == 422
    status = got.body.decode()
    assert status.endswith("}\n")
    assert list(json.loads(status)) == [
        "kind",
        "apiVersion",
        "metadata",
        "status",
        "message",
        "reason",
        "details",
        "code",
    ]
    details = json.loads(status)["details"]
    assert list(details) == ["name", "kind", "causes"]
    assert [list(c) for c in details["causes"]] == [["reason", "message", "field"]]


def test_objects_and_lists_end_with_a_newline(raw: RawClient, ns: str) -> None:
    one = raw("GET", f"/api/v1/namespaces/{ns}")
    assert one.status == 200 and one.body.endswith(b"}\n")
    many = raw("GET", f"/api/v1/namespaces/{ns}/configmaps")
    assert many.status == 200 and many.body.endswith(b"]}\n")


def _placeholders(body: bytes, obj: dict[str, object]) -> bytes:
    """``body`` with the values no two runs share replaced by their names."""
    meta = obj["metadata"]
    assert isinstance(meta, dict)
    for key in ("uid", "resourceVersion", "creationTimestamp"):
        body = body.replace(f'"{key}":"{meta[key]}"'.encode(), f'"{key}":"<{key}>"'.encode())
    for entry in meta.get("managedFields") or ():
        body = body.replace(f'"time":"{entry["time"]}"'.encode(), b'"time":"<time>"')
    return body


def test_objects_are_written_in_go_struct_order(raw: RawClient, ns: str) -> None:
    """kube-apiserver encodes the typed struct: TypeMeta, ObjectMeta (name, namespace,
    uid, resourceVersion, creationTimestamp, labels, annotations…), then the kind's own
    fields in declaration order (a ConfigMap's immutable before data), map keys sorted,
    whatever order the client sent; managedFields last, each entry in the order of
    ManagedFieldsEntry's fields, its FieldsV1 keys sorted as upstream writes them."""
    scrambled = (
        b'{"data":{"b":"2","a":"1"},"immutable":false,'
        b'"metadata":{"annotations":{"z":"1","note":"x"},"labels":{"app":"wire"},'
        b'"name":"ordered"},"apiVersion":"v1","kind":"ConfigMap"}'
    )
    expected = (
        b'{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"ordered",'
        b'"namespace":"' + ns.encode() + b'","uid":"<uid>","resourceVersion":"<resourceVersion>",'
        b'"creationTimestamp":"<creationTimestamp>","labels":{"app":"wire"},'
        b'"annotations":{"note":"x","z":"1"},"managedFields":[{"manager":"Python-urllib",'
        b'"operation":"Update","apiVersion":"v1","time":"<time>","fieldsType":"FieldsV1",'
        b'"fieldsV1":{"f:data":{".":{},"f:a":{},"f:b":{}},"f:immutable":{},"f:metadata":'
        b'{"f:annotations":{".":{},"f:note":{},"f:z":{}},"f:labels":{".":{},"f:app":{}}}}}]},'
        b'"immutable":false,"data":{"a":"1","b":"2"}}\n'
    )
    created = raw("POST", f"/api/v1/namespaces/{ns}/configmaps", scrambled)
    assert created.status == 201, created.body
    assert _placeholders(created.body, created.json()) == expected
    got = raw("GET", f"/api/v1/namespaces/{ns}/configmaps/ordered")
    assert _placeholders(got.body, got.json()) == expected
    listed = raw("GET", f"/api/v1/namespaces/{ns}/configmaps?labelSelector=app%3Dwire")
    item = json.dumps(listed.json()["items"][0], separators=(",", ":")).encode()
    assert _placeholders(item, listed.json()["items"][0]) + b"\n" == expected


#: the Go struct order of the fields a defaulted pod has (k8s.io/api/core/v1 types.go)
POD_ORDER = ["kind", "apiVersion", "metadata", "spec", "status"]
OBJECT_META_ORDER = [
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
]
POD_SPEC_ORDER = [
    "volumes",
    "initContainers",
    "containers",
    "ephemeralContainers",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "activeDeadlineSeconds",
    "dnsPolicy",
    "nodeSelector",
    "serviceAccountName",
    "serviceAccount",
    "automountServiceAccountToken",
    "nodeName",
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "shareProcessNamespace",
    "securityContext",
    "imagePullSecrets",
    "hostname",
    "subdomain",
    "affinity",
    "schedulerName",
    "tolerations",
    "hostAliases",
    "priorityClassName",
    "priority",
    "dnsConfig",
    "readinessGates",
    "runtimeClassName",
    "enableServiceLinks",
    "preemptionPolicy",
    "overhead",
    "topologySpreadConstraints",
    "setHostnameAsFQDN",
    "os",
    "hostUsers",
    "schedulingGates",
    "resourceClaims",
]
CONTAINER_ORDER = [
    "name",
    "image",
    "command",
    "args",
    "workingDir",
    "ports",
    "envFrom",
    "env",
    "resources",
    "resizePolicy",
    "restartPolicy",
    "volumeMounts",
    "volumeDevices",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "imagePullPolicy",
    "securityContext",
    "stdin",
    "stdinOnce",
    "tty",
]


def _in_order(keys: list[str], order: list[str]) -> bool:
    return keys == [k for k in order if k in keys]


def test_a_pod_reads_in_go_struct_order_whatever_was_sent(raw: RawClient, ns: str) -> None:
    pod = {
        "spec": {
            "tolerations": [{"operator": "Exists", "key": "k"}],
            "containers": [
                {"tty": False, "image": "busybox", "command": ["sleep", "1"], "name": "c"}
            ],
            "nodeSelector": {"b": "2", "a": "1"},
        },
        "metadata": {"labels": {"app": "x"}, "generateName": "ordered-", "annotations": {}},
        "apiVersion": "v1",
        "kind": "Pod",
    }
    created = raw("POST", f"/api/v1/namespaces/{ns}/pods", json.dumps(pod).encode())
    assert created.status == 201, created.body
    got = raw("GET", f"/api/v1/namespaces/{ns}/pods/{created.json()['metadata']['name']}")
    for answer in (created, got):
        obj = answer.json()
        assert list(obj) == [k for k in POD_ORDER if k in obj]
        assert _in_order(list(obj["metadata"]), OBJECT_META_ORDER), list(obj["metadata"])
        assert _in_order(list(obj["spec"]), POD_SPEC_ORDER), list(obj["spec"])
        assert _in_order(list(obj["spec"]["containers"][0]), CONTAINER_ORDER)
        assert list(obj["spec"]["nodeSelector"]) == ["a", "b"]
