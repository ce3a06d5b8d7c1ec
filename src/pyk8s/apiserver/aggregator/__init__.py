"""API aggregation: group/versions served by extension API servers, as kube-aggregator.

An ``apiregistration.k8s.io/v1`` APIService names who serves a group/version: this API
server (a *local* APIService, made automatically for every built-in and CRD
group/version) or a Service in the cluster, whose server then gets every request under
``/apis/<group>/<version>`` after this server has authenticated and authorized it.

* :mod:`.strategy` — validation, defaults and the Table of APIServices;
* :mod:`.autoregister` — the local APIServices and upstream's priorities;
* :mod:`.proxy` — the HTTPS client of extension servers (front-proxy certificate,
  ``X-Remote-*`` headers, streaming);
* :mod:`.discovery` — aggregated groups in ``/apis`` and aggregated discovery;
* :mod:`.controller` — :class:`Aggregator`, the loop that registers, checks availability
  and refreshes discovery, and the ``extension-apiserver-authentication`` ConfigMap.
"""

from pyk8s.apiserver.aggregator.controller import Aggregator

__all__ = ["Aggregator"]
