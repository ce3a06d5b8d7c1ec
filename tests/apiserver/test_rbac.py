"""RBAC's pure parts and its authorizer over a real watch cache: upstream's rule
matching, rule coverage (escalation), the reconcile rules of the bootstrap policy, and the
subject index following creates, updates and deletes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyk8s.api.rbac import aggregated_rules
from pyk8s.apiserver.authn import UserInfo
from pyk8s.apiserver.authz import RequestAttributes
from pyk8s.apiserver.rbac import RBACAuthorizer
from pyk8s.apiserver.rbac.bootstrappolicy import cluster_roles
from pyk8s.apiserver.rbac.reconcile import reconcile_binding, reconcile_role
from pyk8s.apiserver.rbac.rules import CompiledRules, Rule, compact_string, covers, rule_allows
from pyk8s.apiserver.watchcache import WatchCache
from pyk8s.storage.sqlite import SqliteStore


def res(
    verb: str, resource: str, sub: str = "", group: str = "", name: str = "", ns: str = ""
) -> RequestAttributes:
    return RequestAttributes(verb, group, resource, sub, ns, name)


def url(verb: str, path: str) -> RequestAttributes:
    return RequestAttributes(verb, path=path, resource_request=False)


@pytest.mark.parametrize(
    ("rule", "attrs", "allowed"),
    [
        (Rule(("get",), ("",), ("pods",)), res("get", "pods"), True),
        (Rule(("get",), ("",), ("pods",)), res("list", "pods"), False),
        (Rule(("*",), ("",), ("pods",)), res("deletecollection", "pods"), True),
        (Rule(("get",), ("apps",), ("pods",)), res("get", "pods"), False),
        (Rule(("get",), ("*",), ("deployments",)), res("get", "deployments", group="apps"), True),
        (Rule(("get",), ("",), ("pods",)), res("get", "pods", "log"), False),
        (Rule(("get",), ("",), ("pods/log",)), res("get", "pods", "log"), True),
        (Rule(("get",), ("",), ("pods/log",)), res("get", "pods"), False),
        (Rule(("get",), ("*",), ("*/scale",)), res("get", "deployments", "scale", "apps"), True),
        (Rule(("get",), ("*",), ("*/scale",)), res("get", "deployments", group="apps"), False),
        (Rule(("get",), ("",), ("*",)), res("get", "pods", "exec"), True),
        (Rule(("get",), ("",), ("configmaps",), ("a",)), res("get", "configmaps", name="a"), True),
        (Rule(("get",), ("",), ("configmaps",), ("a",)), res("get", "configmaps", name="b"), False),
        (Rule(("list",), ("",), ("configmaps",), ("a",)), res("list", "configmaps"), False),
        (Rule(("get",), non_resource_urls=("/healthz",)), url("get", "/healthz"), True),
        (Rule(("get",), non_resource_urls=("/healthz",)), url("get", "/healthz/etcd"), False),
        (Rule(("get",), non_resource_urls=("/healthz/*",)), url("get", "/healthz/etcd"), True),
        (Rule(("get",), non_resource_urls=("/api*",)), url("get", "/apis/apps"), True),
        (Rule(("*",), non_resource_urls=("*",)), url("post", "/anything"), True),
        (Rule(("get",), ("",), ("pods",)), url("get", "/api"), False),
        (Rule(("get",), non_resource_urls=("*",)), res("get", "pods"), False),
    ],
)
def test_rule_allows(rule: Rule, attrs: RequestAttributes, allowed: bool) -> None:
    assert rule_allows(rule, attrs) is allowed


def test_covers_breaks_rules_down() -> None:
    owned = [
        Rule(("get", "list"), ("",), ("pods", "pods/log")),
        Rule(("get",), ("*",), ("*/scale",)),
        Rule(("get",), ("",), ("configmaps",), ("a", "b")),
        Rule(("get",), non_resource_urls=("/healthz/*",)),
    ]
    assert covers(owned, [Rule(("get",), ("",), ("pods", "pods/log"))]) == []
    assert covers(owned, [Rule(("get",), ("apps",), ("deployments/scale",))]) == []
    assert covers(owned, [Rule(("get",), ("",), ("configmaps",), ("a",))]) == []
    assert covers(owned, [Rule(("get",), non_resource_urls=("/healthz/etcd",))]) == []
    assert covers(owned, [Rule(("get", "delete"), ("",), ("pods",))]) == [
        Rule(("delete",), ("",), ("pods",))
    ]
    # a rule limited to names does not cover the whole resource
    assert covers(owned, [Rule(("get",), ("",), ("configmaps",))]) == [
        Rule(("get",), ("",), ("configmaps",))
    ]
    everything = [Rule(("*",), ("*",), ("*",)), Rule(("*",), non_resource_urls=("*",))]
    assert covers(everything, owned) == []
    assert compact_string(Rule(("get", "list"), ("",), ("pods",), ("a",))) == (
        '{APIGroups:[""], Resources:["pods"], ResourceNames:["a"], Verbs:["get" "list"]}'
    )
    assert compact_string(Rule(("get",), non_resource_urls=("/x",))) == (
        '{NonResourceURLs:["/x"], Verbs:["get"]}'
    )


def _role(rules: list[Any], **annotations: str) -> dict[str, Any]:
    return {
        "kind": "ClusterRole",
        "metadata": {"name": "r", "labels": {"mine": "1"}, "annotations": annotations},
        "rules": rules,
    }


def test_reconcile_role_adds_what_is_missing_and_keeps_additions() -> None:
    pods = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}
    extra = {"apiGroups": ["x"], "resources": ["y"], "verbs": ["get"]}
    expected = _role([pods], **{"rbac.authorization.kubernetes.io/autoupdate": "true"})
    expected["metadata"]["labels"] = {"kubernetes.io/bootstrapping": "rbac-defaults"}
    existing = _role([extra, {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}])
    result = reconcile_role(existing, expected)
    assert result is not None
    assert result["rules"][:2] == existing["rules"]
    assert result["rules"][2:] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]
    assert result["metadata"]["labels"] == {
        "kubernetes.io/bootstrapping": "rbac-defaults",
        "mine": "1",
    }
    assert reconcile_role(result, expected) is None  # nothing left to do
    protected = _role([], **{"rbac.authorization.kubernetes.io/autoupdate": "false"})
    assert reconcile_role(protected, expected) is None


def test_reconcile_binding_adds_subjects_and_respects_the_role_ref() -> None:
    ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}
    masters = {"kind": "Group", "name": "system:masters"}
    ann = {"kind": "User", "name": "ann"}
    expected = {"metadata": {"name": "b"}, "roleRef": ref, "subjects": [masters]}
    existing = {"metadata": {"name": "b"}, "roleRef": ref, "subjects": [ann]}
    result = reconcile_binding(existing, expected)
    assert result is not None and result["subjects"] == [ann, masters]
    other = {**existing, "roleRef": {**ref, "name": "edit"}}
    assert reconcile_binding(other, expected) is None


def test_bootstrap_aggregated_roles_are_filled_as_the_controller_would() -> None:
    roles = cluster_roles()
    by_name = {r["metadata"]["name"]: r for r in roles}
    for name in ("view", "edit", "admin"):
        assert by_name[name]["rules"] == aggregated_rules(by_name[name], roles)
    view = {tuple(r["resources"]) for r in by_name["view"]["rules"]}
    admin = by_name["admin"]["rules"]
    assert all(r in admin for r in by_name["edit"]["rules"])
    assert all(r in by_name["edit"]["rules"] for r in by_name["view"]["rules"])
    assert ("namespaces",) in view


# --------------------------------------------------------------------------- the index


def _put(kind: str, plural: str, name: str, ns: str = "", **body: Any) -> tuple[str, bytes]:
    meta = {"name": name, **({"namespace": ns} if ns else {})}
    key = f"/registry/rbac.authorization.k8s.io/{plural}/" + (f"{ns}/{name}" if ns else name)
    return key, orjson.dumps({"kind": kind, "metadata": meta, **body})


async def test_authorizer_follows_the_cache(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "s.db")
    cache = WatchCache(store)
    await cache.start()
    rbac = RBACAuthorizer(cache)
    bob = UserInfo("bob", groups=("devs", "system:authenticated"))
    robot = UserInfo("system:serviceaccount:ns1:robot", groups=("system:serviceaccounts",))
    get_pods = res("get", "pods", ns="ns1")
    try:
        assert not (await rbac.authorize(bob, get_pods)).allowed
        pods = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
        await store.create(*_put("Role", "roles", "reader", "ns1", rules=pods))
        ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}
        subjects = [{"kind": "Group", "name": "devs"}, {"kind": "ServiceAccount", "name": "robot"}]
        kv = await store.create(
            *_put("RoleBinding", "rolebindings", "rb", "ns1", roleRef=ref, subjects=subjects)
        )
        await cache.wait_for(kv.mod_revision)
        decision = await rbac.authorize(bob, get_pods)
        assert decision.allowed
        assert decision.reason == (
            'RBAC: allowed by RoleBinding "rb/ns1" of Role "reader" to Group "devs"'
        )
        robot_decision = await rbac.authorize(robot, get_pods)
        assert robot_decision.reason.endswith('to ServiceAccount "robot/ns1"')
        assert not (await rbac.authorize(bob, res("get", "pods", ns="ns2"))).allowed
        assert not (await rbac.authorize(bob, res("list", "pods", ns="ns1"))).allowed

        # a binding to a missing role says so
        missing = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "gone"}
        bob_only = [{"kind": "User", "name": "bob"}]
        crb = _put(
            "ClusterRoleBinding", "clusterrolebindings", "crb", roleRef=missing, subjects=bob_only
        )
        kv = await store.create(*crb)
        await cache.wait_for(kv.mod_revision)
        denied = await rbac.authorize(bob, res("list", "pods", ns="ns1"))
        assert not denied.allowed and denied.no_opinion
        assert denied.reason == 'RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found'

        kv = await store.delete(_put("RoleBinding", "rolebindings", "rb", "ns1")[0])
        await cache.wait_for(kv.mod_revision)
        assert not (await rbac.authorize(bob, get_pods)).allowed
        rules, errors = rbac.rules_of(bob, "ns1")
        assert rules == [] and errors == ['clusterrole.rbac.authorization.k8s.io "gone" not found']
    finally:
        await cache.stop()
        await store.close()


# --------------------------------------------------------------------------- compiled

_VERBS = st.sampled_from(["get", "list", "create", "*"])
_GROUPS = st.sampled_from(["", "apps", "*"])
_RESOURCES = st.sampled_from(
    ["pods", "pods/log", "deployments", "*", "*/scale", "deployments/scale"]
)
_NAMES = st.sampled_from(["a", "b"])
_RULES = st.builds(
    Rule,
    st.lists(_VERBS, min_size=1, max_size=2).map(tuple),
    st.lists(_GROUPS, min_size=1, max_size=2).map(tuple),
    st.lists(_RESOURCES, min_size=1, max_size=3).map(tuple),
    st.lists(_NAMES, max_size=1).map(tuple),
)
_ATTRS = st.builds(
    RequestAttributes,
    st.sampled_from(["get", "list", "create"]),
    st.sampled_from(["", "apps"]),
    st.sampled_from(["pods", "deployments", "secrets"]),
    st.sampled_from(["", "log", "scale"]),
    st.just("ns"),
    st.sampled_from(["", "a", "b"]),
)


@given(st.lists(_RULES, max_size=6), _ATTRS)
def test_compiled_rules_agree_with_the_rules(rules: list[Rule], attrs: RequestAttributes) -> None:
    assert CompiledRules(rules).allows(attrs) is any(rule_allows(r, attrs) for r in rules)
