"""How APIServices are stored and printed (kube-aggregator's apiservice registry).

The generic strategy already resets ``status`` on create and keeps it on updates of the
main resource (APIServices have a status subresource, written by the availability
controller). What is APIService-specific: ``spec.service.port`` defaults to 443 (v1's
``SetDefaults_ServiceReference``), upstream's validation (see
:mod:`pyk8s.api.validation.apiregistration`), and the Table ``kubectl get apiservices``
prints: NAME, SERVICE (``namespace/name`` or ``Local``), AVAILABLE (``True``, or the
status with the reason: ``False (MissingEndpoints)``), AGE.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pyk8s.api.errors import FieldError
from pyk8s.api.jsoncopy import copy_json
from pyk8s.api.tables import AGE, NAME, Cell, Column, Printer, translate_timestamp_since
from pyk8s.api.validation import apiregistration
from pyk8s.apiserver.strategies import JSON, Strategy

__all__ = ["APISERVICE_PRINTER", "APIServiceStrategy", "available_condition"]

DEFAULT_SERVICE_PORT = 443


def available_condition(obj: JSON) -> JSON | None:
    """The ``Available`` condition of an APIService, if it has one."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == "Available":
            return c
    return None


def _row(obj: Any, now: datetime) -> list[Cell]:
    spec = obj.get("spec") or {}
    service = spec.get("service")
    where = "Local"
    if isinstance(service, dict):
        where = f"{service.get('namespace', '')}/{service.get('name', '')}"
    available = "Unknown"
    condition = available_condition(obj)
    if condition is not None:
        state = str(condition.get("status", ""))
        reason = str(condition.get("reason") or "")
        available = f"{state} ({reason})" if state != "True" and reason else state
    meta = obj.get("metadata") or {}
    age = translate_timestamp_since(meta.get("creationTimestamp"), now)
    return [meta.get("name", ""), where, available, age]


APISERVICE_PRINTER = Printer(
    (
        NAME,
        Column("Service", description="The reference to the service that hosts this API endpoint."),
        Column("Available", description="Whether this service is available."),
        AGE,
    ),
    _row,
)


class APIServiceStrategy(Strategy):
    printer = APISERVICE_PRINTER

    def default(self, obj: JSON, *, create: bool) -> JSON:
        out = super().default(obj, create=create)
        service = (out.get("spec") or {}).get("service")
        if isinstance(service, dict) and service.get("port") is None:
            out = copy_json(out) if out is obj else out
            out["spec"]["service"]["port"] = DEFAULT_SERVICE_PORT
        return out

    def validate(self, obj: JSON) -> list[FieldError]:
        return apiregistration.validate_api_service(obj)

    def validate_update(self, new: JSON, old: JSON) -> list[FieldError]:
        return apiregistration.validate_api_service_update(new, old)

    def validate_status_update(self, new: JSON, old: JSON) -> list[FieldError]:
        return apiregistration.validate_api_service_status_update(new, old)
