"""Spans of a pod's journey through the control plane: their shape and trace context.

Why: ``pyk8s trace`` and the dashboard answer "where is my pod and what happened to it",
and Events and conditions say only part of it (not which admission plugins changed the
pod, nor how many nodes the scheduler filtered out and why). Every component therefore
records OpenTelemetry-shaped spans about the pods it handles, and the API server keeps
them in a bounded in-memory store (:mod:`pyk8s.apiserver.tracing`).

Trace context: a pod's trace ID is its UID written as 32 hex digits. A UID is 128 random
bits, which is exactly a W3C trace-id, so every component holding the pod holds its trace
context and nothing is added to the object (upstream's API server tracing propagates a
``traceparent`` header per request and stores nothing on objects; a context that must
outlive one request has to live on the object, and the UID already does). A span names its
pod with the OpenTelemetry semantic-convention attributes ``k8s.namespace.name`` and
``k8s.pod.name``, which the API server uses to check who may write it.

A span is a plain dict (it crosses HTTP as JSON)::

    {"traceId": 32 hex, "spanId": 16 hex, "parentSpanId": "" | 16 hex,
     "name": "scheduler.schedule", "service": "kube-scheduler",
     "start": unix seconds (float), "end": unix seconds (float),
     "attributes": {"k8s.namespace.name": ..., "k8s.pod.name": ..., ...}}
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "NAMESPACE_ATTR",
    "POD_ATTR",
    "PREFIX",
    "SPANS_PATH",
    "Span",
    "became_ready",
    "new_span_id",
    "pod_span",
    "trace_id",
]

Span = dict[str, Any]

#: where components send spans (POST) and users read a pod's (``PREFIX/namespaces/NS/pods/NAME``)
PREFIX = "/debug/traces"
SPANS_PATH = PREFIX + "/spans"
NAMESPACE_ATTR = "k8s.namespace.name"
_HEX32 = re.compile(r"[0-9a-f]{32}")
POD_ATTR = "k8s.pod.name"


def trace_id(uid: str) -> str:
    """The trace ID of the object with ``uid``: its hex digits, lower-cased, cut or padded
    with zeros to 32 (a UUID's 128 bits exactly)."""
    digits = uid.replace("-", "").lower()
    if not _HEX32.fullmatch(digits):  # not a UUID
        digits = ("".join(c for c in digits if c in "0123456789abcdef") + "0" * 32)[:32]
    return digits


def new_span_id() -> str:
    return os.urandom(8).hex()


def pod_span(
    pod: Mapping[str, Any],
    name: str,
    service: str,
    start: float,
    end: float,
    attributes: Mapping[str, Any] | None = None,
    *,
    parent: str = "",
    span_id: str = "",
) -> Span:
    """A span about ``pod`` (its trace ID from the UID, its namespace and name as attributes)."""
    meta = pod.get("metadata") or {}
    attrs: dict[str, Any] = {
        NAMESPACE_ATTR: meta.get("namespace", ""),
        POD_ATTR: meta.get("name", ""),
    }
    if attributes:
        attrs.update(attributes)
    return {
        "traceId": trace_id(str(meta.get("uid", ""))),
        "spanId": span_id or new_span_id(),
        "parentSpanId": parent,
        "name": name,
        "service": service,
        "start": start,
        "end": end,
        "attributes": attrs,
    }


def became_ready(old_status: Mapping[str, Any], new_status: Mapping[str, Any]) -> bool:
    """Whether a status write turns the pod's Ready condition True (the kubelets record a
    ``kubelet.ready`` span for it: the condition's own time has whole seconds only)."""

    def ready(status: Mapping[str, Any]) -> bool:
        return any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )

    return ready(new_status) and not ready(old_status)
