"""Recording core/v1 Events the way client-go's (legacy) ``record.EventRecorder`` does.

Events are what ``kubectl describe`` shows under "Events:" — ``Scheduled``,
``SuccessfulCreate``, ``FailedScheduling``. Components emit them at high rates and in
loops, so the recorder must never hurt its caller or the API server:

* **fire and forget** — :meth:`EventRecorder.event` only queues (a bounded queue; when
  full, events are dropped and logged); background tasks write them; every failure is
  logged, nothing is ever raised into the caller;
* **concurrent writes** — ``writers`` tasks (16 by default) write at once, each owning
  the events of the objects hashed to it, so one object's events keep their order (and
  its dedup patches follow its create) while a scheduler binding hundreds of pods a
  second is not held to one API round trip per Event. Upstream's events/v1 broadcaster,
  which the scheduler uses, writes each event from a goroutine of its own; a single
  writer here fell minutes behind at 5,000 nodes and dropped ``Scheduled`` events once
  its queue was full;
* **deduplication** — the same event (same source, object, type, reason and message)
  again within 10 minutes does not create a new object: the existing Event's ``count``
  and ``lastTimestamp`` are patched (``kubectl describe`` shows ``(x5 over 3m)``);
* **aggregation** — after 10 events that differ only in message within 10 minutes,
  further ones are folded into one ``(combined from similar events): …`` Event;
* **spam filter** — per object and source, a token bucket (burst 25, one per 5 minutes)
  drops the excess, as upstream's ``EventSourceObjectSpamFilter`` does.

Names are upstream's: ``<object name>.<nanosecond timestamp in hex>``, in the object's
namespace (``default`` for cluster-scoped objects).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client.errors import ApiError, ClientError, TransportError, is_not_found
from pyk8s.client.rest import Client, Obj

__all__ = [
    "NORMAL",
    "WARNING",
    "EventCorrelator",
    "EventRecorder",
    "object_reference",
]

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"

_EVENTS = REGISTRY.for_kind("", "v1", "Event")
assert _EVENTS is not None
EVENTS: Resource = _EVENTS

CACHE_SIZE = 4096
DEDUP_WINDOW = 600.0  # seconds
MAX_SIMILAR = 10
SPAM_BURST = 25
SPAM_QPS = 1.0 / 300.0
_SPAM_PERIOD = 300.0  # seconds per token (1 / SPAM_QPS)
QUEUE_SIZE = 1000
#: events written at once (each writer owns a share of the objects)
WRITERS = 16
WRITE_ATTEMPTS = 3

K = TypeVar("K")
V = TypeVar("V")


class _LRU(Generic[K, V]):
    """At most ``size`` entries; the least recently used one goes first.

    A plain dict in use order (a used key is removed and inserted again, so it is last;
    the first key is the least recently used): ~70 B per entry, where an OrderedDict's
    linked list and node index take ~136 B. An event recorder keeps three of these full.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._d: dict[K, V] = {}

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key: K) -> V | None:
        value = self._d.pop(key, None)
        if value is not None:
            self._d[key] = value
        return value

    def put(self, key: K, value: V) -> None:
        d = self._d
        d.pop(key, None)
        d[key] = value
        if len(d) > self.size:
            del d[next(iter(d))]


def object_reference(obj: Mapping[str, Any]) -> Obj:
    """An ObjectReference for an object (or a reference passed through as it is)."""
    if "metadata" not in obj and "name" in obj:
        return dict(obj)
    meta = obj.get("metadata") or {}
    ref: Obj = {}
    for key, value in (
        ("kind", obj.get("kind")),
        ("namespace", meta.get("namespace")),
        ("name", meta.get("name")),
        ("uid", meta.get("uid")),
        ("apiVersion", obj.get("apiVersion")),
        ("resourceVersion", meta.get("resourceVersion")),
    ):
        if value:
            ref[key] = value
    return ref


def _timestamp(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _object_key(ev: Obj) -> tuple[str, ...]:
    src = ev.get("source") or {}
    ref = ev.get("involvedObject") or {}
    return (
        str(src.get("component", "")),
        str(src.get("host", "")),
        *(str(ref.get(k, "")) for k in ("kind", "namespace", "name", "uid", "apiVersion")),
    )


@dataclass(slots=True)
class _Seen:
    """The Event written for one dedup key (client-go's ``eventLog``)."""

    name: str
    namespace: str
    count: int
    first_timestamp: str
    last_seen: float


@dataclass(slots=True)
class _Similar:
    """The distinct messages (their dedup keys) seen for one aggregation key.

    One message is kept as its key alone; a set only once there are two.
    """

    messages: int | set[int]
    last_seen: float


class EventCorrelator:
    """Decides, per event: drop it (spam), create it, or patch an earlier one.

    ``correlate`` returns ``None`` (drop) or ``(event, seen)``: ``seen`` is the earlier
    Event to patch, or ``None`` to create.

    A recorder keeps up to 3 x :data:`CACHE_SIZE` entries, a few per object it reported
    on, for as long as it lives, so an entry is kept small: its key is the 64-bit
    ``hash()`` of upstream's key (source, object, type, reason, message), not the strings
    (a message is as long as a sentence); two different keys share a hash with a
    probability of ~2**-64 per pair (str hashes are SipHash, keyed per process, so event
    contents cannot be chosen to collide), ~1e-11 for a full correlator, and a collision
    would only count one event as a repeat of another. The spam filter's token bucket is
    one float per object: the time its bucket is full again (the bucket's debt), which
    admits exactly what a bucket of ``SPAM_BURST`` tokens refilled at ``SPAM_QPS`` would.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._spam: _LRU[int, float] = _LRU(CACHE_SIZE)
        self._similar: _LRU[int, _Similar] = _LRU(CACHE_SIZE)
        self._seen: _LRU[int, _Seen] = _LRU(CACHE_SIZE)
        # one string object for equal namespaces and timestamps kept in ``_Seen``
        self._namespaces: dict[str, str] = {}
        self._stamp = ""

    def correlate(self, ev: Obj) -> tuple[Obj, _Seen | None] | None:
        now = self.clock()
        okey = hash(_object_key(ev))
        if not self._accept(okey, now):
            return None

        # aggregation: many messages for one (object, type, reason) fold into one Event
        message = str(ev.get("message", ""))
        akey = hash((okey, str(ev.get("type", "")), str(ev.get("reason", ""))))
        mkey = hash((akey, message))
        similar = self._similar.get(akey)
        if similar is None or now - similar.last_seen > DEDUP_WINDOW:
            similar = _Similar(mkey, now)
            self._similar.put(akey, similar)
            distinct = 1
        else:
            messages = similar.messages
            if isinstance(messages, set):
                messages.add(mkey)
                distinct = len(messages)
            elif messages != mkey:
                similar.messages = {messages, mkey}
                distinct = 2
            else:
                distinct = 1
            similar.last_seen = now
        if distinct >= MAX_SIMILAR:
            ev = {**ev, "message": f"(combined from similar events): {message}"}
            dkey = akey  # every combined event shares one Event object
        else:
            dkey = mkey

        seen = self._seen.get(dkey)
        if seen is not None and now - seen.last_seen <= DEDUP_WINDOW:
            seen.count += 1
            seen.last_seen = now
            ev = {
                **ev,
                "metadata": {**ev["metadata"], "name": seen.name, "namespace": seen.namespace},
                "count": seen.count,
                "firstTimestamp": seen.first_timestamp,
            }
            return ev, seen
        meta = ev["metadata"]
        self._seen.put(
            dkey,
            _Seen(
                meta["name"],
                self._namespace(meta["namespace"]),
                1,
                self._timestamp(str(ev.get("firstTimestamp", ""))),
                now,
            ),
        )
        return ev, None

    def _accept(self, okey: int, now: float) -> bool:
        """The spam filter: a token bucket per object, kept as the time it is full again."""
        full_at = self._spam.get(okey)
        debt = 0.0 if full_at is None or full_at <= now else full_at - now
        # a token is there while the debt is at most SPAM_BURST - 1 tokens' worth
        # (1e-6 s of slack: float rounding of absolute times must not drop the last token)
        if debt > (SPAM_BURST - 1) * _SPAM_PERIOD + 1e-6:
            return False
        self._spam.put(okey, now + debt + _SPAM_PERIOD)
        return True

    def _namespace(self, namespace: str) -> str:
        kept = self._namespaces.setdefault(namespace, namespace)
        if len(self._namespaces) > CACHE_SIZE:
            self._namespaces.clear()
        return kept

    def _timestamp(self, stamp: str) -> str:
        if stamp == self._stamp:
            return self._stamp
        self._stamp = stamp
        return stamp


class EventRecorder:
    """Records Events for a component; never blocks, never raises.

    ``recorder.event(pod, "Normal", "Scheduled", "Successfully assigned ns/p to node1")``.
    Call ``await recorder.flush()`` to wait for queued events (tests), ``await
    recorder.close()`` at shutdown.
    """

    def __init__(
        self,
        client: Client,
        component: str,
        host: str = "",
        *,
        clock: Callable[[], float] = time.time,
        queue_size: int = QUEUE_SIZE,
        writers: int = WRITERS,
    ) -> None:
        """``queue_size`` bounds the events waiting in all ``writers`` queues together."""
        self.client = client
        self.component = component
        self.host = host
        self.clock = clock
        self.correlator = EventCorrelator(clock)
        per_writer = max(1, -(-queue_size // max(1, writers)))
        self._queues: list[asyncio.Queue[Obj]] = [
            asyncio.Queue(per_writer) for _ in range(max(1, writers))
        ]
        self._tasks: list[asyncio.Task[None] | None] = [None] * len(self._queues)
        self._closed = False

    def event(
        self,
        obj: Mapping[str, Any],
        event_type: str,
        reason: str,
        message: str,
        *,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        """Queue an Event about ``obj`` (a full object or an ObjectReference)."""
        try:
            if event_type not in (NORMAL, WARNING):
                log.error("unsupported event type %r (reason %s)", event_type, reason)
                return
            if self._closed:
                return
            ev = self._make(obj, event_type, reason, message, annotations)
            # one object's events always go to the same writer, in order
            shard = hash(_object_key(ev)) % len(self._queues)
            self._ensure_worker(shard)
            self._queues[shard].put_nowait(ev)
        except asyncio.QueueFull:
            log.warning("event queue full, dropping event %s: %s", reason, message)
        except Exception:
            log.exception("could not record event %s: %s", reason, message)

    def eventf(
        self, obj: Mapping[str, Any], event_type: str, reason: str, fmt: str, *args: Any
    ) -> None:
        """:meth:`event` with a %-format message."""
        try:
            message = fmt % args if args else fmt
        except (TypeError, ValueError):
            message = f"{fmt} {args!r}"
        self.event(obj, event_type, reason, message)

    async def flush(self) -> None:
        """Wait until every queued event has been written (or given up on)."""
        for task, queue in zip(self._tasks, self._queues, strict=True):
            if task is not None:
                await queue.join()

    async def close(self) -> None:
        """Write what is queued (best effort), then stop."""
        self._closed = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), 5.0)
        for i, task in enumerate(self._tasks):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                self._tasks[i] = None

    # -- internals

    def _make(
        self,
        obj: Mapping[str, Any],
        event_type: str,
        reason: str,
        message: str,
        annotations: Mapping[str, str] | None,
    ) -> Obj:
        ref = object_reference(obj)
        if not ref.get("name"):
            raise ValueError("the object has no name")
        now = self.clock()
        stamp = _timestamp(now)
        meta: Obj = {
            "name": f"{ref['name']}.{int(now * 1e9):x}",
            "namespace": ref.get("namespace") or "default",
        }
        if annotations:
            meta["annotations"] = dict(annotations)
        source: Obj = {"component": self.component}
        if self.host:
            source["host"] = self.host
        ev: Obj = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": meta,
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "type": event_type,
            "source": source,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "reportingComponent": self.component,
            "reportingInstance": self.host,
        }
        return ev

    def _ensure_worker(self, shard: int) -> None:
        task = self._tasks[shard]
        if task is None or task.done():
            self._tasks[shard] = asyncio.get_running_loop().create_task(
                self._run(self._queues[shard]), name=f"events:{self.component}:{shard}"
            )

    async def _run(self, queue: asyncio.Queue[Obj]) -> None:
        while True:
            ev = await queue.get()
            try:
                await self._record(ev)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("failed to record event %s", ev.get("reason"))
            finally:
                queue.task_done()

    async def _record(self, ev: Obj) -> None:
        result = self.correlator.correlate(ev)
        if result is None:
            log.debug("event %s for %s dropped by the spam filter", ev["reason"], ev["metadata"])
            return
        ev, seen = result
        for attempt in range(WRITE_ATTEMPTS):
            try:
                if seen is not None:
                    try:
                        await self.client.patch(
                            EVENTS,
                            ev["metadata"]["name"],
                            {
                                "count": ev["count"],
                                "lastTimestamp": ev["lastTimestamp"],
                                "message": ev["message"],
                            },
                            ev["metadata"]["namespace"],
                            patch_type="strategic",
                        )
                        return
                    except ApiError as err:
                        if not is_not_found(err):
                            raise
                        # the earlier Event is gone (expired by TTL): create it again
                await self.client.create(EVENTS, ev, ev["metadata"]["namespace"])
                return
            except ApiError as err:
                if err.status == 409 and seen is None:
                    return  # AlreadyExists: a retry of a create that had succeeded
                if err.status < 500 and err.status != 429:
                    log.warning("server rejected event %s (will not retry): %s", ev["reason"], err)
                    return
                failure: ClientError = err
            except TransportError as err:
                failure = err
            if attempt + 1 < WRITE_ATTEMPTS:
                await asyncio.sleep(0.5 * 2**attempt)
        log.warning("unable to write event %s: %s (giving up)", ev["reason"], failure)
