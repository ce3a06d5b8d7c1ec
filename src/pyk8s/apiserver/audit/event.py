"""One request's audit events: built as the request goes, sent at each stage.

The :class:`Auditor` evaluates the policy once a request is authenticated (as upstream's
audit filter runs after authentication and before impersonation, limits and
authorization) and, unless the level is None, opens an :class:`AuditContext` that the
rest of the request reaches through a context variable (upstream carries it in the Go
context): authorization adds its decision, the body decoder the request object,
admission plugins their annotations. Stages: ``RequestReceived`` at once,
``ResponseStarted`` when a long-running response (a watch, exec, logs) starts,
``ResponseComplete`` at the end, ``Panic`` instead when the request failed unexpectedly.

Events are audit.k8s.io/v1 ``Event`` objects with upstream's field order; the request
and response objects are logged at Request and RequestResponse level only.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any

import orjson
from aiohttp import web

from pyk8s.apiserver.audit.backend import LogBackend
from pyk8s.apiserver.audit.policy import Policy, RequestAuditConfig
from pyk8s.apiserver.authn import UserInfo
from pyk8s.apiserver.inflight import is_long_running
from pyk8s.apiserver.requestinfo import RequestInfo

JSON = dict[str, Any]

DECISION_ANNOTATION = "authorization.k8s.io/decision"
REASON_ANNOTATION = "authorization.k8s.io/reason"

#: the status of a request whose client went away before it was answered
CLOSED_EARLY: JSON = {
    "metadata": {},
    "status": "Success",
    "message": "Connection closed early",
    "code": 200,
}

_CURRENT: ContextVar[AuditContext | None] = ContextVar("audit_context", default=None)


#: the formatted second of the latest timestamp (strftime is most of an event's cost)
_second: tuple[int, str] = (-1, "")


def micro_time() -> str:
    """Now as metav1.MicroTime: RFC 3339 in UTC with six fractional digits."""
    global _second
    now = time.time()
    whole = int(now)
    if whole != _second[0]:
        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{_second[1]}.{int((now - whole) * 1_000_000):06d}Z"


def user_json(user: UserInfo) -> JSON:
    out: JSON = {"username": user.name} if user.name else {}
    if user.uid:
        out["uid"] = user.uid
    if user.groups:
        out["groups"] = list(user.groups)
    if user.extra:
        out["extra"] = {k: list(v) for k, v in user.extra.items()}
    return out


def _without_managed_fields(obj: Any) -> Any:
    if not isinstance(obj, dict):
        return obj
    meta = obj.get("metadata")
    out = obj
    if isinstance(meta, dict) and "managedFields" in meta:
        out = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    items = out.get("items")
    if isinstance(items, list):
        out = {**out, "items": [_without_managed_fields(i) for i in items]}
    return out


class AuditContext:
    """The event of one audited request."""

    def __init__(
        self,
        backend: LogBackend,
        config: RequestAuditConfig,
        audit_id: str,
        request: web.Request,
        info: RequestInfo,
        user: UserInfo,
    ) -> None:
        self.backend = backend
        self.config = config
        self.user = user
        #: the user the request ran as, when impersonating (set from outside)
        self.impersonated_user: UserInfo | None = None
        self.long_running = is_long_running(info)
        self.received = micro_time()
        self.annotations: dict[str, str] = {}
        #: annotations admission plugins add (Attributes.audit_annotations)
        self.admission_annotations: dict[str, str] = {}
        self.request_object: orjson.Fragment | None = None
        self.response_status: JSON | None = None
        self.response_object: orjson.Fragment | None = None
        self.started = False
        self.panicked = False
        forwarded = [
            ip.strip() for ip in request.headers.get("X-Forwarded-For", "").split(",") if ip.strip()
        ]
        remote = request.remote or ""
        self._head: JSON = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": config.level,
            "auditID": audit_id,
        }
        self._request: JSON = {
            "requestURI": request.raw_path,
            "verb": info.verb,
        }
        self._source: JSON = {"sourceIPs": [*forwarded, remote] if remote else forwarded}
        agent = request.headers.get("User-Agent")
        if agent:
            self._source["userAgent"] = agent
        self.object_ref: JSON | None = None
        if info.resource_request:
            ref: JSON = {"resource": info.resource}
            if info.namespace:
                ref["namespace"] = info.namespace
            if info.name:
                ref["name"] = info.name
            if info.group:
                ref["apiGroup"] = info.group
            ref["apiVersion"] = info.version
            if info.subresource:
                ref["subresource"] = info.subresource
            self.object_ref = ref

    # ------------------------------------------------------------------ what is learned

    def log_request_object(self, obj: Any) -> None:
        """The decoded request body: fills objectRef's blanks (name, namespace, uid,
        resourceVersion) at Metadata, and is logged from Request level on."""
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        if self.object_ref is not None and isinstance(meta, dict):
            for field in ("namespace", "name", "uid", "resourceVersion"):
                value = meta.get(field)
                if value and field not in self.object_ref:
                    self.object_ref[field] = value
        if self.config.at_least("Request") and self.request_object is None:
            if self.config.omit_managed_fields:
                obj = _without_managed_fields(obj)
            self.request_object = orjson.Fragment(orjson.dumps(obj))

    def record_response(self, response: web.StreamResponse | None, code: int) -> None:
        status: JSON = {"metadata": {}, "code": code}
        body = response.body if isinstance(response, web.Response) else None
        json_body = (
            isinstance(body, bytes)
            and response is not None
            and (response.content_type == "application/json")
        )
        if code >= 300 and json_body:
            assert isinstance(body, bytes)
            try:
                sent = orjson.loads(body)
            except orjson.JSONDecodeError:
                sent = None
            if isinstance(sent, dict) and sent.get("kind") == "Status":
                status = {"metadata": {}}
                for key in ("status", "message", "reason", "details", "code"):
                    if key in sent:
                        status[key] = sent[key]
        self.response_status = status
        if json_body and self.config.at_least("RequestResponse"):
            assert isinstance(body, bytes)
            if self.config.omit_managed_fields:
                body = orjson.dumps(_without_managed_fields(orjson.loads(body)))
            self.response_object = orjson.Fragment(body.rstrip())

    # ------------------------------------------------------------------ stages

    def emit(self, stage: str) -> None:
        if stage in self.config.omit_stages:
            return
        event: JSON = {**self._head, "stage": stage, **self._request}
        event["user"] = user_json(self.user)
        if self.impersonated_user is not None:
            event["impersonatedUser"] = user_json(self.impersonated_user)
        event.update(self._source)
        if self.object_ref is not None:
            event["objectRef"] = self.object_ref
        if self.response_status is not None:
            event["responseStatus"] = self.response_status
        if self.request_object is not None:
            event["requestObject"] = self.request_object
        if self.response_object is not None and stage != "ResponseStarted":
            event["responseObject"] = self.response_object
        event["requestReceivedTimestamp"] = self.received
        event["stageTimestamp"] = self.received if stage == "RequestReceived" else micro_time()
        annotations = {**self.annotations, **self.admission_annotations}
        if annotations:
            event["annotations"] = annotations
        self.backend.process(orjson.dumps(event))

    def response_started(self, code: int) -> None:
        """A long-running response's headers went out."""
        if self.started or not self.long_running:
            return
        self.started = True
        self.response_status = {"metadata": {}, "code": code}
        self.emit("ResponseStarted")

    def complete(self, response: web.StreamResponse | None) -> None:
        """The last event; ``response`` is None when the client went away before an
        answer was made (upstream then reports "Connection closed early")."""
        if self.panicked:
            return
        if response is not None:
            self.record_response(response, response.status)
        elif self.response_status is None:
            self.response_status = CLOSED_EARLY
            if self.long_running and not self.started:
                self.started = True
                self.emit("ResponseStarted")
        self.emit("ResponseComplete")

    def panic(self, message: str) -> None:
        """The request failed with an error nobody anticipated (upstream's panic)."""
        self.panicked = True
        self.response_status = {
            "metadata": {},
            "status": "Failure",
            "message": f"APIServer panic'd: {message}",
            "reason": "InternalError",
            "code": 500,
        }
        self.emit("Panic")


class Auditor:
    """The policy and the backend; opens a context for every audited request."""

    def __init__(self, policy: Policy, backend: LogBackend) -> None:
        self.policy = policy
        self.backend = backend

    def start(self) -> None:
        self.backend.start()

    def stop(self) -> None:
        self.backend.shutdown()

    def begin(
        self, request: web.Request, info: RequestInfo, user: UserInfo, audit_id: str
    ) -> AuditContext | None:
        """The request's context (None: not audited), its RequestReceived sent."""
        config = self.policy.evaluate(user, info)
        if config.level == "None":
            return None
        context = AuditContext(self.backend, config, audit_id, request, info, user)
        _CURRENT.set(context)
        context.emit("RequestReceived")
        return context

    def failed_authentication(self, request: web.Request, info: RequestInfo, audit_id: str) -> None:
        """A 401's one event (upstream's WithFailedAuthenticationAudit): no user, the
        policy matched without one, ResponseStarted with what was attempted."""
        nobody = UserInfo("")
        config = self.policy.evaluate(nobody, info)
        if config.level == "None":
            return
        context = AuditContext(self.backend, config, audit_id, request, info, nobody)
        context.response_status = {"metadata": {}, "message": auth_methods(request), "code": 401}
        context.emit("ResponseStarted")


def auth_methods(request: web.Request) -> str:
    """What a request that failed authentication tried (upstream's getAuthMethods)."""
    methods = []
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "basic":
        methods.append("basic")
    if scheme.lower() == "bearer" and credentials:
        methods.append("bearer")
    if request.query.get("access_token", "").strip():
        methods.append("access_token")
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    if ssl_object is not None and ssl_object.getpeercert(binary_form=True):
        methods.append("x509")
    if methods:
        return "Authentication failed, attempted: " + ", ".join(methods)
    return "Authentication failed, no credentials provided"


def current() -> AuditContext | None:
    """The audit context of the request being served (None: not audited)."""
    return _CURRENT.get()


def end() -> None:
    """Forget the current request's context (its events are all sent)."""
    _CURRENT.set(None)


def log_request_object(obj: Any) -> None:
    context = _CURRENT.get()
    if context is not None:
        context.log_request_object(obj)


def record_authorization(allowed: bool, reason: str) -> None:
    """upstream's authorization.k8s.io/decision and /reason annotations."""
    context = _CURRENT.get()
    if context is not None:
        context.annotations[DECISION_ANNOTATION] = "allow" if allowed else "forbid"
        context.annotations[REASON_ANNOTATION] = reason


def admission_annotations() -> dict[str, str]:
    """Where admission plugins' audit annotations go: the current request's event (a new
    dict when the request is not audited)."""
    context = _CURRENT.get()
    return {} if context is None else context.admission_annotations
