"""PersistentVolumeClaimResize admission and the claim-shrink validation rule: a claim's
storage request grows only on a class with ``allowVolumeExpansion: true`` (403 otherwise,
upstream's message) and a bound claim's never goes below its ``status.capacity`` (422)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pyk8s.api import errors
from pyk8s.api.registry import REGISTRY
from pyk8s.api.validation.core import update_persistent_volume_claim
from pyk8s.apiserver.admission import UPDATE, Attributes, Context
from pyk8s.apiserver.admission.storage import PersistentVolumeClaimResize
from pyk8s.apiserver.authn import UserInfo

PVCS = REGISTRY.get("", "v1", "persistentvolumeclaims")
CLASSES = {
    "grows": {"metadata": {"name": "grows"}, "allowVolumeExpansion": True},
    "fixed": {"metadata": {"name": "fixed"}},
}


class _Reader:
    async def get(self, group: str, plural: str, namespace: str, name: str) -> Any:
        assert (group, plural) == ("storage.k8s.io", "storageclasses")
        return CLASSES.get(name)


def _claim(cls: str, size: str, capacity: str = "1Gi") -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "ns", "resourceVersion": "1"},
        "spec": {"storageClassName": cls, "accessModes": ["ReadWriteOnce"],
                 "volumeName": "pv-1", "resources": {"requests": {"storage": size}}},
        "status": {"phase": "Bound", "capacity": {"storage": capacity}},
    }  # fmt: skip


async def _admit(old: dict[str, Any], new: dict[str, Any]) -> None:
    plugin = PersistentVolumeClaimResize(Context(_Reader()))  # type: ignore[arg-type]
    attrs = Attributes(UPDATE, PVCS, "ns", "data", new, old, UserInfo("u"))  # type: ignore[arg-type]
    assert plugin.handles(attrs)
    await plugin.validate(attrs)


async def test_growing_needs_a_class_that_allows_expansion() -> None:
    await _admit(_claim("grows", "1Gi"), _claim("grows", "2Gi"))
    await _admit(_claim("fixed", "2Gi"), _claim("fixed", "2Gi"))  # no growth: nothing to check
    with pytest.raises(errors.StatusError) as err:
        await _admit(_claim("fixed", "1Gi"), _claim("fixed", "2Gi"))
    assert err.value.code == 403
    assert err.value.message == (
        'persistentvolumeclaims "data" is forbidden: only dynamically provisioned pvc can be '
        "resized and the storageclass that provisions the pvc must support resize"
    )


def test_a_bound_claim_never_shrinks_below_its_capacity() -> None:
    old = _claim("grows", "2Gi", capacity="1Gi")
    assert update_persistent_volume_claim(_claim("grows", "4Gi", capacity="1Gi"), old) == []
    # down again, but above status.capacity (recovering from a failed expansion): allowed
    assert update_persistent_volume_claim(_claim("grows", "1536Mi", capacity="1Gi"), old) == []
    shrunk = copy.deepcopy(old)
    shrunk["spec"]["resources"]["requests"]["storage"] = "512Mi"
    errs = update_persistent_volume_claim(shrunk, old)
    assert [(e.field, e.type.value[0]) for e in errs] == [
        ("spec.resources.requests.storage", "FieldValueForbidden")
    ]
    assert errs[0].detail == "field can not be less than status.capacity"
