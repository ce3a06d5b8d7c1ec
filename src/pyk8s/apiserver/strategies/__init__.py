"""Per-resource strategies: what the generic store and handlers ask about a resource.

:func:`builtin_strategy` picks the strategy of a built-in resource; anything it does not
name gets the generic :class:`Strategy`. Custom resources get a strategy built from their
CustomResourceDefinition and installed with the resource (see
:meth:`pyk8s.apiserver.handlers.ResourceHandlers.install`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyk8s.api.registry import Resource
from pyk8s.apiserver.allocators import ClusterIPAllocator, NodePortAllocator
from pyk8s.apiserver.strategies.admissionpolicy import (
    ValidatingAdmissionPolicyBindingStrategy,
    ValidatingAdmissionPolicyStrategy,
)
from pyk8s.apiserver.strategies.base import JSON, Rollback, Strategy, Subresource
from pyk8s.apiserver.strategies.certificates import CSRStrategy
from pyk8s.apiserver.strategies.core import (
    BindingStrategy,
    EventStrategy,
    NamespaceStrategy,
    NodeStrategy,
    PersistentVolumeStrategy,
    PodStrategy,
    ReturnsDeletedStrategy,
    ServiceAccountStrategy,
    ServiceStrategy,
)
from pyk8s.apiserver.strategies.flowcontrol import (
    FlowSchemaStrategy,
    PriorityLevelConfigurationStrategy,
)
from pyk8s.apiserver.strategies.webhooks import WebhookConfigurationStrategy
from pyk8s.apiserver.strategies.workloads import GenerationStrategy, JobStrategy, ScalableStrategy

__all__ = ["JSON", "Allocators", "Rollback", "Strategy", "Subresource", "builtin_strategy"]

_BUILTIN: dict[tuple[str, str], Callable[[Resource], Strategy]] = {
    ("", "pods"): PodStrategy,
    ("", "bindings"): BindingStrategy,
    ("certificates.k8s.io", "certificatesigningrequests"): CSRStrategy,
    ("", "namespaces"): NamespaceStrategy,
    ("", "nodes"): NodeStrategy,
    ("", "events"): EventStrategy,
    ("events.k8s.io", "events"): EventStrategy,
    ("", "persistentvolumes"): PersistentVolumeStrategy,
    ("", "persistentvolumeclaims"): PersistentVolumeStrategy,
    ("", "podtemplates"): ReturnsDeletedStrategy,
    ("", "resourcequotas"): ReturnsDeletedStrategy,
    ("storage.k8s.io", "storageclasses"): ReturnsDeletedStrategy,
    ("", "serviceaccounts"): ServiceAccountStrategy,
    ("", "replicationcontrollers"): ScalableStrategy,
    ("apps", "deployments"): ScalableStrategy,
    ("apps", "replicasets"): ScalableStrategy,
    ("apps", "statefulsets"): ScalableStrategy,
    ("apps", "daemonsets"): GenerationStrategy,
    ("batch", "jobs"): JobStrategy,
    ("batch", "cronjobs"): GenerationStrategy,
    ("autoscaling", "horizontalpodautoscalers"): GenerationStrategy,
    ("policy", "poddisruptionbudgets"): GenerationStrategy,
    ("networking.k8s.io", "networkpolicies"): GenerationStrategy,
    ("networking.k8s.io", "ingresses"): GenerationStrategy,
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): (
        WebhookConfigurationStrategy
    ),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"): (
        WebhookConfigurationStrategy
    ),
    ("admissionregistration.k8s.io", "validatingadmissionpolicies"): (
        ValidatingAdmissionPolicyStrategy
    ),
    ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"): (
        ValidatingAdmissionPolicyBindingStrategy
    ),
    ("flowcontrol.apiserver.k8s.io", "flowschemas"): FlowSchemaStrategy,
    ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations"): (
        PriorityLevelConfigurationStrategy
    ),
}


class Allocators:
    """What the Service strategy allocates from (the server's ranges)."""

    def __init__(
        self,
        cluster_ips: ClusterIPAllocator,
        node_ports: NodePortAllocator,
        service_cidr: str,
        node_port_range: tuple[int, int],
        secondary_ips: Sequence[ClusterIPAllocator] = (),
    ) -> None:
        self.secondary_ips = tuple(secondary_ips)
        self.cluster_ips = cluster_ips
        self.node_ports = node_ports
        self.service_cidr = service_cidr
        self.node_port_range = node_port_range


def builtin_strategy(resource: Resource, allocators: Allocators) -> Strategy:
    """The strategy of a built-in resource (the generic one for plain resources)."""
    key = (resource.group, resource.plural)
    if key == ("", "services"):
        a = allocators
        return ServiceStrategy(
            resource,
            a.cluster_ips,
            a.node_ports,
            a.service_cidr,
            a.node_port_range,
            a.secondary_ips,
        )
    return _BUILTIN.get(key, Strategy)(resource)
