"""The patches kubectl users send, applied as upstream's API server applies them.

Expected results were checked against ``kubectl patch --local`` (which runs upstream's own
patch code); :func:`test_same_result_as_kubectl` keeps doing so where kubectl is installed.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyk8s.api.errors import StatusError
from pyk8s.api.patch import (
    MAX_JSON_PATCH_OPERATIONS,
    REJECTED,
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
)

DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"
POD = "io.k8s.api.core.v1.Pod"


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app": "web", "tier": "front"},
            "finalizers": ["f1", "f2", "f3"],
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "tolerations": [{"key": "a", "operator": "Exists"}],
                    "volumes": [
                        {"name": "cache", "emptyDir": {}},
                        {"name": "conf", "configMap": {"name": "web-conf"}},
                    ],
                    "containers": [
                        {
                            "name": "a",
                            "image": "a:1",
                            "args": ["--x", "--y"],
                            "ports": [{"containerPort": 80}, {"containerPort": 443}],
                            "env": [{"name": "E1", "value": "1"}, {"name": "E2", "value": "2"}],
                        },
                        {"name": "b", "image": "b:1"},
                    ],
                },
            },
        },
    }


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def names(items: list[dict[str, Any]]) -> list[Any]:
    return [i["name"] for i in items]


def smp(patch: Any, doc: dict[str, Any] | None = None) -> dict[str, Any]:
    return apply_strategic_merge_patch(doc or deployment(), patch, DEPLOYMENT)


# ---------------------------------------------------------------- strategic merge patch


def test_containers_merge_by_name_and_keep_the_others() -> None:
    # kubectl patch deploy web -p '{"spec":{"template":{"spec":{"containers":[...]}}}}'
    out = smp({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "new"}]}}}})
    containers = pod_spec(out)["containers"]
    assert names(containers) == ["a", "b"]
    assert containers[1] == {"name": "b", "image": "new"}
    assert containers[0] == deployment()["spec"]["template"]["spec"]["containers"][0]


def test_a_new_container_goes_first_as_upstream_orders_it() -> None:
    out = smp({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "c:1"}]}}}})
    assert names(pod_spec(out)["containers"]) == ["c", "a", "b"]


def test_patch_delete_removes_a_container() -> None:
    out = smp({"spec": {"template": {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}}})
    assert names(pod_spec(out)["containers"]) == ["b"]


def test_env_merges_by_name_in_upstream_order() -> None:
    patch = {"name": "a", "env": [{"name": "E3", "value": "3"}, {"name": "E1", "value": "x"}]}
    out = smp({"spec": {"template": {"spec": {"containers": [patch]}}}})
    assert pod_spec(out)["containers"][0]["env"] == [
        {"name": "E3", "value": "3"},
        {"name": "E1", "value": "x"},
        {"name": "E2", "value": "2"},
    ]


def test_null_inside_a_merged_element_deletes_that_field() -> None:
    env = [{"name": "E1", "value": None, "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    out = smp({"spec": {"template": {"spec": {"containers": [{"name": "a", "env": env}]}}}})
    assert pod_spec(out)["containers"][0]["env"][0] == {
        "name": "E1",
        "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}},
    }


def test_env_element_delete_directive() -> None:
    patch = {"name": "a", "env": [{"name": "E2", "$patch": "delete"}, {"name": "E9", "value": "9"}]}
    out = smp({"spec": {"template": {"spec": {"containers": [patch]}}}})
    assert names(pod_spec(out)["containers"][0]["env"]) == ["E9", "E1"]


def test_ports_merge_by_container_port() -> None:
    ports = [{"containerPort": 8080}, {"containerPort": 80, "name": "http"}]
    out = smp({"spec": {"template": {"spec": {"containers": [{"name": "a", "ports": ports}]}}}})
    assert pod_spec(out)["containers"][0]["ports"] == [
        {"containerPort": 8080},
        {"containerPort": 80, "name": "http"},
        {"containerPort": 443},
    ]


def test_a_label_removed_with_null_and_one_added() -> None:
    out = smp({"metadata": {"labels": {"tier": None, "team": "x"}}})
    assert out["metadata"]["labels"] == {"app": "web", "team": "x"}


def test_null_for_a_missing_field_is_ignored() -> None:
    out = smp({"metadata": {"annotations": None}, "spec": {"paused": None}})
    assert out == deployment()


def test_tolerations_have_no_merge_key_so_they_are_replaced() -> None:
    tolerations = [{"key": "b", "operator": "Exists", "effect": "NoSchedule"}]
    out = smp({"spec": {"template": {"spec": {"tolerations": tolerations}}}})
    assert pod_spec(out)["tolerations"] == tolerations


def test_container_args_are_atomic() -> None:
    out = smp({"spec": {"template": {"spec": {"containers": [{"name": "a", "args": ["--z"]}]}}}})
    assert pod_spec(out)["containers"][0]["args"] == ["--z"]


def test_finalizers_merge_as_a_set() -> None:
    out = smp({"metadata": {"finalizers": ["f4", "f1"]}})
    assert out["metadata"]["finalizers"] == ["f4", "f1", "f2", "f3"]


def test_delete_from_primitive_list_on_finalizers() -> None:
    out = smp({"metadata": {"$deleteFromPrimitiveList/finalizers": ["f2", "absent"]}})
    assert out["metadata"]["finalizers"] == ["f1", "f3"]


def test_delete_from_primitive_list_of_a_missing_list_adds_nothing() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}
    out = apply_strategic_merge_patch(
        pod, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}, POD
    )
    assert out == pod


def test_set_element_order_reorders_finalizers() -> None:
    out = smp({"metadata": {"$setElementOrder/finalizers": ["f3", "f1", "f2"]}})
    assert out["metadata"]["finalizers"] == ["f3", "f1", "f2"]


def test_empty_set_element_order_sorts_as_upstreams_go_sort_does() -> None:
    # upstream's comparator calls an item missing from the order list "less" both ways;
    # what Go's stable sort makes of that is what the API server stores
    doc = deployment()
    doc["metadata"]["finalizers"] = ["f4", "f1", "f3", "f2"]
    patch = {"metadata": {"finalizers": ["f1", "f2", "f6"], "$setElementOrder/finalizers": []}}
    out = apply_strategic_merge_patch(doc, patch, DEPLOYMENT)
    assert out["metadata"]["finalizers"] == ["f6", "f4", "f1", "f3", "f2"]


def test_kubectl_apply_style_finalizer_change() -> None:
    # what kubectl apply sends when f2 is dropped and f9 added between f3 and f1
    patch = {
        "metadata": {
            "$setElementOrder/finalizers": ["f3", "f9", "f1"],
            "finalizers": ["f9"],
            "$deleteFromPrimitiveList/finalizers": ["f2"],
        }
    }
    assert smp(patch)["metadata"]["finalizers"] == ["f3", "f9", "f1"]


def test_set_element_order_places_a_new_container() -> None:
    order = [{"name": "b"}, {"name": "z"}, {"name": "a"}]
    patch = {"$setElementOrder/containers": order, "containers": [{"name": "z", "image": "z"}]}
    out = smp({"spec": {"template": {"spec": patch}}})
    assert names(pod_spec(out)["containers"]) == ["b", "z", "a"]


def test_set_element_order_must_agree_with_the_patch_list() -> None:
    patch = {
        "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
        "containers": [{"name": "a", "image": "n"}, {"name": "b", "image": "n"}],
    }
    with pytest.raises(PatchError) as e:
        smp({"spec": {"template": {"spec": patch}}})
    assert e.value.code == 500
    assert e.value.message == (
        "The order in patch list:\n[map[image:n name:a] map[image:n name:b]]\n"
        " doesn't match $setElementOrder list:\n[map[name:b] map[name:a]]\n"
    )


def test_retain_keys_clears_the_rolling_update_on_switch_to_recreate() -> None:
    out = smp({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}})
    assert out["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_rejects_a_patch_setting_an_unlisted_field() -> None:
    patch = {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": {"maxSurge": 2}}
    with pytest.raises(PatchError) as e:
        smp({"spec": {"strategy": patch}})
    assert (e.value.code, e.value.reason) == (400, "BadRequest")
    assert e.value.message == "invalid patch format of retainKeys"


def test_retain_keys_on_a_volume_switches_its_source() -> None:
    volume = {"name": "cache", "$retainKeys": ["name", "secret"], "secret": {"secretName": "s"}}
    out = smp({"spec": {"template": {"spec": {"volumes": [volume]}}}})
    assert pod_spec(out)["volumes"][0] == {"name": "cache", "secret": {"secretName": "s"}}


def test_list_replace_directive() -> None:
    patch = {"containers": [{"name": "z", "image": "z"}, {"$patch": "replace"}]}
    out = smp({"spec": {"template": {"spec": patch}}})
    assert pod_spec(out)["containers"] == [{"name": "z", "image": "z"}]


def test_map_replace_and_delete_directives() -> None:
    replaced = smp({"spec": {"strategy": {"$patch": "replace", "type": "Recreate"}}})
    assert replaced["spec"]["strategy"] == {"type": "Recreate"}
    deleted = smp({"spec": {"strategy": {"$patch": "delete"}}})
    assert deleted["spec"]["strategy"] == {}


def test_unknown_map_directive_is_upstreams_plain_error() -> None:
    with pytest.raises(PatchError) as e:
        smp({"spec": {"strategy": {"$patch": "merge"}}})
    assert e.value.code == 500
    assert e.value.message == "unknown patch type: merge in map: map[$patch:merge]"


def test_merge_directive_in_a_list_is_refused_as_upstream_does() -> None:
    with pytest.raises(PatchError, match="merging lists cannot yet be specified"):
        smp({"spec": {"template": {"spec": {"containers": [{"name": "a", "$patch": "merge"}]}}}})


def test_element_without_merge_key() -> None:
    with pytest.raises(PatchError) as e:
        smp({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}})
    assert e.value.code == 500
    assert e.value.message == "map: map[image:x] does not contain declared merge key: name"


def test_lists_of_lists_are_unprocessable() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": []}}
    with pytest.raises(PatchError) as e:
        apply_strategic_merge_patch(pod, {"metadata": {"finalizers": [["x"]]}}, POD)
    assert (e.value.code, e.value.reason) == (422, "Invalid")
    assert e.value.detail == "lists of lists are not supported"


def test_mixed_element_types() -> None:
    with pytest.raises(PatchError, match="list element types are not identical"):
        smp({"metadata": {"finalizers": [1]}})
    with pytest.raises(PatchError, match="list element types are not identical"):
        smp({"spec": {"template": {"spec": {"containers": [["x"]]}}}})


def test_bad_directive_key_formats_are_bad_requests() -> None:
    with pytest.raises(PatchError, match="invalid patch format of setElementOrder list") as e:
        smp({"metadata": {"$setElementOrderX": []}})
    assert e.value.code == 400
    with pytest.raises(PatchError, match="invalid patch format of primitive list"):
        smp({"metadata": {"$deleteFromPrimitiveList/finalizers": "f1"}})


def test_replace_strategy_of_pdb_selector() -> None:
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "p"},
        "spec": {"selector": {"matchLabels": {"a": "1"}}, "minAvailable": 1},
    }
    out = apply_strategic_merge_patch(
        pdb,
        {"spec": {"selector": {"matchLabels": {"b": "2"}}}},
        "io.k8s.api.policy.v1.PodDisruptionBudget",
    )
    assert out["spec"] == {"selector": {"matchLabels": {"b": "2"}}, "minAvailable": 1}


def test_maps_without_schema_properties_merge() -> None:
    out = smp({"spec": {"template": {"spec": {"nodeSelector": {"disk": "ssd"}}}}})
    assert pod_spec(out)["nodeSelector"] == {"disk": "ssd"}
    out = smp({"spec": {"template": {"spec": {"nodeSelector": {"zone": "a"}}}}}, out)
    assert pod_spec(out)["nodeSelector"] == {"disk": "ssd", "zone": "a"}


def test_new_values_lose_nulls_and_directives() -> None:
    init = [{"name": "i", "image": "i", "command": None}, {"name": "gone", "$patch": "delete"}]
    out = smp({"spec": {"template": {"spec": {"initContainers": init}}}})
    assert pod_spec(out)["initContainers"] == [{"name": "i", "image": "i"}]


def test_service_ports_merge_by_port() -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]},
    }
    out = apply_strategic_merge_patch(
        svc, {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}, "io.k8s.api.core.v1.Service"
    )
    assert out["spec"]["ports"] == [{"port": 80, "targetPort": 9090}, {"port": 443}]


def test_scale_and_image_in_one_patch_does_not_touch_the_input() -> None:
    original = deployment()
    before = copy.deepcopy(original)
    patch = {
        "spec": {
            "replicas": 5,
            "template": {"spec": {"containers": [{"name": "a", "image": "a2"}]}},
        }
    }
    patch_before = copy.deepcopy(patch)
    out = apply_strategic_merge_patch(original, patch, DEPLOYMENT)
    assert out["spec"]["replicas"] == 5
    assert original == before and patch == patch_before
    out["metadata"]["labels"]["x"] = "y"  # the result shares nothing with the input
    assert "x" not in original["metadata"]["labels"]


def test_null_patch_is_a_no_op_and_non_objects_are_bad_requests() -> None:
    assert smp(None) == deployment()
    with pytest.raises(PatchError) as e:
        smp([{"op": "add"}])
    assert (e.value.code, e.value.message) == (
        400,
        "json: cannot unmarshal array into Go value of type map[string]interface {}",
    )


def test_custom_resources_answer_415_like_upstream() -> None:
    cr = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    with pytest.raises(PatchError) as e:
        apply_strategic_merge_patch(cr, {"spec": {"size": 3}}, None)
    assert (e.value.code, e.value.reason) == (415, "UnsupportedMediaType")
    assert e.value.message == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    )


def test_unknown_definition_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown schema definition"):
        apply_strategic_merge_patch({}, {}, "io.example.v1.Nope")


# ---------------------------------------------------------------- JSON patch


def test_json_patch_label_with_escaped_slash() -> None:
    ops = [{"op": "add", "path": "/metadata/labels/a~1b", "value": "x"}]
    assert apply_json_patch(deployment(), ops)["metadata"]["labels"]["a/b"] == "x"
    ops = [{"op": "add", "path": "/metadata/labels/t~0k", "value": "y"}]
    assert apply_json_patch(deployment(), ops)["metadata"]["labels"]["t~k"] == "y"


def test_json_patch_test_then_replace() -> None:
    ops = [
        {"op": "test", "path": "/spec/replicas", "value": 2},
        {"op": "replace", "path": "/spec/replicas", "value": 3},
    ]
    assert apply_json_patch(deployment(), ops)["spec"]["replicas"] == 3


def test_json_patch_failed_test_is_422_with_upstreams_message() -> None:
    original = deployment()
    ops = [
        {"op": "replace", "path": "/spec/replicas", "value": 9},
        {"op": "test", "path": "/metadata/labels/app", "value": "db"},
    ]
    with pytest.raises(PatchError) as e:
        apply_json_patch(original, ops)
    assert (e.value.code, e.value.reason, e.value.message) == (422, "Invalid", REJECTED)
    assert e.value.detail == "testing value /metadata/labels/app failed: test failed"
    assert e.value.status()["details"] == {}
    assert original["spec"]["replicas"] == 2  # nothing applied


def test_json_patch_test_is_type_strict() -> None:
    with pytest.raises(PatchError):
        apply_json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": True}])
    assert apply_json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 1.0}]) == {"a": 1}


def test_json_patch_missing_paths() -> None:
    with pytest.raises(PatchError) as e:
        apply_json_patch(deployment(), [{"op": "remove", "path": "/spec/nope"}])
    assert e.value.code == 422
    assert "Unable to remove nonexistent key: nope" in e.value.detail
    with pytest.raises(PatchError, match=REJECTED) as e:
        apply_json_patch(deployment(), [{"op": "add", "path": "/spec/nope/x", "value": 1}])
    assert "doc is missing path" in e.value.detail


def test_json_patch_upstream_leniencies() -> None:
    doc = {"a": {"x": 1}, "l": [1, 2, 3]}
    # replace of a missing member adds it; test of a missing member against null passes
    ops = [
        {"op": "replace", "path": "/a/y", "value": 2},
        {"op": "test", "path": "/a/z", "value": None},
        {"op": "remove", "path": "/l/-1"},
    ]
    assert apply_json_patch(doc, ops) == {"a": {"x": 1, "y": 2}, "l": [1, 2]}


def test_json_patch_arrays() -> None:
    doc = {"l": ["a", "c"]}
    ops = [
        {"op": "add", "path": "/l/1", "value": "b"},
        {"op": "add", "path": "/l/-", "value": "d"},
        {"op": "remove", "path": "/l/0"},
    ]
    assert apply_json_patch(doc, ops) == {"l": ["b", "c", "d"]}
    with pytest.raises(PatchError, match=REJECTED) as e:
        apply_json_patch(doc, [{"op": "add", "path": "/l/5", "value": "x"}])
    assert "invalid index" in e.value.detail


def test_json_patch_move_and_copy() -> None:
    doc = {"metadata": {"labels": {"a": "1"}}}
    moved = apply_json_patch(doc, [{"op": "move", "from": "/metadata/labels/a", "path": "/b"}])
    assert moved == {"metadata": {"labels": {}}, "b": "1"}
    copied = apply_json_patch(
        doc, [{"op": "copy", "from": "/metadata/labels", "path": "/metadata/annotations"}]
    )
    assert copied["metadata"]["annotations"] == {"a": "1"}
    copied["metadata"]["annotations"]["z"] = "2"
    assert copied["metadata"]["labels"] == {"a": "1"}  # a copy, not an alias
    with pytest.raises(PatchError):
        apply_json_patch(doc, [{"op": "move", "from": "/metadata", "path": "/metadata/x"}])


def test_json_patch_values_are_copied_in() -> None:
    value = {"k": "v"}
    ops = [{"op": "add", "path": "/a", "value": value}, {"op": "add", "path": "/b", "value": value}]
    out = apply_json_patch({}, ops)
    out["a"]["k"] = "changed"
    assert out["b"] == {"k": "v"} and value == {"k": "v"}


def test_json_patch_malformed_documents() -> None:
    with pytest.raises(PatchError) as e:
        apply_json_patch({}, {"op": "add"})
    assert (e.value.code, e.value.message) == (
        400,
        "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
    )
    with pytest.raises(PatchError) as e:
        apply_json_patch({}, [1])
    assert (
        e.value.message == "json: cannot unmarshal number into Go value of type jsonpatch.Operation"
    )
    with pytest.raises(PatchError) as e:
        apply_json_patch({}, [{"op": "frob", "path": "/a"}])
    assert (e.value.code, e.value.detail) == (422, "Unexpected kind: frob")
    assert apply_json_patch({"a": 1}, None) == {"a": 1}


def test_json_patch_operation_limit() -> None:
    ops = [{"op": "test", "path": "/a", "value": 1}] * (MAX_JSON_PATCH_OPERATIONS + 1)
    with pytest.raises(PatchError) as e:
        apply_json_patch({"a": 1}, ops)
    assert (e.value.code, e.value.reason) == (413, "RequestEntityTooLarge")
    assert e.value.message.endswith("is 10000, got 10001")


def test_json_patch_cannot_turn_an_object_into_a_list() -> None:
    with pytest.raises(PatchError) as e:
        apply_json_patch({"a": 1}, [{"op": "replace", "path": "", "value": [1]}])
    assert (e.value.code, e.value.reason) == (422, "Invalid")
    assert apply_json_patch({"a": 1}, [{"op": "replace", "path": "", "value": {"b": 2}}]) == {
        "b": 2
    }


# ---------------------------------------------------------------- merge patch


def test_merge_patch_replaces_lists_and_deletes_with_null() -> None:
    patch = {
        "metadata": {"labels": {"tier": None}},
        "spec": {"template": {"spec": {"containers": [{"name": "only", "image": "o"}]}}},
    }
    out = apply_merge_patch(deployment(), patch)
    assert out["metadata"]["labels"] == {"app": "web"}
    assert pod_spec(out)["containers"] == [{"name": "only", "image": "o"}]
    assert pod_spec(out)["volumes"] == pod_spec(deployment())["volumes"]


def test_merge_patch_rfc7386_examples() -> None:
    assert apply_merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert apply_merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert apply_merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert apply_merge_patch({"a": "foo"}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}


def test_merge_patch_must_be_an_object() -> None:
    for bad in (None, "x", 3):
        with pytest.raises(PatchError) as e:
            apply_merge_patch({"a": 1}, bad)
        assert (e.value.code, e.value.message) == (400, "Invalid JSON Patch")
    with pytest.raises(PatchError) as e:
        apply_merge_patch({"a": 1}, [1])
    assert e.value.code == 422


def test_merge_patch_does_not_mutate() -> None:
    doc, patch = deployment(), {"spec": {"replicas": None, "x": {"y": 1}}}
    doc_before, patch_before = copy.deepcopy(doc), copy.deepcopy(patch)
    out = apply_merge_patch(doc, patch)
    out["spec"]["x"]["y"] = 2
    assert doc == doc_before and patch == patch_before


def test_patch_error_is_a_status_error() -> None:
    err = PatchError(400, "Invalid JSON Patch")
    assert isinstance(err, StatusError) and isinstance(err, Exception)
    assert err.status() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Invalid JSON Patch",
        "reason": "BadRequest",
        "code": 400,
    }


# ---------------------------------------------------------------- properties

_keys = st.text(alphabet="abcdef", min_size=1, max_size=3)
_scalars = st.one_of(st.booleans(), st.integers(-5, 5), st.text(alphabet="xyz", max_size=3))
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=3)),
    max_leaves=8,
)
_docs = st.dictionaries(_keys, _values, max_size=5)


def merge_diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """An RFC 7386 patch turning ``a`` into ``b``."""
    patch: dict[str, Any] = {k: None for k in a if k not in b}
    for k, v in b.items():
        if k in a and isinstance(a[k], dict) and isinstance(v, dict):
            sub = merge_diff(a[k], v)
            if sub:
                patch[k] = sub
        elif k not in a or a[k] != v or type(a[k]) is not type(v):
            patch[k] = v
    return patch


@settings(max_examples=200, deadline=None)
@given(_docs, _docs)
def test_merge_patch_of_a_diff_round_trips(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert apply_merge_patch(a, merge_diff(a, b)) == b


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(_keys, st.text(max_size=3), max_size=4),
    st.dictionaries(_keys, st.text(max_size=3), max_size=4),
)
def test_strategic_patch_of_plain_maps_is_a_merge_patch(
    a: dict[str, str], b: dict[str, str]
) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": a}
    patch = {"data": merge_diff(a, b)}
    out = apply_strategic_merge_patch(cm, patch, "io.k8s.api.core.v1.ConfigMap")
    assert out == apply_merge_patch(cm, patch)
    assert out["data"] == b


# ---------------------------------------------------------------- against kubectl

KUBECTL = shutil.which("kubectl")

KUBECTL_CASES: list[tuple[str, Any]] = [
    ("strategic", {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "c"}]}}}}),
    (
        "strategic",
        {
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [
                            {"name": "b"},
                            {"name": "z"},
                            {"name": "a"},
                        ],
                        "containers": [
                            {"name": "z", "image": "z"},
                            {"name": "a", "env": [{"name": "E0", "value": "0"}]},
                        ],
                    }
                }
            }
        },
    ),
    (
        "strategic",
        {"metadata": {"finalizers": ["f9", "f2"], "$deleteFromPrimitiveList/finalizers": ["f1"]}},
    ),
    ("strategic", {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
    (
        "strategic",
        {
            "spec": {
                "template": {
                    "spec": {
                        "volumes": [
                            {"name": "v", "emptyDir": {}},
                            {"name": "cache", "$patch": "delete"},
                        ],
                        "containers": [
                            {"name": "a", "ports": [{"containerPort": 443, "name": "https"}]}
                        ],
                    }
                }
            }
        },
    ),
    ("json", [{"op": "add", "path": "/metadata/labels/a~1b", "value": "x"}]),
    ("json", [{"op": "move", "from": "/spec/replicas", "path": "/metadata/annotations"}]),
    (
        "merge",
        {"metadata": {"labels": {"app": None}}, "spec": {"template": {"spec": {"volumes": []}}}},
    ),
]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
@pytest.mark.parametrize(("kind", "patch"), KUBECTL_CASES)
def test_same_result_as_kubectl(kind: str, patch: Any) -> None:
    assert KUBECTL is not None
    proc = subprocess.run(
        [
            KUBECTL,
            "patch",
            "--local",
            "-f",
            "-",
            "--type",
            kind,
            "-p",
            json.dumps(patch),
            "-o",
            "json",
        ],
        input=json.dumps(deployment()),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    expected = json.loads(proc.stdout)
    if kind == "strategic":
        got = apply_strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    elif kind == "json":
        got = apply_json_patch(deployment(), patch)
    else:
        got = apply_merge_patch(deployment(), patch)
    assert got == expected
