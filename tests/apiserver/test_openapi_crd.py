"""Custom resources in the OpenAPI documents, as kubectl and upstream's builder see them.

The first part calls the pure builders with a CRD dict (apiextensions' builder tests:
the definition's shape in v3 and what v2 strips); the second starts a real server and
checks what a user checks: ``kubectl explain`` of a custom resource and its fields, the
/openapi/v3 index and /openapi/v2 following the CRD as it is created and deleted, and
kubectl's client-side validation (which reads /openapi/v2 as protobuf) naming the
custom type.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from pyk8s.api.registry import ALL_VERBS, REGISTRY, Registry, Resource
from pyk8s.apiserver import openapi
from tests.integration.conftest import KUBECTL, Kubectl, Server, free_port

JSON = dict[str, Any]

GROUP = "stable.example.com"
KIND_DEF = "com.example.stable.v1.CronTab"
LIST_DEF = "com.example.stable.v1.CronTabList"
OBJECT_META_V3 = {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]

SCHEMA: JSON = {
    "type": "object",
    "description": "CronTab runs a command on a schedule.",
    "properties": {
        "spec": {
            "type": "object",
            "description": "CronTabSpec is the desired schedule.",
            "required": ["cronSpec", "note"],
            "properties": {
                "cronSpec": {
                    "type": "string",
                    "description": "The schedule, in cron format.",
                    "pattern": "^(\\S+ ){4}\\S+$",
                },
                "replicas": {"type": "integer", "minimum": 0, "default": 1},
                "port": {"x-kubernetes-int-or-string": True},
                "note": {"type": "string", "nullable": True},
                "mode": {"type": "string", "oneOf": [{"pattern": "a"}, {"pattern": "b"}]},
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "x-kubernetes-preserve-unknown-fields": True,
                },
                "labels": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "x-kubernetes-map-type": "granular",
                },
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
            "x-kubernetes-validations": [
                {"rule": "self.replicas >= 0", "message": "replicas must not be negative"}
            ],
        },
        "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
    },
}


def crontab_crd(
    schema: JSON | None = None, scope: str = "Namespaced", versions: tuple[str, ...] = ("v1",)
) -> JSON:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"crontabs.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": scope,
            "names": {
                "plural": "crontabs",
                "singular": "crontab",
                "kind": "CronTab",
                "listKind": "CronTabList",
                "shortNames": ["ct"],
            },
            "versions": [
                {
                    "name": v,
                    "served": True,
                    "storage": i == 0,
                    "schema": {"openAPIV3Schema": copy.deepcopy(schema or SCHEMA)},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                        },
                    },
                    "selectableFields": [{"jsonPath": ".spec.cronSpec"}],
                }
                for i, v in enumerate(versions)
            ],
        },
    }


def crontab_resource(version: str = "v1", namespaced: bool = True) -> Resource:
    return Resource(
        GROUP,
        version,
        "CronTab",
        "crontabs",
        namespaced,
        short_names=("ct",),
        subresources=("status", "scale"),
        verbs=ALL_VERBS,
    )


def _walk(node: Any) -> Iterator[JSON]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


# ------------------------------------------------------------------------ definitions


def test_v3_definition_is_the_structural_schema_with_kube_fields() -> None:
    defs = openapi.crd_definitions(crontab_crd(), "v1", v2=False)
    assert set(defs) == {KIND_DEF, LIST_DEF}
    kind = defs[KIND_DEF]
    assert kind["type"] == "object"
    assert kind["description"] == "CronTab runs a command on a schedule."
    assert kind["x-kubernetes-group-version-kind"] == [
        {"group": GROUP, "kind": "CronTab", "version": "v1"}
    ]
    assert kind["x-kubernetes-selectable-fields"] == [{"fieldPath": "spec.cronSpec"}]
    props = kind["properties"]
    assert set(props) == {"apiVersion", "kind", "metadata", "spec", "status"}
    assert props["metadata"]["allOf"] == [OBJECT_META_V3]
    assert props["metadata"]["description"].startswith("Standard object's metadata.")
    assert props["apiVersion"]["type"] == props["kind"]["type"] == "string"
    spec = props["spec"]
    assert spec["description"] == "CronTabSpec is the desired schedule."
    assert spec["required"] == ["cronSpec", "note"]
    assert (
        spec["x-kubernetes-validations"] == SCHEMA["properties"]["spec"]["x-kubernetes-validations"]
    )
    fields = spec["properties"]
    assert fields["cronSpec"] == SCHEMA["properties"]["spec"]["properties"]["cronSpec"]
    assert fields["replicas"] == {"type": "integer", "minimum": 0, "default": 1}
    # v3 keeps what v3 can say: nullable, junctors, and int-or-string's two types
    assert fields["note"] == {"type": "string", "nullable": True}
    assert fields["mode"]["oneOf"] == [{"pattern": "a"}, {"pattern": "b"}]
    assert fields["port"] == {"x-kubernetes-int-or-string": True, "anyOf": INT_OR_STRING}
    assert fields["labels"]["additionalProperties"] == {"type": "string"}
    assert fields["labels"]["x-kubernetes-map-type"] == "granular"
    # an embedded resource gets its own apiVersion, kind and metadata
    template = fields["template"]
    assert set(template["properties"]) == {"apiVersion", "kind", "metadata"}
    assert template["properties"]["metadata"]["allOf"] == [OBJECT_META_V3]
    assert template["required"] == ["kind", "apiVersion"]


def test_list_definition() -> None:
    listed = openapi.crd_definitions(crontab_crd(), "v1", v2=False)[LIST_DEF]
    assert listed["description"] == "CronTabList is a list of CronTab"
    assert listed["required"] == ["items"]
    assert listed["x-kubernetes-group-version-kind"] == [
        {"group": GROUP, "kind": "CronTabList", "version": "v1"}
    ]
    items = listed["properties"]["items"]
    assert items["type"] == "array"
    assert items["items"] == {"$ref": f"#/components/schemas/{KIND_DEF}"}
    assert items["description"].startswith("List of crontabs.")
    assert listed["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"}
    ]
    v2 = openapi.crd_definitions(crontab_crd(), "v1", v2=True)[LIST_DEF]
    assert v2["properties"]["items"]["items"] == {"$ref": f"#/definitions/{KIND_DEF}"}
    assert v2["properties"]["metadata"]["$ref"] == (
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"
    )


def test_int_or_string_unfolds_as_upstream() -> None:
    schema = {
        "type": "object",
        "properties": {
            # already in one of the two shapes upstream recognises: left alone
            "a": {"x-kubernetes-int-or-string": True, "anyOf": INT_OR_STRING},
            "b": {"x-kubernetes-int-or-string": True, "allOf": [{"anyOf": INT_OR_STRING}]},
            # another anyOf: the two types go first into allOf
            "c": {"x-kubernetes-int-or-string": True, "anyOf": [{"minimum": 42}]},
        },
    }
    props = openapi.crd_definitions(crontab_crd(schema), "v1", v2=False)[KIND_DEF]["properties"]
    assert props["a"] == {"x-kubernetes-int-or-string": True, "anyOf": INT_OR_STRING}
    assert props["b"] == {"x-kubernetes-int-or-string": True, "allOf": [{"anyOf": INT_OR_STRING}]}
    assert props["c"] == {
        "x-kubernetes-int-or-string": True,
        "anyOf": [{"minimum": 42}],
        "allOf": [{"anyOf": INT_OR_STRING}],
    }


def test_v2_strips_what_swagger_cannot_express() -> None:
    kind = openapi.crd_definitions(crontab_crd(), "v1", v2=True)[KIND_DEF]
    props = kind["properties"]
    assert props["metadata"] == {
        "$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "description": props["metadata"]["description"],
    }
    spec = props["spec"]
    fields = spec["properties"]
    assert fields["mode"] == {"type": "string"}  # oneOf gone
    assert fields["note"] == {}  # nullable: no type at all
    assert spec["required"] == ["cronSpec"]  # and no longer required
    assert fields["port"] == {"x-kubernetes-int-or-string": True}
    assert fields["replicas"] == {"type": "integer", "minimum": 0}  # defaults pruned
    # preserve-unknown-fields: no type, no properties (kubectl would refuse the rest)
    assert fields["extra"] == {"x-kubernetes-preserve-unknown-fields": True}
    assert fields["template"] == {
        "x-kubernetes-embedded-resource": True,
        "x-kubernetes-preserve-unknown-fields": True,
    }
    for node in _walk(kind):
        assert not {"nullable", "oneOf", "anyOf", "allOf", "not", "default"} & set(node)
    openapi.encode_v2_protobuf({"definitions": {KIND_DEF: kind}})  # every keyword encodes


def test_root_that_preserves_unknown_fields_is_a_bare_object_in_v2() -> None:
    schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    gvk = [{"group": GROUP, "kind": "CronTab", "version": "v1"}]
    crd = crontab_crd(schema)
    crd["spec"]["versions"][0].pop("selectableFields")
    v2 = openapi.crd_definitions(crd, "v1", v2=True)[KIND_DEF]
    assert v2 == {"type": "object", "x-kubernetes-group-version-kind": gvk}
    v3 = openapi.crd_definitions(crd, "v1", v2=False)[KIND_DEF]
    assert set(v3["properties"]) == {"apiVersion", "kind", "metadata"}


def test_schema_with_invalid_types_is_a_bare_object() -> None:
    schema = {"type": "object", "properties": {"spec": {"type": "bug"}}}
    for v2 in (False, True):
        kind = openapi.crd_definitions(crontab_crd(schema), "v1", v2=v2)[KIND_DEF]
        assert set(kind) == {
            "type",
            "x-kubernetes-group-version-kind",
            "x-kubernetes-selectable-fields",
        }


def test_only_structural_keywords_are_kept() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "string", "example": "x", "title": "A", "enum": ["x", "y"]},
            "b": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
        },
    }
    props = openapi.crd_definitions(crontab_crd(schema), "v1", v2=False)[KIND_DEF]["properties"]
    assert props["a"] == {"type": "string", "title": "A", "enum": ["x", "y"]}
    assert props["b"] == {
        "type": "array",
        "items": {"type": "string"},
        "x-kubernetes-list-type": "set",
    }


def test_definition_name_reverses_the_group() -> None:
    assert openapi.definition_name("stable.example.com", "v1", "CronTab") == KIND_DEF
    assert openapi.definition_name("example", "v1beta1", "Foo") == "example.v1beta1.Foo"


# ----------------------------------------------------------------------------- documents


def _registry(*resources: Resource) -> Registry:
    return Registry([*REGISTRY, *resources])


def _crds(*resources: Resource, crd: JSON | None = None) -> dict[tuple[str, str, str], JSON]:
    return {(r.group, r.version, r.plural): crd or crontab_crd() for r in resources}


def test_v3_document_of_the_group_version() -> None:
    r = crontab_resource()
    docs = openapi.build_v3(_registry(r), crds=_crds(r))
    assert f"apis/{GROUP}/v1" in docs
    assert f"apis/{GROUP}" not in docs  # apiextensions serves no group document
    doc = docs[f"apis/{GROUP}/v1"]
    assert doc["info"] == {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"}
    base = f"/apis/{GROUP}/v1"
    assert set(doc["paths"]) == {
        f"{base}/crontabs",
        f"{base}/namespaces/{{namespace}}/crontabs",
        f"{base}/namespaces/{{namespace}}/crontabs/{{name}}",
        f"{base}/namespaces/{{namespace}}/crontabs/{{name}}/status",
        f"{base}/namespaces/{{namespace}}/crontabs/{{name}}/scale",
    }
    schemas = doc["components"]["schemas"]
    assert {KIND_DEF, LIST_DEF, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"} <= set(schemas)
    assert "io.k8s.api.autoscaling.v1.Scale" in schemas
    for node in _walk(doc):
        ref = node.get("$ref")
        if isinstance(ref, str):
            assert ref.removeprefix("#/components/schemas/") in schemas, ref

    # kubectl explain: the GVK of the list operation, then the schema carrying it
    listing = doc["paths"][f"{base}/crontabs"]["get"]
    gvk = {"group": GROUP, "kind": "CronTab", "version": "v1"}
    assert listing["x-kubernetes-group-version-kind"] == gvk
    assert listing["operationId"] == "listStableExampleComV1CronTabForAllNamespaces"
    assert [
        n for n, s in schemas.items() if gvk in s.get("x-kubernetes-group-version-kind", [])
    ] == [KIND_DEF]


def test_operations_are_apiextensions_routes() -> None:
    r = crontab_resource()
    doc = openapi.build_v3(_registry(r), crds=_crds(r))[f"apis/{GROUP}/v1"]
    item = doc["paths"][f"/apis/{GROUP}/v1/namespaces/{{namespace}}/crontabs/{{name}}"]
    assert item["get"]["operationId"] == "readStableExampleComV1NamespacedCronTab"
    assert item["get"]["description"] == "read the specified CronTab"
    assert item["delete"]["description"] == "delete a CronTab"
    patch = item["patch"]
    assert patch["description"] == "partially update the specified CronTab"
    # apply's probe: no strategic merge patch for custom resources; the validation probe
    assert set(patch["requestBody"]["content"]) == {
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
    }
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    assert set(patch["responses"]) == {"200", "401"}
    collection = doc["paths"][f"/apis/{GROUP}/v1/namespaces/{{namespace}}/crontabs"]
    assert collection["post"]["description"] == "create a CronTab"
    assert set(collection["post"]["requestBody"]["content"]) == {
        "application/json",
        "application/yaml",
    }
    assert collection["delete"]["x-kubernetes-action"] == "deletecollection"
    status = doc["paths"][f"/apis/{GROUP}/v1/namespaces/{{namespace}}/crontabs/{{name}}/status"]
    assert status["put"]["operationId"] == "replaceStableExampleComV1NamespacedCronTabStatus"
    assert status["put"]["description"] == "replace status of the specified CronTab"
    scale = doc["paths"][f"/apis/{GROUP}/v1/namespaces/{{namespace}}/crontabs/{{name}}/scale"]
    assert scale["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/io.k8s.api.autoscaling.v1.Scale"
    }
    assert scale["get"]["x-kubernetes-group-version-kind"]["kind"] == "CronTab"
    assert not any("/watch/" in p for p in doc["paths"])


def test_cluster_scoped_custom_resource() -> None:
    r = crontab_resource(namespaced=False)
    crd = crontab_crd(scope="Cluster")
    doc = openapi.build_v3(_registry(r), crds=_crds(r, crd=crd))[f"apis/{GROUP}/v1"]
    assert f"/apis/{GROUP}/v1/crontabs/{{name}}" in doc["paths"]
    create = doc["paths"][f"/apis/{GROUP}/v1/crontabs"]["post"]
    assert create["operationId"] == "createStableExampleComV1CronTab"
    assert not any("{namespace}" in p for p in doc["paths"])


def test_every_served_version_has_its_document() -> None:
    v1, v1beta1 = crontab_resource("v1"), crontab_resource("v1beta1")
    crd = crontab_crd(versions=("v1", "v1beta1"))
    docs = openapi.build_v3(_registry(v1, v1beta1), crds=_crds(v1, v1beta1, crd=crd))
    beta = docs[f"apis/{GROUP}/v1beta1"]["components"]["schemas"]
    assert "com.example.stable.v1beta1.CronTab" in beta
    assert KIND_DEF not in beta
    assert KIND_DEF in docs[f"apis/{GROUP}/v1"]["components"]["schemas"]


def test_v2_document_has_the_custom_resource() -> None:
    r = crontab_resource()
    v2 = openapi.build_v2(_registry(r), crds=_crds(r))
    assert {KIND_DEF, LIST_DEF} <= set(v2["definitions"])
    assert v2["info"]["title"] == "Kubernetes"
    item = v2["paths"][f"/apis/{GROUP}/v1/namespaces/{{namespace}}/crontabs/{{name}}"]
    assert item["patch"]["consumes"] == [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
    ]
    assert item["get"]["responses"]["200"]["schema"] == {"$ref": f"#/definitions/{KIND_DEF}"}
    for node in _walk(v2):
        ref = node.get("$ref")
        if isinstance(ref, str):
            assert ref.removeprefix("#/definitions/") in v2["definitions"], ref
    openapi.encode_v2_protobuf(v2)


def test_documents_follow_the_registry_generation() -> None:
    registry = Registry([r for r in REGISTRY if r.group == "apps"])
    r = crontab_resource()
    served: dict[Resource, JSON] = {}

    def lookup(res: Resource) -> JSON | None:
        return served.get(res)

    def index() -> set[str]:
        docs = openapi.documents(registry, lookup)
        return set(orjson.loads(docs.v3_index().data)["paths"])

    assert f"apis/{GROUP}/v1" not in index()
    served[r] = crontab_crd()
    registry.add(r)  # what ResourceHandlers.install does once the strategy is in place
    assert f"apis/{GROUP}/v1" in index()
    assert (
        KIND_DEF in orjson.loads(openapi.documents(registry, lookup).v2_json().data)["definitions"]
    )
    registry.remove(GROUP, "v1", "crontabs")
    served.clear()
    assert f"apis/{GROUP}/v1" not in index()
    assert (
        KIND_DEF
        not in orjson.loads(openapi.documents(registry, lookup).v2_json().data)["definitions"]
    )


async def test_serve_answers_with_the_custom_resource() -> None:
    registry = Registry([r for r in REGISTRY if r.group == "apps"])
    r = crontab_resource()
    registry.add(r)
    crd = crontab_crd()
    path = f"/openapi/v3/apis/{GROUP}/v1"
    resp = await openapi.serve(
        make_mocked_request("GET", path),
        registry,
        tuple(p for p in path.split("/") if p),
        lambda res: crd if res.group == GROUP else None,
    )
    assert isinstance(resp, web.Response) and resp.status == 200
    assert isinstance(resp.body, bytes)
    assert KIND_DEF in orjson.loads(resp.body)["components"]["schemas"]


# ------------------------------------------------------------------ a real server, kubectl

CRD_YAML_SCHEMA: JSON = {
    "type": "object",
    "description": "CronTab runs a command on a schedule.",
    "properties": {
        "spec": {
            "type": "object",
            "description": "CronTabSpec is the desired schedule.",
            "required": ["cronSpec"],
            "properties": {
                "cronSpec": {"type": "string", "description": "The schedule, in cron format."},
                "image": {"type": "string", "description": "The container image to run."},
                "replicas": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "How many copies run at once.",
                },
            },
        },
        "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
    },
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not os.path.exists(KUBECTL):
        pytest.skip(f"kubectl is not installed at {KUBECTL}")
    base = tmp_path_factory.mktemp("openapi-crd")
    srv = Server(base / "data", free_port()).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def kubectl(server: Server) -> Kubectl:
    return Kubectl(server.kubeconfig)


def _eventually(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _v3_index(kubectl: Kubectl) -> set[str]:
    return set(json.loads(kubectl("get", "--raw", "/openapi/v3"))["paths"])


def test_kubectl_explain_and_the_documents_follow_the_crd(kubectl: Kubectl, tmp_path: Path) -> None:
    crd = crontab_crd(CRD_YAML_SCHEMA)
    crd["spec"]["versions"][0].pop("selectableFields")
    kubectl("apply", "-f", "-", input=json.dumps(crd))
    kubectl("wait", "--for=condition=Established", f"crd/crontabs.{GROUP}", "--timeout=30s")

    explained = kubectl("explain", "crontabs")
    assert "KIND:       CronTab" in explained
    assert "VERSION:    v1" in explained
    assert "CronTab runs a command on a schedule." in explained
    assert "spec\t<Object>" in explained
    assert "metadata\t<ObjectMeta>" in explained
    assert "CronTabSpec is the desired schedule." in explained

    field = kubectl("explain", "crontabs.spec.cronSpec")
    assert "FIELD: cronSpec <string>" in field
    assert "The schedule, in cron format." in field
    spec = kubectl("explain", "ct.spec")  # short names resolve too
    assert "cronSpec\t<string> -required-" in spec
    assert "replicas\t<integer>" in spec and "How many copies run at once." in spec
    labels = kubectl("explain", "crontabs.metadata.labels")
    assert "FIELD: labels <map[string]string>" in labels

    assert f"apis/{GROUP}/v1" in _v3_index(kubectl)
    v3 = json.loads(kubectl("get", "--raw", f"/openapi/v3/apis/{GROUP}/v1"))
    assert v3["components"]["schemas"][KIND_DEF]["properties"]["spec"]["description"] == (
        "CronTabSpec is the desired schedule."
    )
    v2 = json.loads(kubectl("get", "--raw", "/openapi/v2"))
    assert v2["definitions"][KIND_DEF]["properties"]["spec"]["required"] == ["cronSpec"]

    # client-side validation (a List) reads /openapi/v2 as protobuf and names the type
    listed = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": f"{GROUP}/v1",
                "kind": "CronTab",
                "metadata": {"name": "listed", "namespace": "default"},
                "spec": {"cronSpec": "* * * * */5", "wrong": 2},
            }
        ],
    }
    out = kubectl.run("apply", "--validate=true", "-f", "-", input=json.dumps(listed), check=False)
    assert out.returncode != 0
    assert f'unknown field "wrong" in {KIND_DEF}.spec' in out.stderr

    # apply of a custom resource: merge patch (no strategic merge for custom types)
    cr: JSON = {
        "apiVersion": f"{GROUP}/v1",
        "kind": "CronTab",
        "metadata": {"name": "nightly", "namespace": "default"},
        "spec": {"cronSpec": "0 3 * * *", "image": "a"},
    }
    kubectl("apply", "-f", "-", input=json.dumps(cr))
    cr["spec"]["image"] = "b"
    kubectl("apply", "-f", "-", input=json.dumps(cr))
    assert kubectl("get", "ct", "nightly", "-n", "default", "-o", "jsonpath={.spec.image}") == "b"

    kubectl("delete", "crd", f"crontabs.{GROUP}", "--timeout=60s")

    def gone() -> None:
        assert f"apis/{GROUP}/v1" not in _v3_index(kubectl)
        assert KIND_DEF not in json.loads(kubectl("get", "--raw", "/openapi/v2"))["definitions"]

    _eventually(gone)
    missing = kubectl.run("explain", "crontabs", check=False)
    assert missing.returncode != 0


def test_python_client_reads_the_custom_definition(server: Server, kubectl: Kubectl) -> None:
    from kubernetes import config

    crd = crontab_crd(CRD_YAML_SCHEMA)
    crd["metadata"]["name"] = f"widgets.{GROUP}"
    crd["spec"]["names"] = {"plural": "widgets", "singular": "widget", "kind": "Widget"}
    kubectl("apply", "-f", "-", input=json.dumps(crd))
    kubectl("wait", "--for=condition=Established", f"crd/widgets.{GROUP}", "--timeout=30s")
    try:
        api = config.new_client_from_config(str(server.kubeconfig))  # type: ignore[no-untyped-call]
        host = api.configuration.host

        def get(path: str) -> Any:
            resp = api.call_api("GET", host + path, {"Accept": "application/json"})
            assert resp.status == 200
            return json.loads(resp.read())

        url = get("/openapi/v3")["paths"][f"apis/{GROUP}/v1"]["serverRelativeURL"]
        doc = get(url)
        schema = doc["components"]["schemas"]["com.example.stable.v1.Widget"]
        assert schema["x-kubernetes-group-version-kind"] == [
            {"group": GROUP, "kind": "Widget", "version": "v1"}
        ]
        listed = doc["components"]["schemas"]["com.example.stable.v1.WidgetList"]
        assert listed["required"] == ["items"]
    finally:
        kubectl("delete", "crd", f"widgets.{GROUP}", "--timeout=60s")
