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
