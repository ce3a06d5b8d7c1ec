"""pyk8s server's children start early and wait at the gate (pyk8s.server.startgate)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyk8s.server import startgate


def test_a_child_imports_then_waits_for_the_gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = startgate.gate_file(tmp_path)
    monkeypatch.setenv(startgate.ENV, str(gate))
    monkeypatch.delitem(sys.modules, "pyk8s.server.scheduler", raising=False)
    polls: list[bool] = []

    def poll(_seconds: float) -> None:  # the gate is looked at: open it the second time
        polls.append("pyk8s.server.scheduler" in sys.modules)
        if len(polls) == 2:
            startgate.open_gate(gate)

    monkeypatch.setattr(time, "sleep", poll)
    startgate.wait_in_child("scheduler")
    assert polls == [True, True]  # imported first, then waited until the gate opened
    assert startgate.ENV not in os.environ  # not passed on to what the child runs


def test_without_the_variable_a_command_runs_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(startgate.ENV, raising=False)
    monkeypatch.setattr(time, "sleep", lambda _s: pytest.fail("waited"))
    startgate.wait_in_child("scheduler")


def test_a_child_started_once_the_gate_is_open_runs(tmp_path: Path) -> None:
    gate = startgate.gate_file(tmp_path)
    startgate.close_gate(gate)  # sets the variable here; children inherit it
    try:
        startgate.open_gate(gate)
        db = tmp_path / "state.db"
        subprocess.run(
            [sys.executable, "-m", "pyk8s", "datastore-check",
             "--datastore-endpoint", f"sqlite://{db}"],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
    finally:
        os.environ.pop(startgate.ENV, None)
