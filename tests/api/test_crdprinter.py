"""Custom resources as Tables: the columns and cells upstream's tableconvertor prints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pyk8s.api.crdprinter import (
    CREATION_TIMESTAMP_DESCRIPTION,
    NAME_DESCRIPTION,
    cell_for_json_value,
    columns_for_version,
    crd_printer,
    crd_scale_printer,
    printer_for_columns,
)
from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.api.tables import build_table, column_definitions

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def ago(**kw: float) -> str:
    return (NOW - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


def any_resource() -> Resource:
    return next(iter(REGISTRY))


COLUMNS = [
    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
    {"name": "Ratio", "type": "number", "format": "float", "jsonPath": ".spec.ratio"},
    {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
    {
        "name": "Ready",
        "type": "string",
        "description": "Whether it is ready",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {"name": "Tags", "type": "string", "priority": 1, "jsonPath": ".spec.tags"},
    {"name": "Selector", "type": "string", "priority": 1, "jsonPath": ".spec.selector"},
    {"name": "First", "type": "string", "jsonPath": ".spec.tags[*]"},
    {"name": "Started", "type": "date", "jsonPath": ".status.startTime"},
]

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "names": {"plural": "widgets", "kind": "Widget"},
        "scope": "Namespaced",
        "versions": [
            {"name": "v1", "served": True, "storage": True, "additionalPrinterColumns": COLUMNS},
            {
                "name": "v2",
                "served": True,
                "storage": False,
                "subresources": {
                    "scale": {
                        "specReplicasPath": ".spec.replicas",
                        "statusReplicasPath": ".status.replicas",
                    }
                },
            },
        ],
    },
}

WIDGET: dict[str, Any] = {
    "apiVersion": "example.com/v1",
    "kind": "Widget",
    "metadata": {"name": "w1", "namespace": "default", "creationTimestamp": ago(minutes=5)},
    "spec": {
        "replicas": 3,
        "ratio": 2,
        "paused": False,
        "tags": ["a", "b"],
        "selector": {"app": "w", "tier": "<web>"},
    },
    "status": {
        "conditions": [
            {"type": "Available", "status": "False"},
            {"type": "Ready", "status": "True"},
        ],
        "startTime": ago(hours=3, minutes=10),
    },
}


def test_columns_name_first_then_printer_columns() -> None:
    defs = column_definitions(any_resource(), printer=crd_printer(CRD, "v1"))
    assert defs[0] == {
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": NAME_DESCRIPTION,
        "priority": 0,
    }
    assert [(d["name"], d["type"], d["format"], d["priority"]) for d in defs[1:]] == [
        ("Replicas", "integer", "", 0),
        ("Ratio", "number", "float", 0),
        ("Paused", "boolean", "", 0),
        ("Ready", "string", "", 0),
        ("Tags", "string", "", 1),
        ("Selector", "string", "", 1),
        ("First", "string", "", 0),
        ("Started", "date", "", 0),
    ]
    assert defs[4]["description"] == "Whether it is ready"
    assert defs[1]["description"] == (
        "Custom resource definition column (in JSONPath format): .spec.replicas"
    )


def test_cells_are_typed_and_formatted_as_upstream() -> None:
    table = build_table(any_resource(), [WIDGET], now=NOW, printer=crd_printer(CRD, "v1"))
    row = table["rows"][0]
    assert row["cells"] == [
        "w1",
        3,
        2.0,
        False,
        "True",
        '["a","b"]',
        '{"app":"w","tier":"\\u003cweb\\u003e"}',
        "a",  # only the first value a path selects
        "3h10m",
    ]
    assert isinstance(row["cells"][2], float)
    assert row["object"]["metadata"]["name"] == "w1"


def test_missing_and_mistyped_values_give_null_cells() -> None:
    obj = {
        "metadata": {"name": "w2"},
        "spec": {"replicas": "three", "ratio": True, "paused": "no", "tags": []},
        "status": {"conditions": [], "startTime": "yesterday"},
    }
    cells = crd_printer(CRD, "v1").row(obj, NOW)
    assert cells == ["w2", None, None, None, None, "[]", None, None, "<invalid>"]


def test_null_value_in_a_string_column_prints_no_value() -> None:
    printer, err = printer_for_columns([{"name": "X", "type": "string", "jsonPath": ".spec.x"}])
    assert err is None
    assert printer.row({"metadata": {"name": "n"}, "spec": {"x": None}}, NOW) == [
        "n",
        "<no value>",
    ]
    assert printer.row({"metadata": {"name": "n"}, "spec": {"x": 1.5}}, NOW) == ["n", "1.5"]
    assert printer.row({"metadata": {"name": "n"}, "spec": {"x": 1e6}}, NOW) == ["n", "1e+06"]


def test_version_without_columns_gets_name_and_age() -> None:
    assert columns_for_version(CRD, "v2") == [
        {
            "name": "Age",
            "type": "date",
            "description": CREATION_TIMESTAMP_DESCRIPTION,
            "jsonPath": ".metadata.creationTimestamp",
        }
    ]
    table = build_table(any_resource(), [WIDGET], now=NOW, printer=crd_printer(CRD, "v2"))
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]
    assert table["columnDefinitions"][1]["type"] == "date"
    assert table["rows"][0]["cells"] == ["w1", "5m"]
    no_ts = {"metadata": {"name": "x"}}
    assert crd_printer(CRD, "v2").row(no_ts, NOW) == ["x", None]


def test_scale_printer() -> None:
    scale = {
        "kind": "Scale",
        "metadata": {"name": "w1", "creationTimestamp": ago(seconds=45)},
        "spec": {"replicas": 3},
        "status": {"replicas": 2},
    }
    printer = crd_scale_printer(CRD, "v2")
    assert [c.name for c in printer.columns] == ["Name", "Desired", "Available", "Age"]
    assert printer.row(scale, NOW) == ["w1", 3, 2, "45s"]
    assert [c.name for c in crd_scale_printer(CRD, "v1").columns] == ["Name", "Age"]


def test_unknown_version() -> None:
    with pytest.raises(KeyError):
        crd_printer(CRD, "v9")


def test_unparsable_column_keeps_the_columns_before_it() -> None:
    printer, err = printer_for_columns(
        [
            {"name": "A", "type": "string", "jsonPath": ".a"},
            {"name": "B", "type": "string", "jsonPath": ".spec[x"},
            {"name": "C", "type": "string", "jsonPath": ".c"},
        ]
    )
    assert err == 'unrecognized column definition ".spec[x"'
    assert [c.name for c in printer.columns] == ["Name", "A"]


@pytest.mark.parametrize(
    ("header", "value", "want"),
    [
        ("integer", 42, 42),
        ("integer", 3.14, 3),
        ("integer", True, None),
        ("integer", "foo", None),
        ("number", 42, 42.0),
        ("number", 3.14, 3.14),
        ("number", True, None),
        ("number", "foo", None),
        ("boolean", 42, None),
        ("boolean", 3.14, None),
        ("boolean", True, True),
        ("boolean", "foo", None),
        ("string", 42, None),
        ("string", 3.14, None),
        ("string", True, None),
        ("string", "foo", "foo"),
        ("date", 42, None),
        ("date", 3.14, None),
        ("date", True, None),
        ("date", ago(hours=12, minutes=30), "12h"),
        ("date", (NOW + timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M:%SZ"), "<invalid>"),
        ("date", "", "<unknown>"),
        ("date", "2024-05-01T11:59:30.123456789+00:00", "29s"),
        ("date", "2024-05-01 11:59:30Z", "<invalid>"),
        ("unknown", "foo", None),
    ],
)
def test_cell_for_json_value(header: str, value: Any, want: Any) -> None:
    got = cell_for_json_value(header, value, NOW)
    assert got == want
    assert type(got) is type(want)
