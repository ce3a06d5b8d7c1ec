"""A pod's QoS class (Guaranteed, Burstable, BestEffort), as upstream computes it.

The API server sets ``status.qosClass`` at create; quota scopes (BestEffort /
NotBestEffort) and later the kubelet's eviction order need the same answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyk8s.api.quantity import parse_quantity


def pod_qos_class(pod: Mapping[str, Any]) -> str:
    """Upstream's QoS class from the cpu/memory requests and limits of every container."""
    spec = pod.get("spec") or {}
    containers = [*(spec.get("containers") or ()), *(spec.get("initContainers") or ())]
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req = res.get("requests") or {}
        lim = res.get("limits") or {}
        for k, v in req.items():
            if k in ("cpu", "memory") and parse_quantity(v) != 0:
                requests[k] = v
        for k, v in lim.items():
            if k in ("cpu", "memory") and parse_quantity(v) != 0:
                limits[k] = v
        if not all(k in lim for k in ("cpu", "memory")):
            guaranteed = False
        for k in ("cpu", "memory"):
            if k in req and k in lim and parse_quantity(req[k]) != parse_quantity(lim[k]):
                guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed:
        return "Guaranteed"
    return "Burstable"
