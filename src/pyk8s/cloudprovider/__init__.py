"""The cloud controller manager's seam and controllers (``pyk8s cloud-controller-manager``).

:mod:`~pyk8s.cloudprovider.provider` is upstream's cloud-provider interface (load
balancers, instances, zones, routes) with a registry of providers by name;
:mod:`~pyk8s.cloudprovider.local` is the built-in ``local`` provider (k3s's ServiceLB:
load balancers answered on the nodes' own addresses, programmed by kube-proxy);
:mod:`~pyk8s.cloudprovider.fake` is a provider for tests; the controllers (service, cloud
node, node lifecycle, route) run on the controller runtime and are wired by
:func:`~pyk8s.cloudprovider.controllers.setup`.
"""

from pyk8s.cloudprovider import fake, local
from pyk8s.cloudprovider.controllers import CONTROLLERS, selected, setup
from pyk8s.cloudprovider.provider import get_provider

__all__ = ["CONTROLLERS", "fake", "get_provider", "local", "selected", "setup"]
