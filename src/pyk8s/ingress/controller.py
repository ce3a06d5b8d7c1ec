"""The ingress controller's loop: watch the objects, render, reload nginx, write status.

Every change to an Ingress, IngressClass, Service, EndpointSlice or Secret marks the
configuration dirty; one loop renders and applies it once the burst has settled
(``debounce`` after the last change, at most ``max_delay`` after the first), so a
rollout that touches fifty EndpointSlices costs one reload. Identical renders are not
applied. A render nginx refuses leaves the running configuration in place and is
reported (an Event ``RELOAD`` on the Ingresses, upstream's reason, and
``nginx_ingress_controller_config_last_reload_successful`` 0).

The controller runs on the host, not in a pod, so its own Service
(``--publish-service``, ``type: LoadBalancer``, ports 80/443) has no selector and the
controller writes its EndpointSlice: the host's address and nginx's ports. Each Ingress
it serves gets that Service's ``status.loadBalancer.ingress`` (what the cloud
provider's load balancer, e.g. ServiceLB, wrote there); until it has any, the node's
InternalIP (the address the EndpointSlice names), as ingress-nginx falls back to the
addresses of the nodes its pods run on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import (
    NORMAL,
    WARNING,
    Client,
    ClientError,
    EventRecorder,
    ResourceRef,
    SharedInformer,
    is_already_exists,
    is_conflict,
    is_forbidden,
    is_not_found,
)
from pyk8s.ingress.gateway import CONTROLLER_NAME, GatewayRendered, render_gateways
from pyk8s.ingress.gateway_crds import (
    CRDS,
    GATEWAY_CLASSES,
    GATEWAYS,
    HTTP_ROUTES,
    REFERENCE_GRANTS,
)
from pyk8s.ingress.nginx import Nginx, NginxError
from pyk8s.ingress.render import (
    HTTP_PORT,
    HTTPS_PORT,
    Extra,
    Finding,
    RenderConfig,
    owns,
    render,
)

__all__ = ["DEFAULT_CLASS_ANNOTATION", "ControllerConfig", "IngressController"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
#: how often the loop checks that nginx still runs (and starts it again if not)
WATCHDOG_PERIOD = 1.0


def _resource(group: str, plural: str) -> Resource:
    resource = REGISTRY.get(group, "v1", plural)
    assert resource is not None, plural
    return resource


INGRESSES = _resource("networking.k8s.io", "ingresses")
INGRESS_CLASSES = _resource("networking.k8s.io", "ingressclasses")
SERVICES = _resource("", "services")
SLICES = _resource("discovery.k8s.io", "endpointslices")
SECRETS = _resource("", "secrets")
NODES = _resource("", "nodes")
NAMESPACES = _resource("", "namespaces")


@dataclass(frozen=True)
class ControllerConfig:
    ingress_class: str = "pyk8s"
    controller_class: str = "pyk8s.io/ingress-nginx"
    #: namespace/name of the controller's own LoadBalancer Service ("" for none)
    publish_service: str = "kube-system/pyk8s-ingress"
    #: the host address the Service's EndpointSlice names (and the status fallback)
    address: str = "127.0.0.1"
    #: the node this host is (the endpoint's nodeName: externalTrafficPolicy Local)
    node_name: str = ""
    http_port: int = HTTP_PORT
    https_port: int = HTTPS_PORT
    bind_address: str = ""
    #: create the IngressClass (marked default) if it does not exist
    create_class: bool = True
    #: install the Gateway API CRDs and the GatewayClass, serve Gateways of that class
    gateway_api: bool = True
    gateway_class: str = "pyk8s"
    debounce: float = 0.1
    max_delay: float = 1.0


class IngressController:
    def __init__(
        self,
        client: Client,
        nginx: Nginx,
        config: ControllerConfig,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.client = client
        self.nginx = nginx
        self.config = config
        self.render_config = RenderConfig(
            prefix=str(nginx.prefix),
            default_certificate=str(nginx.default_certificate),
            http_port=config.http_port,
            https_port=config.https_port,
            bind_address=config.bind_address,
            status_socket=str(nginx.status_socket),
        )
        self.registry = registry if registry is not None else CollectorRegistry()
        self.recorder = EventRecorder(client, "nginx-ingress-controller")
        self.informers = {
            res.plural: SharedInformer.for_resource(client, res)
            for res in (INGRESSES, INGRESS_CLASSES, SERVICES, SLICES, SECRETS)
        }
        self.reload_ok = Gauge(
            "nginx_ingress_controller_config_last_reload_successful",
            "Whether the last configuration reload attempt was successful",
            registry=self.registry,
        )
        self.reload_ok_time = Gauge(
            "nginx_ingress_controller_config_last_reload_successful_timestamp_seconds",
            "Timestamp of the last successful configuration reload",
            registry=self.registry,
        )
        self.reloads = Counter(
            "nginx_ingress_controller_success",
            "Cumulative number of successful configuration reloads",
            registry=self.registry,
        )
        self.reload_errors = Counter(
            "nginx_ingress_controller_errors",
            "Cumulative number of configuration reloads nginx refused",
            registry=self.registry,
        )
        self.reload_seconds = Histogram(
            "pyk8s_ingress_reload_duration_seconds",
            "Writing, testing and reloading a configuration until nginx serves it",
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.nginx_restarts = Counter(
            "pyk8s_ingress_nginx_restarts",
            "Times nginx was found dead and started again",
            registry=self.registry,
        )
        self.ingresses_served = Gauge(
            "pyk8s_ingress_ingresses", "Ingresses this controller serves", registry=self.registry
        )
        self._findings: set[Finding] = set()
        self._changed = asyncio.Event()
        self._first_change: float | None = None
        self._last_change = 0.0
        self._task: asyncio.Task[None] | None = None
        self._status_task: asyncio.Task[None] | None = None
        self._status_due = asyncio.Event()
        self._healthy = False
        #: the Gateway listener ports the running nginx listens on
        self._gateway_ports: set[int] = set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self, sync_within: float = 60.0) -> None:
        self.nginx.prepare()
        if self.config.create_class:
            await self.ensure_ingress_class()
        if self.config.publish_service:
            await self.ensure_service()
        if self.config.gateway_api:
            try:
                await self.ensure_gateway_api()
            except ClientError as err:  # e.g. not allowed to create CRDs: Ingresses only
                log.warning("the Gateway API is not served", extra={"error": str(err)})
        spec_only = ("ingresses", "gatewayclasses", "gateways", "httproutes")
        for plural, informer in self.informers.items():
            informer.add_event_handler(
                on_add=self._on_change,
                on_update=self._on_ingress_update if plural in spec_only else self._on_update,
                on_delete=self._on_change,
            )
            informer.start()
        for informer in self.informers.values():
            if not await informer.wait_synced(within=sync_within):
                raise TimeoutError(f"{informer.name} did not sync within {sync_within}s")
        self._changed.set()
        self._task = asyncio.create_task(self._loop(), name="ingress-sync")
        self._status_task = asyncio.create_task(self._status_loop(), name="ingress-status")

    async def stop(self) -> None:
        for task in (self._task, self._status_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._status_task = None
        for informer in self.informers.values():
            await informer.stop()
        await self.nginx.stop()
        await self.recorder.close()

    def healthy(self) -> bool:
        return (
            self._healthy
            and self.nginx.running()
            and self._task is not None
            and not self._task.done()
        )

    # ------------------------------------------------------------------ objects we own

    async def ensure_ingress_class(self) -> None:
        body = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {
                "name": self.config.ingress_class,
                "annotations": {DEFAULT_CLASS_ANNOTATION: "true"},
                "labels": {"app.kubernetes.io/managed-by": "pyk8s"},
            },
            "spec": {"controller": self.config.controller_class},
        }
        try:
            await self.client.create(INGRESS_CLASSES, body)
            log.info("ingress class created", extra={"class": self.config.ingress_class})
        except ClientError as err:
            if not is_already_exists(err):
                raise

    async def ensure_gateway_api(self, within: float = 10.0) -> None:
        """The Gateway API CRDs (created if missing, then waited for until served), our
        GatewayClass, and informers on the three kinds."""
        for crd in CRDS:
            try:
                await self.client.create(
                    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"), crd
                )
            except ClientError as err:
                # forbidden: an identity that may not create CRDs (pyk8s server's
                # installs them for it); below waits for them to be served either way
                if not (is_already_exists(err) or is_forbidden(err)):
                    raise
        deadline = time.monotonic() + within
        for ref in (GATEWAY_CLASSES, GATEWAYS, HTTP_ROUTES):
            while True:
                try:
                    await self.client.list(ref, limit=1)
                    break
                except ClientError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)
        body = {
            "apiVersion": GATEWAY_CLASSES[0],
            "kind": "GatewayClass",
            "metadata": {
                "name": self.config.gateway_class,
                "labels": {"app.kubernetes.io/managed-by": "pyk8s"},
            },
            "spec": {"controllerName": CONTROLLER_NAME},
        }
        try:
            await self.client.create(GATEWAY_CLASSES, body)
        except ClientError as err:
            if not is_already_exists(err):
                raise
        kinds: tuple[tuple[str, ResourceRef], ...] = (
            ("gatewayclasses", GATEWAY_CLASSES),
            ("gateways", GATEWAYS),
            ("httproutes", HTTP_ROUTES),
            ("namespaces", NAMESPACES),
        )
        for name, resource in kinds:
            self.informers[name] = SharedInformer.for_resource(self.client, resource)
        while True:
            try:
                await self.client.list(REFERENCE_GRANTS, limit=1)
            except ClientError as err:
                if is_forbidden(err):  # an identity without it: no cross-namespace refs
                    log.warning("ReferenceGrants are not readable", extra={"error": str(err)})
                    return
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
                continue
            break
        self.informers["referencegrants"] = SharedInformer.for_resource(
            self.client, REFERENCE_GRANTS
        )

    def _service_key(self) -> tuple[str, str]:
        namespace, _, name = self.config.publish_service.partition("/")
        return namespace, name

    async def ensure_service(self) -> None:
        """The LoadBalancer Service (created once; users may edit it) and its
        EndpointSlice (kept to this host and these ports)."""
        namespace, name = self._service_key()
        labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "pyk8s"}
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {
                "type": "LoadBalancer",
                "ports": [
                    {"name": "http", "port": 80, "protocol": "TCP",
                     "targetPort": self.config.http_port},
                    {"name": "https", "port": 443, "protocol": "TCP",
                     "targetPort": self.config.https_port},
                ],
            },
        }  # fmt: skip
        address = self.config.address
        endpoints = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {
                    "kubernetes.io/service-name": name,
                    MANAGED_BY: "ingress-controller.pyk8s.io",
                    **labels,
                },
            },
            "addressType": "IPv6" if ":" in address else "IPv4",
            "endpoints": [
                {
                    "addresses": [address],
                    "conditions": {"ready": True},
                    **({"nodeName": self.config.node_name} if self.config.node_name else {}),
                }
            ],
            "ports": [
                {"name": "http", "protocol": "TCP", "port": self.config.http_port},
                {"name": "https", "protocol": "TCP", "port": self.config.https_port},
            ],
        }
        for res, obj in ((SERVICES, service), (SLICES, endpoints)):
            try:
                await self.client.create(res, obj)
                continue
            except ClientError as err:
                if not is_already_exists(err):
                    raise
            if res is SLICES:
                current = await self.client.get(SLICES, name, namespace)
                fields = ("addressType", "endpoints", "ports")
                if any(current.get(f) != obj[f] for f in fields):
                    current.update({f: obj[f] for f in fields})
                    await self.client.update(SLICES, current)

    # ------------------------------------------------------------------ the loop

    def _on_update(self, _old: Any, new: Any) -> None:
        self._on_change(new)

    def _on_ingress_update(self, old: Obj, new: Obj) -> None:
        """A status write (ours, mostly) changes nothing nginx is told: only the status
        loop looks again (a write of ours that conflicted is retried over this one).
        The same for Gateway API objects."""
        if old.get("spec") != new.get("spec") or _annotations(old) != _annotations(new):
            self._on_change(new)
        else:
            self._status_due.set()

    def _on_change(self, _obj: Any) -> None:
        now = time.monotonic()
        if self._first_change is None:
            self._first_change = now
        self._last_change = now
        self._changed.set()

    async def _loop(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
            # that lands as the event is set, and then stop() waits forever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(WATCHDOG_PERIOD):
                    await self._changed.wait()
            if not self._changed.is_set() and self.nginx.running():
                continue  # else sync: it starts nginx again
            while True:  # let the burst settle
                first = self._first_change or time.monotonic()
                quiet_at = self._last_change + self.config.debounce
                wait = min(quiet_at, first + self.config.max_delay) - time.monotonic()
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            self._changed.clear()
            self._first_change = None
            try:
                await self.sync()
            except Exception:  # an odd object or a transient failure must not end the loop
                log.exception("ingress sync failed")
                await asyncio.sleep(1.0)
                self._changed.set()

    def served(self) -> list[Obj]:
        classes = self.informers["ingressclasses"].store.list()
        ours = next((c for c in classes if _name(c) == self.config.ingress_class), None)
        is_default = ours is not None and (
            ((ours.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION)
            == "true"
        )
        return [
            i
            for i in self.informers["ingresses"].store.list()
            if owns(i, self.config.ingress_class, is_default)
        ]

    def unavailable_ports(self, gateways: list[Obj]) -> set[int]:
        """Listener ports nginx could not bind: taken by another process, or below 1024
        without the right to bind them (the ports nginx listens on now are its own)."""
        out: set[int] = set()
        own = {*self._gateway_ports, self.config.http_port, self.config.https_port}
        for gw in gateways:
            for li in (gw.get("spec") or {}).get("listeners") or []:
                port = int(li.get("port") or 0)
                taken = port in own or port in out
                if port and not taken and not port_bindable(self.config.bind_address, port):
                    out.add(port)
        return out

    def served_gateways(self) -> GatewayRendered | None:
        """Gateways of our accepted GatewayClasses and the routes attached to them."""
        if "gateways" not in self.informers:
            return None
        classes = {
            _name(c)
            for c in self.informers["gatewayclasses"].store.list()
            if (c.get("spec") or {}).get("controllerName") == CONTROLLER_NAME
        }
        gateways = [
            g
            for g in self.informers["gateways"].store.list()
            if (g.get("spec") or {}).get("gatewayClassName") in classes
        ]
        return render_gateways(
            gateways,
            self.informers["httproutes"].store.list(),
            self.informers["services"].store.list(),
            self.informers["endpointslices"].store.list(),
            self.render_config,
            addresses=[str(a.get("ip") or a.get("hostname")) for a in self.status_addresses()],
            namespaces={_name(n): n for n in self.informers["namespaces"].store.list()},
            secrets=self.informers["secrets"].store.list(),
            grants=g.store.list() if (g := self.informers.get("referencegrants")) else (),
            unavailable_ports=self.unavailable_ports(gateways),
        )

    async def sync(self) -> None:
        """Render, apply if different, record findings, write status."""
        ingresses = self.served()
        self.ingresses_served.set(len(ingresses))
        gateways = self.served_gateways()
        rendered = render(
            ingresses,
            self.informers["services"].store.list(),
            self.informers["endpointslices"].store.list(),
            self.informers["secrets"].store.list(),
            self.render_config,
            gateways.extra if gateways else Extra(),
        )
        by_key = {(_namespace(i), _name(i)): i for i in ingresses}
        self._record(rendered.findings, by_key)
        if self.nginx.live_hash and not self.nginx.running():
            log.warning("nginx is not running; starting it again")
            self.nginx_restarts.inc()
        if rendered.hash != self.nginx.live_hash or not self.nginx.running():
            started = time.monotonic()
            try:
                await self.nginx.apply(rendered)
            except NginxError as err:
                self.reload_ok.set(0)
                self.reload_errors.inc()
                self._healthy = self.nginx.running()
                log.error("nginx refused the configuration", extra={"error": str(err)})
                for ingress in ingresses:
                    self.recorder.event(
                        ingress, WARNING, "RELOAD", f"Error reloading NGINX: {err}"[:1024]
                    )
                if gateways is not None:  # what nginx refused is not programmed
                    await self._write_gateway_status(not_programmed(gateways, str(err)))
                return
            self.reload_seconds.observe(time.monotonic() - started)
            self.reload_ok.set(1)
            self.reload_ok_time.set_to_current_time()
            self.reloads.inc()
            log.info(
                "nginx reloaded",
                extra={
                    "hash": rendered.hash,
                    "ingresses": len(ingresses),
                    "upstreams": len(rendered.upstreams),
                    "seconds": round(self.nginx.last_reload_seconds, 3),
                },
            )
        self._healthy = True
        if gateways is not None:  # nginx holds these now
            self._gateway_ports = set(gateways.ports)
        self._status_due.set()
        if gateways is not None:
            await self._write_gateway_status(gateways)

    def _record(self, findings: list[Finding], by_key: Mapping[tuple[str, str], Obj]) -> None:
        """Events for findings that are new since the last render (a finding that
        persists is not repeated at every sync)."""
        current = set(findings)
        for f in findings:
            if f not in self._findings and (f.namespace, f.name) in by_key:
                self.recorder.event(by_key[(f.namespace, f.name)], f.type, f.reason, f.message)
        self._findings = current

    def status_addresses(self) -> list[Obj]:
        """The publish Service's load-balancer ingress, else this host's address."""
        if self.config.publish_service:
            namespace, name = self._service_key()
            svc = self.informers["services"].store.get(f"{namespace}/{name}")
            lb = ((svc or {}).get("status") or {}).get("loadBalancer") or {}
            entries = [
                {k: e[k] for k in ("ip", "hostname") if e.get(k)} for e in lb.get("ingress") or []
            ]
            entries = [e for e in entries if e]
            if entries:
                return sorted(entries, key=lambda e: (e.get("ip", ""), e.get("hostname", "")))
        return [{"ip": self.config.address}]

    async def _status_loop(self, parallel: int = 8) -> None:
        """Status writes in their own loop, ``parallel`` at a time, so that 1,000 new
        Ingresses do not hold the next reload up behind 1,000 API calls."""
        while True:
            await self._status_due.wait()
            self._status_due.clear()
            want = self.status_addresses()
            stale = [
                i
                for i in self.served()
                if (((i.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [])
                != want
            ]
            for start in range(0, len(stale), parallel):
                results = await asyncio.gather(
                    *(self._write_status(i, want) for i in stale[start : start + parallel]),
                    return_exceptions=True,
                )
                for result in results:
                    if isinstance(result, BaseException):
                        log.warning("ingress status not written", extra={"error": str(result)})
                        self._status_due.set()

    async def _write_status(self, ingress: Obj, want: list[Obj]) -> None:
        body = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": _name(ingress),
                "namespace": _namespace(ingress),
                "resourceVersion": (ingress.get("metadata") or {}).get("resourceVersion"),
            },
            "spec": ingress.get("spec") or {},
            "status": {"loadBalancer": {"ingress": want}},
        }
        try:
            await self.client.update_status(INGRESSES, body)
        except ClientError as err:
            if is_conflict(err) or is_not_found(err):
                return  # a newer one comes through the informer, and another round
            raise
        self.recorder.event(ingress, NORMAL, "Sync", "Scheduled for sync")

    async def _write_gateway_status(self, rendered: GatewayRendered) -> None:
        """GatewayClass Accepted, Gateway and HTTPRoute status where it differs (a
        condition keeps its lastTransitionTime while its status stays)."""
        jobs: list[tuple[tuple[str, str], Obj, Obj]] = []
        for gc in self.informers["gatewayclasses"].store.list():
            if (gc.get("spec") or {}).get("controllerName") == CONTROLLER_NAME:
                gen = int((gc.get("metadata") or {}).get("generation") or 0)
                want = {"conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
                                        "message": "handled by pyk8s ingress-controller",
                                        "observedGeneration": gen}]}  # fmt: skip
                jobs.append((GATEWAY_CLASSES, gc, want))
        for gw in self.informers["gateways"].store.list():
            if (key := (_namespace(gw), _name(gw))) in rendered.gateways:
                jobs.append((GATEWAYS, gw, rendered.gateways[key]))
        for route in self.informers["httproutes"].store.list():
            parents = (route.get("status") or {}).get("parents") or []
            # other controllers' entries stay; ours are replaced (stale ones dropped)
            others = [p for p in parents if p.get("controllerName") != CONTROLLER_NAME]
            ours = rendered.routes.get((_namespace(route), _name(route)), [])
            if ours or len(others) < len(parents):
                jobs.append((HTTP_ROUTES, route, {**(route.get("status") or {}),
                                                  "parents": others + ours}))  # fmt: skip
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for ref, obj, want in jobs:
            have = obj.get("status") or {}
            status = _with_times(want, have, now)
            if status == have:
                continue
            try:
                await self.client.update_status(ref, {**obj, "status": status})
            except ClientError as err:
                if not (is_conflict(err) or is_not_found(err)):
                    log.warning("gateway api status not written", extra={"error": str(err)})
                self._on_change(obj)  # look again with the newer object


def port_bindable(address: str, port: int) -> bool:
    """Whether this process could listen on ``address:port`` now."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address or "0.0.0.0", port))
        except OSError:
            return False
    return True


def not_programmed(rendered: GatewayRendered, error: str) -> GatewayRendered:
    """``rendered`` with every Gateway and listener ``Programmed=False`` (reason
    ``Invalid``): nginx refused the configuration, the last good one still runs."""
    message = f"nginx refused the configuration: {error}"[:1024]

    def unprogram(conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {**c, "status": "False", "reason": "Invalid", "message": message}
            if c.get("type") == "Programmed"
            else c
            for c in conditions
        ]

    gateways = {
        key: {
            **status,
            "conditions": unprogram(status.get("conditions") or []),
            "listeners": [
                {**li, "conditions": unprogram(li.get("conditions") or [])}
                for li in status.get("listeners") or []
            ],
        }
        for key, status in rendered.gateways.items()
    }
    return dataclasses.replace(rendered, gateways=gateways)


def _with_times(want: Any, have: Any, now: str) -> Any:
    """``want`` with every condition's lastTransitionTime: the one in ``have`` if that
    condition kept its status, else ``now``."""
    if isinstance(want, dict):
        out = {}
        for k, v in want.items():
            old = have.get(k) if isinstance(have, dict) else None
            out[k] = _with_times(v, old, now)
        if "type" in want and "status" in want:
            same = isinstance(have, dict) and have.get("status") == want["status"]
            out["lastTransitionTime"] = have["lastTransitionTime"] if same and have.get(
                "lastTransitionTime") else now  # fmt: skip
        return out
    if isinstance(want, list):
        olds = have if isinstance(have, list) else []
        by_type = {o.get("type"): o for o in olds if isinstance(o, dict) and "type" in o}
        return [
            _with_times(v, by_type.get(v.get("type")) if isinstance(v, dict) and "type" in v
                        else (olds[i] if i < len(olds) else None), now)
            for i, v in enumerate(want)
        ]  # fmt: skip
    return want


def _annotations(obj: Mapping[str, Any]) -> Any:
    return (obj.get("metadata") or {}).get("annotations")


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _namespace(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "")
