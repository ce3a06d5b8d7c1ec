"""NamespaceLifecycle: no new objects in a missing or terminating namespace, and the
system namespaces cannot be deleted (upstream's plugin of the same name)."""

from __future__ import annotations

from typing import ClassVar

from pyk8s.api import errors
from pyk8s.apiserver.admission import CREATE, DELETE, Attributes, Context, Plugin

#: namespaces upstream never lets go (its immortalNamespaces; kube-node-lease is not one)
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public")


class NamespaceLifecycle(Plugin):
    name = "NamespaceLifecycle"
    operations: ClassVar[frozenset[str]] = frozenset({CREATE, DELETE})

    def __init__(self, context: Context) -> None:
        self.reader = context.reader

    async def validate(self, attrs: Attributes) -> None:
        r = attrs.resource
        if attrs.operation == DELETE:
            if attrs.group_resource == ("", "namespaces") and attrs.name in SYSTEM_NAMESPACES:
                raise errors.forbidden_request(
                    f'namespaces "{attrs.name}" is forbidden: this namespace may not be deleted'
                )
            return
        if not r.namespaced or not attrs.namespace:
            return
        ns = await self.reader.get("", "namespaces", "", attrs.namespace)
        if ns is None:
            raise errors.not_found("namespaces", attrs.namespace)
        terminating = ns.get("metadata", {}).get("deletionTimestamp") or (
            ns.get("status", {}).get("phase") == "Terminating"
        )
        if terminating:
            name = attrs.name or str(((attrs.obj or {}).get("metadata") or {}).get("name", ""))
            qualified = f"{r.plural}.{r.group}" if r.group else r.plural
            who = f'{qualified} "{name}"' if name else qualified
            details: dict[str, object] = {"name": name, "kind": r.plural}
            if r.group:
                details["group"] = r.group
            raise errors.StatusError(
                403,
                "Forbidden",
                f"{who} is forbidden: unable to create new content in namespace "
                f"{attrs.namespace} because it is being terminated",
                {
                    **details,
                    "causes": [
                        {
                            "reason": "NamespaceTerminating",
                            "message": f"namespace {attrs.namespace} is being terminated",
                            "field": "metadata.namespace",
                        }
                    ],
                },
            )
