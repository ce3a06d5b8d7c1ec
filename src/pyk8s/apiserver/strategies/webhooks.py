"""The strategy of MutatingWebhookConfiguration and ValidatingWebhookConfiguration.

Why this exists: webhook configurations are plain objects to the generic store, but
they are validated and defaulted by their own rules (:mod:`pyk8s.api.validation.webhooks`)
and print upstream's ``NAME  WEBHOOKS  AGE`` columns in ``kubectl get``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pyk8s.api.errors import FieldError
from pyk8s.api.registry import Resource
from pyk8s.api.tables import AGE, NAME, Cell, Column, Printer, translate_timestamp_since
from pyk8s.api.validation.webhooks import (
    default_webhook_configuration,
    validate_webhook_configuration,
    validate_webhook_configuration_update,
)
from pyk8s.apiserver.strategies.base import JSON, Strategy

_WEBHOOKS = Column(
    "Webhooks", "integer", "", "Webhooks indicates the number of webhooks in the configuration"
)


def _row(obj: Mapping[str, Any], now: datetime) -> list[Cell]:
    meta = obj.get("metadata") or {}
    return [
        meta.get("name", ""),
        len(obj.get("webhooks") or []),
        translate_timestamp_since(meta.get("creationTimestamp"), now),
    ]


class WebhookConfigurationStrategy(Strategy):
    """Mutating or validating webhook configurations (cluster-scoped, no status)."""

    printer = Printer((NAME, _WEBHOOKS, AGE), _row)

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource)
        self.mutating = resource.kind == "MutatingWebhookConfiguration"

    def default(self, obj: JSON, *, create: bool) -> JSON:
        out = super().default(obj, create=create)
        default_webhook_configuration(out, mutating=self.mutating)
        return out

    def validate(self, obj: JSON) -> list[FieldError]:
        return validate_webhook_configuration(obj, mutating=self.mutating)

    def validate_update(self, new: JSON, old: JSON) -> list[FieldError]:
        return validate_webhook_configuration_update(new, old, mutating=self.mutating)
