"""The HPA controller's pure rules: scaling policies and the replica calculation."""

from __future__ import annotations

from pyk8s.controllers.horizontalpodautoscaler import (
    HPAReconciler,
    scale_down_limit,
    scale_down_rules,
    scale_up_limit,
    scale_up_rules,
)

NOW = 1000.0


def test_default_scale_up_allows_the_larger_of_4_pods_and_100_percent() -> None:
    rules = scale_up_rules(None)
    assert scale_up_limit(1, [], rules, NOW) == 5
    assert scale_up_limit(10, [], rules, NOW) == 20
    # 6 added 5 s ago count against both policies' 15 s period
    assert scale_up_limit(10, [(NOW - 5, 6)], rules, NOW) == 8
    assert scale_up_limit(10, [(NOW - 20, 6)], rules, NOW) == 20


def test_scale_down_policies_and_select_policy() -> None:
    rules = scale_down_rules(
        {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60},
                      {"type": "Percent", "value": 50, "periodSeconds": 60}]}
    )  # fmt: skip
    assert rules["stabilizationWindowSeconds"] == 300
    assert scale_down_limit(10, [], rules, NOW) == 5  # Max: the bigger change
    assert scale_down_limit(10, [], {**rules, "selectPolicy": "Min"}, NOW) == 8
    assert scale_down_limit(10, [], {**rules, "selectPolicy": "Disabled"}, NOW) == 10


def ratio_of(usage_ratio: float):  # type: ignore[no-untyped-def]
    return lambda extra: usage_ratio


def test_replicas_within_tolerance_stay() -> None:
    calc = HPAReconciler._replicas
    assert calc(1.05, ratio_of(1.05), 4, 4, set(), set(), {}, {}, 0.1) == 4
    assert calc(1.5, ratio_of(1.5), 2, 2, set(), set(), {}, {}, 0.1) == 3
    assert calc(0.2, ratio_of(0.2), 5, 5, set(), set(), {}, {}, 0.1) == 1


def test_missing_pods_that_would_turn_the_decision_around_keep_the_replicas() -> None:
    calc = HPAReconciler._replicas
    target = {"type": "Utilization", "averageUtilization": 50}
    # scaling up on 2 ready pods, 2 without metrics counted as 0 %: the ratio drops under 1
    assert calc(1.5, ratio_of(0.75), 4, 2, set(), {"a", "b"}, {}, target, 0.1) == 4
    # still above: more pods, over all four
    assert calc(3.0, ratio_of(1.5), 4, 2, set(), {"a", "b"}, {}, target, 0.1) == 6
