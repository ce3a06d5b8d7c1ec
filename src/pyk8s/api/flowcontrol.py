"""API Priority and Fairness without the server: bootstrap objects, defaults, matching.

Why this module exists: ``flowcontrol.apiserver.k8s.io/v1`` FlowSchemas say which requests
belong to which PriorityLevelConfiguration, and the levels say how much of the server's
concurrency each gets and whether excess requests queue or are rejected. The rules that
decide this are pure data and pure functions (upstream's ``bootstrap/default.go``, the v1
defaulting, ``matching.go``, the shuffle-sharding dealer and the share arithmetic of the
config controller), so they live here, apart from the queues and the HTTP filter that the
API server runs (:mod:`pyk8s.apiserver.flowcontrol`).

Everything is v1.32's: the two mandatory levels (``exempt``, ``catch-all``) and flow schemas
(``exempt``, ``catch-all``), the suggested ones (``system``, ``node-high``,
``leader-election``, ``workload-high``, ``workload-low``, ``global-default`` and their flow
schemas, ``probes`` among them), all annotated ``apf.kubernetes.io/autoupdate-spec: "true"``.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyk8s.api.errors import FieldError, FieldErrorType

JSON = dict[str, Any]

GROUP = "flowcontrol.apiserver.k8s.io"
API_VERSION = f"{GROUP}/v1"
AUTO_UPDATE_ANNOTATION = "apf.kubernetes.io/autoupdate-spec"
#: the field manager upstream's config controller writes FlowSchema status with
STATUS_MANAGER = "api-priority-and-fairness-config-consumer-v1"

EXEMPT, CATCH_ALL = "exempt", "catch-all"
LIMITED = "Limited"
QUEUE, REJECT = "Queue", "Reject"
BY_USER, BY_NAMESPACE = "ByUser", "ByNamespace"
DANGLING = "Dangling"

_ALL = "*"
_MASTERS = "system:masters"
_AUTHENTICATED = "system:authenticated"
_UNAUTHENTICATED = "system:unauthenticated"
_NODES = "system:nodes"
_SERVICE_ACCOUNTS = "system:serviceaccounts"
_SA_PREFIX = "system:serviceaccount:"
_KCM = "system:kube-controller-manager"
_SCHEDULER = "system:kube-scheduler"

#: v1 defaults (SetDefaults_*): a FlowSchema's precedence, a level's shares and queues
DEFAULT_MATCHING_PRECEDENCE = 1000
DEFAULT_NOMINAL_CONCURRENCY_SHARES = 30
DEFAULT_QUEUES, DEFAULT_HAND_SIZE, DEFAULT_QUEUE_LENGTH_LIMIT = 64, 8, 50


# --------------------------------------------------------------------------- bootstrap


def _groups(*names: str) -> list[JSON]:
    return [{"kind": "Group", "group": {"name": n}} for n in names]


def _users(*names: str) -> list[JSON]:
    return [{"kind": "User", "user": {"name": n}} for n in names]


def _kube_system_sa(*names: str) -> list[JSON]:
    return [
        {"kind": "ServiceAccount", "serviceAccount": {"namespace": "kube-system", "name": n}}
        for n in names
    ]


def _resource_rule(
    verbs: Sequence[str],
    groups: Sequence[str],
    resources: Sequence[str],
    namespaces: Sequence[str],
    cluster_scope: bool,
) -> JSON:
    rule: JSON = {
        "verbs": list(verbs),
        "apiGroups": list(groups),
        "resources": list(resources),
        "namespaces": list(namespaces),
    }
    if cluster_scope:
        rule["clusterScope"] = True
    return rule


_EVERYTHING = [_resource_rule([_ALL], [_ALL], [_ALL], [_ALL], True)]
_EVERY_URL = [{"verbs": [_ALL], "nonResourceURLs": [_ALL]}]
_ELECTION = ["get", "create", "update"]


def _all_of(subjects: list[JSON]) -> JSON:
    return {"subjects": subjects, "resourceRules": _EVERYTHING, "nonResourceRules": _EVERY_URL}


def _flow_schema(name: str, level: str, precedence: int, method: str, rules: JSON) -> JSON:
    spec: JSON = {
        "priorityLevelConfiguration": {"name": level},
        "matchingPrecedence": precedence,
    }
    if method:
        spec["distinguisherMethod"] = {"type": method}
    spec["rules"] = [rules]
    return {
        "apiVersion": API_VERSION,
        "kind": "FlowSchema",
        "metadata": {"name": name, "annotations": {AUTO_UPDATE_ANNOTATION: "true"}},
        "spec": spec,
    }


def _limited(name: str, shares: int, lendable: int, queuing: tuple[int, int, int] | None) -> JSON:
    response: JSON = {"type": REJECT}
    if queuing is not None:
        queues, hand, length = queuing
        response = {
            "type": QUEUE,
            "queuing": {"queues": queues, "handSize": hand, "queueLengthLimit": length},
        }
    return {
        "apiVersion": API_VERSION,
        "kind": "PriorityLevelConfiguration",
        "metadata": {"name": name, "annotations": {AUTO_UPDATE_ANNOTATION: "true"}},
        "spec": {
            "type": LIMITED,
            "limited": {
                "nominalConcurrencyShares": shares,
                "lendablePercent": lendable,
                "limitResponse": response,
            },
        },
    }


MANDATORY_PRIORITY_LEVELS: tuple[JSON, ...] = (
    {
        "apiVersion": API_VERSION,
        "kind": "PriorityLevelConfiguration",
        "metadata": {"name": EXEMPT, "annotations": {AUTO_UPDATE_ANNOTATION: "true"}},
        "spec": {"type": "Exempt", "exempt": {"nominalConcurrencyShares": 0, "lendablePercent": 0}},
    },
    _limited(CATCH_ALL, 5, 0, None),
)
MANDATORY_FLOW_SCHEMAS: tuple[JSON, ...] = (
    _flow_schema(EXEMPT, EXEMPT, 1, "", _all_of(_groups(_MASTERS))),
    _flow_schema(
        CATCH_ALL, CATCH_ALL, 10000, BY_USER, _all_of(_groups(_UNAUTHENTICATED, _AUTHENTICATED))
    ),
)
SUGGESTED_PRIORITY_LEVELS: tuple[JSON, ...] = (
    _limited("system", 30, 33, (64, 6, 50)),
    _limited("node-high", 40, 25, (64, 6, 50)),
    _limited("leader-election", 10, 0, (16, 4, 50)),
    _limited("workload-high", 40, 50, (128, 6, 50)),
    _limited("workload-low", 100, 90, (128, 6, 50)),
    _limited("global-default", 20, 50, (128, 6, 50)),
)
SUGGESTED_FLOW_SCHEMAS: tuple[JSON, ...] = (
    _flow_schema(
        "probes",
        EXEMPT,
        2,
        "",
        {
            "subjects": _groups(_UNAUTHENTICATED, _AUTHENTICATED),
            "nonResourceRules": [
                {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/readyz", "/livez"]}
            ],
        },
    ),
    _flow_schema(
        "system-leader-election",
        "leader-election",
        100,
        BY_USER,
        {
            "subjects": _users(_KCM, _SCHEDULER) + _kube_system_sa(_ALL),
            "resourceRules": [
                _resource_rule(_ELECTION, ["coordination.k8s.io"], ["leases"], [_ALL], False)
            ],
        },
    ),
    _flow_schema(
        "endpoint-controller",
        "workload-high",
        150,
        BY_USER,
        {
            "subjects": _users(_KCM)
            + _kube_system_sa("endpoint-controller", "endpointslicemirroring-controller"),
            "resourceRules": [_resource_rule(_ELECTION, [""], ["endpoints"], [_ALL], False)],
        },
    ),
    _flow_schema(
        "workload-leader-election",
        "leader-election",
        200,
        BY_USER,
        {
            "subjects": _kube_system_sa(_ALL),
            "resourceRules": [
                _resource_rule(_ELECTION, [""], ["endpoints", "configmaps"], [_ALL], False),
                _resource_rule(_ELECTION, ["coordination.k8s.io"], ["leases"], [_ALL], False),
            ],
        },
    ),
    _flow_schema(
        "system-node-high",
        "node-high",
        400,
        BY_USER,
        {
            "subjects": _groups(_NODES),
            "resourceRules": [
                _resource_rule([_ALL], [""], ["nodes", "nodes/status"], [_ALL], True),
                _resource_rule([_ALL], ["coordination.k8s.io"], ["leases"], [_ALL], False),
            ],
        },
    ),
    _flow_schema("system-nodes", "system", 500, BY_USER, _all_of(_groups(_NODES))),
    _flow_schema(
        "kube-controller-manager", "workload-high", 800, BY_NAMESPACE, _all_of(_users(_KCM))
    ),
    _flow_schema("kube-scheduler", "workload-high", 800, BY_NAMESPACE, _all_of(_users(_SCHEDULER))),
    _flow_schema(
        "kube-system-service-accounts",
        "workload-high",
        900,
        BY_NAMESPACE,
        _all_of(_kube_system_sa(_ALL)),
    ),
    _flow_schema(
        "service-accounts", "workload-low", 9000, BY_USER, _all_of(_groups(_SERVICE_ACCOUNTS))
    ),
    _flow_schema(
        "global-default",
        "global-default",
        9900,
        BY_USER,
        _all_of(_groups(_UNAUTHENTICATED, _AUTHENTICATED)),
    ),
)
MANDATORY_NAMES = frozenset({EXEMPT, CATCH_ALL})


def bootstrap_objects() -> list[JSON]:
    """Every mandatory and suggested object, levels first (copies)."""
    return copy.deepcopy(
        [
            *MANDATORY_PRIORITY_LEVELS,
            *SUGGESTED_PRIORITY_LEVELS,
            *MANDATORY_FLOW_SCHEMAS,
            *SUGGESTED_FLOW_SCHEMAS,
        ]
    )


# --------------------------------------------------------------------------- defaults


def default_flow_schema(obj: JSON) -> JSON:
    """v1's SetDefaults_FlowSchemaSpec: matchingPrecedence 1000 when unset (in place)."""
    spec = obj.get("spec")
    if isinstance(spec, dict) and not spec.get("matchingPrecedence"):
        spec["matchingPrecedence"] = DEFAULT_MATCHING_PRECEDENCE
    return obj


def default_priority_level(obj: JSON) -> JSON:
    """v1's defaults of a level: shares 30 (0 when exempt), lendablePercent 0, and a
    queuing configuration of 64 queues, hand 8, length 50 (in place)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return obj
    exempt = spec.get("exempt")
    if spec.get("type") == "Exempt" and exempt is None:
        exempt = spec["exempt"] = {}
    if isinstance(exempt, dict):
        exempt.setdefault("nominalConcurrencyShares", 0)
        exempt.setdefault("lendablePercent", 0)
    limited = spec.get("limited")
    if isinstance(limited, dict):
        limited.setdefault("nominalConcurrencyShares", DEFAULT_NOMINAL_CONCURRENCY_SHARES)
        limited.setdefault("lendablePercent", 0)
        response = limited.get("limitResponse")
        if isinstance(response, dict) and response.get("type") == QUEUE:
            queuing = response.setdefault("queuing", {})
            if isinstance(queuing, dict):
                if not queuing.get("queues"):
                    queuing["queues"] = DEFAULT_QUEUES
                if not queuing.get("handSize"):
                    queuing["handSize"] = DEFAULT_HAND_SIZE
                if not queuing.get("queueLengthLimit"):
                    queuing["queueLengthLimit"] = DEFAULT_QUEUE_LENGTH_LIMIT
    return obj


# --------------------------------------------------------------------------- validation


def validate_flow_schema(obj: JSON) -> list[FieldError]:
    """The parts of upstream's ValidateFlowSchema the schema does not already cover."""
    errs: list[FieldError] = []
    spec = obj.get("spec") or {}
    if not str((spec.get("priorityLevelConfiguration") or {}).get("name") or ""):
        errs.append(FieldError(FieldErrorType.REQUIRED, "spec.priorityLevelConfiguration.name"))
    precedence = spec.get("matchingPrecedence")
    if isinstance(precedence, int) and not 1 <= precedence <= 10000:
        errs.append(
            FieldError(
                FieldErrorType.INVALID,
                "spec.matchingPrecedence",
                precedence,
                "must be between 1 and 10000 inclusively",
            )
        )
    method = spec.get("distinguisherMethod")
    if isinstance(method, dict) and method.get("type") not in (BY_USER, BY_NAMESPACE):
        errs.append(
            FieldError(
                FieldErrorType.NOT_SUPPORTED,
                "spec.distinguisherMethod.type",
                method.get("type"),
                f'supported values: "{BY_NAMESPACE}", "{BY_USER}"',
            )
        )
    for i, rule in enumerate(spec.get("rules") or []):
        if isinstance(rule, dict) and not rule.get("subjects"):
            errs.append(FieldError(FieldErrorType.REQUIRED, f"spec.rules[{i}].subjects"))
        if (
            isinstance(rule, dict)
            and not rule.get("resourceRules")
            and not rule.get("nonResourceRules")
        ):
            errs.append(
                FieldError(
                    FieldErrorType.REQUIRED,
                    f"spec.rules[{i}]",
                    detail="at least one of resourceRules and nonResourceRules has to be non-empty",
                )
            )
    return errs


def validate_priority_level(obj: JSON) -> list[FieldError]:
    """The parts of upstream's ValidatePriorityLevelConfiguration the schema does not cover."""
    errs: list[FieldError] = []
    spec = obj.get("spec") or {}
    kind = spec.get("type")
    name = (obj.get("metadata") or {}).get("name")
    if kind not in ("Exempt", LIMITED):
        return [
            FieldError(
                FieldErrorType.NOT_SUPPORTED,
                "spec.type",
                kind,
                f'supported values: "Exempt", "{LIMITED}"',
            )
        ]
    if (name == EXEMPT) != (kind == "Exempt"):
        errs.append(
            FieldError(
                FieldErrorType.INVALID, "spec.type", kind, "must be 'Exempt' if and only if "
                "`name` is 'exempt'"
            )
        )  # fmt: skip
    if kind == LIMITED:
        limited = spec.get("limited")
        if not isinstance(limited, dict):
            return [
                *errs,
                FieldError(
                    FieldErrorType.REQUIRED, "spec.limited", detail="must not be empty when "
                    "type is Limited"
                ),
            ]  # fmt: skip
        if spec.get("exempt") is not None:
            errs.append(
                FieldError(
                    FieldErrorType.FORBIDDEN, "spec.exempt", detail="must be nil if the type is "
                    "Limited"
                )
            )  # fmt: skip
        lendable = limited.get("lendablePercent")
        if isinstance(lendable, int) and not 0 <= lendable <= 100:
            errs.append(
                FieldError(
                    FieldErrorType.INVALID,
                    "spec.limited.lendablePercent",
                    lendable,
                    "must be between 0 and 100, inclusive",
                )
            )
        response = limited.get("limitResponse") or {}
        if response.get("type") not in (QUEUE, REJECT):
            errs.append(
                FieldError(
                    FieldErrorType.NOT_SUPPORTED,
                    "spec.limited.limitResponse.type",
                    response.get("type"),
                    f'supported values: "{QUEUE}", "{REJECT}"',
                )
            )
        queuing = response.get("queuing")
        if response.get("type") == REJECT and queuing is not None:
            errs.append(
                FieldError(
                    FieldErrorType.FORBIDDEN,
                    "spec.limited.limitResponse.queuing",
                    detail="must be nil if limited.limitResponse.type is not Limited",
                )
            )
        if response.get("type") == QUEUE and isinstance(queuing, dict):
            errs += _validate_queuing(queuing)
    return errs


def _validate_queuing(q: JSON) -> list[FieldError]:
    path = "spec.limited.limitResponse.queuing"
    errs: list[FieldError] = []
    queues, hand, length = q.get("queues"), q.get("handSize"), q.get("queueLengthLimit")
    for field, value in (("queueLengthLimit", length), ("queues", queues), ("handSize", hand)):
        if isinstance(value, int) and value <= 0:
            errs.append(
                FieldError(FieldErrorType.INVALID, f"{path}.{field}", value, "must be positive")
            )
    if isinstance(queues, int) and isinstance(hand, int) and 0 < queues < hand:
        errs.append(
            FieldError(
                FieldErrorType.INVALID,
                f"{path}.handSize",
                hand,
                f"should not be greater than queues ({queues})",
            )
        )
    return errs


# --------------------------------------------------------------------------- matching


@dataclass(frozen=True, slots=True)
class RequestDigest:
    """What classification looks at: the request's attributes and its user."""

    user: str
    groups: tuple[str, ...]
    verb: str
    resource_request: bool
    path: str = ""
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""


def _has(values: Iterable[Any] | None, value: str) -> bool:
    found = list(values or ())
    return _ALL in found or value in found


def _subject_matches(subject: Mapping[str, Any], d: RequestDigest) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        name = (subject.get("user") or {}).get("name")
        return name == _ALL or name == d.user
    if kind == "Group":
        name = (subject.get("group") or {}).get("name")
        return name == _ALL or name in d.groups
    if kind == "ServiceAccount":
        sa = subject.get("serviceAccount") or {}
        if not d.user.startswith(_SA_PREFIX):
            return False
        namespace, _, name = d.user[len(_SA_PREFIX) :].partition(":")
        return namespace == sa.get("namespace") and sa.get("name") in (_ALL, name)
    return False


def _resource_rule_matches(rule: Mapping[str, Any], d: RequestDigest) -> bool:
    if not _has(rule.get("verbs"), d.verb) or not _has(rule.get("apiGroups"), d.group):
        return False
    resource = f"{d.resource}/{d.subresource}" if d.subresource else d.resource
    if not _has(rule.get("resources"), resource):
        return False
    if not d.namespace:
        return bool(rule.get("clusterScope"))
    return _has(rule.get("namespaces"), d.namespace)


def _url_matches(patterns: Iterable[str], path: str) -> bool:
    for pattern in patterns or ():
        if pattern in (_ALL, path):
            return True
        if pattern.endswith("/*"):
            prefix = pattern[:-1]
            if path.startswith(prefix) or path == prefix[:-1]:
                return True
    return False


def rules_match(rules: Iterable[Mapping[str, Any]], d: RequestDigest) -> bool:
    """Whether any PolicyRulesWithSubjects of a FlowSchema matches the request."""
    for rule in rules or ():
        if not isinstance(rule, Mapping):
            continue
        if not any(
            _subject_matches(s, d) for s in rule.get("subjects") or () if isinstance(s, Mapping)
        ):
            continue
        if d.resource_request:
            if any(
                _resource_rule_matches(r, d)
                for r in rule.get("resourceRules") or ()
                if isinstance(r, Mapping)
            ):
                return True
        elif any(
            _has(r.get("verbs"), d.verb) and _url_matches(r.get("nonResourceURLs") or (), d.path)
            for r in rule.get("nonResourceRules") or ()
            if isinstance(r, Mapping)
        ):
            return True
    return False


def distinguisher(flow_schema: Mapping[str, Any], d: RequestDigest) -> str:
    """The flow's distinguisher: the user name, the namespace, or nothing."""
    method = ((flow_schema.get("spec") or {}).get("distinguisherMethod") or {}).get("type")
    if method == BY_USER:
        return d.user
    if method == BY_NAMESPACE:
        return d.namespace
    return ""


def flow_hash(flow_schema: str, distinguisher: str) -> int:
    """The 64-bit flow identifier upstream deals hands from (sha256 of both names)."""
    digest = hashlib.sha256(flow_schema.encode() + b"\x00" + distinguisher.encode()).digest()
    return int.from_bytes(digest[:8], "little")


def deal(hash_value: int, deck: int, hand: int) -> list[int]:
    """Shuffle sharding: ``hand`` distinct queue indexes out of ``deck``, from the flow's hash.

    Each position takes a remainder of the hash by the deck size still left, then the
    picks are made distinct by stepping over the cards dealt before them, so flows that
    share one queue seldom share the others."""
    hand = min(hand, deck)
    remainders = []
    for i in range(hand):
        hash_value, r = divmod(hash_value, deck - i)
        remainders.append(r)
    cards: list[int] = []
    for i, card in enumerate(remainders):
        for j in range(i, 0, -1):
            if card >= remainders[j - 1]:
                card += 1
        cards.append(card)
    return cards


# --------------------------------------------------------------------------- shares


def shares(level: Mapping[str, Any]) -> int:
    """A level's nominalConcurrencyShares (exempt levels' count too, usually 0)."""
    spec = level.get("spec") or {}
    body = spec.get("limited") if spec.get("type") == LIMITED else spec.get("exempt")
    value = (body or {}).get("nominalConcurrencyShares")
    if value is None:
        return DEFAULT_NOMINAL_CONCURRENCY_SHARES if spec.get("type") == LIMITED else 0
    return int(value)


def nominal_limits(server_limit: int, levels: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Each level's NominalCL: ceil(serverCL * its shares / every level's shares)."""
    levels = list(levels)
    total = sum(shares(level) for level in levels)
    out: dict[str, int] = {}
    for level in levels:
        name = level["metadata"]["name"]
        out[name] = math.ceil(server_limit * shares(level) / total) if total else 0
    return out
