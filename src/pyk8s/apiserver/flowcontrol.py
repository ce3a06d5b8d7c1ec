"""API Priority and Fairness: the API server's classifier, fair queues and config controller.

Why this exists: the two max-in-flight counters (:mod:`pyk8s.apiserver.inflight`) treat
every caller alike, so one busy client can take every slot and the kubelets' heartbeats
and the controllers' leader election wait behind it. Upstream replaced them (the default
since 1.20) with APF: every request is classified by the FlowSchemas (lowest
``matchingPrecedence`` first, then name) into a PriorityLevelConfiguration and a *flow*
(the schema plus the user name or namespace, per its ``distinguisherMethod``).

* ``Exempt`` levels (``exempt``: ``system:masters``, and the ``probes``) are never limited.
* ``Limited`` levels share the server's concurrency limit, ``--max-requests-inflight`` +
  ``--max-mutating-requests-inflight`` (600 by default), in proportion to their
  ``nominalConcurrencyShares``: NominalCL = ceil(serverCL * shares / sum of all shares).
* A level that is full either rejects (``limitResponse.type: Reject``) or queues: the flow's
  hash deals it a *hand* of ``handSize`` of the level's ``queues`` (shuffle sharding) and the
  request joins the shortest of them; a queue at ``queueLengthLimit`` rejects. Queues are
  served in turn as seats free up, so one flow cannot starve the others of its level. A
  request that waited a quarter of the request timeout (15 s) is rejected.
* A rejection is upstream's plain-text 429 with ``Retry-After``, which starts at 1 s and
  doubles while a level keeps dropping requests (up to 60 s), then shrinks again.
* Every classified response names its schema and level by UID in
  ``X-Kubernetes-PF-FlowSchema-UID`` and ``X-Kubernetes-PF-PriorityLevel-UID``.

The configuration comes from the watch cache: :class:`APFConfigController` creates the
mandatory and suggested objects (again when a mandatory one is deleted; a spec annotated
``apf.kubernetes.io/autoupdate-spec: "true"`` is kept at the built-in one), rebuilds the
levels whenever a FlowSchema or level changes (queued requests stay queued), and writes
each FlowSchema's ``Dangling`` condition. Metrics carry upstream's
``apiserver_flowcontrol_*`` names.

Seats count from arrival (:mod:`pyk8s.apiserver.arrival`): upstream's Go server runs each
request's filters as soon as it is read, so a seat is held by a request read and not yet
answered. Ours classify after authentication, on the event loop, where cheap requests wait
for their turn rather than in a handler; so a request just read takes a seat at once
(:meth:`PriorityAndFairness.seat_at_arrival`) when its connection's previous request was
classified to a level with one free, and keeps it if it classifies the same (else it is
given back and :meth:`~PriorityAndFairness.admit` decides). A request without one queues
at handler start as before, now behind the seats held by requests still waiting in the
loop. The differences: the first request of a connection (and one whose user changed) is
seated only at handler start, and seats are dealt in the order requests are read, queued
ones after them, not in one fair order.

A seat freed while requests are queued goes to the next one at once, and its task runs
right after the step that freed it, ahead of the rest of the event loop's ready queue (see
:func:`_run_next`): upstream's waiting goroutine runs as soon as it has its seat, while
ours, woken at the back of that queue, would wait for a pass over every request just read
(hundreds under a flood), the seat idle meanwhile.

Differences from upstream, all simplifications: every request takes one seat (no work
estimate for big lists), levels do not borrow each other's unused seats
(``lendablePercent`` and ``borrowingLimitPercent`` are stored but do not move seats), a
watch holds its seat only until it is admitted, and queues are served round-robin rather
than by virtual finish time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pyk8s.api import errors
from pyk8s.api import flowcontrol as apf
from pyk8s.apiserver.authn import UserInfo
from pyk8s.apiserver.cacheloop import CacheController
from pyk8s.apiserver.inflight import is_long_running
from pyk8s.apiserver.requestinfo import RequestInfo

if TYPE_CHECKING:
    from pyk8s.api.registry import Resource
    from pyk8s.apiserver.handlers import ResourceHandlers

log = logging.getLogger(__name__)

JSON = dict[str, Any]

FLOW_SCHEMA_UID_HEADER = "X-Kubernetes-PF-FlowSchema-UID"
PRIORITY_LEVEL_UID_HEADER = "X-Kubernetes-PF-PriorityLevel-UID"
#: upstream: a quarter of the request timeout (--request-timeout, 60 s)
REQUEST_WAIT_LIMIT = 15.0
MAX_RETRY_AFTER = 60
#: classifications remembered per request shape (forgotten when the config changes)
CLASSIFICATION_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Classification:
    """The FlowSchema and level a request matched, and its flow's hash."""

    flow_schema: str
    flow_schema_uid: str
    priority_level: str
    priority_level_uid: str
    flow: int


#: where a request keeps its classification for the response headers
CLASSIFICATION = web.RequestKey("apf-classification", Classification)


class _Metrics:
    """upstream's apiserver_flowcontrol_* series (one child per schema and level, cached)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        fl = ["flow_schema", "priority_level"]
        self.dispatched = Counter(
            "apiserver_flowcontrol_dispatched_requests_total",
            "Number of requests executed by API Priority and Fairness subsystem",
            fl,
            registry=registry,
        )
        self.rejected = Counter(
            "apiserver_flowcontrol_rejected_requests_total",
            "Number of requests rejected by API Priority and Fairness subsystem",
            [*fl, "reason"],
            registry=registry,
        )
        self.inqueue = Gauge(
            "apiserver_flowcontrol_current_inqueue_requests",
            "Number of requests currently pending in queues of the API Priority and Fairness "
            "subsystem",
            fl,
            registry=registry,
        )
        self.executing = Gauge(
            "apiserver_flowcontrol_current_executing_requests",
            "Number of requests in initial (for a WATCH) or any (for a non-WATCH) execution "
            "stage in the API Priority and Fairness subsystem",
            fl,
            registry=registry,
        )
        self.executing_seats = Gauge(
            "apiserver_flowcontrol_current_executing_seats",
            "Concurrency (number of seats) occupied by the currently executing (initial stage "
            "for a WATCH, any stage otherwise) requests in the API Priority and Fairness "
            "subsystem",
            fl,
            registry=registry,
        )
        self.wait = Histogram(
            "apiserver_flowcontrol_request_wait_duration_seconds",
            "Length of time a request spent waiting in its queue",
            [*fl, "execute"],
            buckets=(0, 0.005, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30),
            registry=registry,
        )
        self.execution = Histogram(
            "apiserver_flowcontrol_request_execution_seconds",
            "Duration of initial stage (for a WATCH) or any (for a non-WATCH) stage of request "
            "execution in the API Priority and Fairness subsystem",
            [*fl, "type"],
            buckets=(0, 0.005, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30),
            registry=registry,
        )
        self.queue_length = Histogram(
            "apiserver_flowcontrol_request_queue_length_after_enqueue",
            "Length of queue in the API Priority and Fairness subsystem, as seen by each "
            "request after it is enqueued",
            fl,
            buckets=(0, 10, 25, 50, 100, 250, 500, 1000),
            registry=registry,
        )
        self.nominal_limit = Gauge(
            "apiserver_flowcontrol_nominal_limit_seats",
            "Nominal number of execution seats configured for each priority level",
            ["priority_level"],
            registry=registry,
        )
        self.current_limit = Gauge(
            "apiserver_flowcontrol_current_limit_seats",
            "current derived number of execution seats available to each priority level",
            ["priority_level"],
            registry=registry,
        )


class _Flow:
    """The metric children of one (flow schema, level) pair, looked up once; the gauges
    read plain counters when scraped (cheaper than moving them on every request)."""

    __slots__ = (
        "dispatched",
        "executed",
        "executed_watch",
        "executing",
        "inqueue",
        "m",
        "names",
        "waited",
    )

    def __init__(self, m: _Metrics, fs: str, pl: str) -> None:
        self.m, self.names = m, (fs, pl)
        self.executing = 0
        self.inqueue = 0
        self.dispatched = m.dispatched.labels(fs, pl)
        m.inqueue.labels(fs, pl).set_function(lambda: self.inqueue)
        m.executing.labels(fs, pl).set_function(lambda: self.executing)
        m.executing_seats.labels(fs, pl).set_function(lambda: self.executing)
        self.waited = m.wait.labels(fs, pl, "true")
        self.executed = m.execution.labels(fs, pl, "regular")
        self.executed_watch = m.execution.labels(fs, pl, "watch")


class _Waiter:
    __slots__ = ("enqueued", "flow", "future", "queue")

    def __init__(self, flow: _Flow, queue: _Queue) -> None:
        self.flow = flow
        self.queue = queue
        #: True: a seat was given; False: it waited too long
        self.future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.enqueued = time.monotonic()


class _Queue:
    __slots__ = ("executing", "waiting")

    def __init__(self) -> None:
        self.waiting: deque[_Waiter] = deque()
        self.executing = 0


class _Dropped:
    """Upstream's dropped-requests tracker of one level: the Retry-After it answers with."""

    def __init__(self) -> None:
        self.retry_after = 1
        self.second = 0
        self.count = 0
        self.history: deque[tuple[int, int]] = deque()
        self.bumped_at = 0

    def record(self, now: int) -> None:
        if now == self.second:
            self.count += 1
            return
        if self.count:
            self.history.append((self.second, self.count))
        while self.history and now - self.history[0][0] > min(
            2 * self.retry_after, MAX_RETRY_AFTER
        ):
            self.history.popleft()
        self.second, self.count = now, 1
        dropped = sum(n for t, n in self.history if now - t <= self.retry_after and t < now)
        if now - self.bumped_at >= self.retry_after and dropped >= 3 * self.retry_after:
            self.retry_after = min(self.retry_after * 2, MAX_RETRY_AFTER)
            self.bumped_at = now
        elif dropped < self.retry_after and self.retry_after > 1:
            self.retry_after -= 1


class Seat:
    """An admitted request's seat; :meth:`release` gives it back (once) and serves the
    next queued request of the level."""

    __slots__ = ("_flow", "_level", "_queue", "_started", "_watch")

    def __init__(
        self, level: PriorityLevel, queue: _Queue | None, flow: _Flow, watch: bool
    ) -> None:
        self._level: PriorityLevel | None = level
        self._queue = queue
        self._flow = flow
        self._watch = watch
        self._started = time.monotonic()
        flow.dispatched.inc()
        flow.executing += 1

    def release(self) -> None:
        level, self._level = self._level, None
        if level is None:
            return
        flow = self._flow
        flow.executing -= 1
        executed = flow.executed_watch if self._watch else flow.executed
        executed.observe(time.monotonic() - self._started)
        level.finished(self._queue)


class PriorityLevel:
    """One level's seats and queues (all on the event loop: no locks)."""

    def __init__(self, obj: Mapping[str, Any], limit: int) -> None:
        self.name = obj["metadata"]["name"]
        self.queues: list[_Queue] = []
        self.executing = 0
        self.waiting = 0
        self._robin = 0
        self.dropped = _Dropped()
        self.configure(obj, limit)

    def configure(self, obj: Mapping[str, Any], limit: int) -> None:
        self.uid = str(obj["metadata"].get("uid", ""))
        spec = obj.get("spec") or {}
        self.exempt = spec.get("type") != apf.LIMITED
        self.limit = limit
        response = (spec.get("limited") or {}).get("limitResponse") or {}
        queuing = response.get("queuing") or {}
        self.reject = response.get("type") != apf.QUEUE
        count = 0 if self.reject else int(queuing.get("queues") or apf.DEFAULT_QUEUES)
        self.hand_size = int(queuing.get("handSize") or apf.DEFAULT_HAND_SIZE)
        self.queue_length_limit = int(
            queuing.get("queueLengthLimit") or apf.DEFAULT_QUEUE_LENGTH_LIMIT
        )
        if count != len(self.queues):
            # requests already queued keep their place in line, in the new queues (with no
            # queues left, they wait out their time in the old ones)
            old = [w for q in self.queues for w in q.waiting]
            self.queues = [_Queue() for _ in range(count)]
            if count:
                for i, w in enumerate(old):
                    w.queue.waiting.remove(w)
                    w.queue = self.queues[i % count]
                    w.queue.waiting.append(w)
        self.dispatch()

    # ------------------------------------------------------------------ admission

    def try_now(self, flow: _Flow, watch: bool) -> Seat | None:
        """A seat at once when the level has room and nobody waits."""
        if self.exempt or (self.executing < self.limit and not self.waiting):
            self.executing += 1
            return Seat(self, None, flow, watch)
        return None

    def enqueue(self, flow_hash: int, flow: _Flow) -> _Waiter | None:
        """The request's place in the shortest queue of its hand (None: every one is full,
        or the level rejects instead of queueing)."""
        if self.reject or not self.queues:
            return None
        hand = apf.deal(flow_hash, len(self.queues), self.hand_size)
        queue = min((self.queues[i] for i in hand), key=lambda q: len(q.waiting) + q.executing)
        if len(queue.waiting) >= self.queue_length_limit:
            return None
        waiter = _Waiter(flow, queue)
        queue.waiting.append(waiter)
        self.waiting += 1
        flow.inqueue += 1
        flow.m.queue_length.labels(*flow.names).observe(len(queue.waiting))
        self.dispatch()
        return waiter

    def leave(self, waiter: _Waiter) -> None:
        """A waiter that gave up (timed out, or its client went away)."""
        with contextlib.suppress(ValueError):
            waiter.queue.waiting.remove(waiter)
            self.waiting -= 1
            waiter.flow.inqueue -= 1

    def finished(self, queue: _Queue | None) -> None:
        self.executing -= 1
        if queue is not None:
            queue.executing -= 1
        self.dispatch()

    def dispatch(self) -> None:
        """Give free seats to the queues in turn, one request each; the requests given one
        run next (:func:`_run_next`)."""
        n = len(self.queues)
        ready = _ready_queue() if self.waiting and self.executing < self.limit else None
        before = len(ready) if ready is not None else 0
        try:
            self._dispatch(n)
        finally:
            if ready is not None:
                _run_next(ready, len(ready) - before)

    def _dispatch(self, n: int) -> None:
        while self.waiting and self.executing < self.limit:
            for step in range(n):
                queue = self.queues[(self._robin + step) % n]
                if queue.waiting:
                    self._robin = (self._robin + step + 1) % n
                    break
            else:  # what waits is in queues of an older configuration
                return
            waiter = queue.waiting.popleft()
            self.waiting -= 1
            waiter.flow.inqueue -= 1
            if waiter.future.done():  # cancelled meanwhile: its seat goes to the next
                continue
            self.executing += 1
            queue.executing += 1
            waiter.future.set_result(True)


def _ready_queue() -> deque[Any] | None:
    """The running event loop's queue of callbacks ready to run, if it has the one of
    asyncio's own loops (``BaseEventLoop._ready``, private); None otherwise."""
    ready = getattr(asyncio.get_running_loop(), "_ready", None)
    return ready if isinstance(ready, deque) else None


def _run_next(ready: deque[Any], added: int) -> None:
    """Move the last ``added`` callbacks of ``ready`` to its front, in their order.

    Why: a seat given to a queued request wakes its task by a callback at the back of the
    loop's ready queue, behind everything else ready, which under a flood is hundreds of
    requests just read (and their 429s); the loop runs those first, so a seat turned over
    only about once per pass of the loop while the seat itself sat idle. Upstream's
    waiting goroutine runs as soon as its seat is free; moving the wake-up to the front
    runs it right after the step that freed the seat. Only wake-ups move (what
    :meth:`PriorityLevel.dispatch` scheduled), never other work, and each runs once.
    """
    if added > 0:
        woken = [ready.pop() for _ in range(added)]
        ready.extendleft(woken)


class PriorityAndFairness:
    """Classifies requests and admits them into their level (see the module doc)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        server_limit: int,
        wait_limit: float = REQUEST_WAIT_LIMIT,
    ) -> None:
        if server_limit <= 0:
            raise ValueError(
                "invalid configuration: MaxRequestsInFlight and MaxMutatingRequestsInFlight "
                "must add up to something positive"
            )
        self.server_limit = server_limit
        self.wait_limit = wait_limit
        self.metrics = _Metrics(registry)
        self.levels: dict[str, PriorityLevel] = {}
        self._schemas: list[Mapping[str, Any]] = []
        self._cache: dict[tuple[Any, ...], Classification] = {}
        self._flows: dict[tuple[str, str], _Flow] = {}
        # until the controller's first sync, the built-in objects decide
        self.configure(
            [*apf.MANDATORY_PRIORITY_LEVELS, *apf.SUGGESTED_PRIORITY_LEVELS],
            [*apf.MANDATORY_FLOW_SCHEMAS, *apf.SUGGESTED_FLOW_SCHEMAS],
        )

    # ------------------------------------------------------------------ configuration

    def configure(
        self, levels: Sequence[Mapping[str, Any]], flow_schemas: Sequence[Mapping[str, Any]]
    ) -> dict[str, bool]:
        """Take a new configuration; returns each flow schema's "dangling" (its level is
        missing). Levels that are gone stop taking requests; their queued ones are served."""
        limits = apf.nominal_limits(self.server_limit, levels)
        current: dict[str, PriorityLevel] = {}
        for obj in levels:
            name = obj["metadata"]["name"]
            level = self.levels.get(name)
            if level is None:
                level = PriorityLevel(obj, limits[name])
            else:
                level.configure(obj, limits[name])
            current[name] = level
            exempt = level.exempt
            self.metrics.nominal_limit.labels(name).set(limits[name])
            self.metrics.current_limit.labels(name).set(0 if exempt else limits[name])
        for name, level in self.levels.items():
            if name not in current:
                # what waits is admitted as seats free up; nothing new comes
                level.limit = max(level.limit, level.executing + level.waiting)
                level.dispatch()
                with contextlib.suppress(KeyError):
                    self.metrics.nominal_limit.remove(name)
                    self.metrics.current_limit.remove(name)
        self.levels = current
        dangling = {fs["metadata"]["name"]: _level_name(fs) not in current for fs in flow_schemas}
        self._schemas = sorted(
            (fs for fs in flow_schemas if not dangling[fs["metadata"]["name"]]),
            key=lambda fs: (
                int((fs.get("spec") or {}).get("matchingPrecedence") or 0),
                fs["metadata"]["name"],
            ),
        )
        self._cache.clear()
        return dangling

    # ------------------------------------------------------------------ classification

    def classify(self, info: RequestInfo, user: UserInfo) -> Classification:
        key = (
            user.name,
            tuple(user.groups),
            info.verb,
            info.resource_request,
            "" if info.resource_request else info.path,
            info.group,
            info.resource,
            info.subresource,
            info.namespace,
        )
        found = self._cache.get(key)
        if found is not None:
            return found
        d = apf.RequestDigest(*key)
        for fs in self._schemas:
            if apf.rules_match((fs.get("spec") or {}).get("rules") or (), d):
                break
        else:
            # nothing matched: upstream's catch-all, even if its object is missing
            fs = apf.MANDATORY_FLOW_SCHEMAS[1]
        level_name = _level_name(fs)
        level = self.levels.get(level_name) or self.levels.get(apf.CATCH_ALL)
        fs_name = fs["metadata"]["name"]
        found = Classification(
            fs_name,
            str(fs["metadata"].get("uid", "")),
            level.name if level is not None else level_name,
            level.uid if level is not None else "",
            apf.flow_hash(fs_name, apf.distinguisher(fs, d)),
        )
        if len(self._cache) >= CLASSIFICATION_CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = found
        return found

    # ------------------------------------------------------------------ admission

    def _flow(self, c: Classification) -> _Flow:
        key = (c.flow_schema, c.priority_level)
        flow = self._flows.get(key)
        if flow is None:
            flow = self._flows[key] = _Flow(self.metrics, *key)
        return flow

    def seat_at_arrival(self, c: Classification) -> Seat | None:
        """A seat for a request just read, classified as its connection's previous one
        (:mod:`pyk8s.apiserver.arrival`), when its level has one free and nobody waits;
        None: :meth:`admit` decides once the request is classified."""
        level = self.levels.get(c.priority_level)
        if level is None or level.exempt:
            return None
        flow = self._flow(c)
        seat = level.try_now(flow, False)
        if seat is not None:
            flow.waited.observe(0)
        return seat

    async def admit(self, c: Classification, watch: bool = False) -> Seat | None:
        """A seat for a classified request, after queueing if it must; None: rejected
        (answer 429 with :meth:`retry_after`)."""
        level = self.levels.get(c.priority_level)
        flow = self._flow(c)
        if level is None:  # its level went away since classification: catch-all's rules
            level = self.levels.get(apf.CATCH_ALL)
            if level is None:
                return PriorityLevel(apf.MANDATORY_PRIORITY_LEVELS[0], 0).try_now(flow, watch)
        seat = level.try_now(flow, watch)
        if seat is not None:
            flow.waited.observe(0)
            return seat
        waiter = level.enqueue(c.flow, flow)
        if waiter is None:
            self._reject(level, flow, "queue-full" if not level.reject else "concurrency-limit")
            return None
        # the task awaits the waiter's future itself, so a seat given to it wakes it in
        # the event loop's next step (wait_for over shield took three: one per future in
        # the chain, each a pass over everything ready, hundreds of requests under a flood)
        timer = asyncio.get_running_loop().call_later(
            self.wait_limit, self._time_out, level, waiter
        )
        try:
            seated = await waiter.future
        except asyncio.CancelledError:
            future = waiter.future
            if future.done() and not future.cancelled() and future.result():
                # the seat was given as the client left: hand it on
                level.finished(waiter.queue)
            else:
                level.leave(waiter)
                future.cancel()
            self.metrics.rejected.labels(*flow.names, "cancelled").inc()
            raise
        finally:
            timer.cancel()
        if not seated:
            self.metrics.wait.labels(*flow.names, "false").observe(
                time.monotonic() - waiter.enqueued
            )
            self._reject(level, flow, "time-out")
            return None
        flow.waited.observe(time.monotonic() - waiter.enqueued)
        return Seat(level, waiter.queue, flow, watch)

    @staticmethod
    def _time_out(level: PriorityLevel, waiter: _Waiter) -> None:
        """A queued request waited :attr:`wait_limit`: it leaves its queue, unseated."""
        if not waiter.future.done():
            level.leave(waiter)
            waiter.future.set_result(False)

    def _reject(self, level: PriorityLevel, flow: _Flow, reason: str) -> None:
        self.metrics.rejected.labels(*flow.names, reason).inc()
        level.dropped.record(int(time.time()))

    def retry_after(self, level: str) -> int:
        found = self.levels.get(level)
        return found.dropped.retry_after if found is not None else 1


def _level_name(fs: Mapping[str, Any]) -> str:
    return str(((fs.get("spec") or {}).get("priorityLevelConfiguration") or {}).get("name", ""))


def is_exempt_from_apf(info: RequestInfo) -> bool:
    """Long-running requests other than watches bypass APF, as upstream."""
    return is_long_running(info) and info.verb != "watch"


async def send_classification(request: web.Request, response: web.StreamResponse) -> None:
    """The X-Kubernetes-PF-* headers of a classified request (rejected ones too)."""
    c = request.get(CLASSIFICATION)
    if c is not None:
        response.headers[FLOW_SCHEMA_UID_HEADER] = c.flow_schema_uid
        response.headers[PRIORITY_LEVEL_UID_HEADER] = c.priority_level_uid


# --------------------------------------------------------------------------- config


class APFConfigController(CacheController):
    """Keeps the bootstrap objects, the in-memory levels and the Dangling conditions in
    step with the stored FlowSchemas and PriorityLevelConfigurations."""

    kind = "APF configuration"
    KEY = "config"

    def __init__(self, handlers: ResourceHandlers, apf_: PriorityAndFairness) -> None:
        super().__init__(handlers)
        self.apf = apf_
        fs = handlers.registry.get(apf.GROUP, "v1", "flowschemas")
        pl = handlers.registry.get(apf.GROUP, "v1", "prioritylevelconfigurations")
        assert fs is not None and pl is not None
        self.flow_schemas: Resource = fs
        self.levels: Resource = pl

    async def start(self) -> None:
        await self.ensure_bootstrap()
        await self.sync(self.KEY)
        changed = self._changed
        self.run(
            self.follow(self.flow_schemas.key_prefix(), changed),
            self.follow(self.levels.key_prefix(), changed),
            self.work(),
        )

    def _changed(self, obj: JSON) -> None:
        self.enqueue(self.KEY)

    async def ensure_bootstrap(self) -> None:
        """Create what is missing; put an auto-updated object's spec back to the built-in
        one (upstream's config producer does this at start). The writes go together, so
        the store commits them as one batch."""
        current = {
            (e.obj["kind"], e.obj["metadata"]["name"]): e.obj
            for prefix in (self.levels.key_prefix(), self.flow_schemas.key_prefix())
            for e in self.h.cache.list(prefix)
        }
        writes = []
        for obj in apf.bootstrap_objects():
            have = current.get((obj["kind"], obj["metadata"]["name"]))
            if have is None:
                writes.append(self.h.ensure(obj))
                continue
            auto = (have["metadata"].get("annotations") or {}).get(apf.AUTO_UPDATE_ANNOTATION)
            want = _defaulted(obj)["spec"]
            if auto == "true" and have.get("spec") != want:
                writes.append(self.h.ensure(obj, update=True))
        await asyncio.gather(*writes)

    async def sync(self, name: str) -> None:
        levels = [e.obj for e in self.h.cache.list(self.levels.key_prefix())]
        schemas = [e.obj for e in self.h.cache.list(self.flow_schemas.key_prefix())]
        present = {(o["kind"], o["metadata"]["name"]) for o in (*levels, *schemas)}
        for obj in (*apf.MANDATORY_PRIORITY_LEVELS, *apf.MANDATORY_FLOW_SCHEMAS):
            if (obj["kind"], obj["metadata"]["name"]) not in present:
                log.info("recreating the mandatory %s %s", obj["kind"], obj["metadata"]["name"])
                await self.h.ensure(obj)  # its write brings another sync
        dangling = self.apf.configure(levels, schemas)
        await asyncio.gather(
            *(self._write_dangling(fs, dangling[fs["metadata"]["name"]]) for fs in schemas)
        )

    async def _write_dangling(self, fs: JSON, dangling: bool) -> None:
        level = _level_name(fs)
        want: JSON = (
            {
                "type": apf.DANGLING,
                "status": "True",
                "reason": "NotFound",
                "message": f"This FlowSchema references the PriorityLevelConfiguration object "
                f'named "{level}" but there is no such object',
            }
            if dangling
            else {
                "type": apf.DANGLING,
                "status": "False",
                "reason": "Found",
                "message": f"This FlowSchema references the PriorityLevelConfiguration object "
                f'named "{level}" and it exists',
            }
        )
        status = fs.get("status") or {}
        conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
        old = next((c for c in conditions if c.get("type") == apf.DANGLING), None)
        if old is not None and all(old.get(k) == v for k, v in want.items()):
            return
        want["lastTransitionTime"] = _now()
        others = [c for c in conditions if c.get("type") != apf.DANGLING]
        name = fs["metadata"]["name"]
        try:
            current, kv = await self.h.rest(self.flow_schemas).read("", name)
            new = {**current, "status": {**status, "conditions": [*others, want]}}
            await self.h.update_object(
                self.flow_schemas, new, current, kv, "status", manager=apf.STATUS_MANAGER
            )
        except errors.StatusError as err:
            if err.reason not in ("Conflict", "NotFound"):
                raise
            self.enqueue(self.KEY)


def _defaulted(obj: JSON) -> JSON:
    if obj["kind"] == "FlowSchema":
        return apf.default_flow_schema(obj)
    return apf.default_priority_level(obj)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
