"""RBAC policy rules: does a rule allow a request, and does one set of rules cover another?

Why pure and separate: the authorizer asks "does any rule of this user allow these
attributes" on every request, and the escalation check asks "does the user hold every
permission this role would grant" on every Role and binding write. Both are upstream's
rules (``rbac/v1`` ``RuleAllows`` and ``validation.Covers``), kept here without I/O so
they are tested on their own.

Matching, as upstream:

* verbs and apiGroups match exactly or by ``*``;
* a resource matches ``*``, itself (``pods``, or ``pods/log`` for the subresource), or
  ``*/<subresource>`` (``*/scale`` covers every resource's scale);
* resourceNames, when given, must contain the request's name (a rule with names never
  allows a ``list`` or a ``create``, whose requests carry no name);
* a nonResourceURL matches ``*``, itself, or as a prefix when it ends in ``*``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyk8s.apiserver.authz import RequestAttributes

__all__ = ["CompiledRules", "Rule", "compact_string", "covers", "rule_allows", "rules_from_json"]

ALL = "*"


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``PolicyRule`` (rbac.authorization.k8s.io/v1)."""

    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, rule: Mapping[str, Any]) -> Rule:
        def strings(key: str) -> tuple[str, ...]:
            value = rule.get(key) or ()
            return tuple(str(v) for v in value) if isinstance(value, list) else ()

        return cls(
            strings("verbs"),
            strings("apiGroups"),
            strings("resources"),
            strings("resourceNames"),
            strings("nonResourceURLs"),
        )

    def to_json(self) -> dict[str, list[str]]:
        """The rule as the API serves it (empty lists omitted)."""
        out: dict[str, list[str]] = {}
        if self.api_groups:
            out["apiGroups"] = list(self.api_groups)
        if self.resources:
            out["resources"] = list(self.resources)
        if self.resource_names:
            out["resourceNames"] = list(self.resource_names)
        if self.non_resource_urls:
            out["nonResourceURLs"] = list(self.non_resource_urls)
        out["verbs"] = list(self.verbs)
        return out


def rules_from_json(rules: Any) -> tuple[Rule, ...]:
    """The ``rules`` of a Role or ClusterRole (malformed entries are skipped)."""
    if not isinstance(rules, list):
        return ()
    return tuple(Rule.from_json(r) for r in rules if isinstance(r, dict))


# --------------------------------------------------------------------------- matching


def _resource_matches(rule: Rule, resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for r in rule.resources:
        if r in (ALL, combined):
            return True
        if subresource and r == f"*/{subresource}":
            return True
    return False


def _url_matches(rule: Rule, path: str) -> bool:
    for url in rule.non_resource_urls:
        if url in (ALL, path):
            return True
        if url.endswith("*") and path.startswith(url[:-1]):
            return True
    return False


def rule_allows(rule: Rule, a: RequestAttributes) -> bool:
    """Upstream's ``RuleAllows``."""
    if ALL not in rule.verbs and a.verb not in rule.verbs:
        return False
    if not a.resource_request:
        return _url_matches(rule, a.path)
    if ALL not in rule.api_groups and a.api_group not in rule.api_groups:
        return False
    if not _resource_matches(rule, a.resource, a.subresource):
        return False
    return not rule.resource_names or a.name in rule.resource_names


# --------------------------------------------------------------------------- coverage


def _breakdown(rule: Rule) -> Iterator[Rule]:
    """A rule as rules of one verb, group, resource and name (or one verb and URL)."""
    for group in rule.api_groups:
        for resource in rule.resources:
            for verb in rule.verbs:
                if rule.resource_names:
                    for name in rule.resource_names:
                        yield Rule((verb,), (group,), (resource,), (name,))
                else:
                    yield Rule((verb,), (group,), (resource,))
    for url in rule.non_resource_urls:
        for verb in rule.verbs:
            yield Rule((verb,), non_resource_urls=(url,))


def _resources_cover(owned: Sequence[str], wanted: Sequence[str]) -> bool:
    if ALL in owned:
        return True
    for resource in wanted:
        if resource in owned:
            continue
        _, slash, sub = resource.partition("/")
        if not slash or f"*/{sub}" not in owned:
            return False
    return True


def _urls_cover(owned: Sequence[str], wanted: Sequence[str]) -> bool:
    for url in wanted:
        if not any(o == url or (o.endswith("*") and url.startswith(o[:-1])) for o in owned):
            return False
    return True


def _rule_covers(owner: Rule, sub: Rule) -> bool:
    if ALL not in owner.verbs and not set(sub.verbs) <= set(owner.verbs):
        return False
    if ALL not in owner.api_groups and not set(sub.api_groups) <= set(owner.api_groups):
        return False
    if not _resources_cover(owner.resources, sub.resources):
        return False
    if not _urls_cover(owner.non_resource_urls, sub.non_resource_urls):
        return False
    if not sub.resource_names:
        return not owner.resource_names
    return not owner.resource_names or set(sub.resource_names) <= set(owner.resource_names)


def covers(owned: Iterable[Rule], wanted: Iterable[Rule]) -> list[Rule]:
    """The parts of ``wanted`` no rule of ``owned`` covers (empty: fully covered), as
    upstream's ``validation.Covers`` breaks them down."""
    owner_rules = tuple(owned)
    missing: list[Rule] = []
    for rule in wanted:
        for sub in _breakdown(rule):
            if not any(_rule_covers(o, sub) for o in owner_rules):
                missing.append(sub)
    return missing


def _go_quoted(values: Sequence[str]) -> str:
    """Go's ``%q`` of a ``[]string``: ``["a" "b"]``."""
    return (
        "["
        + " ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
        + "]"
    )


def compact_string(rule: Rule) -> str:
    """upstream's ``rbacv1helpers.CompactString``, the form escalation errors list."""
    parts = []
    if rule.api_groups:
        parts.append(f"APIGroups:{_go_quoted(rule.api_groups)}")
    if rule.resources:
        parts.append(f"Resources:{_go_quoted(rule.resources)}")
    if rule.non_resource_urls:
        parts.append(f"NonResourceURLs:{_go_quoted(rule.non_resource_urls)}")
    if rule.resource_names:
        parts.append(f"ResourceNames:{_go_quoted(rule.resource_names)}")
    if rule.verbs:
        parts.append(f"Verbs:{_go_quoted(rule.verbs)}")
    return "{" + ", ".join(parts) + "}"


# --------------------------------------------------------------------------- compiled


class CompiledRules:
    """One role's rules, compiled for the per-request check.

    :meth:`allows` answers exactly as ``any(rule_allows(r, a) for r in rules)``, but with
    at most twelve dict lookups -- every (verb, group, resource) of every rule is a key,
    holding the resourceNames it is limited to -- instead of a scan of all the rules,
    which matters for the large aggregated roles (``edit`` has hundreds of such keys).
    """

    __slots__ = ("_resources", "_urls")

    def __init__(self, rules: Iterable[Rule]) -> None:
        #: (verb, group, resource) -> the names it is limited to; empty: any name
        self._resources: dict[tuple[str, str, str], frozenset[str]] = {}
        self._urls: list[Rule] = []
        for rule in rules:
            if rule.non_resource_urls:
                self._urls.append(rule)
            names = frozenset(rule.resource_names)
            for verb in rule.verbs:
                for group in rule.api_groups:
                    for resource in rule.resources:
                        key = (verb, group, resource)
                        held = self._resources.get(key)
                        if held is None:
                            self._resources[key] = names
                        elif held and names:
                            self._resources[key] = held | names
                        else:
                            self._resources[key] = frozenset()  # one rule allows any name

    def allows(self, a: RequestAttributes) -> bool:
        if not a.resource_request:
            return any(rule_allows(rule, a) for rule in self._urls)
        index = self._resources
        if not index:
            return False
        sub = a.subresource
        if sub:
            resources: tuple[str, ...] = (f"{a.resource}/{sub}", ALL, f"*/{sub}")
        else:
            resources = (a.resource, ALL)
        for verb in (a.verb, ALL):
            for group in (a.api_group, ALL):
                for resource in resources:
                    names = index.get((verb, group, resource))
                    if names is not None and (not names or a.name in names):
                        return True
        return False
