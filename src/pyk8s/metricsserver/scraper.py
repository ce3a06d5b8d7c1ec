"""Scraping the kubelets: one ``/metrics/resource`` document per node, parsed into
samples.

Which URL: as upstream, the node's first address of the preferred types with the port
of ``status.daemonEndpoints.kubeletEndpoint``, over HTTPS with a client certificate the
kubelet's CA trusts. A simulated node (``pyk8s sim-nodes``) has no kubelet at its fake
InternalIP; it names where its metrics are served in the
``metrics.pyk8s.io/resource-metrics-url`` annotation, which is used instead. A node that
cannot be reached, answers an error or sends what does not parse is skipped with a log
line for this round; the others are unaffected.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

__all__ = [
    "DEFAULT_ADDRESS_TYPES",
    "RESOURCE_METRICS_URL_ANNOTATION",
    "ContainerSample",
    "NodeSample",
    "Scraper",
    "kubelet_url",
    "parse_resource_metrics",
]

log = logging.getLogger(__name__)

RESOURCE_METRICS_URL_ANNOTATION = "metrics.pyk8s.io/resource-metrics-url"
#: upstream's ``--kubelet-preferred-address-types`` default
DEFAULT_ADDRESS_TYPES = ("Hostname", "InternalDNS", "InternalIP", "ExternalDNS", "ExternalIP")

Obj = dict[str, Any]

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+(-?\d+))?\s*$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(slots=True)
class ContainerSample:
    """One container's cumulative CPU (ns) and working set at ``timestamp`` (s)."""

    cpu_ns: float | None = None
    cpu_time: float = 0.0
    memory: int | None = None
    memory_time: float = 0.0
    start_time: float | None = None


@dataclass(slots=True)
class NodeSample:
    """What one scrape of one kubelet said."""

    node: str
    cpu_ns: float | None = None
    cpu_time: float = 0.0
    memory: int | None = None
    memory_time: float = 0.0
    #: (namespace, pod) -> container name -> sample
    pods: dict[tuple[str, str], dict[str, ContainerSample]] = field(default_factory=dict)


def _unescape(value: str) -> str:
    return value.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")


def parse_resource_metrics(node: str, text: str, now: float) -> NodeSample:
    """The samples of a kubelet's ``/metrics/resource`` (Prometheus text format);
    a sample without a timestamp counts as taken at ``now``. ValueError on a line that
    is not a sample."""
    out = NodeSample(node)
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = _SAMPLE.match(line)
        if m is None:
            raise ValueError(f"not a sample: {line[:80]!r}")
        name, labels_text, value_text, stamp = m.groups()
        if not (name.startswith("container_") or name.startswith("node_")):
            continue
        value = float(value_text)
        when = int(stamp) / 1000 if stamp else now
        if name == "node_cpu_usage_seconds_total":
            out.cpu_ns, out.cpu_time = value * 1e9, when
        elif name == "node_memory_working_set_bytes":
            out.memory, out.memory_time = int(value), when
        elif name.startswith("container_"):
            labels = {k: _unescape(v) for k, v in _LABEL.findall(labels_text or "")}
            key = (labels.get("namespace", ""), labels.get("pod", ""))
            container = out.pods.setdefault(key, {}).setdefault(
                labels.get("container", ""), ContainerSample()
            )
            if name == "container_cpu_usage_seconds_total":
                container.cpu_ns, container.cpu_time = value * 1e9, when
            elif name == "container_memory_working_set_bytes":
                container.memory, container.memory_time = int(value), when
            elif name == "container_start_time_seconds":
                container.start_time = value
    return out


def kubelet_url(node: Obj, address_types: Sequence[str] = DEFAULT_ADDRESS_TYPES) -> str | None:
    """Where ``node``'s ``/metrics/resource`` is (None: the node names no usable address)."""
    annotated = ((node.get("metadata") or {}).get("annotations") or {}).get(
        RESOURCE_METRICS_URL_ANNOTATION
    )
    if annotated:
        return str(annotated)
    status = node.get("status") or {}
    addresses: dict[str, str] = {}
    for a in status.get("addresses") or ():
        addresses.setdefault(str(a.get("type")), str(a.get("address")))
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or 10250
    for kind in address_types:
        if addresses.get(kind):
            host = addresses[kind]
            host = f"[{host}]" if ":" in host else host
            return f"https://{host}:{port}/metrics/resource"
    return None


class Scraper:
    """Fetches every node's resource metrics concurrently, within ``timeout`` each."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        *,
        timeout: float,
        address_types: Sequence[str] = DEFAULT_ADDRESS_TYPES,
        concurrency: int = 64,
    ) -> None:
        self.ssl_context = ssl_context
        self.timeout = timeout
        self.address_types = address_types
        self._limit = asyncio.Semaphore(concurrency)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def scrape(self, nodes: Iterable[Obj], now: float) -> list[NodeSample]:
        """One round: a sample per node that answered (the others were logged)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.ssl_context, limit=0)
            )
        results = await asyncio.gather(*(self._one(n, now) for n in nodes))
        return [r for r in results if r is not None]

    async def _one(self, node: Obj, now: float) -> NodeSample | None:
        name = str(node["metadata"]["name"])
        url = kubelet_url(node, self.address_types)
        if url is None:
            log.warning("skipping node %s: no address of the preferred types", name)
            return None
        assert self._session is not None
        try:
            async with (
                self._limit,
                self._session.get(url, timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp,
            ):
                if resp.status != 200:
                    raise ValueError(f"request failed, status {resp.status}")
                text = await resp.text()
            return parse_resource_metrics(name, text, now)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as err:
            log.warning(
                "failed scraping node %s: %s", name, err or type(err).__name__,
                extra={"node": name, "url": url},
            )  # fmt: skip
            return None
