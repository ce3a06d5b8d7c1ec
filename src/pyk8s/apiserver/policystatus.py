"""The ValidatingAdmissionPolicy status controller: type checking reported in status.

Why this exists: a policy's expressions are only compiled against ``dyn`` when it is
written (``object.spec.replicas > 'three'`` is accepted), so upstream type-checks each
policy again with ``object`` typed from the schemas of the kinds its resource rules name
and ``params`` from its ``paramKind``, and reports what fails in
``status.typeChecking.expressionWarnings`` (``fieldRef`` and ``warning``), with
``status.observedGeneration`` saying which generation was checked. Nothing else of the
status is set (upstream sets no conditions).

Upstream runs this in kube-controller-manager. Here it runs inside the API server: the
check needs, for each matched group/version/resource, its kind and its schema (the
official definitions of built-ins, the CRD's ``openAPIV3Schema`` of custom resources),
which the API server holds in memory (its registry and watch cache) and a separate
process would have to rebuild from discovery and OpenAPI; and it then works with
``pyk8s apiserver`` alone. The loop has the shape of the CRD controller's: the watch cache
feeds a queue of policy names; a sync writes the status subresource as the API server
itself, and a conflict requeues.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pyk8s.api import errors
from pyk8s.api.admissionpolicy import Kind, builtin_type, kinds_to_check, type_check
from pyk8s.api.cel import Type, schema_type
from pyk8s.api.registry import Resource
from pyk8s.api.schema import schemas
from pyk8s.apiserver.cacheloop import CacheController

if TYPE_CHECKING:
    from pyk8s.apiserver.handlers import ResourceHandlers

log = logging.getLogger(__name__)

JSON = dict[str, Any]

GROUP = "admissionregistration.k8s.io"
ERROR_RETRY = 2.0


class PolicyStatusController(CacheController):
    """Keeps each policy's type-checking status at its generation (see the module doc)."""

    kind = "ValidatingAdmissionPolicy"
    retry_after = ERROR_RETRY

    def __init__(self, handlers: ResourceHandlers) -> None:
        super().__init__(handlers)
        resource = handlers.registry.get(GROUP, "v1", "validatingadmissionpolicies")
        assert resource is not None
        self.resource: Resource = resource

    async def start(self) -> None:
        prefix = self.resource.key_prefix()
        for entry in self.h.cache.list(prefix):
            self.enqueue_object(entry.obj)
        self.run(self.follow(prefix, self.enqueue_object), self.work())

    async def sync(self, name: str) -> None:
        try:
            policy, kv = await self.h.rest(self.resource).read("", name)
        except errors.StatusError as err:
            if err.code == 404:
                return
            raise
        generation = int(policy["metadata"].get("generation") or 0)
        status = policy.get("status") or {}
        if generation <= int(status.get("observedGeneration") or 0):
            return
        spec = policy.get("spec") or {}
        kinds = [
            (k, t)
            for k in kinds_to_check(spec, self._kinds_for)
            if (t := self._type_of(k)) is not None
        ]
        params_type = None
        param_kind = spec.get("paramKind")
        if isinstance(param_kind, dict):
            api_version = str(param_kind.get("apiVersion") or "")
            group, _, version = api_version.rpartition("/")
            params_type = self._type_of(Kind(group, version, str(param_kind.get("kind") or "")))
        warnings = type_check(spec, kinds, params_type)
        type_checking: JSON = {"expressionWarnings": warnings} if warnings else {}
        new_status = {**status, "observedGeneration": generation, "typeChecking": type_checking}
        try:
            await self.h.update_object(
                self.resource, {**policy, "status": new_status}, policy, kv, "status"
            )
        except errors.StatusError as err:
            if err.reason not in ("Conflict", "NotFound"):
                raise
            self.enqueue(name)

    def _kinds_for(self, group: str, version: str, plural: str) -> list[Kind]:
        r = self.h.registry.get(group, version, plural)
        return [] if r is None else [Kind(r.group, r.version, r.kind)]

    def _type_of(self, kind: Kind) -> Type | None:
        """``object``'s type for a kind: its CRD's schema, else the official definition."""
        for crd in self.h.reader.list("apiextensions.k8s.io", "customresourcedefinitions"):
            spec = crd.get("spec") or {}
            names = spec.get("names") or {}
            if spec.get("group") != kind.group or names.get("kind") != kind.kind:
                continue
            for v in spec.get("versions") or []:
                if v.get("name") == kind.version:
                    schema = (v.get("schema") or {}).get("openAPIV3Schema")
                    return schema_type(schema, True) if isinstance(schema, dict) else None
            return None
        return builtin_type(schemas(), kind.group, kind.version, kind.kind)
