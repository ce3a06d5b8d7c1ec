"""The scheduling framework: extension points, ``Status``, ``CycleState``, the plugin
registry and profiles — upstream's ``pkg/scheduler/framework`` in Python."""

from pyk8s.scheduler.framework.interface import (
    MAX_NODE_SCORE,
    Code,
    CycleState,
    Status,
    default_normalize_score,
    is_success,
)
from pyk8s.scheduler.framework.registry import (
    DEFAULT_PLUGINS,
    REGISTRY,
    build_framework,
    frameworks_from_config,
)
from pyk8s.scheduler.framework.runtime import Framework, fit_error_message
from pyk8s.scheduler.framework.types import NodeInfo

__all__ = [
    "DEFAULT_PLUGINS",
    "MAX_NODE_SCORE",
    "REGISTRY",
    "Code",
    "CycleState",
    "Framework",
    "NodeInfo",
    "Status",
    "build_framework",
    "default_normalize_score",
    "fit_error_message",
    "frameworks_from_config",
    "is_success",
]
