"""Strategies of ValidatingAdmissionPolicy and ValidatingAdmissionPolicyBinding.

A policy's ``metadata.generation`` moves when its spec changes (the type-checking
controller reports ``status.observedGeneration`` against it); its status is written only
through the status subresource. Both resources are defaulted and validated as upstream's
v1 (:mod:`pyk8s.api.admissionpolicy`, :mod:`pyk8s.api.validation.admissionpolicy`) and
print upstream's columns: NAME, VALIDATIONS, PARAMKIND, AGE for policies and NAME,
POLICYNAME, PARAMREF, AGE for bindings.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pyk8s.api.admissionpolicy import default_binding, default_policy
from pyk8s.api.errors import FieldError
from pyk8s.api.tables import AGE, NAME, Cell, Column, Printer, translate_timestamp_since
from pyk8s.api.validation import admissionpolicy as validation
from pyk8s.apiserver.strategies.base import JSON, Strategy
from pyk8s.apiserver.strategies.workloads import GenerationStrategy


def _selector_string(selector: JSON) -> str:
    """metav1.LabelSelector's (generated) String(), which kubectl prints for a paramRef."""
    labels = selector.get("matchLabels") or {}
    exprs = "".join(
        f"LabelSelectorRequirement{{Key:{e.get('key', '')},Operator:{e.get('operator', '')},"
        f"Values:[{' '.join(e.get('values') or [])}],}},"
        for e in selector.get("matchExpressions") or []
        if isinstance(e, dict)
    )
    pairs = "".join(f"{k}: {labels[k]}," for k in sorted(labels))
    return (
        f"&LabelSelector{{MatchLabels:map[string]string{{{pairs}}},"
        f"MatchExpressions:[]LabelSelectorRequirement{{{exprs}}},}}"
    )


def _policy_row(obj: Mapping[str, Any], now: datetime) -> list[Cell]:
    spec = obj.get("spec") or {}
    kind = spec.get("paramKind")
    param_kind = (
        f"{kind.get('apiVersion', '')}/{kind.get('kind', '')}"
        if isinstance(kind, dict)
        else "<unset>"
    )
    return [
        obj["metadata"]["name"],
        len(spec.get("validations") or []),
        param_kind,
        translate_timestamp_since(obj["metadata"].get("creationTimestamp"), now),
    ]


def _binding_row(obj: Mapping[str, Any], now: datetime) -> list[Cell]:
    spec = obj.get("spec") or {}
    ref = spec.get("paramRef")
    param = "<unset>"
    if isinstance(ref, dict):
        if ref.get("name"):
            param = f"{ref.get('namespace') or '*'}/{ref['name']}"
        elif isinstance(ref.get("selector"), dict):
            param = _selector_string(ref["selector"])
    return [
        obj["metadata"]["name"],
        spec.get("policyName", ""),
        param,
        translate_timestamp_since(obj["metadata"].get("creationTimestamp"), now),
    ]


_POLICY_PRINTER = Printer(
    (
        NAME,
        Column(
            "Validations", "integer", "", "Validations indicates the number of validation rules"
        ),
        Column(
            "ParamKind",
            "string",
            "",
            "ParamKind specifies the kind of resources used to parameterize this policy",
        ),
        AGE,
    ),
    _policy_row,
)
_BINDING_PRINTER = Printer(
    (
        NAME,
        Column(
            "PolicyName", "string", "", "PolicyName references a ValidatingAdmissionPolicy name"
        ),
        Column(
            "ParamRef",
            "string",
            "",
            "ParamRef specifies the parameter resource used to configure the admission "
            "control policy",
        ),
        AGE,
    ),
    _binding_row,
)


class ValidatingAdmissionPolicyStrategy(GenerationStrategy):
    printer = _POLICY_PRINTER

    def default(self, obj: JSON, *, create: bool) -> JSON:
        return default_policy(super().default(obj, create=create))

    def validate(self, obj: JSON) -> list[FieldError]:
        return validation.create_policy(obj)

    def validate_update(self, new: JSON, old: JSON) -> list[FieldError]:
        return validation.update_policy(new, old)

    def validate_status_update(self, new: JSON, old: JSON) -> list[FieldError]:
        return validation.update_policy_status(new, old)


class ValidatingAdmissionPolicyBindingStrategy(Strategy):
    printer = _BINDING_PRINTER

    def default(self, obj: JSON, *, create: bool) -> JSON:
        return default_binding(super().default(obj, create=create))

    def validate(self, obj: JSON) -> list[FieldError]:
        return validation.create_binding(obj)

    def validate_update(self, new: JSON, old: JSON) -> list[FieldError]:
        return validation.update_binding(new, old)
