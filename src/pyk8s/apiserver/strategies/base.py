"""The strategy seam: everything resource-specific about storing one resource.

Upstream's generic registry store knows no resource by name; each resource brings a
*strategy* (``rest.RESTCreateStrategy``, ``RESTUpdateStrategy``, ``RESTDeleteStrategy``
and friends) that says how an object is defaulted, prepared, validated, printed, selected
by fields, converted between versions and deleted, and which subresources it serves. The
generic handlers (:mod:`pyk8s.apiserver.handlers`) and the generic store
(:mod:`pyk8s.apiserver.rest`) ask a :class:`Strategy` and nothing else, so a custom
resource whose plural is ``jobs`` gets custom-resource behaviour, not a Job's.

:class:`Strategy` is upstream's generic behaviour; built-in resources override what they
do differently (:mod:`.core`, :mod:`.workloads`) and custom resources get theirs from
their CustomResourceDefinition (:mod:`pyk8s.apiserver.apiextensions`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pyk8s.api.conversion import convert
from pyk8s.api.defaults import apply_defaults
from pyk8s.api.errors import FieldError
from pyk8s.api.jsoncopy import copy_json
from pyk8s.api.registry import Resource
from pyk8s.api.schema import schemas
from pyk8s.api.selectors import FieldSelector, check_field_selector, field_values
from pyk8s.api.tables import Printer, build_table
from pyk8s.api.validation import unknown_fields, validate_create, validate_update

if TYPE_CHECKING:
    from aiohttp import web

    from pyk8s.apiserver.handlers import ResourceHandlers
    from pyk8s.apiserver.requestinfo import RequestInfo
    from pyk8s.apiserver.watchcache import Entry

JSON = dict[str, Any]

#: undoes a side effect of a write that then failed (a released allocation)
Rollback = Callable[[], Awaitable[None]]


class Subresource(Protocol):
    """A subresource served by its own code (scale, binding, eviction, log, exec …)."""

    #: it opens a stream (exec, attach, port-forward, proxy): admitted as CONNECT
    connect: bool
    #: the (group, version, kind) its request body decodes as (None: no body of its own)
    body_kind: tuple[str, str, str] | None

    async def serve(
        self, handlers: ResourceHandlers, request: web.Request, info: RequestInfo, r: Resource
    ) -> web.StreamResponse: ...


class Strategy:
    """Upstream's generic behaviour for a stored resource; subclasses override the rest.

    Class attributes are the yes/no parts of upstream's strategies; methods are the
    computed parts. Everything here is pure except the ``async`` write hooks, which a
    resource with side effects outside its object (Service IP allocation) overrides.
    """

    #: metadata.generation moves when the spec changes
    generation_tracked: ClassVar[bool] = False
    #: DELETE answers with the deleted object instead of a Status (ReturnDeletedObject)
    returns_deleted_object: ClassVar[bool] = False
    #: create keeps the status the client sent (nodes, events)
    keeps_status_on_create: ClassVar[bool] = False
    #: an update of the main resource may also write status (nodes)
    main_update_writes_status: ClassVar[bool] = False
    #: the status a new object starts with (upstream's PrepareForCreate)
    initial_status: ClassVar[JSON | None] = None
    #: seconds until a stored object expires (events: one hour); 0 for never
    ttl_seconds: ClassVar[int] = 0
    #: an orphaning delete adds the ``orphan`` finalizer (not for pods and events)
    orphans_dependents: ClassVar[bool] = True
    #: a create records the first span of the object's trace (pods; apiserver.tracing)
    traced_create: ClassVar[bool] = False
    #: strategic merge patch is served (custom resources answer 415)
    strategic_merge_patch: ClassVar[bool] = True
    #: subresources answered by their own code; "status" is generic and needs no entry
    subresources: Mapping[str, Subresource] = {}
    #: the Table printer (None: the built-in one for this resource, tables.py)
    printer: Printer | None = None

    def __init__(self, resource: Resource) -> None:
        self.resource = resource

    # ------------------------------------------------------------------ decoding

    def accepts_kind(self, kind: str) -> bool:
        """Whether a body of ``kind`` may be written to this resource."""
        return kind == self.resource.kind

    def unknown_fields(self, obj: JSON) -> list[str]:
        """Paths of fields the schema does not know, dropped from ``obj`` by the caller."""
        return unknown_fields(self.resource, obj)

    def default(self, obj: JSON, *, create: bool) -> JSON:
        """A defaulted copy of ``obj``."""
        return apply_defaults(self.resource, obj, create=create)

    def patch_schema(self) -> str | None:
        """The OpenAPI definition strategic merge patch reads merge keys from."""
        r = self.resource
        return schemas().name_for(r.group, r.version, r.kind)

    # ------------------------------------------------------------------ create

    def prepare_for_create(self, obj: JSON) -> None:
        """Reset what a client may not set on create (status, unless kept)."""
        if "status" in self.resource.subresources and not self.keeps_status_on_create:
            obj.pop("status", None)
            if self.initial_status is not None:
                obj["status"] = copy_json(self.initial_status)
        if self.generation_tracked:
            obj["metadata"]["generation"] = 1

    def validate(self, obj: JSON) -> list[FieldError]:
        return validate_create(self.resource, obj)

    # ------------------------------------------------------------------ update

    def prepare_for_update(self, new: JSON, old: JSON) -> None:
        """Carry over what an update of the main resource may not change (status), and
        move metadata.generation when the spec changed."""
        if "status" in self.resource.subresources and not self.main_update_writes_status:
            if "status" in old:
                new["status"] = copy_json(old["status"])
            else:
                new.pop("status", None)
        if self.generation_tracked:
            gen = int(old.get("metadata", {}).get("generation") or 1)
            if self.spec_changed(new, old):
                gen += 1
            new["metadata"]["generation"] = gen

    def spec_changed(self, new: JSON, old: JSON) -> bool:
        return new.get("spec") != old.get("spec")

    def validate_update(self, new: JSON, old: JSON) -> list[FieldError]:
        return validate_update(self.resource, new, old)

    def validate_status_update(self, new: JSON, old: JSON) -> list[FieldError]:
        """Errors of a write to the status subresource (the whole object's rules unless
        the resource has its own status strategy)."""
        return self.validate_update(new, old)

    def prepare_for_subresource_update(self, new: JSON, old: JSON, subresource: str) -> JSON:
        """The object an update through a generic subresource other than status writes
        (a CertificateSigningRequest's ``approval``); the main update's rules unless the
        resource has its own."""
        self.prepare_for_update(new, old)
        return new

    def validate_subresource_update(
        self, new: JSON, old: JSON, subresource: str
    ) -> list[FieldError]:
        """Errors of a write through a generic subresource other than status."""
        return self.validate_update(new, old)

    # ------------------------------------------------------------------ versions

    async def prepare_conversion(
        self,
        objects: Sequence[JSON],
        api_version: str,
        *,
        as_list: bool = False,
        for_write: bool = False,
    ) -> None:
        """Make :meth:`convert` ready for ``objects`` (a conversion webhook is called
        here, so that the conversion itself can stay synchronous). ``as_list``: the
        objects are a LIST's items; ``for_write``: they are about to be stored."""

    def convert(self, obj: JSON, api_version: str) -> JSON:
        """``obj`` at ``api_version`` (built-in conversions; custom resources by CRD)."""
        return convert(obj, api_version)

    @property
    def reads_need_view(self) -> bool:
        """Whether an object already at the request's version still goes through
        :meth:`convert` when read (a custom resource whose schema has defaults)."""
        return False

    def view(self, entry: Entry, api_version: str) -> tuple[JSON, bytes]:
        """A cached object as a request of ``api_version`` reads it, with its JSON."""
        return entry.as_version(api_version, self.convert, token=self, always=self.reads_need_view)

    def views(
        self, entries: list[Entry], objs: list[JSON], api_version: str
    ) -> tuple[list[JSON], list[bytes]]:
        """:meth:`view` of each of a LIST's ``entries`` (``objs``: their objects), as the
        objects and their JSON. The common case, every object stored at the version asked
        for and read as it is, takes the entries' objects and bytes as they are."""
        if not self.reads_need_view and all(
            o.get("apiVersion", api_version) == api_version for o in objs
        ):
            return objs, [e.raw for e in entries]
        pairs = [self.view(e, api_version) for e in entries]
        return [o for o, _ in pairs], [raw for _, raw in pairs]

    # ------------------------------------------------------------------ delete

    def deletion_grace(self, obj: JSON, requested: int | None) -> int:
        """Seconds a deleted object stays (graceful deletion); 0 deletes it right away."""
        return 0

    def deletion_finalizers(self, obj: JSON) -> list[str]:
        """Finalizers a delete adds (a CRD's instance cleanup)."""
        return []

    def spec_finalizers(self, obj: JSON) -> bool:
        """Finalizers other than metadata.finalizers that hold a deleted object."""
        return False

    def begin_deletion(self, obj: JSON) -> None:
        """Mark an object whose deletion waits for finalizers or a grace period."""

    def waits_for_grace(self, obj: JSON) -> bool:
        """Whether an object that lost its last finalizer still waits (a running pod)."""
        return False

    # ------------------------------------------------------------------ reads

    def field_selector(self, selector: FieldSelector) -> FieldSelector:
        """``selector`` checked against the fields this resource can be selected by."""
        return check_field_selector(self.resource, selector)

    def field_values(self, obj: JSON) -> dict[str, str]:
        return field_values(self.resource, obj)

    def table(
        self,
        objects: list[JSON],
        *,
        now: datetime,
        include_object: str,
        list_meta: Mapping[str, Any] | None = None,
        no_headers: bool = False,
    ) -> JSON:
        return build_table(
            self.resource,
            objects,
            now=now,
            include_object=include_object,
            list_meta=list_meta,
            no_headers=no_headers,
            printer=self.printer,
        )

    # ------------------------------------------------------------------ side effects

    async def before_create(self, obj: JSON, *, dry_run: bool) -> list[Rollback]:
        """Take what the object needs outside the store (allocations) before it is written."""
        return []

    async def before_update(self, new: JSON, old: JSON, *, dry_run: bool) -> list[Rollback]:
        return []

    async def after_update(self, new: JSON, old: JSON) -> None:
        """Release what ``old`` held and ``new`` does not."""

    async def after_delete(self, obj: JSON) -> None:
        """Release what a deleted object held."""
