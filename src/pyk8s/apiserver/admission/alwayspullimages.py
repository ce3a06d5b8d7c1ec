"""AlwaysPullImages (off by default): every container of a new or updated pod pulls its
image, so a pod cannot use an image cached on its node that its own credentials could not
pull (upstream's plugin; enable with --enable-admission-plugins=AlwaysPullImages)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from pyk8s.api import errors
from pyk8s.apiserver.admission import CREATE, JSON, UPDATE, Attributes, Context, Plugin

_KINDS = (
    ("initContainers", "initContainers"),
    ("containers", "containers"),
    ("ephemeralContainers", "ephemeralContainers"),
)


def _containers(pod: JSON) -> Iterator[tuple[str, JSON]]:
    spec = pod.get("spec") or {}
    for key, path in _KINDS:
        for i, c in enumerate(spec.get(key) or []):
            yield f"spec.{path}[{i}].imagePullPolicy", c


class AlwaysPullImages(Plugin):
    name = "AlwaysPullImages"
    operations: ClassVar[frozenset[str]] = frozenset({CREATE, UPDATE})

    def __init__(self, context: Context) -> None:
        pass

    def handles(self, attrs: Attributes) -> bool:
        return attrs.operation in self.operations and attrs.is_pod()

    async def admit(self, attrs: Attributes) -> bool:
        assert attrs.obj is not None
        changed = False
        for _path, c in _containers(attrs.obj):
            if c.get("imagePullPolicy") != "Always":
                c["imagePullPolicy"] = "Always"
                changed = True
        return changed

    async def validate(self, attrs: Attributes) -> None:
        assert attrs.obj is not None
        problems = [
            errors.not_supported(path, c.get("imagePullPolicy"), ["Always"])
            for path, c in _containers(attrs.obj)
            if c.get("imagePullPolicy") != "Always"
        ]
        if problems:
            name = attrs.obj.get("metadata", {}).get("name", "")
            raise errors.invalid_object("Pod", name, problems)
