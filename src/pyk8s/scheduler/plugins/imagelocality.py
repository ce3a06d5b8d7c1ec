"""ImageLocality: prefer nodes that already hold the pod's images, so it starts sooner.

As upstream: each container image present on a node adds its size scaled by the share of
nodes that have it (an image everywhere says little about a node); the sum is clamped
between 23 MB and 1000 MB per container and mapped to 0..100. Images without a tag or
digest are looked up as ``:latest``. The cache keeps image → node → size, so a score is
one dict walk per image, not per node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pyk8s.scheduler.framework.interface import MAX_NODE_SCORE, CycleState, IntArray
from pyk8s.scheduler.framework.types import Obj

if TYPE_CHECKING:
    from pyk8s.scheduler.cache import Cache

NAME = "ImageLocality"
MB = 1024 * 1024
MIN_THRESHOLD = 23 * MB
MAX_CONTAINER_THRESHOLD = 1000 * MB


def normalized_image_name(name: str) -> str:
    """``nginx`` → ``nginx:latest``; names with a tag or digest stay as they are."""
    if "@" in name or ":" in name.rsplit("/", 1)[-1]:
        return name
    return name + ":latest"


def calculate_priority(sum_scores: int, num_containers: int) -> int:
    """One node's score (the vectorised :meth:`ImageLocality.score_all` does the same)."""
    max_threshold = MAX_CONTAINER_THRESHOLD * num_containers
    clamped = min(max(sum_scores, MIN_THRESHOLD), max_threshold)
    return MAX_NODE_SCORE * (clamped - MIN_THRESHOLD) // (max_threshold - MIN_THRESHOLD)


class ImageLocality:
    name = NAME

    def score_all(self, state: CycleState, pod: Obj, cache: Cache, slots: IntArray) -> IntArray:
        spec = pod.get("spec") or {}
        containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
        n = len(slots)
        total_nodes = len(cache)
        sums = np.zeros(n, dtype=np.int64)
        if not (containers and total_nodes and cache.image_nodes):
            return sums
        # slot -> position in ``slots``, built with one vector operation per pod
        position = np.full(max(int(slots.max(initial=-1)) + 1, 1), -1, dtype=np.int64)
        position[slots] = np.arange(n)
        for c in containers:
            holders = cache.image_nodes.get(normalized_image_name(str(c.get("image") or "")))
            if not holders:
                continue
            spread = len(holders) / total_nodes
            for node_name, size in holders.items():
                info = cache.nodes.get(node_name)
                if info is None or info.slot >= len(position):
                    continue
                j = position[info.slot]
                if j >= 0:
                    sums[j] += int(size * spread)
        num = max(len(containers), 1)
        max_threshold = MAX_CONTAINER_THRESHOLD * num
        clamped = np.clip(sums, MIN_THRESHOLD, max_threshold)
        out: IntArray = (
            MAX_NODE_SCORE * (clamped - MIN_THRESHOLD) // (max_threshold - MIN_THRESHOLD)
        )
        return out
