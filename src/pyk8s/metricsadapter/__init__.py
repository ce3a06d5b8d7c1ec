"""The custom metrics adapter: ``custom.metrics.k8s.io`` from the pods' own Prometheus
endpoints, so a HorizontalPodAutoscaler can scale on ``http_requests_per_second``
without installing Prometheus (upstream's prometheus-adapter, with the scraping that
Prometheus would do built in).

:mod:`~pyk8s.metricsadapter.series` finds the pods that ask to be scraped (the
``prometheus.io/*`` annotations), parses their text exposition and turns it into named
metrics with prometheus-adapter's naming (a counter ``x_total`` is served as the rate
``x_per_second``); :mod:`~pyk8s.metricsadapter.api` serves them as ``MetricValueList``s
for pods, the objects that a series' labels name (``service="web"``) and namespaces,
behind the aggregation layer with metrics-server's delegated authentication.
``pyk8s.server.metrics_adapter`` composes it into the ``pyk8s metrics-adapter`` process.
"""
