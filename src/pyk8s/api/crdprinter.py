"""Table printing of custom resources, from their CRD's ``additionalPrinterColumns``.

``kubectl get <custom resource>`` prints whatever columns the API server's Table carries,
so a custom resource's columns, cell types and cell text must be what upstream's
``tableconvertor`` (k8s.io/apiextensions-apiserver, v1.32) computes: ``Name`` first, then
one column per printer column, each cell the *first* value its JSONPath selects —

* ``string`` columns print the value as ``kubectl -o jsonpath`` would (maps and lists
  as compact JSON, ``<no value>`` for a JSON null);
* ``integer`` / ``number`` / ``boolean`` cells are typed (a float truncates to an
  integer, an integer widens to a number), ``date`` cells are ages (``5m``,
  ``<invalid>`` for an unparsable or future time, ``<unknown>`` for none);
* a path that selects nothing, fails, or a value of the wrong type gives a null cell.

A version without printer columns is served with one logically defaulted column, ``Age``
over ``.metadata.creationTimestamp``, as upstream does. A column whose path does not
parse stops the list there (upstream logs it and keeps the columns before it).

Pure: no I/O, no clock — tables pass ``now``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from pyk8s.api.gofmt import go_quote
from pyk8s.api.jsonpath import JSONPath, JSONPathError, parse_template, print_value
from pyk8s.api.tables import Cell, Column, Printer, human_duration

__all__ = [
    "AGE_COLUMN",
    "CREATION_TIMESTAMP_DESCRIPTION",
    "NAME_COLUMN",
    "cell_for_json_value",
    "columns_for_version",
    "crd_printer",
    "crd_scale_printer",
    "printer_for_columns",
    "scale_columns_for_version",
]

JSON = dict[str, Any]

#: ``metav1.ObjectMeta{}.SwaggerDoc()["name"]``, the Name column's description
NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, although "
    "some resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
#: ``metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"]``, the defaulted Age column's
CREATION_TIMESTAMP_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is in "
    "UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)

NAME_COLUMN = Column("Name", "string", "name", NAME_DESCRIPTION, 0)

#: the column a version without ``additionalPrinterColumns`` is served with
AGE_COLUMN: JSON = {
    "name": "Age",
    "type": "date",
    "description": CREATION_TIMESTAMP_DESCRIPTION,
    "jsonPath": ".metadata.creationTimestamp",
}


# --------------------------------------------------------------------------- columns


def _version(crd: Mapping[str, Any], version: str) -> JSON:
    spec = crd.get("spec")
    versions = spec.get("versions") if isinstance(spec, Mapping) else None
    for v in versions if isinstance(versions, list) else []:
        if isinstance(v, dict) and v.get("name") == version:
            return v
    meta = crd.get("metadata")
    name = meta.get("name", "") if isinstance(meta, Mapping) else ""
    raise KeyError(
        f"version {version} not found in apiextensionsv1.CustomResourceDefinition: {name}"
    )


def columns_for_version(crd: Mapping[str, Any], version: str) -> list[JSON]:
    """The printer columns ``version`` of ``crd`` is served with (``getColumnsForVersion``).

    Its ``additionalPrinterColumns``, or the defaulted ``Age`` column when it has none.
    Raises KeyError when the CRD has no such version.
    """
    columns = _version(crd, version).get("additionalPrinterColumns")
    if isinstance(columns, list) and columns:
        return [c if isinstance(c, dict) else {} for c in columns]
    return [dict(AGE_COLUMN)]


def scale_columns_for_version(crd: Mapping[str, Any], version: str) -> list[JSON]:
    """The columns of ``version``'s scale subresource Table (``getScaleColumnsForVersion``)."""
    v = _version(crd, version)
    subresources = v.get("subresources")
    scale = subresources.get("scale") if isinstance(subresources, Mapping) else None
    cols: list[JSON] = []
    if isinstance(scale, Mapping):
        if scale.get("specReplicasPath"):
            cols.append(
                {
                    "name": "Desired",
                    "type": "integer",
                    "description": "Number of desired replicas",
                    "jsonPath": ".spec.replicas",
                }
            )
        if scale.get("statusReplicasPath"):
            cols.append(
                {
                    "name": "Available",
                    "type": "integer",
                    "description": "Number of actual replicas",
                    "jsonPath": ".status.replicas",
                }
            )
    cols.append(dict(AGE_COLUMN))
    return cols


# --------------------------------------------------------------------------- cells

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$"
)


def _parse_rfc3339(text: str) -> datetime | None:
    """Go's ``time.Parse(time.RFC3339, text)``; None when it fails."""
    m = _RFC3339.match(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micros = int((m.group(7) or "0")[:6].ljust(6, "0"))
    zone = m.group(8)
    try:
        if zone == "Z":
            tz = UTC
        else:
            hh, mm = int(zone[1:3]), int(zone[4:6])
            if hh > 23 or mm > 59:
                return None
            offset = timedelta(hours=hh, minutes=mm)
            tz = timezone(-offset if zone[0] == "-" else offset)
        return datetime(year, month, day, hour, minute, second, micros, tzinfo=tz)
    except ValueError:
        return None


def _date_cell(text: str, now: datetime) -> str:
    """``metav1.Time.UnmarshalQueryParameter`` then ``ConvertToHumanReadableDateType``."""
    if text in ("", "null"):
        return "<unknown>"
    ts = _parse_rfc3339(text)
    if ts is None:
        return "<invalid>"
    if ts.astimezone(UTC).replace(tzinfo=None) == datetime(1, 1, 1):
        return "<unknown>"  # Go's zero time
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return human_duration(now - ts)


def cell_for_json_value(header_type: str, value: Any, now: datetime) -> Cell:
    """A non-string column's cell (upstream's ``cellForJSONValue``); None when it does not fit."""
    if value is None:
        return None
    if header_type == "integer":
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            return int(value) if value == value and abs(value) != float("inf") else None
    elif header_type == "number":
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            return float(value)
    elif header_type == "boolean":
        if isinstance(value, bool):
            return value
    elif header_type == "string":
        if isinstance(value, str):
            return value
    elif header_type == "date" and isinstance(value, str):
        return _date_cell(value, now)
    return None


def _string_cell(value: Any) -> str:
    """A string column's cell: the value as ``PrintResults`` writes it."""
    if value is None:
        return "<no value>"  # a JSON null re-wrapped as an invalid reflect.Value
    return print_value(value)


# --------------------------------------------------------------------------- printers


def _column(col: Mapping[str, Any]) -> tuple[Column, JSONPath]:
    """One printer column's definition and parsed path; JSONPathError when it does not parse."""
    json_path = col.get("jsonPath")
    json_path = json_path if isinstance(json_path, str) else ""
    path = parse_template("{" + json_path + "}", allow_missing_keys=True)
    description = col.get("description")
    if not isinstance(description, str) or not description:
        description = f"Custom resource definition column (in JSONPath format): {json_path}"
    priority = col.get("priority")
    definition = Column(
        name=str(col.get("name") or ""),
        type=str(col.get("type") or ""),
        format=str(col.get("format") or ""),
        description=description,
        priority=priority if isinstance(priority, int) and not isinstance(priority, bool) else 0,
    )
    return definition, path


_MISSING = object()


def _first_value(path: JSONPath, chain: tuple[str, ...] | None, obj: Any) -> Any:
    """The first value ``path`` selects in ``obj``; _MISSING when none (or an error)."""
    if chain is not None:  # a plain .a.b.c path: the same answer without the evaluator
        cur = obj
        for key in chain:
            if not isinstance(cur, dict) or key not in cur:
                return _MISSING
            cur = cur[key]
        return cur
    try:
        results = path.find_results(obj)
    except JSONPathError:
        return _MISSING
    if not results or not results[0]:
        return _MISSING
    return results[0][0]  # upstream prints only the first value a path selects


def _cell(
    column: Column, path: JSONPath, chain: tuple[str, ...] | None, obj: Any, now: datetime
) -> Cell:
    value = _first_value(path, chain, obj)
    if value is _MISSING:
        return None
    if column.type == "string":
        return _string_cell(value)
    return cell_for_json_value(column.type, value, now)


def printer_for_columns(columns: Sequence[Mapping[str, Any]]) -> tuple[Printer, str | None]:
    """The Table printer for these printer columns (upstream's ``tableconvertor.New``).

    Returns the printer and None, or, when a column's ``jsonPath`` does not parse, the
    printer of the columns before it and upstream's error
    (``unrecognized column definition ".spec[x"``), which the API server only logs.
    """
    defs: list[Column] = [NAME_COLUMN]
    paths: list[tuple[Column, JSONPath, tuple[str, ...] | None]] = []
    error: str | None = None
    for col in columns:
        try:
            definition, path = _column(col)
        except JSONPathError:
            json_path = col.get("jsonPath")
            error = f"unrecognized column definition {go_quote(str(json_path or ''))}"
            break
        defs.append(definition)
        paths.append((definition, path, path.field_chain))

    def row(obj: Mapping[str, Any], now: datetime) -> list[Cell]:
        meta = obj.get("metadata")
        name = meta.get("name") if isinstance(meta, Mapping) else None
        cells: list[Cell] = [name if isinstance(name, str) else ""]
        cells.extend(_cell(column, path, chain, obj, now) for column, path, chain in paths)
        return cells

    return Printer(tuple(defs), row), error


def crd_printer(crd: Mapping[str, Any], version: str) -> Printer:
    """The printer of custom resources of ``crd`` served at ``version``.

    Pass it to :func:`pyk8s.api.tables.build_table` as ``printer=``. Raises KeyError
    when the CRD has no such version.
    """
    printer, _ = printer_for_columns(columns_for_version(crd, version))
    return printer


def crd_scale_printer(crd: Mapping[str, Any], version: str) -> Printer:
    """The printer of ``version``'s scale subresource (Name, Desired, Available, Age)."""
    printer, _ = printer_for_columns(scale_columns_for_version(crd, version))
    return printer
