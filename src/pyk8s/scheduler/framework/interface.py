"""Extension points, ``Status`` and ``CycleState``: the contract between the scheduler
and its plugins, as upstream's ``framework/interface.go`` draws it.

A plugin is any object with a ``name`` that implements one or more of the Protocols
below. Every hook returns ``Status | None``; ``None`` means Success (cheap on the hot
path). Plugins that can judge the whole cluster at once also implement the vectorised
variants (:class:`VectorFilterPlugin`, :class:`VectorScorePlugin`), which take numpy
arrays with one row per node; the per-node hook stays the reference semantics and is
what gives a failing node its reason.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from pyk8s.scheduler.framework.types import NodeInfo, Obj

if TYPE_CHECKING:
    from pyk8s.scheduler.cache import Cache

MAX_NODE_SCORE = 100
MIN_NODE_SCORE = 0

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


class Code(enum.IntEnum):
    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3
    WAIT = 4
    SKIP = 5


@dataclass(frozen=True)
class Status:
    """The result of a plugin: a code, the reasons shown to users, and who said so."""

    code: Code
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @classmethod
    def unschedulable(cls, *reasons: str, plugin: str = "") -> Status:
        return cls(Code.UNSCHEDULABLE, reasons, plugin)

    @classmethod
    def unresolvable(cls, *reasons: str, plugin: str = "") -> Status:
        return cls(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, reasons, plugin)

    @classmethod
    def error(cls, message: str, plugin: str = "") -> Status:
        return cls(Code.ERROR, (message,), plugin)

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)

    def is_success(self) -> bool:
        return self.code == Code.SUCCESS

    def is_rejected(self) -> bool:
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE)

    def with_plugin(self, name: str) -> Status:
        return self if self.plugin else Status(self.code, self.reasons, name)


def is_success(s: Status | None) -> bool:
    return s is None or s.code in (Code.SUCCESS, Code.SKIP)


class CycleState(dict[str, Any]):
    """Data plugins share within one scheduling cycle (keyed by plugin name)."""


@runtime_checkable
class Plugin(Protocol):
    name: str


@runtime_checkable
class QueueSortPlugin(Plugin, Protocol):
    def less(self, a: Obj, a_timestamp: float, b: Obj, b_timestamp: float) -> bool: ...


@runtime_checkable
class PreFilterPlugin(Plugin, Protocol):
    def pre_filter(self, state: CycleState, pod: Obj, cache: Cache) -> Status | None: ...


@runtime_checkable
class FilterPlugin(Plugin, Protocol):
    def filter(self, state: CycleState, pod: Obj, node: NodeInfo) -> Status | None: ...


@runtime_checkable
class VectorFilterPlugin(FilterPlugin, Protocol):
    def filter_all(
        self, state: CycleState, pod: Obj, cache: Cache, candidates: BoolArray
    ) -> BoolArray:
        """The nodes (slots) among ``candidates`` that pass; ``filter`` gives the reason
        for each one that does not."""
        ...


@runtime_checkable
class PostFilterPlugin(Plugin, Protocol):
    def post_filter(
        self, state: CycleState, pod: Obj, cache: Cache, statuses: Mapping[str, Status]
    ) -> tuple[str | None, Status | None]:
        """(nominated node name or None, status whose message is shown to users)."""
        ...


@runtime_checkable
class PreScorePlugin(Plugin, Protocol):
    def pre_score(
        self, state: CycleState, pod: Obj, nodes: Sequence[NodeInfo]
    ) -> Status | None: ...


@runtime_checkable
class ScorePlugin(Plugin, Protocol):
    def score(self, state: CycleState, pod: Obj, node: NodeInfo) -> int: ...


@runtime_checkable
class VectorScorePlugin(Plugin, Protocol):
    def score_all(self, state: CycleState, pod: Obj, cache: Cache, slots: IntArray) -> IntArray:
        """Scores for the nodes in ``slots`` (cache rows), in that order."""
        ...


@runtime_checkable
class NormalizeScorePlugin(Plugin, Protocol):
    def normalize_score(self, state: CycleState, pod: Obj, scores: IntArray) -> IntArray: ...


@runtime_checkable
class ReservePlugin(Plugin, Protocol):
    def reserve(self, state: CycleState, pod: Obj, node_name: str) -> Status | None: ...

    def unreserve(self, state: CycleState, pod: Obj, node_name: str) -> None: ...


@runtime_checkable
class PermitPlugin(Plugin, Protocol):
    def permit(self, state: CycleState, pod: Obj, node_name: str) -> Status | None: ...


@runtime_checkable
class PreBindPlugin(Plugin, Protocol):
    """Runs in the binding cycle after Permit, before Bind (may await the API server);
    a failure unreserves the pod and sends it back to the queue."""

    async def pre_bind(self, state: CycleState, pod: Obj, node_name: str) -> Status | None: ...


@runtime_checkable
class EnqueueExtensions(Plugin, Protocol):
    """Upstream's ``EnqueueExtensions``: the cluster events (``ClusterEvent`` names such as
    ``PersistentVolumeClaim/Add``) after which a pod this plugin rejected may fit."""

    def events_to_register(self) -> Sequence[str]: ...


@runtime_checkable
class ClusterEventObserver(Plugin, Protocol):
    """Told of every cluster event once the scheduler's informers hold the change, so a
    plugin waiting on the cluster (VolumeBinding's PreBind) wakes on it instead of
    polling."""

    def observe_cluster_event(self, event: str) -> None: ...


@runtime_checkable
class BindPlugin(Plugin, Protocol):
    async def bind(self, state: CycleState, pod: Obj, node_name: str) -> Status | None: ...


def default_normalize_score(scores: IntArray, reverse: bool) -> IntArray:
    """Upstream's ``DefaultNormalizeScore``: scale to 0..100 by the highest score;
    ``reverse`` turns it upside down (fewer is better)."""
    if scores.size == 0:
        return scores
    top = int(scores.max())
    if top == 0:
        return np.full_like(scores, MAX_NODE_SCORE if reverse else 0)
    out = MAX_NODE_SCORE * scores // top
    if reverse:
        out = MAX_NODE_SCORE - out
    return out
