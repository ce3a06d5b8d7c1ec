"""Admission webhooks: MutatingAdmissionWebhook and ValidatingAdmissionWebhook.

Why this exists: policy engines, cert-manager, service meshes and most operators plug
their own admission logic into the API server by registering webhooks in
MutatingWebhookConfiguration and ValidatingWebhookConfiguration objects. These two
plugins call those webhooks on the requests they match, as upstream's
``k8s.io/apiserver/pkg/admission/plugin/webhook`` (v1.32) does:

* configurations are read from the watch cache, sorted by name; their webhooks run in
  the order listed. Each webhook is matched by its rules (with ``matchPolicy:
  Equivalent`` through another version of the same objects), ``namespaceSelector``,
  ``objectSelector`` and CEL ``matchConditions`` (:mod:`.matching`); requests on the
  admission configuration objects themselves are never sent, so a broken webhook can
  always be removed;
* the webhook gets an ``admission.k8s.io/v1`` AdmissionReview (``v1beta1`` when that is
  all it accepts; :mod:`.request`) over HTTPS (:mod:`pyk8s.apiserver.webhook`), with its
  ``timeoutSeconds``;
* mutating webhooks run one after another; a ``JSONPatch`` answer is applied to the
  object, which is then decoded again as the API server decodes a request (unknown fields
  dropped, defaults applied). A webhook with ``reinvocationPolicy: IfNeeded`` is called
  once more when a later webhook changed the object: the chain then runs every mutating
  plugin a second time (:meth:`pyk8s.apiserver.admission.Chain.admit`), as upstream's
  reinvoker does;
* validating webhooks run concurrently; the first refusal in webhook order is answered;
* a webhook that cannot be called, times out or answers unusably follows its
  ``failurePolicy``: ``Ignore`` goes on, ``Fail`` answers 500 ``Internal error occurred:
  failed calling webhook "<name>": …``; a refusal answers the webhook's status
  (``admission webhook "<name>" denied the request: <message>``, at least 400);
* a dry-run request refuses webhooks whose ``sideEffects`` is not ``None`` or
  ``NoneOnDryRun`` (400, ``admission webhook "<name>" does not support dry run``);
* ``warnings`` become the response's ``Warning`` headers, ``auditAnnotations`` are kept on
  the request's attributes as ``<webhook name>/<key>``, next to upstream's own
  annotations: ``mutation.webhook.admission.k8s.io/round_<r>_index_<i>`` for every
  mutating call, ``failed-open.{mutating,validating}.webhook.admission.k8s.io/…`` for a
  failure ignored by ``failurePolicy: Ignore`` (the request-level ``patch.webhook…``
  annotation is not kept);
* ``apiserver_admission_webhook_admission_duration_seconds``,
  ``apiserver_admission_webhook_request_total``,
  ``apiserver_admission_webhook_rejection_count`` and
  ``apiserver_admission_webhook_fail_open_count`` are kept with upstream's labels.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

import orjson
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from pyk8s.api import cel, errors
from pyk8s.api.conversion import convert
from pyk8s.api.defaults import apply_defaults
from pyk8s.api.gofmt import go_quote
from pyk8s.api.jsoncopy import copy_json
from pyk8s.api.patch import PatchError, apply_json_patch
from pyk8s.api.registry import Resource
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
    ConditionResult,
    MatchConditions,
    Rule,
    Selectors,
    activation,
    is_exempt,
    match_rules,
    parse_rules,
)
from pyk8s.apiserver.admission.request import admission_request
from pyk8s.apiserver.serviceresolver import ServiceResolver
from pyk8s.apiserver.webhook import WebhookClient, WebhookError, WebhookStatusError

__all__ = ["MutatingAdmissionWebhook", "ValidatingAdmissionWebhook", "WebhookMetrics"]

log = logging.getLogger(__name__)

JSON = dict[str, Any]

GROUP: Final = "admissionregistration.k8s.io"
REVIEW_GROUP: Final = "admission.k8s.io"
#: the AdmissionReview versions this server speaks, in the order it prefers them
REVIEW_VERSIONS: Final = ("v1", "v1beta1")
DEFAULT_TIMEOUT_SECONDS: Final = 10
#: upstream's audit annotation keys (suffixed ``/round_<r>_index_<i>``)
MUTATION_ANNOTATION: Final = "mutation.webhook.admission.k8s.io"
MUTATING_FAILED_OPEN_ANNOTATION: Final = "failed-open.mutating.webhook.admission.k8s.io"
VALIDATING_FAILED_OPEN_ANNOTATION: Final = "failed-open.validating.webhook.admission.k8s.io"


# --------------------------------------------------------------------------- metrics


class _Counter(Collector):
    """A counter exposed under exactly its name (prometheus_client would add ``_total``,
    and upstream's ``…_rejection_count`` / ``…_fail_open_count`` have none), its labels
    in name order as Go's client writes them."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name = name
        self.documentation = documentation
        self.values: dict[tuple[tuple[str, str], ...], float] = {}

    def inc(self, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        self.values[key] = self.values.get(key, 0.0) + 1

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self.name, self.documentation, "counter")
        for labels, count in sorted(self.values.items()):
            metric.add_sample(self.name, dict(labels), count)
        yield metric


#: upstream's WebhookRejectionErrorType values
CALLING_WEBHOOK_ERROR: Final = "calling_webhook_error"
APISERVER_INTERNAL_ERROR: Final = "apiserver_internal_error"
NO_ERROR: Final = "no_error"


class WebhookMetrics:
    """Upstream's admission webhook metrics, registered in the server's registry."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.duration = Histogram(
            "apiserver_admission_webhook_admission_duration_seconds",
            "Admission webhook latency histogram in seconds, identified by name and broken "
            "out for each operation and API resource and type (validate or admit).",
            ["name", "operation", "rejected", "type"],
            buckets=(0.005, 0.025, 0.1, 0.5, 1.0, 2.5, 10, 25),
            registry=registry,
        )
        self.requests = _Counter(
            "apiserver_admission_webhook_request_total",
            "Admission webhook request total, identified by name and broken out for each "
            "admission type (validating or mutating) and operation. Additional labels "
            "specify whether the request was rejected or not and an HTTP status code. Codes "
            "greater than 600 are truncated to 600, to keep the metrics cardinality bounded.",
        )
        self.rejections = _Counter(
            "apiserver_admission_webhook_rejection_count",
            "Admission webhook rejection count, identified by name and broken out for each "
            "admission type (validating or admit) and operation. Additional labels specify "
            "an error type (calling_webhook_error or apiserver_internal_error if an error "
            "occurred; no_error otherwise) and optionally a non-zero rejection code if the "
            "webhook rejects the request with an HTTP status code (honored by the apiserver "
            "when the code is greater or equal to 400). Codes greater than 600 are truncated "
            "to 600, to keep the metrics cardinality bounded.",
        )
        self.fail_open = _Counter(
            "apiserver_admission_webhook_fail_open_count",
            "Admission webhook fail open count, identified by name and broken out for each "
            "admission type (validating or mutating).",
        )
        if registry is not None:
            for counter in (self.requests, self.rejections, self.fail_open):
                registry.register(counter)

    def observe(
        self, name: str, step: str, operation: str, elapsed: float, rejected: bool, code: int
    ) -> None:
        flag = "true" if rejected else "false"
        self.duration.labels(name, operation, flag, step).observe(elapsed)
        self.requests.inc(
            name=name, type=step, operation=operation, code=str(min(code, 600)), rejected=flag
        )

    def rejection(self, name: str, step: str, operation: str, error_type: str, code: int) -> None:
        self.rejections.inc(
            name=name,
            type=step,
            operation=operation,
            error_type=error_type,
            rejection_code=str(min(code, 600)),
        )


# --------------------------------------------------------------------------- failures


class _CallingWebhook(Exception):
    """Upstream's ``ErrCallingWebhook``: the webhook could not be used; its
    ``failurePolicy`` decides. ``code`` is the status upstream records for metrics."""

    def __init__(self, webhook_name: str, reason: str, code: int) -> None:
        self.webhook_name = webhook_name
        self.reason = reason
        self.code = code
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f'failed calling webhook "{self.webhook_name}": {self.reason}'


class _Rejected(Exception):
    """Upstream's ``ErrWebhookRejection``: the webhook answered ``allowed: false``."""

    def __init__(self, status: errors.StatusError) -> None:
        self.status = status
        super().__init__(status.message)


def denial(webhook_name: str, result: Any) -> errors.StatusError:
    """Upstream's ``ToStatusErr``: the refusal a webhook's ``result`` Status becomes."""
    result = result if isinstance(result, dict) else {}
    denied_by = f"admission webhook {go_quote(webhook_name)} denied the request"
    code = result.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else 0
    message, reason = str(result.get("message") or ""), str(result.get("reason") or "")
    if message:
        text = f"{denied_by}: {message}"
    elif reason:
        text = f"{denied_by}: {reason}"
    else:
        text = f"{denied_by} without explanation"
    details = result.get("details")
    return errors.StatusError(
        max(code, 400), reason, text, details if isinstance(details, dict) else None
    )


def dry_run_unsupported(webhook_name: str) -> errors.StatusError:
    return errors.bad_request(
        f"admission webhook {go_quote(webhook_name)} does not support dry run"
    )


# --------------------------------------------------------------------------- webhooks


@dataclass(frozen=True, slots=True)
class Hook:
    """One webhook of a configuration, parsed once per configuration revision."""

    #: upstream's accessor uid: ``<configuration>/<webhook name>/<n-th of that name>``
    uid: str
    configuration: str
    name: str
    client_config: JSON
    rules: tuple[Rule, ...]
    selectors: Selectors
    conditions: MatchConditions
    #: some matchCondition asks the ``authorizer`` (evaluated off the event loop)
    conditions_use_authorizer: bool
    match_policy: str
    failure_policy: str
    side_effects: str | None
    timeout: float
    review_versions: tuple[str, ...]
    reinvoke_if_needed: bool

    @classmethod
    def parse(cls, configuration: str, uid: str, spec: Mapping[str, Any]) -> Hook:
        conditions = MatchConditions(spec.get("matchConditions"))
        return cls(
            uid=uid,
            configuration=configuration,
            name=str(spec.get("name") or ""),
            client_config=dict(spec.get("clientConfig") or {}),
            rules=parse_rules(spec.get("rules")),
            selectors=Selectors.from_dict(spec),
            conditions=conditions,
            conditions_use_authorizer=any(
                isinstance(program, cel.Program) and "authorizer" in program.uses
                for _, program in conditions.programs
            ),
            match_policy=str(spec.get("matchPolicy") or "Equivalent"),
            failure_policy=str(spec.get("failurePolicy") or "Fail"),
            side_effects=spec.get("sideEffects"),
            timeout=float(spec.get("timeoutSeconds") or DEFAULT_TIMEOUT_SECONDS),
            review_versions=tuple(str(v) for v in spec.get("admissionReviewVersions") or ()),
            reinvoke_if_needed=spec.get("reinvocationPolicy") == "IfNeeded",
        )

    @property
    def ignores_failures(self) -> bool:
        return self.failure_policy == "Ignore"

    def review_version(self) -> str | None:
        """The first of the webhook's versions this server speaks (upstream's choice)."""
        for v in self.review_versions:
            if v in REVIEW_VERSIONS:
                return v
        return None


class HookSource:
    """The webhooks of every configuration of one kind, from the watch cache, re-parsed
    only when a configuration changes (upstream's configuration manager)."""

    def __init__(self, context: Context, plural: str) -> None:
        self.reader = context.reader
        self.plural = plural
        self._seen: tuple[tuple[str, str], ...] = ()
        self._hooks: tuple[Hook, ...] = ()

    def hooks(self) -> tuple[Hook, ...]:
        configs = self.reader.list(GROUP, self.plural)
        seen = tuple(
            (str(c["metadata"].get("name", "")), str(c["metadata"].get("resourceVersion", "")))
            for c in configs
        )
        if seen != self._seen:
            self._hooks = tuple(self._parse(configs))
            self._seen = seen
        return self._hooks

    @staticmethod
    def _parse(configs: list[JSON]) -> Iterator[Hook]:
        for config in sorted(configs, key=lambda c: str(c["metadata"].get("name", ""))):
            name = str(config["metadata"].get("name", ""))
            counts: dict[str, int] = {}
            for spec in config.get("webhooks") or ():
                hook_name = str(spec.get("name") or "")
                n = counts.get(hook_name, 0)
                counts[hook_name] = n + 1
                yield Hook.parse(name, f"{name}/{hook_name}/{n}", spec)


@dataclass(slots=True)
class _Invocation:
    """A matched webhook and the request as it sees it (another version of the object
    when matched through an equivalent resource)."""

    hook: Hook
    resource: Resource
    attrs: Attributes


@dataclass(slots=True)
class _Reinvocation:
    """Upstream's ``webhookReinvokeContext``, kept on the request's attributes."""

    last_output: JSON | None = None
    previously_invoked: set[str] = field(default_factory=set)
    reinvoke: set[str] = field(default_factory=set)

    def require_reinvoking_previously_invoked(self) -> None:
        self.reinvoke |= self.previously_invoked
        self.previously_invoked = set()


class _Dispatcher(Plugin):
    """What both plugins share: matching, calling one webhook, failure handling."""

    operations: ClassVar[frozenset[str]] = frozenset({CREATE, UPDATE, DELETE, CONNECT})
    plural: ClassVar[str]
    #: the metrics' ``type`` label
    step: ClassVar[str]
    mutating_hooks: ClassVar[bool]

    def __init__(self, context: Context) -> None:
        self.context = context
        self.reader = context.reader
        self.source = HookSource(context, self.plural)
        client = context.webhook_client
        self.client: WebhookClient = (
            client if client is not None else WebhookClient(ServiceResolver(context.reader))
        )
        metrics = context.webhook_metrics
        self.metrics: WebhookMetrics = metrics if metrics is not None else WebhookMetrics(None)

    def handles(self, attrs: Attributes) -> bool:
        return attrs.operation in self.operations and not is_exempt(attrs)

    # ------------------------------------------------------------------ matching

    async def invocation(self, hook: Hook, attrs: Attributes) -> _Invocation | None:
        """Upstream's ``ShouldCallHook``: the request as ``hook`` sees it, or None."""
        match = match_rules(hook.rules, attrs, self.context.registry, hook.match_policy)
        if match is None or not await hook.selectors.match(attrs, self.reader):
            return None
        seen = await self.versioned(attrs, match.resource) if match.converted else attrs
        inv = _Invocation(hook, match.resource, seen)
        if hook.conditions:
            result = await self.conditions(inv)
            if result.error:
                if hook.ignores_failures:
                    return None
                r = attrs.resource
                who = f'{r.group_resource} "{attrs.name}"' if attrs.name else r.group_resource
                raise errors.StatusError(
                    403,
                    "Forbidden",
                    f"{who} is forbidden: {result.error}",
                    {"name": attrs.name, "group": r.group, "kind": r.plural},
                )
            if not result.matched:
                return None
        return inv

    async def conditions(self, inv: _Invocation) -> ConditionResult:
        request = admission_request(inv.attrs, inv.resource)
        conditions = inv.hook.conditions
        if not inv.hook.conditions_use_authorizer:
            return conditions.evaluate(activation(request))
        variables = activation(request, authorizer=cel.authorizer_value(request["userInfo"]))
        return await evaluate_with_authorizer(
            self.context.authorizer, lambda: conditions.evaluate(variables)
        )

    async def versioned(self, attrs: Attributes, resource: Resource) -> Attributes:
        """``attrs`` with the objects converted to ``resource``'s version."""
        attrs.request_uid  # noqa: B018 - made once, shared by every view of the request
        return dataclasses.replace(
            attrs,
            obj=await self.convert(attrs, attrs.obj, resource),
            old=await self.convert(attrs, attrs.old, resource),
        )

    async def convert(self, attrs: Attributes, obj: JSON | None, to: Resource) -> JSON | None:
        if obj is None or attrs.subresource or obj.get("apiVersion") == to.api_version:
            return obj
        if self.context.strategy is None:
            return convert(copy_json(obj), to.api_version)
        strategy = self.context.strategy(attrs.resource)
        await strategy.prepare_conversion([obj], to.api_version)
        return strategy.convert(copy_json(obj), to.api_version)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ calling

    async def call(self, inv: _Invocation) -> JSON:
        """POST the AdmissionReview and return the checked response stanza."""
        hook, attrs = inv.hook, inv.attrs
        if attrs.dry_run:
            if hook.side_effects is None:
                raise _CallingWebhook(hook.name, "Webhook SideEffects is nil", 400)
            if hook.side_effects not in ("None", "NoneOnDryRun"):
                raise dry_run_unsupported(hook.name)
        version = hook.review_version()
        if version is None:
            raise _CallingWebhook(
                hook.name,
                "could not create admission objects: webhook does not accept known "
                "AdmissionReview versions (v1, v1beta1)",
                400,
            )
        request = admission_request(attrs, inv.resource)
        review = {
            "kind": "AdmissionReview",
            "apiVersion": f"{REVIEW_GROUP}/{version}",
            "request": request,
        }
        try:
            answer = await self.client.post(
                hook.client_config,
                self.step,
                review,
                timeout=hook.timeout,
                webhook_name=hook.name,
            )
        except WebhookStatusError as e:
            raise _CallingWebhook(hook.name, e.reason, e.code) from None
        except WebhookError as e:
            code = 400 if e.reason.startswith("could not get REST client") else 503
            raise _CallingWebhook(hook.name, e.reason, code) from None
        try:
            return self.verify(version, request["uid"], answer)
        except ValueError as e:
            raise _CallingWebhook(
                hook.name, f"received invalid webhook response: {e}", 503
            ) from None

    def verify(self, version: str, uid: str, review: JSON) -> JSON:
        """Upstream's ``VerifyAdmissionResponse`` (raises ValueError with its text)."""
        response = review.get("response")
        if not isinstance(response, dict):
            raise ValueError("webhook response was absent")
        if version == "v1":
            got_uid = response.get("uid")
            if got_uid != uid:
                shown = got_uid if isinstance(got_uid, str) else ""
                raise ValueError(f"expected response.uid={go_quote(uid)}, got {go_quote(shown)}")
            want = f"{REVIEW_GROUP}/v1, Kind=AdmissionReview"
            api_version = str(review.get("apiVersion") or "")
            group, _, ver = api_version.rpartition("/")
            got = f"{group}/{ver}, Kind={review.get('kind') or ''}"
            if got != want:
                raise ValueError(f"expected webhook response of {want}, got {got}")
        patch, patch_type = response.get("patch"), response.get("patchType")
        if self.mutating_hooks:
            if version == "v1":
                if patch and patch_type is None:
                    raise ValueError("webhook returned response.patch but not response.patchType")
                if not patch and patch_type is not None:
                    raise ValueError("webhook returned response.patchType but not response.patch")
                if patch_type is not None and not patch_type:
                    raise ValueError('webhook returned invalid response.patchType of ""')
        elif version == "v1":
            if patch:
                raise ValueError("validating webhook may not return response.patch")
            if patch_type is not None:
                raise ValueError("validating webhook may not return response.patchType")
        return response

    def record(self, hook: Hook, attrs: Attributes, response: JSON) -> None:
        """Keep the answer's audit annotations and warnings on the request."""
        annotations = response.get("auditAnnotations")
        if isinstance(annotations, dict):
            for key, value in annotations.items():
                full = f"{hook.name}/{key}"
                if full in attrs.audit_annotations and attrs.audit_annotations[full] != value:
                    log.warning(
                        "admission webhook %s: audit annotation %s already set", hook.name, full
                    )
                    continue
                attrs.audit_annotations[full] = str(value)
        warnings = response.get("warnings")
        if isinstance(warnings, list):
            for w in warnings:
                if isinstance(w, str) and w and w not in attrs.warnings:
                    attrs.warnings.append(w)

    def failed(self, hook: Hook, attrs: Attributes, err: Exception, elapsed: float) -> None:
        """Record the outcome of a call that raised (metrics as upstream counts them)."""
        op = attrs.operation
        if isinstance(err, _CallingWebhook):
            rejected = not hook.ignores_failures
            if rejected:
                self.metrics.rejection(hook.name, self.step, op, CALLING_WEBHOOK_ERROR, err.code)
            self.metrics.observe(hook.name, self.step, op, elapsed, rejected, err.code)
        elif isinstance(err, _Rejected):
            code = err.status.code
            self.metrics.rejection(hook.name, self.step, op, NO_ERROR, code)
            self.metrics.observe(hook.name, self.step, op, elapsed, True, code)
        else:
            self.metrics.rejection(hook.name, self.step, op, APISERVER_INTERNAL_ERROR, 0)
            self.metrics.observe(hook.name, self.step, op, elapsed, True, 0)

    def outcome(
        self, hook: Hook, err: Exception, attrs: Attributes, failed_open_key: str
    ) -> errors.StatusError | None:
        """What a failed call answers (None: ignored by the failure policy, which the
        request's audit annotations record under ``failed_open_key``)."""
        if isinstance(err, _CallingWebhook):
            if hook.ignores_failures:
                log.warning("Failed calling webhook, failing open %s: %s", hook.name, err)
                self.metrics.fail_open.inc(name=hook.name, type=self.step)
                attrs.audit_annotations[failed_open_key] = hook.name
                return None
            log.warning("Failed calling webhook, failing closed %s: %s", hook.name, err)
            return errors.internal(err.message)
        if isinstance(err, _Rejected):
            return err.status
        if isinstance(err, errors.StatusError):
            return err
        raise err


class MutatingAdmissionWebhook(_Dispatcher):
    """Calls the mutating webhooks in order and applies their patches."""

    name: ClassVar[str] = "MutatingAdmissionWebhook"
    plural: ClassVar[str] = "mutatingwebhookconfigurations"
    step: ClassVar[str] = "admit"
    mutating_hooks: ClassVar[bool] = True

    async def admit(self, attrs: Attributes) -> bool:
        hooks = self.source.hooks()
        if not hooks:
            return False
        state = attrs.reinvocation.get(self.name)
        if not isinstance(state, _Reinvocation):
            state = attrs.reinvocation[self.name] = _Reinvocation()
        if attrs.reinvoking and state.last_output != attrs.obj:
            # built-in plugins changed the object on their second run
            state.require_reinvoking_previously_invoked()
        mutated = False
        try:
            for index, hook in enumerate(hooks):
                inv = await self.invocation(hook, attrs)
                if inv is None:
                    continue
                if attrs.reinvoking and hook.uid not in state.reinvoke:
                    continue  # a webhook is never called for the first time on reinvocation
                suffix = f"round_{1 if attrs.reinvoking else 0}_index_{index}"
                start = time.perf_counter()
                try:
                    changed = await self.mutate(inv, attrs)
                except (_CallingWebhook, _Rejected, errors.StatusError) as e:
                    self.failed(hook, attrs, e, time.perf_counter() - start)
                    err: Exception | None = e
                    changed = False
                else:
                    self.metrics.observe(
                        hook.name,
                        self.step,
                        attrs.operation,
                        time.perf_counter() - start,
                        False,
                        200,
                    )
                    err = None
                attrs.audit_annotations[f"{MUTATION_ANNOTATION}/{suffix}"] = orjson.dumps(
                    {"configuration": hook.configuration, "webhook": hook.name, "mutated": changed}
                ).decode()
                if changed:
                    mutated = True
                    state.require_reinvoking_previously_invoked()
                    attrs.reinvoke = True
                if hook.reinvoke_if_needed:
                    state.previously_invoked.add(hook.uid)
                if err is not None:
                    status = self.outcome(
                        hook, err, attrs, f"{MUTATING_FAILED_OPEN_ANNOTATION}/{suffix}"
                    )
                    if status is not None:
                        status.warnings = list(attrs.warnings)
                        raise status
        finally:
            state.last_output = copy_json(attrs.obj) if attrs.obj is not None else None
        return mutated

    async def mutate(self, inv: _Invocation, attrs: Attributes) -> bool:
        """Call one webhook and apply its patch to ``attrs.obj``; whether it changed."""
        hook = inv.hook
        response = await self.call(inv)
        self.record(hook, attrs, response)
        if response.get("allowed") is not True:
            raise _Rejected(denial(hook.name, response.get("status")))
        raw_patch = response.get("patch")
        if not raw_patch:
            return False
        try:
            patch_json = base64.b64decode(str(raw_patch), validate=True)
        except (binascii.Error, ValueError) as e:
            raise _CallingWebhook(
                hook.name, f"failed to call webhook: illegal base64 data: {e}", 503
            ) from None
        try:
            ops = orjson.loads(patch_json)
        except orjson.JSONDecodeError as e:
            raise errors.internal(str(e)) from None
        if not ops:
            return False
        versioned = inv.attrs.obj
        if versioned is None:
            raise errors.internal(
                f"admission webhook {go_quote(hook.name)} attempted to modify the object, "
                "which is not supported for this operation"
            )
        patch_type = response.get("patchType")
        if patch_type != "JSONPatch":
            raise _CallingWebhook(
                hook.name, f"unsupported patch type {go_quote(str(patch_type))}", 0
            )
        try:
            patched = apply_json_patch(versioned, ops)
        except PatchError as e:
            raise errors.internal(e.detail) from None
        if not isinstance(patched, dict):
            raise errors.internal("the patched object is not a JSON object")
        patched = self.decode(inv.resource, attrs, patched)
        changed = patched != versioned
        if inv.attrs is not attrs:
            inv.attrs.obj = patched
            back = await self.convert(inv.attrs, patched, attrs.resource)
            patched = back if back is not None else patched
        assert attrs.obj is not None
        # in place: the handler holds this very object
        attrs.obj.clear()
        attrs.obj.update(patched)
        return changed

    def decode(self, resource: Resource, attrs: Attributes, obj: JSON) -> JSON:
        """The patched object as the API server decodes a request body: fields the schema
        does not know are dropped, defaults applied (the object itself, not a
        subresource's: those are not re-decoded)."""
        if attrs.subresource:
            return obj
        if self.context.decode is None:
            return apply_defaults(resource, obj, create=False)
        return self.context.decode(resource, obj)  # type: ignore[no-any-return]


class ValidatingAdmissionWebhook(_Dispatcher):
    """Calls the matching validating webhooks concurrently; any refusal refuses."""

    name: ClassVar[str] = "ValidatingAdmissionWebhook"
    plural: ClassVar[str] = "validatingwebhookconfigurations"
    step: ClassVar[str] = "validate"
    mutating_hooks: ClassVar[bool] = False

    async def validate(self, attrs: Attributes) -> None:
        hooks = self.source.hooks()
        if not hooks:
            return
        relevant = []
        for hook in hooks:
            inv = await self.invocation(hook, attrs)
            if inv is not None:
                relevant.append(inv)
        if not relevant:
            return
        if len(relevant) == 1:
            outcomes = [await self.check(relevant[0], attrs, 0)]
        else:
            outcomes = await asyncio.gather(
                *(self.check(inv, attrs, i) for i, inv in enumerate(relevant))
            )
        for status in outcomes:
            if status is not None:
                status.warnings = list(attrs.warnings)
                raise status

    async def check(
        self, inv: _Invocation, attrs: Attributes, index: int
    ) -> errors.StatusError | None:
        hook = inv.hook
        start = time.perf_counter()
        try:
            response = await self.call(inv)
            self.record(hook, attrs, response)
            if response.get("allowed") is not True:
                raise _Rejected(denial(hook.name, response.get("status")))
        except (_CallingWebhook, _Rejected, errors.StatusError) as e:
            self.failed(hook, attrs, e, time.perf_counter() - start)
            key = f"{VALIDATING_FAILED_OPEN_ANNOTATION}/round_0_index_{index}"
            return self.outcome(hook, e, attrs, key)
        self.metrics.observe(
            hook.name, self.step, attrs.operation, time.perf_counter() - start, False, 200
        )
        return None
