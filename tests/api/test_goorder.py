"""Objects in Go struct order (pyk8s.api.goorder), as kube-apiserver writes them."""

from __future__ import annotations

import json
from typing import Any

from pyk8s.api.goorder import (
    go_ordered,
    set_resource_version,
    storage_form,
    with_resource_version,
)


def _scrambled_pod() -> dict[str, Any]:
    return {
        "status": {"phase": "Pending"},
        "spec": {
            "nodeSelector": {"zone": "b", "disk": "ssd"},
            "containers": [
                {
                    "imagePullPolicy": "Always",
                    "envFrom": [{"configMapRef": {"optional": True, "name": "cm"}}],
                    "image": "busybox",
                    "name": "c",
                }
            ],
            "restartPolicy": "Always",
        },
        "metadata": {
            "labels": {"b": "2", "a": "1"},
            "uid": "u",
            "namespace": "default",
            "name": "p",
            "creationTimestamp": None,
        },
        "apiVersion": "v1",
        "kind": "Pod",
    }


def test_a_pod_comes_out_in_go_struct_order_with_maps_sorted() -> None:
    pod = _scrambled_pod()
    before = json.dumps(pod)
    out = go_ordered(pod)
    assert json.dumps(pod) == before  # the argument is not changed
    assert list(out) == ["kind", "apiVersion", "metadata", "spec", "status"]
    assert list(out["metadata"]) == ["name", "namespace", "uid", "creationTimestamp", "labels"]
    assert list(out["metadata"]["labels"]) == ["a", "b"]
    assert list(out["spec"]) == ["containers", "restartPolicy", "nodeSelector"]
    assert list(out["spec"]["nodeSelector"]) == ["disk", "zone"]
    container = out["spec"]["containers"][0]
    assert list(container) == ["name", "image", "envFrom", "imagePullPolicy"]
    # LocalObjectReference is embedded (inlined) in ConfigMapEnvSource: name comes first
    assert list(container["envFrom"][0]["configMapRef"]) == ["name", "optional"]


def test_what_is_in_order_already_is_shared_not_copied() -> None:
    once = go_ordered(_scrambled_pod())
    twice = go_ordered(once)
    assert twice == once
    assert twice["spec"] is once["spec"] and twice["metadata"] is once["metadata"]


def test_unknown_keys_stay_after_the_known_ones() -> None:
    out = go_ordered({"zzz": 1, "data": {}, "kind": "ConfigMap", "apiVersion": "v1"})
    assert list(out) == ["kind", "apiVersion", "data", "zzz"]


def test_custom_resources_and_unknown_kinds_are_left_as_they_are() -> None:
    widget = {"spec": {"b": 1, "a": 2}, "kind": "Widget", "apiVersion": "example.com/v1"}
    assert go_ordered(widget) is widget


def test_resource_version_goes_after_uid() -> None:
    meta = {"name": "p", "namespace": "d", "uid": "u", "creationTimestamp": "t", "labels": {}}
    out = with_resource_version({"kind": "Pod", "metadata": meta}, "7")
    assert list(out["metadata"]) == [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "labels",
    ]
    assert "resourceVersion" not in meta
    assert with_resource_version({"kind": "Pod"}, "8")["metadata"] == {"resourceVersion": "8"}


def test_storage_keeps_an_empty_resource_version_in_its_place() -> None:
    obj = {
        "kind": "ConfigMap",
        "metadata": {"name": "c", "uid": "u", "selfLink": "/x", "creationTimestamp": "t"},
    }
    stored = storage_form(obj)
    assert list(stored["metadata"]) == ["name", "uid", "resourceVersion", "creationTimestamp"]
    assert stored["metadata"]["resourceVersion"] == ""
    assert "resourceVersion" not in obj["metadata"]  # the argument is not changed
    read = set_resource_version(json.loads(json.dumps(stored)), "42")
    assert list(read["metadata"]) == ["name", "uid", "resourceVersion", "creationTimestamp"]
    assert read["metadata"]["resourceVersion"] == "42"
