"""The aggregator's controllers, inside the API server process as upstream runs them.

One level-based loop over APIService names, fed by the watch cache:

* **autoregister**: at start the built-in group/versions get their local APIServices,
  and the group/versions CustomResourceDefinitions serve are kept registered as CRDs
  come and go (see :mod:`.autoregister`);
* **availability**: each APIService's ``Available`` condition, with upstream's reasons —
  ``Local`` for local ones; for a remote one the Service must exist (``ServiceNotFound``)
  and, unless it is an ExternalName, listen on the port (``ServicePortError``) and have a
  ready endpoint with that port (``EndpointsNotFound``, ``MissingEndpoints``), and a GET
  of ``/apis/<group>/<version>`` must answer 2xx/3xx within 5 s
  (``FailedDiscoveryCheck``); then ``Passed``. A remote APIService is checked again when
  its Service or EndpointSlices change, every :data:`RESYNC` seconds, and sooner (with
  back-off) while it fails; so the condition turns False soon after its pod is gone;
* **discovery**: after each passing check the extension server's discovery document is
  fetched again (:mod:`.discovery`), and its OpenAPI v3 index: a group/version it
  publishes joins this server's ``/openapi/v3`` index (``kubectl explain``), and the
  document itself is proxied to it.

It also keeps the ``extension-apiserver-authentication`` ConfigMap in ``kube-system``
current at start: the CAs and request-header settings extension servers need to trust
the API server's front-proxy requests.

Every write goes through the generic update path as the API server itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from pyk8s.api import errors
from pyk8s.api.registry import REGISTRY
from pyk8s.apiserver.aggregator.autoregister import (
    AUTOMANAGED_LABEL,
    BUILTIN_PRIORITIES,
    CRD_GROUP_PRIORITY,
    CRD_VERSION_PRIORITY,
    ONSTART,
    SYNCED,
    apiservice_name,
    crd_group_versions,
    local_apiservice,
)
from pyk8s.apiserver.aggregator.discovery import (
    RemoteDocument,
    aggregated_items,
    api_group,
    by_group,
    resources_from_aggregated,
    resources_from_list,
)
from pyk8s.apiserver.aggregator.proxy import BackendError, Backends
from pyk8s.apiserver.aggregator.strategy import APIServiceStrategy, available_condition
from pyk8s.apiserver.authn import RequestHeaderConfig, UserInfo
from pyk8s.apiserver.cacheloop import CacheController
from pyk8s.apiserver.certs import Pki
from pyk8s.apiserver.rest import DeleteOptions, timestamp
from pyk8s.apiserver.serviceresolver import NoEndpoints, ServiceResolver

if TYPE_CHECKING:
    from pyk8s.apiserver.handlers import ResourceHandlers

__all__ = ["Aggregator"]

log = logging.getLogger(__name__)

JSON = dict[str, Any]

GROUP = "apiregistration.k8s.io"
#: upstream's resync of APIServices in the availability controller
RESYNC = 30.0
#: re-checks of a failing APIService back off from this to :data:`RESYNC`
FAILED_RETRY = 0.5
#: the queue key that re-registers the CRDs' group/versions
_CRDS = "(CRDs)"
AUTHENTICATION_CONFIGMAP = "extension-apiserver-authentication"
_AGGREGATED_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
    "application/json"
)


def _service_ref(apiservice: JSON) -> tuple[str, str] | None:
    svc = (apiservice.get("spec") or {}).get("service")
    if not isinstance(svc, dict):
        return None
    return str(svc.get("namespace", "")), str(svc.get("name", ""))


def _condition(state: str, reason: str, message: str) -> JSON:
    return {"type": "Available", "status": state, "reason": reason, "message": message}


class Aggregator(CacheController):
    """APIServices: registration, availability, discovery and the proxy to their servers."""

    kind = "APIService"
    retry_after = RESYNC

    def __init__(
        self,
        handlers: ResourceHandlers,
        *,
        pki: Pki | None = None,
        requestheader: RequestHeaderConfig | None = None,
        resync: float = RESYNC,
    ) -> None:
        super().__init__(handlers)
        resource = handlers.registry.get(GROUP, "v1", "apiservices")
        assert resource is not None
        self.resource = resource
        handlers.install(resource, APIServiceStrategy(resource))
        self.pki = pki
        self.requestheader = requestheader
        self.resync = resync
        client_cert: tuple[Path, Path] | None = None
        if pki is not None and pki.front_proxy_client_cert.exists():
            client_cert = (pki.front_proxy_client_cert, pki.front_proxy_client_key)
        self.backends = Backends(ServiceResolver(handlers.reader), client_cert)
        #: what each remote APIService's server last said it serves
        self.documents: dict[str, RemoteDocument] = {}
        #: the OpenAPI v3 document URL each remote APIService's server publishes
        self.openapi_v3: dict[str, str] = {}
        self._failures: dict[str, int] = {}

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self._publish_authentication_config()
        await self._register_builtins()
        await self.sync_quietly(_CRDS)
        for entry in self.h.cache.list(self.resource.key_prefix()):
            self.enqueue_object(entry.obj)
        crds = self.h.registry.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        services = self.h.registry.get("", "v1", "services")
        slices = self.h.registry.get("discovery.k8s.io", "v1", "endpointslices")
        assert crds is not None and services is not None and slices is not None
        self.run(
            self.follow(self.resource.key_prefix(), self.enqueue_object),
            self.follow(crds.key_prefix(), lambda _crd: self.enqueue(_CRDS)),
            self.follow(services.key_prefix(), self._service_changed),
            self.follow(slices.key_prefix(), self._endpoints_changed),
            self.work(),
            self._resync(),
        )

    async def stop(self) -> None:
        await super().stop()
        await self.backends.close()

    def _service_changed(self, service: JSON) -> None:
        meta = service.get("metadata") or {}
        self._enqueue_backed_by(meta.get("namespace", ""), meta.get("name", ""))

    def _endpoints_changed(self, endpoint_slice: JSON) -> None:
        meta = endpoint_slice.get("metadata") or {}
        owner = (meta.get("labels") or {}).get("kubernetes.io/service-name")
        if owner:
            self._enqueue_backed_by(meta.get("namespace", ""), owner)

    def _enqueue_backed_by(self, namespace: str, name: str) -> None:
        for a in self.apiservices():
            if _service_ref(a) == (namespace, name):
                self.enqueue(a["metadata"]["name"])

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.resync)
            for a in self.apiservices():
                if _service_ref(a) is not None:
                    self.enqueue(a["metadata"]["name"])

    # ------------------------------------------------------------------ reads

    def apiservices(self) -> list[JSON]:
        return [e.obj for e in self.h.cache.list(self.resource.key_prefix())]

    def _cached(self, name: str) -> JSON | None:
        entry = self.h.cache.objects.get(self.resource.key(None, name))
        return None if entry is None else entry.obj

    def remote(self, group: str, version: str) -> JSON | None:
        """The APIService that hands ``group/version`` to a Service, if there is one."""
        apiservice = self._cached(apiservice_name(group, version))
        if apiservice is None or _service_ref(apiservice) is None:
            return None
        return apiservice

    def _remote_groups(self) -> dict[str, list[JSON]]:
        """The groups served only by extension servers, in discovery order."""
        local = self.h.registry.group_versions()
        remote = [a for a in self.apiservices() if _service_ref(a) is not None]
        return {g: members for g, members in by_group(remote).items() if g and g not in local}

    # ------------------------------------------------------------------ serving

    async def proxy(
        self, request: web.Request, apiservice: JSON, user: UserInfo
    ) -> web.StreamResponse:
        """A request for a remote group/version, passed to its server (503 while the
        APIService is not available, as upstream)."""
        condition = available_condition(apiservice)
        if condition is None or condition.get("status") != "True":
            return web.Response(
                status=503,
                text="service unavailable\n",
                headers={"Content-Type": "text/plain; charset=utf-8"},
            )
        return await self.backends.proxy(request, apiservice, user)

    def api_group(self, group: str) -> JSON | None:
        """``/apis/<group>`` of a group only extension servers serve."""
        members = self._remote_groups().get(group)
        return api_group(group, members) if members else None

    def extend_group_list(self, group_list: JSON) -> JSON:
        """``/apis`` (APIGroupList) with the aggregated groups after the local ones (a new
        document; ``group_list`` is not changed)."""
        remote = []
        for group, members in self._remote_groups().items():
            doc = api_group(group, members)
            del doc["kind"], doc["apiVersion"]
            remote.append(doc)
        return {**group_list, "groups": [*group_list["groups"], *remote]}

    def extend_aggregated(self, discovery_list: JSON) -> JSON:
        """``/apis`` (APIGroupDiscoveryList) with the aggregated groups' resources (a new
        document; ``discovery_list`` is not changed)."""
        remote = aggregated_items(self._remote_groups(), self.documents)
        return {**discovery_list, "items": [*discovery_list["items"], *remote]}

    # ------------------------------------------------------------------ one APIService

    async def sync(self, name: str) -> None:
        """The APIService's Available condition (and its discovery document) brought up
        to date; for :data:`_CRDS`, the APIServices of the CRDs' group/versions."""
        if name == _CRDS:
            await self._sync_crd_apiservices()
            return
        apiservice = self._cached(name)
        if apiservice is None:
            self.documents.pop(name, None)
            self.openapi_v3.pop(name, None)
            self._failures.pop(name, None)
            await self.backends.forget(name)
            return
        if _service_ref(apiservice) is None:
            self.documents.pop(name, None)
            self.openapi_v3.pop(name, None)
            wanted = _condition("True", "Local", "Local APIServices are always available")
        else:
            wanted = await self._check(apiservice)
            if wanted["status"] == "True":
                await self._refresh_discovery(apiservice)
                await self._refresh_openapi(apiservice)
            elif name in self.documents:
                self.documents[name] = RemoteDocument(self.documents[name].resources, "Stale")
        if wanted["status"] == "True":
            self._failures.pop(name, None)
        else:
            failures = self._failures[name] = self._failures.get(name, 0) + 1
            self.later(name, min(FAILED_RETRY * 2 ** (failures - 1), self.resync))
        await self._write_condition(name, wanted)

    async def _write_condition(self, name: str, wanted: JSON) -> None:
        rest = self.h.rest(self.resource)
        try:
            current, kv = await rest.read("", name)
        except errors.StatusError as err:
            if err.code == 404:
                return
            raise
        old = available_condition(current)
        if old is not None and all(
            old.get(k) == wanted[k] for k in ("status", "reason", "message")
        ):
            return
        if old is not None and old.get("status") != wanted["status"]:
            log.info(
                "changing APIService availability",
                extra={"apiservice": name, "old": old.get("status"), "new": wanted["status"]},
            )
        transition = timestamp()
        if old is not None and old.get("status") == wanted["status"]:
            transition = old.get("lastTransitionTime") or transition
        condition = {**wanted, "lastTransitionTime": transition}
        new = copy.deepcopy(current)
        status = new.setdefault("status", {})
        others = [c for c in status.get("conditions") or [] if c.get("type") != "Available"]
        status["conditions"] = [*others, condition]
        try:
            await self.h.update_object(self.resource, new, current, kv, "status")
        except errors.StatusError as err:
            if err.reason != "Conflict":
                raise
            self.enqueue(name)

    async def _check(self, apiservice: JSON) -> JSON:
        """Upstream's remote availability checks, in their order."""
        spec = apiservice.get("spec") or {}
        svc_ref = spec.get("service") or {}
        namespace, name = str(svc_ref.get("namespace", "")), str(svc_ref.get("name", ""))
        port = int(svc_ref.get("port") or 443)
        reader = self.h.reader
        service = reader.cached("", "services", namespace, name)
        if service is None:
            return _condition(
                "False", "ServiceNotFound", f'service/{name} in "{namespace}" is not present'
            )
        if (service.get("spec") or {}).get("type", "ClusterIP") == "ClusterIP":
            port_name: str | None = None
            for p in (service.get("spec") or {}).get("ports") or []:
                if p.get("port") == port:
                    port_name = str(p.get("name") or "")
                    break
            if port_name is None:
                return _condition(
                    "False",
                    "ServicePortError",
                    f'service/{name} in "{namespace}" is not listening on port {port}',
                )
            slices = [
                s
                for s in reader.list("discovery.k8s.io", "endpointslices", namespace)
                if ((s.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/service-name")
                == name
            ]
            if not slices:
                return _condition(
                    "False",
                    "EndpointsNotFound",
                    f'cannot find endpointslices for service/{name} in "{namespace}"',
                )
            if not any(_has_available_endpoint(s, port_name) for s in slices):
                return _condition(
                    "False",
                    "MissingEndpoints",
                    f'endpointslices for service/{name} in "{namespace}" have no addresses '
                    f'with port name "{port_name}"',
                )
        group, version = str(spec.get("group", "")), str(spec.get("version", ""))
        path = (
            f"/api/{version}"
            if apiservice["metadata"]["name"] == "v1."
            else (f"/apis/{group}/{version}")
        )
        try:
            got = await self.backends.get(apiservice, path, verify=False)
        except NoEndpoints as e:
            return _condition("False", "FailedDiscoveryCheck", str(e))
        except BackendError as e:
            return _condition(
                "False", "FailedDiscoveryCheck", f"failing or missing response from {e.url}: {e}"
            )
        if not 200 <= got.status < 300:
            url = got.url
            return _condition(
                "False",
                "FailedDiscoveryCheck",
                f"failing or missing response from {url}: bad status from {url}: {got.status}",
            )
        return _condition("True", "Passed", "all checks passed")

    async def _refresh_discovery(self, apiservice: JSON) -> None:
        """What the server serves: its aggregated ``/apis`` document when it has one,
        else its ``/apis/<group>/<version>`` resource list."""
        name = apiservice["metadata"]["name"]
        spec = apiservice.get("spec") or {}
        group, version = str(spec.get("group", "")), str(spec.get("version", ""))
        resources: list[JSON] | None = None
        try:
            got = await self.backends.get(apiservice, "/apis", accept=_AGGREGATED_ACCEPT)
            if got.status == 200:
                with contextlib.suppress(ValueError):
                    resources = resources_from_aggregated(got.json(), group, version)
            if resources is None:
                got = await self.backends.get(apiservice, f"/apis/{group}/{version}")
                if got.status != 200:
                    raise BackendError("", f"discovery answered {got.status}")
                resources = resources_from_list(got.json(), group, version)
        except (BackendError, NoEndpoints, ValueError) as e:
            log.info("discovery of APIService %s failed: %s", name, e)
            if name in self.documents:
                self.documents[name] = RemoteDocument(self.documents[name].resources, "Stale")
            return
        self.documents[name] = RemoteDocument(resources)

    async def _refresh_openapi(self, apiservice: JSON) -> None:
        """Where the server's OpenAPI v3 document of this group/version is, if it has one."""
        name = apiservice["metadata"]["name"]
        spec = apiservice.get("spec") or {}
        key = f"apis/{spec.get('group', '')}/{spec.get('version', '')}"
        try:
            got = await self.backends.get(apiservice, "/openapi/v3")
            paths = got.json().get("paths") if got.status == 200 else None
        except (BackendError, NoEndpoints, ValueError, AttributeError) as e:
            log.info("OpenAPI index of APIService %s not read: %s", name, e)
            return
        entry = paths.get(key) if isinstance(paths, dict) else None
        url = entry.get("serverRelativeURL") if isinstance(entry, dict) else None
        if isinstance(url, str) and url.startswith(f"/openapi/v3/{key}"):
            self.openapi_v3[name] = url
        else:
            self.openapi_v3.pop(name, None)

    def openapi_v3_paths(self) -> dict[str, JSON]:
        """``/openapi/v3`` index entries of the available remote group/versions."""
        out: dict[str, JSON] = {}
        for name, url in self.openapi_v3.items():
            apiservice = self._cached(name)
            if apiservice is None or _service_ref(apiservice) is None:
                continue
            condition = available_condition(apiservice)
            if condition is None or condition.get("status") != "True":
                continue
            spec = apiservice.get("spec") or {}
            out[f"apis/{spec.get('group', '')}/{spec.get('version', '')}"] = {
                "serverRelativeURL": url
            }
        return out

    async def openapi_v3_index(
        self,
        request: web.Request,
        local: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """``/openapi/v3``: this server's index (``local``) with the aggregated
        group/versions added, under its own ETag."""
        extra = self.openapi_v3_paths()
        if not extra:
            return await local(request)
        from pyk8s.apiserver.openapi import content_hash

        headers = request.headers.copy()
        headers.popall("If-None-Match", None)
        response = await local(request.clone(headers=headers))
        if not isinstance(response, web.Response) or not isinstance(response.body, bytes):
            return response
        if response.status != 200:
            return response
        index = json.loads(response.body)
        index["paths"] = {**(index.get("paths") or {}), **extra}
        data = json.dumps(index, sort_keys=True, separators=(",", ":")).encode()
        etag = content_hash(data)
        answer_headers = {"ETag": f'"{etag}"', "Content-Type": "application/json"}
        if f'"{etag}"' in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=answer_headers)
        return web.Response(body=data, headers=answer_headers)

    # ------------------------------------------------------------------ registration

    async def _register_builtins(self) -> None:
        """Local APIServices for the built-in group/versions (upstream's ``onstart``),
        written at once: the store commits concurrent writes together."""
        await asyncio.gather(
            *(
                self._ensure(local_apiservice(group, version, priorities, ONSTART), managed=ONSTART)
                for group, versions in REGISTRY.group_versions().items()
                for version in versions
                if (priorities := BUILTIN_PRIORITIES.get((group, version))) is not None
            )
        )

    async def _sync_crd_apiservices(self) -> None:
        """One local APIService per group/version a CRD serves; none for those no CRD
        serves any more (upstream's crdRegistrationController)."""
        crds = self.h.registry.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert crds is not None
        builtin = {(g, v) for g, vs in REGISTRY.group_versions().items() for v in vs}
        wanted = crd_group_versions(e.obj for e in self.h.cache.list(crds.key_prefix()))
        wanted -= builtin
        for group, version in sorted(wanted):
            manifest = local_apiservice(
                group, version, (CRD_GROUP_PRIORITY, CRD_VERSION_PRIORITY), SYNCED
            )
            await self._ensure(manifest, managed=SYNCED)
        for a in self.apiservices():
            labels = (a.get("metadata") or {}).get("labels") or {}
            spec = a.get("spec") or {}
            gv = (str(spec.get("group", "")), str(spec.get("version", "")))
            if labels.get(AUTOMANAGED_LABEL) == SYNCED and gv not in wanted:
                with contextlib.suppress(errors.StatusError):
                    await self.h.delete_object(
                        self.resource, "", a["metadata"]["name"], DeleteOptions()
                    )

    async def _ensure(self, manifest: JSON, *, managed: str) -> None:
        """Create ``manifest``, or put back its spec when an APIService we manage drifted
        (one a user made under that name is left alone)."""
        name = manifest["metadata"]["name"]
        current = self._cached(name)
        if current is None:
            await _quietly(self.h.create_object(self.resource, copy.deepcopy(manifest)))
            return
        labels = (current.get("metadata") or {}).get("labels") or {}
        if labels.get(AUTOMANAGED_LABEL) != managed or current.get("spec") == manifest["spec"]:
            return
        try:
            stored, kv = await self.h.rest(self.resource).read("", name)
        except errors.StatusError:
            return
        new = {**copy.deepcopy(stored), "spec": copy.deepcopy(manifest["spec"])}
        await _quietly(self.h.update_object(self.resource, new, stored, kv, ""))

    async def _publish_authentication_config(self) -> None:
        """The ``extension-apiserver-authentication`` ConfigMap (upstream's keys)."""
        data: dict[str, str] = {}
        if self.pki is not None and self.pki.ca_cert.exists():
            data["client-ca-file"] = self.pki.ca_cert.read_text()
        rh = self.requestheader
        if rh is not None:
            data["requestheader-client-ca-file"] = rh.client_ca_file.read_text()
            data["requestheader-allowed-names"] = _go_json(rh.allowed_names)
            data["requestheader-username-headers"] = _go_json(rh.username_headers)
            data["requestheader-group-headers"] = _go_json(rh.group_headers)
            data["requestheader-extra-headers-prefix"] = _go_json(rh.extra_headers_prefix)
        if not data:
            return
        configmap = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": AUTHENTICATION_CONFIGMAP, "namespace": "kube-system"},
            "data": data,
        }
        await self.h.ensure(configmap, update=True)


def _go_json(values: tuple[str, ...]) -> str:
    """A string list as Go's json.Marshal writes it (no spaces)."""
    return json.dumps(list(values), separators=(",", ":"))


def _has_available_endpoint(endpoint_slice: JSON, port_name: str) -> bool:
    """A ready (or readiness-unknown) endpoint and a port of that name with a number."""
    ready = any(
        (ep.get("conditions") or {}).get("ready") in (None, True)
        for ep in endpoint_slice.get("endpoints") or []
    )
    return ready and any(
        (p.get("name") or "") == port_name and p.get("port") is not None
        for p in endpoint_slice.get("ports") or []
    )


async def _quietly(write: Awaitable[Any]) -> None:
    """A registration write that lost a race (exists already, changed meanwhile)."""
    try:
        await write
    except errors.StatusError as err:
        if err.code not in (404, 409):
            raise
