"""The rules of managed fields and server-side apply, without a server: FieldsV1 as
upstream writes it, how Update and Apply move ownership, conflicts, pruning, and a
property test over objects built from the official Deployment schema."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyk8s.api import errors
from pyk8s.api import managedfields as mf

JSON = dict[str, Any]
DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"
SHAPE = mf.builtin_shape(DEPLOYMENT)
T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"


def deployment(**spec: Any) -> JSON:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": spec}


def container(name: str, *ports: int, image: str = "img") -> JSON:
    out: JSON = {"name": name, "image": image}
    if ports:
        out["ports"] = [{"containerPort": p} for p in ports]
    return out


def template(*containers: JSON) -> JSON:
    return {"spec": {"containers": list(containers)}}


def apply(
    live: JSON, config: JSON, managers: list[mf.Manager], who: str, *, force: bool = False
) -> mf.Applied:
    return mf.apply(
        live,
        config,
        managers,
        SHAPE,
        manager=who,
        api_version="apps/v1",
        subresource="",
        status="drop",
        force=force,
        time=T1,
    )


def test_create_records_what_upstream_records() -> None:
    obj = deployment(
        replicas=1,
        selector={"matchLabels": {"a": "b"}},
        template={"metadata": {"labels": {"a": "b"}}, **template(container("c", 80))},
    )
    obj["metadata"]["labels"] = {"a": "b"}
    changed, _removed = mf.compare(mf.empty_object(DEPLOYMENT), obj, SHAPE)
    fields = mf.canonical(mf.strip_ignored(changed, status="drop"))
    # "." marks the maps and items the write created; structs Go always has carry none
    assert fields == {
        "f:metadata": {"f:labels": {".": {}, "f:a": {}}},
        "f:spec": {
            "f:replicas": {},
            "f:selector": {},
            "f:template": {
                "f:metadata": {"f:labels": {".": {}, "f:a": {}}},
                "f:spec": {
                    "f:containers": {
                        'k:{"name":"c"}': {
                            ".": {},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {
                                ".": {},
                                'k:{"containerPort":80,"protocol":"TCP"}': {
                                    ".": {},
                                    "f:containerPort": {},
                                },
                            },
                        }
                    }
                },
            },
        },
    }


def test_set_items_are_values() -> None:
    obj = {"metadata": {"finalizers": ["a/b", "c"]}}
    assert mf.field_set(obj, SHAPE) == {
        "f:metadata": {"f:finalizers": {'v:"a/b"': {}, 'v:"c"': {}}}
    }


def test_updates_of_one_manager_merge_and_others_lose_what_changed() -> None:
    first = mf.update([], {"f:spec": {"f:replicas": {}, "f:paused": {}}}, {}, **_who("a", T0))
    second = mf.update(first, {"f:spec": {"f:replicas": {}}}, {}, **_who("b", T1))
    assert [(m.manager, m.fields) for m in second] == [
        ("a", {"f:spec": {"f:paused": {}}}),
        ("b", {"f:spec": {"f:replicas": {}}}),
    ]
    third = mf.update(second, {"f:spec": {"f:minReadySeconds": {}}}, {}, **_who("b", T1))
    assert third[1].fields == {"f:spec": {"f:minReadySeconds": {}, "f:replicas": {}}}
    # a removed field leaves every manager
    gone = mf.update(third, {}, {"f:spec": {"f:paused": {}}}, **_who("c", T1))
    assert [m.manager for m in gone] == ["b"]


def _who(manager: str, time: str) -> JSON:
    return {"manager": manager, "api_version": "apps/v1", "subresource": "", "time": time}


def test_update_managers_are_capped_at_ten() -> None:
    managers: list[mf.Manager] = []
    for i in range(12):
        managers = mf.update(
            managers,
            {"f:metadata": {"f:labels": {f"f:l{i}": {}}}},
            {},
            **_who(f"m{i:02}", f"2026-01-01T00:00:{i:02}Z"),
        )
    names = [m.manager for m in managers]
    assert len(names) == 10
    assert "ancient-changes" in names
    ancient = next(m for m in managers if m.manager == "ancient-changes")
    assert ancient.fields == {"f:metadata": {"f:labels": {"f:l0": {}, "f:l1": {}, "f:l2": {}}}}


def test_entries_are_ordered_as_upstream() -> None:
    entries = mf.encode(
        [
            mf.Manager("z", "Update", "v1", T0, {"f:a": {}}),
            mf.Manager("b", "Apply", "v1", T1, {"f:b": {}}),
            mf.Manager("a", "Apply", "v1", T1, {"f:c": {}}),
        ]
    )
    assert [(e["manager"], e["operation"]) for e in entries] == [
        ("a", "Apply"),
        ("b", "Apply"),
        ("z", "Update"),
    ]
    assert list(entries[0]) == [
        "manager",
        "operation",
        "apiVersion",
        "time",
        "fieldsType",
        "fieldsV1",
    ]


def test_conflicts_name_the_manager_and_paths() -> None:
    live = deployment(replicas=1, template=template(container("c", image="x")))
    owner = mf.Manager(
        "ctl",
        "Update",
        "apps/v1",
        T0,
        {
            "f:spec": {
                "f:replicas": {},
                "f:template": {
                    "f:spec": {"f:containers": {'k:{"name":"c"}': {".": {}, "f:image": {}}}}
                },
            }
        },
    )
    config = deployment(replicas=2, template=template(container("c", image="y")))
    with pytest.raises(errors.StatusError) as err:
        apply(live, config, [owner], "me")
    assert err.value.code == 409
    assert str(err.value.message) == (
        'Apply failed with 2 conflicts: conflicts with "ctl" using apps/v1:\n'
        "- .spec.replicas\n"
        '- .spec.template.spec.containers[name="c"].image'
    )
    # the same values are shared, not conflicts
    same = apply(live, deployment(replicas=1), [owner], "me")
    assert {m.manager for m in same.managers} == {"ctl", "me"}
    # force takes them
    taken = apply(live, config, [owner], "me", force=True)
    assert taken.obj["spec"]["replicas"] == 2
    ctl = next(m for m in taken.managers if m.manager == "ctl")
    assert ctl.fields == {
        "f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"c"}': {}}}}}
    }


def test_list_map_merge_keeps_upstream_order() -> None:
    live = deployment(template=template(container("a"), container("b"), container("c")))
    config = deployment(template=template(container("c"), container("d"), container("a")))
    merged = mf.merge(live, config, SHAPE)
    names = [c["name"] for c in merged["spec"]["template"]["spec"]["containers"]]
    assert names == ["b", "c", "d", "a"]


def test_paths_print_as_upstream() -> None:
    s = {
        "f:spec": {
            "f:ports": {'k:{"port":80,"protocol":"TCP"}': {"f:name": {}}},
            "f:finalizers": {'v:"x"': {}},
        }
    }
    assert mf.paths(s) == [
        '.spec.finalizers[="x"]',
        '.spec.ports[port=80,protocol="TCP"].name',
    ]


def test_user_agent_prefix_is_the_manager() -> None:
    assert mf.manager_from_user_agent("kubectl/v1.32.4 (linux/amd64) kubernetes/abc") == "kubectl"
    assert mf.manager_from_user_agent("") == ""


def test_reset_and_undecodable_entries() -> None:
    assert mf.is_reset([]) and mf.is_reset([{}])
    assert not mf.is_reset(None)
    assert mf.decode([{"manager": "x", "operation": "Bogus"}]) is None
    assert mf.decode("nope") is None


# ---------------------------------------------------------------------------- property

_NAMES = st.sampled_from(["a", "b", "c"])
_PORTS = st.lists(st.sampled_from([80, 443, 8080]), unique=True, max_size=3)


@st.composite
def configs(draw: st.DrawFn) -> JSON:
    """Apply configurations of one Deployment built from the official schema's fields."""
    spec: JSON = {}
    if draw(st.booleans()):
        spec["replicas"] = draw(st.integers(0, 5))
    if draw(st.booleans()):
        spec["paused"] = draw(st.booleans())
    names = draw(st.lists(_NAMES, unique=True, max_size=3))
    if names:
        containers = []
        for name in names:
            c: JSON = {"name": name}
            if draw(st.booleans()):
                c["image"] = draw(st.sampled_from(["x", "y"]))
            ports = draw(_PORTS)
            if ports:
                c["ports"] = [{"containerPort": p} for p in ports]
            if draw(st.booleans()):
                c["args"] = draw(st.lists(st.sampled_from(["-v", "-q"]), max_size=2))
            containers.append(c)
        spec["template"] = {"spec": {"containers": containers}}
    out = deployment(**spec)
    labels = draw(st.dictionaries(st.sampled_from(["app", "tier"]), st.sampled_from(["1", "2"])))
    if labels:
        out["metadata"]["labels"] = labels
    return out


def _covered(managers: list[mf.Manager]) -> mf.FieldSet:
    out: mf.FieldSet = {}
    for m in managers:
        out = mf.union(out, m.fields)
    return mf.canonical(out)


@settings(max_examples=150, deadline=None)
@given(a=configs(), b=configs(), other_label=st.sampled_from(["x", "y"]))
def test_apply_a_then_b(a: JSON, b: JSON, other_label: str) -> None:
    # another manager owns a label and an annotation nobody else sets
    other_config = deployment()
    other_config["metadata"] = {
        "name": "d",
        "labels": {"owner": other_label},
        "annotations": {"note": "kept"},
    }
    first = apply({}, other_config, [], "other")
    after_a = apply(first.obj, a, first.managers, "me")
    after_b = apply(after_a.obj, b, after_a.managers, "me")
    result = after_b.obj
    # what the object holds is exactly B plus what the other manager set
    expected = mf.union(
        mf.strip_ignored(mf.field_set(b, SHAPE), status="drop"),
        mf.strip_ignored(mf.field_set(other_config, SHAPE), status="drop"),
    )
    assert mf.canonical(mf.strip_ignored(mf.field_set(result, SHAPE), status="drop")) == (
        mf.canonical(expected)
    )
    assert result["metadata"]["labels"]["owner"] == other_label
    assert result["metadata"]["annotations"] == {"note": "kept"}
    # managedFields decode and cover exactly the fields that are set
    entries = mf.encode(after_b.managers)
    decoded = mf.decode(entries)
    assert decoded is not None
    assert _covered(decoded) == mf.canonical(expected)
    mine = next(m for m in decoded if m.manager == "me")
    assert mine.fields == mf.canonical(mf.strip_ignored(mf.field_set(b, SHAPE), status="drop"))


@settings(max_examples=150, deadline=None)
@given(
    obj=configs(),
    duplicate=st.booleans(),
    empty=st.sampled_from(["", "strategy", "minReadySeconds", "labels", "finalizers"]),
)
def test_a_create_set_is_the_sorted_compare(obj: JSON, duplicate: bool, empty: str) -> None:
    # ``created`` builds in one walk what a create recorded as canonical(compare(zero, obj))
    spec = obj["spec"]
    containers = spec.get("template", {}).get("spec", {}).get("containers")
    if duplicate and containers:  # a repeated key: the first item is the one recorded
        containers.append({**containers[0], "image": "dup"})
    if empty == "labels":
        obj["metadata"]["labels"] = {}
    elif empty == "finalizers":
        obj["metadata"]["finalizers"] = ["b", "a", "b"]
    elif empty:
        spec[empty] = None
    zero = mf.empty_object(DEPLOYMENT)
    expected = mf.canonical(mf.compare(zero, obj, SHAPE)[0])
    got = mf.created(zero, obj, SHAPE)
    assert got == expected
    assert orjson.dumps(got) == orjson.dumps(expected)  # and in the same order
