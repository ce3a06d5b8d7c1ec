"""A node update moves unschedulable pods back to the queue only when it changed what
scheduling reads (upstream's nodeSchedulingPropertiesChange): a status post that only
renews heartbeat times leaves them where they are; a label, taint, allocatable,
unschedulable or condition change moves them."""

from __future__ import annotations

import copy
from typing import Any, cast

import pytest

from pyk8s.scheduler import Scheduler


def node() -> dict[str, Any]:
    return {
        "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": "1", "memory": "1Gi", "pods": "10"},
            "conditions": [
                {"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:00:00Z"}
            ],
        },
    }


def heartbeat(n: dict[str, Any]) -> None:
    n["status"]["conditions"][0]["lastHeartbeatTime"] = "2026-01-01T00:00:10Z"
    n["metadata"]["resourceVersion"] = "2"


CHANGES = {
    "label": lambda n: n["metadata"]["labels"].update(zone="z1"),
    "taint": lambda n: n["spec"].update(taints=[{"key": "k", "effect": "NoSchedule"}]),
    "allocatable": lambda n: n["status"]["allocatable"].update(cpu="2"),
    "cordon": lambda n: n["spec"].update(unschedulable=True),
    "condition": lambda n: n["status"]["conditions"][0].update(status="False"),
}


@pytest.mark.parametrize("change", [None, *CHANGES])
async def test_node_update_moves_unschedulable_pods_only_on_a_scheduling_change(
    change: str | None,
) -> None:
    sched = Scheduler(cast(Any, object()))  # no API calls: the handlers alone
    old = node()
    sched._on_node(old)
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "spec": {}}
    sched.queue.add(pod)
    info = await sched.queue.pop()
    assert info is not None
    sched.queue.add_unschedulable(info)
    assert sched.queue.pending() == (0, 0, 1)
    new = copy.deepcopy(old)
    heartbeat(new)
    if change is not None:
        CHANGES[change](new)
    sched._on_node_update(old, new)
    assert sched.cache.nodes["n1"].node is new  # the cache always takes the update
    moved = sched.queue.pending()[2] == 0
    assert moved == (change is not None)
