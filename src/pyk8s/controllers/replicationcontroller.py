"""The ReplicationController controller: the ReplicaSet controller for the older kind.

Upstream runs the very same code for both (``pkg/controller/replication`` wraps the
ReplicaSet controller with a conversion); so does pyk8s: a ReplicationController differs
only in its kind, its core/v1 group and its selector, a plain label map (``spec.selector``
absent means "the template's labels", which the API server defaults).
"""

from __future__ import annotations

from pyk8s.api.registry import REGISTRY
from pyk8s.api.selectors import LabelSelector
from pyk8s.controllers.replicaset import Obj, ReplicaKind, setup_replicas
from pyk8s.controllers.runtime import Manager

REPLICATIONCONTROLLERS = REGISTRY.get("", "v1", "replicationcontrollers")
assert REPLICATIONCONTROLLERS is not None


def _rc_selector(rc: Obj) -> LabelSelector:
    selector = (rc.get("spec") or {}).get("selector")
    if not selector:
        # an empty map selects nothing for an RC (upstream's SelectorFromValidatedSet of {}
        # would match everything, but validation forbids it; be safe)
        return LabelSelector.nothing()
    return LabelSelector.from_set(selector)


REPLICATIONCONTROLLER_KIND = ReplicaKind(
    REPLICATIONCONTROLLERS,
    "ReplicationController",
    "v1",
    "replication-controller",
    _rc_selector,
)


def setup(manager: Manager) -> None:
    setup_replicas(manager, "replicationcontroller", REPLICATIONCONTROLLER_KIND)
