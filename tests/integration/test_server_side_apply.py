"""Server-side apply and managed fields, driven the way users drive them: the real kubectl
v1.32 (``apply --server-side``, ``--force-conflicts``, client-side to server-side
takeover, ``diff``, ``--show-managed-fields``), the official Python client (the dynamic
client's ``server_side_apply`` and a raw apply patch) and plain HTTPS for the answers
upstream gives to bad input."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import yaml

from tests.integration.conftest import Kubectl, RawClient
from tests.integration.crd_fixtures import crd, install, version

JSON = dict[str, Any]


def deployment(name: str, *, replicas: int = 2, ports: tuple[int, ...] = (80,)) -> JSON:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1",
                            "ports": [{"containerPort": p} for p in ports],
                        }
                    ]
                },
            },
        },
    }


def manifest(*docs: JSON) -> str:
    return yaml.safe_dump_all(docs)


def managers(obj: JSON) -> list[tuple[str, str, str]]:
    """(manager, operation, subresource) of each managedFields entry, in order."""
    return [
        (e["manager"], e["operation"], e.get("subresource", ""))
        for e in obj["metadata"].get("managedFields") or []
    ]


def entry(obj: JSON, manager: str, operation: str = "Apply") -> JSON:
    for e in obj["metadata"]["managedFields"]:
        if e["manager"] == manager and e["operation"] == operation:
            return dict(e)
    raise AssertionError(f"no {manager}/{operation} entry in {managers(obj)}")


@pytest.fixture(scope="module")
def widget_crd(kubectl: Kubectl) -> JSON:
    group = f"ssa{uuid.uuid4().hex[:6]}.example.com"
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "size": {"type": "integer"},
                    "color": {"type": "string"},
                    "parts": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {
                                "name": {"type": "string"},
                                "count": {"type": "integer"},
                            },
                        },
                    },
                },
            },
            "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
        },
    }
    definition = crd(group, "Widget", versions=[version("v1", schema, status=True)])
    install(kubectl, definition)
    return definition


def widget(definition: JSON, name: str, spec: JSON) -> JSON:
    return {
        "apiVersion": f"{definition['spec']['group']}/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": spec,
    }


def test_multi_document_apply_records_the_applier(
    kubectl: Kubectl, ns: str, widget_crd: JSON
) -> None:
    docs = [
        deployment("web"),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1"}},
        widget(widget_crd, "w1", {"size": 3, "parts": [{"name": "a", "count": 1}]}),
    ]
    out = kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=manifest(*docs))
    plural = widget_crd["metadata"]["name"]
    assert out.splitlines() == [
        "deployment.apps/web serverside-applied",
        "service/web serverside-applied",
        "configmap/cfg serverside-applied",
        f"widget.{widget_crd['spec']['group']}/w1 serverside-applied",
    ]
    dep = kubectl.json("get", "deploy", "web", "-n", ns, "--show-managed-fields")
    applied = entry(dep, "kubectl")
    assert applied["apiVersion"] == "apps/v1"
    assert applied["fieldsType"] == "FieldsV1"
    container = applied["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert container == {
        'k:{"name":"web"}': {
            ".": {},
            "f:image": {},
            "f:name": {},
            "f:ports": {
                'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}
            },
        }
    }
    # defaulted fields belong to nobody
    assert "f:imagePullPolicy" not in container['k:{"name":"web"}']
    cm = kubectl.json("get", "cm", "cfg", "-n", ns, "--show-managed-fields")
    assert entry(cm, "kubectl")["fieldsV1"] == {"f:data": {"f:a": {}}}
    w = kubectl.json("get", plural, "w1", "-n", ns, "--show-managed-fields")
    assert entry(w, "kubectl")["fieldsV1"] == {
        "f:spec": {
            "f:parts": {'k:{"name":"a"}': {".": {}, "f:count": {}, "f:name": {}}},
            "f:size": {},
        }
    }
    # without --show-managed-fields kubectl hides them, as upstream's kubectl does
    assert "managedFields" not in kubectl("get", "deploy", "web", "-n", ns, "-o", "yaml")
    shown = kubectl("get", "deploy", "web", "-n", ns, "-o", "yaml", "--show-managed-fields")
    assert "manager: kubectl\n    operation: Apply" in shown


def test_reapply_without_a_port_removes_it(kubectl: Kubectl, ns: str) -> None:
    kubectl(
        "apply",
        "--server-side",
        "-n",
        ns,
        "-f",
        "-",
        input=manifest(deployment("ports", ports=(80, 443))),
    )
    kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=manifest(deployment("ports")))
    dep = kubectl.json("get", "deploy", "ports", "-n", ns)
    assert dep["spec"]["template"]["spec"]["containers"][0]["ports"] == [
        {"containerPort": 80, "protocol": "TCP"}
    ]


def test_two_managers_race_on_replicas(kubectl: Kubectl, ns: str) -> None:
    kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=manifest(deployment("race")))
    other = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "race"},
        "spec": {"replicas": 5},
    }
    refused = kubectl.run(
        "apply",
        "--server-side",
        "--field-manager=autoscaler",
        "-n",
        ns,
        "-f",
        "-",
        input=manifest(other),
        check=False,
    )
    assert refused.returncode == 1
    assert 'Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas' in refused.stderr
    assert kubectl.json("get", "deploy", "race", "-n", ns)["spec"]["replicas"] == 2
    kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=autoscaler",
        "-n",
        ns,
        "-f",
        "-",
        input=manifest(other),
    )
    dep = kubectl.json("get", "deploy", "race", "-n", ns, "--show-managed-fields")
    assert dep["spec"]["replicas"] == 5
    assert entry(dep, "autoscaler")["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in entry(dep, "kubectl")["fieldsV1"]["f:spec"]
    # the first applier now conflicts with the new owner, naming it
    again = kubectl.run(
        "apply",
        "--server-side",
        "-n",
        ns,
        "-f",
        "-",
        input=manifest(deployment("race")),
        check=False,
    )
    assert 'conflict with "autoscaler": .spec.replicas' in again.stderr


def test_update_managers_conflict_with_their_version(
    kubectl: Kubectl, ns: str, raw: RawClient
) -> None:
    kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=manifest(deployment("scaled")))
    kubectl("scale", "deploy", "scaled", "-n", ns, "--replicas=3")
    dep = kubectl.json("get", "deploy", "scaled", "-n", ns, "--show-managed-fields")
    assert ("kubectl", "Update", "scale") in managers(dep)
    body = json.dumps(deployment("scaled", replicas=4)).encode()
    r = raw(
        "PATCH",
        f"/apis/apps/v1/namespaces/{ns}/deployments/scaled?fieldManager=kubectl",
        body,
        "application/apply-patch+yaml",
    )
    assert r.status == 409
    status = r.json()
    assert status["reason"] == "Conflict"
    assert status["message"] == (
        'Apply failed with 1 conflict: conflict with "kubectl" with subresource "scale" '
        "using apps/v1: .spec.replicas"
    )
    assert status["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "kubectl" with subresource "scale" using apps/v1',
            "field": ".spec.replicas",
        }
    ]


def test_client_side_then_server_side_takeover(kubectl: Kubectl, ns: str) -> None:
    kubectl("apply", "-n", ns, "-f", "-", input=manifest(deployment("csa", replicas=1)))
    dep = kubectl.json("get", "deploy", "csa", "-n", ns, "--show-managed-fields")
    assert managers(dep) == [("kubectl-client-side-apply", "Update", "")]
    csa = entry(dep, "kubectl-client-side-apply", "Update")["fieldsV1"]
    # an Update owns what it set, defaults included, with "." on maps it created
    assert csa["f:metadata"]["f:labels"] == {".": {}, "f:app": {}}
    assert (
        "f:imagePullPolicy"
        in csa["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    )
    kubectl(
        "apply", "--server-side", "-n", ns, "-f", "-", input=manifest(deployment("csa", replicas=3))
    )
    dep = kubectl.json("get", "deploy", "csa", "-n", ns, "--show-managed-fields")
    assert dep["spec"]["replicas"] == 3
    names = [m for m, _op, _sub in managers(dep)]
    assert "kubectl-client-side-apply" not in names
    assert "f:replicas" in entry(dep, "kubectl")["fieldsV1"]["f:spec"]
    # the last-applied annotation follows what was applied server-side
    last = json.loads(
        dep["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    )
    assert last["spec"]["replicas"] == 3
    # and back: a client-side apply takes over what it changes
    kubectl("apply", "-n", ns, "-f", "-", input=manifest(deployment("csa", replicas=4)))
    dep = kubectl.json("get", "deploy", "csa", "-n", ns, "--show-managed-fields")
    assert dep["spec"]["replicas"] == 4
    assert entry(dep, "kubectl-client-side-apply", "Update")["fieldsV1"]["f:spec"] == {
        "f:replicas": {}
    }
    assert "f:replicas" not in entry(dep, "kubectl")["fieldsV1"]["f:spec"]


@pytest.mark.parametrize("mode", ["--server-side", "--server-side=false"])
def test_diff_shows_only_what_would_change(kubectl: Kubectl, ns: str, mode: str) -> None:
    name = "diff-ssa" if mode == "--server-side" else "diff-csa"
    kubectl("apply", mode, "-n", ns, "-f", "-", input=manifest(deployment(name)))
    same = kubectl.run("diff", mode, "-n", ns, "-f", "-", input=manifest(deployment(name)))
    assert same.returncode == 0, same.stdout + same.stderr
    assert same.stdout == ""
    changed = kubectl.run(
        "diff", mode, "-n", ns, "-f", "-", input=manifest(deployment(name, replicas=7)), check=False
    )
    assert changed.returncode == 1, changed.stderr
    lines = [
        line
        for line in changed.stdout.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    if mode == "--server-side":
        # kubectl's own annotation is not there: nothing else moves
        assert lines == ["-  generation: 1", "+  generation: 2", "-  replicas: 2", "+  replicas: 7"]
    else:
        assert lines == ["-  generation: 1", "+  generation: 2", "-  replicas: 2", "+  replicas: 7"]
    # a dry run writes nothing
    assert kubectl.json("get", "deploy", name, "-n", ns)["spec"]["replicas"] == 2


def test_apply_to_a_custom_resource_merges_its_list_map(
    kubectl: Kubectl, ns: str, widget_crd: JSON
) -> None:
    plural = widget_crd["metadata"]["name"]
    first = widget(widget_crd, "w2", {"size": 1, "parts": [{"name": "a", "count": 1}]})
    kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=manifest(first))
    second = widget(widget_crd, "w2", {"parts": [{"name": "b", "count": 2}]})
    kubectl(
        "apply",
        "--server-side",
        "--field-manager=other",
        "-n",
        ns,
        "-f",
        "-",
        input=manifest(second),
    )
    w = kubectl.json("get", plural, "w2", "-n", ns)
    assert w["spec"] == {
        "size": 1,
        "parts": [{"name": "a", "count": 1}, {"name": "b", "count": 2}],
    }
    # the first manager drops "a" and size: only what it alone owned goes
    kubectl(
        "apply",
        "--server-side",
        "-n",
        ns,
        "-f",
        "-",
        input=manifest(widget(widget_crd, "w2", {"color": "red"})),
    )
    w = kubectl.json("get", plural, "w2", "-n", ns)
    assert w["spec"] == {"parts": [{"name": "b", "count": 2}], "color": "red"}


def test_apply_to_the_status_subresource(raw: RawClient, ns: str, widget_crd: JSON) -> None:
    group = widget_crd["spec"]["group"]
    plural = widget_crd["spec"]["names"]["plural"]
    base = f"/apis/{group}/v1/namespaces/{ns}/{plural}/w3"
    body = widget(widget_crd, "w3", {"size": 1})
    r = raw(
        "PATCH",
        base + "?fieldManager=me",
        json.dumps(body).encode(),
        "application/apply-patch+yaml",
    )
    assert r.status == 201, r.body
    status = {**body, "status": {"phase": "Ready"}}
    del status["spec"]
    r = raw(
        "PATCH",
        base + "/status?fieldManager=ctrl",
        json.dumps(status).encode(),
        "application/apply-patch+yaml",
    )
    assert r.status == 200, r.body
    got = r.json()
    assert got["status"] == {"phase": "Ready"}
    assert got["spec"] == {"size": 1}
    by = {(e["manager"], e.get("subresource")): e for e in got["metadata"]["managedFields"]}
    assert set(by) == {("me", None), ("ctrl", "status")}
    assert by["ctrl", "status"]["fieldsV1"] == {"f:status": {"f:phase": {}}}
    assert by["me", None]["fieldsV1"] == {"f:spec": {"f:size": {}}}


def test_bad_apply_requests(raw: RawClient, ns: str) -> None:
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/bad"
    body = json.dumps(deployment("bad")).encode()
    wrong = json.dumps({**deployment("bad"), "apiVersion": "apps/v1beta1"}).encode()
    r = raw("PATCH", path + "?fieldManager=me", wrong, "application/apply-patch+yaml")
    assert r.status == 400
    assert r.json()["message"] == (
        "Incorrect version specified in apply patch. Specified patch version: apps/v1beta1, "
        "expected: apps/v1"
    )
    r = raw("PATCH", path + "?fieldManager=me", b"a: [", "application/apply-patch+yaml")
    assert r.status == 400
    assert r.json()["message"].startswith("error decoding YAML:")
    with_managed = deployment("bad")
    with_managed["metadata"]["managedFields"] = [{"manager": "x", "operation": "Apply"}]
    r = raw(
        "PATCH",
        path + "?fieldManager=me",
        json.dumps(with_managed).encode(),
        "application/apply-patch+yaml",
    )
    assert r.status == 400
    assert r.json()["message"] == "metadata.managedFields must be nil"
    r = raw("PATCH", path + "?fieldManager=me&force=true", body, "application/merge-patch+json")
    assert r.status == 422
    assert r.json()["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: '
        "may not be specified for non-apply patch"
    )
    # nothing was written by any of them
    assert raw("GET", path).status == 404


def test_managed_fields_in_a_request_are_honoured(raw: RawClient, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mf"}, "data": {"a": "1"}}
    r = raw("POST", path + "?fieldManager=creator", json.dumps(cm).encode())
    assert r.status == 201
    assert [e["manager"] for e in r.json()["metadata"]["managedFields"]] == ["creator"]
    # the same manager's later updates merge into its one entry
    r = raw(
        "PATCH",
        path + "/mf?fieldManager=creator",
        b'{"data":{"b":"2"}}',
        "application/merge-patch+json",
    )
    entries = r.json()["metadata"]["managedFields"]
    assert len(entries) == 1
    assert entries[0]["fieldsV1"] == {"f:data": {".": {}, "f:a": {}, "f:b": {}}}
    # another manager takes what it changes
    r = raw(
        "PATCH",
        path + "/mf?fieldManager=editor",
        b'{"data":{"a":"9"}}',
        "application/merge-patch+json",
    )
    by = {e["manager"]: e["fieldsV1"] for e in r.json()["metadata"]["managedFields"]}
    assert by == {
        "creator": {"f:data": {".": {}, "f:b": {}}},
        "editor": {"f:data": {"f:a": {}}},
    }
    # an empty list clears them all
    r = raw(
        "PATCH",
        path + "/mf?fieldManager=editor",
        b'{"metadata":{"managedFields":[]}}',
        "application/merge-patch+json",
    )
    assert r.status == 200
    assert "managedFields" not in r.json()["metadata"]


def test_python_client_server_side_apply(api: Any, ns: str, widget_crd: JSON) -> None:
    from kubernetes import dynamic

    client = dynamic.DynamicClient(api)
    deployments = client.resources.get(api_version="apps/v1", kind="Deployment")
    out = deployments.server_side_apply(body=deployment("py"), namespace=ns, field_manager="python")
    assert out.metadata.managedFields[0].manager == "python"
    assert out.spec.replicas == 2
    # a raw apply patch through kubernetes.client on a Deployment and a custom resource
    from kubernetes import client as k8s

    apply_type = "application/apply-patch+yaml"
    patched = k8s.AppsV1Api(api).patch_namespaced_deployment(
        "py",
        ns,
        deployment("py", replicas=4),
        field_manager="python",
        _content_type=apply_type,
    )
    assert patched.spec.replicas == 4
    group = widget_crd["spec"]["group"]
    plural = widget_crd["spec"]["names"]["plural"]
    objects = k8s.CustomObjectsApi(api)
    for size in (9, 10):  # a create (201, which this client reads as None), an update
        data = objects.patch_namespaced_custom_object(
            group,
            "v1",
            ns,
            plural,
            "py",
            widget(widget_crd, "py", {"size": size}),
            field_manager="python",
            _content_type=apply_type,
        )
    assert data["spec"] == {"size": 10}
    assert data["metadata"]["managedFields"][0]["manager"] == "python"


METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


def test_metadata_only_get_list_and_watch(
    raw: RawClient, kubectl: Kubectl, ns: str, widget_crd: JSON
) -> None:
    kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=manifest(deployment("meta")))
    path = f"/apis/apps/v1/namespaces/{ns}/deployments"
    full = raw("GET", f"{path}/meta").json()
    got = raw("GET", f"{path}/meta", headers={"Accept": METADATA})
    assert got.status == 200
    assert got.json() == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": full["metadata"],
    }
    beta = raw("GET", f"{path}/meta", headers={"Accept": METADATA.replace("=v1", "=v1beta1")})
    assert beta.json()["apiVersion"] == "meta.k8s.io/v1beta1"
    listed = raw("GET", path, headers={"Accept": METADATA_LIST}).json()
    assert listed["kind"] == "PartialObjectMetadataList"
    assert listed["apiVersion"] == "meta.k8s.io/v1"
    assert listed["metadata"]["resourceVersion"]
    assert listed["items"] == [
        {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": full["metadata"],
        }
    ]
    # a watch's events carry metadata only (the stream ends with timeoutSeconds)
    watched = raw(
        "GET",
        f"{path}?watch=true&timeoutSeconds=1&resourceVersion=0",
        headers={"Accept": METADATA},
    )
    events = [json.loads(line) for line in watched.body.splitlines()]
    assert events == [
        {
            "type": "ADDED",
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": full["metadata"],
            },
        }
    ]
    # custom resources too
    group = widget_crd["spec"]["group"]
    plural = widget_crd["spec"]["names"]["plural"]
    kubectl(
        "apply",
        "--server-side",
        "-n",
        ns,
        "-f",
        "-",
        input=manifest(widget(widget_crd, "m1", {"size": 1})),
    )
    items = raw(
        "GET", f"/apis/{group}/v1/namespaces/{ns}/{plural}", headers={"Accept": METADATA_LIST}
    ).json()["items"]
    assert [i["metadata"]["name"] for i in items] == ["m1"]
    assert set(items[0]) == {"kind", "apiVersion", "metadata"}
    # the wrong one of the two is 406, as upstream
    wrong = raw("GET", f"{path}/meta", headers={"Accept": METADATA_LIST})
    assert wrong.status == 406
    assert wrong.json()["message"] == (
        "you requested PartialObjectMetadataList, but the requested object is not a list "
        "(*apps.Deployment)"
    )
    wrong = raw("GET", path, headers={"Accept": METADATA})
    assert wrong.status == 406
    assert wrong.json()["reason"] == "NotAcceptable"


def test_apply_to_the_scale_subresource(raw: RawClient, kubectl: Kubectl, ns: str) -> None:
    kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=manifest(deployment("sc")))
    scale = {"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": 6}}
    r = raw(
        "PATCH",
        f"/apis/apps/v1/namespaces/{ns}/deployments/sc/scale?fieldManager=hpa&force=true",
        json.dumps(scale).encode(),
        "application/apply-patch+yaml",
    )
    assert r.status == 200, r.body
    assert r.json()["kind"] == "Scale"
    assert r.json()["spec"] == {"replicas": 6}
    dep = kubectl.json("get", "deploy", "sc", "-n", ns, "--show-managed-fields")
    assert dep["spec"]["replicas"] == 6
    assert entry(dep, "hpa")["subresource"] == "scale"
    assert entry(dep, "hpa")["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    again = kubectl.run(
        "apply",
        "--server-side",
        "-n",
        ns,
        "-f",
        "-",
        input=manifest(deployment("sc", replicas=3)),
        check=False,
    )
    assert 'conflict with "hpa" with subresource "scale": .spec.replicas' in again.stderr


def test_apply_with_a_stale_resource_version_is_409(raw: RawClient, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps/rv?fieldManager=me"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "rv"}, "data": {"a": "1"}}
    first = raw("PATCH", path, json.dumps(cm).encode(), "application/apply-patch+yaml")
    assert first.status == 201
    stale = first.json()["metadata"]["resourceVersion"]
    cm["data"] = {"a": "2"}
    assert raw("PATCH", path, json.dumps(cm).encode(), "application/apply-patch+yaml").status == 200
    cm["metadata"]["resourceVersion"] = stale
    cm["data"] = {"a": "3"}
    r = raw("PATCH", path, json.dumps(cm).encode(), "application/apply-patch+yaml")
    assert r.status == 409
    assert "the object has been modified" in r.json()["message"]
    got = raw("GET", f"/api/v1/namespaces/{ns}/configmaps/rv").json()
    assert got["data"] == {"a": "2"}
