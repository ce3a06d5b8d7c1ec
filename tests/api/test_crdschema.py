"""CRD structural schemas: the checks, pruning, defaulting and validation a user meets.

Expected strings are upstream's (v1.32): most come from apiextensions-apiserver's own
tests (``test/integration/validation_test.go``, ``objectmeta_test.go``,
``listtype_test.go``, ``pkg/apiserver/validation/validation_test.go``), the rest from
reading the code that prints them.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyk8s.api.crdschema import (
    apply_defaults,
    prune,
    structural_errors,
    validate,
    validate_openapi,
    validate_update,
)
from pyk8s.api.crdschema._goregex import GoRegexError, compile_go
from pyk8s.api.gofmt import go_bad_value, go_float, go_json

P = "spec.versions[0].schema.openAPIV3Schema"


def y(text: str) -> Any:
    return yaml.safe_load(text)


def msgs(errs: list[Any]) -> list[str]:
    return [str(e) for e in errs]


def obj_schema(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props}


def check(schema: dict[str, Any], obj: Any) -> list[str]:
    return msgs(validate(obj, schema))


# ======================================================================== Go rendering


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("x", '"x"'),
        ('a"b', '"a\\"b"'),
        ("tab\there", '"tab\\there"'),
        ("\x00", '"\\x00"'),
        ("héllo", '"héllo"'),
        (None, '"null"'),
        (True, "true"),
        (3, "3"),
        (1.5, "1.5"),
        (1e6, "1e+06"),
        (123456.0, "123456"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        ({"name": "a", "b": 1}, 'map[string]interface {}{"b":1, "name":"a"}'),
        (["a", 1, None], '[]interface {}{"a", 1, interface {}(nil)}'),
        ({}, "map[string]interface {}{}"),
    ],
)
def test_values_print_as_go_prints_them(value: Any, shown: str) -> None:
    assert go_bad_value(value) == shown


def test_go_float_and_json_number_formats() -> None:
    assert go_float(1234567.0) == "1.234567e+06"
    assert go_float(-2.5e-7) == "-2.5e-07"
    assert go_json(1e21) == "1e+21"
    assert go_json(1e-7) == "1e-7"
    assert go_json({"b": [1, 2.5], "a": "<"}) == '{"a":"\\u003c","b":[1,2.5]}'


# ======================================================================== Go regular expressions


@pytest.mark.parametrize(
    ("pattern", "error"),
    [
        ("+", "error parsing regexp: missing argument to repetition operator: `+`"),
        ("(a", "error parsing regexp: missing closing ): `(a`"),
        ("a)", "error parsing regexp: unexpected ): `a)`"),
        ("[a", "error parsing regexp: missing closing ]: `[a`"),
        ("a**", "error parsing regexp: invalid nested repetition operator: `**`"),
        ("a{1001}", "error parsing regexp: invalid repeat count: `{1001}`"),
        ("\\1", "error parsing regexp: invalid escape sequence: `\\1`"),
        ("(?=a)", "error parsing regexp: invalid or unsupported Perl syntax: `(?=`"),
        ("[z-a]", "error parsing regexp: invalid character class range: `z-a`"),
    ],
)
def test_go_regexp_errors(pattern: str, error: str) -> None:
    with pytest.raises(GoRegexError) as e:
        compile_go(pattern)
    assert str(e.value) == error


def test_go_regexp_semantics() -> None:
    assert compile_go("^a$").search("a")
    assert not compile_go("^a$").search("a\n")  # Go's $ is the very end
    assert not compile_go("^\\d+$").search("١٢")  # \d is ASCII-only in Go
    assert compile_go("(?i)abc").search("xABCx")
    assert compile_go("[[:alpha:]]+").search("abc")
    assert compile_go("a{2").search("a{2")  # not a repeat: literal brace
    assert compile_go("b").search("abc")  # unanchored, like MatchString


# ======================================================================== validate: types


TYPE_CASES = [
    ("foo", "string"),
    (42, "integer"),
    (True, "boolean"),
    (1.2, "number"),
    ([], "array"),
    (None, "null"),
]


@pytest.mark.parametrize(("value", "kind"), TYPE_CASES)
def test_type_mismatch_against_object(value: Any, kind: str) -> None:
    schema = obj_schema(field={"type": "object"})
    assert check(schema, {"field": value}) == [
        f'field: Invalid value: "{kind}": field in body must be of type object: "{kind}"'
    ]


def test_type_mismatch_reason_is_type_invalid() -> None:
    [err] = validate(
        {"spec": {"replicas": "x"}}, obj_schema(spec=obj_schema(replicas={"type": "integer"}))
    )
    assert str(err) == (
        'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: '
        '"string"'
    )
    assert err.type.reason == "FieldValueTypeInvalid"
    assert err.field == "spec.replicas"


def test_integral_float_is_an_integer_and_integer_is_a_number() -> None:
    schema = obj_schema(i={"type": "integer"}, n={"type": "number"})
    assert check(schema, {"i": 3.0, "n": 3}) == []
    assert check(schema, {"i": 3.5}) == [
        'i: Invalid value: "number": i in body must be of type integer: "number"'
    ]


def test_int_or_string() -> None:
    schema = obj_schema(field={"x-kubernetes-int-or-string": True})
    assert check(schema, {"field": 42}) == []
    assert check(schema, {"field": "foo"}) == []
    cases: list[tuple[Any, str]] = [
        (None, "null"),
        (True, "boolean"),
        (1.2, "number"),
        ({}, "object"),
    ]
    for value, kind in cases:
        assert check(schema, {"field": value}) == [
            f'field: Invalid value: "{kind}": field in body must be of type integer,string: '
            f'"{kind}"'
        ]


def test_nullable_int_or_string_with_any_of() -> None:
    schema = obj_schema(
        field={
            "nullable": True,
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
        }
    )
    assert check(schema, {"field": None}) == []
    assert check(schema, {"field": 42}) == []
    assert sorted(check(schema, {"field": True})) == [
        '<nil>: Invalid value: "": "field" must validate at least one schema (anyOf)',
        'field: Invalid value: "boolean": field in body must be of type integer,string: "boolean"',
        'field: Invalid value: "boolean": field in body must be of type integer: "boolean"',
    ]


def test_all_of_failures_name_the_junctor() -> None:
    schema = obj_schema(
        field={
            "nullable": True,
            "x-kubernetes-int-or-string": True,
            "allOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}],
        }
    )
    assert sorted(check(schema, {"field": []})) == [
        '<nil>: Invalid value: "": "field" must validate all the schemas (allOf). None validated',
        '<nil>: Invalid value: "": "field" must validate at least one schema (anyOf)',
        'field: Invalid value: "array": field in body must be of type integer,string: "array"',
        'field: Invalid value: "array": field in body must be of type integer: "array"',
    ]


def test_one_of_and_not() -> None:
    schema = obj_schema(
        s={
            "type": "string",
            "oneOf": [{"pattern": "^a"}, {"pattern": "b$"}],
            "not": {"enum": ["x"]},
        }
    )
    assert check(schema, {"s": "ac"}) == []
    assert check(schema, {"s": "ab"}) == [
        '<nil>: Invalid value: "": "s" must validate one and only one schema (oneOf). '
        "Found 2 valid alternatives"
    ]
    assert check(schema, {"s": "x"}) == [
        '<nil>: Invalid value: "": "s" must validate one and only one schema (oneOf). '
        "Found none valid",
        "s: Invalid value: \"x\": s in body should match '^a'",
        '<nil>: Invalid value: "": "s" must not validate the schema (not)',
    ]


def test_junctor_errors_carry_the_caller_path() -> None:
    schema = {"type": "object", "anyOf": [{"required": ["a"]}, {"required": ["b"]}]}
    assert msgs(validate_openapi({}, schema, "status")) == [
        'status: Invalid value: "": "" must validate at least one schema (anyOf)',
        "status.a: Required value",
    ]


# ======================================================================== validate: keywords


def test_required() -> None:
    schema = y(
        """
type: object
required: [field]
properties:
  field:
    type: object
    required: [nested]
    properties:
      nested: {}
"""
    )
    assert check(schema, {"test": "a"}) == ["field: Required value"]
    assert check(schema, {"field": {}}) == ["field.nested: Required value"]
    [err] = validate({"field": {}}, schema)
    assert err.type.reason == "FieldValueRequired"


def test_enum_reports_type_and_value() -> None:
    schema = y(
        """
type: object
properties:
  field:
    type: object
    required: [nestedint, nestedstring]
    properties:
      nestedint: {type: integer, enum: [1, 2]}
      nestedstring: {type: string, enum: [a, b]}
"""
    )
    assert check(schema, {"field": {}}) == [
        "field.nestedint: Required value",
        "field.nestedstring: Required value",
    ]
    assert check(schema, {"field": {"nestedint": "x", "nestedstring": True}}) == [
        'field.nestedint: Invalid value: "string": field.nestedint in body must be of type '
        'integer: "string"',
        'field.nestedint: Unsupported value: "x": supported values: "1", "2"',
        'field.nestedstring: Invalid value: "boolean": field.nestedstring in body must be of '
        'type string: "boolean"',
        'field.nestedstring: Unsupported value: true: supported values: "a", "b"',
    ]


def test_enum_quirks() -> None:
    # a null never matches an enum, even with nullable; objects are shown as JSON
    schema = obj_schema(
        n={"type": "string", "nullable": True, "enum": ["a"]},
        o={"type": "object", "enum": [{"k": "v"}]},
    )
    assert check(schema, {"n": None}) == ['n: Unsupported value: "null": supported values: "a"']
    assert check(schema, {"o": {"k": "w"}}) == [
        'o: Unsupported value: map[string]interface {}{"k":"w"}: supported values: '
        '"{\\"k\\":\\"v\\"}"'
    ]
    assert check(schema, {"o": {"k": "v"}}) == []


def test_pattern() -> None:
    schema = obj_schema(spec=obj_schema(x={"type": "string", "pattern": "^a"}))
    assert check(schema, {"spec": {"x": "ba"}}) == [
        "spec.x: Invalid value: \"ba\": spec.x in body should match '^a'"
    ]


def test_invalid_pattern_at_runtime() -> None:
    schema = obj_schema(field={"type": "string", "pattern": "+"})
    assert check(schema, {"field": "foo"}) == [
        'field: Invalid value: "foo": field in body should match \'+, but pattern is invalid: '
        "error parsing regexp: missing argument to repetition operator: `+`'"
    ]


def test_string_lengths() -> None:
    schema = obj_schema(s={"type": "string", "maxLength": 5, "minLength": 2, "pattern": "^z"})
    [long] = validate({"s": "abcdefg"}, schema)  # only the first failing check counts
    assert str(long) == "s: Too long: may not be more than 5 bytes"
    assert long.type.reason == "FieldValueTooLong"
    assert check(schema, {"s": "a"}) == [
        's: Invalid value: "a": s in body should be at least 2 chars long'
    ]
    assert check(schema, {"s": "ééé"}) == ["s: Invalid value: \"ééé\": s in body should match '^z'"]


def test_bounds() -> None:
    schema = obj_schema(
        i={"type": "integer", "minimum": 1, "maximum": 10},
        e={
            "type": "integer",
            "minimum": 1,
            "exclusiveMinimum": True,
            "maximum": 10,
            "exclusiveMaximum": True,
        },
        n={"type": "number", "minimum": 0.5, "maximum": 2.5},
    )
    assert check(schema, {"i": 0}) == [
        "i: Invalid value: 0: i in body should be greater than or equal to 1"
    ]
    assert check(schema, {"i": 11}) == [
        "i: Invalid value: 11: i in body should be less than or equal to 10"
    ]
    assert check(schema, {"e": 1}) == ["e: Invalid value: 1: e in body should be greater than 1"]
    assert check(schema, {"e": 10}) == ["e: Invalid value: 10: e in body should be less than 10"]
    assert check(schema, {"n": 0.25}) == [
        "n: Invalid value: 0.25: n in body should be greater than or equal to 0.5"
    ]
    assert check(schema, {"n": 3}) == [
        "n: Invalid value: 3: n in body should be less than or equal to 2"  # int bound truncated
    ]


def test_multiple_of() -> None:
    schema = obj_schema(
        i={"type": "integer", "multipleOf": 3}, n={"type": "number", "multipleOf": 0.5}
    )
    assert check(schema, {"i": 9, "n": 1.5}) == []
    assert check(schema, {"i": 10}) == ["i: Invalid value: 10: i in body should be a multiple of 3"]
    assert check(schema, {"n": 0.3}) == [
        "n: Invalid value: 0.3: n in body should be a multiple of 0.5"
    ]


def test_items_bounds_and_uniqueness() -> None:
    schema = obj_schema(
        l={"type": "array", "items": {"type": "string"}, "maxItems": 3, "minItems": 2},
        u={"type": "array", "items": {"type": "integer"}, "uniqueItems": True},
    )
    [many] = validate({"l": ["a", "b", "c", "d"]}, schema)
    assert str(many) == "l: Too many: 4: must have at most 3 items"
    assert many.type.reason == "FieldValueTooMany"
    assert check(schema, {"l": ["a"]}) == [
        "l: Invalid value: 1: l in body should have at least 2 items"
    ]
    assert check(schema, {"l": ["a", 1]}) == [
        'l[1]: Invalid value: "integer": l[1] in body must be of type string: "integer"'
    ]
    assert check(schema, {"u": [1, 2, 1]}) == [
        'u: Invalid value: "": u in body shouldn\'t contain duplicates'
    ]


def test_property_counts() -> None:
    schema = obj_schema(
        m={
            "type": "object",
            "additionalProperties": {"type": "string"},
            "maxProperties": 1,
            "minProperties": 1,
        }
    )
    assert check(schema, {"m": {"a": "1", "b": "2"}}) == [
        "m: Too many: 2: must have at most 1 items"
    ]
    assert check(schema, {"m": {}}) == [
        "m: Invalid value: 0: m in body should have at least 1 properties"
    ]


def test_additional_properties() -> None:
    schema = obj_schema(
        labels={"type": "object", "additionalProperties": {"type": "string"}},
        closed={"type": "object", "additionalProperties": False},
    )
    assert check(schema, {"labels": {"a": "x", "b": 1}}) == [
        'labels.b: Invalid value: "integer": labels.b in body must be of type string: "integer"'
    ]
    assert check(schema, {"closed": {"x": 1}}) == [
        'closed: Invalid value: "x": closed.x in body is a forbidden property'
    ]


def test_nullable() -> None:
    schema = obj_schema(a={"type": "string", "nullable": True}, b={"type": "string"})
    assert check(schema, {"a": None}) == []
    assert check(schema, {"b": None}) == [
        'b: Invalid value: "null": b in body must be of type string: "null"'
    ]


def test_preserved_fields_are_not_validated() -> None:
    schema = obj_schema(
        free={
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {"known": {"type": "integer"}},
        }
    )
    assert check(schema, {"free": {"anything": [1, {"goes": None}]}}) == []
    assert check(schema, {"free": {"known": "x"}}) == [
        'free.known: Invalid value: "string": free.known in body must be of type integer: "string"'
    ]


def test_status_is_validated_relative_to_itself() -> None:
    status = {"type": "object", "properties": {"num": {"type": "integer", "maximum": 10}}}
    assert msgs(validate_openapi({"num": 15}, status, "status")) == [
        "status.num: Invalid value: 15: num in body should be less than or equal to 10"
    ]


# ======================================================================== validate: formats

FORMAT_CASES: list[tuple[str, list[str], list[str]]] = [
    ("uuid", ["123e4567-e89b-12d3-a456-426614174000", "123E4567E89B12D3A456426614174000"], ["abc"]),
    ("uuid4", ["123e4567-e89b-42d3-a456-426614174000"], ["123e4567-e89b-12d3-a456-426614174000"]),
    ("date", ["2024-02-29"], ["2023-02-29", "2024-1-01"]),
    ("date-time", ["2024-01-02T03:04:05Z", "2024-01-02t03:04:05.123+01:00"], ["2024-01-02", "x"]),
    ("duration", ["1h30m", "3 days", "500ms"], ["forever"]),
    ("byte", ["aGVsbG8=", "YWJj"], ["not base64!", ""]),
    ("email", ["a@b.com", "Jo <jo@example.org>"], ["nope", "a@"]),
    ("hostname", ["example.com", "a", "x y"], ["-x", ".com"]),
    ("ipv4", ["10.0.0.1", "010.0.0.1"], ["10.0.0", "::1"]),
    ("ipv6", ["::1", "2001:db8::1"], ["10.0.0.1", "fe80::1%eth0"]),
    ("cidr", ["10.0.0.0/8", "2001:db8::/64"], ["10.0.0.0/33", "10.0.0.0"]),
    ("mac", ["01:23:45:67:89:ab", "0123.4567.89ab"], ["01:23:45:67:89"]),
    ("uri", ["https://example.com/a?b", "/path", "mailto:x@y"], ["relative/path", "http://a b"]),
    ("hexcolor", ["#fff", "a0a0a0"], ["#ffff"]),
    ("rgbcolor", ["rgb(1, 2, 255)"], ["rgb(256,0,0)"]),
    ("isbn10", ["0-306-40615-2"], ["0306406153"]),
    ("isbn13", ["978-0-306-40615-7"], ["9780306406158"]),
    ("creditcard", ["4111 1111 1111 1111"], ["4111111111111112"]),
    ("ssn", ["123-45-6789"], ["123456789"]),
    ("bsonobjectid", ["507f1f77bcf86cd799439011"], ["507f1f77"]),
    ("password", ["anything at all"], []),
]


@pytest.mark.parametrize(("fmt", "good", "bad"), FORMAT_CASES)
def test_string_formats(fmt: str, good: list[str], bad: list[str]) -> None:
    schema = obj_schema(f={"type": "string", "format": fmt})
    for value in good:
        assert check(schema, {"f": value}) == [], value
    for value in bad:
        shown = go_bad_value(value)
        assert check(schema, {"f": value}) == [
            f"f: Invalid value: {shown}: f in body must be of type {fmt}: {shown}"
        ], value


def test_unsupported_formats_check_nothing() -> None:
    schema = obj_schema(
        i={"type": "integer", "format": "int32"},
        d={"type": "number", "format": "double"},
        s={"type": "string", "format": "my-own-format"},
    )
    assert check(schema, {"i": 2**40, "d": 1e308, "s": "whatever"}) == []


# ======================================================================== validate: list types


def test_list_set_and_map_duplicates() -> None:
    schema = y(
        """
type: object
properties:
  correct-map:
    type: array
    x-kubernetes-list-type: map
    x-kubernetes-list-map-keys: ["a", "b"]
    items:
      type: object
      required: ["a", "b"]
      properties:
        a: {type: integer}
        b: {type: integer}
        c: {type: string}
  correct-set:
    type: array
    x-kubernetes-list-type: set
    items:
      type: object
      x-kubernetes-map-type: atomic
      additionalProperties: {type: integer}
  invalid-map:
    type: array
    x-kubernetes-list-type: map
    x-kubernetes-list-map-keys: ["a", "b"]
    items:
      type: object
      required: ["a", "b"]
      properties:
        a: {type: integer}
        b: {type: integer}
        c: {type: string}
  invalid-set:
    type: array
    x-kubernetes-list-type: set
    items:
      type: object
      x-kubernetes-map-type: atomic
      additionalProperties: {type: integer}
"""
    )
    instance = y(
        """
correct-map: [{"a":1,"b":1,c:"1"},{"a":1,"b":2,c:"2"},{"a":1,"b":3,c:"3"}]
correct-set: [{"a":1,"b":1},{"a":1,"b":2},{"a":1},{"a":1,"b":4}]
invalid-map: [{"a":1,"b":1,c:"1"},{"a":1,"b":2,c:"2"},{"a":1,"b":3,c:"3"},{"a":1,"b":1,c:"4"}]
invalid-set: [{"a":1,"b":1},{"a":1,"b":2},{"a":1},{"a":1,"b":4},{"a":1,"b":1}]
"""
    )
    errs = validate(instance, schema)
    assert msgs(errs) == [
        'invalid-map[3]: Duplicate value: map[string]interface {}{"a":1, "b":1}',
        'invalid-set[4]: Duplicate value: map[string]interface {}{"a":1, "b":1}',
    ]
    assert {e.type.reason for e in errs} == {"FieldValueDuplicate"}


def test_list_map_single_key_and_scalar_set() -> None:
    schema = obj_schema(
        ports={
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "items": obj_schema(name={"type": "string"}),
        },
        tags={"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
    )
    assert check(schema, {"ports": [{"name": "a"}, {"name": "b"}, {"name": "a"}]}) == [
        'ports[2]: Duplicate value: map[string]interface {}{"name":"a"}'
    ]
    assert check(schema, {"ports": [{}, {}]}) == [
        "ports[1]: Duplicate value: map[string]interface {}{}"
    ]
    assert check(schema, {"tags": ["x", "y", "x", "x"]}) == ['tags[2]: Duplicate value: "x"']
    assert check(schema, {"ports": ["a", {"name": "a"}]}) == [
        'ports[0]: Invalid value: "string": ports[0] in body must be of type object: "string"',
        'ports[0]: Invalid value: "a": must be an object for an array of list-type map',
    ]


# ==================================================================== validate: embedded resources

EMBEDDED_SCHEMA = y(
    """
type: object
properties:
  embedded:
    type: object
    x-kubernetes-embedded-resource: true
    x-kubernetes-preserve-unknown-fields: true
  noEmbeddedObject:
    type: object
    x-kubernetes-preserve-unknown-fields: true
  embeddedNested:
    type: object
    x-kubernetes-embedded-resource: true
    x-kubernetes-preserve-unknown-fields: true
    properties:
      embedded:
        type: object
        x-kubernetes-embedded-resource: true
        x-kubernetes-preserve-unknown-fields: true
  defaults:
    type: object
    x-kubernetes-embedded-resource: true
    x-kubernetes-preserve-unknown-fields: true
    default:
      apiVersion: v1
      kind: Pod
      labels:
        foo: bar
"""
)


def test_embedded_resources_are_validated() -> None:
    invalid = y(
        """
kind: Foo
apiVersion: tests.example.com/v1beta1
metadata: {name: invalid}
embedded:
  apiVersion: foo/v1
  kind: "%"
  metadata:
    name: ..
embeddedNested:
  apiVersion: foo/v1
  kind: "%"
  metadata:
    name: ..
  embedded:
    apiVersion: foo/v1
    kind: "%"
    metadata:
      name: ..
"""
    )
    dns = (
        "may have mixed case, but should otherwise match: a DNS-1035 label must consist of "
        "lower case alphanumeric characters or '-', start with an alphabetic character, and end "
        "with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
        "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
    )
    assert check(EMBEDDED_SCHEMA, invalid) == [
        f'embedded.kind: Invalid value: "%": {dns}',
        "embedded.metadata.name: Invalid value: \"..\": may not be '..'",
        f'embeddedNested.kind: Invalid value: "%": {dns}',
        "embeddedNested.metadata.name: Invalid value: \"..\": may not be '..'",
        f'embeddedNested.embedded.kind: Invalid value: "%": {dns}',
        "embeddedNested.embedded.metadata.name: Invalid value: \"..\": may not be '..'",
    ]


def test_embedded_resources_need_type_meta_and_decodable_metadata() -> None:
    assert check(EMBEDDED_SCHEMA, {"embedded": {"metadata": {"name": "x"}}}) == [
        "embedded.apiVersion: Required value: must not be empty",
        "embedded.kind: Required value: must not be empty",
    ]
    wrong = {"embedded": {"apiVersion": "a/b/c", "kind": "", "metadata": {"namespace": 42}}}
    assert check(EMBEDDED_SCHEMA, wrong) == [
        'embedded.apiVersion: Invalid value: "a/b/c": unexpected GroupVersion string: a/b/c',
        'embedded.kind: Invalid value: "": must not be empty',
        'embedded.metadata: Invalid value: map[string]interface {}{"namespace":42}: json: '
        "cannot unmarshal number into Go struct field ObjectMeta.namespace of type string",
    ]


# ==================================================================== validate_update: ratcheting

RATCHET_SCHEMA = obj_schema(
    spec=obj_schema(
        name={"type": "string", "maxLength": 2},
        count={"type": "integer", "maximum": 3},
        ports={
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "items": obj_schema(name={"type": "string"}, port={"type": "integer", "maximum": 10}),
        },
        tags={"type": "array", "items": {"type": "string", "maxLength": 1}},
        uniq={"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
    )
)


def test_unchanged_invalid_values_do_not_block_an_update() -> None:
    old = {"spec": {"name": "toolong", "count": 1, "ports": [{"name": "x", "port": 99}]}}
    new = {"spec": {"name": "toolong", "count": 5, "ports": [{"name": "x", "port": 99}]}}
    assert msgs(validate_update(new, old, RATCHET_SCHEMA)) == [
        "spec.count: Invalid value: 5: spec.count in body should be less than or equal to 3"
    ]
    assert msgs(validate_update(old, old, RATCHET_SCHEMA)) == []
    assert len(validate(old, RATCHET_SCHEMA)) == 2


def test_map_list_items_correlate_by_key_other_lists_do_not() -> None:
    old = {"spec": {"ports": [{"name": "x", "port": 99}, {"name": "y", "port": 1}], "tags": ["aa"]}}
    new = {
        "spec": {
            "ports": [
                {"name": "y", "port": 1},
                {"name": "x", "port": 99},
                {"name": "z", "port": 50},
            ],
            "tags": ["aa", "b"],
        }
    }
    assert msgs(validate_update(new, old, RATCHET_SCHEMA)) == [
        "spec.ports[2].port: Invalid value: 50: spec.ports[2].port in body should be less than "
        "or equal to 10",
        "spec.tags[0]: Too long: may not be more than 1 bytes",
    ]


def test_list_type_uniqueness_is_only_enforced_once_satisfied() -> None:
    dup = {"spec": {"uniq": ["a", "a"]}}
    assert msgs(validate_update({"spec": {"uniq": ["a", "a", "b"]}}, dup, RATCHET_SCHEMA)) == []
    assert msgs(validate_update(dup, {"spec": {"uniq": ["a"]}}, RATCHET_SCHEMA)) == [
        'spec.uniq[1]: Duplicate value: "a"'
    ]


# ======================================================================== prune


def test_prune_reports_and_drops_unknown_fields() -> None:
    schema = obj_schema(
        spec=obj_schema(
            replicas={"type": "integer"},
            items={"type": "array", "items": obj_schema(name={"type": "string"})},
            labels={"type": "object", "additionalProperties": {"type": "string"}},
        )
    )
    obj = {
        "apiVersion": "x.io/v1",
        "kind": "X",
        "metadata": {"name": "a", "labels": {"k": "v"}, "bogus": 1},
        "spec": {
            "replicas": 1,
            "foo": 1,
            "items": [{"name": "a", "bar": 2}, {"name": "b"}],
            "labels": {"any": "kept"},
        },
        "status": {"x": 1},
    }
    assert prune(obj, schema) == ["metadata.bogus", "spec.foo", "spec.items[0].bar", "status"]
    assert obj == {
        "apiVersion": "x.io/v1",
        "kind": "X",
        "metadata": {"name": "a", "labels": {"k": "v"}},
        "spec": {"replicas": 1, "items": [{"name": "a"}, {"name": "b"}], "labels": {"any": "kept"}},
    }
    assert prune(obj, schema) == []


def test_prune_keeps_preserved_and_embedded_type_meta() -> None:
    instance = y(
        """
kind: Foo
apiVersion: tests.example.com/v1beta1
embedded:
  apiVersion: foo/v1
  kind: Foo
  metadata:
    name: foo
    unspecified: bar
noEmbeddedObject:
  apiVersion: foo/v1
  kind: Foo
  metadata:
    name: foo
    unspecified: bar
embeddedNested:
  apiVersion: foo/v1
  kind: Foo
  metadata:
    name: foo
    unspecified: bar
  embedded:
    apiVersion: foo/v1
    kind: Foo
    metadata:
      name: foo
      unspecified: bar
"""
    )
    expected = y(
        """
kind: Foo
apiVersion: tests.example.com/v1beta1
embedded:
  apiVersion: foo/v1
  kind: Foo
  metadata:
    name: foo
noEmbeddedObject:
  apiVersion: foo/v1
  kind: Foo
  metadata:
    name: foo
    unspecified: bar
embeddedNested:
  apiVersion: foo/v1
  kind: Foo
  metadata:
    name: foo
  embedded:
    apiVersion: foo/v1
    kind: Foo
    metadata:
      name: foo
defaults:
  apiVersion: v1
  kind: Pod
  labels:
    foo: bar
"""
    )
    assert prune(instance, EMBEDDED_SCHEMA) == [
        "embedded.metadata.unspecified",
        "embeddedNested.embedded.metadata.unspecified",
        "embeddedNested.metadata.unspecified",
    ]
    apply_defaults(instance, EMBEDDED_SCHEMA)
    assert instance == expected


def test_prune_under_embedded_resource_without_preserve() -> None:
    schema = obj_schema(
        template={
            "type": "object",
            "x-kubernetes-embedded-resource": True,
            "properties": {"spec": obj_schema(a={"type": "string"})},
        }
    )
    obj = {
        "template": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "x", "owner": "me"},
            "spec": {"a": "x", "b": "y"},
            "other": 1,
        }
    }
    assert prune(obj, schema) == [
        "template.other",
        "template.spec.b",
        "template.metadata.owner",
    ]
    assert obj == {
        "template": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "x"},
            "spec": {"a": "x"},
        }
    }


def test_prune_metadata_nested_unknown_fields_and_not_root() -> None:
    obj = {
        "metadata": {"name": "a", "ownerReferences": [{"name": "o", "kind": "K", "extra": 1}]},
        "apiVersion": "v1",
    }
    assert prune(obj, {"type": "object"}) == ["metadata.ownerReferences[0].extra"]
    # below the root, apiVersion/kind/metadata are pruned like any field, but (as upstream)
    # not reported when they sit at the top of what is pruned
    nested = {"metadata": {"x": 1}, "kind": "k"}
    assert prune(nested, {"type": "object"}, root=False) == []
    assert nested == {}


def test_prune_drops_non_nullable_nulls_without_default() -> None:
    schema = obj_schema(
        a={"type": "string"},
        b={"type": "string", "nullable": True},
        c={"type": "string", "default": "d"},
    )
    obj = {"a": None, "b": None, "c": None}
    assert prune(obj, schema, root=False) == []
    assert obj == {"b": None, "c": None}
    apply_defaults(obj, schema)
    assert obj == {"b": None, "c": "d"}


def test_additional_properties_true_empties_nested_objects() -> None:
    # upstream prunes below "additionalProperties: true" with no schema at all
    schema = obj_schema(m={"type": "object", "additionalProperties": True})
    obj = {"m": {"k": {"deep": 1}, "s": "x"}}
    assert prune(obj, schema, root=False) == ["m.k.deep"]
    assert obj == {"m": {"k": {}, "s": "x"}}


# ======================================================================== defaults

ZERO_SCHEMA = y(
    """
type: object
properties:
  string: {type: string}
  string_default: {type: string, default: ""}
  string_null: {type: string, nullable: true}
  boolean: {type: boolean}
  boolean_default: {type: boolean, default: false}
  boolean_null: {type: boolean, nullable: true}
  number: {type: number}
  number_default: {type: number, default: 0}
  number_null: {type: number, nullable: true}
  integer: {type: integer}
  integer_default: {type: integer, default: 0}
  integer_null: {type: integer, nullable: true}
  array: {type: array, items: {type: string}}
  array_default: {type: array, items: {type: string}, default: []}
  array_null: {type: array, nullable: true, items: {type: string}}
  object: {type: object, properties: {a: {type: string}}}
  object_default: {type: object, properties: {a: {type: string}}, default: {}}
  object_null: {type: object, nullable: true, properties: {a: {type: string}}}
"""
)


def test_zero_values_and_defaults() -> None:
    obj: dict[str, Any] = {
        "apiVersion": "tests.example.com/v1",
        "kind": "Zero",
        "metadata": {"name": "myzero"},
        "string": "",
        "string_null": None,
        "boolean": False,
        "boolean_null": None,
        "number": 0,
        "number_null": None,
        "integer": 0,
        "integer_null": None,
        "array": [],
        "array_null": None,
        "object": {},
        "object_null": None,
    }
    assert prune(obj, ZERO_SCHEMA) == []
    apply_defaults(obj, ZERO_SCHEMA)
    assert validate(obj, ZERO_SCHEMA) == []
    assert {k: obj[k] for k in obj if k.endswith("_default")} == {
        "string_default": "",
        "boolean_default": False,
        "number_default": 0,
        "integer_default": 0,
        "array_default": [],
        "object_default": {},
    }
    assert obj["string_null"] is None


def test_defaults_recurse_into_defaults_arrays_and_maps() -> None:
    item = obj_schema(port={"type": "integer", "default": 80}, proto={"type": "string"})
    schema = obj_schema(
        spec={
            "type": "object",
            "default": {},
            "properties": {
                "replicas": {"type": "integer", "default": 1},
                "ports": {"type": "array", "items": item},
                "byName": {"type": "object", "additionalProperties": item},
                "list": {"type": "array", "items": {"type": "string", "default": "x"}},
            },
        }
    )
    obj: dict[str, Any] = {}
    apply_defaults(obj, schema)
    assert obj == {"spec": {"replicas": 1}}
    obj = {"spec": {"ports": [{}, {"port": 8080}], "byName": {"a": {}, "b": None}, "list": [None]}}
    apply_defaults(obj, schema)
    assert obj == {
        "spec": {
            "replicas": 1,
            "ports": [{"port": 80}, {"port": 8080}],
            "byName": {"a": {"port": 80}},
            "list": ["x"],
        }
    }


def test_schemas_are_never_modified() -> None:
    schema = copy.deepcopy(EMBEDDED_SCHEMA)
    before = copy.deepcopy(schema)
    obj = {"embedded": {"apiVersion": "v1", "kind": "A", "metadata": {"x": 1}}, "other": None}
    prune(obj, schema)
    apply_defaults(obj, schema)
    validate(obj, schema)
    structural_errors(schema, P)
    assert schema == before


def test_defaults_are_deep_copies() -> None:
    schema = obj_schema(
        a={
            "type": "object",
            "default": {"l": [1]},
            "properties": {"l": {"type": "array", "items": {"type": "integer"}}},
        }
    )
    one: dict[str, Any] = {}
    two: dict[str, Any] = {}
    apply_defaults(one, schema)
    apply_defaults(two, schema)
    one["a"]["l"].append(2)
    assert two == {"a": {"l": [1]}}
    assert schema["properties"]["a"]["default"] == {"l": [1]}


# ======================================================================== structural_errors


def crd_errors(text: str, **kw: Any) -> list[str]:
    return msgs(structural_errors(y(text), P, **kw))


def test_valid_schema_has_no_errors() -> None:
    assert (
        crd_errors(
            """
type: object
properties:
  metadata:
    type: object
    properties:
      name: {type: string, pattern: "^[a-z]+$"}
      generateName: {type: string, pattern: "^[a-z]+$"}
  spec:
    type: object
    required: [port]
    properties:
      port: {type: integer, minimum: 1, default: 80}
      mode: {type: string, enum: [a, b], default: a}
      intOrString: {x-kubernetes-int-or-string: true}
      free: {type: object, x-kubernetes-preserve-unknown-fields: true}
      labels: {type: object, additionalProperties: {type: string}, x-kubernetes-map-type: atomic}
      ports:
        type: array
        x-kubernetes-list-type: map
        x-kubernetes-list-map-keys: [name]
        items:
          type: object
          required: [name]
          properties:
            name: {type: string}
      tags: {type: array, x-kubernetes-list-type: set, items: {type: string}}
      template:
        type: object
        x-kubernetes-embedded-resource: true
        x-kubernetes-preserve-unknown-fields: true
    x-kubernetes-validations:
    - rule: self.port > 0
"""
        )
        == []
    )


def test_missing_types() -> None:
    assert crd_errors(
        """
properties:
 foo:
   properties:
     a: {}
 bar:
   items:
     additionalProperties:
       properties:
         a: {}
       items: {}
 abc:
   additionalProperties:
     properties:
       a:
         items:
           additionalProperties:
             items:
 json:
   x-kubernetes-preserve-unknown-fields: true
   properties:
     a: {}
 int-or-string:
   x-kubernetes-int-or-string: true
   properties:
     a: {}
"""
    ) == sorted(
        [
            f"{P}.properties[foo].properties[a].type: Required value: must not be empty for "
            "specified object fields",
            f"{P}.properties[foo].type: Required value: must not be empty for specified object "
            "fields",
            f"{P}.properties[int-or-string].properties[a].type: Required value: must not be empty "
            "for specified object fields",
            f"{P}.properties[json].properties[a].type: Required value: must not be empty for "
            "specified object fields",
            f"{P}.properties[abc].additionalProperties.properties[a].items.additionalProperties"
            ".type: Required value: must not be empty for specified object fields",
            f"{P}.properties[abc].additionalProperties.properties[a].items.type: Required value: "
            "must not be empty for specified array items",
            f"{P}.properties[abc].additionalProperties.properties[a].type: Required value: must "
            "not be empty for specified object fields",
            f"{P}.properties[abc].additionalProperties.type: Required value: must not be empty "
            "for specified object fields",
            f"{P}.properties[abc].type: Required value: must not be empty for specified object "
            "fields",
            f"{P}.properties[bar].items.additionalProperties.items.type: Required value: must not "
            "be empty for specified array items",
            f"{P}.properties[bar].items.additionalProperties.properties[a].type: Required value: "
            "must not be empty for specified object fields",
            f"{P}.properties[bar].items.additionalProperties.type: Required value: must not be "
            "empty for specified object fields",
            f"{P}.properties[bar].items.type: Required value: must not be empty for specified "
            "array items",
            f"{P}.properties[bar].type: Required value: must not be empty for specified object "
            "fields",
            f"{P}.type: Required value: must not be empty at the root",
        ]
    )


def test_root_type_rules() -> None:
    assert crd_errors('type: ""') == [f"{P}.type: Required value: must not be empty at the root"]
    assert crd_errors("type: integer") == [
        f'{P}.type: Invalid value: "integer": must be object at the root'
    ]
    assert crd_errors("type: object\nadditionalProperties: false") == [
        f"{P}.additionalProperties: Forbidden: must not be used at the root"
    ]
    assert crd_errors("type: object\nnullable: true") == [
        f"{P}.nullable: Forbidden: nullable cannot be true at the root"
    ]
    assert crd_errors("type: object\nproperties:\n slice: {type: array}") == [
        f"{P}.properties[slice].items: Required value: must be specified"
    ]


def test_forbidden_in_nested_value_validation() -> None:
    errs = crd_errors(
        """
type: object
properties:
 foo:
   type: string
not:
 type: string
 additionalProperties: true
 title: hello
 description: world
 nullable: true
allOf:
- properties:
   foo:
     type: string
     additionalProperties: true
     title: hello
     description: world
     nullable: true
anyOf:
- items:
   type: string
   additionalProperties: true
   title: hello
   description: world
   nullable: true
oneOf:
- properties:
   foo:
     type: string
     additionalProperties: true
     title: hello
     description: world
     nullable: true
"""
    )
    for where in ("anyOf[0].items", "allOf[0].properties[foo]", "oneOf[0].properties[foo]", "not"):
        assert f"{P}.{where}.type: Forbidden: must be empty to be structural" in errs
        assert (
            f"{P}.{where}.additionalProperties: Forbidden: must be undefined to be structural"
            in errs
        )
        assert f"{P}.{where}.title: Forbidden: must be empty to be structural" in errs
        assert f"{P}.{where}.description: Forbidden: must be empty to be structural" in errs
        assert f"{P}.{where}.nullable: Forbidden: must be false to be structural" in errs
    assert f"{P}.items: Required value: because it is defined in {P}.anyOf[0].items" in errs
    assert errs == sorted(errs)
    assert len(errs) == 21


def test_forbidden_extensions_and_defaults_in_value_validations() -> None:
    errs = crd_errors(
        """
type: object
properties:
 int-or-string:
   x-kubernetes-int-or-string: true
 embedded-resource:
   type: object
   x-kubernetes-embedded-resource: true
   x-kubernetes-preserve-unknown-fields: true
 l: {type: array, items: {type: string}}
allOf:
- properties:
   int-or-string:
     x-kubernetes-int-or-string: true
   embedded-resource:
     x-kubernetes-embedded-resource: true
     x-kubernetes-preserve-unknown-fields: true
   l:
     default: [a]
     x-kubernetes-list-type: set
     x-kubernetes-list-map-keys: [a]
     x-kubernetes-map-type: atomic
     x-kubernetes-validations: [{rule: "true"}]
"""
    )
    a = f"{P}.allOf[0].properties"
    structural = [
        f"{a}[embedded-resource].x-kubernetes-preserve-unknown-fields: Forbidden: must be false "
        "to be structural",
        f"{a}[embedded-resource].x-kubernetes-embedded-resource: Forbidden: must be false to be "
        "structural",
        f"{a}[int-or-string].x-kubernetes-int-or-string: Forbidden: must be false to be structural",
        f"{a}[l].default: Forbidden: must be undefined to be structural",
        f"{a}[l].x-kubernetes-list-map-keys: Forbidden: must be empty to be structural",
        f"{a}[l].x-kubernetes-list-type: Forbidden: must be undefined to be structural",
        f"{a}[l].x-kubernetes-map-type: Forbidden: must be undefined to be structural",
        f"{a}[l].x-kubernetes-validations: Forbidden: must be empty to be structural",
    ]
    # the keyword rules then also apply inside the junctor, as upstream's do
    assert errs == [
        *sorted(structural),
        f"{a}[l].type: Required value: must be object if x-kubernetes-map-type is specified",
        f"{a}[l].type: Required value: must be array if x-kubernetes-list-type is specified",
        f'{a}[l].x-kubernetes-list-type: Invalid value: "set": must be map if '
        "x-kubernetes-list-map-keys is non-empty",
    ]


def test_int_or_string_variants() -> None:
    errs = crd_errors(
        """
type: object
properties:
 a:
   x-kubernetes-int-or-string: true
 b:
   x-kubernetes-int-or-string: true
   anyOf:
   - type: integer
   - type: string
   allOf:
   - pattern: abc
 c:
   x-kubernetes-int-or-string: true
   allOf:
   - anyOf:
     - type: integer
     - type: string
   - pattern: abc
 d:
   x-kubernetes-int-or-string: true
   anyOf:
   - type: integer
   - type: string
     pattern: abc
 f:
   x-kubernetes-int-or-string: true
   anyOf:
   - type: integer
   - type: string
   - pattern: abc
 g:
   x-kubernetes-int-or-string: true
   anyOf:
   - type: string
   - type: integer
"""
    )
    assert errs == [
        f"{P}.properties[{p}].anyOf[{i}].type: Forbidden: must be empty to be structural"
        for p in "dfg"
        for i in (0, 1)
    ]


def test_int_or_string_conflicts() -> None:
    assert crd_errors(
        "type: object\nproperties:\n a:\n  x-kubernetes-preserve-unknown-fields: true\n"
        "  x-kubernetes-int-or-string: true"
    ) == [
        f"{P}.properties[a].x-kubernetes-preserve-unknown-fields: Invalid value: true: must be "
        "false if x-kubernetes-int-or-string is true"
    ]


def test_structural_completeness() -> None:
    errs = crd_errors(
        """
type: object
properties:
 b:
   type: object
   properties:
     b:
       type: array
       items: {type: string}
 c:
   type: array
   items:
     type: object
 d:
   type: array
   items: {type: string}
not:
 properties:
   a: {}
   b:
     not:
       properties:
         a: {}
   d:
     items: {}
allOf:
- properties:
   e: {}
anyOf:
- properties:
   f: {}
oneOf:
- properties:
   g: {}
"""
    )
    assert errs == sorted(
        [
            f"{P}.properties[a]: Required value: because it is defined in {P}.not.properties[a]",
            f"{P}.properties[b].properties[a]: Required value: because it is defined in "
            f"{P}.not.properties[b].not.properties[a]",
            f"{P}.properties[e]: Required value: because it is defined in "
            f"{P}.allOf[0].properties[e]",
            f"{P}.properties[f]: Required value: because it is defined in "
            f"{P}.anyOf[0].properties[f]",
            f"{P}.properties[g]: Required value: because it is defined in "
            f"{P}.oneOf[0].properties[g]",
        ]
    )


def test_metadata_rules() -> None:
    assert crd_errors("type: object\nproperties:\n metadata:\n  minimum: 42.0") == [
        f'{P}.properties[metadata].type: Invalid value: "": must be object',
        f"{P}.properties[metadata].type: Required value: must not be empty for specified object "
        "fields",
        f"{P}.properties[metadata]: Forbidden: must not specify anything other than name and "
        "generateName, but metadata is implicitly specified",
    ]
    errs = crd_errors(
        """
type: object
properties:
 metadata:
   properties:
     name:
       pattern: "^[a-z]+$"
     labels:
       type: object
       maxLength: 4
"""
    )
    assert errs == [
        f"{P}.properties[metadata].properties[name].type: Required value: must not be empty for "
        "specified object fields",
        f'{P}.properties[metadata].type: Invalid value: "": must be object',
        f"{P}.properties[metadata].type: Required value: must not be empty for specified object "
        "fields",
        f"{P}.properties[metadata]: Forbidden: must not specify anything other than name and "
        "generateName, but metadata is implicitly specified",
    ]
    assert crd_errors(
        """
type: object
properties:
 metadata:
   type: object
   properties:
     name: {type: string}
allOf:
- properties:
   metadata: {}
not:
 properties:
   metadata: {}
"""
    ) == [
        f"{P}.allOf[0].properties[metadata]: Forbidden: must not be specified in a nested context",
        f"{P}.not.properties[metadata]: Forbidden: must not be specified in a nested context",
    ]
    assert crd_errors(
        "type: object\nproperties:\n metadata:\n  type: object\n  properties:\n"
        "   name: {type: string, default: x}\n kind: {type: string, default: K}"
    ) == [
        f"{P}.properties[metadata].properties[name].default: Forbidden: must not be set in "
        "top-level metadata",
        f"{P}.properties[kind].default: Forbidden: must not be set in top-level kind",
    ]


def test_embedded_resource_rules() -> None:
    assert crd_errors("type: object\nx-kubernetes-embedded-resource: true") == [
        f"{P}.properties: Required value: must not be empty if x-kubernetes-embedded-resource is "
        "true without x-kubernetes-preserve-unknown-fields"
    ]
    assert crd_errors(
        "type: array\nx-kubernetes-embedded-resource: true\nx-kubernetes-preserve-unknown-fields: "
        "true\nitems: {type: string}"
    ) == [
        f'{P}.type: Invalid value: "array": must be object at the root',
        f'{P}.type: Invalid value: "array": must be object if x-kubernetes-embedded-resource is '
        "true",
    ]
    assert crd_errors(
        'type: ""\nx-kubernetes-embedded-resource: true\nx-kubernetes-preserve-unknown-fields: true'
    ) == [f"{P}.type: Required value: must be object if x-kubernetes-embedded-resource is true"]
    assert crd_errors(
        """
type: object
properties:
 e:
   type: object
   x-kubernetes-embedded-resource: true
   properties:
     kind: {type: integer}
     metadata:
       type: object
       x-kubernetes-embedded-resource: true
       x-kubernetes-preserve-unknown-fields: true
"""
    ) == [
        f'{P}.properties[e].properties[kind].type: Invalid value: "integer": must be string',
        f"{P}.properties[e].properties[metadata].x-kubernetes-embedded-resource: Forbidden: must "
        "not be used inside of resource meta",
    ]


def test_embedded_resource_conflicts() -> None:
    errs = crd_errors(
        """
type: object
properties:
 m:
   type: object
   x-kubernetes-embedded-resource: true
   x-kubernetes-preserve-unknown-fields: true
   additionalProperties: {type: string}
 n:
   type: object
   x-kubernetes-embedded-resource: true
   properties:
     apiVersion: {type: string}
     metadata: {type: string}
 o:
   type: object
   x-kubernetes-embedded-resource: true
   x-kubernetes-int-or-string: true
   x-kubernetes-preserve-unknown-fields: true
"""
    )
    a = f"{P}.properties"
    assert errs == [
        f"{a}[m].additionalProperties: Forbidden: must not be used if "
        "x-kubernetes-embedded-resource is set",
        f'{a}[n].properties[metadata].type: Invalid value: "string": must be object',
        f"{a}[o].x-kubernetes-embedded-resource: Invalid value: true: must be false if "
        "x-kubernetes-int-or-string is true",
        f"{a}[o].x-kubernetes-preserve-unknown-fields: Invalid value: true: must be false if "
        "x-kubernetes-int-or-string is true",
    ]


def test_unsupported_keywords() -> None:
    errs = crd_errors(
        """
type: object
properties:
 a:
   type: object
   $ref: "#/definitions/x"
   id: x
   patternProperties: {"^x": {type: string}}
   additionalItems: false
   dependencies: {a: [b]}
 b:
   type: "null"
 c:
   type: weird
 d:
   type: array
   items: [{type: string}]
 e:
   type: array
   uniqueItems: true
   items: {type: string}
 f:
   type: object
   x-kubernetes-preserve-unknown-fields: false
"""
    )
    a = f"{P}.properties"
    assert errs == [
        f"{a}[a].id: Forbidden: id is not supported",
        f"{a}[a].additionalItems: Forbidden: additionalItems is not supported",
        f"{a}[a].patternProperties: Forbidden: patternProperties is not supported",
        f"{a}[a].dependencies: Forbidden: dependencies is not supported",
        f"{a}[a].$ref: Forbidden: $ref is not supported",
        f'{a}[b].type: Unsupported value: "null": supported values: "array", "boolean", '
        '"integer", "number", "object", "string"',
        f"{a}[b].type: Forbidden: type cannot be set to null, use nullable as an alternative",
        f'{a}[c].type: Unsupported value: "weird": supported values: "array", "boolean", '
        '"integer", "number", "object", "string"',
        f"{a}[d].items: Forbidden: items must be a schema object and not an array",
        f"{a}[e].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime "
        "complexity becomes quadratic",
        f"{a}[f].x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or "
        "undefined",
    ]


def test_schema_keyword_alone_is_reported_as_not_structural() -> None:
    assert crd_errors('type: object\n$schema: "http://json-schema.org/schema#"') == [
        f"{P}: Invalid value: \"\": OpenAPIV3Schema 'schema' is not supported"
    ]


def test_additional_properties_rules() -> None:
    assert crd_errors(
        """
type: object
properties:
 foo:
   type: object
   properties:
     bar: {type: object}
   additionalProperties: false
 ok:
   type: object
   additionalProperties: {type: string}
"""
    ) == [
        f"{P}.properties[foo].additionalProperties: Forbidden: additionalProperties and properties "
        "are mutual exclusive"
    ]
    assert crd_errors(
        """
type: object
properties:
 e:
   type: object
   x-kubernetes-embedded-resource: true
   x-kubernetes-preserve-unknown-fields: true
   properties:
     metadata:
       type: object
       additionalProperties: {type: string, default: x}
"""
    ) == [
        f"{P}.properties[e].properties[metadata].additionalProperties.default: Forbidden: must not "
        "be set inside additionalProperties applying to object metadata"
    ]


def test_list_and_map_type_rules() -> None:
    errs = crd_errors(
        """
type: object
properties:
 m:
   type: string
   x-kubernetes-map-type: sometimes
 l:
   type: object
   x-kubernetes-list-type: set
 bad:
   type: array
   x-kubernetes-list-type: bag
   items: {type: string}
 keys:
   type: array
   x-kubernetes-list-type: set
   x-kubernetes-list-map-keys: [a]
   items: {type: object, x-kubernetes-map-type: atomic, properties: {a: {type: string}}}
 set-of-objects:
   type: array
   x-kubernetes-list-type: set
   items: {type: object, properties: {a: {type: string}}}
 set-of-lists:
   type: array
   x-kubernetes-list-type: set
   items: {type: array, x-kubernetes-list-type: set, items: {type: string}}
"""
    )
    a = f"{P}.properties"
    assert errs == [
        f'{a}[m].type: Invalid value: "string": must be object if x-kubernetes-map-type is '
        "specified",
        f'{a}[m].x-kubernetes-map-type: Unsupported value: "sometimes": supported values: '
        '"atomic", '
        '"granular"',
        f'{a}[l].type: Invalid value: "object": must be array if x-kubernetes-list-type is '
        "specified",
        f'{a}[bad].x-kubernetes-list-type: Unsupported value: "bag": supported values: "atomic", '
        '"set", "map"',
        f'{a}[keys].x-kubernetes-list-type: Invalid value: "set": must be map if '
        "x-kubernetes-list-map-keys is non-empty",
        f'{a}[set-of-objects].items.x-kubernetes-map-type: Invalid value: "null": must be atomic '
        "as item of a list with x-kubernetes-list-type=set",
        f'{a}[set-of-lists].items.x-kubernetes-list-type: Invalid value: "set": must be atomic as '
        "item of a list with x-kubernetes-list-type=set",
    ]


def test_list_map_key_rules() -> None:
    errs = crd_errors(
        """
type: object
properties:
 nokeys:
   type: array
   x-kubernetes-list-type: map
   items: {type: object, properties: {a: {type: string}}}
 scalars:
   type: array
   x-kubernetes-list-type: map
   x-kubernetes-list-map-keys: [a]
   items: {type: string}
 keys:
   type: array
   x-kubernetes-list-type: map
   x-kubernetes-list-map-keys: [a, o, a, missing]
   items:
     type: object
     nullable: true
     required: [o]
     properties:
       a: {type: string, nullable: true}
       o: {type: object}
"""
    )
    a = f"{P}.properties"
    keys = '[]string{"a", "o", "a", "missing"}'
    assert errs == [
        f"{a}[nokeys].x-kubernetes-list-map-keys: Required value: must not be empty if "
        "x-kubernetes-list-type is map",
        f'{a}[scalars].items.type: Invalid value: "string": must be object if parent array\'s '
        "x-kubernetes-list-type is map",
        f'{a}[keys].items.properties[o].type: Invalid value: "object": must be a scalar type if '
        "parent array's x-kubernetes-list-type is map",
        f"{a}[keys].x-kubernetes-list-map-keys: Invalid value: {keys}: must not contain duplicate "
        "entries",
        f"{a}[keys].x-kubernetes-list-map-keys: Invalid value: {keys}: entries must all be names "
        "of item properties",
        f"{a}[keys].items.nullable: Forbidden: cannot be nullable when x-kubernetes-list-type is "
        "map",
        f"{a}[keys].items.properties[a].default: Required value: this property is in "
        "x-kubernetes-list-map-keys, so it must have a default or be a required property",
        f"{a}[keys].items.properties[a].nullable: Forbidden: this property is in "
        "x-kubernetes-list-map-keys, so it cannot be nullable",
        f"{a}[keys].items.properties[a].default: Required value: this property is in "
        "x-kubernetes-list-map-keys, so it must have a default or be a required property",
        f"{a}[keys].items.properties[a].nullable: Forbidden: this property is in "
        "x-kubernetes-list-map-keys, so it cannot be nullable",
    ]


def test_invalid_pattern() -> None:
    assert crd_errors('type: object\nproperties:\n foo:\n  type: string\n  pattern: "+"') == [
        f'{P}.properties[foo].pattern: Invalid value: "+": must be a valid regular expression, '
        "but isn't: error parsing regexp: missing argument to repetition operator: `+`"
    ]


def test_defaults_must_validate_and_be_pruned() -> None:
    errs = crd_errors(
        """
type: object
properties:
 spec:
   type: object
   properties:
     a: {type: integer, default: "x"}
     b:
       type: object
       properties: {c: {type: string}}
       default: {c: x, d: 1}
     e: {type: string, enum: [x, y], default: z}
     f:
       type: object
       properties: {n: {type: integer, maximum: 3}}
       default: {n: 5}
     g:
       type: array
       items: {type: string, pattern: "^a"}
       default: [b]
"""
    )
    s = f"{P}.properties[spec].properties"
    assert errs == [
        f'{s}[a].default: Invalid value: "string":  in body must be of type integer: "string"',
        f'{s}[b].default: Invalid value: map[string]interface {{}}{{"c":"x", "d":1}}: must '
        "not have unknown fields",
        f'{s}[e].default: Unsupported value: "z": supported values: "x", "y"',
        f"{s}[f].default.n: Invalid value: 5: n in body should be less than or equal to 3",
        # upstream appends the item's name as a child: "default.[0]"
        f"{s}[g].default.[0]: Invalid value: \"b\": [0] in body should match '^a'",
    ]


def test_default_validation_waits_for_a_structural_schema() -> None:
    assert crd_errors(
        "type: object\nproperties:\n a: {default: x}\n b: {type: integer, default: x}"
    ) == [f"{P}.properties[a].type: Required value: must not be empty for specified object fields"]


def test_embedded_defaults_need_valid_type_meta() -> None:
    assert crd_errors(
        """
type: object
properties:
 e:
   type: object
   x-kubernetes-embedded-resource: true
   x-kubernetes-preserve-unknown-fields: true
   default: {kind: "%", metadata: {name: ".."}}
"""
    ) == [
        f"{P}.properties[e].default.apiVersion: Required value: must not be empty",
        f'{P}.properties[e].default.kind: Invalid value: "%": may have mixed case, but should '
        "otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or "
        "'-', start with an alphabetic character, and end with an alphanumeric character (e.g. "
        "'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
        f"{P}.properties[e].default.metadata.name: Invalid value: \"..\": may not be '..'",
    ]


# ================================================================ property: prune, then validate


_SCALARS_LIST: list[tuple[dict[str, Any], st.SearchStrategy[Any]]] = [
    ({"type": "string"}, st.text(max_size=5)),
    ({"type": "integer"}, st.integers(-1000, 1000)),
    ({"type": "number"}, st.floats(allow_nan=False, allow_infinity=False, width=32)),
    ({"type": "boolean"}, st.booleans()),
    ({"x-kubernetes-int-or-string": True}, st.one_of(st.integers(), st.text(max_size=3))),
    ({"type": "string", "format": "date"}, st.just("2024-05-06")),
]
_SCALARS = st.sampled_from(_SCALARS_LIST)
_NAMES = st.text(alphabet="abcdefgh", min_size=1, max_size=4)


def _schema_tree(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    scalar = _SCALARS.map(lambda pair: dict(pair[0]))
    if depth == 0:
        return scalar
    sub = _schema_tree(depth - 1)
    obj = st.dictionaries(_NAMES, sub, max_size=3).map(
        lambda props: {"type": "object", "properties": props}
    )
    arr = sub.map(lambda items: {"type": "array", "items": items})
    amap = sub.map(lambda v: {"type": "object", "additionalProperties": v})
    preserved = st.dictionaries(_NAMES, sub, max_size=2).map(
        lambda props: {
            "type": "object",
            "properties": props,
            "x-kubernetes-preserve-unknown-fields": True,
        }
    )
    return st.one_of(scalar, obj, arr, amap, preserved)


def _value(data: st.DataObject, s: dict[str, Any], unknown: list[str], path: str) -> Any:
    """A value valid for ``s``; objects get extra keys, recorded in ``unknown`` when the
    schema would prune them."""
    if s.get("type") == "array":
        n = data.draw(st.integers(0, 2))
        return [_value(data, s["items"], unknown, f"{path}[{i}]") for i in range(n)]
    if s.get("type") == "object":
        out: dict[str, Any] = {}
        for k, sub in s.get("properties", {}).items():
            if data.draw(st.booleans()):
                out[k] = _value(data, sub, unknown, f"{path}.{k}" if path else k)
        if "additionalProperties" in s:
            for k in data.draw(st.lists(_NAMES, max_size=2, unique=True)):
                out[k] = _value(data, s["additionalProperties"], unknown, f"{path}.{k}")
            return out
        for k in data.draw(st.lists(st.sampled_from(["zz", "yy"]), max_size=2, unique=True)):
            out[k] = {"junk": [1, {"x": None}]}
            if not s.get("x-kubernetes-preserve-unknown-fields"):
                unknown.append(f"{path}.{k}" if path else k)
        return out
    pair = next(p for p in _SCALARS_LIST if p[0] == {k: v for k, v in s.items()})
    return data.draw(pair[1])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(props=st.dictionaries(_NAMES, _schema_tree(3), min_size=1, max_size=3), data=st.data())
def test_pruned_objects_validate_and_prune_is_idempotent(
    props: dict[str, Any], data: st.DataObject
) -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": props}},
    }
    assert structural_errors(schema, P) == []
    unknown: list[str] = []
    spec = _value(data, schema["properties"]["spec"], unknown, "spec")
    obj = {"apiVersion": "x.io/v1", "kind": "X", "metadata": {"name": "a", "junk": 1}, "spec": spec}
    before = copy.deepcopy(obj)
    pruned = prune(obj, schema)
    assert pruned == ["metadata.junk", *sorted(unknown)]
    assert validate(obj, schema) == []
    assert prune(obj, schema) == []
    assert obj["apiVersion"] == before["apiVersion"] and obj["kind"] == before["kind"]
    # nothing the schema specifies was removed
    for path in pruned:
        assert path.rsplit(".", 1)[-1] in ("junk", "zz", "yy")
