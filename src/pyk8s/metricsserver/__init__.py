"""metrics-server: the ``metrics.k8s.io`` resource metrics API (upstream's
kubernetes-sigs/metrics-server), which ``kubectl top`` and the HorizontalPodAutoscaler read.

It scrapes every node's kubelet ``/metrics/resource`` on an interval
(:mod:`~pyk8s.metricsserver.scraper`), keeps the latest two samples of each node and
container to turn cumulative CPU into a rate (:mod:`~pyk8s.metricsserver.storage`), and
serves NodeMetrics and PodMetrics behind the API server's aggregation layer
(:mod:`~pyk8s.metricsserver.api`), trusting the front proxy's ``X-Remote-*`` headers as
the ``extension-apiserver-authentication`` ConfigMap says. ``pyk8s.server.metrics_server``
composes it into the ``pyk8s metrics-server`` process.
"""
