"""The OpenAPI documents, checked the way kubectl reads them.

The builders are pure, so most checks run on the documents directly: kubectl explain's
GVK lookup, the field-validation probe (every PATCH of a kind lists ``fieldValidation``),
apply's strategic-merge-patch probe, references that resolve, and the protobuf form of
/openapi/v2 decoded back field by field. The HTTP tests call ``serve`` with mocked
requests (caching headers, redirects, content negotiation).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import make_mocked_request

from pyk8s.api import errors
from pyk8s.api.registry import REGISTRY, Registry, Resource
from pyk8s.api.schema import schemas
from pyk8s.apiserver import openapi

JSON = dict[str, Any]

METHODS = ("get", "put", "post", "delete", "options", "head", "patch")


@pytest.fixture(scope="module")
def v3() -> dict[str, JSON]:
    return openapi.build_v3(REGISTRY)


@pytest.fixture(scope="module")
def v2() -> JSON:
    return openapi.build_v2(REGISTRY)


def _walk(node: Any) -> Iterator[JSON]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _schemas(schema: JSON) -> Iterator[JSON]:
    """A schema and every schema nested in it (not the property maps themselves)."""
    yield schema
    for prop in schema.get("properties", {}).values():
        yield from _schemas(prop)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _schemas(schema[key])
    for key in ("allOf", "oneOf", "anyOf"):
        for sub in schema.get(key, ()):
            yield from _schemas(sub)


def _ops(doc: JSON) -> Iterator[tuple[str, str, JSON]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def _gvk(r: Resource) -> JSON:
    return {"group": r.group, "kind": r.kind, "version": r.version}


def _explain_gvk(doc: JSON, r: Resource) -> JSON | None:
    """kubectl explain's template: the GVK of the first list/get path operation found."""
    prefix = f"/apis/{r.group}" if r.group else "/api"
    candidates = [
        f"{prefix}/{r.version}/{r.plural}",
        f"{prefix}/{r.version}/{r.plural}/{{name}}",
        f"{prefix}/{r.version}/namespaces/{{namespace}}/{r.plural}",
        f"{prefix}/{r.version}/namespaces/{{namespace}}/{r.plural}/{{name}}",
    ]
    for path in candidates:
        item = doc["paths"].get(path)
        for method in ("get", "post", "put", "patch", "delete"):
            if item and method in item and "x-kubernetes-group-version-kind" in item[method]:
                gvk: JSON = item[method]["x-kubernetes-group-version-kind"]
                return gvk
    return None


# ----------------------------------------------------------------------------- v3


def test_index_lists_every_group_version(v3: dict[str, JSON]) -> None:
    for group, versions in REGISTRY.group_versions().items():
        for version in versions:
            assert openapi.gv_key(group, version) in v3
    assert {"api", "apis", "apis/apps", "version"} <= set(v3)


def test_every_resource_is_explainable(v3: dict[str, JSON]) -> None:
    for r in REGISTRY:
        doc = v3[openapi.gv_key(r.group, r.version)]
        gvk = _explain_gvk(doc, r)
        assert gvk == _gvk(r), r
        matches = [
            name
            for name, schema in doc["components"]["schemas"].items()
            if gvk in schema.get("x-kubernetes-group-version-kind", [])
        ]
        assert len(matches) == 1, (r, matches)
        assert doc["components"]["schemas"][matches[0]]["type"] == "object"


def test_every_resource_has_its_operations(v3: dict[str, JSON]) -> None:
    for r in REGISTRY:
        doc = v3[openapi.gv_key(r.group, r.version)]
        actions = {
            op["x-kubernetes-action"]
            for _, _, op in _ops(doc)
            if op.get("x-kubernetes-group-version-kind") == _gvk(r)
        }
        expected = {
            "create": "post",
            "delete": "delete",
            "deletecollection": "deletecollection",
            "get": "get",
            "list": "list",
            "patch": "patch",
            "update": "put",
            "watch": "watchlist",
        }
        for verb in r.verbs:
            assert expected[verb] in actions, (r, verb)


def test_refs_resolve_and_are_v3(v3: dict[str, JSON]) -> None:
    for key, doc in v3.items():
        schemas = doc["components"]["schemas"]
        for node in _walk(doc):
            ref = node.get("$ref")
            if isinstance(ref, str):
                assert ref.startswith("#/components/schemas/"), (key, ref)
                assert ref.removeprefix("#/components/schemas/") in schemas, (key, ref)


def test_no_json_schema_leftovers(v3: dict[str, JSON]) -> None:
    for key, doc in v3.items():
        for node in (n for d in doc["components"]["schemas"].values() for n in _schemas(d)):
            if "type" in node:
                assert isinstance(node["type"], str) and node["type"] != "null", (key, node)
            # kube-openapi wraps a reference that has siblings
            if "$ref" in node:
                assert set(node) == {"$ref"}, (key, node)
        for schema in doc["components"]["schemas"].values():
            for name in ("apiVersion", "kind"):
                assert "enum" not in schema.get("properties", {}).get(name, {})


def test_properties_keep_patch_metadata_beside_all_of(v3: dict[str, JSON]) -> None:
    spec = v3["api/v1"]["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]
    containers = spec["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}
    pod = v3["api/v1"]["components"]["schemas"]["io.k8s.api.core.v1.Pod"]
    assert pod["properties"]["spec"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}
    ]
    assert "description" in pod["properties"]["spec"]
    assert "required" in v3["api/v1"]["components"]["schemas"]["io.k8s.api.core.v1.Container"]


def test_scalar_unions_have_upstream_shapes(v3: dict[str, JSON], v2: JSON) -> None:
    schemas = v3["api/v1"]["components"]["schemas"]
    ios = schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert ios["oneOf"] == [{"type": "integer"}, {"type": "string"}]
    assert ios["format"] == "int-or-string" and "type" not in ios
    quantity = schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]
    assert quantity["oneOf"] == [{"type": "string"}, {"type": "number"}]
    assert v2["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["type"] == "string"
    assert v2["definitions"]["io.k8s.apimachinery.pkg.api.resource.Quantity"]["type"] == "string"


def test_field_validation_on_every_write(v3: dict[str, JSON]) -> None:
    seen = 0
    for key, doc in v3.items():
        for path, method, op in _ops(doc):
            action = op.get("x-kubernetes-action")
            if method in ("post", "put", "patch") and action != "connect":
                names = [p["name"] for p in op.get("parameters", [])]
                # on the operation itself: kubectl does not look at path-level parameters
                for name in ("fieldValidation", "dryRun", "fieldManager"):
                    assert name in names, (key, path, method)
                seen += 1
            for p in doc["paths"][path].get("parameters", []):
                assert p["name"] not in ("fieldValidation", "dryRun", "fieldManager", "force")
    assert seen > 50


def test_kubectl_field_validation_probe(v3: dict[str, JSON]) -> None:
    """cli-runtime's queryParamVerifierV3: the first PATCH with the kind's GVK decides."""
    for r in REGISTRY:
        if "patch" not in r.verbs:
            continue
        doc = v3[openapi.gv_key(r.group, r.version)]
        patches = [
            op
            for _, m, op in _ops(doc)
            if m == "patch" and op.get("x-kubernetes-group-version-kind") == _gvk(r)
        ]
        assert patches, r
        for op in patches:  # Go's map order is random: every one must say yes
            assert "fieldValidation" in [p["name"] for p in op["parameters"]]
            # and kubectl apply's strategic-merge-patch probe
            assert "application/strategic-merge-patch+json" in op["requestBody"]["content"]


def test_post_operation_shape(v3: dict[str, JSON]) -> None:
    item = v3["api/v1"]["paths"]["/api/v1/namespaces/{namespace}/pods"]
    post = item["post"]
    assert post["operationId"] == "createCoreV1NamespacedPod"
    assert post["requestBody"]["content"]["*/*"]["schema"] == {
        "$ref": "#/components/schemas/io.k8s.api.core.v1.Pod"
    }
    assert set(post["responses"]) == {"200", "201", "202", "401"}
    assert [p["name"] for p in item["parameters"]] == ["namespace", "pretty"]
    assert item["parameters"][0]["required"] is True
    get = item["get"]
    assert get["x-kubernetes-action"] == "list"
    assert "watch" in [p["name"] for p in get["parameters"]]
    assert "application/json;stream=watch" in get["responses"]["200"]["content"]


def test_single_operation_paths_hoist_parameters(v3: dict[str, JSON]) -> None:
    all_namespaces = v3["api/v1"]["paths"]["/api/v1/pods"]
    assert "parameters" not in all_namespaces["get"]
    assert "labelSelector" in [p["name"] for p in all_namespaces["parameters"]]
    item = v3["api/v1"]["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]
    assert [p["name"] for p in item["parameters"]] == ["name", "namespace", "pretty"]
    assert set(item) == {"get", "put", "patch", "delete", "parameters"}


def test_subresources(v3: dict[str, JSON]) -> None:
    paths = v3["apis/apps/v1"]["paths"]
    scale = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["get"]["x-kubernetes-group-version-kind"] == {
        "group": "autoscaling",
        "kind": "Scale",
        "version": "v1",
    }
    assert "io.k8s.api.autoscaling.v1.Scale" in v3["apis/apps/v1"]["components"]["schemas"]
    status = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"]
    assert status["patch"]["operationId"] == "patchAppsV1NamespacedDeploymentStatus"
    core = v3["api/v1"]["paths"]
    log = core["/api/v1/namespaces/{namespace}/pods/{name}/log"]["get"]
    assert log["responses"]["200"]["content"]["text/plain"]["schema"] == {"type": "string"}
    exec_ = core["/api/v1/namespaces/{namespace}/pods/{name}/exec"]
    assert exec_["post"]["x-kubernetes-action"] == "connect"
    assert "/api/v1/nodes/{name}/proxy/{path}" in core
    token = core["/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"]["post"]
    assert token["requestBody"]["content"]["*/*"]["schema"]["$ref"].endswith(
        "io.k8s.api.authentication.v1.TokenRequest"
    )


def test_documents_describe_only_the_registry() -> None:
    registry = Registry([r for r in REGISTRY if (r.group, r.plural) == ("apps", "deployments")])
    docs = openapi.build_v3(registry)
    assert set(docs) == {"apis", "apis/apps", "apis/apps/v1", "version"}
    schemas = docs["apis/apps/v1"]["components"]["schemas"]
    assert "io.k8s.api.apps.v1.Deployment" in schemas
    assert "io.k8s.api.apps.v1.StatefulSet" not in schemas
    assert not any(n.startswith("io.k8s.apiextensions") for n in schemas)
    groups = {
        (g["group"], g["version"])
        for g in schemas["io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"][
            "x-kubernetes-group-version-kind"
        ]
    }
    assert groups == {("", "v1"), ("apps", "v1")}
    v2 = openapi.build_v2(registry)
    assert all(p.startswith(("/apis/apps/v1/", "/apis/", "/version/")) for p in v2["paths"])


# ----------------------------------------------------------------------------- v2


def test_v2_document(v2: JSON) -> None:
    assert v2["swagger"] == "2.0"
    definitions = v2["definitions"]
    for node in _walk(v2):
        ref = node.get("$ref")
        if isinstance(ref, str):
            assert ref.removeprefix("#/definitions/") in definitions, ref
    for node in (n for d in definitions.values() for n in _schemas(d)):
        if "type" in node:
            assert isinstance(node["type"], str)
    patch = v2["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" in patch["consumes"]
    names = [p["name"] for p in patch["parameters"]]
    assert names[0] == "body" and "fieldValidation" in names
    for r in REGISTRY:
        name = schemas().name_for(r.group, r.version, r.kind)
        assert name is not None and name in definitions, (r, name)


def _fields(buf: bytes) -> list[tuple[int, Any]]:
    """Protobuf wire format: (field number, int | bytes) in order."""
    out: list[tuple[int, Any]] = []
    i = 0

    def varint() -> int:
        nonlocal i
        shift = result = 0
        while True:
            b = buf[i]
            i += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result

    while i < len(buf):
        key = varint()
        num, wire = key >> 3, key & 7
        if wire == 0:
            out.append((num, varint()))
        elif wire == 2:
            n = varint()
            out.append((num, buf[i : i + n]))
            i += n
        elif wire == 1:
            out.append((num, buf[i : i + 8]))
            i += 8
        else:
            raise AssertionError(f"unexpected wire type {wire}")
    return out


def _one(fields: list[tuple[int, Any]], num: int) -> Any:
    values = [v for n, v in fields if n == num]
    assert len(values) == 1, (num, values)
    return values[0]


def test_v2_protobuf_decodes_to_the_json_document(v2: JSON) -> None:
    data = openapi.encode_v2_protobuf(v2)
    doc = _fields(data)
    assert _one(doc, 1) == b"2.0"
    info = _fields(_one(doc, 2))
    assert _one(info, 1) == b"Kubernetes"
    # definitions: NamedSchema(name=1, value=2)
    named = [_fields(v) for n, v in _fields(_one(doc, 9)) if n == 1]
    assert [_one(f, 1).decode() for f in named] == list(v2["definitions"])
    pod = next(_fields(_one(f, 2)) for f in named if _one(f, 1) == b"io.k8s.api.core.v1.Pod")
    assert _one(pod, 4).decode() == v2["definitions"]["io.k8s.api.core.v1.Pod"]["description"]
    assert _one(_fields(_one(pod, 22)), 1) == b"object"  # TypeItem
    ext = [_fields(v) for n, v in pod if n == 31]  # vendor_extension NamedAny
    gvk = next(e for e in ext if _one(e, 1) == b"x-kubernetes-group-version-kind")
    yaml_text = _one(_fields(_one(gvk, 2)), 2).decode()
    assert json.loads(yaml_text) == [{"group": "", "kind": "Pod", "version": "v1"}]
    # paths: NamedPathItem(name=1, value=PathItem); PathItem.patch=8, Operation.parameters=8
    items = {
        _one(f, 1).decode(): _fields(_one(f, 2))
        for f in (_fields(v) for n, v in _fields(_one(doc, 8)) if n == 2)
    }
    assert list(items) == list(v2["paths"])
    patch = _fields(_one(items["/api/v1/namespaces/{namespace}/pods/{name}"], 8))
    query_names = []
    for n, value in patch:
        if n != 8:
            continue
        parameter = _fields(_one(_fields(value), 1))  # ParametersItem.parameter
        for kind, payload in parameter:
            if kind == 2:  # NonBodyParameter -> QueryParameterSubSchema (3)
                sub = dict(_fields(payload))
                if 3 in sub:
                    query_names.append(_one(_fields(sub[3]), 4).decode())
    assert "fieldValidation" in query_names


def test_v2_protobuf_covers_every_schema_keyword(v2: JSON) -> None:
    for schema in v2["definitions"].values():
        openapi.encode_v2_protobuf({"definitions": {"x": schema}})  # raises on unknown keys


# ----------------------------------------------------------------------------- HTTP


def _request(path: str, headers: dict[str, str] | None = None) -> Any:
    return make_mocked_request("GET", path, headers=headers or {})


def _parts(path: str) -> tuple[str, ...]:
    return tuple(p for p in path.split("?")[0].split("/") if p)


async def _get(path: str, headers: dict[str, str] | None = None) -> Any:
    return await openapi.serve(_request(path, headers), REGISTRY, _parts(path))


async def test_serve_v3_index_and_documents() -> None:
    resp = await _get("/openapi/v3")
    assert resp.status == 200 and resp.content_type == "application/json"
    index = orjson.loads(resp.body)
    url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/apps/v1?hash=")
    digest = url.split("hash=")[1]
    assert len(digest) == 128 and digest == digest.upper()

    doc = await _get(url, {"Accept": "application/json"})
    assert doc.status == 200
    assert hashlib.sha512(doc.body).hexdigest().upper() == digest
    assert doc.headers["Cache-Control"] == "public, immutable"
    assert doc.headers["ETag"] == f'"{digest}"'
    assert "Expires" in doc.headers

    stale = await _get("/openapi/v3/apis/apps/v1?hash=00", {"Accept": "application/json"})
    assert stale.status == 301 and stale.headers["Location"] == url

    plain = await _get("/openapi/v3/apis/apps/v1")
    assert plain.status == 200 and "Cache-Control" not in plain.headers

    cached = await _get("/openapi/v3", {"If-None-Match": resp.headers["ETag"]})
    assert cached.status == 304


async def test_serve_errors() -> None:
    with pytest.raises(errors.StatusError) as missing:
        await _get("/openapi/v3/apis/nope.example.com/v1")
    assert missing.value.code == 404
    with pytest.raises(errors.StatusError) as refused:
        await _get(
            "/openapi/v3/api/v1",
            {"Accept": "application/com.github.proto-openapi.spec.v3.v1.0+protobuf"},
        )
    assert refused.value.code == 406 and refused.value.reason == "NotAcceptable"
    with pytest.raises(errors.StatusError) as html:
        await _get("/openapi/v2", {"Accept": "text/html"})
    assert html.value.code == 406


async def test_serve_v2_negotiates() -> None:
    as_json = await _get("/openapi/v2")
    assert as_json.content_type == "application/json"
    assert orjson.loads(as_json.body)["swagger"] == "2.0"
    # what kubectl (client-go's OpenAPISchema) sends
    pb = await _get(
        "/openapi/v2", {"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"}
    )
    assert pb.headers["Content-Type"] == openapi.PB_V2_CT
    assert _one(_fields(pb.body), 1) == b"2.0"
    preferred = await _get(
        "/openapi/v2",
        {
            "Accept": "application/json;q=0.5, "
            "application/com.github.proto-openapi.spec.v2.v1.0"
            "+protobuf"
        },
    )
    assert preferred.headers["Content-Type"] == openapi.PB_V2_CT
