"""Whether tolerations tolerate taints: one rule for every component that asks.

The scheduler (TaintToleration, NodeUnschedulable), the DaemonSet controller (which nodes
should run a daemon pod) and the taint-eviction controller (which pods a NoExecute taint
removes) must agree on it, and they may not import each other, so the pure rule lives here
in the API package, as upstream keeps it in ``k8s.io/api`` and ``component-helpers``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["tolerated", "tolerates"]


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """Upstream's ``Toleration.ToleratesTaint``: an empty effect or key matches any, the
    ``Exists`` operator matches any value, ``Equal`` (the default) needs the same value."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        return bool((toleration.get("value") or "") == (taint.get("value") or ""))
    return False


def tolerated(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    """Upstream's ``TolerationsTolerateTaint``: some toleration tolerates the taint."""
    return any(tolerates(t, taint) for t in tolerations)
