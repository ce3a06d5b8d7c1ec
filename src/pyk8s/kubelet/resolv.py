"""A pod's resolv.conf per ``dnsPolicy``, handed to the runtime as the sandbox DNSConfig.

ClusterFirst points at the cluster DNS service with upstream's search path
(``<ns>.svc.<domain> svc.<domain> <domain>``) and ``ndots:5``; a hostNetwork pod uses the
host's resolver unless its policy is ClusterFirstWithHostNet; Default is the host's
resolver (an empty config: the runtime copies the host's file); None is exactly
``dnsConfig``; ``dnsConfig`` is merged into the others. Without a cluster DNS address the
kubelet falls back to Default, as upstream does (and says so in an event).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pyk8s.kubelet.cri import api_pb2 as pb

__all__ = ["dns_config", "host_resolv"]

MAX_SEARCHES = 32


def host_resolv(path: Path = Path("/etc/resolv.conf")) -> tuple[list[str], list[str], list[str]]:
    """(nameservers, searches, options) of the host's resolv.conf."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    try:
        text = path.read_text()
    except OSError:
        return servers, searches, options
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            servers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            searches = fields[1:]
        elif fields[0] == "options":
            options.extend(fields[1:])
    return servers, searches, options


def _merge_options(base: list[str], extra: Sequence[Mapping[str, Any]]) -> list[str]:
    opts = {o.split(":", 1)[0]: o for o in base}
    for o in extra:
        name = o.get("name", "")
        opts[name] = f"{name}:{o['value']}" if o.get("value") is not None else name
    return list(opts.values())


def dns_config(
    pod: Mapping[str, Any],
    cluster_dns: Sequence[str],
    cluster_domain: str = "cluster.local",
    resolv_conf: Path = Path("/etc/resolv.conf"),
) -> tuple[pb.DNSConfig | None, bool]:
    """The sandbox DNSConfig (None: the host's file) and whether ClusterFirst was wanted
    but no cluster DNS is configured (upstream's MissingClusterDNS)."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    extra = spec.get("dnsConfig") or {}
    ns = pod["metadata"].get("namespace", "default")
    if policy == "ClusterFirst" and spec.get("hostNetwork"):
        policy = "Default"
    missing = False
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and not cluster_dns:
        policy, missing = "Default", True
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    if policy == "None":
        pass
    elif policy == "Default":
        if not extra:
            return None, missing
        servers, searches, options = host_resolv(resolv_conf)
    else:
        _, host_searches, _ = host_resolv(resolv_conf)
        servers = list(cluster_dns)
        searches = [f"{ns}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain]
        searches += [s for s in host_searches if s not in searches]
        options = ["ndots:5"]
    servers += [s for s in extra.get("nameservers") or [] if s not in servers]
    searches += [s for s in extra.get("searches") or [] if s not in searches]
    options = _merge_options(options, extra.get("options") or [])
    return (
        pb.DNSConfig(servers=servers, searches=searches[:MAX_SEARCHES], options=options),
        missing,
    )
