"""bench/scheduler/cycle.py's quick size as a regression check CI can afford: every
scheduler_perf workload (basic, pod anti-affinity, pod affinity, preferred pod
(anti-)affinity, node affinity, topology spread, mixed) still places all its pods on 100
nodes through the scheduling cycle, beside its initial pods. It asserts no time; the
bench prints the rates."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cycle_bench_quick_places_every_workload() -> None:
    spec = importlib.util.spec_from_file_location("cycle_bench", ROOT / "bench/scheduler/cycle.py")
    assert spec is not None and spec.loader is not None
    cycle = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = cycle  # its dataclasses look their module up
    spec.loader.exec_module(cycle)
    results = cycle.inner(100, 20, 120.0, "")
    assert set(results) == set(cycle.WORKLOADS)
    for what, r in results.items():
        assert r["pods"] == 20 and r["failed"] == 0, (what, r)
        assert r["init"] > 0, (what, r)
