"""The data plugins see: a pod's resource requests and one node's state (``NodeInfo``).

Upstream's ``framework.NodeInfo`` carries the node, its pods, the resources they request
and the host ports they use; ours does too. The numeric columns also live in the cache's
numpy arrays (one row per node) for the vectorised plugins; ``NodeInfo`` is the per-node
view for the plugins that look at one node at a time.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyk8s.api.quantity import QuantityError, milli_value, value

Obj = dict[str, Any]

CPU = "cpu"
MEMORY = "memory"
EPHEMERAL_STORAGE = "ephemeral-storage"
PODS = "pods"

#: what a container that requests nothing counts as when *scoring* (upstream's
#: DefaultMilliCPURequest and DefaultMemoryRequest); filters use the real requests
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024


def _parse(name: str, q: Any) -> int:
    try:
        return milli_value(q) if name == CPU else value(q)
    except (QuantityError, ValueError, TypeError):
        return 0


_parsed = functools.lru_cache(maxsize=4096)(_parse)


def _amount(name: str, q: Any) -> int:
    """``q`` in millicores (cpu) or units. Pods repeat a few quantity strings ("100m",
    "500Mi"), and parsing one cost ~12 µs, several times per pod per cycle: each
    (cpu or not, quantity) is parsed once."""
    if isinstance(q, str | int | float):
        return _parsed(CPU if name == CPU else "", q)
    return _parse(name, q)


def is_scalar_resource(name: str) -> bool:
    """Extended resources (``vendor/name``), hugepages and attachable volumes count like
    cpu and memory; anything else (``pods``) does not come from container requests."""
    return name not in (CPU, MEMORY, EPHEMERAL_STORAGE, PODS)


def resource_list(rl: Mapping[str, Any] | None) -> dict[str, int]:
    """A ResourceList as integers: cpu in millicores, everything else in units."""
    return {k: _amount(k, v) for k, v in (rl or {}).items()}


def _add(into: dict[str, int], rl: Mapping[str, int]) -> None:
    for k, v in rl.items():
        into[k] = into.get(k, 0) + v


def _max(into: dict[str, int], rl: Mapping[str, int]) -> None:
    for k, v in rl.items():
        if v > into.get(k, 0):
            into[k] = v


def pod_requests(pod: Mapping[str, Any]) -> dict[str, int]:
    """What a pod asks a node for, as upstream's ``resourcehelper.PodRequests``: the sum of
    its containers (restartable init containers, i.e. sidecars, included), or the largest
    init container plus the sidecars started before it if that is more; plus overhead."""
    spec = pod.get("spec") or {}
    reqs: dict[str, int] = {}
    for c in spec.get("containers") or []:
        _add(reqs, resource_list((c.get("resources") or {}).get("requests")))
    init_max: dict[str, int] = {}
    sidecars: dict[str, int] = {}
    for c in spec.get("initContainers") or []:
        r = resource_list((c.get("resources") or {}).get("requests"))
        if c.get("restartPolicy") == "Always":
            _add(sidecars, r)
            _add(reqs, r)
            _max(init_max, sidecars)
        else:
            total = dict(sidecars)
            _add(total, r)
            _max(init_max, total)
    _max(reqs, init_max)
    _add(reqs, resource_list(spec.get("overhead")))
    return {k: v for k, v in reqs.items() if v}


def non_zero_requests(pod: Mapping[str, Any]) -> tuple[int, int]:
    """(milli-cpu, memory) for scoring: a container without a cpu or memory request counts
    as 100m / 200Mi (upstream's ``GetNonzeroRequests``), so empty pods still spread."""
    spec = pod.get("spec") or {}

    def nz(c: Mapping[str, Any]) -> tuple[int, int]:
        r = resource_list((c.get("resources") or {}).get("requests"))
        cpu = r.get(CPU, DEFAULT_MILLI_CPU_REQUEST) if CPU in r else DEFAULT_MILLI_CPU_REQUEST
        mem = r.get(MEMORY, DEFAULT_MEMORY_REQUEST) if MEMORY in r else DEFAULT_MEMORY_REQUEST
        return cpu, mem

    cpu = mem = 0
    for c in spec.get("containers") or []:
        a, b = nz(c)
        cpu, mem = cpu + a, mem + b
    for c in spec.get("initContainers") or []:
        a, b = nz(c)
        if c.get("restartPolicy") == "Always":
            cpu, mem = cpu + a, mem + b
        else:
            cpu, mem = max(cpu, a), max(mem, b)
    over = resource_list(spec.get("overhead"))
    return cpu + over.get(CPU, 0), mem + over.get(MEMORY, 0)


def host_ports(pod: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """(hostIP, protocol, hostPort) of every container port with a hostPort."""
    out = []
    spec = pod.get("spec") or {}
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for p in c.get("ports") or []:
            hp = int(p.get("hostPort") or 0)
            if hp > 0:
                out.append((str(p.get("hostIP") or "0.0.0.0"), str(p.get("protocol") or "TCP"), hp))
    return out


def pod_key(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def pod_priority(pod: Mapping[str, Any]) -> int:
    p = (pod.get("spec") or {}).get("priority")
    return int(p) if p is not None else 0


@dataclass
class NodeInfo:
    """One node and what is placed on it (assumed pods included)."""

    node: Obj
    slot: int
    pods: dict[str, Obj] = field(default_factory=dict)
    used_ports: dict[tuple[str, str, int], int] = field(default_factory=dict)
    requested: dict[str, int] = field(default_factory=dict)
    allocatable: dict[str, int] = field(default_factory=dict)
    images: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return str(self.node["metadata"]["name"])

    @property
    def labels(self) -> dict[str, str]:
        return dict((self.node.get("metadata") or {}).get("labels") or {})

    @property
    def taints(self) -> list[Obj]:
        return list((self.node.get("spec") or {}).get("taints") or [])

    @property
    def allowed_pods(self) -> int:
        return self.allocatable.get(PODS, 0)
