"""Which requests webhooks and policies match (upstream's rules), and the AdmissionRequest
they receive."""

from __future__ import annotations

from typing import Any

import pytest

from pyk8s.api.errors import StatusError
from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.apiserver.admission import CONNECT, CREATE, DELETE, UPDATE, Attributes
from pyk8s.apiserver.admission.matching import (
    MatchConditions,
    Rule,
    Selectors,
    activation,
    is_exempt,
    match_rules,
    parse_rules,
)
from pyk8s.apiserver.admission.request import admission_request
from pyk8s.apiserver.authn import UserInfo

JSON = dict[str, Any]


def res(group: str, version: str, plural: str) -> Resource:
    r = REGISTRY.get(group, version, plural)
    assert r is not None
    return r


PODS = res("", "v1", "pods")
NAMESPACES = res("", "v1", "namespaces")
NODES = res("", "v1", "nodes")
DEPLOYMENTS = res("apps", "v1", "deployments")
HPA_V1 = res("autoscaling", "v1", "horizontalpodautoscalers")
HPA_V2 = res("autoscaling", "v2", "horizontalpodautoscalers")
USER = UserInfo("alice", groups=("devs", "system:authenticated"))


def attrs(
    r: Resource,
    op: str = CREATE,
    sub: str = "",
    obj: JSON | None = None,
    old: JSON | None = None,
    namespace: str = "ns",
    name: str = "x",
) -> Attributes:
    return Attributes(op, r, namespace if r.namespaced else "", name, obj, old, USER, sub)


def rule(resources: list[str], **kw: Any) -> Rule:
    return Rule.from_dict(
        {
            "operations": kw.pop("operations", ["*"]),
            "apiGroups": kw.pop("apiGroups", ["*"]),
            "apiVersions": kw.pop("apiVersions", ["*"]),
            "resources": resources,
            **kw,
        }
    )


@pytest.mark.parametrize(
    ("resources", "sub", "matched"),
    [
        (["pods"], "", True),
        (["pods"], "status", False),
        (["*"], "", True),
        (["*"], "status", False),  # "*" is every resource, no subresource
        (["*/*"], "status", True),
        (["pods/*"], "status", True),
        (["pods/*"], "", True),  # "*" matches the empty subresource too, as upstream
        (["*/status"], "status", True),
        (["*/scale"], "status", False),
        (["deployments"], "", False),
    ],
)
def test_resources(resources: list[str], sub: str, matched: bool) -> None:
    assert rule(resources).matches(attrs(PODS, UPDATE, sub)) is matched


def test_operations_groups_versions_and_names() -> None:
    create = attrs(DEPLOYMENTS, CREATE)
    assert rule(["deployments"], operations=["CREATE"], apiGroups=["apps"]).matches(create)
    assert not rule(["deployments"], operations=["UPDATE", "DELETE"]).matches(create)
    assert not rule(["deployments"], apiGroups=[""]).matches(create)
    assert not rule(["deployments"], apiVersions=["v1beta1"]).matches(create)
    assert rule(["deployments"], resourceNames=["x"]).matches(create)
    assert not rule(["deployments"], resourceNames=["y"]).matches(create)


def test_scope_counts_a_namespace_as_cluster_scoped() -> None:
    cluster, namespaced = rule(["*"], scope="Cluster"), rule(["*"], scope="Namespaced")
    assert cluster.matches(attrs(NODES)) and not namespaced.matches(attrs(NODES))
    assert namespaced.matches(attrs(PODS)) and not cluster.matches(attrs(PODS))
    ns = attrs(NAMESPACES, name="team-a")
    assert cluster.matches(ns) and not namespaced.matches(ns)
    assert rule(["*"], scope="*").matches(ns) and rule(["*"]).matches(attrs(PODS))


def test_admission_configuration_objects_are_exempt() -> None:
    vwc = res("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations")
    vap = res("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings")
    assert is_exempt(attrs(vwc)) and is_exempt(attrs(vap))
    assert not is_exempt(attrs(PODS))


def test_equivalent_versions_match_unless_the_policy_is_exact() -> None:
    hpa = {
        "apiGroups": ["autoscaling"],
        "operations": ["*"],
        "resources": ["horizontalpodautoscalers"],
    }
    v2_only = parse_rules([{**hpa, "apiVersions": ["v2"]}])
    request = attrs(HPA_V1)
    found = match_rules(v2_only, request, REGISTRY)
    assert found is not None and found.resource is HPA_V2 and found.converted
    assert match_rules(v2_only, request, REGISTRY, "Exact") is None
    direct = match_rules(v2_only, attrs(HPA_V2), REGISTRY)
    assert direct is not None and direct.resource is HPA_V2 and not direct.converted
    # excludeResourceRules win, through equivalence too
    assert match_rules(v2_only, request, REGISTRY, exclude=v2_only) is None


class Namespaces:
    """A Reader holding namespaces only."""

    def __init__(self, **labels: dict[str, str]) -> None:
        self.objs = {n: {"metadata": {"name": n, "labels": v}} for n, v in labels.items()}
        self.reads: list[str] = []

    async def get(self, group: str, plural: str, namespace: str, name: str) -> JSON | None:
        assert (group, plural) == ("", "namespaces")
        self.reads.append(name)
        return self.objs.get(name)

    def cached(self, group: str, plural: str, namespace: str, name: str) -> JSON | None:
        raise AssertionError("not used")

    def list(self, group: str, plural: str, namespace: str | None = None) -> list[JSON]:
        raise AssertionError("not used")


def labelled(**labels: str) -> JSON:
    return {"metadata": {"name": "x", "labels": labels}}


async def test_namespace_selector() -> None:
    reader = Namespaces(prod={"env": "prod"}, dev={"env": "dev"})
    prod_only = Selectors.from_dict({"namespaceSelector": {"matchLabels": {"env": "prod"}}})
    assert await prod_only.namespace_matches(attrs(PODS, namespace="prod"), reader)
    assert not await prod_only.namespace_matches(attrs(PODS, namespace="dev"), reader)
    with pytest.raises(StatusError, match='namespaces "gone" not found'):
        await prod_only.namespace_matches(attrs(PODS, namespace="gone"), reader)
    # cluster-scoped requests other than Namespaces are never exempted
    assert await prod_only.namespace_matches(attrs(NODES), reader)
    # a Namespace being created or updated is judged by its new labels...
    new_ns = attrs(NAMESPACES, CREATE, obj=labelled(env="prod"), name="fresh")
    assert await prod_only.namespace_matches(new_ns, reader)
    relabel = attrs(NAMESPACES, UPDATE, obj=labelled(env="dev"), name="prod")
    assert not await prod_only.namespace_matches(relabel, reader)
    # ...and a deleted one by the stored labels
    assert await prod_only.namespace_matches(attrs(NAMESPACES, DELETE, name="prod"), reader)
    assert reader.reads == ["prod", "dev", "gone", "prod"]
    everything = Selectors.from_dict({"namespaceSelector": {}})
    assert await everything.namespace_matches(attrs(PODS, namespace="gone"), reader)


def test_object_selector_matches_the_new_or_the_old_object() -> None:
    sel = Selectors.from_dict(
        {"objectSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}}
    )
    assert sel.object_matches(attrs(PODS, obj=labelled(tier="web")))
    assert not sel.object_matches(attrs(PODS, obj=labelled(app="a")))
    assert sel.object_matches(attrs(PODS, UPDATE, obj=labelled(), old=labelled(tier="web")))
    assert not sel.object_matches(attrs(PODS, DELETE))
    broken = Selectors.from_dict({"objectSelector": {"matchExpressions": [{"key": "k"}]}})
    assert not broken.object_matches(attrs(PODS, obj=labelled(k="v")))


def test_match_conditions_false_beats_errors() -> None:
    def evaluate(*exprs: str, obj: JSON | None = None) -> tuple[bool, str]:
        conds = MatchConditions([{"name": f"c{i}", "expression": e} for i, e in enumerate(exprs)])
        req = admission_request(attrs(PODS, obj=obj or labelled(app="a")))
        got = conds.evaluate(activation(req))
        return got.matched, got.error

    assert evaluate(
        "object.metadata.labels.app == 'a'", "request.userInfo.username == 'alice'"
    ) == (
        True,
        "",
    )
    assert evaluate("object.metadata.labels.app == 'b'", "object.nope.x") == (False, "")
    matched, error = evaluate("object.spec.x == 1")
    assert not matched and error.startswith("expression 'c0' resulted in error: ")
    matched, error = evaluate("object.metadata.name")
    assert not matched and "non-boolean" in error
    assert MatchConditions(None).evaluate(activation({})).matched
    assert not MatchConditions(None)


def test_admission_request_shape() -> None:
    pod = labelled(app="a")
    a = attrs(PODS, CREATE, obj=pod)
    a.dry_run = True
    req = admission_request(a)
    assert req == {
        "uid": a.request_uid,
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
        "name": "x",
        "namespace": "ns",
        "operation": "CREATE",
        "userInfo": {"username": "alice", "groups": ["devs", "system:authenticated"]},
        "object": pod,
        "oldObject": None,
        "dryRun": True,
        "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "dryRun": ["All"]},
    }
    assert admission_request(a)["uid"] == req["uid"]  # one uid per request


def test_admission_request_for_subresources_equivalents_and_connect() -> None:
    scale = {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "x"}}
    req = admission_request(attrs(DEPLOYMENTS, UPDATE, "scale", obj=scale))
    assert req["kind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert req["subResource"] == req["requestSubResource"] == "scale"
    assert req["options"]["kind"] == "UpdateOptions"

    req = admission_request(attrs(HPA_V1), HPA_V2)
    assert req["resource"]["version"] == "v2" and req["requestResource"]["version"] == "v1"

    a = attrs(PODS, CONNECT, "exec")
    a.options = {"command": "ls", "stdin": "true", "container": "c"}
    req = admission_request(a)
    assert req["kind"]["kind"] == "PodExecOptions" and req["options"] is None
    assert req["object"] == {
        "kind": "PodExecOptions",
        "apiVersion": "v1",
        "command": ["ls"],
        "stdin": True,
        "container": "c",
    }
