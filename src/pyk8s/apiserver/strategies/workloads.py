"""Strategies of the resources whose metadata.generation tracks their spec.

Workload controllers (Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJobs,
ReplicationControllers) and a few policy objects report ``status.observedGeneration``
against ``metadata.generation``, which moves only when the spec changes. The ones with a
``replicas`` field serve the scale subresource; a Job selects its pods by its own uid.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyk8s.apiserver.rest import job_selector
from pyk8s.apiserver.strategies.base import JSON, Strategy, Subresource
from pyk8s.apiserver.subresources import BUILTIN_SCALE


class GenerationStrategy(Strategy):
    generation_tracked = True


class ScalableStrategy(GenerationStrategy):
    subresources: Mapping[str, Subresource] = {"scale": BUILTIN_SCALE}


class JobStrategy(GenerationStrategy):
    def prepare_for_create(self, obj: JSON) -> None:
        super().prepare_for_create(obj)
        job_selector(obj)
