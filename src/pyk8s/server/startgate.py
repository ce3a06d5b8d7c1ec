"""Start ``pyk8s server``'s children while the API server starts; let them run once it is up.

Why: each child is a Python process that spends its first second or more importing
(CPU the API server's own start, mostly one core, leaves free on a two-core host), and
none of them can do anything useful until the API server answers and has the
components' RBAC policy, the join token and what each add-on needs. k3s starts its
components at once too and has each wait for the API server (its ``apiReady`` channel).

So the server spawns the children first, with ``PYK8S_START_GATE`` naming a file that
does not exist yet; a child with the variable imports its component's module (and what
that module's ``preload()`` names) and then waits for the file. The server creates it
(:func:`open_gate`) when it would have started them before. A child restarted later
finds the file there and goes straight on; the variable is dropped from the child's own
environment so nothing it runs inherits it.
"""

from __future__ import annotations

import importlib
import os
import time
from pathlib import Path

#: the environment variable naming the gate file
ENV = "PYK8S_START_GATE"
#: how often a waiting child looks for the file
_POLL = 0.02


def gate_file(data_dir: Path) -> Path:
    return data_dir / "server" / "components-start"


def close_gate(path: Path) -> None:
    """Children started from now on wait (call before starting them)."""
    path.unlink(missing_ok=True)
    os.environ[ENV] = str(path)


def open_gate(path: Path) -> None:
    """Waiting children (and later ones) go on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def wait_in_child(command: str) -> None:
    """In a child: import ``pyk8s.server.<command>`` and its ``preload()``, then wait for
    the gate when the server set one."""
    gate = os.environ.pop(ENV, None)
    if gate is None:
        return
    name = f"pyk8s.server.{command.replace('-', '_')}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name != name:
            raise
        module = None
    preload = getattr(module, "preload", None)
    if callable(preload):
        preload()
    path = Path(gate)
    while not path.exists():
        time.sleep(_POLL)
