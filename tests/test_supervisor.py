"""The server's supervisor starts its children without running this process's at-fork
handlers in them, a child still dies with a SIGKILLed supervisor, and restart delays
double but start over after a child ran steadily.

Why: the server process holds a gRPC client (the embedded etcd's), whose at-fork handler
aborted children between fork and exec when the supervisor used a ``preexec_fn`` (a
controller manager or scheduler "exited with -6" now and then, and a restarted one took
a leader lease in the HA test). The supervisor runs in a child Python here, because an
at-fork handler cannot be unregistered: that process registers one that exits at once
in any forked child, starts ``sleep`` under the supervisor and prints its pid.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e_sim.conftest import wait_until

SUPERVISED = """
import asyncio, os, sys
from pyk8s.server.supervisor import Supervisor

os.register_at_fork(after_in_child=lambda: os._exit(86))

async def main():
    sup = Supervisor()
    child = sup.add_command("sleep", ["sleep", "600"])
    await sup.start()
    while child.proc is None:
        await asyncio.sleep(0.01)
    print(child.proc.pid, flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    """The pid runs ``sleep`` (not a zombie, not reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and cmdline.startswith(b"sleep\0")


def test_children_skip_at_fork_handlers_and_die_with_the_supervisor() -> None:
    sup = subprocess.Popen(
        [sys.executable, "-c", SUPERVISED], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert sup.stdout is not None
    pid = 0
    try:
        pid = int(sup.stdout.readline())
        # the child got as far as exec'ing sleep: no at-fork handler ran in it
        assert wait_until(lambda: _alive(pid), within=10, every=0.05)
        sup.kill()
        sup.wait()
        assert wait_until(lambda: not _alive(pid), within=10, every=0.05)
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()
        if pid and _alive(pid):
            os.kill(pid, signal.SIGKILL)


async def _restart_delays(steady: float, caplog: pytest.LogCaptureFixture) -> list[str]:
    """The delays the supervisor announces for the first three restarts of a child that
    exits at once."""
    from pyk8s.server.supervisor import Supervisor

    sup = Supervisor(steady=steady)
    child = sup.add_command("true", ["true"])
    with caplog.at_level(logging.WARNING, logger="pyk8s.server.supervisor"):
        await sup.start()
        while child.restarts < 3:  # noqa: ASYNC110 (the supervisor's own counter)
            await asyncio.sleep(0.05)
        await sup.stop()
    ours = [r for r in caplog.records if r.name == "pyk8s.server.supervisor"]
    return [r.getMessage().rsplit(" ", 1)[1] for r in ours if "restarting" in r.getMessage()][:3]


async def test_restart_delays_double_and_start_over_after_a_steady_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert await _restart_delays(60.0, caplog) == ["1s", "2s", "4s"]
    caplog.clear()
    # every run counts as steady: each restart waits the first delay again
    assert await _restart_delays(0.0, caplog) == ["1s", "1s", "1s"]
