"""pyk8s server's children start early and wait at the gate (pyk8s.server.startgate)."""

from __future__ import annotations

import asyncio
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
    own = os.getpriority(os.PRIO_PROCESS, 0)
    waiting = min(own + startgate.NICER, 19) if os.geteuid() == 0 else own

    def poll(_seconds: float) -> None:  # the gate is looked at: open it the second time
        polls.append("pyk8s.server.scheduler" in sys.modules)
        assert os.getpriority(os.PRIO_PROCESS, 0) == waiting  # nicer until the gate
        if len(polls) == 2:
            startgate.open_gate(gate)

    monkeypatch.setattr(time, "sleep", poll)
    startgate.wait_in_child("scheduler")
    assert polls == [True, True]  # imported first, then waited until the gate opened
    assert startgate.ENV not in os.environ  # not passed on to what the child runs
    assert os.getpriority(os.PRIO_PROCESS, 0) == own  # its own priority back


def test_without_the_variable_a_command_runs_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(startgate.ENV, raising=False)
    monkeypatch.setattr(time, "sleep", lambda _s: pytest.fail("waited"))
    startgate.wait_in_child("scheduler")


def test_a_child_started_once_the_gate_is_open_runs(tmp_path: Path) -> None:
    gate = startgate.gate_file(tmp_path)
    startgate.close_gate(gate)  # sets the variable here; children inherit it
    try:
        startgate.open_gate(gate)
        assert startgate.ENV not in os.environ  # later children (restarts) do not wait
        os.environ[startgate.ENV] = str(gate)  # one started before that, running late
        db = tmp_path / "state.db"
        subprocess.run(
            [sys.executable, "-m", "pyk8s", "datastore-check",
             "--datastore-endpoint", f"sqlite://{db}"],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
    finally:
        os.environ.pop(startgate.ENV, None)


async def test_the_kubelet_goes_on_and_waits_before_its_first_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = startgate.gate_file(tmp_path)
    monkeypatch.setenv(startgate.ENV, str(gate))
    own = os.getpriority(os.PRIO_PROCESS, 0)
    seen: list[int] = []
    with monkeypatch.context() as m:
        m.setattr(startgate, "_prepare", lambda *a: seen.append(os.getpriority(0, 0)))
        startgate.wait_in_child("kubelet")
    assert seen == [own]  # on the way to a Ready node: imports at its own priority
    monkeypatch.setenv(startgate.ENV, str(gate))
    monkeypatch.setattr(time, "sleep", lambda _s: pytest.fail("waited before its runtime"))
    startgate.wait_in_child("kubelet")  # returns at once: containerd needs no API server
    assert os.getpriority(os.PRIO_PROCESS, 0) == own  # containerd must not inherit a nice
    waiting = asyncio.create_task(startgate.until_open())
    await asyncio.sleep(0)
    assert not waiting.done()
    startgate.open_gate(gate)
    await asyncio.wait_for(waiting, 30)
    await asyncio.wait_for(startgate.until_open(), 30)  # passed once: at once from now on
