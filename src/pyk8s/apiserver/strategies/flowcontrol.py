"""Strategies of FlowSchema and PriorityLevelConfiguration (flowcontrol.apiserver.k8s.io/v1).

Both are defaulted as upstream's v1 (:mod:`pyk8s.api.flowcontrol`), validated with the
generic metadata and schema rules plus the APF-specific ones, move ``metadata.generation``
with their spec, and keep status to the status subresource (the API server's own
controller writes a FlowSchema's ``Dangling`` condition there). They print upstream's
columns: NAME, PRIORITYLEVEL, MATCHINGPRECEDENCE, DISTINGUISHERMETHOD, AGE, MISSINGPL for
flow schemas and NAME, TYPE, NOMINALCONCURRENCYSHARES, QUEUES, HANDSIZE,
QUEUELENGTHLIMIT, AGE for priority levels.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pyk8s.api import flowcontrol as apf
from pyk8s.api.errors import FieldError
from pyk8s.api.tables import AGE, NAME, Cell, Column, Printer, translate_timestamp_since
from pyk8s.apiserver.strategies.base import JSON
from pyk8s.apiserver.strategies.workloads import GenerationStrategy

_NONE = "<none>"


def _flow_schema_row(obj: Mapping[str, Any], now: datetime) -> list[Cell]:
    spec = obj.get("spec") or {}
    method = spec.get("distinguisherMethod")
    missing = "?"
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == apf.DANGLING:
            missing = str(cond.get("status", ""))
            break
    return [
        obj["metadata"]["name"],
        (spec.get("priorityLevelConfiguration") or {}).get("name", ""),
        spec.get("matchingPrecedence", 0),
        method.get("type", "") if isinstance(method, dict) else _NONE,
        translate_timestamp_since(obj["metadata"].get("creationTimestamp"), now),
        missing,
    ]


def _priority_level_row(obj: Mapping[str, Any], now: datetime) -> list[Cell]:
    spec = obj.get("spec") or {}
    shares: Cell = _NONE
    queues: Cell = _NONE
    hand: Cell = _NONE
    length: Cell = _NONE
    limited = spec.get("limited")
    if isinstance(limited, dict):
        shares = limited.get("nominalConcurrencyShares", 0)
        queuing = (limited.get("limitResponse") or {}).get("queuing")
        if isinstance(queuing, dict):
            queues = queuing.get("queues", 0)
            hand = queuing.get("handSize", 0)
            length = queuing.get("queueLengthLimit", 0)
    return [
        obj["metadata"]["name"],
        spec.get("type", ""),
        shares,
        queues,
        hand,
        length,
        translate_timestamp_since(obj["metadata"].get("creationTimestamp"), now),
    ]


def _s(name: str, description: str) -> Column:
    return Column(name, "string", "", description)


_FLOW_SCHEMA_PRINTER = Printer(
    (
        NAME,
        _s(
            "PriorityLevel",
            "`name` is the name of the priority level configuration being referenced Required.",
        ),
        _s(
            "MatchingPrecedence",
            "`matchingPrecedence` is used to choose among the FlowSchemas that match a given "
            "request.",
        ),
        _s(
            "DistinguisherMethod",
            "`distinguisherMethod` defines how to compute the flow distinguisher for requests "
            "that match this schema.",
        ),
        AGE,
        _s("MissingPL", "references a broken or non-existent PriorityLevelConfiguration"),
    ),
    _flow_schema_row,
)
_PRIORITY_LEVEL_PRINTER = Printer(
    (
        NAME,
        _s(
            "Type",
            "`type` indicates whether this priority level is subject to limitation on request "
            "execution.",
        ),
        _s(
            "NominalConcurrencyShares",
            "`nominalConcurrencyShares` (NCS) contributes to the computation of the "
            "NominalConcurrencyLimit (NominalCL) of this level.",
        ),
        _s("Queues", "`queues` is the number of queues for this priority level."),
        _s(
            "HandSize",
            "`handSize` is a small positive number that configures the shuffle sharding of "
            "requests into queues.",
        ),
        _s(
            "QueueLengthLimit",
            "`queueLengthLimit` is the maximum number of requests allowed to be waiting in a "
            "given queue of this priority level at a time.",
        ),
        AGE,
    ),
    _priority_level_row,
)


class FlowSchemaStrategy(GenerationStrategy):
    printer = _FLOW_SCHEMA_PRINTER

    def default(self, obj: JSON, *, create: bool) -> JSON:
        return apf.default_flow_schema(super().default(obj, create=create))

    def validate(self, obj: JSON) -> list[FieldError]:
        return super().validate(obj) or apf.validate_flow_schema(obj)

    def validate_update(self, new: JSON, old: JSON) -> list[FieldError]:
        return super().validate_update(new, old) or apf.validate_flow_schema(new)


class PriorityLevelConfigurationStrategy(GenerationStrategy):
    printer = _PRIORITY_LEVEL_PRINTER

    def default(self, obj: JSON, *, create: bool) -> JSON:
        return apf.default_priority_level(super().default(obj, create=create))

    def validate(self, obj: JSON) -> list[FieldError]:
        return super().validate(obj) or apf.validate_priority_level(obj)

    def validate_update(self, new: JSON, old: JSON) -> list[FieldError]:
        return super().validate_update(new, old) or apf.validate_priority_level(new)
