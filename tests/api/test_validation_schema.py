"""Schema-level checks: unknown fields (fieldValidation) and 400 decode-time type errors."""

from __future__ import annotations

import time
from typing import Any

import pytest

from pyk8s.api.validation import decode_errors, unknown_fields, validate_create
from pyk8s.api.validation.schema_check import base64_error
from tests.api.helpers import res

DEPLOY = res("apps/v1", "Deployment")
POD = res("v1", "Pod")


def deployment(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": spec,
    }


def test_unknown_fields_paths() -> None:
    obj = deployment(
        {
            "replicas": 1,
            "replica": 2,
            "template": {
                "metadata": {"labels": {"app": "web"}, "label": {}},
                "spec": {
                    "containers": [
                        {"name": "a", "image": "b"},
                        {
                            "name": "c",
                            "image": "d",
                            "imagePolicy": "x",
                            "ports": [{"containerPort": 1, "hostport": 2}],
                        },
                    ]
                },
            },
        }
    )
    obj["status"] = {"replicas": 1, "foo": 1}
    obj["extra"] = True
    assert unknown_fields(DEPLOY, obj) == [
        "spec.replica",
        "spec.template.metadata.label",
        "spec.template.spec.containers[1].imagePolicy",
        "spec.template.spec.containers[1].ports[0].hostport",
        "status.foo",
        "extra",
    ]


def test_unknown_fields_ignores_free_form_and_maps() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "labels": {"anything": "goes"},
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {
            "containers": [{"name": "a", "resources": {"limits": {"cpu": "1"}}}],
            "nodeSelector": {"disk": "ssd"},
        },
    }
    assert unknown_fields(POD, obj) == []


def test_unknown_fields_case_sensitive() -> None:
    assert unknown_fields(POD, {"Spec": {}, "spec": {"Containers": []}}) == [
        "Spec",
        "spec.Containers",
    ]


def test_decode_errors_messages() -> None:
    obj = deployment(
        {
            "replicas": "3",
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "a",
                            "env": [{"name": "PORT", "value": 8080}],
                            "ports": [{"containerPort": 80.5}],
                            "resources": {"limits": {"cpu": "lots"}},
                            "args": [1],
                        }
                    ],
                    "hostNetwork": "yes",
                }
            },
        }
    )
    assert decode_errors(DEPLOY, obj) == [
        "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of "
        "type int32",
        "json: cannot unmarshal number into Go struct field EnvVar.spec.template.spec."
        "containers.env.value of type string",
        "json: cannot unmarshal number 80.5 into Go struct field ContainerPort.spec.template."
        "spec.containers.ports.containerPort of type int32",
        "quantities must match the regular expression "
        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        "json: cannot unmarshal number into Go struct field Container.spec.template.spec."
        "containers.args of type string",
        "json: cannot unmarshal string into Go struct field PodSpec.spec.template.spec."
        "hostNetwork of type bool",
    ]


def test_decode_errors_structures() -> None:
    assert decode_errors(DEPLOY, deployment("big")) == [  # type: ignore[arg-type]
        "json: cannot unmarshal string into Go struct field Deployment.spec of type "
        "v1.DeploymentSpec"
    ]
    assert decode_errors(POD, {"spec": {"containers": {"name": "a"}}}) == [
        "json: cannot unmarshal object into Go struct field PodSpec.spec.containers of type "
        "[]v1.Container"
    ]
    assert decode_errors(POD, {"metadata": {"labels": {"a": 1}}}) == [
        "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type "
        "string"
    ]
    assert decode_errors(POD, {"spec": {"containers": ["web"]}}) == [
        "json: cannot unmarshal string into Go struct field PodSpec.spec.containers of type "
        "v1.Container"
    ]


def test_decode_accepts_well_typed_objects() -> None:
    obj = deployment(
        {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}},
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "a",
                            "image": "b",
                            "ports": [{"containerPort": 80}],
                            "resources": {"limits": {"cpu": 1, "memory": "1Gi"}},
                            "livenessProbe": {"httpGet": {"port": "http"}},
                        }
                    ]
                }
            },
        }
    )
    obj["metadata"]["creationTimestamp"] = "2025-01-02T03:04:05Z"
    obj["metadata"]["annotations"] = None
    assert decode_errors(DEPLOY, obj) == []


def test_int_or_string_and_time() -> None:
    bad = deployment({"strategy": {"rollingUpdate": {"maxSurge": True}}})
    assert decode_errors(DEPLOY, bad) == ["json: cannot unmarshal bool into Go value of type int32"]
    bad = deployment({})
    bad["metadata"]["creationTimestamp"] = "yesterday"
    assert decode_errors(DEPLOY, bad) == [
        'parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as '
        '"2006"'
    ]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("aGVsbG8=", None),
        ("aGVsbG8", 4),
        ("a!bc", 1),
        ("aGVs\nbG8=", None),
        ("aGVsbG8=x", 8),
        ("ab=c", 2),
        ("", None),
    ],
)
def test_base64_like_go(text: str, where: int | None) -> None:
    assert base64_error(text) == where


def test_secret_data_must_be_base64() -> None:
    sec = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"password": "hunter2"},
    }
    assert decode_errors(res("v1", "Secret"), sec) == ["illegal base64 data at input byte 4"]


def test_validation_is_fast() -> None:
    obj = deployment(
        {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": f"c{n}",
                            "image": "nginx",
                            "ports": [{"containerPort": 80 + n}],
                            "env": [{"name": f"E{k}", "value": "v"} for k in range(20)],
                            "resources": {
                                "limits": {"cpu": "1", "memory": "1Gi"},
                                "requests": {"cpu": "500m", "memory": "512Mi"},
                            },
                        }
                        for n in range(5)
                    ]
                },
            },
        }
    )
    validate_create(DEPLOY, obj)
    start = time.perf_counter()
    for _ in range(50):
        assert validate_create(DEPLOY, obj) == []
        unknown_fields(DEPLOY, obj)
        decode_errors(DEPLOY, obj)
    assert (time.perf_counter() - start) / 50 < 0.02


def test_types_of_alternatives() -> None:
    """A node's JSON types come from ``type`` or from its oneOf/anyOf alternatives."""
    from pyk8s.api.schema import types_of

    assert types_of({"type": ["string", "null"]}) == {"string", "null"}
    assert types_of({"oneOf": [{"type": "string"}]}) == {"string"}
    assert types_of({"anyOf": [{"type": "integer"}], "oneOf": [{"type": "string"}]}) == {
        "integer",
        "string",
    }
