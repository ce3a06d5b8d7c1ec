"""Scraping the pods' Prometheus endpoints and naming what they say as custom metrics.

Which pods: those annotated ``prometheus.io/scrape: "true"`` (the annotations of the
usual Kubernetes service-discovery scrape configuration: ``prometheus.io/port``,
``prometheus.io/path`` (default ``/metrics``), ``prometheus.io/scheme`` (default
``http``)), Running with an IP. Without a port annotation the pod's first declared
container port is used, else 80, as Prometheus's pod discovery does.

Naming, as prometheus-adapter's walkthrough rules: a counter (``# TYPE x counter``, or an
untyped sample whose name ends in ``_total``) ``x_total`` is served as
``x_per_second``, its per-second rate between the last two scrapes (a reset counts from
zero, as PromQL's ``rate``); a gauge (or another untyped sample) is served under its own
name with its last value. Histograms and summaries are left out. A pod's value of a metric
is the sum over its series that match the request's ``metricLabelSelector``
(``sum(...) by (pod)``); a series labelled with a resource's singular name
(``service="web"``, ``deployment="api"``) also counts toward that object in the pod's
namespace, and every series toward the pod's namespace.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from pyk8s.api.selectors import LabelSelector

__all__ = [
    "PORT_ANNOTATION",
    "SCRAPE_ANNOTATION",
    "PodScraper",
    "PodSeries",
    "SeriesStore",
    "parse_exposition",
    "scrape_url",
]

log = logging.getLogger(__name__)

SCRAPE_ANNOTATION = "prometheus.io/scrape"
PORT_ANNOTATION = "prometheus.io/port"
PATH_ANNOTATION = "prometheus.io/path"
SCHEME_ANNOTATION = "prometheus.io/scheme"

Obj = dict[str, Any]
Labels = tuple[tuple[str, str], ...]
PodKey = tuple[str, str]


def scrape_url(pod: Obj) -> str | None:
    """Where ``pod``'s metrics are, or None when it does not ask to be scraped (or is
    not Running with an IP yet)."""
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if str(annotations.get(SCRAPE_ANNOTATION, "")).lower() != "true":
        return None
    status = pod.get("status") or {}
    ip = status.get("podIP")
    if status.get("phase") != "Running" or not ip or meta.get("deletionTimestamp"):
        return None
    port = str(annotations.get(PORT_ANNOTATION, "")).strip()
    if not port:
        declared = [
            p.get("containerPort")
            for c in (pod.get("spec") or {}).get("containers") or ()
            for p in c.get("ports") or ()
        ]
        port = str(declared[0]) if declared else "80"
    path = str(annotations.get(PATH_ANNOTATION) or "/metrics")
    scheme = str(annotations.get(SCHEME_ANNOTATION) or "http")
    host = f"[{ip}]" if ":" in ip else ip
    return f"{scheme}://{host}:{port}{path if path.startswith('/') else '/' + path}"


@dataclass(frozen=True, slots=True)
class Sample:
    """One series of one scrape: its sample name, whether it counts up, its labels."""

    name: str
    counter: bool
    labels: Labels
    value: float


def parse_exposition(text: str) -> list[Sample]:
    """The counter and gauge samples of a Prometheus text exposition (ValueError when it
    does not parse)."""
    out: list[Sample] = []
    for family in text_string_to_metric_families(text):
        if family.type not in ("counter", "gauge", "unknown"):
            continue
        for s in family.samples:
            counter = family.type == "counter" or (
                family.type == "unknown" and s.name.endswith("_total")
            )
            if family.type == "counter" and not s.name.endswith("_total"):
                continue  # a counter's _created series
            out.append(Sample(s.name, counter, tuple(sorted(s.labels.items())), float(s.value)))
    return out


def exposed_name(sample: Sample) -> str:
    """prometheus-adapter's name for a series: ``x_total`` counters as ``x_per_second``."""
    if sample.counter:
        return sample.name.removesuffix("_total") + "_per_second"
    return sample.name


@dataclass(slots=True)
class PodSeries:
    """What one pod's last scrape says: metric name -> [(labels, value)]."""

    timestamp: float
    window: float
    metrics: dict[str, list[tuple[Labels, float]]] = field(default_factory=dict)


class SeriesStore:
    """The latest metrics of every scraped pod; counters become rates against the scrape
    before."""

    def __init__(self) -> None:
        self._raw: dict[PodKey, tuple[float, dict[tuple[str, Labels], float]]] = {}
        self._pods: dict[PodKey, PodSeries] = {}

    def update(self, key: PodKey, when: float, samples: Iterable[Sample]) -> None:
        previous = self._raw.get(key)
        raw: dict[tuple[str, Labels], float] = {}
        metrics: dict[str, list[tuple[Labels, float]]] = {}
        window = when - previous[0] if previous else 0.0
        for sample in samples:
            raw[(sample.name, sample.labels)] = sample.value
            if sample.counter:
                before = previous[1].get((sample.name, sample.labels)) if previous else None
                if before is None or window <= 0:
                    continue  # a rate needs two points
                increase = sample.value - before if sample.value >= before else sample.value
                value = increase / window
            else:
                value = sample.value
            metrics.setdefault(exposed_name(sample), []).append((sample.labels, value))
        self._raw[key] = (when, raw)
        self._pods[key] = PodSeries(when, window, metrics)

    def retain(self, keys: set[PodKey]) -> None:
        """Forget the pods that are gone (or no longer scraped)."""
        for key in [k for k in self._raw if k not in keys]:
            del self._raw[key]
            self._pods.pop(key, None)

    def metric_names(self) -> set[str]:
        return {name for series in self._pods.values() for name in series.metrics}

    def object_labels(self) -> set[str]:
        """Every label name of every series (those naming a resource make object metrics)."""
        return {
            label
            for series in self._pods.values()
            for values in series.metrics.values()
            for labels, _ in values
            for label, _ in labels
        }

    def pod(self, key: PodKey) -> PodSeries | None:
        return self._pods.get(key)

    def has_metric(self, metric: str) -> bool:
        return any(metric in s.metrics for s in self._pods.values())

    def pod_value(self, key: PodKey, metric: str, selector: LabelSelector) -> float | None:
        """The sum of the pod's matching series (None: it has no such series)."""
        series = self._pods.get(key)
        values = series.metrics.get(metric) if series else None
        if not values:
            return None
        matched = [v for labels, v in values if selector.matches(dict(labels))]
        return sum(matched) if matched else None

    def aggregate(
        self, namespace: str, metric: str, selector: LabelSelector, label: str = "", value: str = ""
    ) -> tuple[float, PodSeries] | None:
        """The sum over the namespace's pods of the matching series (only those whose
        ``label`` is ``value`` when given), with the newest pod series it came from."""
        total, newest, found = 0.0, None, False
        for (ns, _), series in self._pods.items():
            if ns != namespace:
                continue
            for labels, v in series.metrics.get(metric, ()):
                as_map: Mapping[str, str] = dict(labels)
                if label and as_map.get(label) != value:
                    continue
                if selector.matches(dict(as_map)):
                    total, found = total + v, True
                    if newest is None or series.timestamp > newest.timestamp:
                        newest = series
        return (total, newest) if found and newest is not None else None


class PodScraper:
    """Fetches the pods' metrics concurrently, each within ``timeout``; a pod that does
    not answer or sends what does not parse is skipped with a log line."""

    def __init__(self, timeout: float, concurrency: int = 64) -> None:
        self.timeout = timeout
        self._limit = asyncio.Semaphore(concurrency)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def scrape(self, pods: Iterable[Obj]) -> dict[PodKey, list[Sample]]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=False, limit=0)
            )
        targets = [(p, url) for p in pods if (url := scrape_url(p)) is not None]
        results = await asyncio.gather(*(self._one(url) for _, url in targets))
        return {
            (p["metadata"].get("namespace", ""), p["metadata"]["name"]): samples
            for (p, url), samples in zip(targets, results, strict=True)
            if samples is not None
        }

    async def _one(self, url: str) -> list[Sample] | None:
        assert self._session is not None
        try:
            async with (
                self._limit,
                self._session.get(url, timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp,
            ):
                if resp.status != 200:
                    raise ValueError(f"server returned HTTP status {resp.status}")
                text = await resp.text()
            return parse_exposition(text)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as err:
            log.warning("failed scraping %s: %s", url, err or type(err).__name__)
            return None
