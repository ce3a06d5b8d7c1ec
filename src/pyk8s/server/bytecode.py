"""A bytecode cache for pyk8s processes run with ``PYTHONDONTWRITEBYTECODE``.

Why: ``pyk8s server`` is seven Python processes (the API server and its supervised
children), each importing much of pyk8s; with no ``.pyc`` files every one of them compiles
its modules from source again. An installed wheel ships compiled bytecode, but an
editable install in an environment that sets ``PYTHONDONTWRITEBYTECODE=1`` (to keep
``__pycache__`` out of the source tree) never gets any: compiling was about half of each
process's import time, some 2.5 CPU seconds of a fresh server start (issue 21,
bench/startup). So a pyk8s process that may not write bytecode next to the sources keeps
it under ``$XDG_CACHE_HOME/pyk8s/pycache`` (``~/.cache/pyk8s/pycache``) instead, as
Python's own ``PYTHONPYCACHEPREFIX`` does: the source tree stays clean and the next
process reads what the first one compiled (stale entries are detected by the sources'
mtime and size, as always). A ``PYTHONPYCACHEPREFIX`` given by the user is theirs and is
left alone, together with their ``PYTHONDONTWRITEBYTECODE``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pyk8s" / "pycache"


def enable() -> None:
    """Write and read this process's bytecode under :func:`cache_dir` when it may not be
    written beside the sources (call before the heavy imports)."""
    if not sys.dont_write_bytecode or sys.pycache_prefix is not None:
        return
    sys.pycache_prefix = str(cache_dir())
    sys.dont_write_bytecode = False
