"""LimitRanger: a namespace's LimitRanges default and bound the resources of new pods and
of claims (upstream's plugin; the rules and messages are in :mod:`pyk8s.api.limitranger`).

Mutating: containers without requests/limits get the LimitRange defaults (with upstream's
``kubernetes.io/limit-ranger`` annotation). Validating: min/max/ratio per Container and
Pod, storage per PersistentVolumeClaim, refused with 403 as upstream.
"""

from __future__ import annotations

from pyk8s.api import limitranger
from pyk8s.apiserver.admission import Attributes, Context, Plugin


class LimitRanger(Plugin):
    name = "LimitRanger"

    def __init__(self, context: Context) -> None:
        self.reader = context.reader

    def handles(self, attrs: Attributes) -> bool:
        r = attrs.resource
        return limitranger.applies(
            attrs.operation,
            r.plural,
            group=r.group,
            subresource=attrs.subresource,
            old_obj=attrs.old,
        )

    def _ranges(self, attrs: Attributes) -> list[dict[str, object]]:
        return self.reader.list("", "limitranges", attrs.namespace)

    async def admit(self, attrs: Attributes) -> bool:
        if attrs.resource.plural != "pods" or attrs.obj is None:
            return False
        ranges = self._ranges(attrs)
        return bool(ranges) and limitranger.apply_defaults(attrs.obj, ranges)

    async def validate(self, attrs: Attributes) -> None:
        if attrs.obj is None:
            return
        ranges = self._ranges(attrs)
        if not ranges:
            return
        messages = limitranger.validate(attrs.resource.plural, attrs.obj, ranges)
        if messages:
            raise limitranger.forbidden(attrs.resource.plural, attrs.obj, messages)
