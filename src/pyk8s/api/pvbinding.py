"""Rules for binding PersistentVolumeClaims to PersistentVolumes, with no I/O.

The PV controller, the protection and ephemeral-volume controllers and the local-path
provisioner all need the same answers — which class a claim asks for, whether a volume
is bound to a claim, which available volume fits a claim best, which claims a pod uses —
and upstream keeps them in one place (``storage/util`` and ``persistentvolume/util``), so
do we. The annotation names are upstream's and make the contract between the scheduler,
the controller manager and provisioners.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from pyk8s.api.quantity import QuantityError, parse_quantity
from pyk8s.api.selectors import label_selector_from_dict

Obj = dict[str, Any]

#: on a claim: the binding is complete (set by the controller, never removed)
ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
#: on a volume or claim: the controller (not the user) set claimRef / volumeName
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
#: on a volume: the provisioner that made it (deletes it on reclaim Delete)
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
#: on a claim: the provisioner asked to make its volume (GA and beta spellings)
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
#: on a claim: the node the scheduler picked for a WaitForFirstConsumer claim
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
#: the deprecated class annotation (wins over spec.storageClassName, as upstream)
ANN_BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"
#: on a StorageClass: claims without a class get this one
ANN_DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
ANN_BETA_DEFAULT_CLASS = "storageclass.beta.kubernetes.io/is-default-class"

PVC_PROTECTION_FINALIZER = "kubernetes.io/pvc-protection"
PV_PROTECTION_FINALIZER = "kubernetes.io/pv-protection"

WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def annotations_of(obj: Obj) -> dict[str, str]:
    return dict(_meta(obj).get("annotations") or {})


def claim_class(claim: Obj) -> str:
    """GetPersistentVolumeClaimClass: the beta annotation, else spec.storageClassName."""
    ann = annotations_of(claim)
    if ANN_BETA_STORAGE_CLASS in ann:
        return ann[ANN_BETA_STORAGE_CLASS]
    return str((claim.get("spec") or {}).get("storageClassName") or "")


def volume_class(volume: Obj) -> str:
    """GetPersistentVolumeClass."""
    return claim_class(volume)


def is_default_class(sc: Obj) -> bool:
    ann = annotations_of(sc)
    return ann.get(ANN_DEFAULT_CLASS) == "true" or ann.get(ANN_BETA_DEFAULT_CLASS) == "true"


def default_class(classes: Iterable[Obj]) -> Obj | None:
    """The default StorageClass; with several, the newest (then the first by name), as
    upstream's GetDefaultClass since 1.28."""
    defaults = [c for c in classes if is_default_class(c)]
    if not defaults:
        return None
    defaults.sort(key=lambda c: str(_meta(c).get("name", "")))
    defaults.sort(key=lambda c: str(_meta(c).get("creationTimestamp") or ""), reverse=True)
    return defaults[0]


def claim_provisioner(claim: Obj) -> str:
    ann = annotations_of(claim)
    return ann.get(ANN_STORAGE_PROVISIONER) or ann.get(ANN_BETA_STORAGE_PROVISIONER) or ""


def storage_of(obj: Obj, *path: str) -> Decimal:
    """A ``storage`` quantity at ``path`` (e.g. spec.resources.requests), 0 if absent."""
    cur: Any = obj
    for p in path:
        cur = (cur or {}).get(p) if isinstance(cur, dict) else None
    value = (cur or {}).get("storage") if isinstance(cur, dict) else None
    return Decimal(0) if value is None else _parse_storage(str(value))


@functools.lru_cache(maxsize=4096)
def _parse_storage(text: str) -> Decimal:
    """Quantities repeat across thousands of volumes, and matching compares them all."""
    try:
        return parse_quantity(text)
    except QuantityError:
        return Decimal(0)


def requested_storage(claim: Obj) -> Decimal:
    return storage_of(claim, "spec", "resources", "requests")


def volume_capacity(volume: Obj) -> Decimal:
    return storage_of(volume, "spec", "capacity")


def is_volume_bound_to_claim(volume: Obj, claim: Obj) -> bool:
    """IsVolumeBoundToClaim: claimRef names the claim (and its uid, once set)."""
    ref = (volume.get("spec") or {}).get("claimRef")
    if not ref:
        return False
    meta = _meta(claim)
    if ref.get("name") != meta.get("name") or ref.get("namespace") != meta.get("namespace"):
        return False
    return not ref.get("uid") or ref.get("uid") == meta.get("uid")


def _volume_mode(obj: Obj) -> str:
    return str((obj.get("spec") or {}).get("volumeMode") or "Filesystem")


def _access_modes(obj: Obj) -> set[str]:
    return set((obj.get("spec") or {}).get("accessModes") or ())


def check_volume_satisfies_claim(volume: Obj, claim: Obj) -> str:
    """checkVolumeSatisfyClaim: why ``volume`` cannot serve ``claim`` ("" if it can)."""
    if volume_capacity(volume) < requested_storage(claim):
        return "requested PV is too small"
    if volume_class(volume) != claim_class(claim):
        return "storageClassName does not match"
    if _volume_mode(volume) != _volume_mode(claim):
        return "incompatible volumeMode"
    if not _access_modes(claim) <= _access_modes(volume):
        return "incompatible accessMode"
    return ""


def find_matching_volume(
    claim: Obj, volumes: Iterable[Obj], *, delay_binding: bool = False
) -> Obj | None:
    """FindMatchingVolume without a node: the volume pre-bound to ``claim`` if one fits,
    else the smallest available one that fits (class, access modes, volume mode,
    capacity, selector), volumes with fewer access modes first as upstream's index
    orders them. With ``delay_binding`` (WaitForFirstConsumer) only pre-bound volumes
    count: the scheduler picks the others for a node."""
    requested = requested_storage(claim)
    cls = claim_class(claim)
    modes = _access_modes(claim)
    mode = _volume_mode(claim)
    try:
        selector = label_selector_from_dict((claim.get("spec") or {}).get("selector") or {})
    except ValueError:
        return None
    best: tuple[int, Decimal] | None = None
    chosen: Obj | None = None
    for volume in volumes:
        vmeta = _meta(volume)
        if vmeta.get("deletionTimestamp"):
            continue
        if _volume_mode(volume) != mode or not modes <= _access_modes(volume):
            continue
        capacity = volume_capacity(volume)
        if is_volume_bound_to_claim(volume, claim):
            if capacity >= requested and volume_class(volume) == cls:
                return volume
            continue
        if delay_binding:
            continue
        if (volume.get("spec") or {}).get("claimRef"):
            continue
        if (volume.get("status") or {}).get("phase") not in (None, "", "Available", "Pending"):
            continue
        if volume_class(volume) != cls or capacity < requested:
            continue
        if not selector.matches(dict(vmeta.get("labels") or {})):
            continue
        rank = (len(_access_modes(volume)), capacity)
        if best is None or rank < best:
            best, chosen = rank, volume
    return chosen


def ephemeral_claim_name(pod: Obj, volume: Obj) -> str:
    """The claim of a generic ephemeral volume: ``<pod>-<volume>``."""
    return f"{_meta(pod).get('name', '')}-{volume.get('name', '')}"


def pod_claim_names(pod: Obj) -> Iterator[str]:
    """Names of the claims ``pod`` uses: persistentVolumeClaim and ephemeral volumes."""
    for vol in (pod.get("spec") or {}).get("volumes") or ():
        pvc = vol.get("persistentVolumeClaim")
        if pvc and pvc.get("claimName"):
            yield str(pvc["claimName"])
        elif vol.get("ephemeral"):
            yield ephemeral_claim_name(pod, vol)


def pod_is_terminated(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def node_affinity_nodes(volume: Obj) -> set[str]:
    """The node names a volume's ``nodeAffinity`` pins it to by ``kubernetes.io/hostname``
    (the local-path provisioner's form); empty when it names none."""
    required = ((volume.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}
    names: set[str] = set()
    for term in required.get("nodeSelectorTerms") or ():
        for expr in term.get("matchExpressions") or ():
            if expr.get("key") == "kubernetes.io/hostname" and expr.get("operator") == "In":
                names.update(str(v) for v in expr.get("values") or ())
    return names
