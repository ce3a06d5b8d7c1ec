"""The latest two samples of every node and container, and the metrics built from them.

The kubelet reports CPU as a cumulative counter, so a usage figure needs two samples:
as upstream's storage, each node and container keeps its last sample and the one before,
and a CPU rate is (difference of the counters) / (difference of their times). A
container first seen in this round has no earlier sample; if it started after its node's
previous scrape, its start (with nothing used yet) serves as one, so a new pod has
metrics after one round (upstream does the same). A counter that went backwards (a
restarted container) starts over. A pod gets PodMetrics only when every one of its
containers has a rate, as upstream; until then it is "not found". Nodes and pods not in
the latest round (their node failed, or they are gone) have no metrics.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pyk8s.api.quantity import BINARY_SI, format_quantity
from pyk8s.metricsserver.scraper import ContainerSample, NodeSample

__all__ = ["Storage", "Usage", "go_duration"]

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Point:
    cpu_ns: float
    time: float
    memory: int


@dataclass(frozen=True, slots=True)
class _Series:
    prev: _Point | None
    last: _Point


@dataclass(frozen=True, slots=True)
class Usage:
    """A usage figure: CPU in nanocores and working set bytes over ``window`` seconds
    ending at ``timestamp``."""

    nanocores: int
    memory: int
    timestamp: float
    window: float

    def as_resources(self) -> Obj:
        return {
            "cpu": format_quantity(Decimal(self.nanocores).scaleb(-9)),
            "memory": format_quantity(self.memory, BINARY_SI),
        }


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()`` of a positive duration (millisecond precision)."""
    ms = round(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs = f"{ms / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    if ms < 1000 and ms:
        return f"{ms}ms"
    return f"{secs}s"


def rfc3339(seconds: float) -> str:
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _next(old: _Series | None, point: _Point) -> _Series:
    if old is None:
        return _Series(None, point)
    if point.time <= old.last.time:
        return old  # the same sample again (the kubelet has not refreshed it)
    if point.cpu_ns < old.last.cpu_ns:
        return _Series(None, point)  # a counter reset: start over
    return _Series(old.last, point)


def _usage(series: _Series) -> Usage | None:
    if series.prev is None:
        return None
    window = series.last.time - series.prev.time
    if window <= 0:
        return None
    rate = (series.last.cpu_ns - series.prev.cpu_ns) / window
    return Usage(int(rate), series.last.memory, series.last.time, window)


class Storage:
    def __init__(self) -> None:
        self._nodes: dict[str, _Series] = {}
        #: (namespace, pod) -> container -> series
        self._pods: dict[tuple[str, str], dict[str, _Series]] = {}

    def store(self, samples: Iterable[NodeSample]) -> None:
        """Take one scrape round's samples in place of the previous round's."""
        nodes: dict[str, _Series] = {}
        pods: dict[tuple[str, str], dict[str, _Series]] = {}
        for sample in samples:
            old_node = self._nodes.get(sample.node)
            if sample.cpu_ns is not None and sample.memory is not None:
                point = _Point(sample.cpu_ns, sample.cpu_time, sample.memory)
                nodes[sample.node] = _next(old_node, point)
            previous_scrape = old_node.last.time if old_node is not None else None
            for key, containers in sample.pods.items():
                old_pod = self._pods.get(key, {})
                kept: dict[str, _Series] = {}
                for name, c in containers.items():
                    series = self._container(old_pod.get(name), c, previous_scrape)
                    if series is not None:
                        kept[name] = series
                if kept:
                    pods[key] = kept
        self._nodes, self._pods = nodes, pods

    @staticmethod
    def _container(
        old: _Series | None, c: ContainerSample, previous_scrape: float | None
    ) -> _Series | None:
        if c.cpu_ns is None or c.memory is None:
            return None
        point = _Point(c.cpu_ns, c.cpu_time, c.memory)
        series = _next(old, point)
        if (
            series.prev is None
            and c.start_time is not None
            and previous_scrape is not None
            and previous_scrape < c.start_time < point.time
        ):
            series = _Series(_Point(0.0, c.start_time, 0), point)
        return series

    def node_usage(self, name: str) -> Usage | None:
        series = self._nodes.get(name)
        return _usage(series) if series is not None else None

    def pod_usage(self, namespace: str, name: str) -> dict[str, Usage] | None:
        """Every container's usage, or None unless each of them has one."""
        containers = self._pods.get((namespace, name))
        if not containers:
            return None
        out: dict[str, Usage] = {}
        for cname, series in containers.items():
            usage = _usage(series)
            if usage is None:
                return None
            out[cname] = usage
        return out

    def node_names(self) -> list[str]:
        return sorted(self._nodes)

    def pod_keys(self) -> list[tuple[str, str]]:
        return sorted(self._pods)
