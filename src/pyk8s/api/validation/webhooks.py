"""Validation and defaulting of MutatingWebhookConfiguration and
ValidatingWebhookConfiguration (admissionregistration.k8s.io/v1), as upstream v1.32's
``pkg/apis/admissionregistration/validation`` and ``v1/defaults.go``.

Why this exists: a webhook configuration the API server accepts is called on every
request it matches, so a broken one (no ``sideEffects``, an ``http`` URL, a CEL
``matchCondition`` that does not compile) must be refused at write time with upstream's
field paths and messages, and a valid one must read back with upstream's defaults
(``failurePolicy: Fail``, ``matchPolicy: Equivalent``, selectors ``{}``,
``timeoutSeconds: 10``, ``reinvocationPolicy: Never``, rule ``scope: "*"``, service port
443).

An update is validated as upstream does: rules that an older API server accepted and
the stored object already breaks (``sideEffects`` Unknown/Some, duplicate webhook names,
no recognized AdmissionReview version, invalid selector label values, match conditions
that compiled under older CEL) are tolerated when the stored object broke them too.
"""

from __future__ import annotations

from typing import Any

from pyk8s.api import errors
from pyk8s.api.cel import CELError, compile_expression
from pyk8s.api.gofmt import GoStringSlice
from pyk8s.api.validation import names
from pyk8s.api.validation._util import JSON, Errs, child, d, idx, lst, s
from pyk8s.api.validation.admissionrules import (
    FAILURE_POLICIES,
    MATCH_CONDITION_VARIABLES,
    MATCH_POLICIES,
    validate_match_conditions,
    validate_rule_with_operations,
)
from pyk8s.api.validation.apiextensions import validate_webhook_service, validate_webhook_url
from pyk8s.api.validation.meta import (
    validate_label_selector,
    validate_object_meta,
    validate_object_meta_update,
)

__all__ = [
    "default_webhook_configuration",
    "validate_webhook_configuration",
    "validate_webhook_configuration_update",
]

_ACCEPTED_REVIEW_VERSIONS = ("v1", "v1beta1")
_SIDE_EFFECTS = ("None", "NoneOnDryRun", "Some", "Unknown")
_NO_SIDE_EFFECTS = ("None", "NoneOnDryRun")
_REINVOCATION_POLICIES = ("IfNeeded", "Never")


# --------------------------------------------------------------------------- defaults


def default_webhook_configuration(obj: JSON, *, mutating: bool) -> None:
    """Upstream's ``SetDefaults_{Mutating,Validating}Webhook`` and friends, in place."""
    for hook in lst(obj.get("webhooks")):
        if not isinstance(hook, dict):
            continue
        hook.setdefault("failurePolicy", "Fail")
        hook.setdefault("matchPolicy", "Equivalent")
        if hook.get("namespaceSelector") is None:
            hook["namespaceSelector"] = {}
        if hook.get("objectSelector") is None:
            hook["objectSelector"] = {}
        if hook.get("timeoutSeconds") is None:
            hook["timeoutSeconds"] = 10
        if mutating and hook.get("reinvocationPolicy") is None:
            hook["reinvocationPolicy"] = "Never"
        for rule in lst(hook.get("rules")):
            if isinstance(rule, dict) and rule.get("scope") is None:
                rule["scope"] = "*"
        service = d(hook.get("clientConfig")).get("service")
        if isinstance(service, dict) and service.get("port") is None:
            service["port"] = 443


# --------------------------------------------------------------------------- rules


def _validate_review_versions(versions: list[Any], require_recognized: bool, path: str) -> Errs:
    if not versions:
        return [
            errors.required(path, "must specify one of " + ", ".join(_ACCEPTED_REVIEW_VERSIONS))
        ]
    errs: Errs = []
    seen: set[str] = set()
    accepted = False
    for n, raw in enumerate(versions):
        v = s(raw)
        if v in seen:
            errs.append(errors.invalid(idx(path, n), v, "duplicate version"))
            continue
        seen.add(v)
        errs += [errors.invalid(idx(path, n), v, m) for m in names.is_dns1035_label(v)]
        accepted = accepted or v in _ACCEPTED_REVIEW_VERSIONS
    if require_recognized and not accepted:
        errs.append(
            errors.invalid(
                path,
                GoStringSlice(s(v) for v in versions),
                "must include at least one of " + ", ".join(_ACCEPTED_REVIEW_VERSIONS),
            )
        )
    return errs


def _fully_qualified_name(name: str, path: str) -> Errs:
    """Upstream's ``IsFullyQualifiedName``."""
    if not name:
        return [errors.required(path)]
    problems = names.is_dns1123_subdomain(name)
    if problems:
        return [errors.invalid(path, name, ",".join(problems))]
    if len(name.split(".")) < 3:
        return [
            errors.invalid(
                path, name, "should be a domain with at least three segments separated by dots"
            )
        ]
    return []


def _validate_match_conditions(conditions: list[Any], preexisting: set[str], path: str) -> Errs:
    """matchConditions, compiling each expression the stored object did not have."""

    def compiles(expression: str, expr_path: str) -> Errs:
        if expression in preexisting:
            return []
        try:
            compile_expression(expression, variables=MATCH_CONDITION_VARIABLES)
        except CELError as e:
            return [errors.invalid(expr_path, expression, e.message)]
        return []

    return validate_match_conditions(conditions, path, compiles)


class _Options:
    """What an update tolerates because the stored object already had it."""

    def __init__(self, old: JSON | None) -> None:
        old_hooks = [d(h) for h in lst((old or {}).get("webhooks"))]
        self.require_no_side_effects = old is None or all(
            h.get("sideEffects") in _NO_SIDE_EFFECTS for h in old_hooks
        )
        self.require_recognized_versions = old is None or all(
            not lst(h.get("admissionReviewVersions"))
            or any(v in _ACCEPTED_REVIEW_VERSIONS for v in lst(h.get("admissionReviewVersions")))
            for h in old_hooks
        )
        old_names = [s(h.get("name")) for h in old_hooks]
        self.require_unique_names = old is None or len(set(old_names)) == len(old_names)
        self.allow_invalid_label_values = old is not None and any(
            validate_label_selector(h[k], "")
            for h in old_hooks
            for k in ("namespaceSelector", "objectSelector")
            if h.get(k) is not None
        )
        self.preexisting_expressions = {
            s(d(c).get("expression")).strip()
            for h in old_hooks
            for c in lst(h.get("matchConditions"))
        }


def _validate_hook(hook: JSON, mutating: bool, opts: _Options, path: str) -> Errs:
    errs = _fully_qualified_name(s(hook.get("name")), child(path, "name"))
    for n, rule in enumerate(lst(hook.get("rules"))):
        errs += validate_rule_with_operations(d(rule), idx(child(path, "rules"), n))
    failure = hook.get("failurePolicy")
    if failure is not None and failure not in FAILURE_POLICIES:
        errs.append(errors.not_supported(child(path, "failurePolicy"), failure, FAILURE_POLICIES))
    match_policy = hook.get("matchPolicy")
    if match_policy is not None and match_policy not in MATCH_POLICIES:
        errs.append(errors.not_supported(child(path, "matchPolicy"), match_policy, MATCH_POLICIES))
    allowed = _NO_SIDE_EFFECTS if opts.require_no_side_effects else _SIDE_EFFECTS
    side_effects = hook.get("sideEffects")
    if side_effects is None:
        errs.append(
            errors.required(
                child(path, "sideEffects"), "must specify one of " + ", ".join(sorted(allowed))
            )
        )
    elif side_effects not in allowed:
        errs.append(errors.not_supported(child(path, "sideEffects"), side_effects, sorted(allowed)))
    timeout = hook.get("timeoutSeconds")
    if isinstance(timeout, int) and not 1 <= timeout <= 30:
        errs.append(
            errors.invalid(
                child(path, "timeoutSeconds"),
                timeout,
                "the timeout value must be between 1 and 30 seconds",
            )
        )
    for key in ("namespaceSelector", "objectSelector"):
        if hook.get(key) is not None:
            errs += validate_label_selector(
                hook[key], child(path, key), opts.allow_invalid_label_values
            )
    if mutating:
        policy = hook.get("reinvocationPolicy")
        if policy is not None and policy not in _REINVOCATION_POLICIES:
            errs.append(
                errors.not_supported(
                    child(path, "reinvocationPolicy"), policy, _REINVOCATION_POLICIES
                )
            )
    cc = d(hook.get("clientConfig"))
    ccpath = child(path, "clientConfig")
    url, service = cc.get("url"), cc.get("service")
    if (url is None) == (service is None):
        errs.append(errors.required(ccpath, "exactly one of url or service is required"))
    elif url is not None:
        errs += validate_webhook_url(child(ccpath, "url"), s(url), force_https=True)
    else:
        svc = d(service)
        port = svc.get("port")
        errs += validate_webhook_service(
            child(ccpath, "service"),
            namespace=s(svc.get("namespace")),
            name=s(svc.get("name")),
            url_path=svc.get("path"),
            port=port if isinstance(port, int) else 443,
        )
    errs += _validate_match_conditions(
        lst(hook.get("matchConditions")),
        opts.preexisting_expressions,
        child(path, "matchConditions"),
    )
    return errs


def _validate(obj: JSON, mutating: bool, opts: _Options) -> Errs:
    errs = validate_object_meta(
        d(obj.get("metadata")), False, names.name_is_dns_subdomain, core=False
    )
    seen: set[str] = set()
    for n, raw in enumerate(lst(obj.get("webhooks"))):
        hook = d(raw)
        path = idx("webhooks", n)
        errs += _validate_hook(hook, mutating, opts, path)
        errs += _validate_review_versions(
            lst(hook.get("admissionReviewVersions")),
            opts.require_recognized_versions,
            child(path, "admissionReviewVersions"),
        )
        name = s(hook.get("name"))
        if opts.require_unique_names and name:
            if name in seen:
                errs.append(errors.duplicate(child(path, "name"), name))
            seen.add(name)
    return errs


def validate_webhook_configuration(obj: JSON, *, mutating: bool) -> Errs:
    """Errors of a new Mutating/ValidatingWebhookConfiguration (defaulted)."""
    return _validate(obj, mutating, _Options(None))


def validate_webhook_configuration_update(new: JSON, old: JSON, *, mutating: bool) -> Errs:
    """Errors of replacing ``old`` by ``new``: metadata rules, then the object's."""
    errs = validate_object_meta_update(d(new.get("metadata")), d(old.get("metadata")), core=False)
    return errs + _validate(new, mutating, _Options(old))
