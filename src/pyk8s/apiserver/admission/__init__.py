"""The admission chain: upstream's plugins, run on every write in upstream's order.

A write goes decode → defaults → **mutating** plugins → the resource strategy's
validation → **validating** plugins → the write (create, update, patch, delete,
deletecollection, the writable subresources, and CONNECT for exec/attach/port-forward).
Each plugin sees one :class:`Attributes` value — operation, resource, subresource, object,
old object, user, dry run — and reads the cluster through the narrow :class:`Reader` it
was built with, never the whole server.

Plugins register by name (:data:`PLUGINS`), in upstream's order (:data:`ORDER`); the
server enables upstream's defaults (:data:`DEFAULT_ENABLED`) adjusted by
``--enable-admission-plugins`` / ``--disable-admission-plugins`` (:func:`build_chain`).
Webhooks and CEL policies (the next issue) are more plugins of the same chain.

A plugin refuses a request by raising :class:`~pyk8s.api.errors.StatusError` (403
Forbidden with upstream's text, as a rule); a mutating plugin changes ``attrs.obj`` in
place, with complete, defaulted values (as upstream's built-in plugins do: nothing is
defaulted after admission; a plugin applying a foreign patch, a webhook's, defaults what it
decodes itself), and returns whether it changed anything: the chain reports which plugins
did (a pod's trace shows them as ``mutatedBy``) without comparing the object before and
after each plugin.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pyk8s.api import errors
from pyk8s.api.registry import Resource
from pyk8s.apiserver.audit import admission_annotations
from pyk8s.apiserver.authn import UserInfo

JSON = dict[str, Any]

CREATE, UPDATE, DELETE, CONNECT = "CREATE", "UPDATE", "DELETE", "CONNECT"


@dataclass(slots=True)
class Attributes:
    """What admission knows about one request (upstream's ``admission.Attributes``)."""

    operation: str
    resource: Resource
    namespace: str
    name: str
    #: the object being written (None for DELETE and CONNECT without options)
    obj: JSON | None
    #: the stored object an UPDATE or DELETE replaces
    old: JSON | None
    user: UserInfo
    subresource: str = ""
    dry_run: bool = False
    #: CreateOptions/UpdateOptions/DeleteOptions/PodExecOptions as sent
    options: JSON | None = None
    #: upstream's audit annotations and response warnings a plugin adds
    warnings: list[str] = field(default_factory=list)
    #: the request's uid, as webhooks and policies see it (:attr:`request_uid`)
    uid: str = ""
    #: audit annotations (``key`` -> value) webhooks and policies add: the request's
    #: audit event's own dict when the request is audited
    audit_annotations: dict[str, str] = field(default_factory=admission_annotations)
    #: a plugin asks for a second run of the mutating phase (a webhook changed the
    #: object after an earlier one with ``reinvocationPolicy: IfNeeded`` saw it)
    reinvoke: bool = False
    #: the mutating phase is running for the second time
    reinvoking: bool = False
    #: what plugins remember between the two runs, by plugin name
    reinvocation: dict[str, Any] = field(default_factory=dict)

    @property
    def group_resource(self) -> tuple[str, str]:
        return self.resource.group, self.resource.plural

    @property
    def request_uid(self) -> str:
        """One uid for the whole request, made on first use (every webhook call and its
        reinvocation carry the same one, as upstream)."""
        if not self.uid:
            self.uid = str(uuid.uuid4())
        return self.uid

    def is_pod(self) -> bool:
        """A pod itself (not one of its subresources)."""
        return self.group_resource == ("", "pods") and not self.subresource


def forbidden(attrs: Attributes, why: str) -> errors.StatusError:
    """Upstream's ``admission.NewForbidden``: 403 naming the resource (no subresource) and
    the request's name, or the object's on create."""
    r = attrs.resource
    name = attrs.name or str(((attrs.obj or {}).get("metadata") or {}).get("name") or "")
    qualified = f"{r.plural}.{r.group}" if r.group else r.plural
    details: dict[str, object] = {"kind": r.plural}
    if r.group:
        details["group"] = r.group
    if name:
        details["name"] = name
        return errors.StatusError(
            403, "Forbidden", f'{qualified} "{name}" is forbidden: {why}', details
        )
    return errors.StatusError(403, "Forbidden", f"{qualified} is forbidden: {why}", details)


class Reader(Protocol):
    """The reads a plugin may do: the watch cache first, the store on a miss."""

    async def get(self, group: str, plural: str, namespace: str, name: str) -> JSON | None:
        """An object (None if absent), read through to the store on a cache miss."""
        ...

    def cached(self, group: str, plural: str, namespace: str, name: str) -> JSON | None:
        """An object from the watch cache only (a miss means "not there")."""
        ...

    def list(self, group: str, plural: str, namespace: str | None = None) -> list[JSON]:
        """Objects from the watch cache (shared: copy before changing)."""
        ...


class Plugin:
    """One admission plugin. Override :meth:`admit` (mutating), :meth:`validate`
    (validating) or both; :meth:`handles` says which requests it looks at."""

    name: ClassVar[str] = ""
    #: the operations it looks at
    operations: ClassVar[frozenset[str]] = frozenset({CREATE, UPDATE})

    def handles(self, attrs: Attributes) -> bool:
        return attrs.operation in self.operations

    @property
    def mutating(self) -> bool:
        return type(self).admit is not Plugin.admit

    @property
    def validating(self) -> bool:
        return type(self).validate is not Plugin.validate

    async def admit(self, attrs: Attributes) -> bool:
        """Change ``attrs.obj`` (mutating phase); whether it changed it."""
        return False

    async def validate(self, attrs: Attributes) -> None:
        """Refuse the request by raising (validating phase)."""


class PodCreatePlugin(Plugin):
    """A plugin that looks only at new pods (not their subresources)."""

    operations: ClassVar[frozenset[str]] = frozenset({CREATE})

    def __init__(self, context: Context) -> None:
        self.reader = context.reader

    def handles(self, attrs: Attributes) -> bool:
        return attrs.operation == CREATE and attrs.is_pod()


class Chain:
    """The enabled plugins, in order; the mutating phase, then the validating one."""

    def __init__(self, plugins: Sequence[Plugin]) -> None:
        self.plugins = tuple(plugins)
        self._mutating = tuple(p for p in self.plugins if p.mutating)
        self._validating = tuple(p for p in self.plugins if p.validating)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.plugins]

    async def admit(self, attrs: Attributes) -> list[str]:
        """The mutating phase; run once more when a plugin asks (upstream's reinvoker:
        every mutating plugin again, webhooks only where their policy says so). The names
        of the plugins that changed the object, in order (a pod's trace: ``mutatedBy``)."""
        changed: list[str] = []
        await self._mutate(attrs, changed)
        if attrs.reinvoke and not attrs.reinvoking:
            attrs.reinvoking = True
            await self._mutate(attrs, changed)
        return changed

    async def _mutate(self, attrs: Attributes, changed: list[str]) -> None:
        for plugin in self._mutating:
            if plugin.handles(attrs) and await plugin.admit(attrs) and plugin.name not in changed:
                changed.append(plugin.name)

    async def validate(self, attrs: Attributes) -> None:
        for plugin in self._validating:
            if plugin.handles(attrs):
                await plugin.validate(attrs)


@dataclass(frozen=True, slots=True)
class Context:
    """What a plugin factory gets: reads, and the pieces a few plugins need."""

    reader: Reader
    #: ResourceQuota's compare-and-swap status writes (see .resourcequota)
    quota_writer: Any = None
    #: PodSecurity exemptions and the like, by plugin name
    config: dict[str, Any] = field(default_factory=dict)
    #: the API server's (mutable) registry: equivalent resources, kinds, custom resources
    registry: Any = None
    #: the API server's authorizer (a policy's CEL ``authorizer`` variable)
    authorizer: Any = None
    #: ``strategy(resource)``: a resource's strategy (conversions for webhooks)
    strategy: Any = None
    #: ``decode(resource, obj)``: an object a webhook patched, decoded as a request body
    #: is (unknown fields dropped, defaults applied)
    decode: Any = None
    #: the HTTPS client admission webhooks are called with (the server closes it)
    webhook_client: Any = None
    #: the admission webhook metrics (:class:`.webhooks.WebhookMetrics`)
    webhook_metrics: Any = None


Factory = Callable[[Context], Plugin]

#: upstream's plugin order (AllOrderedPlugins), restricted to the plugins pyk8s has
ORDER: tuple[str, ...] = (
    "NamespaceLifecycle",
    "LimitRanger",
    "ServiceAccount",
    "NodeRestriction",
    "AlwaysPullImages",
    "PodSecurity",
    "Priority",
    "DefaultTolerationSeconds",
    "DefaultStorageClass",
    "StorageObjectInUseProtection",
    "PersistentVolumeClaimResize",
    "CertificateApproval",
    "CertificateSigning",
    "CertificateSubjectRestriction",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionWebhook",
    "ResourceQuota",
)

#: enabled unless disabled (upstream's DefaultOffAdmissionPlugins complement)
DEFAULT_ENABLED: tuple[str, ...] = (
    "NamespaceLifecycle",
    "LimitRanger",
    "ServiceAccount",
    "PodSecurity",
    "Priority",
    "DefaultTolerationSeconds",
    "DefaultStorageClass",
    "StorageObjectInUseProtection",
    "PersistentVolumeClaimResize",
    "CertificateApproval",
    "CertificateSigning",
    "CertificateSubjectRestriction",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionWebhook",
    "ResourceQuota",
)


class UnknownPlugin(ValueError):
    pass


def plugins() -> dict[str, Factory]:
    """Every plugin pyk8s has, by name (imported here: plugins import this module)."""
    from pyk8s.apiserver.admission import (
        alwayspullimages,
        certificates,
        limitranger,
        namespacelifecycle,
        noderestriction,
        podsecurity,
        policy,
        priority,
        resourcequota,
        serviceaccount,
        storage,
        tolerations,
        webhooks,
    )

    return {
        "NamespaceLifecycle": namespacelifecycle.NamespaceLifecycle,
        "LimitRanger": limitranger.LimitRanger,
        "ServiceAccount": serviceaccount.ServiceAccount,
        "NodeRestriction": noderestriction.NodeRestriction,
        "AlwaysPullImages": alwayspullimages.AlwaysPullImages,
        "PodSecurity": podsecurity.PodSecurity,
        "Priority": priority.Priority,
        "DefaultTolerationSeconds": tolerations.DefaultTolerationSeconds,
        "DefaultStorageClass": storage.DefaultStorageClass,
        "StorageObjectInUseProtection": storage.StorageObjectInUseProtection,
        "PersistentVolumeClaimResize": storage.PersistentVolumeClaimResize,
        "CertificateApproval": certificates.CertificateApproval,
        "CertificateSigning": certificates.CertificateSigning,
        "CertificateSubjectRestriction": certificates.CertificateSubjectRestriction,
        "MutatingAdmissionWebhook": webhooks.MutatingAdmissionWebhook,
        "ValidatingAdmissionPolicy": policy.ValidatingAdmissionPolicy,
        "ValidatingAdmissionWebhook": webhooks.ValidatingAdmissionWebhook,
        "ResourceQuota": resourcequota.ResourceQuota,
    }


def enabled_plugins(enable: Iterable[str] = (), disable: Iterable[str] = ()) -> list[str]:
    """Upstream's defaults plus ``enable`` minus ``disable``, in upstream's order; an
    unknown name is refused as upstream refuses it at startup."""
    known = plugins()
    enable, disable = list(enable), list(disable)
    for name in (*enable, *disable):
        if name not in known:
            raise UnknownPlugin(f'admission-control plugin "{name}" is unknown')
    chosen = (set(DEFAULT_ENABLED) | set(enable)) - set(disable)
    return [n for n in ORDER if n in chosen]


def build_chain(context: Context, names: Iterable[str]) -> Chain:
    known = plugins()
    return Chain([known[n](context) for n in names])
