"""Start ``pyk8s server``'s children while the API server starts; let them run once it is up.

Why: each child is a Python process that spends its first second or more importing
(CPU the API server's own start, mostly one core, leaves free on a two-core host), and
none of them can do anything useful until the API server answers and has the
components' RBAC policy, the join token and what each add-on needs. k3s starts its
components at once too and has each wait for the API server (its ``apiReady`` channel).
(A child forked from the server's zygote, :mod:`pyk8s.server.zygote`, has its modules
imported already; the zygote imports them meanwhile instead, and the gate still holds the
child until the API server is ready for it.)

So the server spawns the children first, with ``PYK8S_START_GATE`` naming a file that
does not exist yet; a child with the variable imports its component's module (and what
that module's ``preload()`` names) and then waits for the file. The server creates it
(:func:`open_gate`) when it would have started them before, and stops passing the
variable on: children restarted later need no gate. A component module with
``WAITS_AT_GATE = True`` (the kubelet: its container runtime and images need no API
server) runs at once and awaits :func:`until_open` itself before its first request. The
variable is dropped from the child's own environment so nothing it runs inherits it.

While it imports and waits, a child started by root runs at a lower CPU priority
(:data:`NICER`) and takes its own back at the gate: on a busy host the API server's
start, which every component waits for, goes first; on an idle one the children use
the other core all the same. The controller manager and the kubelet are not slowed
(:data:`FULL_PRIORITY`): a new node is Ready only once the one has signed the other's
certificate, and the controller manager's imports (every controller) are the longest.
(Without root a process could not raise its priority again, so it keeps its own
throughout.)
"""

from __future__ import annotations

import asyncio
import importlib
import os
import time
from pathlib import Path
from types import ModuleType

#: the environment variable naming the gate file
ENV = "PYK8S_START_GATE"
#: how often a waiting child looks for the file
_POLL = 0.02
#: how much nicer a child runs until the gate
NICER = 10
#: the components on the way to a Ready node, which import at their own priority
FULL_PRIORITY = frozenset({"controller-manager", "kubelet"})
#: the gate a component that waits itself has yet to pass (see :func:`until_open`)
_gate: Path | None = None


def gate_file(data_dir: Path) -> Path:
    return data_dir / "server" / "components-start"


def close_gate(path: Path) -> None:
    """Children started from now on wait (call before starting them)."""
    path.unlink(missing_ok=True)
    os.environ[ENV] = str(path)


def open_gate(path: Path) -> None:
    """Waiting children go on; children started from now on (restarts) do not wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    os.environ.pop(ENV, None)


def wait_in_child(command: str) -> None:
    """In a child: import ``pyk8s.server.<command>`` and its ``preload()``, then wait for
    the gate when the server set one."""
    gate = os.environ.pop(ENV, None)
    if gate is None:
        return
    priority = os.getpriority(os.PRIO_PROCESS, 0)
    nicer = os.geteuid() == 0 and priority < 19 and command not in FULL_PRIORITY
    if nicer:
        os.setpriority(os.PRIO_PROCESS, 0, min(priority + NICER, 19))
    try:
        _prepare(command, Path(gate))
    finally:
        if nicer:
            os.setpriority(os.PRIO_PROCESS, 0, priority)


def import_component(command: str) -> ModuleType | None:
    """Import ``pyk8s.server.<command>`` and what its ``preload()`` names (also the
    zygote's preload, :mod:`pyk8s.server.zygote`); None for a command without a module."""
    name = f"pyk8s.server.{command.replace('-', '_')}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name != name:
            raise
        return None
    preload = getattr(module, "preload", None)
    if callable(preload):
        preload()
    return module


def _prepare(command: str, path: Path) -> None:
    module = import_component(command)
    if getattr(module, "WAITS_AT_GATE", False):
        global _gate
        _gate = path
        return
    while not path.exists():
        time.sleep(_POLL)


async def until_open() -> None:
    """In a component with ``WAITS_AT_GATE``: return once the gate is open (at once when
    the process was not started at a gate)."""
    global _gate
    while _gate is not None:
        if await asyncio.to_thread(_gate.exists):
            _gate = None
            return
        await asyncio.sleep(_POLL)
