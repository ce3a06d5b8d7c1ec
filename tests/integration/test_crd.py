"""CustomResourceDefinitions as a user meets them: kubectl and the official Python client.

A real ``pyk8s apiserver`` serves what the CRDs define (see
:mod:`pyk8s.apiserver.apiextensions`); the messages, reasons, column names and field paths
asserted here are upstream v1.32's. Every test defines its own CRD (its own group and
names), so tests share the session's server without colliding. Garbage collection and
namespace deletion need the controller manager: those tests run a whole ``pyk8s server``.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, dynamic, watch
from kubernetes.client.rest import ApiException

from tests.integration.conftest import KUBECTL, Kubectl, RawClient, Server, free_port
from tests.integration.crd_fixtures import (
    SCALABLE_SCHEMA,
    apply,
    condition,
    cr,
    crd,
    create,
    error_lines,
    install,
    name_of,
    version,
    wait_until,
)

JSON = dict[str, Any]

# ---------------------------------------------------------------------------------------
# One CRD with every schema feature

WIDGET_SCHEMA: JSON = yaml.safe_load(
    """
type: object
properties:
  spec:
    type: object
    default: {}
    x-kubernetes-validations:
    - rule: "self.minReplicas <= self.replicas"
      message: "replicas must be at least minReplicas"
    - rule: "self.replicas <= 100"
      messageExpression: "'replicas is ' + string(self.replicas) + ', above 100'"
    properties:
      size:
        type: string
        default: medium
        enum: [small, medium, large]
      replicas:
        type: integer
        default: 1
        minimum: 0
        maximum: 1000
      minReplicas:
        type: integer
        default: 0
      color:
        type: string
        pattern: '^[a-z]+$'
        maxLength: 10
      port:
        x-kubernetes-int-or-string: true
      email:
        type: string
        format: email
      id:
        type: string
        x-kubernetes-validations:
        - rule: "self == oldSelf"
          message: "id is immutable"
      note:
        type: string
        nullable: true
      tags:
        type: array
        x-kubernetes-list-type: set
        items: {type: string}
      ports:
        type: array
        x-kubernetes-list-type: map
        x-kubernetes-list-map-keys: [name]
        items:
          type: object
          required: [name]
          properties:
            name: {type: string}
            number: {type: integer}
      labels:
        type: object
        x-kubernetes-map-type: atomic
        additionalProperties: {type: string}
      extra:
        type: object
        x-kubernetes-preserve-unknown-fields: true
      template:
        type: object
        x-kubernetes-embedded-resource: true
        x-kubernetes-preserve-unknown-fields: true
  status:
    type: object
    properties:
      replicas: {type: integer}
      selector: {type: string}
      phase: {type: string}
"""
)


#: what replaces the CEL rules' errors when the schema found a blocking error
RULES_NOT_CHECKED = (
    '<nil>: Invalid value: "null": some validation rules were not checked because '
    "the object was invalid; correct the existing errors to complete validation"
)


def widget_crd(group: str, **kw: Any) -> JSON:
    return crd(
        group,
        "Widget",
        versions=[version("v1", WIDGET_SCHEMA, status=True)],
        short_names=kw.pop("short_names", ()),
        **kw,
    )


def custom(api: Any) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def status_of(err: ApiException) -> JSON:
    body: JSON = json.loads(err.body)
    return body


def causes(status: JSON) -> set[tuple[str, str]]:
    return {(c.get("field", ""), c["message"]) for c in status["details"]["causes"]}


# ---------------------------------------------------------------------------------------
# Schema: pruning, field validation, preserved and special fields


def test_unknown_fields_are_pruned_refused_or_warned(
    kubectl: Kubectl, raw: RawClient, ns: str
) -> None:
    group = "prune.crd-test.example.com"
    install(kubectl, widget_crd(group))
    obj = cr(f"{group}/v1", "Widget", "w1", {"x": 1, "color": "red"}, namespace=ns)

    # kubectl validates strictly by default: the server refuses the unknown field
    out = create(kubectl, obj, check=False)
    assert out.returncode != 0
    assert (
        'Error from server (BadRequest): error when creating "STDIN": '
        'strict decoding error: unknown field "spec.x"'
    ) in out.stderr

    # --validate=false: accepted, and the unknown field is gone
    apply(kubectl, obj, "--validate=false")
    got = kubectl.json("get", f"widgets.{group}", "w1", "-n", ns)
    assert "x" not in got["spec"]
    assert got["spec"]["color"] == "red"

    # --validate=warn: accepted with the server's warning
    obj2 = cr(f"{group}/v1", "Widget", "w2", {"x": 1, "y": {"z": 2}}, namespace=ns)
    out = create(kubectl, obj2, "--validate=warn", check=False)
    assert out.returncode == 0, out.stderr
    assert 'Warning: unknown field "spec.x"' in out.stderr
    assert 'Warning: unknown field "spec.y"' in out.stderr
    assert "x" not in kubectl.json("get", f"widgets.{group}", "w2", "-n", ns)["spec"]

    # the same through the API: Strict is a 400 naming every field, Warn a 299 Warning
    path = f"/apis/{group}/v1/namespaces/{ns}/widgets"
    body = json.dumps(cr(f"{group}/v1", "Widget", "w3", {"x": 1, "y": 2})).encode()
    strict = raw("POST", path + "?fieldValidation=Strict", body)
    assert strict.status == 400
    assert strict.json()["reason"] == "BadRequest"
    assert strict.json()["message"] == (
        'strict decoding error: unknown field "spec.x", unknown field "spec.y"'
    )
    one = json.dumps(cr(f"{group}/v1", "Widget", "w3", {"x": 1, "color": "blue"})).encode()
    warn = raw("POST", path + "?fieldValidation=Warn", one)
    assert warn.status == 201
    assert warn.headers["Warning"] == '299 - "unknown field \\"spec.x\\""'
    assert warn.json()["spec"] == {
        "color": "blue",
        "size": "medium",
        "replicas": 1,
        "minReplicas": 0,
    }
    ignore = raw("POST", path + "?fieldValidation=Ignore", body.replace(b"w3", b"w4"))
    assert ignore.status == 201
    assert "Warning" not in ignore.headers


def test_preserved_int_or_string_embedded_and_nullable_fields(
    kubectl: Kubectl, raw: RawClient, ns: str
) -> None:
    group = "keep.crd-test.example.com"
    install(kubectl, widget_crd(group))
    spec = {
        "port": "http",
        "extra": {"anything": {"goes": [1, "two"]}},
        "template": {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "inner", "labels": {"a": "b"}},
            "data": {"k": "v"},
        },
        "note": None,
        "color": None,
    }
    got = json.loads(
        create(kubectl, cr(f"{group}/v1", "Widget", "w1", spec, namespace=ns), "-o", "json")
    )["spec"]
    # x-kubernetes-preserve-unknown-fields keeps everything below it
    assert got["extra"] == {"anything": {"goes": [1, "two"]}}
    # x-kubernetes-int-or-string takes both
    assert got["port"] == "http"
    # x-kubernetes-embedded-resource keeps apiVersion, kind and metadata
    assert got["template"] == spec["template"]
    # nullable keeps a null; a null where the schema does not allow one is dropped
    assert "note" in got and got["note"] is None
    assert "color" not in got

    numeric = cr(f"{group}/v1", "Widget", "w2", {"port": 8080}, namespace=ns)
    assert json.loads(create(kubectl, numeric, "-o", "json"))["spec"]["port"] == 8080

    # an embedded resource's metadata is ObjectMeta: unknown fields there are unknown
    bad_meta = cr(
        f"{group}/v1",
        "Widget",
        "w3",
        {"template": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"bogus": 1}}},
        namespace=ns,
    )
    out = create(kubectl, bad_meta, check=False)
    assert 'strict decoding error: unknown field "spec.template.metadata.bogus"' in out.stderr
    # and it must say what it is
    no_kind = cr(f"{group}/v1", "Widget", "w4", {"template": {"data": {}}}, namespace=ns)
    out = create(kubectl, no_kind, check=False)
    assert out.returncode != 0
    assert 'The Widget "w4" is invalid' in out.stderr
    assert error_lines(out.stderr) == {
        "spec.template.apiVersion: Required value: must not be empty",
        "spec.template.kind: Required value: must not be empty",
        RULES_NOT_CHECKED,
    }

    # a wrong type for int-or-string is refused
    fraction = cr(f"{group}/v1", "Widget", "w5", {"port": 1.5}, namespace=ns)
    out = create(kubectl, fraction, check=False)
    assert (
        'spec.port: Invalid value: "number": spec.port in body must be of type '
        'integer,string: "number"'
    ) in error_lines(out.stderr)


# ---------------------------------------------------------------------------------------
# Defaults


def test_defaults_on_create_and_update(kubectl: Kubectl, api: Any, ns: str) -> None:
    group = "defaults.crd-test.example.com"
    install(kubectl, widget_crd(group))
    # no spec at all: spec's own default ({}) and then its properties' defaults
    got = json.loads(create(kubectl, cr(f"{group}/v1", "Widget", "w1", namespace=ns), "-o", "json"))
    assert got["spec"] == {"size": "medium", "replicas": 1, "minReplicas": 0}

    got = json.loads(
        create(
            kubectl,
            cr(f"{group}/v1", "Widget", "w2", {"size": "large"}, namespace=ns),
            "-o",
            "json",
        )
    )
    assert got["spec"] == {"size": "large", "replicas": 1, "minReplicas": 0}

    # an update that removes a defaulted field gets the default again
    kubectl(
        "patch", f"widgets.{group}", "w2", "-n", ns, "--type=merge", "-p", '{"spec":{"size":null}}'
    )
    assert kubectl.json("get", f"widgets.{group}", "w2", "-n", ns)["spec"]["size"] == "medium"

    # a replace (PUT) through the Python client is defaulted too
    co = custom(api)
    current = co.get_namespaced_custom_object(group, "v1", ns, "widgets", "w2")
    current["spec"] = {"replicas": 3}
    out = co.replace_namespaced_custom_object(group, "v1", ns, "widgets", "w2", current)
    assert out["spec"] == {"replicas": 3, "size": "medium", "minReplicas": 0}


def _read_after_a_default_was_added(kubectl: Kubectl, api: Any, ns: str, group: str) -> JSON:
    """Store a Widget, then add a defaulted field to the CRD; the Widget as each kind of
    read returns it."""
    definition = widget_crd(group)
    install(kubectl, definition)
    create(kubectl, cr(f"{group}/v1", "Widget", "old", {"size": "small"}, namespace=ns))
    added = {
        "op": "add",
        "path": "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/mode",
        "value": {"type": "string", "default": "auto"},
    }
    kubectl("patch", "crd", name_of(definition), "--type=json", "-p", json.dumps([added]))

    def new_schema_served() -> bool:
        probe = cr(f"{group}/v1", "Widget", f"probe-{uuid.uuid4().hex[:6]}", namespace=ns)
        return bool(json.loads(create(kubectl, probe, "-o", "json"))["spec"].get("mode"))

    wait_until(new_schema_served)
    co = custom(api)

    def old(items: list[JSON]) -> JSON:
        return next(o for o in items if o["metadata"]["name"] == "old")

    w = watch.Watch()
    watched = [
        ev["object"]
        for ev in w.stream(
            co.list_namespaced_custom_object, group, "v1", ns, "widgets", timeout_seconds=1
        )
    ]
    return {
        "kubectl get -o json (chunked list)": old(
            kubectl.json("get", f"widgets.{group}", "-n", ns)["items"]
        ),
        "paginated list": old(
            co.list_namespaced_custom_object(group, "v1", ns, "widgets", limit=100)["items"]
        ),
        "list": old(co.list_namespaced_custom_object(group, "v1", ns, "widgets")["items"]),
        "get": co.get_namespaced_custom_object(group, "v1", ns, "widgets", "old"),
        "watch": old(watched),
    }


def test_paginated_lists_default_objects_stored_before_the_default(
    kubectl: Kubectl, api: Any, ns: str
) -> None:
    """Upstream defaults what it reads from storage, so objects written before a default
    was added to the schema come back with it."""
    reads = _read_after_a_default_was_added(kubectl, api, ns, "pagedefaults.crd-test.example.com")
    for how in ("kubectl get -o json (chunked list)", "paginated list"):
        assert reads[how]["spec"] == {
            "size": "small",
            "replicas": 1,
            "minReplicas": 0,
            "mode": "auto",
        }, how


def test_every_read_defaults_objects_stored_before_the_default(
    kubectl: Kubectl, api: Any, ns: str
) -> None:
    reads = _read_after_a_default_was_added(kubectl, api, ns, "readdefaults.crd-test.example.com")
    missing = [how for how, obj in reads.items() if obj["spec"].get("mode") != "auto"]
    assert not missing, f"no default on read by: {', '.join(missing)}"


# ---------------------------------------------------------------------------------------
# Validation: 422 with field paths, CEL rules


def test_schema_violations_are_422_with_field_paths(kubectl: Kubectl, api: Any, ns: str) -> None:
    group = "invalid.crd-test.example.com"
    install(kubectl, widget_crd(group))
    bad = cr(
        f"{group}/v1",
        "Widget",
        "bad",
        {
            "size": "huge",
            "replicas": 2000,
            "color": "Red1",
            "email": "not-an-email",
            "tags": ["a", "b", "a"],
            "ports": [{"name": "http", "number": 1}, {"name": "http", "number": 2}],
        },
        namespace=ns,
    )
    out = create(kubectl, bad, check=False)
    assert out.returncode != 0
    assert out.stderr.startswith('The Widget "bad" is invalid: ')
    expected = {
        'spec.size: Unsupported value: "huge": supported values: "small", "medium", "large"',
        "spec.replicas: Invalid value: 2000: spec.replicas in body should be less than "
        "or equal to 1000",
        "spec.color: Invalid value: \"Red1\": spec.color in body should match '^[a-z]+$'",
        'spec.email: Invalid value: "not-an-email": spec.email in body must be of type '
        'email: "not-an-email"',
        'spec.tags[2]: Duplicate value: "a"',
        'spec.ports[1]: Duplicate value: map[string]interface {}{"name":"http"}',
        # an unsupported enum value blocks the CEL rules, as upstream's hasBlockingErr
        RULES_NOT_CHECKED,
    }
    assert error_lines(out.stderr) == expected

    # the Python client gets the Status: 422 Invalid with one cause per field
    co = custom(api)
    with pytest.raises(ApiException) as exc:
        co.create_namespaced_custom_object(group, "v1", ns, "widgets", bad)
    assert exc.value.status == 422
    status = status_of(exc.value)
    assert status["reason"] == "Invalid"
    assert status["details"]["kind"] == "Widget"
    assert status["details"]["group"] == group
    fields = {c["field"] for c in status["details"]["causes"]}
    assert {"spec.size", "spec.replicas", "spec.color", "spec.email"} <= fields
    assert {"spec.tags[2]", "spec.ports[1]"} <= fields

    low = cr(f"{group}/v1", "Widget", "low", {"replicas": -1, "color": "abcdefghijkl"})
    low["metadata"]["namespace"] = ns
    out = create(kubectl, low, check=False)
    assert {
        "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than "
        "or equal to 0",
        "spec.color: Too long: may not be more than 10 bytes",
    } <= error_lines(out.stderr)

    # object names are DNS subdomains
    out = create(kubectl, cr(f"{group}/v1", "Widget", "Bad_Name", namespace=ns), check=False)
    assert out.returncode != 0
    assert 'metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain' in (
        out.stderr
    )


def test_cel_rules_message_expression_and_transition_rules(
    kubectl: Kubectl, api: Any, ns: str
) -> None:
    group = "cel.crd-test.example.com"
    install(kubectl, widget_crd(group))
    co = custom(api)
    both = cr(f"{group}/v1", "Widget", "w", {"replicas": 500, "minReplicas": 600}, namespace=ns)
    out = create(kubectl, both, check=False)
    assert error_lines(out.stderr) == {
        'spec: Invalid value: "object": replicas must be at least minReplicas',
        'spec: Invalid value: "object": replicas is 500, above 100',
    }
    with pytest.raises(ApiException) as exc:
        co.create_namespaced_custom_object(group, "v1", ns, "widgets", both)
    assert exc.value.status == 422
    assert causes(status_of(exc.value)) == {
        ("spec", 'Invalid value: "object": replicas must be at least minReplicas'),
        ("spec", 'Invalid value: "object": replicas is 500, above 100'),
    }

    # a rule on a field that is absent is not evaluated; a transition rule only on update
    create(kubectl, cr(f"{group}/v1", "Widget", "imm", {"id": "one"}, namespace=ns))
    out = kubectl.run(
        "patch",
        f"widgets.{group}",
        "imm",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"spec":{"id":"two"}}',
        check=False,
    )
    assert out.returncode != 0
    assert 'The Widget "imm" is invalid: spec.id: Invalid value: "string": id is immutable' in (
        out.stderr
    )
    # other fields still change
    kubectl(
        "patch",
        f"widgets.{group}",
        "imm",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"spec":{"size":"small"}}',
    )
    got = kubectl.json("get", f"widgets.{group}", "imm", "-n", ns)["spec"]
    assert (got["id"], got["size"]) == ("one", "small")


def test_list_types_on_update(kubectl: Kubectl, api: Any, ns: str) -> None:
    group = "lists.crd-test.example.com"
    install(kubectl, widget_crd(group))
    co = custom(api)
    obj = cr(
        f"{group}/v1",
        "Widget",
        "w",
        {
            "tags": ["a", "b"],
            "ports": [{"name": "http", "number": 80}, {"name": "https", "number": 443}],
            "labels": {"x": "1"},
        },
        namespace=ns,
    )
    co.create_namespaced_custom_object(group, "v1", ns, "widgets", obj)
    # JSON patch adding a duplicate to a set is a 422 on update too
    with pytest.raises(ApiException) as exc:
        co.patch_namespaced_custom_object(
            group,
            "v1",
            ns,
            "widgets",
            "w",
            [{"op": "add", "path": "/spec/tags/-", "value": "a"}],
            _content_type="application/json-patch+json",
        )
    assert exc.value.status == 422
    assert causes(status_of(exc.value)) == {("spec.tags[2]", 'Duplicate value: "a"')}
    # a valid change of a list-map item by its key is fine
    co.patch_namespaced_custom_object(
        group,
        "v1",
        ns,
        "widgets",
        "w",
        [{"op": "replace", "path": "/spec/ports/1/number", "value": 8443}],
        _content_type="application/json-patch+json",
    )
    got = co.get_namespaced_custom_object(group, "v1", ns, "widgets", "w")["spec"]
    assert got["ports"] == [{"name": "http", "number": 80}, {"name": "https", "number": 8443}]
    assert got["labels"] == {"x": "1"}


# ---------------------------------------------------------------------------------------
# Names, conditions, short names, categories, scope


def test_names_accepted_established_and_a_conflict(kubectl: Kubectl) -> None:
    group = "names.crd-test.example.com"
    first = crd(group, "Gizmo", short_names=["gz"])
    got = install(kubectl, first)
    names = condition(got, "NamesAccepted")
    assert (names["status"], names["reason"], names["message"]) == (
        "True",
        "NoConflicts",
        "no conflicts found",
    )
    est = condition(got, "Established")
    assert (est["status"], est["reason"], est["message"]) == (
        "True",
        "InitialNamesAccepted",
        "the initial names have been accepted",
    )
    assert got["status"]["acceptedNames"] == {
        "plural": "gizmos",
        "singular": "gizmo",
        "kind": "Gizmo",
        "listKind": "GizmoList",
        "shortNames": ["gz"],
    }
    assert got["status"]["storedVersions"] == ["v1"]

    # a second CRD whose plural is the first one's singular
    second = crd(group, "GizmoAlt", plural="gizmo", singular="gizmoalt")
    kubectl("apply", "-f", "-", input=json.dumps(second))

    def refused() -> JSON:
        obj: JSON = kubectl.json("get", "crd", name_of(second))
        return obj if condition(obj, "NamesAccepted").get("status") == "False" else {}

    other = wait_until(refused)
    names = condition(other, "NamesAccepted")
    assert (names["reason"], names["message"]) == ("PluralConflict", '"gizmo" is already in use')
    est = condition(other, "Established")
    assert (est["status"], est["reason"], est["message"]) == (
        "False",
        "NotAccepted",
        "not all names are accepted",
    )
    assert other["status"]["acceptedNames"] == {"plural": "", "kind": ""}
    # nothing is served for it: discovery lists the first CRD's resource only
    rows = kubectl("api-resources", f"--api-group={group}", "--no-headers").splitlines()
    assert [r.split()[0] for r in rows] == ["gizmos"]
    assert kubectl("get", "gz", "-A", "-o", "name") == ""

    # a short name clash is refused too
    third = crd(group, "Doohickey", short_names=["gz"])
    kubectl("apply", "-f", "-", input=json.dumps(third))
    wait_until(
        lambda: (
            condition(kubectl.json("get", "crd", name_of(third)), "NamesAccepted").get("reason")
            == "ShortNamesConflict"
        )
    )
    assert (
        condition(kubectl.json("get", "crd", name_of(third)), "NamesAccepted")["message"]
        == '"gz" is already in use'
    )


def test_short_names_and_categories(kubectl: Kubectl, ns: str) -> None:
    group = "cats.crd-test.example.com"
    install(kubectl, crd(group, "Sprocket", short_names=["spr"], categories=["all", "toys"]))
    install(kubectl, crd(group, "Cog", categories=["toys"]))
    create(kubectl, cr(f"{group}/v1", "Sprocket", "s1", namespace=ns))
    create(kubectl, cr(f"{group}/v1", "Cog", "c1", namespace=ns))

    assert kubectl("get", "spr", "-n", ns, "-o", "name") == f"sprocket.{group}/s1\n"
    assert kubectl("get", "sprocket", "s1", "-n", ns, "-o", "name") == f"sprocket.{group}/s1\n"
    toys = kubectl("get", "toys", "-n", ns, "-o", "name").split()
    assert sorted(toys) == [f"cog.{group}/c1", f"sprocket.{group}/s1"]
    # `kubectl get all` takes the category "all" only
    every = kubectl("get", "all", "-n", ns, "-o", "name").split()
    assert f"sprocket.{group}/s1" in every
    assert f"cog.{group}/c1" not in every
    rows = {
        r.split()[0]: r.split()
        for r in kubectl("api-resources", f"--api-group={group}", "--no-headers").splitlines()
    }
    assert rows["sprockets"] == ["sprockets", "spr", f"{group}/v1", "true", "Sprocket"]
    assert rows["cogs"] == ["cogs", f"{group}/v1", "true", "Cog"]


def test_cluster_scoped_custom_resources(kubectl: Kubectl, api: Any, raw: RawClient) -> None:
    group = "cluster.crd-test.example.com"
    install(kubectl, crd(group, "Region", scope="Cluster"))
    create(kubectl, cr(f"{group}/v1", "Region", "eu", {"zone": "a"}))
    got = kubectl.json("get", "regions", "eu")
    assert "namespace" not in got["metadata"]
    assert kubectl("get", "regions", "-o", "name") == f"region.{group}/eu\n"
    row = kubectl("api-resources", f"--api-group={group}", "--no-headers").split()
    assert row == ["regions", f"{group}/v1", "false", "Region"]

    co = custom(api)
    assert co.get_cluster_custom_object(group, "v1", "regions", "eu")["spec"] == {"zone": "a"}
    co.create_cluster_custom_object(group, "v1", "regions", cr(f"{group}/v1", "Region", "us"))
    names = [
        o["metadata"]["name"]
        for o in co.list_cluster_custom_object(group, "v1", "regions")["items"]
    ]
    assert names == ["eu", "us"]
    # no namespaced path, and no metadata.namespace field selector
    assert raw("GET", f"/apis/{group}/v1/namespaces/default/regions/eu").status == 404
    out = kubectl.run("get", "regions", "--field-selector", "metadata.namespace=x", check=False)
    assert "field label not supported: metadata.namespace" in out.stderr
    kubectl("delete", "region", "eu", "us")
    assert kubectl("get", "regions", "-o", "name") == ""


MANUAL_SCHEMA: JSON = {
    "type": "object",
    "description": "A Manual documents a machine.",
    "properties": {
        "spec": {
            "type": "object",
            "description": "What the manual covers.",
            "required": ["title"],
            "properties": {
                "title": {"type": "string", "description": "The title on the cover."},
                "pages": {"type": "integer", "description": "How many pages."},
                "lang": {"type": "string", "enum": ["en", "de"]},
            },
        }
    },
}


def test_kubectl_explain_reads_the_schema(kubectl: Kubectl) -> None:
    group = "explain.crd-test.example.com"
    install(kubectl, crd(group, "Manual", versions=[version("v1", MANUAL_SCHEMA)]))
    top = kubectl("explain", f"manuals.{group}")
    assert f"GROUP:      {group}\nKIND:       Manual\nVERSION:    v1\n" in top
    assert "DESCRIPTION:\n    A Manual documents a machine." in top
    assert "  spec\t<Object>\n    What the manual covers." in top
    spec = kubectl("explain", f"manuals.{group}.spec")
    assert "  title\t<string> -required-\n    The title on the cover." in spec
    assert "  lang\t<string>\n  enum: en, de" in spec
    assert "FIELD: pages <integer>" in kubectl("explain", f"manuals.{group}.spec.pages")


# ---------------------------------------------------------------------------------------
# Reading: printer columns, selectors, pagination, watch

COLUMNS = [
    {"name": "Size", "type": "string", "jsonPath": ".spec.size"},
    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
    {"name": "Color", "type": "string", "priority": 1, "jsonPath": ".spec.color"},
    {"name": "Ready", "type": "boolean", "jsonPath": ".status.ready"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

PRINTED_SCHEMA: JSON = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "size": {"type": "string"},
                "replicas": {"type": "integer"},
                "color": {"type": "string"},
            },
        },
        "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
    },
}


def test_additional_printer_columns(kubectl: Kubectl, raw: RawClient, ns: str) -> None:
    group = "columns.crd-test.example.com"
    install(kubectl, crd(group, "Panel", versions=[version("v1", PRINTED_SCHEMA, columns=COLUMNS)]))
    create(
        kubectl,
        cr(
            f"{group}/v1",
            "Panel",
            "p1",
            {"size": "big", "replicas": 3, "color": "red"},
            namespace=ns,
        ),
    )
    lines = kubectl("get", "panels", "-n", ns).splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "REPLICAS", "READY", "AGE"]
    assert lines[1].split()[:3] == ["p1", "big", "3"]
    wide = kubectl("get", "panels", "-n", ns, "-o", "wide").splitlines()
    assert wide[0].split() == ["NAME", "SIZE", "REPLICAS", "COLOR", "READY", "AGE"]
    assert wide[1].split()[:4] == ["p1", "big", "3", "red"]
    # the same columns for one object, and in the Table the server sends
    assert kubectl("get", "panel", "p1", "-n", ns).splitlines()[0].split() == lines[0].split()
    table = raw(
        "GET",
        f"/apis/{group}/v1/namespaces/{ns}/panels",
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
    ).json()
    assert table["kind"] == "Table"
    assert [(c["name"], c["type"], c["priority"]) for c in table["columnDefinitions"]] == [
        ("Name", "string", 0),
        ("Size", "string", 0),
        ("Replicas", "integer", 0),
        ("Color", "string", 1),
        ("Ready", "boolean", 0),
        ("Age", "date", 0),
    ]
    (row,) = table["rows"]
    # a value the object lacks is an empty cell
    assert row["cells"][:5] == ["p1", "big", 3, "red", None]


def test_label_and_field_selectors(kubectl: Kubectl, api: Any, ns: str) -> None:
    group = "select.crd-test.example.com"
    install(
        kubectl,
        crd(
            group,
            "Marble",
            versions=[version("v1", SCALABLE_SCHEMA, selectable=[".spec.color"])],
        ),
    )
    for name, tier, color in [("m1", "a", "red"), ("m2", "a", "blue"), ("m3", "b", "red")]:
        create(
            kubectl,
            cr(
                f"{group}/v1", "Marble", name, {"color": color}, namespace=ns, labels={"tier": tier}
            ),
        )

    def names(*args: str) -> list[str]:
        return sorted(kubectl("get", "marbles", "-n", ns, "-o", "name", *args).split())

    prefix = f"marble.{group}/"
    assert names("-l", "tier=a") == [prefix + "m1", prefix + "m2"]
    assert names("-l", "tier!=a") == [prefix + "m3"]
    assert names("-l", "tier in (a,b),tier notin (b)") == [prefix + "m1", prefix + "m2"]
    assert names("--field-selector", "spec.color=red") == [prefix + "m1", prefix + "m3"]
    assert names("--field-selector", "spec.color!=red,metadata.name!=m9") == [prefix + "m2"]
    assert names("--field-selector", "spec.color=red", "-l", "tier=b") == [prefix + "m3"]
    out = kubectl.run("get", "marbles", "-n", ns, "--field-selector", "spec.size=x", check=False)
    assert out.returncode != 0
    assert (
        f'Error from server (BadRequest): Unable to find "{group}/v1, Resource=marbles" that '
        'match label selector "", field selector "spec.size=x": field label not supported: '
        "spec.size"
    ) in out.stderr

    co = custom(api)
    got = co.list_namespaced_custom_object(
        group, "v1", ns, "marbles", field_selector="spec.color=blue"
    )["items"]
    assert [o["metadata"]["name"] for o in got] == ["m2"]
    across = co.list_cluster_custom_object(group, "v1", "marbles", label_selector="tier=a")
    assert sorted(o["metadata"]["name"] for o in across["items"]) == ["m1", "m2"]


def test_pagination(kubectl: Kubectl, api: Any, ns: str) -> None:
    group = "pages.crd-test.example.com"
    install(kubectl, crd(group, "Leaf", plural="leaves"))
    names = [f"leaf-{i:02d}" for i in range(7)]
    for n in names:
        create(kubectl, cr(f"{group}/v1", "Leaf", n, namespace=ns))

    # kubectl --chunk-size follows the continue tokens (seen in its request log)
    out = kubectl.run("get", "leaves", "-n", ns, "-o", "name", "--chunk-size=3", "-v=6")
    assert out.stdout.split() == [f"leaf.{group}/{n}" for n in names]
    assert out.stderr.count("limit=3") == 3
    assert "continue=" in out.stderr

    co = custom(api)
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        kw: JSON = {"limit": 3}
        if token:
            kw["_continue"] = token
        page = co.list_namespaced_custom_object(group, "v1", ns, "leaves", **kw)
        pages += 1
        seen += [o["metadata"]["name"] for o in page["items"]]
        token = page["metadata"].get("continue")
        if pages == 1:
            assert page["metadata"]["remainingItemCount"] == 4
        if not token:
            break
    assert seen == names
    assert pages == 3


def test_watch_with_kubectl_and_the_python_client(
    kubectl: Kubectl, api: Any, server: Server, ns: str
) -> None:
    group = "watch.crd-test.example.com"
    install(kubectl, crd(group, "Beacon", versions=[version("v1", SCALABLE_SCHEMA)]))
    co = custom(api)
    rv = co.list_namespaced_custom_object(group, "v1", ns, "beacons")["metadata"]["resourceVersion"]

    proc = subprocess.Popen(
        [
            KUBECTL,
            "--kubeconfig",
            str(server.kubeconfig),
            "get",
            "beacons",
            "-n",
            ns,
            "-w",
            "--output-watch-events",
            "--request-timeout=30s",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        create(kubectl, cr(f"{group}/v1", "Beacon", "b1", {"color": "red"}, namespace=ns))
        # the header comes with the first event
        assert proc.stdout.readline().split() == ["EVENT", "NAME", "AGE"]
        assert proc.stdout.readline().split()[:2] == ["ADDED", "b1"]
        kubectl("label", f"beacons.{group}", "b1", "-n", ns, "x=y")
        assert proc.stdout.readline().split()[:2] == ["MODIFIED", "b1"]
        kubectl("delete", f"beacons.{group}", "b1", "-n", ns)
        assert proc.stdout.readline().split()[:2] == ["DELETED", "b1"]
    finally:
        proc.terminate()
        proc.wait()

    # the Python client's Watch from the list's resourceVersion sees the same history
    events: list[tuple[str, str, str]] = []
    w = watch.Watch()
    for ev in w.stream(
        co.list_namespaced_custom_object,
        group,
        "v1",
        ns,
        "beacons",
        resource_version=rv,
        timeout_seconds=5,
    ):
        obj = ev["object"]
        events.append(
            (ev["type"], obj["metadata"]["name"], obj["metadata"].get("labels", {}).get("x", ""))
        )
        if ev["type"] == "DELETED":
            w.stop()
    assert events == [("ADDED", "b1", ""), ("MODIFIED", "b1", "y"), ("DELETED", "b1", "y")]


# ---------------------------------------------------------------------------------------
# Subresources: status, scale; generation


def test_status_subresource_and_generation(kubectl: Kubectl, api: Any, ns: str) -> None:
    group = "status.crd-test.example.com"
    install(kubectl, crd(group, "Engine", versions=[version("v1", SCALABLE_SCHEMA, status=True)]))
    obj = cr(f"{group}/v1", "Engine", "e1", {"replicas": 1}, namespace=ns)
    obj["status"] = {"phase": "Made up"}
    got = json.loads(create(kubectl, obj, "-o", "json"))
    # status is the controller's: it is dropped on create
    assert "status" not in got
    assert got["metadata"]["generation"] == 1

    def generation() -> int:
        return int(kubectl.json("get", "engine", "e1", "-n", ns)["metadata"]["generation"])

    # the main resource ignores status changes
    kubectl("patch", "engine", "e1", "-n", ns, "--type=merge", "-p", '{"status":{"phase":"X"}}')
    assert "status" not in kubectl.json("get", "engine", "e1", "-n", ns)
    # metadata changes keep the generation, spec changes bump it
    kubectl("label", "engine", "e1", "-n", ns, "a=b")
    assert generation() == 1
    kubectl("patch", "engine", "e1", "-n", ns, "--type=merge", "-p", '{"spec":{"replicas":2}}')
    assert generation() == 2

    # the status subresource writes status only, and keeps the generation
    kubectl(
        "patch",
        "engine",
        "e1",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"phase":"Running","replicas":2},"spec":{"replicas":9}}',
    )
    got = kubectl.json("get", "engine", "e1", "-n", ns)
    assert got["status"] == {"phase": "Running", "replicas": 2}
    assert got["spec"]["replicas"] == 2
    assert got["metadata"]["generation"] == 2
    # the status is validated against the schema
    out = kubectl.run(
        "patch",
        "engine",
        "e1",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"replicas":"two"}}',
        check=False,
    )
    assert out.returncode != 0
    assert (
        'status.replicas: Invalid value: "string": status.replicas in body must be of type '
        'integer: "string"'
    ) in out.stderr

    # the Python client's status calls
    co = custom(api)
    st = co.get_namespaced_custom_object_status(group, "v1", ns, "engines", "e1")
    assert st["status"]["phase"] == "Running"
    st["status"]["phase"] = "Done"
    co.replace_namespaced_custom_object_status(group, "v1", ns, "engines", "e1", st)
    assert kubectl.json("get", "engine", "e1", "-n", ns)["status"]["phase"] == "Done"


def test_scale_subresource(kubectl: Kubectl, api: Any, ns: str) -> None:
    group = "scale.crd-test.example.com"
    scale = {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    install(
        kubectl,
        crd(group, "Fleet", versions=[version("v1", SCALABLE_SCHEMA, status=True, scale=scale)]),
    )
    create(kubectl, cr(f"{group}/v1", "Fleet", "f1", {"replicas": 1}, namespace=ns))
    kubectl(
        "patch",
        "fleet",
        "f1",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"replicas":1,"selector":"app=f1"}}',
    )

    assert kubectl("scale", "fleet", "f1", "-n", ns, "--replicas=3") == f"fleet.{group}/f1 scaled\n"
    got = kubectl.json("get", "fleet", "f1", "-n", ns)
    assert got["spec"]["replicas"] == 3
    assert got["metadata"]["generation"] == 2

    s = kubectl.json("get", "fleet", "f1", "-n", ns, "--subresource=scale")
    assert (s["apiVersion"], s["kind"]) == ("autoscaling/v1", "Scale")
    assert s["metadata"]["name"] == "f1"
    assert s["metadata"]["namespace"] == ns
    assert s["spec"] == {"replicas": 3}
    assert s["status"] == {"replicas": 1, "selector": "app=f1"}

    # --current-replicas guards the change
    out = kubectl.run(
        "scale", "fleet", "f1", "-n", ns, "--current-replicas=2", "--replicas=5", check=False
    )
    assert out.returncode != 0
    assert "Expected replicas to be 2, was 3" in out.stderr

    co = custom(api)
    sc = co.get_namespaced_custom_object_scale(group, "v1", ns, "fleets", "f1")
    assert sc["spec"]["replicas"] == 3
    co.patch_namespaced_custom_object_scale(
        group, "v1", ns, "fleets", "f1", {"spec": {"replicas": 5}}
    )
    assert kubectl.json("get", "fleet", "f1", "-n", ns)["spec"]["replicas"] == 5


# ---------------------------------------------------------------------------------------
# Versions


CRONTAB_SCHEMA: JSON = {
    "type": "object",
    "properties": {
        "spec": {"type": "object", "properties": {"cron": {"type": "string"}}},
    },
}


def test_two_versions_with_none_conversion(kubectl: Kubectl, api: Any, ns: str) -> None:
    group = "versions.crd-test.example.com"
    definition = crd(
        group,
        "CronTab",
        versions=[
            version("v1beta1", CRONTAB_SCHEMA, storage=False),
            version("v1", CRONTAB_SCHEMA),
        ],
        conversion={"strategy": "None"},
    )
    got = install(kubectl, definition)
    assert got["status"]["storedVersions"] == ["v1"]

    # created at v1beta1, read at v1 (and the other way round)
    create(kubectl, cr(f"{group}/v1beta1", "CronTab", "old", {"cron": "* * * * *"}, namespace=ns))
    create(kubectl, cr(f"{group}/v1", "CronTab", "new", {"cron": "0 * * * *"}, namespace=ns))
    at_v1 = kubectl.json("get", f"crontabs.v1.{group}", "old", "-n", ns)
    assert (at_v1["apiVersion"], at_v1["spec"]) == (f"{group}/v1", {"cron": "* * * * *"})
    at_beta = kubectl.json("get", f"crontabs.v1beta1.{group}", "new", "-n", ns)
    assert (at_beta["apiVersion"], at_beta["spec"]) == (f"{group}/v1beta1", {"cron": "0 * * * *"})
    # kubectl prefers v1 (GA before beta)
    assert kubectl.json("get", "crontabs", "old", "-n", ns)["apiVersion"] == f"{group}/v1"

    # the dynamic client picks a version by apiVersion
    dyn = dynamic.DynamicClient(api)
    beta = dyn.resources.get(api_version=f"{group}/v1beta1", kind="CronTab")
    items = beta.get(namespace=ns).to_dict()["items"]
    assert {(o["metadata"]["name"], o["apiVersion"]) for o in items} == {
        ("old", f"{group}/v1beta1"),
        ("new", f"{group}/v1beta1"),
    }
    beta.patch(
        name="new",
        namespace=ns,
        body={"spec": {"cron": "5 * * * *"}},
        content_type="application/merge-patch+json",
    )
    v1 = dyn.resources.get(api_version=f"{group}/v1", kind="CronTab")
    assert v1.get(name="new", namespace=ns).to_dict()["spec"] == {"cron": "5 * * * *"}

    # a new storage version is added to status.storedVersions
    definition["spec"]["versions"][0]["storage"] = True
    definition["spec"]["versions"][1]["storage"] = False
    kubectl("apply", "-f", "-", input=json.dumps(definition))
    stored = wait_until(
        lambda: (
            kubectl.json("get", "crd", name_of(definition))["status"]["storedVersions"]
            == ["v1", "v1beta1"]
        )
    )
    assert stored
    # a version that is not served is gone from discovery and from kubectl
    definition["spec"]["versions"][1]["served"] = False
    kubectl("apply", "-f", "-", input=json.dumps(definition))
    wait_until(
        lambda: kubectl.run("get", f"crontabs.v1.{group}", "-n", ns, check=False).returncode != 0
    )
    discovered = json.loads(kubectl("get", "--raw", f"/apis/{group}"))
    assert discovered["preferredVersion"]["version"] == "v1beta1"
    assert [v["version"] for v in discovered["versions"]] == ["v1beta1"]
    got_beta = kubectl.json("get", f"crontabs.v1beta1.{group}", "new", "-n", ns)
    assert got_beta["spec"] == {"cron": "5 * * * *"}


# ---------------------------------------------------------------------------------------
# Patch types


def test_strategic_merge_patch_is_refused_merge_and_json_patch_work(
    kubectl: Kubectl, raw: RawClient, ns: str
) -> None:
    group = "patch.crd-test.example.com"
    install(kubectl, crd(group, "Knob", versions=[version("v1", SCALABLE_SCHEMA)]))
    create(kubectl, cr(f"{group}/v1", "Knob", "k1", {"replicas": 1, "color": "red"}, namespace=ns))
    accepted = (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    )
    out = kubectl.run("patch", "knob", "k1", "-n", ns, "-p", '{"spec":{"replicas":2}}', check=False)
    assert out.returncode != 0
    assert out.stderr.strip() == (
        "error: application/strategic-merge-patch+json is not supported by "
        f"{group}/v1, Kind=Knob: {accepted}"
    )
    resp = raw(
        "PATCH",
        f"/apis/{group}/v1/namespaces/{ns}/knobs/k1",
        b'{"spec":{"replicas":2}}',
        content_type="application/strategic-merge-patch+json",
    )
    assert resp.status == 415
    assert (resp.json()["reason"], resp.json()["message"]) == ("UnsupportedMediaType", accepted)

    kubectl("patch", "knob", "k1", "-n", ns, "--type=merge", "-p", '{"spec":{"replicas":2}}')
    kubectl(
        "patch",
        "knob",
        "k1",
        "-n",
        ns,
        "--type=json",
        "-p",
        '[{"op":"replace","path":"/spec/color","value":"blue"}]',
    )
    assert kubectl.json("get", "knob", "k1", "-n", ns)["spec"] == {"replicas": 2, "color": "blue"}
    # client-side apply patches custom resources with merge patches
    applied = cr(f"{group}/v1", "Knob", "k2", {"replicas": 1}, namespace=ns)
    assert apply(kubectl, applied) == f"knob.{group}/k2 created\n"
    applied["spec"]["replicas"] = 4
    assert apply(kubectl, applied) == f"knob.{group}/k2 configured\n"
    assert kubectl.json("get", "knob", "k2", "-n", ns)["spec"] == {"replicas": 4}


# ---------------------------------------------------------------------------------------
# Deleting a CRD


def test_deleting_a_crd_deletes_its_objects_first(kubectl: Kubectl, ns: str) -> None:
    group = "delete.crd-test.example.com"
    definition = crd(group, "Token")
    install(kubectl, definition)
    other_ns = f"{ns}-b"
    kubectl("create", "namespace", other_ns)
    for n, where in [("t1", ns), ("t2", ns), ("t3", other_ns)]:
        create(kubectl, cr(f"{group}/v1", "Token", n, namespace=where))
    # one object holds a finalizer: the CRD waits for it
    held = cr(f"{group}/v1", "Token", "held", namespace=ns, finalizers=["example.com/hold"])
    create(kubectl, held)

    kubectl("delete", "crd", name_of(definition), "--wait=false")

    def terminating() -> JSON:
        got: JSON = kubectl.json("get", "crd", name_of(definition))
        c = condition(got, "Terminating")
        return c if c.get("reason") == "InstanceDeletionInProgress" else {}

    c = wait_until(terminating)
    assert (c["status"], c["message"]) == ("True", "CustomResource deletion is in progress")
    # the instances are going; no new ones while the CRD terminates
    wait_until(
        lambda: kubectl("get", "tokens", "-A", "-o", "name").split() == [f"token.{group}/held"]
    )
    out = create(kubectl, cr(f"{group}/v1", "Token", "late", namespace=ns), check=False)
    assert out.returncode != 0
    assert "create not allowed while custom resource definition is terminating" in out.stderr
    assert kubectl.json("get", "token", "held", "-n", ns)["metadata"].get("deletionTimestamp")

    # releasing the finalizer lets the CRD go; kubectl delete waits for that
    kubectl(
        "patch", "token", "held", "-n", ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}'
    )
    kubectl("wait", "--for=delete", f"crd/{name_of(definition)}", "--timeout=30s")

    # re-created, the CRD serves none of the old objects
    install(kubectl, definition)
    assert kubectl("get", "tokens", "-A", "-o", "name") == ""

    # and a plain `kubectl delete crd` returns once the CRD and its objects are gone
    create(kubectl, cr(f"{group}/v1", "Token", "t4", namespace=ns))
    assert kubectl("delete", "crd", name_of(definition)) == (
        f'customresourcedefinition.apiextensions.k8s.io "{name_of(definition)}" deleted\n'
    )
    out = kubectl.run("get", "crd", name_of(definition), check=False)
    assert "NotFound" in out.stderr


# ---------------------------------------------------------------------------------------
# Bad CRDs


def _refused(kubectl: Kubectl, definition: JSON) -> set[str]:
    out = kubectl.run("create", "-f", "-", input=json.dumps(definition), check=False)
    assert out.returncode != 0
    assert f'The CustomResourceDefinition "{name_of(definition)}" is invalid' in out.stderr
    return error_lines(out.stderr)


def test_invalid_crds_are_refused_with_field_paths(kubectl: Kubectl) -> None:
    group = "bad.crd-test.example.com"

    wrong_name = crd(group, "Thing")
    wrong_name["metadata"]["name"] = f"stuff.{group}"
    assert _refused(kubectl, wrong_name) == {
        f'metadata.name: Invalid value: "stuff.{group}": must be spec.names.plural+"."+spec.group'
    }

    no_storage = crd(group, "Thing", versions=[version("v1", storage=False)])
    lines = _refused(kubectl, no_storage)
    assert any(
        ln.startswith("spec.versions: Invalid value: ")
        and ln.endswith(": must have exactly one version marked as storage version")
        for ln in lines
    ), lines
    assert (
        "status.storedVersions: Invalid value: []string{}: must have at least one stored version"
        in lines
    )

    two_storage = crd(group, "Thing", versions=[version("v1"), version("v2")])
    lines = _refused(kubectl, two_storage)
    assert any(
        ln.endswith(": must have exactly one version marked as storage version") for ln in lines
    )

    bad_scale = crd(
        group,
        "Thing",
        versions=[
            version(
                "v1",
                SCALABLE_SCHEMA,
                scale={
                    "specReplicasPath": "spec.replicas",
                    "statusReplicasPath": ".spec.replicas",
                    "labelSelectorPath": ".metadata.labels",
                },
            )
        ],
    )
    assert _refused(kubectl, bad_scale) == {
        'spec.subresources.scale.specReplicasPath: Invalid value: "spec.replicas": '
        "must be a simple json path starting with .",
        'spec.subresources.scale.statusReplicasPath: Invalid value: ".spec.replicas": '
        "should be a json path under .status",
        'spec.subresources.scale.labelSelectorPath: Invalid value: ".metadata.labels": '
        "should be a json path under either .spec or .status",
    }

    bad_rule = crd(
        group,
        "Thing",
        versions=[
            version(
                "v1",
                {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "properties": {"a": {"type": "integer"}},
                            "x-kubernetes-validations": [{"rule": "self.nope == 1"}],
                        }
                    },
                },
            )
        ],
    )
    (line,) = _refused(kubectl, bad_rule)
    prefix = "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule"
    assert line.startswith(prefix + ": Invalid value: apiextensions.ValidationRule{")
    assert "compilation failed: ERROR: <input>:1:5: undefined field 'nope'" in line

    untyped = crd(
        group,
        "Thing",
        versions=[version("v1", {"type": "object", "properties": {"spec": {"properties": {}}}})],
    )
    assert _refused(kubectl, untyped) == {
        "spec.validation.openAPIV3Schema.properties[spec].type: Required value: "
        "must not be empty for specified object fields"
    }
    # list and map types are checked where they are declared
    typed = crd(
        group,
        "Thing",
        versions=[
            version(
                "v1",
                {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "properties": {
                                "a": {"type": "string", "x-kubernetes-map-type": "atomic"},
                                "b": {"type": "object", "x-kubernetes-map-type": "sorted"},
                                "c": {
                                    "type": "array",
                                    "x-kubernetes-list-type": "map",
                                    "items": {
                                        "type": "object",
                                        "properties": {"k": {"type": "string"}},
                                    },
                                },
                            },
                        }
                    },
                },
            )
        ],
    )
    at = "spec.validation.openAPIV3Schema.properties[spec].properties"
    assert _refused(kubectl, typed) == {
        f'{at}[a].type: Invalid value: "string": must be object if x-kubernetes-map-type '
        "is specified",
        f'{at}[b].x-kubernetes-map-type: Unsupported value: "sorted": supported values: '
        '"atomic", "granular"',
        f"{at}[c].x-kubernetes-list-map-keys: Required value: must not be empty if "
        "x-kubernetes-list-type is map",
    }
    # none of them was stored
    assert group not in kubectl("get", "crd", "-o", "name")


# ---------------------------------------------------------------------------------------
# Garbage collection and namespace deletion: a whole control plane


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    """``pyk8s server`` with its controller manager (no node agent)."""
    import os

    if not os.path.exists(KUBECTL):
        pytest.skip(f"kubectl is not installed at {KUBECTL}")
    base: Path = tmp_path_factory.mktemp("crd-cluster")
    srv = Server(base / "data", free_port(), command="server", extra_args=("--disable-agent",))
    srv.start()
    try:
        yield Kubectl(srv.kubeconfig)
    finally:
        srv.stop()


def test_custom_resources_are_garbage_collected_and_deleted_with_their_namespace(
    control_plane: Kubectl,
) -> None:
    kubectl = control_plane
    group = "gc.crd-test.example.com"
    install(kubectl, crd(group, "Pet"))
    ns = f"gc-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)

    # a custom resource owned by a ConfigMap goes with it
    owner = json.loads(kubectl("create", "configmap", "owner", "-n", ns, "-o", "json"))
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    create(kubectl, cr(f"{group}/v1", "Pet", "dependent", namespace=ns, ownerReferences=[ref]))
    # and a ConfigMap owned by a custom resource goes with that
    pet = json.loads(
        create(kubectl, cr(f"{group}/v1", "Pet", "parent", namespace=ns), "-o", "json")
    )
    pet_ref = {
        "apiVersion": f"{group}/v1",
        "kind": "Pet",
        "name": "parent",
        "uid": pet["metadata"]["uid"],
    }
    create(
        kubectl,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "child", "namespace": ns, "ownerReferences": [pet_ref]},
        },
    )
    kubectl("delete", "configmap", "owner", "-n", ns)
    kubectl("delete", "pet", "parent", "-n", ns)
    # the collector follows discovery every 30 s, as upstream's: allow for one round
    wait_until(
        lambda: kubectl.run("get", "pet", "dependent", "-n", ns, check=False).returncode != 0,
        within=90,
        every=1,
    )
    wait_until(
        lambda: kubectl.run("get", "configmap", "child", "-n", ns, check=False).returncode != 0,
        within=90,
        every=1,
    )

    # deleting the namespace deletes its custom resources, then the namespace
    create(kubectl, cr(f"{group}/v1", "Pet", "stay", namespace=ns, finalizers=["example.com/x"]))
    create(kubectl, cr(f"{group}/v1", "Pet", "go", namespace=ns))
    kubectl("delete", "namespace", ns, "--wait=false")
    wait_until(
        lambda: kubectl("get", "pets", "-n", ns, "-o", "name").split() == [f"pet.{group}/stay"],
        within=60,
    )
    namespace = kubectl.json("get", "namespace", ns)
    assert namespace["status"]["phase"] == "Terminating"
    kubectl(
        "patch", "pet", "stay", "-n", ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}'
    )
    kubectl("wait", "--for=delete", f"namespace/{ns}", "--timeout=60s")
    assert kubectl("get", "pets", "-A", "-o", "name") == ""
