"""CNI configuration for pod networking on this node.

containerd's CRI plugin reads the first conflist in its CNI conf dir to wire each pod
sandbox. We give every node a Linux bridge with host-local IPAM over the node's pod
CIDR, masquerading for egress, and portmap for hostPort. Loopback is set up by
containerd itself, so it is not listed here.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any

# Debian's plugins (1.1.1) speak 0.1.0-1.0.0; 0.4.0 is understood by every libcni that
# containerd 1.6 and later vendor, and carries everything we use (CHECK, portmap).
CNI_VERSION = "0.4.0"


def bridge_conflist(
    pod_cidr: str,
    bridge: str = "cni0",
    name: str = "pyk8s",
    gateway: str | None = None,
    ip_masq: bool = True,
) -> dict[str, Any]:
    """The conflist document for a bridge network over ``pod_cidr``: one CIDR, or a
    comma-separated pair of a dual-stack node (``spec.podCIDRs``), one host-local range
    and one default route per family, so every pod gets an address of each. ``ip_masq=False``
    when the node masquerades only traffic leaving the cluster CIDR itself (multi-node:
    pod-to-pod traffic between nodes keeps the pods' addresses)."""
    subnets = [ipaddress.ip_network(c.strip(), strict=False) for c in pod_cidr.split(",") if c]
    ranges: list[list[dict[str, str]]] = []
    for subnet in subnets:
        ipam_range: dict[str, str] = {"subnet": str(subnet)}
        if gateway is not None and ipaddress.ip_address(gateway).version == subnet.version:
            if ipaddress.ip_address(gateway) not in subnet:
                raise ValueError(f"gateway {gateway} is not in {subnet}")
            ipam_range["gateway"] = gateway
        ranges.append([ipam_range])
    routes = [{"dst": "0.0.0.0/0" if s.version == 4 else "::/0"} for s in subnets]
    return {
        "cniVersion": CNI_VERSION,
        "name": name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": True,
                "ipMasq": ip_masq,
                "hairpinMode": True,
                "ipam": {"type": "host-local", "ranges": ranges, "routes": routes},
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def write_bridge_conflist(
    conf_dir: Path,
    pod_cidr: str,
    bridge: str = "cni0",
    name: str = "pyk8s",
    gateway: str | None = None,
    ip_masq: bool = True,
) -> Path:
    """Atomically write ``<conf_dir>/10-<name>.conflist`` and return its path."""
    conf_dir = Path(conf_dir)
    conf_dir.mkdir(parents=True, exist_ok=True)
    path = conf_dir / f"10-{name}.conflist"
    tmp = conf_dir / f".{path.name}.tmp"
    doc = bridge_conflist(pod_cidr, bridge=bridge, name=name, gateway=gateway, ip_masq=ip_masq)
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)
    return path
