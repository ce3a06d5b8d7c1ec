"""ValidatingAdmissionPolicy: CEL rules users bind to requests, run in the API server.

Why this exists: clusters state rules ("no Deployment over 5 replicas", "images from our
registry") as ValidatingAdmissionPolicy objects, bind them to requests with
ValidatingAdmissionPolicyBindings, and expect the API server to refuse, warn about or
audit the requests that break them, without running a webhook. This plugin is upstream's
``ValidatingAdmissionPolicy`` admission plugin (k8s.io/apiserver/pkg/admission/plugin/
policy/validating), validating phase only.

For each policy with at least one binding, in the order the watch cache lists them:

1. the policy's ``matchConstraints`` (namespace/object selectors, excluded and matched
   resource rules, ``matchPolicy``) must cover the request, and then each binding's
   ``matchResources`` (absent: everything the policy covers);
2. params: with a ``paramKind`` and a binding ``paramRef``, the objects named (``name``) or
   selected (``selector``) in ``paramRef.namespace``, else the request's namespace; none
   found is allowed (no evaluation) or, with ``parameterNotFoundAction: Deny``, a
   configuration error; each param is evaluated separately;
3. ``matchConditions`` (any false: skip), then every validation; ``variables`` that the
   expressions read are evaluated once per param, before them;
4. a failed validation (false, or an error under ``failurePolicy: Fail``) goes through the
   binding's ``validationActions``: Deny refuses the request with the first failure
   (upstream's text, the validation's ``reason`` and its HTTP code), Warn adds a warning
   header, Audit an audit annotation; ``auditAnnotations`` are published per policy.

Configuration errors (params not found with Deny, an unknown paramKind) deny under
``failurePolicy: Fail`` whatever the actions say, as upstream. Compiled programs are cached
per policy uid and generation; policies, bindings, params and namespaces are read from the
watch cache. Requests on the admission configuration objects themselves are exempt.

The ``authorizer`` variable checks with the API server's own authorizer: expressions that
use it are evaluated on a worker thread whose authz calls wait for the event loop.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

import orjson

from pyk8s.api import cel, errors
from pyk8s.api.admissionpolicy import FAIL, IGNORE, CompiledPolicy, Expression, compile_policy
from pyk8s.api.admissionpolicy import namespace_value as namespace_cel_value
from pyk8s.api.cel import Activation, CELError
from pyk8s.api.conversion import convert
from pyk8s.api.registry import Resource
from pyk8s.api.selectors import SelectorError, label_selector_from_dict
from pyk8s.apiserver.admission import (
    CONNECT,
    CREATE,
    DELETE,
    UPDATE,
    Attributes,
    Context,
    Plugin,
)
from pyk8s.apiserver.admission.celauthz import evaluate_with_authorizer
from pyk8s.apiserver.admission.matching import (
    Selectors,
    is_exempt,
    match_rules,
    parse_rules,
)
from pyk8s.apiserver.admission.request import admission_request

log = logging.getLogger(__name__)

JSON = dict[str, Any]

GROUP: Final = "admissionregistration.k8s.io"
POLICIES: Final = "validatingadmissionpolicies"
BINDINGS: Final = "validatingadmissionpolicybindings"
#: the audit annotation of a validation failure under the Audit action
VALIDATION_FAILURE_KEY: Final = "validation.policy.admission.k8s.io/validation_failure"
#: upstream's maxAuditAnnotationValueLength
MAX_AUDIT_VALUE: Final = 10 * 1024
#: upstream's celconfig.MaxEvaluatedMessageExpressionSizeBytes
MAX_MESSAGE_BYTES: Final = 5 * 1024
_CODES: Final = {"Forbidden": 403, "Unauthorized": 401, "RequestEntityTooLarge": 413}


@dataclass(frozen=True, slots=True)
class Denial:
    """A failure that refuses the request (the first one is reported)."""

    policy: str
    binding: str | None
    message: str
    reason: str = ""


@dataclass(slots=True)
class _Policy:
    """One policy, compiled and parsed once per generation."""

    name: str
    spec: JSON
    compiled: CompiledPolicy
    rules: tuple[Any, ...]
    exclude: tuple[Any, ...]
    selectors: Selectors
    match_policy: str
    failure_policy: str
    #: the variables some expression reads (evaluated before the expressions)
    needed_variables: frozenset[str]
    uses_authorizer: bool


def _compile(policy: JSON) -> _Policy:
    spec = policy.get("spec") or {}
    constraints = spec.get("matchConstraints") or {}
    compiled = compile_policy(spec)
    exprs: list[Expression] = [e for _, e in compiled.match_conditions]
    for expr, message, _, _ in compiled.validations:
        exprs.append(expr)
        if message is not None:
            exprs.append(message)
    exprs += [e for _, e in compiled.audit_annotations]
    needed: set[str] = set()
    for e in exprs:
        needed |= e.reads
    # a variable read by a needed variable is needed too
    for name, v in reversed(compiled.variables):
        if name in needed:
            needed |= v.reads
    everything = exprs + [v for _, v in compiled.variables]
    return _Policy(
        name=policy["metadata"]["name"],
        spec=spec,
        compiled=compiled,
        rules=parse_rules(constraints.get("resourceRules")),
        exclude=parse_rules(constraints.get("excludeResourceRules")),
        selectors=Selectors.from_dict(constraints),
        match_policy=str(constraints.get("matchPolicy") or "Equivalent"),
        failure_policy=str(spec.get("failurePolicy") or FAIL),
        needed_variables=frozenset(needed),
        uses_authorizer=any(
            e.program is not None and "authorizer" in e.program.uses for e in everything
        ),
    )


def _trim_message(value: Any) -> str:
    """A messageExpression's value as upstream keeps it (trimmed; not too long, one line)."""
    if not isinstance(value, str):
        return ""
    message = value.strip()
    if len(message.encode()) > MAX_MESSAGE_BYTES or "\n" in message:
        return ""
    return message


class _Evaluation:
    """The CEL values of one (request, matched resource, param): the activation and the
    policy variables, evaluated once."""

    def __init__(self, base: Mapping[str, Any], policy: _Policy) -> None:
        values: dict[str, Any] = {}
        self.variable_errors: dict[str, str] = {}
        for name, expr in policy.compiled.variables:
            if name not in policy.needed_variables:
                continue
            if expr.program is None:
                self.variable_errors[name] = f"compilation error: {expr.error}"
                continue
            bad = next((v for v in expr.reads if v in self.variable_errors), None)
            if bad is not None:
                self.variable_errors[name] = self.variable_errors[bad]
                continue
            try:
                values[name] = expr.program.evaluate({**base, "variables": values})
            except CELError as e:
                self.variable_errors[name] = (
                    f"expression '{expr.source}' resulted in error: {e.message}"
                )
        self.activation = Activation({**base, "variables": values})

    def run(self, expr: Expression) -> tuple[Any, str | None]:
        """(value, None) or (None, upstream's error text)."""
        if expr.program is None:
            return None, f"compilation error: {expr.error}"
        for v in expr.reads:
            if v in self.variable_errors:
                return None, self.variable_errors[v]
        try:
            return expr.program.evaluate(self.activation), None
        except CELError as e:
            return None, f"expression '{expr.source}' resulted in error: {e.message}"


@dataclass(slots=True)
class _Outcome:
    """One request's denials, and the values its evaluations share: the namespace, the
    request per matched resource, and activations (policies without variables that see
    the same resource and param share one, so the object is converted for CEL once)."""

    denials: list[Denial] = field(default_factory=list)
    namespace: list[JSON | None] = field(default_factory=list)
    requests: dict[int, JSON] = field(default_factory=dict)
    evaluations: dict[tuple[int, int, bool], _Evaluation] = field(default_factory=dict)


class ValidatingAdmissionPolicy(Plugin):
    name: ClassVar[str] = "ValidatingAdmissionPolicy"
    operations: ClassVar[frozenset[str]] = frozenset({CREATE, UPDATE, DELETE, CONNECT})

    def __init__(self, context: Context) -> None:
        self.reader = context.reader
        self.registry = context.registry
        self.authorizer = context.authorizer
        #: policy name -> ((uid, generation), compiled)
        self._compiled: dict[str, tuple[tuple[str, int], _Policy]] = {}

    def handles(self, attrs: Attributes) -> bool:
        return attrs.operation in self.operations and not is_exempt(attrs)

    def _policy(self, obj: JSON) -> _Policy:
        meta = obj["metadata"]
        key = (str(meta.get("uid", "")), int(meta.get("generation") or 0))
        hit = self._compiled.get(meta["name"])
        if hit is not None and hit[0] == key:
            return hit[1]
        compiled = _compile(obj)
        self._compiled[meta["name"]] = (key, compiled)
        return compiled

    async def validate(self, attrs: Attributes) -> None:
        bindings = self.reader.list(GROUP, BINDINGS)
        if not bindings:
            return
        by_policy: dict[str, list[JSON]] = {}
        for b in bindings:
            by_policy.setdefault(str((b.get("spec") or {}).get("policyName") or ""), []).append(b)
        outcome = _Outcome()
        policies = self.reader.list(GROUP, POLICIES)
        for obj in policies:
            policy_bindings = by_policy.get(obj["metadata"]["name"])
            if policy_bindings:
                await self._dispatch(attrs, self._policy(obj), policy_bindings, outcome)
        if len(self._compiled) > len(policies):  # forget deleted policies
            live = {p["metadata"]["name"] for p in policies}
            for name in self._compiled.keys() - live:
                del self._compiled[name]
        if outcome.denials:
            raise _forbidden(attrs, outcome.denials[0])

    async def _matches(
        self, attrs: Attributes, constraints: Mapping[str, Any], policy: _Policy | None
    ) -> Resource | None:
        """The resource the request is seen as, if ``constraints`` cover it."""
        if policy is not None:
            selectors, rules, exclude, mp = (
                policy.selectors,
                policy.rules,
                policy.exclude,
                policy.match_policy,
            )
        else:
            selectors = Selectors.from_dict(constraints)
            rules = parse_rules(constraints.get("resourceRules"))
            exclude = parse_rules(constraints.get("excludeResourceRules"))
            mp = str(constraints.get("matchPolicy") or "Equivalent")
        if not await selectors.match(attrs, self.reader):
            return None
        if not rules:
            if any(rule.matches(attrs) for rule in exclude):
                return None
            return attrs.resource
        match = match_rules(rules, attrs, self.registry, mp, exclude)
        return None if match is None else match.resource

    async def _dispatch(
        self,
        attrs: Attributes,
        policy: _Policy,
        bindings: list[JSON],
        outcome: _Outcome,
    ) -> None:
        matched = await self._matches(attrs, {}, policy)
        if matched is None:
            return
        annotations: dict[str, list[str]] = {}
        for binding in bindings:
            spec = binding.get("spec") or {}
            binding_name = binding["metadata"]["name"]
            resources = spec.get("matchResources")
            if isinstance(resources, dict) and await self._matches(attrs, resources, None) is None:
                continue
            try:
                params = self._params(policy, spec, attrs.namespace)
            except _ConfigError as e:
                self._config_error(policy, binding_name, str(e), outcome)
                continue
            if not params:
                continue
            request = outcome.requests.get(id(matched))
            if request is None:
                request = outcome.requests[id(matched)] = self._request(attrs, matched)
            if not outcome.namespace:
                outcome.namespace.append(await self._namespace(attrs))
            actions = [str(a) for a in spec.get("validationActions") or []]
            for param in params:
                ev = self._evaluation(policy, matched, param, request, outcome)
                if policy.uses_authorizer:
                    await evaluate_with_authorizer(
                        self.authorizer,
                        functools.partial(
                            self._evaluate,
                            attrs,
                            policy,
                            binding,
                            actions,
                            ev,
                            annotations,
                            outcome,
                        ),
                    )
                else:
                    self._evaluate(attrs, policy, binding, actions, ev, annotations, outcome)
        for key, values in annotations.items():
            attrs.audit_annotations[f"{policy.name}/{key}"] = ", ".join(values)

    @staticmethod
    def _evaluation(
        policy: _Policy, matched: Resource, param: JSON | None, request: JSON, outcome: _Outcome
    ) -> _Evaluation:
        shared = not policy.needed_variables
        key = (id(matched), id(param), policy.uses_authorizer)
        if shared and key in outcome.evaluations:
            return outcome.evaluations[key]
        base = {
            "object": request["object"],
            "oldObject": request["oldObject"],
            "request": request["request"],
            "namespaceObject": outcome.namespace[0],
            "params": param,
        }
        if policy.uses_authorizer:
            base["authorizer"] = cel.authorizer_value(request["request"]["userInfo"])
        ev = _Evaluation(base, policy)
        if shared:
            outcome.evaluations[key] = ev
        return ev

    def _request(self, attrs: Attributes, matched: Resource) -> JSON:
        obj, old = attrs.obj, attrs.old
        if matched is not attrs.resource:
            obj = _converted(obj, matched)
            old = _converted(old, matched)
        full = admission_request(attrs, matched)
        request = {k: v for k, v in full.items() if k not in ("object", "oldObject")}
        return {"object": obj, "oldObject": old, "request": request}

    async def _namespace(self, attrs: Attributes) -> JSON | None:
        r = attrs.resource
        if not attrs.namespace or (r.group, r.kind) == ("", "Namespace"):
            return None
        return namespace_cel_value(await self.reader.get("", "namespaces", "", attrs.namespace))

    def _params(self, policy: _Policy, spec: JSON, namespace: str) -> list[JSON | None]:
        """The params of one binding (upstream's CollectParams); [None] without paramKind or
        paramRef."""
        kind = policy.spec.get("paramKind")
        ref = spec.get("paramRef")
        if not isinstance(kind, dict) or not isinstance(ref, dict):
            return [None]
        r = None
        if self.registry is not None:
            r = self.registry.for_api_version(
                str(kind.get("apiVersion", "")), str(kind.get("kind", ""))
            )
        if r is None:
            raise _ConfigError(
                f"failed to find resource referenced by paramKind: "
                f"'{kind.get('apiVersion', '')}, Kind={kind.get('kind', '')}'"
            )
        ref_namespace = str(ref.get("namespace") or "")
        if r.namespaced:
            ns = ref_namespace or namespace
            if not ns:
                raise _ConfigError(
                    "cannot use namespaced paramRef in policy binding that matches "
                    "cluster-scoped resources"
                )
        elif ref_namespace:
            raise _ConfigError(
                "paramRef.namespace must not be provided for a cluster-scoped `paramKind`"
            )
        else:
            ns = ""
        found: list[JSON]
        if ref.get("name"):
            obj = self.reader.cached(r.group, r.plural, ns, str(ref["name"]))
            found = [] if obj is None else [obj]
        else:
            try:
                selector = label_selector_from_dict(ref.get("selector") or {})
            except SelectorError as e:
                raise _ConfigError(str(e)) from None
            found = [
                o
                for o in self.reader.list(r.group, r.plural, ns or None)
                if selector.matches((o.get("metadata") or {}).get("labels") or {})
            ]
        if not found and ref.get("parameterNotFoundAction") == "Deny":
            raise _ConfigError(
                "no params found for policy binding with `Deny` parameterNotFoundAction"
            )
        return [_with_type_meta(o, kind) for o in found]

    def _config_error(
        self, policy: _Policy, binding: str | None, message: str, outcome: _Outcome
    ) -> None:
        if policy.failure_policy == IGNORE:
            return
        if policy.failure_policy == FAIL:
            what = "binding" if binding is not None else "policy"
            text = f"failed to configure {what}: {message}"
        else:
            text = f"unrecognized failure policy: '{policy.failure_policy}'"
        outcome.denials.append(Denial(policy.name, binding, text))

    def _evaluate(
        self,
        attrs: Attributes,
        policy: _Policy,
        binding: JSON,
        actions: list[str],
        ev: _Evaluation,
        annotations: dict[str, list[str]],
        outcome: _Outcome,
    ) -> None:
        """One param's evaluation: match conditions, validations, audit annotations."""
        binding_name = binding["metadata"]["name"]
        fail = policy.failure_policy != IGNORE
        failures: list[tuple[int, str, str]] = []  # (index, message, reason)
        if policy.compiled.match_conditions:
            errs = []
            for _, expr in policy.compiled.match_conditions:
                value, err = ev.run(expr)
                if err is not None:
                    errs.append(err)
                elif value is False:
                    return
            if errs:
                if fail:  # utilerrors.NewAggregate's text
                    text = errs[0] if len(errs) == 1 else f"[{', '.join(errs)}]"
                    failures.append((0, text, ""))
                self._act(attrs, policy, binding, actions, failures, outcome)
                return
        for i, (expr, message_expr, message, reason) in enumerate(policy.compiled.validations):
            value, err = ev.run(expr)
            if err is not None:
                if fail:
                    failures.append((i, err, ""))
                continue
            if value is True:
                continue
            text = ""
            if message_expr is not None:
                got, _ = ev.run(message_expr)
                text = _trim_message(got)
            if not text:
                text = message.strip()
            if not text:
                text = f"failed expression: {expr.source.strip()}"
            failures.append((i, text, reason or "Invalid"))
        self._act(attrs, policy, binding, actions, failures, outcome)
        for key, expr in policy.compiled.audit_annotations:
            value, err = ev.run(expr)
            if err is None and value is not None and not isinstance(value, str):
                err = (
                    f"valueExpression '{expr.source}' resulted in unsupported return type: "
                    f"{_cel_type(value)}. Return type must be either string or null."
                )
            if err is not None:
                if fail:
                    outcome.denials.append(Denial(policy.name, binding_name, err))
                continue
            text = (value or "").strip()
            if text:
                text = text[:MAX_AUDIT_VALUE]
                values = annotations.setdefault(key, [])
                if text not in values:
                    values.append(text)

    def _act(
        self,
        attrs: Attributes,
        policy: _Policy,
        binding: JSON,
        actions: list[str],
        failures: list[tuple[int, str, str]],
        outcome: _Outcome,
    ) -> None:
        binding_name = binding["metadata"]["name"]
        for index, message, reason in failures:
            for action in actions:
                if action == "Deny":
                    outcome.denials.append(Denial(policy.name, binding_name, message, reason))
                elif action == "Warn":
                    attrs.warnings.append(
                        f"Validation failed for ValidatingAdmissionPolicy '{policy.name}' "
                        f"with binding '{binding_name}': {message}"
                    )
                elif action == "Audit":
                    value = [
                        {
                            "message": message,
                            "policy": policy.name,
                            "binding": binding_name,
                            "expressionIndex": index,
                            "validationActions": actions,
                        }
                    ]
                    attrs.audit_annotations.setdefault(
                        VALIDATION_FAILURE_KEY, orjson.dumps(value).decode()
                    )


class _ConfigError(Exception):
    pass


def _converted(obj: JSON | None, r: Resource) -> JSON | None:
    if obj is None:
        return None
    try:
        return convert(obj, r.api_version)
    except Exception:
        return obj


def _with_type_meta(obj: JSON, kind: Mapping[str, Any]) -> JSON:
    if obj.get("apiVersion") and obj.get("kind"):
        return obj
    return {**obj, "apiVersion": kind.get("apiVersion"), "kind": kind.get("kind")}


def _cel_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__


def _forbidden(attrs: Attributes, denial: Denial) -> errors.StatusError:
    """upstream's admission.NewForbidden with the policy's reason and its code."""
    if denial.binding is not None:
        message = (
            f"ValidatingAdmissionPolicy '{denial.policy}' with binding '{denial.binding}' "
            f"denied request: {denial.message}"
        )
    else:
        message = f"ValidatingAdmissionPolicy '{denial.policy}' denied request: {denial.message}"
    name = attrs.name
    if not name:
        meta = (attrs.obj or {}).get("metadata") or {}
        name = meta.get("name") or meta.get("generateName") or "Unknown"
    r = attrs.resource
    qualified = f"{r.plural}.{r.group}" if r.group else r.plural
    reason = denial.reason or "Invalid"
    details: JSON = {"name": name, "kind": r.plural}
    if r.group:
        details["group"] = r.group
    details["causes"] = [{"message": message}]
    return errors.StatusError(
        _CODES.get(reason, 422), reason, f'{qualified} "{name}" is forbidden: {message}', details
    )
