"""Node groups as the user declares them (``--config GROUPS.yaml``) and the node a
group's members look like, which the scale-up simulation places pods on.

The file shape::

    nodeGroups:
    - name: big
      minSize: 0
      maxSize: 5
      template: {capacity: {cpu: "4", memory: 8Gi, pods: "110"}, labels: {pool: big}, taints: []}

Every node of a group carries the label :data:`GROUP_LABEL` (its group's name), which is
how the autoscaler tells group members from other nodes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pyk8s.api.quantity import parse_quantity

__all__ = ["GROUP_LABEL", "NodeGroup", "load_node_groups", "parse_duration"]

GROUP_LABEL = "pyk8s.io/node-group"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

Obj = dict[str, Any]


@dataclass
class NodeGroup:
    """One group: its bounds and the shape of its nodes."""

    name: str
    min_size: int
    max_size: int
    capacity: dict[str, str]
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Obj] = field(default_factory=list)

    def node_labels(self, node_name: str) -> dict[str, str]:
        """The labels a member node registers with (the kubelet's well-known ones too)."""
        return {
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/os": "linux",
            "kubernetes.io/hostname": node_name,
            **self.labels,
            GROUP_LABEL: self.name,
        }

    def template_node(self, node_name: str) -> Obj:
        """A Node object as a new member would register it (for simulation only)."""
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": node_name, "labels": self.node_labels(node_name)},
            "spec": {"taints": [dict(t) for t in self.taints]} if self.taints else {},
            "status": {
                "capacity": dict(self.capacity),
                "allocatable": dict(self.capacity),
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }


def parse_duration(text: str) -> float:
    """A Go duration (``10m``, ``1m30s``, ``500ms``, ``0``) in seconds."""
    text = text.strip()
    if text in ("0", ""):
        return 0.0
    pos, total = 0, 0.0
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * scale[m.group(2)]
        pos = m.end()
    if pos != len(text):
        raise ValueError(f"invalid duration {text!r}")
    return total


def _group(doc: Any, index: int) -> NodeGroup:
    where = f"nodeGroups[{index}]"
    if not isinstance(doc, dict):
        raise ValueError(f"{where}: not a mapping")
    name = doc.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{where}.name: {name!r} is not a DNS label")
    min_size, max_size = doc.get("minSize", 0), doc.get("maxSize")
    if not isinstance(min_size, int) or min_size < 0:
        raise ValueError(f"{where}.minSize: must be a non-negative integer")
    if not isinstance(max_size, int) or max_size < min_size:
        raise ValueError(f"{where}.maxSize: must be an integer not less than minSize")
    template = doc.get("template") or {}
    if not isinstance(template, dict):
        raise ValueError(f"{where}.template: not a mapping")
    capacity = {str(k): str(v) for k, v in (template.get("capacity") or {}).items()}
    for res, qty in capacity.items():
        try:
            parse_quantity(qty)
        except ValueError:
            raise ValueError(f"{where}.template.capacity.{res}: invalid quantity {qty!r}") from None
    capacity.setdefault("pods", "110")
    if "cpu" not in capacity or "memory" not in capacity:
        raise ValueError(f"{where}.template.capacity: cpu and memory are required")
    taints = list(template.get("taints") or [])
    for i, t in enumerate(taints):
        if not isinstance(t, dict) or not t.get("key") or t.get("effect") not in _EFFECTS:
            raise ValueError(f"{where}.template.taints[{i}]: want key, value and effect")
    labels = {str(k): str(v) for k, v in (template.get("labels") or {}).items()}
    return NodeGroup(name, min_size, max_size, capacity, labels, taints)


def load_node_groups(path: Path) -> list[NodeGroup]:
    """The groups of a ``nodeGroups:`` file; ValueError naming the bad field."""
    doc = yaml.safe_load(path.read_text()) or {}
    if not isinstance(doc, dict) or not isinstance(doc.get("nodeGroups"), list):
        raise ValueError(f"{path}: want a mapping with a nodeGroups list")
    groups = [_group(g, i) for i, g in enumerate(doc["nodeGroups"])]
    names = [g.name for g in groups]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"{path}: node group {name!r} is declared twice")
    if not groups:
        raise ValueError(f"{path}: no node groups")
    return groups
