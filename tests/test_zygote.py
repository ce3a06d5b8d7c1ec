"""The server's zygote forks a ``pyk8s`` command with the server's environment and log
file, names it in ``ps``, passes signals on, reports its exit status as a subprocess's
``returncode``, and its children die with the server.

Why: ``pyk8s server`` forks its components from the zygote (:mod:`pyk8s.server.zygote`)
instead of exec'ing each; the supervisor restarts and stops them through these calls, and
a SIGKILLed server must not leave components behind. The zygote is started in a child
Python here: it must be forked before its process has threads, and pytest's may have.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.e2e_sim.conftest import child_pid, wait_until

SERVER = """
import asyncio, os, signal, sys
from pyk8s.server import zygote

forks = zygote.start(["token"])  # forked once "imported": the last import

async def main():
    usage = await forks.spawn(["token", "generate"], sys.argv[1])
    print("exit", await usage.wait(), flush=True)
    os.environ["PYK8S_START_GATE"] = sys.argv[2]  # never opened: the child waits at it
    waiting = await forks.spawn(["token", "list"])
    print("pid", waiting.pid, flush=True)
    sys.stdin.readline()
    waiting.send_signal(signal.SIGTERM)
    print("exit", await waiting.wait(), flush=True)
    again = await forks.spawn(["token", "list"])
    print("pid", again.pid, flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


def _lines(server: subprocess.Popen[str]) -> queue.Queue[str]:
    """The server's output lines, read beside the test (a child never forked must fail
    the test, not hang it)."""
    out: queue.Queue[str] = queue.Queue()
    assert server.stdout is not None
    stdout = server.stdout

    def read() -> None:
        for line in stdout:
            out.put(line)

    threading.Thread(target=read, daemon=True).start()
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_forked_children_run_commands_take_signals_and_die_with_the_server(
    tmp_path: Path,
) -> None:
    log = tmp_path / "child.log"
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(log), str(tmp_path / "gate")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    pids: list[int] = []
    lines = _lines(server)
    try:
        # argparse's refusal went to the log file; its status came back as a returncode
        assert lines.get(timeout=30).split() == ["exit", "2"]
        assert "invalid choice: 'generate'" in log.read_text()
        pid = int(lines.get(timeout=30).split()[1])
        pids.append(pid)
        # a child of the zygote, not of the server, named as its command in ps
        assert int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) != server.pid
        assert wait_until(
            lambda: b"pyk8s token list" in Path(f"/proc/{pid}/cmdline").read_bytes(), within=10
        )
        assert child_pid(server.pid, "list") == pid
        assert Path(f"/proc/{pid}/comm").read_text().strip() == "pyk8s-token"
        server.stdin.write("\n")
        server.stdin.flush()
        assert lines.get(timeout=30).split() == ["exit", str(-signal.SIGTERM)]
        pid = int(lines.get(timeout=30).split()[1])
        pids.append(pid)
        assert _alive(pid)
        server.kill()
        server.wait()
        assert wait_until(lambda: not _alive(pid), within=10, every=0.05)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
