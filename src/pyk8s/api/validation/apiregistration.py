"""Validation of ``apiregistration.k8s.io/v1`` APIServices, as kube-aggregator v1.32 has it.

An APIService tells the API server where a group/version is served: here (no
``spec.service``: a *local* APIService) or by an extension API server behind a Service.
Its name must be ``<version>.<group>`` (``v1.`` for the core group), the priorities
order groups and versions in discovery, and the TLS settings only make sense for a
remote one. Paths and messages are upstream's so that ``kubectl apply`` prints the same
422 as a real cluster. Pure: objects are not mutated.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pyk8s.api import errors
from pyk8s.api.validation import names
from pyk8s.api.validation._util import JSON, Errs, d, i, lst, s
from pyk8s.api.validation.meta import validate_object_meta, validate_object_meta_update

__all__ = [
    "ca_bundle_length",
    "validate_api_service",
    "validate_api_service_status_update",
    "validate_api_service_update",
]

#: upstream's bounds (inclusive) for spec.groupPriorityMinimum and spec.versionPriority
MAX_GROUP_PRIORITY = 20000
MAX_VERSION_PRIORITY = 1000
_CONDITION_STATUSES = ("True", "False", "Unknown")


def ca_bundle_length(ca_bundle: Any) -> int:
    """The decoded length of ``spec.caBundle`` (``[]byte`` upstream, base64 on the wire)."""
    if not isinstance(ca_bundle, str) or not ca_bundle:
        return 0
    try:
        return len(base64.b64decode(ca_bundle, validate=True))
    except (binascii.Error, ValueError):
        return len(ca_bundle)


def validate_api_service(obj: JSON) -> Errs:
    """Upstream's ``ValidateAPIService``."""
    spec = d(obj.get("spec"))
    group, version = s(spec.get("group")), s(spec.get("version"))
    required_name = f"{version}.{group}"

    def name_fn(name: str, prefix: bool) -> list[str]:
        minimal = names.is_valid_path_segment_name(name, prefix)
        if minimal:
            return minimal
        if name != required_name:
            return [f'must be `spec.version+"."+spec.group`: "{required_name}"']
        return []

    errs = validate_object_meta(obj.get("metadata"), False, name_fn, core=False)
    if not group and version != "v1":
        errs.append(
            errors.required(
                "spec.group", "only v1 may have an empty group and it better be legacy kube"
            )
        )
    if group:
        errs += [errors.invalid("spec.group", group, m) for m in names.is_dns1123_subdomain(group)]
    errs += [errors.invalid("spec.version", version, m) for m in names.is_dns1035_label(version)]
    group_priority = i(spec.get("groupPriorityMinimum"))
    if group_priority <= 0 or group_priority > MAX_GROUP_PRIORITY:
        errs.append(
            errors.invalid(
                "spec.groupPriorityMinimum",
                group_priority,
                "must be positive and less than 20000",
            )
        )
    version_priority = i(spec.get("versionPriority"))
    if version_priority <= 0 or version_priority > MAX_VERSION_PRIORITY:
        errs.append(
            errors.invalid(
                "spec.versionPriority", version_priority, "must be positive and less than 1000"
            )
        )
    ca_length = ca_bundle_length(spec.get("caBundle"))
    insecure = spec.get("insecureSkipTLSVerify") is True
    service = spec.get("service")
    if not isinstance(service, dict):
        if ca_length:
            errs.append(
                errors.invalid(
                    "spec.caBundle",
                    f"{ca_length} bytes",
                    "local APIServices may not have a caBundle",
                )
            )
        if insecure:
            errs.append(
                errors.invalid(
                    "spec.insecureSkipTLSVerify",
                    True,
                    "local APIServices may not have insecureSkipTLSVerify",
                )
            )
        return errs
    if not s(service.get("namespace")):
        errs.append(errors.required("spec.service.namespace"))
    if not s(service.get("name")):
        errs.append(errors.required("spec.service.name"))
    port = i(service.get("port"))
    port_errs = names.is_valid_port_num(port)
    if port_errs:
        errs.append(
            errors.invalid("spec.service.port", port, "port is not valid: " + ", ".join(port_errs))
        )
    if insecure and ca_length:
        errs.append(
            errors.invalid(
                "spec.insecureSkipTLSVerify", True, "may not be true if caBundle is present"
            )
        )
    return errs


def validate_api_service_update(new: JSON, old: JSON) -> Errs:
    """Upstream's ``ValidateAPIServiceUpdate``."""
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"), core=False)
    return errs + validate_api_service(new)


def validate_api_service_status_update(new: JSON, old: JSON) -> Errs:
    """Upstream's ``ValidateAPIServiceStatusUpdate``: each condition's status is one of
    True, False, Unknown."""
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"), core=False)
    for n, condition in enumerate(lst(d(new.get("status")).get("conditions"))):
        state = d(condition).get("status")
        if state not in _CONDITION_STATUSES:
            errs.append(
                errors.not_supported(
                    f"status.conditions[{n}].status", s(state), _CONDITION_STATUSES
                )
            )
    return errs
