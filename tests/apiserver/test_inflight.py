"""The max-in-flight limiter's rules: which requests count, which are exempt, what a
rejected one is answered (the HTTP behaviour is in tests/integration/test_limits.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from pyk8s.api.registry import REGISTRY
from pyk8s.apiserver.authn import UserInfo
from pyk8s.apiserver.inflight import InflightLimits, too_many_requests
from pyk8s.apiserver.requestinfo import RequestInfo, parse_request

ALICE = UserInfo("alice", groups=("system:authenticated",))
ADMIN = UserInfo("admin", groups=("system:masters", "system:authenticated"))


def request(method: str, path: str, **query: str) -> RequestInfo:
    return parse_request(method, path, query, REGISTRY)


def test_read_only_and_mutating_requests_have_their_own_limits() -> None:
    limits = InflightLimits(CollectorRegistry(), 2, 1)
    reads = [limits.acquire(request("GET", "/api/v1/pods"), ALICE) for _ in range(2)]
    assert all(reads)
    assert limits.acquire(request("GET", "/api/v1/namespaces/a/pods/p"), ALICE) is None
    write = limits.acquire(request("POST", "/api/v1/namespaces/a/pods"), ALICE)
    assert write is not None
    assert limits.acquire(request("DELETE", "/api/v1/namespaces/a/pods/p"), ALICE) is None
    write.release()
    write.release()  # a slot is given back once
    again = limits.acquire(request("PATCH", "/api/v1/namespaces/a/pods/p"), ALICE)
    assert again is not None
    assert limits.acquire(request("PUT", "/api/v1/namespaces/a/pods/p"), ALICE) is None


def test_long_running_requests_and_system_masters_are_never_rejected() -> None:
    limits = InflightLimits(CollectorRegistry(), 1, 1)
    assert limits.acquire(request("GET", "/api/v1/pods"), ALICE) is not None
    assert limits.acquire(request("POST", "/api/v1/namespaces/a/pods"), ALICE) is not None
    long_running = [
        request("GET", "/api/v1/pods", watch="true"),
        request("GET", "/api/v1/watch/pods"),
        request("GET", "/api/v1/namespaces/a/pods/p/log"),
        request("POST", "/api/v1/namespaces/a/pods/p/exec"),
        request("POST", "/api/v1/namespaces/a/pods/p/attach"),
        request("POST", "/api/v1/namespaces/a/pods/p/portforward"),
        request("GET", "/api/v1/namespaces/a/services/s/proxy/index.html"),
    ]
    for info in long_running:
        assert limits.acquire(info, ALICE) is not None, info
    assert limits.acquire(request("GET", "/api/v1/pods"), ADMIN) is not None
    assert limits.acquire(request("POST", "/api/v1/namespaces/a/pods"), ADMIN) is not None


def test_zero_turns_a_limit_off() -> None:
    limits = InflightLimits(CollectorRegistry(), 0, 1)
    assert all(limits.acquire(request("GET", "/api/v1/pods"), ALICE) for _ in range(1000))


def test_rejections_and_inflight_counts_are_in_upstreams_metrics() -> None:
    registry = CollectorRegistry()
    limits = InflightLimits(registry, 1, 5)
    held = limits.acquire(request("GET", "/api/v1/pods"), ALICE)
    assert held is not None
    assert limits.acquire(request("GET", "/api/v1/namespaces/a/pods/p"), ALICE) is None
    limits._kinds["readOnly"].window_start = 0.0  # the watermark window is over
    limits.publish()
    text = generate_latest(registry).decode()
    assert 'apiserver_current_inflight_requests{request_kind="readOnly"} 1.0' in text
    assert 'apiserver_current_inflight_requests{request_kind="mutating"} 0.0' in text
    assert (
        'apiserver_request_terminations_total{code="429",component="apiserver",group="",'
        'resource="pods",scope="resource",subresource="",verb="GET",version="v1"} 1.0'
    ) in text


def test_the_answer_is_upstreams_plain_text_429_with_retry_after() -> None:
    resp = too_many_requests()
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "1"
    assert resp.text == "Too many requests, please try again later.\n"


def test_the_inflight_gauge_is_the_peak_of_the_last_second() -> None:
    import time

    registry = CollectorRegistry()
    limits = InflightLimits(registry, 10, 10)
    slots = [limits.acquire(request("GET", "/api/v1/pods"), ALICE) for _ in range(3)]
    for slot in slots:
        assert slot is not None
        slot.release()
    kind = limits._kinds["readOnly"]
    line = 'apiserver_current_inflight_requests{request_kind="readOnly"}'

    kind.window_start = time.monotonic() - 1.5  # the window with the peak just ended
    limits.publish()
    assert f"{line} 3.0" in generate_latest(registry).decode()

    kind.watermark, kind.window_start = 3, time.monotonic() - 5  # a peak long gone
    limits.publish()
    assert f"{line} 0.0" in generate_latest(registry).decode()
