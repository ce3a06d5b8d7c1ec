"""The downward API's values: what a ``fieldRef`` or ``resourceFieldRef`` resolves to.

Environment variables (:mod:`pyk8s.kubelet.podconfig`) and downwardAPI/projected volume
files (:mod:`pyk8s.kubelet.volumes`) expose the same pod facts; this module computes them
once. Unsupported paths raise ``ValueError``; each caller turns that into its own error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pyk8s.api.quantity import milli_value, parse_quantity, value


def _format_map(m: Mapping[str, str]) -> str:
    """Labels/annotations as a volume file shows them: sorted ``key="value"`` lines."""
    return "\n".join(f"{k}={json.dumps(v)}" for k, v in sorted(m.items()))


def field_value(
    pod: Mapping[str, Any],
    path: str,
    *,
    node_name: str = "",
    host_ip: str = "",
    pod_ips: Sequence[str] = (),
) -> str:
    """The value of ``fieldRef.fieldPath`` for ``pod``."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    for key in ("labels", "annotations"):
        prefix = f"metadata.{key}['"
        if path.startswith(prefix) and path.endswith("']"):
            return str((meta.get(key) or {}).get(path[len(prefix) : -2], ""))
        if path == f"metadata.{key}":
            return _format_map(meta.get(key) or {})
    simple: dict[str, str] = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", "default"),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName") or node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
        "status.podIP": pod_ips[0] if pod_ips else "",
        "status.podIPs": ",".join(pod_ips),
    }
    if path not in simple:
        raise ValueError(f"unsupported fieldPath {path!r}")
    return simple[path]


def resource_value(
    container: Mapping[str, Any], ref: Mapping[str, Any], allocatable: Mapping[str, str]
) -> str:
    """``resourceFieldRef`` rounded up by the divisor; a missing limit is the allocatable."""
    kind, _, name = str(ref["resource"]).partition(".")
    amount = ((container.get("resources") or {}).get(kind) or {}).get(name)
    if amount is None and kind == "limits":
        amount = allocatable.get(name)
    if amount is None:
        return "0"
    divisor = ref.get("divisor") or "1"
    if parse_quantity(divisor) == 0:
        divisor = "1"
    if name == "cpu":
        return str(-(-milli_value(amount) // milli_value(divisor)))
    return str(-(-value(amount) // value(divisor)))
