"""Go's printing of values: what upstream's messages show for each kind of value.

Expected strings are what Go 1.23 (Kubernetes v1.32's toolchain) prints with the same verb.
"""

from __future__ import annotations

from typing import Any

import pytest

from pyk8s.api.gofmt import (
    GoStringSlice,
    go_bad_value,
    go_float,
    go_json,
    go_quote,
    go_s,
    go_sharp_v,
    go_string_slice,
    go_type,
    go_v,
    json_kind,
)


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("plain", '"plain"'),
        ('say "hi"\\', '"say \\"hi\\"\\\\"'),
        ("\a\b\f\n\r\t\v", '"\\a\\b\\f\\n\\r\\t\\v"'),
        ("\x00\x1f\x7f", '"\\x00\\x1f\\x7f"'),
        ("héllo 世界 𝄞", '"héllo 世界 𝄞"'),
        ("\u0080\u00a0\u00ad\u2028", '"\\u0080\\u00a0\\u00ad\\u2028"'),
        ("\U000e0001", '"\\U000e0001"'),
        ("\ud800", '"\\xed\\xa0\\x80"'),
    ],
)
def test_quote_is_strconv_quote(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted


@pytest.mark.parametrize(
    ("f", "shown"),
    [
        (1.0, "1"),
        (2.5, "2.5"),
        (123456.0, "123456"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-2.5e-7, "-2.5e-07"),
        (1e21, "1e+21"),
        (-0.0, "-0"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
        (float("nan"), "NaN"),
    ],
)
def test_float_is_percent_v(f: float, shown: str) -> None:
    assert go_float(f) == shown


def test_json_is_encoding_json() -> None:
    assert go_json({"b": [1, 2.0, 1e-7, 1e21, 1e20], "a": "<&>", "c": None}) == (
        '{"a":"\\u003c\\u0026\\u003e","b":[1,2,1e-7,1e+21,100000000000000000000],"c":null}'
    )
    # Go 1.22+ writes \b and \f short; other control characters as \u00XX
    assert go_json("\b\f\n\x01\u2028é") == '"\\b\\f\\n\\u0001\\u2028é"'
    assert go_json([True, False, -0.0]) == "[true,false,-0]"


def test_v_s_and_sharp_v() -> None:
    value = {"b": [1, "x", None], "a": 1.5e6}
    assert go_v(value) == "map[a:1.5e+06 b:[1 x <nil>]]"
    assert go_sharp_v(value) == (
        'map[string]interface {}{"a":1.5e+06, "b":[]interface {}{1, "x", interface {}(nil)}}'
    )
    assert go_s("x") == "x"
    assert go_s(3) == "%!s(int64=3)"
    assert go_s(None) == "%!s(<nil>)"
    assert go_s([1, "a"]) == "[1 a]"


def test_string_slices() -> None:
    assert go_string_slice(["a", 'b"']) == '[]string{"a", "b\\""}'
    assert go_string_slice([]) == "[]string{}"
    assert go_string_slice(None) == "[]string(nil)"
    assert go_sharp_v(GoStringSlice(["a"])) == '[]string{"a"}'


@pytest.mark.parametrize(
    ("value", "type_name", "kind"),
    [
        ({}, "map[string]interface {}", "object"),
        ([], "[]interface {}", "array"),
        (GoStringSlice(), "[]string", "array"),
        ("", "string", "string"),
        (True, "bool", "bool"),
        (1, "int64", "number"),
        (1.5, "float64", "number"),
        (None, "<nil>", "null"),
    ],
)
def test_type_names(value: Any, type_name: str, kind: str) -> None:
    assert go_type(value) == type_name
    assert json_kind(value) == kind


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("a\tb", '"a\\tb"'),
        (None, '"null"'),
        (False, "false"),
        (-3, "-3"),
        (1e6, "1e+06"),
        (0.5, "0.5"),
        ({"k": None}, 'map[string]interface {}{"k":interface {}(nil)}'),
        (["a"], '[]interface {}{"a"}'),
        (GoStringSlice(["/healthz"]), '[]string{"/healthz"}'),
    ],
)
def test_bad_value_is_field_error_body(value: Any, shown: str) -> None:
    assert go_bad_value(value) == shown
