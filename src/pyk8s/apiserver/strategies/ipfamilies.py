"""A Service's IP families checked against the cluster's service CIDRs.

Upstream's service REST storage runs ``initIPFamilyFields`` before it allocates: it
completes ``ipFamilyPolicy``/``ipFamilies`` and refuses, with 422s at the field, what
the cluster cannot give (RequireDualStack on a single-stack cluster, a family or a
cluster IP of a family without a service CIDR, SingleStack with two IPs or families).
The create-time defaults themselves live in :mod:`pyk8s.api.defaults`; this module is
the part that needs the cluster's configuration, and the update-time completion
(upgrading a Service to dual stack by changing its policy, downgrading by SingleStack).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyk8s.api import errors
from pyk8s.api.dualstack import IPv4, IPv6, family_of
from pyk8s.api.errors import FieldError
from pyk8s.api.gofmt import GoStringSlice
from pyk8s.apiserver.strategies.base import JSON

__all__ = ["cluster_ips", "complete_for_update", "ip_family_errors", "reduction_errors"]

SINGLE = "SingleStack"
PREFER = "PreferDualStack"
REQUIRE = "RequireDualStack"


def _other(family: str) -> str:
    return IPv6 if family == IPv4 else IPv4


def cluster_ips(spec: JSON) -> list[str]:
    """``spec.clusterIPs``, or ``[spec.clusterIP]`` for an object written without it."""
    ips = spec.get("clusterIPs")
    if isinstance(ips, list) and ips:
        return [str(x) for x in ips]
    ip = spec.get("clusterIP")
    return [str(ip)] if isinstance(ip, str) and ip else []


def ip_family_errors(svc: JSON, configured: Sequence[str]) -> list[FieldError]:
    """The 422s of ``initIPFamilyFields`` for a (defaulted) Service on a cluster whose
    service families are ``configured`` (the primary first). Upstream runs it before
    field validation (in the storage's BeginCreate/BeginUpdate), so the strategy does
    too; mistyped fields never get here (400 at decoding, as upstream)."""
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName" or not configured:
        return []
    policy = spec.get("ipFamilyPolicy") or SINGLE
    ips = cluster_ips(spec)
    families = [str(f) for f in spec.get("ipFamilies") or []]
    errs: list[FieldError] = []
    if policy == SINGLE:
        if len(ips) == 2:
            errs.append(
                errors.invalid(
                    "spec.ipFamilyPolicy",
                    policy,
                    "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs "
                    "are specified",
                )
            )
        if len(families) == 2:
            errs.append(
                errors.invalid(
                    "spec.ipFamilyPolicy",
                    policy,
                    "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families "
                    "are specified",
                )
            )
    for n, ip in enumerate(ips):
        if ip == "None":
            break
        family = family_of(ip)
        if n >= len(families) and family is not None and family not in configured:
            errs.append(
                errors.invalid(
                    f"spec.clusterIPs[{n}]",
                    GoStringSlice(ips),
                    f"{family} is not configured on this cluster",
                )
            )
    if errs:
        return errs
    if spec.get("clusterIP") == "None" and not spec.get("selector"):
        return []  # headless and selectorless: any families, as upstream
    if policy == REQUIRE and len(configured) < 2:
        errs.append(
            errors.invalid(
                "spec.ipFamilyPolicy",
                policy,
                "this cluster is not configured for dual-stack services",
            )
        )
    for n, family in enumerate(families):
        if family in (IPv4, IPv6) and family not in configured:
            errs.append(
                errors.invalid(f"spec.ipFamilies[{n}]", family, "not configured on this cluster")
            )
    return errs


def reduction_errors(new: JSON, old: JSON) -> list[FieldError]:
    """An update that drops the secondary cluster IP or family needs ``SingleStack``
    (upstream's reducedClusterIPs/reducedIPFamilies checks)."""
    spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    policy = spec.get("ipFamilyPolicy") or SINGLE
    if spec.get("type") == "ExternalName" or policy == SINGLE:
        return []
    errs: list[FieldError] = []
    ips, old_ips = cluster_ips(spec), cluster_ips(old_spec)
    if ips and len(ips) < len(old_ips):
        errs.append(
            errors.invalid(
                "spec.ipFamilyPolicy",
                policy,
                "must be 'SingleStack' to release the secondary cluster IP",
            )
        )
    families, old_families = spec.get("ipFamilies") or [], old_spec.get("ipFamilies") or []
    if families and len(families) < len(old_families):
        errs.append(
            errors.invalid(
                "spec.ipFamilyPolicy",
                policy,
                "must be 'SingleStack' to release the secondary IP family",
            )
        )
    return errs


def complete_for_update(new: JSON, old: JSON, configured: Sequence[str]) -> None:
    """Upstream's update half of ``initIPFamilyFields``: a policy or families the client
    left out are the old ones; a SingleStack policy over unchanged dual-stack fields drops
    the secondary; a dual-stack policy on a dual-stack cluster gains the other family
    (whose cluster IP the allocation then adds)."""
    spec, old_spec = new.setdefault("spec", {}), old.get("spec") or {}
    if spec.get("type") == "ExternalName" or not configured:
        return
    if (
        spec.get("ipFamilyPolicy") == old_spec.get("ipFamilyPolicy") == PREFER
        and cluster_ips(spec) == cluster_ips(old_spec)
        and list(spec.get("ipFamilies") or []) == list(old_spec.get("ipFamilies") or [])
    ):
        return  # upstream never up- or downgrades an unchanged PreferDualStack Service
    if spec.get("ipFamilyPolicy") is None and old_spec.get("ipFamilyPolicy") is not None:
        spec["ipFamilyPolicy"] = old_spec["ipFamilyPolicy"]
    if not spec.get("ipFamilies") and old_spec.get("ipFamilies"):
        spec["ipFamilies"] = list(old_spec["ipFamilies"])
    policy = spec.get("ipFamilyPolicy") or SINGLE
    families = list(spec.get("ipFamilies") or [])
    ips = cluster_ips(spec)
    if policy == SINGLE:
        if ips == cluster_ips(old_spec) and len(ips) > 1:
            spec["clusterIPs"] = ips[:1]
        if families == list(old_spec.get("ipFamilies") or []) and len(families) > 1:
            spec["ipFamilies"] = families[:1]
        return
    headless = ips[:1] == ["None"]
    if len(families) == 1 and len(configured) == 2 and not headless:
        spec["ipFamilies"] = [families[0], _other(families[0])]
