"""Which requests an admission webhook or policy looks at, as upstream decides it.

Why this module exists: webhook configurations and ValidatingAdmissionPolicies (and their
bindings) describe the requests they intercept the same way — rules over operations,
groups, versions and resources, a ``matchPolicy``, a ``namespaceSelector``, an
``objectSelector`` and CEL ``matchConditions`` — and upstream evaluates them with one set of
matchers (``k8s.io/apiserver/pkg/admission/plugin/webhook/predicates``). Both plugins use
this module so they cannot disagree.

The semantics, upstream's:

* a rule's ``resources`` entry is ``resource`` or ``resource/subresource``; ``*`` matches
  every resource but no subresource, ``*/*`` everything, ``pods/*`` every subresource of
  pods, ``*/scale`` the scale subresource of everything;
* ``scope`` ``Cluster`` matches cluster-scoped resources (a Namespace counts as one),
  ``Namespaced`` namespaced ones, ``*`` (the default) both;
* with ``matchPolicy: Equivalent`` (the default) a request that no rule names directly
  still matches through an equivalent resource — the same objects served at another
  version or group (``autoscaling/v1`` and ``v2`` HPAs, a CRD's versions); the hook then
  sees the request as that resource (:meth:`Match.resource`);
* ``namespaceSelector`` is matched against the labels of the request's namespace (of the
  object itself when a Namespace is created or updated; a namespace that does not exist
  is upstream's 404); cluster-scoped requests other than Namespaces always match it;
* ``objectSelector`` matches if the new or the old object's labels match;
* ``matchConditions`` are CEL expressions over ``object``, ``oldObject``, ``request`` (and
  ``authorizer`` when the caller provides it): any false means "not matched"; an error,
  with none false, is reported to the caller, which applies its ``failurePolicy``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyk8s.api import errors
from pyk8s.api.cel import Activation, CELError, Program, compile_expression
from pyk8s.api.registry import Registry, Resource
from pyk8s.api.selectors import LabelSelector, SelectorError, label_selector_from_dict
from pyk8s.api.validation.admissionrules import MATCH_CONDITION_VARIABLES
from pyk8s.apiserver.admission import CREATE, UPDATE, Attributes, Reader

JSON = dict[str, Any]

ALL = "*"


def _split(resource: str) -> tuple[str, str]:
    res, _, sub = resource.partition("/")
    return res, sub


def _listed(values: Sequence[str], value: str) -> bool:
    return ALL in values or value in values


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``RuleWithOperations`` (or ``NamedRuleWithOperations`` with resourceNames)."""

    operations: tuple[str, ...]
    groups: tuple[str, ...]
    versions: tuple[str, ...]
    #: (resource, subresource) pairs: ``("*", "")`` for ``*``, ``("*", "*")`` for ``*/*``
    resources: tuple[tuple[str, str], ...]
    scope: str = ALL
    #: empty: every name
    resource_names: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, rule: Mapping[str, Any]) -> Rule:
        return cls(
            tuple(rule.get("operations") or ()),
            tuple(rule.get("apiGroups") or ()),
            tuple(rule.get("apiVersions") or ()),
            tuple(_split(r) for r in rule.get("resources") or ()),
            rule.get("scope") or ALL,
            tuple(rule.get("resourceNames") or ()),
        )

    def matches(self, attrs: Attributes, resource: Resource | None = None) -> bool:
        """Whether the request, seen as ``resource`` (default: its own), is covered."""
        r = resource or attrs.resource
        return (
            _listed(self.operations, attrs.operation)
            and _listed(self.groups, r.group)
            and _listed(self.versions, r.version)
            and self._resource(r.plural, attrs.subresource)
            and self._scope(r)
            and (not self.resource_names or attrs.name in self.resource_names)
        )

    def _resource(self, plural: str, subresource: str) -> bool:
        return any(
            res in (ALL, plural) and sub in (ALL, subresource) for res, sub in self.resources
        )

    def _scope(self, r: Resource) -> bool:
        if self.scope == "Namespaced":
            return r.namespaced
        if self.scope == "Cluster":
            return not r.namespaced
        return True


#: never sent to webhooks or policies, so that a broken hook can always be removed
EXEMPT_KINDS = frozenset(
    {
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
)


def is_exempt(attrs: Attributes) -> bool:
    """Requests on admission configuration objects (upstream's
    ``IsExemptAdmissionConfigurationResource``)."""
    r = attrs.resource
    return r.group == "admissionregistration.k8s.io" and r.kind in EXEMPT_KINDS


def parse_rules(rules: Iterable[Mapping[str, Any]] | None) -> tuple[Rule, ...]:
    return tuple(Rule.from_dict(r) for r in rules or ())


def equivalents(registry: Registry, resource: Resource) -> list[Resource]:
    """The other resources serving the same objects (same storage), in registry order."""
    prefix = resource.key_prefix()
    return [r for r in registry if r is not resource and r.key_prefix() == prefix]


def namespace_of(attrs: Attributes) -> str:
    """The namespace a request is in (a Namespace's own name for requests on Namespaces)."""
    if attrs.group_resource == ("", "namespaces"):
        return attrs.name
    return attrs.namespace


def _labels(obj: Mapping[str, Any] | None) -> Mapping[str, str] | None:
    if not isinstance(obj, Mapping):
        return None
    meta = obj.get("metadata")
    return meta.get("labels") or {} if isinstance(meta, Mapping) else {}


def _selector(raw: Mapping[str, Any] | None) -> LabelSelector:
    """A webhook's or policy's selector; absent (not yet defaulted) selects everything."""
    return LabelSelector.everything() if raw is None else label_selector_from_dict(raw)


@dataclass(frozen=True, slots=True)
class Selectors:
    """A ``namespaceSelector`` and an ``objectSelector``, parsed once."""

    namespace: LabelSelector
    object: LabelSelector

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Selectors:
        """From the object carrying them; a selector that does not parse selects nothing
        (validation refuses such objects; an old stored one must not match everything)."""
        try:
            return cls(
                _selector(spec.get("namespaceSelector")), _selector(spec.get("objectSelector"))
            )
        except SelectorError:
            return cls(LabelSelector.nothing(), LabelSelector.nothing())

    def object_matches(self, attrs: Attributes) -> bool:
        if self.object.empty:
            return True
        return any(
            labels is not None and self.object.matches(labels)
            for labels in (_labels(attrs.obj), _labels(attrs.old))
        )

    async def namespace_matches(self, attrs: Attributes, reader: Reader) -> bool:
        if self.namespace.empty:
            return True
        is_namespace = attrs.group_resource == ("", "namespaces")
        if not attrs.namespace and not is_namespace:
            return True  # cluster-scoped, not a Namespace: never exempted
        if is_namespace and not attrs.subresource and attrs.operation in (CREATE, UPDATE):
            labels = _labels(attrs.obj)  # the namespace being written, not the stored one
        else:
            name = namespace_of(attrs)
            namespace = await reader.get("", "namespaces", "", name)
            if namespace is None:
                raise errors.not_found("namespaces", name)  # upstream's answer, kept for clients
            labels = _labels(namespace)
        return self.namespace.matches(labels or {})

    async def match(self, attrs: Attributes, reader: Reader) -> bool:
        return self.object_matches(attrs) and await self.namespace_matches(attrs, reader)


@dataclass(frozen=True, slots=True)
class Match:
    """A request matched by rules, and the resource it is seen as."""

    resource: Resource
    #: True when matched through an equivalent resource (the object must be converted)
    converted: bool


def match_rules(
    rules: Sequence[Rule],
    attrs: Attributes,
    registry: Registry | None,
    match_policy: str = "Equivalent",
    exclude: Sequence[Rule] = (),
) -> Match | None:
    """The resource under which ``rules`` cover the request (None: not covered).

    ``exclude`` are a policy's ``excludeResourceRules``: a request they cover is not matched.
    """
    if any(rule.matches(attrs) for rule in exclude):
        return None
    if any(rule.matches(attrs) for rule in rules):
        return Match(attrs.resource, False)
    if match_policy != "Equivalent" or registry is None:
        return None
    for other in equivalents(registry, attrs.resource):
        if any(rule.matches(attrs, other) for rule in rules) and not any(
            rule.matches(attrs, other) for rule in exclude
        ):
            return Match(other, True)
    return None


@dataclass(frozen=True, slots=True)
class ConditionResult:
    """All conditions true (``matched``), one false (not matched), or an error: the names
    and texts of the conditions that failed to evaluate (``error``; ``matched`` False)."""

    matched: bool
    error: str = ""


class MatchConditions:
    """Compiled ``matchConditions``; compile errors surface at validation, not here."""

    def __init__(self, conditions: Iterable[Mapping[str, Any]] | None) -> None:
        self.programs: list[tuple[str, Program | CELError]] = []
        for c in conditions or ():
            name, expression = str(c.get("name", "")), str(c.get("expression", ""))
            try:
                program: Program | CELError = compile_expression(
                    expression, variables=MATCH_CONDITION_VARIABLES
                )
            except CELError as e:
                program = e
            self.programs.append((name, program))

    def __bool__(self) -> bool:
        return bool(self.programs)

    def evaluate(self, activation: Mapping[str, Any]) -> ConditionResult:
        """Evaluate against ``activation`` (see :func:`activation`): false wins over errors."""
        errors: list[str] = []
        for name, program in self.programs:
            if isinstance(program, CELError):
                errors.append(f"compilation failed for {name}: {program.message}")
                continue
            try:
                value = program.evaluate(activation)
            except CELError as e:
                errors.append(f"expression '{name}' resulted in error: {e.message}")
                continue
            if value is False:
                return ConditionResult(False)
            if value is not True:
                errors.append(f"expression '{name}' resulted in non-boolean: {value!r}")
        if errors:
            return ConditionResult(False, "; ".join(errors))
        return ConditionResult(True)


def activation(request: JSON, **extra: Any) -> Activation:
    """The CEL variables of an admission request (``object``, ``oldObject``, ``request``,
    plus ``extra`` such as ``params`` or ``namespaceObject``), converted once for every
    expression evaluated over them."""
    return Activation(
        object=request.get("object"),
        oldObject=request.get("oldObject"),
        request=request,
        **extra,
    )
