"""The Endpoints controller: the legacy ``v1 Endpoints`` object of every Service with a
selector, still read by older clients (``kubectl describe service`` shows it).

As upstream: one Endpoints named like the Service, with the Service's labels (plus
``service.kubernetes.io/headless`` for headless Services) and the
``endpoints.kubernetes.io/last-change-trigger-time`` annotation; ready pods go to
``addresses``, not-ready ones to ``notReadyAddresses`` (all to ``addresses`` when the
Service publishes not-ready addresses), terminating pods are left out; subsets are packed
by port set. ``default/kubernetes`` belongs to the API server and is never touched.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterable
from typing import Any

from pyk8s.api.registry import REGISTRY
from pyk8s.client import ApiError, is_already_exists, is_conflict, is_not_found
from pyk8s.controllers import _podendpoints as pe
from pyk8s.controllers.runtime import Manager, Request, Result

log = logging.getLogger(__name__)

Obj = dict[str, Any]

SERVICES = REGISTRY.get("", "v1", "services")
PODS = REGISTRY.get("", "v1", "pods")
ENDPOINTS = REGISTRY.get("", "v1", "endpoints")


def _address(pod: Obj, family: str) -> Obj:
    addr: Obj = {"ip": pe.pod_ip(pod, family), "targetRef": pe.target_ref(pod)}
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        addr["nodeName"] = spec["nodeName"]
    return addr


def build_subsets(service: Obj, pods: Iterable[Obj]) -> list[Obj]:
    """Addresses per port set, sorted as upstream's ``RepackSubsets`` sorts them."""
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    # v1 Endpoints hold one family: the Service's primary one (upstream's rule)
    family = pe.service_families(service)[0]
    groups: dict[str, Obj] = {}
    for pod in pods:
        if not pe.should_be_in_endpoints(pod, include_terminating=publish, family=family):
            continue
        ports = pe.endpoint_ports(service, pod)
        if (service.get("spec") or {}).get("ports") and not ports:
            continue
        key = json.dumps(sorted(ports, key=lambda p: str(p.get("name", ""))), sort_keys=True)
        sub = groups.setdefault(key, {"addresses": [], "notReadyAddresses": [], "ports": ports})
        ready = publish or pe.is_ready(pod)
        sub["addresses" if ready else "notReadyAddresses"].append(_address(pod, family))
    out = []
    for key in sorted(groups):
        sub = groups[key]
        clean: Obj = {}
        for k in ("addresses", "notReadyAddresses"):
            if sub[k]:
                clean[k] = sorted(sub[k], key=lambda a: (a["ip"], a["targetRef"]["uid"]))
        if sub["ports"]:
            clean["ports"] = sorted(sub["ports"], key=lambda p: (p["port"], p["name"]))
        out.append(clean)
    return out


class EndpointsReconciler:
    def __init__(self, manager: Manager) -> None:
        assert SERVICES is not None and PODS is not None and ENDPOINTS is not None
        self.client = manager.client
        self.services = manager.informers.informer(SERVICES)
        self.pods = manager.informers.informer(PODS)
        self.endpoints = manager.informers.informer(ENDPOINTS)

    def pod_to_services(self, pod: Obj) -> Iterable[Request]:
        ns = (pod.get("metadata") or {}).get("namespace", "")
        for svc in pe.services_for_pod(self.services.store.by_index("namespace", ns), pod):
            yield Request(ns, svc["metadata"]["name"])

    async def reconcile(self, request: Request) -> Result | None:
        assert ENDPOINTS is not None
        if (request.namespace, request.name) == ("default", "kubernetes"):
            return None
        service = self.services.store.get_by_name(request.namespace, request.name)
        current = self.endpoints.store.get_by_name(request.namespace, request.name)
        if service is None:
            if current is not None:
                try:
                    await self.client.delete(ENDPOINTS, request.name, request.namespace)
                except ApiError as err:
                    if not is_not_found(err):
                        raise
            return None
        pods = pe.service_pods(service, self.pods.store.by_index("namespace", request.namespace))
        if pods is None:
            return None  # no selector: someone else manages its Endpoints
        subsets = build_subsets(service, pods)
        labels = pe.service_labels(service)
        try:
            if current is None:
                body: Obj = {
                    "apiVersion": "v1",
                    "kind": "Endpoints",
                    "metadata": {
                        "name": request.name,
                        "namespace": request.namespace,
                        "labels": labels,
                        "annotations": {pe.TRIGGER_TIME: pe.trigger_time(service, pods)},
                    },
                    "subsets": subsets,
                }
                await self.client.create(ENDPOINTS, body, request.namespace)
                return None
            if (current.get("subsets") or []) == subsets and (
                current["metadata"].get("labels") or {}
            ) == labels:
                return None
            new = copy.deepcopy(current)
            new["metadata"]["labels"] = labels
            new["metadata"].setdefault("annotations", {})[pe.TRIGGER_TIME] = pe.trigger_time(
                service, pods
            )
            new["subsets"] = subsets
            await self.client.update(ENDPOINTS, new)
        except ApiError as err:
            if is_conflict(err) or is_already_exists(err):
                return Result(requeue=True)
            raise
        return None


def setup(manager: Manager) -> None:
    reconciler = EndpointsReconciler(manager)
    controller = manager.add("endpoints", reconciler, workers=2)
    controller.watch(reconciler.services)
    controller.watch(reconciler.pods, reconciler.pod_to_services)
    controller.watch(reconciler.endpoints)
