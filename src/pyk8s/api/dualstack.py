"""IPv4/IPv6 dual-stack helpers every component shares.

A dual-stack cluster is configured, as in k3s and upstream, with comma-separated pairs:
``--cluster-cidr 10.42.0.0/16,fd00:42::/56`` and ``--service-cidr
10.43.0.0/16,fd00:43::/112``. The first CIDR's family is the cluster's primary family
(a Service's first ``ipFamilies`` entry by default, a pod's ``status.podIP``). These
pure helpers parse such a flag and sort addresses by family, so the API server, the node
IPAM controller, the kubelet, the proxy and DNS read the pair the same way.

:func:`wildcard_listener` opens a server's listening socket for a wildcard bind address
(``0.0.0.0`` or ``::``) on both families at once, as Go's ``net.Listen("tcp", …)`` does
for upstream's components: the kubelet's ``--address 0.0.0.0`` and kube-proxy's health
ports answer on a node's IPv6 addresses too, on one port even when port 0 picks it.
:func:`wildcard_datagram_socket` is its UDP counterpart, for DNS.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable

__all__ = [
    "family_cidrs",
    "family_of",
    "parse_cidrs",
    "wildcard_datagram_socket",
    "wildcard_listener",
]

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


#: the bind addresses that mean "every address" (Go listens on both families for each)
WILDCARDS = frozenset({"0.0.0.0", "::", ""})


def wildcard_listener(
    host: str | None, port: int, *, reuse_port: bool = False
) -> socket.socket | None:
    """A listening, non-blocking socket on ``[::]:port`` that also accepts IPv4 (an
    AF_INET6 socket with ``IPV6_V6ONLY`` off, ``SO_REUSEADDR`` on, ``SO_REUSEPORT``
    when asked), for a wildcard ``host``; None for a specific address, or when this
    host has no IPv6 (the caller then binds ``host`` as given)."""
    if (host or "") not in WILDCARDS or not socket.has_dualstack_ipv6():
        return None
    try:
        sock = socket.create_server(
            ("::", port), family=socket.AF_INET6, dualstack_ipv6=True, reuse_port=reuse_port
        )
    except OSError as err:
        if err.errno not in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            raise
        return None  # IPv6 switched off on this host
    sock.setblocking(False)
    return sock


def wildcard_datagram_socket(host: str | None, port: int) -> socket.socket | None:
    """A bound, non-blocking UDP socket on ``[::]:port`` that also receives IPv4 (its
    senders show as ``::ffff:a.b.c.d``), for a wildcard ``host``; None as for
    :func:`wildcard_listener`."""
    if (host or "") not in WILDCARDS or not socket.has_dualstack_ipv6():
        return None
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", port))
    except OSError as err:
        sock.close()
        if err.errno not in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            raise
        return None
    sock.setblocking(False)
    return sock
