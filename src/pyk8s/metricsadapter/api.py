"""``custom.metrics.k8s.io`` (v1beta2, and v1beta1) as upstream's custom-metrics-apiserver
library serves it to the aggregator.

Paths: ``/namespaces/{ns}/pods/*/{metric}?labelSelector=`` (every selected pod that has
the metric), ``/namespaces/{ns}/{resource}/{name}/{metric}`` (one pod or another object),
``/namespaces/{ns}/metrics/{metric}`` (the namespace), each with an optional
``metricLabelSelector`` on the series' labels, answered with a ``MetricValueList``; a
metric that nothing has is ``404 NotFound`` with upstream's text (``the server could not
find the metric x for pods``). Discovery lists ``pods/<metric>``,
``namespaces/<metric>`` and ``<resource>/<metric>`` for each metric seen, as
prometheus-adapter does. Who may ask is decided as for metrics-server
(:class:`~pyk8s.metricsserver.api.DelegatedAuth`): the resource is checked with the metric
as its subresource.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
from aiohttp import web

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.api.selectors import LabelSelector, SelectorError, parse_label_selector
from pyk8s.client import Client
from pyk8s.metricsadapter.series import PodSeries, SeriesStore
from pyk8s.metricsserver.api import DelegatedAuth, RequestHeader, ok, status
from pyk8s.metricsserver.storage import rfc3339

__all__ = ["GROUP", "VERSIONS", "CustomMetricsAPI", "format_value"]

GROUP = "custom.metrics.k8s.io"
VERSIONS = ("v1beta2", "v1beta1")

Obj = dict[str, object]
PodLister = Callable[[str], list[dict[str, object]]]


def format_value(value: float) -> str:
    """A metric value as a Quantity in milli-units, as prometheus-adapter writes it."""
    milli = round(value * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def _json(obj: Obj) -> web.Response:
    return web.Response(body=orjson.dumps(obj), content_type="application/json")


def _not_found(metric: str, resource: str, name: str = "") -> web.Response:
    what = f"{resource} {name}" if name else resource
    return status(404, "NotFound", f"the server could not find the metric {metric} for {what}")


def _resource(text: str) -> Resource | None:
    """``pods``, ``services``, ``deployments.apps``: the resource a path names."""
    plural, _, group = text.partition(".")
    return REGISTRY.for_group_resource(group, plural)


class CustomMetricsAPI:
    """The aiohttp application; ``store`` and the pod lister are read at each request."""

    def __init__(
        self,
        store: SeriesStore,
        *,
        client: Client,
        pods: PodLister,
        requestheader: Callable[[], RequestHeader | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._pods = pods
        self._clock = clock
        self.auth = DelegatedAuth(client, requestheader, clock)
        self.app = web.Application(middlewares=[self.auth.middleware])
        r = self.app.router
        r.add_get("/apis", self._group_list)
        r.add_get(f"/apis/{GROUP}", self._group)
        for version in VERSIONS:
            base = f"/apis/{GROUP}/{version}"
            r.add_get(base, self._resources)
            r.add_get(f"{base}/namespaces/{{namespace}}/metrics/{{metric}}", self._namespace)
            r.add_get(f"{base}/namespaces/{{namespace}}/{{resource}}/{{name}}/{{metric}}",
                      self._namespaced)  # fmt: skip
            r.add_get(f"{base}/{{resource}}/{{name}}/{{metric}}", self._cluster_scoped)
        for path in ("/healthz", "/livez", "/readyz"):
            r.add_get(path, ok)

    # ------------------------------------------------------------------ discovery

    def _group_doc(self) -> Obj:
        versions = [{"groupVersion": f"{GROUP}/{v}", "version": v} for v in VERSIONS]
        return {"name": GROUP, "versions": versions, "preferredVersion": versions[0]}

    async def _group_list(self, _: web.Request) -> web.Response:
        return _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": [self._group_doc()]})

    async def _group(self, _: web.Request) -> web.Response:
        return _json({"kind": "APIGroup", "apiVersion": "v1", **self._group_doc()})

    async def _resources(self, request: web.Request) -> web.Response:
        version = request.path.rstrip("/").rsplit("/", 1)[-1]
        objects = sorted(
            (r.plural if not r.group else f"{r.plural}.{r.group}")
            for label in self.store.object_labels()
            if (r := _by_singular(label)) is not None
        )
        resources = []
        for metric in sorted(self.store.metric_names()):
            for plural, namespaced in [("pods", True), ("namespaces", False)] + [
                (o, True) for o in objects if o != "pods"
            ]:
                resources.append({"name": f"{plural}/{metric}", "singularName": "",
                                  "namespaced": namespaced, "kind": "MetricValueList",
                                  "verbs": ["get"]})  # fmt: skip
        return _json({"kind": "APIResourceList", "apiVersion": "v1",
                      "groupVersion": f"{GROUP}/{version}", "resources": resources})  # fmt: skip

    # ------------------------------------------------------------------ values

    @staticmethod
    def _selectors(request: web.Request) -> tuple[LabelSelector, LabelSelector] | web.Response:
        try:
            return (
                parse_label_selector(request.query.get("labelSelector", "")),
                parse_label_selector(request.query.get("metricLabelSelector", "")),
            )
        except SelectorError as err:
            return status(400, "BadRequest", str(err))

    def _item(
        self, version: str, described: Obj, metric: str, value: float, series: PodSeries
    ) -> Obj:
        item: Obj = {"describedObject": described}
        if version == "v1beta1":
            item["metricName"] = metric
        else:
            item["metric"] = {"name": metric}
        item["timestamp"] = rfc3339(series.timestamp)
        if series.window > 0:
            item["windowSeconds"] = round(series.window)
        item["value"] = format_value(value)
        return item

    def _list(self, version: str, items: list[Obj]) -> web.Response:
        return _json({"kind": "MetricValueList", "apiVersion": f"{GROUP}/{version}",
                      "metadata": {}, "items": items})  # fmt: skip

    @staticmethod
    def _version(request: web.Request) -> str:
        return request.path.split("/")[3]

    async def _namespaced(self, request: web.Request) -> web.Response:
        info = request.match_info
        namespace, resource_text, name, metric = (
            info["namespace"], info["resource"], info["name"], info["metric"]
        )  # fmt: skip
        if (denied := await self.auth.authorize(
            request, (GROUP, self._version(request)), "get", resource_text, namespace, name,
            subresource=metric,
        )) is not None:  # fmt: skip
            return denied
        selectors = self._selectors(request)
        if isinstance(selectors, web.Response):
            return selectors
        selector, metric_selector = selectors
        version = self._version(request)
        resource = _resource(resource_text)
        if resource is None or not resource.namespaced:
            return _not_found(metric, resource_text, name)
        if resource.plural == "pods" and not resource.group:
            return self._pods_metric(version, namespace, name, metric, selector, metric_selector)
        got = self.store.aggregate(
            namespace, metric, metric_selector, label=resource.singular, value=name
        )
        if got is None:
            return _not_found(metric, resource.group_resource, name)
        described: Obj = {"kind": resource.kind, "namespace": namespace, "name": name,
                          "apiVersion": _api_version(resource)}  # fmt: skip
        return self._list(version, [self._item(version, described, metric, got[0], got[1])])

    def _pods_metric(
        self,
        version: str,
        namespace: str,
        name: str,
        metric: str,
        selector: LabelSelector,
        metric_selector: LabelSelector,
    ) -> web.Response:
        if not self.store.has_metric(metric):
            return _not_found(metric, "pods", "" if name == "*" else name)
        items = []
        for pod in self._pods(namespace):
            meta = pod["metadata"]
            assert isinstance(meta, dict)
            if name != "*" and meta["name"] != name:
                continue
            if name == "*" and not selector.matches(meta.get("labels")):
                continue
            key = (namespace, str(meta["name"]))
            value = self.store.pod_value(key, metric, metric_selector)
            series = self.store.pod(key)
            if value is None or series is None:
                continue
            described: Obj = {"kind": "Pod", "namespace": namespace, "name": meta["name"],
                              "apiVersion": "/v1"}  # fmt: skip
            items.append(self._item(version, described, metric, value, series))
        if name != "*" and not items:
            return _not_found(metric, "pods", name)
        items.sort(key=lambda i: str(i["describedObject"]["name"]))  # type: ignore[index]
        return self._list(version, items)

    async def _namespace(self, request: web.Request) -> web.Response:
        namespace, metric = request.match_info["namespace"], request.match_info["metric"]
        version = self._version(request)
        if (denied := await self.auth.authorize(
            request, (GROUP, version), "get", "metrics", namespace, metric
        )) is not None:  # fmt: skip
            return denied
        selectors = self._selectors(request)
        if isinstance(selectors, web.Response):
            return selectors
        got = self.store.aggregate(namespace, metric, selectors[1])
        if got is None:
            return _not_found(metric, "namespaces", namespace)
        described: Obj = {"kind": "Namespace", "name": namespace, "apiVersion": "/v1"}
        return self._list(version, [self._item(version, described, metric, got[0], got[1])])

    async def _cluster_scoped(self, request: web.Request) -> web.Response:
        info = request.match_info
        if (denied := await self.auth.authorize(
            request, (GROUP, self._version(request)), "get", info["resource"], "", info["name"],
            subresource=info["metric"],
        )) is not None:  # fmt: skip
            return denied
        return _not_found(info["metric"], info["resource"], info["name"])


def _api_version(resource: Resource) -> str:
    """prometheus-adapter writes core objects' apiVersion as ``/v1``."""
    return f"{resource.group}/{resource.version}"


def _by_singular(label: str) -> Resource | None:
    for r in REGISTRY:
        if r.namespaced and r.singular == label and r.plural != "pods":
            return REGISTRY.for_group_resource(r.group, r.plural)
    return None
