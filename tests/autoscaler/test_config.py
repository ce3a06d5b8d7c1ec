"""Node group files and durations: what ``pyk8s cluster-autoscaler --config`` accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyk8s.autoscaler import load_node_groups, parse_duration
from pyk8s.autoscaler.config import GROUP_LABEL


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "groups.yaml"
    p.write_text(text)
    return p


def test_the_issue_shape_loads(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
nodeGroups:
- name: big
  minSize: 0
  maxSize: 5
  template: {capacity: {cpu: "4", memory: 8Gi, pods: "110"}, labels: {pool: big}, taints: []}
""",
    )
    (big,) = load_node_groups(path)
    assert (big.name, big.min_size, big.max_size) == ("big", 0, 5)
    node = big.template_node("big-abcde")
    assert node["status"]["allocatable"] == {"cpu": "4", "memory": "8Gi", "pods": "110"}
    assert node["metadata"]["labels"]["pool"] == "big"
    assert node["metadata"]["labels"][GROUP_LABEL] == "big"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("nodeGroups: [{name: a, maxSize: 1, template: {capacity: {cpu: '1'}}}]", "cpu and memory"),
        ("nodeGroups: [{name: A_, maxSize: 1}]", "nodeGroups[0].name"),
        ("nodeGroups: [{name: a, minSize: 3, maxSize: 1}]", "nodeGroups[0].maxSize"),
        (
            "nodeGroups: [{name: a, maxSize: 1, template: {capacity: {cpu: x, memory: 1Gi}}}]",
            "nodeGroups[0].template.capacity.cpu",
        ),
        ("groups: []", "nodeGroups list"),
    ],
)
def test_bad_files_name_the_field(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error.replace("[", r"\[").replace("]", r"\]")):
        load_node_groups(write(tmp_path, text))


def test_go_durations() -> None:
    assert parse_duration("10m") == 600
    assert parse_duration("1m30s") == 90
    assert parse_duration("500ms") == 0.5
    assert parse_duration("0") == 0
    with pytest.raises(ValueError):
        parse_duration("ten minutes")
