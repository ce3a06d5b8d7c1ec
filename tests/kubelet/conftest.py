"""Kubelet tests reuse the controller tests' fixtures (a real API server process, a client,
a fresh namespace per test, ``eventually``), start private containerds (e2e) and the
streaming tests' pod on one (``env``)."""

from tests.controllers.conftest import client, cm_server, namespace, run_controllers
from tests.kubelet.node_fixtures import node
from tests.kubelet.registry_fixtures import containerd_with_registry, registry
from tests.kubelet.runtime_fixtures import containerd, containerd_with_images, cri
from tests.kubelet.stream_fixtures import env

__all__ = [
    "client",
    "cm_server",
    "containerd",
    "containerd_with_images",
    "containerd_with_registry",
    "cri",
    "env",
    "namespace",
    "node",
    "registry",
    "run_controllers",
]
