"""The create-only "virtual" APIs: access reviews, who-am-I, TokenReview, TokenRequest and
pod eviction.

Why a module of their own: none of these creates a stored object. A POST either computes
an answer from the request -- the caller's identity (SelfSubjectReview), the authorizer's
verdict (the four access reviews), what a token proves (TokenReview), a freshly signed
token (serviceaccounts/token) -- or acts on *other* objects (pods/eviction charges a
PodDisruptionBudget and deletes the pod), and returns the result. The review resources
are marked ``stored=False`` in the registry and :meth:`ResourceHandlers.serve` sends them,
and the two subresources, here; nothing posted to them ever reaches storage. Upstream keeps
each in its own REST storage (``pkg/registry/authorization``, ``authentication``,
``core/pod/storage/eviction.go``, ``core/serviceaccount/storage/token.go``); the checks,
status codes and messages below are theirs (v1.32).

The seams, so later work plugs in without touching this module:

* Authorization: every access review asks ``server.authorizer`` exactly as the request
  path does, so whatever is plugged in there (RBAC, later) answers ``kubectl auth can-i``.
  ``kubectl auth can-i --list`` needs the *rules* a user holds: an authorizer that can
  enumerate them implements :class:`RuleResolver` (``async rules_for(user, namespace)``),
  as upstream's RBAC implements ``authorizer.RuleResolver``; :func:`rules_for` answers for
  the stand-in authorizers of :mod:`.authz` and marks anything else ``incomplete``.
* Authentication: TokenReview runs ``server.authenticator`` over a request carrying nothing
  but ``Authorization: Bearer <token>`` -- upstream's own trick -- so every token
  authenticator in the chain answers in its usual order and no TLS client certificate of
  the *caller* can leak into the verdict.
* Signing: TokenRequest signs with the service-account key of ``server.pki``; a server
  built without a PKI answers 503.

Errors are :class:`~pyk8s.api.errors.StatusError`; a Status carrying
``details.retryAfterSeconds`` is answered with a ``Retry-After`` header (by the server's
shared Status writer, :func:`~pyk8s.apiserver.encoding.status_response`), as upstream's
response writer does (client-go backs off on it; ``kubectl drain`` retries evictions).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

import jwt
import orjson
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from pyk8s.api import errors
from pyk8s.api.registry import Resource
from pyk8s.api.selectors import SelectorError, label_selector_from_dict
from pyk8s.apiserver import encoding
from pyk8s.apiserver.authn import (
    ALL_AUTHENTICATED,
    REQUEST_USER,
    SERVICE_ACCOUNT_ISSUER,
    AuthenticationFailed,
    ServiceAccountTokenAuthenticator,
    UserInfo,
    issue_service_account_token,
)
from pyk8s.apiserver.authz import (
    AlwaysAllow,
    AlwaysAllowAuthenticated,
    Authorizer,
    AuthorizerChain,
    Decision,
    PrivilegedGroups,
    RequestAttributes,
)
from pyk8s.apiserver.requestinfo import RequestInfo
from pyk8s.apiserver.rest import DeleteOptions, from_kv, now, timestamp
from pyk8s.storage import KeyValue

if TYPE_CHECKING:
    from pyk8s.apiserver.handlers import ResourceHandlers

__all__ = [
    "ALL_RULES",
    "API_AUDIENCES",
    "SUBRESOURCES",
    "NonResourceRule",
    "ResourceRule",
    "RuleResolver",
    "Rules",
    "rules_for",
    "serve",
]

JSON = dict[str, Any]

#: subresources of stored resources that this module serves (pods/eviction, serviceaccounts/token)
SUBRESOURCES = frozenset({"eviction", "token"})

#: the API server's own audiences (upstream's ``--api-audiences``, defaulting to the issuer)
API_AUDIENCES: tuple[str, ...] = (SERVICE_ACCOUNT_ISSUER,)

#: TokenRequest: default lifetime (SetDefaults_TokenRequestSpec) and validation bounds
DEFAULT_TOKEN_SECONDS = 3600
MIN_TOKEN_SECONDS = 600
MAX_TOKEN_SECONDS = 1 << 32

#: eviction: conflict retries (upstream's EvictionsRetry takes 20 steps, 500 ms apart; a
#: conflict here is another writer of the same key, so a short pause does) and the largest
#: status.disruptedPods map before the PDB controller must catch up
EVICTION_RETRIES = 20
EVICTION_RETRY_DELAY = 0.05
MAX_DISRUPTED_PODS = 2000

_VIOLATES_BUDGET = "Cannot evict pod as it would violate the pod's disruption budget."


# --------------------------------------------------------------------------- entry point


async def serve(
    handlers: ResourceHandlers, request: web.Request, info: RequestInfo, r: Resource
) -> web.Response:
    """Answer a POST to a virtual resource or to pods/eviction, serviceaccounts/token."""
    if info.verb != "create":
        raise errors.method_not_allowed(
            "the server does not allow this method on the requested resource"
        )
    _dry_run_values(request)  # validated for every create, as upstream's handler does
    if info.subresource == "eviction" and r.group == "" and r.plural == "pods":
        return _created(await _evict(handlers, request, info, r))
    if info.subresource == "token" and r.group == "" and r.plural == "serviceaccounts":
        return _created(await _token_request(handlers, request, info))
    if info.subresource or r.stored:
        raise errors.no_such_resource()
    review = _REVIEWS.get((r.group, r.plural))
    if review is None:
        raise errors.no_such_resource()
    obj = _object(await _read_body(request), {r.api_version: r.kind}, info, r.namespaced)
    return _created(await review(handlers, request, info, obj))


def _created(obj: JSON) -> web.Response:
    """201, as upstream's create handler answers (a Status keeps its own failure code)."""
    if obj.get("kind") == "Status" and obj.get("status") == "Failure":
        return encoding.json_response(obj, int(obj.get("code") or 500))
    return encoding.json_response(obj, 201)


def _success() -> JSON:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


# --------------------------------------------------------------------------- decoding


async def _read_body(request: web.Request) -> Any:
    body = await encoding.read_body(request)
    return encoding.decode_body(body, request.headers.get("Content-Type"))


def _object(data: Any, accepted: dict[str, str], info: RequestInfo, namespaced: bool) -> JSON:
    """The posted object, checked against the kinds the endpoint accepts (apiVersion ->
    kind; the first is the default) and with the request's namespace filled in, as
    upstream's create handler does."""
    if not isinstance(data, dict):
        raise errors.bad_request("the body of the request must be a JSON object")
    encoding.check_type_meta(data)
    default_version, default_kind = next(iter(accepted.items()))
    api_version = data.get("apiVersion") or default_version
    kind = data.get("kind") or default_kind
    if api_version not in accepted:
        raise errors.bad_request(
            f"the API version in the data ({api_version}) does not match the expected API "
            f"version ({default_version})"
        )
    if kind != accepted[api_version]:
        raise errors.bad_request(
            f"the kind in the data ({kind}) does not match the expected kind ({default_kind})"
        )
    group, _, version = api_version.rpartition("/")
    encoding.check_types(data, group, version, kind)
    data["apiVersion"], data["kind"] = api_version, kind
    meta = data.get("metadata")
    if meta is None:
        data["metadata"] = meta = {}
    if not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    meta.setdefault("creationTimestamp", None)  # what Go's ObjectMeta always marshals
    if namespaced and info.namespace:
        ns = meta.get("namespace")
        if ns and ns != info.namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match "
                "the namespace sent on the request"
            )
        meta["namespace"] = info.namespace
    return data


def _dry_run_values(request: web.Request) -> list[str]:
    values = [v for v in request.query.getall("dryRun", []) if v]
    for v in values:
        if v != "All":
            raise errors.bad_request(f'unsupported dryRun value "{v}"; supported values: "All"')
    return values


def _dict(value: Any, path: str) -> JSON:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errors.bad_request(f"{path}: expected an object, got {_type_name(value)}")
    return value


def _str(obj: JSON, key: str, path: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise errors.bad_request(f"{path}.{key}: expected a string, got {_type_name(value)}")
    return value


def _strings(obj: JSON, key: str, path: str) -> list[str]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise errors.bad_request(f"{path}.{key}: expected a list of strings")
    return list(value)


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )


def _user(request: web.Request) -> UserInfo:
    user = request.get(REQUEST_USER)
    if not isinstance(user, UserInfo):
        raise errors.bad_request("no user present on request")
    return user


# --------------------------------------------------------------------------- access reviews


def _zero(value: Any) -> bool:
    return value in (None, "", 0, False, [], {})


def _meta_problems(meta: JSON, *, keep_namespace: bool = False) -> list[errors.FieldError]:
    """Reviews carry no object metadata (upstream: ObjectMeta must equal the zero value)."""
    ignored = {"managedFields"} | ({"namespace"} if keep_namespace else set())
    if all(_zero(v) for k, v in meta.items() if k not in ignored):
        return []
    detail = "must be empty except for namespace" if keep_namespace else "must be empty"
    return [errors.invalid("metadata", meta, detail)]


def _access_spec_problems(spec: JSON, *, subject: bool) -> list[errors.FieldError]:
    """ValidateSubjectAccessReviewSpec / ValidateSelfSubjectAccessReviewSpec."""
    problems: list[errors.FieldError] = []
    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    if resource is not None and non_resource is not None:
        problems.append(
            errors.invalid(
                "spec.nonResourceAttributes",
                non_resource,
                "cannot be specified in combination with resourceAttributes",
            )
        )
    if resource is None and non_resource is None:
        problems.append(
            errors.invalid(
                "spec.resourceAttributes",
                None,
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )
        )
    if subject and not spec.get("user") and not spec.get("groups"):
        problems.append(
            errors.invalid(
                "spec.user",
                spec.get("user") or "",
                "at least one of user or group must be specified",
            )
        )
    return problems


def _attributes(spec: JSON) -> RequestAttributes:
    """upstream's ResourceAttributesFrom / NonResourceAttributesFrom."""
    resource = spec.get("resourceAttributes")
    if resource is not None:
        ra = _dict(resource, "spec.resourceAttributes")
        p = "spec.resourceAttributes"
        return RequestAttributes(
            verb=_str(ra, "verb", p),
            api_group=_str(ra, "group", p),
            resource=_str(ra, "resource", p),
            subresource=_str(ra, "subresource", p),
            namespace=_str(ra, "namespace", p),
            name=_str(ra, "name", p),
            resource_request=True,
            api_version=_str(ra, "version", p) or "*",  # an empty version matches all
        )
    nra = _dict(spec.get("nonResourceAttributes"), "spec.nonResourceAttributes")
    p = "spec.nonResourceAttributes"
    return RequestAttributes(
        verb=_str(nra, "verb", p), path=_str(nra, "path", p), resource_request=False
    )


def _access_status(decision: Decision) -> JSON:
    status: JSON = {"allowed": decision.allowed}
    if not decision.allowed and not decision.no_opinion:
        status["denied"] = True
    if decision.reason:
        status["reason"] = decision.reason
    return status


def _subject(spec: JSON) -> UserInfo:
    """The user a SubjectAccessReview asks about, exactly as given (no implicit groups)."""
    extra_raw = _dict(spec.get("extra"), "spec.extra")
    extra: dict[str, tuple[str, ...]] = {}
    for key in extra_raw:
        extra[key] = tuple(_strings(extra_raw, key, "spec.extra"))
    return UserInfo(
        name=_str(spec, "user", "spec"),
        uid=_str(spec, "uid", "spec"),
        groups=tuple(_strings(spec, "groups", "spec")),
        extra=extra,
    )


async def _self_subject_access_review(
    h: ResourceHandlers, request: web.Request, info: RequestInfo, obj: JSON
) -> JSON:
    spec = obj["spec"] = _dict(obj.get("spec"), "spec")
    problems = _access_spec_problems(spec, subject=False) + _meta_problems(obj["metadata"])
    if problems:
        raise errors.invalid_object("SelfSubjectAccessReview", "", problems, "authorization.k8s.io")
    decision = await h.server.authorizer.authorize(_user(request), _attributes(spec))
    obj["status"] = _access_status(decision)
    return obj


async def _subject_access_review(
    h: ResourceHandlers, request: web.Request, info: RequestInfo, obj: JSON
) -> JSON:
    spec = obj["spec"] = _dict(obj.get("spec"), "spec")
    problems = _access_spec_problems(spec, subject=True) + _meta_problems(obj["metadata"])
    if problems:
        raise errors.invalid_object("SubjectAccessReview", "", problems, "authorization.k8s.io")
    decision = await h.server.authorizer.authorize(_subject(spec), _attributes(spec))
    obj["status"] = _access_status(decision)
    return obj


async def _local_subject_access_review(
    h: ResourceHandlers, request: web.Request, info: RequestInfo, obj: JSON
) -> JSON:
    spec = obj["spec"] = _dict(obj.get("spec"), "spec")
    meta = obj["metadata"]
    namespace = str(meta.get("namespace") or "")
    problems = _access_spec_problems(spec, subject=True)
    problems += _meta_problems(meta, keep_namespace=True)
    resource = spec.get("resourceAttributes")
    if isinstance(resource, dict) and (resource.get("namespace") or "") != namespace:
        problems.append(
            errors.invalid(
                "spec.resourceAttributes.namespace",
                resource.get("namespace") or "",
                "must match metadata.namespace",
            )
        )
    if spec.get("nonResourceAttributes") is not None:
        problems.append(
            errors.invalid(
                "spec.nonResourceAttributes",
                spec["nonResourceAttributes"],
                "disallowed on this kind of request",
            )
        )
    if problems:
        raise errors.invalid_object(
            "LocalSubjectAccessReview", "", problems, "authorization.k8s.io"
        )
    if not info.namespace:
        raise errors.bad_request("namespace is required on this type: ")
    if namespace != info.namespace:
        raise errors.bad_request(
            f"spec.resourceAttributes.namespace must match namespace: {info.namespace}"
        )
    decision = await h.server.authorizer.authorize(_subject(spec), _attributes(spec))
    obj["status"] = _access_status(decision)
    return obj


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class ResourceRule:
    """What a user may do to resources (upstream's ``authorizer.ResourceRuleInfo``)."""

    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()

    def to_json(self) -> JSON:
        out: JSON = {"verbs": list(self.verbs)}
        if self.api_groups:
            out["apiGroups"] = list(self.api_groups)
        if self.resources:
            out["resources"] = list(self.resources)
        if self.resource_names:
            out["resourceNames"] = list(self.resource_names)
        return out


@dataclass(frozen=True, slots=True)
class NonResourceRule:
    """What a user may do to non-resource URLs (``authorizer.NonResourceRuleInfo``)."""

    verbs: tuple[str, ...]
    non_resource_urls: tuple[str, ...] = ()

    def to_json(self) -> JSON:
        out: JSON = {"verbs": list(self.verbs)}
        if self.non_resource_urls:
            out["nonResourceURLs"] = list(self.non_resource_urls)
        return out


@dataclass(frozen=True, slots=True)
class Rules:
    """A user's rules in one namespace; ``incomplete`` when some authorizer could not say."""

    resource_rules: tuple[ResourceRule, ...] = ()
    non_resource_rules: tuple[NonResourceRule, ...] = ()
    incomplete: bool = False
    evaluation_error: str = ""

    def status(self) -> JSON:
        """A SubjectRulesReviewStatus."""
        out: JSON = {
            "resourceRules": [r.to_json() for r in self.resource_rules],
            "nonResourceRules": [r.to_json() for r in self.non_resource_rules],
            "incomplete": self.incomplete,
        }
        if self.evaluation_error:
            out["evaluationError"] = self.evaluation_error
        return out


#: everything: what upstream's AlwaysAllow authorizer reports
ALL_RULES = Rules(
    (ResourceRule(("*",), ("*",), ("*",)),),
    (NonResourceRule(("*",), ("*",)),),
)


@runtime_checkable
class RuleResolver(Protocol):
    """An authorizer that can list a user's rules (upstream's ``authorizer.RuleResolver``).

    RBAC implements it; ``kubectl auth can-i --list`` shows what it returns."""

    async def rules_for(self, user: UserInfo, namespace: str) -> Rules: ...


async def rules_for(authorizer: Authorizer, user: UserInfo, namespace: str) -> Rules:
    """The rules ``user`` holds in ``namespace`` according to ``authorizer``.

    A :class:`RuleResolver` answers for itself; a chain is the union of its members (as
    upstream's union resolver); the all-or-nothing stand-ins of :mod:`.authz` are asked
    one wildcard question (the privileged-groups one contributes nothing, as upstream's);
    any other authorizer makes the answer ``incomplete``.
    """
    if isinstance(authorizer, RuleResolver):
        return await authorizer.rules_for(user, namespace)
    if isinstance(authorizer, AuthorizerChain):
        # the chain keeps its members private; this goes once it resolves rules itself
        members: tuple[Authorizer, ...] = getattr(authorizer, "_authorizers", ())
        parts = [await rules_for(a, user, namespace) for a in members]
        return Rules(
            tuple(r for p in parts for r in p.resource_rules),
            tuple(r for p in parts for r in p.non_resource_rules),
            any(p.incomplete for p in parts),
            ", ".join(p.evaluation_error for p in parts if p.evaluation_error),
        )
    if isinstance(authorizer, PrivilegedGroups):
        return Rules()  # as upstream: system:masters' rules come from its RBAC binding
    if isinstance(authorizer, AlwaysAllow | AlwaysAllowAuthenticated):
        everything = RequestAttributes(
            verb="*", api_group="*", resource="*", namespace=namespace, api_version="*"
        )
        decision = await authorizer.authorize(user, everything)
        return ALL_RULES if decision.allowed else Rules()
    return Rules(
        incomplete=True,
        evaluation_error=f"{type(authorizer).__name__} does not support user rule resolution",
    )


async def _self_subject_rules_review(
    h: ResourceHandlers, request: web.Request, info: RequestInfo, obj: JSON
) -> JSON:
    user = _user(request)
    namespace = _str(_dict(obj.get("spec"), "spec"), "namespace", "spec")
    if not namespace:
        raise errors.bad_request("no namespace on request")
    rules = await rules_for(h.server.authorizer, user, namespace)
    # upstream answers a new object: empty metadata and spec, only the status
    return {
        "kind": obj["kind"],
        "apiVersion": obj["apiVersion"],
        "metadata": {"creationTimestamp": None},
        "spec": {},
        "status": rules.status(),
    }


# --------------------------------------------------------------------------- authentication


def _user_info(user: UserInfo) -> JSON:
    """authentication/v1 UserInfo: every field omitempty."""
    out: JSON = {}
    if user.name:
        out["username"] = user.name
    if user.uid:
        out["uid"] = user.uid
    if user.groups:
        out["groups"] = list(user.groups)
    if user.extra:
        out["extra"] = {k: list(v) for k, v in sorted(user.extra.items())}
    return out


async def _self_subject_review(
    h: ResourceHandlers, request: web.Request, info: RequestInfo, obj: JSON
) -> JSON:
    return {
        "kind": obj["kind"],
        "apiVersion": obj["apiVersion"],
        "metadata": {"creationTimestamp": timestamp()},
        "status": {"userInfo": _user_info(_user(request))},
    }


class _BearerOnlyRequest:
    """What upstream's TokenReview authenticates: a request carrying nothing but the token
    (no transport, so no TLS client certificate -- the caller's -- can answer instead)."""

    transport: None = None

    def __init__(self, token: str) -> None:
        self.headers = CIMultiDictProxy(CIMultiDict({"Authorization": f"Bearer {token}"}))


def _unverified_claims(token: str) -> JSON | None:
    """A JWT's claims without checking anything (None when it is not a JWT)."""
    if token.count(".") != 2:
        return None
    try:
        claims: JSON = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    return claims


def _token_audiences(claims: JSON) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list):
        return [a for a in aud if isinstance(a, str)]
    return []


def _intersect(first: Sequence[str], second: Sequence[str]) -> list[str]:
    """upstream's Audiences.Intersect: the members of ``first`` also in ``second``."""
    return [a for a in first if a in second]


def _with_authenticated(user: UserInfo) -> UserInfo:
    if ALL_AUTHENTICATED in user.groups:
        return user
    return dataclasses.replace(user, groups=(*user.groups, ALL_AUTHENTICATED))


async def _authenticate_token(
    h: ResourceHandlers, token: str, wanted: list[str]
) -> tuple[UserInfo | None, list[str], str]:
    """(user, audiences, error) for a token, for the audiences a TokenReview wants."""
    authenticator = h.server.authenticator
    if authenticator is None:
        return None, [], ""  # upstream: no token authenticator, nothing authenticated
    claims = _unverified_claims(token)
    service_account = claims is not None and claims.get("iss") == SERVICE_ACCOUNT_ISSUER
    try:
        if _intersect(wanted, API_AUDIENCES):
            # the server's own audiences: exactly what a request with this token would get
            fake = cast(web.Request, _BearerOnlyRequest(token))
            user = await authenticator.authenticate(fake)
        elif service_account and h.server.pki is not None:
            # other audiences: only audience-aware service-account tokens can be valid
            sa = ServiceAccountTokenAuthenticator(
                h.server.pki,
                audiences=wanted,
                service_account_lookup=lambda ns, name: _uid_of(h, "serviceaccounts", ns, name),
                pod_lookup=lambda ns, name: _uid_of(h, "pods", ns, name),
            )
            found = await sa.authenticate_token(token)
            user = _with_authenticated(found) if found is not None else None
        else:
            user = None  # audience-agnostic tokens are only good for the API server
    except AuthenticationFailed as err:
        return None, [], err.detail
    if user is None:
        return None, [], "invalid bearer token"
    if service_account and claims is not None and user.name.startswith("system:serviceaccount:"):
        audiences = _intersect(_token_audiences(claims), wanted)
        if not audiences:
            return (
                None,
                [],
                f"token audiences {_go_list(_token_audiences(claims))} is invalid for the "
                f"target audiences {_go_list(wanted)}",
            )
    else:
        audiences = _intersect(API_AUDIENCES, wanted)
    return user, audiences, ""


def _go_list(items: Sequence[str]) -> str:
    return "[" + " ".join(orjson.dumps(i).decode() for i in items) + "]"


async def _uid_of(h: ResourceHandlers, plural: str, namespace: str, name: str) -> str | None:
    obj = await h.lookup(plural, "", namespace, name)
    return None if obj is None else str((obj.get("metadata") or {}).get("uid") or "")


async def _token_review(
    h: ResourceHandlers, request: web.Request, info: RequestInfo, obj: JSON
) -> JSON:
    spec = obj["spec"] = _dict(obj.get("spec"), "spec")
    token = _str(spec, "token", "spec")
    if not token:
        raise errors.bad_request("token is required for TokenReview in authentication")
    wanted = _strings(spec, "audiences", "spec") or list(API_AUDIENCES)
    user, audiences, error = await _authenticate_token(h, token, wanted)
    status: JSON = {}
    if user is not None:
        status["authenticated"] = True
    # Go's UserInfo struct is always marshalled, even empty
    status["user"] = _user_info(user) if user is not None else {}
    if user is not None and audiences:
        status["audiences"] = audiences
    if error:
        status["error"] = error
    obj["status"] = status
    return obj


_Review = Callable[["ResourceHandlers", web.Request, RequestInfo, JSON], Awaitable[JSON]]
_REVIEWS: dict[tuple[str, str], _Review] = {
    ("authorization.k8s.io", "selfsubjectaccessreviews"): _self_subject_access_review,
    ("authorization.k8s.io", "subjectaccessreviews"): _subject_access_review,
    ("authorization.k8s.io", "localsubjectaccessreviews"): _local_subject_access_review,
    ("authorization.k8s.io", "selfsubjectrulesreviews"): _self_subject_rules_review,
    ("authentication.k8s.io", "selfsubjectreviews"): _self_subject_review,
    ("authentication.k8s.io", "tokenreviews"): _token_review,
}


# --------------------------------------------------------------------------- TokenRequest


def _resource(h: ResourceHandlers, group: str, plural: str) -> Resource:
    r = h.registry.get(group, "v1", plural)
    if r is None:
        raise errors.internal(f"{plural} is not in the resource registry")
    return r


async def _get(h: ResourceHandlers, plural: str, namespace: str, name: str) -> JSON:
    """A core object, 404 with upstream's message when absent."""
    return await h.rest(_resource(h, "", plural)).get(namespace, name)


def _uid(obj: JSON) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


async def _token_request(h: ResourceHandlers, request: web.Request, info: RequestInfo) -> JSON:
    kind, group = "TokenRequest", "authentication.k8s.io"
    obj = _object(await _read_body(request), {f"{group}/v1": kind}, info, namespaced=True)
    pki = h.server.pki
    if pki is None:
        raise errors.service_unavailable(
            "serviceaccounts/token is unavailable: this API server was started without a "
            "service-account signing key (no PKI)"
        )
    namespace, name = info.namespace, info.name
    meta = obj["metadata"]
    if meta.get("name") and meta["name"] != name:
        raise errors.invalid_object(
            kind,
            name,
            [
                errors.invalid(
                    "metadata.name",
                    meta["name"],
                    "must match the service account name if specified",
                )
            ],
            group,
        )
    sa = await _get(h, "serviceaccounts", namespace, name)
    spec = obj["spec"] = _dict(obj.get("spec"), "spec")
    if not _strings(spec, "audiences", "spec"):
        spec["audiences"] = list(API_AUDIENCES)
    seconds = spec.get("expirationSeconds")
    if seconds is None:
        seconds = spec["expirationSeconds"] = DEFAULT_TOKEN_SECONDS
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise errors.bad_request(
            f"spec.expirationSeconds: expected an integer, got {_type_name(seconds)}"
        )
    spec.setdefault("boundObjectRef", None)
    meta["name"], meta["namespace"] = name, namespace
    issued = now()
    meta["creationTimestamp"] = timestamp(issued)
    obj.pop("status", None)
    problems: list[errors.FieldError] = []
    if seconds < MIN_TOKEN_SECONDS:
        problems.append(
            errors.invalid(
                "spec.expirationSeconds", seconds, "may not specify a duration less than 10 minutes"
            )
        )
    if seconds > MAX_TOKEN_SECONDS:
        problems.append(
            errors.invalid(
                "spec.expirationSeconds",
                seconds,
                "may not specify a duration larger than 2^32 seconds",
            )
        )
    if problems:
        raise errors.invalid_object(kind, "", problems, group)
    pod, node = await _bound_objects(h, spec, namespace, name)
    token = issue_service_account_token(
        pki,
        namespace,
        name,
        _uid(sa),
        list(spec["audiences"]),
        dt.timedelta(seconds=seconds),
        pod=pod,
        node=node,
        now=issued,
    )
    obj["status"] = {
        "token": token,
        "expirationTimestamp": timestamp(issued + dt.timedelta(seconds=seconds)),
    }
    return obj


async def _bound_objects(
    h: ResourceHandlers, spec: JSON, namespace: str, sa_name: str
) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    """The (name, uid) of the pod and node a token is bound to, checked as upstream does."""
    ref = spec.get("boundObjectRef")
    if ref is None:
        return None, None
    ref = _dict(ref, "spec.boundObjectRef")
    p = "spec.boundObjectRef"
    api_version, kind = _str(ref, "apiVersion", p), _str(ref, "kind", p)
    name, ref_uid = _str(ref, "name", p), _str(ref, "uid", p)
    group, _, version = api_version.rpartition("/")
    pod: tuple[str, str] | None = None
    node: tuple[str, str] | None = None
    if group == "" and kind == "Pod":
        obj = await _get(h, "pods", namespace, name)
        if (obj.get("spec") or {}).get("serviceAccountName") != sa_name:
            raise errors.bad_request(
                f'cannot bind token for serviceaccount "{sa_name}" to pod running with '
                "different serviceaccount name."
            )
        uid = _uid(obj)
        pod = (name, uid)
        node_name = (obj.get("spec") or {}).get("nodeName")
        if node_name:  # ServiceAccountTokenPodNodeInfo: the node rides along, uid if known
            node_obj = await h.lookup("nodes", "", "", str(node_name))
            node = (str(node_name), _uid(node_obj) if node_obj is not None else "")
    elif group == "" and kind == "Node":
        obj = await _get(h, "nodes", "", name)
        uid = _uid(obj)
        node = (name, uid)
    elif group == "" and kind == "Secret":
        await _get(h, "secrets", namespace, name)
        raise errors.bad_request(
            "cannot bind token to a Secret: pyk8s does not issue secret-bound tokens yet"
        )
    else:
        raise errors.bad_request(
            f"cannot bind token to object of type {group}/{version}, Kind={kind}"
        )
    if ref_uid and uid != ref_uid:
        raise errors.conflict(
            kind,
            name,
            f"the UID in the bound object reference ({ref_uid}) does not match the UID in "
            "record. The object might have been deleted and then recreated",
            group,
        )
    return pod, node


# --------------------------------------------------------------------------- eviction


def _phase(pod: JSON) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def _can_ignore_pdb(pod: JSON) -> bool:
    """Pods whose deletion disrupts nothing more: terminal, never started, or going."""
    return _phase(pod) in ("Succeeded", "Failed", "Pending") or bool(
        pod["metadata"].get("deletionTimestamp")
    )


def _enforce_resource_version(pod: JSON) -> bool:
    terminal = _phase(pod) in ("Succeeded", "Failed")
    return not terminal and not pod["metadata"].get("deletionTimestamp")


def _pod_ready(pod: JSON) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _too_many_requests(message_cause: str, retry_after: int) -> errors.StatusError:
    details: JSON = {"causes": [{"reason": "DisruptionBudget", "message": message_cause}]}
    if retry_after:
        details["retryAfterSeconds"] = retry_after
    return errors.StatusError(429, "TooManyRequests", _VIOLATES_BUDGET, details)


def _still_processing(pdb_name: str) -> errors.StatusError:
    return _too_many_requests(
        f"The disruption budget {pdb_name} is still being processed by the server.", 10
    )


def _pdb_forbidden(name: str, why: str) -> errors.StatusError:
    return errors.StatusError(
        403,
        "Forbidden",
        f'poddisruptionbudget.policy "{name}" is forbidden: {why}',
        {"name": name, "group": "policy", "kind": "poddisruptionbudget"},
    )


def _eviction_delete_options(request: web.Request, eviction: JSON) -> DeleteOptions:
    """The Eviction's deleteOptions, with the request's dryRun merged in (propagateDryRun)."""
    body = _dict(eviction.get("deleteOptions"), "deleteOptions")
    query_dry = _dry_run_values(request)
    body_dry = body.get("dryRun") or []
    if not isinstance(body_dry, list):
        raise errors.bad_request("deleteOptions.dryRun: expected a list of strings")
    if body_dry and query_dry and body_dry != query_dry:
        raise errors.internal(
            f"Non-matching dry-run options in request and content: [{' '.join(query_dry)}] "
            f"and [{' '.join(str(v) for v in body_dry)}]"
        )
    for v in body_dry:
        if v != "All":
            raise errors.bad_request(f'unsupported dryRun value "{v}"; supported values: "All"')
    opts = DeleteOptions.parse(body, {})
    opts.dry_run = bool(body_dry or query_dry)
    return opts


async def _evict(
    h: ResourceHandlers, request: web.Request, info: RequestInfo, pods: Resource
) -> JSON:
    """pods/eviction: delete the pod unless a PodDisruptionBudget forbids it (429)."""
    eviction = _object(
        await _read_body(request),
        {"policy/v1": "Eviction", "policy/v1beta1": "Eviction"},
        info,
        namespaced=True,
    )
    if eviction["metadata"].get("name") != info.name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    opts = _eviction_delete_options(request, eviction)
    caller_rv = opts.precondition_rv is not None
    rest = h.rest(pods)
    namespace, name = info.namespace, info.name

    # pods whose disruption budget no longer matters are simply deleted
    pod: JSON = {}
    for attempt in range(EVICTION_RETRIES):
        pod = await rest.get(namespace, name)
        if not _can_ignore_pdb(pod):
            break
        delete_opts = copy.copy(opts)
        if _enforce_resource_version(pod) and not caller_rv:
            delete_opts.precondition_rv = pod["metadata"].get("resourceVersion")
        try:
            await _add_condition_and_delete(h, pods, namespace, name, delete_opts)
        except errors.StatusError as err:
            if err.reason == "Conflict" and not caller_rv and attempt + 1 < EVICTION_RETRIES:
                await asyncio.sleep(EVICTION_RETRY_DELAY)
                continue
            raise
        return _success()

    pdbs = await _matching_pdbs(h, pod)
    if len(pdbs) > 1:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "This pod has more than one PodDisruptionBudget, which the eviction "
            "subresource does not support.",
            "code": 500,
        }
    pdb_name = ""
    unhealthy_ok = False
    if pdbs:
        pdb, kv = pdbs[0]
        pdb_name = pdb["metadata"]["name"]
        if not _pod_ready(pod):
            spec, status = pdb.get("spec") or {}, pdb.get("status") or {}
            desired = int(status.get("desiredHealthy") or 0)
            current = int(status.get("currentHealthy") or 0)
            # an unready pod adds nothing to the budget's healthy count
            unhealthy_ok = spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow" or (
                current >= desired and desired > 0
            )
        if not unhealthy_ok:
            await _check_and_decrement(h, pdb, kv, name, opts.dry_run)

    delete_opts = copy.copy(opts)
    if unhealthy_ok:  # make sure the pod did not turn ready since we looked
        delete_opts.precondition_rv = pod["metadata"].get("resourceVersion")
    try:
        await _add_condition_and_delete(h, pods, namespace, name, delete_opts)
    except errors.StatusError as err:
        if err.reason == "Conflict" and unhealthy_ok and not caller_rv:
            raise _still_processing(pdb_name) from None
        raise
    return _success()


async def _matching_pdbs(h: ResourceHandlers, pod: JSON) -> list[tuple[JSON, KeyValue]]:
    """The PodDisruptionBudgets of the pod's namespace whose selector matches it (a nil
    selector matches nothing, an empty one everything), read fresh from the store."""
    pdb_resource = _resource(h, "policy", "poddisruptionbudgets")
    namespace = pod["metadata"].get("namespace", "")
    labels = pod["metadata"].get("labels") or {}
    page = await h.store.list(pdb_resource.key_prefix(namespace))
    out: list[tuple[JSON, KeyValue]] = []
    for kv in page.kvs:
        pdb = from_kv(kv)
        try:
            selector = label_selector_from_dict((pdb.get("spec") or {}).get("selector"))
        except SelectorError:
            continue  # an invalid selector matches no pod
        if selector.matches(labels):
            out.append((pdb, kv))
    return out


async def _check_and_decrement(
    h: ResourceHandlers, pdb: JSON, kv: KeyValue, pod_name: str, dry_run: bool
) -> None:
    """Take one disruption from the budget (and record the pod), retrying on conflicts."""
    pdb_resource = _resource(h, "policy", "poddisruptionbudgets")
    rest = h.rest(pdb_resource)
    name = pdb["metadata"]["name"]
    namespace = pdb["metadata"].get("namespace", "")
    for attempt in range(EVICTION_RETRIES):
        if attempt:
            pdb, kv = await rest.read(namespace, name)
        try:
            await _decrement(h, pdb_resource, pdb, kv, pod_name, dry_run)
            return
        except errors.StatusError as err:
            if err.reason != "Conflict":
                raise
        await asyncio.sleep(EVICTION_RETRY_DELAY)
    raise errors.StatusError(
        504,
        "Timeout",
        f'Timeout: couldn\'t update PodDisruptionBudget "{name}" due to conflicts',
        {"retryAfterSeconds": 10},
    )


async def _decrement(
    h: ResourceHandlers,
    pdb_resource: Resource,
    pdb: JSON,
    kv: KeyValue,
    pod_name: str,
    dry_run: bool,
) -> None:
    name = pdb["metadata"]["name"]
    status = pdb.get("status") or {}
    generation = int(pdb["metadata"].get("generation") or 0)
    if int(status.get("observedGeneration") or 0) < generation:
        raise _still_processing(name)
    allowed = int(status.get("disruptionsAllowed") or 0)
    if allowed < 0:
        raise _pdb_forbidden(name, "pdb disruptions allowed is negative")
    if len(status.get("disruptedPods") or {}) > MAX_DISRUPTED_PODS:
        raise _pdb_forbidden(
            name, "DisruptedPods map too big - too many evictions not confirmed by PDB controller"
        )
    if allowed == 0:
        raise _too_many_requests(
            f"The disruption budget {name} needs {int(status.get('desiredHealthy') or 0)} "
            f"healthy pods and has {int(status.get('currentHealthy') or 0)} currently",
            0,
        )
    if dry_run:
        return
    new = copy.deepcopy(pdb)
    new_status = new.setdefault("status", {})
    new_status["disruptionsAllowed"] = allowed - 1
    if allowed - 1 == 0:
        _set_disruption_allowed_condition(new_status)
    disrupted = new_status.get("disruptedPods") or {}
    disrupted[pod_name] = timestamp()
    new_status["disruptedPods"] = disrupted
    await h.update_object(pdb_resource, new, pdb, kv, "status")


def _set_disruption_allowed_condition(status: JSON) -> None:
    """upstream's UpdateDisruptionAllowedCondition (apimeta.SetStatusCondition semantics)."""
    allowed = int(status.get("disruptionsAllowed") or 0) > 0
    wanted = {
        "type": "DisruptionAllowed",
        "status": "True" if allowed else "False",
        "observedGeneration": int(status.get("observedGeneration") or 0),
        "reason": "SufficientPods" if allowed else "InsufficientPods",
        "message": "",
    }
    conditions: list[JSON] = status.get("conditions") or []
    for c in conditions:
        if c.get("type") == "DisruptionAllowed":
            if c.get("status") != wanted["status"]:
                c["lastTransitionTime"] = timestamp()
            c.update({k: v for k, v in wanted.items() if k != "type"})
            break
    else:
        conditions.append({**wanted, "lastTransitionTime": timestamp()})
    status["conditions"] = conditions


async def _add_condition_and_delete(
    h: ResourceHandlers, pods: Resource, namespace: str, name: str, opts: DeleteOptions
) -> None:
    """Mark the pod ``DisruptionTarget`` (PodDisruptionConditions) and delete it."""
    rest = h.rest(pods)
    if not opts.dry_run:
        for attempt in range(EVICTION_RETRIES):
            pod, kv = await rest.read(namespace, name)
            meta = pod["metadata"]
            uid, rv = meta.get("uid"), meta.get("resourceVersion")
            if opts.precondition_uid and opts.precondition_uid != uid:
                raise errors.conflict(
                    "Pod",
                    name,
                    f"the UID in the precondition ({opts.precondition_uid}) does not match the "
                    f"UID in record ({uid}). The object might have been deleted and then "
                    "recreated",
                )
            if opts.precondition_rv and opts.precondition_rv != rv:
                raise errors.conflict(
                    "Pod",
                    name,
                    f"the ResourceVersion in the precondition ({opts.precondition_rv}) does "
                    f"not match the ResourceVersion in record ({rv}). The object might have "
                    "been modified",
                )
            new = copy.deepcopy(pod)
            _set_disruption_target(new)
            try:
                out = await h.update_object(pods, new, pod, kv, "status")
            except errors.StatusError as err:
                if err.reason == "Conflict" and attempt + 1 < EVICTION_RETRIES:
                    continue
                raise
            if opts.precondition_rv:
                # we moved the pod ourselves: the caller's precondition now names our write
                opts = dataclasses.replace(
                    opts, precondition_rv=out["metadata"].get("resourceVersion")
                )
            break
    await rest.delete(namespace, name, opts)


def _set_disruption_target(pod: JSON) -> None:
    """upstream's UpdatePodCondition with the eviction API's DisruptionTarget condition."""
    conditions: list[JSON] = pod.setdefault("status", {}).setdefault("conditions", []) or []
    wanted = {
        "type": "DisruptionTarget",
        "status": "True",
        "lastProbeTime": None,
        "lastTransitionTime": timestamp(),
        "reason": "EvictionByEvictionAPI",
        "message": "Eviction API: evicting",
    }
    for i, c in enumerate(conditions):
        if c.get("type") == "DisruptionTarget":
            if c.get("status") == wanted["status"]:
                wanted["lastTransitionTime"] = c.get("lastTransitionTime")
            conditions[i] = wanted
            break
    else:
        conditions.append(wanted)
    pod["status"]["conditions"] = conditions
