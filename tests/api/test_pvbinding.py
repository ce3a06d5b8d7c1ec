"""The claim-to-volume matching rules (upstream's FindMatchingVolume), without a cluster."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pyk8s.api import pvbinding as pvb


def volume(name: str, size: str, *, cls: str = "fast", modes: tuple[str, ...] = ("ReadWriteOnce",),
           labels: dict[str, str] | None = None, claim_ref: dict[str, Any] | None = None,
           phase: str = "Available") -> dict[str, Any]:  # fmt: skip
    spec: dict[str, Any] = {"capacity": {"storage": size}, "accessModes": list(modes),
                            "storageClassName": cls}  # fmt: skip
    if claim_ref is not None:
        spec["claimRef"] = claim_ref
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec,
            "status": {"phase": phase}}  # fmt: skip


def claim(size: str, *, cls: str = "fast", modes: tuple[str, ...] = ("ReadWriteOnce",),
          selector: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    spec: dict[str, Any] = {"resources": {"requests": {"storage": size}},
                            "accessModes": list(modes), "storageClassName": cls}  # fmt: skip
    if selector is not None:
        spec["selector"] = selector
    return {"metadata": {"name": "c", "namespace": "ns", "uid": "u1"}, "spec": spec}


def name_of(v: dict[str, Any] | None) -> str | None:
    return None if v is None else v["metadata"]["name"]


def test_the_smallest_volume_that_fits_wins() -> None:
    vols = [volume("big", "10Gi"), volume("small", "1Gi"), volume("tiny", "500Mi")]
    assert name_of(pvb.find_matching_volume(claim("1Gi"), vols)) == "small"
    assert name_of(pvb.find_matching_volume(claim("20Gi"), vols)) is None


def test_class_modes_selector_and_other_claims_rule_volumes_out() -> None:
    vols = [
        volume("other-class", "1Gi", cls="slow"),
        volume("rwo-only", "1Gi"),
        volume("taken", "1Gi", modes=("ReadWriteMany",),
               claim_ref={"name": "x", "namespace": "ns", "uid": "u9"}),
        volume("rwx", "5Gi", modes=("ReadWriteOnce", "ReadWriteMany"), labels={"t": "a"}),
    ]  # fmt: skip
    assert name_of(pvb.find_matching_volume(claim("1Gi", modes=("ReadWriteMany",)), vols)) == "rwx"
    sel = claim("1Gi", selector={"matchLabels": {"t": "a"}})
    assert name_of(pvb.find_matching_volume(sel, vols)) == "rwx"
    # fewer access modes first, as upstream's access-mode index orders them
    assert name_of(pvb.find_matching_volume(claim("1Gi"), vols)) == "rwo-only"


def test_a_prebound_volume_wins_and_is_the_only_one_with_delayed_binding() -> None:
    ref = {"name": "c", "namespace": "ns"}
    vols = [volume("free", "1Gi"), volume("reserved", "8Gi", claim_ref=ref)]
    assert name_of(pvb.find_matching_volume(claim("1Gi"), vols)) == "reserved"
    assert name_of(pvb.find_matching_volume(claim("1Gi"), vols[:1], delay_binding=True)) is None
    assert name_of(pvb.find_matching_volume(claim("1Gi"), vols, delay_binding=True)) == "reserved"


def test_default_class_is_the_newest_annotated_one() -> None:
    def sc(name: str, created: str, default: bool) -> dict[str, Any]:
        ann = {pvb.ANN_DEFAULT_CLASS: "true"} if default else {}
        return {"metadata": {"name": name, "creationTimestamp": created, "annotations": ann}}

    classes = [sc("a", "2024-01-01T00:00:00Z", True), sc("b", "2025-01-01T00:00:00Z", True),
               sc("c", "2026-01-01T00:00:00Z", False)]  # fmt: skip
    assert name_of(pvb.default_class(classes)) == "b"
    assert pvb.default_class(classes[2:]) is None


def test_pod_claim_names_include_generic_ephemeral_volumes() -> None:
    pod = {
        "metadata": {"name": "web"},
        "spec": {"volumes": [{"name": "a", "persistentVolumeClaim": {"claimName": "data"}},
                             {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {}}},
                             {"name": "e", "emptyDir": {}}]},
    }  # fmt: skip
    assert list(pvb.pod_claim_names(pod)) == ["data", "web-scratch"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=12),
       st.integers(min_value=1, max_value=64))  # fmt: skip
def test_the_match_is_the_minimum_fitting_capacity(sizes: list[int], want: int) -> None:
    vols = [volume(f"v{i}", f"{s}Gi") for i, s in enumerate(sizes)]
    found = pvb.find_matching_volume(claim(f"{want}Gi"), vols)
    fitting = [s for s in sizes if s >= want]
    if not fitting:
        assert found is None
    else:
        assert found is not None and found["spec"]["capacity"]["storage"] == f"{min(fitting)}Gi"
