"""The EndpointSlice controller: a Service's selected pods, written as EndpointSlices.

kube-proxy and DNS read EndpointSlices, not pods, so this is what makes a Service reach
its pods. As upstream: slices are named ``<service>-<random>``, labelled with
``kubernetes.io/service-name`` and ``endpointslice.kubernetes.io/managed-by``, owned by the
Service, hold at most 100 endpoints each, and pods whose named targetPorts resolve to
different numbers land in different slices. Conditions follow the pod: ``ready`` (Ready
and not terminating, or the Service publishes not-ready addresses), ``serving`` (Ready),
``terminating`` (being deleted). A Service whose pods give no endpoint keeps one empty
placeholder slice, as upstream. A dual-stack Service gets slices of each of its
``ipFamilies`` (``addressType`` IPv4 and IPv6), each endpoint holding the pod's address of
that family; slices of a family the Service no longer has are deleted.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Iterable
from typing import Any

from pyk8s.api.registry import REGISTRY
from pyk8s.client import ApiError, is_conflict, is_not_found
from pyk8s.controllers import _podendpoints as pe
from pyk8s.controllers.runtime import Manager, Request, Result

log = logging.getLogger(__name__)

Obj = dict[str, Any]

SERVICES = REGISTRY.get("", "v1", "services")
PODS = REGISTRY.get("", "v1", "pods")
SLICES = REGISTRY.get("discovery.k8s.io", "v1", "endpointslices")
NODES = REGISTRY.get("", "v1", "nodes")

SERVICE_NAME = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
ZONE_LABEL = "topology.kubernetes.io/zone"
SERVICE_INDEX = "pyk8s-endpointslice-service"
#: upstream's --max-endpoints-per-slice default
MAX_ENDPOINTS_PER_SLICE = 100
EXPECTATIONS_TIMEOUT = 30.0


def _slice_service(es: Obj) -> list[str]:
    labels = (es.get("metadata") or {}).get("labels") or {}
    if labels.get(MANAGED_BY) != CONTROLLER_NAME or SERVICE_NAME not in labels:
        return []
    return [f"{es['metadata'].get('namespace', '')}/{labels[SERVICE_NAME]}"]


def build_endpoint(service: Obj, pod: Obj, node: Obj | None, family: str = "IPv4") -> Obj:
    meta = pod["metadata"]
    terminating = bool(meta.get("deletionTimestamp"))
    ready = pe.is_ready(pod)
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    ep: Obj = {
        "addresses": [pe.pod_ip(pod, family)],
        "conditions": {
            "ready": publish or (ready and not terminating),
            "serving": publish or ready,
            "terminating": terminating,
        },
        "targetRef": pe.target_ref(pod),
    }
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        ep["nodeName"] = spec["nodeName"]
    if spec.get("hostname") and spec.get("subdomain") == service["metadata"]["name"]:
        ep["hostname"] = spec["hostname"]
    zone = ((node or {}).get("metadata") or {}).get("labels", {}).get(ZONE_LABEL)
    if zone:
        ep["zone"] = zone
    return ep


def _ports_key(ports: list[Obj] | None, family: str = "IPv4") -> str:
    ordered = sorted(ports or [], key=lambda p: str(p.get("name", "")))
    return family + json.dumps(ordered, sort_keys=True)


def desired_groups(service: Obj, pods: Iterable[Obj], nodes: dict[str, Obj]) -> dict[str, Obj]:
    """Endpoints grouped by address type and resolved port list (key → {family, ports,
    endpoints}); every family of the Service has a group, empty ones as placeholders."""
    groups: dict[str, Obj] = {}
    pods = sorted(pods, key=lambda p: p["metadata"]["name"])
    for family in pe.service_families(service):
        before = len(groups)
        for pod in pods:
            if not pe.should_be_in_endpoints(pod, include_terminating=True, family=family):
                continue
            ports = pe.endpoint_ports(service, pod)
            key = _ports_key(ports, family)
            node = nodes.get((pod.get("spec") or {}).get("nodeName") or "")
            group = groups.setdefault(key, {"family": family, "ports": ports, "endpoints": []})
            group["endpoints"].append(build_endpoint(service, pod, node, family))
        if len(groups) == before:
            # upstream keeps one placeholder slice with no endpoints and no ports
            groups[_ports_key(None, family)] = {"family": family, "ports": None, "endpoints": []}
    return groups


class EndpointSliceReconciler:
    def __init__(self, manager: Manager) -> None:
        assert SERVICES is not None and PODS is not None and SLICES is not None
        assert NODES is not None
        self.client = manager.client
        self.recorder = manager.recorder
        self.services = manager.informers.informer(SERVICES)
        self.pods = manager.informers.informer(PODS)
        self.nodes = manager.informers.informer(NODES)
        self.slices = manager.informers.informer(SLICES, indexers={SERVICE_INDEX: _slice_service})
        #: service key -> (slice names created, slice names deleted, monotonic deadline)
        self._expect: dict[str, tuple[set[str], set[str], float]] = {}

    def pod_to_services(self, pod: Obj) -> Iterable[Request]:
        ns = (pod.get("metadata") or {}).get("namespace", "")
        candidates = self.services.store.by_index("namespace", ns)
        for svc in pe.services_for_pod(candidates, pod):
            yield Request(ns, svc["metadata"]["name"])

    def _satisfied(self, key: str, slices: list[Obj]) -> bool:
        exp = self._expect.get(key)
        if exp is None:
            return True
        names = {s["metadata"]["name"] for s in slices}
        exp[0].intersection_update(n for n in exp[0] if n not in names)
        exp[1].intersection_update(n for n in exp[1] if n in names)
        if (exp[0] or exp[1]) and exp[2] > time.monotonic():
            return False
        del self._expect[key]
        return True

    def _expectations(self, key: str) -> tuple[set[str], set[str], float]:
        exp = self._expect.get(key)
        if exp is None:
            exp = self._expect[key] = (set(), set(), time.monotonic() + EXPECTATIONS_TIMEOUT)
        return exp

    async def reconcile(self, request: Request) -> Result | None:
        assert SLICES is not None
        key = f"{request.namespace}/{request.name}"
        existing = [copy.deepcopy(s) for s in self.slices.store.by_index(SERVICE_INDEX, key)]
        if not self._satisfied(key, existing):
            return Result(requeue_after=0.5)
        service = self.services.store.get_by_name(request.namespace, request.name)
        pods = None
        if service is not None and not service["metadata"].get("deletionTimestamp"):
            pods = pe.service_pods(
                service, self.pods.store.by_index("namespace", request.namespace)
            )
        if service is None or pods is None:
            for es in existing:
                await self._delete(key, es)
            return None
        nodes = {n["metadata"]["name"]: n for n in self.nodes.store.list()}
        groups = desired_groups(service, pods, nodes)
        by_ports: dict[str, list[Obj]] = {}
        for es in sorted(existing, key=lambda s: s["metadata"]["name"]):
            family = str(es.get("addressType") or "IPv4")
            by_ports.setdefault(_ports_key(es.get("ports"), family), []).append(es)
        try:
            for gkey, group in groups.items():
                eps: list[Obj] = group["endpoints"]
                chunks = [
                    eps[i : i + MAX_ENDPOINTS_PER_SLICE]
                    for i in range(0, len(eps), MAX_ENDPOINTS_PER_SLICE)
                ] or [[]]
                have = by_ports.pop(gkey, [])
                for chunk in chunks:
                    if have:
                        await self._update(service, have.pop(0), group["ports"], chunk)
                    else:
                        await self._create(key, service, group, chunk)
                for es in have:
                    await self._delete(key, es)
            for rest in by_ports.values():
                for es in rest:
                    await self._delete(key, es)
        except ApiError as err:
            if is_conflict(err):
                return Result(requeue=True)
            raise
        return None

    def _body(
        self, service: Obj, ports: list[Obj] | None, endpoints: list[Obj], family: str = "IPv4"
    ) -> Obj:
        meta = service["metadata"]
        labels = pe.service_labels(service)
        labels[SERVICE_NAME] = meta["name"]
        labels[MANAGED_BY] = CONTROLLER_NAME
        body: Obj = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "generateName": f"{meta['name']}-",
                "namespace": meta["namespace"],
                "labels": labels,
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "addressType": family,
            "endpoints": endpoints,
        }
        if ports:
            body["ports"] = ports
        return body

    async def _create(self, key: str, service: Obj, group: Obj, endpoints: list[Obj]) -> None:
        assert SLICES is not None
        body = self._body(service, group["ports"], endpoints, group["family"])
        body["metadata"]["annotations"] = {pe.TRIGGER_TIME: pe.now()}
        created = await self.client.create(SLICES, body, service["metadata"]["namespace"])
        self._expectations(key)[0].add(created["metadata"]["name"])

    async def _update(
        self, service: Obj, es: Obj, ports: list[Obj] | None, endpoints: list[Obj]
    ) -> None:
        assert SLICES is not None
        want = self._body(service, ports, endpoints)
        meta = es["metadata"]
        if (
            (es.get("endpoints") or []) == endpoints
            and (es.get("ports") or []) == (ports or [])
            and meta.get("labels") == want["metadata"]["labels"]
        ):
            return
        new = copy.deepcopy(es)
        new["metadata"]["labels"] = want["metadata"]["labels"]
        new["metadata"].setdefault("annotations", {})[pe.TRIGGER_TIME] = pe.now()
        new["endpoints"] = endpoints
        if not ports:
            new.pop("ports", None)
        else:
            new["ports"] = ports
        await self.client.update(SLICES, new)

    async def _delete(self, key: str, es: Obj) -> None:
        assert SLICES is not None
        meta = es["metadata"]
        try:
            await self.client.delete(
                SLICES, meta["name"], meta["namespace"], preconditions={"uid": meta["uid"]}
            )
        except ApiError as err:
            if not is_not_found(err) and not is_conflict(err):
                raise
        self._expectations(key)[1].add(meta["name"])


def setup(manager: Manager) -> None:
    reconciler = EndpointSliceReconciler(manager)
    controller = manager.add("endpointslice", reconciler, workers=2)
    controller.watch(reconciler.services)
    controller.watch(reconciler.pods, reconciler.pod_to_services)

    def slice_owner(es: Obj) -> Iterable[Request]:
        for key in _slice_service(es):
            ns, _, name = key.partition("/")
            yield Request(ns, name)

    controller.watch(reconciler.slices, slice_owner)
