"""The yes/no walks that spare every write the paths (``_any_unknown``,
``_lacks_required``) agree with the walks that spell them out, for a pod and a
Deployment with each field removed in turn and an unknown field added at each level."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from pyk8s.api.registry import REGISTRY
from pyk8s.api.validation import schema_check as sc

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "namespace": "d", "labels": {"a": "b"}},
    "spec": {
        "containers": [
            {
                "name": "c",
                "image": "busybox",
                "ports": [{"containerPort": 80, "name": "http"}],
                "env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "resources": {"requests": {"cpu": "10m"}},
                "volumeMounts": [{"name": "v", "mountPath": "/v"}],
            }
        ],
        "volumes": [
            {
                "name": "v",
                "projected": {
                    "sources": [
                        {"configMap": {"name": "cm", "items": [{"key": "k", "path": "p"}]}},
                        {"serviceAccountToken": {"path": "token"}},
                    ]
                },
            }
        ],
        "tolerations": [{"key": "k", "operator": "Exists"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "k", "operator": "In", "values": ["v"]}]}
                    ]
                }
            }
        },
    },
    "status": {"conditions": [{"type": "Ready", "status": "True"}]},
}

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "d", "namespace": "d"},
    "spec": {
        "selector": {"matchLabels": {"a": "b"}},
        "template": {"metadata": {"labels": {"a": "b"}}, "spec": copy.deepcopy(POD["spec"])},
    },
}


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield (*path, k)
            yield from _paths(v, (*path, k))
    elif isinstance(value, list):
        for n, v in enumerate(value):
            yield from _paths(v, (*path, n))


def _container(obj: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def _variants(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield obj
    for path in _paths(obj):
        removed = copy.deepcopy(obj)
        del _container(removed, path[:-1])[path[-1]]
        yield removed
        value = _container(obj, path)
        if isinstance(value, dict):
            added = copy.deepcopy(obj)
            _container(added, path)["notAField"] = 1
            yield added


@pytest.mark.parametrize("obj", [POD, DEPLOYMENT], ids=["pod", "deployment"])
def test_fast_walks_agree_with_the_full_ones(obj: dict[str, Any]) -> None:
    group, _, version = obj["apiVersion"].rpartition("/")
    resource = REGISTRY.for_api_version(obj["apiVersion"], obj["kind"])
    assert resource is not None
    root = sc._root(group, version, obj["kind"])
    assert root is not None
    some_unknown = some_missing = 0
    for variant in _variants(obj):
        unknown: list[str] = []
        sc._unknown(root, variant, "", unknown)
        assert sc._any_unknown(root, variant) == bool(unknown)
        assert sc.unknown_fields(resource, variant) == unknown
        missing: list[Any] = []
        sc._required(root, variant, "", missing, top=True)
        assert sc._lacks_required(root, variant) == bool(missing)
        assert sc.schema_required(resource, variant) == missing
        some_unknown += bool(unknown)
        some_missing += bool(missing)
    assert some_unknown and some_missing  # both answers were seen
