"""Cluster DNS (``pyk8s dns``, the CoreDNS role): Service and pod names answered from
informers, every other name forwarded to the host's resolvers.

* :mod:`~pyk8s.dns.catalog` — Services and EndpointSlices indexed for lookups;
* :mod:`~pyk8s.dns.records` — the naming rules: question → answer (pure);
* :mod:`~pyk8s.dns.forward` — upstream resolvers and forwarding;
* :mod:`~pyk8s.dns.server` — UDP and TCP listeners, metrics, informers.
"""

from pyk8s.dns.catalog import Catalog
from pyk8s.dns.records import DEFAULT_DOMAIN, TTL, Answer, Zone

__all__ = ["DEFAULT_DOMAIN", "TTL", "Answer", "Catalog", "Zone"]
