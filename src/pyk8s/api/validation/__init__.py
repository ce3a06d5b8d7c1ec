"""Validation of API objects on write: upstream's rules, paths and messages.

The API server calls :func:`validate_create` / :func:`validate_update` after defaulting
and gets back :class:`~pyk8s.api.errors.FieldError` s that render exactly as upstream's
(``spec.containers[0].image: Required value``), ready for
:func:`~pyk8s.api.errors.invalid_object`. Before that, while decoding, it asks
:func:`decode_error` (400 "cannot unmarshal" type mismatches) and
:func:`unknown_fields` (for ``fieldValidation=Strict|Warn``).

Two layers, as upstream has them:

* per-kind rules ported from pkg/apis/*/validation (v1.32): names per resource,
  labels, selectors, pod specs, immutable fields on update;
* the official schema (kubernetes-validate): keys it marks required that the per-kind
  rules did not already report, so kinds without hand-written rules are still checked.

When a kind's rules pass, the generic metadata check every resource gets upstream
(``rest.BeforeCreate``) runs too. Everything is pure: no I/O, objects are not mutated.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pyk8s.api.errors import FieldError
from pyk8s.api.registry import Resource
from pyk8s.api.validation import apps, batch, certificates, core, groups
from pyk8s.api.validation._util import JSON, Errs, d
from pyk8s.api.validation.batch import generate_job_selector, parse_cron
from pyk8s.api.validation.core import drop_type_dependent_fields
from pyk8s.api.validation.meta import validate_object_meta_update
from pyk8s.api.validation.schema_check import (
    decode_error,
    decode_errors,
    schema_required,
    unknown_fields,
)

__all__ = [
    "decode_error",
    "decode_errors",
    "drop_type_dependent_fields",
    "generate_job_selector",
    "parse_cron",
    "unknown_fields",
    "validate_create",
    "validate_update",
]

Create = Callable[[JSON], Errs]
Update = Callable[[JSON, JSON], Errs]

_RULES: dict[tuple[str, str], tuple[Create, Update]] = {
    ("", "Pod"): (core.create_pod, core.update_pod),
    ("", "PodTemplate"): (core.create_pod_template, core.update_pod_template),
    ("", "Binding"): (core.create_binding, lambda n, o: core.create_binding(n)),
    ("", "ReplicationController"): (
        core.create_replication_controller,
        core.update_replication_controller,
    ),
    ("", "Service"): (core.create_service, core.update_service),
    ("", "Secret"): (core.create_secret, core.update_secret),
    ("", "ConfigMap"): (core.create_config_map, core.update_config_map),
    ("", "ServiceAccount"): (core.create_service_account, core.update_service_account),
    ("", "Namespace"): (core.create_namespace, core.update_namespace),
    ("", "Node"): (core.create_node, core.update_node),
    ("", "Endpoints"): (core.create_endpoints, core.update_endpoints),
    ("", "Event"): (
        lambda o: core.create_event(o, False),
        lambda n, o: core.update_event(n, o, False),
    ),
    ("events.k8s.io", "Event"): (
        lambda o: core.create_event(o, True),
        lambda n, o: core.update_event(n, o, True),
    ),
    ("", "PersistentVolume"): (core.create_persistent_volume, core.update_persistent_volume),
    ("", "PersistentVolumeClaim"): (
        core.create_persistent_volume_claim,
        core.update_persistent_volume_claim,
    ),
    ("", "LimitRange"): (core.create_limit_range, core.update_limit_range),
    ("", "ResourceQuota"): (core.create_resource_quota, core.update_resource_quota),
    ("apps", "Deployment"): (apps.create_deployment, apps.update_deployment),
    ("apps", "ReplicaSet"): (apps.create_replica_set, apps.update_replica_set),
    ("apps", "StatefulSet"): (apps.create_stateful_set, apps.update_stateful_set),
    ("apps", "DaemonSet"): (apps.create_daemon_set, apps.update_daemon_set),
    ("apps", "ControllerRevision"): (
        apps.create_controller_revision,
        apps.update_controller_revision,
    ),
    ("batch", "Job"): (batch.create_job, batch.update_job),
    ("batch", "CronJob"): (batch.create_cron_job, batch.update_cron_job),
    ("rbac.authorization.k8s.io", "Role"): (
        lambda o: groups.create_role(o, True),
        lambda n, o: groups.update_role(n, o, True),
    ),
    ("rbac.authorization.k8s.io", "ClusterRole"): (
        lambda o: groups.create_role(o, False),
        lambda n, o: groups.update_role(n, o, False),
    ),
    ("rbac.authorization.k8s.io", "RoleBinding"): (
        lambda o: groups.create_binding(o, True),
        lambda n, o: groups.update_binding(n, o, True),
    ),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): (
        lambda o: groups.create_binding(o, False),
        lambda n, o: groups.update_binding(n, o, False),
    ),
    ("certificates.k8s.io", "CertificateSigningRequest"): (
        certificates.create_csr,
        lambda n, o: certificates.update_csr(n, o),
    ),
    ("coordination.k8s.io", "Lease"): (groups.create_lease, groups.update_lease),
    ("policy", "PodDisruptionBudget"): (groups.create_pdb, groups.update_pdb),
    ("networking.k8s.io", "Ingress"): (groups.create_ingress, groups.update_ingress),
    ("networking.k8s.io", "IngressClass"): (
        groups.create_ingress_class,
        groups.update_ingress_class,
    ),
    ("networking.k8s.io", "NetworkPolicy"): (
        groups.create_network_policy,
        groups.update_network_policy,
    ),
    ("discovery.k8s.io", "EndpointSlice"): (
        groups.create_endpoint_slice,
        groups.update_endpoint_slice,
    ),
    ("storage.k8s.io", "StorageClass"): (groups.create_storage_class, groups.update_storage_class),
    ("scheduling.k8s.io", "PriorityClass"): (
        groups.create_priority_class,
        groups.update_priority_class,
    ),
}


def _hpa(resource: Resource) -> tuple[Create, Update]:
    v = resource.version
    return (lambda o: groups.create_hpa(o, v)), (lambda n, o: groups.update_hpa(n, o, v))


def _rules(resource: Resource) -> tuple[Create, Update] | None:
    if resource.group == "autoscaling" and resource.kind == "HorizontalPodAutoscaler":
        return _hpa(resource)
    return _RULES.get((resource.group, resource.kind))


_INDEX = re.compile(r"\[[^\]]*\]")


def _merge(rule_errs: Errs, schema_errs: Errs) -> Errs:
    """Rule errors, then schema-required errors for paths the rules did not mention."""
    seen = {e.field for e in rule_errs} | {_INDEX.sub("", e.field) for e in rule_errs}
    extra = [e for e in schema_errs if e.field not in seen and _INDEX.sub("", e.field) not in seen]
    return rule_errs + extra


#: create rules that check ObjectMeta themselves (the same checks, with a DNS name
#: function, stricter than a path segment): the generic ObjectMeta check upstream's
#: BeforeCreate runs after a clean rule can find nothing more, so it is skipped (a
#: second walk of the metadata on every pod create)
_CHECKS_META: frozenset[Create] = frozenset({core.create_pod})


def validate_create(resource: Resource, obj: JSON) -> list[FieldError]:
    """Errors that make ``obj`` (defaulted, about to be created) invalid; [] when valid."""
    rules = _rules(resource)
    errs = rules[0](obj) if rules is not None else groups.generic_meta(obj, resource.namespaced)
    errs = _merge(errs, schema_required(resource, obj))
    if not errs and rules is not None and rules[0] not in _CHECKS_META:
        errs = groups.generic_meta(obj, resource.namespaced)
    return errs


def validate_update(resource: Resource, new: JSON, old: JSON) -> list[FieldError]:
    """Errors that make replacing ``old`` by ``new`` (defaulted) invalid; [] when valid."""
    rules = _rules(resource)
    if rules is not None:
        errs = rules[1](new, old)
    else:
        errs = validate_object_meta_update(
            d(new.get("metadata")), d(old.get("metadata")), core=False
        )
    return _merge(errs, schema_required(resource, new))
