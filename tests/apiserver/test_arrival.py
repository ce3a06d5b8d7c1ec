"""The RequestInfo a request was parsed to when its request line was read is what its
handler uses only when aiohttp's own parse of the request gives the same method, path and
query (a path aiohttp decodes differently, or a repeated query argument, is parsed again).

Why: the arrival hook (pyk8s.apiserver.arrival) parses every request once for the
limiters; the handler takes that parse instead of repeating it, and must never act on a
parse of inputs other than its own.
"""

from __future__ import annotations

from pyk8s.api.registry import REGISTRY
from pyk8s.apiserver.arrival import Arrived
from pyk8s.apiserver.inflight import UNCOUNTED
from pyk8s.apiserver.requestinfo import parse_request


def test_the_parse_at_arrival_serves_only_the_same_request() -> None:
    query = {"limit": "1", "labelSelector": "app=web"}
    info = parse_request("GET", "/api/v1/namespaces/default/pods", query, REGISTRY)
    arrived = Arrived(UNCOUNTED, parsed=(("GET", "/api/v1/namespaces/default/pods", query), info))
    assert arrived.info_for("GET", "/api/v1/namespaces/default/pods", dict(query)) is info
    assert info.verb == "list" and info.resource == "pods" and info.namespace == "default"
    for method, path, other in [
        ("POST", "/api/v1/namespaces/default/pods", query),
        ("GET", "/api/v1/namespaces/default/pods/web", query),
        ("GET", "/api/v1/namespaces/default/pods", {**query, "limit": "2"}),
        ("GET", "/api/v1/namespaces/default/pods", {"limit": "1"}),
    ]:
        assert arrived.info_for(method, path, other) is None
    assert Arrived(UNCOUNTED).info_for("GET", "/api/v1/pods", {}) is None
