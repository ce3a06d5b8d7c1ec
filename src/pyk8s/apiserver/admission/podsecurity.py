"""PodSecurity: the Pod Security Standards enforced per namespace through the
``pod-security.kubernetes.io/enforce|audit|warn`` labels (upstream's built-in plugin; the
levels, checks and messages are in :mod:`pyk8s.api.podsecurity`).

Pods violating the namespace's enforce level are refused with 403; audit and warn
violations come back as ``Warning`` headers; workload objects (Deployments, Jobs, …) are
only warned about; a namespace whose labels tighten the level warns about the pods that
already violate it.
"""

from __future__ import annotations

from typing import Any

from pyk8s.api import podsecurity
from pyk8s.apiserver.admission import Attributes, Context, Plugin


class PodSecurity(Plugin):
    name = "PodSecurity"

    def __init__(self, context: Context) -> None:
        self.reader = context.reader
        config = context.config.get(self.name)
        self.config = (
            config
            if isinstance(config, podsecurity.PodSecurityConfig)
            else (podsecurity.PodSecurityConfig())
        )

    def handles(self, attrs: Attributes) -> bool:
        r = attrs.resource
        return attrs.operation in ("CREATE", "UPDATE") and podsecurity.applies_to(r.group, r.plural)

    async def validate(self, attrs: Attributes) -> None:
        assert attrs.obj is not None
        r = attrs.resource
        labels: dict[str, Any] | None
        if r.plural == "namespaces" and not r.group:
            labels = None
            ns_name = attrs.name
        else:
            ns_name = attrs.namespace
            ns = await self.reader.get("", "namespaces", "", ns_name)
            labels = None if ns is None else (ns.get("metadata") or {}).get("labels") or {}

        def pods() -> list[dict[str, Any]]:
            return self.reader.list("", "pods", ns_name)

        decision = podsecurity.evaluate(
            self.config,
            operation=attrs.operation,
            resource=r.plural,
            obj=attrs.obj,
            group=r.group,
            subresource=attrs.subresource,
            name=attrs.name or None,
            namespace=ns_name,
            namespace_labels=labels,
            old_obj=attrs.old,
            username=attrs.user.name,
            pods=pods,
        )
        attrs.warnings.extend(decision.warnings)
        attrs.audit_annotations.update(decision.audit_annotations)
        if not decision.allowed and decision.error is not None:
            raise decision.error
