"""CustomResourceDefinition defaults and validation, with upstream v1.32's messages and paths."""

from __future__ import annotations

import base64
import copy
import importlib.util
import sys
import types
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pyk8s.api.errors import FieldError
from pyk8s.api.validation.apiextensions import (
    default_custom_resource_definition,
    go_repr_validation_rule,
    prepare_custom_resource_definition_for_create,
    prepare_custom_resource_definition_for_update,
    valid_field_path,
    validate_custom_resource_definition,
    validate_custom_resource_definition_status_update,
    validate_custom_resource_definition_update,
)
from tests.api.helpers import msgs

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "replicas": {"type": "integer"},
                "color": {"type": "string", "enum": ["red", "blue"]},
                "size": {"type": "number"},
                "paused": {"type": "boolean"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
        },
        "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
    },
}


def version(name: str = "v1", storage: bool = True, **extra: Any) -> dict[str, Any]:
    v: dict[str, Any] = {
        "name": name,
        "served": True,
        "storage": storage,
        "schema": {"openAPIV3Schema": copy.deepcopy(SCHEMA)},
    }
    v.update(extra)
    return v


def crd(*versions: dict[str, Any], group: str = "example.com", **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": list(versions) or [version()],
        },
    }
    obj["spec"].update(spec)
    default_custom_resource_definition(obj)
    return obj


def errs_of(obj: dict[str, Any]) -> list[str]:
    return msgs(validate_custom_resource_definition(obj))


def established(obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    obj["status"]["conditions"] = [{"type": "Established", "status": "True"}]
    return obj


# --------------------------------------------------------------------------- defaults


def test_defaults() -> None:
    obj: dict[str, Any] = {
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [
                {"name": "v1beta1", "served": True, "storage": False},
                {"name": "v1", "served": True, "storage": True},
            ],
        },
    }
    default_custom_resource_definition(obj)
    assert obj["spec"]["names"] == {
        "plural": "widgets",
        "kind": "Widget",
        "singular": "widget",
        "listKind": "WidgetList",
    }
    assert obj["spec"]["conversion"] == {"strategy": "None"}
    assert obj["status"] == {"storedVersions": ["v1"]}
    assert "additionalPrinterColumns" not in obj["spec"]["versions"][0]


def test_defaults_keep_what_is_set_and_default_the_webhook_port() -> None:
    obj: dict[str, Any] = {
        "spec": {
            "names": {"plural": "widgets", "kind": "Widget", "singular": "w", "listKind": "Ws"},
            "versions": [{"name": "v1", "storage": True}],
            "conversion": {
                "strategy": "Webhook",
                "webhook": {
                    "clientConfig": {"service": {"name": "conv", "namespace": "ns"}},
                    "conversionReviewVersions": ["v1"],
                },
            },
        },
        "status": {"storedVersions": ["v0"]},
    }
    default_custom_resource_definition(obj)
    assert obj["spec"]["names"]["singular"] == "w"
    assert obj["spec"]["names"]["listKind"] == "Ws"
    assert obj["spec"]["conversion"]["webhook"]["clientConfig"]["service"]["port"] == 443
    assert obj["status"]["storedVersions"] == ["v0"]


def test_no_list_kind_without_kind() -> None:
    obj: dict[str, Any] = {"spec": {"names": {"plural": "widgets"}}}
    default_custom_resource_definition(obj)
    assert obj["spec"]["names"] == {"plural": "widgets", "singular": ""}
    assert "status" not in obj


# --------------------------------------------------------------------------- valid CRDs


def test_a_full_crd_is_valid() -> None:
    obj = crd(
        version(
            "v1",
            subresources={
                "status": {},
                "scale": {
                    "specReplicasPath": ".spec.replicas",
                    "statusReplicasPath": ".status.replicas",
                    "labelSelectorPath": ".status.selector",
                },
            },
            additionalPrinterColumns=[
                {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            ],
            selectableFields=[{"jsonPath": ".spec.color"}, {"jsonPath": ".spec.replicas"}],
        ),
        version(
            "v2",
            storage=False,
            deprecated=True,
            deprecationWarning="use v1",
            selectableFields=[{"jsonPath": ".spec.color"}, {"jsonPath": ".spec.replicas"}],
        ),
        conversion={
            "strategy": "Webhook",
            "webhook": {
                "clientConfig": {
                    "service": {"name": "conv", "namespace": "ns", "path": "/convert"}
                },
                "conversionReviewVersions": ["v1", "v1beta1"],
            },
        },
    )
    assert validate_custom_resource_definition(obj) == []


# --------------------------------------------------------------------------- metadata, group, scope


def test_name_must_be_plural_dot_group() -> None:
    obj = crd()
    obj["metadata"]["name"] = "widget.example.com"
    assert errs_of(obj) == [
        'metadata.name: Invalid value: "widget.example.com": '
        'must be spec.names.plural+"."+spec.group'
    ]


def test_group_rules() -> None:
    obj = crd(group="example")
    assert errs_of(obj) == [
        'spec.group: Invalid value: "example": should be a domain with at least one dot'
    ]
    obj = crd(group="Example.com")
    assert (
        'spec.group: Invalid value: "Example.com": a lowercase RFC 1123 subdomain must consist '
        "of lower case alphanumeric characters, '-' or '.', and must start and end with an "
        "alphanumeric character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    ) in errs_of(obj)
    obj = crd()
    obj["spec"]["group"] = ""
    obj["metadata"]["name"] = "widgets."
    assert "spec.group: Required value" in errs_of(obj)


def test_scope() -> None:
    obj = crd(scope="")
    assert errs_of(obj) == ["spec.scope: Required value"]
    obj = crd(scope="Global")
    assert errs_of(obj) == [
        'spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced"'
    ]


# --------------------------------------------------------------------------- versions


def test_schemas_are_required_in_every_version() -> None:
    v2 = version("v2", storage=False)
    del v2["schema"]
    assert errs_of(crd(version(), v2)) == [
        "spec.versions[1].schema.openAPIV3Schema: Required value: schemas are required"
    ]


def test_exactly_one_storage_version_prints_the_versions_as_go_does() -> None:
    obj = crd(version("v1", storage=False), version("v2", storage=False))
    versions = (
        "[]apiextensions.CustomResourceDefinitionVersion{"
        'apiextensions.CustomResourceDefinitionVersion{Name:"v1", Served:true, Storage:false, '
        "Deprecated:false, DeprecationWarning:(*string)(nil), "
        "Schema:(*apiextensions.CustomResourceValidation)(nil), "
        "Subresources:(*apiextensions.CustomResourceSubresources)(nil), "
        "AdditionalPrinterColumns:[]apiextensions.CustomResourceColumnDefinition(nil), "
        "SelectableFields:[]apiextensions.SelectableField(nil)}, "
        'apiextensions.CustomResourceDefinitionVersion{Name:"v2", Served:true, Storage:false, '
        "Deprecated:false, DeprecationWarning:(*string)(nil), "
        "Schema:(*apiextensions.CustomResourceValidation)(nil), "
        "Subresources:(*apiextensions.CustomResourceSubresources)(nil), "
        "AdditionalPrinterColumns:[]apiextensions.CustomResourceColumnDefinition(nil), "
        "SelectableFields:[]apiextensions.SelectableField(nil)}}"
    )
    assert errs_of(obj) == [
        f"spec.versions: Invalid value: {versions}: "
        "must have exactly one version marked as storage version",
        "status.storedVersions: Invalid value: []string(nil): "
        "must have at least one stored version",
    ]
    err = validate_custom_resource_definition(obj)[0]
    assert err.type.reason == "FieldValueInvalid"
    assert err.field == "spec.versions"


def test_two_storage_versions_and_duplicate_names() -> None:
    errs = errs_of(crd(version("v1"), version("v1")))
    assert [e.split(": Invalid value:")[0] for e in errs] == [
        "spec.versions",
        "spec.versions",
        "status.storedVersions",
    ]
    assert errs[0].endswith(": must contain unique version names")
    assert errs[1].endswith(": must have exactly one version marked as storage version")
    # the second "v1" finds its stored version already matched
    assert errs[2] == (
        'status.storedVersions: Invalid value: []string{"v1"}: must have the storage version v1'
    )


def test_version_names_are_dns1035_labels() -> None:
    msg = (
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
        "with an alphabetic character, and end with an alphanumeric character (e.g. "
        "'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
    )
    obj = crd(version("V1"))
    obj["status"]["storedVersions"] = ["V1"]
    assert errs_of(obj) == [
        f'spec.versions[0].name: Invalid value: "V1": {msg}',
        f'spec.version: Invalid value: "V1": {msg}',  # upstream reports versions[0] twice
    ]


def test_deprecation_warning() -> None:
    obj = crd(version(deprecationWarning="old"))
    assert errs_of(obj) == [
        'spec.versions[0].deprecationWarning: Invalid value: "old": '
        "can only be set for deprecated versions"
    ]
    obj = crd(version(deprecated=True, deprecationWarning=""))
    assert errs_of(obj) == [
        'spec.versions[0].deprecationWarning: Invalid value: "": must not be an empty string'
    ]
    obj = crd(version(deprecated=True, deprecationWarning="é\tx"))
    assert errs_of(obj) == [
        'spec.versions[0].deprecationWarning: Invalid value: "é\\tx": must only contain '
        "printable UTF-8 characters; non-printable character found at index 2"
    ]
    obj = crd(version(deprecated=True, deprecationWarning="x" * 257))
    assert errs_of(obj)[0].endswith(": must be <= 256 characters long")


# --------------------------------------------------------------------------- names


def test_names_required() -> None:
    obj = crd()
    obj["spec"]["names"] = {}
    obj["metadata"]["name"] = ".example.com"
    errs = errs_of(obj)
    assert [e for e in errs if e.startswith("spec.names")] == [
        "spec.names.plural: Required value",
        "spec.names.singular: Required value",
        "spec.names.kind: Required value",
        "spec.names.listKind: Required value",
    ]


def test_names_format() -> None:
    obj = crd()
    obj["spec"]["names"].update(
        kind="Wid_get",
        listKind="Wid_get",
        singular="Widget",
        shortNames=["w", "W-1"],
        categories=["all", "-x"],
    )
    errs = errs_of(obj)
    assert [e.split(": ")[0] for e in errs] == [
        "spec.names.singular",
        "spec.names.kind",
        "spec.names.listKind",
        "spec.names.shortNames[1]",
        "spec.names.listKind",
        "spec.names.categories[1]",
    ]
    assert errs[1].startswith(
        'spec.names.kind: Invalid value: "Wid_get": may have mixed case, but should otherwise '
        "match: a DNS-1035 label must consist of"
    )
    assert errs[4] == (
        'spec.names.listKind: Invalid value: "Wid_get": kind and listKind may not be the same'
    )


def test_accepted_names_are_checked_too() -> None:
    obj = crd()
    obj["status"]["acceptedNames"] = {"plural": "Widgets", "kind": "Widget"}
    assert errs_of(obj)[0].startswith(
        'status.acceptedNames.plural: Invalid value: "Widgets": a DNS-1035 label'
    )


# --------------------------------------------------------------------------- subresources, columns


def test_one_version_reports_at_the_top_level_like_upstreams_internal_form() -> None:
    obj = crd(
        version(
            subresources={
                "scale": {
                    "specReplicasPath": "spec.replicas",
                    "statusReplicasPath": ".spec.replicas",
                    "labelSelectorPath": ".metadata.labels",
                }
            },
            additionalPrinterColumns=[
                {"name": "", "type": "float", "format": "decimal", "jsonPath": "spec.x"},
                {"name": "Size", "type": "", "jsonPath": ""},
            ],
        )
    )
    assert errs_of(obj) == [
        'spec.subresources.scale.specReplicasPath: Invalid value: "spec.replicas": '
        "must be a simple json path starting with .",
        'spec.subresources.scale.statusReplicasPath: Invalid value: ".spec.replicas": '
        "should be a json path under .status",
        'spec.subresources.scale.labelSelectorPath: Invalid value: ".metadata.labels": '
        "should be a json path under either .spec or .status",
        "spec.additionalPrinterColumns[0].name: Required value",
        'spec.additionalPrinterColumns[0].type: Invalid value: "float": '
        "must be one of boolean,date,integer,number,string",
        'spec.additionalPrinterColumns[0].format: Invalid value: "decimal": '
        "must be one of byte,date,date-time,double,float,int32,int64,password",
        'spec.additionalPrinterColumns[0].JSONPath: Invalid value: "spec.x": '
        "must be a simple json path starting with .",
        "spec.additionalPrinterColumns[1].type: Required value: "
        "must be one of boolean,date,integer,number,string",
        "spec.additionalPrinterColumns[1].JSONPath: Required value",
    ]


def test_differing_versions_report_per_version() -> None:
    obj = crd(
        version(subresources={"scale": {"specReplicasPath": "", "statusReplicasPath": ""}}),
        version(
            "v2",
            storage=False,
            additionalPrinterColumns=[{"name": "X", "type": "string", "jsonPath": "x"}],
        ),
    )
    assert errs_of(obj) == [
        "spec.versions[0].subresources.scale.specReplicasPath: Required value",
        "spec.versions[0].subresources.scale.statusReplicasPath: Required value",
        'spec.versions[1].additionalPrinterColumns[0].JSONPath: Invalid value: "x": '
        "must be a simple json path starting with .",
    ]


def test_status_subresource_limits_the_schema_root() -> None:
    v = version(subresources={"status": {}})
    v["schema"]["openAPIV3Schema"]["type"] = "array"
    assert errs_of(crd(v))[0] == (
        'spec.validation.openAPIV3Schema.type: Invalid value: "array": only "object" is '
        "allowed as the type at the root of the schema if the status subresource is enabled"
    )
    v = version(subresources={"status": {}})
    v["schema"]["openAPIV3Schema"]["additionalProperties"] = {"type": "string"}
    err = errs_of(crd(v))[0]
    assert err.startswith(
        "spec.validation.openAPIV3Schema: Invalid value: apiextensions.JSONSchemaProps"
        '{ID:"", Schema:"", Ref:(*string)(nil), Description:"", Type:"object", '
    )
    assert "AdditionalProperties:(*apiextensions.JSONSchemaPropsOrBool)(0x" in err
    assert err.endswith(
        ": only [Description Type Format Title Maximum ExclusiveMaximum Minimum "
        "ExclusiveMinimum MaxLength MinLength Pattern MaxItems MinItems UniqueItems MultipleOf "
        "Required Items Properties ExternalDocs Example XPreserveUnknownFields XValidations] "
        "fields are allowed at the root of the schema if the status subresource is enabled"
    )
    # without the status subresource the same root is fine (as far as this check goes)
    v = version()
    v["schema"]["openAPIV3Schema"]["type"] = "array"
    assert not [e for e in errs_of(crd(v)) if "status subresource" in e]


def test_nullable_root() -> None:
    v = version()
    v["schema"]["openAPIV3Schema"]["nullable"] = True
    assert "spec.validation.openAPIV3Schema.nullable: Forbidden: nullable cannot be true " in (
        errs_of(crd(v))[0] + " "
    )


# --------------------------------------------------------------------------- selectable fields


def test_selectable_fields() -> None:
    obj = crd(
        version(
            selectableFields=[
                {"jsonPath": ".spec.color"},
                {"jsonPath": ".spec.nope"},
                {"jsonPath": ".spec.tags"},
                {"jsonPath": ".spec.color"},
                {"jsonPath": ".spec.labels['app']"},
                {"jsonPath": ""},
                {"jsonPath": "spec.color"},
            ]
        )
    )
    assert errs_of(obj) == [
        'spec.selectableFields[1].jsonPath: Invalid value: ".spec.nope": '
        "is an invalid path: does not refer to a valid field",
        'spec.selectableFields[2].jsonPath: Invalid value: ".spec.tags": must point to a field '
        "of type string, boolean or integer. Enum string fields and strings with formats are "
        "allowed.",
        'spec.selectableFields[3].jsonPath: Duplicate value: ".spec.color"',
        "spec.selectableFields[4].jsonPath: Invalid value: \".spec.labels['app']\": "
        "is an invalid path: array notation is not allowed",
        "spec.selectableFields[5].jsonPath: Required value",
        'spec.selectableFields[6].jsonPath: Invalid value: "spec.color": '
        "is an invalid path: expected [ or . but got: spec",
    ]


def test_selectable_fields_metadata_and_limit() -> None:
    v = version(selectableFields=[{"jsonPath": ".metadata.name"}])
    v["schema"]["openAPIV3Schema"]["properties"]["metadata"] = {
        "type": "object",
        "properties": {"name": {"type": "string"}},
    }
    assert errs_of(crd(v)) == [
        'spec.selectableFields[0].jsonPath: Invalid value: ".metadata.name": '
        "must not point to fields in metadata"
    ]
    props = {f"f{i}": {"type": "string"} for i in range(9)}
    v = version(selectableFields=[{"jsonPath": f".spec.f{i}"} for i in range(9)])
    v["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"] = props
    assert errs_of(crd(v)) == ["spec.selectableFields: Too many: 9: must have at most 8 items"]


def test_selectable_fields_per_version_need_their_own_schema() -> None:
    # schemas identical (moved to the top) but fields differ: upstream rejects this
    obj = crd(
        version(selectableFields=[{"jsonPath": ".spec.color"}]),
        version("v2", storage=False),
    )
    assert errs_of(obj) == [
        'spec.versions[0].selectableFields: Invalid value: "": selectableFields may only be '
        "set when version.schema.openAPIV3Schema is not included"
    ]


def test_valid_field_path() -> None:
    assert valid_field_path(".spec.color", SCHEMA)[1] == {"type": "string", "enum": ["red", "blue"]}
    elements, found = valid_field_path(".spec.labels['a.b']", SCHEMA)
    assert elements == [("field", "spec"), ("field", "labels"), ("key", "a.b")]
    assert found == {"type": "string"}
    for path, message in [
        (".spec.", "unexpected end of JSON path"),
        (".spec[", "unexpected end of JSON path"),
        (".spec.labels[a]", "expected single quoted string but got a"),
        (".spec.labels['a'", "unexpected end of JSON path"),
        (".spec.labels['a'x", "expected ] but got x"),
        (".spec.labels['\\q']", "invalid string literal: invalid escape char \\q"),
        (".spec.replicas.x", "does not refer to a valid field"),
    ]:
        with pytest.raises(ValueError) as e:
            valid_field_path(path, SCHEMA)
        assert str(e.value) == message, path


# --------------------------------------------------------------------------- conversion


def webhook_crd(webhook: dict[str, Any], strategy: str = "Webhook") -> dict[str, Any]:
    return crd(
        version(),
        version("v2", storage=False),
        conversion={"strategy": strategy, "webhook": webhook},
    )


def conversion_errs(obj: dict[str, Any]) -> list[str]:
    return [e for e in errs_of(obj) if e.startswith("spec.conversion")]


def test_conversion_strategy() -> None:
    assert errs_of(crd(conversion={"strategy": ""})) == ["spec.conversion.strategy: Required value"]
    assert errs_of(crd(conversion={"strategy": "Magic"})) == [
        'spec.conversion.strategy: Unsupported value: "Magic": supported values: "None", "Webhook"'
    ]


def test_webhook_needs_client_config_and_review_versions() -> None:
    assert conversion_errs(webhook_crd({})) == [
        "spec.conversion.webhookClientConfig: Required value: "
        "required when strategy is set to Webhook",
        "spec.conversion.conversionReviewVersions: Required value",
    ]
    assert conversion_errs(
        webhook_crd(
            {
                "clientConfig": {"url": "https://a.example.com", "service": {"name": "a"}},
                "conversionReviewVersions": ["v1"],
            }
        )
    ) == [
        "spec.conversion.webhookClientConfig: Required value: "
        "exactly one of url or service is required"
    ]


def test_none_strategy_forbids_webhook_settings() -> None:
    obj = webhook_crd(
        {"clientConfig": {"url": "https://x.example.com"}, "conversionReviewVersions": ["v1"]},
        strategy="None",
    )
    assert conversion_errs(obj) == [
        "spec.conversion.webhookClientConfig: Forbidden: "
        "should not be set when strategy is not set to Webhook",
        "spec.conversion.conversionReviewVersions: Forbidden: "
        "should not be set when strategy is not set to Webhook",
    ]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "http://example.com/convert",
            [
                "Invalid value: \"http\": 'https' is the only allowed URL scheme; "
                "desired format: https://host[/path]"
            ],
        ),
        (
            "https:///convert",
            ['Invalid value: "": host must be specified; desired format: https://host[/path]'],
        ),
        (
            "https://user:pw@example.com/",
            ['Invalid value: "user:pw": user information is not permitted in the URL'],
        ),
        (
            "https://example.com/#frag",
            ['Invalid value: "frag": fragments are not permitted in the URL'],
        ),
        (
            "https://example.com/?a=b",
            ['Invalid value: "a=b": query parameters are not permitted in the URL'],
        ),
        (
            "https://example.com:port/",
            [
                'Required value: url must be a valid URL: parse "https://example.com:port/": '
                'invalid port ":port" after host; desired format: https://host[/path]'
            ],
        ),
        (
            "https://exa mple.com/",
            [
                'Required value: url must be a valid URL: parse "https://exa mple.com/": '
                'invalid character " " in host name; desired format: https://host[/path]'
            ],
        ),
        (
            "",
            [
                "Invalid value: \"\": 'https' is the only allowed URL scheme; "
                "desired format: https://host[/path]",
                'Invalid value: "": host must be specified; desired format: https://host[/path]',
            ],
        ),
        ("https://conv.example.com:8443/convert", []),
    ],
)
def test_webhook_url(url: str, expected: list[str]) -> None:
    obj = webhook_crd({"clientConfig": {"url": url}, "conversionReviewVersions": ["v1"]})
    prefix = "spec.conversion.webhookClientConfig.url: "
    assert conversion_errs(obj) == [prefix + e for e in expected]


def test_webhook_service_with_upstreams_swapped_name_and_namespace() -> None:
    obj = webhook_crd(
        {
            "clientConfig": {
                "service": {"name": "", "namespace": "", "port": 70000, "path": "x/Ab/"}
            },
            "conversionReviewVersions": ["v1"],
        }
    )
    p = "spec.conversion.webhookClientConfig.service"
    assert conversion_errs(obj) == [
        f"{p}.name: Required value: service name is required",
        f"{p}.namespace: Required value: service namespace is required",
        f"{p}.port: Invalid value: 70000: port is not valid: must be between 1 and 65535, "
        "inclusive",
        f"{p}.path: Invalid value: \"x/Ab/\": must start with a '/'",
        # upstream drops the first character whatever it is, then splits on "/"
        f'{p}.path: Invalid value: "x/Ab/": segment[0] may not be empty',
        f'{p}.path: Invalid value: "x/Ab/": segment[1]: a lowercase RFC 1123 subdomain must '
        "consist of lower case alphanumeric characters, '-' or '.', and must start and end "
        "with an alphanumeric character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
    ]
    # a missing namespace is reported as the name (upstream passes them swapped)
    obj = webhook_crd(
        {
            "clientConfig": {"service": {"name": "conv", "namespace": ""}},
            "conversionReviewVersions": ["v1"],
        }
    )
    assert conversion_errs(obj) == [f"{p}.name: Required value: service name is required"]


def test_conversion_review_versions() -> None:
    obj = webhook_crd(
        {
            "clientConfig": {"url": "https://conv.example.com"},
            "conversionReviewVersions": ["v2", "v2", "V3"],
        }
    )
    p = "spec.conversion.conversionReviewVersions"
    errs = conversion_errs(obj)
    assert errs[0] == f'{p}[1]: Invalid value: "v2": duplicate version'
    assert errs[1].startswith(f'{p}[2]: Invalid value: "V3": a DNS-1035 label must consist')
    assert errs[2] == (
        f'{p}: Invalid value: []string{{"v2", "v2", "V3"}}: '
        "must include at least one of v1, v1beta1"
    )


def test_non_none_conversion_needs_pruning() -> None:
    obj = webhook_crd(
        {"clientConfig": {"url": "https://conv.example.com"}, "conversionReviewVersions": ["v1"]}
    )
    obj["spec"]["preserveUnknownFields"] = True
    assert errs_of(obj) == [
        'spec.conversion.strategy: Invalid value: "Webhook": '
        "must be None if spec.preserveUnknownFields is true",
        "spec.preserveUnknownFields: Invalid value: true: cannot set to true, set "
        "x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead",
    ]


def test_defaults_need_pruning() -> None:
    v = version()
    v["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["replicas"]["default"] = 1
    obj = crd(v, preserveUnknownFields=True)
    assert errs_of(obj)[0] == (
        "spec.preserveUnknownFields: Invalid value: true: "
        "must be false in order to use defaults in the schema"
    )


def _certificate_pem() -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_ca_bundle_is_checked_on_update_of_an_established_crd() -> None:
    good = base64.b64encode(_certificate_pem()).decode()
    bad = base64.b64encode(b"not a pem").decode()

    def with_bundle(bundle: str) -> dict[str, Any]:
        return webhook_crd(
            {
                "clientConfig": {"url": "https://conv.example.com", "caBundle": bundle},
                "conversionReviewVersions": ["v1"],
            }
        )

    assert validate_custom_resource_definition(with_bundle(good)) == []
    assert validate_custom_resource_definition(with_bundle(bad)) == []  # not established yet
    old = established(with_bundle(good))
    assert msgs(validate_custom_resource_definition_update(established(with_bundle(bad)), old)) == [
        "spec.conversion.webhookClientConfig.caBundle: Invalid value: []byte{0x6e, 0x6f, 0x74, "
        "0x20, 0x61, 0x20, 0x70, 0x65, 0x6d}: unable to load root certificates: "
        "unable to parse bytes as PEM block"
    ]
    # an old, already invalid bundle may stay invalid
    old_bad = established(with_bundle(bad))
    assert validate_custom_resource_definition_update(established(with_bundle(bad)), old_bad) == []
    no_cert = base64.b64encode(b"-----BEGIN KEY-----\nAAAA\n-----END KEY-----\n").decode()
    (err,) = validate_custom_resource_definition_update(established(with_bundle(no_cert)), old)
    assert str(err).endswith(": no valid certificate authority data seen")


# --------------------------------------------------------------------------- status, approval


def test_stored_versions() -> None:
    obj = crd(version("v1"), version("v2", storage=False))
    obj["status"]["storedVersions"] = []
    assert errs_of(obj) == [
        "status.storedVersions: Invalid value: []string{}: must have at least one stored version"
    ]
    obj["status"]["storedVersions"] = ["v1alpha", "v2", "v0"]
    assert errs_of(obj) == [
        'status.storedVersions: Invalid value: []string{"v1alpha", "v2", "v0"}: '
        "must have the storage version v1",
        'status.storedVersions[0]: Invalid value: "v1alpha": must appear in spec.versions',
        'status.storedVersions[2]: Invalid value: "v0": must appear in spec.versions',
    ]


def test_api_approval_for_protected_groups() -> None:
    key = "api-approved.kubernetes.io"
    obj = crd(group="widgets.k8s.io")
    assert errs_of(obj) == [
        f"metadata.annotations[{key}]: Required value: protected groups must have approval "
        f'annotation "{key}", see https://github.com/kubernetes/enhancements/pull/1111'
    ]
    obj["metadata"]["annotations"] = {key: "yes please"}
    assert errs_of(obj) == [
        f'metadata.annotations[{key}]: Invalid value: "yes please": protected groups must have '
        f'approval annotation "{key}" with either a URL or a reason starting with '
        '"unapproved", see https://github.com/kubernetes/enhancements/pull/1111'
    ]
    for ok in ("unapproved, experimental", "https://github.com/kubernetes/kubernetes/pull/1"):
        obj["metadata"]["annotations"] = {key: ok}
        assert errs_of(obj) == [], ok
    # an update that keeps the state is not re-checked
    old = crd(group="widgets.k8s.io")
    assert validate_custom_resource_definition_update(crd(group="widgets.k8s.io"), old) == []


# --------------------------------------------------------------------------- update


def test_update_immutable_fields() -> None:
    old = crd()
    new = copy.deepcopy(old)
    new["spec"]["scope"] = "Cluster"
    new["spec"]["names"]["kind"] = "Gadget"
    new["spec"]["names"]["listKind"] = "GadgetList"
    assert validate_custom_resource_definition_update(new, old) == []  # not established yet
    assert msgs(validate_custom_resource_definition_update(new, established(old))) == [
        'spec.scope: Invalid value: "Cluster": field is immutable',
        'spec.names.kind: Invalid value: "Gadget": field is immutable',
    ]
    new = copy.deepcopy(old)
    new["spec"]["group"] = "other.com"
    new["spec"]["names"]["plural"] = "gadgets"
    errs = msgs(validate_custom_resource_definition_update(new, old))
    assert 'spec.group: Invalid value: "other.com": field is immutable' in errs
    assert 'spec.names.plural: Invalid value: "gadgets": field is immutable' in errs
    new = copy.deepcopy(old)
    new["metadata"]["name"] = "gadgets.example.com"
    assert msgs(validate_custom_resource_definition_update(new, old)) == [
        'metadata.name: Invalid value: "gadgets.example.com": field is immutable'
    ]


def test_update_ratchets() -> None:
    # an old CRD without schemas (from v1beta1 days) may keep them missing where not served
    old = crd(version(), version("v2", storage=False, served=False))
    del old["spec"]["versions"][1]["schema"]
    new = copy.deepcopy(old)
    assert validate_custom_resource_definition_update(new, old) == []
    assert msgs(validate_custom_resource_definition(new)) == [
        "spec.versions[1].schema.openAPIV3Schema: Required value: schemas are required"
    ]
    new["spec"]["versions"][1]["served"] = True
    assert msgs(validate_custom_resource_definition_update(new, old))[0] == (
        "spec.versions[1].schema.openAPIV3Schema: Required value: "
        "because otherwise all fields are pruned"
    )
    # an unrecognized ConversionReview version may stay
    old = webhook_crd(
        {"clientConfig": {"url": "https://conv.example.com"}, "conversionReviewVersions": ["v9"]}
    )
    assert validate_custom_resource_definition_update(copy.deepcopy(old), old) == []
    assert validate_custom_resource_definition(old) != []
    # preserveUnknownFields=true may stay true
    old = crd(preserveUnknownFields=True)
    assert validate_custom_resource_definition_update(copy.deepcopy(old), old) == []


def test_status_update() -> None:
    old = crd()
    new = copy.deepcopy(old)
    new["status"]["acceptedNames"] = {"plural": "widgets", "kind": "widget kind"}
    assert msgs(validate_custom_resource_definition_status_update(new, old)) == [
        'status.acceptedNames.kind: Invalid value: "widget kind": may have mixed case, but '
        "should otherwise match: a DNS-1035 label must consist of lower case alphanumeric "
        "characters or '-', start with an alphabetic character, and end with an alphanumeric "
        "character (e.g. 'my-name',  or 'abc-123', regex used for validation is "
        "'[a-z]([-a-z0-9]*[a-z0-9])?')"
    ]


def test_prepare_for_create_and_update() -> None:
    obj = crd(version("v1", storage=False), version("v2"))
    obj["status"] = {"conditions": [{"type": "Established", "status": "True"}]}
    prepare_custom_resource_definition_for_create(obj)
    assert obj["status"] == {"acceptedNames": {"plural": "", "kind": ""}, "storedVersions": ["v2"]}
    assert obj["metadata"]["generation"] == 1
    new = copy.deepcopy(obj)
    new["status"] = {}
    new["spec"]["versions"][0]["storage"] = True
    new["spec"]["versions"][1]["storage"] = False
    prepare_custom_resource_definition_for_update(new, obj)
    assert new["status"]["storedVersions"] == ["v2", "v1"]
    assert new["metadata"]["generation"] == 2
    same = copy.deepcopy(new)
    prepare_custom_resource_definition_for_update(same, new)
    assert same["metadata"]["generation"] == 2


def test_go_repr_of_a_validation_rule() -> None:
    assert go_repr_validation_rule({"rule": "self > 0", "reason": "FieldValueForbidden"}) == (
        'apiextensions.ValidationRule{Rule:"self > 0", Message:"", MessageExpression:"", '
        'Reason:(*apiextensions.FieldValueErrorReason)(0xc000000000), FieldPath:"", '
        "OptionalOldSelf:(*bool)(nil)}"
    )


# --------------------------------------------------------------------------- schema helpers


def test_schema_helpers_are_called_with_upstreams_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []

    def structural_errors(schema: dict[str, Any], path: str) -> list[FieldError]:
        calls.append(("structural", path))
        if schema.get("x-broken"):
            from pyk8s.api import errors

            return [errors.required(f"{path}.properties[spec].type")]
        return []

    def compile_schema_rules(schema: dict[str, Any], path: str) -> list[FieldError]:
        calls.append(("cel", path))
        from pyk8s.api import errors

        return [errors.invalid(f"{path}.x-kubernetes-validations[0].rule", "x", "bad rule")]

    crdschema = types.ModuleType("pyk8s.api.crdschema")
    crdschema.structural_errors = structural_errors  # type: ignore[attr-defined]
    cel = types.ModuleType("pyk8s.api.cel")
    cel.compile_schema_rules = compile_schema_rules  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pyk8s.api.crdschema", crdschema)
    monkeypatch.setitem(sys.modules, "pyk8s.api.cel", cel)

    v = version()
    v["schema"]["openAPIV3Schema"]["x-kubernetes-validations"] = [{"rule": "x"}]
    assert errs_of(crd(v)) == [
        'spec.validation.openAPIV3Schema.x-kubernetes-validations[0].rule: Invalid value: "x": '
        "bad rule"
    ]
    assert calls == [
        ("structural", "spec.validation.openAPIV3Schema"),
        ("cel", "spec.validation.openAPIV3Schema"),
    ]
    calls.clear()
    v2 = version("v2", storage=False)
    v2["schema"]["openAPIV3Schema"]["x-broken"] = True
    v2["schema"]["openAPIV3Schema"]["x-kubernetes-validations"] = [{"rule": "x"}]
    assert errs_of(crd(version(), v2)) == [
        "spec.versions[1].schema.openAPIV3Schema.properties[spec].type: Required value"
    ]
    # a schema with structural errors keeps only the errors of its rules' own fields
    assert calls == [
        ("structural", "spec.versions[0].schema.openAPIV3Schema"),
        ("structural", "spec.versions[1].schema.openAPIV3Schema"),
        ("cel", "spec.versions[1].schema.openAPIV3Schema"),
    ]


@pytest.mark.skipif(
    importlib.util.find_spec("pyk8s.api.crdschema") is None, reason="crdschema not there yet"
)
def test_non_structural_schema_is_rejected() -> None:
    v = version()
    v["schema"]["openAPIV3Schema"]["properties"]["spec"] = {"properties": {"a": {}}}
    errs = validate_custom_resource_definition(crd(v))
    assert errs
    assert all(e.field.startswith("spec.validation.openAPIV3Schema") for e in errs)


@pytest.mark.skipif(importlib.util.find_spec("pyk8s.api.cel") is None, reason="cel not there yet")
def test_uncompilable_rule_is_rejected() -> None:
    v = version()
    v["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] = [
        {"rule": "self.replicas >>> 1"}
    ]
    errs = validate_custom_resource_definition(crd(v))
    assert [e.field for e in errs] == [
        "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule"
    ]
