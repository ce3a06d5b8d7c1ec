"""The storage admission plugins, upstream's defaults: DefaultStorageClass,
StorageObjectInUseProtection and PersistentVolumeClaimResize.

* **DefaultStorageClass**: a new PersistentVolumeClaim that names no class (neither
  ``spec.storageClassName`` nor the beta annotation; an empty string is a choice, "no
  class") gets the default StorageClass — the one annotated
  ``storageclass.kubernetes.io/is-default-class: "true"``, the newest when there are
  several, as upstream since 1.28. With no default the claim is left as it is.
* **StorageObjectInUseProtection**: a new claim gets the ``kubernetes.io/pvc-protection``
  finalizer and a new PersistentVolume ``kubernetes.io/pv-protection``, so the protection
  controllers can hold their deletion while they are in use.
"""

from __future__ import annotations

from typing import ClassVar

from pyk8s.api import pvbinding as pvb
from pyk8s.apiserver.admission import CREATE, UPDATE, Attributes, Context, Plugin, forbidden


class DefaultStorageClass(Plugin):
    name = "DefaultStorageClass"
    operations: ClassVar[frozenset[str]] = frozenset({CREATE})

    def __init__(self, context: Context) -> None:
        self.reader = context.reader

    def handles(self, attrs: Attributes) -> bool:
        return (
            attrs.operation == CREATE
            and attrs.group_resource == ("", "persistentvolumeclaims")
            and not attrs.subresource
        )

    async def admit(self, attrs: Attributes) -> bool:
        claim = attrs.obj
        assert claim is not None
        spec = claim.setdefault("spec", {})
        if spec.get("storageClassName") is not None:
            return False
        if pvb.ANN_BETA_STORAGE_CLASS in pvb.annotations_of(claim):
            return False
        default = pvb.default_class(self.reader.list("storage.k8s.io", "storageclasses"))
        if default is None:
            return False
        spec["storageClassName"] = default["metadata"]["name"]
        return True


_FINALIZERS = {
    ("", "persistentvolumeclaims"): pvb.PVC_PROTECTION_FINALIZER,
    ("", "persistentvolumes"): pvb.PV_PROTECTION_FINALIZER,
}


class StorageObjectInUseProtection(Plugin):
    name = "StorageObjectInUseProtection"
    operations: ClassVar[frozenset[str]] = frozenset({CREATE})

    def __init__(self, context: Context) -> None:
        pass

    def handles(self, attrs: Attributes) -> bool:
        return (
            attrs.operation == CREATE
            and attrs.group_resource in _FINALIZERS
            and not attrs.subresource
        )

    async def admit(self, attrs: Attributes) -> bool:
        assert attrs.obj is not None
        finalizer = _FINALIZERS[attrs.group_resource]
        meta = attrs.obj.setdefault("metadata", {})
        finalizers = list(meta.get("finalizers") or [])
        if finalizer in finalizers:
            return False
        meta["finalizers"] = [*finalizers, finalizer]
        return True


class PersistentVolumeClaimResize(Plugin):
    """A claim's storage request may grow only when its StorageClass says
    ``allowVolumeExpansion: true`` (upstream's PersistentVolumeClaimResize, on by default);
    otherwise 403 with upstream's message."""

    name = "PersistentVolumeClaimResize"
    operations: ClassVar[frozenset[str]] = frozenset({UPDATE})

    def __init__(self, context: Context) -> None:
        self.reader = context.reader

    def handles(self, attrs: Attributes) -> bool:
        return (
            attrs.operation == UPDATE
            and attrs.group_resource == ("", "persistentvolumeclaims")
            and not attrs.subresource
        )

    async def validate(self, attrs: Attributes) -> None:
        assert attrs.obj is not None and attrs.old is not None
        if pvb.requested_storage(attrs.obj) <= pvb.requested_storage(attrs.old):
            return
        cls = pvb.claim_class(attrs.obj)
        sc = await self.reader.get("storage.k8s.io", "storageclasses", "", cls) if cls else None
        if sc is None or sc.get("allowVolumeExpansion") is not True:
            raise forbidden(
                attrs,
                "only dynamically provisioned pvc can be resized and the storageclass that "
                "provisions the pvc must support resize",
            )
