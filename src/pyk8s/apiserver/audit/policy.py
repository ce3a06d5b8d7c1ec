"""The audit policy (``--audit-policy-file``): which requests are logged, at which level.

An audit.k8s.io/v1 ``Policy`` is an ordered list of rules; the first rule that matches a
request decides its level (None, Metadata, Request or RequestResponse) and the stages left
out; a request no rule matches is not logged, as upstream. A rule matches when every list
it sets matches (an unset list matches everything):

* ``users`` / ``userGroups``: the authenticated user (before impersonation);
* ``verbs``: the API verb (get, list, watch, create, ...) or, for other paths, the
  lower-cased HTTP method;
* ``resources``: ``{group, resources, resourceNames}``; ``pods/log`` names a
  subresource, ``*`` every resource, ``*/log`` that subresource of any, ``pods/*`` pods
  and every subresource of theirs;
* ``namespaces``: resource requests only ("" for cluster-scoped resources);
* ``nonResourceURLs``: other paths only, exact or with a final ``*`` wildcard.

:func:`load_policy` reads a file and checks it as kube-apiserver does (upstream's field
paths and texts); a bad file is :class:`AuditPolicyError`, one line naming the file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pyk8s.api import errors
from pyk8s.api.errors import FieldError
from pyk8s.api.gofmt import GoStringSlice
from pyk8s.apiserver.authn import UserInfo
from pyk8s.apiserver.requestinfo import RequestInfo

LEVELS = ("None", "Metadata", "Request", "RequestResponse")
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
API_VERSION = "audit.k8s.io/v1"
_RANK = {level: i for i, level in enumerate(LEVELS)}
_DNS_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"


class AuditPolicyError(ValueError):
    """Why the server cannot start with this policy file (one line)."""


@dataclass(frozen=True, slots=True)
class GroupResources:
    group: str = ""
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()

    def matches(self, info: RequestInfo) -> bool:
        if self.group != info.group:
            return False
        if not self.resources:
            return True
        if self.resource_names and info.name not in self.resource_names:
            return False
        sub = info.subresource
        combined = f"{info.resource}/{sub}" if sub else info.resource
        for res in self.resources:
            if res in (combined, "*"):
                return True
            if sub and res.startswith("*/") and res[2:] == sub:
                return True
            if res.endswith("/*") and res[:-2] == info.resource:
                return True
        return False


@dataclass(frozen=True, slots=True)
class PolicyRule:
    level: str
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool | None = None

    def matches(self, user: UserInfo, info: RequestInfo) -> bool:
        if self.users and user.name not in self.users:
            return False
        if self.user_groups and not any(g in self.user_groups for g in user.groups):
            return False
        if self.verbs and info.verb not in self.verbs:
            return False
        if info.resource_request:
            if self.non_resource_urls:
                return False
            if self.namespaces and info.namespace not in self.namespaces:
                return False
            return not self.resources or any(gr.matches(info) for gr in self.resources)
        if self.resources or self.namespaces:
            return False
        return not self.non_resource_urls or any(
            _url_matches(spec, info.path) for spec in self.non_resource_urls
        )


def _url_matches(spec: str, path: str) -> bool:
    if spec == "*" or spec == path:
        return True
    return spec.endswith("*") and path.startswith(spec[:-1])


@dataclass(frozen=True, slots=True)
class RequestAuditConfig:
    """What the policy says about one request."""

    level: str
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False

    def at_least(self, level: str) -> bool:
        return _RANK[self.level] >= _RANK[level]


NOT_AUDITED = RequestAuditConfig("None")


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[PolicyRule, ...]
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False

    def evaluate(self, user: UserInfo, info: RequestInfo) -> RequestAuditConfig:
        """The first matching rule's level; None when no rule matches."""
        for rule in self.rules:
            if rule.matches(user, info):
                if rule.level == "None":
                    return NOT_AUDITED
                omit = rule.omit_managed_fields
                return RequestAuditConfig(
                    rule.level,
                    rule.omit_stages | self.omit_stages,
                    self.omit_managed_fields if omit is None else omit,
                )
        return NOT_AUDITED


def load_policy(path: str | Path) -> Policy:
    """Read and check a policy file; AuditPolicyError says what is wrong, and where."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise AuditPolicyError(f'failed to read file path "{path}": {err.strerror}') from None
    try:
        doc = json.loads(data) if data.lstrip().startswith(b"{") else yaml.safe_load(data)
    except (ValueError, yaml.YAMLError) as err:
        first = str(err).splitlines()[0]
        raise AuditPolicyError(f"failed decoding: {first}: from file {path}") from None
    if not isinstance(doc, dict) or doc.get("kind") != "Policy":
        kind = doc.get("kind") if isinstance(doc, dict) else None
        raise AuditPolicyError(
            f"failed decoding: Object 'Kind' is {'missing' if not kind else repr(kind)}: "
            f"from file {path}"
        )
    if doc.get("apiVersion") != API_VERSION:
        raise AuditPolicyError(
            f'failed decoding: no kind "Policy" is registered for version '
            f'"{doc.get("apiVersion")}": from file {path}'
        )
    problems: list[FieldError] = []
    policy = _policy(doc, problems)
    if problems:
        message = errors.aggregate_message([str(p) for p in problems])
        raise AuditPolicyError(f"{message}: from file {path}")
    if not policy.rules:
        raise AuditPolicyError(f"loaded illegal policy with 0 rules: from file {path}")
    return policy


def _policy(doc: dict[str, Any], problems: list[FieldError]) -> Policy:
    rules_doc = doc.get("rules") or []
    if not isinstance(rules_doc, list):
        problems.append(errors.invalid("rules", rules_doc, "must be a list"))
        rules_doc = []
    rules = tuple(_rule(r, f"rules[{i}]", problems) for i, r in enumerate(rules_doc))
    return Policy(
        rules,
        _stages(doc.get("omitStages"), "omitStages", problems),
        bool(doc.get("omitManagedFields", False)),
    )


def _strings(value: Any, path: str, problems: list[FieldError]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(errors.invalid(path, value, "must be a list of strings"))
        return ()
    return tuple(value)


def _stages(value: Any, path: str, problems: list[FieldError]) -> frozenset[str]:
    stages = _strings(value, path, problems)
    for i, stage in enumerate(stages):
        if stage not in STAGES:
            problems.append(
                errors.invalid(f"{path}[{i}]", stage, "allowed stages are " + ",".join(STAGES))
            )
    return frozenset(stages)


def _rule(doc: Any, path: str, problems: list[FieldError]) -> PolicyRule:
    if not isinstance(doc, dict):
        problems.append(errors.invalid(path, doc, "must be an object"))
        return PolicyRule("None")
    level = doc.get("level")
    if not level:
        problems.append(errors.required(f"{path}.level"))
        level = "None"
    elif level not in LEVELS:
        problems.append(errors.not_supported(f"{path}.level", level, LEVELS))
        level = "None"
    urls = _strings(doc.get("nonResourceURLs"), f"{path}.nonResourceURLs", problems)
    for i, url in enumerate(urls):
        if url == "*":
            continue
        if not url.startswith("/"):
            problems.append(
                errors.invalid(
                    f"{path}.nonResourceURLs[{i}]",
                    url,
                    "non-resource URL rules must begin with a '/' character",
                )
            )
        if url and "*" in url[:-1]:
            problems.append(
                errors.invalid(
                    f"{path}.nonResourceURLs[{i}]",
                    url,
                    "non-resource URL wildcards '*' must be the final character of the rule",
                )
            )
    resources = _resources(doc.get("resources"), f"{path}.resources", problems)
    namespaces = _strings(doc.get("namespaces"), f"{path}.namespaces", problems)
    if urls and (resources or namespaces):
        problems.append(
            errors.invalid(
                f"{path}.nonResourceURLs",
                GoStringSlice(urls),
                "rules cannot apply to both regular resources and non-resource URLs",
            )
        )
    omit_managed = doc.get("omitManagedFields")
    return PolicyRule(
        level,
        users=_strings(doc.get("users"), f"{path}.users", problems),
        user_groups=_strings(doc.get("userGroups"), f"{path}.userGroups", problems),
        verbs=_strings(doc.get("verbs"), f"{path}.verbs", problems),
        resources=resources,
        namespaces=namespaces,
        non_resource_urls=urls,
        omit_stages=_stages(doc.get("omitStages"), f"{path}.omitStages", problems),
        omit_managed_fields=None if omit_managed is None else bool(omit_managed),
    )


def _resources(value: Any, path: str, problems: list[FieldError]) -> tuple[GroupResources, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.append(errors.invalid(path, value, "must be a list"))
        return ()
    out: list[GroupResources] = []
    for entry in value:
        if not isinstance(entry, dict):
            problems.append(errors.invalid(path, entry, "must be an object"))
            continue
        group = entry.get("group") or ""
        if group and not re.fullmatch(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*", str(group)):
            problems.append(
                errors.invalid(
                    f"{path}.group",
                    group,
                    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                    "characters, '-' or '.', and must start and end with an alphanumeric "
                    "character (e.g. 'example.com', regex used for validation is "
                    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                )
            )
        resources = _strings(entry.get("resources"), f"{path}.resources", problems)
        names = _strings(entry.get("resourceNames"), f"{path}.resourceNames", problems)
        if names and not resources:
            problems.append(
                errors.invalid(
                    f"{path}.resourceNames",
                    GoStringSlice(names),
                    "using resourceNames requires at least one resource",
                )
            )
        out.append(GroupResources(str(group), resources, names))
    return tuple(out)
