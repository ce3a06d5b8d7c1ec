"""Which cloud controllers exist and how they are wired to a provider and a Manager.

Upstream's cloud-controller-manager names (``--controllers``): ``cloud-node-controller``,
``cloud-node-lifecycle-controller``, ``service-lb-controller``, ``node-route-controller``;
``*`` is all, ``-name`` disables one. A controller whose provider part is missing (no
routes, no load balancers) is skipped, as upstream skips it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import WARNING
from pyk8s.cloudprovider.node import CloudNodeReconciler, NodeLifecycleReconciler
from pyk8s.cloudprovider.provider import Context, Interface, Obj
from pyk8s.cloudprovider.route import ROUTES_KEY, RouteReconciler
from pyk8s.cloudprovider.service import ServiceReconciler, node_lb_key
from pyk8s.controllers.runtime import Manager, Request, select_controllers

__all__ = ["CONTROLLERS", "selected", "setup"]

log = logging.getLogger(__name__)

NODES: Resource = REGISTRY.get("", "v1", "nodes")  # type: ignore[assignment]
SERVICES: Resource = REGISTRY.get("", "v1", "services")  # type: ignore[assignment]
SLICES: Resource = REGISTRY.get("discovery.k8s.io", "v1", "endpointslices")  # type: ignore[assignment]
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
BY_SERVICE = "byService"

CONTROLLERS: tuple[str, ...] = (
    "cloud-node-controller",
    "cloud-node-lifecycle-controller",
    "service-lb-controller",
    "node-route-controller",
)


def selected(names: Iterable[str]) -> list[str]:
    """The controllers ``--controllers`` turns on (ValueError for an unknown name)."""
    return select_controllers(names, CONTROLLERS)


def _slice_service(sl: Obj) -> list[str]:
    meta = sl.get("metadata") or {}
    service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return [f"{meta.get('namespace')}/{service}"] if service else []


def setup(manager: Manager, provider: Interface, names: Iterable[str]) -> list[str]:
    """Add the named controllers for ``provider`` to ``manager``; the ones added."""
    nodes = manager.informers.informer(NODES)
    services = manager.informers.informer(SERVICES)
    slices = manager.informers.informer(SLICES, indexers={BY_SERVICE: _slice_service})
    classes = provider.load_balancer_classes()

    def owns(svc: Obj) -> bool:
        cls = (svc.get("spec") or {}).get("loadBalancerClass")
        return (cls or "") in classes

    def report(obj: Obj, reason: str, message: str) -> None:
        manager.recorder.event(obj, WARNING, reason, message)

    provider.initialize(
        Context(
            services=services.store.list,
            endpoint_slices=lambda ns, name: slices.store.by_index(BY_SERVICE, f"{ns}/{name}"),
            report=report,
            owns=owns,
        )
    )
    done: list[str] = []
    wanted = selected(names)
    instances = provider.instances_v2()
    if instances is not None:
        if "cloud-node-controller" in wanted:
            ctl = manager.add(
                "cloud-node-controller",
                CloudNodeReconciler(manager.client, nodes.store, manager.recorder, instances),
            )
            ctl.watch(nodes)
            done.append("cloud-node-controller")
        if "cloud-node-lifecycle-controller" in wanted:
            ctl = manager.add(
                "cloud-node-lifecycle-controller",
                NodeLifecycleReconciler(manager.client, nodes.store, manager.recorder, instances),
            )
            ctl.watch(nodes)
            done.append("cloud-node-lifecycle-controller")
    balancer = provider.load_balancer()
    if balancer is not None and "service-lb-controller" in wanted:
        reconciler = ServiceReconciler(
            manager.client, services.store, nodes.store, manager.recorder, balancer, owns
        )
        lb_ctl = manager.add("service-lb-controller", reconciler)

        def load_balancers() -> list[Request]:
            return [
                Request(s["metadata"].get("namespace", ""), s["metadata"]["name"])
                for s in services.store.list()
                if (s.get("spec") or {}).get("type") == "LoadBalancer"
                or s["metadata"].get("finalizers")
            ]

        def enqueue_all(*_objs: Any) -> None:
            for req in load_balancers():
                lb_ctl.queue.add(req)

        def on_service(obj: Obj) -> None:
            meta = obj.get("metadata") or {}
            lb_ctl.queue.add(Request(meta.get("namespace", ""), meta.get("name", "")))
            if (obj.get("spec") or {}).get("type") == "LoadBalancer":
                enqueue_all()  # they may share ports with this one

        def on_node_update(old: Obj, new: Obj) -> None:
            if node_lb_key(old) != node_lb_key(new):
                enqueue_all()

        def on_slice(sl: Obj) -> None:
            for key in _slice_service(sl):
                ns, _, name = key.partition("/")
                svc = services.store.get_by_name(ns, name)
                spec = (svc or {}).get("spec") or {}
                if spec.get("externalTrafficPolicy") == "Local":
                    lb_ctl.queue.add(Request(ns, name))

        services.add_event_handler(
            on_add=on_service, on_update=lambda o, n: on_service(n), on_delete=on_service
        )
        nodes.add_event_handler(on_add=enqueue_all, on_update=on_node_update, on_delete=enqueue_all)
        slices.add_event_handler(
            on_add=on_slice, on_update=lambda o, n: on_slice(n), on_delete=on_slice
        )
        done.append("service-lb-controller")
    routes = provider.routes()
    if routes is not None and "node-route-controller" in wanted:
        ctl = manager.add(
            "node-route-controller", RouteReconciler(manager.client, nodes.store, routes), workers=1
        )
        ctl.watch(nodes, lambda _node: [ROUTES_KEY])
        done.append("node-route-controller")
    return done
