"""Plugin name → factory, the default profile, and profiles from a
KubeSchedulerConfiguration file (``profiles[].schedulerName`` and ``plugins.<point>``
``enabled``/``disabled`` lists, ``multiPoint`` included, ``"*"`` disabling all defaults).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyk8s.client import Client, EventRecorder
from pyk8s.scheduler.framework.interface import (
    BindPlugin,
    FilterPlugin,
    NormalizeScorePlugin,
    PermitPlugin,
    Plugin,
    PostFilterPlugin,
    PreBindPlugin,
    PreFilterPlugin,
    PreScorePlugin,
    QueueSortPlugin,
    ReservePlugin,
    ScorePlugin,
    VectorScorePlugin,
)
from pyk8s.scheduler.framework.runtime import Framework

#: (group, version, plural, namespace) -> the objects an informer holds
Lister = Callable[[str, str, str, str], list[dict[str, Any]]]


def _no_objects(group: str, version: str, plural: str, namespace: str) -> list[dict[str, Any]]:
    return []


@dataclass
class Handle:
    """What a plugin factory may use (upstream's ``framework.Handle``): the client, the
    framework itself, listers over the scheduler's informers and its event recorder."""

    client: Client | None
    framework: Callable[[], Framework]
    lister: Lister = _no_objects
    recorder: EventRecorder | None = None


Factory = Callable[[Mapping[str, Any], Handle], Plugin]


def _default_registry() -> dict[str, Factory]:
    from pyk8s.scheduler.plugins.defaultbinder import DefaultBinder
    from pyk8s.scheduler.plugins.defaultpreemption import DefaultPreemption
    from pyk8s.scheduler.plugins.imagelocality import ImageLocality
    from pyk8s.scheduler.plugins.interpodaffinity import InterPodAffinity
    from pyk8s.scheduler.plugins.nodeaffinity import NodeAffinity
    from pyk8s.scheduler.plugins.nodename import NodeName
    from pyk8s.scheduler.plugins.nodeports import NodePorts
    from pyk8s.scheduler.plugins.noderesourcesbalancedallocation import (
        NodeResourcesBalancedAllocation,
    )
    from pyk8s.scheduler.plugins.noderesourcesfit import NodeResourcesFit
    from pyk8s.scheduler.plugins.nodeunschedulable import NodeUnschedulable
    from pyk8s.scheduler.plugins.nodevolumelimits import NodeVolumeLimits
    from pyk8s.scheduler.plugins.podtopologyspread import PodTopologySpread
    from pyk8s.scheduler.plugins.queuesort import PrioritySort
    from pyk8s.scheduler.plugins.tainttoleration import TaintToleration
    from pyk8s.scheduler.plugins.volumebinding import DEFAULT_BIND_TIMEOUT, VolumeBinding
    from pyk8s.scheduler.plugins.volumerestrictions import VolumeRestrictions
    from pyk8s.scheduler.plugins.volumezone import VolumeZone

    def binder(_: Mapping[str, Any], h: Handle) -> Plugin:
        if h.client is None:
            raise ValueError("DefaultBinder needs a client")
        return DefaultBinder(h.client)

    return {
        "PrioritySort": lambda a, h: PrioritySort(),
        "NodeUnschedulable": lambda a, h: NodeUnschedulable(),
        "NodeName": lambda a, h: NodeName(),
        "TaintToleration": lambda a, h: TaintToleration(),
        "NodeAffinity": lambda a, h: NodeAffinity(),
        "NodePorts": lambda a, h: NodePorts(),
        "NodeResourcesFit": lambda a, h: NodeResourcesFit(),
        "NodeResourcesBalancedAllocation": lambda a, h: NodeResourcesBalancedAllocation(),
        "VolumeRestrictions": lambda a, h: VolumeRestrictions(h.lister),
        "NodeVolumeLimits": lambda a, h: NodeVolumeLimits(h.lister),
        "VolumeBinding": lambda a, h: VolumeBinding(
            h.lister,
            h.client,
            float(a.get("bindTimeoutSeconds") or DEFAULT_BIND_TIMEOUT),
        ),
        "VolumeZone": lambda a, h: VolumeZone(h.lister),
        "PodTopologySpread": lambda a, h: PodTopologySpread(h.lister),
        "InterPodAffinity": lambda a, h: InterPodAffinity(h.lister),
        "ImageLocality": lambda a, h: ImageLocality(),
        "DefaultPreemption": lambda a, h: DefaultPreemption(
            lambda s, p, n: h.framework().run_filters(s, p, n),
            client=h.client,
            recorder=h.recorder,
            lister=h.lister,
        ),
        "DefaultBinder": binder,
    }


#: every in-tree plugin by name
REGISTRY: dict[str, Factory] = _default_registry()

#: upstream's default profile (multiPoint, in order) with its score weights
DEFAULT_PLUGINS: list[tuple[str, int]] = [
    ("PrioritySort", 0),
    ("NodeUnschedulable", 0),
    ("NodeName", 0),
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodePorts", 0),
    ("NodeResourcesFit", 1),
    ("VolumeRestrictions", 0),
    ("NodeVolumeLimits", 0),
    ("VolumeBinding", 0),
    ("VolumeZone", 0),
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
    ("DefaultPreemption", 0),
    ("NodeResourcesBalancedAllocation", 1),
    ("ImageLocality", 1),
    ("DefaultBinder", 0),
]

POINTS = (
    "queueSort",
    "preFilter",
    "filter",
    "postFilter",
    "preScore",
    "score",
    "reserve",
    "permit",
    "preBind",
    "bind",
)

_PROTOCOL: dict[str, tuple[type, ...]] = {
    "queueSort": (QueueSortPlugin,),
    "preFilter": (PreFilterPlugin,),
    "filter": (FilterPlugin,),
    "postFilter": (PostFilterPlugin,),
    "preScore": (PreScorePlugin,),
    "score": (ScorePlugin, VectorScorePlugin, NormalizeScorePlugin),
    "reserve": (ReservePlugin,),
    "permit": (PermitPlugin,),
    "preBind": (PreBindPlugin,),
    "bind": (BindPlugin,),
}


def _implements(plugin: Plugin, point: str) -> bool:
    if point == "score":
        return isinstance(plugin, ScorePlugin | VectorScorePlugin)
    return isinstance(plugin, _PROTOCOL[point])


def build_framework(
    scheduler_name: str,
    handle_client: Client | None,
    plugins_cfg: Mapping[str, Any] | None = None,
    registry: Mapping[str, Factory] | None = None,
    *,
    lister: Lister = _no_objects,
    recorder: EventRecorder | None = None,
    plugin_config: Sequence[Mapping[str, Any]] = (),
) -> Framework:
    """The default profile, changed by a profile's ``plugins`` section if given;
    ``plugin_config`` is the profile's ``pluginConfig`` (``name`` + ``args`` per plugin)."""
    registry = registry or REGISTRY
    cfg = plugins_cfg or {}
    holder: list[Framework] = []
    handle = Handle(handle_client, lambda: holder[0], lister, recorder)
    instances: dict[str, Plugin] = {}

    def instance(name: str) -> Plugin:
        if name not in instances:
            if name not in registry:
                raise ValueError(f"plugin {name!r} is not registered")
            args = next((c.get("args") or {} for c in plugin_config if c.get("name") == name), {})
            instances[name] = registry[name](args, handle)
        return instances[name]

    def names(section: Any, key: str) -> list[tuple[str, int]]:
        items = (section or {}).get(key) or []
        return [(str(i["name"]), int(i.get("weight") or 0)) for i in items]

    multi = cfg.get("multiPoint")
    multi_disabled = {n for n, _ in names(multi, "disabled")}
    base = [
        (n, w) for n, w in DEFAULT_PLUGINS if "*" not in multi_disabled and n not in multi_disabled
    ]
    base += [(n, w) for n, w in names(multi, "enabled") if n not in dict(base)]
    per_point: dict[str, list[tuple[str, int]]] = {}
    for point in POINTS:
        section = cfg.get(point)
        disabled = {n for n, _ in names(section, "disabled")}
        chosen = [
            (n, w)
            for n, w in base
            if "*" not in disabled and n not in disabled and _implements(instance(n), point)
        ]
        for n, w in names(section, "enabled"):
            chosen = [(m, v) for m, v in chosen if m != n] + [(n, w)]
        per_point[point] = chosen

    sorts = per_point["queueSort"]
    if len(sorts) != 1:
        raise ValueError(f"profile {scheduler_name!r}: exactly one queueSort plugin is needed")
    fw = Framework(scheduler_name, queue_sort=instance(sorts[0][0]))  # type: ignore[arg-type]
    fw.pre_filter = [instance(n) for n, _ in per_point["preFilter"]]  # type: ignore[misc]
    fw.filter = [instance(n) for n, _ in per_point["filter"]]  # type: ignore[misc]
    fw.post_filter = [instance(n) for n, _ in per_point["postFilter"]]  # type: ignore[misc]
    fw.pre_score = [instance(n) for n, _ in per_point["preScore"]]  # type: ignore[misc]
    fw.score = [(instance(n), w or 1) for n, w in per_point["score"]]
    fw.reserve = [instance(n) for n, _ in per_point["reserve"]]  # type: ignore[misc]
    fw.permit = [instance(n) for n, _ in per_point["permit"]]  # type: ignore[misc]
    fw.pre_bind = [instance(n) for n, _ in per_point["preBind"]]  # type: ignore[misc]
    fw.bind = [instance(n) for n, _ in per_point["bind"]]  # type: ignore[misc]
    holder.append(fw)
    return fw


def frameworks_from_config(
    config: Mapping[str, Any] | None,
    client: Client | None,
    *,
    lister: Lister = _no_objects,
    recorder: EventRecorder | None = None,
) -> dict[str, Framework]:
    """One framework per profile of a KubeSchedulerConfiguration (default: one profile,
    ``default-scheduler``)."""
    profiles = (config or {}).get("profiles") or [{"schedulerName": "default-scheduler"}]
    out: dict[str, Framework] = {}
    for prof in profiles:
        name = str(prof.get("schedulerName") or "default-scheduler")
        out[name] = build_framework(
            name,
            client,
            prof.get("plugins"),
            lister=lister,
            recorder=recorder,
            plugin_config=prof.get("pluginConfig") or (),
        )
    return out
