"""IPv4/IPv6 dual-stack helpers every component shares.

A dual-stack cluster is configured, as in k3s and upstream, with comma-separated pairs:
``--cluster-cidr 10.42.0.0/16,fd00:42::/56`` and ``--service-cidr
10.43.0.0/16,fd00:43::/112``. The first CIDR's family is the cluster's primary family
(a Service's first ``ipFamilies`` entry by default, a pod's ``status.podIP``). These
pure helpers parse such a flag and sort addresses by family, so the API server, the node
IPAM controller, the kubelet, the proxy and DNS read the pair the same way.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["family_cidrs", "family_of", "parse_cidrs"]

IPv4 = "IPv4"
IPv6 = "IPv6"


def parse_cidrs(value: str | Iterable[str], flag: str = "cidr") -> list[str]:
    """The CIDRs of a comma-separated flag: one, or one of each family (ValueError
    otherwise, naming ``flag``). Each is normalised (``strict``: no host bits)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    cidrs = [c.strip() for c in items if c.strip()]
    if not cidrs:
        raise ValueError(f"--{flag}: at least one CIDR is required")
    if len(cidrs) > 2:
        raise ValueError(f"--{flag}: at most two CIDRs (one per IP family) may be given")
    nets = []
    for cidr in cidrs:
        try:
            nets.append(ipaddress.ip_network(cidr, strict=True))
        except ValueError as err:
            raise ValueError(f"--{flag}: {err}") from None
    if len(nets) == 2 and nets[0].version == nets[1].version:
        raise ValueError(f"--{flag}: the two CIDRs must be of different IP families (dual stack)")
    return [str(n) for n in nets]


def family_of(address: str) -> str | None:
    """``IPv4`` or ``IPv6`` for an address or CIDR, None if it is neither."""
    try:
        version = ipaddress.ip_network(address, strict=False).version
    except ValueError:
        return None
    return IPv4 if version == 4 else IPv6


def family_cidrs(cidrs: Iterable[str]) -> dict[str, str]:
    """The CIDRs by family (``{"IPv4": …, "IPv6": …}``), in the given order."""
    out: dict[str, str] = {}
    for cidr in cidrs:
        family = family_of(cidr)
        if family is not None:
            out.setdefault(family, cidr)
    return out
