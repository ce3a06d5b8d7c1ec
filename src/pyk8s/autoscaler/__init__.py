"""The cluster autoscaler (upstream's cluster-autoscaler): add nodes when pods cannot be
placed, remove nodes that stay under-used. Nodes come from a :class:`NodeProvider` (the
cloud provider seam); ``pyk8s cluster-autoscaler`` plugs in simulated nodes."""

from pyk8s.autoscaler.autoscaler import Autoscaler, Options
from pyk8s.autoscaler.config import NodeGroup, load_node_groups, parse_duration
from pyk8s.autoscaler.provider import NodeProvider

__all__ = [
    "Autoscaler",
    "NodeGroup",
    "NodeProvider",
    "Options",
    "load_node_groups",
    "parse_duration",
]
