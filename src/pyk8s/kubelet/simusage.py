"""Synthetic CPU and memory usage of simulated pods (kwok's metrics-usage simulation).

Simulated nodes run no containers, yet ``kubectl top`` and the HorizontalPodAutoscaler
need usage figures from every node's ``/metrics/resource``. As kwok's default
metrics-usage configuration does, each running container of a simulated pod uses what
the pod's ``kwok.x-k8s.io/usage-cpu`` and ``kwok.x-k8s.io/usage-memory`` annotations say
(quantities, read again at every scrape so a test can raise or drop the load), else
``1m`` and ``1Mi``. The node uses the sum of its pods.

The kubelet reports CPU as a cumulative counter (``*_cpu_usage_seconds_total``) from
which metrics-server computes a rate between two scrapes, so the simulator integrates
each container's current rate over time: a changed annotation changes the slope from
that moment on, as a real container's load would. Sample times are whole seconds (the
exposition format's timestamps are, once :func:`pyk8s.kubelet.stats.resource_metrics`
wrote them), so the rate a scraper computes is exactly the annotated one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pyk8s.api.quantity import milli_value, parse_quantity

__all__ = [
    "CPU_USAGE_ANNOTATION",
    "MEMORY_USAGE_ANNOTATION",
    "SimulatedPod",
    "UsageSimulator",
]

CPU_USAGE_ANNOTATION = "kwok.x-k8s.io/usage-cpu"
MEMORY_USAGE_ANNOTATION = "kwok.x-k8s.io/usage-memory"
DEFAULT_CPU = "1m"
DEFAULT_MEMORY = "1Mi"

_NS = 1_000_000_000
Obj = dict[str, Any]


@dataclass(frozen=True)
class SimulatedPod:
    """A running simulated pod: its object and when each running container started."""

    pod: Obj
    started: Mapping[str, dt.datetime]


def _rfc3339(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _quantity(annotations: Mapping[str, Any], key: str, default: str) -> tuple[int, int]:
    """(nanocores, bytes)-style integer of the annotation, else of ``default``; a value
    that is not a quantity counts as the default."""
    text = str(annotations.get(key) or default)
    try:
        return milli_value(text), int(parse_quantity(text))
    except ValueError:
        return milli_value(default), int(parse_quantity(default))


def _integrate(
    last: Mapping[str, tuple[int, int]],
    seen: dict[str, tuple[int, int]],
    key: str,
    now: int,
    start: int,
    nanocores: int,
) -> int:
    """The cumulative CPU of ``key`` at ``now``: its current rate applied since its last
    sample (or since ``start`` for a container never sampled before)."""
    since, total = last.get(key) or (min(start, now), 0)
    total += nanocores * max(now - since, 0)
    seen[key] = (now, total)
    return total


class UsageSimulator:
    """Builds a kubelet summary (the shape :func:`resource_metrics` reads) per node."""

    def __init__(self) -> None:
        #: node -> container or "" (the node) -> (last sample second, cumulative ns)
        self._cpu: dict[str, dict[str, tuple[int, int]]] = {}

    def summary(self, node_name: str, pods: Iterable[SimulatedPod], now: float) -> Obj:
        second = int(now)
        stamp = _rfc3339(second)
        last = self._cpu.get(node_name, {})
        seen: dict[str, tuple[int, int]] = {}
        node_rate = node_memory = 0
        out: list[Obj] = []
        for sim in pods:
            meta = sim.pod["metadata"]
            annotations = meta.get("annotations") or {}
            millicores, _ = _quantity(annotations, CPU_USAGE_ANNOTATION, DEFAULT_CPU)
            _, memory = _quantity(annotations, MEMORY_USAGE_ANNOTATION, DEFAULT_MEMORY)
            nanocores = millicores * 1_000_000
            containers: list[Obj] = []
            for name, started in sorted(sim.started.items()):
                begun = int(started.timestamp())
                key = f"{meta.get('uid', '')}/{name}"
                cumulative = _integrate(last, seen, key, second, begun, nanocores)
                containers.append(
                    {
                        "name": name,
                        "startTime": _rfc3339(begun),
                        "cpu": {"time": stamp, "usageCoreNanoSeconds": cumulative},
                        "memory": {"time": stamp, "workingSetBytes": memory},
                    }
                )
                node_rate += nanocores
                node_memory += memory
            if not containers:
                continue
            out.append(
                {
                    "podRef": {
                        "name": meta["name"],
                        "namespace": meta.get("namespace", ""),
                        "uid": meta.get("uid", ""),
                    },
                    "containers": containers,
                    "cpu": {
                        "time": stamp,
                        "usageCoreNanoSeconds": sum(
                            c["cpu"]["usageCoreNanoSeconds"] for c in containers
                        ),
                    },
                    "memory": {
                        "time": stamp,
                        "workingSetBytes": sum(c["memory"]["workingSetBytes"] for c in containers),
                    },
                }
            )
        node_cpu = _integrate(last, seen, "", second, second, node_rate)
        self._cpu[node_name] = seen
        return {
            "node": {
                "nodeName": node_name,
                "cpu": {"time": stamp, "usageCoreNanoSeconds": node_cpu},
                "memory": {"time": stamp, "workingSetBytes": node_memory},
            },
            "pods": out,
        }
