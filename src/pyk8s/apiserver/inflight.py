"""Max-in-flight limits: the API server sheds load instead of drowning in it.

Upstream's ``--max-requests-inflight`` (400) and ``--max-mutating-requests-inflight``
(200) cap how many requests are being served at once, read-only (get, list, watch) and
mutating (everything else) counted apart. A request over its cap is answered at once with
429 and ``Retry-After: 1`` (client-go and the Python client back off and retry), so an
overloaded server keeps its latency for the requests it does admit instead of queueing
every client behind every other.

What is never counted, as upstream: long-running requests (watches, exec/attach/
port-forward/proxy, logs), which would otherwise hold a slot for hours; and requests from
``system:masters`` (upstream serves them even over the limit: the loopback client and the
cluster admin must always get an answer; APF's ``exempt`` priority level). Health probes
are answered before authentication and never reach the limiter (APF's ``probes`` flow
schema is exempt too). A limit of 0 turns that kind's limit off, as upstream.

With API Priority and Fairness on (the default, :mod:`pyk8s.apiserver.flowcontrol`), the
two limits only size APF's seats and this module counts without rejecting (``enforce``
off), as upstream keeps its in-flight watermarks under APF.

A request counts from the moment the server has read it (:mod:`pyk8s.apiserver.arrival`:
upstream's Go server starts each request's handler chain as soon as it is read, so it
counts the requests read and not yet answered; ours would otherwise see only the few whose
handler is awaiting something, while hundreds wait in the event loop). Its slot is decided
then (:meth:`InflightLimits.arrive`), from its method and path alone; one over the limit is
answered 429 once its handler has authenticated it (:meth:`InflightLimits.admit`: the user
must be known to exempt ``system:masters``; authentication comes first upstream too), before
any authorization, storage or encoding work. A request the arrival hook did not see (a
pipelined one, or a server not run by :class:`~pyk8s.apiserver.arrival.ArrivalRunner`)
is decided at handler start, by :meth:`InflightLimits.acquire`.

Metrics, with upstream's names: ``apiserver_current_inflight_requests{request_kind}``
(the most requests served at once during the last second, ``readOnly`` or ``mutating``)
and ``apiserver_request_terminations_total{…,code="429"}`` per rejected request; the
rejected requests also count in ``apiserver_request_total`` with ``code="429"``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge

from pyk8s.apiserver.authn import UserInfo
from pyk8s.apiserver.requestinfo import RequestInfo

DEFAULT_MAX_REQUESTS_INFLIGHT = 400
DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT = 200

READ_ONLY_VERBS = frozenset({"get", "list", "watch"})
LONG_RUNNING_VERBS = frozenset({"watch", "proxy"})
LONG_RUNNING_SUBRESOURCES = frozenset({"attach", "exec", "proxy", "log", "portforward"})
#: users in this group are served over the limit (user.SystemPrivilegedGroup)
PRIVILEGED_GROUP = "system:masters"

READ_ONLY_KIND, MUTATING_KIND = "readOnly", "mutating"
TOO_MANY_REQUESTS = "Too many requests, please try again later."
#: how long a watermark window lasts (upstream's inflightUsageMetricUpdatePeriod)
WATERMARK_PERIOD = 1.0


def is_long_running(info: RequestInfo) -> bool:
    """Upstream's BasicLongRunningRequestCheck with kube-apiserver's verbs and subresources."""
    return info.verb in LONG_RUNNING_VERBS or (
        info.subresource.split("/", 1)[0] in LONG_RUNNING_SUBRESOURCES
    )


def too_many_requests(retry_after: int = 1) -> web.Response:
    """The 429 as upstream writes it: ``http.Error``'s plain text, not a Status (client-go
    turns it into a TooManyRequests StatusError itself, and retries after Retry-After)."""
    return web.Response(
        status=429,
        text=TOO_MANY_REQUESTS + "\n",
        headers={
            "Retry-After": str(retry_after),
            "Content-Type": "text/plain; charset=utf-8",
            "X-Content-Type-Options": "nosniff",
        },
    )


@dataclass
class _Kind:
    """One kind's slots and the most of them used during the current metric window."""

    name: str
    limit: int
    in_use: int = 0
    watermark: int = 0
    window_start: float = 0.0


class Slot:
    """A place among the requests being served; :meth:`release` gives it back once."""

    __slots__ = ("_kind", "_limits")

    def __init__(self, limits: InflightLimits | None, kind: _Kind | None) -> None:
        self._limits = limits
        self._kind = kind

    def release(self) -> None:
        if self._limits is not None and self._kind is not None:
            self._kind.in_use -= 1
            self._limits._observe(self._kind)
            self._kind = None


#: what an uncounted request (long-running, privileged, no limit) holds
UNCOUNTED = Slot(None, None)


class InflightLimits:
    """The two counters of one API server (all on its event loop: no locks needed)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        max_requests_inflight: int = DEFAULT_MAX_REQUESTS_INFLIGHT,
        max_mutating_requests_inflight: int = DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT,
        *,
        enforce: bool = True,
    ) -> None:
        if max_requests_inflight < 0:
            raise ValueError("--max-requests-inflight can not be negative value")
        if max_mutating_requests_inflight < 0:
            raise ValueError("--max-mutating-requests-inflight can not be negative value")
        #: False: count only (APF decides who waits and who is rejected)
        self.enforce = enforce
        self._kinds = {
            READ_ONLY_KIND: _Kind(READ_ONLY_KIND, max_requests_inflight),
            MUTATING_KIND: _Kind(MUTATING_KIND, max_mutating_requests_inflight),
        }
        self._current = Gauge(
            "apiserver_current_inflight_requests",
            "Maximal number of currently used inflight request limit of this apiserver per "
            "request kind in last second.",
            ["request_kind"],
            registry=registry,
        )
        self._terminations = Counter(
            "apiserver_request_terminations_total",
            "Number of requests which apiserver terminated in self-defense.",
            ["verb", "group", "version", "resource", "subresource", "scope", "component", "code"],
            registry=registry,
        )
        for name in self._kinds:
            self._current.labels(name).set(0)

    def acquire(self, info: RequestInfo, user: UserInfo) -> Slot | None:
        """A slot for this request, or None when it must be answered 429."""
        return self.admit(self.arrive(info), info, user)

    def arrive(self, info: RequestInfo) -> Slot | None:
        """The slot of a request just read (:mod:`pyk8s.apiserver.arrival`), or None when
        it is over its limit: it is answered 429 unless :meth:`admit` finds its user exempt.
        Decided before authentication, so a privileged request under the limit holds a
        slot, as upstream's (which takes one whenever one is free)."""
        if is_long_running(info):
            return UNCOUNTED
        kind = self._kinds[READ_ONLY_KIND if info.verb in READ_ONLY_VERBS else MUTATING_KIND]
        if self.enforce and kind.limit == 0:
            return UNCOUNTED
        if self.enforce and kind.in_use >= kind.limit:
            return None
        kind.in_use += 1
        self._observe(kind)
        return Slot(self, kind)

    def admit(self, arrived: Slot | None, info: RequestInfo, user: UserInfo) -> Slot | None:
        """The authenticated request's slot: the one it got at arrival; over the limit,
        an uncounted one for ``system:masters`` (served anyway, as upstream), else None
        (answer 429; counted in ``apiserver_request_terminations_total``)."""
        if arrived is not None:
            return arrived
        if PRIVILEGED_GROUP in user.groups:
            return UNCOUNTED
        self.terminated(info)
        return None

    def terminated(self, info: RequestInfo) -> None:
        """Count a request answered 429 (apiserver_request_terminations_total)."""
        self._terminations.labels(
            _reported_verb(info),
            info.group,
            info.version,
            info.resource,
            info.subresource,
            _scope(info),
            "apiserver",
            "429",
        ).inc()

    def publish(self) -> None:
        """Bring the gauges up to date (before a /metrics scrape)."""
        for kind in self._kinds.values():
            self._observe(kind)

    def _observe(self, kind: _Kind) -> None:
        now = time.monotonic()
        elapsed = now - kind.window_start
        if elapsed >= WATERMARK_PERIOD:
            # a window that ended long ago says nothing about the last second
            stale = elapsed >= 2 * WATERMARK_PERIOD
            peak = kind.in_use if stale else max(kind.watermark, kind.in_use)
            self._current.labels(kind.name).set(peak)
            kind.watermark = kind.in_use
            kind.window_start = now
        elif kind.in_use > kind.watermark:
            kind.watermark = kind.in_use


def _reported_verb(info: RequestInfo) -> str:
    """The verb as upstream's request metrics spell it (upper-case, LIST/WATCH apart)."""
    if not info.resource_request:
        return info.verb.upper()
    return {"create": "POST", "update": "PUT", "deletecollection": "DELETE"}.get(
        info.verb, info.verb.upper()
    )


def _scope(info: RequestInfo) -> str:
    """Upstream's CleanScope: resource, namespace or cluster."""
    if info.name or info.verb == "create":
        return "resource"
    if info.namespace:
        return "namespace"
    return "cluster" if info.resource_request else ""
