"""The API server's span store: spans of pods' journeys, bounded, in memory, read-only to users.

Why: ``pyk8s trace`` and the dashboard show steps no Event records (which admission
plugins changed a pod, how many nodes the scheduler filtered out and why, when the kubelet
first saw it). The API server records its own spans for pod creates (admission, validation,
storage) and takes the spans of the scheduler and the kubelets, which send them in batches
(:mod:`pyk8s.client.tracing`). The shape and the trace context (the pod's UID) are in
:mod:`pyk8s.api.spans`.

Two paths, both outside the resource API (they are pyk8s's, not upstream's):

- ``GET /debug/traces/namespaces/NS/pods/NAME`` → ``{"traceId", "pod": {...}, "spans": [...]}``:
  allowed to whoever may ``get`` that pod (the spans are derived data of the pod).
- ``POST /debug/traces/spans`` with ``{"spans": [...]}``: only the control plane writes.
  Allowed to ``system:masters``, the scheduler (``system:kube-scheduler``), and a node
  (``system:node:NAME``) for pods bound to itself; spans of other pods are dropped.

The store keeps the newest ``max_traces`` traces (least recently written evicted first) and
at most ``max_spans`` spans per trace, so memory is bounded whatever the cluster does; a
restart forgets everything (the spans are a debugging aid, not state). A trace is one bytes
object, its spans' compact JSON a line each, decoded only when the trace is read: about a
quarter of the memory of decoded dicts (a full store of 4096 pods of nine spans: ~14 MiB
instead of ~45 MiB, which a soak's pod churn showed as API-server growth).

The API server's own spans are on the path of every pod create (issue 22's goal: recording
costs at most 3 %), so :meth:`SpanStore.record_create` writes each as a flat JSON array of
strings and numbers (no dict, no hex IDs: ~3 µs in all) and the span is built when its
trace is read, as most never are. Bytes also keep the store out of the garbage collector's
way: recording a span leaves no new object it tracks (a tuple or a list per span or per
trace did: the server with spans then ran its collections on another schedule than the
same server without, and the benchmark's full passes, ~0.1 s each, fell into other rounds),
and its full passes over the heap (the watch cache's pods) do not grow with the store.
"""

from __future__ import annotations

import collections
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge

from pyk8s.api import errors
from pyk8s.api.spans import NAMESPACE_ATTR, POD_ATTR, PREFIX, SPANS_PATH, Span, trace_id
from pyk8s.apiserver.authn import UserInfo
from pyk8s.apiserver.authz import RequestAttributes
from pyk8s.apiserver.encoding import json_response

__all__ = ["PREFIX", "SPANS_PATH", "SpanStore", "TraceEndpoints"]

log = logging.getLogger(__name__)

DEFAULT_MAX_TRACES = 4096
DEFAULT_MAX_SPANS = 64
#: users who may write any pod's spans
_WRITERS = ("system:kube-scheduler",)
_NODE_PREFIX = "system:node:"
SERVICE = "kube-apiserver"

Authorize = Callable[[UserInfo, RequestAttributes], Awaitable[None]]
#: ``lookup(plural, group, namespace, name)``: an object from the watch cache, or None
Lookup = Callable[[str, str, str, str], Awaitable[Any]]
#: one of the API server's own spans, not built yet, as a JSON array: [name, span ID, start,
#: end, namespace, pod name, then the values of its attributes in :data:`_ATTRIBUTES` order]
_Record = list[Any]
#: between two spans of a trace's bytes (compact JSON never has a raw newline)
_SEP = b"\n"
_ATTRIBUTES = {
    "apiserver.create": ("user", "mutatedBy", "admittedAt", "validatedAt", "resourceVersion"),
    "apiserver.binding": ("node", "user"),
}


class SpanStore:
    """The newest ``max_traces`` traces, each at most ``max_spans`` spans."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        max_traces: int = DEFAULT_MAX_TRACES,
        max_spans: int = DEFAULT_MAX_SPANS,
    ) -> None:
        self.max_traces = max_traces
        self.max_spans = max_spans
        #: a trace's spans as one bytes object, their JSON a line each, replaced on each new
        #: span (at most ``max_spans``): see the module's docstring for why
        self._traces: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        registry = registry or CollectorRegistry()
        self.recorded = Counter(
            "apiserver_trace_spans_total",
            "Spans recorded by source",
            ["service"],
            registry=registry,
        )
        self.dropped = Counter(
            "apiserver_trace_spans_dropped_total",
            "Spans dropped because their trace held max_spans already",
            registry=registry,
        )
        self.traces = Gauge("apiserver_trace_traces", "Traces held in memory", registry=registry)
        self.traces.set_function(lambda: len(self._traces))  # read at scrape time
        self._recorded: dict[str, Any] = {}  # the counter's child by service

    @property
    def enabled(self) -> bool:
        return self.max_traces > 0

    def __len__(self) -> int:
        return len(self._traces)

    def add(self, span: Span) -> None:
        """Keep a span a component sent."""
        if self.enabled:
            self._keep(span["traceId"], orjson.dumps(span), str(span.get("service", "")))

    def _record(
        self, pod: dict[str, Any], name: str, start: float, end: float, *values: Any
    ) -> None:
        """Keep one of the API server's own spans about ``pod``, built when read;
        ``values``: its attributes' (strings, numbers, lists of strings)."""
        meta = pod["metadata"]
        record = orjson.dumps(
            (
                name,
                random.getrandbits(64) or 1,  # a span ID (never 0): not a secret, as OTel's
                start,
                end,
                meta.get("namespace", ""),
                meta.get("name", ""),
                *values,
            )
        )
        self._keep(trace_id(str(meta.get("uid", ""))), record, SERVICE)

    def record_create(
        self,
        pod: dict[str, Any],
        user: str,
        times: tuple[float, float, float, float],
        mutated: list[str],
    ) -> None:
        """The span of a pod's create, from admission to the stored object: one span (it
        is paid on every create), with the times its phases ended (mutating admission;
        validation, the strategy's and the validating plugins') and the plugins that
        changed the pod."""
        if self.enabled:
            started, admitted, validated, stored = times
            rv = pod["metadata"].get("resourceVersion", "")
            self._record(
                pod,
                "apiserver.create",
                started,
                stored,
                user,
                mutated,
                admitted,
                validated,
                rv,
            )

    def record_binding(
        self, pod: dict[str, Any], node: str, user: str, started: float, ended: float
    ) -> None:
        """The write that bound ``pod`` to ``node`` (the scheduler's Event comes after its
        bind call returns, which can be after the kubelet already started the pod)."""
        if self.enabled:
            self._record(pod, "apiserver.binding", started, ended, node, user)

    def _keep(self, tid: str, entry: bytes, service: str) -> None:
        """Add the JSON ``entry`` (orjson's output: copied, not kept, as it holds a 4 KiB
        buffer) to trace ``tid``."""
        traces = self._traces
        spans = traces.get(tid)
        if spans is None:
            traces[tid] = bytes(memoryview(entry))
            if len(traces) > self.max_traces:
                traces.popitem(last=False)
        else:
            traces.move_to_end(tid)
            if spans.count(_SEP) + 1 >= self.max_spans:
                self.dropped.inc()
                return
            traces[tid] = b"".join((spans, _SEP, entry))
        counter = self._recorded.get(service)
        if counter is None:
            counter = self._recorded[service] = self.recorded.labels(service)
        counter.inc()

    def extend(self, spans: Iterable[Span]) -> None:
        for s in spans:
            self.add(s)

    def get(self, tid: str) -> list[Span]:
        """The spans of one trace, oldest first."""
        kept = self._traces.get(tid)
        if kept is None:
            return []
        spans = [_built(tid, e) if isinstance(e, list) else e for e in orjson.loads(_all(kept))]
        return sorted(spans, key=lambda s: s["start"])


def _all(kept: bytes) -> bytes:
    """A trace's bytes as one JSON array of its spans and records."""
    return b"[" + kept.replace(_SEP, b",") + b"]"


def _built(tid: str, record: _Record) -> Span:
    name, span_id, start, end, namespace, pod, *values = record
    attrs: dict[str, Any] = {NAMESPACE_ATTR: namespace, POD_ATTR: pod}
    for key, value in zip(_ATTRIBUTES[name], values, strict=True):
        attrs[key] = value
    return {
        "traceId": tid,
        "spanId": f"{span_id:016x}",
        "parentSpanId": "",
        "name": name,
        "service": SERVICE,
        "start": start,
        "end": end,
        "attributes": attrs,
    }


class TraceEndpoints:
    """The two HTTP paths above, for an already authenticated user."""

    def __init__(
        self, store: SpanStore, lookup: Lookup, authorize: Authorize, *, open_access: bool
    ) -> None:
        self.store = store
        self.lookup = lookup
        self.authorize = authorize
        #: no authentication configured (tests): anyone writes
        self.open_access = open_access

    async def serve(self, request: web.Request, user: UserInfo) -> web.Response:
        path = request.path.rstrip("/")
        if path == SPANS_PATH:
            if request.method != "POST":
                raise errors.method_not_allowed(f"method {request.method} is not allowed on {path}")
            accepted = await self.write(await request.read(), user)
            return json_response({"accepted": accepted}, 202)
        parts = path[len(PREFIX) :].strip("/").split("/")
        if len(parts) != 4 or parts[0] != "namespaces" or parts[2] != "pods":
            raise errors.no_such_resource()
        if request.method not in ("GET", "HEAD"):
            raise errors.method_not_allowed(f"method {request.method} is not allowed on {path}")
        return json_response(await self.pod_trace(user, parts[1], parts[3]))

    async def pod_trace(self, user: UserInfo, namespace: str, name: str) -> dict[str, Any]:
        """The pod's trace ID and spans, if ``user`` may get the pod (403/404 as a get)."""
        pod, spans = await self.pod_with_spans(user, namespace, name)
        uid = str(pod["metadata"].get("uid", ""))
        return {
            "traceId": trace_id(uid),
            "pod": {"namespace": namespace, "name": name, "uid": uid},
            "spans": spans,
        }

    async def pod_with_spans(
        self, user: UserInfo, namespace: str, name: str
    ) -> tuple[dict[str, Any], list[Span]]:
        """The pod and its spans, if ``user`` may get the pod."""
        await self.authorize(
            user,
            RequestAttributes(
                verb="get", resource="pods", namespace=namespace, name=name, api_version="v1"
            ),
        )
        pod = await self.lookup("pods", "", namespace, name)
        if pod is None:
            raise errors.not_found("pods", name)
        return pod, self.store.get(trace_id(str(pod["metadata"].get("uid", ""))))

    async def write(self, raw: bytes, user: UserInfo) -> int:
        """Keep the spans in a ``{"spans": [...]}`` body that ``user`` may write; how many."""
        try:
            body = orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError as err:
            raise errors.bad_request(f"invalid JSON: {err}") from err
        spans = body.get("spans") if isinstance(body, dict) else None
        if not isinstance(spans, list):
            raise errors.bad_request('the body must be {"spans": [...]}')
        node = ""
        trusted = self.open_access or "system:masters" in user.groups or user.name in _WRITERS
        if not trusted:
            if not user.name.startswith(_NODE_PREFIX):
                raise errors.forbidden_request(
                    f'User "{user.name}" cannot write spans: only the control plane may'
                )
            node = user.name.removeprefix(_NODE_PREFIX)
        accepted = 0
        for span in spans:
            if not _well_formed(span):
                continue
            if node and not await self._on_node(span, node):
                continue
            self.store.add(span)
            accepted += 1
        return accepted

    async def _on_node(self, span: Span, node: str) -> bool:
        attrs = span["attributes"]
        pod = await self.lookup(
            "pods", "", str(attrs.get(NAMESPACE_ATTR, "")), str(attrs.get(POD_ATTR, ""))
        )
        return (
            pod is not None
            and (pod.get("spec") or {}).get("nodeName") == node
            and trace_id(str(pod["metadata"].get("uid", ""))) == span["traceId"]
        )


def _well_formed(span: Any) -> bool:
    return (
        isinstance(span, dict)
        and isinstance(span.get("traceId"), str)
        and len(span["traceId"]) == 32
        and isinstance(span.get("name"), str)
        and isinstance(span.get("start"), int | float)
        and isinstance(span.get("end"), int | float)
        and isinstance(span.get("attributes"), dict)
    )
