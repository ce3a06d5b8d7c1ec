"""ImageLocality: upstream's scaled image sizes and thresholds, ``:latest`` defaulting."""

from __future__ import annotations

from typing import Any

import numpy as np

from pyk8s.scheduler.cache import Cache
from pyk8s.scheduler.framework import CycleState
from pyk8s.scheduler.plugins.imagelocality import (
    MB,
    ImageLocality,
    calculate_priority,
    normalized_image_name,
)


def node(name: str, images: list[tuple[list[str], int]]) -> Any:
    return {
        "metadata": {"name": name},
        "spec": {},
        "status": {
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "images": [{"names": n, "sizeBytes": s} for n, s in images],
        },
    }


def test_normalized_names() -> None:
    assert normalized_image_name("nginx") == "nginx:latest"
    assert normalized_image_name("reg:5000/nginx") == "reg:5000/nginx:latest"
    assert normalized_image_name("nginx:1.25") == "nginx:1.25"
    assert normalized_image_name("nginx@sha256:abc") == "nginx@sha256:abc"


def test_thresholds() -> None:
    assert calculate_priority(10 * MB, 1) == 0
    assert calculate_priority(2000 * MB, 1) == 100
    assert calculate_priority(2000 * MB, 2) == 100 * (2000 - 23) // (2000 - 23)
    assert calculate_priority(500 * MB, 1) == 100 * (500 - 23) * MB // ((1000 - 23) * MB)


def test_score_prefers_nodes_with_the_image_scaled_by_spread() -> None:
    c = Cache(capacity=2)
    c.add_node(node("has", [(["docker.io/app:latest", "app:latest"], 600 * MB)]))
    c.add_node(node("also", [(["app:latest"], 600 * MB)]))
    c.add_node(node("none", []))
    p = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "app"}]}}
    slots = c.slots().astype(np.int64)
    scores = ImageLocality().score_all(CycleState(), p, c, slots)
    by = {c.info(int(s)).name: int(v) for s, v in zip(slots, scores, strict=True)}
    scaled = int(600 * MB * 2 / 3)
    assert by["has"] == by["also"] == calculate_priority(scaled, 1)
    assert by["none"] == 0
    # a node losing the image is forgotten by the cache
    c.add_node(node("also", []))
    assert "also" not in c.image_nodes["app:latest"]
