"""Subresources served by their own code: scale, binding, finalize, and the doors to
other code (the kubelet's log/exec/attach/portforward, node proxy, eviction, TokenRequest).

A strategy lists the subresources its resource serves by name (``"scale": BUILTIN_SCALE``);
the generic handlers look the name up and call ``serve``. ``status`` needs no entry: it is
the generic update path with the status strategy.
"""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from pyk8s.api import errors
from pyk8s.api.jsoncopy import copy_json
from pyk8s.api.patch import apply_json_patch, apply_merge_patch, apply_strategic_merge_patch
from pyk8s.api.registry import Resource
from pyk8s.api.selectors import label_selector_from_dict
from pyk8s.apiserver import encoding, fieldmanager, kubeletproxy, reviews
from pyk8s.apiserver.encoding import json_response
from pyk8s.apiserver.requestinfo import RequestInfo
from pyk8s.apiserver.rest import Retry

if TYPE_CHECKING:
    from pyk8s.apiserver.handlers import ResourceHandlers

JSON = dict[str, Any]
#: (group, version, kind)
GVK = tuple[str, str, str]

#: attempts at a read-modify-write that lost a race with another writer
RETRIES = 5
#: what the scale subresource takes and returns, for every scalable resource
SCALE_KIND: GVK = ("autoscaling", "v1", "Scale")


class Scale:
    """The scale subresource (autoscaling/v1 Scale) over an object's replica fields.

    Built-in workloads keep them at ``.spec.replicas`` / ``.status.replicas`` with a label
    selector at ``.spec.selector``; a custom resource names its paths in its CRD
    (``specReplicasPath``, ``statusReplicasPath``, ``labelSelectorPath``, the last one a
    string already in selector syntax)."""

    connect = False
    body_kind: GVK | None = SCALE_KIND

    def __init__(
        self,
        spec_replicas: str = ".spec.replicas",
        status_replicas: str = ".status.replicas",
        label_selector: str | None = None,
    ) -> None:
        self.spec_replicas = _path(spec_replicas)
        self.status_replicas = _path(status_replicas)
        self.label_selector = _path(label_selector) if label_selector else None

    def scale_of(self, obj: JSON) -> JSON:
        meta = obj.get("metadata", {})
        if self.label_selector is None:
            selector = _builtin_selector((obj.get("spec") or {}).get("selector"))
        else:
            value = _get(obj, self.label_selector)
            selector = value if isinstance(value, str) else ""
        status: JSON = {"replicas": _get(obj, self.status_replicas) or 0}
        if selector or self.label_selector is None:
            status["selector"] = selector
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": _get(obj, self.spec_replicas) or 0},
            "status": status,
        }

    async def _apply(
        self,
        h: ResourceHandlers,
        request: web.Request,
        info: RequestInfo,
        r: Resource,
        config: Any,
        dry_run: bool,
    ) -> web.StreamResponse:
        """Server-side apply of a Scale: its replicas applied to the parent's replicas
        field, owned by the manager under the ``scale`` subresource, as upstream's."""
        manager, force = fieldmanager.apply_options(request)
        fieldmanager.check_apply_version(config, "autoscaling/v1")
        encoding.check_types(config, *SCALE_KIND, patched=True)
        replicas = (config.get("spec") or {}).get("replicas")
        parent: JSON = {"apiVersion": r.api_version, "kind": r.kind, "metadata": {}}
        if replicas is not None:
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise errors.invalid_object(
                    "Scale",
                    info.name,
                    [
                        errors.invalid(
                            "spec.replicas", replicas, "must be greater than or equal to 0"
                        )
                    ],
                    "autoscaling",
                )
            parent = self.with_replicas(parent, replicas)
        rest = h.rest(r)

        async def attempt(current: JSON, kv: Any, last: bool) -> web.Response:
            merged = fieldmanager.apply(
                h.strategy(r),
                current,
                parent,
                manager=manager,
                subresource="scale",
                force=force,
                time=h.timestamp(),
            )
            try:
                out = await h.update_object(
                    r, merged, current, kv, "", dry_run=dry_run, user=h.user(request), record=False
                )
            except errors.StatusError as err:
                if err.reason == "Conflict":
                    raise Retry from err
                raise
            return json_response(self.scale_of(out))

        return await rest.guaranteed_update(
            info.namespace, info.name, attempt, tries=RETRIES, guess=not dry_run
        )

    def with_replicas(self, obj: JSON, replicas: int) -> JSON:
        new = copy.deepcopy(obj)
        cur = new
        for part in self.spec_replicas[:-1]:
            cur = cur.setdefault(part, {})
        cur[self.spec_replicas[-1]] = replicas
        return new

    async def serve(
        self, h: ResourceHandlers, request: web.Request, info: RequestInfo, r: Resource
    ) -> web.StreamResponse:
        rest = h.rest(r)
        if request.method in ("GET", "HEAD"):
            return json_response(self.scale_of(await rest.get(info.namespace, info.name)))
        dry_run = h.dry_run(request.query)
        if request.method not in ("PUT", "PATCH"):
            raise errors.method_not_allowed("scale supports get, update and patch")
        ct = encoding.media_type(request.headers.get("Content-Type"))
        doc: Any = await h.body(request, patch=request.method == "PATCH")
        if request.method == "PATCH" and ct == encoding.PATCH_APPLY:
            return await self._apply(h, request, info, r, doc, dry_run)

        async def attempt(current: JSON, kv: Any, last: bool) -> web.Response:
            scale = self.scale_of(current)
            new_scale: Any = doc
            if request.method == "PUT":
                if not isinstance(doc, dict):
                    raise errors.bad_request("the body of the request must be a JSON object")
                encoding.check_type_meta(doc)
                encoding.check_types(doc, *SCALE_KIND)
                rv = (new_scale.get("metadata") or {}).get("resourceVersion")
                if rv and rv != current["metadata"]["resourceVersion"]:
                    raise rest.conflict(info.name)
            elif ct == encoding.PATCH_JSON:
                new_scale = apply_json_patch(scale, doc)
            elif ct == encoding.PATCH_MERGE:
                new_scale = apply_merge_patch(scale, doc)
            else:
                new_scale = apply_strategic_merge_patch(
                    scale, doc, "io.k8s.api.autoscaling.v1.Scale"
                )
            if request.method == "PATCH":
                if not isinstance(new_scale, dict):
                    raise errors.bad_request("the patched object is not a JSON object")
                encoding.check_types(new_scale, *SCALE_KIND, patched=True)
            replicas = (new_scale.get("spec") or {}).get("replicas", 0)
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise errors.invalid_object(
                    "Scale",
                    info.name,
                    [
                        errors.invalid(
                            "spec.replicas", replicas, "must be greater than or equal to 0"
                        )
                    ],
                    "autoscaling",
                )
            new = self.with_replicas(current, replicas)
            try:
                out = await h.update_object(
                    r,
                    new,
                    current,
                    kv,
                    "",
                    dry_run=dry_run,
                    user=h.user(request),
                    manager=fieldmanager.manager_of(request),
                    managed_subresource="scale",
                )
            except errors.StatusError as err:
                if err.reason == "Conflict" and request.method == "PATCH":
                    raise Retry from err
                raise
            return json_response(self.scale_of(out))

        return await rest.guaranteed_update(
            info.namespace, info.name, attempt, tries=RETRIES, guess=not dry_run
        )


def _path(jsonpath: str) -> tuple[str, ...]:
    return tuple(p for p in jsonpath.split(".") if p)


def _get(obj: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _builtin_selector(sel: Any) -> str:
    if not isinstance(sel, dict):
        return ""
    if "matchLabels" in sel or "matchExpressions" in sel:
        return str(label_selector_from_dict(sel))
    return ",".join(f"{k}={v}" for k, v in sorted(sel.items()))  # a ReplicationController's


class Binding:
    """pods/binding (and POST bindings): assign a pod to a node, once."""

    connect = False
    body_kind: GVK | None = ("", "v1", "Binding")

    async def serve(
        self, h: ResourceHandlers, request: web.Request, info: RequestInfo, r: Resource
    ) -> web.StreamResponse:
        if info.verb != "create":
            raise errors.method_not_allowed(
                "the server does not allow this method on the requested resource"
            )
        body = await h.body(request)
        if not isinstance(body, dict):
            raise errors.bad_request("a Binding must be a JSON object")
        pods = h.registry.get("", "v1", "pods")
        assert pods is not None
        name = info.name or (body.get("metadata") or {}).get("name", "")
        target = (body.get("target") or {}).get("name", "")
        if not target:
            raise errors.invalid_object("Binding", name, [errors.required("target.name")])
        rest = h.rest(pods)
        dry_run = h.dry_run(request.query)

        async def attempt(pod: JSON, kv: Any, last: bool) -> web.Response:
            if pod["metadata"].get("deletionTimestamp"):
                raise errors.conflict(
                    "pods", name, "pod is being deleted, cannot be assigned to a host"
                )
            node = (pod.get("spec") or {}).get("nodeName")
            if node:
                raise errors.conflict(
                    "pods", name, f'pod {name} is already assigned to node "{node}"'
                )
            new = copy_json(pod)  # ~6x faster than copy.deepcopy for a pod
            new["spec"]["nodeName"] = target
            conds = new.setdefault("status", {}).setdefault("conditions", [])
            conds[:] = [c for c in conds if c.get("type") != "PodScheduled"]
            conds.append(
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": h.timestamp(),
                }
            )
            started = time.time()
            try:
                await rest.write_update(new, pod, kv, dry_run=dry_run)
            except errors.StatusError as err:
                if err.reason == "Conflict":
                    raise Retry from err
                raise
            if not dry_run:
                user = h.user(request).name
                h.server.spans.record_binding(pod, target, user, started, time.time())
            return json_response(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "code": 201,
                },
                201,
            )

        return await rest.guaranteed_update(
            info.namespace, name, attempt, tries=RETRIES, guess=not dry_run
        )


class Finalize:
    """namespaces/finalize: replace spec.finalizers; the last one gone deletes a
    namespace that is being deleted."""

    connect = False
    body_kind: GVK | None = None  # a Namespace, typed by the generic decode

    async def serve(
        self, h: ResourceHandlers, request: web.Request, info: RequestInfo, r: Resource
    ) -> web.StreamResponse:
        if info.verb != "update":
            raise errors.method_not_allowed(
                "the server does not allow this method on the requested resource"
            )
        dry_run = h.dry_run(request.query)
        obj = h.decode_object(await h.body(request), r, info)
        h.check_name(obj, info)
        rest = h.rest(r)

        async def attempt(current: JSON, kv: Any, last: bool) -> web.Response:
            new = copy.deepcopy(current)
            finalizers = (obj.get("spec") or {}).get("finalizers", [])
            new.setdefault("spec", {})["finalizers"] = finalizers
            if not new["spec"]["finalizers"]:
                new["spec"].pop("finalizers")
            out, _deleted = await rest.write_update(new, current, kv, dry_run=dry_run)
            return json_response(out)

        # a conflict is answered (409), not tried again, as before
        return await rest.guaranteed_update("", info.name, attempt, tries=1, guess=not dry_run)


class Kubelet:
    """pods/{log,exec,attach,portforward}: proxied to the pod's kubelet."""

    connect = True
    body_kind: GVK | None = None

    async def serve(
        self, h: ResourceHandlers, request: web.Request, info: RequestInfo, r: Resource
    ) -> web.StreamResponse:
        return await kubeletproxy.serve(h, request, info)


class NodeProxy:
    """nodes/NAME/proxy/PATH: the node's kubelet answers PATH."""

    connect = True
    body_kind: GVK | None = None

    async def serve(
        self, h: ResourceHandlers, request: web.Request, info: RequestInfo, r: Resource
    ) -> web.StreamResponse:
        return await kubeletproxy.serve_node_proxy(h, request, info.name)


class Review:
    """pods/eviction and serviceaccounts/token: answered from the request, never stored."""

    connect = False

    def __init__(self, body_kind: GVK) -> None:
        self.body_kind: GVK | None = body_kind

    async def serve(
        self, h: ResourceHandlers, request: web.Request, info: RequestInfo, r: Resource
    ) -> web.StreamResponse:
        return await reviews.serve(h, request, info, r)


class NotServed:
    connect = False  # answered 501 before anything runs
    body_kind: GVK | None = None

    async def serve(
        self, h: ResourceHandlers, request: web.Request, info: RequestInfo, r: Resource
    ) -> web.StreamResponse:
        raise errors.StatusError(
            501, "NotImplemented", f"{r.plural}/{info.subresource} is not served by pyk8s yet", {}
        )


BUILTIN_SCALE = Scale()
BINDING = Binding()
FINALIZE = Finalize()
KUBELET = Kubelet()
NODE_PROXY = NodeProxy()
EVICTION = Review(("policy", "v1", "Eviction"))
TOKEN_REQUEST = Review(("authentication.k8s.io", "v1", "TokenRequest"))
NOT_SERVED = NotServed()
