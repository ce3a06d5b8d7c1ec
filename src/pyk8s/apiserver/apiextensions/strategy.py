"""The strategies of CustomResourceDefinitions and of the custom resources they define.

A CRD is a built-in object with upstream's defaults and validation, a status the server
owns (``storedVersions`` grows with every storage version), and a deletion that first
removes every instance (the ``customresourcecleanup.apiextensions.k8s.io`` finalizer).

A custom resource is served with :class:`CustomResourceStrategy`, built from one version of
its CRD: the structural schema prunes unknown fields, defaults and validates (with the
``x-kubernetes-validations`` CEL rules), ``additionalPrinterColumns`` make the Table,
``selectableFields`` extend field selectors, the status and scale subresources follow the
CRD, and versions convert by the CRD's conversion strategy.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from pyk8s.api import crdschema, errors
from pyk8s.api.cel import validate_rules
from pyk8s.api.crdprinter import crd_printer
from pyk8s.api.errors import FieldError, FieldErrorType
from pyk8s.api.jsoncopy import copy_json
from pyk8s.api.jsonpath import JSONPath, JSONPathError
from pyk8s.api.jsonpath import parse as parse_jsonpath
from pyk8s.api.registry import Resource
from pyk8s.api.selectors import FieldSelector, SelectorError
from pyk8s.api.validation import apiextensions as crd_validation
from pyk8s.api.validation import names
from pyk8s.api.validation.meta import validate_object_meta, validate_object_meta_update
from pyk8s.apiserver import conversionwebhook
from pyk8s.apiserver.strategies import JSON, Rollback, Strategy, Subresource
from pyk8s.apiserver.subresources import Scale
from pyk8s.apiserver.webhook import WebhookClient

#: objects converted by a webhook, kept for the synchronous convert() that follows
CONVERTED_CACHE = 4096

#: the finalizer that holds a deleted CRD until its instances are gone
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"

#: schema errors after which upstream does not run the CEL rules (hasBlockingErr)
_BLOCKING = frozenset(
    {
        FieldErrorType.NOT_SUPPORTED,
        FieldErrorType.REQUIRED,
        FieldErrorType.TOO_LONG,
        FieldErrorType.TOO_MANY,
        FieldErrorType.TYPE_INVALID,
    }
)
_RULES_NOT_CHECKED = (
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)


def storage_version(crd: JSON) -> str:
    for v in (crd.get("spec") or {}).get("versions") or []:
        if v.get("storage"):
            return str(v.get("name", ""))
    return ""


def version_of(crd: JSON, name: str) -> JSON:
    for v in (crd.get("spec") or {}).get("versions") or []:
        if v.get("name") == name:
            return dict(v)
    return {}


def condition(crd: JSON, type_: str) -> JSON | None:
    for c in (crd.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None


class CustomResourceDefinitionStrategy(Strategy):
    generation_tracked = True

    def default(self, obj: JSON, *, create: bool) -> JSON:
        out = copy_json(obj)
        crd_validation.default_custom_resource_definition(out)
        return out

    def prepare_for_create(self, obj: JSON) -> None:
        crd_validation.prepare_custom_resource_definition_for_create(obj)

    def prepare_for_update(self, new: JSON, old: JSON) -> None:
        crd_validation.prepare_custom_resource_definition_for_update(new, old)

    def validate(self, obj: JSON) -> list[FieldError]:
        return crd_validation.validate_custom_resource_definition(obj)

    def validate_update(self, new: JSON, old: JSON) -> list[FieldError]:
        return crd_validation.validate_custom_resource_definition_update(new, old)

    def validate_status_update(self, new: JSON, old: JSON) -> list[FieldError]:
        return crd_validation.validate_custom_resource_definition_status_update(new, old)

    def deletion_finalizers(self, obj: JSON) -> list[str]:
        return [CLEANUP_FINALIZER]

    def begin_deletion(self, obj: JSON) -> None:
        status = obj.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "Terminating"]
        conditions.append(
            {
                "type": "Terminating",
                "status": "True",
                "reason": "InstanceDeletionPending",
                "message": "CustomResourceDefinition marked for deletion; "
                "CustomResource deletion will begin soon",
                "lastTransitionTime": obj["metadata"].get("deletionTimestamp"),
            }
        )
        status["conditions"] = conditions


class CustomResourceStrategy(Strategy):
    """One served version of a custom resource, as its CRD describes it."""

    generation_tracked = True
    strategic_merge_patch = False

    def __init__(
        self,
        resource: Resource,
        crd: JSON,
        version: str,
        webhooks: WebhookClient | None = None,
        converted: OrderedDict[bytes, JSON] | None = None,
    ) -> None:
        super().__init__(resource)
        self.crd = crd
        self.webhooks = webhooks
        #: webhook conversions, shared by the strategies of one CRD's versions
        self._converted: OrderedDict[bytes, JSON] = (
            converted if converted is not None else OrderedDict()
        )
        self.version = version
        spec = crd.get("spec") or {}
        v = version_of(crd, version)
        self.schema: JSON = ((v.get("schema") or {}).get("openAPIV3Schema")) or {}
        self.group = str(spec.get("group", ""))
        self.conversion: JSON = spec.get("conversion") or {"strategy": "None"}
        self.served_versions = {
            str(x.get("name")) for x in spec.get("versions") or [] if x.get("served")
        }
        self.terminating = bool((crd.get("metadata") or {}).get("deletionTimestamp"))
        subs = v.get("subresources") or {}
        scale = subs.get("scale")
        self.subresources: Mapping[str, Subresource] = (
            {
                "scale": Scale(
                    scale.get("specReplicasPath", ".spec.replicas"),
                    scale.get("statusReplicasPath", ".status.replicas"),
                    scale.get("labelSelectorPath") or None,
                )
            }
            if isinstance(scale, dict)
            else {}
        )
        self.printer = crd_printer(crd, version)
        self._has_defaults = _has_defaults(self.schema)
        self._selectable: dict[str, JSONPath] = {}
        for f in v.get("selectableFields") or []:
            path = str(f.get("jsonPath", ""))
            try:
                self._selectable[path.lstrip(".")] = parse_jsonpath(path)
            except (JSONPathError, ValueError):
                continue

    # ------------------------------------------------------------------ decoding

    def unknown_fields(self, obj: JSON) -> list[str]:
        if not self.schema:
            return []
        return crdschema.prune(obj, self.schema)

    def default(self, obj: JSON, *, create: bool) -> JSON:
        out = copy_json(obj)
        if self.schema:
            crdschema.apply_defaults(out, self.schema)
        return out

    def patch_schema(self) -> str | None:
        return None

    # ------------------------------------------------------------------ create, update

    def spec_changed(self, new: JSON, old: JSON) -> bool:
        """Upstream's custom resources: anything but metadata and status is "spec"."""
        skip = ("metadata", "status")
        return {k: v for k, v in new.items() if k not in skip} != {
            k: v for k, v in old.items() if k not in skip
        }

    def validate(self, obj: JSON) -> list[FieldError]:
        # upstream's customResourceValidator: names are DNS subdomains
        errs = validate_object_meta(
            obj.get("metadata") or {},
            self.resource.namespaced,
            names.name_is_dns_subdomain,
            core=False,
        )
        return errs + self._schema_errors(obj, None)

    def validate_update(self, new: JSON, old: JSON) -> list[FieldError]:
        errs = validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        return errs + self._schema_errors(new, old)

    def _schema_errors(self, obj: JSON, old: JSON | None) -> list[FieldError]:
        """Upstream's order: the schema (ratcheted on update), then the CEL rules, unless
        a blocking error means the object lacks the shape the rules expect."""
        if not self.schema:
            return []
        if old is None:
            errs = crdschema.validate(obj, self.schema)
        else:
            errs = crdschema.validate_update(obj, old, self.schema)
        if any(e.type in _BLOCKING for e in errs):
            errs.append(FieldError(FieldErrorType.INVALID, "<nil>", "null", _RULES_NOT_CHECKED))
        else:
            errs += validate_rules(self.schema, obj, old)
        return errs

    async def before_create(self, obj: JSON, *, dry_run: bool) -> list[Rollback]:
        if self.terminating:
            raise errors.method_not_allowed(
                "create not allowed while custom resource definition is terminating"
            )
        return []

    # ------------------------------------------------------------------ versions

    @property
    def converts_by_webhook(self) -> bool:
        return self.conversion.get("strategy") == "Webhook" and self.webhooks is not None

    async def prepare_conversion(
        self,
        objects: Sequence[JSON],
        api_version: str,
        *,
        as_list: bool = False,
        for_write: bool = False,
    ) -> None:
        """Send the objects not yet at ``api_version`` to the conversion webhook, once.

        A failure reads as upstream's: with the list wording for a LIST (``as_list``), and
        as an InternalError when the object is being written (``for_write``)."""
        if not self.converts_by_webhook:
            return
        todo = [
            o
            for o in objects
            if o.get("apiVersion", api_version) != api_version
            and _conversion_key(o, api_version) not in self._converted
        ]
        if not todo:
            return
        assert self.webhooks is not None
        timeout = float(((self.conversion.get("webhook") or {}).get("timeoutSeconds")) or 30)
        try:
            out = await conversionwebhook.convert(
                self.webhooks,
                self.crd,
                todo,
                api_version,
                timeout=timeout,
                as_list=True if as_list else None,
            )
        except conversionwebhook.ConversionError as err:
            if for_write:
                raise err.internal() from None
            raise
        for src, dst in zip(todo, out, strict=True):
            self._converted[_conversion_key(src, api_version)] = dst
        while len(self._converted) > CONVERTED_CACHE:
            self._converted.popitem(last=False)

    def convert(self, obj: JSON, api_version: str) -> JSON:
        """The object at another version: ``None`` conversion changes the apiVersion, a
        webhook's answer comes from :meth:`prepare_conversion`.

        What is converted to this strategy's own version is being read: it gets the
        version's defaults (see :meth:`read_defaults`)."""
        out = self._convert(obj, api_version)
        return self.read_defaults(out) if api_version == self.resource.api_version else out

    def _convert(self, obj: JSON, api_version: str) -> JSON:
        if obj.get("apiVersion") == api_version:
            return obj
        if self.converts_by_webhook:
            done = self._converted.get(_conversion_key(obj, api_version))
            if done is None:
                raise errors.internal(
                    f"conversion of {obj.get('apiVersion')} to {api_version} was not prepared"
                )
            return copy_json(done)
        group, _, version = api_version.rpartition("/")
        if group != self.group or version not in self.served_versions | {storage_version(self.crd)}:
            raise errors.internal(
                f"request to convert CR to an invalid group/version: {api_version}"
            )
        return {**obj, "apiVersion": api_version}

    @property
    def reads_need_view(self) -> bool:
        return self._has_defaults

    def read_defaults(self, obj: JSON) -> JSON:
        """``obj`` (read from storage, at this version) with the schema's defaults, as
        upstream's storage decoder defaults: objects written before a default was added
        to the CRD read with it. ``obj`` itself when nothing was missing (it may be
        shared: never changed in place)."""
        if not self._has_defaults:
            return obj
        out = copy_json(obj)
        crdschema.apply_defaults(out, self.schema)
        return obj if out == obj else out

    # ------------------------------------------------------------------ reads

    def field_selector(self, selector: FieldSelector) -> FieldSelector:
        known = (
            ("metadata.name", "metadata.namespace")
            if self.resource.namespaced
            else ("metadata.name",)
        )
        for t in selector.terms:
            if t.field not in (*known, *self._selectable):
                raise SelectorError(f"field label not supported: {t.field}")
        return selector

    def field_values(self, obj: JSON) -> dict[str, str]:
        meta = obj.get("metadata") or {}
        out = {"metadata.name": str(meta.get("name", ""))}
        if self.resource.namespaced:
            out["metadata.namespace"] = str(meta.get("namespace", ""))
        for field, path in self._selectable.items():
            found = path.find(obj)
            if found:
                value = found[0]
                out[field] = (
                    ("true" if value else "false") if isinstance(value, bool) else str(value)
                )
        return out


def _has_defaults(schema: Any) -> bool:
    """Whether a schema sets a ``default`` anywhere (else reads need no defaulting)."""
    if isinstance(schema, dict):
        return "default" in schema or any(_has_defaults(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_has_defaults(v) for v in schema)
    return False


def _conversion_key(obj: JSON, api_version: str) -> bytes:
    return api_version.encode() + b"\0" + orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


__all__ = [
    "CLEANUP_FINALIZER",
    "CustomResourceDefinitionStrategy",
    "CustomResourceStrategy",
]
