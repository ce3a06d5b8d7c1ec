"""LimitRanger defaults, rules and error text against upstream's (admission/limitranger)."""

from __future__ import annotations

from typing import Any

import pytest

from pyk8s.api.errors import aggregate_message
from pyk8s.api.limitranger import (
    ANNOTATION,
    applies,
    apply_defaults,
    default_requirements,
    forbidden,
    forbidden_message,
    validate,
    validate_pod,
    validate_pvc,
)

JSON = dict[str, Any]


def limit_range(*items: JSON) -> JSON:
    return {"apiVersion": "v1", "kind": "LimitRange", "spec": {"limits": list(items)}}


def container(name: str, requests: JSON | None = None, limits: JSON | None = None) -> JSON:
    c: JSON = {"name": name, "image": "nginx"}
    if requests is not None or limits is not None:
        c["resources"] = {}
        if requests is not None:
            c["resources"]["requests"] = requests
        if limits is not None:
            c["resources"]["limits"] = limits
    return c


def pod(*containers: JSON, init: list[JSON] | None = None, name: str = "x") -> JSON:
    spec: JSON = {"containers": list(containers)}
    if init is not None:
        spec["initContainers"] = init
    return {"metadata": {"name": name}, "spec": spec}


DEFAULTS = limit_range(
    {
        "type": "Container",
        "default": {"memory": "512Mi", "cpu": "500m"},
        "defaultRequest": {"memory": "256Mi", "cpu": "100m"},
    }
)


# --- defaults -------------------------------------------------------------------------------


def test_defaults_fill_containers_and_annotate_like_upstream() -> None:
    p = pod(container("c"), init=[container("setup", requests={"cpu": "1"}, limits={"cpu": "1"})])
    assert apply_defaults(p, [DEFAULTS])
    assert p["spec"]["containers"][0]["resources"] == {
        "limits": {"memory": "512Mi", "cpu": "500m"},
        "requests": {"memory": "256Mi", "cpu": "100m"},
    }
    # what the container set stays; only the missing resource is added
    assert p["spec"]["initContainers"][0]["resources"] == {
        "requests": {"cpu": "1", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    assert p["metadata"]["annotations"][ANNOTATION] == (
        "LimitRanger plugin set: cpu, memory request for container c; "
        "cpu, memory limit for container c; "
        "memory request for init container setup; memory limit for init container setup"
    )


def test_nothing_to_set_leaves_the_pod_alone() -> None:
    full = {"cpu": "1", "memory": "1Gi"}
    p = pod(container("c", requests=full, limits=full))
    before = repr(p)
    assert not apply_defaults(p, [DEFAULTS, limit_range({"type": "Pod", "max": {"cpu": "4"}})])
    assert repr(p) == before


def test_default_values_are_written_in_canonical_form() -> None:
    lr = limit_range({"type": "Container", "default": {"cpu": "0.5", "memory": "1024Mi"}})
    p = pod(container("c"))
    apply_defaults(p, [lr])
    assert p["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "500m", "memory": "1Gi"}}
    assert p["metadata"]["annotations"][ANNOTATION] == (
        "LimitRanger plugin set: cpu, memory limit for container c"
    )


def test_later_items_win_and_each_limit_range_rewrites_the_annotation() -> None:
    lr = limit_range(
        {"type": "Container", "defaultRequest": {"cpu": "100m"}},
        {"type": "Pod", "max": {"cpu": "2"}},
        {"type": "Container", "defaultRequest": {"cpu": "200m"}},
    )
    assert default_requirements(lr) == ({"cpu": "200m"}, {})
    second = limit_range({"type": "Container", "defaultRequest": {"memory": "64Mi"}})
    p = pod(container("c"))
    apply_defaults(p, [lr, second])
    assert p["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "200m", "memory": "64Mi"}
    }
    assert p["metadata"]["annotations"][ANNOTATION] == (
        "LimitRanger plugin set: memory request for container c"
    )


# --- Container rules -----------------------------------------------------------------------


def test_container_min_max_and_ratio_messages() -> None:
    lr = limit_range(
        {
            "type": "Container",
            "min": {"cpu": "100m"},
            "max": {"cpu": "2", "memory": "1Gi"},
            "maxLimitRequestRatio": {"cpu": "2"},
        }
    )
    p = pod(
        container(
            "a", requests={"cpu": "50m", "memory": "1Gi"}, limits={"cpu": "100m", "memory": "1Gi"}
        ),
        container(
            "b", requests={"cpu": "750m", "memory": "1Gi"}, limits={"cpu": "3", "memory": "2Gi"}
        ),
        container(
            "ok", requests={"cpu": "1", "memory": "1Gi"}, limits={"cpu": "2", "memory": "1Gi"}
        ),
    )
    assert validate_pod(p, lr) == [
        "minimum cpu usage per Container is 100m, but request is 50m",
        "maximum cpu usage per Container is 2, but limit is 3",
        "maximum memory usage per Container is 1Gi, but limit is 2Gi",
        "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000",
    ]


def test_missing_values() -> None:
    lr = limit_range(
        {
            "type": "Container",
            "min": {"memory": "64Mi"},
            "max": {"cpu": "1"},
            "maxLimitRequestRatio": {"memory": "1.5"},
        }
    )
    assert validate_pod(pod(container("c")), lr) == [
        "minimum memory usage per Container is 64Mi.  No request is specified",
        "maximum cpu usage per Container is 1.  No limit is specified",
        "memory max limit to request ratio per Container is 1500m, "
        "but no request is specified or request is 0",
    ]
    only_request = pod(container("c", requests={"memory": "100Mi"}, limits={"cpu": "1"}))
    assert validate_pod(only_request, lr) == [
        "memory max limit to request ratio per Container is 1500m, "
        "but no limit is specified or limit is 0"
    ]


def test_min_checks_the_limit_and_max_checks_the_request() -> None:
    lr = limit_range({"type": "Container", "min": {"cpu": "1"}, "max": {"memory": "1Gi"}})
    # limits below requests are API validation's business; LimitRanger reports what it sees
    p = pod(
        container(
            "c", requests={"cpu": "1", "memory": "2Gi"}, limits={"cpu": "500m", "memory": "1Gi"}
        )
    )
    assert validate_pod(p, lr) == [
        "minimum cpu usage per Container is 1, but limit is 500m",
        "maximum memory usage per Container is 1Gi, but request is 2Gi",
    ]


def test_ratio_is_compared_exactly_and_shown_with_six_decimals() -> None:
    lr = limit_range({"type": "Container", "maxLimitRequestRatio": {"cpu": "1.5"}})
    at_limit = pod(container("c", requests={"cpu": "200m"}, limits={"cpu": "300m"}))
    assert validate_pod(at_limit, lr) == []
    above = pod(container("c", requests={"cpu": "300m"}, limits={"cpu": "1"}))
    assert validate_pod(above, lr) == [
        "cpu max limit to request ratio per Container is 1500m, but provided ratio is 3.333333"
    ]


def test_huge_values_are_compared_in_whole_units() -> None:
    # beyond 9.2e15 thousandths the comparison switches to whole units, still exact
    lr = limit_range({"type": "Container", "max": {"memory": "8E"}})
    p = pod(container("c", requests={"memory": "1E"}, limits={"memory": "9E"}))
    assert validate_pod(p, lr) == ["maximum memory usage per Container is 8E, but limit is 9E"]
    ok = pod(container("c", requests={"memory": "1E"}, limits={"memory": "8E"}))
    assert validate_pod(ok, lr) == []


# --- Pod rules ------------------------------------------------------------------------------


def test_pod_rules_apply_to_the_sum_of_containers() -> None:
    lr = limit_range({"type": "Pod", "max": {"cpu": "2"}, "min": {"memory": "1Gi"}})
    p = pod(
        container(
            "a",
            requests={"cpu": "500m", "memory": "256Mi"},
            limits={"cpu": "500m", "memory": "256Mi"},
        ),
        container(
            "b", requests={"cpu": "1", "memory": "512Mi"}, limits={"cpu": "3", "memory": "512Mi"}
        ),
    )
    assert validate_pod(p, lr) == [
        "minimum memory usage per Pod is 1Gi, but request is 768Mi",
        "maximum cpu usage per Pod is 2, but limit is 3500m",
    ]


def test_pod_totals_count_init_and_sidecar_containers_as_the_scheduler_does() -> None:
    lr = limit_range({"type": "Pod", "max": {"cpu": "2"}})
    # the largest init container is a floor for the pod
    big_init = pod(
        container("app", requests={"cpu": "1"}, limits={"cpu": "1"}),
        init=[container("migrate", requests={"cpu": "3"}, limits={"cpu": "3"})],
    )
    assert validate_pod(big_init, lr) == ["maximum cpu usage per Pod is 2, but limit is 3"]
    # a sidecar (restartPolicy: Always) runs next to the app containers
    sidecar = container("proxy", requests={"cpu": "1500m"}, limits={"cpu": "1500m"})
    sidecar["restartPolicy"] = "Always"
    with_sidecar = pod(container("app", requests={"cpu": "1"}, limits={"cpu": "1"}), init=[sidecar])
    assert validate_pod(with_sidecar, lr) == ["maximum cpu usage per Pod is 2, but limit is 2500m"]


def test_a_single_containers_quantity_is_shown_as_written() -> None:
    lr = limit_range({"type": "Pod", "max": {"memory": "1Gi"}})
    p = pod(container("a", requests={"memory": "1.5Gi"}, limits={"memory": "1.5Gi"}))
    assert validate_pod(p, lr) == ["maximum memory usage per Pod is 1Gi, but limit is 1536Mi"]


# --- PersistentVolumeClaims -----------------------------------------------------------------


def pvc(storage: str | None, name: str = "data") -> JSON:
    requests = {"storage": storage} if storage is not None else {}
    return {"metadata": {"name": name}, "spec": {"resources": {"requests": requests}}}


def test_claim_min_and_max_storage() -> None:
    lr = limit_range(
        {"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}}
    )
    assert validate_pvc(pvc("500Mi"), lr) == [
        "minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"
    ]
    assert validate_pvc(pvc("20Gi"), lr) == [
        "maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"
    ]
    assert validate_pvc(pvc("5Gi"), lr) == []
    assert validate_pvc(pvc(None), lr) == [
        "minimum storage usage per PersistentVolumeClaim is 1Gi.  No request is specified",
        "maximum storage usage per PersistentVolumeClaim is 10Gi.  No request is specified",
    ]
    # Container and Pod items do not apply to claims, nor claim items to pods
    assert (
        validate_pvc(pvc("1Ti"), limit_range({"type": "Container", "max": {"storage": "1Gi"}}))
        == []
    )
    assert validate_pod(pod(container("c")), lr) == []


# --- the error ------------------------------------------------------------------------------


def test_first_violated_limit_range_is_reported_in_upstreams_403() -> None:
    permissive = limit_range({"type": "Container", "max": {"cpu": "8"}})
    strict = limit_range({"type": "Container", "max": {"cpu": "2", "memory": "1Gi"}})
    stricter = limit_range({"type": "Container", "max": {"cpu": "1"}})
    p = pod(
        container("c", requests={"cpu": "1", "memory": "1Gi"}, limits={"cpu": "3", "memory": "2Gi"})
    )
    messages = validate("pods", p, [permissive, strict, stricter])
    assert messages == [
        "maximum cpu usage per Container is 2, but limit is 3",
        "maximum memory usage per Container is 1Gi, but limit is 2Gi",
    ]
    err = forbidden("pods", p, messages)
    assert (err.code, err.reason) == (403, "Forbidden")
    assert err.message == (
        'pods "x" is forbidden: [maximum cpu usage per Container is 2, but limit is 3, '
        "maximum memory usage per Container is 1Gi, but limit is 2Gi]"
    )
    assert err.details == {"name": "x", "kind": "pods"}
    single = forbidden("pods", p, messages[:1])
    assert (
        single.message
        == 'pods "x" is forbidden: maximum cpu usage per Container is 2, but limit is 3'
    )
    assert validate("pods", p, [permissive]) == []
    assert validate("services", p, [strict]) == []


def test_aggregation_and_names() -> None:
    assert aggregate_message(["a", "b", "a"]) == "[a, b]"
    assert aggregate_message(["a", "a"]) == "a"
    assert forbidden_message("persistentvolumeclaims", "data", ["m"]) == (
        'persistentvolumeclaims "data" is forbidden: m'
    )
    generated = {"metadata": {"generateName": "web-"}}
    assert forbidden("pods", generated, ["m"]).message == 'pods "web-" is forbidden: m'
    assert forbidden("pods", None, ["m"]).message == 'pods "Unknown" is forbidden: m'


@pytest.mark.parametrize(
    ("operation", "resource", "kw", "expected"),
    [
        ("CREATE", "pods", {}, True),
        ("create", "pods", {}, True),
        ("UPDATE", "pods", {}, False),
        ("CREATE", "pods", {"subresource": "binding"}, False),
        ("UPDATE", "persistentvolumeclaims", {}, True),
        ("DELETE", "persistentvolumeclaims", {}, False),
        ("CREATE", "services", {}, False),
        ("CREATE", "pods", {"group": "metrics.k8s.io"}, False),
        (
            "UPDATE",
            "persistentvolumeclaims",
            {"old_obj": {"metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z"}}},
            False,
        ),
    ],
)
def test_which_writes_are_looked_at(
    operation: str, resource: str, kw: JSON, expected: bool
) -> None:
    assert applies(operation, resource, **kw) is expected
