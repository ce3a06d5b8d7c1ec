"""The metrics adapter's scrape targets, naming and rates (pure functions: no server)."""

from __future__ import annotations

from typing import Any

import pytest

from pyk8s.api.selectors import parse_label_selector
from pyk8s.metricsadapter.api import format_value
from pyk8s.metricsadapter.series import SeriesStore, parse_exposition, scrape_url

EVERYTHING = parse_label_selector("")
EXPOSITION = """# HELP http_requests_total Requests served.
# TYPE http_requests_total counter
http_requests_total{code="200",service="web"} %d
http_requests_total{code="500",service="web"} %d
# TYPE queue_depth gauge
queue_depth 7
jobs_done_total %d
# TYPE latency histogram
latency_bucket{le="+Inf"} 3
latency_count 3
latency_sum 1.5
"""


def pod(annotations: dict[str, str], **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "annotations": annotations},
        "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 8080}]}]},
        "status": {"phase": "Running", "podIP": "10.1.2.3", **status},
    }


def test_scrape_url_follows_the_prometheus_annotations() -> None:
    assert scrape_url(pod({})) is None
    assert scrape_url(pod({"prometheus.io/scrape": "false"})) is None
    assert scrape_url(pod({"prometheus.io/scrape": "true"})) == "http://10.1.2.3:8080/metrics"
    custom = {"prometheus.io/scrape": "true", "prometheus.io/port": "9100",
              "prometheus.io/path": "stats", "prometheus.io/scheme": "https"}  # fmt: skip
    assert scrape_url(pod(custom)) == "https://10.1.2.3:9100/stats"
    assert scrape_url(pod({"prometheus.io/scrape": "true"}, phase="Pending")) is None


def test_counters_are_served_as_rates_and_gauges_as_they_are() -> None:
    store = SeriesStore()
    key = ("ns", "p")
    store.update(key, 100.0, parse_exposition(EXPOSITION % (10, 1, 50)))
    # one scrape: gauges only, a rate needs two points; histograms are left out
    assert store.metric_names() == {"queue_depth"}
    store.update(key, 110.0, parse_exposition(EXPOSITION % (40, 11, 20)))
    assert store.metric_names() == {"queue_depth", "http_requests_per_second",
                                    "jobs_done_per_second"}  # fmt: skip
    # (30 + 10) / 10 s, summed over the pod's series
    assert store.pod_value(key, "http_requests_per_second", EVERYTHING) == pytest.approx(4.0)
    only_errors = parse_label_selector("code=500")
    assert store.pod_value(key, "http_requests_per_second", only_errors) == pytest.approx(1.0)
    # jobs_done_total went 50 -> 20: a reset, counted from zero as PromQL's rate does
    assert store.pod_value(key, "jobs_done_per_second", EVERYTHING) == pytest.approx(2.0)
    assert store.pod_value(key, "queue_depth", EVERYTHING) == 7.0
    assert store.pod_value(key, "missing", EVERYTHING) is None
    series = store.pod(key)
    assert series is not None and series.window == 10.0


def test_series_labels_name_objects_and_namespaces_sum_their_pods() -> None:
    store = SeriesStore()
    for name in ("a", "b"):
        store.update(("ns", name), 100.0, parse_exposition(EXPOSITION % (0, 0, 0)))
        store.update(("ns", name), 102.0, parse_exposition(EXPOSITION % (6, 0, 0)))
    store.update(("other", "c"), 100.0, parse_exposition(EXPOSITION % (0, 0, 0)))
    assert "service" in store.object_labels()
    got = store.aggregate("ns", "http_requests_per_second", EVERYTHING, "service", "web")
    assert got is not None and got[0] == pytest.approx(6.0)
    assert store.aggregate("ns", "http_requests_per_second", EVERYTHING, "service", "x") is None
    namespace = store.aggregate("ns", "queue_depth", EVERYTHING)
    assert namespace is not None and namespace[0] == 14.0
    store.retain({("ns", "a")})
    namespace = store.aggregate("ns", "queue_depth", EVERYTHING)
    assert namespace is not None and namespace[0] == 7.0
    assert store.pod(("other", "c")) is None


def test_values_are_quantities_in_milli_units() -> None:
    assert [format_value(v) for v in (3.0, 1.5, 0.0004, 0.25)] == ["3", "1500m", "0", "250m"]


def test_exposition_that_does_not_parse_is_an_error() -> None:
    with pytest.raises(ValueError):
        parse_exposition("http_requests_total{code=200} x\n")
