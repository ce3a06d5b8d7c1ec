"""The API server's span store: bounded, and written only by the control plane (a node
only about its own pods); read as whoever may get the pod. The spans of a real pod's
journey are checked end to end in tests/e2e_sim/test_trace.py."""

from __future__ import annotations

import gc
from typing import Any

import orjson
import pytest

from pyk8s.api import errors
from pyk8s.api.spans import became_ready, pod_span, trace_id
from pyk8s.apiserver.authn import UserInfo
from pyk8s.apiserver.authz import RequestAttributes
from pyk8s.apiserver.tracing import SpanStore, TraceEndpoints

UID = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"


def pod(name: str, node: str = "n1", uid: str = UID) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": name, "uid": uid},
        "spec": {"nodeName": node},
    }


def test_trace_context_is_the_uid_and_the_store_is_bounded() -> None:
    assert trace_id(UID) == UID.replace("-", "") and len(trace_id(UID)) == 32
    store = SpanStore(max_traces=2, max_spans=3)
    a, b, c = (pod(n, uid=f"{i:032x}") for i, n in enumerate("abc"))
    for i in range(5):
        store.add(pod_span(a, f"step{i}", "test", float(i), float(i)))
    assert [s["name"] for s in store.get(trace_id(a["metadata"]["uid"]))] == [
        "step0",
        "step1",
        "step2",
    ]
    assert store.dropped._value.get() == 2
    store.add(pod_span(b, "x", "test", 0.0, 0.0))
    store.add(pod_span(a, "late", "test", 9.0, 9.0))  # a is written last: b goes first
    store.add(pod_span(c, "x", "test", 0.0, 0.0))
    assert len(store) == 2
    assert store.get(trace_id(b["metadata"]["uid"])) == []
    assert store.get(trace_id(c["metadata"]["uid"]))


def test_the_api_servers_own_spans_are_built_when_read() -> None:
    """A create's span is kept as a flat record on the request path and built on read,
    with the same span ID on every read, among the spans components sent."""
    store = SpanStore()
    p = pod("web") | {"metadata": {"namespace": "ns", "name": "web", "uid": UID}}
    p["metadata"]["resourceVersion"] = "42"
    store.record_create(p, "alice", (1.0, 1.25, 1.5, 2.0), ["ServiceAccount", "Priority"])
    store.add(pod_span(p, "kubelet.seen", "kubelet", 3.0, 3.0))
    store.record_binding(p, "n1", "system:kube-scheduler", 2.5, 2.75)
    spans = store.get(trace_id(UID))
    assert [s["name"] for s in spans] == ["apiserver.create", "apiserver.binding", "kubelet.seen"]
    create = spans[0]
    assert create["traceId"] == trace_id(UID) and len(create["spanId"]) == 16
    assert (create["service"], create["start"], create["end"]) == ("kube-apiserver", 1.0, 2.0)
    assert create["attributes"] == {
        "k8s.namespace.name": "ns",
        "k8s.pod.name": "web",
        "user": "alice",
        "mutatedBy": ["ServiceAccount", "Priority"],
        "admittedAt": 1.25,
        "validatedAt": 1.5,
        "resourceVersion": "42",
    }
    assert spans[1]["attributes"]["node"] == "n1"
    assert [s["spanId"] for s in store.get(trace_id(UID))] == [s["spanId"] for s in spans]
    assert orjson.loads(orjson.dumps(spans)) == spans  # plain JSON, as served
    off = SpanStore(max_traces=0)
    off.record_create(p, "alice", (1.0, 1.25, 1.5, 2.0), [])
    assert len(off) == 0


def test_recording_leaves_nothing_for_the_garbage_collector() -> None:
    """A trace is bytes: recording spans into a full store leaves no new object the
    collector tracks (its passes keep the schedule of a server without spans)."""
    store = SpanStore(max_traces=4)
    pods = [pod("web", uid=f"{i:032x}") for i in range(40)]
    sent = [pod_span(p, "kubelet.seen", "kubelet", 3.0, 3.0, {"images": ["a"]}) for p in pods]
    mutated = ["ServiceAccount"]

    def record(first: int, last: int) -> None:
        for p, span in zip(pods[first:last], sent[first:last], strict=True):
            store.record_create(p, "alice", (1.0, 1.25, 1.5, 2.0), mutated)
            store.record_binding(p, "n1", "system:kube-scheduler", 2.5, 2.75)
            store.add(span)

    record(0, 8)  # the first of each service makes its metric's child
    gc.disable()
    try:
        before = gc.get_count()[0]
        record(8, 40)
        assert gc.get_count()[0] - before <= 0
    finally:
        gc.enable()
    assert len(store) == 4
    assert not [spans for spans in store._traces.values() if gc.is_tracked(spans)]
    spans = store.get(trace_id(pods[-1]["metadata"]["uid"]))
    assert [s["name"] for s in spans] == ["apiserver.create", "apiserver.binding", "kubelet.seen"]


def test_ready_is_the_status_write_that_turns_it_true() -> None:
    ready = {"conditions": [{"type": "Ready", "status": "True"}]}
    not_ready = {"conditions": [{"type": "Ready", "status": "False"}]}
    assert became_ready(not_ready, ready) and became_ready({}, ready)
    assert not became_ready(ready, ready) and not became_ready(ready, not_ready)


async def test_only_the_control_plane_writes_and_a_node_only_its_own_pods() -> None:
    pods = {("ns", "mine"): pod("mine", "n1"), ("ns", "other"): pod("other", "n2", "ab" * 16)}
    asked: list[RequestAttributes] = []

    async def lookup(plural: str, group: str, ns: str, name: str) -> Any:
        return pods.get((ns, name))

    async def authorize(user: UserInfo, attrs: RequestAttributes) -> None:
        asked.append(attrs)
        if user.name == "mallory":
            raise errors.forbidden_request("no")

    store = SpanStore()
    endpoints = TraceEndpoints(store, lookup, authorize, open_access=False)
    spans = [pod_span(pods[k], "kubelet.seen", "kubelet", 1.0, 1.0) for k in sorted(pods)]
    body = orjson.dumps({"spans": [*spans, {"not": "a span"}]})

    node = UserInfo("system:node:n1", groups=("system:nodes",))
    assert await endpoints.write(body, node) == 1  # its own pod only
    scheduler = UserInfo("system:kube-scheduler")
    assert await endpoints.write(body, scheduler) == 2
    with pytest.raises(errors.StatusError) as err:
        await endpoints.write(body, UserInfo("alice", groups=("system:authenticated",)))
    assert err.value.code == 403
    with pytest.raises(errors.StatusError) as err:
        await endpoints.write(b"[]", scheduler)
    assert err.value.code == 400

    trace = await endpoints.pod_trace(UserInfo("alice"), "ns", "mine")
    assert trace["traceId"] == trace_id(UID) and len(trace["spans"]) == 2
    assert asked[-1] == RequestAttributes(
        verb="get", resource="pods", namespace="ns", name="mine", api_version="v1"
    )
    with pytest.raises(errors.StatusError) as err:
        await endpoints.pod_trace(UserInfo("mallory"), "ns", "mine")
    assert err.value.code == 403
    with pytest.raises(errors.StatusError) as err:
        await endpoints.pod_trace(UserInfo("alice"), "ns", "gone")
    assert err.value.code == 404
