"""The API server's HTTP surface: one aiohttp handler that routes like upstream.

Every request goes through the same steps, in upstream's order: parse the path into a
RequestInfo, authenticate, authorize, then the verb. Errors anywhere become a ``Status``
with upstream's code and reason. Resource verbs live in :mod:`.handlers`; this module
holds the non-resource endpoints (health, version, discovery, metrics, OpenAPI), the
routing, and the bootstrap objects every cluster has (system namespaces, the
``kubernetes`` Service).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from pyk8s import __version__
from pyk8s.api import errors
from pyk8s.api.dualstack import parse_cidrs
from pyk8s.api.registry import REGISTRY, Registry
from pyk8s.api.uid import new_uid
from pyk8s.apiserver import arrival, audit, discovery, encoding, secretsencrypt, tracing
from pyk8s.apiserver.aggregator import Aggregator
from pyk8s.apiserver.allocators import AllocationRepair, ClusterIPAllocator, NodePortAllocator
from pyk8s.apiserver.apiextensions import CRDController
from pyk8s.apiserver.authn import (
    ANONYMOUS,
    REQUEST_USER,
    AuthenticationFailed,
    Authenticator,
    RequestHeaderConfig,
    UserInfo,
)
from pyk8s.apiserver.authz import (
    AlwaysAllowAuthenticated,
    Authorizer,
    RequestAttributes,
    forbidden,
)
from pyk8s.apiserver.authzmodes import build_authorizer
from pyk8s.apiserver.certs import Pki
from pyk8s.apiserver.dashboard import Dashboard, is_dashboard_path
from pyk8s.apiserver.encoding import json_response, status_response
from pyk8s.apiserver.endpoints_reconciler import (
    DEFAULT_LEASE_TTL,
    DEFAULT_RECONCILE_INTERVAL,
    LeaseEndpointReconciler,
)
from pyk8s.apiserver.flowcontrol import (
    CLASSIFICATION,
    APFConfigController,
    Classification,
    PriorityAndFairness,
    Seat,
    is_exempt_from_apf,
    send_classification,
)
from pyk8s.apiserver.handlers import ResourceHandlers
from pyk8s.apiserver.identity_lease import IdentityLease
from pyk8s.apiserver.impersonation import impersonated_user
from pyk8s.apiserver.inflight import (
    DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT,
    DEFAULT_MAX_REQUESTS_INFLIGHT,
    UNCOUNTED,
    InflightLimits,
    is_long_running,
    too_many_requests,
)
from pyk8s.apiserver.policystatus import PolicyStatusController
from pyk8s.apiserver.rbac import (
    RBAC_RESOURCES,
    EscalationCheck,
    RBACAuthorizer,
    ensure_bootstrap_policy,
)
from pyk8s.apiserver.requestinfo import RequestInfo, parse_request
from pyk8s.apiserver.strategies.certificates import CSRWriteCheck
from pyk8s.apiserver.watchcache import WatchCache
from pyk8s.storage import Compactor, Store, StoreError, Unavailable

log = logging.getLogger(__name__)

KUBERNETES_VERSION = "v1.32.0"

#: /cacerts (k3s's path) hands out the cluster CA to anyone: a joining agent checks it
#: against the hash in its token before it trusts the server
CA_PATH = "/cacerts"
#: health and version: served by the server itself, to whoever authorization allows
HEALTH_PATHS = ("/healthz", "/livez", "/readyz", "/version")

JSON_CT = "application/json"
CSR_RESOURCE = ("certificates.k8s.io", "certificatesigningrequests")

#: the request's audit ID: the client's ``Audit-ID`` header or a new UUID; every response
#: carries it and the log names it, so a failure a user reports can be found in the log
AUDIT_ID: web.RequestKey[str] = web.RequestKey("audit_id", str)
#: apiserver_request_duration_seconds' buckets, upstream's (its API call latency SLOs,
#: e.g. 1 s for a single object, are read from them)
REQUEST_DURATION_BUCKETS = (
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20,
    30, 45, 60,
)  # fmt: skip
#: set on a request a limiter answered 429 (max-in-flight or APF): counted in
#: apiserver_request_total, but not a served request, so not in the latency histogram
#: (upstream's filters record a drop without observing apiserver_request_duration_seconds)
_DROPPED: web.RequestKey[bool] = web.RequestKey("dropped", bool)
#: the in-flight slot a request got when it was read (None: over the limit; absent: the
#: arrival hook did not see it), see :mod:`pyk8s.apiserver.arrival`
_ARRIVED: web.RequestKey[arrival.Arrived] = web.RequestKey("arrived", arrival.Arrived)
AUDIT_HEADER = "Audit-Id"


@dataclass
class Config:
    service_cidr: str = "10.43.0.0/16"
    node_port_range: tuple[int, int] = (30000, 32767)
    #: address clients reach this server at (for the kubernetes Service endpoints)
    advertise_address: str = "127.0.0.1"
    secure_port: int = 6443
    #: the host name the identity Lease is named after (upstream: this host's name;
    #: pyk8s server passes its --node-name, so servers sharing a host have one each)
    hostname: str = ""
    compact_interval: float = 300.0
    #: upstream's --anonymous-auth (on by default): a request without credentials is
    #: system:anonymous in system:unauthenticated and authorization decides (RBAC's
    #: system:public-info-viewer lets it read /healthz, /livez, /readyz, /version);
    #: off, it is answered 401
    anonymous: bool = True
    #: admission plugins on top of upstream's defaults (--enable-admission-plugins)
    enable_admission_plugins: tuple[str, ...] = ()
    #: upstream's --kubelet-certificate-authority: calls to kubelets (logs, exec,
    #: attach, port-forward, nodes/proxy) verify the kubelet's serving certificate
    #: against this CA and its address; None: not verified (upstream's default)
    kubelet_certificate_authority: Path | None = None
    #: default admission plugins turned off (--disable-admission-plugins)
    disable_admission_plugins: tuple[str, ...] = ()
    #: each plugin's configuration by name, from --admission-control-config-file
    #: (see pyk8s.apiserver.admission.config.load_admission_config)
    admission_config: dict[str, Any] = field(default_factory=dict)
    #: the --requestheader-* settings, published for extension API servers in the
    #: extension-apiserver-authentication ConfigMap (None: no front proxy is trusted)
    requestheader: RequestHeaderConfig | None = None
    #: --max-requests-inflight / --max-mutating-requests-inflight (0: no limit)
    max_requests_inflight: int = DEFAULT_MAX_REQUESTS_INFLIGHT
    max_mutating_requests_inflight: int = DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT
    #: --enable-priority-and-fairness: API Priority and Fairness decides who waits and
    #: who gets 429, over the sum of the two limits above; off, the limits themselves do
    enable_priority_and_fairness: bool = True
    #: --authorization-mode (upstream names, e.g. ("Node", "RBAC")); empty: the
    #: authorizer given to the server, or allow every authenticated user
    authorization_modes: tuple[str, ...] = ()
    #: the lease endpoint reconciler's lease TTL (seconds) and interval: every API
    #: server over the store is listed in the kubernetes Endpoints/EndpointSlice
    endpoint_lease_ttl: int = DEFAULT_LEASE_TTL
    endpoint_reconcile_interval: float = DEFAULT_RECONCILE_INTERVAL
    #: pods whose journey's spans are kept in memory (pyk8s trace); 0 records none
    trace_max_traces: int = tracing.DEFAULT_MAX_TRACES
    #: one of the extra processes of ``--apiserver-workers N`` beside the primary API
    #: server over the same store: it serves requests with its own watch cache but runs
    #: none of the per-server singletons (bootstrap objects and policy, the endpoint
    #: reconciler and identity Lease, the compactor, allocation repair), which the
    #: primary runs; the controllers every upstream API server runs (CRDs, APF
    #: configuration, APIService availability, policy status) run here too
    worker: bool = False


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "apiserver_request_total",
            "Requests by verb, resource and code",
            ["verb", "group", "resource", "subresource", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "apiserver_request_duration_seconds",
            "Request latency by verb and resource",
            ["verb", "group", "resource"],
            registry=self.registry,
            buckets=REQUEST_DURATION_BUCKETS,
        )
        self.watchers = Gauge(
            "apiserver_registered_watchers",
            "Open watches",
            ["resource"],
            registry=self.registry,
        )
        self.terminated_watchers = Counter(
            "apiserver_terminated_watchers_total",
            "Counter of watchers closed due to unresponsiveness broken by resource type.",
            ["resource"],
            registry=self.registry,
        )
        self.cache_revision = Gauge(
            "apiserver_watch_cache_resource_version",
            "Latest revision in the watch cache",
            registry=self.registry,
        )
        #: the children of ``requests`` and ``latency`` by their labels: ``labels()``
        #: checks and locks on every call, and every request asks both
        self._counted: dict[tuple[str, ...], Any] = {}
        self._timed: dict[tuple[str, ...], Any] = {}

    def request_done(
        self, verb: str, group: str, resource: str, subresource: str, code: int
    ) -> None:
        """Count a resource request in ``apiserver_request_total``."""
        key = (verb, group, resource, subresource, str(code))
        child = self._counted.get(key)
        if child is None:
            child = self._counted[key] = self.requests.labels(*key)
        child.inc()

    def request_took(self, verb: str, group: str, resource: str, seconds: float) -> None:
        """Observe a resource request in ``apiserver_request_duration_seconds``."""
        key = (verb, group, resource)
        child = self._timed.get(key)
        if child is None:
            child = self._timed[key] = self.latency.labels(*key)
        child.observe(seconds)


class APIServer:
    """The API server over one store. ``app`` is the aiohttp application."""

    def __init__(
        self,
        store: Store,
        *,
        authenticator: Authenticator | None = None,
        authorizer: Authorizer | None = None,
        config: Config | None = None,
        registry: Registry = REGISTRY,
        pki: Pki | None = None,
        auditor: audit.Auditor | None = None,
    ) -> None:
        self.store = store
        #: audit logging (--audit-policy-file, --audit-log-path); None: nothing audited
        self.auditor = auditor
        #: k3s's secrets-encryption tool (pyk8s server --secrets-encryption)
        self.secrets_encryption: secretsencrypt.SecretsEncryption | None = None
        #: the cluster PKI; its service-account key signs TokenRequest tokens (None: no
        #: signing key, so serviceaccounts/token answers 503)
        self.pki = pki
        self.config = config or Config()
        #: this server's own registry: custom resources are added to it at run time
        self.registry = Registry(registry)
        self.authenticator = authenticator
        self.cache = WatchCache(store)
        #: the RBAC authorizer when RBAC is an authorization mode (it keeps the bootstrap
        #: policy and refuses privilege escalation)
        self.rbac: RBACAuthorizer | None = None
        if authorizer is None and self.config.authorization_modes:
            authorizer, self.rbac = build_authorizer(self.config.authorization_modes, self.cache)
        self.authorizer: Authorizer = authorizer or AlwaysAllowAuthenticated()
        self.metrics = Metrics()
        apf_on = self.config.enable_priority_and_fairness
        self.inflight = InflightLimits(
            self.metrics.registry,
            self.config.max_requests_inflight,
            self.config.max_mutating_requests_inflight,
            enforce=not apf_on,
        )
        #: API Priority and Fairness (None: --enable-priority-and-fairness=false)
        self.apf = (
            PriorityAndFairness(
                self.metrics.registry,
                self.config.max_requests_inflight + self.config.max_mutating_requests_inflight,
            )
            if apf_on
            else None
        )
        #: one ClusterIP allocator per service CIDR (two on a dual-stack cluster), the
        #: primary family's first
        self.service_ips = [
            ClusterIPAllocator(store, cidr)
            for cidr in parse_cidrs(self.config.service_cidr, "service-cidr")
        ]
        self.cluster_ips = self.service_ips[0]
        self.node_ports = NodePortAllocator(store, *self.config.node_port_range)
        #: releases allocations no Service holds (upstream's repair loops)
        self.allocation_repair = AllocationRepair(
            store, self.cluster_ips, self.node_ports, secondary=self.service_ips[1:]
        )
        self.compactor = Compactor(store, self.config.compact_interval)
        #: spans of pods' journeys (pyk8s trace, the dashboard)
        self.spans = tracing.SpanStore(
            self.metrics.registry, max_traces=self.config.trace_max_traces
        )
        self.handlers = ResourceHandlers(self)
        self.traces = tracing.TraceEndpoints(
            self.spans, self.handlers.lookup, self.check, open_access=authenticator is None
        )
        self.identity = IdentityLease(self.handlers, self.config.hostname or None)
        self.endpoints = LeaseEndpointReconciler(
            store,
            self.handlers,
            self.config.advertise_address,
            self.config.secure_port,
            ttl=self.config.endpoint_lease_ttl,
            interval=self.config.endpoint_reconcile_interval,
            on_tick=self._renew_identity,
        )
        if self.rbac is not None:
            check = EscalationCheck(self.rbac, self.authorizer)
            for group_resource in RBAC_RESOURCES:
                self.handlers.write_checks[group_resource] = check
        # the requester on create, approve/sign permission on /approval and /status
        self.handlers.write_checks[CSR_RESOURCE] = CSRWriteCheck()
        self.crds = CRDController(self.handlers)
        self.policy_status = PolicyStatusController(self.handlers)
        self.apf_config = (
            APFConfigController(self.handlers, self.apf) if self.apf is not None else None
        )
        self.aggregator = Aggregator(
            self.handlers, pki=pki, requestheader=self.config.requestheader
        )
        #: non-API paths that authenticate requests themselves (k3s's server bootstrap,
        #: read with the server token): served before the authenticator chain
        self.own_auth_paths: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] = {}
        #: the web dashboard at /dashboard/ (issue 22)
        self.dashboard = Dashboard(self)
        self.app = web.Application(client_max_size=4 * 1024 * 1024)
        self.app.router.add_route("*", "/{tail:.*}", self.handle)
        self.app.on_response_prepare.append(_send_audit_id)
        self.app.on_response_prepare.append(_audit_response_started)
        self.app.on_response_prepare.append(send_classification)
        self._ready = False
        self.started_at = time.time()

    async def start(self) -> None:
        if self.auditor is not None:
            self.auditor.start()
        await self.cache.start()
        worker = self.config.worker
        if not worker:  # a worker starts once the primary has made them
            await self.bootstrap()
            if self.rbac is not None:
                await ensure_bootstrap_policy(self.handlers)
        await self.crds.start()
        await self.policy_status.start()
        if self.apf_config is not None:
            await self.apf_config.start()
        await self.aggregator.start()
        if not worker:
            if self.config.compact_interval > 0:
                self.compactor.start()
            self.allocation_repair.start()
            self.endpoints.start()
        self._ready = True

    async def stop(self) -> None:
        self._ready = False
        if not self.config.worker:  # a worker's stop leaves the primary's address listed
            await self.endpoints.stop()
        await self.compactor.stop()
        await self.allocation_repair.stop()
        await self.aggregator.stop()
        await self.policy_status.stop()
        if self.apf_config is not None:
            await self.apf_config.stop()
        await self.crds.stop()
        await self.handlers.close_watches()
        await self.handlers.webhook_client.close()
        await self.cache.stop()
        if self.secrets_encryption is not None:
            await self.secrets_encryption.stop()
        if self.auditor is not None:
            self.auditor.stop()  # writes every queued event

    # ------------------------------------------------------------------ bootstrap

    async def bootstrap(self) -> None:
        """The objects every cluster starts with (idempotent)."""
        await asyncio.gather(  # at once: the store commits concurrent writes together
            *(
                self.handlers.ensure(
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
                )
                for ns in ("default", "kube-system", "kube-public", "kube-node-lease")
            )
        )
        ip = self.cluster_ips.nth(1)
        await self.handlers.ensure(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": "kubernetes",
                    "namespace": "default",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "type": "ClusterIP",
                    "clusterIP": ip,
                    "clusterIPs": [ip],
                    "ports": [
                        {
                            "name": "https",
                            "port": 443,
                            "protocol": "TCP",
                            "targetPort": self.config.secure_port,
                        }
                    ],
                    "sessionAffinity": "None",
                },
            }
        )
        # this server's lease, and the endpoints from every live lease
        await self.endpoints.reconcile()
        await self._renew_identity()

    async def _renew_identity(self) -> None:
        """This server's identity Lease renewed, expired ones of others collected."""
        await self.identity.renew()
        await self.identity.collect()

    # ------------------------------------------------------------------ dispatch

    def arrive(self, method: str, target: str, hint: Classification | None) -> arrival.Arrived:
        """A request's in-flight slot, decided when its request line has been read
        (:class:`pyk8s.apiserver.arrival.ArrivalRunner`); paths answered before the
        limiter (health, CA, the dashboard, own-auth paths) hold none. With APF, a seat
        of the level ``hint`` (how its connection's last request was classified) when one
        is free: seats then count what waits in the event loop too."""
        path, _, query = target.partition("?")
        path = unquote(path)
        plain = path.rstrip("/") or "/"
        if (
            plain in HEALTH_PATHS
            or plain == CA_PATH
            or plain in self.own_auth_paths
            or path.startswith(("/healthz/", "/livez/", "/readyz/"))
            or is_dashboard_path(path)
        ):
            return arrival.Arrived(UNCOUNTED)
        try:
            query_args = dict(parse_qsl(query, keep_blank_values=True))
            info = parse_request(method, path, query_args, self.registry)
        except Exception:  # the handler fails the same way, before the limiter
            return arrival.Arrived(UNCOUNTED)
        slot = self.inflight.arrive(info)
        parsed = ((method, path, query_args), info)
        if (
            hint is None
            or self.apf is None
            or info.verb == "watch"
            or is_long_running(info)
            or is_exempt_from_apf(info)
        ):
            return arrival.Arrived(slot, parsed=parsed)
        return arrival.Arrived(slot, self.apf.seat_at_arrival(hint), hint, parsed)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        arrived = arrival.claim(request)
        if isinstance(arrived, arrival.Arrived):
            request[_ARRIVED] = arrived
        try:
            return await self._handle(request)
        finally:
            if isinstance(arrived, arrival.Arrived):
                arrived.release()  # what the limiters did not take over
            arrival.served(request)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if is_dashboard_path(request.path):
            # its API reads come back here as the user (pyk8s.apiserver.dashboard)
            return await self.dashboard.serve(request)
        response: web.StreamResponse | None = None
        try:
            response = await self._serve(request)
            return response
        finally:
            context = audit.current()
            if context is not None:
                audit.end()
                user = request.get(REQUEST_USER)
                if user is not None and user != context.user:
                    context.impersonated_user = user
                context.complete(response)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        start = time.perf_counter()
        info: RequestInfo | None = None
        code = 500
        audit_id = audit_id_of(request)
        try:
            method, path, query = request.method, request.path, dict(request.query)
            arrived = request.get(_ARRIVED)
            info = arrived.info_for(method, path, query) if arrived is not None else None
            if info is None:
                info = parse_request(method, path, query, self.registry)
            resp = await self._dispatch(request, info)
            code = resp.status
            return resp
        except errors.StatusError as err:
            code = err.code
            if isinstance(err, AuthenticationFailed):
                log.info("authentication failed: %s", err)
            return status_response(err)
        except Unavailable as err:
            code = 503
            return status_response(errors.service_unavailable(str(err)))
        except StoreError as err:
            code = 500
            log.exception("store error")
            return status_response(errors.internal(str(err)))
        except (ConnectionResetError, asyncio.CancelledError):
            code = 499
            raise
        except Exception as err:
            # the last resort: the details stay in the log (and the audit log, as
            # upstream's Panic event), under the audit ID the response carries; the
            # client sees upstream's InternalError only
            code = 500
            log.exception(
                "unhandled error serving %s %s (audit ID %s)",
                request.method,
                request.path,
                audit_id,
            )
            context = audit.current()
            if context is not None:
                context.panic(str(err) or type(err).__name__)
            return status_response(errors.internal(UNEXPECTED_ERROR))
        finally:
            if info is not None and info.resource_request:
                verb, group, resource = info.verb, info.group, info.resource
                self.metrics.request_done(verb, group, resource, info.subresource, code)
                if verb != "watch" and _DROPPED not in request:
                    self.metrics.request_took(verb, group, resource, time.perf_counter() - start)

    async def _dispatch(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        own_auth = self.own_auth_paths.get(path)
        if own_auth is not None:
            return await own_auth(request)
        if path == CA_PATH:
            if self.auditor is not None:  # upstream audits these too (often as anonymous)
                self.auditor.begin(
                    request, info, await self._user_or_anonymous(request), audit_id_of(request)
                )
            return self._health_or_version(path, request)
        try:
            user = await self.authenticate(request)
        except errors.StatusError as err:
            if self.auditor is not None and err.code == 401:
                self.auditor.failed_authentication(request, info, audit_id_of(request))
            raise
        if self.auditor is not None:  # audited as the authenticated user, as upstream
            self.auditor.begin(request, info, user, audit_id_of(request))
        if self.authenticator is not None:
            user = await impersonated_user(request, user, self.authorizer)
        if path in HEALTH_PATHS or path.startswith(("/healthz/", "/livez/", "/readyz/")):
            if self.apf is not None:  # never queued (upstream's "probes" are exempt)
                request[CLASSIFICATION] = self.apf.classify(info, user)
            await self.authorize(user, info)
            return self._health_or_version(path, request)
        arrived = request.get(_ARRIVED)
        slot = (
            self.inflight.acquire(info, user)
            if arrived is None
            else self.inflight.admit(arrived.slot, info, user)
        )
        if slot is None:
            request[_DROPPED] = True
            return too_many_requests()
        seat: Seat | None = None
        try:
            if self.apf is not None and not is_exempt_from_apf(info):
                classification = self.apf.classify(info, user)
                request[CLASSIFICATION] = classification
                arrival.remember(request, classification)
                if arrived is not None and arrived.seat is not None:
                    if arrived.classification == classification:
                        seat, arrived.seat = arrived.seat, None  # seated when it was read
                    else:
                        arrived.seat.release()  # the connection's user changed: decide afresh
                        arrived.seat = None
                if seat is None:
                    seat = await self.apf.admit(classification, watch=info.verb == "watch")
                if seat is None:
                    self.inflight.terminated(info)
                    request[_DROPPED] = True
                    return too_many_requests(self.apf.retry_after(classification.priority_level))
                if info.verb == "watch":  # a watch holds its seat only to be admitted
                    seat.release()
            return await self._authorized(request, info, path, user)
        finally:
            if seat is not None:
                seat.release()
            slot.release()

    async def _authorized(
        self, request: web.Request, info: RequestInfo, path: str, user: UserInfo
    ) -> web.StreamResponse:
        """The request of an authenticated user, admitted by the in-flight limits."""
        request[REQUEST_USER] = user
        if path.startswith(tracing.PREFIX):  # authorized per pod or per writer
            return await self.traces.serve(request, user)
        await self.authorize(user, info)
        if path == "/metrics":
            self.metrics.cache_revision.set(self.cache.revision)
            self.inflight.publish()
            return web.Response(
                body=generate_latest(self.metrics.registry),
                headers={"Content-Type": "text/plain; version=0.0.4"},
            )
        parts = info.parts
        if len(parts) >= 3 and parts[0] == "apis":
            apiservice = self.aggregator.remote(parts[1], parts[2])
            if apiservice is not None:
                return await self.aggregator.proxy(request, apiservice, user)
        if path.startswith("/v1-k3s/encrypt/"):
            return await secretsencrypt.serve(self.secrets_encryption, request, path)
        if not info.resource_request:
            return await self._non_resource(request, info, path)
        return await self.handlers.serve(request, info)

    async def authenticate(self, request: web.Request) -> UserInfo:
        if self.authenticator is not None:
            user = await self.authenticator.authenticate(request)
            if user is not None:
                return user
        if self.config.anonymous or self.authenticator is None:
            return ANONYMOUS
        raise errors.unauthorized()

    async def _user_or_anonymous(self, request: web.Request) -> UserInfo:
        """Who sent a request to a path anyone may read (for its audit event)."""
        with contextlib.suppress(errors.StatusError):
            if self.authenticator is not None:
                user = await self.authenticator.authenticate(request)
                if user is not None:
                    return user
        return ANONYMOUS

    async def authorize(self, user: UserInfo, info: RequestInfo) -> None:
        namespace = info.namespace
        if info.resource == "namespaces" and not info.group and info.name:
            # upstream's request info: a namespace is in itself, so a RoleBinding there
            # may grant reading it (``view`` does)
            namespace = info.name
        attrs = RequestAttributes(
            verb=info.verb,
            api_group=info.group,
            resource=info.resource,
            subresource=info.subresource,
            namespace=namespace,
            name=info.authorized_name,
            path=info.path,
            resource_request=info.resource_request,
            api_version=info.version,
            field_selector=info.field_selector,
        )
        await self.check(user, attrs)

    async def pod_with_spans(
        self, user: UserInfo, namespace: str, name: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A pod and its trace's spans, as ``user`` may read them (the dashboard)."""
        return await self.traces.pod_with_spans(user, namespace, name)

    async def read_objects(self, prefix: str) -> list[dict[str, Any]]:
        """Every object under a storage prefix, from the watch cache (the dashboard)."""
        return [e.obj for e in await self.cache.read(prefix)]

    async def check(self, user: UserInfo, attrs: RequestAttributes) -> None:
        """403 unless the authorizer allows ``attrs`` to ``user`` (as audited)."""
        if self.authenticator is None:
            return  # no authentication configured (tests): everything is allowed
        decision = await self.authorizer.authorize(user, attrs)
        audit.record_authorization(decision.allowed, decision.reason)
        if not decision.allowed:
            raise forbidden(user, attrs, decision.reason)

    def _health_or_version(self, path: str, request: web.Request) -> web.Response:
        if path == "/version":
            return json_response(version_info())
        if path == "/cacerts":
            if self.pki is None:
                return web.Response(status=404, text="no CA\n")
            return web.Response(body=self.pki.ca_cert.read_bytes(), content_type="text/plain")
        ready = self._ready and self.cache.ready.is_set()
        name = path.strip("/").split("/")[0]
        if name == "readyz" and not ready:
            return web.Response(status=500, text="[-]watch-cache not ready\nreadyz check failed")
        if "verbose" in request.query:
            checks = ["ping", "log", "etcd", "poststarthook/start-watch-cache"]
            body = "".join(f"[+]{c} ok\n" for c in checks) + f"{name} check passed\n"
            return web.Response(text=body)
        return web.Response(text="ok")

    async def _non_resource(
        self, request: web.Request, info: RequestInfo, path: str
    ) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            raise errors.method_not_allowed(f"method {request.method} is not allowed on {path}")
        accept = request.headers.get("Accept", "")
        parts = info.parts
        if path == "/api":
            agg = _aggregated_version(accept)
            if agg:
                return json_response(
                    discovery.aggregated(self.registry, core=True, version=agg),
                    content_type=_aggregated_content_type(agg),
                )
            return json_response(
                discovery.api_versions(f"{self.config.advertise_address}:{self.config.secure_port}")
            )
        if path == "/apis":
            agg = _aggregated_version(accept)
            if agg:
                return json_response(
                    self.aggregator.extend_aggregated(
                        discovery.aggregated(self.registry, core=False, version=agg)
                    ),
                    content_type=_aggregated_content_type(agg),
                )
            return json_response(
                self.aggregator.extend_group_list(discovery.api_group_list(self.registry))
            )
        groups = self.registry.group_versions()
        if len(parts) == 2 and parts[0] == "api" and parts[1] == "v1":
            return json_response(discovery.resource_list(self.registry, "", "v1"))
        if len(parts) == 2 and parts[0] == "apis" and parts[1] in groups:
            return json_response(discovery.api_group(self.registry, parts[1]))
        aggregated_group = self.aggregator.api_group(parts[1]) if len(parts) == 2 else None
        if aggregated_group is not None and parts[0] == "apis":
            return json_response(aggregated_group)
        if len(parts) == 3 and parts[0] == "apis" and parts[2] in groups.get(parts[1], ()):
            return json_response(discovery.resource_list(self.registry, parts[1], parts[2]))
        if parts and parts[0] == "openapi":
            from pyk8s.apiserver import openapi

            if len(parts) == 5 and parts[1:3] == ("v3", "apis"):
                apiservice = self.aggregator.remote(parts[3], parts[4])
                if apiservice is not None:
                    return await self.aggregator.proxy(request, apiservice, request[REQUEST_USER])
            crds = openapi.crds_from_strategies(self.handlers.strategy)
            if parts == ("openapi", "v3"):
                return await self.aggregator.openapi_v3_index(
                    request, lambda r: openapi.serve(r, self.registry, parts, crds)
                )
            return await openapi.serve(request, self.registry, parts, crds)
        if path == "/":
            paths = [
                "/api",
                "/api/v1",
                "/apis",
                "/healthz",
                "/livez",
                "/metrics",
                "/openapi/v2",
                "/openapi/v3",
                "/readyz",
                "/version",
            ]
            paths += [f"/apis/{g}" for g in groups if g]
            paths += [f"/apis/{g}/{v}" for g, vs in groups.items() if g for v in vs]
            return json_response({"paths": sorted(paths)})
        raise errors.no_such_resource()


#: what a client learns of a failure nobody anticipated (the log has the rest)
UNEXPECTED_ERROR = "an unexpected error occurred while serving the request"


def audit_id_of(request: web.Request) -> str:
    """The request's audit ID, chosen once: the client's own ``Audit-ID`` header (as
    upstream's WithAuditInit keeps it) or a new UUID."""
    audit_id = request.get(AUDIT_ID)
    if audit_id is None:
        audit_id = request.headers.get(AUDIT_HEADER) or new_uid()
        request[AUDIT_ID] = audit_id
    return audit_id


async def _send_audit_id(request: web.Request, response: web.StreamResponse) -> None:
    """Every response, streams and aiohttp's own errors included, names its audit ID."""
    response.headers[AUDIT_HEADER] = audit_id_of(request)


async def _audit_response_started(request: web.Request, response: web.StreamResponse) -> None:
    """A long-running request's ResponseStarted event, when its headers go out."""
    context = audit.current()
    if context is not None:
        context.response_started(response.status)


def _aggregated_version(accept: str) -> str | None:
    """The aggregated discovery version a client asks for first, if any."""
    for mt, params in encoding.accept_entries(accept):
        if params.get("g") == "apidiscovery.k8s.io" and params.get("as") == "APIGroupDiscoveryList":
            if params.get("v") in ("v2", "v2beta1"):
                return params["v"]
        elif mt in ("application/json", "*/*"):
            return None
    return None


def _aggregated_content_type(version: str) -> str:
    return f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"


def version_info() -> dict[str, str]:
    major, minor, _ = KUBERNETES_VERSION.lstrip("v").split(".")
    return {
        "major": major,
        "minor": minor,
        "gitVersion": f"{KUBERNETES_VERSION}+pyk8s",
        "gitCommit": __version__,
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": f"python{platform.python_version()}",
        "compiler": platform.python_implementation().lower(),
        "platform": f"{platform.system().lower()}/{_arch()}",
    }


def _arch() -> str:
    m = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)
